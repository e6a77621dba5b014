//! The checked, in-memory form of a scenario: what the runner executes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use crate::client::{AckPolicy, ConnectOptions, Reconnect};
use crate::mqtt::props::Want;
use crate::mqtt::{Properties, QoS, Version};
use crate::net::NetFault;
use crate::proxy::Fault;

#[derive(Clone, Debug)]
pub struct Scenario {
    pub path: PathBuf,
    /// File stem: the scenario's id in reports and snapshot names.
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// Bound on the whole scenario, steps and checks included.
    pub timeout: Duration,
    /// Broker capabilities the scenario needs (e.g. `broker_control`).
    pub requires: Vec<String>,
    /// How the harness drives the device through the agent; `None` when
    /// there is no device or when it is [`Scenario::autonomous`].
    pub device: Option<ClientSpec>,
    /// `[device] autonomous = true`: the device runs its own firmware and
    /// its own MQTT client, with no agent; the harness only watches it.
    pub autonomous: Option<Autonomous>,
    /// Observers in the order the file names them.
    pub observers: BTreeMap<String, ClientSpec>,
    pub steps: Vec<Step>,
    pub invariants: Vec<Invariant>,
    /// `versions = ["3.1.1", "5"]`: the protocol versions this file runs
    /// as, one verdict each ([`Scenario::as_version`]); empty when the
    /// file does not say (it runs as its clients' `version`).
    pub versions: Vec<Version>,
}

/// How an actor's client connects, from `[device]` or `[observer.NAME]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSpec {
    pub connect: ConnectOptions,
    pub reconnect: Option<Reconnect>,
    pub acks: AckPolicy,
    /// Observers connect (and are connected) before the first step unless
    /// `connect = false`; the device always waits for a `connect` step.
    pub auto_connect: bool,
    /// Send PINGREQ when idle (default); `pings = false` makes a client that
    /// stays silent, to test the broker's keepalive enforcement.
    pub pings: bool,
}

/// A device that runs its own firmware (a black box): it connects, publishes
/// and reconnects as it likes. The harness learns its client id from its
/// CONNECT through the proxy (`{client_id}` in steps); steps can only break
/// its network, reset its board, act through observers and watch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Autonomous {
    /// Topic filters the device publishes on by the clock (a counter every
    /// second): left out of the normalized trace, whose other lines must
    /// not depend on how many ticks a step lasted. Judge them with checks.
    pub periodic: Vec<String>,
}

impl Scenario {
    /// The same scenario with every client speaking `v`: its id gets a
    /// `@5` suffix for 5.0 (3.1.1 keeps the plain id, and its snapshot).
    pub fn as_version(&self, v: Version) -> Scenario {
        let mut s = self.clone();
        let set = |c: &mut crate::client::ConnectOptions| {
            c.version = v;
            // 3.1.1's clean session 0 keeps the session for good; in 5.0
            // that is clean start 0 with a session that never expires.
            if v == Version::V5
                && !c.clean_session
                && crate::mqtt::props::get(&c.properties, crate::mqtt::props::SESSION_EXPIRY)
                    .is_none()
            {
                c.properties.0.push(crate::mqtt::Property {
                    id: crate::mqtt::props::SESSION_EXPIRY,
                    value: crate::mqtt::PropValue::U32(u32::MAX),
                });
            }
        };
        if let Some(d) = &mut s.device {
            set(&mut d.connect);
        }
        for o in s.observers.values_mut() {
            set(&mut o.connect);
        }
        if v == Version::V5 {
            s.id = format!("{}@5", s.id);
            s.name = format!("{} (MQTT 5)", s.name);
        }
        s.versions = vec![v];
        s
    }

    /// One scenario per version the file lists (itself when it lists none).
    pub fn per_version(&self) -> Vec<Scenario> {
        if self.versions.len() <= 1 {
            return vec![self.clone()];
        }
        self.versions.iter().map(|v| self.as_version(*v)).collect()
    }

    /// Steps on the emulated board's own network, with the line of their
    /// key: they need `--target qemu` on the owned network (`wifi` needs a
    /// radio at all, see [`crate::runner::check_target`]).
    pub fn network_steps(&self) -> impl Iterator<Item = (&Step, &NetFault, usize)> {
        self.steps.iter().filter_map(|s| match &s.action {
            Action::Network { fault, line } => Some((s, fault, *line)),
            _ => None,
        })
    }

    /// Where the scenario first needs QoS 2 of the broker, in the user's
    /// terms (`step 3 (line 20) publishes at QoS 2`): a publish or a will at
    /// QoS 2, or a step that waits for a QoS 2 message or for PUBREC,
    /// PUBREL or PUBCOMP. A subscription at QoS 2 alone needs nothing: the
    /// broker may grant less.
    pub fn needs_qos2(&self) -> Option<String> {
        let q2 = |q: &Option<QoS>| *q == Some(QoS::ExactlyOnce);
        for (name, c) in self
            .device
            .iter()
            .map(|c| ("device", c))
            .chain(self.observers.iter().map(|(n, c)| (n.as_str(), c)))
        {
            if c.connect
                .will
                .as_ref()
                .is_some_and(|w| w.qos == QoS::ExactlyOnce)
            {
                return Some(format!("{name}'s will is at QoS 2"));
            }
        }
        for s in &self.steps {
            let what = match &s.action {
                Action::Client {
                    action: ClientAction::Publish { qos, .. },
                    ..
                } if *qos == QoS::ExactlyOnce => "publishes at QoS 2",
                Action::Expect(e) => match &e.what {
                    Expect::Message { qos, .. } | Expect::Published { qos, .. } if q2(qos) => {
                        "waits for a QoS 2 message"
                    }
                    Expect::Packet {
                        packet:
                            crate::mqtt::PacketType::PubRec
                            | crate::mqtt::PacketType::PubRel
                            | crate::mqtt::PacketType::PubComp,
                        ..
                    } => "waits for a packet of QoS 2's exchange",
                    _ => continue,
                },
                _ => continue,
            };
            return Some(format!("step {} (line {}) {what}", s.index, s.line));
        }
        None
    }

    /// The scenario has a `device` actor (driven or autonomous).
    pub fn has_device(&self) -> bool {
        self.device.is_some() || self.autonomous.is_some()
    }

    /// Whether a step acts on the broker (restart, kill, pause, a network
    /// cut): such a scenario needs a broker to itself.
    pub fn acts_on_broker(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.action, Action::Broker(_)))
    }

    /// Whether a step cuts the broker off its network (`disconnect`,
    /// `reconnect`): a container broker then needs a network of its own.
    pub fn cuts_broker_network(&self) -> bool {
        self.steps.iter().any(
            |s| matches!(&s.action, Action::Broker(a) if a == "disconnect" || a == "reconnect"),
        )
    }
}

#[derive(Clone, Debug)]
pub struct Step {
    /// 1-based position in the file.
    pub index: usize,
    /// Line of the `[[step]]` header.
    pub line: usize,
    pub timeout: Duration,
    pub action: Action,
    /// The author's `note`: shown with the step's failure, to say what it
    /// means (e.g. "the device dropped the command silently").
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Client {
        actor: String,
        action: ClientAction,
    },
    Net {
        actor: String,
        fault: Fault,
    },
    /// A fault of the emulated board's own network (`ip`, `wifi`, `dns`,
    /// `dhcp` steps; docs/network.md). `line` is the line of its key, for
    /// errors found once the target is known ([`Scenario::network_steps`]).
    Network {
        fault: NetFault,
        line: usize,
    },
    Broker(String),
    Board(BoardAction),
    Wait(Duration),
    Expect(Expectation),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ClientAction {
    /// Connect with the actor's options, overridden by the step's fields.
    Connect {
        clean_session: Option<bool>,
        keepalive: Option<u16>,
        /// 5.0 CONNECT properties for this connection, replacing the actor's.
        properties: Option<Properties>,
        /// Wait for the CONNACK (default) or go on at once.
        wait: bool,
        /// Demand this session-present flag in the CONNACK.
        session_present: Option<bool>,
    },
    Subscribe {
        filter: String,
        qos: QoS,
        /// 5.0 subscription options above the QoS bits: no local (0x04),
        /// retain as published (0x08), retain handling (bits 4-5).
        options: u8,
        /// 5.0 SUBSCRIBE properties (subscription identifier, user).
        properties: Properties,
    },
    Unsubscribe {
        filter: String,
    },
    Publish {
        topic: String,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        pid: Option<u16>,
        /// Publish this many messages; `{n}` in the payload counts from 1.
        repeat: u32,
        properties: Properties,
        /// Sent as given, rules ignored: the scenario judges the reaction.
        raw: bool,
    },
    Disconnect,
    /// A 5.0 DISCONNECT with a reason code and properties.
    DisconnectWith {
        code: u8,
        properties: Properties,
    },
    Drop,
    Reboot,
    Acks(AckPolicy),
    Release(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardAction {
    /// Hardware reset (QMP system_reset, DTR/RTS): RAM is lost, flash kept.
    Reset,
    /// Power loss: the emulator is killed and booted again from its flash.
    PowerCycle,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    pub actor: String,
    pub what: Expect,
    /// How long to wait for it.
    pub within: Duration,
    /// `resend = "2s"`: while waiting, send the previous step's publish
    /// again this often (a command to a device that may be reconnecting,
    /// whose clean session would have lost it).
    pub resend: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// Messages delivered to the actor's application. `count` are awaited;
    /// unless `at_least`, the end-of-run check also demands no more than
    /// `count` (so "exactly once" is checked over the whole rest of the run).
    Message {
        topic: Option<String>,
        payload: Option<Bytes>,
        qos: Option<QoS>,
        retain: Option<bool>,
        count: u32,
        at_least: bool,
        /// 5.0 properties each counted message must carry.
        properties: Vec<(u8, Want)>,
    },
    /// No matching message during the whole `within`.
    NoMessage {
        topic: Option<String>,
        payload: Option<Bytes>,
    },
    /// A successful CONNACK on the actor's connection.
    Connected { session_present: Option<bool> },
    /// A CONNACK refusing the connection.
    Refused,
    /// The actor's connection ended; `by` = `broker` or `client` if given.
    Closed { by: Option<String> },
    /// PUBLISH packets the actor itself sent (new ones, not DUP resends) on
    /// a topic matching `topic`, at least `count` of them: what a device
    /// running its own firmware did.
    Published {
        topic: Option<String>,
        payload: Option<Bytes>,
        qos: Option<QoS>,
        count: u32,
    },
    /// A line the device printed on its UART containing `contains` (a
    /// black box's reaction that is not on the wire).
    Uart { contains: String },
    /// Board events (resets, watchdog resets) whose description starts
    /// with `event`, at least `count` of them: `"watchdog reset"` matches
    /// both `watchdog reset (soft WDT)` and `watchdog reset (hw WDT)`.
    Board { event: String, count: u32 },
    /// Packets of a type seen by the proxy on the actor's lane, for
    /// sequencing a fault right after a protocol step.
    Packet {
        packet: crate::mqtt::PacketType,
        dir: Option<crate::history::Dir>,
        count: u32,
        /// The reason (or return) code it must carry (`expect = "reason"`).
        code: Option<u8>,
        /// 5.0 properties it must carry.
        properties: Vec<(u8, Want)>,
    },
}

#[derive(Clone, Debug)]
pub struct Invariant {
    pub line: usize,
    pub spec: crate::check::InvariantSpec,
}
