//! A [`Diff`] as people and CI read it: a terminal table, a Markdown
//! section (appended to `matrix.md` under `--baseline`, or its own file
//! from `mqtt-hil diff --markdown`) and a JUnit test suite with one test
//! case per changed cell, failing where the change fails the diff.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::diff::{Change, Diff};

/// Fixed-width table of the changes, under a one-line summary.
pub fn terminal(d: &Diff, baseline: &str) -> String {
    let mut out = format!("changes since {baseline}: {}\n", d.summary());
    for n in &d.notes {
        out += &format!("note: {n}\n");
    }
    if d.changes.is_empty() {
        return out;
    }
    let w = |f: fn(&Change) -> usize, title: &str| {
        d.changes.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let kind_w = w(|c| c.kind.label().len(), "change");
    let s_w = w(|c| c.scenario.len(), "scenario");
    let b_w = w(|c| c.broker.len(), "broker");
    let v_w = w(|c| c.was_label().len().max(c.now_label().len()), "was");
    out += &format!(
        "{:<kind_w$}  {:<s_w$}  {:<b_w$}  {:<v_w$}  {:<v_w$}  why\n",
        "change", "scenario", "broker", "was", "now"
    );
    for c in &d.changes {
        let line = format!(
            "{:<kind_w$}  {:<s_w$}  {:<b_w$}  {:<v_w$}  {:<v_w$}  {}",
            c.kind.label(),
            c.scenario,
            c.broker,
            c.was_label(),
            c.now_label(),
            c.why()
        );
        out += line.trim_end();
        out += "\n";
    }
    out
}

/// A Markdown section (`##`) listing every change.
pub fn markdown(d: &Diff, baseline: &str) -> String {
    let mut out = format!("## Changes since the baseline\n\nBaseline: `{baseline}`. ");
    out += &format!("{}.\n\n", d.summary());
    for n in &d.notes {
        out += &format!("Note: {}.\n\n", escape(n));
    }
    if d.changes.is_empty() {
        out += "No cell changed.\n";
        return out;
    }
    out += "REGRESSED: did not fail, fails now (a failure). FIXED: failed, passes now. \
            CHANGED: another verdict, or the same deviation for other rules. \
            NEW (a failure if it fails) and REMOVED: in one matrix only.\n\n";
    out += "| change | scenario | broker | was | now | why |\n|---|---|---|---|---|---|\n";
    for c in &d.changes {
        let kind = if c.fails() {
            format!("**{}**", c.kind.label())
        } else {
            c.kind.label().to_string()
        };
        out += &format!(
            "| {kind} | {} | {} | {} | {} | {} |\n",
            escape(&c.scenario),
            escape(&c.broker),
            c.was_label(),
            c.now_label(),
            escape(&c.why())
        );
    }
    out
}

/// One test suite named after the baseline: one case per changed cell, a
/// failure for each change that fails the diff.
pub fn junit_suite(d: &Diff, baseline: &str) -> TestSuite {
    let mut suite = TestSuite::new(format!("changes since {baseline}"));
    suite.add_property(("baseline", baseline));
    for c in &d.changes {
        let why = c.why();
        let mut headline = format!("{}: {} -> {}", c.kind.label(), c.was_label(), c.now_label());
        if !why.is_empty() {
            headline += &format!(": {why}");
        }
        let status = if c.fails() {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_type(c.kind.label().to_lowercase());
            s.set_message(headline.clone());
            if let Some(now) = &c.now {
                let mut text = now.detail.clone();
                if !now.rules.is_empty() {
                    text += &format!("\n(rules: {})", now.rules.join(", "));
                }
                s.set_description(text);
            }
            s
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(format!("{} on {}", c.scenario, c.broker), status);
        case.set_classname(format!("diff.{}.{}", c.broker, c.scenario));
        if !c.fails() {
            case.set_system_out(headline);
        }
        suite.add_test_case(case);
    }
    suite
}

/// The JUnit file of `mqtt-hil diff`: the one suite.
pub fn junit(d: &Diff, baseline: &str) -> String {
    let mut report = Report::new("mqtt-hil diff");
    report.add_test_suite(junit_suite(d, baseline));
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->"))
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::super::diff::diff;
    use super::super::results::{CellResult, Matrix, ScenarioRow, Verdict};
    use super::*;

    fn cell(s: &str, b: &str, v: Verdict, detail: &str) -> CellResult {
        CellResult {
            scenario: s.into(),
            broker: b.into(),
            profile: b.into(),
            verdict: v,
            detail: detail.into(),
            rules: if v == Verdict::Fail {
                vec!["step 5".into()]
            } else {
                Vec::new()
            },
            duration_ms: 1,
            runs: Vec::new(),
        }
    }

    fn matrix(cells: Vec<CellResult>) -> Matrix {
        Matrix {
            format: Matrix::FORMAT,
            brokers: vec!["mosquitto".into()],
            scenarios: vec![ScenarioRow {
                id: "a".into(),
                name: "a".into(),
            }],
            cells,
            ..Default::default()
        }
    }

    fn sample() -> Diff {
        let old = matrix(vec![
            cell("qos1_delivery", "mosquitto", Verdict::Pass, ""),
            cell(
                "will_on_drop",
                "mosquitto",
                Verdict::Fail,
                "step 2: no will",
            ),
            cell("retained", "mosquitto", Verdict::Pass, ""),
        ]);
        let new = matrix(vec![
            cell(
                "qos1_delivery",
                "mosquitto",
                Verdict::Fail,
                "step 5: no PUBACK | within 2s\nmore",
            ),
            cell("will_on_drop", "mosquitto", Verdict::Pass, ""),
            cell("retained", "mosquitto", Verdict::Pass, ""),
        ]);
        diff(&old, &new)
    }

    #[test]
    fn the_terminal_table_lines_up() {
        let t = terminal(&sample(), "base.json");
        let want = "\
changes since base.json: 1 regressed, 1 fixed, 0 changed, 0 new, 0 removed; 1 unchanged
change     scenario       broker     was   now   why
REGRESSED  qos1_delivery  mosquitto  PASS  FAIL  step 5: no PUBACK | within 2s
FIXED      will_on_drop   mosquitto  FAIL  PASS
";
        assert_eq!(t, want);
        let none = terminal(&Diff::default(), "base.json");
        assert_eq!(
            none,
            "changes since base.json: 0 regressed, 0 fixed, 0 changed, 0 new, 0 removed; 0 unchanged\n"
        );
    }

    #[test]
    fn markdown_marks_failing_changes_and_escapes_pipes() {
        let md = markdown(&sample(), "base.json");
        assert!(
            md.contains(
                "| **REGRESSED** | qos1_delivery | mosquitto | PASS | FAIL | step 5: no PUBACK \\| within 2s |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| FIXED | will_on_drop | mosquitto | FAIL | PASS |  |"),
            "{md}"
        );
        assert!(md.contains("Baseline: `base.json`"), "{md}");
        assert!(markdown(&Diff::default(), "b").contains("No cell changed."));
    }

    #[test]
    fn junit_has_a_case_per_change_and_a_regression_is_a_failure() {
        let xml = junit(&sample(), "base.json");
        assert!(
            xml.contains("<testsuite name=\"changes since base.json\" tests=\"2\" skipped=\"0\" errors=\"0\" failures=\"1\""),
            "{xml}"
        );
        assert!(xml.contains("type=\"regressed\""), "{xml}");
        assert!(
            xml.contains("message=\"REGRESSED: PASS -&gt; FAIL: step 5: no PUBACK | within 2s\""),
            "{xml}"
        );
        assert!(xml.contains("(rules: step 5)"), "{xml}");
        assert!(
            xml.contains("<testcase name=\"will_on_drop on mosquitto\""),
            "{xml}"
        );
        assert!(
            xml.contains("<system-out>FIXED: FAIL -&gt; PASS</system-out>"),
            "{xml}"
        );
        // No change, no failure.
        let xml = junit(&Diff::default(), "base.json");
        assert!(xml.contains("tests=\"0\""), "{xml}");
        assert!(xml.contains("failures=\"0\""), "{xml}");
    }
}
