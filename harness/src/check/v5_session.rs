//! `v5_session`: 5.0 session expiry and will delay (statement ids are
//! MQTT 5.0's).
//!
//! Session expiry. A 5.0 connection that ended leaves a session for its
//! Session Expiry Interval E: the CONNECT's, or the client's DISCONNECT's
//! when it set one (absent: 0; 0xFFFFFFFF: never). When the same client id
//! next connects with clean start 0 and is accepted R after the end:
//! - R < E − `slack`: the CONNACK says session present 1 [MQTT-3.1.2-23]
//!   — the session resumed [MQTT-3.1.2-5] and said to be there
//!   [MQTT-3.2.2-3],
//!   unless the broker restarted or was killed in between and the scenario
//!   does not promise persistence (`restart_keeps`, `kill_keeps`);
//! - R > E + `slack`: session present 0 — the broker discarded it
//!   [MQTT-4.1.0-2] [MQTT-3.2.2-3]; in between, either is accepted.
//!
//! Will delay. A 5.0 connection with a will whose end was not a DISCONNECT
//! with reason 0 (a reset, a close, DISCONNECT 0x04) publishes the will at
//! D = min(Will Delay Interval, E) after the end [MQTT-3.1.2-8], not before
//! D − `slack` and not later than D + `slack`; when the client id connects
//! again before D (− `slack`), the will is never published [MQTT-3.1.3-9].
//! A will is seen as a PUBLISH with its topic and payload to a subscriber
//! that was subscribed before the end and stayed connected and free of
//! faults to the deadline. Ends the proxy cannot time (a blackhole, where
//! only the broker's keep alive ends the connection) are left to `will`.

use std::time::Duration;

use super::index::{seen, BrokerAct, Index};
use super::{fmt_d, Checker, Verdict};
use crate::history::{CloseReason, Dir, History};
use crate::mqtt::props::{self, SESSION_EXPIRY, WILL_DELAY};
use crate::mqtt::{topic, Packet, Version};

pub struct SessionExpiryChecker {
    pub slack: Duration,
    pub restart_keeps: bool,
    pub kill_keeps: bool,
}

const NEVER: u32 = u32::MAX;

fn secs(n: u32) -> Duration {
    Duration::from_secs(n as u64)
}

impl Checker for SessionExpiryChecker {
    fn name(&self) -> &str {
        "v5_session"
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        let ix = Index::new(history);
        for (i, c) in ix.conns.iter().enumerate() {
            let Some((cs, connect)) = &c.connect else {
                continue;
            };
            if connect.version != Version::V5 || !c.accepted() {
                continue;
            }
            let Some((end, reason)) = &c.closed else {
                continue;
            };
            // The client's DISCONNECT may set a new interval.
            let mut expiry = props::num(&connect.properties, SESSION_EXPIRY).unwrap_or(0);
            let mut normal = false;
            for (s, p) in &c.tx {
                if let Packet::Disconnect(d) = p {
                    let _ = s;
                    if let Some(e) = props::num(&d.properties, SESSION_EXPIRY) {
                        expiry = e;
                    }
                    normal = d.code == 0;
                }
            }
            let _ = cs;
            // The next accepted connection of this client id.
            let Some(next) = ix.conns[i + 1..].iter().find(|n| {
                n.client_id() == c.client_id()
                    && n.connect.as_ref().is_some_and(|(s, _)| s.at >= end.at)
            }) else {
                continue;
            };
            let Some((ack_stamp, ack)) = &next.connack else {
                continue;
            };
            let (rs, rconnect) = next.connect.as_ref().expect("found by its CONNECT");
            if ack.code != 0 {
                continue;
            }
            let gap = rs.at.saturating_sub(end.at);
            // The session ended with its will in the same instant when E = 0.
            let _ = normal;
            if rconnect.clean_start {
                continue;
            }
            let down = ix
                .broker
                .iter()
                .find(|(s, a)| *a != BrokerAct::Started && s.at >= end.at && s.at <= rs.at);
            let kept_across = match down {
                None => true,
                Some((_, BrokerAct::Killed)) => self.kill_keeps,
                Some(_) => self.restart_keeps,
            };
            let evs = vec![end.seq, rs.seq, ack_stamp.seq];
            if expiry == NEVER || gap + self.slack < secs(expiry) {
                if !ack.session_present && kept_across {
                    // Kept [3.1.2-23], so resumed [3.1.2-5] and said so [3.2.2-3].
                    for rule in ["MQTT-3.1.2-23", "MQTT-3.1.2-5", "MQTT-3.2.2-3"] {
                        v.fail(
                            rule,
                            format!(
                                "{} came back after {} with clean start 0; its Session Expiry Interval is {}s{}, yet the CONNACK says session present 0",
                                c.actor,
                                fmt_d(gap),
                                expiry,
                                down.map(|_| " (persistence across the broker's restart is promised)").unwrap_or("")
                            ),
                            evs.clone(),
                        );
                    }
                } else if !kept_across {
                    v.note(format!(
                        "{}: broker went down between the connections; session not required",
                        c.actor
                    ));
                }
            } else if gap > secs(expiry) + self.slack && ack.session_present {
                for rule in ["MQTT-4.1.0-2", "MQTT-3.2.2-3"] {
                    v.fail(
                        rule,
                        format!(
                            "{} came back after {}, its session expired after {}s, yet the CONNACK says session present 1",
                            c.actor,
                            fmt_d(gap),
                            expiry
                        ),
                        evs.clone(),
                    );
                }
            }
            let _ = reason;
        }
        v
    }
}

pub struct WillDelayChecker {
    pub slack: Duration,
}

impl Checker for WillDelayChecker {
    fn name(&self) -> &str {
        "v5_will_delay"
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        let ix = Index::new(history);
        for (i, c) in ix.conns.iter().enumerate() {
            let Some((_, connect)) = &c.connect else {
                continue;
            };
            let Some(will) = &connect.will else { continue };
            if connect.version != Version::V5 || !c.accepted() {
                continue;
            }
            let Some((end, reason)) = &c.closed else {
                continue;
            };
            if matches!(reason, CloseReason::RunEnded) {
                continue;
            }
            let mut expiry = props::num(&connect.properties, SESSION_EXPIRY).unwrap_or(0);
            let mut code = None;
            for (_, p) in &c.tx {
                if let Packet::Disconnect(d) = p {
                    if let Some(e) = props::num(&d.properties, SESSION_EXPIRY) {
                        expiry = e;
                    }
                    code = Some(d.code);
                }
            }
            if code == Some(0) {
                continue; // `will` judges that no will follows.
            }
            if ix
                .faults
                .iter()
                .any(|f| f.hits(&c.actor) && f.kind == "blackhole" && f.stamp.at <= end.at)
            {
                v.note(format!(
                    "{}: its connection ended under a blackhole; `will` judges it",
                    c.actor
                ));
                continue;
            }
            let delay = props::num(&will.properties, WILL_DELAY)
                .unwrap_or(0)
                .min(expiry);
            let due = end.at + secs(delay);
            let back = ix.conns[i + 1..].iter().find_map(|n| {
                let (s, _) = n.connect.as_ref()?;
                (n.client_id() == c.client_id() && s.at >= end.at && n.accepted())
                    .then_some(s.clone())
            });
            let wills: Vec<_> = ix
                .pubs
                .iter()
                .filter(|p| {
                    p.dir == Dir::ToClient
                        && p.conn != c.id
                        && p.stamp.at >= end.at
                        && p.publish.topic == will.topic
                        && p.publish.payload == will.payload
                })
                .collect();
            if let Some(b) = back.as_ref().filter(|b| b.at + self.slack < due) {
                if let Some(w) = wills.iter().find(|w| w.stamp.at >= b.at) {
                    v.fail(
                        "MQTT-3.1.3-9",
                        format!(
                            "{} reconnected {} after its connection ended, within its will delay of {}s, yet its will was published",
                            c.actor,
                            fmt_d(b.at.saturating_sub(end.at)),
                            delay
                        ),
                        vec![end.seq, b.seq, w.stamp.seq],
                    );
                }
                continue;
            }
            if let Some(w) = wills.first() {
                if w.stamp.at + self.slack < due {
                    v.fail(
                        "MQTT-3.1.2-8",
                        format!(
                            "{}'s will was published {} after its connection ended; its will delay is {}s",
                            c.actor,
                            fmt_d(w.stamp.at.saturating_sub(end.at)),
                            delay
                        ),
                        vec![end.seq, w.stamp.seq],
                    );
                }
                continue;
            }
            let deadline = due + self.slack;
            if deadline > ix.end {
                v.note(format!(
                    "{}: the run ended before its will was due at {}",
                    c.actor,
                    fmt_d(due)
                ));
                continue;
            }
            if back.as_ref().is_some_and(|b| b.at <= deadline) {
                continue; // back in the grey zone around the delay
            }
            // Someone who must have seen it.
            let watcher = ix.subs.iter().find(|s| {
                let sc = &ix.conns[s.conn];
                sc.id != c.id
                    && !s.shared()
                    && topic::matches(&s.filter, &will.topic)
                    && s.acked.as_ref().is_some_and(|(a, _)| a.at < end.at)
                    && s.unsub.is_none()
                    && sc.open_at(end.at, ix.end)
                    && sc.end(ix.end) >= deadline
                    && ix.undisturbed(&s.actor, end.at, deadline)
            });
            if let Some(s) = watcher {
                let _ = seen;
                v.fail(
                    "MQTT-3.1.2-8",
                    format!(
                        "{}'s connection ended at {} (will delay {}s, session expiry {}s) and {} got no will by {}",
                        c.actor,
                        fmt_d(end.at),
                        props::num(&will.properties, WILL_DELAY).unwrap_or(0),
                        expiry,
                        s.actor,
                        fmt_d(deadline)
                    ),
                    vec![end.seq],
                );
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::*;
    use super::*;

    fn sess() -> SessionExpiryChecker {
        SessionExpiryChecker {
            slack: Duration::from_millis(500),
            restart_keeps: true,
            kill_keeps: false,
        }
    }

    fn gone_and_back(expiry: &str, gap_ms: u64, sp: bool) -> Kit {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", false, 60, expiry),
            connack(false, 0, ""),
        );
        k.wait(10).close(1, "device", CloseReason::Severed);
        k.wait(gap_ms);
        k.session(
            2,
            "device",
            connect("d", false, 60, expiry),
            connack(sp, 0, ""),
        );
        k
    }

    #[test]
    fn session_kept_before_expiry_and_gone_after() {
        assert!(sess()
            .check(&gone_and_back("session_expiry = 5", 1000, true).history())
            .ok());
        assert_eq!(
            sess()
                .check(&gone_and_back("session_expiry = 5", 1000, false).history())
                .rules(),
            vec!["MQTT-3.1.2-23", "MQTT-3.1.2-5", "MQTT-3.2.2-3"]
        );
        assert!(sess()
            .check(&gone_and_back("session_expiry = 1", 3000, false).history())
            .ok());
        assert_eq!(
            sess()
                .check(&gone_and_back("session_expiry = 1", 3000, true).history())
                .rules(),
            vec!["MQTT-4.1.0-2", "MQTT-3.2.2-3"]
        );
        // Session expiry 0 (absent): gone at the close.
        assert_eq!(
            sess()
                .check(&gone_and_back("", 1000, true).history())
                .rules(),
            vec!["MQTT-4.1.0-2", "MQTT-3.2.2-3"]
        );
        // In the grey zone around the interval either answer passes.
        assert!(sess()
            .check(&gone_and_back("session_expiry = 1", 1200, true).history())
            .ok());
    }

    #[test]
    fn a_disconnect_can_change_the_interval_and_restarts_count_only_when_promised() {
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        );
        k.up(1, "device", disconnect(0, "session_expiry = 0"))
            .close(1, "device", CloseReason::ClientClosed);
        k.wait(1000);
        k.session(
            2,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(true, 0, ""),
        );
        assert_eq!(
            sess().check(&k.history()).rules(),
            vec!["MQTT-4.1.0-2", "MQTT-3.2.2-3"]
        );
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        );
        k.close(1, "device", CloseReason::Severed)
            .wait(100)
            .broker("killed")
            .wait(100)
            .broker("started");
        k.session(
            2,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        );
        assert!(
            sess().check(&k.history()).ok(),
            "a kill without promised persistence"
        );
        let mut k2 = Kit::new();
        k2.session(
            1,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        );
        k2.close(1, "device", CloseReason::Severed)
            .wait(100)
            .broker("restarted");
        k2.session(
            2,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(false, 0, ""),
        );
        assert_eq!(
            sess().check(&k2.history()).rules(),
            vec!["MQTT-3.1.2-23", "MQTT-3.1.2-5", "MQTT-3.2.2-3"]
        );
    }

    fn will_case(delay: u32, expiry: u32) -> Kit {
        let mut k = Kit::new();
        k.session(
            1,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "cloud", subscribe(1, "w/#", 1, 0, ""))
            .down(1, "cloud", suback(1, &[1]));
        k.session(
            2,
            "device",
            connect_will(
                "d",
                60,
                &format!("session_expiry = {expiry}"),
                "w/d",
                "gone",
                &format!("will_delay = {delay}"),
            ),
            connack(false, 0, ""),
        );
        k.wait(100).close(2, "device", CloseReason::Severed);
        k
    }

    fn wd() -> WillDelayChecker {
        WillDelayChecker {
            slack: Duration::from_millis(500),
        }
    }

    #[test]
    fn will_at_the_delay_or_the_session_end_whichever_first() {
        let mut k = will_case(2, 60);
        k.wait(2000)
            .down(1, "cloud", publish(Some(1), 1, "w/d", "gone", ""))
            .wait(1000)
            .step("end");
        assert!(wd().check(&k.history()).ok());
        // Too early: at once, despite a 2 s delay.
        let mut k = will_case(2, 60);
        k.wait(10)
            .down(1, "cloud", publish(Some(1), 1, "w/d", "gone", ""))
            .wait(3000)
            .step("end");
        assert_eq!(wd().check(&k.history()).rules(), vec!["MQTT-3.1.2-8"]);
        // Session expiry 1 s ends the session first: the will is due at 1 s.
        let mut k = will_case(30, 1);
        k.wait(1000)
            .down(1, "cloud", publish(Some(1), 1, "w/d", "gone", ""))
            .wait(1000)
            .step("end");
        assert!(wd().check(&k.history()).ok());
        let mut k = will_case(30, 1);
        k.wait(3000).step("end");
        assert_eq!(wd().check(&k.history()).rules(), vec!["MQTT-3.1.2-8"]);
    }

    #[test]
    fn no_will_when_back_within_the_delay() {
        let mut k = will_case(3, 60);
        k.wait(500);
        k.session(
            3,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(true, 0, ""),
        );
        k.wait(4000).step("end");
        assert!(wd().check(&k.history()).ok());
        let mut k = will_case(3, 60);
        k.wait(500);
        k.session(
            3,
            "device",
            connect("d", false, 60, "session_expiry = 60"),
            connack(true, 0, ""),
        );
        k.wait(2500)
            .down(1, "cloud", publish(Some(1), 1, "w/d", "gone", ""))
            .wait(1000)
            .step("end");
        assert_eq!(wd().check(&k.history()).rules(), vec!["MQTT-3.1.3-9"]);
    }
}
