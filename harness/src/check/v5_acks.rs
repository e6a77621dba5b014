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
//! - on a resumed session (session present 1) the broker resends its
//!   unacknowledged PUBLISHes — as many as the client's Receive Maximum
//!   allows — within `slack`, and resends at no other time: a DUP resend
//!   on the connection that first carried it is a violation [MQTT-4.4.0-1];
//! - messages one client published on one topic at one QoS reach each
//!   non-shared subscriber in the order they were published [MQTT-4.6.0-5]
//!   [MQTT-4.6.0-6];
//! - a delivery's QoS is at most the lower of the published QoS and the
//!   highest QoS granted to the session's matching subscriptions
//!   [MQTT-3.8.4-8], shared ones included [MQTT-4.8.2-3];
//! - a message one member of a shared subscription refused (0x80 or
//!   more) goes to no other member [MQTT-4.8.2-6], nor one whose QoS 2
//!   exchange was cut off with the member's session [MQTT-4.8.2-5];
//! - a QoS 2 PUBLISH repeated (DUP) before its PUBREL reaches each
//!   subscriber once [MQTT-4.3.3-10].
//!
//! "Within `slack`" is judged only while the connection stays open and
//! free of faults and the broker up; a connection that ends first owes
//! nothing on it (the session rules and `v5_session` take over).

use std::collections::{BTreeSet, HashMap};
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
            // Owed again on this resumed connection.
            let owed_again: BTreeSet<u16> = if resumed {
                out.keys().copied().collect()
            } else {
                BTreeSet::new()
            };
            let rm =
                crate::mqtt::props::num(&c.connect_props(), crate::mqtt::props::RECEIVE_MAXIMUM)
                    .unwrap_or(65535) as usize;
            let opened = c.pkts.first().map(|p| (p.seq, p.at));
            let mut first_here: BTreeSet<u16> = BTreeSet::new();
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
                            if pb.dup && first_here.contains(&pid) && out.contains_key(&pid) {
                                v.fail(
                                    "MQTT-4.4.0-1",
                                    format!("the broker resent PUBLISH {pid} to {} on the connection that first carried it", c.actor),
                                    vec![out[&pid], p.seq],
                                );
                            }
                            if !out.contains_key(&pid) {
                                first_here.insert(pid);
                            }
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
            if let (Some((seq, at)), false) = (opened, owed_again.is_empty()) {
                let limit = at + self.slack;
                let resent: BTreeSet<u16> = c
                    .pkts
                    .iter()
                    .filter(|p| p.at <= limit && p.dir == Dir::ToClient && sent(p.fate))
                    .filter_map(|p| match p.packet {
                        Packet::Publish(pb) if pb.dup => pb.pid.filter(|x| owed_again.contains(x)),
                        _ => None,
                    })
                    .collect();
                // With a Receive Maximum only the first ones are due at once.
                let due = owed_again.len().min(rm);
                if resent.len() < due
                    && limit < end
                    && closed.is_none_or(|t| t > limit)
                    && ix.undisturbed(&c.actor, at, limit)
                {
                    let missing: Vec<&u16> =
                        owed_again.iter().filter(|x| !resent.contains(x)).collect();
                    v.fail(
                        "MQTT-4.4.0-1",
                        format!(
                            "{} resumed its session and the broker did not resend its unacknowledged PUBLISH(es) {:?} within {}",
                            c.actor,
                            missing,
                            super::fmt_d(self.slack)
                        ),
                        vec![seq],
                    );
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
        // Order per (subscriber connection, publisher connection, topic,
        // QoS): the source events of first sends, in delivery order.
        type Key = (crate::history::ConnId, crate::history::ConnId, String, u8);
        let mut order: HashMap<Key, Vec<(u64, u64)>> = HashMap::new();
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
            let src = ix.pubs.iter().rfind(|s| {
                s.dir == Dir::ToBroker
                    && seen(s.fate)
                    && s.stamp.seq < d.stamp.seq
                    && s.publish.topic == d.publish.topic
                    && s.publish.payload == d.publish.payload
            });
            let source = src.map(|s| s.publish.qos);
            let mine: Vec<_> = ix
                .subs
                .iter()
                .filter(|s| {
                    ix.conns[s.conn].client_id() == dc.client_id()
                        && topic::matches(&s.filter, &d.publish.topic)
                })
                .collect();
            let shared_only = !mine.is_empty() && mine.iter().all(|s| s.shared());
            if let (Some(s), false, false) = (src, d.publish.dup, shared_only) {
                if !s.publish.dup && !d.publish.retain {
                    order
                        .entry((
                            d.conn,
                            s.conn,
                            d.publish.topic.clone(),
                            s.publish.qos.as_u8(),
                        ))
                        .or_default()
                        .push((s.stamp.seq, d.stamp.seq));
                }
            }
            if let (Some(g), Some(q)) = (granted, source) {
                let max = g.min(q);
                if d.publish.qos > max {
                    // Through a shared subscription, the member's grant
                    // binds as well [MQTT-4.8.2-3].
                    let rules: &[&str] = if shared_only {
                        &["MQTT-3.8.4-8", "MQTT-4.8.2-3"]
                    } else {
                        &["MQTT-3.8.4-8"]
                    };
                    for rule in rules {
                        v.fail(
                            *rule,
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
        }
        let mut keys: Vec<_> = order.keys().cloned().collect();
        keys.sort();
        for k in keys {
            let seqs = &order[&k];
            if let Some(w) = seqs.windows(2).find(|w| w[1].0 < w[0].0) {
                let actor = ix
                    .by_id
                    .get(&k.0)
                    .map(|&i| ix.conns[i].actor.clone())
                    .unwrap_or_default();
                // Only non-shared subscriptions are collected: on those
                // every topic is an ordered topic [MQTT-4.6.0-6].
                for rule in ["MQTT-4.6.0-5", "MQTT-4.6.0-6"] {
                    v.fail(
                        rule,
                        format!(
                            "{actor} got messages on {} out of the order they were published",
                            k.2
                        ),
                        vec![w[1].0, w[0].0, w[0].1, w[1].1],
                    );
                }
            }
        }
        shared_members(&ix, &mut v);
        qos2_repeats(&ix, &mut v);
        v
    }
}

/// A QoS 2 PUBLISH its sender repeated (DUP) before releasing it is one
/// message: a subscriber session with a single matching non-shared
/// subscription gets it once, not once per copy [MQTT-4.3.3-10]. Judged
/// only when no other PUBLISH of that topic and payload reached the broker,
/// and on first sends (not DUP, not retained) to the subscriber.
fn qos2_repeats(ix: &Index, v: &mut Verdict) {
    let to_broker = |o: &&super::index::PubEv| o.dir == Dir::ToBroker && seen(o.fate);
    for m in ix
        .pubs
        .iter()
        .filter(to_broker)
        .filter(|o| o.publish.qos == QoS::ExactlyOnce && !o.publish.dup)
    {
        let Some(pid) = m.publish.pid else { continue };
        let Some(&mi) = ix.by_id.get(&m.conn) else {
            continue;
        };
        let cid = ix.conns[mi].client_id();
        if ix.conns[mi].version() != Version::V5 || cid.is_none_or(|c| c.is_empty()) {
            continue;
        }
        let same = |o: &&super::index::PubEv| {
            o.publish.topic == m.publish.topic && o.publish.payload == m.publish.payload
        };
        let copies: Vec<_> = ix.pubs.iter().filter(to_broker).filter(same).collect();
        // Every copy is this message: its first send or its DUP repeats.
        let all_this = copies.iter().all(|o| {
            o.stamp.seq == m.stamp.seq
                || (o.publish.dup
                    && o.publish.pid == Some(pid)
                    && o.stamp.seq > m.stamp.seq
                    && ix
                        .by_id
                        .get(&o.conn)
                        .is_some_and(|&i| ix.conns[i].client_id() == cid))
        });
        if copies.len() < 2 || !all_this {
            continue;
        }
        let mut per_session: HashMap<&str, Vec<u64>> = HashMap::new();
        for d in ix.pubs.iter().filter(|d| {
            d.dir == Dir::ToClient
                && sent(d.fate)
                && !d.publish.dup
                && !d.publish.retain
                && d.stamp.seq > m.stamp.seq
                && same(d)
        }) {
            let Some(&di) = ix.by_id.get(&d.conn) else {
                continue;
            };
            let Some(s) = ix.conns[di].client_id().filter(|s| !s.is_empty()) else {
                continue;
            };
            let subs = ix
                .subs
                .iter()
                .filter(|x| {
                    ix.conns[x.conn].client_id() == Some(s)
                        && x.sent.seq < d.stamp.seq
                        && topic::matches(&x.filter, &d.publish.topic)
                })
                .count();
            let shared = ix.subs.iter().any(|x| {
                ix.conns[x.conn].client_id() == Some(s)
                    && x.shared()
                    && topic::matches(&x.filter, &d.publish.topic)
            });
            if subs == 1 && !shared {
                per_session.entry(s).or_default().push(d.stamp.seq);
            }
        }
        let mut sessions: Vec<_> = per_session.into_iter().collect();
        sessions.sort();
        for (s, seqs) in sessions {
            if seqs.len() > 1 {
                let mut evs = vec![m.stamp.seq];
                evs.extend(seqs.iter().copied());
                v.fail(
                    "MQTT-4.3.3-10",
                    format!(
                        "{s} got the QoS 2 message on {} {} times: the broker forwarded its publisher's repeats as new messages",
                        m.publish.topic,
                        seqs.len()
                    ),
                    evs,
                );
            }
        }
    }
}

/// The share groups through which a session (client id) gets `topic`,
/// when it gets it through shared subscriptions only.
fn shared_groups<'a>(
    ix: &'a Index,
    cid: Option<&str>,
    topic_name: &str,
    before: u64,
) -> Option<BTreeSet<&'a str>> {
    let subs: Vec<_> = ix
        .subs
        .iter()
        .filter(|s| {
            ix.conns[s.conn].client_id() == cid
                && s.sent.seq < before
                && topic::matches(&s.filter, topic_name)
        })
        .collect();
    if subs.is_empty() || !subs.iter().all(|s| s.shared()) {
        return None;
    }
    Some(
        subs.iter()
            .filter_map(|s| topic::parse_filter(&s.filter).share_group)
            .collect(),
    )
}

/// A message given to one member of a shared subscription goes to no
/// other member when that member refused it with a reason of 0x80 or more
/// [MQTT-4.8.2-6], or when its QoS 2 exchange was cut off and the member's
/// session ended with its connection (Session Expiry 0) [MQTT-4.8.2-5].
/// "The same message" is the same publish event: the latest PUBLISH of
/// that topic and payload that reached the broker before each delivery.
fn shared_members(ix: &Index, v: &mut Verdict) {
    let src_of = |d: &super::index::PubEv| {
        ix.pubs
            .iter()
            .filter(|o| {
                o.dir == Dir::ToBroker
                    && seen(o.fate)
                    && o.stamp.seq < d.stamp.seq
                    && o.publish.topic == d.publish.topic
                    && o.publish.payload == d.publish.payload
            })
            .map(|o| o.stamp.seq)
            .last()
    };
    let deliveries: Vec<_> = ix
        .pubs
        .iter()
        .filter(|p| p.dir == Dir::ToClient && sent(p.fate) && !p.publish.dup)
        .filter(|p| {
            ix.by_id
                .get(&p.conn)
                .is_some_and(|&i| ix.conns[i].version() == Version::V5)
        })
        .collect();
    for d in &deliveries {
        let (Some(pid), Some(src)) = (d.publish.pid, src_of(d)) else {
            continue;
        };
        let ci = ix.by_id[&d.conn];
        let c = &ix.conns[ci];
        let Some(groups) = shared_groups(ix, c.client_id(), &d.publish.topic, d.stamp.seq) else {
            continue;
        };
        // After the refusal, or after the cut-off connection's end.
        let refused = c.tx.iter().find_map(|(s, p)| match p {
            Packet::PubAck(a) | Packet::PubRec(a)
                if a.pid == pid && a.code >= 0x80 && s.seq > d.stamp.seq =>
            {
                Some(s.seq)
            }
            _ => None,
        });
        let completed = c
            .tx
            .iter()
            .any(|(s, p)| matches!(p, Packet::PubComp(a) if a.pid == pid && s.seq > d.stamp.seq));
        let expiry = |p: &crate::mqtt::Properties| {
            crate::mqtt::props::num(p, crate::mqtt::props::SESSION_EXPIRY)
        };
        let on_disconnect = c.tx.iter().find_map(|(_, p)| match p {
            Packet::Disconnect(x) => expiry(&x.properties),
            _ => None,
        });
        let session_ended = on_disconnect
            .or_else(|| c.connect.as_ref().and_then(|(_, x)| expiry(&x.properties)))
            .unwrap_or(0)
            == 0;
        let cut = match (&c.closed, d.publish.qos) {
            (Some((s, _)), QoS::ExactlyOnce)
                if !completed && refused.is_none() && session_ended =>
            {
                Some(s.seq)
            }
            _ => None,
        };
        let (after, rule, why) = match (refused, cut) {
            (Some(r), _) => (r, "MQTT-4.8.2-6", "refused it"),
            (None, Some(x)) => (x, "MQTT-4.8.2-5", "lost its session mid-QoS 2"),
            _ => continue,
        };
        if let Some(o) = deliveries.iter().find(|o| {
            o.stamp.seq > after
                && ix.conns[ix.by_id[&o.conn]].client_id() != c.client_id()
                && src_of(o) == Some(src)
                && shared_groups(
                    ix,
                    ix.conns[ix.by_id[&o.conn]].client_id(),
                    &o.publish.topic,
                    o.stamp.seq,
                )
                .is_some_and(|g| !g.is_disjoint(&groups))
        }) {
            v.fail(
                rule,
                format!(
                    "a message on {} went to {} through a shared subscription after {} {why}",
                    d.publish.topic, o.actor, d.actor
                ),
                vec![src, d.stamp.seq, after, o.stamp.seq],
            );
        }
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
    fn resume_resends_what_is_owed_and_nothing_is_resent_otherwise() {
        let base = |k: &mut Kit| {
            up(k);
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
        };
        let mut k = Kit::new();
        base(&mut k);
        k.wait(2000).step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.4.0-1"]);
        let mut k = Kit::new();
        base(&mut k);
        k.down(2, "device", dup(publish(Some(6), 1, "t", "x", "")));
        k.wait(10)
            .down(2, "device", dup(publish(Some(6), 1, "t", "x", "")));
        let v = checker().check(&k.history());
        assert!(
            v.ok(),
            "a second DUP on the resumed connection is a retransmission of the resend: {v:?}"
        );
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.down(1, "device", publish(Some(6), 1, "t", "x", ""));
        k.wait(10)
            .down(1, "device", dup(publish(Some(6), 1, "t", "x", "")));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-4.4.0-1"]);
    }

    #[test]
    fn one_publishers_messages_arrive_in_order() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "t", 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
        k.session(
            2,
            "cloud",
            connect("c", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(2, "cloud", publish(None, 0, "t", "1", "")).up(
            2,
            "cloud",
            publish(None, 0, "t", "2", ""),
        );
        k.down(1, "device", publish(None, 0, "t", "1", "")).down(
            1,
            "device",
            publish(None, 0, "t", "2", ""),
        );
        assert!(checker().check(&k.history()).ok());
        k.up(2, "cloud", publish(None, 0, "t", "3", "")).up(
            2,
            "cloud",
            publish(None, 0, "t", "4", ""),
        );
        k.down(1, "device", publish(None, 0, "t", "4", "")).down(
            1,
            "device",
            publish(None, 0, "t", "3", ""),
        );
        assert_eq!(
            checker().check(&k.history()).rules(),
            vec!["MQTT-4.6.0-5", "MQTT-4.6.0-6"]
        );
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

    #[test]
    fn a_repeated_qos2_publish_is_forwarded_once() {
        let run = |twice: bool| {
            let mut k = Kit::new();
            up(&mut k);
            k.up(1, "device", subscribe(1, "t", 2, 0, ""))
                .down(1, "device", suback(1, &[2]));
            k.session(
                2,
                "cloud",
                connect("cloud", false, 60, "session_expiry = 60"),
                connack(false, 0, ""),
            );
            k.up(2, "cloud", publish(Some(1), 2, "t", "m", ""));
            k.close(2, "cloud", crate::history::CloseReason::Severed);
            k.session(
                3,
                "cloud",
                connect("cloud", false, 60, "session_expiry = 60"),
                connack(true, 0, ""),
            );
            k.up(3, "cloud", dup(publish(Some(1), 2, "t", "m", "")))
                .down(3, "cloud", ack(PacketType::PubRec, 1, 0))
                .up(3, "cloud", ack(PacketType::PubRel, 1, 0))
                .down(3, "cloud", ack(PacketType::PubComp, 1, 0));
            k.down(1, "device", publish(Some(7), 2, "t", "m", ""));
            if twice {
                k.down(1, "device", publish(Some(8), 2, "t", "m", ""));
            }
            checker().check(&k.history())
        };
        assert!(!run(false).rules().contains(&"MQTT-4.3.3-10"));
        assert_violates(&run(true), "MQTT-4.3.3-10");
    }

    /// Two members of `$share/g/t`, a message to the first, and what
    /// becomes of it.
    fn members(first: impl Fn(&mut Kit), then_second: bool) -> Verdict {
        let mut k = Kit::new();
        for (conn, who) in [(1, "device"), (2, "other")] {
            k.session(conn, who, connect(who, true, 60, ""), connack(false, 0, ""));
            k.up(conn, who, subscribe(1, "$share/g/t", 2, 0, ""))
                .down(conn, who, suback(1, &[2]));
        }
        k.session(
            3,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(3, "cloud", publish(Some(1), 2, "t", "m", ""));
        k.down(1, "device", publish(Some(4), 2, "t", "m", ""));
        first(&mut k);
        if then_second {
            k.down(2, "other", publish(Some(1), 2, "t", "m", ""));
        }
        checker().check(&k.history())
    }

    #[test]
    fn a_shared_message_is_not_passed_on_after_a_refusal_or_a_lost_session() {
        let refuse = |k: &mut Kit| {
            k.up(1, "device", ack(PacketType::PubRec, 4, 0x80));
        };
        let v = members(refuse, false);
        assert!(v.ok(), "{v:?}");
        assert_violates(&members(refuse, true), "MQTT-4.8.2-6");
        let lose = |k: &mut Kit| {
            k.close(1, "device", crate::history::CloseReason::Severed);
        };
        let v = members(lose, false);
        assert!(v.ok(), "{v:?}");
        assert_violates(&members(lose, true), "MQTT-4.8.2-5");
    }

    /// A member of a shared subscription gets no more than its grant: at
    /// it is fine, above it breaks the shared-subscription statement too.
    #[test]
    fn a_shared_members_grant_is_respected() {
        let mut k = Kit::new();
        up(&mut k);
        k.up(1, "device", subscribe(1, "$share/g/t", 1, 0, ""))
            .down(1, "device", suback(1, &[1]));
        k.session(
            2,
            "cloud",
            connect("c", true, 60, ""),
            connack(false, 0, ""),
        );
        for (pid, payload) in [(1, "x"), (2, "y")] {
            k.up(2, "cloud", publish(Some(pid), 2, "t", payload, ""))
                .down(2, "cloud", ack(PacketType::PubRec, pid, 0));
            k.up(2, "cloud", ack(PacketType::PubRel, pid, 0)).down(
                2,
                "cloud",
                ack(PacketType::PubComp, pid, 0),
            );
        }
        k.down(1, "device", publish(Some(9), 1, "t", "x", "")).up(
            1,
            "device",
            ack(PacketType::PubAck, 9, 0),
        );
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");
        k.down(1, "device", publish(Some(10), 2, "t", "y", "")).up(
            1,
            "device",
            ack(PacketType::PubRec, 10, 0),
        );
        let v = checker().check(&k.history());
        assert_violates(&v, "MQTT-4.8.2-3");
        assert_violates(&v, "MQTT-3.8.4-8");
    }
}
