//! Flash → boot → scenarios on the emulated board, through the very path a
//! bench uses: `mqtt-hil flash` runs esptool (the real flasher) against the
//! emulated ROM serial loader on a pty; the board then boots the written
//! .bin through our boot ROM, and the serial target runs scenarios on it.
//! An interrupted flash and a corrupted image are caught and reported.
//!
//! Needs esptool (`make esptool`); a missing esptool fails these tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::runner::deviation::Deviations;
use mqtt_hil::runner::{self, RunConfig};
use mqtt_hil::target::bench::{Bench, Board};
use mqtt_hil::target::serial::flash;
use mqtt_hil::target::{Firmware, TargetSpec};

const BIN: &str = env!("CARGO_BIN_EXE_mqtt-hil");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn esptool() -> PathBuf {
    flash::find_esptool(&root()).unwrap_or_else(|e| panic!("{e}: run `make esptool`"))
}

/// An emulated board that boots from its (erased) flash, killed on drop.
struct Emulator {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    fn start() -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bootrom = root().join("firmware/build/bootrom.elf");
        assert!(
            bootrom.is_file(),
            "{}: run `make firmware`",
            bootrom.display()
        );
        let child = Command::new(BIN)
            .args(["emulate", "serve", "--dir"])
            .arg(dir.path())
            .arg("--proxy")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--bootrom")
            .arg(&bootrom)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let emu = Emulator { child, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !emu.dir.path().join("control.sock").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the emulator did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let ctl = |c: &str| {
            format!(
                "{BIN} emulate ctl {} {c}",
                emu.dir.path().join("control.sock").display()
            )
        };
        let bench = format!(
            "[[board]]\nname = \"emulated\"\nport = \"{}\"\nproxy_listen = \"127.0.0.1:{port}\"\ndial = \"10.0.2.100:1883\"\nstub = false\nreset_command = \"{}\"\npower_command = \"{}\"\nbootloader_command = \"{}\"\nboot_timeout = \"5s\"\n",
            emu.dir.path().join("uart").display(),
            ctl("reset"),
            ctl("power-cycle"),
            ctl("bootloader"),
        );
        std::fs::write(emu.bench_file(), bench).unwrap();
        emu
    }

    fn bench_file(&self) -> PathBuf {
        self.dir.path().join("bench.toml")
    }

    fn board(&self) -> Board {
        Bench::load(&self.bench_file()).unwrap().boards.remove(0)
    }

    /// `mqtt-hil flash` with esptool (these tests are about esptool's path).
    fn flash_cmd(&self, firmware: &Path) -> Command {
        self.flash_cmd_with(firmware, "esptool")
    }

    fn flash_cmd_with(&self, firmware: &Path, flasher: &str) -> Command {
        let mut c = Command::new(BIN);
        c.args([
            "flash",
            "--flasher",
            flasher,
            "--target",
            "serial:emulated",
            "--bench",
        ])
        .arg(self.bench_file())
        .arg(firmware)
        .env("MQTT_HIL_ESPTOOL", esptool())
        .current_dir(root());
        c
    }

    fn loader_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("loader.log")).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_with_esptool_then_boot_then_run_scenarios() {
    let emu = Emulator::start();
    let agent = root().join("firmware/build/agent.elf");
    let out = emu.flash_cmd(&agent).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mqtt-hil flash failed:\n{text}");
    assert!(text.contains("booted: @ready fw=mqtt-hil-agent"), "{text}");
    assert!(
        !emu.loader_log().contains("interrupted"),
        "{}",
        emu.loader_log()
    );
    // The board now runs the image from its flash, resets included.
    for id in ["board_reset_mid_qos2_out", "power_loss_persistent_session"] {
        let scenario = root().join(format!("scenarios/{id}.toml"));
        let s = mqtt_hil::scenario::load(&scenario).unwrap();
        let work = tempfile::tempdir().unwrap();
        let cfg = RunConfig {
            broker: BrokerSpec::Mosquitto,
            target: TargetSpec::Serial("emulated".into()),
            workdir: work.path().to_path_buf(),
            firmware: Firmware {
                root: root(),
                splice: PathBuf::from(BIN),
                bench: Some(Bench::load(&emu.bench_file()).unwrap()),
                net: Default::default(),
                ..Default::default()
            },
            deviations: Deviations::load(&root().join("scenarios"), "mosquitto").unwrap(),
        };
        let o = runner::run(&s, &cfg).await;
        assert!(
            o.acceptable(),
            "{id}: {:?}\n{}\n{}",
            o.status,
            o.failure_text(),
            mqtt_hil::trace::render(&o.name, &o.history)
        );
    }
}

/// The same path with espflash 2.1 in process (`--flasher espflash`): no
/// Python; the image lands whole, header last, and boots into the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_with_espflash_then_boot() {
    let emu = Emulator::start();
    let agent = root().join("firmware/build/agent.elf");
    let out = emu
        .flash_cmd_with(&agent, "espflash")
        .env("MQTT_HIL_ESPTOOL", "/nonexistent/esptool")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "mqtt-hil flash --flasher espflash failed:\n{text}"
    );
    assert!(text.contains("with espflash"), "{text}");
    assert!(text.contains("booted: @ready fw=mqtt-hil-agent"), "{text}");
    let log = emu.loader_log();
    assert!(!log.contains("interrupted"), "{log}");
    // Header last: the last FLASH_BEGIN the loader saw was at 0x0, after
    // the body's at 0x1000.
    let begins: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("FLASH_BEGIN at ").nth(1))
        .collect();
    assert!(
        begins.len() >= 3
            && begins[begins.len() - 2].starts_with("0x1000:")
            && begins[begins.len() - 1].starts_with("0x0:"),
        "{log}"
    );
    let elf = std::fs::read(&agent).unwrap();
    let img = mqtt_hil::esp::image::from_elf(&elf, mqtt_hil::esp::image::DEFAULT_PARAMS).unwrap();
    let flash_file = std::fs::read(emu.dir.path().join("flash.bin")).unwrap();
    assert_eq!(&flash_file[..img.len()], &img[..]);
}

/// An unknown `--flasher` is refused before anything is touched, naming
/// the flag and the choices.
#[test]
fn an_unknown_flasher_is_refused_naming_the_flag() {
    let out = Command::new(BIN)
        .args([
            "flash",
            "--target",
            "serial:/dev/null",
            "--bench",
            "/nonexistent.toml",
        ])
        .args(["--flasher", "esptool.py", "fw.elf"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--flasher") && err.contains("esptool.py") && err.contains("espflash"),
        "{err}"
    );
}

/// A flash cut off mid-way (Ctrl-C during the body) leaves a blank header
/// sector: the loader logs the unfinished write, the boot ROM refuses the
/// image, and the boot check says so instead of timing out mutely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_flash_is_detected_and_reported() {
    let emu = Emulator::start();
    let agent = root().join("firmware/build/agent.elf");
    let child = emu
        .flash_cmd(&agent)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it blank the header and get into the body, then interrupt.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !emu.loader_log().contains("FLASH_BEGIN at 0x1000") {
        assert!(
            std::time::Instant::now() < deadline,
            "the body write never began: {}",
            emu.loader_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling a child we started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("the flash is incomplete"), "{err}");
    let board = emu.board();
    let e = flash::boot_check(&board, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("refused the image") && e.contains("bootrom: no image at flash 0x0"),
        "{e}"
    );
    assert!(
        emu.loader_log().contains("interrupted"),
        "{}",
        emu.loader_log()
    );
}

/// An image whose bytes changed after it was written (here: one bit in the
/// flash file) fails the boot ROM's checksum, and the report says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_image_in_flash_is_refused_at_boot() {
    let emu = Emulator::start();
    let elf = std::fs::read(root().join("firmware/build/agent.elf")).unwrap();
    let mut img =
        mqtt_hil::esp::image::from_elf(&elf, mqtt_hil::esp::image::DEFAULT_PARAMS).unwrap();
    img[100] ^= 0x04; // inside the IRAM segment
    let ctl = |c: &str| {
        let s = Command::new(BIN)
            .args(["emulate", "ctl"])
            .arg(emu.dir.path().join("control.sock"))
            .arg(c)
            .status()
            .unwrap();
        assert!(s.success(), "ctl {c}");
    };
    ctl("power-off");
    let flash_file = emu.dir.path().join("flash.bin");
    let mut f = std::fs::read(&flash_file).unwrap();
    f[..img.len()].copy_from_slice(&img);
    std::fs::write(&flash_file, f).unwrap();
    let e = flash::boot_check(&emu.board(), Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("refused the image") && e.contains("checksum mismatch"),
        "{e}"
    );
}

/// A noisy line: the loader refuses a block whose checksum fails (nothing
/// damaged is written), esptool sends it again and the flash ends up right;
/// a line too noisy for esptool's three attempts fails the flash with
/// advice, and what is in flash is never the damaged data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_line_is_survived_or_reported_never_written() {
    let emu = Emulator::start();
    let img = mqtt_hil::esp::image::write_v1(
        0x4010_0000,
        &[mqtt_hil::esp::image::Segment {
            addr: 0x4010_0000,
            data: (0..200u32).map(|i| (i * 13) as u8).collect(),
        }],
        mqtt_hil::esp::image::DEFAULT_PARAMS,
    )
    .unwrap();
    let bin = emu.dir.path().join("tiny.bin");
    std::fs::write(&bin, &img).unwrap();
    let ctl = |c: &str| {
        assert!(Command::new(BIN)
            .args(["emulate", "ctl"])
            .arg(emu.dir.path().join("control.sock"))
            .arg(c)
            .status()
            .unwrap()
            .success());
    };
    let flash_file = emu.dir.path().join("flash.bin");
    ctl("line-noise 1");
    let out = emu.flash_cmd(&bin).arg("--no-boot-check").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        emu.loader_log().contains("failed its checksum"),
        "{}",
        emu.loader_log()
    );
    assert_eq!(&std::fs::read(&flash_file).unwrap()[..img.len()], &img[..]);

    ctl("line-noise 3");
    let out = emu.flash_cmd(&bin).arg("--no-boot-check").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("esptool failed") && err.contains("corrupted data"),
        "{err}"
    );
    let flash = std::fs::read(&flash_file).unwrap();
    assert!(
        flash[..img.len()].iter().all(|&b| b == 0xFF),
        "erased by FLASH_BEGIN, never written with damaged data"
    );
}
