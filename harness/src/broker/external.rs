//! A broker someone else runs. The harness checks it is there the way a
//! client would — a CONNECT answered by a CONNACK, then a DISCONNECT — so
//! a run leaves no half-open connections in the broker's log, and carries
//! out broker steps only through the hooks of its profile file
//! ([`super::hooks`]).

use std::net::SocketAddr;
use std::time::Duration;

use super::hooks::HookContext;
use crate::error::{Error, Result};

/// How long the broker gets to answer the first CONNECT.
const READY: Duration = Duration::from_secs(5);

pub struct External {
    addr: SocketAddr,
    host: String,
    name: String,
    hooks: Option<HookContext>,
}

impl External {
    pub async fn connect(host: &str, port: u16, hooks: Option<HookContext>) -> Result<External> {
        let name = format!("external broker {host}:{port}");
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Error::io(format!("resolving {name}"), e))?
            .next()
            .ok_or_else(|| Error::env(format!("{name}: no address"), "check the host name"))?;
        match super::probe::connack(addr, READY).await {
            Ok(()) => Ok(External {
                addr,
                host: host.to_string(),
                name,
                hooks,
            }),
            Err(e) if e.starts_with("TCP connect") => Err(Error::env(
                format!("{name} refuses connections ({e})"),
                "start the broker first, or use --broker mosquitto",
            )),
            Err(e) => Err(Error::env(
                format!("{name} does not answer MQTT: {e}"),
                "check that the port is the broker's MQTT listener (plain TCP, MQTT 3.1.1) and that it accepts anonymous clients",
            )),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn describe(&self) -> String {
        self.name.clone()
    }

    /// A broker step is a hook and then the wait for its effect, each
    /// bounded by the hooks' timeout.
    pub fn startup_allowance(&self) -> Duration {
        self.hooks.as_ref().map_or(Duration::from_secs(10), |h| {
            h.hooks.timeout() * 2 + Duration::from_secs(1)
        })
    }

    pub async fn act(&self, action: &str) -> Result<()> {
        match &self.hooks {
            Some(h) if h.hooks.get(action).is_some() || action == "kill_restart" => {
                h.act(action, &self.host, self.addr).await
            }
            _ => Err(Error::env(
                format!(
                    "broker step `{action}` on {} needs a `{action}` hook in its profile's [hooks]",
                    self.name
                ),
                "give the broker a profile (--profile NAME, scenarios/deviations/NAME.toml) with that hook",
            )),
        }
    }
}
