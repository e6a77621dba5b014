//! The limits two 5.0 peers announce in CONNECT and CONNACK, and whether
//! each side kept to the other's (statement ids are MQTT 5.0's):
//!
//! `v5_flow` — Receive Maximum. Per connection and direction, the QoS 1/2
//! PUBLISHes a sender has put on the wire and not seen completed (PUBACK;
//! PUBREC with a code of 0x80 or more; PUBCOMP) never exceed the receiver's
//! Receive Maximum (absent: 65,535): the client against the CONNACK's
//! [MQTT-3.3.4-7], the broker against the CONNECT's [MQTT-3.3.4-9]. A DUP
//! resend of an outstanding packet id is not a new one; the count starts
//! again on each connection, and what a reconnecting sender resends counts
//! at once [MQTT-4.9.0-1]; the send that overruns it was made with the
//! send quota at 0 [MQTT-4.9.0-2]. An ack the proxy dropped never reached the
//! sender, so it frees nothing.
//!
//! `v5_packet_size` — Maximum Packet Size. No packet (as the proxy saw its
//! bytes) larger than the receiver's announced maximum: from the broker
//! [MQTT-3.1.2-24], from the client after the CONNACK [MQTT-3.2.2-15].
//! A packet that would have fit without its Reason String or User
//! Properties should have gone without them: CONNACK [MQTT-3.2.2-19]
//! [MQTT-3.2.2-20], PUBACK, PUBREC, PUBREL, PUBCOMP [MQTT-3.4.2-2]
//! [MQTT-3.4.2-3] [MQTT-3.5.2-2] [MQTT-3.5.2-3] [MQTT-3.6.2-2]
//! [MQTT-3.6.2-3] [MQTT-3.7.2-2] [MQTT-3.7.2-3], SUBACK, UNSUBACK
//! [MQTT-3.9.2-1] [MQTT-3.9.2-2] [MQTT-3.11.2-1] [MQTT-3.11.2-2],
//! DISCONNECT [MQTT-3.14.2-3] [MQTT-3.14.2-4], AUTH [MQTT-3.15.2-2]
//! [MQTT-3.15.2-3].
//!
//! `v5_topic_alias` — Topic Alias. Never alias 0 [MQTT-3.3.2-8]; a client
//! uses none when the CONNACK's Topic Alias Maximum is absent or 0
//! [MQTT-3.2.2-18] and none above it [MQTT-3.3.2-9] [MQTT-3.2.2-17]; the
//! broker likewise against the CONNECT's [MQTT-3.1.2-27], [MQTT-3.3.2-11]
//! [MQTT-3.1.2-26]. A receiver keeps
//! no mapping across connections [MQTT-3.3.2-7]: a PUBLISH that names an
//! alias with no topic, never set on its connection, must not be accepted
//! (acknowledged with success or delivered onward). A broker must accept
//! every alias within its own maximum [MQTT-3.3.2-12]: a DISCONNECT 0x94
//! (Topic Alias invalid) answering a valid one is a violation.
//!
//! Client-side rules judge only the actors in `clients` (default: the
//! device), since observers break them on purpose with `raw = true`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::index::{seen, sent};
use super::{Checker, Incremental, Verdict, Violation};
use crate::history::{ConnId, Dir, Event, EventKind, Fate, History};
use crate::mqtt::codec;
use crate::mqtt::props::{
    self, MAXIMUM_PACKET_SIZE, REASON_STRING, RECEIVE_MAXIMUM, TOPIC_ALIAS, TOPIC_ALIAS_MAXIMUM,
    USER_PROPERTY,
};
use crate::mqtt::{Packet, PacketType, Properties, QoS, Version};

/// One packet on a 5.0 connection.
pub(crate) struct Pk<'a> {
    pub seq: u64,
    pub at: std::time::Duration,
    pub dir: Dir,
    pub fate: Fate,
    pub packet: &'a Packet,
    pub size: usize,
}

/// A 5.0 connection as the v5 checkers read it.
pub(crate) struct C5<'a> {
    pub actor: String,
    pub connect: Option<&'a crate::mqtt::Connect>,
    pub connack: Option<&'a crate::mqtt::ConnAck>,
    pub pkts: Vec<Pk<'a>>,
}

impl C5<'_> {
    pub fn connect_props(&self) -> Properties {
        self.connect
            .map(|c| c.properties.clone())
            .unwrap_or_default()
    }
    pub fn connack_props(&self) -> Properties {
        self.connack
            .map(|c| c.properties.clone())
            .unwrap_or_default()
    }
}

/// The 5.0 connections of a history, packets in log order.
pub(crate) fn connections(h: &History) -> Vec<C5<'_>> {
    let mut order: Vec<ConnId> = Vec::new();
    let mut by: HashMap<ConnId, C5> = HashMap::new();
    for ev in h.iter() {
        let EventKind::Packet {
            conn,
            actor,
            dir,
            packet,
            raw,
            fate,
        } = &ev.kind
        else {
            continue;
        };
        let c = by.entry(*conn).or_insert_with(|| {
            order.push(*conn);
            C5 {
                actor: actor.clone(),
                connect: None,
                connack: None,
                pkts: Vec::new(),
            }
        });
        match packet {
            Packet::Connect(x) if c.connect.is_none() => c.connect = Some(x),
            Packet::ConnAck(x) if c.connack.is_none() => c.connack = Some(x),
            _ => {}
        }
        c.pkts.push(Pk {
            seq: ev.seq,
            at: ev.at,
            dir: *dir,
            fate: *fate,
            packet,
            size: raw.len(),
        });
    }
    order
        .into_iter()
        .filter_map(|id| by.remove(&id))
        .filter(|c| c.connect.is_some_and(|x| x.version == Version::V5))
        .collect()
}

pub(crate) fn judged(clients: &[String], actor: &str) -> bool {
    clients.iter().any(|c| c == "*" || c == actor)
}

/// A packet kept while its connection's first CONNECT has not come (the
/// v5 checkers judge a connection only once that shows it is 5.0).
struct Early {
    seq: u64,
    at: std::time::Duration,
    dir: Dir,
    fate: Fate,
    packet: Packet,
    size: usize,
}

impl Early {
    /// The kept packet as the checkers judge it.
    fn pkt(&self) -> Pkt<'_> {
        Pkt {
            seq: self.seq,
            at: self.at,
            dir: self.dir,
            fate: self.fate,
            packet: &self.packet,
            size: self.size,
        }
    }
}

enum Phase<S> {
    Early(Vec<Early>),
    V5(S),
    Other,
}

/// The connections of a log as [`connections`] has them (in order of
/// their first packet, judged once their first CONNECT says 5.0), each with
/// a checker's state instead of its packets: what the incremental v5
/// checkers share.
pub(crate) struct V5Conns<S> {
    order: Vec<ConnId>,
    conns: HashMap<ConnId, (String, Phase<S>)>,
}

impl<S> Default for V5Conns<S> {
    fn default() -> Self {
        V5Conns {
            order: Vec::new(),
            conns: HashMap::new(),
        }
    }
}

/// A packet as the incremental v5 checkers take it.
pub(crate) struct Pkt<'a> {
    pub seq: u64,
    pub at: std::time::Duration,
    pub dir: Dir,
    pub fate: Fate,
    pub packet: &'a Packet,
    pub size: usize,
}

impl<S> V5Conns<S> {
    /// Takes an event: a packet goes to its connection's state (made by
    /// `start` from the actor and the first CONNECT), through `step`.
    pub(crate) fn feed(
        &mut self,
        ev: &Event,
        start: impl FnOnce(&str, &crate::mqtt::Connect) -> S,
        mut step: impl FnMut(&mut S, &str, Pkt),
    ) {
        let EventKind::Packet {
            conn,
            actor,
            dir,
            packet,
            raw,
            fate,
        } = &ev.kind
        else {
            return;
        };
        let (actor, phase) = self.conns.entry(*conn).or_insert_with(|| {
            self.order.push(*conn);
            (actor.clone(), Phase::Early(Vec::new()))
        });
        let pkt = Pkt {
            seq: ev.seq,
            at: ev.at,
            dir: *dir,
            fate: *fate,
            packet,
            size: raw.len(),
        };
        match phase {
            Phase::V5(st) => step(st, actor, pkt),
            Phase::Other => {}
            Phase::Early(early) => match packet {
                Packet::Connect(c) if c.version == Version::V5 => {
                    let mut st = start(actor, c);
                    for e in std::mem::take(early) {
                        let p = e.pkt();
                        step(&mut st, actor, p);
                    }
                    step(&mut st, actor, pkt);
                    *phase = Phase::V5(st);
                }
                Packet::Connect(_) => *phase = Phase::Other,
                _ => early.push(Early {
                    seq: ev.seq,
                    at: ev.at,
                    dir: *dir,
                    fate: *fate,
                    packet: packet.clone(),
                    size: raw.len(),
                }),
            },
        }
    }

    /// The state of a 5.0 connection.
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut S> {
        match self.conns.get_mut(&id) {
            Some((_, Phase::V5(st))) => Some(st),
            _ => None,
        }
    }

    /// The 5.0 connections' states, in order.
    pub(crate) fn judged(&self) -> impl Iterator<Item = (&str, &S)> {
        self.order.iter().filter_map(|id| match self.conns.get(id) {
            Some((actor, Phase::V5(st))) => Some((actor.as_str(), st)),
            _ => None,
        })
    }
}

/// [`FlowChecker`] on one 5.0 connection as its packets come. The
/// client's side needs the CONNACK's Receive Maximum: until the first
/// CONNACK its packets are kept (and judged against the default).
struct FlowConn {
    broker: Side,
    /// The client's side (judged actors only): its packets until the
    /// first CONNACK, then its state.
    client: Option<Result<Side, Vec<Kept>>>,
}

/// A packet kept for the client's side until the CONNACK.
type Kept = (u64, Dir, Fate, Packet);

struct FlowLive {
    clients: Vec<String>,
    conns: V5Conns<FlowConn>,
}

impl Incremental for FlowLive {
    fn feed(&mut self, ev: &Event) {
        let clients = &self.clients;
        self.conns.feed(
            ev,
            |actor, c| FlowConn {
                broker: Side::new(
                    Dir::ToClient,
                    props::num(&c.properties, RECEIVE_MAXIMUM).unwrap_or(65535),
                ),
                client: judged(clients, actor).then(|| Err(Vec::new())),
            },
            |st, actor, p| {
                st.broker.packet(actor, p.seq, p.dir, p.fate, p.packet);
                match (&mut st.client, p.packet) {
                    (Some(Err(kept)), Packet::ConnAck(a)) => {
                        let max = props::num(&a.properties, RECEIVE_MAXIMUM).unwrap_or(65535);
                        let mut side = Side::new(Dir::ToBroker, max);
                        for (seq, dir, fate, packet) in kept.drain(..) {
                            side.packet(actor, seq, dir, fate, &packet);
                        }
                        side.packet(actor, p.seq, p.dir, p.fate, p.packet);
                        st.client = Some(Ok(side));
                    }
                    (Some(Err(kept)), _) => {
                        kept.push((p.seq, p.dir, p.fate, p.packet.clone()));
                    }
                    (Some(Ok(side)), _) => side.packet(actor, p.seq, p.dir, p.fate, p.packet),
                    (None, _) => {}
                }
            },
        );
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("v5_flow");
        for (actor, st) in self.conns.judged() {
            v.violations.extend(st.broker.failed.clone());
            match &st.client {
                Some(Ok(side)) => v.violations.extend(side.failed.clone()),
                Some(Err(kept)) => {
                    let mut side = Side::new(Dir::ToBroker, 65535);
                    for (seq, dir, fate, packet) in kept {
                        side.packet(actor, *seq, *dir, *fate, packet);
                    }
                    v.violations.extend(side.failed);
                }
                None => {}
            }
        }
        v.note("receive maximum judged on every 5.0 connection");
        v
    }
}

/// [`PacketSizeChecker`] on one 5.0 connection as its packets come.
struct SizeConn {
    to_client: Option<u32>,
    to_broker: Option<u32>,
    acked: bool,
    client: bool,
    found: Vec<Violation>,
}

struct SizeLive {
    clients: Vec<String>,
    conns: V5Conns<SizeConn>,
}

impl Incremental for SizeLive {
    fn feed(&mut self, ev: &Event) {
        let clients = &self.clients;
        self.conns.feed(
            ev,
            |actor, c| SizeConn {
                to_client: props::num(&c.properties, MAXIMUM_PACKET_SIZE),
                to_broker: None,
                acked: false,
                client: judged(clients, actor),
                found: Vec::new(),
            },
            |st, actor, p| {
                if let Packet::ConnAck(a) = p.packet {
                    if !st.acked {
                        st.to_broker = props::num(&a.properties, MAXIMUM_PACKET_SIZE);
                    }
                    st.acked = true;
                }
                st.found.extend(size_violation(
                    actor,
                    &p,
                    st.to_client,
                    st.to_broker,
                    st.acked && st.client,
                ));
            },
        );
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("v5_packet_size");
        for (_, st) in self.conns.judged() {
            v.violations.extend(st.found.iter().cloned());
        }
        v
    }
}

pub struct FlowChecker {
    pub clients: Vec<String>,
}

/// One direction of a 5.0 connection under a Receive Maximum: the QoS 1/2
/// PUBLISHes out and not completed (packet id -> the event that sent it).
#[derive(Clone)]
struct Side {
    dir: Dir,
    max: u32,
    out: BTreeMap<u16, u64>,
    /// The overrun, said as the Receive Maximum's and the send quota's.
    failed: Vec<Violation>,
}

impl Side {
    fn new(dir: Dir, max: u32) -> Side {
        Side {
            dir,
            max,
            out: BTreeMap::new(),
            failed: Vec::new(),
        }
    }

    /// Takes the connection's next packet (nothing after a violation).
    fn packet(&mut self, actor: &str, seq: u64, dir: Dir, fate: Fate, packet: &Packet) {
        if !self.failed.is_empty() {
            return;
        }
        match packet {
            Packet::Publish(pb) if dir == self.dir && pb.qos != QoS::AtMostOnce && sent(fate) => {
                let pid = pb.pid.unwrap_or(0);
                self.out.entry(pid).or_insert(seq);
                if self.out.len() as u32 > self.max {
                    let (rule, who) = match self.dir {
                        Dir::ToClient => ("MQTT-3.3.4-9", "the broker"),
                        Dir::ToBroker => ("MQTT-3.3.4-7", "the client"),
                    };
                    let ids: BTreeSet<u16> = self.out.keys().copied().collect();
                    self.failed.push(Violation::new(
                        rule,
                        format!(
                            "{who} on {actor}'s connection had {} QoS 1/2 PUBLISHes unacknowledged (ids {ids:?}), its peer's Receive Maximum is {}",
                            self.out.len(),
                            self.max
                        ),
                        self.out.values().copied().collect(),
                    ));
                    // Its send quota (at most the Receive Maximum, less one
                    // a send) was spent.
                    self.failed.push(Violation::new(
                        "MQTT-4.9.0-2",
                        format!(
                            "{who} on {actor}'s connection sent a QoS {} PUBLISH with its send quota at 0",
                            pb.qos.as_u8()
                        ),
                        vec![seq],
                    ));
                }
            }
            Packet::PubAck(a) | Packet::PubComp(a) if dir != self.dir && seen(fate) => {
                self.out.remove(&a.pid);
            }
            Packet::PubRec(a) if dir != self.dir && seen(fate) && a.code >= 0x80 => {
                self.out.remove(&a.pid);
            }
            _ => {}
        }
    }
}

impl Checker for FlowChecker {
    fn name(&self) -> &str {
        "v5_flow"
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(FlowLive {
            clients: self.clients.clone(),
            conns: V5Conns::default(),
        }))
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        for c in connections(history) {
            let client_max = props::num(&c.connack_props(), RECEIVE_MAXIMUM).unwrap_or(65535);
            let broker_max = props::num(&c.connect_props(), RECEIVE_MAXIMUM).unwrap_or(65535);
            let mut sides = vec![Side::new(Dir::ToClient, broker_max)];
            if judged(&self.clients, &c.actor) {
                sides.push(Side::new(Dir::ToBroker, client_max));
            }
            for mut side in sides {
                for p in &c.pkts {
                    side.packet(&c.actor, p.seq, p.dir, p.fate, p.packet);
                    if !side.failed.is_empty() {
                        break;
                    }
                }
                v.violations.extend(side.failed);
            }
        }
        v.note("receive maximum judged on every 5.0 connection");
        v
    }
}

pub struct PacketSizeChecker {
    pub clients: Vec<String>,
}

impl Checker for PacketSizeChecker {
    fn name(&self) -> &str {
        "v5_packet_size"
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(SizeLive {
            clients: self.clients.clone(),
            conns: V5Conns::default(),
        }))
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        for c in connections(history) {
            let to_client = props::num(&c.connect_props(), MAXIMUM_PACKET_SIZE);
            let to_broker = props::num(&c.connack_props(), MAXIMUM_PACKET_SIZE);
            let mut acked = false;
            for p in &c.pkts {
                if matches!(p.packet, Packet::ConnAck(_)) {
                    acked = true;
                }
                let pkt = Pkt {
                    seq: p.seq,
                    at: p.at,
                    dir: p.dir,
                    fate: p.fate,
                    packet: p.packet,
                    size: p.size,
                };
                let client = acked && judged(&self.clients, &c.actor);
                v.violations
                    .extend(size_violation(&c.actor, &pkt, to_client, to_broker, client));
            }
        }
        v
    }
}

/// The Maximum Packet Size rule on one packet: the broker's against the
/// CONNECT's maximum, the client's (`client`: judged, and after the
/// CONNACK) against the CONNACK's.
fn size_violation(
    actor: &str,
    p: &Pkt,
    to_client: Option<u32>,
    to_broker: Option<u32>,
    client: bool,
) -> Vec<Violation> {
    if !sent(p.fate) {
        return Vec::new();
    }
    let (max, rule, who) = match p.dir {
        Dir::ToClient => (to_client, "MQTT-3.1.2-24", "the broker"),
        Dir::ToBroker if client => (to_broker, "MQTT-3.2.2-15", "the client"),
        Dir::ToBroker => return Vec::new(),
    };
    let Some(m) = max else {
        return Vec::new();
    };
    if p.size as u64 <= m as u64 {
        return Vec::new();
    }
    let mut out = vec![Violation::new(
        rule,
        format!(
            "{who} sent a {} of {} bytes on {actor}'s connection; the peer's Maximum Packet Size is {m}",
            p.packet.packet_type(),
            p.size,
        ),
        vec![p.seq],
    )];
    out.extend(optional_props_over(p, m, who, actor));
    out
}

/// The statements that forbid a Reason String and User Properties that
/// would take a packet of this type past its receiver's Maximum Packet
/// Size: the sender has to leave them out instead.
fn optional_props_rules(t: PacketType) -> Option<(&'static str, &'static str)> {
    use PacketType as T;
    Some(match t {
        T::ConnAck => ("MQTT-3.2.2-19", "MQTT-3.2.2-20"),
        T::PubAck => ("MQTT-3.4.2-2", "MQTT-3.4.2-3"),
        T::PubRec => ("MQTT-3.5.2-2", "MQTT-3.5.2-3"),
        T::PubRel => ("MQTT-3.6.2-2", "MQTT-3.6.2-3"),
        T::PubComp => ("MQTT-3.7.2-2", "MQTT-3.7.2-3"),
        T::SubAck => ("MQTT-3.9.2-1", "MQTT-3.9.2-2"),
        T::UnsubAck => ("MQTT-3.11.2-1", "MQTT-3.11.2-2"),
        T::Disconnect => ("MQTT-3.14.2-3", "MQTT-3.14.2-4"),
        T::Auth => ("MQTT-3.15.2-2", "MQTT-3.15.2-3"),
        _ => return None,
    })
}

/// A packet `p` over the receiver's maximum `max`: when it would have fit
/// without its Reason String and User Properties, each of those it
/// carries broke its statement. (When even the bare packet is too large
/// only the size rule is broken.) The bytes they add are measured by
/// encoding the packet with and without them, so varint lengths that
/// shrink are counted too.
fn optional_props_over(p: &Pkt, max: u32, who: &str, actor: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some((reason_rule, user_rule)) = optional_props_rules(p.packet.packet_type()) else {
        return out;
    };
    let Some(list) = props::packet_props(p.packet) else {
        return out;
    };
    let has_reason = props::get(list, REASON_STRING).is_some();
    let has_user = props::get(list, USER_PROPERTY).is_some();
    if !has_reason && !has_user {
        return out;
    }
    let mut bare = p.packet.clone();
    if let Some(l) = props_mut(&mut bare) {
        l.0.retain(|x| x.id != REASON_STRING && x.id != USER_PROPERTY);
    }
    let (Ok(full), Ok(stripped)) = (
        codec::encode(p.packet, Version::V5),
        codec::encode(&bare, Version::V5),
    ) else {
        return out;
    };
    let added = full.len().saturating_sub(stripped.len());
    if p.size.saturating_sub(added) as u64 > max as u64 {
        return out;
    }
    for (present, rule, what) in [
        (has_reason, reason_rule, "a Reason String"),
        (has_user, user_rule, "User Properties"),
    ] {
        if present {
            out.push(Violation::new(
                rule,
                format!(
                    "{who} put {what} on a {} to {actor}'s connection that took it to {} bytes, past the peer's Maximum Packet Size {max}; without them it was {} bytes",
                    p.packet.packet_type(),
                    p.size,
                    p.size - added
                ),
                vec![p.seq],
            ));
        }
    }
    out
}

fn props_mut(p: &mut Packet) -> Option<&mut Properties> {
    Some(match p {
        Packet::ConnAck(c) => &mut c.properties,
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            &mut a.properties
        }
        Packet::SubAck(x) => &mut x.properties,
        Packet::UnsubAck(x) => &mut x.properties,
        Packet::Disconnect(x) => &mut x.properties,
        Packet::Auth(x) => &mut x.properties,
        _ => return None,
    })
}

pub struct TopicAliasChecker {
    pub clients: Vec<String>,
}

impl Checker for TopicAliasChecker {
    fn name(&self) -> &str {
        "v5_topic_alias"
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(AliasLive::new(&self.clients)))
    }

    /// The whole history through the same state machine observe feeds.
    fn check(&self, history: &History) -> Verdict {
        super::judge_whole(AliasLive::new(&self.clients), history)
    }
}

/// An alias-only PUBLISH the broker could not resolve on its connection:
/// (packet id, event, payload, where it went onward).
struct Unknown {
    /// The position of its connection.
    owner: usize,
    pid: Option<u16>,
    seq: u64,
    payload: bytes::Bytes,
    /// Per other connection (by position): the first PUBLISH the broker
    /// sent there with this payload after it (actor, event).
    onward: BTreeMap<usize, (String, u64)>,
}

/// What [`TopicAliasChecker`] judges on one connection, packet by packet,
/// once it knows both Topic Alias Maximums.
#[derive(Default)]
struct AliasCore {
    /// Aliases the client set on this connection (as the broker sees them).
    set_up: HashMap<u32, String>,
    /// Its unresolvable alias-only PUBLISHes (indices in `AliasLive::unknown`).
    unknown: Vec<usize>,
    /// The last PUBLISH the client sent with a Topic Alias: event, alias,
    /// whether it carried a topic.
    last_alias: Option<(u64, u32, bool)>,
    found: Vec<Violation>,
}

/// [`TopicAliasChecker`] on one 5.0 connection. The client's aliases are
/// judged against the first CONNACK's maximum: until it comes the packets
/// wait (and a verdict judges them against none, as the batch form would
/// on a log that ends there).
struct AliasConn {
    pos: usize,
    client_side: bool,
    from_broker_max: u32,
    from_client_max: Option<u32>,
    waiting: Vec<Early>,
    core: AliasCore,
}

struct AliasLive {
    clients: Vec<String>,
    conns: V5Conns<AliasConn>,
    /// Connections by position (order of their first packet).
    pos: HashMap<ConnId, usize>,
    unknown: Vec<Unknown>,
    /// Connections waiting for their CONNACK with an alias-only PUBLISH
    /// that may turn out unresolvable once the maximum is known.
    doubtful: BTreeSet<ConnId>,
    /// The broker's PUBLISHes (position, actor, event, payload) since the
    /// first of those: where such a PUBLISH may have gone onward.
    recent: Vec<(usize, String, u64, bytes::Bytes)>,
}

impl AliasCore {
    /// Takes the connection's next packet; returns an alias-only PUBLISH
    /// the broker cannot resolve, for the caller to record as unknown.
    fn judge(
        &mut self,
        actor: &str,
        client_side: bool,
        from_broker_max: u32,
        from_client_max: u32,
        p: &Pkt,
        unknown: &[Unknown],
    ) -> Option<(Option<u16>, u64, bytes::Bytes)> {
        let mut fresh = None;
        match (p.packet, p.dir) {
            (Packet::Publish(pb), dir) => {
                let alias = props::num(&pb.properties, TOPIC_ALIAS);
                if let (Some(a), Dir::ToBroker) = (alias, dir) {
                    self.last_alias = Some((p.seq, a, !pb.topic.is_empty()));
                }
                let a = alias.filter(|_| sent(p.fate))?;
                // 5.0 says "not above the maximum" twice for each side:
                // where the maximum is announced (CONNECT 3.1.2-26,
                // CONNACK 3.2.2-17) and in PUBLISH's Topic Alias
                // (3.3.2-11, 3.3.2-9).
                let (max, who, judge, over, none) = match dir {
                    Dir::ToBroker => (
                        from_client_max,
                        "the client",
                        client_side,
                        ["MQTT-3.3.2-9", "MQTT-3.2.2-17"],
                        "MQTT-3.2.2-18",
                    ),
                    Dir::ToClient => (
                        from_broker_max,
                        "the broker",
                        true,
                        ["MQTT-3.3.2-11", "MQTT-3.1.2-26"],
                        "MQTT-3.1.2-27",
                    ),
                };
                if a == 0 {
                    if judge {
                        self.found.push(Violation::new(
                            "MQTT-3.3.2-8",
                            format!("{who} sent Topic Alias 0 on {actor}'s connection"),
                            vec![p.seq],
                        ));
                    }
                } else if a > max && judge {
                    let rules: &[&str] = if max == 0 { &[none] } else { &over };
                    for rule in rules {
                        self.found.push(Violation::new(
                            *rule,
                            format!("{who} sent Topic Alias {a} on {actor}'s connection; the peer's Topic Alias Maximum is {max}"),
                            vec![p.seq],
                        ));
                    }
                }
                if dir == Dir::ToBroker && seen(p.fate) && a > 0 && a <= from_client_max {
                    if pb.topic.is_empty() {
                        if !self.set_up.contains_key(&a) {
                            fresh = Some((pb.pid, p.seq, pb.payload.clone()));
                        }
                    } else {
                        self.set_up.insert(a, pb.topic.clone());
                    }
                }
            }
            (Packet::PubAck(x) | Packet::PubRec(x), Dir::ToClient) if x.code < 0x80 => {
                if let Some(u) = self
                    .unknown
                    .iter()
                    .map(|&i| &unknown[i])
                    .find(|u| u.pid == Some(x.pid))
                {
                    self.found.push(Violation::new(
                        "MQTT-3.3.2-7",
                        format!(
                            "the broker accepted (reason {}) a PUBLISH from {actor} naming a topic alias never set on that connection: it must have carried a mapping over",
                            x.code
                        ),
                        vec![u.seq, p.seq],
                    ));
                }
            }
            (Packet::Disconnect(d), Dir::ToClient) if d.code == 0x94 => {
                // Was the last alias the client used a valid one?
                if let Some((q, a, topic)) = self.last_alias {
                    let valid =
                        a > 0 && a <= from_client_max && (topic || self.set_up.contains_key(&a));
                    if valid {
                        self.found.push(Violation::new(
                            "MQTT-3.3.2-12",
                            format!("the broker refused Topic Alias {a} from {actor} (DISCONNECT 0x94), within its own maximum {from_client_max}"),
                            vec![q, p.seq],
                        ));
                    }
                }
            }
            _ => {}
        }
        fresh
    }
}

impl AliasLive {
    fn new(clients: &[String]) -> AliasLive {
        AliasLive {
            clients: clients.to_vec(),
            conns: V5Conns::default(),
            pos: HashMap::new(),
            unknown: Vec::new(),
            doubtful: BTreeSet::new(),
            recent: Vec::new(),
        }
    }
}

/// Judges `p` on `st` (with `max`, the client-side maximum) and records
/// an unresolvable PUBLISH it finds, with the broker's PUBLISHes that
/// carried it onward so far.
fn alias_judge(
    st: &mut AliasConn,
    actor: &str,
    max: u32,
    p: &Pkt,
    unknown: &mut Vec<Unknown>,
    recent: &[(usize, String, u64, bytes::Bytes)],
) {
    let fresh = st
        .core
        .judge(actor, st.client_side, st.from_broker_max, max, p, unknown);
    if let Some((pid, seq, payload)) = fresh {
        let mut onward = BTreeMap::new();
        for (o, oa, q, pl) in recent {
            if *o != st.pos && *q > seq && *pl == payload {
                onward.entry(*o).or_insert((oa.clone(), *q));
            }
        }
        st.core.unknown.push(unknown.len());
        unknown.push(Unknown {
            owner: st.pos,
            pid,
            seq,
            payload,
            onward,
        });
    }
}

impl Incremental for AliasLive {
    fn feed(&mut self, ev: &Event) {
        let conn = match &ev.kind {
            EventKind::Packet { conn, .. } => *conn,
            EventKind::ConnClosed { conn, .. } => {
                // No CONNACK comes after the close.
                self.doubtful.remove(conn);
                if self.doubtful.is_empty() {
                    self.recent.clear();
                }
                return;
            }
            _ => return,
        };
        let n = self.pos.len();
        let pos = *self.pos.entry(conn).or_insert(n);
        let clients = &self.clients;
        let unknown = &mut self.unknown;
        let doubtful = &mut self.doubtful;
        let recent = &mut self.recent;
        self.conns.feed(
            ev,
            |actor, c| AliasConn {
                pos,
                client_side: judged(clients, actor),
                from_broker_max: props::num(&c.properties, TOPIC_ALIAS_MAXIMUM).unwrap_or(0),
                from_client_max: None,
                waiting: Vec::new(),
                core: AliasCore::default(),
            },
            |st, actor, p| {
                if let (Packet::Publish(pb), Dir::ToClient) = (p.packet, p.dir) {
                    // Onward: the first such PUBLISH on each other connection.
                    for u in unknown.iter_mut() {
                        if u.owner != st.pos && p.seq > u.seq && pb.payload == u.payload {
                            u.onward.entry(st.pos).or_insert((actor.to_string(), p.seq));
                        }
                    }
                    if !doubtful.is_empty() {
                        recent.push((st.pos, actor.to_string(), p.seq, pb.payload.clone()));
                    }
                }
                match (st.from_client_max, p.packet) {
                    (Some(max), _) => alias_judge(st, actor, max, &p, unknown, recent),
                    (None, Packet::ConnAck(a)) => {
                        let max = props::num(&a.properties, TOPIC_ALIAS_MAXIMUM).unwrap_or(0);
                        st.from_client_max = Some(max);
                        for e in std::mem::take(&mut st.waiting) {
                            let q = e.pkt();
                            alias_judge(st, actor, max, &q, unknown, recent);
                        }
                        alias_judge(st, actor, max, &p, unknown, recent);
                        if doubtful.remove(&conn) && doubtful.is_empty() {
                            recent.clear();
                        }
                    }
                    (None, _) => {
                        if let Packet::Publish(pb) = p.packet {
                            if p.dir == Dir::ToBroker
                                && seen(p.fate)
                                && pb.topic.is_empty()
                                && props::num(&pb.properties, TOPIC_ALIAS).is_some_and(|a| a > 0)
                            {
                                doubtful.insert(conn);
                            }
                        }
                        st.waiting.push(Early {
                            seq: p.seq,
                            at: p.at,
                            dir: p.dir,
                            fate: p.fate,
                            packet: p.packet.clone(),
                            size: p.size,
                        });
                    }
                }
            },
        );
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("v5_topic_alias");
        for (actor, st) in self.conns.judged() {
            v.violations.extend(st.core.found.iter().cloned());
            if st.from_client_max.is_none() {
                // No CONNACK yet: judged against no maximum, which leaves
                // no alias resolvable or unresolvable.
                let mut scratch = AliasCore::default();
                for e in &st.waiting {
                    let q = e.pkt();
                    scratch.judge(actor, st.client_side, st.from_broker_max, 0, &q, &[]);
                }
                v.violations.extend(scratch.found);
            }
            for &i in &st.core.unknown {
                for (o, d) in self.unknown[i].onward.values() {
                    v.fail(
                        "MQTT-3.3.2-7",
                        format!(
                            "a PUBLISH from {actor} naming a topic alias never set on its connection was delivered to {o}: the broker carried a mapping over"
                        ),
                        vec![self.unknown[i].seq, *d],
                    );
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::*;
    use super::*;
    use crate::mqtt::props::Place;
    use crate::mqtt::PacketType;

    fn flow() -> FlowChecker {
        FlowChecker {
            clients: vec!["device".into()],
        }
    }

    #[test]
    fn broker_over_the_clients_receive_maximum_fails() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, "receive_maximum = 2"),
            connack(false, 0, ""),
        );
        for pid in 1..=3 {
            k.wait(5)
                .down(1, "device", publish(Some(pid), 1, "t", "x", ""));
        }
        assert_violates(&judge_both(&flow(), &k.history()), "MQTT-3.3.4-9");
    }

    #[test]
    fn acks_free_quota_dup_resends_do_not_count_and_pubrec_holds_until_pubcomp() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, "receive_maximum = 2"),
            connack(false, 0, ""),
        );
        k.down(1, "device", publish(Some(1), 2, "t", "a", ""))
            .down(1, "device", publish(Some(2), 1, "t", "b", ""))
            .down(1, "device", dup(publish(Some(2), 1, "t", "b", "")))
            .up(1, "device", ack(PacketType::PubAck, 2, 0))
            .down(1, "device", publish(Some(3), 1, "t", "c", ""))
            .up(1, "device", ack(PacketType::PubRec, 1, 0))
            .up(1, "device", ack(PacketType::PubAck, 3, 0))
            .down(1, "device", publish(Some(4), 1, "t", "d", ""));
        let v = judge_both(&flow(), &k.history());
        assert!(v.ok(), "{v:?}");
        // With PUBREC not freeing the slot, one more is too many.
        k.down(1, "device", publish(Some(5), 1, "t", "e", ""));
        let v = judge_both(&flow(), &k.history());
        assert_violates(&v, "MQTT-3.3.4-9");
        assert_violates(&v, "MQTT-4.9.0-2");
    }

    #[test]
    fn client_over_the_brokers_receive_maximum_fails_and_a_dropped_ack_frees_nothing() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, "receive_maximum = 1"),
        );
        k.up(1, "device", publish(Some(1), 1, "t", "a", ""));
        k.dropped_down(1, "device", ack(PacketType::PubAck, 1, 0));
        k.up(1, "device", publish(Some(2), 1, "t", "b", ""));
        assert_violates(&judge_both(&flow(), &k.history()), "MQTT-3.3.4-7");
    }

    #[test]
    fn quota_starts_again_on_a_new_connection() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", false, 60, ""),
            connack(false, 0, "receive_maximum = 1"),
        );
        k.up(1, "device", publish(Some(1), 1, "t", "a", ""));
        k.close(1, "device", crate::history::CloseReason::Severed);
        k.session(
            2,
            "device",
            connect("d", false, 60, ""),
            connack(true, 0, "receive_maximum = 1"),
        );
        k.up(2, "device", dup(publish(Some(1), 1, "t", "a", "")))
            .down(2, "device", ack(PacketType::PubAck, 1, 0))
            .up(2, "device", publish(Some(2), 1, "t", "b", ""));
        let v = judge_both(&flow(), &k.history());
        assert!(v.ok(), "{v:?}");
    }

    #[test]
    fn packets_over_maximum_packet_size_fail_both_ways() {
        let c = PacketSizeChecker {
            clients: vec!["device".into()],
        };
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, "maximum_packet_size = 20"),
            connack(false, 0, "maximum_packet_size = 30"),
        );
        k.down(1, "device", publish(None, 0, "t", "small", ""));
        k.up(
            1,
            "device",
            publish(None, 0, "t", "0123456789012345678", ""),
        );
        assert!(judge_both(&c, &k.history()).ok());
        k.down(
            1,
            "device",
            publish(None, 0, "t", "this payload is longer than twenty", ""),
        );
        assert_violates(&judge_both(&c, &k.history()), "MQTT-3.1.2-24");
        k.up(
            1,
            "device",
            publish(None, 0, "t", "and this one is longer than thirty bytes", ""),
        );
        assert_violates(&judge_both(&c, &k.history()), "MQTT-3.2.2-15");
    }

    /// An ack of `t` with these properties (TOML).
    fn ack_with(t: PacketType, pid: u16, code: u8, props: &str) -> Packet {
        let a = crate::mqtt::Ack {
            pid,
            code,
            properties: p(Place::Packet(t), props),
        };
        match t {
            PacketType::PubAck => Packet::PubAck(a),
            PacketType::PubRec => Packet::PubRec(a),
            PacketType::PubRel => Packet::PubRel(a),
            _ => Packet::PubComp(a),
        }
    }

    /// A Reason String or User Properties that push a packet past the
    /// peer's maximum break their own statements; the same properties on
    /// a packet that fits, or on one too large even without them, do not.
    #[test]
    fn reason_strings_and_user_properties_that_overflow_fail() {
        let c = PacketSizeChecker {
            clients: vec!["device".into()],
        };
        let both = "reason_string = \"the receiver has no room for this text\"\n\
                    user_properties = [[\"k\", \"a value longer than the limit\"]]";
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect(
                "d",
                true,
                60,
                "maximum_packet_size = 20\nauthentication_method = \"m\"",
            ),
            connack(false, 0, "maximum_packet_size = 24"),
        );
        k.up(1, "device", publish(Some(1), 1, "t", "x", ""));
        k.down(
            1,
            "device",
            ack_with(PacketType::PubAck, 1, 0x10, "reason_string = \"ok\""),
        );
        assert!(
            judge_both(&c, &k.history()).ok(),
            "a short reason string fits"
        );
        k.down(1, "device", ack_with(PacketType::PubAck, 1, 0x10, both));
        k.down(1, "device", ack_with(PacketType::PubRec, 2, 0, both));
        k.up(1, "device", ack_with(PacketType::PubRel, 2, 0, both));
        k.down(1, "device", ack_with(PacketType::PubComp, 2, 0, both));
        k.down(
            1,
            "device",
            Packet::SubAck(crate::mqtt::SubAck {
                pid: 1,
                codes: vec![0],
                properties: p(Place::Packet(PacketType::SubAck), both),
            }),
        );
        k.down(
            1,
            "device",
            Packet::UnsubAck(crate::mqtt::UnsubAck {
                pid: 2,
                codes: vec![0],
                properties: p(Place::Packet(PacketType::UnsubAck), both),
            }),
        );
        k.down(
            1,
            "device",
            Packet::Auth(crate::mqtt::Auth {
                code: 0x18,
                properties: p(
                    Place::Packet(PacketType::Auth),
                    &format!("authentication_method = \"m\"\n{both}"),
                ),
            }),
        );
        k.down(1, "device", disconnect(0x80, both));
        let v = judge_both(&c, &k.history());
        assert_violates(&v, "MQTT-3.1.2-24");
        assert_violates(&v, "MQTT-3.2.2-15");
        assert_violates(&v, "MQTT-3.4.2-2");
        assert_violates(&v, "MQTT-3.4.2-3");
        assert_violates(&v, "MQTT-3.5.2-2");
        assert_violates(&v, "MQTT-3.5.2-3");
        assert_violates(&v, "MQTT-3.6.2-2");
        assert_violates(&v, "MQTT-3.6.2-3");
        assert_violates(&v, "MQTT-3.7.2-2");
        assert_violates(&v, "MQTT-3.7.2-3");
        assert_violates(&v, "MQTT-3.9.2-1");
        assert_violates(&v, "MQTT-3.9.2-2");
        assert_violates(&v, "MQTT-3.11.2-1");
        assert_violates(&v, "MQTT-3.11.2-2");
        assert_violates(&v, "MQTT-3.14.2-3");
        assert_violates(&v, "MQTT-3.14.2-4");
        assert_violates(&v, "MQTT-3.15.2-2");
        assert_violates(&v, "MQTT-3.15.2-3");

        // A refusing CONNACK with a Reason String and User Properties.
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, "maximum_packet_size = 12"),
            connack(false, 0x80, both),
        );
        assert_eq!(
            judge_both(&c, &k.history()).rules(),
            vec!["MQTT-3.1.2-24", "MQTT-3.2.2-19", "MQTT-3.2.2-20"]
        );
        // Too large even bare: the maximum is broken, these statements not.
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, "maximum_packet_size = 4"),
            connack(false, 0, ""),
        );
        k.up(1, "device", publish(Some(1), 1, "t", "x", ""));
        // Bare, with its code 0x10, the PUBACK is 5 bytes.
        k.down(1, "device", ack_with(PacketType::PubAck, 1, 0x10, both));
        let v = judge_both(&c, &k.history());
        assert_violates(&v, "MQTT-3.1.2-24");
        assert!(!v.rules().contains(&"MQTT-3.4.2-2"), "{v:?}");
        assert!(!v.rules().contains(&"MQTT-3.4.2-3"), "{v:?}");
    }

    fn alias() -> TopicAliasChecker {
        TopicAliasChecker {
            clients: vec!["device".into()],
        }
    }

    #[test]
    fn aliases_zero_absent_and_above_the_maximum_fail() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, "topic_alias_maximum = 2"),
            connack(false, 0, ""),
        );
        k.down(1, "device", publish(None, 0, "t", "a", "topic_alias = 2"));
        assert!(judge_both(&alias(), &k.history()).ok());
        k.down(1, "device", publish(None, 0, "t", "a", "topic_alias = 3"));
        let v = judge_both(&alias(), &k.history());
        assert_violates(&v, "MQTT-3.3.2-11");
        assert_violates(&v, "MQTT-3.1.2-26");
        k.up(1, "device", publish(None, 0, "t", "a", "topic_alias = 1"));
        assert_violates(&judge_both(&alias(), &k.history()), "MQTT-3.2.2-18");
        k.up(1, "device", publish(None, 0, "t", "a", "topic_alias = 0"));
        assert_violates(&judge_both(&alias(), &k.history()), "MQTT-3.3.2-8");
        // An observer breaking them on purpose is not judged.
        let mut k = Kit::new();
        k.session(
            1,
            "prober",
            connect("p", true, 60, ""),
            connack(false, 0, "topic_alias_maximum = 2"),
        );
        k.up(1, "prober", publish(None, 0, "t", "a", "topic_alias = 5"));
        assert!(judge_both(&alias(), &k.history()).ok());
    }

    #[test]
    fn broker_aliases_without_a_client_maximum_and_client_aliases_above_the_brokers_fail() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, "topic_alias_maximum = 3"),
        );
        k.up(1, "device", publish(None, 0, "t", "a", "topic_alias = 3"));
        assert!(judge_both(&alias(), &k.history()).ok());
        k.up(1, "device", publish(None, 0, "t", "a", "topic_alias = 4"));
        assert_eq!(
            judge_both(&alias(), &k.history()).rules(),
            vec!["MQTT-3.3.2-9", "MQTT-3.2.2-17"]
        );
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, ""),
        );
        k.down(1, "device", publish(None, 0, "t", "a", "topic_alias = 1"));
        assert_eq!(
            judge_both(&alias(), &k.history()).rules(),
            vec!["MQTT-3.1.2-27"]
        );
    }

    #[test]
    fn a_stale_alias_accepted_after_a_reconnect_fails_but_a_refused_one_passes() {
        let base = |k: &mut Kit| {
            k.session(
                1,
                "prober",
                connect("p", true, 60, ""),
                connack(false, 0, "topic_alias_maximum = 5"),
            );
            k.up(
                1,
                "prober",
                publish(Some(1), 1, "a/b", "first", "topic_alias = 1"),
            )
            .down(1, "prober", ack(PacketType::PubAck, 1, 0))
            .close(1, "prober", crate::history::CloseReason::Severed);
            k.session(
                2,
                "prober",
                connect("p", true, 60, ""),
                connack(false, 0, "topic_alias_maximum = 5"),
            );
            k.up(
                2,
                "prober",
                publish(Some(2), 1, "", "second", "topic_alias = 1"),
            );
        };
        let mut k = Kit::new();
        base(&mut k);
        k.down(2, "prober", ack(PacketType::PubAck, 2, 0));
        assert_violates(&judge_both(&alias(), &k.history()), "MQTT-3.3.2-7");
        let mut k = Kit::new();
        base(&mut k);
        k.down(2, "prober", disconnect(0x82, ""));
        let v = judge_both(&alias(), &k.history());
        assert!(v.ok(), "{v:?}");
    }

    /// A client may publish before its CONNACK: an alias-only PUBLISH
    /// sent then is judged against the maximum the CONNACK brings, and a
    /// copy the broker sent onward before that CONNACK still counts.
    #[test]
    fn an_alias_used_before_the_connack_is_judged_when_it_comes() {
        let history = |set_first: bool| {
            let mut k = Kit::new();
            k.session(
                1,
                "cloud",
                connect("c", true, 60, ""),
                connack(false, 0, ""),
            );
            k.open(2, "prober")
                .up(2, "prober", connect("p", true, 60, ""));
            if set_first {
                k.up(
                    2,
                    "prober",
                    publish(None, 0, "a/b", "first", "topic_alias = 1"),
                );
            }
            k.up(
                2,
                "prober",
                publish(None, 0, "", "stale", "topic_alias = 1"),
            )
            .down(1, "cloud", publish(None, 0, "a/b", "stale", ""));
            let before = k.history();
            k.down(2, "prober", connack(false, 0, "topic_alias_maximum = 5"));
            (before, k.history())
        };
        let (before, after) = history(false);
        let v = judge_both(&alias(), &before);
        assert!(v.ok(), "no maximum known yet: {v:?}");
        assert_eq!(judge_both(&alias(), &after).rules(), vec!["MQTT-3.3.2-7"]);
        let (_, after) = history(true);
        let v = judge_both(&alias(), &after);
        assert!(v.ok(), "the alias was set on the connection: {v:?}");
    }

    #[test]
    fn refusing_a_valid_alias_fails() {
        let mut k = Kit::new();
        k.session(
            1,
            "prober",
            connect("p", true, 60, ""),
            connack(false, 0, "topic_alias_maximum = 5"),
        );
        k.up(1, "prober", publish(None, 0, "a/b", "x", "topic_alias = 5"))
            .down(1, "prober", disconnect(0x94, ""));
        assert_violates(&judge_both(&alias(), &k.history()), "MQTT-3.3.2-12");
    }
}
