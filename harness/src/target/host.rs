//! The `host` target: the firmware's agent built for Linux
//! (`firmware/build/host/mqtt-hil-agent-host`), speaking the agent protocol
//! on stdin/stdout and reaching the proxy on loopback. Its persistent store
//! is a file, so a reboot (the process exits 75 and is started again) keeps
//! what the firmware would keep in flash.

use std::path::PathBuf;

use tokio::process::Command;

use super::supervisor::Launch;

pub struct HostAgent {
    pub program: PathBuf,
    pub store: PathBuf,
}

impl Launch for HostAgent {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("--store").arg(&self.store);
        c
    }

    fn what(&self) -> &str {
        "host agent"
    }
}

/// Where `make -C firmware/host agent` puts the host agent.
pub fn default_program(root: &std::path::Path) -> PathBuf {
    root.join("firmware/build/host/mqtt-hil-agent-host")
}
