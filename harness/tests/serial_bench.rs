//! The `serial` target against the emulated board on a pty: `mqtt-hil
//! emulate serve` bridges QEMU's UART to a pty and takes resets and power
//! cuts on a control socket; the serial target opens the pty with the real
//! serialport code (no DTR/RTS there: ENOTTY) and resets through the bench
//! file's commands. The verdicts and the wire traffic must be those of
//! `--target qemu` (the reviewed snapshots).
//!
//! `make test` runs a subset (resets, power loss, QoS 2 across cuts);
//! `MQTT_HIL_SERIAL_SUITE=full` (`make test-serial-suite`) runs every scenario.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::runner::deviation::Deviations;
use mqtt_hil::runner::{self, Outcome, RunConfig};
use mqtt_hil::target::bench::Bench;
use mqtt_hil::target::{Firmware, TargetSpec};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

const BIN: &str = env!("CARGO_BIN_EXE_mqtt-hil");

/// The subset `make test` runs: board resets and power loss mid QoS 2, a
/// reboot loop, and QoS 2 across connection cuts both ways.
const SUBSET: &[&str] = &[
    "board_reset_mid_qos2_in",
    "board_reset_mid_qos2_out",
    "power_loss_persistent_session",
    "reboot_loop",
    "qos2_out_cut_after_pubrec",
    "qos2_in_cut_after_pubrel",
];

/// A running `mqtt-hil emulate serve`, killed on drop.
struct Emulator {
    child: std::process::Child,
    dir: tempfile::TempDir,
    proxy: std::net::SocketAddr,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_emulator() -> Emulator {
    start_emulator_with("agent.elf")
}

fn start_emulator_with(image: &str) -> Emulator {
    let dir = tempfile::tempdir().unwrap();
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let kernel = root().join("firmware/build").join(image);
    assert!(
        kernel.is_file(),
        "{} is missing: run `make firmware`",
        kernel.display()
    );
    let child = std::process::Command::new(BIN)
        .args(["emulate", "serve", "--dir"])
        .arg(dir.path())
        .arg("--proxy")
        .arg(proxy.to_string())
        .arg("--kernel")
        .arg(&kernel)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let emu = Emulator { child, dir, proxy };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !emu.dir.path().join("control.sock").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the emulator did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    emu
}

fn bench_for(emu: &Emulator) -> Bench {
    let d = emu.dir.path();
    let ctl = |cmd: &str| {
        format!(
            "{BIN} emulate ctl {} {cmd}",
            d.join("control.sock").display()
        )
    };
    let text = format!(
        "[[board]]\nname = \"emulated\"\nport = \"{}\"\nproxy_listen = \"{}\"\ndial = \"10.0.2.100:1883\"\nreset_command = \"{}\"\npower_command = \"{}\"\n",
        d.join("uart").display(),
        emu.proxy,
        ctl("reset"),
        ctl("power-cycle"),
    );
    let file = d.join("bench.toml");
    std::fs::write(&file, &text).unwrap();
    Bench::load(&file).unwrap()
}

async fn run_on_serial(scenario: &Path, emu: &Emulator) -> Outcome {
    let s = mqtt_hil::scenario::load(scenario).expect("scenario loads");
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        target: TargetSpec::Serial(emu.dir.path().join("uart")),
        workdir: work.path().to_path_buf(),
        firmware: Firmware {
            root: root(),
            splice: PathBuf::from(BIN),
            bench: Some(bench_for(emu)),
            net: Default::default(),
            ..Default::default()
        },
        deviations: Deviations::load(scenario.parent().unwrap(), "mosquitto").unwrap(),
    };
    runner::run(&s, &cfg).await
}

/// What crossed the wire, from a trace (lines the device's own client
/// reported, marked `·`, differ between implementations by design).
fn wire_lines(trace: &str) -> Vec<String> {
    let lines: Vec<&str> = trace
        .lines()
        .skip_while(|l| !l.starts_with("# "))
        .filter(|l| !l.contains("  · "))
        .collect();
    // Crossings on a connection are one behaviour in either order.
    mqtt_hil::trace::crossing::canonical(&lines.join("\n"))
        .lines()
        .map(str::to_string)
        .collect()
}

fn check(o: &Outcome) -> Result<(), String> {
    let trace = mqtt_hil::trace::render(&o.name, &o.history);
    if !o.acceptable() {
        return Err(format!(
            "{}: {:?}\n{}\n--- trace ---\n{trace}",
            o.id,
            o.status,
            o.failure_text()
        ));
    }
    let snap = root()
        .join("scenarios/snapshots")
        .join(format!("{}.snap", o.id));
    let reviewed =
        std::fs::read_to_string(&snap).map_err(|e| format!("{}: {e}", snap.display()))?;
    if wire_lines(&trace) != wire_lines(&reviewed) {
        return Err(format!(
            "{}: the serial target put different traffic on the wire than {}\n--- trace ---\n{trace}",
            o.id,
            snap.display()
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_over_the_serial_target_match_the_emulated_board() {
    let full = std::env::var("MQTT_HIL_SERIAL_SUITE").as_deref() == Ok("full");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| full || SUBSET.iter().any(|s| p.file_stem().unwrap() == *s))
        .collect();
    files.sort();
    assert!(
        full || files.len() == SUBSET.len(),
        "a subset scenario is missing: {files:?}"
    );
    // One emulator for all: the port and the board stay, as on a bench.
    let emu = start_emulator();
    let mut failures = Vec::new();
    for f in &files {
        let o = run_on_serial(f, &emu).await;
        eprintln!(
            "{:<40} {:?} {:.1}s",
            o.id,
            o.status,
            o.duration.as_secs_f64()
        );
        if let Err(e) = check(&o) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The serial path judges, it does not just pass: the agent built with a
/// seeded bug (it forgets its QoS 2 state across a reset) is caught over
/// the serial target as over `--target qemu`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_bug_is_caught_over_the_serial_target() {
    let emu = start_emulator_with("agent-forget_inflight_on_reboot.elf");
    let scenario = root().join("scenarios/board_reset_mid_qos2_in.toml");
    let o = run_on_serial(&scenario, &emu).await;
    assert!(
        !o.acceptable(),
        "the bug went unnoticed:\n{}",
        mqtt_hil::trace::render(&o.name, &o.history)
    );
    let seen = mqtt_hil::runner::deviation::signature(&o);
    assert!(
        seen.contains("MQTT-4.3.3-2"),
        "{seen:?}\n{}",
        o.failure_text()
    );
}

/// Without reset lines and without a reset command there is no way to get
/// a fresh `@ready`: the error says so and names the port and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_without_lines_and_no_reset_command_is_a_clear_error() {
    let emu = start_emulator();
    let file = emu.dir.path().join("bare.toml");
    std::fs::write(
        &file,
        format!(
            "[[board]]\nport = \"{}\"\nproxy_listen = \"{}\"\ndial = \"10.0.2.100:1883\"\n",
            emu.dir.path().join("uart").display(),
            emu.proxy
        ),
    )
    .unwrap();
    let scenario = root().join("scenarios/qos0_delivery.toml");
    let s = mqtt_hil::scenario::load(&scenario).unwrap();
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        target: TargetSpec::Serial(emu.dir.path().join("uart")),
        workdir: work.path().to_path_buf(),
        firmware: Firmware {
            root: root(),
            splice: PathBuf::from(BIN),
            bench: Some(Bench::load(&file).unwrap()),
            net: Default::default(),
            ..Default::default()
        },
        deviations: Deviations::default(),
    };
    let o = runner::run(&s, &cfg).await;
    let text = o.failure_text();
    assert!(
        text.contains("has no DTR/RTS lines") && text.contains("reset_command"),
        "{text}"
    );
}

/// A port that does not exist is named with what to check.
#[tokio::test]
async fn a_missing_port_names_itself_and_what_to_check() {
    let Err(err) = mqtt_hil::target::serial::open(Path::new("/dev/ttyUSB-mqtt-hil-none"), 115200)
    else {
        panic!("opened a port that does not exist");
    };
    let text = err.to_string();
    assert!(
        text.contains("/dev/ttyUSB-mqtt-hil-none") && text.contains("plugged in"),
        "{text}"
    );
}

/// A port another program holds is called busy, with who to ask.
#[tokio::test]
async fn a_busy_port_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("tty");
    let _pty = mqtt_hil::emulator::pty::Pty::open(Some(&link)).unwrap();
    let _held = mqtt_hil::target::serial::open(&link, 115200).unwrap();
    let Err(err) = mqtt_hil::target::serial::open(&link, 115200) else {
        panic!("opened a port twice");
    };
    let text = err.to_string();
    assert!(text.contains("busy") && text.contains("fuser"), "{text}");
}
