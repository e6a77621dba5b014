//! The one log of a run. Every observation — a packet crossing the proxy, a
//! fault, a message an application received, a board reset, a scenario step —
//! becomes an [`Event`] with a monotonic timestamp. Checkers, the trace
//! normalizer and the reports all read this log and nothing else, so a verdict
//! can always be traced back to the events that caused it.

use std::time::Duration;

use bytes::Bytes;

use crate::mqtt::{Packet, QoS};

/// Identifies one TCP connection through the proxy, unique within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Direction of a packet on a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the client (device or observer) towards the broker.
    ToBroker,
    /// From the broker towards the client.
    ToClient,
}

impl Dir {
    pub fn arrow(self) -> &'static str {
        match self {
            Dir::ToBroker => "->",
            Dir::ToClient => "<-",
        }
    }
}

/// What the proxy did with a packet it decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Forwarded,
    /// Swallowed by a fault rule; the peer never saw it.
    Dropped,
    /// Forwarded twice by a fault rule.
    Duplicated,
    /// Held back by a fault rule until released (or the connection ended).
    Held,
    /// Forwarded after being held.
    Released,
}

/// How a proxied connection ended, as seen by the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side (FIN or RST from the client).
    ClientClosed,
    /// The broker closed its side.
    BrokerClosed,
    /// A fault reset both sides (RST).
    Severed,
    /// A fault closed both sides with FIN.
    Closed,
    /// The proxy refused the connection (a "refuse" fault was active).
    Refused,
    /// The upstream broker could not be reached.
    UpstreamUnreachable(String),
    /// The run ended with the connection still open.
    RunEnded,
}

/// A message handed to an application (the device's agent or an observer),
/// after its client's own QoS handling: this is what "delivered" means to the
/// exactly-once and loss checkers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub dup: bool,
    /// The 5.0 properties the message arrived with (topic alias removed,
    /// the topic resolved); empty before 5.0.
    pub properties: crate::mqtt::Properties,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// A scenario step started.
    Step { index: usize, summary: String },
    /// A connection from an actor was accepted by the proxy.
    ConnOpened { conn: ConnId, actor: String },
    /// A connection ended.
    ConnClosed {
        conn: ConnId,
        actor: String,
        reason: CloseReason,
    },
    /// A decoded packet on a proxied connection.
    Packet {
        conn: ConnId,
        actor: String,
        dir: Dir,
        packet: Packet,
        /// The original bytes, forwarded unchanged unless a fault said otherwise.
        raw: Bytes,
        fate: Fate,
    },
    /// Bytes that did not decode as MQTT; still forwarded as they were.
    Malformed {
        conn: ConnId,
        actor: String,
        dir: Dir,
        raw: Bytes,
        error: String,
    },
    /// A fault was applied or healed. `target` is the actor (or `*`).
    Fault { target: String, fault: String },
    /// An application-level delivery reported by an actor's client.
    Delivered { actor: String, msg: Delivery },
    /// Something an actor reported about itself (agent events, client errors).
    Actor { actor: String, what: String },
    /// A broker lifecycle action: started, restarted, killed.
    Broker { what: String },
    /// A board lifecycle action: booted, reset, power loss.
    Board { what: String },
    /// A line the device printed on its UART that is not agent protocol.
    Uart { line: String },
    /// An expectation of the scenario was met or failed.
    Expect {
        step: usize,
        ok: bool,
        detail: String,
    },
    /// The steps are over and the harness starts stopping everything: what
    /// follows is the harness's doing, not behaviour under test.
    Teardown,
    /// An Ethernet frame on the emulated board's network (the harness's
    /// own, `crate::net`), recorded when its sender sent it: from the board
    /// (`ToBroker`) or to it (`ToClient`), with what the network did to it.
    Frame {
        dir: Dir,
        data: Bytes,
        fate: FrameFate,
        /// What the frame meant to the harness (`DHCP ACK 10.0.2.15`,
        /// `DNS broker.local -> 10.0.2.100`, `RST: refused`...).
        note: Option<String>,
    },
}

/// What the harness's network did with a frame.
#[derive(Clone, Debug, PartialEq)]
pub enum FrameFate {
    Delivered,
    /// Lost; the reason names the fault (`ip loss`, `radio: weak signal`...).
    Dropped(String),
    /// Delivered twice.
    Duplicated,
    /// Delivered this much later, in order.
    Delayed(Duration),
    /// Held back this long, so that later frames overtook it.
    Reordered(Duration),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Position in the log; unique and increasing.
    pub seq: u64,
    /// Time since the run started, from a monotonic clock.
    pub at: Duration,
    pub kind: EventKind,
}

mod log;
pub mod spill;
pub use log::{History, Recorder};
