//! Brokers the harness talks to. A [`BrokerSpec`] names one (`mosquitto`,
//! `embedded`, `container:IMAGE[:TAG]`, `external:HOST:PORT`, the latter
//! with a profile name from `--profile`); a running [`Broker`] gives its
//! address and the lifecycle and network actions scenarios script (for an
//! external broker, through the [`hooks`] of its profile file). What each
//! broker offers (restart, pause, network cuts, `$share`/`$queue`/`$local`)
//! is its [`Profile`], so a scenario that needs more is skipped with the
//! reason instead of failing.

pub mod container;
pub mod docker;
pub mod embedded;
mod external;
pub mod hooks;
mod mosquitto;
mod port;
pub mod probe;
mod profile;
pub mod tenancy;
pub mod warm;

use std::net::SocketAddr;
use std::path::Path;

use crate::error::{Error, Result};

pub use container::{Container, ImageRef};
pub use embedded::Embedded;
pub use external::External;
pub use hooks::{HookContext, Hooks};
pub use mosquitto::Mosquitto;
pub use profile::{Convention, Declared, Profile};

/// What a scenario does to its broker, which decides what its broker may
/// share with other scenarios'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tenure {
    /// No broker action: under a matrix, a tenant of a shared container
    /// where the image has tenants ([`tenancy`]).
    Tenant,
    /// Restarts, kills or pauses its broker: a broker of its own.
    Own,
    /// Cuts its broker off the network: a container on a Docker network of
    /// its own, too.
    OwnNetwork,
}

impl Tenure {
    pub fn of(scenario: &crate::scenario::Scenario) -> Tenure {
        if scenario.cuts_broker_network() {
            Tenure::OwnNetwork
        } else if scenario.acts_on_broker() {
            Tenure::Own
        } else {
            Tenure::Tenant
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerSpec {
    /// A local mosquitto process on a free loopback port, persistence on.
    Mosquitto,
    /// rumqttd in this process on a free loopback port.
    Embedded,
    /// A container the harness starts (through the `docker` client), on its
    /// own network.
    Container(ImageRef),
    /// A broker someone else runs; lifecycle actions only through the
    /// hooks of its profile (`deviations/<profile>.toml`, `--profile`).
    External {
        host: String,
        port: u16,
        /// `--profile NAME`; without it the profile is `external`, whose
        /// file is optional.
        profile: Option<String>,
    },
}

impl std::str::FromStr for BrokerSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<BrokerSpec> {
        if s == "mosquitto" {
            return Ok(BrokerSpec::Mosquitto);
        }
        if s == "embedded" {
            return Ok(BrokerSpec::Embedded);
        }
        if let Some(image) = s.strip_prefix("container:") {
            return Ok(BrokerSpec::Container(ImageRef::parse(image)?));
        }
        if let Some(rest) = s.strip_prefix("external:") {
            if let Some((host, port)) = rest.rsplit_once(':') {
                if let Ok(port) = port.parse() {
                    return Ok(BrokerSpec::External {
                        host: host.trim_matches(['[', ']']).to_string(),
                        port,
                        profile: None,
                    });
                }
            }
            return Err(Error::Usage(format!(
                "broker `{s}`: expected external:HOST:PORT, e.g. external:127.0.0.1:1883"
            )));
        }
        Err(Error::Usage(format!(
            "unknown broker `{s}`: use mosquitto, embedded, container:IMAGE[:TAG] (e.g. container:rabbitmq) or external:HOST:PORT"
        )))
    }
}

impl BrokerSpec {
    /// Parses a `--broker` value; `auto` picks the cheapest broker this
    /// machine has: the mosquitto process, else the embedded rumqttd (which
    /// needs nothing installed).
    pub fn resolve(s: &str) -> Result<BrokerSpec> {
        if s == "auto" {
            let have_mosquitto = match std::env::var_os("MQTT_HIL_MOSQUITTO") {
                Some(p) => Path::new(&p).is_file(),
                None => crate::process::find_program("mosquitto").is_some(),
            };
            return Ok(if have_mosquitto {
                BrokerSpec::Mosquitto
            } else {
                BrokerSpec::Embedded
            });
        }
        s.parse()
    }

    /// `--profile NAME`: which profile file an external broker takes its
    /// capabilities, hooks and deviations from. The brokers the harness
    /// runs itself have theirs built in.
    pub fn with_profile(self, profile: Option<String>) -> Result<BrokerSpec> {
        match (self, profile) {
            (s, None) => Ok(s),
            (BrokerSpec::External { host, port, .. }, Some(p)) => {
                if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || p.starts_with('.') {
                    return Err(Error::Usage(format!(
                        "--profile `{p}`: a profile is a file name in the scenarios' deviations/ folder, without .toml (letters, digits, - _ .)"
                    )));
                }
                Ok(BrokerSpec::External {
                    host,
                    port,
                    profile: Some(p),
                })
            }
            (s, Some(p)) => Err(Error::Usage(format!(
                "--profile {p} is for external brokers (--broker external:HOST:PORT); {s} has its profile built in (`{}`)",
                s.profile()
            ))),
        }
    }

    /// Checks, before any scenario runs, what would stop the broker from
    /// starting for every scenario alike: the container image is on this
    /// machine (and the Docker engine answers), the external broker answers
    /// a CONNECT, mosquitto is installed. A run then reports such a set-up
    /// once (exit 2), not as the same ERROR for each scenario. Starts
    /// nothing that outlives the check.
    pub async fn preflight(&self) -> Result<()> {
        match self {
            BrokerSpec::Mosquitto => Mosquitto::program().map(|_| ()),
            BrokerSpec::Embedded => Ok(()),
            BrokerSpec::Container(image) => {
                let docker = container::docker().await?;
                container::ensure_image(&docker, image).await
            }
            BrokerSpec::External { host, port, .. } => {
                External::connect(host, *port, None).await.map(|_| ())
            }
        }
    }

    /// Name of the broker's profile (its profile file,
    /// `deviations/<name>.toml`).
    pub fn profile(&self) -> String {
        self.capabilities().name
    }

    /// Whether the profile file must exist (one named with `--profile`).
    pub fn profile_required(&self) -> bool {
        matches!(
            self,
            BrokerSpec::External {
                profile: Some(_),
                ..
            }
        )
    }

    /// What this broker offers scenarios, before its profile file is read
    /// and before it is started.
    pub fn capabilities(&self) -> Profile {
        match self {
            BrokerSpec::Mosquitto => Profile::mosquitto_process(),
            BrokerSpec::Embedded => Profile::embedded(),
            BrokerSpec::Container(image) => Profile::container(image),
            BrokerSpec::External { profile, .. } => {
                Profile::external(profile.as_deref().unwrap_or("external"))
            }
        }
    }
}

impl std::fmt::Display for BrokerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerSpec::Mosquitto => f.write_str("mosquitto"),
            BrokerSpec::Embedded => f.write_str("embedded"),
            // Our own images print by their short name, as typed
            // (`container:mosquitto`, `container:rabbitmq:4.0`).
            BrokerSpec::Container(image) => write!(f, "container:{}", image.short()),
            BrokerSpec::External { host, port, .. } => write!(f, "external:{host}:{port}"),
        }
    }
}

/// What a broker promises about persistent sessions, so checkers only
/// demand what was promised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Promises {
    /// Sessions and queued messages survive a graceful restart.
    pub persists_across_restart: bool,
    /// ... and survive kill -9.
    pub persists_across_kill: bool,
}

pub enum Broker {
    Mosquitto(Mosquitto),
    Embedded(Embedded),
    Container(Box<Container>),
    /// A vhost of a container shared with other scenarios.
    Tenant(Box<tenancy::Tenant>),
    External(External),
}

impl Broker {
    /// Starts (or, external, checks) the broker; `hooks` carry out the
    /// broker steps of an external one. `tenure`: what the scenario does
    /// to it ([`Tenure`]).
    pub async fn start(
        spec: &BrokerSpec,
        workdir: &Path,
        hooks: Option<HookContext>,
        tenure: Tenure,
    ) -> Result<Broker> {
        Ok(match spec {
            BrokerSpec::Mosquitto => Broker::Mosquitto(Mosquitto::start(workdir).await?),
            BrokerSpec::Embedded => Broker::Embedded(Embedded::start().await?),
            BrokerSpec::Container(image) if tenure == Tenure::OwnNetwork => {
                Broker::Container(Box::new(Container::start_alone(image).await?))
            }
            BrokerSpec::Container(image) => {
                if tenure == Tenure::Tenant {
                    if let Some(t) = warm::lease(image).await {
                        return Ok(Broker::Tenant(Box::new(t?)));
                    }
                }
                // Started ahead by a matrix (warm.rs), else now.
                let c = match warm::take(image).await {
                    Some(started) => started?,
                    None => Container::start(image).await?,
                };
                Broker::Container(Box::new(c))
            }
            BrokerSpec::External { host, port, .. } => {
                Broker::External(External::connect(host, *port, hooks).await?)
            }
        })
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Broker::Mosquitto(m) => m.addr(),
            Broker::Embedded(b) => b.addr(),
            Broker::Container(c) => c.addr(),
            Broker::Tenant(t) => t.addr(),
            Broker::External(e) => e.addr(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Broker::Mosquitto(m) => m.describe(),
            Broker::Embedded(b) => b.describe(),
            Broker::Container(c) => c.describe(),
            Broker::Tenant(t) => t.describe(),
            Broker::External(e) => e.describe(),
        }
    }

    /// How long bringing this broker up may take: the bound on lifecycle
    /// steps (restart, start, reconnect) so a slow but correct broker is
    /// not failed by a step's default timeout.
    pub fn startup_allowance(&self) -> std::time::Duration {
        match self {
            Broker::Container(c) => c.startup_allowance(),
            Broker::Tenant(t) => t.startup_allowance(),
            Broker::External(e) => e.startup_allowance(),
            _ => std::time::Duration::from_secs(10),
        }
    }

    pub fn promises(&self) -> Promises {
        match self {
            Broker::Mosquitto(_) => Mosquitto::PROMISES,
            Broker::Embedded(_) => Embedded::PROMISES,
            Broker::Container(c) => c.promises(),
            Broker::Tenant(t) => t.promises(),
            Broker::External(_) => Promises {
                persists_across_restart: false,
                persists_across_kill: false,
            },
        }
    }

    /// Runs a lifecycle action from a scenario: start, stop, restart, kill,
    /// kill_restart; pause and unpause; disconnect and reconnect (containers).
    pub async fn act(&mut self, action: &str) -> Result<()> {
        match self {
            Broker::Container(c) => c.act(action).await,
            Broker::Mosquitto(m) => match action {
                "restart" => m.restart().await,
                "stop" => m.stop().await,
                "start" => m.start_again().await,
                "kill" => m.kill().await,
                "pause" => m.pause(true),
                "unpause" => m.pause(false),
                "kill_restart" => {
                    m.kill().await?;
                    m.start_again().await
                }
                other => Err(Error::Usage(format!("unknown broker action `{other}`"))),
            },
            Broker::External(e) => e.act(action).await,
            // Never leased to a scenario with broker steps (runner).
            Broker::Tenant(_) => Err(Error::Usage(format!(
                "broker action `{action}` on {}: a scenario with broker steps needs a container of its own",
                self.describe()
            ))),
            Broker::Embedded(_) => Err(Error::env(
                format!(
                    "broker action `{action}` needs a broker the harness can control; {} cannot be",
                    self.describe()
                ),
                "run this scenario with --broker mosquitto, --broker container:IMAGE, or an external broker whose profile has hooks",
            )),
        }
    }

    pub async fn shutdown(self) {
        match self {
            Broker::Mosquitto(m) => m.shutdown().await,
            Broker::Container(c) => (*c).shutdown().await,
            Broker::Tenant(t) => (*t).shutdown().await,
            // Cannot be stopped (see embedded.rs); nothing to do for external.
            Broker::Embedded(_) | Broker::External(_) => {}
        }
    }
}

/// A loopback port for a broker: see [`port`]. With scenarios running at
/// once (`-j`), a broker that is down for a restart must not find its port
/// taken by another scenario's broker (whose clients it would then serve),
/// nor by a proxy lane, the other listener this process opens on port 0:
/// the broker's start check, which only connects, would then take the lane
/// for the broker (seen at `-j 8`). Brokers' ports lie below the range the
/// kernel offers for port 0; where there is no room for that, lanes ask
/// [`handed_out`] and never keep such a port.
pub(crate) use port::{free_port, handed_out};
