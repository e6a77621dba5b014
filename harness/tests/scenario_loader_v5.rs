//! 5.0 keys in scenario files: accepted where the spec puts them, refused
//! with file, line, field and the statement that forbids them elsewhere.

use std::path::Path;

fn err(text: &str) -> String {
    match mqtt_hil::scenario::parse(Path::new("bad.toml"), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn ok(text: &str) -> mqtt_hil::scenario::Scenario {
    mqtt_hil::scenario::parse(Path::new("good.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

const V5_DEVICE: &str = "name = \"x\"\n[device]\nversion = \"5\"\n";

#[test]
fn a_5_0_property_in_a_3_1_1_scenario_is_refused_at_its_line() {
    let e = err("name = \"x\"\n[device]\nproperties = { session_expiry = 5 }\n[[step]]\ndevice = \"connect\"\n");
    assert!(e.contains("bad.toml:3"), "{e}");
    assert!(
        e.contains("`properties`") && e.contains("MQTT 5.0") && e.contains("3.1.1"),
        "{e}"
    );
    let e = err("name = \"x\"\n[device]\n[[step]]\ndevice = \"connect\"\n[[step]]\ndevice = \"subscribe\"\nfilter = \"a\"\nno_local = true\n");
    assert!(e.contains("bad.toml:8") && e.contains("no_local"), "{e}");
    let e = err("name = \"x\"\n[device]\n[[step]]\ndevice = \"disconnect\"\nreason = 4\n");
    assert!(e.contains("bad.toml:5") && e.contains("reason"), "{e}");
}

#[test]
fn a_property_on_the_wrong_packet_is_refused_with_the_table_that_forbids_it() {
    let e = err(&format!(
        "{V5_DEVICE}properties = {{ topic_alias = 1 }}\n[[step]]\ndevice = \"connect\"\n"
    ));
    assert!(
        e.contains("bad.toml:4")
            && e.contains("Topic Alias may not appear in CONNECT")
            && e.contains("Table 2-4"),
        "{e}"
    );
    let e = err(&format!("{V5_DEVICE}[[step]]\ndevice = \"connect\"\n[[step]]\ndevice = \"publish\"\ntopic = \"a\"\nproperties = {{ session_expiry = 3 }}\n"));
    assert!(
        e.contains("bad.toml:9") && e.contains("Session Expiry Interval may not appear in PUBLISH"),
        "{e}"
    );
    let e = err(&format!("{V5_DEVICE}will = {{ topic = \"w\", properties = {{ receive_maximum = 3 }} }}\n[[step]]\ndevice = \"connect\"\n"));
    assert!(e.contains("the will"), "{e}");
}

#[test]
fn values_out_of_range_cite_their_statement_unless_raw() {
    let e = err(&format!("{V5_DEVICE}[[step]]\ndevice = \"connect\"\n[[step]]\ndevice = \"publish\"\ntopic = \"a\"\nproperties = {{ topic_alias = 0 }}\n"));
    assert!(
        e.contains("bad.toml:9") && e.contains("MQTT-3.3.2-8"),
        "{e}"
    );
    let e = err(&format!(
        "{V5_DEVICE}properties = {{ receive_maximum = 0 }}\n[[step]]\ndevice = \"connect\"\n"
    ));
    assert!(
        e.contains("Receive Maximum 0") && e.contains("§3.1.2.11.3"),
        "{e}"
    );
    let e = err(&format!("{V5_DEVICE}[[step]]\ndevice = \"connect\"\n[[step]]\ndevice = \"subscribe\"\nfilter = \"$share/g/a\"\nno_local = true\n"));
    assert!(e.contains("MQTT-3.8.3-4"), "{e}");
    let e = err(&format!("{V5_DEVICE}[[step]]\ndevice = \"connect\"\n[[step]]\ndevice = \"disconnect\"\nreason = 3\n"));
    assert!(e.contains("not a DISCONNECT reason code"), "{e}");
    // On purpose: sent as written, to judge the broker's reaction.
    let s = ok(&format!("{V5_DEVICE}[[step]]\ndevice = \"connect\"\n[[step]]\ndevice = \"publish\"\ntopic = \"a\"\nraw = true\nproperties = {{ topic_alias = 0 }}\n"));
    assert!(matches!(
        &s.steps[1].action,
        mqtt_hil::scenario::Action::Client {
            action: mqtt_hil::scenario::ClientAction::Publish { raw: true, .. },
            ..
        }
    ));
}

#[test]
fn versions_make_one_scenario_per_version_and_refuse_5_0_only_keys() {
    let s = ok("name = \"x\"\nversions = [\"3.1.1\", \"5\"]\n[device]\nclean_session = false\n[[step]]\ndevice = \"connect\"\n");
    let runs = s.per_version();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].id, "good");
    assert_eq!(runs[1].id, "good@5");
    let d = runs[1].device.as_ref().unwrap();
    assert_eq!(d.connect.version, mqtt_hil::mqtt::Version::V5);
    // A 3.1.1 persistent session means a session that never expires.
    assert_eq!(
        mqtt_hil::mqtt::props::num(&d.connect.properties, mqtt_hil::mqtt::props::SESSION_EXPIRY),
        Some(u32::MAX)
    );
    let e = err("name = \"x\"\nversions = [\"3.1.1\", \"5\"]\n[device]\nproperties = { session_expiry = 3 }\n[[step]]\ndevice = \"connect\"\n");
    assert!(e.contains("bad.toml:4") && e.contains("properties"), "{e}");
    let e = err("name = \"x\"\nversions = [\"4\"]\n[device]\n[[step]]\ndevice = \"connect\"\n");
    assert!(e.contains("bad.toml:2") && e.contains("versions"), "{e}");
}

#[test]
fn expectations_on_reason_codes_and_properties() {
    let s = ok(&format!("{V5_DEVICE}[[step]]\ndevice = \"connect\"\n[[step]]\nexpect = \"reason\"\npacket = \"DISCONNECT\"\ncode = 0x8E\n[[step]]\nexpect = \"message\"\nproperties = {{ message_expiry = \"*\", user_properties = [[\"a\", \"1\"]] }}\n"));
    assert_eq!(s.steps.len(), 3);
    let e = err(&format!(
        "{V5_DEVICE}[[step]]\nexpect = \"reason\"\npacket = \"DISCONNECT\"\n"
    ));
    assert!(e.contains("needs `code`"), "{e}");
}
