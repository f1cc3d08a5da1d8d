//! Receiving an entry from a peer: validation, duplicates, seals, the causal buffer and the
//! clock's `max_offset` check, in that order.
//!
//! A malformed entry (one no correct origin could have produced) is rejected; a copy of what is
//! held is dropped as a duplicate, or rejected when its contents differ under the same dot; an
//! entry of a leader held sealed is refused; one too far ahead to fit the causal buffer is
//! refused and its sender asked for a catch-up; one stamped beyond `max_offset` is quarantined
//! and its origin reported. Everything else is forwarded along the topology, then applied if its
//! dependencies are, or parked in the causal buffer until they are. Every refusal is counted and
//! traced; none panics.

use crate::causality::Dot;
use crate::clock::{ClockError, HlcTimestamp};
use crate::crdt::{OrSetOp, PnCounterOp};
use crate::entry::{Entry, Op, SharedEntry};
use crate::log::{CausalBuffer, Waiting};
use crate::resolution::{CrdtOpPayload, CrdtState};
use crate::trace::{Rejection, TraceEvent};
use crate::wire::ReplicatedEntry;
use crate::{LeaderId, WallTime};

#[cfg(feature = "fault-injection")]
use super::Sabotage;
use super::{Alarm, Effect, Quarantined, Replica};

impl Replica {
    /// Checks that `entry` is one its origin could have produced and that fits here.
    fn validate(&self, entry: &Entry) -> Result<(), &'static str> {
        let Dot { origin, seq } = entry.dot;
        if !self.members.contains(origin) {
            return Err("origin is not a member");
        }
        if seq.0 == 0 {
            return Err("sequence numbers start at 1");
        }
        if entry.deps.get(origin).next() != seq {
            return Err("dependencies must name the origin's previous write");
        }
        if !entry.deps.leaders().is_subset(self.members) {
            return Err("dependencies name a non-member");
        }
        if entry.hlc.leader() != origin {
            return Err("timestamp was not stamped by the origin");
        }
        if !self.stores.op_fits(&entry.key, &entry.op) {
            return Err("operation does not fit the key's keyspace here");
        }
        if let Op::Crdt(payload) = &entry.op {
            payload_belongs_to(payload, entry)?;
        }
        let recovering = self.recovery.is_some();
        if !recovering && entry.deps.get(self.id) > self.applied.get(self.id) {
            return Err("dependencies name writes this leader never made");
        }
        if !recovering && origin == self.id && seq > self.applied.get(self.id) {
            return Err("an entry of this leader's that it never wrote");
        }
        Ok(())
    }

    /// Whether `entry` is a copy of what this leader already holds or parks under its dot:
    /// `Some(true)` a faithful copy, `Some(false)` other contents under the same dot, `None` new.
    fn held_copy(&self, entry: &Entry) -> Option<bool> {
        let dot = entry.dot;
        // Two voids of one dot say the same thing (nothing), whenever they were stamped: a
        // restarted leader may void again a dot its earlier life voided.
        let same = |held: &Entry| held == entry || (held.op == Op::Void && entry.op == Op::Void);
        if let Some(waiting) = self.buffer.get(dot) {
            return Some(same(&waiting.entry));
        }
        if self.applied.contains(dot) {
            // Truncated entries cannot be compared; a copy of one is taken as faithful.
            return Some(self.log.get(dot).is_none_or(|held| same(&held.entry)));
        }
        None
    }

    /// An entry from peer `from` (`catch_up`: in answer to a digest).
    pub(super) fn receive_entry(&mut self, now: WallTime, from: LeaderId, replicated: ReplicatedEntry, catch_up: bool) {
        self.input_at = now;
        let ReplicatedEntry { entry, seen_by } = replicated;
        let dot = entry.dot;
        if let Err(why) = self.validate(&entry) {
            self.reject(from, Rejection::MalformedEntry { dot, why: why.into() });
            return;
        }
        let seen = seen_by.with(from).with(self.id);
        match self.held_copy(&entry) {
            Some(false) => {
                self.reject(from, Rejection::DotConflict { dot });
                return;
            }
            #[cfg(feature = "fault-injection")]
            Some(true) if self.config.sabotage == Sabotage::SkipDuplicateSuppression => {
                self.reapply_duplicate(entry);
                return;
            }
            Some(true) => {
                self.metrics.duplicates_dropped += 1;
                self.log.mark_seen(dot, seen);
                self.buffer.mark_seen(dot, seen);
                self.trace(|| TraceEvent::DuplicateDropped { from, dot });
                return;
            }
            None => {}
        }
        // A recovering origin counts on what this leader reported of its writes: take in none
        // it did not hold then. Voids are its own decisions (or repeat them), and always safe.
        if self.sealed.contains(dot.origin) && entry.op != Op::Void {
            self.metrics.sealed_refused += 1;
            self.trace(|| TraceEvent::RefusedWhileSealed { from, dot });
            return;
        }
        // An entry so far ahead of its origin's applied sequence cannot be delivered before the
        // buffer would fill: refuse it and let a catch-up bring the whole stretch in order.
        let ahead = dot.seq.0.saturating_sub(self.applied.get(dot.origin).0);
        let no_room = ahead > self.buffer.capacity() as u64 || self.buffer.len() >= self.buffer.capacity();
        if no_room && !CausalBuffer::is_deliverable(&entry, &self.applied) {
            self.refuse_for_buffer(from, dot);
            return;
        }
        // A void touches no key, so its stamp decides nothing: it never moves the clock and is
        // never refused for it (a restarted leader with a bad clock must still fill its gaps).
        let local = self.clock.corrected_now(now);
        let observed = if entry.op == Op::Void { Ok(entry.hlc) } else { self.observe(entry.hlc, now, local) };
        if let Err(err) = observed {
            self.quarantine_entry(from, entry, err);
            return;
        }
        self.metrics.entries_received += 1;
        let clock = (entry.op != Op::Void).then_some((entry.hlc, local));
        self.trace(|| TraceEvent::Received { from, dot, catch_up, clock });
        // Forward on first receipt, whether the copy came along the topology or in a catch-up
        // (a catch-up can overtake the topology's copy), and only what this leader now holds
        // (applied or parked), so that the seen-by set it advertises is true.
        self.forward(now, &entry, Some(from), seen);
        if CausalBuffer::is_deliverable(&entry, &self.applied) || self.skips_dependency_check(&entry) {
            self.apply(entry, seen);
            return;
        }
        self.metrics.causal_waits += 1;
        let mut missing = entry.deps.missing_from(&self.applied);
        missing.sort();
        self.trace(|| TraceEvent::CausalWait { dot, missing });
        let inserted = self.buffer.insert(Waiting { entry, from, seen_by: seen, since: now });
        debug_assert!(inserted.is_ok(), "room was checked above");
    }

    /// An entry whose timestamp the clock refused (`err`): quarantined, rejected, and its origin
    /// reported when it runs ahead.
    fn quarantine_entry(&mut self, from: LeaderId, entry: SharedEntry, err: ClockError) {
        let dot = entry.dot;
        self.metrics.timestamps_rejected += 1;
        let reason = match err {
            ClockError::RemoteTooFarAhead { remote, ahead_by, max_offset } => {
                Rejection::TimestampTooFarAhead { dot, hlc: remote, ahead_by, max_offset }
            }
            _ => Rejection::MalformedEntry { dot, why: "timestamp refused by the clock".into() },
        };
        if self.quarantine.len() >= self.config.quarantine_max {
            self.quarantine.pop_front();
            self.metrics.quarantine_evicted += 1;
        }
        if let Rejection::TimestampTooFarAhead { ahead_by, .. } = &reason {
            let alarm = Alarm::ClockOffender { leader: dot.origin, ahead_by: *ahead_by };
            self.effects.push(Effect::Alarm(alarm));
        }
        self.quarantine.push_back(Quarantined {
            from,
            entry: SharedEntry::unwrap_or_clone(entry),
            reason: reason.clone(),
        });
        self.reject(from, reason);
    }

    /// Merges a remote timestamp into the HLC, bounded by `max_offset` (unless sabotaged); `local`
    /// is the corrected clock at raw time `now`, just read.
    fn observe(&mut self, remote: HlcTimestamp, now: WallTime, local: WallTime) -> Result<HlcTimestamp, ClockError> {
        #[cfg(feature = "fault-injection")]
        if self.config.sabotage == Sabotage::AcceptFarFutureTimestamps {
            return self.clock.observe_unbounded(remote, now);
        }
        #[cfg(not(feature = "fault-injection"))]
        let _ = now;
        self.clock.observe_corrected(remote, local)
    }

    /// Whether a mechanism is broken on purpose (always false without `fault-injection`).
    pub(super) fn sabotaged(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        if self.config.sabotage != Sabotage::None {
            return true;
        }
        false
    }

    /// [`Sabotage::SkipDependencyCheck`]: the entry is next from its origin, and that is all
    /// that is checked.
    fn skips_dependency_check(&self, _entry: &Entry) -> bool {
        #[cfg(feature = "fault-injection")]
        if self.config.sabotage == Sabotage::SkipDependencyCheck {
            return self.applied.get(_entry.dot.origin).next() == _entry.dot.seq;
        }
        false
    }

    /// [`Sabotage::SkipDuplicateSuppression`]: applies a copy of an applied entry once more, as
    /// a replica without duplicate suppression would.
    #[cfg(feature = "fault-injection")]
    fn reapply_duplicate(&mut self, entry: SharedEntry) {
        if !self.applied.contains(entry.dot) {
            return; // A parked copy: nothing to apply yet.
        }
        self.stores.reapply(&entry);
        self.metrics.applied += 1;
        let (dot, hlc) = (entry.dot, entry.hlc);
        self.trace(|| TraceEvent::Applied { dot, key: entry.key.clone(), hlc, deps: (&entry.deps).into() });
    }

    fn refuse_for_buffer(&mut self, from: LeaderId, dot: Dot) {
        self.metrics.buffer_full += 1;
        let capacity = self.buffer.capacity();
        self.trace(|| TraceEvent::BufferFull { dot, asked: from, capacity });
        self.anti_entropy.catch_up_wanted.insert(from);
    }
}

/// Whether a CRDT payload is one its entry's origin could have produced: operations and counter
/// deltas name only the origin, an LWW-register delta carries the entry's own timestamp, and new
/// OR-set adds are the origin's dots. (A snapshot merge trusts per-leader maxima, so a payload
/// speaking for another leader would corrupt it.)
fn payload_belongs_to(payload: &CrdtOpPayload, entry: &Entry) -> Result<(), &'static str> {
    let origin = entry.dot.origin;
    let ok = match payload {
        CrdtOpPayload::Counter(PnCounterOp::Increment { by, .. })
        | CrdtOpPayload::Counter(PnCounterOp::Decrement { by, .. }) => *by == origin,
        CrdtOpPayload::SetOp(OrSetOp::Add { dot, .. }) => dot.origin == origin,
        CrdtOpPayload::SetOp(OrSetOp::Remove { .. }) => true,
        CrdtOpPayload::Delta(CrdtState::GCounter(c)) => c.iter().all(|(leader, _)| leader == origin),
        CrdtOpPayload::Delta(CrdtState::PnCounter(c)) => {
            c.increments().iter().chain(c.decrements().iter()).all(|(leader, _)| leader == origin)
        }
        CrdtOpPayload::Delta(CrdtState::OrSet(s)) => s.iter().all(|e| s.dots(e).all(|d| d.origin == origin)),
        CrdtOpPayload::Delta(CrdtState::LwwRegister(r)) => r.timestamp() == Some(entry.hlc),
        CrdtOpPayload::Delta(_) => true,
    };
    if ok {
        Ok(())
    } else {
        Err("crdt payload speaks for another leader or time than its entry")
    }
}
