//! Typed, position-aware reading of one TOML table of a scenario file. Every
//! error names the file, the line of the offending key and the field, and
//! every key a table does not use is reported as unknown, with the keys it
//! could have been.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Error;
use crate::mqtt::QoS;

/// The source text of a scenario file, for turning byte offsets into lines.
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn line_of(&self, offset: usize) -> usize {
        // Bytes, not a str slice: a span toml reports need not fall on a
        // character boundary of our text, and this must never panic.
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// Byte offset where 1-based `line` starts. Counted over whole lines
    /// with their endings, so a CRLF file (two bytes per ending) and
    /// multi-byte characters land on the line's first byte, always a
    /// character boundary.
    pub fn offset_of_line(&self, line: usize) -> usize {
        self.text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum()
    }

    /// A TOML syntax error, at its line. toml points an invalid escape one
    /// character past the escaped one (`"a\q"` at the closing quote): for
    /// a backslash at the end of a line that was the next line on LF files
    /// but the right one on CRLF files (found by `make fuzz`), so the
    /// offset is moved back onto the escaped character.
    pub fn syntax_error(&self, e: &toml::de::Error) -> Error {
        let message = e.message().trim_end();
        let line = match e.span() {
            Some(s) if message.starts_with("invalid escape") => {
                self.line_of(s.start.saturating_sub(1))
            }
            Some(s) => self.line_of(s.start),
            None => 1,
        };
        self.error(line, message.to_string())
    }

    pub fn error(&self, line: usize, message: impl Into<String>) -> Error {
        Error::Input {
            file: self.path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

pub struct Fields<'a> {
    src: &'a Source<'a>,
    table: &'a toml::Table,
    span: std::ops::Range<usize>,
    /// What the table is, for messages: "step 3", "[device]".
    what: String,
    used: BTreeSet<String>,
}

impl<'a> Fields<'a> {
    pub fn new(
        src: &'a Source<'a>,
        table: &'a toml::Table,
        span: std::ops::Range<usize>,
        what: impl Into<String>,
    ) -> Fields<'a> {
        Fields {
            src,
            table,
            span,
            what: what.into(),
            used: BTreeSet::new(),
        }
    }

    /// Fields of a table nested under `key` of this one (an inline table
    /// such as `will = { ... }`): its errors name `what` and point at the
    /// line where `key` is written.
    pub fn nested(&self, key: &str, table: &'a toml::Table, what: impl Into<String>) -> Fields<'a> {
        let line = self.line_of_key(key);
        let offset = self
            .src
            .text
            .split_inclusive('\n')
            .take(line - 1)
            .map(str::len)
            .sum::<usize>();
        Fields::new(self.src, table, offset..offset, what)
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    /// Line of the table's header.
    pub fn line(&self) -> usize {
        self.src.line_of(self.span.start)
    }

    /// Line where `key` is written inside this table (its header line if the
    /// key is not found literally, e.g. when given through a dotted parent).
    pub fn line_of_key(&self, key: &str) -> usize {
        let body = self.src.text.get(self.span.clone()).unwrap_or("");
        let mut offset = self.span.start;
        for l in body.split_inclusive('\n') {
            let t = l.trim_start();
            if let Some(rest) = t.strip_prefix(key) {
                if rest.starts_with([' ', '=', '.', '\t']) {
                    return self.src.line_of(offset);
                }
            }
            offset += l.len();
        }
        self.line()
    }

    pub fn err(&self, key: &str, message: impl std::fmt::Display) -> Error {
        self.src.error(
            self.line_of_key(key),
            format!("{}: field `{key}`: {message}", self.what),
        )
    }

    /// Error about the table as a whole.
    pub fn err_table(&self, message: impl std::fmt::Display) -> Error {
        self.src
            .error(self.line(), format!("{}: {message}", self.what))
    }

    pub fn keys(&self) -> impl Iterator<Item = &'a String> {
        self.table.keys()
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    pub fn raw(&mut self, key: &str) -> Option<&'a toml::Value> {
        let v = self.table.get(key);
        if v.is_some() {
            self.used.insert(key.to_string());
        }
        v
    }

    pub fn str(&mut self, key: &str) -> Result<Option<String>, Error> {
        match self.raw(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(
                key,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    pub fn req_str(&mut self, key: &str) -> Result<String, Error> {
        self.str(key)?
            .ok_or_else(|| self.err_table(format!("missing field `{key}`")))
    }

    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, Error> {
        match self.raw(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(
                key,
                format!("expected true or false, found {}", other.type_str()),
            )),
        }
    }

    pub fn int(&mut self, key: &str, min: i64, max: i64) -> Result<Option<i64>, Error> {
        match self.raw(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if (min..=max).contains(i) => Ok(Some(*i)),
            Some(toml::Value::Integer(i)) => {
                Err(self.err(key, format!("{i} is out of range {min}..={max}")))
            }
            Some(other) => Err(self.err(
                key,
                format!("expected an integer, found {}", other.type_str()),
            )),
        }
    }

    pub fn qos(&mut self, key: &str) -> Result<Option<QoS>, Error> {
        Ok(self
            .int(key, 0, 2)?
            .map(|q| QoS::from_u8(q as u8).expect("range checked")))
    }

    pub fn duration(&mut self, key: &str) -> Result<Option<Duration>, Error> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => super::duration::parse(&s)
                .map(Some)
                .map_err(|e| self.err(key, e)),
        }
    }

    /// A payload as text (`payload`) or as hex bytes (`payload_hex`).
    pub fn payload(&mut self) -> Result<Option<Bytes>, Error> {
        let text = self.str("payload")?;
        let hex = self.str("payload_hex")?;
        match (text, hex) {
            (Some(_), Some(_)) => Err(self.err(
                "payload_hex",
                "give either `payload` (text) or `payload_hex`, not both",
            )),
            (Some(t), None) => Ok(Some(Bytes::from(t))),
            (None, Some(h)) => decode_hex(&h)
                .map(|b| Some(Bytes::from(b)))
                .map_err(|e| self.err("payload_hex", e)),
            (None, None) => Ok(None),
        }
    }

    pub fn str_list(&mut self, key: &str) -> Result<Vec<String>, Error> {
        match self.raw(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => {
                        Err(self.err(key, format!("expected strings, found {}", other.type_str())))
                    }
                })
                .collect(),
            Some(other) => Err(self.err(
                key,
                format!("expected a list of strings, found {}", other.type_str()),
            )),
        }
    }

    /// Fails on keys nobody asked for: the most common typo catcher.
    pub fn finish(&self, allowed_hint: &[&str]) -> Result<(), Error> {
        for key in self.table.keys() {
            if !self.used.contains(key) {
                let hint = if allowed_hint.is_empty() {
                    String::new()
                } else {
                    format!("; expected one of: {}", allowed_hint.join(", "))
                };
                let near = closest(key, allowed_hint)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(self.err(key, format!("unknown field{near}{hint}")));
            }
        }
        Ok(())
    }
}

fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    // Checked before slicing by bytes: a multi-byte character would put a
    // slice boundary inside it.
    if let Some(c) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("`{c}` is not a hex digit"));
    }
    if !s.len().is_multiple_of(2) {
        return Err("hex needs an even number of digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| format!("`{}` is not hex", &s[i..i + 2]))
        })
        .collect()
}

/// The allowed word nearest to a typo, if it is near enough to be a typo.
pub fn closest<'b>(word: &str, candidates: &[&'b str]) -> Option<&'b str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
