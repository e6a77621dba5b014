//! `v5_acks`: the broker's side of the 5.0 QoS exchanges (statement ids
//! are MQTT 5.0's), judged on every 5.0 connection.
//!
//! - a QoS 1 PUBLISH that reached the broker is answered with PUBACK
//!   [MQTT-4.3.2-4], a QoS 2 one with PUBREC [MQTT-4.3.3-8], each with its
//!   packet id, within `slack` — the response its QoS requires
//!   [MQTT-3.3.4-1];
//! - a PUBREL that reached the broker is answered with PUBCOMP
//!   [MQTT-4.3.3-11];
//! - when the client's PUBREC (below 0x80) reached the broker, the broker
//!   sends PUBREL for that packet id [MQTT-4.3.3-4];
//! - the broker resends an unacknowledged PUBLISH only with DUP set
//!   [MQTT-3.3.1-1] — on the same connection or on a resumed one;
//! - on a resumed session (CONNACK with session present 1) the broker
//!   resends the PUBLISHes it had unacknowledged when that CONNACK was
//!   sent — as many as the client's Receive Maximum allows — within
//!   `slack` of the connection's start, and resends at no other time: a
//!   DUP resend on the connection that first carried it is a violation
//!   [MQTT-4.4.0-1];
//! - messages one client published on one topic at one QoS reach each
//!   subscriber in the order they were published when they come through a
//!   non-shared subscription [MQTT-4.6.0-5] [MQTT-4.6.0-6];
//! - a delivery's QoS is at most the lower of the published QoS and the
//!   highest QoS granted to the session's matching subscriptions
//!   [MQTT-3.8.4-8], shared ones included [MQTT-4.8.2-3];
//! - a message one member of a shared subscription refused (a PUBACK or
//!   PUBREC of 0x80 or more answering the PUBLISH that carried it) goes to
//!   no other member [MQTT-4.8.2-6], nor one whose QoS 2 exchange was cut
//!   off with the member's session [MQTT-4.8.2-5];
//! - a QoS 2 PUBLISH its sender repeated (DUP, same packet id, before its
//!   PUBREL reached the broker) does not reach a subscriber a second time
//!   once it was repeated [MQTT-4.3.3-10].
//!
//! "Within `slack`" is judged only while the connection stays open and
//! free of faults and the broker up; a connection that ends first owes
//! nothing on it (the session rules and `v5_session` take over).
//!
//! What is read from where:
//! - a delivery is paired with its message in its own session's table of
//!   what the broker owes it ([`super::owed`]): of the PUBLISHes of the
//!   same topic (aliases resolved) and payload that reached the broker
//!   while a live filter of that session matched it, and that no first
//!   send to the session has taken yet, the oldest that keeps its
//!   publisher's order on the connection, else the oldest (decision 8) —
//!   else a QoS 2 repeat's spare copy (decision 4) — else, for a delivery with RETAIN
//!   set, the topic's retained message if it has that payload; else
//!   nothing, and the rules that need
//!   the message (QoS, order, share groups, QoS 2 repeats) are silent on
//!   that delivery;
//! - a session's subscriptions at a delivery are the broker's table at
//!   that moment: the filters whose SUBSCRIBE reached the broker on a
//!   connection of that session (client id and session lineage, as
//!   [`Index`](super::index::Index) makes lineages) and that no UNSUBSCRIBE
//!   has removed since; a filter's grant is the highest its SUBACKs gave
//!   it before the delivery.
//!
//! Everything is judged in time order, from what the log has shown so far:
//! what the broker owes is known when the obligation arises. Where the
//! batch checker this replaced read ahead, the verdict was decided anew
//! from the 5.0 text, and these are deliberate:
//! 1. *The session is new or resumed when the broker is told or says so.*
//!    The PUBLISHes owed again are those unacknowledged when the CONNACK
//!    with session present 1 is sent [MQTT-4.4.0-1]; a CONNECT with Clean
//!    Start 1 reaching the broker [MQTT-3.1.2-4] or a CONNACK with session
//!    present 0 clears them. A connection that shows neither (a CONNECT
//!    with Clean Start 0 and no CONNACK) clears nothing: the session was
//!    not shown discarded, so a later resumed connection owes its resends
//!    (the batch form cleared them for every connection without a CONNACK
//!    saying session present 1).
//! 2. *Shared-only is the subscription table at the delivery.* Order is
//!    owed on non-shared subscriptions [MQTT-4.6.0-6], so it is judged when
//!    the session had a non-shared matching subscription (or none) at the
//!    delivery — not by subscriptions made later or in an earlier session
//!    (the batch form counted every SUBSCRIBE of the client id, later ones
//!    included, so a shared-only member that later subscribed non-shared
//!    was held to an order it never owed). The same table decides the
//!    share groups of [MQTT-4.8.2-5]/[MQTT-4.8.2-6] and the single
//!    non-shared subscription of [MQTT-4.3.3-10]; a filter subscribed
//!    twice is one subscription [MQTT-3.8.4-3].
//! 3. *A refusal answers the PUBLISH in flight with its packet id*
//!    [MQTT-4.8.2-6] "to a PUBLISH packet from the Server": the latest
//!    delivery of that id on the connection that was not yet acknowledged,
//!    not any earlier delivery that reused the id (the batch form took the
//!    first refusal with the id after each delivery).
//! 4. *A QoS 2 repeat is judged when it happens* [MQTT-4.3.3-10] ("until it
//!    has received the corresponding PUBREL"): the message is the latest
//!    PUBLISH of its topic and payload, its repeats are DUP copies with its
//!    packet id from its client id before the PUBREL; a subscriber that
//!    already had it and gets it again after a repeat breaks the rule. A
//!    second copy before any repeat is not this rule's (`exactly_once`
//!    judges copies), a "repeat" after the PUBREL is a new publication
//!    [MQTT-4.3.3-12], and an earlier message with the same topic and
//!    payload no longer excuses the judgement (the batch form skipped a
//!    message whenever another PUBLISH of the same content appeared
//!    anywhere in the log, before or after). Revisited with decision 8: an
//!    earlier message of that content still owed to the subscriber does
//!    excuse one copy (it is delivered first, [MQTT-4.6.0-6]); one it got
//!    already, or never was owed, does not. The repeat's owed copy is a
//!    spare, paired only when no publication of its content is owed: a
//!    later publication of the same content delivered after the repeat is
//!    that publication, not the repeat forwarded (latest-copy pairing
//!    gave the same there; oldest-first pairing with the repeat queued
//!    behind would cry wolf), and a copy beyond every owed publication is
//!    the repeat forwarded (the old pairing took it for a second copy of
//!    the later publication and said nothing).
//!
//! Decided anew when the table of every distinct message published gave
//! way to what each session is owed ([`super::owed`]), where the old
//! pairing (the latest PUBLISH of that content, anywhere) judged a
//! delivery against a message that could not be the one delivered:
//! 5. *A delivery is paired with what its own session was owed.* A message
//!    is owed to a session whose live filters matched it when it reached
//!    the broker and that the broker keeps (not one whose last connection
//!    ended it); a delivery of content the session was never owed (it
//!    subscribed later, unsubscribed before, or holds no subscription the
//!    log showed) is paired with nothing, and the QoS, order, share-group
//!    and repeat rules say nothing of it — that it came at all is
//!    `v5_packets`' [MQTT-3.3.2-3] and [MQTT-3.10.4-2]. The old pairing
//!    took a later PUBLISH of the same content that the session was not
//!    owed, and so reported buffered messages delivered in order as out
//!    of order, or a QoS above a publication that never went to it.
//! 6. *A first send takes the copy it delivers* (one per matching filter
//!    [MQTT-3.3.4-2]): another first send of a message already taken is
//!    a duplicate (`exactly_once` judges copies), not a message out of
//!    order. A QoS 2 repeat owes the message again, so that the copy a
//!    broker forwards for it is still judged by [MQTT-4.3.3-10].
//! 7. *A retained message sent for a subscription* (RETAIN set, and not
//!    owed to the session) is paired with the topic's retained message as
//!    the broker's store holds it, not with a later PUBLISH of the same
//!    content without RETAIN.
//!
//! Decided when pairing took the oldest owed copy instead of the latest:
//! 8. *The same content owed twice is delivered oldest first.* One
//!    client's PUBLISHes on a topic at a QoS reach a subscriber in the
//!    order they were received [MQTT-4.6.0-6], so a delivery is paired
//!    with the oldest owed publication of its content that keeps that
//!    order on its connection (not older than the last one delivered
//!    from the same publisher connection, topic and QoS) — an older one
//!    may have been dropped legally (QoS 0 [MQTT-4.3.1], expiry, a packet
//!    above the client's Maximum Packet Size) — else the oldest, which
//!    then breaks the order. Published `on`, `off`, `on` at QoS 1 in a
//!    burst: delivered `on`, `off`, `on` is in order (the latest-copy
//!    pairing took the first `on` for the second and cried wolf);
//!    delivered `off`, `on`, `on` is out of order, the first `on` having
//!    come after `off` whichever `on` each delivery is taken for (the
//!    latest-copy pairing took both for the second `on` and said
//!    nothing); at QoS 0, `off`, `on` is in order (the first `on`
//!    dropped).
//!
//! One state machine judges: [`AcksChecker::check`] feeds a history's
//! events to a fresh one ([`super::judge_whole`]) and `observe` feeds it as
//! events come ([`Checker::incremental`]). What it holds, and what bounds
//! it: per open 5.0 connection the acks it owes (each settled once the
//! log's time passes its deadline, or dropped when the connection closes),
//! the packet ids first sent on it, a resumed session's resend obligation,
//! the packet ids in flight to a shared-only member; per client id the
//! broker's unacknowledged packet ids (at most 65535, cleared by a new
//! session); per live session its subscription filters (dropped with the
//! session once a new one replaced it and its connections closed); per
//! open subscriber connection, publisher connection, topic and QoS the
//! last message delivered (the order rule); per live session the messages
//! the broker owes it ([`super::owed`]: taken by first sends, dropped with
//! the session or when it ends unkept, at most
//! [`PER_SESSION`](super::owed::PER_SESSION) of them); per topic the
//! retained message; and each message one of those tables still holds,
//! with its QoS 2 repeat state and the refusals that bar it from other
//! members (gone with the last table that holds it). None of it grows
//! with the length of the history, only with what the broker itself must
//! hold. Per connection a few fields remain after it closes (who, client
//! id, version), as in [`Context`](super::live::Context).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use super::index::{prop_u32, seen, sent};
use super::live::Context;
use super::owed::{self, content_key};
use super::v5_limits::{Pkt, V5Conns};
use super::{Checker, Incremental, Verdict, Violation};
use crate::history::{ConnId, Dir, Event, EventKind, History};
use crate::mqtt::{props, topic, Packet, Publish, QoS, Version};

pub struct AcksChecker {
    pub slack: Duration,
}

impl Checker for AcksChecker {
    fn name(&self) -> &str {
        "v5_acks"
    }

    fn check(&self, history: &History) -> Verdict {
        super::judge_whole(self.live(), history)
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(self.live()))
    }
}

impl AcksChecker {
    fn live(&self) -> Live {
        Live {
            slack: self.slack,
            ctx: Context::default(),
            exch: V5Conns::default(),
            out: HashMap::new(),
            wake: BinaryHeap::new(),
            links: HashMap::new(),
            sessions: HashMap::new(),
            current: HashMap::new(),
            pending: HashMap::new(),
            msgs: HashMap::new(),
            retained: HashMap::new(),
            q2_open: HashMap::new(),
            q2_by_key: HashMap::new(),
            found: Vec::new(),
        }
    }
}

/// The state of [`AcksChecker`] over the log fed so far.
struct Live {
    slack: Duration,
    ctx: Context,
    /// The exchanges of each 5.0 connection.
    exch: V5Conns<Exchanges>,
    /// Per client id, the broker's unacknowledged PUBLISHes: packet id ->
    /// (the send that made it outstanding, its connection).
    out: HashMap<String, HashMap<u16, (u64, ConnId)>>,
    /// Deadlines to settle once the log's time is past them.
    wake: BinaryHeap<Reverse<(Duration, ConnId)>>,
    /// Every connection as [`Index`](super::index::Index) reads it.
    links: HashMap<ConnId, Link>,
    /// The subscription tables of live sessions.
    sessions: HashMap<SessKey, Session>,
    /// Per actor, its last accepted connection (position) and its lineage.
    current: HashMap<String, (usize, usize)>,
    /// SUBSCRIBEs awaiting their SUBACK: (connection, packet id) -> per
    /// filter, its session and whether no UNSUBSCRIBE removed it since.
    pending: HashMap<(ConnId, u16), Vec<PendingSub>>,
    /// The messages some table below still holds, by id (the seq of
    /// their first arrival), each counting the tables that hold it.
    msgs: HashMap<u64, Source>,
    /// Per topic, the retained message the broker holds: content key, id.
    retained: HashMap<String, (u128, u64)>,
    /// QoS 2 messages before their PUBREL: (client id, packet id) -> id.
    q2_open: HashMap<(String, u16), u64>,
    /// Per content key, the open QoS 2 message that was the latest arrival
    /// of that content: what a DUP repeat of it is told by.
    q2_by_key: HashMap<u128, u64>,
    /// Violations, as they were found.
    found: Vec<Violation>,
}

/// A session: the lineage (position of its first connection) and client id.
type SessKey = (usize, Option<String>);

struct Session {
    actor: String,
    /// Live filters and the highest QoS their SUBACKs granted.
    filters: BTreeMap<String, Option<QoS>>,
    /// Connections of it that got their CONNACK and are not closed.
    members: usize,
    /// The messages the broker owes it (ids into `msgs`).
    owed: owed::Messages<u64>,
    /// Its last connection closed and the broker did not keep it: owed
    /// nothing more (though its table stays for the rules until replaced).
    gone: bool,
}

impl Session {
    fn new(actor: &str) -> Session {
        Session {
            actor: actor.to_string(),
            filters: BTreeMap::new(),
            members: 0,
            owed: owed::Messages::default(),
            gone: false,
        }
    }
}

struct PendingSub {
    actor: String,
    filter: String,
    sess: SessKey,
    alive: bool,
}

/// One connection's exchanges with the broker (5.0 connections only).
struct Exchanges {
    id: ConnId,
    cid: String,
    /// The client's Receive Maximum.
    rm: usize,
    /// The connection's first packet.
    opened: Option<(u64, Duration)>,
    connacked: bool,
    /// What the broker owes and since when, in the order it arose.
    owed: Vec<Owed>,
    /// Packet ids the broker first sent on this connection.
    first_here: BTreeSet<u16>,
    resume: Option<Resume>,
}

struct Owed {
    what: &'static str,
    pid: u16,
    seq: u64,
    at: Duration,
    rule: &'static str,
    /// Settled once the log's time passed the deadline: whether it then
    /// counted (the connection open, undisturbed, the broker up). An
    /// answer that comes later still answers it.
    late: Option<bool>,
}

/// What a resumed session owes again [MQTT-4.4.0-1].
struct Resume {
    seq: u64,
    at: Duration,
    owed: BTreeSet<u16>,
    resent: BTreeSet<u16>,
    due: usize,
}

/// A connection as [`Index`](super::index::Index) reads it for routing.
struct Link {
    ci: usize,
    actor: String,
    /// From the first CONNECT sent: client id, 5.0, clean start, Session
    /// Expiry.
    cid: Option<String>,
    v5: bool,
    clean: bool,
    expiry: Option<u32>,
    /// The first DISCONNECT from the client that carried a Session Expiry.
    disc_expiry: Option<u32>,
    connacked: bool,
    closed: bool,
    sess: SessKey,
    aliases: [HashMap<u32, String>; 2],
    /// Deliveries to a shared-only member not yet answered, by packet id.
    inflight: BTreeMap<u16, Member>,
    /// Order per (publisher connection, topic, QoS): the last (message,
    /// delivery), or `None` once it broke.
    order: HashMap<(ConnId, String, u8), Option<(u64, u64)>>,
}

/// A delivery to a member of share groups.
struct Member {
    id: u64,
    src: u64,
    seq: u64,
    qos: QoS,
    groups: BTreeSet<String>,
}

/// A message no other member of `groups` may get.
struct Ban {
    cid: Option<String>,
    groups: BTreeSet<String>,
    after: u64,
    rule: &'static str,
    why: &'static str,
    d_seq: u64,
    d_actor: String,
}

/// A PUBLISH that reached the broker, as a table still holds it.
struct Source {
    key: u128,
    /// How many tables hold it (sessions' owed tables, the retained
    /// store, the open QoS 2 maps): it goes when none does.
    refs: u32,
    seq: u64,
    conn: ConnId,
    qos: QoS,
    dup: bool,
    q2: Option<Q2>,
    bans: Vec<Ban>,
}

/// A 5.0 client's QoS 2 message, for [MQTT-4.3.3-10].
struct Q2 {
    seq: u64,
    pid: u16,
    cid: String,
    /// No PUBREL for it yet.
    open: bool,
    repeated: bool,
    /// Per subscriber client id: its first sends of it, and where its
    /// violation is in `found`.
    got: HashMap<String, (Vec<u64>, Option<usize>)>,
}

impl Exchanges {
    fn owe(&mut self, what: &'static str, pid: u16, p: &Pkt, rule: &'static str, sh: &mut Sh) {
        self.owed.push(Owed {
            what,
            pid,
            seq: p.seq,
            at: p.at,
            rule,
            late: None,
        });
        sh.wake.push(Reverse((p.at + sh.slack, self.id)));
    }

    fn step(&mut self, actor: &str, p: Pkt, sh: &mut Sh) {
        self.opened.get_or_insert((p.seq, p.at));
        match (p.packet, p.dir) {
            (Packet::Publish(pb), Dir::ToBroker) if seen(p.fate) => match (pb.qos, pb.pid) {
                (QoS::AtLeastOnce, Some(pid)) => self.owe("PUBACK", pid, &p, "MQTT-4.3.2-4", sh),
                (QoS::ExactlyOnce, Some(pid)) => self.owe("PUBREC", pid, &p, "MQTT-4.3.3-8", sh),
                _ => {}
            },
            (Packet::PubRel(a), Dir::ToBroker) if seen(p.fate) => {
                self.owe("PUBCOMP", a.pid, &p, "MQTT-4.3.3-11", sh)
            }
            (Packet::PubRec(a), Dir::ToBroker) if seen(p.fate) && a.code < 0x80 => {
                self.owe("PUBREL", a.pid, &p, "MQTT-4.3.3-4", sh)
            }
            (
                Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a),
                Dir::ToClient,
            ) => {
                let kind = p.packet.packet_type().name();
                if let Some(i) = self
                    .owed
                    .iter()
                    .position(|o| o.what == kind && o.pid == a.pid)
                {
                    self.owed.remove(i);
                }
            }
            _ => {}
        }
        let out = sh.out.entry(self.cid.clone()).or_default();
        match (p.packet, p.dir) {
            (Packet::Publish(pb), Dir::ToClient) if sent(p.fate) => {
                let Some(pid) = pb.pid else { return };
                if pb.dup && self.first_here.contains(&pid) {
                    if let Some(&(first, _)) = out.get(&pid) {
                        sh.found.push(Violation::new(
                            "MQTT-4.4.0-1",
                            format!("the broker resent PUBLISH {pid} to {actor} on the connection that first carried it"),
                            vec![first, p.seq],
                        ));
                    }
                }
                match out.get(&pid) {
                    Some(&(first, _)) => {
                        if !pb.dup {
                            sh.found.push(Violation::new(
                                "MQTT-3.3.1-1",
                                format!(
                                    "the broker sent PUBLISH {pid} to {actor} again without DUP"
                                ),
                                vec![first, p.seq],
                            ));
                        }
                    }
                    None => {
                        self.first_here.insert(pid);
                        out.insert(pid, (p.seq, self.id));
                    }
                }
                if let Some(r) = self.resume.as_mut() {
                    if pb.dup && p.at <= r.at + sh.slack && r.owed.contains(&pid) {
                        r.resent.insert(pid);
                    }
                }
            }
            (Packet::PubAck(a) | Packet::PubComp(a), Dir::ToBroker) if seen(p.fate) => {
                out.remove(&a.pid);
            }
            (Packet::PubRec(a), Dir::ToBroker) if seen(p.fate) => {
                // From here the broker owes PUBREL, not the PUBLISH.
                out.remove(&a.pid);
            }
            (Packet::Connect(c), Dir::ToBroker) if c.clean_start && seen(p.fate) => {
                // Clean Start 1 discards the session [MQTT-3.1.2-4].
                out.retain(|_, (_, by)| *by == self.id);
            }
            (Packet::ConnAck(a), _) if !self.connacked => {
                self.connacked = true;
                if a.session_present {
                    // Owed again: what the session had outstanding from
                    // earlier connections when it was resumed.
                    let owed: BTreeSet<u16> = out
                        .iter()
                        .filter(|(_, (_, by))| *by != self.id)
                        .map(|(pid, _)| *pid)
                        .collect();
                    if let (Some((seq, at)), false) = (self.opened, owed.is_empty()) {
                        self.resume = Some(Resume {
                            seq,
                            at,
                            due: owed.len().min(self.rm),
                            owed,
                            resent: BTreeSet::new(),
                        });
                        sh.wake.push(Reverse((at + sh.slack, self.id)));
                    }
                } else {
                    // A new session: nothing from earlier connections is owed.
                    out.retain(|_, (_, by)| *by == self.id);
                }
            }
            _ => {}
        }
    }

    /// Settles the deadlines the log's time (`ctx.end()`) has passed.
    fn settle(&mut self, actor: &str, ctx: &Context, slack: Duration, found: &mut Vec<Violation>) {
        let end = ctx.end();
        let closed = ctx
            .conns
            .get(&self.id)
            .and_then(|m| m.closed.as_ref().map(|(s, _)| s.at));
        let open = |limit: Duration| closed.is_none_or(|t| t > limit);
        if let Some(r) = self.resume.as_ref().filter(|r| r.at + slack < end) {
            let limit = r.at + slack;
            if r.resent.len() < r.due && open(limit) && ctx.undisturbed(actor, r.at, limit) {
                let missing: Vec<&u16> = r.owed.iter().filter(|x| !r.resent.contains(x)).collect();
                found.push(Violation::new(
                    "MQTT-4.4.0-1",
                    format!(
                        "{actor} resumed its session and the broker did not resend its unacknowledged PUBLISH(es) {missing:?} within {}",
                        super::fmt_d(slack)
                    ),
                    vec![r.seq],
                ));
            }
            self.resume = None;
        }
        for o in self.owed.iter_mut().filter(|o| o.late.is_none()) {
            let limit = o.at + slack;
            if limit < end {
                o.late = Some(
                    open(limit)
                        && ctx.undisturbed(actor, o.at, limit)
                        && !ctx.broker_down_between(o.at, limit),
                );
            }
        }
    }

    /// The violations of what is owed and was not answered in time.
    fn unanswered(&self, actor: &str, slack: Duration, v: &mut Vec<Violation>) {
        for o in self.owed.iter().filter(|o| o.late == Some(true)) {
            let pid = o.pid;
            v.push(Violation::new(
                o.rule,
                format!(
                    "no {} {pid} to {actor} within {}",
                    o.what,
                    super::fmt_d(slack)
                ),
                vec![o.seq],
            ));
            if o.rule == "MQTT-4.3.2-4" || o.rule == "MQTT-4.3.3-8" {
                v.push(Violation::new(
                    "MQTT-3.3.4-1",
                    format!(
                        "the broker did not answer {actor}'s PUBLISH {pid} as its QoS requires"
                    ),
                    vec![o.seq],
                ));
            }
        }
    }

    /// The connection closed and its deadlines were settled: nothing can
    /// answer what it owed any more, and what is not due yet was cut off
    /// by the close, which excuses it.
    fn closed(&mut self, actor: &str, slack: Duration, found: &mut Vec<Violation>) {
        self.unanswered(actor, slack, found);
        self.owed = Vec::new();
        self.resume = None;
        self.first_here = BTreeSet::new();
    }
}

/// What the connections' exchanges share.
struct Sh<'a> {
    slack: Duration,
    out: &'a mut HashMap<String, HashMap<u16, (u64, ConnId)>>,
    wake: &'a mut BinaryHeap<Reverse<(Duration, ConnId)>>,
    found: &'a mut Vec<Violation>,
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        self.ctx.feed(ev);
        let slack = self.slack;
        let mut sh = Sh {
            slack,
            out: &mut self.out,
            wake: &mut self.wake,
            found: &mut self.found,
        };
        self.exch.feed(
            ev,
            |_, c| Exchanges {
                id: match &ev.kind {
                    EventKind::Packet { conn, .. } => *conn,
                    _ => ConnId(u32::MAX),
                },
                cid: c.client_id.clone(),
                rm: props::num(&c.properties, props::RECEIVE_MAXIMUM).unwrap_or(65535) as usize,
                opened: None,
                connacked: false,
                owed: Vec::new(),
                first_here: BTreeSet::new(),
                resume: None,
            },
            |st, actor, p| st.step(actor, p, &mut sh),
        );
        match &ev.kind {
            EventKind::ConnOpened { conn, actor } => {
                self.link(*conn, actor);
            }
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } => {
                self.link(*conn, actor);
                self.route(ev.seq, *conn, actor, *dir, packet, *fate);
            }
            EventKind::ConnClosed { conn, actor, .. } => {
                self.link(*conn, actor);
                self.link_closed(*conn, ev.seq);
            }
            _ => {}
        }
        let end = self.ctx.end();
        while let Some(&Reverse((limit, id))) = self.wake.peek() {
            if limit >= end {
                break;
            }
            self.wake.pop();
            if let (Some(st), Some(m)) = (self.exch.get_mut(id), self.ctx.conns.get(&id)) {
                st.settle(&m.actor, &self.ctx, slack, &mut self.found);
            }
        }
        // What a closed connection still owed was cut off by the close
        // (its due deadlines were settled just above).
        if let EventKind::ConnClosed { conn, .. } = &ev.kind {
            if let (Some(st), Some(m)) = (self.exch.get_mut(*conn), self.ctx.conns.get(conn)) {
                st.closed(&m.actor, slack, &mut self.found);
            }
        }
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("v5_acks");
        v.violations = self.found.clone();
        for (actor, st) in self.exch.judged() {
            st.unanswered(actor, self.slack, &mut v.violations);
        }
        v
    }
}

impl Live {
    fn link(&mut self, id: ConnId, actor: &str) -> &mut Link {
        let ci = self.ctx.conns.get(&id).map_or(usize::MAX, |m| m.ci);
        self.links.entry(id).or_insert_with(|| Link {
            ci,
            actor: actor.to_string(),
            cid: None,
            v5: false,
            clean: true,
            expiry: None,
            disc_expiry: None,
            connacked: false,
            closed: false,
            sess: (ci, None),
            aliases: [HashMap::new(), HashMap::new()],
            inflight: BTreeMap::new(),
            order: HashMap::new(),
        })
    }

    /// A packet on the routing side: sessions, subscriptions, messages and
    /// their deliveries.
    fn route(
        &mut self,
        seq: u64,
        conn: ConnId,
        actor: &str,
        dir: Dir,
        packet: &Packet,
        fate: crate::history::Fate,
    ) {
        let to_broker = dir == Dir::ToBroker;
        match packet {
            Packet::Connect(c) if to_broker && sent(fate) => {
                let l = self.link(conn, actor);
                if l.cid.is_none() {
                    l.cid = Some(c.client_id.clone());
                    l.v5 = c.version == Version::V5;
                    l.clean = c.clean_start;
                    l.expiry = props::num(&c.properties, props::SESSION_EXPIRY);
                    l.sess = (l.ci, l.cid.clone());
                }
            }
            Packet::ConnAck(a) if !to_broker && sent(fate) => self.connack(conn, a),
            Packet::Disconnect(d) if to_broker => {
                let l = self.link(conn, actor);
                if l.disc_expiry.is_none() {
                    l.disc_expiry = props::num(&d.properties, props::SESSION_EXPIRY);
                }
            }
            Packet::Publish(p) => {
                let l = self.link(conn, actor);
                let mut p = p.clone();
                if let Some(alias) = prop_u32(&p.properties, props::TOPIC_ALIAS) {
                    let map = &mut l.aliases[usize::from(to_broker)];
                    if p.topic.is_empty() {
                        if let Some(t) = map.get(&alias) {
                            p.topic = t.clone();
                        }
                    } else {
                        map.insert(alias, p.topic.clone());
                    }
                }
                if to_broker && seen(fate) {
                    self.arrived(seq, conn, &p);
                } else if !to_broker && sent(fate) {
                    self.delivered(seq, conn, actor, &p);
                }
            }
            Packet::PubRel(a) if to_broker && seen(fate) => {
                let cid = self.link(conn, actor).cid.clone().unwrap_or_default();
                if let Some(id) = self.q2_open.remove(&(cid, a.pid)) {
                    if let Some(s) = self.msgs.get_mut(&id) {
                        if let Some(q) = s.q2.as_mut() {
                            q.open = false;
                        }
                        let key = s.key;
                        if self.q2_by_key.get(&key) == Some(&id) {
                            self.q2_by_key.remove(&key);
                            release(&mut self.msgs, id);
                        }
                    }
                    release(&mut self.msgs, id);
                }
            }
            Packet::PubAck(a) | Packet::PubRec(a) if to_broker => {
                let refused = a.code >= 0x80;
                let rec = matches!(packet, Packet::PubRec(_));
                let l = self.link(conn, actor);
                let cid = l.cid.clone();
                // A success PUBREC leaves a QoS 2 exchange open (PUBCOMP
                // ends it); a success PUBACK ends a QoS 1 one.
                let ends = refused
                    || (!rec
                        && l.inflight
                            .get(&a.pid)
                            .is_some_and(|m| m.qos != QoS::ExactlyOnce));
                let m = if ends {
                    l.inflight.remove(&a.pid)
                } else {
                    None
                };
                if let (Some(m), true) = (m, refused) {
                    self.ban(m, cid, seq, actor, "MQTT-4.8.2-6", "refused it");
                }
            }
            Packet::PubComp(a) if to_broker => {
                self.link(conn, actor).inflight.remove(&a.pid);
            }
            Packet::Subscribe(s) if to_broker && seen(fate) => {
                let sess = self.link(conn, actor).sess.clone();
                let table = self
                    .sessions
                    .entry(sess.clone())
                    .or_insert_with(|| Session::new(actor));
                let mut waiting = Vec::new();
                for f in &s.filters {
                    table.filters.entry(f.filter.clone()).or_insert(None);
                    waiting.push(PendingSub {
                        actor: actor.to_string(),
                        filter: f.filter.clone(),
                        sess: sess.clone(),
                        alive: true,
                    });
                }
                self.pending.insert((conn, s.pid), waiting);
            }
            Packet::SubAck(sa) if !to_broker && sent(fate) => {
                for (k, w) in self
                    .pending
                    .remove(&(conn, sa.pid))
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    let granted = sa
                        .codes
                        .get(k)
                        .filter(|c| **c < 0x80)
                        .map(|c| QoS::from_u8(*c));
                    if let (Some(g), true) = (granted, w.alive) {
                        if let Some(f) = self
                            .sessions
                            .get_mut(&w.sess)
                            .and_then(|t| t.filters.get_mut(&w.filter))
                        {
                            *f = (*f).max(g);
                        }
                    }
                }
            }
            Packet::Unsubscribe(u) if to_broker && seen(fate) => {
                for t in self.sessions.values_mut() {
                    if t.actor == actor {
                        for f in &u.filters {
                            t.filters.remove(f);
                        }
                    }
                }
                for w in self.pending.values_mut().flatten() {
                    if w.actor == actor && u.filters.contains(&w.filter) {
                        w.alive = false;
                    }
                }
            }
            _ => {}
        }
    }

    /// The first CONNACK the broker sent on a connection: the session it
    /// joins, lineages as [`Index`](super::index::Index) makes them.
    fn connack(&mut self, conn: ConnId, a: &crate::mqtt::ConnAck) {
        let Some(l) = self.links.get_mut(&conn) else {
            return;
        };
        if l.connacked || l.cid.is_none() {
            return;
        }
        l.connacked = true;
        let accepted = a.code == 0;
        let prev = self
            .current
            .get(&l.actor)
            .filter(|(ci, _)| *ci < l.ci)
            .copied();
        let lineage = match prev {
            Some((_, lineage)) if !l.clean && accepted && a.session_present => lineage,
            _ => l.ci,
        };
        l.sess = (lineage, l.cid.clone());
        let actor = l.actor.clone();
        self.sessions
            .entry(l.sess.clone())
            .or_insert_with(|| Session::new(&actor));
        let s = self.sessions.get_mut(&l.sess).expect("inserted above");
        s.members += 1;
        s.gone = false;
        if accepted {
            let before = self.current.insert(actor, (l.ci, lineage));
            if let Some((_, old)) = before.filter(|(_, old)| *old != lineage) {
                // A new session replaced the actor's earlier one: what is
                // left of it is kept while a connection of it is open.
                let msgs = &mut self.msgs;
                self.sessions.retain(|k, s| {
                    let keep = k.0 != old || s.members > 0;
                    if !keep {
                        s.owed.drain().for_each(|id| release(msgs, id));
                    }
                    keep
                });
            }
        }
    }

    fn link_closed(&mut self, conn: ConnId, seq: u64) {
        let Some(l) = self.links.get_mut(&conn) else {
            return;
        };
        if l.closed {
            return;
        }
        l.closed = true;
        let ended = l.disc_expiry.or(l.expiry).unwrap_or(0) == 0;
        // The broker keeps the session after its last connection: a 5.0
        // one with a Session Expiry, a 3.1.1 one without Clean Session.
        let kept = if l.v5 { !ended } else { !l.clean };
        let inflight = std::mem::take(&mut l.inflight);
        l.order = HashMap::new();
        l.aliases = [HashMap::new(), HashMap::new()];
        let (cid, actor, sess, member) =
            (l.cid.clone(), l.actor.clone(), l.sess.clone(), l.connacked);
        if ended {
            // The member's session ended with its connection in the middle
            // of QoS 2 exchanges [MQTT-4.8.2-5].
            for m in inflight.into_values().filter(|m| m.qos == QoS::ExactlyOnce) {
                self.ban(
                    m,
                    cid.clone(),
                    seq,
                    &actor,
                    "MQTT-4.8.2-5",
                    "lost its session mid-QoS 2",
                );
            }
        }
        let current = self.current.get(&actor).map(|(_, lineage)| *lineage);
        if let Some(s) = self.sessions.get_mut(&sess) {
            if member {
                s.members = s.members.saturating_sub(1);
            }
            if s.members == 0 && !kept {
                // Nothing is owed to a session that ended [MQTT-3.1.2-4].
                s.gone = true;
                s.owed.drain().for_each(|id| release(&mut self.msgs, id));
            }
            if s.members == 0 && current != Some(sess.0) {
                if let Some(mut s) = self.sessions.remove(&sess) {
                    s.owed.drain().for_each(|id| release(&mut self.msgs, id));
                }
            }
        }
        self.pending.retain(|(c, _), _| *c != conn);
    }

    /// `m` may go to no other member of its groups from `after` on.
    fn ban(
        &mut self,
        m: Member,
        cid: Option<String>,
        after: u64,
        actor: &str,
        rule: &'static str,
        why: &'static str,
    ) {
        // A message no table holds any more, or repeated since, can no
        // longer be paired with that delivery: nothing to bar.
        if let Some(s) = self.msgs.get_mut(&m.id).filter(|s| s.seq == m.src) {
            s.bans.push(Ban {
                cid,
                groups: m.groups,
                after,
                rule,
                why,
                d_seq: m.seq,
                d_actor: actor.to_string(),
            });
        }
    }

    /// A PUBLISH that reached the broker: a new message, owed to every
    /// session whose live filters match it (one copy per matching filter
    /// at most) and kept as its topic's retained message if it says so —
    /// or a QoS 2 repeat of the latest message of its topic and payload.
    fn arrived(&mut self, seq: u64, conn: ConnId, p: &Publish) {
        let (cid, v5) = self
            .links
            .get(&conn)
            .map_or((None, false), |l| (l.cid.clone(), l.v5));
        let key = content_key(&p.topic, &p.payload);
        let repeat = self.q2_by_key.get(&key).copied().filter(|id| {
            p.dup
                && self
                    .msgs
                    .get(id)
                    .and_then(|s| s.q2.as_ref())
                    .is_some_and(|q| {
                        q.open && Some(q.pid) == p.pid && cid.as_deref() == Some(q.cid.as_str())
                    })
        });
        if let Some(id) = repeat {
            // The same message again: what is delivered from here is
            // paired with this copy, and the repeat is on record.
            if let Some(s) = self.msgs.get_mut(&id) {
                s.seq = seq;
                s.conn = conn;
                s.qos = p.qos;
                s.dup = true;
                s.bans.clear();
                if let Some(q) = s.q2.as_mut() {
                    q.repeated = true;
                }
            }
            self.owe(id, key, p, true);
            return;
        }
        // A new message with this content: an open QoS 2 message with it
        // is no longer the one a repeat would be told by.
        if let Some(old) = self.q2_by_key.remove(&key) {
            if let Some(k) = self
                .msgs
                .get(&old)
                .and_then(|s| s.q2.as_ref())
                .map(|q| (q.cid.clone(), q.pid))
            {
                if self.q2_open.get(&k) == Some(&old) {
                    self.q2_open.remove(&k);
                    release(&mut self.msgs, old);
                }
            }
            release(&mut self.msgs, old);
        }
        let q2 = match (p.qos, p.pid, p.dup, v5, cid) {
            (QoS::ExactlyOnce, Some(pid), false, true, Some(c)) if !c.is_empty() => Some(Q2 {
                seq,
                pid,
                cid: c,
                open: true,
                repeated: false,
                got: HashMap::new(),
            }),
            _ => None,
        };
        let open = q2.as_ref().map(|q| (q.cid.clone(), q.pid));
        self.msgs.insert(
            seq,
            Source {
                key,
                refs: 0,
                seq,
                conn,
                qos: p.qos,
                dup: p.dup,
                q2,
                bans: Vec::new(),
            },
        );
        if let Some(k) = open {
            hold(&mut self.msgs, seq);
            if let Some(old) = self.q2_open.insert(k, seq) {
                release(&mut self.msgs, old);
            }
            hold(&mut self.msgs, seq);
            self.q2_by_key.insert(key, seq);
        }
        self.owe(seq, key, p, false);
        if p.retain {
            let before = if p.payload.is_empty() {
                self.retained.remove(&p.topic)
            } else {
                hold(&mut self.msgs, seq);
                self.retained.insert(p.topic.clone(), (key, seq))
            };
            if let Some((_, old)) = before {
                release(&mut self.msgs, old);
            }
        }
        if self.msgs.get(&seq).is_some_and(|s| s.refs == 0) {
            self.msgs.remove(&seq);
        }
    }

    /// Message `id` becomes owed to every session whose live filters
    /// match it: one copy per matching filter [MQTT-3.3.4-2]. A QoS 2
    /// repeat owes it again, so that a copy the broker forwards for the
    /// repeat is paired and judged [MQTT-4.3.3-10], even if the first
    /// copy had not gone out yet.
    fn owe(&mut self, id: u64, key: u128, p: &Publish, repeat: bool) {
        let msgs = &mut self.msgs;
        for s in self.sessions.values_mut() {
            let copies = s
                .filters
                .keys()
                .filter(|f| topic::matches(f, &p.topic))
                .count() as u32;
            if s.gone || copies == 0 {
                continue;
            }
            hold(msgs, id);
            let gone = if repeat {
                s.owed.owe_again(key, id)
            } else {
                s.owed.owe(key, copies, id)
            };
            for old in gone {
                release(msgs, old);
            }
        }
    }

    /// A PUBLISH the broker sent to a subscriber.
    fn delivered(&mut self, seq: u64, conn: ConnId, actor: &str, p: &Publish) {
        let Some(l) = self.links.get_mut(&conn) else {
            return;
        };
        // The session's matching subscriptions at this moment.
        let live: Vec<(String, Option<QoS>)> = self
            .sessions
            .get(&l.sess)
            .map(|t| {
                t.filters
                    .iter()
                    .filter(|(f, _)| topic::matches(f, &p.topic))
                    .map(|(f, g)| (f.clone(), *g))
                    .collect()
            })
            .unwrap_or_default();
        let group = |f: &str| topic::parse_filter(f).share_group.map(str::to_string);
        let shared_only = !live.is_empty() && live.iter().all(|(f, _)| group(f).is_some());
        let granted = live.iter().filter_map(|(_, g)| *g).max();
        let groups: Option<BTreeSet<String>> =
            shared_only.then(|| live.iter().filter_map(|(f, _)| group(f)).collect());
        // The message delivered: the one owed to this session with this
        // topic and payload, else the topic's retained message if it has
        // them; else none, and the rules below that need it are silent.
        let key = content_key(&p.topic, &p.payload);
        let table = self.sessions.get_mut(&l.sess);
        // Of the publications of this content owed, the oldest that keeps
        // its publisher's order on this connection (an older one may have
        // been dropped legally, see decision 8), else the oldest.
        let (msgs, order) = (&self.msgs, &l.order);
        let fits = |id: &u64| {
            msgs.get(id).is_none_or(|s| {
                s.dup
                    || order
                        .get(&(s.conn, p.topic.clone(), s.qos.as_u8()))
                        .is_none_or(|last| last.is_none_or(|(ps, _)| s.seq >= ps))
            })
        };
        let picked = table
            .as_ref()
            .and_then(|t| t.owed.pick(key, fits))
            .map(|(slot, id)| (slot, *id));
        let id = picked.map(|(_, id)| id).or_else(|| {
            // Sent for a new subscription, a retained message says so
            // [MQTT-3.3.1-9].
            self.retained
                .get(&p.topic)
                .filter(|(k, _)| *k == key && p.retain)
                .map(|(_, id)| *id)
        });
        // A first send takes the copy it delivers; what it needs of the
        // message stays while this function runs.
        let taken = match (table, p.dup, picked) {
            (Some(t), false, Some((slot, _))) => t.owed.take(key, slot),
            _ => None,
        };
        let src = id.and_then(|id| self.msgs.get_mut(&id));
        let found = &mut self.found;
        if l.v5 {
            if let (Some(g), Some(s)) = (granted, src.as_deref()) {
                if p.qos > g.min(s.qos) {
                    // Through a shared subscription, the member's grant
                    // binds as well [MQTT-4.8.2-3].
                    let rules: &[&str] = if shared_only {
                        &["MQTT-3.8.4-8", "MQTT-4.8.2-3"]
                    } else {
                        &["MQTT-3.8.4-8"]
                    };
                    for rule in rules {
                        found.push(Violation::new(
                            *rule,
                            format!(
                                "{actor} got {} at QoS {}: published at QoS {}, granted QoS {}",
                                p.topic,
                                p.qos.as_u8(),
                                s.qos.as_u8(),
                                g.as_u8()
                            ),
                            vec![seq],
                        ));
                    }
                }
            }
            // Order is owed on non-shared subscriptions: every topic is
            // an ordered topic there [MQTT-4.6.0-6].
            if let Some(s) = src
                .as_deref()
                .filter(|s| !p.dup && !shared_only && !s.dup && !p.retain)
            {
                let last = l
                    .order
                    .entry((s.conn, p.topic.clone(), s.qos.as_u8()))
                    .or_insert(Some((s.seq, seq)));
                if let Some((ps, pd)) = *last {
                    if s.seq < ps {
                        for rule in ["MQTT-4.6.0-5", "MQTT-4.6.0-6"] {
                            found.push(Violation::new(
                                rule,
                                format!(
                                    "{actor} got messages on {} out of the order they were published",
                                    p.topic
                                ),
                                vec![s.seq, ps, pd, seq],
                            ));
                        }
                        *last = None;
                    } else {
                        *last = Some((s.seq, seq));
                    }
                }
            }
        }
        let Some(s) = src else {
            if let Some(t) = taken {
                release(&mut self.msgs, t);
            }
            return;
        };
        if l.v5 && !p.dup {
            if let Some(og) = &groups {
                let mut i = 0;
                while i < s.bans.len() {
                    let b = &s.bans[i];
                    if b.cid != l.cid && !b.groups.is_disjoint(og) {
                        found.push(Violation::new(
                            b.rule,
                            format!(
                                "a message on {} went to {actor} through a shared subscription after {} {}",
                                p.topic, b.d_actor, b.why
                            ),
                            vec![s.seq, b.d_seq, b.after, seq],
                        ));
                        s.bans.remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
            if let (Some(pid), Some(g)) = (p.pid, groups) {
                l.inflight.insert(
                    pid,
                    Member {
                        id: id.unwrap_or_default(),
                        src: s.seq,
                        seq,
                        qos: p.qos,
                        groups: g,
                    },
                );
            }
        }
        // One non-shared subscription: the message reaches it once.
        let single = live.len() == 1 && !shared_only;
        let cid = l.cid.clone().filter(|c| !c.is_empty());
        if let (Some(q), Some(c), true) = (s.q2.as_mut(), cid, single && !p.dup && !p.retain) {
            let (seqs, at) = q.got.entry(c.clone()).or_default();
            seqs.push(seq);
            if q.repeated && seqs.len() > 1 {
                let mut evs = vec![q.seq];
                evs.extend(seqs.iter().copied());
                let v = Violation::new(
                    "MQTT-4.3.3-10",
                    format!(
                        "{c} got the QoS 2 message on {} {} times: the broker forwarded its publisher's repeats as new messages",
                        p.topic,
                        seqs.len()
                    ),
                    evs,
                );
                match *at {
                    Some(i) => found[i] = v,
                    None => {
                        *at = Some(found.len());
                        found.push(v);
                    }
                }
            }
        }
        if let Some(t) = taken {
            release(&mut self.msgs, t);
        }
    }
}

/// One more table holds message `id`.
fn hold(msgs: &mut HashMap<u64, Source>, id: u64) {
    if let Some(s) = msgs.get_mut(&id) {
        s.refs += 1;
    }
}

/// One table fewer holds message `id`: it goes when none does.
fn release(msgs: &mut HashMap<u64, Source>, id: u64) {
    if let Some(s) = msgs.get_mut(&id) {
        s.refs = s.refs.saturating_sub(1);
        if s.refs == 0 {
            msgs.remove(&id);
        }
    }
}
#[cfg(test)]
mod tests {
    use super::super::v5_testkit::*;
    use super::*;
    use crate::history::CloseReason;
    use crate::mqtt::PacketType;

    fn checker() -> AcksChecker {
        AcksChecker {
            slack: Duration::from_millis(500),
        }
    }

    fn up(k: &mut Kit) -> &mut Kit {
        k.session(
            1,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        )
    }

    #[test]
    fn answered_exchanges_pass_and_a_close_excuses_the_rest() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 1, "t", "a", "")).down(
            1,
            "device",
            ack(PacketType::PubAck, 1, 0),
        );
        k.up(1, "device", publish(Some(2), 2, "t", "b", "")).down(
            1,
            "device",
            ack(PacketType::PubRec, 2, 0),
        );
        k.up(1, "device", ack(PacketType::PubRel, 2, 0)).down(
            1,
            "device",
            ack(PacketType::PubComp, 2, 0),
        );
        k.up(1, "device", publish(Some(3), 1, "t", "c", "")).close(
            1,
            "device",
            CloseReason::Severed,
        );
        k.wait(1000).step("end");
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");
    }

    #[test]
    fn missing_puback_pubrec_pubcomp_and_pubrel_fail() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 1, "t", "a", ""))
            .wait(1000)
            .step("end");
        let v = checker().check(&k.history());
        assert_violates(&v, "MQTT-4.3.2-4");
        assert_violates(&v, "MQTT-3.3.4-1");
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 2, "t", "a", ""))
            .wait(1000)
            .step("end");
        assert_violates(&checker().check(&k.history()), "MQTT-4.3.3-8");
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", ack(PacketType::PubRel, 4, 0))
            .wait(1000)
            .step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.3.3-11"]);
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 2, 0, ""))
            .down(1, "device", suback(1, &[2]));
        k.down(1, "device", publish(Some(6), 2, "t", "x", "")).up(
            1,
            "device",
            ack(PacketType::PubRec, 6, 0),
        );
        k.wait(1000).step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.3.3-4"]);
    }

    #[test]
    fn a_resend_without_dup_fails_on_the_same_or_a_resumed_connection() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.down(1, "device", publish(Some(6), 1, "t", "x", ""));
        k.close(1, "device", CloseReason::Severed);
        k.session(
            2,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(true, 0, ""),
        );
        k.down(2, "device", dup(publish(Some(6), 1, "t", "x", "")))
            .up(2, "device", ack(PacketType::PubAck, 6, 0));
        assert!(checker().check(&k.history()).ok());
        k.down(2, "device", publish(Some(6), 1, "t", "y", "")).up(
            2,
            "device",
            ack(PacketType::PubAck, 6, 0),
        );
        assert!(
            checker().check(&k.history()).ok(),
            "acked: the id is free again"
        );
        k.down(2, "device", publish(Some(7), 1, "t", "z", "")).down(
            2,
            "device",
            publish(Some(7), 1, "t", "z", ""),
        );
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.1-1"]);
    }

    #[test]
    fn resume_resends_what_is_owed_and_nothing_is_resent_otherwise() {
        let base = |k: &mut Kit| {
            up(k);
            k.up(1, "device", subscribe(1, "t", 1, 0, ""))
                .down(1, "device", suback(1, &[1]));
            k.down(1, "device", publish(Some(6), 1, "t", "x", ""));
            k.close(1, "device", CloseReason::Severed);
            k.session(
                2,
                "device",
                connect("d", false, 60, "session_expiry = 60"),
                connack(true, 0, ""),
            );
        };
        let mut k = Kit::new();
        base(&mut k);
        k.wait(2000).step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.4.0-1"]);
        let mut k = Kit::new();
        base(&mut k);
        k.down(2, "device", dup(publish(Some(6), 1, "t", "x", "")));
        k.wait(10)
            .down(2, "device", dup(publish(Some(6), 1, "t", "x", "")));
        let v = checker().check(&k.history());
        assert!(
            v.ok(),
            "a second DUP on the resumed connection is a retransmission of the resend: {v:?}"
        );
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.down(1, "device", publish(Some(6), 1, "t", "x", ""));
        k.wait(10)
            .down(1, "device", dup(publish(Some(6), 1, "t", "x", "")));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.4.0-1"]);
    }

    #[test]
    fn one_publishers_messages_arrive_in_order() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
        k.session(
            2,
            "cloud",
            connect("c", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(2, "cloud", publish(None, 0, "t", "1", "")).up(
            2,
            "cloud",
            publish(None, 0, "t", "2", ""),
        );
        k.down(1, "device", publish(None, 0, "t", "1", "")).down(
            1,
            "device",
            publish(None, 0, "t", "2", ""),
        );
        assert!(checker().check(&k.history()).ok());
        k.up(2, "cloud", publish(None, 0, "t", "3", "")).up(
            2,
            "cloud",
            publish(None, 0, "t", "4", ""),
        );
        k.down(1, "device", publish(None, 0, "t", "4", "")).down(
            1,
            "device",
            publish(None, 0, "t", "3", ""),
        );
        assert_eq!(
            checker().check(&k.history()).rules(),
            vec!["MQTT-4.6.0-5", "MQTT-4.6.0-6"]
        );
    }

    #[test]
    fn delivered_qos_above_the_grant_fails() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.session(
            2,
            "cloud",
            connect("c", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(2, "cloud", publish(Some(1), 2, "t", "x", "")).down(
            2,
            "cloud",
            ack(PacketType::PubRec, 1, 0),
        );
        k.up(2, "cloud", ack(PacketType::PubRel, 1, 0)).down(
            2,
            "cloud",
            ack(PacketType::PubComp, 1, 0),
        );
        k.down(1, "device", publish(Some(9), 1, "t", "x", "")).up(
            1,
            "device",
            ack(PacketType::PubAck, 9, 0),
        );
        assert!(checker().check(&k.history()).ok());
        k.up(2, "cloud", publish(Some(2), 2, "t", "y", "")).down(
            2,
            "cloud",
            ack(PacketType::PubRec, 2, 0),
        );
        k.up(2, "cloud", ack(PacketType::PubRel, 2, 0)).down(
            2,
            "cloud",
            ack(PacketType::PubComp, 2, 0),
        );
        k.down(1, "device", publish(Some(10), 2, "t", "y", "")).up(
            1,
            "device",
            ack(PacketType::PubRec, 10, 0),
        );
        assert_violates(&checker().check(&k.history()), "MQTT-3.8.4-8");
    }

    #[test]
    fn a_repeated_qos2_publish_is_forwarded_once() {
        let run = |twice: bool| {
            let mut k = Kit::new();
            up(&mut k);
            k.up(1, "device", subscribe(1, "t", 2, 0, ""))
                .down(1, "device", suback(1, &[2]));
            k.session(
                2,
                "cloud",
                connect("cloud", false, 60, "session_expiry = 60"),
                connack(false, 0, ""),
            );
            k.up(2, "cloud", publish(Some(1), 2, "t", "m", ""));
            k.close(2, "cloud", crate::history::CloseReason::Severed);
            k.session(
                3,
                "cloud",
                connect("cloud", false, 60, "session_expiry = 60"),
                connack(true, 0, ""),
            );
            k.up(3, "cloud", dup(publish(Some(1), 2, "t", "m", "")))
                .down(3, "cloud", ack(PacketType::PubRec, 1, 0))
                .up(3, "cloud", ack(PacketType::PubRel, 1, 0))
                .down(3, "cloud", ack(PacketType::PubComp, 1, 0));
            k.down(1, "device", publish(Some(7), 2, "t", "m", ""));
            if twice {
                k.down(1, "device", publish(Some(8), 2, "t", "m", ""));
            }
            checker().check(&k.history())
        };
        assert!(!run(false).rules().contains(&"MQTT-4.3.3-10"));
        assert_violates(&run(true), "MQTT-4.3.3-10");
    }

    /// Two members of `$share/g/t`, a message to the first, and what
    /// becomes of it.
    fn members(first: impl Fn(&mut Kit), then_second: bool) -> Verdict {
        let mut k = Kit::new();
        for (conn, who) in [(1, "device"), (2, "other")] {
            k.session(conn, who, connect(who, true, 60, ""), connack(false, 0, ""));
            k.up(conn, who, subscribe(1, "$share/g/t", 2, 0, ""))
                .down(conn, who, suback(1, &[2]));
        }
        k.session(
            3,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(3, "cloud", publish(Some(1), 2, "t", "m", ""));
        k.down(1, "device", publish(Some(4), 2, "t", "m", ""));
        first(&mut k);
        if then_second {
            k.down(2, "other", publish(Some(1), 2, "t", "m", ""));
        }
        checker().check(&k.history())
    }

    #[test]
    fn a_shared_message_is_not_passed_on_after_a_refusal_or_a_lost_session() {
        let refuse = |k: &mut Kit| {
            k.up(1, "device", ack(PacketType::PubRec, 4, 0x80));
        };
        let v = members(refuse, false);
        assert!(v.ok(), "{v:?}");
        assert_violates(&members(refuse, true), "MQTT-4.8.2-6");
        let lose = |k: &mut Kit| {
            k.close(1, "device", crate::history::CloseReason::Severed);
        };
        let v = members(lose, false);
        assert!(v.ok(), "{v:?}");
        assert_violates(&members(lose, true), "MQTT-4.8.2-5");
    }

    /// A member of a shared subscription gets no more than its grant: at
    /// it is fine, above it breaks the shared-subscription statement too.
    #[test]
    fn a_shared_members_grant_is_respected() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "$share/g/t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.session(
            2,
            "cloud",
            connect("c", true, 60, ""),
            connack(false, 0, ""),
        );
        for (pid, payload) in [(1, "x"), (2, "y")] {
            k.up(2, "cloud", publish(Some(pid), 2, "t", payload, ""))
                .down(2, "cloud", ack(PacketType::PubRec, pid, 0));
            k.up(2, "cloud", ack(PacketType::PubRel, pid, 0)).down(
                2,
                "cloud",
                ack(PacketType::PubComp, pid, 0),
            );
        }
        k.down(1, "device", publish(Some(9), 1, "t", "x", "")).up(
            1,
            "device",
            ack(PacketType::PubAck, 9, 0),
        );
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");
        k.down(1, "device", publish(Some(10), 2, "t", "y", "")).up(
            1,
            "device",
            ack(PacketType::PubRec, 10, 0),
        );
        let v = checker().check(&k.history());
        assert_violates(&v, "MQTT-4.8.2-3");
        assert_violates(&v, "MQTT-3.8.4-8");
    }

    /// The device had PUBLISH 6 outstanding on connection 1; connection 2
    /// CONNECTs without getting a CONNACK; connection 3 resumes the
    /// session. `resend` says whether the broker resends it there.
    fn resumed_after_an_unanswered_connect(resend: bool) -> History {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.down(1, "device", publish(Some(6), 1, "t", "x", ""));
        k.close(1, "device", CloseReason::Severed);
        k.open(2, "device")
            .up(2, "device", connect("d", false, 60, "session_expiry = 60"))
            .wait(5)
            .close(2, "device", CloseReason::Severed);
        k.session(
            3,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(true, 0, ""),
        );
        if resend {
            k.down(3, "device", dup(publish(Some(6), 1, "t", "x", "")))
                .up(3, "device", ack(PacketType::PubAck, 6, 0));
        }
        k.wait(2000).step("end");
        k.history()
    }

    /// Decision 1: a connection without a CONNACK did not show the session
    /// discarded, so the resumed one after it owes the resend.
    #[test]
    fn only_a_connack_says_whether_the_session_is_resumed() {
        let v = judge_both(&checker(), &resumed_after_an_unanswered_connect(false));
        assert_eq!(v.rules(), vec!["MQTT-4.4.0-1"], "{v:?}");
        let v = judge_both(&checker(), &resumed_after_an_unanswered_connect(true));
        assert!(v.ok(), "{v:?}");
        // Session present 0: nothing is owed, and the id is free again.
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.down(1, "device", publish(Some(6), 1, "t", "x", ""));
        k.close(1, "device", CloseReason::Severed);
        k.session(
            2,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        );
        k.down(2, "device", publish(Some(6), 1, "t", "y", ""));
        k.wait(2000).step("end");
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        // Clean Start 1 discards the session [MQTT-3.1.2-4]: nothing is
        // owed again, whatever the CONNACK claims.
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.down(1, "device", publish(Some(6), 1, "t", "x", ""));
        k.close(1, "device", CloseReason::Severed);
        k.session(
            2,
            "device",
            connect("d", true, 60, "session_expiry = 60"),
            connack(true, 0, ""),
        );
        k.wait(2000).step("end");
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
    }

    /// The device subscribes `first`, gets the cloud's messages 1 and 2 in
    /// reverse order, then subscribes `then`.
    fn reordered(first: &str, then: &str) -> Verdict {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, first, 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
        k.session(
            2,
            "cloud",
            connect("c", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(2, "cloud", publish(None, 0, "t", "1", "")).up(
            2,
            "cloud",
            publish(None, 0, "t", "2", ""),
        );
        k.down(1, "device", publish(None, 0, "t", "2", "")).down(
            1,
            "device",
            publish(None, 0, "t", "1", ""),
        );
        k.up(1, "device", subscribe(2, then, 0, 0, ""))
            .down(1, "device", suback(2, &[0]));
        judge_both(&checker(), &k.history())
    }

    /// Decision 2: order is owed on a non-shared subscription the session
    /// had at the delivery, whatever it subscribes later.
    #[test]
    fn order_is_owed_by_the_subscriptions_at_the_delivery() {
        let v = reordered("$share/g/t", "t");
        assert!(v.ok(), "a shared-only member owes no order: {v:?}");
        let v = reordered("t", "$share/g/t");
        assert_eq!(v.rules(), vec!["MQTT-4.6.0-5", "MQTT-4.6.0-6"]);
    }

    /// Two members of `$share/g/t`; the device accepts message `a` and
    /// then refuses message `b`, both sent to it with packet id 4; the
    /// other member then gets `then`.
    fn refused_after_reuse(then: &str) -> Verdict {
        let mut k = Kit::new();
        for (conn, who) in [(1, "device"), (2, "other")] {
            k.session(conn, who, connect(who, true, 60, ""), connack(false, 0, ""));
            k.up(conn, who, subscribe(1, "$share/g/t", 1, 0, ""))
                .down(conn, who, suback(1, &[1]));
        }
        k.session(
            3,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        for (pid, payload, code) in [(1, "a", 0), (2, "b", 0x80)] {
            k.up(3, "cloud", publish(Some(pid), 1, "t", payload, ""))
                .down(3, "cloud", ack(PacketType::PubAck, pid, 0));
            k.down(1, "device", publish(Some(4), 1, "t", payload, ""))
                .up(1, "device", ack(PacketType::PubAck, 4, code));
        }
        k.down(2, "other", publish(Some(1), 1, "t", then, ""));
        judge_both(&checker(), &k.history())
    }

    /// Decision 3: a refusal bars the message it answered, not an earlier
    /// one that the member accepted under the same packet id.
    #[test]
    fn a_refusal_answers_the_publish_in_flight_with_its_id() {
        let v = refused_after_reuse("a");
        assert!(v.ok(), "message a was accepted, not refused: {v:?}");
        assert_eq!(refused_after_reuse("b").rules(), vec!["MQTT-4.8.2-6"]);
    }

    /// The cloud publishes `m` at QoS 2 (packet id 1), after `before` (a
    /// completed message with the same topic and payload the device got
    /// or is still owed, or none), to the
    /// device subscribed to `t` (`twice`: subscribed to it twice); `script`
    /// adds its repeats, the PUBREL and the device's copies.
    fn repeated(before: Earlier, twice: bool, script: impl Fn(&mut Kit)) -> Verdict {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 2, 0, ""))
            .down(1, "device", suback(1, &[2]));
        if twice {
            // The same filter again replaces the subscription
            // [MQTT-3.8.4-3]: still one.
            k.up(1, "device", subscribe(2, "t", 2, 0, ""))
                .down(1, "device", suback(2, &[2]));
        }
        k.session(
            2,
            "cloud",
            connect("cloud", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        );
        if before != Earlier::None {
            k.up(2, "cloud", publish(Some(9), 2, "t", "m", ""))
                .down(2, "cloud", ack(PacketType::PubRec, 9, 0))
                .up(2, "cloud", ack(PacketType::PubRel, 9, 0))
                .down(2, "cloud", ack(PacketType::PubComp, 9, 0));
        }
        if before == Earlier::Delivered {
            copy(&mut k, 6);
        }
        k.up(2, "cloud", publish(Some(1), 2, "t", "m", "")).down(
            2,
            "cloud",
            ack(PacketType::PubRec, 1, 0),
        );
        script(&mut k);
        judge_both(&checker(), &k.history())
    }

    /// An earlier message `m` (QoS 2, completed) before the one repeated.
    #[derive(PartialEq, Clone, Copy)]
    enum Earlier {
        None,
        /// The device got it before.
        Delivered,
        /// Still owed to the device.
        Owed,
    }

    fn repeat(k: &mut Kit) {
        k.up(2, "cloud", dup(publish(Some(1), 2, "t", "m", "")))
            .down(2, "cloud", ack(PacketType::PubRec, 1, 0));
    }

    fn release(k: &mut Kit) {
        k.up(2, "cloud", ack(PacketType::PubRel, 1, 0)).down(
            2,
            "cloud",
            ack(PacketType::PubComp, 1, 0),
        );
    }

    fn copy(k: &mut Kit, pid: u16) {
        k.down(1, "device", publish(Some(pid), 2, "t", "m", ""));
    }

    /// Decision 4: [MQTT-4.3.3-10] is judged as the repeat comes.
    #[test]
    fn a_qos2_repeat_is_judged_when_it_comes() {
        let rule = "MQTT-4.3.3-10";
        let broken = |k: &mut Kit| {
            copy(k, 7);
            repeat(k);
            copy(k, 8);
        };
        // A copy after the repeat to a subscriber that had it: broken,
        // though a message with the same content came earlier, and though
        // the subscriber subscribed to the topic twice.
        for (before, twice) in [(Earlier::Delivered, false), (Earlier::None, true)] {
            let v = repeated(before, twice, broken);
            assert_eq!(v.rules(), vec![rule], "{v:?}");
        }
        // Two copies before any repeat are not the repeat's doing.
        let v = repeated(Earlier::None, false, |k| {
            copy(k, 7);
            copy(k, 8);
            repeat(k);
            release(k);
        });
        assert!(!v.rules().contains(&rule), "{v:?}");
        // After the PUBREL a PUBLISH with the id is a new publication
        // [MQTT-4.3.3-12], DUP or not.
        let v = repeated(Earlier::None, false, |k| {
            copy(k, 7);
            release(k);
            k.up(2, "cloud", dup(publish(Some(1), 2, "t", "m", "")))
                .down(2, "cloud", ack(PacketType::PubRec, 1, 0));
            copy(k, 8);
        });
        assert!(!v.rules().contains(&rule), "{v:?}");
    }

    /// Decision 4 under decision 8: the repeat's copy is a spare, paired
    /// only when no publication of its content is owed.
    #[test]
    fn a_qos2_repeats_copy_is_paired_last() {
        let rule = "MQTT-4.3.3-10";
        let later = |k: &mut Kit| {
            copy(k, 7);
            repeat(k);
            release(k);
            k.up(2, "cloud", publish(Some(2), 2, "t", "m", "")).down(
                2,
                "cloud",
                ack(PacketType::PubRec, 2, 0),
            );
            copy(k, 8);
        };
        // The copy after the repeat is the later message, owed and not
        // yet delivered: not the repeat forwarded.
        let v = repeated(Earlier::None, false, later);
        assert!(!v.rules().contains(&rule), "{v:?}");
        // A third copy of two messages: the repeat forwarded.
        let v = repeated(Earlier::None, false, |k| {
            later(k);
            copy(k, 9);
        });
        assert_eq!(v.rules(), vec![rule], "{v:?}");
        // An earlier `m` still owed is what the first copy delivers (the
        // broker keeps its publisher's order): the second copy is the
        // repeated message's first.
        let v = repeated(Earlier::Owed, false, |k| {
            copy(k, 7);
            repeat(k);
            copy(k, 8);
        });
        assert!(!v.rules().contains(&rule), "{v:?}");
    }

    /// The device, subscribed to `t`, is owed the cloud's `a` and `b` at
    /// QoS 1, unsubscribes, and the cloud publishes `a` again (owed to
    /// nobody); then the broker sends the buffered messages in
    /// `order`.
    fn buffered_then_republished(order: [&str; 2]) -> Verdict {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.session(
            2,
            "cloud",
            connect("c", true, 60, ""),
            connack(false, 0, ""),
        );
        for (pid, payload) in [(1, "a"), (2, "b")] {
            k.up(2, "cloud", publish(Some(pid), 1, "t", payload, ""))
                .down(2, "cloud", ack(PacketType::PubAck, pid, 0));
        }
        k.up(
            1,
            "device",
            Packet::Unsubscribe(crate::mqtt::Unsubscribe {
                pid: 2,
                filters: vec!["t".into()],
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
        k.up(2, "cloud", publish(Some(3), 1, "t", "a", "")).down(
            2,
            "cloud",
            ack(PacketType::PubAck, 3, 0),
        );
        for (pid, payload) in [(7, order[0]), (8, order[1])] {
            k.down(1, "device", publish(Some(pid), 1, "t", payload, ""))
                .up(1, "device", ack(PacketType::PubAck, pid, 0));
        }
        judge_both(&checker(), &k.history())
    }

    /// Decision 5: a delivery is paired with what the broker owed its own
    /// session, not with the latest message of that content anywhere.
    #[test]
    fn a_delivery_is_paired_with_what_its_session_was_owed() {
        // The `a` after the UNSUBSCRIBE is nobody's: the buffered `a`
        // and `b` come in the order they were published.
        let v = buffered_then_republished(["a", "b"]);
        assert!(v.ok(), "{v:?}");
        let v = buffered_then_republished(["b", "a"]);
        assert_eq!(v.rules(), vec!["MQTT-4.6.0-5", "MQTT-4.6.0-6"], "{v:?}");
    }

    /// The device, subscribed to `t`, is sent the cloud's `a` and `b` (QoS
    /// 1) as `sends` lists them, each acknowledged.
    fn sent_as(sends: &[&str]) -> Verdict {
        published_sent(1, &["a", "b"], sends)
    }

    /// The device, subscribed to `t` (granted 1), is sent at QoS `qos` what
    /// the cloud published on `t` at QoS `qos` (`published`, in a burst,
    /// before any delivery) as `sends` lists it, each acknowledged.
    fn published_sent(qos: u8, published: &[&str], sends: &[&str]) -> Verdict {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.session(
            2,
            "cloud",
            connect("c", true, 60, ""),
            connack(false, 0, ""),
        );
        let pid = |i: u16| (qos > 0).then_some(i);
        for (i, payload) in (1..).zip(published) {
            k.up(2, "cloud", publish(pid(i), qos, "t", payload, ""));
        }
        if qos > 0 {
            for (i, _) in (1..).zip(published) {
                k.down(2, "cloud", ack(PacketType::PubAck, i, 0));
            }
        }
        for (i, payload) in (7..).zip(sends) {
            k.down(1, "device", publish(pid(i), qos, "t", payload, ""));
            if qos > 0 {
                k.up(1, "device", ack(PacketType::PubAck, i, 0));
            }
        }
        judge_both(&checker(), &k.history())
    }

    /// Decision 8: a delivery is paired with the oldest owed publication
    /// of its content, so the same payload published twice in a burst is
    /// not taken out of order.
    #[test]
    fn the_oldest_owed_copy_is_delivered_first() {
        let order = vec!["MQTT-4.6.0-5", "MQTT-4.6.0-6"];
        let v = published_sent(1, &["on", "off", "on"], &["on", "off", "on"]);
        assert!(v.ok(), "{v:?}");
        // The first `on` came after `off`: out of order, whichever `on`
        // each delivery is taken for.
        let v = published_sent(1, &["on", "off", "on"], &["off", "on", "on"]);
        assert_eq!(v.rules(), order, "{v:?}");
        let v = published_sent(1, &["on", "off", "on"], &["on", "on", "off"]);
        assert_eq!(v.rules(), order, "{v:?}");
        // A broker may drop a QoS 0 message [MQTT-4.3.1]: the first `on`
        // never came, the second came after `off`, in order.
        let v = published_sent(0, &["on", "off", "on"], &["off", "on"]);
        assert!(v.ok(), "{v:?}");
        // Dropped or not, an `on` after both `off`s is out of order once
        // an `off` followed the last `on`.
        let v = published_sent(0, &["on", "off", "on", "off"], &["off", "on", "off", "on"]);
        assert_eq!(v.rules(), order, "{v:?}");
    }

    /// Decision 6: a first send takes the copy it delivers; another first
    /// send of a message already taken is a duplicate (`exactly_once`
    /// judges copies), not a message out of order.
    #[test]
    fn a_first_send_takes_its_copy() {
        let v = sent_as(&["a", "b", "a"]);
        assert!(v.ok(), "{v:?}");
        let v = sent_as(&["b", "a"]);
        assert_eq!(v.rules(), vec!["MQTT-4.6.0-5", "MQTT-4.6.0-6"], "{v:?}");
    }

    /// The cloud retains `m` on `t` at QoS `retained_qos`, then publishes
    /// `m` again at QoS 0 without RETAIN (to nobody); the device then
    /// subscribes to `t` (granted 2) and gets the retained `m` at QoS 2.
    fn retained_at(retained_qos: u8) -> Verdict {
        let mut k = Kit::new();
        up(&mut k);
        k.session(
            2,
            "cloud",
            connect("c", true, 60, ""),
            connack(false, 0, ""),
        );
        let pid = (retained_qos > 0).then_some(1);
        k.up(
            2,
            "cloud",
            retained(publish(pid, retained_qos, "t", "m", "")),
        );
        match retained_qos {
            1 => {
                k.down(2, "cloud", ack(PacketType::PubAck, 1, 0));
            }
            2 => {
                k.down(2, "cloud", ack(PacketType::PubRec, 1, 0))
                    .up(2, "cloud", ack(PacketType::PubRel, 1, 0))
                    .down(2, "cloud", ack(PacketType::PubComp, 1, 0));
            }
            _ => {}
        }
        k.up(2, "cloud", publish(None, 0, "t", "m", ""));
        k.up(1, "device", subscribe(1, "t", 2, 0, ""))
            .down(1, "device", suback(1, &[2]))
            .down(1, "device", retained(publish(Some(5), 2, "t", "m", "")))
            .up(1, "device", ack(PacketType::PubRec, 5, 0))
            .down(1, "device", ack(PacketType::PubRel, 5, 0))
            .up(1, "device", ack(PacketType::PubComp, 5, 0));
        judge_both(&checker(), &k.history())
    }

    /// Decision 7: a retained message sent for a subscription is paired
    /// with the topic's retained message, not with a later PUBLISH of the
    /// same content that was not retained.
    #[test]
    fn a_retained_delivery_is_paired_with_the_retained_message() {
        let v = retained_at(2);
        assert!(v.ok(), "{v:?}");
        let v = retained_at(0);
        assert_eq!(v.rules(), vec!["MQTT-3.8.4-8"], "{v:?}");
    }
}
