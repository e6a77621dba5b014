//! One direction of one proxied connection, as pure state: the frames on
//! their way to the peer, with their due times (latency and jitter, order
//! preserved), the frames held back by packet rules, whether the link is
//! stalled (blackhole), and the bandwidth pacer. Time is passed in, so
//! this is tested without sockets or sleeping.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::fault::LinkParams;
use crate::mqtt::Packet;

/// What comes out of a link, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Chunk {
    /// Bytes for the peer. `released` is set when the frame was recorded as
    /// held and its delivery must be recorded as released.
    Bytes {
        bytes: Bytes,
        released: Option<Box<Packet>>,
    },
    /// The sender closed its side (FIN): shut the peer's side down after
    /// everything before it.
    Eof,
}

#[derive(Debug)]
struct Queued {
    due: Instant,
    chunk: Chunk,
}

#[derive(Debug)]
struct Parked {
    until: Option<Instant>,
    bytes: Bytes,
    packet: Packet,
}

/// Deterministic generator for jitter (splitmix64): the same seed gives the
/// same delays, so runs repeat.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    pub fn below_or_eq(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            self.next_u64()
        } else {
            self.next_u64() % (max + 1)
        }
    }
}

/// Token bucket: `rate` bytes per second with a burst of 20 ms worth (at
/// least one byte).
#[derive(Clone, Debug)]
struct Bucket {
    rate: u64,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn burst(&self) -> f64 {
        (self.rate as f64 / 50.0).max(1.0)
    }

    fn set_rate(&mut self, rate: u64) {
        if rate != self.rate {
            self.rate = rate;
            self.tokens = self.burst();
            self.last = None;
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let add = now.saturating_duration_since(last).as_secs_f64() * self.rate as f64;
            self.tokens = (self.tokens + add).min(self.burst());
        }
        self.last = Some(now);
    }
}

/// One direction of a connection between the proxy's reader and writer.
#[derive(Debug)]
pub struct Link {
    params: LinkParams,
    rng: Rng,
    queue: VecDeque<Queued>,
    last_due: Option<Instant>,
    parked: Vec<Parked>,
    stalled: bool,
    bucket: Bucket,
    /// Bytes in `queue` and `parked`.
    bytes: usize,
    eof_sent: bool,
}

impl Link {
    pub fn new(params: LinkParams, seed: u64, stalled: bool) -> Link {
        let mut bucket = Bucket {
            rate: 0,
            tokens: 0.0,
            last: None,
        };
        bucket.set_rate(params.bytes_per_sec);
        Link {
            params,
            rng: Rng::new(seed),
            queue: VecDeque::new(),
            last_due: None,
            parked: Vec::new(),
            stalled,
            bucket,
            bytes: 0,
            eof_sent: false,
        }
    }

    pub fn set_params(&mut self, params: LinkParams) {
        self.params = params;
        self.bucket.set_rate(params.bytes_per_sec);
    }

    pub fn stalled(&self) -> bool {
        self.stalled
    }

    pub fn set_stalled(&mut self, stalled: bool) {
        self.stalled = stalled;
    }

    /// The delay for the next frame: `delay ± jitter`, never below zero.
    fn sample_delay(&mut self) -> Duration {
        let LinkParams { delay, jitter, .. } = self.params;
        if jitter.is_zero() {
            return delay;
        }
        let j = jitter.as_nanos().min(u64::MAX as u128 / 2) as u64;
        let offset = self.rng.below_or_eq(2 * j);
        let d = delay.as_nanos() as i128 + offset as i128 - j as i128;
        Duration::from_nanos(d.max(0).min(u64::MAX as i128) as u64)
    }

    fn schedule(&mut self, now: Instant, chunk: Chunk) {
        if self.eof_sent {
            return;
        }
        let delay = self.sample_delay();
        let due = (now + delay).max(self.last_due.unwrap_or(now));
        self.last_due = Some(due);
        if let Chunk::Bytes { bytes, .. } = &chunk {
            self.bytes += bytes.len();
        }
        self.queue.push_back(Queued { due, chunk });
    }

    /// Sends a frame (or raw bytes) after the link's latency, behind every
    /// frame sent before it.
    pub fn send(&mut self, now: Instant, bytes: Bytes, released: Option<Box<Packet>>) {
        self.schedule(now, Chunk::Bytes { bytes, released });
    }

    /// The sender closed: pass the FIN on after everything sent before it.
    /// Anything sent later (a release of held frames) is discarded.
    pub fn send_eof(&mut self, now: Instant) {
        self.schedule(now, Chunk::Eof);
        self.eof_sent = true;
    }

    /// Holds a frame until [`Link::release`] or, with `until`, that time.
    pub fn park(&mut self, bytes: Bytes, packet: Packet, until: Option<Instant>) {
        self.bytes += bytes.len();
        self.parked.push(Parked {
            until,
            bytes,
            packet,
        });
    }

    pub fn held(&self) -> usize {
        self.parked.len()
    }

    fn unpark(&mut self, now: Instant, all: bool) {
        let mut keep = Vec::new();
        for p in std::mem::take(&mut self.parked) {
            if all || p.until.is_some_and(|t| t <= now) {
                self.bytes -= p.bytes.len();
                self.send(now, p.bytes, Some(Box::new(p.packet)));
            } else {
                keep.push(p);
            }
        }
        self.parked = keep;
    }

    /// Sends every held frame now, in the order they were held.
    pub fn release(&mut self, now: Instant) {
        self.unpark(now, true);
    }

    /// Removes shaping: queued frames are due now (order kept) and held
    /// frames are released.
    pub fn clear(&mut self, now: Instant, params: LinkParams) {
        self.set_params(params);
        for q in &mut self.queue {
            q.due = q.due.min(now);
        }
        self.last_due = self.last_due.map(|d| d.min(now));
        self.release(now);
    }

    /// The next chunk due at `now`, unless the link is stalled. Frames whose
    /// delay rule expired join the queue first.
    pub fn next_ready(&mut self, now: Instant) -> Option<Chunk> {
        if self
            .parked
            .iter()
            .any(|p| p.until.is_some_and(|t| t <= now))
        {
            self.unpark(now, false);
        }
        if self.stalled || self.queue.front()?.due > now {
            return None;
        }
        let q = self.queue.pop_front()?;
        if let Chunk::Bytes { bytes, .. } = &q.chunk {
            self.bytes -= bytes.len();
        }
        Some(q.chunk)
    }

    /// When [`Link::next_ready`] may next return something (or a delay rule
    /// expires), `None` when only a command or new bytes can change that.
    pub fn deadline(&self) -> Option<Instant> {
        let parked = self.parked.iter().filter_map(|p| p.until).min();
        let front = if self.stalled {
            None
        } else {
            self.queue.front().map(|q| q.due)
        };
        match (parked, front) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Bytes waiting in the link (queued or held).
    pub fn buffered(&self) -> usize {
        self.bytes
    }

    /// Nothing queued (held frames do not count: they may never go).
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many of `want` bytes the pacer lets through at `now`, or when the
    /// next byte may go.
    pub fn allowance(&mut self, now: Instant, want: usize) -> Result<usize, Instant> {
        if self.bucket.rate == 0 {
            return Ok(want);
        }
        self.bucket.refill(now);
        if self.bucket.tokens >= 1.0 {
            Ok(want.min(self.bucket.tokens as usize))
        } else {
            let secs = (1.0 - self.bucket.tokens) / self.bucket.rate as f64;
            Err(now + Duration::from_secs_f64(secs))
        }
    }

    /// Accounts bytes written under the pacer.
    pub fn spent(&mut self, n: usize) {
        if self.bucket.rate != 0 {
            self.bucket.tokens -= n as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::Packet;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn bytes_of(c: Option<Chunk>) -> Option<Bytes> {
        match c {
            Some(Chunk::Bytes { bytes, .. }) => Some(bytes),
            _ => None,
        }
    }

    fn latency(delay: Duration, jitter: Duration) -> LinkParams {
        LinkParams {
            delay,
            jitter,
            bytes_per_sec: 0,
        }
    }

    #[test]
    fn no_shaping_passes_at_once() {
        let t0 = Instant::now();
        let mut l = Link::new(LinkParams::default(), 1, false);
        l.send(t0, Bytes::from_static(b"a"), None);
        l.send(t0, Bytes::from_static(b"b"), None);
        assert_eq!(l.buffered(), 2);
        assert_eq!(bytes_of(l.next_ready(t0)).unwrap(), "a");
        assert_eq!(bytes_of(l.next_ready(t0)).unwrap(), "b");
        assert_eq!(l.next_ready(t0), None);
        assert_eq!(l.buffered(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_each_frame_and_keeps_order() {
        let t0 = Instant::now();
        let mut l = Link::new(latency(ms(100), ms(80)), 7, false);
        for i in 0..50u8 {
            l.send(Instant::now(), Bytes::from(vec![i]), None);
            tokio::time::advance(ms(3)).await;
        }
        let mut got = Vec::new();
        while got.len() < 50 {
            let deadline = l.deadline().expect("something is queued");
            tokio::time::sleep_until(deadline).await;
            while let Some(b) = bytes_of(l.next_ready(Instant::now())) {
                let i = b[0];
                // Sent at t0 + 3ms * i, so due no earlier than that + 20ms.
                assert!(Instant::now() >= t0 + ms(3 * i as u64) + ms(20));
                got.push(i);
            }
        }
        assert_eq!(got, (0..50).collect::<Vec<u8>>(), "order preserved");
        assert!(l.is_empty());
    }

    #[test]
    fn jitter_is_deterministic_and_bounded() {
        let t0 = Instant::now();
        let dues = |seed| {
            let mut l = Link::new(latency(ms(100), ms(50)), seed, false);
            (0..20).map(|_| l.sample_delay()).collect::<Vec<_>>()
        };
        let a = dues(42);
        assert_eq!(a, dues(42));
        assert_ne!(a, dues(43));
        assert!(a.iter().all(|d| *d >= ms(50) && *d <= ms(150)), "{a:?}");
        assert!(a.iter().any(|d| *d != a[0]), "jitter varies");
        let mut fixed = Link::new(latency(ms(100), Duration::ZERO), 1, false);
        fixed.send(t0, Bytes::from_static(b"x"), None);
        assert_eq!(fixed.deadline(), Some(t0 + ms(100)));
    }

    #[test]
    fn stalled_link_keeps_everything_until_unstalled() {
        let t0 = Instant::now();
        let mut l = Link::new(LinkParams::default(), 1, true);
        l.send(
            t0,
            Bytes::from_static(b"a"),
            Some(Box::new(Packet::PingReq)),
        );
        l.send_eof(t0);
        assert_eq!(l.next_ready(t0 + ms(1000)), None);
        assert_eq!(l.deadline(), None, "nothing to wake up for while stalled");
        l.set_stalled(false);
        assert_eq!(
            l.next_ready(t0 + ms(1000)),
            Some(Chunk::Bytes {
                bytes: Bytes::from_static(b"a"),
                released: Some(Box::new(Packet::PingReq))
            })
        );
        assert_eq!(l.next_ready(t0 + ms(1000)), Some(Chunk::Eof));
    }

    #[test]
    fn held_frames_wait_for_release_and_others_overtake() {
        let t0 = Instant::now();
        let mut l = Link::new(LinkParams::default(), 1, false);
        l.park(Bytes::from_static(b"held"), Packet::PingReq, None);
        l.send(t0, Bytes::from_static(b"next"), None);
        assert_eq!(bytes_of(l.next_ready(t0)).unwrap(), "next");
        assert_eq!(l.next_ready(t0), None);
        assert_eq!(l.held(), 1);
        assert_eq!(l.buffered(), 4);
        l.release(t0);
        assert_eq!(
            l.next_ready(t0),
            Some(Chunk::Bytes {
                bytes: Bytes::from_static(b"held"),
                released: Some(Box::new(Packet::PingReq))
            })
        );
        assert_eq!(l.held(), 0);
    }

    #[test]
    fn delay_rule_expires_by_itself() {
        let t0 = Instant::now();
        let mut l = Link::new(LinkParams::default(), 1, false);
        l.park(
            Bytes::from_static(b"late"),
            Packet::PingResp,
            Some(t0 + ms(300)),
        );
        assert_eq!(l.deadline(), Some(t0 + ms(300)));
        assert_eq!(l.next_ready(t0 + ms(299)), None);
        assert!(l.next_ready(t0 + ms(300)).is_some());
    }

    #[test]
    fn clear_makes_queued_frames_due_now_and_releases() {
        let t0 = Instant::now();
        let mut l = Link::new(latency(ms(5000), Duration::ZERO), 1, false);
        l.send(t0, Bytes::from_static(b"a"), None);
        l.park(Bytes::from_static(b"h"), Packet::PingReq, None);
        l.clear(t0 + ms(10), LinkParams::default());
        assert_eq!(bytes_of(l.next_ready(t0 + ms(10))).unwrap(), "a");
        assert_eq!(bytes_of(l.next_ready(t0 + ms(10))).unwrap(), "h");
    }

    #[test]
    fn nothing_after_eof() {
        let t0 = Instant::now();
        let mut l = Link::new(LinkParams::default(), 1, false);
        l.park(Bytes::from_static(b"h"), Packet::PingReq, None);
        l.send_eof(t0);
        l.release(t0);
        assert_eq!(l.next_ready(t0), Some(Chunk::Eof));
        assert_eq!(l.next_ready(t0), None);
    }

    #[test]
    fn pacing_holds_the_rate() {
        let t0 = Instant::now();
        let mut l = Link::new(
            LinkParams {
                bytes_per_sec: 1000,
                ..Default::default()
            },
            1,
            false,
        );
        // Burst of 20 ms worth, then 1 byte per ms.
        let mut now = t0;
        let mut sent = 0usize;
        while sent < 1020 {
            match l.allowance(now, 100) {
                Ok(n) => {
                    l.spent(n);
                    sent += n;
                }
                Err(at) => {
                    assert!(at > now);
                    now = at;
                }
            }
        }
        let took = now - t0;
        assert!(took >= ms(995) && took <= ms(1010), "{took:?}");
        // 0 removes the cap.
        l.set_params(LinkParams::default());
        assert_eq!(l.allowance(now, 1 << 20), Ok(1 << 20));
    }
}
