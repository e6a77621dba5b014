//! Child processes that never outlive the harness: each is started in its own
//! process group with a parent-death signal, and killed (group and all) when
//! its handle is dropped, so success, failure, timeout and Ctrl-C all leave
//! nothing behind.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Makes a command safe to spawn: own process group, SIGKILL if we die.
pub fn guard(cmd: &mut Command) {
    cmd.kill_on_drop(true).stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls (setpgid, prctl) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Sends a signal to the child's whole process group.
pub fn signal_group(child: &Child, sig: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: plain syscall on a pid we own.
        unsafe {
            libc::kill(-(pid as i32), sig);
        }
    }
}

/// Asks politely (SIGTERM), then insists (SIGKILL) after `grace`.
pub async fn terminate(child: &mut Child, grace: Duration) {
    signal_group(child, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(child, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Kills at once (kill -9), as a crash would.
pub async fn kill(child: &mut Child) {
    signal_group(child, libc::SIGKILL);
    let _ = child.wait().await;
}

/// Finds an executable on PATH or in the usual system folders (Debian puts
/// daemons like mosquitto in /usr/sbin, often not on a user's PATH).
pub fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(Into::into))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
