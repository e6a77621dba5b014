//! The frames on their way into one socket, as pure state: what the next
//! write hands the kernel and what is left once it took some of it.
//!
//! Writing one frame per call cost a system call, a TCP segment (the
//! sockets are TCP_NODELAY) and a turn of the connection's loop per packet:
//! a flood of small QoS 0 PUBLISHes reached the broker as one segment each,
//! where a direct client sent them a hundred to a write. One vectored write
//! now takes everything queued, up to [`MAX_SLICES`] frames and
//! [`MAX_WRITE`] bytes, so a write costs about what the sender's did. The
//! bytes and their order are the same; only the cut into system calls
//! changes, which TCP never promised to keep anyway.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

/// Frames one write takes at most (well under Linux's IOV_MAX of 1024).
pub(crate) const MAX_SLICES: usize = 128;

/// Bytes one write takes at most: a turn of the loop stays short, so the
/// other direction and the other connections get theirs.
pub(crate) const MAX_WRITE: usize = 64 * 1024;

#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    /// The front one may be partly written already.
    frames: VecDeque<Bytes>,
    /// Bytes in `frames`, kept as it changes: summing the queue on every
    /// turn of the loop made a flood of small packets quadratic.
    len: usize,
}

impl OutQueue {
    pub fn push(&mut self, frame: Bytes) {
        if frame.is_empty() {
            return;
        }
        self.len += frame.len();
        self.frames.push_back(frame);
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Fills `slots` with the bytes the next write should take, in order:
    /// whole frames while they fit in `max_bytes` (the pacer's allowance,
    /// capped at [`MAX_WRITE`]), the last one cut if needed. Returns how
    /// many slots it filled; 0 only when nothing is queued or `max_bytes`
    /// is 0.
    pub fn gather<'a>(&'a self, max_bytes: usize, slots: &mut [IoSlice<'a>]) -> usize {
        let mut room = max_bytes.min(MAX_WRITE);
        let mut n = 0;
        for f in &self.frames {
            if n == slots.len() || room == 0 {
                break;
            }
            let take = f.len().min(room);
            slots[n] = IoSlice::new(&f[..take]);
            room -= take;
            n += 1;
        }
        n
    }

    /// The kernel took `n` bytes from the front.
    pub fn consume(&mut self, mut n: usize) {
        assert!(n <= self.len, "wrote {n} bytes of {} queued", self.len);
        self.len -= n;
        while n > 0 {
            let front = self.frames.front_mut().expect("bytes left to consume");
            if n < front.len() {
                let _ = front.split_to(n);
                return;
            }
            n -= front.len();
            self.frames.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(frames: &[&'static [u8]]) -> OutQueue {
        let mut q = OutQueue::default();
        for f in frames {
            q.push(Bytes::from_static(f));
        }
        q
    }

    fn gathered(q: &OutQueue, max: usize, slots: usize) -> Vec<Vec<u8>> {
        let mut s = vec![IoSlice::new(&[]); slots];
        let n = q.gather(max, &mut s);
        s[..n].iter().map(|x| x.to_vec()).collect()
    }

    #[test]
    fn one_write_takes_every_queued_frame_in_order() {
        let q = queue(&[b"ab", b"cde", b"f"]);
        assert_eq!(q.len(), 6);
        assert_eq!(
            gathered(&q, usize::MAX, MAX_SLICES),
            [b"ab".to_vec(), b"cde".to_vec(), b"f".to_vec()]
        );
    }

    #[test]
    fn the_allowance_cuts_the_last_frame() {
        let q = queue(&[b"ab", b"cde", b"f"]);
        assert_eq!(
            gathered(&q, 4, MAX_SLICES),
            [b"ab".to_vec(), b"cd".to_vec()]
        );
        assert_eq!(gathered(&q, 0, MAX_SLICES), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn a_write_takes_at_most_the_slots_and_max_write() {
        let q = queue(&[b"a", b"b", b"c"]);
        assert_eq!(gathered(&q, usize::MAX, 2), [b"a".to_vec(), b"b".to_vec()]);
        let mut big = OutQueue::default();
        big.push(Bytes::from(vec![7u8; MAX_WRITE + 10]));
        big.push(Bytes::from_static(b"z"));
        let g = gathered(&big, usize::MAX, MAX_SLICES);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].len(), MAX_WRITE);
    }

    #[test]
    fn a_short_write_resumes_mid_frame() {
        let mut q = queue(&[b"ab", b"cde", b"f"]);
        // The kernel took "abc": the rest starts inside the second frame.
        q.consume(3);
        assert_eq!(q.len(), 3);
        assert_eq!(
            gathered(&q, usize::MAX, MAX_SLICES),
            [b"de".to_vec(), b"f".to_vec()]
        );
        q.consume(2);
        assert_eq!(gathered(&q, usize::MAX, MAX_SLICES), [b"f".to_vec()]);
        q.consume(1);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn empty_frames_are_not_queued() {
        // An empty slot would make a write of 0 bytes look like progress.
        let q = queue(&[b"", b"x", b""]);
        assert_eq!(gathered(&q, usize::MAX, MAX_SLICES), [b"x".to_vec()]);
    }

    #[test]
    #[should_panic(expected = "wrote 3 bytes of 2 queued")]
    fn consuming_more_than_queued_is_a_bug() {
        queue(&[b"ab"]).consume(3);
    }
}
