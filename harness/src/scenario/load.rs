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
use crate::mqtt::{props, topic, PacketType, Properties, QoS, Version, Will};
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
    versions: Option<Spanned<Vec<String>>>,
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
    "local_subscriptions",
    "retained",
];

pub fn load(path: &Path) -> Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading scenario {}", path.display()), e))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Scenario> {
    parse_with(path, text, &mut |_, _| Ok(()))
}

/// A table of a scenario file, as [`parse_with`] hands it to its expander.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Device,
    Observer(String),
    /// 1-based, as errors count them.
    Step(usize),
    Invariant(usize),
}

/// Rewrites one table of a scenario file, or refuses it with the key at
/// fault and why.
pub type Expander<'a> =
    dyn FnMut(Part, &mut toml::Table) -> std::result::Result<(), (String, String)> + 'a;

/// [`parse`] with a pass over each table before it is read: `expand` may
/// rewrite it (the device suite fills its placeholders this way,
/// `crate::device::suite`), leave a step out by emptying its table, or
/// refuse it with the key at fault and why, reported at that key's line
/// like any other error of the file.
pub fn parse_with(path: &Path, text: &str, expand: &mut Expander) -> Result<Scenario> {
    let src = Source { path, text };
    let mut raw: Raw = toml::from_str(text).map_err(|e| src.syntax_error(&e))?;
    {
        let mut run = |part: Part, what: String, t: &mut Spanned<toml::Table>| -> Result<()> {
            let span = t.span();
            let mut table = t.get_ref().clone();
            expand(part, &mut table).map_err(|(key, why)| {
                Fields::new(&src, t.get_ref(), span.clone(), what).err(&key, why)
            })?;
            *t.get_mut() = table;
            Ok(())
        };
        if let Some(d) = raw.device.as_mut() {
            run(Part::Device, "[device]".into(), d)?;
        }
        for (name, t) in raw.observer.iter_mut() {
            run(
                Part::Observer(name.clone()),
                format!("[observer.{name}]"),
                t,
            )?;
        }
        for (i, t) in raw.step.iter_mut().enumerate() {
            run(Part::Step(i + 1), format!("step {}", i + 1), t)?;
        }
        // A step the expander emptied is left out.
        raw.step.retain(|t| !t.get_ref().is_empty());
        for (i, t) in raw.invariant.iter_mut().enumerate() {
            run(Part::Invariant(i + 1), format!("invariant {}", i + 1), t)?;
        }
    }

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

    let versions = match &raw.versions {
        None => Vec::new(),
        Some(v) => {
            let line = src.line_of(v.span().start);
            let mut out = Vec::new();
            for s in v.get_ref() {
                let ver = parse_version(s).ok_or_else(|| {
                    src.error(
                        line,
                        format!("field `versions`: `{s}` is not one of \"3.1.1\", \"5\""),
                    )
                })?;
                if ver == Version::V31 || out.contains(&ver) {
                    return Err(src.error(
                        line,
                        format!("field `versions`: `{s}` is listed twice or not runnable; list \"3.1.1\" and/or \"5\""),
                    ));
                }
                out.push(ver);
            }
            if out.is_empty() {
                return Err(src.error(line, "field `versions`: list at least one version"));
            }
            out
        }
    };
    // In a file that runs as several versions a client's `version` is set
    // per run, and a 5.0-only key would mean nothing in the 3.1.1 run.
    let multi = versions.len() > 1;
    let autonomous = match &raw.device {
        Some(t) if t.get_ref().contains_key("autonomous") => autonomous(&src, t)?,
        _ => None,
    };
    let device = match &raw.device {
        Some(t) if autonomous.is_none() => Some(client_spec(
            &src,
            t,
            "[device]",
            "device",
            false,
            versions.first().copied().filter(|_| !multi),
            multi,
        )?),
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
            client_spec(
                &src,
                t,
                &format!("[observer.{name}]"),
                name,
                true,
                versions.first().copied().filter(|_| !multi),
                multi,
            )?,
        );
    }

    let mut actor_versions: BTreeMap<String, Version> = observers
        .iter()
        .map(|(n, s)| (n.clone(), s.connect.version))
        .collect();
    if let Some(d) = &device {
        actor_versions.insert("device".into(), d.connect.version);
    }
    if multi {
        // 5.0-only step keys are refused: the 3.1.1 run could not send them.
        for v in actor_versions.values_mut() {
            *v = Version::V311;
        }
    }
    let mut steps = Vec::new();
    for (i, t) in raw.step.iter().enumerate() {
        let mut f = Fields::new(&src, t.get_ref(), t.span(), format!("step {}", i + 1));
        let dev = match (&device, &autonomous) {
            (Some(_), _) => DeviceKind::Driven,
            (None, Some(_)) => DeviceKind::Autonomous,
            (None, None) => DeviceKind::None,
        };
        let st = step(&mut f, i + 1, dev, &observers, &actor_versions)?;
        fits_timeout(&f, &st.action, timeout)?;
        steps.push(st);
    }

    for (i, s) in steps.iter().enumerate() {
        let Action::Expect(Expectation {
            resend: Some(_), ..
        }) = &s.action
        else {
            continue;
        };
        let after_publish = i > 0
            && matches!(
                &steps[i - 1].action,
                Action::Client {
                    action: ClientAction::Publish { .. },
                    actor,
                } if actor != "device"
            );
        if !after_publish {
            let t = &raw.step[i];
            return Err(Fields::new(&src, t.get_ref(), t.span(), format!("step {}", i + 1))
                .err("resend", "`resend` sends the previous step again: put it right after an observer's `publish` step"));
        }
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
        versions,
    })
}

fn parse_version(s: &str) -> Option<Version> {
    match s {
        "3.1.1" => Some(Version::V311),
        "5" | "5.0" => Some(Version::V5),
        "3.1" => Some(Version::V31),
        _ => None,
    }
}

/// Why a 5.0 key cannot be used by a client of this version.
fn needs_v5(key: &str, v: Version) -> Option<String> {
    (v != Version::V5).then(|| {
        format!(
            "`{key}` is MQTT 5.0 (§2.2.2: properties, subscription options and reason codes \
             exist only from 5.0) but this client speaks {}; set `version = \"5\"` on it{}",
            match v {
                Version::V31 => "3.1",
                _ => "3.1.1",
            },
            ", and in a file with `versions = [...]` keep 5.0-only keys out (write a 5.0 file)"
        )
    })
}

/// A `properties` table of a scenario file for one place, errors pointing
/// at the key.
fn properties(
    f: &mut Fields,
    key: &str,
    place: props::Place,
    raw: bool,
    v: Version,
) -> Result<Option<Properties>> {
    let Some(value) = f.raw(key) else {
        return Ok(None);
    };
    if let Some(why) = needs_v5(key, v) {
        return Err(f.err(key, why));
    }
    let toml::Value::Table(t) = value else {
        return Err(f.err(key, "expected a table, e.g. { session_expiry = 30 }"));
    };
    props::from_toml(t, place, raw)
        .map(Some)
        .map_err(|(k, why)| f.err(key, format!("`{k}`: {why}")))
}

fn wants(f: &mut Fields, v: Version) -> Result<Vec<(u8, props::Want)>> {
    let Some(value) = f.raw("properties") else {
        return Ok(Vec::new());
    };
    if let Some(why) = needs_v5("properties", v) {
        return Err(f.err("properties", why));
    }
    let toml::Value::Table(t) = value else {
        return Err(f.err(
            "properties",
            "expected a table, e.g. { message_expiry = \"*\" }",
        ));
    };
    props::wants_from_toml(t).map_err(|(k, why)| f.err("properties", format!("`{k}`: {why}")))
}

fn line_of_top_key(src: &Source, key: &str) -> usize {
    src.text
        .lines()
        .position(|l| l.trim_start().starts_with(key))
        .map(|i| i + 1)
        .unwrap_or(1)
}

const CLIENT_KEYS: &[&str] = &[
    "properties",
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
    file_version: Option<Version>,
    multi: bool,
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
        Some(_) if multi => {
            return Err(f.err(
                "version",
                "the file's `versions` decides each run's version; remove this",
            ))
        }
        None => file_version.unwrap_or(Version::V311),
        Some(s) => parse_version(s).ok_or_else(|| {
            f.err(
                "version",
                format!("`{s}` is not one of \"3.1\", \"3.1.1\", \"5\""),
            )
        })?,
    };
    let v = if multi { Version::V311 } else { opts.version };
    if let Some(p) = properties(
        &mut f,
        "properties",
        props::Place::Packet(PacketType::Connect),
        false,
        v,
    )? {
        opts.properties = p;
    }
    if let Some(w) = f.raw("will") {
        opts.will = Some(will(src, &f, w, v)?);
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

fn will(src: &Source, parent: &Fields, v: &toml::Value, version: Version) -> Result<Will> {
    let toml::Value::Table(t) = v else {
        return Err(parent.err(
            "will",
            "expected a table like { topic = \"a/b\", payload = \"offline\", qos = 1 }",
        ));
    };
    let offset = src.offset_of_line(parent.line_of_key("will"));
    let mut f = Fields::new(src, t, offset..offset, format!("{}: will", parent.what()));
    let topic = f.req_str("topic")?;
    topic::validate_topic(&topic).map_err(|e| f.err("topic", e))?;
    let w = Will {
        topic,
        payload: f.payload()?.unwrap_or_default(),
        qos: f.qos("qos")?.unwrap_or(QoS::AtMostOnce),
        retain: f.bool("retain")?.unwrap_or(false),
        properties: properties(&mut f, "properties", props::Place::Will, false, version)?
            .unwrap_or_default(),
    };
    f.finish(&[
        "topic",
        "payload",
        "payload_hex",
        "qos",
        "retain",
        "properties",
    ])?;
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
    "device", "observer", "net", "ip", "wifi", "dns", "dhcp", "broker", "board", "wait", "expect",
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
const IP_FAULTS: &[&str] = &[
    "loss",
    "duplicate",
    "reorder",
    "delay",
    "mss",
    "refuse",
    "accept",
    "blackhole",
    "heal",
    "clear",
];
const WIFI_FAULTS: &[&str] = &["off", "on", "roam", "weak"];
const DNS_FAULTS: &[&str] = &["fail", "timeout", "heal"];
const DHCP_FAULTS: &[&str] = &["off", "on"];
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
    "reason",
    "uart",
    "board",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum DeviceKind {
    None,
    /// Driven through the agent by `device = "verb"` steps.
    Driven,
    /// Runs its own firmware; only watched.
    Autonomous,
}

/// An expectation given longer than the scenario's timeout is not what it
/// says: the scenario would end in its timeout first. (A `wait` past the
/// timeout stays allowed: cutting a scenario short is how its timeout is
/// shown to work.)
fn fits_timeout(f: &Fields, action: &Action, timeout: Duration) -> Result<()> {
    let (key, d) = match action {
        Action::Expect(e) => ("within", e.within),
        _ => return Ok(()),
    };
    if d > timeout {
        return Err(f.err(
            key,
            format!(
                "{} cannot fit the scenario's timeout of {}: shorten it, or raise the top-level `timeout`",
                super::duration::format(d),
                super::duration::format(timeout)
            ),
        ));
    }
    Ok(())
}

fn step(
    f: &mut Fields,
    index: usize,
    dev: DeviceKind,
    observers: &BTreeMap<String, ClientSpec>,
    versions: &BTreeMap<String, Version>,
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
    let note = f.str("note")?;
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
            let v = versions.get("device").copied().unwrap_or(Version::V311);
            Action::Client {
                actor: "device".into(),
                action: client_action(f, "device", &verb, &mut allowed, v)?,
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
            let v = versions.get(&name).copied().unwrap_or(Version::V311);
            Action::Client {
                action: client_action(f, "observer", &verb, &mut allowed, v)?,
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
        "ip" | "wifi" | "dns" | "dhcp" => {
            if !has_device {
                return Err(f.err(
                    key,
                    "a network fault acts on the device's board: the scenario has no [device] table",
                ));
            }
            let line = f.line_of_key(key);
            Action::Network {
                fault: network_fault(f, key, &mut allowed)?,
                line,
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
            allowed.extend(["actor", "within", "resend"]);
            let resend = f.duration("resend")?;
            if resend.is_some_and(|r| r.is_zero()) {
                return Err(f.err("resend", "give a period above zero, e.g. resend = \"2s\""));
            }
            let v = versions.get(&actor).copied().unwrap_or(Version::V311);
            Action::Expect(Expectation {
                what: expectation(f, &what, &mut allowed, v)?,
                actor,
                within,
                resend,
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
        note,
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
    v: Version,
) -> Result<ClientAction> {
    let action = match verb {
        "connect" => {
            allowed.extend([
                "clean_session",
                "keepalive",
                "wait_connack",
                "session_present",
                "properties",
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
                properties: properties(
                    f,
                    "properties",
                    props::Place::Packet(PacketType::Connect),
                    false,
                    v,
                )?,
                wait,
                session_present,
            }
        }
        "subscribe" => {
            allowed.extend([
                "filter",
                "qos",
                "properties",
                "no_local",
                "retain_as_published",
                "retain_handling",
            ]);
            let filter = f.req_str("filter")?;
            topic::validate_filter(&filter).map_err(|e| f.err("filter", e))?;
            let mut options = 0u8;
            for (key, bit) in [("no_local", 0x04u8), ("retain_as_published", 0x08)] {
                if let Some(on) = f.bool(key)? {
                    if let Some(why) = needs_v5(key, v) {
                        return Err(f.err(key, why));
                    }
                    if on {
                        options |= bit;
                    }
                }
            }
            if options & 0x04 != 0 && filter.starts_with("$share/") {
                return Err(f.err(
                    "no_local",
                    "No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4]",
                ));
            }
            if let Some(rh) = f.int("retain_handling", 0, 2)? {
                if let Some(why) = needs_v5("retain_handling", v) {
                    return Err(f.err("retain_handling", why));
                }
                options |= (rh as u8) << 4;
            }
            ClientAction::Subscribe {
                filter,
                qos: f.qos("qos")?.unwrap_or(QoS::AtMostOnce),
                options,
                properties: properties(
                    f,
                    "properties",
                    props::Place::Packet(PacketType::Subscribe),
                    false,
                    v,
                )?
                .unwrap_or_default(),
            }
        }
        "unsubscribe" => {
            allowed.push("filter");
            let filter = f.req_str("filter")?;
            topic::validate_filter(&filter).map_err(|e| f.err("filter", e))?;
            ClientAction::Unsubscribe { filter }
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
                "properties",
                "raw",
            ]);
            let raw = f.bool("raw")?.unwrap_or(false);
            let props = properties(
                f,
                "properties",
                props::Place::Packet(PacketType::Publish),
                raw,
                v,
            )?
            .unwrap_or_default();
            if raw && v != Version::V5 {
                return Err(f.err("raw", needs_v5("raw", v).unwrap_or_default()));
            }
            // An empty topic is how 5.0 uses an alias already set; a raw
            // publish may send any topic at all.
            let topic = f.req_str("topic")?;
            if !raw {
                topic::validate_topic(&topic).map_err(|e| f.err("topic", e))?;
            } else if topic.len() > usize::from(u16::MAX) {
                // Rules may be broken on purpose; the wire format cannot:
                // a two-byte length prefix would send another topic.
                return Err(f.err(
                    "topic",
                    format!(
                        "{} bytes: even a raw topic is at most 65,535 bytes, all its length prefix can say [MQTT-1.5.3]",
                        topic.len()
                    ),
                ));
            }
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
                properties: props,
                raw,
            }
        }
        "disconnect" => {
            allowed.extend(["reason", "properties"]);
            let code = f.int("reason", 0, 255)?;
            if code.is_some() {
                if let Some(why) = needs_v5("reason", v) {
                    return Err(f.err("reason", why));
                }
            }
            let props = properties(
                f,
                "properties",
                props::Place::Packet(PacketType::Disconnect),
                false,
                v,
            )?;
            if let Some(c) = code {
                if !crate::mqtt::codec::reason_allowed(PacketType::Disconnect, Version::V5, c as u8)
                {
                    return Err(f.err(
                        "reason",
                        format!(
                            "0x{c:02x} is not a DISCONNECT reason code (§3.14.2.1) [MQTT-3.14.2-1]"
                        ),
                    ));
                }
            }
            match (code, props) {
                (None, None) => ClientAction::Disconnect,
                (c, p) => ClientAction::DisconnectWith {
                    code: c.unwrap_or(0) as u8,
                    properties: p.unwrap_or_default(),
                },
            }
        }
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

/// A probability: 0 to 1 as a number, or a percentage string (`"20%"`).
fn rate(f: &mut Fields, key: &str) -> Result<Option<f64>> {
    let v = match f.raw(key) {
        None => return Ok(None),
        Some(toml::Value::Float(x)) => crate::net::fault::check_rate(*x),
        Some(toml::Value::Integer(i)) => crate::net::fault::check_rate(*i as f64),
        Some(toml::Value::String(s)) => crate::net::fault::parse_rate(s),
        Some(other) => Err(format!(
            "expected a probability (0.2 or \"20%\"), found {}",
            other.type_str()
        )),
    };
    v.map(Some).map_err(|e| f.err(key, e))
}

/// `rate = 0.2` or `nth = 3`, one of them.
fn amount(f: &mut Fields, what: &str) -> Result<crate::net::Amount> {
    use crate::net::Amount;
    let r = rate(f, "rate")?;
    let n = f.int("nth", 1, u32::MAX as i64)?;
    match (r, n) {
        (Some(_), Some(_)) => Err(f.err(
            "nth",
            "give either `rate` (each segment with that probability) or `nth` (that new data \
             segment of each connection), not both",
        )),
        (Some(r), None) => Ok(Amount::Rate(r)),
        (None, Some(n)) => Ok(Amount::Nth(n as u32)),
        (None, None) => Err(f.err_table(format!(
            "`ip = \"{what}\"` needs `rate` (e.g. rate = 0.2) or `nth` (e.g. nth = 3)"
        ))),
    }
}

/// The families of the board's network faults, as step keys and as the
/// first word of an `observe` command.
pub const NETWORK_FAMILIES: &[&str] = &["ip", "wifi", "dns", "dhcp"];

/// A network fault typed as one line (`mqtt-hil observe`'s stdin): the
/// family, the fault and the step's fields as `key=value`, read by the
/// same code as a scenario step, e.g. `ip loss rate=0.2 dir=to_broker`,
/// `ip mss bytes=1`, `wifi weak loss=30%`, `dns fail`, `dhcp on`.
pub fn parse_network_command(line: &str) -> std::result::Result<crate::net::NetFault, String> {
    let mut words = line.split_whitespace();
    let family = words.next().unwrap_or_default().to_ascii_lowercase();
    if !NETWORK_FAMILIES.contains(&family.as_str()) {
        return Err(format!(
            "`{family}` is not a network fault family: {}",
            NETWORK_FAMILIES.join(", ")
        ));
    }
    let name = words.next().ok_or_else(|| {
        format!(
            "`{family}` needs a fault, e.g. `{family} {}`",
            match family.as_str() {
                "ip" => "loss rate=0.2",
                "wifi" => "off",
                "dns" => "fail",
                _ => "off",
            }
        )
    })?;
    let mut table = toml::Table::new();
    table.insert(
        family.clone(),
        toml::Value::String(name.to_ascii_lowercase()),
    );
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("`{w}`: write parameters as key=value, e.g. rate=0.2"))?;
        // A number or a boolean as TOML reads it; anything else is text
        // (`100ms`, `20%`, `to_broker`).
        let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(v.to_string()));
        table.insert(k.to_string(), value);
    }
    let src = Source {
        path: Path::new("<stdin>"),
        text: line,
    };
    let mut f = Fields::new(&src, &table, 0..line.len(), "command");
    let mut allowed: Vec<&str> = vec![match family.as_str() {
        "ip" => "ip",
        "wifi" => "wifi",
        "dns" => "dns",
        _ => "dhcp",
    }];
    let strip = |e: Error| match e {
        Error::Input { message, .. } => message.replacen("command: ", "", 1),
        other => other.to_string(),
    };
    let fault = network_fault(&mut f, allowed[0], &mut allowed).map_err(strip)?;
    f.finish(&allowed).map_err(strip)?;
    Ok(fault)
}

/// An `ip`, `wifi`, `dns` or `dhcp` step (docs/network.md).
fn network_fault(
    f: &mut Fields,
    family: &str,
    allowed: &mut Vec<&'static str>,
) -> Result<crate::net::NetFault> {
    use crate::net::{IpFault, NetFault, Wifi};
    let name = f.req_str(family)?;
    Ok(match family {
        "wifi" => NetFault::Wifi(match name.as_str() {
            "off" => Wifi::Off,
            "on" => Wifi::On,
            "roam" => Wifi::Roam,
            "weak" => {
                allowed.push("loss");
                Wifi::Weak {
                    loss: rate(f, "loss")?.ok_or_else(|| {
                        f.err_table("`wifi = \"weak\"` needs `loss`, e.g. loss = 0.3 (0 ends it)")
                    })?,
                }
            }
            other => return Err(unknown(f, "wifi", "wifi fault", other, WIFI_FAULTS)),
        }),
        "dns" => NetFault::Dns(match name.as_str() {
            "fail" => crate::net::dns::Mode::Fail,
            "timeout" => crate::net::dns::Mode::Timeout,
            "heal" => crate::net::dns::Mode::Answer,
            other => return Err(unknown(f, "dns", "dns fault", other, DNS_FAULTS)),
        }),
        "dhcp" => NetFault::Dhcp(match name.as_str() {
            "off" => false,
            "on" => true,
            other => return Err(unknown(f, "dhcp", "dhcp fault", other, DHCP_FAULTS)),
        }),
        _ => {
            let fault = match name.as_str() {
                "loss" => {
                    allowed.extend(["rate", "nth"]);
                    IpFault::Loss(amount(f, "loss")?)
                }
                "duplicate" => {
                    allowed.extend(["rate", "nth"]);
                    IpFault::Duplicate(amount(f, "duplicate")?)
                }
                "reorder" => {
                    allowed.extend(["rate", "gap"]);
                    IpFault::Reorder {
                        rate: rate(f, "rate")?.ok_or_else(|| {
                            f.err_table("`ip = \"reorder\"` needs `rate`, e.g. rate = 0.2")
                        })?,
                        gap: f.duration("gap")?.unwrap_or(Duration::from_millis(50)),
                    }
                }
                "delay" => {
                    allowed.extend(["delay", "jitter"]);
                    IpFault::Delay {
                        delay: f.duration("delay")?.ok_or_else(|| {
                            f.err_table("`ip = \"delay\"` needs `delay`, e.g. delay = \"100ms\"")
                        })?,
                        jitter: f.duration("jitter")?.unwrap_or_default(),
                    }
                }
                "mss" => {
                    allowed.push("bytes");
                    IpFault::Mss(f.int("bytes", 1, 1460)?.ok_or_else(|| {
                        f.err_table("`ip = \"mss\"` needs `bytes`, e.g. bytes = 1")
                    })? as u16)
                }
                "refuse" => IpFault::Refuse,
                "accept" => IpFault::Accept,
                "blackhole" => IpFault::Blackhole,
                "heal" => IpFault::Heal,
                "clear" => IpFault::Clear,
                other => return Err(unknown(f, "ip", "ip fault", other, IP_FAULTS)),
            };
            // Refusal and `clear` act on the network as a whole.
            let dir = if matches!(fault, IpFault::Refuse | IpFault::Accept | IpFault::Clear) {
                None
            } else {
                allowed.push("dir");
                direction(f)?
            };
            NetFault::Ip { dir, fault }
        }
    })
}

fn expectation(
    f: &mut Fields,
    what: &str,
    allowed: &mut Vec<&'static str>,
    v: Version,
) -> Result<Expect> {
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
                "properties",
            ]);
            let topic = f.str("topic")?;
            if let Some(t) = &topic {
                topic::validate_filter(t).map_err(|e| f.err("topic", e))?;
            }
            Expect::Message {
                properties: wants(f, v)?,
                topic,
                payload: f.payload()?,
                qos: f.qos("qos")?,
                retain: f.bool("retain")?,
                count: f.int("count", 0, 1_000_000)?.unwrap_or(1) as u32,
                at_least: f.bool("at_least")?.unwrap_or(false),
            }
        }
        "no_message" => {
            allowed.extend(["topic", "payload", "payload_hex"]);
            let topic = f.str("topic")?;
            if let Some(t) = &topic {
                topic::validate_filter(t).map_err(|e| f.err("topic", e))?;
            }
            Expect::NoMessage {
                topic,
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
        "uart" => {
            allowed.push("contains");
            let contains = f.req_str("contains")?;
            if contains.is_empty() {
                return Err(f.err("contains", "give the text the line must contain"));
            }
            Expect::Uart { contains }
        }
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
        "packet" | "reason" => {
            allowed.extend(["packet", "dir", "count", "code", "properties"]);
            let code = f.int("code", 0, 255)?.map(|c| c as u8);
            if what == "reason" && code.is_none() {
                return Err(f.err_table("`expect = \"reason\"` needs `code`, e.g. code = 0x8E"));
            }
            if let Some(c) = code {
                if c != 0 {
                    if let Some(why) = needs_v5("code", v) {
                        return Err(f.err("code", why));
                    }
                }
            }
            Expect::Packet {
                packet: packet_type(f)?,
                dir: direction(f)?,
                count: f.int("count", 1, 1_000_000)?.unwrap_or(1) as u32,
                code,
                properties: wants(f, v)?,
            }
        }
        "board" => {
            allowed.extend(["event", "count"]);
            let event = f.str("event")?.ok_or_else(|| {
                f.err_table("`expect = \"board\"` needs `event`, e.g. event = \"watchdog reset\"")
            })?;
            if event.trim().is_empty() {
                return Err(f.err(
                    "event",
                    "empty: name the board event, e.g. \"watchdog reset\"",
                ));
            }
            Expect::Board {
                event,
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
    let raw: RawChecks = toml::from_str(&text).map_err(|e| src.syntax_error(&e))?;
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
