//! Loader edge cases a user can stumble on: CRLF files with multi-byte
//! characters (the lines of errors must be right, and nothing may panic),
//! topics and filters MQTT forbids (checked at load with file:line:field,
//! not left to fail after a `within` or to pass as an encoding anomaly),
//! and a `within` longer than the scenario's own timeout. Each case goes
//! through `mqtt-hil list` too, which must exit 2, never 101.

use std::path::{Path, PathBuf};

use mqtt_hil::scenario as load;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The same scenario text with LF and with CRLF line endings, and the
/// error each must give: the same line and field both ways.
const ERRORS: &[(&str, &str, usize, &str)] = &[
    (
        "a bad field in a will table after multi-byte characters",
        "name = \"café € ✓\"\n\n[device]\nclient_id = \"dé\"\nwill = { topic = \"a/b\", payload = \"x\", qoss = 1 }\n\n[[step]]\ndevice = \"connect\"\n",
        5,
        "field `qoss`",
    ),
    (
        "a will topic with a wildcard, after a multi-byte description",
        "name = \"n\"\ndescription = \"ünïcödé — ✓✓✓\"\n\n[device]\nwill = { topic = \"a/+\", payload = \"x\" }\n",
        5,
        "field `topic`",
    ),
    (
        "a hex payload with a multi-byte character in it",
        "name = \"n\"\n\n[device]\n\n[[step]]\ndevice = \"publish\"\ntopic = \"a/b\"\npayload_hex = \"é1\"\n",
        8,
        "field `payload_hex`",
    ),
    (
        "an unknown key in a step of a file with multi-byte names",
        "name = \"ö\"\n\n[device]\nclient_id = \"ø\"\n\n[[step]]\ndevice = \"connect\"\nkeepalvie = 3\n",
        8,
        "keepalvie",
    ),
    (
        "an UNSUBSCRIBE filter with `#` not last",
        "name = \"n\"\n\n[device]\n\n[[step]]\ndevice = \"unsubscribe\"\nfilter = \"a/#/b\"\n",
        7,
        "field `filter`",
    ),
    (
        "an expected message's filter with `+` inside a level",
        "name = \"n\"\n\n[device]\n\n[observer.cloud]\n\n[[step]]\nexpect = \"message\"\nactor = \"cloud\"\ntopic = \"a/b+\"\n",
        10,
        "field `topic`",
    ),
    (
        "an unexpected message's filter with NUL",
        "name = \"n\"\n\n[device]\n\n[[step]]\nexpect = \"no_message\"\ntopic = \"a\\u0000b\"\n",
        7,
        "NUL",
    ),
    (
        "a `within` longer than the scenario's timeout",
        "name = \"n\"\ntimeout = \"5s\"\n\n[device]\n\n[[step]]\nexpect = \"connected\"\nwithin = \"10s\"\n",
        8,
        "field `within`: 10s cannot fit the scenario's timeout of 5s",
    ),
    (
        // Found by `make fuzz` (target scenario): toml points an invalid
        // escape past the escaped character, which for a backslash at the
        // end of a line was the next line on LF files only.
        "a backslash at the end of a line inside a string",
        "name = \"n\\\ntimeout = \"5s\"\n\n[device]\n",
        1,
        "invalid escape sequence",
    ),
    (
        "an invalid escape in the middle of a line",
        "name = \"n\"\ndescription = \"a\\qb\"\n",
        2,
        "invalid escape sequence",
    ),
];

fn check(path: &Path, text: &str, line: usize, says: &str, what: &str) {
    std::fs::write(path, text).unwrap();
    let e = load::load(path).unwrap_err().to_string();
    let at = format!("{}:{line}:", path.display());
    assert!(e.contains(&at), "{what}: expected {at} in: {e}");
    assert!(e.contains(says), "{what}: expected `{says}` in: {e}");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1")
        .arg("list")
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: mqtt-hil list: {stderr}");
    assert!(stderr.contains(&at), "{what}: mqtt-hil list: {stderr}");
}

#[test]
fn errors_name_the_same_line_with_lf_and_crlf_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for (what, text, line, says) in ERRORS {
        check(&dir.path().join("lf.toml"), text, *line, says, what);
        let crlf = text.replace('\n', "\r\n");
        check(&dir.path().join("crlf.toml"), &crlf, *line, says, what);
    }
}

/// A topic or filter longer than the 65,535 bytes its length prefix can
/// carry is refused at load wherever a scenario names one.
#[test]
fn topics_and_filters_that_cannot_be_encoded_are_refused_at_load() {
    let long = "t".repeat(70_000);
    let cases = [
        (
            "publish",
            format!("device = \"publish\"\ntopic = \"{long}\"\n"),
        ),
        (
            "subscribe",
            format!("device = \"subscribe\"\nfilter = \"{long}\"\n"),
        ),
        (
            "unsubscribe",
            format!("device = \"unsubscribe\"\nfilter = \"{long}\"\n"),
        ),
        (
            "expect",
            format!("expect = \"message\"\ntopic = \"{long}\"\n"),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.toml");
    for (what, step) in cases {
        let text = format!("name = \"n\"\n\n[device]\n\n[[step]]\n{step}");
        std::fs::write(&path, text).unwrap();
        let e = load::load(&path).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:7:", path.display())), "{what}: {e}");
        assert!(e.contains("at most 65,535 bytes"), "{what}: {e}");
    }
}

/// The good side: what the rules allow still loads (a `within` equal to the
/// timeout, `#` alone at the end, `+` as a whole level, a shared filter).
#[test]
fn what_mqtt_allows_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    let text = "name = \"ok\"\r\ntimeout = \"5s\"\r\n\r\n[device]\r\nclient_id = \"é\"\r\n\r\n[observer.cloud]\r\n\r\n\
[[step]]\r\nobserver.cloud = \"subscribe\"\r\nfilter = \"$share/g/a/+/#\"\r\n\r\n\
[[step]]\r\ndevice = \"unsubscribe\"\r\nfilter = \"+/#\"\r\n\r\n\
[[step]]\r\nexpect = \"message\"\r\nactor = \"cloud\"\r\ntopic = \"a/+/c\"\r\nwithin = \"5s\"\r\n";
    std::fs::write(&path, text).unwrap();
    let s = load::load(&path).unwrap();
    assert_eq!(s.steps.len(), 3);
}

/// A step the harness cannot carry out fails its scenario, naming the step
/// and why. The loader refuses every topic it can see to be unsendable
/// (raw ones included); what it cannot see is a topic that grows at run
/// time: `{client_id}` stands for the device's id, learned from its
/// CONNECT, and a 65,000-byte id makes the topic too long for its length
/// prefix. Such a publish used to record `anomaly cannot encode ...` and
/// PASS.
#[test]
fn a_step_that_cannot_be_sent_fails_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = dir.path().join("unsendable.toml");
    let text = format!(
        "name = \"a publish whose topic grows too long\"\ntimeout = \"20s\"\n\n[device]\nclient_id = \"{}\"\n\n[observer.cloud]\n\n\
[[step]]\ndevice = \"connect\"\n\n\
[[step]]\nobserver.cloud = \"publish\"\ntopic = \"cmd/{{client_id}}/{}\"\npayload = \"x\"\n",
        "d".repeat(65_000),
        "t".repeat(1_000)
    );
    std::fs::write(&path, text).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-hil"))
        .current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1")
        .arg("run")
        .arg(&path)
        .args(["--broker", "embedded", "--target", "virtual", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  unsendable"), "{stdout}");
    assert!(
        stdout.contains("step 2 (") && stdout.contains("cannot encode PUBLISH"),
        "{stdout}"
    );
    assert!(stdout.contains("65,535"), "{stdout}");
}

#[test]
fn a_raw_topic_too_long_for_its_length_prefix_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.toml");
    let text = format!(
        "name = \"n\"\n\n[observer.prober]\nversion = \"5\"\n\n[[step]]\nobserver.prober = \"publish\"\ntopic = \"{}\"\nraw = true\n",
        "t".repeat(70_000)
    );
    std::fs::write(&path, text).unwrap();
    let e = load::load(&path).unwrap_err().to_string();
    assert!(e.contains(&format!("{}:8:", path.display())), "{e}");
    assert!(
        e.contains("even a raw topic is at most 65,535 bytes"),
        "{e}"
    );
}
