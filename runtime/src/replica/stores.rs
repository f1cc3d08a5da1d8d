//! The data a replica holds, whatever its conflict resolution: [`Stores`].
//!
//! Every key lives in exactly one store, chosen by the resolution of its keyspace
//! ([`Keyspaces`]): the last-write-wins store (for last-write-wins and home-leader keyspaces, and
//! void entries), one siblings store per sibling bound, or the CRDT store. `Stores` answers every
//! question that depends on that choice — whether an update or an operation fits a key, applying
//! an entry, reading, fingerprinting, cutting and merging snapshots — so that the rest of the
//! replica never branches on the resolution itself.
//!
//! **Architecture invariant:** `Stores` knows nothing of peers, clocks or effects; it reports what
//! happened ([`Applied`], [`Merged`]) and the replica counts and traces it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::causality::{Dot, VersionVector};
use crate::clock::HlcTimestamp;
use crate::entry::{Entry, Key, Op, Value};
use crate::resolution::{CrdtKind, CrdtOpPayload, CrdtState, CrdtStore, CrdtUpdate, Keyspaces, Resolution, Update};
use crate::siblings::{CausalContext, SiblingOutcome, SiblingRead, SiblingStore};
use crate::store::{ApplyOutcome, LwwStore, Register, SnapshotChunk};
use crate::wire;
use crate::LeaderId;

use super::{Resolved, WriteError};

/// The stores of one replica and the keyspaces that route keys to them.
#[derive(Debug)]
pub(crate) struct Stores {
    keyspaces: Keyspaces,
    lww: LwwStore,
    /// Keys of siblings keyspaces, one store per sibling bound.
    siblings: BTreeMap<usize, SiblingStore>,
    /// Keys of CRDT keyspaces.
    crdts: CrdtStore,
    /// Per CRDT key, a bound of its state's encoded size: its size when last measured, plus a
    /// margin for every payload applied to it since (see [`payload_growth_bound`]). A key's
    /// state must stay within half a frame, so that a snapshot can carry it; the bound lets a
    /// local write check that without walking the whole state each time. A key without an entry
    /// is measured at its next local write.
    crdt_sizes: BTreeMap<Key, usize>,
}

/// How much applying `payload` can grow a CRDT state's encoding, at most: a join adds at most
/// what the delta holds, and an operation at most its element and a dot twice (in the entries
/// and in the context); doubled, plus room for length prefixes that gain a byte.
fn payload_growth_bound(payload: &CrdtOpPayload) -> usize {
    wire::encoded_len(payload).map_or(usize::MAX / 4, |bytes| 2 * bytes + 16)
}

/// A client update checked against its key's keyspace, before it is stamped.
#[derive(Debug)]
pub(crate) enum Planned {
    /// A last-write-wins operation, complete as it is.
    Ready(Op),
    /// A siblings write, replacing the siblings `context` names.
    Siblings {
        /// The keyspace's sibling bound.
        max_siblings: usize,
        /// The value (`None`: a delete).
        value: Option<Value>,
        /// What the writer saw.
        context: VersionVector,
    },
    /// A CRDT update, turned into a payload once stamped.
    Crdt {
        /// The key's CRDT.
        kind: CrdtKind,
        /// The update.
        update: CrdtUpdate,
        /// Its name, for the error.
        name: &'static str,
    },
}

/// What applying an entry did.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The outcome (`Created` for siblings and CRDT keys, `Void` when nothing was applied).
    pub(crate) outcome: ApplyOutcome,
    /// A siblings write that left concurrent siblings: the siblings now held, in dot order, and
    /// whether they exceed the keyspace's bound.
    pub(crate) siblings_kept: Option<(Vec<Dot>, bool)>,
}

/// Something a snapshot merge did to one key, in the order it happened.
#[derive(Debug)]
pub(crate) enum Merged {
    /// The key changed (reported only when asked to notify).
    Changed {
        /// The key.
        key: Key,
        /// The write that changed it (`None` for a siblings or CRDT key).
        dot: Option<Dot>,
    },
    /// Last-write-wins discarded a concurrent write.
    Discarded {
        /// The key.
        key: Key,
        /// The write kept.
        kept: Dot,
        /// The write discarded.
        discarded: Dot,
        /// Its value.
        value: Option<Value>,
    },
    /// A snapshot's register replaced this replica's, which the snapshot's sender had seen: the
    /// sender decided (a later write, or last-write-wins there), and this replica learns only
    /// the outcome.
    Replaced {
        /// The key.
        key: Key,
        /// The write that replaced it.
        by: Dot,
        /// The write replaced.
        replaced: Dot,
        /// Its value.
        value: Option<Value>,
    },
}

impl Stores {
    /// Empty stores for `keyspaces`.
    pub(crate) fn new(keyspaces: Keyspaces) -> Self {
        Stores {
            keyspaces,
            lww: LwwStore::new(),
            siblings: BTreeMap::new(),
            crdts: CrdtStore::default(),
            crdt_sizes: BTreeMap::new(),
        }
    }

    /// The resolution of `key`'s keyspace.
    pub(crate) fn resolution(&self, key: &Key) -> Resolution {
        self.keyspaces.resolution(key)
    }

    /// The last-write-wins store.
    pub(crate) fn lww(&self) -> &LwwStore {
        &self.lww
    }

    fn sibling_store(&mut self, max_siblings: usize) -> &mut SiblingStore {
        self.siblings.entry(max_siblings).or_insert_with(|| SiblingStore::new(max_siblings))
    }

    // ----- client writes --------------------------------------------------------------------

    /// Checks that `update` fits the keyspace of `key`.
    pub(crate) fn plan(&self, key: &Key, update: Update) -> Result<Planned, WriteError> {
        let resolution = self.resolution(key);
        let name = update.name();
        Ok(match (resolution, update) {
            (Resolution::LastWriteWins | Resolution::HomeLeader, Update::Put(value)) => Planned::Ready(Op::Put(value)),
            (Resolution::LastWriteWins | Resolution::HomeLeader, Update::Delete) => Planned::Ready(Op::Delete),
            (Resolution::Siblings { max_siblings }, Update::Put(value)) => {
                Planned::Siblings { max_siblings, value: Some(value), context: VersionVector::new() }
            }
            (Resolution::Siblings { max_siblings }, Update::Delete) => {
                Planned::Siblings { max_siblings, value: None, context: VersionVector::new() }
            }
            (Resolution::Siblings { max_siblings }, Update::PutWithContext { value, context }) => {
                Planned::Siblings { max_siblings, value, context: context.version_vector().clone() }
            }
            (Resolution::Crdt(kind), Update::Crdt(update)) => Planned::Crdt { kind, update, name },
            _ => return Err(WriteError::WrongResolution { key: key.clone(), update: name, resolution }),
        })
    }

    /// Checks that a planned siblings write stays within its key's sibling bound.
    pub(crate) fn check_write(&mut self, key: &Key, planned: &Planned) -> Result<(), WriteError> {
        if let Planned::Siblings { max_siblings, value, context } = planned {
            let context = CausalContext::from(context.clone());
            self.sibling_store(*max_siblings).check_write(key, &context, value.as_ref())?;
        }
        Ok(())
    }

    /// The operation a planned update of `key` becomes once leader `me` stamped it `hlc`.
    pub(crate) fn finish_op(
        &mut self,
        key: &Key,
        planned: Planned,
        me: LeaderId,
        hlc: HlcTimestamp,
    ) -> Result<Op, WriteError> {
        Ok(match planned {
            Planned::Ready(op) => op,
            Planned::Siblings { value: Some(value), context, .. } => Op::SiblingPut { value, context },
            Planned::Siblings { value: None, context, .. } => Op::SiblingDelete { context },
            Planned::Crdt { kind, update, name } => match self.crdts.crdt_delta(key, kind, me, hlc, &update) {
                Some(payload) => {
                    let budget = (wire::MAX_FRAME_BYTES - wire::FRAME_HEADROOM_BYTES) / 2;
                    let delta_bytes = wire::encoded_len(&payload).unwrap_or(budget);
                    // The key's size bound, measured again (a walk of its state, counted, not
                    // encoded) only when unknown or when it says this write might not fit.
                    let mut now_bytes = self.crdt_sizes.get(key).copied();
                    if now_bytes.is_none_or(|bound| bound.saturating_add(delta_bytes) > budget) {
                        let exact = self.crdts.crdts.get(key).map_or(0, |s| wire::encoded_len(s).unwrap_or(0));
                        self.crdt_sizes.insert(key.clone(), exact);
                        now_bytes = Some(exact);
                    }
                    if now_bytes.unwrap_or(0).saturating_add(delta_bytes) > budget {
                        return Err(WriteError::KeyTooLarge { key: key.clone(), limit: budget });
                    }
                    Op::Crdt(payload)
                }
                None => {
                    let resolution = self.resolution(key);
                    return Err(WriteError::WrongResolution { key: key.clone(), update: name, resolution });
                }
            },
        })
    }

    // ----- entries ----------------------------------------------------------------------------

    /// Whether `op` is an operation the keyspace of `key` accepts here.
    pub(crate) fn op_fits(&self, key: &Key, op: &Op) -> bool {
        match (self.resolution(key), op) {
            (_, Op::Void) => key.as_str() == crate::entry::VOID_KEY,
            (Resolution::LastWriteWins | Resolution::HomeLeader, Op::Put(_) | Op::Delete) => true,
            (Resolution::Siblings { .. }, Op::SiblingPut { .. } | Op::SiblingDelete { .. }) => true,
            (Resolution::Crdt(kind), Op::Crdt(CrdtOpPayload::Counter(_))) => kind == CrdtKind::OpCounter,
            (Resolution::Crdt(kind), Op::Crdt(CrdtOpPayload::SetOp(_))) => kind == CrdtKind::OpOrSet,
            (Resolution::Crdt(kind), Op::Crdt(CrdtOpPayload::Delta(state))) => {
                !kind.is_operation_based() && state.fits(kind)
            }
            _ => false,
        }
    }

    /// Applies a deliverable entry to the store of its key.
    pub(crate) fn apply(&mut self, entry: &Entry) -> Applied {
        let mut siblings_kept = None;
        let outcome = match (self.resolution(&entry.key), &entry.op) {
            (_, Op::Void) | (Resolution::LastWriteWins | Resolution::HomeLeader, _) => self.lww.apply(entry),
            (Resolution::Siblings { max_siblings }, Op::SiblingPut { value, context }) => {
                siblings_kept = self.apply_siblings(max_siblings, entry, Some(value.clone()), context);
                ApplyOutcome::Created
            }
            (Resolution::Siblings { max_siblings }, Op::SiblingDelete { context }) => {
                siblings_kept = self.apply_siblings(max_siblings, entry, None, context);
                ApplyOutcome::Created
            }
            (Resolution::Crdt(kind), Op::Crdt(payload)) => {
                let applied = self.crdts.apply_crdt(&entry.key, kind, payload);
                debug_assert!(applied, "validated on receipt");
                if let Some(bound) = self.crdt_sizes.get_mut(&entry.key) {
                    *bound = bound.saturating_add(payload_growth_bound(payload));
                }
                ApplyOutcome::Created
            }
            // Validated on receipt and at the client boundary: cannot happen.
            _ => ApplyOutcome::Void,
        };
        Applied { outcome, siblings_kept }
    }

    /// Applies a siblings write; returns the siblings it leaves, if more than one.
    fn apply_siblings(
        &mut self,
        max_siblings: usize,
        entry: &Entry,
        value: Option<Value>,
        context: &VersionVector,
    ) -> Option<(Vec<Dot>, bool)> {
        let store = self.sibling_store(max_siblings);
        let outcome = store.apply(&entry.key, entry.dot, &context.clone().into(), value);
        let SiblingOutcome::Concurrent { over_bound, .. } = outcome else { return None };
        let dots = store.read(&entry.key).map(|r| r.siblings.iter().map(|(d, _)| *d).collect()).unwrap_or_default();
        Some((dots, over_bound))
    }

    /// Applies a copy of an applied entry once more, as a replica without duplicate suppression
    /// would ([`super::Sabotage::SkipDuplicateSuppression`]).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn reapply(&mut self, entry: &Entry) {
        match (self.resolution(&entry.key), &entry.op) {
            (Resolution::Crdt(kind), Op::Crdt(payload)) => {
                let _ = self.crdts.apply_crdt(&entry.key, kind, payload);
                self.crdt_sizes.remove(&entry.key);
            }
            (Resolution::LastWriteWins | Resolution::HomeLeader, _) => {
                let _ = self.lww.apply(entry);
            }
            _ => {}
        }
    }

    // ----- reads ------------------------------------------------------------------------------

    /// The live siblings of `key` and the context to write back with.
    pub(crate) fn read_siblings(&self, key: &Key) -> Option<SiblingRead> {
        match self.resolution(key) {
            Resolution::Siblings { max_siblings } => self.siblings.get(&max_siblings)?.read(key),
            _ => None,
        }
    }

    /// The state of the CRDT `key`.
    pub(crate) fn read_crdt(&self, key: &Key) -> Option<&CrdtState> {
        self.crdts.crdts.get(key)
    }

    /// How many keys hold something a reader sees: a live last-write-wins value, at least one
    /// sibling, a counter that is not zero, or a non-empty set.
    pub(crate) fn live_keys(&self) -> usize {
        let lww = self.lww.registers().filter(|(_, r)| r.value.is_some()).count();
        let siblings: usize =
            self.siblings.values().map(|store| store.iter().filter(|(key, _)| store.read(key).is_some()).count()).sum();
        let crdts = self
            .crdts
            .crdts
            .values()
            .filter(|state| match state {
                CrdtState::OrSet(set) => !set.value().is_empty(),
                CrdtState::GSet(set) => !set.value().is_empty(),
                CrdtState::TwoPSet(set) => !set.value().is_empty(),
                CrdtState::PnCounter(counter) => counter.value() != 0,
                CrdtState::GCounter(counter) => counter.value() != 0,
                _ => true,
            })
            .count();
        lww + siblings + crdts
    }

    /// Every siblings and CRDT key with what a reader sees, in key order.
    pub(crate) fn resolved(&self) -> Vec<(Key, Resolved)> {
        let mut out: Vec<(Key, Resolved)> = Vec::new();
        for store in self.siblings.values() {
            for (key, _) in store.iter() {
                if let Some(read) = store.read(key) {
                    out.push((key.clone(), Resolved::Siblings(read.siblings)));
                }
            }
        }
        for (key, state) in &self.crdts.crdts {
            out.push((key.clone(), Resolved::Crdt(state.clone())));
        }
        // A key lives in one store only: the order is the keys' (bytewise, as text sorts).
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Everything held, in one comparable value.
    pub(crate) fn fingerprint(&self) -> Vec<u8> {
        // An empty sibling store (created by a write that is gone, or an empty snapshot chunk)
        // holds nothing: leaving it out keeps equal states equal (the seed sweep found two
        // leaders with the same, empty, state and different digests, which never settled).
        let siblings: Vec<_> =
            self.siblings.iter().filter(|(_, s)| !s.is_empty()).map(|(max, s)| (*max, s.fingerprint())).collect();
        postcard::to_allocvec(&(self.lww.fingerprint(), siblings, &self.crdts.crdts)).unwrap_or_default()
    }

    // ----- snapshots --------------------------------------------------------------------------

    /// Everything held, cut into chunks of at most `max_keys` keys and `budget` bytes, each
    /// naming `vv` (ids, indexes and counts are left for the sender).
    pub(crate) fn snapshot_chunks(&self, vv: &VersionVector, max_keys: usize, budget: usize) -> Vec<SnapshotChunk> {
        let mut chunks: Vec<SnapshotChunk> = Vec::new();
        let empty = || SnapshotChunk {
            id: 0,
            index: 0,
            count: 0,
            vv: vv.clone(),
            registers: Vec::new(),
            siblings: Vec::new(),
            crdts: Vec::new(),
        };
        let mut current = empty();
        let mut bytes = 0;
        let room = |current: &mut SnapshotChunk, bytes: &mut usize, size: usize, chunks: &mut Vec<SnapshotChunk>| {
            if current.keys() > 0 && (current.keys() >= max_keys || *bytes + size > budget) {
                chunks.push(core::mem::replace(current, empty()));
                *bytes = 0;
            }
            *bytes += size;
        };
        for (key, register) in self.lww.registers() {
            room(&mut current, &mut bytes, wire::register_size_bound(key, register), &mut chunks);
            current.registers.push((key.clone(), register.clone()));
        }
        for store in self.siblings.values() {
            for (key, state) in store.iter() {
                let size = postcard::to_allocvec(state).map_or(budget, |b| b.len()) + key.as_str().len() + 3;
                room(&mut current, &mut bytes, size, &mut chunks);
                current.siblings.push((key.clone(), state.clone()));
            }
        }
        for (key, state) in &self.crdts.crdts {
            let size = postcard::to_allocvec(state).map_or(budget, |b| b.len()) + key.as_str().len() + 3;
            room(&mut current, &mut bytes, size, &mut chunks);
            current.crdts.push((key.clone(), state.clone()));
        }
        chunks.push(current);
        chunks
    }

    /// Checks the siblings and CRDT states of a snapshot chunk against the keyspaces here.
    pub(crate) fn check_chunk(&self, chunk: &SnapshotChunk) -> Result<(), &'static str> {
        for (key, state) in &chunk.siblings {
            if !matches!(self.resolution(key), Resolution::Siblings { .. }) {
                return Err("siblings for a key of another keyspace");
            }
            // Every live sibling is a write the sender applied. The key's context may name more:
            // writes a client saw at another leader and replaced, which the sender has not
            // received yet (they arrive later as already covered). Requiring the whole context
            // to be covered rejected such snapshots for ever (issue 16, bug 2).
            if !state.siblings().all(|(dot, _)| chunk.vv.contains(dot)) {
                return Err("siblings not covered by the snapshot's version vector");
            }
        }
        for (key, state) in &chunk.crdts {
            match self.resolution(key) {
                Resolution::Crdt(kind) if state.fits(kind) => {}
                _ => return Err("crdt state for a key of another keyspace or type"),
            }
        }
        Ok(())
    }

    /// Merges a checked chunk of a snapshot naming `vv` into the stores of a replica that had
    /// applied `applied`; reports what changed (with `notify`) and what last-write-wins
    /// discarded, in order.
    pub(crate) fn merge_chunk(
        &mut self,
        chunk: SnapshotChunk,
        vv: &VersionVector,
        applied: &VersionVector,
        notify: bool,
    ) -> Vec<Merged> {
        let mut out = Vec::new();
        for (key, register) in chunk.registers {
            if notify && self.lww.register(&key).is_none_or(|r| r.hlc < register.hlc) {
                out.push(Merged::Changed { key: key.clone(), dot: Some(register.dot) });
            }
            out.extend(self.merge_register(vv, applied, key, register));
        }
        for (key, state) in chunk.siblings {
            if let Resolution::Siblings { max_siblings } = self.resolution(&key) {
                let merged = self.sibling_store(max_siblings).merge_key(&key, &state);
                if notify && merged.changed() {
                    out.push(Merged::Changed { key, dot: None });
                }
            }
        }
        for (key, state) in chunk.crdts {
            self.crdt_sizes.remove(&key);
            let before = self.crdts.crdts.get(&key).cloned();
            let current = self.crdts.crdts.entry(key.clone()).or_insert_with(|| state.clone());
            let merged = current.merge(&state);
            debug_assert!(merged, "checked with the chunk");
            if notify && before.as_ref() != Some(current) {
                out.push(Merged::Changed { key, dot: None });
            }
        }
        out
    }

    /// Merges one register; a conflict is reported only when neither side had seen the other's
    /// write.
    fn merge_register(
        &mut self,
        snapshot_vv: &VersionVector,
        applied: &VersionVector,
        key: Key,
        register: Register,
    ) -> Option<Merged> {
        let incoming = register.dot;
        let loser = self.lww.merge_register(key.clone(), register)?;
        let mine_lost = loser.dot != incoming;
        let concurrent = if mine_lost { !snapshot_vv.contains(loser.dot) } else { !applied.contains(loser.dot) };
        if !concurrent {
            return mine_lost.then_some(Merged::Replaced {
                key,
                by: incoming,
                replaced: loser.dot,
                value: loser.value,
            });
        }
        let kept = if mine_lost { incoming } else { self.lww.register(&key).map_or(incoming, |r| r.dot) };
        Some(Merged::Discarded { key, kept, discarded: loser.dot, value: loser.value })
    }
}
