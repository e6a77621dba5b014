//! Malformed frames and unencodable packets: each must be refused with a
//! message that says what is wrong, where, and which rule. Plus the
//! `Decoder`'s behaviour around framing errors, version learning and
//! buffering.

use bytes::Bytes;
use mqtt_hil::mqtt::codec::{decode, encode, frame_len, raw_frame, DecodeError, Decoder};
use mqtt_hil::mqtt::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// (frame in hex, version, substrings the message must contain)
const BAD: &[(&str, Version, &[&str])] = &[
    // fixed header
    (
        "36 05 0001 61 00 01",
        Version::V311,
        &["QoS (fixed header) is 3", "[MQTT-3.3.1-4]"],
    ),
    ("33 09 0001 61 0001 7878 7878", Version::V311, &[]), // valid control
    (
        "4f 02 0001",
        Version::V311,
        &[
            "PUBACK fixed header flags are 0b1111 at byte 0",
            "must be 0b0000",
            "[MQTT-2.2.2-2]",
        ],
    ),
    (
        "60 02 0001",
        Version::V311,
        &[
            "PUBREL fixed header flags are 0b0000",
            "must be 0b0010",
            "[MQTT-2.2.2-2]",
        ],
    ),
    (
        "80 06 0001 0001 61 00",
        Version::V311,
        &["SUBSCRIBE fixed header flags", "[MQTT-2.2.2-2]"],
    ),
    (
        "c1 00",
        Version::V311,
        &["PINGREQ fixed header flags are 0b0001"],
    ),
    (
        "38 03 0001 61",
        Version::V311,
        &["DUP must be 0 on a QoS 0 PUBLISH", "[MQTT-3.3.1-2]"],
    ),
    (
        "f0 00",
        Version::V311,
        &["AUTH", "does not exist in MQTT 3.1.1"],
    ),
    (
        "40 82 00 0001",
        Version::V311,
        &[
            "remaining length at byte 1 uses 2 bytes where 1 suffice",
            "[MQTT-1.5.5-1]",
        ],
    ),
    // strings
    (
        "30 06 0002 c328 6869",
        Version::V311,
        &[
            "PUBLISH topic name is not valid UTF-8 at byte 4",
            "[MQTT-1.5.3-1]",
        ],
    ),
    (
        "30 06 0002 6100 6869",
        Version::V311,
        &[
            "PUBLISH topic name contains U+0000 at byte 5",
            "[MQTT-1.5.3-2]",
        ],
    ),
    (
        "30 04 0003 6162",
        Version::V311,
        &["PUBLISH topic name at byte 4 needs 3 byte(s) but the frame ends at byte 6"],
    ),
    (
        "30 05 0003 612b62",
        Version::V311,
        &["wildcards", "[MQTT-3.3.2-2]"],
    ),
    (
        "30 03 0000 78",
        Version::V311,
        &["at least one character", "[MQTT-4.7.3-1]"],
    ),
    (
        "30 04 0000 00 78",
        Version::V5,
        &["Topic Alias", "[MQTT-3.3.2-1]"],
    ),
    // packet identifiers
    (
        "32 05 0001 61 0000",
        Version::V311,
        &["PUBLISH packet identifier at byte 5 is 0", "[MQTT-2.3.1-1]"],
    ),
    (
        "40 02 0000",
        Version::V311,
        &["PUBACK packet identifier at byte 2 is 0", "[MQTT-2.3.1-1]"],
    ),
    (
        "40 03 0001 00",
        Version::V311,
        &["PUBACK has 1 unexpected byte(s) after its last field, from byte 4"],
    ),
    // SUBSCRIBE / UNSUBSCRIBE
    (
        "82 02 0001",
        Version::V311,
        &["at least one topic filter", "[MQTT-3.8.3-3]"],
    ),
    (
        "82 03 0001 00",
        Version::V5,
        &["at least one topic filter", "[MQTT-3.8.3-3]"],
    ),
    (
        "a2 02 0001",
        Version::V311,
        &["UNSUBSCRIBE", "[MQTT-3.10.3-2]"],
    ),
    (
        "82 06 0001 0001 61 03",
        Version::V311,
        &["requested QoS is 3 at byte 7"],
    ),
    (
        "82 06 0001 0001 61 04",
        Version::V311,
        &[
            "subscription options at byte 7",
            "bits 7-2 are reserved",
            "[MQTT-3-8.3-4]",
        ],
    ),
    (
        "82 07 0001 00 0001 61 c0",
        Version::V5,
        &["bits 7-6 are reserved", "[MQTT-3.8.3-5]"],
    ),
    (
        "82 07 0001 00 0001 61 30",
        Version::V5,
        &["Retain Handling 3"],
    ),
    (
        "82 10 0001 00 000a 2473686172652f672f61 04",
        Version::V5,
        &["No Local on a shared subscription", "[MQTT-3.8.3-4]"],
    ),
    ("82 08 0001 0003 612f23 00", Version::V311, &[]), // `a/#` is fine
    (
        "82 08 0001 0003 23 2f 61 00",
        Version::V311,
        &["`#` must be alone in the last level", "[MQTT-4.7.1-2]"],
    ),
    (
        "82 07 0001 0002 612b 00",
        Version::V311,
        &["`+` must occupy a whole level", "[MQTT-4.7.1-3]"],
    ),
    (
        "90 02 0001",
        Version::V311,
        &["SUBACK payload at byte 4", "not none"],
    ),
    (
        "90 03 0001 03",
        Version::V311,
        &["SUBACK reason code 0x03 at byte 4 is not defined for SUBACK in MQTT 3.1.1"],
    ),
    // CONNECT
    (
        "10 0c 0004 4d515454 04 01 003c 0000",
        Version::V311,
        &[
            "CONNECT connect flags at byte 9",
            "reserved bit 0",
            "[MQTT-3.1.2-3]",
        ],
    ),
    (
        "10 0c 0004 4d515454 04 08 003c 0000",
        Version::V311,
        &[
            "will QoS is set but the will flag is clear",
            "[MQTT-3.1.2-13]",
        ],
    ),
    (
        "10 0c 0004 4d515454 04 20 003c 0000",
        Version::V311,
        &[
            "will retain is set but the will flag is clear",
            "[MQTT-3.1.2-15]",
        ],
    ),
    (
        "10 0c 0004 4d515454 04 1c 003c 0000",
        Version::V311,
        &["will QoS (connect flags) is 3 at byte 9", "[MQTT-3.1.2-14]"],
    ),
    (
        "10 0e 0004 4d515454 04 40 003c 0000 0000",
        Version::V311,
        &[
            "password flag is set without the user name flag",
            "[MQTT-3.1.2-22]",
        ],
    ),
    (
        "10 0c 0004 4d515454 06 00 003c 0000",
        Version::V311,
        &[
            "CONNECT protocol \"MQTT\" level 6 at byte 2",
            "[MQTT-3.1.2-2]",
        ],
    ),
    (
        "10 0e 0006 4d5149736470 04 00 003c 0000",
        Version::V311,
        &["\"MQIsdp\" level 4"],
    ),
    (
        "10 0c 0004 4d515454 84 00 003c 0000",
        Version::V311,
        &["level 132"],
    ),
    // CONNACK
    (
        "20 02 02 00",
        Version::V311,
        &[
            "CONNACK acknowledge flags at byte 2",
            "bits 7-1 are reserved",
        ],
    ),
    (
        "20 02 01 05",
        Version::V311,
        &["session present must be 0", "[MQTT-3.2.2-4]"],
    ),
    (
        "20 02 00 06",
        Version::V311,
        &["CONNACK reason code 0x06 at byte 3 is not defined"],
    ),
    (
        "20 03 00 01 00",
        Version::V5,
        &["CONNACK reason code 0x01 at byte 3 is not defined for CONNACK in MQTT 5.0"],
    ),
    // 5.0 properties
    (
        "20 05 00 00 02 7f 00",
        Version::V5,
        &["CONNACK properties has unknown property id 0x7f at byte 5"],
    ),
    (
        "e0 04 00 02 23 00",
        Version::V5,
        &["DISCONNECT properties may not carry property Topic Alias (0x23), at byte 4"],
    ),
    (
        "e0 0a 00 08 1f 0001 61 1f 0001 62",
        Version::V5,
        &["DISCONNECT properties carries property Reason String twice, again at byte 8"],
    ),
    (
        "20 05 00 00 02 24 02",
        Version::V5,
        &["CONNACK property Maximum QoS at byte 5", "0 or 1"],
    ),
    (
        "30 07 0001 61 03 23 0000",
        Version::V5,
        &["Topic Alias 0", "[MQTT-3.3.2-8]"],
    ),
    (
        "82 09 0001 02 0b 00 0001 61 00",
        Version::V5,
        &["Subscription Identifier 0"],
    ),
    (
        "e0 06 00 04 1f 0005 61",
        Version::V5,
        &["Reason String at byte 7 needs 5 byte(s) but the property list ends at byte 8"],
    ),
    (
        "e0 03 00 05 1f",
        Version::V5,
        &["properties at byte 4 needs 5 byte(s) but the frame ends at byte 5"],
    ),
    (
        "f0 01 00",
        Version::V5,
        &["AUTH property length at byte 3 needs 1 byte(s)"],
    ),
    (
        "f0 02 05 00",
        Version::V5,
        &["AUTH reason code 0x05 at byte 2"],
    ),
    (
        "e0 01 05",
        Version::V5,
        &["DISCONNECT reason code 0x05 at byte 2"],
    ),
    (
        "62 03 0001 10",
        Version::V5,
        &["PUBREL reason code 0x10 at byte 4"],
    ),
    (
        "a0 03 0001 00",
        Version::V5,
        &["UNSUBSCRIBE fixed header flags"],
    ),
    (
        "b0 03 0001 00",
        Version::V5,
        &["UNSUBACK payload at byte 5", "not none"],
    ),
    (
        "10 13 0004 4d515454 05 00 003c 06 16 0003 787979 0000",
        Version::V5,
        &["Authentication Data without Authentication Method"],
    ),
    (
        "e0 03 00 80 00",
        Version::V5,
        &["not minimally encoded", "[MQTT-1.5.5-1]"],
    ),
];

#[test]
fn malformed_frames_are_refused_with_what_where_and_rule() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (frame, version, expect) in BAD {
        let bytes = hex(frame);
        if frame_len(&bytes) != Ok(Some(bytes.len())) {
            failures.push(format!("{frame}: test frame is not framed right"));
            continue;
        }
        match (decode(&bytes, *version), expect.is_empty()) {
            (Ok(_), true) => {}
            (Err(e), true) => failures.push(format!("{frame}: {e}")),
            (Ok(p), false) => failures.push(format!("{frame} decoded to {p:?}")),
            (Err(e), false) => {
                let msg = e.to_string();
                for part in *expect {
                    if !msg.contains(part) {
                        failures.push(format!("{frame}: {msg:?} lacks {part:?}"));
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 55, "{checked}");
}

#[test]
fn framing_errors() {
    assert_eq!(
        frame_len(&[0x00, 0x00]),
        Err(DecodeError::ReservedPacketType { byte: 0 })
    );
    assert_eq!(
        frame_len(&[0x30, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::RemainingLengthTooLong)
    );
    assert_eq!(frame_len(&[0x30, 0xff, 0xff, 0xff]), Ok(None));
    assert_eq!(frame_len(&[]), Ok(None));
    assert_eq!(frame_len(&[0xc0]), Ok(None));
    assert_eq!(frame_len(&[0xc0, 0x00, 0xc0]), Ok(Some(2)));
    assert_eq!(frame_len(&[0x30, 0x80, 0x01]), Ok(None));
    assert_eq!(
        decode(&[0xc0, 0x00, 0x00], Version::V311)
            .unwrap_err()
            .to_string(),
        "frame is 3 bytes but its fixed header declares 2"
    );
    assert_eq!(
        decode(&[0x30, 0x80], Version::V311)
            .unwrap_err()
            .to_string(),
        "frame of 2 byte(s) ends inside its fixed header"
    );
    assert!(DecodeError::RemainingLengthTooLong
        .to_string()
        .contains("268,435,455"));
}

#[test]
fn short_v5_forms_decode() {
    let ack = decode(&hex("40 02 0007"), Version::V5).unwrap();
    assert_eq!(ack, Packet::PubAck(Ack::new(7)));
    // An explicit success code and empty properties decode the same.
    assert_eq!(decode(&hex("40 04 0007 00 00"), Version::V5).unwrap(), ack);
    assert_eq!(
        decode(&hex("e0 00"), Version::V5).unwrap(),
        Packet::Disconnect(Disconnect::default())
    );
    let d = decode(&hex("e0 01 8e"), Version::V5).unwrap();
    assert_eq!(
        d,
        Packet::Disconnect(Disconnect {
            code: 0x8e,
            properties: Properties::default()
        })
    );
    assert_eq!(encode(&d, Version::V5).unwrap()[..], hex("e0 01 8e"));
    assert_eq!(
        decode(&hex("f0 00"), Version::V5).unwrap(),
        Packet::Auth(Auth::default())
    );
}

fn publish(qos: QoS, pid: Option<u16>) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: "t".into(),
        pid,
        payload: Bytes::new(),
        properties: Properties::default(),
    })
}

#[test]
fn unencodable_packets_are_refused() {
    let user_prop = Properties(vec![Property {
        id: 0x26,
        value: PropValue::Pair("a".into(), "b".into()),
    }]);
    let cases: Vec<(Packet, Version, &str)> = vec![
        (
            publish(QoS::AtMostOnce, Some(1)),
            Version::V311,
            "a QoS 0 PUBLISH must not carry one [MQTT-2.3.1-5]",
        ),
        (
            publish(QoS::AtLeastOnce, None),
            Version::V311,
            "a QoS 1 or 2 PUBLISH must carry one",
        ),
        (
            publish(QoS::AtLeastOnce, Some(0)),
            Version::V5,
            "is 0 [MQTT-2.3.1-1]",
        ),
        (
            Packet::PubAck(Ack {
                pid: 1,
                code: 0x10,
                properties: Properties::default(),
            }),
            Version::V311,
            "PUBACK reason code is not representable in MQTT 3.1.1",
        ),
        (
            Packet::PubAck(Ack {
                pid: 1,
                code: 0,
                properties: user_prop.clone(),
            }),
            Version::V31,
            "PUBACK properties is not representable in MQTT 3.1",
        ),
        (
            Packet::UnsubAck(UnsubAck {
                pid: 1,
                codes: vec![0],
                properties: Properties::default(),
            }),
            Version::V311,
            "UNSUBACK reason codes is not representable",
        ),
        (
            Packet::Auth(Auth::default()),
            Version::V311,
            "AUTH does not exist in MQTT 3.1.1",
        ),
        (
            Packet::Subscribe(Subscribe {
                pid: 1,
                filters: vec![],
                properties: Properties::default(),
            }),
            Version::V311,
            "[MQTT-3.8.3-3]",
        ),
        (
            Packet::Subscribe(Subscribe {
                pid: 1,
                filters: vec![SubscribeFilter {
                    filter: "a".into(),
                    qos: QoS::AtMostOnce,
                    options: 0x04,
                }],
                properties: Properties::default(),
            }),
            Version::V311,
            "subscription options is not representable in MQTT 3.1.1",
        ),
        (
            Packet::Disconnect(Disconnect {
                code: 0,
                properties: Properties(vec![Property {
                    id: 0x23,
                    value: PropValue::U16(1),
                }]),
            }),
            Version::V5,
            "may not carry property Topic Alias",
        ),
        (
            Packet::Disconnect(Disconnect {
                code: 0,
                properties: Properties(vec![Property {
                    id: 0x11,
                    value: PropValue::Str("x".into()),
                }]),
            }),
            Version::V5,
            "Session Expiry Interval must be a U32 value, not Str",
        ),
        (
            Packet::Disconnect(Disconnect {
                code: 0,
                properties: Properties(vec![Property {
                    id: 0x50,
                    value: PropValue::Byte(1),
                }]),
            }),
            Version::V5,
            "unknown property id 0x50",
        ),
        (
            Packet::Publish(Publish {
                topic: "a/+".into(),
                ..match publish(QoS::AtMostOnce, None) {
                    Packet::Publish(p) => p,
                    _ => unreachable!(),
                }
            }),
            Version::V5,
            "[MQTT-3.3.2-2]",
        ),
        (
            Packet::Publish(Publish {
                topic: "a\0".into(),
                ..match publish(QoS::AtMostOnce, None) {
                    Packet::Publish(p) => p,
                    _ => unreachable!(),
                }
            }),
            Version::V5,
            "U+0000 [MQTT-1.5.3-2]",
        ),
        (
            Packet::Publish(Publish {
                topic: "t".repeat(70_000),
                ..match publish(QoS::AtMostOnce, None) {
                    Packet::Publish(p) => p,
                    _ => unreachable!(),
                }
            }),
            Version::V5,
            "topic name is 70000 bytes, over the 65,535",
        ),
        (
            Packet::Connect(Connect {
                version: Version::V311,
                client_id: "c".into(),
                clean_start: true,
                keep_alive: 0,
                will: None,
                username: None,
                password: Some(Bytes::from_static(b"pw")),
                properties: Properties::default(),
            }),
            Version::V311,
            "[MQTT-3.1.2-22]",
        ),
        (
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: 0x80,
                properties: Properties::default(),
            }),
            Version::V5,
            "session present",
        ),
    ];
    for (packet, version, expect) in cases {
        let msg = match encode(&packet, version) {
            Err(e) => e.to_string(),
            Ok(b) => panic!("{packet:?} encoded to {b:02x?}"),
        };
        assert!(msg.contains(expect), "{msg:?} lacks {expect:?}");
    }
}

#[test]
fn too_large_payload_is_refused() {
    let p = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t".into(),
        pid: None,
        payload: Bytes::from(vec![0u8; 268_435_455]),
        properties: Properties::default(),
    });
    let msg = encode(&p, Version::V311).unwrap_err().to_string();
    assert!(msg.contains("PUBLISH body is 268435458 bytes"), "{msg}");
}

#[test]
fn raw_frame_builds_malformed_packets_on_purpose() {
    let f = raw_frame(0x3f, b"\x00\x01a");
    assert_eq!(&f[..], b"\x3f\x03\x00\x01a");
    assert_eq!(frame_len(&f), Ok(Some(5)));
    assert!(decode(&f, Version::V311).is_err());
    let big = raw_frame(0x30, &[0u8; 200]);
    assert_eq!(&big[..3], &[0x30, 0xc8, 0x01]);
}

#[test]
fn decoder_keeps_raw_bytes_of_frames_that_do_not_decode() {
    let mut d = Decoder::new(Version::V311);
    d.feed(&hex("4f 02 0001  c0 00  40"));
    let (raw, res) = d.next_frame().unwrap().unwrap();
    assert_eq!(&raw[..], &hex("4f 02 0001")[..]);
    assert!(res.is_err());
    let (_, res) = d.next_frame().unwrap().unwrap();
    assert_eq!(res, Ok(Packet::PingReq));
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.pending(), &[0x40]);
}

#[test]
fn decoder_framing_error_is_sticky_and_leaves_the_rest_to_forward() {
    let mut d = Decoder::new(Version::V311);
    d.feed(&hex("c0 00 00 01 02"));
    assert!(d.next_frame().unwrap().is_some());
    let e = d.next_frame().unwrap_err();
    assert_eq!(e, DecodeError::ReservedPacketType { byte: 0 });
    d.feed(&hex("c0 00"));
    assert_eq!(d.next_frame().unwrap_err(), e);
    assert_eq!(d.pending(), &hex("00 01 02 c0 00")[..]);
    assert_eq!(d.broken(), Some(&e));
    assert_eq!(&d.take_pending()[..], &hex("00 01 02 c0 00")[..]);
    assert!(d.pending().is_empty());
}

#[test]
fn decoder_learns_the_version_from_connect() {
    let mut client = Decoder::new(Version::V311);
    // A 5.0 CONNECT then a 5.0 PUBACK with a reason code.
    client.feed(&hex(
        "10 0d 0004 4d515454 05 02 003c 00 0000  40 03 0001 10",
    ));
    let (_, c) = client.next_frame().unwrap().unwrap();
    assert!(matches!(
        c,
        Ok(Packet::Connect(Connect {
            version: Version::V5,
            ..
        }))
    ));
    assert_eq!(client.version(), Version::V5);
    let (_, a) = client.next_frame().unwrap().unwrap();
    assert_eq!(
        a.unwrap(),
        Packet::PubAck(Ack {
            pid: 1,
            code: 0x10,
            properties: Properties::default()
        })
    );

    // Even a CONNECT that does not decode (reserved flag) teaches it.
    let mut d = Decoder::new(Version::V5);
    d.feed(&hex("10 0e 0006 4d5149736470 03 01 003c 0000"));
    let (_, res) = d.next_frame().unwrap().unwrap();
    assert!(res.is_err());
    assert_eq!(d.version(), Version::V31);

    let mut broker = Decoder::new(Version::V311);
    broker.set_version(client.version());
    broker.feed(&hex("20 03 00 00 00"));
    assert!(broker.next_frame().unwrap().unwrap().1.is_ok());
}

#[test]
fn decoder_is_linear_when_fed_one_byte_at_a_time() {
    // 4 MiB in one frame, fed a byte at a time, then many small frames.
    let payload = vec![0x55u8; 4 << 20];
    let big = encode(
        &Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "big".into(),
            pid: None,
            payload: Bytes::from(payload),
            properties: Properties::default(),
        }),
        Version::V311,
    )
    .unwrap();
    let start = thread_cpu_time();
    let mut d = Decoder::new(Version::V311);
    let mut frames = 0;
    for b in big.iter() {
        d.feed(std::slice::from_ref(b));
        while let Some((_, r)) = d.next_frame().unwrap() {
            r.unwrap();
            frames += 1;
        }
    }
    for _ in 0..200_000 {
        d.feed(&[0xc0, 0x00]);
        while let Some((_, r)) = d.next_frame().unwrap() {
            r.unwrap();
            frames += 1;
        }
    }
    assert_eq!(frames, 200_001);
    // Quadratic buffering would take minutes of CPU here; linear takes a
    // few seconds (debug build). This thread's CPU time, not the wall
    // clock: on a loaded machine the same work took 3.5 s and 51 s of wall
    // time in two runs, and only the code's own work is in question.
    let used = thread_cpu_time() - start;
    assert!(used < std::time::Duration::from_secs(20), "{used:?}");
}

/// CPU time this thread has used so far.
fn thread_cpu_time() -> std::time::Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
