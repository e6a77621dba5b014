//! Every integration test, in one test binary: one crate to compile and link
//! instead of one per file, which made up most of a cold build's test
//! binaries and of every rebuild after a library change. Each file of
//! `tests/` is a module of it; `cargo nextest run -E 'test(/^FILE::/)'`
//! (or `cargo test --test it FILE::`) runs one file's tests.

mod check_util;
mod sketch_util;

mod arduino_api;
mod black_box;
mod busy_wait;
mod check_connections;
mod check_exactly_once;
mod check_fixtures;
mod check_incremental;
mod check_peers;
mod check_protocol;
mod check_routing;
mod check_session;
mod check_traffic;
mod check_will;
mod cli;
mod cli_reports;
mod codec_errors;
mod codec_fixtures;
mod codec_proptest;
mod containers;
mod coverage;
mod device_loader;
mod device_suite;
mod external_broker;
mod firmware;
mod flash_e2e;
mod hostile_broker;
mod hostile_device;
mod images;
mod matrix;
mod matrix_diff;
mod network;
mod observe;
mod observe_live;
mod parallel;
mod proxy;
mod proxy_mosquitto;
mod repeat;
mod report_pcap;
mod scenario_loader;
mod scenario_loader_black_box;
mod scenario_loader_rules;
mod scenario_loader_v5;
mod scenarios;
mod scenarios_v5;
mod serial_bench;
mod setup_errors;
mod signals;
mod sketch_build;
mod sketches;
mod toml_file_errors;
mod watchdog;

/// With `autotests = false`, a file added to `tests/` runs only once it is
/// declared above; a forgotten one would be a test that silently never runs.
#[test]
fn every_file_in_tests_is_a_module_of_this_binary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let root = std::fs::read_to_string(dir.join("it.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let is_module = if path.is_dir() {
            path.join("mod.rs").exists()
        } else {
            path.extension().is_some_and(|e| e == "rs") && name != "it"
        };
        if is_module && !root.lines().any(|l| l == format!("mod {name};")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "tests/{missing:?} not declared in tests/it.rs (`mod NAME;`), so they never run"
    );
}
