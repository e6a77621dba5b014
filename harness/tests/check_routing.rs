//! Retained, shared, delivery (wildcards), keepalive and backoff checkers.
mod check_util;
use check_util::*;
use mqtt_hil::history::{CloseReason, EventKind};
use mqtt_hil::mqtt::Packet;

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
    assert_eq!(v.rules(), vec!["retained-stale"], "{:?}", v);
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
    assert_eq!(
        v.rules(),
        vec!["MQTT-3.3.2-3", "delivery-missing"],
        "{:?}",
        v
    );
}

#[test]
fn dollar_topics_do_not_match_leading_wildcards() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "#", 0);
    t.down(cloud, publish(None, 0, "$SYS/uptime", "1", false, false));
    let v = check(r#"check = "delivery""#, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.3.2-3"], "{:?}", v);
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
