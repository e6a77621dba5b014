//! A broker someone else runs: the harness only checks it answers TCP.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{Error, Result};

pub struct External {
    addr: SocketAddr,
    name: String,
}

impl External {
    pub async fn connect(host: &str, port: u16) -> Result<External> {
        let name = format!("external broker {host}:{port}");
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Error::io(format!("resolving {name}"), e))?
            .next()
            .ok_or_else(|| Error::env(format!("{name}: no address"), "check the host name"))?;
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
        {
            Ok(Ok(_)) => Ok(External { addr, name }),
            Ok(Err(e)) => Err(Error::env(
                format!("{name} refuses TCP: {e}"),
                "start the broker first, or use --broker mosquitto",
            )),
            Err(_) => Err(Error::env(
                format!("{name} did not answer TCP within 5s"),
                "check the address and that nothing filters it",
            )),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn describe(&self) -> String {
        self.name.clone()
    }
}
