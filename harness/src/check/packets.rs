//! `packets`: packet-order rules of a 3.1.1 (or 3.1) connection, the
//! 3.1.1 twin of `v5_packets` (statement ids are 3.1.1's). Broker conduct
//! is judged on every such connection, client conduct for the actors in
//! `clients`.
//!
//! - the client's first packet is CONNECT [MQTT-3.1.0-1] (a first frame the
//!   codec rejects is the `codec` checker's);
//! - the broker's first packet is CONNACK [MQTT-3.2.0-1];
//! - a second CONNECT that reached the broker makes it close the
//!   connection within `slack` [MQTT-3.1.0-2];
//! - a SUBACK answers a pending SUBSCRIBE's packet id [MQTT-3.8.4-2] with
//!   one return code per filter [MQTT-3.8.4-5], an UNSUBACK a pending
//!   UNSUBSCRIBE's [MQTT-3.10.4-5];
//! - every SUBSCRIBE, UNSUBSCRIBE and PINGREQ that reached the broker is
//!   answered within `slack` while the connection stays open and no fault
//!   or broker action touches it [MQTT-3.8.4-1], [MQTT-3.10.4-4],
//!   [MQTT-3.12.4-1];
//! - after its DISCONNECT a client sends nothing more on that connection
//!   [MQTT-3.14.4-2].

use std::collections::HashMap;
use std::time::Duration;

use super::index::{seen, sent, Index};
use super::v5_limits::judged;
use super::{fmt_d, Checker, Verdict};
use crate::history::{CloseReason, ConnId, Dir, EventKind, Fate, History};
use crate::mqtt::{Packet, Version};

pub struct PacketsChecker {
    pub clients: Vec<String>,
    pub slack: Duration,
}

/// One frame of a connection: a packet, or bytes the codec rejected.
struct Frame<'a> {
    seq: u64,
    at: Duration,
    dir: Dir,
    fate: Fate,
    packet: Option<&'a Packet>,
}

/// A request waiting for its answer: (packet id, seq, time, kind, filters).
struct Pending {
    pid: u16,
    seq: u64,
    at: Duration,
    what: &'static str,
    filters: usize,
}

impl Checker for PacketsChecker {
    fn name(&self) -> &str {
        "packets"
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        let ix = Index::new(history);
        let teardown = history
            .events
            .iter()
            .find(|e| matches!(e.kind, EventKind::Teardown))
            .map(|e| e.at)
            .unwrap_or(Duration::MAX);
        let end = ix.end.min(teardown);
        let mut frames: HashMap<ConnId, Vec<Frame>> = HashMap::new();
        for ev in history.iter() {
            match &ev.kind {
                EventKind::Packet {
                    conn,
                    dir,
                    packet,
                    fate,
                    ..
                } => frames.entry(*conn).or_default().push(Frame {
                    seq: ev.seq,
                    at: ev.at,
                    dir: *dir,
                    fate: *fate,
                    packet: Some(packet),
                }),
                EventKind::Malformed { conn, dir, .. } => {
                    frames.entry(*conn).or_default().push(Frame {
                        seq: ev.seq,
                        at: ev.at,
                        dir: *dir,
                        fate: Fate::Forwarded,
                        packet: None,
                    })
                }
                _ => {}
            }
        }
        let mut judged_conns = 0usize;
        for c in &ix.conns {
            if c.version() == Version::V5 {
                continue;
            }
            let Some(fs) = frames.get(&c.id) else {
                continue;
            };
            judged_conns += 1;
            let client = judged(&self.clients, &c.actor);
            let closed = c
                .closed
                .as_ref()
                .filter(|(_, r)| !matches!(r, CloseReason::RunEnded));
            let first_up = fs.iter().find(|f| f.dir == Dir::ToBroker && sent(f.fate));
            if let (Some(f), true) = (first_up, client) {
                if let Some(p) = f.packet.filter(|p| !matches!(p, Packet::Connect(_))) {
                    v.fail(
                        "MQTT-3.1.0-1",
                        format!(
                            "{}'s first packet on {} was {}, not CONNECT",
                            c.actor,
                            c.id,
                            p.packet_type()
                        ),
                        vec![f.seq],
                    );
                }
            }
            let first_down = fs.iter().find(|f| f.dir == Dir::ToClient && sent(f.fate));
            if let Some(p) = first_down.and_then(|f| f.packet.map(|p| (f.seq, p))) {
                if !matches!(p.1, Packet::ConnAck(_)) {
                    v.fail(
                        "MQTT-3.2.0-1",
                        format!(
                            "the broker's first packet to {} on {} was {}, not CONNACK",
                            c.actor,
                            c.id,
                            p.1.packet_type()
                        ),
                        vec![p.0],
                    );
                }
            }
            let mut connects = 0;
            let mut pending: Vec<Pending> = Vec::new();
            let mut disconnected: Option<u64> = None;
            for f in fs {
                let Some(p) = f.packet else { continue };
                if f.dir == Dir::ToBroker && sent(f.fate) {
                    if let (Some(d), true) = (disconnected, client) {
                        v.fail(
                            "MQTT-3.14.4-2",
                            format!(
                                "{} sent {} on {} after its DISCONNECT",
                                c.actor,
                                p.packet_type(),
                                c.id
                            ),
                            vec![d, f.seq],
                        );
                        disconnected = None; // say it once
                    }
                    if matches!(p, Packet::Disconnect(_)) {
                        disconnected = Some(f.seq);
                    }
                }
                match (p, f.dir) {
                    (Packet::Connect(_), Dir::ToBroker) if seen(f.fate) => {
                        connects += 1;
                        if connects == 2 {
                            let seen_at = (f.seq, f.at);
                            second_connect(
                                &ix,
                                c,
                                seen_at,
                                self.slack,
                                end,
                                "MQTT-3.1.0-2",
                                &mut v,
                            );
                        }
                    }
                    (Packet::Subscribe(s), Dir::ToBroker) if seen(f.fate) => {
                        pending.push(Pending {
                            pid: s.pid,
                            seq: f.seq,
                            at: f.at,
                            what: "SUBACK",
                            filters: s.filters.len(),
                        })
                    }
                    (Packet::Unsubscribe(s), Dir::ToBroker) if seen(f.fate) => {
                        pending.push(Pending {
                            pid: s.pid,
                            seq: f.seq,
                            at: f.at,
                            what: "UNSUBACK",
                            filters: s.filters.len(),
                        })
                    }
                    (Packet::PingReq, Dir::ToBroker) if seen(f.fate) => pending.push(Pending {
                        pid: 0,
                        seq: f.seq,
                        at: f.at,
                        what: "PINGRESP",
                        filters: 0,
                    }),
                    (Packet::SubAck(a), Dir::ToClient) if sent(f.fate) => {
                        match pending
                            .iter()
                            .position(|x| x.pid == a.pid && x.what == "SUBACK")
                        {
                            Some(i) => {
                                let req = pending.remove(i);
                                if a.codes.len() != req.filters {
                                    v.fail(
                                        "MQTT-3.8.4-5",
                                        format!(
                                            "SUBACK {} to {} has {} return code(s) for {} filter(s)",
                                            a.pid,
                                            c.actor,
                                            a.codes.len(),
                                            req.filters
                                        ),
                                        vec![req.seq, f.seq],
                                    );
                                }
                            }
                            None => v.fail(
                                "MQTT-3.8.4-2",
                                format!("SUBACK {} to {} answers no SUBSCRIBE", a.pid, c.actor),
                                vec![f.seq],
                            ),
                        }
                    }
                    (Packet::UnsubAck(a), Dir::ToClient) if sent(f.fate) => {
                        match pending
                            .iter()
                            .position(|x| x.pid == a.pid && x.what == "UNSUBACK")
                        {
                            Some(i) => {
                                pending.remove(i);
                            }
                            None => v.fail(
                                "MQTT-3.10.4-5",
                                format!("UNSUBACK {} to {} answers no UNSUBSCRIBE", a.pid, c.actor),
                                vec![f.seq],
                            ),
                        }
                    }
                    (Packet::PingResp, Dir::ToClient) if sent(f.fate) => {
                        if let Some(i) = pending.iter().position(|x| x.what == "PINGRESP") {
                            pending.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            for req in pending {
                let limit = req.at + self.slack;
                if limit < end
                    && closed.is_none_or(|(s, _)| s.at > limit)
                    && ix.undisturbed(&c.actor, req.at, limit)
                    && ix.broker_down_between(req.at, limit).is_none()
                {
                    let rule = match req.what {
                        "SUBACK" => "MQTT-3.8.4-1",
                        "UNSUBACK" => "MQTT-3.10.4-4",
                        _ => "MQTT-3.12.4-1",
                    };
                    v.fail(
                        rule,
                        format!(
                            "no {} for {}'s request on {} within {}",
                            req.what,
                            c.actor,
                            c.id,
                            fmt_d(self.slack)
                        ),
                        vec![req.seq],
                    );
                }
            }
        }
        v.note(format!("{judged_conns} 3.1.1 connection(s) judged"));
        v
    }
}

/// A second CONNECT (`at`: its seq and time) reached the broker on `c`:
/// the broker must close the connection within `slack` (`rule`: 3.1.1's
/// or 5.0's statement, both numbered MQTT-3.1.0-2).
pub(crate) fn second_connect(
    ix: &Index,
    c: &super::index::Conn,
    at: (u64, Duration),
    slack: Duration,
    end: Duration,
    rule: &str,
    v: &mut Verdict,
) {
    let (seq, t) = at;
    let limit = t + slack;
    let closed = c
        .closed
        .as_ref()
        .filter(|(_, r)| !matches!(r, CloseReason::RunEnded));
    match closed {
        Some((s, CloseReason::BrokerClosed)) if s.at <= limit => {}
        Some((s, _)) if s.at <= limit => v.note(format!(
            "{} ended right after {}'s second CONNECT: whether the broker would have closed it is not shown",
            c.id, c.actor
        )),
        _ if limit >= end => v.note(format!(
            "the run ended within {} of {}'s second CONNECT on {}",
            fmt_d(slack),
            c.actor,
            c.id
        )),
        _ if !ix.undisturbed(&c.actor, t, limit) || ix.broker_down_between(t, limit).is_some() => {
            v.note(format!(
                "a fault or broker action after {}'s second CONNECT on {} can hide the broker's close",
                c.actor, c.id
            ))
        }
        _ => v.fail(
            rule,
            format!(
                "the broker did not close {} within {} of {}'s second CONNECT",
                c.id,
                fmt_d(slack),
                c.actor
            ),
            vec![seq],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::{assert_violates, connect311, Kit};
    use super::*;
    use crate::mqtt::{codec, Disconnect, PacketType};

    fn checker() -> PacketsChecker {
        PacketsChecker {
            clients: vec!["device".into()],
            slack: Duration::from_secs(1),
        }
    }

    /// A 3.1.1 packet from its bytes.
    fn pk(raw: &[u8]) -> Packet {
        codec::decode(raw, Version::V311).expect("decodes")
    }

    /// A 3.1.1 session on connection 1: CONNECT, CONNACK.
    fn session(k: &mut Kit) -> &mut Kit {
        k.open(1, "device")
            .up(1, "device", connect311("d"))
            .wait(1)
            .down_in(1, "device", pk(&[0x20, 2, 0, 0]), Version::V311)
    }

    fn judge(k: &mut Kit) -> Verdict {
        k.wait(3000).step("end");
        checker().check(&k.history())
    }

    fn down(k: &mut Kit, raw: &[u8]) {
        k.down_in(1, "device", pk(raw), Version::V311);
    }

    fn up(k: &mut Kit, raw: &[u8]) {
        k.up(1, "device", pk(raw));
    }

    const SUB: &[u8] = &[0x82, 6, 0, 7, 0, 1, b'a', 1];
    const UNSUB: &[u8] = &[0xA2, 5, 0, 8, 0, 1, b'a'];

    #[test]
    fn a_well_behaved_exchange_passes() {
        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, SUB);
        down(&mut k, &[0x90, 3, 0, 7, 1]);
        up(&mut k, UNSUB);
        down(&mut k, &[0xB0, 2, 0, 8]);
        up(&mut k, &[0xC0, 0]);
        k.wait(900);
        down(&mut k, &[0xD0, 0]);
        k.up(1, "device", Packet::Disconnect(Disconnect::default()))
            .close(1, "device", CloseReason::ClientClosed);
        // An observer's own conduct is not judged: it may break client rules.
        k.open(2, "cloud").up(2, "cloud", pk(&[0xC0, 0])).close(
            2,
            "cloud",
            CloseReason::ClientClosed,
        );
        let v = judge(&mut k);
        assert!(v.ok(), "{v:?}");
    }

    /// Each statement with a history that breaks it.
    #[test]
    fn each_statement_has_a_history_that_breaks_it() {
        let mut k = Kit::new();
        k.open(1, "device");
        up(&mut k, &[0xC0, 0]);
        assert_violates(&judge(&mut k), "MQTT-3.1.0-1");

        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect311("d"));
        down(&mut k, &[0xD0, 0]);
        assert_violates(&judge(&mut k), "MQTT-3.2.0-1");

        let mut k = Kit::new();
        session(&mut k).up(1, "device", connect311("d"));
        assert_violates(&judge(&mut k), "MQTT-3.1.0-2");

        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, SUB);
        assert_violates(&judge(&mut k), "MQTT-3.8.4-1");

        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, SUB);
        down(&mut k, &[0x90, 3, 0, 9, 1]);
        assert_violates(&judge(&mut k), "MQTT-3.8.4-2");

        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, SUB);
        down(&mut k, &[0x90, 4, 0, 7, 1, 1]);
        assert_violates(&judge(&mut k), "MQTT-3.8.4-5");

        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, UNSUB);
        assert_violates(&judge(&mut k), "MQTT-3.10.4-4");

        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, UNSUB);
        down(&mut k, &[0xB0, 2, 0, 9]);
        assert_violates(&judge(&mut k), "MQTT-3.10.4-5");

        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, &[0xC0, 0]);
        assert_violates(&judge(&mut k), "MQTT-3.12.4-1");

        let mut k = Kit::new();
        session(&mut k);
        k.up(1, "device", Packet::Disconnect(Disconnect::default()));
        up(&mut k, &[0xC0, 0]);
        assert_violates(&judge(&mut k), "MQTT-3.14.4-2");
    }

    /// Right beside the broken ones: answers that come late because the
    /// connection closed or a fault struck, a second CONNECT closed in
    /// time, 5.0 connections (v5_packets'), and a first frame the codec
    /// rejected.
    #[test]
    fn tricky_histories_pass() {
        // Unanswered, but the broker closed the connection.
        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, SUB);
        up(&mut k, &[0xC0, 0]);
        k.wait(500).close(1, "device", CloseReason::BrokerClosed);
        assert!(judge(&mut k).ok());

        // A second CONNECT, closed by the broker.
        let mut k = Kit::new();
        session(&mut k).up(1, "device", connect311("d"));
        k.wait(100).close(1, "device", CloseReason::BrokerClosed);
        assert!(judge(&mut k).ok());

        // The run ends before the answer was due.
        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, SUB);
        k.wait(200).step("end");
        assert!(checker().check(&k.history()).ok());

        // A 5.0 connection is not judged here.
        let mut k = Kit::new();
        k.open(1, "device")
            .up(
                1,
                "device",
                super::super::v5_testkit::connect("d", true, 0, ""),
            )
            .up(
                1,
                "device",
                super::super::v5_testkit::ack(PacketType::PubAck, 1, 0),
            );
        assert!(judge(&mut k).ok());

        // A first frame the codec rejected: the codec's to judge.
        let mut k = Kit::new();
        k.open(1, "device")
            .malformed(1, "device", Dir::ToBroker, &[0x10, 2, 0, 0], Version::V311);
        up(&mut k, &[0xC0, 0]);
        k.wait(100).close(1, "device", CloseReason::BrokerClosed);
        let v = judge(&mut k);
        assert!(v.ok(), "{v:?}");
    }
}
