//! `mqtt-hil diff OLD.json NEW.json` and `matrix --baseline OLD.json` as a
//! CI job uses them: the committed fixtures (`fixtures/matrix/`) hold one
//! change of every kind; bad baselines are refused naming the file and the
//! position; one real one-cell matrix run (the embedded broker's known
//! QoS 2 non-conformance, without its deviations file) regresses against a
//! baseline that has it passing, and its matrix.json round-trips through
//! `diff`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mqtt-hil"));
    c.current_dir(root());
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const BASE: &str = "harness/tests/fixtures/matrix/base.json";
const NEW: &str = "harness/tests/fixtures/matrix/new.json";

fn fixture(name: &str) -> String {
    format!("harness/tests/fixtures/matrix/{name}")
}

#[test]
fn every_kind_of_change_in_the_table_markdown_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    let (md, junit) = (dir.path().join("d.md"), dir.path().join("d.xml"));
    let o = bin()
        .args(["diff", BASE, NEW, "--markdown"])
        .arg(&md)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "a regression fails: {t}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let table: Vec<&str> = stdout.lines().take(7).collect();
    assert_eq!(
        table,
        [
            "changes since harness/tests/fixtures/matrix/base.json: 1 regressed, 1 fixed, 1 changed, 1 new, 1 removed; 3 unchanged",
            "change     scenario          broker         was   now   why",
            "REGRESSED  qos1_delivery     mosquitto 5.0  PASS  FAIL  step 5: cloud received 0 message(s) on t, expected 1",
            "NEW        retained_replace  mosquitto      -     PASS",
            "REMOVED    retired_scenario  mosquitto      PASS  -",
            "FIXED      will_on_drop      embedded       FAIL  PASS",
            "CHANGED    will_on_drop      mosquitto      DEV   DEV   rules [MQTT-3.1.2-8] -> [MQTT-3.1.2-8, step 5]",
        ],
        "{t}"
    );
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with("# Matrix diff\n"), "{md}");
    assert!(
        md.contains("| **REGRESSED** | qos1_delivery | mosquitto 5.0 | PASS | FAIL | step 5:"),
        "{md}"
    );
    assert!(
        md.contains("| FIXED | will_on_drop | embedded | FAIL | PASS |"),
        "{md}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"5\""), "{xml}");
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(
        xml.contains("<testcase name=\"qos1_delivery on mosquitto 5.0\""),
        "{xml}"
    );
    assert!(xml.contains("type=\"regressed\""), "{xml}");
}

#[test]
fn fixes_alone_and_no_change_pass() {
    let o = bin().args(["diff", BASE, BASE]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("0 regressed, 0 fixed, 0 changed, 0 new, 0 removed; 7 unchanged"),
        "{}",
        text(&o)
    );
    // The baseline with its one failing cell fixed.
    let dir = tempfile::tempdir().unwrap();
    let fixed = dir.path().join("fixed.json");
    let t = std::fs::read_to_string(root().join(BASE)).unwrap().replace(
        r#""verdict": "fail", "detail": "step 4: no will", "rules": ["step 4"]"#,
        r#""verdict": "pass""#,
    );
    std::fs::write(&fixed, t).unwrap();
    let o = bin().args(["diff", BASE]).arg(&fixed).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("1 fixed"), "{}", text(&o));
    // ...and the other way round it regressed.
    let o = bin().arg("diff").arg(&fixed).arg(BASE).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("1 regressed"), "{}", text(&o));
}

#[test]
fn bad_matrix_files_are_refused_naming_file_and_fault() {
    let cases = [
        (
            fixture("broken.json"),
            format!(
                "{}:5:3: not valid JSON: expected `,` or `}}`",
                fixture("broken.json")
            ),
        ),
        (
            fixture("format2.json"),
            format!(
                "{}:2: matrix format 2, but this mqtt-hil reads format 1 only",
                fixture("format2.json")
            ),
        ),
        (
            fixture("no_format.json"),
            format!(
                "{}:1: no `format` field: not a matrix result",
                fixture("no_format.json")
            ),
        ),
        (
            fixture("missing.json"),
            format!("reading {}", fixture("missing.json")),
        ),
    ];
    for (file, want) in &cases {
        // As the baseline and as the new matrix alike.
        for args in [[file.as_str(), NEW], [BASE, file.as_str()]] {
            let o = bin().arg("diff").args(args).output().unwrap();
            let t = text(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
            assert!(t.contains(want.as_str()), "{args:?}: want {want}: {t}");
        }
    }
    // `matrix --baseline` refuses it before running anything.
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .args([
            "matrix",
            "scenarios/qos1_delivery.toml",
            "--brokers",
            "embedded",
            "--baseline",
        ])
        .arg(&cases[1].0)
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains(&cases[1].1), "{t}");
    assert!(!dir.path().join("matrix.json").exists(), "it ran: {t}");
}

#[test]
fn renamed_columns_compare_across_an_upgrade() {
    // The new run has the embedded broker under another column name: as
    // it is, every cell of it is new and every old one removed...
    let dir = tempfile::tempdir().unwrap();
    let upgraded = dir.path().join("upgraded.json");
    let t = std::fs::read_to_string(root().join(NEW))
        .unwrap()
        .replace("\"embedded\"", "\"rumqttd-0.21\"");
    std::fs::write(&upgraded, t).unwrap();
    let o = bin().args(["diff", BASE]).arg(&upgraded).output().unwrap();
    let t = text(&o);
    assert!(
        t.contains(": 1 regressed, 0 fixed, 1 changed, 4 new, 4 removed; 1 unchanged"),
        "{t}"
    );
    // ...renamed, it compares with itself: the same changes as before.
    let o = bin()
        .args(["diff", BASE])
        .arg(&upgraded)
        .args(["--rename", "embedded=rumqttd-0.21"])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(": 1 regressed, 1 fixed, 1 changed, 1 new, 1 removed; 3 unchanged"),
        "{t}"
    );
    assert!(
        t.contains("FIXED      will_on_drop      rumqttd-0.21"),
        "{t}"
    );
    for (bad, why) in [
        ("nope=mosquitto", "no broker column `nope`"),
        ("embedded=mosquitto", "has a column `mosquitto` already"),
        ("embedded", "expected OLD=NEW"),
        ("=x", "expected OLD=NEW"),
    ] {
        let o = bin()
            .args(["diff", BASE, NEW, "--rename", bad])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(text(&o).contains(why), "{bad}: {}", text(&o));
    }
}

/// One real cell: the embedded broker (rumqttd) fails
/// qos2_in_cut_after_publish when its deviations file is not beside the
/// scenario; the baseline has it passing.
#[test]
fn a_real_matrix_run_against_a_baseline_reports_its_regression() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("qos2_in_cut_after_publish.toml");
    std::fs::copy(
        root().join("scenarios/qos2_in_cut_after_publish.toml"),
        &scenario,
    )
    .unwrap();
    let out = dir.path().join("out");
    let junit = dir.path().join("junit.xml");
    let o = bin()
        .arg("matrix")
        .arg(&scenario)
        .args(["--brokers", "embedded", "--baseline", BASE, "--out"])
        .arg(&out)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("REGRESSED  qos2_in_cut_after_publish  embedded       PASS  FAIL"),
        "{t}"
    );
    assert!(
        t.contains("1 regressed, 0 fixed, 0 changed, 0 new, 6 removed; 0 unchanged"),
        "{t}"
    );
    let md = std::fs::read_to_string(out.join("matrix.md")).unwrap();
    assert!(md.contains("## Changes since the baseline"), "{md}");
    assert!(
        md.contains("| **REGRESSED** | qos2_in_cut_after_publish | embedded | PASS | FAIL |"),
        "{md}"
    );
    // The run's own suite and the changes' suite, in one file.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite name=\"embedded\""), "{xml}");
    assert!(
        xml.contains(&format!(
            "<testsuite name=\"changes since {BASE}\" tests=\"7\""
        )),
        "{xml}"
    );
    assert!(xml.contains("type=\"regressed\""), "{xml}");

    // The real matrix.json reads back: against itself nothing changed...
    let real = out.join("matrix.json");
    let o = bin().arg("diff").arg(&real).arg(&real).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("; 1 unchanged"), "{}", text(&o));
    // ...and `diff` says what `--baseline` said.
    let o = bin().args(["diff", BASE]).arg(&real).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("1 regressed"), "{}", text(&o));
}

/// `merge --baseline`: the sharded CI's way (ci/matrix-baseline.yml).
#[test]
fn merge_compares_the_joined_matrix_with_the_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let (json, md, junit) = (
        dir.path().join("matrix.json"),
        dir.path().join("matrix.md"),
        dir.path().join("junit.xml"),
    );
    let o = bin()
        .args(["merge", NEW, "--baseline", BASE, "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("1 regressed, 1 fixed, 1 changed, 1 new, 1 removed"),
        "{t}"
    );
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with("# MQTT conformance matrix"), "{md}");
    assert!(md.contains("## Changes since the baseline"), "{md}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    // The matrix's suites (one per broker column) and the changes' suite.
    assert!(xml.contains("<testsuite name=\"mosquitto 5.0\""), "{xml}");
    assert!(
        xml.contains(&format!(
            "<testsuite name=\"changes since {BASE}\" tests=\"5\""
        )),
        "{xml}"
    );
    // The joined matrix diffs against the new one as unchanged.
    let o = bin().args(["diff", NEW]).arg(&json).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("; 7 unchanged"), "{}", text(&o));
}
