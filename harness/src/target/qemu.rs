//! The `qemu` target: the firmware on the emulated ESP8266 — the lx106 core
//! on QEMU's lx60 board with an OpenCores Ethernet MAC and a pflash. The
//! UART is QEMU's stdio; resets go through QMP; the only way out of the
//! guest is a `guestfwd` whose `cmd:` runs `mqtt-hil splice` per guest
//! connection to the device's proxy lane on loopback (a `tcp:` guestfwd
//! connects once at start and could not carry reconnects).

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::Command;

use super::supervisor::{Launch, WarmReset};
use crate::error::{Error, Result};

/// The guest-side address the firmware dials for the broker.
pub const GUEST_BROKER: (&str, u16) = ("10.0.2.100", 1883);
/// Size of the emulated board's flash file (the lx60's pflash).
pub const FLASH_SIZE: u64 = 4 * 1024 * 1024;

pub struct Qemu {
    pub program: PathBuf,
    pub firmware: PathBuf,
    pub flash: PathBuf,
    pub qmp: PathBuf,
    /// `mqtt-hil` itself, for the guestfwd's `splice`.
    pub splice: PathBuf,
    /// The device's proxy lane on loopback.
    pub lane: std::net::SocketAddr,
}

impl Qemu {
    pub fn find_program() -> Result<PathBuf> {
        crate::process::find_program("qemu-system-xtensa").ok_or_else(|| {
            Error::env(
                "qemu-system-xtensa is not installed",
                "install the Debian package `qemu-system-misc` (`make deps` does)",
            )
        })
    }

    /// Creates the flash file (erased, all 0xff) unless it exists: a flash
    /// the harness owns, kept across resets and power cycles of one run.
    pub fn prepare_flash(path: &Path) -> Result<()> {
        if path.exists() {
            return Ok(());
        }
        std::fs::write(path, vec![0xffu8; FLASH_SIZE as usize])
            .map_err(|e| Error::io(format!("creating flash file {}", path.display()), e))
    }
}

impl Launch for Qemu {
    fn command(&self) -> Command {
        let (ip, port) = GUEST_BROKER;
        let fwd = format!(
            "user,id=n0,restrict=on,guestfwd=tcp:{ip}:{port}-cmd:{} splice {}",
            self.splice.display(),
            self.lane
        );
        let mut c = Command::new(&self.program);
        c.args([
            "-M",
            "lx60-nommu",
            "-cpu",
            "lx106",
            "-nographic",
            "-monitor",
            "none",
        ])
        .args(["-serial", "stdio"])
        .arg("-kernel")
        .arg(&self.firmware)
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,file={}",
            self.flash.display()
        ))
        .arg("-netdev")
        .arg(fwd)
        .args(["-net", "nic,netdev=n0,model=open_eth"])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", self.qmp.display()));
        c
    }

    fn what(&self) -> &str {
        "QEMU"
    }

    fn warm_reset(&self) -> Option<WarmReset<'_>> {
        Some(Box::pin(qmp_command(&self.qmp, "system_reset")))
    }
}

/// Runs one QMP command: capabilities handshake, then the command, then the
/// reply (events in between are skipped).
pub async fn qmp_command(socket: &Path, command: &str) -> Result<(), String> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| format!("QMP socket {}: {e}", socket.display()))?;
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    let mut next = async || -> Result<String, String> {
        loop {
            let l = lines
                .next_line()
                .await
                .map_err(|e| format!("QMP: {e}"))?
                .ok_or("QMP closed")?;
            if !l.contains("\"event\"") {
                return Ok(l);
            }
        }
    };
    next().await?; // greeting
    wr.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
        .await
        .map_err(|e| e.to_string())?;
    next().await?;
    wr.write_all(format!("{{\"execute\":\"{command}\"}}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let reply = next().await?;
    if reply.contains("\"return\"") {
        Ok(())
    } else {
        Err(format!("QMP {command} failed: {reply}"))
    }
}
