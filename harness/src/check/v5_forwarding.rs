//! `v5_forwarding`: what a 5.0 broker must do to a message between its
//! publisher and each subscriber (statement ids are MQTT 5.0's).
//!
//! Every PUBLISH the broker sent to a 5.0 subscriber is paired with the
//! message it forwards: the latest PUBLISH a 5.0 client sent before it on
//! the same topic (aliases resolved) with the same payload. Then:
//! - Payload Format Indicator, Response Topic, Correlation Data and Content
//!   Type arrive unaltered [MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16],
//!   [MQTT-3.3.2-20]; user properties all arrive [MQTT-3.3.2-17], in their
//!   order [MQTT-3.3.2-18] (the same pairs reordered breaks only the latter);
//! - a message with a Message Expiry Interval E arrives with E less the
//!   whole seconds it waited, give or take one [MQTT-3.3.2-6], and is never
//!   first sent to a session after E (+ `slack`) has passed [MQTT-3.3.2-5];
//!   a retransmission of a delivery already started is allowed;
//! - the subscription identifiers of the subscriber's matching
//!   subscriptions all arrive, over the copies it got, and no others
//!   [MQTT-3.3.4-3] — all on a single copy [MQTT-3.3.4-4], each on its own
//!   when there are several [MQTT-3.3.4-5];
//! - a message is not sent back to the client id that published it when
//!   every matching subscription of that session has No Local [MQTT-3.8.3-3];
//! - a live forward (published after the SUBACK) keeps the publisher's
//!   RETAIN flag when every matching subscription has Retain As Published
//!   [MQTT-3.3.1-13], and has it cleared when none has [MQTT-3.3.1-12];
//! - and a client never puts a Subscription Identifier on its own PUBLISH
//!   [MQTT-3.3.4-6], nor a wildcard in its Response Topic [MQTT-3.3.2-14]
//!   (judged for the actors in `clients`).
//!
//! A delivery that cannot be paired (from a 3.1.1 publisher, a will, a
//! retained message older than the run) is left alone — but one that
//! matches a 5.0 will keeps the will's user properties in order
//! [MQTT-3.1.3-10].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;

use super::index::{prop_u32, seen, sent};
use super::v5_limits::judged;
use super::{Checker, Incremental, Verdict, Violation};
use crate::history::{ConnId, Dir, Event, EventKind, Fate, History};
use crate::mqtt::props::{
    self, CONTENT_TYPE, CORRELATION_DATA, MESSAGE_EXPIRY, PAYLOAD_FORMAT, RESPONSE_TOPIC,
    SUBSCRIPTION_ID,
};
use crate::mqtt::{topic, Packet, PropValue, Properties, Publish, Version};

/// Per subscriber connection and source message: the subscription ids
/// owed, those that came, the events, and how many first sends (not DUP
/// resends) there were.
type Copies = (BTreeSet<u32>, BTreeSet<u32>, Vec<u64>, usize);

pub struct ForwardingChecker {
    pub clients: Vec<String>,
    /// Added to a message expiry before a late delivery counts.
    pub slack: Duration,
}

impl Checker for ForwardingChecker {
    fn name(&self) -> &str {
        "v5_forwarding"
    }

    fn incremental(&self) -> Option<Box<dyn Incremental>> {
        Some(Box::new(Forwarding::new(self)))
    }

    /// The whole history through the same state machine observe feeds.
    fn check(&self, history: &History) -> Verdict {
        super::judge_whole(Forwarding::new(self), history)
    }
}

/// A connection as the rules read it: who, its first CONNECT and
/// CONNACK, its session lineage (as [`Index`](super::index::Index) makes
/// them), and the topic aliases set on it each way.
struct Conn {
    actor: String,
    /// Version, client id and clean start of the first CONNECT sent.
    connect: Option<(Version, String, bool)>,
    /// Code and session present of the first CONNACK sent.
    connack: Option<(u8, bool)>,
    lineage: usize,
    aliases: [HashMap<u32, String>; 2],
}

impl Conn {
    fn v5(&self) -> bool {
        matches!(self.connect, Some((Version::V5, _, _)))
    }
    fn client_id(&self) -> Option<&str> {
        self.connect.as_ref().map(|(_, id, _)| id.as_str())
    }
    fn accepted(&self) -> bool {
        matches!(self.connack, Some((0, _)))
    }
}

/// A subscription that reached the broker and was not unsubscribed.
struct Sub {
    ci: usize,
    actor: String,
    filter: String,
    options: u8,
    /// The Subscription Identifier of its SUBSCRIBE.
    id: Option<u32>,
    /// The SUBACK that granted it.
    acked: Option<u64>,
}

/// The latest PUBLISH a 5.0 client sent with a topic and payload: what a
/// delivery of them is paired with, and the deliveries paired with it so
/// far (which sessions got a first copy, which connections got copies).
struct Source {
    seq: u64,
    at: Duration,
    properties: Properties,
    retain: bool,
    /// The publisher's client id.
    owner: Option<String>,
    sessions: HashSet<(String, usize)>,
    copied_to: Vec<usize>,
}

/// A 5.0 will: the connection's position, topic, payload, properties.
type WillOf = (usize, String, Bytes, Properties);

/// [`ForwardingChecker`] as a state machine fed one event at a time. It
/// holds per connection its CONNECT and aliases, the live subscriptions,
/// the 5.0 wills, and per topic and payload the latest message a 5.0
/// client published (what a later delivery is paired with) — never the
/// log. A source replaced by a newer one with the same topic and payload
/// can no longer be paired, so what was kept for its copies goes with it
/// (unless the copies broke the subscription id rules).
struct Forwarding {
    clients: Vec<String>,
    slack: Duration,
    conns: Vec<Conn>,
    by_id: HashMap<ConnId, usize>,
    /// Per actor, its connections in order (for the lineages).
    of_actor: HashMap<String, Vec<usize>>,
    subs: BTreeMap<u64, Sub>,
    next_sub: u64,
    /// SUBSCRIBEs awaiting their SUBACK: (connection, packet id) -> subs.
    pending: HashMap<(ConnId, u16), Vec<u64>>,
    wills: Vec<WillOf>,
    sources: HashMap<(String, Bytes), Source>,
    copies: HashMap<(usize, u64), Copies>,
    /// Copies whose subscription ids do not add up (so far).
    bad: BTreeSet<(usize, u64)>,
    /// The client-side rules' violations, then the deliveries', in order.
    client_found: Vec<Violation>,
    found: Vec<Violation>,
}

impl Forwarding {
    fn new(c: &ForwardingChecker) -> Forwarding {
        Forwarding {
            clients: c.clients.clone(),
            slack: c.slack,
            conns: Vec::new(),
            by_id: HashMap::new(),
            of_actor: HashMap::new(),
            subs: BTreeMap::new(),
            next_sub: 0,
            pending: HashMap::new(),
            wills: Vec::new(),
            sources: HashMap::new(),
            copies: HashMap::new(),
            bad: BTreeSet::new(),
            client_found: Vec::new(),
            found: Vec::new(),
        }
    }

    fn conn(&mut self, id: ConnId, actor: &str) -> usize {
        if let Some(&ci) = self.by_id.get(&id) {
            return ci;
        }
        let ci = self.conns.len();
        self.conns.push(Conn {
            actor: actor.to_string(),
            connect: None,
            connack: None,
            lineage: ci,
            aliases: [HashMap::new(), HashMap::new()],
        });
        self.by_id.insert(id, ci);
        self.of_actor.entry(actor.to_string()).or_default().push(ci);
        ci
    }

    /// The lineages of `ci`'s actor from `ci` on, as
    /// [`Index`](super::index::Index) makes them at the end of the log: a
    /// connection resumes the session of the last accepted one before it
    /// when it asked to and the CONNACK says the session was present.
    fn relink(&mut self, ci: usize) {
        let actor = self.conns[ci].actor.clone();
        let list = &self.of_actor[&actor];
        let at = list.iter().position(|&i| i == ci).unwrap_or(0);
        let mut prev = list[..at]
            .iter()
            .rev()
            .copied()
            .find(|&i| self.conns[i].connect.is_some() && self.conns[i].accepted());
        for &i in &list[at..] {
            let c = &self.conns[i];
            if c.connect.is_none() {
                self.conns[i].lineage = i;
                continue;
            }
            let clean = c.connect.as_ref().is_none_or(|(_, _, clean)| *clean);
            let resumed = !clean && matches!(c.connack, Some((0, true))) && prev.is_some();
            let lineage = match (resumed, prev) {
                (true, Some(p)) => self.conns[p].lineage,
                _ => i,
            };
            self.conns[i].lineage = lineage;
            if self.conns[i].accepted() {
                prev = Some(i);
            }
        }
    }

    fn publish(&mut self, ci: usize, ev: &Event, actor: &str, dir: Dir, fate: Fate, p: &Publish) {
        let (seq, at) = (ev.seq, ev.at);
        let mut p = p.clone();
        let up = dir == Dir::ToBroker;
        if let Some(alias) = prop_u32(&p.properties, 0x23) {
            let map = &mut self.conns[ci].aliases[up as usize];
            if p.topic.is_empty() {
                if let Some(t) = map.get(&alias) {
                    p.topic = t.clone();
                }
            } else {
                map.insert(alias, p.topic.clone());
            }
        }
        if !self.conns[ci].v5() {
            return;
        }
        if up {
            if sent(fate) {
                self.client_rules(seq, actor, &p);
            }
            if seen(fate) {
                let owner = self.conns[ci].client_id().map(str::to_string);
                let src = Source {
                    seq,
                    at,
                    properties: p.properties.clone(),
                    retain: p.retain,
                    owner,
                    sessions: HashSet::new(),
                    copied_to: Vec::new(),
                };
                if let Some(old) = self.sources.insert((p.topic, p.payload), src) {
                    // Never paired again: keep only copies that broke a rule.
                    for di in old.copied_to {
                        if !self.bad.contains(&(di, old.seq)) {
                            self.copies.remove(&(di, old.seq));
                        }
                    }
                }
            }
        } else if sent(fate) {
            self.delivery(ci, seq, at, actor, &p);
        }
    }

    /// A client never puts a Subscription Identifier on its PUBLISH, nor a
    /// wildcard in its Response Topic.
    fn client_rules(&mut self, seq: u64, actor: &str, p: &Publish) {
        if !judged(&self.clients, actor) {
            return;
        }
        if props::get(&p.properties, SUBSCRIPTION_ID).is_some() {
            self.client_found.push(Violation::new(
                "MQTT-3.3.4-6",
                format!(
                    "{actor} put a Subscription Identifier on its PUBLISH to {}",
                    p.topic
                ),
                vec![seq],
            ));
        }
        if let Some(PropValue::Str(r)) = props::get(&p.properties, RESPONSE_TOPIC) {
            if r.contains(['+', '#']) {
                self.client_found.push(Violation::new(
                    "MQTT-3.3.2-14",
                    format!(
                        "{actor} published on {} with Response Topic {r:?}, which has a wildcard",
                        p.topic
                    ),
                    vec![seq],
                ));
            }
        }
    }

    fn fail(&mut self, rule: &str, message: String, events: Vec<u64>) {
        self.found.push(Violation::new(rule, message, events));
    }

    /// A PUBLISH the broker sent to a 5.0 subscriber, against the message
    /// it forwards.
    fn delivery(&mut self, di: usize, seq: u64, at: Duration, actor: &str, d: &Publish) {
        let key = (d.topic.clone(), d.payload.clone());
        let Some(src) = self.sources.get(&key) else {
            self.will_user_order(seq, actor, d);
            return;
        };
        let (src_seq, src_at, src_retain) = (src.seq, src.at, src.retain);
        let sp = src.properties.clone();
        let owner = src.owner.clone();
        let dp = &d.properties;
        let who = format!("{actor} on {}", d.topic);
        for (id, rule, what) in [
            (PAYLOAD_FORMAT, "MQTT-3.3.2-4", "Payload Format Indicator"),
            (RESPONSE_TOPIC, "MQTT-3.3.2-15", "Response Topic"),
            (CORRELATION_DATA, "MQTT-3.3.2-16", "Correlation Data"),
            (CONTENT_TYPE, "MQTT-3.3.2-20", "Content Type"),
        ] {
            if props::get(&sp, id) != props::get(dp, id) {
                self.fail(
                    rule,
                    format!(
                        "{what} altered for {who}: published {:?}, delivered {:?}",
                        props::get(&sp, id),
                        props::get(dp, id)
                    ),
                    vec![src_seq, seq],
                );
            }
        }
        let (su, du) = (props::user(&sp), props::user(dp));
        if su != du {
            let mut a = su.clone();
            let mut b = du.clone();
            a.sort();
            b.sort();
            let rule = if a == b {
                "MQTT-3.3.2-18"
            } else {
                "MQTT-3.3.2-17"
            };
            self.fail(
                rule,
                format!("user properties for {who}: published {su:?}, delivered {du:?}"),
                vec![src_seq, seq],
            );
        }
        let dconn = &self.conns[di];
        let dclient = dconn.client_id().map(str::to_string);
        let dlineage = dconn.lineage;
        let session = (dclient.clone().unwrap_or_default(), dlineage);
        let first_to_session = self
            .sources
            .get_mut(&key)
            .is_some_and(|s| s.sessions.insert(session));
        if let Some(e) = props::num(&sp, MESSAGE_EXPIRY) {
            let waited = at.saturating_sub(src_at);
            if first_to_session && waited > Duration::from_secs(e as u64) + self.slack {
                self.fail(
                    "MQTT-3.3.2-5",
                    format!(
                        "{who}: sent {} after it was published with a Message Expiry Interval of {e}s",
                        super::fmt_d(waited)
                    ),
                    vec![src_seq, seq],
                );
            }
            match props::num(dp, MESSAGE_EXPIRY) {
                None => self.fail(
                    "MQTT-3.3.2-6",
                    format!("{who}: published with a Message Expiry Interval of {e}s, delivered without one"),
                    vec![src_seq, seq],
                ),
                Some(got) => {
                    let w = waited.as_secs();
                    let low = (e as u64).saturating_sub(w + 1);
                    let high = (e as u64).saturating_sub(w.saturating_sub(1));
                    if got as u64 > high || (got as u64) < low {
                        self.fail(
                            "MQTT-3.3.2-6",
                            format!(
                                "{who}: Message Expiry Interval {e}s, waited {}, delivered with {got}s (expected {low}..={high})",
                                super::fmt_d(waited)
                            ),
                            vec![src_seq, seq],
                        );
                    }
                }
            }
        }
        // The subscriber's matching subscriptions in this session.
        let subs: Vec<&Sub> = self
            .subs
            .values()
            .filter(|s| {
                let sc = &self.conns[s.ci];
                sc.client_id() == dclient.as_deref()
                    && sc.lineage == dlineage
                    && s.acked.is_some()
                    && topic::matches(&s.filter, &d.topic)
            })
            .collect();
        if subs.is_empty() {
            return;
        }
        let no_local = |s: &&Sub| {
            s.options & 0x04 != 0 && topic::parse_filter(&s.filter).share_group.is_none()
        };
        let mut out = Vec::new();
        if owner.as_deref() == dclient.as_deref() && subs.iter().all(no_local) {
            out.push(Violation::new(
                "MQTT-3.8.3-3",
                format!("{who}: its own message came back through a No Local subscription"),
                vec![src_seq, seq],
            ));
        }
        let live = subs.iter().all(|s| s.acked.is_some_and(|a| a < src_seq));
        if live {
            let rap = |s: &&Sub| s.options & 0x08 != 0;
            if subs.iter().all(rap) && d.retain != src_retain {
                out.push(Violation::new(
                    "MQTT-3.3.1-13",
                    format!("{who}: Retain As Published, but RETAIN was {} when published and {} when delivered", src_retain as u8, d.retain as u8),
                    vec![src_seq, seq],
                ));
            }
            if !subs.iter().any(rap) && d.retain {
                out.push(Violation::new(
                    "MQTT-3.3.1-12",
                    format!("{who}: a live forward with RETAIN set, and no matching subscription has Retain As Published"),
                    vec![src_seq, seq],
                ));
            }
        }
        let want: BTreeSet<u32> = subs.iter().filter_map(|s| s.id).collect();
        self.found.extend(out);
        let got: BTreeSet<u32> = props::all(dp, SUBSCRIPTION_ID)
            .filter_map(|x| match x {
                PropValue::VarInt(n) => Some(*n),
                _ => None,
            })
            .collect();
        let k = (di, src_seq);
        let e = self.copies.entry(k).or_insert_with(|| {
            if let Some(s) = self.sources.get_mut(&key) {
                s.copied_to.push(di);
            }
            Copies::default()
        });
        e.0.extend(want);
        e.1.extend(got);
        e.2.extend([src_seq, seq]);
        if !d.dup {
            e.3 += 1;
        }
        if e.0 != e.1 {
            self.bad.insert(k);
        } else {
            self.bad.remove(&k);
        }
    }

    /// A delivery no client PUBLISH explains, matching a 5.0 will (topic
    /// and payload) of a connection that was open before it: the will's
    /// user properties arrive in their order [MQTT-3.1.3-10] (judged when
    /// the same pairs arrived, so a different message with the same topic
    /// and payload is not mistaken for the will).
    fn will_user_order(&mut self, seq: u64, actor: &str, d: &Publish) {
        let Some((_, _, _, wp)) = self
            .wills
            .iter()
            .find(|(_, t, p, _)| *t == d.topic && *p == d.payload)
        else {
            return;
        };
        let (wu, du) = (props::user(wp), props::user(&d.properties));
        let (mut a, mut b) = (wu.clone(), du.clone());
        a.sort();
        b.sort();
        if wu != du && a == b {
            let v = Violation::new(
                "MQTT-3.1.3-10",
                format!(
                    "the will on {} reached {actor} with its user properties reordered: {wu:?} became {du:?}",
                    d.topic
                ),
                vec![seq],
            );
            self.found.push(v);
        }
    }
}

impl Incremental for Forwarding {
    fn feed(&mut self, ev: &Event) {
        match &ev.kind {
            EventKind::ConnOpened { conn, actor } | EventKind::ConnClosed { conn, actor, .. } => {
                self.conn(*conn, actor);
            }
            EventKind::Packet {
                conn,
                actor,
                dir,
                packet,
                fate,
                ..
            } => {
                let ci = self.conn(*conn, actor);
                let (fate, up) = (*fate, *dir == Dir::ToBroker);
                match packet {
                    Packet::Connect(c) if up && sent(fate) && self.conns[ci].connect.is_none() => {
                        self.conns[ci].connect =
                            Some((c.version, c.client_id.clone(), c.clean_start));
                        if let (Version::V5, Some(w)) = (c.version, &c.will) {
                            // Kept in connection order: the first will that
                            // matches a delivery is the one judged.
                            let at = self.wills.partition_point(|(i, ..)| *i < ci);
                            self.wills.insert(
                                at,
                                (ci, w.topic.clone(), w.payload.clone(), w.properties.clone()),
                            );
                        }
                        self.relink(ci);
                    }
                    Packet::ConnAck(a) if !up && sent(fate) && self.conns[ci].connack.is_none() => {
                        self.conns[ci].connack = Some((a.code, a.session_present));
                        self.relink(ci);
                    }
                    Packet::Publish(p) => {
                        self.publish(ci, ev, actor, *dir, fate, p);
                    }
                    Packet::Subscribe(s) if up && seen(fate) => {
                        let id = props::num(&s.properties, SUBSCRIPTION_ID);
                        let mut ids = Vec::new();
                        for f in &s.filters {
                            self.next_sub += 1;
                            ids.push(self.next_sub);
                            self.subs.insert(
                                self.next_sub,
                                Sub {
                                    ci,
                                    actor: actor.clone(),
                                    filter: f.filter.clone(),
                                    options: f.options,
                                    id,
                                    acked: None,
                                },
                            );
                        }
                        self.pending.insert((*conn, s.pid), ids);
                    }
                    Packet::SubAck(sa) if !up && sent(fate) => {
                        if let Some(ids) = self.pending.remove(&(*conn, sa.pid)) {
                            for (k, id) in ids.into_iter().enumerate() {
                                if let (Some(&code), Some(s)) =
                                    (sa.codes.get(k), self.subs.get_mut(&id))
                                {
                                    if code < 0x80 {
                                        s.acked = Some(ev.seq);
                                    }
                                }
                            }
                        }
                    }
                    Packet::Unsubscribe(u) if up && seen(fate) => {
                        // Gone for every later delivery.
                        self.subs
                            .retain(|_, s| !(s.actor == *actor && u.filters.contains(&s.filter)));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn verdict(&self) -> Verdict {
        let mut v = Verdict::new("v5_forwarding");
        v.violations.extend(self.client_found.iter().cloned());
        v.violations.extend(self.found.iter().cloned());
        for k in &self.bad {
            let (want, got, evs, n) = &self.copies[k];
            // One copy owes them all [3.3.4-4]; several, each its own [3.3.4-5].
            let also = match n {
                0 => None,
                1 => Some("MQTT-3.3.4-4"),
                _ => Some("MQTT-3.3.4-5"),
            };
            for rule in std::iter::once("MQTT-3.3.4-3").chain(also) {
                v.fail(
                    rule,
                    format!(
                        "{} got subscription identifiers {got:?} over {n} copies, its matching subscriptions have {want:?}",
                        self.conns[k.0].actor
                    ),
                    evs.clone(),
                );
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::v5_testkit::*;
    use super::*;

    fn checker() -> ForwardingChecker {
        ForwardingChecker {
            clients: vec!["device".into()],
            slack: Duration::from_millis(500),
        }
    }

    /// cloud subscribes to t (with `opts` and sub-id props), device publishes `pk`.
    fn base(opts: u8, sub_props: &str, pk: Packet) -> Kit {
        let mut k = Kit::new();
        k.session(
            1,
            "cloud",
            connect("cloud", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "cloud", subscribe(1, "t/#", 1, opts, sub_props))
            .down(1, "cloud", suback(1, &[1]));
        k.session(
            2,
            "device",
            connect("dev", true, 60, ""),
            connack(false, 0, ""),
        );
        k.wait(10).up(2, "device", pk);
        k
    }

    const PROPS: &str = "response_topic = \"r\"\ncorrelation_data = \"c\"\ncontent_type = \"text/plain\"\npayload_format = 1\nuser_properties = [[\"b\",\"2\"],[\"a\",\"1\"]]";

    #[test]
    fn unaltered_properties_pass_and_each_alteration_names_its_rule() {
        let mut k = base(0, "", publish(None, 0, "t/1", "x", PROPS));
        k.wait(5)
            .down(1, "cloud", publish(None, 0, "t/1", "x", PROPS));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        let case = |delivered: String| {
            let mut k = base(0, "", publish(None, 0, "t/1", "x", PROPS));
            k.wait(5)
                .down(1, "cloud", publish(None, 0, "t/1", "x", &delivered));
            judge_both(&checker(), &k.history())
        };
        let v = case(PROPS.replace("\"r\"", "\"q\""));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-15"]);
        let v = case(PROPS.replace("\"c\"", "\"d\""));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-16"]);
        let v = case(PROPS.replace("text/plain", "x/y"));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-20"]);
        let v = case(PROPS.replace("payload_format = 1", "payload_format = 0"));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-4"]);
        let v = case(PROPS.replace(
            "[[\"b\",\"2\"],[\"a\",\"1\"]]",
            "[[\"a\",\"1\"],[\"b\",\"2\"]]",
        ));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-18"], "the same pairs reordered");
        let v = case(PROPS.replace(",[\"a\",\"1\"]", ""));
        assert_eq!(v.rules(), vec!["MQTT-3.3.2-17"], "a pair lost");
    }

    #[test]
    fn message_expiry_is_decremented_and_never_delivered_late() {
        let mut k = base(0, "", publish(None, 0, "t/1", "x", "message_expiry = 10"));
        k.wait(3000).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "message_expiry = 7"),
        );
        assert!(judge_both(&checker(), &k.history()).ok());
        let mut k = base(0, "", publish(None, 0, "t/1", "x", "message_expiry = 10"));
        k.wait(3000).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "message_expiry = 10"),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.2-6"]
        );
        let mut k = base(0, "", publish(None, 0, "t/1", "x", "message_expiry = 1"));
        k.wait(3000).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "message_expiry = 1"),
        );
        assert_violates(&judge_both(&checker(), &k.history()), "MQTT-3.3.2-5");
    }

    #[test]
    fn a_resend_of_a_delivery_started_before_expiry_is_allowed() {
        let mut k = base(0, "", publish(Some(1), 1, "t/1", "x", "message_expiry = 1"));
        k.wait(100).down(
            1,
            "cloud",
            publish(Some(5), 1, "t/1", "x", "message_expiry = 1"),
        );
        k.wait(3000).down(
            1,
            "cloud",
            dup(publish(Some(5), 1, "t/1", "x", "message_expiry = 0")),
        );
        let v = judge_both(&checker(), &k.history());
        assert!(!v.rules().contains(&"MQTT-3.3.2-5"), "{v:?}");
    }

    #[test]
    fn subscription_identifiers_must_arrive() {
        let mut k = base(
            0,
            "subscription_identifier = 7",
            publish(None, 0, "t/1", "x", ""),
        );
        k.wait(5).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "subscription_identifier = 7"),
        );
        assert!(judge_both(&checker(), &k.history()).ok());
        let mut k = base(
            0,
            "subscription_identifier = 7",
            publish(None, 0, "t/1", "x", ""),
        );
        k.wait(5).down(1, "cloud", publish(None, 0, "t/1", "x", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.4-3", "MQTT-3.3.4-4"]
        );
    }

    #[test]
    fn a_wills_user_properties_keep_their_order() {
        let will = |delivered: &str| {
            let mut k = Kit::new();
            k.session(
                1,
                "cloud",
                connect("cloud", true, 60, ""),
                connack(false, 0, ""),
            );
            k.up(1, "cloud", subscribe(1, "w/#", 1, 0, ""))
                .down(1, "cloud", suback(1, &[1]));
            k.session(
                2,
                "device",
                connect_will(
                    "dev",
                    60,
                    "",
                    "w/dev",
                    "gone",
                    "user_properties = [[\"b\", \"2\"], [\"a\", \"1\"]]",
                ),
                connack(false, 0, ""),
            );
            k.close(2, "device", crate::history::CloseReason::Severed);
            k.wait(10)
                .down(1, "cloud", publish(Some(1), 1, "w/dev", "gone", delivered));
            judge_both(&checker(), &k.history())
        };
        let v = will("user_properties = [[\"b\", \"2\"], [\"a\", \"1\"]]");
        assert!(v.ok(), "{v:?}");
        assert_eq!(
            will("user_properties = [[\"a\", \"1\"], [\"b\", \"2\"]]").rules(),
            vec!["MQTT-3.1.3-10"]
        );
    }

    /// Two overlapping subscriptions with ids 7 and 8: one copy with both
    /// is fine, two copies with one each too; two copies where one lacks
    /// its id break the each-copy statement.
    #[test]
    fn overlapping_subscriptions_and_their_identifiers() {
        let two = |copies: &[&[u32]]| {
            let mut k = base(
                0,
                "subscription_identifier = 7",
                publish(None, 0, "t/1", "x", ""),
            );
            k.up(
                1,
                "cloud",
                subscribe(2, "t/+", 1, 0, "subscription_identifier = 8"),
            )
            .down(1, "cloud", suback(2, &[1]));
            k.wait(10).up(2, "device", publish(None, 0, "t/1", "y", ""));
            for ids in copies {
                let mut pk = publish(None, 0, "t/1", "y", "");
                if let Packet::Publish(x) = &mut pk {
                    for id in *ids {
                        x.properties.0.push(crate::mqtt::Property {
                            id: SUBSCRIPTION_ID,
                            value: PropValue::VarInt(*id),
                        });
                    }
                }
                k.wait(5).down(1, "cloud", pk);
            }
            judge_both(&checker(), &k.history())
        };
        let v = two(&[&[7, 8]]);
        assert!(v.ok(), "{v:?}");
        let v = two(&[&[7], &[8]]);
        assert!(v.ok(), "{v:?}");
        assert_eq!(
            two(&[&[7], &[]]).rules(),
            vec!["MQTT-3.3.4-3", "MQTT-3.3.4-5"]
        );
    }

    /// A message published again (same topic and payload) replaces the
    /// first as what later copies are paired with; a copy of the first
    /// that lacked its subscription id stays reported.
    #[test]
    fn a_republished_message_keeps_the_first_ones_missing_identifier() {
        let two = |first_id: bool| {
            let mut k = base(
                0,
                "subscription_identifier = 7",
                publish(None, 0, "t/1", "x", ""),
            );
            let ids = if first_id {
                "subscription_identifier = 7"
            } else {
                ""
            };
            k.wait(5)
                .down(1, "cloud", publish(None, 0, "t/1", "x", ids));
            k.wait(5).up(2, "device", publish(None, 0, "t/1", "x", ""));
            k.wait(5).down(
                1,
                "cloud",
                publish(None, 0, "t/1", "x", "subscription_identifier = 7"),
            );
            judge_both(&checker(), &k.history())
        };
        let v = two(true);
        assert!(v.ok(), "{v:?}");
        let v = two(false);
        assert_eq!(v.rules(), vec!["MQTT-3.3.4-3", "MQTT-3.3.4-4"]);
        assert_eq!(v.violations[0].events, vec![8, 9], "the first copy");
    }

    #[test]
    fn no_local_and_retain_as_published() {
        // The publisher subscribed with No Local and got its own message back.
        let mut k = Kit::new();
        k.session(
            1,
            "device",
            connect("dev", true, 60, ""),
            connack(false, 0, ""),
        );
        k.up(1, "device", subscribe(1, "t/#", 0, 0x04, ""))
            .down(1, "device", suback(1, &[0]));
        k.up(1, "device", publish(None, 0, "t/1", "x", ""));
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        k.down(1, "device", publish(None, 0, "t/1", "x", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.8.3-3"]
        );
        // Retain As Published 0: a live forward must clear RETAIN.
        let mut k = base(0, "", retained(publish(None, 0, "t/1", "x", "")));
        k.down(1, "cloud", retained(publish(None, 0, "t/1", "x", "")));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.1-12"]
        );
        let mut k = base(0x08, "", retained(publish(None, 0, "t/1", "x", "")));
        k.down(1, "cloud", publish(None, 0, "t/1", "x", ""));
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.1-13"]
        );
        let mut k = base(0x08, "", retained(publish(None, 0, "t/1", "x", "")));
        k.down(1, "cloud", retained(publish(None, 0, "t/1", "x", "")));
        assert!(judge_both(&checker(), &k.history()).ok());
    }

    #[test]
    fn a_client_subscription_identifier_on_publish_fails() {
        let k = base(
            0,
            "",
            publish(None, 0, "t/1", "x", "subscription_identifier = 3"),
        );
        assert_violates(&judge_both(&checker(), &k.history()), "MQTT-3.3.4-6");
    }

    #[test]
    fn a_response_topic_with_a_wildcard_fails() {
        // Levels are fine in a Response Topic, wildcards are not.
        let mut k = base(
            0,
            "",
            publish(None, 0, "t/1", "x", "response_topic = \"r/dev/1\""),
        );
        k.wait(5).down(
            1,
            "cloud",
            publish(None, 0, "t/1", "x", "response_topic = \"r/dev/1\""),
        );
        let v = judge_both(&checker(), &k.history());
        assert!(v.ok(), "{v:?}");
        let k = base(
            0,
            "",
            publish(None, 0, "t/1", "x", "response_topic = \"r/+/1\""),
        );
        assert_eq!(
            judge_both(&checker(), &k.history()).rules(),
            vec!["MQTT-3.3.2-14"]
        );
    }
}
