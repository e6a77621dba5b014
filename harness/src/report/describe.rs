//! One line per history event, as it happened (real packet ids, connection
//! ids and times, nothing renumbered): the wording shared by the live `-v`
//! stream, the events JUnit failures quote, the HTML event log and the
//! labels of the sequence diagram. The normalized, snapshot-stable
//! rendering is [`crate::trace`]'s job, not this one's.

use std::fmt::Write;

use crate::history::{CloseReason, Dir, Event, EventKind, Fate, FrameFate};
use crate::mqtt::Packet;
use crate::trace::payload;

/// `+1.234s device   c3 -> PUBLISH 7 q1 t "x" [dropped by proxy]`.
pub fn line(ev: &Event) -> String {
    format!(
        "#{:<4} +{:>8.3}s {}",
        ev.seq,
        ev.at.as_secs_f64(),
        event(&ev.kind)
    )
}

/// The event without its position and time.
pub fn event(kind: &EventKind) -> String {
    match kind {
        EventKind::Step { index, summary } => format!("step {index}: {summary}"),
        EventKind::ConnOpened { conn, actor } => format!("{actor:<8} {conn} open"),
        EventKind::ConnClosed {
            conn,
            actor,
            reason,
        } => format!("{actor:<8} {conn} {}", close_reason(reason)),
        EventKind::Packet {
            conn,
            actor,
            dir,
            packet: p,
            fate,
            ..
        } => format!(
            "{actor:<8} {conn} {} {}{}",
            dir.arrow(),
            packet(p),
            fate_suffix(*fate)
        ),
        EventKind::Malformed {
            conn,
            actor,
            dir,
            raw,
            error,
        } => format!(
            "{actor:<8} {conn} {} MALFORMED ({} bytes): {error}",
            dir.arrow(),
            raw.len()
        ),
        EventKind::Fault { target, fault } => format!("{:<8} {fault} on {target}", "net"),
        EventKind::Delivered { actor, msg } => format!(
            "{actor:<8} delivered {} {} q{}{}{}",
            msg.topic,
            payload(&msg.payload),
            msg.qos.as_u8(),
            if msg.retain { " retain" } else { "" },
            if msg.dup { " dup" } else { "" }
        ),
        EventKind::Actor { actor, what } => format!("{actor:<8} {what}"),
        EventKind::Broker { what } => format!("{:<8} {what}", "broker"),
        EventKind::Board { what } => format!("{:<8} {what}", "board"),
        EventKind::Uart { line } => format!("{:<8} | {line}", "uart"),
        EventKind::Expect { ok, detail, .. } => format!(
            "{:<8} {}: {detail}",
            "expect",
            if *ok { "ok" } else { "FAILED" }
        ),
        EventKind::Teardown => "teardown: the harness stops everything".into(),
        EventKind::Frame {
            dir,
            data,
            fate,
            note,
        } => format!("{:<8} {}", "net", frame(*dir, data, fate, note.as_deref())),
    }
}

/// A frame of the board's network: direction, what it was, what happened.
pub fn frame(dir: Dir, data: &[u8], fate: &FrameFate, note: Option<&str>) -> String {
    let arrow = match dir {
        Dir::ToBroker => "board ->",
        Dir::ToClient => "board <-",
    };
    let mut s = format!("{arrow} {}", crate::net::wire::summary(data));
    if let Some(n) = note {
        s += &format!(" ({n})");
    }
    s += &frame_fate(fate);
    s
}

pub fn frame_fate(f: &FrameFate) -> String {
    use crate::scenario::duration::format as d;
    match f {
        FrameFate::Delivered => String::new(),
        FrameFate::Dropped(why) => format!(" DROPPED by {why}"),
        FrameFate::Duplicated => " DUPLICATED".into(),
        FrameFate::Delayed(t) => format!(" delayed {}", d(*t)),
        FrameFate::Reordered(t) => format!(" REORDERED (held {})", d(*t)),
    }
}

pub fn close_reason(r: &CloseReason) -> String {
    match r {
        CloseReason::ClientClosed => "closed by client".into(),
        CloseReason::BrokerClosed => "closed by broker".into(),
        CloseReason::Severed => "severed (RST)".into(),
        CloseReason::Closed => "closed by fault (FIN)".into(),
        CloseReason::Refused => "refused".into(),
        CloseReason::UpstreamUnreachable(why) => format!("broker unreachable: {why}"),
        CloseReason::RunEnded => "open at end of run".into(),
    }
}

pub fn fate_suffix(f: Fate) -> &'static str {
    match f {
        Fate::Forwarded => "",
        Fate::Dropped => " [dropped by proxy]",
        Fate::Duplicated => " [duplicated by proxy]",
        Fate::Held => " [held by proxy]",
        Fate::Released => " [released by proxy]",
    }
}

/// A packet's key fields: type, packet id, QoS, topic, flags, payload excerpt.
pub fn packet(p: &Packet) -> String {
    let mut s = p.packet_type().to_string();
    match p {
        Packet::Connect(c) => {
            let _ = write!(
                s,
                " v{} id={} clean={} ka={}",
                c.version.level(),
                c.client_id,
                c.clean_start as u8,
                c.keep_alive
            );
            if let Some(w) = &c.will {
                let _ = write!(s, " will={} q{}", w.topic, w.qos.as_u8());
            }
        }
        Packet::ConnAck(c) => {
            let _ = write!(s, " sp={} rc={}", c.session_present as u8, c.code);
        }
        Packet::Publish(pb) => {
            if let Some(pid) = pb.pid {
                let _ = write!(s, " {pid}");
            }
            let _ = write!(
                s,
                " q{} {} {}",
                pb.qos.as_u8(),
                pb.topic,
                excerpt(&pb.payload)
            );
            if pb.dup {
                s += " dup";
            }
            if pb.retain {
                s += " retain";
            }
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            let _ = write!(s, " {}", a.pid);
            if a.code != 0 {
                let _ = write!(s, " rc={}", a.code);
            }
        }
        Packet::Subscribe(sb) => {
            let f: Vec<String> = sb
                .filters
                .iter()
                .map(|f| format!("{} q{}", f.filter, f.qos.as_u8()))
                .collect();
            let _ = write!(s, " {} [{}]", sb.pid, f.join(", "));
        }
        Packet::SubAck(sa) => {
            let _ = write!(s, " {} {:?}", sa.pid, sa.codes);
        }
        Packet::Unsubscribe(u) => {
            let _ = write!(s, " {} [{}]", u.pid, u.filters.join(", "));
        }
        Packet::UnsubAck(u) => {
            let _ = write!(s, " {}", u.pid);
        }
        Packet::Disconnect(d) => {
            if d.code != 0 {
                let _ = write!(s, " rc={}", d.code);
            }
        }
        Packet::Auth(a) => {
            let _ = write!(s, " rc={}", a.code);
        }
        Packet::PingReq | Packet::PingResp => {}
    }
    s
}

/// A payload cut short enough for a diagram label or a log line.
pub fn excerpt(p: &[u8]) -> String {
    const MAX: usize = 24;
    if p.len() <= MAX {
        return payload(p);
    }
    let mut cut = MAX;
    // Never split a character of a text payload (a split one turns it hex).
    while cut > MAX - 3 && std::str::from_utf8(&p[..cut]).is_err() {
        cut -= 1;
    }
    format!("{}…({} bytes)", payload(&p[..cut]), p.len())
}

/// A stable snake_case name of the event's kind, for machine-readable output.
pub fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Step { .. } => "step",
        EventKind::ConnOpened { .. } => "conn_opened",
        EventKind::ConnClosed { .. } => "conn_closed",
        EventKind::Packet { .. } => "packet",
        EventKind::Malformed { .. } => "malformed",
        EventKind::Fault { .. } => "fault",
        EventKind::Delivered { .. } => "delivered",
        EventKind::Actor { .. } => "actor",
        EventKind::Broker { .. } => "broker",
        EventKind::Board { .. } => "board",
        EventKind::Uart { .. } => "uart",
        EventKind::Expect { .. } => "expect",
        EventKind::Teardown => "teardown",
        EventKind::Frame { .. } => "frame",
    }
}

/// The actor an event is about, when it is about one.
pub fn actor(kind: &EventKind) -> Option<&str> {
    match kind {
        EventKind::ConnOpened { actor, .. }
        | EventKind::ConnClosed { actor, .. }
        | EventKind::Packet { actor, .. }
        | EventKind::Malformed { actor, .. }
        | EventKind::Delivered { actor, .. }
        | EventKind::Actor { actor, .. } => Some(actor),
        EventKind::Uart { .. } | EventKind::Board { .. } => Some("device"),
        _ => None,
    }
}
