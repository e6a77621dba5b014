//! Which answers the wire still owes: the request/response pairs of MQTT
//! (PUBLISH → PUBACK or PUBREC → PUBREL → PUBCOMP, SUBSCRIBE → SUBACK,
//! UNSUBSCRIBE → UNSUBACK, CONNECT → CONNACK) whose request reached its
//! peer and whose answer has not crossed the proxy yet.
//!
//! A step is over when its consequences have arrived. Silence alone says
//! that only as long as every peer answers within the quiet period; a
//! loaded machine (a QEMU board, a broker, the test's other processes on
//! two cores) can take longer, and then the answer lands in the next step
//! and the trace differs from its reviewed snapshot for no reason the
//! protocol knows. While an answer is owed the wire is not settled yet.
//! Pure: a function of the step's events.

use std::collections::HashSet;

use crate::history::{ConnId, Dir, Event, EventKind, Fate};
use crate::mqtt::{Packet, QoS};

/// What answers a packet, if anything does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Answer {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    SubAck,
    UnsubAck,
    ConnAck,
}

/// One owed answer: on this connection, in this direction, for this id.
type Owed = (ConnId, Dir, Answer, u16);

fn opposite(d: Dir) -> Dir {
    match d {
        Dir::ToBroker => Dir::ToClient,
        Dir::ToClient => Dir::ToBroker,
    }
}

/// An answer of a kind, for a packet identifier.
type Id = (Answer, u16);

/// The answer `p` asks for, and the answer `p` is.
fn pairs(p: &Packet) -> (Option<Id>, Option<Id>) {
    match p {
        Packet::Publish(p) => match (p.qos, p.pid) {
            (QoS::AtLeastOnce, Some(id)) => (Some((Answer::PubAck, id)), None),
            (QoS::ExactlyOnce, Some(id)) => (Some((Answer::PubRec, id)), None),
            _ => (None, None),
        },
        Packet::PubAck(a) => (None, Some((Answer::PubAck, a.pid))),
        // A refusal (5.0 reason code 0x80 and above) ends the exchange.
        Packet::PubRec(a) if a.code >= 0x80 => (None, Some((Answer::PubRec, a.pid))),
        Packet::PubRec(a) => (Some((Answer::PubRel, a.pid)), Some((Answer::PubRec, a.pid))),
        Packet::PubRel(a) => (
            Some((Answer::PubComp, a.pid)),
            Some((Answer::PubRel, a.pid)),
        ),
        Packet::PubComp(a) => (None, Some((Answer::PubComp, a.pid))),
        Packet::Subscribe(s) => (Some((Answer::SubAck, s.pid)), None),
        Packet::SubAck(s) => (None, Some((Answer::SubAck, s.pid))),
        Packet::Unsubscribe(u) => (Some((Answer::UnsubAck, u.pid)), None),
        Packet::UnsubAck(u) => (None, Some((Answer::UnsubAck, u.pid))),
        Packet::Connect(_) => (Some((Answer::ConnAck, 0)), None),
        Packet::ConnAck(_) => (None, Some((Answer::ConnAck, 0))),
        _ => (None, None),
    }
}

/// Whether an answer is still owed after `events`. A request the proxy
/// dropped or holds reached nobody, so nothing is owed for it (until it
/// is released); an answer counts once the proxy has read it, whatever
/// it then does with it; a closed connection owes nothing.
pub(crate) fn answer_owed(events: &[Event]) -> bool {
    let mut owed: HashSet<Owed> = HashSet::new();
    for e in events {
        match &e.kind {
            EventKind::Packet {
                conn,
                dir,
                packet,
                fate,
                ..
            } => {
                let (asks, is) = pairs(packet);
                if let Some((answer, id)) = is {
                    owed.remove(&(*conn, *dir, answer, id));
                }
                let reached = !matches!(fate, Fate::Dropped | Fate::Held);
                if let (Some((answer, id)), true) = (asks, reached) {
                    owed.insert((*conn, opposite(*dir), answer, id));
                }
            }
            EventKind::ConnClosed { conn, .. } => owed.retain(|o| o.0 != *conn),
            _ => {}
        }
    }
    !owed.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Recorder;
    use crate::mqtt::{Ack, Publish};
    use bytes::Bytes;

    fn publish(qos: QoS, pid: Option<u16>) -> Packet {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: "t".into(),
            pid,
            payload: Bytes::new(),
            properties: Default::default(),
        })
    }

    fn ack(pid: u16) -> Ack {
        Ack {
            pid,
            code: 0,
            properties: Default::default(),
        }
    }

    fn packet(r: &Recorder, conn: u32, dir: Dir, packet: Packet, fate: Fate) {
        r.record(EventKind::Packet {
            conn: ConnId(conn),
            actor: "device".into(),
            dir,
            packet,
            raw: Bytes::new(),
            fate,
        });
    }

    fn owed(r: &Recorder) -> bool {
        answer_owed(&r.snapshot().events)
    }

    #[test]
    fn a_qos2_exchange_owes_until_its_pubcomp() {
        let r = Recorder::new();
        let q2 = publish(QoS::ExactlyOnce, Some(7));
        packet(&r, 1, Dir::ToClient, q2, Fate::Forwarded);
        assert!(owed(&r), "PUBREC owed by the device");
        packet(
            &r,
            1,
            Dir::ToBroker,
            Packet::PubRec(ack(7)),
            Fate::Forwarded,
        );
        assert!(owed(&r), "PUBREL owed by the broker");
        packet(
            &r,
            1,
            Dir::ToClient,
            Packet::PubRel(ack(7)),
            Fate::Forwarded,
        );
        assert!(owed(&r), "PUBCOMP owed by the device");
        // Dropped by a fault after the device sent it: the device answered.
        packet(&r, 1, Dir::ToBroker, Packet::PubComp(ack(7)), Fate::Dropped);
        assert!(!owed(&r));
    }

    #[test]
    fn an_answer_counts_only_in_its_direction_and_for_its_id() {
        let r = Recorder::new();
        packet(
            &r,
            1,
            Dir::ToBroker,
            publish(QoS::AtLeastOnce, Some(3)),
            Fate::Forwarded,
        );
        packet(
            &r,
            1,
            Dir::ToBroker,
            Packet::PubAck(ack(3)),
            Fate::Forwarded,
        );
        assert!(owed(&r), "a PUBACK from the same side answers nothing");
        packet(
            &r,
            1,
            Dir::ToClient,
            Packet::PubAck(ack(4)),
            Fate::Forwarded,
        );
        assert!(owed(&r), "another id answers nothing");
        packet(
            &r,
            2,
            Dir::ToClient,
            Packet::PubAck(ack(3)),
            Fate::Forwarded,
        );
        assert!(owed(&r), "another connection answers nothing");
        packet(
            &r,
            1,
            Dir::ToClient,
            Packet::PubAck(ack(3)),
            Fate::Forwarded,
        );
        assert!(!owed(&r));
    }

    #[test]
    fn a_request_nobody_received_or_a_closed_connection_owes_nothing() {
        let r = Recorder::new();
        packet(
            &r,
            1,
            Dir::ToBroker,
            publish(QoS::AtLeastOnce, Some(1)),
            Fate::Held,
        );
        packet(
            &r,
            1,
            Dir::ToBroker,
            publish(QoS::ExactlyOnce, Some(2)),
            Fate::Dropped,
        );
        packet(
            &r,
            1,
            Dir::ToBroker,
            publish(QoS::AtMostOnce, None),
            Fate::Forwarded,
        );
        assert!(!owed(&r));
        packet(
            &r,
            1,
            Dir::ToBroker,
            publish(QoS::AtLeastOnce, Some(1)),
            Fate::Released,
        );
        assert!(owed(&r), "released: it reached the broker now");
        r.record(EventKind::ConnClosed {
            conn: ConnId(1),
            actor: "device".into(),
            reason: crate::history::CloseReason::Severed,
        });
        assert!(!owed(&r));
    }

    #[test]
    fn a_refused_pubrec_ends_the_exchange() {
        let r = Recorder::new();
        packet(
            &r,
            1,
            Dir::ToBroker,
            publish(QoS::ExactlyOnce, Some(9)),
            Fate::Forwarded,
        );
        let mut refusal = ack(9);
        refusal.code = 0x97;
        packet(
            &r,
            1,
            Dir::ToClient,
            Packet::PubRec(refusal),
            Fate::Forwarded,
        );
        assert!(!owed(&r));
    }
}
