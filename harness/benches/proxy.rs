//! `cargo bench --bench proxy`: what the fault proxy costs, measured against
//! mosquitto on loopback in the same run, direct and through proxy lanes
//! (no faults armed, every packet decoded and recorded):
//!
//! - throughput: QoS 0 messages a subscriber receives per second while a
//!   publisher sends as fast as it can;
//! - latency: QoS 1 PUBLISH -> PUBACK round trips, one at a time, p50/p99.
//!
//! Printed as figures and proxy/direct ratios. Takes well under 30 s.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_hil::broker::Mosquitto;
use mqtt_hil::history::Recorder;
use mqtt_hil::mqtt::codec::{self, Decoder};
use mqtt_hil::mqtt::{
    Connect, Packet, Properties, Publish, QoS, Subscribe, SubscribeFilter, Version,
};
use mqtt_hil::proxy::Hub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MESSAGES: usize = 50_000;
const ROUND_TRIPS: usize = 2_000;

struct Client {
    sock: TcpStream,
    dec: Decoder,
}

fn enc(p: &Packet) -> Bytes {
    codec::encode(p, Version::V311).expect("encodes")
}

impl Client {
    async fn connect(addr: SocketAddr, id: &str) -> Client {
        let sock = TcpStream::connect(addr).await.expect("connect");
        sock.set_nodelay(true).unwrap();
        let mut c = Client {
            sock,
            dec: Decoder::new(Version::V311),
        };
        c.sock
            .write_all(&enc(&Packet::Connect(Connect {
                version: Version::V311,
                client_id: id.into(),
                clean_start: true,
                keep_alive: 60,
                will: None,
                username: None,
                password: None,
                properties: Properties::default(),
            })))
            .await
            .unwrap();
        assert!(matches!(c.recv().await, Some(Packet::ConnAck(_))));
        c
    }

    async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some((_, p)) = self.dec.next_frame().unwrap() {
                return Some(p.unwrap());
            }
            let mut buf = [0u8; 64 * 1024];
            let n = self.sock.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            self.dec.feed(&buf[..n]);
        }
    }
}

fn publish(qos: QoS, pid: Option<u16>, payload: &Bytes) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: "bench/t".into(),
        pid,
        payload: payload.clone(),
        properties: Properties::default(),
    })
}

/// QoS 0 messages per second from one publisher to one subscriber, and how
/// many arrived.
async fn throughput(pub_addr: SocketAddr, sub_addr: SocketAddr, tag: &str) -> (f64, usize) {
    let mut sub = Client::connect(sub_addr, &format!("sub-{tag}")).await;
    sub.sock
        .write_all(&enc(&Packet::Subscribe(Subscribe {
            pid: 1,
            filters: vec![SubscribeFilter {
                filter: "bench/t".into(),
                qos: QoS::AtMostOnce,
                options: 0,
            }],
            properties: Properties::default(),
        })))
        .await
        .unwrap();
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    let mut publ = Client::connect(pub_addr, &format!("pub-{tag}")).await;
    let frame = enc(&publish(
        QoS::AtMostOnce,
        None,
        &Bytes::from(vec![b'x'; 64]),
    ));
    let mut batch = BytesMut::new();
    for _ in 0..100 {
        batch.extend_from_slice(&frame);
    }
    let batch = batch.freeze();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..MESSAGES / 100 {
            publ.sock.write_all(&batch).await.unwrap();
        }
        publ
    });
    let mut got = 0usize;
    while got < MESSAGES {
        match tokio::time::timeout(Duration::from_secs(2), sub.recv()).await {
            Ok(Some(Packet::Publish(_))) => got += 1,
            Ok(Some(_)) => {}
            _ => break, // mosquitto may shed QoS 0 under load
        }
    }
    let took = start.elapsed();
    drop(writer.await);
    (got as f64 / took.as_secs_f64(), got)
}

/// QoS 1 PUBLISH -> PUBACK round trips, one at a time: (p50, p99).
async fn latency(addr: SocketAddr, tag: &str) -> (Duration, Duration) {
    let mut c = Client::connect(addr, &format!("lat-{tag}")).await;
    let payload = Bytes::from_static(b"ping");
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS {
        let pid = (i % 60_000) as u16 + 1;
        let frame = enc(&publish(QoS::AtLeastOnce, Some(pid), &payload));
        let t = Instant::now();
        c.sock.write_all(&frame).await.unwrap();
        loop {
            match c.recv().await {
                Some(Packet::PubAck(a)) if a.pid == pid => break,
                Some(_) => {}
                None => panic!("connection lost"),
            }
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let broker = match Mosquitto::start(dir.path()).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("proxy bench skipped: {e}");
                return;
            }
        };
        let direct = broker.addr();
        let rec = Recorder::new();
        let hub = Hub::new(rec.clone());
        let pub_lane = hub.lane("publisher", direct).await.unwrap();
        let sub_lane = hub.lane("subscriber", direct).await.unwrap();

        // Warm up both paths.
        throughput(direct, direct, "warm-d").await;
        throughput(pub_lane.addr(), sub_lane.addr(), "warm-p").await;

        let (d, dn) = throughput(direct, direct, "d").await;
        let (p, pn) = throughput(pub_lane.addr(), sub_lane.addr(), "p").await;
        println!("QoS 0 throughput ({MESSAGES} x 64-byte messages, 1 publisher -> 1 subscriber)");
        println!("  direct        {d:>10.0} msg/s   ({dn} received)");
        println!(
            "  through proxy {p:>10.0} msg/s   ({pn} received)   ratio {:.2}",
            p / d
        );

        let (d50, d99) = latency(direct, "d").await;
        let (p50, p99) = latency(pub_lane.addr(), "p").await;
        println!("QoS 1 PUBLISH -> PUBACK round trip ({ROUND_TRIPS} sequential)");
        println!("  direct        p50 {:>8}   p99 {:>8}", us(d50), us(d99));
        println!(
            "  through proxy p50 {:>8}   p99 {:>8}   added p50 {} p99 {}",
            us(p50),
            us(p99),
            us(p50.saturating_sub(d50)),
            us(p99.saturating_sub(d99))
        );
        println!("  ({} events recorded)", rec.len());

        hub.shutdown().await;
        broker.shutdown().await;
    });
}
