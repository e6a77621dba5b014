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

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::index::{seen, sent, Index};
use super::v5_limits::{connections, judged, Pk};
use super::{Checker, Verdict};
use crate::history::{Dir, History};
use crate::mqtt::{props, topic, Packet, PacketType, PropValue, QoS, Version};

pub struct PacketsChecker {
    pub clients: Vec<String>,
    pub slack: Duration,
}

impl Checker for PacketsChecker {
    fn name(&self) -> &str {
        "v5_packets"
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        let ix = Index::new(history);
        let end = history.iter().last().map(|e| e.at).unwrap_or_default();
        let conns = connections(history);
        // QoS>0 packet ids each client id sent, over its connections.
        let mut sent_by: HashMap<String, BTreeSet<u16>> = HashMap::new();
        for c in &conns {
            let client = judged(&self.clients, &c.actor);
            let cid = c.connect.map(|x| x.client_id.clone()).unwrap_or_default();
            let closed = ix
                .by_id
                .get(&c.id)
                .and_then(|&i| ix.conns[i].closed.as_ref().map(|(s, _)| s.at));
            let mut connack_ok = false;
            let mut connacks = 0;
            let mut pending: Vec<(u16, u64, Duration, bool)> = Vec::new();
            let mut released: HashMap<(Dir, u16), u64> = HashMap::new();
            let mut auth = AuthState::new(c.connect.and_then(|x| auth_method(&x.properties)));
            let mut flight: HashMap<(Dir, u16), Flight> = HashMap::new();
            let mut ever: BTreeSet<(bool, u16)> = BTreeSet::new();
            // Filters per request (packet id, unsubscribe), and the answered ones.
            let mut filters: HashMap<(u16, bool), usize> = HashMap::new();
            let mut answered: BTreeSet<(u16, bool)> = BTreeSet::new();
            let mut order = AckOrder::default();
            let fresh = c.connect.is_some_and(|x| x.clean_start);
            if let (Some(first), true) = (c.pkts.iter().find(|p| p.dir == Dir::ToBroker), client) {
                if !matches!(first.packet, Packet::Connect(_)) {
                    v.fail(
                        "MQTT-3.1.0-1",
                        format!(
                            "{}'s first packet was {}, not CONNECT",
                            c.actor,
                            first.packet.packet_type()
                        ),
                        vec![first.seq],
                    );
                }
            }
            let teardown = history
                .events
                .iter()
                .find(|e| matches!(e.kind, crate::history::EventKind::Teardown))
                .map(|e| e.at)
                .unwrap_or(end);
            let mut connects = 0;
            for p in &c.pkts {
                let judge = p.dir == Dir::ToClient || client;
                auth.see(p, client, &c.actor, &mut v);
                if judge && sent(p.fate) {
                    packet_ids(p, &mut flight, &mut ever, fresh, &c.actor, &mut v);
                }
                acked(p, &mut flight);
                if client {
                    order.see(p, &c.actor, &mut v);
                }
                if let (Packet::Connect(_), Dir::ToBroker, true) = (p.packet, p.dir, seen(p.fate)) {
                    connects += 1;
                    if let (2, Some(&i)) = (connects, ix.by_id.get(&c.id)) {
                        super::packets::second_connect(
                            &ix,
                            ix.conns[i].id,
                            &ix.conns[i].actor,
                            ix.conns[i].closed.as_ref(),
                            (p.seq, p.at),
                            self.slack,
                            end.min(teardown),
                            "MQTT-3.1.0-2",
                            &mut v,
                        );
                    }
                }
                match (p.packet, p.dir) {
                    (Packet::ConnAck(a), Dir::ToClient) => {
                        connacks += 1;
                        if connacks == 2 {
                            v.fail(
                                "MQTT-3.2.0-2",
                                format!("a second CONNACK to {}", c.actor),
                                vec![p.seq],
                            );
                        }
                        connack_ok |= a.code == 0;
                    }
                    (Packet::Auth(_) | Packet::Disconnect(_), Dir::ToClient) => {}
                    (other, Dir::ToClient) if !connack_ok => {
                        v.fail(
                            "MQTT-3.2.0-1",
                            format!(
                                "the broker sent {} to {} before a successful CONNACK",
                                other.packet_type(),
                                c.actor
                            ),
                            vec![p.seq],
                        );
                        connack_ok = true; // say it once
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
                                        "a QoS 0 PUBLISH with DUP set on {}'s connection ({:?})",
                                        c.actor, p.dir
                                    ),
                                    vec![p.seq],
                                );
                            }
                        }
                        if let Some(pid) = pb.pid {
                            if p.dir == Dir::ToBroker {
                                sent_by.entry(cid.clone()).or_default().insert(pid);
                            }
                            if let Some(&rel) = released.get(&(p.dir, pid)) {
                                if judge {
                                    v.fail("MQTT-4.3.3-6", format!("PUBLISH {pid} sent again on {}'s connection after its PUBREL", c.actor), vec![rel, p.seq]);
                                }
                                released.remove(&(p.dir, pid));
                            }
                        }
                    }
                    Packet::PubRel(a) if sent(p.fate) => {
                        released.insert((p.dir, a.pid), p.seq);
                    }
                    Packet::PubComp(a) => {
                        let other = if p.dir == Dir::ToBroker {
                            Dir::ToClient
                        } else {
                            Dir::ToBroker
                        };
                        released.remove(&(other, a.pid));
                    }
                    _ => {}
                }
                match (p.packet, p.dir) {
                    (Packet::PubAck(a) | Packet::PubRec(a), Dir::ToClient)
                        if !sent_by.get(&cid).is_some_and(|s| s.contains(&a.pid)) =>
                    {
                        v.fail(
                            "MQTT-2.2.1-5",
                            format!(
                                "the broker acknowledged packet id {} that {} never published",
                                a.pid, c.actor
                            ),
                            vec![p.seq],
                        );
                    }
                    (Packet::Subscribe(s), Dir::ToBroker) if seen(p.fate) => {
                        pending.push((s.pid, p.seq, p.at, false));
                        filters.insert((s.pid, false), s.filters.len());
                    }
                    (Packet::Unsubscribe(s), Dir::ToBroker) if seen(p.fate) => {
                        pending.push((s.pid, p.seq, p.at, true));
                        filters.insert((s.pid, true), s.filters.len());
                    }
                    (Packet::SubAck(a), Dir::ToClient) => {
                        match pending.iter().position(|x| x.0 == a.pid && !x.3) {
                            Some(i) => {
                                pending.remove(i);
                                answered.insert((a.pid, false));
                            }
                            None => {
                                split_answer(
                                    &filters,
                                    &answered,
                                    (a.pid, false),
                                    p.seq,
                                    &c.actor,
                                    &mut v,
                                );
                                for rule in ["MQTT-3.8.4-2", "MQTT-2.2.1-6"] {
                                    v.fail(
                                        rule,
                                        format!(
                                            "SUBACK {} to {} answers no SUBSCRIBE",
                                            a.pid, c.actor
                                        ),
                                        vec![p.seq],
                                    );
                                }
                            }
                        }
                    }
                    (Packet::UnsubAck(a), Dir::ToClient) => {
                        match pending.iter().position(|x| x.0 == a.pid && x.3) {
                            Some(i) => {
                                pending.remove(i);
                                answered.insert((a.pid, true));
                            }
                            None => {
                                split_answer(
                                    &filters,
                                    &answered,
                                    (a.pid, true),
                                    p.seq,
                                    &c.actor,
                                    &mut v,
                                );
                                for rule in ["MQTT-3.10.4-5", "MQTT-2.2.1-6"] {
                                    v.fail(
                                        rule,
                                        format!(
                                            "UNSUBACK {} to {} answers no UNSUBSCRIBE",
                                            a.pid, c.actor
                                        ),
                                        vec![p.seq],
                                    );
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            for (pid, seq, at, unsub) in pending {
                let limit = at + self.slack;
                if limit < end
                    && closed.is_none_or(|t| t > limit)
                    && ix.undisturbed(&c.actor, at, limit)
                {
                    let (rule, what) = if unsub {
                        ("MQTT-3.10.4-4", "UNSUBACK")
                    } else {
                        ("MQTT-3.8.4-1", "SUBACK")
                    };
                    v.fail(
                        rule,
                        format!(
                            "no {what} for {}'s request {pid} within {}",
                            c.actor,
                            super::fmt_d(self.slack)
                        ),
                        vec![seq],
                    );
                }
            }
        }
        // Deliveries on topics no subscription of the session matches.
        for d in ix
            .pubs
            .iter()
            .filter(|p| p.dir == Dir::ToClient && sent(p.fate))
        {
            let Some(&di) = ix.by_id.get(&d.conn) else {
                continue;
            };
            let dc = &ix.conns[di];
            if dc.version() != Version::V5 {
                continue;
            }
            let matched = ix.subs.iter().any(|s| {
                let sc = &ix.conns[s.conn];
                sc.client_id() == dc.client_id()
                    && s.sent.seq < d.stamp.seq
                    && topic::matches(&s.filter, &d.publish.topic)
            });
            // A session resumed from before the run, or across a restart,
            // may hold subscriptions the history never showed.
            let unknown_past = !dc.clean_start()
                && ix.conns[..di]
                    .iter()
                    .all(|o| o.client_id() != dc.client_id());
            if !matched && !unknown_past {
                v.fail(
                    "MQTT-3.3.2-3",
                    format!(
                        "{} got a PUBLISH on {} that none of its subscriptions matches",
                        d.actor, d.publish.topic
                    ),
                    vec![d.stamp.seq],
                );
                // Matched only if a leading wildcard could take a `$` level.
                if let Some(rest) = d.publish.topic.strip_prefix('$') {
                    let undollared = format!("_{rest}");
                    if let Some(s) = ix.subs.iter().find(|s| {
                        ix.conns[s.conn].client_id() == dc.client_id()
                            && s.sent.seq < d.stamp.seq
                            && topic::matches(&s.filter, &undollared)
                    }) {
                        v.fail(
                            "MQTT-4.7.2-1",
                            format!(
                                "{} got {} through `{}`: a filter that starts with a wildcard matches no topic starting with `$`",
                                d.actor, d.publish.topic, s.filter
                            ),
                            vec![s.sent.seq, d.stamp.seq],
                        );
                    }
                }
            }
        }
        self.after_unsubscribe(&ix, &mut v);
        // No will after DISCONNECT 0.
        for c in ix.conns.iter() {
            let Some((_, connect)) = &c.connect else {
                continue;
            };
            let Some(will) = &connect.will else { continue };
            if connect.version != Version::V5 {
                continue;
            }
            let Some((ds, 0)) = c.disconnect.as_ref().map(|(s, code)| (s, *code)) else {
                continue;
            };
            if !c.rx.iter().any(|r| r.seq == ds.seq) {
                continue; // the broker never got it
            }
            let next = ix
                .conns
                .iter()
                .filter(|n| n.client_id() == c.client_id() && n.first.seq > ds.seq)
                .map(|n| n.first.seq)
                .min()
                .unwrap_or(u64::MAX);
            if let Some(w) = ix.pubs.iter().find(|p| {
                p.dir == Dir::ToClient
                    && p.conn != c.id
                    && p.stamp.seq > ds.seq
                    && p.stamp.seq < next
                    && p.publish.topic == will.topic
                    && p.publish.payload == will.payload
            }) {
                // The will had to go with the DISCONNECT 0 (3.1.2-10).
                for rule in ["MQTT-3.14.4-3", "MQTT-3.1.2-10"] {
                    v.fail(
                        rule,
                        format!(
                            "{}'s will was published after its DISCONNECT with reason 0",
                            c.actor
                        ),
                        vec![ds.seq, w.stamp.seq],
                    );
                }
            }
        }
        session_resends(&self.clients, &conns, &mut v);
        v
    }
}

impl PacketsChecker {
    /// A message that reached the broker after an UNSUBSCRIBE is not sent
    /// to that session through the removed filter [MQTT-3.10.4-2]: a first
    /// send (not DUP) of it there, when every subscription of the session
    /// matching it was unsubscribed before the message came, and no earlier
    /// PUBLISH of the same topic and payload could be the one delivered.
    fn after_unsubscribe(&self, ix: &Index, v: &mut Verdict) {
        for d in ix
            .pubs
            .iter()
            .filter(|p| p.dir == Dir::ToClient && sent(p.fate) && !p.publish.dup)
        {
            let Some(&di) = ix.by_id.get(&d.conn) else {
                continue;
            };
            let dc = &ix.conns[di];
            if dc.version() != Version::V5 {
                continue;
            }
            let same = |o: &&super::index::PubEv| {
                o.dir == Dir::ToBroker
                    && seen(o.fate)
                    && o.stamp.seq < d.stamp.seq
                    && o.publish.topic == d.publish.topic
                    && o.publish.payload == d.publish.payload
            };
            let Some(src) = ix.pubs.iter().filter(same).last() else {
                continue;
            };
            let mine: Vec<_> = ix
                .subs
                .iter()
                .filter(|s| {
                    ix.conns[s.conn].client_id() == dc.client_id()
                        && s.sent.seq < d.stamp.seq
                        && topic::matches(&s.filter, &d.publish.topic)
                })
                .collect();
            let Some(first_unsub) = mine
                .iter()
                .filter_map(|s| s.unsub.as_ref())
                .map(|u| u.seq)
                .min()
            else {
                continue;
            };
            let all_gone = mine
                .iter()
                .all(|s| s.unsub.as_ref().is_some_and(|u| u.seq < src.stamp.seq));
            let older = ix
                .pubs
                .iter()
                .filter(same)
                .any(|o| o.stamp.seq < first_unsub);
            if all_gone && !older {
                v.fail(
                    "MQTT-3.10.4-2",
                    format!(
                        "{} got a message on {} published after it unsubscribed every filter matching it",
                        d.actor, d.publish.topic
                    ),
                    vec![first_unsub, src.stamp.seq, d.stamp.seq],
                );
            }
        }
    }
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
struct AuthState<'a> {
    /// The CONNECT's Authentication Method.
    method: Option<&'a str>,
    /// A successful CONNACK was sent / reached the client.
    accepted_sent: bool,
    accepted_seen: bool,
    /// The broker's last AUTH asked to continue and the client has not
    /// answered yet.
    asked: bool,
    /// 3.1.2-30 is said once per connection.
    early_said: bool,
}

impl<'a> AuthState<'a> {
    fn new(method: Option<&'a str>) -> Self {
        AuthState {
            method,
            accepted_sent: false,
            accepted_seen: false,
            asked: false,
            early_said: false,
        }
    }

    /// Judges one packet: the broker's always, the client's when `client`.
    fn see(&mut self, p: &Pk<'a>, client: bool, actor: &str, v: &mut Verdict) {
        let pt = p.packet.packet_type();
        match (p.packet, p.dir) {
            (Packet::ConnAck(a), Dir::ToClient) => {
                if a.code == 0 && sent(p.fate) {
                    let got = auth_method(&a.properties);
                    match (self.method, got) {
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
                match self.method {
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
                match self.method {
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

/// Rules over a client id's connections: a PUBLISH answered with a
/// PUBACK or PUBREC of 0x80 or more is never sent again [MQTT-4.4.0-2];
/// a client resends its PUBLISHes in the order it first sent them
/// [MQTT-4.6.0-1] (clients in `clients` only).
fn session_resends(clients: &[String], conns: &[super::v5_limits::C5], v: &mut Verdict) {
    // (client id, direction, packet id) → the refusing ack's seq.
    let mut refused: HashMap<(String, Dir, u16), u64> = HashMap::new();
    // (client id, packet id) → the client's latest first send of it.
    let mut firsts: HashMap<(String, u16), u64> = HashMap::new();
    for c in conns {
        let cid = c.connect.map(|x| x.client_id.clone()).unwrap_or_default();
        if cid.is_empty() {
            continue; // the broker makes up a new id each time
        }
        let client = judged(clients, &c.actor);
        let mut last_original: Option<(u64, u16)> = None;
        for p in &c.pkts {
            match p.packet {
                Packet::Publish(pb) if sent(p.fate) => {
                    let Some(pid) = pb.pid else { continue };
                    let judge = p.dir == Dir::ToClient || client;
                    if pb.dup {
                        if let Some(ack) = refused.get(&(cid.clone(), p.dir, pid)) {
                            if judge {
                                v.fail(
                                    "MQTT-4.4.0-2",
                                    format!("PUBLISH {pid} on {}'s connection ({:?}) was sent again after its receiver refused it with a reason of 0x80 or more", c.actor, p.dir),
                                    vec![*ack, p.seq],
                                );
                            }
                        }
                        if p.dir == Dir::ToBroker && client {
                            if let Some(&orig) = firsts.get(&(cid.clone(), pid)) {
                                if let Some((prev, prev_pid)) = last_original {
                                    if orig < prev {
                                        v.fail(
                                            "MQTT-4.6.0-1",
                                            format!("{} resent PUBLISH {pid} after PUBLISH {prev_pid}, though it first sent {pid} earlier", c.actor),
                                            vec![orig, prev, p.seq],
                                        );
                                    }
                                }
                                last_original = Some((orig, pid));
                            }
                        }
                    } else {
                        refused.remove(&(cid.clone(), p.dir, pid));
                        if p.dir == Dir::ToBroker {
                            firsts.insert((cid.clone(), pid), p.seq);
                        }
                    }
                }
                Packet::PubAck(a) | Packet::PubRec(a) if a.code >= 0x80 && seen(p.fate) => {
                    let back = match p.dir {
                        Dir::ToBroker => Dir::ToClient,
                        Dir::ToClient => Dir::ToBroker,
                    };
                    refused.insert((cid.clone(), back, a.pid), p.seq);
                }
                _ => {}
            }
        }
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
        let v = checker().check(&k.history());
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
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.1.0-1"]);
        let mut k = Kit::new();
        k.open(1, "device")
            .up(1, "device", connect("d", true, 60, ""));
        k.down(1, "device", Packet::PingResp)
            .down(1, "device", connack(false, 0, ""));
        k.down(1, "device", connack(false, 0, ""));
        let v = checker().check(&k.history());
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
            checker().check(&k.history()).rules(),
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
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.3.3-6"]);
    }

    #[test]
    fn acks_for_nothing_and_missing_acks_fail() {
        let mut k = Kit::new();
        up(&mut k);
        k.down(1, "device", ack(PacketType::PubAck, 7, 0));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-2.2.1-5"]);
        let mut k = Kit::new();
        up(&mut k);
        k.down(1, "device", suback(3, &[0]));
        assert_eq!(
            checker().check(&k.history()).rules(),
            vec!["MQTT-3.8.4-2", "MQTT-2.2.1-6"]
        );
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .wait(2000)
            .step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.8.4-1"]);
        let unsub = Packet::Unsubscribe(crate::mqtt::Unsubscribe {
            pid: 5,
            filters: vec!["a".into()],
            properties: Default::default(),
        });
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", unsub).wait(2000).step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.10.4-4"]);
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
            checker().check(&k.history()).rules(),
            vec!["MQTT-3.10.4-5", "MQTT-2.2.1-6"]
        );
        // A request cut off by the connection's end owes nothing.
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .close(1, "device", CloseReason::Severed);
        k.wait(2000).step("end");
        assert!(checker().check(&k.history()).ok());
    }

    #[test]
    fn deliveries_off_subscription_and_wills_after_disconnect_0_fail() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a/+", 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
        k.down(1, "device", publish(None, 0, "a/b", "x", ""));
        assert!(checker().check(&k.history()).ok());
        k.down(1, "device", publish(None, 0, "b/c", "x", ""));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.2-3"]);
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
            checker().check(&k.history()).rules(),
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
        assert_violates(&checker().check(&k.history()), "MQTT-3.1.0-2");

        let mut k = Kit::new();
        up(&mut k).up(1, "device", connect("d", true, 60, ""));
        k.wait(100)
            .close(1, "device", CloseReason::BrokerClosed)
            .wait(3000)
            .step("end");
        let v = checker().check(&k.history());
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
        let v = checker().check(&k.history());
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
        assert_violates(&checker().check(&k.history()), "MQTT-3.1.2-30");
        // The broker's AUTH before the CONNACK that is not "continue".
        let mut k = Kit::new();
        start(&mut k);
        k.down(1, "device", auth(0x00, SCRAM));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.12.0-2"]);
        // The client answering a challenge with anything but 0x18.
        let mut k = Kit::new();
        start(&mut k);
        k.down(1, "device", auth(0x18, SCRAM))
            .up(1, "device", auth(0x19, SCRAM));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.12.0-3"]);
        // A method that changes, on AUTH or on the CONNACK.
        let mut k = Kit::new();
        start(&mut k);
        k.down(1, "device", auth(0x18, "authentication_method = \"OTHER\""))
            .up(1, "device", auth(0x18, ""))
            .down(1, "device", connack(false, 0, ""));
        let v = checker().check(&k.history());
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
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.12.1-1"]);
        // No method in the CONNECT: no AUTH either way, no method back.
        let mut k = Kit::new();
        up(&mut k);
        k.down(1, "device", auth(0x18, SCRAM))
            .up(1, "device", auth(0x18, SCRAM));
        assert_eq!(
            checker().check(&k.history()).rules(),
            vec!["MQTT-4.12.0-6", "MQTT-4.12.0-7"]
        );
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, SCRAM),
        );
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.12.0-6"]);
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
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");

        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 1, "a", "x", "")).up(
            1,
            "device",
            publish(Some(1), 1, "a", "y", ""),
        );
        assert_eq!(
            checker().check(&k.history()).rules(),
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
            checker().check(&k.history()).rules(),
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
            checker().check(&k.history()).rules(),
            vec!["MQTT-4.3.2-1", "MQTT-4.3.3-5"]
        );
        // DUP on a first send in a new session.
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", dup(publish(Some(3), 1, "a", "x", "")));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.3.2-2"]);
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 2, 0, ""))
            .down(1, "device", suback(1, &[2]));
        k.down(1, "device", dup(publish(Some(3), 2, "a", "x", "")));
        assert_eq!(
            checker().check(&k.history()).rules(),
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
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");

        let mut k = Kit::new();
        sub(&mut k);
        k.down(1, "device", publish(Some(1), 1, "a", "x", ""))
            .down(1, "device", publish(Some(2), 1, "a", "y", ""))
            .up(1, "device", ack(PacketType::PubAck, 2, 0))
            .up(1, "device", ack(PacketType::PubAck, 1, 0));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.6.0-2"]);
        let mut k = Kit::new();
        sub(&mut k);
        k.down(1, "device", publish(Some(1), 2, "a", "x", ""))
            .down(1, "device", publish(Some(2), 2, "a", "y", ""))
            .up(1, "device", ack(PacketType::PubRec, 2, 0));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.6.0-3"]);
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 2, "a", "x", ""))
            .up(1, "device", publish(Some(2), 2, "a", "y", ""))
            .down(1, "device", ack(PacketType::PubRec, 1, 0))
            .down(1, "device", ack(PacketType::PubRec, 2, 0))
            .up(1, "device", ack(PacketType::PubRel, 2, 0));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.6.0-4"]);
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
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.4.0-2"]);

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
        let v = checker().check(&k.history());
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
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.6.0-1"]);
    }

    #[test]
    fn a_leading_wildcard_does_not_reach_dollar_topics() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "$SYS/#", 0, 0, ""))
            .down(1, "device", suback(1, &[0]))
            .down(1, "device", publish(None, 0, "$SYS/load", "1", ""));
        assert!(checker().check(&k.history()).ok());
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "+/load", 0, 0, ""))
            .down(1, "device", suback(1, &[0]))
            .down(1, "device", publish(None, 0, "$SYS/load", "1", ""));
        assert_eq!(
            checker().check(&k.history()).rules(),
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
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");
        // Published after it: must not come.
        let mut k = Kit::new();
        start(&mut k);
        unsub(&mut k);
        k.up(2, "cloud", publish(None, 0, "a/1", "new", ""));
        k.down(1, "device", publish(None, 0, "a/1", "new", ""));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.10.4-2"]);
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
        assert!(checker().check(&k.history()).ok());
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", two)
            .down(1, "device", suback(3, &[0]))
            .down(1, "device", suback(3, &[0]));
        assert_eq!(
            checker().check(&k.history()).rules(),
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
        assert_violates(&checker().check(&k.history()), "MQTT-3.10.4-6");
    }
}
