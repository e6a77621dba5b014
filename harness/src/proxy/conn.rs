//! The I/O shell of one proxied connection: one task that selects over both
//! sockets, the lane's fault commands, the hub's shutdown and the links'
//! timers. It only moves bytes; what happens to each frame is decided by
//! [`super::fault::FaultState`] and scheduled by [`super::link::Link`].

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::fault::{ConnCommand, Decision, LinkParams};
use super::link::{Chunk, Link};
use super::out::{OutQueue, MAX_SLICES};
use super::LaneShared;
use crate::history::{CloseReason, ConnId, Dir, EventKind, Fate};
use crate::mqtt::codec::{self, Decoder};
use crate::mqtt::{Packet, Version};

/// Stop reading a side while this many bytes from it wait in the proxy
/// (what a TCP receive window would do).
pub(crate) const BUFFER_LIMIT: usize = 1 << 20;

/// How long to wait for the broker to accept the upstream connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const CLIENT: usize = 0;
const BROKER: usize = 1;

/// The direction of bytes read from side `s`.
fn dir_from(s: usize) -> Dir {
    if s == CLIENT {
        Dir::ToBroker
    } else {
        Dir::ToClient
    }
}

fn closed_by(s: usize) -> CloseReason {
    if s == CLIENT {
        CloseReason::ClientClosed
    } else {
        CloseReason::BrokerClosed
    }
}

/// Everything a connection task starts with.
pub(crate) struct ConnSetup {
    pub id: ConnId,
    pub lane: Arc<LaneShared>,
    pub client: TcpStream,
    pub upstream: SocketAddr,
    pub cmds: mpsc::UnboundedReceiver<ConnCommand>,
    pub shutdown: watch::Receiver<bool>,
    pub blackholed: bool,
    pub link: LinkParams,
    pub seed: u64,
}

/// Sets SO_LINGER 0 so that closing the socket sends RST.
pub(crate) fn reset(sock: TcpStream) {
    let _ = SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    drop(sock);
}

struct Side {
    sock: TcpStream,
    /// Still reading: no EOF or error from this side yet.
    reading: bool,
    /// Closed or reset by its owner while the network was down.
    gone: bool,
    /// Frames on their way into this side's socket.
    out: OutQueue,
    /// Shut this side's write half after `out` drains.
    out_eof: bool,
    wr_shut: bool,
}

impl Side {
    fn new(sock: TcpStream) -> Side {
        Side {
            sock,
            reading: true,
            gone: false,
            out: OutQueue::default(),
            out_eof: false,
            wr_shut: false,
        }
    }

    fn out_bytes(&self) -> usize {
        self.out.len()
    }
}

/// How the task ends.
enum End {
    /// Drop both sockets (FIN, or RST if unread data is left).
    Drop,
    /// RST both sides.
    Reset,
    /// FIN both sides, discarding unread input first.
    Close,
}

enum Ev {
    Shutdown,
    Cmd(Option<ConnCommand>),
    Readable(usize),
    Writable(usize),
    Timer,
}

struct Conn {
    id: ConnId,
    lane: Arc<LaneShared>,
    sides: [Side; 2],
    /// `decoders[s]` decodes what side `s` sends.
    decoders: [Decoder; 2],
    /// `links[s]` carries what side `s` sends to the other side.
    links: [Link; 2],
    outage: bool,
    cmds: mpsc::UnboundedReceiver<ConnCommand>,
    cmds_open: bool,
    buf: Vec<u8>,
    /// Whether side `s`'s unfinished packet over [`BUFFER_LIMIT`] was
    /// recorded (once: the connection stalls on it).
    oversize_noted: [bool; 2],
    /// Whether side `s`'s unfinished packet was recorded as malformed from
    /// its first byte alone (once: the complete frame is then forwarded
    /// without a second record).
    header_noted: [bool; 2],
}

pub(crate) async fn run(setup: ConnSetup) {
    let ConnSetup {
        id,
        lane,
        client,
        upstream,
        cmds,
        mut shutdown,
        blackholed,
        link,
        seed,
    } = setup;
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream));
    let up = tokio::select! {
        r = connect => r,
        _ = shutdown.wait_for(|v| *v) => {
            lane.closed(id, CloseReason::RunEnded);
            lane.forget(id);
            return;
        }
    };
    let up = match up {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            lane.closed(
                id,
                CloseReason::UpstreamUnreachable(format!("{upstream}: {e}")),
            );
            reset(client);
            lane.forget(id);
            return;
        }
        Err(_) => {
            lane.closed(
                id,
                CloseReason::UpstreamUnreachable(format!(
                    "{upstream}: no answer within {CONNECT_TIMEOUT:?}"
                )),
            );
            reset(client);
            lane.forget(id);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let mut conn = Conn {
        id,
        lane,
        sides: [Side::new(client), Side::new(up)],
        decoders: [Decoder::new(Version::V311), Decoder::new(Version::V311)],
        links: [
            Link::new(link, seed, blackholed),
            Link::new(link, seed ^ 0x5bd1_e995, blackholed),
        ],
        outage: blackholed,
        cmds,
        cmds_open: true,
        oversize_noted: [false; 2],
        header_noted: [false; 2],
        buf: vec![0; 64 * 1024],
    };
    let end = conn.run(&mut shutdown).await;
    let Conn {
        sides, lane, id, ..
    } = conn;
    let [a, b] = sides;
    match end {
        End::Drop => {}
        End::Reset => {
            reset(a.sock);
            reset(b.sock);
        }
        End::Close => {
            for s in [a, b] {
                drain(&s.sock);
                let _ = SockRef::from(&s.sock).shutdown(std::net::Shutdown::Write);
            }
        }
    }
    lane.forget(id);
}

/// Reads and discards what is buffered, so closing sends FIN, not RST.
fn drain(sock: &TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = sock.try_read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

impl Conn {
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> End {
        loop {
            // A peer that floods keeps a socket always ready, and a ready
            // socket's future does not yield: without this, the loop could
            // starve the tasks it feeds (the client waiting for the first
            // of those bytes) for as long as the flood lasts.
            tokio::task::consume_budget().await;
            let now = Instant::now();
            if let Some(end) = self.pump(now) {
                return end;
            }
            if self.finished() {
                return End::Drop;
            }
            let (deadline, can_write) = self.schedule(now);
            let can_read = [self.can_read(CLIENT), self.can_read(BROKER)];
            let [c, b] = &self.sides;
            let ev = tokio::select! {
                biased;
                _ = shutdown.wait_for(|v| *v) => Ev::Shutdown,
                cmd = self.cmds.recv(), if self.cmds_open => Ev::Cmd(cmd),
                // Writes before reads: what was read goes on before more is
                // taken in, so a peer that floods cannot hold back what it
                // already sent (a client waits for the first of it).
                r = c.sock.writable(), if can_write[CLIENT] => { let _ = r; Ev::Writable(CLIENT) }
                r = b.sock.writable(), if can_write[BROKER] => { let _ = r; Ev::Writable(BROKER) }
                r = c.sock.readable(), if can_read[CLIENT] => { let _ = r; Ev::Readable(CLIENT) }
                r = b.sock.readable(), if can_read[BROKER] => { let _ = r; Ev::Readable(BROKER) }
                _ = tokio::time::sleep_until(deadline.unwrap_or(now)), if deadline.is_some() => Ev::Timer,
            };
            let end = match ev {
                Ev::Shutdown => {
                    self.lane.closed(self.id, CloseReason::RunEnded);
                    Some(End::Drop)
                }
                Ev::Cmd(None) => {
                    self.cmds_open = false;
                    None
                }
                Ev::Cmd(Some(cmd)) => self.command(cmd),
                Ev::Readable(s) => self.read(s),
                Ev::Writable(s) => self.write(s),
                Ev::Timer => None,
            };
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// Both directions closed in order: each side's FIN was passed on and
    /// everything queued before it was written.
    fn finished(&self) -> bool {
        (0..2).all(|s| !self.sides[s].reading && self.sides[1 - s].wr_shut)
    }

    fn can_read(&self, s: usize) -> bool {
        let side = &self.sides[s];
        side.reading
            && self.links[s].buffered()
                + self.decoders[s].pending().len()
                + self.sides[1 - s].out_bytes()
                < BUFFER_LIMIT
    }

    /// The earliest timer, and which sides may be written now.
    fn schedule(&mut self, now: Instant) -> (Option<Instant>, [bool; 2]) {
        let mut deadline = self.links.iter().filter_map(Link::deadline).min();
        let mut can_write = [false; 2];
        if !self.outage {
            for (t, w) in can_write.iter_mut().enumerate() {
                let want = self.sides[t].out.len();
                if want == 0 {
                    continue;
                }
                match self.links[1 - t].allowance(now, want) {
                    Ok(_) => *w = true,
                    Err(at) => deadline = Some(deadline.map_or(at, |d| d.min(at))),
                }
            }
        }
        (deadline, can_write)
    }

    /// Moves due chunks from the links into the sides' write queues and
    /// passes FINs on once everything before them is written.
    fn pump(&mut self, now: Instant) -> Option<End> {
        for s in 0..2 {
            let t = 1 - s;
            while let Some(chunk) = self.links[s].next_ready(now) {
                match chunk {
                    Chunk::Bytes { bytes, released } => {
                        if let Some(packet) = released {
                            self.lane.packet(
                                self.id,
                                dir_from(s),
                                *packet,
                                bytes.clone(),
                                Fate::Released,
                            );
                        }
                        if !self.sides[t].out_eof {
                            self.sides[t].out.push(bytes);
                        }
                    }
                    Chunk::Eof => self.sides[t].out_eof = true,
                }
            }
        }
        if !self.outage {
            for side in &mut self.sides {
                if side.out_eof && side.out.is_empty() && !side.wr_shut {
                    side.wr_shut = true;
                    let _ = SockRef::from(&side.sock).shutdown(std::net::Shutdown::Write);
                }
            }
        }
        None
    }

    fn command(&mut self, cmd: ConnCommand) -> Option<End> {
        let now = Instant::now();
        match cmd {
            ConnCommand::Sever => {
                self.lane.closed(self.id, CloseReason::Severed);
                return Some(End::Reset);
            }
            ConnCommand::Close => {
                self.lane.closed(self.id, CloseReason::Closed);
                return Some(End::Close);
            }
            ConnCommand::Blackhole => self.set_outage(true),
            ConnCommand::Heal => {
                if !self.outage {
                    return None;
                }
                self.set_outage(false);
                if self.sides.iter().any(|s| s.gone) {
                    // The peer of the surviving side is gone: its
                    // retransmissions now meet a closed socket.
                    return Some(End::Reset);
                }
            }
            ConnCommand::Release => self.links.iter_mut().for_each(|l| l.release(now)),
            ConnCommand::Link(p) => self.links.iter_mut().for_each(|l| l.set_params(p)),
            ConnCommand::Clear(p) => self.links.iter_mut().for_each(|l| l.clear(now, p)),
        }
        None
    }

    fn set_outage(&mut self, on: bool) {
        self.outage = on;
        for l in &mut self.links {
            l.set_stalled(on);
        }
    }

    /// Applies commands already sent (used when the lane's state shows a
    /// blackhole change this task has not seen yet).
    fn drain_commands(&mut self) -> Option<End> {
        while let Ok(cmd) = self.cmds.try_recv() {
            if let Some(end) = self.command(cmd) {
                return Some(end);
            }
        }
        None
    }

    /// Side `s` ended its stream (EOF) or reset it (`error`).
    fn side_closed(&mut self, s: usize, error: bool) -> Option<End> {
        let now = Instant::now();
        self.sides[s].reading = false;
        self.lane.closed(self.id, closed_by(s));
        if self.outage {
            // A dead network carries neither FIN nor RST: the other side
            // learns at heal.
            self.sides[s].gone = true;
            if self.sides.iter().all(|x| x.gone) {
                return Some(End::Reset);
            }
            return None;
        }
        if error {
            return Some(End::Reset);
        }
        self.links[s].send_eof(now);
        None
    }

    fn read(&mut self, s: usize) -> Option<End> {
        let n = match self.sides[s].sock.try_read(&mut self.buf) {
            Ok(0) => return self.side_closed(s, false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(_) => return self.side_closed(s, true),
        };
        let buf = std::mem::take(&mut self.buf);
        let end = self.bytes_from(s, &buf[..n]);
        self.buf = buf;
        end
    }

    /// Decodes what side `s` sent. The packets of one read go on together
    /// ([`Conn::frames`]); a frame that does not decode goes on in its
    /// place among them.
    fn bytes_from(&mut self, s: usize, data: &[u8]) -> Option<End> {
        if let Some(e) = self.decoders[s].broken() {
            let error = e.to_string();
            return self.raw(s, Bytes::copy_from_slice(data), error);
        }
        self.decoders[s].feed(data);
        let mut batch = Vec::new();
        loop {
            match self.decoders[s].next_frame() {
                Ok(None) => {
                    let end = self.frames(s, &mut batch);
                    if end.is_none() {
                        self.note_oversize(s);
                        self.note_bad_header(s);
                    }
                    return end;
                }
                Ok(Some((raw, decoded))) => {
                    if s == CLIENT {
                        if let Some(v) = codec::connect_version(&raw) {
                            self.decoders[BROKER].set_version(v);
                        }
                    }
                    let noted = std::mem::take(&mut self.header_noted[s]);
                    if let Ok(packet) = decoded {
                        batch.push((packet, raw));
                        continue;
                    }
                    if let Some(end) = self.frames(s, &mut batch) {
                        return Some(end);
                    }
                    match decoded {
                        Ok(_) => unreachable!("decoded packets joined the batch"),
                        // Recorded when its first byte came.
                        Err(_) if noted => self.links[s].send(Instant::now(), raw, None),
                        Err(e) => {
                            self.raw(s, raw, e.to_string());
                        }
                    }
                }
                Err(e) => {
                    if let Some(end) = self.frames(s, &mut batch) {
                        return Some(end);
                    }
                    let rest = self.decoders[s].take_pending();
                    return self.raw(s, rest, e.to_string());
                }
            }
        }
    }

    /// A packet larger than the proxy holds is never forwarded: reading
    /// stops once its buffer is full, and the peer waiting for it would see
    /// nothing. Recorded, so a verdict can say what the sender announced.
    fn note_oversize(&mut self, s: usize) {
        let pending = self.decoders[s].pending();
        if self.oversize_noted[s] || pending.len() < BUFFER_LIMIT {
            return;
        }
        self.oversize_noted[s] = true;
        let announced = codec::announced_len(pending).unwrap_or(0);
        let head = Bytes::copy_from_slice(&pending[..pending.len().min(5)]);
        self.lane.record(EventKind::Malformed {
            conn: self.id,
            actor: self.lane.actor.clone(),
            dir: dir_from(s),
            raw: head,
            error: format!(
                "packet announced at byte 0 as {announced} bytes, over the {} KiB the proxy holds of one packet: not forwarded, the connection stalls",
                BUFFER_LIMIT / 1024
            ),
        });
    }

    /// An unfinished frame whose first byte is already wrong is recorded
    /// at once: garbage that never completes the length it seems to
    /// announce (an HTTP request to the MQTT port) would otherwise leave no
    /// trace, and a verdict would call its sender silent. Forwarding still
    /// waits for the whole frame, as a broker would.
    fn note_bad_header(&mut self, s: usize) {
        if self.header_noted[s] {
            return;
        }
        let pending = self.decoders[s].pending();
        let Some(e) = codec::header_error(pending, self.decoders[s].version()) else {
            return;
        };
        self.header_noted[s] = true;
        let shown = pending.len().min(64);
        let what = match codec::announced_len(pending) {
            Some(n) => format!("{} of the {n} bytes its header announces", pending.len()),
            None => format!("{} byte(s), the header not yet complete", pending.len()),
        };
        let raw = Bytes::copy_from_slice(&pending[..shown]);
        self.lane.record(EventKind::Malformed {
            conn: self.id,
            actor: self.lane.actor.clone(),
            dir: dir_from(s),
            raw,
            error: format!("{e} (seen before the frame was complete: {what})"),
        });
    }

    /// Bytes that are not a decodable packet: recorded and forwarded as
    /// they are.
    fn raw(&mut self, s: usize, raw: Bytes, error: String) -> Option<End> {
        if raw.is_empty() {
            return None;
        }
        self.lane.record(EventKind::Malformed {
            conn: self.id,
            actor: self.lane.actor.clone(),
            dir: dir_from(s),
            raw: raw.clone(),
            error,
        });
        self.links[s].send(Instant::now(), raw, None);
        None
    }

    /// The packets of one read, in order: their fates decided under one
    /// lock of the lane and recorded under one lock of the history (a lock
    /// of each per packet was most of what a flood of small packets cost).
    /// A fault applied meanwhile takes effect between two reads, as it
    /// took effect between two packets before: either way the packets read
    /// after it are the ones it governs.
    fn frames(&mut self, s: usize, batch: &mut Vec<(Packet, Bytes)>) -> Option<End> {
        if batch.is_empty() {
            return None;
        }
        let dir = dir_from(s);
        let (decisions, lane_outage) = self
            .lane
            .decide_all(dir, batch.iter().map(|(p, _)| p.packet_type()));
        if lane_outage != self.outage {
            // A blackhole or heal was applied after our last command; its
            // command is already queued.
            if let Some(end) = self.drain_commands() {
                return Some(end);
            }
        }
        let now = Instant::now();
        let stalled = self.outage;
        let note = |p: &Packet| stalled.then(|| Box::new(p.clone()));
        let link = &mut self.links[s];
        let mut events = Vec::with_capacity(batch.len());
        for ((packet, raw), decision) in batch.drain(..).zip(decisions) {
            let fate = match decision {
                Decision::Drop => Fate::Dropped,
                Decision::Forward => {
                    link.send(now, raw.clone(), note(&packet));
                    if stalled {
                        Fate::Held
                    } else {
                        Fate::Forwarded
                    }
                }
                Decision::Duplicate => {
                    link.send(now, raw.clone(), note(&packet));
                    link.send(now, raw.clone(), note(&packet));
                    if stalled {
                        Fate::Held
                    } else {
                        Fate::Duplicated
                    }
                }
                Decision::Hold => {
                    link.park(raw.clone(), packet.clone(), None);
                    Fate::Held
                }
                Decision::Delay(d) => {
                    link.park(raw.clone(), packet.clone(), Some(now + d));
                    Fate::Held
                }
            };
            events.push(self.lane.packet_event(self.id, dir, packet, raw, fate));
        }
        self.lane.recorder.record_all(events);
        None
    }

    /// Writes what is queued for side `t`, as much of it as the pacer
    /// allows, in one system call ([`super::out`]).
    fn write(&mut self, t: usize) -> Option<End> {
        let now = Instant::now();
        let side = &mut self.sides[t];
        if side.out.is_empty() {
            return None;
        }
        let allowed = match self.links[1 - t].allowance(now, side.out.len()) {
            Ok(n) => n,
            Err(_) => return None,
        };
        let written = {
            let mut slots = [IoSlice::new(&[]); MAX_SLICES];
            let k = side.out.gather(allowed, &mut slots);
            side.sock.try_write_vectored(&slots[..k])
        };
        match written {
            Ok(n) => {
                self.links[1 - t].spent(n);
                side.out.consume(n);
                None
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(_) => {
                // The side is gone (reset, or closed and then sent to):
                // reset the other one too.
                self.lane.closed(self.id, closed_by(t));
                Some(End::Reset)
            }
        }
    }
}
