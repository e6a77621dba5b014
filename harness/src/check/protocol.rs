//! `protocol`: packet-level rules for both senders of PUBLISH — each client
//! towards the broker, and the broker towards each client — read from the
//! packet stream. State is kept per client id and direction and survives
//! reconnects of a resumed session; a CONNECT with clean session/start 1
//! clears it (and the broker's side when the CONNACK says no session).
//!
//! Sender rules:
//! - QoS > 0 PUBLISH, SUBSCRIBE and UNSUBSCRIBE carry a non-zero packet id
//!   [MQTT-2.3.1-1]; a QoS 0 PUBLISH carries none [MQTT-2.3.1-5] and has
//!   DUP=0 [MQTT-3.3.1-2];
//! - a new packet does not reuse a packet id still in flight (QoS 1 until
//!   PUBACK, QoS 2 until PUBCOMP, SUBSCRIBE/UNSUBSCRIBE until their ack, as
//!   the sender received them) [MQTT-2.3.1-2];
//! - a retransmitted PUBLISH (same id, topic and payload while in flight)
//!   has DUP=1 [MQTT-3.3.1-1];
//! - a QoS 2 PUBLISH is not sent again after its PUBREL [MQTT-4.3.3-1];
//!   PUBREL only after the PUBREC arrived (`pubrel-without-pubrec`);
//! - after reconnecting with a resumed session, the sender resends each
//!   unacknowledged PUBLISH and the PUBREL of each PUBREC'd message within
//!   `resend_within`, if the connection lives that long without faults
//!   [MQTT-4.4.0-1].
//!
//! Receiver rules: a receiver answers each QoS 1 PUBLISH it got with
//! PUBACK [MQTT-4.3.2-2], each QoS 2 PUBLISH with PUBREC and each PUBREL
//! with PUBCOMP [MQTT-4.3.3-2], within `ack_within` while the connection
//! stands and no fault or broker action hides the answer (3.1.1
//! connections; `v5_acks` judges 5.0's). PUBACK/PUBREC answer a QoS 1/2 PUBLISH the receiver got
//! with that id, PUBCOMP answers a PUBREL it got (`ack-without-publish`,
//! `pubcomp-without-pubrel`). A receiver may ack the same id twice (retransmissions), so only
//! acks for ids never received are flagged.
//!
//! On 3.1.1 connections, also:
//! - a PUBLISH sent for the first time (its id, topic and payload never
//!   sent before by a sender whose whole state the run has seen) has DUP=0:
//!   the broker's DUP says only whether its own send repeats
//!   [MQTT-3.3.1-3], a client's new QoS 1 / QoS 2 message goes out with
//!   DUP=0 [MQTT-4.3.2-1] [MQTT-4.3.3-1];
//! - a PUBLISH resent on a resumed session keeps its packet id
//!   [MQTT-2.3.1-3] (the broker's: [MQTT-2.3.1-4], which also numbers the
//!   broker's own packet id rule); a client resends them in the order it
//!   first sent them [MQTT-4.6.0-1];
//! - a client answers in the order it was asked: PUBACKs, PUBRECs and
//!   PUBRELs in the order of the PUBLISHes and PUBRECs that asked for them
//!   [MQTT-4.6.0-2], [MQTT-4.6.0-3], [MQTT-4.6.0-4];
//! - a broker's SUBACK/UNSUBACK carries the id of a request it got
//!   [MQTT-2.3.1-7].
//!
//! Client-side rules apply to the actors listed in `clients`; the broker is
//! always judged.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;

use super::index::{seen, sent, show, Index};
use super::{fmt_d, Checker, Verdict};
use crate::history::{Dir, EventKind, History};
use crate::mqtt::{Packet, QoS};

pub struct ProtocolChecker {
    pub clients: Vec<String>,
    pub resend_within: Duration,
    pub ack_within: Duration,
}

#[derive(Clone, Debug)]
struct Flow {
    qos: QoS,
    topic: String,
    payload: Bytes,
    seq: u64,
    rec_seen: bool,
    rel_sent: bool,
}

#[derive(Default, Clone)]
struct Side {
    /// Sender view: PUBLISH flows in flight.
    inflight: HashMap<u16, Flow>,
    /// Sender view (clients): SUBSCRIBE/UNSUBSCRIBE ids in flight.
    requests: HashMap<u16, u64>,
    /// Sender view: PUBRECs that reached the sender and that no PUBREL of
    /// its own has answered yet, per id. A PUBREL answering one of them is
    /// never "without PUBREC", even when the flow is already complete in
    /// the proxy's order: the receiver's PUBCOMP and a second PUBREC it
    /// sent can cross the sender's answer on the wire, and which of them
    /// the proxy saw first is an order the protocol leaves open.
    recs_owed: HashMap<u16, u32>,
    /// Receiver view: ids of QoS 1 / QoS 2 PUBLISH and PUBREL received.
    got_q1: HashSet<u16>,
    got_q2: HashSet<u16>,
    got_rel: HashSet<u16>,
    /// Receiver view (broker): SUBSCRIBE/UNSUBSCRIBE ids received.
    got_req: HashSet<u16>,
    /// Sender view: the whole of its state is in the history (it started
    /// clean in this run), so a PUBLISH it never sent before is new.
    known: bool,
    /// Sender view: every QoS > 0 PUBLISH sent since the state was reset,
    /// as (packet id, topic, payload).
    ever: HashSet<(u16, String, Bytes)>,
}

impl Side {
    fn reset_sender(&mut self) {
        self.inflight.clear();
        self.requests.clear();
        self.ever.clear();
        self.known = true;
        self.recs_owed.clear();
    }
    fn reset_receiver(&mut self) {
        self.got_q1.clear();
        self.got_q2.clear();
        self.got_rel.clear();
        self.got_req.clear();
    }
}

struct Resend {
    conn: usize,
    from: Duration,
    connack_seq: u64,
    up: bool,
    /// (pid, expects PUBREL, flow)
    owed: Vec<(u16, bool, Flow)>,
}

impl ProtocolChecker {
    fn judged(&self, actor: &str) -> bool {
        self.clients.iter().any(|c| c == "*" || c == actor)
    }
}

impl Checker for ProtocolChecker {
    fn name(&self) -> &str {
        "protocol"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        // (client id, up?) -> side; "up" = client sends PUBLISH to broker.
        let mut sides: HashMap<(String, bool), Side> = HashMap::new();
        let mut resends: Vec<Resend> = Vec::new();
        let mut packets = 0usize;
        for ev in &history.events {
            let EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } = &ev.kind
            else {
                continue;
            };
            let Some(&ci) = ix.by_id.get(conn) else {
                continue;
            };
            let c = &ix.conns[ci];
            let Some(cid) = c.client_key() else {
                continue;
            };
            packets += 1;
            let to_broker = *dir == Dir::ToBroker;
            let (fate_sent, fate_seen) = (sent(*fate), seen(*fate));
            let who_sends = if to_broker {
                actor.clone()
            } else {
                format!("the broker (to {actor})")
            };
            let judge_sender = !to_broker || self.judged(actor);
            // The client's packet id rules, and the same for the server.
            let id_rule = if to_broker {
                "MQTT-2.3.1-2"
            } else {
                "MQTT-2.3.1-4"
            };
            let seqs = vec![ev.seq];
            match packet {
                Packet::Connect(cp) if to_broker && fate_sent && cp.clean_start => {
                    for up in [true, false] {
                        let side = sides.entry((cid.clone(), up)).or_default();
                        side.reset_sender();
                        side.reset_receiver();
                    }
                }
                Packet::ConnAck(a) if !to_broker && fate_sent && a.code == 0 => {
                    if !a.session_present {
                        // The broker has no session: its state is gone. The
                        // client keeps its own in 3.1.1, so only reset ours of it
                        // when it asked for a clean start (done at CONNECT).
                        sides
                            .entry((cid.clone(), false))
                            .or_default()
                            .reset_sender();
                        sides
                            .entry((cid.clone(), true))
                            .or_default()
                            .reset_receiver();
                    } else if c.resumed {
                        for up in [true, false] {
                            if up && !self.judged(actor) {
                                continue;
                            }
                            let side = sides.entry((cid.clone(), up)).or_default();
                            let mut owed: Vec<(u16, bool, Flow)> = side
                                .inflight
                                .iter()
                                .map(|(p, f)| (*p, f.rec_seen, f.clone()))
                                .collect();
                            owed.sort_by_key(|o| o.0);
                            if !owed.is_empty() {
                                resends.push(Resend {
                                    conn: ci,
                                    from: ev.at,
                                    connack_seq: ev.seq,
                                    up,
                                    owed,
                                });
                            }
                        }
                    }
                }
                Packet::Publish(p) => {
                    let side = sides.entry((cid.clone(), to_broker)).or_default();
                    if fate_sent && judge_sender {
                        if p.qos == QoS::AtMostOnce {
                            if p.pid.is_some() {
                                v.fail(
                                    "MQTT-2.3.1-5",
                                    format!(
                                        "{who_sends} sent a QoS 0 PUBLISH on `{}` with a packet id",
                                        p.topic
                                    ),
                                    seqs.clone(),
                                );
                            }
                            if p.dup {
                                v.fail(
                                    "MQTT-3.3.1-2",
                                    format!(
                                        "{who_sends} sent a QoS 0 PUBLISH on `{}` with DUP=1",
                                        p.topic
                                    ),
                                    seqs.clone(),
                                );
                            }
                        } else {
                            match p.pid {
                                None | Some(0) => v.fail(
                                    "MQTT-2.3.1-1",
                                    format!(
                                        "{who_sends} sent a QoS {} PUBLISH on `{}` without a non-zero packet id",
                                        p.qos.as_u8(),
                                        p.topic
                                    ),
                                    seqs.clone(),
                                ),
                                Some(pid) => {
                                    let same = side.inflight.get(&pid).map(|f| {
                                        (f.topic == p.topic && f.payload == p.payload && f.qos == p.qos, f.clone())
                                    });
                                    match same {
                                        Some((true, f)) => {
                                            if !p.dup {
                                                v.fail(
                                                    "MQTT-3.3.1-1",
                                                    format!(
                                                        "{who_sends} resent PUBLISH pid {pid} ({} on `{}`, first sent in event #{}) with DUP=0",
                                                        show(&p.payload),
                                                        p.topic,
                                                        f.seq
                                                    ),
                                                    vec![f.seq, ev.seq],
                                                );
                                            }
                                            if f.rel_sent {
                                                v.fail(
                                                    "MQTT-4.3.3-1",
                                                    format!("{who_sends} resent the QoS 2 PUBLISH pid {pid} after sending its PUBREL"),
                                                    vec![f.seq, ev.seq],
                                                );
                                            }
                                        }
                                        Some((false, f)) => {
                                            v.fail(
                                                id_rule,
                                                format!(
                                                    "{who_sends} sent a new PUBLISH ({} on `{}`) with pid {pid}, still in flight for {} on `{}` (event #{}){}",
                                                    show(&p.payload),
                                                    p.topic,
                                                    show(&f.payload),
                                                    f.topic,
                                                    f.seq,
                                                    if f.qos == QoS::ExactlyOnce { "; a QoS 2 id is free only after PUBCOMP" } else { "" }
                                                ),
                                                vec![f.seq, ev.seq],
                                            );
                                            side.recs_owed.remove(&pid);
                                            side.inflight.insert(pid, new_flow(p, ev.seq));
                                        }
                                        None => {
                                            // Sent before, or in flight under another id (the
                                            // packet id rules judge that resend).
                                            let again = side.ever.contains(&(pid, p.topic.clone(), p.payload.clone()))
                                                || side.inflight.values().any(|f| {
                                                    f.topic == p.topic && f.payload == p.payload && f.qos == p.qos
                                                });
                                            if p.dup && side.known && !again && c.version() != crate::mqtt::Version::V5 {
                                                let rule = match (to_broker, p.qos) {
                                                    (false, _) => "MQTT-3.3.1-3",
                                                    (true, QoS::AtLeastOnce) => "MQTT-4.3.2-1",
                                                    _ => "MQTT-4.3.3-1",
                                                };
                                                v.fail(
                                                    rule,
                                                    format!(
                                                        "{who_sends} sent PUBLISH pid {pid} ({} on `{}`) with DUP=1 though it never sent it before: a first send has DUP=0",
                                                        show(&p.payload),
                                                        p.topic
                                                    ),
                                                    seqs.clone(),
                                                );
                                            }
                                            if let Some(&rs) = side.requests.get(&pid) {
                                                v.fail(
                                                    id_rule,
                                                    format!("{who_sends} sent PUBLISH with pid {pid}, still in flight for a SUBSCRIBE/UNSUBSCRIBE (event #{rs})"),
                                                    vec![rs, ev.seq],
                                                );
                                            }
                                            side.recs_owed.remove(&pid);
                                            side.inflight.insert(pid, new_flow(p, ev.seq));
                                        }
                                    }
                                }
                            }
                        }
                    } else if fate_sent {
                        if let (Some(pid), true) = (p.pid, p.qos != QoS::AtMostOnce) {
                            let keep = side
                                .inflight
                                .get(&pid)
                                .is_some_and(|f| f.topic == p.topic && f.payload == p.payload);
                            if !keep {
                                side.recs_owed.remove(&pid);
                                side.inflight.insert(pid, new_flow(p, ev.seq));
                            }
                        }
                    }
                    if let (true, Some(pid), true) = (fate_sent, p.pid, p.qos != QoS::AtMostOnce) {
                        side.ever.insert((pid, p.topic.clone(), p.payload.clone()));
                    }
                    if fate_seen {
                        if let Some(pid) = p.pid {
                            match p.qos {
                                QoS::AtLeastOnce => {
                                    side.got_q1.insert(pid);
                                }
                                QoS::ExactlyOnce => {
                                    side.got_q2.insert(pid);
                                }
                                QoS::AtMostOnce => {}
                            }
                        }
                    }
                }
                Packet::PubAck(a) | Packet::PubRec(a) => {
                    // Sent by the receiver of the flow: direction is reversed.
                    let is_rec = matches!(packet, Packet::PubRec(_));
                    let side = sides.entry((cid.clone(), !to_broker)).or_default();
                    let got = if is_rec { &side.got_q2 } else { &side.got_q1 };
                    if fate_sent && (!to_broker || self.judged(actor)) && !got.contains(&a.pid) {
                        let acker = if to_broker {
                            actor.clone()
                        } else {
                            format!("the broker (to {actor})")
                        };
                        v.fail(
                            "ack-without-publish",
                            format!(
                                "{acker} sent {} for pid {} but never received a QoS {} PUBLISH with that id",
                                packet.packet_type(),
                                a.pid,
                                if is_rec { 2 } else { 1 }
                            ),
                            seqs.clone(),
                        );
                    }
                    if fate_seen && is_rec && a.code < 0x80 {
                        *side.recs_owed.entry(a.pid).or_default() += 1;
                    }
                    if fate_seen {
                        if let Some(f) = side.inflight.get_mut(&a.pid) {
                            let want = if is_rec {
                                QoS::ExactlyOnce
                            } else {
                                QoS::AtLeastOnce
                            };
                            if f.qos == want {
                                if is_rec && a.code < 0x80 {
                                    f.rec_seen = true;
                                } else {
                                    side.inflight.remove(&a.pid);
                                }
                            }
                        }
                    }
                }
                Packet::PubRel(a) => {
                    // Sent by the flow's sender.
                    let side = sides.entry((cid.clone(), to_broker)).or_default();
                    if fate_sent {
                        let answers_rec = match side.recs_owed.get_mut(&a.pid) {
                            Some(n) if *n > 0 => {
                                *n -= 1;
                                true
                            }
                            _ => false,
                        };
                        match side.inflight.get_mut(&a.pid) {
                            Some(f) if f.rec_seen => f.rel_sent = true,
                            // The flow is complete (or was never seen), but
                            // the sender answers a PUBREC that reached it.
                            _ if answers_rec => {}
                            other => {
                                if judge_sender {
                                    let why = if other.is_some() {
                                        "before the PUBREC reached it"
                                    } else {
                                        "for no QoS 2 message in flight"
                                    };
                                    v.fail(
                                        "pubrel-without-pubrec",
                                        format!("{who_sends} sent PUBREL pid {} {why}", a.pid),
                                        seqs.clone(),
                                    );
                                }
                            }
                        }
                    }
                    if fate_seen {
                        side.got_rel.insert(a.pid);
                    }
                }
                Packet::PubComp(a) => {
                    let side = sides.entry((cid.clone(), !to_broker)).or_default();
                    let judge = if to_broker { self.judged(actor) } else { true };
                    if fate_sent && judge && !side.got_rel.contains(&a.pid) {
                        let acker = if to_broker {
                            actor.clone()
                        } else {
                            format!("the broker (to {actor})")
                        };
                        v.fail(
                            "pubcomp-without-pubrel",
                            format!("{acker} sent PUBCOMP pid {} but never received a PUBREL with that id", a.pid),
                            seqs.clone(),
                        );
                    }
                    if fate_seen {
                        side.inflight.remove(&a.pid);
                        side.got_rel.remove(&a.pid);
                    }
                }
                Packet::Subscribe(_) | Packet::Unsubscribe(_) if to_broker => {
                    let pid = packet.pid().unwrap_or(0);
                    let side = sides.entry((cid.clone(), true)).or_default();
                    if fate_sent && self.judged(actor) {
                        if pid == 0 {
                            v.fail(
                                "MQTT-2.3.1-1",
                                format!("{actor} sent {} with packet id 0", packet.packet_type()),
                                seqs.clone(),
                            );
                        } else if let Some(prev) = side
                            .inflight
                            .get(&pid)
                            .map(|f| f.seq)
                            .or(side.requests.get(&pid).copied())
                        {
                            v.fail(
                                "MQTT-2.3.1-2",
                                format!("{actor} sent {} with pid {pid}, still in flight (event #{prev})", packet.packet_type()),
                                vec![prev, ev.seq],
                            );
                        }
                    }
                    if fate_sent {
                        side.requests.insert(pid, ev.seq);
                    }
                    if fate_seen {
                        side.got_req.insert(pid);
                    }
                }
                Packet::SubAck(_) | Packet::UnsubAck(_) if !to_broker => {
                    let pid = packet.pid().unwrap_or(0);
                    let side = sides.entry((cid.clone(), true)).or_default();
                    if fate_sent && !side.got_req.contains(&pid) {
                        v.fail(
                            "MQTT-2.3.1-7",
                            format!("the broker sent {} pid {pid} to {actor}, which sent no such request", packet.packet_type()),
                            seqs.clone(),
                        );
                    }
                    if fate_seen {
                        side.requests.remove(&pid);
                    }
                }
                _ => {}
            }
        }
        // Resending after a resumed session.
        for r in &resends {
            let c = &ix.conns[r.conn];
            let end = c.end(ix.end);
            let sender_is_client = r.up;
            let who = if sender_is_client {
                c.actor.clone()
            } else {
                format!("the broker (to {})", c.actor)
            };
            let v311 = c.version() != crate::mqtt::Version::V5;
            // (seq of the resend, seq of the first send) of each PUBLISH resent.
            let mut resent: Vec<(u64, u64)> = Vec::new();
            for (pid, rel, flow) in &r.owed {
                let found = c_packets(history, c.id, r.up).find(|(_, p)| match p {
                    Packet::Publish(pb) => !*rel && pb.pid == Some(*pid),
                    Packet::PubRel(a) => *rel && a.pid == *pid,
                    _ => false,
                });
                if let Some((seq, _)) = found {
                    if !*rel {
                        resent.push((seq, flow.seq));
                    }
                    continue;
                }
                // The same message resent (DUP=1) under another packet id.
                let moved = c_packets(history, c.id, r.up).find_map(|(seq, p)| match p {
                    Packet::Publish(pb)
                        if !*rel
                            && pb.dup
                            && pb.pid != Some(*pid)
                            && pb.qos == flow.qos
                            && pb.topic == flow.topic
                            && pb.payload == flow.payload =>
                    {
                        Some((seq, pb.pid.unwrap_or(0)))
                    }
                    _ => None,
                });
                if let (true, Some((seq, other))) = (v311, moved) {
                    v.fail(
                        if sender_is_client {
                            "MQTT-2.3.1-3"
                        } else {
                            "MQTT-2.3.1-4"
                        },
                        format!(
                            "{who} resent {} on `{}` (first sent as pid {pid}) as pid {other}: a resend keeps its packet id",
                            show(&flow.payload),
                            flow.topic
                        ),
                        vec![flow.seq, seq],
                    );
                    continue;
                }
                let long_enough = end.saturating_sub(r.from) >= self.resend_within;
                if !long_enough || !ix.undisturbed(&c.actor, r.from, r.from + self.resend_within) {
                    v.note(format!(
                        "{who} did not resend pid {pid} on {}, but the connection was too short or under a fault to judge",
                        c.id
                    ));
                    continue;
                }
                v.fail(
                    "MQTT-4.4.0-1",
                    format!(
                        "{who} resumed its session on {} but did not resend {} for pid {pid} ({} on `{}`) within {}",
                        c.id,
                        if *rel { "the PUBREL" } else { "the unacknowledged PUBLISH" },
                        show(&flow.payload),
                        flow.topic,
                        fmt_d(self.resend_within)
                    ),
                    vec![flow.seq, r.connack_seq],
                );
            }
            // A client resends its PUBLISHes in the order it first sent them.
            resent.sort_unstable();
            if let (true, true, Some(w)) = (
                v311,
                sender_is_client,
                resent.windows(2).find(|w| w[0].1 > w[1].1),
            ) {
                v.fail(
                    "MQTT-4.6.0-1",
                    format!(
                        "{who} resent its unacknowledged PUBLISHes on {} out of their original order: the one first sent in event #{} went again before the one first sent in event #{}",
                        c.id, w[0].1, w[1].1
                    ),
                    vec![w[1].1, w[0].1, w[0].0, w[1].0],
                );
            }
        }
        self.owed_acks(history, &ix, &mut v);
        self.answer_order(history, &ix, &mut v);
        v.notes.insert(
            0,
            format!(
                "{packets} packets on {} connections; client rules for {}",
                ix.conns.len(),
                self.clients.join(", ")
            ),
        );
        v
    }
}

/// An answer a receiver owes: (ack type, pid, event that asked, when, rule).
struct Owed {
    ack: crate::mqtt::PacketType,
    pid: u16,
    seq: u64,
    at: Duration,
    /// The receiver is the client (the packet went to it).
    client: bool,
    /// Another kind of ack the receiver sent for that id instead.
    instead: Option<crate::mqtt::PacketType>,
}

impl ProtocolChecker {
    /// PUBACK for QoS 1, PUBREC for QoS 2, PUBCOMP for PUBREL: owed by the
    /// receiver within `ack_within` on the connection that carried the
    /// request. An answer counts when sent (a fault may hold it on its way).
    fn owed_acks(&self, history: &History, ix: &Index, v: &mut Verdict) {
        use crate::mqtt::PacketType as T;
        let mut owed: HashMap<crate::history::ConnId, Vec<Owed>> = HashMap::new();
        for ev in &history.events {
            let EventKind::Packet {
                conn,
                dir,
                packet,
                fate,
                ..
            } = &ev.kind
            else {
                continue;
            };
            let to_client = *dir == Dir::ToClient;
            let list = owed.entry(*conn).or_default();
            let ask = |ack| Owed {
                ack,
                pid: packet.pid().unwrap_or(0),
                seq: ev.seq,
                at: ev.at,
                client: to_client,
                instead: None,
            };
            match packet {
                Packet::Publish(p) if seen(*fate) && p.pid.is_some() => match p.qos {
                    QoS::AtLeastOnce => list.push(ask(T::PubAck)),
                    QoS::ExactlyOnce => list.push(ask(T::PubRec)),
                    QoS::AtMostOnce => {}
                },
                Packet::PubRel(_) if seen(*fate) => list.push(ask(T::PubComp)),
                Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubComp(a) if sent(*fate) => {
                    let t = packet.packet_type();
                    // Sent by the receiver: the request went the other way.
                    if let Some(i) = list
                        .iter()
                        .position(|o| o.ack == t && o.pid == a.pid && o.client != to_client)
                    {
                        list.remove(i);
                    } else if let Some(o) = list
                        .iter_mut()
                        .find(|o| o.pid == a.pid && o.client != to_client && o.instead.is_none())
                    {
                        o.instead = Some(t);
                    }
                }
                _ => {}
            }
        }
        let mut conns: Vec<_> = owed.into_iter().collect();
        conns.sort_by_key(|(c, _)| *c);
        for (id, list) in conns {
            let Some(&ci) = ix.by_id.get(&id) else {
                continue;
            };
            let c = &ix.conns[ci];
            if c.version() == crate::mqtt::Version::V5 {
                continue;
            }
            let end = c.end(ix.end);
            for o in list {
                if o.client && !self.judged(&c.actor) {
                    continue;
                }
                let limit = o.at + self.ack_within;
                if limit >= end
                    || !ix.undisturbed(&c.actor, o.at, limit)
                    || ix.broker_down_between(o.at, limit).is_some()
                {
                    continue;
                }
                let (rule, asked) = match o.ack {
                    T::PubAck => ("MQTT-4.3.2-2", "QoS 1 PUBLISH"),
                    T::PubRec => ("MQTT-4.3.3-2", "QoS 2 PUBLISH"),
                    _ => ("MQTT-4.3.3-2", "PUBREL"),
                };
                let who = if o.client {
                    c.actor.clone()
                } else {
                    format!("the broker (to {})", c.actor)
                };
                v.fail(
                    rule,
                    format!(
                        "{who} got {asked} pid {} on {} and sent no {} for it within {} while the connection stood{}",
                        o.pid,
                        c.id,
                        o.ack,
                        fmt_d(self.ack_within),
                        o.instead
                            .map(|t| format!(" (it answered {t} instead)"))
                            .unwrap_or_default()
                    ),
                    vec![o.seq],
                );
            }
        }
    }
}

/// A packet a client received and must answer, in the order received.
struct Asked {
    pid: u16,
    seq: u64,
    /// An answer to a packet received later already went out: (its pid, seq).
    overtaken: Option<(u16, u64)>,
}

impl ProtocolChecker {
    /// A client answers in the order it was asked (3.1.1 §4.6): PUBACKs in
    /// the order of the QoS 1 PUBLISHes [MQTT-4.6.0-2], PUBRECs in the order
    /// of the QoS 2 PUBLISHes [MQTT-4.6.0-3], PUBRELs in the order of the
    /// PUBRECs [MQTT-4.6.0-4] — on one connection (a resend on a resumed
    /// session answers nothing asked on it). A packet asked twice (a DUP
    /// resend) keeps its first place; one never answered is not an order
    /// matter (the ack rules judge it).
    fn answer_order(&self, history: &History, ix: &Index, v: &mut Verdict) {
        use crate::mqtt::PacketType as T;
        // (conn, kind of answer) -> questions in the order they arrived.
        let mut asked: HashMap<(crate::history::ConnId, T), Vec<Asked>> = HashMap::new();
        for ev in &history.events {
            let EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } = &ev.kind
            else {
                continue;
            };
            if !self.judged(actor)
                || ix
                    .by_id
                    .get(conn)
                    .is_none_or(|&i| ix.conns[i].version() == crate::mqtt::Version::V5)
            {
                continue;
            }
            let question = match packet {
                Packet::Publish(p) if p.qos == QoS::AtLeastOnce => Some(T::PubAck),
                Packet::Publish(p) if p.qos == QoS::ExactlyOnce => Some(T::PubRec),
                Packet::PubRec(_) => Some(T::PubRel),
                _ => None,
            };
            match (*dir, question) {
                (Dir::ToClient, Some(answer)) if seen(*fate) => {
                    let pid = packet.pid().unwrap_or(0);
                    let list = asked.entry((*conn, answer)).or_default();
                    if !list.iter().any(|a| a.pid == pid) {
                        list.push(Asked {
                            pid,
                            seq: ev.seq,
                            overtaken: None,
                        });
                    }
                }
                (Dir::ToBroker, _) if sent(*fate) => {
                    let t = packet.packet_type();
                    if !matches!(t, T::PubAck | T::PubRec | T::PubRel) {
                        continue;
                    }
                    let pid = packet.pid().unwrap_or(0);
                    let Some(list) = asked.get_mut(&(*conn, t)) else {
                        continue;
                    };
                    let Some(i) = list.iter().position(|a| a.pid == pid) else {
                        continue;
                    };
                    let a = list.remove(i);
                    for earlier in &mut list[..i] {
                        earlier.overtaken.get_or_insert((pid, ev.seq));
                    }
                    if let Some((later, later_seq)) = a.overtaken {
                        let (rule, asked_what) = match t {
                            T::PubAck => ("MQTT-4.6.0-2", "QoS 1 PUBLISH"),
                            T::PubRec => ("MQTT-4.6.0-3", "QoS 2 PUBLISH"),
                            _ => ("MQTT-4.6.0-4", "PUBREC"),
                        };
                        v.fail(
                            rule,
                            format!(
                                "{actor} sent {t} pid {pid} after {t} pid {later}, though the {asked_what} pid {pid} reached it first"
                            ),
                            vec![a.seq, later_seq, ev.seq],
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

fn new_flow(p: &crate::mqtt::Publish, seq: u64) -> Flow {
    Flow {
        qos: p.qos,
        topic: p.topic.clone(),
        payload: p.payload.clone(),
        seq,
        rec_seen: false,
        rel_sent: false,
    }
}

/// Packets sent on a connection in one direction (`up`: by the client).
fn c_packets(
    history: &History,
    id: crate::history::ConnId,
    up: bool,
) -> impl Iterator<Item = (u64, &Packet)> {
    history.events.iter().filter_map(move |e| match &e.kind {
        EventKind::Packet {
            conn,
            dir,
            packet,
            fate,
            ..
        } if *conn == id && (*dir == Dir::ToBroker) == up && sent(*fate) => Some((e.seq, packet)),
        _ => None,
    })
}
