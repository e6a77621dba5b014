//! The normalized trace of every scenario as a text file,
//! `<dir>/<id>.trace` (`<dir>/<broker>/<id>.trace` when a run has several
//! brokers), for review and diffing.

use std::path::{Path, PathBuf};

use super::events::{slug, RunEvent};
use super::Reporter;
use crate::error::Error;

pub struct TraceFiles {
    dir: PathBuf,
    per_broker: bool,
}

impl TraceFiles {
    pub fn new(dir: &Path) -> Result<TraceFiles, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(TraceFiles {
            dir: dir.to_path_buf(),
            per_broker: false,
        })
    }
}

/// `dir/name` or `dir/<broker>/name`, its folder created.
pub fn place(dir: &Path, per_broker: bool, broker: &str, name: &str) -> Result<PathBuf, Error> {
    let folder = if per_broker {
        dir.join(slug(broker))
    } else {
        dir.to_path_buf()
    };
    std::fs::create_dir_all(&folder)
        .map_err(|e| Error::io(format!("creating {}", folder.display()), e))?;
    Ok(folder.join(name))
}

impl Reporter for TraceFiles {
    fn report(&mut self, ev: &RunEvent) -> Result<(), Error> {
        match ev {
            RunEvent::RunStarted { brokers, .. } => self.per_broker = brokers.len() > 1,
            RunEvent::ScenarioFinished(f) => {
                let path = place(
                    &self.dir,
                    self.per_broker,
                    &f.broker,
                    &format!("{}.trace", f.file_stem()),
                )?;
                std::fs::write(&path, &f.trace)
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            }
            _ => {}
        }
        Ok(())
    }
}
