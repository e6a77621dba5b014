//! The `mqtt-hil` command line: a thin dispatcher over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use mqtt_hil::broker::BrokerSpec;
use mqtt_hil::error::Error;
use mqtt_hil::exit_codes;
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
    /// What plays the device: virtual, host, qemu, serial:PORT.
    #[arg(long, default_value = "virtual")]
    target: String,
    /// Write JUnit XML here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// The device's software: the host agent binary (--target host) or
    /// firmware ELF (--target qemu); default: the build in firmware/build/.
    #[arg(long)]
    firmware: Option<PathBuf>,
    /// Folder for traces and broker files.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Only scenarios whose id contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Print each scenario's normalized trace.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Args, Clone, Debug)]
struct MatrixArgs {
    /// Scenario files or folders of them.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
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
    /// Write JUnit XML here (a suite per broker).
    #[arg(long)]
    junit: Option<PathBuf>,
    /// What plays the device: virtual, host, qemu.
    #[arg(long, default_value = "virtual")]
    target: String,
    /// The device's software (see `run --firmware`).
    #[arg(long)]
    firmware: Option<PathBuf>,
    /// Folder for traces, broker files and the result files.
    #[arg(long, default_value = "out/matrix")]
    out: PathBuf,
    /// Only scenarios whose id contains this.
    #[arg(long)]
    filter: Option<String>,
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
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenario files or folders and print a verdict per scenario.
    Run(RunArgs),
    /// Run every scenario against every broker and print one conformance
    /// table (also written as Markdown and JSON).
    Matrix(MatrixArgs),
    /// Join the JSON results of partitioned matrix runs into one table,
    /// one Markdown file and one JUnit file.
    Merge(MergeArgs),
    /// List scenarios with their one-line descriptions.
    List {
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Splice stdin/stdout to a TCP address (QEMU's guestfwd runs this).
    #[command(hide = true)]
    Splice { addr: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        match cli.command {
            Cmd::List { paths } => list(&paths),
            Cmd::Run(args) => {
                let run = run(args);
                tokio::select! {
                    code = run => code,
                    _ = tokio::signal::ctrl_c() => {
                        eprintln!("interrupted: stopping everything that was started");
                        Ok(exit_codes::INTERRUPTED)
                    }
                }
            }
            Cmd::Matrix(args) => {
                tokio::select! {
                    code = matrix(args) => code,
                    _ = tokio::signal::ctrl_c() => {
                        eprintln!("interrupted: stopping everything that was started");
                        Ok(exit_codes::INTERRUPTED)
                    }
                }
            }
            Cmd::Merge(args) => merge(args),
            Cmd::Splice { addr } => mqtt_hil::splice::run(&addr).await,
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

fn load_all(paths: &[PathBuf], filter: Option<&str>) -> Result<Vec<scenario::Scenario>, Error> {
    let files = scenario::discover(paths)?;
    let mut out = Vec::new();
    for f in files {
        let s = scenario::load(&f)?;
        if filter.is_none_or(|flt| s.id.contains(flt)) {
            out.push(s);
        }
    }
    Ok(out)
}

fn list(paths: &[PathBuf]) -> Result<i32, Error> {
    let all = load_all(paths, None)?;
    let width = all.iter().map(|s| s.id.len()).max().unwrap_or(0);
    for s in &all {
        println!("{:<width$}  {}", s.id, s.name);
    }
    Ok(exit_codes::OK)
}

async fn run(args: RunArgs) -> Result<i32, Error> {
    let RunArgs {
        paths,
        broker,
        target,
        junit,
        firmware,
        out,
        filter,
        verbose,
    } = args;
    let broker = BrokerSpec::resolve(&broker)?;
    let target: TargetSpec = target.parse()?;
    // Every file is checked before anything starts.
    let scenarios = load_all(&paths, filter.as_deref())?;
    if scenarios.is_empty() {
        return Err(Error::Usage("no scenario matches".into()));
    }
    std::fs::create_dir_all(out.join("traces"))
        .map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
    let deviations = match paths.first() {
        Some(p) => {
            let folder = if p.is_dir() {
                p.clone()
            } else {
                p.parent().map(|p| p.to_path_buf()).unwrap_or_default()
            };
            mqtt_hil::runner::deviation::Deviations::load(&folder, &broker.profile())?
        }
        None => Default::default(),
    };
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
        },
    };
    println!(
        "running {} scenario(s) against {broker}, device: {target}",
        scenarios.len()
    );
    let mut outcomes = Vec::new();
    for s in &scenarios {
        let o = runner::run(s, &cfg).await;
        let trace = mqtt_hil::trace::render(&s.name, &o.history);
        let trace_path = out.join("traces").join(format!("{}.trace", s.id));
        let _ = std::fs::write(&trace_path, &trace);
        let label = match &o.status {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Skipped(_) => "SKIP",
            Status::Error(_) => "ERROR",
            Status::Deviation(_) => "DEV",
        };
        println!(
            "{label:<5} {:<40} {:>6.1}s  {}",
            s.id,
            o.duration.as_secs_f64(),
            s.name
        );
        if !o.passed() {
            if let Status::Deviation(why) = &o.status {
                println!("      expected deviation: {why}");
                for line in o.failure_text().lines().skip(1) {
                    println!("      {line}");
                }
                outcomes.push(o);
                continue;
            }
            for line in o.failure_text().lines() {
                println!("      {line}");
            }
        }
        if verbose {
            println!("{trace}");
        }
        if let Status::Error(e) = &o.status {
            if e.contains("hint:") {
                // An environment problem will fail every scenario alike.
                eprintln!("error: {e}");
                return Ok(exit_codes::INVALID);
            }
        }
        outcomes.push(o);
    }
    let passed = outcomes.iter().filter(|o| o.acceptable()).count();
    let deviations = outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Deviation(_)))
        .count();
    let skipped = outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Skipped(_)))
        .count();
    let failed = outcomes.len() - passed - skipped;
    if deviations > 0 {
        println!("{deviations} of the passes are known deviations of the broker (see DEV lines)");
    }
    if let Some(path) = &junit {
        std::fs::write(
            path,
            mqtt_hil::report::junit::render("scenarios", &outcomes),
        )
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        println!("junit: {}", path.display());
    }
    println!("traces: {}", out.join("traces").display());
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 {
        exit_codes::OK
    } else {
        exit_codes::FAILED
    })
}

fn firmware_for(image: Option<PathBuf>) -> Result<mqtt_hil::target::Firmware, Error> {
    Ok(mqtt_hil::target::Firmware {
        image,
        root: std::env::current_dir().map_err(|e| Error::io("reading the current folder", e))?,
        splice: std::env::current_exe()
            .map_err(|e| Error::io("finding the mqtt-hil binary", e))?,
        boot_timeout: None,
    })
}

async fn matrix(args: MatrixArgs) -> Result<i32, Error> {
    use mqtt_hil::matrix;
    let partition: matrix::Partition = args.partition.parse()?;
    let target: TargetSpec = args.target.parse()?;
    let scenarios = load_all(&args.paths, args.filter.as_deref())?;
    if scenarios.is_empty() {
        return Err(Error::Usage("no scenario matches".into()));
    }
    let (brokers, unavailable) = match &args.brokers {
        Some(list) => (matrix::plan::parse_brokers(list)?, Vec::new()),
        None => matrix::available_brokers().await,
    };
    let folder = match args.paths.first() {
        Some(p) if p.is_dir() => p.clone(),
        Some(p) => p.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
        None => PathBuf::from("scenarios"),
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::io(format!("creating {}", args.out.display()), e))?;
    let names: Vec<String> = brokers.iter().map(|b| b.to_string()).collect();
    println!(
        "matrix: {} scenario(s) x {} broker(s) [{}], partition {partition}, device: {target}",
        scenarios.len(),
        brokers.len(),
        names.join(", ")
    );
    for u in &unavailable {
        println!("  not included: {u}");
    }
    let cfg = matrix::MatrixConfig {
        scenarios,
        brokers,
        unavailable,
        partition,
        target,
        firmware: firmware_for(args.firmware)?,
        deviations_folder: folder,
        out: args.out.clone(),
    };
    let m = matrix::run(&cfg, |c| {
        println!(
            "{:<5} {:<40} {:<24} {:>6.1}s",
            c.verdict.label(),
            c.scenario,
            c.broker,
            c.duration_ms as f64 / 1000.0
        );
    })
    .await?;
    report_matrix(&m, &args.out, args.json, args.markdown, args.junit)
}

/// Prints the table and the reasons, writes the files, picks the exit code.
fn report_matrix(
    m: &mqtt_hil::matrix::Matrix,
    out: &std::path::Path,
    json: Option<PathBuf>,
    markdown: Option<PathBuf>,
    junit: Option<PathBuf>,
) -> Result<i32, Error> {
    use mqtt_hil::matrix::table;
    println!();
    print!("{}", table::terminal(m));
    for (s, b, v, why) in table::notes(m) {
        let first = why.lines().next().unwrap_or("");
        println!("  {:<5} {s} on {b}: {first}", v.label());
    }
    let write = |path: &std::path::Path, text: String| {
        std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    };
    let json = json.unwrap_or_else(|| out.join("matrix.json"));
    let markdown = markdown.unwrap_or_else(|| out.join("matrix.md"));
    write(&json, m.to_json())?;
    write(&markdown, table::markdown(m))?;
    println!("json: {}\nmarkdown: {}", json.display(), markdown.display());
    if let Some(j) = junit {
        write(&j, m.junit())?;
        println!("junit: {}", j.display());
    }
    let counts = m.counts(None);
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let failed = get("FAIL") + get("STALE") + get("ERROR");
    println!(
        "{} passed, {failed} failed, {} skipped ({} known deviations among the passes); {:.1}s",
        get("PASS") + get("DEV"),
        get("SKIP"),
        get("DEV"),
        m.wall_ms as f64 / 1000.0
    );
    Ok(if m.failed() {
        exit_codes::FAILED
    } else {
        exit_codes::OK
    })
}

fn merge(args: MergeArgs) -> Result<i32, Error> {
    let mut parts = Vec::new();
    for f in &args.files {
        parts.push((
            f.display().to_string(),
            mqtt_hil::matrix::Matrix::read(f)?,
        ));
    }
    let m = mqtt_hil::matrix::Matrix::merge(parts)?;
    let out = args
        .json
        .as_ref()
        .and_then(|j| j.parent().map(|p| p.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("."));
    let json = args.json.unwrap_or_else(|| out.join("matrix.json"));
    report_matrix(&m, &out, Some(json), args.markdown, args.junit)
}
