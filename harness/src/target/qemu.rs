//! The `qemu` target: the firmware on the emulated ESP8266 — the lx106 core
//! on QEMU's lx60 board with an OpenCores Ethernet MAC and a pflash. The
//! UART is QEMU's stdio; resets and the radio go through QMP.
//!
//! The board's network is one of two ([`NetMode`]):
//! - `owned` (the default): `-netdev stream` hands every Ethernet frame to
//!   the harness over a Unix socket in the scenario's folder, and
//!   [`crate::net`] plays access point, DHCP, DNS and the broker's host
//!   (see docs/network.md). No root, nothing routed: the only peer the
//!   guest has is that socket.
//! - `slirp`: QEMU's user network with `restrict=on`, and a `guestfwd`
//!   whose `cmd:` runs `mqtt-hil splice` per guest connection to the
//!   device's proxy lane on loopback (a `tcp:` guestfwd connects once at
//!   start and could not carry reconnects). Kept to compare against
//!   (`make bench`) and as a fallback; network faults need `owned`.

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

/// How the emulated board reaches the harness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetMode {
    /// Frames to the harness's own network (`-netdev stream`).
    #[default]
    Owned,
    /// QEMU's user network with a guestfwd per connection.
    Slirp,
}

impl std::str::FromStr for NetMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<NetMode> {
        match s {
            "owned" => Ok(NetMode::Owned),
            "slirp" => Ok(NetMode::Slirp),
            _ => Err(Error::Usage(format!(
                "unknown board network `{s}`: use owned (the harness's own network, the default) or slirp (QEMU's user network)"
            ))),
        }
    }
}

impl std::fmt::Display for NetMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetMode::Owned => "owned",
            NetMode::Slirp => "slirp",
        })
    }
}

/// Where the board's Ethernet goes.
#[derive(Clone, Debug)]
pub enum Netdev {
    /// The harness's network listens on this Unix socket.
    Stream(PathBuf),
    /// QEMU's user network; `mqtt-hil splice` to the lane per connection.
    Slirp {
        splice: PathBuf,
        lane: std::net::SocketAddr,
    },
}

pub struct Qemu {
    pub program: PathBuf,
    pub firmware: PathBuf,
    pub flash: PathBuf,
    pub qmp: PathBuf,
    pub netdev: Netdev,
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
        let fwd = match &self.netdev {
            Netdev::Slirp { splice, lane } => format!(
                "user,id={},restrict=on,guestfwd=tcp:{ip}:{port}-cmd:{} splice {lane}",
                crate::net::shell::NETDEV,
                splice.display(),
            ),
            Netdev::Stream(sock) => format!(
                "stream,id={},server=off,addr.type=unix,addr.path={}",
                crate::net::shell::NETDEV,
                sock.display()
            ),
        };
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
    qmp_execute(socket, &format!("{{\"execute\":\"{command}\"}}")).await
}

/// [`qmp_command`] with a whole JSON command (one with arguments).
pub async fn qmp_execute(socket: &Path, json: &str) -> Result<(), String> {
    let command = json;
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
    wr.write_all(format!("{json}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let reply = next().await?;
    if reply.contains("\"return\"") {
        Ok(())
    } else {
        Err(format!("QMP {command} failed: {reply}"))
    }
}

/// Starts the board's network as `fw` asks: the harness's own (a
/// [`crate::net::Network`] listening in `dir`) or QEMU's user network.
pub async fn network(
    fw: &super::Firmware,
    dir: &Path,
    lane: &crate::proxy::Lane,
    recorder: &crate::history::Recorder,
    qmp: &Path,
) -> Result<(Netdev, Option<crate::net::Network>)> {
    match fw.net.mode {
        NetMode::Slirp => Ok((
            Netdev::Slirp {
                splice: fw.splice.clone(),
                lane: lane.addr(),
            },
            None,
        )),
        NetMode::Owned => {
            let socket = dir.join("net.sock");
            let cfg = crate::net::Config {
                seed: crate::net::seed_for(dir),
                broker_port: GUEST_BROKER.1,
                names: fw.net.names.clone(),
                actor: lane.actor().to_string(),
            };
            let net = crate::net::Network::start(
                cfg,
                &socket,
                lane.clone(),
                recorder.clone(),
                qmp.to_path_buf(),
            )
            .await?;
            Ok((Netdev::Stream(socket), Some(net)))
        }
    }
}
