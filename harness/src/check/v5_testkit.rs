//! A terse builder of recorded 5.0 histories for the v5 checkers' tests:
//! packets are encoded with the real codec, so their sizes are the wire's.

use std::time::Duration;

use bytes::Bytes;

use crate::history::{CloseReason, ConnId, Dir, Event, EventKind, Fate, History};
use crate::mqtt::props::{self, Place};
use crate::mqtt::*;

#[derive(Default)]
pub struct Kit {
    ev: Vec<Event>,
    now: Duration,
}

pub fn p(place: Place, toml_text: &str) -> Properties {
    let t: toml::Table = toml::from_str(toml_text).expect("props parse");
    props::from_toml(&t, place, true).expect("props valid")
}

pub fn pp(toml_text: &str) -> Properties {
    p(Place::Packet(PacketType::Publish), toml_text)
}

pub fn connect(id: &str, clean: bool, ka: u16, props: &str) -> Packet {
    Packet::Connect(Connect {
        version: Version::V5,
        client_id: id.into(),
        clean_start: clean,
        keep_alive: ka,
        will: None,
        username: None,
        password: None,
        properties: p(Place::Packet(PacketType::Connect), props),
    })
}

pub fn connect_will(
    id: &str,
    ka: u16,
    props: &str,
    topic: &str,
    payload: &str,
    will_props: &str,
) -> Packet {
    let Packet::Connect(mut c) = connect(id, true, ka, props) else {
        unreachable!()
    };
    c.will = Some(Will {
        topic: topic.into(),
        payload: Bytes::from(payload.to_string()),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: p(Place::Will, will_props),
    });
    Packet::Connect(c)
}

/// A 3.1.1 CONNECT with clean session and keep alive 60.
pub fn connect311(id: &str) -> Packet {
    let Packet::Connect(mut c) = connect(id, true, 60, "") else {
        unreachable!()
    };
    c.version = Version::V311;
    Packet::Connect(c)
}

/// A frame: `first` byte, the remaining length, `body`.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string (or binary) field.
pub fn s(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

pub fn connack(sp: bool, code: u8, props: &str) -> Packet {
    Packet::ConnAck(ConnAck {
        session_present: sp,
        code,
        properties: p(Place::Packet(PacketType::ConnAck), props),
    })
}

pub fn publish(pid: Option<u16>, qos: u8, topic: &str, payload: &str, props: &str) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::from_u8(qos).unwrap(),
        retain: false,
        topic: topic.into(),
        pid,
        payload: Bytes::from(payload.to_string()),
        properties: pp(props),
    })
}

pub fn retained(mut pk: Packet) -> Packet {
    if let Packet::Publish(x) = &mut pk {
        x.retain = true;
    }
    pk
}

pub fn dup(mut pk: Packet) -> Packet {
    if let Packet::Publish(x) = &mut pk {
        x.dup = true;
    }
    pk
}

pub fn subscribe(pid: u16, filter: &str, qos: u8, options: u8, props: &str) -> Packet {
    Packet::Subscribe(Subscribe {
        pid,
        filters: vec![SubscribeFilter {
            filter: filter.into(),
            qos: QoS::from_u8(qos).unwrap(),
            options,
        }],
        properties: p(Place::Packet(PacketType::Subscribe), props),
    })
}

pub fn suback(pid: u16, codes: &[u8]) -> Packet {
    Packet::SubAck(SubAck {
        pid,
        codes: codes.to_vec(),
        properties: Properties::default(),
    })
}

pub fn ack(t: PacketType, pid: u16, code: u8) -> Packet {
    let a = Ack {
        pid,
        code,
        properties: Properties::default(),
    };
    match t {
        PacketType::PubAck => Packet::PubAck(a),
        PacketType::PubRec => Packet::PubRec(a),
        PacketType::PubRel => Packet::PubRel(a),
        _ => Packet::PubComp(a),
    }
}

pub fn disconnect(code: u8, props: &str) -> Packet {
    Packet::Disconnect(Disconnect {
        code,
        properties: p(Place::Packet(PacketType::Disconnect), props),
    })
}

impl Kit {
    pub fn new() -> Kit {
        Kit::default()
    }

    fn push(&mut self, kind: EventKind) -> &mut Kit {
        self.ev.push(Event {
            seq: self.ev.len() as u64,
            at: self.now,
            kind,
        });
        self
    }

    /// Moves the clock forward.
    pub fn wait(&mut self, ms: u64) -> &mut Kit {
        self.now += Duration::from_millis(ms);
        self
    }

    pub fn open(&mut self, conn: u32, actor: &str) -> &mut Kit {
        self.push(EventKind::ConnOpened {
            conn: ConnId(conn),
            actor: actor.into(),
        })
    }

    fn packet(&mut self, conn: u32, actor: &str, dir: Dir, pk: Packet, fate: Fate) -> &mut Kit {
        self.packet_in(conn, actor, dir, pk, fate, Version::V5)
    }

    fn packet_in(
        &mut self,
        conn: u32,
        actor: &str,
        dir: Dir,
        pk: Packet,
        fate: Fate,
        version: Version,
    ) -> &mut Kit {
        let raw = match &pk {
            Packet::Publish(x) => props::raw_publish(
                x.dup,
                x.qos.as_u8(),
                x.retain,
                &x.topic,
                x.pid,
                &x.properties,
                &x.payload,
            ),
            other => codec::encode(other, version).expect("encodes"),
        };
        self.push(EventKind::Packet {
            conn: ConnId(conn),
            actor: actor.into(),
            dir,
            packet: pk,
            raw,
            fate,
        })
    }

    /// A packet from the client to the broker.
    pub fn up(&mut self, conn: u32, actor: &str, pk: Packet) -> &mut Kit {
        self.packet(conn, actor, Dir::ToBroker, pk, Fate::Forwarded)
    }

    /// A packet from the broker to the client.
    pub fn down(&mut self, conn: u32, actor: &str, pk: Packet) -> &mut Kit {
        self.packet(conn, actor, Dir::ToClient, pk, Fate::Forwarded)
    }

    /// Bytes the codec rejects, recorded as the proxy records them: with
    /// the real codec's error for `version` (a test of a frame the codec
    /// accepts fails here).
    pub fn malformed(
        &mut self,
        conn: u32,
        actor: &str,
        dir: Dir,
        raw: &[u8],
        version: Version,
    ) -> &mut Kit {
        let error = match codec::decode(raw, version) {
            Err(e) => e.to_string(),
            Ok(p) => panic!("the codec accepts {raw:02x?} as {p:?}"),
        };
        self.push(EventKind::Malformed {
            conn: ConnId(conn),
            actor: actor.into(),
            dir,
            raw: Bytes::copy_from_slice(raw),
            error,
        })
    }

    /// A packet from the broker, encoded for `version`.
    pub fn down_in(&mut self, conn: u32, actor: &str, pk: Packet, version: Version) -> &mut Kit {
        self.packet_in(conn, actor, Dir::ToClient, pk, Fate::Forwarded, version)
    }

    pub fn dropped_down(&mut self, conn: u32, actor: &str, pk: Packet) -> &mut Kit {
        self.packet(conn, actor, Dir::ToClient, pk, Fate::Dropped)
    }

    /// Opens a connection and completes a 5.0 CONNECT/CONNACK on it.
    pub fn session(
        &mut self,
        conn: u32,
        actor: &str,
        connect: Packet,
        connack: Packet,
    ) -> &mut Kit {
        self.open(conn, actor)
            .up(conn, actor, connect)
            .wait(1)
            .down(conn, actor, connack)
    }

    pub fn close(&mut self, conn: u32, actor: &str, reason: CloseReason) -> &mut Kit {
        self.push(EventKind::ConnClosed {
            conn: ConnId(conn),
            actor: actor.into(),
            reason,
        })
    }

    /// A fault the proxy applied (`blackhole`, `heal`, `sever`...).
    pub fn fault(&mut self, target: &str, fault: &str) -> &mut Kit {
        self.push(EventKind::Fault {
            target: target.into(),
            fault: fault.into(),
        })
    }

    pub fn broker(&mut self, what: &str) -> &mut Kit {
        self.push(EventKind::Broker { what: what.into() })
    }

    /// The proxy's teardown: what comes after it is not the run's.
    pub fn teardown(&mut self) -> &mut Kit {
        self.push(EventKind::Teardown)
    }

    pub fn step(&mut self, summary: &str) -> &mut Kit {
        let index = self.ev.len();
        self.push(EventKind::Step {
            index,
            summary: summary.into(),
        })
    }

    pub fn history(&self) -> History {
        History::from_events(self.ev.clone())
    }
}

/// A history of a client (`prober`) sending `raw` on purpose, which the
/// codec rejects, in `version`; then a CONNACK with code `answer` if
/// given, the connection's `close` (after how many ms, and how) if given,
/// and 3 s more.
pub fn reaction(
    version: Version,
    raw: &[u8],
    answer: Option<u8>,
    close: Option<(u64, CloseReason)>,
) -> History {
    let mut kit = Kit::new();
    kit.open(1, "prober");
    if !raw.starts_with(&[0x10]) {
        let c = if version == Version::V5 {
            connect("p", true, 60, "")
        } else {
            connect311("p")
        };
        kit.up(1, "prober", c)
            .wait(1)
            .down(1, "prober", connack(false, 0, ""));
    }
    kit.wait(10)
        .step("prober publish raw")
        .malformed(1, "prober", Dir::ToBroker, raw, version);
    if let Some(code) = answer {
        let mut a = vec![0x20, 2, 0, code];
        if version == Version::V5 {
            a = vec![0x20, 3, 0, code, 0];
        }
        let p = codec::decode(&a, version).expect("a CONNACK");
        kit.wait(5).down_in(1, "prober", p, version);
    }
    if let Some((ms, why)) = close {
        kit.wait(ms).close(1, "prober", why);
    }
    kit.wait(3000).step("end");
    kit.history()
}

/// The checker's batch verdict over `h`, after asserting that its
/// incremental form, if it has one (`observe` judges with it), reaches the
/// same verdict — rules, messages, events and notes: a rule added to one
/// form and not the other fails here.
pub fn judge_both(c: &dyn super::Checker, h: &History) -> super::Verdict {
    let batch = c.check(h);
    if let Some(mut live) = c.incremental() {
        for ev in h.iter() {
            live.feed(ev);
        }
        assert_eq!(
            live.verdict(),
            batch,
            "{}: incremental and batch verdicts differ",
            c.name()
        );
    }
    batch
}

/// Feeds `h` to one incremental form of `c`, asserting after every event
/// that its verdict is the batch verdict of the history so far (violations,
/// events and notes); returns the verdict after the first `n` events.
pub fn live_at(c: &dyn super::Checker, h: &History, n: usize) -> super::Verdict {
    let mut live = c.incremental().expect("the checker judges incrementally");
    let mut at_n = live.verdict();
    for k in 0..h.events.len() {
        live.feed(&h.events[k]);
        let prefix = History::from_events(h.events[..=k].to_vec());
        assert_eq!(
            live.verdict(),
            c.check(&prefix),
            "{} after event #{k}: incremental (left) and batch (right) differ",
            c.name()
        );
        if k + 1 == n {
            at_n = live.verdict();
        }
    }
    at_n
}

/// Asserts that the verdict reports `rule` (and only rules in `rules`):
/// the proof a checker can fail on a history that breaks its statement.
pub fn assert_violates(v: &super::Verdict, rule: &str) {
    assert!(
        v.rules().contains(&rule),
        "expected a violation of {rule}, got {:?}",
        v
    );
}
