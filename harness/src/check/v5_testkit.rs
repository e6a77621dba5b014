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
            other => codec::encode(other, Version::V5).expect("encodes"),
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

    pub fn broker(&mut self, what: &str) -> &mut Kit {
        self.push(EventKind::Broker { what: what.into() })
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

/// Asserts that the verdict reports `rule` (and only rules in `rules`):
/// the proof a checker can fail on a history that breaks its statement.
pub fn assert_violates(v: &super::Verdict, rule: &str) {
    assert!(
        v.rules().contains(&rule),
        "expected a violation of {rule}, got {:?}",
        v
    );
}
