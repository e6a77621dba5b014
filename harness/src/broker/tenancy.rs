//! Scenarios as tenants of one running broker container. A RabbitMQ
//! node takes ~2.5 CPU-seconds to boot, most of what a matrix cell on it
//! costs; its image has 32 more MQTT listeners, each mapped to a virtual
//! host of its own ([`super::container::Tenants`], ci/images/build.sh's
//! `rabbitmq_tenants`). A vhost has its own queues (so sessions and queued
//! messages) and its own retained messages, so a matrix runs each scenario
//! that needs no broker to itself on a vhost no client has used before, of
//! a node booted once for up to 32 scenarios.
//!
//! Isolation: every tenant gets a fresh vhost and no vhost is used twice;
//! where the broker shares something between vhosts that a scenario would
//! see, its tenants take turns ([`AtOnce::One`]: RabbitMQ 3.10 tracks
//! client ids across vhosts). A scenario that acts on its broker (restart,
//! kill, pause, network cut) still gets a container of its own
//! ([`super::Broker::start`]). Shown by `tests/containers.rs`
//! (`tenants_of_one_container_share_nothing`).
//!
//! The plan ([`Plan`]) is pure state, tested without Docker; [`Tenancy`]
//! is its shell over tokio tasks. Its hosts are registered for
//! [`super::container::sweep`] like every container, and shut down when
//! their last vhost's tenant is done, or at the end of the run.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::container::{AtOnce, Container, ImageRef, KnownImage};
use super::Promises;
use crate::error::{Error, Result};

/// One host's state in the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostPlan {
    image: usize,
    /// Vhosts handed out so far (the next tenant's index).
    used: u16,
    /// Tenants running on it now.
    active: usize,
    retired: bool,
}

/// What the pool does after a lease or a release.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moves {
    /// Hosts to start (their ids), in order.
    pub start: Vec<usize>,
    /// Hosts whose last tenant is done and that will get none: shut down.
    pub retire: Vec<usize>,
}

/// Which host serves each tenant, when hosts start and when they go.
/// Images are indices into the list given to [`Plan::new`].
#[derive(Debug)]
pub struct Plan {
    /// Per image: vhosts per host, whether tenants run at once, and the
    /// tenants still to come (counted down as they lease).
    images: Vec<(u16, AtOnce, usize)>,
    hosts: Vec<HostPlan>,
}

impl Plan {
    /// `images`: per image, its vhosts per host, [`AtOnce`], and how many
    /// tenants the run will ask for.
    pub fn new(images: Vec<(u16, AtOnce, usize)>) -> Plan {
        Plan {
            images,
            hosts: Vec::new(),
        }
    }

    fn open(&self, h: &HostPlan) -> bool {
        let (count, at_once, _) = self.images[h.image];
        !h.retired && h.used < count && (at_once == AtOnce::Many || h.active == 0)
    }

    fn new_host(&mut self, image: usize) -> usize {
        self.hosts.push(HostPlan {
            image,
            used: 0,
            active: 0,
            retired: false,
        });
        self.hosts.len() - 1
    }

    /// The host that can take a tenant of `image` now: the oldest open
    /// one (it has been starting longest).
    fn open_host(&self, image: usize) -> Option<usize> {
        (0..self.hosts.len()).find(|&h| self.hosts[h].image == image && self.open(&self.hosts[h]))
    }

    /// A tenant of `image` arrives: `(host, vhost index)` and the hosts to
    /// start — the one it gets if none was open, and one more ahead when
    /// tenants are still to come and no host is open for the next.
    pub fn lease(&mut self, image: usize) -> ((usize, u16), Moves) {
        let mut moves = Moves::default();
        let host = match self.open_host(image) {
            Some(h) => h,
            None => {
                let h = self.new_host(image);
                moves.start.push(h);
                h
            }
        };
        let h = &mut self.hosts[host];
        let vhost = h.used;
        h.used += 1;
        h.active += 1;
        let left = &mut self.images[image].2;
        *left = left.saturating_sub(1);
        if *left > 0 && self.open_host(image).is_none() {
            moves.start.push(self.new_host(image));
        }
        ((host, vhost), moves)
    }

    /// A tenant of `host` is done. Its host retires when no vhost is left
    /// for another (or none will come) and none runs; a taking-turns host
    /// that is free again serves the next, so no start ahead is needed.
    pub fn release(&mut self, host: usize) -> Moves {
        let mut moves = Moves::default();
        let Some(h) = self.hosts.get_mut(host) else {
            return moves;
        };
        h.active = h.active.saturating_sub(1);
        let (count, _, left) = self.images[h.image];
        if !h.retired && h.active == 0 && (h.used >= count || left == 0) {
            h.retired = true;
            moves.retire.push(host);
        }
        moves
    }

    /// Hosts not retired yet: what the end of the run shuts down.
    pub fn close(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, h) in self.hosts.iter_mut().enumerate() {
            if !h.retired {
                h.retired = true;
                out.push(i);
            }
        }
        out
    }
}

/// Where a started host is reached; `Err` says why it did not start.
type Ready = Option<std::result::Result<(SocketAddr, String), String>>;

struct Host {
    ready: watch::Receiver<Ready>,
    start: Option<JoinHandle<Result<Container>>>,
}

struct State {
    plan: Plan,
    images: Vec<ImageRef>,
    /// Per image: its first tenant's port.
    first_ports: Vec<u16>,
    hosts: Vec<Host>,
    closed: bool,
}

/// The hosts of one run.
pub struct Tenancy {
    state: Mutex<State>,
}

impl Tenancy {
    /// `needs`: the tenants the run will ask for, per image (only images
    /// with [`super::container::Tenants`] count).
    pub fn new(needs: Vec<(ImageRef, usize)>) -> Arc<Tenancy> {
        let mut images = Vec::new();
        let mut first_ports = Vec::new();
        let mut plan = Vec::new();
        for (image, n) in needs {
            if let Some(t) = image.known().and_then(|k| k.tenants.as_ref()) {
                images.push(image);
                first_ports.push(t.first_port);
                plan.push((t.count, t.at_once, n));
            }
        }
        Arc::new(Tenancy {
            state: Mutex::new(State {
                plan: Plan::new(plan),
                images,
                first_ports,
                hosts: Vec::new(),
                closed: false,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("tenancy lock poisoned")
    }

    /// Carries out the plan's moves: starts (in the background) and
    /// returns the containers to shut down.
    fn apply(st: &mut State, moves: Moves) -> Vec<JoinHandle<Result<Container>>> {
        for h in moves.start {
            debug_assert_eq!(h, st.hosts.len(), "hosts start in plan order");
            let image = st.images[st.plan.hosts[h].image].clone();
            let (tx, rx) = watch::channel(None);
            let start = tokio::spawn(async move {
                let r = Container::start_host(&image).await;
                let _ = tx.send(Some(match &r {
                    Ok(c) => Ok((c.addr(), c.name().to_string())),
                    Err(e) => Err(e.to_string()),
                }));
                r
            });
            st.hosts.push(Host {
                ready: rx,
                start: Some(start),
            });
        }
        moves
            .retire
            .into_iter()
            .filter_map(|h| st.hosts.get_mut(h).and_then(|h| h.start.take()))
            .collect()
    }

    /// A vhost of a host of `image` for one scenario, once the host is
    /// ready; `None` when the image has no tenants in this run.
    pub async fn lease(self: &Arc<Tenancy>, image: &ImageRef) -> Option<Result<Tenant>> {
        let (host, vhost, port, mut ready) = {
            let mut st = self.state();
            if st.closed {
                return None;
            }
            let i = st.images.iter().position(|x| x == image)?;
            let ((host, vhost), moves) = st.plan.lease(i);
            let retire = Self::apply(&mut st, moves);
            debug_assert!(retire.is_empty());
            let port = st.first_ports[i] + vhost;
            (host, vhost, port, st.hosts[host].ready.clone())
        };
        // From here the lease counts: dropping this future (a cancelled
        // run) must give it back.
        let mut tenant = Tenant {
            pool: self.clone(),
            host,
            image: image.clone(),
            vhost,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            container: String::new(),
            released: false,
        };
        let got = match ready.wait_for(Option::is_some).await {
            Ok(r) => r.clone().expect("waited for Some"),
            Err(_) => Err("its start was abandoned".to_string()),
        };
        Some(match got {
            Ok((addr, name)) => {
                tenant.addr = SocketAddr::new(addr.ip(), port);
                tenant.container = name;
                Ok(tenant)
            }
            Err(e) => Err(Error::env(
                format!("starting {image} to host scenarios as tenants: {e}"),
                "see the output above; `make images` rebuilds the local images",
            )),
        })
    }

    fn release(&self, host: usize) -> Vec<JoinHandle<Result<Container>>> {
        let mut st = self.state();
        let moves = st.plan.release(host);
        Self::apply(&mut st, moves)
    }

    /// Starts nothing more and shuts down every host.
    pub async fn shutdown(&self) {
        let left = {
            let mut st = self.state();
            st.closed = true;
            let hosts = st.plan.close();
            hosts
                .into_iter()
                .filter_map(|h| st.hosts.get_mut(h).and_then(|h| h.start.take()))
                .collect::<Vec<_>>()
        };
        stop_all(left).await;
    }

    /// Hosts started so far, for tests and benches.
    pub fn hosts_started(&self) -> usize {
        self.state().hosts.len()
    }
}

impl Drop for Tenancy {
    fn drop(&mut self) {
        // Dropped without shutdown (a signal dropped the run): stop the
        // starts under way; main's sweep removes what they made.
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for h in &st.hosts {
            if let Some(s) = &h.start {
                s.abort();
            }
        }
    }
}

async fn stop_all(starts: Vec<JoinHandle<Result<Container>>>) {
    for s in starts {
        if let Ok(Ok(c)) = s.await {
            c.shutdown().await;
        }
    }
}

/// One scenario's vhost on a host container.
pub struct Tenant {
    pool: Arc<Tenancy>,
    host: usize,
    image: ImageRef,
    vhost: u16,
    addr: SocketAddr,
    container: String,
    released: bool,
}

impl Tenant {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn known(&self) -> &'static KnownImage {
        // Tenancy::new keeps only images KNOWN gives tenants.
        self.image.known().expect("a leased image is a known one")
    }

    pub fn promises(&self) -> Promises {
        self.known().promises
    }

    /// As a container of its image would have (it takes no broker step).
    pub fn startup_allowance(&self) -> std::time::Duration {
        Container::startup_allowance_of(self.known())
    }

    pub fn describe(&self) -> String {
        format!(
            "{} in container {} (vhost t{}, shared with other scenarios' vhosts) on {}",
            self.image, self.container, self.vhost, self.addr
        )
    }

    /// Done: the host goes when its last tenant is.
    pub async fn shutdown(mut self) {
        self.released = true;
        stop_all(self.pool.release(self.host)).await;
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Dropped without shutdown (a cancelled run): give the vhost back;
        // a host to retire is shut down in the background, or by main's
        // sweep when no runtime is left.
        let retire = self.pool.release(self.host);
        if !retire.is_empty() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(stop_all(retire));
            }
        }
    }
}

/// Tenants each image will need: `cells` has one entry per tenant run.
pub fn count_needs<'a>(cells: impl IntoIterator<Item = &'a ImageRef>) -> Vec<(ImageRef, usize)> {
    let mut counts: Vec<(ImageRef, usize)> = Vec::new();
    for image in cells {
        match counts.iter_mut().find(|(i, _)| i == image) {
            Some((_, n)) => *n += 1,
            None => counts.push((image.clone(), 1)),
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_at_once_share_a_host_until_its_vhosts_run_out() {
        let mut p = Plan::new(vec![(3, AtOnce::Many, 5)]);
        let (a, m) = p.lease(0);
        assert_eq!(a, (0, 0));
        assert_eq!(m.start, [0], "the first tenant starts the first host");
        assert_eq!(p.lease(0), ((0, 1), Moves::default()));
        // The last vhost of host 0: the next host starts ahead.
        let (c, m) = p.lease(0);
        assert_eq!(c, (0, 2));
        assert_eq!(m.start, [1]);
        assert_eq!(p.lease(0), ((1, 0), Moves::default()));
        // Host 0 is used up: it goes when its last tenant does.
        assert_eq!(p.release(0), Moves::default());
        assert_eq!(p.release(0), Moves::default());
        assert_eq!(p.release(0).retire, [0]);
        // The fifth and last tenant: nothing more starts ahead.
        assert_eq!(p.lease(0), ((1, 1), Moves::default()));
        assert_eq!(p.release(1), Moves::default());
        // No tenant is to come: the host goes with its last one.
        assert_eq!(p.release(1).retire, [1]);
        assert!(p.close().is_empty());
    }

    #[test]
    fn tenants_that_take_turns_never_share_a_running_host() {
        let mut p = Plan::new(vec![(4, AtOnce::One, 6)]);
        let ((h0, v0), m) = p.lease(0);
        assert_eq!((h0, v0), (0, 0));
        // The host is busy: one more starts ahead for the next tenant.
        assert_eq!(m.start, [0, 1]);
        let ((h1, _), m) = p.lease(0);
        assert_eq!(h1, 1);
        assert_eq!(m.start, [2]);
        // Host 0 is free again: the next tenant gets its next vhost.
        assert_eq!(p.release(0), Moves::default());
        let ((h, v), m) = p.lease(0);
        assert_eq!((h, v), (0, 1));
        assert!(m.start.is_empty(), "host 2 is open for the next");
        let ((h, v), _) = p.lease(0);
        assert_eq!((h, v), (2, 0));
        // Every vhost is handed out once per host, never twice.
        let mut seen = std::collections::HashSet::new();
        let mut q = Plan::new(vec![(2, AtOnce::One, 7)]);
        for _ in 0..7 {
            let ((h, v), _) = q.lease(0);
            assert!(seen.insert((h, v)), "vhost {v} of host {h} twice");
            q.release(h);
        }
    }

    #[test]
    fn images_are_planned_apart() {
        let mut p = Plan::new(vec![(2, AtOnce::Many, 2), (2, AtOnce::One, 1)]);
        let ((a, _), m) = p.lease(0);
        assert_eq!(m.start, [0]);
        let ((b, _), m) = p.lease(1);
        assert_ne!(a, b);
        assert_eq!(m.start, [1], "the last tenant of image 1: none ahead");
        assert_eq!(p.lease(0).0, (0, 1));
        assert_eq!(p.close(), [0, 1]);
    }

    #[test]
    fn a_host_left_unused_at_the_end_is_shut_down() {
        let mut p = Plan::new(vec![(8, AtOnce::One, 2)]);
        let (_, m) = p.lease(0);
        assert_eq!(m.start, [0, 1]);
        p.release(0);
        // The second tenant takes host 0 (oldest open); host 1 was started
        // ahead for nothing and goes at the end.
        assert_eq!(p.lease(0).0, (0, 1));
        assert_eq!(p.release(0).retire, [0]);
        assert_eq!(p.close(), [1]);
    }

    #[test]
    fn needs_are_counted_per_image_in_first_seen_order() {
        let r = ImageRef::parse("rabbitmq").unwrap();
        let f = ImageRef::parse("rabbitmq:4.0").unwrap();
        let cells = [f.clone(), r.clone(), f.clone()];
        assert_eq!(count_needs(cells.iter()), vec![(f, 2), (r, 1)]);
    }

    #[tokio::test]
    async fn an_image_without_tenants_is_not_leased() {
        let t = Tenancy::new(vec![(ImageRef::parse("mosquitto").unwrap(), 3)]);
        assert!(t
            .lease(&ImageRef::parse("mosquitto").unwrap())
            .await
            .is_none());
        assert_eq!(t.hosts_started(), 0);
        t.shutdown().await;
    }
}
