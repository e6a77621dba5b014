//! Drives a device's agent over lines: one command at a time, each answered
//! by `@ok`/`@err`; events between answers go to the history and to
//! whoever waits on them. The lines come from and go to channels, so the
//! board underneath (a process, QEMU, a serial port) can restart without the
//! driver noticing anything but a fresh `@ready`.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::{parse_line, render_command, DeviceLine, Dial};
use crate::client::actor::{record_event, ActorHandle};
use crate::client::{ClientEvent, Command, Reply};
use crate::history::{EventKind, Recorder};

/// Why a command failed when the agent printed `@ready` before answering it.
pub const RESTARTED: &str = "the device restarted before answering";

/// How long an agent may take to answer a command before the command fails.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

type Request = (Command, oneshot::Sender<Result<Reply, String>>);

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

struct Pending {
    verb: &'static str,
    reply: oneshot::Sender<Result<Reply, String>>,
    deadline: Instant,
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
                    let Some((cmd, reply)) = req else { break };
                    self.send(cmd, reply).await;
                }
                line = lines.recv() => {
                    let Some(line) = line else {
                        self.fail_pending("the device's line closed");
                        break;
                    };
                    self.on_line(&line);
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => {
                    let verb = self.pending.as_ref().map(|p| p.verb).unwrap_or("?");
                    self.fail_pending(&format!("the agent did not answer `{verb}` within {}s", ANSWER_TIMEOUT.as_secs()));
                }
            }
        }
    }

    async fn send(&mut self, cmd: Command, reply: oneshot::Sender<Result<Reply, String>>) {
        let verb = cmd.verb();
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
            deadline: Instant::now() + ANSWER_TIMEOUT,
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
        let (reply, ()) = tokio::join!(actor.command(cmd), device);
        assert_eq!(reply.unwrap().pid, Some(9));
        assert_eq!(events.recv().await.unwrap(), ClientEvent::PubAck(9));
        let h = rec.snapshot();
        assert!(h
            .events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Uart { line } if line == "some debug print")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_agent_fails_the_command_instead_of_hanging() {
        let (_dev_tx, dev_rx) = mpsc::channel(16);
        let (out_tx, _out_rx) = mpsc::channel(16);
        let actor = spawn("device", dial(), Recorder::new(), dev_rx, out_tx);
        let err = actor.command(Command::Disconnect).await.unwrap_err();
        assert!(err.contains("did not answer `disconnect`"), "{err}");
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
        let (reply, ()) = tokio::join!(actor.command(cmd), device);
        let err = reply.unwrap_err();
        assert!(err.contains("not_connected"), "{err}");
    }
}
