//! `mqtt-hil emulate`: the emulated board as a bench board. QEMU runs the
//! lx106 board with its UART on a socket; this process bridges that UART to
//! a pty (the board's "USB adapter", which the `serial` target opens with
//! the real serialport code) and takes reset, power and boot-mode commands
//! on a control socket, which a bench file's `reset_command`,
//! `power_command` and `bootloader_command` call through `mqtt-hil emulate
//! ctl`. A power cycle replaces QEMU but keeps the pty, as unplugging a
//! board's supply keeps its USB adapter. So CI drives the serial target
//! through exactly the code a bench uses, minus the copper.
//!
//! Boot mode: `bootloader` on the control socket is GPIO0 held low at
//! reset. QEMU stops and the pty is answered by the emulated ROM serial
//! loader ([`crate::esp::rom`]), at the line rate the flasher set on the
//! port (10 bits a byte), writing into the board's flash file. FLASH_END
//! with "run", a `reset` or a power cycle leaves it; the board then boots
//! from flash through our boot ROM (`firmware/build/bootrom.elf`), which
//! loads the ESP8266 image as the chip's ROM does, unless `--kernel` names
//! an ELF to run directly.
//!
//! At every reset the line first carries the ROM's boot banner as a reader
//! at the port's rate sees a 74880-baud text: garbage ([`crate::esp::baud`]),
//! exactly the noise a bench board makes. Our boot ROM's own lines come
//! after it at the application's rate, for diagnosis.
//!
//! Files in the emulator's folder: `uart` (symlink to the pty), `control.sock`,
//! `qmp.sock`, `uart.sock` (QEMU's side), `qemu.log` (QEMU's stderr),
//! `loader.log` (what the ROM loader noticed: bad blocks, interrupted writes).

pub mod line;
pub mod pty;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::process::Child;

use crate::error::{Error, Result};
use crate::esp::rom;
use crate::target::qemu;

/// What `mqtt-hil emulate serve` is given.
#[derive(Clone, Debug)]
pub struct Config {
    pub dir: PathBuf,
    /// The fault proxy's lane the board's TCP goes to (guestfwd splice).
    pub proxy: std::net::SocketAddr,
    /// An ELF to run directly (`-kernel`); `None` boots from flash through
    /// the boot ROM.
    pub kernel: Option<PathBuf>,
    /// The boot ROM that loads the image from flash.
    pub bootrom: PathBuf,
    /// The board's 4 MiB flash file; default `DIR/flash.bin`.
    pub flash: Option<PathBuf>,
    /// `mqtt-hil` itself, for the guestfwd's splice.
    pub splice: PathBuf,
}

impl Config {
    pub fn uart(&self) -> PathBuf {
        self.dir.join("uart")
    }
    pub fn control(&self) -> PathBuf {
        self.dir.join("control.sock")
    }
    fn flash(&self) -> PathBuf {
        self.flash
            .clone()
            .unwrap_or_else(|| self.dir.join("flash.bin"))
    }
}

/// A running QEMU and its UART connection.
struct Running {
    child: Child,
    uart: tokio::net::unix::OwnedWriteHalf,
}

struct Emulator {
    cfg: Config,
    pty: std::sync::Arc<pty::Pty>,
    qemu: PathBuf,
    running: Option<Running>,
    uart_rx: Option<tokio::net::unix::OwnedReadHalf>,
    /// In the ROM's serial loader (GPIO0 was low at reset).
    loader: Option<Line>,
    /// Flash blocks the line will damage (`line-noise N`, for tests).
    noise: u32,
}

/// The ROM loader on a line that runs at the port's baud rate.
struct Line {
    loader: rom::Loader<FileFlash>,
    rx: line::Direction,
    tx: line::Direction,
    /// Bytes on the wire toward the loader, with when their last byte has
    /// arrived: the pty is read as soon as the port's user writes, so the
    /// line's schedule starts from when they were written, not from when
    /// the emulator was done sleeping on the bytes before them.
    inbound: VecDeque<(tokio::time::Instant, Vec<u8>)>,
    /// Answers on the wire toward the port, with when their last byte has
    /// crossed.
    outbound: VecDeque<(tokio::time::Instant, Vec<u8>)>,
}

/// Bytes on their way to the loader past which the pty is no longer read:
/// its buffer fills and the writer blocks, as on a tty that drains at the
/// line's rate (a flasher waits for each block's answer, far below this).
const MAX_INBOUND: usize = 64 << 10;

impl Line {
    fn next_due(&self) -> Option<tokio::time::Instant> {
        let a = self.inbound.front().map(|x| x.0);
        let b = self.outbound.front().map(|x| x.0);
        a.into_iter().chain(b).min()
    }

    fn inbound_bytes(&self) -> usize {
        self.inbound.iter().map(|x| x.1.len()).sum()
    }
}

/// Sleeps until `deadline`, to well under a millisecond. tokio's timer
/// ticks in whole milliseconds and rounds each sleep up to the next tick:
/// at 921600 baud a flash block's answer (14 bytes, 0.15 ms) came up to a
/// millisecond late, every block, which a UART never is. So the timer
/// sleeps to within a tick, and the OS's own sleep (microseconds) does the
/// rest on this thread; the rest is under a millisecond and nothing else
/// needs the thread then (the port's user is waiting for these bytes).
async fn sleep_until_exact(deadline: tokio::time::Instant) {
    let tick = Duration::from_millis(1);
    if let Some(coarse) = deadline.checked_sub(tick) {
        if tokio::time::Instant::now() < coarse {
            tokio::time::sleep_until(coarse).await;
        }
    }
    let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        std::thread::sleep(rest);
    }
}

async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(t) => sleep_until_exact(t).await,
        None => std::future::pending().await,
    }
}

/// The board's flash file as the ROM loader's flash chip.
pub struct FileFlash {
    file: std::fs::File,
    size: u32,
}

impl FileFlash {
    pub fn open(path: &Path) -> std::io::Result<FileFlash> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let size = file.metadata()?.len() as u32;
        Ok(FileFlash { file, size })
    }
}

impl rom::Flash for FileFlash {
    fn size(&self) -> u32 {
        self.size
    }
    fn erase(&mut self, offset: u32, len: u32) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(&vec![0xFF; len as usize], offset as u64)
    }
    fn program(&mut self, offset: u32, data: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut cells = vec![0u8; data.len()];
        self.file.read_exact_at(&mut cells, offset as u64)?;
        for (c, d) in cells.iter_mut().zip(data) {
            *c &= d;
        }
        self.file.write_all_at(&cells, offset as u64)
    }
}

/// Runs until SIGTERM/SIGINT or a `quit` on the control socket.
pub async fn serve(cfg: Config) -> Result<i32> {
    std::fs::create_dir_all(&cfg.dir)
        .map_err(|e| Error::io(format!("creating {}", cfg.dir.display()), e))?;
    qemu::Qemu::prepare_flash(&cfg.flash())?;
    let pty = std::sync::Arc::new(
        pty::Pty::open(Some(&cfg.uart()))
            .map_err(|e| Error::io("opening the emulated board's pty", e))?,
    );
    let _ = std::fs::remove_file(cfg.control());
    let control = UnixListener::bind(cfg.control())
        .map_err(|e| Error::io(format!("binding {}", cfg.control().display()), e))?;
    let mut emu = Emulator {
        qemu: qemu::Qemu::find_program()?,
        pty: pty.clone(),
        cfg,
        running: None,
        uart_rx: None,
        loader: None,
        noise: 0,
    };
    emu.power_on()
        .await
        .map_err(|e| Error::env(e, "see qemu.log in the emulator's folder"))?;
    println!(
        "emulated board: port {} (pty {}), control {}",
        emu.cfg.uart().display(),
        pty.slave_path().display(),
        emu.cfg.control().display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("SIGTERM handler", e))?;
    let mut from_port = [0u8; 4096];
    let mut from_board = [0u8; 4096];
    loop {
        let reading = emu
            .loader
            .as_ref()
            .is_none_or(|l| l.inbound_bytes() < MAX_INBOUND);
        let due = emu.loader.as_ref().and_then(Line::next_due);
        tokio::select! {
            n = pty.read(&mut from_port), if reading => {
                let n = n.map_err(|e| Error::io("reading the pty", e))?;
                if let Some(r) = emu.running.as_mut() {
                    // A board that stopped reading is the board's problem.
                    let _ = r.uart.write_all(&from_port[..n]).await;
                } else if let Some(line) = emu.loader.as_mut() {
                    let now = tokio::time::Instant::now();
                    let at = line.rx.carry(now, n, pty.baud());
                    line.inbound.push_back((at, from_port[..n].to_vec()));
                }
            }
            _ = until(due) => emu.line_due(&pty).await,
            n = read_opt(&mut emu.uart_rx, &mut from_board) => match n {
                Ok(n) if n > 0 => { pty.write_or_drop(&from_board[..n]); }
                _ => {
                    // QEMU closed the UART: it exited. The board is off
                    // until the next reset or power command.
                    emu.uart_rx = None;
                    if let Some(mut r) = emu.running.take() {
                        let status = r.child.wait().await.ok();
                        eprintln!("emulated board: QEMU exited ({status:?}); see {}", emu.cfg.dir.join("qemu.log").display());
                    }
                }
            },
            conn = control.accept() => {
                let Ok((conn, _)) = conn else { continue };
                if emu.control(conn).await {
                    break;
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    emu.power_off().await;
    let _ = std::fs::remove_file(emu.cfg.uart());
    let _ = std::fs::remove_file(emu.cfg.control());
    Ok(0)
}

async fn read_opt(
    rx: &mut Option<tokio::net::unix::OwnedReadHalf>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match rx {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

impl Emulator {
    /// Answers one control connection; true when asked to quit.
    async fn control(&mut self, conn: UnixStream) -> bool {
        let (rd, mut wr) = conn.into_split();
        let mut line = String::new();
        if BufReader::new(rd).read_line(&mut line).await.is_err() {
            return false;
        }
        let (reply, quit) = match line.trim() {
            "reset" => (self.reset().await, false),
            "power-cycle" => {
                self.power_off().await;
                (self.power_on().await, false)
            }
            "power-off" => {
                self.power_off().await;
                (Ok(()), false)
            }
            "bootloader" => (self.bootloader().await, false),
            cmd if cmd.starts_with("line-noise ") => match cmd[11..].trim().parse() {
                Ok(n) => {
                    self.noise = n;
                    if let Some(line) = self.loader.as_mut() {
                        line.loader.line_noise(n);
                    }
                    (Ok(()), false)
                }
                Err(_) => (Err(format!("`{cmd}`: line-noise takes a block count")), false),
            },
            "quit" => (Ok(()), true),
            other => (
                Err(format!(
                    "unknown command `{other}`: use reset, bootloader, power-cycle, power-off, line-noise N or quit"
                )),
                false,
            ),
        };
        let text = match reply {
            Ok(()) => "ok\n".to_string(),
            Err(e) => format!("err {}\n", e.replace('\n', " | ")),
        };
        let _ = wr.write_all(text.as_bytes()).await;
        quit
    }

    /// What the ROM prints after a reset, at 74880 baud, as the port's
    /// user (at its own rate) reads it: the boot noise of a real board.
    fn rom_noise(&self, cause: u8, loader: bool) {
        let banner = crate::esp::baud::rom_banner(cause, loader);
        let seen = crate::esp::baud::misread(banner.as_bytes(), 74880, self.pty.baud());
        self.pty.write_or_drop(&seen);
    }

    /// The EN pin with GPIO0 low: the CPU restarts in the ROM's loader.
    async fn bootloader(&mut self) -> Result<(), String> {
        self.power_off().await;
        self.rom_noise(2, true);
        let flash = FileFlash::open(&self.cfg.flash())
            .map_err(|e| format!("opening {}: {e}", self.cfg.flash().display()))?;
        let now = tokio::time::Instant::now();
        let mut loader = rom::Loader::new(flash, 115200);
        loader.line_noise(self.noise);
        self.loader = Some(Line {
            loader,
            rx: line::Direction::new(now),
            tx: line::Direction::new(now),
            inbound: VecDeque::new(),
            outbound: VecDeque::new(),
        });
        self.note("entered the ROM serial loader");
        Ok(())
    }

    fn note(&self, what: &str) {
        use std::io::Write;
        eprintln!("emulated board: {what}");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cfg.dir.join("loader.log"))
        {
            let _ = writeln!(f, "{what}");
        }
    }

    /// What is due on the loader's line: requests whose last byte has
    /// arrived go to the loader, answers whose last byte has crossed go to
    /// the port. An answer starts when its request had arrived (the
    /// schedule's time, not this wake-up's), so a late wake-up delays no
    /// later byte.
    async fn line_due(&mut self, pty: &pty::Pty) {
        let baud = pty.baud();
        let Some(line) = self.loader.as_mut() else {
            return;
        };
        line.loader.baud = baud;
        let now = tokio::time::Instant::now();
        let (mut notes, mut boot) = (Vec::new(), false);
        while line.inbound.front().is_some_and(|x| x.0 <= now) {
            let (arrived, bytes) = line.inbound.pop_front().expect("a front");
            for a in line.loader.input(&bytes) {
                match a {
                    rom::Action::Send(b) => {
                        let at = line.tx.carry(arrived, b.len(), baud);
                        line.outbound.push_back((at, b));
                    }
                    rom::Action::BootFromFlash => boot = true,
                    rom::Action::Note(n) => notes.push(n),
                }
            }
        }
        while let Some((at, b)) = line.outbound.pop_front() {
            // Leaving the loader: its last answers (FLASH_END's) go out
            // first, on time.
            if at > now && !boot {
                line.outbound.push_front((at, b));
                break;
            }
            sleep_until_exact(at).await;
            let _ = pty.write_all(&b).await;
        }
        for n in notes {
            self.note(&n);
        }
        if boot {
            self.note("FLASH_END: leaving the loader, booting from flash");
            if let Err(e) = self.power_on().await {
                self.note(&format!("boot failed: {e}"));
            }
        }
    }

    /// Leaves the loader, saying what it left unfinished.
    fn leave_loader(&mut self) {
        if let Some(line) = self.loader.take() {
            if let Some(why) = line.loader.unfinished() {
                self.note(&format!("left the loader with a {why}"));
            }
        }
    }

    /// The EN pin: a warm reset of a running board, a boot of a stopped one.
    async fn reset(&mut self) -> Result<(), String> {
        if self.running.is_some() {
            let qmp = self.cfg.dir.join("qmp.sock");
            let mut r = qemu::qmp_command(&qmp, "system_reset").await;
            // A QEMU started a moment ago may not listen on QMP yet.
            for _ in 0..20 {
                if r.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
                r = qemu::qmp_command(&qmp, "system_reset").await;
            }
            self.rom_noise(2, false);
            r
        } else {
            self.power_on().await
        }
    }

    async fn power_off(&mut self) {
        self.leave_loader();
        self.uart_rx = None;
        if let Some(mut r) = self.running.take() {
            crate::process::kill(&mut r.child).await;
        }
    }

    async fn power_on(&mut self) -> Result<(), String> {
        self.leave_loader();
        self.rom_noise(1, false);
        let dir = &self.cfg.dir;
        let uart_sock = dir.join("uart.sock");
        let qmp = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&uart_sock);
        let _ = std::fs::remove_file(&qmp);
        let log_path = dir.join("qemu.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let (ip, port) = qemu::GUEST_BROKER;
        let mut cmd = tokio::process::Command::new(&self.qemu);
        cmd.args([
            "-M",
            "lx60-nommu",
            "-cpu",
            "lx106",
            "-nographic",
            "-monitor",
            "none",
        ])
        .arg("-chardev")
        .arg(format!(
            "socket,id=s0,path={},server=on,wait=on",
            uart_sock.display()
        ))
        .args(["-serial", "chardev:s0"])
        .arg("-kernel")
        .arg(self.cfg.kernel.as_ref().unwrap_or(&self.cfg.bootrom))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,file={}",
            self.cfg.flash().display()
        ))
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,restrict=on,guestfwd=tcp:{ip}:{port}-cmd:{} splice {}",
            self.cfg.splice.display(),
            self.cfg.proxy
        ))
        .args(["-net", "nic,netdev=n0,model=open_eth"])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp.display()));
        crate::process::guard(&mut cmd);
        cmd.stdout(std::process::Stdio::null()).stderr(log);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.qemu.display()))?;
        // QEMU waits for this connection before it runs the board, so no
        // boot output is lost.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let stream = loop {
            if let Ok(s) = UnixStream::connect(&uart_sock).await {
                break s;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "QEMU exited at start ({status}): {}",
                    tail(&log_path)
                ));
            }
            if tokio::time::Instant::now() > deadline {
                crate::process::kill(&mut child).await;
                return Err(format!(
                    "QEMU did not open its UART within 10s: {}",
                    tail(&log_path)
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // QEMU opens its QMP socket only after the UART connection: a reset
        // right after power-on must find it.
        while !qmp.exists() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (rx, tx) = stream.into_split();
        self.uart_rx = Some(rx);
        self.running = Some(Running { child, uart: tx });
        Ok(())
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// `mqtt-hil emulate ctl SOCKET COMMAND`: one command, its answer.
pub async fn ctl(socket: &Path, command: &str) -> Result<i32> {
    let conn = UnixStream::connect(socket).await.map_err(|e| {
        Error::io(
            format!(
                "connecting to the emulated board's control socket {}",
                socket.display()
            ),
            e,
        )
    })?;
    let (rd, mut wr) = conn.into_split();
    wr.write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(|e| Error::io("writing to the control socket", e))?;
    let mut line = String::new();
    let mut rd = BufReader::new(rd);
    let read = rd.read_line(&mut line);
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .map_err(|_| Error::Usage(format!("the emulated board did not answer `{command}`")))?
        .map_err(|e| Error::io("reading the control socket", e))?;
    match line.trim().strip_prefix("err ") {
        None if line.trim() == "ok" => Ok(0),
        Some(why) => {
            eprintln!("error: {command}: {why}");
            Ok(1)
        }
        None => {
            eprintln!("error: {command}: no answer (the emulator stopped?)");
            Ok(1)
        }
    }
}
