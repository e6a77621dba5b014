//! Which answers the wire still owes: the request/response pairs of MQTT
//! (PUBLISH → PUBACK or PUBREC → PUBREL → PUBCOMP, SUBSCRIBE → SUBACK,
//! UNSUBSCRIBE → UNSUBACK, CONNECT → CONNACK) whose request reached its
//! peer and whose answer has not crossed the proxy yet; and the resends a
//! resumed session owes: after a CONNACK with session present 1, both ends
//! must resend every QoS 1/2 PUBLISH and PUBREL still unacknowledged from
//! the session's earlier connections (MQTT-4.4.0-1, 5.0 likewise), in
//! whatever step those were sent.
//!
//! A step is over when its consequences have arrived. Silence alone says
//! that only as long as every peer answers within the quiet period; a
//! loaded machine (a QEMU board, a broker, the test's other processes on
//! two cores) can take longer, and then the answer lands in the next step
//! and the trace differs from its reviewed snapshot for no reason the
//! protocol knows. While an answer or a resend is owed the wire is not
//! settled yet. Only what this step's events made owed counts (a request
//! left unanswered in an earlier step is the checkers' business), but the
//! session's in-flight state comes from the whole history: a resend after
//! a reconnect answers nothing of the reconnect step itself.
//! Pure: a function of the history and where the step began.

use std::collections::{BTreeMap, HashMap, HashSet};

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
    /// The resend of an unacknowledged PUBLISH or PUBREL on a resumed
    /// session (either packet settles it: a PUBREC may have come since).
    Resend,
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

/// The packet id `p` carries if it is what a resumed session resends.
fn resent(p: &Packet) -> Option<u16> {
    match p {
        Packet::Publish(pb) if pb.qos != QoS::AtMostOnce => pb.pid,
        Packet::PubRel(a) => Some(a.pid),
        _ => None,
    }
}

/// Where an unacknowledged exchange one end started stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// PUBLISH sent, no PUBACK/PUBREC received: the PUBLISH is resent.
    Publish,
    /// PUBREL sent (PUBREC received), no PUBCOMP: the PUBREL is resent.
    PubRel,
}

/// A session's unacknowledged exchanges, per end, by packet id.
#[derive(Default)]
struct InFlight {
    client: BTreeMap<u16, Stage>,
    broker: BTreeMap<u16, Stage>,
}

impl InFlight {
    /// The end that sent packets in direction `d`.
    fn sender(&mut self, d: Dir) -> &mut BTreeMap<u16, Stage> {
        match d {
            Dir::ToBroker => &mut self.client,
            Dir::ToClient => &mut self.broker,
        }
    }

    /// Takes one packet into the sending end's (for requests) or the
    /// receiving end's (for answers) state. `received`: the packet reached
    /// its peer (the proxy did not drop or hold it).
    fn note(&mut self, d: Dir, p: &Packet, received: bool) {
        match p {
            // The sender sent it, whatever the proxy then did with it.
            Packet::Publish(pb) if pb.qos != QoS::AtMostOnce => {
                if let Some(id) = pb.pid {
                    self.sender(d).insert(id, Stage::Publish);
                }
            }
            Packet::PubRel(a) => {
                self.sender(d).insert(a.pid, Stage::PubRel);
            }
            // An answer changes the state of the end it is for, once that
            // end has it.
            Packet::PubAck(a) | Packet::PubComp(a) if received => {
                self.sender(opposite(d)).remove(&a.pid);
            }
            Packet::PubRec(a) if received && a.code >= 0x80 => {
                self.sender(opposite(d)).remove(&a.pid);
            }
            Packet::PubRec(a) if received => {
                if let Some(s) = self.sender(opposite(d)).get_mut(&a.pid) {
                    *s = Stage::PubRel;
                }
            }
            _ => {}
        }
    }
}

/// Whether an answer or a resend is still owed after `events` (the whole
/// history), counting only what the events from index `from` on (the
/// step) made owed. A request the proxy dropped or holds reached nobody,
/// so nothing is owed for it (until it is released); an answer counts
/// once the proxy has read it, whatever it then does with it; a closed
/// connection owes nothing. Sessions are known by client identifier.
pub(crate) fn answer_owed(events: &[Event], from: usize) -> bool {
    let mut owed: HashSet<Owed> = HashSet::new();
    let mut sessions: HashMap<String, InFlight> = HashMap::new();
    let mut client_of: HashMap<ConnId, String> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let in_step = i >= from;
        match &e.kind {
            EventKind::Packet {
                conn,
                dir,
                packet,
                fate,
                ..
            } => {
                let reached = !matches!(fate, Fate::Dropped | Fate::Held);
                let (asks, is) = pairs(packet);
                if let Some((answer, id)) = is {
                    owed.remove(&(*conn, *dir, answer, id));
                }
                if let Some(id) = resent(packet) {
                    owed.remove(&(*conn, *dir, Answer::Resend, id));
                }
                if let (Some((answer, id)), true, true) = (asks, reached, in_step) {
                    owed.insert((*conn, opposite(*dir), answer, id));
                }
                match packet {
                    Packet::Connect(c) if *dir == Dir::ToBroker => {
                        // A clean start ends the old session on both ends.
                        if c.clean_start {
                            sessions.remove(&c.client_id);
                        }
                        client_of.insert(*conn, c.client_id.clone());
                    }
                    Packet::ConnAck(a) if *dir == Dir::ToClient && a.code == 0 && reached => {
                        let Some(id) = client_of.get(conn) else {
                            continue;
                        };
                        if !a.session_present {
                            // No session at the broker: the client drops its
                            // state too (MQTT-3.2.2-4 and 5.0's 3.2.2-5).
                            sessions.remove(id);
                        } else if in_step {
                            let s = sessions.entry(id.clone()).or_default();
                            for (d, pids) in
                                [(Dir::ToBroker, &s.client), (Dir::ToClient, &s.broker)]
                            {
                                for pid in pids.keys() {
                                    owed.insert((*conn, d, Answer::Resend, *pid));
                                }
                            }
                        }
                    }
                    _ => {
                        if let Some(id) = client_of.get(conn) {
                            sessions
                                .entry(id.clone())
                                .or_default()
                                .note(*dir, packet, reached);
                        }
                    }
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
        answer_owed(&r.snapshot().events, 0)
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

    fn connect(r: &Recorder, conn: u32, clean: bool) {
        let c = crate::mqtt::Connect {
            version: crate::mqtt::Version::V311,
            client_id: "dut".into(),
            clean_start: clean,
            keep_alive: 60,
            will: None,
            username: None,
            password: None,
            properties: Default::default(),
        };
        r.record(EventKind::ConnOpened {
            conn: ConnId(conn),
            actor: "device".into(),
        });
        packet(r, conn, Dir::ToBroker, Packet::Connect(c), Fate::Forwarded);
    }

    fn connack(r: &Recorder, conn: u32, session_present: bool) {
        let a = crate::mqtt::ConnAck {
            session_present,
            code: 0,
            properties: Default::default(),
        };
        packet(r, conn, Dir::ToClient, Packet::ConnAck(a), Fate::Forwarded);
    }

    fn sever(r: &Recorder, conn: u32) {
        r.record(EventKind::ConnClosed {
            conn: ConnId(conn),
            actor: "device".into(),
            reason: crate::history::CloseReason::Severed,
        });
    }

    /// Owed counting from the step that began at `anchor`.
    fn owed_from(r: &Recorder, anchor: usize) -> bool {
        answer_owed(&r.snapshot().events, anchor)
    }

    /// The device's PUBREL was lost and the link cut (qos2_out_cut_after_
    /// pubrec): the reconnect step owes the device's resend, then the
    /// broker's PUBCOMP, though no packet of that step asked for either.
    #[test]
    fn a_resumed_session_owes_the_resends_of_its_earlier_connections() {
        let r = Recorder::new();
        connect(&r, 1, false);
        connack(&r, 1, false);
        let q2 = publish(QoS::ExactlyOnce, Some(5));
        packet(&r, 1, Dir::ToBroker, q2, Fate::Forwarded);
        packet(
            &r,
            1,
            Dir::ToClient,
            Packet::PubRec(ack(5)),
            Fate::Forwarded,
        );
        packet(&r, 1, Dir::ToBroker, Packet::PubRel(ack(5)), Fate::Dropped);
        sever(&r, 1);
        let anchor = r.len();
        assert!(!owed_from(&r, anchor), "a new step owes nothing yet");
        connect(&r, 2, false);
        assert!(owed_from(&r, anchor), "CONNACK owed");
        connack(&r, 2, true);
        assert!(owed_from(&r, anchor), "the device owes the PUBREL's resend");
        // Not a PUBLISH: after PUBREC the device resends PUBREL only, and
        // the first PUBREL of the new connection settles the resend.
        packet(
            &r,
            2,
            Dir::ToBroker,
            Packet::PubRel(ack(5)),
            Fate::Forwarded,
        );
        assert!(owed_from(&r, anchor), "then the broker owes PUBCOMP");
        packet(
            &r,
            2,
            Dir::ToClient,
            Packet::PubComp(ack(5)),
            Fate::Forwarded,
        );
        assert!(!owed_from(&r, anchor));
    }

    /// The broker's side too (board_reset_mid_qos2_in): its PUBLISH whose
    /// PUBREC the proxy dropped is resent after the device resumes.
    #[test]
    fn the_broker_owes_its_resends_on_a_resumed_session() {
        let r = Recorder::new();
        connect(&r, 1, false);
        connack(&r, 1, false);
        let q2 = publish(QoS::ExactlyOnce, Some(1));
        packet(&r, 1, Dir::ToClient, q2.clone(), Fate::Forwarded);
        packet(&r, 1, Dir::ToBroker, Packet::PubRec(ack(1)), Fate::Dropped);
        sever(&r, 1);
        let anchor = r.len();
        connect(&r, 2, false);
        connack(&r, 2, true);
        assert!(owed_from(&r, anchor), "the broker owes the PUBLISH again");
        packet(&r, 2, Dir::ToClient, q2, Fate::Forwarded);
        assert!(owed_from(&r, anchor), "PUBREC owed by the device");
        packet(
            &r,
            2,
            Dir::ToBroker,
            Packet::PubRec(ack(1)),
            Fate::Forwarded,
        );
        packet(
            &r,
            2,
            Dir::ToClient,
            Packet::PubRel(ack(1)),
            Fate::Forwarded,
        );
        packet(
            &r,
            2,
            Dir::ToBroker,
            Packet::PubComp(ack(1)),
            Fate::Forwarded,
        );
        assert!(!owed_from(&r, anchor));
    }

    /// Tricky but legal: nothing to resend when every exchange completed,
    /// when the broker kept no session (session present 0) or the client
    /// started clean; and an exchange left open in an earlier step owes
    /// nothing to a step that does not resume the session.
    #[test]
    fn no_resend_is_owed_without_something_in_flight_and_a_resumed_session() {
        let done = Recorder::new();
        connect(&done, 1, false);
        connack(&done, 1, false);
        packet(
            &done,
            1,
            Dir::ToBroker,
            publish(QoS::AtLeastOnce, Some(2)),
            Fate::Forwarded,
        );
        packet(
            &done,
            1,
            Dir::ToClient,
            Packet::PubAck(ack(2)),
            Fate::Forwarded,
        );
        sever(&done, 1);
        let anchor = done.len();
        connect(&done, 2, false);
        connack(&done, 2, true);
        assert!(!owed_from(&done, anchor), "everything was acknowledged");

        for (clean, sp) in [(false, false), (true, false)] {
            let r = Recorder::new();
            connect(&r, 1, false);
            connack(&r, 1, false);
            packet(
                &r,
                1,
                Dir::ToBroker,
                publish(QoS::AtLeastOnce, Some(2)),
                Fate::Forwarded,
            );
            sever(&r, 1);
            let anchor = r.len();
            connect(&r, 2, clean);
            connack(&r, 2, sp);
            assert!(!owed_from(&r, anchor), "clean={clean} sp={sp}");
        }

        // The PUBACK is still owed on the connection that stands, but that
        // was the publish step's to wait for, not a later one's.
        let r = Recorder::new();
        connect(&r, 1, false);
        connack(&r, 1, false);
        packet(
            &r,
            1,
            Dir::ToBroker,
            publish(QoS::AtLeastOnce, Some(3)),
            Fate::Forwarded,
        );
        assert!(owed_from(&r, 0));
        let anchor = r.len();
        r.record(EventKind::Actor {
            actor: "device".into(),
            what: "a later step".into(),
        });
        assert!(!owed_from(&r, anchor));
    }
}
