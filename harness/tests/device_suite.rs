//! The generic device suite (`scenarios/device/`) on the emulated ESP8266,
//! filled in by each device's description (`device.toml` beside its
//! sketch), as `mqtt-hil run scenarios/device --device FILE --firmware
//! SKETCH --target qemu` runs it. The counter device takes the whole
//! suite; the photocell feed sketch (the seed's style) the scenarios that
//! differ for it (its UART reaction, its 19-byte buffer, its empty client
//! id across board resets, its 5 s connect loop against a refusing broker),
//! to keep `make test` short. Each seeded bug of the counter device is
//! caught by the suite, naming the rule; so is a description that promises
//! more than the device does (buffer, keep alive, will); a description that
//! does not fit the device stops at the first step with a clear error.
//!
//! `MQTT_HIL_RECORD_HISTORIES=DIR` writes each run's history in the
//! checker-fixture format (tests/fixtures/histories/).

use crate::check_util;
use crate::sketch_util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::device::{self, suite};
use mqtt_hil::runner::deviation::{self, Deviations};
use mqtt_hil::runner::{self, Outcome, RunConfig};
use mqtt_hil::scenario::Scenario;
use mqtt_hil::target::{Firmware, TargetSpec};
use rstest::rstest;

fn root() -> PathBuf {
    sketch_util::root()
}

fn expand(description: &Path, file: &Path) -> Scenario {
    let d = device::load(description).unwrap_or_else(|e| panic!("{e}"));
    match suite::load(file, &d).unwrap_or_else(|e| panic!("{e}")) {
        suite::Expanded::Run(s) => *s,
        suite::Expanded::Skipped { reason, .. } => panic!("skipped: {reason}"),
    }
}

async fn run(s: &Scenario, image: PathBuf, tag: &str) -> Outcome {
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        firmware: Firmware {
            image: Some(image),
            root: root(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            ..Firmware::default()
        },
        target: TargetSpec::Qemu,
        workdir: work.path().to_path_buf(),
        deviations: Deviations::default(),
    };
    let o = runner::run(s, &cfg).await;
    if let Ok(dir) = std::env::var("MQTT_HIL_RECORD_HISTORIES") {
        let name = format!("device_{}_{tag}.hist", s.id);
        std::fs::write(Path::new(&dir).join(name), check_util::to_hist(&o.history)).unwrap();
    }
    o
}

fn explain(o: &Outcome, s: &Scenario) -> String {
    format!(
        "{:?}\n{}\n--- trace ---\n{}",
        o.status,
        o.failure_text(),
        mqtt_hil::trace::render_scenario(s, &o.history)
    )
}

fn counter() -> PathBuf {
    root().join("firmware/sketches/counter_device/device.toml")
}

fn photocell() -> PathBuf {
    root().join("firmware/sketches/photocell_feeds/device.toml")
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_device_passes_the_suite(#[files("../scenarios/device/*.toml")] path: PathBuf) {
    let s = expand(&counter(), &path);
    let o = run(&s, sketch_util::counter_device(None), "counter").await;
    assert!(o.passed(), "{}", explain(&o, &s));
}

#[rstest]
#[case::boot("boot")]
#[case::commands("commands")]
#[case::command_size("command_size")]
#[case::board_reset_and_power_cut("board_reset_and_power_cut")]
#[case::refusing_broker("refusing_broker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_photocell_feed_sketch_passes_the_suite(#[case] scenario: &str) {
    let path = root().join(format!("scenarios/device/{scenario}.toml"));
    let s = expand(&photocell(), &path);
    let o = run(&s, sketch_util::image("photocell_feeds", &[]), "photocell").await;
    assert!(o.passed(), "{}", explain(&o, &s));
}

/// Each seeded bug of the counter device (bugs.txt), the suite scenario
/// that catches it, and the rules its verdict must name.
#[rstest]
#[case::no_resubscribe(
    "no_resubscribe",
    "sever_and_close",
    &["resubscribe-after-clean-session", "step 7"]
)]
#[case::tight_reconnect("tight_reconnect", "refusing_broker", &["backoff-too-fast"])]
#[case::qos0_readings(
    "qos0_readings",
    "refusing_broker",
    &["sequence-loss", "sequence-qos"]
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_each_seeded_bug(
    #[case] bug: &str,
    #[case] scenario: &str,
    #[case] rules: &[&str],
) {
    let path = root().join(format!("scenarios/device/{scenario}.toml"));
    let s = expand(&counter(), &path);
    let bad = run(&s, sketch_util::counter_device(Some(bug)), bug).await;
    assert!(
        !bad.acceptable(),
        "bug {bug} went unnoticed: {}",
        explain(&bad, &s)
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
        explain(&bad, &s)
    );
}

/// A description whose keep alive and will are not what the device's
/// CONNECT says: the device is judged by what its description promises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_unlike_the_description_breaks_the_declared_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("device.toml");
    let text = std::fs::read_to_string(counter())
        .unwrap()
        .replace("keepalive = 4", "keepalive = 30")
        .replace("payload = \"offline\"", "payload = \"gone\"");
    std::fs::write(&file, text).unwrap();
    let s = expand(&file, &root().join("scenarios/device/boot.toml"));
    let o = run(&s, sketch_util::counter_device(None), "misdeclared").await;
    let seen = deviation::signature(&o);
    assert!(
        seen.contains("declared-keepalive") && seen.contains("declared-will"),
        "{seen:?}\n{}",
        explain(&o, &s)
    );
}

/// A description that claims more buffer than the device has (the counter
/// device's 384-byte packet buffer takes a command payload of about 350
/// bytes): the command at the claimed size gets no reaction, and the
/// suite reports it as a silent drop at that step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_at_the_claimed_size_without_reaction_is_a_silent_drop() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("device.toml");
    let text = std::fs::read_to_string(counter())
        .unwrap()
        .replace("command_payload = 300", "command_payload = 370");
    std::fs::write(&file, text).unwrap();
    let s = expand(&file, &root().join("scenarios/device/command_size.toml"));
    let o = run(&s, sketch_util::counter_device(None), "overclaimed").await;
    let f = o
        .failures
        .first()
        .unwrap_or_else(|| panic!("{}", explain(&o, &s)));
    assert_eq!(f.step, 6, "{}", explain(&o, &s));
    assert!(
        f.message
            .contains("dropped a command of the size it claims to take silently"),
        "{}",
        explain(&o, &s)
    );
}

/// A description that does not fit the device is stopped at the suite's
/// first step that names a topic (step 2, right after the device
/// connected), saying why: never a command to `devices//cmd`.
#[rstest]
#[case::empty_client_id(
    "photocell_feeds",
    "keepalive = 10\nretry_max = \"1s\"\n[[publish]]\ntopic = \"devices/{client_id}/light\"\n",
    "connected with an empty one"
)]
#[case::none_of_its_topics(
    "counter_device",
    "retry_max = \"1s\"\n[[publish]]\ntopic = \"sensors/{client_id}/temperature\"\n",
    "it published only on `devices/counter-"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_description_that_does_not_fit_is_a_clear_error_at_the_first_step(
    #[case] sketch: &str,
    #[case] description: &str,
    #[case] says: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("device.toml");
    std::fs::write(&file, description).unwrap();
    let s = expand(&file, &root().join("scenarios/device/boot.toml"));
    let o = run(&s, sketch_util::image(sketch, &[]), "misfit").await;
    assert!(!o.passed(), "{}", explain(&o, &s));
    let f = o
        .failures
        .first()
        .unwrap_or_else(|| panic!("{}", explain(&o, &s)));
    assert_eq!(f.step, 2, "{}", explain(&o, &s));
    assert!(f.message.contains(says), "{}", explain(&o, &s));
    assert!(
        !mqtt_hil::trace::render_scenario(&s, &o.history).contains("//"),
        "{}",
        explain(&o, &s)
    );
}
