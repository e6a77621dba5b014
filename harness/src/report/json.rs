//! `--format json`: the run's events as one JSON object per line on
//! stdout, for other tools. The format (every field, and the promise of
//! what may change) is written down in `docs/json-events.md`; the
//! `format_version` in `run_started` goes up when a field changes meaning
//! or disappears (new fields may appear without it).

use std::io::Write;

use serde::Serialize;

use super::events::{status_name, status_reason, RunEvent, Totals};
use super::{describe, Reporter};
use crate::error::Error;
use crate::history::Event;

pub const FORMAT_VERSION: u32 = 1;

pub struct Json {
    out: Box<dyn Write + Send>,
    live: bool,
}

impl Json {
    pub fn stdout(live: bool) -> Json {
        Json::new(Box::new(std::io::stdout()), live)
    }

    /// `live`: also write every history event as it is recorded.
    pub fn new(out: Box<dyn Write + Send>, live: bool) -> Json {
        Json { out, live }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    RunStarted {
        format_version: u32,
        count: usize,
        brokers: &'a [String],
        target: &'a str,
    },
    ScenarioStarted {
        index: usize,
        id: &'a str,
        name: &'a str,
        broker: &'a str,
    },
    Event {
        index: usize,
        broker: &'a str,
        #[serde(flatten)]
        event: EventJson,
    },
    ScenarioFinished {
        index: usize,
        id: &'a str,
        name: &'a str,
        path: String,
        broker: &'a str,
        status: &'static str,
        reason: Option<&'a str>,
        duration_secs: f64,
        failures: Vec<FailureJson<'a>>,
        verdicts: Vec<VerdictJson<'a>>,
        trace: &'a str,
        attempt: usize,
        attempts: usize,
    },
    ScenarioRepeated {
        id: &'a str,
        broker: &'a str,
        /// The runs' indices, in order.
        indices: Vec<usize>,
        flaky: bool,
        runs: Vec<RunJson>,
        differing_rules: &'a [String],
    },
    RunFinished {
        #[serde(flatten)]
        totals: Totals,
        duration_secs: f64,
        exit_code: i32,
        /// The signal that cut the run short (`SIGTERM`), or null.
        interrupted: Option<&'static str>,
    },
}

#[derive(Serialize)]
struct EventJson {
    seq: u64,
    at_secs: f64,
    kind: &'static str,
    actor: Option<String>,
    text: String,
}

impl EventJson {
    fn of(ev: &Event) -> EventJson {
        EventJson {
            seq: ev.seq,
            at_secs: ev.at.as_secs_f64(),
            kind: describe::kind_name(&ev.kind),
            actor: describe::actor(&ev.kind).map(str::to_string),
            text: describe::event(&ev.kind),
        }
    }
}

#[derive(Serialize)]
struct RunJson {
    status: &'static str,
    rules: Vec<String>,
}

#[derive(Serialize)]
struct FailureJson<'a> {
    step: usize,
    line: usize,
    message: &'a str,
}

#[derive(Serialize)]
struct VerdictJson<'a> {
    checker: &'a str,
    ok: bool,
    violations: Vec<ViolationJson<'a>>,
    notes: &'a [String],
}

#[derive(Serialize)]
struct ViolationJson<'a> {
    rule: &'a str,
    message: &'a str,
    events: Vec<EventJson>,
}

impl Reporter for Json {
    fn wants_live(&self) -> bool {
        self.live
    }

    fn report(&mut self, ev: &RunEvent) -> Result<(), Error> {
        let line = match ev {
            RunEvent::RunStarted {
                count,
                brokers,
                target,
            } => Line::RunStarted {
                format_version: FORMAT_VERSION,
                count: *count,
                brokers,
                target,
            },
            RunEvent::ScenarioStarted {
                index,
                id,
                name,
                broker,
            } => Line::ScenarioStarted {
                index: *index,
                id,
                name,
                broker,
            },
            RunEvent::Live {
                index,
                broker,
                event,
            } => {
                if !self.live {
                    return Ok(());
                }
                Line::Event {
                    index: *index,
                    broker,
                    event: EventJson::of(event),
                }
            }
            RunEvent::ScenarioFinished(f) => {
                let o = &f.outcome;
                let by_seq = |seq: u64| o.history.events.iter().find(|e| e.seq == seq);
                Line::ScenarioFinished {
                    index: f.index,
                    id: &o.id,
                    name: &o.name,
                    path: o.path.display().to_string(),
                    broker: &f.broker,
                    status: status_name(&o.status),
                    reason: status_reason(&o.status),
                    duration_secs: o.duration.as_secs_f64(),
                    failures: o
                        .failures
                        .iter()
                        .map(|s| FailureJson {
                            step: s.step,
                            line: s.line,
                            message: &s.message,
                        })
                        .collect(),
                    verdicts: o
                        .verdicts
                        .iter()
                        .map(|v| VerdictJson {
                            checker: &v.checker,
                            ok: v.ok(),
                            violations: v
                                .violations
                                .iter()
                                .map(|x| ViolationJson {
                                    rule: &x.rule,
                                    message: &x.message,
                                    events: x
                                        .events
                                        .iter()
                                        .filter_map(|s| by_seq(*s))
                                        .map(EventJson::of)
                                        .collect(),
                                })
                                .collect(),
                            notes: &v.notes,
                        })
                        .collect(),
                    trace: &f.trace,
                    attempt: f.attempt,
                    attempts: f.attempts,
                }
            }
            RunEvent::ScenarioRepeated(r) => Line::ScenarioRepeated {
                id: r.id(),
                broker: &r.broker,
                indices: r.runs.iter().map(|f| f.index).collect(),
                flaky: r.flaky.is_some(),
                runs: r
                    .runs
                    .iter()
                    .map(|f| RunJson {
                        status: status_name(&f.outcome.status),
                        rules: crate::runner::deviation::signature(&f.outcome)
                            .into_iter()
                            .collect(),
                    })
                    .collect(),
                differing_rules: r.flaky.as_ref().map_or(&[], |f| &f.differing),
            },
            RunEvent::RunFinished {
                totals,
                elapsed,
                interrupted,
            } => Line::RunFinished {
                totals: *totals,
                duration_secs: elapsed.as_secs_f64(),
                exit_code: interrupted.map_or(totals.exit_code(), |s| s.exit_code()),
                interrupted: interrupted.map(|s| s.name()),
            },
        };
        let mut text = serde_json::to_string(&line).expect("JSON of plain data");
        text.push('\n');
        self.out
            .write_all(text.as_bytes())
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io("writing JSON events to stdout", e))
    }
}
