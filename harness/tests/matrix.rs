//! `mqtt-hil matrix` and `mqtt-hil merge` as a CI system uses them: a small
//! representative matrix over real brokers of every family (the mosquitto
//! process, the embedded rumqttd, and mosquitto, NATS, RabbitMQ and amqtt
//! containers, with Debian 13's mosquitto and NATS beside Debian 12's) split
//! in two partitions and merged into one table and one JUnit file; a real
//! non-conformance caught and, where declared, reported as a deviation with
//! its rule; a declared deviation that no longer happens reported as STALE.
//! The full matrix runs in `make matrix` / `make bench`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mqtt-hil"));
    c.current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether Docker and our images are here; panics where CI demands them.
fn docker_ready() -> bool {
    let required = std::env::var("MQTT_HIL_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let images = [
        "mqtt-hil/mosquitto",
        "mqtt-hil/nats",
        "mqtt-hil/rabbitmq",
        "mqtt-hil/amqtt",
        "mqtt-hil/mosquitto:2.0.21",
        "mqtt-hil/nats:2.10",
    ];
    let ok = Command::new("docker")
        .args(["image", "inspect"])
        .args(images)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = "no Docker engine, or the images are not built (make images)";
        assert!(!required, "MQTT_HIL_REQUIRE_DOCKER=1 but {why}");
        eprintln!("SKIPPED: {why}");
        println!("SKIPPED: {why}");
    }
    ok
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn verdict(m: &serde_json::Value, scenario: &str, broker: &str) -> String {
    m["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scenario"] == scenario && c["broker"] == broker)
        .map(|c| c["verdict"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no cell {scenario} x {broker}: {m}"))
}

#[test]
fn two_partitions_merge_into_one_conformance_table() {
    if !docker_ready() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let brokers = "mosquitto,embedded,container:mosquitto,container:nats,container:rabbitmq,\
                   container:amqtt,container:mosquitto:2.0.21,container:nats:2.10";
    for k in ["1/2", "2/2"] {
        let share = out.path().join(k.replace('/', "of"));
        let o = bin()
            .args([
                "matrix",
                "scenarios/qos1_delivery.toml",
                "scenarios/qos2_delivery.toml",
                "--brokers",
                brokers,
                "--partition",
                k,
                "--out",
            ])
            .arg(&share)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "partition {k}:\n{}", text(&o));
        let part = json(&share.join("matrix.json"));
        assert_eq!(part["cells"].as_array().unwrap().len(), 8, "{part}");
    }
    let merged = out.path().join("merged.json");
    let junit = out.path().join("junit.xml");
    let o = bin()
        .arg("merge")
        .arg(out.path().join("1of2/matrix.json"))
        .arg(out.path().join("2of2/matrix.json"))
        .arg("--json")
        .arg(&merged)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let m = json(&merged);
    assert_eq!(m["cells"].as_array().unwrap().len(), 16, "{m}");
    for b in brokers.split(',') {
        assert_eq!(verdict(&m, "qos1_delivery", b), "pass", "{b}");
    }
    // QoS 2 is where the brokers differ, and the deviations files say so;
    // NATS 2.10 implements the QoS 2 that 2.9 closes the connection on.
    for (b, v) in [
        ("mosquitto", "pass"),
        ("embedded", "pass"),
        ("container:mosquitto", "pass"),
        ("container:nats", "dev"),
        ("container:rabbitmq", "dev"),
        ("container:amqtt", "pass"),
        ("container:mosquitto:2.0.21", "pass"),
        ("container:nats:2.10", "pass"),
    ] {
        assert_eq!(verdict(&m, "qos2_delivery", b), v, "{b}\n{t}");
    }
    // The terminal table: a row per scenario, a column per broker.
    assert!(
        t.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == [
                "qos2_delivery",
                "PASS",
                "PASS",
                "PASS",
                "DEV",
                "DEV",
                "PASS",
                "PASS",
                "PASS"
            ]),
        "{t}"
    );
    let md = std::fs::read_to_string(out.path().join("matrix.md")).unwrap();
    assert!(
        md.contains("| qos2_delivery | PASS | PASS | PASS | DEV | DEV | PASS | PASS | PASS |"),
        "{md}"
    );
    assert!(
        md.contains("MQTT-3.3.4-1"),
        "the deviation's rule is missing:\n{md}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), 8, "{xml}");
    // Each column runs its own profile.
    let profile = |b: &str| {
        m["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["broker"] == b)
            .map(|c| c["profile"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(profile("container:nats"), "nats");
    assert_eq!(profile("container:nats:2.10"), "nats-2.10");
    assert_eq!(profile("container:amqtt"), "amqtt-container");
}

/// rumqttd re-sends an unacknowledged QoS 2 PUBLISH with DUP=0: without
/// its deviations file the matrix fails naming the rule; with it, the cell
/// is DEV.
#[test]
fn a_real_non_conformance_fails_unless_declared() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("qos2_in_cut_after_publish.toml");
    std::fs::copy(
        root().join("scenarios/qos2_in_cut_after_publish.toml"),
        &scenario,
    )
    .unwrap();
    let o = bin()
        .arg("matrix")
        .arg(&scenario)
        .args(["--brokers", "embedded", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("MQTT-3.3.1-1"), "{t}");
    let m = json(&dir.path().join("out/matrix.json"));
    assert_eq!(verdict(&m, "qos2_in_cut_after_publish", "embedded"), "fail");

    let o = bin()
        .args([
            "matrix",
            "scenarios/qos2_in_cut_after_publish.toml",
            "--brokers",
            "embedded",
            "--out",
        ])
        .arg(dir.path().join("out2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m = json(&dir.path().join("out2/matrix.json"));
    assert_eq!(verdict(&m, "qos2_in_cut_after_publish", "embedded"), "dev");
}

/// A deviation file that claims more than the broker does is caught.
#[test]
fn a_deviation_that_no_longer_happens_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("scenarios/qos1_delivery.toml"),
        dir.path().join("qos1_delivery.toml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("deviations")).unwrap();
    std::fs::write(
        dir.path().join("deviations/rumqttd.toml"),
        "[[deviation]]\nscenario = \"qos1_delivery\"\nrules = [\"step 4\"]\n\
         reason = \"claimed, not true\"\nspec = \"MQTT-4.3.2-2: ...\"\n",
    )
    .unwrap();
    let o = bin()
        .arg("matrix")
        .arg(dir.path())
        .args(["--brokers", "embedded", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("STALE"), "{t}");
    assert!(t.contains("did not happen"), "{t}");
    let m = json(&dir.path().join("out/matrix.json"));
    assert_eq!(verdict(&m, "qos1_delivery", "embedded"), "stale");
}

#[test]
fn bad_partitions_and_brokers_are_usage_errors() {
    for args in [
        &["matrix", "--partition", "3/2"][..],
        &["matrix", "--brokers", "mosquito"][..],
        &["matrix", "--broker", "mosquitto"][..],
    ] {
        let o = bin().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
}

/// With `--format json` stdout is one JSON event a line, the table on
/// stderr, so a tool can read the stream.
#[test]
fn json_format_keeps_stdout_for_events() {
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .args([
            "matrix",
            "scenarios/qos0_delivery.toml",
            "--brokers",
            "embedded",
            "--format",
            "json",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.lines().count() >= 3, "{stdout}");
    for line in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(String::from_utf8_lossy(&o.stderr).contains("qos0_delivery  PASS"));
}

/// The CI examples run what `make matrix` runs: every image `make images`
/// builds (each known local image's profile is one of their columns,
/// besides the mosquitto process and the embedded rumqttd) over every
/// scenario folder of the Makefile's matrix. A new image or folder that
/// one of them forgets fails here, naming the file.
#[test]
fn ci_examples_cover_every_image_and_every_matrix_folder() {
    use mqtt_hil::broker::container::KNOWN;
    use mqtt_hil::broker::BrokerSpec;
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let make_line = makefile
        .lines()
        .find(|l| l.contains("mqtt-hil matrix scenarios"))
        .expect("make matrix's command line");
    let folders: Vec<&str> = make_line
        .split_whitespace()
        .skip_while(|w| *w != "matrix")
        .skip(1)
        .take_while(|w| w.starts_with("scenarios"))
        .collect();
    assert!(folders.contains(&"scenarios/v5"), "{make_line}");
    let mut want: Vec<String> = KNOWN
        .iter()
        .filter(|k| k.local)
        .map(|k| k.profile.to_string())
        .collect();
    want.extend(["mosquitto".to_string(), "rumqttd".to_string()]);
    want.sort();
    want.dedup();
    for file in ["ci/github-actions.yml", "ci/matrix-baseline.yml"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let list = text
            .split_whitespace()
            .map(|w| w.trim_matches('"'))
            .find(|w| w.starts_with("mosquitto,embedded,"))
            .unwrap_or_else(|| panic!("{file}: no broker list"));
        let mut got: Vec<String> = list
            .split(',')
            .map(|b| BrokerSpec::resolve(b).unwrap_or_else(|e| panic!("{file}: {b}: {e}")))
            .map(|b| b.profile())
            .collect();
        got.sort();
        got.dedup();
        assert_eq!(got, want, "{file}: broker columns");
        let command = text
            .lines()
            .find(|l| l.contains("mqtt-hil matrix scenarios"))
            .unwrap_or_else(|| panic!("{file}: no matrix command"));
        for f in &folders {
            assert!(
                command.split_whitespace().any(|w| w == *f),
                "{file}: the matrix leaves out {f}: {command}"
            );
        }
    }
}
