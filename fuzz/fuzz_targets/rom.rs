//! SLIP framing and the emulated ROM loader on any bytes. SLIP: frames
//! come out the same however the bytes are cut, and each re-frames to
//! itself. The loader: no panic, every answer one well-formed SLIP reply
//! (`01 op len value status`), every request answered. Two shapes of
//! input: raw UART bytes (boot noise, broken escapes, truncated frames)
//! or, when the first byte's top bit is set, a list of requests framed
//! here with the right length and checksum, so the fuzzer gets past the
//! checks into FLASH_BEGIN/DATA/END and the registers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_hil::esp::image::checksum;
use mqtt_hil::esp::rom::{self, Action, Loader};
use mqtt_hil::esp::slip::{self, Frame};

/// Small enough to erase quickly, a whole 64 KiB block of sectors.
const FLASH: usize = 64 * 1024;

const OPS: [u8; 16] = [
    rom::FLASH_BEGIN,
    rom::FLASH_DATA,
    rom::FLASH_END,
    rom::MEM_BEGIN,
    rom::MEM_END,
    rom::MEM_DATA,
    rom::SYNC,
    rom::WRITE_REG,
    rom::READ_REG,
    rom::FLASH_DATA,
    rom::FLASH_DATA,
    rom::FLASH_BEGIN,
    0x0B, // SPI_SET_PARAMS: not the ESP8266 ROM's
    0x0F, // CHANGE_BAUDRATE
    0x00,
    0xFF,
];

/// Requests from `[sel, n, data...]` records: `sel`'s low nibble picks
/// the op, bit 4 keeps a wrong checksum, bit 5 a wrong FLASH_DATA length.
fn requests(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let [sel, n, rest @ ..] = b {
        let n = (*n as usize * 2).min(rest.len());
        let (data, tail) = rest.split_at(n);
        b = tail;
        let op = OPS[(sel & 0x0F) as usize];
        let mut data = data.to_vec();
        if op == rom::FLASH_DATA && sel & 0x20 == 0 && data.len() >= 16 {
            let len = (data.len() - 16) as u32;
            data[..4].copy_from_slice(&len.to_le_bytes());
        }
        let mut chk = checksum(data.get(16..).unwrap_or_default()) as u32;
        if sel & 0x10 != 0 {
            chk ^= 1;
        }
        let mut p = vec![0x00, op];
        p.extend_from_slice(&(data.len() as u16).to_le_bytes());
        p.extend_from_slice(&chk.to_le_bytes());
        p.extend_from_slice(&data);
        out.push(p);
    }
    out
}

/// Each Send is exactly one SLIP frame holding a 10-byte reply; returns
/// the ops answered.
fn replies(actions: &[Action]) -> Vec<u8> {
    let mut ops = Vec::new();
    for a in actions {
        if let Action::Send(bytes) = a {
            let frames = slip::Decoder::new().push(bytes);
            match frames.as_slice() {
                [Frame::Packet(p)] if p.len() == 10 && p[0] == 0x01 && p[2..4] == [2, 0] => {
                    ops.push(p[1])
                }
                other => panic!("malformed answer {bytes:02x?}: {other:?}"),
            }
        }
    }
    ops
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let chunk = (sel & 0x3F) as usize + 1;

    // SLIP alone.
    let whole = slip::Decoder::new().push(bytes);
    let mut d = slip::Decoder::new();
    let cut: Vec<Frame> = bytes.chunks(chunk).flat_map(|c| d.push(c)).collect();
    assert_eq!(whole, cut, "SLIP frames depend on how the bytes were cut");
    for f in &whole {
        if let Frame::Packet(p) = f {
            assert_eq!(
                slip::Decoder::new().push(&slip::encode(p)),
                [Frame::Packet(p.clone())],
                "a frame does not re-frame to itself"
            );
        }
    }

    let mut loader = Loader::new(vec![0xFF; FLASH], 115_200);
    if sel & 0x80 == 0 {
        for c in bytes.chunks(chunk) {
            replies(&loader.input(c));
        }
    } else {
        for req in requests(bytes) {
            let ops = replies(&loader.input(&slip::encode(&req)));
            assert!(
                ops.contains(&req[1]),
                "request {req:02x?} got no answer: {ops:02x?}"
            );
        }
    }
    let _ = loader.unfinished();
    assert_eq!(loader.into_flash().len(), FLASH, "the flash changed size");
});
