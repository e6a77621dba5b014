//! Reads a device description (TOML) into a [`Description`]: parsed raw,
//! then checked field by field with the scenario loader's helpers, so a bad
//! file is rejected before anything starts with `file:line: table: field
//! `x`: problem` and a did-you-mean for typos.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::model::*;
use crate::error::{Error, Result};
use crate::mqtt::{topic, QoS};
use crate::scenario::fields::{Fields, Source};

/// A connect loop that does not say how long it waits is given this long.
const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);

const TOP_KEYS: &[&str] = &[
    "name",
    "keepalive",
    "will",
    "retry_max",
    "publish",
    "command",
    "limits",
];
const PUBLISH_KEYS: &[&str] = &["topic", "qos", "json", "regex", "periodic", "announcements"];
const COMMAND_KEYS: &[&str] = &["topic", "payload", "qos", "reaction"];
const REACTION_KEYS: &[&str] = &["publish", "payload", "uart"];
const WILL_KEYS: &[&str] = &["topic", "payload", "qos", "retain"];
const LIMITS_KEYS: &[&str] = &["command_payload", "fill"];

/// The tables whose positions errors need; everything else is read from
/// the plain table, where unknown keys are caught.
#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    publish: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    command: Vec<Spanned<toml::Table>>,
    limits: Option<Spanned<toml::Table>>,
    will: Option<Spanned<toml::Table>>,
}

pub fn load(path: &Path) -> Result<Description> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading device description {}", path.display()), e))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Description> {
    let src = Source { path, text };
    let syntax = |e: toml::de::Error| src.syntax_error(&e);
    let doc: toml::Table = toml::from_str(text).map_err(syntax)?;
    let raw: Raw = toml::from_str(text).map_err(syntax)?;

    // Top-level keys are written before the first table header.
    let preamble = text
        .split_inclusive('\n')
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(str::len)
        .sum::<usize>();
    let mut top = Fields::new(&src, &doc, 0..preamble, "description");
    let name = top.str("name")?.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "device".into())
    });
    let keepalive = top.int("keepalive", 0, 65535)?.map(|k| k as u16);
    let retry_max = top.duration("retry_max")?.unwrap_or(DEFAULT_RETRY_MAX);
    for key in ["publish", "command", "limits", "will"] {
        top.raw(key);
    }
    top.finish(TOP_KEYS)?;

    let will = match &raw.will {
        None => None,
        Some(t) => {
            let mut f = Fields::new(&src, t.get_ref(), t.span(), "will");
            let w = DeclaredWill {
                topic: topic_name(&mut f, "topic")?,
                payload: f.str("payload")?,
                qos: f.qos("qos")?,
                retain: f.bool("retain")?,
            };
            f.finish(WILL_KEYS)?;
            Some(w)
        }
    };

    let mut publishes = Vec::new();
    for (i, t) in raw.publish.iter().enumerate() {
        let mut f = Fields::new(&src, t.get_ref(), t.span(), format!("publish {}", i + 1));
        publishes.push(publication(&mut f)?);
    }
    let mut commands = Vec::new();
    for (i, t) in raw.command.iter().enumerate() {
        let mut f = Fields::new(&src, t.get_ref(), t.span(), format!("command {}", i + 1));
        commands.push(command(&mut f)?);
    }
    if publishes.is_empty() {
        return Err(src.error(
            1,
            "the description declares no topic the device publishes on: add a [[publish]] table \
             with its `topic` (the suite judges a device by what it publishes)",
        ));
    }

    let limits = match &raw.limits {
        None => Limits::default(),
        Some(t) => {
            let mut f = Fields::new(&src, t.get_ref(), t.span(), "limits");
            let l = Limits {
                command_payload: f
                    .int("command_payload", 1, 256 * 1024 * 1024)?
                    .map(|n| n as usize),
                fill: match f.str("fill")? {
                    None => ' ',
                    Some(s) => {
                        let mut chars = s.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) => c,
                            _ => return Err(f.err("fill", format!("`{s}`: give one character"))),
                        }
                    }
                },
            };
            if let Some(n) = l.command_payload {
                if commands.is_empty() {
                    return Err(f.err(
                        "command_payload",
                        "a command size limit needs a [[command]] to send at that size",
                    ));
                }
                if let Some((i, c)) = commands
                    .iter()
                    .enumerate()
                    .find(|(_, c)| c.payload.len() > n)
                {
                    return Err(f.err(
                        "command_payload",
                        format!(
                            "{n} bytes is less than command {}'s own payload ({} bytes)",
                            i + 1,
                            c.payload.len()
                        ),
                    ));
                }
            }
            f.finish(LIMITS_KEYS)?;
            l
        }
    };

    Ok(Description {
        path: path.to_path_buf(),
        name,
        keepalive,
        will,
        retry_max,
        publishes,
        commands,
        limits,
    })
}

fn publication(f: &mut Fields) -> Result<Publication> {
    let topic = topic_name(f, "topic")?;
    let qos = f.qos("qos")?.unwrap_or(QoS::AtMostOnce);
    let number = match (f.str("json")?, f.str("regex")?) {
        (Some(_), Some(_)) => {
            return Err(f.err("regex", "give either `json` or `regex`, not both"));
        }
        (Some(j), None) => Some(Number::Json(j)),
        (None, Some(r)) => {
            regex::Regex::new(&r).map_err(|e| f.err("regex", e))?;
            Some(Number::Regex(r))
        }
        (None, None) => None,
    };
    let announcements = f.bool("announcements")?.unwrap_or(false);
    if announcements && number.is_none() {
        return Err(f.err(
            "announcements",
            "only a numbered topic (`json` or `regex`) can also carry announcements",
        ));
    }
    let p = Publication {
        topic,
        qos,
        number,
        periodic: f.bool("periodic")?.unwrap_or(false),
        announcements,
    };
    f.finish(PUBLISH_KEYS)?;
    Ok(p)
}

fn command(f: &mut Fields) -> Result<Command> {
    let topic = topic_name(f, "topic")?;
    let payload = f.req_str("payload")?;
    let qos = f.qos("qos")?.unwrap_or(QoS::AtLeastOnce);
    let reaction = match f.raw("reaction") {
        None => {
            return Err(f.err_table(
                "missing field `reaction`: say how the device shows it obeyed, e.g. \
                 reaction = { publish = \"devices/{client_id}/state\", payload = \"on\" } \
                 or reaction = { uart = \"light on\" }",
            ))
        }
        Some(toml::Value::Table(t)) => {
            let what = format!("{}: reaction", f.what());
            let mut r = f.nested("reaction", t, what);
            let reaction = match (r.has("publish"), r.has("uart")) {
                (true, true) => {
                    return Err(r.err("uart", "give either `publish` or `uart`, not both"))
                }
                (false, false) => {
                    return Err(r.err_table(
                        "no reaction given: `publish = \"TOPIC\"` (with `payload`) or `uart = \"TEXT\"`",
                    ))
                }
                (true, false) => Reaction::Publish {
                    topic: topic_name(&mut r, "publish")?,
                    payload: r.str("payload")?,
                },
                (false, true) => {
                    let text = r.req_str("uart")?;
                    if text.is_empty() {
                        return Err(r.err("uart", "give the text the line contains"));
                    }
                    Reaction::Uart(text)
                }
            };
            r.finish(REACTION_KEYS)?;
            reaction
        }
        Some(other) => {
            return Err(f.err(
                "reaction",
                format!(
                    "expected a table like {{ publish = \"TOPIC\", payload = \"on\" }}, found {}",
                    other.type_str()
                ),
            ))
        }
    };
    f.finish(COMMAND_KEYS)?;
    Ok(Command {
        topic,
        payload,
        qos,
        reaction,
    })
}

/// A topic name (not a filter): the device publishes or receives on
/// exactly this topic; `{client_id}` is the only placeholder.
fn topic_name(f: &mut Fields, key: &str) -> Result<String> {
    let t = f.req_str(key)?;
    topic::validate_topic(&t).map_err(|e| {
        f.err(
            key,
            format!("{e}: a topic is needed here, not a filter (write the topic itself)"),
        )
    })?;
    let rest = t.replace(crate::runner::CLIENT_ID, "");
    if rest.contains('{') || rest.contains('}') {
        return Err(f.err(
            key,
            format!(
                "`{t}`: `{}` is the only placeholder a description may use",
                crate::runner::CLIENT_ID
            ),
        ));
    }
    Ok(t)
}
