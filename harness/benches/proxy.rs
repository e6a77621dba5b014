//! `cargo bench --bench proxy`: what the fault proxy costs, measured against
//! mosquitto on loopback in the same run, direct and through proxy lanes
//! (no faults armed, every packet decoded and recorded):
//!
//! - throughput: QoS 0 messages a subscriber receives per second while a
//!   publisher sends as fast as it can;
//! - latency: QoS 1 PUBLISH -> PUBACK round trips, one at a time, p50/p99.
//!
//! Printed as figures and proxy/direct ratios, and what the proxy costs
//! per message (ns through the proxy minus ns direct). Throughput is
//! measured in alternating rounds, direct then proxy, and the median of
//! each is compared: on a shared machine a burst of load hits one round,
//! not one side. Beside the wall clock, the CPU time each round took in
//! this process (clients, and the proxy when it is in the path) and in
//! mosquitto: on a loaded machine that is the figure that holds still.
//! Takes well under a minute.

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
const ROUNDS: usize = 5;
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

/// CPU time this process has used (all threads).
fn cpu_self() -> Duration {
    // SAFETY: getrusage writes into the struct we hand it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU time our child processes (mosquitto) have used so far, from
/// /proc (clock ticks of 10 ms: fine over a round of ~0.5 s).
fn cpu_children() -> Duration {
    let mut ticks = 0u64;
    let tasks = std::fs::read_dir("/proc/self/task").into_iter().flatten();
    for t in tasks.flatten() {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the command's closing parenthesis; utime and
            // stime are the 14th and 15th of the line.
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() > 12 {
                    ticks += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

struct Round {
    /// Messages per second.
    rate: f64,
    received: usize,
    /// CPU ns per message in this process and in the broker.
    cpu_self: f64,
    cpu_broker: f64,
}

/// QoS 0 messages per second from one publisher to one subscriber, how
/// many arrived, and the CPU time it took.
async fn throughput(pub_addr: SocketAddr, sub_addr: SocketAddr, tag: &str) -> Round {
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
    let (self0, broker0) = (cpu_self(), cpu_children());
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
    let per = |d: Duration| d.as_nanos() as f64 / got.max(1) as f64;
    let (cpu_self, cpu_broker) = (per(cpu_self() - self0), per(cpu_children() - broker0));
    drop(writer.await);
    Round {
        rate: got as f64 / took.as_secs_f64(),
        received: got,
        cpu_self,
        cpu_broker,
    }
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

        let mut ds = Vec::new();
        let mut ps = Vec::new();
        let (mut dn, mut pn) = (usize::MAX, usize::MAX);
        let (mut dcpu, mut pcpu) = (Vec::new(), Vec::new());
        let (mut dbro, mut pbro) = (Vec::new(), Vec::new());
        let before = rec.len();
        for r in 0..ROUNDS {
            let d = throughput(direct, direct, &format!("d{r}")).await;
            ds.push(d.rate);
            dn = dn.min(d.received);
            dcpu.push(d.cpu_self);
            dbro.push(d.cpu_broker);
            let p = throughput(pub_lane.addr(), sub_lane.addr(), &format!("p{r}")).await;
            ps.push(p.rate);
            pn = pn.min(p.received);
            pcpu.push(p.cpu_self);
            pbro.push(p.cpu_broker);
        }
        let recorded = rec.len() - before;
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let (d, p) = (median(&mut ds), median(&mut ps));
        let show = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{:.0}k", x / 1e3))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "QoS 0 throughput ({MESSAGES} x 64-byte messages, 1 publisher -> 1 subscriber, \
             median of {ROUNDS} alternating rounds)"
        );
        println!(
            "  direct        {d:>10.0} msg/s   (rounds {}; fewest received {dn})",
            show(&ds)
        );
        println!(
            "  through proxy {p:>10.0} msg/s   (rounds {}; fewest received {pn})   ratio {:.2}",
            show(&ps),
            p / d
        );
        // Each message crosses two lanes: the publisher's (to the broker)
        // and the subscriber's (to the client).
        let per_msg = 1e9 / p - 1e9 / d;
        println!(
            "  proxy cost    {per_msg:>10.0} ns/message of wall time ({:.0} ns per packet per lane), \
             every packet decoded and recorded ({recorded} events)",
            per_msg / 2.0
        );
        let (dc, pc) = (median(&mut dcpu), median(&mut pcpu));
        let (db, pb) = (median(&mut dbro), median(&mut pbro));
        println!(
            "  CPU per message: this process {dc:.0} ns direct, {pc:.0} ns through the proxy \
             (proxy {:.0} ns/message, {:.0} ns per packet per lane); mosquitto {db:.0} ns direct, \
             {pb:.0} ns through the proxy",
            pc - dc,
            (pc - dc) / 2.0
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
