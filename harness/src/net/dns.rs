//! The harness's DNS server, as pure state: a query in, an answer (or
//! silence) out. Every name resolves to the harness's listener for the
//! broker (10.0.2.100) unless `--dns NAME=ADDR` says otherwise; an A query
//! gets one record, any other type an empty answer.
//!
//! Faults: `fail` answers SERVFAIL (a resolver whose upstream is broken),
//! `timeout` answers nothing (the server is unreachable), `heal` answers
//! again.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Answer,
    Fail,
    Timeout,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub mode: Mode,
    default: Ipv4Addr,
    /// Lower-cased names and their addresses.
    names: BTreeMap<String, Ipv4Addr>,
}

/// A query, as far as the server cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub name: String,
    pub qtype: u16,
    /// Where the question section ends (the answer repeats it).
    end: usize,
}

/// What the server did with a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Address(Ipv4Addr, Vec<u8>),
    NoRecord(Vec<u8>),
    Failed(Vec<u8>),
    Silent,
}

pub fn parse(p: &[u8]) -> Option<Query> {
    if p.len() < 12 || p[2] & 0x80 != 0 || u16::from_be_bytes([p[4], p[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*p.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        // No compression in a question of one name.
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(p.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]);
    p.get(i + 3)?;
    Some(Query {
        id: u16::from_be_bytes([p[0], p[1]]),
        name: labels.join("."),
        qtype,
        end: i + 4,
    })
}

impl Server {
    pub fn new(default: Ipv4Addr, names: BTreeMap<String, Ipv4Addr>) -> Server {
        Server {
            mode: Mode::Answer,
            default,
            names: names
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }
    }

    pub fn resolve(&self, name: &str) -> Ipv4Addr {
        self.names
            .get(&name.to_ascii_lowercase())
            .copied()
            .unwrap_or(self.default)
    }

    pub fn handle(&self, raw: &[u8], q: &Query) -> Answer {
        let header = |rcode: u8, answers: u16| {
            let mut r = raw[..q.end].to_vec();
            // QR, the query's opcode and RD, RA; the response code.
            r[2] = 0x80 | (raw[2] & 0x79);
            r[3] = 0x80 | rcode;
            r[6..8].copy_from_slice(&answers.to_be_bytes());
            r[8..12].fill(0);
            r
        };
        match self.mode {
            Mode::Timeout => Answer::Silent,
            Mode::Fail => Answer::Failed(header(2, 0)),
            Mode::Answer if q.qtype == 1 => {
                let addr = self.resolve(&q.name);
                let mut r = header(0, 1);
                // The name by pointer to the question, A, IN, TTL 60 s.
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&addr.octets());
                Answer::Address(addr, r)
            }
            Mode::Answer => Answer::NoRecord(header(0, 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            p.push(l.len() as u8);
            p.extend_from_slice(l.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p
    }

    fn server() -> Server {
        let mut names = BTreeMap::new();
        names.insert("Other.Example".into(), Ipv4Addr::new(10, 0, 2, 77));
        Server::new(Ipv4Addr::new(10, 0, 2, 100), names)
    }

    #[test]
    fn any_name_is_the_broker_unless_overridden() {
        let s = server();
        for (name, want) in [
            ("broker.local", Ipv4Addr::new(10, 0, 2, 100)),
            ("other.example", Ipv4Addr::new(10, 0, 2, 77)),
        ] {
            let raw = query(name, 1);
            let q = parse(&raw).unwrap();
            assert_eq!(q.name, name);
            let Answer::Address(a, r) = s.handle(&raw, &q) else {
                panic!("no address")
            };
            assert_eq!(a, want);
            assert_eq!(&r[0..2], &[0x12, 0x34]);
            assert_eq!(r[3] & 0x0f, 0, "NOERROR");
            assert_eq!(&r[6..8], &[0, 1], "one answer");
            assert_eq!(&r[r.len() - 4..], &want.octets());
        }
    }

    #[test]
    fn failing_and_silent_modes() {
        let mut s = server();
        let raw = query("broker.local", 1);
        let q = parse(&raw).unwrap();
        s.mode = Mode::Fail;
        let Answer::Failed(r) = s.handle(&raw, &q) else {
            panic!()
        };
        assert_eq!(r[3] & 0x0f, 2, "SERVFAIL");
        s.mode = Mode::Timeout;
        assert_eq!(s.handle(&raw, &q), Answer::Silent);
        s.mode = Mode::Answer;
        let raw = query("broker.local", 28);
        let q = parse(&raw).unwrap();
        assert!(matches!(s.handle(&raw, &q), Answer::NoRecord(_)));
    }

    #[test]
    fn a_response_is_not_a_query() {
        let mut raw = query("x", 1);
        raw[2] |= 0x80;
        assert_eq!(parse(&raw), None);
        assert_eq!(parse(&[1, 2, 3]), None);
    }
}
