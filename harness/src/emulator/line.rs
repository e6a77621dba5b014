//! The emulated UART line's timing, sans-IO: when bytes handed to one
//! direction of the line have crossed it, at 10 bits a byte (start, 8 data,
//! stop). The schedule is absolute: each batch starts when the line is free
//! or when it was handed over, whichever is later, and never when the
//! emulator got round to looking at it. A shell that sleeps until these
//! deadlines and wakes late (a timer ticks in whole milliseconds) therefore
//! loses nothing on the next batch, as a real UART, which clocks its bits
//! out whatever its host is doing, loses nothing either.

use std::time::Duration;

use tokio::time::Instant;

/// Time `n` bytes take on a UART at `baud` (start + 8 data + stop bits),
/// rounded up to the nanosecond: summed over many batches, never less
/// than the line time of all of them.
pub fn line_time(n: usize, baud: u32) -> Duration {
    Duration::from_nanos((n as u64 * 10 * 1_000_000_000).div_ceil(baud.max(1) as u64))
}

/// One direction of the line.
#[derive(Clone, Copy, Debug)]
pub struct Direction {
    /// When the last byte handed over so far has crossed.
    free: Instant,
}

impl Direction {
    pub fn new(now: Instant) -> Direction {
        Direction { free: now }
    }

    /// `n` bytes handed to the line at `at` (when the sender wrote them,
    /// or, for an answer, when the request that caused it had arrived):
    /// when their last byte has crossed.
    pub fn carry(&mut self, at: Instant, n: usize, baud: u32) -> Instant {
        self.free = self.free.max(at) + line_time(n, baud);
        self.free
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the batches and however they arrive, the line never
        /// carries more than baud/10 bytes a second: from the first
        /// arrival, the k-th batch's last byte crosses no sooner than the
        /// line time of everything up to it (and each batch no sooner than
        /// its own line time after it was handed over).
        #[test]
        fn never_faster_than_the_line(
            batches in proptest::collection::vec((0u64..20_000, 1usize..1100), 1..300),
            baud in prop_oneof![Just(74880u32), Just(115200), Just(921600), 300u32..3_000_000],
        ) {
            let start = Instant::now();
            let mut line = Direction::new(start);
            let (mut at, mut total) = (start, 0usize);
            for (gap_us, n) in batches {
                at += Duration::from_micros(gap_us);
                total += n;
                let done = line.carry(at, n, baud);
                prop_assert!(done >= at + line_time(n, baud));
                prop_assert!(done >= start + line_time(total, baud));
            }
        }
    }

    /// Bytes handed over faster than the line carries them, in many small
    /// batches, cross exactly when one batch of all of them would: the
    /// schedule is absolute, so nothing is added per batch (as a shell
    /// waking late would add, if it restarted the line from its waking).
    #[test]
    fn a_busy_line_adds_nothing_per_batch() {
        let start = Instant::now();
        let mut line = Direction::new(start);
        let mut done = start;
        for i in 0..1060u64 {
            // A sender writing one byte every 2 us, ten times the line.
            done = line.carry(start + Duration::from_micros(2 * i), 1, 921600);
        }
        let whole = start + line_time(1060, 921600);
        // Each batch's time rounds up by under a nanosecond, no more.
        assert!(
            done >= whole && done - whole < Duration::from_micros(2),
            "{:?}",
            done - whole
        );
        // An idle line starts again from the hand-over.
        let later = done + Duration::from_millis(5);
        assert_eq!(line.carry(later, 14, 921600), later + line_time(14, 921600));
    }
}
