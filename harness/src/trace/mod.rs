//! The normalized traffic trace: a human-readable text rendering of a
//! history that is the same every time the same behaviour happens, so it
//! can be snapshotted and reviewed. Normalization:
//! - no times; events are grouped by step, and within a step by actor
//!   (device first, then observers by name), each actor's events in order:
//!   first what crossed the wire, then (marked `·`) what the actor's own
//!   client reported, since those two streams are not ordered with each other;
//!   and each of an actor's connections is listed apart, in their order;
//! - connections are numbered per actor (`device#1`), packet ids renumbered
//!   by first use, separately for ids the client chose (`c1`) and ids the
//!   broker chose (`b1`);
//! - the harness's own teardown (closing every connection at the end) is
//!   left out: its order is the harness's, not the protocol's;
//! - a run of identical lines (e.g. refused reconnect attempts, whose number
//!   follows the clock) is printed once, followed by `(repeated)`;
//! - PINGREQ/PINGRESP are shown, folded: how many pings a connection
//!   exchanges, and which step each falls into, is the clock's (and each
//!   client's own ping policy), not the protocol's. So each connection's
//!   pings become one `keep alive:` line, printed where the connection
//!   ends (or in the last step if it is still open), that says what kinds
//!   of ping traffic it carried: answered exchanges, pings the proxy held,
//!   dropped or released, a PINGREQ still unanswered a second later, a
//!   PINGRESP nobody asked for, a PINGREQ from the broker. A connection
//!   that never pinged has no such line; scenarios keep their connections'
//!   lives clear of their keep alive (short ones have 60s, idle ones live
//!   several keep alives), so whether a line appears is not a race;
//! - passwords are replaced by `***`;
//! - payloads print as text when printable, as hex otherwise, cut at 64 bytes;
//! - publications on a scenario's `periodic` topics (a device that publishes
//!   a reading every second) are left out with their acks and deliveries,
//!   and their packet ids are not numbered: how many ticks fall into a step
//!   is the clock's doing, like PINGREQ. Checks judge them instead;
//! - for a device running its own firmware (a black box), each direction of
//!   a connection is its own stream: such a client pipelines (publishes,
//!   then subscribes, before the first ack is back), so which ack crossed
//!   which request is the scheduler's doing. Each direction keeps its order.

pub mod crossing;

use crate::mqtt::props;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use crate::history::{CloseReason, ConnId, Dir, Event, EventKind, Fate, History};
use crate::mqtt::Packet;

pub fn render(title: &str, history: &History) -> String {
    render_with(title, history, &Options::default())
}

/// Normalizations beyond the default ones.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Topic filters whose publications are left out.
    pub periodic: Vec<String>,
    /// Each direction of a connection is its own stream (black boxes).
    pub split_directions: bool,
}

impl Options {
    /// How a device running its own firmware is rendered.
    pub fn black_box(periodic: &[String]) -> Options {
        Options {
            periodic: periodic.to_vec(),
            split_directions: true,
        }
    }
}

/// The trace of a scenario's run, with the scenario's own normalizations.
pub fn render_scenario(s: &crate::scenario::Scenario, history: &History) -> String {
    let opts = match &s.autonomous {
        Some(a) => Options::black_box(&a.periodic),
        None => Options::default(),
    };
    render_with(&s.name, history, &opts)
}

/// [`render`] with more normalizations.
pub fn render_with(title: &str, history: &History, opts: &Options) -> String {
    let periodic = &opts.periodic;
    let mut n = Normalizer {
        periodic: periodic.to_vec(),
        ..Normalizer::default()
    };
    let mut out = String::new();
    let _ = writeln!(out, "# {title}");
    if !periodic.is_empty() {
        let _ = writeln!(
            out,
            "# left out: periodic publications on {} (with their acks and deliveries)",
            periodic.join(", ")
        );
    }
    if history.events.iter().any(is_ping) {
        let _ = writeln!(
            out,
            "# keep alive: each connection's PINGREQ/PINGRESP fold into one line where it ends \
             (how many, and when, is the clock's)"
        );
    }
    let mut section = "setup".to_string();
    let mut groups: BTreeMap<Lane, Vec<String>> = BTreeMap::new();
    let mut end = history.events.last().map(|e| e.at).unwrap_or_default();
    for ev in &history.events {
        // How the harness stops things is not behaviour; its order varies.
        if matches!(ev.kind, EventKind::Teardown) {
            end = ev.at;
            break;
        }
        if let EventKind::Step { index, summary } = &ev.kind {
            flush(&mut out, &section, &mut groups);
            section = format!("step {index}: {summary}");
            continue;
        }
        if let EventKind::Packet {
            conn,
            actor,
            dir,
            packet,
            fate,
            ..
        } = &ev.kind
        {
            if n.pings.note(actor, *conn, *dir, packet, *fate, ev.at) {
                continue;
            }
        }
        if let EventKind::ConnClosed { conn, actor, .. } = &ev.kind {
            if let Some(line) = n.keep_alive_line(actor, *conn, ev.at) {
                let lane = n.close_lane(actor, *conn, opts);
                groups.entry(lane).or_default().push(line);
            }
        }
        if let Some((actor, line)) = n.line(ev) {
            let rank = rank(&actor);
            // What the wire showed and what the actor's own client reported
            // are two streams, each in order but not in order with each other.
            let (source, line) = match ev.kind {
                EventKind::Delivered { .. } | EventKind::Actor { .. } => (1, format!("· {line}")),
                _ => (0, line),
            };
            // Each connection is its own stream too: an old connection's
            // end (e.g. a takeover) is not ordered with the new one's packets.
            let conn = match &ev.kind {
                EventKind::ConnOpened { conn, .. }
                | EventKind::ConnClosed { conn, .. }
                | EventKind::Packet { conn, .. }
                | EventKind::Malformed { conn, .. } => n.conns.get(conn).copied().unwrap_or(0),
                _ => 0,
            };
            // Opening and client packets, broker packets, the close.
            let dir = match &ev.kind {
                _ if !opts.split_directions => 0,
                EventKind::Packet { dir, .. } | EventKind::Malformed { dir, .. } => {
                    u8::from(*dir == Dir::ToClient)
                }
                EventKind::ConnClosed { .. } => 2,
                _ => 0,
            };
            groups
                .entry((rank, actor, source, conn, dir))
                .or_default()
                .push(line);
        }
    }
    // Connections still open when the steps ended: their pings so far.
    for (conn, actor) in n.pings.open() {
        if let Some(line) = n.keep_alive_line(&actor, conn, end) {
            let lane = n.close_lane(&actor, conn, opts);
            groups.entry(lane).or_default().push(line);
        }
    }
    flush(&mut out, &section, &mut groups);
    out
}

fn is_ping(ev: &Event) -> bool {
    matches!(
        &ev.kind,
        EventKind::Packet { packet, .. } if matches!(packet, Packet::PingReq | Packet::PingResp)
    )
}

fn rank(actor: &str) -> u8 {
    match actor {
        "device" => 0,
        "broker" | "board" | "net" => 2,
        _ => 1,
    }
}

/// What one connection's keep-alive traffic showed, without counts or times.
#[derive(Default)]
struct PingLog {
    /// Times the broker got a PINGREQ it has not answered yet, oldest first.
    outstanding: Vec<std::time::Duration>,
    answered: bool,
    /// `PINGREQ held by proxy`-style notes, in a fixed order.
    fates: std::collections::BTreeSet<(u8, &'static str, &'static str)>,
    unrequested: bool,
    from_broker: bool,
    /// The keep-alive line was printed (the connection ended).
    done: bool,
}

/// Keep-alive traffic per connection; see the module docs.
#[derive(Default)]
struct Pings {
    conns: BTreeMap<ConnId, (String, PingLog)>,
}

impl Pings {
    /// Takes a PINGREQ or PINGRESP into its connection's log; false for
    /// any other packet.
    fn note(
        &mut self,
        actor: &str,
        conn: ConnId,
        dir: Dir,
        packet: &Packet,
        fate: Fate,
        at: std::time::Duration,
    ) -> bool {
        let req = match packet {
            Packet::PingReq => true,
            Packet::PingResp => false,
            _ => return false,
        };
        let log = &mut self
            .conns
            .entry(conn)
            .or_insert_with(|| (actor.to_string(), PingLog::default()))
            .1;
        let name = if req { "PINGREQ" } else { "PINGRESP" };
        let (order, what) = match fate {
            Fate::Forwarded => (0, ""),
            Fate::Dropped => (1, "dropped by proxy"),
            Fate::Held => (2, "held by proxy"),
            Fate::Released => (3, "released by proxy"),
            Fate::Duplicated => (4, "duplicated by proxy"),
        };
        if !what.is_empty() {
            log.fates.insert((order, name, what));
        }
        match (req, dir) {
            (true, Dir::ToClient) | (false, Dir::ToBroker) => log.from_broker |= req,
            (true, Dir::ToBroker) => {
                // The broker got it (a held one only when released).
                let times = match fate {
                    Fate::Forwarded | Fate::Released => 1,
                    Fate::Duplicated => 2,
                    Fate::Dropped | Fate::Held => 0,
                };
                log.outstanding.extend(std::iter::repeat_n(at, times));
            }
            (false, Dir::ToClient) if fate != Fate::Released => {
                // The broker answered, whether or not the client got it.
                if log.outstanding.is_empty() {
                    log.unrequested = true;
                } else {
                    log.outstanding.remove(0);
                    log.answered = true;
                }
            }
            (false, Dir::ToClient) => {}
        }
        true
    }

    /// Connections with pings whose line is not printed yet.
    fn open(&self) -> Vec<(ConnId, String)> {
        self.conns
            .iter()
            .filter(|(_, (_, l))| !l.done)
            .map(|(c, (a, _))| (*c, a.clone()))
            .collect()
    }
}

impl Normalizer {
    /// The `keep alive:` line of a connection that ends at `end` (once).
    fn keep_alive_line(
        &mut self,
        actor: &str,
        conn: ConnId,
        end: std::time::Duration,
    ) -> Option<String> {
        let (_, log) = self.pings.conns.get_mut(&conn)?;
        if log.done {
            return None;
        }
        log.done = true;
        let mut parts = Vec::new();
        if log.answered {
            parts.push("PINGREQ/PINGRESP".to_string());
        }
        parts.extend(log.fates.iter().map(|(_, p, w)| format!("{p} {w}")));
        // A ping the broker got within the last second may be answered
        // in flight: only a longer silence is an unanswered ping.
        if log
            .outstanding
            .iter()
            .any(|t| end.saturating_sub(*t) >= std::time::Duration::from_secs(1))
        {
            parts.push("PINGREQ unanswered".into());
        }
        if log.unrequested {
            parts.push("PINGRESP without a PINGREQ".into());
        }
        if log.from_broker {
            parts.push("PINGREQ from the broker".into());
        }
        if parts.is_empty() {
            return None;
        }
        let c = self.conn(actor, conn);
        Some(format!("{c} keep alive: {}", parts.join(", ")))
    }

    /// The lane of a connection's close line.
    fn close_lane(&mut self, actor: &str, conn: ConnId, opts: &Options) -> Lane {
        let ordinal = self.conns.get(&conn).copied().unwrap_or(0);
        (
            rank(actor),
            actor.to_string(),
            0,
            ordinal,
            if opts.split_directions { 2 } else { 0 },
        )
    }
}

/// Where a line belongs: actor rank, actor, wire (0) or client report (1),
/// connection ordinal, direction (only with `split_directions`).
type Lane = (u8, String, u8, usize, u8);

fn flush(out: &mut String, section: &str, groups: &mut BTreeMap<Lane, Vec<String>>) {
    let _ = writeln!(out, "{section}");
    for ((_, actor, _, _, _), lines) in std::mem::take(groups) {
        let mut prev: Option<&str> = None;
        let mut repeated = false;
        for l in &lines {
            // A run of identical lines (refused reconnect attempts) is as
            // long as the clock made it: one line says it.
            if prev == Some(l.as_str()) {
                if !repeated {
                    // The marker belongs to the stream it shortens.
                    let mark = if l.starts_with("· ") { "· " } else { "" };
                    let _ = writeln!(out, "  {actor:<8} {mark}(repeated)");
                    repeated = true;
                }
                continue;
            }
            repeated = false;
            prev = Some(l);
            let _ = writeln!(out, "  {actor:<8} {l}");
        }
    }
}

#[derive(Default)]
struct Normalizer {
    /// Connection ordinal per actor.
    conns: HashMap<ConnId, usize>,
    conn_count: HashMap<String, usize>,
    /// Renumbered packet ids per (actor, client-chosen?).
    pids: HashMap<(String, bool, u16), usize>,
    pid_count: HashMap<(String, bool), usize>,
    /// Connections on which the client sent DISCONNECT.
    said_disconnect: std::collections::HashSet<ConnId>,
    /// Topic filters whose publications are left out.
    periodic: Vec<String>,
    /// Packet ids of left-out publications: (connection, sent towards the
    /// broker, id), so that their acks are left out too.
    hidden: std::collections::HashSet<(ConnId, bool, u16)>,
    /// Keep-alive traffic, folded per connection.
    pings: Pings,
}

impl Normalizer {
    fn conn(&mut self, actor: &str, conn: ConnId) -> String {
        let next = self.conn_count.entry(actor.to_string()).or_default();
        let n = *self.conns.entry(conn).or_insert_with(|| {
            *next += 1;
            *next
        });
        format!("#{n}")
    }

    fn pid(&mut self, actor: &str, client_chosen: bool, pid: u16) -> String {
        let count = self
            .pid_count
            .entry((actor.to_string(), client_chosen))
            .or_default();
        let n = *self
            .pids
            .entry((actor.to_string(), client_chosen, pid))
            .or_insert_with(|| {
                *count += 1;
                *count
            });
        format!("{}{n}", if client_chosen { 'c' } else { 'b' })
    }

    fn is_periodic(&self, topic: &str) -> bool {
        self.periodic
            .iter()
            .any(|f| crate::mqtt::topic::matches(f, topic))
    }

    /// A publication on a periodic topic, or an ack of one.
    fn left_out(&mut self, conn: ConnId, dir: Dir, p: &Packet) -> bool {
        if self.periodic.is_empty() {
            return false;
        }
        let to_broker = dir == Dir::ToBroker;
        match p {
            Packet::Publish(pb) if self.is_periodic(&pb.topic) => {
                if let Some(pid) = pb.pid {
                    self.hidden.insert((conn, to_broker, pid));
                }
                true
            }
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubComp(a) => {
                self.hidden.contains(&(conn, !to_broker, a.pid))
            }
            Packet::PubRel(a) => self.hidden.contains(&(conn, to_broker, a.pid)),
            _ => false,
        }
    }

    fn line(&mut self, ev: &Event) -> Option<(String, String)> {
        Some(match &ev.kind {
            EventKind::Packet {
                conn, dir, packet, ..
            } if self.left_out(*conn, *dir, packet) => return None,
            EventKind::Delivered { msg, .. } if self.is_periodic(&msg.topic) => return None,
            EventKind::ConnOpened { conn, actor } => {
                let c = self.conn(actor, *conn);
                (actor.clone(), format!("{c} open"))
            }
            EventKind::ConnClosed {
                conn,
                actor,
                reason,
            } => {
                let c = self.conn(actor, *conn);
                let why = match reason {
                    // After DISCONNECT both ends close; which one the proxy
                    // saw first is the scheduler's choice.
                    CloseReason::ClientClosed | CloseReason::BrokerClosed
                        if self.said_disconnect.contains(conn) =>
                    {
                        "closed after DISCONNECT".to_string()
                    }
                    CloseReason::ClientClosed => "closed by client".to_string(),
                    CloseReason::BrokerClosed => "closed by broker".to_string(),
                    CloseReason::Severed => "severed (RST)".to_string(),
                    CloseReason::Closed => "closed by fault (FIN)".to_string(),
                    CloseReason::Refused => "refused".to_string(),
                    CloseReason::UpstreamUnreachable(_) => "broker unreachable".to_string(),
                    CloseReason::RunEnded => "open at end of run".to_string(),
                };
                (actor.clone(), format!("{c} {why}"))
            }
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } => {
                let c = self.conn(actor, *conn);
                if *dir == Dir::ToBroker && matches!(packet, Packet::Disconnect(_)) {
                    self.said_disconnect.insert(*conn);
                }
                let body = self.packet(actor, *dir, packet);
                let fate = match fate {
                    Fate::Forwarded => "",
                    Fate::Dropped => " [dropped by proxy]",
                    Fate::Duplicated => " [duplicated by proxy]",
                    Fate::Held => " [held by proxy]",
                    Fate::Released => " [released by proxy]",
                };
                (actor.clone(), format!("{c} {} {body}{fate}", dir.arrow()))
            }
            EventKind::Malformed {
                conn,
                actor,
                dir,
                raw,
                error,
            } => {
                let c = self.conn(actor, *conn);
                (
                    actor.clone(),
                    format!(
                        "{c} {} MALFORMED ({} bytes): {error}",
                        dir.arrow(),
                        raw.len()
                    ),
                )
            }
            EventKind::Fault { target, fault } => ("net".into(), format!("{fault} on {target}")),
            EventKind::Delivered { actor, msg } => (
                actor.clone(),
                format!(
                    "delivered {} {} q{}{}{}",
                    msg.topic,
                    payload(&msg.payload),
                    msg.qos.as_u8(),
                    if msg.retain { " retain" } else { "" },
                    if msg.dup { " dup" } else { "" }
                ),
            ),
            EventKind::Actor { actor, what } => {
                // Acks and ready banners repeat what packets already show or
                // carry build details; keep what only the actor knows.
                if what.starts_with("disconnected") || what.starts_with("anomaly") {
                    // The OS's wording of an error is not the protocol's.
                    let what = match what.find(" (") {
                        Some(i) if what.starts_with("disconnected") => what[..i].to_string(),
                        _ => what.clone(),
                    };
                    (actor.clone(), what)
                } else {
                    return None;
                }
            }
            EventKind::Broker { what } => {
                let what = if what.starts_with("started") {
                    "started"
                } else {
                    what
                };
                ("broker".into(), what.to_string())
            }
            // The first boot is set-up, not behaviour (and the virtual
            // device has no board to boot).
            EventKind::Board { what } if what == "booted" => return None,
            EventKind::Board { what } => ("board".into(), what.clone()),
            EventKind::Uart { .. } => return None,
            EventKind::Expect { ok, detail, .. } => (
                "expect".into(),
                if *ok {
                    format!("ok: {detail}")
                } else {
                    format!("FAILED: {detail}")
                },
            ),
            // The board's frames are below the MQTT traffic the trace is
            // about: what a fault did to them shows in the packets' timing,
            // the pcap and the report, not here.
            EventKind::Step { .. } | EventKind::Teardown | EventKind::Frame { .. } => return None,
        })
    }

    fn packet(&mut self, actor: &str, dir: Dir, p: &Packet) -> String {
        let to_broker = dir == Dir::ToBroker;
        match p {
            Packet::Connect(c) => {
                let mut s = format!(
                    "CONNECT v{} id={} clean={} ka={}",
                    c.version.level(),
                    c.client_id,
                    c.clean_start as u8,
                    c.keep_alive
                );
                if let Some(w) = &c.will {
                    let _ = write!(
                        s,
                        " will={} {} q{}",
                        w.topic,
                        payload(&w.payload),
                        w.qos.as_u8()
                    );
                    if w.retain {
                        s += " retain";
                    }
                    if !w.properties.is_empty() {
                        s += " will";
                        s += props::render_trace(&w.properties, false).trim_start();
                    }
                }
                if let Some(u) = &c.username {
                    let _ = write!(s, " user={u}");
                }
                if c.password.is_some() {
                    s += " pass=***";
                }
                s + &props::render_trace(&c.properties, false)
            }
            Packet::ConnAck(c) => format!(
                "CONNACK sp={} rc={}{}",
                c.session_present as u8,
                c.code,
                props::render_trace(&c.properties, false)
            ),
            Packet::Publish(pb) => {
                let mut s = "PUBLISH".to_string();
                if let Some(pid) = pb.pid {
                    let _ = write!(s, " {}", self.pid(actor, to_broker, pid));
                }
                let _ = write!(
                    s,
                    " q{} {} {}",
                    pb.qos.as_u8(),
                    pb.topic,
                    payload(&pb.payload)
                );
                if pb.dup {
                    s += " dup";
                }
                if pb.retain {
                    s += " retain";
                }
                // What is left of a message expiry depends on the clock.
                s + &props::render_trace(&pb.properties, !to_broker)
            }
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubComp(a) => {
                format!(
                    "{} {}{}",
                    p.packet_type(),
                    self.pid(actor, !to_broker, a.pid),
                    ack_extra(a)
                )
            }
            Packet::PubRel(a) => format!(
                "PUBREL {}{}",
                self.pid(actor, to_broker, a.pid),
                ack_extra(a)
            ),
            Packet::Subscribe(s) => {
                let f: Vec<String> = s
                    .filters
                    .iter()
                    .map(|f| {
                        let mut t = format!("{} q{}", f.filter, f.qos.as_u8());
                        if f.options & 0x04 != 0 {
                            t += " nl";
                        }
                        if f.options & 0x08 != 0 {
                            t += " rap";
                        }
                        if f.options & 0x30 != 0 {
                            let _ = write!(t, " rh{}", (f.options >> 4) & 3);
                        }
                        t
                    })
                    .collect();
                format!(
                    "SUBSCRIBE {} [{}]{}",
                    self.pid(actor, true, s.pid),
                    f.join(", "),
                    props::render_trace(&s.properties, false)
                )
            }
            Packet::SubAck(s) => format!("SUBACK {} {:?}", self.pid(actor, true, s.pid), s.codes),
            Packet::Unsubscribe(u) => {
                format!(
                    "UNSUBSCRIBE {} [{}]",
                    self.pid(actor, true, u.pid),
                    u.filters.join(", ")
                )
            }
            Packet::UnsubAck(u) => format!("UNSUBACK {}", self.pid(actor, true, u.pid)),
            Packet::Disconnect(d) if d.code == 0 && d.properties.is_empty() => "DISCONNECT".into(),
            Packet::Disconnect(d) => format!(
                "DISCONNECT rc={}{}",
                d.code,
                props::render_trace(&d.properties, false)
            ),
            Packet::Auth(a) => format!("AUTH rc={}", a.code),
            Packet::PingReq | Packet::PingResp => p.packet_type().to_string(),
        }
    }
}

/// A 5.0 ack's reason code and properties, when it has any.
fn ack_extra(a: &crate::mqtt::Ack) -> String {
    let mut s = String::new();
    if a.code != 0 {
        let _ = write!(s, " rc={}", a.code);
    }
    s + &props::render_trace(&a.properties, false)
}

/// Printable payloads as quoted text, others as hex; long ones cut.
pub fn payload(p: &[u8]) -> String {
    const MAX: usize = 64;
    let shown = &p[..p.len().min(MAX)];
    let more = if p.len() > MAX {
        format!("…({} bytes)", p.len())
    } else {
        String::new()
    };
    match std::str::from_utf8(shown) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}{more}"),
        _ => {
            let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}{more}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{CloseReason, History};
    use crate::mqtt::{Ack, Properties, Publish, QoS};
    use bytes::Bytes;

    fn publish(conn: u32, pid: u16, dir: Dir) -> EventKind {
        EventKind::Packet {
            conn: ConnId(conn),
            actor: "device".into(),
            dir,
            packet: Packet::Publish(Publish {
                dup: false,
                qos: QoS::ExactlyOnce,
                retain: false,
                topic: "t".into(),
                pid: Some(pid),
                payload: Bytes::from_static(b"m"),
                properties: Properties::default(),
            }),
            raw: Bytes::new(),
            fate: Fate::Forwarded,
        }
    }

    fn ack(conn: u32, pid: u16, dir: Dir) -> EventKind {
        EventKind::Packet {
            conn: ConnId(conn),
            actor: "device".into(),
            dir,
            packet: Packet::PubRec(Ack::new(pid)),
            raw: Bytes::new(),
            fate: Fate::Forwarded,
        }
    }

    #[test]
    fn renumbers_ids_and_connections_so_equal_behaviour_renders_equal() {
        let a = History::build()
            .push(publish(7, 4242, Dir::ToBroker))
            .push(ack(7, 4242, Dir::ToClient))
            .push(publish(7, 9, Dir::ToClient))
            .finish();
        let b = History::build()
            .push(publish(3, 17, Dir::ToBroker))
            .push(ack(3, 17, Dir::ToClient))
            .push(publish(3, 1, Dir::ToClient))
            .finish();
        assert_eq!(render("x", &a), render("x", &b));
        let text = render("x", &a);
        assert!(text.contains("#1 -> PUBLISH c1 q2 t \"m\""), "{text}");
        assert!(text.contains("#1 <- PUBREC c1"), "{text}");
        assert!(text.contains("#1 <- PUBLISH b1"), "{text}");
    }

    fn pkt(conn: u32, dir: Dir, packet: Packet, fate: Fate) -> EventKind {
        EventKind::Packet {
            conn: ConnId(conn),
            actor: "device".into(),
            dir,
            packet,
            raw: Bytes::new(),
            fate,
        }
    }

    fn ping_history(exchanges: usize, step_at: usize) -> History {
        let mut b = History::build().push(EventKind::ConnOpened {
            conn: ConnId(4),
            actor: "device".into(),
        });
        for i in 0..=exchanges {
            if i == step_at.min(exchanges) {
                b = b.push(EventKind::Step {
                    index: 2,
                    summary: "wait 7s".into(),
                });
            }
            if i == exchanges {
                break;
            }
            b = b
                .push(pkt(4, Dir::ToBroker, Packet::PingReq, Fate::Forwarded))
                .push(pkt(4, Dir::ToClient, Packet::PingResp, Fate::Forwarded));
        }
        b.push(EventKind::ConnClosed {
            conn: ConnId(4),
            actor: "device".into(),
            reason: CloseReason::Severed,
        })
        .finish()
    }

    #[test]
    fn pings_fold_into_one_line_whatever_their_number_and_steps() {
        // However many exchanges the clock allowed, and whichever step they
        // fell into, the trace reads the same.
        let three = render("x", &ping_history(3, 3));
        for (n, at) in [(1, 1), (5, 2), (2, 0)] {
            assert_eq!(render("x", &ping_history(n, at)), three);
        }
        assert!(
            three.contains("device   #1 keep alive: PINGREQ/PINGRESP\n  device   #1 severed"),
            "{three}"
        );
        assert!(three.starts_with("# x\n# keep alive:"), "{three}");
        // No pings: no line, no header.
        let none = render("x", &ping_history(0, 0));
        assert!(!none.contains("keep alive"), "{none}");
    }

    #[test]
    fn ping_anomalies_and_proxy_fates_are_shown() {
        let secs = std::time::Duration::from_secs;
        let h = History::build()
            .push(EventKind::ConnOpened {
                conn: ConnId(1),
                actor: "device".into(),
            })
            .push(pkt(1, Dir::ToBroker, Packet::PingReq, Fate::Held))
            .push(pkt(1, Dir::ToClient, Packet::PingResp, Fate::Forwarded))
            .push(pkt(1, Dir::ToBroker, Packet::PingReq, Fate::Forwarded))
            .wait(secs(2))
            .push(EventKind::ConnClosed {
                conn: ConnId(1),
                actor: "device".into(),
                reason: CloseReason::BrokerClosed,
            })
            .finish();
        let t = render("x", &h);
        assert!(
            t.contains(
                "#1 keep alive: PINGREQ held by proxy, PINGREQ unanswered, PINGRESP without a PINGREQ"
            ),
            "{t}"
        );
        // A PINGREQ the broker got just before the end may be answered in
        // flight: not called unanswered.
        let h = History::build()
            .push(EventKind::ConnOpened {
                conn: ConnId(1),
                actor: "device".into(),
            })
            .push(pkt(1, Dir::ToBroker, Packet::PingReq, Fate::Forwarded))
            .push(pkt(1, Dir::ToClient, Packet::PingResp, Fate::Forwarded))
            .push(pkt(1, Dir::ToBroker, Packet::PingReq, Fate::Forwarded))
            .push(EventKind::Teardown)
            .finish();
        let t = render("x", &h);
        assert!(
            t.ends_with("  device   #1 keep alive: PINGREQ/PINGRESP\n"),
            "{t}"
        );
    }

    #[test]
    fn binary_payloads_print_as_hex_and_long_ones_are_cut() {
        assert_eq!(payload(b"hi"), "\"hi\"");
        assert_eq!(payload(&[0, 255]), "0x00ff");
        assert!(payload(&[b'a'; 100]).ends_with("…(100 bytes)"));
    }
}
