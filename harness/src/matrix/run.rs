//! Runs the cells of a matrix, broker by broker, each scenario with a fresh
//! broker as `mqtt-hil run` does, through the same reporters (terminal
//! lines, traces per broker, JUnit, the HTML matrix index, pcaps), and
//! classifies each outcome into the matrix's own result.

use std::path::PathBuf;
use std::time::Instant;

use super::plan::{Cell, Partition};
use super::results::{CellResult, Matrix, ScenarioRow, Verdict};
use crate::broker::BrokerSpec;
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
    /// The scenario folder whose `deviations/` applies.
    pub deviations_folder: PathBuf,
    /// Broker files go under `out/work/<broker>/`.
    pub out: PathBuf,
}

/// Runs this partition's cells, each reported as it finishes.
pub async fn run(cfg: &MatrixConfig, reporters: &mut Reporters) -> Result<Matrix> {
    let started = Instant::now();
    let mut deviations = Vec::new();
    for b in &cfg.brokers {
        deviations.push(Deviations::load(&cfg.deviations_folder, &b.profile())?);
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
                id: s.id.clone(),
                name: s.name.clone(),
            })
            .collect(),
        ..Default::default()
    };
    reporters.report(&RunEvent::RunStarted {
        count: mine.len(),
        brokers: m.brokers.clone(),
        target: cfg.target.to_string(),
    })?;
    let mut totals = Totals::default();
    let mut index = 0;
    for (broker, devs) in cfg.brokers.iter().zip(&deviations) {
        let column = broker.to_string();
        let dir_name: String = column
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let run_cfg = RunConfig {
            broker: broker.clone(),
            target: cfg.target.clone(),
            workdir: std::path::absolute(cfg.out.join("work").join(&dir_name))
                .map_err(|e| crate::error::Error::io("resolving --out", e))?,
            firmware: cfg.firmware.clone(),
            deviations: devs.clone(),
        };
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
                },
                None => {
                    let f = runner::run_reported(s, &run_cfg, index, &column, reporters).await?;
                    index += 1;
                    totals.add(&f.outcome.status);
                    if let Status::Error(e) = &f.outcome.status {
                        if e.contains("hint:") {
                            broken = Some(format!("{column} could not run: {e}"));
                        }
                    }
                    classify(&f.outcome, devs, broker)
                }
            };
            m.cells.push(result);
        }
    }
    reporters.report(&RunEvent::RunFinished {
        totals,
        elapsed: started.elapsed(),
    })?;
    m.wall_ms = started.elapsed().as_millis() as u64;
    Ok(m)
}

/// One cell's verdict and the reason to show for it.
pub fn classify(o: &Outcome, devs: &Deviations, broker: &BrokerSpec) -> CellResult {
    let (verdict, detail) = match &o.status {
        Status::Passed => (Verdict::Pass, String::new()),
        Status::Deviation(why) => {
            let unsupported = devs
                .for_scenario(&o.id)
                .is_some_and(|d| d.kind == crate::runner::deviation::Kind::Unsupported);
            if unsupported {
                (Verdict::Unsup, why.clone())
            } else {
                (Verdict::Dev, why.clone())
            }
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
    }
}
