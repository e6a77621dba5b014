//! `connections`: how the broker ends connections, judged from the
//! connections' opens, CONNECT/CONNACK and closes.
//!
//! - **Takeover** [MQTT-3.1.4-2] (5.0's statement, cited from `v5_connection`,
//!   is [MQTT-3.1.4-3]): when the broker
//!   accepts a CONNECT with a client id whose earlier connection is still
//!   open, it must disconnect that earlier one. The history shows the old
//!   connection still open `slack` after the new CONNACK (no close recorded
//!   by then, or packets still flowing on it). A fault on the old
//!   connection's actor in that window (a blackhole keeps the broker's FIN
//!   from the proxy's client side) makes it a note.
//! - **Empty client ids are each their own client** [MQTT-3.1.3-6]: a
//!   broker close that nothing else explains, of a 3.1.1 connection with an
//!   empty client id, right (within `slack`) after the broker accepted
//!   another connection with an empty client id, shows the broker took the
//!   two for the same client instead of assigning each a unique id.
//! - **No unprovoked close** (`broker-closed`): MQTT lets a server close a
//!   network connection after a protocol violation by the client
//!   [MQTT-4.8.0-1], a transient error of its own [MQTT-4.8.0-2], a refused
//!   CONNECT, a keep-alive expiry, a takeover, or a DISCONNECT (and in 5.0
//!   after its own DISCONNECT). When the broker closes a connection and the
//!   history shows none of the causes it can show — the client broke no rule
//!   on it (no frame the codec rejects, no client-side protocol violation),
//!   it had sent a packet within its keep alive, no other connection with
//!   its client id connected, no fault hit it, the broker was not stopped,
//!   the run was not tearing down, no DISCONNECT — the close is reported as
//!   a broker fault with that evidence. A transient error inside the broker
//!   is the only cause left, and the history cannot show it: the broker's own
//!   log can.

use std::time::Duration;

use super::index::Index;
use super::{fmt_d, Checker, Verdict};
use crate::history::{CloseReason, Dir, EventKind, History};
use crate::mqtt::{Packet, Version};

pub struct ConnectionsChecker {
    /// Time the broker gets to close the old connection after accepting
    /// the new one.
    pub slack: Duration,
}

/// Harness rule: the broker closed a connection with no cause the history shows.
pub const BROKER_CLOSED: &str = "broker-closed";

impl Checker for ConnectionsChecker {
    fn name(&self) -> &str {
        "connections"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let teardown = history
            .events
            .iter()
            .find(|e| matches!(e.kind, EventKind::Teardown))
            .map(|e| e.at)
            .unwrap_or(Duration::MAX);
        self.takeovers(&ix, history, teardown, &mut v);
        self.closes(&ix, history, teardown, &mut v);
        v
    }
}

impl ConnectionsChecker {
    fn takeovers(&self, ix: &Index, history: &History, teardown: Duration, v: &mut Verdict) {
        let mut judged = 0usize;
        for (ni, new) in ix.conns.iter().enumerate() {
            let (Some(cid), Some(acc)) = (new.client_id(), new.accepted_at()) else {
                continue;
            };
            // 5.0 and 3.1.1 number the statement differently.
            let rule = if new.version() == Version::V5 {
                super::v5_connection::TAKEOVER
            } else {
                "MQTT-3.1.4-2"
            };
            let connack_seq = new.connack.as_ref().map(|(s, _)| s.seq).unwrap_or(0);
            for (oi, old) in ix.conns.iter().enumerate() {
                // An empty client id is a new client each time.
                if oi == ni || !old.same_client(new) {
                    continue;
                }
                let Some(old_acc) = old.accepted_at() else {
                    continue;
                };
                let old_end = old.end(ix.end);
                // Only an older connection that was still open when the new
                // one was accepted.
                if old_acc > acc || old_end < acc || (old_acc == acc && oi > ni) {
                    continue;
                }
                judged += 1;
                let limit = acc + self.slack;
                let closed_in_time = old
                    .closed
                    .as_ref()
                    .is_some_and(|(s, r)| s.at <= limit && !matches!(r, CloseReason::RunEnded));
                if closed_in_time {
                    continue;
                }
                if limit >= ix.end.min(teardown) {
                    v.note(format!(
                        "{} was still open when the run ended, {} after {} took over client id `{cid}`: too short to judge",
                        old.id,
                        fmt_d(ix.end.saturating_sub(acc)),
                        new.id
                    ));
                    continue;
                }
                if !ix.undisturbed(&old.actor, acc, limit)
                    || ix.broker_down_between(acc, limit).is_some()
                {
                    v.note(format!(
                        "{} stayed open after {} took over client id `{cid}`, but a fault or broker action in that window can hide the close",
                        old.id, new.id
                    ));
                    continue;
                }
                // Evidence: the old connection's packets after the deadline.
                let later: Vec<u64> = history
                    .events
                    .iter()
                    .filter(|e| e.at > limit)
                    .filter_map(|e| match &e.kind {
                        EventKind::Packet { conn, .. } if *conn == old.id => Some(e.seq),
                        _ => None,
                    })
                    .take(3)
                    .collect();
                let how_long = match &old.closed {
                    Some((s, r)) if !matches!(r, CloseReason::RunEnded) => {
                        format!("closed only {} later", fmt_d(s.at.saturating_sub(acc)))
                    }
                    _ => "still open when the run ended".to_string(),
                };
                let mut evs = vec![old_acc_seq(old), connack_seq];
                evs.extend(&later);
                v.fail(
                    rule,
                    format!(
                        "the broker accepted {} for client id `{cid}` ({}) while {} ({}) with the same client id was connected, and did not disconnect {} within {}: {how_long}{}",
                        new.id,
                        new.actor,
                        old.id,
                        old.actor,
                        old.id,
                        fmt_d(self.slack),
                        if later.is_empty() {
                            String::new()
                        } else {
                            format!("; {} packet(s) crossed it afterwards", later.len())
                        }
                    ),
                    evs,
                );
            }
        }
        if judged > 0 {
            v.note(format!(
                "{judged} takeover(s) of a connected client id judged"
            ));
        }
    }

    fn closes(&self, ix: &Index, history: &History, teardown: Duration, v: &mut Verdict) {
        // Connections on which the client broke a rule: frames the codec
        // rejects, and client-side protocol violations.
        let mut client_fault: std::collections::HashSet<crate::history::ConnId> =
            Default::default();
        for e in &history.events {
            if let EventKind::Malformed {
                conn,
                dir: Dir::ToBroker,
                ..
            } = &e.kind
            {
                client_fault.insert(*conn);
            }
        }
        let protocol = super::protocol::ProtocolChecker {
            clients: vec!["*".to_string()],
            resend_within: Duration::from_secs(2),
            ack_within: Duration::from_secs(1),
        };
        for viol in protocol.check(history).violations {
            if viol.message.starts_with("the broker") {
                continue;
            }
            for seq in &viol.events {
                if let Some(EventKind::Packet { conn, .. }) =
                    history.events.get(*seq as usize).map(|e| &e.kind)
                {
                    client_fault.insert(*conn);
                }
            }
        }
        let broker_acts = broker_actions(history);
        let mut closes = 0usize;
        for c in &ix.conns {
            let Some((stamp, CloseReason::BrokerClosed)) = &c.closed else {
                continue;
            };
            closes += 1;
            let at = stamp.at;
            let cause: Option<String> = if at >= teardown {
                Some("the run was tearing down".into())
            } else if !c.connect_seen {
                Some("no CONNECT had reached the broker".into())
            } else if c.connack.as_ref().is_some_and(|(_, a)| a.code != 0) {
                Some("the broker refused the CONNECT".into())
            } else if c.disconnect.is_some() {
                Some("the client sent DISCONNECT".into())
            } else if client_fault.contains(&c.id) {
                Some("the client broke a rule on it (see the other verdicts)".into())
            } else if broker_disconnected(history, c.id) {
                Some("the broker sent DISCONNECT first (judged by v5_connection)".into())
            } else if let Some(w) = keep_alive_expired(c, at) {
                Some(w)
            } else if let Some(o) = ix.conns.iter().find(|o| {
                o.id != c.id
                    && o.same_client(c)
                    && o.connect_seen
                    && o.connect
                        .as_ref()
                        .is_some_and(|(s, _)| s.at <= at + self.slack)
                    && o.first.at >= c.first.at
            }) {
                Some(format!("{} connected with the same client id", o.id))
            } else if !ix.undisturbed(&c.actor, at.saturating_sub(self.slack).max(c.first.at), at) {
                // Only faults in this connection's own life: the sever that
                // ended the previous connection explains nothing here.
                Some("a fault hit the connection".into())
            } else if broker_acts
                .iter()
                .any(|&(from, to)| from <= at + self.slack && at <= to + self.slack)
            {
                Some("a broker action (stop, restart, kill, pause...) was under way".into())
            } else {
                None
            };
            // Another client with an empty id accepted just before: the
            // broker took the two for one client.
            let twin = (c.client_id() == Some("") && c.version() != Version::V5)
                .then(|| {
                    ix.conns.iter().find(|o| {
                        o.id != c.id
                            && o.client_id() == Some("")
                            && o.first.at >= c.first.at
                            && o.accepted_at()
                                .is_some_and(|a| a <= at && a + self.slack >= at)
                    })
                })
                .flatten();
            match (cause, twin) {
                (Some(why), _) => v.note(format!("the broker closed {} ({}): {why}", c.id, c.actor)),
                (None, Some(o)) => v.fail(
                    "MQTT-3.1.3-6",
                    format!(
                        "the broker closed {}'s connection {} (empty client id) right after accepting {} of {}, also with an empty client id: it must give each a unique client id, not take one for the other",
                        c.actor, c.id, o.id, o.actor
                    ),
                    vec![stamp.seq, o.connack.as_ref().map(|(s, _)| s.seq).unwrap_or(o.first.seq)],
                ),
                (None, None) => {
                    let last = c.tx.last().map(|(s, p)| {
                        format!(
                            "; the client's last packet was {} (event #{}) {} before",
                            p.packet_type(),
                            s.seq,
                            fmt_d(at.saturating_sub(s.at))
                        )
                    });
                    let mut evs = vec![stamp.seq];
                    if let Some((s, _)) = c.tx.last() {
                        evs.push(s.seq);
                    }
                    v.fail(
                        BROKER_CLOSED,
                        format!(
                            "the broker closed {}'s connection {} {} after it opened with no cause the history shows: no protocol error by the client, keep alive {}s not expired, no takeover, no fault, no DISCONNECT{} — a server closes only on a protocol violation [MQTT-4.8.0-1] or a transient error of its own [MQTT-4.8.0-2]: see the broker's log",
                            c.actor,
                            c.id,
                            fmt_d(at.saturating_sub(c.first.at)),
                            c.keep_alive(),
                            last.unwrap_or_default()
                        ),
                        evs,
                    );
                }
            }
        }
        if closes > 0 {
            v.note(format!(
                "{closes} connection(s) closed by the broker judged"
            ));
        }
    }
}

fn old_acc_seq(c: &super::index::Conn) -> u64 {
    c.connack
        .as_ref()
        .map(|(s, _)| s.seq)
        .unwrap_or(c.first.seq)
}

/// The broker sent a DISCONNECT (5.0) on the connection.
fn broker_disconnected(history: &History, id: crate::history::ConnId) -> bool {
    history.events.iter().any(|e| {
        matches!(&e.kind, EventKind::Packet { conn, dir: Dir::ToClient, packet: Packet::Disconnect(_), .. } if *conn == id)
    })
}

/// The client had been silent towards the broker for at least its keep
/// alive when the broker closed (the broker may close from 1.5 × keep alive;
/// a coarse timer may round either way, so one keep alive is enough here).
fn keep_alive_expired(c: &super::index::Conn, at: Duration) -> Option<String> {
    let ka = c.keep_alive();
    if ka == 0 {
        return None;
    }
    let last =
        c.rx.iter()
            .map(|s| s.at)
            .rfind(|&t| t <= at)
            .unwrap_or(c.first.at);
    let silent = at.saturating_sub(last);
    (silent >= Duration::from_secs(ka as u64)).then(|| {
        format!(
            "the client had sent nothing for {} with keep alive {ka}s",
            fmt_d(silent)
        )
    })
}

/// Broker actions after the start, each from its step to when it was
/// done (a restart is recorded once finished; connections close during it).
fn broker_actions(history: &History) -> Vec<(Duration, Duration)> {
    let mut out = Vec::new();
    let mut step_at = Duration::ZERO;
    for e in &history.events {
        match &e.kind {
            EventKind::Step { .. } => step_at = e.at,
            EventKind::Broker { what } if what.starts_with("started") => {}
            EventKind::Broker { .. } => out.push((step_at, e.at)),
            _ => {}
        }
    }
    out
}
