//! The `serial` target: a board on a serial port (a USB adapter, or a pty in
//! CI), opened with the serialport crate. The port is read and written by
//! two small threads (serialport is blocking); the bytes become lines in
//! [`uart::LineSplitter`] and go to the same agent driver every target uses.
//! Resets go through the DTR/RTS auto-reset circuit ([`reset`]) or, where
//! the port has no such lines or the bench says so, through the bench's
//! commands (a relay, a switchable hub, or the emulated board's control).

pub mod espflash;
pub mod flash;
pub mod flasher;
pub mod reset;
pub mod uart;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::bench::{Board, ResetVia};
use super::supervisor::{Control, Handles};
use crate::error::{Error, Result};
use crate::history::{EventKind, Recorder};

/// Opens a board's port at `baud`, with errors that say what to check. A
/// busy port gets two seconds to come free: a flasher that was just
/// stopped may still be letting go of it.
pub fn open(port: &Path, baud: u32) -> Result<Box<dyn serialport::SerialPort>> {
    let name = port.to_string_lossy().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match serialport::new(&name, baud)
            .timeout(Duration::from_millis(100))
            .open()
        {
            Ok(p) => return Ok(p),
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(open_error(port, e)),
        }
    }
}

fn is_busy(e: &serialport::Error) -> bool {
    let d = e.description.to_ascii_lowercase();
    d.contains("busy") || d.contains("exclusive lock")
}

/// Maps serialport's errors to what a person at the bench should check.
pub fn open_error(port: &Path, e: serialport::Error) -> Error {
    let p = port.display();
    let busy = is_busy(&e);
    match e.kind {
        serialport::ErrorKind::NoDevice if busy => Error::env(
            format!("serial port {p} is busy: {}", e.description),
            format!("another program has it open (a serial monitor, ModemManager, another mqtt-hil); `fuser -v {p}` shows which"),
        ),
        serialport::ErrorKind::NoDevice
        | serialport::ErrorKind::Io(std::io::ErrorKind::NotFound) => Error::env(
            format!("serial port {p} does not exist ({})", e.description),
            "is the board plugged in, and is this its port? `ls -l /dev/serial/by-id/` lists the adapters",
        ),
        serialport::ErrorKind::Io(std::io::ErrorKind::PermissionDenied) => Error::env(
            format!("no permission to open serial port {p}"),
            "add your user to the `dialout` group (`sudo usermod -aG dialout $USER`, then log in again)",
        ),
        _ if busy => Error::env(
            format!("serial port {p} is busy: {}", e.description),
            format!("another program has it open; `fuser -v {p}` shows which"),
        ),
        _ => Error::env(
            format!("cannot open serial port {p}: {}", e.description),
            "check the port name, the cable and the adapter's driver (`dmesg | tail`)",
        ),
    }
}

/// Work for the thread that owns the port's write side and its lines.
enum PortOp {
    Write(Vec<u8>),
    Lines(&'static [reset::Step], oneshot::Sender<reset::Outcome>),
}

struct PortLines<'a>(pub(crate) &'a mut dyn serialport::SerialPort);

impl reset::ControlLines for PortLines<'_> {
    fn set_dtr(&mut self, on: bool) -> std::io::Result<()> {
        self.0
            .write_data_terminal_ready(on)
            .map_err(std::io::Error::from)
    }
    fn set_rts(&mut self, on: bool) -> std::io::Result<()> {
        self.0
            .write_request_to_send(on)
            .map_err(std::io::Error::from)
    }
}

/// Opens the board's port, resets the board (so the next `@ready` is
/// fresh) and returns the same handles a supervised process gives.
pub async fn start(board: Board, recorder: Recorder) -> Result<Handles> {
    let port = open(&board.port, board.baud)?;
    // What the board printed before we opened the port (a boot long ago,
    // its @ready included) must not pass for the coming boot: drop it
    // before the reader thread can see it.
    let _ = port.clear(serialport::ClearBuffer::Input);
    let reader = port.try_clone().map_err(|e| open_error(&board.port, e))?;
    let (ops, ops_rx) = std::sync::mpsc::channel::<PortOp>();
    let (bytes_tx, bytes) = mpsc::channel::<std::io::Result<Vec<u8>>>(256);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads = vec![
        spawn_writer(port, ops_rx),
        spawn_reader(reader, bytes_tx, stop.clone()),
    ];
    let (line_tx, from_device) = mpsc::channel(1024);
    let (to_device, line_rx) = mpsc::channel::<String>(64);
    let (control, control_rx) = mpsc::channel(8);
    let mut link = Link {
        board,
        recorder,
        ops,
        lines_ok: true,
        line_tx,
        splitter: uart::LineSplitter::new(),
        tail: VecDeque::new(),
        stop,
        threads,
    };
    // Released lines let a board held in reset (or in the ROM loader by a
    // previous flasher) run; then a reset so that what follows is one boot.
    link.lines(reset::RELEASE).await;
    link.reset().await.map_err(|e| {
        Error::env(
            format!("resetting board {}: {e}", link.board.name),
            "check the bench file's reset settings",
        )
    })?;
    // Nothing read so far is dropped here: what has arrived when the reset
    // command returns may be an earlier boot's tail (a boot still printing
    // when we opened the port) or already the new boot's `@ready` (under
    // load the command's process can take longer than the boot), so
    // draining it lost the new `@ready`, whole or in part, as often as it
    // removed a stale one. Which `@ready` is the current boot's is settled
    // by a round trip instead (`Device::current_boot`).
    link.recorder.record(EventKind::Board {
        what: "booted".into(),
    });
    let task = tokio::spawn(link.run(bytes, line_rx, control_rx));
    Ok(Handles {
        from_device,
        to_device,
        control,
        task,
    })
}

fn spawn_writer(
    mut port: Box<dyn serialport::SerialPort>,
    ops: std::sync::mpsc::Receiver<PortOp>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while let Ok(op) = ops.recv() {
            match op {
                PortOp::Write(b) => {
                    let _ = port.write_all(&b).and_then(|_| port.flush());
                }
                PortOp::Lines(steps, reply) => {
                    let _ = reply.send(reset::run(&mut PortLines(port.as_mut()), steps));
                }
            }
        }
    })
}

fn spawn_reader(
    mut port: Box<dyn serialport::SerialPort>,
    tx: mpsc::Sender<std::io::Result<Vec<u8>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match port.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(5)),
                Ok(n) => {
                    if tx.blocking_send(Ok(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    })
}

/// The async side of one open port.
struct Link {
    board: Board,
    recorder: Recorder,
    ops: std::sync::mpsc::Sender<PortOp>,
    /// False once the port answered that it has no DTR/RTS.
    lines_ok: bool,
    line_tx: mpsc::Sender<String>,
    splitter: uart::LineSplitter,
    tail: VecDeque<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Writer and reader: joined on close, so the port is closed (and free
    /// for the next scenario, exclusive opens included) when the task ends.
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Link {
    async fn lines(&mut self, steps: &'static [reset::Step]) -> reset::Outcome {
        if !self.lines_ok {
            return reset::Outcome::NoLines;
        }
        let (tx, rx) = oneshot::channel();
        if self.ops.send(PortOp::Lines(steps, tx)).is_err() {
            return reset::Outcome::Failed("the port is closed".into());
        }
        let r = rx
            .await
            .unwrap_or(reset::Outcome::Failed("the port is closed".into()));
        if r == reset::Outcome::NoLines {
            self.lines_ok = false;
        }
        r
    }

    /// Reset through the lines if the bench wants them and the port has
    /// them, else through the bench's reset command.
    async fn reset(&mut self) -> Result<(), String> {
        self.splitter.reset();
        if self.board.reset == ResetVia::Lines {
            match self.lines(reset::RUN).await {
                reset::Outcome::Done => return Ok(()),
                reset::Outcome::Failed(e) => {
                    return Err(format!(
                        "setting DTR/RTS on {} failed: {e}",
                        self.board.port.display()
                    ))
                }
                reset::Outcome::NoLines => {}
            }
        }
        match self.board.reset_command.clone() {
            Some(cmd) => run_command(&cmd, "reset_command").await,
            None => Err(format!(
                "{} has no DTR/RTS lines (a pty, or an adapter without them) and board `{}` has no `reset_command` in the bench file",
                self.board.port.display(),
                self.board.name
            )),
        }
    }

    async fn power_cycle(&mut self) -> Result<(), String> {
        self.splitter.reset();
        match self.board.power_command.clone() {
            Some(cmd) => run_command(&cmd, "power_command").await,
            None => {
                // A reset loses RAM just as a power cut does; flash survives
                // both. Say so in the history rather than pretend.
                self.recorder.record(EventKind::Board {
                    what: "power_cycle done as a reset: the bench has no power_command".into(),
                });
                self.reset().await
            }
        }
    }

    async fn run(
        mut self,
        mut bytes: mpsc::Receiver<std::io::Result<Vec<u8>>>,
        mut to_device: mpsc::Receiver<String>,
        mut control: mpsc::Receiver<Control>,
    ) {
        'run: loop {
            tokio::select! {
                b = bytes.recv() => match b {
                    Some(Ok(b)) => {
                        for line in self.splitter.push(&b) {
                            self.tail.push_back(line.clone());
                            if self.tail.len() > 20 {
                                self.tail.pop_front();
                            }
                            if self.line_tx.send(line).await.is_err() {
                                break 'run;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        self.crashed(format!("reading serial port {} failed: {e}", self.board.port.display()));
                        break 'run;
                    }
                    None => {
                        self.crashed(format!("serial port {} closed", self.board.port.display()));
                        break 'run;
                    }
                },
                line = to_device.recv() => {
                    let Some(line) = line else { break 'run };
                    let mut b = line.into_bytes();
                    b.push(b'\n');
                    let _ = self.ops.send(PortOp::Write(b));
                }
                ctl = control.recv() => match ctl {
                    Some(Control::Reset(reply)) => {
                        self.recorder.record(EventKind::Board { what: "reset".into() });
                        let r = self.reset().await;
                        let _ = reply.send(r);
                    }
                    Some(Control::PowerCycle(reply)) => {
                        self.recorder.record(EventKind::Board { what: "power_cycle".into() });
                        let r = self.power_cycle().await;
                        let _ = reply.send(r);
                    }
                    None => break 'run,
                },
            }
        }
        drop(bytes);
        self.close().await;
    }

    async fn close(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let Link { ops, threads, .. } = self;
        drop(ops);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }

    fn crashed(&self, why: String) {
        let mut report = format!("{why}; its last output:");
        for l in &self.tail {
            report.push_str("\n    ");
            report.push_str(l);
        }
        self.recorder.record(EventKind::Board {
            what: format!("crashed: {report}"),
        });
    }
}

/// Runs one bench command (`sh -c`), bounded in time; its output is part of
/// the error when it fails.
pub async fn run_command(cmd: &str, what: &str) -> Result<(), String> {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c").arg(cmd).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), c.output())
        .await
        .map_err(|_| format!("{what} `{cmd}` did not finish within 30s"))?
        .map_err(|e| format!("{what} `{cmd}` could not start: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} `{cmd}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
