//! The specification's tables and rules as data and pure checks, shared by
//! the decoder (which adds byte offsets) and the encoder (which refuses to
//! build what the decoder would reject, so encode→decode is the identity).

use crate::mqtt::{PacketType, PropValue, Version};

/// Largest value a variable byte integer (and so a remaining length) holds.
pub(crate) const MAX_VARINT: u32 = 268_435_455;

/// Where a property list sits: each packet's own list, plus CONNECT's will.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PropCtx {
    Packet(PacketType),
    Will,
}

impl PropCtx {
    fn bit(self) -> u16 {
        match self {
            PropCtx::Will => 1,
            PropCtx::Packet(t) => 1 << (t as u16),
        }
    }
    pub(crate) fn place(self) -> &'static str {
        match self {
            PropCtx::Will => "will properties",
            PropCtx::Packet(_) => "properties",
        }
    }
}

/// The wire type of a property value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Byte,
    U16,
    U32,
    VarInt,
    Str,
    Bin,
    Pair,
}

impl Kind {
    pub(crate) fn of(v: &PropValue) -> Kind {
        match v {
            PropValue::Byte(_) => Kind::Byte,
            PropValue::U16(_) => Kind::U16,
            PropValue::U32(_) => Kind::U32,
            PropValue::VarInt(_) => Kind::VarInt,
            PropValue::Str(_) => Kind::Str,
            PropValue::Bin(_) => Kind::Bin,
            PropValue::Pair(..) => Kind::Pair,
        }
    }
}

/// One row of the 5.0 property table (§2.2.2.2).
pub(crate) struct PropSpec {
    pub name: &'static str,
    pub kind: Kind,
    /// Bit set of [`PropCtx::bit`] where the property may appear.
    allowed: u16,
}

impl PropSpec {
    pub(crate) fn allowed_in(&self, ctx: PropCtx) -> bool {
        self.allowed & ctx.bit() != 0
    }
}

const fn p(t: PacketType) -> u16 {
    1 << (t as u16)
}
const WILL: u16 = 1;
const CONNECT: u16 = p(PacketType::Connect);
const CONNACK: u16 = p(PacketType::ConnAck);
const PUBLISH: u16 = p(PacketType::Publish);
const PUBACKS: u16 =
    p(PacketType::PubAck) | p(PacketType::PubRec) | p(PacketType::PubRel) | p(PacketType::PubComp);
const SUBSCRIBE: u16 = p(PacketType::Subscribe);
const SUBACK: u16 = p(PacketType::SubAck);
const UNSUBSCRIBE: u16 = p(PacketType::Unsubscribe);
const UNSUBACK: u16 = p(PacketType::UnsubAck);
const DISCONNECT: u16 = p(PacketType::Disconnect);
const AUTH: u16 = p(PacketType::Auth);

/// The property with this identifier, if the 5.0 spec defines one.
pub(crate) fn prop_spec(id: u8) -> Option<PropSpec> {
    use Kind::*;
    let (name, kind, allowed) = match id {
        0x01 => ("Payload Format Indicator", Byte, PUBLISH | WILL),
        0x02 => ("Message Expiry Interval", U32, PUBLISH | WILL),
        0x03 => ("Content Type", Str, PUBLISH | WILL),
        0x08 => ("Response Topic", Str, PUBLISH | WILL),
        0x09 => ("Correlation Data", Bin, PUBLISH | WILL),
        0x0B => ("Subscription Identifier", VarInt, PUBLISH | SUBSCRIBE),
        0x11 => (
            "Session Expiry Interval",
            U32,
            CONNECT | CONNACK | DISCONNECT,
        ),
        0x12 => ("Assigned Client Identifier", Str, CONNACK),
        0x13 => ("Server Keep Alive", U16, CONNACK),
        0x15 => ("Authentication Method", Str, CONNECT | CONNACK | AUTH),
        0x16 => ("Authentication Data", Bin, CONNECT | CONNACK | AUTH),
        0x17 => ("Request Problem Information", Byte, CONNECT),
        0x18 => ("Will Delay Interval", U32, WILL),
        0x19 => ("Request Response Information", Byte, CONNECT),
        0x1A => ("Response Information", Str, CONNACK),
        0x1C => ("Server Reference", Str, CONNACK | DISCONNECT),
        0x1F => (
            "Reason String",
            Str,
            CONNACK | PUBACKS | SUBACK | UNSUBACK | DISCONNECT | AUTH,
        ),
        0x21 => ("Receive Maximum", U16, CONNECT | CONNACK),
        0x22 => ("Topic Alias Maximum", U16, CONNECT | CONNACK),
        0x23 => ("Topic Alias", U16, PUBLISH),
        0x24 => ("Maximum QoS", Byte, CONNACK),
        0x25 => ("Retain Available", Byte, CONNACK),
        0x26 => (
            "User Property",
            Pair,
            CONNECT
                | CONNACK
                | PUBLISH
                | WILL
                | PUBACKS
                | SUBSCRIBE
                | SUBACK
                | UNSUBSCRIBE
                | UNSUBACK
                | DISCONNECT
                | AUTH,
        ),
        0x27 => ("Maximum Packet Size", U32, CONNECT | CONNACK),
        0x28 => ("Wildcard Subscription Available", Byte, CONNACK),
        0x29 => ("Subscription Identifier Available", Byte, CONNACK),
        0x2A => ("Shared Subscription Available", Byte, CONNACK),
        _ => return None,
    };
    Some(PropSpec {
        name,
        kind,
        allowed,
    })
}

/// May this property appear more than once in this list?
pub(crate) fn repeatable(id: u8, ctx: PropCtx) -> bool {
    id == 0x26 || (id == 0x0B && ctx == PropCtx::Packet(PacketType::Publish))
}

/// Range rules on property values; `None` when the value is fine.
pub(crate) fn prop_value_problem(id: u8, value: &PropValue) -> Option<&'static str> {
    match (id, value) {
        (0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A, PropValue::Byte(b)) if *b > 1 => {
            Some("value must be 0 or 1 (a Protocol Error otherwise)")
        }
        (0x0B, PropValue::VarInt(0)) => {
            Some("Subscription Identifier 0 is a Protocol Error [MQTT-3.8.2.1.2]")
        }
        (_, PropValue::VarInt(v)) if *v > MAX_VARINT => {
            Some("value over 268,435,455 cannot be a variable byte integer")
        }
        (0x21, PropValue::U16(0)) => Some("Receive Maximum 0 is a Protocol Error"),
        (0x23, PropValue::U16(0)) => Some("Topic Alias 0 is a Protocol Error [MQTT-3.3.2-8]"),
        (0x27, PropValue::U32(0)) => Some("Maximum Packet Size 0 is a Protocol Error"),
        _ => None,
    }
}

/// Is `code` a reason (or return) code this packet type may carry in this
/// version? Tables: 3.1.1 §3.2.2.3 and §3.9.3, 5.0 §2.4 and each packet's
/// reason code section.
pub(crate) fn reason_ok(t: PacketType, version: Version, code: u8) -> bool {
    use PacketType::*;
    if version != Version::V5 {
        return match t {
            ConnAck => code <= 5,
            SubAck => matches!(code, 0 | 1 | 2 | 0x80),
            _ => code == 0,
        };
    }
    match t {
        ConnAck => matches!(
            code,
            0x00 | 0x80
                | 0x81
                | 0x82
                | 0x83
                | 0x84
                | 0x85
                | 0x86
                | 0x87
                | 0x88
                | 0x89
                | 0x8A
                | 0x8C
                | 0x90
                | 0x95
                | 0x97
                | 0x99
                | 0x9A
                | 0x9B
                | 0x9C
                | 0x9D
                | 0x9F
        ),
        PubAck | PubRec => matches!(
            code,
            0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
        ),
        PubRel | PubComp => matches!(code, 0x00 | 0x92),
        SubAck => matches!(
            code,
            0x00 | 0x01 | 0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
        ),
        UnsubAck => matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91),
        Disconnect => matches!(
            code,
            0x00 | 0x04
                | 0x80
                | 0x81
                | 0x82
                | 0x83
                | 0x87
                | 0x89
                | 0x8B
                | 0x8D
                | 0x8E
                | 0x8F
                | 0x90
                | 0x93
                | 0x94
                | 0x95
                | 0x96
                | 0x97
                | 0x98
                | 0x99
                | 0x9A
                | 0x9B
                | 0x9C
                | 0x9D
                | 0x9E
                | 0x9F
                | 0xA0
                | 0xA1
                | 0xA2
        ),
        Auth => matches!(code, 0x00 | 0x18 | 0x19),
        _ => code == 0,
    }
}

/// The fixed-header flags each packet type must carry (§2.2.2).
pub(crate) fn required_flags(t: PacketType) -> Option<u8> {
    use PacketType::*;
    match t {
        Publish => None,
        PubRel | Subscribe | Unsubscribe => Some(0b0010),
        _ => Some(0),
    }
}

/// Problems with a topic name (PUBLISH, will topic). Emptiness is checked by
/// the caller: a 5.0 PUBLISH may have an empty topic when it uses an alias.
pub(crate) fn topic_problem(topic: &str) -> Option<&'static str> {
    if topic.contains(['+', '#']) {
        return Some("a topic name must not contain wildcards [MQTT-3.3.2-2]");
    }
    None
}

pub(crate) const EMPTY_TOPIC: &str = "a topic name must be at least one character [MQTT-4.7.3-1]";

/// Problems with a topic filter (SUBSCRIBE, UNSUBSCRIBE).
pub(crate) fn filter_problem(filter: &str, version: Version) -> Option<&'static str> {
    if filter.is_empty() {
        return Some("a topic filter must be at least one character [MQTT-4.7.3-1]");
    }
    let mut pattern = filter;
    if version == Version::V5 {
        if let Some(rest) = filter.strip_prefix("$share/") {
            match rest.split_once('/') {
                Some((group, f)) if !group.is_empty() && !f.is_empty() => {
                    if group.contains(['+', '#']) {
                        return Some("a share name must not contain wildcards [MQTT-4.8.2-2]");
                    }
                    pattern = f;
                }
                _ => {
                    return Some(
                        "a shared subscription needs a share name and a filter: \
                         $share/{name}/{filter} [MQTT-4.8.2-1]",
                    )
                }
            }
        }
    }
    let mut levels = pattern.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Some("`#` must be alone in the last level [MQTT-4.7.1-2]");
        }
        if level.contains('+') && level != "+" {
            return Some("`+` must occupy a whole level [MQTT-4.7.1-3]");
        }
    }
    None
}

/// Is this filter a 5.0 shared subscription?
pub(crate) fn is_shared(filter: &str) -> bool {
    filter.starts_with("$share/")
}

/// Problems with a SUBSCRIBE options byte (the whole byte, QoS included).
pub(crate) fn options_problem(options: u8, version: Version) -> Option<&'static str> {
    if version != Version::V5 {
        if options & 0xFC != 0 {
            return Some("bits 7-2 are reserved and must be 0 before 5.0 [MQTT-3-8.3-4]");
        }
        return None;
    }
    if options & 0xC0 != 0 {
        return Some("bits 7-6 are reserved and must be 0 [MQTT-3.8.3-5]");
    }
    if (options >> 4) & 3 == 3 {
        return Some("Retain Handling 3 is a Protocol Error [MQTT-3.8.3.1]");
    }
    None
}

pub(crate) const NO_LOCAL_SHARED: &str =
    "No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4]";

/// Is the string free of U+0000?
pub(crate) fn has_nul(s: &str) -> bool {
    s.contains('\0')
}
