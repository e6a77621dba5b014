//! Drives a device's agent over lines: one command at a time, each answered
//! by `@ok`/`@err`; events between answers go to the history and to
//! whoever waits on them. The lines come from and go to channels, so the
//! board underneath (a process, QEMU, a serial port) can restart without the
//! driver noticing anything but a fresh `@ready`.

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::{parse_line, render_command, DeviceLine, Dial};
use crate::client::actor::{record_event, ActorHandle, Request};
use crate::client::{ClientEvent, Command, Reply};
use crate::history::{EventKind, Recorder};

/// Why a command failed when the agent printed `@ready` before answering it.
pub const RESTARTED: &str = "the device restarted before answering";

/// Starts the driver. `from_device` yields the device's lines (without
/// newline); `to_device` takes lines to write (the board adds the newline).
pub fn spawn(
    name: &str,
    dial: Dial,
    recorder: Recorder,
    from_device: mpsc::Receiver<String>,
    to_device: mpsc::Sender<String>,
) -> ActorHandle {
    spawn_watched(name, dial, recorder, from_device, to_device).0
}

/// Like [`spawn`], with a receiver of the driver's events that exists before
/// the first line is read: a fast device's `@ready` cannot slip past it.
pub fn spawn_watched(
    name: &str,
    dial: Dial,
    recorder: Recorder,
    from_device: mpsc::Receiver<String>,
    to_device: mpsc::Sender<String>,
) -> (ActorHandle, broadcast::Receiver<ClientEvent>) {
    let (tx, rx) = mpsc::channel(64);
    let (events, first) = broadcast::channel(1024);
    let driver = Driver {
        name: name.to_string(),
        dial,
        recorder,
        events: events.clone(),
        to_device,
        pending: None,
    };
    let task = tokio::spawn(driver.run(rx, from_device));
    (ActorHandle::from_parts(name, tx, events, task), first)
}

/// The command sent and not yet answered. Its answer is waited for until
/// the caller's deadline (the step's), not a fixed time of the driver's
/// own: on a loaded machine a board's answer comes late but in time for
/// the step, and a fixed cut shorter than the step failed such steps.
struct Pending {
    verb: &'static str,
    reply: oneshot::Sender<Result<Reply, String>>,
    sent: Instant,
    deadline: Instant,
    /// Lines the device printed since the command, and the last of them:
    /// what it did instead of answering, for the failure's message.
    heard: usize,
    last: Option<String>,
}

impl Pending {
    fn silence(&self) -> String {
        let waited =
            crate::scenario::duration::format(self.deadline.saturating_duration_since(self.sent));
        let did = match (&self.last, self.heard) {
            (None, _) => "it printed nothing since".to_string(),
            (Some(l), 1) => format!("it printed one line since: `{}`", clip(l)),
            (Some(l), n) => format!("it printed {n} lines since, the last `{}`", clip(l)),
        };
        format!(
            "the agent did not answer `{}` in the {waited} it had, up to the deadline ({did})",
            self.verb
        )
    }
}

/// A device line short enough for a one-line message.
fn clip(line: &str) -> String {
    const MAX: usize = 120;
    match line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

struct Driver {
    name: String,
    dial: Dial,
    recorder: Recorder,
    events: broadcast::Sender<ClientEvent>,
    to_device: mpsc::Sender<String>,
    pending: Option<Pending>,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Request>,
        mut lines: mpsc::Receiver<String>,
    ) {
        loop {
            let deadline = self.pending.as_ref().map(|p| p.deadline);
            tokio::select! {
                req = commands.recv(), if self.pending.is_none() => {
                    let Some(Request { cmd, deadline, reply }) = req else { break };
                    self.send(cmd, deadline, reply).await;
                }
                line = lines.recv() => {
                    let Some(line) = line else {
                        self.fail_pending("the device's line closed");
                        break;
                    };
                    if let Some(p) = &mut self.pending {
                        p.heard += 1;
                        p.last = Some(line.clone());
                    }
                    self.on_line(&line);
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => {
                    if let Some(p) = self.pending.take() {
                        let why = p.silence();
                        let _ = p.reply.send(Err(why));
                    }
                }
            }
        }
    }

    async fn send(
        &mut self,
        cmd: Command,
        deadline: Instant,
        reply: oneshot::Sender<Result<Reply, String>>,
    ) {
        let verb = cmd.verb();
        // A command whose caller has stopped waiting is not sent: its
        // answer would arrive unasked, under the next command.
        if Instant::now() >= deadline {
            let _ = reply.send(Err(format!(
                "`{verb}` was not sent: its deadline had passed"
            )));
            return;
        }
        let Some(line) = render_command(&cmd, &self.dial) else {
            let _ = reply.send(Err(format!(
                "the agent protocol has no `{verb}` like this (hand-built raw packets, several filters in one SUBSCRIBE, DISCONNECT properties and ack/ping control are not in it): this action works only with observers and the virtual device"
            )));
            return;
        };
        if self.to_device.send(line).await.is_err() {
            let _ = reply.send(Err("the device is gone".into()));
            return;
        }
        self.pending = Some(Pending {
            verb,
            reply,
            sent: Instant::now(),
            deadline,
            heard: 0,
            last: None,
        });
    }

    fn fail_pending(&mut self, why: &str) {
        if let Some(p) = self.pending.take() {
            let _ = p.reply.send(Err(why.to_string()));
        }
    }

    fn on_line(&mut self, line: &str) {
        match parse_line(line) {
            DeviceLine::Ok { verb, fields } => match self.pending.take() {
                Some(p) if p.verb == verb => {
                    if verb == "connect" {
                        let ev = ClientEvent::Connecting;
                        record_event(&self.recorder, &self.name, &ev);
                        let _ = self.events.send(ev);
                    }
                    let pid = fields
                        .get("pid")
                        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                        .filter(|p| *p != 0);
                    let _ = p.reply.send(Ok(Reply { pid }));
                }
                other => {
                    self.pending = other;
                    self.anomaly(format!("unexpected answer `{line}`"));
                }
            },
            DeviceLine::Err { verb, reason } => match self.pending.take() {
                Some(p) if p.verb == verb || verb == "?" => {
                    let _ = p
                        .reply
                        .send(Err(format!("the agent refused `{verb}`: {reason}")));
                }
                other => {
                    self.pending = other;
                    self.anomaly(format!("unexpected answer `{line}`"));
                }
            },
            DeviceLine::Event(ev) => {
                if matches!(ev, ClientEvent::Ready { .. }) {
                    // A restart answers nothing that was in flight, except
                    // the reboot itself, which the agent acknowledges first.
                    self.fail_pending(RESTARTED);
                }
                record_event(&self.recorder, &self.name, &ev);
                let _ = self.events.send(ev);
            }
            DeviceLine::Log(msg) => {
                self.recorder.record(EventKind::Uart {
                    line: format!("@log {msg}"),
                });
            }
            DeviceLine::Noise(text) => {
                self.recorder.record(EventKind::Uart { line: text });
            }
            DeviceLine::Bad { line, why } => {
                self.anomaly(format!("bad agent line `{line}`: {why}"))
            }
        }
    }

    fn anomaly(&self, what: String) {
        let ev = ClientEvent::Anomaly(what);
        record_event(&self.recorder, &self.name, &ev);
        let _ = self.events.send(ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::QoS;
    use std::time::Duration;

    /// A step's deadline, as the runner gives its commands.
    fn in_secs(s: u64) -> Instant {
        Instant::now() + Duration::from_secs(s)
    }

    fn dial() -> Dial {
        Dial {
            host: "127.0.0.1".into(),
            port: 1,
        }
    }

    #[tokio::test]
    async fn commands_wait_for_their_answer_and_events_flow_meanwhile() {
        let rec = Recorder::new();
        let (dev_tx, dev_rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(16);
        let actor = spawn("device", dial(), rec.clone(), dev_rx, out_tx);
        let mut events = actor.events();
        let cmd = Command::Publish {
            topic: "t".into(),
            payload: bytes::Bytes::from_static(b"x y"),
            qos: QoS::AtLeastOnce,
            retain: false,
            pid: None,
            properties: Default::default(),
            raw: false,
        };
        let device = async {
            let sent = out_rx.recv().await.unwrap();
            assert_eq!(sent, "publish topic=t qos=1 retain=0 payload=x%20y");
            dev_tx.send("@puback pid=9".into()).await.unwrap();
            dev_tx.send("some debug print".into()).await.unwrap();
            dev_tx.send("@ok publish pid=9".into()).await.unwrap();
        };
        let (reply, ()) = tokio::join!(actor.command(cmd, in_secs(10)), device);
        assert_eq!(reply.unwrap().pid, Some(9));
        assert_eq!(events.recv().await.unwrap(), ClientEvent::PubAck(9));
        let h = rec.snapshot();
        assert!(h
            .events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Uart { line } if line == "some debug print")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_agent_fails_the_command_at_its_deadline_instead_of_hanging() {
        let (_dev_tx, dev_rx) = mpsc::channel(16);
        let (out_tx, _out_rx) = mpsc::channel(16);
        let actor = spawn("device", dial(), Recorder::new(), dev_rx, out_tx);
        let start = Instant::now();
        let err = actor
            .command(Command::Disconnect, in_secs(10))
            .await
            .unwrap_err();
        // Paused time: the clock moves only to the next timer, so this
        // says which deadline ended the wait, not how fast the machine is.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
            "{waited:?}"
        );
        assert!(
            err.contains("did not answer `disconnect` in the 10s it had")
                && err.contains("it printed nothing since"),
            "{err}"
        );
    }

    /// On a loaded machine a board answers late, still in time for the
    /// step: the driver waits as long as the step does (a fixed 5 s of its
    /// own failed such steps).
    #[tokio::test(start_paused = true)]
    async fn a_late_answer_inside_the_step_deadline_is_taken() {
        let (dev_tx, dev_rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(16);
        let actor = spawn("device", dial(), Recorder::new(), dev_rx, out_tx);
        let device = async {
            assert_eq!(out_rx.recv().await.unwrap(), "disconnect");
            tokio::time::sleep(Duration::from_secs(6)).await;
            dev_tx.send("@ok disconnect".into()).await.unwrap();
        };
        let (reply, ()) = tokio::join!(actor.command(Command::Disconnect, in_secs(10)), device);
        assert!(reply.is_ok(), "{reply:?}");
    }

    /// What the agent printed instead of answering is in the failure.
    #[tokio::test(start_paused = true)]
    async fn a_failure_says_what_the_agent_printed_instead_of_answering() {
        let (dev_tx, dev_rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(16);
        let actor = spawn("device", dial(), Recorder::new(), dev_rx, out_tx);
        let device = async {
            out_rx.recv().await.unwrap();
            dev_tx
                .send("@log lwip: tcp_write ERR_MEM".into())
                .await
                .unwrap();
            dev_tx.send("stack smashed".into()).await.unwrap();
        };
        let (reply, ()) = tokio::join!(actor.command(Command::Disconnect, in_secs(3)), device);
        let err = reply.unwrap_err();
        assert!(
            err.contains("in the 3s it had")
                && err.contains("it printed 2 lines since, the last `stack smashed`"),
            "{err}"
        );
    }

    /// A caller that has stopped waiting gets no command sent on its
    /// behalf: the answer would come unasked, under the next command.
    #[tokio::test(start_paused = true)]
    async fn a_command_past_its_deadline_is_not_sent() {
        let (_dev_tx, dev_rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(16);
        let actor = spawn("device", dial(), Recorder::new(), dev_rx, out_tx);
        let err = actor
            .command(Command::Disconnect, Instant::now())
            .await
            .unwrap_err();
        assert!(err.contains("not sent"), "{err}");
        assert!(out_rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn agent_errors_are_reported_with_their_reason() {
        let (dev_tx, dev_rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(16);
        let actor = spawn("device", dial(), Recorder::new(), dev_rx, out_tx);
        let device = async {
            assert_eq!(out_rx.recv().await.unwrap(), "subscribe filter=a/# qos=2");
            dev_tx
                .send("@err subscribe reason=not_connected".into())
                .await
                .unwrap();
        };
        let cmd = Command::Subscribe(vec![("a/#".into(), QoS::ExactlyOnce)]);
        let (reply, ()) = tokio::join!(actor.command(cmd, in_secs(10)), device);
        let err = reply.unwrap_err();
        assert!(err.contains("not_connected"), "{err}");
    }
}
