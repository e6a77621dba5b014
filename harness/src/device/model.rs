//! The checked form of a device description: what a user's device claims
//! to do on the wire, as the generic suite (`scenarios/device/`) needs it.

use std::path::PathBuf;
use std::time::Duration;

use crate::mqtt::QoS;

#[derive(Clone, Debug, PartialEq)]
pub struct Description {
    pub path: PathBuf,
    /// For reports; the file stem when not given.
    pub name: String,
    /// The keep alive its CONNECT declares, in seconds, if known.
    pub keepalive: Option<u16>,
    /// The will its CONNECT carries, if known.
    pub will: Option<DeclaredWill>,
    /// The longest its connect loop waits between two attempts (its
    /// backoff's cap, or a fixed retry period): how long it may take to come
    /// back once the broker is reachable again.
    pub retry_max: Duration,
    /// Topics it publishes on, in the file's order (`{publish.N...}`).
    pub publishes: Vec<Publication>,
    /// Commands it obeys, in the file's order (`{command.N...}`).
    pub commands: Vec<Command>,
    pub limits: Limits,
}

/// One topic the device publishes on.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    /// A topic name; `{client_id}` stands for the client id of its CONNECT.
    pub topic: String,
    /// The QoS it claims for these messages.
    pub qos: QoS,
    /// Where the reading's number is, for the `sequence` check; `None`: the
    /// payloads carry no number (a status, an announcement).
    pub number: Option<Number>,
    /// Published on a clock (left out of the normalized trace).
    pub periodic: bool,
    /// Numbered readings and payloads without a number share the topic:
    /// the latter are skipped by the sequence check.
    pub announcements: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Number {
    /// A dotted path into a JSON payload, e.g. `count`.
    Json(String),
    /// A regex whose first group (else its whole match) is the number.
    Regex(String),
}

/// A command the device obeys: this payload on this topic, and how it
/// shows it did.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub topic: String,
    pub payload: String,
    /// The QoS the suite sends it at (default 1).
    pub qos: QoS,
    pub reaction: Reaction,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Reaction {
    /// It publishes on `topic` (a payload of `payload` if given).
    Publish {
        topic: String,
        payload: Option<String>,
    },
    /// It prints a UART line containing this text.
    Uart(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeclaredWill {
    pub topic: String,
    pub payload: Option<String>,
    pub qos: Option<QoS>,
    pub retain: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// The largest command payload (bytes) it claims to take.
    pub command_payload: Option<usize>,
    /// What pads a command's payload up to that size (default a space,
    /// which a text or JSON command parser is expected to ignore).
    pub fill: char,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            command_payload: None,
            fill: ' ',
        }
    }
}

impl Description {
    /// Every topic the device may publish on (filters, `{client_id}` kept):
    /// its publications, its reactions and its will.
    pub fn allowed_topics(&self) -> Vec<String> {
        let mut out: Vec<String> = self.publishes.iter().map(|p| p.topic.clone()).collect();
        for c in &self.commands {
            if let Reaction::Publish { topic, .. } = &c.reaction {
                out.push(topic.clone());
            }
        }
        if let Some(w) = &self.will {
            out.push(w.topic.clone());
        }
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|t| seen.insert(t.clone()));
        out
    }
}

impl Command {
    /// The payload padded with `fill` to `size` bytes (never shortened).
    pub fn padded(&self, size: usize, fill: char) -> String {
        let mut s = self.payload.clone();
        while s.len() + fill.len_utf8() <= size {
            s.push(fill);
        }
        s
    }
}
