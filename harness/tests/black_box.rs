//! Black-box scenarios (`scenarios/black_box/`): the example device
//! `firmware/sketches/counter_device` (a `.ino` sketch folder, built here
//! by the sketch builder as `mqtt-hil build` would) runs its own firmware and its own MQTT
//! client on the emulated ESP8266, with no test agent; the harness judges it
//! from its traffic alone. The good build passes every scenario with the
//! reviewed trace; each seeded-bug build fails the scenario that exists to
//! catch it, naming the broken rule.
//!
//! The images are built once per cache state (`tests/sketch_util`); a
//! build that fails fails these tests (it never skips them). `MQTT_HIL_RECORD_HISTORIES=DIR` writes each run's
//! history in the checker-fixture format (tests/fixtures/histories/).

use crate::check_util;
use crate::sketch_util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::runner::deviation::{self, Deviations};
use mqtt_hil::runner::{self, Outcome, RunConfig};
use mqtt_hil::target::{Firmware, TargetSpec};
use rstest::rstest;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn image(bug: Option<&str>) -> PathBuf {
    sketch_util::counter_device(bug)
}

async fn run(scenario: &Path, bug: Option<&str>) -> Outcome {
    let s = mqtt_hil::scenario::load(scenario).expect("scenario loads");
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        firmware: Firmware {
            image: Some(image(bug)),
            root: root(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            boot_timeout: None,
            bench: None,
            net: Default::default(),
        },
        target: TargetSpec::Qemu,
        workdir: work.path().to_path_buf(),
        deviations: Deviations::default(),
    };
    let o = runner::run(&s, &cfg).await;
    if let Ok(dir) = std::env::var("MQTT_HIL_RECORD_HISTORIES") {
        let name = format!("{}_{}.hist", s.id, bug.unwrap_or("good"));
        std::fs::write(Path::new(&dir).join(name), check_util::to_hist(&o.history)).unwrap();
    }
    o
}

fn explain(o: &Outcome, s: &Path) -> String {
    let s = mqtt_hil::scenario::load(s).unwrap();
    format!(
        "{:?}\n{}\n--- trace ---\n{}",
        o.status,
        o.failure_text(),
        mqtt_hil::trace::render_scenario(&s, &o.history)
    )
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_build_passes(#[files("../scenarios/black_box/*.toml")] path: PathBuf) {
    let o = run(&path, None).await;
    assert!(o.passed(), "{}", explain(&o, &path));
    let s = mqtt_hil::scenario::load(&path).unwrap();
    let trace = mqtt_hil::trace::render_scenario(&s, &o.history);
    insta::with_settings!({
        snapshot_path => "../../scenarios/black_box/snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
        description => s.name.clone(),
    }, {
        let snap = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/black_box/snapshots").join(format!("{}.snap", s.id));
        insta::assert_snapshot!(s.id.clone(), mqtt_hil::trace::crossing::as_reviewed(trace, &snap));
    });
}

/// Each seeded bug of the example device, the black-box scenario that must
/// catch it, and the rules (or failed steps) its verdict must name.
#[rstest]
#[case::no_resubscribe(
    "no_resubscribe",
    "commands_after_reconnect",
    &["resubscribe-after-clean-session", "step 7"]
)]
#[case::tight_reconnect("tight_reconnect", "backoff_when_refused", &["backoff-too-fast"])]
#[case::qos0_readings(
    "qos0_readings",
    "readings_survive_outage",
    &["sequence-loss", "sequence-qos"]
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_bug_is_caught(#[case] bug: &str, #[case] scenario: &str, #[case] rules: &[&str]) {
    let path = root()
        .join("scenarios/black_box")
        .join(format!("{scenario}.toml"));
    let bad = run(&path, Some(bug)).await;
    assert!(
        !bad.acceptable(),
        "bug {bug} went unnoticed by {scenario}: {}",
        explain(&bad, &path)
    );
    let seen = deviation::signature(&bad);
    let missing: BTreeSet<&str> = rules
        .iter()
        .copied()
        .filter(|r| !seen.contains(*r))
        .collect();
    assert!(
        missing.is_empty(),
        "bug {bug}: expected {missing:?} among {seen:?}\n{}",
        explain(&bad, &path)
    );
}

/// `--target host` runs any Linux program as the black box, telling it the
/// broker's address in `MQTT_HIL_BROKER`. Here the program is a shell loop
/// of `mosquitto_pub` (a real MQTT client, one connection per reading); one
/// that skips a reading is caught by the same check as the board.
#[rstest]
#[case::counts_up(1, true)]
#[case::skips_a_reading(2, false)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_program_is_judged_the_same_way(#[case] step: u32, #[case] passes: bool) {
    let work = tempfile::tempdir().unwrap();
    let device = work.path().join("device.sh");
    std::fs::write(
        &device,
        format!(
            "#!/bin/sh\n\
             host=${{MQTT_HIL_BROKER%:*}}; port=${{MQTT_HIL_BROKER##*:}}; n=1\n\
             while :; do\n\
               mosquitto_pub -h \"$host\" -p \"$port\" -i host-counter -q 1 \\\n\
                 -t devices/host-counter/counter -m \"{{\\\"count\\\":$n}}\" || exit 1\n\
               n=$((n + {step})); sleep 0.2\n\
             done\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&device, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let scenario = work.path().join("host_counter.toml");
    std::fs::write(
        &scenario,
        "name = \"a host program publishes its counter\"\n\
         [device]\nautonomous = true\n\
         [[step]]\nexpect = \"connected\"\nwithin = \"5s\"\n\
         [[step]]\nexpect = \"published\"\ntopic = \"devices/{client_id}/counter\"\ncount = 4\nwithin = \"5s\"\n\
         [[invariant]]\ncheck = \"sequence\"\ntopic = \"devices/+/counter\"\njson = \"count\"\nqos = 1\n",
    )
    .unwrap();
    let s = mqtt_hil::scenario::load(&scenario).unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        firmware: Firmware {
            image: Some(device),
            root: root(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            boot_timeout: None,
            bench: None,
            net: Default::default(),
        },
        target: TargetSpec::Host,
        workdir: work.path().join("run"),
        deviations: Deviations::default(),
    };
    let o = runner::run(&s, &cfg).await;
    assert_eq!(o.passed(), passes, "{}", explain(&o, &scenario));
    if !passes {
        assert!(
            deviation::signature(&o).contains("sequence-loss"),
            "{}",
            explain(&o, &scenario)
        );
    }
}

/// A running `mqtt-hil emulate serve` with a firmware image: the emulated
/// board as a bench board (UART on a pty, resets on a control socket).
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

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (t.subsec_nanos() ^ (t.subsec_nanos() >> 16)) as u16
}

fn start_emulator(kernel: &Path) -> Emulator {
    let dir = tempfile::tempdir().unwrap();
    // The board dials a fixed port, bound by the harness only after the
    // reset: take one below the kernel's ephemeral range (32768-60999), so
    // no other test's port-0 listener can be given it meanwhile.
    let port = (0..1000)
        .map(|_| 20000 + (std::process::id() as u16 ^ rand_u16()) % 10000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 20000-29999");
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .args(["emulate", "serve", "--dir"])
        .arg(dir.path())
        .arg("--proxy")
        .arg(proxy.to_string())
        .arg("--kernel")
        .arg(kernel)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let emu = Emulator { child, dir, proxy };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // The control socket can answer before QEMU's QMP socket exists (a
    // reset then fails): wait for both.
    while !emu.dir.path().join("control.sock").exists() || !emu.dir.path().join("qmp.sock").exists()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the emulator did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    emu
}

/// The same black box on a bench board (`--target serial:PORT`, its
/// firmware already in its flash): the emulated board behind a pty, reset
/// through the bench file's command. The good build puts the reviewed
/// traffic on the wire; the forgetful one is caught by the same rule.
#[rstest]
#[case::good(None)]
#[case::no_resubscribe(Some("no_resubscribe"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_board_is_judged_the_same_way(#[case] bug: Option<&str>) {
    let emu = start_emulator(&image(bug));
    let d = emu.dir.path();
    let ctl = |cmd: &str| {
        format!(
            "{} emulate ctl {} {cmd}",
            env!("CARGO_BIN_EXE_mqtt-hil"),
            d.join("control.sock").display()
        )
    };
    let bench = d.join("bench.toml");
    std::fs::write(
        &bench,
        format!(
            "[[board]]\nname = \"emulated\"\nport = \"{}\"\nproxy_listen = \"{}\"\ndial = \"10.0.2.100:1883\"\nreset_command = \"{}\"\npower_command = \"{}\"\n",
            d.join("uart").display(),
            emu.proxy,
            ctl("reset"),
            ctl("power-cycle"),
        ),
    )
    .unwrap();
    let path = root().join("scenarios/black_box/commands_after_reconnect.toml");
    let s = mqtt_hil::scenario::load(&path).unwrap();
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        target: TargetSpec::Serial(d.join("uart")),
        workdir: work.path().to_path_buf(),
        firmware: Firmware {
            root: root(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            bench: Some(mqtt_hil::target::bench::Bench::load(&bench).unwrap()),
            net: Default::default(),
            ..Default::default()
        },
        deviations: Deviations::default(),
    };
    let o = runner::run(&s, &cfg).await;
    match bug {
        None => {
            assert!(o.passed(), "{}", explain(&o, &path));
            let trace = mqtt_hil::trace::render_scenario(&s, &o.history);
            let snap = root().join("scenarios/black_box/snapshots/commands_after_reconnect.snap");
            let reviewed = std::fs::read_to_string(&snap).unwrap();
            // Crossings on a connection are one behaviour in either order.
            let body = |t: &str| -> Vec<String> {
                let lines: Vec<&str> = t.lines().skip_while(|l| !l.starts_with("# ")).collect();
                mqtt_hil::trace::crossing::canonical(&lines.join("\n"))
                    .lines()
                    .map(str::to_string)
                    .collect()
            };
            assert_eq!(
                body(&trace),
                body(&reviewed),
                "the bench board put different traffic on the wire than {}",
                snap.display()
            );
        }
        Some(bug) => assert!(
            deviation::signature(&o).contains("resubscribe-after-clean-session"),
            "bug {bug} went unnoticed on the bench board: {}",
            explain(&o, &path)
        ),
    }
}

/// Every seeded bug listed in the sketch's bugs.txt still builds (each is
/// caught by a case of `seeded_bug_is_caught` above, but `split_publish`,
/// which only a network fault finds: tests/network.rs).
#[test]
fn every_listed_bug_builds() {
    let list =
        std::fs::read_to_string(root().join("firmware/sketches/counter_device/bugs.txt")).unwrap();
    let bugs: Vec<&str> = list
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(!bugs.is_empty());
    for b in bugs {
        assert!(image(Some(b)).is_file(), "{b}");
    }
}
