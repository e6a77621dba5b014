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
//! One implementation judges both ways: [`Live`] is a state machine fed
//! one event at a time, and [`Checker::check`] feeds it a whole history,
//! so `observe`'s incremental verdict cannot know fewer rules than the
//! batch one (its first incremental form, a second copy of the rules, did:
//! it missed every rule added after it). What it keeps is what the rules
//! need: per connection a few facts (its first frames, first CONNECT and
//! CONNACK, whether it disconnected), the requests still unanswered, the
//! violations found, and the deadlines not yet decided. A deadline ("an
//! answer within `slack`") is decided once an event later than it is fed,
//! when nothing the history could still add changes the judgement (the
//! close, the faults and broker actions inside the window are all before
//! it); until then it is judged as the end of the log would judge it.
//! A judgement that a later event can still reverse — an answer that comes
//! after its deadline is still an answer — is kept as a decided fact and
//! combined with what comes, as the whole-history rule combines them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::index::{seen, sent, Stamp, Surroundings};
use super::live::{ConnMeta, Context};
use super::v5_limits::judged;
use super::{fmt_d, Checker, Incremental, Verdict, Violation};
use crate::history::{CloseReason, ConnId, Dir, Event, EventKind, Fate, History};
use crate::mqtt::{Packet, PacketType, Version};

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

impl Checker for PacketsChecker {
    fn name(&self) -> &str {
        "packets"
    }

    fn check(&self, history: &History) -> Verdict {
        super::judge_whole(self.live(), history)
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(self.live()))
    }
}

impl PacketsChecker {
    fn live(&self) -> Live {
        Live {
            clients: self.clients.clone(),
            slack: self.slack,
            ctx: Context::default(),
            order: Vec::new(),
            conns: HashMap::new(),
            due: BTreeMap::new(),
        }
    }
}

/// A frame's packet type, or `None` for bytes the codec rejected.
type FrameKind = Option<PacketType>;

/// The first CONNECT that reached the broker on a connection.
struct ConnectSeen {
    seq: u64,
    at: Duration,
    client_id: String,
    clean: bool,
}

/// The first CONNACK the broker sent on a connection.
struct ConnAckSent {
    seq: u64,
    at: Duration,
    code: u8,
}

/// A SUBSCRIBE, UNSUBSCRIBE or PINGREQ waiting for its answer: its packet
/// id, when it reached the broker, the answer it wants, the QoS each
/// filter asked for, and — once its deadline passed — whether it was late.
struct Request {
    pid: u16,
    seq: u64,
    at: Duration,
    what: &'static str,
    filters: Vec<u8>,
    late: Option<bool>,
}

/// One entry of a connection's findings, in the order the frames showed
/// them: decided, or a deadline still open (judged as the log's end would
/// judge it).
enum Item {
    Done(Verdict),
    /// The client's DISCONNECT (seq, time): the close is due.
    Disconnect(u64, Duration),
    /// The second CONNECT (seq, time): the broker's close is due.
    Second(u64, Duration),
}

/// What the rules keep of one connection.
#[derive(Default)]
struct Conn {
    /// The first frame each way that its sender sent: seq and kind.
    first_up: Option<(u64, FrameKind)>,
    first_down: Option<(u64, FrameKind)>,
    /// The first CONNECT the client sent: seq, and whether its client id
    /// was empty with clean session 0.
    first_connect: Option<(u64, bool)>,
    connect: Option<ConnectSeen>,
    connack: Option<ConnAckSent>,
    /// The first packet the broker sent after its CONNACK.
    after_connack: Option<(u64, PacketType)>,
    /// The CONNACK deadline once decided: was it missed (were there no
    /// CONNACK at all)?
    connack_missed: Option<bool>,
    /// The close after a refusal, once decided.
    refusal_closed: Option<Verdict>,
    connects: u32,
    pending: Vec<Request>,
    disconnected: Option<u64>,
    close_judged: bool,
    items: Vec<Item>,
}

/// Which deadline of a connection an entry of [`Live::due`] decides.
#[derive(Clone, Copy)]
enum Due {
    ConnAck,
    Refusal,
    /// The position in [`Conn::items`].
    Item(usize),
    /// The request with this seq.
    Request(u64),
}

/// [`PacketsChecker`] as a state machine: events in, verdict out.
pub struct Live {
    clients: Vec<String>,
    slack: Duration,
    ctx: Context,
    /// Connections in the order they appeared (as `Index` numbers them).
    order: Vec<ConnId>,
    /// Connections with at least one frame.
    conns: HashMap<ConnId, Conn>,
    /// Deadlines not yet decided, by (time, seq of the event that set
    /// them, kind).
    due: BTreeMap<(Duration, u64, u8), (ConnId, Due)>,
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        let known = self.ctx.conns.len();
        let conn = self.ctx.feed(ev);
        if self.ctx.conns.len() > known {
            self.order.extend(conn);
        }
        match &ev.kind {
            EventKind::Packet {
                conn,
                dir,
                packet,
                fate,
                ..
            } => self.frame(ev, *conn, *dir, *fate, Some(packet)),
            EventKind::Malformed { conn, dir, .. } => {
                self.frame(ev, *conn, *dir, Fate::Forwarded, None)
            }
            _ => {}
        }
        self.decide();
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("packets");
        let end = self.end();
        let mut judged_conns = 0usize;
        for id in &self.order {
            let meta = &self.ctx.conns[id];
            if meta.version() == Version::V5 {
                continue;
            }
            let Some(st) = self.conns.get(id) else {
                continue;
            };
            judged_conns += 1;
            self.judge_conn(*id, meta, st, end, &mut v);
        }
        v.note(format!("{judged_conns} 3.1.1 connection(s) judged"));
        v
    }
}

impl Live {
    /// The end of the log as the rules read it: its last event, or the
    /// teardown if that came first.
    fn end(&self) -> Duration {
        let end = self.ctx.end();
        self.ctx.teardown().map_or(end, |t| end.min(t))
    }

    /// One frame of a connection: a packet, or (`packet` None) bytes the
    /// codec rejected.
    fn frame(&mut self, ev: &Event, id: ConnId, dir: Dir, fate: Fate, packet: Option<&Packet>) {
        let (seq, at) = (ev.seq, ev.at);
        let st = self.conns.entry(id).or_default();
        if sent(fate) {
            let first = match dir {
                Dir::ToBroker => &mut st.first_up,
                Dir::ToClient => &mut st.first_down,
            };
            first.get_or_insert((seq, packet.map(Packet::packet_type)));
        }
        let Some(p) = packet else { return };
        // A packet event makes its connection known to the context.
        let client = self
            .ctx
            .conns
            .get(&id)
            .is_some_and(|m| judged(&self.clients, &m.actor));
        let slack = self.slack;
        let mut due = |limit: Duration, kind: u8, what: Due| {
            self.due.insert((limit, seq, kind), (id, what));
        };
        // The CONNECT/CONNACK facts the answer rules read.
        match (p, dir) {
            (Packet::Connect(cp), Dir::ToBroker) => {
                if sent(fate) && st.first_connect.is_none() {
                    st.first_connect = Some((seq, cp.client_id.is_empty() && !cp.clean_start));
                }
                if seen(fate) && st.connect.is_none() {
                    st.connect = Some(ConnectSeen {
                        seq,
                        at,
                        client_id: cp.client_id.clone(),
                        clean: cp.clean_start,
                    });
                    due(at + CONNACK_WITHIN, 0, Due::ConnAck);
                }
            }
            (_, Dir::ToClient) if sent(fate) => {
                if st.connack.as_ref().is_some_and(|a| seq > a.seq) {
                    st.after_connack.get_or_insert((seq, p.packet_type()));
                }
                if let (Packet::ConnAck(a), None) = (p, &st.connack) {
                    st.connack = Some(ConnAckSent {
                        seq,
                        at,
                        code: a.code,
                    });
                    if a.code != 0 {
                        due(at + slack, 1, Due::Refusal);
                    }
                }
            }
            _ => {}
        }
        // The order rules, frame by frame.
        if dir == Dir::ToBroker && sent(fate) {
            if let (Some(d), true) = (st.disconnected, client) {
                let actor = &self.ctx.conns[&id].actor;
                st.items.push(Item::Done(failed(
                    "MQTT-3.14.4-2",
                    format!(
                        "{actor} sent {} on {id} after its DISCONNECT",
                        p.packet_type()
                    ),
                    vec![d, seq],
                )));
                st.disconnected = None; // say it once
            }
            if matches!(p, Packet::Disconnect(_)) {
                st.disconnected = Some(seq);
                if client && !st.close_judged {
                    st.close_judged = true;
                    due(at + slack, 2, Due::Item(st.items.len()));
                    st.items.push(Item::Disconnect(seq, at));
                }
            }
        }
        let mut request = |pid: u16, what: &'static str, filters: Vec<u8>| {
            due(at + slack, 4, Due::Request(seq));
            st.pending.push(Request {
                pid,
                seq,
                at,
                what,
                filters,
                late: None,
            });
        };
        match (p, dir) {
            (Packet::Connect(_), Dir::ToBroker) if seen(fate) => {
                st.connects += 1;
                if st.connects == 2 {
                    due(at + slack, 3, Due::Item(st.items.len()));
                    st.items.push(Item::Second(seq, at));
                }
            }
            (Packet::Subscribe(s), Dir::ToBroker) if seen(fate) => request(
                s.pid,
                "SUBACK",
                s.filters.iter().map(|f| f.qos.as_u8()).collect(),
            ),
            (Packet::Unsubscribe(s), Dir::ToBroker) if seen(fate) => {
                request(s.pid, "UNSUBACK", vec![0; s.filters.len()])
            }
            (Packet::PingReq, Dir::ToBroker) if seen(fate) => request(0, "PINGRESP", Vec::new()),
            (Packet::SubAck(a), Dir::ToClient) if sent(fate) => {
                let actor = &self.ctx.conns[&id].actor;
                let mut v = Verdict::new("packets");
                match st
                    .pending
                    .iter()
                    .position(|x| x.pid == a.pid && x.what == "SUBACK")
                {
                    Some(i) => {
                        let req = st.pending.remove(i);
                        if a.codes.len() != req.filters.len() {
                            v.fail(
                                "MQTT-3.8.4-5",
                                format!(
                                    "SUBACK {} to {} has {} return code(s) for {} filter(s)",
                                    a.pid,
                                    actor,
                                    a.codes.len(),
                                    req.filters.len()
                                ),
                                vec![req.seq, seq],
                            );
                        } else if req.filters.len() > 1 {
                            let above = a
                                .codes
                                .iter()
                                .zip(&req.filters)
                                .position(|(&code, &asked)| code != 0x80 && code > asked);
                            if let Some(k) = above {
                                v.fail(
                                    "MQTT-3.9.3-1",
                                    format!(
                                        "SUBACK {} to {} grants QoS {} to filter {} of {}, which asked for QoS {}: return codes {:?} for requested {:?} are out of order or above the request",
                                        a.pid,
                                        actor,
                                        a.codes[k],
                                        k + 1,
                                        req.filters.len(),
                                        req.filters[k],
                                        a.codes,
                                        req.filters
                                    ),
                                    vec![req.seq, seq],
                                );
                            }
                        }
                    }
                    None => v.fail(
                        "MQTT-3.8.4-2",
                        format!("SUBACK {} to {} answers no SUBSCRIBE", a.pid, actor),
                        vec![seq],
                    ),
                }
                if !v.violations.is_empty() {
                    st.items.push(Item::Done(v));
                }
            }
            (Packet::UnsubAck(a), Dir::ToClient) if sent(fate) => {
                match st
                    .pending
                    .iter()
                    .position(|x| x.pid == a.pid && x.what == "UNSUBACK")
                {
                    Some(i) => {
                        st.pending.remove(i);
                    }
                    None => {
                        let actor = &self.ctx.conns[&id].actor;
                        st.items.push(Item::Done(failed(
                            "MQTT-3.10.4-5",
                            format!("UNSUBACK {} to {} answers no UNSUBSCRIBE", a.pid, actor),
                            vec![seq],
                        )));
                    }
                }
            }
            (Packet::PingResp, Dir::ToClient) if sent(fate) => {
                if let Some(i) = st.pending.iter().position(|x| x.what == "PINGRESP") {
                    st.pending.remove(i);
                }
            }
            _ => {}
        }
    }

    /// Decides the deadlines the log has passed: an event later than a
    /// deadline was fed, so nothing still to come changes its judgement.
    fn decide(&mut self) {
        let end = self.end();
        while let Some(e) = self.due.first_entry() {
            if e.key().0 >= end {
                break;
            }
            let (id, what) = e.remove();
            let (Some(st), Some(meta)) = (self.conns.get(&id), self.ctx.conns.get(&id)) else {
                continue;
            };
            match what {
                Due::ConnAck => {
                    let missed = st
                        .connect
                        .as_ref()
                        .is_some_and(|cf| self.connack_missed(meta, cf, end));
                    if let Some(st) = self.conns.get_mut(&id) {
                        st.connack_missed = Some(missed);
                    }
                }
                Due::Refusal => {
                    let mut v = Verdict::new("packets");
                    if let Some(a) = &st.connack {
                        self.refusal_close(id, meta, a, end, &mut v);
                    }
                    if let Some(st) = self.conns.get_mut(&id) {
                        st.refusal_closed = Some(v);
                    }
                }
                Due::Item(i) => {
                    let mut v = Verdict::new("packets");
                    if let Some(item) = st.items.get(i) {
                        self.open_item(id, meta, item, end, &mut v);
                    }
                    if let Some(st) = self.conns.get_mut(&id) {
                        st.items[i] = Item::Done(v);
                    }
                }
                Due::Request(seq) => {
                    let late = st
                        .pending
                        .iter()
                        .position(|r| r.seq == seq)
                        .map(|k| (k, self.request_late(meta, &st.pending[k], end)));
                    if let (Some((k, late)), Some(st)) = (late, self.conns.get_mut(&id)) {
                        st.pending[k].late = Some(late);
                    }
                }
            }
        }
    }

    /// The findings on one 3.1.1 connection, in the order of its rules.
    fn judge_conn(&self, id: ConnId, meta: &ConnMeta, st: &Conn, end: Duration, v: &mut Verdict) {
        let client = judged(&self.clients, &meta.actor);
        let actor = &meta.actor;
        if let (Some((seq, Some(t))), true) = (st.first_up, client) {
            if t != PacketType::Connect {
                v.fail(
                    "MQTT-3.1.0-1",
                    format!("{actor}'s first packet on {id} was {t}, not CONNECT"),
                    vec![seq],
                );
            }
        }
        if let Some((seq, Some(t))) = st.first_down {
            if t != PacketType::ConnAck {
                v.fail(
                    "MQTT-3.2.0-1",
                    format!("the broker's first packet to {actor} on {id} was {t}, not CONNACK"),
                    vec![seq],
                );
            }
        }
        self.connect_answer(id, meta, st, client, end, v);
        for item in &st.items {
            self.open_item(id, meta, item, end, v);
        }
        for req in &st.pending {
            if req
                .late
                .unwrap_or_else(|| self.request_late(meta, req, end))
            {
                let rule = match req.what {
                    "SUBACK" => "MQTT-3.8.4-1",
                    "UNSUBACK" => "MQTT-3.10.4-4",
                    _ => "MQTT-3.12.4-1",
                };
                v.fail(
                    rule,
                    format!(
                        "no {} for {actor}'s request on {id} within {}",
                        req.what,
                        fmt_d(self.slack)
                    ),
                    vec![req.seq],
                );
            }
        }
    }

    /// The connection's first close, unless it is the run's end.
    fn closed(meta: &ConnMeta) -> Option<&(Stamp, CloseReason)> {
        meta.closed
            .as_ref()
            .filter(|(_, r)| !matches!(r, CloseReason::RunEnded))
    }

    /// Nothing the log shows could excuse the broker in `[from, to]`.
    fn quiet(&self, meta: &ConnMeta, from: Duration, to: Duration, end: Duration) -> bool {
        to < end
            && self.ctx.undisturbed(&meta.actor, from, to)
            && !self.ctx.broker_down_between(from, to)
    }

    /// A request that reached the broker went unanswered past its deadline
    /// while the connection stood undisturbed (whether an answer came
    /// later is the caller's to know).
    fn request_late(&self, meta: &ConnMeta, req: &Request, end: Duration) -> bool {
        let limit = req.at + self.slack;
        Live::closed(meta).is_none_or(|(s, _)| s.at > limit) && self.quiet(meta, req.at, limit, end)
    }

    /// The CONNECT `cf` was neither answered nor its connection closed by
    /// [`CONNACK_WITHIN`], undisturbed (should no CONNACK come at all).
    fn connack_missed(&self, meta: &ConnMeta, cf: &ConnectSeen, end: Duration) -> bool {
        let limit = cf.at + CONNACK_WITHIN;
        Live::closed(meta).is_none_or(|(s, _)| s.at > limit) && self.quiet(meta, cf.at, limit, end)
    }

    /// The CONNECT/CONNACK rules of 3.1.4 and 3.2.2 on one connection.
    fn connect_answer(
        &self,
        id: ConnId,
        meta: &ConnMeta,
        st: &Conn,
        client: bool,
        end: Duration,
        v: &mut Verdict,
    ) {
        let actor = &meta.actor;
        if let (true, Some((seq, true))) = (client, st.first_connect) {
            v.fail(
                "MQTT-3.1.3-7",
                format!(
                    "{actor} sent a CONNECT on {id} with an empty client id and clean session 0"
                ),
                vec![seq],
            );
        }
        let Some(cf) = &st.connect else {
            return;
        };
        let Some(a) = &st.connack else {
            if st
                .connack_missed
                .unwrap_or_else(|| self.connack_missed(meta, cf, end))
            {
                v.fail(
                    "MQTT-3.1.4-4",
                    format!(
                        "the broker neither answered {actor}'s CONNECT on {id} with a CONNACK nor closed the connection within {}",
                        fmt_d(CONNACK_WITHIN)
                    ),
                    vec![cf.seq],
                );
            }
            return;
        };
        if a.seq < cf.seq {
            return; // the first-packet rule (MQTT-3.2.0-1) has it
        }
        if cf.client_id.is_empty() && !cf.clean && a.code == 0 {
            v.fail(
                "MQTT-3.1.3-8",
                format!(
                    "the broker accepted {actor}'s CONNECT on {id} with an empty client id and clean session 0; it must refuse it with 0x02"
                ),
                vec![cf.seq, a.seq],
            );
        }
        if a.code == 2 && plain_client_id(&cf.client_id) {
            v.fail(
                "MQTT-3.1.3-5",
                format!(
                    "the broker refused client id {:?} of {actor} on {id} (0x02), though every server must accept 1 to 23 characters from 0-9a-zA-Z",
                    cf.client_id
                ),
                vec![cf.seq, a.seq],
            );
        }
        if a.code == 0 {
            return;
        }
        if let Some((seq, t)) = st.after_connack {
            v.fail(
                "MQTT-3.1.4-5",
                format!(
                    "the broker refused {actor}'s CONNECT on {id} (return code {:#04x}) and then sent {t}: it must process nothing after a refusal",
                    a.code
                ),
                vec![a.seq, seq],
            );
        }
        match &st.refusal_closed {
            Some(done) => extend(v, done),
            None => self.refusal_close(id, meta, a, end, v),
        }
    }

    /// After the refusing CONNACK `a` the broker closes the connection
    /// within `slack` [MQTT-3.2.2-5], [MQTT-3.1.3-9].
    fn refusal_close(
        &self,
        id: ConnId,
        meta: &ConnMeta,
        a: &ConnAckSent,
        end: Duration,
        v: &mut Verdict,
    ) {
        let actor = &meta.actor;
        let rule = if a.code == 2 {
            "MQTT-3.1.3-9"
        } else {
            "MQTT-3.2.2-5"
        };
        let limit = a.at + self.slack;
        match Live::closed(meta) {
            Some((s, _)) if s.at <= limit => {}
            _ if !self.quiet(meta, a.at, limit, end) => v.note(format!(
                "{actor} was refused on {id}, and the run ended or a fault or broker action came before the broker's close was due"
            )),
            _ => v.fail(
                rule,
                format!(
                    "the broker refused {actor}'s CONNECT on {id} with return code {:#04x} but did not close the connection within {}",
                    a.code,
                    fmt_d(self.slack)
                ),
                vec![a.seq],
            ),
        }
    }

    /// One of a connection's findings: as decided, or a deadline judged
    /// as at the end of the log.
    fn open_item(&self, id: ConnId, meta: &ConnMeta, item: &Item, end: Duration, v: &mut Verdict) {
        match *item {
            Item::Done(ref done) => extend(v, done),
            Item::Second(seq, at) => second_connect(
                &self.ctx,
                id,
                &meta.actor,
                meta.closed.as_ref(),
                (seq, at),
                self.slack,
                end,
                "MQTT-3.1.0-2",
                v,
            ),
            Item::Disconnect(seq, at) => {
                // The client's DISCONNECT: the connection must be closed
                // within `slack` [MQTT-3.14.4-1].
                let limit = at + self.slack;
                if Live::closed(meta).is_some_and(|(s, _)| s.at <= limit)
                    || !self.quiet(meta, at, limit, end)
                {
                    return;
                }
                v.fail(
                    "MQTT-3.14.4-1",
                    format!(
                        "{} sent DISCONNECT on {id} but the connection was still open {} later",
                        meta.actor,
                        fmt_d(self.slack)
                    ),
                    vec![seq],
                );
            }
        }
    }
}

/// A verdict fragment with one violation.
fn failed(rule: &str, message: String, events: Vec<u64>) -> Verdict {
    let mut v = Verdict::new("packets");
    v.violations.push(Violation::new(rule, message, events));
    v
}

/// Appends a decided fragment.
fn extend(v: &mut Verdict, part: &Verdict) {
    v.violations.extend(part.violations.iter().cloned());
    v.notes.extend(part.notes.iter().cloned());
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
    use super::super::v5_testkit::{assert_violates, connect311, judge_both, Kit};
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
        judge_both(&checker(), &k.history())
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
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.1.4-4"]
        );

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
        assert!(judge_both(&checker(), &k.history()).ok());

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
        assert!(judge_both(&checker(), &k.history()).ok());

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

    fn live_at(h: &History, n: usize) -> Verdict {
        super::super::v5_testkit::live_at(&checker(), h, n)
    }

    /// A deadline is judged at every prefix as the whole-history rule
    /// judges that prefix: not before an event later than it, and undone
    /// by what the rule lets undo it — an answer that came late, a CONNACK
    /// after its 5 s — while a teardown before it leaves it undecided.
    #[test]
    fn deadlines_are_judged_at_every_prefix_as_at_the_end() {
        // A SUBACK 3 s late: missing while it is, then an answer.
        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, SUB);
        k.wait(3000).step("waiting");
        let n = k.history().events.len();
        down(&mut k, &[0x90, 3, 0, 7, 1]);
        let h = k.history();
        assert_eq!(live_at(&h, n).rules(), vec!["MQTT-3.8.4-1"]);
        assert!(live_at(&h, h.events.len()).ok());

        // A CONNACK after 6 s.
        let mut k = Kit::new();
        k.open(1, "device").up(1, "device", connect311("d"));
        k.wait(6000).step("waiting");
        let n = k.history().events.len();
        down(&mut k, &[0x20, 2, 0, 0]);
        let h = k.history();
        assert_eq!(live_at(&h, n).rules(), vec!["MQTT-3.1.4-4"]);
        assert!(live_at(&h, h.events.len()).ok());

        // A PINGREQ: an event exactly at its deadline does not pass it,
        // one a millisecond later does.
        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, &[0xC0, 0]);
        k.wait(1000).step("at the deadline");
        let n = k.history().events.len();
        k.wait(1).step("past it");
        let h = k.history();
        assert!(live_at(&h, n).ok());
        assert_eq!(live_at(&h, h.events.len()).rules(), vec!["MQTT-3.12.4-1"]);

        // A second CONNECT: the run may end before the close is due (a
        // note), then the close is missed.
        let mut k = Kit::new();
        session(&mut k).up(1, "device", connect311("d"));
        let n = k.history().events.len();
        k.wait(2000).step("past it");
        let h = k.history();
        let early = live_at(&h, n);
        assert!(early.ok(), "{early:?}");
        assert!(
            early
                .notes
                .iter()
                .any(|n| n.contains("the run ended within")),
            "{early:?}"
        );
        assert_eq!(live_at(&h, h.events.len()).rules(), vec!["MQTT-3.1.0-2"]);

        // A teardown before the deadline: what comes after it does not
        // pass the deadline.
        let mut k = Kit::new();
        session(&mut k);
        up(&mut k, &[0xC0, 0]);
        k.wait(500).teardown().wait(5000).step("after the teardown");
        let h = k.history();
        assert!(live_at(&h, h.events.len()).ok());
    }
}
