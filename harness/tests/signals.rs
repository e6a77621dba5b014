//! SIGINT, SIGTERM and SIGHUP at random (seeded) moments of a real run:
//! an emulated board under QEMU with the local mosquitto, and a container
//! broker. After each: the exit status is 128 + the signal's number, no
//! process of that run is left (the OS's own list, /proc), no container or
//! network of it either (the Docker engine's own lists), and the JUnit file
//! parses, marks the run interrupted and holds the two scenarios as errors.
//! One trial per target sends a second signal right after the first (the
//! "end at once" path), which must still leave nothing behind.
//!
//! `MQTT_HIL_SIGNAL_TRIALS` (default 3 per target, one per signal) and
//! `MQTT_HIL_SIGNAL_SEED` set the count and the moments; `ci/signal-soak.sh`
//! (run by `make bench`) runs 100 and prints the leak count. The container
//! half needs Docker and `make images`; with MQTT_HIL_REQUIRE_DOCKER=1 (CI)
//! their absence fails it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A small seeded generator (xorshift64*): the same seed, the same moments.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Processes whose command line mentions `needle` (the run's own folder,
/// so only what this trial started).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && !cmdline.contains("cargo") {
            found.push(cmdline);
        }
    }
    found
}

/// Containers and networks named for process `pid`, as the engine lists them.
fn docker_leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("mqtt-hil-{pid}-");
    let mut out = Vec::new();
    for args in [
        &["ps", "-a", "--format", "{{.Names}}", "--filter"][..],
        &["network", "ls", "--format", "{{.Name}}", "--filter"][..],
    ] {
        let o = Command::new("docker")
            .args(args)
            .arg(format!("name={prefix}"))
            .output()
            .unwrap();
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with(&prefix))
                .map(String::from),
        );
    }
    out
}

fn docker_ready(image: &str) -> bool {
    let required = std::env::var("MQTT_HIL_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let ok = Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = format!("no Docker engine or no image {image} (make images)");
        assert!(!required, "MQTT_HIL_REQUIRE_DOCKER=1 but {why}");
        eprintln!("SKIPPED: {why}; set MQTT_HIL_REQUIRE_DOCKER=1 to make this a failure");
        println!("SKIPPED: {why}");
    }
    ok
}

#[derive(Clone, Copy)]
enum Setup {
    /// The emulated board under QEMU, the local mosquitto.
    Qemu,
    /// A virtual device against a broker in a container.
    Container,
}

const SIGNALS: [(i32, &str); 3] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
];

/// One trial; returns what it left behind (empty: clean), panics on a
/// wrong exit status or report.
fn trial(setup: Setup, sig: (i32, &str), delay: Duration, twice: bool) -> Vec<String> {
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqtt-hil"));
    cmd.current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1")
        .args(["run", "harness/tests/fixtures/signals", "--out"])
        .arg(out.path())
        .arg("--junit")
        .arg(&junit)
        .arg("--report")
        .arg(out.path().join("report"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match setup {
        Setup::Qemu => cmd.args(["--target", "qemu"]),
        Setup::Container => cmd.args(["--broker", "container:mqtt-hil/mosquitto"]),
    };
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let needle = out.path().display().to_string();
    // Wait until the run's broker or board is up, then a random moment more.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let up = match setup {
            Setup::Qemu => processes_mentioning(&needle)
                .iter()
                .any(|p| p.contains("qemu-system-xtensa")),
            Setup::Container => docker_leftovers(pid).iter().any(|n| !n.ends_with("-net")),
        };
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "the run never started its peers");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(delay);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, sig.0) };
    if twice {
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: as above (it may have exited already: harmless).
        unsafe { libc::kill(pid as i32, sig.0) };
    }
    let o = child.wait_with_output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(128 + sig.0), "{}: {text}", sig.1);
    std::thread::sleep(Duration::from_millis(200));
    let mut left = processes_mentioning(&needle);
    if matches!(setup, Setup::Container) {
        left.extend(docker_leftovers(pid));
    }
    if !twice {
        // A run ended by one signal wrote its reports, marked.
        let xml = std::fs::read_to_string(&junit)
            .unwrap_or_else(|e| panic!("no JUnit after {} at {delay:?}: {e}\n{text}", sig.1));
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("JUnit is not XML: {e}\n{xml}"),
            }
        }
        let marker = format!(r#"<property name="interrupted" value="{}"/>"#, sig.1);
        assert!(xml.contains(&marker), "{xml}");
        // Both scenarios and the marker case are errors, none passed.
        assert!(
            xml.contains(r#"tests="3" skipped="0" errors="3" failures="0""#),
            "{xml}"
        );
        assert!(
            xml.contains(&format!("interrupted by {} before it finished", sig.1)),
            "{xml}"
        );
        assert!(
            xml.contains(&format!("not run: the run was interrupted by {}", sig.1)),
            "{xml}"
        );
        let html = std::fs::read_to_string(out.path().join("report/index.html")).unwrap();
        assert!(
            html.contains(&format!("<strong>INTERRUPTED</strong> by {}", sig.1)),
            "{html}"
        );
        assert!(
            text.contains(&format!("INTERRUPTED by {}", sig.1)),
            "{text}"
        );
    }
    left
}

fn soak(setup: Setup) {
    let trials = env_u64("MQTT_HIL_SIGNAL_TRIALS", 3);
    let seed = env_u64("MQTT_HIL_SIGNAL_SEED", 17);
    let mut rng = Rng(seed.max(1) ^ 0x9e37_79b9_7f4a_7c15);
    let mut leaks = 0;
    for n in 0..trials {
        let sig = SIGNALS[(n % 3) as usize];
        let delay = Duration::from_millis(rng.below(3000));
        // The last trial also checks the second, "now" signal.
        let twice = n + 1 == trials;
        let left = trial(setup, sig, delay, twice);
        if !left.is_empty() {
            leaks += 1;
            eprintln!(
                "trial {n} ({} after {delay:?}, twice: {twice}) left: {left:?}",
                sig.1
            );
        }
    }
    let name = match setup {
        Setup::Qemu => "qemu",
        Setup::Container => "container",
    };
    println!("signal soak {name}: {trials} trials (seed {seed}), {leaks} leaked");
    assert_eq!(
        leaks, 0,
        "{leaks} of {trials} trials left something running"
    );
}

#[test]
fn signals_at_random_moments_stop_an_emulated_board_cleanly() {
    let elf = root().join("firmware/build/agent.elf");
    assert!(
        elf.is_file(),
        "{} is missing: run `make firmware`",
        elf.display()
    );
    soak(Setup::Qemu);
}

#[test]
fn signals_at_random_moments_remove_the_container_broker() {
    if !docker_ready("mqtt-hil/mosquitto") {
        return;
    }
    soak(Setup::Container);
}
