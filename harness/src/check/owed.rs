//! What a broker owes one subscriber session: the messages that reached it
//! while a filter of that session matched them, not yet delivered. The
//! checkers that pair a delivery with the publication it came from
//! (`v5_acks`, `v5_packets`) look the delivery up here, in its own
//! session, instead of in a table of every distinct message ever published
//! — which grew with the traffic for as long as a session ran.
//!
//! This is the broker's own book-keeping, and so its bound: a message
//! becomes owed to a session when it reaches the broker and one of the
//! session's live filters matches it [MQTT-3.3.2-3] (one copy per matching
//! filter at most [MQTT-3.3.4-2]); a first send (not DUP) of it to that
//! session takes one copy; the table goes with the session (a new session
//! replaces it, [MQTT-3.1.2-4]). What remains is what the broker itself
//! must hold: messages in flight and those queued for a session that is
//! offline.
//!
//! The same content published again is owed behind the earlier
//! publication, not in its place: a server sends one client's PUBLISHes
//! on a topic and QoS to a subscriber "in the order that they were
//! received" [MQTT-4.6.0-6], so of two owed `on`s the first delivery is
//! the older one. A caller picks the oldest owed publication that fits
//! (the order it has seen so far), else the oldest ([`Messages::pick`]);
//! a QoS 2 repeat's copy is a spare, paired only when no publication of
//! its content is owed ([`Messages::owe_again`]).
//!
//! (`v5_packets` keeps its table per client id, as it keeps its
//! subscriptions, so there only the cap below bounds it.) Some legal
//! histories still grow a table without end: an offline persistent
//! session whose filters keep matching (QoS 0 included, which a broker may
//! queue or drop), a broker that drops QoS 0 messages to an online one, a
//! share group's other members (a message is owed to each member, one gets
//! it). So a table keeps at most [`PER_SESSION`] publications (spares
//! included), the oldest going first. What that gives up: a delivery of a
//! message more than [`PER_SESSION`] newer owed publications old is paired
//! with a newer one of its content or with nothing, and the rules that
//! need its publication may say nothing about it.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// The most messages one session's table holds: 65,536, one more than the
/// largest Receive Maximum (65,535, section 3.1.2.11.3), the most QoS 1
/// and 2 messages a 5.0 broker may have in flight to one session, each of
/// which it must be able to resend on a resumed session. How many it
/// queues beyond that for an offline session is the broker's own limit
/// (mosquitto's `max_queued_messages` defaults to 1,000), not the
/// protocol's.
pub(crate) const PER_SESSION: usize = 65_536;

/// A message's topic and payload as 128 bits (two SipHash passes under
/// different prefixes), so that a table holds 16 bytes a message rather
/// than the message: two messages are taken for one only on a 128-bit
/// collision.
pub(crate) fn content_key(topic: &str, payload: &[u8]) -> u128 {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        topic.hash(&mut h);
        payload.hash(&mut h);
        h.finish() as u128
    };
    half(0) << 64 | half(1)
}

/// One session's owed messages by [`content_key`]: for each content, the
/// publications still owed in the order they became owed (what the checker
/// keeps of each, `T`, and how many copies of it), and at most one spare
/// (a QoS 2 repeat's, see [`Messages::owe_again`]). At most `cap` of them
/// (publications and spares together), oldest first out.
pub(crate) struct Messages<T> {
    cap: usize,
    by_key: HashMap<u128, Entry<T>>,
    /// Every publication and spare by when it became owed (its `at`),
    /// oldest first.
    order: BTreeMap<u64, u128>,
    next: u64,
}

struct Entry<T> {
    /// Oldest first: the broker delivers a publisher's messages in the
    /// order they were published [MQTT-4.6.0-6].
    queue: VecDeque<Owed<T>>,
    spare: Option<(u64, T)>,
}

struct Owed<T> {
    at: u64,
    copies: u32,
    value: T,
}

/// Which owed publication (or spare) of a content [`Messages::pick`]
/// chose, for [`Messages::take`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot(u64);

impl<T> Default for Messages<T> {
    fn default() -> Self {
        Messages::with_cap(PER_SESSION)
    }
}

impl<T> Messages<T> {
    pub(crate) fn with_cap(cap: usize) -> Messages<T> {
        Messages {
            cap: cap.max(1),
            by_key: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
        }
    }

    fn stamp(&mut self, key: u128) -> u64 {
        let at = self.next;
        self.next += 1;
        self.order.insert(at, key);
        at
    }

    /// `copies` more of the message `key` are owed: a publication `value`,
    /// behind those of the same content still owed. Returns what the cap
    /// pushed out (the oldest).
    pub(crate) fn owe(&mut self, key: u128, copies: u32, value: T) -> Vec<T> {
        let at = self.stamp(key);
        let e = self.by_key.entry(key).or_insert_with(|| Entry {
            queue: VecDeque::new(),
            spare: None,
        });
        e.queue.push_back(Owed { at, copies, value });
        self.shed()
    }

    /// A copy of `value` that is paired only when no publication of `key`
    /// is owed: a QoS 2 repeat's [MQTT-4.3.3-10], which a broker must not
    /// forward, so that a copy it forwards anyway is paired with the
    /// repeated message, while a later publication of the same content is
    /// not taken for it. Returns the spare it replaced and what the cap
    /// pushed out.
    pub(crate) fn owe_again(&mut self, key: u128, value: T) -> Vec<T> {
        let at = self.stamp(key);
        let e = self.by_key.entry(key).or_insert_with(|| Entry {
            queue: VecDeque::new(),
            spare: None,
        });
        let mut gone = Vec::new();
        if let Some((old, v)) = e.spare.replace((at, value)) {
            self.order.remove(&old);
            gone.push(v);
        }
        gone.extend(self.shed());
        gone
    }

    /// Lets the oldest go while the table holds more than `cap`.
    fn shed(&mut self) -> Vec<T> {
        let mut gone = Vec::new();
        while self.order.len() > self.cap {
            let Some((at, key)) = self.order.pop_first() else {
                break;
            };
            let Some(e) = self.by_key.get_mut(&key) else {
                continue;
            };
            // The oldest of a content is its spare or the queue's front.
            if e.spare.as_ref().is_some_and(|(s, _)| *s == at) {
                gone.extend(e.spare.take().map(|(_, v)| v));
            } else if e.queue.front().is_some_and(|o| o.at == at) {
                gone.extend(e.queue.pop_front().map(|o| o.value));
            }
            if e.queue.is_empty() && e.spare.is_none() {
                self.by_key.remove(&key);
            }
        }
        gone
    }

    /// The owed publication of `key` a delivery pairs with: the oldest
    /// for which `fits` holds, else the oldest, else the spare.
    pub(crate) fn pick(&self, key: u128, fits: impl Fn(&T) -> bool) -> Option<(Slot, &T)> {
        let e = self.by_key.get(&key)?;
        e.queue
            .iter()
            .find(|o| fits(&o.value))
            .or(e.queue.front())
            .map(|o| (Slot(o.at), &o.value))
            .or(e.spare.as_ref().map(|(at, v)| (Slot(*at), v)))
    }

    /// The oldest owed publication of `key`, else its spare.
    pub(crate) fn get(&self, key: u128) -> Option<&T> {
        self.pick(key, |_| true).map(|(_, v)| v)
    }

    /// A first send took one copy of what `slot` holds; returns the value
    /// once no copy of it is left (it is no longer owed).
    pub(crate) fn take(&mut self, key: u128, slot: Slot) -> Option<T> {
        let e = self.by_key.get_mut(&key)?;
        let out = if e.spare.as_ref().is_some_and(|(at, _)| *at == slot.0) {
            e.spare.take().map(|(_, v)| v)
        } else {
            let i = e.queue.iter().position(|o| o.at == slot.0)?;
            let o = &mut e.queue[i];
            o.copies = o.copies.saturating_sub(1);
            if o.copies > 0 {
                return None;
            }
            e.queue.remove(i).map(|o| o.value)
        };
        self.order.remove(&slot.0);
        if e.queue.is_empty() && e.spare.is_none() {
            self.by_key.remove(&key);
        }
        out
    }

    /// A first send took one copy of the oldest owed publication of `key`
    /// (else its spare); see [`Messages::take`].
    pub(crate) fn take_oldest(&mut self, key: u128) -> Option<T> {
        let slot = self.pick(key, |_| true)?.0;
        self.take(key, slot)
    }

    /// `key` is no longer owed, however many copies were.
    pub(crate) fn remove(&mut self, key: u128) -> Vec<T> {
        let Some(e) = self.by_key.remove(&key) else {
            return Vec::new();
        };
        let mut gone = Vec::new();
        for o in e.queue {
            self.order.remove(&o.at);
            gone.push(o.value);
        }
        if let Some((at, v)) = e.spare {
            self.order.remove(&at);
            gone.push(v);
        }
        gone
    }

    /// Everything still owed, for the caller to let go of.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.order.clear();
        self.by_key.drain().flat_map(|(_, e)| {
            e.queue
                .into_iter()
                .map(|o| o.value)
                .chain(e.spare.map(|(_, v)| v))
        })
    }

    /// Publications and spares held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_taken_one_by_one_and_the_cap_lets_the_oldest_go() {
        let mut o: Messages<&str> = Messages::with_cap(3);
        assert!(o.owe(1, 2, "a").is_empty());
        assert_eq!(o.take_oldest(1), None, "one copy is still owed");
        assert_eq!(o.get(1), Some(&"a"));
        assert_eq!(o.take_oldest(1), Some("a"));
        assert_eq!(o.get(1), None);
        assert!(o.owe(1, 1, "a").is_empty());
        assert!(o.owe(2, 1, "b").is_empty());
        // The same content again: owed behind the first.
        assert!(o.owe(1, 1, "a2").is_empty());
        assert_eq!(o.get(1), Some(&"a"));
        // A fourth pushes the oldest publication out: the first `a`.
        assert_eq!(o.owe(3, 1, "c"), vec!["a"]);
        assert_eq!(o.len(), 3);
        assert_eq!(o.take_oldest(1), Some("a2"));
        assert_eq!(o.remove(3), vec!["c"]);
        assert!(o.owe(4, 1, "d").is_empty());
        let mut rest: Vec<&str> = o.drain().collect();
        rest.sort();
        assert_eq!(rest, vec!["b", "d"]);
        assert_eq!(o.len(), 0);
    }

    #[test]
    fn the_oldest_that_fits_is_picked_and_the_spare_last() {
        let mut o: Messages<&str> = Messages::with_cap(8);
        o.owe(1, 1, "a1");
        o.owe(1, 1, "a2");
        assert!(o.owe_again(1, "r").is_empty());
        let (slot, v) = o.pick(1, |v| *v == "a2").unwrap();
        assert_eq!(*v, "a2");
        assert_eq!(o.take(1, slot), Some("a2"));
        // Nothing fits: the oldest.
        assert_eq!(o.pick(1, |_| false).map(|(_, v)| *v), Some("a1"));
        assert_eq!(o.take_oldest(1), Some("a1"));
        // No publication left: the spare; a new spare replaces it.
        assert_eq!(o.owe_again(1, "r2"), vec!["r"]);
        assert_eq!(o.get(1), Some(&"r2"));
        o.owe(1, 1, "a3");
        assert_eq!(o.get(1), Some(&"a3"));
        assert_eq!(o.take_oldest(1), Some("a3"));
        assert_eq!(o.take_oldest(1), Some("r2"));
        assert_eq!(o.len(), 0);
    }
}
