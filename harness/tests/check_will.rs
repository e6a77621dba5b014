//! The will checker: good histories pass, broken ones fail with the rule.
use crate::check_util::*;
use mqtt_hil::history::CloseReason;
use mqtt_hil::mqtt::Packet;

const SPEC: &str = r#"check = "will""#;

/// cloud subscribes, the device connects with a will, then `end` happens.
fn base(t: &mut T) -> (mqtt_hil::history::ConnId, mqtt_hil::history::ConnId) {
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/+/status", 1);
    let dev = t.connect_full(
        "device",
        connect_pkt("dut-1", true, 2, Some(will("dut/1/status", "offline", 1))),
        false,
    );
    (cloud, dev)
}

#[test]
fn will_after_sever_passes() {
    let mut t = T::new();
    let (cloud, dev) = base(&mut t);
    t.at(1000)
        .fault("device", "sever")
        .close(dev, CloseReason::Severed);
    t.wait(50).receive(cloud, 7, 1, "dut/1/status", "offline");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);
}

#[test]
fn missing_will_after_sever_fails() {
    let mut t = T::new();
    let (_cloud, dev) = base(&mut t);
    t.at(1000)
        .fault("device", "sever")
        .close(dev, CloseReason::Severed);
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.1.2-8"], "{:?}", v);
    assert!(v.violations[0].message.contains("cloud"));
}

#[test]
fn will_after_clean_disconnect_fails() {
    let mut t = T::new();
    let (cloud, dev) = base(&mut t);
    t.at(1000).disconnect(dev);
    t.wait(20).receive(cloud, 7, 1, "dut/1/status", "offline");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.14.4-3"], "{:?}", v);
}

#[test]
fn will_published_twice_fails() {
    let mut t = T::new();
    let (cloud, dev) = base(&mut t);
    t.at(1000).close(dev, CloseReason::ClientClosed);
    t.wait(20).receive(cloud, 7, 1, "dut/1/status", "offline");
    t.wait(20).receive(cloud, 8, 1, "dut/1/status", "offline");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.1.2-10"], "{:?}", v);
}

#[test]
fn late_will_after_blackhole_fails_and_timely_passes() {
    // keepalive 2s: last packet the broker got at ~0.01s, due by 3s + 1s slack.
    for (delay, ok) in [(2_500u64, true), (6_000, false)] {
        let mut t = T::new();
        let (cloud, _dev) = base(&mut t);
        t.fault("device", "blackhole");
        t.at(delay).receive(cloud, 7, 1, "dut/1/status", "offline");
        t.wait(5000).step("end");
        let v = check(SPEC, &t.history());
        assert_eq!(v.ok(), ok, "delay {delay}: {:?}", v);
        if !ok {
            assert_eq!(v.rules(), vec!["will-late"]);
        }
    }
}

#[test]
fn will_during_takeover_is_not_flagged_either_way() {
    for publish in [false, true] {
        let mut t = T::new();
        let (cloud, _dev) = base(&mut t);
        t.at(500);
        let _dev2 = t.connect_full(
            "device",
            connect_pkt("dut-1", true, 2, Some(will("dut/1/status", "offline", 1))),
            false,
        );
        if publish {
            t.wait(10).receive(cloud, 7, 1, "dut/1/status", "offline");
        }
        t.wait(5000).step("end");
        let v = check(SPEC, &t.history());
        assert!(v.ok(), "publish={publish}: {:?}", v);
    }
}

#[test]
fn blackhole_healed_in_time_requires_nothing() {
    let mut t = T::new();
    let (_cloud, dev) = base(&mut t);
    t.at(500).fault("device", "blackhole");
    t.at(1500).fault("device", "heal");
    t.up(dev, Packet::PingReq);
    t.down(dev, Packet::PingResp);
    t.wait(5000).step("end");
    assert!(check(SPEC, &t.history()).ok());
}

#[test]
fn will_when_no_session_ended_fails() {
    let mut t = T::new();
    let (cloud, _dev) = base(&mut t);
    t.at(500).receive(cloud, 7, 1, "dut/1/status", "offline");
    t.wait(5000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["will-premature"], "{:?}", v);
}

#[test]
fn subscriber_under_fault_or_run_ending_is_not_judged() {
    // The run ends before the will is due: nothing is required.
    let mut t = T::new();
    let (_cloud, dev) = base(&mut t);
    t.at(1000).close(dev, CloseReason::Severed);
    t.wait(100).step("end");
    assert!(check(SPEC, &t.history()).ok());
    // The subscriber itself is blackholed.
    let mut t = T::new();
    let (_cloud, dev) = base(&mut t);
    t.fault("cloud", "blackhole");
    t.at(1000).close(dev, CloseReason::Severed);
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);
}

#[test]
fn broker_kill_lifts_the_requirement() {
    let mut t = T::new();
    let (_cloud, dev) = base(&mut t);
    t.at(1000)
        .broker("kill")
        .close(dev, CloseReason::BrokerClosed);
    t.wait(3000).step("end");
    assert!(check(SPEC, &t.history()).ok());
}

/// A connection sits out a short blackhole, then its client closes it
/// inside a second, long one: the broker cannot see that close, so the
/// will is due at 1.5 x keep alive after the last packet it got, not at
/// the close (seen with the generic device suite's network_loss).
#[test]
fn a_close_inside_a_second_blackhole_starts_no_clock() {
    for (at, ok) in [(5_100u64, true), (8_000, false)] {
        let mut t = T::new();
        let (cloud, dev) = base(&mut t);
        t.at(500).fault("device", "blackhole");
        t.at(1000).fault("device", "heal");
        t.at(2000).up(dev, Packet::PingReq);
        t.down(dev, Packet::PingResp);
        t.at(3000).fault("device", "blackhole");
        t.at(3500).close(dev, CloseReason::ClientClosed);
        // keep alive 2 s: last packet in at 2.0 s, due by 5.0 s + 1 s slack.
        t.at(at).receive(cloud, 7, 1, "dut/1/status", "offline");
        t.wait(3000).step("end");
        let v = check(SPEC, &t.history());
        assert_eq!(v.ok(), ok, "will at {at} ms: {v:?}");
        if !ok {
            assert_eq!(v.rules(), vec!["will-late"], "{v:?}");
        }
    }
}

/// Recorded: the photocell feed sketch (empty client id) through a board
/// reset and a power cut (the generic device suite). Each connection is
/// its own client to the broker, so neither is a takeover of the other,
/// and each will the broker published belongs to its own connection.
#[test]
fn an_empty_client_id_is_a_new_client_each_time() {
    let h = load_fixture("photocell_empty_id_board_reset.hist");
    let v = check(
        r#"check = "will"
slack = "2s""#,
        &h,
    );
    assert!(v.ok(), "{v:?}");
    for rule in ["protocol", "connections"] {
        let v = always(rule, &h);
        assert!(v.ok(), "{v:?}");
    }
}
