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
                        format!("{}/{}.html", slug(&f.broker), slug(&f.outcome.id)),
                        "../index.html",
                    )
                } else {
                    (format!("{}.html", slug(&f.outcome.id)), "index.html")
                };
                self.write(&rel, &scenario(f, back))?;
                self.rows.push(IndexRow::of(f, rel));
                self.write_index()?;
            }
            RunEvent::RunFinished { .. } => self.write_index()?,
            _ => {}
        }
        Ok(())
    }
}
