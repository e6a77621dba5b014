//! The IP-level fault model, as pure state: which `ip` and radio faults are
//! armed in each direction, and what happens to one frame.
//!
//! Randomness is drawn from the frame's identity, not from the order frames
//! happen to arrive in: a TCP segment is known by its connection's ordinal,
//! its sequence and acknowledgement numbers relative to the connection's
//! initial ones, its length and flags, and how many times that same segment
//! was seen before (so a retransmission draws anew). The same run drops the
//! same segments whatever the scheduler did in between, and a seed chosen
//! per scenario makes it repeat across runs. Frames that are not TCP (DHCP,
//! DNS, ARP: only the radio's `weak` loss touches them) draw from a counter.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::fault::{Amount, IpFault};
use crate::history::Dir;

/// Who a TCP segment is, for the draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegKey {
    /// The connection's ordinal in the run (1, 2...).
    pub flow: u32,
    pub rel_seq: u32,
    pub rel_ack: u32,
    pub len: u32,
    pub flags: u8,
    /// Times this very segment was seen before.
    pub attempt: u32,
    /// It carries data beyond any sent before on its connection, in its
    /// direction: the `nth` rules count these.
    pub new_data: bool,
}

/// What happens to a frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass,
    Drop(String),
    /// Sent twice.
    Duplicate,
    /// Held back this long, so that what follows may overtake it.
    Reorder(Duration),
    /// Delayed this long, order kept.
    Delay(Duration),
}

#[derive(Clone, Debug, Default)]
struct NthRule {
    nth: u32,
    /// New data segments each connection had sent when the rule was armed.
    bases: HashMap<u32, u32>,
    fired: HashSet<u32>,
}

#[derive(Clone, Debug)]
enum Rule {
    Rate(f64),
    Nth(NthRule),
}

#[derive(Clone, Debug, Default)]
struct Direction {
    loss: Option<Rule>,
    dup: Option<Rule>,
    reorder: Option<(f64, Duration)>,
    delay: Duration,
    jitter: Duration,
    blackhole: bool,
}

#[derive(Clone, Debug)]
pub struct Impair {
    seed: u64,
    to_broker: Direction,
    to_client: Direction,
    /// The radio's `weak` loss, both ways, on every frame.
    pub radio_loss: f64,
    /// MSS advertised to the board in new connections' SYN-ACK.
    pub mss_advertised: Option<u16>,
    /// Largest segment the harness sends.
    pub mss_sent: Option<u16>,
    pub refuse: bool,
    counter: u64,
    /// New data segments per (connection, direction) so far.
    new_counts: HashMap<(u32, bool), u32>,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform draw in [0, 1) from the seed, a purpose tag and the key.
fn draw(seed: u64, tag: u64, key: &SegKey, to_broker: bool) -> f64 {
    let mut h = mix(seed ^ tag);
    for v in [
        u64::from(key.flow),
        u64::from(key.rel_seq),
        u64::from(key.rel_ack),
        u64::from(key.len),
        u64::from(key.flags),
        u64::from(key.attempt),
        u64::from(to_broker),
    ] {
        h = mix(h ^ v);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl Impair {
    pub fn new(seed: u64) -> Impair {
        Impair {
            seed,
            to_broker: Direction::default(),
            to_client: Direction::default(),
            radio_loss: 0.0,
            mss_advertised: None,
            mss_sent: None,
            refuse: false,
            counter: 0,
            new_counts: HashMap::new(),
        }
    }

    /// An `ip blackhole` stops segments going `dir`.
    pub fn blackholed(&self, dir: Dir) -> bool {
        match dir {
            Dir::ToBroker => self.to_broker.blackhole,
            Dir::ToClient => self.to_client.blackhole,
        }
    }

    pub fn apply(&mut self, dir: Option<Dir>, fault: &IpFault) {
        let rule = |a: &Amount, counts: &HashMap<(u32, bool), u32>, to_broker: bool| match a {
            Amount::Rate(r) => Rule::Rate(*r),
            Amount::Nth(n) => Rule::Nth(NthRule {
                nth: *n,
                bases: counts
                    .iter()
                    .filter(|((_, tb), _)| *tb == to_broker)
                    .map(|((f, _), c)| (*f, *c))
                    .collect(),
                fired: HashSet::new(),
            }),
        };
        let counts = self.new_counts.clone();
        match fault {
            IpFault::Mss(m) => {
                if dir != Some(Dir::ToClient) {
                    self.mss_advertised = Some(*m);
                }
                if dir != Some(Dir::ToBroker) {
                    self.mss_sent = Some(*m);
                }
            }
            IpFault::Refuse => self.refuse = true,
            IpFault::Accept => self.refuse = false,
            IpFault::Clear => {
                let radio = self.radio_loss;
                let seed = self.seed;
                let counts = std::mem::take(&mut self.new_counts);
                *self = Impair::new(seed);
                self.radio_loss = radio;
                self.new_counts = counts;
            }
            _ => {
                for (tb, d) in [(true, Some(Dir::ToBroker)), (false, Some(Dir::ToClient))] {
                    if dir.is_some() && dir != d {
                        continue;
                    }
                    let x = if tb {
                        &mut self.to_broker
                    } else {
                        &mut self.to_client
                    };
                    match fault {
                        IpFault::Loss(a) => x.loss = Some(rule(a, &counts, tb)),
                        IpFault::Duplicate(a) => x.dup = Some(rule(a, &counts, tb)),
                        IpFault::Reorder { rate, gap } => x.reorder = Some((*rate, *gap)),
                        IpFault::Delay { delay, jitter } => {
                            x.delay = *delay;
                            x.jitter = *jitter;
                        }
                        IpFault::Blackhole => x.blackhole = true,
                        IpFault::Heal => x.blackhole = false,
                        _ => unreachable!("handled above"),
                    }
                }
            }
        }
    }

    /// The verdict on a segment of a board's connection.
    pub fn segment(&mut self, dir: Dir, key: SegKey) -> Verdict {
        let tb = dir == Dir::ToBroker;
        let count = if key.new_data {
            let c = self.new_counts.entry((key.flow, tb)).or_default();
            *c += 1;
            Some(*c)
        } else {
            None
        };
        if self.radio_loss > 0.0 && draw(self.seed, 1, &key, tb) < self.radio_loss {
            return Verdict::Drop("radio: weak signal".into());
        }
        let seed = self.seed;
        let d = if tb {
            &mut self.to_broker
        } else {
            &mut self.to_client
        };
        if d.blackhole {
            return Verdict::Drop("ip blackhole".into());
        }
        let hit = |rule: &mut Option<Rule>, tag: u64| -> bool {
            match rule {
                None => false,
                Some(Rule::Rate(r)) => draw(seed, tag, &key, tb) < *r,
                Some(Rule::Nth(n)) => match count {
                    Some(c) => {
                        let base = n.bases.get(&key.flow).copied().unwrap_or(0);
                        if c == base + n.nth && n.fired.insert(key.flow) {
                            return true;
                        }
                        false
                    }
                    None => false,
                },
            }
        };
        if hit(&mut d.loss, 2) {
            return Verdict::Drop(match &d.loss {
                Some(Rule::Nth(n)) => format!("ip loss: {} segment", crate::proxy::ordinal(n.nth)),
                _ => "ip loss".into(),
            });
        }
        if hit(&mut d.dup, 3) {
            return Verdict::Duplicate;
        }
        if let Some((rate, gap)) = d.reorder {
            if draw(seed, 4, &key, tb) < rate {
                return Verdict::Reorder(gap + d.delay);
            }
        }
        if !d.delay.is_zero() || !d.jitter.is_zero() {
            let j = d.jitter.as_secs_f64();
            let off = (draw(seed, 5, &key, tb) * 2.0 - 1.0) * j;
            let t = (d.delay.as_secs_f64() + off).max(0.0);
            return Verdict::Delay(Duration::from_secs_f64(t));
        }
        Verdict::Pass
    }

    /// The verdict on a frame that is not a board's TCP segment: only the
    /// radio touches those.
    pub fn other(&mut self, dir: Dir) -> Verdict {
        if self.radio_loss <= 0.0 {
            return Verdict::Pass;
        }
        self.counter += 1;
        let key = SegKey {
            flow: 0,
            rel_seq: self.counter as u32,
            rel_ack: 0,
            len: 0,
            flags: 0,
            attempt: 0,
            new_data: false,
        };
        if draw(self.seed, 6, &key, dir == Dir::ToBroker) < self.radio_loss {
            Verdict::Drop("radio: weak signal".into())
        } else {
            Verdict::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(flow: u32, seq: u32, attempt: u32, new_data: bool) -> SegKey {
        SegKey {
            flow,
            rel_seq: seq,
            rel_ack: 1,
            len: 10,
            flags: 0x18,
            attempt,
            new_data,
        }
    }

    #[test]
    fn rate_loss_is_drawn_from_the_segment_not_the_order() {
        let mut a = Impair::new(7);
        let mut b = Impair::new(7);
        a.apply(None, &IpFault::Loss(Amount::Rate(0.3)));
        b.apply(None, &IpFault::Loss(Amount::Rate(0.3)));
        let keys: Vec<SegKey> = (0..200).map(|i| key(1, 1 + i * 10, 0, true)).collect();
        let fwd: Vec<Verdict> = keys.iter().map(|k| a.segment(Dir::ToBroker, *k)).collect();
        let mut rev: Vec<Verdict> = keys
            .iter()
            .rev()
            .map(|k| b.segment(Dir::ToBroker, *k))
            .collect();
        rev.reverse();
        assert_eq!(fwd, rev);
        let dropped = fwd.iter().filter(|v| matches!(v, Verdict::Drop(_))).count();
        assert!(
            (35..=85).contains(&dropped),
            "{dropped} of 200 dropped at 30 %"
        );
        // A retransmission draws anew.
        let first = keys
            .iter()
            .position(|k| matches!(a.segment(Dir::ToBroker, *k), Verdict::Drop(_)));
        let k = keys[first.unwrap()];
        let retries: Vec<Verdict> = (1..20)
            .map(|n| a.segment(Dir::ToBroker, SegKey { attempt: n, ..k }))
            .collect();
        assert!(retries.contains(&Verdict::Pass));
    }

    #[test]
    fn another_seed_drops_other_segments() {
        let pattern = |seed| {
            let mut i = Impair::new(seed);
            i.apply(None, &IpFault::Loss(Amount::Rate(0.5)));
            (0..64)
                .map(|n| {
                    matches!(
                        i.segment(Dir::ToClient, key(1, n * 10, 0, true)),
                        Verdict::Drop(_)
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(pattern(1), pattern(1));
        assert_ne!(pattern(1), pattern(2));
    }

    #[test]
    fn nth_drops_one_new_segment_per_connection_counted_from_arming() {
        let mut i = Impair::new(1);
        assert_eq!(i.segment(Dir::ToBroker, key(1, 1, 0, true)), Verdict::Pass);
        i.apply(Some(Dir::ToBroker), &IpFault::Loss(Amount::Nth(2)));
        let v: Vec<bool> = [
            key(1, 11, 0, true),
            key(1, 21, 0, true),  // 2nd since arming on connection 1
            key(1, 21, 1, false), // its retransmission
            key(2, 1, 0, true),
            key(2, 11, 0, true), // 2nd on connection 2
            key(1, 31, 0, true),
        ]
        .iter()
        .map(|k| matches!(i.segment(Dir::ToBroker, *k), Verdict::Drop(_)))
        .collect();
        assert_eq!(v, [false, true, false, false, true, false]);
        // The other direction is untouched.
        assert_eq!(i.segment(Dir::ToClient, key(1, 21, 0, true)), Verdict::Pass);
    }

    #[test]
    fn blackhole_heal_delay_and_clear() {
        let mut i = Impair::new(1);
        i.apply(Some(Dir::ToClient), &IpFault::Blackhole);
        assert!(matches!(
            i.segment(Dir::ToClient, key(1, 1, 0, true)),
            Verdict::Drop(_)
        ));
        assert_eq!(i.segment(Dir::ToBroker, key(1, 1, 0, true)), Verdict::Pass);
        i.apply(None, &IpFault::Heal);
        i.apply(
            None,
            &IpFault::Delay {
                delay: Duration::from_millis(100),
                jitter: Duration::from_millis(20),
            },
        );
        for n in 0..50 {
            let Verdict::Delay(d) = i.segment(Dir::ToBroker, key(1, n, 0, true)) else {
                panic!("not delayed")
            };
            assert!(
                d >= Duration::from_millis(80) && d <= Duration::from_millis(120),
                "{d:?}"
            );
        }
        i.apply(None, &IpFault::Mss(1));
        assert_eq!((i.mss_advertised, i.mss_sent), (Some(1), Some(1)));
        i.apply(None, &IpFault::Refuse);
        i.apply(None, &IpFault::Clear);
        assert_eq!(i.segment(Dir::ToBroker, key(1, 99, 0, true)), Verdict::Pass);
        assert_eq!((i.mss_advertised, i.refuse), (None, false));
    }

    #[test]
    fn radio_loss_touches_every_frame() {
        let mut i = Impair::new(3);
        i.radio_loss = 1.0;
        assert!(matches!(i.other(Dir::ToClient), Verdict::Drop(_)));
        assert!(matches!(
            i.segment(Dir::ToBroker, key(1, 1, 0, true)),
            Verdict::Drop(_)
        ));
        i.radio_loss = 0.0;
        assert_eq!(i.other(Dir::ToClient), Verdict::Pass);
    }
}
