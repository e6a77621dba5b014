//! Statement coverage: which normative statements of MQTT 3.1.1 and 5.0
//! the suite can prove broken, derived from the code rather than claimed.
//!
//! The statements are data (`scenarios/spec/mqtt-3.1.1.toml`,
//! `mqtt-5.0.toml`): each with its id as the OASIS text numbers it, a short
//! paraphrase of our own, whether it can be seen on the wire, and the
//! checkers that cite it. A statement is *covered* for a version when all
//! of these hold, each found mechanically:
//!
//! 1. **cited**: a checker of that version names it in a violation — the
//!    id appears in the checker's code outside comments and tests
//!    (`check/v5_*.rs` cite 5.0 ids, the other checkers 3.1.1 ids, as
//!    their rules do);
//! 2. **proven**: a test shows that checker failing with that id on a
//!    violating history — an `assert_violates(&v, "ID")`, or `v.rules()`
//!    compared with a `vec![...]` holding it, or `v.rules().contains(&"ID")`
//!    not negated, in the checker's own tests or `tests/check_*.rs`;
//! 3. **exercised**: a scenario that `make test` runs invokes that checker
//!    at that version (the always-on checkers count in every scenario);
//! 4. the statement is wire-observable.
//!
//! [`Report`] holds the figures; `mqtt-hil coverage` prints them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::mqtt::Version;
use crate::scenario::fields::Source;

/// The checkers' sources and their tests, embedded at build time.
pub static SOURCES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/check_sources.rs"));

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub id: String,
    /// Client, server or both.
    pub who: String,
    /// Can a recorded history show it kept or broken?
    pub wire: bool,
    /// What it requires, in our words.
    pub says: String,
    /// Checkers that cite it (kept equal to what the code cites by a test).
    #[serde(default)]
    pub checkers: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub version: String,
    pub source: String,
    #[serde(rename = "statement")]
    pub statements: Vec<Statement>,
}

impl SpecFile {
    pub fn load(path: &Path) -> Result<SpecFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let src = Source { path, text: &text };
        toml::from_str(&text).map_err(|e| src.syntax_error(&e))
    }

    pub fn protocol(&self) -> Option<Version> {
        match self.version.as_str() {
            "3.1.1" => Some(Version::V311),
            "5.0" | "5" => Some(Version::V5),
            _ => None,
        }
    }
}

/// The spec version whose ids a checker source file cites.
pub fn version_of_source(path: &str) -> Version {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.starts_with("v5_") {
        Version::V5
    } else {
        Version::V311
    }
}

fn split_tests(text: &str) -> (&str, &str) {
    match text.find("#[cfg(test)]") {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    }
}

fn ids_in(text: &str) -> Vec<String> {
    let re = Regex::new(r"MQTT-[0-9][0-9.-]*[0-9]").expect("valid");
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

/// What the code says: per version, which checkers cite which ids, and
/// which ids a test shows failing.
#[derive(Debug, Default)]
pub struct Evidence {
    /// (version, id) → checker names citing it.
    pub cited: BTreeMap<(Version, String), BTreeSet<String>>,
    /// (version, id) proven by a failing-history test.
    pub proven: BTreeSet<(Version, String)>,
    /// Checker names per source file.
    pub names: BTreeMap<String, Vec<String>>,
}

impl Evidence {
    pub fn from_sources(sources: &[(&str, &str)]) -> Evidence {
        let name_re = Regex::new(r#"fn name\(&self\) -> &str \{\s*"([a-z0-9_]+)""#).expect("valid");
        let eq_re = Regex::new(r"rules\(\),\s*vec!\[([^\]]*)\]").expect("valid");
        let eq2_re = Regex::new(r"vec!\[([^\]]*)\],\s*[\w.()&]*\.rules\(\)").expect("valid");
        let viol_re =
            Regex::new(r#"assert_violates\([^;]*?"(MQTT-[0-9.-]*[0-9])",?\s*\)"#).expect("valid");
        let has_re =
            Regex::new(r#"(!?)[\w.()]*\.rules\(\)\s*\.contains\(&"(MQTT-[0-9.-]*[0-9])"\)"#)
                .expect("valid");
        let struct_re = Regex::new(r"(?m)^pub struct \w*Checker\b").expect("valid");
        let mut ev = Evidence::default();
        for (path, text) in sources {
            let is_checker = path.starts_with("src/check/");
            let (code, tests) = if is_checker {
                split_tests(text)
            } else {
                ("", *text)
            };
            let v = if is_checker {
                version_of_source(path)
            } else {
                Version::V311
            };
            if is_checker {
                let code: String = code
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let all: Vec<String> = name_re
                    .captures_iter(&code)
                    .map(|c| c[1].to_string())
                    .collect();
                // A file with several checkers: each `pub struct ...Checker`
                // starts the part that belongs to the checker named in it;
                // what comes before the first belongs to all of them.
                let starts: Vec<usize> = struct_re.find_iter(&code).map(|m| m.start()).collect();
                let mut parts: Vec<(&str, Vec<String>)> = Vec::new();
                let first = starts.first().copied().unwrap_or(code.len());
                parts.push((&code[..first], all.clone()));
                for (i, &at) in starts.iter().enumerate() {
                    let end = starts.get(i + 1).copied().unwrap_or(code.len());
                    let part = &code[at..end];
                    let mut names: Vec<String> = name_re
                        .captures_iter(part)
                        .map(|c| c[1].to_string())
                        .collect();
                    if names.is_empty() {
                        names = all.clone();
                    }
                    parts.push((part, names));
                }
                for (part, names) in parts {
                    for id in ids_in(part) {
                        ev.cited
                            .entry((v, id))
                            .or_default()
                            .extend(names.iter().cloned());
                    }
                }
                if !all.is_empty() {
                    ev.names.insert(path.to_string(), all);
                }
            }
            let mut proven: Vec<String> = Vec::new();
            for c in eq_re
                .captures_iter(tests)
                .chain(eq2_re.captures_iter(tests))
            {
                proven.extend(ids_in(&c[1]));
            }
            for c in viol_re.captures_iter(tests) {
                proven.push(c[1].to_string());
            }
            for c in has_re.captures_iter(tests) {
                if &c[1] != "!" {
                    proven.push(c[2].to_string());
                }
            }
            for id in proven {
                ev.proven.insert((v, id));
            }
        }
        ev
    }

    pub fn embedded() -> Evidence {
        Evidence::from_sources(SOURCES)
    }
}

/// The folders whose scenarios `make test` runs as they are: the suite,
/// 5.0, black boxes, the network's, and one folder per sketch under
/// `sketches/` and `network/`. Left out: `device/` (templates a device
/// description fills), `slow/` (the matrix only) and `containers/`.
fn exercised_folders(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["", "v5", "black_box", "network"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    for parent in ["sketches", "network"] {
        let Ok(entries) = std::fs::read_dir(root.join(parent)) else {
            continue;
        };
        let mut subs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !p.ends_with("snapshots"))
            .collect();
        subs.sort();
        dirs.extend(subs);
    }
    dirs.into_iter()
        .filter(|d| {
            std::fs::read_dir(d).is_ok_and(|mut it| {
                it.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "toml")))
            })
        })
        .collect()
}

/// The scenarios `make test` runs, as (file, version, checker names).
pub fn exercised(scenarios_root: &Path) -> Result<Vec<(PathBuf, Version, BTreeSet<String>)>> {
    let always: BTreeSet<String> = super::always()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut out = Vec::new();
    for dir in exercised_folders(scenarios_root) {
        for path in crate::scenario::discover(&[dir])? {
            let file = crate::scenario::load(&path)?;
            for s in file.per_version() {
                let version = s
                    .device
                    .as_ref()
                    .map(|d| d.connect.version)
                    .or_else(|| s.observers.values().map(|o| o.connect.version).max())
                    .unwrap_or(Version::V311);
                let mut names = always.clone();
                for inv in &s.invariants {
                    names.insert(super::build(&inv.spec).name().to_string());
                }
                out.push((path.clone(), version, names));
            }
        }
    }
    Ok(out)
}

/// One statement's standing.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub says: String,
    pub wire: bool,
    pub checkers: Vec<String>,
    pub proven: bool,
    pub scenarios: Vec<String>,
}

impl Row {
    pub fn covered(&self) -> bool {
        self.wire && !self.checkers.is_empty() && self.proven && !self.scenarios.is_empty()
    }
}

/// Coverage of one version.
#[derive(Clone, Debug)]
pub struct Report {
    pub version: String,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn build(
        spec: &SpecFile,
        ev: &Evidence,
        runs: &[(PathBuf, Version, BTreeSet<String>)],
    ) -> Report {
        let v = spec.protocol().unwrap_or(Version::V311);
        let rows = spec
            .statements
            .iter()
            .map(|s| {
                let checkers: Vec<String> = ev
                    .cited
                    .get(&(v, s.id.clone()))
                    .map(|c| c.iter().cloned().collect())
                    .unwrap_or_default();
                let mut scenarios: Vec<String> = runs
                    .iter()
                    .filter(|(_, rv, names)| *rv == v && checkers.iter().any(|c| names.contains(c)))
                    .map(|(p, _, _)| {
                        p.file_stem()
                            .map(|x| x.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    })
                    .collect();
                scenarios.dedup();
                Row {
                    id: s.id.clone(),
                    says: s.says.clone(),
                    wire: s.wire,
                    proven: ev.proven.contains(&(v, s.id.clone())),
                    checkers,
                    scenarios,
                }
            })
            .collect();
        Report {
            version: spec.version.clone(),
            rows,
        }
    }

    pub fn total(&self) -> usize {
        self.rows.len()
    }
    pub fn wire(&self) -> usize {
        self.rows.iter().filter(|r| r.wire).count()
    }
    pub fn cited(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.wire && !r.checkers.is_empty())
            .count()
    }
    pub fn proven(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.wire && !r.checkers.is_empty() && r.proven)
            .count()
    }
    pub fn covered(&self) -> usize {
        self.rows.iter().filter(|r| r.covered()).count()
    }

    /// The closing line: `coverage 3.1.1: C of W wire-observable statements covered (P %)`.
    pub fn summary_line(&self) -> String {
        let w = self.wire().max(1);
        format!(
            "coverage {}: {} of {} wire-observable statements covered ({:.1} %)",
            self.version,
            self.covered(),
            self.wire(),
            100.0 * self.covered() as f64 / w as f64
        )
    }
}

/// The per-version table for a terminal.
pub fn render_table(reports: &[Report]) -> String {
    let mut s = String::new();
    s += "version  statements  wire  cited  proven  covered\n";
    for r in reports {
        s += &format!(
            "{:<8} {:>10} {:>5} {:>6} {:>7} {:>8}\n",
            r.version,
            r.total(),
            r.wire(),
            r.cited(),
            r.proven(),
            r.covered()
        );
    }
    s += "\ncited: a checker names it; proven: and a test shows that checker failing on a history that breaks it;\ncovered: and a scenario `make test` runs exercises that checker at that version.\n";
    for r in reports {
        let missing: Vec<&Row> = r.rows.iter().filter(|x| x.wire && !x.covered()).collect();
        s += &format!("\nnot covered, {} ({}):\n", r.version, missing.len());
        for m in missing {
            let why = if m.checkers.is_empty() {
                "no checker"
            } else if !m.proven {
                "no failing-history test"
            } else {
                "no scenario"
            };
            s += &format!("  {:<16} {:<24} {}\n", m.id, why, m.says);
        }
    }
    s += "\n";
    for r in reports {
        s += &r.summary_line();
        s += "\n";
    }
    s
}

/// The same as Markdown, every statement listed with its evidence.
pub fn render_markdown(reports: &[Report]) -> String {
    let mut s = String::from("# MQTT statement coverage\n\n");
    s += "| version | statements | wire-observable | cited by a checker | with a failing-history test | covered (and exercised) |\n|---|---:|---:|---:|---:|---:|\n";
    for r in reports {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.version,
            r.total(),
            r.wire(),
            r.cited(),
            r.proven(),
            r.covered()
        );
    }
    for r in reports {
        s += &format!("\n## MQTT {}\n\n| statement | wire | checkers | failing test | scenarios | says |\n|---|---|---|---|---|---|\n", r.version);
        for x in &r.rows {
            s += &format!(
                "| {}{} | {} | {} | {} | {} | {} |\n",
                x.id,
                if x.covered() { " ✔" } else { "" },
                if x.wire { "yes" } else { "no" },
                x.checkers.join(", "),
                if x.proven { "yes" } else { "" },
                if x.scenarios.len() > 3 {
                    format!("{}, … ({})", x.scenarios[..3].join(", "), x.scenarios.len())
                } else {
                    x.scenarios.join(", ")
                },
                x.says.replace('|', "\\|")
            );
        }
    }
    s += "\n";
    for r in reports {
        s += &r.summary_line();
        s += "\n";
    }
    s
}

/// Loads both statement files under `spec_dir` and measures them.
pub fn measure(spec_dir: &Path, scenarios_root: &Path) -> Result<Vec<Report>> {
    let ev = Evidence::embedded();
    let runs = exercised(scenarios_root)?;
    ["mqtt-3.1.1.toml", "mqtt-5.0.toml"]
        .iter()
        .map(|f| {
            Ok(Report::build(
                &SpecFile::load(&spec_dir.join(f))?,
                &ev,
                &runs,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_reads_citations_tests_and_negations() {
        let src = r#"
            //! cites MQTT-9.9.9-9 only in a comment
            impl Checker for X { fn name(&self) -> &str { "x" } }
            fn f(v: &mut Verdict) { v.fail("MQTT-1.2.3-4", "m", vec![]); v.fail("MQTT-1.2.3-5", "m", vec![]); }
            #[cfg(test)]
            mod tests {
                fn a() { assert_eq!(v.rules(), vec!["MQTT-1.2.3-4"]); }
                fn b() { assert!(!v.rules().contains(&"MQTT-1.2.3-5")); }
            }
        "#;
        let ev = Evidence::from_sources(&[("src/check/x.rs", src), ("src/check/v5_y.rs", "impl C { fn name(&self) -> &str { \"y\" } } fn g() { fail(\"MQTT-3.3.2-8\") }\n#[cfg(test)]\nfn t() { assert_violates(&c.check(&h), \"MQTT-3.3.2-8\"); assert_violates(\n &x,\n \"MQTT-3.3.2-9\",\n ); }")]);
        let v3 = |id: &str| (Version::V311, id.to_string());
        assert!(ev.cited.contains_key(&v3("MQTT-1.2.3-4")));
        assert!(
            !ev.cited.contains_key(&v3("MQTT-9.9.9-9")),
            "comments cite nothing"
        );
        assert!(ev.proven.contains(&v3("MQTT-1.2.3-4")));
        assert!(
            !ev.proven.contains(&v3("MQTT-1.2.3-5")),
            "a negated check proves nothing"
        );
        assert!(ev.proven.contains(&(Version::V5, "MQTT-3.3.2-8".into())));
        assert!(ev.cited.contains_key(&(Version::V5, "MQTT-3.3.2-8".into())));
        // rustfmt's form of a long call: the id on its own line.
        assert!(ev.proven.contains(&(Version::V5, "MQTT-3.3.2-9".into())));
    }
}
