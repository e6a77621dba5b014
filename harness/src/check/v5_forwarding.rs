//! `v5_forwarding`: what a 5.0 broker must do to a message between its
//! publisher and each subscriber (statement ids are MQTT 5.0's).
//!
//! Every PUBLISH the broker sent to a 5.0 subscriber is paired with the
//! message it forwards (see "What is read from where" below). Then:
//! - Payload Format Indicator, Response Topic, Correlation Data and Content
//!   Type arrive unaltered [MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16],
//!   [MQTT-3.3.2-20]; user properties all arrive [MQTT-3.3.2-17], in their
//!   order [MQTT-3.3.2-18] (the same pairs reordered breaks only the latter);
//! - a message with a Message Expiry Interval E arrives with E less the
//!   whole seconds it waited, give or take one [MQTT-3.3.2-6], and is never
//!   first sent to a session after E (+ `slack`) has passed [MQTT-3.3.2-5];
//!   a retransmission of a delivery already started is allowed;
//! - the subscription identifiers of the subscriber's matching
//!   subscriptions all arrive, over the copies it got, and no others
//!   [MQTT-3.3.4-3] — all on a single copy [MQTT-3.3.4-4], each on its own
//!   when there are several [MQTT-3.3.4-5];
//! - a message is not sent back to the client id that published it when
//!   every matching subscription of that session has No Local [MQTT-3.8.3-3];
//! - a live forward (published after the SUBACK) keeps the publisher's
//!   RETAIN flag when every matching subscription has Retain As Published
//!   [MQTT-3.3.1-13], and has it cleared when none has [MQTT-3.3.1-12];
//! - and a client never puts a Subscription Identifier on its own PUBLISH
//!   [MQTT-3.3.4-6], nor a wildcard in its Response Topic [MQTT-3.3.2-14]
//!   (judged for the actors in `clients`).
//!
//! What is read from where:
//! - a delivery is paired in its own session's table of what the broker
//!   owes it ([`super::owed`]): the PUBLISHes a 5.0 client sent with the
//!   same topic (aliases resolved) and payload that reached the broker
//!   while a filter of that session matched them (one copy per matching
//!   filter, No Local ones included, so that a copy sent back anyway is
//!   caught), not yet taken by a first send — the oldest whose forwarded
//!   properties the delivery carries, else the oldest (decision 3);
//! - a DUP resend is paired with what the first send of its packet id in
//!   that session was paired with, until the client acknowledged it;
//! - a delivery with RETAIN set that is not owed is paired with the
//!   topic's retained message if it has that payload (sent for a
//!   subscription, [MQTT-3.3.1-9]);
//! - a session's subscriptions at a delivery are the SUBSCRIBEs of its
//!   connections (client id and lineage as
//!   [`Index`](super::index::Index) makes them) that a SUBACK granted and
//!   no UNSUBSCRIBE of the actor removed since;
//! - a delivery that pairs with nothing (from a 3.1.1 publisher, a will, a
//!   message the session was not owed, a retained message older than the
//!   run) is left alone — but one that matches a 5.0 will keeps the will's
//!   user properties in order [MQTT-3.1.3-10].
//!
//! Decided anew when the table of the latest PUBLISH of every topic and
//! payload gave way to what each session is owed, where the old pairing
//! judged a delivery against a message that could not be the one
//! delivered (each with a test: a history the old pairing judged
//! differently, and a tricky legal one):
//! 1. *A delivery is paired with what its own session was owed.* A
//!    message is owed to a session whose filters matched it when it
//!    reached the broker and that the broker keeps (not one whose last
//!    connection ended it, nor one its actor replaced by a new session).
//!    A copy still owed after the subscriber unsubscribed is judged
//!    against that message; a delivery of content the session was never
//!    owed (subscribed later, unsubscribed before) is paired with nothing,
//!    and these rules say nothing of it — that it came at all is
//!    `v5_packets`' [MQTT-3.3.2-3]. The old pairing took a later PUBLISH
//!    of the same content that the session was not owed and reported a
//!    queued message delivered unaltered as altered.
//! 2. *A first send takes the copy it delivers* (one per matching filter
//!    [MQTT-3.3.4-2]); a DUP resend is paired with what the first send of
//!    its packet id in that session carried, until the client
//!    acknowledged it. A first send beyond the copies owed is a duplicate
//!    (`exactly_once` judges copies), paired with nothing. The old pairing
//!    judged a resend against whichever PUBLISH of that content came last,
//!    so a message published again while the first copy was in flight
//!    made its legal resend "altered".
//! 3. *The same content owed twice is delivered oldest first*
//!    [MQTT-4.6.0-6]: a delivery is paired with the oldest owed
//!    publication of its content whose forwarded properties it carries (an
//!    older one may have been dropped legally: QoS 0, expiry), else with
//!    the oldest, which its alterations are then reported against. The
//!    old pairing took the latest, so of `x` published twice with
//!    different user properties and delivered in order, the first copy
//!    was "altered". A QoS 2 repeat (DUP, same packet id, before the
//!    PUBREL) is owed again only as a spare, paired when no publication of
//!    its content is owed ([`owed::Messages::owe_again`]).
//! 4. *A retained message sent for a subscription* (RETAIN set, not owed
//!    to the session) is paired with the topic's retained message as the
//!    broker's store holds it, not with a later PUBLISH of the same
//!    content without RETAIN (the old pairing reported the retained copy's
//!    properties as altered).
//!
//! One state machine judges: [`ForwardingChecker::check`] feeds a
//! history's events to a fresh one ([`super::judge_whole`]) and `observe`
//! feeds it as events come ([`Checker::incremental`]). What it holds, and
//! what bounds it: per connection who it is, its first CONNECT and
//! CONNACK, its lineage, its topic aliases (cleared when it closes) and
//! its will if a 5.0 one; the subscriptions of live sessions (those of a
//! session replaced by a new one of its actor go once no connection of it
//! is open); per live session the messages the broker owes it (taken by
//! first sends, dropped when the session ends unkept or is replaced, at
//! most [`PER_SESSION`](super::owed::PER_SESSION)) and the packet ids in
//! flight to it (until acknowledged); per topic the retained message; the
//! open QoS 2 packet ids per client id; each message one of those tables
//! still holds, with the sessions and connections that got copies of it
//! (gone with the last table that holds it, save the copies whose
//! subscription identifiers broke the rules, which are the verdict). None
//! of it grows with the number of messages, only with what the broker
//! itself must hold.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;

use super::index::{prop_u32, seen, sent};
use super::owed::{self, content_key};
use super::v5_limits::judged;
use super::{Checker, Incremental, Verdict, Violation};
use crate::history::{ConnId, Dir, Event, EventKind, Fate, History};
use crate::mqtt::props::{
    self, CONTENT_TYPE, CORRELATION_DATA, MESSAGE_EXPIRY, PAYLOAD_FORMAT, RESPONSE_TOPIC,
    SESSION_EXPIRY, SUBSCRIPTION_ID,
};
use crate::mqtt::{topic, Packet, PropValue, Properties, Publish, QoS, Version};

/// Per subscriber connection and source message: the subscription ids
/// owed, those that came, the events, and how many first sends (not DUP
/// resends) there were.
type Copies = (BTreeSet<u32>, BTreeSet<u32>, Vec<u64>, usize);

pub struct ForwardingChecker {
    pub clients: Vec<String>,
    /// Added to a message expiry before a late delivery counts.
    pub slack: Duration,
}

impl Checker for ForwardingChecker {
    fn name(&self) -> &str {
        "v5_forwarding"
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(Forwarding::new(self)))
    }

    /// The whole history through the same state machine observe feeds.
    fn check(&self, history: &History) -> Verdict {
        super::judge_whole(Forwarding::new(self), history)
    }
}

/// A connection as the rules read it: who, its first CONNECT and
/// CONNACK, its session lineage (as [`Index`](super::index::Index) makes
/// them), the topic aliases set on it each way, and what decides whether
/// the broker keeps its session when it closes.
struct Conn {
    actor: String,
    /// Version, client id and clean start of the first CONNECT sent.
    connect: Option<(Version, String, bool)>,
    /// Code and session present of the first CONNACK sent.
    connack: Option<(u8, bool)>,
    lineage: usize,
    aliases: [HashMap<u32, String>; 2],
    /// The Session Expiry of its CONNECT, then of the client's first
    /// DISCONNECT that carried one.
    expiry: Option<u32>,
    disc_expiry: Option<u32>,
    /// Counted among its session's open connections (accepted, not closed).
    member: bool,
}

impl Conn {
    fn v5(&self) -> bool {
        matches!(self.connect, Some((Version::V5, _, _)))
    }
    fn client_id(&self) -> Option<&str> {
        self.connect.as_ref().map(|(_, id, _)| id.as_str())
    }
    fn accepted(&self) -> bool {
        matches!(self.connack, Some((0, _)))
    }
    /// Its session: client id and lineage.
    fn session(&self) -> SessKey {
        (
            self.client_id().unwrap_or_default().to_string(),
            self.lineage,
        )
    }
}

/// A session: client id and lineage (position of its first connection).
type SessKey = (String, usize);

/// A subscription that reached the broker and was not unsubscribed (nor
/// refused by its SUBACK).
struct Sub {
    ci: usize,
    actor: String,
    filter: String,
    options: u8,
    /// The Subscription Identifier of its SUBSCRIBE.
    id: Option<u32>,
    /// The SUBACK that granted it.
    acked: Option<u64>,
}

/// What the broker owes one session.
#[derive(Default)]
struct Session {
    /// The messages owed (ids into `srcs`).
    owed: owed::Messages<u64>,
    /// Packet id -> the message its first send carried, until the client
    /// acknowledged it: what a DUP resend is.
    inflight: HashMap<u16, u64>,
    /// Its connections that are accepted and open.
    members: usize,
    /// Its last connection closed and the broker did not keep it: owed
    /// nothing more.
    gone: bool,
}

/// A PUBLISH a 5.0 client sent, as long as a table holds it: what a
/// delivery of it is judged against, and the deliveries paired with it so
/// far (which sessions got a copy, which connections got copies).
struct Source {
    key: u128,
    seq: u64,
    at: Duration,
    properties: Properties,
    retain: bool,
    /// The publisher's connection (its client id is the owner).
    by: usize,
    /// How many tables hold it (owed tables, packet ids in flight, the
    /// retained store): it goes when none does.
    refs: u32,
    sessions: Vec<SessKey>,
    copied_to: Vec<usize>,
}

/// A 5.0 will: the connection's position, topic, payload, properties.
type WillOf = (usize, String, Bytes, Properties);

/// [`ForwardingChecker`] as a state machine fed one event at a time (what
/// it holds: the module doc).
struct Forwarding {
    clients: Vec<String>,
    slack: Duration,
    conns: Vec<Conn>,
    by_id: HashMap<ConnId, usize>,
    /// Per actor, its connections in order (for the lineages).
    of_actor: HashMap<String, Vec<usize>>,
    /// Per actor, the session of its last accepted connection.
    current: HashMap<String, SessKey>,
    subs: BTreeMap<u64, Sub>,
    next_sub: u64,
    /// SUBSCRIBEs awaiting their SUBACK: (connection, packet id) -> subs.
    pending: HashMap<(ConnId, u16), Vec<u64>>,
    wills: Vec<WillOf>,
    sessions: HashMap<SessKey, Session>,
    /// The messages some table holds, by id (the seq of their PUBLISH).
    srcs: HashMap<u64, Source>,
    /// Per topic, the retained message the broker holds (5.0 publishers'):
    /// content key, id.
    retained: HashMap<String, (u128, u64)>,
    /// QoS 2 messages before their PUBREL: (client id, packet id) ->
    /// content key, what a DUP repeat of one is told by.
    q2_open: HashMap<(String, u16), u128>,
    copies: HashMap<(usize, u64), Copies>,
    /// Copies whose subscription ids do not add up (so far).
    bad: BTreeSet<(usize, u64)>,
    /// The client-side rules' violations, then the deliveries', in order.
    client_found: Vec<Violation>,
    found: Vec<Violation>,
}

/// Whether a delivery carries the properties a broker forwards unaltered
/// as `sp` has them (what [`Forwarding::delivery`] prefers to pair with).
fn carried(sp: &Properties, dp: &Properties) -> bool {
    [
        PAYLOAD_FORMAT,
        RESPONSE_TOPIC,
        CORRELATION_DATA,
        CONTENT_TYPE,
    ]
    .into_iter()
    .all(|id| props::get(sp, id) == props::get(dp, id))
        && props::user(sp) == props::user(dp)
}

impl Forwarding {
    fn new(c: &ForwardingChecker) -> Forwarding {
        Forwarding {
            clients: c.clients.clone(),
            slack: c.slack,
            conns: Vec::new(),
            by_id: HashMap::new(),
            of_actor: HashMap::new(),
            current: HashMap::new(),
            subs: BTreeMap::new(),
            next_sub: 0,
            pending: HashMap::new(),
            wills: Vec::new(),
            sessions: HashMap::new(),
            srcs: HashMap::new(),
            retained: HashMap::new(),
            q2_open: HashMap::new(),
            copies: HashMap::new(),
            bad: BTreeSet::new(),
            client_found: Vec::new(),
            found: Vec::new(),
        }
    }

    fn conn(&mut self, id: ConnId, actor: &str) -> usize {
        if let Some(&ci) = self.by_id.get(&id) {
            return ci;
        }
        let ci = self.conns.len();
        self.conns.push(Conn {
            actor: actor.to_string(),
            connect: None,
            connack: None,
            lineage: ci,
            aliases: [HashMap::new(), HashMap::new()],
            expiry: None,
            disc_expiry: None,
            member: false,
        });
        self.by_id.insert(id, ci);
        self.of_actor.entry(actor.to_string()).or_default().push(ci);
        ci
    }

    /// The lineages of `ci`'s actor from `ci` on, as
    /// [`Index`](super::index::Index) makes them at the end of the log: a
    /// connection resumes the session of the last accepted one before it
    /// when it asked to and the CONNACK says the session was present.
    fn relink(&mut self, ci: usize) {
        let actor = self.conns[ci].actor.clone();
        let list = &self.of_actor[&actor];
        let at = list.iter().position(|&i| i == ci).unwrap_or(0);
        let mut prev = list[..at]
            .iter()
            .rev()
            .copied()
            .find(|&i| self.conns[i].connect.is_some() && self.conns[i].accepted());
        for &i in &list[at..] {
            let c = &self.conns[i];
            if c.connect.is_none() {
                self.conns[i].lineage = i;
                continue;
            }
            let clean = c.connect.as_ref().is_none_or(|(_, _, clean)| *clean);
            let resumed = !clean && matches!(c.connack, Some((0, true))) && prev.is_some();
            let lineage = match (resumed, prev) {
                (true, Some(p)) => self.conns[p].lineage,
                _ => i,
            };
            self.conns[i].lineage = lineage;
            if self.conns[i].accepted() {
                prev = Some(i);
            }
        }
    }

    fn hold(&mut self, id: u64) {
        if let Some(s) = self.srcs.get_mut(&id) {
            s.refs += 1;
        }
    }

    /// A table let go of message `id`: once none holds it, it can no
    /// longer be paired, and what was kept of its copies goes with it
    /// (unless the copies broke the subscription id rules).
    fn release(&mut self, id: u64) {
        let Some(s) = self.srcs.get_mut(&id) else {
            return;
        };
        s.refs = s.refs.saturating_sub(1);
        if s.refs > 0 {
            return;
        }
        if let Some(s) = self.srcs.remove(&id) {
            for di in s.copied_to {
                if !self.bad.contains(&(di, id)) {
                    self.copies.remove(&(di, id));
                }
            }
        }
    }

    /// A session's owed messages and packet ids in flight go.
    fn forget(&mut self, sk: &SessKey) {
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        let mut ids: Vec<u64> = s.owed.drain().collect();
        ids.extend(s.inflight.drain().map(|(_, id)| id));
        for id in ids {
            self.release(id);
        }
    }

    /// A session no connection holds any more and that its actor replaced:
    /// nothing can be delivered in it, its subscriptions go too.
    fn drop_session(&mut self, sk: &SessKey) {
        self.forget(sk);
        self.sessions.remove(sk);
        let conns = &self.conns;
        self.subs.retain(|_, s| conns[s.ci].session() != *sk);
    }

    /// The first CONNACK sent on `ci` (after its relink): the session it
    /// joins, and the actor's earlier one replaced.
    fn joined(&mut self, ci: usize) {
        let c = &self.conns[ci];
        if !c.accepted() || c.connect.is_none() {
            return;
        }
        let sk = c.session();
        let actor = c.actor.clone();
        self.conns[ci].member = true;
        let s = self.sessions.entry(sk.clone()).or_default();
        s.members += 1;
        s.gone = false;
        if let Some(old) = self.current.insert(actor, sk.clone()) {
            if old != sk && self.sessions.get(&old).is_none_or(|s| s.members == 0) {
                self.drop_session(&old);
            }
        }
    }

    /// `ci` closed: its session ends with it when it was the last open
    /// connection and the broker does not keep it (a 5.0 Session Expiry of
    /// 0, a 3.1.1 clean session).
    fn closed(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        c.aliases = [HashMap::new(), HashMap::new()];
        if !std::mem::take(&mut c.member) {
            return;
        }
        let kept = match &c.connect {
            Some((Version::V5, ..)) => c.disc_expiry.or(c.expiry).unwrap_or(0) > 0,
            Some((_, _, clean)) => !clean,
            None => false,
        };
        let sk = c.session();
        let current = self.current.get(&c.actor) == Some(&sk);
        let Some(s) = self.sessions.get_mut(&sk) else {
            return;
        };
        s.members = s.members.saturating_sub(1);
        if s.members > 0 {
            return;
        }
        if !current {
            self.drop_session(&sk);
        } else if !kept {
            // Nothing is owed to a session that ended [MQTT-3.1.2-4].
            self.forget(&sk);
            if let Some(s) = self.sessions.get_mut(&sk) {
                s.gone = true;
            }
        }
    }

    fn publish(&mut self, ci: usize, ev: &Event, actor: &str, dir: Dir, fate: Fate, p: &Publish) {
        let (seq, at) = (ev.seq, ev.at);
        let mut p = p.clone();
        let up = dir == Dir::ToBroker;
        if let Some(alias) = prop_u32(&p.properties, 0x23) {
            let map = &mut self.conns[ci].aliases[up as usize];
            if p.topic.is_empty() {
                if let Some(t) = map.get(&alias) {
                    p.topic = t.clone();
                }
            } else {
                map.insert(alias, p.topic.clone());
            }
        }
        if !self.conns[ci].v5() {
            if up && seen(fate) && p.retain {
                // Another client's message replaced the topic's retained one.
                if let Some((_, old)) = self.retained.remove(&p.topic) {
                    self.release(old);
                }
            }
            return;
        }
        if up {
            if sent(fate) {
                self.client_rules(seq, actor, &p);
            }
            if seen(fate) {
                self.arrived(ci, seq, at, &p);
            }
        } else if sent(fate) {
            self.delivery(ci, seq, at, actor, &p);
        }
    }

    /// A 5.0 client's PUBLISH reached the broker: owed to every session
    /// whose filters match it, one copy per matching filter
    /// [MQTT-3.3.4-2], and kept as its topic's retained message if it says
    /// so. A QoS 2 repeat (DUP, with the packet id of an open QoS 2 message
    /// of the same content from the same client id) is owed again as a
    /// spare ([`owed::Messages::owe_again`]): the broker must not forward it
    /// [MQTT-4.3.3-10], a copy it forwards anyway is still paired.
    fn arrived(&mut self, ci: usize, seq: u64, at: Duration, p: &Publish) {
        let key = content_key(&p.topic, &p.payload);
        let cid = self.conns[ci].client_id().unwrap_or_default().to_string();
        let mut repeat = false;
        if let (QoS::ExactlyOnce, Some(pid)) = (p.qos, p.pid) {
            let open = self.q2_open.insert((cid, pid), key);
            repeat = p.dup && open == Some(key);
        }
        self.srcs.insert(
            seq,
            Source {
                key,
                seq,
                at,
                properties: p.properties.clone(),
                retain: p.retain,
                by: ci,
                refs: 1,
                sessions: Vec::new(),
                copied_to: Vec::new(),
            },
        );
        // Per session, its distinct matching filters that no SUBACK refused.
        let mut owing: HashMap<SessKey, BTreeSet<&str>> = HashMap::new();
        for s in self.subs.values() {
            let sc = &self.conns[s.ci];
            if sc.v5() && topic::matches(&s.filter, &p.topic) {
                owing.entry(sc.session()).or_default().insert(&s.filter);
            }
        }
        let owing: Vec<(SessKey, u32)> = owing
            .into_iter()
            .map(|(k, f)| (k, f.len() as u32))
            .collect();
        let mut gone = Vec::new();
        for (sk, copies) in owing {
            let s = self.sessions.entry(sk).or_default();
            if s.gone {
                continue;
            }
            gone.push(seq);
            gone.extend(if repeat {
                s.owed.owe_again(key, seq)
            } else {
                s.owed.owe(key, copies, seq)
            });
        }
        // Each session that owes it holds it (counted as `seq` above);
        // what the caps pushed out is let go.
        for id in gone {
            if id == seq {
                self.hold(seq);
            } else {
                self.release(id);
            }
        }
        if p.retain {
            let before = if p.payload.is_empty() {
                self.retained.remove(&p.topic)
            } else {
                self.hold(seq);
                self.retained.insert(p.topic.clone(), (key, seq))
            };
            if let Some((_, old)) = before {
                self.release(old);
            }
        }
        // The reference taken when it was stored.
        self.release(seq);
    }

    /// A client never puts a Subscription Identifier on its PUBLISH, nor a
    /// wildcard in its Response Topic.
    fn client_rules(&mut self, seq: u64, actor: &str, p: &Publish) {
        if !judged(&self.clients, actor) {
            return;
        }
        if props::get(&p.properties, SUBSCRIPTION_ID).is_some() {
            self.client_found.push(Violation::new(
                "MQTT-3.3.4-6",
                format!(
                    "{actor} put a Subscription Identifier on its PUBLISH to {}",
                    p.topic
                ),
                vec![seq],
            ));
        }
        if let Some(PropValue::Str(r)) = props::get(&p.properties, RESPONSE_TOPIC) {
            if r.contains(['+', '#']) {
                self.client_found.push(Violation::new(
                    "MQTT-3.3.2-14",
                    format!(
                        "{actor} published on {} with Response Topic {r:?}, which has a wildcard",
                        p.topic
                    ),
                    vec![seq],
                ));
            }
        }
    }

    fn fail(&mut self, rule: &str, message: String, events: Vec<u64>) {
        self.found.push(Violation::new(rule, message, events));
    }

    /// The message a delivery to session `sk` forwards (see the module
    /// doc), and whether a first send took its last owed copy (the caller
    /// lets go of that reference once it judged the delivery).
    fn pair(&mut self, sk: &SessKey, key: u128, d: &Publish) -> (Option<u64>, Option<u64>) {
        let srcs = &self.srcs;
        let fits = |id: &u64| {
            srcs.get(id)
                .is_some_and(|s| carried(&s.properties, &d.properties))
        };
        let mut id = None;
        let mut taken = None;
        if let Some(s) = self.sessions.get_mut(sk) {
            if d.dup {
                id = d
                    .pid
                    .and_then(|pid| s.inflight.get(&pid))
                    .copied()
                    .filter(|i| srcs.get(i).is_some_and(|s| s.key == key));
            }
            if id.is_none() {
                if let Some((slot, &i)) = s.owed.pick(key, fits) {
                    id = Some(i);
                    if !d.dup {
                        taken = s.owed.take(key, slot);
                    }
                }
            }
        }
        let id = id.or_else(|| {
            self.retained
                .get(&d.topic)
                .filter(|(k, _)| *k == key && d.retain)
                .map(|(_, i)| *i)
        });
        // A first send with a packet id is in flight until acknowledged.
        if let (Some(i), Some(pid), false) = (id, d.pid, d.dup) {
            if d.qos != QoS::AtMostOnce {
                self.hold(i);
                let before = self
                    .sessions
                    .get_mut(sk)
                    .and_then(|s| s.inflight.insert(pid, i));
                if let Some(old) = before {
                    self.release(old);
                }
            }
        }
        (id, taken)
    }

    /// A PUBLISH the broker sent to a 5.0 subscriber, against the message
    /// it forwards.
    fn delivery(&mut self, di: usize, seq: u64, at: Duration, actor: &str, d: &Publish) {
        let key = content_key(&d.topic, &d.payload);
        let session = self.conns[di].session();
        let (id, taken) = self.pair(&session, key, d);
        let Some(id) = id else {
            self.will_user_order(seq, actor, d);
            return;
        };
        self.judge(di, id, seq, at, actor, d, session);
        if let Some(t) = taken {
            self.release(t);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn judge(
        &mut self,
        di: usize,
        id: u64,
        seq: u64,
        at: Duration,
        actor: &str,
        d: &Publish,
        session: SessKey,
    ) {
        let Some(src) = self.srcs.get_mut(&id) else {
            return;
        };
        let first_to_session = !src.sessions.contains(&session);
        if first_to_session {
            src.sessions.push(session);
        }
        let (src_seq, src_at, src_retain) = (src.seq, src.at, src.retain);
        let sp = src.properties.clone();
        let owner = self.conns[src.by].client_id().map(str::to_string);
        let dp = &d.properties;
        let who = format!("{actor} on {}", d.topic);
        for (pid, rule, what) in [
            (PAYLOAD_FORMAT, "MQTT-3.3.2-4", "Payload Format Indicator"),
            (RESPONSE_TOPIC, "MQTT-3.3.2-15", "Response Topic"),
            (CORRELATION_DATA, "MQTT-3.3.2-16", "Correlation Data"),
            (CONTENT_TYPE, "MQTT-3.3.2-20", "Content Type"),
        ] {
            if props::get(&sp, pid) != props::get(dp, pid) {
                self.fail(
                    rule,
                    format!(
                        "{what} altered for {who}: published {:?}, delivered {:?}",
                        props::get(&sp, pid),
                        props::get(dp, pid)
                    ),
                    vec![src_seq, seq],
                );
            }
        }
        let (su, du) = (props::user(&sp), props::user(dp));
        if su != du {
            let mut a = su.clone();
            let mut b = du.clone();
            a.sort();
            b.sort();
            let rule = if a == b {
                "MQTT-3.3.2-18"
            } else {
                "MQTT-3.3.2-17"
            };
            self.fail(
                rule,
                format!("user properties for {who}: published {su:?}, delivered {du:?}"),
                vec![src_seq, seq],
            );
        }
        let dconn = &self.conns[di];
        let dclient = dconn.client_id().map(str::to_string);
        let dlineage = dconn.lineage;
        if let Some(e) = props::num(&sp, MESSAGE_EXPIRY) {
            let waited = at.saturating_sub(src_at);
            if first_to_session && waited > Duration::from_secs(e as u64) + self.slack {
                self.fail(
                    "MQTT-3.3.2-5",
                    format!(
                        "{who}: sent {} after it was published with a Message Expiry Interval of {e}s",
                        super::fmt_d(waited)
                    ),
                    vec![src_seq, seq],
                );
            }
            match props::num(dp, MESSAGE_EXPIRY) {
                None => self.fail(
                    "MQTT-3.3.2-6",
                    format!("{who}: published with a Message Expiry Interval of {e}s, delivered without one"),
                    vec![src_seq, seq],
                ),
                Some(got) => {
                    let w = waited.as_secs();
                    let low = (e as u64).saturating_sub(w + 1);
                    let high = (e as u64).saturating_sub(w.saturating_sub(1));
                    if got as u64 > high || (got as u64) < low {
                        self.fail(
                            "MQTT-3.3.2-6",
                            format!(
                                "{who}: Message Expiry Interval {e}s, waited {}, delivered with {got}s (expected {low}..={high})",
                                super::fmt_d(waited)
                            ),
                            vec![src_seq, seq],
                        );
                    }
                }
            }
        }
        // The subscriber's matching subscriptions in this session.
        let subs: Vec<&Sub> = self
            .subs
            .values()
            .filter(|s| {
                let sc = &self.conns[s.ci];
                sc.client_id() == dclient.as_deref()
                    && sc.lineage == dlineage
                    && s.acked.is_some()
                    && topic::matches(&s.filter, &d.topic)
            })
            .collect();
        if subs.is_empty() {
            return;
        }
        let no_local = |s: &&Sub| {
            s.options & 0x04 != 0 && topic::parse_filter(&s.filter).share_group.is_none()
        };
        let mut out = Vec::new();
        if owner.as_deref() == dclient.as_deref() && subs.iter().all(no_local) {
            out.push(Violation::new(
                "MQTT-3.8.3-3",
                format!("{who}: its own message came back through a No Local subscription"),
                vec![src_seq, seq],
            ));
        }
        let live = subs.iter().all(|s| s.acked.is_some_and(|a| a < src_seq));
        if live {
            let rap = |s: &&Sub| s.options & 0x08 != 0;
            if subs.iter().all(rap) && d.retain != src_retain {
                out.push(Violation::new(
                    "MQTT-3.3.1-13",
                    format!("{who}: Retain As Published, but RETAIN was {} when published and {} when delivered", src_retain as u8, d.retain as u8),
                    vec![src_seq, seq],
                ));
            }
            if !subs.iter().any(rap) && d.retain {
                out.push(Violation::new(
                    "MQTT-3.3.1-12",
                    format!("{who}: a live forward with RETAIN set, and no matching subscription has Retain As Published"),
                    vec![src_seq, seq],
                ));
            }
        }
        let want: BTreeSet<u32> = subs.iter().filter_map(|s| s.id).collect();
        self.found.extend(out);
        let got: BTreeSet<u32> = props::all(dp, SUBSCRIPTION_ID)
            .filter_map(|x| match x {
                PropValue::VarInt(n) => Some(*n),
                _ => None,
            })
            .collect();
        let k = (di, id);
        let e = self.copies.entry(k).or_insert_with(|| {
            if let Some(s) = self.srcs.get_mut(&id) {
                s.copied_to.push(di);
            }
            Copies::default()
        });
        e.0.extend(want);
        e.1.extend(got);
        e.2.extend([src_seq, seq]);
        if !d.dup {
            e.3 += 1;
        }
        if e.0 != e.1 {
            self.bad.insert(k);
        } else {
            self.bad.remove(&k);
        }
    }

    /// A delivery no client PUBLISH explains, matching a 5.0 will (topic
    /// and payload) of a connection that was open before it: the will's
    /// user properties arrive in their order [MQTT-3.1.3-10] (judged when
    /// the same pairs arrived, so a different message with the same topic
    /// and payload is not mistaken for the will).
    fn will_user_order(&mut self, seq: u64, actor: &str, d: &Publish) {
        let Some((_, _, _, wp)) = self
            .wills
            .iter()
            .find(|(_, t, p, _)| *t == d.topic && *p == d.payload)
        else {
            return;
        };
        let (wu, du) = (props::user(wp), props::user(&d.properties));
        let (mut a, mut b) = (wu.clone(), du.clone());
        a.sort();
        b.sort();
        if wu != du && a == b {
            let v = Violation::new(
                "MQTT-3.1.3-10",
                format!(
                    "the will on {} reached {actor} with its user properties reordered: {wu:?} became {du:?}",
                    d.topic
                ),
                vec![seq],
            );
            self.found.push(v);
        }
    }
}

impl Incremental for Forwarding {
    fn feed(&mut self, ev: &Event) {
        match &ev.kind {
            EventKind::ConnOpened { conn, actor } => {
                self.conn(*conn, actor);
            }
            EventKind::ConnClosed { conn, actor, .. } => {
                let ci = self.conn(*conn, actor);
                self.closed(ci);
            }
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } => {
                let ci = self.conn(*conn, actor);
                let (fate, up) = (*fate, *dir == Dir::ToBroker);
                match packet {
                    Packet::Connect(c) if up && sent(fate) && self.conns[ci].connect.is_none() => {
                        self.conns[ci].connect =
                            Some((c.version, c.client_id.clone(), c.clean_start));
                        self.conns[ci].expiry = props::num(&c.properties, SESSION_EXPIRY);
                        if let (Version::V5, Some(w)) = (c.version, &c.will) {
                            // Kept in connection order: the first will that
                            // matches a delivery is the one judged.
                            let at = self.wills.partition_point(|(i, ..)| *i < ci);
                            self.wills.insert(
                                at,
                                (ci, w.topic.clone(), w.payload.clone(), w.properties.clone()),
                            );
                        }
                        if c.clean_start && seen(fate) {
                            // A new session: no QoS 2 message of it is open.
                            self.q2_open.retain(|(cid, _), _| *cid != c.client_id);
                        }
                        self.relink(ci);
                    }
                    Packet::ConnAck(a) if !up && sent(fate) && self.conns[ci].connack.is_none() => {
                        self.conns[ci].connack = Some((a.code, a.session_present));
                        self.relink(ci);
                        self.joined(ci);
                    }
                    Packet::Disconnect(d) if up && self.conns[ci].disc_expiry.is_none() => {
                        self.conns[ci].disc_expiry = props::num(&d.properties, SESSION_EXPIRY);
                    }
                    Packet::Publish(p) => {
                        self.publish(ci, ev, actor, *dir, fate, p);
                    }
                    Packet::PubAck(a) | Packet::PubRec(a) if up && seen(fate) => {
                        // Acknowledged: the broker resends it no more.
                        let sk = self.conns[ci].session();
                        let id = self
                            .sessions
                            .get_mut(&sk)
                            .and_then(|s| s.inflight.remove(&a.pid));
                        if let Some(id) = id {
                            self.release(id);
                        }
                    }
                    Packet::PubRel(a) if up && seen(fate) => {
                        if let Some(cid) = self.conns[ci].client_id() {
                            self.q2_open.remove(&(cid.to_string(), a.pid));
                        }
                    }
                    Packet::Subscribe(s) if up && seen(fate) => {
                        let id = props::num(&s.properties, SUBSCRIPTION_ID);
                        let mut ids = Vec::new();
                        for f in &s.filters {
                            self.next_sub += 1;
                            ids.push(self.next_sub);
                            self.subs.insert(
                                self.next_sub,
                                Sub {
                                    ci,
                                    actor: actor.clone(),
                                    filter: f.filter.clone(),
                                    options: f.options,
                                    id,
                                    acked: None,
                                },
                            );
                        }
                        self.pending.insert((*conn, s.pid), ids);
                    }
                    Packet::SubAck(sa) if !up && sent(fate) => {
                        if let Some(ids) = self.pending.remove(&(*conn, sa.pid)) {
                            for (k, id) in ids.into_iter().enumerate() {
                                match sa.codes.get(k) {
                                    Some(&code) if code < 0x80 => {
                                        if let Some(s) = self.subs.get_mut(&id) {
                                            s.acked = Some(ev.seq);
                                        }
                                    }
                                    // Refused: the broker holds no such
                                    // subscription.
                                    Some(_) => {
                                        self.subs.remove(&id);
                                    }
                                    None => {}
                                }
                            }
                        }
                    }
                    Packet::Unsubscribe(u) if up && seen(fate) => {
                        // Gone for every later delivery.
                        self.subs
                            .retain(|_, s| !(s.actor == *actor && u.filters.contains(&s.filter)));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("v5_forwarding");
        v.violations.extend(self.client_found.iter().cloned());
        v.violations.extend(self.found.iter().cloned());
        for k in &self.bad {
            let (want, got, evs, n) = &self.copies[k];
            // One copy owes them all [3.3.4-4]; several, each its own [3.3.4-5].
            let also = match n {
                0 => None,
                1 => Some("MQTT-3.3.4-4"),
                _ => Some("MQTT-3.3.4-5"),
            };
            for rule in std::iter::once("MQTT-3.3.4-3").chain(also) {
                v.fail(
                    rule,
                    format!(
                        "{} got subscription identifiers {got:?} over {n} copies, its matching subscriptions have {want:?}",
                        self.conns[k.0].actor
                    ),
                    evs.clone(),
                );
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::*;
    use super::*;

    fn checker() -> ForwardingChecker {
        ForwardingChecker {
            clients: vec!["device".into()],
            slack: Duration::from_millis(500),
        }
    }

    /// cloud subscribes to t (with `opts` and sub-id props), device publishes `pk`.
    fn base(opts: u8, sub_props: &str, pk: Packet) -> Kit {
        let mut k = Kit::new();
        k.session(
            1,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "cloud", subscribe(1, "t/#", 1, opts, sub_props))
            .down(1, "cloud", suback(1, &[1]));
        k.session(
            2,
            "device",
            connect("dev", true, 60, ""),
            connack(false, 0, ""),
        );
        k.wait(10).up(2, "device", pk);
        k
    }

    const PROPS: &str = "response_topic = \"r\"\ncorrelation_data = \"c\"\ncontent_type = \"text/plain\"\npayload_format = 1\nuser_properties = [[\"b\",\"2\"],[\"a\",\"1\"]]";

    #[test]
    fn unaltered_properties_pass_and_each_alteration_names_its_rule() {
        let mut k = base(0, "", publish(None, 0, "t/1", "x", PROPS));
        k.wait(5)
            .down(1, "cloud", publish(None, 0, "t/1", "x", PROPS));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        let case = |delivered: String| {
            let mut k = base(0, "", publish(None, 0, "t/1", "x", PROPS));
            k.wait(5)
                .down(1, "cloud", publish(None, 0, "t/1", "x", &delivered));
            judge_both(&checker(), &k.history())
        };
        let v = case(PROPS.replace("\"r\"", "\"q\""));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-15"]);
        let v = case(PROPS.replace("\"c\"", "\"d\""));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-16"]);
        let v = case(PROPS.replace("text/plain", "x/y"));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-20"]);
        let v = case(PROPS.replace("payload_format = 1", "payload_format = 0"));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-4"]);
        let v = case(PROPS.replace(
            "[[\"b\",\"2\"],[\"a\",\"1\"]]",
            "[[\"a\",\"1\"],[\"b\",\"2\"]]",
        ));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-18"], "the same pairs reordered");
        let v = case(PROPS.replace(",[\"a\",\"1\"]", ""));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-17"], "a pair lost");
    }

    #[test]
    fn message_expiry_is_decremented_and_never_delivered_late() {
        let mut k = base(0, "", publish(None, 0, "t/1", "x", "message_expiry = 10"));
        k.wait(3000).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "message_expiry = 7"),
        );
        assert!(judge_both(&checker(), &k.history()).ok());
        let mut k = base(0, "", publish(None, 0, "t/1", "x", "message_expiry = 10"));
        k.wait(3000).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "message_expiry = 10"),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.2-6"]
        );
        let mut k = base(0, "", publish(None, 0, "t/1", "x", "message_expiry = 1"));
        k.wait(3000).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "message_expiry = 1"),
        );
        assert_violates(&judge_both(&checker(), &k.history()), "MQTT-3.3.2-5");
    }

    #[test]
    fn a_resend_of_a_delivery_started_before_expiry_is_allowed() {
        let mut k = base(0, "", publish(Some(1), 1, "t/1", "x", "message_expiry = 1"));
        k.wait(100).down(
            1,
            "cloud",
            publish(Some(5), 1, "t/1", "x", "message_expiry = 1"),
        );
        k.wait(3000).down(
            1,
            "cloud",
            dup(publish(Some(5), 1, "t/1", "x", "message_expiry = 0")),
        );
        let v = judge_both(&checker(), &k.history());
        assert!(!v.rules().contains(&"MQTT-3.3.2-5"), "{v:?}");
    }

    #[test]
    fn subscription_identifiers_must_arrive() {
        let mut k = base(
            0,
            "subscription_identifier = 7",
            publish(None, 0, "t/1", "x", ""),
        );
        k.wait(5).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "subscription_identifier = 7"),
        );
        assert!(judge_both(&checker(), &k.history()).ok());
        let mut k = base(
            0,
            "subscription_identifier = 7",
            publish(None, 0, "t/1", "x", ""),
        );
        k.wait(5).down(1, "cloud", publish(None, 0, "t/1", "x", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.4-3", "MQTT-3.3.4-4"]
        );
    }

    #[test]
    fn a_wills_user_properties_keep_their_order() {
        let will = |delivered: &str| {
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
                connect_will(
                    "dev",
                    60,
                    "",
                    "w/dev",
                    "gone",
                    "user_properties = [[\"b\", \"2\"], [\"a\", \"1\"]]",
                ),
                connack(false, 0, ""),
            );
            k.close(2, "device", crate::history::CloseReason::Severed);
            k.wait(10)
                .down(1, "cloud", publish(Some(1), 1, "w/dev", "gone", delivered));
            judge_both(&checker(), &k.history())
        };
        let v = will("user_properties = [[\"b\", \"2\"], [\"a\", \"1\"]]");
        assert!(v.ok(), "{v:?}");
        assert_eq!(
            will("user_properties = [[\"a\", \"1\"], [\"b\", \"2\"]]").rules(),
            vec!["MQTT-3.1.3-10"]
        );
    }

    /// Two overlapping subscriptions with ids 7 and 8: one copy with both
    /// is fine, two copies with one each too; two copies where one lacks
    /// its id break the each-copy statement.
    #[test]
    fn overlapping_subscriptions_and_their_identifiers() {
        let two = |copies: &[&[u32]]| {
            let mut k = base(
                0,
                "subscription_identifier = 7",
                publish(None, 0, "t/1", "x", ""),
            );
            k.up(
                1,
                "cloud",
                subscribe(2, "t/+", 1, 0, "subscription_identifier = 8"),
            )
            .down(1, "cloud", suback(2, &[1]));
            k.wait(10).up(2, "device", publish(None, 0, "t/1", "y", ""));
            for ids in copies {
                let mut pk = publish(None, 0, "t/1", "y", "");
                if let Packet::Publish(x) = &mut pk {
                    for id in *ids {
                        x.properties.0.push(crate::mqtt::Property {
                            id: SUBSCRIPTION_ID,
                            value: PropValue::VarInt(*id),
                        });
                    }
                }
                k.wait(5).down(1, "cloud", pk);
            }
            judge_both(&checker(), &k.history())
        };
        let v = two(&[&[7, 8]]);
        assert!(v.ok(), "{v:?}");
        let v = two(&[&[7], &[8]]);
        assert!(v.ok(), "{v:?}");
        assert_eq!(
            two(&[&[7], &[]]).rules(),
            vec!["MQTT-3.3.4-3", "MQTT-3.3.4-5"]
        );
    }

    /// A message published again (same topic and payload) replaces the
    /// first as what later copies are paired with; a copy of the first
    /// that lacked its subscription id stays reported.
    #[test]
    fn a_republished_message_keeps_the_first_ones_missing_identifier() {
        let two = |first_id: bool| {
            let mut k = base(
                0,
                "subscription_identifier = 7",
                publish(None, 0, "t/1", "x", ""),
            );
            let ids = if first_id {
                "subscription_identifier = 7"
            } else {
                ""
            };
            k.wait(5)
                .down(1, "cloud", publish(None, 0, "t/1", "x", ids));
            k.wait(5).up(2, "device", publish(None, 0, "t/1", "x", ""));
            k.wait(5).down(
                1,
                "cloud",
                publish(None, 0, "t/1", "x", "subscription_identifier = 7"),
            );
            judge_both(&checker(), &k.history())
        };
        let v = two(true);
        assert!(v.ok(), "{v:?}");
        let v = two(false);
        assert_eq!(v.rules(), vec!["MQTT-3.3.4-3", "MQTT-3.3.4-4"]);
        assert_eq!(v.violations[0].events, vec![8, 9], "the first copy");
    }

    #[test]
    fn no_local_and_retain_as_published() {
        // The publisher subscribed with No Local and got its own message back.
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("dev", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "device", subscribe(1, "t/#", 0, 0x04, ""))
            .down(1, "device", suback(1, &[0]));
        k.up(1, "device", publish(None, 0, "t/1", "x", ""));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        k.down(1, "device", publish(None, 0, "t/1", "x", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.8.3-3"]
        );
        // Retain As Published 0: a live forward must clear RETAIN.
        let mut k = base(0, "", retained(publish(None, 0, "t/1", "x", "")));
        k.down(1, "cloud", retained(publish(None, 0, "t/1", "x", "")));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.1-12"]
        );
        let mut k = base(0x08, "", retained(publish(None, 0, "t/1", "x", "")));
        k.down(1, "cloud", publish(None, 0, "t/1", "x", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.1-13"]
        );
        let mut k = base(0x08, "", retained(publish(None, 0, "t/1", "x", "")));
        k.down(1, "cloud", retained(publish(None, 0, "t/1", "x", "")));
        assert!(judge_both(&checker(), &k.history()).ok());
    }

    #[test]
    fn a_client_subscription_identifier_on_publish_fails() {
        let k = base(
            0,
            "",
            publish(None, 0, "t/1", "x", "subscription_identifier = 3"),
        );
        assert_violates(&judge_both(&checker(), &k.history()), "MQTT-3.3.4-6");
    }

    #[test]
    fn a_response_topic_with_a_wildcard_fails() {
        // Levels are fine in a Response Topic, wildcards are not.
        let mut k = base(
            0,
            "",
            publish(None, 0, "t/1", "x", "response_topic = \"r/dev/1\""),
        );
        k.wait(5).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "response_topic = \"r/dev/1\""),
        );
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        let k = base(
            0,
            "",
            publish(None, 0, "t/1", "x", "response_topic = \"r/+/1\""),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.2-14"]
        );
    }

    const K1: &str = "user_properties = [[\"k\",\"1\"]]";
    const K2: &str = "user_properties = [[\"k\",\"2\"]]";
    const K3: &str = "user_properties = [[\"k\",\"3\"]]";

    fn unsubscribe(pid: u16, filter: &str) -> Packet {
        Packet::Unsubscribe(crate::mqtt::Unsubscribe {
            pid,
            filters: vec![filter.into()],
            properties: Properties::default(),
        })
    }

    /// Decision 1: `x` (k=1) was owed to the cloud when it unsubscribed;
    /// `x` (k=2) published after that was owed to nobody. The queued copy
    /// delivered unaltered is legal (the latest-publication pairing took
    /// k=2 for it and reported MQTT-3.3.2-17); altered, it is reported
    /// against the message it was owed.
    #[test]
    fn decision_1_a_queued_copy_is_judged_against_what_its_session_was_owed() {
        let run = |delivered: &str| {
            let mut k = base(0, "", publish(Some(1), 1, "t/1", "x", K1));
            k.up(1, "cloud", unsubscribe(2, "t/#"));
            k.wait(5)
                .up(2, "device", publish(Some(2), 1, "t/1", "x", K2));
            k.wait(5)
                .down(1, "cloud", publish(Some(9), 1, "t/1", "x", delivered));
            judge_both(&checker(), &k.history())
        };
        let v = run(K1);
        assert!(v.ok(), "{v:?}");
        let v = run(K3);
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-17"]);
        assert_eq!(v.violations[0].events, vec![8, 11], "the owed publication");
        // Never owed (subscribed after it was published): nothing to judge.
        let mut k = Kit::new();
        k.session(
            2,
            "device",
            connect("dev", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(2, "device", publish(None, 0, "t/1", "x", K1));
        k.session(
            1,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "cloud", subscribe(1, "t/#", 1, 0, ""))
            .down(1, "cloud", suback(1, &[1]));
        k.down(1, "cloud", publish(None, 0, "t/1", "x", K3));
        assert!(judge_both(&checker(), &k.history()).ok());
    }

    /// Decision 2: a DUP resend is the message its first send carried,
    /// though the same content was published again meanwhile (the
    /// latest-publication pairing reported the legal resend as altered).
    #[test]
    fn decision_2_a_resend_is_judged_against_its_first_send() {
        let run = |resent: &str| {
            let mut k = base(0, "", publish(Some(1), 1, "t/1", "x", K1));
            k.wait(5)
                .down(1, "cloud", publish(Some(5), 1, "t/1", "x", K1));
            k.wait(5)
                .up(2, "device", publish(Some(2), 1, "t/1", "x", K2));
            k.wait(5)
                .down(1, "cloud", dup(publish(Some(5), 1, "t/1", "x", resent)));
            k.up(1, "cloud", ack(crate::mqtt::PacketType::PubAck, 5, 0));
            k.wait(5)
                .down(1, "cloud", publish(Some(6), 1, "t/1", "x", K2));
            judge_both(&checker(), &k.history())
        };
        let v = run(K1);
        assert!(v.ok(), "{v:?}");
        assert_eq!(run(K2).rules(), vec!["MQTT-3.3.2-17"]);
    }

    /// Decision 3: `x` published twice in a burst with different user
    /// properties and delivered in order is legal (the latest-publication
    /// pairing took the second for the first copy); at QoS 0 the first may
    /// be dropped, and the one delivered is the second; a copy carrying
    /// neither is reported against the oldest.
    #[test]
    fn decision_3_the_same_content_owed_twice_is_delivered_oldest_first() {
        let run = |copies: &[&str]| {
            let mut k = base(0, "", publish(None, 0, "t/1", "x", K1));
            k.up(2, "device", publish(None, 0, "t/1", "x", K2));
            for c in copies {
                k.wait(5).down(1, "cloud", publish(None, 0, "t/1", "x", c));
            }
            judge_both(&checker(), &k.history())
        };
        let v = run(&[K1, K2]);
        assert!(v.ok(), "{v:?}");
        let v = run(&[K2]);
        assert!(v.ok(), "the first dropped: {v:?}");
        let v = run(&[K3]);
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-17"]);
        assert_eq!(v.violations[0].events, vec![8, 10], "the oldest");
    }

    /// Decision 4: the retained `x` sent for a new subscription is the
    /// retained message (content type a), not the later `x` published
    /// without RETAIN (content type b), which the latest-publication
    /// pairing took for it.
    #[test]
    fn decision_4_a_retained_copy_is_judged_against_the_retained_message() {
        let run = |delivered: &str| {
            let mut k = Kit::new();
            k.session(
                2,
                "device",
                connect("dev", true, 60, ""),
                connack(false, 0, ""),
            );
            k.up(
                2,
                "device",
                retained(publish(None, 0, "t/1", "x", "content_type = \"a\"")),
            );
            k.up(
                2,
                "device",
                publish(None, 0, "t/1", "x", "content_type = \"b\""),
            );
            k.session(
                1,
                "cloud",
                connect("cloud", true, 60, ""),
                connack(false, 0, ""),
            );
            k.up(
                1,
                "cloud",
                subscribe(1, "t/#", 1, 0, "subscription_identifier = 7"),
            )
            .down(1, "cloud", suback(1, &[1]));
            let props = format!("content_type = \"{delivered}\"\nsubscription_identifier = 7");
            k.down(1, "cloud", retained(publish(None, 0, "t/1", "x", &props)));
            judge_both(&checker(), &k.history())
        };
        let v = run("a");
        assert!(v.ok(), "{v:?}");
        assert_eq!(run("b").rules(), vec!["MQTT-3.3.2-20"]);
    }
}
