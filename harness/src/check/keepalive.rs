//! `keepalive`: the broker drops silent clients in time, and clients keep
//! their connection alive without flooding it. Keep alive is the CONNECT
//! value, or the 5.0 CONNACK's server keep alive when given; connections
//! with keep alive 0 are not judged.
//!
//! Broker side (`broker = true`):
//! - when the broker received nothing from a client for 1.5 × keep alive
//!   plus `slack`, it has closed the connection [MQTT-3.1.2-24]. Evidence
//!   that it did not: the connection, free of faults in that span, was
//!   still open afterwards; or (under a fault, where the proxy may not see
//!   the close) the broker received a later packet on it and answered.
//! - a broker close of an idle connection earlier than 1 × keep alive after
//!   the last packet it received, with no DISCONNECT, takeover, broker
//!   restart or malformed packet to explain it (`keepalive-early-close`);
//!   closes within 0.5s of a packet are taken as answers to that packet.
//!
//! Client side (`client = true`):
//! - a client sends some packet at least every keep alive (+ `slack`)
//!   while its connection is open and fault-free [MQTT-3.1.2-23]
//!   (`no ping`);
//! - a client does not send PINGREQ again sooner than keep alive / 2 (less
//!   10%) after a PINGREQ that was answered (`keepalive-ping-too-fast`).
//!
//! A client made silent on purpose (`pings = false` in the scenario, which
//! the runner records as an actor event mentioning `pings off`/`set_pings
//! false`) is exempt from the client rules.
//!
//! One implementation judges both ways: [`Live`] is a state machine fed
//! one event at a time, and [`Checker::check`] feeds it a whole history.
//! Per connection it keeps the last packet the broker received and the
//! last one the client sent (each with its deadline, decided once an event
//! later than it is fed: nothing still to come changes the faults or the
//! close before it), the earliest silence whose evidence would be an answer
//! still to come, the findings, and a few flags the rules read over the
//! whole connection (a DISCONNECT, a malformed frame, a takeover, a client
//! made silent on purpose) — never the traffic itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::index::{prop_u32, seen, sent, Stamp};
use super::live::{ConnMeta, Context};
use super::{fmt_d, Checker, Incremental, Verdict, Violation};
use crate::history::{CloseReason, ConnId, Dir, Event, EventKind, Fate, History};
use crate::mqtt::Packet;

pub struct KeepaliveChecker {
    pub actor: Option<String>,
    pub slack: Duration,
    pub client: bool,
    pub broker: bool,
}

impl Checker for KeepaliveChecker {
    fn name(&self) -> &str {
        "keepalive"
    }

    fn check(&self, history: &History) -> Verdict {
        super::judge_whole(self.live(), history)
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(self.live()))
    }
}

impl KeepaliveChecker {
    fn live(&self) -> Live {
        Live {
            actor: self.actor.clone(),
            slack: self.slack,
            client: self.client,
            broker: self.broker,
            ctx: Context::default(),
            conns: HashMap::new(),
            judged: BTreeMap::new(),
            by_client_id: HashMap::new(),
            silenced: HashSet::new(),
            malformed: HashSet::new(),
            recent_connects: Vec::new(),
            due: BTreeMap::new(),
        }
    }
}

/// What a client did before its connection was accepted, kept to be
/// judged once the keep alive is known.
enum Early {
    /// A packet it sent: time, seq, whether it was a PINGREQ.
    Sent(Duration, u64, bool),
    /// A PINGRESP it got.
    PingResp(Duration),
}

/// A silence the broker sat through: from the packet at (`g`, `gseq`),
/// proven by the event `eseq`.
struct Evidence {
    g: Duration,
    gseq: u64,
    eseq: u64,
    what: String,
}

/// A judged connection: accepted, with a keep alive.
struct Judged {
    acc: Duration,
    ka: Duration,
    connect: Stamp,
    /// The last packet the broker received (the CONNECT counts), and
    /// whether the log passed 1.5 x keep alive + slack after it undisturbed
    /// (once it did).
    mark: (Duration, u64),
    mark_quiet: Option<bool>,
    /// The earliest silence that outlasted its deadline under a fault: its
    /// evidence would be the broker answering after the packet that ended
    /// it (start, seq, that packet's time).
    awaiting: Option<(Duration, u64, Duration)>,
    found: Option<Evidence>,
    /// The last packet the broker received at or before the close.
    before_close: (Duration, u64),
    taken_over: bool,
    /// The client's last send, and whether the log passed its deadline.
    send: Option<(Duration, u64, bool)>,
    send_decided: bool,
    last_pingresp: Option<Duration>,
    /// Two quick PINGREQs waiting for a PINGRESP between them (one may
    /// still come at the second's time): (t, seq, t2, seq2).
    quick: Vec<(Duration, u64, Duration, u64)>,
    too_fast: Vec<Violation>,
    no_ping: Option<Violation>,
}

/// What the rules keep of a connection of the judged actor(s).
#[derive(Default)]
struct Conn {
    /// The first CONNECT the client sent: its stamp, keep alive, client id.
    connect: Option<(Stamp, u16, String)>,
    connack: bool,
    judged: Option<Judged>,
    /// Before acceptance: packets the broker received at the latest time
    /// (one at the CONNACK's time counts), and what the client did.
    early_rx: Vec<(Duration, u64)>,
    early: Vec<Early>,
    /// A DISCONNECT reached the broker.
    disconnect: Option<Duration>,
}

/// [`KeepaliveChecker`] as a state machine: events in, verdict out.
pub struct Live {
    actor: Option<String>,
    slack: Duration,
    client: bool,
    broker: bool,
    ctx: Context,
    conns: HashMap<ConnId, Conn>,
    /// Judged connections by their position (as `Index` numbers them).
    judged: BTreeMap<usize, ConnId>,
    /// Judged connections by client id (non-empty), for takeovers.
    by_client_id: HashMap<String, Vec<ConnId>>,
    /// Actors made silent on purpose.
    silenced: HashSet<String>,
    /// Connections with a frame the codec rejected.
    malformed: HashSet<ConnId>,
    /// First CONNECTs at the latest time: (connection, client id, time).
    recent_connects: Vec<(ConnId, String, Duration)>,
    /// Deadlines to decide: (time, seq of their packet, 0 broker / 1
    /// client) -> connection.
    due: BTreeMap<(Duration, u64, u8), ConnId>,
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        let first_connect = match &ev.kind {
            EventKind::Packet {
                conn,
                dir: Dir::ToBroker,
                packet: Packet::Connect(cp),
                fate,
                ..
            } if sent(*fate) => {
                let had = self
                    .ctx
                    .conns
                    .get(conn)
                    .is_some_and(|m| m.version.is_some());
                (!had).then(|| (*conn, cp.client_id.clone()))
            }
            _ => None,
        };
        self.ctx.feed(ev);
        // Deadlines this event's time passed are decided on what came
        // before it.
        self.decide();
        match &ev.kind {
            EventKind::Actor { actor, what }
                if what.contains("pings") && (what.contains("off") || what.contains("false")) =>
            {
                self.silenced.insert(actor.clone());
            }
            EventKind::Malformed { conn, .. } => {
                self.malformed.insert(*conn);
            }
            EventKind::Packet {
                conn,
                dir,
                packet,
                fate,
                ..
            } => {
                if let Some((o, id)) = first_connect {
                    self.takeover(o, id, ev.at);
                }
                let Some(meta) = self.ctx.conns.get(conn) else {
                    return;
                };
                if self.actor.as_ref().is_some_and(|a| *a != meta.actor) {
                    return;
                }
                self.packet(ev, *conn, *dir, packet, *fate);
            }
            _ => {}
        }
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("keepalive");
        for id in self.judged.values() {
            let (
                Some(meta),
                Some(Conn {
                    judged: Some(j),
                    disconnect,
                    ..
                }),
            ) = (self.ctx.conns.get(id), self.conns.get(id))
            else {
                continue;
            };
            if self.broker {
                self.broker_side(*id, meta, j, disconnect.is_some(), &mut v);
            }
            if self.client && !self.silenced.contains(&meta.actor) {
                v.violations.extend(j.too_fast.iter().cloned());
                v.violations.extend(j.no_ping.iter().cloned());
            }
        }
        v.notes.insert(
            0,
            format!("{} connection(s) with a keep alive", self.judged.len()),
        );
        v
    }
}

impl Live {
    /// The connection's end as the rules read it: its close, or the end
    /// of the log.
    fn conn_end(&self, meta: &ConnMeta) -> Duration {
        meta.closed.as_ref().map_or(self.ctx.end(), |(s, _)| s.at)
    }

    fn grace(&self, ka: Duration) -> Duration {
        ka.mul_f64(1.5) + self.slack
    }

    /// A packet on a connection of the judged actor(s).
    fn packet(&mut self, ev: &Event, id: ConnId, dir: Dir, packet: &Packet, fate: Fate) {
        let (seq, at) = (ev.seq, ev.at);
        let st = self.conns.entry(id).or_default();
        match dir {
            Dir::ToBroker => {
                if sent(fate) {
                    if let (Packet::Connect(cp), None) = (packet, &st.connect) {
                        st.connect = Some((Stamp { seq, at }, cp.keep_alive, cp.client_id.clone()));
                    }
                    let ping = matches!(packet, Packet::PingReq);
                    if st.judged.is_some() {
                        self.sent(id, at, seq, ping);
                    } else if !st.connack {
                        st.early.push(Early::Sent(at, seq, ping));
                    }
                }
                let st = self.conns.entry(id).or_default();
                if seen(fate) {
                    if matches!(packet, Packet::Disconnect(_)) && st.disconnect.is_none() {
                        st.disconnect = Some(at);
                    }
                    if st.judged.is_some() {
                        self.received(id, at, seq);
                    } else if !st.connack {
                        st.early_rx.retain(|&(t, _)| t == at);
                        st.early_rx.push((at, seq));
                    }
                }
            }
            Dir::ToClient => {
                if let Some(j) = st.judged.as_mut() {
                    // The broker answering after a silence it sat through
                    // under a fault.
                    if let Some((g, gseq, n)) = j.awaiting {
                        if at > n {
                            j.found = Some(Evidence {
                                g,
                                gseq,
                                eseq: seq,
                                what: "received a later packet on it and answered".into(),
                            });
                            j.awaiting = None;
                        }
                    }
                }
                if let (Packet::PingResp, true) = (packet, seen(fate)) {
                    if st.judged.is_some() {
                        self.pingresp(id, at);
                    } else if !st.connack {
                        st.early.push(Early::PingResp(at));
                    }
                }
                let st = self.conns.entry(id).or_default();
                if let (Packet::ConnAck(a), true, false) = (packet, sent(fate), st.connack) {
                    st.connack = true;
                    let ka = prop_u32(&a.properties, 0x13)
                        .or(st.connect.as_ref().map(|c| c.1 as u32))
                        .unwrap_or(0);
                    if a.code == 0 && ka > 0 {
                        self.start(id, at, Duration::from_secs(ka as u64));
                    }
                    let st = self.conns.entry(id).or_default();
                    st.early.clear();
                    st.early_rx.clear();
                }
            }
        }
    }

    /// The connection was accepted with keep alive `ka` at `acc`: judged
    /// from here, with what came before it.
    fn start(&mut self, id: ConnId, acc: Duration, ka: Duration) {
        let Some(st) = self.conns.get_mut(&id) else {
            return;
        };
        let Some((cs, _, client_id)) = st.connect.clone() else {
            return;
        };
        let mut marks = vec![(cs.at, cs.seq)];
        marks.extend(st.early_rx.iter().filter(|(t, _)| *t >= acc));
        marks.sort();
        marks.dedup();
        let early = std::mem::take(&mut st.early);
        let taken_over = self
            .recent_connects
            .iter()
            .any(|(o, cid, t)| *o != id && *cid == client_id && !cid.is_empty() && *t >= acc);
        st.judged = Some(Judged {
            acc,
            ka,
            connect: cs.clone(),
            mark: marks[0],
            mark_quiet: None,
            awaiting: None,
            found: None,
            before_close: marks[0],
            taken_over,
            send: None,
            send_decided: false,
            last_pingresp: None,
            quick: Vec::new(),
            too_fast: Vec::new(),
            no_ping: None,
        });
        self.due
            .insert((marks[0].0 + self.grace(ka), marks[0].1, 0), id);
        if let Some(meta) = self.ctx.conns.get(&id) {
            self.judged.insert(meta.ci, id);
        }
        if !client_id.is_empty() {
            self.by_client_id.entry(client_id).or_default().push(id);
        }
        for &(t, seq) in &marks[1..] {
            self.received(id, t, seq);
        }
        for e in early {
            match e {
                Early::Sent(t, seq, ping) => self.sent(id, t, seq, ping),
                Early::PingResp(t) => self.pingresp(id, t),
            }
        }
    }

    /// A connection's first CONNECT with client id `cid` at `at`: a
    /// takeover of the judged connections of that client id.
    fn takeover(&mut self, o: ConnId, cid: String, at: Duration) {
        self.recent_connects.retain(|(_, _, t)| *t == at);
        if cid.is_empty() {
            return;
        }
        for id in self.by_client_id.get(&cid).into_iter().flatten() {
            if *id == o {
                continue;
            }
            let closed = self
                .ctx
                .conns
                .get(id)
                .and_then(|m| m.closed.as_ref().map(|(s, _)| s.at));
            if let Some(j) = self.conns.get_mut(id).and_then(|c| c.judged.as_mut()) {
                if at >= j.acc && closed.is_none_or(|c| at <= c + Duration::from_millis(100)) {
                    j.taken_over = true;
                }
            }
        }
        self.recent_connects.push((o, cid, at));
    }

    /// The broker received a packet on a judged connection.
    fn received(&mut self, id: ConnId, n: Duration, nseq: u64) {
        let closed = self
            .ctx
            .conns
            .get(&id)
            .and_then(|m| m.closed.as_ref().map(|(s, _)| s.at));
        let Some(Some(j)) = self.conns.get(&id).map(|c| c.judged.as_ref()) else {
            return;
        };
        let (g, gseq) = j.mark;
        let due = g + self.grace(j.ka);
        let quiet = (n > due && j.found.is_none()).then(|| {
            j.mark_quiet.unwrap_or_else(|| {
                let actor = &self.ctx.conns[&id].actor;
                self.ctx.undisturbed(actor, g, due)
            })
        });
        let grace = self.grace(j.ka);
        let Some(j) = self.conns.get_mut(&id).and_then(|c| c.judged.as_mut()) else {
            return;
        };
        if closed.is_none_or(|c| n <= c) {
            j.before_close = (n, nseq);
        }
        match quiet {
            Some(true) => {
                j.found = Some(Evidence {
                    g,
                    gseq,
                    eseq: nseq,
                    what: "received a packet".into(),
                })
            }
            Some(false) if j.awaiting.is_none() => j.awaiting = Some((g, gseq, n)),
            _ => {}
        }
        // One deadline per connection: the last mark's.
        self.due.remove(&(g + grace, gseq, 0));
        j.mark = (n, nseq);
        j.mark_quiet = None;
        if j.found.is_none() {
            self.due.insert((n + grace, nseq, 0), id);
        }
    }

    /// The client sent a packet on a judged connection.
    fn sent(&mut self, id: ConnId, t: Duration, seq: u64, ping: bool) {
        let Some(j) = self.conns.get_mut(&id).and_then(|c| c.judged.as_mut()) else {
            return;
        };
        if j.no_ping.is_some() {
            return;
        }
        if let Some((t0, s0, true)) = j.send {
            if ping && t - t0 < j.ka.mul_f64(0.45) {
                if j.last_pingresp.is_some_and(|r| r >= t0) {
                    let v = too_fast(&self.ctx.conns[&id], id, (t0, s0), (t, seq), j.ka);
                    j.too_fast.push(v);
                } else {
                    j.quick.push((t0, s0, t, seq));
                }
            }
        }
        if let Some((t0, s0, _)) = j.send {
            self.due.remove(&(t0 + j.ka + self.slack, s0, 1));
        }
        j.send = Some((t, seq, ping));
        j.send_decided = false;
        let due = t + j.ka + self.slack;
        self.due.insert((due, seq, 1), id);
    }

    /// A PINGRESP reached the client on a judged connection.
    fn pingresp(&mut self, id: ConnId, r: Duration) {
        let Some(j) = self.conns.get_mut(&id).and_then(|c| c.judged.as_mut()) else {
            return;
        };
        j.last_pingresp = Some(j.last_pingresp.map_or(r, |p| p.max(r)));
        let quick = std::mem::take(&mut j.quick);
        for (t, s, t2, s2) in quick {
            if t <= r && r <= t2 {
                let v = too_fast(&self.ctx.conns[&id], id, (t, s), (t2, s2), j.ka);
                j.too_fast.push(v);
            } else if r < t2 {
                j.quick.push((t, s, t2, s2));
            }
        }
    }

    /// Decides the deadlines the log has passed.
    fn decide(&mut self) {
        let end = self.ctx.end();
        while let Some(e) = self.due.first_entry() {
            if e.key().0 >= end {
                break;
            }
            let ((due, seq, kind), id) = e.remove_entry();
            let Some(meta) = self.ctx.conns.get(&id) else {
                continue;
            };
            let Some(Conn {
                judged: Some(j),
                disconnect,
                ..
            }) = self.conns.get(&id)
            else {
                continue;
            };
            if kind == 0 {
                if j.mark.1 != seq || j.mark_quiet.is_some() || j.found.is_some() {
                    continue;
                }
                let quiet = self.ctx.undisturbed(&meta.actor, j.mark.0, due);
                if let Some(j) = self.conns.get_mut(&id).and_then(|c| c.judged.as_mut()) {
                    j.mark_quiet = Some(quiet);
                }
                continue;
            }
            let Some((t, _, _)) = j.send.filter(|s| s.1 == seq && !j.send_decided) else {
                continue;
            };
            let missed = t >= j.acc.saturating_sub(Duration::from_secs(1))
                && self.conn_end(meta) > due
                && self.ctx.undisturbed(&meta.actor, t, due)
                && disconnect.is_none_or(|d| d > due);
            let found = missed.then(|| {
                Violation::new(
                    "MQTT-3.1.2-23",
                    format!(
                        "no ping: {} ({}) sent nothing from {} for more than its keep alive {} (+{})",
                        meta.actor,
                        id,
                        fmt_d(t),
                        fmt_d(j.ka),
                        fmt_d(self.slack)
                    ),
                    vec![seq],
                )
            });
            if let Some(j) = self.conns.get_mut(&id).and_then(|c| c.judged.as_mut()) {
                j.send_decided = true;
                j.no_ping = found;
            }
        }
    }

    /// The broker's side on one judged connection: the timeout, then a
    /// close that came too early.
    fn broker_side(
        &self,
        id: ConnId,
        meta: &ConnMeta,
        j: &Judged,
        disconnected: bool,
        v: &mut Verdict,
    ) {
        let ka = j.ka;
        let end = self.conn_end(meta);
        let evidence = match &j.found {
            Some(e) => Some((e.g, e.gseq, e.eseq, e.what.clone())),
            None => {
                let (g, gseq) = j.mark;
                let due = g + self.grace(ka);
                (j.mark_quiet == Some(true) && end > due).then(|| {
                    (
                        g,
                        gseq,
                        meta.closed.as_ref().map(|(s, _)| s.seq).unwrap_or(gseq),
                        format!("kept it open until {}", fmt_d(end)),
                    )
                })
            }
        };
        if let Some((g, gseq, eseq, what)) = evidence {
            v.fail(
                "MQTT-3.1.2-24",
                format!(
                    "{} ({}) sent nothing the broker received from {} on (keep alive {}), yet after 1.5 x keep alive + {} the broker {what}",
                    meta.actor,
                    id,
                    fmt_d(g),
                    fmt_d(ka),
                    fmt_d(self.slack)
                ),
                vec![gseq, eseq],
            );
        }
        // Too early.
        if let Some((cl, CloseReason::BrokerClosed)) = &meta.closed {
            let last = j.before_close;
            let last = if last.0 <= cl.at {
                last
            } else {
                (j.acc, j.connect.seq)
            };
            let idle = cl.at.saturating_sub(last.0);
            let broker_event = self.ctx.broker_down_between(
                cl.at.saturating_sub(Duration::from_secs(1)),
                cl.at + Duration::from_secs(1),
            );
            if idle < ka
                && idle >= Duration::from_millis(500)
                && !disconnected
                && !j.taken_over
                && !broker_event
                && !self.malformed.contains(&id)
            {
                v.fail(
                    "keepalive-early-close",
                    format!(
                        "the broker closed {} ({}) {} after the last packet it received, before the keep alive of {} had passed",
                        meta.actor,
                        id,
                        fmt_d(idle),
                        fmt_d(ka)
                    ),
                    vec![last.1, cl.seq],
                );
            }
        }
    }
}

/// Two PINGREQs, the first answered, sooner than keep alive / 2.
fn too_fast(
    meta: &ConnMeta,
    id: ConnId,
    (t, seq): (Duration, u64),
    (t2, seq2): (Duration, u64),
    ka: Duration,
) -> Violation {
    Violation::new(
        "keepalive-ping-too-fast",
        format!(
            "{} ({}) pinged {} after an answered PINGREQ, with keep alive {}: faster than keep alive / 2",
            meta.actor,
            id,
            fmt_d(t2 - t),
            fmt_d(ka)
        ),
        vec![seq, seq2],
    )
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::{
        assert_violates, connack, connect311, judge_both, live_at, Kit,
    };
    use super::*;
    use crate::mqtt::Version;

    fn checker() -> KeepaliveChecker {
        KeepaliveChecker {
            actor: None,
            slack: Duration::from_secs(1),
            client: true,
            broker: true,
        }
    }

    /// A 3.1.1 CONNECT with this keep alive (seconds).
    fn connect_ka(ka: u16) -> Packet {
        let Packet::Connect(mut c) = connect311("d") else {
            unreachable!()
        };
        c.keep_alive = ka;
        Packet::Connect(c)
    }

    /// The device connected at 0 with keep alive `ka`, accepted 1 ms later.
    fn session(ka: u16) -> Kit {
        let mut k = Kit::new();
        k.session(1, "device", connect_ka(ka), connack(false, 0, ""));
        k
    }

    fn ping(k: &mut Kit) -> &mut Kit {
        k.up(1, "device", Packet::PingReq)
    }

    fn pong(k: &mut Kit) -> &mut Kit {
        k.down(1, "device", Packet::PingResp)
    }

    fn judge(k: &Kit) -> Verdict {
        judge_both(&checker(), &k.history())
    }

    /// Each rule with a history that breaks it.
    #[test]
    fn each_rule_has_a_history_that_breaks_it() {
        // Silent past its keep alive, and the broker keeps it open.
        let mut k = session(2);
        k.wait(6000).step("end");
        let v = judge(&k);
        assert_violates(&v, "MQTT-3.1.2-23");
        assert_violates(&v, "MQTT-3.1.2-24");

        // Closed by the broker 1.5 s into a keep alive of 4 s.
        let mut k = session(4);
        k.wait(1500).close(1, "device", CloseReason::BrokerClosed);
        assert_eq!(judge(&k).rules(), vec!["keepalive-early-close"]);

        // A second PINGREQ 1 s after an answered one, keep alive 10 s.
        let mut k = session(10);
        k.wait(1000);
        ping(&mut k).wait(5);
        pong(&mut k).wait(1000);
        ping(&mut k).wait(5);
        pong(&mut k)
            .wait(10)
            .close(1, "device", CloseReason::ClientClosed);
        assert_eq!(judge(&k).rules(), vec!["keepalive-ping-too-fast"]);
    }

    /// Right beside them: what the rules allow.
    #[test]
    fn histories_that_keep_the_rules_pass() {
        // Pings within the keep alive, answered, then DISCONNECT.
        let mut k = session(2);
        for _ in 0..3 {
            k.wait(1500);
            ping(&mut k).wait(5);
            pong(&mut k);
        }
        k.wait(100)
            .up(1, "device", Packet::Disconnect(Default::default()))
            .close(1, "device", CloseReason::ClientClosed)
            .wait(5000)
            .step("end");
        let v = judge(&k);
        assert!(v.ok(), "{v:?}");

        // Silent inside a blackhole: neither the client nor the broker
        // can be judged on it.
        let mut k = session(2);
        k.wait(100)
            .fault("device", "blackhole")
            .wait(6000)
            .step("end");
        let v = judge(&k);
        assert!(v.ok(), "{v:?}");

        // An early close that a takeover explains (a CONNECT with the same
        // client id 50 ms after it).
        let mut k = session(4);
        k.wait(1500).close(1, "device", CloseReason::BrokerClosed);
        k.wait(50).open(2, "device").up(2, "device", connect_ka(4));
        let v = judge(&k);
        assert!(v.ok(), "{v:?}");

        // Two quick PINGREQs, the first never answered.
        let mut k = session(10);
        k.wait(1000);
        ping(&mut k).wait(1000);
        ping(&mut k).wait(5);
        pong(&mut k);
        assert!(judge(&k).ok());
    }

    /// A deadline is judged at every prefix as the whole-history rule
    /// judges that prefix: not before an event later than it is fed, and
    /// changed by what the rule reads after it — the broker's answer that
    /// proves a silence under a fault, a malformed frame or takeover that
    /// explains a close, a PINGRESP recorded at the second PINGREQ's time.
    #[test]
    fn deadlines_are_judged_at_every_prefix_as_at_the_end() {
        // The client's keep alive of 2 s (+1 s) from its CONNECT at 0.
        let mut k = session(2);
        k.wait(2999).step("at the deadline");
        let n = k.history().events.len();
        k.wait(1).step("past it");
        let h = k.history();
        assert!(live_at(&checker(), &h, n).ok());
        assert_eq!(
            live_at(&checker(), &h, h.events.len()).rules(),
            vec!["MQTT-3.1.2-23"]
        );

        // Silent for 5 s inside a blackhole; the broker then gets a packet
        // and answers it: only the answer proves it kept the connection.
        let mut k = session(2);
        k.wait(100).fault("device", "blackhole").wait(4900);
        ping(&mut k);
        let n = k.history().events.len();
        k.wait(100);
        pong(&mut k);
        let h = k.history();
        assert!(live_at(&checker(), &h, n).ok());
        assert_eq!(
            live_at(&checker(), &h, h.events.len()).rules(),
            vec!["MQTT-3.1.2-24"]
        );

        // An early close, then a frame the codec rejects on it: the close
        // answered that.
        let mut k = session(4);
        k.wait(1500).close(1, "device", CloseReason::BrokerClosed);
        let n = k.history().events.len();
        k.malformed(1, "device", Dir::ToBroker, &[0x00, 0x00], Version::V311);
        let h = k.history();
        assert_eq!(
            live_at(&checker(), &h, n).rules(),
            vec!["keepalive-early-close"]
        );
        assert!(live_at(&checker(), &h, h.events.len()).ok());

        // The same, explained by a takeover 100 ms after the close.
        let mut k = session(4);
        k.wait(1500).close(1, "device", CloseReason::BrokerClosed);
        k.wait(100).open(2, "device");
        let n = k.history().events.len();
        k.up(2, "device", connect_ka(4));
        let h = k.history();
        assert_eq!(
            live_at(&checker(), &h, n).rules(),
            vec!["keepalive-early-close"]
        );
        assert!(live_at(&checker(), &h, h.events.len()).ok());

        // The PINGRESP that answers the first of two quick PINGREQs is
        // recorded after the second, at its time.
        let mut k = session(10);
        k.wait(1000);
        ping(&mut k).wait(1000);
        ping(&mut k);
        let n = k.history().events.len();
        pong(&mut k);
        let h = k.history();
        assert!(live_at(&checker(), &h, n).ok());
        assert_eq!(
            live_at(&checker(), &h, h.events.len()).rules(),
            vec!["keepalive-ping-too-fast"]
        );
    }
}
