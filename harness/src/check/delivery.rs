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
//!   (`delivery-missing`). Queued delivery across reconnects is the
//!   business of `exactly_once` and `session`.

use std::time::Duration;

use super::exactly_once::{ambiguous, describe, obligations, Reach};
use super::index::{sent, show, Index};
use super::{fmt_d, Checker, Verdict};
use crate::history::{Dir, History};
use crate::mqtt::{topic, QoS};

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
                v.fail(
                    "MQTT-3.3.2-3",
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
                        "delivery-missing",
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
        v.notes
            .insert(0, format!("{sends} broker PUBLISH sends matched against filters; {required} routing obligation(s)"));
        v
    }
}
