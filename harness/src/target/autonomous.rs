//! A device that runs its own firmware (a black box): no test agent, no
//! commands. The board is started and supervised as for the agent (resets,
//! power cycles, crash reports with the last output), but its serial output
//! is only logged into the history as UART lines, and nothing is written to
//! it. Everything the harness knows about the device's MQTT client — client
//! id, clean session, keep alive, will — comes from its traffic through the
//! proxy.
//!
//! Targets: `qemu` (the given ELF on the emulated ESP8266, which dials
//! 10.0.2.100:1883 as every image for the board does), `host` (a Linux
//! program, told the broker's address in `MQTT_HIL_BROKER=HOST:PORT`) and
//! `serial:PORT` (a bench board already flashed with the device's firmware,
//! e.g. by `mqtt-hil flash --no-boot-check`; the bench file says where its
//! lane listens, and the board is reset so the run starts with its boot).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::supervisor::{self, Control, Launch};
use super::{qemu, serial, Firmware, TargetSpec};
use crate::error::{Error, Result};
use crate::history::{EventKind, Recorder};
use crate::scenario::BoardAction;

/// A started black-box device.
pub struct AutonomousDevice {
    control: mpsc::Sender<Control>,
    supervisor: tokio::task::JoinHandle<()>,
    uart: tokio::task::JoinHandle<()>,
    network: Option<crate::net::Network>,
}

/// A Linux build of the device's firmware, run as a process.
struct HostProgram {
    program: PathBuf,
    broker: SocketAddr,
}

impl Launch for HostProgram {
    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.program);
        c.env("MQTT_HIL_BROKER", self.broker.to_string());
        c
    }

    fn what(&self) -> &str {
        "the device program"
    }
}

/// A reset the board announces on its UART (the emulated board prints
/// the same lines as a chip): a board event in the history, so traces,
/// expectations (`expect = "board"`) and checks (`no_watchdog_reset`) see
/// it. The soft watchdog is reported by the core's postmortem as it fires;
/// the hardware watchdog prints nothing, and only the ROM's cause line at
/// the next boot (`rst cause:4`) tells of it.
pub fn board_event(line: &str) -> Option<String> {
    let line = line.trim();
    if line == "Soft WDT reset" {
        return Some("watchdog reset (soft WDT)".into());
    }
    if line.starts_with("ets ") && line.contains(",rst cause:4,") {
        return Some("watchdog reset (hw WDT)".into());
    }
    None
}

impl AutonomousDevice {
    /// Boots `fw.image` on the target; it will reach the broker through `lane`.
    pub async fn start(
        spec: &TargetSpec,
        lane: SocketAddr,
        lane_handle: Option<&crate::proxy::Lane>,
        recorder: &Recorder,
        dir: &Path,
        fw: &Firmware,
    ) -> Result<AutonomousDevice> {
        let image = || -> Result<PathBuf> {
            let image = fw.image.clone().ok_or_else(|| {
                Error::env(
                    "the scenario's device is autonomous: it runs your own firmware, and no image was given",
                    "pass --firmware FILE (an ELF for --target qemu, a Linux program for --target host)",
                )
            })?;
            if !image.is_file() {
                return Err(Error::env(
                    format!("the device's firmware is missing: {}", image.display()),
                    "check the --firmware path (the example device is built by `make firmware`)",
                ));
            }
            Ok(image)
        };
        let handles = match spec {
            // The board's own flash holds the firmware; it was flashed
            // beforehand (flashing per scenario would cost minutes).
            TargetSpec::Serial(port) => {
                let board = fw.bench_board(port)?.clone();
                return Ok(AutonomousDevice::watch(
                    serial::start(board, recorder.clone()).await?,
                    recorder,
                ));
            }
            TargetSpec::Qemu => {
                let flash = dir.join("flash.bin");
                qemu::Qemu::prepare_flash(&flash)?;
                let program = qemu::Qemu::find_program()?;
                let firmware = image()?;
                let qmp = dir.join("qmp.sock");
                let lane_handle = lane_handle.ok_or_else(|| {
                    Error::env("the emulated board has no proxy lane", "report this as a bug")
                })?;
                let (netdev, network) =
                    qemu::network(fw, dir, lane_handle, recorder, &qmp).await?;
                let launch = qemu::Qemu {
                    program,
                    firmware,
                    flash,
                    qmp,
                    netdev,
                };
                let h = match supervisor::start(launch, recorder.clone()) {
                    Ok(h) => h,
                    Err(e) => {
                        if let Some(n) = network {
                            n.shutdown().await;
                        }
                        return Err(Error::env(e, "check the installation"));
                    }
                };
                let mut d = AutonomousDevice::watch(h, recorder);
                d.network = network;
                return Ok(d);
            }
            TargetSpec::Host => supervisor::start(
                HostProgram {
                    program: image()?,
                    broker: lane,
                },
                recorder.clone(),
            ),
            other => {
                return Err(Error::env(
                    format!("an autonomous device cannot run on --target {other}"),
                    "use --target qemu (an ELF for the emulated ESP8266), host (a Linux program) or serial:PORT (a flashed bench board)",
                ))
            }
        }
        .map_err(|e| Error::env(e, "check the installation"))?;
        Ok(AutonomousDevice::watch(handles, recorder))
    }

    /// Logs the board's lines; keeps its input open but never writes to it.
    fn watch(handles: supervisor::Handles, recorder: &Recorder) -> AutonomousDevice {
        let mut lines = handles.from_device;
        let rec = recorder.clone();
        let uart = tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                let board = board_event(&line);
                rec.record(EventKind::Uart { line });
                if let Some(what) = board {
                    rec.record(EventKind::Board { what });
                }
            }
        });
        // Nothing is ever written to the device's serial input; dropping the
        // sender would make the supervisor stop, so it lives in the task.
        let to_device = handles.to_device;
        let supervisor = tokio::spawn(async move {
            let _keep = to_device;
            let _ = handles.task.await;
        });
        AutonomousDevice {
            control: handles.control,
            supervisor,
            uart,
            network: None,
        }
    }

    /// Resets or power-cycles the board. There is no `@ready` to wait for:
    /// the step is over when the board has restarted; what the firmware
    /// does next is for the expectations to watch.
    pub async fn board(&self, action: BoardAction) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let msg = match action {
            BoardAction::Reset => Control::Reset(tx),
            BoardAction::PowerCycle => Control::PowerCycle(tx),
        };
        self.control
            .send(msg)
            .await
            .map_err(|_| "the board's supervisor is gone (did the board crash?)".to_string())?;
        rx.await
            .map_err(|_| "the board's supervisor is gone".to_string())?
    }

    /// The board's own network, when the harness plays it.
    pub fn network(&self) -> Option<&crate::net::Network> {
        self.network.as_ref()
    }

    pub async fn shutdown(self) {
        drop(self.control);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.supervisor).await;
        self.uart.abort();
        if let Some(n) = self.network {
            n.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cores_watchdog_line_is_a_board_event() {
        assert_eq!(
            super::board_event("Soft WDT reset\r").as_deref(),
            Some("watchdog reset (soft WDT)")
        );
        assert_eq!(super::board_event("counter: Soft WDT reset soon"), None);
        assert_eq!(
            super::board_event(" ets Jan  8 2013,rst cause:4, boot mode:(3,6)\r").as_deref(),
            Some("watchdog reset (hw WDT)")
        );
        // Other causes (2: reset pin or deep-sleep wake) are not the watchdog.
        assert_eq!(
            super::board_event(" ets Jan  8 2013,rst cause:2, boot mode:(3,6)"),
            None
        );
        assert_eq!(super::board_event("wdt reset"), None);
    }
}
