//! One scenario run as report events: `ScenarioStarted`, the live history
//! while it runs (only if a reporter wants it), `ScenarioFinished`; under
//! `--repeat N`, N such runs and then `ScenarioRepeated`. Shared by
//! `mqtt-hil run` and any command that runs many (a broker matrix).

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{run_recorded, RunConfig};
use crate::error::Error;
use crate::history::Recorder;
use crate::report::{Finished, Repeated, Reporters, RunEvent};
use crate::scenario::Scenario;

/// Runs `scenario` against `cfg`'s broker, labelled `broker` in the reports.
pub async fn run_reported(
    scenario: &Scenario,
    cfg: &RunConfig,
    index: usize,
    broker: &str,
    reporters: &mut Reporters,
) -> Result<Arc<Finished>, Error> {
    run_attempt(scenario, cfg, index, broker, (1, 1), reporters).await
}

/// Runs `scenario` `runs` times (indices `index..index + runs`), each
/// reported as it finishes, then compares their verdicts
/// ([`super::repeat`]) and, for more than one run, reports that.
pub async fn run_repeated(
    scenario: &Scenario,
    cfg: &RunConfig,
    index: usize,
    broker: &str,
    runs: usize,
    reporters: &mut Reporters,
) -> Result<Arc<Repeated>, Error> {
    let runs = runs.max(1);
    let mut finished = Vec::with_capacity(runs);
    for k in 1..=runs {
        let f = run_attempt(scenario, cfg, index + k - 1, broker, (k, runs), reporters).await?;
        // An environment that broke (no broker) breaks every run alike.
        let broken = matches!(&f.outcome.status, super::Status::Error(e) if e.contains("hint:"));
        finished.push(f);
        if broken {
            break;
        }
    }
    let outcomes: Vec<&super::Outcome> = finished.iter().map(|f| &f.outcome).collect();
    let flaky = super::repeat::compare(&outcomes, &cfg.deviations);
    let r = Arc::new(Repeated {
        broker: broker.to_string(),
        runs: finished,
        flaky,
    });
    if runs > 1 {
        reporters.report(&RunEvent::ScenarioRepeated(r.clone()))?;
    }
    Ok(r)
}

async fn run_attempt(
    scenario: &Scenario,
    cfg: &RunConfig,
    index: usize,
    broker: &str,
    (attempt, attempts): (usize, usize),
    reporters: &mut Reporters,
) -> Result<Arc<Finished>, Error> {
    reporters.report(&RunEvent::ScenarioStarted {
        index,
        id: scenario.id.clone(),
        name: scenario.name.clone(),
        broker: broker.to_string(),
    })?;
    let recorder = Recorder::new();
    let started_at = SystemTime::now();
    let outcome = if reporters.wants_live() {
        let mut live = recorder.subscribe();
        let run = run_recorded(scenario, cfg, recorder);
        tokio::pin!(run);
        let mut forward = |event| {
            reporters.report(&RunEvent::Live {
                index,
                broker: broker.to_string(),
                event: Box::new(event),
            })
        };
        let outcome = loop {
            tokio::select! {
                o = &mut run => break o,
                ev = live.recv() => match ev {
                    Ok(event) => forward(event)?,
                    // A slow terminal skips events rather than stall the run;
                    // the full history is in the reports.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => {}
                },
            }
        };
        loop {
            match live.try_recv() {
                Ok(event) => forward(event)?,
                Err(TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        outcome
    } else {
        run_recorded(scenario, cfg, recorder).await
    };
    let mut finished = Finished::new(index, broker, outcome, started_at);
    finished.attempt = attempt;
    finished.attempts = attempts;
    // The scenario's own normalizations (periodic topics of a black box).
    finished.trace = crate::trace::render_scenario(scenario, &finished.outcome.history);
    let finished = Arc::new(finished);
    reporters.report(&RunEvent::ScenarioFinished(finished.clone()))?;
    Ok(finished)
}

/// Reports a scenario a signal stopped, or kept from starting, as an
/// error: an interrupted run must not look like it judged it.
pub fn report_interrupted(
    scenario: &Scenario,
    why: &str,
    index: usize,
    broker: &str,
    reporters: &mut Reporters,
) -> Result<Arc<Finished>, Error> {
    let outcome = super::Outcome::error(scenario, why.to_string(), Default::default());
    report_decided(scenario, outcome, index, broker, reporters)
}

/// Reports a scenario decided SKIPPED before it ran (e.g. a suite file the
/// device's description cannot fill), like one `unmet_requirement` skips.
pub fn report_skipped(
    scenario: &Scenario,
    why: &str,
    index: usize,
    broker: &str,
    reporters: &mut Reporters,
) -> Result<Arc<Finished>, Error> {
    let outcome = super::Outcome::skipped(scenario, why.to_string());
    report_decided(scenario, outcome, index, broker, reporters)
}

/// A scenario's start and its outcome, decided without running it.
fn report_decided(
    scenario: &Scenario,
    outcome: super::Outcome,
    index: usize,
    broker: &str,
    reporters: &mut Reporters,
) -> Result<Arc<Finished>, Error> {
    reporters.report(&RunEvent::ScenarioStarted {
        index,
        id: scenario.id.clone(),
        name: scenario.name.clone(),
        broker: broker.to_string(),
    })?;
    let finished = Arc::new(Finished::new(index, broker, outcome, SystemTime::now()));
    reporters.report(&RunEvent::ScenarioFinished(finished.clone()))?;
    Ok(finished)
}
