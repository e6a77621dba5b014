//! The result of one scenario: its status, why it failed, the checkers'
//! verdicts and the history they judged.

use std::time::Duration;

use crate::check::Verdict;
use crate::history::{EventKind, History};
use crate::scenario::{duration, Action, ClientAction, Expect, Scenario};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    /// The scenario could not run here (e.g. it needs a broker the harness
    /// controls); reported, never counted as a pass.
    Skipped(String),
    /// The environment broke (broker would not start, ...).
    Error(String),
    /// Failed exactly as the broker's known deviations say it does.
    Deviation(String),
    /// Failed because the broker lacks a convention outside MQTT 3.1.1
    /// (`$share/`, `$queue/`, `$local/`) the scenario uses: declared so in
    /// its profile, or measured (nothing was delivered through it).
    /// Counts as passed, like a deviation.
    Unsupported(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepFailure {
    pub step: usize,
    pub line: usize,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub id: String,
    pub name: String,
    pub path: std::path::PathBuf,
    pub status: Status,
    pub failures: Vec<StepFailure>,
    pub verdicts: Vec<Verdict>,
    pub history: History,
    pub duration: Duration,
}

impl Outcome {
    fn base(s: &Scenario, status: Status, history: History) -> Outcome {
        Outcome {
            id: s.id.clone(),
            name: s.name.clone(),
            path: s.path.clone(),
            status,
            failures: Vec::new(),
            verdicts: Vec::new(),
            history,
            duration: Duration::ZERO,
        }
    }

    pub fn skipped(s: &Scenario, why: String) -> Outcome {
        Outcome::base(s, Status::Skipped(why), History::default())
    }

    pub fn error(s: &Scenario, why: String, history: History) -> Outcome {
        Outcome::base(s, Status::Error(why), history)
    }

    pub fn finished(
        s: &Scenario,
        failure: Option<StepFailure>,
        end_failures: Vec<StepFailure>,
        verdicts: Vec<Verdict>,
        history: History,
        duration: Duration,
    ) -> Outcome {
        let mut failures: Vec<StepFailure> = failure.into_iter().collect();
        failures.extend(end_failures);
        name_broken_rules(s, &history, &verdicts, &mut failures);
        let ok = failures.is_empty() && verdicts.iter().all(Verdict::ok);
        Outcome {
            failures,
            verdicts,
            duration,
            ..Outcome::base(s, if ok { Status::Passed } else { Status::Failed }, history)
        }
    }

    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }

    /// Passed, or failed only as the broker is known to.
    pub fn acceptable(&self) -> bool {
        matches!(
            self.status,
            Status::Passed | Status::Deviation(_) | Status::Unsupported(_)
        )
    }

    /// Every reason this scenario failed, one per line, for terminals and JUnit.
    pub fn failure_text(&self) -> String {
        let mut lines = Vec::new();
        if let Status::Error(e)
        | Status::Skipped(e)
        | Status::Deviation(e)
        | Status::Unsupported(e) = &self.status
        {
            lines.push(e.clone());
        }
        for f in &self.failures {
            if f.step == 0 {
                lines.push(f.message.clone());
            } else {
                lines.push(format!(
                    "step {} ({}:{}): {}",
                    f.step,
                    self.path.display(),
                    f.line,
                    f.message
                ));
            }
        }
        for v in self.verdicts.iter().filter(|v| !v.ok()) {
            for viol in &v.violations {
                let evs: Vec<String> = viol.events.iter().map(|e| format!("#{e}")).collect();
                lines.push(format!(
                    "{} [{}]: {} (events {})",
                    v.checker,
                    viol.rule,
                    viol.message,
                    evs.join(", ")
                ));
            }
        }
        lines.join("\n")
    }
}

/// A step that failed because a peer broke a rule says which: each
/// violation with an event between the action the failed step follows (an
/// expectation is judged from the last action) and the end of the failed
/// step is named in the step's message, with its rule and events — "0 of 3
/// SUBACK" then reads as the consequence of the SUBSCRIBE the codec
/// rejected [MQTT-2.3.1-1].
pub fn name_broken_rules(
    s: &Scenario,
    history: &History,
    verdicts: &[Verdict],
    failures: &mut [StepFailure],
) {
    let step_seq = |index: usize| {
        history.events.iter().find_map(|ev| match &ev.kind {
            EventKind::Step { index: i, .. } if *i == index => Some(ev.seq),
            _ => None,
        })
    };
    for f in failures.iter_mut().filter(|f| f.step > 0) {
        let anchor = s
            .steps
            .iter()
            .take(f.step.saturating_sub(1))
            .rev()
            .find(|st| !matches!(st.action, Action::Expect(_) | Action::Wait(_)))
            .map_or(f.step, |st| st.index);
        let Some(from) = step_seq(anchor).or_else(|| step_seq(f.step)) else {
            continue;
        };
        let to = history
            .events
            .iter()
            .find_map(|ev| match &ev.kind {
                EventKind::Step { index, .. } if *index > f.step => Some(ev.seq),
                EventKind::Teardown => Some(ev.seq),
                _ => None,
            })
            .unwrap_or(u64::MAX);
        let causes: Vec<String> = verdicts
            .iter()
            .flat_map(|v| v.violations.iter().map(move |x| (v.checker.as_str(), x)))
            .filter(|(_, x)| x.events.iter().any(|&e| e >= from && e < to))
            .map(|(checker, x)| {
                let evs: Vec<String> = x.events.iter().map(|e| format!("#{e}")).collect();
                format!("{checker} [{}] {} ({})", x.rule, x.message, evs.join(", "))
            })
            .take(3)
            .collect();
        if !causes.is_empty() {
            f.message = format!(
                "{} — following from a broken rule: {}",
                f.message,
                causes.join("; ")
            );
        }
    }
}

/// Message expectations without `at_least` promise an exact count: after
/// the run, matching deliveries from the step on must not exceed it.
pub fn recheck_counts(s: &Scenario, history: &History) -> Vec<StepFailure> {
    let mut out = Vec::new();
    for step in &s.steps {
        let Action::Expect(e) = &step.action else {
            continue;
        };
        let Expect::Message {
            topic,
            payload,
            count,
            at_least: false,
            ..
        } = &e.what
        else {
            continue;
        };
        // Counted from the action the expectation follows, as when it waited.
        let anchor = s.steps[..step.index - 1]
            .iter()
            .rev()
            .find(|st| !matches!(st.action, Action::Expect(_) | Action::Wait(_)))
            .map_or(0, |st| st.index);
        let Some(start) = history
            .events
            .iter()
            .position(|ev| matches!(&ev.kind, EventKind::Step { index, .. } if *index == anchor))
        else {
            continue;
        };
        let n = history.events[start..]
            .iter()
            .filter(|ev| super::expect::delivered_matches(ev, &e.actor, topic, payload))
            .count();
        if n > *count as usize {
            out.push(StepFailure {
                step: step.index,
                line: step.line,
                message: format!(
                    "{} received {n} matching messages by the end of the run, expected exactly {count} (write at_least = true if more are fine)",
                    e.actor
                ),
            });
        }
    }
    out
}

/// One line per step, for the history and the trace.
pub fn summarize(a: &Action) -> String {
    match a {
        Action::Client { actor, action } => match action {
            ClientAction::Connect {
                clean_session,
                keepalive,
                session_present,
                ..
            } => {
                let mut s = format!("{actor} connect");
                if let Some(c) = clean_session {
                    s += &format!(" clean_session={c}");
                }
                if let Some(k) = keepalive {
                    s += &format!(" keepalive={k}");
                }
                if let Some(sp) = session_present {
                    s += &format!(" expecting session_present={sp}");
                }
                s
            }
            ClientAction::Subscribe {
                filter,
                qos,
                options,
                properties,
            } => {
                let mut s = format!("{actor} subscribe {filter} qos={}", qos.as_u8());
                if *options != 0 {
                    s += &format!(" options=0x{options:02x}");
                }
                s + &crate::mqtt::props::render_trace(properties, false)
            }
            ClientAction::Unsubscribe { filter } => format!("{actor} unsubscribe {filter}"),
            ClientAction::Publish {
                topic,
                payload,
                qos,
                retain,
                pid,
                repeat,
                properties,
                raw,
            } => {
                let mut s = format!(
                    "{actor} publish {topic} {:?} qos={}",
                    String::from_utf8_lossy(payload),
                    qos.as_u8()
                );
                if *retain {
                    s += " retain";
                }
                if let Some(p) = pid {
                    s += &format!(" pid={p}");
                }
                if *repeat > 1 {
                    s += &format!(" x{repeat}");
                }
                if *raw {
                    s += " raw";
                }
                s + &crate::mqtt::props::render_trace(properties, false)
            }
            ClientAction::Disconnect => format!("{actor} disconnect"),
            ClientAction::DisconnectWith { code, properties } => format!(
                "{actor} disconnect rc=0x{code:02x}{}",
                crate::mqtt::props::render_trace(properties, false)
            ),
            ClientAction::Drop => format!("{actor} drop"),
            ClientAction::Reboot => format!("{actor} reboot"),
            ClientAction::Acks(p) => format!("{actor} acks {p:?}"),
            ClientAction::Release(pid) => format!("{actor} release pid={pid}"),
        },
        Action::Net { actor, fault } => format!("net {} on {actor}", fault.name()),
        Action::Network { fault, .. } => format!("{} on device", fault.name()),
        Action::Broker(w) => format!("broker {w}"),
        Action::Board(crate::scenario::BoardAction::Reset) => "board reset".into(),
        Action::Board(crate::scenario::BoardAction::PowerCycle) => "board power_cycle".into(),
        Action::Wait(d) => format!("wait {}", duration::format(*d)),
        Action::Expect(e) => format!("expect {}", describe_expect(&e.actor, &e.what)),
    }
}

pub fn describe_expect(actor: &str, e: &Expect) -> String {
    match e {
        Expect::Message {
            topic,
            payload,
            count,
            at_least,
            ..
        } => format!(
            "{actor} receives {}{count} message(s){}{}",
            if *at_least { "at least " } else { "" },
            topic
                .as_ref()
                .map(|t| format!(" on {t}"))
                .unwrap_or_default(),
            payload
                .as_ref()
                .map(|p| format!(" {:?}", String::from_utf8_lossy(p)))
                .unwrap_or_default()
        ),
        Expect::NoMessage { topic, .. } => format!(
            "{actor} receives nothing{}",
            topic
                .as_ref()
                .map(|t| format!(" on {t}"))
                .unwrap_or_default()
        ),
        Expect::Connected { session_present } => format!(
            "{actor} connected{}",
            session_present
                .map(|s| format!(" session_present={s}"))
                .unwrap_or_default()
        ),
        Expect::Refused => format!("{actor} refused"),
        Expect::Uart { contains } => format!("{actor} prints a line with {contains:?}"),
        Expect::Published {
            topic,
            payload,
            count,
            ..
        } => format!(
            "{actor} publishes at least {count} message(s){}{}",
            topic
                .as_ref()
                .map(|t| format!(" on {t}"))
                .unwrap_or_default(),
            payload
                .as_ref()
                .map(|p| format!(" {:?}", String::from_utf8_lossy(p)))
                .unwrap_or_default()
        ),
        Expect::Packet {
            packet, dir, count, ..
        } => format!(
            "{count} {packet}{} on {actor}'s connection",
            match dir {
                Some(crate::history::Dir::ToBroker) => " to broker",
                Some(crate::history::Dir::ToClient) => " to client",
                None => "",
            }
        ),
        Expect::Board { event, count } => format!("{count} board event(s) `{event}`"),
        Expect::Closed { by } => format!(
            "{actor} connection closed{}",
            by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default()
        ),
    }
}
