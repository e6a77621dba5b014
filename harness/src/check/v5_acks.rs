//! `v5_acks`: the broker's side of the 5.0 QoS exchanges (statement ids
//! are MQTT 5.0's), judged on every 5.0 connection.
//!
//! - a QoS 1 PUBLISH that reached the broker is answered with PUBACK
//!   [MQTT-4.3.2-4], a QoS 2 one with PUBREC [MQTT-4.3.3-8], each with its
//!   packet id, within `slack` — the response its QoS requires
//!   [MQTT-3.3.4-1];
//! - a PUBREL that reached the broker is answered with PUBCOMP
//!   [MQTT-4.3.3-11];
//! - when the client's PUBREC (below 0x80) reached the broker, the broker
//!   sends PUBREL for that packet id [MQTT-4.3.3-4];
//! - the broker resends an unacknowledged PUBLISH only with DUP set
//!   [MQTT-3.3.1-1] — on the same connection or on a resumed one;
//! - a delivery's QoS is at most the lower of the published QoS and the
//!   highest QoS granted to the session's matching subscriptions
//!   [MQTT-3.8.4-8].
//!
//! "Within `slack`" is judged only while the connection stays open and
//! free of faults and the broker up; a connection that ends first owes
//! nothing on it (the session rules and `v5_session` take over).

use std::collections::HashMap;
use std::time::Duration;

use super::index::{seen, sent, Index};
use super::v5_limits::connections;
use super::{Checker, Verdict};
use crate::history::{Dir, History};
use crate::mqtt::{topic, Packet, QoS, Version};

pub struct AcksChecker {
    pub slack: Duration,
}

impl Checker for AcksChecker {
    fn name(&self) -> &str {
        "v5_acks"
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        let ix = Index::new(history);
        let end = history.iter().last().map(|e| e.at).unwrap_or_default();
        // Broker PUBLISHes outstanding per client id: pid -> seq.
        let mut outstanding: HashMap<String, HashMap<u16, u64>> = HashMap::new();
        for c in connections(history) {
            let cid = c.connect.map(|x| x.client_id.clone()).unwrap_or_default();
            let resumed = c.connack.is_some_and(|a| a.session_present);
            if !resumed {
                outstanding.remove(&cid);
            }
            let closed = ix
                .by_id
                .get(&c.id)
                .and_then(|&i| ix.conns[i].closed.as_ref().map(|(s, _)| s.at));
            // (what the broker owes, pid, seq, at, rule, what)
            let mut owed: Vec<(&'static str, u16, u64, Duration, &'static str)> = Vec::new();
            let out = outstanding.entry(cid.clone()).or_default();
            for p in &c.pkts {
                match (p.packet, p.dir) {
                    (Packet::Publish(pb), Dir::ToBroker) if seen(p.fate) => {
                        match (pb.qos, pb.pid) {
                            (QoS::AtLeastOnce, Some(pid)) => {
                                owed.push(("PUBACK", pid, p.seq, p.at, "MQTT-4.3.2-4"))
                            }
                            (QoS::ExactlyOnce, Some(pid)) => {
                                owed.push(("PUBREC", pid, p.seq, p.at, "MQTT-4.3.3-8"))
                            }
                            _ => {}
                        }
                    }
                    (Packet::PubRel(a), Dir::ToBroker) if seen(p.fate) => {
                        owed.push(("PUBCOMP", a.pid, p.seq, p.at, "MQTT-4.3.3-11"))
                    }
                    (Packet::PubRec(a), Dir::ToBroker) if seen(p.fate) && a.code < 0x80 => {
                        owed.push(("PUBREL", a.pid, p.seq, p.at, "MQTT-4.3.3-4"))
                    }
                    (
                        Packet::PubAck(a)
                        | Packet::PubRec(a)
                        | Packet::PubRel(a)
                        | Packet::PubComp(a),
                        Dir::ToClient,
                    ) => {
                        let kind = p.packet.packet_type().name();
                        if let Some(i) = owed.iter().position(|o| o.0 == kind && o.1 == a.pid) {
                            owed.remove(i);
                        }
                    }
                    _ => {}
                }
                match (p.packet, p.dir) {
                    (Packet::Publish(pb), Dir::ToClient) if sent(p.fate) => {
                        if let Some(pid) = pb.pid {
                            if let Some(&first) = out.get(&pid) {
                                if !pb.dup {
                                    v.fail(
                                        "MQTT-3.3.1-1",
                                        format!(
                                            "the broker sent PUBLISH {pid} to {} again without DUP",
                                            c.actor
                                        ),
                                        vec![first, p.seq],
                                    );
                                }
                            } else {
                                out.insert(pid, p.seq);
                            }
                        }
                    }
                    (Packet::PubAck(a) | Packet::PubComp(a), Dir::ToBroker) if seen(p.fate) => {
                        out.remove(&a.pid);
                    }
                    (Packet::PubRec(a), Dir::ToBroker) if seen(p.fate) => {
                        // From here the broker owes PUBREL, not the PUBLISH.
                        out.remove(&a.pid);
                    }
                    _ => {}
                }
            }
            for (what, pid, seq, at, rule) in owed {
                let limit = at + self.slack;
                let open = closed.is_none_or(|t| t > limit);
                if limit < end
                    && open
                    && ix.undisturbed(&c.actor, at, limit)
                    && ix.broker_down_between(at, limit).is_none()
                {
                    v.fail(
                        rule,
                        format!(
                            "no {what} {pid} to {} within {}",
                            c.actor,
                            super::fmt_d(self.slack)
                        ),
                        vec![seq],
                    );
                    if rule == "MQTT-4.3.2-4" || rule == "MQTT-4.3.3-8" {
                        v.fail(
                            "MQTT-3.3.4-1",
                            format!(
                                "the broker did not answer {}'s PUBLISH {pid} as its QoS requires",
                                c.actor
                            ),
                            vec![seq],
                        );
                    }
                }
            }
        }
        // Delivered QoS against published and granted QoS.
        for d in ix
            .pubs
            .iter()
            .filter(|p| p.dir == Dir::ToClient && sent(p.fate))
        {
            let Some(&di) = ix.by_id.get(&d.conn) else {
                continue;
            };
            let dc = &ix.conns[di];
            if dc.version() != Version::V5 {
                continue;
            }
            let granted = ix
                .subs
                .iter()
                .filter(|s| {
                    let sc = &ix.conns[s.conn];
                    sc.client_id() == dc.client_id()
                        && sc.lineage == dc.lineage
                        && s.acked.as_ref().is_some_and(|(a, _)| a.seq < d.stamp.seq)
                        && s.unsub.as_ref().is_none_or(|u| u.seq > d.stamp.seq)
                        && topic::matches(&s.filter, &d.publish.topic)
                })
                .filter_map(|s| s.granted())
                .max();
            let source = ix
                .pubs
                .iter()
                .filter(|s| {
                    s.dir == Dir::ToBroker
                        && s.stamp.seq < d.stamp.seq
                        && s.publish.topic == d.publish.topic
                        && s.publish.payload == d.publish.payload
                })
                .map(|s| s.publish.qos)
                .next_back();
            if let (Some(g), Some(q)) = (granted, source) {
                let max = g.min(q);
                if d.publish.qos > max {
                    v.fail(
                        "MQTT-3.8.4-8",
                        format!(
                            "{} got {} at QoS {}: published at QoS {}, granted QoS {}",
                            d.actor,
                            d.publish.topic,
                            d.publish.qos.as_u8(),
                            q.as_u8(),
                            g.as_u8()
                        ),
                        vec![d.stamp.seq],
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
    use crate::history::CloseReason;
    use crate::mqtt::PacketType;

    fn checker() -> AcksChecker {
        AcksChecker {
            slack: Duration::from_millis(500),
        }
    }

    fn up(k: &mut Kit) -> &mut Kit {
        k.session(
            1,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        )
    }

    #[test]
    fn answered_exchanges_pass_and_a_close_excuses_the_rest() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 1, "t", "a", "")).down(
            1,
            "device",
            ack(PacketType::PubAck, 1, 0),
        );
        k.up(1, "device", publish(Some(2), 2, "t", "b", "")).down(
            1,
            "device",
            ack(PacketType::PubRec, 2, 0),
        );
        k.up(1, "device", ack(PacketType::PubRel, 2, 0)).down(
            1,
            "device",
            ack(PacketType::PubComp, 2, 0),
        );
        k.up(1, "device", publish(Some(3), 1, "t", "c", "")).close(
            1,
            "device",
            CloseReason::Severed,
        );
        k.wait(1000).step("end");
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");
    }

    #[test]
    fn missing_puback_pubrec_pubcomp_and_pubrel_fail() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 1, "t", "a", ""))
            .wait(1000)
            .step("end");
        let v = checker().check(&k.history());
        assert_violates(&v, "MQTT-4.3.2-4");
        assert_violates(&v, "MQTT-3.3.4-1");
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", publish(Some(1), 2, "t", "a", ""))
            .wait(1000)
            .step("end");
        assert_violates(&checker().check(&k.history()), "MQTT-4.3.3-8");
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", ack(PacketType::PubRel, 4, 0))
            .wait(1000)
            .step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.3.3-11"]);
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 2, 0, ""))
            .down(1, "device", suback(1, &[2]));
        k.down(1, "device", publish(Some(6), 2, "t", "x", "")).up(
            1,
            "device",
            ack(PacketType::PubRec, 6, 0),
        );
        k.wait(1000).step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.3.3-4"]);
    }

    #[test]
    fn a_resend_without_dup_fails_on_the_same_or_a_resumed_connection() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.down(1, "device", publish(Some(6), 1, "t", "x", ""));
        k.close(1, "device", CloseReason::Severed);
        k.session(
            2,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(true, 0, ""),
        );
        k.down(2, "device", dup(publish(Some(6), 1, "t", "x", "")))
            .up(2, "device", ack(PacketType::PubAck, 6, 0));
        assert!(checker().check(&k.history()).ok());
        k.down(2, "device", publish(Some(6), 1, "t", "y", "")).up(
            2,
            "device",
            ack(PacketType::PubAck, 6, 0),
        );
        assert!(
            checker().check(&k.history()).ok(),
            "acked: the id is free again"
        );
        k.down(2, "device", publish(Some(7), 1, "t", "z", "")).down(
            2,
            "device",
            publish(Some(7), 1, "t", "z", ""),
        );
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.1-1"]);
    }

    #[test]
    fn delivered_qos_above_the_grant_fails() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.session(
            2,
            "cloud",
            connect("c", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(2, "cloud", publish(Some(1), 2, "t", "x", "")).down(
            2,
            "cloud",
            ack(PacketType::PubRec, 1, 0),
        );
        k.up(2, "cloud", ack(PacketType::PubRel, 1, 0)).down(
            2,
            "cloud",
            ack(PacketType::PubComp, 1, 0),
        );
        k.down(1, "device", publish(Some(9), 1, "t", "x", "")).up(
            1,
            "device",
            ack(PacketType::PubAck, 9, 0),
        );
        assert!(checker().check(&k.history()).ok());
        k.up(2, "cloud", publish(Some(2), 2, "t", "y", "")).down(
            2,
            "cloud",
            ack(PacketType::PubRec, 2, 0),
        );
        k.up(2, "cloud", ack(PacketType::PubRel, 2, 0)).down(
            2,
            "cloud",
            ack(PacketType::PubComp, 2, 0),
        );
        k.down(1, "device", publish(Some(10), 2, "t", "y", "")).up(
            1,
            "device",
            ack(PacketType::PubRec, 10, 0),
        );
        assert_violates(&checker().check(&k.history()), "MQTT-3.8.4-8");
    }
}
