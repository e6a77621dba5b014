//! A history kept on disk instead of in memory: `observe` appends each
//! event here as it is recorded (when no checker it runs needs the whole
//! history in memory), and reads the history back once, at the end, to
//! write the session's files. The encoding is exact: reading gives back
//! events equal to those appended. A packet is stored as its encoding
//! (the codec's, for the version that gives back the same packet); the
//! rare packet no encoding gives back unchanged (one a test made up, that
//! no version can carry) is kept in memory instead, in its place.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::{CloseReason, ConnId, Delivery, Dir, Event, EventKind, Fate, FrameFate, History};
use crate::mqtt::{codec, Packet, PropValue, Properties, Property, QoS, Version};

pub struct Spill {
    path: PathBuf,
    file: BufWriter<std::fs::File>,
    /// Events whose packet no encoding gives back unchanged, in order.
    kept: Vec<Event>,
    len: usize,
}

/// The tag of an event held in memory ([`Spill::kept`]).
const KEPT: u8 = 255;

impl Spill {
    /// Creates (or empties) the file at `path`.
    pub fn create(path: &Path) -> std::io::Result<Spill> {
        Ok(Spill {
            path: path.to_path_buf(),
            file: BufWriter::new(std::fs::File::create(path)?),
            kept: Vec::new(),
            len: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Events appended so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn append(&mut self, ev: &Event) -> std::io::Result<()> {
        let mut b = Vec::with_capacity(64);
        if encode(&mut b, ev) {
            self.file.write_all(&(b.len() as u32).to_le_bytes())?;
            self.file.write_all(&b)?;
        } else {
            self.kept.push(ev.clone());
            self.file.write_all(&1u32.to_le_bytes())?;
            self.file.write_all(&[KEPT])?;
        }
        self.len += 1;
        Ok(())
    }

    /// Reads everything appended back as a history, then removes the file.
    pub fn into_history(self) -> std::io::Result<History> {
        let Spill {
            path,
            file,
            kept,
            len,
        } = self;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let mut r = BufReader::new(std::fs::File::open(&path)?);
        let mut kept = kept.into_iter();
        let mut events = Vec::with_capacity(len);
        let mut head = [0u8; 4];
        let mut buf = Vec::new();
        for _ in 0..len {
            r.read_exact(&mut head)?;
            buf.resize(u32::from_le_bytes(head) as usize, 0);
            r.read_exact(&mut buf)?;
            let ev = if buf == [KEPT] {
                kept.next()
            } else {
                decode(&mut Cursor(&buf)).ok()
            };
            events.push(ev.ok_or_else(|| {
                std::io::Error::other(format!(
                    "{}: event {} does not read back (the file was changed during the session?)",
                    path.display(),
                    events.len()
                ))
            })?);
        }
        drop(r);
        let _ = std::fs::remove_file(&path);
        Ok(History::from_events(events))
    }
}

fn put(b: &mut Vec<u8>, bytes: &[u8]) {
    b.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    b.extend_from_slice(bytes);
}

fn u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn dur(b: &mut Vec<u8>, d: Duration) {
    u64(b, d.as_secs());
    b.extend_from_slice(&d.subsec_nanos().to_le_bytes());
}

fn dir(d: Dir) -> u8 {
    match d {
        Dir::ToBroker => 0,
        Dir::ToClient => 1,
    }
}

fn props(b: &mut Vec<u8>, p: &Properties) {
    u64(b, p.0.len() as u64);
    for x in &p.0 {
        b.push(x.id);
        match &x.value {
            PropValue::Byte(v) => b.extend([0, *v]),
            PropValue::U16(v) => {
                b.push(1);
                b.extend_from_slice(&v.to_le_bytes());
            }
            PropValue::U32(v) => {
                b.push(2);
                b.extend_from_slice(&v.to_le_bytes());
            }
            PropValue::VarInt(v) => {
                b.push(3);
                b.extend_from_slice(&v.to_le_bytes());
            }
            PropValue::Str(s) => {
                b.push(4);
                put(b, s.as_bytes());
            }
            PropValue::Bin(v) => {
                b.push(5);
                put(b, v);
            }
            PropValue::Pair(k, v) => {
                b.push(6);
                put(b, k.as_bytes());
                put(b, v.as_bytes());
            }
        }
    }
}

/// A packet's encoding for the first version that decodes it back equal.
fn packet(b: &mut Vec<u8>, p: &Packet) -> bool {
    for (tag, v) in [(5u8, Version::V5), (4, Version::V311)] {
        let Ok(bytes) = codec::encode(p, v) else {
            continue;
        };
        if codec::decode(&bytes, v).is_ok_and(|q| q == *p) {
            b.push(tag);
            put(b, &bytes);
            return true;
        }
    }
    false
}

/// Appends `ev`'s encoding; false when its packet has none that is exact.
fn encode(b: &mut Vec<u8>, ev: &Event) -> bool {
    u64(b, ev.seq);
    dur(b, ev.at);
    match &ev.kind {
        EventKind::Step { index, summary } => {
            b.push(0);
            u64(b, *index as u64);
            put(b, summary.as_bytes());
        }
        EventKind::ConnOpened { conn, actor } => {
            b.push(1);
            b.extend_from_slice(&conn.0.to_le_bytes());
            put(b, actor.as_bytes());
        }
        EventKind::ConnClosed {
            conn,
            actor,
            reason,
        } => {
            b.push(2);
            b.extend_from_slice(&conn.0.to_le_bytes());
            put(b, actor.as_bytes());
            match reason {
                CloseReason::ClientClosed => b.push(0),
                CloseReason::BrokerClosed => b.push(1),
                CloseReason::Severed => b.push(2),
                CloseReason::Closed => b.push(3),
                CloseReason::Refused => b.push(4),
                CloseReason::UpstreamUnreachable(why) => {
                    b.push(5);
                    put(b, why.as_bytes());
                }
                CloseReason::RunEnded => b.push(6),
            }
        }
        EventKind::Packet {
            conn,
            actor,
            dir: d,
            packet: p,
            raw,
            fate,
        } => {
            b.push(3);
            b.extend_from_slice(&conn.0.to_le_bytes());
            put(b, actor.as_bytes());
            b.push(dir(*d));
            if !packet(b, p) {
                return false;
            }
            put(b, raw);
            b.push(match fate {
                Fate::Forwarded => 0,
                Fate::Dropped => 1,
                Fate::Duplicated => 2,
                Fate::Held => 3,
                Fate::Released => 4,
            });
        }
        EventKind::Malformed {
            conn,
            actor,
            dir: d,
            raw,
            error,
        } => {
            b.push(4);
            b.extend_from_slice(&conn.0.to_le_bytes());
            put(b, actor.as_bytes());
            b.push(dir(*d));
            put(b, raw);
            put(b, error.as_bytes());
        }
        EventKind::Fault { target, fault } => {
            b.push(5);
            put(b, target.as_bytes());
            put(b, fault.as_bytes());
        }
        EventKind::Delivered { actor, msg } => {
            b.push(6);
            put(b, actor.as_bytes());
            put(b, msg.topic.as_bytes());
            put(b, &msg.payload);
            b.extend([msg.qos.as_u8(), msg.retain as u8, msg.dup as u8]);
            props(b, &msg.properties);
        }
        EventKind::Actor { actor, what } => {
            b.push(7);
            put(b, actor.as_bytes());
            put(b, what.as_bytes());
        }
        EventKind::Broker { what } => {
            b.push(8);
            put(b, what.as_bytes());
        }
        EventKind::Board { what } => {
            b.push(9);
            put(b, what.as_bytes());
        }
        EventKind::Uart { line } => {
            b.push(10);
            put(b, line.as_bytes());
        }
        EventKind::Expect { step, ok, detail } => {
            b.push(11);
            u64(b, *step as u64);
            b.push(*ok as u8);
            put(b, detail.as_bytes());
        }
        EventKind::Teardown => b.push(12),
        EventKind::Frame {
            dir: d,
            data,
            fate,
            note,
        } => {
            b.push(13);
            b.push(dir(*d));
            put(b, data);
            match fate {
                FrameFate::Delivered => b.push(0),
                FrameFate::Dropped(why) => {
                    b.push(1);
                    put(b, why.as_bytes());
                }
                FrameFate::Duplicated => b.push(2),
                FrameFate::Delayed(t) => {
                    b.push(3);
                    dur(b, *t);
                }
                FrameFate::Reordered(t) => {
                    b.push(4);
                    dur(b, *t);
                }
            }
            match note {
                None => b.push(0),
                Some(n) => {
                    b.push(1);
                    put(b, n.as_bytes());
                }
            }
        }
    }
    true
}

struct Cursor<'a>(&'a [u8]);

/// Reading past the end or a byte that means nothing here.
struct Bad;

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Bad> {
        if self.0.len() < n {
            return Err(Bad);
        }
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Bad> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| Bad)?,
        ))
    }
    fn u16(&mut self) -> Result<u16, Bad> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().map_err(|_| Bad)?,
        ))
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| Bad)?,
        ))
    }
    fn bytes(&mut self) -> Result<Bytes, Bad> {
        let n = self.u64()? as usize;
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }
    fn string(&mut self) -> Result<String, Bad> {
        let n = self.u64()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| Bad)
    }
    fn dur(&mut self) -> Result<Duration, Bad> {
        let s = self.u64()?;
        Ok(Duration::new(s, self.u32()?))
    }
    fn dir(&mut self) -> Result<Dir, Bad> {
        match self.u8()? {
            0 => Ok(Dir::ToBroker),
            1 => Ok(Dir::ToClient),
            _ => Err(Bad),
        }
    }
    fn bool(&mut self) -> Result<bool, Bad> {
        Ok(self.u8()? != 0)
    }
    fn props(&mut self) -> Result<Properties, Bad> {
        let n = self.u64()?;
        let mut out = Vec::new();
        for _ in 0..n {
            let id = self.u8()?;
            let value = match self.u8()? {
                0 => PropValue::Byte(self.u8()?),
                1 => PropValue::U16(self.u16()?),
                2 => PropValue::U32(self.u32()?),
                3 => PropValue::VarInt(self.u32()?),
                4 => PropValue::Str(self.string()?),
                5 => PropValue::Bin(self.bytes()?),
                6 => PropValue::Pair(self.string()?, self.string()?),
                _ => return Err(Bad),
            };
            out.push(Property { id, value });
        }
        Ok(Properties(out))
    }
}

fn decode(c: &mut Cursor) -> Result<Event, Bad> {
    let seq = c.u64()?;
    let at = c.dur()?;
    let kind = match c.u8()? {
        0 => EventKind::Step {
            index: c.u64()? as usize,
            summary: c.string()?,
        },
        1 => EventKind::ConnOpened {
            conn: ConnId(c.u32()?),
            actor: c.string()?,
        },
        2 => EventKind::ConnClosed {
            conn: ConnId(c.u32()?),
            actor: c.string()?,
            reason: match c.u8()? {
                0 => CloseReason::ClientClosed,
                1 => CloseReason::BrokerClosed,
                2 => CloseReason::Severed,
                3 => CloseReason::Closed,
                4 => CloseReason::Refused,
                5 => CloseReason::UpstreamUnreachable(c.string()?),
                6 => CloseReason::RunEnded,
                _ => return Err(Bad),
            },
        },
        3 => {
            let conn = ConnId(c.u32()?);
            let actor = c.string()?;
            let dir = c.dir()?;
            let version = match c.u8()? {
                5 => Version::V5,
                4 => Version::V311,
                _ => return Err(Bad),
            };
            let packet = codec::decode(&c.bytes()?, version).map_err(|_| Bad)?;
            let raw = c.bytes()?;
            let fate = match c.u8()? {
                0 => Fate::Forwarded,
                1 => Fate::Dropped,
                2 => Fate::Duplicated,
                3 => Fate::Held,
                4 => Fate::Released,
                _ => return Err(Bad),
            };
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                raw,
                fate,
            }
        }
        4 => EventKind::Malformed {
            conn: ConnId(c.u32()?),
            actor: c.string()?,
            dir: c.dir()?,
            raw: c.bytes()?,
            error: c.string()?,
        },
        5 => EventKind::Fault {
            target: c.string()?,
            fault: c.string()?,
        },
        6 => EventKind::Delivered {
            actor: c.string()?,
            msg: Delivery {
                topic: c.string()?,
                payload: c.bytes()?,
                qos: QoS::from_u8(c.u8()?).ok_or(Bad)?,
                retain: c.bool()?,
                dup: c.bool()?,
                properties: c.props()?,
            },
        },
        7 => EventKind::Actor {
            actor: c.string()?,
            what: c.string()?,
        },
        8 => EventKind::Broker { what: c.string()? },
        9 => EventKind::Board { what: c.string()? },
        10 => EventKind::Uart { line: c.string()? },
        11 => EventKind::Expect {
            step: c.u64()? as usize,
            ok: c.bool()?,
            detail: c.string()?,
        },
        12 => EventKind::Teardown,
        13 => EventKind::Frame {
            dir: c.dir()?,
            data: c.bytes()?,
            fate: match c.u8()? {
                0 => FrameFate::Delivered,
                1 => FrameFate::Dropped(c.string()?),
                2 => FrameFate::Duplicated,
                3 => FrameFate::Delayed(c.dur()?),
                4 => FrameFate::Reordered(c.dur()?),
                _ => return Err(Bad),
            },
            note: match c.u8()? {
                0 => None,
                _ => Some(c.string()?),
            },
        },
        _ => return Err(Bad),
    };
    if !c.0.is_empty() {
        return Err(Bad);
    }
    Ok(Event { seq, at, kind })
}
