//! JUnit XML: one test suite per broker, one test case per scenario in it.
//! A failure's message is its first reason; its text lists every reason
//! (failed steps, each checker's verdict with its rule) and then quotes the
//! offending events themselves, so a CI page shows what happened on the
//! wire without opening the trace. The normalized trace is the case's
//! system-out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::events::{offending_events, RunEvent};
use super::{describe, Finished, Reporter};
use crate::error::Error;
use crate::runner::Status;

/// Renders finished scenarios (of any number of brokers, in run order).
pub fn render(results: &[Arc<Finished>]) -> String {
    let mut report = Report::new("mqtt-hil");
    let mut brokers: Vec<&str> = Vec::new();
    for f in results {
        if !brokers.contains(&f.broker.as_str()) {
            brokers.push(&f.broker);
        }
    }
    for broker in brokers {
        let mut suite = TestSuite::new(broker);
        suite.add_property(("broker", broker));
        for f in results.iter().filter(|f| f.broker == broker) {
            suite.add_test_case(case(f));
        }
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->"))
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
    results: Vec<Arc<Finished>>,
}

impl JunitFile {
    pub fn new(path: &Path) -> JunitFile {
        JunitFile {
            path: path.to_path_buf(),
            results: Vec::new(),
        }
    }
}

impl Reporter for JunitFile {
    fn report(&mut self, ev: &RunEvent) -> Result<(), Error> {
        // Written after every scenario, so a run cut short (Ctrl-C, a
        // CI timeout) still leaves a valid file of what did run.
        if let RunEvent::ScenarioFinished(f) = ev {
            self.results.push(f.clone());
        }
        if matches!(
            ev,
            RunEvent::ScenarioFinished(_) | RunEvent::RunFinished { .. }
        ) {
            std::fs::write(&self.path, render(&self.results))
                .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        }
        Ok(())
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
    }
}
