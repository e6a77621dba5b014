//! What changed between two matrix runs: a pure function from a baseline
//! matrix and a new one to the list of cells whose verdict changed. No I/O;
//! [`super::diff_report`] renders the list, the CLI (`mqtt-hil diff`,
//! `matrix --baseline`, `merge --baseline`) reads the files.
//!
//! A cell is keyed by (scenario, broker column); the 5.0 runs live in their
//! own `BROKER 5.0` columns ([`super::run::fold_versions`]), so the protocol
//! version is part of the key. Each changed cell is one of:
//!
//! - **regressed**: it did not fail and now fails (PASS, DEV, UNSUP or SKIP
//!   became FAIL, STALE, ERROR or FLAKY);
//! - **fixed**: it failed and now passes (PASS, DEV or UNSUP);
//! - **changed**: any other change of verdict (PASS became DEV, a failure
//!   became SKIP, FAIL became ERROR), or the same DEV, UNSUP or FAIL
//!   verdict for other rules (the deviation changed);
//! - **new** / **removed**: in one matrix only (a scenario or a broker
//!   column came or went).
//!
//! The diff fails (exit code `FAILED`, a JUnit failure) on every regression
//! and on every new cell that fails: nothing in the baseline vouches for
//! it. Changes are sorted by scenario, then broker, then protocol version,
//! whatever the order of the cells in either file.

use std::collections::{BTreeMap, BTreeSet};

use super::results::{CellResult, Matrix, Verdict};

/// How a cell changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Regressed,
    Fixed,
    Changed,
    New,
    Removed,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Regressed => "REGRESSED",
            Kind::Fixed => "FIXED",
            Kind::Changed => "CHANGED",
            Kind::New => "NEW",
            Kind::Removed => "REMOVED",
        }
    }
}

/// One changed cell. `was` is absent for a new cell, `now` for a removed
/// one; the broker is the new matrix's column name (after renames).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub scenario: String,
    pub broker: String,
    pub kind: Kind,
    pub was: Option<CellResult>,
    pub now: Option<CellResult>,
}

impl Change {
    /// Whether this change fails the diff.
    pub fn fails(&self) -> bool {
        match self.kind {
            Kind::Regressed => true,
            Kind::New => self.now.as_ref().is_some_and(|c| c.verdict.is_failure()),
            _ => false,
        }
    }

    pub fn was_label(&self) -> &'static str {
        self.was.as_ref().map_or("-", |c| c.verdict.label())
    }

    pub fn now_label(&self) -> &'static str {
        self.now.as_ref().map_or("-", |c| c.verdict.label())
    }

    /// One line saying why: the new cell's first reason; for a changed
    /// deviation the rules before and after.
    pub fn why(&self) -> String {
        let first = |c: &CellResult| c.detail.lines().next().unwrap_or("").to_string();
        match (&self.was, &self.now) {
            (Some(w), Some(n)) if w.verdict == n.verdict => {
                format!("rules {} -> {}", rules(w), rules(n))
            }
            (_, Some(n)) => first(n),
            (Some(w), None) if !w.detail.is_empty() => format!("was: {}", first(w)),
            _ => String::new(),
        }
    }
}

fn rules(c: &CellResult) -> String {
    if c.rules.is_empty() {
        "(none)".into()
    } else {
        format!("[{}]", c.rules.join(", "))
    }
}

/// The changes between two matrices and what frames them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    pub changes: Vec<Change>,
    /// Cells in both matrices with the same verdict (and rules).
    pub unchanged: usize,
    /// Things a reader must know to trust the list (a partial matrix).
    pub notes: Vec<String>,
}

impl Diff {
    pub fn failed(&self) -> bool {
        self.changes.iter().any(Change::fails)
    }

    /// Count of changes per kind, every kind present (zeros included).
    pub fn counts(&self) -> BTreeMap<Kind, usize> {
        let mut m: BTreeMap<Kind, usize> = [
            Kind::Regressed,
            Kind::Fixed,
            Kind::Changed,
            Kind::New,
            Kind::Removed,
        ]
        .into_iter()
        .map(|k| (k, 0))
        .collect();
        for c in &self.changes {
            *m.entry(c.kind).or_default() += 1;
        }
        m
    }

    /// `1 regressed, 0 fixed, 2 changed, 0 new, 0 removed; 14 unchanged`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .counts()
            .into_iter()
            .map(|(k, n)| format!("{n} {}", k.label().to_lowercase()))
            .collect();
        format!("{}; {} unchanged", parts.join(", "), self.unchanged)
    }
}

/// `BROKER 5.0` -> (`BROKER`, `5.0`); a 3.1.1 column has no suffix.
pub fn split_version(column: &str) -> (&str, &str) {
    match column.strip_suffix(" 5.0") {
        Some(base) => (base, "5.0"),
        None => (column, ""),
    }
}

/// Renames the baseline's broker column `from` (and its 5.0 column) to
/// `to`, so one broker compares with itself across an upgrade that changed
/// its column name (an image tag). Err names what is wrong.
pub fn rename(m: &mut Matrix, from: &str, to: &str) -> Result<(), String> {
    if !m.brokers.iter().any(|b| split_version(b).0 == from) {
        return Err(format!(
            "--rename {from}={to}: the baseline has no broker column `{from}` (it has: {})",
            m.brokers.join(", ")
        ));
    }
    if from != to && m.brokers.iter().any(|b| split_version(b).0 == to) {
        return Err(format!(
            "--rename {from}={to}: the baseline has a column `{to}` already"
        ));
    }
    let map = |col: &mut String| {
        let (base, v) = split_version(col);
        if base == from {
            *col = if v.is_empty() {
                to.to_string()
            } else {
                format!("{to} {v}")
            };
        }
    };
    m.brokers.iter_mut().for_each(map);
    m.cells.iter_mut().for_each(|c| map(&mut c.broker));
    Ok(())
}

/// The verdict change of one cell present in both matrices, if any.
pub fn classify(was: &CellResult, now: &CellResult) -> Option<Kind> {
    let (a, b) = (was.verdict, now.verdict);
    let passes = |v: Verdict| matches!(v, Verdict::Pass | Verdict::Dev | Verdict::Unsup);
    if !a.is_failure() && b.is_failure() {
        return Some(Kind::Regressed);
    }
    if a.is_failure() && passes(b) {
        return Some(Kind::Fixed);
    }
    if a != b {
        return Some(Kind::Changed);
    }
    // Same verdict: a deviation (or failure) for other rules is a change;
    // details carry timings and addresses, so they do not count.
    if matches!(a, Verdict::Dev | Verdict::Unsup | Verdict::Fail) {
        let set = |c: &CellResult| c.rules.iter().cloned().collect::<BTreeSet<_>>();
        if set(was) != set(now) {
            return Some(Kind::Changed);
        }
    }
    None
}

/// (scenario, broker, version): the sort order of the changes.
type Key<'a> = (&'a str, &'a str, &'a str);

fn index(m: &Matrix) -> BTreeMap<Key<'_>, &CellResult> {
    m.cells
        .iter()
        .map(|c| {
            let (b, v) = split_version(&c.broker);
            ((c.scenario.as_str(), b, v), c)
        })
        .collect()
}

/// Every cell that changed from `old` (the baseline) to `new`.
pub fn diff(old: &Matrix, new: &Matrix) -> Diff {
    let (before, after) = (index(old), index(new));
    let mut out = Diff::default();
    let keys: BTreeSet<Key> = before.keys().chain(after.keys()).copied().collect();
    for k in keys {
        let (was, now) = (before.get(&k).copied(), after.get(&k).copied());
        let kind = match (was, now) {
            (Some(w), Some(n)) => classify(w, n),
            (None, Some(_)) => Some(Kind::New),
            (Some(_), None) => Some(Kind::Removed),
            (None, None) => None,
        };
        let Some(kind) = kind else {
            out.unchanged += 1;
            continue;
        };
        let cell = now.or(was).expect("one side has the cell");
        out.changes.push(Change {
            scenario: cell.scenario.clone(),
            broker: cell.broker.clone(),
            kind,
            was: was.cloned(),
            now: now.cloned(),
        });
    }
    for (which, m) in [("the baseline", old), ("the new matrix", new)] {
        if let Some(p) = &m.partition {
            out.notes.push(format!(
                "{which} is partition {p} of a run (merge the partitions first): cells outside it show as new or removed"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::results::ScenarioRow;

    fn cell(s: &str, b: &str, v: Verdict, rules: &[&str]) -> CellResult {
        CellResult {
            scenario: s.into(),
            broker: b.into(),
            profile: split_version(b).0.into(),
            verdict: v,
            detail: format!("{} on {b}", v.label()),
            rules: rules.iter().map(|r| r.to_string()).collect(),
            duration_ms: 7,
            runs: Vec::new(),
        }
    }

    fn matrix(cells: Vec<CellResult>) -> Matrix {
        let mut brokers: Vec<String> = Vec::new();
        let mut scenarios: Vec<ScenarioRow> = Vec::new();
        for c in &cells {
            if !brokers.contains(&c.broker) {
                brokers.push(c.broker.clone());
            }
            let row = ScenarioRow {
                id: c.scenario.clone(),
                name: c.scenario.clone(),
            };
            if !scenarios.contains(&row) {
                scenarios.push(row);
            }
        }
        Matrix {
            format: Matrix::FORMAT,
            brokers,
            scenarios,
            cells,
            ..Default::default()
        }
    }

    fn kinds(d: &Diff) -> Vec<(String, String, Kind)> {
        d.changes
            .iter()
            .map(|c| (c.scenario.clone(), c.broker.clone(), c.kind))
            .collect()
    }

    use Verdict::*;

    #[test]
    fn every_verdict_pair_has_its_class() {
        let k = |a, b| classify(&cell("s", "x", a, &[]), &cell("s", "x", b, &[]));
        // Newly failing, from every verdict that does not fail.
        for a in [Pass, Dev, Unsup, Skip] {
            for b in [Fail, Stale, Error, Flaky] {
                assert_eq!(k(a, b), Some(Kind::Regressed), "{a:?} -> {b:?}");
            }
        }
        // Newly passing, from every failure.
        for a in [Fail, Stale, Error, Flaky] {
            for b in [Pass, Dev, Unsup] {
                assert_eq!(k(a, b), Some(Kind::Fixed), "{a:?} -> {b:?}");
            }
            // No longer run is not fixed.
            assert_eq!(k(a, Skip), Some(Kind::Changed), "{a:?} -> SKIP");
        }
        assert_eq!(k(Pass, Dev), Some(Kind::Changed));
        assert_eq!(k(Dev, Pass), Some(Kind::Changed));
        assert_eq!(k(Dev, Unsup), Some(Kind::Changed));
        assert_eq!(k(Pass, Skip), Some(Kind::Changed));
        assert_eq!(k(Fail, Error), Some(Kind::Changed));
        for v in [Pass, Dev, Unsup, Stale, Fail, Skip, Error, Flaky] {
            assert_eq!(k(v, v), None, "{v:?} unchanged");
        }
    }

    #[test]
    fn a_deviation_for_other_rules_is_a_change_but_rule_order_and_details_are_not() {
        let was = cell("s", "x", Dev, &["MQTT-3.3.1-1", "step 4"]);
        let mut now = cell("s", "x", Dev, &["step 4", "MQTT-3.3.1-1"]);
        now.detail = "other words, other timings".into();
        now.duration_ms = 99_999;
        assert_eq!(classify(&was, &now), None);
        let now = cell("s", "x", Dev, &["MQTT-3.3.1-1"]);
        assert_eq!(classify(&was, &now), Some(Kind::Changed));
        let c = Change {
            scenario: "s".into(),
            broker: "x".into(),
            kind: Kind::Changed,
            was: Some(was),
            now: Some(now),
        };
        assert_eq!(c.why(), "rules [MQTT-3.3.1-1, step 4] -> [MQTT-3.3.1-1]");
        assert!(!c.fails());
        // A failure for other rules too; a pass has no rules to compare.
        assert_eq!(
            classify(
                &cell("s", "x", Fail, &["step 3"]),
                &cell("s", "x", Fail, &["step 5"])
            ),
            Some(Kind::Changed)
        );
    }

    #[test]
    fn new_and_removed_cells_scenarios_and_columns() {
        let old = matrix(vec![
            cell("a", "x", Pass, &[]),
            cell("gone", "x", Pass, &[]),
            cell("a", "old-broker", Pass, &[]),
        ]);
        let new = matrix(vec![
            cell("a", "x", Pass, &[]),
            cell("b", "x", Pass, &[]),
            cell("c", "x", Fail, &["step 2"]),
        ]);
        let d = diff(&old, &new);
        assert_eq!(
            kinds(&d),
            [
                ("a".into(), "old-broker".into(), Kind::Removed),
                ("b".into(), "x".into(), Kind::New),
                ("c".into(), "x".into(), Kind::New),
                ("gone".into(), "x".into(), Kind::Removed),
            ]
        );
        assert_eq!(d.unchanged, 1);
        // A new cell that fails fails the diff; one that passes, a removed
        // one, do not.
        let fails: Vec<bool> = d.changes.iter().map(Change::fails).collect();
        assert_eq!(fails, [false, false, true, false]);
        assert!(d.failed());
        assert_eq!(
            d.summary(),
            "0 regressed, 0 fixed, 0 changed, 2 new, 2 removed; 1 unchanged"
        );
    }

    #[test]
    fn a_regression_fails_the_diff_and_a_fix_does_not() {
        let old = matrix(vec![cell("a", "x", Pass, &[]), cell("b", "x", Fail, &[])]);
        let new = matrix(vec![
            cell("a", "x", Fail, &["step 5"]),
            cell("b", "x", Pass, &[]),
        ]);
        let d = diff(&old, &new);
        assert_eq!(
            kinds(&d),
            [
                ("a".into(), "x".into(), Kind::Regressed),
                ("b".into(), "x".into(), Kind::Fixed)
            ]
        );
        assert!(d.failed());
        assert_eq!(d.changes[0].why(), "FAIL on x");
        // The other way round only fixes... and regresses b.
        let back = diff(&new, &old);
        assert_eq!(back.changes[0].kind, Kind::Fixed);
        assert_eq!(back.changes[1].kind, Kind::Regressed);
        // Fixes alone pass.
        let only_fix = diff(
            &matrix(vec![cell("b", "x", Error, &[])]),
            &matrix(vec![cell("b", "x", Pass, &[])]),
        );
        assert!(!only_fix.failed());
        // Nothing changed: nothing to report, nothing fails.
        let same = diff(&old, &old);
        assert!(same.changes.is_empty());
        assert_eq!(same.unchanged, 2);
        assert!(!same.failed());
    }

    #[test]
    fn order_is_scenario_then_broker_then_version_whatever_the_files_order() {
        let cells = vec![
            cell("b", "mosquitto 5.0", Pass, &[]),
            cell("a", "mosquitto2", Pass, &[]),
            cell("b", "mosquitto", Pass, &[]),
            cell("a", "mosquitto 5.0", Pass, &[]),
            cell("a", "container:nats", Pass, &[]),
            cell("a", "mosquitto", Pass, &[]),
        ];
        let mut reversed = cells.clone();
        reversed.reverse();
        let empty = matrix(Vec::new());
        let d1 = diff(&empty, &matrix(cells));
        let d2 = diff(&empty, &matrix(reversed));
        assert_eq!(d1, d2);
        let order: Vec<String> = d1
            .changes
            .iter()
            .map(|c| format!("{}/{}", c.scenario, c.broker))
            .collect();
        // `mosquitto 5.0` sorts with `mosquitto`, before `mosquitto2`.
        assert_eq!(
            order,
            [
                "a/container:nats",
                "a/mosquitto",
                "a/mosquitto 5.0",
                "a/mosquitto2",
                "b/mosquitto",
                "b/mosquitto 5.0"
            ]
        );
    }

    #[test]
    fn versions_are_cells_of_their_own() {
        let old = matrix(vec![
            cell("a", "mosquitto", Pass, &[]),
            cell("a", "mosquitto 5.0", Pass, &[]),
        ]);
        let new = matrix(vec![
            cell("a", "mosquitto", Pass, &[]),
            cell("a", "mosquitto 5.0", Fail, &["MQTT-3.3.2-20"]),
        ]);
        let d = diff(&old, &new);
        assert_eq!(
            kinds(&d),
            [("a".into(), "mosquitto 5.0".into(), Kind::Regressed)]
        );
    }

    #[test]
    fn renames_compare_a_broker_across_an_upgrade() {
        let mut old = matrix(vec![
            cell("a", "container:mqtt-hil/mosquitto:2.0.11", Pass, &[]),
            cell("a", "container:mqtt-hil/mosquitto:2.0.11 5.0", Dev, &["x"]),
        ]);
        let new = matrix(vec![
            cell("a", "container:mqtt-hil/mosquitto:2.0.21", Pass, &[]),
            cell("a", "container:mqtt-hil/mosquitto:2.0.21 5.0", Pass, &[]),
        ]);
        assert_eq!(diff(&old, &new).counts()[&Kind::New], 2);
        rename(
            &mut old,
            "container:mqtt-hil/mosquitto:2.0.11",
            "container:mqtt-hil/mosquitto:2.0.21",
        )
        .unwrap();
        let d = diff(&old, &new);
        assert_eq!(
            kinds(&d),
            [(
                "a".into(),
                "container:mqtt-hil/mosquitto:2.0.21 5.0".into(),
                Kind::Changed
            )]
        );
        let e = rename(&mut old, "mosquito", "mosquitto").unwrap_err();
        assert!(e.contains("no broker column `mosquito`"), "{e}");
        let mut two = matrix(vec![cell("a", "x", Pass, &[]), cell("a", "y", Fail, &[])]);
        let e = rename(&mut two, "x", "y").unwrap_err();
        assert!(e.contains("has a column `y` already"), "{e}");
    }

    #[test]
    fn a_partial_matrix_is_noted() {
        let mut part = matrix(vec![cell("a", "x", Pass, &[])]);
        part.partition = Some("1/2".into());
        let d = diff(&matrix(vec![cell("a", "x", Pass, &[])]), &part);
        assert_eq!(d.notes.len(), 1);
        assert!(d.notes[0].contains("the new matrix is partition 1/2"));
    }
}
