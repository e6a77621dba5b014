//! Property tests for `mqtt::codec`: round trips for every packet type in
//! every version, "encode refuses or round-trips" over loosely generated
//! (often invalid) packets, and fuzzing of `decode` and `Decoder` with
//! arbitrary bytes and arbitrary chunkings of valid streams.
//!
//! The generators carry their own copy of the spec tables (allowed
//! properties, reason codes) on purpose: they check the codec's tables
//! rather than reuse them.

use bytes::Bytes;
use mqtt_hil::mqtt::codec::{decode, encode, frame_len, Decoder};
use mqtt_hil::mqtt::*;
use proptest::collection::vec;
use proptest::prelude::*;

const VERSIONS: [Version; 3] = [Version::V31, Version::V311, Version::V5];

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(VERSIONS.to_vec())
}

fn text() -> impl Strategy<Value = String> {
    "[^\\x00]{0,8}"
}

fn topic() -> impl Strategy<Value = String> {
    "[^\\x00+#]{1,10}"
}

fn bin() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> + Clone {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn pid() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn filter(v: Version) -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => "[^\\x00+#/]{0,4}", 1 => Just("+".to_string())];
    (
        vec(level, 1..4),
        any::<bool>(),
        prop::option::of("[a-z]{1,4}"),
    )
        .prop_map(move |(levels, hash, share)| {
            let mut f = levels.join("/");
            if hash {
                f.push_str("/#");
            }
            if f.is_empty() {
                f.push('x');
            }
            match share {
                Some(group) if v == Version::V5 => format!("$share/{group}/{f}"),
                _ => f,
            }
        })
}

/// Where a property list sits, for the generators' own table.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    Disconnect,
    Auth,
}

fn allowed_ids(ctx: Ctx) -> Vec<u8> {
    match ctx {
        Ctx::Connect => vec![0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27],
        Ctx::Will => vec![0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26],
        Ctx::ConnAck => vec![
            0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27,
            0x28, 0x29, 0x2A,
        ],
        Ctx::Publish => vec![0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26],
        Ctx::Ack | Ctx::SubAck => vec![0x1F, 0x26],
        Ctx::Subscribe => vec![0x0B, 0x26],
        Ctx::Unsubscribe => vec![0x26],
        Ctx::Disconnect => vec![0x11, 0x1C, 0x1F, 0x26],
        Ctx::Auth => vec![0x15, 0x16, 0x1F, 0x26],
    }
}

fn prop_value(id: u8) -> BoxedStrategy<PropValue> {
    match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
            (0u8..=1).prop_map(PropValue::Byte).boxed()
        }
        0x21 | 0x23 => (1..=u16::MAX).prop_map(PropValue::U16).boxed(),
        0x13 | 0x22 => any::<u16>().prop_map(PropValue::U16).boxed(),
        0x27 => (1..=u32::MAX).prop_map(PropValue::U32).boxed(),
        0x02 | 0x11 | 0x18 => any::<u32>().prop_map(PropValue::U32).boxed(),
        0x0B => (1u32..=268_435_455).prop_map(PropValue::VarInt).boxed(),
        0x09 | 0x16 => bin().prop_map(PropValue::Bin).boxed(),
        0x26 => (text(), text())
            .prop_map(|(k, v)| PropValue::Pair(k, v))
            .boxed(),
        _ => text().prop_map(PropValue::Str).boxed(),
    }
}

fn props(v: Version, ctx: Ctx) -> BoxedStrategy<Properties> {
    if v != Version::V5 {
        return Just(Properties::default()).boxed();
    }
    let ids = allowed_ids(ctx);
    vec(prop::sample::select(ids), 0..5)
        .prop_flat_map(|ids| {
            ids.into_iter()
                .map(|id| prop_value(id).prop_map(move |value| Property { id, value }))
                .collect::<Vec<_>>()
        })
        .prop_map(move |list| {
            let mut out: Vec<Property> = Vec::new();
            for p in list {
                let repeatable = p.id == 0x26 || (p.id == 0x0B && ctx == Ctx::Publish);
                if repeatable || !out.iter().any(|q| q.id == p.id) {
                    out.push(p);
                }
            }
            let has = |id| out.iter().any(|p| p.id == id);
            if ctx == Ctx::Connect && has(0x16) && !has(0x15) {
                out.retain(|p| p.id != 0x16);
            }
            Properties(out)
        })
        .boxed()
}

fn reason_codes(t: PacketType, v: Version) -> Vec<u8> {
    use PacketType::*;
    if v != Version::V5 {
        return match t {
            ConnAck => (0..=5).collect(),
            SubAck => vec![0, 1, 2, 0x80],
            _ => vec![0],
        };
    }
    match t {
        ConnAck => vec![
            0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
            0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
        ],
        PubAck | PubRec => vec![0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
        PubRel | PubComp => vec![0x00, 0x92],
        SubAck => vec![
            0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
        ],
        UnsubAck => vec![0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
        Disconnect => vec![
            0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
            0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1,
            0xA2,
        ],
        Auth => vec![0x00, 0x18, 0x19],
        _ => vec![0],
    }
}

fn code(t: PacketType, v: Version) -> impl Strategy<Value = u8> {
    prop::sample::select(reason_codes(t, v))
}

fn will(v: Version) -> impl Strategy<Value = Will> {
    (topic(), bin(), qos(), any::<bool>(), props(v, Ctx::Will)).prop_map(
        |(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    )
}

fn connect(v: Version) -> impl Strategy<Value = Packet> {
    (
        text(),
        any::<bool>(),
        any::<u16>(),
        prop::option::of(will(v)),
        prop::option::of(text()),
        prop::option::of(bin()),
        props(v, Ctx::Connect),
    )
        .prop_map(
            move |(
                client_id,
                clean_start,
                keep_alive,
                will,
                mut username,
                password,
                properties,
            )| {
                if v != Version::V5 && password.is_some() && username.is_none() {
                    username = Some("u".into());
                }
                Packet::Connect(Connect {
                    version: v,
                    client_id,
                    clean_start,
                    keep_alive,
                    will,
                    username,
                    password,
                    properties,
                })
            },
        )
}

fn publish(v: Version) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic(),
        any::<bool>(),
        pid(),
        bin(),
        props(v, Ctx::Publish),
    )
        .prop_map(
            |(dup, qos, retain, topic, empty, pid, payload, properties)| {
                let alias = properties.0.iter().any(|p| p.id == 0x23);
                Packet::Publish(Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic: if alias && empty { String::new() } else { topic },
                    pid: (qos != QoS::AtMostOnce).then_some(pid),
                    payload,
                    properties,
                })
            },
        )
}

fn ack(t: PacketType, v: Version) -> impl Strategy<Value = Packet> {
    (pid(), code(t, v), props(v, Ctx::Ack)).prop_map(move |(pid, code, properties)| {
        let a = Ack {
            pid,
            code,
            properties,
        };
        match t {
            PacketType::PubAck => Packet::PubAck(a),
            PacketType::PubRec => Packet::PubRec(a),
            PacketType::PubRel => Packet::PubRel(a),
            _ => Packet::PubComp(a),
        }
    })
}

fn subscribe(v: Version) -> impl Strategy<Value = Packet> {
    let f = (filter(v), qos(), any::<bool>(), any::<bool>(), 0u8..=2).prop_map(
        move |(filter, qos, nl, rap, rh)| {
            let options = if v == Version::V5 {
                let nl = nl && !filter.starts_with("$share/");
                (u8::from(nl) << 2) | (u8::from(rap) << 3) | (rh << 4)
            } else {
                0
            };
            SubscribeFilter {
                filter,
                qos,
                options,
            }
        },
    );
    (pid(), vec(f, 1..4), props(v, Ctx::Subscribe)).prop_map(|(pid, filters, properties)| {
        Packet::Subscribe(Subscribe {
            pid,
            filters,
            properties,
        })
    })
}

fn packet(v: Version) -> BoxedStrategy<Packet> {
    use PacketType as T;
    let mut all = vec![
        connect(v).boxed(),
        (any::<bool>(), code(T::ConnAck, v), props(v, Ctx::ConnAck))
            .prop_map(|(sp, code, properties)| {
                Packet::ConnAck(ConnAck {
                    session_present: sp && code == 0,
                    code,
                    properties,
                })
            })
            .boxed(),
        publish(v).boxed(),
        ack(T::PubAck, v).boxed(),
        ack(T::PubRec, v).boxed(),
        ack(T::PubRel, v).boxed(),
        ack(T::PubComp, v).boxed(),
        subscribe(v).boxed(),
        (pid(), vec(code(T::SubAck, v), 1..4), props(v, Ctx::SubAck))
            .prop_map(|(pid, codes, properties)| {
                Packet::SubAck(SubAck {
                    pid,
                    codes,
                    properties,
                })
            })
            .boxed(),
        (pid(), vec(filter(v), 1..4), props(v, Ctx::Unsubscribe))
            .prop_map(|(pid, filters, properties)| {
                Packet::Unsubscribe(Unsubscribe {
                    pid,
                    filters,
                    properties,
                })
            })
            .boxed(),
        (
            pid(),
            vec(code(T::UnsubAck, v), 1..4),
            props(v, Ctx::SubAck),
        )
            .prop_map(move |(pid, codes, properties)| {
                Packet::UnsubAck(UnsubAck {
                    pid,
                    codes: if v == Version::V5 { codes } else { Vec::new() },
                    properties,
                })
            })
            .boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        (code(T::Disconnect, v), props(v, Ctx::Disconnect))
            .prop_map(|(code, properties)| Packet::Disconnect(Disconnect { code, properties }))
            .boxed(),
    ];
    if v == Version::V5 {
        all.push(
            (code(T::Auth, v), props(v, Ctx::Auth))
                .prop_map(|(code, properties)| Packet::Auth(Auth { code, properties }))
                .boxed(),
        );
    }
    prop::strategy::Union::new(all).boxed()
}

fn versioned_packet() -> impl Strategy<Value = (Version, Packet)> {
    version().prop_flat_map(|v| packet(v).prop_map(move |p| (v, p)))
}

// ---- loose generators: often-invalid packets ----

fn loose_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z/]{0,6}",
        1 => "[a-z/+#\\x00]{0,6}",
        1 => Just(String::new()),
    ]
}

fn loose_props() -> impl Strategy<Value = Properties> {
    let value = prop_oneof![
        any::<u8>().prop_map(PropValue::Byte),
        any::<u16>().prop_map(PropValue::U16),
        any::<u32>().prop_map(PropValue::U32),
        any::<u32>().prop_map(PropValue::VarInt),
        loose_text().prop_map(PropValue::Str),
        bin().prop_map(PropValue::Bin),
        (loose_text(), loose_text()).prop_map(|(k, v)| PropValue::Pair(k, v)),
    ];
    let prop = (0u8..0x30, value).prop_map(|(id, value)| Property { id, value });
    prop_oneof![
        2 => Just(Properties::default()),
        1 => vec(prop, 0..4).prop_map(Properties),
    ]
}

fn loose_packet() -> impl Strategy<Value = Packet> {
    let pid = prop_oneof![4 => 1..=u16::MAX, 1 => Just(0u16)];
    let code = prop_oneof![2 => Just(0u8), 1 => any::<u8>()];
    let qos = qos();
    prop_oneof![
        (
            version(),
            loose_text(),
            prop::option::of((
                loose_text(),
                bin(),
                qos.clone(),
                any::<bool>(),
                loose_props()
            )),
            prop::option::of(loose_text()),
            prop::option::of(bin()),
            loose_props()
        )
            .prop_map(
                |(version, client_id, will, username, password, properties)| {
                    Packet::Connect(Connect {
                        version,
                        client_id,
                        clean_start: true,
                        keep_alive: 60,
                        will: will.map(|(topic, payload, qos, retain, properties)| Will {
                            topic,
                            payload,
                            qos,
                            retain,
                            properties,
                        }),
                        username,
                        password,
                        properties,
                    })
                }
            ),
        (any::<bool>(), code.clone(), loose_props()).prop_map(|(sp, code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: sp,
                code,
                properties,
            })
        }),
        (
            any::<bool>(),
            qos.clone(),
            loose_text(),
            prop::option::of(pid.clone()),
            loose_props()
        )
            .prop_map(|(dup, qos, topic, pid, properties)| {
                Packet::Publish(Publish {
                    dup,
                    qos,
                    retain: false,
                    topic,
                    pid,
                    payload: Bytes::from_static(b"x"),
                    properties,
                })
            }),
        (pid.clone(), code.clone(), loose_props()).prop_map(|(pid, code, properties)| {
            Packet::PubRel(Ack {
                pid,
                code,
                properties,
            })
        }),
        (
            pid.clone(),
            vec((loose_text(), qos, any::<u8>()), 0..3),
            loose_props()
        )
            .prop_map(|(pid, filters, properties)| {
                Packet::Subscribe(Subscribe {
                    pid,
                    filters: filters
                        .into_iter()
                        .map(|(filter, qos, options)| SubscribeFilter {
                            filter,
                            qos,
                            options,
                        })
                        .collect(),
                    properties,
                })
            }),
        (pid.clone(), vec(any::<u8>(), 0..3), loose_props()).prop_map(
            |(pid, codes, properties)| Packet::SubAck(SubAck {
                pid,
                codes,
                properties
            })
        ),
        (pid.clone(), vec(loose_text(), 0..3), loose_props()).prop_map(
            |(pid, filters, properties)| Packet::Unsubscribe(Unsubscribe {
                pid,
                filters,
                properties
            })
        ),
        (pid, vec(any::<u8>(), 0..3), loose_props()).prop_map(|(pid, codes, properties)| {
            Packet::UnsubAck(UnsubAck {
                pid,
                codes,
                properties,
            })
        }),
        (code.clone(), loose_props())
            .prop_map(|(code, properties)| Packet::Disconnect(Disconnect { code, properties })),
        (code, loose_props())
            .prop_map(|(code, properties)| Packet::Auth(Auth { code, properties })),
    ]
}

/// Splits `data` at the given cut points (taken modulo its length).
fn chunks(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| if data.is_empty() { 0 } else { c % data.len() })
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(data[start..p].to_vec());
        start = p;
    }
    out.push(data[start..].to_vec());
    out
}

type Outcome = (
    Vec<(Bytes, Result<Packet, mqtt_hil::mqtt::codec::DecodeError>)>,
    Option<mqtt_hil::mqtt::codec::DecodeError>,
    Vec<u8>,
);

/// Feeds chunks one by one, draining frames after each.
fn run_decoder(version: Version, parts: &[Vec<u8>]) -> Outcome {
    let mut d = Decoder::new(version);
    let mut frames = Vec::new();
    let mut err = None;
    for part in parts {
        d.feed(part);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        if err.is_some() {
            // The error is sticky: later bytes do not resynchronise.
            assert_eq!(d.next_frame().err(), err);
        }
    }
    (frames, err, d.pending().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_valid_packet_round_trips((v, p) in versioned_packet()) {
        let bytes = encode(&p, v).map_err(|e| TestCaseError::fail(format!("{e}: {p:?}")))?;
        prop_assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
        prop_assert_eq!(frame_len(&bytes[..bytes.len() - 1]), Ok(None));
        let back = decode(&bytes, v).map_err(|e| TestCaseError::fail(format!("{e}: {p:?}")))?;
        prop_assert_eq!(&back, &p);
        // Canonical: re-encoding gives the same bytes.
        prop_assert_eq!(encode(&back, v).unwrap(), bytes);
    }

    #[test]
    fn encode_refuses_or_round_trips(p in loose_packet(), v in version()) {
        if let Ok(bytes) = encode(&p, v) {
            let back = decode(&bytes, v);
            prop_assert_eq!(back, Ok(p), "encoded as {:02x?}", &bytes[..]);
        }
    }

    #[test]
    fn decode_never_panics(bytes in vec(any::<u8>(), 0..200)) {
        let _ = frame_len(&bytes);
        for v in VERSIONS {
            let _ = decode(&bytes, v);
        }
    }

    /// Frames with a plausible header and random bodies reach deep into the
    /// decoders; whatever decodes must encode back to a packet that decodes
    /// to the same thing.
    #[test]
    fn decode_accepts_only_what_encode_accepts(
        first in any::<u8>(),
        body in vec(any::<u8>(), 0..64),
        v in version(),
    ) {
        let frame = mqtt_hil::mqtt::codec::raw_frame(first, &body);
        if let Ok(p) = decode(&frame, v) {
            let bytes = encode(&p, v).map_err(|e| TestCaseError::fail(format!("{e}: {p:?}")))?;
            prop_assert_eq!(decode(&bytes, v), Ok(p));
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        (v, p) in versioned_packet(),
        flips in vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&p, v).unwrap().to_vec();
        for (i, x) in flips {
            let n = bytes.len();
            bytes[i % n] ^= x;
        }
        let _ = frame_len(&bytes);
        if let Ok(q) = decode(&bytes, v) {
            let again = encode(&q, v).map_err(|e| TestCaseError::fail(format!("{e}: {q:?}")))?;
            prop_assert_eq!(decode(&again, v), Ok(q));
        }
        let mut d = Decoder::new(v);
        d.feed(&bytes);
        while let Ok(Some(_)) = d.next_frame() {}
    }

    #[test]
    fn any_chunking_of_a_valid_stream_gives_the_same_frames(
        v in version(),
        start in version(),
        body in vec(any::<u8>(), 0..1).prop_flat_map(|_| version()).prop_flat_map(|v| {
            (Just(v), vec(packet(v), 0..12))
        }),
        cuts in vec(any::<usize>(), 0..20),
    ) {
        let _ = v;
        let (v, packets) = body;
        // The stream opens with a CONNECT: the decoder learns its version.
        let connect = Packet::Connect(Connect {
            version: v,
            client_id: "c".into(),
            clean_start: true,
            keep_alive: 5,
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        });
        let mut all = vec![connect];
        all.extend(packets);
        let encoded: Vec<Bytes> = all.iter().map(|p| encode(p, v).unwrap()).collect();
        let stream: Vec<u8> = encoded.iter().flat_map(|b| b.iter().copied()).collect();
        let (frames, err, pending) = run_decoder(start, &chunks(&stream, &cuts));
        prop_assert!(err.is_none());
        prop_assert!(pending.is_empty());
        prop_assert_eq!(frames.len(), all.len());
        for ((raw, decoded), (bytes, p)) in frames.iter().zip(encoded.iter().zip(&all)) {
            prop_assert_eq!(raw, bytes);
            prop_assert_eq!(decoded.as_ref(), Ok(p));
        }
    }

    #[test]
    fn any_chunking_of_arbitrary_bytes_gives_the_same_result(
        v in version(),
        data in vec(any::<u8>(), 0..300),
        cuts in vec(any::<usize>(), 0..20),
    ) {
        let whole = run_decoder(v, std::slice::from_ref(&data));
        let split = run_decoder(v, &chunks(&data, &cuts));
        prop_assert_eq!(whole, split);
    }
}

#[test]
fn every_type_and_version_is_generated() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for v in VERSIONS {
        let mut seen = std::collections::BTreeSet::new();
        let strategy = packet(v);
        for _ in 0..2000 {
            let p = strategy.new_tree(&mut runner).unwrap().current();
            seen.insert(p.packet_type() as u8);
        }
        let expected = if v == Version::V5 { 15 } else { 14 };
        assert_eq!(seen.len(), expected, "{v:?}: {seen:?}");
    }
}
