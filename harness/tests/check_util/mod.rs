//! Shared helpers for the checker tests: a terse history builder, and a
//! loader for recorded histories kept as text fixtures under
//! `tests/fixtures/histories/` (format documented in that folder's README).
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use mqtt_hil::check::{InvariantSpec, Verdict};
use mqtt_hil::history::{CloseReason, ConnId, Delivery, Dir, Event, EventKind, Fate, History};
use mqtt_hil::mqtt::*;

#[derive(Default)]
pub struct T {
    pub ev: Vec<Event>,
    pub now: Duration,
    actors: HashMap<ConnId, String>,
    next: u32,
}

pub fn check(spec: &str, h: &History) -> Verdict {
    let spec: InvariantSpec = toml::from_str(spec).expect("spec parses");
    mqtt_hil::check::build(&spec).check(h)
}

/// Runs one of the checkers every scenario runs, by name.
pub fn always(name: &str, h: &History) -> Verdict {
    mqtt_hil::check::always()
        .into_iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("no always-on checker {name}"))
        .check(h)
}

pub fn will(topic: &str, payload: &str, qos: u8) -> Will {
    Will {
        topic: topic.into(),
        payload: Bytes::from(payload.to_string()),
        qos: QoS::from_u8(qos).unwrap(),
        retain: false,
        properties: Properties::default(),
    }
}

pub fn connect_pkt(id: &str, clean: bool, ka: u16, will: Option<Will>) -> Connect {
    Connect {
        version: Version::V311,
        client_id: id.into(),
        clean_start: clean,
        keep_alive: ka,
        will,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

pub fn publish(
    pid: Option<u16>,
    qos: u8,
    topic: &str,
    payload: &str,
    dup: bool,
    retain: bool,
) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos: QoS::from_u8(qos).unwrap(),
        retain,
        topic: topic.into(),
        pid,
        payload: Bytes::from(payload.to_string()),
        properties: Properties::default(),
    })
}

impl T {
    pub fn new() -> T {
        T::default()
    }
    /// Sets the clock to `ms` since the start (never backwards).
    pub fn at(&mut self, ms: u64) -> &mut Self {
        self.now = self.now.max(Duration::from_millis(ms));
        self
    }
    pub fn wait(&mut self, ms: u64) -> &mut Self {
        self.now += Duration::from_millis(ms);
        self
    }
    pub fn push(&mut self, kind: EventKind) -> u64 {
        self.now += Duration::from_millis(1);
        let seq = self.ev.len() as u64;
        self.ev.push(Event {
            seq,
            at: self.now,
            kind,
        });
        seq
    }
    pub fn open(&mut self, actor: &str) -> ConnId {
        self.next += 1;
        let c = ConnId(self.next);
        self.actors.insert(c, actor.to_string());
        self.push(EventKind::ConnOpened {
            conn: c,
            actor: actor.into(),
        });
        c
    }
    pub fn pkt(&mut self, c: ConnId, dir: Dir, packet: Packet, fate: Fate) -> u64 {
        let actor = self.actors[&c].clone();
        self.push(EventKind::Packet {
            conn: c,
            actor,
            dir,
            packet,
            raw: Bytes::new(),
            fate,
        })
    }
    pub fn actor_of(&self, c: ConnId) -> String {
        self.actors[&c].clone()
    }
    pub fn up(&mut self, c: ConnId, p: Packet) -> u64 {
        self.pkt(c, Dir::ToBroker, p, Fate::Forwarded)
    }
    pub fn down(&mut self, c: ConnId, p: Packet) -> u64 {
        self.pkt(c, Dir::ToClient, p, Fate::Forwarded)
    }
    pub fn connect_full(&mut self, actor: &str, connect: Connect, session_present: bool) -> ConnId {
        let c = self.open(actor);
        self.up(c, Packet::Connect(connect));
        self.down(
            c,
            Packet::ConnAck(ConnAck {
                session_present,
                code: 0,
                properties: Properties::default(),
            }),
        );
        c
    }
    pub fn connect(&mut self, actor: &str, id: &str, clean: bool, ka: u16) -> ConnId {
        self.connect_full(actor, connect_pkt(id, clean, ka, None), false)
    }
    pub fn subscribe(&mut self, c: ConnId, pid: u16, filter: &str, qos: u8) -> &mut Self {
        self.up(
            c,
            Packet::Subscribe(Subscribe {
                pid,
                filters: vec![SubscribeFilter {
                    filter: filter.into(),
                    qos: QoS::from_u8(qos).unwrap(),
                    options: 0,
                }],
                properties: Properties::default(),
            }),
        );
        self.down(
            c,
            Packet::SubAck(SubAck {
                pid,
                codes: vec![qos],
                properties: Properties::default(),
            }),
        );
        self
    }
    pub fn ack(&mut self, c: ConnId, up: bool, kind: &str, pid: u16) -> u64 {
        let a = Ack::new(pid);
        let p = match kind {
            "puback" => Packet::PubAck(a),
            "pubrec" => Packet::PubRec(a),
            "pubrel" => Packet::PubRel(a),
            _ => Packet::PubComp(a),
        };
        if up {
            self.up(c, p)
        } else {
            self.down(c, p)
        }
    }
    /// A complete client -> broker publish flow.
    pub fn publish(
        &mut self,
        c: ConnId,
        pid: u16,
        qos: u8,
        topic: &str,
        payload: &str,
    ) -> &mut Self {
        let pidv = (qos > 0).then_some(pid);
        self.up(c, publish(pidv, qos, topic, payload, false, false));
        match qos {
            1 => {
                self.ack(c, false, "puback", pid);
            }
            2 => {
                self.ack(c, false, "pubrec", pid);
                self.ack(c, true, "pubrel", pid);
                self.ack(c, false, "pubcomp", pid);
            }
            _ => {}
        }
        self
    }
    /// A complete broker -> client flow plus the application delivery.
    pub fn receive(
        &mut self,
        c: ConnId,
        pid: u16,
        qos: u8,
        topic: &str,
        payload: &str,
    ) -> &mut Self {
        let pidv = (qos > 0).then_some(pid);
        self.down(c, publish(pidv, qos, topic, payload, false, false));
        let actor = self.actors[&c].clone();
        self.deliver(&actor, topic, payload, qos);
        match qos {
            1 => {
                self.ack(c, true, "puback", pid);
            }
            2 => {
                self.ack(c, true, "pubrec", pid);
                self.ack(c, false, "pubrel", pid);
                self.ack(c, true, "pubcomp", pid);
            }
            _ => {}
        }
        self
    }
    pub fn deliver(&mut self, actor: &str, topic: &str, payload: &str, qos: u8) -> u64 {
        self.push(EventKind::Delivered {
            actor: actor.into(),
            msg: Delivery {
                topic: topic.into(),
                payload: Bytes::from(payload.to_string()),
                qos: QoS::from_u8(qos).unwrap(),
                retain: false,
                dup: false,
                properties: Default::default(),
            },
        })
    }
    /// Bytes the codec rejected, as the proxy records them.
    pub fn malformed(&mut self, c: ConnId, dir: Dir, raw: &[u8], error: &str) -> u64 {
        let actor = self.actors[&c].clone();
        self.push(EventKind::Malformed {
            conn: c,
            actor,
            dir,
            raw: Bytes::copy_from_slice(raw),
            error: error.into(),
        })
    }
    pub fn disconnect(&mut self, c: ConnId) -> &mut Self {
        self.up(c, Packet::Disconnect(Disconnect::default()));
        self.close(c, CloseReason::ClientClosed)
    }
    pub fn close(&mut self, c: ConnId, reason: CloseReason) -> &mut Self {
        let actor = self.actors[&c].clone();
        self.push(EventKind::ConnClosed {
            conn: c,
            actor,
            reason,
        });
        self
    }
    pub fn fault(&mut self, target: &str, fault: &str) -> &mut Self {
        self.push(EventKind::Fault {
            target: target.into(),
            fault: fault.into(),
        });
        self
    }
    pub fn broker(&mut self, what: &str) -> &mut Self {
        self.push(EventKind::Broker { what: what.into() });
        self
    }
    pub fn board(&mut self, what: &str) -> &mut Self {
        self.push(EventKind::Board { what: what.into() });
        self
    }
    pub fn step(&mut self, s: &str) -> &mut Self {
        let index = self.ev.len();
        self.push(EventKind::Step {
            index,
            summary: s.into(),
        });
        self
    }
    pub fn history(&self) -> History {
        History::from_events(self.ev.clone())
    }
}

/// Loads a recorded history fixture (see `tests/fixtures/histories/README.md`).
pub fn load_fixture(name: &str) -> History {
    let path = format!(
        "{}/tests/fixtures/histories/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut t = T::new();
    let mut conns: HashMap<String, ConnId> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        macro_rules! bad {
            () => {
                panic!("{path}:{}: cannot read `{line}`", n + 1)
            };
        }
        let kv =
            |k: &str| -> Option<&str> { w.iter().find_map(|x| x.strip_prefix(&format!("{k}="))) };
        let flag = |k: &str| w.contains(&k);
        let fate = match kv("fate") {
            None => Fate::Forwarded,
            Some("dropped") => Fate::Dropped,
            Some("held") => Fate::Held,
            Some("released") => Fate::Released,
            Some("duplicated") => Fate::Duplicated,
            Some(_) => bad!(),
        };
        match w[0] {
            x if x.starts_with('@') => {
                t.at(x[1..].parse().unwrap_or_else(|_| bad!()));
            }
            "open" => {
                let c = t.open(w[1]);
                conns.insert(w[2].to_string(), c);
            }
            "close" => {
                let reason = match w[2] {
                    "client" => CloseReason::ClientClosed,
                    "broker" => CloseReason::BrokerClosed,
                    "severed" => CloseReason::Severed,
                    "closed" => CloseReason::Closed,
                    "run_ended" => CloseReason::RunEnded,
                    "refused" => CloseReason::Refused,
                    _ => bad!(),
                };
                t.close(conns[w[1]], reason);
            }
            "fault" => {
                t.fault(w[1], &w[2..].join(" "));
            }
            "broker" => {
                t.broker(w[1]);
            }
            "board" => {
                t.board(w[1]);
            }
            "step" => {
                t.step(&w[1..].join(" "));
            }
            "deliver" => {
                t.deliver(w[1], w[2], w[3], kv("q").unwrap_or("0").parse().unwrap());
            }
            c if conns.contains_key(c) => {
                let c = conns[c];
                let dir = match w[1] {
                    ">" => Dir::ToBroker,
                    "<" => Dir::ToClient,
                    _ => bad!(),
                };
                let num = |i: usize| -> u16 {
                    w.get(i)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| bad!())
                };
                if w[2] == "MALFORMED" {
                    // `CONN > MALFORMED HEX the codec's error...`
                    let raw: Vec<u8> = (0..w[3].len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&w[3][i..i + 2], 16).unwrap_or_else(|_| bad!()))
                        .collect();
                    let actor = t.actor_of(c);
                    t.push(EventKind::Malformed {
                        conn: c,
                        actor,
                        dir,
                        raw: Bytes::from(raw),
                        error: w[4..].join(" "),
                    });
                    continue;
                }
                let p = match w[2] {
                    "CONNECT" => {
                        let wl = kv("will").map(|s| {
                            let parts: Vec<&str> = s.split(':').collect();
                            will(
                                parts[0],
                                parts[1],
                                parts.get(2).map(|q| q.parse().unwrap()).unwrap_or(0),
                            )
                        });
                        Packet::Connect(connect_pkt(
                            if w[3] == "\"\"" { "" } else { w[3] },
                            kv("clean") != Some("0"),
                            kv("ka").map(|k| k.parse().unwrap()).unwrap_or(0),
                            wl,
                        ))
                    }
                    "CONNACK" => Packet::ConnAck(ConnAck {
                        session_present: kv("sp") == Some("1"),
                        code: kv("code").map(|k| k.parse().unwrap()).unwrap_or(0),
                        properties: Properties::default(),
                    }),
                    "PUBLISH" => {
                        let q: u8 = kv("q").unwrap_or("0").parse().unwrap();
                        publish(
                            kv("pid").map(|p| p.parse().unwrap()),
                            q,
                            kv("t").unwrap_or_else(|| bad!()),
                            kv("p").unwrap_or(""),
                            flag("dup"),
                            flag("retain"),
                        )
                    }
                    "PUBACK" => Packet::PubAck(Ack::new(num(3))),
                    "PUBREC" => Packet::PubRec(Ack::new(num(3))),
                    "PUBREL" => Packet::PubRel(Ack::new(num(3))),
                    "PUBCOMP" => Packet::PubComp(Ack::new(num(3))),
                    "SUBSCRIBE" => Packet::Subscribe(Subscribe {
                        pid: num(3),
                        filters: vec![SubscribeFilter {
                            filter: w[4].into(),
                            qos: QoS::from_u8(kv("q").unwrap_or("0").parse().unwrap()).unwrap(),
                            options: 0,
                        }],
                        properties: Properties::default(),
                    }),
                    "SUBACK" => Packet::SubAck(SubAck {
                        pid: num(3),
                        codes: vec![num(4) as u8],
                        properties: Properties::default(),
                    }),
                    "PINGREQ" => Packet::PingReq,
                    "PINGRESP" => Packet::PingResp,
                    "DISCONNECT" => Packet::Disconnect(Disconnect::default()),
                    _ => bad!(),
                };
                t.pkt(c, dir, p, fate);
            }
            _ => bad!(),
        }
    }
    t.history()
}

/// Writes a recorded history in the fixture format `load_fixture` reads, so
/// real runs can become checker fixtures (see tests/black_box.rs). Events
/// the format has no line for (UART lines, expectations, actor reports)
/// are left out; payloads must have no whitespace.
pub fn to_hist(h: &History) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut names: HashMap<ConnId, String> = HashMap::new();
    let mut last_ms = u64::MAX;
    for e in &h.events {
        let ms = e.at.as_millis() as u64;
        let line = match &e.kind {
            EventKind::ConnOpened { conn, actor } => {
                names.insert(*conn, format!("c{}", conn.0));
                format!("open {actor} c{}", conn.0)
            }
            EventKind::ConnClosed { conn, reason, .. } => {
                let r = match reason {
                    CloseReason::ClientClosed => "client",
                    CloseReason::BrokerClosed => "broker",
                    CloseReason::Severed => "severed",
                    CloseReason::Closed => "closed",
                    CloseReason::Refused => "refused",
                    _ => "run_ended",
                };
                format!("close c{} {r}", conn.0)
            }
            EventKind::Fault { target, fault } => format!("fault {target} {fault}"),
            EventKind::Step { summary, .. } => format!("step {summary}"),
            EventKind::Malformed {
                conn,
                dir,
                raw,
                error,
                ..
            } => format!(
                "c{} {} MALFORMED {} {error}",
                conn.0,
                if *dir == Dir::ToBroker { ">" } else { "<" },
                raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            EventKind::Broker { what } => {
                format!("broker {}", what.split_whitespace().next().unwrap_or(""))
            }
            EventKind::Board { what } if !what.starts_with("crashed") => format!("board {what}"),
            EventKind::Delivered { actor, msg } => format!(
                "deliver {actor} {} {} q={}",
                msg.topic,
                String::from_utf8_lossy(&msg.payload),
                msg.qos.as_u8()
            ),
            EventKind::Packet {
                conn,
                dir,
                packet,
                fate,
                ..
            } => {
                let c = names
                    .get(conn)
                    .cloned()
                    .unwrap_or_else(|| format!("c{}", conn.0));
                let arrow = if *dir == Dir::ToBroker { ">" } else { "<" };
                let body = match packet {
                    Packet::Connect(cp) => {
                        let mut s = format!(
                            "CONNECT {} clean={} ka={}",
                            // An empty client id is written `""`.
                            if cp.client_id.is_empty() {
                                "\"\""
                            } else {
                                cp.client_id.as_str()
                            },
                            cp.clean_start as u8,
                            cp.keep_alive
                        );
                        if let Some(w) = &cp.will {
                            let _ = write!(
                                s,
                                " will={}:{}:{}",
                                w.topic,
                                String::from_utf8_lossy(&w.payload),
                                w.qos.as_u8()
                            );
                        }
                        s
                    }
                    Packet::ConnAck(a) => format!(
                        "CONNACK sp={}{}",
                        a.session_present as u8,
                        if a.code != 0 {
                            format!(" code={}", a.code)
                        } else {
                            String::new()
                        }
                    ),
                    Packet::Publish(p) => {
                        let mut s = format!("PUBLISH q={}", p.qos.as_u8());
                        if let Some(pid) = p.pid {
                            let _ = write!(s, " pid={pid}");
                        }
                        let _ = write!(
                            s,
                            " t={} p={}",
                            p.topic,
                            String::from_utf8_lossy(&p.payload)
                        );
                        if p.dup {
                            s += " dup";
                        }
                        if p.retain {
                            s += " retain";
                        }
                        s
                    }
                    Packet::PubAck(a) => format!("PUBACK {}", a.pid),
                    Packet::PubRec(a) => format!("PUBREC {}", a.pid),
                    Packet::PubRel(a) => format!("PUBREL {}", a.pid),
                    Packet::PubComp(a) => format!("PUBCOMP {}", a.pid),
                    Packet::Subscribe(s) => format!(
                        "SUBSCRIBE {} {} q={}",
                        s.pid,
                        s.filters[0].filter,
                        s.filters[0].qos.as_u8()
                    ),
                    Packet::SubAck(s) => format!("SUBACK {} {}", s.pid, s.codes[0]),
                    Packet::PingReq => "PINGREQ".into(),
                    Packet::PingResp => "PINGRESP".into(),
                    Packet::Disconnect(_) => "DISCONNECT".into(),
                    _ => continue,
                };
                let fate = match fate {
                    Fate::Forwarded => "",
                    Fate::Dropped => " fate=dropped",
                    Fate::Held => " fate=held",
                    Fate::Released => " fate=released",
                    Fate::Duplicated => " fate=duplicated",
                };
                format!("{c} {arrow} {body}{fate}")
            }
            _ => continue,
        };
        if ms != last_ms {
            let _ = writeln!(out, "@{ms}");
            last_ms = ms;
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The verdict of an always-on checker after each event of `h`, from its
/// incremental form (as `observe` judges), each checked equal to the
/// batch verdict of that prefix: what a live session would have shown at
/// that point.
pub fn always_at_every_event(name: &str, h: &History) -> Vec<Verdict> {
    let c = mqtt_hil::check::always()
        .into_iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("no always-on checker {name}"));
    let mut live = c
        .incremental()
        .unwrap_or_else(|| panic!("{name} has no incremental form"));
    let mut out = Vec::new();
    for k in 0..h.events.len() {
        live.feed(&h.events[k]);
        let v = live.verdict();
        let prefix = History::from_events(h.events[..=k].to_vec());
        assert_eq!(v, c.check(&prefix), "{name} after event #{k}");
        out.push(v);
    }
    out
}
