//! The firmware's test agent plays the device: built for Linux (`host`) and
//! on the emulated ESP8266 (`qemu`, the lx106 core in stock QEMU with lwIP).
//! The same scenario files must give the same verdicts as with the virtual
//! device, and every seeded bug of the agent must be caught by the scenario
//! and rule that exist to catch it.
//!
//! The images come from `make firmware`; a missing image fails these tests
//! (it never skips them).

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

fn image(target: &TargetSpec, bug: Option<&str>) -> PathBuf {
    let suffix = bug.map(|b| format!("-{b}")).unwrap_or_default();
    let p = match target {
        TargetSpec::Host => root().join(format!("firmware/build/host/mqtt-hil-agent-host{suffix}")),
        _ => root().join(format!("firmware/build/agent{suffix}.elf")),
    };
    assert!(
        p.is_file(),
        "{} is missing: run `make firmware` first",
        p.display()
    );
    p
}

async fn run(scenario: &Path, target: TargetSpec, bug: Option<&str>) -> Outcome {
    let s = mqtt_hil::scenario::load(scenario).expect("scenario loads");
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        firmware: Firmware {
            image: Some(image(&target, bug)),
            root: root(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            boot_timeout: None,
            bench: None,
            net: Default::default(),
        },
        target,
        workdir: work.path().to_path_buf(),
        deviations: Deviations::load(scenario.parent().unwrap(), "mosquitto").unwrap(),
    };
    runner::run(&s, &cfg).await
}

fn explain(o: &Outcome) -> String {
    format!(
        "{:?}\n{}\n--- trace ---\n{}",
        o.status,
        o.failure_text(),
        mqtt_hil::trace::render(&o.name, &o.history)
    )
}

/// Scenarios whose traffic legitimately differs on the host build, and why.
const HOST_DIFFERS: &[(&str, &str)] = &[
    ("board_reset_mid_qos2_in", HOST_REBOOT),
    ("board_reset_mid_qos2_out", HOST_REBOOT),
    ("reboot_loop", HOST_REBOOT),
];
const HOST_REBOOT: &str = "a reset of the host agent is a process exit, so its OS closes the \
     socket (FIN); a real or emulated board just loses its TCP state and the broker closes the \
     old connection at the takeover";

/// What crossed the wire, from a trace: the lines the device's own client
/// reported (marked `·`) differ between implementations by design.
fn wire_lines(trace: &str) -> Vec<&str> {
    trace
        .lines()
        .skip_while(|l| !l.starts_with("# "))
        .filter(|l| !l.contains("  · "))
        .collect()
}

/// The same scenario must put the same traffic on the wire, whatever plays
/// the device: compared with the reviewed snapshot of the virtual device.
fn assert_same_traffic(scenario: &Path, o: &Outcome, target: &str, differs: &[(&str, &str)]) {
    if differs.iter().any(|(id, _)| *id == o.id) {
        return;
    }
    let snap = root()
        .join("scenarios/snapshots")
        .join(format!("{}.snap", o.id));
    let reviewed =
        std::fs::read_to_string(&snap).unwrap_or_else(|e| panic!("{}: {e}", snap.display()));
    let trace = mqtt_hil::trace::render(&o.name, &o.history);
    // Crossings on a connection (the device's PUBACK and the broker's next
    // PUBLISH in flight together) are one behaviour in either order.
    let canonical = |t: &str| mqtt_hil::trace::crossing::canonical(&wire_lines(t).join("\n"));
    assert_eq!(
        canonical(&trace),
        canonical(&reviewed),
        "{}: the {target} target put different traffic on the wire than the reviewed snapshot {}",
        scenario.display(),
        snap.display()
    );
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_host_agent(#[files("../scenarios/*.toml")] path: PathBuf) {
    let o = run(&path, TargetSpec::Host, None).await;
    assert!(o.acceptable(), "{}", explain(&o));
    assert_same_traffic(&path, &o, "host", HOST_DIFFERS);
}

/// 5.0 scenarios through the agent (its 5.0 codec, session and line
/// protocol), host build and emulated board, against mosquitto. Not listed: the slow ones (expiry
/// and will delays, seconds each; they pass too).
#[rstest]
#[case::assigned_client_identifier("assigned_client_identifier")]
#[case::maximum_packet_size_broker("maximum_packet_size_broker")]
#[case::message_expiry_decremented("message_expiry_decremented")]
#[case::no_local("no_local")]
#[case::receive_maximum_broker("receive_maximum_broker")]
#[case::request_response_passthrough("request_response_passthrough")]
#[case::retain_as_published("retain_as_published")]
#[case::retain_handling_1("retain_handling_1")]
#[case::session_expiry_kept("session_expiry_kept")]
#[case::session_expiry_set_on_disconnect("session_expiry_set_on_disconnect")]
#[case::subscription_identifiers("subscription_identifiers")]
#[case::topic_alias_client_side("topic_alias_client_side")]
#[case::topic_alias_stale_after_reconnect("topic_alias_stale_after_reconnect")]
#[case::user_properties_order("user_properties_order")]
#[case::will_on_disconnect_with_will("will_on_disconnect_with_will")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_on_agent(
    #[case] name: &str,
    #[values(TargetSpec::Host, TargetSpec::Qemu)] target: TargetSpec,
) {
    let path = root().join(format!("scenarios/v5/{name}.toml"));
    let o = run(&path, target, None).await;
    assert!(o.acceptable(), "{}", explain(&o));
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_emulated_esp8266(#[files("../scenarios/*.toml")] path: PathBuf) {
    let o = run(&path, TargetSpec::Qemu, None).await;
    assert!(o.acceptable(), "{}", explain(&o));
    // The emulated board behaves on the wire exactly as the reviewed traces.
    assert_same_traffic(&path, &o, "qemu", &[]);
}

/// Each seeded bug, the scenario that must catch it, and the rules (or
/// failed steps) the verdict must name.
#[rstest]
#[case::qos2_double_delivery("qos2_double_delivery", "qos2_in_cut_after_publish", &["MQTT-4.3.3-2"])]
#[case::no_pubrel_resend("no_pubrel_resend", "qos2_out_cut_after_pubrec", &["MQTT-4.4.0-1"])]
#[case::forget_inflight_on_reboot("forget_inflight_on_reboot", "board_reset_mid_qos2_in", &["MQTT-4.3.3-2"])]
// After the reset the board reconnects with its session and does not resend
// the PUBLISH it forgot: judged, not "too short or under a fault to judge".
#[case::forget_inflight_on_reboot_out("forget_inflight_on_reboot", "board_reset_mid_qos2_out", &["MQTT-4.4.0-1"])]
#[case::wrong_will_topic("wrong_will_topic", "will_on_sever", &["step 4"])]
#[case::no_dup_flag("no_dup_flag", "qos2_out_cut_after_publish", &["MQTT-3.3.1-1"])]
#[case::tight_reconnect("tight_reconnect", "backoff_when_refused", &["backoff-too-fast"])]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_bug_is_caught(
    #[case] bug: &str,
    #[case] scenario: &str,
    #[case] rules: &[&str],
    #[values(TargetSpec::Host, TargetSpec::Qemu)] target: TargetSpec,
) {
    let path = root().join("scenarios").join(format!("{scenario}.toml"));
    // The good build passes the scenario: the failure below is the bug's.
    let good = run(&path, target.clone(), None).await;
    assert!(
        good.acceptable(),
        "the good build fails {scenario}: {}",
        explain(&good)
    );
    let bad = run(&path, target, Some(bug)).await;
    assert!(
        !bad.acceptable(),
        "bug {bug} went unnoticed by {scenario}: {}",
        explain(&bad)
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
        explain(&bad)
    );
}

/// A board that cannot run fails the scenario with what QEMU said, and a
/// board that never prints its banner fails it with its last UART output;
/// neither leaves a QEMU behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_board_is_reported_with_its_last_output() {
    let work = tempfile::tempdir().unwrap();
    let scenario = root().join("scenarios/qos0_delivery.toml");
    let s = mqtt_hil::scenario::load(&scenario).unwrap();
    let not_an_elf = work.path().join("garbage.elf");
    std::fs::write(&not_an_elf, b"this is not firmware").unwrap();
    let silent = root().join("firmware/build/tcp_smoke.elf");
    assert!(
        silent.is_file(),
        "{} is missing: run `make firmware`",
        silent.display()
    );
    for (image, expect) in [
        (not_an_elf, "QEMU exited"),
        (silent, "printed no @ready within 3s"),
    ] {
        let cfg = RunConfig {
            broker: BrokerSpec::Mosquitto,
            target: TargetSpec::Qemu,
            workdir: work.path().join("run"),
            firmware: Firmware {
                image: Some(image.clone()),
                root: root(),
                splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
                boot_timeout: Some(std::time::Duration::from_secs(3)),
                bench: None,
                net: Default::default(),
            },
            deviations: Deviations::default(),
        };
        let o = runner::run(&s, &cfg).await;
        let text = o.failure_text();
        assert!(
            matches!(o.status, runner::Status::Error(_)),
            "{image:?}: {}",
            explain(&o)
        );
        assert!(
            text.contains(expect),
            "{image:?}: expected `{expect}` in:\n{text}"
        );
        let needle = work.path().join("run").display().to_string();
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("qemu-system-xtensa") && c.contains(&needle))
            .collect();
        assert!(left.is_empty(), "QEMU left running: {left:?}");
    }
}
