//! The matrix as people read it: a terminal table and a Markdown file.
//! Rows are scenarios, columns brokers; below the table, every cell that is
//! not a plain pass says why (deviation with its spec statement, failure,
//! skip reason).

use super::results::{Matrix, Verdict};

/// Fixed-width table for a terminal.
pub fn terminal(m: &Matrix) -> String {
    let id_w = m
        .scenarios
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let col_w: Vec<usize> = m.brokers.iter().map(|b| b.len().max(5)).collect();
    let mut out = String::new();
    out += &format!("{:<id_w$}", "scenario");
    for (b, w) in m.brokers.iter().zip(&col_w) {
        out += &format!("  {b:<w$}");
    }
    out += "\n";
    for s in &m.scenarios {
        out += &format!("{:<id_w$}", s.id);
        for (b, w) in m.brokers.iter().zip(&col_w) {
            let label = m.cell(&s.id, b).map_or("-", |c| c.verdict.label());
            out += &format!("  {label:<w$}");
        }
        out += "\n";
    }
    out += &format!("{:<id_w$}", "");
    for (b, w) in m.brokers.iter().zip(&col_w) {
        out += &format!("  {:<w$}", summary(m, b));
    }
    out += "\n";
    out
}

/// `12/1/0/3`: pass/dev/fail/skip, dev including unsupported conventions,
/// failures including stale and errors.
fn summary(m: &Matrix, broker: &str) -> String {
    let c = m.counts(Some(broker));
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    format!(
        "{}/{}/{}/{}",
        get("PASS"),
        get("DEV") + get("UNSUP"),
        get("FAIL") + get("STALE") + get("ERROR") + get("FLAKY"),
        get("SKIP")
    )
}

/// Every non-pass cell with its reason, for terminals and Markdown.
pub fn notes(m: &Matrix) -> Vec<(String, String, Verdict, String)> {
    let mut v = Vec::new();
    for s in &m.scenarios {
        for b in &m.brokers {
            if let Some(c) = m.cell(&s.id, b) {
                if c.verdict != Verdict::Pass {
                    // A failure lists the rules a deviations entry would
                    // have to declare, should it be the broker's own.
                    let detail = if matches!(c.verdict, Verdict::Fail | Verdict::Flaky)
                        && !c.rules.is_empty()
                    {
                        format!("{}\n(rules: {})", c.detail, c.rules.join(", "))
                    } else {
                        c.detail.clone()
                    };
                    v.push((s.id.clone(), b.clone(), c.verdict, detail));
                }
            }
        }
    }
    v
}

pub fn markdown(m: &Matrix) -> String {
    let mut out = String::from("# MQTT conformance matrix\n\n");
    if let Some(p) = &m.partition {
        out += &format!("Partition {p} of a larger run.\n\n");
    }
    out += "PASS: conforms. DEV: fails exactly as the broker's deviations file declares \
            (reason and spec statement below). UNSUP: uses a convention outside MQTT 3.1.1 ($share/, $queue/, $local/) the broker does not implement, as declared. STALE: a declared deviation did not happen. \
            FAIL, ERROR: a failure. FLAKY: the runs of `--repeat N` disagree (each run's verdict and the differing rules below), a failure. SKIP: the broker does not offer what the scenario needs.\n\n";
    out += "| scenario |";
    for b in &m.brokers {
        out += &format!(" {} |", escape(b));
    }
    out += "\n|---|";
    for _ in &m.brokers {
        out += "---|";
    }
    out += "\n";
    for s in &m.scenarios {
        out += &format!("| {} |", escape(&s.id));
        for b in &m.brokers {
            let label = m.cell(&s.id, b).map_or("-", |c| c.verdict.label());
            out += &format!(" {label} |");
        }
        out += "\n";
    }
    out += "| **pass/dev/fail/skip** |";
    for b in &m.brokers {
        out += &format!(" {} |", summary(m, b));
    }
    out += "\n";
    let notes = notes(m);
    if !notes.is_empty() {
        out += "\n## Why\n\n";
        for (s, b, v, why) in notes {
            let why = why.lines().collect::<Vec<_>>().join("; ");
            out += &format!(
                "- **{s}** on {} — {}: {}\n",
                escape(&b),
                v.label(),
                escape(&why)
            );
        }
    }
    if !m.unavailable.is_empty() {
        out += "\n## Not in this matrix\n\n";
        for u in &m.unavailable {
            out += &format!("- {}\n", escape(u));
        }
    }
    out += &format!("\nWall time: {:.1}s\n", m.wall_ms as f64 / 1000.0);
    out
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::super::results::{CellResult, ScenarioRow};
    use super::*;

    #[test]
    fn a_small_matrix_reads_well() {
        let cell = |s: &str, b: &str, v, d: &str| CellResult {
            scenario: s.into(),
            broker: b.into(),
            profile: b.into(),
            verdict: v,
            detail: d.into(),
            rules: Vec::new(),
            duration_ms: 1,
            runs: Vec::new(),
        };
        let m = Matrix {
            format: 1,
            brokers: vec!["mosquitto".into(), "container:rabbitmq".into()],
            scenarios: vec![
                ScenarioRow {
                    id: "qos1_delivery".into(),
                    name: "q".into(),
                },
                ScenarioRow {
                    id: "keepalive_expiry".into(),
                    name: "k".into(),
                },
            ],
            cells: vec![
                cell("qos1_delivery", "mosquitto", Verdict::Pass, ""),
                cell("qos1_delivery", "container:rabbitmq", Verdict::Pass, ""),
                cell(
                    "keepalive_expiry",
                    "mosquitto",
                    Verdict::Dev,
                    "coarse timer (MQTT-3.1.2-24)",
                ),
                cell(
                    "keepalive_expiry",
                    "container:rabbitmq",
                    Verdict::Fail,
                    "step 3: not closed",
                ),
            ],
            wall_ms: 1500,
            ..Default::default()
        };
        let t = terminal(&m);
        let want = "\
scenario          mosquitto  container:rabbitmq
qos1_delivery     PASS       PASS              
keepalive_expiry  DEV        FAIL              
                  1/1/0/0    1/0/1/0           
";
        assert_eq!(t, want);
        let md = markdown(&m);
        assert!(md.contains("| keepalive_expiry | DEV | FAIL |"), "{md}");
        assert!(
            md.contains("- **keepalive_expiry** on mosquitto — DEV: coarse timer (MQTT-3.1.2-24)"),
            "{md}"
        );
        assert!(md.contains("Wall time: 1.5s"), "{md}");
    }
}
