//! `exactly_once`: delivery guarantees per subscriber, across reconnects.
//!
//! A message is what a publisher sent: a first PUBLISH and its
//! retransmissions (same packet id, topic and payload before the flow
//! completed). A subscriber's `Delivered` event is mapped to a message by
//! topic and payload; scenarios use unique payloads, and where two messages
//! share both the checker says it cannot decide and skips them.
//!
//! The rule, per message and subscriber, with the effective QoS being the
//! lower of the publish QoS and the best QoS granted to the subscriber's
//! matching subscriptions:
//! - effective QoS 2: delivered exactly once [MQTT-4.3.3-2];
//! - effective QoS 1: delivered at least once (more than once is a note);
//! - effective QoS 0: at most once when the publish QoS was 0 or 2 (a QoS 1
//!   publish may legitimately arrive at the broker twice).
//!
//! "Must be delivered" applies only when all of these hold, otherwise the
//! pair is skipped: the publish flow completed at the broker (QoS 1: broker
//! sent PUBACK; QoS 2: PUBREL reached the broker, because a broker may defer
//! onward delivery until PUBREL, 3.1.1 §4.3.3 method B); the subscriber's
//! subscription (non-shared) was acknowledged before the broker got the
//! PUBLISH and not unsubscribed before completion; its session held that
//! subscription at that moment (connected, or offline with a persistent
//! session that a later connection resumed); and after completion one of
//! the session's connections stayed open, free of faults, for `settle` —
//! so a message still in flight at the end of the run is not judged. A
//! broker stop or kill in between also lifts the obligation. Duplicates are
//! judged whenever deliveries exist, except with overlapping subscriptions
//! (3.1.1 §3.3.5 allows one copy per matching subscription) and retained
//! copies (`retain` set on the delivery), which are legitimate extra copies.
//!
//! A duplicate is blamed on whoever the wire shows made it. A QoS 2
//! receiver recognises a resend by its packet id alone: a PUBLISH with an id
//! it holds (received, PUBCOMP not yet sent) is the same message and must
//! not be delivered again [MQTT-4.3.3-2]; that duplicate is the client's.
//! A copy under an id it does not hold (a new id, the same id after its
//! PUBCOMP, or after a clean session) is a new message to it, whatever its
//! DUP flag, so that duplicate is the broker's, whose resend must keep its
//! packet id (3.1.1 [MQTT-2.3.1-4]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::index::{self, show, Index, Msg};
use super::{fmt_d, Checker, Verdict};
use crate::history::{ConnId, Dir, EventKind, Fate, History};
use crate::mqtt::{topic, Packet, QoS};

pub struct ExactlyOnce {
    pub topic: Option<String>,
    pub publisher: Option<String>,
    pub settle: Duration,
}

/// How far a subscriber's session must reach for an obligation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Any connection of the subscription's session lineage.
    Lineage,
    /// Only the connection that subscribed, connected throughout.
    SameConn,
}

/// A subscriber that must get a message.
pub(crate) struct Obligation {
    pub actor: String,
    /// Effective QoS.
    pub qos: QoS,
    /// SUBSCRIBE and SUBACK events of the matching subscriptions.
    pub sub_events: Vec<u64>,
    /// The subscriber was offline (persistent session) when the message arrived.
    pub offline: bool,
    /// The subscription was made on an earlier connection than the one on
    /// which the message could first be delivered.
    pub resumed: bool,
    /// Index of the connection the subscription was made on.
    pub sub_conn: usize,
}

/// Who must get message `mi`, and notes on who was skipped and why.
pub(crate) fn obligations(
    ix: &Index,
    mi: usize,
    settle: Duration,
    reach: Reach,
) -> (Vec<Obligation>, Vec<String>) {
    let m = &ix.msgs[mi];
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let (Some(arrived), Some(done)) = (&m.arrived, &m.done) else {
        return (out, skipped);
    };
    let (ta, td) = (arrived.at, done.at);
    for actor in ix.actors() {
        let subs: Vec<usize> = ix
            .subs
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.actor == actor
                    && !s.shared()
                    && s.acked.as_ref().is_some_and(|(a, _)| a.at <= ta)
                    && s.unsub.as_ref().is_none_or_after(td)
                    && topic::matches(&s.filter, &m.topic)
                    && !(s.no_local() && actor == m.publisher)
            })
            .map(|(i, _)| i)
            .collect();
        if subs.is_empty() {
            continue;
        }
        // The subscription of the newest session counts.
        let last = *subs
            .iter()
            .max_by_key(|&&i| ix.subs[i].conn)
            .expect("non-empty");
        let sub_conn = ix.subs[last].conn;
        let lineage = ix.conns[sub_conn].lineage;
        let subs: Vec<usize> = subs
            .into_iter()
            .filter(|&i| ix.conns[ix.subs[i].conn].lineage == lineage)
            .collect();
        let line: Vec<usize> = ix
            .conns_of(&actor)
            .filter(|(i, c)| c.lineage == lineage && *i >= sub_conn && c.accepted())
            .map(|(i, _)| i)
            .collect();
        // Alive at arrival?
        let pre = line
            .iter()
            .copied()
            .rfind(|&i| ix.conns[i].accepted_at().is_some_and(|a| a <= ta));
        let Some(pre) = pre else { continue };
        let online = ix.conns[pre].open_at(ta, ix.end);
        if !online {
            if reach == Reach::SameConn {
                continue;
            }
            if !ix.conns[pre].persistent() {
                continue;
            }
        }
        let candidates: Vec<usize> = match reach {
            Reach::SameConn => {
                if pre != sub_conn {
                    continue;
                }
                vec![sub_conn]
            }
            Reach::Lineage => line.iter().copied().filter(|&i| i >= pre).collect(),
        };
        let mut window = None;
        for &ci in &candidates {
            let c = &ix.conns[ci];
            let from = c.accepted_at().unwrap_or_default().max(td);
            let to = c.end(ix.end);
            if let Some(start) = ix.quiet_window(&actor, from, to, settle) {
                window = Some((ci, start));
                break;
            }
        }
        let Some((ci, start)) = window else {
            skipped.push(format!(
                "{actor}: no fault-free {} on a connection of its session after {} completed at {}",
                fmt_d(settle),
                describe(m),
                fmt_d(td)
            ));
            continue;
        };
        if let Some((s, a)) = ix.broker_down_between(ta, start + settle) {
            skipped.push(format!(
                "{actor}: broker {a:?} at {} (event #{}) while {} was on its way",
                fmt_d(s.at),
                s.seq,
                describe(m)
            ));
            continue;
        }
        let granted = subs
            .iter()
            .filter_map(|&i| ix.subs[i].granted())
            .max()
            .unwrap_or(QoS::AtMostOnce);
        let mut sub_events = Vec::new();
        for &i in &subs {
            sub_events.push(ix.subs[i].sent.seq);
            if let Some((a, _)) = &ix.subs[i].acked {
                sub_events.push(a.seq);
            }
        }
        out.push(Obligation {
            actor,
            qos: m.qos.min(granted),
            sub_events,
            offline: !online,
            resumed: ci != sub_conn,
            sub_conn,
        });
    }
    (out, skipped)
}

trait AfterExt {
    fn is_none_or_after(&self, t: Duration) -> bool;
}
impl AfterExt for Option<&super::index::Stamp> {
    fn is_none_or_after(&self, t: Duration) -> bool {
        match self {
            None => true,
            Some(s) => s.at > t,
        }
    }
}

pub(crate) fn describe(m: &Msg) -> String {
    let pid = m.pid.map(|p| format!(" pid {p}")).unwrap_or_default();
    format!(
        "the QoS {} message {} on `{}` from {}{}",
        m.qos.as_u8(),
        show(&m.payload),
        m.topic,
        m.publisher,
        pid
    )
}

/// Indices of the messages whose (topic, payload) is shared with another.
pub(crate) fn ambiguous(ix: &Index) -> Vec<bool> {
    let mut amb = vec![false; ix.msgs.len()];
    for (_, v) in ix.msgs_by_key() {
        if v.len() > 1 {
            for i in v {
                amb[i] = true;
            }
        }
    }
    amb
}

/// One PUBLISH of a message that reached a subscriber.
struct Copy {
    seq: u64,
    conn: ConnId,
    pid: Option<u16>,
    dup: bool,
    /// Why the subscriber could not take it for a copy it already held, or
    /// `None` when it could: its packet id came again while the subscriber's
    /// exchange for it was open (PUBLISH received, PUBCOMP not yet sent).
    new: Option<&'static str>,
}

/// The PUBLISHes of `m` that reached `actor`, in log order, each judged by
/// what the subscriber could know. A QoS 2 receiver recognises a resend by
/// its packet id alone (3.1.1 §4.3.3, both methods): until it sends PUBCOMP
/// a PUBLISH with that id is the same message, after it a new publication
/// [MQTT-4.3.3-2]; a clean session drops what it held. A QoS 0 or 1 copy
/// cannot be recognised at all.
fn copies(history: &History, ix: &Index, actor: &str, m: &Msg) -> Vec<Copy> {
    // The index resolved topic aliases; match the copies there.
    let ours: HashSet<u64> = ix
        .pubs
        .iter()
        .filter(|p| {
            p.actor == actor
                && p.dir == Dir::ToClient
                && p.stamp.seq >= m.first.seq
                && p.publish.topic == m.topic
                && p.publish.payload == m.payload
        })
        .map(|p| p.stamp.seq)
        .collect();
    let mut held: HashSet<u16> = HashSet::new();
    let mut out = Vec::new();
    let mut pubcomp_sent: HashSet<u16> = HashSet::new();
    let mut clean = false;
    for ev in history.iter().filter(|e| e.seq >= m.first.seq) {
        let EventKind::Packet {
            conn,
            actor: a,
            dir,
            packet,
            fate,
            ..
        } = &ev.kind
        else {
            continue;
        };
        if a != actor {
            continue;
        }
        match (dir, packet) {
            (Dir::ToBroker, Packet::Connect(c)) if c.clean_start && index::sent(*fate) => {
                held.clear();
                clean = true;
            }
            (Dir::ToBroker, Packet::PubComp(c)) if index::sent(*fate) && held.remove(&c.pid) => {
                pubcomp_sent.insert(c.pid);
            }
            (Dir::ToClient, Packet::Publish(p)) if ours.contains(&ev.seq) && index::seen(*fate) => {
                // A duplicated packet reached the subscriber twice.
                let times = if *fate == Fate::Duplicated { 2 } else { 1 };
                for _ in 0..times {
                    let pid = p.pid.filter(|_| p.qos == QoS::ExactlyOnce);
                    let new = match pid {
                        Some(id) if held.contains(&id) => None,
                        _ if out.is_empty() => Some("first"),
                        Some(id) if pubcomp_sent.contains(&id) => {
                            Some("after the subscriber's PUBCOMP for that id")
                        }
                        Some(_) if clean => Some("after the subscriber started a clean session"),
                        Some(_) => Some("a packet id the subscriber was not holding"),
                        None => Some("a copy without a QoS 2 packet id"),
                    };
                    if let Some(id) = pid {
                        held.insert(id);
                        pubcomp_sent.remove(&id);
                    }
                    out.push(Copy {
                        seq: ev.seq,
                        conn: *conn,
                        pid: p.pid,
                        dup: p.dup,
                        new,
                    });
                }
                clean = false;
            }
            _ => {}
        }
    }
    out
}

/// Who duplicated a message delivered `delivered` times to `actor`, read
/// from the copies that reached it: each copy the subscriber could not
/// recognise is the broker's, each delivery beyond those the client's.
fn blame(actor: &str, copies: &[Copy], delivered: usize) -> String {
    let new: Vec<&Copy> = copies.iter().filter(|c| c.new.is_some()).collect();
    if new.is_empty() {
        return format!(
            "no PUBLISH of it to {actor} was recorded, so the history cannot tell who duplicated it"
        );
    }
    let show_copy = |c: &Copy| {
        let pid = c.pid.map(|p| format!("pid {p} ")).unwrap_or_default();
        let why = match c.new {
            Some("first") | None => String::new(),
            Some(w) => format!(", {}", w.replace("the subscriber", actor)),
        };
        format!("{pid}(DUP={}{why}, event #{})", u8::from(c.dup), c.seq)
    };
    let mut parts = Vec::new();
    if new.len() > 1 {
        let list: Vec<String> = new.iter().map(|c| show_copy(c)).collect();
        let mut conns: Vec<ConnId> = new.iter().map(|c| c.conn).collect();
        conns.dedup();
        let on = if conns.len() == 1 {
            "on the same connection".to_string()
        } else {
            format!("across {} connections", conns.len())
        };
        let how = if new.iter().all(|c| !c.dup) {
            format!(
                "the broker sent it {} times as a new message (DUP=0)",
                new.len()
            )
        } else {
            format!(
                "the broker sent it {} times in PUBLISHes {actor} could not tell for one message",
                new.len()
            )
        };
        let why = if new.iter().all(|c| c.pid.is_some()) {
            format!(
                "; a QoS 2 receiver knows a resend only by its packet id, which it holds until its PUBCOMP [MQTT-4.3.3-2], and a resend keeps its packet id [MQTT-2.3.1-4], so {actor} could not discard it: the duplicate is the broker's"
            )
        } else {
            String::new()
        };
        parts.push(format!("{how}: {}, {on}{why}", list.join(", then ")));
    } else {
        parts.push("the broker sent it once as a new message".to_string());
    }
    if delivered > new.len() {
        let again: Vec<String> = copies
            .iter()
            .filter(|c| c.new.is_none())
            .map(show_copy)
            .collect();
        let again = if again.is_empty() {
            String::new()
        } else {
            format!(" ({} came again before its PUBCOMP)", again.join(", "))
        };
        parts.push(format!(
            "so the subscriber's client failed to discard a retransmission{again}: it delivered it {delivered} times, though only {} of the copies {} new to it",
            new.len(),
            if new.len() == 1 { "was" } else { "were" }
        ));
    }
    parts.join(", ")
}

impl Checker for ExactlyOnce {
    fn name(&self) -> &str {
        "exactly_once"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let amb = ambiguous(&ix);
        let mut counted = [0usize; 3];
        let mut subscribers: Vec<String> = Vec::new();
        let mut not_done = 0;
        let mut amb_keys: Vec<String> = Vec::new();
        for (mi, m) in ix.msgs.iter().enumerate() {
            if self
                .topic
                .as_ref()
                .is_some_and(|f| !topic::matches(f, &m.topic))
                || self.publisher.as_ref().is_some_and(|p| *p != m.publisher)
            {
                continue;
            }
            if amb[mi] {
                let k = format!("{} on `{}`", show(&m.payload), m.topic);
                if !amb_keys.contains(&k) {
                    amb_keys.push(k);
                }
                continue;
            }
            counted[m.qos.as_u8() as usize] += 1;
            if m.done.is_none() {
                not_done += 1;
            }
            // Deliveries per actor.
            let mut dl: HashMap<&str, (Vec<u64>, Vec<u64>)> = HashMap::new();
            for d in &ix.dlvs {
                if d.topic == m.topic && d.payload == m.payload && d.stamp.at >= m.first.at {
                    let e = dl.entry(d.actor.as_str()).or_default();
                    if d.retain {
                        e.1.push(d.stamp.seq);
                    } else {
                        e.0.push(d.stamp.seq);
                    }
                }
            }
            let (obl, skipped) = obligations(&ix, mi, self.settle, Reach::Lineage);
            v.notes.extend(skipped);
            for o in &obl {
                if !subscribers.contains(&o.actor) {
                    subscribers.push(o.actor.clone());
                }
                let (live, kept) = dl.get(o.actor.as_str()).cloned().unwrap_or_default();
                if o.qos != QoS::AtMostOnce && live.is_empty() && kept.is_empty() {
                    let mut ev = m.events.clone();
                    ev.extend(&o.sub_events);
                    let rule = if o.qos == QoS::ExactlyOnce {
                        "qos2-lost"
                    } else {
                        "qos1-lost"
                    };
                    v.fail(
                        rule,
                        format!(
                            "{} was never delivered to {} (effective QoS {}, subscribed before the broker got it{}); expected 1 delivery, saw 0",
                            describe(m),
                            o.actor,
                            o.qos.as_u8(),
                            if o.offline { ", queued while offline" } else { "" }
                        ),
                        ev,
                    );
                }
            }
            // Duplicates, judged for every actor that got copies.
            for (actor, (live, _)) in &dl {
                if live.len() < 2 {
                    continue;
                }
                let subs: Vec<_> = ix
                    .subs
                    .iter()
                    .filter(|s| {
                        s.actor == *actor && !s.shared() && topic::matches(&s.filter, &m.topic)
                    })
                    .collect();
                let mut filters: Vec<&str> = subs.iter().map(|s| s.filter.as_str()).collect();
                filters.sort();
                filters.dedup();
                let granted = subs
                    .iter()
                    .filter_map(|s| s.granted())
                    .max()
                    .unwrap_or(m.qos);
                let eff = m.qos.min(granted);
                if filters.len() > 1 {
                    v.note(format!(
                        "{actor} got {} {} times; it has {} overlapping subscriptions, which may each deliver a copy",
                        describe(m),
                        live.len(),
                        filters.len()
                    ));
                    continue;
                }
                let copies = copies(history, &ix, actor, m);
                let blame = blame(actor, &copies, live.len());
                let copy_seqs: Vec<u64> = copies.iter().map(|c| c.seq).collect();
                let mut ev = live.clone();
                ev.extend(&copy_seqs);
                match (m.qos, eff) {
                    (_, QoS::ExactlyOnce) => v.fail(
                        "MQTT-4.3.3-2",
                        format!(
                            "{} was delivered to {actor} {} times at effective QoS 2; expected exactly once: {blame}",
                            describe(m),
                            live.len()
                        ),
                        ev,
                    ),
                    (QoS::AtLeastOnce, _) | (_, QoS::AtLeastOnce) => v.note(format!(
                        "{actor} got {} {} times (QoS 1 allows duplicates)",
                        describe(m),
                        live.len()
                    )),
                    _ => v.fail(
                        "qos0-duplicated",
                        format!(
                            "{} was delivered to {actor} {} times at effective QoS 0; at most once expected: {blame}",
                            describe(m),
                            live.len()
                        ),
                        ev,
                    ),
                }
            }
        }
        v.notes.insert(
            0,
            format!(
                "{} QoS 2, {} QoS 1 and {} QoS 0 messages, {} subscriber(s) with obligations{}",
                counted[2],
                counted[1],
                counted[0],
                subscribers.len(),
                if not_done > 0 {
                    format!(
                        "; {not_done} message(s) never completed at the broker, so not required"
                    )
                } else {
                    String::new()
                }
            ),
        );
        for k in amb_keys {
            v.note(format!(
                "cannot decide for {k}: more than one message has this topic and payload"
            ));
        }
        v
    }
}
