//! The loader rejects bad scenario files with file, line, field and a hint,
//! and accepts every file in scenarios/.

use std::path::Path;

use mqtt_hil::error::Error;
use mqtt_hil::scenario::{self, Action, ClientAction, Expect};

fn err(text: &str) -> (usize, String) {
    match scenario::parse(Path::new("bad.toml"), text) {
        Err(Error::Input {
            file,
            line,
            message,
        }) => {
            assert_eq!(file, Path::new("bad.toml"));
            (line, message)
        }
        Err(other) => panic!("expected an input error, got {other}"),
        Ok(_) => panic!("expected an error for:\n{text}"),
    }
}

const HEAD: &str = "name = \"x\"\n[device]\nclient_id = \"d\"\n[observer.cloud]\n";

#[test]
fn every_shipped_scenario_loads() {
    let files = scenario::discover(&["../scenarios".into()]).unwrap();
    assert!(files.len() >= 15, "the suite has {} scenarios", files.len());
    for f in files {
        scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn toml_syntax_errors_name_the_line() {
    let (line, msg) = err("name = \"x\"\n\n[[step]\nwait = \"1s\"\n");
    assert_eq!(line, 3, "{msg}");
}

#[test]
fn unknown_top_level_field_is_named() {
    let (line, msg) = err("name = \"x\"\ntimeuot = \"3s\"\n[[step]]\nwait = \"1s\"\n");
    assert_eq!(line, 2);
    assert!(msg.contains("timeuot"), "{msg}");
}

#[test]
fn unknown_step_field_gets_a_did_you_mean() {
    let text = format!("{HEAD}[[step]]\ndevice = \"publish\"\ntopic = \"a\"\nqso = 1\n");
    let (line, msg) = err(&text);
    assert_eq!(line, 8, "{msg}");
    assert!(
        msg.contains("step 1: field `qso`: unknown field (did you mean `qos`?)"),
        "{msg}"
    );
}

#[test]
fn unknown_action_verb_lists_the_choices() {
    let text = format!("{HEAD}[[step]]\ndevice = \"conect\"\n");
    let (line, msg) = err(&text);
    assert_eq!(line, 6);
    assert!(msg.contains("did you mean `connect`"), "{msg}");
}

#[test]
fn a_step_must_do_exactly_one_thing() {
    let text = format!("{HEAD}[[step]]\ndevice = \"connect\"\nwait = \"1s\"\n");
    let (line, msg) = err(&text);
    assert_eq!(line, 7, "{msg}");
    assert!(msg.contains("split it into two steps"), "{msg}");
    let text = format!("{HEAD}[[step]]\nnote = \"nothing\"\n");
    let (line, msg) = err(&text);
    assert_eq!(line, 5);
    assert!(msg.contains("needs exactly one of"), "{msg}");
}

#[test]
fn bad_values_name_the_field_and_the_rule() {
    let (line, msg) = err(&format!(
        "{HEAD}[[step]]\ndevice = \"publish\"\ntopic = \"a/+\"\n"
    ));
    assert_eq!(line, 7);
    assert!(
        msg.contains("field `topic`") && msg.contains("MQTT-3.3.2-2"),
        "{msg}"
    );
    let (_, msg) = err(&format!(
        "{HEAD}[[step]]\ndevice = \"subscribe\"\nfilter = \"a/#/b\"\n"
    ));
    assert!(msg.contains("MQTT-4.7.1-2"), "{msg}");
    let (line, msg) = err(&format!(
        "{HEAD}[[step]]\ndevice = \"subscribe\"\nfilter = \"a\"\nqos = 3\n"
    ));
    assert_eq!(line, 8);
    assert!(msg.contains("out of range 0..=2"), "{msg}");
    let (_, msg) = err(&format!("{HEAD}[[step]]\nwait = \"5\"\n"));
    assert!(msg.contains("no unit"), "{msg}");
}

#[test]
fn undeclared_actors_are_reported() {
    let (line, msg) = err(&format!("{HEAD}[[step]]\nobserver.clowd = \"connect\"\n"));
    assert_eq!(line, 6);
    assert!(
        msg.contains("no observer named `clowd`") && msg.contains("declared: cloud"),
        "{msg}"
    );
    let (_, msg) = err("name = \"x\"\n[[step]]\ndevice = \"connect\"\n");
    assert!(msg.contains("no [device] table"), "{msg}");
}

#[test]
fn unknown_fault_and_packet_types_are_reported() {
    let (_, msg) = err(&format!("{HEAD}[[step]]\nnet = \"blackhol\"\n"));
    assert!(msg.contains("did you mean `blackhole`"), "{msg}");
    let (line, msg) = err(&format!(
        "{HEAD}[[step]]\nnet = \"drop\"\npacket = \"PUBRECK\"\n"
    ));
    assert_eq!(line, 7);
    assert!(msg.contains("not an MQTT packet type"), "{msg}");
}

#[test]
fn bad_will_is_reported_inside_the_device_table() {
    let (line, msg) =
        err("name = \"x\"\n[device]\nwill = { topic = \"a/#\" }\n[[step]]\nwait = \"1s\"\n");
    assert_eq!(line, 3, "{msg}");
    assert!(msg.contains("will"), "{msg}");
}

#[test]
fn unknown_invariant_is_reported_with_its_line() {
    let (line, msg) = err(&format!(
        "{HEAD}[[step]]\nwait = \"1s\"\n[[invariant]]\ncheck = \"exactly_twice\"\n"
    ));
    // The line of the `check` field inside the table.
    assert_eq!(line, 8, "{msg}");
    assert!(msg.contains("exactly_twice"), "{msg}");
}

#[test]
fn a_good_file_becomes_the_expected_plan() {
    let text = format!(
        "{HEAD}[[step]]\ndevice = \"connect\"\nsession_present = false\n\
         [[step]]\ndevice = \"publish\"\ntopic = \"a/b\"\npayload_hex = \"00ff\"\nqos = 2\n\
         [[step]]\nexpect = \"message\"\nactor = \"cloud\"\ntopic = \"a/+\"\nwithin = \"2s\"\n"
    );
    let s = scenario::parse(Path::new("good.toml"), &text).unwrap();
    assert_eq!(s.id, "good");
    assert_eq!(s.steps.len(), 3);
    assert_eq!(s.steps[1].line, 8);
    match &s.steps[1].action {
        Action::Client {
            actor,
            action: ClientAction::Publish { payload, .. },
        } => {
            assert_eq!(actor, "device");
            assert_eq!(&payload[..], &[0x00, 0xff]);
        }
        other => panic!("{other:?}"),
    }
    match &s.steps[2].action {
        Action::Expect(e) => {
            assert_eq!(e.actor, "cloud");
            assert_eq!(e.within, std::time::Duration::from_secs(2));
            assert!(matches!(e.what, Expect::Message { count: 1, .. }));
        }
        other => panic!("{other:?}"),
    }
}
