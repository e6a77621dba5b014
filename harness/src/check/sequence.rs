//! `sequence`: a device that numbers its readings (the seed's counter) does
//! not lose or repeat them beyond what the QoS it publishes at allows.
//!
//! An extractor reads a number from each payload on the topics matching
//! `topic` that `actor` published and the broker received: `json` (a dotted
//! path into a JSON object, e.g. `count` or `reading.seq`; array elements by
//! index) or `regex` (the first capture group, else the whole match). Per
//! topic, consecutive readings are expected to count up by one; a board
//! reset, power cycle or reboot starts a new count. Then, with the QoS the
//! readings were published at (or the QoS the device claims, `qos`):
//! - QoS 0 may lose but must not repeat a reading as a new message;
//! - QoS 1 may repeat but must not lose (`sequence-loss`);
//! - QoS 2 must neither lose nor repeat (`sequence-duplicate`).
//!
//! A repeat is a reading that reached the broker again as a new message:
//! another packet id, or DUP=0; a DUP=1 resend of the same packet id on the
//! same connection is the protocol's retransmission, not a repeat. Values
//! missing between two received ones are lost; those after the last one
//! received may still be queued and are not judged. With `qos` set, readings
//! published below it break `sequence-qos` and losses are judged at the
//! claimed QoS. A payload the extractor cannot read breaks
//! `sequence-unreadable`, unless `skip_unnumbered` says the topic also
//! carries announcements (e.g. `online`): those are skipped and counted in
//! a note. `{client_id}` in `topic` is the actor's client id
//! from its CONNECT.

use std::collections::BTreeMap;
use std::time::Duration;

use super::index::{seen, Index};
use super::{fmt_d, Checker, Verdict};
use crate::history::{Dir, History};
use crate::mqtt::{topic, QoS};

/// How a reading's number is found in a payload.
#[derive(Clone, Debug)]
pub enum Extractor {
    /// A dotted path into a JSON document.
    Json(String),
    /// The first capture group (else the whole match) of a regex.
    Regex(regex::Regex),
}

impl Extractor {
    pub fn extract(&self, payload: &[u8]) -> Option<i64> {
        let text = std::str::from_utf8(payload).ok()?;
        match self {
            Extractor::Json(path) => {
                let mut v: &serde_json::Value = &serde_json::from_str(text).ok()?;
                let owned;
                for part in path.split('.').filter(|p| !p.is_empty()) {
                    v = match v {
                        serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                        serde_json::Value::Object(o) => o.get(part)?,
                        _ => return None,
                    };
                }
                match v {
                    serde_json::Value::Number(n) => n.as_i64(),
                    serde_json::Value::String(s) => {
                        owned = s.trim().to_string();
                        owned.parse().ok()
                    }
                    _ => None,
                }
            }
            Extractor::Regex(re) => {
                let c = re.captures(text)?;
                let m = c.get(1).or_else(|| c.get(0))?;
                m.as_str().trim().parse().ok()
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Extractor::Json(p) => format!("json `{p}`"),
            Extractor::Regex(r) => format!("regex `{}`", r.as_str()),
        }
    }
}

pub struct SequenceChecker {
    pub actor: String,
    pub topic: String,
    pub extract: Extractor,
    /// The QoS the device claims to publish at.
    pub qos: Option<QoS>,
    /// Skip payloads that hold no number (announcements) instead of
    /// breaking `sequence-unreadable`; they are counted in a note.
    pub skip_unnumbered: bool,
}

#[derive(Clone, Debug)]
struct Reading {
    value: i64,
    qos: QoS,
    seq: u64,
    at: Duration,
    conn: crate::history::ConnId,
    pid: Option<u16>,
    dup: bool,
}

impl Checker for SequenceChecker {
    fn name(&self) -> &str {
        "sequence"
    }

    fn check(&self, history: &History) -> Verdict {
        let ix = Index::new(history);
        let mut v = Verdict::new(self.name());
        let filter = match ix.client_id_of(&self.actor) {
            Some(id) => self.topic.replace("{client_id}", id),
            None => self.topic.clone(),
        };
        // Board restarts of the device start a new count.
        let restarts: Vec<Duration> = if self.actor == "device" {
            ix.boards
                .iter()
                .filter(|(_, w)| w != "booted" && !w.starts_with("crashed"))
                .map(|(s, _)| s.at)
                .collect()
        } else {
            Vec::new()
        };
        let mut per_topic: BTreeMap<String, Vec<Vec<Reading>>> = BTreeMap::new();
        let mut unreadable: BTreeMap<String, (usize, u64, String)> = BTreeMap::new();
        let mut below: BTreeMap<String, (usize, usize, Vec<u64>)> = BTreeMap::new();
        for p in &ix.pubs {
            if p.actor != self.actor || p.dir != Dir::ToBroker || !seen(p.fate) {
                continue;
            }
            if !topic::matches(&filter, &p.publish.topic) {
                continue;
            }
            let t = p.publish.topic.clone();
            let Some(value) = self.extract.extract(&p.publish.payload) else {
                let e = unreadable.entry(t).or_insert((
                    0,
                    p.stamp.seq,
                    super::index::show(&p.publish.payload),
                ));
                e.0 += 1;
                continue;
            };
            let b = below.entry(t.clone()).or_default();
            b.1 += 1;
            if self.qos.is_some_and(|q| p.publish.qos < q) {
                b.0 += 1;
                if b.2.len() < 5 {
                    b.2.push(p.stamp.seq);
                }
            }
            let epochs = per_topic.entry(t).or_default();
            let r = Reading {
                value,
                qos: p.publish.qos,
                seq: p.stamp.seq,
                at: p.stamp.at,
                conn: p.conn,
                pid: p.publish.pid,
                dup: p.publish.dup,
            };
            let new_epoch = match epochs.last().and_then(|e| e.last()) {
                None => true,
                Some(prev) => restarts.iter().any(|&b| b > prev.at && b <= r.at),
            };
            if new_epoch {
                epochs.push(Vec::new());
            }
            epochs.last_mut().expect("pushed").push(r);
        }
        if per_topic.is_empty() && unreadable.is_empty() {
            v.note(format!(
                "{} published nothing the broker received on `{filter}`",
                self.actor
            ));
        }
        for (t, (n, seq, example)) in &unreadable {
            if self.skip_unnumbered {
                v.note(format!(
                    "{n} payload(s) on `{t}` without a number skipped as announcements (e.g. {example})"
                ));
                continue;
            }
            v.fail(
                "sequence-unreadable",
                format!(
                    "{n} payload(s) {} published on `{t}` hold no number at {} (e.g. {example})",
                    self.actor,
                    self.extract.describe()
                ),
                vec![*seq],
            );
        }
        if let Some(claimed) = self.qos {
            for (t, (n, total, seqs)) in &below {
                if *n > 0 {
                    v.fail(
                        "sequence-qos",
                        format!(
                            "{n} of {total} readings on `{t}` were published below QoS {}, the QoS the device is declared to use",
                            claimed.as_u8()
                        ),
                        seqs.clone(),
                    );
                }
            }
        }
        for (t, epochs) in &per_topic {
            for readings in epochs {
                self.judge(t, readings, &mut v);
            }
        }
        v
    }
}

impl SequenceChecker {
    fn judge(&self, t: &str, readings: &[Reading], v: &mut Verdict) {
        let mut by_value: BTreeMap<i64, Vec<&Reading>> = BTreeMap::new();
        for r in readings {
            by_value.entry(r.value).or_default().push(r);
        }
        // Repeats.
        let mut repeats = 0;
        for (value, arrivals) in &by_value {
            for (k, r) in arrivals.iter().enumerate().skip(1) {
                let resend = r.dup
                    && arrivals[..k]
                        .iter()
                        .any(|p| p.conn == r.conn && p.pid.is_some() && p.pid == r.pid);
                if resend {
                    continue;
                }
                repeats += 1;
                let qos = r.qos.min(arrivals[0].qos);
                if qos == QoS::AtLeastOnce {
                    continue;
                }
                v.fail(
                    "sequence-duplicate",
                    format!(
                        "reading {value} on `{t}` reached the broker again as a new message at {} (first at {}); QoS {} must not repeat a reading",
                        fmt_d(r.at),
                        fmt_d(arrivals[0].at),
                        qos.as_u8()
                    ),
                    vec![arrivals[0].seq, r.seq],
                );
            }
        }
        // Losses: values missing between two received ones.
        let values: Vec<(&i64, &Vec<&Reading>)> = by_value.iter().collect();
        let mut lost = 0;
        for w in values.windows(2) {
            let (a, ra) = w[0];
            let (b, rb) = w[1];
            if b - a <= 1 {
                continue;
            }
            let missing = b - a - 1;
            lost += missing;
            let used = ra[0].qos.min(rb[0].qos);
            let judged = self.qos.unwrap_or(used);
            let range = if missing == 1 {
                format!("reading {}", a + 1)
            } else {
                format!("readings {} to {} ({missing})", a + 1, b - 1)
            };
            let what = format!(
                "{range} on `{t}` never reached the broker: it got {a} at {} and then {b} at {}",
                fmt_d(ra[0].at),
                fmt_d(rb[0].at)
            );
            if judged == QoS::AtMostOnce {
                v.note(format!("{what} (QoS 0 may lose)"));
            } else {
                v.fail(
                    "sequence-loss",
                    format!(
                        "{what}; published at QoS {}{}, which may repeat but must not lose",
                        used.as_u8(),
                        if self.qos.is_some_and(|q| q != used) {
                            format!(" (declared QoS {})", judged.as_u8())
                        } else {
                            String::new()
                        }
                    ),
                    vec![ra[0].seq, rb[0].seq],
                );
            }
        }
        let (first, last) = (values[0].0, values[values.len() - 1].0);
        v.note(format!(
            "`{t}`: {} reading(s) received, {first} to {last}, {repeats} repeated, {lost} lost",
            readings.len()
        ));
    }
}
