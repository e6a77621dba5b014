//! `backoff`: a reconnecting client spaces its attempts. Every connection
//! the proxy saw from the actor (accepted or refused) is an attempt; in no
//! one-second window may there be more than `max_per_second` of them
//! (`backoff-too-fast`). Scripted reconnects are not told apart from the
//! client's own: the rule is a rate ceiling, which occasional scripted
//! reconnects never reach.
//!
//! The window is one second less [`TOLERANCE`]: the times are the proxy's,
//! and the path from a board's timer to the proxy's accept (QEMU, its
//! network, a loaded host) moves each attempt by a few milliseconds. A
//! device that spaces its attempts by exactly its promised second would
//! otherwise be failed whenever the earlier attempt happened to be seen
//! late (seen on a loaded 2-core machine: a sketch that retries at once,
//! then after 1 s).

use std::time::Duration;

use super::index::Index;
use super::{Checker, Verdict};
use crate::history::History;

/// How far the proxy's view of an attempt may be from the device's.
pub const TOLERANCE: Duration = Duration::from_millis(50);

pub struct BackoffChecker {
    pub actor: String,
    pub max_per_second: u32,
}

impl Checker for BackoffChecker {
    fn name(&self) -> &str {
        "backoff"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let attempts: Vec<(Duration, u64)> = ix
            .conns_of(&self.actor)
            .map(|(_, c)| (c.first.at, c.first.seq))
            .collect();
        v.note(format!(
            "{} connection attempt(s) by {}",
            attempts.len(),
            self.actor
        ));
        let max = self.max_per_second as usize;
        for i in 0..attempts.len() {
            let window: Vec<&(Duration, u64)> = attempts[i..]
                .iter()
                .take_while(|(t, _)| *t < attempts[i].0 + Duration::from_secs(1) - TOLERANCE)
                .collect();
            if window.len() > max {
                v.fail(
                    "backoff-too-fast",
                    format!(
                        "{} made {} connection attempts within one second from {}; at most {} allowed",
                        self.actor,
                        window.len(),
                        super::fmt_d(attempts[i].0),
                        max
                    ),
                    window.iter().map(|(_, s)| *s).collect(),
                );
                break;
            }
        }
        v
    }
}
