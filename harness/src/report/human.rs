//! The terminal: one line per scenario as it finishes (with its failure
//! reasons indented below; under `--repeat N` one per run, `[run K/N]`,
//! then a FLAKY line with each run's verdict and the differing rules
//! where the runs disagree), a summary at the end, and on a terminal a
//! progress bar for runs of more than one scenario. With `-v` the history
//! of the running scenario streams as it is recorded, every packet (pings
//! and held ones too) and the device's UART lines included.
//!
//! The bar draws on stderr and only when both stdout and stderr are
//! terminals and `CI` is not set; lines are printed with the bar lifted so
//! the two never mix.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{label, RunEvent, Totals};
use super::{describe, Reporter};
use crate::error::Error;
use crate::runner::Status;

pub struct Human {
    out: Box<dyn Write + Send>,
    verbose: bool,
    /// Named files and folders the run wrote, listed at the end.
    artifacts: Vec<(String, PathBuf)>,
    bar: Option<ProgressBar>,
    bar_allowed: bool,
    /// More than one broker: lines name the broker, padded to this width.
    matrix: Option<usize>,
    /// Scenarios run at once (`-j`); above 1 each line starts with a
    /// running count, since lines come in the order scenarios finish.
    jobs: usize,
    /// Runs finished so far, and how many the run has.
    done: usize,
    total: usize,
}

impl Human {
    pub fn stdout(verbose: bool, artifacts: Vec<(String, PathBuf)>) -> Human {
        let tty = std::io::stdout().is_terminal();
        Human::new(Box::new(std::io::stdout()), verbose, artifacts, tty)
    }

    pub fn stderr(verbose: bool, artifacts: Vec<(String, PathBuf)>) -> Human {
        let tty = std::io::stderr().is_terminal();
        Human::new(Box::new(std::io::stderr()), verbose, artifacts, tty)
    }

    /// `tty`: whether `out` is a terminal (a bar is drawn only then).
    pub fn new(
        out: Box<dyn Write + Send>,
        verbose: bool,
        artifacts: Vec<(String, PathBuf)>,
        tty: bool,
    ) -> Human {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        Human {
            out,
            verbose,
            artifacts,
            bar: None,
            bar_allowed: tty && std::io::stderr().is_terminal() && !ci,
            matrix: None,
            jobs: 1,
            done: 0,
            total: 0,
        }
    }

    fn print(&mut self, text: &str) -> Result<(), Error> {
        let out = &mut self.out;
        let mut write = || -> std::io::Result<()> {
            out.write_all(text.as_bytes())?;
            out.flush()
        };
        let r = match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        };
        r.map_err(|e| Error::io("writing to the terminal", e))
    }

    fn finished_text(&self, f: &super::Finished) -> String {
        let o = &f.outcome;
        let mut text = String::new();
        let broker = match self.matrix {
            Some(width) => format!("{:<width$} ", format!("[{}]", f.broker)),
            None => String::new(),
        };
        let id = if f.attempts > 1 {
            format!("{} [run {}/{}]", o.id, f.attempt, f.attempts)
        } else {
            o.id.clone()
        };
        let count = if self.jobs > 1 {
            let w = self.total.to_string().len();
            format!("[{:>w$}/{}] ", self.done, self.total)
        } else {
            String::new()
        };
        text += &format!(
            "{count}{:<5} {broker}{:<40} {:>6.1}s  {}\n",
            label(&o.status),
            id,
            o.duration.as_secs_f64(),
            o.name
        );
        if let Status::Deviation(why) | Status::Unsupported(why) = &o.status {
            let what = if matches!(o.status, Status::Deviation(_)) {
                "expected deviation"
            } else {
                "unsupported"
            };
            text += &format!("      {what}: {why}\n");
            for line in o.failure_text().lines().skip(1) {
                text += &format!("      {line}\n");
            }
        } else if !o.passed() {
            for line in o.failure_text().lines() {
                text += &format!("      {line}\n");
            }
        }
        text
    }

    /// After the runs of a repeated scenario: FLAKY where they disagree.
    fn repeated_text(&self, r: &super::Repeated) -> String {
        let Some(flaky) = &r.flaky else {
            return String::new();
        };
        let broker = match self.matrix {
            Some(width) => format!("{:<width$} ", format!("[{}]", r.broker)),
            None => String::new(),
        };
        let mut text = format!("FLAKY {broker}{:<40} {}\n", r.id(), flaky.summary());
        text += &format!("      {}\n", flaky.differing_text());
        for (f, sig) in r.runs.iter().zip(&flaky.runs) {
            text += &format!("      run {}: {}\n", f.attempt, sig.describe());
        }
        text
    }

    fn summary(&self, totals: &Totals) -> String {
        let mut text = String::new();
        if totals.flaky > 0 {
            text += &format!(
                "{} scenario(s) FLAKY: their verdicts differ between runs (see FLAKY lines); counted as failed\n",
                totals.flaky
            );
        }
        if totals.deviations > 0 {
            text += &format!(
                "{} of the passes are known deviations of the broker (see DEV lines)\n",
                totals.deviations
            );
        }
        if totals.unsupported > 0 {
            text += &format!(
                "{} of the passes use a convention outside MQTT 3.1.1 the broker lacks (see UNSUP lines)\n",
                totals.unsupported
            );
        }
        for (what, path) in &self.artifacts {
            text += &format!("{what}: {}\n", path.display());
        }
        if totals.skipped > 0 {
            text += &format!(
                "{} passed, {} failed, {} skipped\n",
                totals.passed, totals.failed, totals.skipped
            );
        } else {
            text += &format!("{} passed, {} failed\n", totals.passed, totals.failed);
        }
        text
    }
}

impl Drop for Human {
    // A run that ends early (Ctrl-C, an environment error) must not leave
    // a half-drawn bar on the terminal.
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for Human {
    fn wants_live(&self) -> bool {
        self.verbose
    }

    fn as_finished(&self) -> bool {
        true
    }

    fn jobs(&mut self, jobs: usize) {
        self.jobs = jobs;
    }

    fn report(&mut self, ev: &RunEvent) -> Result<(), Error> {
        match ev {
            RunEvent::RunStarted {
                count,
                brokers,
                target,
            } => {
                self.total = *count;
                self.matrix = (brokers.len() > 1)
                    .then(|| brokers.iter().map(|b| b.len() + 2).max().unwrap_or(0));
                if self.bar_allowed && *count > 1 {
                    let bar = ProgressBar::with_draw_target(
                        Some(*count as u64),
                        ProgressDrawTarget::stderr(),
                    );
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{elapsed:>4} [{bar:30}] {pos}/{len} {wide_msg}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.enable_steady_tick(Duration::from_millis(200));
                    self.bar = Some(bar);
                }
                self.print(&format!(
                    "running {count} scenario(s) against {}, device: {target}\n",
                    brokers.join(", ")
                ))
            }
            RunEvent::ScenarioStarted { id, broker, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(if self.matrix.is_some() {
                        format!("{id} [{broker}]")
                    } else {
                        id.clone()
                    });
                }
                if self.verbose {
                    self.print(&format!("START {id}\n"))?;
                }
                Ok(())
            }
            // Every event, pings and held packets included: the live view
            // is what crossed the wire, as the HTML event log shows it.
            RunEvent::Live { event, .. } => {
                // The board's frames only where they tell something (a
                // fault acted, or DHCP, DNS, a refusal): the packets
                // around them say the rest.
                if let crate::history::EventKind::Frame {
                    fate: crate::history::FrameFate::Delivered,
                    note: None,
                    ..
                } = &event.kind
                {
                    return Ok(());
                }
                self.print(&format!("      {}\n", describe::line(event)))
            }
            RunEvent::ScenarioFinished(f) => {
                self.done += 1;
                let text = self.finished_text(f);
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                self.print(&text)
            }
            RunEvent::ScenarioRepeated(r) => {
                let text = self.repeated_text(r);
                self.print(&text)
            }
            RunEvent::RunFinished {
                totals,
                interrupted,
                ..
            } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let mut text = self.summary(totals);
                if let Some(sig) = interrupted {
                    text += &format!(
                        "INTERRUPTED by {sig}: the run was cut short; unfinished scenarios are counted as errors\n"
                    );
                }
                self.print(&text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;
    use crate::report::Finished;
    use crate::runner::Outcome;
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn finished(id: &str, broker: &str) -> RunEvent {
        let o = Outcome {
            id: id.into(),
            name: "n".into(),
            path: "x.toml".into(),
            status: Status::Passed,
            failures: Vec::new(),
            verdicts: Vec::new(),
            history: History::default(),
            duration: Duration::from_millis(500),
        };
        RunEvent::ScenarioFinished(Arc::new(Finished::new(
            0,
            broker,
            o,
            SystemTime::UNIX_EPOCH,
        )))
    }

    #[test]
    fn matrix_lines_name_the_broker_in_one_column() {
        let out = Shared::default();
        let mut h = Human::new(Box::new(out.clone()), false, Vec::new(), false);
        h.report(&RunEvent::RunStarted {
            count: 2,
            brokers: vec!["mosquitto".into(), "embedded".into()],
            target: "virtual".into(),
        })
        .unwrap();
        h.report(&finished("a", "mosquitto")).unwrap();
        h.report(&finished("b", "embedded")).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "running 2 scenario(s) against mosquitto, embedded, device: virtual",
                "PASS  [mosquitto] a                                           0.5s  n",
                "PASS  [embedded]  b                                           0.5s  n",
            ]
        );
        // Not a terminal: no bar, no escape sequences.
        assert!(!text.contains('\x1b'));
    }
}
