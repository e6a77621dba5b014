//! The harness's end of one TCP connection the board opened to the
//! broker's address, as pure state: segments from the board in, segments
//! to it and bytes for the proxy lane out. Time is passed in.
//!
//! It is a passive, in-order endpoint, enough for what a small device's
//! stack does and what the faults need, all of it deterministic:
//! - the handshake answers the SYN with a SYN-ACK whose MSS option is
//!   1460, or what an `mss` fault says (so the board's own stack cuts its
//!   data into segments that small);
//! - data in order is taken and acknowledged at once (no delayed ACK);
//!   a segment beyond what is expected is dropped and answered with a
//!   duplicate ACK (the board's lwIP keeps no out-of-order queue either),
//!   an old or overlapping one is trimmed; keep-alive probes get an ACK;
//! - what the lane sends goes out in segments of at most the board's MSS
//!   (or the `mss` fault's size), within the board's window, with
//!   retransmission on a timeout (RFC 6298: 1 s at first, measured RTT,
//!   at least 200 ms, doubling, 12 tries, then a reset), a fast
//!   retransmit on three duplicate ACKs, and a 1-byte probe into a zero
//!   window; a retransmission is cut to the current segment size too, so
//!   `mss` splits every byte the board receives;
//! - after a loss, each ACK that covers only part of what was in flight
//!   (RFC 6582's partial ACK) sends the next few lost segments at once,
//!   ACK-clocked, instead of one per doubling timeout: the board keeps no
//!   out-of-order segment, so everything after a hole was lost too, and
//!   under `mss` (dozens of 1-byte segments in flight, more than its few
//!   receive buffers hold) recovering one byte per timeout would take
//!   minutes;
//! - FIN and RST either way; after closing first it answers a
//!   retransmitted FIN for a short TIME-WAIT.
//!
//! No congestion window beyond a fixed one of four segments in flight:
//! with the board's usual MSS that is its whole receive window (4 x 1460,
//! what a LAN host sees from a broker this close), and under `mss` it keeps
//! the board's few receive buffers from overflowing, so small segments
//! flow ACK-clocked, as a real sender's congestion window would make them.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::wire::{flags, Segment};

/// The receive window the harness advertises. It never holds data back
/// (what arrives is handed to the lane at once), so it stays the same.
pub const WINDOW: u16 = 8192;
/// The MSS the harness advertises unless an `mss` fault says otherwise.
pub const DEFAULT_MSS: u16 = 1460;
const INITIAL_RTO: Duration = Duration::from_secs(1);
const MIN_RTO: Duration = Duration::from_millis(200);
const MAX_RTO: Duration = Duration::from_secs(30);
const MAX_RETRIES: u32 = 12;
const TIME_WAIT: Duration = Duration::from_secs(2);
/// Segments in flight at most, new or resent while recovering from a loss:
/// few enough for the board's receive buffers (lwIP's pbuf pool holds ten
/// frames), as many as its window holds at its MSS.
const FLIGHT_SEGMENTS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    SynReceived,
    Established,
    /// Closed from the harness's side or the board's, not both yet.
    Closing,
    TimeWait,
    Closed,
}

/// What the lane must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Up {
    Data(Vec<u8>),
    /// The board sent FIN: shut the lane's write side.
    Eof,
    /// The board reset the connection, or it timed out: reset the lane.
    Reset,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Out {
    pub segments: Vec<Segment>,
    pub up: Vec<Up>,
}

impl Out {
    fn extend(&mut self, o: Out) {
        self.segments.extend(o.segments);
        self.up.extend(o.up);
    }
}

fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn le(a: u32, b: u32) -> bool {
    a == b || lt(a, b)
}

/// The answer to a segment nobody listens for: RST, as a closed port gives.
pub fn reset_for(s: &Segment) -> Segment {
    let (seq, ack, f) = if s.has(flags::ACK) {
        (s.ack, 0, flags::RST)
    } else {
        (0, s.seq.wrapping_add(s.seq_len()), flags::RST | flags::ACK)
    };
    Segment {
        src: s.dst,
        dst: s.src,
        seq,
        ack,
        flags: f,
        window: 0,
        mss: None,
        payload: Vec::new(),
    }
}

#[derive(Clone, Debug)]
pub struct Tcp {
    /// The harness's side (the broker's address) and the board's.
    pub local: (Ipv4Addr, u16),
    pub remote: (Ipv4Addr, u16),
    state: State,
    iss: u32,
    snd_una: u32,
    snd_nxt: u32,
    snd_wnd: u32,
    peer_mss: u16,
    /// Bytes from `snd_una` on: sent and unacknowledged, then unsent.
    tx: VecDeque<u8>,
    fin_queued: bool,
    fin_sent: bool,
    fin_acked: bool,
    /// The harness sent its FIN before the board's came (it waits in
    /// TIME-WAIT at the end).
    fin_sent_first: bool,
    rcv_nxt: u32,
    peer_fin: bool,
    /// Largest segment the harness sends (the `mss` fault).
    seg_limit: Option<u16>,
    rto: Duration,
    srtt: Option<Duration>,
    rttvar: Duration,
    timer: Option<Duration>,
    retries: u32,
    /// A segment being timed: the sequence number its ACK must reach.
    probe: Option<(u32, Duration)>,
    dupacks: u32,
    /// Recovering from a loss: what was in flight (`snd_nxt`) when it was
    /// found, and how far the resending has got.
    recover: Option<(u32, u32)>,
    ack_pending: bool,
    adv_mss: u16,
}

impl Tcp {
    /// Answers the board's SYN. `iss` is the harness's initial sequence
    /// number, `adv_mss` the MSS it advertises.
    pub fn accept(syn: &Segment, iss: u32, adv_mss: u16, now: Duration) -> (Tcp, Out) {
        let t = Tcp {
            local: syn.dst,
            remote: syn.src,
            state: State::SynReceived,
            iss,
            snd_una: iss,
            snd_nxt: iss.wrapping_add(1),
            snd_wnd: u32::from(syn.window),
            peer_mss: syn.mss.unwrap_or(536).max(1),
            tx: VecDeque::new(),
            fin_queued: false,
            fin_sent: false,
            fin_acked: false,
            fin_sent_first: false,
            rcv_nxt: syn.seq.wrapping_add(1),
            peer_fin: false,
            seg_limit: None,
            rto: INITIAL_RTO,
            srtt: None,
            rttvar: Duration::ZERO,
            timer: Some(now + INITIAL_RTO),
            retries: 0,
            probe: None,
            dupacks: 0,
            recover: None,
            ack_pending: false,
            adv_mss,
        };
        let s = t.syn_ack();
        (
            t,
            Out {
                segments: vec![s],
                up: Vec::new(),
            },
        )
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The board's initial sequence number, for relative numbering.
    pub fn peer_isn(&self) -> u32 {
        self.rcv_nxt
    }

    pub fn set_seg_limit(&mut self, limit: Option<u16>) {
        self.seg_limit = limit;
    }

    pub fn deadline(&self) -> Option<Duration> {
        self.timer
    }

    fn seg(&self, seq: u32, f: u8, payload: Vec<u8>) -> Segment {
        Segment {
            src: self.local,
            dst: self.remote,
            seq,
            ack: self.rcv_nxt,
            flags: f,
            window: WINDOW,
            mss: None,
            payload,
        }
    }

    fn syn_ack(&self) -> Segment {
        let mut s = self.seg(self.iss, flags::SYN | flags::ACK, Vec::new());
        s.mss = Some(self.adv_mss);
        s
    }

    fn seg_size(&self) -> usize {
        usize::from(self.peer_mss.min(self.seg_limit.unwrap_or(u16::MAX)).max(1))
    }

    /// Data bytes sent and not acknowledged.
    fn in_flight(&self) -> usize {
        let n = self.snd_nxt.wrapping_sub(self.snd_una) as usize;
        n - usize::from(self.fin_sent && !self.fin_acked)
    }

    fn outstanding(&self) -> bool {
        self.snd_nxt != self.snd_una
    }

    fn close_now(&mut self) {
        self.state = State::Closed;
        self.timer = None;
        self.tx.clear();
    }

    /// Bytes from the lane, for the board.
    pub fn send(&mut self, data: &[u8], now: Duration) -> Out {
        if self.fin_queued || matches!(self.state, State::Closed | State::TimeWait) {
            return Out::default();
        }
        self.tx.extend(data);
        self.transmit(now)
    }

    /// The lane closed its side (FIN from the broker's side).
    pub fn close(&mut self, now: Duration) -> Out {
        if self.fin_queued || self.is_closed() {
            return Out::default();
        }
        self.fin_queued = true;
        if self.state == State::Established {
            self.state = State::Closing;
        }
        self.transmit(now)
    }

    /// The lane was reset: the board gets RST.
    pub fn reset(&mut self) -> Out {
        if self.is_closed() {
            return Out::default();
        }
        let s = self.seg(self.snd_nxt, flags::RST | flags::ACK, Vec::new());
        self.close_now();
        Out {
            segments: vec![s],
            up: Vec::new(),
        }
    }

    pub fn on_segment(&mut self, s: &Segment, now: Duration) -> Out {
        let mut out = Out::default();
        if self.is_closed() {
            return out;
        }
        if s.has(flags::RST) {
            // In-window RSTs only (RFC 5961's spirit, kept simple).
            let off = s.seq.wrapping_sub(self.rcv_nxt);
            if off < u32::from(WINDOW) || s.seq == self.rcv_nxt {
                self.close_now();
                out.up.push(Up::Reset);
            }
            return out;
        }
        if s.has(flags::SYN) {
            if self.state == State::SynReceived && s.seq.wrapping_add(1) == self.rcv_nxt {
                out.segments.push(self.syn_ack());
            } else {
                out.segments
                    .push(self.seg(self.snd_nxt, flags::ACK, Vec::new()));
            }
            return out;
        }
        if !s.has(flags::ACK) {
            return out;
        }
        if self.state == State::SynReceived {
            if s.ack != self.iss.wrapping_add(1) {
                out.segments.push(reset_for(s));
                return out;
            }
            self.snd_una = s.ack;
            self.state = if self.fin_queued {
                State::Closing
            } else {
                State::Established
            };
            self.timer = None;
            self.retries = 0;
        }
        self.on_ack(s, now, &mut out);
        self.on_data(s, &mut out);
        if self.peer_fin && self.fin_acked && self.state != State::TimeWait {
            // Whoever closed last waits no more: the other side has acked.
            if self.fin_sent_first {
                self.state = State::TimeWait;
                self.timer = Some(now + TIME_WAIT);
            } else {
                self.close_now();
            }
        }
        if !self.is_closed() && self.state != State::TimeWait {
            out.extend(self.transmit(now));
        }
        if self.ack_pending {
            self.ack_pending = false;
            if !out.segments.iter().any(|x| x.has(flags::ACK)) {
                out.segments
                    .push(self.seg(self.snd_nxt, flags::ACK, Vec::new()));
            }
        }
        out
    }
}

impl Tcp {
    fn on_ack(&mut self, s: &Segment, now: Duration, out: &mut Out) {
        if lt(self.snd_nxt, s.ack) {
            // Acknowledges what was never sent.
            self.ack_pending = true;
            return;
        }
        let window_changed = u32::from(s.window) != self.snd_wnd;
        self.snd_wnd = u32::from(s.window);
        if lt(self.snd_una, s.ack) {
            let mut acked = s.ack.wrapping_sub(self.snd_una) as usize;
            if self.fin_sent && s.ack == self.snd_nxt {
                self.fin_acked = true;
                acked -= 1;
            }
            let acked = acked.min(self.tx.len());
            self.tx.drain(..acked);
            self.snd_una = s.ack;
            self.dupacks = 0;
            self.retries = 0;
            if let Some((until, at)) = self.probe {
                if le(until, s.ack) {
                    self.sample_rtt(now.saturating_sub(at));
                    self.probe = None;
                }
            }
            self.timer = self.outstanding().then(|| now + self.rto);
            if let Some((end, resent)) = self.recover {
                if lt(self.snd_una, end) {
                    out.segments
                        .extend(self.resend_after_partial_ack(end, resent));
                } else {
                    self.recover = None;
                }
            }
        } else if s.ack == self.snd_una
            && s.payload.is_empty()
            && !s.has(flags::FIN)
            && !window_changed
            && self.outstanding()
        {
            self.dupacks += 1;
            if self.dupacks == 3 {
                out.segments.extend(self.retransmit());
                self.start_recovery();
            }
        }
    }

    fn on_data(&mut self, s: &Segment, _out: &mut Out) {
        let fin = s.has(flags::FIN);
        if s.payload.is_empty() && !fin {
            // A keep-alive probe sits just before what is expected.
            if lt(s.seq, self.rcv_nxt) {
                self.ack_pending = true;
            }
            return;
        }
        let off = self.rcv_nxt.wrapping_sub(s.seq);
        if lt(self.rcv_nxt, s.seq) {
            // Beyond a gap: dropped, and the duplicate ACK says where we are.
            self.ack_pending = true;
            return;
        }
        self.ack_pending = true;
        let off = off as usize;
        if off < s.payload.len() {
            let new = s.payload[off..].to_vec();
            self.rcv_nxt = self.rcv_nxt.wrapping_add(new.len() as u32);
            if !self.peer_fin {
                _out.up.push(Up::Data(new));
            }
        }
        let fin_at = s.seq.wrapping_add(s.payload.len() as u32);
        if fin && fin_at == self.rcv_nxt && !self.peer_fin {
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            self.peer_fin = true;
            _out.up.push(Up::Eof);
            if self.state == State::Established {
                self.state = State::Closing;
            }
        }
    }

    fn sample_rtt(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.rto =
            (srtt + (self.rttvar * 4).max(Duration::from_millis(10))).clamp(MIN_RTO, MAX_RTO);
    }

    /// Sends what the window allows: new data, then the FIN.
    fn transmit(&mut self, now: Duration) -> Out {
        let mut out = Out::default();
        if matches!(
            self.state,
            State::SynReceived | State::TimeWait | State::Closed
        ) {
            return out;
        }
        loop {
            let flight = self.in_flight();
            let unsent = self.tx.len() - flight;
            let room = (self.snd_wnd as usize)
                .min(FLIGHT_SEGMENTS * self.seg_size())
                .saturating_sub(flight);
            if unsent > 0 && room > 0 && !self.fin_sent {
                let n = unsent.min(room).min(self.seg_size());
                let data: Vec<u8> = self.tx.range(flight..flight + n).copied().collect();
                let f = if n == unsent {
                    flags::ACK | flags::PSH
                } else {
                    flags::ACK
                };
                out.segments.push(self.seg(self.snd_nxt, f, data));
                self.snd_nxt = self.snd_nxt.wrapping_add(n as u32);
                if self.probe.is_none() {
                    self.probe = Some((self.snd_nxt, now));
                }
                if self.timer.is_none() {
                    self.timer = Some(now + self.rto);
                }
            } else if unsent == 0 && self.fin_queued && !self.fin_sent {
                out.segments
                    .push(self.seg(self.snd_nxt, flags::FIN | flags::ACK, Vec::new()));
                self.snd_nxt = self.snd_nxt.wrapping_add(1);
                self.fin_sent = true;
                if !self.peer_fin {
                    self.fin_sent_first = true;
                }
                if self.timer.is_none() {
                    self.timer = Some(now + self.rto);
                }
            } else {
                if unsent > 0 && room == 0 && self.timer.is_none() {
                    // Zero window: probe it when the timer fires.
                    self.timer = Some(now + self.rto);
                }
                break;
            }
        }
        out
    }

    /// A loss was found and the first unacknowledged segment resent.
    fn start_recovery(&mut self) {
        let first = self.in_flight().min(self.seg_size()) as u32;
        self.recover = Some((self.snd_nxt, self.snd_una.wrapping_add(first)));
    }

    /// A partial ACK in recovery: the segments after it, up to
    /// FLIGHT_SEGMENTS ahead of the board's ACK, never past what was in
    /// flight when the loss was found (the FIN is left to the timer).
    fn resend_after_partial_ack(&mut self, end: u32, resent: u32) -> Vec<Segment> {
        let mut from = if lt(resent, self.snd_una) {
            self.snd_una
        } else {
            resent
        };
        let data_end = self.snd_una.wrapping_add(self.in_flight() as u32);
        let stop = if lt(end, data_end) { end } else { data_end };
        let ahead = FLIGHT_SEGMENTS * self.seg_size();
        let mut out = Vec::new();
        while lt(from, stop) && (from.wrapping_sub(self.snd_una) as usize) < ahead {
            let off = from.wrapping_sub(self.snd_una) as usize;
            let n = (stop.wrapping_sub(from) as usize).min(self.seg_size());
            let data: Vec<u8> = self.tx.range(off..off + n).copied().collect();
            out.push(self.seg(from, flags::ACK, data));
            from = from.wrapping_add(n as u32);
        }
        self.recover = Some((end, from));
        out
    }

    /// The first unacknowledged segment again, at the current size.
    fn retransmit(&mut self) -> Vec<Segment> {
        if self.state == State::SynReceived {
            return vec![self.syn_ack()];
        }
        self.probe = None;
        let flight = self.in_flight();
        if flight > 0 {
            let n = flight.min(self.seg_size());
            let data: Vec<u8> = self.tx.range(..n).copied().collect();
            let last = n == flight;
            let mut f = flags::ACK;
            if last && self.fin_sent && !self.fin_acked {
                f |= flags::FIN;
            }
            if last {
                f |= flags::PSH;
            }
            return vec![self.seg(self.snd_una, f, data)];
        }
        if self.fin_sent && !self.fin_acked {
            return vec![self.seg(self.snd_una, flags::FIN | flags::ACK, Vec::new())];
        }
        Vec::new()
    }

    pub fn on_timer(&mut self, now: Duration) -> Out {
        let mut out = Out::default();
        match self.timer {
            Some(t) if t <= now => {}
            _ => return out,
        }
        self.timer = None;
        if self.state == State::TimeWait {
            self.close_now();
            return out;
        }
        if self.outstanding() {
            self.retries += 1;
            if self.retries > MAX_RETRIES {
                out.segments.extend(self.reset().segments);
                out.up.push(Up::Reset);
                return out;
            }
            out.segments.extend(self.retransmit());
            self.start_recovery();
            self.rto = (self.rto * 2).min(MAX_RTO);
            self.timer = Some(now + self.rto);
        } else if self.tx.len() > self.in_flight() && self.snd_wnd == 0 {
            // Zero-window probe: one byte past the window.
            let b = self.tx[0];
            out.segments
                .push(self.seg(self.snd_nxt, flags::ACK, vec![b]));
            self.snd_nxt = self.snd_nxt.wrapping_add(1);
            self.timer = Some(now + self.rto);
        }
        out
    }
}
