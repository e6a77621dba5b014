//! `will`: the last will is published once after an abnormal end, and never
//! after a clean DISCONNECT.
//!
//! For every connection the broker accepted whose CONNECT carried a will,
//! the end of the connection decides what must happen:
//! - the client's DISCONNECT reached the broker: the will must never be
//!   published [MQTT-3.14.4-3] (5.0 reason code 0x04, "disconnect with will
//!   message", requires it instead);
//! - the proxy severed or closed the connection, the broker closed it, or
//!   the client closed it without DISCONNECT: the will is due within `slack`
//!   of the close [MQTT-3.1.2-8];
//! - the client went silent (a blackhole-like fault on its lane, or a board
//!   reset / power loss of the device) with keep alive > 0 and the silence
//!   lasted past 1.5 × keep alive after the last packet the broker received:
//!   the will is due by that point plus `slack` [MQTT-3.1.2-24]; a close the
//!   broker could not see (the client's FIN inside a blackhole) does not
//!   start the clock;
//! - 5.0: the will delay interval (capped by the session expiry interval)
//!   is added to the deadline, and a will published before it is flagged.
//!
//! Due means: every actor other than the will's owner that holds a
//! non-shared subscription matching the will topic, acknowledged before the
//! end, on a connection that stays open and fault-free until the deadline,
//! gets one new (DUP=0) PUBLISH of the will from the broker, no later than
//! the deadline. Retained copies (retain=1 sent because of a SUBSCRIBE, 3.1.1
//! §3.3.1-9) are not counted.
//!
//! Where the specification leaves freedom nothing is required and only "not
//! twice" is judged: a session takeover (another CONNECT with the same
//! client id while the connection was, as far as the broker knew, alive —
//! 3.1.1 does not say whether the will is sent; 5.0 forbids it when a will
//! delay is pending and the new connection resumes the session, which is
//! flagged as 5.0's MQTT-3.1.3-9), a broker stop or kill before the end, a
//! silence healed between 1 and 1.5 × keep alive, and a deadline after the
//! end of the log.
//!
//! Which publications are the will. A will is a message the broker
//! publishes on its own, so a PUBLISH from the broker with a will's topic
//! and payload is one of its deliveries only when:
//! - the CONNECT that declared that will came before it (a publication
//!   cannot deliver a will not yet declared);
//! - it is not the broker forwarding an ordinary PUBLISH: a client's own
//!   PUBLISH with that topic and payload (a device announcing a retained
//!   "offline" before a clean DISCONNECT) that reached the broker before the
//!   copy, within `slack` + 100 ms, accounts for one copy to each actor
//!   (whose subscription may be older than the log: a persistent session);
//! - it is not a retained copy sent because of a SUBSCRIBE (retain=1 where
//!   no SUBSCRIBE made before it asked for retain as published).
//!
//! It is attributed to the connection whose end could have caused it: the
//! most recent end up to 100 ms (clock tolerance between proxy tasks) after
//! it, preferring one that still owes this subscriber its will (a required
//! will up to its deadline; an allowed one up to the deadline its end would
//! have had; after the broker went away, whenever it is back). A will
//! publication no ended connection explains, while a connection that
//! declared that will is alive and was not under a fault by then, is
//! `will-premature`.
//!
//! One implementation judges both ways: [`Live`] is a state machine fed one
//! event at a time ([`Checker::incremental`], what `observe` runs), and
//! [`Checker::check`] feeds it a whole history. It decides in time order:
//! each connection with a will keeps the facts its end is judged on (its
//! DISCONNECT, close, silences still undecided, takeover, broker stop), the
//! deliveries attributed to it and, once its deadline passed, the
//! subscribers that were owed the will; a publication waits 100 ms for a
//! close recorded just after it. A connection that can no longer get a
//! delivery (its will owed to nobody, and a later connection of the same
//! owner and will has ended) is reduced to its findings. Subscriptions are
//! kept while open, or while an end still to be decided may date from
//! before they ended; client PUBLISHes with a will's topic and payload for
//! `slack` + 100 ms. Nothing is kept per message of ordinary traffic.
//!
//! Decisions where this differs from the batch checker it replaced (which
//! looked at the whole history at once), each shown by a test in
//! tests/check_will.rs:
//! - a publication before the CONNECT that declares a will is not that
//!   will's (it was `will-premature` once that CONNECT came);
//! - a forwarded client PUBLISH is not a will (it was MQTT-3.14.4-3 or
//!   `will-premature`);
//! - a fault on the owner after a premature publication does not excuse it;
//!   a retain-as-published subscription made after a retained copy does not
//!   make that copy a will;
//! - a broker stop before a takeover is the end (the takeover won before,
//!   whenever it came within the tolerance of the close);
//! - a board loss of the device counts as a silence even when a fault
//!   silence comes after it (it was ignored then);
//! - an allowed will after a takeover or a silence healed in grace is owed
//!   only up to the deadline its end would have had, so a copy long after
//!   it goes to the most recent end instead (it was taken as the allowed
//!   will however late); after the broker went away it stays owed, as
//!   before, since the broker may publish it whenever it is back.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use super::index::{prop_u32, seen, sent, show, BrokerAct, Stamp};
use super::live::Context;
use super::{fmt_d, Checker, Incremental, Verdict, Violation};
use crate::history::{CloseReason, ConnId, Dir, Event, EventKind, History};
use crate::mqtt::{topic, Connect, Packet, Version};

pub struct WillChecker {
    pub actor: Option<String>,
    pub slack: Duration,
}

impl Checker for WillChecker {
    fn name(&self) -> &str {
        "will"
    }

    fn check(&self, history: &History) -> Verdict {
        super::judge_whole(self.live(), history)
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(self.live()))
    }
}

impl WillChecker {
    fn live(&self) -> Live {
        Live {
            actor: self.actor.clone(),
            slack: self.slack,
            ctx: Context::default(),
            wills: BTreeMap::new(),
            count: 0,
            done: BTreeMap::new(),
            clean: VecDeque::new(),
            elided: 0,
            elided_required: 0,
            declaring: HashMap::new(),
            by_conn: HashMap::new(),
            rx: HashMap::new(),
            client_ids: HashMap::new(),
            connect_seen: HashSet::new(),
            first_connect: HashMap::new(),
            aliases: HashMap::new(),
            subs: BTreeMap::new(),
            pending_subs: HashMap::new(),
            rap: HashSet::new(),
            keys: HashMap::new(),
            client_pubs: VecDeque::new(),
            forwarded: 0,
            deferred: VecDeque::new(),
            unattributed: Vec::new(),
        }
    }
}

/// Clock tolerance between events recorded by different proxy tasks.
const TOL: Duration = Duration::from_millis(100);

/// Connections without findings whose notes are kept once they can no
/// longer get a delivery.
const KEEP_CLEAN: usize = 20;

const SILENCE: &[&str] = &["blackhole", "partition", "pause", "disconnect", "stall"];

/// A will: its topic and payload.
type Key = (String, Bytes);

/// The subscribers owed a will (with their subscription events), and notes
/// about those that were not.
type Owed = (Vec<(String, Vec<u64>)>, Vec<String>);

#[derive(Clone, Debug)]
enum Need {
    Required {
        deadline: Duration,
        earliest: Option<Duration>,
    },
    Forbidden {
        rule: &'static str,
    },
    /// Allowed, not required; owed (preferred when attributing) until then.
    Optional {
        until: Duration,
    },
    Alive,
}

/// What the end of a connection requires as far as the log goes: from
/// when, why, and the events that show it.
struct End {
    need: Need,
    start: Duration,
    why: String,
    events: Vec<u64>,
}

/// A silence of the owner that has not been decided yet: it started at
/// `at` (event `seq`), after the broker's last packet `rx`; until a heal
/// says otherwise it is taken to outlast 1.5 x keep alive.
#[derive(Clone)]
struct Silence {
    at: Duration,
    seq: u64,
    /// The fault's target; `None` for a board loss, which no heal ends.
    target: Option<String>,
    rx: (Duration, u64),
    /// Whether it outlasted (or can no longer matter for) the keep alive;
    /// kept until healed, for whether a close happened inside it.
    decided: bool,
}

/// A connection of the judged actor(s) the broker accepted with a will.
#[derive(Clone)]
struct Will {
    slack: Duration,
    conn: ConnId,
    actor: String,
    client_id: String,
    key: Key,
    connect_seq: u64,
    accepted: Duration,
    delay: Duration,
    v5: bool,
    ka: Duration,
    /// The last packet the broker received on it.
    last_rx: (Duration, u64),
    disconnect: Option<(Stamp, u8)>,
    /// Silences not healed yet, in order; the first one that outlasted
    /// (start, deadline, events), and the first one healed in the grace
    /// between 1 and 1.5 x keep alive (its start).
    silences: Vec<Silence>,
    silenced: bool,
    ka_end: Option<(Duration, Duration, Vec<u64>)>,
    grace: Option<Duration>,
    /// The close, and whether the broker could see it.
    close: Option<(Stamp, CloseReason, bool)>,
    /// The first CONNECT with its client id on another connection that
    /// reached the broker: (stamp, that connection, it forbids the will).
    takeover: Option<(Stamp, ConnId, bool)>,
    /// The first time the broker stopped or died after the acceptance.
    down: Option<(Stamp, BrokerAct)>,
    /// Per subscriber: attributed deliveries (seq, at).
    got: BTreeMap<String, Vec<(u64, Duration)>>,
    /// Once its end can no longer change and its deadline passed: the
    /// subscribers owed the will (with their subscription events), and
    /// the notes about those that were not.
    owed: Option<Owed>,
}

/// A subscription a SUBSCRIBE asked for.
struct Sub {
    actor: String,
    conn: ConnId,
    client_id: String,
    filter: String,
    sent: u64,
    acked: Option<(u64, Duration)>,
    unsub: Option<Duration>,
    /// Its connection closed.
    gone: Option<Duration>,
}

/// A client PUBLISH with a will's topic and payload that reached the
/// broker, and the actors that got their forwarded copy of it.
struct ClientPub {
    key: Key,
    seq: u64,
    at: Duration,
    taken: Vec<String>,
}

/// A publication of a will's topic and payload from the broker, waiting
/// for the tolerance to pass before it is attributed.
#[derive(Clone)]
struct Pending {
    key: Key,
    actor: String,
    seq: u64,
    at: Duration,
}

/// A connection's findings, once nothing can change them.
struct Done {
    violations: Vec<Violation>,
    notes: Vec<String>,
    why: String,
    required: bool,
}

/// [`WillChecker`] as a state machine: events in, verdict out.
pub struct Live {
    actor: Option<String>,
    slack: Duration,
    ctx: Context,
    /// Connections with a will that may still get a delivery, by number.
    wills: BTreeMap<usize, Will>,
    count: usize,
    done: BTreeMap<usize, Done>,
    /// Connections in `done` without violations, oldest first; how many
    /// older ones were dropped, and how many of those had a will due.
    clean: VecDeque<usize>,
    elided: usize,
    elided_required: usize,
    /// First CONNECTs with a will waiting for their CONNACK.
    declaring: HashMap<ConnId, (u64, Connect)>,
    /// The last packet the broker received, per connection waiting for
    /// its CONNACK.
    rx: HashMap<ConnId, (Duration, u64)>,
    /// Client ids of open connections.
    client_ids: HashMap<ConnId, String>,
    connect_seen: HashSet<ConnId>,
    /// The first CONNECT sent on each open connection: when, its client
    /// id and clean start.
    first_connect: HashMap<ConnId, (Stamp, String, bool)>,
    /// Connections with a will by connection, while open.
    by_conn: HashMap<ConnId, usize>,
    /// Topic aliases per open connection and direction (to the broker).
    aliases: HashMap<(ConnId, bool), HashMap<u32, String>>,
    subs: BTreeMap<(u64, usize), Sub>,
    pending_subs: HashMap<(ConnId, u16), Vec<(u64, usize)>>,
    /// (actor, filter) subscribed with retain as published.
    rap: HashSet<(String, String)>,
    /// Declared wills: per key, per owner actor, its first CONNECT's seq.
    keys: HashMap<Key, HashMap<String, u64>>,
    client_pubs: VecDeque<ClientPub>,
    forwarded: usize,
    deferred: VecDeque<Pending>,
    /// Publications no end explained: violations, or notes when the owner
    /// was under a fault.
    unattributed: Vec<Result<Violation, String>>,
}

impl Incremental for Live {
    fn feed(&mut self, ev: &Event) {
        // Publications whose tolerance this event passes are attributed
        // on what came before it.
        let now = self.ctx.end();
        while self.deferred.front().is_some_and(|p| ev.at > p.at + TOL) {
            let p = self.deferred.pop_front().expect("checked");
            let r = attribute(&mut self.wills, &self.keys, &self.ctx, &p, now);
            if let Some(r) = r {
                self.unattributed.push(r);
            }
        }
        self.ctx.feed(ev);
        self.tick(ev.at);
        let stamp = Stamp {
            seq: ev.seq,
            at: ev.at,
        };
        match &ev.kind {
            EventKind::Fault { target, fault } => self.fault(stamp, target, fault),
            EventKind::Board { .. } => {
                for w in self.wills.values_mut() {
                    if w.actor == "device" && w.close.is_none() && !w.silenced {
                        w.silenced = true;
                        w.silences.push(Silence {
                            at: stamp.at,
                            seq: stamp.seq,
                            target: None,
                            rx: w.last_rx,
                            decided: w.ka_end.is_some(),
                        });
                    }
                }
            }
            EventKind::Broker { what } => {
                let act = BrokerAct::of(what);
                if act != BrokerAct::Started {
                    for w in self.wills.values_mut() {
                        if w.down.is_none() && stamp.at >= w.accepted {
                            w.down = Some((stamp.clone(), act));
                        }
                    }
                }
            }
            EventKind::ConnClosed { conn, reason, .. } => self.closed(*conn, stamp, reason),
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } => {
                let (up, sent, seen) = (*dir == Dir::ToBroker, sent(*fate), seen(*fate));
                self.packet(stamp, *conn, actor, up, packet, sent, seen);
            }
            _ => {}
        }
        self.settle();
    }

    fn verdict(&self) -> Verdict {
        let now = self.ctx.end();
        // Publications still in their tolerance, attributed as if the log
        // ended here.
        let mut wills = self.wills.clone();
        let mut unattributed: Vec<&Result<Violation, String>> = self.unattributed.iter().collect();
        let late: Vec<Result<Violation, String>> = self
            .deferred
            .iter()
            .filter_map(|p| attribute(&mut wills, &self.keys, &self.ctx, p, now))
            .collect();
        unattributed.extend(late.iter());
        let mut v = Verdict::new("will");
        if self.count == 0 {
            v.note("no accepted connection carried a will");
            return v;
        }
        let mut required = self.elided_required;
        let mut whys = Vec::new();
        if self.elided > 0 {
            whys.push(format!(
                "{} earlier connection(s) with a will ended without findings (their notes are not kept)",
                self.elided
            ));
        }
        let mut live: BTreeMap<usize, Done> = BTreeMap::new();
        for (n, w) in &wills {
            live.insert(*n, self.findings(w, now));
        }
        let mut all: Vec<(&usize, &Done)> = self.done.iter().chain(live.iter()).collect();
        all.sort_by_key(|(n, _)| **n);
        for (_, d) in all {
            v.violations.extend(d.violations.iter().cloned());
            v.notes.extend(d.notes.iter().cloned());
            required += usize::from(d.required);
            whys.push(d.why.clone());
        }
        for u in unattributed {
            match u {
                Ok(x) => v.violations.push(x.clone()),
                Err(note) => v.note(note.clone()),
            }
        }
        v.notes.insert(
            0,
            format!(
                "{} connection(s) with a will, {} of which ended so that the will was due",
                self.count, required
            ),
        );
        if self.forwarded > 0 {
            v.note(format!(
                "{} publication(s) with a will's topic and payload were the broker forwarding a client's own PUBLISH, not a will",
                self.forwarded
            ));
        }
        v.notes.extend(whys);
        v
    }
}

/// Attributes the broker's publication `p` to the end that could have
/// caused it (see the module doc); returns what to report when none did.
fn attribute(
    wills: &mut BTreeMap<usize, Will>,
    keys: &HashMap<Key, HashMap<String, u64>>,
    ctx: &Context,
    p: &Pending,
    now: Duration,
) -> Option<Result<Violation, String>> {
    let mut cands: Vec<(usize, End)> = Vec::new();
    for (n, w) in wills.iter() {
        if w.key != p.key || w.actor == p.actor || w.connect_seq > p.seq {
            continue;
        }
        let end = w.end(now);
        if end.start <= p.at + TOL {
            cands.push((*n, end));
        }
    }
    let owing = cands.iter().rev().find(|(n, end)| {
        let fresh = wills[n].got.get(&p.actor).is_none_or(|g| g.is_empty());
        match end.need {
            Need::Required { deadline, .. } => fresh && p.at <= deadline,
            Need::Optional { until } => fresh && p.at <= until,
            _ => false,
        }
    });
    if let Some(n) = owing.or(cands.last()).map(|(n, _)| *n) {
        let w = wills.get_mut(&n).expect("a candidate");
        w.got
            .entry(p.actor.clone())
            .or_default()
            .push((p.seq, p.at));
        return None;
    }
    let owners: Vec<&String> = keys
        .get(&p.key)
        .into_iter()
        .flatten()
        .filter(|(_, seq)| **seq < p.seq)
        .map(|(a, _)| a)
        .collect();
    if owners.is_empty() {
        return None;
    }
    let desc = format!(
        "the will {} on `{}` was published to {} at {} while no connection with that will had ended",
        show(&p.key.1),
        p.key.0,
        p.actor,
        fmt_d(p.at)
    );
    let disturbed = owners
        .iter()
        .any(|a| !ctx.undisturbed(a, Duration::ZERO, p.at + TOL));
    if disturbed {
        return Some(Err(format!(
            "{desc}; its owner was under a fault, so this is not judged"
        )));
    }
    let mut ev: Vec<u64> = Vec::new();
    for w in wills.values() {
        if w.key == p.key && w.connect_seq < p.seq {
            ev.extend(w.end(now).events);
            ev.push(w.connect_seq);
        }
    }
    ev.push(p.seq);
    Some(Ok(Violation::new("will-premature", desc, ev)))
}

impl Will {
    /// The first silence still undecided, taken to outlast 1.5 x keep
    /// alive: (start, deadline, events).
    fn assumed_silence(&self) -> Option<(Duration, Duration, Vec<u64>)> {
        if self.ka.is_zero() {
            return None;
        }
        self.silences.iter().find(|s| !s.decided).map(|s| {
            (
                s.rx.0 + self.ka,
                s.rx.0 + self.ka.mul_f64(1.5) + self.delay + self.slack,
                vec![s.seq, s.rx.1],
            )
        })
    }

    /// What the end of the connection requires, as the log stands at `now`
    /// (a silence not healed yet is taken to outlast the keep alive).
    fn end(&self, now: Duration) -> End {
        let (delay, slack) = (self.delay, self.slack);
        // 1. A DISCONNECT that reached the broker.
        if let Some((d, code)) = &self.disconnect {
            if self.v5 && *code == 0x04 {
                return End {
                    need: Need::Required {
                        deadline: d.at + delay + slack,
                        earliest: (delay > Duration::ZERO).then_some(d.at + delay),
                    },
                    start: d.at,
                    why: "DISCONNECT with reason 0x04 (send will)".into(),
                    events: vec![d.seq],
                };
            }
            return End {
                need: Need::Forbidden {
                    rule: "MQTT-3.14.4-3",
                },
                start: d.at,
                why: format!("ended with DISCONNECT at {}", fmt_d(d.at)),
                events: vec![d.seq],
            };
        }
        let ka_end = self.ka_end.clone().or_else(|| self.assumed_silence());
        // A close the broker could see.
        let close_end = self
            .close
            .as_ref()
            .filter(|(_, _, visible)| *visible)
            .map(|(s, reason, _)| (s.at, s.at + delay + slack, vec![s.seq], reason.clone()));
        let t_end = match (&ka_end, &close_end) {
            (Some(k), Some(c)) => Some(k.0.min(c.0)),
            (Some(k), None) => Some(k.0),
            (None, Some(c)) => Some(c.0),
            (None, None) => None,
        };
        // 2. Takeover: the client id connected again while this one may
        // have been alive.
        let end = self.close.as_ref().map_or(now, |(s, _, _)| s.at);
        let down = self
            .down
            .as_ref()
            .filter(|(s, _)| s.at <= t_end.unwrap_or(end).saturating_add(TOL));
        if let Some((s, id, forbids)) = &self.takeover {
            // Whichever came first: a broker that went away before the
            // takeover had ended the connection already.
            let first = down.is_none_or(|(d, _)| s.at <= d.at);
            if first && s.at <= t_end.unwrap_or(Duration::MAX).saturating_add(TOL) {
                let start = s.at.min(t_end.unwrap_or(s.at));
                let need = if *forbids {
                    Need::Forbidden {
                        rule: crate::mqtt::V5_WILL_BEFORE_DELAY,
                    }
                } else {
                    Need::Optional {
                        until: start + delay + slack,
                    }
                };
                return End {
                    need,
                    start,
                    why: format!(
                        "taken over by {id} at {} (the will is not required)",
                        fmt_d(s.at)
                    ),
                    events: vec![s.seq],
                };
            }
        }
        // 3. The broker went away first.
        if let Some((s, a)) = down {
            {
                // A broker that went away may publish the will whenever it
                // is back.
                return End {
                    need: Need::Optional {
                        until: Duration::MAX,
                    },
                    start: s.at,
                    why: format!("broker {a:?} at {} (the will is not required)", fmt_d(s.at)),
                    events: vec![s.seq],
                };
            }
        }
        // 4. An abnormal end.
        let closed = |cl: &(Duration, Duration, Vec<u64>, CloseReason)| {
            (
                cl.0,
                cl.1,
                cl.2.clone(),
                format!("connection ended ({:?}) at {}", cl.3, fmt_d(cl.0)),
            )
        };
        let pick = match (ka_end, close_end) {
            (Some(k), Some(cl)) if cl.1 < k.1 => Some(closed(&cl)),
            (Some(k), _) => Some((
                k.0,
                k.1,
                k.2,
                format!(
                    "silent from {} (fault or board loss), keep alive {}: the broker must drop it by 1.5 x keep alive",
                    fmt_d(k.0.saturating_sub(self.ka)),
                    fmt_d(self.ka)
                ),
            )),
            (None, Some(cl)) => Some(closed(&cl)),
            (None, None) => None,
        };
        if let Some((start, deadline, events, why)) = pick {
            if deadline > now {
                return End {
                    need: Need::Optional { until: deadline },
                    start,
                    why: format!(
                        "{why}; the run ended before the will was due at {}",
                        fmt_d(deadline)
                    ),
                    events,
                };
            }
            return End {
                need: Need::Required {
                    deadline,
                    earliest: (delay > Duration::ZERO).then_some(start + delay),
                },
                start,
                why,
                events,
            };
        }
        if let Some(start) = self.grace {
            return End {
                need: Need::Optional {
                    until: start + self.ka.mul_f64(0.5) + delay + slack,
                },
                start,
                why: "silence healed between 1 and 1.5 x keep alive (the will is allowed, not required)"
                    .into(),
                events: vec![],
            };
        }
        End {
            need: Need::Alive,
            start: Duration::MAX,
            why: "still connected at the end of the run".into(),
            events: vec![],
        }
    }

    /// Nothing still to come can change [`Will::end`]: the connection
    /// ended (by DISCONNECT, or closed with its silences decided) and the
    /// tolerance in which a takeover or a broker stop still counts passed.
    fn settled(&self, now: Duration) -> bool {
        if self.disconnect.is_some() {
            return true;
        }
        let Some((c, _, _)) = &self.close else {
            return false;
        };
        if self.assumed_silence().is_some() {
            return false;
        }
        let mut last = c.at;
        let visible = self.close.as_ref().is_some_and(|x| x.2);
        match (&self.ka_end, visible, &self.takeover) {
            (Some(k), _, _) => last = last.max(k.0),
            (None, true, _) => {}
            (None, false, Some((s, _, _))) => last = last.max(s.at),
            // Closed where the broker could not see it: a takeover may
            // still come.
            (None, false, None) => return false,
        }
        now > last + TOL
    }

    /// Whether a delivery at `at` to a subscriber that got none would be
    /// owed by this end.
    fn owes(end: &End, at: Duration) -> bool {
        match end.need {
            Need::Required { deadline, .. } => at <= deadline,
            Need::Optional { until } => at <= until,
            _ => false,
        }
    }
}

impl Live {
    /// Decides the silences this moment outlasted: the first (in order)
    /// that did ends the connection.
    fn tick(&mut self, at: Duration) {
        for w in self.wills.values_mut() {
            if w.ka.is_zero() || w.ka_end.is_some() {
                continue;
            }
            let Some(s) = w.silences.iter().find(|s| !s.decided) else {
                continue;
            };
            let due = s.rx.0 + w.ka.mul_f64(1.5);
            if at > due {
                w.ka_end = Some((s.rx.0 + w.ka, due + w.delay + w.slack, vec![s.seq, s.rx.1]));
                for s in w.silences.iter_mut() {
                    s.decided = true;
                }
            }
        }
    }

    fn fault(&mut self, stamp: Stamp, target: &str, text: &str) {
        let f = super::index::Fault::new(stamp.clone(), target, text);
        if f.kind == "heal" {
            for w in self.wills.values_mut() {
                let ka = w.ka;
                let mut k = 0;
                while k < w.silences.len() {
                    let s = &w.silences[k];
                    let healed = s
                        .target
                        .as_ref()
                        .is_some_and(|t| *t == f.target || f.target == "*")
                        && stamp.at > s.at;
                    if !healed {
                        k += 1;
                        continue;
                    }
                    // Not outlasting (tick decided those): healed within 1.5 x
                    // keep alive; past 1 x it leaves the will allowed.
                    if !s.decided && !ka.is_zero() && stamp.at > s.rx.0 + ka && w.grace.is_none() {
                        w.grace = Some(s.rx.0 + ka);
                    }
                    w.silences.remove(k);
                }
            }
            return;
        }
        if !SILENCE.contains(&f.kind.as_str()) {
            return;
        }
        for w in self.wills.values_mut() {
            if f.hits(&w.actor)
                && stamp.at >= w.accepted
                && w.close.as_ref().is_none_or(|(c, _, _)| c.at >= stamp.at)
            {
                w.silenced = true;
                w.silences.push(Silence {
                    at: stamp.at,
                    seq: stamp.seq,
                    target: Some(f.target.clone()),
                    rx: w.last_rx,
                    decided: w.ka_end.is_some(),
                });
            }
        }
    }

    fn closed(&mut self, conn: ConnId, stamp: Stamp, reason: &CloseReason) {
        if let Some(w) = self
            .by_conn
            .remove(&conn)
            .and_then(|n| self.wills.get_mut(&n))
        {
            if w.close.is_none() {
                // Inside a silence the broker does not see the client's FIN.
                let in_silence = !w.silences.is_empty();
                let visible = match reason {
                    CloseReason::Severed | CloseReason::Closed | CloseReason::BrokerClosed => true,
                    CloseReason::ClientClosed => !in_silence,
                    _ => false,
                };
                w.close = Some((stamp.clone(), reason.clone(), visible));
                if visible {
                    // A silence still undecided can only end the connection
                    // if its deadline is not later than the close's.
                    if w.ka_end.is_none() {
                        if let Some(k) = w.assumed_silence() {
                            if k.1 <= stamp.at + w.delay + w.slack {
                                w.ka_end = Some(k);
                            }
                        }
                    }
                    w.silences.clear();
                }
            }
        }
        self.declaring.remove(&conn);
        self.rx.remove(&conn);
        self.client_ids.remove(&conn);
        self.connect_seen.remove(&conn);
        self.first_connect.remove(&conn);
        self.aliases.remove(&(conn, true));
        self.aliases.remove(&(conn, false));
        self.pending_subs.retain(|(c, _), _| *c != conn);
        for s in self.subs.values_mut() {
            if s.conn == conn && s.gone.is_none() {
                s.gone = Some(stamp.at);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn packet(
        &mut self,
        stamp: Stamp,
        conn: ConnId,
        actor: &str,
        up: bool,
        packet: &Packet,
        sent: bool,
        seen: bool,
    ) {
        match packet {
            Packet::Connect(cp) if up => {
                if sent && !self.first_connect.contains_key(&conn) {
                    self.client_ids.insert(conn, cp.client_id.clone());
                    self.first_connect
                        .insert(conn, (stamp.clone(), cp.client_id.clone(), cp.clean_start));
                    if cp.will.is_some() && self.actor.as_ref().is_none_or(|a| a == actor) {
                        self.declaring.insert(conn, (stamp.seq, cp.clone()));
                    }
                }
                // A takeover happens when a CONNECT reaches the broker; it
                // dates from the connection's first CONNECT.
                if let (true, Some((first, cid, clean))) = (seen, self.first_connect.get(&conn)) {
                    if self.connect_seen.insert(conn) && !cid.is_empty() {
                        for w in self.wills.values_mut() {
                            if w.client_id == *cid
                                && w.conn != conn
                                && w.takeover.is_none()
                                && first.at > w.accepted
                            {
                                let forbids = w.v5 && w.delay > Duration::ZERO && !clean;
                                w.takeover = Some((first.clone(), conn, forbids));
                            }
                        }
                    }
                }
            }
            Packet::ConnAck(a) if !up && sent => {
                if let Some((seq, cp)) = self.declaring.remove(&conn) {
                    if a.code == 0 {
                        self.accepted(conn, actor, stamp.clone(), seq, cp, a);
                    }
                }
                self.rx.remove(&conn);
            }
            Packet::Disconnect(d) if up && seen => {
                if let Some(w) = self.by_conn.get(&conn).and_then(|n| self.wills.get_mut(n)) {
                    if w.disconnect.is_none() {
                        w.disconnect = Some((stamp.clone(), d.code));
                    }
                }
            }
            Packet::Publish(p) => {
                let mut t = p.topic.clone();
                if let Some(alias) = prop_u32(&p.properties, 0x23) {
                    let map = self.aliases.entry((conn, up)).or_default();
                    if t.is_empty() {
                        if let Some(x) = map.get(&alias) {
                            t = x.clone();
                        }
                    } else {
                        map.insert(alias, t.clone());
                    }
                }
                let key = (t, p.payload.clone());
                if !self.keys.contains_key(&key) {
                    return self.received(stamp, conn, up && seen);
                }
                if up && seen {
                    self.client_pub(key, stamp.clone());
                } else if !up && sent && !p.dup {
                    self.broker_pub(key, actor, p.retain, stamp.clone());
                }
            }
            Packet::Subscribe(s) if up && seen => {
                let client_id = self.client_ids.get(&conn).cloned().unwrap_or_default();
                let mut idx = Vec::new();
                for (k, f) in s.filters.iter().enumerate() {
                    if f.options & 0x08 != 0 {
                        self.rap.insert((actor.to_string(), f.filter.clone()));
                    }
                    self.subs.insert(
                        (stamp.seq, k),
                        Sub {
                            actor: actor.to_string(),
                            conn,
                            client_id: client_id.clone(),
                            filter: f.filter.clone(),
                            sent: stamp.seq,
                            acked: None,
                            unsub: None,
                            gone: None,
                        },
                    );
                    idx.push((stamp.seq, k));
                }
                self.pending_subs.insert((conn, s.pid), idx);
            }
            Packet::SubAck(sa) if !up && sent => {
                if let Some(idx) = self.pending_subs.remove(&(conn, sa.pid)) {
                    for (k, i) in idx.into_iter().enumerate() {
                        if let (Some(&code), Some(s)) = (sa.codes.get(k), self.subs.get_mut(&i)) {
                            if code < 0x80 {
                                s.acked = Some((stamp.seq, stamp.at));
                            }
                        }
                    }
                }
            }
            Packet::Unsubscribe(u) if up && seen => {
                for s in self.subs.values_mut() {
                    if s.actor == actor && s.unsub.is_none() && u.filters.contains(&s.filter) {
                        s.unsub = Some(stamp.at);
                    }
                }
            }
            _ => {}
        }
        self.received(stamp, conn, up && seen);
    }

    /// Whether the broker got a packet on `conn` (for the keep alive).
    fn received(&mut self, stamp: Stamp, conn: ConnId, got: bool) {
        if got {
            if let Some(w) = self.by_conn.get(&conn).and_then(|n| self.wills.get_mut(n)) {
                w.last_rx = (stamp.at, stamp.seq);
                for s in w.silences.iter_mut() {
                    if s.at == stamp.at && !s.decided {
                        s.rx = w.last_rx;
                    }
                }
            } else if self.declaring.contains_key(&conn) {
                self.rx.insert(conn, (stamp.at, stamp.seq));
            }
        }
    }

    /// The broker accepted a CONNECT with a will.
    fn accepted(
        &mut self,
        conn: ConnId,
        actor: &str,
        stamp: Stamp,
        connect_seq: u64,
        cp: Connect,
        a: &crate::mqtt::ConnAck,
    ) {
        let Some(will) = cp.will else { return };
        let v5 = cp.version == Version::V5;
        let delay = if v5 {
            let d = prop_u32(&will.properties, 0x18).unwrap_or(0);
            let sei = prop_u32(&cp.properties, 0x11).unwrap_or(0);
            Duration::from_secs(d.min(sei) as u64)
        } else {
            Duration::ZERO
        };
        let ka = prop_u32(&a.properties, 0x13).unwrap_or(cp.keep_alive as u32);
        let key = (will.topic.clone(), will.payload.clone());
        self.keys
            .entry(key.clone())
            .or_default()
            .entry(actor.to_string())
            .or_insert(connect_seq);
        let last_rx = self.rx.get(&conn).copied().unwrap_or((stamp.at, stamp.seq));
        let n = self.count;
        self.count += 1;
        self.by_conn.insert(conn, n);
        self.wills.insert(
            n,
            Will {
                slack: self.slack,
                conn,
                actor: actor.to_string(),
                client_id: cp.client_id.clone(),
                key,
                connect_seq,
                accepted: stamp.at,
                delay,
                v5,
                ka: Duration::from_secs(ka as u64),
                last_rx,
                disconnect: None,
                silences: Vec::new(),
                silenced: false,
                ka_end: None,
                grace: None,
                close: None,
                takeover: None,
                down: None,
                got: BTreeMap::new(),
                owed: None,
            },
        );
    }

    /// How long after a client's PUBLISH the broker's copies of it count
    /// as forwarded.
    fn forward_window(&self) -> Duration {
        self.slack + TOL
    }

    /// A client's PUBLISH with a will's topic and payload reached the
    /// broker: each actor may get one forwarded copy of it (its
    /// subscription may be older than the log: a persistent session).
    fn client_pub(&mut self, key: Key, stamp: Stamp) {
        self.client_pubs.push_back(ClientPub {
            key,
            seq: stamp.seq,
            at: stamp.at,
            taken: Vec::new(),
        });
    }

    /// The broker published a will's topic and payload to `actor`.
    fn broker_pub(&mut self, key: Key, actor: &str, retain: bool, stamp: Stamp) {
        // A retained copy because of a SUBSCRIBE, unless the subscriber
        // asked for retain as published.
        if retain
            && !self
                .rap
                .iter()
                .any(|(a, f)| a == actor && topic::matches(f, &key.0))
        {
            return;
        }
        let window = self.forward_window();
        while self
            .client_pubs
            .front()
            .is_some_and(|c| stamp.at > c.at + window)
        {
            self.client_pubs.pop_front();
        }
        if let Some(c) = self
            .client_pubs
            .iter_mut()
            .find(|c| c.key == key && c.seq < stamp.seq && !c.taken.iter().any(|a| a == actor))
        {
            c.taken.push(actor.to_string());
            self.forwarded += 1;
            return;
        }
        self.deferred.push_back(Pending {
            key,
            actor: actor.to_string(),
            seq: stamp.seq,
            at: stamp.at,
        });
    }

    /// Takes the subscribers owed a will once its end is settled, reduces
    /// connections no delivery can reach any more to their findings, and
    /// forgets subscriptions and client PUBLISHes nothing can ask about.
    fn settle(&mut self) {
        let now = self.ctx.end();
        let ns: Vec<usize> = self.wills.keys().copied().collect();
        for n in &ns {
            let w = &self.wills[n];
            if w.owed.is_some() || !w.settled(now) {
                continue;
            }
            let end = w.end(now);
            if let Need::Required { deadline, .. } = end.need {
                let owed = self.eligible(w, end.start, deadline, now);
                self.wills.get_mut(n).expect("listed").owed = Some(owed);
            }
        }
        for n in &ns {
            let w = &self.wills[n];
            if !w.settled(now) {
                continue;
            }
            let end = w.end(now);
            let owes = match end.need {
                Need::Alive => continue,
                Need::Forbidden { .. } => false,
                // A publication still in its tolerance may be owed by it.
                _ => Will::owes(&end, now.saturating_sub(TOL * 2)),
            };
            let dominated = self.wills.range(n + 1..).any(|(_, o)| {
                o.key == w.key
                    && o.actor == w.actor
                    && o.settled(now)
                    && !matches!(o.end(now).need, Need::Alive)
            });
            // A publication still waiting for its tolerance may be its.
            let waiting = self.deferred.iter().any(|p| p.key == w.key);
            if owes || !dominated || waiting {
                continue;
            }
            let d = self.findings(w, now);
            let w = self.wills.remove(n).expect("listed");
            if self.by_conn.get(&w.conn) == Some(n) {
                self.by_conn.remove(&w.conn);
            }
            if d.violations.is_empty() {
                // Only the most recent connections without findings keep
                // their notes, so that a long session keeps a bounded few.
                self.clean.push_back(*n);
                if self.clean.len() > KEEP_CLEAN {
                    let old = self.clean.pop_front().expect("not empty");
                    if let Some(o) = self.done.remove(&old) {
                        self.elided += 1;
                        self.elided_required += usize::from(o.required);
                    }
                }
            }
            self.done.insert(*n, d);
        }
        // Subscriptions that ended before any end still to be decided can
        // date from.
        let mut horizon = now;
        for w in self.wills.values() {
            if w.owed.is_some() {
                continue;
            }
            let end = w.end(now);
            if w.settled(now) && !matches!(end.need, Need::Required { .. }) {
                continue;
            }
            if !matches!(end.need, Need::Alive) {
                horizon = horizon.min(end.start);
            }
            if w.close.is_none() && !w.ka.is_zero() {
                horizon = horizon.min(w.last_rx.0 + w.ka);
            }
        }
        let horizon = horizon.saturating_sub(TOL);
        self.subs.retain(|_, s| {
            s.unsub.is_none_or(|u| u >= horizon) && s.gone.is_none_or(|g| g >= horizon)
        });
        let window = self.forward_window();
        while self
            .client_pubs
            .front()
            .is_some_and(|c| now > c.at + window)
        {
            self.client_pubs.pop_front();
        }
    }

    /// Subscribers that must get the will of `w`, with their subscription
    /// events; notes about the others.
    fn eligible(&self, w: &Will, start: Duration, deadline: Duration, now: Duration) -> Owed {
        let mut out: Vec<(String, Vec<u64>)> = Vec::new();
        let mut notes = Vec::new();
        for s in self.subs.values() {
            if s.actor == w.actor
                || topic::parse_filter(&s.filter).share_group.is_some()
                || !topic::matches(&s.filter, &w.key.0)
                || out.iter().any(|(a, _)| *a == s.actor)
            {
                continue;
            }
            let Some((ack_seq, ack_at)) = s.acked else {
                continue;
            };
            if ack_at >= start || s.unsub.is_some_and(|u| u <= start) {
                continue;
            }
            if s.conn == w.conn || (s.client_id == w.client_id && !s.client_id.is_empty()) {
                continue;
            }
            let Some(sc) = self.ctx.conns.get(&s.conn) else {
                continue;
            };
            let sc_end = sc.closed.as_ref().map_or(now, |(x, _)| x.at);
            let open = sc.accepted_at().is_some_and(|a| a <= start) && start <= sc_end;
            if !open || sc_end < deadline {
                notes.push(format!(
                    "{} was not connected from {} to {}: will of {} not required for it",
                    s.actor,
                    fmt_d(start),
                    fmt_d(deadline),
                    w.actor
                ));
                continue;
            }
            if !self.ctx.undisturbed(&s.actor, start, deadline) {
                notes.push(format!(
                    "{} was under a fault between {} and {}: will of {} not required for it",
                    s.actor,
                    fmt_d(start),
                    fmt_d(deadline),
                    w.actor
                ));
                continue;
            }
            let mut ev = vec![s.sent, ack_seq];
            ev.sort();
            out.push((s.actor.clone(), ev));
        }
        (out, notes)
    }

    /// What the log shows about one connection with a will.
    fn findings(&self, w: &Will, now: Duration) -> Done {
        let end = w.end(now);
        let mut v = Verdict::new("will");
        let what = format!(
            "the will {} on `{}` of {} ({}, {})",
            show(&w.key.1),
            w.key.0,
            w.actor,
            w.conn,
            end.why
        );
        let mut events = end.events.clone();
        events.push(w.connect_seq);
        // Deliveries attributed while a silence was taken to outlast the
        // keep alive, before an end that turned out later (the connection
        // was alive, or ended otherwise): under a fault, not judged.
        let mut notes = Vec::new();
        let mut got: BTreeMap<&String, Vec<(u64, Duration)>> = BTreeMap::new();
        for (s, sends) in &w.got {
            let (ok, early): (Vec<_>, Vec<_>) =
                sends.iter().partition(|(_, at)| *at + TOL >= end.start);
            if let Some((_, at)) = early.first() {
                notes.push(format!(
                    "{what} was published to {s} at {} while its connection was silent but not yet dropped; not judged",
                    fmt_d(*at)
                ));
            }
            if !ok.is_empty() {
                got.insert(s, ok);
            }
        }
        // Never twice, whatever the end.
        for (s, sends) in &got {
            if sends.len() > 1 {
                let mut ev = events.clone();
                ev.extend(sends.iter().map(|x| x.0));
                // Published, the will is gone: a second copy is a will
                // that was not removed [MQTT-3.1.2-10].
                v.fail(
                    "MQTT-3.1.2-10",
                    format!(
                        "{what} was published to {s} {} times as a new message; expected once",
                        sends.len()
                    ),
                    ev,
                );
            }
        }
        match &end.need {
            Need::Forbidden { rule } => {
                for (s, sends) in &got {
                    let mut ev = events.clone();
                    ev.extend(sends.iter().map(|x| x.0));
                    v.fail(
                        *rule,
                        format!(
                            "{what} was published to {s} at {}; expected never",
                            fmt_d(sends[0].1)
                        ),
                        ev,
                    );
                }
            }
            Need::Required { deadline, earliest } => {
                let computed;
                let (eligible, n) = match &w.owed {
                    Some(o) => (&o.0, &o.1),
                    None => {
                        computed = self.eligible(w, end.start, *deadline, now);
                        (&computed.0, &computed.1)
                    }
                };
                notes.extend(n.iter().cloned());
                for (s, sub_ev) in eligible {
                    let sends = got.get(s).cloned().unwrap_or_default();
                    let mut ev = events.clone();
                    ev.extend(sub_ev.iter().copied());
                    ev.extend(sends.iter().map(|x| x.0));
                    match sends.first() {
                        None => v.fail(
                            "MQTT-3.1.2-8",
                            format!(
                                "{what} was not published to subscriber {s} by {}; expected once, saw none",
                                fmt_d(*deadline)
                            ),
                            ev,
                        ),
                        Some(&(_, at)) if at > *deadline => v.fail(
                            "will-late",
                            format!(
                                "{what} reached subscriber {s} at {}, after its deadline {}",
                                fmt_d(at),
                                fmt_d(*deadline)
                            ),
                            ev,
                        ),
                        Some(&(_, at)) if earliest.is_some_and(|e| at + TOL < e) => v.fail(
                            crate::mqtt::V5_WILL_BEFORE_DELAY,
                            format!(
                                "{what} reached subscriber {s} at {}, before its will delay ran out at {}",
                                fmt_d(at),
                                fmt_d(earliest.unwrap_or_default())
                            ),
                            ev,
                        ),
                        Some(_) => {}
                    }
                }
            }
            Need::Optional { .. } | Need::Alive => {}
        }
        Done {
            violations: v.violations,
            notes,
            why: format!("{} {}: {}", w.actor, w.conn, end.why),
            required: matches!(end.need, Need::Required { .. }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::v5_testkit::*;
    use crate::mqtt::PacketType;

    /// A long session: the device reconnects again and again (each time
    /// with its will, severed and its will published, or ending with
    /// DISCONNECT after announcing "offline" itself), the cloud resubscribes
    /// now and then, and telemetry flows. What the checker keeps stays the
    /// size of what is open, however long the log, and its verdict is the
    /// batch one.
    #[test]
    fn the_state_does_not_grow_with_the_session() {
        let c = WillChecker {
            actor: None,
            slack: Duration::from_secs(1),
        };
        let mut k = Kit::new();
        let mut live = c.live();
        let mut peak = (0, 0, 0, 0, 0, 0);
        let mut cloud = 1_000;
        for round in 0..300u32 {
            if round % 50 == 0 {
                if round > 0 {
                    k.close(cloud, "cloud", CloseReason::ClientClosed);
                }
                cloud += 1;
                k.session(
                    cloud,
                    "cloud",
                    connect("cloud", true, 0, ""),
                    connack(false, 0, ""),
                )
                .up(cloud, "cloud", subscribe(1, "dut/#", 1, 0, ""))
                .down(cloud, "cloud", suback(1, &[1]));
            }
            let dev = round + 1;
            k.wait(500).session(
                dev,
                "device",
                connect_will("dut-1", 5, "", "dut/1/status", "offline", ""),
                connack(false, 0, ""),
            );
            for n in 0..20 {
                k.wait(50)
                    .up(
                        dev,
                        "device",
                        publish(None, 0, "dut/1/data", &format!("n={n}"), ""),
                    )
                    .down(
                        cloud,
                        "cloud",
                        publish(None, 0, "dut/1/data", &format!("n={n}"), ""),
                    );
            }
            if round % 2 == 0 {
                k.fault("device", "sever")
                    .close(dev, "device", CloseReason::Severed)
                    .wait(30)
                    .down(
                        cloud,
                        "cloud",
                        publish(Some(7), 1, "dut/1/status", "offline", ""),
                    )
                    .up(cloud, "cloud", ack(PacketType::PubAck, 7, 0));
            } else {
                k.up(
                    dev,
                    "device",
                    retained(publish(None, 0, "dut/1/status", "offline", "")),
                )
                .wait(2)
                .down(
                    cloud,
                    "cloud",
                    publish(None, 0, "dut/1/status", "offline", ""),
                )
                .up(dev, "device", disconnect(0, ""))
                .close(dev, "device", CloseReason::ClientClosed);
            }
        }
        let h = k.history();
        for (i, ev) in h.events.iter().enumerate() {
            live.feed(ev);
            // After the first rounds, which have fewer to keep.
            if i > h.events.len() / 30 {
                peak.0 = peak.0.max(live.wills.len());
                peak.1 = peak.1.max(live.subs.len());
                peak.2 = peak.2.max(live.client_pubs.len());
                peak.3 = peak.3.max(live.deferred.len());
                peak.4 = peak.4.max(live.aliases.len() + live.first_connect.len());
                peak.5 = peak.5.max(live.unattributed.len());
            }
        }
        assert!(peak.0 <= 3, "connections with a will kept: {peak:?}");
        assert!(peak.1 <= 2, "subscriptions kept: {peak:?}");
        assert!(peak.2 <= 1 && peak.3 <= 1, "publications kept: {peak:?}");
        assert!(peak.4 <= 4 && peak.5 == 0, "{peak:?}");
        assert!(live.done.len() <= KEEP_CLEAN, "{}", live.done.len());
        let v = live.verdict();
        assert!(v.ok(), "{v:?}");
        assert_eq!(v, c.check(&h));
        assert!(
            v.notes[0].starts_with("300 connection(s) with a will, 150 of which"),
            "{v:?}"
        );
    }
}
