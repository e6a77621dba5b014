//! A read-only index over a history that the checkers share: connections
//! with their CONNECT/CONNACK/close, session lineages, subscriptions,
//! publications grouped into messages, deliveries, faults and lifecycle
//! events.
//!
//! Conventions every checker relies on:
//! - a packet event with fate `Forwarded`, `Dropped`, `Duplicated` or `Held`
//!   is one send by its sender; `Released` is the peer getting a packet that
//!   was held earlier, not a new send ([`sent`]);
//! - the peer got a packet when its fate is `Forwarded`, `Duplicated` or
//!   `Released` ([`seen`]);
//! - a session lineage is a run of connections of one actor where each
//!   connection after the first resumed the previous session (CONNECT with
//!   clean session/start 0 and CONNACK with session present 1);
//! - v5 topic aliases are resolved per connection and direction.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;

use crate::history::{CloseReason, ConnId, Dir, EventKind, Fate, History};
use crate::mqtt::{topic, ConnAck, Connect, Packet, PropValue, Properties, Publish, QoS, Version};

/// The peer received the packet.
pub fn seen(f: Fate) -> bool {
    matches!(f, Fate::Forwarded | Fate::Duplicated | Fate::Released)
}

/// The event is a send by the packet's sender (not the release of a held one).
pub fn sent(f: Fate) -> bool {
    !matches!(f, Fate::Released)
}

pub fn prop_u32(props: &Properties, id: u8) -> Option<u32> {
    props
        .0
        .iter()
        .find(|p| p.id == id)
        .and_then(|p| match &p.value {
            PropValue::U32(v) | PropValue::VarInt(v) => Some(*v),
            PropValue::U16(v) => Some(*v as u32),
            PropValue::Byte(v) => Some(*v as u32),
            _ => None,
        })
}

pub fn show(payload: &Bytes) -> String {
    let s = String::from_utf8_lossy(payload);
    if s.chars().count() > 40 {
        format!("{:?}…", s.chars().take(40).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

#[derive(Clone, Debug)]
pub struct Stamp {
    pub seq: u64,
    pub at: Duration,
}

#[derive(Clone, Debug)]
pub struct Conn {
    pub id: ConnId,
    pub actor: String,
    pub first: Stamp,
    /// The first CONNECT the client sent on this connection.
    pub connect: Option<(Stamp, Connect)>,
    /// Whether that CONNECT reached the broker.
    pub connect_seen: bool,
    /// The CONNACK the broker sent.
    pub connack: Option<(Stamp, ConnAck)>,
    pub closed: Option<(Stamp, CloseReason)>,
    /// A DISCONNECT from the client that reached the broker: (stamp, reason code).
    pub disconnect: Option<(Stamp, u8)>,
    /// Packets the broker received from the client.
    pub rx: Vec<Stamp>,
    /// Packets the client sent (whatever their fate).
    pub tx: Vec<(Stamp, Packet)>,
    /// Index of the first connection of this connection's session lineage.
    pub lineage: usize,
    /// This connection resumed the previous one's session.
    pub resumed: bool,
}

impl Conn {
    pub fn client_id(&self) -> Option<&str> {
        self.connect.as_ref().map(|(_, c)| c.client_id.as_str())
    }

    /// Both connections are the same client to the broker: the same
    /// client id — unless it is empty, for which the broker makes up a new
    /// one each time [MQTT-3.1.3-6], so only a connection is itself.
    pub fn same_client(&self, other: &Conn) -> bool {
        self.id == other.id
            || matches!((self.client_id(), other.client_id()), (Some(a), Some(b)) if a == b && !a.is_empty())
    }

    /// The key of its client's state: the client id, or (empty) the
    /// connection's own id, as for [`Conn::same_client`].
    pub fn client_key(&self) -> Option<String> {
        self.client_id().map(|id| {
            if id.is_empty() {
                format!("(assigned to {})", self.id)
            } else {
                id.to_string()
            }
        })
    }
    pub fn version(&self) -> Version {
        self.connect
            .as_ref()
            .map(|(_, c)| c.version)
            .unwrap_or(Version::V311)
    }
    /// The broker accepted the connection (CONNACK with code 0).
    pub fn accepted(&self) -> bool {
        self.connack.as_ref().is_some_and(|(_, a)| a.code == 0)
    }
    pub fn accepted_at(&self) -> Option<Duration> {
        self.connack
            .as_ref()
            .filter(|(_, a)| a.code == 0)
            .map(|(s, _)| s.at)
    }
    pub fn clean_start(&self) -> bool {
        self.connect.as_ref().is_none_or(|(_, c)| c.clean_start)
    }
    pub fn keep_alive(&self) -> u16 {
        self.connect
            .as_ref()
            .map(|(_, c)| c.keep_alive)
            .unwrap_or(0)
    }
    /// When the connection ended, or `run_end` if it never did.
    pub fn end(&self, run_end: Duration) -> Duration {
        self.closed.as_ref().map(|(s, _)| s.at).unwrap_or(run_end)
    }
    /// Accepted and not yet closed at `t`.
    pub fn open_at(&self, t: Duration, run_end: Duration) -> bool {
        self.accepted_at().is_some_and(|a| a <= t) && t <= self.end(run_end)
    }
    /// The session survives this connection's end (3.1.1: clean session 0;
    /// 5.0: a non-zero session expiry interval).
    pub fn persistent(&self) -> bool {
        match &self.connect {
            None => false,
            Some((_, c)) if c.version == Version::V5 => {
                prop_u32(&c.properties, 0x11).unwrap_or(0) > 0
            }
            Some((_, c)) => !c.clean_start,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub stamp: Stamp,
    pub target: String,
    /// The first word of the fault, lower-cased (`sever`, `blackhole`, `heal`…).
    pub kind: String,
    pub text: String,
}

impl Fault {
    /// A `Fault` event: its kind is the first word of its text.
    pub fn new(stamp: Stamp, target: &str, text: &str) -> Fault {
        let kind = text
            .split(|c: char| c.is_whitespace() || c == '(' || c == ':' || c == '=')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        Fault {
            stamp,
            target: target.to_string(),
            kind,
            text: text.to_string(),
        }
    }

    pub fn hits(&self, actor: &str) -> bool {
        self.target == actor || self.target == "*"
    }
    /// Faults that leave the connection alone.
    pub fn harmless(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "heal" | "accept" | "refuse" | "release" | "clear"
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerAct {
    Started,
    /// Graceful: restart or stop.
    Stopped,
    Killed,
}

impl BrokerAct {
    /// What a `Broker` event's text says was done.
    pub fn of(what: &str) -> BrokerAct {
        let w = what.to_ascii_lowercase();
        if w.contains("kill") {
            // kill, killed, kill_restart: the kill is what matters.
            BrokerAct::Killed
        } else if w.starts_with("restart") || w.starts_with("stop") {
            BrokerAct::Stopped
        } else {
            BrokerAct::Started
        }
    }
}

/// One publication event with its topic resolved (aliases).
#[derive(Clone, Debug)]
pub struct PubEv {
    pub stamp: Stamp,
    pub conn: ConnId,
    pub actor: String,
    pub dir: Dir,
    pub fate: Fate,
    pub publish: Publish,
}

/// An application message as its publisher sent it: a first PUBLISH and its
/// retransmissions (same packet id, topic and payload, before completion).
#[derive(Clone, Debug)]
pub struct Msg {
    pub publisher: String,
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub pid: Option<u16>,
    pub first: Stamp,
    /// The broker first got a PUBLISH of it.
    pub arrived: Option<Stamp>,
    /// The broker acknowledged it (PUBACK/PUBREC sent) — QoS 0: arrival.
    pub acked: Option<Stamp>,
    /// The flow completed far enough that the broker must deliver it:
    /// QoS 0 arrival, QoS 1 PUBACK sent, QoS 2 PUBREL received.
    pub done: Option<Stamp>,
    pub events: Vec<u64>,
}

#[derive(Clone, Debug)]
pub struct Sub {
    pub actor: String,
    pub conn: usize,
    pub filter: String,
    pub options: u8,
    /// SUBSCRIBE reached the broker.
    pub sent: Stamp,
    /// SUBACK with a success code for this filter, and that code.
    pub acked: Option<(Stamp, u8)>,
    /// UNSUBSCRIBE for the same filter reached the broker.
    pub unsub: Option<Stamp>,
}

impl Sub {
    pub fn granted(&self) -> Option<QoS> {
        self.acked.as_ref().and_then(|(_, c)| QoS::from_u8(*c))
    }
    pub fn shared(&self) -> bool {
        topic::parse_filter(&self.filter).share_group.is_some()
    }
    pub fn no_local(&self) -> bool {
        self.options & 0x04 != 0
    }
}

#[derive(Clone, Debug)]
pub struct Dlv {
    pub stamp: Stamp,
    pub actor: String,
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

pub struct Index {
    pub conns: Vec<Conn>,
    pub by_id: HashMap<ConnId, usize>,
    pub faults: Vec<Fault>,
    pub broker: Vec<(Stamp, BrokerAct)>,
    pub boards: Vec<(Stamp, String)>,
    pub pubs: Vec<PubEv>,
    pub msgs: Vec<Msg>,
    pub subs: Vec<Sub>,
    pub dlvs: Vec<Dlv>,
    /// Packets a fault rule acted on (dropped, held, duplicated, released):
    /// (actor, when, fate), to know when an armed rule has done its work.
    pub shaped: Vec<(String, Duration, Fate)>,
    /// Time of the last event of the run.
    pub end: Duration,
}

impl Index {
    pub fn new(history: &History) -> Index {
        let mut ix = Index {
            conns: Vec::new(),
            by_id: HashMap::new(),
            faults: Vec::new(),
            broker: Vec::new(),
            boards: Vec::new(),
            pubs: Vec::new(),
            msgs: Vec::new(),
            subs: Vec::new(),
            dlvs: Vec::new(),
            shaped: Vec::new(),
            end: history.events.last().map(|e| e.at).unwrap_or_default(),
        };
        let mut aliases: HashMap<(ConnId, bool), HashMap<u32, String>> = HashMap::new();
        // Per publisher actor: pid -> open message index.
        let mut open: HashMap<String, HashMap<u16, usize>> = HashMap::new();
        // Per conn: SUBSCRIBE pid -> sub indices.
        let mut pending_subs: HashMap<(ConnId, u16), Vec<usize>> = HashMap::new();
        for ev in &history.events {
            let stamp = Stamp {
                seq: ev.seq,
                at: ev.at,
            };
            if let EventKind::Packet { actor, fate, .. } = &ev.kind {
                if *fate != Fate::Forwarded {
                    ix.shaped.push((actor.clone(), ev.at, *fate));
                }
            }
            match &ev.kind {
                EventKind::ConnOpened { conn, actor } => {
                    ix.conn_mut(*conn, actor, &stamp);
                }
                EventKind::ConnClosed {
                    conn,
                    actor,
                    reason,
                } => {
                    let c = ix.conn_mut(*conn, actor, &stamp);
                    if c.closed.is_none() {
                        c.closed = Some((stamp.clone(), reason.clone()));
                    }
                }
                EventKind::Fault { target, fault } => {
                    ix.faults.push(Fault::new(stamp, target, fault));
                }
                EventKind::Broker { what } => {
                    ix.broker.push((stamp, BrokerAct::of(what)));
                }
                EventKind::Board { what } => ix.boards.push((stamp, what.clone())),
                EventKind::Delivered { actor, msg } => ix.dlvs.push(Dlv {
                    stamp,
                    actor: actor.clone(),
                    topic: msg.topic.clone(),
                    payload: msg.payload.clone(),
                    qos: msg.qos,
                    retain: msg.retain,
                }),
                EventKind::Packet {
                    conn,
                    actor,
                    dir,
                    packet,
                    fate,
                    ..
                } => {
                    let ci = ix.conn_index(*conn, actor, &stamp);
                    let fate = *fate;
                    let to_broker = *dir == Dir::ToBroker;
                    {
                        let c = &mut ix.conns[ci];
                        if to_broker {
                            if seen(fate) {
                                c.rx.push(stamp.clone());
                            }
                            if sent(fate) {
                                c.tx.push((stamp.clone(), packet.clone()));
                            }
                        }
                        match packet {
                            Packet::Connect(cp) if to_broker => {
                                if c.connect.is_none() && sent(fate) {
                                    c.connect = Some((stamp.clone(), cp.clone()));
                                }
                                if seen(fate) {
                                    c.connect_seen = true;
                                }
                            }
                            Packet::ConnAck(a)
                                if !to_broker && sent(fate) && c.connack.is_none() =>
                            {
                                c.connack = Some((stamp.clone(), a.clone()));
                            }
                            Packet::Disconnect(d)
                                if to_broker && seen(fate) && c.disconnect.is_none() =>
                            {
                                c.disconnect = Some((stamp.clone(), d.code));
                            }
                            _ => {}
                        }
                    }
                    match packet {
                        Packet::Connect(cp) if to_broker && sent(fate) && cp.clean_start => {
                            open.remove(actor);
                        }
                        Packet::Publish(p) => {
                            let mut p = p.clone();
                            if let Some(alias) = prop_u32(&p.properties, 0x23) {
                                let map = aliases.entry((*conn, to_broker)).or_default();
                                if p.topic.is_empty() {
                                    if let Some(t) = map.get(&alias) {
                                        p.topic = t.clone();
                                    }
                                } else {
                                    map.insert(alias, p.topic.clone());
                                }
                            }
                            if to_broker {
                                ix.track_publish(&mut open, actor, &p, fate, &stamp);
                            }
                            ix.pubs.push(PubEv {
                                stamp: stamp.clone(),
                                conn: *conn,
                                actor: actor.clone(),
                                dir: *dir,
                                fate,
                                publish: p,
                            });
                        }
                        Packet::PubAck(a) | Packet::PubRec(a) if !to_broker && sent(fate) => {
                            let is_rec = matches!(packet, Packet::PubRec(_));
                            if let Some(&mi) = open.get(actor).and_then(|o| o.get(&a.pid)) {
                                let m = &mut ix.msgs[mi];
                                let want = if is_rec {
                                    QoS::ExactlyOnce
                                } else {
                                    QoS::AtLeastOnce
                                };
                                if m.qos == want && m.acked.is_none() && a.code < 0x80 {
                                    m.acked = Some(stamp.clone());
                                    m.events.push(stamp.seq);
                                    if !is_rec {
                                        m.done = Some(stamp.clone());
                                    }
                                }
                                if !is_rec {
                                    open.get_mut(actor).map(|o| o.remove(&a.pid));
                                }
                            }
                        }
                        Packet::PubRel(a) if to_broker && seen(fate) => {
                            if let Some(&mi) = open.get(actor).and_then(|o| o.get(&a.pid)) {
                                let m = &mut ix.msgs[mi];
                                if m.qos == QoS::ExactlyOnce
                                    && m.acked.is_some()
                                    && m.done.is_none()
                                {
                                    m.done = Some(stamp.clone());
                                    m.events.push(stamp.seq);
                                }
                            }
                        }
                        Packet::PubComp(a) if !to_broker => {
                            open.get_mut(actor).map(|o| o.remove(&a.pid));
                        }
                        Packet::Subscribe(s) if to_broker && seen(fate) => {
                            let mut idx = Vec::new();
                            for f in &s.filters {
                                idx.push(ix.subs.len());
                                ix.subs.push(Sub {
                                    actor: actor.clone(),
                                    conn: ci,
                                    filter: f.filter.clone(),
                                    options: f.options,
                                    sent: stamp.clone(),
                                    acked: None,
                                    unsub: None,
                                });
                            }
                            pending_subs.insert((*conn, s.pid), idx);
                        }
                        Packet::SubAck(sa) if !to_broker && sent(fate) => {
                            if let Some(idx) = pending_subs.remove(&(*conn, sa.pid)) {
                                for (k, si) in idx.into_iter().enumerate() {
                                    if let Some(&code) = sa.codes.get(k) {
                                        if code < 0x80 {
                                            ix.subs[si].acked = Some((stamp.clone(), code));
                                        }
                                    }
                                }
                            }
                        }
                        Packet::Unsubscribe(u) if to_broker && seen(fate) => {
                            for s in ix.subs.iter_mut() {
                                if s.actor == *actor
                                    && s.unsub.is_none()
                                    && u.filters.contains(&s.filter)
                                {
                                    s.unsub = Some(stamp.clone());
                                }
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        // Session lineages: per actor, in order of first appearance.
        let mut last_of_actor: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..ix.conns.len() {
            if ix.conns[i].connect.is_none() {
                ix.conns[i].lineage = i;
                continue;
            }
            let actor = ix.conns[i].actor.clone();
            let prev = last_of_actor.get(&actor).copied();
            let c = &ix.conns[i];
            let resumed = !c.clean_start()
                && c.connack
                    .as_ref()
                    .is_some_and(|(_, a)| a.code == 0 && a.session_present)
                && prev.is_some();
            let lineage = match (resumed, prev) {
                (true, Some(p)) => ix.conns[p].lineage,
                _ => i,
            };
            ix.conns[i].resumed = resumed;
            ix.conns[i].lineage = lineage;
            if ix.conns[i].accepted() {
                last_of_actor.insert(actor, i);
            }
        }
        ix
    }

    fn conn_index(&mut self, id: ConnId, actor: &str, stamp: &Stamp) -> usize {
        if let Some(&i) = self.by_id.get(&id) {
            return i;
        }
        let i = self.conns.len();
        self.conns.push(Conn {
            id,
            actor: actor.to_string(),
            first: stamp.clone(),
            connect: None,
            connect_seen: false,
            connack: None,
            closed: None,
            disconnect: None,
            rx: Vec::new(),
            tx: Vec::new(),
            lineage: i,
            resumed: false,
        });
        self.by_id.insert(id, i);
        i
    }

    fn conn_mut(&mut self, id: ConnId, actor: &str, stamp: &Stamp) -> &mut Conn {
        let i = self.conn_index(id, actor, stamp);
        &mut self.conns[i]
    }

    fn track_publish(
        &mut self,
        open: &mut HashMap<String, HashMap<u16, usize>>,
        actor: &str,
        p: &Publish,
        fate: Fate,
        stamp: &Stamp,
    ) {
        let opens = open.entry(actor.to_string()).or_default();
        let same = |m: &Msg| m.topic == p.topic && m.payload == p.payload && m.qos == p.qos;
        let existing = match p.pid {
            Some(pid) if p.qos != QoS::AtMostOnce => {
                opens.get(&pid).copied().filter(|&i| same(&self.msgs[i]))
            }
            _ => None,
        };
        // A release of a held packet belongs to the message it was sent for.
        let existing = existing.or_else(|| {
            if fate == Fate::Released {
                self.msgs
                    .iter()
                    .rposition(|m| m.publisher == actor && same(m))
            } else {
                None
            }
        });
        let mi = match existing {
            Some(i) => i,
            None => {
                self.msgs.push(Msg {
                    publisher: actor.to_string(),
                    topic: p.topic.clone(),
                    payload: p.payload.clone(),
                    qos: p.qos,
                    retain: p.retain,
                    pid: p.pid,
                    first: stamp.clone(),
                    arrived: None,
                    acked: None,
                    done: None,
                    events: Vec::new(),
                });
                let i = self.msgs.len() - 1;
                if let (Some(pid), true) = (p.pid, p.qos != QoS::AtMostOnce) {
                    opens.insert(pid, i);
                }
                i
            }
        };
        let m = &mut self.msgs[mi];
        m.events.push(stamp.seq);
        if seen(fate) && m.arrived.is_none() {
            m.arrived = Some(stamp.clone());
            if m.qos == QoS::AtMostOnce {
                m.acked = Some(stamp.clone());
                m.done = Some(stamp.clone());
            }
        }
    }

    /// Connections of an actor, in order.
    pub fn conns_of<'a>(&'a self, actor: &'a str) -> impl Iterator<Item = (usize, &'a Conn)> + 'a {
        self.conns
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.actor == actor)
    }

    /// The client id of the actor's first CONNECT.
    pub fn client_id_of<'a>(&'a self, actor: &'a str) -> Option<&'a str> {
        self.conns_of(actor).find_map(|(_, c)| c.client_id())
    }

    pub fn actors(&self) -> Vec<String> {
        let mut v: Vec<String> = self.conns.iter().map(|c| c.actor.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The actor's connection open at `t`, if any.
    pub fn conn_at(&self, actor: &str, t: Duration) -> Option<usize> {
        self.conns_of(actor)
            .filter(|(_, c)| c.open_at(t, self.end))
            .map(|(i, _)| i)
            .last()
    }

    /// The intervals in which faults disturb `actor`: a fault lasts until the
    /// next `heal` on the same target (or the end of the run).
    pub fn disturbances(&self, actor: &str) -> Vec<(Duration, Duration, u64)> {
        let acted = |f: &Fault, want: &[Fate]| {
            self.shaped
                .iter()
                .find(|(a, at, fate)| f.hits(a) && *at >= f.stamp.at && want.contains(fate))
                .map(|(_, at, _)| *at)
        };
        disturbances(
            actor,
            &self.faults,
            acted,
            &self.boards,
            &self
                .conns_of("device")
                .map(|(_, c)| c.accepted_at())
                .collect::<Vec<_>>(),
        )
    }

    /// Is `[from, to]` free of disturbances for `actor`?
    pub fn undisturbed(&self, actor: &str, from: Duration, to: Duration) -> bool {
        free_of(&self.disturbances(actor), from, to)
    }

    /// Broker lifecycle events (not `Started`) in `[from, to]`.
    pub fn broker_down_between(&self, from: Duration, to: Duration) -> Option<&(Stamp, BrokerAct)> {
        self.broker
            .iter()
            .find(|(s, a)| *a != BrokerAct::Started && s.at >= from && s.at <= to)
    }

    /// A run of at least `len` in `[from, to]` during which `actor` was not
    /// disturbed; returns its start.
    pub fn quiet_window(
        &self,
        actor: &str,
        from: Duration,
        to: Duration,
        len: Duration,
    ) -> Option<Duration> {
        if to < from {
            return None;
        }
        let mut d = self.disturbances(actor);
        d.sort();
        let mut start = from;
        for (a, b, _) in d {
            if b < start {
                continue;
            }
            if a > to {
                break;
            }
            if a >= start && a - start >= len {
                return Some(start);
            }
            start = start.max(b);
        }
        if start <= to && to - start >= len {
            Some(start)
        } else {
            None
        }
    }

    /// Messages keyed by topic and payload: more than one entry means the key
    /// is ambiguous.
    pub fn msgs_by_key(&self) -> HashMap<(String, Bytes), Vec<usize>> {
        let mut map: HashMap<(String, Bytes), Vec<usize>> = HashMap::new();
        for (i, m) in self.msgs.iter().enumerate() {
            map.entry((m.topic.clone(), m.payload.clone()))
                .or_default()
                .push(i);
        }
        map
    }
}
/// What a packet rule asks of the packets it acts on, by fault kind.
pub(crate) fn rule_fates(kind: &str) -> &'static [Fate] {
    match kind {
        "drop" => &[Fate::Dropped],
        "duplicate" => &[Fate::Duplicated],
        _ => &[Fate::Released],
    }
}

/// The rule of [`Index::disturbances`], over what it reads: the faults in
/// order, when a packet rule first acted (`acted(fault, fates)`), the board
/// events, and when each connection of the device was accepted (in
/// connection order). Shared with the incremental checkers' context
/// ([`super::live::Context`]), so both read disturbances alike.
pub(crate) fn disturbances(
    actor: &str,
    faults: &[Fault],
    acted: impl Fn(&Fault, &[Fate]) -> Option<Duration>,
    boards: &[(Stamp, String)],
    device_accepted: &[Option<Duration>],
) -> Vec<(Duration, Duration, u64)> {
    let mut out = Vec::new();
    for (k, f) in faults.iter().enumerate() {
        if !f.hits(actor) || f.harmless() {
            continue;
        }
        let ended_by = |kinds: &[&str]| {
            faults[k + 1..]
                .iter()
                .find(|h| {
                    kinds.contains(&h.kind.as_str()) && (h.target == f.target || h.target == "*")
                })
                .map(|h| h.stamp.at)
                .unwrap_or(Duration::MAX)
        };
        let until = match f.kind.as_str() {
            // A cut is a moment: the connections it hit are gone, and
            // the next ones are not disturbed by it.
            "sever" | "close" => f.stamp.at,
            // A packet rule disturbs until it has acted (a held packet:
            // until it is released).
            "drop" | "duplicate" | "hold" | "delay" => acted(f, rule_fates(&f.kind))
                .unwrap_or(Duration::MAX)
                .min(ended_by(&["clear"])),
            "latency" | "bandwidth" => ended_by(&["clear"]),
            _ => ended_by(&["heal"]),
        };
        out.push((f.stamp.at, until, f.stamp.seq));
    }
    if actor == "device" {
        for (s, _) in boards {
            // The board is down until the device is accepted again.
            let back = device_accepted
                .iter()
                .flatten()
                .copied()
                .find(|&a| a > s.at)
                .unwrap_or(Duration::MAX);
            out.push((s.at, back, s.seq));
        }
    }
    out
}

/// What rules ask about the time around a packet, answered alike by the
/// [`Index`] of a whole history and by the incremental checkers'
/// [`super::live::Context`].
pub trait Surroundings {
    /// Is `[from, to]` free of disturbances for `actor`?
    fn undisturbed(&self, actor: &str, from: Duration, to: Duration) -> bool;
    /// Did the broker stop or die in `[from, to]`?
    fn broker_down(&self, from: Duration, to: Duration) -> bool;
}

impl Surroundings for Index {
    fn undisturbed(&self, actor: &str, from: Duration, to: Duration) -> bool {
        Index::undisturbed(self, actor, from, to)
    }
    fn broker_down(&self, from: Duration, to: Duration) -> bool {
        self.broker_down_between(from, to).is_some()
    }
}

/// Is `[from, to]` free of the disturbances `d`? A disturbance that ends as
/// the window opens (a board reset ends when the device is accepted again,
/// at the CONNACK the window starts from) does not disturb it.
pub(crate) fn free_of(d: &[(Duration, Duration, u64)], from: Duration, to: Duration) -> bool {
    d.iter().all(|&(a, b, _)| b <= from || a > to)
}
