//! The MQTT codec on any bytes, for each version: framing and decoding
//! never panic, whole and streamed in chunks; a packet the decoder
//! accepts is one the encoder accepts, and it decodes back to itself
//! (the codec's promise, `harness/src/mqtt/codec/mod.rs`). Property lists
//! (the agent protocol's `props=`) likewise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_hil::mqtt::codec::{
    announced_len, connect_version, decode, decode_property_list, encode, encode_property_list,
    frame_len, Decoder,
};
use mqtt_hil::mqtt::{Packet, PacketType, Version};

fn round_trip(p: &Packet, v: Version) {
    let bytes =
        encode(p, v).unwrap_or_else(|e| panic!("decoded {p:?} ({v:?}) but encode refuses: {e}"));
    assert!(
        matches!(frame_len(&bytes), Ok(Some(n)) if n == bytes.len()),
        "encoded frame is not one whole frame: {bytes:02x?}"
    );
    let back = decode(&bytes, v)
        .unwrap_or_else(|e| panic!("re-encoded {p:?} ({v:?}) does not decode: {e}"));
    assert_eq!(&back, p, "decode(encode(p)) != p");
}

const TYPES: [PacketType; 15] = [
    PacketType::Connect,
    PacketType::ConnAck,
    PacketType::Publish,
    PacketType::PubAck,
    PacketType::PubRec,
    PacketType::PubRel,
    PacketType::PubComp,
    PacketType::Subscribe,
    PacketType::SubAck,
    PacketType::Unsubscribe,
    PacketType::UnsubAck,
    PacketType::PingReq,
    PacketType::PingResp,
    PacketType::Disconnect,
    PacketType::Auth,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let version = [Version::V31, Version::V311, Version::V5][(sel % 3) as usize];
    let chunk = (sel as usize / 3) % 16 + 1;

    let _ = frame_len(bytes);
    let _ = announced_len(bytes);
    let _ = connect_version(bytes);
    if let Ok(p) = decode(bytes, version) {
        round_trip(&p, version);
    }

    let mut d = Decoder::new(version);
    'feed: for c in bytes.chunks(chunk) {
        d.feed(c);
        loop {
            match d.next_frame() {
                Ok(Some((_, Ok(p)))) => round_trip(&p, d.version()),
                Ok(Some((_, Err(_)))) => {}
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }

    if version == Version::V5 {
        let t = TYPES[(sel as usize / 48) % TYPES.len()];
        if let Ok(props) = decode_property_list(bytes, t) {
            let enc = encode_property_list(t, false, &props).unwrap_or_else(|e| {
                panic!("decoded {t:?} properties {props:?} but encode refuses: {e}")
            });
            let back = decode_property_list(&enc, t).expect("re-encoded properties decode");
            assert_eq!(back, props, "properties: decode(encode(p)) != p");
        }
    }
});
