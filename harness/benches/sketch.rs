//! `cargo bench --bench sketch`: what a user's sketch costs, in one run.
//!
//! - build time of a sketch with one library (firmware/sketches/
//!   photocell_feeds with firmware/libraries/HilFeeds) through the library
//!   API of `harness/src/sketch`, as `mqtt-hil build` runs it: cold (an
//!   empty cache folder: the core, lwIP, soft-float, the library and the
//!   sketch are compiled) and cached (the same build again: a lookup);
//! - busy-wait latency, data arrival to the firmware reacting, measured on
//!   the device's proxy lane from the PUBLISH the harness forwarded to the
//!   device to the device's answer: firmware/sketches/busy_wait on the
//!   emulated board (never calls delay(), spins on `client.available()`;
//!   its answer is the echo on busy/out), next to the test agent on the
//!   host build (firmware/host: `poll()` on its socket; its answer is the
//!   PUBACK of a QoS 1 message), and the same agent on the emulated board;
//!   median of ROUND_TRIPS each, and the board/host ratio.
//!
//! Everything runs through the harness's own runner against a mosquitto it
//! starts on loopback; every process it starts is stopped by the runner.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::history::{Dir, EventKind, History};
use mqtt_hil::mqtt::Packet;
use mqtt_hil::runner::{self, RunConfig};
use mqtt_hil::scenario::{self, Scenario};
use mqtt_hil::sketch::{self, Env, Request, Warnings};
use mqtt_hil::target::{Firmware, TargetSpec};

const CACHED_BUILDS: usize = 5;
const ROUND_TRIPS: usize = 20;

/// The busy-wait sketch: one message to warm QEMU's translation cache,
/// then ROUND_TRIPS measured ones, one at a time, each echoed.
fn busy_wait_scenario() -> String {
    let mut s = String::from(
        "name = \"bench: busy wait\"\n[device]\nautonomous = true\n[observer.cloud]\n\
         [[step]]\nexpect = \"connected\"\nwithin = \"20s\"\ntimeout = \"21s\"\n\
         [[step]]\nexpect = \"packet\"\npacket = \"SUBACK\"\ndir = \"to_client\"\n\
         [[step]]\nobserver.cloud = \"subscribe\"\nfilter = \"busy/out\"\nqos = 0\n",
    );
    for i in 0..=ROUND_TRIPS {
        s += &format!(
            "[[step]]\nobserver.cloud = \"publish\"\ntopic = \"busy/in\"\npayload = \"m{i}\"\n\
             [[step]]\nexpect = \"message\"\nactor = \"cloud\"\ntopic = \"busy/out\"\npayload = \"m{i}\"\n\
             [[step]]\nwait = \"20ms\"\n"
        );
    }
    s + "[[step]]\nobserver.cloud = \"publish\"\ntopic = \"busy/in\"\npayload = \"stop\"\n\
         [[step]]\nexpect = \"closed\"\n"
}

/// The agent (driven): QoS 1 messages to it, each answered by its PUBACK.
fn agent_scenario() -> String {
    let mut s = String::from(
        "name = \"bench: agent latency\"\n[device]\nclient_id = \"bench-lat\"\n[observer.cloud]\n\
         [[step]]\ndevice = \"connect\"\n\
         [[step]]\ndevice = \"subscribe\"\nfilter = \"busy/in\"\nqos = 1\n",
    );
    for i in 0..=ROUND_TRIPS {
        s += &format!(
            "[[step]]\nobserver.cloud = \"publish\"\ntopic = \"busy/in\"\npayload = \"m{i}\"\nqos = 1\n\
             [[step]]\nexpect = \"packet\"\npacket = \"PUBACK\"\ndir = \"to_broker\"\n\
             [[step]]\nwait = \"20ms\"\n"
        );
    }
    s + "[[step]]\ndevice = \"disconnect\"\n"
}

fn parse(dir: &Path, name: &str, text: &str) -> Scenario {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    scenario::parse(&path, text).unwrap_or_else(|e| panic!("bench scenario {name}: {e}"))
}

/// On the device's lane: each PUBLISH on busy/in to the device, to the
/// device's next packet that `answers` it. The first (warm-up) is dropped.
fn latencies(h: &History, answers: impl Fn(&Packet) -> bool) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut sent: Option<Duration> = None;
    for e in &h.events {
        let EventKind::Packet {
            actor, dir, packet, ..
        } = &e.kind
        else {
            continue;
        };
        if actor != "device" {
            continue;
        }
        match (dir, packet) {
            (Dir::ToClient, Packet::Publish(p)) if p.topic == "busy/in" => sent = Some(e.at),
            (Dir::ToBroker, p) if answers(p) => {
                if let Some(t0) = sent.take() {
                    out.push(e.at - t0);
                }
            }
            _ => {}
        }
    }
    out.into_iter().skip(1).collect()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run_one(rt: &tokio::runtime::Runtime, s: &Scenario, cfg: &RunConfig) -> History {
    let o = rt.block_on(runner::run(s, cfg));
    if !o.passed() {
        panic!(
            "bench scenario `{}` on {} did not pass ({}); run it with `mqtt-hil run -v` to see why",
            s.id,
            cfg.target,
            o.failure_text()
        );
    }
    o.history
}

fn build_times(root: &Path, work: &Path) -> PathBuf {
    let req = Request {
        sketch: root.join("firmware/sketches/photocell_feeds"),
        library: vec![root.join("firmware/libraries/HilFeeds")],
        libraries: Vec::new(),
        defines: Vec::new(),
        warnings: Warnings::None,
    };
    let env = Env {
        firmware: root.join("firmware"),
        cache: work.join("sketch-cache"),
        jobs: 2,
    };
    let t = Instant::now();
    let cold = sketch::build(&req, &env).unwrap_or_else(|e| panic!("cold build: {e}"));
    let cold_t = t.elapsed();
    assert!(!cold.cached, "an empty cache cannot hold the build");
    let mut cached: Vec<Duration> = (0..CACHED_BUILDS)
        .map(|_| {
            let t = Instant::now();
            let b = sketch::build(&req, &env).unwrap_or_else(|e| panic!("cached build: {e}"));
            assert!(b.cached, "an unchanged sketch must be a cache lookup");
            t.elapsed()
        })
        .collect();
    println!(
        "build photocell_feeds + HilFeeds (2 jobs): cold {:.1} s (empty cache), cached median {:.1} ms of {CACHED_BUILDS}",
        cold_t.as_secs_f64(),
        ms(median(&mut cached))
    );
    // The busy-wait sketch, built once into the same cache (the core is
    // reused), for the latency part.
    let busy = Request {
        sketch: root.join("firmware/sketches/busy_wait"),
        library: Vec::new(),
        ..req
    };
    sketch::build(&busy, &env)
        .unwrap_or_else(|e| panic!("building busy_wait: {e}"))
        .elf
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap();
    if !root.join("firmware/.cache/lwip/src/core/tcp.c").is_file() {
        println!("sketch bench skipped: lwIP's source is missing; run `make firmware` first");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let busy_elf = build_times(&root, work.path());

    for (what, file) in [
        (
            "the emulated board's agent (make firmware)",
            "firmware/build/agent.elf",
        ),
        (
            "the host agent (make -C firmware/host agent)",
            "firmware/build/host/mqtt-hil-agent-host",
        ),
    ] {
        if !root.join(file).exists() {
            println!("busy-wait latency skipped: {file} is missing; build {what} first");
            return;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = |target, image: Option<PathBuf>| RunConfig {
        broker: BrokerSpec::Mosquitto,
        target,
        workdir: work.path().join("runs"),
        firmware: Firmware {
            image,
            root: root.clone(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            boot_timeout: None,
            bench: None,
            net: Default::default(),
        },
        deviations: Default::default(),
    };
    let busy = parse(work.path(), "bench_busy_wait", &busy_wait_scenario());
    let agent = parse(work.path(), "bench_agent_latency", &agent_scenario());
    let echo = |p: &Packet| matches!(p, Packet::Publish(x) if x.topic == "busy/out");
    let puback = |p: &Packet| matches!(p, Packet::PubAck(_));
    let mut rows = [
        (
            "busy_wait sketch, emulated board",
            latencies(
                &run_one(&rt, &busy, &cfg(TargetSpec::Qemu, Some(busy_elf))),
                echo,
            ),
        ),
        (
            "agent, emulated board",
            latencies(&run_one(&rt, &agent, &cfg(TargetSpec::Qemu, None)), puback),
        ),
        (
            "agent, host build",
            latencies(&run_one(&rt, &agent, &cfg(TargetSpec::Host, None)), puback),
        ),
    ];
    println!(
        "busy-wait latency, PUBLISH forwarded to the device to its answer (median of {ROUND_TRIPS}; min-max):"
    );
    let mut medians = Vec::new();
    for (what, v) in rows.iter_mut() {
        assert_eq!(v.len(), ROUND_TRIPS, "{what}: one answer per message");
        let (lo, hi) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
        let m = median(v);
        medians.push(m);
        println!(
            "  {what:<34} {:>7.2} ms  ({:.2}-{:.2})",
            ms(m),
            ms(lo),
            ms(hi)
        );
    }
    println!(
        "  busy_wait on the board / host agent {:>6.1}x",
        medians[0].as_secs_f64() / medians[2].as_secs_f64().max(1e-9)
    );
}
