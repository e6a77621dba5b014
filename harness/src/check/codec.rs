//! `codec`: every frame a peer sends that the codec rejects is a protocol
//! violation of its sender. The proxy forwards such bytes unchanged and
//! records them as a `Malformed` event with the codec's error. This checker
//! judges the frames of 3.1 and 3.1.1 connections; [`super::v5_codec`]
//! judges 5.0's with the same logic ([`judge`]) and 5.0's numbering.
//!
//! The rule a violation names is found by decoding the recorded bytes again
//! with the connection's version and reading the codec's structured error,
//! never its message: the codec's messages cite ids as one version numbers
//! them, and the same id means different things in 3.1.1 and 5.0
//! (`MQTT-3.2.2-1`, `MQTT-4.7.1-2`). Each error a statement forbids of the
//! *sender* maps to that statement ([`statement`] for 3.1.1): reserved
//! fixed-header flags [MQTT-2.2.2-1] (PUBREL [MQTT-3.6.1-1], SUBSCRIBE
//! [MQTT-3.8.1-1], UNSUBSCRIBE [MQTT-3.10.1-1]); ill-formed UTF-8
//! [MQTT-1.5.3-1] (client id [MQTT-3.1.3-4], will topic [MQTT-3.1.3-10],
//! user name [MQTT-3.1.3-11], topic name [MQTT-3.3.2-1], filters
//! [MQTT-3.8.3-1] [MQTT-3.10.3-1]); U+0000 [MQTT-1.5.3-2] (in a topic
//! [MQTT-4.7.3-2]); packet id 0 [MQTT-2.3.1-1]; CONNECT's will flags
//! [MQTT-3.1.2-13] [MQTT-3.1.2-14] [MQTT-3.1.2-15] and password without user
//! name [MQTT-3.1.2-22]; a CONNECT whose flags announce a payload field it
//! lacks (client id [MQTT-3.1.3-3], will topic and message [MQTT-3.1.2-9],
//! user name [MQTT-3.1.2-19], password [MQTT-3.1.2-21]); a CONNACK return
//! code from the reserved 6-255 [MQTT-3.2.2-6] (with no fitting code the
//! server must close without CONNACK); session present on a refusal [MQTT-3.2.2-4]; DUP on
//! QoS 0 [MQTT-3.3.1-2]; QoS 3 [MQTT-3.3.1-4]; wildcards in a topic name
//! [MQTT-3.3.2-2] (a will topic [MQTT-4.7.1-1]); misplaced `#` and `+`
//! [MQTT-4.7.1-2] [MQTT-4.7.1-3]; an empty topic [MQTT-4.7.3-1]; a SUBSCRIBE
//! or UNSUBSCRIBE without filters [MQTT-3.8.3-3] [MQTT-3.10.3-2]; a SUBACK
//! return code outside the table [MQTT-3.9.3-2]. Anything else the codec
//! rejects — including statements about how the *receiver* must react, such
//! as the server closing on a reserved CONNECT flag — is `malformed-packet`,
//! with the codec's words in the message.
//!
//! Every actor is judged — the device, the observers, and the broker
//! towards each of them — except frames an actor was told to send as they
//! are: a step whose summary says `raw` (a scenario judging the broker's
//! reaction to a bad packet) makes its actor's bad frames during that step
//! a note, not a violation.
//!
//! After a framing error (a reserved packet type, a remaining length over
//! four bytes) the stream cannot be split into packets again, so only the
//! first undecodable frame of a connection and direction is a violation;
//! the bytes after it are counted in a note.

use std::collections::HashMap;
use std::time::Duration;

use regex::Regex;

use super::index::{Index, Stamp, Surroundings};
use super::live::Context;
use super::{fmt_d, Checker, Incremental, Verdict, Violation};
use crate::history::{CloseReason, ConnId, Dir, Event, EventKind, History};
use crate::mqtt::codec::{self, DecodeError};
use crate::mqtt::{Packet, PacketType, Version};

/// Judges the frames of 3.1 and 3.1.1 connections.
pub struct CodecChecker;

/// The first `[MQTT-x.y-n]` a codec error or problem text names.
/// Section references (`[MQTT-2.2.1]`) are not statements.
pub fn rule_of(error: &str) -> Option<String> {
    let re = Regex::new(r"MQTT-[0-9][0-9.-]*-[0-9]+\b").expect("valid");
    re.find(error).map(|m| m.as_str().to_string())
}

/// The statement number a codec problem text gives, without its `MQTT-`
/// prefix (`"3.1.2-13"`): the codec's wording, which numbers ids as one
/// version does — matched on, never cited as it is.
pub(crate) fn said(problem: &str) -> Option<String> {
    rule_of(problem).map(|r| r.trim_start_matches("MQTT-").to_string())
}

/// Harness rule for a frame the codec rejects without a numbered statement.
pub const MALFORMED: &str = "malformed-packet";

/// A topic name or filter, where U+0000 has its own statement.
pub(crate) fn is_topic_field(field: &str) -> bool {
    matches!(field, "topic name" | "topic filter" | "will topic")
}

/// The 3.1.1 statement a frame the codec rejects with `e` breaks, as its
/// sender's fault; `None` when no numbered statement forbids it of the
/// sender.
pub fn statement(_to_broker: bool, e: &DecodeError) -> Option<&'static str> {
    use DecodeError as E;
    use PacketType as T;
    Some(match e {
        E::ReservedFlags {
            packet: T::PubRel, ..
        } => "MQTT-3.6.1-1",
        E::ReservedFlags {
            packet: T::Subscribe,
            ..
        } => "MQTT-3.8.1-1",
        E::ReservedFlags {
            packet: T::Unsubscribe,
            ..
        } => "MQTT-3.10.1-1",
        E::ReservedFlags { .. } => "MQTT-2.2.2-1",
        E::InvalidQoS {
            packet: T::Publish, ..
        } => "MQTT-3.3.1-4",
        E::InvalidQoS {
            packet: T::Connect, ..
        } => "MQTT-3.1.2-14",
        E::ZeroPacketId {
            packet: T::Publish | T::Subscribe | T::Unsubscribe,
            ..
        } => "MQTT-2.3.1-1",
        E::InvalidUtf8 { packet, field, .. } => match (packet, *field) {
            (T::Connect, "client identifier") => "MQTT-3.1.3-4",
            (T::Connect, "will topic") => "MQTT-3.1.3-10",
            (T::Connect, "user name") => "MQTT-3.1.3-11",
            (T::Publish, "topic name") => "MQTT-3.3.2-1",
            (T::Subscribe, "topic filter") => "MQTT-3.8.3-1",
            (T::Unsubscribe, "topic filter") => "MQTT-3.10.3-1",
            _ => "MQTT-1.5.3-1",
        },
        E::NullChar { field, .. } if is_topic_field(field) => "MQTT-4.7.3-2",
        E::NullChar { .. } => "MQTT-1.5.3-2",
        E::InvalidReasonCode {
            packet: T::SubAck, ..
        } => "MQTT-3.9.3-2",
        // Codes 6-255 are reserved: a server with no fitting code closes
        // without a CONNACK rather than inventing one.
        E::InvalidReasonCode {
            packet: T::ConnAck, ..
        } => "MQTT-3.2.2-6",
        // A CONNECT whose flags announce a payload field it does not carry.
        E::Truncated {
            packet: T::Connect,
            field,
            ..
        } => match *field {
            "client identifier" => "MQTT-3.1.3-3",
            "will topic" | "will payload" => "MQTT-3.1.2-9",
            "user name" => "MQTT-3.1.2-19",
            "password" => "MQTT-3.1.2-21",
            _ => return None,
        },
        E::Invalid {
            packet, problem, ..
        } => match (packet, said(problem)?.as_str()) {
            (T::Publish, "3.3.1-2") => "MQTT-3.3.1-2",
            (T::Connect, "3.1.2-13") => "MQTT-3.1.2-13",
            (T::Connect, "3.1.2-15") => "MQTT-3.1.2-15",
            (T::Connect, "3.1.2-22") => "MQTT-3.1.2-22",
            (T::ConnAck, "3.2.2-4") => "MQTT-3.2.2-4",
            (T::Subscribe, "3.8.3-3") => "MQTT-3.8.3-3",
            (T::Unsubscribe, "3.10.3-2") => "MQTT-3.10.3-2",
            _ => return None,
        },
        E::InvalidTopic { field, problem, .. } => match (*field, said(problem)?.as_str()) {
            ("topic name", "3.3.2-2") => "MQTT-3.3.2-2",
            ("will topic", "3.3.2-2") => "MQTT-4.7.1-1",
            (_, "4.7.1-2") => "MQTT-4.7.1-2",
            (_, "4.7.1-3") => "MQTT-4.7.1-3",
            (_, "4.7.3-1") => "MQTT-4.7.3-1",
            _ => return None,
        },
        _ => return None,
    })
}

impl Checker for CodecChecker {
    fn name(&self) -> &str {
        "codec"
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(Live::new("codec", false, statement, must)))
    }

    fn check(&self, history: &History) -> Verdict {
        judge(history, self.name(), false, statement, must)
    }
}

/// The version a frame on `conn` was decoded with: the connection's CONNECT
/// says it, or the frame is itself a CONNECT the codec rejected.
fn frame_version(
    ix: &Index,
    malformed_connects: &HashMap<ConnId, Version>,
    conn: &ConnId,
    raw: &[u8],
) -> Version {
    if let Some(v) = codec::connect_version(raw) {
        return v;
    }
    ix.by_id
        .get(conn)
        .and_then(|&i| ix.conns[i].connect.as_ref().map(|(_, c)| c.version))
        .or_else(|| malformed_connects.get(conn).copied())
        .unwrap_or(Version::V311)
}

/// Judges the undecodable frames of 5.0 connections (`v5`) or of the
/// others, naming the statement `statement` finds for each.
pub(crate) fn judge(
    history: &History,
    name: &str,
    v5: bool,
    statement: fn(bool, &DecodeError) -> Option<&'static str>,
    must: fn(&DecodeError) -> Option<Must>,
) -> Verdict {
    let ix = Index::new(history);
    let teardown = history
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Teardown))
        .map(|e| e.at)
        .unwrap_or(Duration::MAX);
    let mut v = Verdict::new(name);
    let mut step = String::new();
    // (conn, dir) -> (first violating event, further undecodable chunks)
    let mut broken: HashMap<(ConnId, bool), (u64, usize)> = HashMap::new();
    let mut malformed_connects: HashMap<ConnId, Version> = HashMap::new();
    let mut frames = 0usize;
    for ev in &history.events {
        match &ev.kind {
            EventKind::Step { summary, .. } => step = summary.clone(),
            EventKind::Teardown => step.clear(),
            EventKind::Packet { .. } => frames += 1,
            EventKind::Malformed {
                conn,
                actor,
                dir,
                raw,
                error,
            } => {
                let version = frame_version(&ix, &malformed_connects, conn, raw);
                if let Some(cv) = codec::connect_version(raw) {
                    malformed_connects.insert(*conn, cv);
                }
                if (version == Version::V5) != v5 {
                    continue;
                }
                frames += 1;
                let key = (*conn, *dir == Dir::ToBroker);
                if let Some((_, more)) = broken.get_mut(&key) {
                    *more += 1;
                    continue;
                }
                let to_broker = *dir == Dir::ToBroker;
                let decoded = codec::decode(raw, version);
                // The broker's reaction is judged for every client frame it
                // must reject, sent on purpose or not.
                if let (true, Err(e)) = (to_broker, &decoded) {
                    if let Some(m) = must(e) {
                        react(&ix, history, ev, *conn, actor, error, m, teardown, &mut v);
                    }
                }
                let on_purpose = to_broker
                    && step.starts_with(&format!("{actor} "))
                    && step.split_whitespace().any(|w| w == "raw");
                if on_purpose {
                    v.note(format!(
                        "{actor} sent an undecodable frame on {conn} as its step asked (`{step}`): {error}"
                    ));
                    continue;
                }
                broken.insert(key, (ev.seq, 0));
                let sender = if to_broker {
                    actor.clone()
                } else {
                    format!("the broker (to {actor})")
                };
                let rule = match &decoded {
                    Err(e) => statement(to_broker, e),
                    Ok(_) => None,
                }
                .unwrap_or(MALFORMED);
                v.fail(
                    rule,
                    format!(
                        "{sender} sent a frame the codec rejects on {conn}: {error} ({} bytes: {})",
                        raw.len(),
                        hex_head(raw)
                    ),
                    vec![ev.seq],
                );
            }
            _ => {}
        }
    }
    for ((conn, up), (seq, more)) in &broken {
        if *more > 0 {
            v.note(format!(
                "{more} more undecodable chunk(s) followed event #{seq} on {conn} {} (the stream could not be framed again)",
                if *up { "towards the broker" } else { "towards the client" }
            ));
        }
    }
    v.violations.sort_by_key(|x| x.events.first().copied());
    v.notes.sort();
    v.notes
        .insert(0, format!("{frames} frames decoded or rejected"));
    v
}

/// Time the broker gets to close a connection after a client's frame it
/// must reject (brokers close at once; this absorbs scheduling).
pub const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// What the broker must do with a client's frame the codec rejects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Must {
    /// Close the connection within [`CLOSE_WITHIN`]; the statement.
    Close(&'static str),
    /// A CONNECT that breaks the format: close, and send no CONNACK with a
    /// code below `min_code` (256: none at all) before that — `connack`
    /// names that statement, `close` the closing one.
    CloseConnect {
        close: &'static str,
        connack: &'static str,
        min_code: u16,
    },
    /// An unsupported protocol level: a CONNACK with `code`, then close.
    Refuse { rule: &'static str, code: u8 },
}

/// What 3.1.1 asks of a server that receives a frame the codec rejects
/// with `e`: a statement per kind of error where 3.1.1 numbers one,
/// closing on any other protocol violation [MQTT-4.8.0-1]; `None` where the
/// server may go on (a protocol name it does not know, [MQTT-3.1.2-1]).
pub fn must(e: &DecodeError) -> Option<Must> {
    use DecodeError as E;
    use PacketType as T;
    let close = match e {
        E::UnknownProtocol { name, .. } if name == "MQTT" => {
            return Some(Must::Refuse {
                rule: "MQTT-3.1.2-2",
                code: 1,
            })
        }
        E::UnknownProtocol { .. } => return None,
        E::InvalidUtf8 { .. } => "MQTT-1.5.3-1",
        E::NullChar { .. } => "MQTT-1.5.3-2",
        E::ReservedFlags {
            packet: T::PubRel, ..
        } => "MQTT-3.6.1-1",
        E::ReservedFlags {
            packet: T::Subscribe,
            ..
        } => "MQTT-3.8.1-1",
        E::ReservedFlags {
            packet: T::Unsubscribe,
            ..
        } => "MQTT-3.10.1-1",
        E::ReservedFlags {
            packet: T::Disconnect,
            ..
        } => "MQTT-3.14.1-1",
        E::ReservedFlags { .. } => "MQTT-2.2.2-2",
        E::InvalidQoS {
            packet: T::Publish, ..
        } => "MQTT-3.3.1-4",
        E::InvalidQoS {
            packet: T::Subscribe,
            ..
        } => "MQTT-3-8.3-4",
        E::Invalid {
            packet: T::Subscribe,
            problem,
            ..
        } if said(problem).as_deref() == Some("3-8.3-4") => "MQTT-3-8.3-4",
        E::Invalid {
            packet: T::Connect,
            problem,
            ..
        } if said(problem).as_deref() == Some("3.1.2-3") => "MQTT-3.1.2-3",
        _ => "MQTT-4.8.0-1",
    };
    Some(if is_connect(e) {
        Must::CloseConnect {
            close: if close == "MQTT-4.8.0-1" {
                "MQTT-3.1.4-1"
            } else {
                close
            },
            connack: "MQTT-3.1.4-1",
            min_code: 256,
        }
    } else {
        Must::Close(close)
    })
}

/// The error is about a CONNECT frame.
pub(crate) fn is_connect(e: &DecodeError) -> bool {
    use DecodeError as E;
    let packet = match e {
        E::UnknownProtocol { .. } => return true,
        E::RemainingLengthNotMinimal { packet, .. }
        | E::PacketNotInVersion { packet, .. }
        | E::ReservedFlags { packet, .. }
        | E::InvalidQoS { packet, .. }
        | E::Truncated { packet, .. }
        | E::TrailingBytes { packet, .. }
        | E::InvalidUtf8 { packet, .. }
        | E::NullChar { packet, .. }
        | E::ZeroPacketId { packet, .. }
        | E::InvalidVarInt { packet, .. }
        | E::Invalid { packet, .. }
        | E::InvalidReasonCode { packet, .. }
        | E::InvalidTopic { packet, .. }
        | E::UnknownProperty { packet, .. }
        | E::PropertyNotAllowed { packet, .. }
        | E::DuplicateProperty { packet, .. }
        | E::PropertyValue { packet, .. } => packet,
        _ => return false,
    };
    *packet == PacketType::Connect
}

/// Judges the broker's reaction to the client's frame `ev` it must reject.
#[allow(clippy::too_many_arguments)]
fn react(
    ix: &Index,
    history: &History,
    ev: &Event,
    conn: ConnId,
    actor: &str,
    error: &str,
    must: Must,
    teardown: Duration,
    v: &mut Verdict,
) {
    let Some(c) = ix.by_id.get(&conn).map(|&i| &ix.conns[i]) else {
        return;
    };
    let close = c
        .closed
        .as_ref()
        .filter(|(s, r)| s.seq > ev.seq && !matches!(r, CloseReason::RunEnded));
    let connacks: Vec<(u64, u8)> = history
        .events
        .iter()
        .filter(|e| e.seq > ev.seq && close.is_none_or(|(s, _)| e.seq < s.seq))
        .filter_map(|e| match &e.kind {
            EventKind::Packet {
                conn: pc,
                dir: Dir::ToClient,
                packet: Packet::ConnAck(a),
                ..
            } if *pc == conn => Some((e.seq, a.code)),
            _ => None,
        })
        .collect();
    let frame = Stamp {
        seq: ev.seq,
        at: ev.at,
    };
    decide_reaction(
        ix,
        &frame,
        conn,
        actor,
        error,
        must,
        close,
        &connacks,
        ix.end.min(teardown),
        v,
    );
}

/// What the broker did after a client's frame it must reject (`frame`):
/// its close of the connection after the frame (`close`, not the run's
/// end), the CONNACKs it sent in between, and the end of what can be
/// judged (`end`: the log's end or the teardown).
#[allow(clippy::too_many_arguments)]
fn decide_reaction(
    around: &dyn Surroundings,
    frame: &Stamp,
    conn: ConnId,
    actor: &str,
    error: &str,
    must: Must,
    close: Option<&(Stamp, CloseReason)>,
    connacks: &[(u64, u8)],
    end: Duration,
    v: &mut Verdict,
) {
    let limit = frame.at + CLOSE_WITHIN;
    let (close_rule, what) = match must {
        Must::Close(r) => (r, "close the connection"),
        Must::CloseConnect {
            close,
            connack,
            min_code,
        } => {
            if let Some(&(seq, code)) = connacks.iter().find(|(_, c)| u16::from(*c) < min_code) {
                v.fail(
                    connack,
                    format!(
                        "the broker answered {actor}'s CONNECT the codec rejects on {conn} with CONNACK {code:#04x} instead of closing: {error}"
                    ),
                    vec![frame.seq, seq],
                );
            }
            (close, "close the connection")
        }
        Must::Refuse { rule, code } => {
            let ok = connacks.first().is_some_and(|&(_, c)| c == code);
            if !ok && close.is_some_and(|(s, _)| s.at <= limit) {
                let got = match connacks.first() {
                    Some((_, c)) => format!("CONNACK {c:#04x}"),
                    None => "no CONNACK".to_string(),
                };
                let mut evs = vec![frame.seq];
                evs.extend(connacks.first().map(|(s, _)| *s));
                v.fail(
                    rule,
                    format!(
                        "the broker answered {actor}'s CONNECT with an unsupported protocol level on {conn} with {got}, not CONNACK {code:#04x}: {error}"
                    ),
                    evs,
                );
            }
            (rule, "refuse it and close the connection")
        }
    };
    match close {
        Some((s, CloseReason::BrokerClosed)) if s.at <= limit => {}
        Some((s, r)) if s.at <= limit => v.note(format!(
            "{conn} ended ({r:?}) right after {actor}'s frame the codec rejects: whether the broker would have closed it is not shown"
        )),
        _ if limit >= end => v.note(format!(
            "the run ended within {} of {actor}'s frame the codec rejects on {conn}: too short to judge the broker's close",
            fmt_d(CLOSE_WITHIN)
        )),
        _ if !around.undisturbed(actor, frame.at, limit) || around.broker_down(frame.at, limit) => {
            v.note(format!(
                "a fault or broker action within {} of {actor}'s frame the codec rejects on {conn} can hide the broker's close",
                fmt_d(CLOSE_WITHIN)
            ))
        }
        _ => v.fail(
            close_rule,
            format!(
                "the broker did not {what} {conn} within {} of {actor}'s frame it must reject ({error}){}",
                fmt_d(CLOSE_WITHIN),
                match close {
                    Some((s, _)) => format!("; it closed {} later", fmt_d(s.at.saturating_sub(frame.at))),
                    None => String::new(),
                }
            ),
            vec![frame.seq],
        ),
    }
}

/// What one undecodable frame concluded: the broker's reaction it waits
/// for (decided from what came after it), and its own violation.
#[derive(Clone)]
struct Judged {
    seq: u64,
    reaction: Option<Reaction>,
    violation: Option<Violation>,
}

/// A client's frame the broker must reject.
#[derive(Clone)]
struct Reaction {
    frame: Stamp,
    conn: ConnId,
    actor: String,
    error: String,
    must: Must,
}

/// One connection's state in [`Live`].
#[derive(Clone, Default)]
struct ConnState {
    malformed_connect: Option<Version>,
    /// Per direction (towards the broker?): the first violating frame and
    /// how many undecodable chunks followed it.
    broken: HashMap<bool, (u64, usize)>,
    /// Undecodable frames judged with this checker's version.
    counted: usize,
    /// Frames of a connection whose CONNECT has not come yet (the version
    /// they are decoded with is not known): with the step they came in.
    waiting: Vec<(Event, String)>,
    /// The CONNACKs the broker sent on it since its first undecodable frame.
    connacks: Vec<(u64, u8)>,
}

/// [`judge`] as events come. An undecodable frame is judged when it comes
/// (or, on a connection whose CONNECT has not come yet, when it does:
/// until then it is judged anew for each verdict); the broker's reaction
/// to it is decided from the context at each verdict.
pub(crate) struct Live {
    name: &'static str,
    v5: bool,
    statement: fn(bool, &DecodeError) -> Option<&'static str>,
    must: fn(&DecodeError) -> Option<Must>,
    ctx: Context,
    step: String,
    packets: usize,
    conns: HashMap<ConnId, ConnState>,
    judged: Vec<Judged>,
    notes: Vec<String>,
}

impl Live {
    pub(crate) fn new(
        name: &'static str,
        v5: bool,
        statement: fn(bool, &DecodeError) -> Option<&'static str>,
        must: fn(&DecodeError) -> Option<Must>,
    ) -> Live {
        Live {
            name,
            v5,
            statement,
            must,
            ctx: Context::default(),
            step: String::new(),
            packets: 0,
            conns: HashMap::new(),
            judged: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Judges one undecodable frame as `judge` does, into `out` and `notes`.
    fn frame(
        &self,
        st: &mut ConnState,
        ev: &Event,
        step: &str,
        out: &mut Vec<Judged>,
        notes: &mut Vec<String>,
    ) {
        let EventKind::Malformed {
            conn,
            actor,
            dir,
            raw,
            error,
        } = &ev.kind
        else {
            return;
        };
        let version = codec::connect_version(raw)
            .or_else(|| self.ctx.conns.get(conn).and_then(|c| c.version))
            .or(st.malformed_connect)
            .unwrap_or(Version::V311);
        if let Some(cv) = codec::connect_version(raw) {
            st.malformed_connect = Some(cv);
        }
        if (version == Version::V5) != self.v5 {
            return;
        }
        st.counted += 1;
        let to_broker = *dir == Dir::ToBroker;
        if let Some((_, more)) = st.broken.get_mut(&to_broker) {
            *more += 1;
            return;
        }
        let decoded = codec::decode(raw, version);
        let mut judged = Judged {
            seq: ev.seq,
            reaction: None,
            violation: None,
        };
        if let (true, Err(e)) = (to_broker, &decoded) {
            if let Some(m) = (self.must)(e) {
                judged.reaction = Some(Reaction {
                    frame: Stamp {
                        seq: ev.seq,
                        at: ev.at,
                    },
                    conn: *conn,
                    actor: actor.clone(),
                    error: error.clone(),
                    must: m,
                });
            }
        }
        let on_purpose = to_broker
            && step.starts_with(&format!("{actor} "))
            && step.split_whitespace().any(|w| w == "raw");
        if on_purpose {
            notes.push(format!(
                "{actor} sent an undecodable frame on {conn} as its step asked (`{step}`): {error}"
            ));
            out.push(judged);
            return;
        }
        st.broken.insert(to_broker, (ev.seq, 0));
        let sender = if to_broker {
            actor.clone()
        } else {
            format!("the broker (to {actor})")
        };
        let rule = match &decoded {
            Err(e) => (self.statement)(to_broker, e),
            Ok(_) => None,
        }
        .unwrap_or(MALFORMED);
        judged.violation = Some(Violation::new(
            rule,
            format!(
                "{sender} sent a frame the codec rejects on {conn}: {error} ({} bytes: {})",
                raw.len(),
                hex_head(raw)
            ),
            vec![ev.seq],
        ));
        out.push(judged);
    }

    /// Judges the waiting frames of `conn` for good (its CONNECT came).
    fn settle(&mut self, conn: ConnId) {
        let Some(mut st) = self.conns.remove(&conn) else {
            return;
        };
        let waiting = std::mem::take(&mut st.waiting);
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        for (ev, step) in &waiting {
            self.frame(&mut st, ev, step, &mut out, &mut notes);
        }
        self.conns.insert(conn, st);
        self.notes.extend(notes);
        for j in out {
            let at = self.judged.partition_point(|x| x.seq < j.seq);
            self.judged.insert(at, j);
        }
    }
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        let before = match &ev.kind {
            EventKind::Packet { conn, .. } => {
                self.ctx.conns.get(conn).and_then(|c| c.version).is_none()
            }
            _ => false,
        };
        self.ctx.feed(ev);
        match &ev.kind {
            EventKind::Step { summary, .. } => self.step = summary.clone(),
            EventKind::Teardown => self.step.clear(),
            EventKind::Packet {
                conn, dir, packet, ..
            } => {
                self.packets += 1;
                let now_known = self.ctx.conns.get(conn).and_then(|c| c.version).is_some();
                if before && now_known {
                    self.settle(*conn);
                }
                if let (Dir::ToClient, Packet::ConnAck(a)) = (dir, packet) {
                    if let Some(st) = self.conns.get_mut(conn) {
                        st.connacks.push((ev.seq, a.code));
                    }
                }
            }
            EventKind::Malformed { conn, .. } => {
                let known = self.ctx.conns.get(conn).and_then(|c| c.version).is_some();
                let mut st = self.conns.remove(conn).unwrap_or_default();
                if known {
                    let (mut out, mut notes) = (Vec::new(), Vec::new());
                    let step = self.step.clone();
                    self.frame(&mut st, ev, &step, &mut out, &mut notes);
                    self.judged.extend(out);
                    self.notes.extend(notes);
                } else {
                    st.waiting.push((ev.clone(), self.step.clone()));
                }
                self.conns.insert(*conn, st);
            }
            _ => {}
        }
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new(self.name);
        let mut judged = self.judged.clone();
        let mut notes = self.notes.clone();
        let mut frames = self.packets;
        let mut broken: Vec<(ConnId, bool, u64, usize)> = Vec::new();
        for (conn, st) in &self.conns {
            let mut st = st.clone();
            let waiting = std::mem::take(&mut st.waiting);
            for (ev, step) in &waiting {
                self.frame(&mut st, ev, step, &mut judged, &mut notes);
            }
            frames += st.counted;
            for (up, (seq, more)) in &st.broken {
                broken.push((*conn, *up, *seq, *more));
            }
        }
        // Waiting frames were judged after the others: put all in log order.
        judged.sort_by_key(|j| j.seq);
        let end = self
            .ctx
            .end()
            .min(self.ctx.teardown().unwrap_or(Duration::MAX));
        for j in &judged {
            if let Some(r) = &j.reaction {
                if let Some(c) = self.ctx.conns.get(&r.conn) {
                    let close = c.closed.as_ref().filter(|(s, why)| {
                        s.seq > r.frame.seq && !matches!(why, CloseReason::RunEnded)
                    });
                    let connacks: Vec<(u64, u8)> = self
                        .conns
                        .get(&r.conn)
                        .map(|st| st.connacks.as_slice())
                        .unwrap_or_default()
                        .iter()
                        .filter(|(seq, _)| {
                            *seq > r.frame.seq && close.is_none_or(|(s, _)| *seq < s.seq)
                        })
                        .copied()
                        .collect();
                    decide_reaction(
                        &self.ctx, &r.frame, r.conn, &r.actor, &r.error, r.must, close, &connacks,
                        end, &mut v,
                    );
                }
            }
            v.violations.extend(j.violation.clone());
        }
        for (conn, up, seq, more) in broken {
            if more > 0 {
                notes.push(format!(
                    "{more} more undecodable chunk(s) followed event #{seq} on {conn} {} (the stream could not be framed again)",
                    if up { "towards the broker" } else { "towards the client" }
                ));
            }
        }
        v.notes.extend(notes);
        v.violations.sort_by_key(|x| x.events.first().copied());
        v.notes.sort();
        v.notes
            .insert(0, format!("{frames} frames decoded or rejected"));
        v
    }
}

/// The first bytes of a frame in hex, for the message.
fn hex_head(raw: &[u8]) -> String {
    let mut s: String = raw
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    if raw.len() > 16 {
        s.push_str(" …");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::{assert_violates, frame, judge_both, reaction, s, Kit};
    use super::*;

    #[test]
    fn rule_of_finds_statements_not_sections() {
        assert_eq!(
            rule_of("CONNECT protocol ... [MQTT-3.1.2-1] [MQTT-3.1.2-2]").as_deref(),
            Some("MQTT-3.1.2-1")
        );
        assert_eq!(rule_of("PUBLISH has 2 unexpected byte(s)"), None);
        assert_eq!(rule_of("packet type 0 is reserved [MQTT-2.2.1]"), None);
        assert_eq!(rule_of("x [MQTT-3-8.3-4]").as_deref(), Some("MQTT-3-8.3-4"));
    }

    /// A 3.1.1 CONNECT with these flags and payload fields.
    fn connect(flags: u8, payload: &[&[u8]]) -> Vec<u8> {
        let mut body = s(b"MQTT");
        body.extend([4, flags, 0, 60]);
        for f in payload {
            body.extend(s(f));
        }
        frame(0x10, &body)
    }

    /// One recorded frame on a 3.1.1 connection, judged alone.
    fn judged(up: bool, raw: &[u8]) -> Verdict {
        let mut k = Kit::new();
        k.open(1, "device");
        if !raw.starts_with(&[0x10]) {
            k.up(1, "device", super::super::v5_testkit::connect311("dut-1"));
        }
        let dir = if up { Dir::ToBroker } else { Dir::ToClient };
        k.malformed(1, "device", dir, raw, Version::V311);
        let v = judge_both(&CodecChecker, &k.history());
        assert_eq!(v.violations.len(), 1, "{raw:02x?}: {v:?}");
        v
    }

    /// Each statement with a frame that breaks it, as the proxy records it:
    /// the real codec rejects the bytes, the checker names the statement.
    #[test]
    fn each_statement_has_a_frame_that_breaks_it() {
        let bad = b"a\xffb";
        assert_violates(
            &judged(
                true,
                &frame(
                    0x10,
                    &[0, 4, b'M', 0xff, b'T', b'T', 4, 2, 0, 60, 0, 1, b'x'],
                ),
            ),
            "MQTT-1.5.3-1",
        );
        assert_violates(&judged(true, &connect(0x02, &[b"a\0b"])), "MQTT-1.5.3-2");
        assert_violates(&judged(false, &frame(0x41, &[0, 1])), "MQTT-2.2.2-1");
        assert_violates(
            &judged(
                true,
                &frame(0x82, &[&[0, 0][..], &s(b"a/b"), &[1]].concat()),
            ),
            "MQTT-2.3.1-1",
        );
        assert_violates(&judged(true, &connect(0x0A, &[b"c"])), "MQTT-3.1.2-13");
        assert_violates(
            &judged(true, &connect(0x1E, &[b"c", b"w", b"x"])),
            "MQTT-3.1.2-14",
        );
        assert_violates(&judged(true, &connect(0x22, &[b"c"])), "MQTT-3.1.2-15");
        assert_violates(
            &judged(true, &connect(0x42, &[b"c", b"pw"])),
            "MQTT-3.1.2-22",
        );
        assert_violates(&judged(true, &connect(0x02, &[bad])), "MQTT-3.1.3-4");
        // Flags that promise payload fields the CONNECT does not carry.
        assert_violates(&judged(true, &connect(0x02, &[])), "MQTT-3.1.3-3");
        assert_violates(&judged(true, &connect(0x06, &[b"c"])), "MQTT-3.1.2-9");
        assert_violates(&judged(true, &connect(0x06, &[b"c", b"w"])), "MQTT-3.1.2-9");
        assert_violates(&judged(true, &connect(0x82, &[b"c"])), "MQTT-3.1.2-19");
        assert_violates(
            &judged(true, &connect(0xC2, &[b"c", b"u"])),
            "MQTT-3.1.2-21",
        );
        assert_violates(&judged(false, &frame(0x20, &[0, 6])), "MQTT-3.2.2-6");
        assert_violates(
            &judged(true, &connect(0x06, &[b"c", bad, b"x"])),
            "MQTT-3.1.3-10",
        );
        assert_violates(&judged(true, &connect(0x82, &[b"c", bad])), "MQTT-3.1.3-11");
        assert_violates(&judged(false, &frame(0x20, &[1, 5])), "MQTT-3.2.2-4");
        assert_violates(&judged(true, &frame(0x38, &s(b"a"))), "MQTT-3.3.1-2");
        assert_violates(
            &judged(true, &frame(0x36, &[&s(b"a")[..], &[0, 1]].concat())),
            "MQTT-3.3.1-4",
        );
        assert_violates(&judged(false, &frame(0x30, &s(bad))), "MQTT-3.3.2-1");
        assert_violates(&judged(true, &frame(0x30, &s(b"a/+"))), "MQTT-3.3.2-2");
        assert_violates(&judged(true, &frame(0x60, &[0, 1])), "MQTT-3.6.1-1");
        assert_violates(
            &judged(true, &frame(0x80, &[&[0, 1][..], &s(b"a"), &[1]].concat())),
            "MQTT-3.8.1-1",
        );
        assert_violates(
            &judged(true, &frame(0x82, &[&[0, 1][..], &s(bad), &[1]].concat())),
            "MQTT-3.8.3-1",
        );
        assert_violates(&judged(true, &frame(0x82, &[0, 1])), "MQTT-3.8.3-3");
        assert_violates(&judged(false, &frame(0x90, &[0, 1, 3])), "MQTT-3.9.3-2");
        assert_violates(
            &judged(true, &frame(0xA0, &[&[0, 1][..], &s(b"a")].concat())),
            "MQTT-3.10.1-1",
        );
        assert_violates(
            &judged(true, &frame(0xA2, &[&[0, 1][..], &s(bad)].concat())),
            "MQTT-3.10.3-1",
        );
        assert_violates(&judged(true, &frame(0xA2, &[0, 1])), "MQTT-3.10.3-2");
        assert_violates(
            &judged(true, &connect(0x06, &[b"c", b"w/#", b"x"])),
            "MQTT-4.7.1-1",
        );
        assert_violates(
            &judged(
                true,
                &frame(0x82, &[&[0, 1][..], &s(b"a/#/b"), &[1]].concat()),
            ),
            "MQTT-4.7.1-2",
        );
        assert_violates(
            &judged(true, &frame(0x82, &[&[0, 1][..], &s(b"a+"), &[1]].concat())),
            "MQTT-4.7.1-3",
        );
        assert_violates(
            &judged(true, &frame(0x82, &[&[0, 1][..], &s(b""), &[1]].concat())),
            "MQTT-4.7.3-1",
        );
        assert_violates(&judged(false, &frame(0x30, &s(b"a\0"))), "MQTT-4.7.3-2");
    }

    /// Tricky frames the codec accepts: never a Malformed event, so never a
    /// violation. They sit right beside the broken ones above.
    #[test]
    fn near_misses_decode() {
        let ok: Vec<Vec<u8>> = vec![
            connect(0xC2, &[b"c", b"u", b"p"]),   // user name and password
            connect(0x36, &[b"c", b"w/x", b"x"]), // will QoS 2, retained
            frame(0x62, &[0, 1]),                 // PUBREL 0010
            frame(0x3D, &[&s(b"a")[..], &[0, 1]].concat()), // QoS 2, DUP, RETAIN
            frame(0x82, &[&[0, 1][..], &s(b"+/#"), &[2]].concat()),
            frame(0x82, &[&[0, 1][..], &s(b"#"), &[0]].concat()),
            frame(0x90, &[0, 1, 0x80]),              // SUBACK failure
            frame(0x20, &[1, 0]),                    // session present on success
            frame(0x20, &[0, 5]),                    // the last defined return code
            connect(0x02, &[b""]),                   // an empty client id is present
            connect(0x82, &[b"c", b""]),             // an empty user name is present
            frame(0x30, &s("\u{feff}a".as_bytes())), // a BOM is kept, not an error
        ];
        for raw in ok {
            assert!(codec::decode(&raw, Version::V311).is_ok(), "{raw:02x?}");
        }
    }

    /// The rule comes from the bytes, not the message: a 3.1.1 CONNACK with
    /// reserved bits set has no 3.1.1 statement (5.0 numbers it
    /// MQTT-3.2.2-1, which in 3.1.1 is about clean sessions), a raw step is
    /// on purpose, and 5.0 connections are left to `v5_codec`.
    #[test]
    fn rules_follow_the_version_and_raw_steps_are_notes() {
        let v = judged(false, &frame(0x20, &[2, 0]));
        assert_eq!(v.rules(), vec![MALFORMED], "{v:?}");

        let mut k = Kit::new();
        k.open(1, "prober")
            .up(1, "prober", super::super::v5_testkit::connect311("p"))
            .step("prober publish a/+ raw")
            .malformed(
                1,
                "prober",
                Dir::ToBroker,
                &frame(0x30, &s(b"a/+")),
                Version::V311,
            );
        let v = judge_both(&CodecChecker, &k.history());
        assert!(v.ok(), "{v:?}");
        assert!(
            v.notes.iter().any(|n| n.contains("as its step asked")),
            "{v:?}"
        );

        let mut k = Kit::new();
        k.open(1, "device")
            .up(
                1,
                "device",
                super::super::v5_testkit::connect("d", true, 0, ""),
            )
            .malformed(
                1,
                "device",
                Dir::ToBroker,
                &frame(0x30, &[&s(b"a/+")[..], &[0]].concat()),
                Version::V5,
            );
        assert!(judge_both(&CodecChecker, &k.history()).ok());
    }

    /// The broker left the connection open after the frame: only the
    /// broker's reaction is judged (the frame itself was on purpose).
    fn kept_open(raw: &[u8]) -> Verdict {
        let v = judge_both(&CodecChecker, &reaction(Version::V311, raw, None, None));
        assert_eq!(v.violations.len(), 1, "{raw:02x?}: {v:?}");
        v
    }

    /// Each statement about the server's reaction, with a client frame
    /// the broker must reject and a connection it kept open.
    #[test]
    fn each_reaction_statement_has_a_broker_that_breaks_it() {
        let bad = b"a\xffb";
        assert_violates(&kept_open(&connect(0x02, &[bad])), "MQTT-1.5.3-1");
        assert_violates(&kept_open(&frame(0x30, &s(b"a\0"))), "MQTT-1.5.3-2");
        assert_violates(&kept_open(&frame(0x41, &[0, 1])), "MQTT-2.2.2-2");
        assert_violates(
            &kept_open(&frame(0x36, &[&s(b"a")[..], &[0, 1]].concat())),
            "MQTT-3.3.1-4",
        );
        assert_violates(&kept_open(&frame(0x60, &[0, 1])), "MQTT-3.6.1-1");
        assert_violates(
            &kept_open(&frame(0x80, &[&[0, 1][..], &s(b"a"), &[1]].concat())),
            "MQTT-3.8.1-1",
        );
        assert_violates(
            &kept_open(&frame(0xA0, &[&[0, 1][..], &s(b"a")].concat())),
            "MQTT-3.10.1-1",
        );
        assert_violates(&kept_open(&frame(0xE1, &[])), "MQTT-3.14.1-1");
        assert_violates(
            &kept_open(&frame(0x82, &[&[0, 1][..], &s(b"a"), &[3]].concat())),
            "MQTT-3-8.3-4",
        );
        assert_violates(
            &kept_open(&frame(0x82, &[&[0, 1][..], &s(b"a"), &[0x41]].concat())),
            "MQTT-3-8.3-4",
        );
        assert_violates(&kept_open(&connect(0x03, &[b"c"])), "MQTT-3.1.2-3");
        assert_violates(&kept_open(&connect(0x0A, &[b"c"])), "MQTT-3.1.4-1");
        assert_violates(&kept_open(&frame(0x40, &[0, 1, 9])), "MQTT-4.8.0-1");
        let mut level6 = s(b"MQTT");
        level6.extend([6, 2, 0, 60]);
        level6.extend(s(b"c"));
        assert_violates(&kept_open(&frame(0x10, &level6)), "MQTT-3.1.2-2");

        // Closed in time, but a bad CONNECT answered with a CONNACK, and an
        // unsupported level answered with the wrong code.
        let h = reaction(
            Version::V311,
            &connect(0x03, &[b"c"]),
            Some(0),
            Some((5, CloseReason::BrokerClosed)),
        );
        let v = judge_both(&CodecChecker, &h);
        assert_violates(&v, "MQTT-3.1.4-1");
        assert_eq!(v.violations.len(), 1, "{v:?}");
        let h = reaction(
            Version::V311,
            &frame(0x10, &level6),
            Some(5),
            Some((5, CloseReason::BrokerClosed)),
        );
        let v = judge_both(&CodecChecker, &h);
        assert_violates(&v, "MQTT-3.1.2-2");
        assert_eq!(v.violations.len(), 1, "{v:?}");
        let h = reaction(
            Version::V311,
            &frame(0x10, &level6),
            None,
            Some((5, CloseReason::BrokerClosed)),
        );
        assert_violates(&judge_both(&CodecChecker, &h), "MQTT-3.1.2-2");
    }

    /// Tricky histories where the broker did its part, or where the
    /// history cannot show whether it would have.
    #[test]
    fn a_broker_that_closes_or_cannot_be_seen_passes() {
        let pubrel = frame(0x60, &[0, 1]);
        let mut level6 = s(b"MQTT");
        level6.extend([6, 2, 0, 60]);
        level6.extend(s(b"c"));
        let unknown_name = frame(0x10, &[&s(b"MQTX")[..], &[4, 2, 0, 60], &s(b"c")].concat());
        for (h, note) in [
            // closed 1.9 s later: within the 2 s
            (
                reaction(
                    Version::V311,
                    &pubrel,
                    None,
                    Some((1900, CloseReason::BrokerClosed)),
                ),
                None,
            ),
            (
                reaction(
                    Version::V311,
                    &connect(0x03, &[b"c"]),
                    None,
                    Some((5, CloseReason::BrokerClosed)),
                ),
                None,
            ),
            (
                reaction(
                    Version::V311,
                    &frame(0x10, &level6),
                    Some(1),
                    Some((5, CloseReason::BrokerClosed)),
                ),
                None,
            ),
            // a protocol name it does not know: it may go on
            (reaction(Version::V311, &unknown_name, None, None), None),
            (
                reaction(
                    Version::V311,
                    &pubrel,
                    None,
                    Some((100, CloseReason::ClientClosed)),
                ),
                Some("is not shown"),
            ),
            (
                reaction(
                    Version::V311,
                    &pubrel,
                    None,
                    Some((100, CloseReason::Severed)),
                ),
                Some("is not shown"),
            ),
        ] {
            let v = judge_both(&CodecChecker, &h);
            assert!(v.ok(), "{v:?}");
            if let Some(n) = note {
                assert!(v.notes.iter().any(|x| x.contains(n)), "{v:?}");
            }
        }
        // The run ends before the 2 s are up.
        let mut kit = Kit::new();
        kit.open(1, "prober")
            .up(1, "prober", super::super::v5_testkit::connect311("p"))
            .step("prober publish raw")
            .malformed(1, "prober", Dir::ToBroker, &pubrel, Version::V311)
            .wait(500)
            .step("end");
        let v = judge_both(&CodecChecker, &kit.history());
        assert!(
            v.ok() && v.notes.iter().any(|n| n.contains("too short")),
            "{v:?}"
        );
    }
}
