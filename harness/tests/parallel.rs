//! `-j N`: the same verdicts, traces and reports as one scenario at a time.
//! A representative suite (deliveries at every QoS, a persistent session,
//! retained messages, a broker restart, proxy cuts mid-QoS 2) runs through
//! the binary at `-j 1` and at `-j 8` against mosquitto with the virtual
//! device; every verdict and every normalized trace (crossings aside, as
//! every trace comparison) must agree, and the JSON events, JUnit, HTML
//! index, pcaps and trace files must be complete and in the scenarios'
//! order, not the order they finished in.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const SUITE: &[&str] = &[
    "qos0_delivery",
    "qos1_delivery",
    "qos2_delivery",
    "qos_downgrade_on_delivery",
    "persistent_session_offline_queue",
    "clean_session_discards",
    "retained_set_and_clear",
    "wildcard_matching",
    "broker_restart_persistent_session",
    "qos2_out_cut_after_pubrec",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Run {
    events: Vec<Value>,
    stderr: String,
    out: PathBuf,
}

fn run_at(jobs: &str, out: &Path) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mqtt-hil"));
    c.current_dir(root())
        .args(["run", "--broker", "mosquitto", "-j", jobs]);
    for id in SUITE {
        c.arg(format!("scenarios/{id}.toml"));
    }
    let o = c
        .args(["--format", "json", "--out"])
        .arg(out)
        .arg("--junit")
        .arg(out.join("junit.xml"))
        .arg("--report")
        .arg(out.join("html"))
        .arg("--pcap")
        .arg(out.join("pcap"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "-j {jobs}\n{stdout}\n{stderr}");
    let events = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    Run {
        events,
        stderr,
        out: out.to_path_buf(),
    }
}

/// Each event without what the clock decides (durations, times) and with
/// its trace in canonical form.
fn comparable(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let o = e.as_object_mut().unwrap();
            o.remove("duration_secs");
            if let Some(Value::String(t)) = o.get("trace") {
                let c = mqtt_hil::trace::crossing::canonical(t);
                o.insert("trace".into(), Value::String(c));
            }
            // A verdict is its checker, whether it held and the rules it
            // cites; its notes and events carry times.
            if let Some(Value::Array(vs)) = o.get_mut("verdicts") {
                for v in vs {
                    let rules: Vec<Value> = v["violations"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x["rule"].clone())
                        .collect();
                    *v =
                        serde_json::json!({"checker": v["checker"], "ok": v["ok"], "rules": rules});
                }
            }
            e
        })
        .collect()
}

fn in_suite_order(text: &str, what: &str) {
    let mut at = 0;
    for id in SUITE {
        let found = text[at..]
            .find(id)
            .unwrap_or_else(|| panic!("{what}: {id} missing or out of order:\n{text}"));
        at += found + id.len();
    }
}

#[test]
fn eight_at_once_report_what_one_at_a_time_reports() {
    let one = tempfile::tempdir().unwrap();
    let eight = tempfile::tempdir().unwrap();
    let a = run_at("1", one.path());
    let b = run_at("8", eight.path());

    // Every scenario run (a `versions` file runs once per version), in the
    // scenarios' order, each with its verdict: the stream is the same but
    // for the clock.
    let ids = |r: &Run| -> Vec<String> {
        r.events
            .iter()
            .filter(|e| e["type"] == "scenario_finished")
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let runs = ids(&a);
    assert_eq!(ids(&b), runs, "scenario_finished in the scenarios' order");
    in_suite_order(&runs.join(" "), "-j 1's scenario_finished");
    for (i, e) in b
        .events
        .iter()
        .filter(|e| e["type"] == "scenario_finished")
        .enumerate()
    {
        assert_eq!(e["index"], i, "{e}");
        assert_eq!(e["status"], "passed", "{e}");
    }
    let (ca, cb) = (comparable(&a.events), comparable(&b.events));
    assert_eq!(ca.len(), cb.len());
    for (x, y) in ca.iter().zip(&cb) {
        assert_eq!(x, y, "-j 1 and -j 8 disagree");
    }

    // The files: the same set, the traces equal but for crossings.
    for id in &runs {
        let file = id.replace('@', "_");
        let read = |r: &Run, p: String| {
            std::fs::read_to_string(r.out.join(&p))
                .unwrap_or_else(|e| panic!("{}: {e}", r.out.join(&p).display()))
        };
        let ta = read(&a, format!("traces/{id}.trace"));
        let tb = read(&b, format!("traces/{id}.trace"));
        assert!(
            mqtt_hil::trace::crossing::equivalent(&ta, &tb),
            "{id}: traces differ\n--- -j 1 ---\n{ta}\n--- -j 8 ---\n{tb}"
        );
        for r in [&a, &b] {
            let pcap = r.out.join(format!("pcap/{file}.pcapng"));
            let len = std::fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0);
            assert!(len > 0, "{} missing or empty", pcap.display());
            let page = r.out.join(format!("html/{file}.html"));
            assert!(page.is_file(), "{} missing", page.display());
        }
    }
    for r in [&a, &b] {
        let junit = std::fs::read_to_string(r.out.join("junit.xml")).unwrap();
        in_suite_order(&junit, "JUnit");
        assert_eq!(junit.matches("<testcase").count(), runs.len(), "{junit}");
        let index = std::fs::read_to_string(r.out.join("html/index.html")).unwrap();
        in_suite_order(&index, "HTML index");
    }

    // The terminal shows each line as its scenario finishes, counted.
    let total = runs.len();
    for n in 1..=total {
        let count = format!("[{n:>2}/{total}] PASS");
        assert!(b.stderr.contains(&count), "no `{count}`:\n{}", b.stderr);
    }
    assert!(!a.stderr.contains(&format!("/{total}] ")), "{}", a.stderr);
}

#[test]
fn a_bad_job_count_is_refused_naming_the_flag() {
    for (arg, env, names) in [
        (Some("0"), None, "--jobs"),
        (Some("many"), None, "--jobs"),
        (None, Some("0"), "MQTT_HIL_JOBS"),
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mqtt-hil"));
        c.current_dir(root())
            .args(["run", "scenarios/qos0_delivery.toml"])
            .env_remove("MQTT_HIL_JOBS");
        if let Some(a) = arg {
            c.args(["-j", a]);
        }
        if let Some(e) = env {
            c.env("MQTT_HIL_JOBS", e);
        }
        let o = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{arg:?} {env:?}: {stderr}");
        assert!(stderr.contains(names), "{arg:?} {env:?}: {stderr}");
    }
}

/// `matrix -j N`: the same cells, verdicts and order as one at a time, a
/// broker restart included (mosquitto restarts its own process; the
/// embedded broker cannot and skips it, at any -j).
#[test]
fn a_matrix_at_six_at_once_has_the_cells_of_one_at_a_time() {
    let cells = |jobs: &str| -> (Vec<Value>, tempfile::TempDir) {
        let out = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
            .current_dir(root())
            .args([
                "matrix",
                "scenarios/qos1_delivery.toml",
                "scenarios/qos2_delivery.toml",
                "scenarios/retained_set_and_clear.toml",
                "scenarios/broker_restart_persistent_session.toml",
                "--brokers",
                "mosquitto,embedded",
                "-j",
                jobs,
                "--out",
            ])
            .arg(out.path())
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(matches!(o.status.code(), Some(0 | 1)), "-j {jobs}: {text}");
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join("matrix.json")).unwrap())
                .unwrap();
        let cells = m["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| serde_json::json!([c["scenario"], c["broker"], c["verdict"], c["rules"]]))
            .collect();
        (cells, out)
    };
    let (one, _) = cells("1");
    assert!(one.len() >= 8, "{one:?}");
    let (six, out) = cells("6");
    assert_eq!(six, one, "{}", why_cells_differ(out.path(), &six, &one));
}

/// What a differing cell's run left (the matrix's reasons, its trace and
/// its broker's log), so that a difference seen once can be explained.
fn why_cells_differ(out: &Path, got: &[Value], want: &[Value]) -> String {
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).unwrap_or_else(|e| format!("{}: {e}", p.display()))
    };
    let mut text = read(out.join("matrix.md"));
    for cell in got.iter().filter(|c| !want.contains(c)) {
        let scenario = cell[0].as_str().unwrap_or("?");
        let broker = cell[1].as_str().unwrap_or("?");
        let (name, id) = match broker.split_once(' ') {
            Some((name, version)) => (
                name,
                format!("{scenario}@{}", version.trim_end_matches(".0")),
            ),
            None => (broker, scenario.to_string()),
        };
        text += &format!("\n--- {id} on {name}: trace ---\n");
        text += &read(out.join("traces").join(name).join(format!("{id}.trace")));
        text += &format!("\n--- {id} on {name}: broker log ---\n");
        text += &read(
            out.join("work")
                .join(name)
                .join(&id)
                .join(name)
                .join(format!("{name}.log")),
        );
    }
    text
}
