//! `--pcap DIR`: the recorded traffic of each scenario as a pcapng file
//! (`DIR/<id>.pcapng`, or `DIR/<broker>/<id>.pcapng` with several brokers)
//! that Wireshark and tshark open and decode with their own MQTT dissector.
//!
//! The proxy records MQTT packets, not TCP segments, so the frames are
//! synthesized (sans-IO, [`frames`]) from the history, the same way every
//! time:
//! - addresses per role: the broker is 10.0.0.1 port 1883, the device
//!   10.0.0.2, observers 10.0.0.10, .11, … in order of first appearance;
//!   each connection gets its own client port (49152 + its connection id);
//! - each recorded connection is a TCP stream: a three-way handshake when
//!   it opened, one segment (MSS 1460, longer packets split) per packet with
//!   the packet's own bytes and correct sequence and acknowledgement
//!   numbers, and at its end FIN/ACK from whichever side closed first, RST
//!   for a sever or an unreachable broker, SYN answered by RST for a
//!   refused connection, nothing for one still open when the run ended;
//! - the capture is what each sender put on the wire: a packet the proxy
//!   dropped, held or duplicated appears once, at the time it was sent,
//!   with a frame comment saying what the proxy did (its later release is
//!   not a second send and adds no frame); every packet's comment names
//!   its history event (`#seq`), the number the HTML report and verdicts
//!   use;
//! - timestamps are the history's, from the scenario's wall-clock start,
//!   in nanoseconds.
//!
//! On the harness's own network (an emulated board with `--net owned`,
//! docs/network.md) the device's connections are not synthesized: the
//! capture carries the board's real Ethernet frames (10.0.2.x) as its
//! stack sent them and the harness answered — lwIP's segment sizes, a
//! PUBLISH cut into 1-byte segments by `ip mss`, retransmissions, DHCP,
//! DNS, ARP, RSTs — each commented with its `#seq` and, when a fault acted
//! on it, what the network did (`dropped by ip loss`, `duplicated`...).
//! Observers' connections are synthesized as above.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use etherparse::PacketBuilder;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

use super::events::{slug, RunEvent};
use super::files::place;
use super::{describe, Reporter};
use crate::error::Error;
use crate::history::{CloseReason, ConnId, Dir, EventKind, Fate, History};
use crate::mqtt::{Packet, Version};

pub const BROKER_IP: [u8; 4] = [10, 0, 0, 1];
pub const DEVICE_IP: [u8; 4] = [10, 0, 0, 2];
pub const BROKER_PORT: u16 = 1883;
const MSS: usize = 1460;
const WINDOW: u16 = 65535;

/// One synthesized Ethernet frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Time since the history began.
    pub at: Duration,
    pub data: Vec<u8>,
    pub comment: Option<String>,
}

struct Stream {
    client: ([u8; 4], u16),
    /// Next sequence number of the client and of the broker side.
    next_c: u32,
    next_s: u32,
    version: Version,
}

impl Stream {
    fn new(client_ip: [u8; 4], conn: ConnId) -> Stream {
        Stream {
            client: (client_ip, 49152 + (conn.0 % 16384) as u16),
            // Fixed initial sequence numbers: the same history gives the
            // same file.
            next_c: 0x1000_0000u32.wrapping_add(conn.0.wrapping_mul(0x10000)),
            next_s: 0x2000_0000u32.wrapping_add(conn.0.wrapping_mul(0x10000)),
            version: Version::V311,
        }
    }

    /// A segment from the client (`to_broker`) or the broker side.
    fn segment(&mut self, to_broker: bool, flags: Flags, payload: &[u8]) -> Vec<u8> {
        let (cip, cport) = self.client;
        let (src, dst, sport, dport, seq, ack) = if to_broker {
            (cip, BROKER_IP, cport, BROKER_PORT, self.next_c, self.next_s)
        } else {
            (BROKER_IP, cip, BROKER_PORT, cport, self.next_s, self.next_c)
        };
        let mut b = PacketBuilder::ethernet2(mac(src), mac(dst))
            .ipv4(src, dst, 64)
            .tcp(sport, dport, seq, WINDOW);
        if flags.syn {
            b = b.syn();
        }
        if flags.ack {
            b = b.ack(ack);
        }
        if flags.fin {
            b = b.fin();
        }
        if flags.rst {
            b = b.rst();
        }
        if !payload.is_empty() {
            b = b.psh();
        }
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload)
            .expect("a TCP/IP frame of at most one MSS always builds");
        // SYN and FIN take one sequence number each.
        let used = payload.len() as u32 + u32::from(flags.syn) + u32::from(flags.fin);
        if to_broker {
            self.next_c = self.next_c.wrapping_add(used);
        } else {
            self.next_s = self.next_s.wrapping_add(used);
        }
        out
    }
}

#[derive(Clone, Copy, Default)]
struct Flags {
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
}

const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
};
const SYN_ACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
};
const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
};
const FIN_ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
};
const RST_ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: true,
};

/// A locally administered MAC derived from the IPv4 address.
fn mac(ip: [u8; 4]) -> [u8; 6] {
    [0x02, 0x00, ip[0], ip[1], ip[2], ip[3]]
}

/// The address of each actor: device, then observers by first appearance.
fn addresses(history: &History) -> HashMap<String, [u8; 4]> {
    let mut out = HashMap::new();
    out.insert("device".to_string(), DEVICE_IP);
    let mut next = 10u8;
    for ev in &history.events {
        if let EventKind::ConnOpened { actor, .. } | EventKind::Packet { actor, .. } = &ev.kind {
            if !out.contains_key(actor) {
                out.insert(actor.clone(), [10, 0, 0, next]);
                next = next.saturating_add(1);
            }
        }
    }
    out
}

/// The frames of every proxied connection of `history`, in log order;
/// the board's real frames instead of the device's synthesized ones when
/// the history has them.
pub fn frames(history: &History) -> Vec<Frame> {
    let real = history
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Frame { .. }));
    let ips = addresses(history);
    let refused: HashSet<ConnId> = history
        .events
        .iter()
        .filter_map(|ev| match &ev.kind {
            EventKind::ConnClosed {
                conn,
                reason: CloseReason::Refused,
                ..
            } => Some(*conn),
            _ => None,
        })
        .collect();
    let mut streams: HashMap<ConnId, Stream> = HashMap::new();
    let mut out = Vec::new();
    let mut push = |at, data, comment: Option<String>| out.push(Frame { at, data, comment });
    for ev in &history.events {
        let at = ev.at;
        match &ev.kind {
            EventKind::Frame {
                dir,
                data,
                fate,
                note,
            } => {
                let mut comment = format!(
                    "#{} {} the board",
                    ev.seq,
                    if *dir == Dir::ToBroker { "from" } else { "to" }
                );
                if let Some(n) = note {
                    comment += &format!(" ({n})");
                }
                comment += &describe::frame_fate(fate);
                push(at, data.to_vec(), Some(comment));
                continue;
            }
            EventKind::ConnOpened { actor, .. }
            | EventKind::Packet { actor, .. }
            | EventKind::Malformed { actor, .. }
            | EventKind::ConnClosed { actor, .. }
                if real && actor == "device" =>
            {
                continue
            }
            _ => {}
        }
        match &ev.kind {
            EventKind::ConnOpened { conn, actor } => {
                let ip = ips.get(actor).copied().unwrap_or(DEVICE_IP);
                let s = streams
                    .entry(*conn)
                    .or_insert_with(|| Stream::new(ip, *conn));
                let note = format!("#{} {actor} {conn} open", ev.seq);
                push(at, s.segment(true, SYN, &[]), Some(note));
                if refused.contains(conn) {
                    continue;
                }
                push(at, s.segment(false, SYN_ACK, &[]), None);
                push(at, s.segment(true, ACK, &[]), None);
            }
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                raw,
                fate,
            } => {
                if *fate == Fate::Released {
                    continue;
                }
                let ip = ips.get(actor).copied().unwrap_or(DEVICE_IP);
                let s = opened(&mut streams, &mut push, *conn, ip, at);
                if let Packet::Connect(c) = packet {
                    s.version = c.version;
                }
                let bytes = if raw.is_empty() {
                    // Histories built in tests carry no bytes.
                    crate::mqtt::codec::encode(packet, s.version).unwrap_or_else(|_| Bytes::new())
                } else {
                    raw.clone()
                };
                let what = match fate {
                    Fate::Forwarded => "",
                    Fate::Dropped => ": dropped by the proxy, the peer never got it",
                    Fate::Held => ": held by the proxy, the peer got it only when released",
                    Fate::Duplicated => ": duplicated by the proxy, the peer got it twice",
                    Fate::Released => "",
                };
                let note = format!("#{} {actor} {}{what}", ev.seq, describe::packet(packet));
                let to_broker = *dir == Dir::ToBroker;
                for (i, chunk) in bytes.chunks(MSS).enumerate() {
                    let comment = (i == 0).then(|| note.clone());
                    push(at, s.segment(to_broker, ACK, chunk), comment);
                }
            }
            EventKind::Malformed {
                conn,
                actor,
                dir,
                raw,
                error,
            } => {
                let ip = ips.get(actor).copied().unwrap_or(DEVICE_IP);
                let s = opened(&mut streams, &mut push, *conn, ip, at);
                let note = format!("#{} {actor} malformed: {error}", ev.seq);
                for (i, chunk) in raw.chunks(MSS).enumerate() {
                    let comment = (i == 0).then(|| note.clone());
                    push(at, s.segment(*dir == Dir::ToBroker, ACK, chunk), comment);
                }
            }
            EventKind::ConnClosed {
                conn,
                actor,
                reason,
            } => {
                let Some(s) = streams.get_mut(conn) else {
                    continue;
                };
                let note = Some(format!(
                    "#{} {actor} {conn} {}",
                    ev.seq,
                    describe::close_reason(reason)
                ));
                match reason {
                    CloseReason::ClientClosed => {
                        push(at, s.segment(true, FIN_ACK, &[]), note);
                        push(at, s.segment(false, FIN_ACK, &[]), None);
                        push(at, s.segment(true, ACK, &[]), None);
                    }
                    // The proxy closing with FIN plays the broker's side.
                    CloseReason::BrokerClosed | CloseReason::Closed => {
                        push(at, s.segment(false, FIN_ACK, &[]), note);
                        push(at, s.segment(true, FIN_ACK, &[]), None);
                        push(at, s.segment(false, ACK, &[]), None);
                    }
                    CloseReason::Severed
                    | CloseReason::Refused
                    | CloseReason::UpstreamUnreachable(_) => {
                        push(at, s.segment(false, RST_ACK, &[]), note);
                    }
                    CloseReason::RunEnded => {}
                }
                streams.remove(conn);
            }
            _ => {}
        }
    }
    out
}

/// The stream of `conn`, opened with a handshake now if the history did not
/// show it opening (e.g. a history that starts mid-connection).
fn opened<'a>(
    streams: &'a mut HashMap<ConnId, Stream>,
    push: &mut impl FnMut(Duration, Vec<u8>, Option<String>),
    conn: ConnId,
    ip: [u8; 4],
    at: Duration,
) -> &'a mut Stream {
    streams.entry(conn).or_insert_with(|| {
        let mut s = Stream::new(ip, conn);
        push(at, s.segment(true, SYN, &[]), None);
        push(at, s.segment(false, SYN_ACK, &[]), None);
        push(at, s.segment(true, ACK, &[]), None);
        s
    })
}

/// A pcapng file of `frames`, with history times counted from `start`.
pub fn pcapng(frames: &[Frame], start: SystemTime, description: &str) -> Vec<u8> {
    let base = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut w = PcapNgWriter::new(Vec::new()).expect("writing to memory");
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Borrowed("mqtt-hil")),
            InterfaceDescriptionOption::IfDescription(Cow::Borrowed(description)),
            // pcap-file writes nanoseconds: say so (the default is µs).
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    })
    .expect("writing to memory");
    for f in frames {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: base + f.at,
            original_len: f.data.len() as u32,
            data: Cow::Borrowed(&f.data),
            options: f
                .comment
                .iter()
                .map(|c| EnhancedPacketOption::Comment(Cow::Borrowed(c.as_str())))
                .collect(),
        })
        .expect("writing to memory");
    }
    w.into_inner()
}

/// Writes a pcapng per finished scenario.
pub struct PcapFiles {
    dir: PathBuf,
    per_broker: bool,
}

impl PcapFiles {
    pub fn new(dir: &Path) -> Result<PcapFiles, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(PcapFiles {
            dir: dir.to_path_buf(),
            per_broker: false,
        })
    }
}

impl Reporter for PcapFiles {
    fn report(&mut self, ev: &RunEvent) -> Result<(), Error> {
        match ev {
            RunEvent::RunStarted { brokers, .. } => self.per_broker = brokers.len() > 1,
            RunEvent::ScenarioFinished(f) => {
                let o = &f.outcome;
                let path = place(
                    &self.dir,
                    self.per_broker,
                    &f.broker,
                    &format!("{}.pcapng", slug(&f.file_stem())),
                )?;
                let bytes = pcapng(
                    &frames(&o.history),
                    f.started_at,
                    &format!("{} against {}: {}", o.id, f.broker, o.name),
                );
                std::fs::write(&path, bytes)
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{Properties, Publish, QoS};
    use etherparse::SlicedPacket;

    struct Seg {
        src: [u8; 4],
        seq: u32,
        ack: Option<u32>,
        flags: String,
        len: usize,
    }

    fn parse(f: &Frame) -> Seg {
        let p = SlicedPacket::from_ethernet(&f.data).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4")
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("not TCP")
        };
        let mut flags = String::new();
        for (on, c) in [
            (tcp.syn(), 'S'),
            (tcp.fin(), 'F'),
            (tcp.rst(), 'R'),
            (tcp.psh(), 'P'),
            (tcp.ack(), 'A'),
        ] {
            if on {
                flags.push(c);
            }
        }
        Seg {
            src: ip.header().source(),
            seq: tcp.sequence_number(),
            ack: tcp.ack().then(|| tcp.acknowledgment_number()),
            flags,
            len: tcp.payload().len(),
        }
    }

    fn publish(payload: Vec<u8>, fate: Fate) -> EventKind {
        EventKind::Packet {
            conn: ConnId(1),
            actor: "device".into(),
            dir: Dir::ToBroker,
            packet: Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "t".into(),
                pid: None,
                payload: Bytes::from(payload),
                properties: Properties::default(),
            }),
            raw: Bytes::new(),
            fate,
        }
    }

    #[test]
    fn a_connection_is_a_tcp_stream_with_consistent_numbers() {
        let h = History::build()
            .push(EventKind::ConnOpened {
                conn: ConnId(1),
                actor: "device".into(),
            })
            .push(publish(vec![b'x'; 3000], Fate::Forwarded))
            .push(publish(b"held".to_vec(), Fate::Held))
            .push(publish(b"held".to_vec(), Fate::Released))
            .push(EventKind::ConnClosed {
                conn: ConnId(1),
                actor: "device".into(),
                reason: CloseReason::ClientClosed,
            })
            .finish();
        let frames = frames(&h);
        let segs: Vec<Seg> = frames.iter().map(parse).collect();
        let flags: Vec<&str> = segs.iter().map(|s| s.flags.as_str()).collect();
        // Handshake; the 3006-byte PUBLISH in three segments; the held one
        // once (its release is no new send); FIN both ways and the last ACK.
        assert_eq!(
            flags,
            ["S", "SA", "A", "PA", "PA", "PA", "PA", "FA", "FA", "A"]
        );
        assert_eq!(
            segs[3..6].iter().map(|s| s.len).collect::<Vec<_>>(),
            [1460, 1460, 86]
        );
        let isn_c = segs[0].seq;
        let isn_s = segs[1].seq;
        assert_eq!(segs[1].ack, Some(isn_c + 1));
        // Each data segment starts where the last ended; the broker side
        // acknowledges everything the client sent, FIN included.
        let mut next = isn_c + 1;
        for s in &segs[3..7] {
            assert_eq!((s.seq, s.ack), (next, Some(isn_s + 1)));
            next += s.len as u32;
        }
        assert_eq!(segs[7].seq, next);
        assert_eq!((segs[8].seq, segs[8].ack), (isn_s + 1, Some(next + 1)));
        assert_eq!((segs[9].seq, segs[9].ack), (next + 1, Some(isn_s + 2)));
        assert!(segs[..3].iter().all(|s| s.len == 0));
        assert_eq!(segs[0].src, DEVICE_IP);
        assert_eq!(segs[1].src, BROKER_IP);
        assert!(frames[6]
            .comment
            .as_deref()
            .unwrap()
            .contains("held by the proxy"));
    }

    #[test]
    fn refused_is_syn_then_rst_and_severed_is_rst() {
        let h = History::build()
            .push(EventKind::ConnOpened {
                conn: ConnId(1),
                actor: "cloud".into(),
            })
            .push(EventKind::ConnClosed {
                conn: ConnId(1),
                actor: "cloud".into(),
                reason: CloseReason::Refused,
            })
            .push(EventKind::ConnOpened {
                conn: ConnId(2),
                actor: "cloud".into(),
            })
            .push(EventKind::ConnClosed {
                conn: ConnId(2),
                actor: "cloud".into(),
                reason: CloseReason::Severed,
            })
            .push(EventKind::ConnOpened {
                conn: ConnId(3),
                actor: "cloud".into(),
            })
            .push(EventKind::ConnClosed {
                conn: ConnId(3),
                actor: "cloud".into(),
                reason: CloseReason::RunEnded,
            })
            .finish();
        let segs: Vec<Seg> = frames(&h).iter().map(parse).collect();
        let flags: Vec<&str> = segs.iter().map(|s| s.flags.as_str()).collect();
        assert_eq!(flags, ["S", "RA", "S", "SA", "A", "RA", "S", "SA", "A"]);
        // The refusal acknowledges the SYN; the observer has its own address.
        assert_eq!(segs[1].ack, Some(segs[0].seq + 1));
        assert_eq!(segs[0].src, [10, 0, 0, 10]);
    }

    #[test]
    fn the_file_is_pcapng_with_nanosecond_times() {
        let frames = vec![Frame {
            at: Duration::from_nanos(1_500),
            data: vec![0; 60],
            comment: Some("c".into()),
        }];
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let bytes = pcapng(&frames, start, "x");
        let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).unwrap();
        let mut packets = Vec::new();
        while let Some(b) = r.next_block() {
            if let pcap_file::pcapng::Block::EnhancedPacket(p) = b.unwrap() {
                packets.push((p.timestamp, p.data.len(), p.options.len()));
            }
        }
        assert_eq!(
            packets,
            [(Duration::from_nanos(1_700_000_000_000_001_500), 60, 1)]
        );
        assert!(r.interfaces().iter().all(|i| i
            .options
            .contains(&InterfaceDescriptionOption::IfTsResol(9))));
    }
}
