//! The emulated board's own network (docs/network.md) in scenarios:
//! `ip`, `wifi`, `dns` and `dhcp` steps on real firmware under QEMU —
//! the test agent (scenarios/network/*.toml), the black-box counter device
//! (scenarios/network/counter_device/) and the photocell_feeds sketch
//! (scenarios/network/photocell_feeds/) — each passing with its reviewed
//! trace; the counter device's seeded `split_publish` bug caught by the
//! `mss` scenario and by nothing without it; the real frames in the pcap;
//! the steps refused where the target cannot carry them out, and skipped
//! (never faked) under `--net slirp`; the same faults on `observe`'s stdin.

use crate::sketch_util;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::history::{EventKind, FrameFate};
use mqtt_hil::runner::deviation::{self, Deviations};
use mqtt_hil::runner::{self, Outcome, RunConfig, Status};
use mqtt_hil::target::{Firmware, TargetSpec};
use rstest::rstest;

fn root() -> PathBuf {
    sketch_util::root()
}

fn agent() -> PathBuf {
    let p = root().join("firmware/build/agent.elf");
    assert!(
        p.is_file(),
        "{} is missing: run `make firmware` first",
        p.display()
    );
    p
}

async fn run_on(scenario: &Path, image: PathBuf, net: mqtt_hil::net::Options) -> Outcome {
    let s = mqtt_hil::scenario::load(scenario).expect("scenario loads");
    let work = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        firmware: Firmware {
            image: Some(image),
            root: root(),
            splice: PathBuf::from(env!("CARGO_BIN_EXE_mqtt-hil")),
            boot_timeout: None,
            bench: None,
            net,
        },
        target: TargetSpec::Qemu,
        workdir: work.path().to_path_buf(),
        deviations: Deviations::default(),
    };
    runner::run(&s, &cfg).await
}

fn explain(o: &Outcome, path: &Path) -> String {
    let s = mqtt_hil::scenario::load(path).unwrap();
    format!(
        "{:?}\n{}\n--- trace ---\n{}",
        o.status,
        o.failure_text(),
        mqtt_hil::trace::render_scenario(&s, &o.history)
    )
}

/// Passes, and its trace is the reviewed one (scenarios/network/snapshots).
fn assert_passes_as_reviewed(path: &Path, o: &Outcome) {
    assert!(o.passed(), "{}", explain(o, path));
    let s = mqtt_hil::scenario::load(path).unwrap();
    let trace = mqtt_hil::trace::render_scenario(&s, &o.history);
    insta::with_settings!({
        snapshot_path => root().join("scenarios/network/snapshots"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
        description => s.name.clone(),
    }, {
        let snap = root().join(format!("scenarios/network/snapshots/{}.snap", s.id));
        insta::assert_snapshot!(s.id.clone(), mqtt_hil::trace::crossing::as_reviewed(trace, &snap));
    });
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_on_the_owned_network(#[files("../scenarios/network/*.toml")] path: PathBuf) {
    let o = run_on(&path, agent(), Default::default()).await;
    assert_passes_as_reviewed(&path, &o);
    match o.id.as_str() {
        "one_byte_segments" => pcap_carries_the_real_one_byte_segments(&o),
        // The loss really happened, below TCP, and was recorded as such.
        "qos_under_segment_loss" => {
            let lost = o
                .history
                .events
                .iter()
                .filter(|e| {
                    matches!(&e.kind, EventKind::Frame { fate: FrameFate::Dropped(why), .. } if why == "ip loss")
                })
                .count();
            assert!(lost >= 3, "only {lost} segments lost to `ip loss`");
        }
        _ => {}
    }
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_device_on_the_owned_network(
    #[files("../scenarios/network/counter_device/*.toml")] path: PathBuf,
) {
    let o = run_on(&path, sketch_util::counter_device(None), Default::default()).await;
    assert_passes_as_reviewed(&path, &o);
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photocell_feeds_on_the_owned_network(
    #[files("../scenarios/network/photocell_feeds/*.toml")] path: PathBuf,
) {
    let image = sketch_util::image("photocell_feeds", &[]);
    let o = run_on(&path, image, Default::default()).await;
    assert_passes_as_reviewed(&path, &o);
}

/// The counter device built with `split_publish` takes a PUBLISH to come
/// in one TCP segment. Cut into 1-byte segments (`ip mss`), its command
/// is lost and the step waiting for its state fails; the same bug passes
/// the command scenario without `mss` (its PUBLISHes fit one segment), so
/// only the network fault finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_publish_bug_is_caught_only_with_mss() {
    let bug = sketch_util::counter_device(Some("split_publish"));
    let mss = root().join("scenarios/network/counter_device/command_in_one_byte_segments.toml");
    let bad = run_on(&mss, bug.clone(), Default::default()).await;
    assert!(
        !bad.acceptable(),
        "bug split_publish went unnoticed: {}",
        explain(&bad, &mss)
    );
    // Step 5 waits for the state the "on" command must produce.
    let seen = deviation::signature(&bad);
    assert!(
        seen.contains("step 5"),
        "expected step 5 among {seen:?}\n{}",
        explain(&bad, &mss)
    );
    let plain = root().join("scenarios/black_box/commands_after_reconnect.toml");
    let unseen = run_on(&plain, bug, Default::default()).await;
    assert!(
        unseen.passed(),
        "without mss the bug should not show: {}",
        explain(&unseen, &plain)
    );
}

/// The pcap of the owned network is the board's real frames: the
/// PUBLISHes the board sent under `ip mss` crossed as 1-byte TCP segments
/// from 10.0.2.15, and tshark's own reassembly and MQTT dissector put it
/// back together.
fn pcap_carries_the_real_one_byte_segments(o: &Outcome) {
    let frames = mqtt_hil::report::pcap::frames(&o.history);
    let bytes = mqtt_hil::report::pcap::pcapng(&frames, std::time::SystemTime::now(), &o.id);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one_byte_segments.pcapng");
    std::fs::write(&file, bytes).unwrap();
    let tshark = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("tshark"))
        .find(|f| f.is_file())
        .expect("`tshark` is not installed: install the Debian package `tshark` (make test-deps)");
    let fields = |filter: &str, fields: &[&str]| -> Vec<String> {
        let mut cmd = Command::new(&tshark);
        cmd.arg("-r")
            .arg(&file)
            .args(["-Y", filter, "-T", "fields"]);
        for f in fields {
            cmd.args(["-e", f]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let one_byte_up = fields(
        "ip.src == 10.0.2.15 && tcp.dstport == 1883 && tcp.len == 1",
        &["frame.number"],
    );
    let one_byte_down = fields(
        "ip.src == 10.0.2.100 && tcp.srcport == 1883 && tcp.len == 1",
        &["frame.number"],
    );
    let bigger = fields("ip.addr == 10.0.2.15 && tcp.len > 1", &["frame.number"]);
    assert!(
        one_byte_up.len() > 100 && one_byte_down.len() > 20,
        "{} 1-byte segments from the board, {} to it",
        one_byte_up.len(),
        one_byte_down.len()
    );
    assert!(
        bigger.is_empty(),
        "segments longer than the MSS of 1: {bigger:?}"
    );
    let topics = fields(
        "ip.src == 10.0.2.15 && mqtt.msgtype == 3",
        &["mqtt.topic", "mqtt.msg"],
    );
    assert!(
        topics.iter().any(|l| l.starts_with("dut/mss/q2\t")),
        "tshark did not reassemble the board's PUBLISH: {topics:?}"
    );
    // The DHCP exchange is there too, as it was on the wire.
    let dhcp = fields("dhcp", &["dhcp.option.dhcp"]);
    assert!(
        dhcp.iter().any(|l| l == "5"),
        "no DHCP ACK in the capture: {dhcp:?}"
    );
}

/// Under `--net slirp` the network steps cannot be carried out: the
/// scenario is skipped, with one line saying why, before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slirp_skips_network_steps_with_one_line() {
    let path = root().join("scenarios/network/refused_at_ip.toml");
    let o = run_on(
        &path,
        agent(),
        mqtt_hil::net::Options {
            mode: mqtt_hil::net::NetMode::Slirp,
            ..Default::default()
        },
    )
    .await;
    let Status::Skipped(why) = &o.status else {
        panic!("not skipped: {:?}", o.status)
    };
    assert!(!why.contains('\n'), "{why}");
    assert!(
        why.contains("step 1 (line") && why.contains("--net slirp") && why.contains("--net owned"),
        "{why}"
    );
    assert!(
        o.history.events.is_empty(),
        "something ran: {:?}",
        o.history
    );
}

fn write_scenario(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("net.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn load_error(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write_scenario(dir.path(), body);
    let e = mqtt_hil::scenario::load(&p).expect_err("must be rejected");
    e.to_string().replace(&p.display().to_string(), "net.toml")
}

const HEAD: &str = "name = \"n\"\n[device]\nclient_id = \"d\"\n";

#[test]
fn bad_network_steps_are_rejected_at_their_line() {
    let e = load_error(&format!("{HEAD}[[step]]\nip = \"los\"\nrate = 0.2\n"));
    assert!(
        e.starts_with("net.toml:5:")
            && e.contains("field `ip`: unknown ip fault `los` (did you mean `loss`?)"),
        "{e}"
    );
    let e = load_error(&format!("{HEAD}[[step]]\nip = \"loss\"\nrate = 1.5\n"));
    assert!(
        e.starts_with("net.toml:6:") && e.contains("field `rate`: 1.5 is outside 0-1"),
        "{e}"
    );
    let e = load_error(&format!("{HEAD}[[step]]\nwifi = \"weak\"\nloss = -0.1\n"));
    assert!(
        e.starts_with("net.toml:6:") && e.contains("field `loss`"),
        "{e}"
    );
    let e = load_error(&format!("{HEAD}[[step]]\nip = \"loss\"\n"));
    assert!(e.contains("needs `rate`"), "{e}");
    let e = load_error(&format!("{HEAD}[[step]]\nip = \"mss\"\nbytes = 0\n"));
    assert!(
        e.starts_with("net.toml:6:") && e.contains("field `bytes`"),
        "{e}"
    );
    let e = load_error(&format!("{HEAD}[[step]]\ndns = \"down\"\n"));
    assert!(e.contains("unknown dns fault `down`"), "{e}");
    let e = load_error(&format!("{HEAD}[[step]]\ndhcp = \"off\"\nrate = 0.1\n"));
    assert!(
        e.starts_with("net.toml:6:") && e.contains("field `rate`: unknown field"),
        "{e}"
    );
    let e = load_error("name = \"n\"\n[[step]]\nwifi = \"off\"\n");
    assert!(e.contains("has no [device]"), "{e}");
}

/// A `wifi` step on a target without a radio the harness controls is an
/// input error at its line, before anything starts (the run gives the
/// same error as its verdict); `ip`, `dns` and `dhcp` steps there are
/// skipped with the reason instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wifi_needs_a_radio() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_scenario(
        dir.path(),
        &format!("{HEAD}[[step]]\ndevice = \"connect\"\n[[step]]\nwifi = \"off\"\n"),
    );
    let s = mqtt_hil::scenario::load(&p).unwrap();
    for target in [
        TargetSpec::Virtual,
        TargetSpec::Host,
        TargetSpec::Serial("/dev/ttyUSB0".into()),
    ] {
        let e = runner::check_target(&s, &target).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:7:", p.display()))
                && e.contains("step 2: field `wifi`")
                && e.contains(&format!("--target {target}")),
            "{e}"
        );
    }
    runner::check_target(&s, &TargetSpec::Qemu).unwrap();
    let bin = env!("CARGO_BIN_EXE_mqtt-hil");
    let out = Command::new(bin)
        .args(["run", "--target", "virtual", "--out"])
        .arg(dir.path().join("out"))
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(":7: step 2: field `wifi`"), "{err}");

    let ip = write_scenario(
        dir.path(),
        &format!("{HEAD}[[step]]\nip = \"loss\"\nnth = 2\n[[step]]\ndevice = \"connect\"\n"),
    );
    let s = mqtt_hil::scenario::load(&ip).unwrap();
    let cfg = RunConfig {
        broker: BrokerSpec::Mosquitto,
        firmware: Firmware::default(),
        target: TargetSpec::Virtual,
        workdir: dir.path().join("work"),
        deviations: Deviations::default(),
    };
    let o = runner::run(&s, &cfg).await;
    let Status::Skipped(why) = &o.status else {
        panic!("not skipped: {:?}", o.status)
    };
    assert!(
        why.contains("--target qemu") && !why.contains('\n'),
        "{why}"
    );
}

struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_line(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    f: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if f(&l) {
                    return l;
                }
            }
            Err(_) => panic!("no {what} within 30s; output so far:\n{}", seen.join("\n")),
        }
    }
}

fn spawn_observe(args: &[&str], out: &Path) -> (Guard, mpsc::Receiver<String>) {
    let mut child = Guard(
        Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
            .arg("observe")
            .args(args)
            .arg("--out")
            .arg(out)
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

/// `observe --board`: the counter device on the emulated board, on the
/// harness's network; `ip` and `wifi` commands act on its frames and are
/// recorded with their parameters. Without a board, the same command is
/// refused in one line.
#[test]
fn observe_takes_network_faults_for_its_board() {
    let fw = sketch_util::counter_device(None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (mut observe, lines) = spawn_observe(
        &["--board", fw.to_str().unwrap(), "--duration", "20s"],
        &out,
    );
    let mut seen = Vec::new();
    wait_line(&lines, &mut seen, "banner", |l| {
        l.contains("emulated board") && l.contains("ip loss")
    });
    wait_line(&lines, &mut seen, "the device's SUBACK", |l| {
        l.contains("<- SUBACK")
    });
    let stdin = observe.0.stdin.as_mut().unwrap();
    stdin
        .write_all(b"ip loss rate=2\nip loss rate=0.1 dir=to_client\nwifi off\n")
        .unwrap();
    stdin.flush().unwrap();
    wait_line(&lines, &mut seen, "the bad rate", |l| {
        l.starts_with("error:") && l.contains("field `rate`: 2 is outside 0-1")
    });
    wait_line(&lines, &mut seen, "the loss", |l| {
        l == "net: ip loss 10% to_client on device"
    });
    wait_line(&lines, &mut seen, "the radio off", |l| {
        l == "net: wifi off on device"
    });
    // Closing stdin no longer ends observe (commands are optional); its
    // `--duration` does.
    drop(observe.0.stdin.take());
    wait_line(&lines, &mut seen, "the files", |l| {
        l.starts_with("observe: wrote")
    });
    let _ = observe.0.wait();
    let events = std::fs::read_to_string(out.join("events.log")).unwrap();
    assert!(
        events.contains("ip loss 10% to_client on device"),
        "{events}"
    );
    assert!(events.contains("wifi off on device"), "{events}");

    let out2 = dir.path().join("out2");
    // Its own `--duration` ends it: end of stdin does not (commands are
    // optional), and waiting for that was what made this test hang.
    let (mut plain, lines) = spawn_observe(&["--listen", "127.0.0.1:0", "--duration", "3s"], &out2);
    let mut seen = Vec::new();
    wait_line(&lines, &mut seen, "banner", |l| l.contains("listening on"));
    let stdin = plain.0.stdin.as_mut().unwrap();
    stdin.write_all(b"wifi off\n").unwrap();
    stdin.flush().unwrap();
    let refusal = wait_line(&lines, &mut seen, "the refusal", |l| {
        l.starts_with("error:")
    });
    assert!(
        refusal.contains("`wifi off`") && refusal.contains("--board FIRMWARE"),
        "{refusal}"
    );
    drop(plain.0.stdin.take());
    wait_line(&lines, &mut seen, "the board-less session's files", |l| {
        l.starts_with("observe: wrote")
    });
    let _ = plain.0.wait();
}
