//! What a leader decided about each last-write-wins key lately, so that a person can ask why a
//! key holds what it holds: the writes applied to it, and which concurrent writes
//! last-write-wins discarded (with their values). Off unless [`ReplicaConfig::key_history`] is
//! set; bounded in keys and in decisions per key, oldest first out, so it costs at most a fixed
//! amount of memory and says when it has forgotten something.
//!
//! [`ReplicaConfig::key_history`]: super::ReplicaConfig::key_history

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::causality::Dot;
use crate::clock::HlcTimestamp;
use crate::entry::{Key, Value};

/// The most bytes of a discarded value a history keeps (the rest is cut; its length is kept).
pub const HISTORY_VALUE_BYTES: usize = 256;

/// How much key history a leader keeps: at most `keys × per_key` decisions, each with at most
/// [`HISTORY_VALUE_BYTES`] of a value (with the defaults, under 64 MiB however large values are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// The most keys remembered; a new key beyond it forgets the key remembered longest ago.
    pub keys: usize,
    /// The most decisions remembered per key; a new one beyond it forgets the oldest.
    pub per_key: usize,
}

impl Default for HistoryConfig {
    /// 16,384 keys, 8 decisions each.
    fn default() -> Self {
        HistoryConfig { keys: 16_384, per_key: 8 }
    }
}

/// One decision about a key, as [`Replica::explain`](super::Replica::explain) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEvent {
    /// A write was applied and became the key's value: the first write to the key here, or a
    /// write that had seen the value it replaced (`previous`).
    Applied {
        /// The write.
        dot: Dot,
        /// Its timestamp.
        hlc: HlcTimestamp,
        /// The write it replaced, if the key had one.
        previous: Option<Dot>,
        /// Whether it was a delete.
        delete: bool,
    },
    /// Two writes to the key were concurrent (neither had seen the other): last-write-wins kept
    /// the one with the greater timestamp and discarded the other, here.
    Discarded {
        /// The write kept.
        kept: Dot,
        /// Its timestamp (`None` when learned from a snapshot, which carries only the winner's).
        kept_hlc: Option<HlcTimestamp>,
        /// The write discarded.
        discarded: Dot,
        /// Its timestamp, when known.
        discarded_hlc: Option<HlcTimestamp>,
        /// Its value (`None` for a delete), cut to [`HISTORY_VALUE_BYTES`].
        value: Option<Value>,
        /// The length of the whole value (0 for a delete).
        value_len: usize,
    },
    /// The key's write here was replaced by a write learned from a peer's snapshot: the peer had
    /// seen both and decided (a later write, or last-write-wins there, which the peer's own
    /// history then lists as `Discarded`).
    Replaced {
        /// The write that replaced it.
        by: Dot,
        /// The write replaced.
        replaced: Dot,
        /// Its value (`None` for a delete), cut to [`HISTORY_VALUE_BYTES`].
        value: Option<Value>,
        /// The length of the whole value.
        value_len: usize,
    },
}

impl KeyEvent {
    /// The event for a write `discarded` in favour of `kept`, its value cut to
    /// [`HISTORY_VALUE_BYTES`].
    pub(crate) fn discarded(
        kept: Dot,
        kept_hlc: Option<HlcTimestamp>,
        discarded: Dot,
        discarded_hlc: Option<HlcTimestamp>,
        value: Option<&Value>,
    ) -> KeyEvent {
        let (value, value_len) = cut(value);
        KeyEvent::Discarded { kept, kept_hlc, discarded, discarded_hlc, value, value_len }
    }

    /// The event for a write `replaced` by `by`, learned from a snapshot.
    pub(crate) fn replaced(by: Dot, replaced: Dot, value: Option<&Value>) -> KeyEvent {
        let (value, value_len) = cut(value);
        KeyEvent::Replaced { by, replaced, value, value_len }
    }
}

/// `value` cut to [`HISTORY_VALUE_BYTES`], and its whole length.
fn cut(value: Option<&Value>) -> (Option<Value>, usize) {
    let len = value.map_or(0, |v| v.as_bytes().len());
    let value = value.map(|v| {
        let bytes = v.as_bytes();
        if bytes.len() <= HISTORY_VALUE_BYTES {
            v.clone()
        } else {
            // Shorter than the value, which was valid: cannot be refused.
            Value::new(bytes[..HISTORY_VALUE_BYTES].to_vec()).unwrap_or_else(|_| v.clone())
        }
    });
    (value, len)
}

/// The decisions remembered for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyHistory {
    /// Oldest first.
    pub events: Vec<KeyEvent>,
    /// Decisions about this key forgotten because of the per-key bound.
    pub forgotten: u64,
}

/// The bounded record.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    config: Option<HistoryConfig>,
    by_key: BTreeMap<Key, (VecDeque<KeyEvent>, u64)>,
    /// Keys in the order they were first remembered, for eviction.
    order: VecDeque<Key>,
    /// Keys forgotten because of the key bound.
    keys_forgotten: u64,
}

impl History {
    pub(crate) fn new(config: Option<HistoryConfig>) -> Self {
        History { config: config.filter(|c| c.keys > 0 && c.per_key > 0), ..History::default() }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.config.is_some()
    }

    pub(crate) fn record(&mut self, key: &Key, event: KeyEvent) {
        let Some(config) = self.config else { return };
        if !self.by_key.contains_key(key) {
            while self.order.len() >= config.keys {
                let Some(oldest) = self.order.pop_front() else { break };
                self.by_key.remove(&oldest);
                self.keys_forgotten += 1;
            }
            self.order.push_back(key.clone());
            self.by_key.insert(key.clone(), (VecDeque::new(), 0));
        }
        if let Some((events, forgotten)) = self.by_key.get_mut(key) {
            if events.len() >= config.per_key {
                events.pop_front();
                *forgotten += 1;
            }
            events.push_back(event);
        }
    }

    pub(crate) fn get(&self, key: &Key) -> Option<KeyHistory> {
        let (events, forgotten) = self.by_key.get(key)?;
        Some(KeyHistory { events: events.iter().cloned().collect(), forgotten: *forgotten })
    }

    pub(crate) fn keys_forgotten(&self) -> u64 {
        self.keys_forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causality::Seq;
    use crate::LeaderId;

    fn dot(origin: usize, seq: u64) -> Dot {
        Dot { origin: LeaderId::new(origin).expect("a leader"), seq: Seq(seq) }
    }

    fn applied(seq: u64) -> KeyEvent {
        KeyEvent::Applied {
            dot: dot(0, seq),
            hlc: HlcTimestamp::from_wall_time(crate::WallTime::from_nanos(seq), 0, LeaderId::new(0).expect("a leader")),
            previous: None,
            delete: false,
        }
    }

    #[test]
    fn off_records_nothing() {
        let mut h = History::new(None);
        h.record(&Key::new("k").expect("a key"), applied(1));
        assert!(!h.is_on());
        assert_eq!(h.get(&Key::new("k").expect("a key")), None);
    }

    #[test]
    fn bounds_forget_the_oldest_and_say_so() {
        let mut h = History::new(Some(HistoryConfig { keys: 2, per_key: 3 }));
        let (a, b, c) = (Key::new("a").expect("key"), Key::new("b").expect("key"), Key::new("c").expect("key"));
        for seq in 1..=5 {
            h.record(&a, applied(seq));
        }
        let got = h.get(&a).expect("remembered");
        assert_eq!(got.events, vec![applied(3), applied(4), applied(5)]);
        assert_eq!(got.forgotten, 2);
        h.record(&b, applied(1));
        h.record(&c, applied(1));
        assert_eq!(h.get(&a), None, "the key remembered longest ago goes first");
        assert!(h.get(&b).is_some() && h.get(&c).is_some());
        assert_eq!(h.keys_forgotten(), 1);
    }
}
