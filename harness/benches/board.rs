//! `cargo bench --bench board`: what the emulated ESP8266 costs, in one run.
//!
//! - boot to CONNACK: QEMU started with the agent image, `connect` sent
//!   once it prints `@ready`, until the agent reports `@connected`
//!   (5 boots, each a fresh board with an erased flash);
//! - QoS 2 round trip: the device publishes at QoS 2 to a subscriber, from
//!   the step that sends `publish` over the UART to the agent's `@pubcomp`
//!   (which comes after the agent has persisted the end of the exchange);
//!   median of 20, the same through the host build of the agent, and the ratio;
//! - the firmware's sizes against the ESP8266's budget.
//!
//! Everything runs through the harness's own runner against a mosquitto it
//! starts on loopback; every process it starts is stopped by the runner.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::history::{Dir, EventKind, History};
use mqtt_hil::mqtt::PacketType;
use mqtt_hil::runner::{self, RunConfig};
use mqtt_hil::scenario::{self, Scenario};
use mqtt_hil::target::{Firmware, TargetSpec};

const BOOTS: usize = 5;
const ROUND_TRIPS: usize = 20;

fn boot_scenario() -> String {
    "name = \"bench: boot\"\n[device]\nclient_id = \"bench-boot\"\n\
     [[step]]\ndevice = \"connect\"\n[[step]]\ndevice = \"disconnect\"\n"
        .to_string()
}

/// One publish to warm QEMU's translation cache, then ROUND_TRIPS measured
/// ones. Each waits for its PUBCOMP and a short pause, so round trips never
/// overlap and the agent has finished persisting before the next one.
fn qos2_scenario() -> String {
    let mut s = String::from(
        "name = \"bench: qos2\"\n[device]\nclient_id = \"bench-q2\"\n[observer.cloud]\n\
         [[step]]\nobserver.cloud = \"subscribe\"\nfilter = \"bench/q2\"\nqos = 2\n\
         [[step]]\ndevice = \"connect\"\n",
    );
    for i in 0..=ROUND_TRIPS {
        s += &format!(
            "[[step]]\ndevice = \"publish\"\ntopic = \"bench/q2\"\npayload = \"m{i}\"\nqos = 2\n\
             [[step]]\nexpect = \"packet\"\npacket = \"PUBCOMP\"\ndir = \"to_client\"\n\
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

fn first_at(h: &History, after: Duration, pred: impl Fn(&EventKind) -> bool) -> Option<Duration> {
    h.events
        .iter()
        .find(|e| e.at >= after && pred(&e.kind))
        .map(|e| e.at)
}

/// From the board's start (the supervisor's `booted`, right after spawning
/// QEMU) to the agent's `@connected`.
fn boot_time(h: &History) -> Option<Duration> {
    let start = first_at(
        h,
        Duration::ZERO,
        |k| matches!(k, EventKind::Board { what } if what == "booted"),
    )?;
    let up = first_at(
        h,
        start,
        |k| matches!(k, EventKind::Actor { actor, what } if actor == "device" && what.starts_with("connected")),
    )?;
    Some(up - start)
}

/// Per device `publish` step: its start to the next `@pubcomp`.
fn round_trips(s: &Scenario, h: &History) -> Vec<Duration> {
    let publish_steps: Vec<Duration> = h
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Step { index, .. } => {
                let st = s.steps.get(index - 1)?;
                format!("{:?}", st.action)
                    .contains("Publish")
                    .then_some(e.at)
            }
            _ => None,
        })
        .collect();
    publish_steps
        .iter()
        .filter_map(|&t0| {
            let t1 = first_at(h, t0, |k| {
                matches!(k, EventKind::Actor { actor, what } if actor == "device" && what.starts_with("pubcomp"))
            })?;
            Some(t1 - t0)
        })
        .skip(1) // the warm-up
        .collect()
}

/// The MQTT packet type a frame's TCP payload starts with, if it carries
/// data (a segment that starts a packet: the board's are all that small).
fn frame_mqtt_type(frame: &[u8]) -> Option<u8> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.get(9)? != &6 {
        return None;
    }
    let tcp = ip.get(usize::from(ip[0] & 0x0f) * 4..)?;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let data_at = usize::from(tcp.get(12)? >> 4) * 4;
    let payload = total.checked_sub(usize::from(ip[0] & 0x0f) * 4 + data_at)?;
    if payload == 0 {
        return None;
    }
    tcp.get(data_at).map(|b| b >> 4)
}

/// A point a QoS 2 round trip passes: a frame on the board's wire (its
/// MQTT packet type), a packet at the proxy, or the agent's `@pubcomp`.
enum Point {
    Frame(u8, Dir),
    Packet(PacketType, Dir),
    PubcompLine,
}

impl Point {
    fn matches(&self, k: &EventKind) -> bool {
        match (self, k) {
            (Point::Frame(ty, dir), EventKind::Frame { dir: d, data, .. }) => {
                d == dir && frame_mqtt_type(data) == Some(*ty)
            }
            (
                Point::Packet(ty, dir),
                EventKind::Packet {
                    actor,
                    dir: d,
                    packet,
                    ..
                },
            ) => actor == "device" && d == dir && packet.packet_type() == *ty,
            (Point::PubcompLine, EventKind::Actor { actor, what }) => {
                actor == "device" && what.starts_with("pubcomp")
            }
            _ => false,
        }
    }
}

/// Where one QoS 2 round trip's time goes: from the `publish` step, each
/// point it passes on the way (frames on the board's wire where there is
/// one, packets at the proxy), as the median gap from the point before over
/// all measured round trips.
fn phases(s: &Scenario, h: &History) -> Vec<(&'static str, Duration)> {
    use Dir::{ToBroker, ToClient};
    let has_frames = h
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Frame { .. }));
    let points: Vec<(&'static str, Point)> = [
        (
            "UART line in -> PUBLISH frame out of the board",
            Point::Frame(3, ToBroker),
        ),
        (
            "-> PUBLISH at the proxy",
            Point::Packet(PacketType::Publish, ToBroker),
        ),
        (
            "-> PUBREC at the proxy (broker)",
            Point::Packet(PacketType::PubRec, ToClient),
        ),
        ("-> PUBREC frame to the board", Point::Frame(5, ToClient)),
        (
            "-> PUBREL frame out of the board",
            Point::Frame(6, ToBroker),
        ),
        (
            "-> PUBREL at the proxy",
            Point::Packet(PacketType::PubRel, ToBroker),
        ),
        (
            "-> PUBCOMP at the proxy (broker)",
            Point::Packet(PacketType::PubComp, ToClient),
        ),
        ("-> PUBCOMP frame to the board", Point::Frame(7, ToClient)),
        ("-> @pubcomp on the UART", Point::PubcompLine),
    ]
    .into_iter()
    .filter(|(_, p)| has_frames || !matches!(p, Point::Frame(..)))
    .collect();
    let starts = h.events.iter().filter_map(|e| match &e.kind {
        EventKind::Step { index, .. } => s
            .steps
            .get(index - 1)
            .is_some_and(|st| format!("{:?}", st.action).contains("Publish"))
            .then_some(e.at),
        _ => None,
    });
    let mut gaps: Vec<Vec<Duration>> = vec![Vec::new(); points.len()];
    for t0 in starts.skip(1) {
        let mut t = t0;
        for ((_, point), gap) in points.iter().zip(gaps.iter_mut()) {
            let Some(next) = first_at(h, t, |k| point.matches(k)) else {
                break;
            };
            gap.push(next - t);
            t = next;
        }
    }
    points
        .iter()
        .zip(gaps.iter_mut())
        .filter(|(_, g)| !g.is_empty())
        .map(|((name, _), g)| (*name, median(g)))
        .collect()
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
            "bench scenario `{}` on {} did not pass; run it with `mqtt-hil run -v` to see why",
            s.id, cfg.target
        );
    }
    o.history
}

/// `size -A` sections summed into the regions board/board.ld lays out.
fn sizes(root: &Path) -> Option<String> {
    let elf = root.join("firmware/build/agent.elf");
    let berkeley = Command::new("xtensa-lx106-elf-size")
        .arg(&elf)
        .output()
        .ok()?;
    let sysv = Command::new("xtensa-lx106-elf-size")
        .arg("-A")
        .arg(&elf)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&berkeley.stdout);
    let row: Vec<u64> = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .take(3)
        .filter_map(|w| w.parse().ok())
        .collect();
    let section = |name: &str| -> u64 {
        String::from_utf8_lossy(&sysv.stdout)
            .lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(name))
                    .then(|| w.next()?.parse().ok())
                    .flatten()
            })
            .unwrap_or(0)
    };
    let (iram, irom, data, bss) = (
        section(".iram"),
        section(".text"),
        section(".data"),
        section(".bss"),
    );
    let pct = |a: u64, b: u64| 100.0 * a as f64 / b as f64;
    Some(format!(
        "firmware/build/agent.elf: text {} data {} bss {} (xtensa-lx106-elf-size)\n\
         \x20 IRAM  {:>7} / {:>7} B ({:>4.1}%)\n\
         \x20 flash {:>7} / {:>7} B ({:>4.1}%)  code and literals in the mapped flash window\n\
         \x20 DRAM  {:>7} / {:>7} B ({:>4.1}%)  .data+.rodata {} + .bss {}; {} B left for heap and the 8 KiB stack",
        row.first()?,
        row.get(1)?,
        row.get(2)?,
        iram,
        32768,
        pct(iram, 32768),
        irom,
        1 << 20,
        pct(irom, 1 << 20),
        data + bss,
        81920,
        pct(data + bss, 81920),
        data,
        bss,
        81920u64.saturating_sub(data + bss)
    ))
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap();
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
            // Skipped, not failed: `make bench` runs every bench, and the
            // others do not need the firmware.
            println!("board bench skipped: {file} is missing; build {what} first");
            return;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let cfg = |target| RunConfig {
        broker: BrokerSpec::Mosquitto,
        target,
        workdir: work.path().join("runs"),
        firmware: Firmware {
            image: None,
            root: root.clone(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            boot_timeout: None,
            bench: None,
            net: Default::default(),
        },
        deviations: Default::default(),
    };
    let qemu = cfg(TargetSpec::Qemu);
    let host = cfg(TargetSpec::Host);
    let boot = parse(work.path(), "bench_boot", &boot_scenario());
    let qos2 = parse(work.path(), "bench_qos2", &qos2_scenario());

    let mut boots: Vec<Duration> = (0..BOOTS)
        .map(|_| boot_time(&run_one(&rt, &boot, &qemu)).expect("boot events"))
        .collect();
    let (lo, hi) = (*boots.iter().min().unwrap(), *boots.iter().max().unwrap());
    println!(
        "boot to CONNACK (qemu, {BOOTS} boots): median {:.0} ms, min {:.0} ms, max {:.0} ms",
        ms(median(&mut boots)),
        ms(lo),
        ms(hi)
    );

    let board_history = run_one(&rt, &qos2, &qemu);
    let host_history = run_one(&rt, &qos2, &host);
    let mut board = round_trips(&qos2, &board_history);
    let mut hosted = round_trips(&qos2, &host_history);
    assert_eq!(board.len(), ROUND_TRIPS, "one @pubcomp per publish on qemu");
    assert_eq!(
        hosted.len(),
        ROUND_TRIPS,
        "one @pubcomp per publish on host"
    );
    let (bmin, bmax) = (*board.iter().min().unwrap(), *board.iter().max().unwrap());
    let (hmin, hmax) = (*hosted.iter().min().unwrap(), *hosted.iter().max().unwrap());
    let (b, h) = (median(&mut board), median(&mut hosted));
    println!("QoS 2 round trip, `publish` to @pubcomp (median of {ROUND_TRIPS}; min-max):");
    println!(
        "  emulated board  {:>7.2} ms  ({:.2}-{:.2})",
        ms(b),
        ms(bmin),
        ms(bmax)
    );
    println!(
        "  host agent      {:>7.2} ms  ({:.2}-{:.2})",
        ms(h),
        ms(hmin),
        ms(hmax)
    );
    println!(
        "  board / host    {:>7.1}x",
        b.as_secs_f64() / h.as_secs_f64().max(1e-9)
    );

    for (what, h) in [
        ("emulated board", &board_history),
        ("host agent", &host_history),
    ] {
        println!("  where it goes on the {what} (median gap from the point before):");
        for (name, d) in phases(&qos2, h) {
            println!("    {name:<50} {:>6.2} ms", ms(d));
        }
    }

    match sizes(&root) {
        Some(s) => println!("{s}"),
        None => println!(
            "sizes: xtensa-lx106-elf-size not found or gave no sizes (make -C firmware deps)"
        ),
    }
}
