//! What the incremental checkers ([`super::Incremental`]) share: the part
//! of [`Index`](super::index::Index) that rules read about the *context*
//! of a packet — connections (who, when accepted, when closed, which
//! version), faults and how long they disturb, board and broker actions,
//! the teardown and the end of the log — kept as events come. It grows
//! with connections, faults and lifecycle events, never with the traffic
//! on a connection, and answers as [`Index`](super::index::Index) does for
//! the log fed so far (the same functions decide: [`disturbances`],
//! [`free_of`], [`Fault::new`], [`BrokerAct::of`]).
//!
//! Events are taken in recording order, with times that never go back (the
//! recorder stamps them under one lock).

use std::collections::HashMap;
use std::time::Duration;

use super::index::{
    disturbances, free_of, rule_fates, sent, BrokerAct, Fault, Stamp, Surroundings,
};
use crate::history::{CloseReason, ConnId, Dir, Event, EventKind, Fate};
use crate::mqtt::{Packet, Version};

/// One connection as [`Index`](super::index::Index) has it, without its
/// packets.
#[derive(Clone, Debug)]
pub struct ConnMeta {
    /// Its position among all connections, in order of first appearance.
    pub ci: usize,
    /// The actor of its first event.
    pub actor: String,
    /// The version of the first CONNECT the client sent on it.
    pub version: Option<Version>,
    /// The first CONNACK the broker sent: when, and whether it accepted.
    pub connack: Option<(Stamp, bool)>,
    /// The first close.
    pub closed: Option<(Stamp, CloseReason)>,
}

impl ConnMeta {
    pub fn version(&self) -> Version {
        self.version.unwrap_or(Version::V311)
    }
    pub fn accepted_at(&self) -> Option<Duration> {
        self.connack
            .as_ref()
            .filter(|(_, ok)| *ok)
            .map(|(s, _)| s.at)
    }
}

#[derive(Default)]
pub struct Context {
    pub conns: HashMap<ConnId, ConnMeta>,
    /// The device's connections, in order (positions in `conns` order).
    device: Vec<ConnId>,
    faults: Vec<Fault>,
    /// Per fault: when its packet rule first acted (packet rules only).
    acted: Vec<Option<Duration>>,
    /// Packets a fault rule acted on at the latest time seen: a fault
    /// recorded at that same time counts them (as `Index::shaped` does).
    recent: Vec<(String, Duration, Fate)>,
    boards: Vec<(Stamp, String)>,
    broker: Vec<(Stamp, BrokerAct)>,
    teardown: Option<Duration>,
    end: Duration,
}

impl Context {
    /// Takes the next event; returns the connection it is about, created
    /// on its first event as [`Index`](super::index::Index) creates them.
    pub fn feed(&mut self, ev: &Event) -> Option<ConnId> {
        self.end = ev.at;
        let stamp = Stamp {
            seq: ev.seq,
            at: ev.at,
        };
        if let EventKind::Packet { actor, fate, .. } = &ev.kind {
            if *fate != Fate::Forwarded {
                self.shaped(actor, ev.at, *fate);
            }
        }
        match &ev.kind {
            EventKind::ConnOpened { conn, actor } => {
                self.conn(*conn, actor);
                Some(*conn)
            }
            EventKind::ConnClosed {
                conn,
                actor,
                reason,
            } => {
                let c = self.conn(*conn, actor);
                if c.closed.is_none() {
                    c.closed = Some((stamp, reason.clone()));
                }
                Some(*conn)
            }
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } => {
                let c = self.conn(*conn, actor);
                match packet {
                    Packet::Connect(cp)
                        if *dir == Dir::ToBroker && c.version.is_none() && sent(*fate) =>
                    {
                        c.version = Some(cp.version);
                    }
                    Packet::ConnAck(a)
                        if *dir == Dir::ToClient && sent(*fate) && c.connack.is_none() =>
                    {
                        c.connack = Some((stamp, a.code == 0));
                    }
                    _ => {}
                }
                Some(*conn)
            }
            EventKind::Malformed { conn, .. } => Some(*conn),
            EventKind::Fault { target, fault } => {
                let f = Fault::new(stamp, target, fault);
                let acted = if matches!(f.kind.as_str(), "drop" | "duplicate" | "hold" | "delay") {
                    let want = rule_fates(&f.kind);
                    self.recent
                        .iter()
                        .find(|(a, at, fate)| f.hits(a) && *at >= f.stamp.at && want.contains(fate))
                        .map(|(_, at, _)| *at)
                } else {
                    None
                };
                self.faults.push(f);
                self.acted.push(acted);
                None
            }
            EventKind::Broker { what } => {
                self.broker.push((stamp, BrokerAct::of(what)));
                None
            }
            EventKind::Board { what } => {
                self.boards.push((stamp, what.clone()));
                None
            }
            EventKind::Teardown => {
                self.teardown.get_or_insert(ev.at);
                None
            }
            _ => None,
        }
    }

    fn shaped(&mut self, actor: &str, at: Duration, fate: Fate) {
        if self.recent.last().is_some_and(|(_, t, _)| *t != at) {
            self.recent.clear();
        }
        self.recent.push((actor.to_string(), at, fate));
        for (f, acted) in self.faults.iter().zip(self.acted.iter_mut()) {
            if acted.is_none()
                && matches!(f.kind.as_str(), "drop" | "duplicate" | "hold" | "delay")
                && f.hits(actor)
                && at >= f.stamp.at
                && rule_fates(&f.kind).contains(&fate)
            {
                *acted = Some(at);
            }
        }
    }

    fn conn(&mut self, id: ConnId, actor: &str) -> &mut ConnMeta {
        let n = self.conns.len();
        if !self.conns.contains_key(&id) && actor == "device" {
            self.device.push(id);
        }
        self.conns.entry(id).or_insert_with(|| ConnMeta {
            ci: n,
            actor: actor.to_string(),
            version: None,
            connack: None,
            closed: None,
        })
    }

    /// Time of the last event fed.
    pub fn end(&self) -> Duration {
        self.end
    }

    /// Time of the first teardown, if there was one.
    pub fn teardown(&self) -> Option<Duration> {
        self.teardown
    }

    /// As [`Index::undisturbed`](super::index::Index::undisturbed).
    pub fn undisturbed(&self, actor: &str, from: Duration, to: Duration) -> bool {
        let acted = |f: &Fault, _: &[Fate]| {
            self.faults
                .iter()
                .position(|g| std::ptr::eq(g, f))
                .and_then(|k| self.acted[k])
        };
        let d = disturbances(
            actor,
            &self.faults,
            acted,
            &self.boards,
            &self
                .device
                .iter()
                .map(|id| self.conns.get(id).and_then(ConnMeta::accepted_at))
                .collect::<Vec<_>>(),
        );
        free_of(&d, from, to)
    }

    /// As [`Index::broker_down_between`](super::index::Index::broker_down_between).
    pub fn broker_down_between(&self, from: Duration, to: Duration) -> bool {
        self.broker
            .iter()
            .any(|(s, a)| *a != BrokerAct::Started && s.at >= from && s.at <= to)
    }
}

impl Surroundings for Context {
    fn undisturbed(&self, actor: &str, from: Duration, to: Duration) -> bool {
        Context::undisturbed(self, actor, from, to)
    }
    fn broker_down(&self, from: Duration, to: Duration) -> bool {
        self.broker_down_between(from, to)
    }
}
