//! `keepalive`: the broker drops silent clients in time, and clients keep
//! their connection alive without flooding it. Keep alive is the CONNECT
//! value, or the 5.0 CONNACK's server keep alive when given; connections
//! with keep alive 0 are not judged.
//!
//! Broker side (`broker = true`):
//! - when the broker received nothing from a client for 1.5 × keep alive
//!   plus `slack`, it has closed the connection [MQTT-3.1.2-24]. Evidence
//!   that it did not: the connection, free of faults in that span, was
//!   still open afterwards; or (under a fault, where the proxy may not see
//!   the close) the broker received a later packet on it and answered.
//! - a broker close of an idle connection earlier than 1 × keep alive after
//!   the last packet it received, with no DISCONNECT, takeover, broker
//!   restart or malformed packet to explain it (`keepalive-early-close`);
//!   closes within 0.5s of a packet are taken as answers to that packet.
//!
//! Client side (`client = true`):
//! - a client sends some packet at least every keep alive (+ `slack`)
//!   while its connection is open and fault-free [MQTT-3.1.2-23]
//!   (`no ping`);
//! - a client does not send PINGREQ again sooner than keep alive / 2 (less
//!   10%) after a PINGREQ that was answered (`keepalive-ping-too-fast`).
//!
//! A client made silent on purpose (`pings = false` in the scenario, which
//! the runner records as an actor event mentioning `pings off`/`set_pings
//! false`) is exempt from the client rules.

use std::time::Duration;

use super::index::{prop_u32, seen, Index};
use super::{fmt_d, Checker, Verdict};
use crate::history::{CloseReason, Dir, EventKind, History};
use crate::mqtt::Packet;

pub struct KeepaliveChecker {
    pub actor: Option<String>,
    pub slack: Duration,
    pub client: bool,
    pub broker: bool,
}

impl Checker for KeepaliveChecker {
    fn name(&self) -> &str {
        "keepalive"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let mut judged = 0;
        for c in &ix.conns {
            if self.actor.as_ref().is_some_and(|a| *a != c.actor) {
                continue;
            }
            let Some(acc) = c.accepted_at() else { continue };
            let ka_s = c
                .connack
                .as_ref()
                .and_then(|(_, a)| prop_u32(&a.properties, 0x13))
                .unwrap_or(c.keep_alive() as u32);
            if ka_s == 0 {
                continue;
            }
            judged += 1;
            let ka = Duration::from_secs(ka_s as u64);
            let grace = ka.mul_f64(1.5) + self.slack;
            let end = c.end(ix.end);
            let cs = c
                .connect
                .as_ref()
                .map(|(s, _)| s.clone())
                .expect("accepted");
            // Broker-side timeout.
            if self.broker {
                let mut marks: Vec<(Duration, u64)> = vec![(cs.at, cs.seq)];
                marks.extend(c.rx.iter().filter(|s| s.at >= acc).map(|s| (s.at, s.seq)));
                marks.sort();
                marks.dedup();
                let answers = |after: Duration| {
                    history.events.iter().find(|e| {
                        e.at > after
                            && matches!(&e.kind, EventKind::Packet { conn, dir: Dir::ToClient, .. } if *conn == c.id)
                    })
                };
                for w in 0..marks.len() {
                    let (g, gseq) = marks[w];
                    let due = g + grace;
                    let next = marks.get(w + 1).copied();
                    let quiet = ix.undisturbed(&c.actor, g, due);
                    let mut evidence = None;
                    match next {
                        Some((n, nseq)) if n > due => {
                            if quiet {
                                evidence = Some((nseq, "received a packet".to_string()));
                            } else if let Some(a) = answers(n) {
                                evidence = Some((
                                    a.seq,
                                    "received a later packet on it and answered".to_string(),
                                ));
                            }
                        }
                        None if end > due && quiet && ix.end > due => {
                            evidence = Some((
                                c.closed.as_ref().map(|(s, _)| s.seq).unwrap_or(gseq),
                                format!("kept it open until {}", fmt_d(end)),
                            ));
                        }
                        _ => {}
                    }
                    if let Some((eseq, what)) = evidence {
                        v.fail(
                            "MQTT-3.1.2-24",
                            format!(
                                "{} ({}) sent nothing the broker received from {} on (keep alive {}), yet after 1.5 x keep alive + {} the broker {what}",
                                c.actor,
                                c.id,
                                fmt_d(g),
                                fmt_d(ka),
                                fmt_d(self.slack)
                            ),
                            vec![gseq, eseq],
                        );
                        break;
                    }
                }
                // Too early.
                if let Some((cl, CloseReason::BrokerClosed)) = &c.closed {
                    let last = marks
                        .iter()
                        .rfind(|(t, _)| *t <= cl.at)
                        .copied()
                        .unwrap_or((acc, cs.seq));
                    let idle = cl.at.saturating_sub(last.0);
                    let takeover = ix.conns.iter().any(|o| {
                        o.id != c.id
                            && o.same_client(c)
                            && o.connect.as_ref().is_some_and(|(s, _)| {
                                s.at >= acc && s.at <= cl.at + Duration::from_millis(100)
                            })
                    });
                    let broker_event = ix
                        .broker_down_between(
                            cl.at.saturating_sub(Duration::from_secs(1)),
                            cl.at + Duration::from_secs(1),
                        )
                        .is_some();
                    let malformed = history.events.iter().any(
                        |e| matches!(&e.kind, EventKind::Malformed { conn, .. } if *conn == c.id),
                    );
                    if idle < ka
                        && idle >= Duration::from_millis(500)
                        && c.disconnect.is_none()
                        && !takeover
                        && !broker_event
                        && !malformed
                    {
                        v.fail(
                            "keepalive-early-close",
                            format!(
                                "the broker closed {} ({}) {} after the last packet it received, before the keep alive of {} had passed",
                                c.actor,
                                c.id,
                                fmt_d(idle),
                                fmt_d(ka)
                            ),
                            vec![last.1, cl.seq],
                        );
                    }
                }
            }
            // Client cadence.
            let silenced = history.events.iter().any(|e| {
                matches!(&e.kind, EventKind::Actor { actor, what } if *actor == c.actor
                    && what.contains("pings") && (what.contains("off") || what.contains("false")))
            });
            if self.client && !silenced {
                let mut sends: Vec<(Duration, u64, bool)> =
                    c.tx.iter()
                        .map(|(s, p)| (s.at, s.seq, matches!(p, Packet::PingReq)))
                        .collect();
                sends.sort_by_key(|s| s.0);
                for w in 0..sends.len() {
                    let (t, seq, ping) = sends[w];
                    let next = sends.get(w + 1).map(|s| s.0).unwrap_or(end);
                    let due = t + ka + self.slack;
                    if t >= acc.saturating_sub(Duration::from_secs(1))
                        && next > due
                        && end > due
                        && ix.end > due
                        && ix.undisturbed(&c.actor, t, due)
                        && c.disconnect.as_ref().is_none_or(|(d, _)| d.at > due)
                    {
                        v.fail(
                            "MQTT-3.1.2-23",
                            format!(
                                "no ping: {} ({}) sent nothing from {} for more than its keep alive {} (+{})",
                                c.actor,
                                c.id,
                                fmt_d(t),
                                fmt_d(ka),
                                fmt_d(self.slack)
                            ),
                            vec![seq],
                        );
                        break;
                    }
                    if ping {
                        if let Some(&(t2, seq2, true)) = sends.get(w + 1) {
                            let answered = history.events.iter().any(|e| {
                                e.at >= t
                                    && e.at <= t2
                                    && matches!(&e.kind, EventKind::Packet { conn, dir: Dir::ToClient, packet: Packet::PingResp, fate, .. } if *conn == c.id && seen(*fate))
                            });
                            if answered && t2 - t < ka.mul_f64(0.45) {
                                v.fail(
                                    "keepalive-ping-too-fast",
                                    format!(
                                        "{} ({}) pinged {} after an answered PINGREQ, with keep alive {}: faster than keep alive / 2",
                                        c.actor,
                                        c.id,
                                        fmt_d(t2 - t),
                                        fmt_d(ka)
                                    ),
                                    vec![seq, seq2],
                                );
                            }
                        }
                    }
                }
            }
        }
        v.notes
            .insert(0, format!("{judged} connection(s) with a keep alive"));
        v
    }
}
