//! The harness's DHCP server, as pure state: a BOOTP request in, a reply
//! (or nothing) out. It leases one address to the board — 10.0.2.15 at
//! first, as QEMU's user network did, so firmware with a static fallback
//! keeps working — with the harness as router and DNS server.
//!
//! Faults: `off` answers nothing (the board gets no lease; one it holds
//! runs out when it cannot renew), `on` answers again; a roam moves the
//! lease to the next address, so the board's next REQUEST for its old one
//! is refused (NAK) and its DISCOVER is offered the new one.

use std::net::Ipv4Addr;
use std::time::Duration;

const MAGIC: [u8; 4] = [99, 130, 83, 99];
pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;

/// The lease's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub server: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub dns: Ipv4Addr,
    pub lease: Duration,
}

#[derive(Clone, Debug)]
pub struct Server {
    plan: Plan,
    /// The address the board gets now.
    addr: Ipv4Addr,
    pub answering: bool,
}

/// What a request got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub kind: u8,
    pub addr: Ipv4Addr,
    /// BOOTP payload to send to the client (UDP 67 -> 68, broadcast).
    pub payload: Vec<u8>,
}

/// A request, as far as the server cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub kind: u8,
    pub xid: u32,
    pub chaddr: [u8; 6],
    pub ciaddr: Ipv4Addr,
    pub requested: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub flags: u16,
}

pub fn kind_name(k: u8) -> &'static str {
    match k {
        1 => "DISCOVER",
        2 => "OFFER",
        3 => "REQUEST",
        4 => "DECLINE",
        5 => "ACK",
        6 => "NAK",
        7 => "RELEASE",
        8 => "INFORM",
        _ => "?",
    }
}

pub fn parse(p: &[u8]) -> Option<Request> {
    if p.len() < 240 || p[0] != 1 || p[1] != 1 || p[2] != 6 || p[236..240] != MAGIC {
        return None;
    }
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&p[28..34]);
    let mut r = Request {
        kind: 0,
        xid: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        chaddr,
        ciaddr: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        requested: None,
        server_id: None,
        flags: u16::from_be_bytes([p[10], p[11]]),
    };
    let mut o = &p[240..];
    while let Some(&code) = o.first() {
        match code {
            0 => o = &o[1..],
            255 => break,
            _ => {
                let len = usize::from(*o.get(1)?);
                let v = o.get(2..2 + len)?;
                match (code, len) {
                    (53, 1) => r.kind = v[0],
                    (50, 4) => r.requested = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                    (54, 4) => r.server_id = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                    _ => {}
                }
                o = &o[2 + len..];
            }
        }
    }
    (r.kind != 0).then_some(r)
}

impl Server {
    pub fn new(plan: Plan, first: Ipv4Addr) -> Server {
        Server {
            plan,
            addr: first,
            answering: true,
        }
    }

    /// The address a lease gives now.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The next lease goes to the next address (a new network after a roam).
    pub fn roam(&mut self) -> Ipv4Addr {
        let o = self.addr.octets();
        let next = if o[3] >= 99 { 15 } else { o[3] + 1 };
        self.addr = Ipv4Addr::new(o[0], o[1], o[2], next);
        self.addr
    }

    pub fn handle(&mut self, req: &Request) -> Option<Reply> {
        if !self.answering {
            return None;
        }
        if req.server_id.is_some_and(|s| s != self.plan.server) {
            // The client chose another server's offer.
            return None;
        }
        let (kind, addr) = match req.kind {
            DISCOVER => (OFFER, self.addr),
            REQUEST => {
                let wants = req.requested.unwrap_or(req.ciaddr);
                if wants == self.addr {
                    (ACK, self.addr)
                } else {
                    (NAK, Ipv4Addr::UNSPECIFIED)
                }
            }
            _ => return None,
        };
        Some(Reply {
            kind,
            addr,
            payload: self.reply(req, kind, addr),
        })
    }

    fn reply(&self, req: &Request, kind: u8, yiaddr: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = 2;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&req.xid.to_be_bytes());
        p[10..12].copy_from_slice(&req.flags.to_be_bytes());
        p[16..20].copy_from_slice(&yiaddr.octets());
        p[20..24].copy_from_slice(&self.plan.server.octets());
        p[28..34].copy_from_slice(&req.chaddr);
        p[236..240].copy_from_slice(&MAGIC);
        let mut opt = |code: u8, v: &[u8]| {
            p.push(code);
            p.push(v.len() as u8);
            p.extend_from_slice(v);
        };
        opt(53, &[kind]);
        opt(54, &self.plan.server.octets());
        if kind != NAK {
            let secs = self.plan.lease.as_secs().min(u64::from(u32::MAX)) as u32;
            opt(51, &secs.to_be_bytes());
            opt(1, &self.plan.mask.octets());
            opt(3, &self.plan.server.octets());
            opt(6, &self.plan.dns.octets());
        }
        p.push(255);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            server: Ipv4Addr::new(10, 0, 2, 2),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            dns: Ipv4Addr::new(10, 0, 2, 3),
            lease: Duration::from_secs(600),
        }
    }

    /// A request as lwIP's dhcp.c sends it.
    pub(crate) fn request(kind: u8, requested: Option<Ipv4Addr>) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&0xabcd_0001u32.to_be_bytes());
        p[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        p[236..240].copy_from_slice(&MAGIC);
        p.extend_from_slice(&[53, 1, kind]);
        if let Some(a) = requested {
            p.extend_from_slice(&[50, 4]);
            p.extend_from_slice(&a.octets());
        }
        p.push(255);
        p
    }

    fn reply_kind(r: &Reply) -> u8 {
        parse_reply_kind(&r.payload)
    }

    fn parse_reply_kind(p: &[u8]) -> u8 {
        assert_eq!(p[0], 2);
        let i = p[240..].iter().position(|b| *b == 53).unwrap() + 240;
        p[i + 2]
    }

    #[test]
    fn discover_offer_request_ack() {
        let mut s = Server::new(plan(), Ipv4Addr::new(10, 0, 2, 15));
        let d = parse(&request(DISCOVER, None)).unwrap();
        let offer = s.handle(&d).unwrap();
        assert_eq!(
            (offer.kind, offer.addr),
            (OFFER, Ipv4Addr::new(10, 0, 2, 15))
        );
        assert_eq!(reply_kind(&offer), OFFER);
        assert_eq!(&offer.payload[16..20], &[10, 0, 2, 15]);
        let r = parse(&request(REQUEST, Some(offer.addr))).unwrap();
        let ack = s.handle(&r).unwrap();
        assert_eq!(ack.kind, ACK);
        // The router and DNS options are there.
        let opts = &ack.payload[240..];
        assert!(opts.windows(6).any(|w| w == [3, 4, 10, 0, 2, 2]));
        assert!(opts.windows(6).any(|w| w == [6, 4, 10, 0, 2, 3]));
    }

    #[test]
    fn off_answers_nothing_and_a_roam_refuses_the_old_address() {
        let mut s = Server::new(plan(), Ipv4Addr::new(10, 0, 2, 15));
        s.answering = false;
        assert_eq!(s.handle(&parse(&request(DISCOVER, None)).unwrap()), None);
        s.answering = true;
        assert_eq!(s.roam(), Ipv4Addr::new(10, 0, 2, 16));
        let old = parse(&request(REQUEST, Some(Ipv4Addr::new(10, 0, 2, 15)))).unwrap();
        assert_eq!(s.handle(&old).unwrap().kind, NAK);
        let offer = s.handle(&parse(&request(DISCOVER, None)).unwrap()).unwrap();
        assert_eq!(offer.addr, Ipv4Addr::new(10, 0, 2, 16));
    }

    #[test]
    fn garbage_is_not_a_request() {
        assert_eq!(parse(&[0u8; 10]), None);
        let mut p = request(DISCOVER, None);
        p[236] = 0;
        assert_eq!(parse(&p), None);
    }
}
