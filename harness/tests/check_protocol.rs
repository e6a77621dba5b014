//! Protocol rules over the packet stream, both directions.
use crate::check_util::*;
use mqtt_hil::history::{CloseReason, Dir, Fate};
use mqtt_hil::mqtt::{Ack, Packet};

const SPEC: &str = r#"check = "protocol""#;

#[test]
fn clean_flows_pass() {
    let mut t = T::new();
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "a/#", 2);
    let dev = t.connect("device", "dut-1", true, 60);
    t.publish(dev, 1, 2, "a/b", "m1")
        .publish(dev, 1, 2, "a/b", "m2")
        .publish(dev, 2, 1, "a/c", "m3");
    t.receive(cloud, 1, 2, "a/b", "m1")
        .receive(cloud, 1, 2, "a/b", "m2");
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);
}

#[test]
fn retransmission_without_dup_fails() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", false, false));
    t.up(dev, publish(Some(1), 1, "a/b", "m1", false, false));
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.3.1-1"], "{:?}", v);
}

#[test]
fn pid_reuse_before_pubcomp_fails_for_client_and_broker() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 2, "a/b", "m1", false, false));
    t.ack(dev, false, "pubrec", 1);
    t.ack(dev, true, "pubrel", 1);
    t.up(dev, publish(Some(1), 2, "a/b", "m2", false, false));
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-2.3.1-2"], "{:?}", v);
    // The broker as sender.
    let mut t = T::new();
    let c = t.connect("cloud", "cloud", true, 60);
    t.subscribe(c, 1, "#", 1);
    t.down(c, publish(Some(9), 1, "a/b", "x", false, false));
    t.down(c, publish(Some(9), 1, "a/c", "y", false, false));
    let v = check(SPEC, &t.history());
    // 3.1.1 numbers the server's packet id rule on its own.
    assert_eq!(v.rules(), vec!["MQTT-2.3.1-4"], "{:?}", v);
    assert!(v.violations[0].message.contains("the broker"));
}

#[test]
fn qos0_with_pid_and_pubrel_without_pubrec_fail() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(3), 0, "a/b", "m1", false, false));
    t.up(dev, publish(Some(4), 2, "a/b", "m2", false, false));
    t.ack(dev, true, "pubrel", 4);
    let v = check(SPEC, &t.history());
    assert_eq!(
        v.rules(),
        vec!["MQTT-2.3.1-5", "pubrel-without-pubrec"],
        "{:?}",
        v
    );
}

/// A sender that answers every PUBREC it gets with PUBREL is right even
/// when the receiver's PUBCOMP overtook its answer at the proxy: the order
/// of packets crossing on one connection is left open by the protocol.
/// A second PUBREL with no second PUBREC to answer is still caught.
#[test]
fn pubrel_answering_a_pubrec_that_crossed_the_pubcomp_passes() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 2, "a/b", "m1", false, false));
    t.ack(dev, false, "pubrec", 1);
    t.ack(dev, true, "pubrel", 1);
    t.ack(dev, false, "pubrec", 1); // the receiver's second PUBREC
    t.ack(dev, false, "pubcomp", 1);
    t.ack(dev, true, "pubrel", 1); // answers it, crossing the PUBCOMP
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);

    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 2, "a/b", "m1", false, false));
    t.ack(dev, false, "pubrec", 1);
    t.ack(dev, true, "pubrel", 1);
    t.ack(dev, false, "pubcomp", 1);
    t.ack(dev, true, "pubrel", 1); // nothing to answer
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["pubrel-without-pubrec"], "{:?}", v);
}

/// NATS 2.10, scenarios/slow/qos2_acks_delayed_30s_to_broker.toml, events
/// #31-#37 of a run (2026-12-07) the old rule failed: the device's PUBREC
/// held 30s at the proxy is released as NATS resends the PUBLISH (DUP,
/// same id); the device answers the resend with a second PUBREC, NATS
/// answers each PUBREC with a PUBREL, and both PUBRELs reached the proxy
/// before the device's first PUBCOMP did (they cross on the wire). Each
/// PUBCOMP answers a PUBREL the device got [MQTT-4.3.3-2]; the rule took
/// the first PUBCOMP as using up the id and flagged the second. A PUBCOMP
/// more than the PUBRELs received is still caught.
#[test]
fn two_pubrels_answered_after_both_arrived_pass() {
    let pubcomps_after_two_pubrels = |pubcomps: usize| {
        let mut t = T::new();
        let dev = t.connect("device", "dut-a2b30", false, 60);
        t.subscribe(dev, 1, "dut/a2b30/cmd", 2);
        t.down(
            dev,
            publish(Some(1), 2, "dut/a2b30/cmd", "c1", false, false),
        );
        t.pkt(dev, Dir::ToBroker, Packet::PubRec(Ack::new(1)), Fate::Held);
        t.wait(30_000);
        t.pkt(
            dev,
            Dir::ToBroker,
            Packet::PubRec(Ack::new(1)),
            Fate::Released,
        ); // #31
        t.down(dev, publish(Some(1), 2, "dut/a2b30/cmd", "c1", true, false)); // #32
        t.ack(dev, true, "pubrec", 1); // #33, answers the resend
        t.ack(dev, false, "pubrel", 1); // #34
        t.ack(dev, false, "pubrel", 1); // #35
        for _ in 0..pubcomps {
            t.ack(dev, true, "pubcomp", 1); // #36, #37
        }
        check(SPEC, &t.history())
    };
    let v = pubcomps_after_two_pubrels(2);
    assert!(v.ok(), "{:?}", v);
    let v = pubcomps_after_two_pubrels(3);
    assert_eq!(v.rules(), vec!["pubcomp-without-pubrel"], "{:?}", v);

    // One PUBREL, two PUBCOMPs: the second answers nothing.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.subscribe(dev, 1, "a/b", 2);
    t.down(dev, publish(Some(1), 2, "a/b", "m1", false, false));
    t.ack(dev, true, "pubrec", 1);
    t.ack(dev, false, "pubrel", 1);
    t.ack(dev, true, "pubcomp", 1);
    t.ack(dev, true, "pubcomp", 1);
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["pubcomp-without-pubrel"], "{:?}", v);
}

#[test]
fn ack_for_unknown_pid_fails() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.ack(dev, false, "puback", 42);
    t.ack(dev, false, "pubcomp", 43);
    let v = check(SPEC, &t.history());
    assert_eq!(
        v.rules(),
        vec!["ack-without-publish", "pubcomp-without-pubrel"],
        "{:?}",
        v
    );
}

#[test]
fn resumed_session_must_resend() {
    for resend in [true, false] {
        let mut t = T::new();
        let dev = t.connect("device", "dut-1", false, 60);
        t.up(dev, publish(Some(1), 2, "a/b", "m1", false, false));
        t.ack(dev, false, "pubrec", 1);
        t.up(dev, publish(Some(2), 1, "a/c", "m2", false, false));
        t.close(dev, CloseReason::Severed);
        let dev2 = t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
        if resend {
            t.up(dev2, publish(Some(2), 1, "a/c", "m2", true, false));
            t.ack(dev2, false, "puback", 2);
            t.ack(dev2, true, "pubrel", 1);
            t.ack(dev2, false, "pubcomp", 1);
        }
        t.wait(3000).step("end");
        let v = check(SPEC, &t.history());
        if resend {
            assert!(v.ok(), "{:?}", v);
        } else {
            assert_eq!(v.rules(), vec!["MQTT-4.4.0-1", "MQTT-4.4.0-1"], "{:?}", v);
        }
    }
}

#[test]
fn resend_without_dup_after_reconnect_fails() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", false, 60);
    t.up(dev, publish(Some(2), 1, "a/c", "m2", false, false));
    t.close(dev, CloseReason::Severed);
    let dev2 = t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
    t.up(dev2, publish(Some(2), 1, "a/c", "m2", false, false));
    t.ack(dev2, false, "puback", 2);
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.3.1-1"], "{:?}", v);
}

#[test]
fn held_and_released_packet_is_one_send_and_dropped_ack_keeps_pid_busy() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    let p = publish(Some(1), 1, "a/b", "m1", false, false);
    t.pkt(dev, Dir::ToBroker, p.clone(), Fate::Held);
    t.pkt(dev, Dir::ToBroker, p, Fate::Released);
    // The PUBACK is dropped: the client never saw it, so a resend with DUP is right.
    t.pkt(
        dev,
        Dir::ToClient,
        Packet::PubAck(Ack::new(1)),
        Fate::Dropped,
    );
    t.up(dev, publish(Some(1), 1, "a/b", "m1", true, false));
    t.ack(dev, false, "puback", 1);
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{:?}", v);
}

#[test]
fn always_judges_the_device_but_not_scripted_observers() {
    let mut t = T::new();
    let obs = t.connect("cloud", "cloud", true, 60);
    t.up(obs, publish(Some(1), 1, "a/b", "m1", false, false));
    t.up(obs, publish(Some(1), 1, "a/b", "m2", false, false));
    let h = t.history();
    let always = mqtt_hil::check::always();
    assert!(always.iter().all(|c| c.check(&h).ok()));
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", false, false));
    t.up(dev, publish(Some(1), 1, "a/b", "m2", false, false));
    let h = t.history();
    assert!(always.iter().any(|c| !c.check(&h).ok()));
}

#[test]
fn a_pubrel_left_without_pubcomp_while_the_connection_stands_fails() {
    // The broker got the device's PUBREL and never completed the exchange.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(7), 2, "a/b", "m1", false, false));
    t.ack(dev, false, "pubrec", 7);
    let rel = t.ack(dev, true, "pubrel", 7);
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.3.3-2"], "{v:?}");
    assert_eq!(v.violations[0].events, vec![rel]);
    assert!(v.violations[0].message.contains("no PUBCOMP"), "{v:?}");
    // The device as receiver: a PUBLISH it never acknowledged.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.down(dev, publish(Some(3), 1, "a/b", "m1", false, false));
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.3.2-2"], "{v:?}");
}

#[test]
fn a_held_answer_a_closed_connection_or_an_observer_are_not_owed_acks() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(7), 2, "a/b", "m1", false, false));
    t.ack(dev, false, "pubrec", 7);
    t.ack(dev, true, "pubrel", 7);
    // The broker answered in time; a proxy rule holds the PUBCOMP for 7s.
    t.fault("device", "delay PUBCOMP 7s");
    t.pkt(dev, Dir::ToClient, Packet::PubComp(Ack::new(7)), Fate::Held);
    t.wait(7000);
    t.pkt(
        dev,
        Dir::ToClient,
        Packet::PubComp(Ack::new(7)),
        Fate::Released,
    );
    // A PUBREL the connection did not outlive by a second.
    t.up(dev, publish(Some(8), 2, "a/b", "m2", false, false));
    t.ack(dev, false, "pubrec", 8);
    t.ack(dev, true, "pubrel", 8);
    t.wait(400).close(dev, CloseReason::Severed);
    // An observer withholding its PUBACK on purpose (not a judged client).
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.down(cloud, publish(Some(1), 1, "a/b", "m1", false, false));
    t.wait(3000).step("end");
    let v = check(
        r#"check = "protocol"
clients = ["device"]"#,
        &t.history(),
    );
    assert!(v.ok(), "{v:?}");
}

#[test]
fn the_resend_check_judges_after_a_board_reset() {
    // The device's inflight survives a board reset (flash); it reconnects
    // and the connection stands for 5s: the missing resend is judged.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", false, 60);
    t.up(dev, publish(Some(2), 1, "a/c", "m2", false, false));
    // The broker's PUBACK is lost with the reset.
    t.pkt(
        dev,
        Dir::ToClient,
        Packet::PubAck(Ack::new(2)),
        Fate::Dropped,
    );
    t.wait(100).board("reset");
    t.wait(1500);
    let dev2 = t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
    t.wait(5000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.4.0-1"], "{v:?}");
    let _ = dev2;
}

#[test]
fn a_qos2_publish_answered_with_puback_owes_its_pubrec() {
    // RabbitMQ 3.10 answers a QoS 2 PUBLISH with PUBACK.
    let mut t = T::new();
    let c = t.connect("cloud", "cloud", true, 60);
    t.up(c, publish(Some(1), 2, "a/b", "m1", false, false));
    t.ack(c, false, "puback", 1);
    t.wait(2000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(
        v.rules(),
        vec!["ack-without-publish", "MQTT-4.3.3-2"],
        "{v:?}"
    );
    assert!(
        v.violations[1].message.contains("answered PUBACK instead"),
        "{v:?}"
    );
}

/// A SUBACK for a SUBSCRIBE never made: the broker's packet id rule for
/// acks of requests.
#[test]
fn suback_for_no_request_fails() {
    let mut t = T::new();
    let c = t.connect("cloud", "cloud", true, 60);
    t.subscribe(c, 1, "a/#", 1);
    t.down(
        c,
        Packet::SubAck(mqtt_hil::mqtt::SubAck {
            pid: 5,
            codes: vec![1],
            properties: Default::default(),
        }),
    );
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-2.3.1-7"], "{v:?}");
}

/// DUP says whether that send repeats: set on a first send, it breaks
/// the broker's rule and the client's QoS 1 and QoS 2 rules.
#[test]
fn dup_on_a_first_send_fails() {
    let mut t = T::new();
    let c = t.connect("cloud", "cloud", true, 60);
    t.subscribe(c, 1, "a/#", 1);
    t.down(c, publish(Some(3), 1, "a/b", "x", true, false));
    t.ack(c, true, "puback", 3);
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.3.1-3"], "{v:?}");

    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", true, false));
    t.ack(dev, false, "puback", 1);
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.3.2-1"], "{v:?}");

    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 2, "a/b", "m1", true, false));
    t.ack(dev, false, "pubrec", 1);
    t.ack(dev, true, "pubrel", 1);
    t.ack(dev, false, "pubcomp", 1);
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.3.3-1"], "{v:?}");
}

/// DUP=1 is right on a resend, across a resumed session too, and a
/// sender whose state predates the run (clean session 0 from the first
/// CONNECT) may be resending what the run never saw.
#[test]
fn dup_on_resends_and_on_unknown_state_passes() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", false, false));
    t.up(dev, publish(Some(1), 1, "a/b", "m1", true, false));
    t.ack(dev, false, "puback", 1);
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{v:?}");

    // The broker's state from before the run: session present 1.
    let mut t = T::new();
    let c = t.connect_full("cloud", connect_pkt("cloud", false, 60, None), true);
    t.down(c, publish(Some(3), 1, "a/b", "x", true, false));
    t.ack(c, true, "puback", 3);
    // The device's own from before the run: it asked to resume.
    let dev = t.connect("device", "dut-1", false, 60);
    t.up(dev, publish(Some(7), 1, "a/b", "m7", true, false));
    t.ack(dev, false, "puback", 7);
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{v:?}");
}

/// What the DUP=0 rule keeps per sender is the last message of each packet
/// id, not every message: a DUP=1 PUBLISH of the last message an id
/// carried is a resend even after its ack went by (the ack crossed the
/// resend on the wire, or was lost with the connection before the sender
/// read it), for the client and the broker alike.
#[test]
fn dup_on_the_last_message_of_an_id_after_its_ack_passes() {
    // The PUBACK crossed the resend on the same connection.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", false, false));
    t.ack(dev, false, "puback", 1);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", true, false));
    t.ack(dev, false, "puback", 1);
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{v:?}");

    // The PUBACK went out, the connection was severed before the device
    // read it, and it resends on its resumed session; another id used
    // meanwhile does not make the id's last message older.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", false, false));
    t.up(dev, publish(Some(2), 1, "a/b", "m2", false, false));
    t.ack(dev, false, "puback", 1);
    t.ack(dev, false, "puback", 2);
    t.close(dev, CloseReason::Severed);
    let dev2 = t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
    t.up(dev2, publish(Some(1), 1, "a/b", "m1", true, false));
    t.ack(dev2, false, "puback", 1);
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{v:?}");

    // The same content sent again as a new message with the same id (DUP
    // 0), then resent: its last message again.
    let mut t = T::new();
    let c = t.connect("cloud", "cloud", true, 60);
    t.subscribe(c, 1, "a/#", 1);
    t.down(c, publish(Some(4), 1, "a/b", "x", false, false));
    t.ack(c, true, "puback", 4);
    t.down(c, publish(Some(4), 1, "a/b", "y", false, false));
    t.ack(c, true, "puback", 4);
    t.down(c, publish(Some(4), 1, "a/b", "x", false, false));
    t.ack(c, true, "puback", 4);
    t.down(c, publish(Some(4), 1, "a/b", "x", true, false));
    t.ack(c, true, "puback", 4);
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{v:?}");
}

/// Once a sender took a packet id again for another message, the older
/// message of that id is acknowledged as far as it knows (an id is free
/// again only then [MQTT-2.3.1-2]): a DUP=1 PUBLISH of it is no resend but
/// a new message with DUP=1. (Before the rule kept only each id's last
/// message, any message ever sent excused a DUP=1, and these passed.)
#[test]
fn dup_on_an_older_message_of_a_reused_id_fails() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", false, false));
    t.ack(dev, false, "puback", 1);
    t.up(dev, publish(Some(1), 1, "a/b", "m2", false, false));
    t.ack(dev, false, "puback", 1);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", true, false));
    t.ack(dev, false, "puback", 1);
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-4.3.2-1"], "{v:?}");
    assert!(
        v.violations[0]
            .message
            .contains("nor the last message it sent with that id"),
        "{v:?}"
    );

    // The broker's, across a resumed session of its subscriber.
    let mut t = T::new();
    let c = t.connect("cloud", "cloud", true, 60);
    t.subscribe(c, 1, "a/#", 2);
    t.down(c, publish(Some(4), 2, "a/b", "x", false, false));
    t.ack(c, true, "pubrec", 4);
    t.ack(c, false, "pubrel", 4);
    t.ack(c, true, "pubcomp", 4);
    t.down(c, publish(Some(4), 2, "a/b", "y", false, false));
    t.ack(c, true, "pubrec", 4);
    t.ack(c, false, "pubrel", 4);
    t.ack(c, true, "pubcomp", 4);
    t.close(c, CloseReason::Severed);
    let c2 = t.connect_full("cloud", connect_pkt("cloud", false, 60, None), true);
    t.down(c2, publish(Some(4), 2, "a/b", "x", true, false));
    t.ack(c2, true, "pubrec", 4);
    t.ack(c2, false, "pubrel", 4);
    t.ack(c2, true, "pubcomp", 4);
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-3.3.1-3"], "{v:?}");
}

/// A resend on a resumed session keeps its packet id — the client's rule,
/// and the server's.
#[test]
fn a_resend_under_another_packet_id_fails() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", false, 60);
    t.up(dev, publish(Some(2), 1, "a/c", "m2", false, false));
    t.close(dev, CloseReason::Severed);
    let dev2 = t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
    t.up(dev2, publish(Some(5), 1, "a/c", "m2", true, false));
    t.ack(dev2, false, "puback", 5);
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-2.3.1-3"], "{v:?}");

    let mut t = T::new();
    let c = t.connect("cloud", "cloud", false, 60);
    t.subscribe(c, 1, "a/#", 1);
    t.down(c, publish(Some(4), 1, "a/b", "x", false, false));
    t.close(c, CloseReason::Severed);
    let c2 = t.connect_full("cloud", connect_pkt("cloud", false, 60, None), true);
    t.down(c2, publish(Some(6), 1, "a/b", "x", true, false));
    t.ack(c2, true, "puback", 6);
    t.wait(3000).step("end");
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-2.3.1-4"], "{v:?}");
}

/// A client resends its unacknowledged PUBLISHes in their first order.
#[test]
fn resends_out_of_their_first_order_fail() {
    for in_order in [true, false] {
        let mut t = T::new();
        let dev = t.connect("device", "dut-1", false, 60);
        // Packet ids out of numeric order, so order by id is not order sent.
        t.up(dev, publish(Some(9), 1, "a/c", "m1", false, false));
        t.up(dev, publish(Some(2), 1, "a/c", "m2", false, false));
        t.close(dev, CloseReason::Severed);
        let dev2 = t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
        let order = if in_order {
            [(9, "m1"), (2, "m2")]
        } else {
            [(2, "m2"), (9, "m1")]
        };
        for (pid, m) in order {
            t.up(dev2, publish(Some(pid), 1, "a/c", m, true, false));
        }
        t.ack(dev2, false, "puback", 9);
        t.ack(dev2, false, "puback", 2);
        t.wait(3000).step("end");
        let v = check(SPEC, &t.history());
        if in_order {
            assert!(v.ok(), "{v:?}");
        } else {
            assert_eq!(v.rules(), vec!["MQTT-4.6.0-1"], "{v:?}");
        }
    }
}

/// A client answers in the order it was asked: PUBACKs, PUBRECs, PUBRELs.
#[test]
fn answers_out_of_order_fail() {
    // QoS 1 PUBLISHes 1 then 2, PUBACK 2 before PUBACK 1.
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.subscribe(dev, 1, "a/#", 2);
    t.down(dev, publish(Some(1), 1, "a/b", "x", false, false));
    t.down(dev, publish(Some(2), 1, "a/b", "y", false, false));
    t.ack(dev, true, "puback", 2);
    t.ack(dev, true, "puback", 1);
    assert_eq!(check(SPEC, &t.history()).rules(), vec!["MQTT-4.6.0-2"]);

    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.subscribe(dev, 1, "a/#", 2);
    t.down(dev, publish(Some(1), 2, "a/b", "x", false, false));
    t.down(dev, publish(Some(2), 2, "a/b", "y", false, false));
    t.ack(dev, true, "pubrec", 2);
    t.ack(dev, true, "pubrec", 1);
    for pid in [1, 2] {
        t.ack(dev, false, "pubrel", pid);
        t.ack(dev, true, "pubcomp", pid);
    }
    assert_eq!(check(SPEC, &t.history()).rules(), vec!["MQTT-4.6.0-3"]);

    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    t.up(dev, publish(Some(1), 2, "a/b", "m1", false, false));
    t.up(dev, publish(Some(2), 2, "a/b", "m2", false, false));
    t.ack(dev, false, "pubrec", 1);
    t.ack(dev, false, "pubrec", 2);
    t.ack(dev, true, "pubrel", 2);
    t.ack(dev, true, "pubrel", 1);
    t.ack(dev, false, "pubcomp", 2);
    t.ack(dev, false, "pubcomp", 1);
    assert_eq!(check(SPEC, &t.history()).rules(), vec!["MQTT-4.6.0-4"]);
}

/// Right beside the order rules: interleaved answers in order, a DUP
/// resend answered again, answers to questions asked on another
/// connection, and observers (their order is the scenario's).
#[test]
fn answers_in_order_pass() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", false, 60);
    t.subscribe(dev, 1, "a/#", 2);
    t.down(dev, publish(Some(1), 1, "a/b", "x", false, false));
    t.down(dev, publish(Some(2), 2, "a/b", "y", false, false));
    t.down(dev, publish(Some(3), 1, "a/b", "z", false, false));
    // A QoS 2 PUBREC between two PUBACKs: different orders, each kept.
    t.ack(dev, true, "puback", 1);
    t.ack(dev, true, "pubrec", 2);
    // PUBLISH 1 again (DUP) after its PUBACK: a new question, answered.
    t.down(dev, publish(Some(1), 1, "a/b", "x", true, false));
    t.ack(dev, true, "puback", 3);
    t.ack(dev, true, "puback", 1);
    t.ack(dev, false, "pubrel", 2);
    t.ack(dev, true, "pubcomp", 2);
    t.up(dev, publish(Some(4), 2, "a/c", "m4", false, false));
    t.ack(dev, false, "pubrec", 4);
    t.close(dev, CloseReason::Severed);
    // On the resumed session the PUBREL is resent, asked on no connection.
    let dev2 = t.connect_full("device", connect_pkt("dut-1", false, 60, None), true);
    t.ack(dev2, true, "pubrel", 4);
    t.ack(dev2, false, "pubcomp", 4);
    // An observer answering out of order is the scenario's business.
    let cloud = t.connect("cloud", "cloud", true, 60);
    t.subscribe(cloud, 1, "a/#", 1);
    t.down(cloud, publish(Some(1), 1, "a/b", "x", false, false));
    t.down(cloud, publish(Some(2), 1, "a/b", "y", false, false));
    t.ack(cloud, true, "puback", 2);
    t.ack(cloud, true, "puback", 1);
    let v = check(
        r#"check = "protocol"
clients = ["device"]"#,
        &t.history(),
    );
    assert!(v.ok(), "{v:?}");
}

/// Judged as events come: a resend the device pipelined right after its
/// CONNECT, before the CONNACK that resumed the session, meets that
/// session's obligation; the message never resent is reported only once
/// its `resend_within` has passed on a connection that stood that long.
#[test]
fn a_resend_before_the_connack_counts_and_a_missing_one_fails_when_its_time_is_up() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", false, 60);
    t.up(dev, publish(Some(1), 1, "a/b", "m1", false, false));
    let m2 = t.up(dev, publish(Some(2), 1, "a/b", "m2", false, false));
    t.close(dev, CloseReason::Severed);
    let dev2 = t.open("device");
    t.up(dev2, Packet::Connect(connect_pkt("dut-1", false, 60, None)));
    t.up(dev2, publish(Some(1), 1, "a/b", "m1", true, false));
    let connack = t.down(
        dev2,
        Packet::ConnAck(mqtt_hil::mqtt::ConnAck {
            session_present: true,
            code: 0,
            properties: Default::default(),
        }),
    );
    t.ack(dev2, false, "puback", 1);
    t.wait(1500).step("not yet");
    let early = t.ev.len() - 1;
    t.wait(1000).step("end");
    let vs = always_at_every_event("protocol", &t.history());
    assert!(vs[early].ok(), "{:?}", vs[early]);
    assert!(
        vs[early]
            .notes
            .iter()
            .any(|n| n.contains("did not resend pid 2")),
        "{:?}",
        vs[early]
    );
    let end = vs.last().unwrap();
    assert_eq!(end.rules(), vec!["MQTT-4.4.0-1"], "{end:?}");
    assert_eq!(end.violations[0].events, vec![m2, connack], "{end:?}");
}

/// Judged as events come: an answer owed for longer than `ack_within` is
/// a violation while it is missing, and no longer once it is sent (the
/// rule is that it is sent, its deadline only when to judge).
#[test]
fn an_owed_puback_fails_while_missing_and_passes_once_sent_late() {
    let mut t = T::new();
    let dev = t.connect("device", "dut-1", true, 60);
    let asked = t.down(dev, publish(Some(7), 1, "dut/1/cmd", "go", false, false));
    t.wait(500).step("within");
    let within = t.ev.len() - 1;
    t.wait(1000).step("late");
    let late = t.ev.len() - 1;
    t.ack(dev, true, "puback", 7);
    t.wait(2000).step("end");
    let vs = always_at_every_event("protocol", &t.history());
    assert!(vs[within].ok(), "{:?}", vs[within]);
    assert_eq!(vs[late].rules(), vec!["MQTT-4.3.2-2"], "{:?}", vs[late]);
    assert_eq!(vs[late].violations[0].events, vec![asked]);
    assert!(vs.last().unwrap().ok(), "{:?}", vs.last());
}

/// A DUP=1 PUBLISH under an id that never carried its message, while that
/// message is in flight under another id on the same connection, is a
/// resend that changed its packet id [MQTT-2.3.1-4]; the same content
/// published twice as two messages, each resent under its own id, is not.
#[test]
fn a_resend_under_another_id_fails_but_a_second_message_of_the_same_content_passes() {
    let mut t = T::new();
    let c = t.connect("cloud", "cloud", true, 60);
    t.subscribe(c, 1, "#", 2);
    t.down(c, publish(Some(4), 2, "a/b", "x", false, false));
    t.down(c, publish(Some(6), 2, "a/b", "x", true, false));
    let v = check(SPEC, &t.history());
    assert_eq!(v.rules(), vec!["MQTT-2.3.1-4"], "{v:?}");
    assert!(
        v.violations[0].message.contains("as pid 6 with DUP=1"),
        "{v:?}"
    );

    let mut t = T::new();
    let c = t.connect("cloud", "cloud", true, 60);
    t.subscribe(c, 1, "#", 2);
    t.down(c, publish(Some(4), 2, "a/b", "x", false, false));
    t.down(c, publish(Some(6), 2, "a/b", "x", false, false));
    t.down(c, publish(Some(6), 2, "a/b", "x", true, false));
    let v = check(SPEC, &t.history());
    assert!(v.ok(), "{v:?}");
}
