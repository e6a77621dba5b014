//! The sans-IO MQTT codec: framing, decoding and encoding for 3.1, 3.1.1
//! and 5.0, shaped like mini-redis's `Frame::check` / `Frame::parse`.
//!
//! - [`frame_len`] looks only at the fixed header and says how long the
//!   first frame is, or that more bytes are needed. It is the only step that
//!   must succeed for a stream to stay in sync, so it rejects only what makes
//!   framing impossible (packet type 0, a remaining length over 4 bytes).
//! - [`decode`] turns one complete frame into a [`Packet`], validating it
//!   strictly against the version's spec. Its errors name the field, the
//!   byte offset in the frame and, where the spec numbers one, the rule.
//! - [`encode`] builds a frame and refuses anything [`decode`] would refuse,
//!   so `decode(encode(p)) == p` for every packet it accepts. Frames that
//!   break the rules on purpose are built with [`raw_frame`].
//! - [`Decoder`] is the streaming form for one direction of a connection:
//!   it buffers in a `BytesMut`, splits whole frames off (amortised O(n)),
//!   hands back each frame's raw bytes with its decode result, and learns
//!   the version from the CONNECT it sees.
//!
//! Encoding is canonical: 5.0 acks, DISCONNECT and AUTH use their short
//! forms when the reason code is 0 and there are no properties, and a
//! non-zero reason code with no properties omits the property length (where
//! the spec allows it). A frame that decodes therefore re-encodes to the same
//! bytes unless it used a longer form than needed (e.g. a 5.0 PUBACK with an
//! explicit success code).

mod error;
mod read;
pub(crate) mod rules;
mod write;

use bytes::{Bytes, BytesMut};

pub use error::{DecodeError, EncodeError};

use crate::mqtt::{Packet, PacketType, Version};

/// Length of the first complete frame in `buf` (fixed header + remaining
/// length), `Ok(None)` when more bytes are needed, `Err` when the fixed
/// header is invalid (packet type 0, remaining length over 4 bytes). Never
/// panics, never decodes the body.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    Ok(read::fixed_header(buf)?.and_then(|(hlen, remaining)| {
        let total = hlen + remaining;
        (buf.len() >= total).then_some(total)
    }))
}

/// The length the fixed header at the start of `buf` announces for its
/// whole frame, once the header is complete (`None` before, or when it is
/// invalid) — to say what a stream is waiting for.
pub fn announced_len(buf: &[u8]) -> Option<usize> {
    read::fixed_header(buf).ok().flatten().map(|(h, r)| h + r)
}

/// What the first byte of a frame already shows to be wrong — flags its
/// packet type forbids, a type its version lacks — before the rest of the
/// frame has arrived. A stream of garbage that never completes the length
/// its first bytes announce would otherwise be indistinguishable from
/// silence. `None` when the first byte is fine or absent.
pub fn header_error(buf: &[u8], version: Version) -> Option<DecodeError> {
    let &first = buf.first()?;
    let Some(packet) = PacketType::from_nibble(first >> 4) else {
        return Some(DecodeError::ReservedPacketType { byte: first });
    };
    let flags = first & 0x0F;
    if let Some(expected) = rules::required_flags(packet) {
        if flags != expected {
            return Some(DecodeError::ReservedFlags {
                packet,
                flags,
                expected,
            });
        }
    }
    if packet == PacketType::Auth && version != Version::V5 {
        return Some(DecodeError::PacketNotInVersion { packet, version });
    }
    None
}

/// Decodes exactly one complete frame (as delimited by [`frame_len`]) for
/// the given protocol version. CONNECT decodes whatever version is passed
/// (it carries its own).
pub fn decode(frame: &[u8], version: Version) -> Result<Packet, DecodeError> {
    read::decode(frame, version)
}

/// Encodes a packet for a version into a fresh buffer. A CONNECT is encoded
/// for the version it carries, whatever `version` says.
pub fn encode(packet: &Packet, version: Version) -> Result<Bytes, EncodeError> {
    write::encode(packet, version)
}

/// A 5.0 property list without its length prefix, as the agent's line
/// protocol carries it (`props=`); `will` for will properties.
pub fn encode_property_list(
    packet: PacketType,
    will: bool,
    props: &crate::mqtt::Properties,
) -> Result<Bytes, EncodeError> {
    write::property_list(packet, will, props)
}

/// The inverse of [`encode_property_list`] for what a broker sent on `packet`.
pub fn decode_property_list(
    bytes: &[u8],
    packet: PacketType,
) -> Result<crate::mqtt::Properties, DecodeError> {
    read::property_list(bytes, packet)
}

/// Builds a frame from a raw first byte and body, adding the remaining
/// length: for tests and observers that must send malformed packets on
/// purpose. A body over 268,435,455 bytes gets a (malformed) remaining
/// length of 5 or more bytes.
pub fn raw_frame(first_byte: u8, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(1 + 5 + body.len());
    buf.extend_from_slice(&[first_byte]);
    write::put_varint(&mut buf, body.len());
    buf.extend_from_slice(body);
    buf.freeze()
}

/// The version a CONNECT frame announces (protocol name and level), read
/// even when the rest of the frame does not decode. `None` for other
/// packets and unknown protocols.
pub fn connect_version(frame: &[u8]) -> Option<Version> {
    if frame.first().map(|b| b >> 4) != Some(PacketType::Connect as u8) {
        return None;
    }
    read::sniff_connect_version(frame)
}

/// May `code` be the reason (or return) code of this packet type in this
/// version? (The tables of 3.1.1 §3.2.2.3, §3.9.3 and 5.0 §2.4.)
pub fn reason_allowed(t: PacketType, version: Version, code: u8) -> bool {
    rules::reason_ok(t, version, code)
}

/// One item from [`Decoder::next_frame`]: the raw frame and its decoding.
pub type Frame = (Bytes, Result<Packet, DecodeError>);

/// Streaming decoder for one direction of one connection: feed it bytes as
/// they arrive, take whole frames out. It learns the version from a CONNECT
/// it sees ([`Decoder::set_version`] lets the other direction's decoder be
/// told).
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    version: Version,
    /// Set once framing failed: the stream cannot be resynchronised.
    broken: Option<DecodeError>,
}

impl Decoder {
    pub fn new(version: Version) -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            version,
            broken: None,
        }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn set_version(&mut self, v: Version) {
        self.version = v;
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Next whole frame: `Ok(None)` = need more bytes. Each item is the raw
    /// frame bytes (exactly as received) and the decode result for it, so a
    /// caller can forward a frame that does not decode. `Err` only when
    /// framing itself is broken; the stream cannot be resynchronised, every
    /// later call returns the same error, and the caller forwards the rest
    /// raw ([`Decoder::pending`], [`Decoder::take_pending`]).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        match frame_len(&self.buf) {
            Err(e) => {
                self.broken = Some(e.clone());
                Err(e)
            }
            Ok(None) => Ok(None),
            Ok(Some(n)) => {
                let frame = self.buf.split_to(n).freeze();
                if let Some(v) = connect_version(&frame) {
                    self.version = v;
                }
                let packet = decode(&frame, self.version);
                Ok(Some((frame, packet)))
            }
        }
    }

    /// Bytes buffered but not yet a whole frame.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the buffered bytes out (e.g. to forward them raw after a
    /// framing error), leaving the buffer empty.
    pub fn take_pending(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// The framing error that stopped this decoder, if any.
    pub fn broken(&self) -> Option<&DecodeError> {
        self.broken.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_first_byte_is_told_before_the_frame_is_complete() {
        // "GET / …": PUBACK (type 4) with flags 0b0111, length 0x45.
        assert_eq!(
            header_error(b"GET / HTTP/1.1", Version::V311),
            Some(DecodeError::ReservedFlags {
                packet: PacketType::PubAck,
                flags: 0b0111,
                expected: 0,
            })
        );
        assert_eq!(
            header_error(&[0x05], Version::V311),
            Some(DecodeError::ReservedPacketType { byte: 0x05 })
        );
        assert!(matches!(
            header_error(&[0xf0, 0x00], Version::V311),
            Some(DecodeError::PacketNotInVersion { .. })
        ));
        // Fine so far: a PUBLISH's flags are its own, a SUBSCRIBE's are 2.
        assert_eq!(header_error(&[0x3b, 0xff], Version::V311), None);
        assert_eq!(header_error(&[0x82], Version::V311), None);
        assert_eq!(header_error(&[0xf0], Version::V5), None);
        assert_eq!(header_error(&[], Version::V311), None);
    }
}
