//! The ESP8266 ROM's serial loader, emulated, sans-IO: SLIP packets in,
//! SLIP answers and a few board actions out, the flash behind a small
//! trait. What it answers is what the chip's ROM answers, as far as
//! esptool and espflash can tell: a request is `00 op len:u16 chk:u32
//! data`, an answer `01 op len:u16 value:u32` then two status bytes
//! (0 = ok, else 1 and an error code). Commands: FLASH_BEGIN/DATA/END,
//! MEM_BEGIN/DATA/END, SYNC (answered eight times, as the ROM does),
//! WRITE_REG/READ_REG (with the chip-detect magic, eFuse MAC words, the UART
//! divider and enough of the SPI controller for a flash-ID read). Everything
//! else (SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE, the compressed and MD5
//! commands) is what only later chips or the flasher stub know: "invalid
//! message" (0x05), as the ESP8266 ROM says.
//!
//! The ROM's erase bug is modelled: FLASH_BEGIN's erase size is taken the
//! way the ROM takes it (it erases the sectors up to the next 64 KiB block
//! twice over), which is why flashers send a smaller, "corrected" size.
//! RAM code is accepted but never run: the loader emulates the ROM's
//! protocol, not the CPU, so use flashers without their RAM stub.

use std::collections::BTreeMap;

use super::image::checksum;
use super::slip;

pub const FLASH_BEGIN: u8 = 0x02;
pub const FLASH_DATA: u8 = 0x03;
pub const FLASH_END: u8 = 0x04;
pub const MEM_BEGIN: u8 = 0x05;
pub const MEM_END: u8 = 0x06;
pub const MEM_DATA: u8 = 0x07;
pub const SYNC: u8 = 0x08;
pub const WRITE_REG: u8 = 0x09;
pub const READ_REG: u8 = 0x0A;

/// ROM error codes (second status byte).
pub const ERR_INVALID: u8 = 0x05;
pub const ERR_FAILED: u8 = 0x06;
pub const ERR_CHECKSUM: u8 = 0x07;
pub const ERR_FLASH_WRITE: u8 = 0x08;

pub const CHIP_MAGIC_REG: u32 = 0x6000_0078;
pub const CHIP_MAGIC: u32 = 0xFFF0_C101;
/// A word of the mask ROM that differs per chip model; espflash (and
/// esptool's fallback) read it for chip detection: 0xFFF0C101 on the ESP8266.
pub const ROM_MAGIC_ADDR: u32 = 0x4000_1000;
pub const UART_CLKDIV_REG: u32 = 0x6000_0014;
const SPI_BASE: u32 = 0x6000_0200;
const SPI_CMD_REG: u32 = SPI_BASE;
const SPI_USR2_REG: u32 = SPI_BASE + 0x24;
const SPI_W0_REG: u32 = SPI_BASE + 0x40;
const SPI_CMD_USR: u32 = 1 << 18;
/// JEDEC ID of a 4 MiB Winbond W25Q32 (NodeMCU v2, D1 mini), as W0 holds it.
pub const FLASH_ID: u32 = 0x0016_40EF;
pub const SECTOR: u32 = 0x1000;

/// The flash chip behind the loader.
pub trait Flash {
    fn size(&self) -> u32;
    /// Sets `len` bytes from `offset` to 0xFF.
    fn erase(&mut self, offset: u32, len: u32) -> std::io::Result<()>;
    /// NOR programming: bits only go from 1 to 0.
    fn program(&mut self, offset: u32, data: &[u8]) -> std::io::Result<()>;
}

impl Flash for Vec<u8> {
    fn size(&self) -> u32 {
        self.len() as u32
    }
    fn erase(&mut self, offset: u32, len: u32) -> std::io::Result<()> {
        let end = (offset + len).min(self.len() as u32) as usize;
        self[offset as usize..end].fill(0xFF);
        Ok(())
    }
    fn program(&mut self, offset: u32, data: &[u8]) -> std::io::Result<()> {
        for (i, b) in data.iter().enumerate() {
            if let Some(cell) = self.get_mut(offset as usize + i) {
                *cell &= b;
            }
        }
        Ok(())
    }
}

/// What the loader asks of the board around it.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Bytes to send back on the UART (one SLIP frame).
    Send(Vec<u8>),
    /// FLASH_END (reboot or "run user code"): boot from flash.
    BootFromFlash,
    /// Something a person should see in the board's log.
    Note(String),
}

struct FlashSession {
    offset: u32,
    blocks: u32,
    block_size: u32,
    /// Blocks written, by sequence number.
    written: std::collections::BTreeSet<u32>,
}

pub struct Loader<F: Flash> {
    flash: F,
    decoder: slip::Decoder,
    regs: BTreeMap<u32, u32>,
    session: Option<FlashSession>,
    mem: Option<(u32, u32)>,
    /// The baud rate the line runs at (the ROM autobauds on SYNC).
    pub baud: u32,
    /// Blocks written since start, for the log and tests.
    pub blocks_written: u32,
    /// Data blocks still to arrive damaged (a noisy line, for tests).
    noise: u32,
}

fn u32_at(d: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([d[i * 4], d[i * 4 + 1], d[i * 4 + 2], d[i * 4 + 3]])
}

/// Sectors the ROM's SPIEraseArea really erases for a request of `len`
/// bytes at `offset`: the sectors up to the next 64 KiB block are counted
/// twice (the bug flashers work around).
pub fn rom_erase_len(offset: u32, len: u32) -> u32 {
    let sectors = len.div_ceil(SECTOR);
    let head = (16 - (offset / SECTOR) % 16).min(sectors);
    // Saturates: a length near 4 GiB would overflow, and no flash is that big.
    (sectors + head).saturating_mul(SECTOR)
}

impl<F: Flash> Loader<F> {
    pub fn new(flash: F, baud: u32) -> Loader<F> {
        let mut regs = BTreeMap::new();
        regs.insert(CHIP_MAGIC_REG, CHIP_MAGIC);
        regs.insert(ROM_MAGIC_ADDR, CHIP_MAGIC);
        // eFuse words: an Espressif OUI (18:FE:34) MAC, not an ESP8285.
        regs.insert(0x3FF0_0050, 0x4D00_0000);
        regs.insert(0x3FF0_0054, 0x0000_4849);
        regs.insert(0x3FF0_0058, 0);
        regs.insert(0x3FF0_005C, 0);
        Loader {
            flash,
            decoder: slip::Decoder::new(),
            regs,
            session: None,
            mem: None,
            baud,
            blocks_written: 0,
            noise: 0,
        }
    }

    /// Damages one bit of each of the next `blocks` FLASH_DATA payloads, as
    /// a noisy line would: their checksums fail and nothing bad is written.
    pub fn line_noise(&mut self, blocks: u32) {
        self.noise = blocks;
    }

    pub fn flash(&self) -> &F {
        &self.flash
    }

    pub fn into_flash(self) -> F {
        self.flash
    }

    /// Bytes from the UART.
    pub fn input(&mut self, bytes: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        for frame in self.decoder.push(bytes) {
            match frame {
                slip::Frame::Packet(p) => out.extend(self.packet(&p)),
                slip::Frame::Corrupt => out.push(Action::Note(
                    "loader: a SLIP frame with a bad escape was dropped".into(),
                )),
            }
        }
        out
    }

    /// A flash session that never saw all its blocks and its FLASH_END, if
    /// any: what to report when the board is reset or the line goes quiet.
    pub fn unfinished(&self) -> Option<String> {
        let s = self.session.as_ref()?;
        Some(format!(
            "flash write at {:#x} interrupted: {} of {} blocks written, no FLASH_END",
            s.offset,
            s.written.len(),
            s.blocks
        ))
    }

    fn reply(op: u8, value: u32, status: Result<(), u8>) -> Action {
        let mut p = vec![0x01, op, 2, 0];
        p.extend_from_slice(&value.to_le_bytes());
        match status {
            Ok(()) => p.extend_from_slice(&[0, 0]),
            Err(code) => p.extend_from_slice(&[1, code]),
        }
        Action::Send(slip::encode(&p))
    }

    fn packet(&mut self, p: &[u8]) -> Vec<Action> {
        if p.len() < 8 || p[0] != 0x00 {
            // Not a request (e.g. our own echo, or noise that framed).
            return vec![Action::Note(format!(
                "loader: ignored a {}-byte packet that is not a request",
                p.len()
            ))];
        }
        let op = p[1];
        let len = u16::from_le_bytes([p[2], p[3]]) as usize;
        let chk = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        let data = &p[8..];
        if data.len() != len {
            return vec![Self::reply(op, 0, Err(ERR_INVALID))];
        }
        match op {
            SYNC => {
                if data.len() != 36 || data[..4] != [0x07, 0x07, 0x12, 0x20] {
                    return vec![Self::reply(op, 0, Err(ERR_INVALID))];
                }
                // The ROM answers a SYNC eight times; flashers read them all.
                (0..8)
                    .map(|_| Self::reply(op, 0x2012_0707, Ok(())))
                    .collect()
            }
            READ_REG if data.len() == 4 => {
                let addr = u32_at(data, 0);
                vec![Self::reply(op, self.read_reg(addr), Ok(()))]
            }
            WRITE_REG if data.len() == 16 => {
                let (addr, value, mask) = (u32_at(data, 0), u32_at(data, 1), u32_at(data, 2));
                let old = self.read_reg(addr);
                self.regs.insert(addr, (old & !mask) | (value & mask));
                if addr == SPI_CMD_REG && value & SPI_CMD_USR != 0 {
                    self.spi_user_command();
                }
                vec![Self::reply(op, 0, Ok(()))]
            }
            FLASH_BEGIN if data.len() == 16 => self.flash_begin(data),
            FLASH_DATA if data.len() >= 16 => self.flash_data(data, chk),
            FLASH_END if data.len() == 4 => {
                // 0 asks the ROM to reboot, 1 to "run user code"; either
                // way the application in flash starts (a flasher that wants
                // to stay in the loader sends no FLASH_END at all).
                let mut out = vec![Self::reply(op, 0, Ok(()))];
                if let Some(why) = self.unfinished() {
                    out.push(Action::Note(format!("loader: FLASH_END early: {why}")));
                }
                self.session = None;
                out.push(Action::BootFromFlash);
                out
            }
            MEM_BEGIN if data.len() == 16 => {
                let (size, offset) = (u32_at(data, 0), u32_at(data, 3));
                self.mem = Some((offset, size));
                vec![Self::reply(op, 0, Ok(()))]
            }
            MEM_DATA if data.len() >= 16 => {
                let body = &data[16..];
                if self.mem.is_none() {
                    return vec![Self::reply(op, 0, Err(ERR_FAILED))];
                }
                if checksum(body) as u32 != chk {
                    return vec![Self::reply(op, 0, Err(ERR_CHECKSUM))];
                }
                vec![Self::reply(op, 0, Ok(()))]
            }
            MEM_END if data.len() == 8 => {
                let (no_entry, entry) = (u32_at(data, 0) != 0, u32_at(data, 1));
                self.mem = None;
                let mut out = vec![Self::reply(op, 0, Ok(()))];
                if !no_entry {
                    out.push(Action::Note(format!(
                        "loader: MEM_END asked to run RAM code at {entry:#010x}; the emulated ROM loader speaks the protocol but runs no code: use the flasher without its stub (esptool --no-stub)"
                    )));
                }
                out
            }
            _ => vec![
                Self::reply(op, 0, Err(ERR_INVALID)),
                Action::Note(format!(
                    "loader: command {op:#04x} ({} data bytes) is not one the ESP8266 ROM knows",
                    data.len()
                )),
            ],
        }
    }

    fn read_reg(&self, addr: u32) -> u32 {
        if addr == UART_CLKDIV_REG {
            // APB 52 MHz (26 MHz crystal x 2) over the line's rate.
            return 52_000_000 / self.baud.max(1);
        }
        self.regs.get(&addr).copied().unwrap_or(0)
    }

    /// The SPI controller's "user command", as far as flashers use it: the
    /// JEDEC ID (0x9F) and status reads; W0 holds the answer, and the USR
    /// bit clears when done.
    fn spi_user_command(&mut self) {
        let cmd = self.read_reg(SPI_USR2_REG) & 0xFF;
        let answer = match cmd {
            0x9F => FLASH_ID,
            0x05 | 0x35 | 0x15 => 0, // status registers: idle, unprotected
            _ => 0xFFFF_FFFF,        // e.g. SFDP: no table
        };
        self.regs.insert(SPI_W0_REG, answer);
        let c = self.read_reg(SPI_CMD_REG) & !SPI_CMD_USR;
        self.regs.insert(SPI_CMD_REG, c);
    }

    fn flash_begin(&mut self, data: &[u8]) -> Vec<Action> {
        let (erase, blocks, block_size, offset) = (
            u32_at(data, 0),
            u32_at(data, 1),
            u32_at(data, 2),
            u32_at(data, 3),
        );
        let mut out = Vec::new();
        if let Some(why) = self.unfinished() {
            out.push(Action::Note(format!("loader: new FLASH_BEGIN: {why}")));
        }
        self.session = None;
        let size = self.flash.size();
        let real = if erase == 0 {
            0
        } else {
            rom_erase_len(offset, erase)
        };
        if offset % SECTOR != 0 || offset as u64 + erase as u64 > size as u64 {
            out.push(Self::reply(FLASH_BEGIN, 0, Err(ERR_FAILED)));
            return out;
        }
        if real > 0 {
            let real = real.min(size - offset);
            if let Err(e) = self.flash.erase(offset, real) {
                out.push(Action::Note(format!("loader: erasing flash: {e}")));
                out.push(Self::reply(FLASH_BEGIN, 0, Err(ERR_FLASH_WRITE)));
                return out;
            }
        }
        if blocks > 0 {
            out.push(Action::Note(format!(
                "loader: FLASH_BEGIN at {offset:#x}: {blocks} blocks of {block_size} bytes (erasing {real:#x} bytes)"
            )));
            self.session = Some(FlashSession {
                offset,
                blocks,
                block_size,
                written: Default::default(),
            });
        }
        out.push(Self::reply(FLASH_BEGIN, 0, Ok(())));
        out
    }

    fn flash_data(&mut self, data: &[u8], chk: u32) -> Vec<Action> {
        let (len, seq) = (u32_at(data, 0) as usize, u32_at(data, 1));
        let mut damaged;
        let mut body = &data[16..];
        if self.noise > 0 && !body.is_empty() {
            self.noise -= 1;
            damaged = body.to_vec();
            damaged[body.len() / 2] ^= 0x10;
            body = &damaged;
        }
        let Some(s) = self.session.as_mut() else {
            return vec![
                Self::reply(FLASH_DATA, 0, Err(ERR_FAILED)),
                Action::Note("loader: FLASH_DATA without FLASH_BEGIN".into()),
            ];
        };
        if body.len() != len || len as u32 > s.block_size {
            return vec![Self::reply(FLASH_DATA, 0, Err(ERR_INVALID))];
        }
        if checksum(body) as u32 != chk {
            return vec![
                Self::reply(FLASH_DATA, 0, Err(ERR_CHECKSUM)),
                Action::Note(format!(
                    "loader: block {seq} failed its checksum (sent {chk:#04x}, computed {:#04x}); not written",
                    checksum(body)
                )),
            ];
        }
        if seq >= s.blocks {
            return vec![Self::reply(FLASH_DATA, 0, Err(ERR_FAILED))];
        }
        // A block past 4 GiB (a huge block size from FLASH_BEGIN) is no
        // block of this flash.
        let Some(at) = seq
            .checked_mul(s.block_size)
            .and_then(|o| o.checked_add(s.offset))
        else {
            return vec![Self::reply(FLASH_DATA, 0, Err(ERR_FAILED))];
        };
        if let Err(e) = self.flash.program(at, body) {
            return vec![
                Self::reply(FLASH_DATA, 0, Err(ERR_FLASH_WRITE)),
                Action::Note(format!("loader: writing flash at {at:#x}: {e}")),
            ];
        }
        s.written.insert(seq);
        self.blocks_written += 1;
        if s.written.len() as u32 == s.blocks {
            // Complete: a missing FLASH_END no longer loses anything.
            self.session = None;
        }
        vec![Self::reply(FLASH_DATA, 0, Ok(()))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request as flashers frame it.
    fn req(op: u8, data: &[u8], chk: u32) -> Vec<u8> {
        let mut p = vec![0x00, op];
        p.extend_from_slice(&(data.len() as u16).to_le_bytes());
        p.extend_from_slice(&chk.to_le_bytes());
        p.extend_from_slice(data);
        slip::encode(&p)
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// Decoded answers: (op, value, status bytes).
    fn answers(actions: &[Action]) -> Vec<(u8, u32, [u8; 2])> {
        let mut d = slip::Decoder::new();
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(b) => Some(b),
                _ => None,
            })
            .flat_map(|b| d.push(b))
            .map(|f| match f {
                slip::Frame::Packet(p) => {
                    assert_eq!(p[0], 1);
                    assert_eq!(
                        u16::from_le_bytes([p[2], p[3]]),
                        2,
                        "ESP8266: 2 status bytes"
                    );
                    (
                        p[1],
                        u32::from_le_bytes([p[4], p[5], p[6], p[7]]),
                        [p[8], p[9]],
                    )
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn loader() -> Loader<Vec<u8>> {
        Loader::new(vec![0u8; 0x40000], 115200)
    }

    fn sync() -> Vec<u8> {
        let mut d = vec![0x07, 0x07, 0x12, 0x20];
        d.extend([0x55; 32]);
        req(SYNC, &d, 0)
    }

    #[test]
    fn sync_is_answered_eight_times_like_the_rom() {
        let mut l = loader();
        let a = answers(&l.input(&sync()));
        assert_eq!(a.len(), 8);
        assert!(a.iter().all(|x| *x == (SYNC, 0x2012_0707, [0, 0])));
    }

    #[test]
    fn registers_identify_an_esp8266_and_the_spi_flash_id_reads_back() {
        let mut l = loader();
        let a = answers(&l.input(&req(READ_REG, &words(&[CHIP_MAGIC_REG]), 0)));
        assert_eq!(a, [(READ_REG, CHIP_MAGIC, [0, 0])]);
        // espflash 2.1 detects the chip from a ROM word instead.
        let a = answers(&l.input(&req(READ_REG, &words(&[ROM_MAGIC_ADDR]), 0)));
        assert_eq!(a, [(READ_REG, CHIP_MAGIC, [0, 0])]);
        let a = answers(&l.input(&req(READ_REG, &words(&[UART_CLKDIV_REG]), 0)));
        assert_eq!(a[0].1, 451, "52 MHz / 115200");
        // esptool's flash_id: USR2 = command 0x9F, then CMD.USR, poll, W0.
        let mut bytes = req(
            WRITE_REG,
            &words(&[SPI_USR2_REG, (7 << 28) | 0x9F, !0, 0]),
            0,
        );
        bytes.extend(req(
            WRITE_REG,
            &words(&[SPI_CMD_REG, SPI_CMD_USR, !0, 0]),
            0,
        ));
        bytes.extend(req(READ_REG, &words(&[SPI_CMD_REG]), 0));
        bytes.extend(req(READ_REG, &words(&[SPI_W0_REG]), 0));
        let a = answers(&l.input(&bytes));
        assert_eq!(a[2].1 & SPI_CMD_USR, 0, "the command completed");
        assert_eq!(a[3].1, FLASH_ID);
    }

    #[test]
    fn commands_the_esp8266_rom_lacks_are_invalid_messages() {
        let mut l = loader();
        for op in [0x0B, 0x0D, 0x0F, 0x10, 0x13, 0x14] {
            let a = answers(&l.input(&req(op, &words(&[0, 0]), 0)));
            assert_eq!(a, [(op, 0, [1, ERR_INVALID])], "op {op:#x}");
        }
    }

    /// Found by `make fuzz` (target rom): block number times a huge block
    /// size overflowed (a panic in the test build, a wrapped address in
    /// release).
    #[test]
    fn a_block_past_4_gib_fails_instead_of_overflowing() {
        let mut l = loader();
        let mut a = l.input(&req(FLASH_BEGIN, &words(&[0, 3, 0x8000_0000, 0]), 0));
        let mut d = words(&[4, 2, 0, 0]);
        d.extend([1, 2, 3, 4]);
        a.extend(l.input(&req(FLASH_DATA, &d, checksum(&[1, 2, 3, 4]) as u32)));
        let got: Vec<(u8, [u8; 2])> = answers(&a).iter().map(|x| (x.0, x.2)).collect();
        assert_eq!(got, [(FLASH_BEGIN, [0, 0]), (FLASH_DATA, [1, ERR_FAILED])]);
    }

    /// An erase size near 4 GiB overflowed the ROM's erase arithmetic
    /// before the size check could refuse it (seen while writing the rom
    /// fuzz target).
    #[test]
    fn an_erase_size_near_4_gib_is_refused_instead_of_overflowing() {
        assert_eq!(rom_erase_len(0, u32::MAX), u32::MAX);
        let mut l = loader();
        let a = answers(&l.input(&req(FLASH_BEGIN, &words(&[u32::MAX, 1, 0x400, 0]), 0)));
        assert_eq!(a, [(FLASH_BEGIN, 0, [1, ERR_FAILED])]);
    }

    #[test]
    fn a_flash_session_writes_blocks_and_flash_end_boots() {
        let mut l = loader();
        l.flash.fill(0x00); // not erased: FLASH_BEGIN must erase
        let image: Vec<u8> = (0..0x900u32).map(|i| (i * 7) as u8).collect();
        let blocks: Vec<&[u8]> = image.chunks(0x400).collect();
        let mut a = l.input(&req(FLASH_BEGIN, &words(&[0x1000, 3, 0x400, 0x1000]), 0));
        for (seq, b) in blocks.iter().enumerate() {
            let mut block = b.to_vec();
            block.resize(0x400, 0xFF); // flashers pad the last block
            let mut d = words(&[0x400, seq as u32, 0, 0]);
            d.extend(&block);
            a.extend(l.input(&req(FLASH_DATA, &d, checksum(&block) as u32)));
        }
        assert_eq!(l.unfinished(), None);
        a.extend(l.input(&req(FLASH_END, &words(&[0]), 0)));
        let status: Vec<[u8; 2]> = answers(&a).iter().map(|x| x.2).collect();
        assert_eq!(status, [[0, 0]; 5]);
        assert_eq!(a.last(), Some(&Action::BootFromFlash));
        assert_eq!(&l.flash[0x1000..0x1900], &image[..]);
        assert!(l.flash[0x1900..0x1C00].iter().all(|&b| b == 0xFF));
        assert_eq!(l.flash[0xFFF], 0, "before the region: untouched");
    }

    #[test]
    fn a_bad_block_checksum_is_refused_and_not_written() {
        let mut l = loader();
        l.input(&req(FLASH_BEGIN, &words(&[0x1000, 1, 0x400, 0]), 0));
        let mut d = words(&[0x400, 0, 0, 0]);
        d.extend([0x00u8; 0x400]);
        let a = l.input(&req(FLASH_DATA, &d, 0x12));
        assert_eq!(answers(&a), [(FLASH_DATA, 0, [1, ERR_CHECKSUM])]);
        assert!(
            l.flash[..0x400].iter().all(|&b| b == 0xFF),
            "erased, not written"
        );
        assert!(l.unfinished().unwrap().contains("0 of 1 blocks"));
    }

    #[test]
    fn line_noise_fails_the_block_and_a_resend_goes_through() {
        let mut l = loader();
        l.line_noise(1);
        l.input(&req(FLASH_BEGIN, &words(&[0x1000, 1, 0x400, 0]), 0));
        let block = [0x5Au8; 0x400];
        let mut d = words(&[0x400, 0, 0, 0]);
        d.extend(block);
        let first = l.input(&req(FLASH_DATA, &d, checksum(&block) as u32));
        assert_eq!(answers(&first)[0].2, [1, ERR_CHECKSUM]);
        let again = l.input(&req(FLASH_DATA, &d, checksum(&block) as u32));
        assert_eq!(answers(&again)[0].2, [0, 0]);
        assert_eq!(&l.flash[..0x400], &block[..]);
    }

    #[test]
    fn an_interrupted_session_is_reported() {
        let mut l = loader();
        l.input(&req(FLASH_BEGIN, &words(&[0x2000, 2, 0x400, 0]), 0));
        let mut d = words(&[0x400, 0, 0, 0]);
        d.extend([0x11u8; 0x400]);
        l.input(&req(FLASH_DATA, &d, checksum(&[0x11u8; 0x400]) as u32));
        let why = l.unfinished().unwrap();
        assert!(
            why.contains("1 of 2 blocks") && why.contains("no FLASH_END"),
            "{why}"
        );
        let a = l.input(&req(FLASH_END, &words(&[1]), 0));
        assert!(a
            .iter()
            .any(|x| matches!(x, Action::Note(n) if n.contains("FLASH_END early"))));
        assert!(
            a.contains(&Action::BootFromFlash),
            "run user code, whatever is there"
        );
    }

    #[test]
    fn a_bad_length_or_stray_data_block_fails() {
        let mut l = loader();
        let mut d = words(&[4, 0, 0, 0]);
        d.extend([1, 2, 3, 4]);
        let a = l.input(&req(FLASH_DATA, &d, checksum(&[1, 2, 3, 4]) as u32));
        assert_eq!(answers(&a)[0].2, [1, ERR_FAILED], "no FLASH_BEGIN");
        let mut p = vec![0x00, READ_REG, 9, 0, 0, 0, 0, 0];
        p.extend(words(&[CHIP_MAGIC_REG]));
        let a = l.input(&slip::encode(&p));
        assert_eq!(
            answers(&a)[0].2,
            [1, ERR_INVALID],
            "length field says 9, 4 came"
        );
    }
}
