//! The emulated board's network, owned by the harness: QEMU hands every
//! Ethernet frame of the board to [`Network`], which plays the access
//! point, router, DHCP server, DNS server and the broker's host, and
//! splices the board's TCP connections into the device's proxy lane. The
//! faults of `wifi`, `ip`, `dns` and `dhcp` steps act here, on real frames
//! the board's own TCP/IP stack has to cope with.
//!
//! Sans-IO at the core: [`wire`] (frame bytes), [`dhcp`], [`dns`],
//! [`tcp`] (the harness's end of each connection), [`impair`] (the IP-level
//! fault model) and [`stack`] (all of them together: a frame in, frames
//! and history events out) are pure state with time passed in; [`shell`]
//! is the thin tokio part over QEMU's `-netdev stream`. docs/network.md
//! says why this design and what each fault does.

pub mod dhcp;
pub mod dns;
pub mod fault;
pub mod impair;
pub mod shell;
pub mod stack;
pub mod tcp;
pub mod wire;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub use fault::{Amount, IpFault, NetFault, Wifi};
pub use shell::Network;
pub use stack::Config;

pub use crate::target::qemu::NetMode;

/// How the emulated board's network is set up (`--net`, `--dns`).
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub mode: NetMode,
    /// `--dns NAME=ADDR`: names that resolve elsewhere than the broker's
    /// address.
    pub names: BTreeMap<String, Ipv4Addr>,
}

/// Reads `--dns NAME=ADDR`.
pub fn parse_dns_override(text: &str) -> Result<(String, Ipv4Addr), String> {
    let (name, addr) = text.split_once('=').ok_or_else(|| {
        format!("--dns `{text}`: write NAME=ADDR, e.g. --dns broker.local=10.0.2.100")
    })?;
    let name = name.trim();
    if name.is_empty() || name.len() > 253 || name.contains(char::is_whitespace) {
        return Err(format!("--dns `{text}`: `{name}` is not a host name"));
    }
    let addr: Ipv4Addr = addr
        .trim()
        .parse()
        .map_err(|_| format!("--dns `{text}`: `{addr}` is not an IPv4 address"))?;
    Ok((name.to_ascii_lowercase(), addr))
}

/// The seed of a scenario's random faults: from its folder's name (the
/// scenario's id), so a scenario draws the same way every run.
pub fn seed_for(dir: &std::path::Path) -> u64 {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}
