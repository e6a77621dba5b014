//! The MQTT client state machine behind observers and the virtual device,
//! sans-IO: it takes packets and clock ticks, and returns packets to send and
//! events for the application. The knobs exist so a scenario can make a
//! client misbehave on purpose (withhold acks, choose packet ids, skip DUP).
//!
//! QoS 2 reception follows method B of MQTT-4.3.3: the message is delivered
//! when the PUBLISH first arrives and its packet id is remembered until
//! PUBREL, so a retransmission with DUP is acknowledged but not delivered
//! again.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use crate::history::Delivery;
use crate::mqtt::props;
use crate::mqtt::{
    Ack, Connect, Packet, Properties, Publish, QoS, Subscribe, SubscribeFilter, Unsubscribe,
    Version, Will,
};

/// How a client connects; mirrors the agent protocol's `connect` command.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectOptions {
    pub client_id: String,
    pub clean_session: bool,
    pub keepalive: u16,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub version: Version,
    /// 5.0 CONNECT properties (session expiry, receive maximum, ...).
    pub properties: Properties,
}

impl ConnectOptions {
    pub fn new(client_id: &str) -> ConnectOptions {
        ConnectOptions {
            client_id: client_id.to_string(),
            clean_session: true,
            keepalive: 60,
            will: None,
            username: None,
            password: None,
            version: Version::V311,
            properties: Properties::default(),
        }
    }
}

/// Which acknowledgements the client sends for messages it receives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckPolicy {
    /// Never send PUBACK (QoS 1 stays unacknowledged).
    pub withhold_puback: bool,
    /// Never send PUBREC (QoS 2 stays at the first step).
    pub withhold_pubrec: bool,
    /// Never send PUBCOMP.
    pub withhold_pubcomp: bool,
    /// Never send PUBREL for our own QoS 2 publishes.
    pub withhold_pubrel: bool,
}

/// What the application learns from the session.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    Connected {
        session_present: bool,
    },
    Refused {
        code: u8,
    },
    Delivered(Delivery),
    PubAck(u16),
    PubRec(u16),
    PubComp(u16),
    SubAck {
        pid: u16,
        codes: Vec<u8>,
    },
    UnsubAck(u16),
    /// A 5.0 DISCONNECT from the broker, with its reason code.
    ServerDisconnect {
        code: u8,
    },
    /// The broker broke a rule the session noticed (e.g. an ack for an
    /// unknown packet id). Recorded, never fatal: checkers judge.
    Anomaly(String),
    /// The network connection ended (reported by the I/O shell).
    Disconnected {
        reason: String,
    },
    /// The device (re)started and is ready for commands.
    Ready {
        info: String,
    },
    /// A connection attempt asked for by a command has started; events
    /// before it belong to the previous connection.
    Connecting,
}

/// An outgoing QoS 1/2 message not yet fully acknowledged.
#[derive(Clone, Debug)]
struct Outgoing {
    publish: Publish,
    /// PUBREC received: only PUBREL/PUBCOMP remain.
    released: bool,
    /// Sent on the current connection (counts against the send quota).
    on_wire: bool,
    /// Built by hand, rules ignored on purpose (`raw = true`).
    raw: bool,
    /// Held back by the broker's Receive Maximum, never sent: it goes out
    /// as new, not as a DUP resend.
    held: bool,
}

/// One thing to write: a packet the codec encodes, or bytes built by hand.
#[derive(Clone, Debug, PartialEq)]
pub enum Wire {
    Packet(Packet),
    Raw(Bytes),
}

#[derive(Debug)]
pub struct Session {
    opts: ConnectOptions,
    pub acks: AckPolicy,
    /// Send PINGREQ when idle; off makes a silent client.
    pub pings: bool,
    connected: bool,
    next_pid: u16,
    outgoing: BTreeMap<u16, Outgoing>,
    /// Order in which outgoing messages were first sent, for resending in
    /// the original order after a reconnect [MQTT-4.6.0-1].
    order: VecDeque<u16>,
    /// QoS 2 packet ids received and acknowledged with PUBREC, awaiting PUBREL.
    awaiting_rel: BTreeSet<u16>,
    /// Subscribe/unsubscribe ids in flight, so they are not reused.
    pending_sub: BTreeSet<u16>,
    last_sent: Duration,
    ping_outstanding: Option<Duration>,
    out: Vec<Wire>,
    events: Vec<ClientEvent>,
    /// 5.0 limits the broker set in its CONNACK, for this connection.
    limits: ServerLimits,
    /// Topic aliases this client set on the current connection.
    out_aliases: HashMap<u16, String>,
    /// Topic aliases the broker set on the current connection.
    in_aliases: HashMap<u16, String>,
}

/// What a 5.0 CONNACK told the client (defaults: the spec's).
#[derive(Clone, Debug)]
pub struct ServerLimits {
    pub keep_alive: Option<u16>,
    /// Receive Maximum: unacknowledged QoS 1/2 PUBLISHes allowed [MQTT-3.3.4-7].
    pub receive_maximum: u16,
    pub topic_alias_maximum: u16,
    pub maximum_packet_size: Option<u32>,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            keep_alive: None,
            receive_maximum: 65535,
            topic_alias_maximum: 0,
            maximum_packet_size: None,
        }
    }
}

impl Session {
    pub fn new(opts: ConnectOptions) -> Session {
        Session {
            opts,
            acks: AckPolicy::default(),
            pings: true,
            connected: false,
            next_pid: 1,
            outgoing: BTreeMap::new(),
            order: VecDeque::new(),
            awaiting_rel: BTreeSet::new(),
            pending_sub: BTreeSet::new(),
            last_sent: Duration::ZERO,
            ping_outstanding: None,
            out: Vec::new(),
            events: Vec::new(),
            limits: ServerLimits::default(),
            out_aliases: HashMap::new(),
            in_aliases: HashMap::new(),
        }
    }

    /// The limits of the current connection's CONNACK.
    pub fn limits(&self) -> &ServerLimits {
        &self.limits
    }

    /// Keep alive in force: the broker's Server Keep Alive if it sent one
    /// [MQTT-3.2.2-21], else our own.
    fn keepalive(&self) -> u16 {
        self.limits.keep_alive.unwrap_or(self.opts.keepalive)
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    pub fn set_options(&mut self, opts: ConnectOptions) {
        self.opts = opts;
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn version(&self) -> Version {
        self.opts.version
    }

    /// Packets to write, in order (hand-built frames left out: tests).
    pub fn take_output(&mut self) -> Vec<Packet> {
        std::mem::take(&mut self.out)
            .into_iter()
            .filter_map(|w| match w {
                Wire::Packet(p) => Some(p),
                Wire::Raw(_) => None,
            })
            .collect()
    }

    /// What to write, in order.
    pub fn take_wire(&mut self) -> Vec<Wire> {
        std::mem::take(&mut self.out)
    }

    pub fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn inflight_out(&self) -> usize {
        self.outgoing.len()
    }

    fn send(&mut self, p: Packet, now: Duration) {
        self.last_sent = now;
        self.out.push(Wire::Packet(p));
    }

    /// Puts one of our PUBLISHes on the wire: hand-built when raw, else with
    /// this connection's topic alias applied (the topic left out once the
    /// alias is set on this connection [MQTT-3.3.2-7]).
    fn send_publish(&mut self, mut p: Publish, raw: bool, now: Duration) {
        self.last_sent = now;
        if raw {
            let frame = props::raw_publish(
                p.dup,
                p.qos.as_u8(),
                p.retain,
                &p.topic,
                p.pid,
                &p.properties,
                &p.payload,
            );
            self.out.push(Wire::Raw(frame));
            return;
        }
        if let Some(a) = props::num(&p.properties, props::TOPIC_ALIAS) {
            let a = a as u16;
            if self.out_aliases.get(&a) == Some(&p.topic) {
                p.topic.clear();
            } else {
                self.out_aliases.insert(a, p.topic.clone());
            }
        }
        self.out.push(Wire::Packet(Packet::Publish(p)));
    }

    /// QoS 1/2 PUBLISHes on the wire and not yet acknowledged.
    fn in_flight_on_wire(&self) -> usize {
        self.outgoing.values().filter(|o| o.on_wire).count()
    }

    /// Sends queued QoS 1/2 messages, in order, while the broker's Receive
    /// Maximum allows [MQTT-4.9.0-2].
    fn pump(&mut self, now: Duration) {
        if !self.connected {
            return;
        }
        let order: Vec<u16> = self.order.iter().copied().collect();
        for pid in order {
            if self.in_flight_on_wire() >= self.limits.receive_maximum as usize {
                return;
            }
            let Some(o) = self.outgoing.get_mut(&pid) else {
                continue;
            };
            if o.on_wire {
                continue;
            }
            o.on_wire = true;
            o.held = false;
            let (p, raw) = (o.publish.clone(), o.raw);
            self.send_publish(p, raw, now);
        }
    }

    /// A new network connection is open: send CONNECT. A clean session drops
    /// all inflight state first, as the broker will [MQTT-3.1.2-6].
    pub fn on_open(&mut self, now: Duration) {
        if self.opts.clean_session {
            self.outgoing.clear();
            self.order.clear();
            self.awaiting_rel.clear();
        }
        self.pending_sub.clear();
        self.ping_outstanding = None;
        self.limits = ServerLimits::default();
        self.out_aliases.clear();
        self.in_aliases.clear();
        for o in self.outgoing.values_mut() {
            o.on_wire = false;
        }
        let c = Connect {
            version: self.opts.version,
            client_id: self.opts.client_id.clone(),
            clean_start: self.opts.clean_session,
            keep_alive: self.opts.keepalive,
            will: self.opts.will.clone(),
            username: self.opts.username.clone(),
            password: self.opts.password.clone(),
            properties: self.opts.properties.clone(),
        };
        self.send(Packet::Connect(c), now);
    }

    /// The network connection is gone (for whatever reason).
    pub fn on_close(&mut self) {
        self.connected = false;
        self.ping_outstanding = None;
    }

    fn alloc_pid(&mut self) -> u16 {
        for _ in 0..u16::MAX {
            let pid = self.next_pid;
            self.next_pid = if self.next_pid == u16::MAX {
                1
            } else {
                self.next_pid + 1
            };
            if !self.outgoing.contains_key(&pid) && !self.pending_sub.contains(&pid) {
                return pid;
            }
        }
        // 65535 messages in flight: reuse is the only option left; the
        // protocol checker will flag it, which is the honest outcome.
        self.next_pid
    }

    /// Publishes a message. `pid` forces a packet id (even one in flight, to
    /// provoke a broker). Returns the packet id used (0 for QoS 0).
    pub fn publish(
        &mut self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        pid: Option<u16>,
        now: Duration,
    ) -> u16 {
        self.publish_with(
            topic,
            payload,
            qos,
            retain,
            pid,
            Properties::default(),
            false,
            now,
        )
    }

    /// [`Session::publish`] with 5.0 properties; `raw` sends them exactly as
    /// given, rules ignored (to provoke the broker).
    #[allow(clippy::too_many_arguments)]
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        pid: Option<u16>,
        properties: Properties,
        raw: bool,
        now: Duration,
    ) -> u16 {
        let pid = match qos {
            QoS::AtMostOnce => None,
            _ => Some(pid.unwrap_or_else(|| self.alloc_pid())),
        };
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: topic.to_string(),
            pid,
            payload,
            properties,
        };
        if let Some(id) = pid {
            self.order.retain(|p| *p != id);
            self.order.push_back(id);
            self.outgoing.insert(
                id,
                Outgoing {
                    publish,
                    released: false,
                    on_wire: false,
                    raw,
                    held: false,
                },
            );
            self.pump(now);
            if self.connected {
                if let Some(o) = self.outgoing.get_mut(&id) {
                    o.held = !o.on_wire;
                }
            }
        } else if self.connected {
            self.send_publish(publish, raw, now);
        }
        pid.unwrap_or(0)
    }

    pub fn subscribe(&mut self, filters: &[(String, QoS)], now: Duration) -> u16 {
        let filters = filters
            .iter()
            .map(|(f, q)| SubscribeFilter {
                filter: f.clone(),
                qos: *q,
                options: 0,
            })
            .collect();
        self.subscribe_with(filters, Properties::default(), now)
    }

    /// SUBSCRIBE with 5.0 subscription options and properties.
    pub fn subscribe_with(
        &mut self,
        filters: Vec<SubscribeFilter>,
        properties: Properties,
        now: Duration,
    ) -> u16 {
        let pid = self.alloc_pid();
        self.pending_sub.insert(pid);
        self.send(
            Packet::Subscribe(Subscribe {
                pid,
                filters,
                properties,
            }),
            now,
        );
        pid
    }

    pub fn unsubscribe(&mut self, filters: &[String], now: Duration) -> u16 {
        let pid = self.alloc_pid();
        self.pending_sub.insert(pid);
        self.send(
            Packet::Unsubscribe(Unsubscribe {
                pid,
                filters: filters.to_vec(),
                properties: Properties::default(),
            }),
            now,
        );
        pid
    }

    pub fn disconnect(&mut self, now: Duration) {
        self.disconnect_with(0, Properties::default(), now);
    }

    /// DISCONNECT with a 5.0 reason code and properties (e.g. 0x04: publish
    /// the will anyway; a new session expiry).
    pub fn disconnect_with(&mut self, code: u8, properties: Properties, now: Duration) {
        self.send(
            Packet::Disconnect(crate::mqtt::Disconnect { code, properties }),
            now,
        );
        self.connected = false;
    }

    /// Sends PUBREL for a QoS 2 message whose PUBREL was withheld.
    pub fn release(&mut self, pid: u16, now: Duration) {
        if self.outgoing.get(&pid).is_some_and(|o| o.released) {
            self.send(Packet::PubRel(Ack::new(pid)), now);
        }
    }

    /// Time passes: keepalive pings [MQTT-3.1.2-23].
    pub fn tick(&mut self, now: Duration) {
        if !self.connected || self.keepalive() == 0 || !self.pings {
            return;
        }
        let ka = Duration::from_secs(self.keepalive() as u64);
        if self.ping_outstanding.is_none() && now.saturating_sub(self.last_sent) >= ka {
            self.ping_outstanding = Some(now);
            self.send(Packet::PingReq, now);
        }
    }

    /// When the next tick matters, so the shell can sleep until then.
    pub fn next_tick(&self) -> Option<Duration> {
        if !self.connected || self.keepalive() == 0 || !self.pings {
            return None;
        }
        Some(self.last_sent + Duration::from_secs(self.keepalive() as u64))
    }

    /// A PINGREQ got no answer within a keepalive: the shell should drop the
    /// connection, as the spec allows a client to [MQTT-3.1.2-24 analogue].
    pub fn ping_overdue(&self, now: Duration) -> bool {
        self.ping_outstanding.is_some_and(|t| {
            now.saturating_sub(t) >= Duration::from_secs(self.keepalive().max(1) as u64)
        })
    }

    pub fn on_packet(&mut self, packet: Packet, now: Duration) {
        match packet {
            Packet::ConnAck(ack) => {
                if ack.code != 0 {
                    self.events.push(ClientEvent::Refused { code: ack.code });
                    return;
                }
                self.connected = true;
                let p = &ack.properties;
                self.limits = ServerLimits {
                    keep_alive: props::num(p, props::SERVER_KEEP_ALIVE).map(|k| k as u16),
                    receive_maximum: props::num(p, props::RECEIVE_MAXIMUM)
                        .map(|r| r as u16)
                        .unwrap_or(65535),
                    topic_alias_maximum: props::num(p, props::TOPIC_ALIAS_MAXIMUM).unwrap_or(0)
                        as u16,
                    maximum_packet_size: props::num(p, props::MAXIMUM_PACKET_SIZE),
                };
                if !ack.session_present && !self.opts.clean_session {
                    // The broker lost our session: what we had in flight is
                    // still ours to deliver, so it is resent as new.
                }
                self.events.push(ClientEvent::Connected {
                    session_present: ack.session_present,
                });
                self.resend_inflight(now);
            }
            Packet::Publish(p) => self.on_publish(p, now),
            Packet::PubAck(a) => {
                if self
                    .outgoing
                    .get(&a.pid)
                    .is_some_and(|o| o.publish.qos == QoS::AtLeastOnce)
                {
                    self.forget(a.pid);
                    self.events.push(ClientEvent::PubAck(a.pid));
                    self.pump(now);
                } else {
                    self.events.push(ClientEvent::Anomaly(format!(
                        "PUBACK for unknown pid {}",
                        a.pid
                    )));
                }
            }
            Packet::PubRec(a) if a.code >= 0x80 => {
                // A refusal ends the exchange: no PUBREL, never resent
                // [MQTT-4.4.0-2], [MQTT-4.3.3-4].
                if self.outgoing.contains_key(&a.pid) {
                    self.forget(a.pid);
                }
                self.events.push(ClientEvent::PubRec(a.pid));
                self.pump(now);
            }
            Packet::PubRec(a) => match self.outgoing.get_mut(&a.pid) {
                Some(o) if o.publish.qos == QoS::ExactlyOnce => {
                    o.released = true;
                    self.events.push(ClientEvent::PubRec(a.pid));
                    if !self.acks.withhold_pubrel {
                        self.send(Packet::PubRel(Ack::new(a.pid)), now);
                    }
                }
                _ => {
                    self.events.push(ClientEvent::Anomaly(format!(
                        "PUBREC for unknown pid {}",
                        a.pid
                    )));
                }
            },
            Packet::PubComp(a) => {
                if self.outgoing.get(&a.pid).is_some_and(|o| o.released) {
                    self.forget(a.pid);
                    self.events.push(ClientEvent::PubComp(a.pid));
                    self.pump(now);
                } else {
                    self.events.push(ClientEvent::Anomaly(format!(
                        "PUBCOMP for pid {} that was not released",
                        a.pid
                    )));
                }
            }
            Packet::PubRel(a) => {
                // Answer even for an unknown pid: the broker may be retrying
                // a release we already completed before a reconnect.
                self.awaiting_rel.remove(&a.pid);
                if !self.acks.withhold_pubcomp {
                    self.send(Packet::PubComp(Ack::new(a.pid)), now);
                }
            }
            Packet::SubAck(s) => {
                self.pending_sub.remove(&s.pid);
                self.events.push(ClientEvent::SubAck {
                    pid: s.pid,
                    codes: s.codes,
                });
            }
            Packet::UnsubAck(u) => {
                self.pending_sub.remove(&u.pid);
                self.events.push(ClientEvent::UnsubAck(u.pid));
            }
            Packet::PingResp => self.ping_outstanding = None,
            Packet::Disconnect(d) if self.opts.version == Version::V5 => {
                // The close follows; until then the connection counts as up,
                // so its end is reported as a loss, not a failed connect.
                self.events
                    .push(ClientEvent::ServerDisconnect { code: d.code });
            }
            other => self.events.push(ClientEvent::Anomaly(format!(
                "unexpected {} from the broker",
                other.packet_type()
            ))),
        }
    }

    fn forget(&mut self, pid: u16) {
        self.outgoing.remove(&pid);
        self.order.retain(|p| *p != pid);
    }

    /// After CONNACK: PUBRELs and unacknowledged PUBLISHes again, in their
    /// original order [MQTT-4.6.0-1], PUBLISHes within the broker's Receive
    /// Maximum, which counts them like new ones [MQTT-4.9.0-1]; messages
    /// never sent go out as new.
    fn resend_inflight(&mut self, now: Duration) {
        let order: Vec<u16> = self.order.iter().copied().collect();
        for pid in order {
            let Some(o) = self.outgoing.get(&pid).cloned() else {
                continue;
            };
            if o.released {
                self.outgoing.get_mut(&pid).expect("present").on_wire = true;
                if !self.acks.withhold_pubrel {
                    self.send(Packet::PubRel(Ack::new(pid)), now);
                }
            } else if self.in_flight_on_wire() < self.limits.receive_maximum as usize {
                let entry = self.outgoing.get_mut(&pid).expect("present");
                entry.on_wire = true;
                entry.publish.dup = !entry.held;
                entry.held = false;
                let p = entry.publish.clone();
                self.send_publish(p, o.raw, now);
            }
        }
    }

    /// The broker's topic alias, resolved through this connection's map
    /// [MQTT-3.3.2-7]; `Err` when the PUBLISH cannot be understood.
    fn resolve_alias(&mut self, p: &mut Publish) -> Result<(), String> {
        let Some(a) = props::num(&p.properties, props::TOPIC_ALIAS) else {
            return Ok(());
        };
        let a = a as u16;
        let max = props::num(&self.opts.properties, props::TOPIC_ALIAS_MAXIMUM).unwrap_or(0);
        if a == 0 || a as u32 > max {
            return Err(format!(
                "topic alias {a} from the broker, above our Topic Alias Maximum {max} [MQTT-3.3.2-11]"
            ));
        }
        if p.topic.is_empty() {
            match self.in_aliases.get(&a) {
                Some(t) => p.topic = t.clone(),
                None => {
                    return Err(format!(
                        "topic alias {a} with no topic, not set on this connection [MQTT-3.3.2-7]"
                    ))
                }
            }
        } else {
            self.in_aliases.insert(a, p.topic.clone());
        }
        p.properties.0.retain(|x| x.id != props::TOPIC_ALIAS);
        Ok(())
    }

    fn on_publish(&mut self, mut p: Publish, now: Duration) {
        if let Err(why) = self.resolve_alias(&mut p) {
            // A Protocol Error: end the connection with 0x94 (Topic Alias
            // invalid) rather than guess the topic.
            self.events.push(ClientEvent::Anomaly(why));
            self.disconnect_with(0x94, Properties::default(), now);
            return;
        }
        let delivery = Delivery {
            topic: p.topic.clone(),
            payload: p.payload.clone(),
            qos: p.qos,
            retain: p.retain,
            dup: p.dup,
            properties: p.properties.clone(),
        };
        match (p.qos, p.pid) {
            (QoS::AtMostOnce, _) => self.events.push(ClientEvent::Delivered(delivery)),
            (QoS::AtLeastOnce, Some(pid)) => {
                self.events.push(ClientEvent::Delivered(delivery));
                if !self.acks.withhold_puback {
                    self.send(Packet::PubAck(Ack::new(pid)), now);
                }
            }
            (QoS::ExactlyOnce, Some(pid)) => {
                if self.awaiting_rel.insert(pid) {
                    self.events.push(ClientEvent::Delivered(delivery));
                }
                if !self.acks.withhold_pubrec {
                    self.send(Packet::PubRec(Ack::new(pid)), now);
                }
            }
            _ => self.events.push(ClientEvent::Anomaly(format!(
                "QoS {} PUBLISH without a packet id",
                p.qos.as_u8()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{ConnAck, Properties};

    fn t(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn connack(sp: bool) -> Packet {
        Packet::ConnAck(ConnAck {
            session_present: sp,
            code: 0,
            properties: Properties::default(),
        })
    }

    fn publish(pid: u16, qos: QoS, dup: bool, payload: &'static str) -> Packet {
        Packet::Publish(Publish {
            dup,
            qos,
            retain: false,
            topic: "t".into(),
            pid: Some(pid),
            payload: Bytes::from_static(payload.as_bytes()),
            properties: Properties::default(),
        })
    }

    fn connected(clean: bool) -> Session {
        let mut opts = ConnectOptions::new("c");
        opts.clean_session = clean;
        let mut s = Session::new(opts);
        s.on_open(t(0));
        s.on_packet(connack(false), t(1));
        s.take_output();
        s.take_events();
        s
    }

    #[test]
    fn qos2_retransmission_is_acknowledged_but_delivered_once() {
        let mut s = connected(true);
        s.on_packet(publish(7, QoS::ExactlyOnce, false, "a"), t(2));
        s.on_packet(publish(7, QoS::ExactlyOnce, true, "a"), t(3));
        let delivered = s
            .take_events()
            .into_iter()
            .filter(|e| matches!(e, ClientEvent::Delivered(_)))
            .count();
        assert_eq!(delivered, 1);
        assert_eq!(
            s.take_output(),
            vec![Packet::PubRec(Ack::new(7)), Packet::PubRec(Ack::new(7))]
        );
        s.on_packet(Packet::PubRel(Ack::new(7)), t(4));
        assert_eq!(s.take_output(), vec![Packet::PubComp(Ack::new(7))]);
        // After PUBCOMP the id is free: the same id is a new message.
        s.on_packet(publish(7, QoS::ExactlyOnce, false, "b"), t(5));
        assert!(matches!(s.take_events()[..], [ClientEvent::Delivered(_)]));
    }

    #[test]
    fn reconnect_resends_publish_with_dup_and_pubrel_in_order() {
        let mut s = connected(false);
        let a = s.publish(
            "t",
            Bytes::from_static(b"a"),
            QoS::ExactlyOnce,
            false,
            None,
            t(2),
        );
        let b = s.publish(
            "t",
            Bytes::from_static(b"b"),
            QoS::ExactlyOnce,
            false,
            None,
            t(3),
        );
        s.on_packet(Packet::PubRec(Ack::new(a)), t(4));
        s.take_output();
        s.on_close();
        s.on_open(t(10));
        s.on_packet(connack(true), t(11));
        let out = s.take_output();
        assert!(matches!(out[0], Packet::Connect(_)));
        assert_eq!(out[1], Packet::PubRel(Ack::new(a)));
        match &out[2] {
            Packet::Publish(p) => {
                assert!(p.dup);
                assert_eq!(p.pid, Some(b));
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    #[test]
    fn clean_session_forgets_inflight() {
        let mut s = connected(true);
        s.publish("t", Bytes::new(), QoS::AtLeastOnce, false, None, t(2));
        s.take_output();
        s.on_close();
        s.on_open(t(3));
        s.on_packet(connack(false), t(4));
        let out = s.take_output();
        assert_eq!(out.len(), 1, "only CONNECT, nothing resent: {out:?}");
    }

    #[test]
    fn withheld_acks_are_not_sent() {
        let mut s = connected(true);
        s.acks.withhold_puback = true;
        s.acks.withhold_pubrec = true;
        s.on_packet(publish(1, QoS::AtLeastOnce, false, "a"), t(2));
        s.on_packet(publish(2, QoS::ExactlyOnce, false, "b"), t(3));
        assert!(s.take_output().is_empty());
    }

    #[test]
    fn pings_when_idle_for_a_keepalive() {
        let mut opts = ConnectOptions::new("c");
        opts.keepalive = 2;
        let mut s = Session::new(opts);
        s.on_open(t(0));
        s.on_packet(connack(false), t(5));
        s.take_output();
        s.tick(t(1500));
        assert!(s.take_output().is_empty());
        s.tick(t(2000));
        assert_eq!(s.take_output(), vec![Packet::PingReq]);
        assert!(!s.ping_overdue(t(3000)));
        assert!(s.ping_overdue(t(4000)));
    }

    #[test]
    fn forced_pid_can_collide_on_purpose() {
        let mut s = connected(true);
        let a = s.publish("t", Bytes::new(), QoS::AtLeastOnce, false, Some(9), t(2));
        let b = s.publish("t", Bytes::new(), QoS::AtLeastOnce, false, Some(9), t(3));
        assert_eq!((a, b), (9, 9));
    }
}
