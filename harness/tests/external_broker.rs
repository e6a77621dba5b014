//! External brokers as a user runs them: a broker the test starts itself
//! (a mosquitto process on a free loopback port; amqtt from PyPI, which
//! `make amqtt` installs into .cache/amqtt as `make test` does), given to
//! the harness as `--broker external:HOST:PORT`, with and without a
//! profile (`--profile NAME`, `deviations/NAME.toml` next to the
//! scenarios). Shown here: hooks make broker-restart and broker-pause
//! scenarios runnable (and their absence skips them, naming the hooks); a
//! deviation declared in a profile turns FAIL into DEV; a missing profile file is one error
//! naming it; conventions outside MQTT 3.1.1 are measured on an unknown
//! broker and come out UNSUP, not FAIL; the readiness probe leaves no
//! half-open connection in the broker's log.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scenario folder of our own: copies of some of the suite's scenarios
/// and a `deviations/` folder for the profiles the test writes.
fn scenario_folder(scenarios: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("deviations")).unwrap();
    for s in scenarios {
        std::fs::copy(
            root().join("scenarios").join(format!("{s}.toml")),
            dir.path().join(format!("{s}.toml")),
        )
        .unwrap();
    }
    dir
}

/// Kills the broker whose pid is in `pid_file` when the test ends, however
/// it ends (a hook may have restarted it under a new pid: the file says).
struct PidGuard(PathBuf);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            // SAFETY: a pid this test started (recorded by the broker itself).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn mosquitto_program() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("mosquitto is not installed: `make deps` installs the Debian package mosquitto")
}

/// A mosquitto the test runs as a daemon of its own (not the harness's
/// `--broker mosquitto`), with persistence, so that a restart through the
/// profile's hooks keeps persistent sessions.
struct OwnMosquitto {
    port: u16,
    dir: PathBuf,
    _guard: PidGuard,
}

impl OwnMosquitto {
    fn start(dir: &Path) -> OwnMosquitto {
        let port = free_port();
        let conf = format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {d}/\npid_file {d}/mosquitto.pid\nlog_dest file {d}/mosquitto.log\n\
             connection_messages true\n",
            d = dir.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        let guard = PidGuard(dir.join("mosquitto.pid"));
        let st = Command::new(mosquitto_program())
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .arg("-d")
            .status()
            .unwrap();
        assert!(st.success());
        wait_listening(port, "mosquitto", &dir.join("mosquitto.log"));
        OwnMosquitto {
            port,
            dir: dir.to_path_buf(),
            _guard: guard,
        }
    }

    /// `[hooks]` that stop, start and restart this daemon: stop waits
    /// until it has written its database and exited.
    fn hooks(&self) -> String {
        let m = mosquitto_program();
        let d = self.dir.display();
        let stop = format!(
            "pid=$(cat {d}/mosquitto.pid); kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.05; done"
        );
        let start = format!("{} -c {d}/mosquitto.conf -d", m.display());
        let signal = |sig: &str| format!("kill -{sig} $(cat {d}/mosquitto.pid)");
        format!(
            "[hooks]\nstop = \"{stop}\"\nstart = \"{start}\"\nrestart = \"{stop}; {start}\"\n\
             pause = \"{}\"\nunpause = \"{}\"\ntimeout = \"10s\"\n",
            signal("STOP"),
            signal("CONT")
        )
    }
}

#[test]
fn profile_hooks_make_a_broker_restart_scenario_run_on_an_external_broker() {
    let broker_dir = tempfile::tempdir().unwrap();
    let m = OwnMosquitto::start(broker_dir.path());
    let scenarios = scenario_folder(&["broker_restart_persistent_session", "broker_pause"]);
    let profile = scenarios.path().join("deviations/own-mosquitto.toml");
    let broker = format!("external:127.0.0.1:{}", m.port);
    let file = scenarios
        .path()
        .join("broker_restart_persistent_session.toml");

    // Without hooks (and without declaring persistence) the scenario is
    // skipped, and the reason says what to add.
    std::fs::write(&profile, "[capabilities]\npersistence = true\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .arg("run")
        .arg(&file)
        .args(["--broker", &broker, "--profile", "own-mosquitto", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("SKIP  broker_restart_persistent_session"), "{t}");
    assert!(t.contains("`restart` hook"), "{t}");
    let o = bin()
        .arg("run")
        .arg(scenarios.path().join("broker_pause.toml"))
        .args(["--broker", &broker, "--profile", "own-mosquitto", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert!(t.contains("SKIP  broker_pause"), "{t}");
    assert!(t.contains("`pause` and `unpause` hooks"), "{t}");

    // With them it runs, and the session and its queued message survive
    // the restart the hook carried out.
    std::fs::write(
        &profile,
        format!("[capabilities]\npersistence = true\n\n{}", m.hooks()),
    )
    .unwrap();
    let pid_before = std::fs::read_to_string(m.dir.join("mosquitto.pid")).unwrap();
    let o = bin()
        .arg("run")
        .arg(&file)
        .args(["--broker", &broker, "--profile", "own-mosquitto", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("PASS  broker_restart_persistent_session"), "{t}");
    // pause/unpause hooks (SIGSTOP/SIGCONT here) make a frozen-broker
    // scenario run too.
    let o = bin()
        .arg("run")
        .arg(scenarios.path().join("broker_pause.toml"))
        .args(["--broker", &broker, "--profile", "own-mosquitto", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("PASS  broker_pause"), "{t}");
    let pid_after = std::fs::read_to_string(m.dir.join("mosquitto.pid")).unwrap();
    assert_ne!(pid_before, pid_after, "the hook did not restart the broker");
    let trace = std::fs::read_to_string(
        out.path()
            .join("traces/broker_restart_persistent_session.trace"),
    )
    .unwrap();
    assert!(trace.contains("broker restart"), "{trace}");
}

#[test]
fn a_missing_profile_file_is_one_error_naming_it() {
    let scenarios = scenario_folder(&["qos0_delivery"]);
    let o = bin()
        .arg("run")
        .arg(scenarios.path())
        // Nothing needs to listen: the profile is read before anything starts.
        .args(["--broker", "external:127.0.0.1:9", "--profile", "nosuch"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let want = scenarios.path().join("deviations/nosuch.toml");
    assert!(
        stderr.contains(&format!("{}: no such profile file", want.display())),
        "{stderr}"
    );
    assert_eq!(stderr.matches("error").count(), 1, "{stderr}");

    // A typo in a profile names file, line and field.
    std::fs::write(
        scenarios.path().join("deviations/typo.toml"),
        "[capabilities]\npersistence = true\n\n[hooks]\nrestrat = \"true\"\n",
    )
    .unwrap();
    let o = bin()
        .arg("run")
        .arg(scenarios.path())
        .args(["--broker", "external:127.0.0.1:9", "--profile", "typo"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    let f = scenarios.path().join("deviations/typo.toml");
    assert!(
        stderr.contains(&format!("{}:5:", f.display())) && stderr.contains("restrat"),
        "{stderr}"
    );

    // --profile is for external brokers only.
    let o = bin()
        .args([
            "run",
            "scenarios/qos0_delivery.toml",
            "--broker",
            "mosquitto",
        ])
        .args(["--profile", "mosquitto"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("for external brokers"), "{}", text(&o));
}

/// amqtt (PyPI) on a free port, from `make amqtt`'s venv.
struct Amqtt {
    port: u16,
    log: PathBuf,
    child: std::process::Child,
}

impl Amqtt {
    fn start(dir: &Path) -> Amqtt {
        let program = root().join(".cache/amqtt/bin/amqtt");
        assert!(
            program.is_file(),
            "{} is missing: run `make amqtt` (make test does)",
            program.display()
        );
        let port = free_port();
        let conf = dir.join("amqtt.yaml");
        std::fs::write(
            &conf,
            format!(
                "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n\
                 plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
            ),
        )
        .unwrap();
        let log = dir.join("amqtt.log");
        let child = Command::new(&program)
            .arg("-c")
            .arg(&conf)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        // Ready when it says so: a TCP connect to find out would itself be
        // the half-open connection this file checks the harness never makes.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&format!("bind to 127.0.0.1:{port}"))
        {
            assert!(
                Instant::now() < deadline,
                "amqtt did not listen on {port}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Amqtt { port, log, child }
    }

    fn broker(&self) -> String {
        format!("external:127.0.0.1:{}", self.port)
    }
}

impl Drop for Amqtt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn unknown_conventions_are_measured_on_an_unknown_broker_and_shown_unsup() {
    let dir = tempfile::tempdir().unwrap();
    let amqtt = Amqtt::start(dir.path());
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .args([
            "run",
            "scenarios/queue_subscription.toml",
            "scenarios/local_subscription.toml",
            "scenarios/shared_subscription_balancing.toml",
            "--broker",
            &amqtt.broker(),
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for (id, prefix) in [
        ("queue_subscription", "$queue/"),
        ("local_subscription", "$local/"),
        ("shared_subscription_balancing", "$share/"),
    ] {
        let line = t
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no line for {id}: {t}"));
        assert!(line.starts_with("UNSUP"), "{line}\n{t}");
        assert!(
            t.contains(&format!("the broker has no `{prefix}` convention")),
            "{t}"
        );
    }
    assert!(t.contains("3 passed, 0 failed"), "{t}");
    // The readiness probes were whole MQTT sessions: amqtt logged no
    // connection that sent nothing.
    let log = std::fs::read_to_string(&amqtt.log).unwrap();
    assert!(
        !log.contains("No data to decode") && !log.contains("Failed to initialize client session"),
        "{log}"
    );
}

/// The profile of a broker the harness never saw (scenarios/deviations/
/// amqtt.toml): a deviation measured on amqtt and declared there is DEV
/// instead of FAIL, a declared-unsupported convention is UNSUP citing the
/// declaration, and declared 3.1.1-only makes 5.0 runs skips instead of
/// errors.
#[test]
fn a_profile_turns_a_declared_deviation_into_dev_and_its_capabilities_count() {
    let dir = tempfile::tempdir().unwrap();
    let amqtt = Amqtt::start(dir.path());
    let out = tempfile::tempdir().unwrap();
    let run = |profile: Option<&str>| {
        let mut c = bin();
        c.args([
            "run",
            "scenarios/qos_downgrade_on_delivery.toml",
            "scenarios/local_subscription.toml",
            "scenarios/clean_session_discards.toml",
            "--broker",
            &amqtt.broker(),
            "--out",
        ])
        .arg(out.path());
        if let Some(p) = profile {
            c.args(["--profile", p]);
        }
        c.output().unwrap()
    };
    let line = |t: &str, id: &str| {
        t.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(id))
            .unwrap_or_else(|| panic!("no line for {id}: {t}"))
            .to_string()
    };

    // No profile: amqtt delivers above the granted QoS, which fails.
    let o = run(None);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        line(&t, "qos_downgrade_on_delivery").starts_with("FAIL"),
        "{t}"
    );
    assert!(t.contains("arrived with QoS 2, expected QoS 1"), "{t}");
    // Its 5.0 run meets a broker that refuses 5.0: nothing says it would.
    assert!(
        line(&t, "clean_session_discards@5").starts_with("ERROR"),
        "{t}"
    );

    // Its profile declares that deviation, the lack of $local/ and 3.1.1 only.
    let o = run(Some("amqtt"));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        line(&t, "qos_downgrade_on_delivery").starts_with("DEV"),
        "{t}"
    );
    assert!(
        t.contains("expected deviation: amqtt delivers a QoS 2 message"),
        "{t}"
    );
    assert!(line(&t, "local_subscription").starts_with("UNSUP"), "{t}");
    assert!(t.contains("profile `amqtt` declares it unsupported"), "{t}");
    assert!(
        line(&t, "clean_session_discards").starts_with("PASS"),
        "{t}"
    );
    let v5 = line(&t, "clean_session_discards@5");
    assert!(v5.starts_with("SKIP"), "{t}");
    assert!(t.contains("needs MQTT 5.0"), "{t}");
}

/// `maximum_qos = 1` in a profile's [capabilities] (as RabbitMQ 4.0's
/// image profile says in code): the 5.0 run of a scenario that needs QoS 2
/// is a skip naming the step and the profile, never run against the
/// broker's rules; its 3.1.1 run still runs. And the claim is held
/// against the broker: mosquitto's 5.0 CONNACK announces no Maximum QoS
/// (so 2), which fails the 5.0 run that did run as a stale capability.
#[test]
fn a_profile_granting_qos_1_over_5_skips_qos_2_runs_and_is_checked_against_the_connack() {
    let broker_dir = tempfile::tempdir().unwrap();
    let m = OwnMosquitto::start(broker_dir.path());
    let scenarios = scenario_folder(&["qos2_in_cut_after_pubrel", "retained_set_and_clear"]);
    std::fs::write(
        scenarios.path().join("deviations/qos-one.toml"),
        "[capabilities]\nmaximum_qos = 1\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .arg("run")
        .arg(scenarios.path())
        .args([
            "--broker",
            &format!("external:127.0.0.1:{}", m.port),
            "--profile",
            "qos-one",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let t = text(&o);
    let line = |id: &str| {
        t.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(id))
            .unwrap_or_else(|| panic!("no line for {id}: {t}"))
            .to_string()
    };
    assert!(line("qos2_in_cut_after_pubrel").starts_with("PASS"), "{t}");
    assert!(
        line("qos2_in_cut_after_pubrel@5").starts_with("SKIP"),
        "{t}"
    );
    assert!(
        t.contains("needs QoS 2: step 4 (line")
            && t.contains("grants at most QoS 1 over MQTT 5.0")
            && t.contains("profile `qos-one`"),
        "{t}"
    );
    // Needs no QoS 2: it runs, and the CONNACK contradicts the profile.
    assert!(line("retained_set_and_clear").starts_with("PASS"), "{t}");
    assert!(line("retained_set_and_clear@5").starts_with("FAIL"), "{t}");
    assert!(
        t.contains("the declared capability `maximum_qos = 1` of profile `qos-one` did not hold")
            && t.contains("announced Maximum QoS 2")
            && t.contains("declare `maximum_qos = 2`"),
        "{t}"
    );
    assert_eq!(o.status.code(), Some(1), "{t}");

    // A QoS that does not exist is refused, naming the file and line.
    std::fs::write(
        scenarios.path().join("deviations/qos-one.toml"),
        "[capabilities]\nmqtt5 = true\nmaximum_qos = 3\n",
    )
    .unwrap();
    let o = bin()
        .arg("run")
        .arg(scenarios.path())
        .args([
            "--broker",
            &format!("external:127.0.0.1:{}", m.port),
            "--profile",
            "qos-one",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("qos-one.toml:3") && t.contains("maximum_qos = 3"),
        "{t}"
    );
}
