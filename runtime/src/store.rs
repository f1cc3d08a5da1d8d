//! The last-write-wins store: one register per key, ordered by hybrid logical clock timestamps.
//!
//! A register holds the value (or a tombstone) of the write with the greatest [`HlcTimestamp`]
//! seen for its key; timestamps are totally ordered by `(l, c, leader)`, so every replica that has
//! seen the same writes holds the same value (a state-based LWW register, Shapiro et al. 2011,
//! "Conflict-free Replicated Data Types"). Because the HLC respects causality, a write that
//! *saw* an earlier one always wins over it; only *concurrent* writes are conflicts, and every
//! write such a conflict discards is reported in an [`ApplyOutcome::Conflict`] — never dropped
//! silently (Jepsen found LWW in the wild losing acknowledged writes without a trace).
//!
//! Iteration is in key order (a `BTreeMap`), so snapshots and traces are deterministic.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::causality::{Dot, VersionVector};
use crate::clock::HlcTimestamp;
use crate::entry::{Entry, Key, Op, Value};

/// The state of one key: the winning write's value (None for a delete) and identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// The value, or `None` when the winning write was a delete (a tombstone).
    pub value: Option<Value>,
    /// The winning write's timestamp.
    pub hlc: HlcTimestamp,
    /// The winning write's identity.
    pub dot: Dot,
}

/// What applying one write did to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ApplyOutcome {
    /// The key had no register; the write created it.
    Created,
    /// A void entry (a write lost with its leader): nothing changed.
    Void,
    /// The write replaced a write it had seen (a causal successor: no conflict).
    Superseded {
        /// The write replaced.
        previous: Dot,
    },
    /// The write was concurrent with the key's register: last-write-wins decided.
    Conflict {
        /// The write that won (the greater timestamp).
        kept: Dot,
        /// Its timestamp.
        kept_hlc: HlcTimestamp,
        /// The write that lost and is no longer visible.
        discarded: Dot,
        /// Its timestamp.
        discarded_hlc: HlcTimestamp,
        /// The value that was discarded (`None` for a delete).
        discarded_value: Option<Value>,
    },
}

/// A last-write-wins key-value store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LwwStore {
    registers: BTreeMap<Key, Register>,
}

impl LwwStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one write. The caller guarantees causal order (the replica's delivery rule).
    pub fn apply(&mut self, entry: &Entry) -> ApplyOutcome {
        let incoming = Register {
            value: match &entry.op {
                Op::Put(v) => Some(v.clone()),
                Op::Delete => None,
                // Only last-write-wins keys come here; other operations belong to other stores.
                Op::Void | Op::SiblingPut { .. } | Op::SiblingDelete { .. } | Op::Crdt(_) => return ApplyOutcome::Void,
            },
            hlc: entry.hlc,
            dot: entry.dot,
        };
        let Some(current) = self.registers.get_mut(&entry.key) else {
            self.registers.insert(entry.key.clone(), incoming);
            return ApplyOutcome::Created;
        };
        // The decision is by timestamp alone, exactly as a snapshot merge decides, so that every
        // replica agrees however it learned of the writes. The dependencies only say whether the
        // decision was a conflict: a writer that saw the current value supersedes it (and the HLC
        // guarantees its timestamp is greater — unless a peer broke that rule, in which case the
        // greater timestamp still wins and the outcome is reported as a conflict).
        if entry.deps.contains(current.dot) && incoming.hlc > current.hlc {
            let previous = current.dot;
            *current = incoming;
            return ApplyOutcome::Superseded { previous };
        }
        let (winner, loser) = if incoming.hlc > current.hlc {
            let loser = core::mem::replace(current, incoming);
            (current.clone(), loser)
        } else {
            (current.clone(), incoming)
        };
        ApplyOutcome::Conflict {
            kept: winner.dot,
            kept_hlc: winner.hlc,
            discarded: loser.dot,
            discarded_hlc: loser.hlc,
            discarded_value: loser.value,
        }
    }

    /// Merges one register from a snapshot (the join: the greater timestamp wins). Returns the
    /// register that lost, if the key existed and the two differ.
    pub fn merge_register(&mut self, key: Key, register: Register) -> Option<Register> {
        match self.registers.get_mut(&key) {
            None => {
                self.registers.insert(key, register);
                None
            }
            Some(current) if current.hlc == register.hlc => None,
            Some(current) if register.hlc > current.hlc => Some(core::mem::replace(current, register)),
            Some(_) => Some(register),
        }
    }

    /// The register of `key`, tombstones included.
    #[must_use]
    pub fn register(&self, key: &Key) -> Option<&Register> {
        self.registers.get(key)
    }

    /// The live value of `key` (None when absent or deleted).
    #[must_use]
    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.registers.get(key).and_then(|r| r.value.as_ref())
    }

    /// All registers in key order, tombstones included.
    pub fn registers(&self) -> impl Iterator<Item = (&Key, &Register)> {
        self.registers.iter()
    }

    /// Live key-value pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.registers.iter().filter_map(|(k, r)| r.value.as_ref().map(|v| (k, v)))
    }

    /// The number of registers, tombstones included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.registers.len()
    }

    /// Whether the store has no register at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.registers.is_empty()
    }

    /// A digest of the store's contents that ignores nothing: used by tests and the simulator to
    /// compare replicas.
    #[must_use]
    pub fn fingerprint(&self) -> Vec<(Key, Option<Value>, Dot)> {
        self.registers.iter().map(|(k, r)| (k.clone(), r.value.clone(), r.dot)).collect()
    }
}

/// One chunk of a state snapshot, for a peer whose needs the sender's log has truncated.
///
/// A snapshot is `count` chunks sharing one `id` and one `vv`. The receiver stages the chunks and
/// adopts the snapshot — registers and version vector together — only once all of them have
/// arrived and passed its checks; a lost or rejected chunk means nothing is adopted, and the next
/// anti-entropy round tries again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// Identifies the snapshot among those the sender has sent.
    pub id: u64,
    /// This chunk's position, `0..count`.
    pub index: u32,
    /// How many chunks the snapshot has.
    pub count: u32,
    /// The writes the whole snapshot reflects.
    pub vv: VersionVector,
    /// Last-write-wins registers, in key order.
    pub registers: Vec<(Key, Register)>,
    /// Keys of siblings keyspaces, in key order.
    pub siblings: Vec<(Key, crate::siblings::KeyState)>,
    /// Keys of CRDT keyspaces, in key order.
    pub crdts: Vec<(Key, crate::resolution::CrdtState)>,
}

impl SnapshotChunk {
    /// How many keys the chunk carries.
    #[must_use]
    pub fn keys(&self) -> usize {
        self.registers.len() + self.siblings.len() + self.crdts.len()
    }
}
