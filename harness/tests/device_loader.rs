//! Device descriptions and the generic suite's expansion, without a board:
//! every bad input is rejected at load with file, line and field; the
//! project's own descriptions load and fill every suite file.

use std::path::{Path, PathBuf};

use mqtt_hil::check::InvariantSpec;
use mqtt_hil::device::{self, suite, Number, Reaction};
use mqtt_hil::error::Error;
use mqtt_hil::mqtt::QoS;
use mqtt_hil::scenario::{Action, ClientAction, Expect};
use rstest::rstest;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const GOOD: &str = r#"name = "lamp"
keepalive = 4
will = { topic = "lamps/{client_id}/status", payload = "offline" }

[[publish]]
topic = "lamps/{client_id}/reading"
qos = 1
json = "n"
periodic = true

[[command]]
topic = "lamps/{client_id}/set"
payload = "on"
reaction = { publish = "lamps/{client_id}/state", payload = "on" }

[[command]]
topic = "lamps/{client_id}/set"
payload = "off"
reaction = { uart = "lamp off" }

[limits]
command_payload = 64
"#;

fn desc(text: &str) -> device::Description {
    device::parse(Path::new("lamp.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_description_reads_into_the_domain_type() {
    let d = desc(GOOD);
    assert_eq!(d.name, "lamp");
    assert_eq!(d.keepalive, Some(4));
    assert_eq!(d.publishes[0].qos, QoS::AtLeastOnce);
    assert_eq!(d.publishes[0].number, Some(Number::Json("n".into())));
    assert!(d.publishes[0].periodic);
    assert_eq!(
        d.commands[1].qos,
        QoS::AtLeastOnce,
        "commands default to QoS 1"
    );
    assert_eq!(d.commands[1].reaction, Reaction::Uart("lamp off".into()));
    assert_eq!(d.limits.command_payload, Some(64));
    assert_eq!(
        d.allowed_topics(),
        vec![
            "lamps/{client_id}/reading",
            "lamps/{client_id}/state",
            "lamps/{client_id}/status"
        ]
    );
    assert_eq!(d.commands[0].padded(5, ' '), "on   ");
}

/// Found by `make fuzz` (target device): an invalid escape at the end of
/// a line (a backslash before the newline) was reported on the next line
/// of an LF file, on the right one of a CRLF file.
#[test]
fn an_invalid_escape_is_on_its_own_line_with_lf_and_crlf() {
    let text = "name = \"lamp\\\n[[publish]]\ntopic = \"a\"\n";
    for t in [text.to_string(), text.replace('\n', "\r\n")] {
        let e = device::parse(Path::new("lamp.toml"), &t).unwrap_err();
        assert!(matches!(e, Error::Input { line: 1, .. }), "{t:?}: {e}");
        assert!(e.to_string().contains("invalid escape sequence"), "{e}");
    }
}

/// Each bad input, the line it must be reported at, and what the message
/// must say (table, field, why).
#[rstest]
#[case::unknown_top_key(
    "keepalve = 4\n[[publish]]\ntopic = \"a\"\n",
    1,
    "description: field `keepalve`: unknown field (did you mean `keepalive`?)"
)]
#[case::unknown_publish_key(
    "[[publish]]\ntopic = \"a\"\njsn = \"n\"\n",
    3,
    "publish 1: field `jsn`: unknown field (did you mean `json`?)"
)]
#[case::unknown_command_key("[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\npayload = \"on\"\nreaction = { uart = \"x\" }\nretain = true\n", 7, "command 1: field `retain`: unknown field")]
#[case::unknown_reaction_key("[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\npayload = \"on\"\nreaction = { publish = \"s\", paylod = \"on\" }\n", 6, "command 1: reaction: field `paylod`: unknown field (did you mean `payload`?)")]
#[case::unknown_limits_key("[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\npayload = \"on\"\nreaction = { uart = \"x\" }\n[limits]\ncommand_size = 9\n", 8, "limits: field `command_size`: unknown field")]
#[case::unknown_will_key(
    "will = { topic = \"w\", qos = 1, retained = true }\n[[publish]]\ntopic = \"a\"\n",
    1,
    "will: field `retained`: unknown field (did you mean `retain`?)"
)]
#[case::filter_as_publish_topic(
    "[[publish]]\ntopic = \"devices/+/counter\"\n",
    2,
    "publish 1: field `topic`: a topic name must not contain wildcards"
)]
#[case::filter_as_command_topic("[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"cmd/#\"\npayload = \"on\"\nreaction = { uart = \"x\" }\n", 4, "command 1: field `topic`: a topic name must not contain wildcards")]
#[case::filter_as_reaction_topic("[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\npayload = \"on\"\nreaction = { publish = \"state/+\" }\n", 6, "command 1: reaction: field `publish`: a topic name must not contain wildcards")]
#[case::filter_as_will_topic(
    "will = { topic = \"status/#\" }\n[[publish]]\ntopic = \"a\"\n",
    1,
    "will: field `topic`: a topic name must not contain wildcards"
)]
#[case::command_without_reaction(
    "[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\npayload = \"on\"\n",
    3,
    "command 1: missing field `reaction`"
)]
#[case::empty_reaction(
    "[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\npayload = \"on\"\nreaction = {}\n",
    6,
    "command 1: reaction: no reaction given"
)]
#[case::two_reactions("[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\npayload = \"on\"\nreaction = { publish = \"s\", uart = \"x\" }\n", 6, "give either `publish` or `uart`")]
#[case::reaction_not_a_table("[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\npayload = \"on\"\nreaction = \"state\"\n", 6, "command 1: field `reaction`: expected a table")]
#[case::command_without_payload(
    "[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\nreaction = { uart = \"x\" }\n",
    3,
    "command 1: missing field `payload`"
)]
#[case::json_and_regex(
    "[[publish]]\ntopic = \"a\"\njson = \"n\"\nregex = \"(\\\\d+)\"\n",
    4,
    "publish 1: field `regex`: give either `json` or `regex`"
)]
#[case::bad_regex(
    "[[publish]]\ntopic = \"a\"\nregex = \"(\"\n",
    3,
    "publish 1: field `regex`"
)]
#[case::qos_out_of_range(
    "[[publish]]\ntopic = \"a\"\nqos = 3\n",
    3,
    "publish 1: field `qos`: 3 is out of range 0..=2"
)]
#[case::announcements_without_number(
    "[[publish]]\ntopic = \"a\"\nannouncements = true\n",
    3,
    "publish 1: field `announcements`"
)]
#[case::unknown_placeholder(
    "[[publish]]\ntopic = \"d/{device_id}/n\"\n",
    2,
    "publish 1: field `topic`: `d/{device_id}/n`: `{client_id}` is the only placeholder"
)]
#[case::nothing_published(
    "[[command]]\ntopic = \"c\"\npayload = \"on\"\nreaction = { uart = \"x\" }\n",
    1,
    "declares no topic the device publishes on"
)]
#[case::limit_below_a_command("[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\npayload = \"toggle\"\nreaction = { uart = \"x\" }\n[limits]\ncommand_payload = 3\n", 8, "limits: field `command_payload`: 3 bytes is less than command 1's own payload (6 bytes)")]
#[case::limit_without_command(
    "[[publish]]\ntopic = \"a\"\n[limits]\ncommand_payload = 30\n",
    4,
    "limits: field `command_payload`: a command size limit needs a [[command]]"
)]
#[case::fill_of_two_chars("[[publish]]\ntopic = \"a\"\n[[command]]\ntopic = \"c\"\npayload = \"on\"\nreaction = { uart = \"x\" }\n[limits]\ncommand_payload = 9\nfill = \"ab\"\n", 9, "limits: field `fill`: `ab`: give one character")]
#[case::bad_duration(
    "retry_max = \"5\"\n[[publish]]\ntopic = \"a\"\n",
    1,
    "description: field `retry_max`: `5` has no unit"
)]
#[case::syntax("[[publish]\ntopic = \"a\"\n", 1, "")]
#[case::wrong_type("publish = \"a\"\n", 1, "")]
fn a_bad_description_is_rejected_with_file_line_and_field(
    #[case] text: &str,
    #[case] line: usize,
    #[case] says: &str,
) {
    match device::parse(Path::new("dev.toml"), text) {
        Err(e @ Error::Input { .. }) => {
            let Error::Input {
                file,
                line: got,
                message,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(file, Path::new("dev.toml"));
            assert_eq!(*got, line, "{e}");
            assert!(message.contains(says), "{e}");
            assert!(
                e.to_string().starts_with(&format!("dev.toml:{line}: ")),
                "{e}"
            );
        }
        Err(other) => panic!("expected an input error, got {other}"),
        Ok(d) => panic!("accepted:\n{text}\nas {d:?}"),
    }
}

fn expand(suite_text: &str, d: &device::Description) -> Result<suite::Expanded, Error> {
    suite::expand(Path::new("suite.toml"), suite_text, d)
}

fn scenario(e: suite::Expanded) -> mqtt_hil::scenario::Scenario {
    match e {
        suite::Expanded::Run(s) => *s,
        suite::Expanded::Skipped { reason, .. } => panic!("skipped: {reason}"),
    }
}

const SUITE_HEAD: &str =
    "name = \"x\"\n[device]\nautonomous = true\nperiodic = [\"{periodic}\"]\n[observer.cloud]\n";

#[test]
fn placeholders_commands_and_reactions_are_filled_from_the_description() {
    let d = desc(GOOD);
    let text = format!(
        "{SUITE_HEAD}[[step]]\nexpect = \"published\"\ntopic = \"{{publish.0.topic}}\"\nwithin = \"{{reconnect}}\"\n\
         [[step]]\nobserver.cloud = \"publish\"\ncommand = 0\npayload = \"{{command.0.at_limit}}\"\n\
         [[step]]\nexpect = \"reaction\"\ncommand = 0\nresend = \"2s\"\n\
         [[step]]\nobserver.cloud = \"publish\"\ncommand = 3\n\
         [[step]]\nexpect = \"reaction\"\ncommand = 1\n\
         [[step]]\nwait = \"{{loss.long}}\"\n"
    );
    let s = scenario(expand(&text, &d).unwrap());
    assert_eq!(
        s.autonomous.as_ref().unwrap().periodic,
        vec!["lamps/+/reading"]
    );
    let a: Vec<&Action> = s.steps.iter().map(|s| &s.action).collect();
    // {client_id} is left for the runner; {reconnect} = 10 s + 6 s + 5 s.
    match a[0] {
        Action::Expect(e) => {
            assert!(
                matches!(&e.what, Expect::Published { topic: Some(t), .. } if t == "lamps/{client_id}/reading")
            );
            assert_eq!(e.within, std::time::Duration::from_secs(21));
        }
        other => panic!("{other:?}"),
    }
    match a[1] {
        Action::Client {
            action:
                ClientAction::Publish {
                    topic,
                    payload,
                    qos,
                    ..
                },
            ..
        } => {
            assert_eq!(topic, "lamps/{client_id}/set");
            assert_eq!(payload.len(), 64);
            assert!(payload.starts_with(b"on "));
            assert_eq!(*qos, QoS::AtLeastOnce);
        }
        other => panic!("{other:?}"),
    }
    match a[2] {
        Action::Expect(e) => {
            assert_eq!(e.resend, Some(std::time::Duration::from_secs(2)));
            assert!(
                matches!(&e.what, Expect::Published { topic: Some(t), payload: Some(p), .. } if t == "lamps/{client_id}/state" && p == "on")
            );
        }
        other => panic!("{other:?}"),
    }
    // Command numbers count modulo the commands declared: 3 is the second.
    assert!(matches!(
        a[3],
        Action::Client { action: ClientAction::Publish { payload, .. }, .. } if payload == "off"
    ));
    assert!(matches!(
        a[4],
        Action::Expect(e) if e.what == Expect::Uart { contains: "lamp off".into() }
    ));
    assert!(matches!(a[5], Action::Wait(w) if *w == std::time::Duration::from_secs(8)));
    // The description's own checks come with every suite scenario.
    let checks: Vec<&InvariantSpec> = s.invariants.iter().map(|i| &i.spec).collect();
    assert!(checks.iter().any(|c| matches!(c,
        InvariantSpec::Sequence { topic, qos: Some(1), json: Some(j), skip_unnumbered: false, .. }
            if topic == "lamps/{client_id}/reading" && j == "n")));
    assert!(checks.iter().any(|c| matches!(c,
        InvariantSpec::PublishAllowed { topics, .. } if topics.len() == 3)));
    assert!(checks
        .iter()
        .any(|c| matches!(c, InvariantSpec::Resubscribe { .. })));
    assert!(checks.iter().any(|c| matches!(c,
        InvariantSpec::Declared { keepalive: Some(4), will_topic: Some(t), .. } if t == "lamps/{client_id}/status")));
}

/// A suite file's mistakes are reported at the suite file's line.
#[rstest]
#[case::unknown_placeholder(
    "[[step]]\nexpect = \"published\"\ntopic = \"{publish.0.topik}\"\n",
    8,
    "step 1: field `topic`: unknown placeholder `{publish.0.topik}`"
)]
#[case::reaction_without_command(
    "[[step]]\nexpect = \"reaction\"\n",
    7,
    "step 1: field `expect`: `expect = \"reaction\"` needs `command = N`"
)]
#[case::command_elsewhere(
    "[[step]]\nwait = \"1s\"\ncommand = 0\n",
    8,
    "step 1: field `command`: `command` belongs to"
)]
#[case::resend_without_publish(
    "[[step]]\nexpect = \"published\"\nresend = \"1s\"\n",
    8,
    "step 1: field `resend`: `resend` sends the previous step again"
)]
#[case::unknown_need(
    "[[step]]\nwait = \"1s\"\n",
    4,
    "unknown need `comand` (did you mean `command`?)"
)]
fn a_bad_suite_file_is_rejected_with_its_line(
    #[case] steps: &str,
    #[case] line: usize,
    #[case] says: &str,
) {
    let head = if says.contains("unknown need") {
        "name = \"x\"\n[device]\nautonomous = true\nneeds = [\"comand\"]\n[observer.cloud]\n"
    } else {
        SUITE_HEAD
    };
    match expand(&format!("{head}{steps}"), &desc(GOOD)) {
        Err(e @ Error::Input { .. }) => {
            let Error::Input {
                line: got, message, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(*got, line, "{e}");
            assert!(message.contains(says), "{e}");
        }
        Err(other) => panic!("expected an input error, got {other}"),
        Ok(e) => panic!("accepted: {e:?}"),
    }
}

#[test]
fn a_scenario_the_description_cannot_fill_is_skipped_with_the_reason() {
    let d = desc("[[publish]]\ntopic = \"a\"\n");
    let text =
        "name = \"x\"\n[device]\nautonomous = true\nneeds = [\"command\"]\n[observer.cloud]\n\
                [[step]]\nobserver.cloud = \"publish\"\ncommand = 0\n";
    match expand(text, &d).unwrap() {
        suite::Expanded::Skipped { reason, .. } => {
            assert!(reason.contains("declares no [[command]]"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Without `needs`, the steps with `command = N` are left out and the
    // rest still runs; a placeholder elsewhere says what to add.
    let text = text.replace("needs = [\"command\"]\n", "");
    let more =
        format!("{text}[[step]]\nnet = \"sever\"\n[[step]]\nexpect = \"reaction\"\ncommand = 1\n");
    let s = scenario(expand(&more, &d).unwrap());
    assert_eq!(s.steps.len(), 1, "{:?}", s.steps);
    assert!(matches!(s.steps[0].action, Action::Net { .. }));
    let e = expand(
        &format!("{text}[[step]]\nexpect = \"published\"\ntopic = \"{{command.0.topic}}\"\n"),
        &d,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("suite.toml:10: step 2: field `topic`")
            && e.contains("declares no [[command]]")
            && e.contains("needs = [\"command\"]"),
        "{e}"
    );
}

/// The project's own descriptions load, and fill every suite file.
#[rstest]
#[case::counter_device("firmware/sketches/counter_device/device.toml")]
#[case::photocell_feeds("firmware/sketches/photocell_feeds/device.toml")]
fn our_descriptions_fill_the_whole_suite(#[case] file: &str) {
    let d = device::load(&root().join(file)).unwrap_or_else(|e| panic!("{e}"));
    let suite = suite::load_suite(&[root().join("scenarios/device")], &d).unwrap();
    assert!(suite.len() >= 8);
    for e in suite {
        let s = scenario(e);
        assert!(s.autonomous.is_some(), "{}", s.id);
    }
}
