//! The loader's side of black-box scenarios: `[device] autonomous = true`,
//! the `published` expectation, and the traffic-only checks, with errors
//! that name file, line and field.

use std::path::Path;

use mqtt_hil::check::InvariantSpec;
use mqtt_hil::error::Error;
use mqtt_hil::scenario::{self, Action, Expect};

fn err(text: &str) -> (usize, String) {
    match scenario::parse(Path::new("bad.toml"), text) {
        Err(Error::Input { line, message, .. }) => (line, message),
        Err(other) => panic!("expected an input error, got {other}"),
        Ok(_) => panic!("expected an error for:\n{text}"),
    }
}

const HEAD: &str = "name = \"x\"\n[device]\nautonomous = true\n[observer.cloud]\n";

#[test]
fn every_black_box_scenario_loads_as_autonomous() {
    let files = scenario::discover(&["../scenarios/black_box".into()]).unwrap();
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let s = scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.autonomous.is_some() && s.device.is_none(),
            "{}",
            f.display()
        );
        assert!(s.has_device());
    }
}

#[test]
fn an_autonomous_device_takes_no_client_settings() {
    let (line, msg) = err("name = \"x\"\n[device]\nautonomous = true\nclean_session = false\n[[step]]\nwait = \"1s\"\n");
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("[device]: field `clean_session`"), "{msg}");
    assert!(msg.contains("its own firmware decides"), "{msg}");
}

#[test]
fn an_autonomous_device_takes_no_commands() {
    let (line, msg) = err(&format!("{HEAD}[[step]]\ndevice = \"connect\"\n"));
    assert_eq!(line, 6, "{msg}");
    assert!(
        msg.contains("step 1: field `device`: the device is autonomous"),
        "{msg}"
    );
}

#[test]
fn autonomous_typos_get_a_did_you_mean() {
    let (line, msg) = err(
        "name = \"x\"\n[device]\nautonomous = true\nperiodc = [\"a/b\"]\n[[step]]\nwait = \"1s\"\n",
    );
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("did you mean `periodic`?"), "{msg}");
    let (_, msg) = err("name = \"x\"\n[device]\nautonomous = true\nperiodic = [\"a/#/b\"]\n[[step]]\nwait = \"1s\"\n");
    assert!(msg.contains("field `periodic`: `a/#/b`"), "{msg}");
}

#[test]
fn autonomous_false_is_the_driven_device() {
    let s = scenario::parse(
        Path::new("x.toml"),
        "name = \"x\"\n[device]\nautonomous = false\nclient_id = \"d\"\n[[step]]\ndevice = \"connect\"\n",
    )
    .unwrap();
    assert!(s.autonomous.is_none() && s.device.is_some());
}

#[test]
fn published_expectation_parses_and_checks_its_fields() {
    let s = scenario::parse(
        Path::new("x.toml"),
        &format!("{HEAD}[[step]]\nexpect = \"published\"\ntopic = \"devices/{{client_id}}/state\"\npayload = \"on\"\ncount = 2\nwithin = \"2s\"\n"),
    )
    .unwrap();
    match &s.steps[0].action {
        Action::Expect(e) => {
            assert_eq!(e.actor, "device");
            assert!(
                matches!(&e.what, Expect::Published { topic: Some(t), count: 2, .. } if t == "devices/{client_id}/state")
            );
        }
        other => panic!("{other:?}"),
    }
    let (line, msg) = err(&format!("{HEAD}[[step]]\nexpect = \"publishd\"\n"));
    assert_eq!(line, 6, "{msg}");
    assert!(msg.contains("did you mean `published`?"), "{msg}");
    let (line, msg) = err(&format!(
        "{HEAD}[[step]]\nexpect = \"published\"\ncuont = 2\n"
    ));
    assert_eq!(line, 7, "{msg}");
    assert!(msg.contains("did you mean `count`?"), "{msg}");
}

#[test]
fn traffic_checks_parse_with_defaults() {
    let s: InvariantSpec =
        toml::from_str("check = \"sequence\"\ntopic = \"devices/+/counter\"\njson = \"count\"")
            .unwrap();
    assert_eq!(
        s,
        InvariantSpec::Sequence {
            topic: "devices/+/counter".into(),
            json: Some("count".into()),
            regex: None,
            actor: "device".into(),
            qos: None,
            skip_unnumbered: false,
        }
    );
    let s: InvariantSpec = toml::from_str("check = \"resubscribe\"").unwrap();
    assert!(
        matches!(s, InvariantSpec::Resubscribe { within, .. } if within == std::time::Duration::from_secs(2))
    );
    let s: InvariantSpec =
        toml::from_str("check = \"publish_allowed\"\ntopics = [\"a/#\"]").unwrap();
    assert_eq!(mqtt_hil::check::build(&s).name(), "publish_allowed");
}

#[test]
fn traffic_check_mistakes_name_the_field() {
    let tail = "[[step]]\nwait = \"1s\"\n[[invariant]]\ncheck = \"sequence\"\ntopic = \"a/b\"\n";
    // Line 9 is `topic`; the next line is the one under test.
    let (line, msg) = err(&format!("{HEAD}{tail}regex = \"(\"\n"));
    assert_eq!(line, 10, "{msg}");
    assert!(msg.contains("invariant 1: field `regex`"), "{msg}");
    let (line, msg) = err(&format!("{HEAD}{tail}jsn = \"count\"\n"));
    assert_eq!(line, 10, "{msg}");
    assert!(msg.contains("did you mean `json`?"), "{msg}");
    let (_, msg) = err(&format!("{HEAD}{tail}"));
    assert!(msg.contains("`json = \"count\"` or `regex"), "{msg}");
    let (line, msg) = err(&format!(
        "{HEAD}[[step]]\nwait = \"1s\"\n[[invariant]]\ncheck = \"resubscrib\"\n"
    ));
    assert_eq!(line, 8, "{msg}");
    assert!(msg.contains("did you mean `resubscribe`?"), "{msg}");
    let (_, msg) = err(&format!(
        "{HEAD}[[step]]\nwait = \"1s\"\n[[invariant]]\ncheck = \"publish_allowed\"\ntopics = []\n"
    ));
    assert!(msg.contains("field `topics`: list at least one"), "{msg}");
}

#[test]
fn board_expectation_and_watchdog_check_parse_and_check_their_fields() {
    let s = scenario::parse(
        Path::new("x.toml"),
        &format!("{HEAD}[[step]]\nexpect = \"board\"\nevent = \"watchdog reset\"\ncount = 2\nwithin = \"20s\"\ntimeout = \"21s\"\n[[invariant]]\ncheck = \"no_watchdog_reset\"\n"),
    )
    .unwrap();
    match &s.steps[0].action {
        Action::Expect(e) => assert!(
            matches!(&e.what, Expect::Board { event, count: 2 } if event == "watchdog reset"),
            "{e:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        mqtt_hil::check::build(&s.invariants[0].spec).name(),
        "no_watchdog_reset"
    );
    let (line, msg) = err(&format!("{HEAD}[[step]]\nexpect = \"board\"\n"));
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("needs `event`"), "{msg}");
    let (line, msg) = err(&format!(
        "{HEAD}[[step]]\nexpect = \"board\"\nevent = \"watchdog reset\"\nevnt = \"x\"\n"
    ));
    assert_eq!(line, 8, "{msg}");
    assert!(msg.contains("did you mean `event`?"), "{msg}");
    let (line, msg) = err(&format!(
        "{HEAD}[[step]]\nwait = \"1s\"\n[[invariant]]\ncheck = \"no_watchdog_rest\"\n"
    ));
    assert_eq!(line, 8, "{msg}");
    assert!(msg.contains("did you mean `no_watchdog_reset`?"), "{msg}");
}

/// `expect = "uart"` (a reaction a black box prints) and `resend` (a
/// command sent again while waiting for its reaction), with their errors.
#[test]
fn uart_expectations_and_resend_load_and_refuse_mistakes() {
    let s = scenario::parse(
        Path::new("ok.toml"),
        &format!(
            "{HEAD}[[step]]\nobserver.cloud = \"publish\"\ntopic = \"c\"\npayload = \"on\"\n\
             [[step]]\nexpect = \"uart\"\ncontains = \"light on\"\nresend = \"2s\"\nnote = \"it says so\"\n"
        ),
    )
    .unwrap();
    match &s.steps[1].action {
        Action::Expect(e) => {
            assert_eq!(
                e.what,
                Expect::Uart {
                    contains: "light on".into()
                }
            );
            assert_eq!(e.resend, Some(std::time::Duration::from_secs(2)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.steps[1].note.as_deref(), Some("it says so"));

    let (line, msg) = err(&format!("{HEAD}[[step]]\nexpect = \"uart\"\n"));
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("step 1: missing field `contains`"), "{msg}");
    let (line, msg) = err(&format!(
        "{HEAD}[[step]]\nexpect = \"uart\"\ncontains = \"x\"\nresend = \"1s\"\n"
    ));
    assert_eq!(line, 8, "{msg}");
    assert!(
        msg.contains("step 1: field `resend`: `resend` sends the previous step again"),
        "{msg}"
    );
    let (line, msg) = err(&format!(
        "{HEAD}[[step]]\nobserver.cloud = \"publish\"\ntopic = \"c\"\n[[step]]\nexpect = \"uart\"\ncontains = \"x\"\nresend = \"0s\"\n"
    ));
    assert_eq!(line, 11, "{msg}");
    assert!(
        msg.contains("field `resend`: give a period above zero"),
        "{msg}"
    );
}
