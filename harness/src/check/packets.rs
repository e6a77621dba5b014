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
//!   [MQTT-3.14.4-2], and the connection is closed within `slack` (by the
//!   client, or by the broker, which may close it first) [MQTT-3.14.4-1];
//! - a client that sends an empty client id sets clean session 1
//!   [MQTT-3.1.3-7].
//!
//! The broker's answer to a CONNECT (3.1.4, 3.2.2):
//! - a CONNECT that reached the broker is answered with a CONNACK, or the
//!   connection closed, within [`CONNACK_WITHIN`] while it is undisturbed
//!   [MQTT-3.1.4-4];
//! - after a refusing CONNACK (return code not 0) the broker sends nothing
//!   more on the connection [MQTT-3.1.4-5] and closes it within `slack`
//!   [MQTT-3.2.2-5] ([MQTT-3.1.3-9] when the code is 0x02, identifier
//!   rejected);
//! - an empty client id with clean session 0 is refused with 0x02, never
//!   accepted [MQTT-3.1.3-8]; a client id of 1 to 23 characters from
//!   0-9a-zA-Z is never refused with 0x02 [MQTT-3.1.3-5];
//! - a SUBACK for several filters never grants a filter more than its
//!   request asked: with one code per filter in their order, a higher code
//!   means the codes were swapped or invented [MQTT-3.9.3-1].
//!
//! No incremental form: `observe` re-judges it over the whole history on
//! its pace timer. Its first incremental form judged only the rules of its
//! time and silently missed the ones added after it (the close after
//! DISCONNECT, the CONNACK deadline, refusals); an incremental form must
//! come with every rule, and the tests' `judge` holds it to the batch
//! verdict on every history.

use std::collections::HashMap;
use std::time::Duration;

use super::index::{seen, sent, Index, Stamp, Surroundings};
use super::v5_limits::judged;
use super::{fmt_d, Checker, Verdict};
use crate::history::{CloseReason, ConnId, Dir, EventKind, Fate, History};
use crate::mqtt::{Packet, Version};

pub struct PacketsChecker {
    pub clients: Vec<String>,
    pub slack: Duration,
}

/// How long a broker may take to answer a CONNECT before its silence is a
/// violation: longer than the other answers, since accepting a client can
/// mean loading its session or asking an authentication backend.
pub const CONNACK_WITHIN: Duration = Duration::from_secs(5);

/// 3.1.1 §3.1.3: the client ids every server must accept.
fn plain_client_id(id: &str) -> bool {
    (1..=23).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// One frame of a connection: a packet, or bytes the codec rejected.
struct Frame<'a> {
    seq: u64,
    at: Duration,
    dir: Dir,
    fate: Fate,
    packet: Option<&'a Packet>,
}

/// A request waiting for its answer: (packet id, seq, time, kind, the
/// QoS each filter asked for).
struct Pending {
    pid: u16,
    seq: u64,
    at: Duration,
    what: &'static str,
    filters: Vec<u8>,
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
            self.connect_answer(&ix, c, fs, client, end, &mut v);
            let mut connects = 0;
            let mut pending: Vec<Pending> = Vec::new();
            let mut disconnected: Option<u64> = None;
            let mut close_judged = false;
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
                        if client && !close_judged {
                            close_judged = true;
                            self.closed_after_disconnect(&ix, c, (f.seq, f.at), end, &mut v);
                        }
                    }
                }
                match (p, f.dir) {
                    (Packet::Connect(_), Dir::ToBroker) if seen(f.fate) => {
                        connects += 1;
                        if connects == 2 {
                            let seen_at = (f.seq, f.at);
                            second_connect(
                                &ix,
                                c.id,
                                &c.actor,
                                c.closed.as_ref(),
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
                            filters: s.filters.iter().map(|f| f.qos.as_u8()).collect(),
                        })
                    }
                    (Packet::Unsubscribe(s), Dir::ToBroker) if seen(f.fate) => {
                        pending.push(Pending {
                            pid: s.pid,
                            seq: f.seq,
                            at: f.at,
                            what: "UNSUBACK",
                            filters: vec![0; s.filters.len()],
                        })
                    }
                    (Packet::PingReq, Dir::ToBroker) if seen(f.fate) => pending.push(Pending {
                        pid: 0,
                        seq: f.seq,
                        at: f.at,
                        what: "PINGRESP",
                        filters: Vec::new(),
                    }),
                    (Packet::SubAck(a), Dir::ToClient) if sent(f.fate) => {
                        match pending
                            .iter()
                            .position(|x| x.pid == a.pid && x.what == "SUBACK")
                        {
                            Some(i) => {
                                let req = pending.remove(i);
                                if a.codes.len() != req.filters.len() {
                                    v.fail(
                                        "MQTT-3.8.4-5",
                                        format!(
                                            "SUBACK {} to {} has {} return code(s) for {} filter(s)",
                                            a.pid,
                                            c.actor,
                                            a.codes.len(),
                                            req.filters.len()
                                        ),
                                        vec![req.seq, f.seq],
                                    );
                                } else if req.filters.len() > 1 {
                                    let above =
                                        a.codes.iter().zip(&req.filters).position(
                                            |(&code, &asked)| code != 0x80 && code > asked,
                                        );
                                    if let Some(k) = above {
                                        v.fail(
                                            "MQTT-3.9.3-1",
                                            format!(
                                                "SUBACK {} to {} grants QoS {} to filter {} of {}, which asked for QoS {}: return codes {:?} for requested {:?} are out of order or above the request",
                                                a.pid,
                                                c.actor,
                                                a.codes[k],
                                                k + 1,
                                                req.filters.len(),
                                                req.filters[k],
                                                a.codes,
                                                req.filters
                                            ),
                                            vec![req.seq, f.seq],
                                        );
                                    }
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

impl PacketsChecker {
    /// The CONNECT/CONNACK rules of 3.1.4 and 3.2.2, and the close after a
    /// client's DISCONNECT, on one 3.1.1 connection.
    fn connect_answer(
        &self,
        ix: &Index,
        c: &super::index::Conn,
        fs: &[Frame],
        client: bool,
        end: Duration,
        v: &mut Verdict,
    ) {
        let closed = c
            .closed
            .as_ref()
            .filter(|(_, r)| !matches!(r, CloseReason::RunEnded));
        let connect = fs.iter().find_map(|f| match f.packet {
            Some(Packet::Connect(cp)) if f.dir == Dir::ToBroker && seen(f.fate) => Some((f, cp)),
            _ => None,
        });
        let connack = fs.iter().find_map(|f| match f.packet {
            Some(Packet::ConnAck(a)) if f.dir == Dir::ToClient && sent(f.fate) => Some((f, a)),
            _ => None,
        });
        if let (true, Some((_, cp))) = (client, c.connect.as_ref()) {
            if cp.client_id.is_empty() && !cp.clean_start {
                let seq = c.connect.as_ref().map(|(s, _)| s.seq).unwrap_or(0);
                v.fail(
                    "MQTT-3.1.3-7",
                    format!(
                        "{} sent a CONNECT on {} with an empty client id and clean session 0",
                        c.actor, c.id
                    ),
                    vec![seq],
                );
            }
        }
        let Some((cf, cp)) = connect else {
            return;
        };
        // Quiet means: nothing the history shows could excuse the broker.
        let quiet = |from: Duration, to: Duration| {
            to < end
                && ix.undisturbed(&c.actor, from, to)
                && ix.broker_down_between(from, to).is_none()
        };
        let Some((af, a)) = connack else {
            let limit = cf.at + CONNACK_WITHIN;
            if closed.is_none_or(|(s, _)| s.at > limit) && quiet(cf.at, limit) {
                v.fail(
                    "MQTT-3.1.4-4",
                    format!(
                        "the broker neither answered {}'s CONNECT on {} with a CONNACK nor closed the connection within {}",
                        c.actor,
                        c.id,
                        fmt_d(CONNACK_WITHIN)
                    ),
                    vec![cf.seq],
                );
            }
            return;
        };
        if af.seq < cf.seq {
            return; // the first-packet rule (MQTT-3.2.0-1) has it
        }
        if cp.client_id.is_empty() && !cp.clean_start && a.code == 0 {
            v.fail(
                "MQTT-3.1.3-8",
                format!(
                    "the broker accepted {}'s CONNECT on {} with an empty client id and clean session 0; it must refuse it with 0x02",
                    c.actor, c.id
                ),
                vec![cf.seq, af.seq],
            );
        }
        if a.code == 2 && plain_client_id(&cp.client_id) {
            v.fail(
                "MQTT-3.1.3-5",
                format!(
                    "the broker refused client id {:?} of {} on {} (0x02), though every server must accept 1 to 23 characters from 0-9a-zA-Z",
                    cp.client_id, c.actor, c.id
                ),
                vec![cf.seq, af.seq],
            );
        }
        if a.code == 0 {
            return;
        }
        if let Some(f) = fs.iter().find(|f| {
            f.dir == Dir::ToClient && f.seq > af.seq && sent(f.fate) && f.packet.is_some()
        }) {
            v.fail(
                "MQTT-3.1.4-5",
                format!(
                    "the broker refused {}'s CONNECT on {} (return code {:#04x}) and then sent {}: it must process nothing after a refusal",
                    c.actor,
                    c.id,
                    a.code,
                    f.packet.map(|p| p.packet_type().to_string()).unwrap_or_default()
                ),
                vec![af.seq, f.seq],
            );
        }
        let rule = if a.code == 2 {
            "MQTT-3.1.3-9"
        } else {
            "MQTT-3.2.2-5"
        };
        let limit = af.at + self.slack;
        match closed {
            Some((s, _)) if s.at <= limit => {}
            _ if !quiet(af.at, limit) => v.note(format!(
                "{} was refused on {}, and the run ended or a fault or broker action came before the broker's close was due",
                c.actor, c.id
            )),
            _ => v.fail(
                rule,
                format!(
                    "the broker refused {}'s CONNECT on {} with return code {:#04x} but did not close the connection within {}",
                    c.actor,
                    c.id,
                    a.code,
                    fmt_d(self.slack)
                ),
                vec![af.seq],
            ),
        }
    }

    /// A client's DISCONNECT that it sent on `c` at (`seq`, `at`): the
    /// connection must be closed within `slack` [MQTT-3.14.4-1].
    fn closed_after_disconnect(
        &self,
        ix: &Index,
        c: &super::index::Conn,
        (seq, at): (u64, Duration),
        end: Duration,
        v: &mut Verdict,
    ) {
        let limit = at + self.slack;
        let closed = c
            .closed
            .as_ref()
            .filter(|(_, r)| !matches!(r, CloseReason::RunEnded));
        if closed.is_some_and(|(s, _)| s.at <= limit)
            || limit >= end
            || !ix.undisturbed(&c.actor, at, limit)
            || ix.broker_down_between(at, limit).is_some()
        {
            return;
        }
        v.fail(
            "MQTT-3.14.4-1",
            format!(
                "{} sent DISCONNECT on {} but the connection was still open {} later",
                c.actor,
                c.id,
                fmt_d(self.slack)
            ),
            vec![seq],
        );
    }
}

/// A second CONNECT (`at`: its seq and time) reached the broker on
/// connection `id` of `actor`, which ended as `closed` (its first close):
/// the broker must close the connection within `slack` (`rule`: 3.1.1's
/// or 5.0's statement, both numbered MQTT-3.1.0-2).
#[allow(clippy::too_many_arguments)]
pub(crate) fn second_connect(
    around: &dyn Surroundings,
    id: ConnId,
    actor: &str,
    closed: Option<&(Stamp, CloseReason)>,
    at: (u64, Duration),
    slack: Duration,
    end: Duration,
    rule: &str,
    v: &mut Verdict,
) {
    let (seq, t) = at;
    let limit = t + slack;
    let closed = closed.filter(|(_, r)| !matches!(r, CloseReason::RunEnded));
    match closed {
        Some((s, CloseReason::BrokerClosed)) if s.at <= limit => {}
        Some((s, _)) if s.at <= limit => v.note(format!(
            "{id} ended right after {actor}'s second CONNECT: whether the broker would have closed it is not shown"
        )),
        _ if limit >= end => v.note(format!(
            "the run ended within {} of {actor}'s second CONNECT on {id}",
            fmt_d(slack),
        )),
        _ if !around.undisturbed(actor, t, limit) || around.broker_down(t, limit) => {
            v.note(format!(
                "a fault or broker action after {actor}'s second CONNECT on {id} can hide the broker's close"
            ))
        }
        _ => v.fail(
            rule,
            format!(
                "the broker did not close {id} within {} of {actor}'s second CONNECT",
                fmt_d(slack),
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

    /// The batch verdict, after checking that the checker's incremental
    /// form (if it has one: `observe` relies on it) reaches the same one.
    fn judge(k: &mut Kit) -> Verdict {
        k.wait(3000).step("end");
        let h = k.history();
        let batch = checker().check(&h);
        if let Some(mut live) = checker().incremental() {
            for ev in h.iter() {
                live.feed(ev);
            }
            assert_eq!(
                live.verdict().rules(),
                batch.rules(),
                "incremental and batch differ"
            );
        }
        batch
    }

    fn down(k: &mut Kit, raw: &[u8]) {
        k.down_in(1, "device", pk(raw), Version::V311);
    }

    fn up(k: &mut Kit, raw: &[u8]) {
        k.up(1, "device", pk(raw));
    }

    const SUB: &[u8] = &[0x82, 6, 0, 7, 0, 1, b'a', 1];
    /// Two filters: `a` at QoS 0, `b` at QoS 2.
    const SUB2: &[u8] = &[0x82, 10, 0, 7, 0, 1, b'a', 0, 0, 1, b'b', 2];

    fn down_to(k: &mut Kit, actor: &str, raw: &[u8]) {
        k.down_in(1, actor, pk(raw), Version::V311);
    }
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

        // DISCONNECT, then the connection left open.
        let mut k = Kit::new();
        session(&mut k);
        k.up(1, "device", Packet::Disconnect(Disconnect::default()));
        assert_eq!(judge(&mut k).rules(), vec!["MQTT-3.14.4-1"]);

        // An empty client id with clean session 0: the client's fault, and
        // the broker's for accepting it.
        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect_as("", false));
        down(&mut k, &[0x20, 2, 0, 0]);
        let v = judge(&mut k);
        assert_violates(&v, "MQTT-3.1.3-7");
        assert_violates(&v, "MQTT-3.1.3-8");

        // A plain client id refused as an identifier.
        let mut k = Kit::new();
        k.open(1, "device")
            .up(1, "device", connect_as("dut1", true));
        down(&mut k, &[0x20, 2, 0, 2]);
        k.wait(10).close(1, "device", CloseReason::BrokerClosed);
        assert_eq!(judge(&mut k).rules(), vec!["MQTT-3.1.3-5"]);

        // Refused (not authorized), then left open.
        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect311("d"));
        down(&mut k, &[0x20, 2, 0, 5]);
        assert_eq!(judge(&mut k).rules(), vec!["MQTT-3.2.2-5"]);

        // Identifier rejected, then left open.
        let mut k = Kit::new();
        k.open(1, "device")
            .up(1, "device", connect_as("bad/id", true));
        down(&mut k, &[0x20, 2, 0, 2]);
        assert_eq!(judge(&mut k).rules(), vec!["MQTT-3.1.3-9"]);

        // Refused, then a SUBSCRIBE processed after all.
        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect311("d"));
        up(&mut k, SUB);
        down(&mut k, &[0x20, 2, 0, 5]);
        down(&mut k, &[0x90, 3, 0, 7, 1]);
        k.wait(10).close(1, "device", CloseReason::BrokerClosed);
        assert_eq!(judge(&mut k).rules(), vec!["MQTT-3.1.4-5"]);

        // A CONNECT never answered, the connection left open.
        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect311("d"));
        k.wait(6000).step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.1.4-4"]);

        // Two filters, their return codes swapped.
        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, SUB2);
        down(&mut k, &[0x90, 4, 0, 7, 2, 0]);
        assert_eq!(judge(&mut k).rules(), vec!["MQTT-3.9.3-1"]);
    }

    /// A 3.1.1 CONNECT with this client id and clean session flag.
    fn connect_as(id: &str, clean: bool) -> Packet {
        let Packet::Connect(mut c) = connect311("x") else {
            unreachable!()
        };
        c.client_id = id.into();
        c.clean_start = clean;
        Packet::Connect(c)
    }

    /// Beside the CONNECT/CONNACK and DISCONNECT rules: what the spec allows.
    #[test]
    fn refusals_and_disconnects_that_keep_the_rules_pass() {
        // An empty client id with clean session 0, refused and closed.
        let mut k = Kit::new();
        k.open(1, "cloud").up(1, "cloud", connect_as("", false));
        down_to(&mut k, "cloud", &[0x20, 2, 0, 2]);
        k.wait(20).close(1, "cloud", CloseReason::BrokerClosed);
        let v = judge(&mut k);
        assert!(v.ok(), "{v:?}");

        // A long or unusual client id may be refused with 0x02.
        let mut k = Kit::new();
        k.open(1, "device")
            .up(1, "device", connect_as("a-client-id-of-24-chars!", true));
        down(&mut k, &[0x20, 2, 0, 2]);
        k.wait(20).close(1, "device", CloseReason::BrokerClosed);
        assert!(judge(&mut k).ok());

        // An empty client id with clean session 1 is the client's right.
        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect_as("", true));
        down(&mut k, &[0x20, 2, 0, 0]);
        assert!(judge(&mut k).ok());

        // Refused, and the client closes first.
        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect311("d"));
        down(&mut k, &[0x20, 2, 0, 4]);
        k.wait(5).close(1, "device", CloseReason::ClientClosed);
        assert!(judge(&mut k).ok());

        // A CONNECT answered late, but before the broker was due; one whose
        // connection a fault cut; one the run ended on.
        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect311("d"));
        k.wait(4000);
        down(&mut k, &[0x20, 2, 0, 0]);
        assert!(judge(&mut k).ok());
        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect311("d"));
        k.wait(10).close(1, "device", CloseReason::Severed);
        assert!(judge(&mut k).ok());
        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect311("d"));
        k.wait(1000).step("end");
        assert!(checker().check(&k.history()).ok());

        // After DISCONNECT the broker closes first: allowed.
        let mut k = Kit::new();
        session(&mut k);
        k.up(1, "device", Packet::Disconnect(Disconnect::default()));
        k.wait(5).close(1, "device", CloseReason::BrokerClosed);
        assert!(judge(&mut k).ok());

        // Two filters, one granted less and one refused: in order.
        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, SUB2);
        down(&mut k, &[0x90, 4, 0, 7, 0x80, 0]);
        assert!(judge(&mut k).ok());
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
