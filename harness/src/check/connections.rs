//! `connections`: how the broker ends connections, judged from the
//! connections' opens, CONNECT/CONNACK and closes.
//!
//! - **Takeover** [MQTT-3.1.4-2] (5.0's statement, cited from `v5_connection`,
//!   is [MQTT-3.1.4-3]): when the broker
//!   accepts a CONNECT with a client id whose earlier connection is still
//!   open, it must disconnect that earlier one. The history shows the old
//!   connection still open `slack` after the new CONNACK (no close recorded
//!   by then, or packets still flowing on it). A fault on the old
//!   connection's actor in that window (a blackhole keeps the broker's FIN
//!   from the proxy's client side) makes it a note.
//! - **Empty client ids are each their own client** [MQTT-3.1.3-6]: a
//!   broker close that nothing else explains, of a 3.1.1 connection with an
//!   empty client id, right (within `slack`) after the broker accepted
//!   another connection with an empty client id, shows the broker took the
//!   two for the same client instead of assigning each a unique id.
//! - **No unprovoked close** (`broker-closed`): MQTT lets a server close a
//!   network connection after a protocol violation by the client
//!   [MQTT-4.8.0-1], a transient error of its own [MQTT-4.8.0-2], a refused
//!   CONNECT, a keep-alive expiry, a takeover, or a DISCONNECT (and in 5.0
//!   after its own DISCONNECT). When the broker closes a connection and the
//!   history shows none of the causes it can show — the client broke no rule
//!   on it (no frame the codec rejects, no client-side protocol violation),
//!   it had sent a packet within its keep alive, no other connection with
//!   its client id connected, no fault hit it, the broker was not stopped,
//!   the run was not tearing down, no DISCONNECT — the close is reported as
//!   a broker fault with that evidence. A transient error inside the broker
//!   is the only cause left, and the history cannot show it: the broker's own
//!   log can.
//!
//! Judged as events come ([`Live`], what `observe` runs); `check` feeds the
//! same state machine the whole history. It keeps the connections without
//! their traffic, the takeovers that can still fail, and the broker's
//! closes, whose causes are read anew at each verdict: a cause may show
//! only later (a reconnect within `slack`, a rule the client broke that
//! the protocol rules decide later, such as a resend it then never made).

use std::time::Duration;

use std::collections::{HashMap, HashSet};

use super::index::{seen, sent, Stamp};
use super::live::Context;
use super::{fmt_d, Checker, Incremental, Verdict};
use crate::history::{CloseReason, ConnId, Dir, Event, EventKind, History};
use crate::mqtt::{Packet, Version};

pub struct ConnectionsChecker {
    /// Time the broker gets to close the old connection after accepting
    /// the new one.
    pub slack: Duration,
}

/// Harness rule: the broker closed a connection with no cause the history shows.
pub const BROKER_CLOSED: &str = "broker-closed";

impl Checker for ConnectionsChecker {
    fn name(&self) -> &str {
        "connections"
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(self.live()))
    }

    /// The state machine of [`Live`] fed the whole history: one set of
    /// rules for both forms.
    fn check(&self, history: &History) -> Verdict {
        super::judge_whole(self.live(), history)
    }
}

impl ConnectionsChecker {
    fn live(&self) -> Live {
        Live {
            slack: self.slack,
            ctx: Context::default(),
            protocol: super::protocol::ProtocolChecker {
                clients: vec!["*".to_string()],
                resend_within: Duration::from_secs(2),
                ack_within: Duration::from_secs(1),
            }
            .live(),
            conns: Vec::new(),
            by_id: HashMap::new(),
            by_client: HashMap::new(),
            open_by_client: HashMap::new(),
            takeovers: Vec::new(),
            by_old: HashMap::new(),
            takeovers_done: 0,
            closes: Vec::new(),
            early_malformed: HashSet::new(),
            broker_acts: Vec::new(),
            step_at: Duration::ZERO,
        }
    }
}

/// One connection as the rules read it (an [`Index`](super::index::Index) connection without
/// its traffic: the last packet each way instead).
struct CConn {
    id: ConnId,
    actor: String,
    first: Stamp,
    /// From the first CONNECT the client sent.
    client_id: Option<String>,
    version: Version,
    keep_alive: u16,
    connect_at: Option<Duration>,
    connect_seen: bool,
    /// The first CONNACK the broker sent, and its code.
    connack: Option<(Stamp, u8)>,
    closed: Option<(Stamp, CloseReason)>,
    /// A DISCONNECT from the client reached the broker.
    disconnect: bool,
    /// The broker sent a DISCONNECT (5.0).
    broker_disconnect: bool,
    /// The client sent a frame the codec rejects.
    malformed: bool,
    /// When the broker last got a packet from the client, up to the close.
    last_rx: Option<Duration>,
    /// The last packet the client sent.
    last_tx: Option<(Stamp, crate::mqtt::PacketType)>,
}

impl CConn {
    fn accepted_at(&self) -> Option<Duration> {
        self.connack
            .as_ref()
            .filter(|(_, code)| *code == 0)
            .map(|(s, _)| s.at)
    }
    fn end(&self, run_end: Duration) -> Duration {
        self.closed.as_ref().map(|(s, _)| s.at).unwrap_or(run_end)
    }
}

/// A connection accepted while an older one of the same client id was
/// open: (new, old) positions, and the old one's packets after the
/// deadline (the evidence, at most three).
struct Takeover {
    new: usize,
    old: usize,
    later: Vec<u64>,
}

/// [`ConnectionsChecker`] as a state machine: the connections (without
/// their traffic), the takeovers still to judge, the broker's closes, the
/// broker's actions, and the protocol rules' state machine for the
/// client's violations. The takeover deadline and the causes of a close
/// (a rule broken later, a reconnect within `slack`) are judged at each
/// verdict against the log so far, as the batch form judges them against
/// the whole history.
pub(crate) struct Live {
    slack: Duration,
    ctx: Context,
    protocol: super::protocol::Live,
    conns: Vec<CConn>,
    by_id: HashMap<ConnId, usize>,
    /// Per client id (empty ones too): its connections with a CONNECT, in order.
    by_client: HashMap<String, Vec<usize>>,
    /// Per non-empty client id: its accepted connections not known closed
    /// before the latest accept (the old side of a takeover).
    open_by_client: HashMap<String, Vec<usize>>,
    /// Takeovers still able to fail, in (new, old) order.
    takeovers: Vec<Takeover>,
    /// Per old connection: its entries in `takeovers`.
    by_old: HashMap<usize, Vec<usize>>,
    /// Takeovers judged and passed (the old connection closed in time).
    takeovers_done: usize,
    /// Connections the broker closed, in order.
    closes: Vec<usize>,
    /// Connections a client sent a rejected frame on before the
    /// connection's first other event.
    early_malformed: HashSet<ConnId>,
    /// Broker actions after the start, from their step to when done.
    broker_acts: Vec<(Duration, Duration)>,
    step_at: Duration,
}

impl Live {
    fn conn(&mut self, id: ConnId, actor: &str, ev: &Event) -> usize {
        if let Some(&i) = self.by_id.get(&id) {
            return i;
        }
        let i = self.conns.len();
        self.conns.push(CConn {
            id,
            actor: actor.to_string(),
            first: Stamp {
                seq: ev.seq,
                at: ev.at,
            },
            client_id: None,
            version: Version::V311,
            keep_alive: 0,
            connect_at: None,
            connect_seen: false,
            connack: None,
            closed: None,
            disconnect: false,
            broker_disconnect: false,
            malformed: self.early_malformed.remove(&id),
            last_rx: None,
            last_tx: None,
        });
        self.by_id.insert(id, i);
        i
    }

    /// Connection `ni` was accepted: pairs it with the open connections
    /// of its client id (as new, and as old for one accepted at the same
    /// time earlier in the log but later in connection order).
    fn accepted(&mut self, ni: usize) {
        let Some(cid) = self.conns[ni].client_id.clone() else {
            return;
        };
        if cid.is_empty() {
            return;
        }
        let Some(acc) = self.conns[ni].accepted_at() else {
            return;
        };
        let end = self.ctx.end();
        let list = self.open_by_client.entry(cid).or_default();
        list.retain(|&o| self.conns[o].end(end) >= acc);
        let mut pairs = Vec::new();
        for &o in list.iter() {
            let old_acc = self.conns[o].accepted_at().unwrap_or(Duration::MAX);
            if old_acc < acc || (old_acc == acc && o < ni) {
                pairs.push((ni, o));
            } else if old_acc == acc && o > ni {
                pairs.push((o, ni));
            }
        }
        list.push(ni);
        for (n, o) in pairs {
            let k = self.takeovers.len();
            self.takeovers.push(Takeover {
                new: n,
                old: o,
                later: Vec::new(),
            });
            self.by_old.entry(o).or_default().push(k);
        }
    }

    fn limit(&self, t: &Takeover) -> Duration {
        self.conns[t.new].accepted_at().unwrap_or_default() + self.slack
    }

    fn closed_in_time(&self, t: &Takeover) -> bool {
        let limit = self.limit(t);
        self.conns[t.old]
            .closed
            .as_ref()
            .is_some_and(|(s, r)| s.at <= limit && !matches!(r, CloseReason::RunEnded))
    }

    /// The old connection of these takeovers closed: those it closed in
    /// time have passed for good.
    fn settle_takeovers(&mut self, old: usize) {
        let Some(ks) = self.by_old.get(&old) else {
            return;
        };
        let passed: Vec<usize> = ks
            .iter()
            .copied()
            .filter(|&k| self.closed_in_time(&self.takeovers[k]))
            .collect();
        if passed.is_empty() {
            return;
        }
        self.takeovers_done += passed.len();
        let mut k = 0;
        self.takeovers.retain(|_| {
            k += 1;
            !passed.contains(&(k - 1))
        });
        self.by_old.clear();
        for (k, t) in self.takeovers.iter().enumerate() {
            self.by_old.entry(t.old).or_default().push(k);
        }
    }

    fn judge_takeovers(&self, v: &mut Verdict) {
        let end = self.ctx.end();
        let teardown = self.ctx.teardown().unwrap_or(Duration::MAX);
        let mut judged = self.takeovers_done;
        let mut list: Vec<&Takeover> = self.takeovers.iter().collect();
        list.sort_by_key(|t| (t.new, t.old));
        for t in list {
            let (new, old) = (&self.conns[t.new], &self.conns[t.old]);
            let cid = new.client_id.as_deref().unwrap_or_default();
            let acc = new.accepted_at().unwrap_or_default();
            let rule = if new.version == Version::V5 {
                super::v5_connection::TAKEOVER
            } else {
                "MQTT-3.1.4-2"
            };
            let connack_seq = new.connack.as_ref().map(|(s, _)| s.seq).unwrap_or(0);
            judged += 1;
            let limit = acc + self.slack;
            if self.closed_in_time(t) {
                continue;
            }
            if limit >= end.min(teardown) {
                v.note(format!(
                    "{} was still open when the run ended, {} after {} took over client id `{cid}`: too short to judge",
                    old.id,
                    fmt_d(end.saturating_sub(acc)),
                    new.id
                ));
                continue;
            }
            if !self.ctx.undisturbed(&old.actor, acc, limit)
                || self.ctx.broker_down_between(acc, limit)
            {
                v.note(format!(
                    "{} stayed open after {} took over client id `{cid}`, but a fault or broker action in that window can hide the close",
                    old.id, new.id
                ));
                continue;
            }
            let how_long = match &old.closed {
                Some((s, r)) if !matches!(r, CloseReason::RunEnded) => {
                    format!("closed only {} later", fmt_d(s.at.saturating_sub(acc)))
                }
                _ => "still open when the run ended".to_string(),
            };
            let old_acc_seq = old
                .connack
                .as_ref()
                .map(|(s, _)| s.seq)
                .unwrap_or(old.first.seq);
            let mut evs = vec![old_acc_seq, connack_seq];
            evs.extend(&t.later);
            v.fail(
                rule,
                format!(
                    "the broker accepted {} for client id `{cid}` ({}) while {} ({}) with the same client id was connected, and did not disconnect {} within {}: {how_long}{}",
                    new.id,
                    new.actor,
                    old.id,
                    old.actor,
                    old.id,
                    fmt_d(self.slack),
                    if t.later.is_empty() {
                        String::new()
                    } else {
                        format!("; {} packet(s) crossed it afterwards", t.later.len())
                    }
                ),
                evs,
            );
        }
        if judged > 0 {
            v.note(format!(
                "{judged} takeover(s) of a connected client id judged"
            ));
        }
    }

    fn judge_closes(&self, v: &mut Verdict) {
        if self.closes.is_empty() {
            return;
        }
        let teardown = self.ctx.teardown().unwrap_or(Duration::MAX);
        // Connections on which the client broke a rule: frames the codec
        // rejects, and client-side protocol violations.
        let mut client_fault: std::collections::HashSet<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.malformed)
            .map(|c| c.id)
            .collect();
        for f in self.protocol.judge().0 {
            if !f.v.message.starts_with("the broker") {
                client_fault.extend(f.conns);
            }
        }
        let mut closes: Vec<usize> = self.closes.clone();
        closes.sort_unstable();
        for &i in &closes {
            let c = &self.conns[i];
            let Some((stamp, _)) = &c.closed else {
                continue;
            };
            let at = stamp.at;
            let cause: Option<String> = if at >= teardown {
                Some("the run was tearing down".into())
            } else if !c.connect_seen {
                Some("no CONNECT had reached the broker".into())
            } else if c.connack.as_ref().is_some_and(|(_, code)| *code != 0) {
                Some("the broker refused the CONNECT".into())
            } else if c.disconnect {
                Some("the client sent DISCONNECT".into())
            } else if client_fault.contains(&c.id) {
                Some("the client broke a rule on it (see the other verdicts)".into())
            } else if c.broker_disconnect {
                Some("the broker sent DISCONNECT first (judged by v5_connection)".into())
            } else if let Some(w) = silent_for(c.keep_alive, c.last_rx.unwrap_or(c.first.at), at) {
                Some(w)
            } else if let Some(o) = self.same_client_after(c, at) {
                Some(format!("{} connected with the same client id", o.id))
            } else if !self.ctx.undisturbed(
                &c.actor,
                at.saturating_sub(self.slack).max(c.first.at),
                at,
            ) {
                // Only faults in this connection's own life: the sever that
                // ended the previous connection explains nothing here.
                Some("a fault hit the connection".into())
            } else if self
                .broker_acts
                .iter()
                .any(|&(from, to)| from <= at + self.slack && at <= to + self.slack)
            {
                Some("a broker action (stop, restart, kill, pause...) was under way".into())
            } else {
                None
            };
            // Another client with an empty id accepted just before: the
            // broker took the two for one client.
            let twin = (c.client_id.as_deref() == Some("") && c.version != Version::V5)
                .then(|| self.empty_twin(c, at))
                .flatten();
            match (cause, twin) {
                (Some(why), _) => v.note(format!("the broker closed {} ({}): {why}", c.id, c.actor)),
                (None, Some(o)) => v.fail(
                    "MQTT-3.1.3-6",
                    format!(
                        "the broker closed {}'s connection {} (empty client id) right after accepting {} of {}, also with an empty client id: it must give each a unique client id, not take one for the other",
                        c.actor, c.id, o.id, o.actor
                    ),
                    vec![stamp.seq, o.connack.as_ref().map(|(s, _)| s.seq).unwrap_or(o.first.seq)],
                ),
                (None, None) => {
                    let last = c.last_tx.as_ref().map(|(s, t)| {
                        format!(
                            "; the client's last packet was {} (event #{}) {} before",
                            t,
                            s.seq,
                            fmt_d(at.saturating_sub(s.at))
                        )
                    });
                    let mut evs = vec![stamp.seq];
                    if let Some((s, _)) = &c.last_tx {
                        evs.push(s.seq);
                    }
                    v.fail(
                        BROKER_CLOSED,
                        format!(
                            "the broker closed {}'s connection {} {} after it opened with no cause the history shows: no protocol error by the client, keep alive {}s not expired, no takeover, no fault, no DISCONNECT{} — a server closes only on a protocol violation [MQTT-4.8.0-1] or a transient error of its own [MQTT-4.8.0-2]: see the broker's log",
                            c.actor,
                            c.id,
                            fmt_d(at.saturating_sub(c.first.at)),
                            c.keep_alive,
                            last.unwrap_or_default()
                        ),
                        evs,
                    );
                }
            }
        }
        v.note(format!(
            "{} connection(s) closed by the broker judged",
            closes.len()
        ));
    }

    /// The first connection (in order) of the same client that opened
    /// after `c` and connected by `slack` after its close at `at`.
    fn same_client_after(&self, c: &CConn, at: Duration) -> Option<&CConn> {
        let cid = c.client_id.as_deref().filter(|id| !id.is_empty())?;
        let list = self.by_client.get(cid)?;
        let from = list.partition_point(|&o| self.conns[o].first.at < c.first.at);
        list[from..]
            .iter()
            .map(|&o| &self.conns[o])
            .take_while(|o| o.first.at <= at + self.slack)
            .find(|o| {
                o.id != c.id && o.connect_seen && o.connect_at.is_some_and(|t| t <= at + self.slack)
            })
    }

    /// A connection with an empty client id, opened after `c`, that the
    /// broker accepted within `slack` before closing `c` at `at`.
    fn empty_twin(&self, c: &CConn, at: Duration) -> Option<&CConn> {
        let list = self.by_client.get("")?;
        let from = list.partition_point(|&o| self.conns[o].first.at < c.first.at);
        list[from..]
            .iter()
            .map(|&o| &self.conns[o])
            .take_while(|o| o.first.at <= at)
            .find(|o| {
                o.id != c.id
                    && o.accepted_at()
                        .is_some_and(|a| a <= at && a + self.slack >= at)
            })
    }
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        self.ctx.feed(ev);
        self.protocol.feed(ev);
        let stamp = Stamp {
            seq: ev.seq,
            at: ev.at,
        };
        match &ev.kind {
            EventKind::Step { .. } => self.step_at = ev.at,
            EventKind::Broker { what } if what.starts_with("started") => {}
            EventKind::Broker { .. } => self.broker_acts.push((self.step_at, ev.at)),
            EventKind::ConnOpened { conn, actor } => {
                self.conn(*conn, actor, ev);
            }
            EventKind::ConnClosed {
                conn,
                actor,
                reason,
            } => {
                let i = self.conn(*conn, actor, ev);
                if self.conns[i].closed.is_none() {
                    self.conns[i].closed = Some((stamp, reason.clone()));
                    if matches!(reason, CloseReason::BrokerClosed) {
                        self.closes.push(i);
                    }
                    self.settle_takeovers(i);
                }
            }
            EventKind::Malformed {
                conn,
                dir: Dir::ToBroker,
                ..
            } => {
                if let Some(&i) = self.by_id.get(conn) {
                    self.conns[i].malformed = true;
                } else {
                    // Not a connection of the index yet: remembered for
                    // when it becomes one.
                    self.early_malformed.insert(*conn);
                }
            }
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } => {
                let i = self.conn(*conn, actor, ev);
                let to_broker = *dir == Dir::ToBroker;
                let mut accepted = false;
                {
                    let c = &mut self.conns[i];
                    if to_broker
                        && seen(*fate)
                        && c.closed.as_ref().is_none_or(|(s, _)| ev.at <= s.at)
                    {
                        c.last_rx = Some(ev.at);
                    }
                    if to_broker && sent(*fate) {
                        c.last_tx = Some((stamp.clone(), packet.packet_type()));
                    }
                    match packet {
                        Packet::Connect(cp) if to_broker => {
                            if c.client_id.is_none() && sent(*fate) {
                                c.client_id = Some(cp.client_id.clone());
                                c.version = cp.version;
                                c.keep_alive = cp.keep_alive;
                                c.connect_at = Some(ev.at);
                                let list = self.by_client.entry(cp.client_id.clone()).or_default();
                                let at = list.partition_point(|&o| o < i);
                                list.insert(at, i);
                            }
                            if seen(*fate) {
                                c.connect_seen = true;
                            }
                        }
                        Packet::ConnAck(a) if !to_broker && sent(*fate) && c.connack.is_none() => {
                            c.connack = Some((stamp.clone(), a.code));
                            accepted = a.code == 0;
                        }
                        Packet::Disconnect(_) if to_broker && seen(*fate) => c.disconnect = true,
                        Packet::Disconnect(_) if !to_broker => c.broker_disconnect = true,
                        _ => {}
                    }
                }
                if accepted {
                    self.accepted(i);
                }
                // Evidence of an old connection left open after a takeover.
                if let Some(ks) = self.by_old.get(&i) {
                    for &k in ks {
                        let limit = self.limit(&self.takeovers[k]);
                        let t = &mut self.takeovers[k];
                        if ev.at > limit && t.later.len() < 3 {
                            t.later.push(ev.seq);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("connections");
        self.judge_takeovers(&mut v);
        self.judge_closes(&mut v);
        v
    }
}

/// The client had been silent towards the broker since `last` for at
/// least its keep alive when the broker closed at `at` (the broker may
/// close from 1.5 × keep alive; a coarse timer may round either way, so
/// one keep alive is enough here).
fn silent_for(ka: u16, last: Duration, at: Duration) -> Option<String> {
    if ka == 0 {
        return None;
    }
    let silent = at.saturating_sub(last);
    (silent >= Duration::from_secs(ka as u64)).then(|| {
        format!(
            "the client had sent nothing for {} with keep alive {ka}s",
            fmt_d(silent)
        )
    })
}
