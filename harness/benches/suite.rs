//! `cargo bench --bench suite`: the scenario suite's wall time against the
//! time the protocol itself makes it wait (explicit waits, absence windows,
//! and expectations waiting for timer-driven events such as keepalive
//! expiry). What is left is the harness's own cost: broker start, proxy,
//! set-up and teardown. Printed per scenario and as totals with ratios.

use std::path::PathBuf;
use std::time::Duration;

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::history::{EventKind, History};
use mqtt_hil::runner::{self, RunConfig};
use mqtt_hil::scenario::{self, Action};
use mqtt_hil::target::TargetSpec;

/// Time spent in wait and expect steps, from the recorded history.
fn waiting_time(s: &scenario::Scenario, h: &History) -> Duration {
    let mut total = Duration::ZERO;
    let starts: Vec<(usize, Duration)> = h
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Step { index, .. } => Some((*index, e.at)),
            _ => None,
        })
        .collect();
    for (i, (index, at)) in starts.iter().enumerate() {
        let waits = matches!(
            s.steps.get(index - 1).map(|st| &st.action),
            Some(Action::Wait(_) | Action::Expect(_))
        );
        if waits {
            let end = starts
                .get(i + 1)
                .map(|(_, t)| *t)
                .unwrap_or_else(|| h.events.last().map(|e| e.at).unwrap_or(*at));
            total += end.saturating_sub(*at);
        }
    }
    total
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = scenario::discover(&[root.join("scenarios")]).expect("scenarios");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        target: TargetSpec::Virtual,
        workdir: work.path().to_path_buf(),
        firmware: Default::default(),
        deviations: mqtt_hil::runner::deviation::Deviations::load(
            &root.join("scenarios"),
            "mosquitto",
        )
        .expect("deviations"),
    };
    println!(
        "{:<40} {:>9} {:>9} {:>9}",
        "scenario", "wall", "waiting", "overhead"
    );
    let (mut wall, mut waiting) = (Duration::ZERO, Duration::ZERO);
    for f in files {
        let s = scenario::load(&f).unwrap();
        let o = rt.block_on(runner::run(&s, &cfg));
        let w = waiting_time(&s, &o.history);
        wall += o.duration;
        waiting += w;
        println!(
            "{:<40} {:>8.2}s {:>8.2}s {:>8.2}s{}",
            s.id,
            o.duration.as_secs_f64(),
            w.as_secs_f64(),
            o.duration.saturating_sub(w).as_secs_f64(),
            match &o.status {
                mqtt_hil::runner::Status::Passed => "",
                mqtt_hil::runner::Status::Deviation(_) => "  (known deviation)",
                _ => "  (did not pass)",
            }
        );
    }
    let overhead = wall.saturating_sub(waiting);
    println!(
        "suite: wall {:.2}s, protocol-imposed waiting {:.2}s, harness overhead {:.2}s ({:.1}% of wall; wall/waiting = {:.2}x)",
        wall.as_secs_f64(),
        waiting.as_secs_f64(),
        overhead.as_secs_f64(),
        100.0 * overhead.as_secs_f64() / wall.as_secs_f64().max(1e-9),
        wall.as_secs_f64() / waiting.as_secs_f64().max(1e-9)
    );
}
