//! `v5_retain_handling`: the 5.0 Retain Handling subscription option
//! (statement ids are MQTT 5.0's).
//!
//! For each SUBSCRIBE filter from a 5.0 client, "sent in answer to the
//! subscribe" means a PUBLISH with RETAIN set to that connection, on a
//! matching topic, within `within` after the SUBACK, of a message
//! published before the SUBSCRIBE. Then:
//! - Retain Handling 2: nothing is sent in answer [MQTT-3.3.1-11];
//! - Retain Handling 1 and the session already had this filter: nothing is
//!   sent [MQTT-3.3.1-10];
//! - Retain Handling 0, or 1 on a new subscription: every retained message
//!   the harness knows the broker holds on a matching topic is sent
//!   [MQTT-3.3.1-9], [MQTT-3.3.1-10]. The store is the latest non-empty
//!   retained PUBLISH per topic that reached the broker, with no empty
//!   retained PUBLISH after it, no message expiry, and no broker restart
//!   or kill since (the store after one is unknown, so nothing is required).
//! - and nothing is sent in answer that the store cannot hold: a replaced
//!   message [MQTT-3.3.1-5], a cleared one [MQTT-3.3.1-6], an empty one
//!   [MQTT-3.3.1-7], one published with RETAIN 0 [MQTT-3.3.1-8].

use std::collections::BTreeMap;
use std::time::Duration;

use super::index::{seen, Index};
use super::{Checker, Verdict};
use crate::history::Dir;
use crate::mqtt::props::{self, MESSAGE_EXPIRY};
use crate::mqtt::{topic, Version};

pub struct RetainHandlingChecker {
    pub within: Duration,
}

impl Checker for RetainHandlingChecker {
    fn name(&self) -> &str {
        "v5_retain_handling"
    }

    fn check(&self, history: &super::History) -> Verdict {
        let mut v = Verdict::new(self.name());
        let ix = Index::new(history);
        for (si, s) in ix.subs.iter().enumerate() {
            let conn = &ix.conns[s.conn];
            if conn.version() != Version::V5 || s.shared() {
                continue;
            }
            let Some((ack, code)) = &s.acked else {
                continue;
            };
            if *code >= 0x80 {
                continue;
            }
            let rh = (s.options >> 4) & 3;
            // Retained PUBLISHes to this connection answering this SUBSCRIBE.
            let answers: Vec<_> = ix
                .pubs
                .iter()
                .filter(|p| {
                    p.dir == Dir::ToClient
                        && p.conn == conn.id
                        && p.publish.retain
                        && p.stamp.seq > s.sent.seq
                        && p.stamp.at <= ack.at + self.within
                        && topic::matches(&s.filter, &p.publish.topic)
                        && ix.pubs.iter().any(|o| {
                            o.dir == Dir::ToBroker
                                && o.stamp.seq < s.sent.seq
                                && o.publish.retain
                                && o.publish.topic == p.publish.topic
                                && o.publish.payload == p.publish.payload
                        })
                })
                .collect();
            let existed = ix.subs[..si].iter().any(|o| {
                let oc = &ix.conns[o.conn];
                o.filter == s.filter
                    && oc.client_id() == conn.client_id()
                    && oc.lineage == conn.lineage
                    && o.acked.as_ref().is_some_and(|(_, c)| *c < 0x80)
                    && o.unsub.as_ref().is_none_or(|u| u.seq > s.sent.seq)
            });
            let evs = |extra: &[u64]| {
                let mut e = vec![s.sent.seq, ack.seq];
                e.extend_from_slice(extra);
                e
            };
            if rh == 2 && !answers.is_empty() {
                v.fail(
                    "MQTT-3.3.1-11",
                    format!(
                        "{} subscribed to {} with Retain Handling 2 and got retained {} in answer",
                        s.actor, s.filter, answers[0].publish.topic
                    ),
                    evs(&[answers[0].stamp.seq]),
                );
                continue;
            }
            if rh == 1 && existed {
                if let Some(a) = answers.first() {
                    v.fail(
                        "MQTT-3.3.1-10",
                        format!(
                            "{} renewed its subscription to {} with Retain Handling 1 and got retained {} again",
                            s.actor, s.filter, a.publish.topic
                        ),
                        evs(&[a.stamp.seq]),
                    );
                }
                continue;
            }
            if rh == 2 {
                continue;
            }
            if ix.broker_down_between(Duration::ZERO, s.sent.at).is_some() {
                v.note(format!(
                    "broker restarted or killed before {}'s subscription to {}: its retained store is unknown",
                    s.actor, s.filter
                ));
                continue;
            }
            if ack.at + self.within > ix.end {
                continue;
            }
            // The store: the latest retained PUBLISH per topic before the SUBSCRIBE.
            let mut store: BTreeMap<&str, Option<&super::index::PubEv>> = BTreeMap::new();
            for o in ix.pubs.iter().filter(|o| {
                o.dir == Dir::ToBroker
                    && o.publish.retain
                    && seen(o.fate)
                    && o.stamp.seq < s.sent.seq
            }) {
                let keep = !o.publish.payload.is_empty()
                    && props::get(&o.publish.properties, MESSAGE_EXPIRY).is_none();
                store.insert(o.publish.topic.as_str(), keep.then_some(o));
            }
            self.stale_answers(&ix, s, &answers, &mut v);
            for (t, held) in store {
                let Some(o) = held else { continue };
                if !topic::matches(&s.filter, t) {
                    continue;
                }
                if !answers
                    .iter()
                    .any(|a| a.publish.payload == o.publish.payload && a.publish.topic == t)
                {
                    let rule = if rh == 0 {
                        "MQTT-3.3.1-9"
                    } else {
                        "MQTT-3.3.1-10"
                    };
                    v.fail(
                        rule,
                        format!(
                            "{} subscribed to {} (Retain Handling {rh}, new: {}) and did not get the retained message on {t} within {}",
                            s.actor,
                            s.filter,
                            !existed,
                            super::fmt_d(self.within)
                        ),
                        evs(&[o.stamp.seq]),
                    );
                }
            }
        }
        v
    }
}

impl RetainHandlingChecker {
    /// What the broker sent in answer that its store could not hold: the
    /// topic's latest retained PUBLISH (before the SUBSCRIBE) decides.
    /// A message it replaced [MQTT-3.3.1-5]; anything after an empty one
    /// cleared it [MQTT-3.3.1-6]; the empty one itself [MQTT-3.3.1-7]; a
    /// payload only ever published with RETAIN 0 [MQTT-3.3.1-8]. A topic
    /// whose retained messages had an expiry is left alone.
    fn stale_answers(
        &self,
        ix: &Index,
        s: &super::index::Sub,
        answers: &[&super::index::PubEv],
        v: &mut Verdict,
    ) {
        let before = |o: &&super::index::PubEv| {
            o.dir == Dir::ToBroker && seen(o.fate) && o.stamp.seq < s.sent.seq
        };
        let Some((ack, _)) = &s.acked else { return };
        for a in answers {
            let t = a.publish.topic.as_str();
            let retained: Vec<_> = ix
                .pubs
                .iter()
                .filter(before)
                .filter(|o| o.publish.retain && o.publish.topic == t)
                .collect();
            if retained
                .iter()
                .any(|o| props::get(&o.publish.properties, MESSAGE_EXPIRY).is_some())
            {
                continue;
            }
            let Some(latest) = retained.last() else {
                continue;
            };
            let (rule, what) = if a.publish.payload.is_empty() {
                (
                    "MQTT-3.3.1-7",
                    "an empty retained message, which is never stored",
                )
            } else if latest.publish.payload.is_empty() {
                (
                    "MQTT-3.3.1-6",
                    "a retained message an empty retained PUBLISH had cleared",
                )
            } else if latest.publish.payload != a.publish.payload {
                (
                    "MQTT-3.3.1-5",
                    "a retained message a later one had replaced",
                )
            } else {
                continue;
            };
            v.fail(
                rule,
                format!(
                    "{} subscribed to {} and got, on {t}, {what}",
                    s.actor, s.filter
                ),
                vec![s.sent.seq, ack.seq, latest.stamp.seq, a.stamp.seq],
            );
        }
        // Sent as retained, but only ever published with RETAIN 0.
        for a in ix.pubs.iter().filter(|p| {
            p.dir == Dir::ToClient
                && p.conn == ix.conns[s.conn].id
                && p.publish.retain
                && p.stamp.seq > s.sent.seq
                && p.stamp.at <= ack.at + self.within
                && topic::matches(&s.filter, &p.publish.topic)
        }) {
            let same = |o: &&super::index::PubEv| {
                o.publish.topic == a.publish.topic && o.publish.payload == a.publish.payload
            };
            let plain = ix
                .pubs
                .iter()
                .filter(before)
                .filter(same)
                .find(|o| !o.publish.retain);
            let ever_retained = ix
                .pubs
                .iter()
                .filter(|o| o.dir == Dir::ToBroker && o.stamp.seq < a.stamp.seq)
                .filter(same)
                .any(|o| o.publish.retain);
            if let (Some(o), false) = (plain, ever_retained) {
                v.fail(
                    "MQTT-3.3.1-8",
                    format!(
                        "{} subscribed to {} and got, as retained, a message on {} that was published with RETAIN 0",
                        s.actor, s.filter, a.publish.topic
                    ),
                    vec![o.stamp.seq, s.sent.seq, a.stamp.seq],
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::*;
    use super::*;

    fn checker() -> RetainHandlingChecker {
        RetainHandlingChecker {
            within: Duration::from_millis(500),
        }
    }

    /// device retains "on" at t/1; cloud subscribes with `rh`.
    fn base(rh: u8) -> Kit {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("dev", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "device", retained(publish(None, 0, "t/1", "on", "")));
        k.wait(10);
        k.session(
            2,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(2, "cloud", subscribe(1, "t/#", 0, rh << 4, ""))
            .down(2, "cloud", suback(1, &[0]));
        k
    }

    #[test]
    fn retain_handling_two_gets_nothing() {
        let mut k = base(2);
        k.wait(1000).step("end");
        assert!(checker().check(&k.history()).ok());
        let mut k = base(2);
        k.down(2, "cloud", retained(publish(None, 0, "t/1", "on", "")))
            .wait(1000)
            .step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.1-11"]);
    }

    #[test]
    fn retain_handling_zero_must_send_what_is_retained() {
        let mut k = base(0);
        k.down(2, "cloud", retained(publish(None, 0, "t/1", "on", "")))
            .wait(1000)
            .step("end");
        assert!(checker().check(&k.history()).ok());
        let mut k = base(0);
        k.wait(1000).step("end");
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.1-9"]);
        // Cleared by an empty retained message: nothing is owed.
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("dev", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "device", retained(publish(None, 0, "t/1", "on", "")));
        k.up(1, "device", retained(publish(None, 0, "t/1", "", "")));
        k.session(
            2,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(2, "cloud", subscribe(1, "t/#", 0, 0, ""))
            .down(2, "cloud", suback(1, &[0]));
        k.wait(1000).step("end");
        assert!(checker().check(&k.history()).ok());
    }

    #[test]
    fn retain_handling_one_sends_only_for_a_new_subscription() {
        let mut k = base(1);
        k.down(2, "cloud", retained(publish(None, 0, "t/1", "on", "")));
        k.wait(1000)
            .up(2, "cloud", subscribe(2, "t/#", 0, 1 << 4, ""))
            .down(2, "cloud", suback(2, &[0]));
        k.wait(1000).step("end");
        assert!(checker().check(&k.history()).ok());
        let mut k2 = base(1);
        k2.down(2, "cloud", retained(publish(None, 0, "t/1", "on", "")));
        k2.wait(1000)
            .up(2, "cloud", subscribe(2, "t/#", 0, 1 << 4, ""))
            .down(2, "cloud", suback(2, &[0]));
        k2.down(2, "cloud", retained(publish(None, 0, "t/1", "on", "")))
            .wait(1000)
            .step("end");
        assert_eq!(
            checker().check(&k2.history()).rules(),
            vec!["MQTT-3.3.1-10"]
        );
    }

    /// The device's retained messages on t/1 (`payloads`, "" clears,
    /// `plain` ones without RETAIN), then cloud subscribes with Retain
    /// Handling 0 and gets `answer` as retained.
    fn answered(payloads: &[(&str, bool)], answer: Option<&str>) -> Verdict {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("dev", true, 60, ""),
            connack(false, 0, ""),
        );
        for (p, retain) in payloads {
            let pk = publish(None, 0, "t/1", p, "");
            k.up(1, "device", if *retain { retained(pk) } else { pk });
        }
        k.wait(10).session(
            2,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(2, "cloud", subscribe(1, "t/#", 0, 0, ""))
            .down(2, "cloud", suback(1, &[0]));
        if let Some(a) = answer {
            k.down(2, "cloud", retained(publish(None, 0, "t/1", a, "")));
        }
        k.wait(1000).step("end");
        checker().check(&k.history())
    }

    #[test]
    fn the_store_holds_only_the_latest_non_empty_retained_message() {
        // The latest retained one, with a plain PUBLISH after it: fine.
        let v = answered(&[("a", true), ("b", true), ("c", false)], Some("b"));
        assert!(v.ok(), "{v:?}");
        assert_eq!(
            answered(&[("a", true), ("b", true)], Some("a")).rules(),
            vec!["MQTT-3.3.1-5", "MQTT-3.3.1-9"]
        );
        assert_eq!(
            answered(&[("a", true), ("", true)], Some("a")).rules(),
            vec!["MQTT-3.3.1-6"]
        );
        assert_eq!(
            answered(&[("a", true), ("", true)], Some("")).rules(),
            vec!["MQTT-3.3.1-7"]
        );
        assert_eq!(
            answered(&[("a", true), ("c", false)], Some("c")).rules(),
            vec!["MQTT-3.3.1-8", "MQTT-3.3.1-9"]
        );
    }
}
