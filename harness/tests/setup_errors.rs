//! A set-up that no scenario could start on is one message and exit 2
//! (`exit_codes::INVALID`) before anything runs, not the same ERROR for
//! every scenario: `--target serial:PORT` without a bench file, or with one
//! that does not describe that port; a broker that cannot start (a
//! container image this machine does not have, an external broker nobody
//! answers on).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(extra: &[&str]) -> (Option<i32>, String, String) {
    run_with(&["--target", "serial:/dev/ttyNOPE"], extra)
}

fn run_with(set_up: &[&str], extra: &[&str]) -> (Option<i32>, String, String) {
    let out = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1")
        .args(["run", "scenarios/"])
        .args(set_up)
        .arg("--out")
        .arg(out.path())
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_serial_target_without_a_bench_file_is_one_error() {
    let (code, stdout, stderr) = run(&[]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(
        stderr.contains("serial:/dev/ttyNOPE needs a bench file"),
        "{stderr}"
    );
    assert!(!stdout.contains("ERROR"), "nothing may have run: {stdout}");
}

#[test]
fn a_bench_file_without_that_port_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench.toml");
    std::fs::write(
        &bench,
        "[[board]]\nport = \"/dev/ttyOTHER\"\nproxy_listen = \"127.0.0.1:1\"\ndial = \"10.0.2.100:1883\"\nreset_command = \"true\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["--bench", bench.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(
        stderr.contains("no board on port or named `/dev/ttyNOPE`"),
        "{stderr}"
    );
    assert!(stderr.contains("/dev/ttyOTHER"), "{stderr}");
    assert!(!stdout.contains("ERROR"), "nothing may have run: {stdout}");
}

/// Nothing may have started: no run header, no verdict, one error.
fn assert_one_error_before_the_run(code: Option<i32>, stdout: &str, stderr: &str, says: &[&str]) {
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    for s in says {
        assert!(stderr.contains(s), "expected `{s}` in:\n{stderr}");
    }
    assert!(stdout.trim().is_empty(), "nothing may have run: {stdout}");
}

#[test]
fn a_container_image_that_is_not_here_is_one_error() {
    let (code, stdout, stderr) = run_with(&["--broker", "container:nope:1"], &[]);
    // Without a Docker engine the one error says that instead; either way
    // no scenario may start.
    let says: &[&str] = if stderr.contains("Docker engine") {
        &["Docker engine", "hint:"]
    } else {
        &["the image nope:1 is not on this machine", "hint:"]
    };
    assert_one_error_before_the_run(code, &stdout, &stderr, says);
}

#[test]
fn an_external_broker_nobody_answers_is_one_error() {
    // Port 1 on loopback: nothing listens there (a privileged port no
    // test binds).
    let (code, stdout, stderr) = run_with(&["--broker", "external:127.0.0.1:1"], &[]);
    assert_one_error_before_the_run(
        code,
        &stdout,
        &stderr,
        &["external broker 127.0.0.1:1 refuses connections", "hint:"],
    );
}

#[test]
fn a_missing_mosquitto_is_one_error() {
    let out = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .current_dir(root())
        .env("MQTT_HIL_JOBS", "1")
        .args(["run", "scenarios/", "--broker", "mosquitto", "--out"])
        .arg(out.path())
        .env("MQTT_HIL_MOSQUITTO", "/nonexistent/mosquitto")
        .output()
        .unwrap();
    assert_one_error_before_the_run(
        o.status.code(),
        &String::from_utf8_lossy(&o.stdout),
        &String::from_utf8_lossy(&o.stderr),
        &["mosquitto is not installed", "Debian package `mosquitto`"],
    );
}
