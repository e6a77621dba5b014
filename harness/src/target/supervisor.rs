//! Keeps a device's process (the host agent, or QEMU running the firmware)
//! alive for the agent driver: pumps its serial lines both ways, restarts it
//! when the board reboots, resets or loses power, and reports a crash with
//! the process's last output. The driver only ever sees two line channels.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

use crate::history::{EventKind, Recorder};
use crate::process;

/// Exit status with which the host agent asks to be restarted (`reboot`).
pub const REBOOT_EXIT: i32 = 75;

/// A reset in progress (e.g. a QMP round trip).
pub type WarmReset<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

/// How to start the device's process, and how it resets.
pub trait Launch: Send + 'static {
    fn command(&self) -> Command;
    /// What to name the process in messages ("QEMU", "host agent").
    fn what(&self) -> &str;
    /// A warm reset without killing the process (QEMU's system_reset);
    /// `None` means the board resets by restarting the process.
    fn warm_reset(&self) -> Option<WarmReset<'_>> {
        None
    }
    /// Files to show, besides stderr, when the process dies (e.g. a log).
    fn diagnostics(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

#[derive(Debug)]
pub enum Control {
    Reset(oneshot::Sender<Result<(), String>>),
    PowerCycle(oneshot::Sender<Result<(), String>>),
}

/// The supervisor's ends: lines from the device, lines to it, control.
pub struct Handles {
    pub from_device: mpsc::Receiver<String>,
    pub to_device: mpsc::Sender<String>,
    pub control: mpsc::Sender<Control>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the process and waits for nothing: the caller waits for `@ready`.
pub fn start<L: Launch>(launch: L, recorder: Recorder) -> Result<Handles, String> {
    let (line_tx, from_device) = mpsc::channel(1024);
    let (to_device, line_rx) = mpsc::channel::<String>(64);
    let (control, control_rx) = mpsc::channel(8);
    let mut sup = Supervisor {
        launch,
        recorder,
        line_tx,
        child: None,
        stdin: None,
        tail: VecDeque::new(),
    };
    let lines = sup.spawn()?;
    let task = tokio::spawn(sup.run(lines, line_rx, control_rx));
    Ok(Handles {
        from_device,
        to_device,
        control,
        task,
    })
}

struct Supervisor<L: Launch> {
    launch: L,
    recorder: Recorder,
    line_tx: mpsc::Sender<String>,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Last lines of output, for crash reports.
    tail: VecDeque<String>,
}

type Lines = mpsc::Receiver<String>;

impl<L: Launch> Supervisor<L> {
    fn spawn(&mut self) -> Result<Lines, String> {
        let mut cmd = self.launch.command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        process::guard(&mut cmd);
        cmd.stdin(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.launch.what()))?;
        self.stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel(1024);
        // stdout and stderr both feed one line stream; stderr lines are
        // marked so they never parse as agent protocol.
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(out);
                let mut buf = Vec::new();
                while r.read_until(b'\n', &mut buf).await.unwrap_or(0) > 0 {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\r', '\n'])
                        .to_string();
                    buf.clear();
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(async move {
                let mut r = BufReader::new(err).lines();
                while let Ok(Some(l)) = r.next_line().await {
                    if tx.send(format!("[stderr] {l}")).await.is_err() {
                        break;
                    }
                }
            });
        }
        self.child = Some(child);
        Ok(rx)
    }

    async fn kill(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            process::kill(&mut c).await;
        }
    }

    async fn restart(&mut self, lines: &mut Lines) -> Result<(), String> {
        self.kill().await;
        *lines = self.spawn()?;
        Ok(())
    }

    fn board(&self, what: String) {
        self.recorder.record(EventKind::Board { what });
    }

    async fn run(
        mut self,
        mut lines: Lines,
        mut to_device: mpsc::Receiver<String>,
        mut control: mpsc::Receiver<Control>,
    ) {
        self.board("booted".into());
        loop {
            tokio::select! {
                line = lines.recv() => match line {
                    Some(l) => {
                        self.tail.push_back(l.clone());
                        if self.tail.len() > 20 {
                            self.tail.pop_front();
                        }
                        if self.line_tx.send(l).await.is_err() {
                            break;
                        }
                    }
                    None => {
                        // Output closed: the process ended. Why?
                        let status = match self.child.as_mut() {
                            Some(c) => tokio::time::timeout(Duration::from_secs(2), c.wait()).await.ok().and_then(|r| r.ok()),
                            None => None,
                        };
                        if status.and_then(|s| s.code()) == Some(REBOOT_EXIT) {
                            self.board("reboot".into());
                            match self.restart(&mut lines).await {
                                Ok(()) => continue,
                                Err(e) => { self.crashed(e); break; }
                            }
                        }
                        let why = match status {
                            Some(s) => format!("{} exited ({s})", self.launch.what()),
                            None => format!("{} closed its output", self.launch.what()),
                        };
                        self.crashed(why);
                        break;
                    }
                },
                line = to_device.recv() => {
                    let Some(line) = line else { break };
                    if let Some(stdin) = self.stdin.as_mut() {
                        let mut bytes = line.into_bytes();
                        bytes.push(b'\n');
                        // A write to a dead process shows up as closed output.
                        let _ = stdin.write_all(&bytes).await;
                        let _ = stdin.flush().await;
                    }
                }
                ctl = control.recv() => match ctl {
                    Some(Control::Reset(reply)) => {
                        self.board("reset".into());
                        let warm = match self.launch.warm_reset() {
                            Some(fut) => Some(fut.await),
                            None => None,
                        };
                        let r = match warm {
                            Some(r) => r,
                            None => self.restart(&mut lines).await,
                        };
                        let _ = reply.send(r);
                    }
                    Some(Control::PowerCycle(reply)) => {
                        self.board("power_cycle".into());
                        let r = self.restart(&mut lines).await;
                        let _ = reply.send(r);
                    }
                    None => break,
                },
            }
        }
        self.kill().await;
    }

    fn crashed(&self, why: String) {
        let mut report = format!("{why}; its last output:");
        for l in &self.tail {
            report.push_str("\n    ");
            report.push_str(l);
        }
        for f in self.launch.diagnostics() {
            if let Ok(text) = std::fs::read_to_string(&f) {
                let lines: Vec<&str> = text.lines().collect();
                report.push_str(&format!("\n  {}:", f.display()));
                for l in &lines[lines.len().saturating_sub(10)..] {
                    report.push_str("\n    ");
                    report.push_str(l);
                }
            }
        }
        self.board(format!("crashed: {report}"));
    }
}
