//! One scenario run as report events: `ScenarioStarted`, the live history
//! while it runs (only if a reporter wants it), `ScenarioFinished`. Shared
//! by `mqtt-hil run` and any command that runs many (a broker matrix).

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{run_recorded, RunConfig};
use crate::error::Error;
use crate::history::Recorder;
use crate::report::{Finished, Reporters, RunEvent};
use crate::scenario::Scenario;

/// Runs `scenario` against `cfg`'s broker, labelled `broker` in the reports.
pub async fn run_reported(
    scenario: &Scenario,
    cfg: &RunConfig,
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
    // The scenario's own normalizations (periodic topics of a black box).
    finished.trace = crate::trace::render_scenario(scenario, &finished.outcome.history);
    let finished = Arc::new(finished);
    reporters.report(&RunEvent::ScenarioFinished(finished.clone()))?;
    Ok(finished)
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
    reporters.report(&RunEvent::ScenarioStarted {
        index,
        id: scenario.id.clone(),
        name: scenario.name.clone(),
        broker: broker.to_string(),
    })?;
    let outcome = super::Outcome::skipped(scenario, why.to_string());
    let finished = Arc::new(Finished::new(index, broker, outcome, SystemTime::now()));
    reporters.report(&RunEvent::ScenarioFinished(finished.clone()))?;
    Ok(finished)
}
