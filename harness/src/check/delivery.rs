//! `delivery` (alias `wildcards`): routing by topic filter.
//!
//! - Every PUBLISH the broker sends to a client matches one of the filters
//!   that client's session subscribed before the send [MQTT-3.3.2-3], by the
//!   matching rules of §4.7 (including `$` topics escaping leading
//!   wildcards, [MQTT-4.7.2-1]). Filters stay valid after UNSUBSCRIBE (the
//!   broker may finish messages already on their way, §3.10.4); a session
//!   that was present before the run's first connection has unknown
//!   subscriptions and is not judged.
//! - Every message whose flow completed at the broker, on a topic matching a
//!   non-shared subscription acknowledged before the broker got the
//!   message, with effective QoS ≥ 1, is sent by the broker to that
//!   subscriber on the connection that subscribed, when that connection
//!   stays open and fault-free for `settle` after completion
//!   [MQTT-4.5.0-1]: the broker took the message, so it belonged in that
//!   session. The failure names a more precise statement where the
//!   history shows one: the subscriber had sent an UNSUBSCRIBE whose filter
//!   matches the topic but is not the subscription's own, which must leave
//!   it alone (filters compare character by character) [MQTT-3.10.4-1]; the
//!   subscription was granted as a later filter of a SUBSCRIBE of several,
//!   each of which must work as its own SUBSCRIBE [MQTT-3.8.4-4]. Queued
//!   delivery across reconnects is the business of `exactly_once` and
//!   `session`.
//!
//! On 3.1.1 connections whose session the run saw from its start, pairing
//! each PUBLISH the broker sent with the one message of that topic and
//! payload (messages sharing both are skipped; retained copies, RETAIN=1,
//! are left to `retained`):
//! - a copy goes at no more than the lower of the published QoS and the
//!   highest QoS granted to the session's matching subscriptions
//!   [MQTT-3.8.4-6]; and when the subscriber got copies, one of them is at
//!   that QoS, counting only subscriptions granted before the message
//!   arrived and still held [MQTT-3.8.4-6] ([MQTT-3.3.5-1] when several
//!   subscriptions overlap);
//! - a message that reached the broker after the UNSUBACK of the only
//!   filters that matched it is not sent as new (DUP=0) [MQTT-3.10.4-2]
//!   ([MQTT-3.10.4-6] when the filter was a later one of an UNSUBSCRIBE of
//!   several);
//! - messages one client published on one topic at one QoS reach each
//!   subscriber (one non-shared matching subscription) in the order the
//!   broker got them [MQTT-4.6.0-6] — judged where the earlier message's
//!   flow had completed before the later one arrived, so the broker
//!   certainly owned it first.

use std::time::Duration;

use std::collections::{BTreeMap, HashMap};

use super::exactly_once::{ambiguous, describe, obligations, Reach};
use super::index::{sent, show, Index, Stamp, Sub};
use super::{fmt_d, Checker, Verdict};
use crate::history::{ConnId, Dir, EventKind, History};
use crate::mqtt::{topic, Packet, QoS, Version};

/// Order tolerance between the lanes of two actors.
const TOL: Duration = Duration::from_millis(100);

pub struct DeliveryChecker {
    pub topic: Option<String>,
    pub settle: Duration,
}

impl Checker for DeliveryChecker {
    fn name(&self) -> &str {
        "delivery"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let in_scope = |t: &str| self.topic.as_ref().is_none_or(|f| topic::matches(f, t));
        let mut sends = 0;
        let mut unknown = Vec::new();
        for p in &ix.pubs {
            if p.dir != Dir::ToClient || !sent(p.fate) || !in_scope(&p.publish.topic) {
                continue;
            }
            let Some(&ci) = ix.by_id.get(&p.conn) else {
                continue;
            };
            let lineage = ix.conns[ci].lineage;
            let first = &ix.conns[lineage];
            if first.resumed
                || (!first.clean_start()
                    && first
                        .connack
                        .as_ref()
                        .is_some_and(|(_, a)| a.session_present))
            {
                if !unknown.contains(&p.actor) {
                    unknown.push(p.actor.clone());
                }
                continue;
            }
            sends += 1;
            let filters: Vec<&str> = ix
                .subs
                .iter()
                .filter(|s| ix.conns[s.conn].lineage == lineage && s.sent.at <= p.stamp.at)
                .map(|s| s.filter.as_str())
                .collect();
            if !filters.iter().any(|f| topic::matches(f, &p.publish.topic)) {
                // A `$` topic caught only by a filter that starts with a
                // wildcard, which never matches it.
                let dollar = p.publish.topic.starts_with('$')
                    && filters.iter().any(|f| {
                        (f.starts_with('+') || f.starts_with('#'))
                            && topic::matches(f, &format!("x{}", &p.publish.topic[1..]))
                    });
                v.fail(
                    if dollar { "MQTT-4.7.2-1" } else { "MQTT-3.3.2-3" },
                    format!(
                        "the broker sent {} a PUBLISH on `{}` ({}) that matches none of its filters [{}]",
                        p.actor,
                        p.publish.topic,
                        show(&p.publish.payload),
                        filters.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                    ),
                    vec![p.stamp.seq],
                );
            }
        }
        for a in unknown {
            v.note(format!("{a} resumed a session from before the run: its subscriptions are unknown, sends not judged"));
        }
        let amb = ambiguous(&ix);
        let mut required = 0;
        #[allow(clippy::needless_range_loop)] // `mi` indexes several tables
        for mi in 0..ix.msgs.len() {
            let m = &ix.msgs[mi];
            if amb[mi] || !in_scope(&m.topic) {
                continue;
            }
            let (obl, _) = obligations(&ix, mi, self.settle, Reach::SameConn);
            for o in obl {
                if o.qos == QoS::AtMostOnce {
                    continue;
                }
                required += 1;
                let conn = ix.conns[o.sub_conn].id;
                let got = ix.pubs.iter().any(|p| {
                    p.conn == conn
                        && p.dir == Dir::ToClient
                        && p.publish.topic == m.topic
                        && p.publish.payload == m.payload
                });
                if !got {
                    let mut ev = m.events.clone();
                    ev.extend(o.sub_events.iter());
                    v.fail(
                        missing_rule(&ix, &o.actor, o.sub_conn, &m.topic, m.done.as_ref().map(|d| d.at).unwrap_or_default()),
                        format!(
                            "{} was never sent to {} on {}, which had a matching subscription and stayed connected for {} after the broker completed the publish",
                            describe(m),
                            o.actor,
                            conn,
                            fmt_d(self.settle)
                        ),
                        ev,
                    );
                }
            }
        }
        self.copies(history, &ix, &amb, &mut v);
        v.notes
            .insert(0, format!("{sends} broker PUBLISH sends matched against filters; {required} routing obligation(s)"));
        v
    }
}

/// The rule a missing delivery of a message on `topic` to `actor`
/// (subscribed on connection `sub_conn`) completed at `done` breaks.
fn missing_rule(ix: &Index, actor: &str, sub_conn: usize, t: &str, done: Duration) -> &'static str {
    let lineage = ix.conns[sub_conn].lineage;
    let subs: Vec<&Sub> = ix
        .subs
        .iter()
        .filter(|s| {
            s.actor == actor
                && ix.conns[s.conn].lineage == lineage
                && s.acked.is_some()
                && s.unsub.is_none()
                && topic::matches(&s.filter, t)
        })
        .collect();
    // An UNSUBSCRIBE of a filter the session never held deletes nothing.
    let unsubscribed_other = unsubscribes(ix, actor).iter().any(|u| {
        u.at.at <= done
            && u.filters.iter().any(|f| {
                topic::matches(f, t)
                    && ix.subs.iter().all(|s| {
                        s.actor != actor || ix.conns[s.conn].lineage != lineage || s.filter != *f
                    })
            })
    });
    if unsubscribed_other {
        return "MQTT-3.10.4-1";
    }
    let later_filter = !subs.is_empty()
        && subs.iter().all(|s| {
            ix.subs
                .iter()
                .filter(|o| o.sent.seq == s.sent.seq && o.actor == s.actor)
                .position(|o| std::ptr::eq(o, *s))
                .is_some_and(|k| k > 0)
        });
    if later_filter {
        "MQTT-3.8.4-4"
    } else {
        "MQTT-4.5.0-1"
    }
}

/// The broker's copies of each message, per subscriber session lineage:
/// (lineage, message) -> (seq, time, QoS, DUP) of each copy sent.
type Copies = BTreeMap<(usize, usize), Vec<(u64, Duration, QoS, bool)>>;

/// One publisher's messages on one topic at one QoS, to one subscriber
/// lineage: (lineage, publisher, topic, QoS).
type Stream = (usize, String, String, u8);

/// An UNSUBSCRIBE that reached the broker.
struct Unsub {
    at: Stamp,
    filters: Vec<String>,
    conn: ConnId,
}

fn unsubscribes(ix: &Index, actor: &str) -> Vec<Unsub> {
    let mut out: Vec<Unsub> = Vec::new();
    for (_, c) in ix.conns_of(actor) {
        for (s, p) in &c.tx {
            if let Packet::Unsubscribe(u) = p {
                if !c.rx.iter().any(|r| r.seq == s.seq) {
                    continue; // it never reached the broker
                }
                out.push(Unsub {
                    at: s.clone(),
                    filters: u.filters.clone(),
                    conn: c.id,
                });
            }
        }
    }
    out
}

impl DeliveryChecker {
    /// The QoS, order and unsubscribe rules over the broker's copies.
    fn copies(&self, history: &History, ix: &Index, amb: &[bool], v: &mut Verdict) {
        let key = ix.msgs_by_key();
        // UNSUBACKs, per connection and packet id, to time each UNSUBSCRIBE.
        let mut unsubacks: Vec<(ConnId, u16, Stamp)> = Vec::new();
        let mut unsub_pids: HashMap<u64, u16> = HashMap::new();
        for ev in &history.events {
            if let EventKind::Packet {
                conn,
                dir,
                packet,
                fate,
                ..
            } = &ev.kind
            {
                match packet {
                    Packet::UnsubAck(a) if *dir == Dir::ToClient && sent(*fate) => {
                        unsubacks.push((
                            *conn,
                            a.pid,
                            Stamp {
                                seq: ev.seq,
                                at: ev.at,
                            },
                        ))
                    }
                    Packet::Unsubscribe(u) if *dir == Dir::ToBroker => {
                        unsub_pids.insert(ev.seq, u.pid);
                    }
                    _ => {}
                }
            }
        }
        // (subscriber lineage, message) -> copies (seq, at, qos, dup).
        let mut got: Copies = BTreeMap::new();
        for p in &ix.pubs {
            if p.dir != Dir::ToClient || !sent(p.fate) || p.publish.retain {
                continue;
            }
            let Some(&ci) = ix.by_id.get(&p.conn) else {
                continue;
            };
            let c = &ix.conns[ci];
            let first = &ix.conns[c.lineage];
            if c.version() == Version::V5
                || first.resumed
                || first
                    .connack
                    .as_ref()
                    .is_none_or(|(_, a)| a.session_present)
            {
                continue;
            }
            let Some(ms) = key.get(&(p.publish.topic.clone(), p.publish.payload.clone())) else {
                continue;
            };
            if ms.len() != 1
                || amb[ms[0]]
                || !self
                    .topic
                    .as_ref()
                    .is_none_or(|f| topic::matches(f, &p.publish.topic))
            {
                continue;
            }
            got.entry((c.lineage, ms[0])).or_default().push((
                p.stamp.seq,
                p.stamp.at,
                p.publish.qos,
                p.publish.dup,
            ));
        }
        let matching = |lineage: usize, actor: &str, t: &str| -> Vec<&Sub> {
            ix.subs
                .iter()
                .filter(|s| {
                    s.actor == actor
                        && ix.conns[s.conn].lineage == lineage
                        && !s.shared()
                        && topic::matches(&s.filter, t)
                })
                .collect()
        };
        for (&(lineage, mi), copies) in &got {
            let m = &ix.msgs[mi];
            let actor = ix.conns[lineage].actor.clone();
            let Some(arrived) = &m.arrived else { continue };
            let subs = matching(lineage, &actor, &m.topic);
            let first = copies[0];
            // Above the grant: any subscription ever granted counts.
            let most = subs
                .iter()
                .filter(|s| s.acked.as_ref().is_some_and(|(a, _)| a.at <= first.1))
                .filter_map(|s| s.granted())
                .max();
            let Some(most) = most else { continue };
            let cap = m.qos.min(most);
            if let Some(&(seq, _, q, _)) = copies.iter().find(|c| c.2 > cap) {
                v.fail(
                    "MQTT-3.8.4-6",
                    format!(
                        "the broker sent {} to {actor} at QoS {}, above QoS {} (the lower of the published QoS and the highest granted to its matching subscriptions)",
                        describe(m),
                        q.as_u8(),
                        cap.as_u8()
                    ),
                    vec![arrived.seq, seq],
                );
                continue;
            }
            // Below what is due: only subscriptions granted before the
            // message arrived and left alone until the first copy count.
            let held: Vec<&&Sub> = subs
                .iter()
                .filter(|s| {
                    s.acked.as_ref().is_some_and(|(a, _)| a.at < arrived.at)
                        && s.unsub.is_none()
                        && !subs.iter().any(|o| {
                            o.filter == s.filter && o.sent.at >= arrived.at && o.sent.at <= first.1
                        })
                })
                .collect();
            let due = held.iter().filter_map(|s| s.granted()).max();
            if let Some(due) = due.map(|g| m.qos.min(g)) {
                if copies.iter().all(|c| c.2 < due) {
                    v.fail(
                        if held.len() > 1 { "MQTT-3.3.5-1" } else { "MQTT-3.8.4-6" },
                        format!(
                            "the broker sent {} to {actor} only at QoS {}, below QoS {}: the lower of the published QoS and the highest granted to its {} matching subscription(s)",
                            describe(m),
                            copies.iter().map(|c| c.2).max().unwrap_or(QoS::AtMostOnce).as_u8(),
                            due.as_u8(),
                            held.len()
                        ),
                        vec![arrived.seq, first.0],
                    );
                }
            }
            // After the UNSUBACK of the only filters that matched it.
            let Some(new) = copies.iter().find(|c| !c.3) else {
                continue;
            };
            let live = subs.iter().any(|s| {
                s.acked.is_some()
                    && s.sent.at <= new.1
                    && s.unsub.as_ref().is_none_or(|u| u.at > arrived.at)
            });
            if live {
                continue;
            }
            for u in unsubscribes(ix, &actor) {
                if ix.by_id.get(&u.conn).map(|&i| ix.conns[i].lineage) != Some(lineage) {
                    continue;
                }
                let pid = unsub_pids.get(&u.at.seq).copied();
                let acked = unsubacks
                    .iter()
                    .find(|(c, p, s)| *c == u.conn && Some(*p) == pid && s.seq > u.at.seq)
                    .map(|(_, _, s)| s.clone());
                let Some(acked) = acked else { continue };
                if acked.at + TOL > arrived.at {
                    continue;
                }
                let Some(k) = u.filters.iter().position(|f| topic::matches(f, &m.topic)) else {
                    continue;
                };
                v.fail(
                    if u.filters.len() > 1 && k > 0 { "MQTT-3.10.4-6" } else { "MQTT-3.10.4-2" },
                    format!(
                        "the broker sent {actor} {} as a new message, though it arrived after the UNSUBACK for `{}`{}, which was the only filter matching it",
                        describe(m),
                        u.filters[k],
                        if u.filters.len() > 1 { format!(" (filter {} of {} in one UNSUBSCRIBE)", k + 1, u.filters.len()) } else { String::new() }
                    ),
                    vec![u.at.seq, acked.seq, arrived.seq, new.0],
                );
                break;
            }
        }
        self.order(ix, &got, v);
    }

    /// Messages of one publisher on one topic at one QoS reach a subscriber
    /// in the order the broker owned them [MQTT-4.6.0-6].
    fn order(&self, ix: &Index, got: &Copies, v: &mut Verdict) {
        // (lineage, publisher, topic, qos) -> (message, first copy seq).
        let mut streams: BTreeMap<Stream, Vec<(usize, u64)>> = BTreeMap::new();
        for (&(lineage, mi), copies) in got {
            let m = &ix.msgs[mi];
            let actor = &ix.conns[lineage].actor;
            let overlapping = ix
                .subs
                .iter()
                .filter(|s| {
                    s.actor == *actor
                        && ix.conns[s.conn].lineage == lineage
                        && topic::matches(&s.filter, &m.topic)
                })
                .map(|s| s.filter.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let shared = ix
                .subs
                .iter()
                .any(|s| s.actor == *actor && s.shared() && topic::matches(&s.filter, &m.topic));
            if overlapping != 1 || shared {
                continue;
            }
            streams
                .entry((lineage, m.publisher.clone(), m.topic.clone(), m.qos.as_u8()))
                .or_default()
                .push((mi, copies[0].0));
        }
        for ((lineage, publisher, t, q), mut list) in streams {
            list.sort_by_key(|&(mi, _)| ix.msgs[mi].arrived.as_ref().map(|a| a.seq));
            for (i, &(a, a_copy)) in list.iter().enumerate() {
                let Some(a_done) = ix.msgs[a].done.as_ref() else {
                    continue;
                };
                let later = list[i + 1..].iter().find(|&&(b, b_copy)| {
                    b_copy < a_copy
                        && ix.msgs[b]
                            .arrived
                            .as_ref()
                            .is_some_and(|arr| arr.seq > a_done.seq)
                });
                if let Some(&(b, b_copy)) = later {
                    v.fail(
                        "MQTT-4.6.0-6",
                        format!(
                            "{publisher}'s QoS {q} messages on `{t}` reached {} out of order: {} went before {}, which the broker had taken first",
                            ix.conns[lineage].actor,
                            show(&ix.msgs[b].payload),
                            show(&ix.msgs[a].payload)
                        ),
                        vec![a_done.seq, b_copy, a_copy],
                    );
                    break;
                }
            }
        }
    }
}
