//! The codec's errors. Every decode error says what is wrong, where (a byte
//! offset from the start of the frame, the fixed header's first byte being
//! byte 0) and, where the specification numbers the rule, which rule.

use crate::mqtt::{PacketType, Version};

/// Human name of a protocol version, as the specifications write it.
pub(crate) fn version_name(v: &Version) -> &'static str {
    match v {
        Version::V31 => "3.1",
        Version::V311 => "3.1.1",
        Version::V5 => "5.0",
    }
}

/// Why bytes are not a valid MQTT frame or packet.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The fixed header's high nibble is 0, which no version defines; the
    /// stream cannot be framed past this byte.
    #[error("packet type 0 is reserved (first byte {byte:#04x} at byte 0) [MQTT-2.2.1]")]
    ReservedPacketType { byte: u8 },

    /// The 4th remaining-length byte has its continuation bit set.
    #[error(
        "remaining length at bytes 1..=4 continues past 4 bytes (over 268,435,455) [MQTT-2.2.3]"
    )]
    RemainingLengthTooLong,

    /// The remaining length is encoded with more bytes than needed.
    #[error(
        "{packet} remaining length at byte 1 uses {used} bytes where {minimal} suffice [MQTT-1.5.5-1]"
    )]
    RemainingLengthNotMinimal {
        packet: PacketType,
        used: usize,
        minimal: usize,
    },

    /// `decode` was given bytes that end inside the fixed header.
    #[error("frame of {len} byte(s) ends inside its fixed header")]
    IncompleteHeader { len: usize },

    /// `decode` was given fewer or more bytes than the fixed header declares.
    #[error("frame is {actual} bytes but its fixed header declares {declared}")]
    FrameLength { declared: usize, actual: usize },

    /// A packet type the negotiated version does not have (AUTH before 5.0).
    #[error("{packet} (first byte at byte 0) does not exist in MQTT {}", version_name(.version))]
    PacketNotInVersion {
        packet: PacketType,
        version: Version,
    },

    /// The fixed header's low nibble is not what this packet type requires.
    #[error(
        "{packet} fixed header flags are {flags:#06b} at byte 0, must be {expected:#06b} [MQTT-2.2.2-2]"
    )]
    ReservedFlags {
        packet: PacketType,
        flags: u8,
        expected: u8,
    },

    /// A QoS field holds 3.
    #[error("{packet} {field} is 3 at byte {at}, a reserved QoS value ({rule})")]
    InvalidQoS {
        packet: PacketType,
        field: &'static str,
        at: usize,
        rule: &'static str,
    },

    /// A field runs past the end of the frame (or of its property section).
    #[error(
        "{packet} {field} at byte {at} needs {needed} byte(s) but the {scope} ends at byte {end}"
    )]
    Truncated {
        packet: PacketType,
        field: &'static str,
        at: usize,
        needed: usize,
        scope: &'static str,
        end: usize,
    },

    /// Bytes left over after the packet's last field.
    #[error("{packet} has {count} unexpected byte(s) after its last field, from byte {at}")]
    TrailingBytes {
        packet: PacketType,
        at: usize,
        count: usize,
    },

    /// A string is not well-formed UTF-8.
    #[error("{packet} {field} is not valid UTF-8 at byte {at} [MQTT-1.5.3-1]")]
    InvalidUtf8 {
        packet: PacketType,
        field: &'static str,
        at: usize,
    },

    /// A string contains the null character.
    #[error("{packet} {field} contains U+0000 at byte {at} [MQTT-1.5.3-2]")]
    NullChar {
        packet: PacketType,
        field: &'static str,
        at: usize,
    },

    /// A packet identifier is 0.
    #[error("{packet} packet identifier at byte {at} is 0 [MQTT-2.3.1-1]")]
    ZeroPacketId { packet: PacketType, at: usize },

    /// A variable byte integer longer than 4 bytes or not minimally encoded.
    #[error("{packet} {field} at byte {at} is not a valid variable byte integer: {problem}")]
    InvalidVarInt {
        packet: PacketType,
        field: &'static str,
        at: usize,
        problem: &'static str,
    },

    /// CONNECT's protocol name and level are not one of the known pairs.
    #[error(
        "CONNECT protocol {name:?} level {level} at byte {at} is not MQTT 3.1 (\"MQIsdp\", 3), \
         3.1.1 (\"MQTT\", 4) or 5.0 (\"MQTT\", 5) [MQTT-3.1.2-1] [MQTT-3.1.2-2]"
    )]
    UnknownProtocol { name: String, level: u8, at: usize },

    /// A flag or field combination the spec forbids; `problem` names the rule.
    #[error("{packet} {field} at byte {at}: {problem}")]
    Invalid {
        packet: PacketType,
        field: &'static str,
        at: usize,
        problem: &'static str,
    },

    /// A reason or return code this packet type may not carry in this version.
    #[error(
        "{packet} reason code {code:#04x} at byte {at} is not defined for {packet} in MQTT {}",
        version_name(.version)
    )]
    InvalidReasonCode {
        packet: PacketType,
        code: u8,
        at: usize,
        version: Version,
    },

    /// A topic name or filter breaks the topic rules.
    #[error("{packet} {field} {topic:?} at byte {at}: {problem}")]
    InvalidTopic {
        packet: PacketType,
        field: &'static str,
        topic: String,
        at: usize,
        problem: &'static str,
    },

    /// A 5.0 property identifier the spec does not define.
    #[error("{packet} {place} has unknown property id {id:#04x} at byte {at} [MQTT-2.2.2]")]
    UnknownProperty {
        packet: PacketType,
        place: &'static str,
        id: u32,
        at: usize,
    },

    /// A known property in a packet that may not carry it.
    #[error("{packet} {place} may not carry property {name} ({id:#04x}), at byte {at}")]
    PropertyNotAllowed {
        packet: PacketType,
        place: &'static str,
        name: &'static str,
        id: u8,
        at: usize,
    },

    /// A property given twice where only one is allowed.
    #[error(
        "{packet} {place} carries property {name} twice, again at byte {at} (a Protocol Error)"
    )]
    DuplicateProperty {
        packet: PacketType,
        place: &'static str,
        name: &'static str,
        at: usize,
    },

    /// A property value outside its allowed range.
    #[error("{packet} property {name} at byte {at}: {problem}")]
    PropertyValue {
        packet: PacketType,
        name: &'static str,
        at: usize,
        problem: &'static str,
    },
}

/// Why a packet cannot be encoded for a version.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The body does not fit a remaining length.
    #[error(
        "{packet} body is {len} bytes, over the 268,435,455 a remaining length can carry [MQTT-2.2.3]"
    )]
    TooLarge { packet: PacketType, len: usize },

    /// A length-prefixed string or binary field is over 65,535 bytes.
    #[error(
        "{packet} {field} is {len} bytes, over the 65,535 its length prefix can carry [MQTT-1.5.3]"
    )]
    FieldTooLong {
        packet: PacketType,
        field: &'static str,
        len: usize,
    },

    /// A 5.0-only field is set but the version is older.
    #[error(
        "{packet} {field} is not representable in MQTT {}: it exists only in 5.0 and must be empty or zero",
        version_name(.version)
    )]
    NotInVersion {
        packet: PacketType,
        field: &'static str,
        version: Version,
    },

    /// A packet type the version does not have (AUTH before 5.0).
    #[error("{packet} does not exist in MQTT {}", version_name(.version))]
    PacketNotInVersion {
        packet: PacketType,
        version: Version,
    },

    /// A field value the spec forbids (and that decode would reject).
    #[error("{packet} {field}: {problem}")]
    Invalid {
        packet: PacketType,
        field: &'static str,
        problem: String,
    },
}
