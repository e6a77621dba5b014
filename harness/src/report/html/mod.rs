//! `--report DIR`: a static HTML report of the run. `DIR/index.html` holds
//! the summary table (for a run against several brokers, a scenario ×
//! broker matrix); each scenario has its page, `DIR/<id>.html` (or
//! `DIR/<broker>/<id>.html` with several brokers), with its sequence
//! diagram ([`svg`]), verdicts, normalized trace and event log. The index
//! is rewritten after every scenario, so an interrupted run still leaves a
//! report of what ran.

pub mod page;
pub mod svg;

use std::path::{Path, PathBuf};

pub use page::{index, matrix_index, scenario, IndexRow};

use super::events::{slug, RunEvent};
use super::Reporter;
use crate::error::Error;

pub struct HtmlReport {
    dir: PathBuf,
    brokers: Vec<String>,
    target: String,
    rows: Vec<IndexRow>,
    interrupted: Option<crate::signals::Signal>,
}

impl HtmlReport {
    pub fn new(dir: &Path) -> Result<HtmlReport, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(HtmlReport {
            dir: dir.to_path_buf(),
            brokers: Vec::new(),
            target: String::new(),
            rows: Vec::new(),
            interrupted: None,
        })
    }

    fn write(&self, rel: &str, text: &str) -> Result<(), Error> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    fn write_index(&self) -> Result<(), Error> {
        let text = if self.brokers.len() > 1 {
            let title = format!("mqtt-hil matrix, device: {}", self.target);
            matrix_index(&title, &self.brokers, &self.rows)
        } else {
            let title = format!(
                "mqtt-hil run against {}, device: {}",
                self.brokers.join(", "),
                self.target
            );
            index(&title, &self.rows)
        };
        // A run a signal cut short says so above its table.
        let text = match self.interrupted {
            Some(sig) => text.replacen(
                "</h1>",
                &format!("</h1>\n<p class=\"failed\" id=\"interrupted\"><strong>INTERRUPTED</strong> by {sig}: the run was cut short; scenarios it stopped or never started are errors.</p>"),
                1,
            ),
            None => text,
        };
        self.write("index.html", &text)
    }
}

impl Reporter for HtmlReport {
    fn report(&mut self, ev: &RunEvent) -> Result<(), Error> {
        match ev {
            RunEvent::RunStarted {
                brokers, target, ..
            } => {
                self.brokers = brokers.clone();
                self.target = target.clone();
            }
            RunEvent::ScenarioFinished(f) => {
                let (rel, back) = if self.brokers.len() > 1 {
                    (
                        format!("{}/{}.html", slug(&f.broker), slug(&f.file_stem())),
                        "../index.html",
                    )
                } else {
                    (format!("{}.html", slug(&f.file_stem())), "index.html")
                };
                self.write(&rel, &scenario(f, back))?;
                self.rows.push(IndexRow::of(f, rel));
                self.write_index()?;
            }
            // Every run of a scenario whose runs disagree shows FLAKY.
            RunEvent::ScenarioRepeated(r) => {
                if let Some(flaky) = &r.flaky {
                    let why = format!("{}; {}", flaky.summary(), flaky.differing_text());
                    for row in self
                        .rows
                        .iter_mut()
                        .filter(|row| row.id == r.id() && row.broker == r.broker)
                    {
                        row.flaky = Some(why.clone());
                    }
                    self.write_index()?;
                }
            }
            RunEvent::RunFinished { interrupted, .. } => {
                self.interrupted = *interrupted;
                self.write_index()?
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::history::{EventKind, History};
    use crate::report::Finished;
    use crate::runner::{Outcome, Status};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    fn finished(id: &str, broker: &str, status: Status) -> Arc<Finished> {
        let history = History::build()
            .push(EventKind::Broker {
                what: "started".into(),
            })
            .push(EventKind::Actor {
                actor: "device".into(),
                what: "odd <thing>".into(),
            })
            .finish();
        let mut v = Verdict::new("will");
        if status == Status::Failed {
            v.fail("MQTT-3.1.2-8", "no will", vec![1]);
        }
        let o = Outcome {
            id: id.into(),
            name: format!("scenario {id}"),
            path: format!("scenarios/{id}.toml").into(),
            status,
            failures: Vec::new(),
            verdicts: vec![v],
            history,
            duration: Duration::from_millis(100),
        };
        Arc::new(Finished::new(0, broker, o, SystemTime::UNIX_EPOCH))
    }

    #[test]
    fn a_matrix_run_links_every_cell_to_its_page() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = HtmlReport::new(dir.path()).unwrap();
        let brokers = vec![
            "mosquitto".to_string(),
            "external:127.0.0.1:1883".to_string(),
        ];
        r.report(&RunEvent::RunStarted {
            count: 3,
            brokers: brokers.clone(),
            target: "virtual".into(),
        })
        .unwrap();
        for f in [
            finished("a", "mosquitto", Status::Passed),
            finished("a", "external:127.0.0.1:1883", Status::Failed),
            finished("b", "mosquitto", Status::Deviation("known".into())),
        ] {
            r.report(&RunEvent::ScenarioFinished(f)).unwrap();
        }
        let index = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(
            index.contains("<th>mosquitto</th><th>external:127.0.0.1:1883</th>"),
            "{index}"
        );
        assert!(
            index.contains(r#"<td class="failed"><a href="external_127.0.0.1_1883/a.html" title="will [MQTT-3.1.2-8]: no will (events #1)">FAIL</a></td>"#),
            "{index}"
        );
        assert!(
            index.contains(r#"<a href="mosquitto/b.html" title="known">DEV</a>"#),
            "{index}"
        );
        // b never ran against the external broker.
        assert!(index.contains("<td>—</td>"), "{index}");
        let page =
            std::fs::read_to_string(dir.path().join("external_127.0.0.1_1883/a.html")).unwrap();
        assert!(page.contains(r#"<a href="../index.html">"#), "{page}");
        // The offending event is marked in the log and linked from the verdict.
        assert!(page.contains(r#"<tr id="e1" class="offending">"#), "{page}");
        assert!(page.contains(r##"<a href="#e1">#1</a>"##), "{page}");
        assert!(page.contains("odd &lt;thing&gt;"), "{page}");
        assert!(dir.path().join("mosquitto/a.html").is_file());
    }
}
