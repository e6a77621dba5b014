//! The project's own sketches in the style of the popular ESP8266 MQTT
//! libraries (firmware/sketches/, their libraries in firmware/libraries/),
//! each built by the sketch builder as `mqtt-hil build` builds a user's
//! sketch and judged as a black box by its scenarios in
//! scenarios/sketches/<sketch>/, with the reviewed trace:
//!
//! - photocell_feeds: the Adafruit MQTT Library's style (HilFeeds);
//! - pubsub_led: PubSubClient's (HilPubSub);
//! - lwmqtt_relay: arduino-mqtt's (HilLwMqtt);
//! - mqttclient_echo: ArduinoMqttClient's (HilMqttClient).
//!
//! Each of the last three libraries carries a seeded bug (its sketch's
//! bugs.txt) that one of the scenarios must catch, naming the rule.

use crate::sketch_util;

use std::path::{Path, PathBuf};

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::runner::deviation::{self, Deviations};
use mqtt_hil::runner::{self, Outcome, RunConfig};
use mqtt_hil::scenario::Scenario;
use mqtt_hil::target::{Firmware, TargetSpec};
use rstest::rstest;

async fn run(sketch: &str, defines: &[String], scenario: &Path) -> (Scenario, Outcome) {
    let s = mqtt_hil::scenario::load(scenario).expect("scenario loads");
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        firmware: Firmware {
            image: Some(sketch_util::image(sketch, defines)),
            root: sketch_util::root(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            ..Firmware::default()
        },
        target: TargetSpec::Qemu,
        workdir: work.path().to_path_buf(),
        deviations: Deviations::default(),
    };
    let o = runner::run(&s, &cfg).await;
    (s, o)
}

async fn judge(sketch: &str, scenario: &Path) {
    let (s, o) = run(sketch, &[], scenario).await;
    let trace = mqtt_hil::trace::render_scenario(&s, &o.history);
    assert!(
        o.passed(),
        "{:?}\n{}\n--- trace ---\n{trace}",
        o.status,
        o.failure_text()
    );
    let snapshots = scenario.parent().unwrap().join("snapshots");
    insta::with_settings!({
        snapshot_path => snapshots.clone(),
        prepend_module_to_snapshot => false,
        omit_expression => true,
        description => s.name.clone(),
    }, {
        let snap = snapshots.join(format!("{}.snap", s.id));
        insta::assert_snapshot!(s.id.clone(), mqtt_hil::trace::crossing::as_reviewed(trace, &snap));
    });
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photocell_feeds(#[files("../scenarios/sketches/photocell_feeds/*.toml")] path: PathBuf) {
    judge("photocell_feeds", &path).await;
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_led(#[files("../scenarios/sketches/pubsub_led/*.toml")] path: PathBuf) {
    judge("pubsub_led", &path).await;
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lwmqtt_relay(#[files("../scenarios/sketches/lwmqtt_relay/*.toml")] path: PathBuf) {
    judge("lwmqtt_relay", &path).await;
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttclient_echo(#[files("../scenarios/sketches/mqttclient_echo/*.toml")] path: PathBuf) {
    judge("mqttclient_echo", &path).await;
}

/// One seeded bug in each of our libraries (the sketch's bugs.txt; built
/// with `-D <LIBRARY>_BUG_<BUG>=1`), the scenario that must catch it, and
/// the rules its verdict must name.
#[rstest]
#[case::pubsub_puback_swapped_id(
    "pubsub_led",
    "HILPUBSUB_BUG_PUBACK_SWAPPED_ID",
    "led_commands_after_sever",
    &["ack-without-publish"]
)]
#[case::lwmqtt_ack_last_sent_id(
    "lwmqtt_relay",
    "HILLWMQTT_BUG_ACK_LAST_SENT_ID",
    "relay_commands_after_sever",
    &["ack-without-publish"]
)]
#[case::mqttclient_keepalive_units(
    "mqttclient_echo",
    "HILMQTTCLIENT_BUG_KEEPALIVE_UNITS",
    "echo_after_sever",
    &["keepalive-ping-too-fast"]
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_bug_is_caught(
    #[case] sketch: &str,
    #[case] define: &str,
    #[case] scenario: &str,
    #[case] rules: &[&str],
) {
    let listed = std::fs::read_to_string(
        sketch_util::root()
            .join("firmware/sketches")
            .join(sketch)
            .join("bugs.txt"),
    )
    .expect("the sketch lists its seeded bugs");
    let bug = define.rsplit("_BUG_").next().unwrap().to_lowercase();
    assert!(
        listed.lines().any(|l| l.trim() == bug),
        "{bug} is not in {sketch}/bugs.txt"
    );
    let path = sketch_util::root()
        .join("scenarios/sketches")
        .join(sketch)
        .join(format!("{scenario}.toml"));
    let (s, o) = run(sketch, &[format!("{define}=1")], &path).await;
    let trace = mqtt_hil::trace::render_scenario(&s, &o.history);
    assert!(
        !o.acceptable(),
        "{define} went unnoticed by {scenario}:\n{trace}"
    );
    let seen = deviation::signature(&o);
    let missing: Vec<&str> = rules
        .iter()
        .copied()
        .filter(|r| !seen.contains(*r))
        .collect();
    assert!(
        missing.is_empty(),
        "{define}: expected {missing:?} among {seen:?}\n{}\n--- trace ---\n{trace}",
        o.failure_text()
    );
}
