//! Session present, resumed subscriptions, offline queues, clean discards.
use crate::check_util::*;
use mqtt_hil::history::CloseReason;

const SPEC: &str = r#"check = "session""#;

#[test]
fn session_present_flags_pass_when_right() {
    let mut t = T::new();
    let c = t.connect("device", "dut-1", false, 60);
    t.close(c, CloseReason::Severed);
    t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);
}

#[test]
fn session_present_on_clean_session_fails() {
    let mut t = T::new();
    t.connect_full("device", connect_pkt("dut-1", true, 60, None), true);
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.2.2-1"], "{:?}", v);
}

#[test]
fn lost_persistent_session_fails_but_not_after_kill() {
    let mut t = T::new();
    let c = t.connect("device", "dut-1", false, 60);
    t.close(c, CloseReason::Severed);
    t.connect_full("device", connect_pkt("dut-1", false, 60, None), false);
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.2.2-2"], "{:?}", v);

    for (what, ok) in [("kill", true), ("restart", false)] {
        let mut t = T::new();
        let c = t.connect("device", "dut-1", false, 60);
        t.broker(what).close(c, CloseReason::BrokerClosed);
        t.connect_full("device", connect_pkt("dut-1", false, 60, None), false);
        let v = check(SPEC, &t.history());
        assert_eq!(v.ok(), ok, "{what}: {:?}", v);
    }
    // With the promise that kill keeps it, kill is judged too.
    let mut t = T::new();
    let c = t.connect("device", "dut-1", false, 60);
    t.broker("kill").close(c, CloseReason::BrokerClosed);
    t.connect_full("device", connect_pkt("dut-1", false, 60, None), false);
    assert!(!check("check = \"session\"\nkill_keeps = true", &t.history()).ok());
}

#[test]
fn session_present_after_clean_session_fails() {
    let mut t = T::new();
    let c = t.connect("device", "dut-1", true, 60);
    t.close(c, CloseReason::ClientClosed);
    t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.2.2-3"], "{:?}", v);
}

#[test]
fn offline_messages_must_follow_a_resumed_session() {
    for delivered in [true, false] {
        let mut t = T::new();
        let cloud = t.connect("cloud", "cloud", false, 60);
        t.subscribe(cloud, 1, "dut/#", 1);
        t.close(cloud, CloseReason::Severed);
        let dev = t.connect("device", "dut-1", true, 60);
        t.publish(dev, 1, 1, "dut/a", "queued");
        let cloud2 = t.connect_full("cloud", connect_pkt("cloud", false, 60, None), true);
        if delivered {
            t.receive(cloud2, 4, 1, "dut/a", "queued");
        }
        t.wait(3000).step("end");
        let v = check(SPEC, &t.history());
        if delivered {
            assert!(v.ok(), "{:?}", v);
        } else {
            assert_eq!(v.rules(), vec!["MQTT-3.1.2-5"], "{:?}", v);
        }
    }
}

#[test]
fn resumed_subscription_must_still_deliver() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", false, 60);
    t.subscribe(cloud, 1, "dut/#", 1);
    t.close(cloud, CloseReason::Severed);
    let _cloud2 = t.connect_full("cloud", connect_pkt("cloud", false, 60, None), true);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 1, "dut/a", "later");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.1.2-4"], "{:?}", v);
}

#[test]
fn clean_session_must_not_get_old_queue() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", false, 60);
    t.subscribe(cloud, 1, "dut/#", 1);
    t.close(cloud, CloseReason::Severed);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 1, "dut/a", "stale");
    let cloud2 = t.connect("cloud", "cloud", true, 60);
    t.receive(cloud2, 4, 1, "dut/a", "stale");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.1.2-6"], "{:?}", v);
}

#[test]
fn first_connection_in_run_is_not_judged() {
    let mut t = T::new();
    t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);
}
