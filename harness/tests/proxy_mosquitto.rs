//! The fault proxy in front of the real mosquitto (`/usr/sbin/mosquitto`,
//! loopback only), driven by a raw MQTT client built on the codec. Skipped
//! with a note when mosquitto is not installed.

use std::io::ErrorKind;
use std::time::Duration;

use bytes::Bytes;
use mqtt_hil::broker::Mosquitto;
use mqtt_hil::history::{CloseReason, Dir, EventKind, Fate, Recorder};
use mqtt_hil::mqtt::codec::{self, Decoder};
use mqtt_hil::mqtt::{
    Ack, Connect, Packet, PacketType, Properties, Publish, QoS, Subscribe, SubscribeFilter, Version,
};
use mqtt_hil::proxy::{Fault, Hub, Lane, PacketRule, RuleAction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

const T: Duration = Duration::from_secs(8);

struct Client {
    sock: TcpStream,
    dec: Decoder,
}

impl Client {
    async fn connect(lane: &Lane, id: &str, keep_alive: u16) -> Client {
        let sock = TcpStream::connect(lane.addr()).await.unwrap();
        let mut c = Client {
            sock,
            dec: Decoder::new(Version::V311),
        };
        c.send(&Packet::Connect(Connect {
            version: Version::V311,
            client_id: id.into(),
            clean_start: true,
            keep_alive,
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }))
        .await;
        match c.recv().await {
            Packet::ConnAck(a) => assert_eq!(a.code, 0),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        c
    }

    async fn send(&mut self, p: &Packet) {
        let bytes = codec::encode(p, Version::V311).unwrap();
        self.sock.write_all(&bytes).await.unwrap();
    }

    async fn try_recv(&mut self, within: Duration) -> Option<Packet> {
        let end = Instant::now() + within;
        loop {
            if let Some((_, p)) = self.dec.next_frame().unwrap() {
                return Some(p.unwrap());
            }
            let mut buf = [0u8; 4096];
            let n = match timeout(
                end.saturating_duration_since(Instant::now()),
                self.sock.read(&mut buf),
            )
            .await
            {
                Err(_) => return None,
                Ok(r) => r.unwrap(),
            };
            assert!(n > 0, "unexpected EOF");
            self.dec.feed(&buf[..n]);
        }
    }

    async fn recv(&mut self) -> Packet {
        self.try_recv(T).await.expect("a packet in time")
    }
}

fn publish(topic: &str, payload: &str, qos: QoS, pid: Option<u16>, dup: bool) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos,
        retain: false,
        topic: topic.into(),
        pid,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        properties: Properties::default(),
    })
}

fn subscribe(filter: &str, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        pid: 1,
        filters: vec![SubscribeFilter {
            filter: filter.into(),
            qos,
            options: 0,
        }],
        properties: Properties::default(),
    })
}

struct Rig {
    rec: Recorder,
    hub: Hub,
    broker: Mosquitto,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Option<Rig> {
        let dir = tempfile::tempdir().unwrap();
        let broker = match Mosquitto::start(dir.path()).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("skipped: {e}");
                return None;
            }
        };
        let rec = Recorder::new();
        let hub = Hub::new(rec.clone());
        Some(Rig {
            rec,
            hub,
            broker,
            _dir: dir,
        })
    }

    async fn lane(&self, actor: &str) -> Lane {
        self.hub.lane(actor, self.broker.addr()).await.unwrap()
    }

    async fn wait(&self, what: &str, f: impl Fn(&EventKind) -> bool) -> Duration {
        let end = Instant::now() + T;
        loop {
            if let Some(e) = self.rec.snapshot().events.into_iter().find(|e| f(&e.kind)) {
                return e.at;
            }
            assert!(Instant::now() < end, "no {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.hub.shutdown().await;
        self.broker.shutdown().await;
    }
}

#[tokio::test]
async fn traffic_through_mosquitto_is_recorded_both_ways_in_order() {
    let Some(rig) = Rig::new().await else { return };
    let lane = rig.lane("cloud").await;
    let mut c = Client::connect(&lane, "cloud-1", 30).await;
    c.send(&subscribe("p/#", QoS::AtLeastOnce)).await;
    assert!(matches!(c.recv().await, Packet::SubAck(_)));
    c.send(&publish("p/1", "hi", QoS::AtLeastOnce, Some(5), false))
        .await;
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(c.recv().await.packet_type());
    }
    got.sort();
    assert_eq!(got, vec![PacketType::Publish, PacketType::PubAck]);
    let seen: Vec<(Dir, PacketType, Fate)> = rig
        .rec
        .snapshot()
        .events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Packet {
                dir, packet, fate, ..
            } => Some((dir, packet.packet_type(), fate)),
            _ => None,
        })
        .collect();
    use Dir::*;
    use PacketType::*;
    assert_eq!(
        &seen[..5],
        &[
            (ToBroker, Connect, Fate::Forwarded),
            (ToClient, ConnAck, Fate::Forwarded),
            (ToBroker, Subscribe, Fate::Forwarded),
            (ToClient, SubAck, Fate::Forwarded),
            (ToBroker, Publish, Fate::Forwarded),
        ]
    );
    // The client acks the delivery; mosquitto's PUBACK and PUBLISH may come
    // in either order.
    rig.stop().await;
}

#[tokio::test]
async fn blackhole_lets_mosquitto_expire_the_client_which_is_reset_at_heal() {
    let Some(rig) = Rig::new().await else { return };
    let lane = rig.lane("device").await;
    let mut c = Client::connect(&lane, "dut-ka", 1).await;
    let t0 = rig.rec.elapsed();
    lane.apply(Fault::Blackhole);
    c.send(&Packet::PingReq).await;
    // mosquitto gives up no earlier than 1.5 x keep alive; 2.0.11 checks on a
    // coarse timer and takes about 5s (see scenarios/deviations/mosquitto.toml).
    let closed_at = rig
        .wait("broker close", |k| {
            matches!(
                k,
                EventKind::ConnClosed {
                    reason: CloseReason::BrokerClosed,
                    ..
                }
            )
        })
        .await;
    let after = closed_at - t0;
    assert!(
        after >= Duration::from_millis(1400),
        "closed after {after:?}"
    );
    eprintln!("mosquitto closed the silent client after {after:?}");
    // The client heard nothing: no PINGRESP, no FIN.
    assert_eq!(c.try_recv(Duration::from_millis(300)).await, None);
    lane.apply(Fault::Heal);
    let mut buf = [0u8; 16];
    match timeout(T, c.sock.read(&mut buf)).await.expect("in time") {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected ECONNRESET at heal, got {other:?}"),
    }
    // The PINGREQ sent into the outage was recorded as held, never released.
    let fates: Vec<Fate> = rig
        .rec
        .snapshot()
        .events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Packet {
                packet: Packet::PingReq,
                fate,
                ..
            } => Some(fate),
            _ => None,
        })
        .collect();
    assert_eq!(fates, vec![Fate::Held]);
    rig.stop().await;
}

#[tokio::test]
async fn dropping_the_first_pubrec_forces_a_qos2_retransmission() {
    let Some(rig) = Rig::new().await else { return };
    let lane = rig.lane("device").await;
    let mut c = Client::connect(&lane, "dut-q2", 30).await;
    lane.apply(Fault::Rule(PacketRule {
        dir: Some(Dir::ToClient),
        packet: PacketType::PubRec,
        nth: 1,
        action: RuleAction::Drop,
        times: 1,
    }));
    c.send(&publish("q2/x", "once", QoS::ExactlyOnce, Some(9), false))
        .await;
    assert_eq!(
        c.try_recv(Duration::from_millis(500)).await,
        None,
        "PUBREC dropped"
    );
    c.send(&publish("q2/x", "once", QoS::ExactlyOnce, Some(9), true))
        .await;
    assert_eq!(c.recv().await, Packet::PubRec(Ack::new(9)));
    c.send(&Packet::PubRel(Ack::new(9))).await;
    assert_eq!(c.recv().await, Packet::PubComp(Ack::new(9)));
    rig.stop().await;
}

#[tokio::test]
async fn sever_resets_the_client_and_mosquitto_sees_it_go() {
    let Some(rig) = Rig::new().await else { return };
    let lane = rig.lane("device").await;
    let mut c = Client::connect(&lane, "dut-sv", 30).await;
    lane.apply(Fault::Sever);
    let mut buf = [0u8; 16];
    match timeout(T, c.sock.read(&mut buf)).await.expect("in time") {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected ECONNRESET, got {other:?}"),
    }
    // The same client id connects again at once (mosquitto dropped the old one).
    let mut again = Client::connect(&lane, "dut-sv", 30).await;
    again.send(&Packet::PingReq).await;
    assert_eq!(again.recv().await, Packet::PingResp);
    rig.stop().await;
}
