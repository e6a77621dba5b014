//! `resubscribe`: a client whose session is gone subscribes again. Each
//! time the actor is accepted with session present 0 (a clean session, or a
//! broker that lost the session), every filter it had subscribed to on an
//! earlier connection — and not unsubscribed — must be in a SUBSCRIBE it
//! sends on the new connection within `within` of the CONNACK
//! (`resubscribe-after-clean-session`); otherwise the broker routes nothing
//! to it any more, the classic "commands stop working after a reconnect".
//!
//! Not judged (a note says so): a connection that ended, or a run that
//! ended, before `within` had passed.

use std::time::Duration;

use super::index::Index;
use super::{fmt_d, Checker, Verdict};
use crate::history::History;
use crate::mqtt::Packet;

pub struct ResubscribeChecker {
    pub actor: String,
    pub within: Duration,
}

impl Checker for ResubscribeChecker {
    fn name(&self) -> &str {
        "resubscribe"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let mut judged = 0;
        for (ci, c) in ix.conns_of(&self.actor) {
            let Some((ack, connack)) = &c.connack else {
                continue;
            };
            if connack.code != 0 || connack.session_present {
                continue;
            }
            // Filters the actor held when this connection began.
            let mut held: Vec<&super::index::Sub> = Vec::new();
            for s in ix
                .subs
                .iter()
                .filter(|s| s.actor == self.actor && s.conn < ci)
            {
                let gone = s.unsub.as_ref().is_some_and(|u| u.at <= ack.at);
                if s.acked.is_some() && !gone && !held.iter().any(|h| h.filter == s.filter) {
                    held.push(s);
                }
            }
            if held.is_empty() {
                continue;
            }
            let deadline = ack.at + self.within;
            let again = |filter: &str| {
                c.tx.iter().any(|(st, p)| {
                    st.at <= deadline
                        && matches!(p, Packet::Subscribe(sp) if sp.filters.iter().any(|f| f.filter == filter))
                })
            };
            let cut_short = c.end(ix.end) < deadline || ix.end < deadline;
            if cut_short && !held.iter().all(|s| again(&s.filter)) {
                v.note(format!(
                    "{} ({}) ended within {} of its CONNACK at {} before subscribing again: resubscription not judged",
                    self.actor,
                    c.id,
                    fmt_d(self.within),
                    fmt_d(ack.at)
                ));
                continue;
            }
            judged += 1;
            for s in held {
                if !again(&s.filter) {
                    v.fail(
                        "resubscribe-after-clean-session",
                        format!(
                            "{} connected again at {} without its session (CONNACK session present 0) and did not subscribe to `{}` again within {}; it had subscribed at {}, so the broker now routes nothing on it to the device",
                            self.actor,
                            fmt_d(ack.at),
                            s.filter,
                            fmt_d(self.within),
                            fmt_d(s.sent.at)
                        ),
                        vec![s.sent.seq, ack.seq],
                    );
                }
            }
        }
        v.notes.insert(
            0,
            format!(
                "{judged} reconnection(s) of {} without a session judged",
                self.actor
            ),
        );
        v
    }
}
