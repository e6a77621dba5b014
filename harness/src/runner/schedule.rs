//! Which scenario a pool starts first: the longest expected ones
//! (longest-processing-time-first). With 8 places and 42 scenarios, a
//! 9 s scenario started last finishes 9 s after everything else; started
//! first, it runs beside the short ones. Only the start order changes:
//! reports keep the scenarios' order ([`super::pool`]).
//!
//! The duration is estimated from what the scenario declares, not from an
//! earlier run's timings: a fresh clone, CI and `make bench` (a temporary
//! folder each time) have no earlier run, and a start order that follows
//! the scenario files alone is the same on every run and every machine,
//! so a run can be repeated exactly as it was scheduled. Scenarios spend
//! their time waiting on timers the file names — a `wait`, the whole
//! `within` of a `no_message`, a packet `delay`, a keep alive the broker
//! must see expire (1.5 x), a reconnect backoff, a board's boot — and
//! almost none on the harness's own work, so the timers rank them well.
//!
//! [`expected`] is a pure function of the loaded scenario and the target;
//! the numbers it uses for what the file does not state (a board's boot,
//! a broker's restart, the quiet period after each step) are this
//! machine's measurements, good enough to rank, not to predict.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proxy::{Fault, RuleAction};
use crate::scenario::{Action, BoardAction, ClientAction, Expect, Scenario};
use crate::target::TargetSpec;

/// What a run of `scenario` on `target` is expected to take: start-up,
/// every step's declared or implied wait, the quiet period after each
/// step, at most the scenario's own timeout.
pub fn expected(scenario: &Scenario, target: &TargetSpec) -> Duration {
    let costs = Costs::of(target);
    // Keep alive (seconds) and reconnect backoff ceiling per actor, as
    // declared; a connect step may change the keep alive.
    let mut keepalive: BTreeMap<&str, u16> = BTreeMap::new();
    let mut backoff: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut silent: BTreeMap<&str, bool> = BTreeMap::new();
    let actors = scenario
        .device
        .iter()
        .map(|c| ("device", c))
        .chain(scenario.observers.iter().map(|(n, c)| (n.as_str(), c)));
    for (name, c) in actors {
        keepalive.insert(name, c.connect.keepalive);
        silent.insert(name, !c.pings);
        if let Some(r) = &c.reconnect {
            backoff.insert(name, r.max);
        }
    }
    // A timer the protocol runs out on its own: the time the next expect
    // waits for it (a late packet, a broker noticing a silent client, a
    // reconnect after its backoff).
    let mut now = costs.setup;
    let mut due: Option<Duration> = None;
    let arm = |due: &mut Option<Duration>, at: Duration| {
        *due = Some(due.map_or(at, |d| d.max(at)));
    };
    // Broker's keep alive grace: it closes a silent connection after
    // 1.5 x the keep alive [MQTT-3.1.2-24].
    let expiry = |k: u16| Duration::from_millis(u64::from(k) * 1500);
    let device = scenario.autonomous.is_some() || scenario.device.is_some();
    for step in &scenario.steps {
        match &step.action {
            Action::Wait(d) => now += *d,
            Action::Expect(e) => match &e.what {
                Expect::NoMessage { .. } => now += e.within,
                _ => {
                    if let Some(at) = due.take() {
                        now += at.saturating_sub(now).min(e.within);
                    }
                }
            },
            Action::Client { actor, action } => match action {
                ClientAction::Connect { keepalive: k, .. } => {
                    if let Some(k) = k {
                        keepalive.insert(actor, *k);
                    }
                    let k = keepalive.get(actor.as_str()).copied().unwrap_or(0);
                    if silent.get(actor.as_str()).copied().unwrap_or(false) && k > 0 {
                        arm(&mut due, now + expiry(k));
                    }
                }
                ClientAction::Reboot => now += costs.boot,
                _ => {}
            },
            Action::Net { actor, fault } => match fault {
                Fault::Blackhole => {
                    let k = keepalive.get(actor.as_str()).copied().unwrap_or(0);
                    if k > 0 {
                        arm(&mut due, now + expiry(k));
                    }
                }
                Fault::Heal | Fault::Accept => {
                    if let Some(b) = backoff.get(actor.as_str()) {
                        arm(&mut due, now + *b);
                    }
                }
                Fault::Latency { delay, jitter } => arm(&mut due, now + *delay + *jitter),
                Fault::Rule(r) => {
                    if let RuleAction::Delay(d) = r.action {
                        arm(&mut due, now + d);
                    }
                }
                _ => {}
            },
            Action::Network { fault, .. } => {
                if matches!(fault, crate::net::NetFault::Wifi(_)) && device {
                    // Off: the broker notices the silent device; on: the
                    // board joins again and reconnects.
                    let k = keepalive.get("device").copied().unwrap_or(0);
                    let b = backoff.get("device").copied().unwrap_or_default();
                    arm(&mut due, now + expiry(k).max(b));
                }
            }
            Action::Board(BoardAction::Reset | BoardAction::PowerCycle) => now += costs.boot,
            Action::Broker(what) => {
                if what.contains("restart") || what == "start" {
                    now += costs.broker_restart;
                }
            }
        }
        now += costs.quiet;
    }
    (now + costs.teardown).min(scenario.timeout + costs.setup + costs.teardown)
}

/// The start order for jobs expected to take `expected[k]`: longest
/// first; equal ones keep their order, so the order depends on the
/// scenarios alone.
pub fn longest_first(expected: &[Duration]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..expected.len()).collect();
    // A stable sort: ties stay in index order.
    order.sort_by(|a, b| expected[*b].cmp(&expected[*a]));
    order
}

/// What the scenario file does not state, per target (measured on the
/// project's 2-core machine, `make bench`'s per-scenario split).
struct Costs {
    /// Broker start, device start (a board's boot), first connects.
    setup: Duration,
    /// A board reset or power cycle until the device is up again.
    boot: Duration,
    broker_restart: Duration,
    /// The silence the runner waits for after each step (`quiesce`).
    quiet: Duration,
    teardown: Duration,
}

impl Costs {
    fn of(target: &TargetSpec) -> Costs {
        let ms = Duration::from_millis;
        match target {
            TargetSpec::Virtual => Costs {
                setup: ms(100),
                boot: ms(50),
                broker_restart: ms(300),
                quiet: ms(60),
                teardown: ms(50),
            },
            TargetSpec::Host => Costs {
                setup: ms(200),
                boot: ms(100),
                broker_restart: ms(300),
                quiet: ms(60),
                teardown: ms(50),
            },
            TargetSpec::Qemu | TargetSpec::Serial(_) => Costs {
                setup: ms(1000),
                boot: ms(1000),
                broker_restart: ms(300),
                quiet: ms(200),
                teardown: ms(100),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn est(text: &str, target: &TargetSpec) -> Duration {
        let s = crate::scenario::parse(Path::new("t.toml"), text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        expected(&s, target)
    }

    fn virt(text: &str) -> Duration {
        est(text, &TargetSpec::Virtual)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The quiet period after a step: a timer armed by a step runs while
    /// it passes, so what is left to wait for is that much shorter.
    fn quiet() -> Duration {
        Costs::of(&TargetSpec::Virtual).quiet
    }

    /// Two versions of one scenario that differ in one timer: the
    /// difference of their estimates.
    fn diff(text: &str, from: &str, to: &str) -> Duration {
        assert!(text.contains(from), "{from}");
        virt(&text.replace(from, to)).saturating_sub(virt(text))
    }

    #[test]
    fn a_wait_and_a_no_message_count_whole_an_expect_only_its_timer() {
        let wait = "name = \"w\"\n[[step]]\nwait = \"1s\"\n";
        assert_eq!(diff(wait, "\"1s\"", "\"6s\""), ms(5000));
        let quiet = "name = \"q\"\n[observer.a]\n[[step]]\nexpect = \"no_message\"\nactor = \"a\"\nwithin = \"500ms\"\n";
        assert_eq!(diff(quiet, "\"500ms\"", "\"1500ms\""), ms(1000));
        // Nothing armed: the message comes when it comes, `within` is
        // only how long the step may wait for it.
        let msg = "name = \"m\"\n[observer.a]\n[[step]]\nexpect = \"message\"\nactor = \"a\"\nwithin = \"1s\"\n";
        assert_eq!(diff(msg, "\"1s\"", "\"20s\""), Duration::ZERO);
    }

    #[test]
    fn a_blackhole_costs_the_keep_alive_the_broker_must_see_expire() {
        let s = "name = \"b\"
[device]
keepalive = 2
will = { topic = \"s\", payload = \"offline\" }
[observer.cloud]
[[step]]
device = \"connect\"
[[step]]
net = \"blackhole\"
[[step]]
expect = \"message\"
actor = \"cloud\"
topic = \"s\"
within = \"10s\"
";
        // 1.5 x 2 s; no keep alive, nothing to wait for.
        assert_eq!(
            virt(s) - virt(&s.replace("keepalive = 2", "keepalive = 0")),
            ms(3000) - quiet()
        );
        // At most the expect's `within`: 1.5 x 20 s is past it.
        assert_eq!(
            diff(s, "keepalive = 2", "keepalive = 20"),
            ms(10000) - (ms(3000) - quiet())
        );
    }

    #[test]
    fn a_delayed_packet_costs_its_delay() {
        let s = "name = \"d\"
[device]
[observer.cloud]
[[step]]
device = \"connect\"
[[step]]
net = \"delay\"
packet = \"PUBACK\"
dir = \"to_broker\"
delay = \"1s\"
[[step]]
expect = \"packet\"
packet = \"PUBACK\"
dir = \"to_broker\"
within = \"12s\"
";
        assert_eq!(diff(s, "delay = \"1s\"", "delay = \"7s\""), ms(6000));
        assert_eq!(
            diff(s, "delay = \"1s\"", "delay = \"30s\""),
            ms(12000) - (ms(1000) - quiet())
        );
    }

    #[test]
    fn a_silent_client_costs_its_keep_alive_a_pinging_one_nothing() {
        let s = "name = \"k\"
[observer.lazy]
keepalive = 2
pings = false
connect = false
[[step]]
observer.lazy = \"connect\"
[[step]]
expect = \"closed\"
actor = \"lazy\"
by = \"broker\"
within = \"15s\"
";
        let pinging = virt(&s.replace("pings = false", "pings = true"));
        assert_eq!(virt(s) - pinging, ms(3000) - quiet());
        // The connect step's keep alive is the one the broker sees.
        let step = s.replace(
            "observer.lazy = \"connect\"",
            "observer.lazy = \"connect\"\nkeepalive = 4",
        );
        assert_eq!(virt(&step) - pinging, ms(6000) - quiet());
    }

    #[test]
    fn a_timer_that_ran_out_during_a_wait_is_not_waited_for_again() {
        // scenarios/reconnect_after_heal.toml: the broker's 3 s expiry is
        // over during the 5 s wait; after the heal only the backoff is left.
        let s = "name = \"r\"
[device]
keepalive = 2
reconnect = true
backoff = \"250ms\"
backoff_max = \"500ms\"
[[step]]
device = \"connect\"
[[step]]
net = \"blackhole\"
[[step]]
wait = \"5s\"
[[step]]
net = \"heal\"
[[step]]
expect = \"connected\"
within = \"4s\"
";
        assert_eq!(
            diff(s, "backoff_max = \"500ms\"", "backoff_max = \"2s\""),
            ms(1500)
        );
        let no_backoff = "name = \"r\"\n[device]\n[[step]]\ndevice = \"connect\"\n[[step]]\nwait = \"5s\"\n[[step]]\nwait = \"0s\"\n[[step]]\nwait = \"0s\"\n[[step]]\nwait = \"0s\"\n";
        assert_eq!(virt(s) - virt(no_backoff), ms(500) - quiet());
    }

    #[test]
    fn a_board_reset_costs_a_boot_on_the_board() {
        let s =
            "name = \"b\"\n[device]\n[[step]]\ndevice = \"connect\"\n[[step]]\nboard = \"reset\"\n";
        let waiting = s.replace("board = \"reset\"", "wait = \"0s\"");
        let q = TargetSpec::Qemu;
        assert!(est(s, &q) - est(&waiting, &q) >= ms(900));
        assert!(est(s, &q) - est(&waiting, &q) > virt(s) - virt(&waiting));
    }

    #[test]
    fn no_longer_than_the_scenario_may_take() {
        let s =
            "name = \"t\"\ntimeout = \"5s\"\n[[step]]\nwait = \"4s\"\n[[step]]\nwait = \"4s\"\n";
        let q = TargetSpec::Qemu;
        let c = Costs::of(&q);
        assert_eq!(est(s, &q), ms(5000) + c.setup + c.teardown);
    }

    #[test]
    fn longest_first_ties_keep_their_order() {
        let d = |s: &[u64]| s.iter().map(|n| ms(*n)).collect::<Vec<_>>();
        assert_eq!(longest_first(&d(&[1, 5, 3, 5, 0])), vec![1, 3, 2, 0, 4]);
        assert_eq!(longest_first(&d(&[2, 2, 2])), vec![0, 1, 2]);
        assert_eq!(longest_first(&[]), Vec::<usize>::new());
    }

    /// The suite `make bench` measures: the scenarios that wait on 7 s
    /// delays, a 7 s cadence and a 6 s refusal start before the ones that
    /// wait on nothing.
    #[test]
    fn the_suites_long_scenarios_start_first() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let files = crate::scenario::discover(&[dir]).unwrap();
        let suite: Vec<Scenario> = files
            .iter()
            .flat_map(|f| crate::scenario::load(f).unwrap().per_version())
            .collect();
        for target in [TargetSpec::Virtual, TargetSpec::Qemu] {
            let e: Vec<Duration> = suite.iter().map(|s| expected(s, &target)).collect();
            let order: Vec<&str> = longest_first(&e)
                .into_iter()
                .map(|k| suite[k].id.as_str())
                .collect();
            let at = |id: &str| order.iter().position(|o| *o == id).unwrap();
            for long in [
                "qos1_acks_delayed_7s",
                "qos2_acks_delayed_7s_to_broker",
                "qos2_acks_delayed_7s_to_client",
                "keepalive_cadence",
                "reconnect_after_heal",
                "backoff_when_refused",
            ] {
                assert!(
                    at(long) < 8,
                    "{target}: {long} at {} in {order:?}",
                    at(long)
                );
            }
            for short in ["qos0_delivery", "qos1_delivery", "local_subscription"] {
                assert!(
                    at(short) >= 8,
                    "{target}: {short} at {} in {order:?}",
                    at(short)
                );
            }
        }
    }
}
