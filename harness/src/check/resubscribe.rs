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
//!
//! Judged as events come ([`Live`]), the rule needs per connection of the
//! actor only its CONNACK, its end and the first time it subscribed to
//! each filter, and the actor's subscriptions: state that grows with
//! connections and subscriptions, not with the traffic on them.

use std::collections::HashMap;
use std::time::Duration;

use super::index::{seen, sent, Index, Stamp};
use super::{fmt_d, Checker, Incremental, Verdict};
use crate::history::{ConnId, Dir, Event, EventKind, History};
use crate::mqtt::Packet;

pub struct ResubscribeChecker {
    pub actor: String,
    pub within: Duration,
}

/// A connection of the actor the broker accepted without a session.
#[derive(Clone, Debug)]
struct Fresh {
    /// Its position among all connections (as [`Index`] numbers them).
    ci: usize,
    id: ConnId,
    connack: Stamp,
    /// When it ended, if it did.
    closed: Option<Duration>,
}

/// A subscription of the actor, as [`Index`] has it.
#[derive(Clone, Debug)]
struct Held {
    ci: usize,
    filter: String,
    sent: Stamp,
    acked: bool,
    unsub: Option<Duration>,
}

/// The rule over what both forms gather: the fresh connections in
/// connection order, the actor's subscriptions in order, when each
/// connection first subscribed to each filter, and the log's end.
fn judge(
    actor: &str,
    within: Duration,
    fresh: &[Fresh],
    subs: &[Held],
    subscribed: &HashMap<ConnId, HashMap<String, Duration>>,
    end: Duration,
) -> Verdict {
    let mut v = Verdict::new("resubscribe");
    let mut judged = 0;
    for c in fresh {
        let ack = &c.connack;
        let mut held: Vec<&Held> = Vec::new();
        for s in subs.iter().filter(|s| s.ci < c.ci) {
            let gone = s.unsub.is_some_and(|u| u <= ack.at);
            if s.acked && !gone && !held.iter().any(|h| h.filter == s.filter) {
                held.push(s);
            }
        }
        if held.is_empty() {
            continue;
        }
        let deadline = ack.at + within;
        let again = |filter: &str| {
            subscribed
                .get(&c.id)
                .and_then(|m| m.get(filter))
                .is_some_and(|&at| at <= deadline)
        };
        let cut_short = c.closed.unwrap_or(end) < deadline || end < deadline;
        if cut_short && !held.iter().all(|s| again(&s.filter)) {
            v.note(format!(
                "{} ({}) ended within {} of its CONNACK at {} before subscribing again: resubscription not judged",
                actor,
                c.id,
                fmt_d(within),
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
                        actor,
                        fmt_d(ack.at),
                        s.filter,
                        fmt_d(within),
                        fmt_d(s.sent.at)
                    ),
                    vec![s.sent.seq, ack.seq],
                );
            }
        }
    }
    v.notes.insert(
        0,
        format!("{judged} reconnection(s) of {actor} without a session judged"),
    );
    v
}

/// Notes the filters of a SUBSCRIBE a connection sent, first time each.
fn note_subscribe(
    subscribed: &mut HashMap<ConnId, HashMap<String, Duration>>,
    conn: ConnId,
    at: Duration,
    packet: &Packet,
) {
    if let Packet::Subscribe(sp) = packet {
        let m = subscribed.entry(conn).or_default();
        for f in &sp.filters {
            let first = m.entry(f.filter.clone()).or_insert(at);
            *first = (*first).min(at);
        }
    }
}

impl Checker for ResubscribeChecker {
    fn name(&self) -> &str {
        "resubscribe"
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(Live {
            actor: self.actor.clone(),
            within: self.within,
            conns: HashMap::new(),
            fresh: Vec::new(),
            subs: Vec::new(),
            pending: HashMap::new(),
            subscribed: HashMap::new(),
            end: Duration::ZERO,
        }))
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut fresh = Vec::new();
        let mut subscribed = HashMap::new();
        for (ci, c) in ix.conns_of(&self.actor) {
            for (st, p) in &c.tx {
                note_subscribe(&mut subscribed, c.id, st.at, p);
            }
            let Some((ack, connack)) = &c.connack else {
                continue;
            };
            if connack.code != 0 || connack.session_present {
                continue;
            }
            fresh.push(Fresh {
                ci,
                id: c.id,
                connack: ack.clone(),
                closed: c.closed.as_ref().map(|(s, _)| s.at),
            });
        }
        let subs: Vec<Held> = ix
            .subs
            .iter()
            .filter(|s| s.actor == self.actor)
            .map(|s| Held {
                ci: s.conn,
                filter: s.filter.clone(),
                sent: s.sent.clone(),
                acked: s.acked.is_some(),
                unsub: s.unsub.as_ref().map(|u| u.at),
            })
            .collect();
        judge(&self.actor, self.within, &fresh, &subs, &subscribed, ix.end)
    }
}

/// What is known of a connection as events come: its position, whether
/// it is the actor's, whether its CONNACK was seen, and when it ended.
struct ConnState {
    ci: usize,
    ours: bool,
    connack: bool,
    closed: Option<Duration>,
}

/// [`ResubscribeChecker`] as events come, gathering what [`judge`] reads
/// the way [`Index`] does.
struct Live {
    actor: String,
    within: Duration,
    conns: HashMap<ConnId, ConnState>,
    fresh: Vec<Fresh>,
    subs: Vec<Held>,
    /// SUBSCRIBEs awaiting their SUBACK, any actor's (a later one with the
    /// same connection and packet id replaces it, as in [`Index`]):
    /// positions in `subs` of the actor's filters.
    pending: HashMap<(ConnId, u16), Vec<Option<usize>>>,
    subscribed: HashMap<ConnId, HashMap<String, Duration>>,
    end: Duration,
}

impl Live {
    fn conn(&mut self, id: ConnId, actor: &str) -> &mut ConnState {
        let n = self.conns.len();
        let ours = actor == self.actor;
        self.conns.entry(id).or_insert(ConnState {
            ci: n,
            ours,
            connack: false,
            closed: None,
        })
    }
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        self.end = ev.at;
        let stamp = Stamp {
            seq: ev.seq,
            at: ev.at,
        };
        match &ev.kind {
            EventKind::ConnOpened { conn, actor } => {
                self.conn(*conn, actor);
            }
            EventKind::ConnClosed { conn, actor, .. } => {
                let c = self.conn(*conn, actor);
                if c.closed.is_none() {
                    c.closed = Some(ev.at);
                    if let Some(f) = self.fresh.iter_mut().find(|f| f.id == *conn) {
                        f.closed = Some(ev.at);
                    }
                }
            }
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } => {
                let c = self.conn(*conn, actor);
                let (ci, ours, acked, closed) = (c.ci, c.ours, c.connack, c.closed);
                let to_broker = *dir == Dir::ToBroker;
                match packet {
                    Packet::ConnAck(a) if !to_broker && sent(*fate) && !acked => {
                        if let Some(c) = self.conns.get_mut(conn) {
                            c.connack = true;
                        }
                        if ours && a.code == 0 && !a.session_present {
                            let at = self.fresh.partition_point(|f| f.ci < ci);
                            self.fresh.insert(
                                at,
                                Fresh {
                                    ci,
                                    id: *conn,
                                    connack: stamp,
                                    closed,
                                },
                            );
                        }
                    }
                    Packet::Subscribe(s) if to_broker => {
                        if ours && sent(*fate) {
                            note_subscribe(&mut self.subscribed, *conn, ev.at, packet);
                        }
                        if seen(*fate) {
                            let mut idx = Vec::new();
                            for f in &s.filters {
                                if *actor == self.actor {
                                    idx.push(Some(self.subs.len()));
                                    self.subs.push(Held {
                                        ci,
                                        filter: f.filter.clone(),
                                        sent: stamp.clone(),
                                        acked: false,
                                        unsub: None,
                                    });
                                } else {
                                    idx.push(None);
                                }
                            }
                            self.pending.insert((*conn, s.pid), idx);
                        }
                    }
                    Packet::SubAck(sa) if !to_broker && sent(*fate) => {
                        if let Some(idx) = self.pending.remove(&(*conn, sa.pid)) {
                            for (k, si) in idx.into_iter().enumerate() {
                                if let (Some(si), Some(&code)) = (si, sa.codes.get(k)) {
                                    if code < 0x80 {
                                        self.subs[si].acked = true;
                                    }
                                }
                            }
                        }
                    }
                    Packet::Unsubscribe(u) if to_broker && seen(*fate) && *actor == self.actor => {
                        for s in self.subs.iter_mut() {
                            if s.unsub.is_none() && u.filters.contains(&s.filter) {
                                s.unsub = Some(ev.at);
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn verdict(&self) -> Verdict {
        judge(
            &self.actor,
            self.within,
            &self.fresh,
            &self.subs,
            &self.subscribed,
            self.end,
        )
    }
}
