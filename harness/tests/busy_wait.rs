//! A sketch that never calls delay() and never leaves setup()
//! (firmware/sketches/busy_wait) must hear its broker by spinning on
//! `client.available()` and `client.connected()` alone, as PubSubClient's
//! connect() waits for its CONNACK: it gets its CONNACK and SUBACK,
//! echoes each message, disconnects on "stop" and sees the broker close
//! by spinning on `connected()` alone
//! (scenarios/sketches/busy_wait/echo.toml). Correctness, not a timing:
//! how fast is `cargo bench --bench board`'s business. ~15 s of QEMU.

use crate::sketch_util;

use std::path::PathBuf;

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::history::EventKind;
use mqtt_hil::runner::deviation::Deviations;
use mqtt_hil::runner::{self, RunConfig};
use mqtt_hil::target::{Firmware, TargetSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_sketch_gets_its_connack_and_messages_without_delay() {
    let path = sketch_util::root().join("scenarios/sketches/busy_wait/echo.toml");
    let s = mqtt_hil::scenario::load(&path).expect("scenario loads");
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        firmware: Firmware {
            image: Some(sketch_util::image("busy_wait", &[])),
            root: sketch_util::root(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            ..Firmware::default()
        },
        target: TargetSpec::Qemu,
        workdir: work.path().to_path_buf(),
        deviations: Deviations::default(),
    };
    let o = runner::run(&s, &cfg).await;
    let lines: Vec<&str> = o
        .history
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Uart { line } => Some(line.as_str()),
            _ => None,
        })
        .collect();
    let uart = lines.join("\n");
    let log: Vec<String> = o
        .history
        .events
        .iter()
        .map(mqtt_hil::report::describe::line)
        .collect();
    assert!(
        o.passed(),
        "{:?}\n{}\n--- history ---\n{}",
        o.status,
        o.failure_text(),
        log.join("\n")
    );
    // The sketch's own account: each wait ended by data, not by its
    // timeout, and the loop left setup() only at the end.
    let mut from = 0;
    for want in [
        "connack after ",
        "suback after ",
        "echoed 2",
        "broker closed",
        "BUSY DONE",
    ] {
        match lines[from..].iter().position(|l| l.contains(want)) {
            Some(i) => from += i + 1,
            None => panic!("no `{want}` after line {from} of the UART:\n{uart}"),
        }
    }
    assert!(!uart.contains("FAILED"), "{uart}");
}
