//! `retained`: retained messages reach new subscriptions, and an empty one
//! clears the store.
//!
//! The checker replays the retained store per topic from the PUBLISH packets
//! with RETAIN=1 that reached the broker. A store update is certain once the
//! flow completed (QoS 0 on arrival, QoS 1 at PUBACK, QoS 2 at PUBREL);
//! between arrival and completion either value is accepted. Topics never
//! retained in this run are unknown (an external broker may hold old ones),
//! and so is every topic after a broker restart or kill unless the scenario
//! says the store is `persistent`.
//!
//! When a SUBSCRIBE (non-shared; 5.0 retain handling 0) reaches the broker
//! and is granted, for every topic matching the filter whose stored value is
//! known:
//! - a value is stored: the broker sends it with RETAIN=1 within `within`
//!   [MQTT-3.3.1-6] (judged only if the subscriber stays connected and
//!   fault-free that long). On 3.1.1 connections the failure names the
//!   statement it breaks most precisely: the stored value sent with
//!   RETAIN=0, when no other subscription of the session could have asked
//!   for it [MQTT-3.3.1-8]; nothing sent for a subscription that replaced
//!   an identical one [MQTT-3.8.4-3]; nothing sent after the publisher's
//!   (clean) session ended, retained messages being no session state
//!   [MQTT-3.1.2-7];
//! - sending a value that was certainly replaced: a value only ever
//!   published with RETAIN=0 [MQTT-3.3.1-12], an older retained value
//!   [MQTT-3.3.1-5] (replaced by a QoS 0 one: [MQTT-3.3.1-7]), else
//!   `retained-stale`;
//! - the store was cleared by an empty retained PUBLISH: no retained message
//!   for that topic follows [MQTT-3.3.1-10];
//! - a retained message with an empty payload is never sent, it must not
//!   have been stored [MQTT-3.3.1-11] (3.1.1 connections only: 5.0's retain
//!   as published may forward an empty one).
//!
//! 3.1.1 only: a message forwarded to an established subscription has
//! RETAIN=0 [MQTT-3.3.1-9] — a RETAIN=1 copy of a message that reached the
//! broker after the subscriber's matching SUBSCRIBE, with no matching
//! SUBSCRIBE since, is flagged.

use std::time::Duration;

use bytes::Bytes;

use super::index::{sent, show, BrokerAct, Index};
use super::{fmt_d, Checker, Verdict};
use crate::history::{Dir, History};
use crate::mqtt::{topic, Version};

pub struct RetainedChecker {
    pub within: Duration,
    pub persistent: bool,
}

/// Order tolerance between the subscriber's and the publisher's lanes.
const TOL: Duration = Duration::from_millis(100);

/// The possible stored values of a topic at a moment; `None` = unknown.
fn store_at(
    ix: &Index,
    persistent: bool,
    t: &str,
    at: Duration,
) -> Option<(Vec<Option<Bytes>>, Vec<u64>)> {
    let mut vals: Option<Vec<Option<Bytes>>> = None;
    let mut events = Vec::new();
    let resets: Vec<Duration> = if persistent {
        Vec::new()
    } else {
        ix.broker
            .iter()
            .filter(|(_, a)| *a != BrokerAct::Started)
            .map(|(s, _)| s.at)
            .collect()
    };
    let mut msgs: Vec<&super::index::Msg> = ix
        .msgs
        .iter()
        .filter(|m| m.retain && m.topic == t && m.arrived.as_ref().is_some_and(|a| a.at <= at))
        .collect();
    msgs.sort_by_key(|m| m.arrived.as_ref().map(|a| a.at));
    let mut last_arrival = Duration::ZERO;
    for m in msgs {
        let arr = m.arrived.as_ref().map(|a| a.at).unwrap_or_default();
        if resets.iter().any(|&r| r > last_arrival && r <= arr) {
            vals = None;
        }
        last_arrival = arr;
        let val = if m.payload.is_empty() {
            None
        } else {
            Some(m.payload.clone())
        };
        let settled = m.done.as_ref().is_some_and(|d| d.at + TOL <= at);
        events.extend(m.events.iter().copied());
        if settled {
            vals = Some(vec![val]);
        } else {
            let mut v = vals.unwrap_or_default();
            v.push(val);
            vals = Some(v);
        }
    }
    if resets.iter().any(|&r| r > last_arrival && r <= at) {
        return None;
    }
    vals.map(|v| (v, events))
}

/// The rule a wrong retained value sent on `t` at `ts` breaks: a value
/// the broker was only ever sent with RETAIN=0 was stored
/// [MQTT-3.3.1-12]; an older retained value was kept though a newer one
/// replaced it [MQTT-3.3.1-5] (a QoS 0 one: [MQTT-3.3.1-7]); anything
/// else is `retained-stale`.
fn stale_rule(ix: &Index, t: &str, ts: Duration, payload: &Bytes) -> &'static str {
    let before: Vec<&super::index::Msg> = ix
        .msgs
        .iter()
        .filter(|m| m.topic == t && m.arrived.as_ref().is_some_and(|a| a.at <= ts))
        .collect();
    let retained_once = before.iter().any(|m| m.retain && m.payload == *payload);
    if !retained_once && before.iter().any(|m| !m.retain && m.payload == *payload) {
        return "MQTT-3.3.1-12";
    }
    if !retained_once {
        return "retained-stale";
    }
    let newest = before
        .iter()
        .filter(|m| m.retain)
        .max_by_key(|m| m.arrived.as_ref().map(|a| a.at));
    match newest {
        Some(m) if m.payload != *payload && m.qos == crate::mqtt::QoS::AtMostOnce => "MQTT-3.3.1-7",
        Some(m) if m.payload != *payload => "MQTT-3.3.1-5",
        _ => "retained-stale",
    }
}

/// The rule a missing retained message breaks, and why: the subscription
/// replaced an identical one, whose retained messages must be sent again
/// [MQTT-3.8.4-3]; the session that published the value had ended, and
/// retained messages outlive sessions [MQTT-3.1.2-7]; else [MQTT-3.3.1-6].
fn missing_rule(
    ix: &Index,
    s: &super::index::Sub,
    t: &str,
    ts: Duration,
) -> (&'static str, String) {
    let lineage = ix.conns[s.conn].lineage;
    let again = ix.subs.iter().any(|o| {
        o.actor == s.actor
            && o.filter == s.filter
            && o.sent.seq < s.sent.seq
            && o.acked.is_some()
            && o.unsub.as_ref().is_none_or(|u| u.seq > s.sent.seq)
            && ix.conns[o.conn].lineage == lineage
    });
    if again {
        return (
            "MQTT-3.8.4-3",
            "; the subscription replaced an identical one, and its retained messages must be sent again".into(),
        );
    }
    let newest = ix
        .msgs
        .iter()
        .filter(|m| m.retain && m.topic == t && m.arrived.as_ref().is_some_and(|a| a.at <= ts))
        .max_by_key(|m| m.arrived.as_ref().map(|a| a.at));
    if let Some(m) = newest {
        let arr = m.arrived.as_ref().map(|a| a.at).unwrap_or_default();
        let ended = ix.conns_of(&m.publisher).find(|(_, c)| {
            !c.persistent()
                && c.closed
                    .as_ref()
                    .is_some_and(|(e, _)| e.at >= arr && e.at + TOL <= ts)
        });
        if let Some((_, c)) = ended {
            return (
                "MQTT-3.1.2-7",
                format!(
                    "; its publisher {}'s session ended with {} before, and retained messages are no session state",
                    m.publisher, c.id
                ),
            );
        }
    }
    ("MQTT-3.3.1-6", String::new())
}

impl Checker for RetainedChecker {
    fn name(&self) -> &str {
        "retained"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let mut topics: Vec<String> = ix
            .msgs
            .iter()
            .filter(|m| m.retain)
            .map(|m| m.topic.clone())
            .collect();
        topics.sort();
        topics.dedup();
        let mut judged = 0;
        for s in &ix.subs {
            if s.shared() || s.acked.is_none() {
                continue;
            }
            let c = &ix.conns[s.conn];
            if c.version() == Version::V5 && (s.options >> 4) & 3 != 0 {
                continue;
            }
            let ts = s.sent.at;
            let until = ts + self.within;
            let sends: Vec<&super::index::PubEv> = ix
                .pubs
                .iter()
                .filter(|p| {
                    p.conn == c.id
                        && p.dir == Dir::ToClient
                        && sent(p.fate)
                        && p.publish.retain
                        && p.stamp.at >= ts
                        && p.stamp.at <= until
                })
                .collect();
            for t in topics.iter().filter(|t| topic::matches(&s.filter, t)) {
                let Some((vals, store_ev)) = store_at(&ix, self.persistent, t, ts) else {
                    continue;
                };
                let got: Vec<&&super::index::PubEv> =
                    sends.iter().filter(|p| p.publish.topic == *t).collect();
                let mut ev = store_ev.clone();
                ev.push(s.sent.seq);
                ev.extend(got.iter().map(|p| p.stamp.seq));
                if vals.iter().all(|x| x.is_none()) {
                    judged += 1;
                    if let Some(p) = got.first() {
                        v.fail(
                            "MQTT-3.3.1-10",
                            format!(
                                "{} subscribed to `{}` at {} after the retained message on `{t}` was cleared, yet got a retained {}",
                                s.actor,
                                s.filter,
                                fmt_d(ts),
                                show(&p.publish.payload)
                            ),
                            ev,
                        );
                    }
                    continue;
                }
                if vals.iter().any(|x| x.is_none()) {
                    // Clearing in flight: either is fine.
                    continue;
                }
                judged += 1;
                let want: Vec<&Bytes> = vals.iter().flatten().collect();
                if let Some(bad) = got.iter().find(|p| !want.contains(&&p.publish.payload)) {
                    v.fail(
                        if c.version() == Version::V5 {
                            "retained-stale"
                        } else {
                            stale_rule(&ix, t, ts, &bad.publish.payload)
                        },
                        format!(
                            "{} subscribed to `{}` at {} and got the retained {} on `{t}`; the stored value was {}",
                            s.actor,
                            s.filter,
                            fmt_d(ts),
                            show(&bad.publish.payload),
                            want.iter().map(|b| show(b)).collect::<Vec<_>>().join(" or ")
                        ),
                        ev.clone(),
                    );
                    continue;
                }
                if got.is_empty() {
                    // The stored value sent for this subscription, but
                    // flagged RETAIN=0 [MQTT-3.3.1-8]: no subscription the
                    // session held when the message arrived could have
                    // asked for it, so it was sent for this one.
                    let unflagged = ix.pubs.iter().find(|p| {
                        p.conn == c.id
                            && p.dir == Dir::ToClient
                            && sent(p.fate)
                            && !p.publish.retain
                            && p.publish.topic == *t
                            && want.contains(&&p.publish.payload)
                            && p.stamp.at >= ts
                            && p.stamp.at <= until
                    });
                    if let (Some(p), false) = (unflagged, c.version() == Version::V5) {
                        let live = ix.msgs.iter().any(|m| {
                            m.topic == *t
                                && m.payload == p.publish.payload
                                && m.arrived.as_ref().is_some_and(|a| {
                                    a.at + TOL >= ts
                                        || ix.subs.iter().any(|o| {
                                            o.actor == s.actor
                                                && ix.conns[o.conn].lineage == c.lineage
                                                && o.sent.at <= a.at + TOL
                                                && o.sent.seq != s.sent.seq
                                                && topic::matches(&o.filter, t)
                                        })
                                })
                        });
                        if !live {
                            v.fail(
                                "MQTT-3.3.1-8",
                                format!(
                                    "{} subscribed to `{}` at {} and got the retained {} on `{t}` with RETAIN=0; a message sent because of a new subscription has RETAIN=1",
                                    s.actor,
                                    s.filter,
                                    fmt_d(ts),
                                    show(&p.publish.payload)
                                ),
                                [ev.clone(), vec![p.stamp.seq]].concat(),
                            );
                            continue;
                        }
                    }
                    let stays = c.end(ix.end) >= until
                        && ix.end >= until
                        && ix.undisturbed(&s.actor, ts, until);
                    if !stays {
                        v.note(format!(
                            "{} left or was under a fault within {} of subscribing to `{}`: retained `{t}` not judged",
                            s.actor,
                            fmt_d(self.within),
                            s.filter
                        ));
                        continue;
                    }
                    let (rule, why) = if c.version() == Version::V5 {
                        ("MQTT-3.3.1-6", String::new())
                    } else {
                        missing_rule(&ix, s, t, ts)
                    };
                    v.fail(
                        rule,
                        format!(
                            "{} subscribed to `{}` at {} but got no retained message on `{t}` within {}; expected {}{why}",
                            s.actor,
                            s.filter,
                            fmt_d(ts),
                            fmt_d(self.within),
                            want.iter().map(|b| show(b)).collect::<Vec<_>>().join(" or ")
                        ),
                        ev,
                    );
                }
            }
        }
        // Empty retained messages sent, and RETAIN=1 on forwarded messages (3.1.1).
        let key = ix.msgs_by_key();
        for p in &ix.pubs {
            if p.dir != Dir::ToClient || !sent(p.fate) || !p.publish.retain {
                continue;
            }
            let Some(&ci) = ix.by_id.get(&p.conn) else {
                continue;
            };
            if ix.conns[ci].version() == Version::V5 {
                continue;
            }
            if p.publish.payload.is_empty() {
                v.fail(
                    "MQTT-3.3.1-11",
                    format!(
                        "the broker sent {} a retained message with an empty payload on `{}`: an empty retained message must not be stored",
                        p.actor, p.publish.topic
                    ),
                    vec![p.stamp.seq],
                );
                continue;
            }
            let Some(ms) = key.get(&(p.publish.topic.clone(), p.publish.payload.clone())) else {
                continue;
            };
            if ms.len() != 1 {
                continue;
            }
            let m = &ix.msgs[ms[0]];
            let Some(arr) = &m.arrived else { continue };
            let subs: Vec<_> = ix
                .subs
                .iter()
                .filter(|s| {
                    s.actor == p.actor
                        && topic::matches(&s.filter, &m.topic)
                        && s.sent.at <= p.stamp.at
                })
                .collect();
            let established = subs.iter().any(|s| s.sent.at + TOL < arr.at);
            let resubscribed = subs.iter().any(|s| s.sent.at + TOL >= arr.at);
            if established && !resubscribed {
                v.fail(
                    "MQTT-3.3.1-9",
                    format!(
                        "the broker forwarded {} on `{}` to {}, an established subscriber, with RETAIN=1; expected RETAIN=0",
                        show(&m.payload),
                        m.topic,
                        p.actor
                    ),
                    vec![arr.seq, p.stamp.seq],
                );
            }
        }
        v.notes.insert(
            0,
            format!(
                "{} retained topic(s), {judged} subscription/topic pair(s) with a known store",
                topics.len()
            ),
        );
        v
    }
}
