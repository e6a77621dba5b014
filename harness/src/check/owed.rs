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
//! (`v5_packets` keeps its table per client id, as it keeps its
//! subscriptions, so there only the cap below bounds it.) Some legal
//! histories still grow a table without end: an offline persistent
//! session whose filters keep matching (QoS 0 included, which a broker may
//! queue or drop), a broker that drops QoS 0 messages to an online one, a
//! share group's other members (a message is owed to each member, one gets
//! it). So a table keeps at most [`PER_SESSION`] messages, the oldest
//! going first. What that gives up: a delivery of a message more than
//! [`PER_SESSION`] newer owed messages old is paired with nothing, and the
//! rules that need its publication say nothing about it.

use std::collections::{BTreeMap, HashMap};

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

/// One session's owed messages by [`content_key`]: for each, what the
/// checker keeps of its latest publication (`T`) and how many copies are
/// still owed. At most `cap` of them, oldest first out.
pub(crate) struct Messages<T> {
    cap: usize,
    by_key: HashMap<u128, Entry<T>>,
    /// Keys by when they were last owed (their `at`), oldest first.
    order: BTreeMap<u64, u128>,
    next: u64,
}

struct Entry<T> {
    at: u64,
    copies: u32,
    value: T,
}

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

    /// `copies` more of the message `key` are owed, its latest publication
    /// now `value`. Returns what the table let go: the value it replaced
    /// and those of the oldest messages pushed out by the cap.
    pub(crate) fn owe(&mut self, key: u128, copies: u32, value: T) -> Vec<T> {
        let mut gone = Vec::new();
        let at = self.next;
        self.next += 1;
        let copies = match self.by_key.remove(&key) {
            Some(e) => {
                self.order.remove(&e.at);
                gone.push(e.value);
                e.copies.saturating_add(copies)
            }
            None => copies,
        };
        self.by_key.insert(key, Entry { at, copies, value });
        self.order.insert(at, key);
        while self.by_key.len() > self.cap {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            if let Some(e) = self.by_key.remove(&old) {
                gone.push(e.value);
            }
        }
        gone
    }

    pub(crate) fn get(&self, key: u128) -> Option<&T> {
        self.by_key.get(&key).map(|e| &e.value)
    }

    /// A first send of `key` took one copy; returns the value once no copy
    /// is left (the message is no longer owed).
    pub(crate) fn take(&mut self, key: u128) -> Option<T> {
        let e = self.by_key.get_mut(&key)?;
        e.copies = e.copies.saturating_sub(1);
        if e.copies > 0 {
            return None;
        }
        let e = self.by_key.remove(&key)?;
        self.order.remove(&e.at);
        Some(e.value)
    }

    /// `key` is no longer owed, however many copies were.
    pub(crate) fn remove(&mut self, key: u128) -> Option<T> {
        let e = self.by_key.remove(&key)?;
        self.order.remove(&e.at);
        Some(e.value)
    }

    /// Everything still owed, for the caller to let go of.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.order.clear();
        self.by_key.drain().map(|(_, e)| e.value)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_taken_one_by_one_and_the_cap_lets_the_oldest_go() {
        let mut o: Messages<&str> = Messages::with_cap(2);
        assert!(o.owe(1, 2, "a").is_empty());
        assert_eq!(o.take(1), None, "one copy is still owed");
        assert_eq!(o.get(1), Some(&"a"));
        assert_eq!(o.take(1), Some("a"));
        assert_eq!(o.get(1), None);
        assert!(o.owe(1, 1, "a").is_empty());
        assert!(o.owe(2, 1, "b").is_empty());
        // The same message again: the copies add up, the latest kept.
        assert_eq!(o.owe(1, 1, "a2"), vec!["a"]);
        // A third message pushes the oldest (2, as 1 was owed again) out.
        assert_eq!(o.owe(3, 1, "c"), vec!["b"]);
        assert_eq!(o.len(), 2);
        assert_eq!(o.take(1), None);
        assert_eq!(o.take(1), Some("a2"));
        assert_eq!(o.remove(3), Some("c"));
        assert!(o.owe(4, 1, "d").is_empty());
        let mut rest: Vec<&str> = o.drain().collect();
        rest.sort();
        assert_eq!(rest, vec!["d"]);
        assert_eq!(o.len(), 0);
    }
}
