//! `shared`: a message published to a shared subscription's topic goes to
//! exactly one member of each group (`$share/<group>/<filter>`, or the one
//! implicit `$queue/` group).
//!
//! Members of a group are the actors whose SUBSCRIBE to it was granted. For
//! every message that reached the broker on a topic matching the group's
//! filter, the broker's new (DUP=0) PUBLISH packets to members are counted:
//! - more than one member got it: `shared-duplicate` — unless a member's
//!   connection broke or was faulted while the message was on its way (5.0
//!   §4.8.2 lets the broker send an unacknowledged message to another
//!   member then) or the message was QoS 0 to none of them;
//! - no member got it although the flow completed (QoS ≥ 1) and a member,
//!   subscribed before the broker got the PUBLISH, stayed connected and
//!   fault-free for `settle` after: `shared-lost`;
//! - with `balance_after = N`: when a group got at least N messages, each
//!   member subscribed throughout got at least one (`shared-balance`).
//!
//! A member that also holds another subscription matching the topic
//! (non-shared, or a second group) gets legitimate extra copies, so such
//! messages are skipped with a note.

use std::collections::BTreeMap;
use std::time::Duration;

use super::exactly_once::{ambiguous, describe};
use super::index::{sent, Index};
use super::{fmt_d, Checker, Verdict};
use crate::history::{Dir, History};
use crate::mqtt::{topic, QoS};

pub struct SharedChecker {
    pub group: Option<String>,
    pub settle: Duration,
    pub balance_after: Option<u32>,
}

impl Checker for SharedChecker {
    fn name(&self) -> &str {
        "shared"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let amb = ambiguous(&ix);
        // (group, filter) -> member subscription indices
        let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for (i, s) in ix.subs.iter().enumerate() {
            let f = topic::parse_filter(&s.filter);
            let Some(g) = f.share_group else { continue };
            if s.acked.is_none() || self.group.as_ref().is_some_and(|w| w != g) {
                continue;
            }
            groups
                .entry((g.to_string(), s.filter.clone()))
                .or_default()
                .push(i);
        }
        if groups.is_empty() {
            v.note("no granted shared subscription");
            return v;
        }
        for ((g, filter), members) in &groups {
            let pattern = topic::parse_filter(filter).pattern;
            let mut actors: Vec<&str> =
                members.iter().map(|&i| ix.subs[i].actor.as_str()).collect();
            actors.sort();
            actors.dedup();
            let mut per_member: BTreeMap<&str, usize> = actors.iter().map(|a| (*a, 0)).collect();
            let mut count = 0u32;
            let mut first_at = None;
            let mut last_at = None;
            for (mi, m) in ix.msgs.iter().enumerate() {
                let Some(arr) = &m.arrived else { continue };
                if !topic::matches(pattern, &m.topic) || amb[mi] {
                    continue;
                }
                // Members subscribed when it arrived.
                let live: Vec<usize> = members
                    .iter()
                    .copied()
                    .filter(|&i| {
                        let s = &ix.subs[i];
                        s.acked.as_ref().is_some_and(|(a, _)| a.at <= arr.at)
                            && s.unsub.as_ref().is_none_or(|u| u.at > arr.at)
                    })
                    .collect();
                if live.is_empty() {
                    continue;
                }
                let extra = actors.iter().any(|a| {
                    ix.subs
                        .iter()
                        .filter(|s| {
                            s.actor == *a
                                && s.filter != *filter
                                && topic::matches(&s.filter, &m.topic)
                        })
                        .count()
                        > 0
                });
                if extra {
                    v.note(format!(
                        "{}: a member of group `{g}` has another matching subscription; not judged",
                        describe(m)
                    ));
                    continue;
                }
                count += 1;
                first_at.get_or_insert(arr.at);
                last_at = Some(arr.at);
                let sends: Vec<&super::index::PubEv> = ix
                    .pubs
                    .iter()
                    .filter(|p| {
                        p.dir == Dir::ToClient
                            && sent(p.fate)
                            && !p.publish.dup
                            && p.stamp.at + Duration::from_millis(100) >= arr.at
                            && p.publish.topic == m.topic
                            && p.publish.payload == m.payload
                            && actors.contains(&p.actor.as_str())
                    })
                    .collect();
                let mut got: Vec<&str> = sends.iter().map(|p| p.actor.as_str()).collect();
                got.sort();
                got.dedup();
                for a in &got {
                    *per_member.entry(a).or_default() += 1;
                }
                let last_send = sends.iter().map(|p| p.stamp.at).max().unwrap_or(arr.at);
                if got.len() > 1 {
                    let broke = actors.iter().any(|a| {
                        !ix.undisturbed(a, arr.at, last_send)
                            || ix.conns_of(a).any(|(_, c)| {
                                c.closed
                                    .as_ref()
                                    .is_some_and(|(s, _)| s.at >= arr.at && s.at <= last_send)
                            })
                    });
                    if broke {
                        v.note(format!(
                            "{} went to {} members of `{g}` while a member's connection broke: allowed redelivery",
                            describe(m),
                            got.len()
                        ));
                    } else {
                        let mut ev = m.events.clone();
                        ev.extend(sends.iter().map(|p| p.stamp.seq));
                        v.fail(
                            "shared-duplicate",
                            format!(
                                "{} went to {} members of shared group `{g}` ({}); expected exactly one",
                                describe(m),
                                got.len(),
                                got.join(", ")
                            ),
                            ev,
                        );
                    }
                }
                if got.is_empty() && m.qos != QoS::AtMostOnce {
                    let Some(done) = &m.done else { continue };
                    let ready = live.iter().any(|&i| {
                        let s = &ix.subs[i];
                        let c = &ix.conns[s.conn];
                        c.open_at(done.at, ix.end)
                            && c.end(ix.end) >= done.at + self.settle
                            && ix.end >= done.at + self.settle
                            && ix.undisturbed(&s.actor, arr.at, done.at + self.settle)
                            && s.granted().is_some_and(|q| q != QoS::AtMostOnce)
                    });
                    if ready {
                        let mut ev = m.events.clone();
                        ev.extend(live.iter().map(|&i| ix.subs[i].sent.seq));
                        v.fail(
                            "shared-lost",
                            format!(
                                "{} went to no member of shared group `{g}` ({}) within {} of completing",
                                describe(m),
                                actors.join(", "),
                                fmt_d(self.settle)
                            ),
                            ev,
                        );
                    } else {
                        v.note(format!(
                            "{}: no member of `{g}` was ready to receive it; not judged",
                            describe(m)
                        ));
                    }
                }
            }
            v.note(format!(
                "group `{g}` (`{filter}`): {} member(s), {count} message(s)",
                actors.len()
            ));
            if let (Some(n), Some(first), Some(last)) = (self.balance_after, first_at, last_at) {
                if count >= n {
                    for (a, got) in &per_member {
                        if *got > 0 {
                            continue;
                        }
                        let throughout = members.iter().any(|&i| {
                            let s = &ix.subs[i];
                            s.actor == *a
                                && s.acked.as_ref().is_some_and(|(x, _)| x.at <= first)
                                && ix.conns[s.conn].end(ix.end) >= last
                                && s.unsub.as_ref().is_none_or(|u| u.at > last)
                        });
                        if throughout {
                            v.fail(
                                "shared-balance",
                                format!("member {a} of shared group `{g}` got none of its {count} messages"),
                                members.iter().filter(|&&i| ix.subs[i].actor == *a).map(|&i| ix.subs[i].sent.seq).collect(),
                            );
                        }
                    }
                }
            }
        }
        v
    }
}
