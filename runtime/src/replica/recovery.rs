//! Recovery of an in-memory leader: [`Recovery`], and the seals a leader holds on its
//! recovering peers.
//!
//! A leader that restarts ([`Replica::restarted`], [`Replica::rejoin`]) lost its state, its own
//! writes included, and does not know its last sequence number. Reusing one would give two
//! different writes the same dot, so it refuses writes until it has learned, from its peers, the
//! whole truth about its earlier life. The protocol (ARCHITECTURE.md, "Recovery of an in-memory
//! leader") runs in four phases, all in this file:
//!
//! 1. **Ask.** At [`Replica::start`] the leader begins a new *life* and sends every live peer a
//!    digest that must be answered. For a quiet period (`recovery_quiet`) it only listens:
//!    messages its earlier life sent may still be in flight, and an answer given before they
//!    land misses them.
//! 2. **Seal.** Once the quiet period is over ([`super::Timer::RecoveryQuiet`]), its digests ask
//!    each peer to *seal* it: a peer holding it sealed takes in none of its writes it did not
//!    already hold (see [`RecoveryStatus`]), and reports which of them it applied, holds
//!    undelivered, or needs ([`RecoveryReport`]). A report from a peer's new life pushes the
//!    settle time a quiet period further ([`super::Timer::RecoverySettle`]).
//! 3. **Settle.** When every peer it waits for ([`ReplicaConfig::restart_waits_for_all_members`])
//!    has reported and the settle time has passed, the reports are the whole truth: the leader
//!    fixes a [`RecoveryDecision`] (which writes come back, the high water of what anyone holds or
//!    needs) and every peer lifts its seal. A peer that reports from yet another life afterwards
//!    reopens the recovery.
//! 4. **Catch up.** Writes some peer applied come back by catch-up; writes some peer holds come
//!    back once their gaps are filled; every other sequence number up to the high water is
//!    *voided* (a void entry, applied everywhere, fills the gap). Once it applied everything up to
//!    the high water, caught up with every peer that said nothing waits for its old writes, and
//!    applied every entry in its own buffer that depends on one of them, the recovery is over
//!    ([`TraceEvent::CaughtUp`]) and `Replica::recovery` is `None`.
//!
//! What outlives a recovery stays in [`Replica`]: the leader's `life` (peers compare lives) and
//! `sealed`, the recovering *peers* this leader holds sealed.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::causality::{Dot, Seq, VersionVector};
use crate::entry::{Entry, Key, Op, SharedEntry};
#[cfg(doc)]
use crate::replica::ReplicaConfig;
use crate::replica::{ConfigError, Effect, Record};
use crate::trace::{Rejection, TraceEvent};
use crate::wire::{DigestReply, RecoveryPhase, RecoveryStatus};
use crate::{LeaderId, LeaderSet, WallTime};

use super::timers::Timer;
use super::Replica;

/// What a peer said, in a digest sent while it held the recovering leader sealed, of the
/// recovering leader's own writes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecoveryReport {
    /// The peer's life (see [`RecoveryStatus::life`]): a report from a new life means it lost
    /// its state.
    life: u32,
    /// The highest of them it applied.
    applied: Seq,
    /// Those waiting in its causal buffer.
    held: Vec<Seq>,
    /// The highest of them an entry waiting there depends on.
    needed: Seq,
}

/// What a recovering leader settled from its peers' sealed reports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecoveryDecision {
    /// The highest of its writes any peer applied: all of them come back by catch-up first.
    applied_max: Seq,
    /// The highest of its writes anyone holds or needs: it writes again only past it.
    high_water: Seq,
    /// Its writes peers hold undelivered: they come back; every other gap is voided.
    held: BTreeSet<Seq>,
    /// Per peer, what it had applied when it first said, after the decision, that nothing
    /// waiting there depends on a write of this leader's: this leader catches up to it.
    caught_up_to: BTreeMap<LeaderId, VersionVector>,
}

/// An in-progress recovery after a restart; the deadlines are [`Timer::RecoveryQuiet`] and
/// [`Timer::RecoverySettle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Peers whose sealed report is awaited before the leader settles.
    pub(super) catching_up: LeaderSet,
    /// The highest own sequence number a snapshot named.
    own_high_water: Seq,
    /// Whether the quiet period is over and digests ask peers to seal.
    sealing: bool,
    /// Once settled: which earlier writes come back and which are voided.
    decision: Option<RecoveryDecision>,
    /// What each peer last said of this leader's own writes while holding it sealed (the latest
    /// sealed report of a peer replaces its earlier ones, as a write parked at a peer can leave
    /// with that peer's state).
    reports: BTreeMap<LeaderId, RecoveryReport>,
}

impl Recovery {
    /// A recovery that waits for the reports of `peers`.
    pub(super) fn new(peers: LeaderSet) -> Self {
        Recovery {
            catching_up: peers,
            own_high_water: Seq(0),
            sealing: false,
            decision: None,
            reports: BTreeMap::new(),
        }
    }
}

impl Replica {
    /// The life a leader that (re)starts at `now` takes: its start in milliseconds, never 0.
    pub(super) fn life_at(now: WallTime) -> u32 {
        u32::try_from((now.as_nanos() / 1_000_000) % (1 << 32)).unwrap_or(1).max(1)
    }

    /// Phase 1: a restarted leader starts a new life and asks every live peer.
    pub(super) fn begin_recovery(&mut self, now: WallTime) {
        let Some(recovery) = &self.recovery else { return };
        let asked = recovery.catching_up.intersection(self.live);
        self.life = Self::life_at(now);
        if !self.sealed.is_empty() {
            let leaders = self.sealed;
            self.trace(|| TraceEvent::Sealed { leaders });
        }
        self.timers.set(Timer::RecoveryQuiet, now.saturating_add(self.config.recovery_quiet));
        self.timers.set(Timer::RecoverySettle, now.saturating_add(self.config.recovery_quiet));
        for peer in asked {
            self.send_digest(peer, self.digest_reply());
        }
    }

    /// Phase 2: ends a recovering leader's quiet period once it is over: from now on its
    /// digests ask peers to seal it. Returns whether it just ended.
    pub(super) fn start_sealing_if_due(&mut self, now: WallTime) -> bool {
        let Some(recovery) = self.recovery.as_mut() else { return false };
        if !self.timers.expired(Timer::RecoveryQuiet, now) {
            return false;
        }
        self.timers.stop(Timer::RecoveryQuiet);
        recovery.sealing = true;
        true
    }

    /// What this leader's digests to `to` say about recovery.
    pub(super) fn recovery_status(&self, to: LeaderId) -> RecoveryStatus {
        // Once settled, the seals have done their work (see `check_caught_up`).
        let phase = match &self.recovery {
            Some(recovery) if recovery.decision.is_none() && recovery.sealing => RecoveryPhase::Sealing,
            Some(recovery) if recovery.decision.is_none() => RecoveryPhase::Asking,
            _ => RecoveryPhase::Done,
        };
        RecoveryStatus { life: self.life, phase, sealed: self.sealed.contains(to) }
    }

    /// The peers a recovering leader still waits for: those that have not reported while
    /// holding it sealed, then (once settled) those it has not caught up with. Empty while it
    /// waits out a quiet period or for its own writes to come back.
    pub(super) fn recovery_waiting_for(&self) -> LeaderSet {
        let Some(recovery) = &self.recovery else { return LeaderSet::EMPTY };
        let Some(decision) = &recovery.decision else { return recovery.catching_up };
        let peers: LeaderSet = self
            .recovery_peers()
            .iter()
            .filter(|p| decision.caught_up_to.get(p).is_none_or(|vv| !vv.le(&self.applied)))
            .collect();
        peers.union(self.own_dependants_wait_for())
    }

    /// The leaders whose writes an entry waiting in this leader's *own* causal buffer still
    /// needs, when that entry depends on a write of this leader's (after a restart, necessarily
    /// one of its earlier life). Such an entry saw that write, and its CRDT deltas carry contexts
    /// that may name that write's CRDT dots (a voided write's included); until it is applied
    /// here, this leader's stores do not know those dots and a new write would mint one of them
    /// again, which every replica holding the entry then takes for seen and drops. What peers
    /// hold is covered by `caught_up_to`; this is the same rule for the leader's own buffer.
    /// The recovery oracle found it: a write waiting here (behind another recovering leader's
    /// lost writes) had seen an MV-register write of the earlier life, and the register's next
    /// write here reused that write's dot.
    fn own_dependants_wait_for(&self) -> LeaderSet {
        let mut leaders = LeaderSet::EMPTY;
        for waiting in self.buffer.waiting() {
            let entry = &waiting.entry;
            if entry.deps.get(self.id) == Seq(0) {
                continue;
            }
            let origin = entry.dot.origin;
            if self.applied.get(origin).next() < entry.dot.seq {
                leaders = leaders.with(origin);
            }
            for (leader, seq) in entry.deps.iter() {
                if seq > self.applied.get(leader) {
                    leaders = leaders.with(leader);
                }
            }
        }
        leaders.without(self.id)
    }

    /// Once settled: the live peers that have not said yet that nothing waiting there depends
    /// on a write of this leader's (anti-entropy asks them every interval).
    pub(super) fn recovery_not_caught_up_with(&self) -> LeaderSet {
        let Some(decision) = self.recovery.as_ref().and_then(|r| r.decision.as_ref()) else {
            return LeaderSet::EMPTY;
        };
        self.live.without(self.id).iter().filter(|p| !decision.caught_up_to.contains_key(p)).collect()
    }

    /// The peers a recovering leader hears from before it trusts what it knows: every member,
    /// or only the live ones without [`ReplicaConfig::restart_waits_for_all_members`].
    fn recovery_peers(&self) -> LeaderSet {
        let peers = self.members.without(self.id);
        if self.config.restart_waits_for_all_members {
            peers
        } else {
            peers.intersection(self.live)
        }
    }

    /// The live set changed to `live`: without [`ReplicaConfig::restart_waits_for_all_members`]
    /// (availability over safety), a member that is down neither keeps a recovery waiting nor
    /// keeps its writes out of this leader.
    pub(super) fn release_down_members(&mut self, live: LeaderSet) {
        if self.config.restart_waits_for_all_members {
            return;
        }
        if let Some(recovery) = self.recovery.as_mut() {
            recovery.catching_up = recovery.catching_up.intersection(live);
        }
        for leader in self.sealed.difference(live) {
            self.unseal(leader);
        }
    }

    /// The highest sequence number a peer's causal buffer can name beyond `base`: it holds at
    /// most `causal_buffer_max` entries, none further ahead than that.
    fn buffer_reach(&self, base: Seq) -> u64 {
        base.0.saturating_add(self.config.causal_buffer_max as u64)
    }

    /// A digest claiming writes of this leader no causal buffer could hold: believing it would
    /// make this leader void sequence numbers without end.
    fn reject_impossible_need(&mut self, from: LeaderId) {
        let why = "claims writes of the receiver beyond what a causal buffer can hold";
        self.reject(from, Rejection::MalformedDigest { why: why.into() });
    }

    /// Lifts the seal of `leader` (its recovery is done).
    pub(super) fn unseal(&mut self, leader: LeaderId) {
        if self.sealed.contains(leader) {
            self.sealed.remove(leader);
            self.trace(|| TraceEvent::Unsealed { leader });
        }
    }

    /// What a digest from `from` says about recovery — its own (it asks to be sealed or says it
    /// is done) and this leader's (a report of this leader's writes: `theirs`, and the writes it
    /// `held` and `needed`).
    pub(super) fn recovery_on_digest(
        &mut self,
        now: WallTime,
        from: LeaderId,
        theirs: &VersionVector,
        (held, needed): (&[Seq], Seq),
        status: RecoveryStatus,
    ) {
        match status.phase {
            RecoveryPhase::Sealing if !self.sealed.contains(from) => {
                self.sealed.insert(from);
                self.trace(|| TraceEvent::Sealed { leaders: LeaderSet::single(from) });
            }
            RecoveryPhase::Done => self.unseal(from),
            _ => {}
        }
        let Some(recovery) = &self.recovery else {
            if needed > self.applied.get(self.id) {
                self.void_what_peer_needs(now, from, needed);
            }
            return;
        };
        let known_life = recovery.reports.get(&from).map(|r| r.life);
        if let Some(decision) = &recovery.decision {
            let reach = self.buffer_reach(decision.high_water);
            if known_life.is_some_and(|life| life != status.life) {
                self.reopen_recovery(now);
            } else if needed > decision.high_water {
                // An entry that arrived at the peer after the decision depends on a write of
                // this leader's earlier life beyond what anyone held: void up to it too (nobody
                // holds it; see `check_caught_up`).
                if needed.0 <= reach {
                    if let Some(decision) = self.decision_mut() {
                        decision.high_water = needed;
                    }
                } else {
                    self.reject_impossible_need(from);
                }
            } else if held.is_empty() && needed.0 == 0 {
                // Nothing waits at this peer for a write of this leader's earlier life: what
                // depended on one (a write whose context names a CRDT dot of a voided write) is
                // applied there, and this leader catches up to it before it writes (or it would
                // mint that dot again).
                if let Some(decision) = self.decision_mut() {
                    decision.caught_up_to.entry(from).or_insert(theirs.clone());
                }
            }
        } else if !status.sealed {
            // A peer that no longer holds this leader sealed (it took a late "done" of this
            // leader's earlier life for this one's) may take in old writes again: its report
            // no longer counts, and it is asked to seal again.
            let peers = self.recovery_peers();
            if let Some(recovery) = self.recovery.as_mut() {
                if recovery.reports.remove(&from).is_some() {
                    recovery.catching_up = recovery.catching_up.with(from).intersection(peers);
                }
            }
        } else if recovery.sealing {
            self.take_report(now, from, theirs.get(self.id), (held, needed), (known_life, status.life));
        }
    }

    /// Phase 2: a sealed report from `from` — of this leader's writes it `applied`, `held` and
    /// `needed` — from its life `life` (`known_life`: the life of its report before).
    fn take_report(
        &mut self,
        now: WallTime,
        from: LeaderId,
        applied: Seq,
        (held, needed): (&[Seq], Seq),
        (known_life, life): (Option<u32>, u32),
    ) {
        // Only reports sent once this leader asked for seals count: a peer born sealed may
        // report earlier, but a late "done" of this leader's earlier life (in flight for up
        // to the quiet period) can still lift its seal, and it then takes in old writes
        // its report does not name (the recovery oracle found exactly that).
        //
        // A peer's buffer holds at most `causal_buffer_max` entries, none further ahead of
        // what it applied than that: a report beyond it is a lie (or a bug), and believing it
        // would make this leader void sequence numbers without end.
        let limit = self.buffer_reach(applied);
        let believable =
            held.len() <= self.config.causal_buffer_max && held.iter().all(|s| s.0 <= limit) && needed.0 <= limit;
        if !believable {
            self.reject_impossible_need(from);
            return;
        }
        // A report from a life of the peer not heard before (or one that lifted its seal
        // meanwhile): entries its earlier life sent may still be in flight, so the
        // conclusion waits a quiet period past it; they land at sealed peers and are
        // refused, or at peers whose reports still count them.
        if known_life != Some(life) {
            let settle_at = now.saturating_add(self.config.recovery_quiet);
            let settle_at = self.timers.get(Timer::RecoverySettle).map_or(settle_at, |at| at.max(settle_at));
            self.timers.set(Timer::RecoverySettle, settle_at);
        }
        if let Some(recovery) = self.recovery.as_mut() {
            let report = RecoveryReport { life, applied, held: held.to_vec(), needed };
            recovery.reports.insert(from, report);
            recovery.catching_up.remove(from);
        }
    }

    fn decision_mut(&mut self) -> Option<&mut RecoveryDecision> {
        self.recovery.as_mut()?.decision.as_mut()
    }

    /// After the recovery: an entry waiting at peer `from` depends on a write of an earlier
    /// life of this leader's that nobody held when it settled (every held one is at most what
    /// it applied since): no copy exists, so voiding the gap up to `needed` is safe, and the
    /// entry is delivered instead of waiting for ever.
    fn void_what_peer_needs(&mut self, now: WallTime, from: LeaderId, needed: Seq) {
        if needed.0 > self.buffer_reach(self.applied.get(self.id)) {
            self.reject_impossible_need(from);
            return;
        }
        while self.applied.get(self.id) < needed {
            let next = self.applied.get(self.id).next();
            if !self.void(now, next) {
                break;
            }
        }
    }

    /// A snapshot naming `vv` was adopted: while recovering, the own writes it names count
    /// towards the high water.
    pub(super) fn note_snapshot_of_own_writes(&mut self, vv: &VersionVector) {
        let own = vv.get(self.id);
        if let Some(recovery) = self.recovery.as_mut() {
            recovery.own_high_water = recovery.own_high_water.max(own);
        }
    }

    /// Phases 3 and 4. After a restart, once every peer has reported while holding this leader
    /// sealed and a quiet period has passed since the last report from a new life: the reports
    /// are the whole truth about this leader's earlier writes (no copy of one that nobody
    /// reported is still in flight), so the leader *settles* — fixes which of its sequence
    /// numbers some peer holds and the highest anyone holds or needs — and lifts the seals (from
    /// now on every old write that moves is one of those held). Its writes that some peer
    /// applied come back by catch-up; those some peer holds undelivered come back once their
    /// gaps are filled; the rest were lost with the crash, and the leader voids their sequence
    /// numbers (in order, as they come up) so that the writes after them can be delivered
    /// everywhere. Then it accepts writes.
    pub(super) fn check_caught_up(&mut self, now: WallTime) {
        let Some(recovery) = &self.recovery else { return };
        if recovery.decision.is_none() {
            if !recovery.catching_up.is_empty() || self.timers.pending(Timer::RecoverySettle, now) {
                return;
            }
            let reports = recovery.reports.values();
            let applied_max = reports.clone().map(|r| r.applied).max().unwrap_or_default();
            let high_water = reports
                .clone()
                .flat_map(|r| r.held.iter().copied().chain([r.applied, r.needed]))
                .fold(recovery.own_high_water, core::cmp::Ord::max);
            let held = reports.flat_map(|r| r.held.iter().copied()).collect();
            // This leader's own buffer counts too: entries of its own that came back and wait,
            // and entries of others that depend on writes of its own that left with its old
            // state.
            let (own_held, own_needed) = self.held_for(self.id);
            let high_water = own_held.into_iter().chain([own_needed]).fold(high_water, core::cmp::Ord::max);
            let caught_up_to = BTreeMap::new();
            if let Some(recovery) = self.recovery.as_mut() {
                recovery.decision = Some(RecoveryDecision { applied_max, high_water, held, caught_up_to });
            }
            self.trace(|| TraceEvent::Settled { high_water });
            // Every peer lifts its seal at once (those that miss this ask every interval).
            for peer in self.live.without(self.id) {
                self.send_digest(peer, DigestReply::Always);
            }
        }
        let Some(decision) = self.decision_mut() else { return };
        let (applied_max, high_water) = (decision.applied_max, decision.high_water);
        let (own_held, _) = self.held_for(self.id);
        while self.applied.get(self.id) >= applied_max && self.applied.get(self.id) < high_water {
            let next = self.applied.get(self.id).next();
            let held = self.decision_mut().is_some_and(|d| d.held.contains(&next));
            if held || own_held.contains(&next) {
                break; // It will come back once a peer can deliver it.
            }
            if !self.void(now, next) {
                break;
            }
        }
        if self.applied.get(self.id) >= high_water && self.recovery_waiting_for().is_empty() {
            self.recovery = None;
            self.persist(|| Record::Recovered);
            self.timers.stop(Timer::RecoveryQuiet);
            self.timers.stop(Timer::RecoverySettle);
            let vv = self.applied.clone();
            self.trace(|| TraceEvent::CaughtUp { vv: vv.into() });
        }
    }

    /// After this leader settled its recovery, a peer that reports from a new life lost what
    /// its earlier life held — perhaps writes of this leader's that were to come back. The
    /// decision no longer holds: seal and ask everyone again.
    fn reopen_recovery(&mut self, now: WallTime) {
        let peers = self.recovery_peers();
        let Some(recovery) = self.recovery.as_mut() else { return };
        recovery.decision = None;
        recovery.reports.clear();
        recovery.catching_up = peers;
        self.timers.set(Timer::RecoverySettle, now.saturating_add(self.config.recovery_quiet));
        for peer in peers.intersection(self.live) {
            self.send_digest(peer, DigestReply::Always);
        }
    }

    /// Phase 4: issues a void entry for this leader's sequence number `seq` (the next one).
    fn void(&mut self, now: WallTime, seq: Seq) -> bool {
        self.input_at = now;
        debug_assert_eq!(self.applied.get(self.id).next(), seq);
        // A void's stamp decides nothing (see `LeaderClock::stamp_inert`): a fenced leader voids
        // too, or its peers' entries that follow the gap wait for ever.
        let hlc = self.clock.stamp_inert(now);
        let Ok(key) = Key::new(crate::entry::VOID_KEY) else { return false };
        let dot = Dot::new(self.id, seq);
        let entry = SharedEntry::new(Entry { dot, hlc, deps: self.applied.clone(), key, op: Op::Void });
        self.metrics.voids_issued += 1;
        self.trace(|| TraceEvent::Voided { dot });
        let seen = LeaderSet::single(self.id);
        self.forward(now, &entry, None, seen);
        self.apply(entry, seen);
        true
    }
}

/// A leader the supervisor fenced rebuilds itself from its peers: a recovery of its own kind.
impl Replica {
    /// Starts a fenced leader over: like [`Replica::restarted`], but the new replica stays fenced
    /// by the cluster (it refuses writes until its clock is synchronised) and knows the live set.
    /// Its state — possibly shaped by its bad clock — is rebuilt from the healthy leaders; its own
    /// writes that they quarantined are not in it.
    pub fn rejoin(&self, now: WallTime) -> Result<Replica, ConfigError> {
        let mut fresh = Replica::restarted(self.id, self.members, self.topology.clone(), self.config.clone())?;
        fresh.cluster_fenced = true;
        fresh.notify_changes = self.notify_changes;
        fresh.clock = self.clock.clone();
        fresh.trace(|| TraceEvent::FencedByCluster);
        // Its own writes no peer is known to hold leave with the old state: say which.
        let unreplicated: Vec<Dot> = self
            .log
            .iter()
            .map(|l| l.entry.dot)
            .filter(|dot| dot.origin == self.id && self.holders(*dot) == LeaderSet::single(self.id))
            .collect();
        if !unreplicated.is_empty() {
            fresh.trace(|| TraceEvent::DiscardedAtRejoin { dots: unreplicated });
        }
        fresh.handle_topology(now, self.live);
        Ok(fresh)
    }

    /// The supervisor fenced this leader: its clock ran ahead at a peer, so whatever its writes
    /// decided here may be wrong. Unless it is fenced already, it *rejoins*: its state is rebuilt
    /// from the healthy leaders ([`Replica::rejoin`]), in place, and it writes again once its own
    /// clock synchronisation is within tolerance. Traced (`rejoining`, or why it could not).
    ///
    /// A durable leader ([`ReplicaConfig::durable`]) does not rejoin: it keeps everything it
    /// holds — every write on its disk is one it may have acknowledged — and only stops writing
    /// until its clock is synchronised. A peer that refused one of its entries for its stamp
    /// (quarantined it) takes it when anti-entropy sends it again once the peer's clock has
    /// passed the stamp, so nothing it acknowledged is discarded. (An in-memory leader rejoins
    /// and discards its own writes no peer is known to hold: see [`Replica::rejoin`].)
    pub fn handle_fence(&mut self, now: WallTime) {
        if self.cluster_fenced {
            return;
        }
        if self.config.durable {
            self.fence_by_cluster(true);
            return;
        }
        match self.rejoin(now) {
            Ok(mut fresh) => {
                // What the old state still had to say goes first, then the rejoin, then the new
                // state's own events.
                let mut effects = core::mem::take(&mut self.effects);
                effects.push(Effect::Trace(TraceEvent::Rejoining));
                effects.append(&mut fresh.effects);
                fresh.effects = effects;
                fresh.start(now);
                *self = fresh;
            }
            Err(e) => {
                self.fence_by_cluster(true);
                self.trace(|| TraceEvent::RejoinFailed { reason: e.to_string() });
            }
        }
    }
}
