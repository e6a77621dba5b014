//! `cargo bench --bench observe`: what `observe`'s live checks cost as a
//! session grows (issue 17: they used to re-judge the whole history every
//! 100 ms tick, a full core after ~10,000 events). 100,000 events (20,000
//! QoS 1 messages from a 5.0 device to a 5.0 subscriber of `dut/+/data`,
//! each with a user property, forwarded with it and the subscription's
//! identifier, so that the 5.0 forwarding rules pair every delivery:
//! PUBLISH, PUBACK, forwarded PUBLISH, delivery, PUBACK) are fed as a session at 100
//! events/s would record them, 10 per 100 ms tick, with the session clock
//! simulated, twice: (1) through the incremental checkers alone, the
//! history going to a spill file as it comes (observe::Live as it runs
//! when every checker is incremental; the file read back at the end, for
//! the session's files), (2) as `observe` judges them with its real
//! checkers (observe::Live::spilling: the same when all are incremental;
//! else incremental checkers per event, the others over the whole history
//! at observe::Pace, the history held in memory once for them and for the
//! files written at the end). Printed: which checkers judge
//! incrementally; per 10,000 events CPU time per event (getrusage) and
//! resident memory (/proc/self/statm); RSS at the start and the end; then
//! what each checker's final verdict costs. Flat CPU per event and flat
//! RSS are the target; while batch checkers remain, memory in 2 grows by
//! the history itself. Last, what RSS cannot say: the heap each
//! incremental checker holds, fed the session alone (live bytes, counted
//! by this bench's allocator), after 10,000, 50,000 and 100,000 events, and
//! what it grew by per event over the last 50,000 — which checker's state
//! is not flat, and by how much.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_hil::history::{ConnId, Delivery, Dir, Event, EventKind, Fate};
use mqtt_hil::mqtt::codec;
use mqtt_hil::mqtt::{
    props, Ack, ConnAck, Connect, Packet, PropValue, Properties, Property, Publish, QoS, SubAck,
    Subscribe, SubscribeFilter, Version,
};
use mqtt_hil::observe::{default_checks, Live, Watch};

/// Events fed: 100,000, or `MQTT_HIL_BENCH_OBSERVE_EVENTS` (a multiple of
/// 20,000). 600,000 carries the device's packet ids (1..=60,000) through
/// one full wrap by the half-way mark, so the growth over the second half
/// shows what the tables keyed by packet id hold once ids are reused, as
/// they are on any long-running device.
fn events() -> usize {
    std::env::var("MQTT_HIL_BENCH_OBSERVE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n > 0 && n.is_multiple_of(2 * BLOCK))
        .unwrap_or(100_000)
}
const PER_TICK: usize = 10;
const BLOCK: usize = 10_000;

/// Both the device (connection 1) and the cloud (connection 2) speak 5.0.
fn packet(conn: u32, actor: &str, dir: Dir, p: Packet) -> EventKind {
    let version = Version::V5;
    EventKind::Packet {
        conn: ConnId(conn),
        actor: actor.into(),
        dir,
        raw: codec::encode(&p, version).expect("encodes"),
        packet: p,
        fate: Fate::Forwarded,
    }
}

/// The `n`-th event of the session: two connections opened and accepted
/// first, the cloud's subscription (as a real session starts, so that the
/// checkers that pair a delivery with the message it forwards have a
/// session to pair it in), then the messages.
fn event(n: usize) -> EventKind {
    let open = |conn: u32, actor: &str| EventKind::ConnOpened {
        conn: ConnId(conn),
        actor: actor.into(),
    };
    let connect = |conn: u32, actor: &str| {
        packet(
            conn,
            actor,
            Dir::ToBroker,
            Packet::Connect(Connect {
                version: Version::V5,
                client_id: actor.into(),
                clean_start: true,
                keep_alive: 60,
                will: None,
                username: None,
                password: None,
                properties: Properties::default(),
            }),
        )
    };
    let connack = |conn: u32, actor: &str| {
        packet(
            conn,
            actor,
            Dir::ToClient,
            Packet::ConnAck(ConnAck {
                session_present: false,
                code: 0,
                properties: Properties::default(),
            }),
        )
    };
    match n {
        0 => return open(1, "device"),
        1 => return connect(1, "device"),
        2 => return connack(1, "device"),
        3 => return open(2, "cloud"),
        4 => return connect(2, "cloud"),
        5 => return connack(2, "cloud"),
        6 => {
            return packet(
                2,
                "cloud",
                Dir::ToBroker,
                Packet::Subscribe(Subscribe {
                    pid: 1,
                    filters: vec![SubscribeFilter {
                        filter: "dut/+/data".into(),
                        qos: QoS::AtLeastOnce,
                        options: 0,
                    }],
                    properties: Properties(vec![sub_id()]),
                }),
            )
        }
        7 => {
            return packet(
                2,
                "cloud",
                Dir::ToClient,
                Packet::SubAck(SubAck {
                    pid: 1,
                    codes: vec![1],
                    properties: Properties::default(),
                }),
            )
        }
        _ => {}
    }
    let n = n - 6;
    let i = (n - 2) / 5;
    let pid = (i % 60_000 + 1) as u16;
    let payload = Bytes::from(format!("reading-{i}"));
    let unit = Property {
        id: props::USER_PROPERTY,
        value: PropValue::Pair("unit".into(), "lux".into()),
    };
    let publish = |pid, properties: Vec<Property>| {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "dut/1/data".into(),
            pid: Some(pid),
            payload: payload.clone(),
            properties: Properties(properties),
        })
    };
    match (n - 2) % 5 {
        0 => packet(1, "device", Dir::ToBroker, publish(pid, vec![unit])),
        1 => packet(1, "device", Dir::ToClient, Packet::PubAck(Ack::new(pid))),
        2 => packet(
            2,
            "cloud",
            Dir::ToClient,
            publish(pid, vec![unit, sub_id()]),
        ),
        3 => EventKind::Delivered {
            actor: "cloud".into(),
            msg: Delivery {
                topic: "dut/1/data".into(),
                payload,
                qos: QoS::AtLeastOnce,
                retain: false,
                dup: false,
                properties: Default::default(),
            },
        },
        _ => packet(2, "cloud", Dir::ToBroker, Packet::PubAck(Ack::new(pid))),
    }
}

/// The cloud's subscription identifier, on its SUBSCRIBE and on every
/// message forwarded to it [MQTT-3.3.4-3].
fn sub_id() -> Property {
    Property {
        id: props::SUBSCRIPTION_ID,
        value: PropValue::VarInt(1),
    }
}

/// The system allocator, counting the bytes live (for the per-checker
/// table: RSS does not shrink when memory is freed, so it cannot tell
/// one checker's state from another's).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only a
// counter is updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Each incremental checker fed the session alone: the heap it holds
/// after 10,000 events, half of them and all of them (by default 50,000
/// and 100,000), and its growth per event over the second half (0 for
/// state bounded by what the protocol keeps open).
fn state_per_checker() {
    let total = events();
    println!(
        "\nheap each incremental checker holds, fed the session alone (KiB after so many events; growth per event over the last {}):",
        total - total / 2
    );
    println!(
        "  {:<16} {:>9} {:>9} {:>9} {:>10}",
        "checker",
        BLOCK,
        total / 2,
        total,
        "B/event"
    );
    let marks = [BLOCK, total / 2, total];
    for c in mqtt_hil::check::always()
        .into_iter()
        .chain(default_checks().iter().map(mqtt_hil::check::build))
    {
        let base = live_bytes();
        let Some(mut inc) = c.incremental() else {
            continue;
        };
        let mut held = Vec::new();
        for n in 0..total {
            inc.feed(&Event {
                seq: n as u64,
                at: Duration::from_millis((n / PER_TICK) as u64 * 100),
                kind: event(n),
            });
            if marks.contains(&(n + 1)) {
                held.push(live_bytes() - base);
            }
        }
        let kib = |b: isize| b as f64 / 1024.0;
        println!(
            "  {:<16} {:>9.1} {:>9.1} {:>9.1} {:>10.1}",
            c.name(),
            kib(held[0]),
            kib(held[1]),
            kib(held[2]),
            (held[2] - held[1]) as f64 / (total - total / 2) as f64
        );
    }
}

fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// Feeds the session's events to `feed`, tick by tick, printing per block
/// CPU per event and RSS; returns RSS at the start and at the end (MiB)
/// and the first and last block's CPU per event (µs).
fn session(mut feed: impl FnMut(Vec<Event>, Duration) -> usize) -> (f64, f64, f64, f64) {
    let rss_start = rss_mib();
    println!("RSS at start: {rss_start:.1} MiB");
    println!(
        "{:>8}  {:>12}  {:>9}  {:>9}",
        "events", "CPU/event", "RSS MiB", "printed"
    );
    let (mut block_cpu, mut printed) = (cpu(), 0usize);
    let mut blocks: Vec<f64> = Vec::new();
    let mut n = 0;
    while n < events() {
        let now = Duration::from_millis((n / PER_TICK) as u64 * 100);
        let new: Vec<Event> = (n..n + PER_TICK)
            .map(|k| Event {
                seq: k as u64,
                at: now,
                kind: event(k),
            })
            .collect();
        n += PER_TICK;
        printed += feed(new, now);
        if n % BLOCK == 0 {
            let c = cpu();
            let per_event = (c - block_cpu).as_secs_f64() * 1e6 / BLOCK as f64;
            blocks.push(per_event);
            println!(
                "{n:>8}  {per_event:>9.1} µs  {:>9.1}  {printed:>9}",
                rss_mib()
            );
            block_cpu = c;
        }
    }
    let rss_end = rss_mib();
    let (first, last) = (blocks[0], blocks[blocks.len() - 1]);
    println!(
        "CPU per event: first {BLOCK} events {first:.1} µs, last {BLOCK} {last:.1} µs ({:.2} x)",
        last / first
    );
    println!(
        "RSS at end: {rss_end:.1} MiB ({:+.0} bytes per event)",
        (rss_end - rss_start) * 1024.0 * 1024.0 / events() as f64
    );
    (rss_start, rss_end, first, last)
}

fn main() {
    println!(
        "observe: {} events at 100 events/s (simulated clock), {PER_TICK} per 100 ms tick",
        events()
    );
    let modes = Watch::new(&default_checks()).modes();
    let names = |inc: bool| -> Vec<String> {
        modes
            .iter()
            .filter(|(_, i)| *i == inc)
            .map(|(n, _)| n.clone())
            .collect()
    };
    println!(
        "incremental ({}): {}",
        names(true).len(),
        names(true).join(", ")
    );
    println!(
        "whole history at the pace ({}): {}",
        names(false).len(),
        names(false).join(", ")
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let spill = dir.path().join(mqtt_hil::observe::SPILL);

    // 1. The incremental checkers alone, the history spilled to a file as
    // it comes: what observe does once every checker it runs has an
    // incremental form (memory is what the checkers' state needs).
    println!(
        "\n1. the {} incremental checkers alone, the history spilled to a file (observe::Live with no batch checker)",
        names(true).len()
    );
    let incremental: Vec<_> = mqtt_hil::check::always()
        .into_iter()
        .chain(default_checks().iter().map(mqtt_hil::check::build))
        .filter(|c| c.incremental().is_some())
        .collect();
    let mut live = Live::spilling(Watch::of(incremental), &spill).expect("spill file");
    assert!(live.spills());
    session(|new, now| live.feed(new, now).len());
    // Read back (for the session's files) after 2, so that 2 starts from
    // the same heap as before the spill file existed.
    let spilled = live;

    // 2. The session as `observe` judges it (observe::Live::spilling with
    // its real checkers): while some checker judges only whole histories,
    // the history is held in memory once (for them and for the files).
    let mut live = Live::spilling(Watch::new(&default_checks()), &dir.path().join("2.spill"))
        .expect("spill file");
    println!(
        "\n2. observe's judging (observe::Live), {}",
        if live.spills() {
            "every checker incremental: the history spilled to a file".to_string()
        } else {
            format!(
                "history in memory for the {} batch checker(s), judged at the pace",
                names(false).len()
            )
        }
    );
    let wall = Instant::now();
    session(|new, now| live.feed(new, now).len());
    let (watch, history) = live.finish(Vec::new()).expect("reads back");
    let t = Instant::now();
    let verdicts = watch.verdicts(&history);
    let bad: usize = verdicts.iter().map(|v| v.violations.len()).sum();
    println!(
        "final full judgement: {:.2} s, {bad} violation(s); fed in {:.1} s wall",
        t.elapsed().as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
    println!("what each checker's final verdict costs:");
    for (name, cost) in watch.costs(&history) {
        println!("  {name:<16} {:>8.1} ms", cost.as_secs_f64() * 1e3);
    }
    drop((watch, history));
    let t = Instant::now();
    let (_, h) = spilled.finish(Vec::new()).expect("reads back");
    println!(
        "\n1. (end) its history read back for the session's files: {} events in {:.2} s, RSS then {:.1} MiB",
        h.events.len(),
        t.elapsed().as_secs_f64(),
        rss_mib()
    );
    drop(h);
    state_per_checker();
}
