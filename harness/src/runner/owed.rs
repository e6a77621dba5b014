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
//!
//! An answer is waited for only while the end that owes it can give it.
//! A broker the scenario froze (`pause`), stopped, killed or cut off its
//! network answers nothing until it is back (`unpause`, `start`,
//! `reconnect`); nor does either end of a lane that is blackholed (what
//! it may have sent stays behind the outage), nor a board whose own
//! network is down (`wifi off`, `ip blackhole`) until it is up again; and
//! a board that was reset, lost power, rebooted or crashed never answers
//! on a connection from before that: its TCP state went with its RAM.
//! Waiting for those is waiting for nothing: the wire is settled as far
//! as anything can still cross it. The fault state comes from the same
//! history (its `Fault`, `Broker` and `Board` events), so it is in effect
//! from the moment it is recorded and ends with the event that ends it.
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
    let mut mute = Mute::default();
    for (i, e) in events.iter().enumerate() {
        let in_step = i >= from;
        match &e.kind {
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } => {
                mute.opened(*conn, actor);
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
            EventKind::ConnOpened { conn, actor } => mute.opened(*conn, actor),
            EventKind::ConnClosed { conn, .. } => {
                owed.retain(|o| o.0 != *conn);
                mute.closed(*conn);
            }
            EventKind::Fault { target, fault } => mute.fault(target, fault),
            EventKind::Broker { what } => mute.broker(what),
            EventKind::Board { what } => mute.board(what),
            _ => {}
        }
    }
    owed.iter().any(|o| mute.can_answer(o))
}

/// The actor a board's connections belong to (its proxy lane, its own
/// network): a board is always the scenario's device.
const BOARD: &str = "device";

/// Which ends cannot answer now, by the faults the history recorded.
#[derive(Default)]
struct Mute {
    /// `pause` until `unpause`: the broker is frozen, its sockets open.
    frozen: bool,
    /// `stop` or `kill` until `start` (or a restart): no broker at all.
    down: bool,
    /// `disconnect` until `reconnect`: the broker's container is off its
    /// network.
    cut_off: bool,
    /// Actors whose proxy lane is blackholed (`*`: every lane).
    blackholed: HashSet<String>,
    /// Actors whose board's radio is off (`wifi off` until `wifi on`).
    radio_off: HashSet<String>,
    /// Actors' board networks, and the directions an `ip blackhole` stops
    /// there (either way will do: a request the board cannot receive is as
    /// unanswerable as an answer it cannot send).
    ip_blackholed: HashSet<(String, Dir)>,
    /// Open connections and their actors.
    open: HashMap<ConnId, String>,
    /// Connections whose client end was a board that has since lost its
    /// RAM: it will never answer on them.
    forgotten: HashSet<ConnId>,
}

impl Mute {
    fn opened(&mut self, conn: ConnId, actor: &str) {
        self.open.entry(conn).or_insert_with(|| actor.to_string());
    }

    fn closed(&mut self, conn: ConnId) {
        self.open.remove(&conn);
        self.forgotten.remove(&conn);
    }

    /// A `Fault` event: the proxy's (`blackhole`, `heal`; see
    /// `proxy::Fault::name`) or the board network's (`wifi off`, `ip
    /// blackhole to_broker`, `ip heal`...; see `net::NetFault::name`).
    fn fault(&mut self, target: &str, text: &str) {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["blackhole", ..] => {
                self.blackholed.insert(target.to_string());
            }
            ["heal", ..] if target == "*" => self.blackholed.clear(),
            ["heal", ..] => {
                self.blackholed.remove(target);
            }
            ["wifi", "off"] => {
                self.radio_off.insert(target.to_string());
            }
            // `wifi roam` drops the link and brings it back on another
            // network.
            ["wifi", "on" | "roam"] => {
                self.radio_off.remove(target);
            }
            ["ip", "blackhole", rest @ ..] => {
                for d in ip_dirs(rest) {
                    self.ip_blackholed.insert((target.to_string(), d));
                }
            }
            ["ip", "heal", rest @ ..] => {
                for d in ip_dirs(rest) {
                    self.ip_blackholed.remove(&(target.to_string(), d));
                }
            }
            // Ends every `ip` fault, both ways.
            ["ip", "clear", ..] => {
                for d in [Dir::ToBroker, Dir::ToClient] {
                    self.ip_blackholed.remove(&(target.to_string(), d));
                }
            }
            _ => {}
        }
    }

    /// Whether an actor's board network carries nothing one way or both.
    fn unplugged(&self, actor: &str) -> bool {
        self.radio_off.contains(actor)
            || [Dir::ToBroker, Dir::ToClient]
                .into_iter()
                .any(|d| self.ip_blackholed.contains(&(actor.to_string(), d)))
    }

    /// A `Broker` event: the step's action (`broker::Broker::act`), or
    /// `started (...)` when the run began.
    fn broker(&mut self, what: &str) {
        match what.split_whitespace().next().unwrap_or("") {
            "pause" => self.frozen = true,
            "unpause" => self.frozen = false,
            "stop" | "kill" => self.down = true,
            // A broker started again is a new process: neither down nor
            // frozen.
            "start" | "started" | "restart" | "kill_restart" => {
                self.down = false;
                self.frozen = false;
            }
            "disconnect" => self.cut_off = true,
            "reconnect" => self.cut_off = false,
            _ => {}
        }
    }

    /// A `Board` event: anything but `booted` (a reset, a power cycle, a
    /// reboot, a watchdog reset, a crash) lost the board's RAM, and with
    /// it every connection it had.
    fn board(&mut self, what: &str) {
        if what == "booted" {
            return;
        }
        for (conn, actor) in &self.open {
            if actor == BOARD {
                self.forgotten.insert(*conn);
            }
        }
    }

    /// Whether the end that owes `o` can still send it.
    fn can_answer(&self, o: &Owed) -> bool {
        let (conn, dir, ..) = *o;
        let actor = self.open.get(&conn).map(String::as_str).unwrap_or("");
        if self.blackholed.contains(actor) || self.blackholed.contains("*") {
            return false;
        }
        match dir {
            // Travelling to the client: the broker owes it.
            Dir::ToClient => !(self.frozen || self.down || self.cut_off),
            Dir::ToBroker => !self.unplugged(actor) && !self.forgotten.contains(&conn),
        }
    }
}

/// The directions an `ip` fault's text names at its end (`to_broker`,
/// `to_client`; none: both), as `net::NetFault::name` writes them.
fn ip_dirs(rest: &[&str]) -> Vec<Dir> {
    match rest.last() {
        Some(&"to_broker") => vec![Dir::ToBroker],
        Some(&"to_client") => vec![Dir::ToClient],
        _ => vec![Dir::ToBroker, Dir::ToClient],
    }
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

    fn fault(r: &Recorder, target: &str, fault: &str) {
        r.record(EventKind::Fault {
            target: target.into(),
            fault: fault.into(),
        });
    }

    fn broker(r: &Recorder, what: &str) {
        r.record(EventKind::Broker { what: what.into() });
    }

    fn board(r: &Recorder, what: &str) {
        r.record(EventKind::Board { what: what.into() });
    }

    /// broker_pause: the device publishes at QoS 1 to a frozen broker. Its
    /// PUBACK cannot come until the thaw, so the publish step (and the
    /// `no_message` step after it) owe nothing; the 5 s waited for it there
    /// were most of the suite's longest scenario. Once thawed, the broker
    /// owes it again.
    #[test]
    fn a_frozen_broker_owes_nothing_until_it_thaws() {
        let r = Recorder::new();
        connect(&r, 1, true);
        connack(&r, 1, false);
        broker(&r, "pause");
        let anchor = r.len();
        packet(
            &r,
            1,
            Dir::ToBroker,
            publish(QoS::AtLeastOnce, Some(1)),
            Fate::Forwarded,
        );
        assert!(!owed_from(&r, anchor), "a frozen broker cannot answer");
        broker(&r, "unpause");
        assert!(owed_from(&r, anchor), "thawed, it owes the PUBACK again");
        packet(
            &r,
            1,
            Dir::ToClient,
            Packet::PubAck(ack(1)),
            Fate::Forwarded,
        );
        assert!(!owed_from(&r, anchor));
    }

    /// Tricky but legal: a frozen broker excuses only what the broker owes.
    /// Its PUBLISH that reached the device before the freeze still owes the
    /// device's PUBACK, which the proxy reads whatever the broker does.
    #[test]
    fn a_frozen_broker_excuses_only_its_own_answers() {
        let r = Recorder::new();
        connect(&r, 1, true);
        connack(&r, 1, false);
        let anchor = r.len();
        packet(
            &r,
            1,
            Dir::ToClient,
            publish(QoS::AtLeastOnce, Some(4)),
            Fate::Forwarded,
        );
        broker(&r, "pause");
        assert!(owed_from(&r, anchor), "the device can still answer");
        packet(
            &r,
            1,
            Dir::ToClient,
            Packet::PubAck(ack(4)),
            Fate::Forwarded,
        );
        assert!(
            owed_from(&r, anchor),
            "a PUBACK the wrong way settles nothing"
        );
        packet(
            &r,
            1,
            Dir::ToBroker,
            Packet::PubAck(ack(4)),
            Fate::Forwarded,
        );
        assert!(!owed_from(&r, anchor));
    }

    /// Every way the broker goes silent, and the event that ends each; a
    /// restart is a new broker, neither down nor frozen.
    #[test]
    fn a_broker_that_is_down_or_cut_off_owes_nothing_until_it_is_back() {
        for (silence, back) in [
            ("stop", "start"),
            ("kill", "start"),
            ("kill", "restart"),
            ("pause", "restart"),
            ("disconnect", "reconnect"),
        ] {
            let r = Recorder::new();
            connect(&r, 1, true);
            connack(&r, 1, false);
            let anchor = r.len();
            packet(
                &r,
                1,
                Dir::ToBroker,
                publish(QoS::ExactlyOnce, Some(2)),
                Fate::Forwarded,
            );
            broker(&r, silence);
            assert!(!owed_from(&r, anchor), "after {silence}");
            // Thawing what was never frozen brings back nothing.
            if silence != "pause" {
                broker(&r, "unpause");
                assert!(!owed_from(&r, anchor), "after {silence}, unpause");
            }
            broker(&r, back);
            assert!(owed_from(&r, anchor), "after {silence}, {back}");
        }
    }

    /// A blackholed lane carries nothing either way: neither end's answer
    /// crosses it until the heal. Other lanes still owe theirs.
    #[test]
    fn a_blackholed_lane_owes_nothing_until_it_heals() {
        let r = Recorder::new();
        connect(&r, 1, true);
        connack(&r, 1, false);
        let anchor = r.len();
        packet(
            &r,
            1,
            Dir::ToBroker,
            publish(QoS::AtLeastOnce, Some(1)),
            Fate::Forwarded,
        );
        packet(
            &r,
            1,
            Dir::ToClient,
            publish(QoS::AtLeastOnce, Some(2)),
            Fate::Forwarded,
        );
        fault(&r, "device", "blackhole");
        assert!(!owed_from(&r, anchor), "nothing crosses the device's lane");
        fault(&r, "cloud", "heal");
        assert!(
            !owed_from(&r, anchor),
            "another lane's heal heals nothing here"
        );
        // The cloud's lane is not blackholed: what it owes is waited for.
        r.record(EventKind::ConnOpened {
            conn: ConnId(2),
            actor: "cloud".into(),
        });
        r.record(EventKind::Packet {
            conn: ConnId(2),
            actor: "cloud".into(),
            dir: Dir::ToBroker,
            packet: Packet::Subscribe(crate::mqtt::Subscribe {
                pid: 3,
                filters: vec![],
                properties: Default::default(),
            }),
            raw: Bytes::new(),
            fate: Fate::Forwarded,
        });
        assert!(owed_from(&r, anchor), "the cloud's SUBACK");
        r.record(EventKind::ConnClosed {
            conn: ConnId(2),
            actor: "cloud".into(),
            reason: crate::history::CloseReason::Closed,
        });
        fault(&r, "device", "heal");
        assert!(owed_from(&r, anchor), "healed: both PUBACKs owed again");
    }

    /// The board's own network down: the device cannot answer (nor receive
    /// what it would answer), the broker still can, since the proxy reads
    /// its side on loopback. Each way of bringing it back ends it.
    #[test]
    fn a_board_off_its_network_owes_nothing_until_it_is_back() {
        for (down, up) in [
            ("wifi off", "wifi on"),
            ("wifi off", "wifi roam"),
            ("ip blackhole", "ip heal"),
            ("ip blackhole to_broker", "ip clear"),
            ("ip blackhole to_client", "ip heal to_client"),
            ("ip blackhole", "ip clear"),
        ] {
            let r = Recorder::new();
            connect(&r, 1, true);
            connack(&r, 1, false);
            let anchor = r.len();
            packet(
                &r,
                1,
                Dir::ToClient,
                publish(QoS::AtLeastOnce, Some(1)),
                Fate::Forwarded,
            );
            fault(&r, "device", down);
            assert!(!owed_from(&r, anchor), "{down}");
            fault(&r, "device", "ip loss 10%");
            assert!(!owed_from(&r, anchor), "{down}, then a loss: still down");
            packet(
                &r,
                1,
                Dir::ToBroker,
                publish(QoS::AtLeastOnce, Some(2)),
                Fate::Forwarded,
            );
            assert!(owed_from(&r, anchor), "{down}: the broker still owes");
            packet(
                &r,
                1,
                Dir::ToClient,
                Packet::PubAck(ack(2)),
                Fate::Forwarded,
            );
            assert!(!owed_from(&r, anchor), "{down}");
            fault(&r, "device", up);
            assert!(owed_from(&r, anchor), "{down}, {up}: the device owes again");
        }
        // Healing one way of a blackhole of both leaves the other stopped.
        let r = Recorder::new();
        connect(&r, 1, true);
        connack(&r, 1, false);
        let anchor = r.len();
        packet(
            &r,
            1,
            Dir::ToClient,
            publish(QoS::AtLeastOnce, Some(1)),
            Fate::Forwarded,
        );
        fault(&r, "device", "ip blackhole");
        fault(&r, "device", "ip heal to_client");
        assert!(!owed_from(&r, anchor), "to_broker is still blackholed");
        fault(&r, "device", "ip heal to_broker");
        assert!(owed_from(&r, anchor));
    }

    /// A board that lost its RAM (reset, power loss, reboot, watchdog,
    /// crash) never answers on a connection from before: the broker's
    /// PUBLISH there is left unanswered for good. What the broker owes on
    /// it, and what the board owes on a connection it opens afterwards,
    /// are still waited for; `booted` loses nothing.
    #[test]
    fn a_reset_board_never_answers_on_its_old_connections() {
        for reset in [
            "reset",
            "power_cycle",
            "reboot",
            "watchdog reset (soft WDT)",
            "crashed: qemu exited",
        ] {
            let r = Recorder::new();
            connect(&r, 1, false);
            connack(&r, 1, false);
            let anchor = r.len();
            packet(
                &r,
                1,
                Dir::ToClient,
                publish(QoS::AtLeastOnce, Some(1)),
                Fate::Forwarded,
            );
            board(&r, "booted");
            assert!(owed_from(&r, anchor), "booted: the device owes");
            packet(
                &r,
                1,
                Dir::ToBroker,
                publish(QoS::AtLeastOnce, Some(2)),
                Fate::Forwarded,
            );
            board(&r, reset);
            assert!(owed_from(&r, anchor), "{reset}: the broker owes its PUBACK");
            packet(
                &r,
                1,
                Dir::ToClient,
                Packet::PubAck(ack(2)),
                Fate::Forwarded,
            );
            assert!(
                !owed_from(&r, anchor),
                "{reset}: the old connection is dead"
            );
            connect(&r, 2, true);
            connack(&r, 2, false);
            packet(
                &r,
                2,
                Dir::ToClient,
                publish(QoS::AtLeastOnce, Some(3)),
                Fate::Forwarded,
            );
            assert!(owed_from(&r, anchor), "{reset}: the new connection owes");
        }
    }
}
