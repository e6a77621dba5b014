//! `mqtt-hil flash --flasher esptool`: writes an ESP8266 image to a bench board with esptool
//! (run as a subprocess), then checks that the board boots into the agent.
//!
//! Why esptool and not espflash 2.1 as a library: espflash 2.1 is the last
//! release that knows the ESP8266 and on it never raises the baud rate and
//! never compresses (it talks to the ROM loader only), while esptool, the
//! vendor's maintained tool, uploads its RAM stub to a real board and then
//! flashes at the bench's `flash_baud` with compression — several times
//! faster for the same .bin. The emulated board answers as the ROM loader
//! does and runs no RAM code, so its bench sets `stub = false`.
//!
//! The image goes in three writes: the first sector is made blank, then the
//! rest of the image is written, and the first sector (the header) last.
//! A write cut short at any point therefore leaves a flash whose first byte
//! is 0xFF, which the boot ROM refuses ("no image") instead of jumping into
//! half-written code; [`boot_check`] reports that as what it is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::esp::image;
use crate::target::bench::{Board, ResetVia};

/// The header sector, written last.
pub const HEADER_SECTOR: usize = 0x1000;

/// One esptool write: bytes at a flash offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub offset: u32,
    pub bytes: Vec<u8>,
    pub what: &'static str,
}

/// The writes for an image, header sector last (see the module docs).
pub fn plan(img: &[u8]) -> Vec<Write> {
    if img.len() <= HEADER_SECTOR {
        return vec![Write {
            offset: 0,
            bytes: img.to_vec(),
            what: "image",
        }];
    }
    vec![
        Write {
            offset: 0,
            bytes: vec![0xFF; HEADER_SECTOR],
            what: "blank header sector",
        },
        Write {
            offset: HEADER_SECTOR as u32,
            bytes: img[HEADER_SECTOR..].to_vec(),
            what: "image body",
        },
        Write {
            offset: 0,
            bytes: img[..HEADER_SECTOR].to_vec(),
            what: "image header",
        },
    ]
}

/// Reads a firmware file: an ELF becomes an image, a .bin must already be
/// one the ROM would boot.
pub fn load_image(path: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let img = if bytes.starts_with(b"\x7fELF") {
        image::from_elf(&bytes, image::DEFAULT_PARAMS)
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?
    } else {
        bytes
    };
    image::parse(&img).map_err(|e| {
        Error::Usage(format!(
            "{} is not an image the ESP8266 would boot: {e}; nothing was written",
            path.display()
        ))
    })?;
    Ok(img)
}

/// How the board gets into its ROM loader and out again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// esptool pulses DTR/RTS itself (the auto-reset circuit).
    Lines,
    /// The bench's bootloader_command put it there; FLASH_END runs the app.
    Command,
}

/// esptool's arguments for one write.
pub fn esptool_args(
    board: &Board,
    w: &Path,
    offset: u32,
    entry: Entry,
    first: bool,
    last: bool,
) -> Vec<String> {
    let before = match (entry, first) {
        (Entry::Lines, true) => "default-reset",
        _ => "no-reset",
    };
    let after = match (entry, last) {
        (_, false) => "no-reset",
        (Entry::Lines, true) => "hard-reset",
        // "Run user code": FLASH_END through the protocol itself.
        (Entry::Command, true) => "soft-reset",
    };
    let mut a: Vec<String> = vec![
        "--chip".into(),
        "esp8266".into(),
        "--port".into(),
        board.port.display().to_string(),
        "--baud".into(),
        board.flash_baud.to_string(),
        "--before".into(),
        before.into(),
        "--after".into(),
        after.into(),
    ];
    if !board.stub {
        a.push("--no-stub".into());
    }
    a.extend([
        "write-flash".into(),
        format!("{offset:#x}"),
        w.display().to_string(),
    ]);
    a
}

/// Finds esptool: $MQTT_HIL_ESPTOOL, then PATH, then `make esptool`'s venv.
pub fn find_esptool(root: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MQTT_HIL_ESPTOOL") {
        return Ok(PathBuf::from(p));
    }
    for name in ["esptool", "esptool.py"] {
        if let Some(p) = crate::process::find_program(name) {
            return Ok(p);
        }
    }
    let venv = root.join(".cache/esptool/bin/esptool");
    if venv.is_file() {
        return Ok(venv);
    }
    Err(Error::env(
        "esptool is not installed",
        "`make esptool` puts it in .cache/esptool (a Python venv with esptool from PyPI; needs Debian's python3-venv), or `pipx install esptool`; or set MQTT_HIL_ESPTOOL",
    ))
}

/// What esptool's failure means at a bench, from its output.
pub fn hint(output: &str, board: &Board) -> String {
    let port = board.port.display();
    if output.contains("Failed to connect") || output.contains("No serial data received") {
        format!("the board did not answer as a ROM loader on {port}: check the cable and the auto-reset circuit, or hold FLASH (GPIO0) while pressing RESET; without DTR/RTS set `bootloader_command` in the bench file")
    } else if output.contains("This chip is")
        || output.contains("Wrong chip")
        || output.contains("Unexpected chip")
    {
        format!("the chip on {port} is not an ESP8266 (see esptool's words above): is `chip` right in the bench file, or is this another board's port?")
    } else if output.contains("Permission denied") {
        "add your user to the `dialout` group (`sudo usermod -aG dialout $USER`, then log in again)"
            .into()
    } else if output.contains("busy") || output.contains("Resource temporarily unavailable") {
        format!("another program has {port} open (a serial monitor, another mqtt-hil); `fuser -v {port}`")
    } else if output.contains("checksum") || output.contains("Failed to write") {
        "the line corrupted data (a loose cable, too high a flash_baud?): try again at a lower flash_baud".into()
    } else {
        "see esptool's output above".into()
    }
}

/// Whether the port can drive the auto-reset circuit (a pty cannot).
pub fn has_lines(board: &Board) -> Result<bool> {
    let mut port = super::open(&board.port, board.baud)?;
    Ok(match port.write_data_terminal_ready(false) {
        Ok(()) => true,
        Err(e) if super::reset::no_lines(&std::io::Error::from(e.clone())) => false,
        Err(e) => {
            return Err(Error::env(
                format!("setting DTR on {}: {e}", board.port.display()),
                "check the adapter",
            ))
        }
    })
}

/// Puts the board into its ROM loader: by the auto-reset lines if the
/// flasher may pulse them, else by the bench's `bootloader_command`.
pub async fn enter(board: &Board) -> Result<Entry> {
    if board.reset == ResetVia::Lines && has_lines(board)? {
        return Ok(Entry::Lines);
    }
    let cmd = board.bootloader_command.as_deref().ok_or_else(|| {
        Error::env(
            format!(
                "{} cannot be put into its ROM loader: the port has no DTR/RTS lines (or the bench says reset = \"command\") and board `{}` has no `bootloader_command`",
                board.port.display(),
                board.name
            ),
            "add a bootloader_command to the bench file (e.g. a relay holding GPIO0 low through a reset), or use an adapter with DTR/RTS",
        )
    })?;
    super::run_command(cmd, "bootloader_command")
        .await
        .map_err(|e| Error::env(e, "check the bench file's bootloader_command"))?;
    Ok(Entry::Command)
}

/// Flashes `img` onto the board with esptool (the board entered its
/// loader as `entry` says); prints esptool's progress as it goes.
pub async fn flash(
    board: &Board,
    img: &[u8],
    esptool: &Path,
    work: &Path,
    entry: Entry,
) -> Result<()> {
    let writes = plan(img);
    let n = writes.len();
    for (i, w) in writes.iter().enumerate() {
        let file = work.join(format!("write-{i}.bin"));
        std::fs::write(&file, &w.bytes)
            .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
        let args = esptool_args(board, &file, w.offset, entry, i == 0, i + 1 == n);
        eprintln!(
            "flash: {} ({} bytes at {:#x}) on {}",
            w.what,
            w.bytes.len(),
            w.offset,
            board.port.display()
        );
        let mut cmd = tokio::process::Command::new(esptool);
        crate::process::guard(&mut cmd);
        cmd.args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
            .await
            .map_err(|_| {
                Error::env(
                    format!("esptool did not finish the {} within 10 min", w.what),
                    "check the board and the line",
                )
            })?
            .map_err(|e| Error::io(format!("running {}", esptool.display()), e))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            let tail: Vec<&str> = text.lines().filter(|l| !l.contains("Writing at")).collect();
            let tail = tail[tail.len().saturating_sub(12)..].join("\n    ");
            return Err(Error::env(
                format!(
                    "esptool failed writing the {} to {} ({}); its last output:\n    {tail}",
                    w.what,
                    board.port.display(),
                    out.status
                ),
                hint(&text, board),
            ));
        }
        if let Some(l) = text.lines().find(|l| l.starts_with("Wrote ")) {
            eprintln!("flash: {l}");
        }
    }
    Ok(())
}

/// Resets the board (lines, else the reset command) and watches the port
/// until the agent's `@ready`; on failure the error quotes what the board
/// printed (a boot ROM's "no image" or "checksum mismatch", a crash report)
/// so an interrupted or corrupted flash reads as one.
pub async fn boot_check(board: &Board, timeout: Duration) -> Result<String> {
    let mut port = super::open(&board.port, board.baud)?;
    let _ = port.clear(serialport::ClearBuffer::Input);
    let lines_reset = board.reset == ResetVia::Lines
        && super::reset::run(&mut super::PortLines(port.as_mut()), super::reset::RUN)
            == super::reset::Outcome::Done;
    if !lines_reset {
        if let Some(cmd) = &board.reset_command {
            super::run_command(cmd, "reset_command")
                .await
                .map_err(|e| Error::env(e, "check the bench file's reset_command"))?;
        }
    }
    let lines = tokio::task::spawn_blocking(move || {
        let mut port = port;
        let mut split = super::uart::LineSplitter::new();
        let mut seen: Vec<String> = Vec::new();
        let deadline = std::time::Instant::now() + timeout;
        let mut buf = [0u8; 512];
        while std::time::Instant::now() < deadline {
            match std::io::Read::read(&mut port, &mut buf) {
                Ok(n) if n > 0 => {
                    for l in split.push(&buf[..n]) {
                        let ready = l.starts_with("@ready");
                        seen.push(l);
                        if ready {
                            return (true, seen);
                        }
                    }
                }
                _ => {}
            }
        }
        (false, seen)
    })
    .await
    .map_err(|e| Error::Usage(format!("boot check: {e}")))?;
    let (ok, seen) = lines;
    let shown = seen[seen.len().saturating_sub(12)..].join("\n    ");
    if ok {
        return Ok(seen.last().cloned().unwrap_or_default());
    }
    let why = if seen
        .iter()
        .any(|l| l.contains("no image") || l.contains("checksum mismatch"))
    {
        "the boot ROM refused the image in flash: an interrupted or corrupted flash; flash it again"
    } else if seen.iter().any(|l| l.contains("!! exception")) {
        "the firmware crashed while booting"
    } else if seen.is_empty() {
        "the board printed nothing: is it powered, and is `baud` right?"
    } else {
        "the firmware printed no @ready: is it the mqtt-hil agent?"
    };
    Err(Error::env(
        format!(
            "board {} did not boot into the agent within {}: {why}; it printed:\n    {}",
            board.name,
            crate::scenario::duration::format(timeout),
            if shown.is_empty() {
                "(nothing)".into()
            } else {
                shown
            }
        ),
        "see above",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(stub: bool) -> Board {
        let text = format!(
            "[[board]]\nport = \"/dev/ttyUSB0\"\nproxy_listen = \"127.0.0.1:1\"\nflash_baud = 460800\nstub = {stub}\n"
        );
        crate::target::bench::Bench::parse(Path::new("b.toml"), &text)
            .unwrap()
            .boards
            .remove(0)
    }

    #[test]
    fn the_header_sector_is_blanked_first_and_written_last() {
        let img: Vec<u8> = (0..0x3000u32).map(|i| i as u8).collect();
        let p = plan(&img);
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].offset, p[0].bytes.clone()), (0, vec![0xFF; 0x1000]));
        assert_eq!((p[1].offset, &p[1].bytes[..]), (0x1000, &img[0x1000..]));
        assert_eq!((p[2].offset, &p[2].bytes[..]), (0, &img[..0x1000]));
        assert_eq!(plan(&img[..100]).len(), 1);
    }

    #[test]
    fn esptool_resets_through_the_lines_or_leaves_by_flash_end() {
        let b = board(true);
        let f = Path::new("/tmp/x.bin");
        let a = esptool_args(&b, f, 0x1000, Entry::Lines, true, false).join(" ");
        assert_eq!(
            a,
            "--chip esp8266 --port /dev/ttyUSB0 --baud 460800 --before default-reset --after no-reset write-flash 0x1000 /tmp/x.bin"
        );
        let a = esptool_args(&b, f, 0, Entry::Lines, false, true).join(" ");
        assert!(a.contains("--before no-reset --after hard-reset"), "{a}");
        let a = esptool_args(&board(false), f, 0, Entry::Command, false, true).join(" ");
        assert!(
            a.contains("--before no-reset --after soft-reset --no-stub"),
            "{a}"
        );
    }

    #[test]
    fn esptool_failures_become_bench_advice() {
        let b = board(true);
        assert!(hint("A fatal error occurred: Failed to connect to ESP8266", &b).contains("GPIO0"));
        assert!(hint("This chip is ESP32-C3, not ESP8266.", &b).contains("not an ESP8266"));
        assert!(hint("could not open port: [Errno 13] Permission denied", &b).contains("dialout"));
    }

    #[test]
    fn a_corrupted_bin_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut img = image::write_v1(
            0x4010_0000,
            &[image::Segment {
                addr: 0x4010_0000,
                data: vec![7; 64],
            }],
            image::DEFAULT_PARAMS,
        )
        .unwrap();
        let f = dir.path().join("fw.bin");
        std::fs::write(&f, &img).unwrap();
        assert!(load_image(&f).is_ok());
        img[30] ^= 0x40;
        std::fs::write(&f, &img).unwrap();
        let e = load_image(&f).unwrap_err().to_string();
        assert!(
            e.contains("checksum mismatch") && e.contains("nothing was written"),
            "{e}"
        );
    }
}
