//! Retained, shared, delivery (wildcards), keepalive and backoff checkers.
use crate::check_util::*;
use mqtt_hil::history::ConnId;
use mqtt_hil::history::{CloseReason, EventKind};
use mqtt_hil::mqtt::{Packet, QoS, SubAck, Subscribe, SubscribeFilter, UnsubAck, Unsubscribe};

fn retained_flow(t: &mut T, c: mqtt_hil::history::ConnId, pid: u16, topic: &str, payload: &str) {
    t.up(c, publish(Some(pid), 1, topic, payload, false, true));
    t.ack(c, false, "puback", pid);
}

#[test]
fn retained_delivered_on_subscribe_passes_and_missing_fails() {
    for sent in [true, false] {
        let mut t = T::new();
        let dev = t.connect("device", "dut-1", true, 60);
        retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
        let cloud = t.connect("cloud", "cloud", true, 60);
        t.subscribe(cloud, 1, "dut/#", 1);
        if sent {
            t.down(cloud, publish(Some(1), 1, "dut/cfg", "v1", false, true));
        }
        t.wait(3000).step("end");
        let v = check(r#"check = "retained""#, &t.history());
        if sent {
            assert!(v.ok(), "{:?}", v);
        } else {
            assert_eq!(v.rules(), vec!["MQTT-3.3.1-6"], "{:?}", v);
        }
    }
}

#[test]
fn retained_after_clear_fails_and_stale_value_fails() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
    retained_flow(&mut t, dev, 2, "dut/cfg", "");
    t.wait(500);
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/cfg", 1);
    t.down(cloud, publish(Some(1), 1, "dut/cfg", "v1", false, true));
    t.wait(3000).step("end");
    let v = check(r#"check = "retained""#, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.3.1-10"], "{:?}", v);

    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
    retained_flow(&mut t, dev, 2, "dut/cfg", "v2");
    t.wait(500);
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/cfg", 1);
    t.down(cloud, publish(Some(1), 1, "dut/cfg", "v1", false, true));
    t.wait(3000).step("end");
    let v = check(r#"check = "retained""#, &t.history());
    // The older retained value kept though a newer one replaced it.
    assert_eq!(v.rules(), vec!["MQTT-3.3.1-5"], "{:?}", v);
}

#[test]
fn retain_flag_on_forwarded_message_fails() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/#", 1);
    let dev = t.wait(500).connect("device", "dut-1", true, 60);
    retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
    t.down(cloud, publish(Some(1), 1, "dut/cfg", "v1", false, true));
    t.wait(3000).step("end");
    let v = check(r#"check = "retained""#, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.3.1-9"], "{:?}", v);
}

#[test]
fn retained_unknown_after_restart_is_not_judged() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
    t.broker("restart");
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/#", 1);
    t.wait(3000).step("end");
    assert!(check(r#"check = "retained""#, &t.history()).ok());
    assert!(!check("check = \"retained\"\npersistent = true", &t.history()).ok());
}

fn shared_setup(
    t: &mut T,
) -> (
    mqtt_hil::history::ConnId,
    mqtt_hil::history::ConnId,
    mqtt_hil::history::ConnId,
) {
    let a = t.connect("w1", "w1", true, 60);
    t.subscribe(a, 1, "$share/g/jobs/#", 1);
    let b = t.connect("w2", "w2", true, 60);
    t.subscribe(b, 1, "$share/g/jobs/#", 1);
    let dev = t.connect("device", "dut-1", true, 60);
    (a, b, dev)
}

#[test]
fn shared_one_member_each_passes_and_both_fails() {
    let mut t = T::new();
    let (a, b, dev) = shared_setup(&mut t);
    t.publish(dev, 1, 1, "jobs/1", "j1")
        .receive(a, 1, 1, "jobs/1", "j1");
    t.publish(dev, 2, 1, "jobs/2", "j2")
        .receive(b, 1, 1, "jobs/2", "j2");
    t.wait(3000).step("end");
    let spec = "check = \"shared\"\nbalance_after = 2";
    assert!(check(spec, &t.history()).ok());

    let mut t = T::new();
    let (a, b, dev) = shared_setup(&mut t);
    t.publish(dev, 1, 1, "jobs/1", "j1")
        .receive(a, 1, 1, "jobs/1", "j1")
        .receive(b, 1, 1, "jobs/1", "j1");
    t.wait(3000).step("end");
    let v = check(spec, &t.history());
    assert_eq!(v.rules(), vec!["shared-duplicate"], "{:?}", v);
}

#[test]
fn shared_lost_and_unbalanced_fail() {
    let mut t = T::new();
    let (a, _b, dev) = shared_setup(&mut t);
    t.publish(dev, 1, 1, "jobs/1", "j1");
    t.publish(dev, 2, 1, "jobs/2", "j2")
        .receive(a, 1, 1, "jobs/2", "j2");
    t.publish(dev, 3, 1, "jobs/3", "j3")
        .receive(a, 2, 1, "jobs/3", "j3");
    t.wait(3000).step("end");
    let v = check("check = \"shared\"\nbalance_after = 2", &t.history());
    assert_eq!(v.rules(), vec!["shared-lost", "shared-balance"], "{:?}", v);
}

#[test]
fn shared_redelivery_after_member_drop_is_allowed() {
    let mut t = T::new();
    let (a, b, dev) = shared_setup(&mut t);
    t.publish(dev, 1, 1, "jobs/1", "j1");
    t.down(a, publish(Some(1), 1, "jobs/1", "j1", false, false));
    t.close(a, CloseReason::Severed);
    t.receive(b, 1, 1, "jobs/1", "j1");
    t.wait(3000).step("end");
    assert!(check(r#"check = "shared""#, &t.history()).ok());
}

#[test]
fn wildcards_mismatch_and_missing_fail() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "sport/+/score", 1);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 1, "sport/tennis/score", "s1").receive(
        cloud,
        1,
        1,
        "sport/tennis/score",
        "s1",
    );
    t.publish(dev, 2, 1, "sport/tennis/player/score", "s2");
    t.wait(3000).step("end");
    assert!(check(r#"check = "wildcards""#, &t.history()).ok());

    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "sport/+/score", 1);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 1, "sport/tennis/score", "s1");
    t.publish(dev, 2, 1, "sport/tennis/player/score", "s2")
        .receive(cloud, 1, 1, "sport/tennis/player/score", "s2");
    t.wait(3000).step("end");
    let v = check(r#"check = "delivery""#, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.3.2-3", "MQTT-4.5.0-1"], "{:?}", v);
}

#[test]
fn dollar_topics_do_not_match_leading_wildcards() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "#", 0);
    t.down(cloud, publish(None, 0, "$SYS/uptime", "1", false, false));
    let v = check(r#"check = "delivery""#, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.7.2-1"], "{:?}", v);
}

#[test]
fn keepalive_good_client_and_broker_pass() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 2);
    for i in 1..=4 {
        t.at(i * 2000 - 100).up(dev, Packet::PingReq);
        t.down(dev, Packet::PingResp);
    }
    t.at(8500).disconnect(dev);
    let v = check(r#"check = "keepalive""#, &t.history());
    assert!(v.ok(), "{:?}", v);
}

#[test]
fn keepalive_broker_that_never_drops_fails() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 2);
    t.push(EventKind::Actor {
        actor: "device".into(),
        what: "pings off".into(),
    });
    t.at(9000).step("end");
    let v = check(r#"check = "keepalive""#, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.1.2-24"], "{:?}", v);
    let _ = dev;
}

#[test]
fn keepalive_broker_in_time_passes_and_early_close_fails() {
    for (close_ms, rule) in [(3_000u64, None), (1_200, Some("keepalive-early-close"))] {
        let mut t = T::new();
        let dev = t.connect("device", "dut-1", true, 2);
        t.push(EventKind::Actor {
            actor: "device".into(),
            what: "pings off".into(),
        });
        t.at(close_ms).close(dev, CloseReason::BrokerClosed);
        t.at(9000).step("end");
        let v = check(r#"check = "keepalive""#, &t.history());
        assert_eq!(v.rules(), rule.into_iter().collect::<Vec<_>>(), "{:?}", v);
    }
}

#[test]
fn keepalive_silent_client_and_fast_pinger_fail() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 2);
    t.at(3100).close(dev, CloseReason::BrokerClosed);
    t.at(5000).step("end");
    let v = check(r#"check = "keepalive""#, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.1.2-23"], "{:?}", v);
    assert!(check("check = \"keepalive\"\nclient = false", &t.history()).ok());

    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 4);
    for i in 1..=5 {
        t.at(i * 500).up(dev, Packet::PingReq);
        t.down(dev, Packet::PingResp);
    }
    t.disconnect(dev);
    let v = check(r#"check = "keepalive""#, &t.history());
    assert!(v.rules().contains(&"keepalive-ping-too-fast"), "{:?}", v);
}

#[test]
fn keepalive_under_blackhole_needs_evidence() {
    // Blackholed: the proxy may not see the broker's close; nothing flagged.
    let mut t = T::new();
    let _dev = t.connect("device", "dut-1", true, 2);
    t.fault("device", "blackhole");
    t.at(9000).step("end");
    assert!(check("check = \"keepalive\"\nclient = false", &t.history()).ok());
    // But a broker that answers a packet after 1.5 x keepalive of silence kept it.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 2);
    t.fault("device", "blackhole");
    t.at(6000).fault("device", "heal");
    t.up(dev, Packet::PingReq);
    t.down(dev, Packet::PingResp);
    t.at(7000).step("end");
    let v = check("check = \"keepalive\"\nclient = false", &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.1.2-24"], "{:?}", v);
}

#[test]
fn backoff_flags_hammering() {
    let mut t = T::new();
    for _ in 0..8 {
        t.open("device");
        t.wait(50);
    }
    let v = check("check = \"backoff\"\nmax_per_second = 5", &t.history());
    assert_eq!(v.rules(), vec!["backoff-too-fast"], "{:?}", v);
    let mut t = T::new();
    for _ in 0..8 {
        t.open("device");
        t.wait(400);
    }
    assert!(check("check = \"backoff\"\nmax_per_second = 5", &t.history()).ok());
}

/// One attempt a second, as seen by the proxy: a few milliseconds of
/// jitter on the way are not a second attempt within the second, more is.
#[test]
fn backoff_allows_the_measurement_jitter_and_no_more() {
    let spaced = |gap_ms: u64| {
        let mut t = T::new();
        for _ in 0..4 {
            t.open("device");
            t.wait(gap_ms);
        }
        check("check = \"backoff\"\nmax_per_second = 1", &t.history())
    };
    assert!(spaced(1000).ok());
    assert!(spaced(970).ok(), "{:?}", spaced(970));
    assert_eq!(spaced(900).rules(), vec!["backoff-too-fast"]);
}

const RETAINED: &str = r#"check = "retained""#;
const DELIVERY: &str = r#"check = "delivery""#;

/// A SUBSCRIBE of several filters, answered with these codes.
fn subscribe_many(t: &mut T, c: ConnId, pid: u16, filters: &[(&str, u8)], codes: &[u8]) {
    t.up(
        c,
        Packet::Subscribe(Subscribe {
            pid,
            filters: filters
                .iter()
                .map(|(f, q)| SubscribeFilter {
                    filter: f.to_string(),
                    qos: QoS::from_u8(*q).unwrap(),
                    options: 0,
                })
                .collect(),
            properties: Default::default(),
        }),
    );
    t.down(
        c,
        Packet::SubAck(SubAck {
            pid,
            codes: codes.to_vec(),
            properties: Default::default(),
        }),
    );
}

fn unsubscribe(t: &mut T, c: ConnId, pid: u16, filters: &[&str]) {
    t.up(
        c,
        Packet::Unsubscribe(Unsubscribe {
            pid,
            filters: filters.iter().map(|f| f.to_string()).collect(),
            properties: Default::default(),
        }),
    );
    t.down(
        c,
        Packet::UnsubAck(UnsubAck {
            pid,
            codes: Vec::new(),
            properties: Default::default(),
        }),
    );
}

/// Retained values the broker should have replaced or never stored.
#[test]
fn replaced_or_unretained_values_served_as_retained_fail() {
    // Replaced by a QoS 0 retained message.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
    t.up(dev, publish(None, 0, "dut/cfg", "v2", false, true));
    t.wait(500);
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/cfg", 1);
    t.down(cloud, publish(Some(1), 1, "dut/cfg", "v1", false, true));
    t.wait(3000).step("end");
    assert_eq!(check(RETAINED, &t.history()).rules(), vec!["MQTT-3.3.1-7"]);

    // A RETAIN=0 PUBLISH stored as the retained value.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
    t.publish(dev, 2, 1, "dut/cfg", "live");
    t.wait(500);
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/cfg", 1);
    t.down(cloud, publish(Some(1), 1, "dut/cfg", "live", false, true));
    t.wait(3000).step("end");
    assert_eq!(check(RETAINED, &t.history()).rules(), vec!["MQTT-3.3.1-12"]);

    // ... and the same with the broker right: the RETAIN=0 message left the
    // retained value alone.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
    t.publish(dev, 2, 1, "dut/cfg", "live");
    t.wait(500);
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/cfg", 1);
    t.down(cloud, publish(Some(1), 1, "dut/cfg", "v1", false, true));
    t.wait(3000).step("end");
    let v = check(RETAINED, &t.history());
    assert!(v.ok(), "{v:?}");
}

/// A new subscription's retained copy with RETAIN=0; a re-subscription
/// to the same filter without its retained copy; a retained value lost
/// with its publisher's session.
#[test]
fn retained_copies_for_new_and_repeated_subscriptions() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
    t.wait(500);
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/#", 1);
    t.down(cloud, publish(Some(1), 1, "dut/cfg", "v1", false, false));
    t.wait(3000).step("end");
    assert_eq!(check(RETAINED, &t.history()).rules(), vec!["MQTT-3.3.1-8"]);

    for again in [true, false] {
        let mut t = T::new();
        let dev = t.connect("device", "dut-1", true, 60);
        retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
        let cloud = t.connect("cloud", "cloud", true, 60);
        t.subscribe(cloud, 1, "dut/cfg", 1);
        t.down(cloud, publish(Some(1), 1, "dut/cfg", "v1", false, true));
        t.wait(100);
        t.subscribe(cloud, 2, "dut/cfg", 0);
        if again {
            t.down(cloud, publish(None, 0, "dut/cfg", "v1", false, true));
        }
        t.wait(3000).step("end");
        let v = check(RETAINED, &t.history());
        if again {
            assert!(v.ok(), "{v:?}");
        } else {
            assert_eq!(v.rules(), vec!["MQTT-3.8.4-3"], "{v:?}");
        }
    }

    for kept in [true, false] {
        let mut t = T::new();
        let dev = t.connect("device", "dut-1", true, 60);
        retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
        t.disconnect(dev);
        t.wait(200);
        let cloud = t.connect("cloud", "cloud", true, 60);
        t.subscribe(cloud, 1, "dut/cfg", 1);
        if kept {
            t.down(cloud, publish(Some(1), 1, "dut/cfg", "v1", false, true));
        }
        t.wait(3000).step("end");
        let v = check(RETAINED, &t.history());
        if kept {
            assert!(v.ok(), "{v:?}");
        } else {
            assert_eq!(v.rules(), vec!["MQTT-3.1.2-7"], "{v:?}");
        }
    }

    // A live copy (RETAIN=0, the earlier subscription's) beside the
    // retained copy the new subscription asked for.
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/+", 1);
    let dev = t.connect("device", "dut-1", true, 60);
    retained_flow(&mut t, dev, 1, "dut/cfg", "v1");
    t.down(cloud, publish(Some(1), 1, "dut/cfg", "v1", false, false));
    t.subscribe(cloud, 2, "dut/cfg", 1);
    t.down(cloud, publish(Some(2), 1, "dut/cfg", "v1", false, true));
    t.wait(3000).step("end");
    let v = check(RETAINED, &t.history());
    assert!(v.ok(), "{v:?}");
}

/// Delivered QoS: never above the lower of published and granted, and
/// not below it either; with overlapping subscriptions the highest grant.
#[test]
fn delivered_qos_against_the_grant() {
    // Granted 1 (asked 2), published 2, delivered 2: above the grant.
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    subscribe_many(&mut t, cloud, 1, &[("a/#", 2)], &[1]);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 2, "a/b", "m1")
        .receive(cloud, 1, 2, "a/b", "m1");
    t.wait(3000).step("end");
    assert_eq!(check(DELIVERY, &t.history()).rules(), vec!["MQTT-3.8.4-6"]);

    // Granted 2, published 2, delivered only at 1: below.
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "a/#", 2);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 2, "a/b", "m1")
        .receive(cloud, 1, 1, "a/b", "m1");
    t.wait(3000).step("end");
    assert_eq!(check(DELIVERY, &t.history()).rules(), vec!["MQTT-3.8.4-6"]);

    // Overlapping: granted 2 and 1, delivered only at 1.
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    subscribe_many(&mut t, cloud, 1, &[("a/#", 2), ("a/b", 1)], &[2, 1]);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 2, "a/b", "m1")
        .receive(cloud, 1, 1, "a/b", "m1");
    t.wait(3000).step("end");
    assert_eq!(check(DELIVERY, &t.history()).rules(), vec!["MQTT-3.3.5-1"]);
}

/// Right beside them: a grant lower than asked, kept; overlapping
/// subscriptions with one copy each, one at the highest grant; a QoS 1
/// message to a QoS 2 subscription; a grant raised by re-subscribing.
#[test]
fn delivered_qos_within_the_grant_passes() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    subscribe_many(&mut t, cloud, 1, &[("a/#", 2)], &[1]);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 2, "a/b", "m1")
        .receive(cloud, 1, 1, "a/b", "m1");
    t.publish(dev, 2, 1, "a/b", "m2")
        .receive(cloud, 2, 1, "a/b", "m2");
    subscribe_many(&mut t, cloud, 2, &[("a/b", 2)], &[2]);
    t.publish(dev, 3, 2, "a/b", "m3")
        .receive(cloud, 3, 2, "a/b", "m3");
    t.publish(dev, 4, 2, "a/b", "m4")
        .receive(cloud, 4, 2, "a/b", "m4")
        .receive(cloud, 5, 1, "a/b", "m4");
    t.wait(3000).step("end");
    let v = check(DELIVERY, &t.history());
    assert!(v.ok(), "{v:?}");
}

/// After UNSUBACK nothing new for the filter; in an UNSUBSCRIBE of
/// several, each counts; an UNSUBSCRIBE of a filter never held deletes
/// nothing; in a SUBSCRIBE of several, each counts.
#[test]
fn unsubscribed_and_multi_filter_rules() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "a/b", 1);
    unsubscribe(&mut t, cloud, 2, &["a/b"]);
    t.wait(200);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 1, "a/b", "m1")
        .receive(cloud, 1, 1, "a/b", "m1");
    t.wait(3000).step("end");
    assert_eq!(check(DELIVERY, &t.history()).rules(), vec!["MQTT-3.10.4-2"]);

    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    subscribe_many(&mut t, cloud, 1, &[("x/y", 1), ("a/b", 1)], &[1, 1]);
    unsubscribe(&mut t, cloud, 2, &["x/y", "a/b"]);
    t.wait(200);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 1, "a/b", "m1")
        .receive(cloud, 1, 1, "a/b", "m1");
    t.wait(3000).step("end");
    assert_eq!(check(DELIVERY, &t.history()).rules(), vec!["MQTT-3.10.4-6"]);

    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "a/b", 1);
    unsubscribe(&mut t, cloud, 2, &["a/+"]);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 1, "a/b", "m1");
    t.wait(3000).step("end");
    assert_eq!(check(DELIVERY, &t.history()).rules(), vec!["MQTT-3.10.4-1"]);

    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    subscribe_many(&mut t, cloud, 1, &[("x/y", 1), ("a/b", 1)], &[1, 1]);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 1, "a/b", "m1");
    t.wait(3000).step("end");
    assert_eq!(check(DELIVERY, &t.history()).rules(), vec!["MQTT-3.8.4-4"]);
}

/// Right beside them: a message that reached the broker before the
/// UNSUBACK may still go out, a delivery already started is finished
/// (DUP resend), and another subscription still matching keeps it coming.
#[test]
fn unsubscribe_allowances_pass() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    subscribe_many(&mut t, cloud, 1, &[("a/b", 1), ("a/#", 1)], &[1, 1]);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 1, "a/b", "m1");
    t.down(cloud, publish(Some(1), 1, "a/b", "m1", false, false));
    unsubscribe(&mut t, cloud, 2, &["a/b"]);
    t.publish(dev, 2, 1, "x/y", "early");
    t.down(cloud, publish(Some(1), 1, "a/b", "m1", true, false));
    t.ack(cloud, true, "puback", 1);
    t.wait(200);
    // a/# still holds.
    t.publish(dev, 3, 1, "a/b", "m3")
        .receive(cloud, 2, 1, "a/b", "m3");
    t.wait(3000).step("end");
    let v = check(DELIVERY, &t.history());
    assert!(v.ok(), "{v:?}");
}

/// One publisher's messages on one topic at one QoS go out in the order
/// the broker took them.
#[test]
fn order_of_a_publishers_messages() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "a/b", 1);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 1, "a/b", "m1")
        .publish(dev, 2, 1, "a/b", "m2");
    t.receive(cloud, 1, 1, "a/b", "m2")
        .receive(cloud, 2, 1, "a/b", "m1");
    t.wait(3000).step("end");
    assert_eq!(check(DELIVERY, &t.history()).rules(), vec!["MQTT-4.6.0-6"]);

    // Beside it: two messages in flight together (neither owned before the
    // other arrived), other topics, other QoS — their order is open.
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "a/#", 1);
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", false, false));
    t.up(dev, publish(Some(2), 1, "a/b", "m2", false, false));
    t.ack(dev, false, "puback", 1);
    t.ack(dev, false, "puback", 2);
    t.publish(dev, 3, 1, "a/c", "c1")
        .publish(dev, 0, 0, "a/b", "z0");
    t.receive(cloud, 1, 1, "a/b", "m2")
        .receive(cloud, 2, 1, "a/b", "m1")
        .receive(cloud, 0, 0, "a/b", "z0")
        .receive(cloud, 3, 1, "a/c", "c1");
    t.wait(3000).step("end");
    let v = check(DELIVERY, &t.history());
    assert!(v.ok(), "{v:?}");
}

/// An empty retained message clears the topic and is not stored itself:
/// a broker that hands it to a new subscriber stored it. Beside it, the
/// same clear followed by nothing passes.
#[test]
fn an_empty_retained_message_handed_out_fails() {
    for stored in [true, false] {
        let mut t = T::new();
        let dev = t.connect("device", "dut-1", true, 60);
        retained_flow(&mut t, dev, 1, "dut/cfg", "");
        t.wait(500);
        let cloud = t.connect("cloud", "cloud", true, 60);
        t.subscribe(cloud, 1, "dut/#", 1);
        if stored {
            t.down(cloud, publish(Some(1), 1, "dut/cfg", "", false, true));
        }
        t.wait(3000).step("end");
        let v = check(RETAINED, &t.history());
        if stored {
            // Sent after the clear, and sent at all though empty.
            assert_eq!(v.rules(), vec!["MQTT-3.3.1-10", "MQTT-3.3.1-11"], "{v:?}");
        } else {
            assert!(v.ok(), "{v:?}");
        }
    }
}
