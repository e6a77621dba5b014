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
//!
//! Judged as events come ([`Live`]), the rule needs only the attempts whose
//! window is still open — a bounded window — and the connection ids seen.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use super::index::Index;
use super::{Checker, Incremental, Verdict, Violation};
use crate::history::{ConnId, Event, EventKind, History};

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

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(Live {
            actor: self.actor.clone(),
            max: self.max_per_second as usize,
            conns: HashSet::new(),
            attempts: 0,
            open: VecDeque::new(),
            failed: None,
        }))
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
                let seqs: Vec<u64> = window.iter().map(|(_, s)| *s).collect();
                v.violations
                    .push(too_fast(&self.actor, attempts[i].0, &seqs, max));
                break;
            }
        }
        v
    }
}

/// The length of one attempt's window.
fn window() -> Duration {
    Duration::from_secs(1) - TOLERANCE
}

fn too_fast(actor: &str, first: Duration, seqs: &[u64], max: usize) -> Violation {
    Violation::new(
        "backoff-too-fast",
        format!(
            "{actor} made {} connection attempts within one second from {}; at most {max} allowed",
            seqs.len(),
            super::fmt_d(first),
        ),
        seqs.to_vec(),
    )
}

/// One attempt whose window may still decide the verdict: the attempts in
/// it so far, and whether a later attempt has closed it (the batch rule
/// takes the attempts that follow in log order until the first one outside
/// the window).
struct Attempt {
    at: Duration,
    window: Vec<u64>,
    closed: bool,
}

/// [`BackoffChecker`] as events come. An attempt is a connection id first
/// seen (as [`Index`] makes one) on an event of the actor; the first
/// attempt in log order whose window holds too many is the violation, so
/// the windows of earlier attempts are dropped once closed within the limit.
struct Live {
    actor: String,
    max: usize,
    conns: HashSet<ConnId>,
    attempts: usize,
    open: VecDeque<Attempt>,
    failed: Option<Violation>,
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        let (conn, actor) = match &ev.kind {
            EventKind::ConnOpened { conn, actor }
            | EventKind::ConnClosed { conn, actor, .. }
            | EventKind::Packet { conn, actor, .. } => (*conn, actor),
            _ => return,
        };
        if !self.conns.insert(conn) || *actor != self.actor {
            return;
        }
        self.attempts += 1;
        if self.failed.is_some() {
            return;
        }
        for a in self.open.iter_mut().filter(|a| !a.closed) {
            if ev.at < a.at + window() {
                a.window.push(ev.seq);
            } else {
                a.closed = true;
            }
        }
        self.open.push_back(Attempt {
            at: ev.at,
            window: vec![ev.seq],
            closed: false,
        });
        while let Some(a) = self.open.front().filter(|a| a.closed) {
            if a.window.len() > self.max {
                self.failed = Some(too_fast(&self.actor, a.at, &a.window, self.max));
                self.open.clear();
                return;
            }
            self.open.pop_front();
        }
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("backoff");
        v.note(format!(
            "{} connection attempt(s) by {}",
            self.attempts, self.actor
        ));
        // A window still open ends with the log.
        let at_end = || {
            self.open
                .iter()
                .find(|a| a.window.len() > self.max)
                .map(|a| too_fast(&self.actor, a.at, &a.window, self.max))
        };
        if let Some(x) = self.failed.clone().or_else(at_end) {
            v.violations.push(x);
        }
        v
    }
}
