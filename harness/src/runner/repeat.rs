//! `--repeat N`: each scenario runs N times against a fresh broker, and
//! the verdicts are compared. Where they differ the scenario is FLAKY,
//! reported with the rules that broke in some runs and not in others — a
//! verdict that does not hold every time is not a pass, so FLAKY fails the
//! run.
//!
//! A verdict is compared as its status and the *set* of rules it broke
//! (checker rules and `step N`, as deviations declare them): the order in
//! which violations were found, how often a rule broke, and the messages
//! (which quote packet ids and times the protocol leaves open) do not
//! count. A declared `intermittent` deviation that shows in some runs and
//! not in others is what its declaration says, not flakiness.

use std::collections::BTreeSet;

use super::deviation::{signature, Deviations};
use super::{Outcome, Status};

/// One run's verdict, as runs are compared.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Signature {
    /// PASS, FAIL, DEV, UNSUP, SKIP, ERROR.
    pub label: &'static str,
    pub rules: BTreeSet<String>,
}

impl Signature {
    pub fn of(o: &Outcome, devs: &Deviations) -> Signature {
        let intermittent = matches!(o.status, Status::Deviation(_))
            && devs.for_scenario(&o.id).is_some_and(|d| d.intermittent);
        if intermittent {
            return Signature {
                label: "PASS",
                rules: BTreeSet::new(),
            };
        }
        Signature {
            label: crate::report::events::label(&o.status),
            rules: match o.status {
                Status::Passed | Status::Skipped(_) => BTreeSet::new(),
                _ => signature(o),
            },
        }
    }

    /// `FAIL [step 5, MQTT-4.4.0-1]`, `PASS`.
    pub fn describe(&self) -> String {
        if self.rules.is_empty() {
            self.label.to_string()
        } else {
            let rules: Vec<&str> = self.rules.iter().map(String::as_str).collect();
            format!("{} [{}]", self.label, rules.join(", "))
        }
    }
}

/// Verdicts that differ between runs of one scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flaky {
    /// Each run's verdict, in run order.
    pub runs: Vec<Signature>,
    /// Rules broken in some runs but not in all.
    pub differing: Vec<String>,
}

impl Flaky {
    /// `2 of 3 runs PASS, 1 FAIL [step 5]`.
    pub fn summary(&self) -> String {
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for r in &self.runs {
            let d = r.describe();
            match kinds.iter_mut().find(|(k, _)| *k == d) {
                Some((_, n)) => *n += 1,
                None => kinds.push((d, 1)),
            }
        }
        let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!("{} runs: {}", self.runs.len(), parts.join(", "))
    }

    /// `differing rules: step 5, MQTT-4.4.0-1` (or the statuses, when the
    /// runs broke the same rules but ended differently).
    pub fn differing_text(&self) -> String {
        if self.differing.is_empty() {
            "same rules, different outcome".to_string()
        } else {
            format!("differing rules: {}", self.differing.join(", "))
        }
    }
}

/// Compares the verdicts of the runs of one scenario.
pub fn compare(outcomes: &[&Outcome], devs: &Deviations) -> Option<Flaky> {
    let runs: Vec<Signature> = outcomes.iter().map(|o| Signature::of(o, devs)).collect();
    let first = runs.first()?;
    if runs.iter().all(|r| r == first) {
        return None;
    }
    let all: BTreeSet<&String> = runs.iter().flat_map(|r| &r.rules).collect();
    let differing = all
        .into_iter()
        .filter(|rule| !runs.iter().all(|r| r.rules.contains(*rule)))
        .cloned()
        .collect();
    Some(Flaky { runs, differing })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::history::History;
    use crate::runner::StepFailure;

    fn outcome(status: Status, rules: &[&str], steps: &[usize]) -> Outcome {
        let mut v = Verdict::new("protocol");
        for (i, r) in rules.iter().enumerate() {
            v.fail(*r, format!("message {i} at {}ms", i * 7), vec![i as u64]);
        }
        Outcome {
            id: "s".into(),
            name: "n".into(),
            path: "s.toml".into(),
            status,
            failures: steps
                .iter()
                .map(|s| StepFailure {
                    step: *s,
                    line: 3,
                    message: format!("not met within 5s ({s})"),
                })
                .collect(),
            verdicts: vec![v],
            history: History::default(),
            duration: Default::default(),
        }
    }

    #[test]
    fn the_same_rules_in_another_order_and_number_are_the_same_verdict() {
        let a = outcome(Status::Failed, &["MQTT-4.4.0-1", "qos1-lost"], &[5]);
        let b = outcome(
            Status::Failed,
            &["qos1-lost", "MQTT-4.4.0-1", "qos1-lost"],
            &[5],
        );
        assert_eq!(compare(&[&a, &b], &Deviations::default()), None);
        let p1 = outcome(Status::Passed, &[], &[]);
        let p2 = outcome(Status::Passed, &[], &[]);
        assert_eq!(compare(&[&p1, &p2, &p1], &Deviations::default()), None);
    }

    #[test]
    fn a_run_that_breaks_other_rules_makes_the_scenario_flaky() {
        let pass = outcome(Status::Passed, &[], &[]);
        let fail = outcome(Status::Failed, &["MQTT-4.4.0-1"], &[9]);
        let f = compare(&[&pass, &fail, &pass], &Deviations::default()).unwrap();
        assert_eq!(f.differing, ["MQTT-4.4.0-1", "step 9"]);
        assert_eq!(f.summary(), "3 runs: 2 PASS, 1 FAIL [MQTT-4.4.0-1, step 9]");
        // Failing every time, but not the same way, is flaky too.
        let other = outcome(Status::Failed, &["MQTT-4.4.0-1"], &[5]);
        let f = compare(&[&fail, &other], &Deviations::default()).unwrap();
        assert_eq!(f.differing, ["step 5", "step 9"]);
    }

    #[test]
    fn a_declared_intermittent_deviation_is_not_flakiness() {
        let devs: crate::runner::deviation::Deviations = {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("deviations")).unwrap();
            std::fs::write(
                dir.path().join("deviations/b.toml"),
                "[[deviation]]\nscenario = \"s\"\nrules = [\"will-late\"]\nreason = \"r\"\nspec = \"x\"\nintermittent = true\n",
            )
            .unwrap();
            Deviations::load(dir.path(), "b").unwrap()
        };
        let pass = outcome(Status::Passed, &[], &[]);
        let dev = outcome(Status::Deviation("r".into()), &["will-late"], &[]);
        assert_eq!(compare(&[&pass, &dev], &devs), None);
        // Not declared intermittent: PASS then DEV differs.
        assert!(compare(&[&pass, &dev], &Deviations::default()).is_some());
    }
}
