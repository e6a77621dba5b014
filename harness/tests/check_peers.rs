//! Seeded faults in test peers, caught by the checkers every scenario runs.
//! Each test plays a misbehaving fake broker or fake device on 127.0.0.1
//! over real TCP through the fault proxy, the way a scenario's peers talk,
//! and judges the recorded history with `check::always()`: the fault must
//! be reported under its rule, and nothing else may be.
//! `MQTT_HIL_RECORD_HISTORIES=DIR` writes each history in the fixture
//! format (tests/fixtures/histories/peer_*.hist are such recordings).

use crate::check_util;

use std::time::Duration;

use bytes::Bytes;
use mqtt_hil::history::{EventKind, History, Recorder};
use mqtt_hil::mqtt::{codec, Ack, ConnAck, Connect, Packet, Properties, Publish, QoS, Version};
use mqtt_hil::proxy::{Hub, Lane};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(5);

fn enc(p: &Packet) -> Bytes {
    codec::encode(p, Version::V311).expect("encodes")
}

fn connect(id: &str) -> Packet {
    Packet::Connect(Connect {
        version: Version::V311,
        client_id: id.into(),
        clean_start: false,
        keep_alive: 60,
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    })
}

fn connack() -> Packet {
    Packet::ConnAck(ConnAck {
        session_present: false,
        code: 0,
        properties: Properties::default(),
    })
}

fn publish(qos: QoS, pid: u16, payload: &str) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: "dut/1/data".into(),
        pid: Some(pid),
        payload: Bytes::from(payload.to_string()),
        properties: Properties::default(),
    })
}

/// The proxy with one lane (`device`) to a fake broker the test plays.
struct Peers {
    rec: Recorder,
    hub: Hub,
    lane: Lane,
    broker: TcpListener,
}

impl Peers {
    async fn new() -> Peers {
        let rec = Recorder::new();
        let hub = Hub::new(rec.clone());
        let broker = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lane = hub
            .lane("device", broker.local_addr().unwrap())
            .await
            .unwrap();
        Peers {
            rec,
            hub,
            lane,
            broker,
        }
    }

    /// A device connection through the proxy and the fake broker's end,
    /// connected (CONNECT, CONNACK).
    async fn connected(&self, id: &str) -> (TcpStream, TcpStream) {
        let mut dev = TcpStream::connect(self.lane.addr()).await.unwrap();
        let (mut brk, _) = timeout(T, self.broker.accept()).await.unwrap().unwrap();
        let c = enc(&connect(id));
        dev.write_all(&c).await.unwrap();
        read_n(&mut brk, c.len()).await;
        let a = enc(&connack());
        brk.write_all(&a).await.unwrap();
        read_n(&mut dev, a.len()).await;
        (dev, brk)
    }

    /// Ends the run as the runner does and judges it with every always-on
    /// checker; returns the rules broken and the history.
    async fn judge(self, name: &str) -> (Vec<String>, History) {
        self.rec.record(EventKind::Teardown);
        self.hub.shutdown().await;
        let h = self.rec.snapshot();
        if let Ok(dir) = std::env::var("MQTT_HIL_RECORD_HISTORIES") {
            let path = std::path::Path::new(&dir).join(format!("peer_{name}.hist"));
            std::fs::write(&path, check_util::to_hist(&h)).unwrap();
        }
        let mut rules = Vec::new();
        for c in mqtt_hil::check::always() {
            let v = c.check(&h);
            for x in &v.violations {
                eprintln!("{}: {x}", c.name());
            }
            rules.extend(v.violations.iter().map(|x| x.rule.clone()));
        }
        (rules, h)
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

#[tokio::test]
async fn a_device_subscribing_with_packet_id_0_is_caught() {
    let p = Peers::new().await;
    let (mut dev, mut brk) = p.connected("dut-1").await;
    // SUBSCRIBE pid 0, filter dut/1/cmd QoS 1: the codec rejects it.
    let bad = codec::raw_frame(0x82, b"\x00\x00\x00\x09dut/1/cmd\x01");
    dev.write_all(&bad).await.unwrap();
    // The proxy forwards it as it is; the fake broker answers as a lax
    // broker would, so only the device is at fault.
    read_n(&mut brk, bad.len()).await;
    let ack = codec::raw_frame(0x90, b"\x00\x00\x01");
    brk.write_all(&ack).await.unwrap();
    read_n(&mut dev, ack.len()).await;
    let (rules, _) = p.judge("subscribe_pid_0").await;
    // The broker's SUBACK for pid 0 is malformed too: both are reported,
    // the SUBACK as `malformed-packet` (MQTT-2.3.1-1 numbers SUBSCRIBE,
    // UNSUBSCRIBE and PUBLISH only; a SUBACK echoing its request's id keeps
    // MQTT-2.3.1-7).
    assert_eq!(rules, vec!["MQTT-2.3.1-1", "malformed-packet"], "{rules:?}");
}

#[tokio::test]
async fn a_broker_that_never_completes_a_pubrel_is_caught() {
    let p = Peers::new().await;
    let (mut dev, mut brk) = p.connected("dut-1").await;
    let pb = enc(&publish(QoS::ExactlyOnce, 1, "7"));
    dev.write_all(&pb).await.unwrap();
    read_n(&mut brk, pb.len()).await;
    let rec = enc(&Packet::PubRec(Ack::new(1)));
    brk.write_all(&rec).await.unwrap();
    read_n(&mut dev, rec.len()).await;
    let rel = enc(&Packet::PubRel(Ack::new(1)));
    dev.write_all(&rel).await.unwrap();
    read_n(&mut brk, rel.len()).await;
    // The seeded fault: no PUBCOMP, the connection stands.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (rules, _) = p.judge("no_pubcomp").await;
    assert_eq!(rules, vec!["MQTT-4.3.3-2"], "{rules:?}");
}

#[tokio::test]
async fn a_broker_that_keeps_both_connections_of_a_client_id_is_caught() {
    let p = Peers::new().await;
    let (_dev1, _brk1) = p.connected("dut-1").await;
    // The device reconnects (say after a board reset) with the same id; the
    // fake broker accepts and never closes the first connection.
    let (_dev2, _brk2) = p.connected("dut-1").await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (rules, _) = p.judge("takeover_ignored").await;
    assert_eq!(rules, vec!["MQTT-3.1.4-2"], "{rules:?}");
}

#[tokio::test]
async fn a_broker_closing_a_healthy_connection_is_caught() {
    let p = Peers::new().await;
    let (mut dev, mut brk) = p.connected("dut-1").await;
    let pb = enc(&publish(QoS::AtLeastOnce, 1, "1"));
    dev.write_all(&pb).await.unwrap();
    read_n(&mut brk, pb.len()).await;
    let ack = enc(&Packet::PubAck(Ack::new(1)));
    brk.write_all(&ack).await.unwrap();
    read_n(&mut dev, ack.len()).await;
    // The seeded fault: the broker hangs up on a well-behaved client.
    drop(brk);
    let mut buf = [0u8; 8];
    let _ = timeout(T, dev.read(&mut buf)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (rules, _) = p.judge("unprovoked_close").await;
    assert_eq!(rules, vec!["broker-closed"], "{rules:?}");
}

#[tokio::test]
async fn a_well_behaved_takeover_passes() {
    let p = Peers::new().await;
    let (_dev1, brk1) = p.connected("dut-1").await;
    let mut dev2 = TcpStream::connect(p.lane.addr()).await.unwrap();
    let (mut brk2, _) = timeout(T, p.broker.accept()).await.unwrap().unwrap();
    let c = enc(&connect("dut-1"));
    dev2.write_all(&c).await.unwrap();
    read_n(&mut brk2, c.len()).await;
    // The broker closes the old connection, then accepts the new one.
    drop(brk1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let a = enc(&connack());
    brk2.write_all(&a).await.unwrap();
    read_n(&mut dev2, a.len()).await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (rules, _) = p.judge("takeover_good").await;
    assert!(rules.is_empty(), "{rules:?}");
}
