//! Builds the project's own sketches (firmware/sketches/) for the tests,
//! once: the build cache (under target/) is shared by every test process,
//! which wait for each other on its lock and then find the image there.

use std::path::{Path, PathBuf};

use mqtt_hil::sketch::{self, Env, Request, Warnings};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

pub fn env() -> Env {
    let root = root();
    Env {
        firmware: root.join("firmware"),
        cache: root.join("target/mqtt-hil-cache/sketch"),
        jobs: 2,
    }
}

/// The image of `firmware/sketches/NAME` built with these definitions
/// (all warnings on: our own sketches must build clean).
#[allow(dead_code)]
pub fn image(name: &str, defines: &[String]) -> PathBuf {
    let req = Request {
        sketch: root().join("firmware/sketches").join(name),
        library: Vec::new(),
        libraries: [root().join("firmware/libraries")]
            .into_iter()
            .filter(|d| d.is_dir())
            .collect(),
        defines: defines.to_vec(),
        warnings: Warnings::All,
    };
    match sketch::build(&req, &env()) {
        Ok(b) => {
            assert!(
                b.messages.trim().is_empty(),
                "building {name} {defines:?} warned:\n{}",
                b.messages
            );
            b.elf
        }
        Err(e) => panic!("building firmware/sketches/{name} {defines:?} failed (run `make firmware` first for lwIP's source):\n{e}"),
    }
}

/// The counter device, or one of its seeded bugs (bugs.txt), which are
/// built with `-DCOUNTER_DEVICE_BUG_<BUG>=1`.
#[allow(dead_code)]
pub fn counter_device(bug: Option<&str>) -> PathBuf {
    let defines: Vec<String> = bug
        .map(|b| {
            vec![format!(
                "COUNTER_DEVICE_BUG_{}=1",
                b.to_uppercase().replace('-', "_")
            )]
        })
        .unwrap_or_default();
    image("counter_device", &defines)
}

/// Boots `elf` on the emulated board (no network, no flash) and returns its
/// UART lines up to and including the first that contains `until`; panics
/// with what it printed if that does not come within `secs`.
#[allow(dead_code)]
pub fn uart_until(elf: &Path, until: &str, secs: u64) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new("qemu-system-xtensa")
        .args([
            "-M",
            "lx60-nommu",
            "-cpu",
            "lx106",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-kernel",
        ])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-xtensa (Debian's qemu-system-misc) runs");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l.trim_end_matches('\r').to_string()).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let done = l.contains(until);
                lines.push(l);
                if done {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no `{until}` within {secs}s; the board printed:\n{}",
                    lines.join("\n")
                );
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}
