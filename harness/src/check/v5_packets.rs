//! `v5_packets`: packet-order rules of a 5.0 connection (statement ids are
//! MQTT 5.0's). Broker conduct is judged on every 5.0 connection, client
//! conduct for the actors in `clients`.
//!
//! - the client's first packet is CONNECT [MQTT-3.1.0-1] (on a connection
//!   whose later CONNECT says 5.0); a second CONNECT that reached the broker
//!   makes it close the connection within `slack` [MQTT-3.1.0-2];
//! - before its successful CONNACK the broker sends only CONNACK, AUTH or
//!   DISCONNECT [MQTT-3.2.0-1], and never a second CONNACK [MQTT-3.2.0-2];
//! - a QoS 0 PUBLISH never has DUP set [MQTT-3.3.1-2] [MQTT-4.3.1-1];
//! - a new QoS 1/2 message never takes a packet id its sender still has in
//!   flight on the connection [MQTT-4.3.2-1] [MQTT-4.3.3-1] (the earlier
//!   one awaits PUBACK [MQTT-4.3.2-3], PUBREC [MQTT-4.3.3-3] or PUBCOMP
//!   [MQTT-4.3.3-5]); on a connection with clean start 1 a first send has
//!   DUP 0 [MQTT-4.3.2-2] [MQTT-4.3.3-2] (the broker's DUP tells only
//!   whether its send repeats [MQTT-3.3.1-3]);
//! - a PUBLISH refused with a PUBACK or PUBREC of 0x80 or more is not sent
//!   again, on any later connection of the client id [MQTT-4.4.0-2];
//! - the client answers in order: PUBACKs and PUBRECs as the PUBLISHes came
//!   [MQTT-4.6.0-2] [MQTT-4.6.0-3], PUBRELs as the PUBRECs came
//!   [MQTT-4.6.0-4], resends on a new connection as first sent
//!   [MQTT-4.6.0-1];
//! - enhanced authentication: with an Authentication Method the client
//!   sends only AUTH or DISCONNECT before the CONNACK [MQTT-3.1.2-30]; the
//!   broker's AUTH before its CONNACK says 0x18 [MQTT-4.12.0-2], and so does
//!   the client's answer to a challenge [MQTT-4.12.0-3]; every AUTH and the
//!   successful CONNACK repeat the CONNECT's method [MQTT-4.12.0-5], a
//!   re-authentication too [MQTT-4.12.1-1]; without a method no AUTH from
//!   the broker and no method in its CONNACK [MQTT-4.12.0-6], no AUTH from
//!   the client [MQTT-4.12.0-7];
//! - an ack names a packet id its peer sent: the broker's PUBACK/PUBREC for
//!   a QoS 1/2 PUBLISH the client sent on this connection or an earlier one
//!   of its client id [MQTT-2.2.1-5]; SUBACK and UNSUBACK for a pending
//!   request, with its packet id [MQTT-3.8.4-2], [MQTT-3.10.4-5]
//!   [MQTT-2.2.1-6] — one ack for a request of several filters
//!   [MQTT-3.8.4-5] [MQTT-3.10.4-6];
//! - every SUBSCRIBE and UNSUBSCRIBE that reached the broker is answered
//!   within `slack` while the connection stays open and fault-free
//!   [MQTT-3.8.4-1], [MQTT-3.10.4-4];
//! - once a sender has sent PUBREL for a packet id it does not send that
//!   PUBLISH again until PUBCOMP [MQTT-4.3.3-6];
//! - a PUBLISH to a subscriber is on a topic one of its session's
//!   subscriptions matches [MQTT-3.3.2-3] — a `$` topic never through a
//!   filter starting with a wildcard [MQTT-4.7.2-1];
//! - a message that came after an UNSUBSCRIBE is not sent through the
//!   removed subscription [MQTT-3.10.4-2];
//! - after a DISCONNECT with reason 0 that reached the broker, the
//!   connection's will is never published [MQTT-3.14.4-3] [MQTT-3.1.2-10].
//!
//! One state machine judges: [`PacketsChecker::check`] feeds a history's
//! events to a fresh one and returns its verdict, and `observe` feeds it
//! as events come ([`Checker::incremental`]), so both forms are one. It
//! keeps per connection the rules' state (packet ids in flight, requests
//! unanswered, acks owed), per client id the packet ids sent, refused and
//! first sent, per client id the filters subscribed (not every SUBSCRIBE),
//! and per 5.0 client id with subscriptions the messages that reached the
//! broker on a topic its filters match ([`super::owed`]): owed while a
//! matching filter was live, taken by a first send, or on record as come
//! after every matching filter was removed — 128-bit digests, never the
//! messages, at most [`PER_SESSION`](super::owed::PER_SESSION) per client
//! id. [MQTT-3.10.4-2] lets a broker deliver after an UNSUBSCRIBE a message
//! it buffered before it, and such a delivery is told apart from a new one
//! only by whether the broker still owed that topic and payload to the
//! client — however long before it came (a persistent session's queue), so
//! a window of recent messages would not do; what the broker still owes is
//! bounded by what it must hold itself. A deadline (an ack within
//! `slack`, the broker's close after a second CONNECT) is settled once the
//! log's time has passed it; until then the verdict judges it against the
//! log's end, without settling it.
//! Rules over several connections take them as the events came: an ack, a
//! delivery or a resend is judged by what was sent and subscribed before
//! it.
//!
//! Decided anew when the table of every message was replaced by what is
//! owed (verdicts the old table gave differently):
//! 1. *After an UNSUBSCRIBE only what was still owed may come.* A first
//!    send after every matching filter was removed is of the latest
//!    arrival of its topic and payload, unless an arrival the broker still
//!    owed the client id (came while a matching filter was live, not yet
//!    taken by a first send) could be it. The old table excused any
//!    delivery whose content first reached the broker before the first
//!    UNSUBSCRIBE — also content published before the subscription (never
//!    owed) or owed once and delivered already, when the same content came
//!    again after the UNSUBSCRIBE: those are new messages the broker must
//!    not add [MQTT-3.10.4-2]. A retained message is owed to the
//!    filters of a SUBSCRIBE that match its topic [MQTT-3.3.1-9]. A
//!    delivery the table has nothing for (its content never seen to reach
//!    the broker, e.g. a will, or pushed out by the cap) is not judged.
//!    Since [`super::owed`] keeps the same content owed twice as two
//!    publications, oldest first, a first send takes the oldest owed one;
//!    this rule asks only whether one was owed, so its verdicts did not
//!    change.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use bytes::Bytes;

use super::index::{seen, sent};
use super::live::Context;
use super::owed::{self, content_key};
use super::v5_limits::{judged, Pk};
use super::{Checker, Incremental, Verdict, Violation};
use crate::history::{ConnId, Dir, Event, EventKind, Fate, History};
use crate::mqtt::{props, topic, Connect, Packet, PacketType, PropValue, QoS, Version};

pub struct PacketsChecker {
    pub clients: Vec<String>,
    pub slack: Duration,
}

impl Checker for PacketsChecker {
    fn name(&self) -> &str {
        "v5_packets"
    }

    fn check(&self, history: &History) -> Verdict {
        super::judge_whole(self.live(), history)
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(self.live()))
    }
}

impl PacketsChecker {
    fn live(&self) -> Live {
        Live {
            clients: self.clients.clone(),
            slack: self.slack,
            ctx: Context::default(),
            order: Vec::new(),
            conns: HashMap::new(),
            shared: Shared::default(),
            ix: HashMap::new(),
            cid_first: HashMap::new(),
            aliases: HashMap::new(),
            subs: HashMap::new(),
            owed: HashMap::new(),
            v5_cids: HashMap::new(),
            retained: HashMap::new(),
            off_sub: Vec::new(),
            after_unsub: Vec::new(),
            wills: BTreeMap::new(),
        }
    }
}

/// The state of [`PacketsChecker`] over the log fed so far.
struct Live {
    clients: Vec<String>,
    slack: Duration,
    ctx: Context,
    /// Connections in order of their first packet.
    order: Vec<ConnId>,
    conns: HashMap<ConnId, (String, Phase)>,
    shared: Shared,
    /// Per connection, what its first CONNECT from the client said.
    ix: HashMap<ConnId, IxConn>,
    /// Per client id, the first connection (in order of first event) that
    /// named it.
    cid_first: HashMap<String, usize>,
    /// Topic aliases per connection and direction (to the broker: true).
    aliases: HashMap<(ConnId, bool), HashMap<u32, String>>,
    /// Per client id (of the SUBSCRIBE's connection), per (filter, actor).
    subs: HashMap<Option<String>, BTreeMap<(String, String), SubAgg>>,
    /// Per 5.0 client id with subscriptions, the messages that reached
    /// the broker on a topic one of its filters matches (see [`Arrival`]).
    owed: HashMap<String, owed::Messages<Arrival>>,
    /// Per client id, whether its latest CONNECT said 5.0.
    v5_cids: HashMap<String, bool>,
    /// Per topic, the retained message (content key, arrival) the broker
    /// holds: bounded by the topics, as the broker's own store is.
    retained: HashMap<String, (u128, u64)>,
    /// [MQTT-3.3.2-3] [MQTT-4.7.2-1], as deliveries came.
    off_sub: Vec<Violation>,
    /// [MQTT-3.10.4-2], as deliveries came.
    after_unsub: Vec<Violation>,
    /// Wills to watch for, by the position of their connection.
    wills: BTreeMap<usize, WillWatch>,
}

/// State shared by the connections' judgements.
#[derive(Default)]
struct Shared {
    /// QoS>0 packet ids each client id sent.
    sent_by: HashMap<String, BTreeSet<u16>>,
    /// (client id, direction, packet id) → the refusing ack's seq.
    refused: HashMap<(String, Dir, u16), u64>,
    /// (client id, packet id) → the client's latest first send of it.
    firsts: HashMap<(String, u16), u64>,
    /// [MQTT-4.4.0-2] [MQTT-4.6.0-1], as they came.
    resends: Vec<Violation>,
    /// Deadlines to settle once the log's time is past them.
    wake: BinaryHeap<Reverse<(Duration, ConnId)>>,
}

/// A connection until its first CONNECT says which version it is (its
/// packets kept), then judged as 5.0 or left alone.
enum Phase {
    Early(Vec<(u64, Duration, Dir, Fate, Packet)>),
    V5(Box<Conn5>),
    Other,
}

struct IxConn {
    ci: usize,
    first: u64,
    cid: Option<String>,
    clean: bool,
    version: Option<Version>,
    will: Option<(String, Bytes)>,
    disconnected: bool,
}

/// The SUBSCRIBEs of one filter by one actor under one client id.
struct SubAgg {
    /// The first: its seq and the filter's place in it.
    first: (u64, usize),
    /// One of them is not unsubscribed yet.
    open: bool,
    /// The first and the latest UNSUBSCRIBE that removed one.
    min_unsub: Option<u64>,
    max_unsub: Option<u64>,
}

/// The latest arrival of a message (topic and payload) at the broker, as
/// one client id's subscriptions took it: `owed` when a filter of it that
/// matched was live (the broker owes it, and may deliver it after a later
/// UNSUBSCRIBE [MQTT-3.10.4-2]), else it came when every matching filter
/// had been removed.
#[derive(Clone, Copy)]
struct Arrival {
    owed: bool,
    seq: u64,
}

/// A will that must not be published after its connection's DISCONNECT 0.
struct WillWatch {
    conn: ConnId,
    actor: String,
    cid: Option<String>,
    ds: u64,
    topic: String,
    payload: Bytes,
    /// The first connection of the client id after the DISCONNECT.
    next: Option<u64>,
    /// The first PUBLISH of the will to another connection after it.
    hit: Option<u64>,
}

impl WillWatch {
    fn fails(&self) -> bool {
        self.hit.is_some_and(|w| w < self.next.unwrap_or(u64::MAX))
    }
    /// Nothing that comes can make it fail.
    fn done(&self) -> bool {
        self.next.is_some() && !self.fails()
    }
}

/// A SUBSCRIBE or UNSUBSCRIBE that reached the broker, unanswered.
struct Req {
    pid: u16,
    seq: u64,
    at: Duration,
    unsub: bool,
    /// Settled once its deadline passed: whether it then owed an answer.
    late: Option<bool>,
}

/// The second CONNECT that reached the broker on a connection.
struct Second {
    /// Its place among the connection's violations.
    pos: usize,
    seq: u64,
    at: Duration,
    /// Settled once its deadline passed.
    settled: Option<Verdict>,
}

/// One 5.0 connection's rules as its packets come.
struct Conn5 {
    id: ConnId,
    cid: String,
    client: bool,
    fresh: bool,
    /// The client's first packet was seen (and judged, [MQTT-3.1.0-1]).
    first_seen: bool,
    first_bad: Option<Violation>,
    found: Verdict,
    second: Option<Second>,
    connack_ok: bool,
    connacks: u32,
    connects: u32,
    pending: Vec<Req>,
    released: HashMap<(Dir, u16), u64>,
    auth: AuthState,
    flight: HashMap<(Dir, u16), Flight>,
    ever: BTreeSet<(bool, u16)>,
    /// Filters per request (packet id, unsubscribe), and the answered ones.
    filters: HashMap<(u16, bool), usize>,
    answered: BTreeSet<(u16, bool)>,
    order: AckOrder,
    /// The original send of the client's latest resend [MQTT-4.6.0-1].
    last_original: Option<(u64, u16)>,
}

impl Conn5 {
    fn new(id: ConnId, actor: &str, connect: &Connect, clients: &[String]) -> Conn5 {
        Conn5 {
            id,
            cid: connect.client_id.clone(),
            client: judged(clients, actor),
            fresh: connect.clean_start,
            first_seen: false,
            first_bad: None,
            found: Verdict::new("v5_packets"),
            second: None,
            connack_ok: false,
            connacks: 0,
            connects: 0,
            pending: Vec::new(),
            released: HashMap::new(),
            auth: AuthState::new(auth_method(&connect.properties).map(str::to_string)),
            flight: HashMap::new(),
            ever: BTreeSet::new(),
            filters: HashMap::new(),
            answered: BTreeSet::new(),
            order: AckOrder::default(),
            last_original: None,
        }
    }

    /// Judges the connection's next packet.
    fn step(&mut self, p: &Pk, actor: &str, slack: Duration, sh: &mut Shared) {
        let client = self.client;
        let v = &mut self.found;
        if p.dir == Dir::ToBroker && !self.first_seen {
            self.first_seen = true;
            if client && !matches!(p.packet, Packet::Connect(_)) {
                self.first_bad = Some(Violation::new(
                    "MQTT-3.1.0-1",
                    format!(
                        "{actor}'s first packet was {}, not CONNECT",
                        p.packet.packet_type()
                    ),
                    vec![p.seq],
                ));
            }
        }
        let judge = p.dir == Dir::ToClient || client;
        self.auth.see(p, client, actor, v);
        if judge && sent(p.fate) {
            packet_ids(p, &mut self.flight, &mut self.ever, self.fresh, actor, v);
        }
        acked(p, &mut self.flight);
        if client {
            self.order.see(p, actor, v);
        }
        if let (Packet::Connect(_), Dir::ToBroker, true) = (p.packet, p.dir, seen(p.fate)) {
            self.connects += 1;
            if self.connects == 2 {
                self.second = Some(Second {
                    pos: v.violations.len(),
                    seq: p.seq,
                    at: p.at,
                    settled: None,
                });
                sh.wake.push(Reverse((p.at + slack, self.id)));
            }
        }
        match (p.packet, p.dir) {
            (Packet::ConnAck(a), Dir::ToClient) => {
                self.connacks += 1;
                if self.connacks == 2 {
                    v.fail(
                        "MQTT-3.2.0-2",
                        format!("a second CONNACK to {actor}"),
                        vec![p.seq],
                    );
                }
                self.connack_ok |= a.code == 0;
            }
            (Packet::Auth(_) | Packet::Disconnect(_), Dir::ToClient) => {}
            (other, Dir::ToClient) if !self.connack_ok => {
                v.fail(
                    "MQTT-3.2.0-1",
                    format!(
                        "the broker sent {} to {actor} before a successful CONNACK",
                        other.packet_type(),
                    ),
                    vec![p.seq],
                );
                self.connack_ok = true; // say it once
            }
            _ => {}
        }
        match p.packet {
            Packet::Publish(pb) if sent(p.fate) => {
                if pb.qos == QoS::AtMostOnce && pb.dup && judge {
                    for rule in ["MQTT-3.3.1-2", "MQTT-4.3.1-1"] {
                        v.fail(
                            rule,
                            format!(
                                "a QoS 0 PUBLISH with DUP set on {actor}'s connection ({:?})",
                                p.dir
                            ),
                            vec![p.seq],
                        );
                    }
                }
                if let Some(pid) = pb.pid {
                    if p.dir == Dir::ToBroker {
                        sh.sent_by.entry(self.cid.clone()).or_default().insert(pid);
                    }
                    if let Some(rel) = self.released.remove(&(p.dir, pid)) {
                        if judge {
                            v.fail(
                                "MQTT-4.3.3-6",
                                format!("PUBLISH {pid} sent again on {actor}'s connection after its PUBREL"),
                                vec![rel, p.seq],
                            );
                        }
                    }
                }
            }
            Packet::PubRel(a) if sent(p.fate) => {
                self.released.insert((p.dir, a.pid), p.seq);
            }
            Packet::PubComp(a) => {
                self.released.remove(&(back(p.dir), a.pid));
            }
            _ => {}
        }
        match (p.packet, p.dir) {
            (Packet::PubAck(a) | Packet::PubRec(a), Dir::ToClient)
                if !sh
                    .sent_by
                    .get(&self.cid)
                    .is_some_and(|s| s.contains(&a.pid)) =>
            {
                v.fail(
                    "MQTT-2.2.1-5",
                    format!(
                        "the broker acknowledged packet id {} that {actor} never published",
                        a.pid
                    ),
                    vec![p.seq],
                );
            }
            (Packet::Subscribe(s), Dir::ToBroker) if seen(p.fate) => {
                self.request(s.pid, false, s.filters.len(), p, slack, sh);
            }
            (Packet::Unsubscribe(s), Dir::ToBroker) if seen(p.fate) => {
                self.request(s.pid, true, s.filters.len(), p, slack, sh);
            }
            (Packet::SubAck(a), Dir::ToClient) => self.answer(a.pid, false, p.seq, actor),
            (Packet::UnsubAck(a), Dir::ToClient) => self.answer(a.pid, true, p.seq, actor),
            _ => {}
        }
        self.resends(p, actor, sh);
    }

    fn request(
        &mut self,
        pid: u16,
        unsub: bool,
        n: usize,
        p: &Pk,
        slack: Duration,
        sh: &mut Shared,
    ) {
        self.pending.push(Req {
            pid,
            seq: p.seq,
            at: p.at,
            unsub,
            late: None,
        });
        self.filters.insert((pid, unsub), n);
        sh.wake.push(Reverse((p.at + slack, self.id)));
    }

    /// A SUBACK (`unsub` false) or UNSUBACK for `pid`.
    fn answer(&mut self, pid: u16, unsub: bool, seq: u64, actor: &str) {
        match self
            .pending
            .iter()
            .position(|x| x.pid == pid && x.unsub == unsub)
        {
            Some(i) => {
                self.pending.remove(i);
                self.answered.insert((pid, unsub));
            }
            None => {
                let v = &mut self.found;
                split_answer(&self.filters, &self.answered, (pid, unsub), seq, actor, v);
                let (rules, what, to) = if unsub {
                    (["MQTT-3.10.4-5", "MQTT-2.2.1-6"], "UNSUBACK", "UNSUBSCRIBE")
                } else {
                    (["MQTT-3.8.4-2", "MQTT-2.2.1-6"], "SUBACK", "SUBSCRIBE")
                };
                for rule in rules {
                    v.fail(
                        rule,
                        format!("{what} {pid} to {actor} answers no {to}"),
                        vec![seq],
                    );
                }
            }
        }
    }

    /// Rules over a client id's connections: a PUBLISH answered with a
    /// PUBACK or PUBREC of 0x80 or more is never sent again [MQTT-4.4.0-2];
    /// a client resends its PUBLISHes in the order it first sent them
    /// [MQTT-4.6.0-1] (clients in `clients` only).
    fn resends(&mut self, p: &Pk, actor: &str, sh: &mut Shared) {
        if self.cid.is_empty() {
            return; // the broker makes up a new id each time
        }
        let cid = &self.cid;
        match p.packet {
            Packet::Publish(pb) if sent(p.fate) => {
                let Some(pid) = pb.pid else { return };
                let judge = p.dir == Dir::ToClient || self.client;
                if pb.dup {
                    if let Some(ack) = sh.refused.get(&(cid.clone(), p.dir, pid)) {
                        if judge {
                            sh.resends.push(Violation::new(
                                "MQTT-4.4.0-2",
                                format!("PUBLISH {pid} on {actor}'s connection ({:?}) was sent again after its receiver refused it with a reason of 0x80 or more", p.dir),
                                vec![*ack, p.seq],
                            ));
                        }
                    }
                    if p.dir == Dir::ToBroker && self.client {
                        if let Some(&orig) = sh.firsts.get(&(cid.clone(), pid)) {
                            if let Some((prev, prev_pid)) = self.last_original {
                                if orig < prev {
                                    sh.resends.push(Violation::new(
                                        "MQTT-4.6.0-1",
                                        format!("{actor} resent PUBLISH {pid} after PUBLISH {prev_pid}, though it first sent {pid} earlier"),
                                        vec![orig, prev, p.seq],
                                    ));
                                }
                            }
                            self.last_original = Some((orig, pid));
                        }
                    }
                } else {
                    sh.refused.remove(&(cid.clone(), p.dir, pid));
                    if p.dir == Dir::ToBroker {
                        sh.firsts.insert((cid.clone(), pid), p.seq);
                    }
                }
            }
            Packet::PubAck(a) | Packet::PubRec(a) if a.code >= 0x80 && seen(p.fate) => {
                sh.refused.insert((cid.clone(), back(p.dir), a.pid), p.seq);
            }
            _ => {}
        }
    }

    /// Settles the deadlines the log's time (`ctx.end()`) has passed.
    fn settle(&mut self, actor: &str, ctx: &Context, slack: Duration) {
        let end = ctx.end();
        let closed = ctx
            .conns
            .get(&self.id)
            .and_then(|m| m.closed.as_ref().map(|(s, _)| s.at));
        for r in self.pending.iter_mut().filter(|r| r.late.is_none()) {
            let limit = r.at + slack;
            if limit < end {
                r.late =
                    Some(closed.is_none_or(|t| t > limit) && ctx.undisturbed(actor, r.at, limit));
            }
        }
        if let Some(s) = self.second.as_mut().filter(|s| s.settled.is_none()) {
            if s.at + slack < end {
                s.settled = Some(second_connect(self.id, s.seq, s.at, ctx, slack));
            }
        }
    }

    /// Adds the connection's violations (and notes) to `v`, judging what is
    /// not settled against the log's end.
    fn verdict(&self, actor: &str, ctx: &Context, slack: Duration, v: &mut Verdict) {
        v.violations.extend(self.first_bad.iter().cloned());
        let found = &self.found.violations;
        let split = self.second.as_ref().map_or(found.len(), |s| s.pos);
        v.violations.extend(found[..split].iter().cloned());
        if let Some(s) = &self.second {
            let judged;
            let w = match &s.settled {
                Some(w) => w,
                None => {
                    judged = second_connect(self.id, s.seq, s.at, ctx, slack);
                    &judged
                }
            };
            v.violations.extend(w.violations.iter().cloned());
            v.notes.extend(w.notes.iter().cloned());
        }
        v.violations.extend(found[split..].iter().cloned());
        for r in self.pending.iter().filter(|r| r.late == Some(true)) {
            let (rule, what) = if r.unsub {
                ("MQTT-3.10.4-4", "UNSUBACK")
            } else {
                ("MQTT-3.8.4-1", "SUBACK")
            };
            v.fail(
                rule,
                format!(
                    "no {what} for {actor}'s request {} within {}",
                    r.pid,
                    super::fmt_d(slack)
                ),
                vec![r.seq],
            );
        }
    }
}

/// [`super::packets::second_connect`] over the log fed so far.
fn second_connect(id: ConnId, seq: u64, at: Duration, ctx: &Context, slack: Duration) -> Verdict {
    let mut w = Verdict::new("v5_packets");
    if let Some(m) = ctx.conns.get(&id) {
        let end = ctx.end();
        super::packets::second_connect(
            ctx,
            id,
            &m.actor,
            m.closed.as_ref(),
            (seq, at),
            slack,
            end.min(ctx.teardown().unwrap_or(end)),
            "MQTT-3.1.0-2",
            &mut w,
        );
    }
    w
}

fn back(d: Dir) -> Dir {
    match d {
        Dir::ToBroker => Dir::ToClient,
        Dir::ToClient => Dir::ToBroker,
    }
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        self.ctx.feed(ev);
        match &ev.kind {
            EventKind::ConnOpened { conn, .. } | EventKind::ConnClosed { conn, .. } => {
                self.ix_conn(*conn, ev.seq);
            }
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                raw,
                fate,
            } => {
                self.ix_conn(*conn, ev.seq);
                self.index_side(ev.seq, *conn, actor, *dir, packet, *fate);
                let p = Pk {
                    seq: ev.seq,
                    at: ev.at,
                    dir: *dir,
                    fate: *fate,
                    packet,
                    size: raw.len(),
                };
                self.conn_side(*conn, actor, p);
            }
            _ => {}
        }
        let end = self.ctx.end();
        while let Some(&Reverse((limit, id))) = self.shared.wake.peek() {
            if limit >= end {
                break;
            }
            self.shared.wake.pop();
            if let Some((actor, Phase::V5(c))) = self.conns.get_mut(&id) {
                c.settle(actor, &self.ctx, self.slack);
            }
        }
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("v5_packets");
        for id in &self.order {
            if let Some((actor, Phase::V5(c))) = self.conns.get(id) {
                c.verdict(actor, &self.ctx, self.slack, &mut v);
            }
        }
        v.violations.extend(self.off_sub.iter().cloned());
        v.violations.extend(self.after_unsub.iter().cloned());
        for w in self.wills.values().filter(|w| w.fails()) {
            let hit = w.hit.unwrap_or_default();
            // The will had to go with the DISCONNECT 0 (3.1.2-10).
            for rule in ["MQTT-3.14.4-3", "MQTT-3.1.2-10"] {
                v.fail(
                    rule,
                    format!(
                        "{}'s will was published after its DISCONNECT with reason 0",
                        w.actor
                    ),
                    vec![w.ds, hit],
                );
            }
        }
        v.violations.extend(self.shared.resends.iter().cloned());
        v
    }
}

impl Live {
    fn ix_conn(&mut self, id: ConnId, seq: u64) {
        if self.ix.contains_key(&id) {
            return;
        }
        let ci = self.ctx.conns.get(&id).map_or(usize::MAX, |m| m.ci);
        self.ix.insert(
            id,
            IxConn {
                ci,
                first: seq,
                cid: None,
                clean: false,
                version: None,
                will: None,
                disconnected: false,
            },
        );
    }

    /// The packet on its connection's judgement: kept until the first
    /// CONNECT shows the version, then judged if it is 5.0.
    fn conn_side(&mut self, id: ConnId, actor: &str, p: Pk) {
        let (who, phase) = self.conns.entry(id).or_insert_with(|| {
            self.order.push(id);
            (actor.to_string(), Phase::Early(Vec::new()))
        });
        match phase {
            Phase::V5(c) => c.step(&p, who, self.slack, &mut self.shared),
            Phase::Other => {}
            Phase::Early(early) => match p.packet {
                Packet::Connect(x) if x.version == Version::V5 => {
                    let mut c = Box::new(Conn5::new(id, who, x, &self.clients));
                    for (seq, at, dir, fate, packet) in std::mem::take(early) {
                        let k = Pk {
                            seq,
                            at,
                            dir,
                            fate,
                            packet: &packet,
                            size: 0,
                        };
                        c.step(&k, who, self.slack, &mut self.shared);
                    }
                    c.step(&p, who, self.slack, &mut self.shared);
                    *phase = Phase::V5(c);
                }
                Packet::Connect(_) => *phase = Phase::Other,
                _ => early.push((p.seq, p.at, p.dir, p.fate, p.packet.clone())),
            },
        }
    }

    /// The rules over connections and client ids: subscriptions, messages
    /// and wills.
    fn index_side(
        &mut self,
        seq: u64,
        conn: ConnId,
        actor: &str,
        dir: Dir,
        packet: &Packet,
        fate: Fate,
    ) {
        let to_broker = dir == Dir::ToBroker;
        match packet {
            Packet::Connect(cp) if to_broker && sent(fate) => self.connected(conn, cp),
            Packet::Disconnect(d) if to_broker && seen(fate) => {
                self.disconnected(conn, actor, seq, d.code)
            }
            Packet::Publish(pb) => {
                let mut t = pb.topic.clone();
                if let Some(alias) = super::index::prop_u32(&pb.properties, 0x23) {
                    let map = self.aliases.entry((conn, to_broker)).or_default();
                    if t.is_empty() {
                        if let Some(known) = map.get(&alias) {
                            t = known.clone();
                        }
                    } else {
                        map.insert(alias, t.clone());
                    }
                }
                if to_broker {
                    if seen(fate) {
                        self.arrived(seq, &t, &pb.payload);
                        if pb.retain && pb.payload.is_empty() {
                            self.retained.remove(&t);
                        } else if pb.retain {
                            let key = content_key(&t, &pb.payload);
                            self.retained.insert(t, (key, seq));
                        }
                    }
                    return;
                }
                for w in self.wills.values_mut() {
                    if w.conn != conn
                        && w.hit.is_none()
                        && w.next.is_none()
                        && w.topic == t
                        && w.payload == pb.payload
                    {
                        w.hit = Some(seq);
                    }
                }
                if sent(fate) {
                    self.delivered(seq, conn, actor, &t, pb.dup, &pb.payload);
                }
            }
            Packet::Subscribe(s) if to_broker && seen(fate) => {
                let cid = self.ix.get(&conn).and_then(|c| c.cid.clone());
                let mine = self.subs.entry(cid).or_default();
                for (k, f) in s.filters.iter().enumerate() {
                    let agg = mine
                        .entry((f.filter.clone(), actor.to_string()))
                        .or_insert(SubAgg {
                            first: (seq, k),
                            open: true,
                            min_unsub: None,
                            max_unsub: None,
                        });
                    agg.open = true;
                }
                // The retained messages the new filters match are sent for
                // them [MQTT-3.3.1-9]: owed like the rest.
                if let Some(cid) = self.ix.get(&conn).and_then(|c| c.cid.clone()) {
                    if self.v5_cids.get(&cid) == Some(&true) {
                        let table = self.owed.entry(cid).or_default();
                        for (t, &(key, at)) in &self.retained {
                            if s.filters.iter().any(|f| topic::matches(&f.filter, t)) {
                                let before = table.get(key).copied();
                                if before.is_some_and(|a| !a.owed) {
                                    table.remove(key);
                                }
                                let seq = before.filter(|a| a.owed).map_or(at, |a| a.seq);
                                table.owe(key, 1, Arrival { owed: true, seq });
                            }
                        }
                    }
                }
            }
            Packet::Unsubscribe(u) if to_broker && seen(fate) => {
                for mine in self.subs.values_mut() {
                    for f in &u.filters {
                        if let Some(agg) = mine.get_mut(&(f.clone(), actor.to_string())) {
                            if agg.open {
                                agg.open = false;
                                agg.min_unsub.get_or_insert(seq);
                                agg.max_unsub = Some(seq);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The client's first CONNECT on `conn` (as [`super::index::Index`]
    /// has it: the first sent).
    fn connected(&mut self, conn: ConnId, cp: &Connect) {
        let Some(c) = self.ix.get_mut(&conn) else {
            return;
        };
        if c.cid.is_some() {
            return;
        }
        c.cid = Some(cp.client_id.clone());
        self.v5_cids
            .insert(cp.client_id.clone(), cp.version == Version::V5);
        c.clean = cp.clean_start;
        c.version = Some(cp.version);
        c.will = cp
            .will
            .as_ref()
            .map(|w| (w.topic.clone(), Bytes::copy_from_slice(&w.payload)));
        let (ci, first) = (c.ci, c.first);
        let f = self.cid_first.entry(cp.client_id.clone()).or_insert(ci);
        *f = (*f).min(ci);
        for w in self.wills.values_mut() {
            if w.cid.as_deref() == Some(cp.client_id.as_str()) && first > w.ds {
                w.next = Some(w.next.map_or(first, |n| n.min(first)));
            }
        }
        self.wills.retain(|_, w| !w.done());
    }

    /// The client's first DISCONNECT that reached the broker on `conn`.
    fn disconnected(&mut self, conn: ConnId, actor: &str, seq: u64, code: u8) {
        let Some(c) = self.ix.get_mut(&conn) else {
            return;
        };
        if c.disconnected {
            return;
        }
        c.disconnected = true;
        let (Some((topic, payload)), Some(Version::V5), 0) = (&c.will, c.version, code) else {
            return;
        };
        let actor = self
            .ctx
            .conns
            .get(&conn)
            .map_or(actor, |m| m.actor.as_str())
            .to_string();
        self.wills.insert(
            c.ci,
            WillWatch {
                conn,
                actor,
                cid: c.cid.clone(),
                ds: seq,
                topic: topic.clone(),
                payload: payload.clone(),
                next: None,
                hit: None,
            },
        );
    }

    /// A PUBLISH the broker sent on `conn` (`topic`: aliases resolved):
    /// on a topic none of the session's subscriptions matches
    /// [MQTT-3.3.2-3] [MQTT-4.7.2-1], or after an UNSUBSCRIBE
    /// [MQTT-3.10.4-2].
    fn delivered(
        &mut self,
        seq: u64,
        conn: ConnId,
        actor: &str,
        t: &str,
        dup: bool,
        payload: &Bytes,
    ) {
        let Some(dc) = self.ix.get(&conn) else { return };
        let (Some(Version::V5), Some(cid)) = (dc.version, dc.cid.as_ref()) else {
            return;
        };
        let mine = self.subs.get(&Some(cid.clone()));
        // A session resumed from before the run, or across a restart, may
        // hold subscriptions the history never showed.
        let unknown_past = !dc.clean && self.cid_first.get(cid).is_none_or(|&f| f >= dc.ci);
        if matching(mine, t).next().is_none() && !unknown_past {
            self.off_sub.push(Violation::new(
                "MQTT-3.3.2-3",
                format!("{actor} got a PUBLISH on {t} that none of its subscriptions matches"),
                vec![seq],
            ));
            // Matched only if a leading wildcard could take a `$` level.
            if let Some(rest) = t.strip_prefix('$') {
                let undollared = format!("_{rest}");
                if let Some(((f, _), s)) = matching(mine, &undollared).min_by_key(|(_, s)| s.first)
                {
                    self.off_sub.push(Violation::new(
                        "MQTT-4.7.2-1",
                        format!(
                            "{actor} got {t} through `{f}`: a filter that starts with a wildcard matches no topic starting with `$`"
                        ),
                        vec![s.first.0, seq],
                    ));
                }
            }
        }
        // A first send (not DUP) when every subscription of the client id
        // matching it was unsubscribed before the message came: the
        // message it pairs with arrived when none of them was live, and no
        // arrival of the same topic and payload the broker still owed
        // could be the one delivered.
        if dup {
            return;
        }
        let key = content_key(t, payload);
        let live = matching(mine, t).any(|(_, s)| s.open);
        let first_unsub = matching(mine, t).filter_map(|(_, s)| s.min_unsub).min();
        let Some(table) = self.owed.get_mut(cid) else {
            return;
        };
        match table.get(key).copied() {
            Some(a) if a.owed => {
                table.take_oldest(key);
            }
            Some(a) => {
                if let (false, Some(u)) = (live, first_unsub) {
                    self.after_unsub.push(Violation::new(
                        "MQTT-3.10.4-2",
                        format!("{actor} got a message on {t} published after it unsubscribed every filter matching it"),
                        vec![u, a.seq, seq],
                    ));
                }
            }
            None => {}
        }
    }

    /// A PUBLISH on `t` reached the broker: owed to each 5.0 client id
    /// with a live filter matching it (a copy per such filter), or on
    /// record as having come after every matching filter was removed.
    fn arrived(&mut self, seq: u64, t: &str, payload: &[u8]) {
        let key = content_key(t, payload);
        for (cid, mine) in &self.subs {
            let Some(cid) = cid.as_ref().filter(|c| self.v5_cids.get(*c) == Some(&true)) else {
                continue;
            };
            let (mut live, mut any) = (0u32, false);
            for (_, s) in matching(Some(mine), t) {
                any = true;
                live += u32::from(s.open);
            }
            if !any {
                continue;
            }
            let table = self.owed.entry(cid.clone()).or_default();
            let before = table.get(key).copied();
            if live > 0 {
                if before.is_some_and(|a| !a.owed) {
                    table.remove(key);
                }
                table.owe(key, live, Arrival { owed: true, seq });
            } else if before.is_none_or(|a| !a.owed) {
                // An owed copy still waiting could be what a delivery
                // brings: it stays the one a delivery pairs with. Else
                // the latest arrival is the one on record.
                table.remove(key);
                table.owe(key, 1, Arrival { owed: false, seq });
            }
        }
    }
}

/// The subscriptions in `mine` whose filter matches `t`.
fn matching<'a>(
    mine: Option<&'a BTreeMap<(String, String), SubAgg>>,
    t: &'a str,
) -> impl Iterator<Item = (&'a (String, String), &'a SubAgg)> + 'a {
    mine.into_iter()
        .flat_map(|m| m.iter())
        .filter(move |((f, _), _)| topic::matches(f, t))
}

/// A second SUBACK (UNSUBACK) for a request of several filters that was
/// already answered: the broker answered filter by filter, not with one
/// combined ack [MQTT-3.8.4-5] [MQTT-3.10.4-6].
fn split_answer(
    filters: &HashMap<(u16, bool), usize>,
    answered: &BTreeSet<(u16, bool)>,
    key: (u16, bool),
    seq: u64,
    actor: &str,
    v: &mut Verdict,
) {
    let n = filters.get(&key).copied().unwrap_or(0);
    if n > 1 && answered.contains(&key) {
        let (rule, what) = if key.1 {
            ("MQTT-3.10.4-6", "UNSUBACK")
        } else {
            ("MQTT-3.8.4-5", "SUBACK")
        };
        v.fail(
            rule,
            format!(
                "a second {what} {} to {actor} for one request of {n} filters",
                key.0
            ),
            vec![seq],
        );
    }
}

/// The Authentication Method property.
const AUTH_METHOD: u8 = 0x15;

fn auth_method(p: &crate::mqtt::Properties) -> Option<&str> {
    match props::get(p, AUTH_METHOD) {
        Some(PropValue::Str(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// Enhanced authentication on one connection, as it goes.
struct AuthState {
    /// The CONNECT's Authentication Method.
    method: Option<String>,
    /// A successful CONNACK was sent / reached the client.
    accepted_sent: bool,
    accepted_seen: bool,
    /// The broker's last AUTH asked to continue and the client has not
    /// answered yet.
    asked: bool,
    /// 3.1.2-30 is said once per connection.
    early_said: bool,
}

impl AuthState {
    fn new(method: Option<String>) -> Self {
        AuthState {
            method,
            accepted_sent: false,
            accepted_seen: false,
            asked: false,
            early_said: false,
        }
    }

    /// Judges one packet: the broker's always, the client's when `client`.
    fn see(&mut self, p: &Pk, client: bool, actor: &str, v: &mut Verdict) {
        let pt = p.packet.packet_type();
        match (p.packet, p.dir) {
            (Packet::ConnAck(a), Dir::ToClient) => {
                if a.code == 0 && sent(p.fate) {
                    let got = auth_method(&a.properties);
                    match (self.method.as_deref(), got) {
                        (None, Some(m)) => v.fail(
                            "MQTT-4.12.0-6",
                            format!("the broker's CONNACK to {actor} names Authentication Method {m:?}; the CONNECT named none"),
                            vec![p.seq],
                        ),
                        (Some(m), g) if g != Some(m) => v.fail(
                            "MQTT-4.12.0-5",
                            format!("the broker's successful CONNACK to {actor} has Authentication Method {g:?}, the CONNECT's was {m:?}"),
                            vec![p.seq],
                        ),
                        _ => {}
                    }
                    self.accepted_sent = true;
                }
                if a.code == 0 && seen(p.fate) {
                    self.accepted_seen = true;
                }
            }
            (Packet::Auth(a), Dir::ToClient) if sent(p.fate) => {
                let got = auth_method(&a.properties);
                match self.method.as_deref() {
                    None => v.fail(
                        "MQTT-4.12.0-6",
                        format!("the broker sent AUTH to {actor}, whose CONNECT named no Authentication Method"),
                        vec![p.seq],
                    ),
                    Some(m) if got != Some(m) => v.fail(
                        "MQTT-4.12.0-5",
                        format!("the broker's AUTH to {actor} has Authentication Method {got:?}, the CONNECT's was {m:?}"),
                        vec![p.seq],
                    ),
                    Some(_) => {}
                }
                if !self.accepted_sent && a.code != 0x18 {
                    v.fail(
                        "MQTT-4.12.0-2",
                        format!("the broker's AUTH to {actor} before its CONNACK has reason {:#04x}, not 0x18 (continue authentication)", a.code),
                        vec![p.seq],
                    );
                }
                if seen(p.fate) {
                    self.asked = a.code == 0x18;
                }
            }
            (Packet::Auth(a), Dir::ToBroker) if client && sent(p.fate) => {
                let got = auth_method(&a.properties);
                match self.method.as_deref() {
                    None => v.fail(
                        "MQTT-4.12.0-7",
                        format!(
                            "{actor} sent AUTH though its CONNECT named no Authentication Method"
                        ),
                        vec![p.seq],
                    ),
                    Some(m) if got != Some(m) => {
                        // Starting a re-authentication has its own statement.
                        let rule = if self.accepted_seen && a.code == 0x19 {
                            "MQTT-4.12.1-1"
                        } else {
                            "MQTT-4.12.0-5"
                        };
                        v.fail(
                            rule,
                            format!("{actor}'s AUTH (reason {:#04x}) has Authentication Method {got:?}, the CONNECT's was {m:?}", a.code),
                            vec![p.seq],
                        );
                    }
                    Some(_) => {}
                }
                if (self.asked || !self.accepted_seen) && a.code != 0x18 && self.method.is_some() {
                    v.fail(
                        "MQTT-4.12.0-3",
                        format!("{actor} answered the broker's AUTH with reason {:#04x}, not 0x18 (continue authentication)", a.code),
                        vec![p.seq],
                    );
                }
                self.asked = false;
            }
            (_, Dir::ToBroker)
                if client
                    && sent(p.fate)
                    && self.method.is_some()
                    && !self.accepted_seen
                    && !self.early_said
                    && !matches!(
                        pt,
                        PacketType::Connect | PacketType::Auth | PacketType::Disconnect
                    ) =>
            {
                self.early_said = true;
                v.fail(
                    "MQTT-3.1.2-30",
                    format!("{actor} named an Authentication Method and sent {pt} before its CONNACK; only AUTH or DISCONNECT may come then"),
                    vec![p.seq],
                );
            }
            _ => {}
        }
    }
}

/// Where a sender's QoS 1/2 packet id stands on one connection.
#[derive(Clone, Copy)]
enum Flight {
    /// QoS 1, awaiting PUBACK.
    Ack,
    /// QoS 2, awaiting PUBREC.
    Rec,
    /// QoS 2, PUBREC received, awaiting PUBCOMP.
    Comp,
}

/// A sender's packet ids on one connection: a new message never takes an
/// id still in flight [MQTT-4.3.2-1] [MQTT-4.3.3-1] (which would treat the
/// earlier one as acknowledged [MQTT-4.3.2-3] [MQTT-4.3.3-3]
/// [MQTT-4.3.3-5]); on a connection that started a new session, a PUBLISH
/// sent for the first time has DUP 0 [MQTT-4.3.2-2] [MQTT-4.3.3-2]
/// (bytes on one TCP connection are never lost before the proxy, so a
/// first send here is a first send). `p` was sent by a judged sender.
fn packet_ids(
    p: &Pk,
    flight: &mut HashMap<(Dir, u16), Flight>,
    ever: &mut BTreeSet<(bool, u16)>,
    fresh: bool,
    actor: &str,
    v: &mut Verdict,
) {
    let who = match p.dir {
        Dir::ToBroker => actor.to_string(),
        Dir::ToClient => format!("the broker (to {actor})"),
    };
    if let Packet::Publish(pb) = p.packet {
        if pb.qos != QoS::AtMostOnce {
            let Some(pid) = pb.pid else { return };
            let now = flight.get(&(p.dir, pid)).copied();
            let first = ever.insert((p.dir == Dir::ToBroker, pid));
            if !pb.dup {
                if let Some(was) = now {
                    let new_rule = if pb.qos == QoS::AtLeastOnce {
                        "MQTT-4.3.2-1"
                    } else {
                        "MQTT-4.3.3-1"
                    };
                    let (old_rule, awaiting) = match was {
                        Flight::Ack => ("MQTT-4.3.2-3", "PUBACK"),
                        Flight::Rec => ("MQTT-4.3.3-3", "PUBREC"),
                        Flight::Comp => ("MQTT-4.3.3-5", "PUBCOMP"),
                    };
                    for rule in [new_rule, old_rule] {
                        v.fail(
                            rule,
                            format!("{who} sent a new PUBLISH with packet id {pid} while an earlier one with that id still awaited its {awaiting}"),
                            vec![p.seq],
                        );
                    }
                }
            } else if first && fresh {
                let rule = if pb.qos == QoS::AtLeastOnce {
                    "MQTT-4.3.2-2"
                } else {
                    "MQTT-4.3.3-2"
                };
                // From the broker, DUP on a first send did not come from
                // whether the send repeats [MQTT-3.3.1-3].
                let rules: &[&str] = if p.dir == Dir::ToClient {
                    &[rule, "MQTT-3.3.1-3"]
                } else {
                    &[rule]
                };
                for rule in rules {
                    v.fail(
                        *rule,
                        format!("{who} sent PUBLISH {pid} for the first time in a new session with DUP set"),
                        vec![p.seq],
                    );
                }
            }
            if now.is_none() || !pb.dup {
                let f = if pb.qos == QoS::AtLeastOnce {
                    Flight::Ack
                } else {
                    Flight::Rec
                };
                flight.insert((p.dir, pid), f);
            }
        }
    }
}

/// An ack that reached its receiver moves the sender's packet id on.
fn acked(p: &Pk, flight: &mut HashMap<(Dir, u16), Flight>) {
    if !seen(p.fate) {
        return;
    }
    let back = match p.dir {
        Dir::ToBroker => Dir::ToClient,
        Dir::ToClient => Dir::ToBroker,
    };
    match p.packet {
        Packet::PubAck(a) | Packet::PubComp(a) => {
            flight.remove(&(back, a.pid));
        }
        Packet::PubRec(a) if a.code >= 0x80 => {
            flight.remove(&(back, a.pid));
        }
        Packet::PubRec(a) => {
            if let Some(f) = flight.get_mut(&(back, a.pid)) {
                *f = Flight::Comp;
            }
        }
        _ => {}
    }
}

/// The client's acks in the order the broker's messages came: PUBACKs
/// [MQTT-4.6.0-2], PUBRECs [MQTT-4.6.0-3]; and its PUBRELs in the order
/// the PUBRECs came [MQTT-4.6.0-4]. Per connection.
#[derive(Default)]
struct AckOrder {
    /// QoS 1 PUBLISHes the client got and has not acknowledged, oldest first.
    qos1: Vec<(u16, u64)>,
    qos2: Vec<(u16, u64)>,
    /// PUBRECs (below 0x80) the client got and has not released.
    recs: Vec<(u16, u64)>,
}

impl AckOrder {
    fn see(&mut self, p: &Pk, actor: &str, v: &mut Verdict) {
        let push = |q: &mut Vec<(u16, u64)>, pid: u16, seq: u64| {
            if !q.iter().any(|x| x.0 == pid) {
                q.push((pid, seq));
            }
        };
        match (p.packet, p.dir) {
            (Packet::Publish(pb), Dir::ToClient) if seen(p.fate) => match (pb.qos, pb.pid) {
                (QoS::AtLeastOnce, Some(pid)) => push(&mut self.qos1, pid, p.seq),
                (QoS::ExactlyOnce, Some(pid)) => push(&mut self.qos2, pid, p.seq),
                _ => {}
            },
            (Packet::PubRec(a), Dir::ToClient) if seen(p.fate) && a.code < 0x80 => {
                push(&mut self.recs, a.pid, p.seq)
            }
            (Packet::PubAck(a), Dir::ToBroker) if sent(p.fate) => Self::answer(
                &mut self.qos1,
                a.pid,
                p.seq,
                "MQTT-4.6.0-2",
                "PUBACK",
                "QoS 1 PUBLISH",
                actor,
                v,
            ),
            (Packet::PubRec(a), Dir::ToBroker) if sent(p.fate) => Self::answer(
                &mut self.qos2,
                a.pid,
                p.seq,
                "MQTT-4.6.0-3",
                "PUBREC",
                "QoS 2 PUBLISH",
                actor,
                v,
            ),
            (Packet::PubRel(a), Dir::ToBroker) if sent(p.fate) => Self::answer(
                &mut self.recs,
                a.pid,
                p.seq,
                "MQTT-4.6.0-4",
                "PUBREL",
                "PUBREC",
                actor,
                v,
            ),
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        q: &mut Vec<(u16, u64)>,
        pid: u16,
        seq: u64,
        rule: &str,
        what: &str,
        to: &str,
        actor: &str,
        v: &mut Verdict,
    ) {
        let Some(i) = q.iter().position(|x| x.0 == pid) else {
            return;
        };
        if i > 0 {
            let (first, at) = q[0];
            v.fail(
                rule,
                format!("{actor} sent {what} {pid} before answering the earlier {to} {first}"),
                vec![at, seq],
            );
        }
        q.remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::*;
    use super::*;
    use crate::history::CloseReason;
    use crate::mqtt::PacketType;

    fn checker() -> PacketsChecker {
        PacketsChecker {
            clients: vec!["device".into()],
            slack: Duration::from_millis(500),
        }
    }

    fn up(k: &mut Kit) -> &mut Kit {
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, ""),
        )
    }

    #[test]
    fn a_well_behaved_exchange_passes() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a/#", 2, 0, ""))
            .down(1, "device", suback(1, &[2]));
        k.up(1, "device", publish(Some(2), 2, "a/1", "x", "")).down(
            1,
            "device",
            ack(PacketType::PubRec, 2, 0),
        );
        k.up(1, "device", ack(PacketType::PubRel, 2, 0)).down(
            1,
            "device",
            ack(PacketType::PubComp, 2, 0),
        );
        k.down(1, "device", publish(Some(9), 1, "a/1", "x", "")).up(
            1,
            "device",
            ack(PacketType::PubAck, 9, 0),
        );
        k.wait(1000).step("end");
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
    }

    #[test]
    fn connection_start_rules() {
        let mut k = Kit::new();
        // (A connection is known to be 5.0 by its CONNECT, so it comes late.)
        k.open(1, "device").up(1, "device", Packet::PingReq).up(
            1,
            "device",
            connect("d", true, 60, ""),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.1.0-1"]
        );
        let mut k = Kit::new();
        k.open(1, "device")
            .up(1, "device", connect("d", true, 60, ""));
        k.down(1, "device", Packet::PingResp)
            .down(1, "device", connack(false, 0, ""));
        k.down(1, "device", connack(false, 0, ""));
        let v = judge_both(&checker(), &k.history());
        assert_violates(&v, "MQTT-3.2.0-1");
        assert_violates(&v, "MQTT-3.2.0-2");
    }

    #[test]
    fn dup_on_qos0_and_publish_after_pubrel_fail() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
        k.down(1, "device", dup(publish(None, 0, "a", "x", "")));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.1-2", "MQTT-4.3.1-1"]
        );
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 2, 0, ""))
            .down(1, "device", suback(1, &[2]));
        k.down(1, "device", publish(Some(4), 2, "a", "x", "")).up(
            1,
            "device",
            ack(PacketType::PubRec, 4, 0),
        );
        k.down(1, "device", ack(PacketType::PubRel, 4, 0)).down(
            1,
            "device",
            dup(publish(Some(4), 2, "a", "x", "")),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.3.3-6"]
        );
    }

    #[test]
    fn acks_for_nothing_and_missing_acks_fail() {
        let mut k = Kit::new();
        up(&mut k);
        k.down(1, "device", ack(PacketType::PubAck, 7, 0));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-2.2.1-5"]
        );
        let mut k = Kit::new();
        up(&mut k);
        k.down(1, "device", suback(3, &[0]));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.8.4-2", "MQTT-2.2.1-6"]
        );
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .wait(2000)
            .step("end");
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.8.4-1"]
        );
        let unsub = Packet::Unsubscribe(crate::mqtt::Unsubscribe {
            pid: 5,
            filters: vec!["a".into()],
            properties: Default::default(),
        });
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", unsub).wait(2000).step("end");
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.10.4-4"]
        );
        let mut k = Kit::new();
        up(&mut k);
        k.down(
            1,
            "device",
            Packet::UnsubAck(crate::mqtt::UnsubAck {
                pid: 8,
                codes: vec![0],
                properties: Default::default(),
            }),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.10.4-5", "MQTT-2.2.1-6"]
        );
        // A request cut off by the connection's end owes nothing.
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .close(1, "device", CloseReason::Severed);
        k.wait(2000).step("end");
        assert!(judge_both(&checker(), &k.history()).ok());
    }

    #[test]
    fn deliveries_off_subscription_and_wills_after_disconnect_0_fail() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a/+", 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
        k.down(1, "device", publish(None, 0, "a/b", "x", ""));
        assert!(judge_both(&checker(), &k.history()).ok());
        k.down(1, "device", publish(None, 0, "b/c", "x", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.2-3"]
        );
        let mut k = Kit::new();
        k.session(
            1,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "cloud", subscribe(1, "w/#", 1, 0, ""))
            .down(1, "cloud", suback(1, &[1]));
        k.session(
            2,
            "device",
            connect_will("d", 60, "", "w/d", "gone", ""),
            connack(false, 0, ""),
        );
        k.up(2, "device", disconnect(0, ""))
            .close(2, "device", CloseReason::ClientClosed);
        k.wait(10)
            .down(1, "cloud", publish(Some(1), 1, "w/d", "gone", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.14.4-3", "MQTT-3.1.2-10"]
        );
    }

    /// A second CONNECT must end the connection: a broker that keeps it
    /// open fails, one that closes it passes.
    #[test]
    fn a_second_connect_is_closed_by_the_broker() {
        let mut k = Kit::new();
        up(&mut k).up(1, "device", connect("d", true, 60, ""));
        k.wait(3000).step("end");
        assert_violates(&judge_both(&checker(), &k.history()), "MQTT-3.1.0-2");

        let mut k = Kit::new();
        up(&mut k).up(1, "device", connect("d", true, 60, ""));
        k.wait(100)
            .close(1, "device", CloseReason::BrokerClosed)
            .wait(3000)
            .step("end");
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
    }

    fn auth(code: u8, props: &str) -> Packet {
        Packet::Auth(crate::mqtt::Auth {
            code,
            properties: p(crate::mqtt::props::Place::Packet(PacketType::Auth), props),
        })
    }

    const SCRAM: &str = "authentication_method = \"SCRAM\"";

    /// A challenge before the CONNACK and a re-authentication after it,
    /// each packet naming the method: nothing to say.
    #[test]
    fn enhanced_authentication_by_the_book_passes() {
        let mut k = Kit::new();
        k.open(1, "device")
            .up(1, "device", connect("d", true, 60, SCRAM));
        k.down(1, "device", auth(0x18, SCRAM))
            .up(1, "device", auth(0x18, SCRAM))
            .down(1, "device", connack(false, 0, SCRAM));
        k.up(1, "device", auth(0x19, SCRAM))
            .down(1, "device", auth(0x18, SCRAM))
            .up(1, "device", auth(0x18, SCRAM))
            .down(1, "device", auth(0x00, SCRAM));
        k.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
    }

    #[test]
    fn enhanced_authentication_rules_fail() {
        let start = |k: &mut Kit| {
            k.open(1, "device")
                .up(1, "device", connect("d", true, 60, SCRAM));
        };
        // A SUBSCRIBE before the CONNACK.
        let mut k = Kit::new();
        start(&mut k);
        k.up(1, "device", subscribe(1, "a", 0, 0, ""));
        assert_violates(&judge_both(&checker(), &k.history()), "MQTT-3.1.2-30");
        // The broker's AUTH before the CONNACK that is not "continue".
        let mut k = Kit::new();
        start(&mut k);
        k.down(1, "device", auth(0x00, SCRAM));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.12.0-2"]
        );
        // The client answering a challenge with anything but 0x18.
        let mut k = Kit::new();
        start(&mut k);
        k.down(1, "device", auth(0x18, SCRAM))
            .up(1, "device", auth(0x19, SCRAM));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.12.0-3"]
        );
        // A method that changes, on AUTH or on the CONNACK.
        let mut k = Kit::new();
        start(&mut k);
        k.down(1, "device", auth(0x18, "authentication_method = \"OTHER\""))
            .up(1, "device", auth(0x18, ""))
            .down(1, "device", connack(false, 0, ""));
        let v = judge_both(&checker(), &k.history());
        assert_eq!(
            v.rules(),
            vec!["MQTT-4.12.0-5", "MQTT-4.12.0-5", "MQTT-4.12.0-5"]
        );
        // Re-authentication with another method.
        let mut k = Kit::new();
        start(&mut k);
        k.down(1, "device", connack(false, 0, SCRAM)).up(
            1,
            "device",
            auth(0x19, "authentication_method = \"OTHER\""),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.12.1-1"]
        );
        // No method in the CONNECT: no AUTH either way, no method back.
        let mut k = Kit::new();
        up(&mut k);
        k.down(1, "device", auth(0x18, SCRAM))
            .up(1, "device", auth(0x18, SCRAM));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.12.0-6", "MQTT-4.12.0-7"]
        );
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, SCRAM),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.12.0-6"]
        );
    }

    #[test]
    fn packet_ids_in_flight_are_not_reused_and_first_sends_have_no_dup() {
        // Reuse after the ack, after a refusing PUBREC, and a DUP resend on
        // a resumed session are all fine.
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 1, "a", "x", ""))
            .down(1, "device", ack(PacketType::PubAck, 1, 0))
            .up(1, "device", publish(Some(1), 2, "a", "y", ""))
            .down(1, "device", ack(PacketType::PubRec, 1, 0x87))
            .up(1, "device", publish(Some(1), 1, "a", "z", ""))
            .close(1, "device", CloseReason::Severed);
        k.session(
            2,
            "device",
            connect("d", false, 60, ""),
            connack(true, 0, ""),
        );
        k.up(2, "device", dup(publish(Some(1), 1, "a", "z", "")))
            .down(2, "device", ack(PacketType::PubAck, 1, 0));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");

        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 1, "a", "x", "")).up(
            1,
            "device",
            publish(Some(1), 1, "a", "y", ""),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.3.2-1", "MQTT-4.3.2-3"]
        );
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(2), 2, "a", "x", "")).up(
            1,
            "device",
            publish(Some(2), 2, "a", "y", ""),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.3.3-1", "MQTT-4.3.3-3"]
        );
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 2, 0, ""))
            .down(1, "device", suback(1, &[2]));
        k.down(1, "device", publish(Some(5), 2, "a", "x", ""))
            .up(1, "device", ack(PacketType::PubRec, 5, 0))
            .down(1, "device", publish(Some(5), 1, "a", "y", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.3.2-1", "MQTT-4.3.3-5"]
        );
        // DUP on a first send in a new session.
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", dup(publish(Some(3), 1, "a", "x", "")));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.3.2-2"]
        );
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 2, 0, ""))
            .down(1, "device", suback(1, &[2]));
        k.down(1, "device", dup(publish(Some(3), 2, "a", "x", "")));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.3.3-2", "MQTT-3.3.1-3"]
        );
    }

    #[test]
    fn the_clients_acks_follow_the_order_of_what_they_answer() {
        let sub = |k: &mut Kit| {
            up(k);
            k.up(1, "device", subscribe(1, "a", 2, 0, ""))
                .down(1, "device", suback(1, &[2]));
        };
        // In order, and a PUBLISH the proxy dropped owes nothing.
        let mut k = Kit::new();
        sub(&mut k);
        k.dropped_down(1, "device", publish(Some(1), 1, "a", "x", ""))
            .down(1, "device", publish(Some(2), 1, "a", "y", ""))
            .down(1, "device", publish(Some(3), 1, "a", "z", ""))
            .up(1, "device", ack(PacketType::PubAck, 2, 0))
            .up(1, "device", ack(PacketType::PubAck, 3, 0));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");

        let mut k = Kit::new();
        sub(&mut k);
        k.down(1, "device", publish(Some(1), 1, "a", "x", ""))
            .down(1, "device", publish(Some(2), 1, "a", "y", ""))
            .up(1, "device", ack(PacketType::PubAck, 2, 0))
            .up(1, "device", ack(PacketType::PubAck, 1, 0));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.6.0-2"]
        );
        let mut k = Kit::new();
        sub(&mut k);
        k.down(1, "device", publish(Some(1), 2, "a", "x", ""))
            .down(1, "device", publish(Some(2), 2, "a", "y", ""))
            .up(1, "device", ack(PacketType::PubRec, 2, 0));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.6.0-3"]
        );
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 2, "a", "x", ""))
            .up(1, "device", publish(Some(2), 2, "a", "y", ""))
            .down(1, "device", ack(PacketType::PubRec, 1, 0))
            .down(1, "device", ack(PacketType::PubRec, 2, 0))
            .up(1, "device", ack(PacketType::PubRel, 2, 0));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.6.0-4"]
        );
    }

    #[test]
    fn refused_messages_are_not_resent_and_resends_keep_their_order() {
        let resume = |k: &mut Kit| {
            k.close(1, "device", CloseReason::Severed).session(
                2,
                "device",
                connect("d", false, 60, ""),
                connack(true, 0, ""),
            );
        };
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(3), 1, "a", "x", "")).down(
            1,
            "device",
            ack(PacketType::PubAck, 3, 0x80),
        );
        resume(&mut k);
        k.up(2, "device", dup(publish(Some(3), 1, "a", "x", "")));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.4.0-2"]
        );

        // In their first order: fine; reversed: not.
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 1, "a", "x", "")).up(
            1,
            "device",
            publish(Some(2), 1, "a", "y", ""),
        );
        resume(&mut k);
        k.up(2, "device", dup(publish(Some(1), 1, "a", "x", "")))
            .up(2, "device", dup(publish(Some(2), 1, "a", "y", "")));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 1, "a", "x", "")).up(
            1,
            "device",
            publish(Some(2), 1, "a", "y", ""),
        );
        resume(&mut k);
        k.up(2, "device", dup(publish(Some(2), 1, "a", "y", "")))
            .up(2, "device", dup(publish(Some(1), 1, "a", "x", "")));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-4.6.0-1"]
        );
    }

    #[test]
    fn a_leading_wildcard_does_not_reach_dollar_topics() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "$SYS/#", 0, 0, ""))
            .down(1, "device", suback(1, &[0]))
            .down(1, "device", publish(None, 0, "$SYS/load", "1", ""));
        assert!(judge_both(&checker(), &k.history()).ok());
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "+/load", 0, 0, ""))
            .down(1, "device", suback(1, &[0]))
            .down(1, "device", publish(None, 0, "$SYS/load", "1", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.2-3", "MQTT-4.7.2-1"]
        );
    }

    #[test]
    fn nothing_new_through_a_removed_subscription() {
        let unsub = |k: &mut Kit| {
            k.up(
                1,
                "device",
                Packet::Unsubscribe(crate::mqtt::Unsubscribe {
                    pid: 2,
                    filters: vec!["a/#".into()],
                    properties: Default::default(),
                }),
            )
            .down(
                1,
                "device",
                Packet::UnsubAck(crate::mqtt::UnsubAck {
                    pid: 2,
                    codes: vec![0],
                    properties: Default::default(),
                }),
            );
        };
        let start = |k: &mut Kit| {
            up(k);
            k.up(1, "device", subscribe(1, "a/#", 0, 0, ""))
                .down(1, "device", suback(1, &[0]));
            k.session(
                2,
                "cloud",
                connect("cloud", true, 60, ""),
                connack(false, 0, ""),
            );
        };
        // Published before the UNSUBSCRIBE, delivered after it: in flight,
        // fine.
        let mut k = Kit::new();
        start(&mut k);
        k.up(2, "cloud", publish(None, 0, "a/1", "old", ""));
        unsub(&mut k);
        k.down(1, "device", publish(None, 0, "a/1", "old", ""));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        // Published after it: must not come.
        let mut k = Kit::new();
        start(&mut k);
        unsub(&mut k);
        k.up(2, "cloud", publish(None, 0, "a/1", "new", ""));
        k.down(1, "device", publish(None, 0, "a/1", "new", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.10.4-2"]
        );
    }

    fn sub_a(k: &mut Kit) {
        k.up(1, "device", subscribe(1, "a/#", 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
    }

    fn unsub_a(k: &mut Kit) {
        k.up(
            1,
            "device",
            Packet::Unsubscribe(crate::mqtt::Unsubscribe {
                pid: 2,
                filters: vec!["a/#".into()],
                properties: Default::default(),
            }),
        )
        .down(
            1,
            "device",
            Packet::UnsubAck(crate::mqtt::UnsubAck {
                pid: 2,
                codes: vec![0],
                properties: Default::default(),
            }),
        );
    }

    /// The cloud publishes message `m` on `a/1`.
    fn publish_m(k: &mut Kit) {
        k.up(2, "cloud", publish(None, 0, "a/1", "m", ""));
    }

    /// The broker sends `m` to the device.
    fn get_m(k: &mut Kit) {
        k.down(1, "device", publish(None, 0, "a/1", "m", ""));
    }

    /// The device and the cloud connect, then `steps`.
    fn after_unsub(steps: &[fn(&mut Kit)]) -> Verdict {
        let mut k = Kit::new();
        up(&mut k);
        k.session(
            2,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        for step in steps {
            step(&mut k);
        }
        judge_both(&checker(), &k.history())
    }

    /// Decision 1 (module doc): a delivery after the UNSUBSCRIBE is of the
    /// latest arrival of its content, unless an arrival the broker still
    /// owed the session could be it.
    #[test]
    fn after_an_unsubscribe_only_what_was_still_owed_may_come() {
        let rule = "MQTT-3.10.4-2";
        // The same message before the subscription was never owed: the
        // one after the UNSUBSCRIBE is new.
        let v = after_unsub(&[publish_m, sub_a, unsub_a, publish_m, get_m]);
        assert_eq!(v.rules(), vec![rule], "{v:?}");
        // Owed and delivered already: the second one is the new one.
        let v = after_unsub(&[sub_a, publish_m, get_m, unsub_a, publish_m, get_m]);
        assert_eq!(v.rules(), vec![rule], "{v:?}");
        // Legal: owed twice, one delivered before the UNSUBSCRIBE and the
        // buffered one after it, though a third came after it.
        let v = after_unsub(&[
            sub_a, publish_m, publish_m, get_m, unsub_a, publish_m, get_m,
        ]);
        assert!(v.ok(), "{v:?}");
        // Legal: owed and not yet delivered, then the UNSUBSCRIBE and the
        // same message again: the delivery may be the buffered one.
        let v = after_unsub(&[publish_m, sub_a, publish_m, unsub_a, publish_m, get_m]);
        assert!(v.ok(), "{v:?}");
    }

    #[test]
    fn a_request_of_several_filters_gets_one_ack() {
        let two = Packet::Subscribe(crate::mqtt::Subscribe {
            pid: 3,
            filters: vec![
                crate::mqtt::SubscribeFilter {
                    filter: "a".into(),
                    qos: QoS::AtMostOnce,
                    options: 0,
                },
                crate::mqtt::SubscribeFilter {
                    filter: "b".into(),
                    qos: QoS::AtMostOnce,
                    options: 0,
                },
            ],
            properties: Default::default(),
        });
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", two.clone())
            .down(1, "device", suback(3, &[0, 0]));
        assert!(judge_both(&checker(), &k.history()).ok());
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", two)
            .down(1, "device", suback(3, &[0]))
            .down(1, "device", suback(3, &[0]));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.8.4-5", "MQTT-3.8.4-2", "MQTT-2.2.1-6"]
        );
        let unsub = Packet::Unsubscribe(crate::mqtt::Unsubscribe {
            pid: 4,
            filters: vec!["a".into(), "b".into()],
            properties: Default::default(),
        });
        let unsuback = || {
            Packet::UnsubAck(crate::mqtt::UnsubAck {
                pid: 4,
                codes: vec![0],
                properties: Default::default(),
            })
        };
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", unsub)
            .down(1, "device", unsuback())
            .down(1, "device", unsuback());
        assert_violates(&judge_both(&checker(), &k.history()), "MQTT-3.10.4-6");
    }

    /// A deadline is judged against the log's end at every prefix: owed
    /// once `slack` has passed, withdrawn by a late answer (the broker did
    /// answer), kept when the connection closes after it.
    #[test]
    fn deadlines_hold_at_every_prefix() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 0, 0, ""));
        k.wait(400).step("before the deadline");
        assert!(judge_both(&checker(), &k.history()).ok());
        k.wait(200).step("after it");
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.8.4-1"]
        );
        let mut late = Kit::new();
        up(&mut late);
        late.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .wait(2000)
            .step("the deadline has passed")
            .down(1, "device", suback(1, &[0]))
            .step("end");
        assert!(judge_both(&checker(), &late.history()).ok());
        k.close(1, "device", CloseReason::Severed)
            .wait(2000)
            .step("end");
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.8.4-1"]
        );

        // A second CONNECT: the run ending within `slack` shows nothing,
        // a close after `slack` comes too late.
        let mut k = Kit::new();
        up(&mut k).up(1, "device", connect("d", true, 60, ""));
        k.wait(100).step("soon");
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok() && v.notes.len() == 1, "{v:?}");
        k.wait(1000).close(1, "device", CloseReason::BrokerClosed);
        let v = judge_both(&checker(), &k.history());
        assert_eq!(v.rules(), vec!["MQTT-3.1.0-2"]);
        assert!(v.notes.is_empty(), "{v:?}");
    }

    /// The broker's ack names a packet id the client sent before it, on
    /// this connection or an earlier one of its client id: a PUBLISH that
    /// comes after the ack (on an older connection still open) does not
    /// make it right.
    #[test]
    fn an_ack_answers_what_was_sent_before_it() {
        let two = |k: &mut Kit| {
            up(k);
            k.session(
                2,
                "device",
                connect("d", false, 60, ""),
                connack(true, 0, ""),
            );
        };
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(7), 1, "a", "x", ""));
        k.session(
            2,
            "device",
            connect("d", false, 60, ""),
            connack(true, 0, ""),
        );
        k.down(2, "device", ack(PacketType::PubAck, 7, 0));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");

        let mut k = Kit::new();
        two(&mut k);
        k.down(2, "device", ack(PacketType::PubAck, 7, 0)).up(
            1,
            "device",
            publish(Some(7), 1, "a", "x", ""),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-2.2.1-5"]
        );
    }
}
