//! `--repeat N` against a broker whose behaviour genuinely varies between
//! runs: a small fake MQTT 3.1.1 broker (this file) that routes QoS 0/1
//! messages correctly on odd scenario runs and, seeded to misbehave,
//! swallows every message of the device on even ones. It counts runs by
//! the device's connections (one per run of qos1_delivery), so the
//! variation follows the runs, not the clock. Shown: `run --repeat 2`
//! reports FLAKY with the differing rules in the terminal, JUnit
//! (`<flakyFailure>` as nextest writes it), the JSON events and the HTML
//! index, and exits 1;
//! `matrix --repeat 2` shows a FLAKY cell; a well-behaved broker
//! (mosquitto) is stable under the same repeat.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mqtt_hil::mqtt::codec::{self, Decoder};
use mqtt_hil::mqtt::{Ack, ConnAck, Packet, Publish, QoS, SubAck, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

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

/// qos1_delivery's device: its messages are the ones lost on even runs.
const DEVICE: &str = "dut-q1";

#[derive(Default)]
struct State {
    /// Scenario runs so far: the device's connections seen.
    runs: AtomicUsize,
    /// Subscriptions: (filter, granted QoS, the subscriber's outbox).
    subs: Mutex<Vec<(String, QoS, mpsc::UnboundedSender<Packet>)>>,
}

/// The fake broker on 127.0.0.1, on its own thread; it lives as long as
/// the test process (the test's end ends it).
fn fake_broker() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            let state = Arc::new(State::default());
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(connection(s, state.clone()));
            }
        });
    });
    port
}

async fn connection(s: tokio::net::TcpStream, state: Arc<State>) {
    let (mut rd, mut wr) = s.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Packet>();
    let writer = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            let bytes = codec::encode(&p, Version::V311).unwrap();
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut dec = Decoder::new(Version::V311);
    let mut buf = [0u8; 4096];
    let mut next_pid = 0u16;
    // Whether this is the device's connection in an even (misbehaving) run.
    let mut seeded_bug = false;
    'conn: loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        dec.feed(&buf[..n]);
        while let Ok(Some((_, packet))) = dec.next_frame() {
            let Ok(packet) = packet else { break 'conn };
            match packet {
                Packet::Connect(c) => {
                    // A run is the device's connection (once per run of
                    // qos1_delivery); readiness probes are no measure, as
                    // the harness also probes an external broker once
                    // before the whole run.
                    if c.client_id == DEVICE {
                        let run = state.runs.fetch_add(1, Ordering::SeqCst) + 1;
                        seeded_bug = run.is_multiple_of(2);
                    }
                    let _ = tx.send(Packet::ConnAck(ConnAck {
                        session_present: false,
                        code: 0,
                        properties: Default::default(),
                    }));
                }
                Packet::Subscribe(s) => {
                    let mut codes = Vec::new();
                    for f in &s.filters {
                        let q = if f.qos == QoS::ExactlyOnce {
                            QoS::AtLeastOnce
                        } else {
                            f.qos
                        };
                        state
                            .subs
                            .lock()
                            .unwrap()
                            .push((f.filter.clone(), q, tx.clone()));
                        codes.push(q.as_u8());
                    }
                    let _ = tx.send(Packet::SubAck(SubAck {
                        pid: s.pid,
                        codes,
                        properties: Default::default(),
                    }));
                }
                Packet::Publish(p) => {
                    if let Some(pid) = p.pid {
                        let _ = tx.send(Packet::PubAck(Ack::new(pid)));
                    }
                    // The seeded bug: on even runs the device's messages go nowhere.
                    if seeded_bug {
                        continue;
                    }
                    let subs = state.subs.lock().unwrap();
                    for (filter, granted, out) in subs.iter() {
                        if !mqtt_hil::mqtt::topic::matches(filter, &p.topic) {
                            continue;
                        }
                        let qos = if p.qos.as_u8() <= granted.as_u8() {
                            p.qos
                        } else {
                            *granted
                        };
                        next_pid = next_pid % 60000 + 1;
                        let _ = out.send(Packet::Publish(Publish {
                            dup: false,
                            qos,
                            retain: false,
                            topic: p.topic.clone(),
                            pid: (qos != QoS::AtMostOnce).then_some(next_pid),
                            payload: p.payload.clone(),
                            properties: Default::default(),
                        }));
                    }
                }
                Packet::PingReq => {
                    let _ = tx.send(Packet::PingResp);
                }
                Packet::Disconnect(_) => break 'conn,
                _ => {}
            }
        }
    }
    // Its subscriptions end with it (clean sessions only here).
    state
        .subs
        .lock()
        .unwrap()
        .retain(|(_, _, out)| !out.same_channel(&tx));
    drop(tx);
    let _ = writer.await;
}

#[test]
fn a_verdict_that_varies_between_runs_is_flaky_everywhere_it_is_reported() {
    let port = fake_broker();
    let broker = format!("external:127.0.0.1:{port}");
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml");
    let o = bin()
        .args([
            "run",
            "scenarios/qos1_delivery.toml",
            "--repeat",
            "2",
            "--broker",
            &broker,
            "--format",
            "json",
            "--junit",
        ])
        .arg(&junit)
        .arg("--report")
        .arg(out.path().join("report"))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");

    // The terminal (stderr under --format json): each run, then FLAKY.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("PASS  qos1_delivery [run 1/2]"), "{stderr}");
    assert!(stderr.contains("FAIL  qos1_delivery [run 2/2]"), "{stderr}");
    let flaky = stderr
        .lines()
        .find(|l| l.starts_with("FLAKY"))
        .unwrap_or_else(|| panic!("no FLAKY line: {stderr}"));
    assert!(flaky.contains("qos1_delivery"), "{flaky}");
    assert!(flaky.contains("2 runs: 1 PASS, 1 FAIL ["), "{flaky}");
    assert!(stderr.contains("differing rules: "), "{stderr}");
    assert!(stderr.contains("step 5"), "{stderr}");
    assert!(stderr.contains("1 scenario(s) FLAKY"), "{stderr}");
    assert!(stderr.contains("0 passed, 1 failed"), "{stderr}");

    // JSON: a scenario_repeated event naming the differing rules.
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rep = events
        .iter()
        .find(|e| e["type"] == "scenario_repeated")
        .unwrap_or_else(|| panic!("no scenario_repeated: {events:?}"));
    assert_eq!(rep["flaky"], true, "{rep}");
    assert_eq!(rep["runs"][0]["status"], "passed", "{rep}");
    assert_eq!(rep["runs"][1]["status"], "failed", "{rep}");
    let differing: Vec<&str> = rep["differing_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(differing.contains(&"step 5"), "{rep}");
    let attempts: Vec<u64> = events
        .iter()
        .filter(|e| e["type"] == "scenario_finished")
        .map(|e| e["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2]);
    let fin = events.iter().find(|e| e["type"] == "run_finished").unwrap();
    assert_eq!(fin["flaky"], 1, "{fin}");

    // JUnit: one case, failed as FLAKY, the failing run as a flakyFailure.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 1, "{xml}");
    assert!(
        xml.contains(r#"<failure message="FLAKY: 2 runs: 1 PASS, 1 FAIL ["#),
        "{xml}"
    );
    assert!(xml.contains(r#"type="flaky""#), "{xml}");
    assert_eq!(xml.matches("<flakyFailure ").count(), 1, "{xml}");
    assert!(xml.contains(r#"message="run 2: step 5"#), "{xml}");
    // The HTML index marks both runs FLAKY, each linking its own page.
    let html = std::fs::read_to_string(out.path().join("report/index.html")).unwrap();
    assert_eq!(html.matches(">FLAKY</td>").count(), 2, "{html}");
    assert!(html.contains("qos1_delivery (run 2/2)"), "{html}");
    assert!(out.path().join("report/qos1_delivery.run2.html").is_file());
    // Each run keeps its own trace file.
    assert!(out.path().join("traces/qos1_delivery.trace").is_file());
    assert!(out.path().join("traces/qos1_delivery.run2.trace").is_file());

    // The matrix: a FLAKY cell with each run's verdict and the rules.
    let mout = tempfile::tempdir().unwrap();
    let o = bin()
        .args([
            "matrix",
            "scenarios/qos1_delivery.toml",
            "--repeat",
            "2",
            "--brokers",
            &format!("mosquitto,{broker}"),
            "--out",
        ])
        .arg(mout.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mout.path().join("matrix.json")).unwrap())
            .unwrap();
    let cell = |b: &str| {
        m["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["broker"] == b)
            .unwrap()
            .clone()
    };
    // mosquitto agrees with itself; the seeded broker does not.
    assert_eq!(cell("mosquitto")["verdict"], "pass", "{m}");
    assert_eq!(
        cell("mosquitto")["runs"],
        serde_json::json!(["PASS", "PASS"]),
        "{m}"
    );
    let fake = cell(&broker);
    assert_eq!(fake["verdict"], "flaky", "{m}");
    assert_eq!(fake["runs"][0], "PASS", "{m}");
    assert!(
        fake["runs"][1].as_str().unwrap().starts_with("FAIL ["),
        "{m}"
    );
    assert!(
        fake["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "step 5"),
        "{m}"
    );
    assert!(t.contains("FLAKY"), "{t}");
    let md = std::fs::read_to_string(mout.path().join("matrix.md")).unwrap();
    assert!(md.contains("| qos1_delivery | PASS | FLAKY |"), "{md}");
}
