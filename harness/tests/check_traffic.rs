//! The traffic-only checks of black-box scenarios, judged on histories
//! recorded from the example counter device (good and seeded-bug builds) and
//! on hand-written ones: each passes the good history and names the broken
//! rule in the bad one.
use crate::check_util::*;
use mqtt_hil::history::{Dir, Fate};

const SEQ: &str = "check = \"sequence\"\ntopic = \"devices/{client_id}/counter\"\njson = \"count\"";

#[test]
fn sequence_passes_the_good_device_across_an_outage() {
    let h = load_fixture("bb_outage_good.hist");
    let v = check(&format!("{SEQ}\nqos = 1"), &h);
    assert!(v.ok(), "{v:?}");
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("6 reading(s) received, 1 to 6, 0 repeated, 0 lost")),
        "{v:?}"
    );
    // The same readings through a regex.
    let v = check(
        "check = \"sequence\"\ntopic = \"devices/+/counter\"\nregex = '\"count\":(\\d+)'\nqos = 1",
        &h,
    );
    assert!(v.ok(), "{v:?}");
    assert!(v.notes.iter().any(|n| n.contains("0 lost")), "{v:?}");
}

#[test]
fn sequence_catches_qos0_readings_lost_across_an_outage() {
    let h = load_fixture("bb_outage_qos0_readings.hist");
    let v = check(&format!("{SEQ}\nqos = 1"), &h);
    assert_eq!(v.rules(), vec!["sequence-qos", "sequence-loss"], "{v:?}");
    assert!(
        v.violations[1].message.contains("readings 3 to 5 (3)"),
        "{}",
        v.violations[1]
    );
    // Judged by the QoS it actually used, QoS 0 may lose: only a note.
    let v = check(SEQ, &h);
    assert!(v.ok(), "{v:?}");
    assert!(
        v.notes.iter().any(|n| n.contains("QoS 0 may lose")),
        "{v:?}"
    );
}

#[test]
fn sequence_judges_repeats_and_gaps_by_qos() {
    let h = load_fixture("seq_qos2_repeat_and_qos1_gap.hist");
    let v = check(
        "check = \"sequence\"\ntopic = \"+/seq\"\nregex = 'n=(\\d+)'",
        &h,
    );
    assert_eq!(
        v.rules(),
        vec!["sequence-unreadable", "sequence-duplicate", "sequence-loss"],
        "{v:?}"
    );
    assert!(v.violations[0].message.contains("\"oops\""), "{v:?}");
    assert!(
        v.violations[1].message.contains("reading 2 on `a/seq`"),
        "{v:?}"
    );
    assert!(
        v.violations[2].message.contains("reading 3 on `b/seq`"),
        "{v:?}"
    );
    // b/seq's repeat of 5 with a new id is QoS 1's right; its DUP resend
    // is no repeat at all.
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("`b/seq`") && n.contains("1 repeated")),
        "{v:?}"
    );
}

/// An announcement (`oops` here) on a numbered topic is skipped when the
/// check is told the topic carries some; the real violations still show.
#[test]
fn sequence_skips_unnumbered_payloads_when_told() {
    let h = load_fixture("seq_qos2_repeat_and_qos1_gap.hist");
    let v = check(
        "check = \"sequence\"\ntopic = \"+/seq\"\nregex = 'n=(\\d+)'\nskip_unnumbered = true",
        &h,
    );
    assert_eq!(
        v.rules(),
        vec!["sequence-duplicate", "sequence-loss"],
        "{v:?}"
    );
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("skipped as announcements") && n.contains("\"oops\"")),
        "{v:?}"
    );
}

#[test]
fn sequence_starts_a_new_count_after_a_board_reset() {
    let mut t = T::new();
    let c = t.connect("device", "dev", true, 10);
    t.up(c, publish(Some(1), 1, "d/c", "{\"count\":1}", false, false));
    t.up(c, publish(Some(2), 1, "d/c", "{\"count\":2}", false, false));
    t.board("reset");
    let c2 = t.connect("device", "dev", true, 10);
    t.up(
        c2,
        publish(Some(1), 1, "d/c", "{\"count\":1}", false, false),
    );
    t.up(
        c2,
        publish(Some(2), 1, "d/c", "{\"count\":3}", false, false),
    );
    let v = check(
        "check = \"sequence\"\ntopic = \"d/c\"\njson = \"count\"",
        &t.history(),
    );
    // 1 again after the reset is a new count, not a repeat; 2 is missing
    // from the second count.
    assert_eq!(v.rules(), vec!["sequence-loss"], "{v:?}");
    // A dropped publish never reached the broker: a loss, if nothing resends it.
    let mut t = T::new();
    let c = t.connect("device", "dev", true, 10);
    t.up(c, publish(Some(1), 1, "d/c", "{\"count\":1}", false, false));
    t.pkt(
        c,
        Dir::ToBroker,
        publish(Some(2), 1, "d/c", "{\"count\":2}", false, false),
        Fate::Dropped,
    );
    t.up(c, publish(Some(3), 1, "d/c", "{\"count\":3}", false, false));
    let v = check(
        "check = \"sequence\"\ntopic = \"d/c\"\njson = \"count\"",
        &t.history(),
    );
    assert_eq!(v.rules(), vec!["sequence-loss"], "{v:?}");
}

#[test]
fn resubscribe_passes_the_good_device_and_catches_the_forgetful_one() {
    let v = check(
        "check = \"resubscribe\"",
        &load_fixture("bb_commands_good.hist"),
    );
    assert!(v.ok(), "{v:?}");
    assert!(v.notes[0].starts_with("1 reconnection(s)"), "{v:?}");
    let v = check(
        "check = \"resubscribe\"",
        &load_fixture("bb_commands_no_resubscribe.hist"),
    );
    assert_eq!(v.rules(), vec!["resubscribe-after-clean-session"], "{v:?}");
    assert!(
        v.violations[0]
            .message
            .contains("did not subscribe to `devices/counter-e5e266/cmd` again"),
        "{}",
        v.violations[0]
    );
}

#[test]
fn resubscribe_is_not_required_when_the_session_survived() {
    let mut t = T::new();
    let c = t.connect("device", "dev", false, 10);
    t.subscribe(c, 1, "cmd/#", 1);
    t.close(c, mqtt_hil::history::CloseReason::Severed);
    // Session present: the subscription is still there.
    t.connect_full("device", connect_pkt("dev", false, 10, None), true);
    t.wait(3000);
    let v = check("check = \"resubscribe\"", &t.history());
    assert!(v.ok(), "{v:?}");
}

#[test]
fn publish_allowed_names_the_topic_it_had_no_business_with() {
    let h = load_fixture("bb_commands_good.hist");
    let all = "check = \"publish_allowed\"\ntopics = [\"devices/{client_id}/counter\", \"devices/{client_id}/state\", \"devices/{client_id}/status\"]";
    let v = check(all, &h);
    assert!(v.ok(), "{v:?}");
    let v = check(
        "check = \"publish_allowed\"\ntopics = [\"devices/+/counter\", \"devices/+/status\"]",
        &h,
    );
    assert_eq!(v.rules(), vec!["publish-not-allowed"], "{v:?}");
    assert!(
        v.violations[0]
            .message
            .contains("published 2 message(s) on `devices/counter-e5e266/state`"),
        "{}",
        v.violations[0]
    );
    // The will is a publication too.
    let v = check(
        "check = \"publish_allowed\"\ntopics = [\"devices/+/counter\", \"devices/+/state\"]",
        &h,
    );
    assert!(
        v.violations
            .iter()
            .any(|x| x.rule == "publish-not-allowed"
                && x.message.contains("set a will in 2 CONNECT(s)")),
        "{v:?}"
    );
}

#[test]
fn will_backoff_and_keepalive_judge_the_recorded_device() {
    // Severed, then refused for a while: the will is due, and reached the
    // cloud once.
    let v = check("check = \"will\"", &load_fixture("bb_outage_good.hist"));
    assert!(v.ok(), "{v:?}");
    assert!(
        v.notes[0].contains("1 of which ended so that the will was due"),
        "{v:?}"
    );
    // Reconnected within 100 ms of the sever: the broker may have taken the
    // new CONNECT as a takeover, so the will is allowed, not required.
    let v = check("check = \"will\"", &load_fixture("bb_commands_good.hist"));
    assert!(v.ok(), "{v:?}");
    assert!(v.notes.iter().any(|n| n.contains("taken over")), "{v:?}");
    let v = check(
        "check = \"backoff\"\nmax_per_second = 3",
        &load_fixture("bb_backoff_good.hist"),
    );
    assert!(v.ok(), "{v:?}");
    let v = check(
        "check = \"backoff\"\nmax_per_second = 3",
        &load_fixture("bb_backoff_tight_reconnect.hist"),
    );
    assert_eq!(v.rules(), vec!["backoff-too-fast"], "{v:?}");
    let v = check(
        "check = \"keepalive\"",
        &load_fixture("bb_outage_good.hist"),
    );
    assert!(v.ok(), "{v:?}");
}

/// `declared`: every CONNECT carries the keep alive and will the device's
/// description declares; `{client_id}` in the will topic is that CONNECT's
/// own client id (the tricky good case: two devices, two ids).
#[test]
fn declared_compares_each_connect_with_the_description() {
    let spec = "check = \"declared\"\nkeepalive = 4\nwill_topic = \"devices/{client_id}/status\"\nwill_payload = \"offline\"";
    let run = |id: &str, ka: u16, w: Option<(&str, &str)>| {
        let mut t = T::new();
        t.connect_full(
            "device",
            connect_pkt(id, true, ka, w.map(|(topic, p)| will(topic, p, 1))),
            false,
        );
        t.wait(500);
        // After a reconnect, the same again.
        t.connect_full(
            "device",
            connect_pkt(id, true, ka, w.map(|(topic, p)| will(topic, p, 1))),
            false,
        );
        t.wait(500).step("end");
        check(spec, &t.history())
    };
    let v = run(
        "counter-1",
        4,
        Some(("devices/counter-1/status", "offline")),
    );
    assert!(v.ok(), "{v:?}");
    let v = run(
        "counter-2",
        4,
        Some(("devices/counter-2/status", "offline")),
    );
    assert!(v.ok(), "{v:?}");
    let v = run(
        "counter-1",
        10,
        Some(("devices/counter-1/status", "offline")),
    );
    assert_eq!(v.rules(), vec!["declared-keepalive"], "{v:?}");
    assert!(v.violations[0].message.contains("10 s"), "{v:?}");
    let v = run("counter-1", 4, None);
    assert_eq!(v.rules(), vec!["declared-will"], "{v:?}");
    let v = run("counter-1", 4, Some(("devices/other/status", "offline")));
    assert_eq!(v.rules(), vec!["declared-will"], "{v:?}");
    let v = run("counter-1", 4, Some(("devices/counter-1/status", "bye")));
    assert_eq!(v.rules(), vec!["declared-will"], "{v:?}");
    assert!(v.violations[0].message.contains("\"bye\""), "{v:?}");
}
