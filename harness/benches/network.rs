//! `cargo bench --bench network`: the harness's own network for the
//! emulated board (`--net owned`, docs/network.md) against QEMU's user
//! network (`--net slirp`), in one run, side by side with ratios:
//!
//! - throughput: a small sketch (written and built here by the sketch
//!   builder) connects, then sends BLAST QoS 0 PUBLISHes of 1000 bytes as
//!   fast as its lwIP lets it; from the CONNACK (it starts then) to its
//!   last PUBLISH at the proxy: messages and payload per second on each
//!   path (and the sketch's own measure of its writes), and on the owned
//!   network the board's frames per second, both ways, counted in the
//!   history (slirp's frames are QEMU's own and not visible to the
//!   harness; the same lwIP sends the same data segments on both paths);
//!   the median of BLASTS runs on each path;
//! - boot to CONNACK: the agent image from QEMU's start to `@connected`,
//!   BOOTS fresh boards on each path.
//!
//! Everything runs through the harness's own runner against a mosquitto it
//! starts on loopback; every process it starts is stopped by the runner.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::history::{Dir, EventKind, History};
use mqtt_hil::mqtt::Packet;
use mqtt_hil::net::{NetMode, Options};
use mqtt_hil::runner::{self, RunConfig};
use mqtt_hil::scenario::{self, Scenario};
use mqtt_hil::target::{Firmware, TargetSpec};

const BOOTS: usize = 5;
const BLAST: usize = 400;
const BLASTS: usize = 3;
const PAYLOAD: usize = 1000;

/// Connects as `blast`, sends BLAST QoS 0 PUBLISHes of PAYLOAD bytes on
/// `bench/blast`, then DISCONNECT.
fn blast_sketch() -> String {
    format!(
        r#"#include <Arduino.h>
#include <ESP8266WiFi.h>

static const IPAddress BROKER(10, 0, 2, 100);
static const int COUNT = {BLAST};
static const int SIZE = {PAYLOAD};
static WiFiClient net;
static uint8_t packet[4 + 13 + SIZE];

void setup()
{{
    Serial.begin(115200);
    WiFi.begin("bench", "");
    while (WiFi.status() != WL_CONNECTED)
        delay(10);
    if (!net.connect(BROKER, 1883)) {{
        Serial.println("blast: no connection");
        return;
    }}
    net.setNoDelay(true);
    static const uint8_t connect[] = {{0x10, 19, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60,
                                      0, 7, 'b', 'l', 'a', 's', 't', '-', '1'}};
    net.write(connect, sizeof(connect));
    unsigned long t0 = millis();
    int got = 0;
    while (got < 4 && millis() - t0 < 5000) {{
        if (net.available() > 0 && net.read() >= 0)
            got++;
        else
            delay(1);
    }}
    size_t rem = 2 + 11 + SIZE, n = 0;
    packet[n++] = 0x30;
    packet[n++] = (uint8_t)(rem % 128) | 0x80;
    packet[n++] = (uint8_t)(rem / 128);
    packet[n++] = 0;
    packet[n++] = 11;
    memcpy(packet + n, "bench/blast", 11);
    n += 11;
    memset(packet + n, 'x', SIZE);
    n += SIZE;
    t0 = millis();
    for (int i = 0; i < COUNT; i++) {{
        if (net.write(packet, n) != n) {{
            Serial.printf("blast: write %d failed\r\n", i);
            return;
        }}
    }}
    static const uint8_t disconnect[] = {{0xe0, 0}};
    net.write(disconnect, sizeof(disconnect));
    Serial.printf("blast: %d sent in %lu ms\r\n", COUNT, millis() - t0);
}}

void loop()
{{
    delay(100);
}}
"#
    )
}

fn blast_scenario() -> String {
    format!(
        "name = \"bench: blast\"\ntimeout = \"120s\"\n[device]\nautonomous = true\n\
         [[step]]\nexpect = \"published\"\ntopic = \"bench/blast\"\ncount = {BLAST}\nwithin = \"90s\"\n"
    )
}

fn boot_scenario() -> String {
    "name = \"bench: boot\"\n[device]\nclient_id = \"bench-boot\"\n\
     [[step]]\ndevice = \"connect\"\n[[step]]\ndevice = \"disconnect\"\n"
        .to_string()
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

struct Blast {
    /// From the CONNACK (the sketch starts sending when it has it) to the
    /// last PUBLISH at the proxy: the whole path, whatever buffers on it.
    span: Duration,
    messages: usize,
    /// The board's frames in that span, both ways (owned network only).
    frames: usize,
    /// What the sketch measured itself, writes only (its UART line).
    board_ms: Option<u64>,
}

fn blast(h: &History) -> Blast {
    let at = |pred: &dyn Fn(&EventKind) -> bool| -> Vec<Duration> {
        h.events
            .iter()
            .filter(|e| pred(&e.kind))
            .map(|e| e.at)
            .collect()
    };
    let connack = at(&|k| {
        matches!(
            k,
            EventKind::Packet {
                dir: Dir::ToClient,
                packet: Packet::ConnAck(_),
                ..
            }
        )
    })[0];
    let publishes = at(&|k| {
        matches!(
            k,
            EventKind::Packet {
                dir: Dir::ToBroker,
                packet: Packet::Publish(_),
                ..
            }
        )
    });
    let last = *publishes.last().unwrap();
    let frames = h
        .events
        .iter()
        .filter(|e| e.at >= connack && e.at <= last && matches!(e.kind, EventKind::Frame { .. }))
        .count();
    let board_ms = h.events.iter().find_map(|e| match &e.kind {
        EventKind::Uart { line } => line
            .strip_prefix("blast: ")?
            .split(" sent in ")
            .nth(1)?
            .trim_end_matches(" ms")
            .trim()
            .parse()
            .ok(),
        _ => None,
    });
    Blast {
        span: last - connack,
        messages: publishes.len(),
        frames,
        board_ms,
    }
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
            "bench scenario `{}` on --net {} did not pass: {}\n{}",
            s.id,
            cfg.firmware.net.mode,
            o.failure_text(),
            mqtt_hil::trace::render_scenario(s, &o.history)
        );
    }
    o.history
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap();
    let agent = root.join("firmware/build/agent.elf");
    if !agent.exists() {
        // Skipped, not failed: `make bench` runs every bench, and the
        // others do not need the firmware.
        println!("network bench skipped: firmware/build/agent.elf is missing; run `make firmware`");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let sketch = work.path().join("net_blast");
    std::fs::create_dir_all(&sketch).unwrap();
    std::fs::write(sketch.join("net_blast.ino"), blast_sketch()).unwrap();
    let blaster = mqtt_hil::sketch::firmware_image(&sketch, &root, &[], &[])
        .unwrap_or_else(|e| panic!("building the bench's sketch: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = |mode, image: &Path| RunConfig {
        broker: BrokerSpec::Mosquitto,
        target: TargetSpec::Qemu,
        workdir: work.path().join("runs"),
        firmware: Firmware {
            image: Some(image.to_path_buf()),
            root: root.clone(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            boot_timeout: None,
            bench: None,
            net: Options {
                mode,
                ..Default::default()
            },
        },
        deviations: Default::default(),
    };
    let modes = [NetMode::Owned, NetMode::Slirp];

    let blast_s = parse(work.path(), "bench_blast", &blast_scenario());
    // The median of BLASTS runs on each path (a loaded machine is noisy).
    let runs: Vec<Blast> = modes
        .iter()
        .map(|m| {
            let mut r: Vec<Blast> = (0..BLASTS)
                .map(|_| blast(&run_one(&rt, &blast_s, &cfg(*m, &blaster))))
                .collect();
            r.sort_by_key(|b| b.span);
            r.swap_remove(BLASTS / 2)
        })
        .collect();
    println!(
        "throughput: {BLAST} QoS 0 PUBLISHes of {PAYLOAD} B from the board, CONNACK to the last PUBLISH at the proxy (median of {BLASTS} runs):"
    );
    let rate = |b: &Blast| b.messages as f64 / b.span.as_secs_f64().max(1e-9);
    for (m, b) in modes.iter().zip(&runs) {
        let frames = match m {
            NetMode::Owned => format!(
                "{:>8.0} frames/s ({} frames, both ways)",
                b.frames as f64 / b.span.as_secs_f64().max(1e-9),
                b.frames
            ),
            NetMode::Slirp => "   frames not visible (QEMU's own stack)".into(),
        };
        println!(
            "  --net {:<5} {:>6.0} ms  {:>6.0} msg/s  {:>7.1} KiB/s  {frames}  (the board's own writes: {})",
            m.to_string(),
            ms(b.span),
            rate(b),
            rate(b) * PAYLOAD as f64 / 1024.0,
            b.board_ms.map(|t| format!("{t} ms")).unwrap_or_else(|| "?".into())
        );
    }
    println!(
        "  owned / slirp {:>6.2}x messages per second",
        rate(&runs[0]) / rate(&runs[1]).max(1e-9)
    );

    let boot = parse(work.path(), "bench_boot", &boot_scenario());
    let mut medians = Vec::new();
    println!("boot to CONNACK (the agent, {BOOTS} fresh boards each):");
    for m in modes {
        let mut boots: Vec<Duration> = (0..BOOTS)
            .map(|_| boot_time(&run_one(&rt, &boot, &cfg(m, &agent))).expect("boot events"))
            .collect();
        let (lo, hi) = (*boots.iter().min().unwrap(), *boots.iter().max().unwrap());
        let med = median(&mut boots);
        medians.push(med);
        println!(
            "  --net {:<5} median {:>6.0} ms  (min {:.0}, max {:.0})",
            m.to_string(),
            ms(med),
            ms(lo),
            ms(hi)
        );
    }
    println!(
        "  owned / slirp {:>6.2}x",
        medians[0].as_secs_f64() / medians[1].as_secs_f64().max(1e-9)
    );
}
