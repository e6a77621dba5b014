//! `mqtt-hil build` on sketch folders made here: the real xtensa compiler,
//! the real board support. What arduino-cli users rely on: `.ino` errors
//! point into the `.ino`, libraries are found by their headers in both
//! layouts, a missing one is named with where it was looked for, a sketch
//! too big for the ESP8266 says so, an unchanged sketch is not rebuilt, and
//! nothing is ever written into the sketch's folder.

use crate::sketch_util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mqtt_hil::sketch::{self, Request, Warnings};

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// Every file under `dir` with its bytes and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let m = e.metadata().unwrap().modified().unwrap();
                out.insert(p.clone(), (std::fs::read(&p).unwrap(), m));
            }
        }
    }
    out
}

fn req(sketch: &Path) -> Request {
    Request {
        sketch: sketch.to_path_buf(),
        warnings: Warnings::All,
        ..Request::default()
    }
}

fn build_err(r: &Request) -> String {
    match sketch::build(r, &sketch_util::env()) {
        Ok(b) => panic!("built {}, expected a failure", b.elf.display()),
        Err(e) => e.to_string(),
    }
}

const SKETCH: &str = "#include <ESP8266WiFi.h>\n#include <Feeds.h>\n#include \"local.h\"\n\
WiFiClient net;\n\
void setup() {\n  Serial.begin(115200);\n  report(feed_value());\n}\n\
void loop() { delay(10); }\n\
void report(int v) {\n  Serial.printf(\"value %d %d\\n\", v, LOCAL);\n}\n";

fn libraries(dir: &Path) {
    // Recursive layout (library.properties + src/, C in a subfolder) that
    // includes a flat-layout library with a utility/ folder.
    write(
        dir,
        &[
            ("Feeds/library.properties", "name=Feeds\nversion=1.2.3\narchitectures=*\n"),
            ("Feeds/src/Feeds.h", "#pragma once\n#include <OldHelper.h>\nint feed_value();\n"),
            ("Feeds/src/Feeds.cpp", "#include \"Feeds.h\"\n#include \"impl/calc.h\"\nint feed_value() { return calc(old_helper()); }\n"),
            ("Feeds/src/impl/calc.h", "#pragma once\n#ifdef __cplusplus\nextern \"C\"\n#endif\nint calc(int);\n"),
            ("Feeds/src/impl/calc.c", "#include \"calc.h\"\nint calc(int x) { return x * 2; }\n"),
            ("Feeds/examples/Demo/Demo.ino", "this is not compiled\n"),
            ("OldHelper/OldHelper.h", "#pragma once\nint old_helper();\n"),
            ("OldHelper/OldHelper.cpp", "#include \"OldHelper.h\"\n#include \"inner.h\"\nint old_helper() { return INNER; }\n"),
            ("OldHelper/utility/inner.h", "#define INNER 21\n"),
            ("OldHelper/utility/unused.c", "int unused_utility = 1;\n"),
        ],
    );
}

#[test]
fn a_sketch_with_libraries_builds_reuses_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sk = tmp.path().join("photo");
    write(
        &sk,
        &[("photo.ino", SKETCH), ("local.h", "#define LOCAL 7\n")],
    );
    libraries(&tmp.path().join("libs"));
    let before = snapshot(tmp.path());
    let mut r = req(&sk);
    r.libraries = vec![tmp.path().join("libs")];
    let b = sketch::build(&r, &sketch_util::env()).unwrap_or_else(|e| panic!("{e}"));
    assert!(b.messages.trim().is_empty(), "{}", b.messages);
    assert_eq!(b.libraries.len(), 2, "{:?}", b.libraries);
    assert!(
        b.libraries[0].starts_with("Feeds 1.2.3 ("),
        "{:?}",
        b.libraries
    );
    assert!(
        b.libraries[1].starts_with("OldHelper ("),
        "{:?}",
        b.libraries
    );
    let syms = Command::new("xtensa-lx106-elf-nm")
        .arg(&b.elf)
        .output()
        .unwrap();
    let syms = String::from_utf8_lossy(&syms.stdout);
    for s in ["feed_value", "calc", "old_helper", "report"] {
        assert!(syms.lines().any(|l| l.contains(s)), "{s} not linked");
    }
    assert!(
        b.sizes.flash > 10_000 && b.sizes.dram() < 81_920,
        "{:?}",
        b.sizes
    );
    // Unchanged: a lookup. Changed header: rebuilt.
    let again = sketch::build(&r, &sketch_util::env()).unwrap();
    assert!(again.cached);
    assert_eq!(again.elf, b.elf);
    assert_eq!(
        snapshot(tmp.path()),
        before,
        "the build wrote into the sketch or library folders"
    );
    write(&sk, &[("local.h", "#define LOCAL 8\n")]);
    let changed = sketch::build(&r, &sketch_util::env()).unwrap();
    assert!(!changed.cached);
    assert_ne!(changed.elf, b.elf);
}

#[test]
fn an_error_in_an_ino_points_at_the_ino() {
    let tmp = tempfile::tempdir().unwrap();
    let sk = tmp.path().join("broken");
    write(
        &sk,
        &[
            (
                "broken.ino",
                "void setup() {\n  helper();\n}\nvoid loop() {}\n",
            ),
            (
                "b_more.ino",
                "// second file\nvoid helper() {\n  int x = undefined_thing;\n}\n",
            ),
        ],
    );
    let e = build_err(&req(&sk));
    let want = format!(
        "{}:3:11: error: 'undefined_thing' was not declared",
        sk.join("b_more.ino").display()
    );
    assert!(e.contains(&want), "{e}");
    // Without generated prototypes the first file could not call helper().
    assert!(!e.contains("'helper' was not declared"), "{e}");
}

#[test]
fn a_missing_library_names_the_header_and_the_folders_searched() {
    let tmp = tempfile::tempdir().unwrap();
    let sk = tmp.path().join("needs");
    write(
        &sk,
        &[(
            "needs.ino",
            "#include <Arduino.h>\n\n#include <PubSubClient.h>\nvoid setup() {}\nvoid loop() {}\n",
        )],
    );
    libraries(&tmp.path().join("libs"));
    let mut r = req(&sk);
    r.libraries = vec![tmp.path().join("libs")];
    let e = build_err(&r);
    let at = format!(
        "{}:3:10: fatal error: PubSubClient.h: No such file or directory",
        sk.join("needs.ino").display()
    );
    assert!(e.contains(&at), "{e}");
    assert!(
        e.contains("`PubSubClient.h` is in neither the ESP8266 core"),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "--libraries {} (Feeds, OldHelper)",
            tmp.path().join("libs").display()
        )),
        "{e}"
    );
}

#[test]
fn a_sketch_too_big_for_the_esp8266_says_which_memory_overflowed() {
    let tmp = tempfile::tempdir().unwrap();
    let sk = tmp.path().join("huge");
    write(
        &sk,
        &[("huge.ino", "uint8_t buffer[70000];\nvoid setup() { buffer[millis() % sizeof(buffer)] = 1; Serial.println(buffer[micros() % sizeof(buffer)]); }\nvoid loop() {}\n")],
    );
    let e = build_err(&req(&sk));
    assert!(
        e.contains("the sketch does not fit the ESP8266: DRAM"),
        "{e}"
    );
}

#[test]
fn the_cli_reports_sizes_and_bad_input_exits_2() {
    let bin = env!("CARGO_BIN_EXE_mqtt-hil");
    let root = sketch_util::root();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cd.elf");
    let o = Command::new(bin)
        .arg("build")
        .arg(root.join("firmware/sketches/counter_device"))
        .arg("-o")
        .arg(&out)
        .env("MQTT_HIL_CACHE", root.join("target/mqtt-hil-cache"))
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("RAM (globals and constants):"), "{stdout}");
    assert!(stdout.contains("/ 983040 bytes"), "{stdout}");
    assert!(out.is_file());
    let o = Command::new(bin)
        .arg("build")
        .arg(tmp.path())
        .env("MQTT_HIL_CACHE", root.join("target/mqtt-hil-cache"))
        .current_dir(&root)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("a sketch's main file is named after its folder"),
        "{err}"
    );
}
