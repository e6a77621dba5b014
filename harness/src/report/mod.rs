//! What a run leaves behind for people and tools, all fed from one stream
//! of [`events::RunEvent`]s (nextest's design): the runner's caller turns
//! each scenario run into events, and every [`Reporter`] reads the same
//! events — the terminal lines and progress bar ([`human`]), the JSON
//! stream ([`json`], format in `docs/json-events.md`), JUnit XML
//! ([`junit`]), the trace files ([`files`]), the HTML report ([`html`]) and
//! pcapng captures ([`pcap`]). None of them runs anything; each can be fed
//! synthetic events in a test.
//!
//! A matrix run (scenario × broker) is the same stream with several
//! brokers: every scenario event names its broker, JUnit writes one test
//! suite per broker, the HTML index becomes a scenario × broker table whose
//! cells link to the scenario pages ([`html::matrix_index`]), and files go
//! to a folder per broker. A command that runs a matrix does:
//!
//! ```text
//! let mut reporters = Reporters::from_options(&Options { .. })?;
//! reporters.report(&RunEvent::RunStarted { count: cells, brokers, target })?;
//! for each (scenario, broker) cell, index counting from 0:
//!     let finished = runner::run_reported(scenario, &cfg_of_broker, index, &label, &mut reporters).await?;
//!     totals.add(&finished.outcome.status);
//! reporters.report(&RunEvent::RunFinished { totals, elapsed })?;
//! ```

pub mod describe;
pub mod events;
pub mod files;
pub mod html;
pub mod human;
pub mod json;
pub mod junit;
pub mod pcap;

use std::path::PathBuf;

pub use events::{Finished, Repeated, RunEvent, Totals};

use crate::error::Error;

/// Something that turns run events into output.
pub trait Reporter: Send {
    fn report(&mut self, ev: &RunEvent) -> Result<(), Error>;

    /// Whether this reporter wants [`RunEvent::Live`] history events (they
    /// cost a subscription to the recorder, so only then are they sent).
    fn wants_live(&self) -> bool {
        false
    }

    /// Whether this reporter shows progress: with scenarios running at
    /// once (`-j`), it gets each scenario's events as that scenario
    /// finishes; every other reporter gets them in run order
    /// ([`crate::runner::pool`]), so its output does not depend on `-j`.
    fn as_finished(&self) -> bool {
        false
    }

    /// How many scenarios run at once (told before `RunStarted`).
    fn jobs(&mut self, _jobs: usize) {}

    /// A test suite from outside the run, after it finished (a matrix's
    /// changes since its baseline): the JUnit file adds it, others ignore it.
    fn add_suite(&mut self, _suite: &quick_junit::TestSuite) -> Result<(), Error> {
        Ok(())
    }
}

/// What the terminal (stdout) gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people (and a progress bar on a terminal).
    #[default]
    Human,
    /// One JSON object per line (docs/json-events.md); the human lines go
    /// to stderr instead.
    Json,
}

/// Which reports a run writes.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub format: Format,
    /// Stream each scenario's history and the device's UART while it runs.
    pub verbose: bool,
    /// Folder for the normalized traces (`<id>.trace`).
    pub traces: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    /// Folder for the HTML report.
    pub html: Option<PathBuf>,
    /// Folder for the pcapng captures.
    pub pcap: Option<PathBuf>,
}

/// Every reporter of a run; each event goes to all of them in turn.
#[derive(Default)]
pub struct Reporters {
    list: Vec<Box<dyn Reporter>>,
}

impl Reporters {
    pub fn new() -> Reporters {
        Reporters::default()
    }

    /// The reporters `opts` asks for. Output folders are created now, so a
    /// folder that cannot be written fails the run before anything starts.
    pub fn from_options(opts: &Options) -> Result<Reporters, Error> {
        let mut r = Reporters::new();
        let mut artifacts = Vec::new();
        if let Some(dir) = &opts.traces {
            r.push(files::TraceFiles::new(dir)?);
            artifacts.push(("traces".to_string(), dir.clone()));
        }
        if let Some(path) = &opts.junit {
            r.push(junit::JunitFile::new(path));
            artifacts.push(("junit".to_string(), path.clone()));
        }
        if let Some(dir) = &opts.html {
            r.push(html::HtmlReport::new(dir)?);
            artifacts.push(("report".to_string(), dir.join("index.html")));
        }
        if let Some(dir) = &opts.pcap {
            r.push(pcap::PcapFiles::new(dir)?);
            artifacts.push(("pcap".to_string(), dir.clone()));
        }
        match opts.format {
            Format::Human => {
                r.push(human::Human::stdout(opts.verbose, artifacts));
            }
            Format::Json => {
                r.push(json::Json::stdout(opts.verbose));
                r.push(human::Human::stderr(opts.verbose, artifacts));
            }
        }
        Ok(r)
    }

    pub fn push(&mut self, r: impl Reporter + 'static) {
        self.list.push(Box::new(r));
    }

    /// Sends `ev` to every reporter; one failing does not starve the others
    /// (the first error is returned after all had it).
    pub fn report(&mut self, ev: &RunEvent) -> Result<(), Error> {
        let mut first = None;
        for r in &mut self.list {
            if let Err(e) = r.report(ev) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// An event of a scenario that just finished, for the progress
    /// reporters only (see [`Reporter::as_finished`]).
    pub fn report_progress(&mut self, ev: &RunEvent) -> Result<(), Error> {
        self.report_where(ev, true)
    }

    /// An event in run order, for every reporter but the progress ones.
    pub fn report_ordered(&mut self, ev: &RunEvent) -> Result<(), Error> {
        self.report_where(ev, false)
    }

    fn report_where(&mut self, ev: &RunEvent, as_finished: bool) -> Result<(), Error> {
        let mut first = None;
        for r in self
            .list
            .iter_mut()
            .filter(|r| r.as_finished() == as_finished)
        {
            if let Err(e) = r.report(ev) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Tells every reporter how many scenarios run at once.
    pub fn jobs(&mut self, jobs: usize) {
        for r in &mut self.list {
            r.jobs(jobs);
        }
    }

    pub fn wants_live(&self) -> bool {
        self.list.iter().any(|r| r.wants_live())
    }

    /// Hands `suite` to every reporter ([`Reporter::add_suite`]).
    pub fn add_suite(&mut self, suite: &quick_junit::TestSuite) -> Result<(), Error> {
        let mut first = None;
        for r in &mut self.list {
            if let Err(e) = r.add_suite(suite) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
