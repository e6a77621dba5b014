//! Lines of the agent protocol: `verb key=value ...`, values
//! percent-encoded; device lines that matter start with `@`.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::client::{ClientEvent, Command, ConnectOptions, Reconnect};
use crate::history::Delivery;
use crate::mqtt::codec::{decode_property_list, encode_property_list};
use crate::mqtt::{PacketType, Properties, QoS, Version};

/// Percent-encodes bytes outside 0x21..=0x7e, and `%`, `=`, space.
pub fn encode_value(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len());
    for &b in v {
        if (0x21..=0x7e).contains(&b) && b != b'%' && b != b'=' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

pub fn decode_value(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("truncated %-escape in `{s}`"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape `%{hex}`"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Where the agent's `connect` should dial: the emulated board reaches the
/// harness through QEMU's guestfwd address, the host build on loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    pub host: String,
    pub port: u16,
}

fn kv(out: &mut String, key: &str, value: &[u8]) {
    out.push(' ');
    out.push_str(key);
    out.push('=');
    out.push_str(&encode_value(value));
}

/// Renders a command as one protocol line (without the newline). Returns
/// `None` for commands the agent protocol has no verb for.
pub fn render_command(cmd: &Command, dial: &Dial) -> Option<String> {
    let mut s = cmd.verb().to_string();
    match cmd {
        Command::Connect { opts, reconnect } => {
            render_connect(&mut s, opts, reconnect.as_ref(), dial);
            if opts.version == Version::V5 {
                render_connect_v5(&mut s, opts)?;
            }
        }
        // The agent takes one filter per SUBSCRIBE (PROTOCOL.md).
        Command::SubscribeWith {
            filters,
            properties,
        } => {
            let [f] = filters.as_slice() else {
                return None;
            };
            kv(&mut s, "filter", f.filter.as_bytes());
            kv(&mut s, "qos", f.qos.as_u8().to_string().as_bytes());
            let flag = |bit: u8| if f.options & bit != 0 { b"1" } else { b"0" };
            kv(&mut s, "nl", flag(0x04));
            kv(&mut s, "rap", flag(0x08));
            kv(&mut s, "rh", ((f.options >> 4) & 3).to_string().as_bytes());
            props(&mut s, "props", PacketType::Subscribe, false, properties)?;
        }
        Command::DisconnectWith { code, properties } => {
            kv(&mut s, "rc", code.to_string().as_bytes());
            props(&mut s, "props", PacketType::Disconnect, false, properties)?;
        }
        Command::Subscribe(filters) => {
            let (f, q) = filters.first()?;
            kv(&mut s, "filter", f.as_bytes());
            kv(&mut s, "qos", q.as_u8().to_string().as_bytes());
        }
        Command::Unsubscribe(filters) => kv(&mut s, "filter", filters.first()?.as_bytes()),
        Command::Publish {
            topic,
            payload,
            qos,
            retain,
            properties,
            raw,
            ..
        } => {
            if *raw {
                return None;
            }
            kv(&mut s, "topic", topic.as_bytes());
            kv(&mut s, "qos", qos.as_u8().to_string().as_bytes());
            kv(&mut s, "retain", if *retain { b"1" } else { b"0" });
            kv(&mut s, "payload", payload);
            props(&mut s, "props", PacketType::Publish, false, properties)?;
        }
        Command::Disconnect | Command::Drop | Command::Reboot | Command::Status => {}
        Command::SetAcks(_) | Command::Release(_) | Command::SetPings(_) => return None,
    }
    Some(s)
}

/// `key=` with a 5.0 property list as raw bytes (PROTOCOL.md), when there
/// is one; `None` if the list cannot be encoded for that packet.
fn props(s: &mut String, key: &str, packet: PacketType, will: bool, p: &Properties) -> Option<()> {
    if !p.is_empty() {
        kv(s, key, &encode_property_list(packet, will, p).ok()?);
    }
    Some(())
}

fn render_connect_v5(s: &mut String, o: &ConnectOptions) -> Option<()> {
    kv(s, "version", b"5");
    props(s, "props", PacketType::Connect, false, &o.properties)?;
    if let Some(w) = &o.will {
        props(s, "will_props", PacketType::Connect, true, &w.properties)?;
    }
    Some(())
}

fn render_connect(s: &mut String, o: &ConnectOptions, rc: Option<&Reconnect>, dial: &Dial) {
    kv(s, "id", o.client_id.as_bytes());
    kv(s, "clean", if o.clean_session { b"1" } else { b"0" });
    kv(s, "keepalive", o.keepalive.to_string().as_bytes());
    kv(s, "host", dial.host.as_bytes());
    kv(s, "port", dial.port.to_string().as_bytes());
    if let Some(u) = &o.username {
        kv(s, "user", u.as_bytes());
    }
    if let Some(p) = &o.password {
        kv(s, "pass", p);
    }
    if let Some(w) = &o.will {
        kv(s, "will_topic", w.topic.as_bytes());
        kv(s, "will_payload", &w.payload);
        kv(s, "will_qos", w.qos.as_u8().to_string().as_bytes());
        kv(s, "will_retain", if w.retain { b"1" } else { b"0" });
    }
    if let Some(r) = rc {
        kv(s, "reconnect", b"1");
        kv(
            s,
            "backoff_ms",
            r.initial.as_millis().to_string().as_bytes(),
        );
        kv(
            s,
            "backoff_max_ms",
            r.max.as_millis().to_string().as_bytes(),
        );
    }
}

/// A line from the device, classified.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceLine {
    /// The answer to the command in flight.
    Ok {
        verb: String,
        fields: BTreeMap<String, Vec<u8>>,
    },
    Err {
        verb: String,
        reason: String,
    },
    /// An asynchronous event.
    Event(ClientEvent),
    /// `@log`: for humans.
    Log(String),
    /// Not protocol: boot noise, debug prints, ROM output.
    Noise(String),
    /// An `@` line that does not parse: a protocol bug worth reporting.
    Bad {
        line: String,
        why: String,
    },
}

fn fields(rest: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut m = BTreeMap::new();
    for tok in rest.split(' ').filter(|t| !t.is_empty()) {
        let (k, v) = tok
            .split_once('=')
            .ok_or_else(|| format!("`{tok}` is not key=value"))?;
        m.insert(k.to_string(), decode_value(v)?);
    }
    Ok(m)
}

fn text(m: &BTreeMap<String, Vec<u8>>, k: &str) -> Result<String, String> {
    m.get(k)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .ok_or_else(|| format!("missing `{k}`"))
}

fn num<T: std::str::FromStr>(m: &BTreeMap<String, Vec<u8>>, k: &str) -> Result<T, String> {
    text(m, k)?
        .parse()
        .map_err(|_| format!("`{k}` is not a number"))
}

pub fn parse_line(line: &str) -> DeviceLine {
    let line = line.trim_end_matches(['\r', '\n']);
    let Some(body) = line.strip_prefix('@') else {
        return DeviceLine::Noise(line.to_string());
    };
    let (word, rest) = body.split_once(' ').unwrap_or((body, ""));
    let bad = |why: String| DeviceLine::Bad {
        line: line.to_string(),
        why,
    };
    let parsed = match word {
        "ok" | "err" => {
            let (verb, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            return match fields(rest) {
                Ok(f) if word == "ok" => DeviceLine::Ok {
                    verb: verb.to_string(),
                    fields: f,
                },
                Ok(f) => DeviceLine::Err {
                    verb: verb.to_string(),
                    reason: {
                        let mut r = text(&f, "reason").unwrap_or_else(|_| "unknown".into());
                        if let Ok(d) = text(&f, "detail") {
                            r = format!("{r}: {d}");
                        }
                        r
                    },
                },
                Err(e) => bad(e),
            };
        }
        "log" => {
            return match fields(rest) {
                Ok(f) => DeviceLine::Log(text(&f, "msg").unwrap_or_default()),
                Err(_) => DeviceLine::Log(rest.to_string()),
            }
        }
        _ => fields(rest).and_then(|f| event(word, &f)),
    };
    match parsed {
        Ok(ev) => DeviceLine::Event(ev),
        Err(e) => bad(e),
    }
}

fn event(word: &str, f: &BTreeMap<String, Vec<u8>>) -> Result<ClientEvent, String> {
    Ok(match word {
        "ready" => ClientEvent::Ready {
            info: f
                .iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
                .collect::<Vec<_>>()
                .join(" "),
        },
        "connected" => ClientEvent::Connected {
            session_present: num::<u8>(f, "sp")? != 0,
        },
        "connack" => ClientEvent::Refused {
            code: num(f, "rc")?,
        },
        "suback" => ClientEvent::SubAck {
            pid: num(f, "pid")?,
            codes: text(f, "granted")?
                .split(',')
                .map(|c| c.parse().map_err(|_| format!("bad granted QoS `{c}`")))
                .collect::<Result<_, _>>()?,
        },
        "unsuback" => ClientEvent::UnsubAck(num(f, "pid")?),
        "puback" => ClientEvent::PubAck(num(f, "pid")?),
        "pubrec" => ClientEvent::PubRec(num(f, "pid")?),
        "pubcomp" => ClientEvent::PubComp(num(f, "pid")?),
        "msg" => ClientEvent::Delivered(Delivery {
            topic: text(f, "topic")?,
            payload: Bytes::from(f.get("payload").cloned().unwrap_or_default()),
            qos: QoS::from_u8(num(f, "qos")?).ok_or("qos out of range")?,
            retain: num::<u8>(f, "retain").unwrap_or(0) != 0,
            dup: num::<u8>(f, "dup").unwrap_or(0) != 0,
            // As received; a topic alias is already resolved into `topic`
            // by the agent, so it is left out as the virtual device does.
            properties: match f.get("props") {
                None => Properties::default(),
                Some(b) => Properties(
                    decode_property_list(b, PacketType::Publish)
                        .map_err(|e| format!("bad `props`: {e}"))?
                        .0
                        .into_iter()
                        .filter(|p| p.id != 0x23)
                        .collect(),
                ),
            },
        }),
        "disconnected" => ClientEvent::Disconnected {
            reason: text(f, "reason").unwrap_or_else(|_| "unknown".into()),
        },
        other => return Err(format!("unknown event `@{other}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::Will;
    use crate::mqtt::{PropValue, Property, SubscribeFilter};

    fn prop(id: u8, value: PropValue) -> Property {
        Property { id, value }
    }

    fn dial5() -> Dial {
        Dial {
            host: "127.0.0.1".into(),
            port: 1883,
        }
    }

    #[test]
    fn a_5_0_connect_carries_version_and_raw_properties() {
        let mut o = ConnectOptions::new("d5");
        o.version = Version::V5;
        o.properties = Properties(vec![
            prop(0x11, PropValue::U32(60)),
            prop(0x26, PropValue::Pair("a".into(), "b".into())),
        ]);
        o.will = Some(Will {
            topic: "w".into(),
            payload: Bytes::from_static(b"x"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties(vec![prop(0x18, PropValue::U32(5))]),
        });
        let line = render_command(
            &Command::Connect {
                opts: o,
                reconnect: None,
            },
            &dial5(),
        )
        .unwrap();
        // The bytes the agent's C test (agent_speaks_mqtt5_lines) sends too.
        assert!(
            line.ends_with(
                " version=5 props=%11%00%00%00<&%00%01a%00%01b will_props=%18%00%00%00%05"
            ),
            "{line}"
        );
        // A will property in the CONNECT properties cannot be rendered.
        let mut bad = ConnectOptions::new("d5");
        bad.version = Version::V5;
        bad.properties = Properties(vec![prop(0x18, PropValue::U32(5))]);
        let cmd = Command::Connect {
            opts: bad,
            reconnect: None,
        };
        assert_eq!(render_command(&cmd, &dial5()), None);
    }

    #[test]
    fn subscription_options_and_disconnect_reason_are_rendered() {
        let cmd = Command::SubscribeWith {
            filters: vec![SubscribeFilter {
                filter: "s/#".into(),
                qos: QoS::AtLeastOnce,
                options: 0x04 | 0x08 | 0x20,
            }],
            properties: Properties(vec![prop(0x0B, PropValue::VarInt(7))]),
        };
        assert_eq!(
            render_command(&cmd, &dial5()).unwrap(),
            "subscribe filter=s/# qos=1 nl=1 rap=1 rh=2 props=%0B%07"
        );
        let two = Command::SubscribeWith {
            filters: vec![
                SubscribeFilter {
                    filter: "a".into(),
                    qos: QoS::AtMostOnce,
                    options: 0,
                },
                SubscribeFilter {
                    filter: "b".into(),
                    qos: QoS::AtMostOnce,
                    options: 0,
                },
            ],
            properties: Properties::default(),
        };
        assert_eq!(render_command(&two, &dial5()), None);
        let disc = Command::DisconnectWith {
            code: 4,
            properties: Properties::default(),
        };
        assert_eq!(render_command(&disc, &dial5()).unwrap(), "disconnect rc=4");
        // DISCONNECT properties travel raw, like the others.
        let disc = Command::DisconnectWith {
            code: 0,
            properties: Properties(vec![crate::mqtt::Property {
                id: 0x11,
                value: crate::mqtt::PropValue::U32(0),
            }]),
        };
        assert_eq!(
            render_command(&disc, &dial5()).unwrap(),
            "disconnect rc=0 props=%11%00%00%00%00"
        );
    }

    #[test]
    fn a_5_0_delivery_keeps_its_properties_in_order_without_the_alias() {
        let line = "@msg topic=m qos=0 dup=0 retain=0 pid=0 payload=z \
                    props=%23%00%01%0B%07&%00%01k%00%011&%00%01k%00%012";
        let DeviceLine::Event(ClientEvent::Delivered(d)) = parse_line(line) else {
            panic!("{:?}", parse_line(line));
        };
        assert_eq!(
            d.properties.0,
            vec![
                prop(0x0B, PropValue::VarInt(7)),
                prop(0x26, PropValue::Pair("k".into(), "1".into())),
                prop(0x26, PropValue::Pair("k".into(), "2".into())),
            ]
        );
        let bad = "@msg topic=m qos=0 dup=0 retain=0 pid=0 payload=z props=%11%00";
        assert!(matches!(parse_line(bad), DeviceLine::Bad { .. }));
    }

    #[test]
    fn values_round_trip_through_percent_encoding() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_value(&encode_value(&all)).unwrap(), all);
        assert_eq!(encode_value(b"a b=c%"), "a%20b%3Dc%25");
        assert!(decode_value("%4").is_err());
        assert!(decode_value("%zz").is_err());
    }

    #[test]
    fn connect_carries_will_and_dial() {
        let mut o = ConnectOptions::new("dut 1");
        o.keepalive = 2;
        o.clean_session = false;
        o.will = Some(Will {
            topic: "dut/1/status".into(),
            payload: Bytes::from_static(b"off line"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        });
        let dial = Dial {
            host: "10.0.2.100".into(),
            port: 1883,
        };
        let line = render_command(
            &Command::Connect {
                opts: o,
                reconnect: None,
            },
            &dial,
        )
        .unwrap();
        assert_eq!(
            line,
            "connect id=dut%201 clean=0 keepalive=2 host=10.0.2.100 port=1883 will_topic=dut/1/status will_payload=off%20line will_qos=1 will_retain=0"
        );
    }

    #[test]
    fn device_lines_become_events() {
        assert_eq!(
            parse_line("@msg topic=a/b qos=2 dup=1 retain=0 pid=3 payload=%00x\r"),
            DeviceLine::Event(ClientEvent::Delivered(Delivery {
                topic: "a/b".into(),
                payload: Bytes::from_static(b"\0x"),
                qos: QoS::ExactlyOnce,
                retain: false,
                dup: true,
                properties: Default::default(),
            }))
        );
        assert_eq!(
            parse_line("@connected sp=1"),
            DeviceLine::Event(ClientEvent::Connected {
                session_present: true
            })
        );
        assert!(
            matches!(parse_line("@ok publish pid=7"), DeviceLine::Ok { verb, fields } if verb == "publish" && fields["pid"] == b"7")
        );
        assert_eq!(
            parse_line("@err publish reason=not_connected"),
            DeviceLine::Err {
                verb: "publish".into(),
                reason: "not_connected".into()
            }
        );
        assert_eq!(
            parse_line("ets Jan  8 2013,rst cause:2"),
            DeviceLine::Noise("ets Jan  8 2013,rst cause:2".into())
        );
        assert!(matches!(
            parse_line("@msg topic=a qos=7"),
            DeviceLine::Bad { .. }
        ));
        assert!(matches!(
            parse_line("@frobnicate x=1"),
            DeviceLine::Bad { .. }
        ));
    }
}
