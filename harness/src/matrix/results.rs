//! The matrix as data: what partitions write (`--json FILE`), what `mqtt-hil
//! merge` reads back and joins, and the JUnit form of it.
//!
//! JSON format (version 1):
//! ```json
//! { "format": 1, "partition": "1/2", "wall_ms": 91234,
//!   "brokers": ["mosquitto", "embedded", "container:rabbitmq"],
//!   "unavailable": ["container:mqtt-hil/nats:latest: not built (make images)"],
//!   "scenarios": [{ "id": "qos1_delivery", "name": "QoS 1 messages ..." }],
//!   "cells": [{ "scenario": "qos1_delivery", "broker": "embedded",
//!               "profile": "rumqttd", "verdict": "dev",
//!               "detail": "why, one line per reason", "duration_ms": 512 }] }
//! ```
//! Verdicts: pass, dev (failed exactly as the broker's deviations file
//! declares), unsup (likewise, for a convention outside the spec the
//! broker does not implement), stale (a declared deviation did not happen), fail, skip
//! (the broker does not offer what the scenario needs), error (the broker
//! or device could not run), flaky (`--repeat N`: the runs' verdicts
//! differ; `runs` lists each run's verdict and `rules` the rules that
//! differ). Under `--repeat`, every cell has `runs`.

use std::collections::BTreeMap;
use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Dev,
    /// Fails because the broker lacks a convention outside the spec, as
    /// its deviations file declares (`kind = "unsupported"`).
    Unsup,
    Stale,
    Fail,
    Skip,
    Error,
    /// `--repeat N`: the runs' verdicts differ.
    Flaky,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Dev => "DEV",
            Verdict::Unsup => "UNSUP",
            Verdict::Stale => "STALE",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
            Verdict::Error => "ERROR",
            Verdict::Flaky => "FLAKY",
        }
    }

    /// Whether the cell makes the matrix fail.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Verdict::Fail | Verdict::Stale | Verdict::Error | Verdict::Flaky
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub scenario: String,
    pub broker: String,
    pub profile: String,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The rules the cell broke (checker rules, `step N`): what a
    /// deviations entry's `rules` must list to declare it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    pub duration_ms: u64,
    /// Under `--repeat N`: each run's verdict (`FAIL [step 5]`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ScenarioRow {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub format: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    pub wall_ms: u64,
    pub brokers: Vec<String>,
    #[serde(default)]
    pub unavailable: Vec<String>,
    pub scenarios: Vec<ScenarioRow>,
    pub cells: Vec<CellResult>,
}

impl Matrix {
    pub const FORMAT: u32 = 1;

    pub fn cell(&self, scenario: &str, broker: &str) -> Option<&CellResult> {
        self.cells
            .iter()
            .find(|c| c.scenario == scenario && c.broker == broker)
    }

    /// Count of cells per verdict.
    pub fn counts(&self, broker: Option<&str>) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in self
            .cells
            .iter()
            .filter(|c| broker.is_none_or(|b| c.broker == b))
        {
            *m.entry(c.verdict.label()).or_insert(0) += 1;
        }
        m
    }

    pub fn failed(&self) -> bool {
        self.cells.iter().any(|c| c.verdict.is_failure())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the matrix serializes")
    }

    /// Reads a matrix JSON file (a partition's, a merged one, a
    /// baseline). Errors name the file and the position: the line and
    /// column where the JSON does not parse or a field has the wrong type,
    /// the line of a `format` this mqtt-hil does not read. The format is
    /// checked before the fields, so a file of another version says so
    /// instead of naming a field that moved. Every matrix file ever written
    /// has `format`, so a JSON without it is not a matrix result.
    pub fn read(path: &Path) -> Result<Matrix> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Matrix::parse(path, &text)
    }

    /// [`Matrix::read`] of text already read; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Matrix> {
        let at = |e: serde_json::Error, what: &str| {
            // serde's message ends with its own "at line L column C",
            // which the position prefix already says.
            let msg = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            Error::InputAt {
                file: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
                message: format!("{what}: {}", msg.strip_suffix(&suffix).unwrap_or(&msg)),
            }
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| at(e, "not valid JSON"))?;
        let not_matrix = |line: usize, why: String| Error::Input {
            file: path.to_path_buf(),
            line,
            message: format!(
                "{why}: not a matrix result written by `mqtt-hil matrix --json` (format {})",
                Matrix::FORMAT
            ),
        };
        let Some(obj) = value.as_object() else {
            return Err(not_matrix(1, "the JSON is not an object".into()));
        };
        let format_line = text
            .find("\"format\"")
            .map_or(1, |i| text[..i].matches('\n').count() + 1);
        match obj.get("format") {
            None => return Err(not_matrix(1, "no `format` field".into())),
            Some(f) if f.as_u64() == Some(Matrix::FORMAT as u64) => {}
            Some(f) => {
                let hint = match f.as_u64() {
                    Some(n) if n > Matrix::FORMAT as u64 => {
                        "written by a newer mqtt-hil: compare it with that version"
                    }
                    Some(_) => "written by an older mqtt-hil: run the baseline again with this one",
                    None => "the format is a number",
                };
                return Err(Error::Input {
                    file: path.to_path_buf(),
                    line: format_line,
                    message: format!(
                        "matrix format {f}, but this mqtt-hil reads format {} only ({hint})",
                        Matrix::FORMAT
                    ),
                });
            }
        }
        serde_json::from_str(text).map_err(|e| at(e, "not a matrix result"))
    }

    /// Joins partial results (the shares of a partitioned run) into one.
    /// Broker columns keep the order of first appearance; a cell present in
    /// two inputs is an error (overlapping partitions), unless identical.
    pub fn merge(parts: Vec<(String, Matrix)>) -> Result<Matrix> {
        let mut out = Matrix {
            format: Matrix::FORMAT,
            ..Default::default()
        };
        let mut origin: BTreeMap<(String, String), String> = BTreeMap::new();
        for (name, m) in parts {
            for b in m.brokers {
                if !out.brokers.contains(&b) {
                    out.brokers.push(b);
                }
            }
            for u in m.unavailable {
                if !out.unavailable.contains(&u) {
                    out.unavailable.push(u);
                }
            }
            for s in m.scenarios {
                if !out.scenarios.contains(&s) {
                    out.scenarios.push(s);
                }
            }
            out.wall_ms = out.wall_ms.max(m.wall_ms);
            for c in m.cells {
                let key = (c.scenario.clone(), c.broker.clone());
                if let Some(prev) = out.cell(&c.scenario, &c.broker) {
                    if prev.verdict != c.verdict {
                        return Err(Error::Usage(format!(
                            "{} and {name} both have {} on {} ({} vs {}): do the partitions overlap?",
                            origin[&key],
                            c.scenario,
                            c.broker,
                            prev.verdict.label(),
                            c.verdict.label()
                        )));
                    }
                    continue;
                }
                origin.insert(key, name.clone());
                out.cells.push(c);
            }
        }
        out.scenarios.sort();
        Ok(out)
    }

    /// One test suite per broker, one case per scenario.
    pub fn junit(&self) -> String {
        self.junit_report()
            .to_string()
            .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->"))
    }

    /// [`Matrix::junit`] before rendering, for a caller to add suites to.
    pub fn junit_report(&self) -> Report {
        let mut report = Report::new("mqtt-hil matrix");
        for b in &self.brokers {
            let mut suite = TestSuite::new(b.clone());
            for c in self.cells.iter().filter(|c| &c.broker == b) {
                let status = match c.verdict {
                    Verdict::Pass | Verdict::Dev | Verdict::Unsup => TestCaseStatus::success(),
                    Verdict::Skip => {
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(c.detail.clone());
                        s
                    }
                    Verdict::Fail | Verdict::Stale | Verdict::Error | Verdict::Flaky => {
                        let kind = if c.verdict == Verdict::Error {
                            NonSuccessKind::Error
                        } else {
                            NonSuccessKind::Failure
                        };
                        let mut s = TestCaseStatus::non_success(kind);
                        s.set_message(c.detail.lines().next().unwrap_or("failed").to_string());
                        let mut description = c.detail.clone();
                        // A merged matrix keeps each run's verdict, not its
                        // evidence: the partitions' own JUnit files have the
                        // runs as <flakyFailure> elements.
                        for (k, r) in c.runs.iter().enumerate() {
                            description += &format!("\nrun {}: {r}", k + 1);
                        }
                        if c.verdict == Verdict::Flaky {
                            s.set_type("flaky");
                        }
                        s.set_description(description);
                        s
                    }
                };
                let mut case = TestCase::new(c.scenario.clone(), status);
                case.set_classname(format!("{b}.{}", c.scenario));
                case.set_time(std::time::Duration::from_millis(c.duration_ms));
                if matches!(c.verdict, Verdict::Dev | Verdict::Unsup) {
                    case.set_system_out(format!("known deviation: {}", c.detail));
                }
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(s: &str, b: &str, v: Verdict) -> CellResult {
        CellResult {
            scenario: s.into(),
            broker: b.into(),
            profile: b.into(),
            verdict: v,
            detail: String::new(),
            rules: Vec::new(),
            duration_ms: 5,
            runs: Vec::new(),
        }
    }

    fn part(brokers: &[&str], cells: Vec<CellResult>) -> Matrix {
        let mut scenarios: Vec<ScenarioRow> = cells
            .iter()
            .map(|c| ScenarioRow {
                id: c.scenario.clone(),
                name: c.scenario.clone(),
            })
            .collect();
        scenarios.dedup();
        Matrix {
            format: Matrix::FORMAT,
            brokers: brokers.iter().map(|b| b.to_string()).collect(),
            scenarios,
            cells,
            ..Default::default()
        }
    }

    #[test]
    fn merge_joins_shares_and_rejects_overlaps_that_disagree() {
        let a = part(
            &["x", "y"],
            vec![
                cell("s1", "x", Verdict::Pass),
                cell("s2", "y", Verdict::Dev),
            ],
        );
        let b = part(
            &["y", "x"],
            vec![
                cell("s1", "y", Verdict::Fail),
                cell("s2", "x", Verdict::Skip),
            ],
        );
        let m = Matrix::merge(vec![("a".into(), a.clone()), ("b".into(), b)]).unwrap();
        assert_eq!(m.brokers, ["x", "y"]);
        assert_eq!(m.cells.len(), 4);
        assert!(m.failed());
        assert_eq!(m.cell("s1", "y").unwrap().verdict, Verdict::Fail);
        let clash = part(&["x"], vec![cell("s1", "x", Verdict::Fail)]);
        let e = Matrix::merge(vec![("a".into(), a.clone()), ("c".into(), clash)]).unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        // The same share twice is harmless.
        let m = Matrix::merge(vec![("a".into(), a.clone()), ("a2".into(), a)]).unwrap();
        assert_eq!(m.cells.len(), 2);
    }

    #[test]
    fn json_round_trips_and_bad_files_name_their_line() {
        let a = part(&["x"], vec![cell("s1", "x", Verdict::Stale)]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        std::fs::write(&p, a.to_json()).unwrap();
        assert_eq!(Matrix::read(&p).unwrap(), a);
        std::fs::write(&p, "{\n \"format\": 1,\n \"cells\": 3\n}").unwrap();
        let e = Matrix::read(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:3:", p.display())), "{e}");
    }

    #[test]
    fn bad_matrix_files_say_where_and_what() {
        let p = Path::new("base.json");
        let err = |text: &str| Matrix::parse(p, text).unwrap_err().to_string();
        // Not JSON: line and column of the fault, no repeated position.
        let e = err("{\n  \"format\": 1,\n  \"cells\": [}\n");
        assert!(e.starts_with("base.json:3:13: not valid JSON: "), "{e}");
        assert!(!e.contains("at line"), "{e}");
        // Another format version: its line, checked before the fields.
        let e = err("{\n\"format\": 2,\n\"rows\": []\n}");
        assert_eq!(
            e,
            "base.json:2: matrix format 2, but this mqtt-hil reads format 1 only (written by a newer mqtt-hil: compare it with that version)"
        );
        let e = err("{\"format\": 0}");
        assert!(e.contains("written by an older mqtt-hil"), "{e}");
        let e = err("{\"format\": \"1\"}");
        assert!(e.contains("matrix format \"1\""), "{e}");
        // No format at all, or not an object: not a matrix.
        let e = err("{\"cells\": []}");
        assert!(
            e.starts_with("base.json:1: no `format` field: not a matrix result"),
            "{e}"
        );
        assert!(err("[1, 2]").contains("not an object"));
        // A field of the wrong type: its position.
        let e = err("{\"format\": 1, \"wall_ms\": 1, \"brokers\": [],\n\"scenarios\": [], \"cells\": [{\"scenario\": 5}]}");
        assert!(e.starts_with("base.json:2:"), "{e}");
        assert!(e.contains("not a matrix result: invalid type"), "{e}");
    }

    #[test]
    fn a_flaky_cell_is_a_failure_listing_every_run() {
        let mut c = cell("s1", "x", Verdict::Flaky);
        c.detail = "2 runs: 1 PASS, 1 FAIL [step 5]; differing rules: step 5".into();
        c.runs = vec!["PASS".into(), "FAIL [step 5]".into()];
        let m = part(&["x"], vec![c]);
        assert!(m.failed());
        let xml = m.junit();
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(xml.contains("type=\"flaky\""), "{xml}");
        assert!(xml.contains("run 2: FAIL [step 5]"), "{xml}");
        // ...and survives the JSON a partition writes and merge reads.
        let back: Matrix = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn junit_has_a_suite_per_broker_and_counts_stale_as_failure() {
        let a = part(
            &["x", "y"],
            vec![
                cell("s1", "x", Verdict::Pass),
                cell("s1", "y", Verdict::Stale),
            ],
        );
        let xml = a.junit();
        assert!(xml.contains("<testsuite name=\"x\" tests=\"1\""), "{xml}");
        assert!(xml.contains("<testsuite name=\"y\" tests=\"1\""), "{xml}");
        assert!(xml.contains("failures=\"1\""), "{xml}");
    }
}
