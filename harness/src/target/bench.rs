//! Bench files: the boards on a bench, in TOML. Parsed raw (serde, unknown
//! keys refused with their position), then checked into [`Board`], the domain
//! type the serial target and the flasher use, so every mistake is reported
//! once, with the file, the line and what to write instead.
//!
//! ```toml
//! [[board]]
//! name = "nodemcu-1"                # how --target serial:NAME may pick it
//! port = "/dev/ttyUSB0"
//! chip = "esp8266"
//! baud = 115200                     # the agent's UART
//! flash_baud = 460800               # flashing (the ROM loader autobauds)
//! wifi = { ssid = "lab", password = "secret" }
//! proxy_listen = "0.0.0.0:18830"    # the fault proxy's lane for this board
//! dial = "192.168.1.10:18830"       # what the device dials to reach it
//! reset = "lines"                   # lines | command
//! reset_command = "..."             # when reset = "command" (or no lines)
//! power_command = "uhubctl -l 1-1 -p 2 -a cycle"
//! bootloader_command = "..."        # enter the ROM loader without lines
//! stub = true                       # esptool's RAM stub (false: ROM only)
//! fqbn = "esp8266:esp8266:nodemcuv2"  # arduino-cli board (or ...:d1_mini)
//! boot_timeout = "20s"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::scenario::fields::Source;

/// Chips the agent and the flasher support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chip {
    Esp8266,
}

/// How the harness resets the board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetVia {
    /// The NodeMCU/Wemos auto-reset circuit: RTS drives EN, DTR drives
    /// GPIO0. A port without these lines (a pty) falls back to the commands.
    Lines,
    /// Only the bench's commands (e.g. a relay or a switchable USB hub).
    Command,
}

/// One board on the bench, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    pub name: String,
    pub port: PathBuf,
    pub chip: Chip,
    pub baud: u32,
    pub flash_baud: u32,
    pub wifi: Option<Wifi>,
    /// Where the fault proxy's lane for this board listens.
    pub proxy_listen: SocketAddr,
    /// What the device dials to reach that lane (host, port).
    pub dial: (String, u16),
    pub reset: ResetVia,
    pub reset_command: Option<String>,
    pub power_command: Option<String>,
    pub bootloader_command: Option<String>,
    /// Flash through esptool's stub (faster: higher baud, compression);
    /// false talks to the ROM loader only (the emulated board's case).
    pub stub: bool,
    /// The arduino-cli board the agent is built for.
    pub fqbn: String,
    pub boot_timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wifi {
    pub ssid: String,
    pub password: String,
}

/// A bench file, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bench {
    pub file: PathBuf,
    pub boards: Vec<Board>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBench {
    #[serde(default)]
    board: Vec<toml::Spanned<RawBoard>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    name: Option<String>,
    port: String,
    chip: Option<toml::Spanned<String>>,
    baud: Option<toml::Spanned<u32>>,
    flash_baud: Option<toml::Spanned<u32>>,
    wifi: Option<RawWifi>,
    proxy_listen: toml::Spanned<String>,
    dial: Option<toml::Spanned<String>>,
    reset: Option<toml::Spanned<String>>,
    reset_command: Option<String>,
    power_command: Option<String>,
    bootloader_command: Option<String>,
    stub: Option<bool>,
    fqbn: Option<toml::Spanned<String>>,
    boot_timeout: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWifi {
    ssid: String,
    #[serde(default)]
    password: String,
}

/// Baud rates an ESP8266's UART and USB adapters commonly run.
const BAUDS: &[u32] = &[
    9600, 19200, 38400, 57600, 74880, 115200, 230400, 256000, 460800, 921600, 1500000, 2000000,
];

impl Bench {
    pub fn load(file: &Path) -> Result<Bench> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("reading bench file {}", file.display()), e))?;
        Bench::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Bench> {
        let src = Source { path: file, text };
        let at = |offset: usize, message: String| src.error(src.line_of(offset), message);
        let raw: RawBench = toml::from_str(text).map_err(|e| src.syntax_error(&e))?;
        if raw.board.is_empty() {
            return Err(at(
                0,
                "no [[board]] in this bench file: add one with at least `port` and `proxy_listen`"
                    .into(),
            ));
        }
        let mut boards: Vec<Board> = Vec::new();
        for spanned in raw.board {
            let start = spanned.span().start;
            let b = check_board(spanned.into_inner(), &|o: Option<usize>, m: String| {
                at(o.unwrap_or(start), m)
            })?;
            if let Some(dup) = boards.iter().find(|o| o.name == b.name || o.port == b.port) {
                return Err(at(
                    start,
                    format!(
                        "board `{}` uses the name or port of board `{}` ({}): each board needs its own",
                        b.name,
                        dup.name,
                        dup.port.display()
                    ),
                ));
            }
            boards.push(b);
        }
        Ok(Bench {
            file: file.to_path_buf(),
            boards,
        })
    }

    /// The board `--target serial:WHICH` names, by port or by name.
    pub fn board(&self, which: &Path) -> Result<&Board> {
        self.boards
            .iter()
            .find(|b| b.port == which || Path::new(&b.name) == which)
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .boards
                    .iter()
                    .map(|b| format!("{} ({})", b.name, b.port.display()))
                    .collect();
                Error::Usage(format!(
                    "{} describes no board on port or named `{}`; it has: {}",
                    self.file.display(),
                    which.display(),
                    known.join(", ")
                ))
            })
    }
}

type At<'a> = dyn Fn(Option<usize>, String) -> Error + 'a;

fn check_board(raw: RawBoard, at: &At) -> Result<Board> {
    let chip = match &raw.chip {
        None => Chip::Esp8266,
        Some(c) => match c.get_ref().to_ascii_lowercase().as_str() {
            "esp8266" | "esp8266ex" => Chip::Esp8266,
            other => {
                return Err(at(
                    Some(c.span().start),
                    format!(
                        "chip `{other}` is not supported: mqtt-hil's agent and flasher target the ESP8266 (`chip = \"esp8266\"`)"
                    ),
                ))
            }
        },
    };
    let baud = |v: &Option<toml::Spanned<u32>>, key: &str, default: u32| -> Result<u32> {
        match v {
            None => Ok(default),
            Some(b) if BAUDS.contains(b.get_ref()) => Ok(*b.get_ref()),
            Some(b) => Err(at(
                Some(b.span().start),
                format!(
                    "`{key} = {}` is not a rate the ESP8266 and USB adapters use: one of {}",
                    b.get_ref(),
                    BAUDS
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    };
    let baud_rate = baud(&raw.baud, "baud", 115200)?;
    let flash_baud = baud(&raw.flash_baud, "flash_baud", 115200)?;
    let proxy_listen: SocketAddr = raw.proxy_listen.get_ref().parse().map_err(|_| {
        at(
            Some(raw.proxy_listen.span().start),
            format!(
                "proxy_listen `{}` is not an address: write IP:PORT, e.g. \"0.0.0.0:18830\"",
                raw.proxy_listen.get_ref()
            ),
        )
    })?;
    let dial = match &raw.dial {
        Some(d) => {
            let s = d.get_ref();
            let parsed = s
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .filter(|(h, _)| h.parse::<std::net::Ipv4Addr>().is_ok());
            parsed.ok_or_else(|| {
                at(
                    Some(d.span().start),
                    format!(
                        "dial `{s}` must be IPv4:PORT (the agent resolves no names), e.g. \"192.168.1.10:18830\""
                    ),
                )
            })?
        }
        None if proxy_listen.ip().is_unspecified() => {
            return Err(at(
                Some(raw.proxy_listen.span().start),
                format!(
                    "proxy_listen {proxy_listen} listens on every address, so add `dial`: the bench host's address as the board sees it, e.g. \"192.168.1.10:{}\"",
                    proxy_listen.port()
                ),
            ))
        }
        None => (proxy_listen.ip().to_string(), proxy_listen.port()),
    };
    let reset = match &raw.reset {
        None => ResetVia::Lines,
        Some(r) => match r.get_ref().as_str() {
            "lines" => ResetVia::Lines,
            "command" => ResetVia::Command,
            other => {
                return Err(at(
                    Some(r.span().start),
                    format!("reset `{other}`: use \"lines\" (DTR/RTS auto-reset) or \"command\" (reset_command)"),
                ))
            }
        },
    };
    if reset == ResetVia::Command && raw.reset_command.is_none() {
        let pos = raw.reset.as_ref().map(|r| r.span().start);
        return Err(at(
            pos,
            "reset = \"command\" needs a `reset_command`".into(),
        ));
    }
    let boot_timeout = match &raw.boot_timeout {
        None => None,
        Some(t) => Some(
            crate::scenario::duration::parse(t.get_ref())
                .map_err(|e| at(Some(t.span().start), format!("boot_timeout: {e}")))?,
        ),
    };
    let fqbn = match &raw.fqbn {
        None => "esp8266:esp8266:nodemcuv2".to_string(),
        Some(f) if f.get_ref().starts_with("esp8266:esp8266:") => f.get_ref().clone(),
        Some(f) => {
            return Err(at(
                Some(f.span().start),
                format!(
                    "fqbn `{}` is not an ESP8266 board of the ESP8266 Arduino core: e.g. \"esp8266:esp8266:nodemcuv2\" or \"esp8266:esp8266:d1_mini\"",
                    f.get_ref()
                ),
            ))
        }
    };
    let port = PathBuf::from(&raw.port);
    Ok(Board {
        name: raw.name.unwrap_or_else(|| raw.port.clone()),
        port,
        chip,
        baud: baud_rate,
        flash_baud,
        wifi: raw.wifi.map(|w| Wifi {
            ssid: w.ssid,
            password: w.password,
        }),
        proxy_listen,
        dial,
        reset,
        reset_command: raw.reset_command,
        power_command: raw.power_command,
        bootloader_command: raw.bootloader_command,
        stub: raw.stub.unwrap_or(true),
        fqbn,
        boot_timeout,
    })
}

impl Board {
    /// The `arduino-cli compile` command that builds the agent for this
    /// board with its Wi-Fi credentials baked in.
    pub fn arduino_compile(&self, out_dir: &str) -> String {
        let mut c = format!(
            "arduino-cli compile --fqbn {} firmware/agent --output-dir {out_dir}",
            self.fqbn
        );
        if let Some(p) = self.wifi_build_property() {
            c.push_str(&format!(" --build-property '{}'", p.replace('\'', "'\\''")));
        }
        c
    }

    /// The `arduino-cli compile` property that bakes this board's Wi-Fi
    /// credentials into the agent (the agent protocol carries none: a board
    /// must be on the network before it prints `@ready`).
    pub fn wifi_build_property(&self) -> Option<String> {
        let w = self.wifi.as_ref()?;
        Some(format!(
            "compiler.cpp.extra_flags=-DMQTT_HIL_WIFI_SSID=\"{}\" -DMQTT_HIL_WIFI_PASS=\"{}\"",
            w.ssid.replace('"', "\\\""),
            w.password.replace('"', "\\\"")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Bench> {
        Bench::parse(Path::new("bench.toml"), text)
    }

    const MINIMAL: &str =
        "[[board]]\nport = \"/dev/ttyUSB0\"\nproxy_listen = \"127.0.0.1:18830\"\n";

    #[test]
    fn a_minimal_board_gets_the_usual_defaults() {
        let b = parse(MINIMAL).unwrap();
        let board = &b.boards[0];
        assert_eq!(board.name, "/dev/ttyUSB0");
        assert_eq!(board.chip, Chip::Esp8266);
        assert_eq!((board.baud, board.flash_baud), (115200, 115200));
        assert_eq!(board.dial, ("127.0.0.1".to_string(), 18830));
        assert_eq!(board.reset, ResetVia::Lines);
        assert!(b.board(Path::new("/dev/ttyUSB0")).is_ok());
    }

    #[test]
    fn a_full_board_reads_every_field() {
        let text = r#"
[[board]]
name = "wemos"
port = "/dev/ttyUSB1"
chip = "ESP8266"
baud = 115200
flash_baud = 921600
wifi = { ssid = "lab", password = "pw" }
proxy_listen = "0.0.0.0:18831"
dial = "192.168.1.10:18831"
reset = "command"
reset_command = "relay reset"
power_command = "uhubctl -a cycle"
bootloader_command = "relay boot"
stub = false
fqbn = "esp8266:esp8266:d1_mini"
boot_timeout = "30s"
"#;
        let b = parse(text).unwrap();
        let w = b.board(Path::new("wemos")).unwrap();
        assert_eq!(w.flash_baud, 921600);
        assert_eq!(w.dial, ("192.168.1.10".to_string(), 18831));
        assert_eq!(w.reset, ResetVia::Command);
        assert_eq!(w.boot_timeout, Some(Duration::from_secs(30)));
        assert!(!w.stub);
        assert_eq!(
            w.arduino_compile("out/wemos"),
            "arduino-cli compile --fqbn esp8266:esp8266:d1_mini firmware/agent --output-dir out/wemos --build-property 'compiler.cpp.extra_flags=-DMQTT_HIL_WIFI_SSID=\"lab\" -DMQTT_HIL_WIFI_PASS=\"pw\"'"
        );
        assert_eq!(
            w.wifi_build_property().unwrap(),
            "compiler.cpp.extra_flags=-DMQTT_HIL_WIFI_SSID=\"lab\" -DMQTT_HIL_WIFI_PASS=\"pw\""
        );
    }

    /// Each mistake is reported at its line with what to write instead.
    #[test]
    fn mistakes_name_the_line_and_the_fix() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "no [[board]]"),
            ("[[board]]\nport = \"/dev/x\"\n", 1, "missing field `proxy_listen`"),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"127.0.0.1:1\"\nchip = \"esp32\"\n",
                4,
                "chip `esp32` is not supported",
            ),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"127.0.0.1:1\"\nbaud = 12345\n",
                4,
                "not a rate",
            ),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"localhost\"\n",
                3,
                "is not an address",
            ),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"0.0.0.0:1\"\n",
                3,
                "add `dial`",
            ),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"0.0.0.0:1\"\ndial = \"bench.local:1\"\n",
                4,
                "must be IPv4:PORT",
            ),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"127.0.0.1:1\"\nreset = \"command\"\n",
                4,
                "needs a `reset_command`",
            ),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"127.0.0.1:1\"\nreset = \"magic\"\n",
                4,
                "use \"lines\"",
            ),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"127.0.0.1:1\"\nfqbn = \"esp32:esp32:esp32\"\n",
                4,
                "not an ESP8266 board",
            ),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"127.0.0.1:1\"\nspeed = 1\n",
                4,
                "unknown field `speed`",
            ),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"127.0.0.1:1\"\nboot_timeout = \"5\"\n",
                4,
                "no unit",
            ),
            (
                "[[board]]\nport = \"/dev/x\"\nproxy_listen = \"127.0.0.1:1\"\n[[board]]\nport = \"/dev/x\"\nproxy_listen = \"127.0.0.1:2\"\n",
                4,
                "each board needs its own",
            ),
        ];
        for (text, line, needle) in cases {
            let err = parse(text).unwrap_err();
            match &err {
                Error::Input {
                    line: l, message, ..
                } => {
                    assert!(message.contains(needle), "{text:?}: {message}");
                    assert_eq!(l, line, "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other}"),
            }
        }
    }

    /// The example the README points to stays valid.
    #[test]
    fn the_example_bench_parses() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/bench/example.toml");
        let b = Bench::load(&f).unwrap();
        assert_eq!(b.boards.len(), 2);
        assert_eq!(
            b.board(Path::new("d1mini")).unwrap().fqbn,
            "esp8266:esp8266:d1_mini"
        );
    }

    #[test]
    fn an_unknown_board_lists_the_known_ones() {
        let b = parse(MINIMAL).unwrap();
        let err = b.board(Path::new("/dev/ttyACM0")).unwrap_err().to_string();
        assert!(err.contains("/dev/ttyUSB0"), "{err}");
    }
}
