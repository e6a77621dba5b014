//! The always-on rules about frames and connections: frames the codec
//! rejects (`codec`), takeovers and the broker's closes (`connections`),
//! each with a history that breaks the rule and a tricky one that does not.
use crate::check_util::*;
use mqtt_hil::history::{CloseReason, Dir};

const PID0: &str = "SUBSCRIBE packet identifier at byte 2 is 0 [MQTT-2.3.1-1]";

#[test]
fn a_subscribe_with_packet_id_0_is_a_violation_of_its_sender() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    let bad = t.malformed(
        dev,
        Dir::ToBroker,
        &[0x82, 0x08, 0, 0, 0, 3, b'a', b'/', b'b', 1],
        PID0,
    );
    // The broker closes the connection, as it must [MQTT-4.8.0-1].
    t.close(dev, CloseReason::BrokerClosed);
    t.wait(2000).step("end");
    let v = always("codec", &t.history());
    assert_eq!(v.rules(), vec!["MQTT-2.3.1-1"], "{v:?}");
    assert_eq!(v.violations[0].events, vec![bad]);
    assert!(v.violations[0].message.starts_with("device sent"), "{v:?}");
    assert!(v.violations[0].message.contains("82 08 00 00"), "{v:?}");
}

#[test]
fn the_broker_is_judged_too_and_an_unnumbered_error_is_malformed_packet() {
    let mut t = T::new();
    let c = t.connect("cloud", "cloud", true, 60);
    t.malformed(
        c,
        Dir::ToClient,
        &[0x40, 0x03, 0, 1, 9],
        "PUBACK has 1 unexpected byte(s) after its last field, from byte 4",
    );
    let v = always("codec", &t.history());
    assert_eq!(v.rules(), vec!["malformed-packet"], "{v:?}");
    assert!(v.violations[0].message.starts_with("the broker (to cloud)"));
}

#[test]
fn a_raw_step_is_on_purpose_and_a_broken_stream_counts_once() {
    let mut t = T::new();
    let p = t.connect("prober", "prober", true, 60);
    t.step("prober publish a/b \"zero\" qos=1 raw");
    t.malformed(
        p,
        Dir::ToBroker,
        &[0x32, 0x0a],
        "PUBLISH property Topic Alias at byte 9: Topic Alias 0 is a Protocol Error [MQTT-3.3.2-8]",
    );
    // The same bytes from another actor in that step are not on purpose.
    let dev = t.connect("device", "dut-1", true, 60);
    t.malformed(
        dev,
        Dir::ToBroker,
        &[0x00],
        "packet type 0 is reserved (first byte 0x00 at byte 0) [MQTT-2.2.1]",
    );
    t.malformed(
        dev,
        Dir::ToBroker,
        &[0x01, 0x02],
        "packet type 0 is reserved (first byte 0x00 at byte 0) [MQTT-2.2.1]",
    );
    let v = always("codec", &t.history());
    // A section reference is not a statement: the frame is malformed.
    assert_eq!(v.rules(), vec!["malformed-packet"], "{v:?}");
    assert!(
        v.notes.iter().any(|n| n.contains("as its step asked")),
        "{v:?}"
    );
    assert!(
        v.notes.iter().any(|n| n.contains("1 more undecodable")),
        "{v:?}"
    );
}

#[test]
fn the_old_connection_left_open_after_a_takeover_fails() {
    let mut t = T::new();
    let old = t.connect("device", "dut-1", false, 60);
    t.wait(1000);
    let new = t.connect("device", "dut-1", false, 60);
    t.wait(500);
    // The broker still forwards to the old connection.
    t.down(old, publish(None, 0, "a/b", "x", false, false));
    t.wait(4000).step("end");
    let v = always("connections", &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.1.4-2"], "{v:?}");
    assert!(v.violations[0].message.contains("still open"), "{v:?}");
    let _ = new;
}

#[test]
fn a_takeover_close_in_time_or_under_a_blackhole_passes() {
    // The broker closes the old connection as the new CONNECT arrives:
    // a takeover, and no unprovoked close.
    let mut t = T::new();
    let old = t.connect("device", "dut-1", false, 60);
    t.wait(1000);
    let new = t.open("device");
    t.up(
        new,
        mqtt_hil::mqtt::Packet::Connect(connect_pkt("dut-1", false, 60, None)),
    );
    t.close(old, CloseReason::BrokerClosed);
    t.down(
        new,
        mqtt_hil::mqtt::Packet::ConnAck(mqtt_hil::mqtt::ConnAck {
            session_present: true,
            code: 0,
            properties: Default::default(),
        }),
    );
    t.wait(4000).step("end");
    let v = always("connections", &t.history());
    assert!(v.ok(), "{v:?}");
    assert!(
        v.notes.iter().any(|n| n.contains("same client id")),
        "{v:?}"
    );

    // A blackhole on the old connection's actor hides the broker's close.
    let mut t = T::new();
    t.connect("device", "dut-1", false, 60);
    t.fault("device", "blackhole");
    t.wait(1000);
    t.connect("device", "dut-1", false, 60);
    t.wait(4000).step("end");
    let v = always("connections", &t.history());
    assert!(v.ok(), "{v:?}");
    assert!(
        v.notes.iter().any(|n| n.contains("can hide the close")),
        "{v:?}"
    );
}

#[test]
fn an_unprovoked_broker_close_is_a_broker_fault() {
    let mut t = T::new();
    let c = t.connect("device", "dut-1", true, 60);
    t.wait(300);
    t.publish(c, 1, 1, "a/b", "m1");
    t.wait(2000);
    t.close(c, CloseReason::BrokerClosed);
    t.wait(1000).step("end");
    let v = always("connections", &t.history());
    assert_eq!(v.rules(), vec!["broker-closed"], "{v:?}");
    assert!(v.violations[0]
        .message
        .contains("no cause the history shows"));
    assert!(
        v.violations[0].message.contains("last packet was PUBACK")
            || v.violations[0].message.contains("last packet was PUBLISH"),
        "{v:?}"
    );
}

#[test]
fn broker_closes_with_a_cause_pass() {
    // Keep alive expired: silent for 3.1s with keep alive 2.
    let mut t = T::new();
    let c = t.connect("device", "dut-1", true, 2);
    t.wait(3100);
    t.close(c, CloseReason::BrokerClosed);
    let v = always("connections", &t.history());
    assert!(v.ok(), "{v:?}");
    // A broker restart: the close comes before the restart is recorded.
    let mut t = T::new();
    let c = t.connect("device", "dut-1", true, 60);
    t.wait(1000).step("broker restart");
    t.wait(10);
    t.close(c, CloseReason::BrokerClosed);
    t.wait(2500).broker("restart");
    let v = always("connections", &t.history());
    assert!(v.ok(), "{v:?}");
    // The client broke a rule (a QoS 0 PUBLISH with a packet id).
    let mut t = T::new();
    let c = t.connect("cloud", "cloud", true, 60);
    t.up(c, publish(Some(4), 0, "a/b", "x", false, false));
    t.close(c, CloseReason::BrokerClosed);
    let v = always("connections", &t.history());
    assert!(v.ok(), "{v:?}");
    // Closed after the client's DISCONNECT, and during teardown.
    let mut t = T::new();
    let c = t.connect("device", "dut-1", true, 60);
    t.up(c, mqtt_hil::mqtt::Packet::Disconnect(Default::default()));
    t.close(c, CloseReason::BrokerClosed);
    let c2 = t.connect("cloud", "cloud", true, 60);
    t.push(mqtt_hil::history::EventKind::Teardown);
    t.close(c2, CloseReason::BrokerClosed);
    let v = always("connections", &t.history());
    assert!(v.ok(), "{v:?}");
}

#[test]
fn the_sever_of_the_previous_connection_does_not_explain_a_close() {
    // rumqttd 0.20, qos2_out_cut_after_pubrel: the device resends its
    // PUBREL on the resumed session right after a sever, and the broker
    // hangs up instead of answering PUBCOMP.
    let mut t = T::new();
    let c1 = t.connect("device", "dut-o3", false, 60);
    t.up(c1, publish(Some(1), 2, "dut/o3/data", "m1", false, false));
    t.ack(c1, false, "pubrec", 1);
    t.ack(c1, true, "pubrel", 1);
    t.fault("device", "sever");
    t.close(c1, CloseReason::Severed);
    let c2 = t.connect_full("device", connect_pkt("dut-o3", false, 60, None), true);
    t.ack(c2, true, "pubrel", 1);
    t.close(c2, CloseReason::BrokerClosed);
    t.wait(5000).step("end");
    let v = always("connections", &t.history());
    assert_eq!(v.rules(), vec!["broker-closed"], "{v:?}");
    assert!(
        v.violations[0].message.contains("last packet was PUBREL"),
        "{v:?}"
    );
}

#[test]
fn a_failed_step_names_the_rule_broken_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub.toml");
    std::fs::write(
        &path,
        "name = \"x\"\n[device]\nclient_id = \"dut-1\"\n\n[[step]]\ndevice = \"connect\"\n\n[[step]]\ndevice = \"subscribe\"\nfilter = \"a/b\"\nqos = 1\n\n[[step]]\nexpect = \"packet\"\npacket = \"SUBACK\"\n\n[[step]]\nwait = \"1s\"\n",
    )
    .unwrap();
    let s = mqtt_hil::scenario::load(&path).unwrap();
    // Step events carry the step's 1-based index.
    let h_steps = |t: &mut T, i: usize, s: &str| {
        t.push(mqtt_hil::history::EventKind::Step {
            index: i,
            summary: s.into(),
        })
    };
    let mut t = T::new();
    h_steps(&mut t, 1, "device connect");
    let dev = t.connect("device", "dut-1", true, 60);
    h_steps(&mut t, 2, "device subscribe a/b qos=1");
    t.malformed(
        dev,
        Dir::ToBroker,
        &[0x82, 0x08, 0, 0, 0, 3, b'a', b'/', b'b', 1],
        PID0,
    );
    h_steps(&mut t, 3, "expect SUBACK");
    h_steps(&mut t, 4, "wait 1s");
    let h = t.history();
    let verdicts: Vec<_> = mqtt_hil::check::always()
        .iter()
        .map(|c| c.check(&h))
        .collect();
    let mut failures = vec![mqtt_hil::runner::StepFailure {
        step: 3,
        line: 14,
        message: "not met within 5s: 0 of 1 SUBACK packet(s) on device's connection".into(),
    }];
    mqtt_hil::runner::name_broken_rules(&s, &h, &verdicts, &mut failures);
    assert!(
        failures[0]
            .message
            .contains("following from a broken rule: codec [MQTT-2.3.1-1]"),
        "{}",
        failures[0].message
    );
    // A failure with no rule broken in its window stays as it was.
    let mut failures = vec![mqtt_hil::runner::StepFailure {
        step: 4,
        line: 17,
        message: "m".into(),
    }];
    let h2 = {
        let mut t = T::new();
        t.connect("device", "dut-1", true, 60);
        h_steps(&mut t, 4, "wait 1s");
        t.history()
    };
    let verdicts: Vec<_> = mqtt_hil::check::always()
        .iter()
        .map(|c| c.check(&h2))
        .collect();
    mqtt_hil::runner::name_broken_rules(&s, &h2, &verdicts, &mut failures);
    assert_eq!(failures[0].message, "m");
}

/// With an empty client id the broker makes up a new one for each
/// connection [MQTT-3.1.3-6]: a second such connection while the first
/// is still open (a board reset the broker has not noticed yet) is no
/// takeover, and the broker's packet id 1 on each is no resend. The same
/// history with a real client id breaks both rules.
#[test]
fn connections_with_an_empty_client_id_are_separate_clients() {
    for (id, ok) in [("", true), ("dut-1", false)] {
        let mut t = T::new();
        let old = t.connect("device", id, true, 10);
        t.subscribe(old, 1, "cmd", 1);
        t.wait(500);
        let new = t.connect("device", id, true, 10);
        t.subscribe(new, 1, "cmd", 1);
        t.wait(300);
        // The broker still forwards to both: pid 1 on each, DUP=0.
        t.down(new, publish(Some(1), 1, "cmd", "on", false, false));
        t.down(old, publish(Some(1), 1, "cmd", "on", false, false));
        t.ack(new, true, "puback", 1);
        t.ack(old, true, "puback", 1);
        t.wait(4000).step("end");
        let h = t.history();
        let c = always("connections", &h);
        let p = always("protocol", &h);
        assert_eq!(c.ok() && p.ok(), ok, "client id {id:?}: {c:?}\n{p:?}");
        if !ok {
            assert!(c.rules().contains(&"MQTT-3.1.4-2"), "{c:?}");
            assert!(p.rules().contains(&"MQTT-3.3.1-1"), "{p:?}");
        }
    }
}

/// The broker that takes two empty client ids for one client: it closes
/// the first connection as soon as it accepts the second. Beside it, the
/// same close of a named client is a takeover, and an empty-id connection
/// the broker closes after its keep alive ran out is no twin.
#[test]
fn an_empty_client_id_taken_for_another_fails() {
    let mut t = T::new();
    let a = t.connect("device", "", true, 60);
    t.wait(500);
    let _b = t.connect("cloud", "", true, 60);
    t.wait(20).close(a, CloseReason::BrokerClosed);
    t.wait(3000).step("end");
    let v = always("connections", &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.1.3-6"], "{v:?}");

    let mut t = T::new();
    let a = t.connect("device", "dut-1", true, 60);
    t.wait(500);
    let _b = t.connect("device", "dut-1", true, 60);
    t.wait(20).close(a, CloseReason::BrokerClosed);
    t.wait(3000).step("end");
    let v = always("connections", &t.history());
    assert!(v.ok(), "{v:?}");

    let mut t = T::new();
    let a = t.connect("device", "", true, 1);
    t.wait(1800);
    let _b = t.connect("cloud", "", true, 60);
    t.wait(20).close(a, CloseReason::BrokerClosed);
    t.wait(3000).step("end");
    let v = always("connections", &t.history());
    assert!(v.ok(), "{v:?}");
}

/// Judged as events come: a broker close with no cause in sight is a
/// broker fault until the history shows one — here the client, back with
/// its session after `slack`, never resends the message it had in flight
/// on the closed connection, a rule it broke on that connection too.
#[test]
fn a_close_a_later_broken_rule_explains_stops_being_the_brokers_fault() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", false, 60);
    t.up(dev, publish(Some(3), 1, "a/b", "m3", false, false));
    t.ack(dev, false, "puback", 3);
    t.up(dev, publish(Some(4), 1, "a/b", "m4", false, false));
    t.wait(100).close(dev, CloseReason::BrokerClosed);
    t.wait(2500).step("reconnect");
    let before = t.ev.len() - 1;
    t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
    t.wait(2500).step("end");
    let vs = always_at_every_event("connections", &t.history());
    assert_eq!(
        vs[before].rules(),
        vec!["broker-closed"],
        "{:?}",
        vs[before]
    );
    let end = vs.last().unwrap();
    assert!(end.ok(), "{end:?}");
    assert!(
        end.notes
            .iter()
            .any(|n| n.contains("the client broke a rule on it")),
        "{end:?}"
    );
}

/// Judged as events come: the old connection of a takeover is judged
/// once `slack` has passed, and the evidence grows with what crosses it
/// afterwards (at most three packets) and with its late close; an old
/// connection closed just within `slack` passes at every point.
#[test]
fn a_takeover_is_judged_when_its_slack_has_passed() {
    for late in [true, false] {
        let mut t = T::new();
        let old = t.connect("device", "dut-1", true, 60);
        t.wait(100);
        let new = t.connect("cloud", "dut-1", true, 60);
        t.wait(1000).step("within");
        let within = t.ev.len() - 1;
        if late {
            t.wait(1500);
            let ping = (0..4)
                .map(|_| t.up(old, mqtt_hil::mqtt::Packet::PingReq))
                .collect::<Vec<_>>();
            let after = t.ev.len() - 1;
            t.close(old, CloseReason::BrokerClosed);
            t.up(new, mqtt_hil::mqtt::Packet::PingReq);
            t.wait(100).step("end");
            let vs = always_at_every_event("connections", &t.history());
            assert!(vs[within].ok(), "{:?}", vs[within]);
            assert!(vs[within]
                .notes
                .iter()
                .any(|n| n.contains("too short to judge")));
            let v = &vs[after];
            assert_eq!(v.rules(), vec!["MQTT-3.1.4-2"], "{v:?}");
            assert!(
                v.violations[0]
                    .message
                    .contains("still open when the run ended; 3 packet(s)"),
                "{v:?}"
            );
            assert_eq!(v.violations[0].events[2..], ping[..3]);
            let end = vs.last().unwrap();
            assert_eq!(end.rules(), vec!["MQTT-3.1.4-2"], "{end:?}");
            assert!(
                end.violations[0]
                    .message
                    .contains("closed only 2.506s later"),
                "{end:?}"
            );
        } else {
            t.wait(800).close(old, CloseReason::BrokerClosed);
            t.wait(3000).step("end");
            let vs = always_at_every_event("connections", &t.history());
            assert!(vs.iter().all(|v| v.ok()), "{vs:?}");
        }
    }
}
