//! Reads scenario files into [`Scenario`]s, rejecting a bad file with its
//! path, line and field before anything starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::fields::{closest, Fields, Source};
use super::model::*;
use crate::client::{AckPolicy, ConnectOptions, Reconnect};
use crate::error::{Error, Result};
use crate::history::Dir;
use crate::mqtt::{topic, PacketType, QoS, Version, Will};
use crate::proxy::{Fault, PacketRule, RuleAction};

const DEFAULT_SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_WITHIN: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    description: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    requires: Vec<String>,
    device: Option<Spanned<toml::Table>>,
    #[serde(default)]
    observer: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    step: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    invariant: Vec<Spanned<toml::Table>>,
}

/// Broker capabilities a scenario may require.
pub const CAPABILITIES: &[&str] = &[
    "broker_control",
    "broker_pause",
    "broker_network",
    "persistence",
    "persistence_across_kill",
    "shared_subscriptions",
    "queue_subscriptions",
    "retained",
];

pub fn load(path: &Path) -> Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading scenario {}", path.display()), e))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Scenario> {
    let src = Source { path, text };
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| src.line_of(s.start)).unwrap_or(1);
        src.error(line, e.message().trim_end().to_string())
    })?;

    let timeout = match &raw.timeout {
        None => DEFAULT_SCENARIO_TIMEOUT,
        Some(t) => super::duration::parse(t.get_ref())
            .map_err(|e| src.error(src.line_of(t.span().start), format!("field `timeout`: {e}")))?,
    };
    for r in &raw.requires {
        if !CAPABILITIES.contains(&r.as_str()) {
            return Err(src.error(
                line_of_top_key(&src, "requires"),
                format!(
                    "field `requires`: unknown capability `{r}`; known: {}",
                    CAPABILITIES.join(", ")
                ),
            ));
        }
    }

    let autonomous = match &raw.device {
        Some(t) if t.get_ref().contains_key("autonomous") => autonomous(&src, t)?,
        _ => None,
    };
    let device = match &raw.device {
        Some(t) if autonomous.is_none() => Some(client_spec(&src, t, "[device]", "device", false)?),
        _ => None,
    };
    let mut observers = BTreeMap::new();
    for (name, t) in &raw.observer {
        if name == "device" || name == "broker" || name == "proxy" {
            return Err(src.error(
                src.line_of(t.span().start),
                format!("[observer.{name}]: `{name}` is reserved; choose another observer name"),
            ));
        }
        observers.insert(
            name.clone(),
            client_spec(&src, t, &format!("[observer.{name}]"), name, true)?,
        );
    }

    let mut steps = Vec::new();
    for (i, t) in raw.step.iter().enumerate() {
        let mut f = Fields::new(&src, t.get_ref(), t.span(), format!("step {}", i + 1));
        let dev = match (&device, &autonomous) {
            (Some(_), _) => DeviceKind::Driven,
            (None, Some(_)) => DeviceKind::Autonomous,
            (None, None) => DeviceKind::None,
        };
        steps.push(step(&mut f, i + 1, dev, &observers)?);
    }

    let mut invariants = Vec::new();
    for (i, t) in raw.invariant.iter().enumerate() {
        let line = src.line_of(t.span().start);
        let f = Fields::new(&src, t.get_ref(), t.span(), format!("invariant {}", i + 1));
        let spec =
            crate::check::InvariantSpec::deserialize(toml::Value::Table(t.get_ref().clone()))
                .map_err(|e| invariant_error(&f, line, e.message().trim_end()))?;
        spec.validate().map_err(|(key, why)| f.err(key, why))?;
        invariants.push(Invariant { line, spec });
    }

    if steps.is_empty() {
        return Err(src.error(1, "the scenario has no [[step]]: add at least one"));
    }
    let id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into());
    Ok(Scenario {
        path: path.to_path_buf(),
        id,
        name: raw.name,
        description: raw.description,
        tags: raw.tags,
        timeout,
        requires: raw.requires,
        device,
        autonomous,
        observers,
        steps,
        invariants,
    })
}

fn line_of_top_key(src: &Source, key: &str) -> usize {
    src.text
        .lines()
        .position(|l| l.trim_start().starts_with(key))
        .map(|i| i + 1)
        .unwrap_or(1)
}

const CLIENT_KEYS: &[&str] = &[
    "client_id",
    "clean_session",
    "keepalive",
    "will",
    "username",
    "password",
    "version",
    "reconnect",
    "backoff",
    "backoff_max",
    "connect",
    "withhold",
    "pings",
];

fn client_spec(
    src: &Source,
    t: &Spanned<toml::Table>,
    what: &str,
    default_id: &str,
    observer: bool,
) -> Result<ClientSpec> {
    let mut f = Fields::new(src, t.get_ref(), t.span(), what);
    let mut opts = ConnectOptions::new(
        &f.str("client_id")?
            .unwrap_or_else(|| default_id.to_string()),
    );
    if let Some(c) = f.bool("clean_session")? {
        opts.clean_session = c;
    }
    if let Some(k) = f.int("keepalive", 0, 65535)? {
        opts.keepalive = k as u16;
    }
    opts.username = f.str("username")?;
    opts.password = f.str("password")?.map(bytes::Bytes::from);
    opts.version = match f.str("version")?.as_deref() {
        None | Some("3.1.1") => Version::V311,
        Some("5") | Some("5.0") => Version::V5,
        Some("3.1") => Version::V31,
        Some(other) => {
            return Err(f.err(
                "version",
                format!("`{other}` is not one of \"3.1\", \"3.1.1\", \"5\""),
            ))
        }
    };
    if let Some(v) = f.raw("will") {
        opts.will = Some(will(src, &f, v)?);
    }
    let reconnect = match f.bool("reconnect")? {
        Some(true) => Some(Reconnect {
            initial: f.duration("backoff")?.unwrap_or(Duration::from_secs(1)),
            max: f
                .duration("backoff_max")?
                .unwrap_or(Duration::from_secs(16)),
        }),
        _ => None,
    };
    let auto_connect = f.bool("connect")?.unwrap_or(observer);
    let acks = withhold(&mut f)?;
    let pings = f.bool("pings")?.unwrap_or(true);
    let mut keys = CLIENT_KEYS.to_vec();
    if !observer {
        // `autonomous = false`: the ordinary, agent-driven device.
        f.bool("autonomous")?;
        keys.push("autonomous");
    }
    f.finish(&keys)?;
    Ok(ClientSpec {
        connect: opts,
        reconnect,
        acks,
        auto_connect,
        pings,
    })
}

/// `[device]` with `autonomous`: only the keys that make sense for a device
/// whose own firmware decides how it connects.
fn autonomous(src: &Source, t: &Spanned<toml::Table>) -> Result<Option<Autonomous>> {
    let mut f = Fields::new(src, t.get_ref(), t.span(), "[device]");
    if !f.bool("autonomous")?.expect("present") {
        // `autonomous = false` is the agent-driven device: read as usual.
        return Ok(None);
    }
    for key in t.get_ref().keys() {
        if CLIENT_KEYS.contains(&key.as_str()) {
            return Err(f.err(
                key,
                "an autonomous device connects as its own firmware decides, so the scenario \
                 cannot set this; remove it (the harness learns the client id, clean session, \
                 keep alive and will from the device's CONNECT)",
            ));
        }
    }
    let periodic = f.str_list("periodic")?;
    for p in &periodic {
        topic::validate_filter(p).map_err(|e| f.err("periodic", format!("`{p}`: {e}")))?;
    }
    f.finish(&["autonomous", "periodic"])?;
    Ok(Some(Autonomous { periodic }))
}

fn will(src: &Source, parent: &Fields, v: &toml::Value) -> Result<Will> {
    let toml::Value::Table(t) = v else {
        return Err(parent.err(
            "will",
            "expected a table like { topic = \"a/b\", payload = \"offline\", qos = 1 }",
        ));
    };
    let line = parent.line_of_key("will");
    let offset = src
        .text
        .lines()
        .take(line - 1)
        .map(|l| l.len() + 1)
        .sum::<usize>();
    let mut f = Fields::new(src, t, offset..offset, format!("{}: will", parent.what()));
    let topic = f.req_str("topic")?;
    topic::validate_topic(&topic).map_err(|e| f.err("topic", e))?;
    let w = Will {
        topic,
        payload: f.payload()?.unwrap_or_default(),
        qos: f.qos("qos")?.unwrap_or(QoS::AtMostOnce),
        retain: f.bool("retain")?.unwrap_or(false),
        properties: Default::default(),
    };
    f.finish(&["topic", "payload", "payload_hex", "qos", "retain"])?;
    Ok(w)
}

fn withhold(f: &mut Fields) -> Result<AckPolicy> {
    let mut p = AckPolicy::default();
    for w in f.str_list("withhold")? {
        match w.to_ascii_uppercase().as_str() {
            "PUBACK" => p.withhold_puback = true,
            "PUBREC" => p.withhold_pubrec = true,
            "PUBREL" => p.withhold_pubrel = true,
            "PUBCOMP" => p.withhold_pubcomp = true,
            _ => {
                return Err(f.err(
                    "withhold",
                    format!("`{w}`: can withhold PUBACK, PUBREC, PUBREL, PUBCOMP"),
                ))
            }
        }
    }
    Ok(p)
}

const ACTION_KEYS: &[&str] = &[
    "device", "observer", "net", "broker", "board", "wait", "expect",
];
const CLIENT_VERBS: &[&str] = &[
    "connect",
    "subscribe",
    "unsubscribe",
    "publish",
    "disconnect",
    "drop",
    "reboot",
    "acks",
    "release",
];
const NET_FAULTS: &[&str] = &[
    "sever",
    "close",
    "blackhole",
    "heal",
    "refuse",
    "accept",
    "latency",
    "bandwidth",
    "drop",
    "hold",
    "duplicate",
    "delay",
    "release",
    "clear",
];
const BROKER_ACTIONS: &[&str] = &[
    "restart",
    "stop",
    "start",
    "kill",
    "kill_restart",
    "pause",
    "unpause",
    "disconnect",
    "reconnect",
];
const EXPECTS: &[&str] = &[
    "message",
    "published",
    "no_message",
    "connected",
    "refused",
    "closed",
    "packet",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum DeviceKind {
    None,
    /// Driven through the agent by `device = "verb"` steps.
    Driven,
    /// Runs its own firmware; only watched.
    Autonomous,
}

fn step(
    f: &mut Fields,
    index: usize,
    dev: DeviceKind,
    observers: &BTreeMap<String, ClientSpec>,
) -> Result<Step> {
    let has_device = dev != DeviceKind::None;
    let present: Vec<&str> = ACTION_KEYS.iter().copied().filter(|k| f.has(k)).collect();
    let key = match present.as_slice() {
        [k] => *k,
        [] => {
            let near = f
                .keys()
                .find_map(|k| {
                    closest(k, ACTION_KEYS).map(|c| format!(" (`{k}`: did you mean `{c}`?)"))
                })
                .unwrap_or_default();
            return Err(f.err_table(format!(
                "a step needs exactly one of {}{near}",
                ACTION_KEYS.join(", ")
            )));
        }
        many => {
            return Err(f.err(
                many[1],
                format!(
                    "a step does one thing: found both `{}` and `{}`; split it into two steps",
                    many[0], many[1]
                ),
            ))
        }
    };
    let timeout = f.duration("timeout")?.unwrap_or(DEFAULT_STEP_TIMEOUT);
    let _note = f.str("note")?;
    let mut allowed: Vec<&str> = vec![key, "timeout", "note"];
    let action = match key {
        "device" => {
            if dev == DeviceKind::Autonomous {
                return Err(f.err(
                    "device",
                    "the device is autonomous (its own firmware runs it), so it takes no \
                     commands; break its network (`net`), reset its board (`board`), act \
                     through an observer, and watch it with `expect`",
                ));
            }
            if !has_device {
                return Err(f.err(
                    "device",
                    "the scenario has no [device] table: add one to say how the device connects",
                ));
            }
            let verb = f.req_str("device")?;
            Action::Client {
                actor: "device".into(),
                action: client_action(f, "device", &verb, &mut allowed)?,
            }
        }
        "observer" => {
            let (name, verb) = match f.raw("observer") {
                Some(toml::Value::Table(t)) if t.len() == 1 => {
                    let (n, v) = t.iter().next().expect("one entry");
                    match v {
                        toml::Value::String(v) => (n.clone(), v.clone()),
                        _ => return Err(f.err(
                            "observer",
                            "write `observer.NAME = \"verb\"`, e.g. observer.cloud = \"subscribe\"",
                        )),
                    }
                }
                _ => {
                    return Err(f.err(
                        "observer",
                        "write `observer.NAME = \"verb\"`, e.g. observer.cloud = \"subscribe\"",
                    ))
                }
            };
            if !observers.contains_key(&name) {
                let names: Vec<&str> = observers.keys().map(String::as_str).collect();
                return Err(f.err(
                    "observer",
                    format!(
                        "no observer named `{name}`; declare [observer.{name}] (declared: {})",
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            }
            Action::Client {
                action: client_action(f, "observer", &verb, &mut allowed)?,
                actor: name,
            }
        }
        "net" => {
            let fault_name = f.req_str("net")?;
            let actor = f.str("actor")?.unwrap_or_else(|| "device".into());
            allowed.push("actor");
            check_actor(f, "actor", &actor, has_device, observers)?;
            Action::Net {
                fault: fault(f, &fault_name, &mut allowed)?,
                actor,
            }
        }
        "broker" => {
            let a = f.req_str("broker")?;
            if !BROKER_ACTIONS.contains(&a.as_str()) {
                return Err(unknown(f, "broker", "broker action", &a, BROKER_ACTIONS));
            }
            Action::Broker(a)
        }
        "board" => match f.req_str("board")?.as_str() {
            "reset" => Action::Board(BoardAction::Reset),
            "power_cycle" => Action::Board(BoardAction::PowerCycle),
            other => {
                return Err(f.err(
                    "board",
                    format!("unknown board action `{other}`; expected reset or power_cycle"),
                ))
            }
        },
        "wait" => Action::Wait(f.duration("wait")?.expect("present")),
        "expect" => {
            let what = f.req_str("expect")?;
            let actor = f.str("actor")?.unwrap_or_else(|| "device".into());
            check_actor(f, "actor", &actor, has_device, observers)?;
            let within = f.duration("within")?.unwrap_or(DEFAULT_WITHIN);
            allowed.extend(["actor", "within"]);
            Action::Expect(Expectation {
                what: expectation(f, &what, &mut allowed)?,
                actor,
                within,
            })
        }
        _ => unreachable!("ACTION_KEYS covers every key"),
    };
    let line = f.line();
    let timeout = match &action {
        Action::Expect(e) => timeout.max(e.within + Duration::from_secs(1)),
        Action::Wait(w) => timeout.max(*w + Duration::from_secs(1)),
        _ => timeout,
    };
    f.finish(&allowed)?;
    Ok(Step {
        index,
        line,
        timeout,
        action,
    })
}

fn check_actor(
    f: &Fields,
    key: &str,
    actor: &str,
    has_device: bool,
    observers: &BTreeMap<String, ClientSpec>,
) -> Result<()> {
    if actor == "device" {
        if has_device {
            return Ok(());
        }
        return Err(f.err(key, "the scenario has no [device] table"));
    }
    if observers.contains_key(actor) {
        return Ok(());
    }
    Err(f.err(
        key,
        format!("no actor named `{actor}`: use `device` or a declared observer"),
    ))
}

fn client_action(
    f: &mut Fields,
    kind: &str,
    verb: &str,
    allowed: &mut Vec<&'static str>,
) -> Result<ClientAction> {
    let action = match verb {
        "connect" => {
            allowed.extend([
                "clean_session",
                "keepalive",
                "wait_connack",
                "session_present",
            ]);
            let wait = f.bool("wait_connack")?.unwrap_or(true);
            let session_present = f.bool("session_present")?;
            if session_present.is_some() && !wait {
                return Err(f.err(
                    "session_present",
                    "needs the CONNACK: drop `wait_connack = false`",
                ));
            }
            ClientAction::Connect {
                clean_session: f.bool("clean_session")?,
                keepalive: f.int("keepalive", 0, 65535)?.map(|k| k as u16),
                wait,
                session_present,
            }
        }
        "subscribe" => {
            allowed.extend(["filter", "qos"]);
            let filter = f.req_str("filter")?;
            topic::validate_filter(&filter).map_err(|e| f.err("filter", e))?;
            ClientAction::Subscribe {
                filter,
                qos: f.qos("qos")?.unwrap_or(QoS::AtMostOnce),
            }
        }
        "unsubscribe" => {
            allowed.push("filter");
            ClientAction::Unsubscribe {
                filter: f.req_str("filter")?,
            }
        }
        "publish" => {
            allowed.extend([
                "topic",
                "payload",
                "payload_hex",
                "qos",
                "retain",
                "pid",
                "repeat",
            ]);
            let topic = f.req_str("topic")?;
            topic::validate_topic(&topic).map_err(|e| f.err("topic", e))?;
            let pid = f.int("pid", 1, 65535)?.map(|p| p as u16);
            if pid.is_some() && kind == "device" {
                return Err(f.err(
                    "pid",
                    "the device chooses its own packet ids; `pid` is for observers",
                ));
            }
            ClientAction::Publish {
                topic,
                payload: f.payload()?.unwrap_or_default(),
                qos: f.qos("qos")?.unwrap_or(QoS::AtMostOnce),
                retain: f.bool("retain")?.unwrap_or(false),
                repeat: f.int("repeat", 1, 100_000)?.unwrap_or(1) as u32,
                pid,
            }
        }
        "disconnect" => ClientAction::Disconnect,
        "drop" => ClientAction::Drop,
        "reboot" => ClientAction::Reboot,
        "acks" => {
            allowed.push("withhold");
            ClientAction::Acks(withhold(f)?)
        }
        "release" => {
            allowed.push("pid");
            ClientAction::Release(
                f.int("pid", 1, 65535)?
                    .ok_or_else(|| f.err_table("missing field `pid`"))? as u16,
            )
        }
        other => return Err(unknown(f, kind, "action", other, CLIENT_VERBS)),
    };
    Ok(action)
}

fn fault(f: &mut Fields, name: &str, allowed: &mut Vec<&'static str>) -> Result<Fault> {
    let fault = match name {
        "sever" => Fault::Sever,
        "close" => Fault::Close,
        "blackhole" => Fault::Blackhole,
        "heal" => Fault::Heal,
        "refuse" => Fault::Refuse,
        "accept" => Fault::Accept,
        "release" => Fault::Release,
        "clear" => Fault::Clear,
        "latency" => {
            allowed.extend(["delay", "jitter"]);
            Fault::Latency {
                delay: f
                    .duration("delay")?
                    .ok_or_else(|| f.err_table("missing field `delay`, e.g. delay = \"200ms\""))?,
                jitter: f.duration("jitter")?.unwrap_or_default(),
            }
        }
        "bandwidth" => {
            allowed.push("bytes_per_sec");
            Fault::Bandwidth {
                bytes_per_sec: f
                    .int("bytes_per_sec", 0, i64::MAX)?
                    .ok_or_else(|| f.err_table("missing field `bytes_per_sec`"))?
                    as u64,
            }
        }
        "drop" | "hold" | "duplicate" | "delay" => {
            allowed.extend(["packet", "dir", "nth", "times", "delay"]);
            let packet = packet_type(f)?;
            let dir = direction(f)?;
            let action = match name {
                "drop" => RuleAction::Drop,
                "hold" => RuleAction::Hold,
                "duplicate" => RuleAction::Duplicate,
                _ => RuleAction::Delay(
                    f.duration("delay")?
                        .ok_or_else(|| f.err_table("missing field `delay`"))?,
                ),
            };
            Fault::Rule(PacketRule {
                dir,
                packet,
                nth: f.int("nth", 1, u32::MAX as i64)?.unwrap_or(1) as u32,
                times: f.int("times", 1, u32::MAX as i64)?.unwrap_or(1) as u32,
                action,
            })
        }
        other => return Err(unknown(f, "net", "fault", other, NET_FAULTS)),
    };
    Ok(fault)
}

fn expectation(f: &mut Fields, what: &str, allowed: &mut Vec<&'static str>) -> Result<Expect> {
    Ok(match what {
        "message" => {
            allowed.extend([
                "topic",
                "payload",
                "payload_hex",
                "qos",
                "retain",
                "count",
                "at_least",
            ]);
            Expect::Message {
                topic: f.str("topic")?,
                payload: f.payload()?,
                qos: f.qos("qos")?,
                retain: f.bool("retain")?,
                count: f.int("count", 0, 1_000_000)?.unwrap_or(1) as u32,
                at_least: f.bool("at_least")?.unwrap_or(false),
            }
        }
        "no_message" => {
            allowed.extend(["topic", "payload", "payload_hex"]);
            Expect::NoMessage {
                topic: f.str("topic")?,
                payload: f.payload()?,
            }
        }
        "connected" => {
            allowed.push("session_present");
            Expect::Connected {
                session_present: f.bool("session_present")?,
            }
        }
        "refused" => Expect::Refused,
        "closed" => {
            allowed.push("by");
            let by = f.str("by")?;
            if let Some(b) = &by {
                if b != "broker" && b != "client" {
                    return Err(f.err("by", format!("`{b}`: expected broker or client")));
                }
            }
            Expect::Closed { by }
        }
        "published" => {
            allowed.extend(["topic", "payload", "payload_hex", "qos", "count"]);
            if let Some(t) = f.str("topic")? {
                topic::validate_filter(&t).map_err(|e| f.err("topic", e))?;
            }
            Expect::Published {
                topic: f.str("topic")?,
                payload: f.payload()?,
                qos: f.qos("qos")?,
                count: f.int("count", 1, 1_000_000)?.unwrap_or(1) as u32,
            }
        }
        "packet" => {
            allowed.extend(["packet", "dir", "count"]);
            Expect::Packet {
                packet: packet_type(f)?,
                dir: direction(f)?,
                count: f.int("count", 1, 1_000_000)?.unwrap_or(1) as u32,
            }
        }
        other => return Err(unknown(f, "expect", "expectation", other, EXPECTS)),
    })
}

/// The checks `mqtt-hil observe` runs: `[[invariant]]` tables as in a
/// scenario file, and `periodic` topic filters left out of its trace.
#[derive(Clone, Debug, Default)]
pub struct CheckFile {
    pub invariants: Vec<crate::check::InvariantSpec>,
    pub periodic: Vec<String>,
}

/// Reads a checks file for `mqtt-hil observe`, with the same errors as a
/// scenario file's (file, line, field, did-you-mean).
pub fn load_checks(path: &Path) -> Result<CheckFile> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawChecks {
        #[serde(default)]
        periodic: Vec<String>,
        #[serde(default)]
        invariant: Vec<Spanned<toml::Table>>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading checks file {}", path.display()), e))?;
    let src = Source { path, text: &text };
    let raw: RawChecks = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| src.line_of(s.start)).unwrap_or(1);
        src.error(line, e.message().trim_end().to_string())
    })?;
    for p in &raw.periodic {
        topic::validate_filter(p).map_err(|e| {
            src.error(
                line_of_top_key(&src, "periodic"),
                format!("field `periodic`: `{p}`: {e}"),
            )
        })?;
    }
    let mut invariants = Vec::new();
    for (i, t) in raw.invariant.iter().enumerate() {
        let line = src.line_of(t.span().start);
        let f = Fields::new(&src, t.get_ref(), t.span(), format!("invariant {}", i + 1));
        let spec =
            crate::check::InvariantSpec::deserialize(toml::Value::Table(t.get_ref().clone()))
                .map_err(|e| invariant_error(&f, line, e.message().trim_end()))?;
        spec.validate().map_err(|(key, why)| f.err(key, why))?;
        invariants.push(spec);
    }
    Ok(CheckFile {
        invariants,
        periodic: raw.periodic,
    })
}

/// Serde's message about an `[[invariant]]` table, pointed at the line of
/// the field it names, with the nearest valid word for a typo.
fn invariant_error(f: &Fields, line: usize, msg: &str) -> Error {
    // serde: "unknown field `slak`, expected one of `actor`, `slack`" and
    // "unknown variant `sequnce`, expected one of `will`, ...".
    let words: Vec<&str> = msg.split('`').skip(1).step_by(2).collect();
    let expected = words.get(1..).unwrap_or_default();
    let near = |w: &str| {
        closest(w, expected)
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default()
    };
    if let (Some(field), true) = (words.first(), msg.starts_with("unknown field")) {
        return f.err(field, format!("unknown field{}; {msg}", near(field)));
    }
    if let (Some(word), true) = (words.first(), msg.starts_with("unknown variant")) {
        return f.err(
            "check",
            format!("unknown check `{word}`{}; {msg}", near(word)),
        );
    }
    if let (Some(field), true) = (words.first(), msg.starts_with("missing field")) {
        return f.err_table(format!("missing field `{field}`"));
    }
    let _ = line;
    f.err_table(msg)
}

/// An unknown word in a closed vocabulary, with the nearest valid one.
fn unknown(f: &Fields, key: &str, what: &str, word: &str, choices: &[&str]) -> Error {
    let near = closest(word, choices)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    f.err(
        key,
        format!(
            "unknown {what} `{word}`{near}; expected one of: {}",
            choices.join(", ")
        ),
    )
}

fn packet_type(f: &mut Fields) -> Result<PacketType> {
    let p = f.req_str("packet")?;
    PacketType::from_name(&p).ok_or_else(|| {
        f.err(
            "packet",
            format!("`{p}` is not an MQTT packet type (e.g. PUBREC)"),
        )
    })
}

fn direction(f: &mut Fields) -> Result<Option<Dir>> {
    match f.str("dir")?.as_deref() {
        None => Ok(None),
        Some("to_broker") => Ok(Some(Dir::ToBroker)),
        Some("to_client") => Ok(Some(Dir::ToClient)),
        Some(other) => Err(f.err("dir", format!("`{other}`: expected to_broker or to_client"))),
    }
}

/// Scenario files under the given paths: files as given, folders searched
/// (not recursively) for `*.toml`, sorted for a stable order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(format!("reading folder {}", p.display()), e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: no scenario files (*.toml) here",
                    p.display()
                )));
            }
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(Error::Usage(format!(
                "{}: no such file or folder",
                p.display()
            )));
        }
    }
    Ok(out)
}
