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
        let mut rest = bytes;
        while let Some((&b, tail)) = rest.split_first() {
            if b == END {
                self.end_frame(&mut out);
                rest = tail;
            } else if !self.in_frame {
                rest = match tail.iter().position(|&b| b == END) {
                    Some(n) => &tail[n..],
                    None => &[],
                };
            } else if self.escaped {
                self.escaped = false;
                match b {
                    ESC_END => self.keep(&[END]),
                    ESC_ESC => self.keep(&[ESC]),
                    _ => self.spoil(),
                }
                rest = tail;
            } else if b == ESC {
                self.escaped = true;
                rest = tail;
            } else {
                // A run of plain bytes is copied in one go: byte by byte,
                // this loop cost the ROM fuzz target half its time (every
                // byte paid a push, a length check and their comparisons).
                let n = tail
                    .iter()
                    .position(|&b| b == END || b == ESC)
                    .map_or(rest.len(), |n| n + 1);
                self.keep(&rest[..n]);
                rest = &rest[n..];
            }
        }
        out
    }

    fn end_frame(&mut self, out: &mut Vec<Frame>) {
        if self.in_frame && (!self.buf.is_empty() || self.corrupt) {
            out.push(if self.corrupt {
                Frame::Corrupt
            } else {
                Frame::Packet(std::mem::take(&mut self.buf))
            });
        }
        // Back-to-back END bytes: the second opens the next frame.
        self.in_frame = true;
        self.escaped = false;
        self.corrupt = false;
        self.buf.clear();
    }

    /// Bytes of the open frame. A corrupt frame keeps none (it ends as
    /// `Corrupt` whatever follows), and one that would grow past
    /// `MAX_FRAME` becomes corrupt before anything is copied, so a long
    /// run of noise never allocates more than the limit.
    fn keep(&mut self, bytes: &[u8]) {
        if self.corrupt {
            return;
        }
        if self.buf.len() + bytes.len() > MAX_FRAME {
            self.spoil();
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn spoil(&mut self) {
        self.buf.clear();
        self.corrupt = true;
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

    /// The decoder as first written, one byte at a time: the run-at-a-time
    /// one must frame every byte stream exactly as it does.
    #[derive(Default)]
    struct ByteAtATime {
        in_frame: bool,
        escaped: bool,
        corrupt: bool,
        buf: Vec<u8>,
    }

    impl ByteAtATime {
        fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
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

    /// Bytes where END, ESC and the escape codes are common, so streams
    /// hit every state: noise before the first frame, bad and truncated
    /// escapes, empty frames, back-to-back ENDs.
    fn wire_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            Just(END),
            Just(ESC),
            Just(ESC_END),
            Just(ESC_ESC),
            any::<u8>(),
            any::<u8>(),
        ]
    }

    fn frames_of(d: &mut Decoder, bytes: &[u8], cut: usize) -> Vec<Frame> {
        bytes.chunks(cut).flat_map(|c| d.push(c)).collect()
    }

    #[test]
    fn frames_at_and_past_the_size_limit() {
        // A frame of exactly MAX_FRAME bytes (escapes count once) is a
        // packet; one byte more, from a run or an escape, drops it; the
        // next frame is whole again. Fed in one piece and in 7-byte cuts.
        let mut big = vec![0x11; MAX_FRAME - 1];
        big.push(END);
        let mut wire = encode(&big);
        wire.extend(encode(&[0x22; MAX_FRAME + 1]));
        let mut over_by_escape = vec![0x33; MAX_FRAME];
        over_by_escape.push(ESC);
        wire.extend(encode(&over_by_escape));
        wire.extend(encode(b"after"));
        let want = [
            Frame::Packet(big.clone()),
            Frame::Corrupt,
            Frame::Corrupt,
            Frame::Packet(b"after".to_vec()),
        ];
        for cut in [wire.len(), 7] {
            assert_eq!(
                frames_of(&mut Decoder::new(), &wire, cut),
                want,
                "cut {cut}"
            );
            let mut reference = ByteAtATime::default();
            let by_byte: Vec<Frame> = wire.chunks(cut).flat_map(|c| reference.push(c)).collect();
            assert_eq!(by_byte, want, "the byte-at-a-time decoder, cut {cut}");
        }
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

        #[test]
        fn any_bytes_frame_as_they_did_byte_at_a_time(
            bytes in proptest::collection::vec(wire_byte(), 0..600),
            cut in 1usize..64,
        ) {
            let mut reference = ByteAtATime::default();
            let want: Vec<Frame> = bytes.chunks(cut).flat_map(|c| reference.push(c)).collect();
            prop_assert_eq!(frames_of(&mut Decoder::new(), &bytes, cut), want);
        }
    }
}
