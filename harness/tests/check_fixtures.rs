//! Recorded histories (tests/fixtures/histories) judged by the checkers,
//! and the scenario-file syntax of `[[invariant]]` tables.
use crate::check_util::*;
use mqtt_hil::check::InvariantSpec;
use std::time::Duration;

#[test]
fn recorded_qos2_duplicate_after_reconnect_fails() {
    let h = load_fixture("qos2_duplicate_after_reconnect.hist");
    let v = check(r#"check = "exactly_once""#, &h);
    assert_eq!(v.rules(), vec!["MQTT-4.3.3-2"], "{:?}", v);
    assert!(v.violations[0].message.contains("2 times as a new message"));
}

/// NATS 2.10 resent a QoS 2 message with DUP=1 under a new packet id while
/// the device still held the first: the device could not recognise it, so
/// the duplicate is the broker's (it used to be blamed on the device).
#[test]
fn recorded_qos2_resend_under_new_pid_blames_the_broker() {
    let h = load_fixture("qos2_resend_under_new_pid.hist");
    let v = check(r#"check = "exactly_once""#, &h);
    assert_eq!(v.rules(), vec!["MQTT-4.3.3-2"], "{:?}", v);
    let msg = &v.violations[0].message;
    assert!(!msg.contains("failed to discard"), "{msg}");
    assert!(msg.contains("the duplicate is the broker's"), "{msg}");
    assert!(msg.contains("pid 1 (DUP=0, event #"), "{msg}");
    assert!(
        msg.contains("pid 2 (DUP=1, a packet id device was not holding"),
        "{msg}"
    );
    assert!(msg.contains("on the same connection"), "{msg}");
    assert!(msg.contains("[MQTT-2.3.1-4]"), "{msg}");
    // The resend itself, on the wire: DUP=1 under an id it never had.
    let v = always("protocol", &h);
    assert_eq!(v.rules(), vec!["MQTT-2.3.1-4"], "{:?}", v);
    let msg = &v.violations[0].message;
    assert!(
        msg.contains("the broker (to device) resent \"c1\" on `dut/a2b30/cmd` (in flight as pid 1 since event #"),
        "{msg}"
    );
    assert!(msg.contains("as pid 2 with DUP=1"), "{msg}");
}

#[test]
fn recorded_will_after_clean_disconnect_fails() {
    let h = load_fixture("will_after_clean_disconnect.hist");
    let v = check(r#"check = "will""#, &h);
    assert_eq!(v.rules(), vec!["MQTT-3.14.4-3"], "{:?}", v);
    assert!(!v.violations[0].events.is_empty());
}

#[test]
fn recorded_will_on_blackhole_passes() {
    let h = load_fixture("will_on_blackhole_good.hist");
    let v = check(r#"check = "will""#, &h);
    assert!(v.ok(), "{:?}", v);
    let v = check("check = \"keepalive\"\nclient = false", &h);
    assert!(v.ok(), "{:?}", v);
    // A tighter slack turns the same history into a late will.
    let v = check("check = \"will\"\nslack = \"0ms\"", &h);
    assert_eq!(v.rules(), vec!["will-late"], "{:?}", v);
}

#[test]
fn recorded_missing_resend_fails() {
    let h = load_fixture("resend_missing_after_resume.hist");
    let v = check(r#"check = "protocol""#, &h);
    assert_eq!(v.rules(), vec!["MQTT-4.4.0-1"], "{:?}", v);
}

#[test]
fn invariant_tables_parse_with_defaults() {
    let s: InvariantSpec = toml::from_str(r#"check = "will""#).unwrap();
    assert_eq!(
        s,
        InvariantSpec::Will {
            actor: None,
            slack: Duration::from_secs(1)
        }
    );
    let s: InvariantSpec =
        toml::from_str("check = \"exactly_once\"\nsettle = \"500ms\"\ntopic = \"dut/#\"").unwrap();
    assert_eq!(
        s,
        InvariantSpec::ExactlyOnce {
            topic: Some("dut/#".into()),
            publisher: None,
            settle: Duration::from_millis(500)
        }
    );
    let s: InvariantSpec = toml::from_str("check = \"wildcards\"").unwrap();
    assert!(matches!(s, InvariantSpec::Delivery { .. }));
    let s: InvariantSpec = toml::from_str("check = \"keepalive\"\nslack = 1.5").unwrap();
    assert!(
        matches!(s, InvariantSpec::Keepalive { slack, client: true, broker: true, .. } if slack == Duration::from_millis(1500))
    );
    for spec in ["session", "retained", "shared", "protocol", "delivery"] {
        let s: InvariantSpec = toml::from_str(&format!("check = \"{spec}\"")).unwrap();
        assert_eq!(mqtt_hil::check::build(&s).name(), spec);
    }
    let s: InvariantSpec = toml::from_str("check = \"backoff\"\nmax_per_second = 3").unwrap();
    assert_eq!(
        s,
        InvariantSpec::Backoff {
            actor: "device".into(),
            max_per_second: 3
        }
    );
}

#[test]
fn invariant_tables_reject_mistakes() {
    let e = toml::from_str::<InvariantSpec>("check = \"will\"\nslak = \"1s\"").unwrap_err();
    assert!(e.to_string().contains("slak"), "{e}");
    assert!(toml::from_str::<InvariantSpec>("check = \"exactly_twice\"").is_err());
    let e = toml::from_str::<InvariantSpec>("check = \"will\"\nslack = \"1h\"").unwrap_err();
    assert!(e.to_string().contains("unknown time unit"), "{e}");
}

/// Histories recorded from the seeded fake peers of tests/check_peers.rs,
/// judged by the checkers every scenario runs.
#[test]
fn recorded_peer_faults_are_caught_and_a_good_takeover_passes() {
    // The SUBACK echoing id 0 is malformed, under no 3.1.1 statement.
    let v = always("codec", &load_fixture("peer_subscribe_pid_0.hist"));
    assert_eq!(v.rules(), vec!["MQTT-2.3.1-1", "malformed-packet"], "{v:?}");
    let v = always("protocol", &load_fixture("peer_no_pubcomp.hist"));
    assert_eq!(v.rules(), vec!["MQTT-4.3.3-2"], "{v:?}");
    let v = always("connections", &load_fixture("peer_takeover_ignored.hist"));
    assert_eq!(v.rules(), vec!["MQTT-3.1.4-2"], "{v:?}");
    let v = always("connections", &load_fixture("peer_unprovoked_close.hist"));
    assert_eq!(v.rules(), vec!["broker-closed"], "{v:?}");
    let h = load_fixture("peer_takeover_good.hist");
    for c in mqtt_hil::check::always() {
        let v = c.check(&h);
        assert!(v.ok(), "{v:?}");
    }
}

/// amqtt resends PUBREC on a resumed session (allowed: 3.1.1 and 5.0 only
/// demand PUBLISH and PUBREL be resent) and the device answers both of its
/// PUBRECs; the second answer crossed amqtt's PUBCOMP. The device broke
/// nothing, whichever of the crossing packets the proxy saw first (the
/// protocol checker once blamed it, in some runs only). A second PUBREL
/// with no PUBREC to answer is still caught (tests/check_protocol.rs).
#[test]
fn a_pubrel_answering_a_resent_pubrec_across_the_pubcomp_passes() {
    let v = always(
        "protocol",
        &load_fixture("amqtt_pubrec_resent_on_resume.hist"),
    );
    assert!(v.ok(), "{v:?}");
}
