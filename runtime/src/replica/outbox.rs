//! Forwarding entries along the topology, with optional batching ([`Outbox`]).
//!
//! Without [`ReplicaConfig::batch`] each entry leaves at once, in a message of its own, to every
//! forward target that is not known to hold it. With batching, entries bound for the same peer
//! wait in that peer's outbox and leave together: when the batch is full, before it would
//! outgrow a frame, at the end of the input (a zero flush interval), or when
//! [`super::Timer::Flush`] fires.

use alloc::collections::BTreeMap;
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
    /// Per peer, the waiting entries and the bound of their size in bytes.
    waiting: BTreeMap<LeaderId, (Vec<ReplicatedEntry>, usize)>,
}

impl Outbox {
    /// Whether any entry waits.
    fn is_empty(&self) -> bool {
        self.waiting.values().all(|(w, _)| w.is_empty())
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
            let (waiting, bytes) = self.outbox.waiting.entry(to).or_default();
            if !waiting.is_empty() && *bytes + size > budget {
                self.flush_to(to);
            }
            let (waiting, bytes) = self.outbox.waiting.entry(to).or_default();
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
        let Some((entries, _)) = self.outbox.waiting.remove(&to) else { return };
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
        let peers: Vec<LeaderId> = self.outbox.waiting.keys().copied().collect();
        for to in peers {
            self.flush_to(to);
        }
        self.timers.stop(Timer::Flush);
    }
}
