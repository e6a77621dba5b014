//! The generic device suite: scenario files written once
//! (`scenarios/device/*.toml`) against placeholders that a device
//! description fills, so one suite judges any device.
//!
//! Expansion happens while the scenario loader reads each table
//! ([`crate::scenario::parse_with`]), so every error still names the suite
//! file, line and field:
//! - `{publish.N.topic}`, `{command.N.topic}`, `{command.N.payload}`,
//!   `{command.N.at_limit}` / `{command.N.over_limit}` (the payload padded
//!   to the declared limit, and to twice it), `{keepalive}`,
//!   `{loss.short}` / `{loss.long}` (network losses well inside and well
//!   beyond 1.5 × keep alive) and `{reconnect}` (how long the device may
//!   take to come back) in any string; N counts modulo the entries, so a
//!   device with one command gets it for every N;
//! - `"{periodic}"` and `"{topics}"` as list items: its periodic topics (as
//!   filters) and every topic it may publish on;
//! - a `publish` step with `command = N`: the topic, payload (unless the
//!   step gives one, e.g. `"{command.N.at_limit}"`) and QoS of command N;
//! - `expect = "reaction"` with `command = N`: what the description says
//!   the device does when obeying it (`expect = "published"` on its state
//!   topic, or `expect = "uart"`);
//! - `[device] needs = [...]` (`command`, `keepalive`, `command_limit`):
//!   a scenario the description cannot fill is skipped, with the reason;
//!   for a device without commands, the steps with `command = N` are left
//!   out of the others.
//!
//! `{client_id}` and `{n}` are left for the runner. Every expanded
//! scenario also gets the description's invariants ([`invariants`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::*;
use crate::check::InvariantSpec;
use crate::error::{Error, Result};
use crate::scenario::{self, Invariant, Part, Scenario};

/// What a suite's `needs` may name.
pub const NEEDS: &[&str] = &["command", "keepalive", "command_limit"];

/// One suite file, expanded for a device.
#[derive(Debug)]
pub enum Expanded {
    Run(Box<Scenario>),
    /// The description lacks what the scenario needs.
    Skipped {
        path: PathBuf,
        reason: String,
        /// Its id, name and path, to report it SKIPPED (no steps).
        stand_in: Box<Scenario>,
    },
}

/// Expands every suite file under `paths` (files, or folders of `*.toml`).
pub fn load_suite(paths: &[PathBuf], desc: &Description) -> Result<Vec<Expanded>> {
    let mut out = Vec::new();
    for f in scenario::discover(paths)? {
        out.push(load(&f, desc)?);
    }
    Ok(out)
}

/// Suite scenarios to run, and stand-ins for the suite files skipped,
/// with the reason.
pub type Selection = (Vec<Scenario>, Vec<(Scenario, String)>);

/// What `mqtt-hil run --device FILE PATHS` runs: the suite files under
/// `paths` whose id contains `filter`, expanded for the device described
/// in `description`, and those skipped with the reason.
pub fn load_for(description: &Path, paths: &[PathBuf], filter: Option<&str>) -> Result<Selection> {
    let desc = super::load(description)?;
    let (mut run, mut skipped) = (Vec::new(), Vec::new());
    for e in load_suite(paths, &desc)? {
        match e {
            Expanded::Run(s) => {
                if filter.is_none_or(|f| s.id.contains(f)) {
                    run.push(*s);
                }
            }
            Expanded::Skipped {
                reason, stand_in, ..
            } => {
                if filter.is_none_or(|f| stand_in.id.contains(f)) {
                    skipped.push((*stand_in, reason));
                }
            }
        }
    }
    Ok((run, skipped))
}

pub fn load(path: &Path, desc: &Description) -> Result<Expanded> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading suite file {}", path.display()), e))?;
    expand(path, &text, desc)
}

pub fn expand(path: &Path, text: &str, desc: &Description) -> Result<Expanded> {
    if let Some(reason) = unmet_need(path, text, desc)? {
        return Ok(Expanded::Skipped {
            path: path.to_path_buf(),
            reason,
            stand_in: Box::new(stand_in(path, text)),
        });
    }
    let text = &with_room_for_waits(text, desc);
    let mut s = scenario::parse_with(path, text, &mut |part, table| {
        if part == Part::Device {
            table.remove("needs");
        }
        if let Part::Step(_) = part {
            reaction(table, desc)?;
        }
        fill_table(table, desc)
    })?;
    s.invariants.extend(
        invariants(desc)
            .into_iter()
            .map(|spec| Invariant { line: 0, spec }),
    );
    Ok(Expanded::Run(Box::new(s)))
}

/// A suite file's `timeout` is written for a quick device; the waits its
/// placeholders stand for grow with the description (a keep alive of 30 s
/// makes `{reconnect}` 58 s). The timeout grows by every such wait the file
/// names, so a slow but correct device is never cut short, and a `within`
/// never outgrows its scenario. Only the top-level line changes: errors
/// still point at the suite file's lines.
fn with_room_for_waits(text: &str, desc: &Description) -> String {
    let extra: Duration = ["keepalive", "loss.short", "loss.long", "reconnect"]
        .iter()
        .filter_map(|name| {
            let uses = text.matches(&format!("{{{name}}}")).count() as u32;
            let d = scenario::duration::parse(&value(name, desc).ok()?).ok()?;
            Some(d * uses)
        })
        .sum();
    let mut out = String::with_capacity(text.len() + 8);
    let mut top = true;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            top = false;
        }
        let written = top
            .then(|| trimmed.strip_prefix("timeout"))
            .flatten()
            .and_then(|r| r.trim_start().strip_prefix('='))
            .map(|r| r.trim().trim_matches('"'))
            .and_then(|v| scenario::duration::parse(v).ok());
        match written {
            Some(t) if !extra.is_zero() => {
                let end = if line.ends_with("\r\n") {
                    "\r\n"
                } else if line.ends_with('\n') {
                    "\n"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "timeout = \"{}\"{end}",
                    scenario::duration::format(t + extra)
                ));
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// The checks every suite scenario makes of the device, from its
/// description: its numbered readings keep their claimed QoS (`sequence`),
/// it publishes only on its declared topics (`publish_allowed`), it
/// resubscribes after a clean session (when it takes commands), it backs
/// off between connection attempts, and its CONNECTs carry the declared
/// keep alive and will (`declared`). When the broker publishes the will is
/// the broker's conduct, not the device's: the `will` check is left to
/// the broker scenarios.
pub fn invariants(desc: &Description) -> Vec<InvariantSpec> {
    let mut out = Vec::new();
    for p in &desc.publishes {
        let Some(n) = &p.number else { continue };
        let (json, regex) = match n {
            Number::Json(j) => (Some(j.clone()), None),
            Number::Regex(r) => (None, Some(r.clone())),
        };
        out.push(InvariantSpec::Sequence {
            topic: p.topic.clone(),
            json,
            regex,
            actor: "device".into(),
            qos: Some(p.qos.as_u8()),
            skip_unnumbered: p.announcements,
        });
    }
    out.push(InvariantSpec::PublishAllowed {
        actor: "device".into(),
        topics: desc.allowed_topics(),
    });
    if !desc.commands.is_empty() {
        out.push(InvariantSpec::Resubscribe {
            actor: "device".into(),
            within: Duration::from_secs(2),
        });
    }
    out.push(InvariantSpec::Backoff {
        actor: "device".into(),
        max_per_second: 5,
    });
    out.push(InvariantSpec::Declared {
        keepalive: desc.keepalive,
        will_topic: desc.will.as_ref().map(|w| w.topic.clone()),
        will_payload: desc.will.as_ref().and_then(|w| w.payload.clone()),
    });
    out
}

/// A scenario with the file's id, name and description and no steps, for
/// reporting a skipped file.
fn stand_in(path: &Path, text: &str) -> Scenario {
    let doc: toml::Table = toml::from_str(text).unwrap_or_default();
    let get = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Scenario {
        path: path.to_path_buf(),
        id: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        name: get("name").unwrap_or_default(),
        description: get("description"),
        tags: Vec::new(),
        timeout: Duration::ZERO,
        requires: Vec::new(),
        device: None,
        autonomous: Some(Default::default()),
        observers: Default::default(),
        steps: Vec::new(),
        invariants: Vec::new(),
        versions: Vec::new(),
    }
}

/// Reads `[device] needs` (before anything else, so a scenario the
/// description cannot fill is skipped rather than refused).
fn unmet_need(path: &Path, text: &str, desc: &Description) -> Result<Option<String>> {
    // Syntax errors are the loader's to report, with their line.
    let Ok(doc) = toml::from_str::<toml::Table>(text) else {
        return Ok(None);
    };
    let Some(needs) = doc
        .get("device")
        .and_then(|d| d.as_table())
        .and_then(|d| d.get("needs"))
    else {
        return Ok(None);
    };
    let line = text
        .lines()
        .position(|l| l.trim_start().starts_with("needs"))
        .map(|i| i + 1)
        .unwrap_or(1);
    let bad = |why: String| Error::Input {
        file: path.to_path_buf(),
        line,
        message: format!("[device]: field `needs`: {why}"),
    };
    let Some(items) = needs.as_array() else {
        return Err(bad("expected a list, e.g. needs = [\"command\"]".into()));
    };
    for item in items {
        let need = item
            .as_str()
            .ok_or_else(|| bad("expected strings".into()))?;
        let lacking = match need {
            "command" => desc
                .commands
                .is_empty()
                .then_some("declares no [[command]]"),
            "keepalive" => desc
                .keepalive
                .is_none()
                .then_some("declares no `keepalive`"),
            "command_limit" => desc
                .limits
                .command_payload
                .is_none()
                .then_some("declares no [limits] `command_payload`"),
            other => {
                let near = scenario::closest_word(other, NEEDS)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(bad(format!(
                    "unknown need `{other}`{near}; expected one of: {}",
                    NEEDS.join(", ")
                )));
            }
        };
        if let Some(what) = lacking {
            return Ok(Some(format!(
                "the device description {} {what}",
                desc.path.display()
            )));
        }
    }
    Ok(None)
}

/// `expect = "reaction"`, `command = N` → the expectation the description
/// gives for obeying command N.
fn reaction(
    table: &mut toml::Table,
    desc: &Description,
) -> std::result::Result<(), (String, String)> {
    // A device without commands skips the steps that send one or wait for
    // its reaction; the rest of the scenario (the faults, the reconnects,
    // the checks) still applies.
    if desc.commands.is_empty() && table.contains_key("command") {
        table.clear();
        return Ok(());
    }
    let publish = table
        .get("observer")
        .and_then(|o| o.as_table())
        .is_some_and(|o| o.values().any(|v| v.as_str() == Some("publish")));
    if publish && table.contains_key("command") {
        let n = command_number(table)?;
        let c = command(desc, n).map_err(|why| ("command".to_string(), why))?;
        table.insert("topic".into(), c.topic.clone().into());
        if !table.contains_key("payload") {
            table.insert("payload".into(), c.payload.clone().into());
        }
        table.insert("qos".into(), toml::Value::Integer(c.qos.as_u8() as i64));
        return Ok(());
    }
    if table.get("expect").and_then(|v| v.as_str()) != Some("reaction") {
        if table.contains_key("command") {
            return Err((
                "command".into(),
                "`command` belongs to an observer's `publish` step or an `expect = \"reaction\"` step".into(),
            ));
        }
        return Ok(());
    }
    if !table.contains_key("command") {
        return Err((
            "expect".into(),
            "`expect = \"reaction\"` needs `command = N` (which command's reaction)".into(),
        ));
    }
    let n = command_number(table)?;
    let c = command(desc, n).map_err(|why| ("command".to_string(), why))?;
    match &c.reaction {
        Reaction::Publish { topic, payload } => {
            table.insert("expect".into(), "published".into());
            table.insert("topic".into(), topic.clone().into());
            if let Some(p) = payload {
                table.insert("payload".into(), p.clone().into());
            }
        }
        Reaction::Uart(text) => {
            table.insert("expect".into(), "uart".into());
            table.insert("contains".into(), text.clone().into());
        }
    }
    Ok(())
}

fn command_number(table: &mut toml::Table) -> std::result::Result<usize, (String, String)> {
    match table.remove("command") {
        Some(toml::Value::Integer(n)) if n >= 0 => Ok(n as usize),
        _ => Err((
            "command".into(),
            "expected a command number (0 is the description's first [[command]])".into(),
        )),
    }
}

fn command(desc: &Description, n: usize) -> std::result::Result<&Command, String> {
    if desc.commands.is_empty() {
        return Err(format!(
            "the device description {} declares no [[command]]: add `needs = [\"command\"]` to \
             [device], or give the step `command = N` (left out for such a device)",
            desc.path.display()
        ));
    }
    Ok(&desc.commands[n % desc.commands.len()])
}

/// Fills the placeholders in every string of a table (recursively).
fn fill_table(
    table: &mut toml::Table,
    desc: &Description,
) -> std::result::Result<(), (String, String)> {
    for (key, value) in table.iter_mut() {
        fill_value(value, desc).map_err(|why| (key.clone(), why))?;
    }
    Ok(())
}

fn fill_value(v: &mut toml::Value, desc: &Description) -> std::result::Result<(), String> {
    match v {
        toml::Value::String(s) => *s = fill(s, desc)?,
        toml::Value::Array(items) => {
            let mut out = Vec::new();
            for mut item in std::mem::take(items) {
                match item.as_str().and_then(|s| list(s, desc)) {
                    Some(expanded) => out.extend(expanded.into_iter().map(toml::Value::String)),
                    None => {
                        fill_value(&mut item, desc)?;
                        out.push(item);
                    }
                }
            }
            *items = out;
        }
        toml::Value::Table(t) => {
            for (_, value) in t.iter_mut() {
                fill_value(value, desc)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A list placeholder standing for several items.
fn list(s: &str, desc: &Description) -> Option<Vec<String>> {
    match s {
        "{periodic}" => Some(
            desc.publishes
                .iter()
                .filter(|p| p.periodic)
                .map(|p| p.topic.replace(crate::runner::CLIENT_ID, "+"))
                .collect(),
        ),
        "{topics}" => Some(desc.allowed_topics()),
        _ => None,
    }
}

/// Replaces every `{name}` in `s` but the runner's own (`{client_id}`, `{n}`).
pub fn fill(s: &str, desc: &Description) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        match name {
            "client_id" | "n" => out.push_str(&rest[start..start + end + 2]),
            _ => out.push_str(&value(name, desc)?),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

const SCALARS: &str = "{publish.N.topic}, {command.N.topic}, {command.N.payload}, \
     {command.N.at_limit}, {command.N.over_limit}, {keepalive}, {loss.short}, {loss.long}, \
     {reconnect} (and the lists \"{periodic}\", \"{topics}\")";

fn value(name: &str, desc: &Description) -> std::result::Result<String, String> {
    let unknown = || format!("unknown placeholder `{{{name}}}`; the suite may use {SCALARS}");
    let parts: Vec<&str> = name.split('.').collect();
    let keepalive = || {
        desc.keepalive
            .map(|k| Duration::from_secs(k as u64))
            .ok_or_else(|| {
                format!(
                    "`{{{name}}}` needs the device's keep alive, and {} declares no `keepalive`: \
                 add `needs = [\"keepalive\"]` to [device]",
                    desc.path.display()
                )
            })
    };
    let d = |d: Duration| scenario::duration::format(d);
    match parts.as_slice() {
        ["keepalive"] => Ok(d(keepalive()?)),
        // Well inside 1.5 x keep alive: the broker keeps the connection.
        ["loss", "short"] => Ok(d(keepalive()? / 2)),
        // Well past it: the broker has dropped the device (and sent its will).
        ["loss", "long"] => Ok(d(keepalive()? * 3 / 2 + Duration::from_secs(2))),
        // Noticing a dead connection (1.5 x keep alive, when known), its
        // longest wait between attempts, then one attempt and a resubscribe.
        ["reconnect"] => Ok(d(desc.retry_max
            + desc
                .keepalive
                .map(|k| Duration::from_secs(k as u64) * 3 / 2)
                .unwrap_or_default()
            + Duration::from_secs(5))),
        ["publish", n, "topic"] => {
            let n: usize = n.parse().map_err(|_| unknown())?;
            Ok(desc.publishes[n % desc.publishes.len()].topic.clone())
        }
        ["command", n, field] => {
            let n: usize = n.parse().map_err(|_| unknown())?;
            let c = command(desc, n)?;
            let limit = || {
                desc.limits.command_payload.ok_or_else(|| {
                    format!(
                        "`{{{name}}}` needs the device's command size limit, and {} declares no \
                         [limits] `command_payload`: add `needs = [\"command_limit\"]` to [device]",
                        desc.path.display()
                    )
                })
            };
            match *field {
                "topic" => Ok(c.topic.clone()),
                "payload" => Ok(c.payload.clone()),
                "at_limit" => Ok(c.padded(limit()?, desc.limits.fill)),
                "over_limit" => Ok(c.padded(limit()? * 2, desc.limits.fill)),
                _ => Err(unknown()),
            }
        }
        _ => Err(unknown()),
    }
}
