//! `codec`: every frame a peer sends that the codec rejects is a protocol
//! violation of its sender. The proxy forwards such bytes unchanged and
//! records them as a `Malformed` event with the codec's error, which names
//! the field, the byte and, where the specification numbers it, the rule
//! (a SUBSCRIBE or QoS > 0 PUBLISH with packet identifier 0 is
//! [MQTT-2.3.1-1], reserved flag bits [MQTT-2.2.2-2], a topic name with a
//! wildcard [MQTT-3.3.2-2]...). The violation carries that rule when it is
//! a statement of the connection's version (scenarios/spec/); an error the
//! specification does not number (a field running past the end of the
//! frame, bytes after the last field, a section reference) is
//! `malformed-packet`, with the codec's words in the message.
//!
//! Every actor is judged — the device, the observers, and the broker
//! towards each of them — except frames an actor was told to send as they
//! are: a step whose summary says `raw` (a scenario judging the broker's
//! reaction to a bad packet) makes its actor's bad frames during that step
//! a note, not a violation.
//!
//! After a framing error (a reserved packet type, a remaining length over
//! four bytes) the stream cannot be split into packets again, so only the
//! first undecodable frame of a connection and direction is a violation;
//! the bytes after it are counted in a note.

use std::collections::HashMap;

use regex::Regex;

use super::index::Index;
use super::{Checker, Verdict};
use crate::history::{ConnId, Dir, EventKind, History};
use crate::mqtt::Version;

pub struct CodecChecker;

/// The statement a codec error names: the first `[MQTT-x.y-n]` in it.
/// Section references (`[MQTT-2.2.1]`) are not statements.
pub fn rule_of(error: &str) -> Option<String> {
    let re = Regex::new(r"MQTT-[0-9][0-9.-]*-[0-9]+\b").expect("valid");
    re.find(error).map(|m| m.as_str().to_string())
}

/// Whether `id` is a numbered statement of `version` (the statement lists
/// in scenarios/spec/, embedded): a codec error cites ids of either version,
/// and a violation names only a statement of the connection's own.
pub fn is_statement(version: Version, id: &str) -> bool {
    let text = match version {
        Version::V5 => include_str!("../../../scenarios/spec/mqtt-5.0.toml"),
        _ => include_str!("../../../scenarios/spec/mqtt-3.1.1.toml"),
    };
    text.contains(&format!("id = \"{id}\""))
}

/// Harness rule for a frame the codec rejects without a numbered statement.
pub const MALFORMED: &str = "malformed-packet";

impl Checker for CodecChecker {
    fn name(&self) -> &str {
        "codec"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let mut step = String::new();
        // (conn, dir) -> (first violating event, further undecodable chunks)
        let mut broken: HashMap<(ConnId, bool), (u64, usize)> = HashMap::new();
        let mut frames = 0usize;
        for ev in &history.events {
            match &ev.kind {
                EventKind::Step { summary, .. } => step = summary.clone(),
                EventKind::Teardown => step.clear(),
                EventKind::Packet { .. } => frames += 1,
                EventKind::Malformed {
                    conn,
                    actor,
                    dir,
                    raw,
                    error,
                } => {
                    frames += 1;
                    let key = (*conn, *dir == Dir::ToBroker);
                    if let Some((_, more)) = broken.get_mut(&key) {
                        *more += 1;
                        continue;
                    }
                    let to_broker = *dir == Dir::ToBroker;
                    let on_purpose = to_broker
                        && step.starts_with(&format!("{actor} "))
                        && step.split_whitespace().any(|w| w == "raw");
                    if on_purpose {
                        v.note(format!(
                            "{actor} sent an undecodable frame on {conn} as its step asked (`{step}`): {error}"
                        ));
                        continue;
                    }
                    broken.insert(key, (ev.seq, 0));
                    let sender = if to_broker {
                        actor.clone()
                    } else {
                        format!("the broker (to {actor})")
                    };
                    let version = ix
                        .by_id
                        .get(conn)
                        .map(|&i| ix.conns[i].version())
                        .unwrap_or(Version::V311);
                    let rule = rule_of(error)
                        .filter(|r| is_statement(version, r))
                        .unwrap_or_else(|| MALFORMED.to_string());
                    v.fail(
                        rule,
                        format!(
                            "{sender} sent a frame the codec rejects on {conn}: {error} ({} bytes: {})",
                            raw.len(),
                            hex_head(raw)
                        ),
                        vec![ev.seq],
                    );
                }
                _ => {}
            }
        }
        for ((conn, up), (seq, more)) in &broken {
            if *more > 0 {
                v.note(format!(
                    "{more} more undecodable chunk(s) followed event #{seq} on {conn} {} (the stream could not be framed again)",
                    if *up { "towards the broker" } else { "towards the client" }
                ));
            }
        }
        v.violations.sort_by_key(|x| x.events.first().copied());
        v.notes.sort();
        v.notes
            .insert(0, format!("{frames} frames decoded or rejected"));
        v
    }
}

/// The first bytes of a frame in hex, for the message.
fn hex_head(raw: &[u8]) -> String {
    let mut s: String = raw
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    if raw.len() > 16 {
        s.push_str(" …");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_the_first_statement_the_error_names() {
        assert_eq!(
            rule_of("SUBSCRIBE packet identifier at byte 2 is 0 [MQTT-2.3.1-1]").as_deref(),
            Some("MQTT-2.3.1-1")
        );
        assert_eq!(
            rule_of("CONNECT protocol ... [MQTT-3.1.2-1] [MQTT-3.1.2-2]").as_deref(),
            Some("MQTT-3.1.2-1")
        );
        assert_eq!(rule_of("PUBLISH has 2 unexpected byte(s)"), None);
        assert_eq!(rule_of("packet type 0 is reserved [MQTT-2.2.1]"), None);
        assert_eq!(rule_of("x [MQTT-3-8.3-4]").as_deref(), Some("MQTT-3-8.3-4"));
        assert!(is_statement(Version::V311, "MQTT-2.3.1-1"));
        assert!(!is_statement(Version::V311, "MQTT-3.3.2-8"));
        assert!(is_statement(Version::V5, "MQTT-3.3.2-8"));
    }
}
