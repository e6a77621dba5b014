//! Conventions outside MQTT 3.1.1 (`$share/`, `$queue/`, `$local/`):
//! whether a broker has one is measured from the recorded history, not
//! assumed. A broker without it either refuses the subscription or takes
//! the filter literally and delivers nothing through it; a scenario that
//! then fails is UNSUP (the broker lacks the convention), not FAIL — unless
//! the broker's profile declares the convention supported, when a failure
//! is a failure. A profile that declares it unsupported while the broker
//! delivers through it is out of date, and fails like a stale deviation.
//!
//! Pure functions over the history and the profile; the runner applies
//! [`judge`] after the declared deviations.

use crate::broker::{Convention, Profile};
use crate::history::{CloseReason, Dir, EventKind, Fate, History};
use crate::mqtt::topic;
use crate::mqtt::Packet;

use super::{Outcome, Status, StepFailure};

/// How a stale capability declaration's failure begins (the matrix shows
/// it as STALE).
pub const STALE_CAPABILITY: &str = "the declared capability";

/// What the history shows about one convention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Measured {
    /// A message reached a subscriber through the convention's filter.
    Delivered,
    /// Refused, or messages it should have carried reached none of its
    /// subscribers; the text is the evidence.
    NotDelivered(String),
    /// Nothing to judge by (nothing matching was published after the
    /// subscription, and it was not refused).
    Unknown,
}

struct Sub {
    actor: String,
    filter: String,
    seq: u64,
    /// SUBACK failure code, or the broker closed the connection instead
    /// of answering.
    refused: Option<String>,
}

/// Every convention the history's subscriptions use, and what was seen.
pub fn measure(h: &History) -> Vec<(Convention, Measured)> {
    let mut out = Vec::new();
    for c in Convention::ALL {
        let subs = subscriptions(h, c);
        if subs.is_empty() {
            continue;
        }
        out.push((c, measure_one(h, c, &subs)));
    }
    out
}

fn subscriptions(h: &History, c: Convention) -> Vec<Sub> {
    let mut subs = Vec::new();
    for (i, ev) in h.events.iter().enumerate() {
        let EventKind::Packet {
            conn,
            actor,
            dir: Dir::ToBroker,
            packet: Packet::Subscribe(s),
            fate,
            ..
        } = &ev.kind
        else {
            continue;
        };
        if *fate == Fate::Dropped {
            continue;
        }
        for (k, f) in s.filters.iter().enumerate() {
            if Convention::of_filter(&f.filter) != Some(c) {
                continue;
            }
            // Its answer: the SUBACK of the same packet id on the same
            // connection, or the connection's end.
            let mut refused = None;
            for later in &h.events[i + 1..] {
                match &later.kind {
                    EventKind::Packet {
                        conn: c2,
                        dir: Dir::ToClient,
                        packet: Packet::SubAck(a),
                        ..
                    } if c2 == conn && a.pid == s.pid => {
                        if let Some(code) = a.codes.get(k).filter(|code| **code >= 0x80) {
                            refused = Some(format!(
                                "the broker refused `{}` (SUBACK 0x{code:02x}, event #{})",
                                f.filter, later.seq
                            ));
                        }
                        break;
                    }
                    EventKind::ConnClosed {
                        conn: c2,
                        reason: CloseReason::BrokerClosed,
                        ..
                    } if c2 == conn => {
                        refused = Some(format!(
                            "the broker closed {actor}'s connection instead of answering its SUBSCRIBE to `{}` (event #{})",
                            f.filter, later.seq
                        ));
                        break;
                    }
                    EventKind::ConnClosed { conn: c2, .. } if c2 == conn => break,
                    _ => {}
                }
            }
            subs.push(Sub {
                actor: actor.clone(),
                filter: f.filter.clone(),
                seq: ev.seq,
                refused,
            });
        }
    }
    subs
}

fn measure_one(h: &History, c: Convention, subs: &[Sub]) -> Measured {
    let first = subs.iter().map(|s| s.seq).min().unwrap_or(0);
    let plain = |s: &Sub| c.strip(&s.filter).to_string();
    let mut published = 0usize;
    let mut published_topic = None;
    for ev in h.events.iter().filter(|e| e.seq > first) {
        let EventKind::Packet {
            actor,
            dir,
            packet: Packet::Publish(p),
            fate,
            ..
        } = &ev.kind
        else {
            continue;
        };
        let through = |s: &&Sub| ev.seq > s.seq && topic::matches(&plain(s), &p.topic);
        match dir {
            Dir::ToClient
                if subs
                    .iter()
                    .filter(|s| &s.actor == actor)
                    .any(|s| through(&s)) =>
            {
                return Measured::Delivered
            }
            Dir::ToBroker if *fate != Fate::Dropped && subs.iter().any(|s| through(&s)) => {
                published += 1;
                published_topic.get_or_insert_with(|| p.topic.clone());
            }
            _ => {}
        }
    }
    if let Some(why) = subs.iter().find_map(|s| s.refused.clone()) {
        return Measured::NotDelivered(why);
    }
    if published == 0 {
        return Measured::Unknown;
    }
    let mut who: Vec<String> = subs
        .iter()
        .map(|s| format!("{} on `{}`", s.actor, s.filter))
        .collect();
    who.dedup();
    Measured::NotDelivered(format!(
        "{published} message(s) were published on `{}` after the subscription and none reached {}",
        published_topic.unwrap_or_default(),
        who.join(", ")
    ))
}

/// Reclassifies an outcome by what the history shows about the
/// conventions it uses and what the profile declares about them.
pub fn judge(mut o: Outcome, profile: &Profile) -> Outcome {
    let found = measure(&o.history);
    for (c, m) in &found {
        let declared = profile.convention(*c);
        match (&o.status, m, declared) {
            (Status::Failed, Measured::NotDelivered(evidence), None | Some(false)) => {
                let how = if declared == Some(false) {
                    format!("profile `{}` declares it unsupported", profile.name)
                } else {
                    let record = if profile.hooked.is_some() {
                        format!(
                            "declare `{} = false` in the [capabilities] of deviations/{}.toml to record it, or `true` to make this a failure",
                            c.capability(),
                            profile.name
                        )
                    } else {
                        format!(
                            "record it in deviations/{}.toml as a `kind = \"unsupported\"` deviation",
                            profile.name
                        )
                    };
                    format!(
                        "measured, as profile `{}` declares nothing about it ({record})",
                        profile.name
                    )
                };
                o.status = Status::Unsupported(format!(
                    "the broker has no `{}` convention (not MQTT 3.1.1; `{}`): {evidence}; {how}",
                    c.prefix(),
                    c.capability()
                ));
                return o;
            }
            (Status::Passed, Measured::Delivered, Some(false)) => {
                o.status = Status::Failed;
                o.failures.push(StepFailure {
                    step: 0,
                    line: 0,
                    message: format!(
                        "{STALE_CAPABILITY} `{} = false` of profile `{}` did not hold: the broker delivered through `{}`; set it to true",
                        c.capability(),
                        profile.name,
                        c.prefix()
                    ),
                });
                return o;
            }
            _ => {}
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ConnId;
    use crate::mqtt::{Publish, QoS, SubAck, Subscribe, SubscribeFilter};
    use bytes::Bytes;

    fn pkt(conn: u32, actor: &str, dir: Dir, packet: Packet) -> EventKind {
        EventKind::Packet {
            conn: ConnId(conn),
            actor: actor.into(),
            dir,
            packet,
            raw: Bytes::new(),
            fate: Fate::Forwarded,
        }
    }

    fn subscribe(conn: u32, actor: &str, filter: &str) -> EventKind {
        pkt(
            conn,
            actor,
            Dir::ToBroker,
            Packet::Subscribe(Subscribe {
                pid: 1,
                filters: vec![SubscribeFilter {
                    filter: filter.into(),
                    qos: QoS::AtLeastOnce,
                    options: 0,
                }],
                properties: Default::default(),
            }),
        )
    }

    fn suback(conn: u32, actor: &str, code: u8) -> EventKind {
        pkt(
            conn,
            actor,
            Dir::ToClient,
            Packet::SubAck(SubAck {
                pid: 1,
                codes: vec![code],
                properties: Default::default(),
            }),
        )
    }

    fn publish(conn: u32, actor: &str, dir: Dir, t: &str) -> EventKind {
        pkt(
            conn,
            actor,
            dir,
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: t.into(),
                pid: None,
                payload: Bytes::from_static(b"x"),
                properties: Default::default(),
            }),
        )
    }

    fn outcome(h: History, status: Status) -> Outcome {
        Outcome {
            id: "queue_subscription".into(),
            name: "n".into(),
            path: "s.toml".into(),
            status,
            failures: Vec::new(),
            verdicts: Vec::new(),
            history: h,
            duration: Default::default(),
        }
    }

    #[test]
    fn a_literal_filter_that_delivers_nothing_is_unsupported_on_an_unknown_broker() {
        let h = History::build()
            .push(subscribe(1, "w1", "$queue/jobs"))
            .push(suback(1, "w1", 1))
            .push(publish(2, "device", Dir::ToBroker, "jobs"))
            .push(publish(2, "device", Dir::ToBroker, "jobs"))
            .finish();
        let m = measure(&h);
        assert!(
            matches!(&m[..], [(Convention::Queue, Measured::NotDelivered(e))] if e.contains("2 message(s)") && e.contains("w1 on `$queue/jobs`")),
            "{m:?}"
        );
        let o = judge(outcome(h, Status::Failed), &Profile::external("external"));
        let Status::Unsupported(why) = &o.status else {
            panic!("{:?}", o.status)
        };
        assert!(
            why.contains("`$queue/`") && why.contains("[capabilities]"),
            "{why}"
        );
    }

    #[test]
    fn a_refused_subscription_is_unsupported_even_before_anything_is_published() {
        let h = History::build()
            .push(subscribe(1, "w1", "$share/g/jobs"))
            .push(suback(1, "w1", 0x80))
            .finish();
        let o = judge(outcome(h, Status::Failed), &Profile::external("external"));
        assert!(
            matches!(&o.status, Status::Unsupported(w) if w.contains("SUBACK 0x80")),
            "{:?}",
            o.status
        );
    }

    #[test]
    fn a_broker_that_delivers_through_it_but_fails_otherwise_still_fails() {
        // Delivered to w1 (so the convention exists) but the scenario failed
        // for another reason (one message doubled, say): that is a failure.
        let h = History::build()
            .push(subscribe(1, "w1", "$share/g/jobs"))
            .push(suback(1, "w1", 1))
            .push(publish(2, "device", Dir::ToBroker, "jobs"))
            .push(publish(1, "w1", Dir::ToClient, "jobs"))
            .finish();
        assert_eq!(measure(&h), vec![(Convention::Share, Measured::Delivered)]);
        let o = judge(outcome(h, Status::Failed), &Profile::external("external"));
        assert_eq!(o.status, Status::Failed);
    }

    #[test]
    fn nothing_published_is_no_evidence() {
        // The scenario failed before the device published: the convention
        // cannot be judged, and the failure stands.
        let h = History::build()
            .push(subscribe(1, "w1", "$local/data"))
            .push(suback(1, "w1", 1))
            .push(publish(2, "device", Dir::ToBroker, "other"))
            .finish();
        assert_eq!(measure(&h), vec![(Convention::Local, Measured::Unknown)]);
        let o = judge(outcome(h, Status::Failed), &Profile::external("external"));
        assert_eq!(o.status, Status::Failed);
    }

    #[test]
    fn declarations_decide_what_a_measurement_means() {
        let unsupported = History::build()
            .push(subscribe(1, "w1", "$queue/jobs"))
            .push(suback(1, "w1", 1))
            .push(publish(2, "device", Dir::ToBroker, "jobs"))
            .finish();
        let declared = |v: bool| {
            let d: crate::broker::Declared =
                toml::from_str(&format!("queue_subscriptions = {v}")).unwrap();
            Profile::external("amqtt").declare(Some(&d), None)
        };
        // Declared supported: a failure is a failure.
        let o = judge(
            outcome(unsupported.clone(), Status::Failed),
            &declared(true),
        );
        assert_eq!(o.status, Status::Failed);
        // Declared unsupported: UNSUP, citing the declaration.
        let o = judge(outcome(unsupported, Status::Failed), &declared(false));
        assert!(
            matches!(&o.status, Status::Unsupported(w) if w.contains("declares it unsupported")),
            "{:?}",
            o.status
        );
        // Declared unsupported but it works: the declaration is stale.
        let works = History::build()
            .push(subscribe(1, "w1", "$queue/jobs"))
            .push(publish(2, "device", Dir::ToBroker, "jobs"))
            .push(publish(1, "w1", Dir::ToClient, "jobs"))
            .finish();
        let o = judge(outcome(works, Status::Passed), &declared(false));
        assert_eq!(o.status, Status::Failed);
        assert!(o.failures[0].message.starts_with(STALE_CAPABILITY));
    }

    #[test]
    fn a_scenario_without_conventions_is_left_alone() {
        let h = History::build()
            .push(subscribe(1, "w1", "jobs/#"))
            .push(publish(2, "device", Dir::ToBroker, "jobs/1"))
            .finish();
        assert!(measure(&h).is_empty());
        let o = judge(outcome(h, Status::Failed), &Profile::external("x"));
        assert_eq!(o.status, Status::Failed);
    }
}
