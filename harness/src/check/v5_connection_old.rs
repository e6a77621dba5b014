//! `v5_connection`: what a 5.0 CONNACK and a broker's DISCONNECT promise,
//! and whether both sides kept to it (statement ids are MQTT 5.0's).
//!
//! Broker:
//! - after a refusing CONNACK (0x80 or more) the broker closes the
//!   connection within `slack` [MQTT-3.2.2-7], sending nothing more;
//! - a client that connected with an empty client id gets an Assigned
//!   Client Identifier in the successful CONNACK [MQTT-3.2.2-16]
//!   [MQTT-3.1.3-7];
//! - clean start 1 accepted: session present 0 [MQTT-3.2.2-2], the old
//!   session discarded [MQTT-3.1.2-4];
//! - no Response Information unless the CONNECT asked for it
//!   [MQTT-3.1.2-28]; with Request Problem Information 0, no Reason String
//!   or User Properties on anything but PUBLISH, CONNACK and DISCONNECT
//!   [MQTT-3.1.2-29];
//! - a CONNACK or DISCONNECT of 0x80 or more ends the connection
//!   [MQTT-4.13.2-1]; a refused CONNECT failed a check [MQTT-3.1.4-2],
//!   some with a statement of their own: unsupported version 0x84
//!   [MQTT-3.1.2-2], client id not valid 0x85 [MQTT-3.1.3-8], an
//!   authentication method refused [MQTT-4.12.0-1], any refusal while
//!   authenticating [MQTT-4.12.0-4];
//! - an accepted will is within the CONNACK's Maximum QoS
//!   [MQTT-3.2.2-12] and Retain Available [MQTT-3.2.2-13];
//! - a SUBACK has one reason code per filter [MQTT-3.8.4-6] and an UNSUBACK
//!   one per filter [MQTT-3.11.3-1];
//! - the broker's DISCONNECT comes only after a successful CONNACK
//!   [MQTT-3.14.0-1], carries no Session Expiry Interval [MQTT-3.14.2-2],
//!   is the last packet it sends there [MQTT-3.14.4-1], and the broker
//!   closes the connection within `slack` of it [MQTT-3.14.4-2];
//! - a PINGREQ that reached the broker is answered with PINGRESP within
//!   `slack` while the connection stays open [MQTT-3.12.4-1].
//!
//! Client (actors in `clients`):
//! - no PUBLISH above the CONNACK's Maximum QoS [MQTT-3.2.2-11], no
//!   retained PUBLISH when Retain Available is 0 [MQTT-3.2.2-14];
//! - with a Server Keep Alive in the CONNACK, the client sends something
//!   within that many seconds (+ `slack`) while its connection is open and
//!   free of faults [MQTT-3.2.2-21] [MQTT-3.1.2-21];
//! - a client that connected with clean start 1 (it has no session) and
//!   got session present 1 closes: it sends nothing but DISCONNECT after
//!   that CONNACK [MQTT-3.2.2-4];
//! - after its own DISCONNECT, nothing more [MQTT-3.14.4-1].

use std::time::Duration;

use super::index::{seen, sent, Index};
use super::v5_limits::{connections, judged, C5};
use super::{Checker, Verdict};
use crate::history::{Dir, EventKind, History};
use crate::mqtt::props::{
    self, ASSIGNED_CLIENT_ID, MAXIMUM_QOS, RETAIN_AVAILABLE, SERVER_KEEP_ALIVE, SESSION_EXPIRY,
};
use crate::mqtt::Packet;

/// 5.0's takeover statement, judged by the `connections` checker on 5.0
/// connections (a broker must end the old connection of a client id that
/// connects again).


pub struct ConnectionChecker {
    pub clients: Vec<String>,
    pub slack: Duration,
}

impl Checker for ConnectionChecker {
    fn name(&self) -> &str {
        "v5_connection"
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        let ix = Index::new(history);
        let closes: Vec<(u32, Duration, u64)> = history
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ConnClosed { conn, .. } => Some((conn.0, e.at, e.seq)),
                _ => None,
            })
            .collect();
        let end = history.iter().last().map(|e| e.at).unwrap_or_default();
        for c in connections(history) {
            let close = closes.iter().find(|(id, _, _)| *id == c.id.0);
            let client = judged(&self.clients, &c.actor);
            let mut connack_ok = false;
            let mut broker_disconnect: Option<(u64, Duration)> = None;
            let mut client_disconnect: Option<u64> = None;
            let mut subscribes: Vec<(u16, usize, bool)> = Vec::new();
            let mut pings: Vec<(u64, Duration, bool)> = Vec::new();
            let mut refused: Option<(u64, Duration)> = None;
            let mut refused_at: Option<Duration> = None;
            let mut refused_code = 0;
            let mut disconnect_at: Option<Duration> = None;
            let mut disconnect_code = 0;
            // A CONNACK with session present 1 that reached a client
            // which connected with clean start 1.
            let mut stateless_sp: Option<u64> = None;
            let no_problems =
                props::num(&c.connect_props(), REQUEST_PROBLEM_INFORMATION) == Some(0);
            for p in &c.pkts {
                if p.dir == Dir::ToClient {
                    if let Some((s, _)) = broker_disconnect {
                        v.fail(
                            "MQTT-3.14.4-1",
                            format!(
                                "the broker sent {} to {} after its DISCONNECT",
                                p.packet.packet_type(),
                                c.actor
                            ),
                            vec![s, p.seq],
                        );
                        broker_disconnect = None;
                    }
                    if let Some((s, _)) = refused {
                        v.fail(
                            "MQTT-3.2.2-7",
                            format!(
                                "the broker sent {} to {} after refusing it",
                                p.packet.packet_type(),
                                c.actor
                            ),
                            vec![s, p.seq],
                        );
                        refused = None;
                    }
                } else if let (Some(s), true, true) = (stateless_sp, client, sent(p.fate)) {
                    if !matches!(p.packet, Packet::Disconnect(_)) {
                        v.fail(
                            "MQTT-3.2.2-4",
                            format!(
                                "{} connected with clean start 1, got session present 1 and sent {} instead of closing",
                                c.actor,
                                p.packet.packet_type()
                            ),
                            vec![s, p.seq],
                        );
                    }
                    stateless_sp = None;
                } else if let Some(s) = client_disconnect {
                    if client && sent(p.fate) {
                        v.fail(
                            "MQTT-3.14.4-1",
                            format!(
                                "{} sent {} after its DISCONNECT",
                                c.actor,
                                p.packet.packet_type()
                            ),
                            vec![s, p.seq],
                        );
                        client_disconnect = None;
                    }
                }
                if p.dir == Dir::ToClient && sent(p.fate) && no_problems && problem_props(p.packet)
                {
                    v.fail(
                        "MQTT-3.1.2-29",
                        format!(
                            "the broker put a Reason String or User Properties on a {} to {}, which set Request Problem Information 0",
                            p.packet.packet_type(),
                            c.actor
                        ),
                        vec![p.seq],
                    );
                }
                match (p.packet, p.dir) {
                    (Packet::ConnAck(a), Dir::ToClient) => {
                        // (Session present 1 on a refusal [MQTT-3.2.2-6] does
                        // not decode: the codec flags that frame.)
                        if a.code >= 0x80 {
                            refused = Some((p.seq, p.at));
                            refused_at = Some(p.at);
                            refused_code = a.code;
                        }
                        if a.code == 0 {
                            connack_ok = true;
                            if c.connect.is_some_and(|x| x.client_id.is_empty())
                                && props::get(&a.properties, ASSIGNED_CLIENT_ID).is_none()
                            {
                                for rule in ["MQTT-3.2.2-16", "MQTT-3.1.3-7"] {
                                    v.fail(rule, format!("{} connected with an empty client id and the CONNACK has no Assigned Client Identifier", c.actor), vec![p.seq]);
                                }
                            }
                            if a.session_present && c.connect.is_some_and(|x| x.clean_start) {
                                if seen(p.fate) {
                                    stateless_sp = Some(p.seq);
                                }
                                // Clean start 1 discards the session, so
                                // none can be present.
                                for rule in ["MQTT-3.2.2-2", "MQTT-3.1.2-4"] {
                                    v.fail(rule, format!("{} connected with clean start 1 and the CONNACK says session present 1", c.actor), vec![p.seq]);
                                }
                            }
                        }
                        if a.code == 0 {
                            will_capability(&c, &a.properties, p.seq, &mut v);
                        }
                        if props::get(&a.properties, RESPONSE_INFORMATION).is_some()
                            && props::num(&c.connect_props(), REQUEST_RESPONSE_INFORMATION)
                                .unwrap_or(0)
                                == 0
                        {
                            v.fail("MQTT-3.1.2-28", format!("the CONNACK to {} carries Response Information its CONNECT did not request", c.actor), vec![p.seq]);
                        }
                    }
                    (Packet::Disconnect(d), Dir::ToClient) => {
                        if !connack_ok {
                            v.fail(
                                "MQTT-3.14.0-1",
                                format!(
                                    "the broker sent DISCONNECT to {} before a successful CONNACK",
                                    c.actor
                                ),
                                vec![p.seq],
                            );
                        }
                        if props::get(&d.properties, SESSION_EXPIRY).is_some() {
                            v.fail("MQTT-3.14.2-2", format!("the broker's DISCONNECT to {} carries a Session Expiry Interval", c.actor), vec![p.seq]);
                        }
                        broker_disconnect = Some((p.seq, p.at));
                        disconnect_at = Some(p.at);
                        disconnect_code = d.code;
                    }
                    (Packet::Disconnect(_), Dir::ToBroker) if sent(p.fate) => {
                        client_disconnect = Some(p.seq)
                    }
                    (Packet::Subscribe(s), Dir::ToBroker) if seen(p.fate) => {
                        subscribes.push((s.pid, s.filters.len(), false))
                    }
                    (Packet::Unsubscribe(s), Dir::ToBroker) if seen(p.fate) => {
                        subscribes.push((s.pid, s.filters.len(), true))
                    }
                    (Packet::SubAck(a), Dir::ToClient) => {
                        if let Some(&(_, n, _)) = subscribes
                            .iter()
                            .rev()
                            .find(|(pid, _, u)| *pid == a.pid && !u)
                        {
                            if a.codes.len() != n {
                                v.fail(
                                    "MQTT-3.8.4-6",
                                    format!(
                                        "SUBACK to {} has {} reason codes for {n} filters",
                                        c.actor,
                                        a.codes.len()
                                    ),
                                    vec![p.seq],
                                );
                            }
                        }
                    }
                    (Packet::UnsubAck(a), Dir::ToClient) => {
                        if let Some(&(_, n, _)) = subscribes
                            .iter()
                            .rev()
                            .find(|(pid, _, u)| *pid == a.pid && *u)
                        {
                            if a.codes.len() != n {
                                v.fail(
                                    "MQTT-3.11.3-1",
                                    format!(
                                        "UNSUBACK to {} has {} reason codes for {n} filters",
                                        c.actor,
                                        a.codes.len()
                                    ),
                                    vec![p.seq],
                                );
                            }
                        }
                    }
                    (Packet::PingReq, Dir::ToBroker) if seen(p.fate) => {
                        pings.push((p.seq, p.at, false))
                    }
                    (Packet::PingResp, Dir::ToClient) => {
                        if let Some(x) = pings.iter_mut().find(|x| !x.2) {
                            x.2 = true;
                        }
                    }
                    (Packet::Publish(pb), Dir::ToBroker) if client && sent(p.fate) => {
                        let ack = c.connack_props();
                        if let Some(m) = props::num(&ack, MAXIMUM_QOS) {
                            if pb.qos.as_u8() as u32 > m {
                                v.fail(
                                    "MQTT-3.2.2-11",
                                    format!(
                                        "{} published at QoS {} above the broker's Maximum QoS {m}",
                                        c.actor,
                                        pb.qos.as_u8()
                                    ),
                                    vec![p.seq],
                                );
                            }
                        }
                        if pb.retain && props::num(&ack, RETAIN_AVAILABLE) == Some(0) {
                            v.fail("MQTT-3.2.2-14", format!("{} published a retained message; the broker said Retain Available 0", c.actor), vec![p.seq]);
                        }
                    }
                    _ => {}
                }
            }
            let closed_at = close.map(|x| x.1);
            // A reason of 0x80 or more also promises the close [MQTT-4.13.2-1].
            let closing: &[&str] = if disconnect_code >= 0x80 {
                &["MQTT-3.14.4-2", "MQTT-4.13.2-1"]
            } else {
                &["MQTT-3.14.4-2"]
            };
            // A refusal is a failed check [MQTT-3.1.4-2]; some codes
            // have their own statement of the close.
            let mut refusal: Vec<&str> = vec!["MQTT-3.2.2-7", "MQTT-4.13.2-1", "MQTT-3.1.4-2"];
            let authenticating = c
                .connect
                .is_some_and(|x| props::get(&x.properties, AUTHENTICATION_METHOD).is_some());
            match refused_code {
                0x84 => refusal.push("MQTT-3.1.2-2"),
                0x85 => refusal.push("MQTT-3.1.3-8"),
                0x87 | 0x8C if authenticating => refusal.push("MQTT-4.12.0-1"),
                _ => {}
            }
            if authenticating {
                refusal.push("MQTT-4.12.0-4");
            }
            for (what, from, rules) in [
                (disconnect_at, "its DISCONNECT", closing),
                (refused_at, "a refusing CONNACK", &refusal[..]),
            ] {
                let Some(at) = what else { continue };
                let limit = at + self.slack;
                if limit < end && closed_at.is_none_or(|t| t > limit) {
                    for rule in rules {
                        v.fail(
                            *rule,
                            format!(
                                "the broker did not close {}'s connection within {} of {from}",
                                c.actor,
                                super::fmt_d(self.slack)
                            ),
                            vec![],
                        );
                    }
                }
            }
            for (seq, at, answered) in pings {
                let limit = at + self.slack;
                if !answered
                    && limit < end
                    && closed_at.is_none_or(|t| t > limit)
                    && ix.undisturbed(&c.actor, at, limit)
                {
                    v.fail(
                        "MQTT-3.12.4-1",
                        format!(
                            "no PINGRESP to {}'s PINGREQ within {}",
                            c.actor,
                            super::fmt_d(self.slack)
                        ),
                        vec![seq],
                    );
                }
            }
            // Server Keep Alive: the client's silences.
            let Some(ka) = props::num(&c.connack_props(), SERVER_KEEP_ALIVE).filter(|k| *k > 0)
            else {
                continue;
            };
            if !client || !connack_ok {
                continue;
            }
            let limit = Duration::from_secs(ka as u64) + self.slack;
            let ups: Vec<(u64, Duration)> = c
                .pkts
                .iter()
                .filter(|p| p.dir == Dir::ToBroker && sent(p.fate))
                .map(|p| (p.seq, p.at))
                .collect();
            let stop = closed_at.unwrap_or(end);
            let mut prev = ups.first().map(|x| x.1).unwrap_or_default();
            let mut prev_seq = ups.first().map(|x| x.0).unwrap_or_default();
            for &(seq, at) in ups.iter().skip(1).chain(std::iter::once(&(u64::MAX, stop))) {
                if at.saturating_sub(prev) > limit && ix.undisturbed(&c.actor, prev, prev + limit) {
                    // Said twice in 5.0: under CONNECT's Keep Alive and
                    // CONNACK's Server Keep Alive.
                    for rule in ["MQTT-3.2.2-21", "MQTT-3.1.2-21"] {
                        v.fail(
                            rule,
                            format!(
                                "{} was silent for {} from {}; the broker's Server Keep Alive is {ka}s",
                                c.actor,
                                super::fmt_d(at.saturating_sub(prev)),
                                super::fmt_d(prev)
                            ),
                            vec![prev_seq],
                        );
                    }
                    break;
                }
                prev = at;
                prev_seq = seq;
            }
        }
        v
    }
}

/// A will the broker accepted must be within what it can do: its QoS at
/// most the CONNACK's Maximum QoS [MQTT-3.2.2-12], retained only with
/// Retain Available [MQTT-3.2.2-13] — a broker that cannot must refuse.
fn will_capability(c: &C5, ack: &crate::mqtt::Properties, seq: u64, v: &mut Verdict) {
    let Some(w) = c.connect.and_then(|x| x.will.as_ref()) else {
        return;
    };
    if let Some(m) = props::num(ack, MAXIMUM_QOS) {
        if w.qos.as_u8() as u32 > m {
            v.fail(
                "MQTT-3.2.2-12",
                format!(
                    "the broker accepted {}'s will at QoS {} and says its Maximum QoS is {m}",
                    c.actor,
                    w.qos.as_u8()
                ),
                vec![seq],
            );
        }
    }
    if w.retain && props::num(ack, RETAIN_AVAILABLE) == Some(0) {
        v.fail(
            "MQTT-3.2.2-13",
            format!(
                "the broker accepted {}'s retained will and says Retain Available 0",
                c.actor
            ),
            vec![seq],
        );
    }
}

/// Request Problem Information, Request Response Information and
/// Response Information.
const AUTHENTICATION_METHOD: u8 = 0x15;
const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
const RESPONSE_INFORMATION: u8 = 0x1A;

/// A packet other than PUBLISH, CONNACK and DISCONNECT with a Reason
/// String or User Properties: what a client that set Request Problem
/// Information 0 must not get.
fn problem_props(p: &Packet) -> bool {
    if matches!(
        p,
        Packet::Publish(_) | Packet::ConnAck(_) | Packet::Disconnect(_)
    ) {
        return false;
    }
    props::packet_props(p).is_some_and(|l| {
        props::get(l, props::REASON_STRING).is_some()
            || props::get(l, props::USER_PROPERTY).is_some()
    })
}

