//! The faults of the harness's own network, as data: what a scenario step
//! (`wifi`, `ip`, `dns`, `dhcp`) or an `observe` command asks for. Each
//! has the text of its history event ([`NetFault::name`]), whose first word
//! is its family (`wifi`, `ip`, `dns`, `dhcp`).

use std::time::Duration;

use crate::history::Dir;

#[derive(Clone, Debug, PartialEq)]
pub enum NetFault {
    Wifi(Wifi),
    /// On the TCP segments of the board's connections to the harness;
    /// `dir: None` is both directions.
    Ip {
        dir: Option<Dir>,
        fault: IpFault,
    },
    Dns(super::dns::Mode),
    /// `true`: the DHCP server answers (the default).
    Dhcp(bool),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Wifi {
    /// Association lost: the board's link goes down (QMP `set_link`).
    Off,
    On,
    /// The link drops and comes back on another network: the next lease
    /// is a new address.
    Roam,
    /// Every frame, both ways, is lost with this probability (0 ends it).
    Weak {
        loss: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    /// Each segment with this probability.
    Rate(f64),
    /// The nth new data segment of each connection, counted from the
    /// fault's step (retransmissions are not new).
    Nth(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub enum IpFault {
    Loss(Amount),
    Duplicate(Amount),
    /// Segments held back (by `gap`) so that later ones overtake them.
    Reorder {
        rate: f64,
        gap: Duration,
    },
    Delay {
        delay: Duration,
        jitter: Duration,
    },
    /// The largest segment: the harness advertises it to the board in its
    /// SYN-ACK (the board's own stack then splits what it sends) and cuts
    /// what it sends to that size.
    Mss(u16),
    /// New connections are answered with RST to their SYN (a closed port).
    Refuse,
    Accept,
    /// No segment passes; nothing is closed.
    Blackhole,
    Heal,
    /// Every `ip` fault ends (refuse and blackhole included).
    Clear,
}

fn pct(r: f64) -> String {
    let p = r * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{}%", p.round() as i64)
    } else {
        format!("{p:.1}%")
    }
}

fn amount(a: &Amount) -> String {
    match a {
        Amount::Rate(r) => pct(*r),
        Amount::Nth(n) => format!("{} segment", crate::proxy::ordinal(*n)),
    }
}

impl NetFault {
    /// The fault's history text, with its parameters.
    pub fn name(&self) -> String {
        use crate::scenario::duration::format as d;
        match self {
            NetFault::Wifi(Wifi::Off) => "wifi off".into(),
            NetFault::Wifi(Wifi::On) => "wifi on".into(),
            NetFault::Wifi(Wifi::Roam) => "wifi roam".into(),
            NetFault::Wifi(Wifi::Weak { loss }) => format!("wifi weak loss {}", pct(*loss)),
            NetFault::Dns(m) => format!(
                "dns {}",
                match m {
                    super::dns::Mode::Answer => "heal",
                    super::dns::Mode::Fail => "fail",
                    super::dns::Mode::Timeout => "timeout",
                }
            ),
            NetFault::Dhcp(on) => format!("dhcp {}", if *on { "on" } else { "off" }),
            NetFault::Ip { dir, fault } => {
                let body = match fault {
                    IpFault::Loss(a) => format!("loss {}", amount(a)),
                    IpFault::Duplicate(a) => format!("duplicate {}", amount(a)),
                    IpFault::Reorder { rate, gap } => {
                        format!("reorder {} by {}", pct(*rate), d(*gap))
                    }
                    IpFault::Delay { delay, jitter } if jitter.is_zero() => {
                        format!("delay {}", d(*delay))
                    }
                    IpFault::Delay { delay, jitter } => {
                        format!("delay {} jitter {}", d(*delay), d(*jitter))
                    }
                    IpFault::Mss(m) => format!("mss {m}"),
                    IpFault::Refuse => "refuse".into(),
                    IpFault::Accept => "accept".into(),
                    IpFault::Blackhole => "blackhole".into(),
                    IpFault::Heal => "heal".into(),
                    IpFault::Clear => "clear".into(),
                };
                match dir {
                    Some(dir) => format!("ip {body} {}", crate::proxy::dir_name(*dir)),
                    None => format!("ip {body}"),
                }
            }
        }
    }

    /// Needs the board's radio (QMP `set_link`), not only its frames.
    pub fn needs_radio(&self) -> bool {
        matches!(self, NetFault::Wifi(_))
    }
}

/// A probability as a scenario or a command gives it: 0 to 1, or a
/// percentage (`"20%"`).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("`{text}` is not a rate: write 0.2 or \"20%\""))?;
    check_rate(v)
}

pub fn check_rate(v: f64) -> Result<f64, String> {
    if !(0.0..=1.0).contains(&v) || v.is_nan() {
        return Err(format!("{v} is outside 0-1 (a probability: 0.2 is 20 %)"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_parameters() {
        let f = |dir, fault| NetFault::Ip { dir, fault };
        assert_eq!(
            f(Some(Dir::ToBroker), IpFault::Loss(Amount::Rate(0.2))).name(),
            "ip loss 20% to_broker"
        );
        assert_eq!(
            f(None, IpFault::Loss(Amount::Nth(3))).name(),
            "ip loss 3rd segment"
        );
        assert_eq!(f(None, IpFault::Mss(1)).name(), "ip mss 1");
        assert_eq!(
            f(
                None,
                IpFault::Delay {
                    delay: Duration::from_millis(100),
                    jitter: Duration::from_millis(20)
                }
            )
            .name(),
            "ip delay 100ms jitter 20ms"
        );
        assert_eq!(
            NetFault::Wifi(Wifi::Weak { loss: 0.125 }).name(),
            "wifi weak loss 12.5%"
        );
        assert_eq!(
            NetFault::Dns(super::super::dns::Mode::Fail).name(),
            "dns fail"
        );
        assert_eq!(NetFault::Dhcp(false).name(), "dhcp off");
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("0.2"), Ok(0.2));
        assert_eq!(parse_rate("20%"), Ok(0.2));
        assert!(parse_rate("1.5").unwrap_err().contains("outside 0-1"));
        assert!(parse_rate("-0.1").is_err());
        assert!(parse_rate("lots").unwrap_err().contains("not a rate"));
    }
}
