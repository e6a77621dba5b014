//! `publish_allowed`: a device publishes only where it has business to.
//! Every PUBLISH the actor sends, and the will in each of its CONNECTs (a
//! publication the broker makes for it), must be on a topic matching one of
//! `topics` (`publish-not-allowed`; one violation per offending topic).
//! `{client_id}` in a filter is the actor's client id from its CONNECT.

use std::collections::BTreeMap;

use super::index::{sent, Index};
use super::{Checker, Verdict};
use crate::history::{Dir, History};
use crate::mqtt::topic;

pub struct AllowListChecker {
    pub actor: String,
    pub topics: Vec<String>,
}

impl Checker for AllowListChecker {
    fn name(&self) -> &str {
        "publish_allowed"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let filters: Vec<String> = match ix.client_id_of(&self.actor) {
            Some(id) => self
                .topics
                .iter()
                .map(|t| t.replace("{client_id}", id))
                .collect(),
            None => self.topics.clone(),
        };
        let allowed = |t: &str| filters.iter().any(|f| topic::matches(f, t));
        // topic -> (publishes, wills, first events)
        let mut bad: BTreeMap<String, (usize, usize, Vec<u64>)> = BTreeMap::new();
        let mut total = 0;
        for p in &ix.pubs {
            if p.actor != self.actor || p.dir != Dir::ToBroker || !sent(p.fate) {
                continue;
            }
            total += 1;
            if !allowed(&p.publish.topic) {
                let e = bad.entry(p.publish.topic.clone()).or_default();
                e.0 += 1;
                if e.2.len() < 5 {
                    e.2.push(p.stamp.seq);
                }
            }
        }
        for (_, c) in ix.conns_of(&self.actor) {
            if let Some((s, connect)) = &c.connect {
                if let Some(w) = connect.will.as_ref().filter(|w| !allowed(&w.topic)) {
                    let e = bad.entry(w.topic.clone()).or_default();
                    e.1 += 1;
                    if e.2.len() < 5 {
                        e.2.push(s.seq);
                    }
                }
            }
        }
        for (t, (pubs, wills, seqs)) in bad {
            let what = match (pubs, wills) {
                (0, w) => format!("set a will on `{t}` in {w} CONNECT(s)"),
                (p, 0) => format!("published {p} message(s) on `{t}`"),
                (p, w) => {
                    format!("published {p} message(s) and set a will in {w} CONNECT(s) on `{t}`")
                }
            };
            v.fail(
                "publish-not-allowed",
                format!(
                    "{} {what}, which none of its allowed topics ({}) matches",
                    self.actor,
                    filters.join(", ")
                ),
                seqs,
            );
        }
        v.note(format!("{total} publication(s) by {} checked", self.actor));
        v
    }
}
