//! `mqtt-hil observe` as a bench engineer uses it: the example counter
//! device boots on the emulated board and dials the flight recorder, which
//! prints its traffic live, reports a violation while the session runs,
//! cuts the device's connection on a typed `sever`, and on a real SIGINT
//! writes the events, trace, verdicts and report without losing anything it
//! recorded, leaving no broker behind.

use crate::sketch_util;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the child on every way out of the test.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a line matching `pred` among the lines still to come.
fn wait_line(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if pred(&l) {
                    return l;
                }
            }
            Err(_) => panic!("no {what} within 20s; output so far:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn flight_recorder_watches_a_device_and_keeps_everything_on_sigint() {
    let fw = sketch_util::counter_device(None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let checks = dir.path().join("checks.toml");
    // The counter is allowed; its status topic (and will) deliberately not,
    // so a violation shows while the session runs.
    std::fs::write(
        &checks,
        "periodic = [\"devices/+/counter\"]\n\
         [[invariant]]\ncheck = \"sequence\"\ntopic = \"devices/{client_id}/counter\"\njson = \"count\"\nqos = 1\n\
         [[invariant]]\ncheck = \"publish_allowed\"\ntopics = [\"devices/+/counter\", \"devices/+/state\"]\n\
         [[invariant]]\ncheck = \"resubscribe\"\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_mqtt-hil");
    let mut observe = Guard(
        Command::new(bin)
            .args(["observe", "--listen", "127.0.0.1:0", "--checks"])
            .arg(&checks)
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let stdout = observe.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let banner = wait_line(&lines, &mut seen, "banner", |l| l.contains("listening on"));
    let listen = banner
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap()
        .to_string();

    // The device: the counter firmware on the emulated ESP8266, its broker
    // address forwarded to the recorder.
    let flash = dir.path().join("flash.bin");
    std::fs::write(&flash, vec![0xffu8; 4 << 20]).unwrap();
    let _qemu = Guard(
        Command::new("qemu-system-xtensa")
            .args([
                "-M",
                "lx60-nommu",
                "-cpu",
                "lx106",
                "-nographic",
                "-monitor",
                "none",
            ])
            .args(["-serial", "null", "-drive"])
            .arg(format!("if=pflash,format=raw,file={}", flash.display()))
            .arg("-netdev")
            .arg(format!(
                "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:1883-cmd:{bin} splice {listen}"
            ))
            .args(["-net", "nic,netdev=n0,model=open_eth", "-kernel"])
            .arg(&fw)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("qemu-system-xtensa (Debian package qemu-system-misc)"),
    );
    wait_line(&lines, &mut seen, "the device's CONNECT", |l| {
        l.contains("c1 -> CONNECT") && l.contains("id=counter-e5e266")
    });
    // Printed while the session runs, not only at the end.
    wait_line(&lines, &mut seen, "a live violation", |l| {
        l.starts_with("VIOLATION publish_allowed: [publish-not-allowed]")
            && l.contains("devices/counter-e5e266/status")
    });
    wait_line(&lines, &mut seen, "a reading", |l| {
        l.contains("-> PUBLISH") && l.contains("counter")
    });
    let stdin = observe.0.stdin.as_mut().unwrap();
    stdin.write_all(b"sevre\nsever\n").unwrap();
    stdin.flush().unwrap();
    wait_line(&lines, &mut seen, "the typo's hint", |l| {
        l.contains("did you mean `sever`?")
    });
    wait_line(&lines, &mut seen, "the sever", |l| {
        l.contains("severed (RST)")
    });
    wait_line(&lines, &mut seen, "the reconnection", |l| {
        l.contains("c2 -> CONNECT")
    });
    wait_line(&lines, &mut seen, "the resubscription", |l| {
        l.contains("c2 -> SUBSCRIBE")
    });
    wait_line(&lines, &mut seen, "a reading after the cut", |l| {
        l.contains("c2 -> PUBLISH") && l.contains("counter")
    });

    // A real SIGINT, as Ctrl-C sends.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(observe.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = observe.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "observe did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(l) = lines.recv_timeout(Duration::from_secs(2)) {
        seen.push(l);
    }
    let all = seen.join("\n");
    assert_eq!(
        status.code(),
        Some(1),
        "violations make exit code 1:\n{all}"
    );
    assert!(all.contains("observe: wrote"), "{all}");

    // Nothing recorded is lost: every event printed live is in the log.
    let log = std::fs::read_to_string(out.join("events.log")).unwrap();
    let live: Vec<&String> = seen.iter().filter(|l| l.starts_with('#')).collect();
    assert!(live.len() > 10, "{all}");
    for l in &live {
        assert!(
            log.lines().any(|x| x == l.as_str()),
            "`{l}` missing from events.log"
        );
    }
    assert!(log.contains("teardown"), "{log}");
    let trace = std::fs::read_to_string(out.join("trace.txt")).unwrap();
    assert!(trace.contains("device   #1 severed (RST)"), "{trace}");
    assert!(
        trace.contains("device   #2 -> SUBSCRIBE c4 [devices/counter-e5e266/cmd q1]"),
        "{trace}"
    );
    assert!(
        !trace.contains("/counter \""),
        "periodic readings left out:\n{trace}"
    );
    let verdicts = std::fs::read_to_string(out.join("verdicts.txt")).unwrap();
    assert!(verdicts.contains("publish_allowed: FAILED"), "{verdicts}");
    assert!(verdicts.contains("sequence: ok"), "{verdicts}");
    assert!(verdicts.contains("resubscribe: ok"), "{verdicts}");
    assert!(out.join("report/index.html").is_file());
    assert!(out.join("pcap/observe.pcapng").is_file());

    // The broker it started is gone.
    let needle = out.display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("mosquitto") && c.contains(&needle))
        .collect();
    assert!(left.is_empty(), "broker left running: {left:?}");
}

/// A recorder started from a script or CI job: stdin is /dev/null, so
/// there are no commands, and it keeps recording — a client that connects
/// after stdin ended gets through to the broker and is in the files —
/// until `--duration` ends it. With the default checks and a well-behaved
/// client there is nothing to report.
#[test]
fn with_stdin_closed_it_records_until_its_duration() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = Guard(
        Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
            .args([
                "observe",
                "--listen",
                "127.0.0.1:0",
                "--duration",
                "4s",
                "--out",
            ])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut text = String::new();
    let mut addr = None;
    while addr.is_none() {
        let mut l = String::new();
        assert!(
            stdout.read_line(&mut l).unwrap() > 0,
            "ended early:\n{text}"
        );
        if let Some(rest) = l.strip_prefix("observe: listening on ") {
            addr = rest.split_whitespace().next().map(str::to_string);
        }
        text.push_str(&l);
    }
    // Until stdin's end has been seen, a connection would prove nothing.
    while !text.contains("stdin closed") {
        let mut l = String::new();
        assert!(
            stdout.read_line(&mut l).unwrap() > 0,
            "ended early:\n{text}"
        );
        text.push_str(&l);
    }
    let mut s = std::net::TcpStream::connect(addr.unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // CONNECT 3.1.1, clean session, keep alive 60, client id "script".
    s.write_all(b"\x10\x12\x00\x04MQTT\x04\x02\x00\x3c\x00\x06script")
        .unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).unwrap();
    assert_eq!(ack, [0x20, 0x02, 0x00, 0x00], "the broker's CONNACK");
    s.write_all(&[0xe0, 0x00]).unwrap();
    drop(s);
    stdout.read_to_string(&mut text).unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("no violation"), "{text}");
    for f in [
        "events.log",
        "trace.txt",
        "verdicts.txt",
        "report/index.html",
    ] {
        assert!(out.join(f).is_file(), "{f} missing:\n{text}");
    }
    let events = std::fs::read_to_string(out.join("events.log")).unwrap();
    assert!(events.contains("CONNECT v4 id=script"), "{events}");
    assert!(events.contains("CONNACK"), "{events}");
    let verdicts = std::fs::read_to_string(out.join("verdicts.txt")).unwrap();
    for c in ["protocol", "will", "keepalive", "resubscribe", "backoff"] {
        assert!(verdicts.contains(&format!("{c}: ok")), "{verdicts}");
    }
}

#[test]
fn a_bad_checks_file_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    // A bad checks file is refused before anything starts, naming its line.
    let checks = dir.path().join("checks.toml");
    std::fs::write(
        &checks,
        "[[invariant]]\ncheck = \"sequence\"\ntopc = \"a\"\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .args(["observe", "--listen", "127.0.0.1:0", "--checks"])
        .arg(&checks)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("checks.toml:3"), "{err}");
    assert!(err.contains("did you mean `topic`?"), "{err}");
}
