//! The shared, append-only event log. Producers (proxy tasks, actors, the
//! runner) hold a cheap [`Recorder`] handle; the runner takes the finished
//! [`History`] at the end. A long-lived consumer (`observe`) instead moves
//! the events out as they come ([`Recorder::take_new`]), so that the log is
//! held once, by whoever consumes it, and not twice.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Event, EventKind};

#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    start: Instant,
    events: Mutex<Events>,
    live: tokio::sync::broadcast::Sender<Event>,
}

/// The events still held, and how many were moved out before them
/// ([`Recorder::take_new`]): the first held event has sequence number `taken`.
#[derive(Default)]
struct Events {
    taken: usize,
    held: Vec<Event>,
}

impl Events {
    fn len(&self) -> usize {
        self.taken + self.held.len()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        let (live, _) = tokio::sync::broadcast::channel(4096);
        Recorder {
            inner: Arc::new(Inner {
                start: Instant::now(),
                events: Mutex::new(Events::default()),
                live,
            }),
        }
    }

    /// Appends an event stamped with the time since the recorder was made.
    /// Timestamp and sequence are taken under one lock so they never disagree.
    pub fn record(&self, kind: EventKind) -> Event {
        let mut events = self.inner.events.lock().expect("history lock poisoned");
        let ev = Event {
            seq: events.len() as u64,
            at: self.inner.start.elapsed(),
            kind,
        };
        events.held.push(ev.clone());
        drop(events);
        // Cloning an event no one listens to cost as much as recording it.
        if self.inner.live.receiver_count() > 0 {
            let _ = self.inner.live.send(ev.clone());
        }
        ev
    }

    /// Appends events that happened together (the packets a proxy
    /// connection read in one go), in order, under one lock and with one
    /// timestamp.
    pub fn record_all(&self, kinds: impl IntoIterator<Item = EventKind>) {
        let mut events = self.inner.events.lock().expect("history lock poisoned");
        let at = self.inner.start.elapsed();
        let first = events.held.len();
        for kind in kinds {
            let seq = events.len() as u64;
            events.held.push(Event { seq, at, kind });
        }
        if self.inner.live.receiver_count() > 0 {
            // Under the lock, so listeners see the batch whole and in order.
            for ev in &events.held[first..] {
                let _ = self.inner.live.send(ev.clone());
            }
        }
    }

    /// A live feed of events recorded from now on (for waits and `-v`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.inner.live.subscribe()
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.inner.start.elapsed()
    }

    /// Number of events recorded so far.
    pub fn len(&self) -> usize {
        self.inner
            .events
            .lock()
            .expect("history lock poisoned")
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the events from position `from` on (of those still held:
    /// events moved out by [`Recorder::take_new`] are the taker's).
    pub fn since(&self, from: usize) -> Vec<Event> {
        let events = self.inner.events.lock().expect("history lock poisoned");
        let from = from.saturating_sub(events.taken);
        events.held[from.min(events.held.len())..].to_vec()
    }

    /// A copy of everything recorded so far (and still held).
    pub fn snapshot(&self) -> History {
        History {
            events: self
                .inner
                .events
                .lock()
                .expect("history lock poisoned")
                .held
                .clone(),
        }
    }

    /// Moves out every event recorded since the last call: the caller owns
    /// them from now on and the recorder keeps none (sequence numbers go on
    /// counting). For a consumer that keeps or streams the log itself, so
    /// that a long session does not hold it twice.
    pub fn take_new(&self) -> Vec<Event> {
        let mut events = self.inner.events.lock().expect("history lock poisoned");
        let new = std::mem::take(&mut events.held);
        events.taken += new.len();
        new
    }
}

/// A finished (or copied) log, in recording order.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub events: Vec<Event>,
}

impl History {
    pub fn from_events(events: Vec<Event>) -> History {
        History { events }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    /// Builds a history from kinds with synthetic timestamps, for tests of
    /// checkers: the n-th event is at n milliseconds unless `at` is given.
    pub fn build() -> HistoryBuilder {
        HistoryBuilder::default()
    }
}

#[derive(Default)]
pub struct HistoryBuilder {
    events: Vec<Event>,
    now: std::time::Duration,
}

impl HistoryBuilder {
    /// Advances the synthetic clock.
    pub fn wait(mut self, d: std::time::Duration) -> Self {
        self.now += d;
        self
    }

    pub fn push(mut self, kind: EventKind) -> Self {
        self.now += std::time::Duration::from_millis(1);
        self.events.push(Event {
            seq: self.events.len() as u64,
            at: self.now,
            kind,
        });
        self
    }

    pub fn finish(self) -> History {
        History {
            events: self.events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_recorded_together_keep_their_order_and_share_a_time() {
        let rec = Recorder::new();
        rec.record(EventKind::Teardown);
        let mut live = rec.subscribe();
        rec.record_all((0..3).map(|_| EventKind::Teardown));
        rec.record_all(std::iter::empty());
        let h = rec.snapshot();
        let seqs: Vec<u64> = h.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        assert!(h.events[1..].iter().all(|e| e.at == h.events[1].at));
        assert!(h.events[1].at >= h.events[0].at);
        for want in 1..=3 {
            assert_eq!(live.try_recv().unwrap().seq, want);
        }
        assert!(live.try_recv().is_err(), "nothing more was recorded");
    }
}
