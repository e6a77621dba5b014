//! Decoding one complete frame into a [`Packet`]: a bounds-checked cursor
//! over the frame and one function per packet type. Every read goes through
//! [`Reader`], which never indexes past its end and reports offsets from the
//! start of the frame.

use bytes::Bytes;

use super::error::DecodeError;
use super::rules::{self, PropCtx};
use crate::mqtt::*;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    packet: PacketType,
    scope: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], pos: usize, packet: PacketType) -> Reader<'a> {
        Reader {
            buf,
            pos,
            end: buf.len(),
            packet,
            scope: "frame",
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                packet: self.packet,
                field,
                at: self.pos,
                needed: n,
                scope: self.scope,
                end: self.end,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn varint(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let at = self.pos;
        let mut value: u32 = 0;
        for i in 0..4 {
            let b = self.u8(field)?;
            value |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(DecodeError::InvalidVarInt {
                        packet: self.packet,
                        field,
                        at,
                        problem: "it is not minimally encoded [MQTT-1.5.5-1]",
                    });
                }
                return Ok(value);
            }
        }
        Err(DecodeError::InvalidVarInt {
            packet: self.packet,
            field,
            at,
            problem: "it continues past 4 bytes [MQTT-1.5.5]",
        })
    }

    /// The packet id and, in 5.0, the properties that follow it: the head
    /// of SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.
    fn pid_and_properties(
        &mut self,
        t: PacketType,
        v5: bool,
    ) -> Result<(u16, Properties), DecodeError> {
        let pid = self.pid()?;
        let properties = if v5 {
            self.properties(PropCtx::Packet(t))?
        } else {
            Properties::default()
        };
        Ok((pid, properties))
    }

    fn pid(&mut self) -> Result<u16, DecodeError> {
        let at = self.pos;
        let pid = self.u16("packet identifier")?;
        if pid == 0 {
            return Err(DecodeError::ZeroPacketId {
                packet: self.packet,
                at,
            });
        }
        Ok(pid)
    }

    fn binary(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u16(field)? as usize;
        Ok(Bytes::copy_from_slice(self.take(len, field)?))
    }

    /// A length-prefixed UTF-8 string; returns it with the offset of its
    /// first character.
    fn string(&mut self, field: &'static str) -> Result<(String, usize), DecodeError> {
        let len = self.u16(field)? as usize;
        let at = self.pos;
        let raw = self.take(len, field)?;
        let s = std::str::from_utf8(raw).map_err(|e| DecodeError::InvalidUtf8 {
            packet: self.packet,
            field,
            at: at + e.valid_up_to(),
        })?;
        if let Some(i) = raw.iter().position(|&b| b == 0) {
            return Err(DecodeError::NullChar {
                packet: self.packet,
                field,
                at: at + i,
            });
        }
        Ok((s.to_owned(), at))
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..self.end];
        self.pos = self.end;
        s
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos < self.end {
            return Err(DecodeError::TrailingBytes {
                packet: self.packet,
                at: self.pos,
                count: self.end - self.pos,
            });
        }
        Ok(())
    }

    fn invalid(&self, field: &'static str, at: usize, problem: &'static str) -> DecodeError {
        DecodeError::Invalid {
            packet: self.packet,
            field,
            at,
            problem,
        }
    }

    fn topic_err(
        &self,
        field: &'static str,
        topic: String,
        at: usize,
        problem: &'static str,
    ) -> DecodeError {
        DecodeError::InvalidTopic {
            packet: self.packet,
            field,
            topic,
            at,
            problem,
        }
    }

    fn reason(&mut self, version: Version) -> Result<u8, DecodeError> {
        let at = self.pos;
        let code = self.u8("reason code")?;
        if !rules::reason_ok(self.packet, version, code) {
            return Err(DecodeError::InvalidReasonCode {
                packet: self.packet,
                code,
                at,
                version,
            });
        }
        Ok(code)
    }

    /// A 5.0 property list: its length, then the properties, each checked
    /// against the table for where it appears.
    fn properties(&mut self, ctx: PropCtx) -> Result<Properties, DecodeError> {
        let len = self.varint("property length")? as usize;
        if self.remaining() < len {
            return Err(DecodeError::Truncated {
                packet: self.packet,
                field: "properties",
                at: self.pos,
                needed: len,
                scope: self.scope,
                end: self.end,
            });
        }
        let outer_end = self.end;
        let outer_scope = self.scope;
        self.end = self.pos + len;
        self.scope = "property list";
        let result = self.property_list(ctx);
        self.end = outer_end;
        self.scope = outer_scope;
        result
    }

    fn property_list(&mut self, ctx: PropCtx) -> Result<Properties, DecodeError> {
        let mut props = Vec::new();
        let mut seen: u64 = 0;
        while self.remaining() > 0 {
            let at = self.pos;
            let raw_id = self.varint("property identifier")?;
            let spec = u8::try_from(raw_id).ok().and_then(|id| {
                let spec = rules::prop_spec(id)?;
                Some((id, spec))
            });
            let Some((id, spec)) = spec else {
                return Err(DecodeError::UnknownProperty {
                    packet: self.packet,
                    place: ctx.place(),
                    id: raw_id,
                    at,
                });
            };
            if !spec.allowed_in(ctx) {
                return Err(DecodeError::PropertyNotAllowed {
                    packet: self.packet,
                    place: ctx.place(),
                    name: spec.name,
                    id,
                    at,
                });
            }
            if seen & (1 << id) != 0 && !rules::repeatable(id, ctx) {
                return Err(DecodeError::DuplicateProperty {
                    packet: self.packet,
                    place: ctx.place(),
                    name: spec.name,
                    at,
                });
            }
            seen |= 1 << id;
            let field = spec.name;
            let value = match spec.kind {
                rules::Kind::Byte => PropValue::Byte(self.u8(field)?),
                rules::Kind::U16 => PropValue::U16(self.u16(field)?),
                rules::Kind::U32 => PropValue::U32(self.u32(field)?),
                rules::Kind::VarInt => PropValue::VarInt(self.varint(field)?),
                rules::Kind::Str => PropValue::Str(self.string(field)?.0),
                rules::Kind::Bin => PropValue::Bin(self.binary(field)?),
                rules::Kind::Pair => {
                    let (k, _) = self.string("User Property name")?;
                    let (v, _) = self.string("User Property value")?;
                    PropValue::Pair(k, v)
                }
            };
            if let Some(problem) = rules::prop_value_problem(id, &value) {
                return Err(DecodeError::PropertyValue {
                    packet: self.packet,
                    name: spec.name,
                    at,
                    problem,
                });
            }
            props.push(Property { id, value });
        }
        Ok(Properties(props))
    }
}

/// Parses the fixed header: (header length, remaining length).
/// `Ok(None)` when `buf` ends inside the header.
pub(crate) fn fixed_header(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first >> 4 == 0 {
        return Err(DecodeError::ReservedPacketType { byte: first });
    }
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((2 + i, value)));
        }
    }
    Err(DecodeError::RemainingLengthTooLong)
}

/// Bytes a variable byte integer of this value needs.
pub(crate) fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// The version a CONNECT frame announces, if its protocol name and level
/// can be read, even when the rest of it does not decode.
pub(crate) fn sniff_connect_version(frame: &[u8]) -> Option<Version> {
    let (hlen, _) = fixed_header(frame).ok()??;
    let body = frame.get(hlen..)?;
    let name_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let name = body.get(2..2 + name_len)?;
    let level = *body.get(2 + name_len)?;
    match (name, level) {
        (b"MQIsdp", 3) => Some(Version::V31),
        (b"MQTT", 4) => Some(Version::V311),
        (b"MQTT", 5) => Some(Version::V5),
        _ => None,
    }
}

pub(crate) fn decode(frame: &[u8], version: Version) -> Result<Packet, DecodeError> {
    let (hlen, remaining) = match fixed_header(frame)? {
        Some(h) => h,
        None => return Err(DecodeError::IncompleteHeader { len: frame.len() }),
    };
    let declared = hlen + remaining;
    if frame.len() != declared {
        return Err(DecodeError::FrameLength {
            declared,
            actual: frame.len(),
        });
    }
    let first = frame[0];
    let Some(t) = PacketType::from_nibble(first >> 4) else {
        return Err(DecodeError::ReservedPacketType { byte: first });
    };
    if hlen - 1 != varint_len(remaining) {
        return Err(DecodeError::RemainingLengthNotMinimal {
            packet: t,
            used: hlen - 1,
            minimal: varint_len(remaining),
        });
    }
    let flags = first & 0x0F;
    if let Some(expected) = rules::required_flags(t) {
        if flags != expected {
            return Err(DecodeError::ReservedFlags {
                packet: t,
                flags,
                expected,
            });
        }
    }
    if t == PacketType::Auth && version != Version::V5 {
        return Err(DecodeError::PacketNotInVersion { packet: t, version });
    }
    let mut r = Reader::new(frame, hlen, t);
    let v5 = version == Version::V5;
    let packet = match t {
        PacketType::Connect => Packet::Connect(connect(&mut r)?),
        PacketType::ConnAck => {
            let at = r.pos();
            let ack_flags = r.u8("acknowledge flags")?;
            if ack_flags & 0xFE != 0 {
                return Err(r.invalid(
                    "acknowledge flags",
                    at,
                    "bits 7-1 are reserved and must be 0 [MQTT-3.2.2-1]",
                ));
            }
            let code_at = r.pos();
            let code = r.reason(version)?;
            if ack_flags & 1 != 0 && code != 0 {
                return Err(r.invalid(
                    "session present",
                    code_at,
                    "session present must be 0 when the return code is not 0 [MQTT-3.2.2-4] [MQTT-3.2.2-6]",
                ));
            }
            let properties = if v5 {
                r.properties(PropCtx::Packet(t))?
            } else {
                Properties::default()
            };
            Packet::ConnAck(ConnAck {
                session_present: ack_flags & 1 != 0,
                code,
                properties,
            })
        }
        PacketType::Publish => Packet::Publish(publish(&mut r, flags, version)?),
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            let pid = r.pid()?;
            let mut ack = Ack::new(pid);
            if v5 && r.remaining() > 0 {
                ack.code = r.reason(version)?;
                if r.remaining() > 0 {
                    ack.properties = r.properties(PropCtx::Packet(t))?;
                }
            }
            match t {
                PacketType::PubAck => Packet::PubAck(ack),
                PacketType::PubRec => Packet::PubRec(ack),
                PacketType::PubRel => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        }
        PacketType::Subscribe => {
            let (pid, properties) = r.pid_and_properties(t, v5)?;
            let mut filters = Vec::new();
            while r.remaining() > 0 {
                let (filter, at) = r.string("topic filter")?;
                if let Some(problem) = rules::filter_problem(&filter, version) {
                    return Err(r.topic_err("topic filter", filter, at, problem));
                }
                let opt_at = r.pos();
                let options = r.u8("subscription options")?;
                if options & 3 == 3 {
                    return Err(DecodeError::InvalidQoS {
                        packet: t,
                        field: "requested QoS",
                        at: opt_at,
                        rule: "[MQTT-3-8.3-4]",
                    });
                }
                if let Some(problem) = rules::options_problem(options, version) {
                    return Err(r.invalid("subscription options", opt_at, problem));
                }
                if options & 0x04 != 0 && rules::is_shared(&filter) {
                    return Err(r.invalid("subscription options", opt_at, rules::NO_LOCAL_SHARED));
                }
                filters.push(SubscribeFilter {
                    filter,
                    qos: QoS::from_u8(options & 3).unwrap_or(QoS::AtMostOnce),
                    options: options & 0xFC,
                });
            }
            if filters.is_empty() {
                return Err(r.invalid(
                    "payload",
                    r.pos(),
                    "a SUBSCRIBE must carry at least one topic filter [MQTT-3.8.3-3]",
                ));
            }
            Packet::Subscribe(Subscribe {
                pid,
                filters,
                properties,
            })
        }
        PacketType::SubAck => {
            let (pid, properties) = r.pid_and_properties(t, v5)?;
            let codes = reason_list(&mut r, version)?;
            Packet::SubAck(SubAck {
                pid,
                codes,
                properties,
            })
        }
        PacketType::Unsubscribe => {
            let (pid, properties) = r.pid_and_properties(t, v5)?;
            let mut filters = Vec::new();
            while r.remaining() > 0 {
                let (filter, at) = r.string("topic filter")?;
                if let Some(problem) = rules::filter_problem(&filter, version) {
                    return Err(r.topic_err("topic filter", filter, at, problem));
                }
                filters.push(filter);
            }
            if filters.is_empty() {
                return Err(r.invalid(
                    "payload",
                    r.pos(),
                    "an UNSUBSCRIBE must carry at least one topic filter [MQTT-3.10.3-2]",
                ));
            }
            Packet::Unsubscribe(Unsubscribe {
                pid,
                filters,
                properties,
            })
        }
        PacketType::UnsubAck => {
            let pid = r.pid()?;
            let (codes, properties) = if v5 {
                let properties = r.properties(PropCtx::Packet(t))?;
                (reason_list(&mut r, version)?, properties)
            } else {
                (Vec::new(), Properties::default())
            };
            Packet::UnsubAck(UnsubAck {
                pid,
                codes,
                properties,
            })
        }
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => {
            let mut d = Disconnect::default();
            if v5 && r.remaining() > 0 {
                d.code = r.reason(version)?;
                if r.remaining() > 0 {
                    d.properties = r.properties(PropCtx::Packet(t))?;
                }
            }
            Packet::Disconnect(d)
        }
        PacketType::Auth => {
            let mut a = Auth::default();
            if r.remaining() > 0 {
                a.code = r.reason(version)?;
                a.properties = r.properties(PropCtx::Packet(t))?;
            }
            Packet::Auth(a)
        }
    };
    r.finish()?;
    Ok(packet)
}

fn reason_list(r: &mut Reader<'_>, version: Version) -> Result<Vec<u8>, DecodeError> {
    let mut codes = Vec::with_capacity(r.remaining());
    while r.remaining() > 0 {
        codes.push(r.reason(version)?);
    }
    if codes.is_empty() {
        return Err(r.invalid(
            "payload",
            r.pos(),
            "must carry one reason code per topic filter, not none",
        ));
    }
    Ok(codes)
}

fn connect(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
    let name_at = r.pos();
    let (name, _) = r.string("protocol name")?;
    let level = r.u8("protocol level")?;
    let version = match (name.as_str(), level) {
        ("MQIsdp", 3) => Version::V31,
        ("MQTT", 4) => Version::V311,
        ("MQTT", 5) => Version::V5,
        _ => {
            return Err(DecodeError::UnknownProtocol {
                name,
                level,
                at: name_at,
            })
        }
    };
    let fat = r.pos();
    let f = r.u8("connect flags")?;
    if f & 0x01 != 0 {
        return Err(r.invalid(
            "connect flags",
            fat,
            "the reserved bit 0 must be 0 [MQTT-3.1.2-3]",
        ));
    }
    let clean_start = f & 0x02 != 0;
    let will_flag = f & 0x04 != 0;
    let will_qos = (f >> 3) & 0x03;
    let will_retain = f & 0x20 != 0;
    let has_password = f & 0x40 != 0;
    let has_username = f & 0x80 != 0;
    if will_qos == 3 {
        return Err(DecodeError::InvalidQoS {
            packet: PacketType::Connect,
            field: "will QoS (connect flags)",
            at: fat,
            rule: "[MQTT-3.1.2-14]",
        });
    }
    if !will_flag && will_qos != 0 {
        return Err(r.invalid(
            "connect flags",
            fat,
            "will QoS is set but the will flag is clear [MQTT-3.1.2-13]",
        ));
    }
    if !will_flag && will_retain {
        return Err(r.invalid(
            "connect flags",
            fat,
            "will retain is set but the will flag is clear [MQTT-3.1.2-15]",
        ));
    }
    if has_password && !has_username && version != Version::V5 {
        return Err(r.invalid(
            "connect flags",
            fat,
            "the password flag is set without the user name flag [MQTT-3.1.2-22]",
        ));
    }
    let keep_alive = r.u16("keep alive")?;
    let v5 = version == Version::V5;
    let properties = if v5 {
        r.properties(PropCtx::Packet(PacketType::Connect))?
    } else {
        Properties::default()
    };
    let (client_id, _) = r.string("client identifier")?;
    let will = if will_flag {
        let properties = if v5 {
            r.properties(PropCtx::Will)?
        } else {
            Properties::default()
        };
        let (topic, at) = r.string("will topic")?;
        let problem = if topic.is_empty() {
            Some(rules::EMPTY_TOPIC)
        } else {
            rules::topic_problem(&topic)
        };
        if let Some(problem) = problem {
            return Err(r.topic_err("will topic", topic, at, problem));
        }
        let payload = r.binary("will payload")?;
        Some(Will {
            topic,
            payload,
            qos: QoS::from_u8(will_qos).unwrap_or(QoS::AtMostOnce),
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string("user name")?.0)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary("password")?)
    } else {
        None
    };
    if let Some(problem) = auth_problem(&properties) {
        return Err(r.invalid("properties", fat + 3, problem));
    }
    Ok(Connect {
        version,
        client_id,
        clean_start,
        keep_alive,
        will,
        username,
        password,
        properties,
    })
}

/// CONNECT: Authentication Data without Authentication Method (§3.1.2.11.10).
pub(crate) fn auth_problem(props: &Properties) -> Option<&'static str> {
    let has = |id| props.0.iter().any(|p| p.id == id);
    (has(0x16) && !has(0x15))
        .then_some("Authentication Data without Authentication Method is a Protocol Error")
}

fn publish(r: &mut Reader<'_>, flags: u8, version: Version) -> Result<Publish, DecodeError> {
    let dup = flags & 0x08 != 0;
    let retain = flags & 0x01 != 0;
    let Some(qos) = QoS::from_u8((flags >> 1) & 0x03) else {
        return Err(DecodeError::InvalidQoS {
            packet: PacketType::Publish,
            field: "QoS (fixed header)",
            at: 0,
            rule: "[MQTT-3.3.1-4]",
        });
    };
    if dup && qos == QoS::AtMostOnce {
        return Err(r.invalid(
            "DUP flag",
            0,
            "DUP must be 0 on a QoS 0 PUBLISH [MQTT-3.3.1-2]",
        ));
    }
    let (topic, topic_at) = r.string("topic name")?;
    if let Some(problem) = rules::topic_problem(&topic) {
        return Err(r.topic_err("topic name", topic, topic_at, problem));
    }
    let pid = if qos != QoS::AtMostOnce {
        Some(r.pid()?)
    } else {
        None
    };
    let properties = if version == Version::V5 {
        r.properties(PropCtx::Packet(PacketType::Publish))?
    } else {
        Properties::default()
    };
    if topic.is_empty() && !properties.0.iter().any(|p| p.id == 0x23) {
        return Err(r.topic_err("topic name", topic, topic_at, publish_empty_topic(version)));
    }
    let payload = Bytes::copy_from_slice(r.rest());
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        pid,
        payload,
        properties,
    })
}

pub(crate) fn publish_empty_topic(version: Version) -> &'static str {
    if version == Version::V5 {
        "an empty topic name needs a Topic Alias property [MQTT-3.3.2-1] §3.3.2.3.4"
    } else {
        rules::EMPTY_TOPIC
    }
}

/// Decodes a 5.0 property list given without its length prefix (the agent's
/// `props=`), checked as it may appear on `packet`.
pub(crate) fn property_list(bytes: &[u8], packet: PacketType) -> Result<Properties, DecodeError> {
    let mut r = Reader::new(bytes, 0, packet);
    r.scope = "property list";
    r.property_list(PropCtx::Packet(packet))
}
