//! The MQTT-aware fault proxy between each actor and the broker.
//!
//! A [`Hub`] is shared by all lanes of a run: it owns the recorder, hands out
//! connection ids unique across lanes, and shuts everything down. Each actor
//! (the device, every observer) gets a [`Lane`]: a listener on 127.0.0.1:0
//! that forwards every accepted connection to the broker's address (dialled
//! anew for each connection, so [`Lane::set_upstream`] follows a broker that
//! restarted on another port).
//!
//! Every connection is one task ([`conn`]) that decodes both directions with
//! the codec's [`Decoder`](crate::mqtt::codec::Decoder) (the to-broker one
//! learns the version from CONNECT and tells the to-client one) and records:
//! `ConnOpened`; each decoded packet as `Packet { dir, fate, raw }`; bytes
//! that do not decode as `Malformed` (still forwarded as they are);
//! `ConnClosed` once, with who closed first. Bytes are forwarded unchanged,
//! frame by frame, unless a fault says otherwise. A packet is recorded when
//! the proxy reads it (the time its sender sent it): `Forwarded`,
//! `Duplicated`, `Dropped`, or `Held`; a held packet that later reaches its
//! peer gets a second event, `Released`, when it is written.
//!
//! What each [`Fault`] does, as the two ends see it:
//!
//! - `sever`: the current connections are reset on both sides (SO_LINGER 0,
//!   RST): a reader gets ECONNRESET. `ConnClosed Severed`.
//! - `close`: both sides get FIN (EOF on read) after the proxy discards
//!   what it had not forwarded yet. `ConnClosed Closed`.
//! - `blackhole`: no byte moves either way, on current connections and on
//!   new ones (accepted and dialled upstream, then stalled). Sockets stay
//!   open. The proxy keeps reading into its buffers (up to 1 MiB per
//!   direction, then it stops reading, as a TCP window would); packets read
//!   meanwhile are recorded `Held`. A side that closes (FIN or RST) during
//!   the outage is recorded at once (`ConnClosed ClientClosed` or
//!   `BrokerClosed`) but nothing reaches the other side.
//! - `heal`: the outage ends. Where both sides are still there, buffered
//!   bytes flow in order (each held packet recorded `Released`, as TCP
//!   retransmission would deliver it). Where one side closed during the
//!   outage, the other side now gets RST (its peer is gone) and buffered
//!   bytes are discarded.
//! - `refuse`: new connections are accepted and reset at once (the client
//!   sees ECONNRESET, like a port with nothing listening); recorded as
//!   `ConnOpened` + `ConnClosed Refused`. Existing connections are
//!   untouched. `accept` ends it.
//! - `latency`: each frame is delayed by `delay ± jitter` (uniform, never
//!   negative, from a generator seeded per connection and direction, so runs
//!   repeat); a frame never overtakes the one before it. Applies to frames
//!   read from then on, on current and future connections.
//! - `bandwidth`: each direction of each connection is paced to
//!   `bytes_per_sec` (token bucket, 20 ms burst); 0 removes the cap.
//! - rules: `drop` (recorded `Dropped`, the peer never sees it), `hold`
//!   (`Held` until `release`/`clear`, or lost with the connection), `delay`
//!   (held for a time, then released; later packets may overtake it),
//!   `duplicate` (`Duplicated`, written twice back to back). Counted per
//!   lane from when the rule is armed, across its connections.
//! - `release`: held packets are forwarded now, in the order they were held.
//! - `clear`: latency, bandwidth and rules are removed; queued frames are due
//!   at once and held packets are released. Blackhole and refuse stay.
//!
//! [`Hub::shutdown`] stops every lane and connection (sockets closed,
//! `ConnClosed RunEnded` for those still open) and returns once no proxy
//! task is left.

mod conn;
mod fault;
mod link;
mod out;

pub(crate) use fault::{dir_name, ordinal};
pub use fault::{ConnCommand, Decision, Fault, FaultState, LinkParams, PacketRule, RuleAction};
pub use link::{Chunk, Link, Rng};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::history::{CloseReason, ConnId, Dir, EventKind, Fate, Recorder};
use crate::mqtt::{Packet, PacketType};

/// Shared by all lanes of a run.
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    recorder: Recorder,
    next_conn: AtomicU32,
    shutdown: watch::Sender<bool>,
    /// Cloned into every proxy task; `None` once shut down.
    alive: Mutex<Option<mpsc::Sender<()>>>,
    /// Yields `None` when every task (and so every clone of `alive`) is gone.
    drained: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

impl Hub {
    pub fn new(recorder: Recorder) -> Hub {
        let (alive, drained) = mpsc::channel(1);
        Hub {
            inner: Arc::new(HubInner {
                recorder,
                next_conn: AtomicU32::new(1),
                shutdown: watch::Sender::new(false),
                alive: Mutex::new(Some(alive)),
                drained: tokio::sync::Mutex::new(drained),
            }),
        }
    }

    /// Starts a lane for `actor`: a listener on 127.0.0.1:0 forwarding to
    /// `upstream`.
    pub async fn lane(&self, actor: &str, upstream: SocketAddr) -> std::io::Result<Lane> {
        self.lane_at(actor, upstream, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
    }

    /// A lane listening on `bind`: a bench board dials a fixed address on
    /// the bench's network.
    pub async fn lane_at(
        &self,
        actor: &str,
        upstream: SocketAddr,
        bind: SocketAddr,
    ) -> std::io::Result<Lane> {
        let alive = self
            .inner
            .alive
            .lock()
            .expect("hub lock poisoned")
            .clone()
            .ok_or_else(|| std::io::Error::other("the proxy hub is shut down"))?;
        let listener = bind_avoiding(bind, crate::broker::handed_out)
            .await
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("listening on {bind} for {actor}: {e}"))
            })?;
        let shared = Arc::new(LaneShared {
            hub: self.inner.clone(),
            actor: actor.to_string(),
            addr: listener.local_addr()?,
            recorder: self.inner.recorder.clone(),
            state: Mutex::new(LaneState {
                faults: FaultState::new(),
                upstream,
                conns: BTreeMap::new(),
                opened: 0,
            }),
        });
        tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            self.inner.clone(),
            alive,
        ));
        Ok(Lane { shared })
    }

    /// Closes every lane and connection (recorded as `ConnClosed RunEnded`)
    /// and waits until no proxy task is left.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        drop(self.inner.alive.lock().expect("hub lock poisoned").take());
        let mut drained = self.inner.drained.lock().await;
        while drained.recv().await.is_some() {}
    }
}

/// One actor's way to the broker. Cheap to clone.
#[derive(Clone)]
pub struct Lane {
    shared: Arc<LaneShared>,
}

impl Lane {
    /// Where the actor connects.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn actor(&self) -> &str {
        &self.shared.actor
    }

    /// Applies a fault now: recorded as a `Fault` event, in effect for the
    /// frames the lane's connections read from now on.
    pub fn apply(&self, fault: Fault) {
        let mut st = self.shared.state();
        self.shared.recorder.record(EventKind::Fault {
            target: self.shared.actor.clone(),
            fault: fault.name(),
        });
        if let Some(cmd) = st.faults.apply(&fault) {
            // Sent under the lock: a task that sees the new lane state in
            // `decide` finds the command already queued.
            for c in st.conns.values_mut() {
                let _ = c.cmds.send(cmd);
            }
        }
    }

    /// The broker moved: new connections go to `upstream`.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.shared.state().upstream = upstream;
    }

    /// New connections are being refused (`refuse` until `accept`).
    pub fn refusing(&self) -> bool {
        self.shared.state().faults.refusing()
    }

    /// Records a connection attempt refused before it reached the lane —
    /// the harness's own network answered the board's SYN with RST — the
    /// way the lane records one it refused itself (`ConnOpened`, then
    /// `ConnClosed Refused`), so histories and traces read the same.
    pub fn record_refused(&self) {
        let id = ConnId(self.shared.hub.next_conn.fetch_add(1, Ordering::Relaxed));
        self.shared.record(EventKind::ConnOpened {
            conn: id,
            actor: self.shared.actor.clone(),
        });
        self.shared.record(EventKind::ConnClosed {
            conn: id,
            actor: self.shared.actor.clone(),
            reason: CloseReason::Refused,
        });
    }

    /// Connections accepted and not yet recorded as closed.
    pub fn open_connections(&self) -> usize {
        self.shared
            .state()
            .conns
            .values()
            .filter(|c| !c.closed)
            .count()
    }
}

pub(crate) struct LaneShared {
    hub: Arc<HubInner>,
    actor: String,
    addr: SocketAddr,
    recorder: Recorder,
    state: Mutex<LaneState>,
}

struct LaneState {
    faults: FaultState,
    upstream: SocketAddr,
    conns: BTreeMap<ConnId, ConnEntry>,
    /// Connections accepted so far (seeds the jitter generators).
    opened: u64,
}

struct ConnEntry {
    cmds: mpsc::UnboundedSender<ConnCommand>,
    /// `ConnClosed` recorded (the task may still run, e.g. the client side
    /// of a connection whose broker side closed during a blackhole).
    closed: bool,
}

impl LaneShared {
    fn state(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().expect("proxy lane lock poisoned")
    }

    fn record(&self, kind: EventKind) {
        self.recorder.record(kind);
    }

    /// The fates of frames read together, in order, and whether the lane
    /// is blackholed right now.
    fn decide_all(
        &self,
        dir: Dir,
        packets: impl Iterator<Item = PacketType>,
    ) -> (Vec<Decision>, bool) {
        let mut st = self.state();
        let d = packets.map(|p| st.faults.on_frame(dir, p)).collect();
        (d, st.faults.blackholed())
    }

    fn packet_event(
        &self,
        conn: ConnId,
        dir: Dir,
        packet: Packet,
        raw: Bytes,
        fate: Fate,
    ) -> EventKind {
        EventKind::Packet {
            conn,
            actor: self.actor.clone(),
            dir,
            packet,
            raw,
            fate,
        }
    }

    fn packet(&self, conn: ConnId, dir: Dir, packet: Packet, raw: Bytes, fate: Fate) {
        self.record(self.packet_event(conn, dir, packet, raw, fate));
    }

    /// Records `ConnClosed` unless it already was.
    fn closed(&self, conn: ConnId, reason: CloseReason) {
        let mut st = self.state();
        if let Some(c) = st.conns.get_mut(&conn) {
            if c.closed {
                return;
            }
            c.closed = true;
        }
        drop(st);
        self.record(EventKind::ConnClosed {
            conn,
            actor: self.actor.clone(),
            reason,
        });
    }

    /// The connection's task ended.
    fn forget(&self, conn: ConnId) {
        self.state().conns.remove(&conn);
    }
}

fn seed(actor: &str, ordinal: u64) -> u64 {
    // FNV-1a over the actor name, mixed with the connection's ordinal.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in actor.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ ordinal.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

async fn accept_loop(
    listener: TcpListener,
    lane: Arc<LaneShared>,
    hub: Arc<HubInner>,
    alive: mpsc::Sender<()>,
) {
    let mut shutdown = hub.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|v| *v) => break,
            r = listener.accept() => r,
        };
        let client = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(actor = %lane.actor, "proxy accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let id = ConnId(hub.next_conn.fetch_add(1, Ordering::Relaxed));
        let mut st = lane.state();
        lane.record(EventKind::ConnOpened {
            conn: id,
            actor: lane.actor.clone(),
        });
        if st.faults.refusing() {
            drop(st);
            conn::reset(client);
            lane.record(EventKind::ConnClosed {
                conn: id,
                actor: lane.actor.clone(),
                reason: CloseReason::Refused,
            });
            continue;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        st.conns.insert(
            id,
            ConnEntry {
                cmds: tx,
                closed: false,
            },
        );
        st.opened += 1;
        let setup = conn::ConnSetup {
            id,
            lane: lane.clone(),
            client,
            upstream: st.upstream,
            cmds: rx,
            shutdown: hub.shutdown.subscribe(),
            blackholed: st.faults.blackholed(),
            link: st.faults.link(),
            seed: seed(&lane.actor, st.opened),
        };
        drop(st);
        let alive = alive.clone();
        tokio::spawn(async move {
            conn::run(setup).await;
            drop(alive);
        });
    }
}

/// Binds `bind`. On port 0 it never keeps a port `taken` says belongs to
/// someone else (a broker's, `broker::free_port`): the kernel offers a
/// port that is free this instant, and a broker between its port's
/// release and its own bind is not listening yet. The ports refused are
/// held until a good one is found, so the kernel offers others. A port
/// asked for by number (a bench board's address) is bound as it is.
async fn bind_avoiding(
    bind: SocketAddr,
    taken: impl Fn(u16) -> bool,
) -> std::io::Result<TcpListener> {
    let mut refused = Vec::new();
    loop {
        let l = TcpListener::bind(bind).await?;
        let port = l.local_addr()?.port();
        if bind.port() != 0 || !taken(port) {
            return Ok(l);
        }
        if refused.len() >= 64 {
            return Err(std::io::Error::other(
                "64 ports in a row were brokers' of this run",
            ));
        }
        refused.push(l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    /// The kernel's first offer is a broker's port: the lane takes another.
    #[tokio::test]
    async fn a_lane_never_keeps_a_brokers_port() {
        let first = Mutex::new(None);
        let l = bind_avoiding(any(), |p| *first.lock().unwrap().get_or_insert(p) == p)
            .await
            .unwrap();
        let first = first.lock().unwrap().expect("asked about the first offer");
        assert_ne!(l.local_addr().unwrap().port(), first);
    }

    /// A port given by number is the user's address: bound as it is.
    #[tokio::test]
    async fn a_port_asked_for_by_number_is_bound_as_it_is() {
        let port = std::net::TcpListener::bind(any())
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let at = SocketAddr::from(([127, 0, 0, 1], port));
        let l = bind_avoiding(at, |_| true).await.unwrap();
        assert_eq!(l.local_addr().unwrap().port(), port);
    }

    /// What `broker::free_port` hands out is what lanes are told to avoid.
    #[test]
    fn a_brokers_port_is_known_as_handed_out() {
        let port = crate::broker::free_port().unwrap();
        assert!(crate::broker::handed_out(port));
    }
}
