//! The ESP8266 firmware image, version 1 (what esptool's `elf2image` and
//! the Arduino core write, and what the chip's boot ROM reads at flash
//! offset 0): an 8-byte header (0xE9, segment count, flash mode, flash
//! size/frequency, entry point), segments (load address, length, bytes) for
//! IRAM and DRAM, zero padding up to a 16-byte boundary less one, and a
//! checksum byte: 0xEF xor every segment byte. Code that runs from flash is
//! not in a segment: it sits raw in the flash at its address minus
//! 0x40200000 (the cache maps flash offset X at 0x40200000 + X), 0x10000 for
//! the classic layout. [`from_elf`] writes one flash image holding both, so
//! the same .bin goes to a bench board and to the emulated board.

/// The ESP8266 maps the first MiB of flash here.
pub const IROM_BASE: u32 = 0x4020_0000;
pub const IROM_SIZE: u32 = 0x10_0000;
pub const MAGIC: u8 = 0xE9;
pub const CHECKSUM_SEED: u8 = 0xEF;
/// Segment count the ROM accepts (it has a fixed table).
pub const MAX_SEGMENTS: usize = 16;

/// The xor checksum the ROM loader uses for images and data blocks.
pub fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(CHECKSUM_SEED, |c, b| c ^ b)
}

/// Flash settings in the header (the ROM configures the SPI bus from them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashParams {
    /// 0 QIO, 1 QOUT, 2 DIO, 3 DOUT.
    pub mode: u8,
    /// High nibble size (4 = 4 MiB), low nibble frequency (0 = 40 MHz).
    pub size_freq: u8,
}

/// NodeMCU and Wemos D1 mini: 4 MiB, DIO, 40 MHz.
pub const DEFAULT_PARAMS: FlashParams = FlashParams {
    mode: 2,
    size_freq: 0x40,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub addr: u32,
    pub data: Vec<u8>,
}

/// Where an address lands on the ESP8266, for checks on both sides.
fn in_ram(addr: u32, len: u32) -> bool {
    let end = addr as u64 + len as u64;
    let within = |lo: u32, hi: u32| addr >= lo && end <= hi as u64;
    within(0x3FFE_8000, 0x4000_0000) || within(0x4010_0000, 0x4010_8000)
}

/// Loadable pieces of an ELF32 little-endian file: (physical address,
/// bytes) of every PT_LOAD with file contents, and the entry point.
pub fn elf_loads(elf: &[u8]) -> Result<(u32, Vec<Segment>), String> {
    let u16_at = |o: usize| -> Result<u16, String> {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated ELF".to_string())
    };
    let u32_at = |o: usize| -> Result<u32, String> {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "truncated ELF".to_string())
    };
    if elf.get(0..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if elf[4] != 1 || elf[5] != 1 {
        return Err("not a 32-bit little-endian ELF (the ESP8266's lx106 is both)".into());
    }
    let entry = u32_at(0x18)?;
    let phoff = u32_at(0x1C)? as usize;
    let phentsize = u16_at(0x2A)? as usize;
    let phnum = u16_at(0x2C)? as usize;
    let mut out = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph)? != 1 {
            continue; // not PT_LOAD
        }
        let offset = u32_at(ph + 4)? as usize;
        let paddr = u32_at(ph + 12)?;
        let filesz = u32_at(ph + 16)? as usize;
        if filesz == 0 {
            continue; // .bss: the start-up code clears it
        }
        let data = elf
            .get(offset..offset + filesz)
            .ok_or("a program header points past the end of the ELF")?;
        out.push(Segment {
            addr: paddr,
            data: data.to_vec(),
        });
    }
    Ok((entry, out))
}

/// A flash image from offset 0: the v1 image (RAM segments) and, at their
/// flash offsets, the pieces that run or are read from the flash window.
pub fn from_elf(elf: &[u8], params: FlashParams) -> Result<Vec<u8>, String> {
    let (entry, loads) = elf_loads(elf)?;
    let (flash, ram): (Vec<Segment>, Vec<Segment>) = loads
        .into_iter()
        .partition(|s| (IROM_BASE..IROM_BASE + IROM_SIZE).contains(&s.addr));
    for s in &ram {
        if !in_ram(s.addr, s.data.len() as u32) {
            return Err(format!(
                "a segment at {:#010x} ({} bytes) is neither in IRAM (0x40100000, 32 KiB), DRAM (0x3FFE8000, 96 KiB) nor the flash window (0x40200000): the ROM cannot load it",
                s.addr,
                s.data.len()
            ));
        }
    }
    let mut image = write_v1(entry, &ram, params)?;
    let header_end = image.len() as u32;
    let mut flash = flash;
    flash.sort_by_key(|s| s.addr);
    for s in &flash {
        let off = s.addr - IROM_BASE;
        if off < header_end {
            return Err(format!(
                "code linked at {:#010x} would sit at flash offset {off:#x}, inside the image header and its RAM segments (which end at {header_end:#x}): link flash code at 0x40210000 (flash offset 0x10000) as the ESP8266 SDKs do",
                s.addr
            ));
        }
        let end = off as usize + s.data.len();
        if image.len() < end {
            image.resize(end, 0xFF);
        }
        image[off as usize..end].copy_from_slice(&s.data);
    }
    Ok(image)
}

/// The v1 image proper.
pub fn write_v1(entry: u32, segments: &[Segment], params: FlashParams) -> Result<Vec<u8>, String> {
    if segments.len() > MAX_SEGMENTS {
        return Err(format!(
            "{} RAM segments: the ROM loads at most {MAX_SEGMENTS}",
            segments.len()
        ));
    }
    let mut out = vec![MAGIC, segments.len() as u8, params.mode, params.size_freq];
    out.extend_from_slice(&entry.to_le_bytes());
    let mut sum = CHECKSUM_SEED;
    for s in segments {
        let mut data = s.data.clone();
        data.resize(data.len().div_ceil(4) * 4, 0);
        out.extend_from_slice(&s.addr.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        sum ^= checksum(&data) ^ CHECKSUM_SEED;
        out.extend_from_slice(&data);
    }
    out.resize(out.len() + 15 - out.len() % 16, 0);
    out.push(sum);
    Ok(out)
}

/// What the ROM finds at flash offset 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub entry: u32,
    pub params: FlashParams,
    /// (load address, length, offset of the bytes in the flash).
    pub segments: Vec<(u32, u32, usize)>,
    /// Length of the v1 image, checksum byte included.
    pub len: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadImage {
    #[error("no image: the first byte is {0:#04x}, not the magic 0xE9 (erased or never flashed?)")]
    Magic(u8),
    #[error("the header claims {0} segments; the ROM loads at most 16")]
    SegmentCount(u8),
    #[error("the image is cut short at byte {0} (an interrupted flash?)")]
    Truncated(usize),
    #[error("segment {index} loads {len} bytes at {addr:#010x}, outside IRAM and DRAM")]
    Segment { index: usize, addr: u32, len: u32 },
    #[error("checksum mismatch: stored {stored:#04x}, computed {computed:#04x} (a corrupted or interrupted flash)")]
    Checksum { stored: u8, computed: u8 },
}

/// Checks an image the way the ROM does before it jumps to it.
pub fn parse(flash: &[u8]) -> Result<Parsed, BadImage> {
    let header = flash.get(..8).ok_or(BadImage::Truncated(flash.len()))?;
    if header[0] != MAGIC {
        return Err(BadImage::Magic(header[0]));
    }
    let count = header[1];
    if count as usize > MAX_SEGMENTS {
        return Err(BadImage::SegmentCount(count));
    }
    let entry = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let mut pos = 8;
    let mut sum = CHECKSUM_SEED;
    let mut segments = Vec::new();
    for index in 0..count as usize {
        let h = flash.get(pos..pos + 8).ok_or(BadImage::Truncated(pos))?;
        let addr = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if !in_ram(addr, len) {
            return Err(BadImage::Segment { index, addr, len });
        }
        let data = flash
            .get(pos + 8..pos + 8 + len as usize)
            .ok_or(BadImage::Truncated(pos + 8))?;
        sum ^= checksum(data) ^ CHECKSUM_SEED;
        segments.push((addr, len, pos + 8));
        pos += 8 + len as usize;
    }
    let at = pos + 15 - pos % 16;
    let stored = *flash.get(at).ok_or(BadImage::Truncated(at))?;
    if stored != sum {
        return Err(BadImage::Checksum {
            stored,
            computed: sum,
        });
    }
    Ok(Parsed {
        entry,
        params: FlashParams {
            mode: header[2],
            size_freq: header[3],
        },
        segments,
        len: at + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(addr: u32, data: &[u8]) -> Segment {
        Segment {
            addr,
            data: data.to_vec(),
        }
    }

    /// Built by hand from the format's description: two segments, the
    /// second padded to 4 bytes, the checksum at offset 15 mod 16.
    #[test]
    fn a_v1_image_matches_the_format_byte_for_byte() {
        let img = write_v1(
            0x4010_0004,
            &[
                seg(0x4010_0000, &[1, 2, 3, 4]),
                seg(0x3FFE_8000, &[0xAA, 0x55, 0x0F]),
            ],
            DEFAULT_PARAMS,
        )
        .unwrap();
        let mut want = vec![0xE9, 2, 2, 0x40, 0x04, 0x00, 0x10, 0x40];
        want.extend([0x00, 0x00, 0x10, 0x40, 4, 0, 0, 0, 1, 2, 3, 4]);
        want.extend([0x00, 0x80, 0xFE, 0x3F, 4, 0, 0, 0, 0xAA, 0x55, 0x0F, 0]);
        // 32 bytes so far: pad to 47, checksum at 47.
        want.extend([0u8; 15]);
        want.push(0xEF ^ 1 ^ 2 ^ 3 ^ 4 ^ 0xAA ^ 0x55 ^ 0x0F);
        assert_eq!(img, want);
        let p = parse(&img).unwrap();
        assert_eq!(p.entry, 0x4010_0004);
        assert_eq!(p.segments, [(0x4010_0000, 4, 16), (0x3FFE_8000, 4, 28)]);
        assert_eq!(p.len, 48);
    }

    #[test]
    fn parse_catches_what_the_rom_would_refuse() {
        let img = write_v1(0x4010_0000, &[seg(0x4010_0000, &[9; 64])], DEFAULT_PARAMS).unwrap();
        assert_eq!(parse(&[0xFF; 64]), Err(BadImage::Magic(0xFF)));
        let mut flipped = img.clone();
        flipped[20] ^= 0x01;
        assert!(matches!(parse(&flipped), Err(BadImage::Checksum { .. })));
        assert!(matches!(parse(&img[..40]), Err(BadImage::Truncated(_))));
        let mut count = img.clone();
        count[1] = 17;
        assert_eq!(parse(&count), Err(BadImage::SegmentCount(17)));
        let wild = write_v1(0, &[seg(0x6000_0000, &[0; 4])], DEFAULT_PARAMS).unwrap();
        assert!(matches!(parse(&wild), Err(BadImage::Segment { .. })));
    }

    /// The firmware the emulated board boots, when `make firmware` built it.
    #[test]
    fn the_agent_elf_becomes_an_image_with_flash_code_at_0x10000() {
        let elf =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/build/agent.elf");
        let elf = std::fs::read(&elf).expect("firmware/build/agent.elf: run `make firmware`");
        let img = from_elf(&elf, DEFAULT_PARAMS).unwrap();
        let p = parse(&img).unwrap();
        assert!(p.len < 0x10000, "RAM segments fit below the flash code");
        assert!(img.len() > 0x10000, "flash code follows at 0x10000");
        let (_, loads) = elf_loads(&elf).unwrap();
        for l in loads.iter().filter(|l| l.addr >= IROM_BASE) {
            let off = (l.addr - IROM_BASE) as usize;
            assert_eq!(&img[off..off + l.data.len()], &l.data[..]);
        }
    }
}
