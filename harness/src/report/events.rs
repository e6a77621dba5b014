//! The run's event stream: what happens during a run, in the order it
//! happens, as the reporters see it. A run (or a matrix run: scenario ×
//! broker) is `RunStarted`, then per scenario `ScenarioStarted`, any number
//! of `Live` history events (only when a reporter asked for them), and
//! `ScenarioFinished`, and at last `RunFinished`. Every scenario event
//! carries the broker it ran against, so one stream can hold a whole matrix.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::history::Event;
use crate::runner::{Outcome, Status};

#[derive(Clone, Debug)]
pub enum RunEvent {
    /// `count` scenario runs are about to start (scenarios × brokers).
    RunStarted {
        count: usize,
        brokers: Vec<String>,
        target: String,
    },
    ScenarioStarted {
        /// Position in the run, from 0.
        index: usize,
        id: String,
        name: String,
        broker: String,
    },
    /// One history event of the running scenario, as it is recorded.
    Live {
        index: usize,
        broker: String,
        event: Box<Event>,
    },
    ScenarioFinished(Arc<Finished>),
    /// After the runs of one scenario under `--repeat N` (N > 1), each of
    /// which was a `ScenarioFinished`: whether their verdicts agree.
    ScenarioRepeated(Arc<Repeated>),
    /// The run's end. `interrupted`: a signal cut it short; the scenarios
    /// it stopped or never started were reported as errors before this.
    RunFinished {
        totals: Totals,
        elapsed: Duration,
        interrupted: Option<crate::signals::Signal>,
    },
}

/// One scenario's result against one broker.
#[derive(Debug)]
pub struct Finished {
    pub index: usize,
    pub broker: String,
    pub outcome: Outcome,
    /// The normalized trace ([`crate::trace::render`]).
    pub trace: String,
    /// Wall-clock time at which the history's clock started (about when the
    /// scenario started): history times are offsets from it.
    pub started_at: SystemTime,
    /// Which run of the scenario this is (from 1) of how many (`--repeat`).
    pub attempt: usize,
    pub attempts: usize,
}

impl Finished {
    pub fn new(index: usize, broker: &str, outcome: Outcome, started_at: SystemTime) -> Finished {
        Finished {
            index,
            broker: broker.to_string(),
            trace: crate::trace::render(&outcome.name, &outcome.history),
            outcome,
            started_at,
            attempt: 1,
            attempts: 1,
        }
    }

    /// File name stem of this run's files: the scenario id, and `.runK`
    /// for the K-th run of a repeated scenario after the first, so the
    /// runs do not overwrite each other.
    pub fn file_stem(&self) -> String {
        if self.attempt > 1 {
            format!("{}.run{}", self.outcome.id, self.attempt)
        } else {
            self.outcome.id.clone()
        }
    }

    /// Every seq number a failed checker or expectation names: the events a
    /// report highlights as the violation.
    pub fn offending_events(&self) -> std::collections::BTreeSet<u64> {
        offending_events(&self.outcome)
    }
}

/// The runs of one scenario under `--repeat N` and how their verdicts
/// compare.
#[derive(Debug)]
pub struct Repeated {
    pub broker: String,
    /// Every run, in order (`attempt` 1..=N).
    pub runs: Vec<Arc<Finished>>,
    /// `Some` when the verdicts differ.
    pub flaky: Option<crate::runner::repeat::Flaky>,
}

impl Repeated {
    pub fn id(&self) -> &str {
        &self.runs[0].outcome.id
    }
}

/// Seqs named by failed verdicts, plus failed expectations themselves.
pub fn offending_events(o: &Outcome) -> std::collections::BTreeSet<u64> {
    let mut out: std::collections::BTreeSet<u64> = o
        .verdicts
        .iter()
        .flat_map(|v| v.violations.iter().flat_map(|x| x.events.iter().copied()))
        .collect();
    out.extend(o.history.events.iter().filter_map(|ev| match ev.kind {
        crate::history::EventKind::Expect { ok: false, .. } => Some(ev.seq),
        _ => None,
    }));
    out
}

/// Counts over a run. `passed` includes the known deviations (also counted
/// in `deviations`) and the unsupported conventions (also counted in
/// `unsupported`); `failed` includes the errors (also counted in `errors`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub deviations: usize,
    pub unsupported: usize,
    pub errors: usize,
    /// Of `failed`, scenarios whose verdicts differed between the runs of
    /// `--repeat N`.
    pub flaky: usize,
}

impl Totals {
    pub fn add(&mut self, status: &Status) {
        match status {
            Status::Passed => self.passed += 1,
            Status::Deviation(_) => {
                self.passed += 1;
                self.deviations += 1
            }
            Status::Unsupported(_) => {
                self.passed += 1;
                self.unsupported += 1
            }
            Status::Skipped(_) => self.skipped += 1,
            Status::Failed => self.failed += 1,
            Status::Error(_) => {
                self.failed += 1;
                self.errors += 1
            }
        }
    }

    /// The scenario's runs under `--repeat N`, counted once: FLAKY fails;
    /// runs that agree count as the first did.
    pub fn add_repeated(&mut self, r: &Repeated) {
        if r.flaky.is_some() {
            self.failed += 1;
            self.flaky += 1;
        } else {
            self.add(&r.runs[0].outcome.status);
        }
    }

    pub fn exit_code(&self) -> i32 {
        if self.failed == 0 {
            crate::exit_codes::OK
        } else {
            crate::exit_codes::FAILED
        }
    }
}

/// Short label for terminals: PASS, FAIL, SKIP, ERROR, DEV, UNSUP.
pub fn label(s: &Status) -> &'static str {
    match s {
        Status::Passed => "PASS",
        Status::Failed => "FAIL",
        Status::Skipped(_) => "SKIP",
        Status::Error(_) => "ERROR",
        Status::Deviation(_) => "DEV",
        Status::Unsupported(_) => "UNSUP",
    }
}

/// Stable lowercase name for machine-readable output.
pub fn status_name(s: &Status) -> &'static str {
    match s {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Skipped(_) => "skipped",
        Status::Error(_) => "error",
        Status::Deviation(_) => "deviation",
        Status::Unsupported(_) => "unsupported",
    }
}

/// The reason a skip, error or deviation carries.
pub fn status_reason(s: &Status) -> Option<&str> {
    match s {
        Status::Skipped(r) | Status::Error(r) | Status::Deviation(r) | Status::Unsupported(r) => {
            Some(r)
        }
        Status::Passed | Status::Failed => None,
    }
}

/// A file-name-safe form of a broker label (`external:127.0.0.1:1883`).
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
