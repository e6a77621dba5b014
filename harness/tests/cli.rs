//! The binary as a user meets it: exit codes, the summary line, clear errors
//! for bad input and missing tools, and nothing left running after a
//! timeout or Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mqtt-hil"));
    c.current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1");
    c
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Processes whose command line mentions `needle` (our per-run folders are
/// unique, so this finds exactly what this test started).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && !cmdline.contains("cargo") {
            found.push(cmdline);
        }
    }
    found
}

#[test]
fn a_passing_run_prints_verdicts_and_the_summary() {
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml");
    let o = bin()
        .args([
            "run",
            "scenarios/qos1_delivery.toml",
            "scenarios/will_on_sever.toml",
            "--out",
        ])
        .arg(out.path())
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("PASS  qos1_delivery"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l == "2 passed, 0 failed"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testcase name=\"will_on_sever\""), "{xml}");
    assert!(out.path().join("traces/will_on_sever.trace").is_file());
}

#[test]
fn a_bad_scenario_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "name = \"x\"\n[device]\n[[step]]\ndevice = \"publish\"\ntopic = \"t\"\nqos = \"high\"\n",
    )
    .unwrap();
    let o = bin().arg("run").arg(&f).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:6: step 1: field `qos`", f.display())),
        "{stderr}"
    );
}

/// `run --device FILE`: a bad description stops the run before anything
/// starts, naming its file, line and field.
#[test]
fn a_bad_device_description_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("device.toml");
    std::fs::write(
        &f,
        "[[publish]]\ntopic = \"d/1/n\"\n[[command]]\ntopic = \"d/1/cmd\"\npayload = \"on\"\n",
    )
    .unwrap();
    let o = bin()
        .arg("run")
        .arg(root().join("scenarios/device"))
        .arg("--device")
        .arg(&f)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:3: command 1: missing field `reaction`",
            f.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_missing_mosquitto_names_the_package() {
    let o = bin()
        .args([
            "run",
            "scenarios/qos0_delivery.toml",
            "--broker",
            "mosquitto",
        ])
        .env("MQTT_HIL_MOSQUITTO", "/nonexistent/mosquitto")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Debian package `mosquitto`"), "{stderr}");
}

/// The zero-install default: without mosquitto (and without asking for
/// Docker), `--broker auto` runs the embedded broker.
#[test]
fn without_mosquitto_the_default_broker_is_embedded() {
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["run", "scenarios/qos1_delivery.toml", "--out"])
        .arg(out.path())
        .env("MQTT_HIL_MOSQUITTO", "/nonexistent/mosquitto")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("against embedded"), "{stdout}");
    assert!(stdout.contains("PASS  qos1_delivery"), "{stdout}");
}

#[test]
fn a_scenario_timeout_fails_it_and_leaves_nothing_running() {
    let out = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let o = bin()
        .args(["run", "harness/tests/fixtures/cli/slow.toml", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("did not finish within its timeout of 1500ms"),
        "{stdout}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(25),
        "the timeout did not cut the 30s wait"
    );
    let left = processes_mentioning(&out.path().display().to_string());
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn ctrl_c_stops_the_run_and_leaves_nothing_running() {
    interrupt_midway("virtual", "mosquitto");
}

#[test]
fn ctrl_c_stops_an_emulated_board_too() {
    let elf = root().join("firmware/build/agent.elf");
    assert!(
        elf.is_file(),
        "{} is missing: run `make firmware`",
        elf.display()
    );
    interrupt_midway("qemu", "qemu-system-xtensa");
}

/// Starts a scenario that runs until interrupted on a target, waits until
/// `process` (started by the run) is up, sends SIGINT, and checks that
/// nothing is left. (Not slow.toml: its 1.5 s timeout can end a run on a
/// loaded machine before the signal comes.)
fn interrupt_midway(target: &str, process: &str) {
    let out = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args([
            "run",
            "harness/tests/fixtures/cli/until_interrupted.toml",
            "--target",
            target,
            "--out",
        ])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let needle = out.path().display().to_string();
    // Wait until the process is up, so there is something to clean up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_mentioning(&needle)
        .iter()
        .any(|p| p.contains(process))
    {
        assert!(Instant::now() < deadline, "{process} never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(200));
    let left = processes_mentioning(&needle);
    assert!(left.is_empty(), "left running after Ctrl-C: {left:?}");
}
