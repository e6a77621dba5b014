//! The fault proxy over real TCP on 127.0.0.1, with the test playing both
//! ends: the client, and a fake broker that accepts the proxy's upstream
//! connection. Each test checks what each end sees on its socket and what
//! the history recorded.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mqtt_hil::history::{CloseReason, ConnId, Dir, Event, EventKind, Fate, Recorder};
use mqtt_hil::mqtt::codec;
use mqtt_hil::mqtt::{
    Ack, ConnAck, Connect, Packet, PacketType, PropValue, Properties, Property, Publish, QoS,
    SubAck, Subscribe, SubscribeFilter, Version,
};
use mqtt_hil::proxy::{Fault, Hub, Lane, PacketRule, RuleAction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

const T: Duration = Duration::from_secs(5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn enc(p: &Packet, v: Version) -> Bytes {
    codec::encode(p, v).expect("encodes")
}

fn connect(v: Version) -> Packet {
    Packet::Connect(Connect {
        version: v,
        client_id: "dut".into(),
        clean_start: true,
        keep_alive: 30,
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    })
}

fn publish(topic: &str, payload: &[u8], qos: QoS, pid: Option<u16>) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        pid,
        payload: Bytes::copy_from_slice(payload),
        properties: Properties::default(),
    })
}

fn v311(p: &Packet) -> Bytes {
    enc(p, Version::V311)
}

struct Rig {
    rec: Recorder,
    hub: Hub,
    lane: Lane,
    broker: TcpListener,
}

impl Rig {
    async fn new() -> Rig {
        let rec = Recorder::new();
        let hub = Hub::new(rec.clone());
        let broker = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lane = hub
            .lane("device", broker.local_addr().unwrap())
            .await
            .unwrap();
        Rig {
            rec,
            hub,
            lane,
            broker,
        }
    }

    /// A client connection through the lane and the broker's end of it.
    async fn pair(&self) -> (TcpStream, TcpStream) {
        let c = TcpStream::connect(self.lane.addr()).await.unwrap();
        let (b, _) = timeout(T, self.broker.accept()).await.unwrap().unwrap();
        (c, b)
    }

    fn events(&self) -> Vec<Event> {
        self.rec.snapshot().events
    }

    /// Waits until an event matches.
    async fn wait(&self, what: &str, f: impl Fn(&EventKind) -> bool) -> Event {
        let end = Instant::now() + T;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| f(&e.kind)) {
                return e;
            }
            assert!(Instant::now() < end, "no {what} in {:#?}", self.events());
            tokio::time::sleep(ms(5)).await;
        }
    }

    fn packets(&self) -> Vec<(Dir, PacketType, Fate, Bytes)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Packet {
                    dir,
                    packet,
                    fate,
                    raw,
                    ..
                } => Some((dir, packet.packet_type(), fate, raw)),
                _ => None,
            })
            .collect()
    }

    fn closes(&self) -> Vec<(ConnId, CloseReason)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::ConnClosed { conn, reason, .. } => Some((conn, reason)),
                _ => None,
            })
            .collect()
    }
}

async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    timeout(T, s.read_exact(&mut buf))
        .await
        .expect("bytes arrive in time")
        .expect("read");
    buf
}

/// Nothing arrives (and the socket stays open) for `d`.
async fn silent(s: &mut TcpStream, d: Duration) {
    let mut buf = [0u8; 1];
    match timeout(d, s.read(&mut buf)).await {
        Err(_) => {}
        Ok(r) => panic!("expected silence, got {r:?}"),
    }
}

async fn expect_reset(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let r = timeout(T, s.read(&mut buf)).await.expect("in time");
    match r {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected ECONNRESET, got {other:?}"),
    }
}

async fn expect_eof(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let r = timeout(T, s.read(&mut buf)).await.expect("in time");
    assert!(matches!(r, Ok(0)), "expected EOF, got {r:?}");
}

#[tokio::test]
async fn bytes_pass_unchanged_and_every_packet_is_recorded_in_order() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    let connect = v311(&connect(Version::V311));
    let sub = v311(&Packet::Subscribe(Subscribe {
        pid: 1,
        filters: vec![SubscribeFilter {
            filter: "a/#".into(),
            qos: QoS::AtLeastOnce,
            options: 0,
        }],
        properties: Properties::default(),
    }));
    let publ = v311(&publish("a/b", b"hello", QoS::AtLeastOnce, Some(7)));
    // One frame a byte at a time, then two frames in one write.
    for byte in connect.iter() {
        c.write_all(&[*byte]).await.unwrap();
    }
    let mut two = sub.to_vec();
    two.extend_from_slice(&publ);
    c.write_all(&two).await.unwrap();
    let mut want = connect.to_vec();
    want.extend_from_slice(&two);
    assert_eq!(read_n(&mut b, want.len()).await, want);

    let connack = v311(&Packet::ConnAck(ConnAck {
        session_present: false,
        code: 0,
        properties: Properties::default(),
    }));
    let suback = v311(&Packet::SubAck(SubAck {
        pid: 1,
        codes: vec![1],
        properties: Properties::default(),
    }));
    let puback = v311(&Packet::PubAck(Ack::new(7)));
    let mut down = connack.to_vec();
    down.extend_from_slice(&suback);
    down.extend_from_slice(&puback);
    b.write_all(&down).await.unwrap();
    assert_eq!(read_n(&mut c, down.len()).await, down);

    rig.wait("PUBACK", |k| {
        matches!(
            k,
            EventKind::Packet {
                packet: Packet::PubAck(_),
                ..
            }
        )
    })
    .await;
    use Dir::{ToBroker, ToClient};
    let got: Vec<_> = rig
        .packets()
        .into_iter()
        .map(|(d, t, f, raw)| {
            assert_eq!(f, Fate::Forwarded);
            (d, t, raw)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (ToBroker, PacketType::Connect, connect),
            (ToBroker, PacketType::Subscribe, sub),
            (ToBroker, PacketType::Publish, publ),
            (ToClient, PacketType::ConnAck, connack),
            (ToClient, PacketType::SubAck, suback),
            (ToClient, PacketType::PubAck, puback),
        ]
    );
    let first = &rig.events()[0].kind;
    assert!(
        matches!(first, EventKind::ConnOpened { actor, .. } if actor == "device"),
        "{first:?}"
    );

    // The client closes: EOF reaches the broker, whose close ends it all.
    drop(c);
    expect_eof(&mut b).await;
    drop(b);
    rig.wait("ConnClosed", |k| matches!(k, EventKind::ConnClosed { .. }))
        .await;
    assert_eq!(rig.closes()[0].1, CloseReason::ClientClosed);
    let end = Instant::now() + T;
    while rig.lane.open_connections() > 0 {
        assert!(Instant::now() < end);
        tokio::time::sleep(ms(5)).await;
    }
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn the_to_client_decoder_learns_the_version_from_connect() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    let connect = enc(&connect(Version::V5), Version::V5);
    c.write_all(&connect).await.unwrap();
    read_n(&mut b, connect.len()).await;
    // A 5.0 CONNACK with a property does not decode as 3.1.1.
    let connack = enc(
        &Packet::ConnAck(ConnAck {
            session_present: false,
            code: 0,
            properties: Properties(vec![Property {
                id: 0x21,
                value: PropValue::U16(10),
            }]),
        }),
        Version::V5,
    );
    assert!(codec::decode(&connack, Version::V311).is_err());
    b.write_all(&connack).await.unwrap();
    read_n(&mut c, connack.len()).await;
    rig.wait("CONNACK", |k| {
        matches!(k, EventKind::Packet { packet: Packet::ConnAck(a), .. } if a.properties.0.len() == 1)
    })
    .await;
    assert!(!rig
        .events()
        .iter()
        .any(|e| matches!(e.kind, EventKind::Malformed { .. })));
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn sever_resets_both_sides() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane.apply(Fault::Sever);
    expect_reset(&mut c).await;
    expect_reset(&mut b).await;
    rig.wait("ConnClosed", |k| matches!(k, EventKind::ConnClosed { .. }))
        .await;
    assert_eq!(rig.closes()[0].1, CloseReason::Severed);
    let kinds: Vec<_> = rig.events().into_iter().map(|e| e.kind).collect();
    let fault = kinds
        .iter()
        .position(|k| matches!(k, EventKind::Fault { fault, target } if fault == "sever" && target == "device"))
        .expect("fault recorded");
    let closed = kinds
        .iter()
        .position(|k| matches!(k, EventKind::ConnClosed { .. }))
        .unwrap();
    assert!(fault < closed);
    // Future connections are not affected.
    let (mut c2, mut b2) = rig.pair().await;
    c2.write_all(b"\xc0\x00").await.unwrap();
    assert_eq!(read_n(&mut b2, 2).await, b"\xc0\x00");
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn close_sends_fin_to_both_sides() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane.apply(Fault::Close);
    expect_eof(&mut c).await;
    expect_eof(&mut b).await;
    rig.wait("ConnClosed", |k| matches!(k, EventKind::ConnClosed { .. }))
        .await;
    assert_eq!(rig.closes()[0].1, CloseReason::Closed);
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn blackhole_stalls_both_ways_and_heal_delivers_in_order() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    let ping = v311(&Packet::PingReq);
    let pong = v311(&Packet::PingResp);
    c.write_all(&ping).await.unwrap();
    read_n(&mut b, 2).await;

    rig.lane.apply(Fault::Blackhole);
    let up = v311(&publish("t", b"up", QoS::AtMostOnce, None));
    let down = v311(&publish("t", b"down", QoS::AtMostOnce, None));
    c.write_all(&up).await.unwrap();
    c.write_all(&ping).await.unwrap();
    b.write_all(&down).await.unwrap();
    b.write_all(&pong).await.unwrap();
    silent(&mut b, ms(300)).await;
    silent(&mut c, ms(10)).await;
    // Read meanwhile, recorded as held.
    rig.wait("held PINGRESP", |k| {
        matches!(
            k,
            EventKind::Packet {
                packet: Packet::PingResp,
                fate: Fate::Held,
                ..
            }
        )
    })
    .await;
    assert_eq!(rig.lane.open_connections(), 1);

    rig.lane.apply(Fault::Heal);
    let mut want = up.to_vec();
    want.extend_from_slice(&ping);
    assert_eq!(read_n(&mut b, want.len()).await, want);
    let mut want = down.to_vec();
    want.extend_from_slice(&pong);
    assert_eq!(read_n(&mut c, want.len()).await, want);
    rig.wait("released PINGRESP", |k| {
        matches!(
            k,
            EventKind::Packet {
                packet: Packet::PingResp,
                fate: Fate::Released,
                ..
            }
        )
    })
    .await;
    let fates: Vec<_> = rig
        .packets()
        .into_iter()
        .map(|(d, t, f, _)| (d, t, f))
        .collect();
    use Dir::*;
    use Fate::*;
    use PacketType::*;
    for want in [
        (ToBroker, Publish, Held),
        (ToBroker, PingReq, Held),
        (ToClient, Publish, Held),
        (ToClient, PingResp, Held),
        (ToBroker, Publish, Released),
        (ToBroker, PingReq, Released),
        (ToClient, Publish, Released),
        (ToClient, PingResp, Released),
    ] {
        assert!(fates.contains(&want), "{want:?} missing from {fates:?}");
    }
    // Business as usual afterwards.
    c.write_all(&ping).await.unwrap();
    read_n(&mut b, 2).await;
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn a_close_during_blackhole_is_not_passed_on_and_the_peer_is_reset_at_heal() {
    let rig = Rig::new().await;
    let (mut c, b) = rig.pair().await;
    rig.lane.apply(Fault::Blackhole);
    drop(b);
    // Recorded when it happens...
    rig.wait("ConnClosed", |k| matches!(k, EventKind::ConnClosed { .. }))
        .await;
    assert_eq!(rig.closes()[0].1, CloseReason::BrokerClosed);
    assert_eq!(rig.lane.open_connections(), 0);
    // ...but the client does not learn of it.
    c.write_all(&v311(&Packet::PingReq)).await.unwrap();
    silent(&mut c, ms(300)).await;
    rig.lane.apply(Fault::Heal);
    expect_reset(&mut c).await;
    assert_eq!(rig.closes().len(), 1, "closed once");
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn a_connection_opened_during_blackhole_is_stalled_until_heal() {
    let rig = Rig::new().await;
    rig.lane.apply(Fault::Blackhole);
    let (mut c, mut b) = rig.pair().await;
    let connect = v311(&connect(Version::V311));
    c.write_all(&connect).await.unwrap();
    silent(&mut b, ms(300)).await;
    rig.lane.apply(Fault::Heal);
    assert_eq!(read_n(&mut b, connect.len()).await, connect.to_vec());
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn blackhole_buffers_are_bounded_and_lose_nothing() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane.apply(Fault::Blackhole);
    let frames: Vec<Bytes> = (0..128u32)
        .map(|i| {
            let payload = vec![(i % 251) as u8; 64 * 1024];
            v311(&publish("bulk", &payload, QoS::AtMostOnce, None))
        })
        .collect();
    let all: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    let total = all.len();
    let writer = tokio::spawn(async move {
        c.write_all(&all).await.unwrap();
        c
    });
    // The kernel's buffers may take the rest (loopback windows grow large);
    // the proxy itself must stop reading near its 1 MiB limit.
    tokio::time::sleep(ms(500)).await;
    let held = rig
        .packets()
        .iter()
        .filter(|(_, _, f, _)| *f == Fate::Held)
        .count();
    assert!(
        held > 0 && held < 40,
        "the proxy stops reading near 1 MiB ({held} frames read)"
    );
    rig.lane.apply(Fault::Heal);
    let got = read_n(&mut b, total).await;
    let want: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    assert!(got == want, "every byte, in order");
    let _c = writer.await.unwrap();
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn refuse_resets_new_connections_only_until_accept() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane.apply(Fault::Refuse);
    let mut r = TcpStream::connect(rig.lane.addr()).await.unwrap();
    expect_reset(&mut r).await;
    rig.wait("refused", |k| {
        matches!(
            k,
            EventKind::ConnClosed {
                reason: CloseReason::Refused,
                ..
            }
        )
    })
    .await;
    // The existing connection is untouched.
    c.write_all(b"\xc0\x00").await.unwrap();
    assert_eq!(read_n(&mut b, 2).await, b"\xc0\x00");
    rig.lane.apply(Fault::Accept);
    let (mut c2, mut b2) = rig.pair().await;
    c2.write_all(b"\xc0\x00").await.unwrap();
    assert_eq!(read_n(&mut b2, 2).await, b"\xc0\x00");
    let opened = rig
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ConnOpened { .. }))
        .count();
    assert_eq!(opened, 3, "a refused attempt is still a connection seen");
    rig.hub.shutdown().await;
}

fn rule(dir: Option<Dir>, packet: PacketType, action: RuleAction) -> Fault {
    Fault::Rule(PacketRule {
        dir,
        packet,
        nth: 1,
        action,
        times: 1,
    })
}

#[tokio::test]
async fn drop_the_first_pubrec_to_client() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane.apply(rule(
        Some(Dir::ToClient),
        PacketType::PubRec,
        RuleAction::Drop,
    ));
    let r1 = v311(&Packet::PubRec(Ack::new(1)));
    let r2 = v311(&Packet::PubRec(Ack::new(2)));
    // A PUBREC the other way is not counted.
    c.write_all(&r1).await.unwrap();
    assert_eq!(read_n(&mut b, 4).await, r1.to_vec());
    b.write_all(&r1).await.unwrap();
    b.write_all(&r2).await.unwrap();
    assert_eq!(read_n(&mut c, 4).await, r2.to_vec());
    let fates: Vec<_> = rig
        .packets()
        .into_iter()
        .map(|(d, _, f, raw)| (d, f, raw))
        .collect();
    assert_eq!(
        fates,
        vec![
            (Dir::ToBroker, Fate::Forwarded, r1.clone()),
            (Dir::ToClient, Fate::Dropped, r1),
            (Dir::ToClient, Fate::Forwarded, r2),
        ]
    );
    assert!(rig.events().iter().any(|e| matches!(&e.kind,
        EventKind::Fault { fault, .. } if fault == "drop 1st PUBREC to_client")));
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn hold_until_release_and_others_overtake() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane
        .apply(rule(None, PacketType::Publish, RuleAction::Hold));
    let p = v311(&publish("t", b"held", QoS::AtLeastOnce, Some(1)));
    let ping = v311(&Packet::PingReq);
    c.write_all(&p).await.unwrap();
    c.write_all(&ping).await.unwrap();
    assert_eq!(read_n(&mut b, 2).await, ping.to_vec());
    silent(&mut b, ms(200)).await;
    rig.lane.apply(Fault::Release);
    assert_eq!(read_n(&mut b, p.len()).await, p.to_vec());
    rig.wait("released", |k| {
        matches!(
            k,
            EventKind::Packet {
                fate: Fate::Released,
                ..
            }
        )
    })
    .await;
    let fates: Vec<_> = rig
        .packets()
        .into_iter()
        .map(|(_, t, f, _)| (t, f))
        .collect();
    assert_eq!(
        fates,
        vec![
            (PacketType::Publish, Fate::Held),
            (PacketType::PingReq, Fate::Forwarded),
            (PacketType::Publish, Fate::Released),
        ]
    );
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn clear_releases_held_packets() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane.apply(rule(
        Some(Dir::ToBroker),
        PacketType::PingReq,
        RuleAction::Hold,
    ));
    c.write_all(&v311(&Packet::PingReq)).await.unwrap();
    silent(&mut b, ms(200)).await;
    rig.lane.apply(Fault::Clear);
    read_n(&mut b, 2).await;
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn duplicate_writes_the_frame_twice() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane.apply(rule(
        Some(Dir::ToBroker),
        PacketType::Publish,
        RuleAction::Duplicate,
    ));
    let p = v311(&publish("t", b"x", QoS::AtLeastOnce, Some(3)));
    c.write_all(&p).await.unwrap();
    c.write_all(&p).await.unwrap();
    let got = read_n(&mut b, 3 * p.len()).await;
    assert_eq!(got, [p.to_vec(), p.to_vec(), p.to_vec()].concat());
    let fates: Vec<_> = rig.packets().into_iter().map(|(_, _, f, _)| f).collect();
    assert_eq!(fates, vec![Fate::Duplicated, Fate::Forwarded]);
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn delay_rule_holds_one_packet_for_a_time() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane.apply(rule(
        Some(Dir::ToClient),
        PacketType::PubAck,
        RuleAction::Delay(ms(300)),
    ));
    let ack = v311(&Packet::PubAck(Ack::new(1)));
    let pong = v311(&Packet::PingResp);
    let t0 = Instant::now();
    b.write_all(&ack).await.unwrap();
    b.write_all(&pong).await.unwrap();
    assert_eq!(read_n(&mut c, 2).await, pong.to_vec(), "overtaken");
    assert_eq!(read_n(&mut c, 4).await, ack.to_vec());
    assert!(t0.elapsed() >= ms(300));
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn latency_delays_and_keeps_order() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane.apply(Fault::Latency {
        delay: ms(200),
        jitter: ms(100),
    });
    let frames: Vec<Bytes> = (0..20u16)
        .map(|i| {
            v311(&publish(
                "t",
                &i.to_be_bytes(),
                QoS::AtLeastOnce,
                Some(i + 1),
            ))
        })
        .collect();
    let t0 = Instant::now();
    for f in &frames {
        c.write_all(f).await.unwrap();
    }
    let first = read_n(&mut b, frames[0].len()).await;
    assert!(t0.elapsed() >= ms(100), "{:?}", t0.elapsed());
    assert_eq!(first, frames[0].to_vec());
    let rest: Vec<u8> = frames[1..].iter().flat_map(|f| f.to_vec()).collect();
    assert_eq!(read_n(&mut b, rest.len()).await, rest, "order kept");
    // Fixed latency.
    rig.lane.apply(Fault::Latency {
        delay: ms(250),
        jitter: Duration::ZERO,
    });
    let t1 = Instant::now();
    b.write_all(&v311(&Packet::PingResp)).await.unwrap();
    read_n(&mut c, 2).await;
    assert!(t1.elapsed() >= ms(250), "{:?}", t1.elapsed());
    rig.lane.apply(Fault::Clear);
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn bandwidth_paces_bytes() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    rig.lane.apply(Fault::Bandwidth {
        bytes_per_sec: 4000,
    });
    let p = v311(&publish("t", &[7u8; 2000], QoS::AtMostOnce, None));
    let t0 = Instant::now();
    c.write_all(&p).await.unwrap();
    assert_eq!(read_n(&mut b, p.len()).await, p.to_vec());
    assert!(t0.elapsed() >= ms(450), "{:?}", t0.elapsed());
    // Lifted: ten times the bytes in less than the cap would have taken
    // (5 s), a margin no load on a test machine eats.
    rig.lane.apply(Fault::Bandwidth { bytes_per_sec: 0 });
    let big = v311(&publish("t", &[7u8; 20_000], QoS::AtMostOnce, None));
    let t1 = Instant::now();
    c.write_all(&big).await.unwrap();
    read_n(&mut b, big.len()).await;
    assert!(t1.elapsed() < ms(5000), "uncapped: {:?}", t1.elapsed());
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_are_recorded_and_forwarded() {
    let rig = Rig::new().await;
    let (mut c, mut b) = rig.pair().await;
    // A PUBLISH with QoS 3 frames but does not decode.
    let bad = codec::raw_frame(0x36, b"\x00\x01t\x00\x01x");
    let ping = v311(&Packet::PingReq);
    let mut bytes = bad.to_vec();
    bytes.extend_from_slice(&ping);
    // Then packet type 0: framing is lost, the rest goes through raw.
    bytes.extend_from_slice(b"\x00\x05garbage");
    c.write_all(&bytes).await.unwrap();
    assert_eq!(read_n(&mut b, bytes.len()).await, bytes);
    rig.wait(
        "raw tail",
        |k| matches!(k, EventKind::Malformed { raw, .. } if raw.ends_with(b"garbage")),
    )
    .await;
    let kinds: Vec<_> = rig
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Malformed {
                raw, dir, error, ..
            } => Some(format!("malformed {dir:?} {} {error}", raw.len())),
            EventKind::Packet { packet, .. } => Some(format!("{}", packet.packet_type())),
            _ => None,
        })
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(
        kinds[0].starts_with(&format!("malformed ToBroker {}", bad.len())),
        "{kinds:?}"
    );
    assert_eq!(kinds[1], "PINGREQ");
    assert!(kinds[2].starts_with("malformed ToBroker 9"), "{kinds:?}");
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn set_upstream_moves_new_connections() {
    let rig = Rig::new().await;
    let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
    rig.lane.set_upstream(other.local_addr().unwrap());
    let mut c = TcpStream::connect(rig.lane.addr()).await.unwrap();
    let (mut b, _) = timeout(T, other.accept()).await.unwrap().unwrap();
    c.write_all(b"\xc0\x00").await.unwrap();
    assert_eq!(read_n(&mut b, 2).await, b"\xc0\x00");
    rig.hub.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_broker_resets_the_client() {
    let rec = Recorder::new();
    let hub = Hub::new(rec.clone());
    let gone: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let lane = hub.lane("cloud", gone).await.unwrap();
    let mut c = TcpStream::connect(lane.addr()).await.unwrap();
    expect_reset(&mut c).await;
    let end = Instant::now() + T;
    loop {
        let closed = rec
            .snapshot()
            .events
            .into_iter()
            .find_map(|e| match e.kind {
                EventKind::ConnClosed { reason, .. } => Some(reason),
                _ => None,
            });
        if let Some(r) = closed {
            assert!(matches!(r, CloseReason::UpstreamUnreachable(_)), "{r:?}");
            break;
        }
        assert!(Instant::now() < end);
        tokio::time::sleep(ms(5)).await;
    }
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_shutdown_closes_everything_and_leaves_no_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let rec = Recorder::new();
    let hub = Hub::new(rec.clone());
    let broker = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = broker.local_addr().unwrap();
    let a = hub.lane("device", up).await.unwrap();
    let o = hub.lane("cloud", up).await.unwrap();
    let mut ends = Vec::new();
    for lane in [&a, &o, &a] {
        let c = TcpStream::connect(lane.addr()).await.unwrap();
        let (b, _) = broker.accept().await.unwrap();
        ends.push((c, b));
    }
    // One of them in a blackhole.
    o.apply(Fault::Blackhole);
    let mut ids = Vec::new();
    let end = Instant::now() + T;
    while ids.len() < 3 {
        ids = rec
            .snapshot()
            .events
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::ConnOpened { conn, .. } => Some(conn),
                _ => None,
            })
            .collect();
        assert!(Instant::now() < end);
        tokio::time::sleep(ms(5)).await;
    }
    assert_eq!(
        ids,
        vec![ConnId(1), ConnId(2), ConnId(3)],
        "unique across lanes"
    );
    assert!(metrics.num_alive_tasks() > before);

    hub.shutdown().await;
    // A finished task leaves the runtime's count a moment after it has
    // dropped its last handle (which is what `shutdown` waits for).
    let end = Instant::now() + ms(500);
    while metrics.num_alive_tasks() != before && Instant::now() < end {
        tokio::task::yield_now().await;
    }
    assert_eq!(metrics.num_alive_tasks(), before, "no proxy task left");
    for (c, b) in &mut ends {
        let mut buf = [0u8; 8];
        for s in [c, b] {
            let r = timeout(T, s.read(&mut buf)).await.expect("closed in time");
            assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        }
    }
    let closes: Vec<_> = rec
        .snapshot()
        .events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ConnClosed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(closes, vec![CloseReason::RunEnded; 3]);
    assert!(
        TcpStream::connect(a.addr()).await.is_err(),
        "listener closed"
    );
    assert_eq!(a.open_connections() + o.open_connections(), 0);
    assert!(hub.lane("late", up).await.is_err());
    hub.shutdown().await;
}
