//! The MQTT 5.0 scenarios (scenarios/v5/): each runs against a real
//! mosquitto with the virtual device speaking 5.0, must pass, and its
//! normalized traffic must match the reviewed snapshot in
//! scenarios/v5/snapshots/.

use std::path::PathBuf;

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::runner::deviation::Deviations;
use mqtt_hil::runner::{self, RunConfig};
use mqtt_hil::target::TargetSpec;
use rstest::rstest;

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_v5(#[files("../scenarios/v5/*.toml")] path: PathBuf) {
    let file = mqtt_hil::scenario::load(&path).expect("scenario loads");
    for s in file.per_version() {
        let work = tempfile::tempdir().unwrap();
        let cfg = RunConfig {
            broker: BrokerSpec::Mosquitto,
            target: TargetSpec::Virtual,
            workdir: work.path().to_path_buf(),
            firmware: Default::default(),
            deviations: Deviations::load(path.parent().unwrap(), "mosquitto").unwrap(),
        };
        let outcome = runner::run(&s, &cfg).await;
        let trace = mqtt_hil::trace::render(&s.name, &outcome.history);
        assert!(
            outcome.acceptable(),
            "{}: {:?}\n{}\n--- trace ---\n{trace}",
            s.id,
            outcome.status,
            outcome.failure_text()
        );
        insta::with_settings!({
            snapshot_path => "../../scenarios/v5/snapshots",
            prepend_module_to_snapshot => false,
            omit_expression => true,
            description => s.name.clone(),
        }, {
            let name = s.id.replace('@', "_at_");
            let snap = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/v5/snapshots").join(format!("{name}.snap"));
            insta::assert_snapshot!(name, mqtt_hil::trace::crossing::as_reviewed(trace.clone(), &snap));
        });
    }
}
