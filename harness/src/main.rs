//! The `mqtt-hil` command line: a thin dispatcher over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::error::Error;
use mqtt_hil::exit_codes;
use mqtt_hil::report::{self, Format, Reporters, RunEvent, Totals};
use mqtt_hil::runner::{self, RunConfig, Status};
use mqtt_hil::scenario;
use mqtt_hil::target::TargetSpec;

#[derive(Parser)]
#[command(
    name = "mqtt-hil",
    version,
    about = "Hardware-in-the-loop test harness for MQTT devices and brokers"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Everything `mqtt-hil run` takes; other subcommands that run scenarios
/// flatten it so the flags mean the same everywhere.
#[derive(Args, Clone, Debug)]
struct RunArgs {
    /// Scenario files or folders of them.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// auto (mosquitto if installed, else embedded), mosquitto (a local
    /// process), embedded (rumqttd in-process), container:IMAGE[:TAG]
    /// (e.g. container:rabbitmq; `make images` builds ours) or
    /// external:HOST:PORT.
    #[arg(long, default_value = "auto")]
    broker: String,
    /// The external broker's profile: capabilities, control hooks and
    /// known deviations from deviations/NAME.toml next to the scenarios.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// What plays the device: virtual, host, qemu, serial:PORT.
    #[arg(long, default_value = "virtual")]
    target: String,
    /// Write JUnit XML here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// The device's software: the host agent binary (--target host), a
    /// firmware ELF or an Arduino sketch folder, built first (--target
    /// qemu); default: the build in firmware/build/.
    #[arg(long)]
    firmware: Option<PathBuf>,
    /// With --firmware SKETCH_DIR: one library's folder (as for `build`).
    #[arg(long, value_name = "DIR")]
    library: Vec<PathBuf>,
    /// With --firmware SKETCH_DIR: a folder of libraries (as for `build`).
    #[arg(long, value_name = "DIR")]
    libraries: Vec<PathBuf>,
    /// Folder for traces and broker files.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Only scenarios whose id contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Stream each scenario's events and the device's UART lines as they
    /// happen.
    #[arg(short, long)]
    verbose: bool,
    /// Bench file describing the boards for --target serial:PORT.
    #[arg(long)]
    bench: Option<PathBuf>,
    /// What stdout gets: lines for people, or one JSON object per event
    /// (docs/json-events.md; the human lines then go to stderr).
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Write an HTML report (index.html, a page with a sequence diagram per
    /// scenario) into this folder.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Write the recorded traffic as a pcapng per scenario into this folder
    /// (Wireshark and tshark decode it as MQTT over TCP).
    #[arg(long, value_name = "DIR")]
    pcap: Option<PathBuf>,
    /// The emulated board's network (--target qemu): owned (the harness
    /// plays access point, DHCP, DNS and router; network faults work) or
    /// slirp (QEMU's user network, as before; no network faults).
    #[arg(long, default_value = "owned")]
    net: String,
    /// Make the board's DNS answer NAME with ADDR (repeatable); every other
    /// name resolves to the broker's address, 10.0.2.100.
    #[arg(long, value_name = "NAME=ADDR")]
    dns: Vec<String>,
    /// Run each scenario N times and report FLAKY, with the rules that
    /// differ, where the verdicts do not agree.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Run N scenarios at once, each with its own broker, proxy, device
    /// and folder; reports keep the scenarios' order whatever N. Default
    /// (README): 4 per CPU (virtual device), 2 per CPU (host), 1 per CPU
    /// (container brokers), 4 boards per CPU as memory allows (qemu), 1 for a bench
    /// board or an external broker (shared). Or MQTT_HIL_JOBS=N.
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    jobs: Option<u32>,
    /// A device description (TOML, scenarios/device/README.md): the
    /// scenarios are the generic device suite (scenarios/device/), filled
    /// in with what this device does.
    #[arg(long, value_name = "FILE")]
    device: Option<PathBuf>,
}

fn net_options(net: &str, dns: &[String]) -> Result<mqtt_hil::net::Options, Error> {
    let mut o = mqtt_hil::net::Options {
        mode: net.parse()?,
        ..Default::default()
    };
    for d in dns {
        let (name, addr) = mqtt_hil::net::parse_dns_override(d).map_err(Error::Usage)?;
        o.names.insert(name, addr);
    }
    Ok(o)
}

#[derive(Args, Clone, Debug)]
struct MatrixArgs {
    /// Every `run` flag means the same here, except that the brokers come
    /// from --brokers.
    #[command(flatten)]
    run: RunArgs,
    /// Comma-separated brokers (as --broker takes them); default: every
    /// broker this machine can run.
    #[arg(long)]
    brokers: Option<String>,
    /// Take share K of N of the scenario x broker cells (CI matrices).
    #[arg(long, default_value = "1/1")]
    partition: String,
    /// Write the results as JSON here (what `mqtt-hil merge` reads);
    /// default OUT/matrix.json.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the table as Markdown here; default OUT/matrix.md.
    #[arg(long)]
    markdown: Option<PathBuf>,
    #[command(flatten)]
    baseline: BaselineArgs,
}

/// Comparing a matrix with an earlier one (`matrix`, `merge`).
#[derive(Args, Clone, Debug)]
struct BaselineArgs {
    /// A matrix JSON of an earlier run (e.g. the last release's): after the
    /// table, list the cells that changed since; a cell that regressed
    /// fails the run, and --junit gets a test case per changed cell.
    #[arg(long, value_name = "OLD.json")]
    baseline: Option<PathBuf>,
    /// Compare the baseline's broker column OLD as NEW (a broker whose
    /// column name changed with its version, e.g. an image tag).
    #[arg(long, value_name = "OLD=NEW", requires = "baseline")]
    rename: Vec<String>,
}

#[derive(Args, Clone, Debug)]
struct DiffArgs {
    /// The baseline: a matrix JSON of an earlier run.
    old: PathBuf,
    /// The matrix JSON to compare with it.
    new: PathBuf,
    /// Also write the changes as Markdown here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also write JUnit XML here: a test case per changed cell, a
    /// regression a failure.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Compare OLD's broker column OLD_COLUMN as NEW_COLUMN.
    #[arg(long, value_name = "OLD_COLUMN=NEW_COLUMN")]
    rename: Vec<String>,
}

#[derive(Args, Clone, Debug)]
struct MergeArgs {
    /// JSON files written by `mqtt-hil matrix --json`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long)]
    markdown: Option<PathBuf>,
    #[arg(long)]
    junit: Option<PathBuf>,
    #[command(flatten)]
    baseline: BaselineArgs,
}

#[derive(Args, Clone, Debug)]
struct BuildArgs {
    /// The sketch folder (it holds NAME.ino).
    sketch: PathBuf,
    /// One library's folder (with library.properties and src/, or the old
    /// flat layout); preferred over any library of the same header.
    #[arg(long, value_name = "DIR")]
    library: Vec<PathBuf>,
    /// A folder of libraries, e.g. ~/Arduino/libraries.
    #[arg(long, value_name = "DIR")]
    libraries: Vec<PathBuf>,
    /// Copy the image (ELF) here; default: leave it in the build cache and
    /// print where.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// A preprocessor definition for the sketch and its libraries
    /// (NAME or NAME=VALUE), like arduino-cli's compiler.cpp.extra_flags.
    #[arg(short = 'D', long = "define", value_name = "NAME[=VALUE]")]
    defines: Vec<String>,
    /// Compiler warnings, as arduino-cli's --warnings.
    #[arg(long, value_enum, default_value = "none")]
    warnings: mqtt_hil::sketch::Warnings,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenario files or folders and print a verdict per scenario.
    Run(RunArgs),
    /// Run every scenario against every broker and print one conformance
    /// table (also written as Markdown and JSON).
    Matrix(MatrixArgs),
    /// How many normative statements of MQTT 3.1.1 and 5.0 the suite
    /// covers: cited by a checker, proven failing by a test, exercised by a
    /// scenario that `make test` runs.
    Coverage {
        /// The statement files (mqtt-3.1.1.toml, mqtt-5.0.toml).
        #[arg(long, default_value = "scenarios/spec")]
        spec: PathBuf,
        /// The scenario folder (its v5/ and black_box/ are read too).
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
        /// Also write the Markdown report (every statement and its evidence) here.
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Print the Markdown report instead of the table.
        #[arg(long)]
        md: bool,
    },
    /// Join the JSON results of partitioned matrix runs into one table,
    /// one Markdown file and one JUnit file.
    Merge(MergeArgs),
    /// Which cells changed between two matrix runs (JSON from `matrix
    /// --json` or `merge`): regressed, fixed, changed, new, removed. Exits
    /// 1 if a cell regressed (or a new cell fails).
    Diff(DiffArgs),
    /// List scenarios with their one-line descriptions.
    List {
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// The emulated board as a bench board: its UART on a pty for
    /// --target serial:PORT, resets and power through a control socket.
    #[command(subcommand)]
    Emulate(EmulateCmd),
    /// Flight recorder: proxy a device's traffic to a broker, print it
    /// decoded as it happens, run the traffic-only checks continuously, take
    /// fault commands on stdin (sever, blackhole, heal, refuse, accept, ...);
    /// Ctrl-C or end of input writes the events, trace, verdicts and report.
    Observe {
        /// Where the device connects instead of its broker (e.g.
        /// 127.0.0.1:1884; 0.0.0.0:1884 for a board on the bench network).
        /// Not needed with --board.
        #[arg(long, required_unless_present = "board")]
        listen: Option<std::net::SocketAddr>,
        /// Boot this firmware (an ELF or a sketch folder) on the emulated
        /// ESP8266 as the observed device, on the harness's own network:
        /// then `ip`, `wifi`, `dns` and `dhcp` commands act on its frames.
        #[arg(long, value_name = "FIRMWARE")]
        board: Option<PathBuf>,
        /// The emulated board's network: owned (default) or slirp.
        #[arg(long, default_value = "owned", requires = "board")]
        net: String,
        /// Make the board's DNS answer NAME with ADDR (repeatable).
        #[arg(long, value_name = "NAME=ADDR", requires = "board")]
        dns: Vec<String>,
        /// mosquitto (started here) or external:HOST:PORT.
        #[arg(long, default_value = "mosquitto")]
        broker: String,
        /// A TOML file of `[[invariant]]` tables (and `periodic = [...]`
        /// topics left out of the trace); default: will, keepalive,
        /// resubscribe and backoff checks of the device.
        #[arg(long)]
        checks: Option<PathBuf>,
        /// Folder for events.log, trace.txt, verdicts.txt, report/, pcap/.
        #[arg(long, default_value = "out/observe")]
        out: PathBuf,
        /// Stop after this long (e.g. 90s, 10m); without it, Ctrl-C stops
        /// the session. Commands on stdin are optional: a closed or empty
        /// stdin (a script, a CI job) does not end it.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// Flash firmware (an ELF or an ESP8266 .bin) onto a bench board with
    /// esptool or espflash, then check that it boots into the agent.
    Flash {
        /// serial:PORT (or serial:NAME of a board in the bench file).
        #[arg(long)]
        target: String,
        /// Bench file describing the board.
        #[arg(long)]
        bench: PathBuf,
        firmware: PathBuf,
        /// Do not wait for the agent's @ready afterwards.
        #[arg(long)]
        no_boot_check: bool,
        /// esptool (subprocess, `make esptool`) or espflash (in process).
        #[arg(long, default_value_t = mqtt_hil::target::serial::flasher::DEFAULT)]
        flasher: mqtt_hil::target::serial::flasher::Flasher,
    },
    /// Show the boards of a bench file: port, reset, proxy address, and the
    /// arduino-cli command that builds the agent for each (Wi-Fi included).
    Boards {
        #[arg(long)]
        bench: PathBuf,
    },
    /// Turn a firmware ELF into an ESP8266 flash image (v1 image at 0x0,
    /// flash-mapped code at its offset), the .bin that `flash` writes.
    Image {
        elf: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Build an Arduino sketch folder for the emulated ESP8266, as
    /// arduino-cli builds it for an ESP8266 board: .ino files joined and
    /// given prototypes, the sketch's .c/.cpp/.S, the libraries its headers
    /// name; prints the sizes against the ESP8266's budget.
    Build(BuildArgs),
    /// Splice stdin/stdout to a TCP address (QEMU's guestfwd runs this).
    #[command(hide = true)]
    Splice { addr: String },
}

#[derive(Subcommand)]
enum EmulateCmd {
    /// Run the emulated board; its port is DIR/uart, its control DIR/control.sock.
    Serve {
        /// Folder for the pty link, sockets, flash file and QEMU's log.
        #[arg(long)]
        dir: PathBuf,
        /// The fault proxy address the board's TCP connections go to (loopback).
        #[arg(long)]
        proxy: std::net::SocketAddr,
        /// Run this firmware ELF directly instead of booting the image in
        /// the flash through the boot ROM.
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// The boot ROM that loads the flash's ESP8266 image.
        #[arg(long, default_value = "firmware/build/bootrom.elf")]
        bootrom: PathBuf,
        /// The board's 4 MiB flash file (default DIR/flash.bin).
        #[arg(long)]
        flash: Option<PathBuf>,
    },
    /// Send one command to a running emulated board: reset, bootloader
    /// (reset into the ROM's serial loader), power-cycle, power-off, quit. Bench files call this as their reset/power command.
    Ctl { socket: PathBuf, command: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        // SIGINT, SIGTERM and SIGHUP alike (signals.rs); a second one exits
        // at once after removing containers and networks.
        let mut interrupts = match mqtt_hil::signals::Interrupts::install() {
            Ok(i) => i,
            Err(e) => return Err(Error::io("installing the signal handlers", e)),
        };
        match cli.command {
            Cmd::List { paths } => list(&paths),
            Cmd::Run(args) => {
                // `run` handles the signals itself: it reports the scenarios
                // left unfinished and marks the reports interrupted.
                run(args, interrupts.clone()).await
            }
            Cmd::Coverage {
                spec,
                scenarios,
                markdown,
                md,
            } => coverage(&spec, &scenarios, markdown.as_deref(), md),
            Cmd::Matrix(args) => {
                tokio::select! {
                    code = matrix(args) => code,
                    s = interrupts.first() => Ok(s.exit_code()),
                }
            }
            Cmd::Merge(args) => merge(args),
            Cmd::Diff(args) => diff(args),
            Cmd::Splice { addr } => mqtt_hil::splice::run(&addr).await,
            Cmd::Observe {
                listen,
                board,
                net,
                dns,
                broker,
                checks,
                out,
                duration,
            } => {
                let board = match board {
                    None => None,
                    Some(fw) => Some(mqtt_hil::observe::Board {
                        firmware: mqtt_hil::target::Firmware {
                            image: resolve_firmware(Some(fw), Vec::new(), Vec::new()).await?,
                            root: std::env::current_dir()
                                .map_err(|e| Error::io("reading the current folder", e))?,
                            splice: std::env::current_exe()
                                .map_err(|e| Error::io("finding the mqtt-hil binary", e))?,
                            boot_timeout: None,
                            bench: None,
                            net: net_options(&net, &dns)?,
                        },
                    }),
                };
                let listen =
                    listen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
                observe(listen, board, &broker, checks, out, duration, interrupts).await
            }
            Cmd::Image { elf, output } => image(&elf, &output),
            Cmd::Build(args) => tokio::task::spawn_blocking(move || build(args))
                .await
                .unwrap_or_else(|e| Err(Error::Usage(format!("the build stopped: {e}")))),
            Cmd::Boards { bench } => boards(&bench),
            Cmd::Flash {
                target,
                bench,
                firmware,
                no_boot_check,
                flasher,
            } => {
                let run = flash(&target, &bench, &firmware, no_boot_check, flasher);
                tokio::select! {
                    code = run => code,
                    s = interrupts.first() => {
                        eprintln!("the flash is incomplete; the board will refuse to boot it (flash again)");
                        Ok(s.exit_code())
                    }
                }
            }
            Cmd::Emulate(EmulateCmd::Serve {
                dir,
                proxy,
                kernel,
                bootrom,
                flash,
            }) => {
                let cfg = mqtt_hil::emulator::Config {
                    dir,
                    proxy,
                    kernel,
                    bootrom,
                    flash,
                    splice: std::env::current_exe().unwrap_or_else(|_| "mqtt-hil".into()),
                };
                mqtt_hil::emulator::serve(cfg).await
            }
            Cmd::Emulate(EmulateCmd::Ctl { socket, command }) => {
                mqtt_hil::emulator::ctl(&socket, &command).await
            }
        }
    });
    // Containers outlive the process unless removed: whatever a cancelled
    // or failed run left is removed here, on every way out.
    runtime.block_on(mqtt_hil::broker::container::sweep());
    // Dropping the runtime drops every task, and with them the child
    // processes (killed on drop), before we exit.
    drop(runtime);
    match code {
        Ok(c) => ExitCode::from(c as u8),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_codes::INVALID as u8)
        }
    }
}

/// `--duration` takes the scenario files' durations (`90s`, `1m30s`, `500ms`).
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    scenario::duration::parse(s)
}

async fn observe(
    listen: std::net::SocketAddr,
    board: Option<mqtt_hil::observe::Board>,
    broker: &str,
    checks: Option<PathBuf>,
    out: PathBuf,
    duration: Option<std::time::Duration>,
    mut interrupts: mqtt_hil::signals::Interrupts,
) -> Result<i32, Error> {
    let broker: BrokerSpec = broker.parse()?;
    let file = match &checks {
        Some(p) => scenario::load_checks(p)?,
        None => scenario::CheckFile {
            invariants: mqtt_hil::observe::default_checks(),
            periodic: Vec::new(),
        },
    };
    // stdin on a plain thread: a read blocked on a terminal must not keep
    // the runtime from shutting down. The channel closes at end of input.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while stdin.read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.blocking_send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let cfg = mqtt_hil::observe::Config {
        listen,
        board,
        broker,
        out,
        checks: file.invariants,
        periodic: file.periodic,
    };
    let stop = async move {
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interrupts.first() => {}
            _ = timer => {}
        }
    };
    let mut stdout = std::io::stdout();
    mqtt_hil::observe::run(cfg, rx, stop, &mut stdout).await
}

fn coverage(
    spec: &std::path::Path,
    scenarios: &std::path::Path,
    markdown: Option<&std::path::Path>,
    md: bool,
) -> Result<i32, Error> {
    use mqtt_hil::check::coverage;
    let reports = coverage::measure(spec, scenarios)?;
    let text = coverage::render_markdown(&reports);
    if let Some(p) = markdown {
        std::fs::write(p, &text).map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
    }
    if md {
        print!("{text}");
    } else {
        print!("{}", coverage::render_table(&reports));
    }
    Ok(exit_codes::OK)
}

/// The folders whose `deviations/` judge the scenarios given: each path's
/// own folder (a file's parent), in order, once each. The first one's
/// profile file is the broker's profile ([`Deviations::for_broker_in`]).
///
/// [`Deviations::for_broker_in`]: mqtt_hil::runner::deviation::Deviations::for_broker_in
fn scenario_folders(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let f = if p.is_dir() {
            p.clone()
        } else {
            p.parent().map(|p| p.to_path_buf()).unwrap_or_default()
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

fn load_all(paths: &[PathBuf], filter: Option<&str>) -> Result<Vec<scenario::Scenario>, Error> {
    let files = scenario::discover(paths)?;
    let mut out = Vec::new();
    for f in files {
        // A file with `versions = [...]` is one scenario per version.
        for s in scenario::load(&f)?.per_version() {
            if filter.is_none_or(|flt| s.id.contains(flt)) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

async fn flash(
    target: &str,
    bench: &std::path::Path,
    firmware: &std::path::Path,
    no_boot_check: bool,
    flasher: mqtt_hil::target::serial::flasher::Flasher,
) -> Result<i32, Error> {
    use mqtt_hil::target::serial::flash;
    let TargetSpec::Serial(port) = target.parse()? else {
        return Err(Error::Usage(format!(
            "flash needs --target serial:PORT, not `{target}` (the emulated board under --target qemu runs ELFs directly; `mqtt-hil emulate` gives it a serial port)"
        )));
    };
    let bench = mqtt_hil::target::bench::Bench::load(bench)?;
    let board = bench.board(&port)?.clone();
    let img = flash::load_image(firmware)?;
    let root = std::env::current_dir().map_err(|e| Error::io("reading the current folder", e))?;
    let work = tempfile::tempdir().map_err(|e| Error::io("creating a temporary folder", e))?;
    let started = std::time::Instant::now();
    mqtt_hil::target::serial::flasher::flash(flasher, &board, &img, &root, work.path()).await?;
    println!(
        "flashed {} ({} bytes) to {} with {flasher} in {:.1}s",
        firmware.display(),
        img.len(),
        board.port.display(),
        started.elapsed().as_secs_f64()
    );
    if !no_boot_check {
        let timeout = board.boot_timeout.unwrap_or(mqtt_hil::target::BOOT_TIMEOUT);
        let ready = flash::boot_check(&board, timeout).await?;
        println!("booted: {ready}");
    }
    Ok(exit_codes::OK)
}

fn boards(bench: &std::path::Path) -> Result<i32, Error> {
    use mqtt_hil::target::bench::{Bench, ResetVia};
    let bench = Bench::load(bench)?;
    for b in &bench.boards {
        let reset = match (&b.reset, &b.reset_command) {
            (ResetVia::Lines, Some(_)) => "DTR/RTS, else reset_command",
            (ResetVia::Lines, None) => "DTR/RTS",
            (ResetVia::Command, _) => "reset_command",
        };
        println!("{} on {} ({:?})", b.name, b.port.display(), b.chip);
        println!(
            "  uart {} baud, flash {} baud{}",
            b.baud,
            b.flash_baud,
            if b.stub { "" } else { " (ROM loader only)" }
        );
        println!(
            "  reset: {reset}; power cycle: {}",
            if b.power_command.is_some() {
                "power_command"
            } else {
                "a reset (no power_command)"
            }
        );
        println!(
            "  fault proxy listens on {}, the board dials {}:{}",
            b.proxy_listen, b.dial.0, b.dial.1
        );
        println!("  build: {}", b.arduino_compile(&format!("out/{}", b.name)));
        println!(
            "  flash: mqtt-hil flash --target serial:{} --bench {} out/{}/agent.ino.bin",
            b.name,
            bench.file.display(),
            b.name
        );
    }
    Ok(exit_codes::OK)
}

fn image(elf: &std::path::Path, output: &std::path::Path) -> Result<i32, Error> {
    use mqtt_hil::esp::image;
    let bytes =
        std::fs::read(elf).map_err(|e| Error::io(format!("reading {}", elf.display()), e))?;
    let img = image::from_elf(&bytes, image::DEFAULT_PARAMS)
        .map_err(|e| Error::Usage(format!("{}: {e}", elf.display())))?;
    let parsed = image::parse(&img).map_err(|e| Error::Usage(format!("{}: {e}", elf.display())))?;
    std::fs::write(output, &img)
        .map_err(|e| Error::io(format!("writing {}", output.display()), e))?;
    println!(
        "{}: {} bytes, entry {:#010x}, {} RAM segment(s) in the first {} bytes",
        output.display(),
        img.len(),
        parsed.entry,
        parsed.segments.len(),
        parsed.len
    );
    Ok(exit_codes::OK)
}

fn build(args: BuildArgs) -> Result<i32, Error> {
    use mqtt_hil::sketch;
    let root = std::env::current_dir().map_err(|e| Error::io("reading the current folder", e))?;
    let env = sketch::Env::discover(&root)?;
    let req = sketch::Request {
        sketch: args.sketch.clone(),
        library: args.library,
        libraries: args.libraries,
        defines: args.defines,
        warnings: args.warnings,
    };
    let started = std::time::Instant::now();
    let b = sketch::build(&req, &env)?;
    eprint!("{}", b.messages);
    for l in &b.libraries {
        println!("using library {l}");
    }
    println!("{}", b.sizes.report());
    let elf = match &args.output {
        Some(o) => {
            std::fs::copy(&b.elf, o)
                .map_err(|e| Error::io(format!("writing {}", o.display()), e))?;
            o.clone()
        }
        None => b.elf.clone(),
    };
    println!(
        "{}: {} in {:.1}s{}",
        args.sketch.display(),
        elf.display(),
        started.elapsed().as_secs_f64(),
        if b.cached {
            " (unchanged: from the cache)"
        } else {
            ""
        }
    );
    Ok(exit_codes::OK)
}

fn list(paths: &[PathBuf]) -> Result<i32, Error> {
    let all = load_all(paths, None)?;
    let width = all.iter().map(|s| s.id.len()).max().unwrap_or(0);
    for s in &all {
        println!("{:<width$}  {}", s.id, s.name);
    }
    Ok(exit_codes::OK)
}

async fn run(args: RunArgs, mut interrupts: mqtt_hil::signals::Interrupts) -> Result<i32, Error> {
    let RunArgs {
        paths,
        broker,
        profile,
        target,
        junit,
        firmware,
        out,
        filter,
        verbose,
        bench,
        format,
        report,
        pcap,
        library,
        libraries,
        net,
        dns,
        repeat,
        device,
        jobs,
    } = args;
    let repeat = repeat as usize;
    let net = net_options(&net, &dns)?;
    let broker = BrokerSpec::resolve(&broker)?.with_profile(profile)?;
    // Building a sketch can take minutes: a signal stops it too.
    let firmware = tokio::select! {
        f = resolve_firmware(firmware, library, libraries) => f?,
        s = interrupts.first() => return Ok(s.exit_code()),
    };
    let target: TargetSpec = target.parse()?;
    let bench = bench
        .map(|f| mqtt_hil::target::bench::Bench::load(&f))
        .transpose()?;
    // Every file is checked before anything starts.
    let (scenarios, skipped) = match &device {
        None => (load_all(&paths, filter.as_deref())?, Vec::new()),
        Some(d) => mqtt_hil::device::suite::load_for(d, &paths, filter.as_deref())?,
    };
    if scenarios.is_empty() && skipped.is_empty() {
        return Err(Error::Usage("no scenario matches".into()));
    }
    // What the target can never do is an input error, before anything starts.
    for s in &scenarios {
        runner::check_target(s, &target)?;
    }
    let mut reporters = Reporters::from_options(&report::Options {
        format,
        verbose,
        traces: Some(out.join("traces")),
        junit,
        html: report,
        pcap,
    })?;
    let deviations =
        mqtt_hil::runner::deviation::Deviations::for_broker_in(&scenario_folders(&paths), &broker)?;
    let cfg = RunConfig {
        deviations,
        broker: broker.clone(),
        target: target.clone(),
        workdir: std::path::absolute(out.join("work"))
            .map_err(|e| Error::io("resolving --out", e))?,
        firmware: mqtt_hil::target::Firmware {
            image: firmware,
            root: std::env::current_dir()
                .map_err(|e| Error::io("reading the current folder", e))?,
            splice: std::env::current_exe()
                .map_err(|e| Error::io("finding the mqtt-hil binary", e))?,
            boot_timeout: None,
            bench,
            net,
        },
    };
    // A bench board no scenario could start on is one error, before
    // anything runs, not the same ERROR for every scenario.
    if let TargetSpec::Serial(port) = &target {
        cfg.firmware.bench_board(port)?;
    }
    // So is a broker that cannot start for any scenario (a missing image,
    // an external broker that does not answer).
    tokio::select! {
        r = broker.preflight() => r?,
        s = interrupts.first() => return Ok(s.exit_code()),
    }
    let started = std::time::Instant::now();
    let label = broker.to_string();
    let (jobs, lowered) =
        runner::pool::effective_jobs(asked_jobs(jobs)?, &target, &broker, verbose);
    if let Some(why) = lowered {
        eprintln!("note: {why}");
    }
    // More at once than there are runs changes nothing but the lines.
    let jobs = jobs.min(scenarios.len()).max(1);
    reporters.jobs(jobs);
    reporters.report(&RunEvent::RunStarted {
        count: scenarios.len() * repeat + skipped.len(),
        brokers: vec![label.clone()],
        target: target.to_string(),
    })?;
    let mut totals = Totals::default();
    let mut environment_error = None;
    let mut interrupted = None;
    if jobs > 1 {
        let cfg = std::sync::Arc::new(cfg.clone());
        let list: Vec<runner::pool::Job> = scenarios
            .iter()
            .enumerate()
            .map(|(n, s)| runner::pool::Job {
                scenario: s.clone(),
                cfg: cfg.clone(),
                index: n * repeat,
                broker: label.clone(),
                runs: repeat,
            })
            .collect();
        let mut control = StopOnEnvironment(None);
        let (ends, sig) = runner::pool::run_pool(
            &list,
            jobs,
            &mut reporters,
            &mut control,
            interrupts.first(),
        )
        .await?;
        interrupted = sig;
        for end in &ends {
            match end {
                runner::pool::JobEnd::Done(r) => totals.add_repeated(r),
                runner::pool::JobEnd::Interrupted(f) => totals.add(&f.outcome.status),
                runner::pool::JobEnd::Left => {}
            }
        }
        environment_error = control.0;
    }
    for (n, s) in scenarios.iter().enumerate().filter(|_| jobs == 1) {
        if let Some(sig) = interrupted {
            let why = format!("not run: the run was interrupted by {sig}");
            let f = runner::report_interrupted(s, &why, n * repeat, &label, &mut reporters)?;
            totals.add(&f.outcome.status);
            continue;
        }
        // A signal drops the scenario's future: its broker, proxy, board
        // and peers are stopped by their drops (containers by the sweep
        // in main); what it recorded so far is lost with it.
        let r = tokio::select! {
            r = runner::run_repeated(s, &cfg, n * repeat, &label, repeat, &mut reporters) => r?,
            sig = interrupts.first() => {
                interrupted = Some(sig);
                let why = format!("interrupted by {sig} before it finished");
                let f = runner::report_interrupted(s, &why, n * repeat, &label, &mut reporters)?;
                totals.add(&f.outcome.status);
                continue;
            }
        };
        totals.add_repeated(&r);
        let last = &r.runs[r.runs.len() - 1];
        if let Status::Error(e) = &last.outcome.status {
            if e.contains("hint:") {
                // An environment problem will fail every scenario alike.
                environment_error = Some(e.clone());
                break;
            }
        }
    }
    // Suite files the device's description cannot fill, after the rest.
    for (i, (s, why)) in skipped.iter().enumerate() {
        let f =
            runner::report_skipped(s, why, scenarios.len() * repeat + i, &label, &mut reporters)?;
        totals.add(&f.outcome.status);
    }
    if let Some(e) = environment_error {
        // Not a finished run: nothing past this scenario was judged. The
        // reports written so far stay (they are written as scenarios end).
        eprintln!("error: {e}");
        return Ok(exit_codes::INVALID);
    }
    reporters.report(&RunEvent::RunFinished {
        totals,
        elapsed: started.elapsed(),
        interrupted,
    })?;
    Ok(interrupted.map_or(totals.exit_code(), |s| s.exit_code()))
}

/// `-j N`, else `MQTT_HIL_JOBS` (for a CI job or a test that wants one
/// scenario at a time without passing the flag), else the default.
fn asked_jobs(flag: Option<u32>) -> Result<Option<usize>, Error> {
    if let Some(j) = flag {
        return Ok(Some(j as usize));
    }
    match std::env::var("MQTT_HIL_JOBS") {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(j) if j >= 1 => Ok(Some(j)),
            _ => Err(Error::Usage(format!(
                "MQTT_HIL_JOBS=`{v}`: expected how many scenarios run at once, a number of 1 or more (as -j takes)"
            ))),
        },
    }
}

/// Under -j: an environment problem (no broker, a hint) will fail every
/// scenario alike, so none starts after it.
struct StopOnEnvironment(Option<String>);

impl runner::pool::Control for StopOnEnvironment {
    fn launch(&mut self, _k: usize) -> bool {
        self.0.is_none()
    }

    fn finished(&mut self, _k: usize, r: &mqtt_hil::report::Repeated) {
        if let Status::Error(e) = &r.runs[r.runs.len() - 1].outcome.status {
            if e.contains("hint:") && self.0.is_none() {
                self.0 = Some(e.clone());
            }
        }
    }
}

/// `--firmware SKETCH_DIR` is built first (a cache lookup when unchanged);
/// anything else is an image as it is.
async fn resolve_firmware(
    firmware: Option<PathBuf>,
    library: Vec<PathBuf>,
    libraries: Vec<PathBuf>,
) -> Result<Option<PathBuf>, Error> {
    match firmware {
        Some(f) if f.is_dir() => {
            let root =
                std::env::current_dir().map_err(|e| Error::io("reading the current folder", e))?;
            let elf = tokio::task::spawn_blocking(move || {
                mqtt_hil::sketch::firmware_image(&f, &root, &library, &libraries)
            })
            .await
            .unwrap_or_else(|e| Err(Error::Usage(format!("the build stopped: {e}"))))?;
            Ok(Some(elf))
        }
        other => Ok(other),
    }
}

async fn matrix(args: MatrixArgs) -> Result<i32, Error> {
    use mqtt_hil::matrix;
    let MatrixArgs {
        run,
        brokers,
        partition,
        json,
        markdown,
        baseline,
    } = args;
    // A bad baseline is refused before minutes of running.
    let baseline = load_baseline(&baseline)?;
    if run.broker != "auto" {
        return Err(Error::Usage(
            "matrix takes its brokers from --brokers a,b,c (default: every broker this machine can run), not --broker".into(),
        ));
    }
    let partition: matrix::Partition = partition.parse()?;
    let mut run = run;
    run.firmware = resolve_firmware(
        run.firmware.take(),
        run.library.clone(),
        run.libraries.clone(),
    )
    .await?;
    let target: TargetSpec = run.target.parse()?;
    let bench = run
        .bench
        .as_ref()
        .map(|f| mqtt_hil::target::bench::Bench::load(f))
        .transpose()?;
    let scenarios = load_all(&run.paths, run.filter.as_deref())?;
    if scenarios.is_empty() {
        return Err(Error::Usage("no scenario matches".into()));
    }
    for s in &scenarios {
        mqtt_hil::runner::check_target(s, &target)?;
    }
    let (brokers, unavailable) = match &brokers {
        Some(list) => (matrix::plan::parse_brokers(list)?, Vec::new()),
        None => matrix::available_brokers().await,
    };
    let brokers = matrix::plan::with_profile(brokers, run.profile.clone())?;
    let mut folders = scenario_folders(&run.paths);
    if folders.is_empty() {
        folders.push(PathBuf::from("scenarios"));
    }
    std::fs::create_dir_all(&run.out)
        .map_err(|e| Error::io(format!("creating {}", run.out.display()), e))?;
    for u in &unavailable {
        eprintln!("not in the matrix: {u}");
    }
    let mut reporters = Reporters::from_options(&report::Options {
        format: run.format,
        verbose: run.verbose,
        traces: Some(run.out.join("traces")),
        junit: run.junit.clone(),
        html: run.report.clone(),
        pcap: run.pcap.clone(),
    })?;
    let cfg = matrix::MatrixConfig {
        scenarios,
        brokers,
        unavailable,
        partition,
        target,
        firmware: mqtt_hil::target::Firmware {
            image: run.firmware.clone(),
            root: std::env::current_dir()
                .map_err(|e| Error::io("reading the current folder", e))?,
            splice: std::env::current_exe()
                .map_err(|e| Error::io("finding the mqtt-hil binary", e))?,
            boot_timeout: None,
            bench,
            net: net_options(&run.net, &run.dns)?,
        },
        deviations_folders: folders,
        out: run.out.clone(),
        repeat: run.repeat as usize,
        jobs: 1,
        costs: Vec::new(),
    };
    let asked = asked_jobs(run.jobs)?;
    let cfg = if asked.is_none() && !run.verbose {
        // Brokers that cost the machine differently share the machine by
        // their cost (a RabbitMQ cell takes four times a mosquitto one).
        let (places, costs) = mqtt_hil::runner::pool::weights(&cfg.target, &cfg.brokers);
        matrix::MatrixConfig {
            jobs: places,
            costs,
            ..cfg
        }
    } else {
        // The fewest any broker can take (an external one is shared).
        let mut jobs = usize::MAX;
        for b in &cfg.brokers {
            let (j, lowered) =
                mqtt_hil::runner::pool::effective_jobs(asked, &cfg.target, b, run.verbose);
            if let Some(why) = lowered.filter(|_| j < jobs) {
                eprintln!("note: {why}");
            }
            jobs = jobs.min(j);
        }
        matrix::MatrixConfig {
            jobs: jobs.max(1),
            ..cfg
        }
    };
    reporters.jobs(cfg.jobs);
    let m = matrix::run(&cfg, &mut reporters).await?;
    let changes = baseline.map(|b| b.compare(&m));
    // JUnit came from the reporters already; the changes join it.
    if let Some(c) = &changes {
        reporters.add_suite(&c.junit_suite())?;
    }
    report_matrix(
        &m,
        &run.out,
        json,
        markdown,
        None,
        changes.as_ref(),
        run.format == Format::Json,
    )
}

/// A baseline matrix, read and with its columns renamed.
struct Baseline {
    name: String,
    matrix: mqtt_hil::matrix::Matrix,
}

/// A matrix compared with its baseline.
struct Changes {
    baseline: String,
    diff: mqtt_hil::matrix::diff::Diff,
}

impl Baseline {
    fn compare(&self, m: &mqtt_hil::matrix::Matrix) -> Changes {
        Changes {
            baseline: self.name.clone(),
            diff: mqtt_hil::matrix::diff::diff(&self.matrix, m),
        }
    }
}

impl Changes {
    fn junit_suite(&self) -> quick_junit::TestSuite {
        mqtt_hil::matrix::diff_report::junit_suite(&self.diff, &self.baseline)
    }
}

fn load_baseline(args: &BaselineArgs) -> Result<Option<Baseline>, Error> {
    let Some(path) = &args.baseline else {
        return Ok(None);
    };
    read_baseline(path, &args.rename).map(Some)
}

fn read_baseline(path: &std::path::Path, renames: &[String]) -> Result<Baseline, Error> {
    let mut matrix = mqtt_hil::matrix::Matrix::read(path)?;
    for r in renames {
        let (from, to) = r
            .split_once('=')
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--rename `{r}`: expected OLD=NEW, two broker columns"
                ))
            })?;
        mqtt_hil::matrix::diff::rename(&mut matrix, from, to)
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    }
    Ok(Baseline {
        name: path.display().to_string(),
        matrix,
    })
}

fn diff(args: DiffArgs) -> Result<i32, Error> {
    use mqtt_hil::matrix::diff_report;
    let old = read_baseline(&args.old, &args.rename)?;
    let new = mqtt_hil::matrix::Matrix::read(&args.new)?;
    let c = old.compare(&new);
    print!("{}", diff_report::terminal(&c.diff, &c.baseline));
    let write = |path: &std::path::Path, text: String| {
        std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    };
    if let Some(md) = &args.markdown {
        let text = format!(
            "# Matrix diff\n\nNew: `{}`.\n\n{}",
            args.new.display(),
            diff_report::markdown(&c.diff, &c.baseline)
        );
        write(md, text)?;
        println!("markdown: {}", md.display());
    }
    if let Some(j) = &args.junit {
        write(j, diff_report::junit(&c.diff, &c.baseline))?;
        println!("junit: {}", j.display());
    }
    Ok(if c.diff.failed() {
        exit_codes::FAILED
    } else {
        exit_codes::OK
    })
}

/// Prints the table and the reasons, writes the files, picks the exit code.
fn report_matrix(
    m: &mqtt_hil::matrix::Matrix,
    out: &std::path::Path,
    json: Option<PathBuf>,
    markdown: Option<PathBuf>,
    junit: Option<PathBuf>,
    changes: Option<&Changes>,
    to_stderr: bool,
) -> Result<i32, Error> {
    use mqtt_hil::matrix::table;
    // With --format json stdout carries only events: the table goes to
    // stderr, as the human lines do.
    let mut text = String::from("\n");
    text += &table::terminal(m);
    text += "(cells: pass/dev/fail/skip per broker)\n";
    for (s, b, v, why) in table::notes(m) {
        let mut lines = why.lines();
        let first = lines.next().unwrap_or("");
        text += &format!("  {:<5} {s} on {b}: {first}\n", v.label());
        if v == mqtt_hil::matrix::Verdict::Fail {
            if let Some(rules) = why.lines().find(|l| l.starts_with("(rules: ")) {
                text += &format!("        {rules}\n");
            }
        }
    }
    let write = |path: &std::path::Path, text: String| {
        std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    };
    let mut md = table::markdown(m);
    if let Some(c) = changes {
        text += "\n";
        text += &mqtt_hil::matrix::diff_report::terminal(&c.diff, &c.baseline);
        md += "\n";
        md += &mqtt_hil::matrix::diff_report::markdown(&c.diff, &c.baseline);
    }
    let json = json.unwrap_or_else(|| out.join("matrix.json"));
    let markdown = markdown.unwrap_or_else(|| out.join("matrix.md"));
    write(&json, m.to_json())?;
    write(&markdown, md)?;
    text += &format!(
        "json: {}\nmarkdown: {}\n",
        json.display(),
        markdown.display()
    );
    if let Some(j) = junit {
        let mut report = m.junit_report();
        if let Some(c) = changes {
            report.add_test_suite(c.junit_suite());
        }
        let xml = report
            .to_string()
            .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->"));
        write(&j, xml)?;
        text += &format!("junit: {}\n", j.display());
    }
    let counts = m.counts(None);
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let failed = get("FAIL") + get("STALE") + get("ERROR") + get("FLAKY");
    text += &format!(
        "matrix: {} passed, {failed} failed, {} skipped ({} known deviations or unsupported conventions among the passes); {:.1}s\n",
        get("PASS") + get("DEV") + get("UNSUP"),
        get("SKIP"),
        get("DEV") + get("UNSUP"),
        m.wall_ms as f64 / 1000.0
    );
    if to_stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    let regressed = changes.is_some_and(|c| c.diff.failed());
    Ok(if m.failed() || regressed {
        exit_codes::FAILED
    } else {
        exit_codes::OK
    })
}

fn merge(args: MergeArgs) -> Result<i32, Error> {
    let baseline = load_baseline(&args.baseline)?;
    let mut parts = Vec::new();
    for f in &args.files {
        parts.push((f.display().to_string(), mqtt_hil::matrix::Matrix::read(f)?));
    }
    let m = mqtt_hil::matrix::Matrix::merge(parts)?;
    let out = args
        .json
        .as_ref()
        .and_then(|j| j.parent().map(|p| p.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("."));
    let json = args.json.unwrap_or_else(|| out.join("matrix.json"));
    let changes = baseline.map(|b| b.compare(&m));
    report_matrix(
        &m,
        &out,
        Some(json),
        args.markdown,
        args.junit,
        changes.as_ref(),
        false,
    )
}
