//! `v5_packets`: packet-order rules of a 5.0 connection (statement ids are
//! MQTT 5.0's). Broker conduct is judged on every 5.0 connection, client
//! conduct for the actors in `clients`.
//!
//! - the client's first packet is CONNECT [MQTT-3.1.0-1] (on a connection
//!   whose later CONNECT says 5.0); a second CONNECT that reached the broker
//!   makes it close the connection within `slack` [MQTT-3.1.0-2];
//! - before its successful CONNACK the broker sends only CONNACK, AUTH or
//!   DISCONNECT [MQTT-3.2.0-1], and never a second CONNACK [MQTT-3.2.0-2];
//! - a QoS 0 PUBLISH never has DUP set [MQTT-3.3.1-2];
//! - an ack names a packet id its peer sent: the broker's PUBACK/PUBREC for
//!   a QoS 1/2 PUBLISH the client sent on this connection or an earlier one
//!   of its client id [MQTT-2.2.1-5]; SUBACK and UNSUBACK for a pending
//!   request [MQTT-3.8.4-2], [MQTT-3.10.4-5];
//! - every SUBSCRIBE and UNSUBSCRIBE that reached the broker is answered
//!   within `slack` while the connection stays open and fault-free
//!   [MQTT-3.8.4-1], [MQTT-3.10.4-4];
//! - once a sender has sent PUBREL for a packet id it does not send that
//!   PUBLISH again until PUBCOMP [MQTT-4.3.3-6];
//! - a PUBLISH to a subscriber is on a topic one of its session's
//!   subscriptions matches [MQTT-3.3.2-3];
//! - after a DISCONNECT with reason 0 that reached the broker, the
//!   connection's will is never published [MQTT-3.14.4-3].

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::index::{seen, sent, Index};
use super::v5_limits::{connections, judged};
use super::{Checker, Verdict};
use crate::history::{Dir, History};
use crate::mqtt::{topic, Packet, QoS, Version};

pub struct PacketsChecker {
    pub clients: Vec<String>,
    pub slack: Duration,
}

impl Checker for PacketsChecker {
    fn name(&self) -> &str {
        "v5_packets"
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        let ix = Index::new(history);
        let end = history.iter().last().map(|e| e.at).unwrap_or_default();
        let conns = connections(history);
        // QoS>0 packet ids each client id sent, over its connections.
        let mut sent_by: HashMap<String, BTreeSet<u16>> = HashMap::new();
        for c in &conns {
            let client = judged(&self.clients, &c.actor);
            let cid = c.connect.map(|x| x.client_id.clone()).unwrap_or_default();
            let closed = ix
                .by_id
                .get(&c.id)
                .and_then(|&i| ix.conns[i].closed.as_ref().map(|(s, _)| s.at));
            let mut connack_ok = false;
            let mut connacks = 0;
            let mut pending: Vec<(u16, u64, Duration, bool)> = Vec::new();
            let mut released: HashMap<(Dir, u16), u64> = HashMap::new();
            if let (Some(first), true) = (c.pkts.iter().find(|p| p.dir == Dir::ToBroker), client) {
                if !matches!(first.packet, Packet::Connect(_)) {
                    v.fail(
                        "MQTT-3.1.0-1",
                        format!(
                            "{}'s first packet was {}, not CONNECT",
                            c.actor,
                            first.packet.packet_type()
                        ),
                        vec![first.seq],
                    );
                }
            }
            let teardown = history
                .events
                .iter()
                .find(|e| matches!(e.kind, crate::history::EventKind::Teardown))
                .map(|e| e.at)
                .unwrap_or(end);
            let mut connects = 0;
            for p in &c.pkts {
                let judge = p.dir == Dir::ToClient || client;
                if let (Packet::Connect(_), Dir::ToBroker, true) = (p.packet, p.dir, seen(p.fate)) {
                    connects += 1;
                    if let (2, Some(&i)) = (connects, ix.by_id.get(&c.id)) {
                        super::packets::second_connect(
                            &ix,
                            ix.conns[i].id,
                            &ix.conns[i].actor,
                            ix.conns[i].closed.as_ref(),
                            (p.seq, p.at),
                            self.slack,
                            end.min(teardown),
                            "MQTT-3.1.0-2",
                            &mut v,
                        );
                    }
                }
                match (p.packet, p.dir) {
                    (Packet::ConnAck(a), Dir::ToClient) => {
                        connacks += 1;
                        if connacks == 2 {
                            v.fail(
                                "MQTT-3.2.0-2",
                                format!("a second CONNACK to {}", c.actor),
                                vec![p.seq],
                            );
                        }
                        connack_ok |= a.code == 0;
                    }
                    (Packet::Auth(_) | Packet::Disconnect(_), Dir::ToClient) => {}
                    (other, Dir::ToClient) if !connack_ok => {
                        v.fail(
                            "MQTT-3.2.0-1",
                            format!(
                                "the broker sent {} to {} before a successful CONNACK",
                                other.packet_type(),
                                c.actor
                            ),
                            vec![p.seq],
                        );
                        connack_ok = true; // say it once
                    }
                    _ => {}
                }
                match p.packet {
                    Packet::Publish(pb) if sent(p.fate) => {
                        if pb.qos == QoS::AtMostOnce && pb.dup && judge {
                            v.fail(
                                "MQTT-3.3.1-2",
                                format!(
                                    "a QoS 0 PUBLISH with DUP set on {}'s connection ({:?})",
                                    c.actor, p.dir
                                ),
                                vec![p.seq],
                            );
                        }
                        if let Some(pid) = pb.pid {
                            if p.dir == Dir::ToBroker {
                                sent_by.entry(cid.clone()).or_default().insert(pid);
                            }
                            if let Some(&rel) = released.get(&(p.dir, pid)) {
                                if judge {
                                    v.fail("MQTT-4.3.3-6", format!("PUBLISH {pid} sent again on {}'s connection after its PUBREL", c.actor), vec![rel, p.seq]);
                                }
                                released.remove(&(p.dir, pid));
                            }
                        }
                    }
                    Packet::PubRel(a) if sent(p.fate) => {
                        released.insert((p.dir, a.pid), p.seq);
                    }
                    Packet::PubComp(a) => {
                        let other = if p.dir == Dir::ToBroker {
                            Dir::ToClient
                        } else {
                            Dir::ToBroker
                        };
                        released.remove(&(other, a.pid));
                    }
                    _ => {}
                }
                match (p.packet, p.dir) {
                    (Packet::PubAck(a) | Packet::PubRec(a), Dir::ToClient)
                        if !sent_by.get(&cid).is_some_and(|s| s.contains(&a.pid)) =>
                    {
                        v.fail(
                            "MQTT-2.2.1-5",
                            format!(
                                "the broker acknowledged packet id {} that {} never published",
                                a.pid, c.actor
                            ),
                            vec![p.seq],
                        );
                    }
                    (Packet::Subscribe(s), Dir::ToBroker) if seen(p.fate) => {
                        pending.push((s.pid, p.seq, p.at, false))
                    }
                    (Packet::Unsubscribe(s), Dir::ToBroker) if seen(p.fate) => {
                        pending.push((s.pid, p.seq, p.at, true))
                    }
                    (Packet::SubAck(a), Dir::ToClient) => {
                        match pending.iter().position(|x| x.0 == a.pid && !x.3) {
                            Some(i) => {
                                pending.remove(i);
                            }
                            None => v.fail(
                                "MQTT-3.8.4-2",
                                format!("SUBACK {} to {} answers no SUBSCRIBE", a.pid, c.actor),
                                vec![p.seq],
                            ),
                        }
                    }
                    (Packet::UnsubAck(a), Dir::ToClient) => {
                        match pending.iter().position(|x| x.0 == a.pid && x.3) {
                            Some(i) => {
                                pending.remove(i);
                            }
                            None => v.fail(
                                "MQTT-3.10.4-5",
                                format!("UNSUBACK {} to {} answers no UNSUBSCRIBE", a.pid, c.actor),
                                vec![p.seq],
                            ),
                        }
                    }
                    _ => {}
                }
            }
            for (pid, seq, at, unsub) in pending {
                let limit = at + self.slack;
                if limit < end
                    && closed.is_none_or(|t| t > limit)
                    && ix.undisturbed(&c.actor, at, limit)
                {
                    let (rule, what) = if unsub {
                        ("MQTT-3.10.4-4", "UNSUBACK")
                    } else {
                        ("MQTT-3.8.4-1", "SUBACK")
                    };
                    v.fail(
                        rule,
                        format!(
                            "no {what} for {}'s request {pid} within {}",
                            c.actor,
                            super::fmt_d(self.slack)
                        ),
                        vec![seq],
                    );
                }
            }
        }
        // Deliveries on topics no subscription of the session matches.
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
            let matched = ix.subs.iter().any(|s| {
                let sc = &ix.conns[s.conn];
                sc.client_id() == dc.client_id()
                    && s.sent.seq < d.stamp.seq
                    && topic::matches(&s.filter, &d.publish.topic)
            });
            // A session resumed from before the run, or across a restart,
            // may hold subscriptions the history never showed.
            let unknown_past = !dc.clean_start()
                && ix.conns[..di]
                    .iter()
                    .all(|o| o.client_id() != dc.client_id());
            if !matched && !unknown_past {
                v.fail(
                    "MQTT-3.3.2-3",
                    format!(
                        "{} got a PUBLISH on {} that none of its subscriptions matches",
                        d.actor, d.publish.topic
                    ),
                    vec![d.stamp.seq],
                );
            }
        }
        // No will after DISCONNECT 0.
        for c in ix.conns.iter() {
            let Some((_, connect)) = &c.connect else {
                continue;
            };
            let Some(will) = &connect.will else { continue };
            if connect.version != Version::V5 {
                continue;
            }
            let Some((ds, 0)) = c.disconnect.as_ref().map(|(s, code)| (s, *code)) else {
                continue;
            };
            if !c.rx.iter().any(|r| r.seq == ds.seq) {
                continue; // the broker never got it
            }
            let next = ix
                .conns
                .iter()
                .filter(|n| n.client_id() == c.client_id() && n.first.seq > ds.seq)
                .map(|n| n.first.seq)
                .min()
                .unwrap_or(u64::MAX);
            if let Some(w) = ix.pubs.iter().find(|p| {
                p.dir == Dir::ToClient
                    && p.conn != c.id
                    && p.stamp.seq > ds.seq
                    && p.stamp.seq < next
                    && p.publish.topic == will.topic
                    && p.publish.payload == will.payload
            }) {
                v.fail(
                    "MQTT-3.14.4-3",
                    format!(
                        "{}'s will was published after its DISCONNECT with reason 0",
                        c.actor
                    ),
                    vec![ds.seq, w.stamp.seq],
                );
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

    fn checker() -> PacketsChecker {
        PacketsChecker {
            clients: vec!["device".into()],
            slack: Duration::from_millis(500),
        }
    }

    fn up(k: &mut Kit) -> &mut Kit {
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, ""),
        )
    }

    #[test]
    fn a_well_behaved_exchange_passes() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a/#", 2, 0, ""))
            .down(1, "device", suback(1, &[2]));
        k.up(1, "device", publish(Some(2), 2, "a/1", "x", "")).down(
            1,
            "device",
            ack(PacketType::PubRec, 2, 0),
        );
        k.up(1, "device", ack(PacketType::PubRel, 2, 0)).down(
            1,
            "device",
            ack(PacketType::PubComp, 2, 0),
        );
        k.down(1, "device", publish(Some(9), 1, "a/1", "x", "")).up(
            1,
            "device",
            ack(PacketType::PubAck, 9, 0),
        );
        k.wait(1000).step("end");
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");
    }

    #[test]
    fn connection_start_rules() {
        let mut k = Kit::new();
        // (A connection is known to be 5.0 by its CONNECT, so it comes late.)
        k.open(1, "device").up(1, "device", Packet::PingReq).up(
            1,
            "device",
            connect("d", true, 60, ""),
        );
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.1.0-1"]);
        let mut k = Kit::new();
        k.open(1, "device")
            .up(1, "device", connect("d", true, 60, ""));
        k.down(1, "device", Packet::PingResp)
            .down(1, "device", connack(false, 0, ""));
        k.down(1, "device", connack(false, 0, ""));
        let v = checker().check(&k.history());
        assert_violates(&v, "MQTT-3.2.0-1");
        assert_violates(&v, "MQTT-3.2.0-2");
    }

    #[test]
    fn dup_on_qos0_and_publish_after_pubrel_fail() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
        k.down(1, "device", dup(publish(None, 0, "a", "x", "")));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.1-2"]);
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 2, 0, ""))
            .down(1, "device", suback(1, &[2]));
        k.down(1, "device", publish(Some(4), 2, "a", "x", "")).up(
            1,
            "device",
            ack(PacketType::PubRec, 4, 0),
        );
        k.down(1, "device", ack(PacketType::PubRel, 4, 0)).down(
            1,
            "device",
            dup(publish(Some(4), 2, "a", "x", "")),
        );
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.3.3-6"]);
    }

    #[test]
    fn acks_for_nothing_and_missing_acks_fail() {
        let mut k = Kit::new();
        up(&mut k);
        k.down(1, "device", ack(PacketType::PubAck, 7, 0));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-2.2.1-5"]);
        let mut k = Kit::new();
        up(&mut k);
        k.down(1, "device", suback(3, &[0]));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.8.4-2"]);
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .wait(2000)
            .step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.8.4-1"]);
        let unsub = Packet::Unsubscribe(crate::mqtt::Unsubscribe {
            pid: 5,
            filters: vec!["a".into()],
            properties: Default::default(),
        });
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", unsub).wait(2000).step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.10.4-4"]);
        let mut k = Kit::new();
        up(&mut k);
        k.down(
            1,
            "device",
            Packet::UnsubAck(crate::mqtt::UnsubAck {
                pid: 8,
                codes: vec![0],
                properties: Default::default(),
            }),
        );
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.10.4-5"]);
        // A request cut off by the connection's end owes nothing.
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .close(1, "device", CloseReason::Severed);
        k.wait(2000).step("end");
        assert!(checker().check(&k.history()).ok());
    }

    #[test]
    fn deliveries_off_subscription_and_wills_after_disconnect_0_fail() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "a/+", 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
        k.down(1, "device", publish(None, 0, "a/b", "x", ""));
        assert!(checker().check(&k.history()).ok());
        k.down(1, "device", publish(None, 0, "b/c", "x", ""));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.2-3"]);
        let mut k = Kit::new();
        k.session(
            1,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "cloud", subscribe(1, "w/#", 1, 0, ""))
            .down(1, "cloud", suback(1, &[1]));
        k.session(
            2,
            "device",
            connect_will("d", 60, "", "w/d", "gone", ""),
            connack(false, 0, ""),
        );
        k.up(2, "device", disconnect(0, ""))
            .close(2, "device", CloseReason::ClientClosed);
        k.wait(10)
            .down(1, "cloud", publish(Some(1), 1, "w/d", "gone", ""));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.14.4-3"]);
    }

    /// A second CONNECT must end the connection: a broker that keeps it
    /// open fails, one that closes it passes.
    #[test]
    fn a_second_connect_is_closed_by_the_broker() {
        let mut k = Kit::new();
        up(&mut k).up(1, "device", connect("d", true, 60, ""));
        k.wait(3000).step("end");
        assert_violates(&checker().check(&k.history()), "MQTT-3.1.0-2");

        let mut k = Kit::new();
        up(&mut k).up(1, "device", connect("d", true, 60, ""));
        k.wait(100)
            .close(1, "device", CloseReason::BrokerClosed)
            .wait(3000)
            .step("end");
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");
    }
}
