//! `cargo bench --bench flash`: flashing throughput through the emulated
//! ESP8266 ROM serial loader, next to the serial line's own limit.
//!
//! esptool (the real flasher, ROM only: `--no-stub`) writes the agent's
//! image (`firmware/build/agent.elf` as a .bin) to an emulated board in its
//! ROM loader over a pty. The loader runs the line at the rate the flasher
//! set on the port, 10 bits a byte both ways, so the line's limit is baud/10
//! bytes a second. At 115200 esptool syncs as with a real chip; at 921600 it
//! is told the loader is already synced (`--before no-reset-no-sync`): the
//! ESP8266 ROM has no CHANGE_BAUDRATE, and esptool only syncs at 115200.
//! What the figures compare is the protocol's cost on the line (per 1 KiB
//! block: a 24-byte header, SLIP escapes, a 12-byte answer, and one
//! round trip) against the bare line. Flash erase and program times of a
//! real chip are not modelled.
//!
//! espflash 2.1 writes the same image in process through the same loader
//! at the same two rates, side by side: its write is timed as esptool's
//! "Wrote ... in T seconds" is (after sync and detection).
//!
//! Last, the loader alone, in process (no line): what the emulation costs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mqtt_hil::esp::{image, rom, slip};
use mqtt_hil::target::bench::{Bench, Board};
use mqtt_hil::target::serial::espflash;
use mqtt_hil::target::serial::flash::{Entry, Write};

const BIN: &str = env!("CARGO_BIN_EXE_mqtt-hil");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

struct Emulator(std::process::Child, tempfile::TempDir);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ctl(dir: &Path, cmd: &str) {
    let ok = Command::new(BIN)
        .args(["emulate", "ctl"])
        .arg(dir.join("control.sock"))
        .arg(cmd)
        .status()
        .unwrap()
        .success();
    assert!(ok, "emulate ctl {cmd}");
}

/// Seconds and bytes of esptool's own "Wrote N bytes ... in T seconds".
fn esptool_figures(out: &str) -> Option<(u64, f64)> {
    let l = out.lines().find(|l| l.starts_with("Wrote "))?;
    let bytes = l.split_whitespace().nth(1)?.parse().ok()?;
    let secs = l
        .split(" in ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((bytes, secs))
}

/// A bench board on the emulator's pty flashing at `baud`.
fn board(uart: &Path, baud: u32) -> Board {
    let text = format!(
        "[[board]]\nport = \"{}\"\nproxy_listen = \"127.0.0.1:9\"\nflash_baud = {baud}\nstub = false\n",
        uart.display()
    );
    Bench::parse(Path::new("bench.toml"), &text)
        .unwrap()
        .boards
        .remove(0)
}

/// The loader alone, in process: how long it takes over the image, and
/// how many bytes the write puts on the line both ways (every FLASH_BEGIN
/// and FLASH_DATA request as framed, escapes included, and every answer).
fn loader_alone(img: &[u8]) -> (Duration, usize) {
    let mut l = rom::Loader::new(vec![0xFFu8; 4 << 20], 115200);
    let req = |op: u8, data: &[u8], chk: u32| {
        let mut p = vec![0x00, op];
        p.extend_from_slice(&(data.len() as u16).to_le_bytes());
        p.extend_from_slice(&chk.to_le_bytes());
        p.extend_from_slice(data);
        slip::encode(&p)
    };
    let blocks: Vec<Vec<u8>> = img
        .chunks(0x400)
        .map(|c| {
            let mut b = c.to_vec();
            b.resize(0x400, 0xFF);
            b
        })
        .collect();
    let started = Instant::now();
    let mut wire = 0;
    let mut send = |l: &mut rom::Loader<Vec<u8>>, bytes: Vec<u8>| {
        wire += bytes.len();
        for a in l.input(&bytes) {
            if let rom::Action::Send(b) = a {
                wire += b.len();
            }
        }
    };
    let mut begin = Vec::new();
    for w in [img.len() as u32, blocks.len() as u32, 0x400, 0] {
        begin.extend(w.to_le_bytes());
    }
    send(&mut l, req(rom::FLASH_BEGIN, &begin, 0));
    for (seq, b) in blocks.iter().enumerate() {
        let mut d = Vec::new();
        for w in [0x400u32, seq as u32, 0, 0] {
            d.extend(w.to_le_bytes());
        }
        d.extend(b);
        send(&mut l, req(rom::FLASH_DATA, &d, image::checksum(b) as u32));
    }
    let t = started.elapsed();
    assert_eq!(&l.flash()[..img.len()], img);
    (t, wire)
}

fn main() {
    let esptool = mqtt_hil::target::serial::flash::find_esptool(&root())
        .unwrap_or_else(|e| panic!("{e}: run `make esptool`"));
    let elf = std::fs::read(root().join("firmware/build/agent.elf"))
        .expect("firmware/build/agent.elf: run `make firmware`");
    let img = image::from_elf(&elf, image::DEFAULT_PARAMS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("agent.bin");
    std::fs::write(&bin, &img).unwrap();
    let child = Command::new(BIN)
        .args(["emulate", "serve", "--dir"])
        .arg(dir.path())
        .args(["--proxy", "127.0.0.1:9", "--bootrom"])
        .arg(root().join("firmware/build/bootrom.elf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let emu = Emulator(child, dir);
    let d = emu.1.path().to_path_buf();
    while !d.join("control.sock").exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "flash through the emulated ROM loader: {} bytes (agent image), ROM only (no stub, no compression)",
        img.len()
    );
    // (baud, esptool (wall, write s), espflash (wall, write s)).
    let mut rows = Vec::new();
    for (baud, before) in [(115200u32, "no-reset"), (921600, "no-reset-no-sync")] {
        ctl(&d, "bootloader");
        let started = Instant::now();
        let out = Command::new(&esptool)
            .args(["--chip", "esp8266", "--port"])
            .arg(d.join("uart"))
            .args(["--baud", &baud.to_string(), "--before", before])
            .args(["--after", "no-reset", "--no-stub", "write-flash", "0x0"])
            .arg(&bin)
            .output()
            .unwrap();
        let wall = started.elapsed();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "esptool at {baud}:\n{text}");
        let (bytes, secs) = esptool_figures(&text).expect("esptool's Wrote line");
        assert_eq!(bytes as usize, img.len());
        let flash = std::fs::read(d.join("flash.bin")).unwrap();
        assert_eq!(
            &flash[..img.len()],
            &img[..],
            "esptool: the flash holds the image"
        );

        // espflash in process, the same write; its sync happens at `baud`
        // (the ROM autobauds on SYNC), outside the timed write as esptool's
        // own figure leaves its sync out.
        // Zero the image's bytes first, so that what is read back below is
        // espflash's write and not esptool's.
        ctl(&d, "power-off");
        let mut flash = std::fs::read(d.join("flash.bin")).unwrap();
        flash[..img.len()].fill(0);
        std::fs::write(d.join("flash.bin"), flash).unwrap();
        ctl(&d, "bootloader");
        let board = board(&d.join("uart"), baud);
        let started = Instant::now();
        let mut f = espflash::connect(&board, Entry::Command).expect("espflash connects");
        let w = Write {
            offset: 0,
            bytes: img.clone(),
            what: "image",
        };
        let t = Instant::now();
        espflash::write(&board, &mut f, &w).expect("espflash writes");
        let ef_secs = t.elapsed().as_secs_f64();
        drop(f);
        let ef_wall = started.elapsed();
        let flash = std::fs::read(d.join("flash.bin")).unwrap();
        assert_eq!(
            &flash[..img.len()],
            &img[..],
            "espflash: the flash holds the image"
        );
        rows.push((baud, (wall, secs), (ef_wall, ef_secs)));
    }
    println!(
        "{:>8} {:>10} | {:>10} {:>10} {:>7} | {:>10} {:>10} {:>7}",
        "baud", "line B/s", "esptool", "B/s", "of line", "espflash", "B/s", "of line"
    );
    for (baud, (w1, s1), (w2, s2)) in rows {
        let line = baud as f64 / 10.0;
        let (p1, p2) = (img.len() as f64 / s1, img.len() as f64 / s2);
        println!(
            "{baud:>8} {line:>10.0} | {:>9.2}s {p1:>10.0} {:>6.1}% | {:>9.2}s {p2:>10.0} {:>6.1}%",
            s1,
            100.0 * p1 / line,
            s2,
            100.0 * p2 / line,
        );
        println!(
            "{:>8} {:>10} | wall {:>5.2}s (process, sync, erase) | wall {:>5.2}s (connect, erase)",
            "",
            "",
            w1.as_secs_f64(),
            w2.as_secs_f64()
        );
    }
    let flash = std::fs::read(d.join("flash.bin")).unwrap();
    assert_eq!(&flash[..img.len()], &img[..], "the flash holds the image");
    let (t, wire) = loader_alone(&img);
    println!(
        "the protocol's ceiling: {wire} bytes on the line for {} ({:.1}% of the line at any baud, were every answer and next block back to back)",
        img.len(),
        100.0 * img.len() as f64 / wire as f64
    );
    println!(
        "loader alone (in process, no line): {:.1} ms for the image, {:.0} MB/s",
        t.as_secs_f64() * 1e3,
        img.len() as f64 / t.as_secs_f64() / 1e6
    );
}
