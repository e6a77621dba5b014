//! `mqtt-hil flash --flasher espflash`: writes the image in process with
//! espflash 2.1 (the last release that knows the ESP8266), no Python.
//!
//! espflash's own ESP8266 path (`write_bin_to_flash`) ends every write with
//! FLASH_END, which starts the application: three writes would boot a
//! half-written flash twice. So this module uses espflash's connection and
//! command layer (sync, chip detection, SPI flash detection, the framing
//! and checksums of FLASH_BEGIN/FLASH_DATA) and sends the same plan as the
//! esptool path ([`super::flash::plan`]): header sector blanked first,
//! written last, one FLASH_END at the very end. A write cut short leaves a
//! blank first sector that the boot ROM refuses.
//!
//! The ESP8266 ROM has no CHANGE_BAUDRATE, and espflash never changes the
//! rate on it; the ROM autobauds on SYNC, so the port is opened at the
//! bench's `flash_baud` and espflash syncs at that rate. No stub, no
//! compression (the ROM has neither). Ports without DTR/RTS (a pty) answer
//! ENOTTY, which espflash treats as fatal: [`Port`] makes the lines no-ops
//! when the board enters its loader by `bootloader_command`.

use std::io::Read;
use std::time::Duration;

use espflash::command::{Command, CommandType};
use espflash::flasher::Flasher;
use espflash::interface::Interface;
use espflash::targets::Chip;
use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits};

use super::flash::{plan, Entry, Write};
use crate::error::{Error, Result};
use crate::esp::rom::SECTOR;
use crate::target::bench::Board;

/// The ESP8266 ROM's flash block (esptool's and espflash's FLASH_WRITE_SIZE).
pub const BLOCK: usize = 0x400;

/// The erase size to ask for so that the ROM's erase bug (it erases the
/// sectors up to the next 64 KiB block twice over, see
/// [`crate::esp::rom::rom_erase_len`]) erases just what is needed; the
/// correction esptool and espflash both make.
pub fn erase_size(offset: u32, size: u32) -> u32 {
    let n = size.div_ceil(SECTOR);
    let head = (16 - (offset / SECTOR) % 16).min(n);
    if n < 2 * head {
        n.div_ceil(2) * SECTOR
    } else {
        (n - head) * SECTOR
    }
}

/// A serial port whose DTR/RTS are no-ops unless `lines` (see module docs).
struct Port {
    inner: Box<dyn SerialPort>,
    lines: bool,
}

impl Read for Port {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl std::io::Write for Port {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl SerialPort for Port {
    fn name(&self) -> Option<String> {
        self.inner.name()
    }
    fn baud_rate(&self) -> serialport::Result<u32> {
        self.inner.baud_rate()
    }
    fn data_bits(&self) -> serialport::Result<DataBits> {
        self.inner.data_bits()
    }
    fn flow_control(&self) -> serialport::Result<FlowControl> {
        self.inner.flow_control()
    }
    fn parity(&self) -> serialport::Result<Parity> {
        self.inner.parity()
    }
    fn stop_bits(&self) -> serialport::Result<StopBits> {
        self.inner.stop_bits()
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
    fn set_baud_rate(&mut self, b: u32) -> serialport::Result<()> {
        self.inner.set_baud_rate(b)
    }
    fn set_data_bits(&mut self, d: DataBits) -> serialport::Result<()> {
        self.inner.set_data_bits(d)
    }
    fn set_flow_control(&mut self, f: FlowControl) -> serialport::Result<()> {
        self.inner.set_flow_control(f)
    }
    fn set_parity(&mut self, p: Parity) -> serialport::Result<()> {
        self.inner.set_parity(p)
    }
    fn set_stop_bits(&mut self, s: StopBits) -> serialport::Result<()> {
        self.inner.set_stop_bits(s)
    }
    fn set_timeout(&mut self, t: Duration) -> serialport::Result<()> {
        self.inner.set_timeout(t)
    }
    fn write_request_to_send(&mut self, level: bool) -> serialport::Result<()> {
        if self.lines {
            self.inner.write_request_to_send(level)
        } else {
            Ok(())
        }
    }
    fn write_data_terminal_ready(&mut self, level: bool) -> serialport::Result<()> {
        if self.lines {
            self.inner.write_data_terminal_ready(level)
        } else {
            Ok(())
        }
    }
    fn read_clear_to_send(&mut self) -> serialport::Result<bool> {
        self.inner.read_clear_to_send()
    }
    fn read_data_set_ready(&mut self) -> serialport::Result<bool> {
        self.inner.read_data_set_ready()
    }
    fn read_ring_indicator(&mut self) -> serialport::Result<bool> {
        self.inner.read_ring_indicator()
    }
    fn read_carrier_detect(&mut self) -> serialport::Result<bool> {
        self.inner.read_carrier_detect()
    }
    fn bytes_to_read(&self) -> serialport::Result<u32> {
        self.inner.bytes_to_read()
    }
    fn bytes_to_write(&self) -> serialport::Result<u32> {
        self.inner.bytes_to_write()
    }
    fn clear(&self, b: ClearBuffer) -> serialport::Result<()> {
        self.inner.clear(b)
    }
    fn try_clone(&self) -> serialport::Result<Box<dyn SerialPort>> {
        Ok(Box::new(Port {
            inner: self.inner.try_clone()?,
            lines: self.lines,
        }))
    }
    fn set_break(&self) -> serialport::Result<()> {
        self.inner.set_break()
    }
    fn clear_break(&self) -> serialport::Result<()> {
        self.inner.clear_break()
    }
}

/// espflash's error, with the port and what to check.
fn failed(board: &Board, doing: &str, e: espflash::error::Error) -> Error {
    let port = board.port.display();
    let text = e.to_string();
    let hint = match e {
        espflash::error::Error::Connection(_) => format!(
            "the board did not answer as a ROM loader on {port}: check the cable and the auto-reset circuit, or hold FLASH (GPIO0) while pressing RESET; without DTR/RTS set `bootloader_command` in the bench file; a flash_baud above 115200 relies on the ROM's autobaud, try 115200"
        ),
        espflash::error::Error::ChipDetectError(_) => format!(
            "the chip on {port} is not an ESP8266: is this another board's port?"
        ),
        espflash::error::Error::RomError(_) => "the loader refused a block (a loose cable, too high a flash_baud?): try again at a lower flash_baud".into(),
        _ => "check the board and the line".into(),
    };
    Error::env(format!("espflash failed {doing} on {port}: {text}"), hint)
}

/// Opens the port at `flash_baud` and connects espflash to the ROM loader
/// (sync, chip and flash detection); blocking. The board is already in its
/// loader when `entry` is `Command`.
pub fn connect(board: &Board, entry: Entry) -> Result<Flasher> {
    let port = Port {
        inner: super::open(&board.port, board.flash_baud)?,
        lines: entry == Entry::Lines,
    };
    let info = serialport::UsbPortInfo {
        vid: 0,
        pid: 0,
        serial_number: None,
        manufacturer: None,
        product: None,
    };
    let iface = Interface {
        serial_port: Box::new(port),
    };
    let f = Flasher::connect(iface, info, Some(board.flash_baud), false)
        .map_err(|e| failed(board, "connecting", e))?;
    if f.chip() != Chip::Esp8266 {
        return Err(Error::env(
            format!(
                "the chip on {} is an {}, not an ESP8266",
                board.port.display(),
                f.chip()
            ),
            "is `chip` right in the bench file, or is this another board's port?",
        ));
    }
    Ok(f)
}

/// One FLASH_BEGIN and its blocks; no FLASH_END.
pub fn write(board: &Board, f: &mut Flasher, w: &Write) -> Result<()> {
    let conn = f.connection();
    let erase = erase_size(w.offset, w.bytes.len() as u32);
    let blocks = w.bytes.len().div_ceil(BLOCK) as u32;
    conn.with_timeout(CommandType::FlashBegin.timeout_for_size(erase), |c| {
        c.command(Command::FlashBegin {
            size: erase,
            blocks,
            block_size: BLOCK as u32,
            offset: w.offset,
            supports_encryption: false,
        })
    })
    .map_err(|e| failed(board, &format!("starting the {}", w.what), e))?;
    for (i, block) in w.bytes.chunks(BLOCK).enumerate() {
        // A block the ROM refused (its checksum failed on a noisy line)
        // is sent again, three attempts in all, as esptool does; espflash
        // 2.1 itself gives up at the first.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match conn.command(Command::FlashData {
                data: block,
                pad_to: BLOCK,
                pad_byte: 0xFF,
                sequence: i as u32,
            }) {
                Ok(_) => break,
                Err(espflash::error::Error::RomError(_)) if attempt < 3 => continue,
                Err(e) => {
                    return Err(failed(
                        board,
                        &format!("writing block {i} of the {} ({attempt} attempts)", w.what),
                        e,
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Flashes `img` in process (blocking: run it on a blocking thread).
pub fn flash(board: &Board, img: &[u8], entry: Entry) -> Result<()> {
    let mut f = connect(board, entry)?;
    for w in plan(img) {
        eprintln!(
            "flash: {} ({} bytes at {:#x}) on {} (espflash)",
            w.what,
            w.bytes.len(),
            w.offset,
            board.port.display()
        );
        write(board, &mut f, &w)?;
    }
    // "Run user code", as espflash's own ESP8266 finish does; no answer is
    // awaited (the ROM may already be gone). boot_check resets anyway.
    let conn = f.connection();
    conn.write_command(Command::FlashEnd { reboot: false })
        .map_err(|e| failed(board, "ending the flash", e))?;
    conn.flush()
        .map_err(|e| failed(board, "ending the flash", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esp::rom::rom_erase_len;

    /// The corrected size and the ROM's bug, as the emulated loader
    /// models it, cancel out: the sectors the write needs are erased, at
    /// most one more. (The loader's tests had their own copy of the
    /// correction; this is the one the flashers' plan uses.)
    #[test]
    fn erase_sizes_cancel_the_rom_erase_bug() {
        for offset in [0, 0x1000, 0xF000, 0x10000, 0x23000] {
            for size in [1u32, 0x1000, 0x1001, 0x8000, 0x10000, 0x2_3456] {
                let need = size.div_ceil(SECTOR) * SECTOR;
                let erased = rom_erase_len(offset, erase_size(offset, size));
                assert!(
                    erased >= need && erased <= need + SECTOR,
                    "{offset:#x}+{size:#x}: {erased:#x}"
                );
            }
        }
    }
}
