//! Keeps the statement files (scenarios/spec/) honest against the code:
//! every rule a checker cites is a statement of its version, each
//! statement's `checkers` are exactly those citing it, and what counts as
//! covered is cited, proven failing by a test, and exercised by a scenario.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mqtt_hil::check::coverage::{self, Evidence, SpecFile};
use mqtt_hil::mqtt::Version;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn spec(name: &str) -> SpecFile {
    SpecFile::load(&root().join("scenarios/spec").join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn specs() -> Vec<(Version, SpecFile)> {
    vec![
        (Version::V311, spec("mqtt-3.1.1.toml")),
        (Version::V5, spec("mqtt-5.0.toml")),
    ]
}

#[test]
fn every_rule_a_checker_cites_is_a_statement_of_its_version() {
    let ev = Evidence::embedded();
    let mut unknown = Vec::new();
    for (v, f) in specs() {
        let ids: BTreeSet<&str> = f.statements.iter().map(|s| s.id.as_str()).collect();
        for ((cv, id), who) in &ev.cited {
            if *cv == v && !ids.contains(id.as_str()) {
                unknown.push(format!("{} {id} (cited by {who:?})", f.version));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "cited but not in the statement files:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn each_statements_checkers_are_exactly_those_citing_it() {
    let ev = Evidence::embedded();
    let mut wrong = Vec::new();
    for (v, f) in specs() {
        for s in &f.statements {
            let derived: Vec<String> = ev
                .cited
                .get(&(v, s.id.clone()))
                .map(|c| c.iter().cloned().collect())
                .unwrap_or_default();
            let mut listed = s.checkers.clone();
            listed.sort();
            if listed != derived {
                wrong.push(format!("fix {} {} {:?}", f.version, s.id, derived));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "checkers fields out of date:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_covered_statement_is_cited_proven_and_exercised() {
    let reports =
        coverage::measure(&root().join("scenarios/spec"), &root().join("scenarios")).unwrap();
    let ev = Evidence::embedded();
    for (r, v) in reports.iter().zip([Version::V311, Version::V5]) {
        for row in r.rows.iter().filter(|x| x.covered()) {
            assert!(row.wire);
            assert!(ev.cited.contains_key(&(v, row.id.clone())), "{}", row.id);
            assert!(ev.proven.contains(&(v, row.id.clone())), "{}", row.id);
            assert!(!row.scenarios.is_empty(), "{}", row.id);
        }
        // A proven id whose checker cites it is never left uncounted.
        assert!(r.covered() <= r.proven() && r.proven() <= r.cited() && r.cited() <= r.wire());
    }
    let text = coverage::render_table(&reports);
    let last: Vec<&str> = text.lines().rev().take(2).collect();
    assert!(
        last[1].starts_with("coverage 3.1.1: ") && last[0].starts_with("coverage 5.0: "),
        "{text}"
    );
}

#[test]
fn statements_are_unique_and_paraphrased_briefly() {
    for (_, f) in specs() {
        let mut seen = BTreeSet::new();
        for s in &f.statements {
            assert!(seen.insert(s.id.clone()), "{} twice", s.id);
            assert!(s.id.starts_with("MQTT-"), "{}", s.id);
            assert!(
                matches!(s.who.as_str(), "client" | "server" | "both"),
                "{}",
                s.id
            );
            // A paraphrase, not the standard's sentence.
            assert!(
                !s.says.is_empty() && s.says.len() <= 120,
                "{}: {}",
                s.id,
                s.says
            );
            assert!(!s.says.contains("MUST"), "{}: say it in our words", s.id);
        }
    }
}
