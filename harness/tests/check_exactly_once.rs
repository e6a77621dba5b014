//! exactly_once: QoS 2 exactly once, QoS 1 at least once, QoS 0 at most once.
use crate::check_util::*;
use mqtt_hil::history::{CloseReason, Fate};
use mqtt_hil::mqtt::Packet;

const SPEC: &str = r#"check = "exactly_once""#;

fn setup(t: &mut T, qos: u8) -> (mqtt_hil::history::ConnId, mqtt_hil::history::ConnId) {
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/#", qos);
    let dev = t.connect("device", "dut-1", true, 60);
    (cloud, dev)
}

#[test]
fn qos2_delivered_once_passes() {
    let mut t = T::new();
    let (cloud, dev) = setup(&mut t, 2);
    t.publish(dev, 1, 2, "dut/a", "m1");
    t.receive(cloud, 5, 2, "dut/a", "m1");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);
    assert!(v.notes[0].contains("1 QoS 2"));
}

#[test]
fn qos2_lost_fails() {
    let mut t = T::new();
    let (_cloud, dev) = setup(&mut t, 2);
    t.publish(dev, 1, 2, "dut/a", "m1");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["qos2-lost"], "{:?}", v);
}

#[test]
fn qos2_duplicated_fails_and_blames_the_broker() {
    let mut t = T::new();
    let (cloud, dev) = setup(&mut t, 2);
    t.publish(dev, 1, 2, "dut/a", "m1");
    t.receive(cloud, 5, 2, "dut/a", "m1");
    t.receive(cloud, 6, 2, "dut/a", "m1");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.3.3-2"], "{:?}", v);
    assert!(v.violations[0].message.contains("2 times as a new message"));
}

#[test]
fn qos2_retransmission_delivered_twice_blames_the_subscriber_client() {
    let mut t = T::new();
    let (cloud, dev) = setup(&mut t, 2);
    t.publish(dev, 1, 2, "dut/a", "m1");
    t.down(cloud, publish(Some(5), 2, "dut/a", "m1", false, false));
    t.deliver("cloud", "dut/a", "m1", 2);
    t.down(cloud, publish(Some(5), 2, "dut/a", "m1", true, false));
    t.deliver("cloud", "dut/a", "m1", 2);
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.3.3-2"], "{:?}", v);
    let msg = &v.violations[0].message;
    assert!(msg.contains("client failed to discard"), "{msg}");
    assert!(msg.contains("pid 5 (DUP=1, event #"), "{msg}");
    assert!(!msg.contains("broker's"), "{msg}");
}

#[test]
fn qos2_publish_duplicated_by_the_proxy_blames_the_subscriber_client() {
    // The same packet reached the client twice: one id, one message.
    let mut t = T::new();
    let (cloud, dev) = setup(&mut t, 2);
    t.publish(dev, 1, 2, "dut/a", "m1");
    t.pkt(
        cloud,
        mqtt_hil::history::Dir::ToClient,
        publish(Some(5), 2, "dut/a", "m1", false, false),
        Fate::Duplicated,
    );
    t.deliver("cloud", "dut/a", "m1", 2);
    t.deliver("cloud", "dut/a", "m1", 2);
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.3.3-2"], "{:?}", v);
    assert!(v.violations[0].message.contains("client failed to discard"));
}

#[test]
fn qos2_resend_under_a_new_pid_blames_the_broker() {
    // The broker resends with DUP=1 under pid 6 while the subscriber holds
    // pid 5: to the subscriber pid 6 is a new message.
    let mut t = T::new();
    let (cloud, dev) = setup(&mut t, 2);
    t.publish(dev, 1, 2, "dut/a", "m1");
    t.down(cloud, publish(Some(5), 2, "dut/a", "m1", false, false));
    t.deliver("cloud", "dut/a", "m1", 2);
    t.ack(cloud, true, "pubrec", 5);
    t.down(cloud, publish(Some(6), 2, "dut/a", "m1", true, false));
    t.deliver("cloud", "dut/a", "m1", 2);
    let msg = broker_blamed(&mut t, "pid 6 (DUP=1, a packet id cloud was not holding");
    assert!(msg.contains("the duplicate is the broker's"), "{msg}");
}

/// Judges `t`'s history ended: the one finding is MQTT-4.3.3-2, naming
/// `copy` and not blaming the subscriber's client; its message.
fn broker_blamed(t: &mut T, copy: &str) -> String {
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.3.3-2"], "{:?}", v);
    let msg = v.violations[0].message.clone();
    assert!(msg.contains(copy), "{msg}");
    assert!(!msg.contains("failed to discard"), "{msg}");
    msg
}

#[test]
fn qos2_same_pid_after_pubcomp_blames_the_broker() {
    // After its PUBCOMP the subscriber must take the id as a new message.
    let mut t = T::new();
    let (cloud, dev) = setup(&mut t, 2);
    t.publish(dev, 1, 2, "dut/a", "m1");
    t.receive(cloud, 5, 2, "dut/a", "m1");
    t.down(cloud, publish(Some(5), 2, "dut/a", "m1", true, false));
    t.deliver("cloud", "dut/a", "m1", 2);
    broker_blamed(&mut t, "pid 5 (DUP=1, after cloud's PUBCOMP for that id");
}

#[test]
fn qos1_duplicate_is_only_a_note() {
    let mut t = T::new();
    let (cloud, dev) = setup(&mut t, 1);
    t.publish(dev, 1, 1, "dut/a", "m1");
    t.receive(cloud, 5, 1, "dut/a", "m1");
    t.deliver("cloud", "dut/a", "m1", 1);
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);
    assert!(v
        .notes
        .iter()
        .any(|n| n.contains("QoS 1 allows duplicates")));
}

#[test]
fn qos1_lost_fails_and_qos0_lost_does_not() {
    let mut t = T::new();
    let (_cloud, dev) = setup(&mut t, 1);
    t.publish(dev, 1, 1, "dut/a", "m1");
    t.publish(dev, 2, 0, "dut/b", "m2");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["qos1-lost"], "{:?}", v);
}

#[test]
fn qos0_duplicate_fails() {
    let mut t = T::new();
    let (cloud, dev) = setup(&mut t, 0);
    t.publish(dev, 0, 0, "dut/a", "m1");
    t.receive(cloud, 0, 0, "dut/a", "m1");
    t.receive(cloud, 0, 0, "dut/a", "m1");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["qos0-duplicated"], "{:?}", v);
}

#[test]
fn message_in_flight_at_run_end_is_not_flagged() {
    let mut t = T::new();
    let (_cloud, dev) = setup(&mut t, 2);
    t.at(5000).publish(dev, 1, 2, "dut/a", "m1");
    t.wait(300).step("end");
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);
}

#[test]
fn publish_without_pubrel_is_not_required() {
    // Broker sent PUBREC, but the PUBREL never reached it: method B brokers
    // may hold the message back.
    let mut t = T::new();
    let (_cloud, dev) = setup(&mut t, 2);
    t.up(dev, publish(Some(1), 2, "dut/a", "m1", false, false));
    t.ack(dev, false, "pubrec", 1);
    t.pkt(
        dev,
        mqtt_hil::history::Dir::ToBroker,
        Packet::PubRel(mqtt_hil::mqtt::Ack::new(1)),
        Fate::Dropped,
    );
    t.wait(3000).step("end");
    assert!(check(SPEC, &t.history()).ok());
}

#[test]
fn offline_persistent_subscriber_must_get_it_after_reconnect() {
    for delivered in [true, false] {
        let mut t = T::new();
        let cloud = t.connect("cloud", "cloud", false, 60);
        t.subscribe(cloud, 1, "dut/#", 2);
        t.close(cloud, CloseReason::Severed);
        let dev = t.connect("device", "dut-1", true, 60);
        t.publish(dev, 1, 2, "dut/a", "m1");
        t.wait(500);
        let cloud2 = t.connect_full("cloud", connect_pkt("cloud", false, 60, None), true);
        if delivered {
            t.receive(cloud2, 3, 2, "dut/a", "m1");
        }
        t.wait(3000).step("end");
        let v = check(SPEC, &t.history());
        assert_eq!(v.ok(), delivered, "{:?}", v);
    }
}

#[test]
fn clean_subscriber_that_was_offline_is_not_required() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "dut/#", 2);
    t.close(cloud, CloseReason::Severed);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 2, "dut/a", "m1");
    let _cloud2 = t.connect("cloud", "cloud", true, 60);
    t.wait(3000).step("end");
    assert!(check(SPEC, &t.history()).ok());
}

#[test]
fn repeated_payloads_are_undecidable_not_guessed() {
    let mut t = T::new();
    let (cloud, dev) = setup(&mut t, 2);
    t.publish(dev, 1, 2, "dut/a", "same");
    t.publish(dev, 2, 2, "dut/a", "same");
    t.receive(cloud, 5, 2, "dut/a", "same");
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);
    assert!(v.notes.iter().any(|n| n.contains("cannot decide")));
}
