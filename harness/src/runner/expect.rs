//! Expectations evaluated over the history, as pure functions: the runner
//! polls them while a step waits, and re-checks exact counts at the end.

use crate::history::{CloseReason, Dir, Event, EventKind};
use crate::mqtt::{topic, Packet};
use crate::scenario::Expect;

/// How far an expectation has got over a slice of events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Satisfied; waiting can stop.
    Met,
    /// Not yet; `seen` says what was observed so far, for the failure message.
    Pending { seen: String },
    /// Can no longer be met (e.g. a forbidden message arrived).
    Broken { why: String, seq: u64 },
}

pub fn delivered_matches(
    ev: &Event,
    actor: &str,
    want_topic: &Option<String>,
    want_payload: &Option<bytes::Bytes>,
) -> bool {
    match &ev.kind {
        EventKind::Delivered { actor: a, msg } if a == actor => {
            want_topic
                .as_ref()
                .is_none_or(|t| t == &msg.topic || topic::matches(t, &msg.topic))
                && want_payload.as_ref().is_none_or(|p| p == &msg.payload)
        }
        _ => false,
    }
}

pub fn evaluate(expect: &Expect, actor: &str, events: &[Event]) -> Progress {
    match expect {
        Expect::Message {
            topic,
            payload,
            qos,
            retain,
            count,
            properties,
            ..
        } => {
            let mut n = 0;
            for ev in events {
                if !delivered_matches(ev, actor, topic, payload) {
                    continue;
                }
                if let EventKind::Delivered { msg, .. } = &ev.kind {
                    if let Err(why) = crate::mqtt::props::meets(&msg.properties, properties) {
                        return Progress::Broken {
                            why: format!("message on `{}`: {why}", msg.topic),
                            seq: ev.seq,
                        };
                    }
                    if qos.is_some_and(|q| q != msg.qos) {
                        return Progress::Broken {
                            why: format!(
                                "message on `{}` arrived with QoS {}, expected QoS {}",
                                msg.topic,
                                msg.qos.as_u8(),
                                qos.unwrap().as_u8()
                            ),
                            seq: ev.seq,
                        };
                    }
                    if retain.is_some_and(|r| r != msg.retain) {
                        return Progress::Broken {
                            why: format!(
                                "message on `{}` arrived with retain={}, expected retain={}",
                                msg.topic,
                                msg.retain,
                                retain.unwrap()
                            ),
                            seq: ev.seq,
                        };
                    }
                }
                n += 1;
            }
            if n >= *count {
                Progress::Met
            } else {
                Progress::Pending {
                    seen: format!("{n} of {count} matching message(s) delivered to {actor}"),
                }
            }
        }
        Expect::NoMessage { topic, payload } => {
            match events
                .iter()
                .find(|ev| delivered_matches(ev, actor, topic, payload))
            {
                Some(ev) => Progress::Broken {
                    why: format!(
                        "{actor} received a message it must not get ({})",
                        describe_delivery(ev)
                    ),
                    seq: ev.seq,
                },
                // Absence is only proven when the whole window has passed;
                // the runner turns Pending at the deadline into success.
                None => Progress::Pending {
                    seen: "no matching message".into(),
                },
            }
        }
        Expect::Connected { session_present } => {
            for ev in events {
                if let Some((code, sp)) = connack(ev, actor) {
                    if code != 0 {
                        return Progress::Broken {
                            why: format!("{actor}'s connection was refused (return code {code})"),
                            seq: ev.seq,
                        };
                    }
                    return match session_present {
                        Some(want) if *want != sp => Progress::Broken {
                            why: format!(
                                "{actor} connected with session present = {sp}, expected {want}"
                            ),
                            seq: ev.seq,
                        },
                        _ => Progress::Met,
                    };
                }
            }
            Progress::Pending {
                seen: format!("no CONNACK to {actor} yet"),
            }
        }
        Expect::Refused => {
            for ev in events {
                if let Some((code, _)) = connack(ev, actor) {
                    if code == 0 {
                        return Progress::Broken {
                            why: format!("{actor}'s connection was accepted, expected a refusal"),
                            seq: ev.seq,
                        };
                    }
                    return Progress::Met;
                }
            }
            Progress::Pending {
                seen: format!("no CONNACK to {actor} yet"),
            }
        }
        Expect::Published {
            topic: want_topic,
            payload,
            qos,
            count,
        } => {
            let mut n = 0;
            // Topics it did publish on, to say so when none matched.
            let mut elsewhere: std::collections::BTreeSet<&str> = Default::default();
            for ev in events {
                let EventKind::Packet {
                    actor: a,
                    dir: Dir::ToBroker,
                    packet: Packet::Publish(p),
                    fate,
                    ..
                } = &ev.kind
                else {
                    continue;
                };
                // A DUP resend or the release of a held packet is not a
                // new publication.
                if a != actor || p.dup || *fate == crate::history::Fate::Released {
                    continue;
                }
                let topic_ok = want_topic
                    .as_ref()
                    .is_none_or(|t| t == &p.topic || topic::matches(t, &p.topic));
                if !topic_ok {
                    elsewhere.insert(&p.topic);
                }
                if !topic_ok || payload.as_ref().is_some_and(|x| x != &p.payload) {
                    continue;
                }
                if let Some(q) = qos {
                    if *q != p.qos {
                        return Progress::Broken {
                            why: format!(
                                "{actor} published on `{}` at QoS {}, expected QoS {}",
                                p.topic,
                                p.qos.as_u8(),
                                q.as_u8()
                            ),
                            seq: ev.seq,
                        };
                    }
                }
                n += 1;
            }
            if n >= *count {
                Progress::Met
            } else {
                let others = if n == 0 && !elsewhere.is_empty() {
                    let list: Vec<String> =
                        elsewhere.iter().take(5).map(|t| format!("`{t}`")).collect();
                    format!(
                        " on `{}`; it published only on {}",
                        want_topic.as_deref().unwrap_or("*"),
                        list.join(", ")
                    )
                } else {
                    String::new()
                };
                Progress::Pending {
                    seen: format!("{n} of {count} matching PUBLISH(es) from {actor}{others}"),
                }
            }
        }
        Expect::Packet {
            packet,
            dir,
            count,
            code,
            properties,
        } => {
            let mut n = 0;
            for ev in events {
                let EventKind::Packet {
                    actor: a,
                    dir: d,
                    packet: p,
                    ..
                } = &ev.kind
                else {
                    continue;
                };
                if a != actor || p.packet_type() != *packet || !dir.is_none_or(|w| w == *d) {
                    continue;
                }
                let got = crate::mqtt::props::packet_code(p);
                if code.is_some() && got != *code {
                    return Progress::Broken {
                        why: format!(
                            "{packet} on {actor}'s connection carried reason code {}, expected 0x{:02x}",
                            got.map(|c| format!("0x{c:02x}")).unwrap_or("none".into()),
                            code.unwrap_or_default()
                        ),
                        seq: ev.seq,
                    };
                }
                let empty = crate::mqtt::Properties::default();
                let props = crate::mqtt::props::packet_props(p).unwrap_or(&empty);
                if let Err(why) = crate::mqtt::props::meets(props, properties) {
                    return Progress::Broken {
                        why: format!("{packet} on {actor}'s connection: {why}"),
                        seq: ev.seq,
                    };
                }
                n += 1;
            }
            if n >= *count {
                Progress::Met
            } else {
                Progress::Pending {
                    seen: format!("{n} of {count} {packet} packet(s) on {actor}'s connection"),
                }
            }
        }
        Expect::Board { event, count } => {
            // The board is the device's; its events name no actor.
            let seen: Vec<&str> = events
                .iter()
                .filter_map(|ev| match &ev.kind {
                    EventKind::Board { what } => Some(what.as_str()),
                    _ => None,
                })
                .collect();
            let n = seen
                .iter()
                .filter(|w| w.starts_with(event.as_str()))
                .count() as u32;
            if n >= *count {
                Progress::Met
            } else {
                Progress::Pending {
                    seen: format!(
                        "{n} of {count} board event(s) `{event}`; board events seen: {}",
                        if seen.is_empty() {
                            "none".to_string()
                        } else {
                            seen.join(", ")
                        }
                    ),
                }
            }
        }
        Expect::Closed { by } => {
            for ev in events {
                if let EventKind::ConnClosed {
                    actor: a, reason, ..
                } = &ev.kind
                {
                    if a != actor {
                        continue;
                    }
                    let who = match reason {
                        CloseReason::BrokerClosed => "broker",
                        CloseReason::ClientClosed => "client",
                        _ => "proxy",
                    };
                    if by.as_deref().is_none_or(|b| b == who) {
                        return Progress::Met;
                    }
                }
            }
            Progress::Pending {
                seen: format!("{actor}'s connection is still open"),
            }
        }
        Expect::Uart { contains } => {
            let mut lines = 0;
            for ev in events {
                if let EventKind::Uart { line } = &ev.kind {
                    if line.contains(contains.as_str()) {
                        return Progress::Met;
                    }
                    lines += 1;
                }
            }
            Progress::Pending {
                seen: format!(
                    "none of the {lines} UART line(s) {actor} printed contains {contains:?}"
                ),
            }
        }
    }
}

fn connack(ev: &Event, actor: &str) -> Option<(u8, bool)> {
    match &ev.kind {
        EventKind::Packet {
            actor: a,
            dir: Dir::ToClient,
            packet: Packet::ConnAck(c),
            fate,
            ..
        } if a == actor && *fate != crate::history::Fate::Dropped => {
            Some((c.code, c.session_present))
        }
        _ => None,
    }
}

pub fn describe_delivery(ev: &Event) -> String {
    match &ev.kind {
        EventKind::Delivered { msg, .. } => format!(
            "topic `{}`, payload {:?}, QoS {}, event #{}",
            msg.topic,
            String::from_utf8_lossy(&msg.payload),
            msg.qos.as_u8(),
            ev.seq
        ),
        _ => format!("event #{}", ev.seq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Delivery, History};
    use crate::mqtt::QoS;
    use bytes::Bytes;

    fn delivered(actor: &str, topic: &str, payload: &'static str) -> EventKind {
        EventKind::Delivered {
            actor: actor.into(),
            msg: Delivery {
                topic: topic.into(),
                payload: Bytes::from_static(payload.as_bytes()),
                qos: QoS::AtLeastOnce,
                retain: false,
                dup: false,
                properties: Default::default(),
            },
        }
    }

    fn msg(count: u32) -> Expect {
        Expect::Message {
            topic: Some("dut/+/status".into()),
            payload: Some(Bytes::from_static(b"offline")),
            qos: None,
            retain: None,
            count,
            at_least: false,
            properties: Vec::new(),
        }
    }

    #[test]
    fn message_counts_only_the_right_actor_topic_and_payload() {
        let h = History::build()
            .push(delivered("other", "dut/1/status", "offline"))
            .push(delivered("cloud", "dut/1/status", "online"))
            .push(delivered("cloud", "dut/1/data", "offline"))
            .finish();
        assert!(matches!(
            evaluate(&msg(1), "cloud", &h.events),
            Progress::Pending { .. }
        ));
        let h = History::build()
            .push(delivered("cloud", "dut/1/status", "offline"))
            .finish();
        assert_eq!(evaluate(&msg(1), "cloud", &h.events), Progress::Met);
        assert!(matches!(
            evaluate(&msg(2), "cloud", &h.events),
            Progress::Pending { .. }
        ));
    }

    #[test]
    fn wrong_qos_breaks_the_expectation() {
        let h = History::build()
            .push(delivered("cloud", "dut/1/status", "offline"))
            .finish();
        let e = Expect::Message {
            topic: None,
            payload: None,
            qos: Some(QoS::ExactlyOnce),
            retain: None,
            count: 1,
            at_least: false,
            properties: Vec::new(),
        };
        assert!(matches!(
            evaluate(&e, "cloud", &h.events),
            Progress::Broken { .. }
        ));
    }

    fn device_publish(topic: &str, payload: &'static str, qos: QoS, dup: bool) -> EventKind {
        EventKind::Packet {
            conn: crate::history::ConnId(1),
            actor: "device".into(),
            dir: Dir::ToBroker,
            packet: Packet::Publish(crate::mqtt::Publish {
                dup,
                qos,
                retain: false,
                topic: topic.into(),
                pid: (qos != QoS::AtMostOnce).then_some(1),
                payload: Bytes::from_static(payload.as_bytes()),
                properties: Default::default(),
            }),
            raw: Bytes::new(),
            fate: crate::history::Fate::Forwarded,
        }
    }

    #[test]
    fn published_counts_new_publications_of_the_actor_on_the_filter() {
        let e = |count, qos| Expect::Published {
            topic: Some("devices/+/state".into()),
            payload: Some(Bytes::from_static(b"on")),
            qos,
            count,
        };
        let h = History::build()
            .push(device_publish(
                "devices/d1/state",
                "on",
                QoS::AtLeastOnce,
                false,
            ))
            // A DUP resend is the same publication; other topics and
            // payloads do not count.
            .push(device_publish(
                "devices/d1/state",
                "on",
                QoS::AtLeastOnce,
                true,
            ))
            .push(device_publish(
                "devices/d1/counter",
                "on",
                QoS::AtLeastOnce,
                false,
            ))
            .push(device_publish(
                "devices/d1/state",
                "off",
                QoS::AtLeastOnce,
                false,
            ))
            .finish();
        assert_eq!(evaluate(&e(1, None), "device", &h.events), Progress::Met);
        assert!(matches!(
            evaluate(&e(2, None), "device", &h.events),
            Progress::Pending { .. }
        ));
        assert!(matches!(
            evaluate(&e(1, None), "cloud", &h.events),
            Progress::Pending { .. }
        ));
        assert!(matches!(
            evaluate(&e(1, Some(QoS::ExactlyOnce)), "device", &h.events),
            Progress::Broken { .. }
        ));
    }

    #[test]
    fn board_counts_the_board_events_that_start_with_the_text() {
        let e = |event: &str, count| Expect::Board {
            event: event.into(),
            count,
        };
        let board = |what: &str| EventKind::Board { what: what.into() };
        let h = History::build()
            .push(board("booted"))
            .push(board("watchdog reset (soft WDT)"))
            .push(board("watchdog reset (hw WDT)"))
            .finish();
        assert_eq!(
            evaluate(&e("watchdog reset", 2), "device", &h.events),
            Progress::Met
        );
        assert_eq!(
            evaluate(&e("watchdog reset (hw WDT)", 1), "device", &h.events),
            Progress::Met
        );
        let Progress::Pending { seen } =
            evaluate(&e("watchdog reset (hw WDT)", 2), "device", &h.events)
        else {
            panic!("two hardware watchdog resets were not seen");
        };
        assert!(seen.contains("1 of 2"), "{seen}");
        assert!(matches!(
            evaluate(&e("power_cycle", 1), "device", &h.events),
            Progress::Pending { .. }
        ));
    }

    #[test]
    fn no_message_breaks_on_the_first_match() {
        let e = Expect::NoMessage {
            topic: Some("dut/1/status".into()),
            payload: None,
        };
        let h = History::build()
            .push(delivered("cloud", "dut/1/status", "x"))
            .finish();
        assert!(matches!(
            evaluate(&e, "cloud", &h.events),
            Progress::Broken { seq: 0, .. }
        ));
        let h = History::build()
            .push(delivered("cloud", "dut/2/status", "x"))
            .finish();
        assert!(matches!(
            evaluate(&e, "cloud", &h.events),
            Progress::Pending { .. }
        ));
    }
}
