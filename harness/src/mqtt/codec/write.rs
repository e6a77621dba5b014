//! Encoding a [`Packet`] for a version. The encoder checks everything the
//! decoder checks, so whatever it returns decodes back to the same packet;
//! malformed frames are built on purpose with [`super::raw_frame`] instead.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::EncodeError;
use super::read::auth_problem;
use super::rules::{self, Kind, PropCtx};
use crate::mqtt::*;

struct Writer {
    buf: BytesMut,
    packet: PacketType,
    version: Version,
}

impl Writer {
    fn invalid(&self, field: &'static str, problem: impl Into<String>) -> EncodeError {
        EncodeError::Invalid {
            packet: self.packet,
            field,
            problem: problem.into(),
        }
    }

    fn not_in_version(&self, field: &'static str) -> EncodeError {
        EncodeError::NotInVersion {
            packet: self.packet,
            field,
            version: self.version,
        }
    }

    fn v5(&self) -> bool {
        self.version == Version::V5
    }

    fn binary(&mut self, field: &'static str, b: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(b.len()).map_err(|_| EncodeError::FieldTooLong {
            packet: self.packet,
            field,
            len: b.len(),
        })?;
        self.buf.put_u16(len);
        self.buf.put_slice(b);
        Ok(())
    }

    fn string(&mut self, field: &'static str, s: &str) -> Result<(), EncodeError> {
        if rules::has_nul(s) {
            return Err(self.invalid(field, "contains U+0000 [MQTT-1.5.3-2]"));
        }
        self.binary(field, s.as_bytes())
    }

    fn pid(&mut self, pid: u16) -> Result<(), EncodeError> {
        if pid == 0 {
            return Err(self.invalid("packet identifier", "is 0 [MQTT-2.3.1-1]"));
        }
        self.buf.put_u16(pid);
        Ok(())
    }

    fn reason(&mut self, code: u8) -> Result<(), EncodeError> {
        self.check_reason(code)?;
        self.buf.put_u8(code);
        Ok(())
    }

    fn check_reason(&self, code: u8) -> Result<(), EncodeError> {
        if rules::reason_ok(self.packet, self.version, code) {
            Ok(())
        } else if self.version != Version::V5
            && !matches!(self.packet, PacketType::ConnAck | PacketType::SubAck)
        {
            Err(self.not_in_version("reason code"))
        } else {
            Err(self.invalid(
                "reason code",
                format!(
                    "{code:#04x} is not defined for {} in this version",
                    self.packet
                ),
            ))
        }
    }

    /// Properties of a 5.0 packet; for older versions they must be empty.
    fn properties(&mut self, ctx: PropCtx, props: &Properties) -> Result<(), EncodeError> {
        if !self.v5() {
            if props.is_empty() {
                return Ok(());
            }
            return Err(self.not_in_version(ctx.place()));
        }
        let mut body = Writer {
            buf: BytesMut::new(),
            packet: self.packet,
            version: self.version,
        };
        let mut seen: u64 = 0;
        for prop in &props.0 {
            let Some(spec) = rules::prop_spec(prop.id) else {
                return Err(
                    self.invalid(ctx.place(), format!("unknown property id {:#04x}", prop.id))
                );
            };
            if !spec.allowed_in(ctx) {
                return Err(self.invalid(
                    ctx.place(),
                    format!("may not carry property {} ({:#04x})", spec.name, prop.id),
                ));
            }
            if seen & (1 << prop.id) != 0 && !rules::repeatable(prop.id, ctx) {
                return Err(self.invalid(
                    ctx.place(),
                    format!("carries property {} more than once", spec.name),
                ));
            }
            seen |= 1 << prop.id;
            if Kind::of(&prop.value) != spec.kind {
                return Err(self.invalid(
                    ctx.place(),
                    format!(
                        "property {} must be a {:?} value, not {:?}",
                        spec.name,
                        spec.kind,
                        Kind::of(&prop.value)
                    ),
                ));
            }
            if let Some(problem) = rules::prop_value_problem(prop.id, &prop.value) {
                return Err(self.invalid(ctx.place(), format!("{}: {problem}", spec.name)));
            }
            body.buf.put_u8(prop.id);
            match &prop.value {
                PropValue::Byte(b) => body.buf.put_u8(*b),
                PropValue::U16(v) => body.buf.put_u16(*v),
                PropValue::U32(v) => body.buf.put_u32(*v),
                PropValue::VarInt(v) => put_varint(&mut body.buf, *v as usize),
                PropValue::Str(s) => body.string(spec.name, s)?,
                PropValue::Bin(b) => body.binary(spec.name, b)?,
                PropValue::Pair(k, v) => {
                    body.string("User Property name", k)?;
                    body.string("User Property value", v)?;
                }
            }
        }
        if body.buf.len() > rules::MAX_VARINT as usize {
            return Err(EncodeError::TooLarge {
                packet: self.packet,
                len: body.buf.len(),
            });
        }
        put_varint(&mut self.buf, body.buf.len());
        self.buf.put_slice(&body.buf);
        Ok(())
    }

    fn topic(&self, field: &'static str, topic: &str) -> Result<(), EncodeError> {
        if topic.is_empty() {
            return Err(self.invalid(field, rules::EMPTY_TOPIC));
        }
        match rules::topic_problem(topic) {
            Some(problem) => Err(self.invalid(field, problem)),
            None => Ok(()),
        }
    }

    fn filter(&mut self, filter: &str) -> Result<(), EncodeError> {
        if let Some(problem) = rules::filter_problem(filter, self.version) {
            return Err(self.invalid("topic filter", format!("{filter:?}: {problem}")));
        }
        self.string("topic filter", filter)
    }
}

/// Appends a variable byte integer. Values over the 4-byte maximum keep
/// going (5+ bytes): only [`super::raw_frame`] can ask for that, on purpose.
pub(crate) fn put_varint(buf: &mut BytesMut, mut v: usize) {
    loop {
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        buf.put_u8(b);
        if v == 0 {
            return;
        }
    }
}

pub(crate) fn encode(packet: &Packet, version: Version) -> Result<Bytes, EncodeError> {
    let t = packet.packet_type();
    // CONNECT carries its own version.
    let version = match packet {
        Packet::Connect(c) => c.version,
        _ => version,
    };
    if t == PacketType::Auth && version != Version::V5 {
        return Err(EncodeError::PacketNotInVersion { packet: t, version });
    }
    let mut w = Writer {
        buf: BytesMut::new(),
        packet: t,
        version,
    };
    let mut flags = rules::required_flags(t).unwrap_or(0);
    match packet {
        Packet::Connect(c) => connect(&mut w, c)?,
        Packet::ConnAck(c) => {
            w.check_reason(c.code)?;
            if c.session_present && c.code != 0 {
                return Err(w.invalid(
                    "session present",
                    "must be false when the return code is not 0 [MQTT-3.2.2-4]",
                ));
            }
            w.buf.put_u8(u8::from(c.session_present));
            w.buf.put_u8(c.code);
            w.properties(PropCtx::Packet(t), &c.properties)?;
        }
        Packet::Publish(p) => {
            flags = (u8::from(p.dup) << 3) | (p.qos.as_u8() << 1) | u8::from(p.retain);
            if p.dup && p.qos == QoS::AtMostOnce {
                return Err(w.invalid("DUP flag", "must be 0 on a QoS 0 PUBLISH [MQTT-3.3.1-2]"));
            }
            if let Some(problem) = rules::topic_problem(&p.topic) {
                return Err(w.invalid("topic name", problem));
            }
            if p.topic.is_empty() && !(w.v5() && p.properties.0.iter().any(|p| p.id == 0x23)) {
                return Err(w.invalid("topic name", super::read::publish_empty_topic(version)));
            }
            w.string("topic name", &p.topic)?;
            match (p.qos, p.pid) {
                (QoS::AtMostOnce, None) => {}
                (QoS::AtMostOnce, Some(_)) => {
                    return Err(w.invalid(
                        "packet identifier",
                        "a QoS 0 PUBLISH must not carry one [MQTT-2.3.1-5]",
                    ))
                }
                (_, Some(pid)) => w.pid(pid)?,
                (_, None) => {
                    return Err(w.invalid(
                        "packet identifier",
                        "a QoS 1 or 2 PUBLISH must carry one [MQTT-2.3.1-1]",
                    ))
                }
            }
            w.properties(PropCtx::Packet(t), &p.properties)?;
            w.buf.put_slice(&p.payload);
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            w.pid(a.pid)?;
            w.check_reason(a.code)?;
            if !w.v5() {
                w.properties(PropCtx::Packet(t), &a.properties)?;
            } else if a.code != 0 || !a.properties.is_empty() {
                w.buf.put_u8(a.code);
                if !a.properties.is_empty() {
                    w.properties(PropCtx::Packet(t), &a.properties)?;
                }
            }
        }
        Packet::Subscribe(s) => {
            w.pid(s.pid)?;
            w.properties(PropCtx::Packet(t), &s.properties)?;
            if s.filters.is_empty() {
                return Err(w.invalid(
                    "payload",
                    "a SUBSCRIBE must carry at least one topic filter [MQTT-3.8.3-3]",
                ));
            }
            for f in &s.filters {
                if f.options & 0x03 != 0 {
                    return Err(w.invalid(
                        "subscription options",
                        "carry QoS in `qos`: the QoS bits of `options` must be 0",
                    ));
                }
                if !w.v5() && f.options != 0 {
                    return Err(w.not_in_version("subscription options"));
                }
                let options = f.options | f.qos.as_u8();
                if let Some(problem) = rules::options_problem(options, version) {
                    return Err(w.invalid("subscription options", problem));
                }
                if options & 0x04 != 0 && rules::is_shared(&f.filter) {
                    return Err(w.invalid("subscription options", rules::NO_LOCAL_SHARED));
                }
                w.filter(&f.filter)?;
                w.buf.put_u8(options);
            }
        }
        Packet::SubAck(s) => {
            w.pid(s.pid)?;
            w.properties(PropCtx::Packet(t), &s.properties)?;
            reason_list(&mut w, &s.codes)?;
        }
        Packet::Unsubscribe(u) => {
            w.pid(u.pid)?;
            w.properties(PropCtx::Packet(t), &u.properties)?;
            if u.filters.is_empty() {
                return Err(w.invalid(
                    "payload",
                    "an UNSUBSCRIBE must carry at least one topic filter [MQTT-3.10.3-2]",
                ));
            }
            for f in &u.filters {
                w.filter(f)?;
            }
        }
        Packet::UnsubAck(u) => {
            w.pid(u.pid)?;
            w.properties(PropCtx::Packet(t), &u.properties)?;
            if w.v5() {
                reason_list(&mut w, &u.codes)?;
            } else if !u.codes.is_empty() {
                return Err(w.not_in_version("reason codes"));
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            w.check_reason(d.code)?;
            if !w.v5() {
                w.properties(PropCtx::Packet(t), &d.properties)?;
            } else if d.code != 0 || !d.properties.is_empty() {
                w.buf.put_u8(d.code);
                if !d.properties.is_empty() {
                    w.properties(PropCtx::Packet(t), &d.properties)?;
                }
            }
        }
        Packet::Auth(a) => {
            if a.code != 0 || !a.properties.is_empty() {
                w.reason(a.code)?;
                w.properties(PropCtx::Packet(t), &a.properties)?;
            }
        }
    }
    let body = w.buf;
    if body.len() > rules::MAX_VARINT as usize {
        return Err(EncodeError::TooLarge {
            packet: t,
            len: body.len(),
        });
    }
    Ok(super::raw_frame(((t as u8) << 4) | flags, &body))
}

fn reason_list(w: &mut Writer, codes: &[u8]) -> Result<(), EncodeError> {
    if codes.is_empty() {
        return Err(w.invalid(
            "payload",
            "must carry one reason code per topic filter, not none",
        ));
    }
    for &c in codes {
        w.reason(c)?;
    }
    Ok(())
}

fn connect(w: &mut Writer, c: &Connect) -> Result<(), EncodeError> {
    let (name, level): (&str, u8) = match c.version {
        Version::V31 => ("MQIsdp", 3),
        Version::V311 => ("MQTT", 4),
        Version::V5 => ("MQTT", 5),
    };
    if c.password.is_some() && c.username.is_none() && !w.v5() {
        return Err(w.invalid(
            "password",
            "a password needs a user name before 5.0 [MQTT-3.1.2-22]",
        ));
    }
    if let Some(problem) = auth_problem(&c.properties) {
        return Err(w.invalid("properties", problem));
    }
    let mut flags = 0u8;
    if c.clean_start {
        flags |= 0x02;
    }
    if let Some(will) = &c.will {
        flags |= 0x04 | (will.qos.as_u8() << 3);
        if will.retain {
            flags |= 0x20;
        }
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    w.string("protocol name", name)?;
    w.buf.put_u8(level);
    w.buf.put_u8(flags);
    w.buf.put_u16(c.keep_alive);
    w.properties(PropCtx::Packet(PacketType::Connect), &c.properties)?;
    w.string("client identifier", &c.client_id)?;
    if let Some(will) = &c.will {
        w.properties(PropCtx::Will, &will.properties)?;
        w.topic("will topic", &will.topic)?;
        w.string("will topic", &will.topic)?;
        w.binary("will payload", &will.payload)?;
    }
    if let Some(u) = &c.username {
        w.string("user name", u)?;
    }
    if let Some(p) = &c.password {
        w.binary("password", p)?;
    }
    Ok(())
}

/// A 5.0 property list without its length prefix (the agent's `props=`,
/// firmware/agent/PROTOCOL.md), checked as it may appear on `packet` (or in
/// the will properties when `will`).
pub(crate) fn property_list(
    packet: PacketType,
    will: bool,
    props: &Properties,
) -> Result<Bytes, EncodeError> {
    let mut w = Writer {
        buf: BytesMut::new(),
        packet,
        version: Version::V5,
    };
    let ctx = if will {
        PropCtx::Will
    } else {
        PropCtx::Packet(packet)
    };
    w.properties(ctx, props)?;
    let b = w.buf.freeze();
    // The length prefix is a varint: its last byte has the high bit clear.
    let skip = b.iter().position(|x| x & 0x80 == 0).map_or(0, |i| i + 1);
    Ok(b.slice(skip..))
}
