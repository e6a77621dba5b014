//! A set-up that no scenario could start on is one message and exit 2
//! (`exit_codes::INVALID`) before anything runs, not the same ERROR for
//! every scenario: `--target serial:PORT` without a bench file, or with one
//! that does not describe that port.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(extra: &[&str]) -> (Option<i32>, String, String) {
    let out = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1")
        .args([
            "run",
            "scenarios/",
            "--target",
            "serial:/dev/ttyNOPE",
            "--out",
        ])
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
