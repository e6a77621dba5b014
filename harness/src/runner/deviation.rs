//! Known deviations: behaviour of a broker that breaks a rule, recorded per
//! broker with its reason and the specification statement it concerns, so
//! the suite stays green while the deviation stays visible. A deviation that
//! stops happening is reported too, so the list never goes stale.
//!
//! One file per broker profile: `<scenario folder>/deviations/<profile>.toml`.
//! It is the broker's profile file: besides the deviations, an external
//! broker's file may declare its capabilities and give hooks that control
//! it (`--broker external:HOST:PORT --profile NAME`; see
//! [`crate::broker::Declared`] and [`crate::broker::hooks`]):
//!
//! ```toml
//! [capabilities]                 # external brokers only
//! persistence = true
//! shared_subscriptions = false
//!
//! [hooks]                        # external brokers only
//! restart = "systemctl restart my-broker"
//!
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
use crate::broker::{BrokerSpec, Declared, HookContext, Hooks};
use crate::error::{Error, Result};
use crate::scenario::fields::Source;

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
    /// The file that declares it (set when loaded).
    #[serde(skip)]
    pub file: Option<std::path::PathBuf>,
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
    /// `[capabilities]`: what an external broker's profile declares.
    pub capabilities: Option<Declared>,
    /// `[hooks]`: how the harness controls an external broker.
    pub hooks: Option<Hooks>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    deviation: Vec<Deviation>,
    capabilities: Option<Declared>,
    hooks: Option<Hooks>,
}

impl Deviations {
    /// Loads `folder/deviations/<broker>.toml` if it exists.
    pub fn load(folder: &Path, broker: &str) -> Result<Deviations> {
        let path = folder.join("deviations").join(format!("{broker}.toml"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(Deviations::default());
        };
        let src = Source {
            path: &path,
            text: &text,
        };
        let f: File = toml::from_str(&text).map_err(|e| src.syntax_error(&e))?;
        if let Some(q) = f.capabilities.as_ref().and_then(|c| c.maximum_qos) {
            if q > 2 {
                return Err(Error::Input {
                    file: path.clone(),
                    line: text
                        .lines()
                        .position(|l| l.trim_start().starts_with("maximum_qos"))
                        .map_or(1, |i| i + 1),
                    message: format!(
                        "[capabilities] maximum_qos = {q}: a QoS is 0, 1 or 2 (what the broker's 5.0 CONNACK announces as Maximum QoS)"
                    ),
                });
            }
        }
        let mut list = f.deviation;
        for d in &mut list {
            d.file = Some(path.clone());
        }
        Ok(Deviations {
            file: Some(path),
            list,
            capabilities: f.capabilities,
            hooks: f.hooks,
        })
    }

    /// The profile file of `broker` in `folder/deviations/`: required when
    /// named with `--profile`; `[capabilities]` and `[hooks]` only for an
    /// external broker (the others' are built in).
    pub fn for_broker(folder: &Path, broker: &BrokerSpec) -> Result<Deviations> {
        let name = broker.profile();
        let path = folder.join("deviations").join(format!("{name}.toml"));
        if broker.profile_required() && !path.is_file() {
            return Err(Error::Usage(format!(
                "{}: no such profile file (--profile {name} reads deviations/{name}.toml next to the scenarios); create it, even empty, or leave out --profile",
                path.display()
            )));
        }
        let d = Deviations::load(folder, &name)?;
        if !matches!(broker, BrokerSpec::External { .. }) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (table, present) in [
                ("capabilities", d.capabilities.is_some()),
                ("hooks", d.hooks.is_some()),
            ] {
                if present {
                    let line = text
                        .lines()
                        .position(|l| l.trim() == format!("[{table}]"))
                        .map_or(1, |i| i + 1);
                    return Err(Error::Input {
                        file: path.clone(),
                        line,
                        message: format!(
                            "[{table}] is for an external broker's profile; {broker} is run by the harness, which knows its capabilities and controls it itself"
                        ),
                    });
                }
            }
        }
        Ok(d)
    }

    /// The deviations of `broker` for scenarios from several folders: the
    /// first folder's profile file as [`Deviations::for_broker`] reads it,
    /// joined by the `[[deviation]]`s of the same profile in the others'
    /// `deviations/` (e.g. `scenarios/v5/deviations/`), so one matrix over
    /// `scenarios` and `scenarios/v5` judges each scenario by the file
    /// next to it. A scenario declared in two files is an error naming
    /// both; `[capabilities]` and `[hooks]` belong to the first file only.
    pub fn for_broker_in(
        folders: &[std::path::PathBuf],
        broker: &BrokerSpec,
    ) -> Result<Deviations> {
        let Some((first, rest)) = folders.split_first() else {
            return Ok(Deviations::default());
        };
        let mut d = Deviations::for_broker(first, broker)?;
        let name = broker.profile();
        for folder in rest {
            if folder == first {
                continue;
            }
            let more = Deviations::load(folder, &name)?;
            let Some(file) = more.file.clone() else {
                continue;
            };
            if more.capabilities.is_some() || more.hooks.is_some() {
                return Err(Error::Input {
                    file,
                    line: 1,
                    message: format!(
                        "[capabilities] and [hooks] of profile `{name}` belong in the profile file of the first scenario folder ({}), not here: this file may only add [[deviation]]s",
                        first.join("deviations").join(format!("{name}.toml")).display()
                    ),
                });
            }
            for dev in more.list {
                if let Some(prev) = d.for_scenario(&dev.scenario) {
                    return Err(Error::Usage(format!(
                        "scenario `{}` has deviations of profile `{name}` in two files, {} and {}: keep one",
                        dev.scenario,
                        prev.file.as_ref().map(|f| f.display().to_string()).unwrap_or_default(),
                        file.display()
                    )));
                }
                d.list.push(dev);
            }
            if d.file.is_none() {
                d.file = Some(file);
            }
        }
        Ok(d)
    }

    /// What the broker offers, as built in and as its profile file declares.
    pub fn profile_of(&self, broker: &BrokerSpec) -> crate::broker::Profile {
        broker
            .capabilities()
            .declare(self.capabilities.as_ref(), self.hooks.as_ref())
    }

    /// The hooks of an external broker, ready to run for a scenario whose
    /// work folder is `workdir`.
    pub fn hook_context(&self, workdir: &Path) -> Option<HookContext> {
        self.hooks.as_ref().map(|h| HookContext {
            hooks: h.clone(),
            profile_dir: crate::broker::hooks::profile_dir(self.file.as_deref()),
            log: workdir.join("hooks.log"),
        })
    }

    pub fn for_scenario(&self, id: &str) -> Option<&Deviation> {
        self.list.iter().find(|d| d.scenario == id)
    }

    /// Whether the outcome failed only because a declared deviation did
    /// not happen (the broker now conforms, or the entry is wrong).
    /// Or a declared capability (`queue_subscriptions = false`) that did
    /// not hold (`super::convention`).
    pub fn is_stale(&self, o: &Outcome) -> bool {
        let only = |prefix: &str| {
            !o.failures.is_empty()
                && o.failures
                    .iter()
                    .all(|f| f.step == 0 && f.message.starts_with(prefix))
        };
        o.status == Status::Failed
            && o.verdicts.iter().all(|v| v.ok())
            && ((self.for_scenario(&o.id).is_some_and(|d| !d.intermittent) && only(STALE))
                || only(super::convention::STALE_CAPABILITY))
    }

    /// Reclassifies an outcome: a failure made only of declared rules is an
    /// expected deviation; a declared deviation that did not occur fails.
    pub fn apply(&self, mut o: Outcome) -> Outcome {
        let Some(d) = self.for_scenario(&o.id) else {
            return o;
        };
        let file = d
            .file
            .as_ref()
            .or(self.file.as_ref())
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        let seen = signature(&o);
        match &o.status {
            Status::Failed => {
                let declared: BTreeSet<String> = d.rules.iter().cloned().collect();
                if seen.is_subset(&declared) {
                    let why = format!("{} ({})", d.reason, d.spec);
                    o.status = match d.kind {
                        Kind::Deviation => Status::Deviation(why),
                        Kind::Unsupported => Status::Unsupported(why),
                    };
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
