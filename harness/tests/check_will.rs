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

/// A 5.0 CONNECT (session expiry `sei` s) with a will (delay `delay` s).
fn v5_connect(id: &str, delay: u32, sei: u32) -> mqtt_hil::mqtt::Connect {
    use mqtt_hil::mqtt::{PropValue, Property, Version};
    let mut w = will("dut/1/status", "offline", 1);
    w.retain = true;
    if delay > 0 {
        w.properties.0.push(Property {
            id: 0x18,
            value: PropValue::U32(delay),
        });
    }
    let mut c = connect_pkt(id, true, 2, Some(w));
    c.version = Version::V5;
    if sei > 0 {
        c.properties.0.push(Property {
            id: 0x11,
            value: PropValue::U32(sei),
        });
    }
    c
}

/// The device announces its own retained "offline" (its will's topic and
/// payload) and then ends cleanly; the broker forwards that PUBLISH to the
/// subscriber, as a new message (retain 0 to an established subscription,
/// 3.1.1 §3.3.1-9). That copy is the device's message, not its will: no
/// will was published, in 3.1.1 or 5.0, whether the DISCONNECT follows at
/// once or two seconds later (the batch checker reported MQTT-3.14.4-3 and
/// `will-premature`).
#[test]
fn a_forwarded_status_with_the_wills_topic_and_payload_is_not_the_will() {
    for (v5, gap) in [(false, 5u64), (false, 2_000), (true, 5), (true, 2_000)] {
        let mut t = T::new();
        let cloud = t.connect("cloud", "cloud", true, 60);
        t.subscribe(cloud, 1, "dut/+/status", 1);
        let connect = if v5 {
            v5_connect("dut-1", 0, 0)
        } else {
            let mut w = will("dut/1/status", "offline", 1);
            w.retain = true;
            connect_pkt("dut-1", true, 2, Some(w))
        };
        let dev = t.connect_full("device", connect, false);
        t.at(1000).up(
            dev,
            publish(Some(3), 1, "dut/1/status", "offline", false, true),
        );
        t.down(dev, Packet::PubAck(mqtt_hil::mqtt::Ack::new(3)));
        t.wait(2).receive(cloud, 9, 1, "dut/1/status", "offline");
        t.wait(gap).disconnect(dev);
        t.wait(3000).step("end");
        let v = check(SPEC, &t.history());
        assert!(v.ok(), "5.0={v5}, DISCONNECT {gap} ms later: {v:?}");
        assert!(
            v.notes
                .iter()
                .any(|n| n.contains("forwarding a client's own PUBLISH")),
            "{v:?}"
        );
    }
}

/// The same clean end where the broker does publish the will: the device
/// announced something else, or nothing, or "offline" once while the
/// subscriber got it twice — a copy no client PUBLISH accounts for is the
/// will, and forbidden after the DISCONNECT.
#[test]
fn a_will_after_a_clean_end_is_caught_next_to_the_devices_own_publications() {
    for own in [Some("bye"), None, Some("offline")] {
        let mut t = T::new();
        let cloud = t.connect("cloud", "cloud", true, 60);
        t.subscribe(cloud, 1, "dut/+/status", 1);
        let dev = t.connect_full(
            "device",
            connect_pkt("dut-1", true, 2, Some(will("dut/1/status", "offline", 1))),
            false,
        );
        t.at(1000);
        if let Some(p) = own {
            t.up(dev, publish(Some(3), 1, "dut/1/status", p, false, true));
            t.down(dev, Packet::PubAck(mqtt_hil::mqtt::Ack::new(3)));
            t.wait(2).receive(cloud, 9, 1, "dut/1/status", p);
        }
        t.wait(5).disconnect(dev);
        t.wait(20).receive(cloud, 10, 1, "dut/1/status", "offline");
        t.wait(3000).step("end");
        let v = check(SPEC, &t.history());
        assert_eq!(v.rules(), vec!["MQTT-3.14.4-3"], "own {own:?}: {v:?}");
    }
}

/// A publication can only deliver a will declared before it: the broker
/// sending "offline" before the device's CONNECT that declares it is not
/// that will (the batch checker called it `will-premature`); the same
/// publication after the CONNECT, while the connection stands, is.
#[test]
fn a_publication_before_the_declaring_connect_is_not_that_will() {
    for (before, rules) in [(true, vec![]), (false, vec!["will-premature"])] {
        let mut t = T::new();
        let cloud = t.connect("cloud", "cloud", true, 60);
        t.subscribe(cloud, 1, "dut/+/status", 1);
        if before {
            t.at(500).receive(cloud, 7, 1, "dut/1/status", "offline");
        }
        t.at(1000);
        t.connect_full(
            "device",
            connect_pkt("dut-1", true, 2, Some(will("dut/1/status", "offline", 1))),
            false,
        );
        if !before {
            t.at(1500).receive(cloud, 7, 1, "dut/1/status", "offline");
        }
        t.wait(5000).step("end");
        let v = check(SPEC, &t.history());
        assert_eq!(v.rules(), rules, "before={before}: {v:?}");
    }
}

/// A fault on the will's owner excuses a premature will only if it came
/// before it (the batch checker excused it for a fault at any time).
#[test]
fn a_fault_after_a_premature_will_does_not_excuse_it() {
    for (fault_first, rules) in [(true, vec![]), (false, vec!["will-premature"])] {
        let mut t = T::new();
        let (cloud, _dev) = base(&mut t);
        if fault_first {
            t.at(400).fault("device", "latency 50ms");
        }
        t.at(500).receive(cloud, 7, 1, "dut/1/status", "offline");
        t.at(2000).fault("device", "latency 50ms");
        t.wait(5000).step("end");
        let v = check(SPEC, &t.history());
        assert_eq!(v.rules(), rules, "fault first={fault_first}: {v:?}");
    }
}

/// A retained copy (retain=1, sent because of a SUBSCRIBE) is no will; a
/// retain-as-published subscription makes retain=1 copies count, but only
/// from when it was made (the batch checker read it back in time).
#[test]
fn retain_as_published_counts_from_its_subscribe_on() {
    use mqtt_hil::mqtt::{Subscribe, SubscribeFilter};
    for (rap_first, rules) in [(false, vec![]), (true, vec!["will-premature"])] {
        let mut t = T::new();
        let cloud = t.connect("cloud", "cloud", true, 60);
        t.connect_full(
            "device",
            connect_pkt("dut-1", true, 2, Some(will("dut/1/status", "offline", 1))),
            false,
        );
        let rap = Packet::Subscribe(Subscribe {
            pid: 2,
            filters: vec![SubscribeFilter {
                filter: "dut/+/status".into(),
                qos: mqtt_hil::mqtt::QoS::AtLeastOnce,
                options: 0x08,
            }],
            properties: Default::default(),
        });
        if rap_first {
            t.at(400).up(cloud, rap.clone());
        }
        t.at(500).down(
            cloud,
            publish(Some(7), 1, "dut/1/status", "offline", false, true),
        );
        if !rap_first {
            t.at(2000).up(cloud, rap);
        }
        t.wait(5000).step("end");
        let v = check(SPEC, &t.history());
        assert_eq!(v.rules(), rules, "RAP first={rap_first}: {v:?}");
    }
}

/// A board loss silences the device from the moment it happens: a fault
/// on the device after it (healed at once) does not undo it, and the will
/// is due 1.5 x keep alive after the last packet the broker got (the batch
/// checker ignored the board loss once any fault silence came).
#[test]
fn a_board_loss_is_a_silence_whatever_fault_follows() {
    let mut t = T::new();
    let (_cloud, _dev) = base(&mut t);
    t.at(500).board("power loss");
    t.at(800).fault("device", "blackhole");
    t.at(900).fault("device", "heal");
    // keep alive 2 s: due by about 3 s + 1 s slack; nothing came.
    t.at(8000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.1.2-8"], "{v:?}");
}

/// An allowed will is owed up to the deadline its end would have had: a
/// copy long after a takeover, once the new connection ended with
/// DISCONNECT, is a will that connection forbade (the batch checker took it
/// as the taken-over connection's allowed will, however late).
#[test]
fn an_allowed_will_is_owed_only_up_to_its_deadline() {
    for (at, rules) in [(600u64, vec![]), (20_000, vec!["MQTT-3.14.4-3"])] {
        let mut t = T::new();
        let (cloud, _dev) = base(&mut t);
        t.at(500);
        let dev2 = t.connect_full(
            "device",
            connect_pkt("dut-1", true, 2, Some(will("dut/1/status", "offline", 1))),
            false,
        );
        if at < 10_000 {
            t.at(at).receive(cloud, 7, 1, "dut/1/status", "offline");
        }
        t.at(10_000).disconnect(dev2);
        if at > 10_000 {
            t.at(at).receive(cloud, 7, 1, "dut/1/status", "offline");
        }
        t.wait(3000).step("end");
        let v = check(SPEC, &t.history());
        assert_eq!(v.rules(), rules, "copy at {at} ms: {v:?}");
    }
}

/// Ends are judged in time order: the broker going away ended the
/// connection, and a takeover after it does not move that end later, so a
/// will published in between is the will allowed after the broker stop
/// (the batch checker let the later takeover win and called it
/// `will-premature`).
#[test]
fn a_broker_stop_before_a_takeover_is_the_end() {
    let mut t = T::new();
    let (cloud, _dev) = base(&mut t);
    t.at(1000).broker("restart");
    t.at(1500).receive(cloud, 7, 1, "dut/1/status", "offline");
    t.at(3000);
    t.connect_full(
        "device",
        connect_pkt("dut-1", true, 2, Some(will("dut/1/status", "offline", 1))),
        false,
    );
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{v:?}");
}

/// A will published while its owner was silent past its keep alive is
/// taken as that silence's will when it comes; if the connection then
/// shows it was alive (a packet got through, then a clean DISCONNECT),
/// the publication happened under a fault and is not judged — neither as a
/// will forbidden by the later DISCONNECT nor as premature.
#[test]
fn a_will_during_a_silence_that_turns_out_alive_is_not_judged() {
    let mut t = T::new();
    let (cloud, dev) = base(&mut t);
    t.at(500).fault("device", "blackhole");
    // keep alive 2 s: past 1 x keep alive after the CONNECT.
    t.at(2500).receive(cloud, 7, 1, "dut/1/status", "offline");
    t.at(2700).fault("device", "heal");
    t.up(dev, Packet::PingReq);
    t.down(dev, Packet::PingResp);
    t.at(4000).disconnect(dev);
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{v:?}");
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("not yet dropped; not judged")),
        "{v:?}"
    );
}
