//! State snapshots, for a peer whose needs the log was truncated past ([`Snapshots`]).
//!
//! A sender cuts everything its stores hold into chunks (each under a frame and
//! `snapshot_chunk_registers` keys), all naming its version vector, and refuses — loudly, once
//! per peer and size — a snapshot of more than `snapshot_chunks_max` chunks. A receiver checks
//! each chunk on its own, stages the chunks of one snapshot per sender, and adopts it whole:
//! its newest timestamp goes through the clock's `max_offset` check, the stores merge it (a
//! join: the result does not depend on what was held before), the log's floor rises past what
//! it never held, and whatever waited for it in the causal buffer is applied.

use alloc::collections::BTreeMap;

use crate::causality::{Dot, Seq, VersionVector};
use crate::clock::ClockError;
use crate::replica::KeyEvent;
use crate::resolution::CrdtState;
use crate::store::SnapshotChunk;
use crate::trace::{Rejection, TraceEvent};
use crate::wire::{self, PeerMessage};
use crate::{LeaderId, WallTime};

use super::stores::Merged;
use super::{ChangeCause, Effect, Replica};

/// Snapshots in flight, both ways.
#[derive(Debug)]
pub(crate) struct Snapshots {
    /// Incoming snapshots being assembled, one per sender.
    staging: BTreeMap<LeaderId, StagedSnapshot>,
    /// The id of the next snapshot this leader sends.
    next_id: u64,
    /// Per peer, the size in chunks of the last snapshot refused to it for being too large (so
    /// that the refusal is traced once per size, not at every digest).
    refused: BTreeMap<LeaderId, u32>,
}

impl Snapshots {
    /// None in flight.
    pub(super) fn new() -> Self {
        Snapshots { staging: BTreeMap::new(), next_id: 1, refused: BTreeMap::new() }
    }

    /// A departed leader's half-sent snapshot will not be completed.
    pub(super) fn forget_departed(&mut self, live: crate::LeaderSet) {
        self.staging.retain(|peer, _| live.contains(*peer));
    }
}

/// An incoming snapshot being assembled from its chunks.
#[derive(Debug, Clone)]
struct StagedSnapshot {
    id: u64,
    count: u32,
    vv: VersionVector,
    chunks: BTreeMap<u32, SnapshotChunk>,
}

impl StagedSnapshot {
    fn new(chunk: &SnapshotChunk) -> Self {
        StagedSnapshot { id: chunk.id, count: chunk.count, vv: chunk.vv.clone(), chunks: BTreeMap::new() }
    }
}

impl Replica {
    pub(super) fn send_snapshot(&mut self, to: LeaderId) {
        let budget = wire::MAX_FRAME_BYTES - wire::FRAME_HEADROOM_BYTES;
        let chunks = self.stores.snapshot_chunks(&self.applied, self.config.snapshot_chunk_registers, budget);
        let count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
        if count > self.config.snapshot_chunks_max {
            // The receiver would reject it (it stages at most that many chunks): refuse loudly
            // instead of sending chunks that can never be adopted.
            self.metrics.snapshots_refused += 1;
            let max = self.config.snapshot_chunks_max;
            if self.snapshots.refused.insert(to, count) != Some(count) {
                self.trace(|| TraceEvent::SnapshotTooLarge { to, chunks: count, max });
            }
            return;
        }
        self.snapshots.refused.remove(&to);
        let id = self.snapshots.next_id;
        self.snapshots.next_id += 1;
        for (index, mut chunk) in (0u32..).zip(chunks) {
            (chunk.id, chunk.index, chunk.count) = (id, index, count);
            let keys = chunk.keys();
            self.metrics.snapshot_chunks_sent += 1;
            self.trace(|| TraceEvent::SnapshotSent { to, vv: (&chunk.vv).into(), registers: keys });
            self.send(to, PeerMessage::Snapshot(chunk));
        }
    }

    /// Checks one chunk on its own; `Err` is the rejection to report.
    fn check_chunk(&self, chunk: &SnapshotChunk) -> Result<(), Rejection> {
        let malformed = |why: &'static str| Rejection::MalformedSnapshot { id: chunk.id, why: why.into() };
        if chunk.count == 0 || chunk.index >= chunk.count {
            return Err(malformed("chunk index outside the chunk count"));
        }
        if chunk.count > self.config.snapshot_chunks_max {
            return Err(malformed("more chunks than snapshot_chunks_max"));
        }
        if !chunk.vv.leaders().is_subset(self.members) {
            return Err(malformed("version vector names a non-member"));
        }
        if self.recovery.is_none() && chunk.vv.get(self.id) > self.applied.get(self.id) {
            return Err(malformed("version vector names writes this leader never made"));
        }
        for (_, register) in &chunk.registers {
            let dot = register.dot;
            if !self.members.contains(dot.origin) || register.hlc.leader() != dot.origin || !chunk.vv.contains(dot) {
                return Err(malformed("register not covered by the snapshot's version vector"));
            }
        }
        self.stores.check_chunk(chunk).map_err(malformed)
    }

    pub(super) fn receive_snapshot(&mut self, now: WallTime, from: LeaderId, chunk: SnapshotChunk) {
        self.input_at = now;
        // A snapshot naming writes of a sealed leader beyond what this leader holds would take
        // them in (see `receive_entry`): refused whole; anti-entropy repeats it after the seal.
        if let Some(origin) = self.sealed.iter().find(|o| chunk.vv.get(*o) > self.applied.get(*o)) {
            self.snapshots.staging.remove(&from);
            self.metrics.sealed_refused += 1;
            let dot = Dot::new(origin, chunk.vv.get(origin));
            self.trace(|| TraceEvent::RefusedWhileSealed { from, dot });
            return;
        }
        if let Err(reason) = self.check_chunk(&chunk) {
            self.snapshots.staging.remove(&from);
            self.reject(from, reason);
            return;
        }
        let staged = self.snapshots.staging.entry(from).or_insert_with(|| StagedSnapshot::new(&chunk));
        if staged.id != chunk.id || staged.count != chunk.count || staged.vv != chunk.vv {
            // A newer snapshot from the same peer replaces the one being assembled.
            *staged = StagedSnapshot::new(&chunk);
        }
        staged.chunks.entry(chunk.index).or_insert(chunk);
        if staged.chunks.len() < staged.count as usize {
            return;
        }
        let Some(snapshot) = self.snapshots.staging.remove(&from) else { return };
        if let Err(reason) = self.observe_snapshot(now, from, &snapshot) {
            self.reject(from, reason);
            return;
        }
        self.adopt_snapshot(from, snapshot);
    }

    /// Merges the newest timestamp of a whole snapshot into the HLC, bounded by `max_offset`.
    fn observe_snapshot(&mut self, now: WallTime, from: LeaderId, snapshot: &StagedSnapshot) -> Result<(), Rejection> {
        let register_stamps = snapshot.chunks.values().flat_map(|c| &c.registers).map(|(_, r)| r.hlc);
        let crdt_stamps = snapshot.chunks.values().flat_map(|c| &c.crdts).filter_map(|(_, state)| match state {
            CrdtState::LwwRegister(r) => r.timestamp(),
            _ => None,
        });
        let Some(newest) = register_stamps.chain(crdt_stamps).max() else { return Ok(()) };
        let Err(err) = self.clock.observe(newest, now) else { return Ok(()) };
        self.metrics.timestamps_rejected += 1;
        Err(match err {
            ClockError::RemoteTooFarAhead { remote, ahead_by, max_offset } => {
                let dot = snapshot
                    .chunks
                    .values()
                    .flat_map(|c| &c.registers)
                    .find(|(_, r)| r.hlc == remote)
                    .map(|(_, r)| r.dot);
                let dot = dot.unwrap_or(Dot::new(from, Seq(0)));
                Rejection::TimestampTooFarAhead { dot, hlc: remote, ahead_by, max_offset }
            }
            _ => Rejection::MalformedSnapshot { id: snapshot.id, why: "timestamp refused by the clock".into() },
        })
    }

    /// Merges a whole, checked snapshot from `from` and applies what waited for it.
    fn adopt_snapshot(&mut self, from: LeaderId, snapshot: StagedSnapshot) {
        let vv = snapshot.vv;
        if self.config.durable {
            let chunks = snapshot.chunks.values().cloned().collect();
            self.persist(|| super::Record::Snapshot { vv: vv.clone(), chunks });
        }
        for chunk in snapshot.chunks.into_values() {
            for merged in self.stores.merge_chunk(chunk, &vv, &self.applied, self.notify_changes) {
                match merged {
                    Merged::Changed { key, dot } => {
                        self.effects.push(Effect::Changed { key, dot, cause: ChangeCause::Merge { from } });
                    }
                    Merged::Replaced { key, by, replaced, value } => {
                        if self.history.is_on() {
                            self.history.record(&key, KeyEvent::replaced(by, replaced, value.as_ref()));
                        }
                    }
                    Merged::Discarded { key, kept, discarded, value } => {
                        if self.history.is_on() {
                            let event = KeyEvent::discarded(kept, None, discarded, None, value.as_ref());
                            self.history.record(&key, event);
                        }
                        self.metrics.lww_discarded += 1;
                        self.metrics.lww_discarded_own += u64::from(discarded.origin == self.id);
                        self.trace(|| TraceEvent::LwwDiscarded { key, kept, discarded, value });
                    }
                }
            }
        }
        // Writes the log never held (beyond what was applied here): peers needing them get a
        // snapshot from here.
        let mut floor = VersionVector::new();
        for (origin, seq) in vv.iter().filter(|(origin, seq)| *seq > self.applied.get(*origin)) {
            floor.set(origin, seq);
        }
        self.log.raise_floor(&floor);
        self.applied.merge(&vv);
        self.metrics.snapshots_applied += 1;
        self.trace(|| TraceEvent::SnapshotApplied { from, vv: (&vv).into() });
        let covered = self.buffer.drop_covered(&self.applied);
        self.metrics.duplicates_dropped += covered.len() as u64;
        self.apply_ready();
        // A snapshot does not end the wait for its sender's digest: only a digest says which of
        // this leader's own writes wait undelivered in the sender's causal buffer (the seed
        // sweep found a restarted leader that never voided a lost write parked at its peers).
        self.note_snapshot_of_own_writes(&vv);
    }
}
