//! JUnit XML: one test suite per broker, one test case per scenario in it.
//! A failure's message is its first reason; its text lists every reason
//! (failed steps, each checker's verdict with its rule) and then quotes the
//! offending events themselves, so a CI page shows what happened on the
//! wire without opening the trace. The normalized trace is the case's
//! system-out.
//!
//! A scenario run `--repeat N` times is one test case, written as nextest
//! writes retried tests: when the runs disagree (FLAKY, a failure here) the
//! case fails with the FLAKY summary and carries every failing run as a
//! `<flakyFailure>` (`<flakyError>`) if some run passed, as
//! `<rerunFailure>` (`<rerunError>`) if none did; runs that agree are the
//! first run's case, further failing runs as `<rerunFailure>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quick_junit::{
    FlakyOrRerun, NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use super::events::{offending_events, RunEvent};
use super::{describe, Finished, Repeated, Reporter};
use crate::error::Error;
use crate::runner::Status;
use crate::signals::Signal;

/// One test case: a scenario's run, or all the runs of a repeated one.
#[derive(Clone, Debug)]
pub enum Entry {
    One(Arc<Finished>),
    Repeated(Arc<Repeated>),
}

impl Entry {
    fn broker(&self) -> &str {
        match self {
            Entry::One(f) => &f.broker,
            Entry::Repeated(r) => &r.broker,
        }
    }
}

/// Renders finished scenarios (of any number of brokers, in run order).
pub fn render(results: &[Arc<Finished>]) -> String {
    let entries: Vec<Entry> = results.iter().cloned().map(Entry::One).collect();
    render_entries(&entries)
}

pub fn render_entries(results: &[Entry]) -> String {
    render_run(results, None)
}

/// The run's report; `interrupted` marks a run a signal cut short: every
/// suite gets the property `interrupted` (the signal's name) and an error
/// test case `run interrupted`, so no CI page shows it green.
pub fn render_run(results: &[Entry], interrupted: Option<Signal>) -> String {
    render_with(results, interrupted, &[])
}

/// [`render_run`] followed by `extra` suites (a matrix's changes since its
/// baseline).
pub fn render_with(results: &[Entry], interrupted: Option<Signal>, extra: &[TestSuite]) -> String {
    let mut report = Report::new("mqtt-hil");
    let mut brokers: Vec<&str> = Vec::new();
    for f in results {
        if !brokers.contains(&f.broker()) {
            brokers.push(f.broker());
        }
    }
    if brokers.is_empty() && interrupted.is_some() {
        brokers.push("mqtt-hil");
    }
    for broker in brokers {
        let mut suite = TestSuite::new(broker);
        suite.add_property(("broker", broker));
        for e in results.iter().filter(|f| f.broker() == broker) {
            suite.add_test_case(match e {
                Entry::One(f) => case(f),
                Entry::Repeated(r) => repeated_case(r),
            });
        }
        if let Some(sig) = interrupted {
            suite.add_property(("interrupted", sig.name()));
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_type("interrupted");
            s.set_message(format!(
                "the run was interrupted by {sig}: scenarios after the last one finished did not run or were stopped"
            ));
            let mut case = TestCase::new("run interrupted", s);
            case.set_classname("mqtt-hil");
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.add_test_suites(extra.iter().cloned());
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->"))
}

/// A failing run as a `<flakyFailure>`/`<rerunFailure>` element.
fn rerun(f: &Finished) -> Option<TestRerun> {
    let o = &f.outcome;
    let kind = match o.status {
        Status::Failed => NonSuccessKind::Failure,
        Status::Error(_) => NonSuccessKind::Error,
        _ => return None,
    };
    let text = failure_text(o);
    let mut r = TestRerun::new(kind);
    r.set_message(format!(
        "run {}: {}",
        f.attempt,
        text.lines().next().unwrap_or("failed")
    ));
    r.set_description(text);
    r.set_time(o.duration);
    r.set_system_out(f.trace.clone());
    Some(r)
}

fn repeated_case(r: &Repeated) -> TestCase {
    let first = &r.runs[0];
    let mut case = case(first);
    let time = r.runs.iter().map(|f| f.outcome.duration).sum();
    case.set_time(time);
    let Some(flaky) = &r.flaky else {
        // The runs agree: the first run's case; further failing runs as
        // reruns, so each run's evidence is there.
        case.status.set_rerun_kind(FlakyOrRerun::Rerun);
        let more: Vec<TestRerun> = r.runs[1..].iter().filter_map(|f| rerun(f)).collect();
        if matches!(case.status, TestCaseStatus::NonSuccess { .. }) {
            case.status.add_reruns(more);
        }
        return case;
    };
    let some_passed = r.runs.iter().any(|f| f.outcome.acceptable());
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message(format!(
        "FLAKY: {}; {}",
        flaky.summary(),
        flaky.differing_text()
    ));
    status.set_type("flaky");
    let mut description = String::new();
    for (f, sig) in r.runs.iter().zip(&flaky.runs) {
        description += &format!("run {}: {}\n", f.attempt, sig.describe());
    }
    status.set_description(description);
    status.set_rerun_kind(if some_passed {
        FlakyOrRerun::Flaky
    } else {
        FlakyOrRerun::Rerun
    });
    status.add_reruns(r.runs.iter().filter_map(|f| rerun(f)));
    case.status = status;
    case
}

/// Every reason, then the offending events quoted.
fn failure_text(o: &crate::runner::Outcome) -> String {
    let mut text = o.failure_text();
    let offending = offending_events(o);
    if !offending.is_empty() {
        text += "\noffending events:";
        for ev in o
            .history
            .events
            .iter()
            .filter(|e| offending.contains(&e.seq))
        {
            text += &format!("\n  {}", describe::line(ev));
        }
    }
    text
}

fn case(f: &Finished) -> TestCase {
    let o = &f.outcome;
    let status = match &o.status {
        Status::Passed | Status::Deviation(_) | Status::Unsupported(_) => TestCaseStatus::success(),
        Status::Skipped(why) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(why.clone());
            s
        }
        Status::Failed | Status::Error(_) => {
            let kind = if matches!(o.status, Status::Failed) {
                NonSuccessKind::Failure
            } else {
                NonSuccessKind::Error
            };
            let text = failure_text(o);
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(text.lines().next().unwrap_or("failed").to_string());
            s.set_description(text);
            s
        }
    };
    let mut case = TestCase::new(o.id.clone(), status);
    case.set_classname(o.path.display().to_string());
    case.set_time(o.duration);
    case.set_system_out(f.trace.clone());
    case
}

/// Collects the run and writes `--junit FILE` when it ends.
pub struct JunitFile {
    path: PathBuf,
    results: Vec<Entry>,
    interrupted: Option<Signal>,
    extra: Vec<TestSuite>,
}

impl JunitFile {
    pub fn new(path: &Path) -> JunitFile {
        JunitFile {
            path: path.to_path_buf(),
            results: Vec::new(),
            interrupted: None,
            extra: Vec::new(),
        }
    }

    fn write(&self) -> Result<(), Error> {
        let xml = render_with(&self.results, self.interrupted, &self.extra);
        std::fs::write(&self.path, xml)
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))
    }
}

impl Reporter for JunitFile {
    fn report(&mut self, ev: &RunEvent) -> Result<(), Error> {
        // Written after every scenario, so a run cut short (Ctrl-C, a
        // CI timeout) still leaves a valid file of what did run.
        match ev {
            RunEvent::ScenarioFinished(f) => self.results.push(Entry::One(f.clone())),
            // The runs it replaces were written one by one as they ended.
            RunEvent::ScenarioRepeated(r) => {
                self.results.retain(|e| match e {
                    Entry::One(f) => !r.runs.iter().any(|x| Arc::ptr_eq(x, f)),
                    Entry::Repeated(_) => true,
                });
                self.results.push(Entry::Repeated(r.clone()));
            }
            RunEvent::RunFinished { interrupted, .. } => self.interrupted = *interrupted,
            _ => {}
        }
        if matches!(
            ev,
            RunEvent::ScenarioFinished(_)
                | RunEvent::ScenarioRepeated(_)
                | RunEvent::RunFinished { .. }
        ) {
            self.write()?;
        }
        Ok(())
    }

    fn add_suite(&mut self, suite: &TestSuite) -> Result<(), Error> {
        self.extra.push(suite.clone());
        self.write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::history::{EventKind, History};
    use crate::runner::Outcome;
    use std::time::{Duration, SystemTime};

    fn finished(id: &str, broker: &str, failed: bool) -> Arc<Finished> {
        let history = History::build()
            .push(EventKind::Broker {
                what: "started".into(),
            })
            .push(EventKind::Actor {
                actor: "device".into(),
                what: "something odd".into(),
            })
            .finish();
        let mut v = Verdict::new("will");
        if failed {
            v.fail("MQTT-3.1.2-8", "no will after the sever", vec![1]);
        }
        let o = Outcome {
            id: id.into(),
            name: format!("scenario {id}"),
            path: format!("scenarios/{id}.toml").into(),
            status: if failed {
                Status::Failed
            } else {
                Status::Passed
            },
            failures: Vec::new(),
            verdicts: vec![v],
            history,
            duration: Duration::from_millis(1500),
        };
        Arc::new(Finished::new(0, broker, o, SystemTime::UNIX_EPOCH))
    }

    #[test]
    fn a_matrix_run_gives_one_suite_per_broker_and_failures_quote_events() {
        let xml = render(&[
            finished("a", "mosquitto", false),
            finished("a", "rumqttd", true),
            finished("b", "mosquitto", false),
        ]);
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not XML at {}: {e}\n{xml}", reader.buffer_position()),
            }
        }
        let suites: Vec<&str> = xml.matches("<testsuite ").collect();
        assert_eq!(suites.len(), 2, "{xml}");
        assert!(
            xml.contains(r#"<testsuite name="mosquitto" tests="2""#),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<testsuite name="rumqttd" tests="1" skipped="0" errors="0" failures="1">"#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<failure message="will [MQTT-3.1.2-8]: no will after the sever (events #1)">"#
            ),
            "{xml}"
        );
        assert!(
            xml.contains("offending events:\n  #1    +   0.002s device   something odd"),
            "{xml}"
        );
    }

    #[test]
    fn the_file_is_written_after_each_scenario_so_an_interrupted_run_leaves_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut r = JunitFile::new(&path);
        r.report(&RunEvent::ScenarioFinished(finished(
            "a",
            "mosquitto",
            true,
        )))
        .unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(xml.contains(r#"<testcase name="a""#), "{xml}");
        assert!(!xml.contains("interrupted"), "{xml}");
    }

    #[test]
    fn an_interrupted_run_is_marked_in_every_suite_and_is_not_green() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut r = JunitFile::new(&path);
        r.report(&RunEvent::ScenarioFinished(finished(
            "a",
            "mosquitto",
            false,
        )))
        .unwrap();
        r.report(&RunEvent::RunFinished {
            totals: Default::default(),
            elapsed: std::time::Duration::from_secs(1),
            interrupted: Some(Signal::TERM),
        })
        .unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(
            xml.contains(r#"<property name="interrupted" value="SIGTERM"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<testsuite name="mosquitto" tests="2" skipped="0" errors="1" failures="0">"#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<error message="the run was interrupted by SIGTERM"#),
            "{xml}"
        );
        // Interrupted before any scenario ended: still a suite saying so.
        let xml = render_run(&[], Some(Signal::HUP));
        assert!(xml.contains(r#"value="SIGHUP""#), "{xml}");
        assert!(xml.contains(r#"errors="1""#), "{xml}");
    }
}
