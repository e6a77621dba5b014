//! The sequence diagram of one scenario, drawn from its history as SVG:
//! a pure function from events to text, no I/O.
//!
//! Lanes, left to right: the device, the fault proxy on its side, the
//! broker, and (when there are observers) the proxy on their side followed
//! by one lane per observer. Each row is one event, top to bottom in log
//! order (rows are evenly spaced: order matters here, not the clock; the
//! gutter gives each event's number and time). Packets are arrows from
//! sender to receiver with their key fields; what the proxy did shows in
//! the arrow — a dropped packet stops at the proxy under a cross, a held
//! one stops at the proxy, its release starts there, a duplicated one
//! reaches the receiver twice. Faults, broker and board lifecycle events
//! are bands across the whole width; steps are grey separators; a quiet
//! stretch of half a second or more is marked "⋯ 2.0 s later". Events a
//! failed checker or expectation names are red. Every event links to its
//! row in the page's event log (`#e<seq>`).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use crate::history::{CloseReason, Dir, Event, EventKind, Fate, History};
use crate::mqtt::Packet;
use crate::report::describe;

const GUTTER: f64 = 120.0;
const GAP: f64 = 200.0;
const RIGHT: f64 = 250.0;
const TOP: f64 = 56.0;
const LABEL_MAX: usize = 46;
/// Quiet stretches at least this long get a "later" marker.
const GAP_SHOWN: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Device,
    Observer,
}

struct Layout {
    /// (label, x, is proxy)
    lanes: Vec<(String, f64, bool)>,
    actors: HashMap<String, (f64, Side)>,
    broker: f64,
    proxy_device: f64,
    proxy_observers: f64,
    width: f64,
}

impl Layout {
    fn new(history: &History) -> Layout {
        let mut observers: Vec<String> = Vec::new();
        let mut device = false;
        for ev in &history.events {
            let actor = match &ev.kind {
                EventKind::ConnOpened { actor, .. }
                | EventKind::ConnClosed { actor, .. }
                | EventKind::Packet { actor, .. }
                | EventKind::Malformed { actor, .. }
                | EventKind::Delivered { actor, .. }
                | EventKind::Actor { actor, .. } => actor.as_str(),
                EventKind::Board { .. } | EventKind::Uart { .. } => "device",
                _ => continue,
            };
            if actor == "device" {
                device = true;
            } else if !observers.iter().any(|o| o == actor) {
                observers.push(actor.to_string());
            }
        }
        let mut lanes = Vec::new();
        let mut actors = HashMap::new();
        let mut x = GUTTER + 40.0;
        let mut proxy_device = x;
        if device {
            lanes.push(("device".to_string(), x, false));
            actors.insert("device".to_string(), (x, Side::Device));
            x += GAP;
            proxy_device = x;
            lanes.push(("proxy".to_string(), x, true));
            x += GAP;
        }
        let broker = x;
        lanes.push(("broker".to_string(), x, false));
        let mut proxy_observers = x;
        if !observers.is_empty() {
            x += GAP;
            proxy_observers = x;
            lanes.push(("proxy".to_string(), x, true));
            for o in observers {
                x += GAP;
                lanes.push((o.clone(), x, false));
                actors.insert(o, (x, Side::Observer));
            }
        }
        Layout {
            lanes,
            actors,
            broker,
            proxy_device,
            proxy_observers,
            width: x + RIGHT,
        }
    }

    /// The actor's lane and the proxy lane between it and the broker.
    fn ends(&self, actor: &str) -> (f64, f64) {
        match self.actors.get(actor) {
            Some((x, Side::Device)) => (*x, self.proxy_device),
            Some((x, Side::Observer)) => (*x, self.proxy_observers),
            None => (self.broker, self.broker),
        }
    }
}

/// The diagram of `history`; `offending` are the seqs to draw in red.
pub fn diagram(history: &History, offending: &BTreeSet<u64>) -> String {
    let layout = Layout::new(history);
    let mut body = String::new();
    let mut y = TOP + 16.0;
    let mut last = None;
    for ev in &history.events {
        // Rows are evenly spaced, so a long quiet stretch (a keepalive
        // timeout, a backoff) is said in words.
        if let Some(prev) = last {
            let quiet: std::time::Duration = ev.at.saturating_sub(prev);
            if quiet >= GAP_SHOWN {
                let _ = writeln!(
                    body,
                    r#"<text class="quiet" x="{x}" y="{ty}">⋯ {:.1} s later</text>"#,
                    quiet.as_secs_f64(),
                    x = GUTTER + 10.0,
                    ty = y + 11.0
                );
                y += 16.0;
            }
        }
        last = Some(ev.at);
        // The board's frames are drawn only where they tell something: a
        // fault acted on them, or they were DHCP, DNS or a refusal.
        if let EventKind::Frame {
            fate: crate::history::FrameFate::Delivered,
            note: None,
            ..
        } = &ev.kind
        {
            continue;
        }
        y = row(&mut body, &layout, ev, offending.contains(&ev.seq), y);
    }
    let height = y + 16.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="seq" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="monospace" font-size="11">"#,
        w = layout.width,
        h = height
    );
    out += "\n";
    out += STYLE;
    out += "\n";
    // Lifelines first so everything else draws over them.
    for (name, x, proxy) in &layout.lanes {
        let class = if *proxy { "life proxy" } else { "life" };
        let _ = write!(
            out,
            r#"<line class="{class}" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}"/>"#,
            top = TOP,
            bottom = height - 8.0
        );
        let _ = write!(
            out,
            r#"<rect class="head{p}" x="{rx}" y="10" width="120" height="26" rx="4"/><text class="head" x="{x}" y="27" text-anchor="middle">{name}</text>"#,
            p = if *proxy { " proxy" } else { "" },
            rx = x - 60.0,
            name = esc(name)
        );
        out += "\n";
    }
    out += &body;
    out += "</svg>";
    out
}

const STYLE: &str = "<style>\
.life{stroke:#9aa;stroke-dasharray:4 4}\
.life.proxy{stroke:#c9a;stroke-dasharray:2 5}\
rect.head{fill:#e8eef7;stroke:#567}\
rect.head.proxy{fill:#f7eaf2;stroke:#a57}\
text.head{font-weight:bold;fill:#123}\
.gut{fill:#777}\
.pkt line{stroke:#235;stroke-width:1.4}.pkt polygon{fill:#235}.pkt text{fill:#123}\
.ping line{stroke:#aab}.ping polygon{fill:#aab}.ping text{fill:#889}\
.bad line{stroke:#d10;stroke-width:2.2}.bad polygon{fill:#d10}.bad text{fill:#d10;font-weight:bold}\
.mal line{stroke-dasharray:5 3}\
.fate{fill:#a35;font-style:italic}\
.cross{stroke:#d10;stroke-width:2.5}\
.hold{fill:#fff;stroke:#a35;stroke-width:1.5}\
.note text{fill:#456}.note circle{fill:#456}\
.note.cut text{fill:#a35}.note.cut circle{fill:#a35}\
.note.bad text{fill:#d10;font-weight:bold}.note.bad circle{fill:#d10}\
.uart text{fill:#777}\
.band rect{fill:#fde7c4}.band text{fill:#853;font-weight:bold}\
.band.board rect{fill:#e4dcf5}.band.board text{fill:#536}\
.band.broker rect{fill:#d6e8f8}.band.broker text{fill:#235}\
.band.teardown rect{fill:#eee}.band.teardown text{fill:#777;font-weight:normal}\
.band.bad rect{fill:#fcd4d0}.band.bad text{fill:#d10}\
.step rect{fill:#f3f3f3}.step text{fill:#555}\
.expect text{fill:#272;font-weight:bold}.expect.bad text{fill:#d10}\
.quiet{fill:#999;font-style:italic}\
a:hover text{text-decoration:underline}\
</style>";

/// Draws one event's row at `y`; returns where the next row starts.
fn row(out: &mut String, l: &Layout, ev: &Event, bad: bool, y: f64) -> f64 {
    let seq = ev.seq;
    let _ = write!(out, r##"<a href="#e{seq}">"##);
    let next = match &ev.kind {
        EventKind::Step { index, summary } => {
            let _ = write!(
                out,
                r#"<g class="step"><rect x="0" y="{ry}" width="{w}" height="20"/><text x="8" y="{ty}">step {index}: {s}</text></g>"#,
                ry = y,
                w = l.width,
                ty = y + 14.0,
                s = esc(&cut(summary, 120))
            );
            y + 26.0
        }
        EventKind::Packet {
            actor,
            dir,
            packet,
            fate,
            conn,
            ..
        } => {
            let ping = matches!(packet, Packet::PingReq | Packet::PingResp);
            let class = if bad {
                "pkt bad"
            } else if ping {
                "ping"
            } else {
                "pkt"
            };
            let label = format!("{conn} {}", describe::packet(packet));
            gutter(out, ev, y + 20.0);
            packet_arrow(out, l, actor, *dir, *fate, class, &label, y + 20.0);
            // Room for the proxy's word under the arrow.
            if *fate == Fate::Forwarded {
                y + 28.0
            } else {
                y + 40.0
            }
        }
        EventKind::Malformed {
            actor, dir, raw, ..
        } => {
            let class = if bad { "pkt mal bad" } else { "pkt mal" };
            let label = format!("MALFORMED ({} bytes)", raw.len());
            gutter(out, ev, y + 20.0);
            packet_arrow(
                out,
                l,
                actor,
                *dir,
                Fate::Forwarded,
                class,
                &label,
                y + 20.0,
            );
            y + 28.0
        }
        EventKind::ConnOpened { conn, actor } => note(
            out,
            l,
            ev,
            actor,
            &format!("{conn} TCP open"),
            "note",
            bad,
            y,
        ),
        EventKind::ConnClosed {
            conn,
            actor,
            reason,
        } => {
            let text = format!("{conn} {}", describe::close_reason(reason));
            let class = match reason {
                CloseReason::Severed | CloseReason::Refused => "note cut",
                _ => "note",
            };
            note(out, l, ev, actor, &text, class, bad, y)
        }
        EventKind::Delivered { actor, msg } => {
            let text = format!(
                "delivered {} {} q{}{}{}",
                msg.topic,
                describe::excerpt(&msg.payload),
                msg.qos.as_u8(),
                if msg.retain { " retain" } else { "" },
                if msg.dup { " dup" } else { "" }
            );
            note(out, l, ev, actor, &text, "note", bad, y)
        }
        EventKind::Actor { actor, what } => note(out, l, ev, actor, what, "note", bad, y),
        EventKind::Uart { line } => note(
            out,
            l,
            ev,
            "device",
            &format!("| {line}"),
            "note uart",
            bad,
            y,
        ),
        EventKind::Expect { ok, detail, .. } => {
            let class = if *ok && !bad { "expect" } else { "expect bad" };
            gutter(out, ev, y + 13.0);
            let _ = write!(
                out,
                r#"<g class="{class}"><text x="{x}" y="{ty}">{mark} expect {d}</text></g>"#,
                x = GUTTER + 10.0,
                ty = y + 13.0,
                mark = if *ok { "✔" } else { "✘" },
                d = esc(&cut(detail, 110))
            );
            y + 18.0
        }
        EventKind::Fault { target, fault } => band(
            out,
            l,
            ev,
            "band",
            &format!("fault: {fault} on {target}"),
            bad,
            y,
        ),
        EventKind::Broker { what } => {
            band(out, l, ev, "band broker", &format!("broker {what}"), bad, y)
        }
        EventKind::Board { what } => {
            band(out, l, ev, "band board", &format!("board {what}"), bad, y)
        }
        EventKind::Frame {
            dir,
            data,
            fate,
            note: n,
        } => {
            let class = match fate {
                crate::history::FrameFate::Delivered => "note",
                _ => "note cut",
            };
            let text = describe::frame(*dir, data, fate, n.as_deref());
            note(out, l, ev, "device", &text, class, bad, y)
        }
        EventKind::Teardown => band(
            out,
            l,
            ev,
            "band teardown",
            "teardown: the harness stops everything (not behaviour under test)",
            bad,
            y,
        ),
    };
    out.push_str("</a>\n");
    next
}

fn gutter(out: &mut String, ev: &Event, y: f64) {
    let _ = write!(
        out,
        r#"<text class="gut" x="6" y="{y}">#{} +{:.3}s</text>"#,
        ev.seq,
        ev.at.as_secs_f64()
    );
}

#[allow(clippy::too_many_arguments)]
fn packet_arrow(
    out: &mut String,
    l: &Layout,
    actor: &str,
    dir: Dir,
    fate: Fate,
    class: &str,
    label: &str,
    y: f64,
) {
    let (client, proxy) = l.ends(actor);
    let (from, to) = match dir {
        Dir::ToBroker => (client, l.broker),
        Dir::ToClient => (l.broker, client),
    };
    // Where the proxy's decision puts the visible part of the arrow.
    let (x1, x2, fate_text) = match fate {
        Fate::Forwarded => (from, to, ""),
        Fate::Dropped => (from, proxy, "dropped by proxy"),
        Fate::Held => (from, proxy, "held by proxy"),
        Fate::Released => (proxy, to, "released by proxy"),
        Fate::Duplicated => (from, to, "duplicated by proxy: ×2"),
    };
    let _ = write!(out, r#"<g class="{class}">"#);
    let _ = write!(
        out,
        r#"<title>{}</title>"#,
        esc(&format!("{label}{}", describe::fate_suffix(fate)))
    );
    let _ = write!(out, r#"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/>"#);
    match fate {
        Fate::Dropped => {
            let _ = write!(
                out,
                r#"<path class="cross" d="M{a} {b} L{c} {d} M{a} {d} L{c} {b}"/>"#,
                a = x2 - 6.0,
                b = y - 6.0,
                c = x2 + 6.0,
                d = y + 6.0
            );
        }
        Fate::Held => {
            let _ = write!(
                out,
                r#"<rect class="hold" x="{}" y="{}" width="10" height="10"/>"#,
                x2 - 5.0,
                y - 5.0
            );
        }
        Fate::Duplicated => {
            head(out, x1, x2, y);
            // The copy the proxy added: from the proxy on, just below.
            let _ = write!(
                out,
                r#"<line x1="{proxy}" y1="{y2}" x2="{x2}" y2="{y2}"/>"#,
                y2 = y + 4.0
            );
            head(out, proxy, x2, y + 4.0);
        }
        Fate::Released => {
            let _ = write!(
                out,
                r#"<rect class="hold" x="{}" y="{}" width="10" height="10"/>"#,
                x1 - 5.0,
                y - 5.0
            );
            head(out, x1, x2, y);
        }
        Fate::Forwarded => head(out, x1, x2, y),
    }
    // The label sits above the arrow, starting near its tail.
    let (tx, anchor) = if x2 >= x1 {
        (x1 + 8.0, "start")
    } else {
        (x1 - 8.0, "end")
    };
    let _ = write!(
        out,
        r#"<text x="{tx}" y="{ty}" text-anchor="{anchor}">{t}</text>"#,
        ty = y - 4.0,
        t = esc(&cut(label, LABEL_MAX))
    );
    if !fate_text.is_empty() {
        let _ = write!(
            out,
            r#"<text class="fate" x="{fx}" y="{fy}" text-anchor="middle">{fate_text}</text>"#,
            fx = proxy,
            fy = y + 14.0
        );
    }
    out.push_str("</g>");
}

fn head(out: &mut String, x1: f64, x2: f64, y: f64) {
    let s = if x2 >= x1 { -1.0 } else { 1.0 };
    let _ = write!(
        out,
        r#"<polygon points="{x2},{y} {bx},{t} {bx},{b}"/>"#,
        bx = x2 + s * 8.0,
        t = y - 4.0,
        b = y + 4.0
    );
}

#[allow(clippy::too_many_arguments)]
fn note(
    out: &mut String,
    l: &Layout,
    ev: &Event,
    actor: &str,
    text: &str,
    class: &str,
    bad: bool,
    y: f64,
) -> f64 {
    let (x, _) = l.ends(actor);
    let class = if bad {
        format!("{class} bad")
    } else {
        class.to_string()
    };
    gutter(out, ev, y + 12.0);
    let _ = write!(
        out,
        r#"<g class="{class}"><title>{full}</title><circle cx="{x}" cy="{cy}" r="3"/><text x="{tx}" y="{ty}">{t}</text></g>"#,
        full = esc(text),
        cy = y + 8.0,
        tx = x + 8.0,
        ty = y + 12.0,
        t = esc(&cut(text, LABEL_MAX + 10))
    );
    y + 18.0
}

#[allow(clippy::too_many_arguments)]
fn band(
    out: &mut String,
    l: &Layout,
    ev: &Event,
    class: &str,
    text: &str,
    bad: bool,
    y: f64,
) -> f64 {
    let class = if bad {
        format!("{class} bad")
    } else {
        class.to_string()
    };
    gutter(out, ev, y + 15.0);
    let _ = write!(
        out,
        r#"<g class="{class}"><rect x="{GUTTER}" y="{ry}" width="{w}" height="20" rx="3"/><text x="{tx}" y="{ty}">{t}</text></g>"#,
        ry = y + 1.0,
        w = l.width - GUTTER - 8.0,
        tx = GUTTER + 10.0,
        ty = y + 15.0,
        t = esc(&cut(text, 140))
    );
    y + 24.0
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Escapes text for XML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML at all.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ConnId, Delivery};
    use crate::mqtt::{Ack, ConnAck, Connect, Properties, Publish, QoS, Version};
    use bytes::Bytes;

    fn pkt(conn: u32, actor: &str, dir: Dir, packet: Packet, fate: Fate) -> EventKind {
        EventKind::Packet {
            conn: ConnId(conn),
            actor: actor.into(),
            dir,
            packet,
            raw: Bytes::new(),
            fate,
        }
    }

    fn publish(pid: u16, payload: &'static str) -> Packet {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "dut/t".into(),
            pid: Some(pid),
            payload: Bytes::from_static(payload.as_bytes()),
            properties: Properties::default(),
        })
    }

    /// A device that connects, loses a PUBLISH to a drop rule, gets reset;
    /// an observer that gets a duplicated PUBLISH and a held PUBACK.
    fn small() -> History {
        History::build()
            .push(EventKind::Broker {
                what: "started".into(),
            })
            .push(EventKind::Step {
                index: 1,
                summary: "device connect".into(),
            })
            .push(EventKind::ConnOpened {
                conn: ConnId(1),
                actor: "device".into(),
            })
            .push(pkt(
                1,
                "device",
                Dir::ToBroker,
                Packet::Connect(Connect {
                    version: Version::V311,
                    client_id: "dut".into(),
                    clean_start: true,
                    keep_alive: 5,
                    will: None,
                    username: None,
                    password: None,
                    properties: Properties::default(),
                }),
                Fate::Forwarded,
            ))
            .push(pkt(
                1,
                "device",
                Dir::ToClient,
                Packet::ConnAck(ConnAck {
                    session_present: false,
                    code: 0,
                    properties: Properties::default(),
                }),
                Fate::Forwarded,
            ))
            .push(EventKind::Fault {
                target: "device".into(),
                fault: "drop 1st PUBLISH".into(),
            })
            .push(pkt(
                1,
                "device",
                Dir::ToBroker,
                publish(7, "lost"),
                Fate::Dropped,
            ))
            .push(EventKind::Board {
                what: "reset".into(),
            })
            .push(EventKind::ConnClosed {
                conn: ConnId(1),
                actor: "device".into(),
                reason: CloseReason::Severed,
            })
            .push(pkt(
                2,
                "cloud",
                Dir::ToClient,
                publish(3, "twice"),
                Fate::Duplicated,
            ))
            .push(EventKind::Delivered {
                actor: "cloud".into(),
                msg: Delivery {
                    topic: "dut/t".into(),
                    payload: Bytes::from_static(b"twice"),
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    dup: false,
                    properties: Default::default(),
                },
            })
            .push(pkt(
                2,
                "cloud",
                Dir::ToBroker,
                Packet::PubAck(Ack::new(3)),
                Fate::Held,
            ))
            .push(pkt(
                2,
                "cloud",
                Dir::ToBroker,
                Packet::PubAck(Ack::new(3)),
                Fate::Released,
            ))
            .push(EventKind::Expect {
                step: 2,
                ok: false,
                detail: "cloud receives 1 message(s) <on> dut/t".into(),
            })
            .finish()
    }

    fn offending() -> BTreeSet<u64> {
        [6, 13].into_iter().collect()
    }

    #[test]
    fn small_history_snapshot() {
        insta::assert_snapshot!(diagram(&small(), &offending()));
    }

    #[test]
    fn long_quiet_stretches_are_marked() {
        let h = History::build()
            .push(EventKind::Broker {
                what: "started".into(),
            })
            .wait(std::time::Duration::from_millis(2500))
            .push(EventKind::Board {
                what: "reset".into(),
            })
            .push(EventKind::Board {
                what: "booted".into(),
            })
            .finish();
        let svg = diagram(&h, &BTreeSet::new());
        assert_eq!(svg.matches("s later</text>").count(), 1, "{svg}");
        assert!(svg.contains("⋯ 2.5 s later"), "{svg}");
    }

    #[test]
    fn the_svg_is_well_formed_xml_with_a_lane_per_role() {
        let svg = diagram(&small(), &offending());
        let mut reader = quick_xml::Reader::from_str(&svg);
        let mut heads = Vec::new();
        let mut in_head = false;
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Start(e)) => {
                    in_head = e.name().as_ref() == b"text"
                        && e.attributes()
                            .flatten()
                            .any(|a| a.key.as_ref() == b"class" && a.value.as_ref() == b"head");
                }
                Ok(quick_xml::events::Event::Text(t)) if in_head => {
                    heads.push(t.decode().unwrap().into_owned());
                    in_head = false;
                }
                Ok(_) => {}
                Err(e) => panic!("not XML at {}: {e}", reader.buffer_position()),
            }
        }
        assert_eq!(heads, ["device", "proxy", "broker", "proxy", "cloud"]);
    }

    #[test]
    fn fates_faults_resets_and_violations_are_visible() {
        let svg = diagram(&small(), &offending());
        let row = |seq: u64| {
            svg.lines()
                .find(|l| l.starts_with(&format!("<a href=\"#e{seq}\">")))
                .unwrap_or_else(|| panic!("no row for #{seq}"))
                .to_string()
        };
        // Every event has its row, linked to the event log.
        for seq in 0..14 {
            row(seq);
        }
        // The dropped PUBLISH: red (it is offending), ends at the device's
        // proxy (x 360) under a cross, no arrow head.
        let dropped = row(6);
        assert!(dropped.contains(r#"<g class="pkt bad">"#), "{dropped}");
        assert!(dropped.contains(r#"x1="160" y1="#) && dropped.contains(r#"x2="360""#));
        assert!(dropped.contains(r#"class="cross""#) && !dropped.contains("<polygon"));
        assert!(dropped.contains("c1 PUBLISH 7 q1 dut/t &quot;lost&quot;"));
        assert!(dropped.contains("dropped by proxy"));
        // The duplicated PUBLISH reaches cloud twice: two heads.
        let dup = row(9);
        assert_eq!(dup.matches("<polygon").count(), 2, "{dup}");
        assert!(dup.contains("duplicated by proxy"));
        // Held stops at the observers' proxy (x 760), released starts there.
        assert!(row(11).contains(r#"x2="760""#) && row(11).contains("held by proxy"));
        assert!(row(12).contains(r#"x1="760""#) && row(12).contains("released by proxy"));
        // Fault and reset are bands; the failed expectation is red, its
        // text escaped.
        assert!(row(5).contains(r#"<g class="band">"#) && row(5).contains("fault: drop 1st"));
        assert!(row(7).contains(r#"<g class="band board">"#) && row(7).contains("board reset"));
        assert!(row(13).contains(r#"class="expect bad""#) && row(13).contains("&lt;on&gt;"));
        assert!(row(8).contains(r#"class="note cut""#) && row(8).contains("severed (RST)"));
        // Nothing else is red.
        assert_eq!(svg.matches(" bad\"").count(), 2, "{svg}");
    }

    /// A fault of the board's own network is a band with its parameters,
    /// as a proxy fault is; a frame it dropped is a note marked cut.
    #[test]
    fn network_faults_are_bands_with_their_parameters() {
        use crate::net::{Amount, IpFault, NetFault};
        let fault = NetFault::Ip {
            dir: Some(Dir::ToBroker),
            fault: IpFault::Loss(Amount::Rate(0.2)),
        };
        let h = History::build()
            .push(EventKind::Fault {
                target: "device".into(),
                fault: fault.name(),
            })
            .push(EventKind::Frame {
                dir: Dir::ToBroker,
                data: Bytes::from_static(&[0u8; 20]),
                fate: crate::history::FrameFate::Dropped("ip loss".into()),
                note: None,
            })
            .push(EventKind::Fault {
                target: "device".into(),
                fault: NetFault::Wifi(crate::net::Wifi::Off).name(),
            })
            .finish();
        let svg = diagram(&h, &BTreeSet::new());
        let row = |seq: u64| {
            svg.lines()
                .find(|l| l.starts_with(&format!("<a href=\"#e{seq}\">")))
                .unwrap_or_else(|| panic!("no row for #{seq}: {svg}"))
                .to_string()
        };
        assert!(
            row(0).contains(r#"<g class="band">"#)
                && row(0).contains("fault: ip loss 20% to_broker on device"),
            "{}",
            row(0)
        );
        assert!(row(1).contains(r#"class="note cut""#) && row(1).contains("DROPPED by ip loss"));
        assert!(row(2).contains("fault: wifi off on device"));
    }
}
