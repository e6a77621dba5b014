//! `--broker embedded`: rumqttd inside the harness process, for machines
//! with neither Docker nor mosquitto. Nothing to install, nothing to clean
//! up outside the process.
//!
//! rumqttd 0.20's `Broker::start()` blocks for ever and has no way to stop
//! (rumqtt#771). Each scenario still gets a fresh broker — state such as
//! retained messages must not leak between scenarios — on its own thread
//! and loopback port, and the old one is left running, idle, until the
//! process exits: per scenario that is a few threads, one listening socket
//! and the router's buffers (kept small below, ~1 MiB). [`leaked`] counts
//! them; a run of the whole suite leaves about 30.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

use super::{probe, Promises};
use crate::error::{Error, Result};

static STARTED: AtomicUsize = AtomicUsize::new(0);

/// Brokers started in this process that can no longer be stopped.
pub fn leaked() -> usize {
    STARTED.load(Ordering::Relaxed)
}

pub struct Embedded {
    addr: SocketAddr,
}

impl Embedded {
    /// Everything lives in memory and dies with the process.
    pub const PROMISES: Promises = Promises {
        persists_across_restart: false,
        persists_across_kill: false,
    };

    pub async fn start() -> Result<Embedded> {
        let port = super::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = ServerSettings {
            name: format!("mqtt-hil-embedded-{port}"),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 0,
            connections: ConnectionSettings {
                connection_timeout_ms: 5000,
                max_payload_size: 256 * 1024,
                max_inflight_count: 100,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        let config = Config {
            id: 0,
            router: RouterConfig {
                max_connections: 64,
                max_outgoing_packet_count: 200,
                max_segment_size: 256 * 1024,
                max_segment_count: 4,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(HashMap::from([("1".to_string(), server)])),
            ..Default::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("rumqttd-{port}"))
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                // Returns only on a configuration or bind error.
                let err = broker.start();
                let _ = tx.send(format!("{err:?}"));
            })
            .map_err(|e| Error::io("starting the embedded broker's thread", e))?;
        STARTED.fetch_add(1, Ordering::Relaxed);
        // Behind a mutex so the start can run on any worker thread (a
        // Receiver is not Sync), as scenarios under -j do.
        let rx = std::sync::Mutex::new(rx);
        probe::wait_ready(addr, Duration::from_secs(10), || {
            let early = rx.lock().ok().and_then(|rx| rx.try_recv().ok());
            async move {
                match early {
                    Some(e) => Err(format!("rumqttd stopped: {e}")),
                    None => Ok(()),
                }
            }
        })
        .await
        .map_err(|e| {
            Error::env(
                format!("the embedded broker (rumqttd) did not start: {e}"),
                "is the loopback port taken? try again, or use --broker mosquitto",
            )
        })?;
        Ok(Embedded { addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn describe(&self) -> String {
        format!("embedded rumqttd 0.20 on {}", self.addr)
    }
}
