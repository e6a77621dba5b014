//! Known deviations: behaviour of a broker that breaks a rule, recorded per
//! broker with its reason and the specification statement it concerns, so
//! the suite stays green while the deviation stays visible. A deviation that
//! stops happening is reported too, so the list never goes stale.
//!
//! One file per broker: `<scenario folder>/deviations/<broker>.toml`.
//!
//! ```toml
//! [[deviation]]
//! scenario = "keepalive_expiry"
//! rules = ["MQTT-3.1.2-24"]        # the checker rules (or "step N") that fail
//! reason = "what the broker does instead"
//! spec = "the statement of the spec it breaks"
//! intermittent = false             # true: timing-dependent, may not show
//! kind = "deviation"               # or "unsupported": a non-standard
//!                                  # convention ($queue/, $local/) it lacks
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use super::{Outcome, Status};
use crate::error::{Error, Result};

const STALE: &str = "the known deviation";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deviation {
    pub scenario: String,
    pub rules: Vec<String>,
    pub reason: String,
    pub spec: String,
    /// The deviation depends on timing the broker does not control the
    /// same way every run: its absence is noted, not failed.
    #[serde(default)]
    pub intermittent: bool,
    /// `deviation` (default): the broker breaks a rule of the spec.
    /// `unsupported`: the scenario uses a convention outside MQTT 3.1.1
    /// (`$share/` from 5.0, `$queue/`, `$local/`) that this broker does not
    /// implement: recorded the same way, so its support is known and a
    /// broker that starts supporting it shows up as STALE.
    #[serde(default)]
    pub kind: Kind,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Deviation,
    Unsupported,
}

#[derive(Clone, Debug, Default)]
pub struct Deviations {
    pub file: Option<std::path::PathBuf>,
    pub list: Vec<Deviation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    deviation: Vec<Deviation>,
}

impl Deviations {
    /// Loads `folder/deviations/<broker>.toml` if it exists.
    pub fn load(folder: &Path, broker: &str) -> Result<Deviations> {
        let path = folder.join("deviations").join(format!("{broker}.toml"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(Deviations::default());
        };
        let f: File = toml::from_str(&text).map_err(|e| Error::Input {
            file: path.clone(),
            line: e
                .span()
                .map(|s| text[..s.start].matches('\n').count() + 1)
                .unwrap_or(1),
            message: e.message().trim_end().to_string(),
        })?;
        Ok(Deviations {
            file: Some(path),
            list: f.deviation,
        })
    }

    pub fn for_scenario(&self, id: &str) -> Option<&Deviation> {
        self.list.iter().find(|d| d.scenario == id)
    }

    /// Whether the outcome failed only because a declared deviation did
    /// not happen (the broker now conforms, or the entry is wrong).
    pub fn is_stale(&self, o: &Outcome) -> bool {
        self.for_scenario(&o.id).is_some_and(|d| !d.intermittent)
            && o.status == Status::Failed
            && !o.failures.is_empty()
            && o.failures
                .iter()
                .all(|f| f.step == 0 && f.message.starts_with(STALE))
            && o.verdicts.iter().all(|v| v.ok())
    }

    /// Reclassifies an outcome: a failure made only of declared rules is an
    /// expected deviation; a declared deviation that did not occur fails.
    pub fn apply(&self, mut o: Outcome) -> Outcome {
        let Some(d) = self.for_scenario(&o.id) else {
            return o;
        };
        let file = self
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        let seen = signature(&o);
        match &o.status {
            Status::Failed => {
                let declared: BTreeSet<String> = d.rules.iter().cloned().collect();
                if seen.is_subset(&declared) {
                    o.status = Status::Deviation(format!("{} ({})", d.reason, d.spec));
                }
            }
            Status::Passed if d.intermittent => {}
            Status::Passed => {
                o.status = Status::Failed;
                o.failures.push(super::StepFailure {
                    step: 0,
                    line: 0,
                    message: format!(
                        "{STALE} [{}] did not happen: the broker now conforms, so remove it from {file}",
                        d.rules.join(", ")
                    ),
                });
            }
            _ => {}
        }
        o
    }
}

/// The rules an outcome broke: checker rules, and `step N` for failed steps.
pub fn signature(o: &Outcome) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = o
        .verdicts
        .iter()
        .flat_map(|v| v.violations.iter().map(|x| x.rule.clone()))
        .collect();
    s.extend(o.failures.iter().map(|f| format!("step {}", f.step)));
    s
}
