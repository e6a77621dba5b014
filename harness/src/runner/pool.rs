//! Runs scenarios concurrently (`-j N`) and reports them as if they had run
//! one after another.
//!
//! Isolation comes from [`super::run`] itself: every scenario starts its
//! own broker (a mosquitto process, an embedded rumqttd, a container), its
//! own proxy lanes on fresh loopback ports, its own device (a host agent
//! process or a QEMU board with its sockets and flash file) and works in
//! its own folder (`workdir/<id>/`). So scenarios running side by side
//! share no traffic, retained messages or sessions, and a scenario that
//! restarts, kills, pauses or cuts off its broker does so to a broker no
//! one else uses. What they still share is the process-wide port counter
//! ([`crate::broker::free_port`] never hands a port out twice) and the
//! machine's cores.
//!
//! Start order: the longest expected scenarios first ([`super::schedule`]),
//! so a long one does not start last and finish alone.
//!
//! Reports: reporters that show progress ([`crate::report::Reporter::as_finished`],
//! the terminal) get each scenario's events as it finishes; every other
//! reporter (JSON, JUnit, HTML, pcap, trace files) gets them in run order
//! (by index), each scenario's events together, whatever order the
//! scenarios finished in — so their output is the same at any `-j`.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{report_interrupted, run_repeated, schedule, RunConfig};
use crate::error::Error;
use crate::report::{Finished, Repeated, Reporter, Reporters, RunEvent};
use crate::scenario::Scenario;
use crate::signals::Signal;

/// One scenario (with its repeats) against one broker.
#[derive(Clone)]
pub struct Job {
    pub scenario: Scenario,
    pub cfg: Arc<RunConfig>,
    /// The report index of its first run; its runs take `index..index + runs`.
    pub index: usize,
    /// The broker's label in the reports.
    pub broker: String,
    pub runs: usize,
}

/// What became of a job.
#[derive(Debug)]
pub enum JobEnd {
    Done(Arc<Repeated>),
    /// The caller's [`Control::launch`] left it out (nothing reported).
    Left,
    /// A signal stopped it or kept it from starting (reported as an error).
    Interrupted(Arc<Finished>),
}

/// The caller's say in a pool run.
pub trait Control {
    /// Before job `k` starts: whether to run it at all.
    fn launch(&mut self, _k: usize) -> bool {
        true
    }
    /// After job `k` finished, before any later job starts.
    fn finished(&mut self, _k: usize, _r: &Repeated) {}
    /// How many of the pool's `parallel` places job `k` takes while it
    /// runs (a matrix gives a cell on a broker that costs more to start a
    /// bigger share of the machine, [`weights`]). A job bigger than what is
    /// free waits for the running ones, unless none runs.
    fn cost(&self, _k: usize) -> usize {
        1
    }
    /// The order the jobs start in (indices into `jobs`, each once): by
    /// default the longest expected first ([`longest_first`]). Reports
    /// keep the jobs' order whatever this is.
    fn start_order(&self, jobs: &[Job]) -> Vec<usize> {
        longest_first(jobs)
    }
}

/// Runs everything.
pub struct All;
impl Control for All {}

/// Runs `jobs`, at most `parallel` places' worth at a time (one place per
/// job unless [`Control::cost`] says more), starting them in
/// [`Control::start_order`] (a job that does not fit in the free places
/// waits, and so do the ones after it).
/// `stop` resolving (a signal) stops the running ones and starts no more:
/// they are reported as interrupted, in their place. Errors of a reporter
/// end the run, as they do when scenarios run one by one.
pub async fn run_pool(
    jobs: &[Job],
    parallel: usize,
    reporters: &mut Reporters,
    control: &mut dyn Control,
    stop: impl Future<Output = Signal>,
) -> Result<(Vec<JobEnd>, Option<Signal>), Error> {
    let parallel = parallel.max(1);
    let n = jobs.len();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, RunEvent)>();
    let mut running: JoinSet<(usize, Result<Arc<Repeated>, Error>)> = JoinSet::new();
    let mut ends: Vec<Option<JobEnd>> = (0..n).map(|_| None).collect();
    let mut started = vec![false; n];
    let mut events: Vec<Vec<RunEvent>> = vec![Vec::new(); n];
    let mut flushed = 0;
    let mut next = 0;
    let mut interrupted = None;
    // Places taken by the running jobs, and each running job's share.
    let mut used = 0;
    let mut cost = vec![0; n];
    let order = control.start_order(jobs);
    debug_assert!(
        {
            let mut o = order.clone();
            o.sort_unstable();
            o == (0..n).collect::<Vec<_>>()
        },
        "a start order names every job once"
    );
    tokio::pin!(stop);
    loop {
        while next < n {
            let k = order[next];
            let c = control.cost(k).clamp(1, parallel);
            if used + c > parallel && !running.is_empty() {
                break;
            }
            next += 1;
            if !control.launch(k) {
                ends[k] = Some(JobEnd::Left);
                continue;
            }
            started[k] = true;
            cost[k] = c;
            used += c;
            let job = jobs[k].clone();
            let tx = tx.clone();
            // The caller's brokers started ahead serve the cells' tasks too.
            let warm = crate::broker::warm::Warm::current();
            running.spawn(crate::broker::warm::Warm::scope(warm, async move {
                let mut own = Reporters::new();
                own.push(Forward { job: k, tx });
                let r = run_repeated(
                    &job.scenario,
                    &job.cfg,
                    job.index,
                    &job.broker,
                    job.runs,
                    &mut own,
                )
                .await;
                (k, r)
            }));
        }
        flush(&mut flushed, &ends, &mut events, reporters)?;
        if running.is_empty() {
            break;
        }
        tokio::select! {
            Some((k, ev)) = rx.recv() => {
                reporters.report_progress(&ev)?;
                events[k].push(ev);
            }
            Some(joined) = running.join_next() => {
                let (k, r) = joined.map_err(|e| Error::Usage(format!("a scenario's task failed: {e}")))?;
                // Its events were sent before it ended: take them all first.
                while let Ok((j, ev)) = rx.try_recv() {
                    reporters.report_progress(&ev)?;
                    events[j].push(ev);
                }
                used -= cost[k];
                let r = r?;
                control.finished(k, &r);
                ends[k] = Some(JobEnd::Done(r));
            }
            sig = &mut stop => {
                interrupted = Some(sig);
                break;
            }
        }
    }
    if let Some(sig) = interrupted {
        // Dropping a scenario's future stops its broker, proxy, board and
        // peers (containers by the sweep in main), as without -j.
        running.abort_all();
        while let Some(joined) = running.join_next().await {
            if let Ok((k, Ok(r))) = joined {
                ends[k] = Some(JobEnd::Done(r));
            }
        }
        while let Ok((j, ev)) = rx.try_recv() {
            events[j].push(ev);
        }
        for k in flushed..n {
            match &ends[k] {
                Some(_) => {
                    for ev in std::mem::take(&mut events[k]) {
                        reporters.report_ordered(&ev)?;
                    }
                }
                None => {
                    let why = if started[k] {
                        format!("interrupted by {sig} before it finished")
                    } else {
                        format!("not run: the run was interrupted by {sig}")
                    };
                    let job = &jobs[k];
                    let f =
                        report_interrupted(&job.scenario, &why, job.index, &job.broker, reporters)?;
                    ends[k] = Some(JobEnd::Interrupted(f));
                }
            }
        }
    }
    let ends = ends
        .into_iter()
        .map(|e| e.expect("every job ended, was left out or was interrupted"))
        .collect();
    Ok((ends, interrupted))
}

/// Hands the ordered reporters every job's events whose turn has come.
fn flush(
    flushed: &mut usize,
    ends: &[Option<JobEnd>],
    events: &mut [Vec<RunEvent>],
    reporters: &mut Reporters,
) -> Result<(), Error> {
    while *flushed < ends.len() && ends[*flushed].is_some() {
        for ev in std::mem::take(&mut events[*flushed]) {
            reporters.report_ordered(&ev)?;
        }
        *flushed += 1;
    }
    Ok(())
}

/// A job's own reporter: sends its events to the pool.
struct Forward {
    job: usize,
    tx: mpsc::UnboundedSender<(usize, RunEvent)>,
}

impl Reporter for Forward {
    fn report(&mut self, ev: &RunEvent) -> Result<(), Error> {
        let _ = self.tx.send((self.job, ev.clone()));
        Ok(())
    }
}

/// The jobs' start order, longest expected first: a scenario's expected
/// time ([`schedule::expected`] on its target) times its runs.
pub fn longest_first(jobs: &[Job]) -> Vec<usize> {
    let expected: Vec<_> = jobs
        .iter()
        .map(|j| schedule::expected(&j.scenario, &j.cfg.target) * j.runs.max(1) as u32)
        .collect();
    schedule::longest_first(&expected)
}

/// How many scenarios run at once when `-j` is not given: what the machine
/// can take. nextest runs one test per CPU because a test keeps its CPU
/// busy; a scenario mostly waits on protocol timers (a keep alive, a
/// declared wait, a quiet period), so it costs far less. Measured on 2
/// cores (load ~14 from other builds), the 41 runs of `scenarios/` on the
/// virtual device: 100 s at -j 1, 51 s at -j 2, 17 s at -j 8, 11 s at
/// -j 16, every verdict the same; since `qos2_acks_delayed_7s` was split
/// per direction (longest scenario 8.5 s), the 42 runs at load ~10: 15.4-
/// 15.8 s at -j 8 against 8.7-9.2 s at -j 16, and `--repeat 20` at -j 16
/// (840 runs, 170 s) 0 flaky. So: eight per CPU for the virtual device
/// (in-process clients, the suite's work at four per CPU was its floor), two per CPU for the host build (a process each),
/// eight per CPU for container brokers that are cheap to start (a
/// mosquitto or NATS container uses ~40 ms of CPU to get ready, amqtt's
/// ~0.3 s, Docker ~0.5 s more to make and remove it and its network, then
/// each waits with its cell), two per CPU for the others (RabbitMQ's start
/// still takes ~2 s of CPU: [`crate::broker::ImageRef::light_start`]) —
/// with these the full matrix on a quiet 2-core machine took 455 s against
/// 793 s at two and one per CPU, every verdict the same (README.md), and
/// the machine was busy throughout (load ~10) — and
/// [`default_boards`] emulated boards (QEMU takes a core while the board
/// boots), as many as the memory holds ([`boards_fit`]). A bench board is
/// one board on one serial port, and
/// an external broker is shared by every scenario (its retained messages
/// and sessions would leak between them): both run one at a time.
pub fn default_jobs(
    target: &crate::target::TargetSpec,
    broker: &crate::broker::BrokerSpec,
) -> usize {
    use crate::broker::BrokerSpec;
    use crate::target::TargetSpec;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    match (target, broker) {
        (_, BrokerSpec::External { .. }) | (TargetSpec::Serial(_), _) => 1,
        (TargetSpec::Qemu, _) => boards_fit(default_boards(cpus), memory_available()).0,
        (_, BrokerSpec::Container(image)) if image.light_start() => 8 * cpus,
        (_, BrokerSpec::Container(_)) => 2 * cpus,
        (TargetSpec::Host, _) => 2 * cpus,
        (TargetSpec::Virtual, _) => 8 * cpus,
    }
}

/// Emulated boards at once when `-j` is not given, before the memory
/// check ([`boards_fit`]): four per CPU. A board mostly waits on the
/// protocol's timers; only its boot takes a core, and the suite's boots are
/// spread by longest-first scheduling. The proof is the README's repeated
/// runs at this count on 2 cores: `run scenarios --target qemu -j 8
/// --repeat 5` and `--repeat 15`, 820 runs, every verdict the same as the
/// first run of its scenario, about 24 s a suite against 139 s at one board
/// per two CPUs.
pub fn default_boards(cpus: usize) -> usize {
    (4 * cpus).max(1)
}

/// What one emulated board holds while its scenario runs: QEMU's resident
/// memory (~41 MiB per lx60 board, `ps` on this machine, 2026-12-06), the
/// scenario's own broker (a mosquitto process, ~8 MiB) and the harness's
/// share, rounded up.
pub const BOARD_MEMORY: u64 = 64 << 20;

/// Boards that fit in `available` bytes of memory ([`BOARD_MEMORY`]
/// each), at most `wanted` and at least one; and why, when that is fewer
/// than `wanted`. Unknown memory (`None`) limits nothing.
pub fn boards_fit(wanted: usize, available: Option<u64>) -> (usize, Option<String>) {
    let Some(avail) = available else {
        return (wanted, None);
    };
    let fit = usize::try_from(avail / BOARD_MEMORY)
        .unwrap_or(usize::MAX)
        .max(1);
    if fit >= wanted {
        return (wanted, None);
    }
    let mib = |b: u64| b >> 20;
    (
        fit,
        Some(format!(
            "{wanted} emulated boards at once need ~{} MiB ({} MiB each) and this machine has {} MiB available: running {fit} at once",
            mib(BOARD_MEMORY * wanted as u64),
            mib(BOARD_MEMORY),
            mib(avail)
        )),
    )
}

/// Memory the run can still take: `MemAvailable` from `/proc/meminfo`,
/// or less where the process's cgroup (v2) has a tighter limit. `None`
/// where neither can be read.
pub fn memory_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let cgroup = (|| {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
        let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let max = read("memory.max")?.trim().parse::<u64>().ok()?;
        let current = read("memory.current")?.trim().parse::<u64>().ok()?;
        Some(max.saturating_sub(current))
    })();
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The matrix's default when `-j` is not given: brokers that cost the
/// machine differently share one pool. It has as many places as the
/// cheapest broker's default ([`default_jobs`]), and a cell takes
/// `places / default` of them (rounded up), so each broker's cells run as
/// many at once as its own default lets, and a mix of them never costs
/// more: on 2 cores, 16 places — a cell on the mosquitto process, the
/// embedded broker or a mosquitto, NATS or amqtt container takes 1, on
/// RabbitMQ 4 (a RabbitMQ cell that runs as a tenant of a shared node
/// starts no broker and takes 1: `matrix::run`), on an external broker all
/// 16 (alone). Returns the
/// places and each broker's share, in `brokers`' order.
pub fn weights(
    target: &crate::target::TargetSpec,
    brokers: &[crate::broker::BrokerSpec],
) -> (usize, Vec<usize>) {
    let defaults: Vec<usize> = brokers
        .iter()
        .map(|b| default_jobs(target, b).max(1))
        .collect();
    let places = defaults.iter().copied().max().unwrap_or(1);
    let costs = defaults.iter().map(|d| places.div_ceil(*d)).collect();
    (places, costs)
}

/// `-j` as asked, lowered where running more at once could not be isolated:
/// `(jobs, why it was lowered)`.
pub fn effective_jobs(
    asked: Option<usize>,
    target: &crate::target::TargetSpec,
    broker: &crate::broker::BrokerSpec,
    verbose: bool,
) -> (usize, Option<String>) {
    let Some(asked) = asked else {
        if verbose {
            return (1, None);
        }
        let j = default_jobs(target, broker);
        // The board's default was lowered to what the memory holds: say so.
        let why = match target {
            crate::target::TargetSpec::Qemu => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                boards_fit(default_boards(cpus), memory_available()).1
            }
            _ => None,
        };
        return (j, why);
    };
    let why = match (target, broker) {
        _ if asked <= 1 => None,
        (_, crate::broker::BrokerSpec::External { .. }) => Some(
            "an external broker is shared by every scenario (their retained messages and \
             sessions would meet): running one at a time"
                .to_string(),
        ),
        (crate::target::TargetSpec::Serial(_), _) => {
            Some("a bench board on a serial port runs one scenario at a time".to_string())
        }
        _ if verbose => Some(
            "-v streams one scenario's events as they happen: running one at a time".to_string(),
        ),
        (crate::target::TargetSpec::Qemu, _) => {
            return match boards_fit(asked, memory_available()) {
                (j, Some(w)) => (j, Some(format!("-j {asked}: {w}"))),
                (j, None) => (j, None),
            };
        }
        _ => None,
    };
    match why {
        Some(w) => (1, Some(format!("-j {asked}: {w}"))),
        None => (asked, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerSpec;
    use crate::target::TargetSpec;

    #[test]
    fn jobs_are_lowered_where_scenarios_would_share_a_broker_or_a_board() {
        let ext = BrokerSpec::External {
            host: "127.0.0.1".into(),
            port: 1883,
            profile: None,
        };
        assert_eq!(
            effective_jobs(Some(8), &TargetSpec::Virtual, &BrokerSpec::Mosquitto, false),
            (8, None)
        );
        let (j, why) = effective_jobs(Some(8), &TargetSpec::Virtual, &ext, false);
        assert_eq!(j, 1);
        assert!(why.unwrap().starts_with("-j 8: an external broker"));
        assert_eq!(
            effective_jobs(None, &TargetSpec::Virtual, &ext, false),
            (1, None)
        );
        assert_eq!(
            effective_jobs(Some(1), &TargetSpec::Virtual, &ext, false),
            (1, None)
        );
        let (j, why) = effective_jobs(Some(4), &TargetSpec::Virtual, &BrokerSpec::Mosquitto, true);
        assert_eq!(j, 1);
        assert!(why.is_some());
        let q = default_jobs(&TargetSpec::Qemu, &BrokerSpec::Mosquitto);
        let v = default_jobs(&TargetSpec::Virtual, &BrokerSpec::Mosquitto);
        assert!((1..=v).contains(&q), "{q} {v}");
    }

    #[test]
    fn no_more_boards_than_the_memory_holds_and_a_note_when_fewer() {
        assert_eq!(boards_fit(8, None), (8, None));
        assert_eq!(boards_fit(8, Some(8 * BOARD_MEMORY)), (8, None));
        let (j, why) = boards_fit(8, Some(3 * BOARD_MEMORY + BOARD_MEMORY / 2));
        assert_eq!(j, 3);
        let why = why.unwrap();
        assert!(
            why.contains("8 emulated boards") && why.ends_with("running 3 at once"),
            "{why}"
        );
        // One board always runs: a machine that holds none says so at start.
        assert_eq!(boards_fit(8, Some(1 << 20)).0, 1);
        // An asked -j above what fits is lowered too, naming the flag.
        if let (j, Some(why)) = effective_jobs(
            Some(100_000),
            &TargetSpec::Qemu,
            &BrokerSpec::Mosquitto,
            false,
        ) {
            assert!(
                j < 100_000 && why.starts_with("-j 100000: 100000 emulated boards"),
                "{why}"
            );
        }
    }

    fn container(name: &str) -> BrokerSpec {
        BrokerSpec::Container(crate::broker::ImageRef::parse(name).unwrap())
    }

    #[test]
    fn a_broker_that_costs_more_to_start_takes_a_bigger_share_of_the_matrix() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ext = BrokerSpec::External {
            host: "127.0.0.1".into(),
            port: 1883,
            profile: None,
        };
        let brokers = [
            BrokerSpec::Mosquitto,
            container("mosquitto:2.0.21"),
            container("nats"),
            container("rabbitmq"),
            container("amqtt"),
            container("emqx/emqx:5.8"),
            ext,
        ];
        let (places, costs) = weights(&TargetSpec::Virtual, &brokers);
        assert_eq!(places, 8 * cpus);
        assert_eq!(costs, vec![1, 1, 1, 4, 1, 4, 8 * cpus]);
        // Each broker alone runs at its own default.
        for (b, c) in brokers.iter().zip(&costs) {
            assert_eq!(places / c, default_jobs(&TargetSpec::Virtual, b));
        }
        // Boards cost the same whatever the broker: one share each.
        let (_, costs) = weights(&TargetSpec::Qemu, &brokers[..6]);
        assert_eq!(costs, vec![1; 6]);
    }
}
