//! The bytes of the frames the emulated board exchanges with the harness:
//! Ethernet II, ARP, IPv4, UDP and TCP, parsed from and built into plain
//! byte vectors (checksums included). Only what a small IPv4 host sends is
//! understood; anything else parses as [`Parsed::Other`] and is ignored.

use std::net::Ipv4Addr;

pub const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const BROADCAST: [u8; 6] = [0xff; 6];

pub type Mac = [u8; 6];

/// TCP flags, as in the header's low byte.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Udp {
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
    pub payload: Vec<u8>,
}

/// One TCP segment, without the addresses' MACs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// The MSS option, when the segment carries one (SYN, SYN-ACK).
    pub mss: Option<u16>,
    pub payload: Vec<u8>,
}

impl Segment {
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// Sequence space the segment takes: payload, plus one each for SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32
            + u32::from(self.has(flags::SYN))
            + u32::from(self.has(flags::FIN))
    }

    /// `SYN`, `PSH,ACK`... as tcpdump would print them.
    pub fn flag_names(&self) -> String {
        let names = [
            (flags::SYN, "SYN"),
            (flags::FIN, "FIN"),
            (flags::RST, "RST"),
            (flags::PSH, "PSH"),
            (flags::ACK, "ACK"),
        ];
        names
            .iter()
            .filter(|(f, _)| self.has(*f))
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Arp(Arp),
    Udp(Udp),
    Tcp(Segment),
    /// A frame the harness does not answer (IPv6, ICMP, a bad checksum...).
    Other,
}

/// A parsed frame and the sender's MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub parsed: Parsed,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ip(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

pub fn parse(frame: &[u8]) -> Option<Frame> {
    if frame.len() < ETH_HLEN {
        return None;
    }
    let mut dst_mac = [0u8; 6];
    let mut src_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[0..6]);
    src_mac.copy_from_slice(&frame[6..12]);
    let body = &frame[ETH_HLEN..];
    let parsed = match be16(frame, 12) {
        ETHERTYPE_ARP => parse_arp(body).map(Parsed::Arp).unwrap_or(Parsed::Other),
        ETHERTYPE_IPV4 => parse_ipv4(body).unwrap_or(Parsed::Other),
        _ => Parsed::Other,
    };
    Some(Frame {
        src_mac,
        dst_mac,
        parsed,
    })
}

fn parse_arp(b: &[u8]) -> Option<Arp> {
    // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if b.len() < 28 || be16(b, 0) != 1 || be16(b, 2) != ETHERTYPE_IPV4 || b[4] != 6 || b[5] != 4 {
        return None;
    }
    let mut sender_mac = [0u8; 6];
    sender_mac.copy_from_slice(&b[8..14]);
    Some(Arp {
        op: be16(b, 6),
        sender_mac,
        sender_ip: ip(b, 14),
        target_ip: ip(b, 24),
    })
}

fn parse_ipv4(b: &[u8]) -> Option<Parsed> {
    if b.len() < 20 || b[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    let total = usize::from(be16(b, 2));
    if ihl < 20 || total < ihl || total > b.len() {
        return None;
    }
    // Fragments are not reassembled: a small device never sends them.
    if be16(b, 6) & 0x3fff != 0 {
        return Some(Parsed::Other);
    }
    if checksum(&b[..ihl], 0) != 0 {
        return Some(Parsed::Other);
    }
    let src = ip(b, 12);
    let dst = ip(b, 16);
    let l4 = &b[ihl..total];
    Some(match b[9] {
        PROTO_UDP if l4.len() >= 8 => {
            let len = usize::from(be16(l4, 4)).clamp(8, l4.len());
            Parsed::Udp(Udp {
                src: (src, be16(l4, 0)),
                dst: (dst, be16(l4, 2)),
                payload: l4[8..len].to_vec(),
            })
        }
        PROTO_TCP if l4.len() >= 20 => {
            let off = usize::from(l4[12] >> 4) * 4;
            if off < 20 || off > l4.len() {
                return Some(Parsed::Other);
            }
            if checksum(l4, pseudo(src, dst, PROTO_TCP, l4.len())) != 0 {
                return Some(Parsed::Other);
            }
            Parsed::Tcp(Segment {
                src: (src, be16(l4, 0)),
                dst: (dst, be16(l4, 2)),
                seq: be32(l4, 4),
                ack: be32(l4, 8),
                flags: l4[13] & 0x3f,
                window: be16(l4, 14),
                mss: mss_option(&l4[20..off]),
                payload: l4[off..].to_vec(),
            })
        }
        _ => Parsed::Other,
    })
}

fn mss_option(mut opts: &[u8]) -> Option<u16> {
    while let Some(&kind) = opts.first() {
        match kind {
            0 => return None,
            1 => opts = &opts[1..],
            _ => {
                let len = usize::from(*opts.get(1)?);
                if len < 2 || len > opts.len() {
                    return None;
                }
                if kind == 2 && len == 4 {
                    return Some(be16(opts, 2));
                }
                opts = &opts[len..];
            }
        }
    }
    None
}

/// The ones' complement sum used by IPv4, UDP and TCP, folded; `init` is
/// the pseudo-header's partial sum. Zero over data with its checksum in
/// place means the checksum is right.
fn checksum(data: &[u8], init: u32) -> u16 {
    let mut sum = init;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(proto)
        + len as u32
}

fn ethernet(dst: Mac, src: Mac, ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HLEN + body.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, id: u16, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6] = 0x40; // don't fragment
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

pub fn build_arp_reply(src_mac: Mac, src_ip: Ipv4Addr, to: &Arp) -> Vec<u8> {
    let mut b = vec![0u8; 28];
    b[0..2].copy_from_slice(&1u16.to_be_bytes());
    b[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    b[4] = 6;
    b[5] = 4;
    b[6..8].copy_from_slice(&2u16.to_be_bytes());
    b[8..14].copy_from_slice(&src_mac);
    b[14..18].copy_from_slice(&src_ip.octets());
    b[18..24].copy_from_slice(&to.sender_mac);
    b[24..28].copy_from_slice(&to.sender_ip.octets());
    ethernet(to.sender_mac, src_mac, ETHERTYPE_ARP, &b)
}

pub fn build_udp(dst_mac: Mac, src_mac: Mac, u: &Udp, id: u16) -> Vec<u8> {
    let len = 8 + u.payload.len();
    let mut l4 = vec![0u8; 8];
    l4[0..2].copy_from_slice(&u.src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&u.dst.1.to_be_bytes());
    l4[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    l4.extend_from_slice(&u.payload);
    let mut c = checksum(&l4, pseudo(u.src.0, u.dst.0, PROTO_UDP, len));
    if c == 0 {
        c = 0xffff;
    }
    l4[6..8].copy_from_slice(&c.to_be_bytes());
    ethernet(
        dst_mac,
        src_mac,
        ETHERTYPE_IPV4,
        &ipv4(u.src.0, u.dst.0, PROTO_UDP, id, &l4),
    )
}

pub fn build_tcp(dst_mac: Mac, src_mac: Mac, s: &Segment, id: u16) -> Vec<u8> {
    let opts: Vec<u8> = match s.mss {
        Some(m) => vec![2, 4, (m >> 8) as u8, m as u8],
        None => Vec::new(),
    };
    let hlen = 20 + opts.len();
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&s.src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&s.dst.1.to_be_bytes());
    l4[4..8].copy_from_slice(&s.seq.to_be_bytes());
    l4[8..12].copy_from_slice(&s.ack.to_be_bytes());
    l4[12] = ((hlen / 4) as u8) << 4;
    l4[13] = s.flags;
    l4[14..16].copy_from_slice(&s.window.to_be_bytes());
    l4.extend_from_slice(&opts);
    l4.extend_from_slice(&s.payload);
    let c = checksum(&l4, pseudo(s.src.0, s.dst.0, PROTO_TCP, l4.len()));
    l4[16..18].copy_from_slice(&c.to_be_bytes());
    ethernet(
        dst_mac,
        src_mac,
        ETHERTYPE_IPV4,
        &ipv4(s.src.0, s.dst.0, PROTO_TCP, id, &l4),
    )
}

/// A one-line summary of a frame for the history and the report, e.g.
/// `TCP 10.0.2.15:49153 > 10.0.2.100:1883 [PSH,ACK] seq=1 ack=1 len=14`
/// (sequence numbers as the frame has them).
/// A TCP segment with payload other than a lone PINGREQ or PINGRESP: MQTT
/// data on its way (keep-alive traffic follows the clock, not the steps).
pub fn carries_mqtt_data(frame: &[u8]) -> bool {
    match parse(frame).map(|f| f.parsed) {
        Some(Parsed::Tcp(s)) => {
            !s.payload.is_empty() && s.payload != [0xc0, 0] && s.payload != [0xd0, 0]
        }
        _ => false,
    }
}

pub fn summary(frame: &[u8]) -> String {
    match parse(frame).map(|f| f.parsed) {
        Some(Parsed::Tcp(s)) => format!(
            "TCP {}:{} > {}:{} [{}] seq={} ack={} len={}",
            s.src.0,
            s.src.1,
            s.dst.0,
            s.dst.1,
            s.flag_names(),
            s.seq,
            s.ack,
            s.payload.len()
        ),
        Some(Parsed::Udp(u)) => format!(
            "UDP {}:{} > {}:{} len={}",
            u.src.0,
            u.src.1,
            u.dst.0,
            u.dst.1,
            u.payload.len()
        ),
        Some(Parsed::Arp(a)) if a.op == 1 => {
            format!("ARP who-has {} tell {}", a.target_ip, a.sender_ip)
        }
        Some(Parsed::Arp(a)) => format!("ARP {} is-at", a.sender_ip),
        _ => format!("frame of {} bytes", frame.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(payload: &[u8], mss: Option<u16>) -> Segment {
        Segment {
            src: (Ipv4Addr::new(10, 0, 2, 100), 1883),
            dst: (Ipv4Addr::new(10, 0, 2, 15), 49153),
            seq: 0x1234_5678,
            ack: 42,
            flags: flags::ACK | flags::PSH,
            window: 8192,
            mss,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn tcp_round_trips_with_valid_checksums() {
        for (p, m) in [(&b"hello"[..], None), (b"", Some(536)), (b"odd", None)] {
            let s = seg(p, m);
            let f = build_tcp([2; 6], [4; 6], &s, 7);
            let back = parse(&f).unwrap();
            assert_eq!(back.parsed, Parsed::Tcp(s.clone()));
            assert_eq!(back.src_mac, [4; 6]);
        }
    }

    #[test]
    fn a_corrupted_segment_is_not_taken() {
        let mut f = build_tcp([2; 6], [4; 6], &seg(b"hello", None), 1);
        let n = f.len();
        f[n - 1] ^= 0x40;
        assert_eq!(parse(&f).unwrap().parsed, Parsed::Other);
    }

    #[test]
    fn udp_and_arp_round_trip() {
        let u = Udp {
            src: (Ipv4Addr::new(10, 0, 2, 2), 67),
            dst: (Ipv4Addr::BROADCAST, 68),
            payload: vec![1, 2, 3],
        };
        let f = build_udp(BROADCAST, [1; 6], &u, 3);
        assert_eq!(parse(&f).unwrap().parsed, Parsed::Udp(u));
        let req = Arp {
            op: 1,
            sender_mac: [9; 6],
            sender_ip: Ipv4Addr::new(10, 0, 2, 15),
            target_ip: Ipv4Addr::new(10, 0, 2, 2),
        };
        let f = build_arp_reply([1; 6], req.target_ip, &req);
        let Parsed::Arp(a) = parse(&f).unwrap().parsed else {
            panic!("not ARP")
        };
        assert_eq!(a.op, 2);
        assert_eq!(a.sender_ip, req.target_ip);
        assert_eq!(a.target_ip, req.sender_ip);
    }

    #[test]
    fn summaries_read_like_tcpdump() {
        let f = build_tcp([2; 6], [4; 6], &seg(b"abc", None), 1);
        assert_eq!(
            summary(&f),
            "TCP 10.0.2.100:1883 > 10.0.2.15:49153 [PSH,ACK] seq=305419896 ack=42 len=3"
        );
    }

    #[test]
    fn data_segments_but_not_pings_or_bare_acks_are_traffic() {
        let f = |p: &[u8]| carries_mqtt_data(&build_tcp([2; 6], [4; 6], &seg(p, None), 1));
        assert!(f(b"\x30"));
        assert!(f(b"abc"));
        assert!(!f(b""));
        assert!(!f(b"\xc0\x00"));
        assert!(!f(b"\xd0\x00"));
        assert!(!carries_mqtt_data(b"not a frame"));
    }
}
