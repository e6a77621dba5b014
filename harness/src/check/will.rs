//! `will`: the last will is published once after an abnormal end, and never
//! after a clean DISCONNECT.
//!
//! For every connection the broker accepted whose CONNECT carried a will,
//! the end of the connection decides what must happen:
//! - the client's DISCONNECT reached the broker: the will must never be
//!   published [MQTT-3.14.4-3] (5.0 reason code 0x04, "disconnect with will
//!   message", requires it instead);
//! - the proxy severed or closed the connection, the broker closed it, or
//!   the client closed it without DISCONNECT: the will is due within `slack`
//!   of the close [MQTT-3.1.2-8];
//! - the client went silent (a blackhole-like fault on its lane, or a board
//!   reset / power loss of the device) with keep alive > 0 and the silence
//!   lasted past 1.5 × keep alive after the last packet the broker received:
//!   the will is due by that point plus `slack` [MQTT-3.1.2-24]; a close the
//!   broker could not see (the client's FIN inside a blackhole) does not
//!   start the clock;
//! - 5.0: the will delay interval (capped by the session expiry interval)
//!   is added to the deadline, and a will published before it is flagged.
//!
//! Due means: every actor other than the will's owner that holds a
//! non-shared subscription matching the will topic, acknowledged before the
//! end, on a connection that stays open and fault-free until the deadline,
//! gets one new (DUP=0) PUBLISH of the will from the broker, no later than
//! the deadline. Retained copies (retain=1 sent because of a SUBSCRIBE, 3.1.1
//! §3.3.1-9) are not counted.
//!
//! Where the specification leaves freedom nothing is required and only "not
//! twice" is judged: a session takeover (another CONNECT with the same
//! client id while the connection was, as far as the broker knew, alive —
//! 3.1.1 does not say whether the will is sent; 5.0 forbids it when a will
//! delay is pending and the new connection resumes the session, which is
//! flagged as 5.0's MQTT-3.1.3-9), a broker stop or kill before the end, a
//! silence healed between 1 and 1.5 × keep alive, and a deadline after the
//! end of the run.
//!
//! Publications of the will are attributed to the connection whose end
//! could have caused them: the most recent end before the publication,
//! preferring one that still owes this subscriber its will.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use super::index::{prop_u32, sent, show, Index};
use super::{fmt_d, Checker, Verdict};
use crate::history::{CloseReason, Dir, History};
use crate::mqtt::{topic, Version, Will};

pub struct WillChecker {
    pub actor: Option<String>,
    pub slack: Duration,
}

/// Clock tolerance between events recorded by different proxy tasks.
const TOL: Duration = Duration::from_millis(100);

const SILENCE: &[&str] = &["blackhole", "partition", "pause", "disconnect", "stall"];

#[derive(Clone, Debug)]
enum Need {
    Required {
        deadline: Duration,
        earliest: Option<Duration>,
    },
    Forbidden {
        rule: &'static str,
    },
    Optional,
    Alive,
}

struct WillConn {
    conn: usize,
    will: Will,
    need: Need,
    /// Earliest moment the end could have triggered the will.
    start: Duration,
    why: String,
    events: Vec<u64>,
    /// Per subscriber: attributed sends (seq, at).
    got: HashMap<String, Vec<(u64, Duration)>>,
}

impl Checker for WillChecker {
    fn name(&self) -> &str {
        "will"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let mut wills: Vec<WillConn> = Vec::new();
        for (ci, c) in ix.conns.iter().enumerate() {
            let Some((cs, connect)) = &c.connect else {
                continue;
            };
            let Some(will) = &connect.will else { continue };
            if self.actor.as_ref().is_some_and(|a| *a != c.actor) || !c.accepted() {
                continue;
            }
            let (need, start, why, events) = self.judge_end(&ix, ci);
            let mut events = events;
            events.push(cs.seq);
            wills.push(WillConn {
                conn: ci,
                will: will.clone(),
                need,
                start,
                why,
                events,
                got: HashMap::new(),
            });
        }
        if wills.is_empty() {
            v.note("no accepted connection carried a will");
            return v;
        }
        // Attribute the broker's new publications of each will.
        let mut keys: Vec<(String, Bytes)> = wills
            .iter()
            .map(|w| (w.will.topic.clone(), w.will.payload.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        let mut unattributed = Vec::new();
        for (t, payload) in &keys {
            for p in &ix.pubs {
                if p.dir != Dir::ToClient || !sent(p.fate) || p.publish.dup {
                    continue;
                }
                if p.publish.topic != *t || p.publish.payload != *payload {
                    continue;
                }
                if p.publish.retain && !self.retain_as_published(&ix, &p.actor, t) {
                    continue;
                }
                let at = p.stamp.at;
                let cands: Vec<usize> = (0..wills.len())
                    .filter(|&k| {
                        wills[k].will.topic == *t
                            && wills[k].will.payload == *payload
                            && wills[k].start <= at + TOL
                            && ix.conns[wills[k].conn].actor != p.actor
                    })
                    .collect();
                let owing = cands.iter().copied().rev().find(|&k| {
                    let w = &wills[k];
                    let fresh = w.got.get(&p.actor).is_none_or_empty();
                    match w.need {
                        Need::Required { deadline, .. } => fresh && at <= deadline,
                        Need::Optional => fresh,
                        _ => false,
                    }
                });
                match owing.or_else(|| cands.last().copied()) {
                    Some(k) => wills[k]
                        .got
                        .entry(p.actor.clone())
                        .or_default()
                        .push((p.stamp.seq, at)),
                    None => unattributed.push(p),
                }
            }
        }
        let mut required = 0;
        for w in &wills {
            let c = &ix.conns[w.conn];
            let what = format!(
                "the will {} on `{}` of {} ({}, {})",
                show(&w.will.payload),
                w.will.topic,
                c.actor,
                c.id,
                w.why
            );
            // Never twice, whatever the end.
            for (s, sends) in &w.got {
                if sends.len() > 1 {
                    let mut ev = w.events.clone();
                    ev.extend(sends.iter().map(|x| x.0));
                    // Published, the will is gone: a second copy is a
                    // will that was not removed [MQTT-3.1.2-10].
                    v.fail(
                        "MQTT-3.1.2-10",
                        format!(
                            "{what} was published to {s} {} times as a new message; expected once",
                            sends.len()
                        ),
                        ev,
                    );
                }
            }
            match &w.need {
                Need::Forbidden { rule } => {
                    for (s, sends) in &w.got {
                        let mut ev = w.events.clone();
                        ev.extend(sends.iter().map(|x| x.0));
                        v.fail(
                            *rule,
                            format!(
                                "{what} was published to {s} at {}; expected never",
                                fmt_d(sends[0].1)
                            ),
                            ev,
                        );
                    }
                }
                Need::Required { deadline, earliest } => {
                    required += 1;
                    let eligible = self.eligible(&ix, w, *deadline, &mut v);
                    for (s, sub_ev) in eligible {
                        let sends = w.got.get(&s).cloned().unwrap_or_default();
                        let mut ev = w.events.clone();
                        ev.extend(sub_ev);
                        ev.extend(sends.iter().map(|x| x.0));
                        match sends.first() {
                            None => {
                                // A late send may have been attributed elsewhere.
                                v.fail(
                                    "MQTT-3.1.2-8",
                                    format!(
                                        "{what} was not published to subscriber {s} by {}; expected once, saw none",
                                        fmt_d(*deadline)
                                    ),
                                    ev,
                                );
                            }
                            Some(&(_, at)) if at > *deadline => v.fail(
                                "will-late",
                                format!(
                                    "{what} reached subscriber {s} at {}, after its deadline {}",
                                    fmt_d(at),
                                    fmt_d(*deadline)
                                ),
                                ev,
                            ),
                            Some(&(_, at)) if earliest.is_some_and(|e| at + TOL < e) => v.fail(
                                crate::mqtt::V5_WILL_BEFORE_DELAY,
                                format!(
                                    "{what} reached subscriber {s} at {}, before its will delay ran out at {}",
                                    fmt_d(at),
                                    fmt_d(earliest.unwrap_or_default())
                                ),
                                ev,
                            ),
                            Some(_) => {}
                        }
                    }
                }
                Need::Optional | Need::Alive => {}
            }
        }
        for p in unattributed {
            let owners: Vec<&WillConn> = wills
                .iter()
                .filter(|w| w.will.topic == p.publish.topic && w.will.payload == p.publish.payload)
                .collect();
            let disturbed = owners
                .iter()
                .any(|w| !ix.disturbances(&ix.conns[w.conn].actor).is_empty());
            let desc = format!(
                "the will {} on `{}` was published to {} at {} while no connection with that will had ended",
                show(&p.publish.payload),
                p.publish.topic,
                p.actor,
                fmt_d(p.stamp.at)
            );
            if disturbed {
                v.note(format!(
                    "{desc}; its owner was under a fault, so this is not judged"
                ));
            } else {
                let mut ev: Vec<u64> = owners.iter().flat_map(|w| w.events.clone()).collect();
                ev.push(p.stamp.seq);
                v.fail("will-premature", desc, ev);
            }
        }
        v.notes.insert(
            0,
            format!(
                "{} connection(s) with a will, {} of which ended so that the will was due",
                wills.len(),
                required
            ),
        );
        for w in &wills {
            v.note(format!(
                "{} {}: {}",
                ix.conns[w.conn].actor, ix.conns[w.conn].id, w.why
            ));
        }
        v
    }
}

trait EmptyExt {
    fn is_none_or_empty(&self) -> bool;
}
impl EmptyExt for Option<&Vec<(u64, Duration)>> {
    fn is_none_or_empty(&self) -> bool {
        self.is_none_or(|v| v.is_empty())
    }
}

impl WillChecker {
    fn retain_as_published(&self, ix: &Index, actor: &str, t: &str) -> bool {
        ix.subs
            .iter()
            .any(|s| s.actor == actor && s.options & 0x08 != 0 && topic::matches(&s.filter, t))
    }

    /// What the end of connection `ci` requires, from when, and why.
    fn judge_end(&self, ix: &Index, ci: usize) -> (Need, Duration, String, Vec<u64>) {
        let c = &ix.conns[ci];
        let (_, connect) = c.connect.as_ref().expect("checked");
        let will = connect.will.as_ref().expect("checked");
        let accepted = c.accepted_at().unwrap_or_default();
        let end = c.end(ix.end);
        let v5 = connect.version == Version::V5;
        let delay = if v5 {
            let d = prop_u32(&will.properties, 0x18).unwrap_or(0);
            let sei = prop_u32(&connect.properties, 0x11).unwrap_or(0);
            Duration::from_secs(d.min(sei) as u64)
        } else {
            Duration::ZERO
        };
        let ka_secs = c
            .connack
            .as_ref()
            .and_then(|(_, a)| prop_u32(&a.properties, 0x13))
            .unwrap_or(c.keep_alive() as u32);
        let ka = Duration::from_secs(ka_secs as u64);
        let closed = c.closed.clone();

        // 1. A DISCONNECT that reached the broker.
        if let Some((d, code)) = &c.disconnect {
            if v5 && *code == 0x04 {
                return (
                    Need::Required {
                        deadline: d.at + delay + self.slack,
                        earliest: (delay > Duration::ZERO).then_some(d.at + delay),
                    },
                    d.at,
                    "DISCONNECT with reason 0x04 (send will)".into(),
                    vec![d.seq],
                );
            }
            return (
                Need::Forbidden {
                    rule: "MQTT-3.14.4-3",
                },
                d.at,
                format!("ended with DISCONNECT at {}", fmt_d(d.at)),
                vec![d.seq],
            );
        }

        // Silences: blackhole-like faults (or a board loss) while open. A
        // connection can sit out a short one and end inside a later one.
        let mut silences: Vec<(Duration, Duration, u64)> = Vec::new();
        for f in &ix.faults {
            if f.hits(&c.actor)
                && SILENCE.contains(&f.kind.as_str())
                && f.stamp.at >= accepted
                && f.stamp.at <= end
            {
                let heal = ix
                    .faults
                    .iter()
                    .find(|h| {
                        h.kind == "heal"
                            && h.stamp.at > f.stamp.at
                            && (h.target == f.target || h.target == "*")
                    })
                    .map(|h| h.stamp.at)
                    .unwrap_or(Duration::MAX);
                silences.push((f.stamp.at, heal, f.stamp.seq));
            }
        }
        if c.actor == "device" && silences.is_empty() {
            if let Some((s, _)) = ix
                .boards
                .iter()
                .find(|(s, _)| s.at >= accepted && s.at <= end)
            {
                silences.push((s.at, Duration::MAX, s.seq));
            }
        }
        let last_rx = |before: Duration| {
            c.rx.iter()
                .rfind(|s| s.at <= before)
                .cloned()
                .map(|s| (s.at, s.seq))
                .unwrap_or((
                    accepted,
                    c.connack.as_ref().map(|(s, _)| s.seq).unwrap_or(0),
                ))
        };
        // Keep-alive based end.
        let mut ka_end: Option<(Duration, Duration, Vec<u64>)> = None; // (start, deadline)
        let mut healed_in_grace: Option<Duration> = None;
        // The first silence that outlasted 1.5 x keep alive ends it.
        for &(sb, heal, seq) in &silences {
            if ka > Duration::ZERO {
                let (rx, rx_seq) = last_rx(sb.max(accepted));
                let due = rx + ka.mul_f64(1.5);
                if heal > due {
                    ka_end = Some((rx + ka, due + delay + self.slack, vec![seq, rx_seq]));
                    break;
                } else if heal > rx + ka && healed_in_grace.is_none() {
                    healed_in_grace = Some(rx + ka);
                }
            }
        }
        // Close-based end, if the broker could see the close.
        let close_end = closed.as_ref().and_then(|(s, reason)| {
            let in_silence = silences.iter().any(|&(a, b, _)| s.at >= a && s.at <= b);
            let visible = match reason {
                CloseReason::Severed | CloseReason::Closed | CloseReason::BrokerClosed => true,
                CloseReason::ClientClosed => !in_silence,
                _ => false,
            };
            visible.then(|| (s.at, s.at + delay + self.slack, vec![s.seq], reason.clone()))
        });
        let t_end = match (&ka_end, &close_end) {
            (Some(k), Some(c)) => Some(k.0.min(c.0)),
            (Some(k), None) => Some(k.0),
            (None, Some(c)) => Some(c.0),
            (None, None) => None,
        };

        // 2. Takeover: same client id connects while this one may be alive.
        let limit = t_end.unwrap_or(Duration::MAX);
        let takeover = ix.conns.iter().enumerate().find(|(k, o)| {
            *k != ci
                && o.same_client(c)
                && o.connect_seen
                && o.connect
                    .as_ref()
                    .is_some_and(|(s, _)| s.at > accepted && s.at <= limit.saturating_add(TOL))
        });
        if let Some((_, o)) = takeover {
            let (s, oc) = o.connect.as_ref().expect("checked");
            let mut need = Need::Optional;
            if v5 && delay > Duration::ZERO && !oc.clean_start {
                need = Need::Forbidden {
                    rule: crate::mqtt::V5_WILL_BEFORE_DELAY,
                };
            }
            return (
                need,
                s.at.min(t_end.unwrap_or(s.at)),
                format!(
                    "taken over by {} at {} (the will is not required)",
                    o.id,
                    fmt_d(s.at)
                ),
                vec![s.seq],
            );
        }
        // 3. The broker went away first.
        if let Some((s, a)) =
            ix.broker_down_between(accepted, t_end.unwrap_or(end).saturating_add(TOL))
        {
            return (
                Need::Optional,
                s.at,
                format!("broker {a:?} at {} (the will is not required)", fmt_d(s.at)),
                vec![s.seq],
            );
        }
        // 4. An abnormal end.
        let earliest_of = |t: Duration| (delay > Duration::ZERO).then_some(t + delay);
        let pick = match (ka_end, close_end) {
            (Some(k), Some(cl)) if cl.1 < k.1 => Some((
                cl.0,
                cl.1,
                cl.2,
                format!("connection ended ({:?}) at {}", cl.3, fmt_d(cl.0)),
            )),
            (Some(k), _) => Some((
                k.0,
                k.1,
                k.2,
                format!(
                    "silent from {} (fault or board loss), keep alive {}: the broker must drop it by 1.5 x keep alive",
                    fmt_d(k.0.saturating_sub(ka)),
                    fmt_d(ka)
                ),
            )),
            (None, Some(cl)) => Some((
                cl.0,
                cl.1,
                cl.2,
                format!("connection ended ({:?}) at {}", cl.3, fmt_d(cl.0)),
            )),
            (None, None) => None,
        };
        if let Some((start, deadline, ev, why)) = pick {
            if deadline > ix.end {
                return (
                    Need::Optional,
                    start,
                    format!(
                        "{why}; the run ended before the will was due at {}",
                        fmt_d(deadline)
                    ),
                    ev,
                );
            }
            return (
                Need::Required {
                    deadline,
                    earliest: earliest_of(start),
                },
                start,
                why,
                ev,
            );
        }
        if let Some(start) = healed_in_grace {
            return (
                Need::Optional,
                start,
                "silence healed between 1 and 1.5 x keep alive (the will is allowed, not required)"
                    .into(),
                vec![],
            );
        }
        (
            Need::Alive,
            Duration::MAX,
            "still connected at the end of the run".into(),
            vec![],
        )
    }

    /// Subscribers that must get the will of `w`, with their subscription events.
    fn eligible(
        &self,
        ix: &Index,
        w: &WillConn,
        deadline: Duration,
        v: &mut Verdict,
    ) -> Vec<(String, Vec<u64>)> {
        let owner = &ix.conns[w.conn];
        let mut out: Vec<(String, Vec<u64>)> = Vec::new();
        for s in &ix.subs {
            if s.actor == owner.actor
                || s.shared()
                || !topic::matches(&s.filter, &w.will.topic)
                || out.iter().any(|(a, _)| *a == s.actor)
            {
                continue;
            }
            let Some((ack, _)) = &s.acked else { continue };
            if ack.at >= w.start || s.unsub.as_ref().is_some_and(|u| u.at <= w.start) {
                continue;
            }
            let sc = &ix.conns[s.conn];
            if sc.same_client(owner) {
                continue;
            }
            if !sc.open_at(w.start, ix.end) || sc.end(ix.end) < deadline {
                v.note(format!(
                    "{} was not connected from {} to {}: will of {} not required for it",
                    s.actor,
                    fmt_d(w.start),
                    fmt_d(deadline),
                    owner.actor
                ));
                continue;
            }
            if !ix.undisturbed(&s.actor, w.start, deadline) {
                v.note(format!(
                    "{} was under a fault between {} and {}: will of {} not required for it",
                    s.actor,
                    fmt_d(w.start),
                    fmt_d(deadline),
                    owner.actor
                ));
                continue;
            }
            let mut ev = vec![s.sent.seq, ack.seq];
            ev.sort();
            out.push((s.actor.clone(), ev));
        }
        out
    }
}
