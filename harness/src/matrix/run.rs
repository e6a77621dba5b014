//! Runs the cells of a matrix, broker by broker, each scenario with a fresh
//! broker as `mqtt-hil run` does, through the same reporters (terminal
//! lines, traces per broker, JUnit, the HTML matrix index, pcaps), and
//! classifies each outcome into the matrix's own result.
//!
//! Container brokers start ahead of need: the cells' broker starts are
//! known before the first cell runs, so a [`Warm`] pool starts the next
//! ones (at most `-j`, capped at [`MAX_WARM`]) while cells run, and a cell
//! whose broker is RabbitMQ does not wait its start. A cell gets a fresh
//! container of its own (see [`crate::broker::warm`]), except on an image
//! with tenants (RabbitMQ): there a cell that takes no broker action runs
//! on a never-used vhost of a shared node ([`crate::broker::tenancy`]),
//! and costs the pool what a light cell does.

use std::path::PathBuf;
use std::time::Instant;

use super::plan::{Cell, Partition};
use super::results::{CellResult, Matrix, ScenarioRow, Verdict};
use crate::broker::tenancy::{self, Tenancy};
use crate::broker::warm::{Warm, MAX_WARM};
use crate::broker::{BrokerSpec, ImageRef};
use crate::error::Result;
use crate::report::{Reporters, RunEvent, Totals};
use crate::runner::deviation::Deviations;
use crate::runner::{self, Outcome, RunConfig, Status};
use crate::scenario::Scenario;
use crate::target::{Firmware, TargetSpec};

pub struct MatrixConfig {
    pub scenarios: Vec<Scenario>,
    pub brokers: Vec<BrokerSpec>,
    /// Brokers left out, and why (for the report).
    pub unavailable: Vec<String>,
    pub partition: Partition,
    pub target: TargetSpec,
    pub firmware: Firmware,
    /// The scenario folders whose `deviations/` apply, the first one's
    /// being the profile file (`Deviations::for_broker_in`).
    pub deviations_folders: Vec<PathBuf>,
    /// Broker files go under `out/work/<broker>/`.
    pub out: PathBuf,
    /// Runs per cell (`--repeat N`); cells whose runs disagree are FLAKY.
    pub repeat: usize,
    /// Cells run at once (`-j N`), each with its own broker: the pool's
    /// places when `costs` is given.
    pub jobs: usize,
    /// Places of `jobs` a cell of each broker takes (in `brokers`' order;
    /// empty: one each): the default without `-j`,
    /// [`runner::pool::weights`].
    pub costs: Vec<usize>,
}

/// Runs this partition's cells, each reported as it finishes.
pub async fn run(cfg: &MatrixConfig, reporters: &mut Reporters) -> Result<Matrix> {
    let started = Instant::now();
    let mut deviations = Vec::new();
    for b in &cfg.brokers {
        deviations.push(Deviations::for_broker_in(&cfg.deviations_folders, b)?);
    }
    let all: Vec<Cell> = cfg
        .scenarios
        .iter()
        .flat_map(|s| {
            cfg.brokers.iter().map(|b| Cell {
                scenario: s.id.clone(),
                broker: b.to_string(),
            })
        })
        .collect();
    let mine = cfg.partition.select(all);
    let mut m = Matrix {
        format: Matrix::FORMAT,
        partition: (cfg.partition != Partition::WHOLE).then(|| cfg.partition.to_string()),
        brokers: cfg.brokers.iter().map(|b| b.to_string()).collect(),
        unavailable: cfg.unavailable.clone(),
        scenarios: cfg
            .scenarios
            .iter()
            .filter(|s| mine.iter().any(|c| c.scenario == s.id))
            .map(|s| ScenarioRow {
                id: if speaks_v5(s) && !s.id.ends_with("@5") {
                    format!("{}@5", s.id)
                } else {
                    s.id.clone()
                },
                name: s.name.clone(),
            })
            .collect(),
        ..Default::default()
    };
    let repeat = cfg.repeat.max(1);
    reporters.report(&RunEvent::RunStarted {
        count: mine.len() * repeat,
        brokers: m.brokers.clone(),
        target: cfg.target.to_string(),
    })?;
    let mut totals = Totals::default();
    // Under -j the cells launch longest first (see [`launch_order`]); the
    // warm pool must start brokers in that same order.
    let pooled = if cfg.jobs > 1 {
        let (jobs, of_job) = pool_jobs(cfg, &mine, &deviations)?;
        let order = launch_order(&jobs);
        Some((jobs, of_job, order))
    } else {
        None
    };
    let (starts, tenants) = broker_starts(cfg, &mine, &deviations)?;
    let starts = match &pooled {
        Some((_, _, order)) => in_launch_order(starts, order, repeat),
        None => starts,
    };
    let tenancy = Tenancy::new(tenancy::count_needs(tenants.iter()));
    let warm = Warm::with_tenancy(starts, cfg.jobs.clamp(1, MAX_WARM), Some(tenancy));
    let cells = async {
        if let Some((jobs, of_job, order)) = &pooled {
            run_pooled(
                cfg,
                (jobs, of_job, order),
                &deviations,
                reporters,
                &mut m,
                &mut totals,
                &warm,
            )
            .await
        } else {
            run_sequential(
                cfg,
                &mine,
                &deviations,
                reporters,
                &mut m,
                &mut totals,
                &warm,
            )
            .await
        }
    };
    let ran = Warm::scope(Some(warm.clone()), cells).await;
    // Whatever was started ahead and not taken (a cell skipped, a broker
    // that broke) is shut down before the run reports its end.
    warm.shutdown().await;
    ran?;
    finish(m, totals, started, reporters)
}

/// The image whose shared hosts run `s` on `broker` as a tenant
/// ([`crate::broker::tenancy`]): a container broker with tenants, and a
/// scenario that takes no broker action.
fn tenant_of<'a>(broker: &'a BrokerSpec, s: &Scenario) -> Option<&'a ImageRef> {
    match broker {
        BrokerSpec::Container(image)
            if image.known().is_some_and(|k| k.tenants.is_some()) && !s.acts_on_broker() =>
        {
            Some(image)
        }
        _ => None,
    }
}

/// The container each run of each cell will start, in the order the cells
/// launch (broker by broker, the scenarios in order, `--repeat` runs each):
/// what [`Warm`] starts ahead. `None` for a broker that is no container,
/// for a scenario that is skipped before it starts one, and for a tenant
/// of a shared host; those tenants' images come second, one per run.
fn broker_starts(
    cfg: &MatrixConfig,
    mine: &[Cell],
    deviations: &[Deviations],
) -> Result<(Vec<Option<ImageRef>>, Vec<ImageRef>)> {
    let repeat = cfg.repeat.max(1);
    let mut out = Vec::new();
    let mut tenants = Vec::new();
    for (broker, devs) in cfg.brokers.iter().zip(deviations) {
        let column = broker.to_string();
        let run_cfg = run_config(cfg, broker, devs)?;
        for s in &cfg.scenarios {
            if !mine
                .iter()
                .any(|c| c.scenario == s.id && c.broker == column)
            {
                continue;
            }
            let need = match broker {
                // A network cut's container is made for it, on a network
                // of its own (broker::Tenure): not started ahead.
                BrokerSpec::Container(_) if s.cuts_broker_network() => None,
                BrokerSpec::Container(image) if runner::starts_broker(s, &run_cfg) => {
                    match tenant_of(broker, s) {
                        Some(image) => {
                            tenants.extend(std::iter::repeat_n(image.clone(), repeat));
                            None
                        }
                        None => Some(image.clone()),
                    }
                }
                _ => None,
            };
            out.extend(std::iter::repeat_n(need, repeat));
        }
    }
    Ok((out, tenants))
}

/// The cells one at a time (`-j 1`), the next brokers starting ahead.
async fn run_sequential(
    cfg: &MatrixConfig,
    mine: &[Cell],
    deviations: &[Deviations],
    reporters: &mut Reporters,
    m: &mut Matrix,
    totals: &mut Totals,
    warm: &Warm,
) -> Result<()> {
    let repeat = cfg.repeat.max(1);
    let mut index = 0;
    let mut ordinal = 0;
    for (broker, devs) in cfg.brokers.iter().zip(deviations) {
        let column = broker.to_string();
        let run_cfg = run_config(cfg, broker, devs)?;
        // A broker that cannot start fails every cell alike: say it once
        // per cell without trying again.
        let mut broken: Option<String> = None;
        for s in &cfg.scenarios {
            if !mine
                .iter()
                .any(|c| c.scenario == s.id && c.broker == column)
            {
                continue;
            }
            let result = match &broken {
                Some(why) => CellResult {
                    scenario: s.id.clone(),
                    broker: column.clone(),
                    profile: broker.profile(),
                    verdict: Verdict::Error,
                    detail: why.clone(),
                    rules: Vec::new(),
                    duration_ms: 0,
                    runs: Vec::new(),
                },
                None => {
                    warm.launching(ordinal * repeat);
                    let r = runner::run_repeated(s, &run_cfg, index, &column, repeat, reporters)
                        .await?;
                    index += r.runs.len();
                    totals.add_repeated(&r);
                    if let Status::Error(e) = &r.runs[r.runs.len() - 1].outcome.status {
                        if e.contains("hint:") {
                            broken = Some(format!("{column} could not run: {e}"));
                            if let BrokerSpec::Container(image) = broker {
                                warm.discard(image);
                            }
                        }
                    }
                    classify_repeated(&r, devs, broker)
                }
            };
            ordinal += 1;
            let mut result = result;
            if speaks_v5(s) && !result.scenario.ends_with("@5") {
                result.scenario += "@5";
            }
            m.cells.push(result);
        }
    }
    Ok(())
}

fn finish(
    mut m: Matrix,
    totals: Totals,
    started: Instant,
    reporters: &mut Reporters,
) -> Result<Matrix> {
    reporters.report(&RunEvent::RunFinished {
        totals,
        elapsed: started.elapsed(),
        interrupted: None,
    })?;
    m.wall_ms = started.elapsed().as_millis() as u64;
    fold_versions(&mut m);
    Ok(m)
}

/// How one broker's cells run: broker files under `out/work/<broker>/`.
fn run_config(cfg: &MatrixConfig, broker: &BrokerSpec, devs: &Deviations) -> Result<RunConfig> {
    let dir_name: String = broker
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(RunConfig {
        broker: broker.clone(),
        target: cfg.target.clone(),
        workdir: std::path::absolute(cfg.out.join("work").join(&dir_name))
            .map_err(|e| crate::error::Error::io("resolving --out", e))?,
        firmware: cfg.firmware.clone(),
        deviations: devs.clone(),
    })
}

/// A pool job's broker (its index in the matrix's brokers) and scenario.
type JobOf<'a> = (usize, &'a Scenario);

/// The matrix's cells as pool jobs, broker by broker, the scenarios in
/// order (the reports' order), with each job's broker and scenario.
fn pool_jobs<'a>(
    cfg: &'a MatrixConfig,
    mine: &[Cell],
    deviations: &[Deviations],
) -> Result<(Vec<runner::pool::Job>, Vec<JobOf<'a>>)> {
    let repeat = cfg.repeat.max(1);
    let mut jobs = Vec::new();
    let mut of_job = Vec::new();
    for (b, (broker, devs)) in cfg.brokers.iter().zip(deviations).enumerate() {
        let run_cfg = std::sync::Arc::new(run_config(cfg, broker, devs)?);
        let column = broker.to_string();
        for s in &cfg.scenarios {
            if !mine
                .iter()
                .any(|c| c.scenario == s.id && c.broker == column)
            {
                continue;
            }
            of_job.push((b, s));
            jobs.push(runner::pool::Job {
                scenario: s.clone(),
                cfg: run_cfg.clone(),
                index: jobs.len() * repeat,
                broker: column.clone(),
                runs: repeat,
            });
        }
    }
    Ok((jobs, of_job))
}

/// The order cells launch in under `-j`: the longest expected first, as
/// `run -j` does, a scenario's cells on every broker one after another
/// (a stable sort keeps the brokers' order among equals). So the cells of
/// a broker whose containers are slow to start (RabbitMQ) are spread over
/// the whole run, their starts overlapping the other brokers' cells, which
/// mostly wait on protocol timers, instead of coming in one block where
/// they are all the machine does; and the longest cells do not start last.
/// Measured in README.md ("Brokers and the conformance matrix").
fn launch_order(jobs: &[runner::pool::Job]) -> Vec<usize> {
    runner::pool::longest_first(jobs)
}

/// `starts` (one entry per run, the cells in their report order, `repeat`
/// runs each) reordered to the order the cells launch in.
fn in_launch_order<T: Clone>(starts: Vec<T>, order: &[usize], repeat: usize) -> Vec<T> {
    order
        .iter()
        .flat_map(|&k| starts[k * repeat..(k + 1) * repeat].iter().cloned())
        .collect()
}

/// The cells under `-j N` ([`runner::pool`]): each with its own broker,
/// reported in the same order as one at a time, launched in
/// [`launch_order`]; a broker that cannot start fails its cells that have
/// not started yet without trying them. The next brokers start ahead as
/// cells launch.
async fn run_pooled(
    cfg: &MatrixConfig,
    (jobs, of_job, order): (&[runner::pool::Job], &[JobOf<'_>], &[usize]),
    deviations: &[Deviations],
    reporters: &mut Reporters,
    m: &mut Matrix,
    totals: &mut Totals,
    warm: &Warm,
) -> Result<()> {
    use runner::pool::{Job, JobEnd};
    let repeat = cfg.repeat.max(1);
    // Where each job stands in the launch order: the warm pool's index.
    let mut at = vec![0; jobs.len()];
    for (i, &k) in order.iter().enumerate() {
        at[k] = i;
    }
    struct Broken<'a> {
        of_job: &'a [JobOf<'a>],
        order: &'a [usize],
        at: Vec<usize>,
        why: Vec<Option<String>>,
        names: Vec<String>,
        brokers: &'a [BrokerSpec],
        warm: &'a Warm,
        repeat: usize,
        costs: &'a [usize],
    }
    impl runner::pool::Control for Broken<'_> {
        fn cost(&self, k: usize) -> usize {
            let (b, s) = self.of_job[k];
            // A tenant starts no broker: it costs what a light cell does.
            if tenant_of(&self.brokers[b], s).is_some() {
                return 1;
            }
            self.costs.get(b).copied().unwrap_or(1)
        }
        /// [`launch_order`]: the order the warm pool starts brokers in.
        fn start_order(&self, _jobs: &[Job]) -> Vec<usize> {
            self.order.to_vec()
        }
        fn launch(&mut self, k: usize) -> bool {
            let go = self.why[self.of_job[k].0].is_none();
            if go {
                self.warm.launching(self.at[k] * self.repeat);
            }
            go
        }
        fn finished(&mut self, k: usize, r: &crate::report::Repeated) {
            let b = self.of_job[k].0;
            if let Status::Error(e) = &r.runs[r.runs.len() - 1].outcome.status {
                if e.contains("hint:") && self.why[b].is_none() {
                    self.why[b] = Some(format!("{} could not run: {e}", self.names[b]));
                    if let BrokerSpec::Container(image) = &self.brokers[b] {
                        self.warm.discard(image);
                    }
                }
            }
        }
    }
    let mut control = Broken {
        of_job,
        order,
        at,
        why: vec![None; cfg.brokers.len()],
        names: cfg.brokers.iter().map(|b| b.to_string()).collect(),
        brokers: &cfg.brokers,
        warm,
        repeat,
        costs: &cfg.costs,
    };
    let (ends, _) = runner::pool::run_pool(
        jobs,
        cfg.jobs,
        reporters,
        &mut control,
        std::future::pending::<crate::signals::Signal>(),
    )
    .await?;
    for (k, end) in ends.iter().enumerate() {
        let (b, s) = of_job[k];
        let broker = &cfg.brokers[b];
        let mut result = match end {
            JobEnd::Done(r) => {
                totals.add_repeated(r);
                classify_repeated(r, &deviations[b], broker)
            }
            JobEnd::Left | JobEnd::Interrupted(_) => CellResult {
                scenario: s.id.clone(),
                broker: broker.to_string(),
                profile: broker.profile(),
                verdict: Verdict::Error,
                detail: control.why[b].clone().unwrap_or_default(),
                rules: Vec::new(),
                duration_ms: 0,
                runs: Vec::new(),
            },
        };
        if speaks_v5(s) && !result.scenario.ends_with("@5") {
            result.scenario += "@5";
        }
        m.cells.push(result);
    }
    Ok(())
}

/// A scenario whose clients speak 5.0 (a 5.0 file, or the 5.0 run of a
/// `versions` file) belongs in the 5.0 columns.
fn speaks_v5(s: &crate::scenario::Scenario) -> bool {
    let v5 = |c: &crate::scenario::ClientSpec| c.connect.version == crate::mqtt::Version::V5;
    s.device.as_ref().is_some_and(v5) || (s.device.is_none() && s.observers.values().any(v5))
}

/// One column per broker and protocol version: the 5.0 run of a scenario
/// (`id@5`) becomes the scenario's cell in the broker's `BROKER 5.0`
/// column, right after its 3.1.1 column; a scenario that exists only as
/// 5.0 keeps its row, with `-` in the 3.1.1 columns.
pub fn fold_versions(m: &mut Matrix) {
    if !m.cells.iter().any(|c| c.scenario.ends_with("@5")) {
        return;
    }
    for c in &mut m.cells {
        if let Some(base) = c.scenario.strip_suffix("@5") {
            c.scenario = base.to_string();
            c.broker = format!("{} 5.0", c.broker);
        }
    }
    let mut rows: Vec<ScenarioRow> = Vec::new();
    for r in std::mem::take(&mut m.scenarios) {
        let (id, name) = match r.id.strip_suffix("@5") {
            Some(base) => (
                base.to_string(),
                r.name.trim_end_matches(" (MQTT 5)").to_string(),
            ),
            None => (r.id.clone(), r.name.clone()),
        };
        if !rows.iter().any(|x| x.id == id) {
            rows.push(ScenarioRow { id, name });
        }
    }
    m.scenarios = rows;
    let mut cols = Vec::new();
    for b in std::mem::take(&mut m.brokers) {
        let v5 = format!("{b} 5.0");
        let has = |col: &str| m.cells.iter().any(|c| c.broker == col);
        if has(&b) {
            cols.push(b.clone());
        }
        if has(&v5) {
            cols.push(v5);
        }
    }
    m.brokers = cols;
}

/// A cell run `--repeat N` times: FLAKY, with every run's verdict and the
/// rules that differ, where the runs disagree; else the first run's
/// verdict, with every run listed.
pub fn classify_repeated(
    r: &crate::report::Repeated,
    devs: &Deviations,
    broker: &BrokerSpec,
) -> CellResult {
    let mut cell = classify(&r.runs[0].outcome, devs, broker);
    if r.runs.len() > 1 {
        cell.runs = r
            .runs
            .iter()
            .map(|f| crate::runner::repeat::Signature::of(&f.outcome, devs).describe())
            .collect();
        cell.duration_ms = r
            .runs
            .iter()
            .map(|f| f.outcome.duration.as_millis() as u64)
            .sum();
    }
    if let Some(flaky) = &r.flaky {
        cell.verdict = Verdict::Flaky;
        cell.detail = format!("{}; {}", flaky.summary(), flaky.differing_text());
        cell.rules = flaky.differing.clone();
    }
    cell
}

/// One cell's verdict and the reason to show for it.
pub fn classify(o: &Outcome, devs: &Deviations, broker: &BrokerSpec) -> CellResult {
    let (verdict, detail) = match &o.status {
        Status::Passed => (Verdict::Pass, String::new()),
        Status::Deviation(why) => (Verdict::Dev, why.clone()),
        Status::Unsupported(why) => (Verdict::Unsup, why.clone()),
        // A 5.0 scenario against a broker whose profile has no 5.0, or
        // one that needs QoS 2 of a broker granting less over 5.0 (which
        // 5.0 allows): what the broker lacks by its profile, UNSUP.
        Status::Skipped(why)
            if why.starts_with("needs MQTT 5.0") || why.starts_with("needs QoS 2") =>
        {
            (Verdict::Unsup, why.clone())
        }
        Status::Skipped(why) => (Verdict::Skip, why.clone()),
        Status::Error(e) => (Verdict::Error, e.clone()),
        Status::Failed if devs.is_stale(o) => (Verdict::Stale, o.failure_text()),
        Status::Failed => (Verdict::Fail, o.failure_text()),
    };
    CellResult {
        scenario: o.id.clone(),
        broker: broker.to_string(),
        profile: broker.profile(),
        verdict,
        detail,
        rules: match verdict {
            Verdict::Fail | Verdict::Dev | Verdict::Unsup => {
                crate::runner::deviation::signature(o).into_iter().collect()
            }
            _ => Vec::new(),
        },
        duration_ms: o.duration.as_millis() as u64,
        runs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(scenario: &str, broker: &str, verdict: Verdict) -> CellResult {
        CellResult {
            scenario: scenario.into(),
            broker: broker.into(),
            profile: broker.into(),
            verdict,
            detail: String::new(),
            rules: Vec::new(),
            duration_ms: 0,
            runs: Vec::new(),
        }
    }

    #[test]
    fn scenarios_without_broker_steps_run_as_tenants_where_the_image_has_them() {
        let load = |file: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            crate::scenario::parse(&path, &text).unwrap()
        };
        let plain = load("scenarios/qos1_delivery.toml");
        let restarts = load("scenarios/broker_restart_persistent_session.toml");
        let cut = load("scenarios/containers/broker_network_cut.toml");
        let b = |s: &str| BrokerSpec::resolve(s).unwrap();
        for r in ["container:rabbitmq", "container:rabbitmq:4.0"] {
            assert!(tenant_of(&b(r), &plain).is_some(), "{r}");
            assert!(
                tenant_of(&b(r), &restarts).is_none(),
                "{r}: a restart needs its own"
            );
            assert!(
                tenant_of(&b(r), &cut).is_none(),
                "{r}: a network cut needs its own"
            );
        }
        for other in [
            "container:mosquitto",
            "container:nats",
            "mosquitto",
            "embedded",
        ] {
            assert!(
                tenant_of(&b(other), &plain).is_none(),
                "{other} has no tenants"
            );
        }
    }

    #[test]
    fn starts_follow_the_cells_launch_order_with_their_repeats() {
        // Cells 0, 1, 2 with two runs each, launched 2, 0, 1.
        let starts = vec!["a1", "a2", "b1", "b2", "c1", "c2"];
        assert_eq!(
            in_launch_order(starts, &[2, 0, 1], 2),
            vec!["c1", "c2", "a1", "a2", "b1", "b2"]
        );
        assert_eq!(in_launch_order(vec![1, 2, 3], &[1, 2, 0], 1), vec![2, 3, 1]);
    }

    #[test]
    fn versions_fold_into_one_column_per_broker_and_version() {
        let mut m = Matrix {
            brokers: vec!["mosquitto".into(), "container:nats".into()],
            scenarios: ["a", "a@5", "b@5"]
                .iter()
                .map(|id| ScenarioRow {
                    id: id.to_string(),
                    name: format!("{id} (MQTT 5)"),
                })
                .collect(),
            cells: vec![
                cell("a", "mosquitto", Verdict::Pass),
                cell("a@5", "mosquitto", Verdict::Pass),
                cell("b@5", "mosquitto", Verdict::Dev),
                cell("a", "container:nats", Verdict::Pass),
                cell("a@5", "container:nats", Verdict::Unsup),
                cell("b@5", "container:nats", Verdict::Unsup),
            ],
            ..Default::default()
        };
        fold_versions(&mut m);
        assert_eq!(
            m.brokers,
            [
                "mosquitto",
                "mosquitto 5.0",
                "container:nats",
                "container:nats 5.0"
            ]
        );
        let ids: Vec<&str> = m.scenarios.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            m.cell("a", "container:nats 5.0").unwrap().verdict,
            Verdict::Unsup
        );
        assert_eq!(m.cell("b", "mosquitto 5.0").unwrap().verdict, Verdict::Dev);
        assert!(m.cell("b", "mosquitto").is_none());
    }
}
