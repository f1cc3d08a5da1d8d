//! Forwarding entries along the topology, with optional batching ([`Outbox`]).
//!
//! Without [`ReplicaConfig::batch`] each entry leaves at once, in a message of its own, to every
//! forward target that is not known to hold it. With batching, entries bound for the same peer
//! wait in that peer's outbox and leave together: when the batch is full, before it would
//! outgrow a frame, at the end of the input (a zero flush interval), or when
//! [`super::Timer::Flush`] fires.

use alloc::vec::Vec;

use crate::entry::SharedEntry;
#[cfg(doc)]
use crate::replica::ReplicaConfig;
use crate::trace::TraceEvent;
use crate::wire::{self, PeerMessage, ReplicatedEntry};
use crate::{LeaderId, LeaderSet, WallTime};

use super::timers::Timer;
use super::Replica;

/// With batching: entries waiting to leave, per peer.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// By peer index: the waiting entries and the bound of their size in bytes. A flushed
    /// peer's vector is replaced by one as large as the batch that left, so that a steady load
    /// allocates once per batch instead of growing each one from empty.
    waiting: Vec<(Vec<ReplicatedEntry>, usize)>,
}

impl Outbox {
    /// Whether any entry waits.
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.iter().all(|(w, _)| w.is_empty())
    }

    /// What waits for `to` (made room for on first use).
    fn slot(&mut self, to: LeaderId) -> &mut (Vec<ReplicatedEntry>, usize) {
        if self.waiting.len() <= to.index() {
            self.waiting.resize_with(to.index() + 1, Default::default);
        }
        &mut self.waiting[to.index()]
    }

    /// Takes what waits for `to`, leaving an empty vector with room for as many.
    fn take(&mut self, to: LeaderId) -> Vec<ReplicatedEntry> {
        match self.waiting.get_mut(to.index()) {
            Some((entries, bytes)) if !entries.is_empty() => {
                *bytes = 0;
                let room = entries.len();
                core::mem::replace(entries, Vec::with_capacity(room))
            }
            _ => Vec::new(),
        }
    }
}

impl Replica {
    /// Sends `entry` to the topology's forward targets for this leader.
    pub(super) fn forward(&mut self, now: WallTime, entry: &SharedEntry, sender: Option<LeaderId>, seen: LeaderSet) {
        // Leaders known to hold it — from the copy's seen-by set and from acknowledged vectors —
        // are not sent it again. Skipping them is safe in every topology because each leader
        // forwards an entry when it first receives it, however it receives it.
        let seen = self.anti_entropy.known_holders(entry.dot, seen.with(self.id));
        let targets =
            self.topology.forward_targets(self.live, entry.dot.origin, sender, self.id, seen).difference(seen);
        let fanout = targets.len();
        let Some(batch) = self.config.batch.filter(|b| fanout >= b.min_fanout) else {
            for to in targets {
                self.metrics.entries_sent += 1;
                let msg = PeerMessage::Replicate {
                    entries: alloc::vec![ReplicatedEntry { entry: entry.clone(), seen_by: seen }],
                    catch_up: false,
                };
                self.send(to, msg);
                self.trace(|| TraceEvent::Sent { to, dots: alloc::vec![entry.dot], catch_up: false });
            }
            return;
        };
        let size = wire::entry_size_bound(entry);
        let budget = wire::MAX_FRAME_BYTES - wire::FRAME_HEADROOM_BYTES;
        for to in targets {
            let (waiting, bytes) = self.outbox.slot(to);
            if !waiting.is_empty() && *bytes + size > budget {
                self.flush_to(to);
            }
            let (waiting, bytes) = self.outbox.slot(to);
            waiting.push(ReplicatedEntry { entry: entry.clone(), seen_by: seen });
            *bytes += size;
            if waiting.len() >= batch.max_entries.max(1) {
                self.flush_to(to);
            }
        }
        if self.timers.get(Timer::Flush).is_none() && !self.outbox.is_empty() {
            self.timers.set(Timer::Flush, now.saturating_add(batch.flush_interval));
        }
    }

    /// Sends the entries waiting for `to` in one message.
    fn flush_to(&mut self, to: LeaderId) {
        let entries = self.outbox.take(to);
        if entries.is_empty() {
            return;
        }
        self.metrics.entries_sent += entries.len() as u64;
        self.metrics.batches_sent += 1;
        let dots = entries.iter().map(|e| e.entry.dot).collect();
        self.send(to, PeerMessage::Replicate { entries, catch_up: false });
        self.trace(|| TraceEvent::Sent { to, dots, catch_up: false });
    }

    /// Batching without a flush interval: what the input just handled produced leaves now,
    /// together.
    pub(super) fn flush_per_input(&mut self) {
        if self.config.batch.is_some_and(|b| b.flush_interval.is_zero()) {
            self.flush_all();
        }
    }

    /// Sends every waiting entry.
    pub(super) fn flush_all(&mut self) {
        // In id order, as before (traces depend on it).
        for i in 0..self.outbox.waiting.len() {
            if let Ok(to) = LeaderId::new(i) {
                self.flush_to(to);
            }
        }
        self.timers.stop(Timer::Flush);
    }
}
