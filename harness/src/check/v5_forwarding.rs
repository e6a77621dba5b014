//! `v5_forwarding`: what a 5.0 broker must do to a message between its
//! publisher and each subscriber (statement ids are MQTT 5.0's).
//!
//! Every PUBLISH the broker sent to a 5.0 subscriber is paired with the
//! message it forwards: the latest PUBLISH a 5.0 client sent before it on
//! the same topic (aliases resolved) with the same payload. Then:
//! - Payload Format Indicator, Response Topic, Correlation Data and Content
//!   Type arrive unaltered [MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16],
//!   [MQTT-3.3.2-20]; user properties all arrive [MQTT-3.3.2-17], in their
//!   order [MQTT-3.3.2-18] (the same pairs reordered breaks only the latter);
//! - a message with a Message Expiry Interval E arrives with E less the
//!   whole seconds it waited, give or take one [MQTT-3.3.2-6], and is never
//!   first sent to a session after E (+ `slack`) has passed [MQTT-3.3.2-5];
//!   a retransmission of a delivery already started is allowed;
//! - the subscription identifiers of the subscriber's matching
//!   subscriptions all arrive, over the copies it got, and no others
//!   [MQTT-3.3.4-3] — all on a single copy [MQTT-3.3.4-4], each on its own
//!   when there are several [MQTT-3.3.4-5];
//! - a message is not sent back to the client id that published it when
//!   every matching subscription of that session has No Local [MQTT-3.8.3-3];
//! - a live forward (published after the SUBACK) keeps the publisher's
//!   RETAIN flag when every matching subscription has Retain As Published
//!   [MQTT-3.3.1-13], and has it cleared when none has [MQTT-3.3.1-12];
//! - and a client never puts a Subscription Identifier on its own PUBLISH
//!   [MQTT-3.3.4-6], nor a wildcard in its Response Topic [MQTT-3.3.2-14]
//!   (judged for the actors in `clients`).
//!
//! A delivery that cannot be paired (from a 3.1.1 publisher, a will, a
//! retained message older than the run) is left alone — but one that
//! matches a 5.0 will keeps the will's user properties in order
//! [MQTT-3.1.3-10].

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::index::{seen, sent, Index, PubEv};
use super::v5_limits::judged;
use super::{Checker, Verdict};
use crate::history::{Dir, EventKind, History};
use crate::mqtt::props::{
    self, CONTENT_TYPE, CORRELATION_DATA, MESSAGE_EXPIRY, PAYLOAD_FORMAT, RESPONSE_TOPIC,
    SUBSCRIPTION_ID,
};
use crate::mqtt::{topic, Packet, PropValue, Version};

/// Over the copies of one message to one connection: the subscription
/// ids owed, the ids seen, the events.
/// Per subscriber connection and source message: the subscription ids
/// owed, those that came, the events, and how many first sends (not DUP
/// resends) there were.
type Copies = (BTreeSet<u32>, BTreeSet<u32>, Vec<u64>, usize);

pub struct ForwardingChecker {
    pub clients: Vec<String>,
    /// Added to a message expiry before a late delivery counts.
    pub slack: Duration,
}

fn v5(ix: &Index, p: &PubEv) -> bool {
    ix.by_id
        .get(&p.conn)
        .is_some_and(|&i| ix.conns[i].version() == Version::V5)
}

impl Checker for ForwardingChecker {
    fn name(&self) -> &str {
        "v5_forwarding"
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        let ix = Index::new(history);
        let subscribes: HashMap<u64, &Packet> = history
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Packet { packet, .. } => Some((e.seq, packet)),
                _ => None,
            })
            .collect();
        let sub_id = |seq: u64| -> Option<u32> {
            subscribes.get(&seq).and_then(|p| match p {
                Packet::Subscribe(s) => props::num(&s.properties, SUBSCRIPTION_ID),
                _ => None,
            })
        };
        for p in ix
            .pubs
            .iter()
            .filter(|p| p.dir == Dir::ToBroker && sent(p.fate) && v5(&ix, p))
        {
            if judged(&self.clients, &p.actor)
                && props::get(&p.publish.properties, SUBSCRIPTION_ID).is_some()
            {
                v.fail(
                    "MQTT-3.3.4-6",
                    format!(
                        "{} put a Subscription Identifier on its PUBLISH to {}",
                        p.actor, p.publish.topic
                    ),
                    vec![p.stamp.seq],
                );
            }
            if let (true, Some(PropValue::Str(r))) = (
                judged(&self.clients, &p.actor),
                props::get(&p.publish.properties, RESPONSE_TOPIC),
            ) {
                if r.contains(['+', '#']) {
                    v.fail(
                        "MQTT-3.3.2-14",
                        format!(
                            "{} published on {} with Response Topic {r:?}, which has a wildcard",
                            p.actor, p.publish.topic
                        ),
                        vec![p.stamp.seq],
                    );
                }
            }
        }
        // Copies per (subscriber connection, source message): ids seen.
        let mut copies: HashMap<(usize, u64), Copies> = HashMap::new();
        // Sessions (client id, lineage) that already got a source message.
        let mut started: BTreeSet<(String, usize, u64)> = BTreeSet::new();
        for d in ix
            .pubs
            .iter()
            .filter(|p| p.dir == Dir::ToClient && sent(p.fate) && v5(&ix, p))
        {
            let Some(&di) = ix.by_id.get(&d.conn) else {
                continue;
            };
            let dconn = &ix.conns[di];
            let Some(src) = ix.pubs.iter().rfind(|s| {
                s.dir == Dir::ToBroker
                    && seen(s.fate)
                    && s.stamp.seq < d.stamp.seq
                    && s.publish.topic == d.publish.topic
                    && s.publish.payload == d.publish.payload
                    && v5(&ix, s)
            }) else {
                will_user_order(&ix, d, &mut v);
                continue;
            };
            let sp = &src.publish.properties;
            let dp = &d.publish.properties;
            let who = format!("{} on {}", d.actor, d.publish.topic);
            for (id, rule, what) in [
                (PAYLOAD_FORMAT, "MQTT-3.3.2-4", "Payload Format Indicator"),
                (RESPONSE_TOPIC, "MQTT-3.3.2-15", "Response Topic"),
                (CORRELATION_DATA, "MQTT-3.3.2-16", "Correlation Data"),
                (CONTENT_TYPE, "MQTT-3.3.2-20", "Content Type"),
            ] {
                if props::get(sp, id) != props::get(dp, id) {
                    v.fail(
                        rule,
                        format!(
                            "{what} altered for {who}: published {:?}, delivered {:?}",
                            props::get(sp, id),
                            props::get(dp, id)
                        ),
                        vec![src.stamp.seq, d.stamp.seq],
                    );
                }
            }
            let (su, du) = (props::user(sp), props::user(dp));
            if su != du {
                let mut a = su.clone();
                let mut b = du.clone();
                a.sort();
                b.sort();
                let rule = if a == b {
                    "MQTT-3.3.2-18"
                } else {
                    "MQTT-3.3.2-17"
                };
                v.fail(
                    rule,
                    format!("user properties for {who}: published {su:?}, delivered {du:?}"),
                    vec![src.stamp.seq, d.stamp.seq],
                );
            }
            let session = (
                dconn.client_id().unwrap_or("").to_string(),
                dconn.lineage,
                src.stamp.seq,
            );
            let first_to_session = !started.contains(&session);
            started.insert(session);
            if let Some(e) = props::num(sp, MESSAGE_EXPIRY) {
                let waited = d.stamp.at.saturating_sub(src.stamp.at);
                if first_to_session && waited > Duration::from_secs(e as u64) + self.slack {
                    v.fail(
                        "MQTT-3.3.2-5",
                        format!(
                            "{who}: sent {} after it was published with a Message Expiry Interval of {e}s",
                            super::fmt_d(waited)
                        ),
                        vec![src.stamp.seq, d.stamp.seq],
                    );
                }
                match props::num(dp, MESSAGE_EXPIRY) {
                    None => v.fail(
                        "MQTT-3.3.2-6",
                        format!("{who}: published with a Message Expiry Interval of {e}s, delivered without one"),
                        vec![src.stamp.seq, d.stamp.seq],
                    ),
                    Some(got) => {
                        let w = waited.as_secs();
                        let low = (e as u64).saturating_sub(w + 1);
                        let high = (e as u64).saturating_sub(w.saturating_sub(1));
                        if got as u64 > high || (got as u64) < low {
                            v.fail(
                                "MQTT-3.3.2-6",
                                format!(
                                    "{who}: Message Expiry Interval {e}s, waited {}, delivered with {got}s (expected {low}..={high})",
                                    super::fmt_d(waited)
                                ),
                                vec![src.stamp.seq, d.stamp.seq],
                            );
                        }
                    }
                }
            }
            // The subscriber's matching subscriptions in this session.
            let subs: Vec<_> = ix
                .subs
                .iter()
                .filter(|s| {
                    let sc = &ix.conns[s.conn];
                    sc.client_id() == dconn.client_id()
                        && sc.lineage == dconn.lineage
                        && s.acked
                            .as_ref()
                            .is_some_and(|(a, c)| a.seq < d.stamp.seq && *c < 0x80)
                        && s.unsub.as_ref().is_none_or(|u| u.seq > d.stamp.seq)
                        && topic::matches(&s.filter, &d.publish.topic)
                })
                .collect();
            if subs.is_empty() {
                continue;
            }
            let owner = ix
                .by_id
                .get(&src.conn)
                .map(|&i| ix.conns[i].client_id().unwrap_or(""));
            if owner == dconn.client_id() && subs.iter().all(|s| s.no_local() && !s.shared()) {
                v.fail(
                    "MQTT-3.8.3-3",
                    format!("{who}: its own message came back through a No Local subscription"),
                    vec![src.stamp.seq, d.stamp.seq],
                );
            }
            let live = subs
                .iter()
                .all(|s| s.acked.as_ref().is_some_and(|(a, _)| a.seq < src.stamp.seq));
            if live {
                let rap = |s: &&super::index::Sub| s.options & 0x08 != 0;
                if subs.iter().all(rap) && d.publish.retain != src.publish.retain {
                    v.fail(
                        "MQTT-3.3.1-13",
                        format!("{who}: Retain As Published, but RETAIN was {} when published and {} when delivered", src.publish.retain as u8, d.publish.retain as u8),
                        vec![src.stamp.seq, d.stamp.seq],
                    );
                }
                if !subs.iter().any(rap) && d.publish.retain {
                    v.fail(
                        "MQTT-3.3.1-12",
                        format!("{who}: a live forward with RETAIN set, and no matching subscription has Retain As Published"),
                        vec![src.stamp.seq, d.stamp.seq],
                    );
                }
            }
            let want: BTreeSet<u32> = subs.iter().filter_map(|s| sub_id(s.sent.seq)).collect();
            let got: BTreeSet<u32> = props::all(dp, SUBSCRIPTION_ID)
                .filter_map(|x| match x {
                    PropValue::VarInt(n) => Some(*n),
                    _ => None,
                })
                .collect();
            let e = copies.entry((di, src.stamp.seq)).or_default();
            e.0.extend(want);
            e.1.extend(got);
            e.2.extend([src.stamp.seq, d.stamp.seq]);
            if !d.publish.dup {
                e.3 += 1;
            }
        }
        let mut keys: Vec<_> = copies.keys().copied().collect();
        keys.sort();
        for k in keys {
            let (want, got, evs, n) = &copies[&k];
            if want != got {
                // One copy owes them all [3.3.4-4]; several, each its own [3.3.4-5].
                let also = match n {
                    0 => None,
                    1 => Some("MQTT-3.3.4-4"),
                    _ => Some("MQTT-3.3.4-5"),
                };
                for rule in std::iter::once("MQTT-3.3.4-3").chain(also) {
                    v.fail(
                        rule,
                        format!(
                            "{} got subscription identifiers {got:?} over {n} copies, its matching subscriptions have {want:?}",
                            ix.conns[k.0].actor
                        ),
                        evs.clone(),
                    );
                }
            }
        }
        v
    }
}

/// A delivery no client PUBLISH explains, matching a 5.0 will (topic and
/// payload) of a connection that was open before it: the will's user
/// properties arrive in their order [MQTT-3.1.3-10] (judged when the same
/// pairs arrived, so a different message with the same topic and payload
/// is not mistaken for the will).
fn will_user_order(ix: &Index, d: &PubEv, v: &mut Verdict) {
    let Some(w) = ix.conns.iter().find_map(|c| {
        let (at, connect) = c.connect.as_ref()?;
        let w = connect.will.as_ref()?;
        (connect.version == Version::V5
            && at.seq < d.stamp.seq
            && w.topic == d.publish.topic
            && w.payload == d.publish.payload)
            .then_some(w)
    }) else {
        return;
    };
    let (wu, du) = (
        props::user(&w.properties),
        props::user(&d.publish.properties),
    );
    let (mut a, mut b) = (wu.clone(), du.clone());
    a.sort();
    b.sort();
    if wu != du && a == b {
        v.fail(
            "MQTT-3.1.3-10",
            format!(
                "the will on {} reached {} with its user properties reordered: {wu:?} became {du:?}",
                d.publish.topic, d.actor
            ),
            vec![d.stamp.seq],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::*;
    use super::*;

    fn checker() -> ForwardingChecker {
        ForwardingChecker {
            clients: vec!["device".into()],
            slack: Duration::from_millis(500),
        }
    }

    /// cloud subscribes to t (with `opts` and sub-id props), device publishes `pk`.
    fn base(opts: u8, sub_props: &str, pk: Packet) -> Kit {
        let mut k = Kit::new();
        k.session(
            1,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "cloud", subscribe(1, "t/#", 1, opts, sub_props))
            .down(1, "cloud", suback(1, &[1]));
        k.session(
            2,
            "device",
            connect("dev", true, 60, ""),
            connack(false, 0, ""),
        );
        k.wait(10).up(2, "device", pk);
        k
    }

    const PROPS: &str = "response_topic = \"r\"\ncorrelation_data = \"c\"\ncontent_type = \"text/plain\"\npayload_format = 1\nuser_properties = [[\"b\",\"2\"],[\"a\",\"1\"]]";

    #[test]
    fn unaltered_properties_pass_and_each_alteration_names_its_rule() {
        let mut k = base(0, "", publish(None, 0, "t/1", "x", PROPS));
        k.wait(5)
            .down(1, "cloud", publish(None, 0, "t/1", "x", PROPS));
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");
        let case = |delivered: String| {
            let mut k = base(0, "", publish(None, 0, "t/1", "x", PROPS));
            k.wait(5)
                .down(1, "cloud", publish(None, 0, "t/1", "x", &delivered));
            checker().check(&k.history())
        };
        let v = case(PROPS.replace("\"r\"", "\"q\""));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-15"]);
        let v = case(PROPS.replace("\"c\"", "\"d\""));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-16"]);
        let v = case(PROPS.replace("text/plain", "x/y"));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-20"]);
        let v = case(PROPS.replace("payload_format = 1", "payload_format = 0"));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-4"]);
        let v = case(PROPS.replace(
            "[[\"b\",\"2\"],[\"a\",\"1\"]]",
            "[[\"a\",\"1\"],[\"b\",\"2\"]]",
        ));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-18"], "the same pairs reordered");
        let v = case(PROPS.replace(",[\"a\",\"1\"]", ""));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-17"], "a pair lost");
    }

    #[test]
    fn message_expiry_is_decremented_and_never_delivered_late() {
        let mut k = base(0, "", publish(None, 0, "t/1", "x", "message_expiry = 10"));
        k.wait(3000).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "message_expiry = 7"),
        );
        assert!(checker().check(&k.history()).ok());
        let mut k = base(0, "", publish(None, 0, "t/1", "x", "message_expiry = 10"));
        k.wait(3000).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "message_expiry = 10"),
        );
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.2-6"]);
        let mut k = base(0, "", publish(None, 0, "t/1", "x", "message_expiry = 1"));
        k.wait(3000).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "message_expiry = 1"),
        );
        assert_violates(&checker().check(&k.history()), "MQTT-3.3.2-5");
    }

    #[test]
    fn a_resend_of_a_delivery_started_before_expiry_is_allowed() {
        let mut k = base(0, "", publish(Some(1), 1, "t/1", "x", "message_expiry = 1"));
        k.wait(100).down(
            1,
            "cloud",
            publish(Some(5), 1, "t/1", "x", "message_expiry = 1"),
        );
        k.wait(3000).down(
            1,
            "cloud",
            dup(publish(Some(5), 1, "t/1", "x", "message_expiry = 0")),
        );
        let v = checker().check(&k.history());
        assert!(!v.rules().contains(&"MQTT-3.3.2-5"), "{v:?}");
    }

    #[test]
    fn subscription_identifiers_must_arrive() {
        let mut k = base(
            0,
            "subscription_identifier = 7",
            publish(None, 0, "t/1", "x", ""),
        );
        k.wait(5).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "subscription_identifier = 7"),
        );
        assert!(checker().check(&k.history()).ok());
        let mut k = base(
            0,
            "subscription_identifier = 7",
            publish(None, 0, "t/1", "x", ""),
        );
        k.wait(5).down(1, "cloud", publish(None, 0, "t/1", "x", ""));
        assert_eq!(
            checker().check(&k.history()).rules(),
            vec!["MQTT-3.3.4-3", "MQTT-3.3.4-4"]
        );
    }

    #[test]
    fn a_wills_user_properties_keep_their_order() {
        let will = |delivered: &str| {
            let mut k = Kit::new();
            k.session(
                1,
                "cloud",
                connect("cloud", true, 60, ""),
                connack(false, 0, ""),
            );
            k.up(1, "cloud", subscribe(1, "w/#", 1, 0, ""))
                .down(1, "cloud", suback(1, &[1]));
            k.session(
                2,
                "device",
                connect_will(
                    "dev",
                    60,
                    "",
                    "w/dev",
                    "gone",
                    "user_properties = [[\"b\", \"2\"], [\"a\", \"1\"]]",
                ),
                connack(false, 0, ""),
            );
            k.close(2, "device", crate::history::CloseReason::Severed);
            k.wait(10)
                .down(1, "cloud", publish(Some(1), 1, "w/dev", "gone", delivered));
            checker().check(&k.history())
        };
        let v = will("user_properties = [[\"b\", \"2\"], [\"a\", \"1\"]]");
        assert!(v.ok(), "{v:?}");
        assert_eq!(
            will("user_properties = [[\"a\", \"1\"], [\"b\", \"2\"]]").rules(),
            vec!["MQTT-3.1.3-10"]
        );
    }

    /// Two overlapping subscriptions with ids 7 and 8: one copy with both
    /// is fine, two copies with one each too; two copies where one lacks
    /// its id break the each-copy statement.
    #[test]
    fn overlapping_subscriptions_and_their_identifiers() {
        let two = |copies: &[&[u32]]| {
            let mut k = base(
                0,
                "subscription_identifier = 7",
                publish(None, 0, "t/1", "x", ""),
            );
            k.up(
                1,
                "cloud",
                subscribe(2, "t/+", 1, 0, "subscription_identifier = 8"),
            )
            .down(1, "cloud", suback(2, &[1]));
            k.wait(10).up(2, "device", publish(None, 0, "t/1", "y", ""));
            for ids in copies {
                let mut pk = publish(None, 0, "t/1", "y", "");
                if let Packet::Publish(x) = &mut pk {
                    for id in *ids {
                        x.properties.0.push(crate::mqtt::Property {
                            id: SUBSCRIPTION_ID,
                            value: PropValue::VarInt(*id),
                        });
                    }
                }
                k.wait(5).down(1, "cloud", pk);
            }
            checker().check(&k.history())
        };
        let v = two(&[&[7, 8]]);
        assert!(v.ok(), "{v:?}");
        let v = two(&[&[7], &[8]]);
        assert!(v.ok(), "{v:?}");
        assert_eq!(
            two(&[&[7], &[]]).rules(),
            vec!["MQTT-3.3.4-3", "MQTT-3.3.4-5"]
        );
    }

    #[test]
    fn no_local_and_retain_as_published() {
        // The publisher subscribed with No Local and got its own message back.
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("dev", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "device", subscribe(1, "t/#", 0, 0x04, ""))
            .down(1, "device", suback(1, &[0]));
        k.up(1, "device", publish(None, 0, "t/1", "x", ""));
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");
        k.down(1, "device", publish(None, 0, "t/1", "x", ""));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.8.3-3"]);
        // Retain As Published 0: a live forward must clear RETAIN.
        let mut k = base(0, "", retained(publish(None, 0, "t/1", "x", "")));
        k.down(1, "cloud", retained(publish(None, 0, "t/1", "x", "")));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.1-12"]);
        let mut k = base(0x08, "", retained(publish(None, 0, "t/1", "x", "")));
        k.down(1, "cloud", publish(None, 0, "t/1", "x", ""));
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.1-13"]);
        let mut k = base(0x08, "", retained(publish(None, 0, "t/1", "x", "")));
        k.down(1, "cloud", retained(publish(None, 0, "t/1", "x", "")));
        assert!(checker().check(&k.history()).ok());
    }

    #[test]
    fn a_client_subscription_identifier_on_publish_fails() {
        let k = base(
            0,
            "",
            publish(None, 0, "t/1", "x", "subscription_identifier = 3"),
        );
        assert_violates(&checker().check(&k.history()), "MQTT-3.3.4-6");
    }

    #[test]
    fn a_response_topic_with_a_wildcard_fails() {
        // Levels are fine in a Response Topic, wildcards are not.
        let mut k = base(
            0,
            "",
            publish(None, 0, "t/1", "x", "response_topic = \"r/dev/1\""),
        );
        k.wait(5).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "response_topic = \"r/dev/1\""),
        );
        let v = checker().check(&k.history());
        assert!(v.ok(), "{v:?}");
        let k = base(
            0,
            "",
            publish(None, 0, "t/1", "x", "response_topic = \"r/+/1\""),
        );
        assert_eq!(checker().check(&k.history()).rules(), vec!["MQTT-3.3.2-14"]);
    }
}
