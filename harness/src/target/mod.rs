//! Targets: what plays the scenario's `device`. Every target yields an
//! [`ActorHandle`] driven by the same commands, so the runner and the
//! scenarios do not change between a virtual client, the firmware's host
//! build, an emulated board and a board on a bench.

pub mod autonomous;
pub mod bench;
pub mod host;
pub mod qemu;
pub mod serial;
pub mod supervisor;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::agent::{self, Dial};
use crate::client::actor::{spawn_client, ActorHandle};
use crate::client::{ClientEvent, Command};
use crate::error::{Error, Result};
use crate::history::{EventKind, Recorder};
use crate::scenario::BoardAction;
use supervisor::Control;

/// How long a device may take from start (or reset) to `@ready`, unless
/// [`Firmware::boot_timeout`] says otherwise.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(20);

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

/// Where the device's software comes from.
#[derive(Clone, Debug, Default)]
pub struct Firmware {
    /// The host agent binary (target `host`) or firmware ELF (target `qemu`);
    /// default: the build in `firmware/build/`.
    pub image: Option<PathBuf>,
    /// The repository root, to find default builds.
    pub root: PathBuf,
    /// `mqtt-hil` itself (QEMU's guestfwd runs `mqtt-hil splice`).
    pub splice: PathBuf,
    /// Boot deadline; default [`BOOT_TIMEOUT`].
    pub boot_timeout: Option<Duration>,
    /// The bench the `serial` target's boards are described in.
    pub bench: Option<bench::Bench>,
    /// The emulated board's network (`--net`, `--dns`).
    pub net: crate::net::Options,
}

impl Firmware {
    /// The bench board `--target serial:PORT` names.
    pub fn bench_board(&self, port: &Path) -> Result<&bench::Board> {
        let bench = self.bench.as_ref().ok_or_else(|| {
            Error::Usage(format!(
                "--target serial:{} needs a bench file (--bench FILE) that describes the board: its proxy address and how to reset it (see README, \"Benches\")",
                port.display()
            ))
        })?;
        bench.board(port)
    }
}

/// A started device and the board it runs on.
pub struct Device {
    pub actor: ActorHandle,
    control: Option<mpsc::Sender<Control>>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    boot_timeout: Duration,
    /// The emulated board's own network, when the harness plays it.
    network: Option<crate::net::Network>,
}

impl Device {
    /// Starts the device, which will reach the broker through `lane`.
    pub async fn start(
        spec: &TargetSpec,
        lane_handle: &crate::proxy::Lane,
        recorder: &Recorder,
        dir: &Path,
        fw: &Firmware,
    ) -> Result<Device> {
        let lane: SocketAddr = lane_handle.addr();
        match spec {
            TargetSpec::Virtual => Ok(Device {
                actor: spawn_client("device", lane, recorder.clone()),
                control: None,
                supervisor: None,
                boot_timeout: BOOT_TIMEOUT,
                network: None,
            }),
            TargetSpec::Host => {
                let program = fw
                    .image
                    .clone()
                    .unwrap_or_else(|| host::default_program(&fw.root));
                require_file(&program, "the host agent", "make -C firmware/host agent")?;
                let launch = host::HostAgent {
                    program,
                    store: dir.join("agent-store.bin"),
                };
                let dial = Dial {
                    host: lane.ip().to_string(),
                    port: lane.port(),
                };
                Device::supervised(
                    launch,
                    dial,
                    recorder,
                    fw.boot_timeout.unwrap_or(BOOT_TIMEOUT),
                )
                .await
            }
            TargetSpec::Qemu => {
                let firmware = fw
                    .image
                    .clone()
                    .unwrap_or_else(|| fw.root.join("firmware/build/agent.elf"));
                require_file(&firmware, "the emulated board's firmware", "make firmware")?;
                let flash = dir.join("flash.bin");
                qemu::Qemu::prepare_flash(&flash)?;
                let program = qemu::Qemu::find_program()?;
                let qmp = dir.join("qmp.sock");
                let (netdev, network) = qemu::network(fw, dir, lane_handle, recorder, &qmp).await?;
                let launch = qemu::Qemu {
                    program,
                    firmware,
                    flash,
                    qmp,
                    netdev,
                };
                let (host, port) = qemu::GUEST_BROKER;
                let dial = Dial {
                    host: host.into(),
                    port,
                };
                let mut d = Device::supervised(
                    launch,
                    dial,
                    recorder,
                    fw.boot_timeout.unwrap_or(BOOT_TIMEOUT),
                )
                .await;
                match (&mut d, network) {
                    (Ok(d), n) => d.network = n,
                    (Err(_), Some(n)) => n.shutdown().await,
                    _ => {}
                }
                d
            }
            TargetSpec::Serial(port) => {
                let board = fw.bench_board(port)?.clone();
                let dial = Dial {
                    host: board.dial.0.clone(),
                    port: board.dial.1,
                };
                let what = format!("board {} on {}", board.name, board.port.display());
                let timeout = board
                    .boot_timeout
                    .or(fw.boot_timeout)
                    .unwrap_or(BOOT_TIMEOUT);
                let h = serial::start(board, recorder.clone()).await?;
                let device = Device::attach(h, &what, dial, recorder, timeout).await?;
                device.current_boot(timeout).await;
                Ok(device)
            }
        }
    }

    async fn supervised<L: supervisor::Launch>(
        launch: L,
        dial: Dial,
        recorder: &Recorder,
        boot_timeout: Duration,
    ) -> Result<Device> {
        let what = launch.what().to_string();
        let h = supervisor::start(launch, recorder.clone())
            .map_err(|e| Error::env(e, "check the installation"))?;
        Device::attach(h, &what, dial, recorder, boot_timeout).await
    }

    /// Drives the agent over a started board's lines until its `@ready`.
    async fn attach(
        h: supervisor::Handles,
        what: &str,
        dial: Dial,
        recorder: &Recorder,
        boot_timeout: Duration,
    ) -> Result<Device> {
        let (actor, mut events) = agent::driver::spawn_watched(
            "device",
            dial,
            recorder.clone(),
            h.from_device,
            h.to_device,
        );
        let device = Device {
            actor,
            control: Some(h.control),
            supervisor: Some(h.task),
            boot_timeout,
            network: None,
        };
        match tokio::time::timeout(boot_timeout, wait_ready(&mut events)).await {
            Ok(true) => Ok(device),
            _ => {
                let why = last_board_report(recorder).unwrap_or_else(|| {
                    format!(
                        "{what} printed no @ready within {}; its last output:\n{}",
                        crate::scenario::duration::format(boot_timeout),
                        uart_tail(recorder, 15)
                    )
                });
                device.shutdown().await;
                Err(Error::env(
                    format!("the device did not boot: {why}"),
                    "see the output above; `-v` shows the UART",
                ))
            }
        }
    }

    /// Makes sure the last `@ready` seen is the current boot's. A board on
    /// a port may still have been printing an earlier boot when the harness
    /// reset it (an emulator or a board powered a moment before): that
    /// boot's `@ready` can reach the harness after the reset, and then the
    /// reset's own `@ready`
    /// arrives while the first step's command waits for its answer, which it
    /// cuts short ("restarted before answering"). A command sent after the
    /// reset can only be answered by the boot the reset started, and that
    /// boot prints `@ready` before it reads commands: so once a `status`
    /// is answered without a `@ready` before the answer, the boot that
    /// answered is the one whose `@ready` came last. A `@ready` that cuts
    /// the question short is the reset's; ask again. Bounded by the boot
    /// timeout; on any other error the first step will say what is wrong.
    async fn current_boot(&self, boot_timeout: Duration) {
        let deadline = tokio::time::Instant::now() + boot_timeout;
        loop {
            match self.actor.command(Command::Status, deadline).await {
                Err(e) if e == crate::agent::driver::RESTARTED => continue,
                _ => return,
            }
        }
    }

    /// Resets or power-cycles the board; `deadline` (the step's) bounds
    /// the virtual device's reboot, a board's wait for `@ready` is its
    /// boot timeout.
    pub async fn board(
        &mut self,
        action: BoardAction,
        recorder: &Recorder,
        deadline: tokio::time::Instant,
    ) -> Result<(), String> {
        let Some(control) = &self.control else {
            // The virtual device has no board: a reset is a software reboot.
            let what = match action {
                BoardAction::Reset => "reset",
                BoardAction::PowerCycle => "power_cycle",
            };
            recorder.record(EventKind::Board { what: what.into() });
            // Power loss ends the process that held the connection, so the
            // OS closes it; a reset leaves it half-open (see Reboot).
            if action == BoardAction::PowerCycle {
                self.actor.command(Command::Drop, deadline).await?;
            }
            return self
                .actor
                .command(Command::Reboot, deadline)
                .await
                .map(|_| ());
        };
        let mut events = self.actor.events();
        let (tx, rx) = oneshot::channel();
        let msg = match action {
            BoardAction::Reset => Control::Reset(tx),
            BoardAction::PowerCycle => Control::PowerCycle(tx),
        };
        control
            .send(msg)
            .await
            .map_err(|_| "the board's supervisor is gone".to_string())?;
        rx.await
            .map_err(|_| "the board's supervisor is gone".to_string())??;
        match tokio::time::timeout(self.boot_timeout, wait_ready(&mut events)).await {
            Ok(true) => Ok(()),
            _ => Err(last_board_report(recorder)
                .unwrap_or_else(|| "the device did not print @ready after the reset".into())),
        }
    }

    /// The board's own network, when the harness plays it (target `qemu`
    /// with `--net owned`).
    pub fn network(&self) -> Option<&crate::net::Network> {
        self.network.as_ref()
    }

    pub async fn shutdown(self) {
        self.actor.shutdown().await;
        drop(self.control);
        if let Some(t) = self.supervisor {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(n) = self.network {
            n.shutdown().await;
        }
    }
}

async fn wait_ready(events: &mut tokio::sync::broadcast::Receiver<ClientEvent>) -> bool {
    loop {
        match events.recv().await {
            Ok(ClientEvent::Ready { .. }) => return true,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(_) => return false,
        }
    }
}

fn last_board_report(recorder: &Recorder) -> Option<String> {
    recorder
        .snapshot()
        .events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::Board { what } if what.starts_with("crashed") => Some(what.clone()),
            _ => None,
        })
}

/// The device's last UART lines, for messages about a board that went quiet.
pub(crate) fn uart_tail(recorder: &Recorder, n: usize) -> String {
    let h = recorder.snapshot();
    let lines: Vec<&str> = h
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Uart { line } => Some(line.as_str()),
            _ => None,
        })
        .collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    if tail.is_empty() {
        "    (nothing)".into()
    } else {
        tail.iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn require_file(path: &Path, what: &str, build: &str) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    Err(Error::env(
        format!("{what} is missing: {}", path.display()),
        format!("build it with `{build}`"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &str = "@ready fw=mqtt-hil-agent/0.1 bug=none heap=1 restored=0";

    /// A board on a port whose earlier boot's `@ready` reached the harness
    /// after the harness reset it (seen on the emulated bench under load:
    /// the first step failed with "the device restarted before answering").
    /// Lines only, no port: the fake board prints the stale `@ready`, and the
    /// reset's own `@ready` right after the first command reaches it.
    #[tokio::test]
    async fn an_earlier_boots_ready_does_not_pass_for_the_current_boot() {
        let (line_tx, from_device) = mpsc::channel(16);
        let (to_device, mut line_rx) = mpsc::channel::<String>(16);
        let (control, _control_rx) = mpsc::channel(1);
        tokio::spawn(async move {
            line_tx.send(READY.into()).await.unwrap();
            let first = line_rx.recv().await.unwrap();
            assert!(first.starts_with("status"), "{first}");
            line_tx.send(READY.into()).await.unwrap();
            // The current boot answers everything it is asked.
            while let Some(cmd) = line_rx.recv().await {
                let verb = cmd.split(' ').next().unwrap_or_default().to_string();
                if line_tx.send(format!("@ok {verb}")).await.is_err() {
                    break;
                }
            }
        });
        let h = supervisor::Handles {
            from_device,
            to_device,
            control,
            task: tokio::spawn(async {}),
        };
        let dial = Dial {
            host: "10.0.2.100".into(),
            port: 1883,
        };
        let recorder = Recorder::new();
        let timeout = Duration::from_secs(10);
        let device = Device::attach(h, "a fake board", dial, &recorder, timeout)
            .await
            .unwrap();
        device.current_boot(timeout).await;
        // The first step's command is answered, not cut short.
        let deadline = tokio::time::Instant::now() + timeout;
        let answer = device.actor.command(Command::Status, deadline).await;
        assert!(answer.is_ok(), "{answer:?}");
    }
}
