//! Real traffic: streams recorded between mosquitto 2.0 clients and broker
//! on loopback (see `fixtures/codec/README.md`). Every frame of every
//! fixture must decode, re-encode to the same bytes, and come out the same
//! whichever way the stream is chunked; then known fields are checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use mqtt_hil::mqtt::codec::{encode, Decoder};
use mqtt_hil::mqtt::*;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codec")
}

fn read_hex(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let hex: Vec<u8> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect();
    assert!(
        hex.len().is_multiple_of(2),
        "{}: odd number of hex digits",
        path.display()
    );
    hex.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Decodes a whole stream, feeding it `chunk` bytes at a time.
fn decode_stream(
    data: &[u8],
    version: Version,
    chunk: usize,
    name: &str,
) -> (Vec<Packet>, Version) {
    let mut d = Decoder::new(version);
    let mut out = Vec::new();
    for part in data.chunks(chunk.max(1)) {
        d.feed(part);
        while let Some((raw, res)) = d.next_frame().unwrap_or_else(|e| panic!("{name}: {e}")) {
            let p = res.unwrap_or_else(|e| panic!("{name}: frame {raw:02x?}: {e}"));
            let again = encode(&p, d.version()).unwrap_or_else(|e| panic!("{name}: {e}: {p:?}"));
            assert_eq!(again, raw, "{name}: re-encoding {p:?}");
            out.push(p);
        }
    }
    assert!(d.pending().is_empty(), "{name}: trailing partial frame");
    (out, d.version())
}

/// One relayed connection: what the client sent and what the broker sent.
struct Conn {
    version: Version,
    client: Vec<Packet>,
    broker: Vec<Packet>,
}

fn load_all() -> BTreeMap<String, Conn> {
    let mut conns = BTreeMap::new();
    let mut names: Vec<_> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".client.hex").map(str::to_owned)
        })
        .collect();
    names.sort();
    for name in names {
        let dir = fixture_dir();
        let client = read_hex(&dir.join(format!("{name}.client.hex")));
        let broker = read_hex(&dir.join(format!("{name}.broker.hex")));
        let mut reference = None;
        for chunk in [usize::MAX, 1, 3, 7] {
            // The client side learns its version from its CONNECT; the
            // broker side is told, as the proxy does.
            let (c, version) = decode_stream(&client, Version::V311, chunk, &name);
            let (b, _) = decode_stream(&broker, version, chunk, &name);
            match &reference {
                None => {
                    reference = Some(Conn {
                        version,
                        client: c,
                        broker: b,
                    })
                }
                Some(r) => {
                    assert_eq!(r.client, c, "{name}: chunk {chunk}");
                    assert_eq!(r.broker, b, "{name}: chunk {chunk}");
                }
            }
        }
        conns.insert(name, reference.unwrap());
    }
    conns
}

fn connect(c: &Conn) -> &Connect {
    match &c.client[0] {
        Packet::Connect(x) => x,
        p => panic!("first client packet is {p:?}"),
    }
}

fn connack(c: &Conn) -> &ConnAck {
    match &c.broker[0] {
        Packet::ConnAck(x) => x,
        p => panic!("first broker packet is {p:?}"),
    }
}

fn publishes(list: &[Packet]) -> Vec<&Publish> {
    list.iter()
        .filter_map(|p| match p {
            Packet::Publish(x) => Some(x),
            _ => None,
        })
        .collect()
}

fn types(list: &[Packet]) -> Vec<PacketType> {
    list.iter().map(Packet::packet_type).collect()
}

fn prop(props: &Properties, id: u8) -> Vec<&PropValue> {
    props
        .0
        .iter()
        .filter(|p| p.id == id)
        .map(|p| &p.value)
        .collect()
}

fn pair(k: &str, v: &str) -> PropValue {
    PropValue::Pair(k.into(), v.into())
}

#[test]
fn every_fixture_decodes_and_reencodes_byte_for_byte() {
    let all = load_all();
    assert!(all.len() >= 19, "only {} fixtures", all.len());
    let frames: usize = all.values().map(|c| c.client.len() + c.broker.len()).sum();
    assert!(frames >= 100, "only {frames} frames");
    let mut seen: Vec<PacketType> = all
        .values()
        .flat_map(|c| types(&c.client).into_iter().chain(types(&c.broker)))
        .collect();
    seen.sort();
    seen.dedup();
    // Every type but AUTH, which mosquitto does not send without a plugin.
    assert_eq!(seen.len(), 14, "{seen:?}");
}

#[test]
fn v311_publishes_at_each_qos() {
    let all = load_all();
    let c = &all["v311-pub-qos0.1"];
    assert_eq!(c.version, Version::V311);
    assert_eq!(connect(c).client_id, "pub311-q0");
    assert!(connect(c).clean_start);
    assert_eq!(connack(c).code, 0);
    let p = publishes(&c.client)[0];
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], p.qos, p.pid),
        ("hil/t0", &b"hello"[..], QoS::AtMostOnce, None)
    );

    let c = &all["v311-pub-qos1-retain.1"];
    let p = publishes(&c.client)[0];
    assert!(p.retain);
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert_eq!(types(&c.broker), [PacketType::ConnAck, PacketType::PubAck]);
    assert_eq!(c.broker[1].pid(), p.pid);

    let c = &all["v311-pub-qos2-will-login.1"];
    let con = connect(c);
    assert_eq!(con.username.as_deref(), Some("alice"));
    assert_eq!(con.password.as_deref(), Some(&b"secret"[..]));
    assert_eq!(con.keep_alive, 30);
    let will = con.will.as_ref().unwrap();
    assert_eq!(
        (
            will.topic.as_str(),
            &will.payload[..],
            will.qos,
            will.retain
        ),
        ("hil/will", &b"gone"[..], QoS::AtLeastOnce, true)
    );
    assert_eq!(
        types(&c.client),
        [
            PacketType::Connect,
            PacketType::Publish,
            PacketType::PubRel,
            PacketType::Disconnect
        ]
    );
    assert_eq!(
        types(&c.broker),
        [PacketType::ConnAck, PacketType::PubRec, PacketType::PubComp]
    );
}

#[test]
fn v311_persistent_session_resumes_with_queued_message() {
    let all = load_all();
    let first = &all["v311-sub-persistent.1"];
    assert!(!connect(first).clean_start);
    let Packet::Subscribe(s) = &first.client[1] else {
        panic!()
    };
    let filters: Vec<_> = s
        .filters
        .iter()
        .map(|f| (f.filter.as_str(), f.qos, f.options))
        .collect();
    assert_eq!(
        filters,
        [
            ("hil/+/x", QoS::ExactlyOnce, 0),
            ("hil/retained", QoS::ExactlyOnce, 0)
        ]
    );
    let Packet::SubAck(a) = &first.broker[1] else {
        panic!()
    };
    assert_eq!(a.codes, [2, 2]);
    let retained = publishes(&first.broker)
        .into_iter()
        .find(|p| p.topic == "hil/retained")
        .unwrap();
    assert!(retained.retain);
    assert_eq!(&retained.payload[..], b"keep");

    let second = &all["v311-sub-persistent.2"];
    assert!(connack(second).session_present);
    assert_eq!(&publishes(&second.broker)[0].payload[..], b"offline");

    let third = &all["v311-sub-persistent.3"];
    let Packet::Unsubscribe(u) = &third.client[2] else {
        panic!()
    };
    assert_eq!(u.filters, ["hil/+/x"]);
    assert_eq!(
        third.broker.last().unwrap().packet_type(),
        PacketType::UnsubAck
    );
}

#[test]
fn v311_keepalive_and_will_delivery() {
    let all = load_all();
    let c = &all["v311-keepalive.1"];
    assert_eq!(connect(c).keep_alive, 5);
    assert!(c.client.contains(&Packet::PingReq));
    assert!(c.broker.contains(&Packet::PingResp));

    let c = &all["v311-will-delivery.1"];
    let will = publishes(&c.broker)[0];
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("hil/will/dies311", &b"offline"[..])
    );
}

#[test]
fn v31_uses_mqisdp() {
    let all = load_all();
    let sub = &all["v31-pub-sub.1"];
    assert_eq!(sub.version, Version::V31);
    assert_eq!(connect(sub).client_id, "sub31");
    assert_eq!(publishes(&sub.broker).len(), 2);
    let publ = connect(&all["v31-pub-sub.2"]);
    assert_eq!(publ.version, Version::V31);
    assert_eq!(publ.username.as_deref(), Some("bob"));
    assert_eq!(publ.will.as_ref().unwrap().topic, "hil/31/will");
}

#[test]
fn v5_properties_everywhere() {
    let all = load_all();
    let c = &all["v5-pub-props.1"];
    assert_eq!(c.version, Version::V5);
    let con = connect(c);
    assert_eq!(prop(&con.properties, 0x11), [&PropValue::U32(3600)]);
    assert_eq!(prop(&con.properties, 0x21), [&PropValue::U16(20)]);
    assert_eq!(prop(&con.properties, 0x27), [&PropValue::U32(100_000)]);
    assert_eq!(prop(&con.properties, 0x17), [&PropValue::Byte(1)]);
    assert_eq!(prop(&con.properties, 0x26), [&pair("ck", "cv")]);
    let will = con.will.as_ref().unwrap();
    assert_eq!(will.topic, "hil/will5");
    assert_eq!(will.qos, QoS::ExactlyOnce);
    assert_eq!(prop(&will.properties, 0x18), [&PropValue::U32(5)]);
    assert_eq!(prop(&will.properties, 0x26), [&pair("wk", "wv")]);
    assert_eq!(
        prop(&will.properties, 0x03),
        [&PropValue::Str("text/plain".into())]
    );
    let p = publishes(&c.client)[0];
    assert_eq!(
        prop(&p.properties, 0x26),
        [&pair("a", "b"), &pair("a", "c")]
    );
    assert_eq!(prop(&p.properties, 0x02), [&PropValue::U32(60)]);
    assert_eq!(
        prop(&p.properties, 0x08),
        [&PropValue::Str("hil/reply".into())]
    );
    assert_eq!(
        prop(&p.properties, 0x09),
        [&PropValue::Bin(Bytes::from_static(b"corr-1"))]
    );
    assert_eq!(prop(&p.properties, 0x01), [&PropValue::Byte(1)]);
    let ack = connack(c);
    assert_eq!(prop(&ack.properties, 0x22), [&PropValue::U16(10)]);
    // Short 5.0 acks: remaining length 2, success, no properties.
    assert_eq!(c.broker[1], Packet::PubRec(Ack::new(p.pid.unwrap())));
}

#[test]
fn v5_subscription_identifier_and_unsubscribe_codes() {
    let all = load_all();
    let c = &all["v5-sub-options.1"];
    let Packet::Subscribe(s) = &c.client[1] else {
        panic!()
    };
    assert_eq!(prop(&s.properties, 0x0B), [&PropValue::VarInt(7)]);
    assert_eq!(prop(&s.properties, 0x26), [&pair("s", "t")]);
    let got = publishes(&c.broker);
    assert_eq!(got.len(), 3);
    for p in &got {
        assert_eq!(prop(&p.properties, 0x0B), [&PropValue::VarInt(7)], "{p:?}");
    }
    assert_eq!(prop(&got[0].properties, 0x26), [&pair("from", "pub")]);

    let c = &all["v5-sub-options.2"];
    let codes: Vec<_> = c
        .broker
        .iter()
        .filter_map(|p| match p {
            Packet::UnsubAck(u) => Some(u.codes.clone()),
            _ => None,
        })
        .collect();
    // 0x11: no subscription existed (the session started clean).
    assert_eq!(codes, [vec![0x11], vec![0x11]]);
}

#[test]
fn v5_topic_alias_empty_topic_and_reason_code_acks() {
    let all = load_all();
    let c = &all["v5-topic-alias.1"];
    let p = publishes(&c.client);
    assert_eq!(p[0].topic, "hil/alias");
    assert_eq!(p[1].topic, "");
    assert_eq!(prop(&p[1].properties, 0x23), [&PropValue::U16(1)]);
    // 0x10: no matching subscribers, a 3-byte ack with no property length.
    let Packet::PubAck(a) = &c.broker[1] else {
        panic!()
    };
    assert_eq!((a.code, a.properties.is_empty()), (0x10, true));
}

#[test]
fn v5_connack_refuses_an_unknown_auth_method() {
    let all = load_all();
    let c = &all["v5-bad-auth-method.1"];
    let con = connect(c);
    assert_eq!(
        prop(&con.properties, 0x15),
        [&PropValue::Str("SCRAM-SHA-1".into())]
    );
    assert_eq!(
        prop(&con.properties, 0x16),
        [&PropValue::Bin(Bytes::from_static(b"xyz"))]
    );
    assert_eq!(connack(c).code, 0x8C);
    assert!(!connack(c).session_present);
}

#[test]
fn v5_disconnect_with_reason_code() {
    let all = load_all();
    let c = &all["v5-keepalive.1"];
    assert!(c.client.contains(&Packet::PingReq));
    let Packet::Disconnect(d) = c.client.last().unwrap() else {
        panic!()
    };
    assert_eq!(d.code, 0x04, "disconnect with will message");
}

#[test]
fn bridges_subscribe_with_options() {
    let all = load_all();
    let c = &all["bridge-mqttv50.1"];
    assert_eq!(connect(c).client_id, "bridge-mqttv50");
    assert!(connect(c).will.as_ref().unwrap().retain);
    let Packet::Subscribe(s) = &c.client[2] else {
        panic!()
    };
    assert_eq!(s.filters[0].filter, "hil/bridge/#");
    assert_eq!(s.filters[0].qos, QoS::AtLeastOnce);
    // No Local (0x04) and Retain As Published (0x08).
    assert_eq!(s.filters[0].options, 0x0C);

    let c = &all["bridge-mqttv311.1"];
    assert_eq!(c.version, Version::V311);
    let Packet::Subscribe(s) = &c.client[2] else {
        panic!()
    };
    assert_eq!(s.filters[0].options, 0);
}
