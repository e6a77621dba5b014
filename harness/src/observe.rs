//! `mqtt-hil observe`: the flight recorder for a bench. It puts the fault
//! proxy between any device and a broker (the device dials `--listen`
//! instead of its broker), prints every event as it is recorded, runs the
//! traffic-only checks continuously — incrementally, each event once as it
//! is recorded, where a checker has an incremental form
//! ([`check::Incremental`]), else over the whole history at [`Pace`]: after
//! 10 % growth of the history or 10 × the last judgement's time — and
//! prints a violation when a judgement shows it, and takes fault commands
//! from stdin, one a line (`sever`,
//! `close`, `blackhole`, `heal`, `refuse`, `accept`, `release`, `clear`).
//!
//! With `--board FIRMWARE` the observed device is the emulated ESP8266
//! booted here, on the harness's own network (docs/network.md), and the
//! network faults of scenario steps work as commands too, with the same
//! fields as `key=value`: `ip loss rate=0.2 dir=to_broker`, `ip mss
//! bytes=1`, `wifi off`, `wifi weak loss=30%`, `dns fail`, `dhcp on`. A
//! device that only dials `--listen` is on a network the harness does not
//! own: those commands are refused with one line.
//!
//! Ctrl-C (SIGINT) or `--duration` stops it (commands are optional: the
//! end of stdin does not, so a script or CI job can record with stdin
//! empty or `/dev/null`): the proxy closes its
//! connections (recorded as the teardown), the broker it started stops, and
//! then — from the full history, so nothing recorded is lost — it writes
//! into `--out` (where `events.log`, every event as printed live, has been
//! written as the session went): `trace.txt`
//! (the normalized trace), `verdicts.txt`, and the HTML report
//! (`report/index.html`) and pcapng capture (`pcap/`) of the session.
//!
//! The history is held in memory only while some checker it runs has no
//! incremental form; when none needs it, the events go to a spill file in
//! `--out` ([`SPILL`]) as they come and are read back once, at the end,
//! for those files — the same files either way — so memory stays flat
//! however long the session ([`Live`]).
//!
//! The pure parts — reading a command line, deciding which violations are
//! new — are plain functions tested without sockets; [`run`] is the shell.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::broker::{Broker, BrokerSpec};
use crate::check::{self, Checker, Incremental, InvariantSpec, Verdict};
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::history::spill::Spill;
use crate::history::{Event, EventKind, History, Recorder};
use crate::proxy::{Fault, Hub};
use crate::report::{self, Finished, Reporter, RunEvent, Totals};
use crate::runner::{Outcome, Status};

/// The file in `--out` that holds the session's events while it runs,
/// when no checker needs them in memory ([`Live::spilling`]); removed
/// once the files are written.
pub const SPILL: &str = ".events.spill";

/// The actor name of whatever connects to the listen address.
pub const ACTOR: &str = "device";

pub struct Config {
    pub listen: SocketAddr,
    /// Boot this board as the observed device (instead of waiting for one
    /// to dial `listen`).
    pub board: Option<Board>,
    pub broker: BrokerSpec,
    /// Where the session's files go (created).
    pub out: PathBuf,
    /// The checks to run; [`default_checks`] when none are given.
    pub checks: Vec<InvariantSpec>,
    /// Topic filters left out of the normalized trace.
    pub periodic: Vec<String>,
}

/// The emulated board `observe --board` boots: its firmware runs as a
/// black box whose connections go to the session's lane.
pub struct Board {
    pub firmware: crate::target::Firmware,
}

/// The checks a session runs without a checks file: those that need no
/// knowledge of the device's topics (the protocol rules always run too).
pub fn default_checks() -> Vec<InvariantSpec> {
    let text = r#"
        [[c]]
        check = "will"
        [[c]]
        check = "keepalive"
        [[c]]
        check = "resubscribe"
        [[c]]
        check = "backoff"
    "#;
    #[derive(serde::Deserialize)]
    struct D {
        c: Vec<InvariantSpec>,
    }
    toml::from_str::<D>(text).expect("valid defaults").c
}

/// What a line typed on stdin asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Fault(Fault),
    /// A fault of the board's own network.
    Network(crate::net::NetFault),
    Help,
    Nothing,
}

pub const COMMANDS: &str = "sever, close, blackhole, heal, refuse, accept, release, clear, help";
/// The board's network faults, as commands (`--board`).
pub const NETWORK_COMMANDS: &str =
    "ip loss|duplicate rate=R|nth=N [dir=D], ip reorder rate=R [gap=T], \
     ip delay delay=T [jitter=T], ip mss bytes=N, ip refuse|accept|blackhole|heal|clear, \
     wifi off|on|roam, wifi weak loss=R, dns fail|timeout|heal, dhcp off|on";

/// Reads one command line.
pub fn parse_command(line: &str) -> std::result::Result<Command, String> {
    let first = line.split_whitespace().next().unwrap_or_default();
    if crate::scenario::NETWORK_FAMILIES.contains(&first.to_ascii_lowercase().as_str()) {
        return crate::scenario::parse_network_command(line.trim()).map(Command::Network);
    }
    let word = line.trim().to_ascii_lowercase();
    Ok(match word.as_str() {
        "" => Command::Nothing,
        "help" | "?" => Command::Help,
        "sever" => Command::Fault(Fault::Sever),
        "close" => Command::Fault(Fault::Close),
        "blackhole" => Command::Fault(Fault::Blackhole),
        "heal" => Command::Fault(Fault::Heal),
        "refuse" => Command::Fault(Fault::Refuse),
        "accept" => Command::Fault(Fault::Accept),
        "release" => Command::Fault(Fault::Release),
        "clear" => Command::Fault(Fault::Clear),
        other => {
            let mut words: Vec<&str> = COMMANDS.split(", ").collect();
            words.extend(crate::scenario::NETWORK_FAMILIES);
            let near = crate::scenario::closest_word(other, &words)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "unknown command `{other}`{near}; commands: {COMMANDS}"
            ));
        }
    })
}

/// The checks of a session and which of their violations were already
/// reported, so each is printed once, when first seen. A violation is known
/// by its checker, rule and first offending event: its message may grow as
/// the session goes on (a count), and `verdicts.txt` has the final one.
///
/// A checker with an [`Incremental`] form is fed each event once, as it is
/// recorded, and judges in time and memory that do not grow with the
/// session; the others (batch checkers) judge the whole history at the
/// [`Pace`].
pub struct Watch {
    checkers: Vec<Box<dyn Checker>>,
    /// Per checker, in the same order: its incremental form, if it has one.
    live: Vec<Option<Box<dyn Incremental>>>,
    reported: BTreeSet<(String, String, Option<u64>)>,
}

impl Watch {
    pub fn new(checks: &[InvariantSpec]) -> Watch {
        let mut checkers = check::always();
        checkers.extend(checks.iter().map(check::build));
        Watch::of(checkers)
    }

    /// A watch over exactly these checkers (the benchmark's and tests'
    /// way to judge with a chosen set).
    pub fn of(checkers: Vec<Box<dyn Checker>>) -> Watch {
        let live = checkers.iter().map(|c| c.incremental()).collect();
        Watch {
            checkers,
            live,
            reported: BTreeSet::new(),
        }
    }

    /// Gives the next recorded event to the incremental checkers.
    pub fn feed(&mut self, ev: &Event) {
        for l in self.live.iter_mut().flatten() {
            l.feed(ev);
        }
    }

    /// Whether some checker judges only whole histories (so the history
    /// must be kept for it).
    pub fn needs_history(&self) -> bool {
        self.live.iter().any(Option::is_none)
    }

    /// The checkers' names and whether each judges incrementally.
    pub fn modes(&self) -> Vec<(String, bool)> {
        self.checkers
            .iter()
            .zip(&self.live)
            .map(|(c, l)| (c.name().to_string(), l.is_some()))
            .collect()
    }

    /// What each checker's final verdict costs (for the benchmark): an
    /// incremental one's is its `verdict`, a batch one's a whole judgement.
    pub fn costs(&self, h: &History) -> Vec<(String, Duration)> {
        self.checkers
            .iter()
            .zip(&self.live)
            .map(|(c, l)| {
                let t = std::time::Instant::now();
                match l {
                    Some(l) => drop(l.verdict()),
                    None => drop(c.check(h)),
                }
                (c.name().to_string(), t.elapsed())
            })
            .collect()
    }

    /// Every checker's verdict: the incremental ones over the events fed,
    /// the others over `h` (which should hold the same events).
    pub fn verdicts(&self, h: &History) -> Vec<Verdict> {
        self.checkers
            .iter()
            .zip(&self.live)
            .map(|(c, l)| match l {
                Some(l) => l.verdict(),
                None => c.check(h),
            })
            .collect()
    }

    /// Violations not reported before, of every checker (see
    /// [`Watch::verdicts`]), as lines to print.
    pub fn fresh(&mut self, h: &History) -> Vec<String> {
        let verdicts = self.verdicts(h);
        self.unreported(verdicts)
    }

    /// Violations not reported before, of the incremental checkers only:
    /// cheap, so asked for on every tick.
    pub fn fresh_incremental(&mut self) -> Vec<String> {
        let verdicts: Vec<Verdict> = self.live.iter().flatten().map(|l| l.verdict()).collect();
        self.unreported(verdicts)
    }

    /// Violations not reported before, of the batch checkers over `h`.
    pub fn fresh_batch(&mut self, h: &History) -> Vec<String> {
        let verdicts: Vec<Verdict> = self
            .checkers
            .iter()
            .zip(&self.live)
            .filter(|(_, l)| l.is_none())
            .map(|(c, _)| c.check(h))
            .collect();
        self.unreported(verdicts)
    }

    fn unreported(&mut self, verdicts: Vec<Verdict>) -> Vec<String> {
        let mut out = Vec::new();
        for v in verdicts {
            for x in &v.violations {
                let key = (v.checker.clone(), x.rule.clone(), x.events.first().copied());
                if self.reported.insert(key) {
                    out.push(format!("VIOLATION {}: {x}", v.checker));
                }
            }
        }
        out
    }
}

/// When the batch checks judge again. They judge a whole history, so
/// judging on every tick costs O(n) per tick and a long session ends up
/// spending a core on it (issue 17). The pace
/// keeps that cost proportional to what was recorded: a new judgement only
/// when the history grew by a tenth since the last one (amortized: each
/// event pays for about ten judged events, whatever the session's length),
/// or when it grew at all and the time since the last one is at least ten
/// times what that one took (so checking uses at most ~1/10 of a core).
/// Violations therefore show within max(100 ms, 10 × one judgement) or a
/// 10 % growth of the history; the final verdicts are always a full
/// judgement of everything recorded. Incremental checks ([`Watch`]) are
/// not paced: they judge every event as it comes.
#[derive(Debug, Default)]
pub struct Pace {
    judged_len: usize,
    judged_at: Duration,
    cost: Duration,
}

impl Pace {
    pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

    /// Whether a history of `len` events at session time `now` is due.
    pub fn due(&self, len: usize, now: Duration) -> bool {
        if len <= self.judged_len {
            return false;
        }
        if len - self.judged_len >= self.judged_len.div_ceil(10) {
            return true;
        }
        now >= self.judged_at + Self::MIN_INTERVAL.max(self.cost * 10)
    }

    /// Records a judgement of `len` events at `now` that took `cost`.
    pub fn judged(&mut self, len: usize, now: Duration, cost: Duration) {
        self.judged_len = len;
        self.judged_at = now;
        self.cost = cost;
    }
}

/// The judging half of a session. It owns the session's history: the
/// events are moved here from the recorder ([`Recorder::take_new`]), so the
/// session holds them at most once. While some checker judges only whole
/// histories they are held in memory (for it and for the files written at
/// the end); when every checker judges incrementally ([`Watch::needs_history`]
/// is false) and a spill file is given, they go to that file as they come
/// and are read back only at the end, for the files, so that memory stays
/// flat however long the session. `events.log` is written as they come
/// either way.
pub struct Live {
    pub watch: Watch,
    /// The events so far, when held in memory (empty while spilling).
    pub history: History,
    pub pace: Pace,
    spill: Option<Spill>,
    /// The first failure to write the spill file: reported at the end.
    spill_error: Option<Error>,
}

impl Live {
    /// A session that holds its history in memory.
    pub fn new(checks: &[InvariantSpec]) -> Live {
        Live::watching(Watch::new(checks))
    }

    /// A session judged by `watch`, its history in memory.
    pub fn watching(watch: Watch) -> Live {
        Live {
            watch,
            history: History::default(),
            pace: Pace::default(),
            spill: None,
            spill_error: None,
        }
    }

    /// A session judged by `watch` whose history goes to the file at
    /// `path` (created; removed by [`Live::finish`]) when no checker needs
    /// it in memory, and is held in memory otherwise.
    pub fn spilling(watch: Watch, path: &std::path::Path) -> Result<Live> {
        let mut live = Live::watching(watch);
        if !live.watch.needs_history() {
            live.spill = Some(
                Spill::create(path)
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?,
            );
        }
        Ok(live)
    }

    /// Whether the events go to a file rather than memory.
    pub fn spills(&self) -> bool {
        self.spill.is_some()
    }

    /// Events taken so far.
    pub fn len(&self) -> usize {
        self.spill
            .as_ref()
            .map_or(self.history.events.len(), Spill::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes `new` events: the incremental checkers judge each at once, the
    /// batch ones the whole history if due at `now`. Returns the
    /// violations not reported before.
    pub fn feed(&mut self, new: Vec<Event>, now: Duration) -> Vec<String> {
        for ev in &new {
            self.watch.feed(ev);
        }
        self.keep(new);
        let mut fresh = self.watch.fresh_incremental();
        let len = self.history.events.len();
        if self.watch.needs_history() && self.pace.due(len, now) {
            let t = std::time::Instant::now();
            fresh.extend(self.watch.fresh_batch(&self.history));
            self.pace.judged(len, now, t.elapsed());
        }
        fresh
    }

    fn keep(&mut self, new: Vec<Event>) {
        match &mut self.spill {
            None => self.history.events.extend(new),
            Some(s) => {
                for ev in &new {
                    if let Err(e) = s.append(ev) {
                        self.spill_error.get_or_insert_with(|| {
                            Error::io(format!("writing {}", s.path().display()), e)
                        });
                    }
                }
            }
        }
    }

    /// Takes the last events (after the teardown) and gives back the
    /// checkers and the whole history (read back from the spill file).
    pub fn finish(mut self, rest: Vec<Event>) -> Result<(Watch, History)> {
        for ev in &rest {
            self.watch.feed(ev);
        }
        self.keep(rest);
        if let Some(e) = self.spill_error {
            return Err(e);
        }
        let history = match self.spill {
            None => self.history,
            Some(s) => {
                let path = s.path().display().to_string();
                s.into_history()
                    .map_err(|e| Error::io(format!("reading back {path}"), e))?
            }
        };
        Ok((self.watch, history))
    }
}

/// Runs a session until `stop` resolves or `commands` ends. `say` gets every
/// line meant for the user (stdout in the CLI).
pub async fn run(
    cfg: Config,
    mut commands: mpsc::Receiver<String>,
    stop: impl std::future::Future<Output = ()>,
    say: &mut (dyn Write + Send),
) -> Result<i32> {
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| Error::io(format!("creating {}", cfg.out.display()), e))?;
    let workdir =
        std::path::absolute(cfg.out.join("broker")).map_err(|e| Error::io("resolving --out", e))?;
    std::fs::create_dir_all(&workdir)
        .map_err(|e| Error::io(format!("creating {}", workdir.display()), e))?;
    let started_at = SystemTime::now();
    let recorder = Recorder::new();
    let broker = Broker::start(&cfg.broker, &workdir, None, crate::broker::Tenure::Own).await?;
    recorder.record(EventKind::Broker {
        what: format!("started ({})", broker.describe()),
    });
    let hub = Hub::new(recorder.clone());
    let lane = match hub.lane_at(ACTOR, broker.addr(), cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            broker.shutdown().await;
            return Err(Error::env(
                format!("cannot listen on {}: {e}", cfg.listen),
                "choose a free address, e.g. --listen 127.0.0.1:1884",
            ));
        }
    };
    let line = |say: &mut (dyn Write + Send), text: &str| {
        let _ = writeln!(say, "{text}");
        let _ = say.flush();
    };
    let board = match &cfg.board {
        None => None,
        Some(b) => {
            let started = crate::target::autonomous::AutonomousDevice::start(
                &crate::target::TargetSpec::Qemu,
                lane.addr(),
                Some(&lane),
                &recorder,
                &workdir,
                &b.firmware,
            )
            .await;
            match started {
                Ok(d) => Some(d),
                Err(e) => {
                    hub.shutdown().await;
                    broker.shutdown().await;
                    return Err(e);
                }
            }
        }
    };
    let commands_text = match board.as_ref().and_then(|b| b.network()) {
        Some(_) => format!("{COMMANDS}, {NETWORK_COMMANDS}"),
        None => COMMANDS.to_string(),
    };
    line(
        say,
        &format!(
            "observe: {} -> broker {} ({}); commands: {commands_text}; Ctrl-C ends and writes {}",
            match &cfg.board {
                Some(b) => format!(
                    "emulated board {} on the {} network",
                    b.firmware
                        .image
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    b.firmware.net.mode
                ),
                None => format!("listening on {}", lane.addr()),
            },
            cfg.broker,
            broker.describe(),
            cfg.out.display()
        ),
    );
    let mut live = Live::spilling(Watch::new(&cfg.checks), &cfg.out.join(SPILL))?;
    let mut log = EventsLog::create(&cfg.out.join("events.log"))?;
    let mut printed = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut commands_open = true;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            cmd = commands.recv(), if commands_open => match cmd {
                // Commands are optional: a script or CI job whose stdin is
                // empty or /dev/null still wants the device recorded.
                None => {
                    commands_open = false;
                    line(say, "stdin closed: no more commands; recording until Ctrl-C (or --duration)");
                }
                Some(text) => match parse_command(&text) {
                    Ok(Command::Fault(f)) => {
                        let name = f.name();
                        lane.apply(f);
                        line(say, &format!("net: {name} on {ACTOR}"));
                    }
                    Ok(Command::Network(f)) => {
                        let name = f.name();
                        match board.as_ref().and_then(|b| b.network()) {
                            Some(net) => match net.apply(f).await {
                                Ok(()) => line(say, &format!("net: {name} on {ACTOR}")),
                                Err(e) => line(say, &format!("error: {name}: {e}")),
                            },
                            None => line(say, &format!("error: {}", network_refusal(&name, &cfg))),
                        }
                    }
                    Ok(Command::Help) => line(say, &format!("commands: {commands_text}")),
                    Ok(Command::Nothing) => {}
                    Err(e) => line(say, &format!("error: {e}")),
                },
            },
            _ = tick.tick() => {
                let new = recorder.take_new();
                printed += show(&new, say);
                log.append(&new)?;
                for v in live.feed(new, recorder.elapsed()) {
                    line(say, &v);
                }
            }
        }
    }
    // Everything still open is closed and recorded before the history is
    // taken, so the files hold all of it.
    recorder.record(EventKind::Teardown);
    if let Some(b) = board {
        b.shutdown().await;
    }
    hub.shutdown().await;
    broker.shutdown().await;
    let printed_live = printed;
    let rest = recorder.take_new();
    show(&rest, say);
    log.append(&rest)?;
    log.finish()?;
    let (mut watch, history) = live.finish(rest)?;
    for v in watch.fresh(&history) {
        line(say, &v);
    }
    let verdicts = watch.verdicts(&history);
    let ok = verdicts.iter().all(Verdict::ok);
    let recorded = history.events.len();
    write_files(&cfg, history, &verdicts, started_at, say)?;
    line(
        say,
        &format!(
            "observe: {} events recorded ({} shown live), {}",
            recorded,
            printed_live,
            if ok {
                "no violation".to_string()
            } else {
                format!(
                    "{} violation(s)",
                    verdicts.iter().map(|v| v.violations.len()).sum::<usize>()
                )
            }
        ),
    );
    Ok(if ok {
        exit_codes::OK
    } else {
        exit_codes::FAILED
    })
}

/// Why a network command cannot act in this session: one line.
fn network_refusal(name: &str, cfg: &Config) -> String {
    match &cfg.board {
        Some(_) => format!(
            "`{name}` needs the harness's own network, and this board runs on QEMU's user \
             network (--net slirp): start observe with --net owned"
        ),
        None => format!(
            "`{name}` acts on the emulated board's own network, and this session has none (the \
             device dials {} over a network the harness does not own): boot the board here \
             with --board FIRMWARE",
            cfg.listen
        ),
    }
}

/// Prints the events meant for the terminal; returns how many it got.
fn show(events: &[Event], say: &mut (dyn Write + Send)) -> usize {
    for ev in events {
        // The board's frames only where they tell something, as `-v`.
        if let EventKind::Frame {
            fate: crate::history::FrameFate::Delivered,
            note: None,
            ..
        } = &ev.kind
        {
            continue;
        }
        let _ = writeln!(say, "{}", report::describe::line(ev));
    }
    let _ = say.flush();
    events.len()
}

/// `events.log`, written as the events come (every event, as printed
/// live), so that it needs no copy of the history and survives a session
/// that is killed.
struct EventsLog {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl EventsLog {
    fn create(path: &std::path::Path) -> Result<EventsLog> {
        let file = std::fs::File::create(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(EventsLog {
            path: path.to_path_buf(),
            file: std::io::BufWriter::new(file),
        })
    }

    fn append(&mut self, events: &[Event]) -> Result<()> {
        for ev in events {
            writeln!(self.file, "{}", report::describe::line(ev))
                .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        }
        self.file
            .flush()
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))
    }

    fn finish(mut self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))
    }
}

/// Writes the session's files from its history (moved into the report,
/// not copied).
fn write_files(
    cfg: &Config,
    history: History,
    verdicts: &[Verdict],
    started_at: SystemTime,
    say: &mut (dyn Write + Send),
) -> Result<()> {
    let write = |name: &str, text: String| {
        let path = cfg.out.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    };
    let title = format!("observe session through {}", cfg.listen);
    let trace = crate::trace::render_with(
        &title,
        &history,
        &crate::trace::Options::black_box(&cfg.periodic),
    );
    write("trace.txt", trace.clone())?;
    let mut text = String::new();
    for v in verdicts {
        let state = if v.ok() { "ok" } else { "FAILED" };
        text += &format!("{}: {state}\n", v.checker);
        for x in &v.violations {
            text += &format!("  {x}\n");
        }
        for n in &v.notes {
            text += &format!("  note: {n}\n");
        }
    }
    write("verdicts.txt", text)?;
    // The run reporters, fed one synthetic scenario: the session.
    let ok = verdicts.iter().all(Verdict::ok);
    let elapsed = history.events.last().map(|e| e.at).unwrap_or_default();
    let outcome = Outcome {
        id: "observe".into(),
        name: title.clone(),
        path: cfg.out.join("trace.txt"),
        status: if ok { Status::Passed } else { Status::Failed },
        failures: Vec::new(),
        verdicts: verdicts.to_vec(),
        history,
        duration: elapsed,
    };
    let mut finished = Finished::new(0, &cfg.broker.to_string(), outcome, started_at);
    finished.trace = trace;
    let finished = std::sync::Arc::new(finished);
    let mut totals = Totals::default();
    totals.add(&finished.outcome.status);
    let events = [
        RunEvent::RunStarted {
            count: 1,
            brokers: vec![cfg.broker.to_string()],
            target: format!("observed at {}", cfg.listen),
        },
        RunEvent::ScenarioFinished(finished),
        RunEvent::RunFinished {
            totals,
            elapsed,
            interrupted: None,
        },
    ];
    let mut html = report::html::HtmlReport::new(&cfg.out.join("report"))?;
    let mut pcap = report::pcap::PcapFiles::new(&cfg.out.join("pcap"))?;
    for ev in &events {
        html.report(ev)?;
        pcap.report(ev)?;
    }
    let _ = writeln!(
        say,
        "observe: wrote {0}/events.log, {0}/trace.txt, {0}/verdicts.txt, {0}/report/index.html, {0}/pcap/",
        cfg.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ConnId, Dir, Fate};
    use crate::mqtt::{Packet, Publish, QoS};

    #[test]
    fn the_pace_judges_after_a_tenth_of_growth_or_ten_times_the_last_cost() {
        let ms = Duration::from_millis;
        let mut p = Pace::default();
        assert!(!p.due(0, ms(0)), "nothing recorded");
        assert!(p.due(1, ms(0)));
        p.judged(1000, ms(1000), ms(50));
        assert!(!p.due(1000, ms(9000)), "no growth, no judgement");
        assert!(!p.due(1099, ms(1400)), "9.9 % and 400 ms < 10 × 50 ms");
        assert!(p.due(1100, ms(1001)), "10 % growth");
        assert!(p.due(1001, ms(1500)), "10 × the last cost passed");
        p.judged(1000, ms(1000), ms(1));
        assert!(!p.due(1001, ms(1099)), "never more often than every 100 ms");
        assert!(p.due(1001, ms(1100)));
    }

    #[test]
    fn commands_are_read_with_a_did_you_mean() {
        assert_eq!(parse_command(" Sever \n"), Ok(Command::Fault(Fault::Sever)));
        assert_eq!(
            parse_command("blackhole"),
            Ok(Command::Fault(Fault::Blackhole))
        );
        assert_eq!(parse_command(""), Ok(Command::Nothing));
        assert_eq!(parse_command("help"), Ok(Command::Help));
        let e = parse_command("blackhoel").unwrap_err();
        assert!(e.contains("did you mean `blackhole`?"), "{e}");
    }

    #[test]
    fn network_commands_read_like_steps() {
        use crate::net::{Amount, IpFault, NetFault, Wifi};
        assert_eq!(
            parse_command("ip loss rate=0.2 dir=to_broker"),
            Ok(Command::Network(NetFault::Ip {
                dir: Some(Dir::ToBroker),
                fault: IpFault::Loss(Amount::Rate(0.2))
            }))
        );
        assert_eq!(
            parse_command("ip mss bytes=1\n"),
            Ok(Command::Network(NetFault::Ip {
                dir: None,
                fault: IpFault::Mss(1)
            }))
        );
        assert_eq!(
            parse_command("wifi weak loss=30%"),
            Ok(Command::Network(NetFault::Wifi(Wifi::Weak { loss: 0.3 })))
        );
        assert_eq!(
            parse_command("ip delay delay=100ms jitter=20ms").map(|c| match c {
                Command::Network(f) => f.name(),
                _ => String::new(),
            }),
            Ok("ip delay 100ms jitter 20ms".to_string())
        );
        let e = parse_command("ip loss rate=1.5").unwrap_err();
        assert!(
            e.contains("field `rate`") && e.contains("outside 0-1"),
            "{e}"
        );
        let e = parse_command("wifi of").unwrap_err();
        assert!(e.contains("did you mean `off`?"), "{e}");
        let e = parse_command("ip loss rate=0.2 gap=5ms").unwrap_err();
        assert!(e.contains("field `gap`: unknown field"), "{e}");
        let e = parse_command("ip").unwrap_err();
        assert!(e.contains("needs a fault"), "{e}");
    }

    #[test]
    fn without_a_board_network_commands_are_refused_in_one_line() {
        let cfg = Config {
            listen: "127.0.0.1:1884".parse().unwrap(),
            board: None,
            broker: BrokerSpec::Mosquitto,
            out: PathBuf::from("out"),
            checks: Vec::new(),
            periodic: Vec::new(),
        };
        let why = network_refusal("wifi off", &cfg);
        assert!(!why.contains('\n'));
        assert!(why.contains("--board FIRMWARE"), "{why}");
    }

    #[test]
    fn a_violation_is_reported_once_when_first_seen() {
        let spec: InvariantSpec =
            toml::from_str("check = \"publish_allowed\"\ntopics = [\"ok/#\"]").unwrap();
        let mut w = Watch::new(&[spec]);
        let packet = |dir: Dir, packet: Packet| EventKind::Packet {
            conn: ConnId(1),
            actor: ACTOR.into(),
            dir,
            packet,
            raw: bytes::Bytes::new(),
            fate: Fate::Forwarded,
        };
        let publish = |topic: &str| {
            packet(
                Dir::ToBroker,
                Packet::Publish(Publish {
                    dup: false,
                    qos: QoS::AtMostOnce,
                    retain: false,
                    topic: topic.into(),
                    pid: None,
                    payload: bytes::Bytes::from_static(b"x"),
                    properties: Default::default(),
                }),
            )
        };
        // A connection as MQTT has it (CONNECT first, answered), so that
        // only the watched rule has something to say.
        let session = |topics: &[&str]| {
            let mut b = History::build()
                .push(EventKind::ConnOpened {
                    conn: ConnId(1),
                    actor: ACTOR.into(),
                })
                .push(packet(
                    Dir::ToBroker,
                    Packet::Connect(crate::mqtt::Connect {
                        version: crate::mqtt::Version::V311,
                        client_id: "dev".into(),
                        clean_start: true,
                        keep_alive: 60,
                        will: None,
                        username: None,
                        password: None,
                        properties: Default::default(),
                    }),
                ))
                .push(packet(
                    Dir::ToClient,
                    Packet::ConnAck(crate::mqtt::ConnAck {
                        session_present: false,
                        code: 0,
                        properties: Default::default(),
                    }),
                ));
            for t in topics {
                b = b.push(publish(t));
            }
            b.finish()
        };
        let h = session(&["ok/1"]);
        assert!(w.fresh(&h).is_empty(), "{:?}", w.fresh(&h));
        let h = session(&["ok/1", "bad/1"]);
        let lines = w.fresh(&h);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("publish-not-allowed"), "{lines:?}");
        assert!(w.fresh(&h).is_empty(), "reported twice");
        // The same violation, grown: not reported again.
        let h = session(&["ok/1", "bad/1", "bad/1"]);
        assert!(w.fresh(&h).is_empty(), "reported again as it grew");
        let h = session(&["ok/1", "bad/1", "bad/2"]);
        assert_eq!(w.fresh(&h).len(), 1, "a new topic is a new violation");
    }

    #[test]
    fn incremental_checks_report_at_once_and_keep_no_second_copy() {
        let spec: InvariantSpec =
            toml::from_str("check = \"backoff\"\nmax_per_second = 1").unwrap();
        let mut live = Live::new(&[spec]);
        assert!(
            live.watch
                .modes()
                .iter()
                .any(|(name, inc)| name == "backoff" && *inc),
            "{:?}",
            live.watch.modes()
        );
        let open = |seq: u64, ms: u64, conn: u32| Event {
            seq,
            at: Duration::from_millis(ms),
            kind: EventKind::ConnOpened {
                conn: ConnId(conn),
                actor: ACTOR.into(),
            },
        };
        // The pace has just judged, so only an incremental check can
        // speak before 10 % more events or 100 ms.
        live.pace
            .judged(1000, Duration::from_millis(1000), Duration::ZERO);
        assert!(live
            .feed(vec![open(0, 1000, 1)], Duration::from_millis(1000))
            .is_empty());
        let lines = live.feed(vec![open(1, 1010, 2)], Duration::from_millis(1010));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("backoff-too-fast"), "{lines:?}");
        assert_eq!(live.history.events.len(), 2);
        // The recorder hands its events over instead of keeping a copy.
        let recorder = Recorder::new();
        recorder.record(EventKind::Teardown);
        assert_eq!(recorder.take_new().len(), 1);
        assert!(recorder.snapshot().events.is_empty());
        let next = recorder.record(EventKind::Teardown);
        assert_eq!(next.seq, 1, "sequence numbers go on after a take");
    }

    /// A session with something of every kind of event: 3.1.1 and 5.0
    /// packets (properties, a will, aliases, held and dropped ones), a
    /// packet no version can carry (kept aside by the spill), undecodable
    /// bytes, deliveries with properties, faults, frames, steps.
    fn varied_session() -> History {
        use crate::check::v5_testkit::*;
        use crate::history::{CloseReason, Delivery, FrameFate};
        let mut k = Kit::new();
        k.step("device connect")
            .session(
                1,
                ACTOR,
                connect_will(
                    "dev",
                    30,
                    "session_expiry = 60",
                    "w/dev",
                    "gone",
                    "user_properties = [[\"b\", \"2\"]]",
                ),
                connack(false, 0, "topic_alias_maximum = 4"),
            )
            .up(
                1,
                ACTOR,
                subscribe(1, "cmd/#", 1, 0x04, "subscription_identifier = 9"),
            )
            .down(1, ACTOR, suback(1, &[1]))
            .wait(250)
            .up(
                1,
                ACTOR,
                publish(
                    Some(2),
                    1,
                    "t/1",
                    "x",
                    "topic_alias = 1\ncontent_type = \"a/b\"",
                ),
            )
            .dropped_down(1, ACTOR, ack(crate::mqtt::PacketType::PubAck, 2, 0x10))
            .malformed(
                1,
                ACTOR,
                Dir::ToBroker,
                &[0x00, 0x00],
                crate::mqtt::Version::V5,
            )
            .wait(1500)
            .close(1, ACTOR, CloseReason::UpstreamUnreachable("refused".into()))
            .broker("restart");
        let mut h = k.history();
        let mut at = h.events.last().unwrap().at;
        let mut push = |kind: EventKind| {
            at += Duration::from_millis(7);
            h.events.push(Event {
                seq: h.events.len() as u64,
                at,
                kind,
            });
        };
        let v311 = |conn: u32, dir: Dir, p: Packet, fate: Fate| EventKind::Packet {
            conn: ConnId(conn),
            actor: "cloud".into(),
            dir,
            raw: crate::mqtt::codec::encode(&p, crate::mqtt::Version::V311).unwrap_or_default(),
            packet: p,
            fate,
        };
        push(EventKind::ConnOpened {
            conn: ConnId(2),
            actor: "cloud".into(),
        });
        push(v311(
            2,
            Dir::ToBroker,
            Packet::Connect(crate::mqtt::Connect {
                version: crate::mqtt::Version::V311,
                client_id: "cloud".into(),
                clean_start: false,
                keep_alive: 5,
                will: None,
                username: Some("u".into()),
                password: Some(bytes::Bytes::from_static(b"p\0w")),
                properties: Default::default(),
            }),
            Fate::Held,
        ));
        push(v311(
            2,
            Dir::ToClient,
            Packet::ConnAck(crate::mqtt::ConnAck {
                session_present: false,
                code: 5,
                properties: Default::default(),
            }),
            Fate::Released,
        ));
        // QoS 0 with a packet id: no version carries it.
        push(v311(
            2,
            Dir::ToClient,
            Packet::Publish(Publish {
                dup: true,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: "t/é".into(),
                pid: Some(7),
                payload: bytes::Bytes::from_static(b"\xff\x00"),
                properties: Default::default(),
            }),
            Fate::Duplicated,
        ));
        push(v311(2, Dir::ToBroker, Packet::PingReq, Fate::Forwarded));
        push(EventKind::Delivered {
            actor: "cloud".into(),
            msg: Delivery {
                topic: "t/1".into(),
                payload: bytes::Bytes::from_static(b"x"),
                qos: QoS::ExactlyOnce,
                retain: true,
                dup: false,
                properties: pp("user_properties = [[\"k\", \"v\"]]\nmessage_expiry = 3"),
            },
        });
        push(EventKind::Fault {
            target: "*".into(),
            fault: "blackhole".into(),
        });
        push(EventKind::Actor {
            actor: "cloud".into(),
            what: "error: timed out".into(),
        });
        push(EventKind::Board {
            what: "reset (watchdog)".into(),
        });
        push(EventKind::Uart {
            line: "boot ok".into(),
        });
        push(EventKind::Expect {
            step: 3,
            ok: false,
            detail: "no PUBACK".into(),
        });
        for (fate, note) in [
            (FrameFate::Delivered, None),
            (FrameFate::Dropped("ip loss".into()), Some("TCP SYN".into())),
            (FrameFate::Duplicated, None),
            (FrameFate::Delayed(Duration::from_micros(1500)), None),
            (
                FrameFate::Reordered(Duration::from_millis(3)),
                Some("DNS".into()),
            ),
        ] {
            push(EventKind::Frame {
                dir: Dir::ToClient,
                data: bytes::Bytes::from_static(&[0x45, 0, 0, 20]),
                fate,
                note,
            });
        }
        push(EventKind::Teardown);
        h
    }

    /// Through a spill file and back.
    fn spilled(h: &History, dir: &std::path::Path) -> History {
        let mut s = Spill::create(&dir.join(SPILL)).unwrap();
        for ev in &h.events {
            s.append(ev).unwrap();
        }
        assert_eq!(s.len(), h.events.len());
        let back = s.into_history().unwrap();
        assert!(!dir.join(SPILL).exists(), "the spill file is removed");
        back
    }

    #[test]
    fn a_spilled_history_reads_back_equal() {
        let h = varied_session();
        let dir = tempfile::tempdir().unwrap();
        let back = spilled(&h, dir.path());
        assert_eq!(back.events.len(), h.events.len());
        for (a, b) in h.events.iter().zip(&back.events) {
            assert_eq!(a, b, "event #{} changed through the spill file", a.seq);
        }
    }

    /// Every file of the directory tree under `root`, by relative path,
    /// with `root` itself written as `ROOT` inside.
    fn tree(root: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        let mut todo = vec![root.to_path_buf()];
        let from = root.display().to_string();
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    let text = std::fs::read(&p).unwrap();
                    let text = match String::from_utf8(text) {
                        Ok(t) => t.replace(&from, "ROOT").into_bytes(),
                        Err(e) => e.into_bytes(),
                    };
                    let rel = p.strip_prefix(root).unwrap().display().to_string();
                    out.insert(rel, text);
                }
            }
        }
        out
    }

    #[test]
    fn the_session_files_are_the_same_from_memory_and_from_the_spill_file() {
        let h = varied_session();
        let verdicts: Vec<Verdict> = check::always().iter().map(|c| c.check(&h)).collect();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let cfg = |out: &std::path::Path| Config {
            listen: "127.0.0.1:1884".parse().unwrap(),
            board: None,
            broker: BrokerSpec::Mosquitto,
            out: out.to_path_buf(),
            checks: Vec::new(),
            periodic: Vec::new(),
        };
        let back = spilled(&h, b.path());
        write_files(&cfg(a.path()), h, &verdicts, at, &mut std::io::sink()).unwrap();
        write_files(&cfg(b.path()), back, &verdicts, at, &mut std::io::sink()).unwrap();
        let (ta, tb) = (tree(a.path()), tree(b.path()));
        assert!(
            ["trace.txt", "verdicts.txt", "report/index.html"]
                .iter()
                .all(|f| ta.contains_key(*f)),
            "{:?}",
            ta.keys()
        );
        assert!(ta.keys().any(|k| k.starts_with("pcap/")), "{:?}", ta.keys());
        assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
        for (name, bytes) in &ta {
            assert!(
                tb[name] == *bytes,
                "{name} differs when written from the spill file"
            );
        }
    }

    #[test]
    fn with_every_checker_incremental_the_history_goes_to_the_file_not_memory() {
        let h = varied_session();
        let incremental: Vec<Box<dyn Checker>> = check::always()
            .into_iter()
            .filter(|c| c.incremental().is_some())
            .collect();
        assert!(!incremental.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPILL);
        let mut live = Live::spilling(Watch::of(incremental), &path).unwrap();
        assert!(live.spills());
        let mut printed = Vec::new();
        for ev in &h.events[..h.events.len() - 2] {
            printed.extend(live.feed(vec![ev.clone()], ev.at));
        }
        assert!(live.history.events.is_empty(), "a copy is held in memory");
        assert_eq!(live.len(), h.events.len() - 2);
        let (watch, back) = live
            .finish(h.events[h.events.len() - 2..].to_vec())
            .unwrap();
        assert_eq!(back.events, h.events);
        assert!(!path.exists());
        let batch: Vec<Verdict> = check::always()
            .iter()
            .filter(|c| c.incremental().is_some())
            .map(|c| c.check(&h))
            .collect();
        assert_eq!(watch.verdicts(&History::default()), batch);
        // A checker that needs the whole history keeps it in memory.
        let mut live = Live::spilling(Watch::new(&[]), &path).unwrap();
        if live.watch.needs_history() {
            assert!(!live.spills() && !path.exists());
            live.feed(h.events.clone(), Duration::ZERO);
            assert_eq!(live.history.events, h.events);
        }
    }

    #[test]
    fn default_checks_need_no_topics() {
        let names: Vec<String> = default_checks()
            .iter()
            .map(|c| check::build(c).name().to_string())
            .collect();
        assert_eq!(names, ["will", "keepalive", "resubscribe", "backoff"]);
    }

    /// Every always-on check and every default judges incrementally, so a
    /// session with the defaults spills its events instead of holding them.
    #[test]
    fn the_defaults_need_no_history_in_memory() {
        let watch = Watch::new(&default_checks());
        let batch: Vec<String> = watch
            .modes()
            .into_iter()
            .filter(|(_, live)| !live)
            .map(|(name, _)| name)
            .collect();
        assert!(batch.is_empty(), "judged over the whole history: {batch:?}");
        assert!(!watch.needs_history());
    }
}
