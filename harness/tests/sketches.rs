//! The project's own sketches in the style of the popular ESP8266 MQTT
//! libraries (firmware/sketches/, their libraries in firmware/libraries/),
//! each built by the sketch builder as `mqtt-hil build` builds a user's
//! sketch and judged as a black box by its scenarios in
//! scenarios/sketches/<sketch>/, with the reviewed trace.

mod sketch_util;

use std::path::{Path, PathBuf};

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::runner::deviation::Deviations;
use mqtt_hil::runner::{self, RunConfig};
use mqtt_hil::target::{Firmware, TargetSpec};
use rstest::rstest;

async fn judge(sketch: &str, scenario: &Path) {
    let s = mqtt_hil::scenario::load(scenario).expect("scenario loads");
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        firmware: Firmware {
            image: Some(sketch_util::image(sketch, &[])),
            root: sketch_util::root(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            ..Firmware::default()
        },
        target: TargetSpec::Qemu,
        workdir: work.path().to_path_buf(),
        deviations: Deviations::default(),
    };
    let o = runner::run(&s, &cfg).await;
    let trace = mqtt_hil::trace::render_scenario(&s, &o.history);
    assert!(
        o.passed(),
        "{:?}\n{}\n--- trace ---\n{trace}",
        o.status,
        o.failure_text()
    );
    let snapshots = scenario.parent().unwrap().join("snapshots");
    insta::with_settings!({
        snapshot_path => snapshots,
        prepend_module_to_snapshot => false,
        omit_expression => true,
        description => s.name.clone(),
    }, {
        insta::assert_snapshot!(s.id.clone(), trace);
    });
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photocell_feeds(#[files("../scenarios/sketches/photocell_feeds/*.toml")] path: PathBuf) {
    judge("photocell_feeds", &path).await;
}
