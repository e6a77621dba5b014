//! Loopback ports for the brokers the harness starts.
//!
//! A port is chosen here and bound later by another process (mosquitto, a
//! container's port mapping), and bound again after a broker restart. In
//! between, nothing holds it, and two things could take it:
//! - any outgoing connection on the machine: the kernel picks its source
//!   port from the ephemeral range, and a connection from port P blocks a
//!   listener on P (seen under load: "mosquitto exited at start ... Address
//!   already in use", with tests running four at once);
//! - another harness process (tests run as separate processes) choosing
//!   the same port for its own broker.
//!
//! So ports come from below the ephemeral range, where the kernel never
//! picks a source port, and each is claimed with an advisory lock on a
//! file named after it (in the temp directory), held until this process
//! exits: other harness processes skip a claimed port even while its broker
//! is down for a restart. A port something else listens on is skipped too.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The ports to choose from, given the kernel's ephemeral range
/// (`ip_local_port_range`): the half below it, above the privileged
/// ports, or `None` when there is too little room there.
pub(crate) fn candidates(ephemeral: (u16, u16)) -> Option<Range<u16>> {
    let (low, _) = ephemeral;
    let start = (low / 2).max(1024);
    (low > start && low - start >= 1000).then_some(start..low)
}

fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// The ports this process claimed, with their locks (kept until exit).
static CLAIMED: Mutex<BTreeMap<u16, Option<File>>> = Mutex::new(BTreeMap::new());

/// A loopback port nobody listens on now, that no outgoing connection can
/// take, not claimed by another harness process or handed out before by
/// this one.
pub(crate) fn free_port() -> Result<u16> {
    let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
    let Some(range) = ephemeral_range().and_then(candidates) else {
        return any_port(&mut claimed);
    };
    let dir = std::env::temp_dir().join("mqtt-hil-ports");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the port lock folder", e))?;
    let len = u32::from(range.end - range.start);
    // Each process starts somewhere else, so that they rarely meet.
    let offset = (std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0))
        % len;
    for i in 0..len {
        let port = range.start + ((offset + i) % len) as u16;
        if claimed.contains_key(&port) {
            continue;
        }
        let Some(lock) = claim(dir.join(port.to_string())) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        claimed.insert(port, Some(lock));
        return Ok(port);
    }
    Err(Error::io(
        "finding a free loopback port",
        std::io::Error::other(format!(
            "every port in {}..{} is in use or claimed",
            range.start, range.end
        )),
    ))
}

/// The port's lock file, locked by this process, or `None` when another
/// process holds it.
fn claim(path: PathBuf) -> Option<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    // SAFETY: flock on a descriptor this function owns; no memory involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    (rc == 0).then_some(f)
}

/// Whether [`free_port`] handed `port` to a broker of this process.
pub(crate) fn handed_out(port: u16) -> bool {
    CLAIMED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&port)
}

/// Without room below the ephemeral range: a port the kernel gives out
/// now, not handed out before by this process (the race with other
/// processes is then caught by the brokers' start checks).
fn any_port(claimed: &mut BTreeMap<u16, Option<File>>) -> Result<u16> {
    for _ in 0..64 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::io("finding a free loopback port", e))?;
        let port = l
            .local_addr()
            .map_err(|e| Error::io("finding a free loopback port", e))?
            .port();
        if let std::collections::btree_map::Entry::Vacant(v) = claimed.entry(port) {
            v.insert(None);
            return Ok(port);
        }
    }
    Err(Error::io(
        "finding a free loopback port",
        std::io::Error::other("64 tries gave only ports this run already used"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_below_the_ephemeral_range() {
        assert_eq!(candidates((32768, 60999)), Some(16384..32768));
        assert_eq!(candidates((10000, 65535)), Some(5000..10000));
        // No room: the kernel's choice is used instead.
        assert_eq!(candidates((1024, 65535)), None);
        assert_eq!(candidates((1500, 65535)), None);
    }

    #[test]
    fn a_port_is_handed_out_once_and_outside_the_ephemeral_range() {
        let a = free_port().unwrap();
        let b = free_port().unwrap();
        assert_ne!(a, b);
        if let Some(r) = ephemeral_range().and_then(candidates) {
            assert!(r.contains(&a) && r.contains(&b), "{a} {b} {r:?}");
        }
    }

    #[test]
    fn a_port_claimed_by_another_process_is_skipped() {
        let port = free_port().unwrap();
        let path = std::env::temp_dir()
            .join("mqtt-hil-ports")
            .join(port.to_string());
        // flock locks belong to the open file: a second open of the same
        // file, as another process would make, cannot take it.
        assert!(claim(path).is_none());
    }
}
