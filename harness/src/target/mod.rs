//! Targets: what plays the scenario's `device`. Every target yields an
//! [`ActorHandle`] driven by the same commands, so the runner and the
//! scenarios do not change between a virtual client, the firmware's host
//! build, an emulated board and a board on a bench.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::client::actor::{spawn_client, ActorHandle};
use crate::error::{Error, Result};
use crate::history::{EventKind, Recorder};
use crate::scenario::BoardAction;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// A harness-side MQTT client plays the device.
    Virtual,
    /// The firmware's agent built for Linux, run as a process.
    Host,
    /// The firmware on the emulated ESP8266 (QEMU lx106).
    Qemu,
    /// A real board on a serial port.
    Serial(PathBuf),
}

impl std::str::FromStr for TargetSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<TargetSpec> {
        match s {
            "virtual" => Ok(TargetSpec::Virtual),
            "host" => Ok(TargetSpec::Host),
            "qemu" => Ok(TargetSpec::Qemu),
            _ => match s.strip_prefix("serial:") {
                Some(port) if !port.is_empty() => Ok(TargetSpec::Serial(port.into())),
                _ => Err(Error::Usage(format!(
                    "unknown target `{s}`: use virtual, host, qemu or serial:PORT"
                ))),
            },
        }
    }
}

impl std::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetSpec::Virtual => f.write_str("virtual"),
            TargetSpec::Host => f.write_str("host"),
            TargetSpec::Qemu => f.write_str("qemu"),
            TargetSpec::Serial(p) => write!(f, "serial:{}", p.display()),
        }
    }
}

/// A started device and the board it runs on.
pub struct Device {
    pub actor: ActorHandle,
    board: Board,
}

enum Board {
    /// No board: resets are software reboots of the virtual client.
    None,
}

impl Device {
    /// Starts the device, which will reach the broker through `lane`.
    pub async fn start(spec: &TargetSpec, lane: SocketAddr, recorder: &Recorder) -> Result<Device> {
        match spec {
            TargetSpec::Virtual => Ok(Device {
                actor: spawn_client("device", lane, recorder.clone()),
                board: Board::None,
            }),
            other => Err(Error::env(
                format!("target `{other}` is not available in this build"),
                "use --target virtual",
            )),
        }
    }

    pub async fn board(&mut self, action: BoardAction, recorder: &Recorder) -> Result<(), String> {
        match self.board {
            Board::None => {
                let what = match action {
                    BoardAction::Reset => "reset",
                    BoardAction::PowerCycle => "power_cycle",
                };
                recorder.record(EventKind::Board { what: what.into() });
                self.actor.command(crate::client::Command::Reboot).await.map(|_| ())
            }
        }
    }

    pub async fn shutdown(self) {
        self.actor.shutdown().await;
    }
}
