//! Brokers the harness talks to. A [`BrokerSpec`] names one (`mosquitto`,
//! `external:HOST:PORT`, later containers and an embedded broker); a running
//! [`Broker`] gives its address and the lifecycle actions scenarios script.

mod external;
mod mosquitto;

use std::net::SocketAddr;
use std::path::Path;

use crate::error::{Error, Result};

pub use external::External;
pub use mosquitto::Mosquitto;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerSpec {
    /// A local mosquitto process on a free loopback port, persistence on.
    Mosquitto,
    /// A broker someone else runs; lifecycle actions are unavailable.
    External { host: String, port: u16 },
}

impl std::str::FromStr for BrokerSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<BrokerSpec> {
        if s == "mosquitto" {
            return Ok(BrokerSpec::Mosquitto);
        }
        if let Some(rest) = s.strip_prefix("external:") {
            if let Some((host, port)) = rest.rsplit_once(':') {
                if let Ok(port) = port.parse() {
                    return Ok(BrokerSpec::External {
                        host: host.trim_matches(['[', ']']).to_string(),
                        port,
                    });
                }
            }
            return Err(Error::Usage(format!(
                "broker `{s}`: expected external:HOST:PORT, e.g. external:127.0.0.1:1883"
            )));
        }
        Err(Error::Usage(format!(
            "unknown broker `{s}`: use `mosquitto` or `external:HOST:PORT`"
        )))
    }
}

impl BrokerSpec {
    /// Name of the broker's profile (its known deviations file).
    pub fn profile(&self) -> String {
        match self {
            BrokerSpec::Mosquitto => "mosquitto".into(),
            BrokerSpec::External { .. } => "external".into(),
        }
    }
}

impl std::fmt::Display for BrokerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerSpec::Mosquitto => f.write_str("mosquitto"),
            BrokerSpec::External { host, port } => write!(f, "external:{host}:{port}"),
        }
    }
}

/// What a broker promises about persistent sessions, so checkers only
/// demand what was promised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promises {
    /// Sessions and queued messages survive a graceful restart.
    pub persists_across_restart: bool,
    /// ... and survive kill -9.
    pub persists_across_kill: bool,
}

pub enum Broker {
    Mosquitto(Mosquitto),
    External(External),
}

impl Broker {
    pub async fn start(spec: &BrokerSpec, workdir: &Path) -> Result<Broker> {
        Ok(match spec {
            BrokerSpec::Mosquitto => Broker::Mosquitto(Mosquitto::start(workdir).await?),
            BrokerSpec::External { host, port } => {
                Broker::External(External::connect(host, *port).await?)
            }
        })
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Broker::Mosquitto(m) => m.addr(),
            Broker::External(e) => e.addr(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Broker::Mosquitto(m) => m.describe(),
            Broker::External(e) => e.describe(),
        }
    }

    pub fn promises(&self) -> Promises {
        match self {
            Broker::Mosquitto(_) => Mosquitto::PROMISES,
            Broker::External(_) => Promises {
                persists_across_restart: false,
                persists_across_kill: false,
            },
        }
    }

    /// Runs a lifecycle action from a scenario: start, stop, restart, kill.
    pub async fn act(&mut self, action: &str) -> Result<()> {
        match self {
            Broker::Mosquitto(m) => match action {
                "restart" => m.restart().await,
                "stop" => m.stop().await,
                "start" => m.start_again().await,
                "kill" => m.kill().await,
                "kill_restart" => {
                    m.kill().await?;
                    m.start_again().await
                }
                other => Err(Error::Usage(format!("unknown broker action `{other}`"))),
            },
            Broker::External(e) => Err(Error::env(
                format!(
                    "broker action `{action}` needs a broker the harness runs; {} is external",
                    e.describe()
                ),
                "run this scenario with --broker mosquitto",
            )),
        }
    }

    pub async fn shutdown(self) {
        if let Broker::Mosquitto(m) = self {
            m.shutdown().await;
        }
    }
}
