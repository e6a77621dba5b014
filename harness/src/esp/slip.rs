//! SLIP framing (RFC 1055) as the ESP8266 ROM loader uses it: each packet
//! between two 0xC0 bytes, 0xC0 and 0xDB inside escaped as 0xDB 0xDC and
//! 0xDB 0xDD. Sans-IO: bytes in, whole frames out. Bytes outside a frame
//! (boot noise, a terminal's typing) are skipped, as the ROM skips them.

pub const END: u8 = 0xC0;
pub const ESC: u8 = 0xDB;
pub const ESC_END: u8 = 0xDC;
pub const ESC_ESC: u8 = 0xDD;

/// Frames one packet.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(END);
    for &b in payload {
        match b {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            _ => out.push(b),
        }
    }
    out.push(END);
    out
}

/// What a decoder found besides frames.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Packet(Vec<u8>),
    /// An escape byte followed by something other than 0xDC/0xDD: the
    /// frame is dropped (line noise), as the ROM drops it.
    Corrupt,
}

#[derive(Default)]
pub struct Decoder {
    in_frame: bool,
    escaped: bool,
    corrupt: bool,
    buf: Vec<u8>,
}

/// Frames longer than this are line noise (the ROM's largest packet is a
/// 0x400-byte flash block; esptool's RAM blocks are 0x1800).
const MAX_FRAME: usize = 0x4000 + 64;

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == END {
                if self.in_frame && (!self.buf.is_empty() || self.corrupt) {
                    let buf = std::mem::take(&mut self.buf);
                    out.push(if self.corrupt {
                        Frame::Corrupt
                    } else {
                        Frame::Packet(buf)
                    });
                }
                // Back-to-back END bytes: the second opens the next frame.
                self.in_frame = true;
                self.escaped = false;
                self.corrupt = false;
                continue;
            }
            if !self.in_frame {
                continue;
            }
            if self.escaped {
                self.escaped = false;
                match b {
                    ESC_END => self.buf.push(END),
                    ESC_ESC => self.buf.push(ESC),
                    _ => self.corrupt = true,
                }
            } else if b == ESC {
                self.escaped = true;
            } else {
                self.buf.push(b);
            }
            if self.buf.len() > MAX_FRAME {
                self.buf.clear();
                self.corrupt = true;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_both_special_bytes() {
        assert_eq!(
            encode(&[1, END, 2, ESC, 3]),
            [END, 1, ESC, ESC_END, 2, ESC, ESC_ESC, 3, END]
        );
    }

    #[test]
    fn noise_outside_frames_is_skipped_and_bad_escapes_drop_the_frame() {
        let mut d = Decoder::new();
        let mut bytes = b"ets Jan  8 2013,rst cause:2\r\n".to_vec();
        bytes.extend(encode(b"ok"));
        bytes.extend([END, 1, ESC, 0x42, 2, END]);
        bytes.extend(encode(b"next"));
        assert_eq!(
            d.push(&bytes),
            [
                Frame::Packet(b"ok".to_vec()),
                Frame::Corrupt,
                Frame::Packet(b"next".to_vec())
            ]
        );
    }

    proptest! {
        #[test]
        fn any_packets_survive_any_chunking(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..5),
            cut in 1usize..64,
        ) {
            let wire: Vec<u8> = packets.iter().flat_map(|p| encode(p)).collect();
            let mut d = Decoder::new();
            let got: Vec<Frame> = wire.chunks(cut).flat_map(|c| d.push(c)).collect();
            let want: Vec<Frame> = packets.into_iter().map(Frame::Packet).collect();
            prop_assert_eq!(got, want);
        }
    }
}
