//! Brokers that misbehave, on 127.0.0.1 over real TCP, given to `mqtt-hil
//! run` as `--broker external:127.0.0.1:PORT`: one that never answers
//! CONNECT, one that answers it with garbage, one that floods, one that
//! announces a 256 MB packet, one that closes at once, and one that accepts
//! the connection but never acknowledges a subscription. Each answers the
//! harness's readiness probe properly (a CONNACK to `mqtt-hil-probe-*`),
//! as a broker that fails only some clients would, so the run gets past
//! set-up and meets the misbehaviour where a device or observer does.
//!
//! Every run must end by itself (the test's own guard is a generous tokio
//! timeout, never an assertion on timing) with exit status 1 and a verdict
//! per scenario that says what the broker did.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Reads CONNECT, answers nothing.
    Silent,
    /// Answers CONNECT with a CONNACK whose length is wrong.
    Garbage,
    /// Answers CONNECT with an endless stream of PINGRESPs.
    Flood,
    /// Announces a PUBLISH of 268,435,455 bytes and sends 2 MiB of it.
    Huge,
    /// Closes the connection as soon as CONNECT arrived.
    Close,
    /// A proper CONNACK, then nothing: no SUBACK, no PUBACK.
    NoAcks,
}

/// Reads one MQTT frame; returns its body (after the remaining length).
async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut first = [0u8; 1];
    s.read_exact(&mut first).await.ok()?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.ok()?;
        len |= ((b[0] & 0x7f) as usize) << shift;
        shift += 7;
        if b[0] & 0x80 == 0 || shift > 21 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// The client id in the body of a 3.1.1 CONNECT (protocol name, level,
/// flags and keep alive come first: 10 bytes of variable header).
fn client_id(body: &[u8]) -> String {
    let n = u16::from_be_bytes([body[10], body[11]]) as usize;
    String::from_utf8_lossy(&body[12..12 + n]).into_owned()
}

/// Reads and drops whatever comes, until the peer closes.
async fn drain(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn serve(mut s: TcpStream, mode: Mode) {
    let Some(connect) = read_frame(&mut s).await else {
        return;
    };
    if client_id(&connect).starts_with("mqtt-hil-probe-") {
        let _ = s.write_all(&[0x20, 0x02, 0x00, 0x00]).await;
        return drain(s).await;
    }
    match mode {
        Mode::Silent => drain(s).await,
        Mode::Garbage => {
            let _ = s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x2a]).await;
            drain(s).await
        }
        Mode::Flood => {
            let chunk = [0xd0u8, 0x00].repeat(4096);
            while s.write_all(&chunk).await.is_ok() {}
        }
        Mode::Huge => {
            let _ = s.write_all(&[0x30, 0xff, 0xff, 0xff, 0x7f]).await;
            let zeros = vec![0u8; 64 * 1024];
            for _ in 0..32 {
                if s.write_all(&zeros).await.is_err() {
                    return;
                }
            }
            drain(s).await
        }
        Mode::Close => drop(s),
        Mode::NoAcks => {
            let _ = s.write_all(&[0x20, 0x02, 0x00, 0x00]).await;
            drain(s).await
        }
    }
}

async fn fake_broker(mode: Mode) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, mode));
        }
    });
    port
}

/// Two scenarios: one whose observer connects before the first step, one
/// whose device connects in its first step and then subscribes.
fn scenarios() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("observer_first.toml"),
        r#"name = "an observer connects before the first step"
timeout = "6s"

[device]
client_id = "hostile-a"

[observer.cloud]

[[step]]
device = "connect"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("device_first.toml"),
        r#"name = "the device connects, subscribes and publishes"
timeout = "20s"

[device]
client_id = "hostile-b"

[[step]]
device = "connect"
timeout = "3s"

[[step]]
device = "subscribe"
filter = "a/b"
qos = 1
timeout = "3s"

[[step]]
device = "publish"
topic = "a/b"
payload = "x"
qos = 1
timeout = "3s"
"#,
    )
    .unwrap();
    dir
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run_against(mode: Mode) -> Run {
    let port = fake_broker(mode).await;
    let dir = scenarios();
    let out = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1")
        .arg("run")
        .arg(dir.path())
        .args(["--broker", &format!("external:127.0.0.1:{port}")])
        .args(["--target", "virtual", "--out"])
        .arg(out.path())
        .kill_on_drop(true)
        .output();
    // The guard of this test, not a measurement: a run that hangs fails
    // here instead of holding CI.
    let o = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .unwrap_or_else(|_| panic!("mqtt-hil run against a {mode:?} broker did not end"))
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

fn assert_verdict(r: &Run, id: &str, status: &str, says: &[&str]) {
    let v = verdict(r, id);
    assert!(v.starts_with(status), "{id}: expected {status}:\n{v}");
    for s in says {
        assert!(v.contains(s), "{id}: expected `{s}` in:\n{v}");
    }
}

fn assert_failed_run(r: &Run) {
    assert_eq!(r.code, Some(1), "exit status\n{}\n{}", r.stdout, r.stderr);
}

#[tokio::test]
async fn a_broker_that_never_answers_connect() {
    let r = run_against(Mode::Silent).await;
    assert_failed_run(&r);
    assert_verdict(
        &r,
        "observer_first",
        "ERROR",
        &[
            "observer cloud could not connect before the first step",
            "no CONNACK within",
            "the broker sent nothing",
        ],
    );
    assert_verdict(
        &r,
        "device_first",
        "FAIL",
        &["step 1", "no CONNACK within 3s", "the broker sent nothing"],
    );
}

#[tokio::test]
async fn a_broker_that_answers_connect_with_garbage() {
    let r = run_against(Mode::Garbage).await;
    assert_failed_run(&r);
    for id in ["observer_first", "device_first"] {
        let status = if id == "observer_first" {
            "ERROR"
        } else {
            "FAIL"
        };
        assert_verdict(
            &r,
            id,
            status,
            &[
                "could not connect",
                "not valid MQTT (20 03 00 00 2a)",
                "malformed CONNACK",
            ],
        );
    }
}

#[tokio::test]
async fn a_broker_that_floods_instead_of_connack() {
    let r = run_against(Mode::Flood).await;
    assert_failed_run(&r);
    assert_verdict(&r, "observer_first", "ERROR", &["PINGRESP"]);
    assert_verdict(&r, "device_first", "FAIL", &["step 1", "PINGRESP"]);
}

#[tokio::test]
async fn a_broker_that_announces_a_256_mb_packet() {
    let r = run_against(Mode::Huge).await;
    assert_failed_run(&r);
    for (id, status) in [("observer_first", "ERROR"), ("device_first", "FAIL")] {
        assert_verdict(
            &r,
            id,
            status,
            &[
                "no CONNACK within",
                "announced at byte 0 as 268435460 bytes",
            ],
        );
    }
}

#[tokio::test]
async fn a_broker_that_closes_at_once() {
    let r = run_against(Mode::Close).await;
    assert_failed_run(&r);
    for (id, status) in [("observer_first", "ERROR"), ("device_first", "FAIL")] {
        assert_verdict(
            &r,
            id,
            status,
            &["could not connect", "the broker closed the connection"],
        );
    }
}

#[tokio::test]
async fn a_broker_that_never_acknowledges() {
    let r = run_against(Mode::NoAcks).await;
    assert_failed_run(&r);
    // Connected: the observer's scenario has nothing else to wait for.
    assert_verdict(&r, "observer_first", "PASS", &[]);
    assert_verdict(
        &r,
        "device_first",
        "FAIL",
        &["step 2", "no SUBACK within 3s", "the broker sent nothing"],
    );
}
