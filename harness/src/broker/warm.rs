//! Container brokers started ahead of need. RabbitMQ takes ~16 s to
//! answer its first CONNECT; a matrix that starts each cell's broker when
//! the cell starts waits that long per cell, though the cell before it
//! spends most of its time waiting on protocol timers. So the matrix tells
//! a [`Warm`] pool which container brokers its cells will start, in order
//! ([`Warm::new`]), and the pool keeps the starts of the next few running
//! in the background while cells run.
//!
//! Isolation is unchanged: every scenario still gets a container of its
//! own, fresh (no client has ever connected to it); only the moment it was
//! started moves. A cell takes the oldest started container of its image
//! ([`take`], called by [`super::Broker::start`]) and shuts it down itself,
//! as one it started.
//!
//! Bounded: at most `limit` containers are started and not yet taken (the
//! matrix passes its `-j`, capped at [`MAX_WARM`]), so a run never has
//! more than `2 × -j` brokers up. Cleaned up on every way out: what was
//! not taken is shut down by [`Warm::shutdown`] at the end of a run; a run
//! dropped by a signal drops the pool, which aborts the starts still under
//! way, and main's [`super::container::sweep`] removes every container and
//! network made so far (each is registered before it is created).
//!
//! The pool also carries the run's [`Tenancy`], if any: cells that take no
//! broker action on an image with tenants (RabbitMQ) lease a never-used
//! vhost of a shared node instead ([`lease`], [`super::tenancy`]), and are
//! left out of the needs given here.
//!
//! The plan ([`Lookahead`]) is pure state, tested without Docker; the pool
//! is its thin shell over tokio tasks.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use super::container::{Container, ImageRef};
use super::tenancy::{Tenancy, Tenant};
use crate::error::{Error, Result};

/// Warm starts at most, whatever `-j`: each is a broker booting on the
/// same cores the running cells use.
pub const MAX_WARM: usize = 4;

/// Which broker starts to begin, in the order the runs will need them.
#[derive(Debug)]
pub struct Lookahead {
    /// One entry per run, in launch order: the image it starts, or `None`
    /// (a broker that is no container, a scenario skipped before it starts
    /// one).
    needs: Vec<Option<ImageRef>>,
    /// Needs before this one were started ahead or launched.
    next: usize,
    limit: usize,
}

impl Lookahead {
    pub fn new(needs: Vec<Option<ImageRef>>, limit: usize) -> Lookahead {
        Lookahead {
            needs,
            next: 0,
            limit,
        }
    }

    /// The run at need index `at` is starting: needs before it will not be
    /// served ahead any more.
    pub fn launching(&mut self, at: usize) {
        self.next = self.next.max(at.min(self.needs.len()));
    }

    /// Images to start now, given `warm` started and not yet taken.
    pub fn top_up(&mut self, warm: usize) -> Vec<ImageRef> {
        let mut out = Vec::new();
        while warm + out.len() < self.limit && self.next < self.needs.len() {
            if let Some(img) = &self.needs[self.next] {
                out.push(img.clone());
            }
            self.next += 1;
        }
        out
    }
}

type Start = JoinHandle<Result<Container>>;

struct State {
    plan: Lookahead,
    /// Started, not yet taken, oldest first.
    started: VecDeque<(ImageRef, Start)>,
    /// Given up by [`Warm::discard`], to shut down at the end.
    discarded: Vec<Start>,
    closed: bool,
}

/// The pool of warm starts of one run.
pub struct Warm {
    state: Mutex<State>,
    /// Scenarios that run as tenants of shared hosts instead.
    tenancy: Option<Arc<Tenancy>>,
}

tokio::task_local! {
    static CURRENT: Arc<Warm>;
}

impl Warm {
    pub fn new(needs: Vec<Option<ImageRef>>, limit: usize) -> Arc<Warm> {
        Warm::with_tenancy(needs, limit, None)
    }

    /// [`Warm::new`], and `tenancy` serves the scenarios [`lease`] asks for.
    pub fn with_tenancy(
        needs: Vec<Option<ImageRef>>,
        limit: usize,
        tenancy: Option<Arc<Tenancy>>,
    ) -> Arc<Warm> {
        Arc::new(Warm {
            tenancy,
            state: Mutex::new(State {
                plan: Lookahead::new(needs, limit),
                started: VecDeque::new(),
                discarded: Vec::new(),
                closed: false,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("warm pool lock poisoned")
    }

    /// The run at need index `at` is starting; starts what comes next.
    pub fn launching(&self, at: usize) {
        let mut st = self.state();
        st.plan.launching(at);
        Self::top_up(&mut st);
    }

    fn top_up(st: &mut State) {
        if st.closed {
            return;
        }
        let warm = st.started.len();
        for img in st.plan.top_up(warm) {
            let start = {
                let img = img.clone();
                tokio::spawn(async move { Container::start(&img).await })
            };
            st.started.push_back((img, start));
        }
    }

    /// The oldest start of `image`, if one was made ahead; starts the next
    /// one in its place.
    fn take_start(&self, image: &ImageRef) -> Option<Start> {
        let mut st = self.state();
        let at = st.started.iter().position(|(i, _)| i == image)?;
        let (_, start) = st.started.remove(at).expect("position is in range");
        Self::top_up(&mut st);
        Some(start)
    }

    /// Gives up the starts of `image` not taken (its broker broke: its
    /// cells will not run), freeing their places for the next brokers.
    /// They are shut down with the rest by [`Warm::shutdown`].
    pub fn discard(&self, image: &ImageRef) {
        let mut st = self.state();
        let (gone, keep): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut st.started)
            .into_iter()
            .partition(|(i, _)| i == image);
        st.started = keep;
        st.discarded.extend(gone.into_iter().map(|(_, s)| s));
        Self::top_up(&mut st);
    }

    /// Starts nothing more and shuts down what was not taken.
    pub async fn shutdown(&self) {
        let left: Vec<Start> = {
            let mut st = self.state();
            st.closed = true;
            let mut left: Vec<Start> = std::mem::take(&mut st.discarded);
            left.extend(std::mem::take(&mut st.started).into_iter().map(|(_, s)| s));
            left
        };
        stop_all(left).await;
        if let Some(t) = &self.tenancy {
            t.shutdown().await;
        }
    }

    /// Starts and taken containers outstanding, for tests.
    pub fn started(&self) -> usize {
        self.state().started.len()
    }

    /// Runs `f` with `warm` as the pool [`take`] serves from (in this task;
    /// [`current`] hands it on to tasks spawned for cells).
    pub async fn scope<F: Future>(warm: Option<Arc<Warm>>, f: F) -> F::Output {
        match warm {
            Some(w) => CURRENT.scope(w, f).await,
            None => f.await,
        }
    }

    /// The pool of the task this runs in, if any.
    pub fn current() -> Option<Arc<Warm>> {
        CURRENT.try_with(|w| w.clone()).ok()
    }
}

impl Drop for Warm {
    fn drop(&mut self) {
        // Dropped without shutdown (a signal dropped the run): stop the
        // starts under way; main's sweep removes what they made.
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for s in st.started.iter().map(|(_, s)| s).chain(&st.discarded) {
            s.abort();
        }
    }
}

async fn stop_all(starts: Vec<Start>) {
    for s in starts {
        if let Ok(Ok(c)) = s.await {
            c.shutdown().await;
        }
    }
}

/// A container of `image` started ahead by the current task's pool, once
/// it is ready; `None` when there is no pool or it started none.
pub(crate) async fn take(image: &ImageRef) -> Option<Result<Container>> {
    let warm = Warm::current()?;
    let start = warm.take_start(image)?;
    // Dropping this future (a cancelled run) must not leave the start
    // running on its own.
    struct AbortOnDrop(Option<Start>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            if let Some(s) = &self.0 {
                s.abort();
            }
        }
    }
    let mut guard = AbortOnDrop(Some(start));
    let r = guard.0.as_mut().expect("set above").await;
    guard.0 = None;
    Some(r.unwrap_or_else(|e| {
        Err(Error::env(
            format!("starting {image} ahead of its scenario stopped: {e}"),
            "the start ahead panicked: a bug in mqtt-hil; report it with the output above",
        ))
    }))
}

/// A vhost of a shared host of `image` for a scenario that needs no
/// broker to itself ([`super::tenancy`]); `None` when the current task's
/// pool has no tenants of that image.
pub(crate) async fn lease(image: &ImageRef) -> Option<Result<Tenant>> {
    let tenancy = Warm::current()?.tenancy.clone()?;
    tenancy.lease(image).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    fn names(v: Vec<ImageRef>) -> Vec<String> {
        v.iter().map(|i| i.short()).collect()
    }

    #[test]
    fn starts_the_next_needs_up_to_the_limit() {
        let r = img("rabbitmq");
        let mut p = Lookahead::new(vec![Some(r.clone()), Some(r.clone()), Some(r.clone())], 2);
        p.launching(0);
        assert_eq!(names(p.top_up(0)), ["rabbitmq", "rabbitmq"]);
        // Both are still waiting: nothing more.
        assert!(p.top_up(2).is_empty());
        // One was taken: the third need starts.
        assert_eq!(names(p.top_up(1)), ["rabbitmq"]);
        assert!(p.top_up(0).is_empty(), "every need was served");
    }

    #[test]
    fn needs_without_a_container_take_no_place() {
        let n = img("nats");
        let mut p = Lookahead::new(vec![None, None, Some(n.clone()), None, Some(n.clone())], 1);
        p.launching(0);
        assert_eq!(names(p.top_up(0)), ["nats"]);
        assert_eq!(names(p.top_up(0)), ["nats"]);
        assert!(p.top_up(0).is_empty());
    }

    #[test]
    fn runs_already_launched_are_not_started_ahead() {
        let m = img("mosquitto");
        let mut p = Lookahead::new(vec![Some(m.clone()); 5], 1);
        // Three runs started while the pool was full: they started their
        // own brokers; the lookahead resumes after them.
        p.launching(3);
        assert_eq!(p.top_up(0).len(), 1);
        assert!(p.top_up(1).is_empty());
        assert_eq!(p.top_up(0).len(), 1);
        assert!(p.top_up(0).is_empty());
        // A launch index past the end is harmless.
        p.launching(99);
        assert!(p.top_up(0).is_empty());
    }

    #[test]
    fn a_limit_of_zero_starts_nothing() {
        let mut p = Lookahead::new(vec![Some(img("nats"))], 0);
        p.launching(0);
        assert!(p.top_up(0).is_empty());
    }

    #[tokio::test]
    async fn take_without_a_pool_starts_nothing() {
        assert!(take(&img("nats")).await.is_none());
        let w = Warm::new(vec![None], 1);
        w.launching(0);
        assert_eq!(w.started(), 0);
        let got = Warm::scope(Some(w.clone()), async {
            take(&img("nats")).await.is_none()
        })
        .await;
        assert!(got);
        w.shutdown().await;
    }
}
