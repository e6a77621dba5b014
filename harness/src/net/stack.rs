//! The harness's side of the board's network, as one pure state machine: a
//! frame from the board in, frames to it, work for the proxy lane and
//! history events out. It plays the access point and router (answering
//! ARP for every address of 10.0.2.0/24 but the board's), the DHCP server
//! ([`super::dhcp`]), the DNS server ([`super::dns`]) and the broker's host:
//! each TCP connection the board opens to 10.0.2.100:1883 is terminated by
//! a [`Tcp`] endpoint and its bytes are spliced into the device's proxy
//! lane, so the lane, its faults and its history are what they were. A SYN
//! to anything else is answered with RST, as a closed port would.
//!
//! Between the board and all of that sit the faults ([`Impair`]): every
//! frame either way is recorded (`EventKind::Frame`) with what happened to
//! it — delivered, dropped, duplicated, delayed, reordered — at the moment
//! its sender sent it. Delayed frames wait in this state with their due
//! times; the shell asks [`Stack::deadline`] when to come back.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;

use super::fault::{IpFault, NetFault, Wifi};
use super::impair::{Impair, SegKey, Verdict};
use super::tcp::{self, Tcp, Up};
use super::wire::{self, flags, Mac, Parsed, Segment, Udp};
use super::{dhcp, dns};
use crate::history::{Dir, EventKind, FrameFate};

pub const SUBNET: [u8; 3] = [10, 0, 2];
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
pub const BROKER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
pub const FIRST_LEASE: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The router's MAC (the one QEMU's user network gives its gateway).
pub const ROUTER_MAC: Mac = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
/// How long a lease lasts: short enough that a board renews within a
/// scenario when DHCP is off long.
pub const LEASE: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct Config {
    /// Seeds every random draw of the faults (see [`super::impair`]).
    pub seed: u64,
    /// The broker's port on 10.0.2.100, as the board dials it.
    pub broker_port: u16,
    /// `--dns NAME=ADDR`: names that resolve elsewhere than 10.0.2.100.
    pub names: BTreeMap<String, Ipv4Addr>,
    /// The actor whose lane the board's connections go to.
    pub actor: String,
}

pub type FlowId = u32;

/// Work for the shell, in order.
#[allow(clippy::large_enum_variant)] // one history event at a time; boxing it buys nothing
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A frame for the board, now.
    Send(Vec<u8>),
    /// Open a connection to the lane for this flow.
    Open(FlowId),
    Write(FlowId, Vec<u8>),
    /// The board closed its side: FIN to the lane.
    Shutdown(FlowId),
    /// Reset the lane connection (the board reset, or the flow timed out).
    Reset(FlowId),
    /// A connection attempt refused by RST: recorded on the lane as a
    /// refused connection, as the proxy records one.
    Refused,
    Record(EventKind),
    /// The board's link: QMP `set_link`.
    Link(bool),
}

/// What the lane did, for [`Stack::on_lane`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaneEvent {
    Data(Vec<u8>),
    /// The lane closed its side (FIN).
    Eof,
    /// Reset, or it could not be reached.
    Reset,
}

struct Flow {
    id: FlowId,
    ordinal: u32,
    tcp: Tcp,
    peer_isn: u32,
    our_isn: u32,
    /// Times each segment was seen, per direction (the draws' `attempt`).
    seen: HashMap<(bool, u32, u32, u32, u8), u32>,
    /// End of the data seen so far, relative, per direction (to broker, to board).
    high: [u32; 2],
}

struct Pending {
    due: Duration,
    order: u64,
    inbound: bool,
    data: Vec<u8>,
}

pub struct Stack {
    cfg: Config,
    dhcp: dhcp::Server,
    dns: dns::Server,
    impair: Impair,
    board_mac: Option<Mac>,
    lease: Option<Ipv4Addr>,
    flows: BTreeMap<(Ipv4Addr, u16), Flow>,
    next_flow: u32,
    ip_id: u16,
    radio: bool,
    lane_refusing: bool,
    pending: Vec<Pending>,
    order: u64,
    /// Due time of the last delayed frame per direction (to board, from
    /// board), so that delays keep order.
    last_due: [Duration; 2],
    out: Vec<Action>,
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Stack {
    pub fn new(cfg: Config) -> Stack {
        let plan = dhcp::Plan {
            server: GATEWAY,
            mask: Ipv4Addr::new(255, 255, 255, 0),
            dns: DNS,
            lease: LEASE,
        };
        Stack {
            dns: dns::Server::new(BROKER, cfg.names.clone()),
            impair: Impair::new(cfg.seed),
            dhcp: dhcp::Server::new(plan, FIRST_LEASE),
            cfg,
            board_mac: None,
            lease: None,
            flows: BTreeMap::new(),
            next_flow: 1,
            ip_id: 1,
            radio: true,
            lane_refusing: false,
            pending: Vec::new(),
            order: 0,
            last_due: [Duration::ZERO; 2],
            out: Vec::new(),
        }
    }

    /// Whether the device's proxy lane refuses connections right now (its
    /// `net = "refuse"`): a SYN is then answered with RST.
    pub fn set_lane_refusing(&mut self, refusing: bool) {
        self.lane_refusing = refusing;
    }

    /// The board's current address, once it has a lease.
    pub fn lease(&self) -> Option<Ipv4Addr> {
        self.lease
    }

    /// Open connections of the board.
    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }

    fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    fn record(&mut self, dir: Dir, data: &[u8], fate: FrameFate, note: Option<String>) {
        self.out.push(Action::Record(EventKind::Frame {
            dir,
            data: Bytes::copy_from_slice(data),
            fate,
            note,
        }));
    }

    pub fn deadline(&self) -> Option<Duration> {
        let p = self.pending.iter().map(|p| p.due).min();
        let f = self.flows.values().filter_map(|f| f.tcp.deadline()).min();
        match (p, f) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn apply(&mut self, fault: &NetFault) -> Vec<Action> {
        self.out.push(Action::Record(EventKind::Fault {
            target: self.cfg.actor.clone(),
            fault: fault.name(),
        }));
        match fault {
            NetFault::Wifi(Wifi::Off) => {
                self.radio = false;
                self.out.push(Action::Link(false));
            }
            NetFault::Wifi(Wifi::On) => self.radio_on(),
            NetFault::Wifi(Wifi::Roam) => {
                // The link drops; the shell brings it back (radio_on) on
                // another network, whose lease is the next address.
                self.dhcp.roam();
                self.radio = false;
                self.out.push(Action::Link(false));
            }
            NetFault::Wifi(Wifi::Weak { loss }) => self.impair.radio_loss = *loss,
            NetFault::Dns(m) => self.dns.mode = *m,
            NetFault::Dhcp(on) => self.dhcp.answering = *on,
            NetFault::Ip { dir, fault } => {
                self.impair.apply(*dir, fault);
                if matches!(fault, IpFault::Mss(_) | IpFault::Clear) {
                    let limit = self.impair.mss_sent;
                    for f in self.flows.values_mut() {
                        f.tcp.set_seg_limit(limit);
                    }
                }
            }
        }
        self.take()
    }

    /// The radio is back (after `wifi = "on"` or a roam's bounce).
    pub fn radio_on(&mut self) {
        self.radio = true;
        self.out.push(Action::Link(true));
    }

    pub fn radio_on_now(&mut self) -> Vec<Action> {
        self.radio_on();
        self.take()
    }

    /// The board's process ended (power cut, crash): its connections end
    /// at the lane with FIN, as the operating system of a process that dies
    /// would close them (the way the user-network path showed them too),
    /// and a new boot starts from nothing.
    pub fn board_gone(&mut self) -> Vec<Action> {
        for f in std::mem::take(&mut self.flows).into_values() {
            self.out.push(Action::Shutdown(f.id));
        }
        self.pending.clear();
        self.board_mac = None;
        self.lease = None;
        self.take()
    }

    /// A frame from the board.
    pub fn on_frame(&mut self, now: Duration, data: &[u8]) -> Vec<Action> {
        if !self.radio {
            self.record(
                Dir::ToBroker,
                data,
                FrameFate::Dropped("radio: wifi off".into()),
                None,
            );
            return self.take();
        }
        let Some(frame) = wire::parse(data) else {
            return self.take();
        };
        if frame.src_mac != wire::BROADCAST {
            self.board_mac = Some(frame.src_mac);
        }
        let verdict = match &frame.parsed {
            Parsed::Tcp(s) if self.is_broker(s.dst) => {
                let key = self.key_in(s);
                self.impair.segment(Dir::ToBroker, key)
            }
            _ => self.impair.other(Dir::ToBroker),
        };
        let note = self.note_in(&frame.parsed);
        match verdict {
            Verdict::Pass => {
                self.record(Dir::ToBroker, data, FrameFate::Delivered, note);
                self.process(now, frame.parsed);
            }
            Verdict::Drop(why) => self.record(Dir::ToBroker, data, FrameFate::Dropped(why), note),
            Verdict::Duplicate => {
                self.record(Dir::ToBroker, data, FrameFate::Duplicated, note);
                self.process(now, frame.parsed.clone());
                self.process(now, frame.parsed);
            }
            Verdict::Delay(d) => {
                let due = (now + d).max(self.last_due[1]);
                self.last_due[1] = due;
                self.record(Dir::ToBroker, data, FrameFate::Delayed(due - now), note);
                self.queue(due, true, data.to_vec());
            }
            Verdict::Reorder(d) => {
                self.record(Dir::ToBroker, data, FrameFate::Reordered(d), note);
                self.queue(now + d, true, data.to_vec());
            }
        }
        self.take()
    }

    pub fn on_lane(&mut self, now: Duration, id: FlowId, ev: LaneEvent) -> Vec<Action> {
        let Some(key) = self.flows.iter().find(|(_, f)| f.id == id).map(|(k, _)| *k) else {
            return self.take();
        };
        let f = self.flows.get_mut(&key).expect("found");
        let out = match ev {
            LaneEvent::Data(d) => f.tcp.send(&d, now),
            LaneEvent::Eof => f.tcp.close(now),
            LaneEvent::Reset => f.tcp.reset(),
        };
        self.tcp_out(now, key, out);
        self.take()
    }

    /// Due frames and TCP timers.
    pub fn on_timer(&mut self, now: Duration) -> Vec<Action> {
        self.pending.sort_by_key(|p| (p.due, p.order));
        while self.pending.first().is_some_and(|p| p.due <= now) {
            let p = self.pending.remove(0);
            if p.inbound {
                if let Some(f) = wire::parse(&p.data) {
                    self.process(now, f.parsed);
                }
            } else if self.radio {
                self.out.push(Action::Send(p.data));
            }
        }
        let due: Vec<(Ipv4Addr, u16)> = self
            .flows
            .iter()
            .filter(|(_, f)| f.tcp.deadline().is_some_and(|d| d <= now))
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            let out = self.flows.get_mut(&k).expect("listed").tcp.on_timer(now);
            self.tcp_out(now, k, out);
        }
        self.take()
    }

    fn queue(&mut self, due: Duration, inbound: bool, data: Vec<u8>) {
        self.order += 1;
        self.pending.push(Pending {
            due,
            order: self.order,
            inbound,
            data,
        });
    }

    fn is_broker(&self, dst: (Ipv4Addr, u16)) -> bool {
        dst == (BROKER, self.cfg.broker_port)
    }

    fn in_subnet(a: Ipv4Addr) -> bool {
        a.octets()[..3] == SUBNET
    }

    fn key_in(&mut self, s: &Segment) -> SegKey {
        let (ordinal, peer_isn, our_isn) = match self.flows.get(&s.src) {
            Some(f) if !s.has(flags::SYN) || s.has(flags::ACK) => {
                (f.ordinal, f.peer_isn, f.our_isn)
            }
            _ => (self.next_flow, s.seq, 0),
        };
        let rel_seq = s.seq.wrapping_sub(peer_isn);
        let rel_ack = if s.has(flags::ACK) {
            s.ack.wrapping_sub(our_isn)
        } else {
            0
        };
        let len = s.payload.len() as u32;
        let (attempt, new_data) = match self.flows.get_mut(&s.src) {
            Some(f) if ordinal == f.ordinal => {
                let n = f
                    .seen
                    .entry((true, rel_seq, rel_ack, len, s.flags))
                    .or_default();
                let attempt = *n;
                *n += 1;
                let end = rel_seq.wrapping_add(len);
                let new = len > 0 && end > f.high[0];
                if new {
                    f.high[0] = end;
                }
                (attempt, new)
            }
            _ => (0, false),
        };
        SegKey {
            flow: ordinal,
            rel_seq,
            rel_ack,
            len,
            flags: s.flags,
            attempt,
            new_data,
        }
    }

    fn note_in(&self, p: &Parsed) -> Option<String> {
        match p {
            Parsed::Udp(u) if u.dst.1 == 67 => {
                dhcp::parse(&u.payload).map(|r| format!("DHCP {}", dhcp::kind_name(r.kind)))
            }
            Parsed::Udp(u) if u.dst == (DNS, 53) => {
                dns::parse(&u.payload).map(|q| format!("DNS query {}", q.name))
            }
            _ => None,
        }
    }

    fn process(&mut self, now: Duration, p: Parsed) {
        match p {
            Parsed::Arp(a) => {
                let answer = a.op == 1
                    && Self::in_subnet(a.target_ip)
                    && a.target_ip != a.sender_ip
                    && Some(a.target_ip) != self.lease;
                if answer {
                    let f = wire::build_arp_reply(ROUTER_MAC, a.target_ip, &a);
                    self.emit_other(f, None);
                }
            }
            Parsed::Udp(u) if u.dst.1 == 67 => self.dhcp(u),
            Parsed::Udp(u) if u.dst == (DNS, 53) => self.dns(u),
            Parsed::Udp(_) | Parsed::Other => {}
            Parsed::Tcp(s) => self.tcp_in(now, s),
        }
    }

    fn next_ip_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    fn dhcp(&mut self, u: Udp) {
        let Some(req) = dhcp::parse(&u.payload) else {
            return;
        };
        let Some(reply) = self.dhcp.handle(&req) else {
            return;
        };
        if reply.kind == dhcp::ACK {
            self.lease = Some(reply.addr);
        }
        let note = if reply.kind == dhcp::NAK {
            "DHCP NAK".to_string()
        } else {
            format!("DHCP {} {}", dhcp::kind_name(reply.kind), reply.addr)
        };
        let out = Udp {
            src: (GATEWAY, 67),
            dst: (Ipv4Addr::BROADCAST, 68),
            payload: reply.payload,
        };
        let id = self.next_ip_id();
        let f = wire::build_udp(req.chaddr, ROUTER_MAC, &out, id);
        self.emit_other(f, Some(note));
    }

    fn dns(&mut self, u: Udp) {
        let Some(q) = dns::parse(&u.payload) else {
            return;
        };
        let (payload, note) = match self.dns.handle(&u.payload, &q) {
            dns::Answer::Silent => return,
            dns::Answer::Address(a, p) => (p, format!("DNS {} -> {a}", q.name)),
            dns::Answer::NoRecord(p) => {
                (p, format!("DNS {}: no record of type {}", q.name, q.qtype))
            }
            dns::Answer::Failed(p) => (p, format!("DNS {}: SERVFAIL", q.name)),
        };
        let out = Udp {
            src: u.dst,
            dst: u.src,
            payload,
        };
        let id = self.next_ip_id();
        let f = wire::build_udp(
            self.board_mac.unwrap_or(wire::BROADCAST),
            ROUTER_MAC,
            &out,
            id,
        );
        self.emit_other(f, Some(note));
    }

    fn tcp_in(&mut self, now: Duration, s: Segment) {
        if !self.is_broker(s.dst) {
            if !s.has(flags::RST) {
                let r = tcp::reset_for(&s);
                let note = format!("RST: nothing listens on {}:{}", s.dst.0, s.dst.1);
                self.emit_plain_segment(&r, Some(note));
            }
            return;
        }
        let fresh_syn = s.has(flags::SYN) && !s.has(flags::ACK);
        let live = self.flows.get(&s.src).is_some_and(|f| {
            !(fresh_syn && matches!(f.tcp.state(), tcp::State::TimeWait | tcp::State::Closed))
        });
        if live {
            let f = self.flows.get_mut(&s.src).expect("live");
            let out = f.tcp.on_segment(&s, now);
            self.tcp_out(now, s.src, out);
            return;
        }
        if let Some(old) = self.flows.remove(&s.src) {
            self.out.push(Action::Shutdown(old.id));
        }
        if !fresh_syn {
            if !s.has(flags::RST) {
                let r = tcp::reset_for(&s);
                self.emit_plain_segment(&r, Some("RST: no such connection".into()));
            }
            return;
        }
        if self.impair.refuse || self.lane_refusing {
            let r = tcp::reset_for(&s);
            self.emit_plain_segment(&r, Some("RST to the SYN: refused".into()));
            self.out.push(Action::Refused);
            return;
        }
        let ordinal = self.next_flow;
        self.next_flow += 1;
        let our_isn = mix(self.cfg.seed ^ u64::from(ordinal)) as u32;
        let adv = self.impair.mss_advertised.unwrap_or(tcp::DEFAULT_MSS);
        let (mut t, out) = Tcp::accept(&s, our_isn, adv, now);
        t.set_seg_limit(self.impair.mss_sent);
        let flow = Flow {
            id: ordinal,
            ordinal,
            tcp: t,
            peer_isn: s.seq,
            our_isn,
            seen: HashMap::new(),
            high: [1, 1],
        };
        self.flows.insert(s.src, flow);
        self.out.push(Action::Open(ordinal));
        self.tcp_out(now, s.src, out);
    }

    fn tcp_out(&mut self, now: Duration, key: (Ipv4Addr, u16), out: tcp::Out) {
        let Some(id) = self.flows.get(&key).map(|f| f.id) else {
            return;
        };
        for seg in out.segments {
            self.emit_segment(now, key, seg);
        }
        for up in out.up {
            self.out.push(match up {
                Up::Data(d) => Action::Write(id, d),
                Up::Eof => Action::Shutdown(id),
                Up::Reset => Action::Reset(id),
            });
        }
        if self.flows.get(&key).is_some_and(|f| f.tcp.is_closed()) {
            self.flows.remove(&key);
        }
    }

    fn frame_for(&mut self, s: &Segment) -> Vec<u8> {
        let id = self.next_ip_id();
        wire::build_tcp(self.board_mac.unwrap_or(wire::BROADCAST), ROUTER_MAC, s, id)
    }

    /// A segment of no connection (a RST): only the radio touches it.
    fn emit_plain_segment(&mut self, s: &Segment, note: Option<String>) {
        let f = self.frame_for(s);
        self.emit_other(f, note);
    }

    fn emit_other(&mut self, frame: Vec<u8>, note: Option<String>) {
        if !self.radio {
            self.record(
                Dir::ToClient,
                &frame,
                FrameFate::Dropped("radio: wifi off".into()),
                note,
            );
            return;
        }
        match self.impair.other(Dir::ToClient) {
            Verdict::Drop(why) => self.record(Dir::ToClient, &frame, FrameFate::Dropped(why), note),
            _ => {
                self.record(Dir::ToClient, &frame, FrameFate::Delivered, note);
                self.out.push(Action::Send(frame));
            }
        }
    }

    fn emit_segment(&mut self, now: Duration, key: (Ipv4Addr, u16), s: Segment) {
        let frame = self.frame_for(&s);
        if !self.radio {
            self.record(
                Dir::ToClient,
                &frame,
                FrameFate::Dropped("radio: wifi off".into()),
                None,
            );
            return;
        }
        let Some(f) = self.flows.get_mut(&key) else {
            return;
        };
        let rel_seq = s.seq.wrapping_sub(f.our_isn);
        let rel_ack = s.ack.wrapping_sub(f.peer_isn);
        let len = s.payload.len() as u32;
        let n = f
            .seen
            .entry((false, rel_seq, rel_ack, len, s.flags))
            .or_default();
        let attempt = *n;
        *n += 1;
        let end = rel_seq.wrapping_add(len);
        let new_data = len > 0 && end > f.high[1];
        if new_data {
            f.high[1] = end;
        }
        let k = SegKey {
            flow: f.ordinal,
            rel_seq,
            rel_ack,
            len,
            flags: s.flags,
            attempt,
            new_data,
        };
        let note = s.has(flags::RST).then(|| "RST".to_string());
        match self.impair.segment(Dir::ToClient, k) {
            Verdict::Pass => {
                self.record(Dir::ToClient, &frame, FrameFate::Delivered, note);
                self.out.push(Action::Send(frame));
            }
            Verdict::Drop(why) => self.record(Dir::ToClient, &frame, FrameFate::Dropped(why), note),
            Verdict::Duplicate => {
                self.record(Dir::ToClient, &frame, FrameFate::Duplicated, note);
                self.out.push(Action::Send(frame.clone()));
                self.out.push(Action::Send(frame));
            }
            Verdict::Delay(d) => {
                let due = (now + d).max(self.last_due[0]);
                self.last_due[0] = due;
                self.record(Dir::ToClient, &frame, FrameFate::Delayed(due - now), note);
                self.queue(due, false, frame);
            }
            Verdict::Reorder(d) => {
                self.record(Dir::ToClient, &frame, FrameFate::Reordered(d), note);
                self.queue(now + d, false, frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Dir;

    const BOARD_MAC: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const BOARD: (Ipv4Addr, u16) = (FIRST_LEASE, 49153);

    fn stack() -> Stack {
        Stack::new(Config {
            seed: 42,
            broker_port: 1883,
            names: BTreeMap::new(),
            actor: "device".into(),
        })
    }

    fn seg(seq: u32, ack: u32, f: u8, payload: &[u8], mss: Option<u16>) -> Vec<u8> {
        let s = Segment {
            src: BOARD,
            dst: (BROKER, 1883),
            seq,
            ack,
            flags: f,
            window: 5840,
            mss,
            payload: payload.to_vec(),
        };
        wire::build_tcp(ROUTER_MAC, BOARD_MAC, &s, 1)
    }

    fn sent(actions: &[Action]) -> Vec<Segment> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(f) => match wire::parse(f).unwrap().parsed {
                    Parsed::Tcp(s) => Some(s),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    fn frames(actions: &[Action]) -> Vec<(Dir, FrameFate)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Record(EventKind::Frame { dir, fate, .. }) => Some((*dir, fate.clone())),
                _ => None,
            })
            .collect()
    }

    const T0: Duration = Duration::ZERO;

    /// Handshake; returns the harness's next sequence number.
    fn connect(s: &mut Stack) -> u32 {
        let a = s.on_frame(T0, &seg(1000, 0, flags::SYN, &[], Some(1460)));
        assert!(a.contains(&Action::Open(1)), "{a:?}");
        let synack = &sent(&a)[0];
        assert!(synack.has(flags::SYN) && synack.has(flags::ACK));
        assert_eq!((synack.ack, synack.mss), (1001, Some(1460)));
        let a = s.on_frame(T0, &seg(1001, synack.seq + 1, flags::ACK, &[], None));
        assert!(sent(&a).is_empty());
        synack.seq + 1
    }

    /// Under `mss` at most four segments are in flight (the board's few
    /// receive buffers), ACK-clocked; after a loss a timeout resends the
    /// first lost byte and each partial ACK the next ones at once.
    #[test]
    fn small_segments_flow_ack_clocked_and_recover_on_partial_acks() {
        let mut s = stack();
        let iss = connect(&mut s);
        s.apply(&NetFault::Ip {
            dir: Some(Dir::ToClient),
            fault: IpFault::Mss(1),
        });
        let seqs = |a: &[Action]| sent(a).iter().map(|x| x.seq - iss).collect::<Vec<_>>();
        let a = s.on_lane(T0, 1, LaneEvent::Data(b"0123456789".to_vec()));
        assert_eq!(seqs(&a), [0, 1, 2, 3]);
        // The board took two bytes (2 and 3 never reached its stack).
        let a = s.on_frame(T0, &seg(1001, iss + 2, flags::ACK, &[], None));
        assert_eq!(seqs(&a), [4, 5]);
        let due = s.deadline().expect("a retransmission timer");
        let a = s.on_timer(due);
        assert_eq!(seqs(&a), [2]);
        // Partial ACK: what was lost after it, at once, then new data.
        let a = s.on_frame(due, &seg(1001, iss + 3, flags::ACK, &[], None));
        assert_eq!(seqs(&a), [3, 4, 5, 6]);
        let a = s.on_frame(due, &seg(1001, iss + 6, flags::ACK, &[], None));
        assert_eq!(seqs(&a), [7, 8, 9]);
        let a = s.on_frame(due, &seg(1001, iss + 10, flags::ACK, &[], None));
        assert!(sent(&a).is_empty());
        assert!(sent(&s.on_timer(due + Duration::from_secs(5))).is_empty());
    }

    #[test]
    fn a_connection_is_spliced_into_the_lane_both_ways() {
        let mut s = stack();
        let iss = connect(&mut s);
        let a = s.on_frame(
            T0,
            &seg(1001, iss, flags::ACK | flags::PSH, b"\x10\x02hi", None),
        );
        assert!(
            a.contains(&Action::Write(1, b"\x10\x02hi".to_vec())),
            "{a:?}"
        );
        assert_eq!(sent(&a)[0].ack, 1005);
        let a = s.on_lane(T0, 1, LaneEvent::Data(b"\x20\x02\x00\x00".to_vec()));
        let out = sent(&a);
        assert_eq!(
            (out[0].seq, out[0].payload.as_slice()),
            (iss, &b"\x20\x02\x00\x00"[..])
        );
        // A retransmitted old segment is acked again, not delivered twice.
        let a = s.on_frame(
            T0,
            &seg(1001, iss + 4, flags::ACK | flags::PSH, b"\x10\x02hi", None),
        );
        assert!(!a.iter().any(|x| matches!(x, Action::Write(..))));
        assert_eq!(sent(&a)[0].ack, 1005);
        // The board closes: FIN to the lane; the lane's FIN back.
        let a = s.on_frame(T0, &seg(1005, iss + 4, flags::ACK | flags::FIN, &[], None));
        assert!(a.contains(&Action::Shutdown(1)));
        let a = s.on_lane(T0, 1, LaneEvent::Eof);
        assert!(sent(&a)[0].has(flags::FIN));
        s.on_frame(T0, &seg(1006, iss + 5, flags::ACK, &[], None));
        assert_eq!(s.open_flows(), 0);
    }

    #[test]
    fn a_refused_syn_gets_rst_and_is_recorded_as_refused() {
        let mut s = stack();
        s.set_lane_refusing(true);
        let a = s.on_frame(T0, &seg(77, 0, flags::SYN, &[], Some(1460)));
        let rst = &sent(&a)[0];
        assert!(rst.has(flags::RST) && rst.has(flags::ACK));
        assert_eq!(rst.ack, 78);
        assert!(a.contains(&Action::Refused));
        assert!(!a.iter().any(|x| matches!(x, Action::Open(_))));
        // `ip refuse` does the same; another port is closed too.
        let mut s = stack();
        s.apply(&NetFault::Ip {
            dir: None,
            fault: IpFault::Refuse,
        });
        assert!(s
            .on_frame(T0, &seg(77, 0, flags::SYN, &[], None))
            .contains(&Action::Refused));
    }

    #[test]
    fn mss_is_advertised_and_splits_what_the_board_receives() {
        let mut s = stack();
        s.apply(&NetFault::Ip {
            dir: None,
            fault: IpFault::Mss(1),
        });
        let a = s.on_frame(T0, &seg(1000, 0, flags::SYN, &[], Some(1460)));
        let synack = sent(&a)[0].clone();
        assert_eq!(synack.mss, Some(1));
        s.on_frame(T0, &seg(1001, synack.seq + 1, flags::ACK, &[], None));
        let a = s.on_lane(T0, 1, LaneEvent::Data(b"\x20\x02\x00\x00".to_vec()));
        let out = sent(&a);
        assert_eq!(out.len(), 4, "{out:?}");
        assert!(out.iter().all(|x| x.payload.len() == 1));
    }

    #[test]
    fn a_lost_segment_is_recorded_and_retransmitted_on_the_timer() {
        let mut s = stack();
        let iss = connect(&mut s);
        s.apply(&NetFault::Ip {
            dir: Some(Dir::ToClient),
            fault: IpFault::Loss(super::super::fault::Amount::Nth(1)),
        });
        let a = s.on_lane(T0, 1, LaneEvent::Data(b"abc".to_vec()));
        assert!(sent(&a).is_empty());
        assert!(matches!(
            frames(&a)[..],
            [(Dir::ToClient, FrameFate::Dropped(_))]
        ));
        let due = s.deadline().expect("a retransmission timer");
        let a = s.on_timer(due);
        let out = sent(&a);
        assert_eq!((out[0].seq, out[0].payload.as_slice()), (iss, &b"abc"[..]));
        assert_eq!(frames(&a), vec![(Dir::ToClient, FrameFate::Delivered)]);
    }

    #[test]
    fn delay_keeps_frames_until_due_in_order() {
        let mut s = stack();
        let iss = connect(&mut s);
        s.apply(&NetFault::Ip {
            dir: Some(Dir::ToBroker),
            fault: IpFault::Delay {
                delay: Duration::from_millis(100),
                jitter: Duration::ZERO,
            },
        });
        let a = s.on_frame(T0, &seg(1001, iss, flags::ACK | flags::PSH, b"x", None));
        assert!(!a.iter().any(|x| matches!(x, Action::Write(..))));
        assert_eq!(s.deadline(), Some(Duration::from_millis(100)));
        let a = s.on_timer(Duration::from_millis(100));
        assert!(a.contains(&Action::Write(1, b"x".to_vec())));
    }

    #[test]
    fn dhcp_arp_and_dns_are_answered() {
        let mut s = stack();
        let mut p = vec![0u8; 240];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p[28..34].copy_from_slice(&BOARD_MAC);
        p[236..240].copy_from_slice(&[99, 130, 83, 99]);
        p.extend_from_slice(&[53, 1, dhcp::DISCOVER, 255]);
        let u = Udp {
            src: (Ipv4Addr::UNSPECIFIED, 68),
            dst: (Ipv4Addr::BROADCAST, 67),
            payload: p.clone(),
        };
        let a = s.on_frame(T0, &wire::build_udp(wire::BROADCAST, BOARD_MAC, &u, 1));
        assert!(a.iter().any(|x| matches!(x, Action::Send(_))));
        assert!(
            a.iter().any(|x| matches!(x,
            Action::Record(EventKind::Frame { note: Some(n), .. }) if n == "DHCP OFFER 10.0.2.15"))
        );
        s.apply(&NetFault::Dhcp(false));
        let a = s.on_frame(T0, &wire::build_udp(wire::BROADCAST, BOARD_MAC, &u, 1));
        assert!(!a.iter().any(|x| matches!(x, Action::Send(_))));
        // ARP for the gateway is answered with the router's MAC.
        let mut arp = vec![0u8; 28];
        arp[0..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp[8..14].copy_from_slice(&BOARD_MAC);
        arp[14..18].copy_from_slice(&FIRST_LEASE.octets());
        arp[24..28].copy_from_slice(&GATEWAY.octets());
        let mut f = wire::BROADCAST.to_vec();
        f.extend_from_slice(&BOARD_MAC);
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&arp);
        let a = s.on_frame(T0, &f);
        let Some(Action::Send(reply)) = a.iter().find(|x| matches!(x, Action::Send(_))) else {
            panic!("no ARP reply: {a:?}")
        };
        assert_eq!(&reply[6..12], &ROUTER_MAC);
        // DNS: a query for any name gets the broker's address.
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 6];
        q.extend_from_slice(b"broker\x05local\x00\x00\x01\x00\x01");
        let u = Udp {
            src: (FIRST_LEASE, 5353),
            dst: (DNS, 53),
            payload: q,
        };
        let a = s.on_frame(T0, &wire::build_udp(ROUTER_MAC, BOARD_MAC, &u, 2));
        assert!(a.iter().any(|x| matches!(x,
            Action::Record(EventKind::Frame { note: Some(n), .. }) if n == "DNS broker.local -> 10.0.2.100")));
        s.apply(&NetFault::Dns(dns::Mode::Timeout));
        let a = s.on_frame(T0, &wire::build_udp(ROUTER_MAC, BOARD_MAC, &u, 2));
        assert!(!a.iter().any(|x| matches!(x, Action::Send(_))));
    }

    #[test]
    fn the_radio_off_drops_everything_and_a_dead_board_closes_its_lanes() {
        let mut s = stack();
        connect(&mut s);
        let a = s.apply(&NetFault::Wifi(Wifi::Off));
        assert!(a.contains(&Action::Link(false)));
        let a = s.on_frame(T0, &seg(1001, 0, flags::ACK, b"x", None));
        assert!(
            matches!(&frames(&a)[..], [(Dir::ToBroker, FrameFate::Dropped(w))] if w.contains("wifi off"))
        );
        let a = s.board_gone();
        assert_eq!(a, vec![Action::Shutdown(1)]);
    }
}
