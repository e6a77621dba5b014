//! The ESP8266's hardware watchdog on the emulated board, as a user sees
//! it through the harness: firmware/sketches/wdt_reset built with
//! `-D WDT_RESET_HW=1` runs as a black-box device under the scenario
//! scenarios/sketches/wdt_reset/hw_watchdog.toml (which waits for two
//! `watchdog reset (hw WDT)` board events), and the recorded history must
//! show each phase of the sketch, the ROM's reset cause, the reason
//! `ESP.getResetReason()` gives afterwards, and a `no_watchdog_reset`
//! check that fails on it. ~25 s of QEMU (two 8 s watchdog periods and
//! a 5 s masked stretch).

use crate::sketch_util;

use std::path::PathBuf;

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::check::watchdog::NoWatchdogResetChecker;
use mqtt_hil::check::Checker;
use mqtt_hil::history::EventKind;
use mqtt_hil::runner::deviation::Deviations;
use mqtt_hil::runner::{self, RunConfig};
use mqtt_hil::target::{Firmware, TargetSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_interrupts_are_reset_by_the_hardware_watchdog() {
    let path = sketch_util::root().join("scenarios/sketches/wdt_reset/hw_watchdog.toml");
    let s = mqtt_hil::scenario::load(&path).expect("scenario loads");
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        firmware: Firmware {
            image: Some(sketch_util::image("wdt_reset", &["WDT_RESET_HW=1".into()])),
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
    assert!(
        o.passed(),
        "{:?}\n{}\n--- UART ---\n{uart}",
        o.status,
        o.failure_text()
    );
    // The sketch's phases in order: 5 s masked survives (longer than the
    // soft watchdog's 3.2 s, which cannot fire with interrupts masked), a
    // masked spin is reset, the ROM names cause 4, the core the reason;
    // then the soft watchdog stopped and a spin: reset again.
    let order = [
        "reason: Power On",
        "masked 5 s: not reset",
        "mask and spin",
        "rst cause:4, boot mode:(3,6)",
        "wdt reset",
        "reason: Hardware Watchdog",
        "info: Fatal exception:4 flag:1 (Hardware Watchdog) epc1:0x4",
        "hardware watchdog resets: 1",
        "soft WDT off, spin",
        "rst cause:4, boot mode:(3,6)",
        "reason: Hardware Watchdog",
        "hardware watchdog resets: 2",
        "WDT DONE",
    ];
    let mut from = 0;
    for want in order {
        match lines[from..].iter().position(|l| l.contains(want)) {
            Some(i) => from += i + 1,
            None => panic!("no `{want}` after line {from} of the UART:\n{uart}"),
        }
    }
    assert!(
        !uart.contains("Soft WDT reset"),
        "the soft watchdog fired where only the hardware one may:\n{uart}"
    );
    let boards: Vec<&str> = o
        .history
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Board { what } if what.starts_with("watchdog") => Some(what.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        boards,
        ["watchdog reset (hw WDT)", "watchdog reset (hw WDT)"],
        "{uart}"
    );
    // A scenario that must not see one fails on this history.
    let v = NoWatchdogResetChecker.check(&o.history);
    assert_eq!(v.rules(), ["watchdog-reset", "watchdog-reset"], "{v:?}");
}
