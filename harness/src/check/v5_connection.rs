//! `v5_connection`: what a 5.0 CONNACK and a broker's DISCONNECT promise,
//! and whether both sides kept to it (statement ids are MQTT 5.0's).
//!
//! Broker:
//! - after a refusing CONNACK (0x80 or more) the broker closes the
//!   connection within `slack` [MQTT-3.2.2-7], sending nothing more;
//! - a client that connected with an empty client id gets an Assigned
//!   Client Identifier in the successful CONNACK [MQTT-3.2.2-16]
//!   [MQTT-3.1.3-7];
//! - clean start 1 accepted: session present 0 [MQTT-3.2.2-2], the old
//!   session discarded [MQTT-3.1.2-4];
//! - no Response Information unless the CONNECT asked for it
//!   [MQTT-3.1.2-28]; with Request Problem Information 0, no Reason String
//!   or User Properties on anything but PUBLISH, CONNACK and DISCONNECT
//!   [MQTT-3.1.2-29];
//! - a CONNACK or DISCONNECT of 0x80 or more ends the connection
//!   [MQTT-4.13.2-1]; a refused CONNECT failed a check [MQTT-3.1.4-2],
//!   some with a statement of their own: unsupported version 0x84
//!   [MQTT-3.1.2-2], client id not valid 0x85 [MQTT-3.1.3-8], an
//!   authentication method refused [MQTT-4.12.0-1], any refusal while
//!   authenticating [MQTT-4.12.0-4];
//! - an accepted will is within the CONNACK's Maximum QoS
//!   [MQTT-3.2.2-12] and Retain Available [MQTT-3.2.2-13];
//! - a SUBACK has one reason code per filter [MQTT-3.8.4-6] and an UNSUBACK
//!   one per filter [MQTT-3.11.3-1];
//! - the broker's DISCONNECT comes only after a successful CONNACK
//!   [MQTT-3.14.0-1], carries no Session Expiry Interval [MQTT-3.14.2-2],
//!   is the last packet it sends there [MQTT-3.14.4-1], and the broker
//!   closes the connection within `slack` of it [MQTT-3.14.4-2];
//! - a PINGREQ that reached the broker is answered with PINGRESP within
//!   `slack` while the connection stays open [MQTT-3.12.4-1].
//!
//! Client (actors in `clients`):
//! - no PUBLISH above the CONNACK's Maximum QoS [MQTT-3.2.2-11], no
//!   retained PUBLISH when Retain Available is 0 [MQTT-3.2.2-14];
//! - with a Server Keep Alive in the CONNACK, the client sends something
//!   within that many seconds (+ `slack`) while its connection is open and
//!   free of faults [MQTT-3.2.2-21] [MQTT-3.1.2-21];
//! - a client that connected with clean start 1 (it has no session) and
//!   got session present 1 closes: it sends nothing but DISCONNECT after
//!   that CONNACK [MQTT-3.2.2-4];
//! - after its own DISCONNECT, nothing more [MQTT-3.14.4-1].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use super::index::{seen, sent};
use super::live::Context;
use super::v5_limits::{judged, Pkt, V5Conns};
use super::{Checker, Incremental, Verdict, Violation};
use crate::history::{ConnId, Dir, Event, EventKind, History};
use crate::mqtt::props::{
    self, ASSIGNED_CLIENT_ID, MAXIMUM_QOS, RETAIN_AVAILABLE, SERVER_KEEP_ALIVE, SESSION_EXPIRY,
};
use crate::mqtt::{Connect, Packet, Properties};

/// 5.0's takeover statement, judged by the `connections` checker on 5.0
/// connections (a broker must end the old connection of a client id that
/// connects again).
pub const TAKEOVER: &str = "MQTT-3.1.4-3";

pub struct ConnectionChecker {
    pub clients: Vec<String>,
    pub slack: Duration,
}

impl ConnectionChecker {
    fn live(&self) -> Live {
        Live {
            clients: self.clients.clone(),
            slack: self.slack,
            ctx: Context::default(),
            conns: V5Conns::default(),
            due: BinaryHeap::new(),
        }
    }
}

impl Checker for ConnectionChecker {
    fn name(&self) -> &str {
        "v5_connection"
    }

    /// The whole history through the same state machine `observe` feeds
    /// event by event, so both forms judge alike by construction.
    fn check(&self, history: &History) -> Verdict {
        super::judge_whole(self.live(), history)
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(self.live()))
    }
}

/// A deadline that is decided once the log has passed it: a PINGREQ's
/// answer, or the end of a silence under the Server Keep Alive.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// The PINGREQ event's seq.
    Ping(u64),
    /// The generation of the connection's last packet from the client.
    Silence(u64),
}

struct Live {
    clients: Vec<String>,
    slack: Duration,
    ctx: Context,
    conns: V5Conns<Conn>,
    /// Deadlines not yet passed, earliest first.
    due: BinaryHeap<Reverse<(Duration, ConnId, Due)>>,
}

/// The client's silences under the CONNACK's Server Keep Alive: its
/// packets are kept until the first CONNACK says whether there is one.
enum Silence {
    Waiting(Vec<(u64, Duration)>),
    Off,
    On {
        /// The Server Keep Alive, in seconds.
        ka: u32,
        limit: Duration,
        /// The client's last packet (none yet: silent from 0).
        prev: Option<(u64, Duration)>,
        /// Bumped when `prev` moves, to tell a stale deadline.
        generation: u64,
        /// Whether `prev`'s silence window was free of disturbances, once
        /// the log has passed its end.
        quiet: Option<bool>,
        /// The first silence found too long between two packets: (seq of
        /// the packet before it, its time, the silence).
        failed: Option<(u64, Duration, Duration)>,
    },
}

/// One 5.0 connection as the rules read it, packet by packet.
struct Conn {
    id: ConnId,
    actor: String,
    /// Its actor's own conduct is judged (`clients`).
    client: bool,
    connect: Connect,
    no_problems: bool,
    authenticating: bool,
    /// The first CONNACK's properties (what the client must keep to).
    ack: Option<Properties>,
    connack_ok: bool,
    broker_disconnect: Option<u64>,
    client_disconnect: Option<u64>,
    refused: Option<u64>,
    /// A CONNACK with session present 1 that reached a client which
    /// connected with clean start 1.
    stateless_sp: Option<u64>,
    /// The latest SUBSCRIBE (false) or UNSUBSCRIBE (true) per packet id:
    /// how many filters it had.
    requests: HashMap<(u16, bool), usize>,
    /// PINGREQs not answered yet: seq, time, and once the deadline has
    /// passed whether it counts (connection open, undisturbed).
    pings: VecDeque<(u64, Duration, Option<bool>)>,
    refused_at: Option<Duration>,
    refused_code: u8,
    disconnect_at: Option<Duration>,
    disconnect_code: u8,
    /// The client's PUBLISHes before the first CONNACK, judged against it
    /// when it comes: seq, QoS, retain.
    early_pubs: Vec<(u64, u8, bool)>,
    silence: Silence,
    /// Violations found packet by packet, keyed by (seq, order within
    /// the packet) so that the early PUBLISHes' take their place.
    found: Vec<((u64, u16), Violation)>,
}

impl Conn {
    fn new(id: ConnId, actor: &str, client: bool, c: &Connect) -> Conn {
        Conn {
            id,
            actor: actor.to_string(),
            client,
            connect: c.clone(),
            no_problems: props::num(&c.properties, REQUEST_PROBLEM_INFORMATION) == Some(0),
            authenticating: props::get(&c.properties, AUTHENTICATION_METHOD).is_some(),
            ack: None,
            connack_ok: false,
            broker_disconnect: None,
            client_disconnect: None,
            refused: None,
            stateless_sp: None,
            requests: HashMap::new(),
            pings: VecDeque::new(),
            refused_at: None,
            refused_code: 0,
            disconnect_at: None,
            disconnect_code: 0,
            early_pubs: Vec::new(),
            silence: if client {
                Silence::Waiting(Vec::new())
            } else {
                Silence::Off
            },
            found: Vec::new(),
        }
    }

    fn fail(&mut self, key: (u64, u16), rule: &str, message: String, events: Vec<u64>) {
        let v = Violation::new(rule, message, events);
        let at = self.found.partition_point(|(k, _)| *k <= key);
        self.found.insert(at, (key, v));
    }

    /// Takes the connection's next packet. `slack` and the context decide
    /// the silences it ends; deadlines it opens go to `due`.
    fn packet(
        &mut self,
        p: Pkt,
        slack: Duration,
        ctx: &Context,
        due: &mut BinaryHeap<Reverse<(Duration, ConnId, Due)>>,
    ) {
        let mut n = 0u16;
        let mut key = || {
            n += 1;
            (p.seq, n)
        };
        let actor = self.actor.clone();
        if p.dir == Dir::ToClient {
            if let Some(s) = self.broker_disconnect {
                self.fail(
                    key(),
                    "MQTT-3.14.4-1",
                    format!(
                        "the broker sent {} to {actor} after its DISCONNECT",
                        p.packet.packet_type()
                    ),
                    vec![s, p.seq],
                );
                self.broker_disconnect = None;
            }
            if let Some(s) = self.refused {
                self.fail(
                    key(),
                    "MQTT-3.2.2-7",
                    format!(
                        "the broker sent {} to {actor} after refusing it",
                        p.packet.packet_type()
                    ),
                    vec![s, p.seq],
                );
                self.refused = None;
            }
        } else if let (Some(s), true, true) = (self.stateless_sp, self.client, sent(p.fate)) {
            if !matches!(p.packet, Packet::Disconnect(_)) {
                self.fail(
                    key(),
                    "MQTT-3.2.2-4",
                    format!(
                        "{actor} connected with clean start 1, got session present 1 and sent {} instead of closing",
                        p.packet.packet_type()
                    ),
                    vec![s, p.seq],
                );
            }
            self.stateless_sp = None;
        } else if let Some(s) = self.client_disconnect {
            if self.client && sent(p.fate) {
                self.fail(
                    key(),
                    "MQTT-3.14.4-1",
                    format!(
                        "{actor} sent {} after its DISCONNECT",
                        p.packet.packet_type()
                    ),
                    vec![s, p.seq],
                );
                self.client_disconnect = None;
            }
        }
        if p.dir == Dir::ToClient && sent(p.fate) && self.no_problems && problem_props(p.packet) {
            self.fail(
                key(),
                "MQTT-3.1.2-29",
                format!(
                    "the broker put a Reason String or User Properties on a {} to {actor}, which set Request Problem Information 0",
                    p.packet.packet_type()
                ),
                vec![p.seq],
            );
        }
        if let (Packet::ConnAck(a), None) = (p.packet, &self.ack) {
            self.first_connack(&a.properties, slack, ctx, due);
        }
        match (p.packet, p.dir) {
            (Packet::ConnAck(a), Dir::ToClient) => {
                // (Session present 1 on a refusal [MQTT-3.2.2-6] does
                // not decode: the codec flags that frame.)
                if a.code >= 0x80 {
                    self.refused = Some(p.seq);
                    self.refused_at = Some(p.at);
                    self.refused_code = a.code;
                }
                if a.code == 0 {
                    self.connack_ok = true;
                    if self.connect.client_id.is_empty()
                        && props::get(&a.properties, ASSIGNED_CLIENT_ID).is_none()
                    {
                        for rule in ["MQTT-3.2.2-16", "MQTT-3.1.3-7"] {
                            self.fail(key(), rule, format!("{actor} connected with an empty client id and the CONNACK has no Assigned Client Identifier"), vec![p.seq]);
                        }
                    }
                    if a.session_present && self.connect.clean_start {
                        if seen(p.fate) {
                            self.stateless_sp = Some(p.seq);
                        }
                        // Clean start 1 discards the session, so none
                        // can be present.
                        for rule in ["MQTT-3.2.2-2", "MQTT-3.1.2-4"] {
                            self.fail(key(), rule, format!("{actor} connected with clean start 1 and the CONNACK says session present 1"), vec![p.seq]);
                        }
                    }
                    for (rule, message) in will_capability(&self.connect, &actor, &a.properties) {
                        self.fail(key(), rule, message, vec![p.seq]);
                    }
                }
                if props::get(&a.properties, RESPONSE_INFORMATION).is_some()
                    && props::num(&self.connect.properties, REQUEST_RESPONSE_INFORMATION)
                        .unwrap_or(0)
                        == 0
                {
                    self.fail(key(), "MQTT-3.1.2-28", format!("the CONNACK to {actor} carries Response Information its CONNECT did not request"), vec![p.seq]);
                }
            }
            (Packet::Disconnect(d), Dir::ToClient) => {
                if !self.connack_ok {
                    self.fail(
                        key(),
                        "MQTT-3.14.0-1",
                        format!(
                            "the broker sent DISCONNECT to {actor} before a successful CONNACK"
                        ),
                        vec![p.seq],
                    );
                }
                if props::get(&d.properties, SESSION_EXPIRY).is_some() {
                    self.fail(
                        key(),
                        "MQTT-3.14.2-2",
                        format!(
                            "the broker's DISCONNECT to {actor} carries a Session Expiry Interval"
                        ),
                        vec![p.seq],
                    );
                }
                self.broker_disconnect = Some(p.seq);
                self.disconnect_at = Some(p.at);
                self.disconnect_code = d.code;
            }
            (Packet::Disconnect(_), Dir::ToBroker) if sent(p.fate) => {
                self.client_disconnect = Some(p.seq)
            }
            (Packet::Subscribe(s), Dir::ToBroker) if seen(p.fate) => {
                self.requests.insert((s.pid, false), s.filters.len());
            }
            (Packet::Unsubscribe(s), Dir::ToBroker) if seen(p.fate) => {
                self.requests.insert((s.pid, true), s.filters.len());
            }
            (Packet::SubAck(a), Dir::ToClient) => {
                if let Some(&n) = self.requests.get(&(a.pid, false)) {
                    if a.codes.len() != n {
                        self.fail(
                            key(),
                            "MQTT-3.8.4-6",
                            format!(
                                "SUBACK to {actor} has {} reason codes for {n} filters",
                                a.codes.len()
                            ),
                            vec![p.seq],
                        );
                    }
                }
            }
            (Packet::UnsubAck(a), Dir::ToClient) => {
                if let Some(&n) = self.requests.get(&(a.pid, true)) {
                    if a.codes.len() != n {
                        self.fail(
                            key(),
                            "MQTT-3.11.3-1",
                            format!(
                                "UNSUBACK to {actor} has {} reason codes for {n} filters",
                                a.codes.len()
                            ),
                            vec![p.seq],
                        );
                    }
                }
            }
            (Packet::PingReq, Dir::ToBroker) if seen(p.fate) => {
                self.pings.push_back((p.seq, p.at, None));
                due.push(Reverse((p.at + slack, self.id, Due::Ping(p.seq))));
            }
            (Packet::PingResp, Dir::ToClient) => {
                self.pings.pop_front();
            }
            (Packet::Publish(pb), Dir::ToBroker) if self.client && sent(p.fate) => {
                let (seq, qos, retain) = (p.seq, pb.qos.as_u8(), pb.retain);
                match self.ack.clone() {
                    Some(ack) => self.client_publish(seq, qos, retain, &ack),
                    // Judged against the first CONNACK when it comes.
                    None => self.early_pubs.push((seq, qos, retain)),
                }
            }
            _ => {}
        }
        if p.dir == Dir::ToBroker && sent(p.fate) {
            self.client_packet(p.seq, p.at, ctx, due);
        }
    }

    /// The first CONNACK (whoever sent it): what the client's PUBLISHes
    /// and silences are judged against.
    fn first_connack(
        &mut self,
        ack: &Properties,
        slack: Duration,
        ctx: &Context,
        due: &mut BinaryHeap<Reverse<(Duration, ConnId, Due)>>,
    ) {
        self.ack = Some(ack.clone());
        for (seq, qos, retain) in std::mem::take(&mut self.early_pubs) {
            self.client_publish(seq, qos, retain, ack);
        }
        let Silence::Waiting(ups) = std::mem::replace(&mut self.silence, Silence::Off) else {
            return;
        };
        let Some(ka) = props::num(ack, SERVER_KEEP_ALIVE).filter(|k| *k > 0) else {
            return;
        };
        self.silence = Silence::On {
            ka,
            limit: Duration::from_secs(ka as u64) + slack,
            prev: None,
            generation: 0,
            quiet: None,
            failed: None,
        };
        if ups.is_empty() {
            // Silent from 0 until a packet comes.
            self.silence_due(due);
        }
        for (seq, at) in ups {
            self.client_packet(seq, at, ctx, due);
        }
    }

    /// A PUBLISH of the client's against the first CONNACK's Maximum QoS
    /// and Retain Available.
    fn client_publish(&mut self, seq: u64, qos: u8, retain: bool, ack: &Properties) {
        let actor = self.actor.clone();
        if let Some(m) = props::num(ack, MAXIMUM_QOS) {
            if qos as u32 > m {
                self.fail(
                    (seq, 100),
                    "MQTT-3.2.2-11",
                    format!("{actor} published at QoS {qos} above the broker's Maximum QoS {m}"),
                    vec![seq],
                );
            }
        }
        if retain && props::num(ack, RETAIN_AVAILABLE) == Some(0) {
            self.fail(
                (seq, 101),
                "MQTT-3.2.2-14",
                format!("{actor} published a retained message; the broker said Retain Available 0"),
                vec![seq],
            );
        }
    }

    /// A packet the client sent: it ends a silence (judged now: the log
    /// has passed its window) and starts the next.
    fn client_packet(
        &mut self,
        seq: u64,
        at: Duration,
        ctx: &Context,
        due: &mut BinaryHeap<Reverse<(Duration, ConnId, Due)>>,
    ) {
        let actor = &self.actor;
        match &mut self.silence {
            Silence::Waiting(ups) => ups.push((seq, at)),
            Silence::Off => {}
            Silence::On {
                limit,
                prev,
                generation,
                quiet,
                failed,
                ..
            } => {
                if failed.is_some() {
                    return;
                }
                if let Some((pseq, pat)) = *prev {
                    let gap = at.saturating_sub(pat);
                    if gap > *limit && ctx.undisturbed(actor, pat, pat + *limit) {
                        *failed = Some((pseq, pat, gap));
                        return;
                    }
                }
                *prev = Some((seq, at));
                *generation += 1;
                *quiet = None;
                self.silence_due(due);
            }
        }
    }

    fn silence_due(&self, due: &mut BinaryHeap<Reverse<(Duration, ConnId, Due)>>) {
        if let Silence::On {
            limit,
            prev,
            generation,
            ..
        } = &self.silence
        {
            let from = prev.map(|p| p.1).unwrap_or_default();
            due.push(Reverse((from + *limit, self.id, Due::Silence(*generation))));
        }
    }

    /// Decides a deadline the log has passed.
    fn resolve(&mut self, limit: Duration, what: Due, ctx: &Context) {
        let closed = ctx
            .conns
            .get(&self.id)
            .and_then(|c| c.closed.as_ref().map(|(s, _)| s.at));
        match what {
            Due::Ping(seq) => {
                let actor = &self.actor;
                if let Some(x) = self.pings.iter_mut().find(|x| x.0 == seq) {
                    let open = closed.is_none_or(|t| t > limit);
                    x.2 = Some(open && ctx.undisturbed(actor, x.1, limit));
                }
            }
            Due::Silence(g) => {
                let actor = &self.actor;
                if let Silence::On {
                    prev,
                    generation,
                    quiet,
                    ..
                } = &mut self.silence
                {
                    if *generation == g {
                        let from = prev.map(|p| p.1).unwrap_or_default();
                        *quiet = Some(ctx.undisturbed(actor, from, limit));
                    }
                }
            }
        }
    }

    /// What this connection adds to the verdict, as the log stands
    /// (`end`, the connection's close).
    fn judge(&self, slack: Duration, closed_at: Option<Duration>, end: Duration, v: &mut Verdict) {
        let actor = &self.actor;
        v.violations
            .extend(self.found.iter().map(|(_, x)| x.clone()));
        // A reason of 0x80 or more also promises the close [MQTT-4.13.2-1].
        let closing: &[&str] = if self.disconnect_code >= 0x80 {
            &["MQTT-3.14.4-2", "MQTT-4.13.2-1"]
        } else {
            &["MQTT-3.14.4-2"]
        };
        // A refusal is a failed check [MQTT-3.1.4-2]; some codes have
        // their own statement of the close.
        let mut refusal: Vec<&str> = vec!["MQTT-3.2.2-7", "MQTT-4.13.2-1", "MQTT-3.1.4-2"];
        match self.refused_code {
            0x84 => refusal.push("MQTT-3.1.2-2"),
            0x85 => refusal.push("MQTT-3.1.3-8"),
            0x87 | 0x8C if self.authenticating => refusal.push("MQTT-4.12.0-1"),
            _ => {}
        }
        if self.authenticating {
            refusal.push("MQTT-4.12.0-4");
        }
        for (what, from, rules) in [
            (self.disconnect_at, "its DISCONNECT", closing),
            (self.refused_at, "a refusing CONNACK", &refusal[..]),
        ] {
            let Some(at) = what else { continue };
            let limit = at + slack;
            if limit < end && closed_at.is_none_or(|t| t > limit) {
                for rule in rules {
                    v.fail(
                        *rule,
                        format!(
                            "the broker did not close {actor}'s connection within {} of {from}",
                            super::fmt_d(slack)
                        ),
                        vec![],
                    );
                }
            }
        }
        for (seq, _, counts) in &self.pings {
            if *counts == Some(true) {
                v.fail(
                    "MQTT-3.12.4-1",
                    format!(
                        "no PINGRESP to {actor}'s PINGREQ within {}",
                        super::fmt_d(slack)
                    ),
                    vec![*seq],
                );
            }
        }
        // Server Keep Alive: the client's silences.
        let Silence::On {
            ka,
            limit,
            prev,
            quiet,
            failed,
            ..
        } = &self.silence
        else {
            return;
        };
        if !self.connack_ok {
            return;
        }
        let (seq, from, gap) = match failed {
            Some(x) => *x,
            None => {
                let (seq, from) = prev.unwrap_or_default();
                let gap = closed_at.unwrap_or(end).saturating_sub(from);
                if gap <= *limit || *quiet != Some(true) {
                    return;
                }
                (seq, from, gap)
            }
        };
        // Said twice in 5.0: under CONNECT's Keep Alive and CONNACK's
        // Server Keep Alive.
        for rule in ["MQTT-3.2.2-21", "MQTT-3.1.2-21"] {
            v.fail(
                rule,
                format!(
                    "{actor} was silent for {} from {}; the broker's Server Keep Alive is {ka}s",
                    super::fmt_d(gap),
                    super::fmt_d(from)
                ),
                vec![seq],
            );
        }
    }
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        self.ctx.feed(ev);
        let Live {
            clients,
            slack,
            ctx,
            conns,
            due,
        } = self;
        if let EventKind::Packet { conn, .. } = &ev.kind {
            let id = *conn;
            conns.feed(
                ev,
                |actor, c| Conn::new(id, actor, judged(clients, actor), c),
                |st, _, p| st.packet(p, *slack, ctx, due),
            );
        }
        // Deadlines the log has now passed are decided for good: what
        // comes later cannot disturb or close within them.
        while let Some(Reverse((limit, id, what))) = due.peek().copied() {
            if limit >= ev.at {
                break;
            }
            due.pop();
            if let Some(st) = conns.get_mut(id) {
                st.resolve(limit, what, ctx);
            }
        }
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("v5_connection");
        let end = self.ctx.end();
        for (_, st) in self.conns.judged() {
            let closed = self
                .ctx
                .conns
                .get(&st.id)
                .and_then(|c| c.closed.as_ref().map(|(s, _)| s.at));
            st.judge(self.slack, closed, end, &mut v);
        }
        v
    }
}

/// A will the broker accepted must be within what it can do: its QoS at
/// most the CONNACK's Maximum QoS [MQTT-3.2.2-12], retained only with
/// Retain Available [MQTT-3.2.2-13] — a broker that cannot must refuse.
fn will_capability(c: &Connect, actor: &str, ack: &Properties) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let Some(w) = c.will.as_ref() else {
        return out;
    };
    if let Some(m) = props::num(ack, MAXIMUM_QOS) {
        if w.qos.as_u8() as u32 > m {
            out.push((
                "MQTT-3.2.2-12",
                format!(
                    "the broker accepted {actor}'s will at QoS {} and says its Maximum QoS is {m}",
                    w.qos.as_u8()
                ),
            ));
        }
    }
    if w.retain && props::num(ack, RETAIN_AVAILABLE) == Some(0) {
        out.push((
            "MQTT-3.2.2-13",
            format!("the broker accepted {actor}'s retained will and says Retain Available 0"),
        ));
    }
    out
}

/// Request Problem Information, Request Response Information and
/// Response Information.
const AUTHENTICATION_METHOD: u8 = 0x15;
const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
const RESPONSE_INFORMATION: u8 = 0x1A;

/// A packet other than PUBLISH, CONNACK and DISCONNECT with a Reason
/// String or User Properties: what a client that set Request Problem
/// Information 0 must not get.
fn problem_props(p: &Packet) -> bool {
    if matches!(
        p,
        Packet::Publish(_) | Packet::ConnAck(_) | Packet::Disconnect(_)
    ) {
        return false;
    }
    props::packet_props(p).is_some_and(|l| {
        props::get(l, props::REASON_STRING).is_some()
            || props::get(l, props::USER_PROPERTY).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::*;
    use super::*;
    use crate::history::CloseReason;

    fn checker() -> ConnectionChecker {
        ConnectionChecker {
            clients: vec!["device".into()],
            slack: Duration::from_millis(500),
        }
    }

    #[test]
    fn refusals_must_close() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", false, 60, ""),
            connack(false, 0x87, ""),
        );
        k.wait(10)
            .close(1, "device", CloseReason::BrokerClosed)
            .wait(1000)
            .step("end");
        assert!(judge_both(&checker(), &k.history()).ok());
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", false, 60, ""),
            connack(false, 0x87, ""),
        );
        k.wait(2000).step("end");
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.2.2-7", "MQTT-4.13.2-1", "MQTT-3.1.4-2"]
        );
        // Codes with their own statement of the close.
        let kept_open = |code: u8, props: &str| {
            let mut k = Kit::new();
            k.session(
                1,
                "device",
                connect("d", false, 60, props),
                connack(false, code, ""),
            );
            k.wait(2000).step("end");
            judge_both(&checker(), &k.history())
        };
        let auth = "authentication_method = \"m\"";
        assert_violates(&kept_open(0x84, ""), "MQTT-3.1.2-2");
        assert_violates(&kept_open(0x85, ""), "MQTT-3.1.3-8");
        assert_violates(&kept_open(0x8C, auth), "MQTT-4.12.0-1");
        assert_violates(&kept_open(0x86, auth), "MQTT-4.12.0-4");
        assert!(!kept_open(0x86, "").rules().contains(&"MQTT-4.12.0-4"));
    }

    #[test]
    fn an_accepted_will_is_within_the_brokers_means() {
        let will = |qos: u8, retain: bool, ack: &str| {
            let Packet::Connect(mut c) = connect_will("d", 60, "", "w", "x", "") else {
                unreachable!()
            };
            if let Some(w) = c.will.as_mut() {
                w.qos = crate::mqtt::QoS::from_u8(qos).unwrap();
                w.retain = retain;
            }
            let mut k = Kit::new();
            k.session(1, "device", Packet::Connect(c), connack(false, 0, ack));
            judge_both(&checker(), &k.history())
        };
        assert!(will(1, true, "maximum_qos = 1").ok());
        assert_eq!(
            will(2, false, "maximum_qos = 1").rules(),
            vec!["MQTT-3.2.2-12"]
        );
        assert_eq!(
            will(0, true, "retain_available = 0").rules(),
            vec!["MQTT-3.2.2-13"]
        );
    }

    #[test]
    fn an_empty_client_id_needs_an_assigned_one() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("", true, 60, ""),
            connack(false, 0, "assigned_client_identifier = \"auto-1\""),
        );
        assert!(judge_both(&checker(), &k.history()).ok());
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("", true, 60, ""),
            connack(false, 0, ""),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.2.2-16", "MQTT-3.1.3-7"]
        );
    }

    #[test]
    fn clean_start_response_and_problem_information_are_kept() {
        // Session present 1 is fine on clean start 0, and so are a Reason
        // String on a CONNACK and Response Information that were asked for.
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect(
                "d",
                false,
                60,
                "request_problem_information = 0\nrequest_response_information = 1",
            ),
            connack(
                true,
                0,
                "response_information = \"r/\"\nreason_string = \"welcome\"",
            ),
        );
        k.up(1, "device", subscribe(1, "a", 0, 0, ""))
            .down(1, "device", suback(1, &[0]));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(true, 0, "response_information = \"r/\""),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.2.2-2", "MQTT-3.1.2-4", "MQTT-3.1.2-28"]
        );
        // The client must close on it: carrying on breaks its own rule,
        // a DISCONNECT does not.
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(true, 0, ""),
        );
        k.up(1, "device", disconnect(0x82, ""))
            .close(1, "device", CloseReason::ClientClosed);
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.2.2-2", "MQTT-3.1.2-4"]
        );
        k.session(
            2,
            "device",
            connect("d", true, 60, ""),
            connack(true, 0, ""),
        );
        k.up(2, "device", subscribe(1, "a", 0, 0, ""));
        assert_violates(&judge_both(&checker(), &k.history()), "MQTT-3.2.2-4");
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, "request_problem_information = 0"),
            connack(false, 0, ""),
        );
        k.up(1, "device", subscribe(1, "a", 0, 0, "")).down(
            1,
            "device",
            Packet::SubAck(crate::mqtt::SubAck {
                pid: 1,
                codes: vec![0x87],
                properties: crate::check::v5_testkit::p(
                    crate::mqtt::props::Place::Packet(crate::mqtt::PacketType::SubAck),
                    "reason_string = \"not allowed\"",
                ),
            }),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.1.2-29"]
        );
    }

    #[test]
    fn a_takeover_must_end_the_old_connection() {
        use crate::check::connections::ConnectionsChecker;
        let takeover = || ConnectionsChecker {
            slack: Duration::from_secs(2),
        };
        // The broker accepts the second connection of `d` and leaves the
        // first one open.
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        );
        k.wait(500);
        k.session(
            2,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(true, 0, ""),
        );
        k.wait(3000).step("end");
        let v = takeover().check(&k.history());
        assert_eq!(v.rules(), vec!["MQTT-3.1.4-3"], "{v:?}");
        // Tricky but fine: DISCONNECT 0x8E and the close come just after the
        // new CONNACK, within the slack.
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        );
        k.wait(500);
        k.session(
            2,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(true, 0, ""),
        );
        k.wait(300).down(1, "device", disconnect(0x8E, ""));
        k.close(1, "device", CloseReason::BrokerClosed);
        k.wait(3000).step("end");
        let v = takeover().check(&k.history());
        assert!(v.ok(), "{v:?}");
    }

    #[test]
    fn server_disconnect_rules() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, ""),
        );
        k.down(1, "device", disconnect(0x8E, "")).wait(5).close(
            1,
            "device",
            CloseReason::BrokerClosed,
        );
        k.wait(1000).step("end");
        assert!(judge_both(&checker(), &k.history()).ok());
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, ""),
        );
        k.down(1, "device", disconnect(0x8E, "session_expiry = 5"))
            .down(1, "device", publish(None, 0, "t", "x", ""));
        k.wait(1000).step("end");
        let v = judge_both(&checker(), &k.history());
        assert_violates(&v, "MQTT-3.14.2-2");
        assert_violates(&v, "MQTT-3.14.4-1");
        assert_violates(&v, "MQTT-3.14.4-2");
        assert_violates(&v, "MQTT-4.13.2-1");
        let mut k = Kit::new();
        k.open(1, "device")
            .up(1, "device", connect("d", true, 60, ""));
        k.down(1, "device", disconnect(0x87, ""))
            .close(1, "device", CloseReason::BrokerClosed);
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.14.0-1"]
        );
    }

    #[test]
    fn client_limits_maximum_qos_retain_and_server_keep_alive() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(
                false,
                0,
                "maximum_qos = 1\nretain_available = 0\nserver_keep_alive = 2",
            ),
        );
        k.wait(1500)
            .up(1, "device", publish(Some(1), 1, "t", "x", ""));
        k.wait(1500)
            .up(1, "device", Packet::PingReq)
            .wait(5)
            .down(1, "device", Packet::PingResp);
        k.wait(1000).step("end");
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        k.up(1, "device", publish(Some(2), 2, "t", "x", ""));
        k.up(1, "device", retained(publish(None, 0, "t", "x", "")));
        k.wait(4000).step("end");
        let v = judge_both(&checker(), &k.history());
        assert_violates(&v, "MQTT-3.2.2-11");
        assert_violates(&v, "MQTT-3.2.2-14");
        assert_violates(&v, "MQTT-3.2.2-21");
        assert_violates(&v, "MQTT-3.1.2-21");
    }

    #[test]
    fn unanswered_pings_and_miscounted_acks_fail() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "device", Packet::PingReq).wait(2000).step("end");
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.12.4-1"]
        );
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "device", subscribe(1, "a", 1, 0, ""))
            .down(1, "device", suback(1, &[1, 1]));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.8.4-6"]
        );
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", true, 60, ""),
            connack(false, 0, ""),
        );
        let unsub = |pid| {
            Packet::Unsubscribe(crate::mqtt::Unsubscribe {
                pid,
                filters: vec!["a".into(), "b".into()],
                properties: Default::default(),
            })
        };
        let unsuback = |pid, codes: &[u8]| {
            Packet::UnsubAck(crate::mqtt::UnsubAck {
                pid,
                codes: codes.to_vec(),
                properties: Default::default(),
            })
        };
        k.up(1, "device", unsub(2))
            .down(1, "device", unsuback(2, &[0, 0x11]));
        assert!(judge_both(&checker(), &k.history()).ok());
        k.up(1, "device", unsub(3))
            .down(1, "device", unsuback(3, &[0]));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.11.3-1"]
        );
    }

    /// A PUBLISH the client sent before the CONNACK came is judged
    /// against that CONNACK's Maximum QoS and Retain Available when it
    /// comes, and not before.
    #[test]
    fn a_publish_before_the_connack_is_judged_against_it() {
        let run = |qos: u8, retain: bool| {
            let mut k = Kit::new();
            k.open(1, "device")
                .up(1, "device", connect("d", true, 60, ""));
            let p = publish(Some(1), qos, "t", "x", "");
            k.up(1, "device", if retain { retained(p) } else { p });
            let before = judge_both(&checker(), &k.history());
            k.wait(5).down(
                1,
                "device",
                connack(false, 0, "maximum_qos = 1\nretain_available = 0"),
            );
            (before, judge_both(&checker(), &k.history()))
        };
        // Within both: fine before and after.
        let (before, after) = run(1, false);
        assert!(before.ok() && after.ok(), "{before:?} {after:?}");
        // Beyond both: nothing to hold it to until the CONNACK, then both.
        let (before, after) = run(2, true);
        assert!(before.ok(), "{before:?}");
        assert_eq!(after.rules(), vec!["MQTT-3.2.2-11", "MQTT-3.2.2-14"]);
        assert_eq!(after.violations[0].events, vec![2]);
    }
}
