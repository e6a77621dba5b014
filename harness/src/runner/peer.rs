//! What a peer did on an actor's connections, told from the history, for
//! a wait that ended without what it waited for. The proxy sees every byte
//! the broker sends an actor (decoded, malformed or an end of stream), so
//! the verdict can say "the broker sent nothing" or "malformed CONNACK at
//! byte 3" even when the client itself — the firmware's agent — only
//! reports `protocol_error` or `not_connected`. It sees every byte a
//! black-box device sends too, so a failed step can say what the device
//! did on its lane ([`device_did`]): nothing, garbage, a flood, a packet
//! too large to hold, or a close. Pure: a function of events.

use crate::history::{CloseReason, Dir, Event, EventKind};
use crate::mqtt::PacketType;

/// How many of the broker's packets a description lists before it counts.
const LISTED: usize = 3;

/// One line saying what the broker sent `actor` in `events` (everything
/// since the wait began), while the actor waited for `wanted`.
pub fn broker_did(events: &[Event], actor: &str, wanted: PacketType) -> String {
    describe(events, actor, Some(wanted))
}

/// For an actor found not connected: what the broker did on its last
/// connection, or that it has had none.
pub fn last_connection(events: &[Event], actor: &str) -> String {
    let start = events
        .iter()
        .rposition(|e| matches!(&e.kind, EventKind::ConnOpened { actor: a, .. } if a == actor));
    match start {
        None => format!("{actor} has had no connection to the broker in this run"),
        Some(i) => format!(
            "on {actor}'s last connection, {}",
            describe(&events[i..], actor, None)
        ),
    }
}

fn describe(events: &[Event], actor: &str, wanted: Option<PacketType>) -> String {
    let mut said: Vec<String> = Vec::new();
    let mut packets: Vec<PacketType> = Vec::new();
    let flush = |packets: &mut Vec<PacketType>, said: &mut Vec<String>| {
        if packets.is_empty() {
            return;
        }
        let other: Vec<String> = packets.iter().take(LISTED).map(|t| t.to_string()).collect();
        let more = packets.len().saturating_sub(LISTED);
        let mut s = format!("sent {}", other.join(", "));
        if more > 0 {
            s.push_str(&format!(" and {more} more packet(s)"));
        }
        if let Some(w) = wanted.filter(|w| !packets.contains(w)) {
            s.push_str(&format!(" but no {w}"));
        }
        said.push(s);
        packets.clear();
    };
    for e in events {
        match &e.kind {
            EventKind::Packet {
                actor: a,
                dir: Dir::ToClient,
                packet,
                ..
            } if a == actor => packets.push(packet.packet_type()),
            EventKind::Malformed {
                actor: a,
                dir: Dir::ToClient,
                raw,
                error,
                ..
            } if a == actor => {
                flush(&mut packets, &mut said);
                said.push(format!(
                    "sent {} byte(s) that are not valid MQTT ({}): malformed {error}",
                    raw.len(),
                    head(raw)
                ));
            }
            EventKind::ConnClosed {
                actor: a, reason, ..
            } if a == actor => {
                flush(&mut packets, &mut said);
                match reason {
                    CloseReason::BrokerClosed => said.push("closed the connection".into()),
                    CloseReason::UpstreamUnreachable(why) => {
                        said.push(format!("could not be reached ({why})"))
                    }
                    // The client's or the harness's doing: not the broker's.
                    _ => {}
                }
            }
            _ => {}
        }
    }
    flush(&mut packets, &mut said);
    if said.is_empty() {
        return "the broker sent nothing".into();
    }
    format!("the broker {}", said.join(", then "))
}

/// One line saying what `actor` (a device the harness does not drive) did
/// on its connections through the proxy: its last connection's packets,
/// bytes that did not decode and how it ended.
pub fn device_did(events: &[Event], actor: &str) -> String {
    let opened: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(&e.kind, EventKind::ConnOpened { actor: a, .. } if a == actor))
        .map(|(i, _)| i)
        .collect();
    let Some(&last) = opened.last() else {
        return format!("the {actor} opened no connection to the broker's address it was given");
    };
    let which = match opened.len() {
        1 => String::new(),
        n => format!("on the last of its {n} connections, "),
    };
    let mut said: Vec<String> = Vec::new();
    // Only the first packets of a run are named: a flood of millions is
    // counted, not listed.
    let mut packets: (Vec<PacketType>, usize) = (Vec::new(), 0);
    let mut anything = false;
    let flush = |(first, n): &mut (Vec<PacketType>, usize), said: &mut Vec<String>| {
        if *n == 0 {
            return;
        }
        let named: Vec<String> = first.iter().map(|t| t.to_string()).collect();
        let mut s = format!("sent {}", named.join(", "));
        if *n > first.len() {
            s.push_str(&format!(" and {} more packet(s)", *n - first.len()));
        }
        if said.is_empty() && first[0] != PacketType::Connect {
            s.push_str(" before any CONNECT");
        }
        said.push(s);
        first.clear();
        *n = 0;
    };
    let mut end = None;
    for e in &events[last..] {
        match &e.kind {
            EventKind::Packet {
                actor: a,
                dir: Dir::ToBroker,
                packet,
                ..
            } if a == actor => {
                anything = true;
                if packets.0.len() < LISTED {
                    packets.0.push(packet.packet_type());
                }
                packets.1 += 1;
            }
            EventKind::Malformed {
                actor: a,
                dir: Dir::ToBroker,
                raw,
                error,
                ..
            } if a == actor => {
                anything = true;
                flush(&mut packets, &mut said);
                said.push(malformed(raw, error));
            }
            EventKind::ConnClosed {
                actor: a, reason, ..
            } if a == actor => {
                end = Some(match reason {
                    CloseReason::ClientClosed => ", then closed it".to_string(),
                    CloseReason::BrokerClosed => ", then the broker closed the connection".into(),
                    CloseReason::Severed | CloseReason::Closed => {
                        ", then a fault of the scenario cut the connection".into()
                    }
                    CloseReason::Refused => ", then a fault of the scenario refused it".into(),
                    CloseReason::UpstreamUnreachable(why) => {
                        format!(", then the broker could not be reached ({why})")
                    }
                    CloseReason::RunEnded => String::new(),
                });
                break;
            }
            _ => {}
        }
    }
    flush(&mut packets, &mut said);
    let mut text = format!("{which}the {actor} opened a connection");
    if !anything {
        text.push_str(" and sent nothing");
    } else {
        text.push_str(", ");
        text.push_str(&said.join(", then "));
    }
    text.push_str(&end.unwrap_or_default());
    text
}

/// Bytes that did not decode, or a packet announced too large to hold.
fn malformed(raw: &[u8], error: &str) -> String {
    if error.starts_with("packet announced") {
        return format!("sent a packet header ({}): {error}", head(raw));
    }
    format!(
        "sent {} byte(s) that are not valid MQTT ({}): malformed {error}",
        raw.len(),
        head(raw)
    )
}

/// The first bytes, in hex, of what did not decode.
fn head(raw: &[u8]) -> String {
    let shown: Vec<String> = raw.iter().take(8).map(|b| format!("{b:02x}")).collect();
    if raw.len() > 8 {
        format!("{} …", shown.join(" "))
    } else {
        shown.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ConnId;
    use crate::mqtt::Packet;
    use bytes::Bytes;
    use std::time::Duration;

    fn ev(kind: EventKind) -> Event {
        Event {
            seq: 0,
            at: Duration::ZERO,
            kind,
        }
    }

    fn opened(actor: &str) -> Event {
        ev(EventKind::ConnOpened {
            conn: ConnId(1),
            actor: actor.into(),
        })
    }

    fn closed(actor: &str, reason: CloseReason) -> Event {
        ev(EventKind::ConnClosed {
            conn: ConnId(1),
            actor: actor.into(),
            reason,
        })
    }

    #[test]
    fn another_actors_traffic_is_not_this_ones() {
        let events = [opened("other"), closed("other", CloseReason::BrokerClosed)];
        assert_eq!(
            broker_did(&events, "cloud", PacketType::ConnAck),
            "the broker sent nothing"
        );
    }

    #[test]
    fn garbage_then_close_is_told_in_order_with_the_decode_error() {
        let events = [
            opened("device"),
            ev(EventKind::Malformed {
                conn: ConnId(1),
                actor: "device".into(),
                dir: Dir::ToClient,
                raw: Bytes::from_static(&[0x20, 0x02, 0x00, 0x07]),
                error: "CONNACK return code 7 at byte 3".into(),
            }),
            closed("device", CloseReason::BrokerClosed),
        ];
        assert_eq!(
            broker_did(&events, "device", PacketType::ConnAck),
            "the broker sent 4 byte(s) that are not valid MQTT (20 02 00 07): malformed CONNACK \
             return code 7 at byte 3, then closed the connection"
        );
    }

    #[test]
    fn other_packets_are_named_and_counted() {
        let mut events = vec![opened("cloud")];
        for _ in 0..5 {
            events.push(ev(EventKind::Packet {
                conn: ConnId(1),
                actor: "cloud".into(),
                dir: Dir::ToClient,
                packet: Packet::PingResp,
                raw: Bytes::from_static(&[0xd0, 0]),
                fate: crate::history::Fate::Forwarded,
            }));
        }
        assert_eq!(
            broker_did(&events, "cloud", PacketType::ConnAck),
            "the broker sent PINGRESP, PINGRESP, PINGRESP and 2 more packet(s) but no CONNACK"
        );
    }

    #[test]
    fn the_last_connection_is_the_one_described() {
        let events = [
            opened("device"),
            closed("device", CloseReason::ClientClosed),
            opened("device"),
            closed("device", CloseReason::BrokerClosed),
        ];
        assert_eq!(
            last_connection(&events, "device"),
            "on device's last connection, the broker closed the connection"
        );
        assert_eq!(
            last_connection(&events[..0], "device"),
            "device has had no connection to the broker in this run"
        );
    }

    #[test]
    fn the_clients_own_close_is_not_blamed_on_the_broker() {
        let events = [opened("cloud"), closed("cloud", CloseReason::ClientClosed)];
        assert_eq!(
            broker_did(&events, "cloud", PacketType::SubAck),
            "the broker sent nothing"
        );
    }

    fn to_broker(actor: &str, packet: Packet) -> Event {
        ev(EventKind::Packet {
            conn: ConnId(1),
            actor: actor.into(),
            dir: Dir::ToBroker,
            packet,
            raw: Bytes::from_static(&[0xc0, 0]),
            fate: crate::history::Fate::Forwarded,
        })
    }

    #[test]
    fn a_silent_device_and_one_that_closes_at_once() {
        assert_eq!(
            device_did(&[opened("device")], "device"),
            "the device opened a connection and sent nothing"
        );
        assert_eq!(
            device_did(
                &[
                    opened("device"),
                    closed("device", CloseReason::ClientClosed)
                ],
                "device"
            ),
            "the device opened a connection and sent nothing, then closed it"
        );
        assert_eq!(
            device_did(&[opened("cloud")], "device"),
            "the device opened no connection to the broker's address it was given"
        );
    }

    #[test]
    fn a_flood_is_counted_and_a_missing_connect_said() {
        let mut events = vec![opened("device")];
        for _ in 0..100_000 {
            events.push(to_broker("device", Packet::PingReq));
        }
        events.push(closed("device", CloseReason::BrokerClosed));
        assert_eq!(
            device_did(&events, "device"),
            "the device opened a connection, sent PINGREQ, PINGREQ, PINGREQ and 99997 more \
             packet(s) before any CONNECT, then the broker closed the connection"
        );
    }

    #[test]
    fn garbage_and_an_oversized_packet_are_told_with_their_bytes() {
        let malformed = |raw: &'static [u8], error: &str| {
            ev(EventKind::Malformed {
                conn: ConnId(1),
                actor: "device".into(),
                dir: Dir::ToBroker,
                raw: Bytes::from_static(raw),
                error: error.into(),
            })
        };
        let events = [
            opened("device"),
            malformed(b"GET / HTTP/1.1\r\n", "PUBACK flags 7 at byte 0"),
        ];
        assert_eq!(
            device_did(&events, "device"),
            "the device opened a connection, sent 16 byte(s) that are not valid MQTT \
             (47 45 54 20 2f 20 48 54 …): malformed PUBACK flags 7 at byte 0"
        );
        let events = [
            opened("device"),
            opened("device"),
            malformed(
                &[0x30, 0xff, 0xff, 0xff, 0x7f],
                "packet announced at byte 0 as 268435460 bytes",
            ),
        ];
        assert_eq!(
            device_did(&events, "device"),
            "on the last of its 2 connections, the device opened a connection, sent a packet \
             header (30 ff ff ff 7f): packet announced at byte 0 as 268435460 bytes"
        );
    }
}
