//! The incremental checkers (`Checker::incremental`, what `observe` judges
//! with as events come) give exactly the verdicts of the batch checkers:
//! over every recorded history in tests/fixtures/histories — good ones and
//! violating ones — and over generated histories full of reconnects,
//! faults, undecodable frames and broker restarts, compared after every
//! event (each prefix of a history is a history `observe` may be asked to
//! judge), violations, events and notes alike.
use crate::check_util::*;

use std::collections::BTreeMap;

use bytes::Bytes;
use mqtt_hil::check::{self, Checker, InvariantSpec};
use mqtt_hil::history::{CloseReason, ConnId, Dir, EventKind, Fate, History};
use mqtt_hil::mqtt::props::{
    CONTENT_TYPE, MAXIMUM_PACKET_SIZE, MESSAGE_EXPIRY, RECEIVE_MAXIMUM, SUBSCRIPTION_ID,
    TOPIC_ALIAS, TOPIC_ALIAS_MAXIMUM,
};
use mqtt_hil::mqtt::{
    Ack, ConnAck, Connect, Disconnect, Packet, PropValue, Properties, Property, QoS, Version,
};

/// Every checker `observe` may run live (the protocol rules and its
/// default checks), and variants of their settings that move a verdict.
fn checkers() -> Vec<(String, Box<dyn Checker>)> {
    let mut out: Vec<(String, Box<dyn Checker>)> = check::always()
        .into_iter()
        .map(|c| (c.name().to_string(), c))
        .collect();
    let specs = [
        r#"check = "will""#,
        r#"check = "keepalive""#,
        r#"check = "resubscribe""#,
        r#"check = "backoff""#,
        "check = \"backoff\"\nmax_per_second = 1",
        "check = \"backoff\"\nmax_per_second = 2",
        "check = \"backoff\"\nactor = \"cloud\"\nmax_per_second = 1",
        "check = \"resubscribe\"\nwithin = \"300ms\"",
    ];
    for s in specs {
        let spec: InvariantSpec = toml::from_str(s).expect("spec parses");
        out.push((s.replace('\n', " "), check::build(&spec)));
    }
    out
}

/// Feeds `h` to the checker's incremental form and compares, after every
/// event, with the batch verdict of the history so far. Returns how many
/// of those verdicts had a violation, or `None` when the checker has no
/// incremental form.
fn compare(label: &str, name: &str, c: &dyn Checker, h: &History) -> Option<usize> {
    let mut live = c.incremental()?;
    let mut violating = 0;
    let empty = History::default();
    assert_eq!(
        live.verdict(),
        c.check(&empty),
        "{name} on nothing ({label})"
    );
    for k in 0..h.events.len() {
        live.feed(&h.events[k]);
        let prefix = History::from_events(h.events[..=k].to_vec());
        let want = c.check(&prefix);
        let got = live.verdict();
        assert_eq!(
            got, want,
            "{name} after event #{} of {label}: incremental (left) and batch (right) disagree",
            h.events[k].seq
        );
        violating += usize::from(!want.ok());
    }
    Some(violating)
}

fn fixtures() -> Vec<(String, History)> {
    let dir = format!("{}/tests/fixtures/histories", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".hist"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "only {} fixtures in {dir}", names.len());
    names
        .into_iter()
        .map(|n| {
            let h = load_fixture(&n);
            (n, h)
        })
        .collect()
}

/// A small deterministic generator (xorshift), so that a failure names a
/// seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Frames the codec rejects, each for another reason: a reserved packet
/// type, PUBREL's reserved flags, a truncated CONNECT, a SUBSCRIBE without
/// filters.
const BAD_FRAMES: [&[u8]; 4] = [
    &[0x00, 0x00],
    &[0x60, 0x02, 0x00, 0x01],
    &[0x10, 0x00],
    &[0x82, 0x02, 0x00, 0x01],
];

/// 5.0 limits small enough for the generated traffic to break them:
/// Receive Maximum and Maximum Packet Size.
fn limits(receive: u16, size: u32) -> Properties {
    Properties(vec![
        Property {
            id: RECEIVE_MAXIMUM,
            value: PropValue::U16(receive),
        },
        Property {
            id: MAXIMUM_PACKET_SIZE,
            value: PropValue::U32(size),
        },
    ])
}

/// 5.0 message properties, some of each kind the forwarding rules read.
fn message_props(r: &mut Rng) -> Properties {
    let mut p = Vec::new();
    if r.chance(50) {
        p.push(Property {
            id: CONTENT_TYPE,
            value: PropValue::Str(["a/b", "c/d"][r.below(2) as usize].into()),
        });
    }
    if r.chance(40) {
        p.push(Property {
            id: MESSAGE_EXPIRY,
            value: PropValue::U32(r.below(3) as u32),
        });
    }
    for k in 0..r.below(3) {
        p.push(Property {
            id: mqtt_hil::mqtt::props::USER_PROPERTY,
            value: PropValue::Pair(format!("k{k}"), "v".into()),
        });
    }
    Properties(p)
}

/// A connection of `actor` that CONNECTs, 3.1.1 or 5.0 (with small limits
/// both ways), and is answered; the device's with a will when `wills`.
fn connect(t: &mut T, r: &mut Rng, actor: &str, wills: bool) -> ConnId {
    let ka = [0u16, 1, 2, 5][r.below(4) as usize];
    let v5 = r.chance(35);
    let w = (wills && actor == "device").then(|| will("dut/1/status", "offline", 1));
    let mut c: Connect = connect_pkt(&format!("{actor}-1"), r.chance(50), ka, w);
    let mut a = ConnAck {
        session_present: r.chance(40),
        code: 0,
        properties: Properties::default(),
    };
    if v5 {
        c.version = Version::V5;
        c.properties = limits(2, 40);
        a.properties = limits(1, 30);
        if r.chance(50) {
            a.properties.0.push(Property {
                id: TOPIC_ALIAS_MAXIMUM,
                value: PropValue::U16(2),
            });
        }
    }
    let id = t.open(actor);
    t.up(id, Packet::Connect(c));
    t.down(id, Packet::ConnAck(a));
    id
}

/// A session of a device and a cloud observer as a bench records it:
/// reconnects at any pace (with and without sessions and keep alive, 3.1.1
/// and 5.0), subscriptions, QoS 0-2 exchanges (some left unacknowledged),
/// 5.0 messages with properties and the copies the broker forwards, topic
/// aliases (set, named, refused),
/// pings, faults, broker restarts, undecodable frames, steps, and
/// sometimes a teardown. Packets get bytes of a plausible size. One seed in
/// three gives the device a will, which the broker publishes to the cloud
/// now and then (in time or not), and which the device sometimes
/// publishes itself as a retained status.
fn generated(seed: u64) -> History {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    // Will traffic draws from its own generator, so that the rest of the
    // history is the same with or without it.
    let wills = seed.is_multiple_of(3);
    let mut w = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
    let mut t = T::new();
    let mut open: BTreeMap<&str, ConnId> = BTreeMap::new();
    let mut pid = 1u16;
    let len = 20 + r.below(100);
    while (t.ev.len() as u64) < len {
        t.wait(r.below(1500));
        let actor = if r.chance(70) { "device" } else { "cloud" };
        let conn = open.get(actor).copied();
        pid = pid % 50 + 1;
        match (r.below(16), conn) {
            (0, _) if r.chance(30) => {
                // A reconnect loop: attempts 50 ms apart.
                for _ in 0..6 {
                    t.wait(50);
                    let c = connect(&mut t, &mut r, actor, wills);
                    open.insert(actor, c);
                }
            }
            (0..=2, _) => {
                if let Some(c) = open.remove(actor) {
                    if r.chance(50) {
                        t.close(c, CloseReason::BrokerClosed);
                    }
                }
                let c = if r.chance(80) {
                    connect(&mut t, &mut r, actor, wills)
                } else {
                    t.open(actor)
                };
                open.insert(actor, c);
            }
            (3, Some(c)) => {
                let f = ["dut/+/cmd", "dut/#", "a/b"][r.below(3) as usize];
                t.subscribe(c, pid, f, r.below(3) as u8);
            }
            (4..=5, Some(c)) => {
                let qos = r.below(3) as u8;
                let topic = ["dut/1/data", "a/b"][r.below(2) as usize];
                let payload = "n=".to_string() + &"7".repeat(r.below(30) as usize);
                match (actor, r.chance(30)) {
                    // Left unacknowledged, towards the broker or the client.
                    (_, true) => {
                        let p = publish(Some(pid), 1, topic, &payload, false, false);
                        if r.chance(50) {
                            t.up(c, p);
                        } else {
                            t.down(c, p);
                        }
                    }
                    ("device", false) => {
                        t.publish(c, pid, qos, topic, &payload);
                    }
                    _ => {
                        t.receive(c, pid, qos, topic, &payload);
                    }
                }
            }
            (6, Some(c)) => {
                t.up(c, Packet::PingReq);
                if r.chance(80) {
                    t.down(c, Packet::PingResp);
                }
            }
            (7, Some(c)) => {
                let raw = BAD_FRAMES[r.below(BAD_FRAMES.len() as u64) as usize];
                let dir = if r.chance(80) {
                    Dir::ToBroker
                } else {
                    Dir::ToClient
                };
                t.malformed(c, dir, raw, "rejected");
            }
            (8, Some(c)) => {
                open.remove(actor);
                if r.chance(50) {
                    t.disconnect(c);
                } else {
                    let why = [
                        CloseReason::ClientClosed,
                        CloseReason::Severed,
                        CloseReason::RunEnded,
                    ][r.below(3) as usize]
                        .clone();
                    t.close(c, why);
                }
            }
            (9, _) => {
                let f = ["blackhole", "heal", "sever", "refuse"][r.below(4) as usize];
                t.fault(if r.chance(70) { "device" } else { "*" }, f);
            }
            (10, _) => {
                let w = ["restart", "kill", "started"][r.below(3) as usize];
                t.broker(w);
            }
            (11, _) => {
                let s = ["device publish raw", "cloud subscribe", "device connect"]
                    [r.below(3) as usize];
                t.step(s);
            }
            (12, Some(c)) => {
                let fate = [Fate::Dropped, Fate::Held, Fate::Released, Fate::Duplicated]
                    [r.below(4) as usize];
                t.pkt(c, Dir::ToClient, Packet::PubAck(Ack::new(pid)), fate);
            }
            (13, _) if r.chance(20) => {
                t.push(EventKind::Teardown);
            }
            (14, Some(c)) => {
                // A 5.0 message with properties, and the copy the broker
                // sends the other actor: as published, or with them
                // altered, a subscription id added, late.
                let other = open.get(if actor == "device" { "cloud" } else { "device" });
                let mut p = publish(
                    None,
                    0,
                    "dut/1/data",
                    &format!("m{pid}"),
                    false,
                    r.chance(20),
                );
                if let Packet::Publish(x) = &mut p {
                    x.properties = message_props(&mut r);
                }
                // Half the time the other actor subscribed first, so that
                // the copy is owed to its session and paired (a copy the
                // session was never owed is not judged by v5_forwarding).
                if let (Some(&o), true) = (other, pid.is_multiple_of(2)) {
                    t.subscribe(o, pid, "dut/1/data", 0);
                }
                t.up(c, p.clone());
                if let (Some(&o), Packet::Publish(x)) = (other, &mut p) {
                    t.wait(r.below(2500));
                    if r.chance(30) {
                        x.properties = message_props(&mut r);
                    }
                    if r.chance(30) {
                        x.properties.0.push(Property {
                            id: SUBSCRIPTION_ID,
                            value: PropValue::VarInt(1 + r.below(2) as u32),
                        });
                    }
                    x.retain = x.retain && r.chance(50);
                    t.down(o, p);
                }
            }
            (15, Some(c)) => {
                // A topic alias (0-3), set or only named, answered with a
                // PUBACK or a DISCONNECT 0x94, the payload maybe going on
                // to the other actor.
                let other = open.get(if actor == "device" { "cloud" } else { "device" });
                let payload = format!("a{}", r.below(3));
                let topic = if r.chance(40) { "dut/1/data" } else { "" };
                let mut p = publish(Some(pid), 1, topic, &payload, false, false);
                if let Packet::Publish(x) = &mut p {
                    x.properties.0.push(Property {
                        id: TOPIC_ALIAS,
                        value: PropValue::U16(r.below(4) as u16),
                    });
                }
                t.up(c, p);
                if r.chance(70) {
                    t.down(c, Packet::PubAck(Ack::new(pid)));
                } else if r.chance(50) {
                    t.down(
                        c,
                        Packet::Disconnect(Disconnect {
                            code: 0x94,
                            properties: Properties::default(),
                        }),
                    );
                }
                if let (Some(&o), true) = (other, r.chance(50)) {
                    t.down(o, publish(None, 0, "dut/1/data", &payload, false, false));
                }
            }
            _ => {
                t.deliver(actor, "dut/1/data", "n=1", QoS::AtLeastOnce as u8);
            }
        }
        if wills {
            let (dev, cloud) = (open.get("device").copied(), open.get("cloud").copied());
            if let (Some(c), true) = (cloud, w.chance(12)) {
                t.wait(w.below(1200));
                t.down(
                    c,
                    publish(None, 0, "dut/1/status", "offline", false, w.chance(20)),
                );
            }
            if let (Some(d), true) = (dev, w.chance(5)) {
                t.up(d, publish(None, 0, "dut/1/status", "offline", false, true));
                if let (Some(c), true) = (cloud, w.chance(70)) {
                    t.down(c, publish(None, 0, "dut/1/status", "offline", false, false));
                }
            }
        }
    }
    let mut h = t.history();
    for ev in h.events.iter_mut() {
        if let EventKind::Packet { packet, raw, .. } = &mut ev.kind {
            let size = match packet {
                Packet::Publish(p) => 4 + p.topic.len() + p.payload.len(),
                _ => 4,
            };
            *raw = Bytes::from(vec![0u8; size]);
        }
    }
    h
}

/// Runs every checker over every history; returns per incremental checker
/// how many compared verdicts had a violation.
fn judge_all(histories: &[(String, History)]) -> BTreeMap<String, usize> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (name, c) in checkers() {
        for (label, h) in histories {
            if let Some(n) = compare(label, &name, c.as_ref(), h) {
                *seen.entry(name.clone()).or_default() += n;
            }
        }
    }
    seen
}

#[test]
fn incremental_verdicts_equal_the_batch_verdicts_over_the_recorded_histories() {
    let seen = judge_all(&fixtures());
    assert!(
        seen.keys().any(|k| k.starts_with("check = \"backoff\"")),
        "backoff judges incrementally: {seen:?}"
    );
    // The recorded tight reconnect loop breaks the default backoff rule,
    // so the comparison covers a violation, not only clean verdicts.
    assert!(
        seen[r#"check = "backoff""#] > 0,
        "no recorded history broke backoff: {seen:?}"
    );
}

#[test]
fn incremental_verdicts_equal_the_batch_verdicts_over_generated_histories() {
    let histories: Vec<(String, History)> = (1..=150)
        .map(|seed| (format!("generated history, seed {seed}"), generated(seed)))
        .collect();
    let seen = judge_all(&histories);
    for (name, violating) in &seen {
        assert!(
            *violating > 0,
            "no generated history made {name} find a violation, so the comparison proved little: {seen:?}"
        );
    }
}
