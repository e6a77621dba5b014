//! The fault model of one proxy lane, as pure state: which faults are armed,
//! and what happens to each frame. No sockets, no clock: the tokio shell
//! ([`super::conn`]) asks [`FaultState::on_frame`] for a [`Decision`] per
//! decoded frame and turns [`FaultState::apply`]'s [`ConnCommand`] into
//! actions on its live connections.
//!
//! Rules are counted per lane, from the moment each is armed, across the
//! lane's connections: "drop the 1st PUBREC" drops the first PUBREC the lane
//! sees after the rule was armed, whichever connection carries it.

use std::time::Duration;

use crate::history::Dir;
use crate::mqtt::PacketType;

/// A network fault applied to a lane (see the module docs of
/// [`crate::proxy`] for what each side sees).
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// RST both sides of the current connections (SO_LINGER 0).
    Sever,
    /// FIN both sides of the current connections.
    Close,
    /// Network loss: no bytes move either way, nothing is closed; also for
    /// connections opened during the outage.
    Blackhole,
    /// End a blackhole: buffered bytes flow again; a connection one side of
    /// which closed during the outage is reset on the other side.
    Heal,
    /// New connections are reset at once; existing ones are untouched.
    Refuse,
    /// End `Refuse`.
    Accept,
    /// Per-frame delay, order preserved; each frame's delay is uniform in
    /// `delay ± jitter` (never below zero), from a seeded generator.
    Latency { delay: Duration, jitter: Duration },
    /// Pace each direction of each connection; 0 removes the cap.
    Bandwidth { bytes_per_sec: u64 },
    /// Arm a packet rule.
    Rule(PacketRule),
    /// Forward every held packet now.
    Release,
    /// Remove latency, bandwidth and rules; release held packets.
    Clear,
}

/// Act on the `nth` (1-based) packet of a type, and the `times - 1` matches
/// after it, counted on the lane from when the rule is armed.
#[derive(Clone, Debug, PartialEq)]
pub struct PacketRule {
    /// `None`: either direction.
    pub dir: Option<Dir>,
    pub packet: PacketType,
    pub nth: u32,
    pub action: RuleAction,
    pub times: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuleAction {
    /// Swallow the packet; the peer never sees it.
    Drop,
    /// Keep it until `Release` or `Clear` (or the connection ends).
    Hold,
    /// Forward it twice, back to back.
    Duplicate,
    /// Hold it for this long; later packets may overtake it.
    Delay(Duration),
}

pub(crate) fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

pub(crate) fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::ToBroker => "to_broker",
        Dir::ToClient => "to_client",
    }
}

impl Fault {
    /// The text of the fault's history event. Its first word is the fault's
    /// kind (`sever`, `blackhole`, `drop`, ...), which checkers key on.
    pub fn name(&self) -> String {
        use crate::scenario::duration::format as d;
        match self {
            Fault::Sever => "sever".into(),
            Fault::Close => "close".into(),
            Fault::Blackhole => "blackhole".into(),
            Fault::Heal => "heal".into(),
            Fault::Refuse => "refuse".into(),
            Fault::Accept => "accept".into(),
            Fault::Release => "release".into(),
            Fault::Clear => "clear".into(),
            Fault::Latency { delay, jitter } if jitter.is_zero() => {
                format!("latency {}", d(*delay))
            }
            Fault::Latency { delay, jitter } => {
                format!("latency {} jitter {}", d(*delay), d(*jitter))
            }
            Fault::Bandwidth { bytes_per_sec: 0 } => "bandwidth unlimited".into(),
            Fault::Bandwidth { bytes_per_sec } => format!("bandwidth {bytes_per_sec} B/s"),
            Fault::Rule(r) => {
                let verb = match r.action {
                    RuleAction::Drop => "drop",
                    RuleAction::Hold => "hold",
                    RuleAction::Duplicate => "duplicate",
                    RuleAction::Delay(_) => "delay",
                };
                let mut s = format!("{verb} {} {}", ordinal(r.nth), r.packet.name());
                if let Some(dir) = r.dir {
                    s.push(' ');
                    s.push_str(dir_name(dir));
                }
                if r.times > 1 {
                    s.push_str(&format!(" x{}", r.times));
                }
                if let RuleAction::Delay(t) = r.action {
                    s.push_str(&format!(" by {}", d(t)));
                }
                s
            }
        }
    }
}

/// What happens to one decoded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Forward,
    Drop,
    Hold,
    Duplicate,
    Delay(Duration),
}

/// Per-frame link shaping: latency, jitter and a bandwidth cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkParams {
    pub delay: Duration,
    pub jitter: Duration,
    /// 0 = unlimited.
    pub bytes_per_sec: u64,
}

/// What the current connections of a lane must do after a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnCommand {
    Sever,
    Close,
    Blackhole,
    Heal,
    Release,
    /// Latency or bandwidth changed: shape frames from now on with these.
    Link(LinkParams),
    /// Shaping removed: deliver queued frames now and release held ones.
    Clear(LinkParams),
}

#[derive(Clone, Debug, PartialEq)]
struct Armed {
    rule: PacketRule,
    /// Matching frames seen since the rule was armed.
    seen: u32,
}

impl Armed {
    fn last(&self) -> u32 {
        self.rule
            .nth
            .max(1)
            .saturating_add(self.rule.times.max(1) - 1)
    }
}

/// The armed faults of one lane.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultState {
    blackhole: bool,
    refuse: bool,
    link: LinkParams,
    rules: Vec<Armed>,
}

impl FaultState {
    pub fn new() -> FaultState {
        FaultState::default()
    }

    pub fn blackholed(&self) -> bool {
        self.blackhole
    }

    pub fn refusing(&self) -> bool {
        self.refuse
    }

    pub fn link(&self) -> LinkParams {
        self.link
    }

    /// Rules still armed (not yet exhausted).
    pub fn armed_rules(&self) -> usize {
        self.rules.len()
    }

    /// Updates the state; returns what the lane's live connections must do.
    pub fn apply(&mut self, fault: &Fault) -> Option<ConnCommand> {
        match fault {
            Fault::Sever => Some(ConnCommand::Sever),
            Fault::Close => Some(ConnCommand::Close),
            Fault::Blackhole => {
                self.blackhole = true;
                Some(ConnCommand::Blackhole)
            }
            Fault::Heal => {
                let was = std::mem::replace(&mut self.blackhole, false);
                was.then_some(ConnCommand::Heal)
            }
            Fault::Refuse => {
                self.refuse = true;
                None
            }
            Fault::Accept => {
                self.refuse = false;
                None
            }
            Fault::Latency { delay, jitter } => {
                self.link.delay = *delay;
                self.link.jitter = *jitter;
                Some(ConnCommand::Link(self.link))
            }
            Fault::Bandwidth { bytes_per_sec } => {
                self.link.bytes_per_sec = *bytes_per_sec;
                Some(ConnCommand::Link(self.link))
            }
            Fault::Rule(rule) => {
                self.rules.push(Armed {
                    rule: rule.clone(),
                    seen: 0,
                });
                None
            }
            Fault::Release => Some(ConnCommand::Release),
            Fault::Clear => {
                self.rules.clear();
                self.link = LinkParams::default();
                Some(ConnCommand::Clear(self.link))
            }
        }
    }

    /// The fate of one decoded frame. Every armed rule that matches the
    /// frame counts it; the first (oldest) rule whose window it falls in
    /// decides. A rule is disarmed after its last match.
    pub fn on_frame(&mut self, dir: Dir, packet: PacketType) -> Decision {
        let mut decision = Decision::Forward;
        let mut decided = false;
        for armed in &mut self.rules {
            let r = &armed.rule;
            if r.packet != packet || r.dir.is_some_and(|d| d != dir) {
                continue;
            }
            armed.seen += 1;
            if !decided && armed.seen >= r.nth.max(1) && armed.seen <= armed.last() {
                decided = true;
                decision = match r.action {
                    RuleAction::Drop => Decision::Drop,
                    RuleAction::Hold => Decision::Hold,
                    RuleAction::Duplicate => Decision::Duplicate,
                    RuleAction::Delay(d) => Decision::Delay(d),
                };
            }
        }
        self.rules.retain(|a| a.seen < a.last());
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PacketType::*;

    fn rule(
        dir: Option<Dir>,
        packet: PacketType,
        nth: u32,
        action: RuleAction,
        times: u32,
    ) -> Fault {
        Fault::Rule(PacketRule {
            dir,
            packet,
            nth,
            action,
            times,
        })
    }

    #[test]
    fn drop_first_pubrec_to_client_only() {
        let mut s = FaultState::new();
        s.apply(&rule(Some(Dir::ToClient), PubRec, 1, RuleAction::Drop, 1));
        assert_eq!(s.on_frame(Dir::ToBroker, PubRec), Decision::Forward);
        assert_eq!(s.on_frame(Dir::ToClient, Publish), Decision::Forward);
        assert_eq!(s.on_frame(Dir::ToClient, PubRec), Decision::Drop);
        assert_eq!(s.armed_rules(), 0);
        assert_eq!(s.on_frame(Dir::ToClient, PubRec), Decision::Forward);
    }

    #[test]
    fn nth_and_times_window() {
        let mut s = FaultState::new();
        s.apply(&rule(None, Publish, 2, RuleAction::Duplicate, 2));
        let got: Vec<Decision> = (0..5)
            .map(|i| {
                let dir = if i % 2 == 0 {
                    Dir::ToBroker
                } else {
                    Dir::ToClient
                };
                s.on_frame(dir, Publish)
            })
            .collect();
        use Decision::*;
        assert_eq!(got, vec![Forward, Duplicate, Duplicate, Forward, Forward]);
    }

    #[test]
    fn counting_starts_when_armed() {
        let mut s = FaultState::new();
        assert_eq!(s.on_frame(Dir::ToBroker, PubAck), Decision::Forward);
        s.apply(&rule(None, PubAck, 1, RuleAction::Hold, 1));
        assert_eq!(s.on_frame(Dir::ToBroker, PubAck), Decision::Hold);
    }

    #[test]
    fn oldest_rule_decides_but_all_count() {
        let mut s = FaultState::new();
        s.apply(&rule(None, Publish, 1, RuleAction::Drop, 1));
        s.apply(&rule(None, Publish, 1, RuleAction::Hold, 2));
        // Both count the first PUBLISH; the drop rule decides it.
        assert_eq!(s.on_frame(Dir::ToBroker, Publish), Decision::Drop);
        // The hold rule's window (1..=2) is at its 2nd match now.
        assert_eq!(s.on_frame(Dir::ToBroker, Publish), Decision::Hold);
        assert_eq!(s.on_frame(Dir::ToBroker, Publish), Decision::Forward);
    }

    #[test]
    fn delay_rule() {
        let mut s = FaultState::new();
        let d = Duration::from_millis(300);
        s.apply(&rule(
            Some(Dir::ToBroker),
            PingReq,
            1,
            RuleAction::Delay(d),
            1,
        ));
        assert_eq!(s.on_frame(Dir::ToBroker, PingReq), Decision::Delay(d));
    }

    #[test]
    fn clear_disarms_and_resets_link() {
        let mut s = FaultState::new();
        s.apply(&rule(None, Publish, 1, RuleAction::Drop, 5));
        let l = s.apply(&Fault::Latency {
            delay: Duration::from_millis(50),
            jitter: Duration::ZERO,
        });
        assert_eq!(
            l,
            Some(ConnCommand::Link(LinkParams {
                delay: Duration::from_millis(50),
                ..Default::default()
            }))
        );
        s.apply(&Fault::Bandwidth { bytes_per_sec: 100 });
        assert_eq!(s.link().bytes_per_sec, 100);
        assert_eq!(s.link().delay, Duration::from_millis(50));
        assert_eq!(
            s.apply(&Fault::Clear),
            Some(ConnCommand::Clear(LinkParams::default()))
        );
        assert_eq!(s.on_frame(Dir::ToBroker, Publish), Decision::Forward);
    }

    #[test]
    fn blackhole_refuse_flags() {
        let mut s = FaultState::new();
        assert_eq!(
            s.apply(&Fault::Heal),
            None,
            "heal without an outage does nothing"
        );
        assert_eq!(s.apply(&Fault::Blackhole), Some(ConnCommand::Blackhole));
        assert!(s.blackholed());
        // Clear leaves the outage alone.
        s.apply(&Fault::Clear);
        assert!(s.blackholed());
        assert_eq!(s.apply(&Fault::Heal), Some(ConnCommand::Heal));
        assert!(!s.blackholed());
        assert_eq!(s.apply(&Fault::Refuse), None);
        assert!(s.refusing());
        s.apply(&Fault::Accept);
        assert!(!s.refusing());
        assert_eq!(s.apply(&Fault::Sever), Some(ConnCommand::Sever));
        assert_eq!(s.apply(&Fault::Close), Some(ConnCommand::Close));
        assert_eq!(s.apply(&Fault::Release), Some(ConnCommand::Release));
    }

    #[test]
    fn names() {
        assert_eq!(Fault::Sever.name(), "sever");
        assert_eq!(Fault::Blackhole.name(), "blackhole");
        assert_eq!(
            rule(Some(Dir::ToBroker), PubRec, 1, RuleAction::Drop, 1).name(),
            "drop 1st PUBREC to_broker"
        );
        assert_eq!(
            rule(None, Publish, 2, RuleAction::Hold, 3).name(),
            "hold 2nd PUBLISH x3"
        );
        assert_eq!(
            rule(
                Some(Dir::ToClient),
                PubAck,
                11,
                RuleAction::Delay(Duration::from_secs(2)),
                1
            )
            .name(),
            "delay 11th PUBACK to_client by 2s"
        );
        assert_eq!(
            rule(None, PubComp, 23, RuleAction::Duplicate, 1).name(),
            "duplicate 23rd PUBCOMP"
        );
        assert_eq!(
            Fault::Bandwidth { bytes_per_sec: 0 }.name(),
            "bandwidth unlimited"
        );
        assert_eq!(
            Fault::Bandwidth {
                bytes_per_sec: 1000
            }
            .name(),
            "bandwidth 1000 B/s"
        );
        let l = Fault::Latency {
            delay: Duration::from_millis(200),
            jitter: Duration::from_millis(50),
        };
        assert!(l.name().starts_with("latency "), "{}", l.name());
    }
}
