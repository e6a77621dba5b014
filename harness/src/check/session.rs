//! `session`: session present flags and what a resumed or clean session
//! carries.
//!
//! Per actor, connections accepted by the broker in order:
//! - CONNACK session present is 0 when CONNECT asked for a clean
//!   session/start [MQTT-3.2.2-1];
//! - when CONNECT asks to resume (clean 0) and the previous accepted
//!   connection of the same client id left a persistent session (3.1.1 clean
//!   session 0; 5.0 session expiry > 0 and not yet expired), session present
//!   is 1 [MQTT-3.2.2-2] — unless the broker was killed in between
//!   (`kill_keeps = false`, default) or restarted/stopped (`restart_keeps =
//!   false`); with no earlier connection in the run nothing is expected;
//! - when the previous connection was a 3.1.1 clean session that had ended,
//!   no session can exist, so session present is 0 [MQTT-3.2.2-3];
//! - a resumed session keeps its subscriptions: QoS ≥ 1 messages matching a
//!   subscription made on an earlier connection of the session, published
//!   while the subscriber was connected again or offline, are delivered
//!   without re-subscribing [MQTT-3.1.2-4], offline ones after the
//!   reconnect [MQTT-3.1.2-5] (same obligations and settle window as
//!   `exactly_once`);
//! - a clean session discards the old one: a message that reached the
//!   broker while the actor was offline, before its clean CONNECT, is not
//!   delivered on the clean connection [MQTT-3.1.2-6] (retained copies,
//!   flagged retain, are exempt).

use std::time::Duration;

use super::exactly_once::{ambiguous, describe, obligations, Reach};
use super::index::{prop_u32, BrokerAct, Index};
use super::{fmt_d, Checker, Verdict};
use crate::history::History;
use crate::mqtt::{QoS, Version};

pub struct SessionChecker {
    pub restart_keeps: bool,
    pub kill_keeps: bool,
    pub settle: Duration,
}

impl Checker for SessionChecker {
    fn name(&self) -> &str {
        "session"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let mut judged = 0;
        for actor in ix.actors() {
            let conns: Vec<usize> = ix
                .conns_of(&actor)
                .filter(|(_, c)| c.accepted())
                .map(|(i, _)| i)
                .collect();
            for (k, &ci) in conns.iter().enumerate() {
                let c = &ix.conns[ci];
                let (cs, connect) = c.connect.as_ref().expect("accepted has CONNECT");
                let (as_, ack) = c.connack.as_ref().expect("accepted");
                judged += 1;
                if connect.clean_start {
                    if ack.session_present {
                        v.fail(
                            "MQTT-3.2.2-1",
                            format!(
                                "{actor} ({}) connected with clean {} = 1 but CONNACK said session present = 1",
                                c.id,
                                if connect.version == Version::V5 { "start" } else { "session" }
                            ),
                            vec![cs.seq, as_.seq],
                        );
                    }
                    continue;
                }
                let prev = conns[..k]
                    .iter()
                    .rev()
                    .map(|&p| &ix.conns[p])
                    .find(|p| p.client_id() == c.client_id());
                let Some(prev) = prev else {
                    v.note(format!(
                        "{actor} ({}): first connection of client id in this run; session present = {} not judged",
                        c.id, ack.session_present as u8
                    ));
                    continue;
                };
                let prev_end = prev.end(ix.end);
                if prev.persistent() {
                    let from = prev.accepted_at().unwrap_or_default();
                    let lost = ix.broker.iter().find(|(s, a)| {
                        s.at >= from
                            && s.at <= cs.at
                            && match a {
                                BrokerAct::Killed => !self.kill_keeps,
                                BrokerAct::Stopped => !self.restart_keeps,
                                BrokerAct::Started => false,
                            }
                    });
                    if let Some((s, a)) = lost {
                        v.note(format!(
                            "{actor} ({}): broker {a:?} at {} (#{}) may have lost the session; session present = {} not judged",
                            c.id,
                            fmt_d(s.at),
                            s.seq,
                            ack.session_present as u8
                        ));
                        continue;
                    }
                    if prev.version() == Version::V5 {
                        let sei = prev
                            .connect
                            .as_ref()
                            .and_then(|(_, pc)| prop_u32(&pc.properties, 0x11))
                            .unwrap_or(0);
                        if sei != u32::MAX
                            && cs.at.saturating_sub(prev_end) + Duration::from_secs(1)
                                >= Duration::from_secs(sei as u64)
                        {
                            v.note(format!(
                                "{actor} ({}): session expiry {sei}s may have passed; not judged",
                                c.id
                            ));
                            continue;
                        }
                    }
                    if !ack.session_present {
                        let pcs = prev.connect.as_ref().map(|(s, _)| s.seq).unwrap_or(0);
                        v.fail(
                            "MQTT-3.2.2-2",
                            format!(
                                "{actor} ({}) resumed the persistent session of {} (client id `{}`) but CONNACK said session present = 0",
                                c.id,
                                prev.id,
                                c.client_id().unwrap_or("")
                            ),
                            vec![pcs, cs.seq, as_.seq],
                        );
                    }
                } else if prev.version() != Version::V5
                    && prev.closed.as_ref().is_some_and(|(s, _)| s.at < cs.at)
                    && ack.session_present
                {
                    let pcs = prev.connect.as_ref().map(|(s, _)| s.seq).unwrap_or(0);
                    v.fail(
                        "MQTT-3.2.2-3",
                        format!(
                            "{actor} ({}) got session present = 1, but its previous connection {} was a clean session, whose state ended with it",
                            c.id, prev.id
                        ),
                        vec![pcs, cs.seq, as_.seq],
                    );
                }
            }
        }

        // Resumed subscriptions and offline queues.
        let amb = ambiguous(&ix);
        let mut resumed = 0;
        #[allow(clippy::needless_range_loop)] // `mi` indexes several tables
        for mi in 0..ix.msgs.len() {
            if amb[mi] {
                continue;
            }
            let m = &ix.msgs[mi];
            let (obl, _) = obligations(&ix, mi, self.settle, Reach::Lineage);
            for o in obl {
                if !o.resumed || o.qos == QoS::AtMostOnce {
                    continue;
                }
                resumed += 1;
                let got = ix
                    .dlvs
                    .iter()
                    .any(|d| d.actor == o.actor && d.topic == m.topic && d.payload == m.payload);
                if !got {
                    let mut ev = m.events.clone();
                    ev.extend(o.sub_events.iter());
                    let (rule, how) = if o.offline {
                        ("MQTT-3.1.2-5", "published while it was offline")
                    } else {
                        ("MQTT-3.1.2-4", "published after it resumed the session")
                    };
                    v.fail(
                        rule,
                        format!(
                            "{} was never delivered to {}: {how}, matching a subscription made on {} of the same session",
                            describe(m),
                            o.actor,
                            ix.conns[o.sub_conn].id
                        ),
                        ev,
                    );
                }
            }
        }

        // Clean sessions discard queued messages.
        for (ci, c) in ix.conns.iter().enumerate() {
            let Some((cs, connect)) = &c.connect else {
                continue;
            };
            if !connect.clean_start || !c.accepted() {
                continue;
            }
            let Some(prev) = ix.conns[..ci]
                .iter()
                .rev()
                .find(|p| p.actor == c.actor && p.accepted() && p.client_id() == c.client_id())
            else {
                continue;
            };
            if !prev.persistent() {
                continue;
            }
            let offline_from = prev.end(ix.end);
            let (from, to) = (c.accepted_at().unwrap_or_default(), c.end(ix.end));
            for d in ix.dlvs.iter().filter(|d| {
                d.actor == c.actor && !d.retain && d.stamp.at >= from && d.stamp.at <= to
            }) {
                let Some(&mi) = ix
                    .msgs
                    .iter()
                    .enumerate()
                    .filter(|(i, m)| !amb[*i] && m.topic == d.topic && m.payload == d.payload)
                    .map(|(i, _)| i)
                    .collect::<Vec<_>>()
                    .first()
                else {
                    continue;
                };
                let m = &ix.msgs[mi];
                if m.arrived
                    .as_ref()
                    .is_some_and(|a| a.at > offline_from && a.at < cs.at)
                {
                    let mut ev = m.events.clone();
                    ev.extend([cs.seq, d.stamp.seq]);
                    v.fail(
                        "MQTT-3.1.2-6",
                        format!(
                            "{} reached the broker while {} was offline, yet was delivered on its clean-session connection {}; the old session should have been discarded",
                            describe(m),
                            c.actor,
                            c.id
                        ),
                        ev,
                    );
                }
            }
        }
        v.notes.insert(
            0,
            format!("{judged} accepted connection(s); {resumed} delivery obligation(s) through resumed sessions"),
        );
        v
    }
}
