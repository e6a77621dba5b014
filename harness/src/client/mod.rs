//! Harness-side MQTT clients: the observers of a scenario and the `virtual`
//! device. [`session`] is the sans-IO state machine; [`actor`] is the thin
//! tokio shell that owns the socket. Devices and observers are driven through
//! the same [`Command`] vocabulary that the firmware's agent speaks, so the
//! runner cannot tell a virtual device from an emulated board.

pub mod actor;
pub mod session;

use std::time::Duration;

use bytes::Bytes;

pub use session::{AckPolicy, ClientEvent, ConnectOptions, Session};

use crate::mqtt::{Properties, QoS, SubscribeFilter};

/// Automatic reconnection after a lost connection, with exponential backoff.
#[derive(Clone, Debug, PartialEq)]
pub struct Reconnect {
    pub initial: Duration,
    pub max: Duration,
}

/// What a scenario can ask of a device or an observer.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Connect {
        opts: ConnectOptions,
        reconnect: Option<Reconnect>,
    },
    Subscribe(Vec<(String, QoS)>),
    Unsubscribe(Vec<String>),
    Publish {
        topic: String,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        /// Force a packet id (observers only; the agent chooses its own).
        pid: Option<u16>,
        /// 5.0 properties (empty before 5.0).
        properties: Properties,
        /// Send exactly this, rules ignored, to judge the peer's reaction.
        raw: bool,
    },
    /// A 5.0 SUBSCRIBE: filters with their subscription options, and
    /// properties (subscription identifier, user properties).
    SubscribeWith {
        filters: Vec<SubscribeFilter>,
        properties: Properties,
    },
    /// A 5.0 DISCONNECT with a reason code and properties, then close.
    DisconnectWith {
        code: u8,
        properties: Properties,
    },
    /// DISCONNECT, then close; no automatic reconnection afterwards.
    Disconnect,
    /// Close the TCP connection without DISCONNECT (the client "vanishes").
    Drop,
    /// Restart the device's software; its persisted state survives.
    Reboot,
    /// Change which acknowledgements the client withholds.
    SetAcks(AckPolicy),
    /// Send a withheld PUBREL for one of our QoS 2 messages.
    Release(u16),
    /// Turn keepalive pings on or off (off: a silent client).
    SetPings(bool),
    /// Ask for the client's state; changes nothing (the agent's `status`).
    Status,
}

impl Command {
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Connect { .. } => "connect",
            Command::Subscribe(_) | Command::SubscribeWith { .. } => "subscribe",
            Command::Unsubscribe(_) => "unsubscribe",
            Command::Publish { .. } => "publish",
            Command::Disconnect | Command::DisconnectWith { .. } => "disconnect",
            Command::Drop => "drop",
            Command::Reboot => "reboot",
            Command::SetAcks(_) => "set_acks",
            Command::Release(_) => "release",
            Command::SetPings(_) => "set_pings",
            Command::Status => "status",
        }
    }
}

/// The answer to a command: the packet id it used, if any.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    pub pid: Option<u16>,
}
