//! `cargo bench --bench suite`: issue 15's speed targets, measured side by
//! side in one run (and printed next to each target):
//!
//! 1. the scenario suite (`scenarios/`) on the virtual device at the
//!    default `-j`, next to the same suite at `-j 1` and its longest single
//!    scenario; the same on the emulated board (`--target qemu`, the agent
//!    built by `make firmware`). Targets: 15 s and 40 s wall.
//! 2. a conformance matrix (by default `make matrix`'s: every scenario
//!    folder × every broker this machine can run) at the default `-j`, next
//!    to its sequential time (estimated as the sum of its cells' own times
//!    unless measured) and its longest cell, with where the time goes per
//!    broker: setting up (broker start, connects), waits the protocol
//!    imposes, teardown. Target (the full matrix): 300 s.
//! 3. the suite on the virtual device 20 times at the default `-j`
//!    (`--repeat 20`), and how many runs' verdicts differed from their
//!    scenario's first run. Target: 0. The same on the emulated board
//!    (part `repeat-qemu`, not in the default parts): the proof that the
//!    board's default `-j` gives the verdicts of one at a time.
//!
//! Every run is the runner's own (`runner::pool`, `matrix::run`), as
//! `mqtt-hil run` and `mqtt-hil matrix` do it, each scenario with its own
//! broker. Environment (all optional):
//! - `MQTT_HIL_BENCH_PARTS=virtual,qemu,matrix,repeat` — which parts run
//!   (also `repeat-qemu`);
//! - `MQTT_HIL_BENCH_MATRIX` — `full` (default), `off`, or
//!   `brokers=A,B;folders=X,Y;filter=TEXT` (each key optional; defaults
//!   are the full matrix's), e.g. `brokers=mosquitto,container:nats;folders=scenarios`;
//! - `MQTT_HIL_BENCH_MATRIX_SEQUENTIAL=1` — also run the matrix at `-j 1`
//!   instead of estimating it (the full matrix then takes about an hour);
//! - `MQTT_HIL_BENCH_REPEAT=N` — runs per scenario in part 3 and in
//!   `repeat-qemu` (default 20).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::error::Error;
use mqtt_hil::history::{EventKind, History};
use mqtt_hil::matrix;
use mqtt_hil::report::{Repeated, Reporter, Reporters, RunEvent};
use mqtt_hil::runner::deviation::Deviations;
use mqtt_hil::runner::pool::{self, Job, JobEnd};
use mqtt_hil::runner::{self, RunConfig, Status};
use mqtt_hil::scenario::{self, Action, Scenario};
use mqtt_hil::target::{Firmware, TargetSpec};

const FULL_FOLDERS: &[&str] = &[
    "scenarios",
    "scenarios/containers",
    "scenarios/slow",
    "scenarios/v5",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// Time spent in wait and expect steps, from the recorded history: what
/// the protocol (a keep alive, a declared wait, a quiet period) makes the
/// scenario wait.
fn waiting_time(s: &Scenario, h: &History) -> Duration {
    let mut total = Duration::ZERO;
    let starts: Vec<(usize, Duration)> = h
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Step { index, .. } => Some((*index, e.at)),
            EventKind::Teardown => Some((0, e.at)),
            _ => None,
        })
        .collect();
    for (i, (index, at)) in starts.iter().enumerate() {
        let waits = *index > 0
            && matches!(
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

/// Where one run's time went.
#[derive(Clone, Debug, Default)]
struct Split {
    wall: Duration,
    /// Until the first step: the broker's start, the board's boot, connects.
    setup: Duration,
    waiting: Duration,
    /// From the end of the steps: stopping everything.
    teardown: Duration,
}

fn split(s: &Scenario, o: &runner::Outcome) -> Split {
    let h = &o.history;
    let first_step = h.events.iter().find_map(|e| match e.kind {
        EventKind::Step { .. } => Some(e.at),
        _ => None,
    });
    let teardown = h.events.iter().find_map(|e| match e.kind {
        EventKind::Teardown => Some(e.at),
        _ => None,
    });
    Split {
        wall: o.duration,
        setup: first_step.unwrap_or(o.duration),
        waiting: waiting_time(s, h),
        teardown: teardown.map_or(Duration::ZERO, |t| o.duration.saturating_sub(t)),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn verdict(st: &Status) -> &'static str {
    mqtt_hil::report::events::label(st)
}

fn target_line(what: &str, got: Duration, target: f64) -> String {
    format!(
        "{what}: {:.1} s against a target of <= {target:.0} s: {}",
        secs(got),
        if secs(got) <= target {
            "met"
        } else {
            "NOT met"
        }
    )
}

fn load_suite(paths: &[PathBuf], filter: Option<&str>, target: &TargetSpec) -> Vec<Scenario> {
    let files = scenario::discover(paths).expect("scenario folders");
    let mut out = Vec::new();
    for f in files {
        for s in scenario::load(&f)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
            .per_version()
        {
            if filter.is_none_or(|t| s.id.contains(t)) && runner::check_target(&s, target).is_ok() {
                out.push(s);
            }
        }
    }
    out
}

/// The agent image the emulated board runs (`make firmware`).
fn board_agent() -> PathBuf {
    root().join("firmware/build/agent.elf")
}

fn target_name(t: &TargetSpec) -> &'static str {
    match t {
        TargetSpec::Qemu => "emulated board",
        _ => "virtual device",
    }
}

fn firmware(root: &Path) -> Firmware {
    Firmware {
        image: None,
        root: root.to_path_buf(),
        splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
        boot_timeout: None,
        bench: None,
        net: Default::default(),
    }
}

/// The scenarios through the runner's pool, `parallel` at a time, `runs`
/// runs each: the wall time and every scenario's runs.
async fn run_suite(
    scenarios: &[Scenario],
    cfg: &Arc<RunConfig>,
    parallel: usize,
    runs: usize,
) -> (Duration, Vec<Arc<Repeated>>) {
    let label = cfg.broker.to_string();
    let jobs: Vec<Job> = scenarios
        .iter()
        .enumerate()
        .map(|(n, s)| Job {
            scenario: s.clone(),
            cfg: cfg.clone(),
            index: n * runs,
            broker: label.clone(),
            runs,
        })
        .collect();
    let mut reporters = Reporters::new();
    let t = Instant::now();
    let (ends, _) = pool::run_pool(
        &jobs,
        parallel,
        &mut reporters,
        &mut pool::All,
        std::future::pending::<mqtt_hil::signals::Signal>(),
    )
    .await
    .expect("the pool runs");
    let wall = t.elapsed();
    let done = ends
        .into_iter()
        .map(|e| match e {
            JobEnd::Done(r) => r,
            other => panic!("a scenario did not run: {other:?}"),
        })
        .collect();
    (wall, done)
}

/// Part 1 for one target: the suite at the default -j and at -j 1.
async fn suite_part(title: &str, target: TargetSpec, target_secs: f64, work: &Path) {
    let root = root();
    let folder = root.join("scenarios");
    let broker = BrokerSpec::Mosquitto;
    let cfg = Arc::new(RunConfig {
        broker: broker.clone(),
        target: target.clone(),
        workdir: work.join(title.replace(' ', "_")),
        firmware: firmware(&root),
        deviations: Deviations::for_broker_in(std::slice::from_ref(&folder), &broker)
            .expect("deviations"),
    });
    let suite = load_suite(std::slice::from_ref(&folder), None, &target);
    let jobs = pool::default_jobs(&target, &broker).min(suite.len()).max(1);
    println!(
        "== suite on the {title}: scenarios/ ({} runs) against the mosquitto process, default -j {jobs} on {} CPUs",
        suite.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let (par_wall, par) = run_suite(&suite, &cfg, jobs, 1).await;
    // At a default of 1 the sequential figure is the same run.
    let (seq_wall, seq) = if jobs == 1 {
        (par_wall, par.clone())
    } else {
        run_suite(&suite, &cfg, 1, 1).await
    };
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8}  -j {jobs}",
        "scenario (at -j 1)", "wall", "setup", "waiting", "teardown", "other"
    );
    let mut longest = (Duration::ZERO, String::new());
    let mut changed = Vec::new();
    for ((s, r), p) in suite.iter().zip(&seq).zip(&par) {
        let o = &r.runs[0].outcome;
        let sp = split(s, o);
        if sp.wall > longest.0 {
            longest = (sp.wall, s.id.clone());
        }
        let other = sp.wall.saturating_sub(sp.setup + sp.waiting + sp.teardown);
        let (a, b) = (verdict(&o.status), verdict(&p.runs[0].outcome.status));
        if a != b {
            changed.push(format!("{}: {a} at -j 1, {b} at -j {jobs}", s.id));
        }
        println!(
            "{:<44} {:>7.2}s {:>7.2}s {:>7.2}s {:>7.2}s {:>7.2}s  {b}",
            s.id,
            secs(sp.wall),
            secs(sp.setup),
            secs(sp.waiting),
            secs(sp.teardown),
            secs(other),
        );
    }
    let sum: Duration = seq.iter().map(|r| r.runs[0].outcome.duration).sum();
    println!(
        "suite on the {title}: -j {jobs} {:.1} s | -j 1 {:.1} s ({:.1}x) | longest scenario {:.1} s ({}) | verdicts differing between -j 1 and -j {jobs}: {}",
        secs(par_wall),
        secs(seq_wall),
        secs(seq_wall) / secs(par_wall).max(1e-9),
        secs(longest.0),
        longest.1,
        changed.len()
    );
    for c in &changed {
        println!("  differs: {c}");
    }
    println!(
        "  (sum of the scenarios' own times at -j 1: {:.1} s; the rest of -j 1's wall is the runner between them)",
        secs(sum)
    );
    println!(
        "{}",
        target_line(
            &format!("suite on the {title} at the default -j {jobs}"),
            par_wall,
            target_secs
        )
    );
}

/// One finished matrix cell: broker, scenario, where its time went, verdict.
type Cell = (String, String, Split, &'static str);

/// Every finished run of a matrix, with where its time went.
#[derive(Clone)]
struct Collect {
    scenarios: Arc<HashMap<String, Scenario>>,
    cells: Arc<Mutex<Vec<Cell>>>,
}

impl Reporter for Collect {
    fn report(&mut self, ev: &RunEvent) -> Result<(), Error> {
        if let RunEvent::ScenarioFinished(f) = ev {
            let o = &f.outcome;
            let sp = match self.scenarios.get(&o.id) {
                Some(s) => split(s, o),
                None => Split {
                    wall: o.duration,
                    ..Default::default()
                },
            };
            self.cells.lock().unwrap().push((
                f.broker.clone(),
                o.id.clone(),
                sp,
                verdict(&o.status),
            ));
        }
        Ok(())
    }
}

struct MatrixChoice {
    spec: String,
    brokers: Option<String>,
    folders: Vec<String>,
    filter: Option<String>,
}

fn matrix_choice() -> Option<MatrixChoice> {
    let spec = std::env::var("MQTT_HIL_BENCH_MATRIX").unwrap_or_else(|_| "full".into());
    let mut c = MatrixChoice {
        spec: spec.clone(),
        brokers: None,
        folders: FULL_FOLDERS.iter().map(|f| f.to_string()).collect(),
        filter: None,
    };
    match spec.trim() {
        "off" => return None,
        "full" | "" => {}
        other => {
            for part in other.split(';').filter(|p| !p.trim().is_empty()) {
                let (k, v) = part.split_once('=').unwrap_or_else(|| {
                    panic!("MQTT_HIL_BENCH_MATRIX: `{part}` is not KEY=VALUE (keys: brokers, folders, filter; or say full or off)")
                });
                match k.trim() {
                    "brokers" => c.brokers = Some(v.trim().to_string()),
                    "folders" => c.folders = v.split(',').map(|f| f.trim().to_string()).collect(),
                    "filter" => c.filter = Some(v.trim().to_string()),
                    k => panic!(
                        "MQTT_HIL_BENCH_MATRIX: unknown key `{k}` (keys: brokers, folders, filter)"
                    ),
                }
            }
        }
    }
    Some(c)
}

async fn matrix_part(work: &Path) {
    let Some(choice) = matrix_choice() else {
        println!("== matrix: not run (MQTT_HIL_BENCH_MATRIX=off)");
        return;
    };
    let root = root();
    let folders: Vec<PathBuf> = choice.folders.iter().map(|f| root.join(f)).collect();
    let target = TargetSpec::Virtual;
    let scenarios = load_suite(&folders, choice.filter.as_deref(), &target);
    let (brokers, unavailable) = match &choice.brokers {
        Some(list) => (
            matrix::plan::parse_brokers(list).expect("MQTT_HIL_BENCH_MATRIX brokers"),
            Vec::new(),
        ),
        None => matrix::available_brokers().await,
    };
    let (places, costs) = pool::weights(&target, &brokers);
    let full = choice.spec.trim() == "full" || choice.spec.trim().is_empty();
    println!(
        "== matrix ({}): folders {} x {} brokers [{}]{} = {} cells",
        if full {
            "the full one, as `make matrix`".to_string()
        } else {
            format!("MQTT_HIL_BENCH_MATRIX={}", choice.spec)
        },
        choice.folders.join(" "),
        brokers.len(),
        brokers
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        choice
            .filter
            .as_ref()
            .map(|f| format!(" (ids containing `{f}`)"))
            .unwrap_or_default(),
        scenarios.len() * brokers.len()
    );
    for u in &unavailable {
        println!("  not in it: {u}");
    }
    println!(
        "  default -j: {places} places; a cell takes {}",
        brokers
            .iter()
            .zip(&costs)
            .map(|(b, c)| match b {
                BrokerSpec::Container(i) if i.known().is_some_and(|k| k.tenants.is_some()) => {
                    format!("{c} on {b} (1 as a tenant of a shared node)")
                }
                _ => format!("{c} on {b}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let by_id: HashMap<String, Scenario> = scenarios
        .iter()
        .map(|s| (s.id.clone(), s.clone()))
        .collect();
    let by_id = Arc::new(by_id);
    let run_at = |jobs: usize, costs: Vec<usize>, out: PathBuf| {
        let cfg = matrix::MatrixConfig {
            scenarios: scenarios.clone(),
            brokers: brokers.clone(),
            unavailable: unavailable.clone(),
            partition: matrix::Partition::WHOLE,
            target: target.clone(),
            firmware: firmware(&root),
            deviations_folders: folders.clone(),
            out,
            repeat: 1,
            jobs,
            costs,
        };
        let collect = Collect {
            scenarios: by_id.clone(),
            cells: Arc::new(Mutex::new(Vec::new())),
        };
        let cells = collect.cells.clone();
        async move {
            let mut reporters = Reporters::new();
            reporters.push(collect);
            let m = matrix::run(&cfg, &mut reporters)
                .await
                .expect("the matrix runs");
            let cells = std::mem::take(&mut *cells.lock().unwrap());
            (m, cells)
        }
    };
    let (m, cells) = run_at(places, costs.clone(), work.join("matrix")).await;
    let wall = Duration::from_millis(m.wall_ms);
    let sum: Duration = cells.iter().map(|c| c.2.wall).sum();
    let longest = cells
        .iter()
        .max_by_key(|c| c.2.wall)
        .map(|c| (c.2.wall, format!("{} on {}", c.1, c.0)))
        .unwrap_or_default();
    #[derive(Default)]
    struct Sums {
        cells: usize,
        split: Split,
        longest: Duration,
        verdicts: BTreeMap<&'static str, usize>,
    }
    let mut per: BTreeMap<String, Sums> = BTreeMap::new();
    for (b, _, sp, v) in &cells {
        let e = per.entry(b.clone()).or_default();
        e.cells += 1;
        e.split.wall += sp.wall;
        e.split.setup += sp.setup;
        e.split.waiting += sp.waiting;
        e.split.teardown += sp.teardown;
        e.longest = e.longest.max(sp.wall);
        *e.verdicts.entry(v).or_default() += 1;
    }
    println!(
        "{:<28} {:>5} {:>9} {:>9} {:>9} {:>9} {:>8}  verdicts",
        "broker (sums of its cells)", "cells", "wall", "setup", "waiting", "teardown", "longest"
    );
    for (b, e) in &per {
        println!(
            "{:<28} {:>5} {:>8.1}s {:>8.1}s {:>8.1}s {:>8.1}s {:>7.1}s  {}",
            b,
            e.cells,
            secs(e.split.wall),
            secs(e.split.setup),
            secs(e.split.waiting),
            secs(e.split.teardown),
            secs(e.longest),
            e.verdicts
                .iter()
                .map(|(v, n)| format!("{n} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let sequential = if std::env::var("MQTT_HIL_BENCH_MATRIX_SEQUENTIAL").is_ok_and(|v| v == "1") {
        let (m1, _) = run_at(1, Vec::new(), work.join("matrix-j1")).await;
        format!("-j 1 {:.1} s (measured)", m1.wall_ms as f64 / 1e3)
    } else {
        format!(
            "-j 1 ~{:.1} s (estimated: the sum of the cells' own times in this run; MQTT_HIL_BENCH_MATRIX_SEQUENTIAL=1 measures it)",
            secs(sum)
        )
    };
    println!(
        "matrix: default -j ({places} places) {:.1} s | {sequential} | longest cell {:.1} s ({})",
        secs(wall),
        secs(longest.0),
        longest.1
    );
    if full {
        println!(
            "{}",
            target_line("full matrix at the default -j", wall, 300.0)
        );
    } else {
        println!(
            "(target <= 300 s is for the full matrix; this was MQTT_HIL_BENCH_MATRIX={})",
            choice.spec
        );
    }
}

async fn repeat_part(work: &Path, target: TargetSpec) {
    let runs: usize = std::env::var("MQTT_HIL_BENCH_REPEAT")
        .ok()
        .map(|v| v.parse().expect("MQTT_HIL_BENCH_REPEAT: a number"))
        .unwrap_or(20);
    let root = root();
    let folder = root.join("scenarios");
    let broker = BrokerSpec::Mosquitto;
    let cfg = Arc::new(RunConfig {
        broker: broker.clone(),
        target: target.clone(),
        workdir: work.join(format!("repeat-{target}")),
        firmware: firmware(&root),
        deviations: Deviations::for_broker_in(std::slice::from_ref(&folder), &broker)
            .expect("deviations"),
    });
    let suite = load_suite(std::slice::from_ref(&folder), None, &target);
    let jobs = pool::default_jobs(&target, &broker).min(suite.len()).max(1);
    println!(
        "== repeat: scenarios/ ({} runs) {runs} times each on the {}, default -j {jobs} (`run --target {target} --repeat {runs}`)",
        suite.len(),
        target_name(&target)
    );
    let (wall, done) = run_suite(&suite, &cfg, jobs, runs).await;
    let mut changes = 0;
    let mut flaky = 0;
    for r in &done {
        if let Some(f) = &r.flaky {
            flaky += 1;
            changes += f.runs.iter().filter(|s| **s != f.runs[0]).count();
            println!("  FLAKY {}: {}", r.id(), f.summary());
        }
    }
    println!(
        "repeat on the {}: {} runs in {:.1} s: {changes} verdict changes (runs whose verdict differs from their scenario's first run), {flaky} scenarios flaky; target 0: {}",
        target_name(&target),
        suite.len() * runs,
        secs(wall),
        if changes == 0 { "met" } else { "NOT met" }
    );
}

fn main() {
    let parts = std::env::var("MQTT_HIL_BENCH_PARTS")
        .unwrap_or_else(|_| "virtual,qemu,matrix,repeat".into());
    let wants = |p: &str| parts.split(',').any(|x| x.trim() == p);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    };
    println!("load average at the start: {}", load());
    let started = Instant::now();
    rt.block_on(async {
        if wants("virtual") {
            suite_part("virtual device", TargetSpec::Virtual, 15.0, work.path()).await;
        }
        if wants("qemu") {
            let agent = board_agent();
            if agent.exists() {
                suite_part("emulated board", TargetSpec::Qemu, 40.0, work.path()).await;
            } else {
                println!(
                    "== suite on the emulated board: not measured, {} is missing (make firmware)",
                    agent.display()
                );
            }
        }
        if wants("matrix") {
            matrix_part(work.path()).await;
        }
        if wants("repeat") {
            repeat_part(work.path(), TargetSpec::Virtual).await;
        }
        if wants("repeat-qemu") {
            if board_agent().exists() {
                repeat_part(work.path(), TargetSpec::Qemu).await;
            } else {
                println!(
                    "== repeat on the emulated board: not run, {} is missing (make firmware)",
                    board_agent().display()
                );
            }
        }
    });
    rt.block_on(mqtt_hil::broker::container::sweep());
    println!(
        "load average at the end: {} ({:.0} s in all)",
        load(),
        started.elapsed().as_secs_f64()
    );
}
