//! `cargo bench --bench brokers`: per broker, the time from "start it" to
//! its first CONNACK (a real CONNECT/CONNACK probe), and the wall time of a
//! representative matrix (a few scenarios x every broker this machine can
//! run), per cell and in total, side by side. Container brokers include
//! creating the network and the container; the embedded broker is a thread.
//! The full matrix's wall time is printed by `make matrix` (`mqtt-hil
//! matrix`, last line).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mqtt_hil::broker::Broker;
use mqtt_hil::matrix;
use mqtt_hil::report::Reporters;
use mqtt_hil::target::TargetSpec;

const RUNS: usize = 3;
const SCENARIOS: &[&str] = &["qos1_delivery", "will_on_sever", "retained_set_and_clear"];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let (brokers, missing) = matrix::available_brokers().await;
        for m in &missing {
            println!("not measured: {m}");
        }
        println!("== start to first CONNACK (median of {RUNS}, min..max)");
        for b in &brokers {
            let mut times = Vec::new();
            for i in 0..RUNS {
                let dir = work.path().join(format!("start-{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                let t = Instant::now();
                let broker = Broker::start(b, &dir, None, mqtt_hil::broker::Tenure::Own)
                    .await
                    .expect("broker starts");
                // Every backend's start returns only after a CONNACK (or, for
                // mosquitto, a listening socket): probe once more to be sure.
                mqtt_hil::broker::probe::connack(broker.addr(), Duration::from_secs(5))
                    .await
                    .expect("CONNACK");
                times.push(t.elapsed());
                broker.shutdown().await;
            }
            let (lo, hi) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
            println!(
                "{:<24} {:>8.0} ms   ({:.0}..{:.0})",
                b.to_string(),
                median(times).as_secs_f64() * 1e3,
                lo.as_secs_f64() * 1e3,
                hi.as_secs_f64() * 1e3
            );
        }

        let scenarios: Vec<_> = SCENARIOS
            .iter()
            .map(|id| mqtt_hil::scenario::load(&root.join(format!("scenarios/{id}.toml"))).unwrap())
            .collect();
        let cfg = matrix::MatrixConfig {
            scenarios,
            brokers: brokers.clone(),
            unavailable: missing,
            partition: matrix::Partition::WHOLE,
            target: TargetSpec::Virtual,
            firmware: Default::default(),
            deviations_folders: vec![root.join("scenarios")],
            out: work.path().join("matrix"),
            repeat: 1,
            jobs: 1,
            costs: Vec::new(),
        };
        let mut reporters = Reporters::new();
        let m = matrix::run(&cfg, &mut reporters)
            .await
            .expect("matrix runs");
        println!(
            "== matrix: {} scenarios x {} brokers, wall time {:.1}s",
            SCENARIOS.len(),
            brokers.len(),
            m.wall_ms as f64 / 1e3
        );
        for b in &m.brokers {
            let cells: Vec<_> = m.cells.iter().filter(|c| &c.broker == b).collect();
            let total: u64 = cells.iter().map(|c| c.duration_ms).sum();
            let verdicts: Vec<&str> = cells.iter().map(|c| c.verdict.label()).collect();
            println!(
                "{:<24} {:>7.1}s  {:>6.1}s/scenario  [{}]",
                b,
                total as f64 / 1e3,
                total as f64 / 1e3 / cells.len().max(1) as f64,
                verdicts.join(" ")
            );
        }
    });
    rt.block_on(mqtt_hil::broker::container::sweep());
}
