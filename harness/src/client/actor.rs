//! The tokio shell around [`Session`]: owns the TCP connection, feeds the
//! state machine, writes what it asks, and reports events to the history and
//! to whoever waits on them. It is also the `virtual` device.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::session::Wire;
use super::{ClientEvent, Command, ConnectOptions, Reconnect, Reply, Session};
use crate::history::{EventKind, Recorder};
use crate::mqtt::codec::{self, Decoder};
use crate::mqtt::PacketType;

/// A command for an actor, with when its answer is due.
pub struct Request {
    pub cmd: Command,
    /// When the caller stops waiting (the step's deadline, inside the
    /// scenario's timeout): an actor whose answer waits on a peer (the
    /// agent driver on its board) fails the command then, saying so.
    pub deadline: Instant,
    pub reply: oneshot::Sender<Result<Reply, String>>,
}

/// A running actor (device or observer), driven by [`Command`]s.
pub struct ActorHandle {
    name: String,
    tx: mpsc::Sender<Request>,
    events: broadcast::Sender<ClientEvent>,
    task: Option<JoinHandle<()>>,
}

impl ActorHandle {
    /// Wraps an actor implemented elsewhere (the firmware agent driver).
    pub fn from_parts(
        name: &str,
        tx: mpsc::Sender<Request>,
        events: broadcast::Sender<ClientEvent>,
        task: JoinHandle<()>,
    ) -> ActorHandle {
        ActorHandle {
            name: name.to_string(),
            tx,
            events,
            task: Some(task),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends a command and waits for its answer, until `deadline` at the
    /// latest (see [`Request::deadline`]).
    pub async fn command(&self, cmd: Command, deadline: Instant) -> Result<Reply, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                cmd,
                deadline,
                reply,
            })
            .await
            .map_err(|_| format!("{} is no longer running", self.name))?;
        rx.await
            .map_err(|_| format!("{} stopped before answering", self.name))?
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.events.subscribe()
    }

    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for ActorHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Records a client event into the history under the actor's name.
pub fn record_event(recorder: &Recorder, actor: &str, ev: &ClientEvent) {
    let kind = match ev {
        ClientEvent::Delivered(msg) => EventKind::Delivered {
            actor: actor.to_string(),
            msg: msg.clone(),
        },
        other => EventKind::Actor {
            actor: actor.to_string(),
            what: describe(other),
        },
    };
    recorder.record(kind);
}

/// One-line description of a client event, as the agent protocol would say it.
pub fn describe(ev: &ClientEvent) -> String {
    match ev {
        ClientEvent::Connected { session_present } => {
            format!("connected sp={}", *session_present as u8)
        }
        ClientEvent::Refused { code } => format!("connack rc={code}"),
        ClientEvent::Delivered(m) => format!(
            "msg topic={} qos={} dup={} retain={}",
            m.topic,
            m.qos.as_u8(),
            m.dup as u8,
            m.retain as u8
        ),
        ClientEvent::PubAck(p) => format!("puback pid={p}"),
        ClientEvent::PubRec(p) => format!("pubrec pid={p}"),
        ClientEvent::PubComp(p) => format!("pubcomp pid={p}"),
        ClientEvent::SubAck { pid, codes } => format!(
            "suback pid={pid} granted={}",
            codes
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        ClientEvent::UnsubAck(p) => format!("unsuback pid={p}"),
        ClientEvent::ServerDisconnect { code } => format!("server disconnect rc={code}"),
        ClientEvent::Anomaly(s) => format!("anomaly {s}"),
        ClientEvent::Disconnected { reason } => format!("disconnected reason={reason}"),
        ClientEvent::Ready { info } => format!("ready {info}"),
        ClientEvent::Connecting => "connecting".into(),
    }
}

/// Starts a harness-side client that connects to `addr` (its proxy lane).
pub fn spawn_client(name: &str, addr: SocketAddr, recorder: Recorder) -> ActorHandle {
    let (tx, rx) = mpsc::channel(64);
    let (events, _) = broadcast::channel(1024);
    let shell = Shell {
        name: name.to_string(),
        addr,
        recorder,
        events: events.clone(),
        session: Session::new(ConnectOptions::new(name)),
        start: Instant::now(),
        conn: None,
        reconnect: None,
        backoff: Duration::ZERO,
        retry_at: None,
        zombies: Vec::new(),
    };
    let task = tokio::spawn(shell.run(rx));
    ActorHandle::from_parts(name, tx, events, task)
}

struct Conn {
    stream: TcpStream,
    decoder: Decoder,
}

struct Shell {
    name: String,
    addr: SocketAddr,
    recorder: Recorder,
    events: broadcast::Sender<ClientEvent>,
    session: Session,
    start: Instant,
    conn: Option<Conn>,
    reconnect: Option<Reconnect>,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// Connections abandoned by a reboot, left for the broker to time out.
    zombies: Vec<TcpStream>,
}

impl Shell {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let tick_at = self
                .session
                .next_tick()
                .map(|d| self.start + d)
                .into_iter()
                .chain(self.retry_at)
                .min();
            let sleep = async {
                match tick_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                req = rx.recv() => {
                    // Answered from the session's own state and loopback
                    // I/O, without waiting on a peer: no deadline to keep.
                    let Some(Request { cmd, reply, .. }) = req else { break };
                    let result = self.handle(cmd).await;
                    let _ = reply.send(result);
                }
                n = read_some(&mut self.conn, &mut buf) => {
                    match n {
                        Ok(0) => self.lost("peer_closed").await,
                        Ok(n) => self.on_bytes(&buf[..n]).await,
                        Err(e) => self.lost(&format!("io_error ({e})")).await,
                    }
                }
                _ = sleep => {
                    if self.retry_at.is_some_and(|t| t <= Instant::now()) {
                        self.retry_at = None;
                        self.open().await;
                    }
                    let now = self.now();
                    if self.session.ping_overdue(now) {
                        self.lost("keepalive_timeout").await;
                    } else {
                        self.session.tick(now);
                        self.flush().await;
                    }
                }
            }
        }
        if let Some(mut c) = self.conn.take() {
            let _ = c.stream.shutdown().await;
        }
    }

    fn emit(&self, ev: ClientEvent) {
        record_event(&self.recorder, &self.name, &ev);
        let _ = self.events.send(ev);
    }

    async fn handle(&mut self, cmd: Command) -> Result<Reply, String> {
        let now = self.now();
        let reply = match cmd {
            Command::Connect { opts, reconnect } => {
                self.notice_loss().await;
                if self.conn.is_some() {
                    return Err("already connected: disconnect or drop first".into());
                }
                self.session.set_options(opts);
                self.reconnect = reconnect;
                self.backoff = Duration::ZERO;
                self.emit(ClientEvent::Connecting);
                self.open().await;
                Reply::default()
            }
            Command::Subscribe(filters) => {
                self.require_conn()?;
                Reply {
                    pid: Some(self.session.subscribe(&filters, now)),
                }
            }
            Command::SubscribeWith {
                filters,
                properties,
            } => {
                self.require_conn()?;
                Reply {
                    pid: Some(self.session.subscribe_with(filters, properties, now)),
                }
            }
            Command::Unsubscribe(filters) => {
                self.require_conn()?;
                Reply {
                    pid: Some(self.session.unsubscribe(&filters, now)),
                }
            }
            Command::Publish {
                topic,
                payload,
                qos,
                retain,
                pid,
                properties,
                raw,
            } => {
                let pid = self
                    .session
                    .publish_with(&topic, payload, qos, retain, pid, properties, raw, now);
                Reply {
                    pid: (pid != 0).then_some(pid),
                }
            }
            Command::DisconnectWith { code, properties } => {
                self.reconnect = None;
                self.retry_at = None;
                if self.conn.is_some() {
                    self.session.disconnect_with(code, properties, now);
                    self.flush().await;
                    self.close("disconnect").await;
                }
                Reply::default()
            }
            Command::Disconnect => {
                self.reconnect = None;
                self.retry_at = None;
                if self.conn.is_some() {
                    self.session.disconnect(now);
                    self.flush().await;
                    self.close("disconnect").await;
                }
                Reply::default()
            }
            Command::Drop => {
                self.close("dropped").await;
                self.schedule_retry();
                Reply::default()
            }
            Command::Status => Reply::default(),
            Command::Reboot => {
                // The virtual device "persists" its session like the agent
                // does on flash, and comes back idle, waiting for connect.
                // A rebooting board sends no FIN: its TCP state is simply
                // gone, and the broker learns of it only from a takeover or
                // its keep alive. The old socket is kept open, unread, to
                // show the broker exactly that.
                self.reconnect = None;
                self.retry_at = None;
                if let Some(c) = self.conn.take() {
                    self.zombies.push(c.stream);
                    self.session.on_close();
                    self.emit(ClientEvent::Disconnected {
                        reason: "reboot".into(),
                    });
                }
                self.emit(ClientEvent::Ready {
                    info: "fw=virtual".into(),
                });
                Reply::default()
            }
            Command::SetAcks(policy) => {
                self.session.acks = policy;
                Reply::default()
            }
            Command::Release(pid) => {
                self.session.release(pid, now);
                Reply::default()
            }
            Command::SetPings(on) => {
                self.session.pings = on;
                // The keepalive checker must know this client is silent on purpose.
                self.recorder.record(EventKind::Actor {
                    actor: self.name.clone(),
                    what: format!("pings {}", if on { "on" } else { "off" }),
                });
                Reply::default()
            }
        };
        // A packet the command asked for that cannot be encoded was not
        // sent: the step did not happen, and must not pass as if it had.
        let unsent = self.flush().await;
        if !unsent.is_empty() {
            return Err(unsent.join("; "));
        }
        Ok(reply)
    }

    /// A reset or EOF the read loop has not processed yet (the command
    /// arrived first): take it into account before deciding anything.
    async fn notice_loss(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            match conn.stream.try_read(&mut buf) {
                Ok(0) => return self.lost("peer_closed").await,
                Ok(n) => self.on_bytes(&buf[..n]).await,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => return self.lost(&format!("io_error ({e})")).await,
            }
        }
    }

    fn require_conn(&self) -> Result<(), String> {
        if self.conn.is_none() {
            return Err("not connected".into());
        }
        Ok(())
    }

    async fn open(&mut self) {
        match TcpStream::connect(self.addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                self.conn = Some(Conn {
                    stream,
                    decoder: Decoder::new(self.session.version()),
                });
                self.session.on_open(self.now());
                self.flush().await;
            }
            Err(e) => {
                self.emit(ClientEvent::Disconnected {
                    reason: format!("connect_failed ({e})"),
                });
                self.schedule_retry();
            }
        }
    }

    fn schedule_retry(&mut self) {
        let Some(rc) = &self.reconnect else { return };
        self.backoff = if self.backoff.is_zero() {
            rc.initial
        } else {
            (self.backoff * 2).min(rc.max)
        };
        self.retry_at = Some(Instant::now() + self.backoff);
    }

    async fn on_bytes(&mut self, bytes: &[u8]) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        conn.decoder.feed(bytes);
        let mut packets = Vec::new();
        let mut broken = None;
        loop {
            match conn.decoder.next_frame() {
                Ok(Some((_, Ok(p)))) => packets.push(p),
                Ok(Some((_, Err(e)))) => {
                    broken = Some(format!("malformed packet from broker: {e}"));
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    broken = Some(format!("broken framing from broker: {e}"));
                    break;
                }
            }
        }
        let now = self.now();
        for p in packets {
            let was_connected = self.session.is_connected();
            // The server's first packet is CONNACK [MQTT-3.2.0-1]; anything
            // else (a flood of them, even) ends the attempt rather than
            // being taken as traffic of a session that does not exist.
            if !was_connected && !matches!(p.packet_type(), PacketType::ConnAck | PacketType::Auth)
            {
                broken.get_or_insert(format!(
                    "{} from broker before CONNACK [MQTT-3.2.0-1]",
                    p.packet_type()
                ));
                break;
            }
            self.session.on_packet(p, now);
            if !was_connected && self.session.is_connected() {
                self.backoff = Duration::ZERO;
            }
        }
        for ev in self.session.take_events() {
            self.emit(ev);
        }
        self.flush().await;
        if let Some(reason) = broken {
            self.emit(ClientEvent::Anomaly(reason.clone()));
            // The reason carries what was wrong, so a verdict built from
            // it says what the broker sent, not just that it was wrong.
            self.lost(&format!("protocol_error ({reason})")).await;
        }
    }

    /// Writes what the session wants sent. Returns why packets could not
    /// be encoded (they are recorded as anomalies too), so a command that
    /// asked for them can fail.
    async fn flush(&mut self) -> Vec<String> {
        let out = self.session.take_wire();
        let mut unsent = Vec::new();
        if out.is_empty() {
            return unsent;
        }
        let version = self.session.version();
        let max = self.session.limits().maximum_packet_size;
        let Some(conn) = self.conn.as_mut() else {
            return unsent;
        };
        let mut bytes = BytesMut::new();
        for w in &out {
            let p = match w {
                Wire::Raw(b) => {
                    bytes.extend_from_slice(b);
                    continue;
                }
                Wire::Packet(p) => p,
            };
            match codec::encode(p, version) {
                // Never larger than the broker said it takes [MQTT-3.2.2-15].
                Ok(b) if max.is_some_and(|m| b.len() as u64 > m as u64) => {
                    let msg = format!(
                        "not sent: {} of {} bytes is over the broker's Maximum Packet Size {}",
                        p.packet_type(),
                        b.len(),
                        max.unwrap_or_default()
                    );
                    record_event(&self.recorder, &self.name, &ClientEvent::Anomaly(msg));
                }
                Ok(b) => bytes.extend_from_slice(&b),
                Err(e) => {
                    let msg = format!("cannot encode {}: {e}", p.packet_type());
                    record_event(
                        &self.recorder,
                        &self.name,
                        &ClientEvent::Anomaly(msg.clone()),
                    );
                    unsent.push(msg);
                }
            }
        }
        if let Err(e) = conn.stream.write_all(&bytes).await {
            self.lost(&format!("io_error ({e})")).await;
        }
        unsent
    }

    async fn close(&mut self, reason: &str) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.stream.shutdown().await;
            self.session.on_close();
            self.emit(ClientEvent::Disconnected {
                reason: reason.to_string(),
            });
        }
    }

    /// The connection ended without us asking for it.
    fn lost(&mut self, reason: &str) -> impl std::future::Future<Output = ()> + '_ {
        // Before CONNACK, any ending is a failed connection attempt, however
        // the reset happened to reach us.
        let reason = if self.session.is_connected() || reason.starts_with("keepalive") {
            reason.to_string()
        } else {
            format!(
                "connect_failed{}",
                reason.find(" (").map(|i| &reason[i..]).unwrap_or("")
            )
        };
        async move {
            if self.conn.take().is_some() {
                self.session.on_close();
                self.emit(ClientEvent::Disconnected { reason });
                self.schedule_retry();
            }
        }
    }
}

async fn read_some(conn: &mut Option<Conn>, buf: &mut [u8]) -> std::io::Result<usize> {
    match conn {
        Some(c) => c.stream.read(buf).await,
        None => std::future::pending().await,
    }
}
