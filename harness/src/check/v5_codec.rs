//! `v5_codec`: the frames of 5.0 connections the codec rejects, each a
//! violation of its sender named by 5.0's numbering (the logic is
//! [`super::codec::judge`], shared with the 3.1.1 checker; the rule comes
//! from decoding the recorded bytes again, never from the codec's message).
//!
//! What a statement forbids of the sender maps to it ([`statement`]):
//! reserved fixed-header flags [MQTT-2.1.3-1] (PUBREL [MQTT-3.6.1-1],
//! SUBSCRIBE [MQTT-3.8.1-1], UNSUBSCRIBE [MQTT-3.10.1-1], AUTH
//! [MQTT-3.15.1-1]); ill-formed UTF-8 [MQTT-1.5.4-1] and U+0000
//! [MQTT-1.5.4-2], field by field where a statement names the field (client
//! id, will topic, user name, topic name, filters, response topic, content
//! type, a user property's strings [MQTT-1.5.7-1], a topic's U+0000
//! [MQTT-4.7.3-2]); a variable byte integer longer than needed
//! [MQTT-1.5.5-1]; packet id 0 from a client [MQTT-2.2.1-3] or the server
//! [MQTT-2.2.1-4]; CONNECT's will flags [MQTT-3.1.2-11] [MQTT-3.1.2-12]
//! [MQTT-3.1.2-13], and the fields its flags promise: the client id
//! [MQTT-3.1.3-3], the will's [MQTT-3.1.2-9], user name [MQTT-3.1.2-17],
//! password [MQTT-3.1.2-19]; CONNACK's reserved bits [MQTT-3.2.2-1] and session
//! present on a refusal [MQTT-3.2.2-6]; DUP on QoS 0 [MQTT-3.3.1-2]; QoS 3
//! [MQTT-3.3.1-4]; wildcards in a topic name [MQTT-3.3.2-2] (a will topic
//! [MQTT-4.7.0-1]); topic alias 0 [MQTT-3.3.2-8]; misplaced `#` and `+`
//! [MQTT-4.7.1-1] [MQTT-4.7.1-2]; empty topics [MQTT-4.7.3-1]; shared
//! filters [MQTT-4.8.2-1] [MQTT-4.8.2-2] and No Local on one
//! [MQTT-3.8.3-4]; a SUBSCRIBE or UNSUBSCRIBE without filters
//! [MQTT-3.8.3-2] [MQTT-3.10.3-2]; a reason code outside its packet's table
//! (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT,
//! AUTH). Everything else is `malformed-packet`.
//!
//! The broker's reaction to a client's frame it must reject ([`must`]):
//! it closes the connection within [`super::codec::CLOSE_WITHIN`] — a
//! reserved CONNECT flag [MQTT-3.1.2-3], PUBREL, SUBSCRIBE, UNSUBSCRIBE,
//! DISCONNECT and AUTH flags [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]
//! [MQTT-3.14.1-1] [MQTT-3.15.1-1], reserved subscription option bits
//! [MQTT-3.8.3-5], any other CONNECT that breaks the format
//! [MQTT-3.1.4-1] (a CONNACK before the close only with a code of 0x80 or
//! more), any other malformed packet [MQTT-4.13.1-1]. A fault, the client's
//! own close or the end of the run within that time make it a note.

use super::codec::{is_connect, is_topic_field, judge, said, Live, Must};
use super::{Checker, Incremental, Verdict};
use crate::history::History;
use crate::mqtt::codec::DecodeError;
use crate::mqtt::PacketType;

/// Judges the frames of 5.0 connections.
pub struct CodecChecker;

/// The 5.0 statement a frame the codec rejects with `e` breaks, as its
/// sender's fault (`to_broker`: the client sent it); `None` when no
/// numbered statement forbids it of the sender.
pub fn statement(to_broker: bool, e: &DecodeError) -> Option<&'static str> {
    use DecodeError as E;
    use PacketType as T;
    Some(match e {
        E::ReservedFlags {
            packet: T::PubRel, ..
        } => "MQTT-3.6.1-1",
        E::ReservedFlags {
            packet: T::Subscribe,
            ..
        } => "MQTT-3.8.1-1",
        E::ReservedFlags {
            packet: T::Unsubscribe,
            ..
        } => "MQTT-3.10.1-1",
        E::ReservedFlags {
            packet: T::Auth, ..
        } => "MQTT-3.15.1-1",
        E::ReservedFlags { .. } => "MQTT-2.1.3-1",
        E::RemainingLengthNotMinimal { .. } => "MQTT-1.5.5-1",
        E::InvalidVarInt { problem, .. } if said(problem)? == "1.5.5-1" => "MQTT-1.5.5-1",
        E::InvalidQoS {
            packet: T::Publish, ..
        } => "MQTT-3.3.1-4",
        E::InvalidQoS {
            packet: T::Connect, ..
        } => "MQTT-3.1.2-12",
        E::ZeroPacketId {
            packet: T::Subscribe | T::Unsubscribe,
            ..
        } if to_broker => "MQTT-2.2.1-3",
        E::ZeroPacketId {
            packet: T::Publish, ..
        } => {
            if to_broker {
                "MQTT-2.2.1-3"
            } else {
                "MQTT-2.2.1-4"
            }
        }
        E::InvalidUtf8 { packet, field, .. } => match (packet, *field) {
            (T::Connect, "client identifier") => "MQTT-3.1.3-4",
            (T::Connect, "will topic") => "MQTT-3.1.3-11",
            (T::Connect, "user name") => "MQTT-3.1.3-12",
            (T::Publish, "topic name") => "MQTT-3.3.2-1",
            (T::Subscribe, "topic filter") => "MQTT-3.8.3-1",
            (T::Unsubscribe, "topic filter") => "MQTT-3.10.3-1",
            (T::Publish, "Response Topic") => "MQTT-3.3.2-13",
            (T::Publish, "Content Type") => "MQTT-3.3.2-19",
            (_, "User Property name" | "User Property value") => "MQTT-1.5.7-1",
            _ => "MQTT-1.5.4-1",
        },
        // A flag promised a field the payload does not hold.
        E::Truncated {
            packet: T::Connect,
            field,
            ..
        } if to_broker => match *field {
            "client identifier" => "MQTT-3.1.3-3",
            "will topic" | "will payload" => "MQTT-3.1.2-9",
            "user name" => "MQTT-3.1.2-17",
            "password" => "MQTT-3.1.2-19",
            _ => return None,
        },
        E::NullChar { field, .. } if is_topic_field(field) => "MQTT-4.7.3-2",
        E::NullChar {
            field: "User Property name" | "User Property value",
            ..
        } => "MQTT-1.5.7-1",
        E::NullChar { .. } => "MQTT-1.5.4-2",
        E::InvalidReasonCode { packet, .. } => match packet {
            T::ConnAck => "MQTT-3.2.2-8",
            T::PubAck => "MQTT-3.4.2-1",
            T::PubRec => "MQTT-3.5.2-1",
            T::PubRel => "MQTT-3.6.2-1",
            T::PubComp => "MQTT-3.7.2-1",
            T::SubAck => "MQTT-3.9.3-2",
            T::UnsubAck => "MQTT-3.11.3-2",
            T::Disconnect => "MQTT-3.14.2-1",
            T::Auth => "MQTT-3.15.2-1",
            _ => return None,
        },
        E::PropertyValue {
            packet: T::Publish,
            problem,
            ..
        } if said(problem)? == "3.3.2-8" => "MQTT-3.3.2-8",
        E::Invalid {
            packet, problem, ..
        } => match (packet, said(problem)?.as_str()) {
            (T::Publish, "3.3.1-2") => "MQTT-3.3.1-2",
            // The codec words these as 3.1.1 numbers them.
            (T::Connect, "3.1.2-13") => "MQTT-3.1.2-11",
            (T::Connect, "3.1.2-15") => "MQTT-3.1.2-13",
            (T::ConnAck, "3.2.2-1") => "MQTT-3.2.2-1",
            (T::ConnAck, "3.2.2-4") => "MQTT-3.2.2-6",
            (T::Subscribe, "3.8.3-3") => "MQTT-3.8.3-2",
            (T::Subscribe, "3.8.3-4") => "MQTT-3.8.3-4",
            (T::Unsubscribe, "3.10.3-2") => "MQTT-3.10.3-2",
            _ => return None,
        },
        E::InvalidTopic {
            field,
            topic,
            problem,
            ..
        } => match (*field, said(problem)?.as_str()) {
            ("topic name", "3.3.2-2") => "MQTT-3.3.2-2",
            ("will topic", "3.3.2-2") => "MQTT-4.7.0-1",
            // 3.1.1's `#` and `+` statements are 5.0's 4.7.1-1 and -2.
            (_, "4.7.1-2") => "MQTT-4.7.1-1",
            (_, "4.7.1-3") => "MQTT-4.7.1-2",
            (_, "4.7.3-1") => "MQTT-4.7.3-1",
            // An empty share name breaks -1; a missing `/` and filter -2.
            (_, "4.8.2-1") if topic.starts_with("$share//") || topic == "$share/" => "MQTT-4.8.2-1",
            (_, "4.8.2-1" | "4.8.2-2") => "MQTT-4.8.2-2",
            _ => return None,
        },
        _ => return None,
    })
}

/// What 5.0 asks of a server that receives a frame the codec rejects with
/// `e`; `None` for a protocol it does not know (it may answer 0x84 or go on
/// by another specification, [MQTT-3.1.2-1] [MQTT-3.1.2-2]).
pub fn must(e: &DecodeError) -> Option<Must> {
    use DecodeError as E;
    use PacketType as T;
    let close = match e {
        E::UnknownProtocol { .. } => return None,
        E::ReservedFlags {
            packet: T::PubRel, ..
        } => "MQTT-3.6.1-1",
        E::ReservedFlags {
            packet: T::Subscribe,
            ..
        } => "MQTT-3.8.1-1",
        E::ReservedFlags {
            packet: T::Unsubscribe,
            ..
        } => "MQTT-3.10.1-1",
        E::ReservedFlags {
            packet: T::Disconnect,
            ..
        } => "MQTT-3.14.1-1",
        E::ReservedFlags {
            packet: T::Auth, ..
        } => "MQTT-3.15.1-1",
        E::Invalid {
            packet: T::Connect,
            problem,
            ..
        } if said(problem).as_deref() == Some("3.1.2-3") => "MQTT-3.1.2-3",
        E::Invalid {
            packet: T::Subscribe,
            problem,
            ..
        } if said(problem).as_deref() == Some("3.8.3-5") => "MQTT-3.8.3-5",
        _ => "MQTT-4.13.1-1",
    };
    Some(if is_connect(e) {
        Must::CloseConnect {
            close: if close == "MQTT-4.13.1-1" {
                "MQTT-3.1.4-1"
            } else {
                close
            },
            connack: "MQTT-3.1.4-1",
            min_code: 0x80,
        }
    } else {
        Must::Close(close)
    })
}

impl Checker for CodecChecker {
    fn name(&self) -> &str {
        "v5_codec"
    }

    fn check(&self, history: &History) -> Verdict {
        judge(history, self.name(), true, statement, must)
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(Live::new("v5_codec", true, statement, must)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::{self as k, assert_violates, frame, judge_both, s, Kit};
    use super::*;
    use crate::history::{CloseReason, Dir};
    use crate::mqtt::{codec, Version};

    /// A 5.0 CONNECT with these flags, an empty property list and these
    /// payload fields (will properties are given as `&[0]`, raw).
    fn connect(flags: u8, payload: &[&[u8]]) -> Vec<u8> {
        let mut body = s(b"MQTT");
        body.extend([5, flags, 0, 60, 0]);
        for f in payload {
            body.extend_from_slice(f);
        }
        frame(0x10, &body)
    }

    /// A PUBLISH QoS 0 on `a` with this raw property list.
    fn publish_props(props: &[u8]) -> Vec<u8> {
        let mut body = s(b"a");
        body.push(props.len() as u8);
        body.extend_from_slice(props);
        frame(0x30, &body)
    }

    fn sub(pid: u16, filter: &[u8], options: u8) -> Vec<u8> {
        let mut body = pid.to_be_bytes().to_vec();
        body.push(0);
        body.extend(s(filter));
        body.push(options);
        frame(0x82, &body)
    }

    fn judged(up: bool, raw: &[u8]) -> Verdict {
        let mut kit = Kit::new();
        kit.open(1, "device");
        if !raw.starts_with(&[0x10]) {
            kit.up(1, "device", k::connect("dut-1", true, 60, ""));
        }
        let dir = if up { Dir::ToBroker } else { Dir::ToClient };
        kit.malformed(1, "device", dir, raw, Version::V5);
        let v = judge_both(&CodecChecker, &kit.history());
        assert_eq!(v.violations.len(), 1, "{raw:02x?}: {v:?}");
        v
    }

    /// Each statement with a frame that breaks it, rejected by the real
    /// codec as the proxy would record it.
    #[test]
    fn each_statement_has_a_frame_that_breaks_it() {
        let bad = b"a\xffb";
        let cid = |x: &[u8]| s(x);
        let mut reason_string_bad = vec![0x1F];
        reason_string_bad.extend(s(bad));
        let mut reason_string_nul = vec![0x1F];
        reason_string_nul.extend(s(b"a\0"));
        let disconnect = |props: &[u8]| {
            let mut b = vec![0x00, props.len() as u8];
            b.extend_from_slice(props);
            frame(0xE0, &b)
        };
        let mut user_prop = vec![0x26];
        user_prop.extend(s(bad));
        user_prop.extend(s(b"v"));
        let mut response = vec![0x08];
        response.extend(s(bad));
        let mut content = vec![0x03];
        content.extend(s(bad));
        let will = |topic: &[u8]| [&[0u8][..], &s(topic), &s(b"x")].concat();
        assert_violates(
            &judged(false, &disconnect(&reason_string_bad)),
            "MQTT-1.5.4-1",
        );
        assert_violates(
            &judged(false, &disconnect(&reason_string_nul)),
            "MQTT-1.5.4-2",
        );
        assert_violates(&judged(false, &[0x40, 0x82, 0x00, 0, 1]), "MQTT-1.5.5-1");
        assert_violates(
            &judged(true, &publish_props(&[0x0B, 0x81, 0x00])),
            "MQTT-1.5.5-1",
        );
        assert_violates(&judged(true, &publish_props(&user_prop)), "MQTT-1.5.7-1");
        assert_violates(&judged(false, &frame(0x41, &[0, 1])), "MQTT-2.1.3-1");
        assert_violates(&judged(true, &sub(0, b"a", 1)), "MQTT-2.2.1-3");
        assert_violates(
            &judged(false, &frame(0x32, &[&s(b"a")[..], &[0, 0, 0]].concat())),
            "MQTT-2.2.1-4",
        );
        assert_violates(
            &judged(true, &connect(0x0A, &[&cid(b"c")])),
            "MQTT-3.1.2-11",
        );
        assert_violates(
            &judged(true, &connect(0x1E, &[&cid(b"c"), &will(b"w")])),
            "MQTT-3.1.2-12",
        );
        assert_violates(
            &judged(true, &connect(0x22, &[&cid(b"c")])),
            "MQTT-3.1.2-13",
        );
        assert_violates(&judged(true, &connect(0x02, &[&cid(bad)])), "MQTT-3.1.3-4");
        // Fields a flag promises, missing from the payload.
        assert_violates(&judged(true, &connect(0x02, &[])), "MQTT-3.1.3-3");
        assert_violates(
            &judged(true, &connect(0x06, &[&cid(b"c"), &[0]])),
            "MQTT-3.1.2-9",
        );
        assert_violates(
            &judged(true, &connect(0x06, &[&cid(b"c"), &[0], &s(b"w")])),
            "MQTT-3.1.2-9",
        );
        assert_violates(
            &judged(true, &connect(0x82, &[&cid(b"c")])),
            "MQTT-3.1.2-17",
        );
        assert_violates(
            &judged(true, &connect(0x42, &[&cid(b"c")])),
            "MQTT-3.1.2-19",
        );
        assert_violates(
            &judged(true, &connect(0x06, &[&cid(b"c"), &will(bad)])),
            "MQTT-3.1.3-11",
        );
        assert_violates(
            &judged(true, &connect(0x82, &[&cid(b"c"), &s(bad)])),
            "MQTT-3.1.3-12",
        );
        assert_violates(&judged(false, &frame(0x20, &[2, 0, 0])), "MQTT-3.2.2-1");
        assert_violates(&judged(false, &frame(0x20, &[1, 0x80, 0])), "MQTT-3.2.2-6");
        assert_violates(&judged(false, &frame(0x20, &[0, 0x01, 0])), "MQTT-3.2.2-8");
        assert_violates(
            &judged(true, &frame(0x38, &[&s(b"a")[..], &[0]].concat())),
            "MQTT-3.3.1-2",
        );
        assert_violates(
            &judged(true, &frame(0x36, &[&s(b"a")[..], &[0, 1, 0]].concat())),
            "MQTT-3.3.1-4",
        );
        assert_violates(
            &judged(false, &frame(0x30, &[&s(bad)[..], &[0]].concat())),
            "MQTT-3.3.2-1",
        );
        assert_violates(
            &judged(true, &frame(0x30, &[&s(b"a/#")[..], &[0]].concat())),
            "MQTT-3.3.2-2",
        );
        assert_violates(&judged(true, &publish_props(&[0x23, 0, 0])), "MQTT-3.3.2-8");
        assert_violates(&judged(true, &publish_props(&response)), "MQTT-3.3.2-13");
        assert_violates(&judged(true, &publish_props(&content)), "MQTT-3.3.2-19");
        assert_violates(&judged(true, &frame(0x40, &[0, 1, 0x01])), "MQTT-3.4.2-1");
        assert_violates(&judged(false, &frame(0x50, &[0, 1, 0x01])), "MQTT-3.5.2-1");
        assert_violates(&judged(true, &frame(0x60, &[0, 1])), "MQTT-3.6.1-1");
        assert_violates(&judged(true, &frame(0x62, &[0, 1, 0x10])), "MQTT-3.6.2-1");
        assert_violates(&judged(false, &frame(0x70, &[0, 1, 0x10])), "MQTT-3.7.2-1");
        assert_violates(
            &judged(
                true,
                &frame(0x80, &[&[0, 1, 0][..], &s(b"a"), &[1]].concat()),
            ),
            "MQTT-3.8.1-1",
        );
        assert_violates(&judged(true, &sub(1, bad, 1)), "MQTT-3.8.3-1");
        assert_violates(&judged(true, &frame(0x82, &[0, 1, 0])), "MQTT-3.8.3-2");
        assert_violates(&judged(true, &sub(1, b"$share/g/a", 0x05)), "MQTT-3.8.3-4");
        assert_violates(
            &judged(false, &frame(0x90, &[0, 1, 0, 0x03])),
            "MQTT-3.9.3-2",
        );
        assert_violates(
            &judged(true, &frame(0xA0, &[&[0, 1, 0][..], &s(b"a")].concat())),
            "MQTT-3.10.1-1",
        );
        assert_violates(
            &judged(true, &frame(0xA2, &[&[0, 1, 0][..], &s(bad)].concat())),
            "MQTT-3.10.3-1",
        );
        assert_violates(&judged(true, &frame(0xA2, &[0, 1, 0])), "MQTT-3.10.3-2");
        assert_violates(
            &judged(false, &frame(0xB0, &[0, 1, 0, 0x01])),
            "MQTT-3.11.3-2",
        );
        assert_violates(&judged(true, &frame(0xE0, &[0x01])), "MQTT-3.14.2-1");
        assert_violates(&judged(false, &frame(0xF1, &[])), "MQTT-3.15.1-1");
        assert_violates(&judged(true, &frame(0xF0, &[0x01, 0])), "MQTT-3.15.2-1");
        assert_violates(
            &judged(true, &connect(0x06, &[&cid(b"c"), &will(b"w/+")])),
            "MQTT-4.7.0-1",
        );
        assert_violates(&judged(true, &sub(1, b"a#", 1)), "MQTT-4.7.1-1");
        assert_violates(&judged(true, &sub(1, b"a/b+", 1)), "MQTT-4.7.1-2");
        assert_violates(&judged(true, &sub(1, b"", 1)), "MQTT-4.7.3-1");
        assert_violates(
            &judged(true, &frame(0x30, &[&s(b"a\0")[..], &[0]].concat())),
            "MQTT-4.7.3-2",
        );
        assert_violates(&judged(true, &sub(1, b"$share//a", 1)), "MQTT-4.8.2-1");
        assert_violates(&judged(true, &sub(1, b"$share/g+/a", 1)), "MQTT-4.8.2-2");
    }

    /// Tricky frames right beside the broken ones that the codec accepts,
    /// so they are never recorded as malformed.
    #[test]
    fn near_misses_decode() {
        let mut user_prop = vec![0x26];
        user_prop.extend(s(b"a+#"));
        user_prop.extend(s("\u{feff}".as_bytes()));
        let ok: Vec<Vec<u8>> = vec![
            // password without user name is fine in 5.0
            connect(0x42, &[&s(b"c"), &s(b"pw")]),
            frame(0x62, &[0, 1, 0x92]),
            frame(0x40, &[0, 1, 0x10]),
            frame(0x20, &[1, 0, 0]),
            frame(0xE0, &[0x04]),
            frame(0xF0, &[0x18, 0]),
            frame(0x90, &[0, 1, 0, 0x02, 0x80, 0xA2]),
            publish_props(&user_prop),
            publish_props(&[0x23, 0, 1]),
            publish_props(&[0x0B, 0x7F]),
            sub(1, b"$share/g/+/#", 0x2A),
        ];
        for raw in ok {
            assert!(codec::decode(&raw, Version::V5).is_ok(), "{raw:02x?}");
        }
    }

    /// A 3.1.1 connection's frames are the `codec` checker's; a 5.0
    /// CONNECT the codec rejects makes the connection 5.0 for what follows.
    #[test]
    fn only_5_0_connections_are_judged_here() {
        let mut kit = Kit::new();
        kit.open(1, "device")
            .up(1, "device", k::connect311("d"))
            .malformed(
                1,
                "device",
                Dir::ToBroker,
                &frame(0x41, &[0, 1]),
                Version::V311,
            );
        assert!(judge_both(&CodecChecker, &kit.history()).ok());

        let mut kit = Kit::new();
        kit.open(1, "device")
            .malformed(
                1,
                "device",
                Dir::ToBroker,
                &connect(0x0A, &[&s(b"c")]),
                Version::V5,
            )
            .malformed(
                1,
                "device",
                Dir::ToClient,
                &frame(0x20, &[0, 0x01, 0]),
                Version::V5,
            );
        let v = judge_both(&CodecChecker, &kit.history());
        assert_eq!(v.rules(), vec!["MQTT-3.1.2-11", "MQTT-3.2.2-8"], "{v:?}");
    }

    fn kept_open(raw: &[u8]) -> Verdict {
        let v = judge_both(&CodecChecker, &k::reaction(Version::V5, raw, None, None));
        assert_eq!(v.violations.len(), 1, "{raw:02x?}: {v:?}");
        v
    }

    /// Each statement about the server's reaction, with a client frame the
    /// broker must reject and a connection it kept open.
    #[test]
    fn each_reaction_statement_has_a_broker_that_breaks_it() {
        assert_violates(&kept_open(&connect(0x03, &[&s(b"c")])), "MQTT-3.1.2-3");
        assert_violates(&kept_open(&connect(0x0A, &[&s(b"c")])), "MQTT-3.1.4-1");
        assert_violates(&kept_open(&frame(0x60, &[0, 1])), "MQTT-3.6.1-1");
        assert_violates(
            &kept_open(&frame(0x80, &[&[0, 1, 0][..], &s(b"a"), &[1]].concat())),
            "MQTT-3.8.1-1",
        );
        assert_violates(&kept_open(&sub(1, b"a", 0x81)), "MQTT-3.8.3-5");
        assert_violates(
            &kept_open(&frame(0xA0, &[&[0, 1, 0][..], &s(b"a")].concat())),
            "MQTT-3.10.1-1",
        );
        assert_violates(&kept_open(&frame(0xE2, &[])), "MQTT-3.14.1-1");
        assert_violates(&kept_open(&frame(0xF1, &[])), "MQTT-3.15.1-1");
        assert_violates(&kept_open(&publish_props(&[0x23, 0, 0])), "MQTT-4.13.1-1");

        // A CONNACK below 0x80 to a CONNECT that breaks the format.
        let h = k::reaction(
            Version::V5,
            &connect(0x03, &[&s(b"c")]),
            Some(0),
            Some((5, CloseReason::BrokerClosed)),
        );
        let v = judge_both(&CodecChecker, &h);
        assert_violates(&v, "MQTT-3.1.4-1");
        assert_eq!(v.violations.len(), 1, "{v:?}");
    }

    /// The broker did its part — at once, with a refusing CONNACK first, or
    /// late but within the 2 s — or the history cannot show it.
    #[test]
    fn a_broker_that_closes_or_cannot_be_seen_passes() {
        let alias0 = publish_props(&[0x23, 0, 0]);
        for h in [
            k::reaction(
                Version::V5,
                &alias0,
                None,
                Some((1, CloseReason::BrokerClosed)),
            ),
            k::reaction(
                Version::V5,
                &alias0,
                None,
                Some((1900, CloseReason::BrokerClosed)),
            ),
            k::reaction(
                Version::V5,
                &connect(0x03, &[&s(b"c")]),
                Some(0x81),
                Some((5, CloseReason::BrokerClosed)),
            ),
            k::reaction(
                Version::V5,
                &alias0,
                None,
                Some((50, CloseReason::ClientClosed)),
            ),
        ] {
            let v = judge_both(&CodecChecker, &h);
            assert!(v.ok(), "{v:?}");
        }
    }
}
