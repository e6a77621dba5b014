//! The reports of `mqtt-hil run` as a user gets them from real runs against
//! mosquitto: the JSON event stream, JUnit failures that quote the events,
//! the HTML report and the pcapng captures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1")
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const ROGUE: &str = "harness/tests/fixtures/cli/pid_reuse.toml";

#[test]
fn format_json_writes_one_object_per_line_with_the_documented_fields() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "scenarios/qos1_delivery.toml",
            ROGUE,
            "--format",
            "json",
            "-v",
        ],
        out.path(),
    );
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{}", text(&o.stderr));
    // Every line of stdout is JSON; the human lines went to stderr.
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(text(&o.stderr).contains("FAIL  pid_reuse"));
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"run_started"));
    assert_eq!(types.last(), Some(&"run_finished"));
    let start = &lines[0];
    assert_eq!(start["format_version"], 1);
    assert_eq!(start["count"], 2);
    assert_eq!(start["brokers"], serde_json::json!(["mosquitto"]));
    assert_eq!(start["target"], "virtual");

    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "scenario_finished")
        .collect();
    assert_eq!(finished.len(), 2);
    let pass = finished[0];
    assert_eq!(pass["id"], "qos1_delivery");
    assert_eq!(pass["broker"], "mosquitto");
    assert_eq!(pass["status"], "passed");
    assert!(pass["duration_secs"].as_f64().unwrap() > 0.0);
    assert!(pass["trace"].as_str().unwrap().contains("PUBLISH"));
    let fail = finished[1];
    assert_eq!(fail["status"], "failed");
    assert_eq!(fail["index"], 1);
    let protocol = fail["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["checker"] == "protocol" && v["ok"] == false)
        .expect("a failed protocol verdict");
    let violation = &protocol["violations"][0];
    assert_eq!(violation["rule"], "MQTT-2.3.1-2");
    // The offending events are quoted, not just numbered.
    let evs = violation["events"].as_array().unwrap();
    assert_eq!(evs.len(), 2, "{violation}");
    assert!(evs[1]["text"]
        .as_str()
        .unwrap()
        .contains("PUBLISH 5 q2 r/b \"two\""));
    assert!(evs[1]["seq"].as_u64().unwrap() > evs[0]["seq"].as_u64().unwrap());

    // -v streams history events, tagged with the scenario's index.
    let live: Vec<&Value> = lines.iter().filter(|l| l["type"] == "event").collect();
    assert!(live
        .iter()
        .any(|e| e["index"] == 1 && e["text"].as_str().unwrap().contains("drop 1st PUBACK")));
    assert!(live
        .iter()
        .all(|e| e["at_secs"].is_f64() && e["seq"].is_u64()));
    assert!(live
        .iter()
        .any(|e| e["kind"] == "packet" && e["actor"] == "rogue"));
    assert!(live
        .iter()
        .any(|e| e["kind"] == "fault" && e["actor"].is_null()));

    let end = lines.last().unwrap();
    assert_eq!(end["passed"], 1);
    assert_eq!(end["failed"], 1);
    assert_eq!(end["exit_code"], 1);
}

#[test]
fn junit_failures_quote_the_verdict_and_the_offending_events() {
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml");
    let o = run(&[ROGUE, "--junit", junit.to_str().unwrap()], out.path());
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite name=\"mosquitto\""), "{xml}");
    assert!(
        xml.contains("<failure message=\"protocol [MQTT-2.3.1-2]: rogue sent a new PUBLISH"),
        "{xml}"
    );
    let quoted = xml
        .split("offending events:")
        .nth(1)
        .expect("the offending events are quoted");
    assert!(
        quoted.contains("rogue    c1 -&gt; PUBLISH 5 q2 r/b &quot;one&quot;"),
        "{xml}"
    );
    assert!(
        quoted.contains("rogue    c1 -&gt; PUBLISH 5 q2 r/b &quot;two&quot;"),
        "{xml}"
    );
}

/// A tool the test needs, or a failure naming the Debian package (the
/// Makefile's `test-deps` installs them).
fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|f| f.is_file())
        })
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: install the Debian package `{package}` (make test-deps)")
        })
}

/// Opens `page` in headless Chromium: the console messages it logged and
/// a screenshot of the first 1400×1400 pixels.
fn chromium(page: &Path, shot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new(tool("chromium", "chromium"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,1400",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "chromium failed: {}", text(&o.stderr));
    text(&o.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pixels of the screenshot whose colour is within 40 of `rgb`.
fn pixels_like(png_path: &Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3, "{:?}", info.color_type);
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| (0..3).all(|i| (p[i] as i32 - rgb[i] as i32).abs() <= 40))
        .count()
}

#[test]
fn the_html_report_opens_in_chromium_and_shows_the_diagram_with_the_violation_in_red() {
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("report");
    let o = run(
        &[
            ROGUE,
            "scenarios/qos1_delivery.toml",
            "--report",
            report.to_str().unwrap(),
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains(&format!("report: {}", report.join("index.html").display())));

    let index = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(
        index.contains("<a href=\"pid_reuse.html\">pid_reuse</a>"),
        "{index}"
    );
    assert!(index.contains("<a href=\"qos1_delivery.html\">"), "{index}");
    let page_path = report.join("pid_reuse.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    // Static and self-contained: nothing to fetch, nothing to run.
    for html in [&index, &page] {
        assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
        let external = html
            .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
            .contains("http");
        assert!(!external, "an external reference");
    }
    assert!(page.contains("<svg"), "{page}");
    assert!(page.contains("MQTT-2.3.1-2"));
    assert!(page.contains("<h2>Normalized trace</h2>"));

    let shot = out.path().join("page.png");
    let console = chromium(&page_path, &shot);
    assert!(console.is_empty(), "the page logged: {console}");
    // The diagram's arrows (#223355) and the violation in red (#dd1100)
    // are on screen, not just in the file: far more red than on the page
    // of the passing scenario (whose only red is the legend's).
    let arrows = pixels_like(&shot, [0x22, 0x33, 0x55]);
    let red = pixels_like(&shot, [0xdd, 0x11, 0x00]);
    assert!(
        arrows > 2000,
        "only {arrows} arrow-coloured pixels: no diagram?"
    );
    let passing = out.path().join("passing.png");
    let console = chromium(&report.join("qos1_delivery.html"), &passing);
    assert!(console.is_empty(), "the page logged: {console}");
    let red_passing = pixels_like(&passing, [0xdd, 0x11, 0x00]);
    assert!(pixels_like(&passing, [0x22, 0x33, 0x55]) > 2000);
    assert!(
        red > red_passing + 300,
        "{red} red pixels against {red_passing} on a passing page: the violation is not highlighted"
    );

    let console = chromium(&report.join("index.html"), &out.path().join("index.png"));
    assert!(console.is_empty(), "the index logged: {console}");
}

/// tshark's view of a capture: `-T fields` of `fields`, frames matching
/// `filter`, one Vec per frame.
fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new(tool("tshark", "tshark"));
    cmd.arg("-r").arg(file).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "tshark: {}", text(&o.stderr));
    text(&o.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn pcaps_decode_in_tshark_as_the_recorded_mqtt_packets() {
    let out = tempfile::tempdir().unwrap();
    let pcap = out.path().join("pcap");
    // -v --format json: the live history, our independent record of what
    // crossed the proxy.
    let o = run(
        &[
            ROGUE,
            "scenarios/qos2_out_cut_after_pubrec.toml",
            "--format",
            "json",
            "-v",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let events: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &Value| l["type"] == "event")
        .collect();
    let packet = regex::Regex::new(r"^\S+ +c\d+ (->|<-) ([A-Z]+)").unwrap();
    for (index, id) in [(0, "pid_reuse"), (1, "qos2_out_cut_after_pubrec")] {
        let file = pcap.join(format!("{id}.pcapng"));
        // Every packet a sender put on the wire (a release by the proxy is
        // not a new send), in order.
        let expected: Vec<String> = events
            .iter()
            .filter(|e| e["index"] == index)
            .filter_map(|e| {
                let t = e["text"].as_str().unwrap();
                let c = packet.captures(t)?;
                (!t.contains("[released by proxy]")).then(|| c[2].to_string())
            })
            .collect();
        assert!(expected.len() > 10, "{expected:?}");
        // One pass over every frame; the columns are these fields.
        let frames = tshark(
            &file,
            "frame",
            &[
                "mqtt.msgtype",
                "frame.comment",
                "ip.src",
                "ip.dst",
                "tcp.dstport",
                "tcp.flags.syn",
                "tcp.flags.ack",
                "tcp.flags.reset",
            ],
        );
        let names = [
            "",
            "CONNECT",
            "CONNACK",
            "PUBLISH",
            "PUBACK",
            "PUBREC",
            "PUBREL",
            "PUBCOMP",
            "SUBSCRIBE",
            "SUBACK",
            "UNSUBSCRIBE",
            "UNSUBACK",
            "PINGREQ",
            "PINGRESP",
            "DISCONNECT",
            "AUTH",
        ];
        let decoded: Vec<&Vec<String>> = frames.iter().filter(|f| !f[0].is_empty()).collect();
        let got: Vec<String> = decoded
            .iter()
            .map(|f| names[f[0].parse::<usize>().unwrap_or_else(|_| panic!("{f:?}"))].to_string())
            .collect();
        assert_eq!(got, expected, "{id}: tshark decoded {decoded:?}");
        // No malformed packet, no TCP anomaly (lost segment, bad ack, ...).
        let anomalies = tshark(
            &file,
            "_ws.malformed || tcp.analysis.flags",
            &["frame.number"],
        );
        assert!(anomalies.is_empty(), "{id}: {anomalies:?}");
        // Stable addresses per role: every connection opens towards the
        // broker's address and port, from the device's or an observer's.
        let syns: Vec<&Vec<String>> = frames
            .iter()
            .filter(|f| f[5] == "1" && f[6] == "0")
            .collect();
        assert!(
            syns.iter().all(|f| f[3] == "10.0.0.1" && f[4] == "1883"),
            "{syns:?}"
        );
        assert!(syns.iter().any(|f| f[2] == "10.0.0.2"), "{syns:?}");
        assert!(syns.iter().any(|f| f[2] == "10.0.0.10"), "{syns:?}");
        // What the proxy did is in the frame comments; a sever is a RST.
        let dropped: Vec<&str> = frames
            .iter()
            .filter(|f| f[1].contains("dropped by the proxy"))
            .map(|f| f[0].as_str())
            .collect();
        let resets: Vec<&str> = frames
            .iter()
            .filter(|f| f[7] == "1")
            .map(|f| f[1].as_str())
            .collect();
        if id == "pid_reuse" {
            assert_eq!(dropped, ["4"], "the device's dropped PUBACK");
            assert!(resets.is_empty(), "{resets:?}");
        } else {
            assert_eq!(dropped, ["6"], "the device's dropped PUBREL");
            assert_eq!(resets.len(), 1, "{resets:?}");
            assert!(resets[0].contains("severed (RST)"), "{resets:?}");
        }
    }
}

/// Runs mqtt-hil under a pseudo-terminal (util-linux `script`, in Debian's
/// essential bsdutils) and returns what the terminal showed.
fn on_a_terminal(args: &str, ci: bool) -> String {
    let out = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} run {args} --out {}",
        env!("CARGO_BIN_EXE_mqtt-hil"),
        out.path().display()
    );
    let mut c = Command::new("script");
    c.current_dir(root()).args(["-qfec", &cmd, "/dev/null"]);
    // One scenario at a time: this test is about the bar, not -j.
    c.env("MQTT_HIL_JOBS", "1");
    if ci {
        c.env("CI", "true");
    } else {
        c.env_remove("CI");
    }
    let o = c.output().unwrap();
    text(&o.stdout)
}

#[test]
fn the_progress_bar_shows_on_a_terminal_but_not_in_ci_nor_in_a_pipe() {
    let two = "scenarios/qos0_delivery.toml scenarios/qos1_delivery.toml";
    let tty = on_a_terminal(two, false);
    assert!(tty.contains("] 0/2"), "no bar on a terminal: {tty:?}");
    assert!(tty.contains("] 1/2 qos1_delivery"), "{tty:?}");
    // The scenario lines are whole lines, not mixed into the bar's.
    assert!(tty.contains("\x1b[2KPASS  qos0_delivery "), "{tty:?}");
    assert!(tty.contains("2 passed, 0 failed"), "{tty:?}");

    let ci = on_a_terminal(two, true);
    assert!(ci.contains("2 passed, 0 failed"), "{ci:?}");
    assert!(
        !ci.contains("0/2") && !ci.contains('\x1b'),
        "a bar in CI: {ci:?}"
    );

    let out = tempfile::tempdir().unwrap();
    let piped = run(&two.split(' ').collect::<Vec<_>>(), out.path());
    let all = text(&piped.stdout) + &text(&piped.stderr);
    assert!(all.contains("2 passed, 0 failed"), "{all}");
    assert!(
        !all.contains("0/2") && !all.contains('\x1b'),
        "a bar in a pipe: {all:?}"
    );
}

#[test]
fn verbose_streams_the_emulated_boards_uart_and_the_packets_while_it_runs() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &["scenarios/qos0_delivery.toml", "--target", "qemu", "-v"],
        out.path(),
    );
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{}", text(&o.stderr));
    let pos = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in {stdout}"))
    };
    // In order: the scenario starts, the board boots and prints on its
    // UART, the device's packets cross the proxy, then the verdict.
    let start = pos("START qos0_delivery");
    let uart = pos("uart     | [board] mqtt-hil emulated ESP8266");
    let connect = pos("device   c2 -> CONNECT v4");
    let verdict = pos("PASS  qos0_delivery");
    assert!(
        start < uart && uart < connect && connect < verdict,
        "{stdout}"
    );
}

#[test]
fn verbose_shows_every_packet_pings_and_held_ones_included() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &["harness/tests/fixtures/cli/pings_and_held.toml", "-v"],
        out.path(),
    );
    let stdout = text(&o.stdout);
    for needle in [
        "device   c1 -> PINGREQ\n",
        "device   c1 <- PINGRESP\n",
        "device   c1 -> PINGREQ [held by proxy]",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in {stdout}");
    }
    // The trace folds them, one line for the connection.
    let trace = std::fs::read_to_string(out.path().join("traces/pings_and_held.trace")).unwrap();
    assert!(
        trace.contains("#1 keep alive: PINGREQ/PINGRESP, PINGREQ held by proxy"),
        "{trace}"
    );
}

#[test]
fn a_report_folder_that_cannot_be_made_fails_before_anything_runs() {
    let out = tempfile::tempdir().unwrap();
    let blocker = out.path().join("file");
    std::fs::write(&blocker, "not a folder").unwrap();
    for flag in ["--report", "--pcap"] {
        let target = blocker.join("sub");
        let o = run(
            &[
                "scenarios/qos0_delivery.toml",
                flag,
                target.to_str().unwrap(),
            ],
            out.path(),
        );
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("error: creating {}", target.display())),
            "{stderr}"
        );
        // Nothing ran.
        assert!(
            !text(&o.stdout).contains("qos0_delivery"),
            "{}",
            text(&o.stdout)
        );
    }
}

#[test]
fn a_broken_environment_stops_the_json_stream_without_run_finished() {
    let out = tempfile::tempdir().unwrap();
    // A broker that cannot start is caught before the run (setup_errors.rs);
    // a black-box device whose program is missing is found by the first
    // scenario that starts it.
    let o = Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1")
        .args([
            "run",
            "scenarios/black_box/reconnect_after_network_loss.toml",
            "scenarios/black_box/readings_survive_outage.toml",
            "--format",
            "json",
            "--broker",
            "embedded",
            "--target",
            "host",
            "--firmware",
            "/nonexistent/device",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/device"), "{stderr}");
    let lines: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    // The first scenario errs and nothing after it runs or is summed up.
    assert_eq!(
        types,
        ["run_started", "scenario_started", "scenario_finished"]
    );
    assert_eq!(lines[2]["status"], "error");
    assert!(lines[2]["reason"].as_str().unwrap().contains("hint:"));
}
