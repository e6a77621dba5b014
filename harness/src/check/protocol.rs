//! `protocol`: packet-level rules for both senders of PUBLISH — each client
//! towards the broker, and the broker towards each client — read from the
//! packet stream. State is kept per client id and direction and survives
//! reconnects of a resumed session; a CONNECT with clean session/start 1
//! clears it (and the broker's side when the CONNACK says no session).
//!
//! Sender rules:
//! - QoS > 0 PUBLISH, SUBSCRIBE and UNSUBSCRIBE carry a non-zero packet id
//!   [MQTT-2.3.1-1]; a QoS 0 PUBLISH carries none [MQTT-2.3.1-5] and has
//!   DUP=0 [MQTT-3.3.1-2];
//! - a new packet does not reuse a packet id still in flight (QoS 1 until
//!   PUBACK, QoS 2 until PUBCOMP, SUBSCRIBE/UNSUBSCRIBE until their ack, as
//!   the sender received them) [MQTT-2.3.1-2];
//! - a retransmitted PUBLISH (same id, topic and payload while in flight)
//!   has DUP=1 [MQTT-3.3.1-1];
//! - a QoS 2 PUBLISH is not sent again after its PUBREL [MQTT-4.3.3-1];
//!   PUBREL only after the PUBREC arrived (`pubrel-without-pubrec`);
//! - after reconnecting with a resumed session, the sender resends each
//!   unacknowledged PUBLISH and the PUBREL of each PUBREC'd message within
//!   `resend_within`, if the connection lives that long without faults
//!   [MQTT-4.4.0-1].
//!
//! Receiver rules: a receiver answers each QoS 1 PUBLISH it got with
//! PUBACK [MQTT-4.3.2-2], each QoS 2 PUBLISH with PUBREC and each PUBREL
//! with PUBCOMP [MQTT-4.3.3-2], within `ack_within` while the connection
//! stands and no fault or broker action hides the answer (3.1.1
//! connections; `v5_acks` judges 5.0's). PUBACK/PUBREC answer a QoS 1/2 PUBLISH the receiver got
//! with that id, PUBCOMP answers a PUBREL it got (`ack-without-publish`,
//! `pubcomp-without-pubrel`). A receiver may ack the same id twice (retransmissions), so only
//! acks for ids never received are flagged; a PUBCOMP is flagged when every
//! PUBREL with its id that reached the receiver already had its PUBCOMP
//! (two PUBRELs and their two PUBCOMPs may cross on the wire, so the proxy
//! can record both PUBRELs first).
//!
//! On 3.1.1 connections, also:
//! - a PUBLISH sent for the first time has DUP=0: the broker's DUP says
//!   only whether its own send repeats [MQTT-3.3.1-3], a client's new
//!   QoS 1 / QoS 2 message goes out with DUP=0 [MQTT-4.3.2-1]
//!   [MQTT-4.3.3-1]. Judged for a sender whose whole state the run has
//!   seen: a DUP=1 PUBLISH is a resend only of the message in flight with
//!   its id, of one in flight under another id (the packet id rules judge
//!   that), or of the last message its id carried — the sender may not have
//!   read that one's ack yet (it crossed the resend on the wire, or was
//!   lost with the connection). An older message of the id cannot be
//!   resent: the sender took the id again for a newer one, which it may do
//!   only once the older one's ack reached it [MQTT-2.3.1-2];
//! - a PUBLISH resent on a resumed session keeps its packet id
//!   [MQTT-2.3.1-3] (the broker's: [MQTT-2.3.1-4], which also numbers the
//!   broker's own packet id rule); a client resends them in the order it
//!   first sent them [MQTT-4.6.0-1]. On the same connection too: a DUP=1
//!   PUBLISH under an id the sender never sent that message under, while it
//!   is in flight under another id on that connection, is a resend that
//!   changed its id (judged for a sender whose whole state the run has seen);
//! - a client answers in the order it was asked: PUBACKs, PUBRECs and
//!   PUBRELs in the order of the PUBLISHes and PUBRECs that asked for them
//!   [MQTT-4.6.0-2], [MQTT-4.6.0-3], [MQTT-4.6.0-4];
//! - a broker's SUBACK/UNSUBACK carries the id of a request it got
//!   [MQTT-2.3.1-7].
//!
//! Client-side rules apply to the actors listed in `clients`; the broker is
//! always judged.
//!
//! Judged as events come ([`Live`], what `observe` runs); `check` feeds the
//! same state machine the whole history, so both forms are one set of
//! rules. The state: per client id and direction the flows in flight and
//! the ids received (at most 65,536 each); per connection the answers owed
//! and not yet sent; per resumed session the resends not yet seen; and,
//! for the DUP=0-on-a-first-send rule, per sender and packet id a 32-bit
//! digest of the last message sent with it (at most 65,535 ids, 256 KiB a
//! sender, however long the session). Deadlines are judged at
//! each verdict against the end of the log so far. What is known at an
//! event is what decides: a packet before its connection's CONNECT has
//! no client yet, and a CONNACK's resumed session is read against the
//! connections accepted before it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;

use super::index::{seen, sent, show};
use super::live::Context;
use super::{fmt_d, Checker, Incremental, Verdict, Violation};
use crate::history::{ConnId, Dir, Event, EventKind, Fate, History};
use crate::mqtt::{Packet, QoS, Version};

pub struct ProtocolChecker {
    pub clients: Vec<String>,
    pub resend_within: Duration,
    pub ack_within: Duration,
}

#[derive(Clone, Debug)]
struct Flow {
    qos: QoS,
    topic: String,
    payload: Bytes,
    seq: u64,
    /// The connection it was first sent on.
    conn: ConnId,
    rec_seen: bool,
    rel_sent: bool,
}

#[derive(Default, Clone)]
struct Side {
    /// Sender view: PUBLISH flows in flight.
    inflight: HashMap<u16, Flow>,
    /// Sender view (clients): SUBSCRIBE/UNSUBSCRIBE ids in flight.
    requests: HashMap<u16, (u64, ConnId)>,
    /// Sender view: PUBRECs that reached the sender and that no PUBREL of
    /// its own has answered yet, per id. A PUBREL answering one of them is
    /// never "without PUBREC", even when the flow is already complete in
    /// the proxy's order: the receiver's PUBCOMP and a second PUBREC it
    /// sent can cross the sender's answer on the wire, and which of them
    /// the proxy saw first is an order the protocol leaves open.
    recs_owed: HashMap<u16, u32>,
    /// Receiver view: ids of QoS 1 / QoS 2 PUBLISH received.
    got_q1: HashSet<u16>,
    got_q2: HashSet<u16>,
    /// Receiver view: PUBRELs received that no PUBCOMP has answered yet,
    /// per id. A count, not a set: a sender that got two PUBRECs for one
    /// message (a resent PUBLISH answered while the first PUBREC was
    /// still on its way) sends two PUBRELs, and when both reach the
    /// receiver before its first PUBCOMP does the proxy (the PUBCOMP and
    /// the second PUBREL cross on the wire) each PUBCOMP answers one.
    got_rel: HashMap<u16, u32>,
    /// Receiver view (broker): SUBSCRIBE/UNSUBSCRIBE ids received.
    got_req: HashSet<u16>,
    /// Sender view: the whole of its state is in the history (it started
    /// clean in this run), so a PUBLISH it never sent before is new.
    known: bool,
    /// Sender view: per packet id, a [`digest`] of the last QoS > 0
    /// PUBLISH sent with it since the state was reset (0: none), indexed
    /// by id and grown to the highest id used so far. A message older than
    /// the last of its id is no longer the sender's to resend, so nothing
    /// more is kept: this is bounded by the ids, not by the messages.
    last: Vec<u32>,
}

impl Side {
    fn reset_sender(&mut self) {
        self.inflight.clear();
        self.requests.clear();
        self.last = Vec::new();
        self.known = true;
        self.recs_owed.clear();
    }
    /// The digest of the last message sent with `pid`, if any since the
    /// state was reset.
    fn last_sent(&self, pid: u16) -> Option<u32> {
        self.last.get(pid as usize).copied().filter(|&d| d != 0)
    }
    fn note_sent(&mut self, pid: u16, d: u32) {
        let i = pid as usize;
        if i >= self.last.len() {
            // Powers of two, so the table is never larger than the ids.
            self.last.resize((i + 1).next_power_of_two(), 0);
        }
        self.last[i] = d;
    }
    fn reset_receiver(&mut self) {
        self.got_q1.clear();
        self.got_q2.clear();
        self.got_rel.clear();
        self.got_req.clear();
    }
}

/// An answer a receiver owes: (ack type, pid, event that asked, when, rule).
struct Owed {
    ack: crate::mqtt::PacketType,
    pid: u16,
    seq: u64,
    at: Duration,
    /// The receiver is the client (the packet went to it).
    client: bool,
    /// Another kind of ack the receiver sent for that id instead.
    instead: Option<crate::mqtt::PacketType>,
}

/// A packet a client received and must answer, in the order received.
struct Asked {
    pid: u16,
    seq: u64,
    /// An answer to a packet received later already went out: (its pid, seq).
    overtaken: Option<(u16, u64)>,
}

fn new_flow(p: &crate::mqtt::Publish, seq: u64, conn: ConnId) -> Flow {
    Flow {
        qos: p.qos,
        topic: p.topic.clone(),
        payload: p.payload.clone(),
        seq,
        conn,
        rec_seen: false,
        rel_sent: false,
    }
}

impl Checker for ProtocolChecker {
    fn name(&self) -> &str {
        "protocol"
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

impl ProtocolChecker {
    pub(crate) fn live(&self) -> Live {
        Live {
            clients: self.clients.clone(),
            resend_within: self.resend_within,
            ack_within: self.ack_within,
            ctx: Context::default(),
            conns: HashMap::new(),
            first_accepted: HashMap::new(),
            sides: HashMap::new(),
            packets: 0,
            found: Vec::new(),
            resends: Vec::new(),
            open_resends: HashMap::new(),
            owed: BTreeMap::new(),
            asked: HashMap::new(),
            order: Vec::new(),
        }
    }
}

/// A violation with the connections its events were on (for
/// `connections`, which reads a client's protocol violations as a cause
/// for the broker to close those connections).
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub(crate) v: Violation,
    pub(crate) conns: Vec<ConnId>,
}

fn found(rule: &str, message: String, events: &[(u64, ConnId)]) -> Found {
    let mut conns: Vec<ConnId> = events.iter().map(|e| e.1).collect();
    conns.sort_unstable();
    conns.dedup();
    Found {
        v: Violation::new(rule, message, events.iter().map(|e| e.0).collect()),
        conns,
    }
}

/// What the rules read of one connection, as known so far.
struct PConn {
    actor: String,
    /// The first CONNECT the client sent on it: its client key (see
    /// [`Index`](super::index::Index)'s `Conn::client_key`), version and clean start.
    key: Option<String>,
    version: Version,
    clean_start: bool,
    /// Its position among the connections (as [`Index`](super::index::Index) orders them).
    ci: usize,
    /// The first CONNACK the broker sent on it came; whether it resumed
    /// the session of an earlier connection of its actor.
    connacked: bool,
    resumed: bool,
    closed_at: Option<Duration>,
    /// What was sent on it before its first accepted CONNACK, which the
    /// resend obligations that CONNACK opens may find already met (a
    /// client may resend right after its CONNECT). Dropped at that CONNACK:
    /// later obligations are met by packets as they come.
    pre: Option<Sent>,
}

/// Packets sent on a connection, as the resend rule searches them.
#[derive(Default)]
struct Sent {
    /// First PUBLISH / PUBREL per (sent by the client?, packet id).
    publish: HashMap<(bool, u16), u64>,
    pubrel: HashMap<(bool, u16), u64>,
    /// PUBLISHes with DUP=1: (seq, by the client?, pid, flow content).
    dups: Vec<(u64, bool, Option<u16>, QoS, String, Bytes)>,
}

/// One owed resend after a resumed session, and what met it so far.
struct Item {
    rel: bool,
    flow: Flow,
    /// The first packet on the connection that resent it.
    found: Option<u64>,
    /// The first DUP PUBLISH of the same message under another id: (seq, id).
    moved: Option<(u64, u16)>,
}

/// The resends a CONNACK that resumed a session asks for.
struct Resend {
    conn: ConnId,
    from: Duration,
    connack_seq: u64,
    up: bool,
    v311: bool,
    /// By packet id (the order the verdict lists them in).
    items: BTreeMap<u16, Item>,
    /// Once every item was resent the judgement is final.
    done: Option<Vec<Found>>,
}

/// [`ProtocolChecker`] as a state machine over the events: per client key
/// and direction the flows in flight and the ids received, per
/// connection the answers still owed and the questions not yet answered,
/// per resumed session the resends still owed. The rules with a deadline
/// (acks within `ack_within`, resends within `resend_within`) are judged
/// at each verdict against the end of the log so far, as the batch form
/// judges them against the end of the history.
pub(crate) struct Live {
    clients: Vec<String>,
    resend_within: Duration,
    ack_within: Duration,
    ctx: Context,
    conns: HashMap<ConnId, PConn>,
    /// Per actor: the position of its first connection with a CONNECT that
    /// the broker accepted (a later one may resume its session).
    first_accepted: HashMap<String, usize>,
    /// (client key, towards the broker?) -> its flows.
    sides: HashMap<(String, bool), Side>,
    packets: usize,
    /// Violations decided as their event came, in log order.
    found: Vec<Found>,
    resends: Vec<Resend>,
    /// Per connection: the resends (positions in `resends`) still open.
    open_resends: HashMap<ConnId, Vec<usize>>,
    /// Per connection: the answers owed, in the order asked.
    owed: BTreeMap<ConnId, Vec<Owed>>,
    /// (connection, kind of answer) -> questions not answered yet.
    asked: HashMap<(ConnId, crate::mqtt::PacketType), Vec<Asked>>,
    /// Answers out of order, in log order.
    order: Vec<Found>,
}

/// A cheap stand-in for a message's (topic, payload) in the last message
/// of each packet id: 32 bits, never 0 (0 marks an id not used). A
/// collision could only hide a DUP=1 on a first send (one in 2^31 for a
/// reused id), never report one.
fn digest(topic: &str, payload: &[u8]) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish() as u32 | 1
}

impl Live {
    fn judged(&self, actor: &str) -> bool {
        self.clients.iter().any(|c| c == "*" || c == actor)
    }

    fn conn(&mut self, id: ConnId, actor: &str) -> &mut PConn {
        let n = self.conns.len();
        self.conns.entry(id).or_insert_with(|| PConn {
            actor: actor.to_string(),
            key: None,
            version: Version::V311,
            clean_start: true,
            ci: n,
            connacked: false,
            resumed: false,
            closed_at: None,
            pre: Some(Sent::default()),
        })
    }

    /// The violations and notes over everything fed so far.
    pub(crate) fn judge(&self) -> (Vec<Found>, Vec<String>) {
        let mut out = self.found.clone();
        let mut notes = vec![format!(
            "{} packets on {} connections; client rules for {}",
            self.packets,
            self.conns.len(),
            self.clients.join(", ")
        )];
        for r in &self.resends {
            match &r.done {
                Some(f) => out.extend(f.iter().cloned()),
                None => self.judge_resend(r, &mut out, &mut notes),
            }
        }
        self.judge_owed(&mut out);
        out.extend(self.order.iter().cloned());
        (out, notes)
    }

    /// Resending after a resumed session, judged against the end so far.
    fn judge_resend(&self, r: &Resend, out: &mut Vec<Found>, notes: &mut Vec<String>) {
        let Some(c) = self.conns.get(&r.conn) else {
            return;
        };
        let end = c.closed_at.unwrap_or(self.ctx.end());
        let who = if r.up {
            c.actor.clone()
        } else {
            format!("the broker (to {})", c.actor)
        };
        // (seq of the resend, seq of the first send) of each PUBLISH resent.
        let mut resent: Vec<(u64, u64)> = Vec::new();
        for (pid, it) in &r.items {
            let flow = &it.flow;
            if let Some(seq) = it.found {
                if !it.rel {
                    resent.push((seq, flow.seq));
                }
                continue;
            }
            if let (true, Some((seq, other))) = (r.v311, it.moved) {
                out.push(found(
                    if r.up { "MQTT-2.3.1-3" } else { "MQTT-2.3.1-4" },
                    format!(
                        "{who} resent {} on `{}` (first sent as pid {pid}) as pid {other}: a resend keeps its packet id",
                        show(&flow.payload),
                        flow.topic
                    ),
                    &[(flow.seq, flow.conn), (seq, r.conn)],
                ));
                continue;
            }
            let long_enough = end.saturating_sub(r.from) >= self.resend_within;
            if !long_enough
                || !self
                    .ctx
                    .undisturbed(&c.actor, r.from, r.from + self.resend_within)
            {
                notes.push(format!(
                    "{who} did not resend pid {pid} on {}, but the connection was too short or under a fault to judge",
                    r.conn
                ));
                continue;
            }
            out.push(found(
                "MQTT-4.4.0-1",
                format!(
                    "{who} resumed its session on {} but did not resend {} for pid {pid} ({} on `{}`) within {}",
                    r.conn,
                    if it.rel { "the PUBREL" } else { "the unacknowledged PUBLISH" },
                    show(&flow.payload),
                    flow.topic,
                    fmt_d(self.resend_within)
                ),
                &[(flow.seq, flow.conn), (r.connack_seq, r.conn)],
            ));
        }
        // A client resends its PUBLISHes in the order it first sent them.
        resent.sort_unstable();
        if let (true, true, Some(w)) = (r.v311, r.up, resent.windows(2).find(|w| w[0].1 > w[1].1)) {
            let conn_of = |seq: u64| {
                r.items
                    .values()
                    .find(|it| it.flow.seq == seq)
                    .map(|it| it.flow.conn)
                    .unwrap_or(r.conn)
            };
            out.push(found(
                "MQTT-4.6.0-1",
                format!(
                    "{who} resent its unacknowledged PUBLISHes on {} out of their original order: the one first sent in event #{} went again before the one first sent in event #{}",
                    r.conn, w[0].1, w[1].1
                ),
                &[
                    (w[1].1, conn_of(w[1].1)),
                    (w[0].1, conn_of(w[0].1)),
                    (w[0].0, r.conn),
                    (w[1].0, r.conn),
                ],
            ));
        }
    }

    /// The answers owed and not sent, judged against the end so far.
    fn judge_owed(&self, out: &mut Vec<Found>) {
        use crate::mqtt::PacketType as T;
        for (id, list) in &self.owed {
            let Some(c) = self.conns.get(id) else {
                continue;
            };
            if c.version == Version::V5 {
                continue;
            }
            let end = c.closed_at.unwrap_or(self.ctx.end());
            for o in list {
                if o.client && !self.judged(&c.actor) {
                    continue;
                }
                let limit = o.at + self.ack_within;
                if limit >= end
                    || !self.ctx.undisturbed(&c.actor, o.at, limit)
                    || self.ctx.broker_down_between(o.at, limit)
                {
                    continue;
                }
                let (rule, asked) = match o.ack {
                    T::PubAck => ("MQTT-4.3.2-2", "QoS 1 PUBLISH"),
                    T::PubRec => ("MQTT-4.3.3-2", "QoS 2 PUBLISH"),
                    _ => ("MQTT-4.3.3-2", "PUBREL"),
                };
                let who = if o.client {
                    c.actor.clone()
                } else {
                    format!("the broker (to {})", c.actor)
                };
                out.push(found(
                    rule,
                    format!(
                        "{who} got {asked} pid {} on {} and sent no {} for it within {} while the connection stood{}",
                        o.pid,
                        id,
                        o.ack,
                        fmt_d(self.ack_within),
                        o.instead
                            .map(|t| format!(" (it answered {t} instead)"))
                            .unwrap_or_default()
                    ),
                    &[(o.seq, *id)],
                ));
            }
        }
    }

    /// The first CONNECT and CONNACK of a connection, as [`Index`](super::index::Index) reads
    /// them (its `resumed`: a clean start 0 accepted with a session, after
    /// an earlier accepted connection of the same actor).
    fn track_conn(
        &mut self,
        conn: ConnId,
        actor: &str,
        to_broker: bool,
        packet: &Packet,
        fate: Fate,
    ) {
        let c = self.conn(conn, actor);
        match packet {
            Packet::Connect(cp) if to_broker && sent(fate) && c.key.is_none() => {
                c.key = Some(if cp.client_id.is_empty() {
                    format!("(assigned to {conn})")
                } else {
                    cp.client_id.clone()
                });
                c.version = cp.version;
                c.clean_start = cp.clean_start;
            }
            Packet::ConnAck(a) if !to_broker && sent(fate) && !c.connacked => {
                c.connacked = true;
                let (ci, actor, has_connect) = (c.ci, c.actor.clone(), c.key.is_some());
                let earlier = self.first_accepted.get(&actor).is_some_and(|&f| f < ci);
                let c = self.conn(conn, actor.as_str());
                c.resumed =
                    has_connect && !c.clean_start && a.code == 0 && a.session_present && earlier;
                if has_connect && a.code == 0 {
                    let f = self.first_accepted.entry(actor).or_insert(ci);
                    *f = (*f).min(ci);
                }
            }
            _ => {}
        }
    }

    /// Records a packet sent on a connection before its first accepted
    /// CONNACK, and meets the open resend obligations of the connection.
    fn meet_resends(&mut self, ev: &Event, conn: ConnId, up: bool, packet: &Packet) {
        if let Some(pre) = self.conns.get_mut(&conn).and_then(|c| c.pre.as_mut()) {
            match packet {
                Packet::Publish(p) => {
                    if let Some(pid) = p.pid {
                        pre.publish.entry((up, pid)).or_insert(ev.seq);
                    }
                    if p.dup {
                        pre.dups.push((
                            ev.seq,
                            up,
                            p.pid,
                            p.qos,
                            p.topic.clone(),
                            p.payload.clone(),
                        ));
                    }
                }
                Packet::PubRel(a) => {
                    pre.pubrel.entry((up, a.pid)).or_insert(ev.seq);
                }
                _ => {}
            }
        }
        let Some(open) = self.open_resends.get(&conn) else {
            return;
        };
        let open = open.clone();
        let mut closed = Vec::new();
        for ri in open {
            let r = &mut self.resends[ri];
            if r.up != up {
                continue;
            }
            match packet {
                Packet::Publish(p) => {
                    for (pid, it) in r.items.iter_mut() {
                        if it.rel {
                            continue;
                        }
                        if p.pid == Some(*pid) && it.found.is_none() {
                            it.found = Some(ev.seq);
                        }
                        if p.dup
                            && p.pid != Some(*pid)
                            && it.moved.is_none()
                            && p.qos == it.flow.qos
                            && p.topic == it.flow.topic
                            && p.payload == it.flow.payload
                        {
                            it.moved = Some((ev.seq, p.pid.unwrap_or(0)));
                        }
                    }
                }
                Packet::PubRel(a) => {
                    if let Some(it) = r.items.get_mut(&a.pid) {
                        if it.rel && it.found.is_none() {
                            it.found = Some(ev.seq);
                        }
                    }
                }
                _ => continue,
            }
            if r.items.values().all(|it| it.found.is_some()) {
                closed.push(ri);
            }
        }
        for ri in closed {
            self.close_resend(ri);
        }
    }

    /// Every owed resend came: the judgement (the order of the resends) is final.
    fn close_resend(&mut self, ri: usize) {
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        self.judge_resend(&self.resends[ri], &mut out, &mut notes);
        let r = &mut self.resends[ri];
        r.done = Some(out);
        r.items.clear();
        if let Some(list) = self.open_resends.get_mut(&r.conn) {
            list.retain(|&i| i != ri);
            if list.is_empty() {
                self.open_resends.remove(&r.conn);
            }
        }
    }

    /// A CONNACK that resumed a session: the sender owes the resend of
    /// each flow in flight (PUBLISH, or PUBREL once the PUBREC came).
    fn open_resend(&mut self, conn: ConnId, ev: &Event, cid: &str, up: bool, v311: bool) {
        let Some(side) = self.sides.get(&(cid.to_string(), up)) else {
            return;
        };
        if side.inflight.is_empty() {
            return;
        }
        let mut items: BTreeMap<u16, Item> = side
            .inflight
            .iter()
            .map(|(p, f)| {
                (
                    *p,
                    Item {
                        rel: f.rec_seen,
                        flow: f.clone(),
                        found: None,
                        moved: None,
                    },
                )
            })
            .collect();
        if let Some(pre) = self.conns.get(&conn).and_then(|c| c.pre.as_ref()) {
            for (pid, it) in items.iter_mut() {
                it.found = if it.rel {
                    pre.pubrel.get(&(up, *pid)).copied()
                } else {
                    pre.publish.get(&(up, *pid)).copied()
                };
                if !it.rel {
                    it.moved = pre
                        .dups
                        .iter()
                        .find(|(_, u, p, q, t, b)| {
                            *u == up
                                && *p != Some(*pid)
                                && *q == it.flow.qos
                                && *t == it.flow.topic
                                && *b == it.flow.payload
                        })
                        .map(|(seq, _, p, ..)| (*seq, p.unwrap_or(0)));
                }
            }
        }
        let ri = self.resends.len();
        self.resends.push(Resend {
            conn,
            from: ev.at,
            connack_seq: ev.seq,
            up,
            v311,
            items,
            done: None,
        });
        self.open_resends.entry(conn).or_default().push(ri);
        if self.resends[ri].items.values().all(|it| it.found.is_some()) {
            self.close_resend(ri);
        }
    }
}

impl Live {
    /// The rules judged as each packet comes (the per-client state).
    fn packet_rules(
        &mut self,
        ev: &Event,
        conn: ConnId,
        actor: &str,
        dir: Dir,
        packet: &Packet,
        fate: Fate,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Some(cid) = c.key.clone() else {
            return;
        };
        let (resumed, version) = (c.resumed, c.version);
        self.packets += 1;
        let judged_actor = self.judged(actor);
        let here = (ev.seq, conn);
        let mut out: Vec<Found> = Vec::new();
        let mut opens: Vec<bool> = Vec::new();
        let sides = &mut self.sides;
        let actor = &actor.to_string();
        let to_broker = dir == Dir::ToBroker;
        let (fate_sent, fate_seen) = (sent(fate), seen(fate));
        let who_sends = if to_broker {
            actor.clone()
        } else {
            format!("the broker (to {actor})")
        };
        let judge_sender = !to_broker || judged_actor;
        // The client's packet id rules, and the same for the server.
        let id_rule = if to_broker {
            "MQTT-2.3.1-2"
        } else {
            "MQTT-2.3.1-4"
        };
        match packet {
            Packet::Connect(cp) if to_broker && fate_sent && cp.clean_start => {
                for up in [true, false] {
                    let side = sides.entry((cid.clone(), up)).or_default();
                    side.reset_sender();
                    side.reset_receiver();
                }
            }
            Packet::ConnAck(a) if !to_broker && fate_sent && a.code == 0 => {
                if !a.session_present {
                    // The broker has no session: its state is gone. The
                    // client keeps its own in 3.1.1, so only reset ours of it
                    // when it asked for a clean start (done at CONNECT).
                    sides
                        .entry((cid.clone(), false))
                        .or_default()
                        .reset_sender();
                    sides
                        .entry((cid.clone(), true))
                        .or_default()
                        .reset_receiver();
                } else if resumed {
                    for up in [true, false] {
                        if up && !judged_actor {
                            continue;
                        }
                        sides.entry((cid.clone(), up)).or_default();
                        opens.push(up);
                    }
                }
            }
            Packet::Publish(p) => {
                let side = sides.entry((cid.clone(), to_broker)).or_default();
                if fate_sent && judge_sender {
                    if p.qos == QoS::AtMostOnce {
                        if p.pid.is_some() {
                            out.push(found(
                                "MQTT-2.3.1-5",
                                format!(
                                    "{who_sends} sent a QoS 0 PUBLISH on `{}` with a packet id",
                                    p.topic
                                ),
                                &[here],
                            ));
                        }
                        if p.dup {
                            out.push(found(
                                "MQTT-3.3.1-2",
                                format!(
                                    "{who_sends} sent a QoS 0 PUBLISH on `{}` with DUP=1",
                                    p.topic
                                ),
                                &[here],
                            ));
                        }
                    } else {
                        match p.pid {
                                None | Some(0) => out.push(found(
                                    "MQTT-2.3.1-1",
                                    format!(
                                        "{who_sends} sent a QoS {} PUBLISH on `{}` without a non-zero packet id",
                                        p.qos.as_u8(),
                                        p.topic
                                    ),
                                    &[here],
                                )),
                                Some(pid) => {
                                    let same = side.inflight.get(&pid).map(|f| {
                                        (f.topic == p.topic && f.payload == p.payload && f.qos == p.qos, f.clone())
                                    });
                                    match same {
                                        Some((true, f)) => {
                                            if !p.dup {
                                                out.push(found(
                                                    "MQTT-3.3.1-1",
                                                    format!(
                                                        "{who_sends} resent PUBLISH pid {pid} ({} on `{}`, first sent in event #{}) with DUP=0",
                                                        show(&p.payload),
                                                        p.topic,
                                                        f.seq
                                                    ),
                                                    &[(f.seq, f.conn), here],
                                                ));
                                            }
                                            if f.rel_sent {
                                                out.push(found(
                                                    "MQTT-4.3.3-1",
                                                    format!("{who_sends} resent the QoS 2 PUBLISH pid {pid} after sending its PUBREL"),
                                                    &[(f.seq, f.conn), here],
                                                ));
                                            }
                                        }
                                        Some((false, f)) => {
                                            out.push(found(
                                                id_rule,
                                                format!(
                                                    "{who_sends} sent a new PUBLISH ({} on `{}`) with pid {pid}, still in flight for {} on `{}` (event #{}){}",
                                                    show(&p.payload),
                                                    p.topic,
                                                    show(&f.payload),
                                                    f.topic,
                                                    f.seq,
                                                    if f.qos == QoS::ExactlyOnce { "; a QoS 2 id is free only after PUBCOMP" } else { "" }
                                                ),
                                                &[(f.seq, f.conn), here],
                                            ));
                                            side.recs_owed.remove(&pid);
                                            side.inflight.insert(pid, new_flow(p, ev.seq, conn));
                                        }
                                        None => {
                                            // The last message of its id (whose ack may not
                                            // have reached the sender yet), or in flight under
                                            // another id (the packet id rules judge that resend).
                                            let last = side.last_sent(pid);
                                            let again = last == Some(digest(&p.topic, &p.payload))
                                                || side.inflight.values().any(|f| {
                                                    f.topic == p.topic && f.payload == p.payload && f.qos == p.qos
                                                });
                                            if p.dup && side.known && !again && version != Version::V5 {
                                                let rule = match (to_broker, p.qos) {
                                                    (false, _) => "MQTT-3.3.1-3",
                                                    (true, QoS::AtLeastOnce) => "MQTT-4.3.2-1",
                                                    _ => "MQTT-4.3.3-1",
                                                };
                                                out.push(found(
                                                    rule,
                                                    format!(
                                                        "{who_sends} sent PUBLISH pid {pid} ({} on `{}`) with DUP=1 though {}: a first send has DUP=0",
                                                        show(&p.payload),
                                                        p.topic,
                                                        if last.is_some() {
                                                            "it is neither in flight nor the last message it sent with that id (it may take an id again only once the ack of the older message reached it)"
                                                        } else {
                                                            "it never sent it before"
                                                        }
                                                    ),
                                                    &[here],
                                                ));
                                            }
                                            // A resend (DUP=1) of the message in flight under another
                                            // id on this same connection: a resend keeps its packet id,
                                            // and under a new one its receiver, which knows a QoS 2
                                            // resend only by its id (3.1.1 §4.3.3), takes it for a new
                                            // message. (On a resumed session `judge_resend` says so.)
                                            if p.dup && side.known && version != Version::V5 && last != Some(digest(&p.topic, &p.payload)) {
                                                let first = side
                                                    .inflight
                                                    .iter()
                                                    .filter(|(_, f)| {
                                                        f.conn == conn && f.topic == p.topic && f.payload == p.payload && f.qos == p.qos
                                                    })
                                                    .min_by_key(|(_, f)| f.seq);
                                                if let Some((fpid, f)) = first {
                                                    out.push(found(
                                                        if to_broker { "MQTT-2.3.1-3" } else { "MQTT-2.3.1-4" },
                                                        format!(
                                                            "{who_sends} resent {} on `{}` (in flight as pid {fpid} since event #{}) as pid {pid} with DUP=1, an id it had not sent it under: a resend keeps its packet id",
                                                            show(&p.payload),
                                                            p.topic,
                                                            f.seq
                                                        ),
                                                        &[(f.seq, f.conn), here],
                                                    ));
                                                }
                                            }
                                            if let Some(&rs) = side.requests.get(&pid) {
                                                out.push(found(
                                                    id_rule,
                                                    format!("{who_sends} sent PUBLISH with pid {pid}, still in flight for a SUBSCRIBE/UNSUBSCRIBE (event #{})", rs.0),
                                                    &[rs, here],
                                                ));
                                            }
                                            side.recs_owed.remove(&pid);
                                            side.inflight.insert(pid, new_flow(p, ev.seq, conn));
                                        }
                                    }
                                }
                            }
                    }
                } else if fate_sent {
                    if let (Some(pid), true) = (p.pid, p.qos != QoS::AtMostOnce) {
                        let keep = side
                            .inflight
                            .get(&pid)
                            .is_some_and(|f| f.topic == p.topic && f.payload == p.payload);
                        if !keep {
                            side.recs_owed.remove(&pid);
                            side.inflight.insert(pid, new_flow(p, ev.seq, conn));
                        }
                    }
                }
                if let (true, Some(pid), true) = (fate_sent, p.pid, p.qos != QoS::AtMostOnce) {
                    side.note_sent(pid, digest(&p.topic, &p.payload));
                }
                if fate_seen {
                    if let Some(pid) = p.pid {
                        match p.qos {
                            QoS::AtLeastOnce => {
                                side.got_q1.insert(pid);
                            }
                            QoS::ExactlyOnce => {
                                side.got_q2.insert(pid);
                            }
                            QoS::AtMostOnce => {}
                        }
                    }
                }
            }
            Packet::PubAck(a) | Packet::PubRec(a) => {
                // Sent by the receiver of the flow: direction is reversed.
                let is_rec = matches!(packet, Packet::PubRec(_));
                let side = sides.entry((cid.clone(), !to_broker)).or_default();
                let got = if is_rec { &side.got_q2 } else { &side.got_q1 };
                if fate_sent && (!to_broker || judged_actor) && !got.contains(&a.pid) {
                    let acker = if to_broker {
                        actor.clone()
                    } else {
                        format!("the broker (to {actor})")
                    };
                    out.push(found(
                            "ack-without-publish",
                            format!(
                                "{acker} sent {} for pid {} but never received a QoS {} PUBLISH with that id",
                                packet.packet_type(),
                                a.pid,
                                if is_rec { 2 } else { 1 }
                            ),
                            &[here],
                        ));
                }
                if fate_seen && is_rec && a.code < 0x80 {
                    *side.recs_owed.entry(a.pid).or_default() += 1;
                }
                if fate_seen {
                    if let Some(f) = side.inflight.get_mut(&a.pid) {
                        let want = if is_rec {
                            QoS::ExactlyOnce
                        } else {
                            QoS::AtLeastOnce
                        };
                        if f.qos == want {
                            if is_rec && a.code < 0x80 {
                                f.rec_seen = true;
                            } else {
                                side.inflight.remove(&a.pid);
                            }
                        }
                    }
                }
            }
            Packet::PubRel(a) => {
                // Sent by the flow's sender.
                let side = sides.entry((cid.clone(), to_broker)).or_default();
                if fate_sent {
                    let answers_rec = match side.recs_owed.get_mut(&a.pid) {
                        Some(n) if *n > 0 => {
                            *n -= 1;
                            true
                        }
                        _ => false,
                    };
                    match side.inflight.get_mut(&a.pid) {
                        Some(f) if f.rec_seen => f.rel_sent = true,
                        // The flow is complete (or was never seen), but
                        // the sender answers a PUBREC that reached it.
                        _ if answers_rec => {}
                        other => {
                            if judge_sender {
                                let why = if other.is_some() {
                                    "before the PUBREC reached it"
                                } else {
                                    "for no QoS 2 message in flight"
                                };
                                out.push(found(
                                    "pubrel-without-pubrec",
                                    format!("{who_sends} sent PUBREL pid {} {why}", a.pid),
                                    &[here],
                                ));
                            }
                        }
                    }
                }
                if fate_seen {
                    *side.got_rel.entry(a.pid).or_default() += 1;
                }
            }
            Packet::PubComp(a) => {
                let side = sides.entry((cid.clone(), !to_broker)).or_default();
                let judge = if to_broker { judged_actor } else { true };
                // Each PUBCOMP answers one PUBREL received and not yet
                // answered; only one with none left is without PUBREL.
                let answers_rel = match side.got_rel.get_mut(&a.pid) {
                    Some(n) if fate_sent && *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                };
                if fate_sent && judge && !answers_rel {
                    let acker = if to_broker {
                        actor.clone()
                    } else {
                        format!("the broker (to {actor})")
                    };
                    out.push(found(
                        "pubcomp-without-pubrel",
                        format!(
                            "{acker} sent PUBCOMP pid {} but received no PUBREL with that id it had not already answered",
                            a.pid
                        ),
                        &[here],
                    ));
                }
                if fate_seen {
                    side.inflight.remove(&a.pid);
                }
                if side.got_rel.get(&a.pid) == Some(&0) {
                    side.got_rel.remove(&a.pid);
                }
            }
            Packet::Subscribe(_) | Packet::Unsubscribe(_) if to_broker => {
                let pid = packet.pid().unwrap_or(0);
                let side = sides.entry((cid.clone(), true)).or_default();
                if fate_sent && judged_actor {
                    if pid == 0 {
                        out.push(found(
                            "MQTT-2.3.1-1",
                            format!("{actor} sent {} with packet id 0", packet.packet_type()),
                            &[here],
                        ));
                    } else if let Some(prev) = side
                        .inflight
                        .get(&pid)
                        .map(|f| (f.seq, f.conn))
                        .or(side.requests.get(&pid).copied())
                    {
                        out.push(found(
                            "MQTT-2.3.1-2",
                            format!(
                                "{actor} sent {} with pid {pid}, still in flight (event #{})",
                                packet.packet_type(),
                                prev.0
                            ),
                            &[prev, here],
                        ));
                    }
                }
                if fate_sent {
                    side.requests.insert(pid, here);
                }
                if fate_seen {
                    side.got_req.insert(pid);
                }
            }
            Packet::SubAck(_) | Packet::UnsubAck(_) if !to_broker => {
                let pid = packet.pid().unwrap_or(0);
                let side = sides.entry((cid.clone(), true)).or_default();
                if fate_sent && !side.got_req.contains(&pid) {
                    out.push(found(
                        "MQTT-2.3.1-7",
                        format!(
                            "the broker sent {} pid {pid} to {actor}, which sent no such request",
                            packet.packet_type()
                        ),
                        &[here],
                    ));
                }
                if fate_seen {
                    side.requests.remove(&pid);
                }
            }
            _ => {}
        }
        self.found.extend(out);
        for up in opens {
            self.open_resend(conn, ev, &cid, up, version != Version::V5);
        }
    }
}

impl Live {
    /// The answers a packet asks for or gives (`ack_within`), and the
    /// order of a client's answers.
    fn answer_rules(
        &mut self,
        ev: &Event,
        conn: ConnId,
        actor: &str,
        dir: Dir,
        packet: &Packet,
        fate: Fate,
    ) {
        use crate::mqtt::PacketType as T;
        let to_client = dir == Dir::ToClient;
        // Answers owed.
        let list = self.owed.entry(conn).or_default();
        let ask = |ack| Owed {
            ack,
            pid: packet.pid().unwrap_or(0),
            seq: ev.seq,
            at: ev.at,
            client: to_client,
            instead: None,
        };
        match packet {
            Packet::Publish(p) if seen(fate) && p.pid.is_some() => match p.qos {
                QoS::AtLeastOnce => list.push(ask(T::PubAck)),
                QoS::ExactlyOnce => list.push(ask(T::PubRec)),
                QoS::AtMostOnce => {}
            },
            Packet::PubRel(_) if seen(fate) => list.push(ask(T::PubComp)),
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubComp(a) if sent(fate) => {
                let t = packet.packet_type();
                // Sent by the receiver: the request went the other way.
                if let Some(i) = list
                    .iter()
                    .position(|o| o.ack == t && o.pid == a.pid && o.client != to_client)
                {
                    list.remove(i);
                } else if let Some(o) = list
                    .iter_mut()
                    .find(|o| o.pid == a.pid && o.client != to_client && o.instead.is_none())
                {
                    o.instead = Some(t);
                }
            }
            _ => {}
        }
        if list.is_empty() {
            self.owed.remove(&conn);
        }
        // The order of a client's answers (3.1.1 connections).
        if !self.judged(actor)
            || self
                .conns
                .get(&conn)
                .is_none_or(|c| c.version == Version::V5)
        {
            return;
        }
        let question = match packet {
            Packet::Publish(p) if p.qos == QoS::AtLeastOnce => Some(T::PubAck),
            Packet::Publish(p) if p.qos == QoS::ExactlyOnce => Some(T::PubRec),
            Packet::PubRec(_) => Some(T::PubRel),
            _ => None,
        };
        match (dir, question) {
            (Dir::ToClient, Some(answer)) if seen(fate) => {
                let pid = packet.pid().unwrap_or(0);
                let list = self.asked.entry((conn, answer)).or_default();
                if !list.iter().any(|a| a.pid == pid) {
                    list.push(Asked {
                        pid,
                        seq: ev.seq,
                        overtaken: None,
                    });
                }
            }
            (Dir::ToBroker, _) if sent(fate) => {
                let t = packet.packet_type();
                if !matches!(t, T::PubAck | T::PubRec | T::PubRel) {
                    return;
                }
                let pid = packet.pid().unwrap_or(0);
                let Some(list) = self.asked.get_mut(&(conn, t)) else {
                    return;
                };
                let Some(i) = list.iter().position(|a| a.pid == pid) else {
                    return;
                };
                let a = list.remove(i);
                for earlier in &mut list[..i] {
                    earlier.overtaken.get_or_insert((pid, ev.seq));
                }
                if list.is_empty() {
                    self.asked.remove(&(conn, t));
                }
                if let Some((later, later_seq)) = a.overtaken {
                    let (rule, asked_what) = match t {
                        T::PubAck => ("MQTT-4.6.0-2", "QoS 1 PUBLISH"),
                        T::PubRec => ("MQTT-4.6.0-3", "QoS 2 PUBLISH"),
                        _ => ("MQTT-4.6.0-4", "PUBREC"),
                    };
                    self.order.push(found(
                        rule,
                        format!(
                            "{actor} sent {t} pid {pid} after {t} pid {later}, though the {asked_what} pid {pid} reached it first"
                        ),
                        &[(a.seq, conn), (later_seq, conn), (ev.seq, conn)],
                    ));
                }
            }
            _ => {}
        }
    }
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        self.ctx.feed(ev);
        match &ev.kind {
            EventKind::ConnOpened { conn, actor } => {
                self.conn(*conn, actor);
            }
            EventKind::ConnClosed { conn, actor, .. } => {
                let at = ev.at;
                let c = self.conn(*conn, actor);
                c.closed_at.get_or_insert(at);
            }
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } => {
                let to_broker = *dir == Dir::ToBroker;
                self.track_conn(*conn, actor, to_broker, packet, *fate);
                self.packet_rules(ev, *conn, actor, *dir, packet, *fate);
                if sent(*fate) {
                    self.meet_resends(ev, *conn, to_broker, packet);
                }
                if let (Packet::ConnAck(a), false, true) = (packet, to_broker, sent(*fate)) {
                    if a.code == 0 {
                        if let Some(c) = self.conns.get_mut(conn) {
                            c.pre = None;
                        }
                    }
                }
                self.answer_rules(ev, *conn, actor, *dir, packet, *fate);
            }
            _ => {}
        }
    }

    fn verdict(&self) -> Verdict {
        let (out, notes) = self.judge();
        Verdict {
            checker: "protocol".to_string(),
            violations: out.into_iter().map(|f| f.v).collect(),
            notes,
        }
    }
}

#[cfg(test)]
impl Live {
    /// What the DUP=0-on-a-first-send rule keeps: packet id slots over
    /// every sender.
    fn dup_slots(&self) -> usize {
        self.sides.values().map(|s| s.last.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::*;
    use super::*;
    use crate::mqtt::PacketType;

    fn checker() -> ProtocolChecker {
        ProtocolChecker {
            clients: vec!["device".into()],
            resend_within: Duration::from_secs(2),
            ack_within: Duration::from_secs(1),
        }
    }

    /// Feeds `live` a 3.1.1 device's `n` distinct QoS 1 messages, each
    /// acknowledged, taking packet ids 1, 2, … and wrapping after `ids`,
    /// event by event (the test keeps no log).
    fn acknowledged(live: &mut Live, n: usize, ids: usize) {
        let mut k = Kit::new();
        k.session(1, "device", connect311("dut-1"), connack(false, 0, ""));
        let mut seq = 0;
        let mut feed = |live: &mut Live, k: &Kit| {
            for mut ev in k.history().events {
                (ev.seq, ev.at) = (seq, Duration::from_millis(seq));
                seq += 1;
                live.feed(&ev);
            }
        };
        feed(live, &k);
        for i in 0..n {
            let pid = (i % ids + 1) as u16;
            let mut k = Kit::new();
            k.up(
                1,
                "device",
                publish(Some(pid), 1, "dut/1/data", &format!("reading-{i}"), ""),
            )
            .down(1, "device", ack(PacketType::PubAck, pid, 0));
            feed(live, &k);
        }
    }

    /// What the DUP rule keeps is bounded by the packet ids a sender
    /// uses, not by its messages: 10,000 messages over 16 ids leave 32
    /// slots (the table grows in powers of two), and 70,000 over every id
    /// stay within the 65,536 there are.
    #[test]
    fn the_dup_rule_keeps_one_slot_per_packet_id_not_per_message() {
        let mut live = checker().live();
        acknowledged(&mut live, 10_000, 16);
        assert!(live.verdict().ok(), "{:?}", live.verdict());
        assert_eq!(live.dup_slots(), 32);

        let mut live = checker().live();
        acknowledged(&mut live, 70_000, 65_535);
        assert!(live.verdict().ok(), "{:?}", live.verdict());
        assert_eq!(live.dup_slots(), 65_536);
    }
}
