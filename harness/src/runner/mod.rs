//! Runs scenarios: starts the broker, the proxy lanes, the device and the
//! observers; executes the steps, each bounded by its timeout; then judges
//! the recorded history with the checkers. Everything it starts is stopped
//! again on every path out, including timeouts.

pub mod convention;
pub mod deviation;
pub mod expect;
pub mod max_qos;
mod outcome;
mod owed;
pub mod peer;
pub mod pool;
pub mod repeat;
mod reported;
pub mod schedule;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

pub use outcome::{name_broken_rules, Outcome, Status, StepFailure};
pub use reported::{report_interrupted, report_skipped, run_repeated, run_reported};

use crate::broker::{Broker, BrokerSpec};
use crate::check::{self, Checker};
use crate::client::actor::{spawn_client, ActorHandle};
use crate::client::{ClientEvent, Command};
use crate::history::{EventKind, Recorder};
use crate::proxy::{Fault, Hub, Lane};
use crate::scenario::{Action, ClientAction, ClientSpec, Expect, Scenario, Step};
use crate::target::autonomous::AutonomousDevice;
use crate::target::{Device, TargetSpec};
use expect::Progress;

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub broker: BrokerSpec,
    pub target: TargetSpec,
    /// Where brokers keep their files; a fresh folder per scenario below it.
    pub workdir: std::path::PathBuf,
    pub firmware: crate::target::Firmware,
    /// The broker's profile file: known deviations and, for an external
    /// broker, declared capabilities and control hooks.
    pub deviations: deviation::Deviations,
}

impl RunConfig {
    /// What the broker offers, built in and as its profile file declares.
    pub fn profile(&self) -> crate::broker::Profile {
        self.deviations.profile_of(&self.broker)
    }
}

/// How long a bench board's black box is given after its reset before its
/// lane opens (see `World::start`).
const BENCH_RESET_SETTLE: Duration = Duration::from_millis(500);

/// Stands for the device's client id in topics and payloads of steps.
pub const CLIENT_ID: &str = "{client_id}";

/// Runs one scenario to its verdict. Never hangs: the scenario's own timeout
/// bounds everything, teardown included.
pub async fn run(scenario: &Scenario, cfg: &RunConfig) -> Outcome {
    run_recorded(scenario, cfg, Recorder::new()).await
}

/// [`run`] into a recorder the caller made, so it can subscribe to the live
/// history first.
pub async fn run_recorded(scenario: &Scenario, cfg: &RunConfig, recorder: Recorder) -> Outcome {
    let started = Instant::now();
    if let Err(e) = check_target(scenario, &cfg.target) {
        return Outcome::error(scenario, e.to_string(), recorder.snapshot());
    }
    if let Some(missing) = unmet_requirement(scenario, cfg) {
        return Outcome::skipped(scenario, missing);
    }
    let dir = cfg.workdir.join(&scenario.id);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Outcome::error(
            scenario,
            format!("cannot create {}: {e}", dir.display()),
            recorder.snapshot(),
        );
    }
    // Setting up (the broker's readiness, the board's boot, the observers'
    // connects) waits on peers too: it has the scenario's timeout as well,
    // and whatever it started is stopped when it fails.
    let setup_deadline = started + scenario.timeout;
    let timed_out = || {
        format!(
            "setting up did not finish within the scenario's timeout of {}",
            crate::scenario::duration::format(scenario.timeout)
        )
    };
    let broker = tokio::time::timeout_at(
        setup_deadline,
        Broker::start(
            &cfg.broker,
            &dir,
            cfg.deviations.hook_context(&dir),
            crate::broker::Tenure::of(scenario),
        ),
    )
    .await;
    let broker = match broker {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return setup_error(scenario, e.to_string(), &recorder, started),
        Err(_) => return setup_error(scenario, timed_out(), &recorder, started),
    };
    let mut world = World::new(scenario, cfg, broker, &recorder);
    let prepared = tokio::time::timeout_at(
        setup_deadline,
        world.prepare(scenario, cfg, &dir, setup_deadline),
    )
    .await;
    if let Some(e) = match prepared {
        Ok(r) => r.err(),
        Err(_) => Some(timed_out()),
    } {
        world.stop().await;
        return setup_error(scenario, e, &recorder, started);
    }
    let steps = tokio::time::timeout(scenario.timeout, world.run_steps(scenario));
    let failure = match steps.await {
        Ok(r) => r.err(),
        Err(_) => Some(StepFailure {
            step: 0,
            line: 0,
            message: format!(
                "the scenario did not finish within its timeout of {}",
                crate::scenario::duration::format(scenario.timeout)
            ),
        }),
    };
    recorder.record(EventKind::Teardown);
    world.stop().await;
    let history = recorder.snapshot();
    let mut checkers: Vec<Box<dyn Checker>> = check::always();
    checkers.extend(scenario.invariants.iter().map(|i| check::build(&i.spec)));
    let verdicts = checkers.iter().map(|c| c.check(&history)).collect();
    let end_failures = outcome::recheck_counts(scenario, &history);
    let o = Outcome::finished(
        scenario,
        failure,
        end_failures,
        verdicts,
        history,
        started.elapsed(),
    );
    let profile = cfg.profile();
    max_qos::judge(
        convention::judge(cfg.deviations.apply(o), &profile),
        &profile,
    )
}

fn setup_error(
    scenario: &Scenario,
    message: String,
    recorder: &Recorder,
    started: Instant,
) -> Outcome {
    let mut o = Outcome::error(scenario, message, recorder.snapshot());
    o.duration = started.elapsed();
    o
}

/// How long an observer's connect before the first step may wait for its
/// CONNACK, as a `connect` step may by default.
const SETUP_CONNECT: Duration = Duration::from_secs(10);

/// Past a step's own deadline, how long the runner lets the step's waits
/// report what they were waiting for before it cuts the step itself.
const STEP_GRACE: Duration = Duration::from_millis(250);

/// How long a step waits, at most, for an answer or a resend it made owed
/// once the wire has gone quiet (see `World::quiesce`). Under load (tests
/// at four per CPU on two cores, each with a QEMU board) answers on the
/// emulated board's pty path have come more than a second late; five is
/// well past that, and short enough that a peer that never answers (a
/// seeded bug, a hostile broker, a broker that does not resend) costs a
/// failing or deviating run a few seconds, not its step's whole timeout.
const OWED_PATIENCE: Duration = Duration::from_secs(5);

/// Whether an event is traffic for [`World::quiesce`]: packets other than
/// pings (whose number follows the clock), deliveries, connections opening
/// and closing, and a board's data frames.
fn moves(ev: &crate::history::Event) -> bool {
    match &ev.kind {
        EventKind::Packet { packet, .. } => !matches!(
            packet.packet_type(),
            crate::mqtt::PacketType::PingReq | crate::mqtt::PacketType::PingResp
        ),
        EventKind::Delivered { .. }
        | EventKind::ConnOpened { .. }
        | EventKind::ConnClosed { .. } => true,
        EventKind::Frame { data, .. } => crate::net::wire::carries_mqtt_data(data),
        _ => false,
    }
}

/// What a scenario asks of its target that the target can never do, as
/// an error at the file and line of the step (checked before anything
/// starts, by `mqtt-hil run` for every file and by [`run`]): a `wifi` step
/// needs a board with a radio the harness controls — the emulated board.
/// A virtual device and the host build have no radio; a bench board's
/// radio is its own (its access point is not the harness's).
pub fn check_target(
    scenario: &Scenario,
    target: &TargetSpec,
) -> std::result::Result<(), crate::error::Error> {
    if *target == TargetSpec::Qemu {
        return Ok(());
    }
    for (step, fault, line) in scenario.network_steps() {
        if fault.needs_radio() {
            return Err(crate::error::Error::Input {
                file: scenario.path.clone(),
                line,
                message: format!(
                    "step {}: field `wifi`: `{}` needs the board's radio, and --target {target} \
                     has none the harness controls (a virtual device and the host build have no \
                     radio; a bench board's is on its own access point): run it with --target qemu",
                    step.index,
                    fault.name()
                ),
            });
        }
    }
    Ok(())
}

/// Why the network steps of a scenario cannot be carried out here (they
/// are then skipped with this reason, never faked).
fn network_unavailable(scenario: &Scenario, cfg: &RunConfig) -> Option<String> {
    let (step, fault, line) = scenario.network_steps().next()?;
    let what = format!("step {} (line {line}, `{}`)", step.index, fault.name());
    if cfg.target != TargetSpec::Qemu {
        return Some(format!(
            "{what} acts on the emulated board's own network, which --target {} does not have: \
             run it with --target qemu",
            cfg.target
        ));
    }
    if cfg.firmware.net.mode == crate::net::NetMode::Slirp {
        return Some(format!(
            "{what} needs the harness's own network, and --net slirp (QEMU's user network) \
             cannot do network faults: run it with --net owned (the default)"
        ));
    }
    None
}

/// Whether [`run`] would start a broker for `scenario` (it is neither
/// refused by its target nor skipped for a missing capability): what a
/// matrix starts ahead of need.
pub fn starts_broker(scenario: &Scenario, cfg: &RunConfig) -> bool {
    check_target(scenario, &cfg.target).is_ok() && unmet_requirement(scenario, cfg).is_none()
}

fn unmet_requirement(scenario: &Scenario, cfg: &RunConfig) -> Option<String> {
    if let Some(why) = network_unavailable(scenario, cfg) {
        return Some(why);
    }
    let profile = cfg.profile();
    let v5 = |c: &crate::scenario::ClientSpec| c.connect.version == crate::mqtt::Version::V5;
    // The agent runs 5.0 scenarios on host and on the emulated board
    // (tests/firmware.rs, `v5_on_agent`); a real board on a serial port is
    // not verified yet.
    let agent_v5_verified = matches!(
        cfg.target,
        TargetSpec::Virtual | TargetSpec::Host | TargetSpec::Qemu
    );
    if scenario.device.as_ref().is_some_and(v5) && !agent_v5_verified {
        return Some(format!(
            "the device speaks MQTT 5.0 here; the firmware's agent does too \
             (firmware/agent/PROTOCOL.md), verified on --target host and qemu, not yet on --target {}: \
             run 5.0 scenarios with --target host, qemu or virtual",
            cfg.target
        ));
    }
    if (scenario.device.as_ref().is_some_and(v5) || scenario.observers.values().any(v5))
        && !profile.offers("mqtt5")
    {
        return Some(format!(
            "needs MQTT 5.0, which broker {} does not speak (its profile)",
            cfg.broker
        ));
    }
    // A 5.0 broker announces the QoS it grants; publishing above it is the
    // client's Protocol Error (MQTT 5.0, 3.2.2.3.4), so such a run would
    // judge the scenario, not the broker.
    if (scenario.device.as_ref().is_some_and(v5) || scenario.observers.values().any(v5))
        && profile.max_qos5 < 2
    {
        if let Some(what) = scenario.needs_qos2() {
            return Some(format!(
                "needs QoS 2: {what}, and broker {} grants at most QoS {} over MQTT 5.0 (Maximum QoS in its CONNACK; profile `{}`)",
                cfg.broker, profile.max_qos5, profile.name
            ));
        }
    }
    // Conventions ($share/, $queue/, $local/) are never a reason to skip:
    // unless the profile declares them, they are measured (`convention`).
    for r in &scenario.requires {
        if !profile.offers(r) {
            return Some(match profile.hooked {
                Some(_) => format!("{} (broker {})", profile.missing_because(r), cfg.broker),
                None => format!("needs `{r}`, which broker {} does not offer", cfg.broker),
            });
        }
    }
    // Fault steps need a broker that can take them, declared or not.
    for step in &scenario.steps {
        if let Action::Broker(what) = &step.action {
            if profile.can(what) {
                continue;
            }
            let needed = crate::broker::Profile::needed_for(what);
            return Some(match profile.hooked {
                Some(_) => format!(
                    "step {} (`broker = \"{what}\"`) needs a `{}` hook in the [hooks] of profile `{}` (broker {})",
                    step.index,
                    if what == "kill_restart" { "kill` and a `start" } else { what },
                    profile.name,
                    cfg.broker
                ),
                None => format!("needs `{needed}`, which broker {} does not offer", cfg.broker),
            });
        }
    }
    None
}

/// Publishes; a device whose inflight window is full (the agent keeps a few
/// unacknowledged messages, as small clients do) is given the time its
/// acknowledgements take, as an application would wait, bounded by the step.
async fn publish_with_backpressure(
    handle: &ActorHandle,
    cmd: Command,
    deadline: Instant,
) -> Result<crate::client::Reply, String> {
    let mut events = handle.events();
    loop {
        match handle.command(cmd.clone(), deadline).await {
            Err(e) if e.contains("inflight_full") && Instant::now() >= deadline => {
                return Err(format!(
                    "{}'s inflight window stayed full: its messages were not acknowledged in time ({e})",
                    handle.name()
                ))
            }
            Err(e) if e.contains("inflight_full") => loop {
                match tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
                    Ok(Ok(ClientEvent::PubAck(_) | ClientEvent::PubComp(_))) | Err(_) => break,
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                        return Err(format!("{} stopped", handle.name()))
                    }
                    Ok(_) => {}
                }
            },
            other => return other,
        }
    }
}

/// Waits for the PUBACK or PUBCOMP that completes our message `pid`, until
/// `deadline`: `Ok(false)` when it did not come.
async fn wait_completed(
    events: &mut tokio::sync::broadcast::Receiver<ClientEvent>,
    pid: u16,
    deadline: Instant,
) -> Result<bool, String> {
    loop {
        let Ok(ev) = tokio::time::timeout_at(deadline, events.recv()).await else {
            return Ok(false);
        };
        match ev {
            Ok(ClientEvent::PubAck(p) | ClientEvent::PubComp(p)) if p == pid => return Ok(true),
            Ok(ClientEvent::Disconnected { reason }) => {
                return Err(format!(
                    "the connection ended before message {pid} was acknowledged ({reason})"
                ))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                return Err("the actor stopped".into())
            }
            _ => {}
        }
    }
}

/// Applies the client knobs of an actor's table (misbehaviours on purpose).
async fn configure(
    actor: &ActorHandle,
    spec: &ClientSpec,
    deadline: Instant,
) -> Result<(), String> {
    let who = actor.name().to_string();
    if spec.acks != Default::default() {
        actor
            .command(Command::SetAcks(spec.acks.clone()), deadline)
            .await
            .map_err(|e| format!("{who}: `withhold` is not possible here: {e}"))?;
    }
    if !spec.pings {
        actor
            .command(Command::SetPings(false), deadline)
            .await
            .map_err(|e| format!("{who}: `pings = false` is not possible here: {e}"))?;
    }
    Ok(())
}

/// Everything a scenario runs against.
struct World {
    recorder: Recorder,
    broker: Option<Broker>,
    hub: Hub,
    lanes: BTreeMap<String, Lane>,
    device: Option<Device>,
    /// A device running its own firmware (no agent): only watched.
    autonomous: Option<AutonomousDevice>,
    observers: BTreeMap<String, ActorHandle>,
    specs: BTreeMap<String, ClientSpec>,
    /// History position where the last action step began.
    anchor: usize,
    /// How long the wire must be silent before a step counts as settled.
    quiet: Duration,
    /// When the current step (or set-up wait) must be over: every wait on
    /// a peer inside it ends by then, saying what the peer did.
    deadline: Instant,
    /// How long the current step was given, for messages.
    allowed: Duration,
    /// The last single publish an observer made, for `resend`.
    last_publish: Option<(String, Command)>,
}

impl World {
    /// The world around a started broker; [`World::prepare`] starts the rest.
    fn new(scenario: &Scenario, cfg: &RunConfig, broker: Broker, recorder: &Recorder) -> World {
        recorder.record(EventKind::Broker {
            what: format!("started ({})", broker.describe()),
        });
        let hub = Hub::new(recorder.clone());
        let mut world = World {
            recorder: recorder.clone(),
            broker: None,
            hub,
            lanes: BTreeMap::new(),
            device: None,
            autonomous: None,
            observers: BTreeMap::new(),
            specs: BTreeMap::new(),
            anchor: 0,
            deadline: Instant::now() + scenario.timeout,
            allowed: scenario.timeout,
            last_publish: None,
            // The emulated board answers slower than a process on the host.
            quiet: match cfg.target {
                // A black box answers a step with several exchanges of its
                // own (reconnect, publish, subscribe), each a scheduling
                // delay apart on the emulated CPU: a longer silence ends it.
                _ if scenario.autonomous.is_some() => Duration::from_millis(300),
                TargetSpec::Qemu | TargetSpec::Serial(_) => Duration::from_millis(150),
                _ => Duration::from_millis(40),
            },
        };
        world.broker = Some(broker);
        world
    }

    /// Starts the proxy lanes, the device and the observers, and connects
    /// the observers that connect before the first step.
    async fn prepare(
        &mut self,
        scenario: &Scenario,
        cfg: &RunConfig,
        dir: &std::path::Path,
        setup_deadline: Instant,
    ) -> Result<(), String> {
        let world = self;
        let recorder = &world.recorder.clone();
        let upstream = world.broker.as_ref().ok_or("no broker")?.addr();
        let mut actors: Vec<&str> = scenario.observers.keys().map(String::as_str).collect();
        if scenario.has_device() {
            actors.push("device");
        }
        // A bench board reaches its lane over the bench's network, at the
        // address the bench file gives; everything else on loopback.
        let device_bind = match &cfg.target {
            TargetSpec::Serial(port) => Some(
                cfg.firmware
                    .bench_board(port)
                    .map_err(|e| e.to_string())?
                    .proxy_listen,
            ),
            _ => None,
        };
        // A flashed bench board runs its own firmware from power-on: its
        // lane opens only after the harness has reset it, so that what it
        // did before (connecting as soon as the address answered) is not
        // part of the run. Attempts before that reach no proxy.
        let bench_black_box =
            scenario.autonomous.is_some() && matches!(cfg.target, TargetSpec::Serial(_));
        for actor in actors {
            if bench_black_box && actor == "device" {
                continue;
            }
            let bind = match device_bind {
                Some(addr) if actor == "device" => addr,
                _ => std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            let lane = world
                .hub
                .lane_at(actor, upstream, bind)
                .await
                .map_err(|e| format!("starting the proxy for {actor}: {e}"))?;
            world.lanes.insert(actor.to_string(), lane);
        }
        if let Some(spec) = &scenario.device {
            let lane = world.lanes["device"].clone();
            let device = Device::start(&cfg.target, &lane, recorder, dir, &cfg.firmware)
                .await
                .map_err(|e| e.to_string())?;
            configure(&device.actor, spec, setup_deadline).await?;
            world.device = Some(device);
            world.specs.insert("device".into(), spec.clone());
        }
        for (name, spec) in &scenario.observers {
            let actor = spawn_client(name, world.lanes[name].addr(), recorder.clone());
            configure(&actor, spec, setup_deadline).await?;
            world.observers.insert(name.clone(), actor);
            world.specs.insert(name.clone(), spec.clone());
        }
        for (name, spec) in &scenario.observers {
            if spec.auto_connect {
                world.allowed = SETUP_CONNECT.min(scenario.timeout);
                world.deadline = setup_deadline.min(Instant::now() + SETUP_CONNECT);
                world
                    .connect(name, None, None, None, true, None)
                    .await
                    .map_err(|e| {
                        format!("observer {name} could not connect before the first step: {e}")
                    })?;
            }
        }
        // Last, so that its first connection falls into the first step
        // rather than racing the observers' setup.
        if scenario.autonomous.is_some() {
            // A bench board dials the bench file's address, not this one.
            let lane = world
                .lanes
                .get("device")
                .map(|l| l.addr())
                .or(device_bind)
                .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
            world.autonomous = Some(
                AutonomousDevice::start(
                    &cfg.target,
                    lane,
                    world.lanes.get("device"),
                    recorder,
                    dir,
                    &cfg.firmware,
                )
                .await
                .map_err(|e| e.to_string())?,
            );
            if bench_black_box {
                // A connection the board began before its reset may still
                // be on its way (a SYN in flight; on the emulated board, the
                // guestfwd process being spawned): let it fail on the closed
                // port rather than open the run. The rebooted board retries.
                tokio::time::sleep(BENCH_RESET_SETTLE).await;
                let bind = device_bind.expect("a serial target has a bench board");
                let lane = world
                    .hub
                    .lane_at("device", upstream, bind)
                    .await
                    .map_err(|e| format!("starting the proxy for device at {bind}: {e}"))?;
                world.lanes.insert("device".to_string(), lane);
            }
        }
        Ok(())
    }

    /// The device's client id, learned from the first CONNECT it sent
    /// through the proxy.
    fn device_client_id(&self) -> Option<String> {
        self.recorder
            .snapshot()
            .events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::Packet {
                    actor,
                    dir: crate::history::Dir::ToBroker,
                    packet: crate::mqtt::Packet::Connect(c),
                    ..
                } if actor == "device" => Some(c.client_id.clone()),
                _ => None,
            })
    }

    /// Replaces `{client_id}` with the device's client id (see
    /// [`World::device_client_id`]).
    fn with_client_id(&self, text: &str) -> Result<String, String> {
        if !text.contains(CLIENT_ID) {
            return Ok(text.to_string());
        }
        match self.device_client_id() {
            Some(id) if id.is_empty() => Err(format!(
                "`{CLIENT_ID}` in `{text}` stands for the device's client id, and the device \
                 connected with an empty one (the broker makes one up, which nobody can know): \
                 write its topics as they are, without `{CLIENT_ID}` (e.g. in its device \
                 description), or give the device a client id"
            )),
            Some(id) => Ok(text.replace(CLIENT_ID, &id)),
            None => Err(format!(
                "`{CLIENT_ID}` in `{text}` stands for the device's client id, learned from its \
                 CONNECT, and the device has not sent one yet: put an `expect = \"connected\"` \
                 step before this one"
            )),
        }
    }

    fn bytes_with_client_id(&self, b: &bytes::Bytes) -> Result<bytes::Bytes, String> {
        match std::str::from_utf8(b) {
            Ok(t) if t.contains(CLIENT_ID) => Ok(bytes::Bytes::from(self.with_client_id(t)?)),
            _ => Ok(b.clone()),
        }
    }

    fn action_with_client_id(&self, a: &ClientAction) -> Result<ClientAction, String> {
        let mut a = a.clone();
        match &mut a {
            ClientAction::Subscribe { filter, .. } | ClientAction::Unsubscribe { filter } => {
                *filter = self.with_client_id(filter)?
            }
            ClientAction::Publish { topic, payload, .. } => {
                *topic = self.with_client_id(topic)?;
                *payload = self.bytes_with_client_id(payload)?;
            }
            _ => {}
        }
        Ok(a)
    }

    fn expect_with_client_id(&self, e: &Expect) -> Result<Expect, String> {
        let mut e = e.clone();
        match &mut e {
            Expect::Message { topic, payload, .. }
            | Expect::NoMessage { topic, payload }
            | Expect::Published { topic, payload, .. } => {
                if let Some(t) = topic {
                    *t = self.with_client_id(t)?;
                }
                if let Some(p) = payload {
                    *p = self.bytes_with_client_id(p)?;
                }
            }
            _ => {}
        }
        Ok(e)
    }

    fn actor(&self, name: &str) -> Result<&ActorHandle, String> {
        if name == "device" {
            return self
                .device
                .as_ref()
                .map(|d| &d.actor)
                .ok_or_else(|| "the scenario has no device".to_string());
        }
        self.observers
            .get(name)
            .ok_or_else(|| format!("no actor `{name}`"))
    }

    async fn run_steps(&mut self, scenario: &Scenario) -> Result<(), StepFailure> {
        for step in &scenario.steps {
            if !matches!(step.action, Action::Expect(_) | Action::Wait(_)) {
                self.anchor = self.recorder.len();
            }
            self.recorder.record(EventKind::Step {
                index: step.index,
                summary: outcome::summarize(&step.action),
            });
            let fail = |message: String| StepFailure {
                step: step.index,
                line: step.line,
                // The note right under the first line, above any UART tail.
                message: match (&step.note, message.split_once('\n')) {
                    (None, _) => message,
                    (Some(n), None) => format!("{message}\n  ({n})"),
                    (Some(n), Some((first, rest))) => format!("{first}\n  ({n})\n{rest}"),
                },
            };
            // Bringing a broker back takes as long as its start (RabbitMQ:
            // 10-20s here); the step's default would cut a correct restart.
            let timeout = match (&step.action, &self.broker) {
                (Action::Broker(_), Some(b)) => step.timeout.max(b.startup_allowance()),
                _ => step.timeout,
            };
            // The step's waits end at its deadline and say what they were
            // waiting for; the grace lets them, before the step is cut.
            self.allowed = timeout;
            self.deadline = Instant::now() + timeout;
            match tokio::time::timeout(timeout + STEP_GRACE, self.step(step)).await {
                Ok(Ok(())) => self.quiesce().await,
                Ok(Err(msg)) => return Err(fail(self.with_device_output(msg))),
                Err(_) => {
                    return Err(fail(self.with_device_output(format!(
                        "timed out after {}",
                        crate::scenario::duration::format(timeout)
                    ))))
                }
            }
        }
        Ok(())
    }

    /// A black box is only known by its traffic and its UART: when a step
    /// fails, what it did on its lane (nothing, garbage, a flood, a close)
    /// and what it last printed (or how its board crashed) say why.
    fn with_device_output(&self, msg: String) -> String {
        if self.autonomous.is_none() {
            return msg;
        }
        format!(
            "{msg}\n  on its lane, {}\n  the device's last UART lines:\n{}",
            peer::device_did(&self.recorder.since(0), "device"),
            crate::target::uart_tail(&self.recorder, 8)
        )
    }

    async fn step(&mut self, step: &Step) -> Result<(), String> {
        match &step.action {
            Action::Client { actor, action } => {
                let action = self.action_with_client_id(action)?;
                self.client_action(actor, &action).await
            }
            Action::Net { actor, fault } => {
                let lane = self
                    .lanes
                    .get(actor)
                    .ok_or_else(|| format!("no proxy lane for {actor}"))?;
                lane.apply(fault.clone());
                if matches!(fault, Fault::Sever | Fault::Close) {
                    self.settle(actor).await;
                }
                Ok(())
            }
            Action::Network { fault, .. } => {
                let network = self
                    .device
                    .as_ref()
                    .and_then(|d| d.network())
                    .or_else(|| self.autonomous.as_ref().and_then(|a| a.network()))
                    .ok_or_else(|| {
                        format!(
                            "`{}` needs the emulated board's own network, and this board has none",
                            fault.name()
                        )
                    })?;
                // The network records the fault, with its parameters.
                network.apply(fault.clone()).await
            }
            Action::Broker(what) => {
                let broker = self.broker.as_mut().ok_or("no broker")?;
                broker.act(what).await.map_err(|e| e.to_string())?;
                self.recorder
                    .record(EventKind::Broker { what: what.clone() });
                Ok(())
            }
            Action::Board(action) => {
                if let Some(auto) = &self.autonomous {
                    // The supervisor records the reset or power cycle.
                    return auto.board(*action).await;
                }
                let device = self.device.as_mut().ok_or("the scenario has no device")?;
                device.board(*action, &self.recorder, self.deadline).await
            }
            Action::Wait(d) => {
                tokio::time::sleep(*d).await;
                Ok(())
            }
            Action::Expect(e) => {
                let what = self.expect_with_client_id(&e.what)?;
                let resend = e.resend.zip(self.last_publish.clone());
                self.expect(step.index, &e.actor, &what, e.within, resend)
                    .await
            }
        }
    }

    async fn client_action(&mut self, actor: &str, action: &ClientAction) -> Result<(), String> {
        let cmd = match action {
            ClientAction::Connect {
                clean_session,
                keepalive,
                properties,
                wait,
                session_present,
            } => {
                return self
                    .connect(
                        actor,
                        *clean_session,
                        *keepalive,
                        properties.clone(),
                        *wait,
                        *session_present,
                    )
                    .await
            }
            ClientAction::Subscribe {
                filter,
                qos,
                options,
                properties,
            } => {
                return self
                    .subscribe(actor, filter, *qos, *options, properties)
                    .await;
            }
            ClientAction::Unsubscribe { filter } => Command::Unsubscribe(vec![filter.clone()]),
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
                for n in 1..=*repeat {
                    let payload = if *repeat > 1 {
                        let text = String::from_utf8_lossy(payload).replace("{n}", &n.to_string());
                        bytes::Bytes::from(text)
                    } else {
                        payload.clone()
                    };
                    let cmd = Command::Publish {
                        topic: topic.clone(),
                        payload,
                        qos: *qos,
                        retain: *retain,
                        pid: *pid,
                        properties: properties.clone(),
                        raw: *raw,
                    };
                    if *repeat == 1 {
                        self.last_publish = Some((actor.to_string(), cmd.clone()));
                    }
                    let handle = self.actor(actor)?;
                    let mut events = handle.events();
                    let from = self.recorder.len();
                    let reply = publish_with_backpressure(handle, cmd, self.deadline)
                        .await
                        .map_err(|e| self.explain(actor, e))?;
                    // A burst is paced by its acknowledgements, one message
                    // in flight at a time, so it reads the same every run.
                    if let (true, Some(pid)) = (*repeat > 1, reply.pid) {
                        if !wait_completed(&mut events, pid, self.deadline).await? {
                            let ack = if *qos == crate::mqtt::QoS::ExactlyOnce {
                                crate::mqtt::PacketType::PubComp
                            } else {
                                crate::mqtt::PacketType::PubAck
                            };
                            return Err(format!(
                                "message {n} of {repeat} (packet id {pid}): no {ack} within {}: {}",
                                crate::scenario::duration::format(self.allowed),
                                peer::broker_did(&self.recorder.since(from), actor, ack)
                            ));
                        }
                    }
                }
                return Ok(());
            }
            ClientAction::Disconnect | ClientAction::Drop => {
                let cmd = if *action == ClientAction::Drop {
                    Command::Drop
                } else {
                    Command::Disconnect
                };
                self.actor(actor)?.command(cmd, self.deadline).await?;
                self.settle(actor).await;
                return Ok(());
            }
            ClientAction::DisconnectWith { code, properties } => {
                let cmd = Command::DisconnectWith {
                    code: *code,
                    properties: properties.clone(),
                };
                self.actor(actor)?.command(cmd, self.deadline).await?;
                self.settle(actor).await;
                return Ok(());
            }
            ClientAction::Reboot => Command::Reboot,
            ClientAction::Acks(p) => Command::SetAcks(p.clone()),
            ClientAction::Release(pid) => Command::Release(*pid),
        };
        let verb = cmd.verb();
        self.actor(actor)?
            .command(cmd, self.deadline)
            .await
            .map(|_| ())
            .map_err(|e| self.explain(actor, format!("{verb}: {e}")))
    }

    /// A command refused because the actor is not connected says only
    /// that (the agent's `not_connected`): add what the broker did on the
    /// actor's last connection, from the proxy's record.
    fn explain(&self, actor: &str, error: String) -> String {
        if error.contains("not_connected") || error.contains("not connected") {
            let events = self.recorder.since(0);
            return format!("{error} ({})", peer::last_connection(&events, actor));
        }
        error
    }

    /// Lets a step's consequences (acks, resends, deliveries to other
    /// actors) arrive before the next step starts: waits until no packet has
    /// crossed the proxy for a short quiet period and nothing this step made
    /// owed (an answer, or a resumed session's resends: owed.rs) is still
    /// missing. Without it, which step an ack lands in would follow the
    /// scheduler, and so would the snapshots. Busy but owing nothing, the
    /// wire counts as settled after a second (a black box that publishes
    /// all the time never falls silent); an owed answer is waited for
    /// longer, [`OWED_PATIENCE`], never past the step's deadline: on a
    /// loaded machine a board's answer has come more than a second late,
    /// and one that never comes is the checkers' to judge. An answer whose
    /// owing end cannot give it now (a paused, stopped or cut-off broker, a
    /// blackholed lane, a board off its network or reset since: owed.rs)
    /// is not waited for at all, until the fault that silenced it ends: the
    /// PUBACK a frozen broker owes once cost `broker_pause` 5 s twice. Event-driven:
    /// it wakes on each recorded event and at the next time it could be
    /// settled. On the board's own network a packet still on its way in
    /// small segments (`ip mss`) is traffic too: its data frames count.
    async fn quiesce(&self) {
        let mut live = self.recorder.subscribe();
        let start = Instant::now();
        let busy_until = start + Duration::from_secs(1);
        let owed_until = (start + OWED_PATIENCE).min(self.deadline.max(busy_until));
        let mut quiet_since = start;
        loop {
            let now = Instant::now();
            let quiet = now >= quiet_since + self.quiet;
            if (quiet || now >= busy_until) && now < owed_until {
                let history = self.recorder.since(0);
                if !owed::answer_owed(&history, self.anchor) {
                    return;
                }
            }
            if now >= owed_until {
                return;
            }
            // Owing, or not quiet yet: the next event, or the next moment
            // the answer could change.
            let wake = if quiet {
                owed_until
            } else {
                (quiet_since + self.quiet).min(owed_until)
            };
            tokio::select! {
                ev = live.recv() => match ev {
                    Ok(ev) if moves(&ev) => quiet_since = Instant::now(),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        quiet_since = Instant::now()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Waits (briefly) until the proxy has seen the actor's connections end,
    /// so a step that closes a connection is over when its effects are, and
    /// the next step and the trace see the same order every run.
    async fn settle(&self, actor: &str) {
        let Some(lane) = self.lanes.get(actor) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while lane.open_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Subscribes and waits for the SUBACK, so later steps can rely on the
    /// subscription being in place.
    async fn subscribe(
        &self,
        actor: &str,
        filter: &str,
        qos: crate::mqtt::QoS,
        options: u8,
        properties: &crate::mqtt::Properties,
    ) -> Result<(), String> {
        let handle = self.actor(actor)?;
        let mut events = handle.events();
        let from = self.recorder.len();
        let cmd = if options == 0 && properties.is_empty() {
            Command::Subscribe(vec![(filter.to_string(), qos)])
        } else {
            Command::SubscribeWith {
                filters: vec![crate::mqtt::SubscribeFilter {
                    filter: filter.to_string(),
                    qos,
                    options,
                }],
                properties: properties.clone(),
            }
        };
        let reply = handle
            .command(cmd, self.deadline)
            .await
            .map_err(|e| self.explain(actor, format!("subscribe: {e}")))?;
        loop {
            let Ok(ev) = tokio::time::timeout_at(self.deadline, events.recv()).await else {
                return Err(format!(
                    "{actor}'s subscription to `{filter}`: no SUBACK within {}: {}",
                    crate::scenario::duration::format(self.allowed),
                    peer::broker_did(
                        &self.recorder.since(from),
                        actor,
                        crate::mqtt::PacketType::SubAck
                    )
                ));
            };
            match ev {
                Ok(ClientEvent::SubAck { pid, codes }) if reply.pid.is_none_or(|p| p == pid) => {
                    if codes.iter().any(|c| *c >= 0x80) {
                        return Err(format!("the broker refused {actor}'s subscription to `{filter}` (SUBACK {codes:?})"));
                    }
                    return Ok(());
                }
                Ok(ClientEvent::Disconnected { reason }) => {
                    return Err(format!(
                        "{actor} lost its connection before SUBACK ({reason}): {}",
                        peer::broker_did(
                            &self.recorder.since(from),
                            actor,
                            crate::mqtt::PacketType::SubAck
                        )
                    ))
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return Err(format!("{actor} stopped")),
            }
        }
    }

    async fn connect(
        &self,
        actor: &str,
        clean: Option<bool>,
        keepalive: Option<u16>,
        properties: Option<crate::mqtt::Properties>,
        wait: bool,
        session_present: Option<bool>,
    ) -> Result<(), String> {
        let spec = self
            .specs
            .get(actor)
            .ok_or_else(|| format!("no actor `{actor}`"))?;
        let mut opts = spec.connect.clone();
        if let Some(c) = clean {
            opts.clean_session = c;
        }
        if let Some(k) = keepalive {
            opts.keepalive = k;
        }
        if let Some(p) = properties {
            opts.properties = p;
        }
        let handle = self.actor(actor)?;
        let mut events = handle.events();
        let from = self.recorder.len();
        let cmd = Command::Connect {
            opts,
            reconnect: spec.reconnect.clone(),
        };
        // Right after a fault the device may not have noticed its old
        // connection is gone; give it a moment rather than fail the step.
        let mut tries = 0;
        loop {
            match handle.command(cmd.clone(), self.deadline).await {
                Ok(_) => break,
                Err(e) if e.contains("already") && tries < 40 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
        if !wait {
            return Ok(());
        }
        let broker_did = || {
            peer::broker_did(
                &self.recorder.since(from),
                actor,
                crate::mqtt::PacketType::ConnAck,
            )
        };
        let mut attempt_started = false;
        loop {
            let Ok(ev) = tokio::time::timeout_at(self.deadline, events.recv()).await else {
                return Err(format!(
                    "no CONNACK within {}: {}",
                    crate::scenario::duration::format(self.allowed),
                    broker_did()
                ));
            };
            if !attempt_started {
                match ev {
                    Ok(ClientEvent::Connecting) => attempt_started = true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(format!("{actor} stopped"))
                    }
                    _ => {}
                }
                continue;
            }
            match ev {
                Ok(ClientEvent::Connected {
                    session_present: sp,
                }) => {
                    return match session_present {
                        Some(want) if want != sp => Err(format!(
                            "{actor} connected with session present = {sp}, expected {want}"
                        )),
                        _ => Ok(()),
                    }
                }
                Ok(ClientEvent::Refused { code }) => {
                    return Err(format!(
                        "the broker refused {actor}'s connection (return code {code})"
                    ))
                }
                Ok(ClientEvent::Disconnected { reason }) if spec.reconnect.is_none() => {
                    return Err(format!(
                        "{actor} could not connect ({reason}): {}",
                        broker_did()
                    ))
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return Err(format!("{actor} stopped")),
            }
        }
    }

    /// Waits for an expectation. It is judged over everything since the
    /// last action step, since what an action causes may already have
    /// happened by the time the expectation starts looking.
    async fn expect(
        &self,
        step: usize,
        actor: &str,
        what: &Expect,
        within: Duration,
        resend: Option<(Duration, (String, Command))>,
    ) -> Result<(), String> {
        let from = self.anchor;
        let deadline = Instant::now() + within;
        let mut next_resend = resend.as_ref().map(|(every, _)| Instant::now() + *every);
        loop {
            if let (Some(at), Some((every, (actor, cmd)))) = (next_resend, &resend) {
                if Instant::now() >= at {
                    // The earlier copy may have gone to a device that was
                    // reconnecting: its clean session lost it.
                    let handle = self.actor(actor)?;
                    publish_with_backpressure(handle, cmd.clone(), self.deadline).await?;
                    next_resend = Some(Instant::now() + *every);
                }
            }
            let events = self.recorder.since(from);
            let progress = expect::evaluate(what, actor, &events);
            let done = Instant::now() >= deadline;
            let result = match (&progress, done) {
                (Progress::Met, _) => Some(Ok(())),
                (Progress::Broken { why, .. }, _) => Some(Err(why.clone())),
                (Progress::Pending { .. }, true) if matches!(what, Expect::NoMessage { .. }) => {
                    Some(Ok(()))
                }
                (Progress::Pending { seen }, true) => Some(Err(format!(
                    "not met within {}: {seen}",
                    crate::scenario::duration::format(within)
                ))),
                _ => None,
            };
            if let Some(r) = result {
                self.recorder.record(EventKind::Expect {
                    step,
                    ok: r.is_ok(),
                    detail: match &r {
                        Ok(()) => outcome::describe_expect(actor, what),
                        Err(e) => e.clone(),
                    },
                });
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops everything, in the order that lets each part record its end.
    async fn stop(mut self) {
        let bounded = async {
            if let Some(d) = self.device.take() {
                d.shutdown().await;
            }
            if let Some(d) = self.autonomous.take() {
                d.shutdown().await;
            }
            for (_, o) in std::mem::take(&mut self.observers) {
                o.shutdown().await;
            }
            self.hub.shutdown().await;
            if let Some(b) = self.broker.take() {
                b.shutdown().await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(15), bounded).await;
    }
}
