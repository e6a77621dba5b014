//! Devices that misbehave on the device lane, over real TCP through the
//! fault proxy: a black-box device (`[device] autonomous = true`) run as a
//! Linux program on `--target host`, which is told the lane's address in
//! `MQTT_HIL_BROKER` as every host build of a device's firmware is. The
//! program is a small bash script (bash's `/dev/tcp`): one that connects and
//! then stays silent, one that sends garbage (an HTTP request), one that
//! floods (PINGREQs instead of a CONNECT, without end), one that announces a 256 MB
//! packet and one that closes the connection at once.
//!
//! Every run must end by itself (the test's own guard is a generous tokio
//! timeout, never an assertion on timing) with exit status 1 and a FAIL
//! whose verdict line says what the device did.

use std::path::{Path, PathBuf};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Silent,
    Garbage,
    Flood,
    Huge,
    Close,
}

/// What the fake device does once its TCP connection is open (fd 3). It
/// never exits by itself: a program that ended would be a crashed board,
/// which is not the misbehaviour under test; it sleeps with `exec` so that
/// stopping the device stops the one process there is.
fn behaviour(mode: Mode) -> &'static str {
    match mode {
        Mode::Silent => "exec sleep 3600",
        Mode::Garbage => {
            "printf 'GET / HTTP/1.1\\r\\nHost: broker\\r\\n\\r\\n' >&3\nexec sleep 3600"
        }
        // PINGREQs instead of CONNECT, as fast as the connection takes
        // them, until it is closed.
        Mode::Flood => "while printf '\\xc0\\x00%.0s' {1..4096} >&3; do :; done\nexec sleep 3600",
        // A PUBLISH announcing 268,435,455 bytes, and 2 MiB of it.
        Mode::Huge => {
            "printf '\\x30\\xff\\xff\\xff\\x7f' >&3\n\
             head -c 2097152 /dev/zero >&3\n\
             exec sleep 3600"
        }
        Mode::Close => "exec 3>&-\nexec sleep 3600",
    }
}

fn fake_device(dir: &Path, mode: Mode) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("{mode:?}.sh").to_lowercase());
    let script = format!(
        "#!/bin/bash\n# a misbehaving device: {mode:?}\ntrap '' PIPE\n\
         exec 3<>\"/dev/tcp/${{MQTT_HIL_BROKER%:*}}/${{MQTT_HIL_BROKER##*:}}\" || exec sleep 3600\n{}\n",
        behaviour(mode)
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Two scenarios: one that waits for the device's CONNACK, one that waits
/// for its first reading once connected.
fn scenarios(dir: &Path) {
    std::fs::write(
        dir.join("connects.toml"),
        r#"name = "the device connects"
timeout = "8s"

[device]
autonomous = true

[[step]]
expect = "packet"
packet = "CONNACK"
dir = "to_client"
within = "3s"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("publishes.toml"),
        r#"name = "the device publishes a reading"
timeout = "8s"

[device]
autonomous = true

[[step]]
expect = "published"
topic = "devices/+/counter"
within = "3s"
"#,
    )
    .unwrap();
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run_with(mode: Mode) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let scenarios_dir = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios_dir).unwrap();
    scenarios(&scenarios_dir);
    let program = fake_device(dir.path(), mode);
    let out = dir.path().join("out");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1")
        .arg("run")
        .arg(&scenarios_dir)
        .args(["--broker", "mosquitto", "--target", "host", "--firmware"])
        .arg(&program)
        .arg("--out")
        .arg(&out)
        .kill_on_drop(true)
        .output();
    // The guard of this test, not a measurement: a run that hangs fails
    // here instead of holding CI.
    let o = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .unwrap_or_else(|_| panic!("mqtt-hil run with a {mode:?} device did not end"))
        .unwrap();
    Run {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The verdict line of a scenario and what follows it (the reason).
fn verdict<'a>(r: &'a Run, id: &str) -> &'a str {
    let at = r
        .stdout
        .find(&format!(" {id} "))
        .unwrap_or_else(|| panic!("no verdict for {id}:\n{}\n{}", r.stdout, r.stderr));
    let start = r.stdout[..at].rfind('\n').map_or(0, |i| i + 1);
    let rest = &r.stdout[start..];
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i)
        .find(|&i| !rest[i + 1..].starts_with(' '))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Both scenarios FAIL, the run exits 1, and each verdict says `says`.
fn assert_failed(r: &Run, says: &[&str]) {
    assert_eq!(r.code, Some(1), "exit status\n{}\n{}", r.stdout, r.stderr);
    for id in ["connects", "publishes"] {
        let v = verdict(r, id);
        assert!(v.starts_with("FAIL"), "{id}: expected FAIL:\n{v}");
        assert!(v.contains("not met within 3s"), "{id}: {v}");
        for s in says {
            assert!(v.contains(s), "{id}: expected `{s}` in:\n{v}");
        }
    }
}

#[tokio::test]
async fn a_device_that_stays_silent_after_connecting() {
    let r = run_with(Mode::Silent).await;
    assert_failed(&r, &["the device opened a connection and sent nothing"]);
}

#[tokio::test]
async fn a_device_that_sends_garbage() {
    let r = run_with(Mode::Garbage).await;
    assert_failed(
        &r,
        &[
            "the device opened a connection, sent",
            "that are not valid MQTT (47 45 54 20",
        ],
    );
}

#[tokio::test]
async fn a_device_that_floods() {
    let r = run_with(Mode::Flood).await;
    assert_failed(
        &r,
        &[
            "the device opened a connection, sent PINGREQ, PINGREQ, PINGREQ and",
            "more packet(s) before any CONNECT",
        ],
    );
}

#[tokio::test]
async fn a_device_that_announces_a_256_mb_packet() {
    let r = run_with(Mode::Huge).await;
    assert_failed(&r, &["announced at byte 0 as 268435460 bytes"]);
}

#[tokio::test]
async fn a_device_that_closes_at_once() {
    let r = run_with(Mode::Close).await;
    assert_failed(
        &r,
        &["the device opened a connection and sent nothing, then closed it"],
    );
}
