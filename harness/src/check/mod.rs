//! Checkers: pure functions from a finished [`History`] to a [`Verdict`].
//!
//! A verdict is the product of a run, so every checker here follows two
//! rules. It must be able to fail: each rule is written down in its module's
//! doc and tested with a history that breaks it. And it must not cry wolf:
//! where the MQTT specification leaves a broker or client freedom, or where
//! the history cannot show what happened (a subscriber behind a fault, a
//! message still in flight when the run ended), the checker says so in a
//! note instead of reporting a violation.
//!
//! Scenario files ask for checkers with `[[invariant]]` tables, parsed into
//! [`InvariantSpec`]; [`always`] lists the checkers that run in every
//! scenario. Durations in those tables are written as in the rest of the
//! scenario format (`"500ms"`, `"2s"`) or as a number of seconds.
//!
//! How the checkers read the log (see [`index`]): a packet event is one send
//! by its sender; its [`Fate`](crate::history::Fate) says whether the peer
//! got it (`Dropped` and `Held` mean not yet, a later `Released` event is the
//! peer receiving a held packet, not a second send).

use std::time::Duration;

use serde::Deserialize;

use crate::history::{Event, History};

pub mod allow_list;
pub mod backoff;
pub mod codec;
pub mod connections;
pub mod coverage;
pub mod declared;
pub mod delivery;
pub mod exactly_once;
pub mod index;
pub mod keepalive;
pub mod live;
pub(crate) mod owed;
pub mod packets;
pub mod protocol;
pub mod resubscribe;
pub mod retained;
pub mod sequence;
pub mod session;
pub mod shared;
pub mod v5_acks;
pub mod v5_codec;
pub mod v5_connection;
pub mod v5_forwarding;
pub mod v5_limits;
pub mod v5_packets;
pub mod v5_retain;
pub mod v5_session;
#[cfg(test)]
pub(crate) mod v5_testkit;
pub mod watchdog;
pub mod will;

/// One broken rule, with the events that show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// A specification rule (`MQTT-4.3.3-2`) or a harness rule name
    /// (`qos2-lost`).
    pub rule: String,
    /// What happened: which actor, topic and packet id, expected against seen.
    pub message: String,
    /// Sequence numbers of the offending events, in log order.
    pub events: Vec<u64>,
}

impl Violation {
    pub fn new(
        rule: impl Into<String>,
        message: impl Into<String>,
        mut events: Vec<u64>,
    ) -> Violation {
        events.sort_unstable();
        events.dedup();
        Violation {
            rule: rule.into(),
            message: message.into(),
            events,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.rule, self.message)?;
        if !self.events.is_empty() {
            let seqs: Vec<String> = self.events.iter().map(|s| format!("#{s}")).collect();
            write!(f, " (events {})", seqs.join(", "))?;
        }
        Ok(())
    }
}

/// What one checker concluded about one history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub checker: String,
    pub violations: Vec<Violation>,
    /// What was checked and what could not be decided, for the report.
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn new(checker: impl Into<String>) -> Verdict {
        Verdict {
            checker: checker.into(),
            ..Verdict::default()
        }
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn fail(&mut self, rule: impl Into<String>, message: impl Into<String>, events: Vec<u64>) {
        self.violations.push(Violation::new(rule, message, events));
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Rules of the violations, for tests and summaries.
    pub fn rules(&self) -> Vec<&str> {
        self.violations.iter().map(|v| v.rule.as_str()).collect()
    }
}

pub trait Checker: Send + Sync {
    fn name(&self) -> &str;
    fn check(&self, history: &History) -> Verdict;
    /// The same judgement made as the events come, where this checker has
    /// one ([`Incremental`]); `None` where it only judges a whole history.
    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        None
    }
}

/// A checker that judges a log as it grows, holding only the state its
/// rules need (a bounded window where the rule allows it), so that a long
/// session (`observe`) costs as much per event at its end as at its start
/// and does not need the log kept for it. The contract, tested over the
/// recorded histories (tests/check_incremental.rs): after the events of a
/// history are fed in order, [`Incremental::verdict`] is exactly the
/// [`Checker::check`] of that history — the same violations, events and
/// notes — and it is that for every prefix of it as well.
pub trait Incremental: Send {
    /// Takes the next event of the log (in recording order).
    fn feed(&mut self, ev: &Event);
    /// The verdict over everything fed so far; its cost does not grow with
    /// the number of events fed.
    fn verdict(&self) -> Verdict;
}

/// The batch judgement of a checker whose rules are one state machine (its
/// [`Incremental`] form): the whole history fed, in order, to a fresh one.
/// Sharing the machine is what keeps the two forms from drifting apart.
pub(crate) fn judge_whole(mut live: impl Incremental, history: &History) -> Verdict {
    for ev in history.iter() {
        live.feed(ev);
    }
    live.verdict()
}

/// The `[[invariant]]` tables of a scenario file. `check` names the checker;
/// every other field is optional and has the default shown.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum InvariantSpec {
    /// Last will: published once after an abnormal end, never after DISCONNECT.
    Will {
        /// Only judge wills of this actor (default: every actor with a will).
        #[serde(default)]
        actor: Option<String>,
        /// Added to every deadline (default `1s`).
        #[serde(default = "secs1", deserialize_with = "de_duration")]
        slack: Duration,
    },
    /// QoS 2 exactly once, QoS 1 at least once, QoS 0 at most once, per
    /// subscriber and across reconnects.
    ExactlyOnce {
        /// Only messages on topics matching this filter (default: all).
        #[serde(default)]
        topic: Option<String>,
        /// Only messages from this publisher actor (default: all).
        #[serde(default)]
        publisher: Option<String>,
        /// Time a subscriber gets to receive a message (default `2s`); a
        /// message completed later than this before the run ended is in flight.
        #[serde(default = "secs2", deserialize_with = "de_duration")]
        settle: Duration,
    },
    /// Routing: every message a subscriber gets matches its filters, and
    /// every message on a subscribed topic reaches connected subscribers.
    #[serde(alias = "wildcards")]
    Delivery {
        #[serde(default)]
        topic: Option<String>,
        #[serde(default = "secs2", deserialize_with = "de_duration")]
        settle: Duration,
    },
    /// Packet-level rules for clients and the broker (packet ids, DUP, acks,
    /// resending after reconnect).
    Protocol {
        /// Actors whose own (client-side) conduct is judged; `"*"` for all
        /// (default `["*"]`). The broker's conduct towards every actor is
        /// always judged.
        #[serde(default = "all_actors")]
        clients: Vec<String>,
        /// How long a reconnected sender has to resend its unacknowledged
        /// packets before that counts as not resent (default `2s`).
        #[serde(default = "secs2", deserialize_with = "de_duration")]
        resend_within: Duration,
        /// How long a receiver has to send the PUBACK, PUBREC or PUBCOMP
        /// a PUBLISH or PUBREL it got asks for, while its connection stands
        /// (default `1s`).
        #[serde(default = "secs1", deserialize_with = "de_duration")]
        ack_within: Duration,
    },
    /// Session present flags, resumed subscriptions, offline queues.
    Session {
        /// The broker keeps persistent sessions across `restart`/`stop`
        /// (default true).
        #[serde(default = "yes")]
        restart_keeps: bool,
        /// The broker keeps persistent sessions across `kill` (default false).
        #[serde(default)]
        kill_keeps: bool,
        #[serde(default = "secs2", deserialize_with = "de_duration")]
        settle: Duration,
    },
    /// Retained messages are sent on subscribe; an empty one clears them.
    Retained {
        /// Time a subscriber gets to receive retained messages after
        /// SUBSCRIBE (default `2s`).
        #[serde(default = "secs2", deserialize_with = "de_duration")]
        within: Duration,
        /// The broker keeps retained messages across restarts and kills
        /// (default false: after one, the retained store is unknown).
        #[serde(default)]
        persistent: bool,
    },
    /// Shared subscriptions: one member of each group gets each message.
    Shared {
        /// Only this share group (default: all groups).
        #[serde(default)]
        group: Option<String>,
        #[serde(default = "secs2", deserialize_with = "de_duration")]
        settle: Duration,
        /// When a group got at least this many messages, every member that
        /// was subscribed throughout must have got at least one (off by default).
        #[serde(default)]
        balance_after: Option<u32>,
    },
    /// Keep alive: the broker drops silent clients in time, clients ping.
    Keepalive {
        #[serde(default)]
        actor: Option<String>,
        #[serde(default = "secs1", deserialize_with = "de_duration")]
        slack: Duration,
        /// Judge the clients' ping cadence (default true).
        #[serde(default = "yes")]
        client: bool,
        /// Judge the broker's timeout (default true).
        #[serde(default = "yes")]
        broker: bool,
    },
    /// Reconnect backoff: a client does not hammer the broker with
    /// connection attempts.
    Backoff {
        /// The actor judged (default `device`).
        #[serde(default = "device")]
        actor: String,
        /// Most connection attempts allowed in any one-second window (default 5).
        #[serde(default = "five")]
        max_per_second: u32,
    },
    /// Numbered readings (a counter in the payload): no loss or repeat
    /// beyond what the QoS used allows. Give `json` or `regex`.
    Sequence {
        /// The topics (a filter; `{client_id}` allowed).
        topic: String,
        /// A dotted path to the number in a JSON payload (`count`).
        #[serde(default)]
        json: Option<String>,
        /// A regex whose first group (else whole match) is the number.
        #[serde(default)]
        regex: Option<String>,
        /// The publisher judged (default `device`).
        #[serde(default = "device")]
        actor: String,
        /// The QoS the device claims to publish at (default: as published).
        #[serde(default)]
        qos: Option<u8>,
        /// Payloads without a number (an announcement such as `online`)
        /// are skipped rather than `sequence-unreadable` (default false).
        #[serde(default)]
        skip_unnumbered: bool,
    },
    /// After a reconnect without a session, the client subscribes again.
    Resubscribe {
        #[serde(default = "device")]
        actor: String,
        /// Time from CONNACK to the SUBSCRIBE (default `2s`).
        #[serde(default = "secs2", deserialize_with = "de_duration")]
        within: Duration,
    },
    /// 5.0 Receive Maximum kept both ways (runs in every scenario).
    V5Flow {
        #[serde(default = "device_only")]
        clients: Vec<String>,
    },
    /// 5.0 Maximum Packet Size kept both ways (runs in every scenario).
    V5PacketSize {
        #[serde(default = "device_only")]
        clients: Vec<String>,
    },
    /// 5.0 topic aliases: limits, no mapping across connections.
    V5TopicAlias {
        #[serde(default = "device_only")]
        clients: Vec<String>,
    },
    /// 5.0 forwarding: properties unaltered, expiry, subscription ids, no
    /// local, retain as published.
    V5Forwarding {
        #[serde(default = "device_only")]
        clients: Vec<String>,
        #[serde(default = "half_sec", deserialize_with = "de_duration")]
        slack: Duration,
    },
    /// 5.0 packet order: CONNECT/CONNACK first, acks for what was sent,
    /// SUBACK/UNSUBACK for every request (runs in every scenario).
    V5Packets {
        #[serde(default = "device_only")]
        clients: Vec<String>,
        #[serde(default = "secs1", deserialize_with = "de_duration")]
        slack: Duration,
    },
    /// The broker's side of 5.0 QoS exchanges: acks owed, DUP on resends,
    /// delivered QoS within the grant (runs in every scenario).
    V5Acks {
        #[serde(default = "secs1", deserialize_with = "de_duration")]
        slack: Duration,
    },
    /// 5.0 Retain Handling 0/1/2 on subscribe.
    V5RetainHandling {
        #[serde(default = "secs1", deserialize_with = "de_duration")]
        within: Duration,
    },
    /// 5.0 CONNACK promises, broker DISCONNECT, server keep alive.
    V5Connection {
        #[serde(default = "device_only")]
        clients: Vec<String>,
        #[serde(default = "secs1", deserialize_with = "de_duration")]
        slack: Duration,
    },
    /// 5.0 session expiry: kept before, discarded after.
    V5Session {
        #[serde(default = "secs1", deserialize_with = "de_duration")]
        slack: Duration,
        #[serde(default = "yes")]
        restart_keeps: bool,
        #[serde(default)]
        kill_keeps: bool,
    },
    /// 5.0 will delay: at min(delay, session expiry), none when back sooner.
    V5WillDelay {
        #[serde(default = "secs1", deserialize_with = "de_duration")]
        slack: Duration,
    },
    /// The device's CONNECTs carry the keep alive and will its device
    /// description declares (added by the generic device suite).
    Declared {
        #[serde(default)]
        keepalive: Option<u16>,
        #[serde(default)]
        will_topic: Option<String>,
        #[serde(default)]
        will_payload: Option<String>,
    },
    /// The board was never reset by a watchdog (soft or hardware): a
    /// firmware that stopped yielding (`watchdog-reset`).
    NoWatchdogReset {},
    /// The actor publishes (and sets wills) only on these topic filters.
    PublishAllowed {
        #[serde(default = "device")]
        actor: String,
        /// Allowed topic filters (`{client_id}` allowed).
        topics: Vec<String>,
    },
}

impl InvariantSpec {
    /// What serde cannot check: the field at fault and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self {
            InvariantSpec::Sequence {
                topic,
                json,
                regex,
                qos,
                ..
            } => {
                crate::mqtt::topic::validate_filter(topic).map_err(|e| ("topic", e.to_string()))?;
                match (json, regex) {
                    (Some(_), Some(_)) => {
                        return Err(("regex", "give either `json` or `regex`, not both".into()))
                    }
                    (None, None) => {
                        return Err((
                            "topic",
                            "say where the number is: `json = \"count\"` or `regex = \"count=(\\\\d+)\"`"
                                .into(),
                        ))
                    }
                    (None, Some(r)) => {
                        regex::Regex::new(r).map_err(|e| ("regex", e.to_string()))?;
                    }
                    (Some(_), None) => {}
                }
                if qos.is_some_and(|q| q > 2) {
                    return Err(("qos", "expected 0, 1 or 2".into()));
                }
            }
            InvariantSpec::PublishAllowed { topics, .. } => {
                if topics.is_empty() {
                    return Err(("topics", "list at least one topic filter".into()));
                }
                for t in topics {
                    crate::mqtt::topic::validate_filter(t)
                        .map_err(|e| ("topics", format!("`{t}`: {e}")))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn secs1() -> Duration {
    Duration::from_secs(1)
}
fn secs2() -> Duration {
    Duration::from_secs(2)
}
fn yes() -> bool {
    true
}
fn device() -> String {
    "device".to_string()
}
fn five() -> u32 {
    5
}
fn device_only() -> Vec<String> {
    vec!["device".to_string()]
}
fn half_sec() -> Duration {
    Duration::from_millis(500)
}
fn all_actors() -> Vec<String> {
    vec!["*".to_string()]
}

/// A duration as scenario files write it (`"1.5s"`, `"250ms"`, `"1m"`) or a
/// plain number of seconds.
fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }
    let secs = match Raw::deserialize(d)? {
        Raw::Secs(s) => s,
        Raw::Text(t) => crate::scenario::duration::parse(&t)
            .map_err(serde::de::Error::custom)?
            .as_secs_f64(),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(serde::de::Error::custom(format!(
            "duration of {secs}s is out of range (0 to a day)"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Builds the checker an `[[invariant]]` table asks for.
pub fn build(spec: &InvariantSpec) -> Box<dyn Checker> {
    match spec.clone() {
        InvariantSpec::Will { actor, slack } => Box::new(will::WillChecker { actor, slack }),
        InvariantSpec::ExactlyOnce {
            topic,
            publisher,
            settle,
        } => Box::new(exactly_once::ExactlyOnce {
            topic,
            publisher,
            settle,
        }),
        InvariantSpec::Delivery { topic, settle } => {
            Box::new(delivery::DeliveryChecker { topic, settle })
        }
        InvariantSpec::Protocol {
            clients,
            resend_within,
            ack_within,
        } => Box::new(protocol::ProtocolChecker {
            clients,
            resend_within,
            ack_within,
        }),
        InvariantSpec::Session {
            restart_keeps,
            kill_keeps,
            settle,
        } => Box::new(session::SessionChecker {
            restart_keeps,
            kill_keeps,
            settle,
        }),
        InvariantSpec::Retained { within, persistent } => {
            Box::new(retained::RetainedChecker { within, persistent })
        }
        InvariantSpec::Shared {
            group,
            settle,
            balance_after,
        } => Box::new(shared::SharedChecker {
            group,
            settle,
            balance_after,
        }),
        InvariantSpec::Keepalive {
            actor,
            slack,
            client,
            broker,
        } => Box::new(keepalive::KeepaliveChecker {
            actor,
            slack,
            client,
            broker,
        }),
        InvariantSpec::Backoff {
            actor,
            max_per_second,
        } => Box::new(backoff::BackoffChecker {
            actor,
            max_per_second,
        }),
        InvariantSpec::Sequence {
            topic,
            json,
            regex,
            actor,
            qos,
            skip_unnumbered,
        } => Box::new(sequence::SequenceChecker {
            actor,
            topic,
            skip_unnumbered,
            extract: match (json, regex) {
                (_, Some(r)) => sequence::Extractor::Regex(
                    // validate() has compiled it; an invalid one matches nothing.
                    regex::Regex::new(&r)
                        .unwrap_or_else(|_| regex::Regex::new("$^").expect("valid")),
                ),
                (j, None) => sequence::Extractor::Json(j.unwrap_or_default()),
            },
            qos: qos.and_then(crate::mqtt::QoS::from_u8),
        }),
        InvariantSpec::Resubscribe { actor, within } => {
            Box::new(resubscribe::ResubscribeChecker { actor, within })
        }
        InvariantSpec::V5Flow { clients } => Box::new(v5_limits::FlowChecker { clients }),
        InvariantSpec::V5PacketSize { clients } => {
            Box::new(v5_limits::PacketSizeChecker { clients })
        }
        InvariantSpec::V5TopicAlias { clients } => {
            Box::new(v5_limits::TopicAliasChecker { clients })
        }
        InvariantSpec::V5Forwarding { clients, slack } => {
            Box::new(v5_forwarding::ForwardingChecker { clients, slack })
        }
        InvariantSpec::V5Packets { clients, slack } => {
            Box::new(v5_packets::PacketsChecker { clients, slack })
        }
        InvariantSpec::V5Acks { slack } => Box::new(v5_acks::AcksChecker { slack }),
        InvariantSpec::V5RetainHandling { within } => {
            Box::new(v5_retain::RetainHandlingChecker { within })
        }
        InvariantSpec::V5Connection { clients, slack } => {
            Box::new(v5_connection::ConnectionChecker { clients, slack })
        }
        InvariantSpec::V5Session {
            slack,
            restart_keeps,
            kill_keeps,
        } => Box::new(v5_session::SessionExpiryChecker {
            slack,
            restart_keeps,
            kill_keeps,
        }),
        InvariantSpec::V5WillDelay { slack } => Box::new(v5_session::WillDelayChecker { slack }),
        InvariantSpec::PublishAllowed { actor, topics } => {
            Box::new(allow_list::AllowListChecker { actor, topics })
        }
        InvariantSpec::Declared {
            keepalive,
            will_topic,
            will_payload,
        } => Box::new(declared::DeclaredChecker {
            actor: "device".into(),
            keepalive,
            will_topic,
            will_payload,
        }),
        InvariantSpec::NoWatchdogReset {} => Box::new(watchdog::NoWatchdogResetChecker),
    }
}

/// Checkers that run in every scenario: the packet-level protocol rules,
/// judging the broker towards every actor and the device's own conduct.
/// Observers are left out of the client-side rules because scenarios make
/// them misbehave on purpose (chosen packet ids, no DUP).
pub fn always() -> Vec<Box<dyn Checker>> {
    vec![
        // Frames the codec rejects, from any actor: 3.1.1's and 5.0's.
        Box::new(codec::CodecChecker),
        Box::new(v5_codec::CodecChecker),
        Box::new(protocol::ProtocolChecker {
            clients: vec!["device".to_string()],
            resend_within: secs2(),
            ack_within: secs1(),
        }),
        // Packet order on 3.1.1 connections (v5_packets for 5.0).
        Box::new(packets::PacketsChecker {
            clients: vec!["device".to_string()],
            slack: secs1(),
        }),
        // Takeovers and the broker's closes, for every actor.
        Box::new(connections::ConnectionsChecker { slack: secs2() }),
        // The 5.0 limits and forwarding rules judge 5.0 connections only.
        Box::new(v5_limits::FlowChecker {
            clients: device_only(),
        }),
        Box::new(v5_limits::PacketSizeChecker {
            clients: device_only(),
        }),
        Box::new(v5_limits::TopicAliasChecker {
            clients: device_only(),
        }),
        Box::new(v5_forwarding::ForwardingChecker {
            clients: device_only(),
            slack: half_sec(),
        }),
        Box::new(v5_connection::ConnectionChecker {
            clients: device_only(),
            slack: secs1(),
        }),
        Box::new(v5_packets::PacketsChecker {
            clients: device_only(),
            slack: secs1(),
        }),
        Box::new(v5_acks::AcksChecker { slack: secs1() }),
    ]
}

/// `1.5s`-style formatting for messages.
pub(crate) fn fmt_d(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}
