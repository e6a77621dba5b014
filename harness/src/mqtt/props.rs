//! MQTT 5.0 properties as scenario files name them: the snake_case key of
//! each property, reading a `properties = { ... }` table into [`Properties`]
//! for one place (a packet type or the will) with the spec's placement and
//! range rules, matching an expectation's table against what was received,
//! and one-line rendering for traces.
//!
//! The placement and range rules are the codec's own (`codec::rules`), so a
//! scenario can only ask for what the encoder would send, unless it says
//! `raw = true` and means to send a broken packet on purpose.

use std::fmt::Write as _;

use bytes::Bytes;

use super::codec::rules::{self, Kind, PropCtx};
use super::{PacketType, PropValue, Properties, Property};

pub const PAYLOAD_FORMAT: u8 = 0x01;
pub const MESSAGE_EXPIRY: u8 = 0x02;
pub const CONTENT_TYPE: u8 = 0x03;
pub const RESPONSE_TOPIC: u8 = 0x08;
pub const CORRELATION_DATA: u8 = 0x09;
pub const SUBSCRIPTION_ID: u8 = 0x0B;
pub const SESSION_EXPIRY: u8 = 0x11;
pub const ASSIGNED_CLIENT_ID: u8 = 0x12;
pub const SERVER_KEEP_ALIVE: u8 = 0x13;
pub const WILL_DELAY: u8 = 0x18;
pub const REASON_STRING: u8 = 0x1F;
pub const RECEIVE_MAXIMUM: u8 = 0x21;
pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub const TOPIC_ALIAS: u8 = 0x23;
pub const MAXIMUM_QOS: u8 = 0x24;
pub const RETAIN_AVAILABLE: u8 = 0x25;
pub const USER_PROPERTY: u8 = 0x26;
pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;

/// Scenario keys and the property each names.
pub const KEYS: &[(&str, u8)] = &[
    ("payload_format", 0x01),
    ("message_expiry", 0x02),
    ("content_type", 0x03),
    ("response_topic", 0x08),
    ("correlation_data", 0x09),
    ("subscription_identifier", 0x0B),
    ("session_expiry", 0x11),
    ("assigned_client_identifier", 0x12),
    ("server_keep_alive", 0x13),
    ("authentication_method", 0x15),
    ("authentication_data", 0x16),
    ("request_problem_information", 0x17),
    ("will_delay", 0x18),
    ("request_response_information", 0x19),
    ("response_information", 0x1A),
    ("server_reference", 0x1C),
    ("reason_string", 0x1F),
    ("receive_maximum", 0x21),
    ("topic_alias_maximum", 0x22),
    ("topic_alias", 0x23),
    ("maximum_qos", 0x24),
    ("retain_available", 0x25),
    ("user_properties", 0x26),
    ("maximum_packet_size", 0x27),
    ("wildcard_subscription_available", 0x28),
    ("subscription_identifier_available", 0x29),
    ("shared_subscription_available", 0x2A),
];

/// The scenario key of a property id.
pub fn key_of(id: u8) -> Option<&'static str> {
    KEYS.iter().find(|(_, i)| *i == id).map(|(k, _)| *k)
}

fn id_of(key: &str) -> Option<u8> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, i)| *i)
}

/// Where a property table of a scenario file sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Packet(PacketType),
    Will,
}

impl Place {
    fn ctx(self) -> PropCtx {
        match self {
            Place::Packet(t) => PropCtx::Packet(t),
            Place::Will => PropCtx::Will,
        }
    }
    fn name(self) -> String {
        match self {
            Place::Packet(t) => t.name().to_string(),
            Place::Will => "the will".into(),
        }
    }
}

/// The statement (or section) of 5.0 that makes a property value wrong.
fn value_rule(id: u8, v: &PropValue) -> Option<String> {
    let why = rules::prop_value_problem(id, v)?;
    let cite = match id {
        0x23 => "",
        0x21 => " (§3.1.2.11.3 / §3.2.2.3.3)",
        0x27 => " (§3.1.2.11.4 / §3.2.2.3.6)",
        0x0B => "",
        _ => " (§2.2.2.2)",
    };
    Some(format!("{why}{cite}"))
}

/// A problem with one key: the key and what is wrong with it.
pub type KeyError = (String, String);

/// Reads a scenario's `properties` table for one place. With `raw`, the
/// placement and range rules are not applied (the scenario sends a broken
/// packet on purpose), but the types still are: a value has to be encodable.
pub fn from_toml(t: &toml::Table, place: Place, raw: bool) -> Result<Properties, KeyError> {
    let mut out = Vec::new();
    for (key, value) in t {
        let Some(id) = id_of(key) else {
            let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            let near = crate::scenario::closest_word(key, &keys)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err((
                key.clone(),
                format!(
                    "unknown property `{key}`{near}; 5.0 properties: {}",
                    keys.join(", ")
                ),
            ));
        };
        let spec = rules::prop_spec(id).expect("KEYS lists only defined properties");
        if !raw && !spec.allowed_in(place.ctx()) {
            return Err((
                key.clone(),
                format!(
                    "{} may not appear in {} (5.0 §2.2.2.2, Table 2-4: a Protocol Error); \
                     set `raw = true` to send it anyway and judge the peer",
                    spec.name,
                    place.name()
                ),
            ));
        }
        if id == USER_PROPERTY {
            for (k, v) in user_pairs(key, value)? {
                out.push(Property {
                    id,
                    value: PropValue::Pair(k, v),
                });
            }
            continue;
        }
        let v = typed(key, spec.kind, value)?;
        if !raw {
            if let Some(why) = value_rule(id, &v) {
                return Err((
                    key.clone(),
                    format!("{why}; set `raw = true` to send it anyway and judge the peer"),
                ));
            }
        }
        out.push(Property { id, value: v });
    }
    Ok(Properties(out))
}

fn user_pairs(key: &str, v: &toml::Value) -> Result<Vec<(String, String)>, KeyError> {
    let bad = || {
        (
            key.to_string(),
            "expected a list of [name, value] pairs, e.g. [[\"a\", \"1\"], [\"a\", \"2\"]] \
             (a list: order and repeats are part of the message)"
                .to_string(),
        )
    };
    let toml::Value::Array(items) = v else {
        return Err(bad());
    };
    items
        .iter()
        .map(|i| match i {
            toml::Value::Array(p) if p.len() == 2 => match (&p[0], &p[1]) {
                (toml::Value::String(a), toml::Value::String(b)) => Ok((a.clone(), b.clone())),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        })
        .collect()
}

fn typed(key: &str, kind: Kind, v: &toml::Value) -> Result<PropValue, KeyError> {
    let int = |max: i64| -> Result<i64, KeyError> {
        match v {
            toml::Value::Integer(i) if (0..=max).contains(i) => Ok(*i),
            toml::Value::Integer(i) => {
                Err((key.to_string(), format!("{i} is out of range 0..={max}")))
            }
            toml::Value::Boolean(b) if max == 255 => Ok(*b as i64),
            _ => Err((key.to_string(), "expected a number".to_string())),
        }
    };
    Ok(match kind {
        Kind::Byte => PropValue::Byte(int(255)? as u8),
        Kind::U16 => PropValue::U16(int(65535)? as u16),
        Kind::U32 => PropValue::U32(int(u32::MAX as i64)? as u32),
        Kind::VarInt => PropValue::VarInt(int(268_435_455)? as u32),
        Kind::Str => match v {
            toml::Value::String(s) => PropValue::Str(s.clone()),
            _ => return Err((key.to_string(), "expected a string".into())),
        },
        Kind::Bin => match v {
            toml::Value::String(s) => PropValue::Bin(Bytes::from(s.clone())),
            _ => {
                return Err((
                    key.to_string(),
                    "expected a string (its UTF-8 bytes are sent)".into(),
                ))
            }
        },
        Kind::Pair => unreachable!("user properties are read by user_pairs"),
    })
}

/// The first value of a property.
pub fn get(p: &Properties, id: u8) -> Option<&PropValue> {
    p.0.iter().find(|x| x.id == id).map(|x| &x.value)
}

/// A numeric property (byte, two/four-byte or variable integer).
pub fn num(p: &Properties, id: u8) -> Option<u32> {
    get(p, id).and_then(|v| match v {
        PropValue::Byte(b) => Some(*b as u32),
        PropValue::U16(x) => Some(*x as u32),
        PropValue::U32(x) | PropValue::VarInt(x) => Some(*x),
        _ => None,
    })
}

/// Every value of a repeatable property (user properties, subscription ids).
pub fn all(p: &Properties, id: u8) -> impl Iterator<Item = &PropValue> {
    p.0.iter().filter(move |x| x.id == id).map(|x| &x.value)
}

/// User properties in order.
pub fn user(p: &Properties) -> Vec<(&str, &str)> {
    all(p, USER_PROPERTY)
        .filter_map(|v| match v {
            PropValue::Pair(a, b) => Some((a.as_str(), b.as_str())),
            _ => None,
        })
        .collect()
}

/// What an expectation demands of a received property list: each listed
/// property with this value (`"*"`: present, any value; `false` for a
/// number: absent). User properties must match in full, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Want {
    Value(PropValue),
    Present,
    Absent,
    User(Vec<(String, String)>),
}

/// Reads an expectation's `properties` table.
pub fn wants_from_toml(t: &toml::Table) -> Result<Vec<(u8, Want)>, KeyError> {
    let mut out = Vec::new();
    for (key, value) in t {
        let Some(id) = id_of(key) else {
            return Err((key.clone(), format!("unknown property `{key}`")));
        };
        let w = match value {
            toml::Value::String(s) if s == "*" => Want::Present,
            toml::Value::Boolean(false) => Want::Absent,
            _ if id == USER_PROPERTY => Want::User(user_pairs(key, value)?),
            _ => Want::Value(typed(
                key,
                rules::prop_spec(id).expect("known").kind,
                value,
            )?),
        };
        out.push((id, w));
    }
    Ok(out)
}

/// Does `p` meet every want? `Err` says the first one it does not.
pub fn meets(p: &Properties, wants: &[(u8, Want)]) -> Result<(), String> {
    for (id, w) in wants {
        let key = key_of(*id).unwrap_or("?");
        let got = get(p, *id);
        let ok = match w {
            Want::Present => got.is_some(),
            Want::Absent => got.is_none(),
            Want::Value(v) => got == Some(v),
            Want::User(pairs) => {
                user(p)
                    == pairs
                        .iter()
                        .map(|(a, b)| (a.as_str(), b.as_str()))
                        .collect::<Vec<_>>()
            }
        };
        if !ok {
            return Err(format!("{key}: wanted {w:?}, got {}", render(p)));
        }
    }
    Ok(())
}

/// Properties for a trace line: ` {key=value, ...}` or nothing. Values the
/// broker chooses by the clock or at random (a remaining message expiry, an
/// assigned client id) are shown as `*` so traces stay deterministic; the
/// checkers judge their values.
pub fn render_trace(p: &Properties, volatile: bool) -> String {
    if p.is_empty() {
        return String::new();
    }
    let mut s = String::from(" {");
    let mut first = true;
    for x in p.0.iter().filter(|x| x.id != USER_PROPERTY) {
        if !first {
            s += ", ";
        }
        first = false;
        let key = key_of(x.id).unwrap_or("?");
        let hide = matches!(x.id, ASSIGNED_CLIENT_ID | REASON_STRING)
            || (volatile && x.id == MESSAGE_EXPIRY);
        if hide {
            let _ = write!(s, "{key}=*");
        } else {
            let _ = write!(s, "{key}={}", value_text(&x.value));
        }
    }
    let users = user(p);
    if !users.is_empty() {
        if !first {
            s += ", ";
        }
        let pairs: Vec<String> = users.iter().map(|(a, b)| format!("{a}={b}")).collect();
        let _ = write!(s, "user=[{}]", pairs.join(" "));
    }
    s + "}"
}

/// All properties, values shown.
pub fn render(p: &Properties) -> String {
    let parts: Vec<String> =
        p.0.iter()
            .map(|x| format!("{}={}", key_of(x.id).unwrap_or("?"), value_text(&x.value)))
            .collect();
    format!("{{{}}}", parts.join(", "))
}

fn value_text(v: &PropValue) -> String {
    match v {
        PropValue::Byte(b) => b.to_string(),
        PropValue::U16(x) => x.to_string(),
        PropValue::U32(x) | PropValue::VarInt(x) => x.to_string(),
        PropValue::Str(s) => format!("{s:?}"),
        PropValue::Bin(b) => crate::trace::payload(b),
        PropValue::Pair(a, b) => format!("{a:?}:{b:?}"),
    }
}

/// A packet's reason (or return) code: CONNACK, the acks, DISCONNECT,
/// AUTH; SUBACK's and UNSUBACK's first.
pub fn packet_code(p: &super::Packet) -> Option<u8> {
    use super::Packet::*;
    match p {
        ConnAck(c) => Some(c.code),
        PubAck(a) | PubRec(a) | PubRel(a) | PubComp(a) => Some(a.code),
        SubAck(s) => s.codes.first().copied(),
        UnsubAck(u) => u.codes.first().copied(),
        Disconnect(d) => Some(d.code),
        Auth(a) => Some(a.code),
        _ => None,
    }
}

/// A packet's own property list.
pub fn packet_props(p: &super::Packet) -> Option<&Properties> {
    use super::Packet::*;
    Some(match p {
        Connect(c) => &c.properties,
        ConnAck(c) => &c.properties,
        Publish(x) => &x.properties,
        PubAck(a) | PubRec(a) | PubRel(a) | PubComp(a) => &a.properties,
        Subscribe(x) => &x.properties,
        SubAck(x) => &x.properties,
        Unsubscribe(x) => &x.properties,
        UnsubAck(x) => &x.properties,
        Disconnect(x) => &x.properties,
        Auth(x) => &x.properties,
        PingReq | PingResp => return None,
    })
}

/// The wire form of a property list (length prefix included), without any
/// rule checks: for packets a scenario breaks on purpose.
pub fn encode_unchecked(p: &Properties) -> Vec<u8> {
    let mut body = Vec::new();
    for x in &p.0 {
        put_varint(&mut body, x.id as usize);
        match &x.value {
            PropValue::Byte(b) => body.push(*b),
            PropValue::U16(v) => body.extend_from_slice(&v.to_be_bytes()),
            PropValue::U32(v) => body.extend_from_slice(&v.to_be_bytes()),
            PropValue::VarInt(v) => put_varint(&mut body, *v as usize),
            PropValue::Str(s) => put_str(&mut body, s.as_bytes()),
            PropValue::Bin(b) => put_str(&mut body, b),
            PropValue::Pair(a, b) => {
                put_str(&mut body, a.as_bytes());
                put_str(&mut body, b.as_bytes());
            }
        }
    }
    let mut out = Vec::new();
    put_varint(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

pub(crate) fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u16).to_be_bytes());
    buf.extend_from_slice(s);
}

pub(crate) fn put_varint(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        buf.push(b);
        if n == 0 {
            break;
        }
    }
}

/// A 5.0 PUBLISH frame built without validation (topic alias 0, an alias
/// above the peer's maximum, a subscription identifier from a client...).
pub fn raw_publish(
    dup: bool,
    qos: u8,
    retain: bool,
    topic: &str,
    pid: Option<u16>,
    props: &Properties,
    payload: &[u8],
) -> Bytes {
    let mut body = Vec::new();
    put_str(&mut body, topic.as_bytes());
    if let Some(p) = pid {
        body.extend_from_slice(&p.to_be_bytes());
    }
    body.extend_from_slice(&encode_unchecked(props));
    body.extend_from_slice(payload);
    let first = 0x30 | ((dup as u8) << 3) | (qos << 1) | retain as u8;
    super::codec::raw_frame(first, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn reads_keys_for_their_packet_and_refuses_the_wrong_one() {
        let p = from_toml(
            &table("session_expiry = 30\nreceive_maximum = 2\nuser_properties = [[\"a\",\"1\"],[\"a\",\"2\"]]"),
            Place::Packet(PacketType::Connect),
            false,
        )
        .unwrap();
        assert_eq!(num(&p, SESSION_EXPIRY), Some(30));
        assert_eq!(user(&p), vec![("a", "1"), ("a", "2")]);
        let e = from_toml(
            &table("topic_alias = 1"),
            Place::Packet(PacketType::Connect),
            false,
        )
        .unwrap_err();
        assert!(e.1.contains("may not appear in CONNECT"), "{e:?}");
        let e = from_toml(
            &table("will_delay = 1"),
            Place::Packet(PacketType::Publish),
            false,
        )
        .unwrap_err();
        assert!(e.1.contains("Will Delay"), "{e:?}");
        assert!(from_toml(&table("will_delay = 1"), Place::Will, false).is_ok());
    }

    #[test]
    fn out_of_range_values_cite_the_rule_unless_raw() {
        let e = from_toml(
            &table("topic_alias = 0"),
            Place::Packet(PacketType::Publish),
            false,
        )
        .unwrap_err();
        assert!(e.1.contains("MQTT-3.3.2-8"), "{e:?}");
        let e = from_toml(
            &table("receive_maximum = 0"),
            Place::Packet(PacketType::Connect),
            false,
        )
        .unwrap_err();
        assert!(e.1.contains("Receive Maximum 0"), "{e:?}");
        let p = from_toml(
            &table("topic_alias = 0"),
            Place::Packet(PacketType::Publish),
            true,
        )
        .unwrap();
        assert_eq!(num(&p, TOPIC_ALIAS), Some(0));
        let e = from_toml(
            &table("topic_alis = 1"),
            Place::Packet(PacketType::Publish),
            false,
        )
        .unwrap_err();
        assert!(e.1.contains("did you mean `topic_alias`"), "{e:?}");
    }

    #[test]
    fn wants_match_values_presence_and_user_order() {
        let p = from_toml(
            &table("message_expiry = 9\nuser_properties = [[\"b\",\"2\"],[\"a\",\"1\"]]"),
            Place::Packet(PacketType::Publish),
            false,
        )
        .unwrap();
        let w = wants_from_toml(&table("message_expiry = \"*\"\ntopic_alias = false")).unwrap();
        assert!(meets(&p, &w).is_ok());
        let w = wants_from_toml(&table("user_properties = [[\"a\",\"1\"],[\"b\",\"2\"]]")).unwrap();
        assert!(meets(&p, &w).is_err(), "order matters");
    }

    #[test]
    fn unchecked_encoding_is_what_the_decoder_reads() {
        let p = from_toml(
            &table("topic_alias = 3\nmessage_expiry = 7"),
            Place::Packet(PacketType::Publish),
            false,
        )
        .unwrap();
        let f = raw_publish(false, 1, false, "a/b", Some(5), &p, b"x");
        match crate::mqtt::codec::decode(&f, crate::mqtt::Version::V5).unwrap() {
            crate::mqtt::Packet::Publish(pb) => {
                assert_eq!(pb.properties, p);
                assert_eq!(pb.pid, Some(5));
            }
            other => panic!("{other:?}"),
        }
    }
}
