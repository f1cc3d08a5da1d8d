//! The deadlines of a replica ([`Timer`], [`Timers`]) and what happens when they pass
//! ([`Replica::handle_timeout`]).
//!
//! Every deadline is one variant of a small closed enum, as in quinn-proto: the shell asks
//! [`Replica::poll_timeout`] when the earliest one is due and calls [`Replica::handle_timeout`]
//! then (or earlier: a call handles whatever is due and does the periodic housekeeping).
//!
//! Order of one timeout, when several deadlines are due at once (traces depend on it): the
//! batched entries leave first; then the clock's health check; then one digest to each peer that
//! some due deadline names (recovery's end of quiet, anti-entropy, acknowledgements, gossip,
//! sealed peers); then catch-up requests for entries stalled in the causal buffer, log
//! truncation, and the recovery's settle check.

use alloc::vec::Vec;

use crate::wire::DigestReply;
use crate::{LeaderId, LeaderSet, WallTime};

use super::Replica;

/// One deadline of a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// With batching: the entries waiting in the outboxes must leave.
    Flush,
    /// Anti-entropy digests to the neighbours (every `anti_entropy_interval`).
    AntiEntropy,
    /// Acknowledgement digests, so that the log can be truncated (every `ack_interval`).
    AckRound,
    /// Gossip digests to random live peers (every `gossip.interval`).
    Gossip,
    /// Recovering: the quiet period after the start is over, and digests ask peers to seal.
    RecoveryQuiet,
    /// Recovering: the earliest time to settle (a quiet period after the start and after the
    /// latest report from a peer's new life).
    RecoverySettle,
}

impl Timer {
    /// How many timers there are.
    const COUNT: usize = 6;
}

/// When each [`Timer`] is due; `None`: not armed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    deadlines: [Option<WallTime>; Timer::COUNT],
}

impl Timers {
    /// When `timer` is due, if it is armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<WallTime> {
        self.deadlines[timer as usize]
    }

    /// Arms `timer` for `at`.
    pub(crate) fn set(&mut self, timer: Timer, at: WallTime) {
        self.deadlines[timer as usize] = Some(at);
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    /// Whether `timer` is armed and due at `now`.
    pub(crate) fn expired(&self, timer: Timer, now: WallTime) -> bool {
        self.get(timer).is_some_and(|due| now >= due)
    }

    /// Whether `timer` is armed and not yet due at `now`.
    pub(crate) fn pending(&self, timer: Timer, now: WallTime) -> bool {
        self.get(timer).is_some_and(|due| now < due)
    }

    /// Whether the periodic `timer` is due at `now`: expired, or never armed (its first round
    /// happens at the first timeout).
    pub(crate) fn due_or_unset(&self, timer: Timer, now: WallTime) -> bool {
        self.get(timer).is_none_or(|due| now >= due)
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<WallTime> {
        self.deadlines.iter().flatten().min().copied()
    }
}

impl Replica {
    /// What a timeout does; see the [module documentation](self) for the order.
    pub(super) fn on_timeout(&mut self, now: WallTime) {
        if self.timers.expired(Timer::Flush, now) {
            self.flush_all();
        }
        self.clock.tick(now);
        self.update_fence();
        let catching_up = self.recovery.as_ref().map_or(LeaderSet::EMPTY, |r| r.catching_up);
        let mut targets = LeaderSet::EMPTY;
        if self.start_sealing_if_due(now) {
            targets = catching_up.intersection(self.live);
        }
        // Handled by the settle check below (and at every input from now on).
        if self.timers.expired(Timer::RecoverySettle, now) {
            self.timers.stop(Timer::RecoverySettle);
        }
        let anti_entropy_due = self.timers.due_or_unset(Timer::AntiEntropy, now);
        if anti_entropy_due {
            targets = self.neighbours().union(catching_up.intersection(self.live));
            targets = targets.union(self.recovery_not_caught_up_with());
            self.timers.set(Timer::AntiEntropy, now.saturating_add(self.config.anti_entropy_interval));
        }
        if let Some(interval) = self.config.ack_interval {
            if self.timers.due_or_unset(Timer::AckRound, now) {
                // With a hub that hears from everyone, acknowledgements follow the topology and
                // the hub's stable vector reaches the others in its digests; otherwise every
                // live leader tells every other.
                let ack_to = if self.has_hub() { self.neighbours() } else { self.live.without(self.id) };
                targets = targets.union(ack_to);
                self.timers.set(Timer::AckRound, now.saturating_add(interval));
            }
        }
        if let Some(gossip) = self.config.gossip {
            if self.timers.due_or_unset(Timer::Gossip, now) {
                let mut peers: Vec<LeaderId> = self.live.without(self.id).iter().collect();
                self.anti_entropy.gossip_rng.shuffle(&mut peers);
                targets = targets.union(peers.into_iter().take(gossip.fanout).collect());
                self.metrics.gossip_rounds += 1;
                self.timers.set(Timer::Gossip, now.saturating_add(gossip.interval));
            }
        }
        // A leader held sealed is asked, every interval, whether its recovery is done (its
        // answer lifts the seal): its "done" digest may have been lost.
        if anti_entropy_due {
            targets = targets.union(self.sealed.intersection(self.live));
        }
        for peer in targets {
            let reply = if self.sealed.contains(peer) { DigestReply::Always } else { self.digest_reply() };
            self.send_digest(peer, reply);
        }
        // An entry that has waited for its dependencies longer than the catch-up grace will not
        // see them arrive along the topology (they were lost, or cut off by a partition that
        // has healed): ask the peer it came from now rather than at the next digest.
        let overdue = now.saturating_sub(self.config.catch_up_grace);
        let stalled: LeaderSet =
            self.buffer.waiting().filter(|w| w.since < overdue && self.live.contains(w.from)).map(|w| w.from).collect();
        self.anti_entropy.catch_up_wanted = self.anti_entropy.catch_up_wanted.union(stalled);
        self.ask_for_catch_ups(now);
        let stable = self.stable_vector();
        let removed = self.log.truncate_stable(&stable, self.live);
        self.metrics.log_truncated += removed as u64;
        self.check_caught_up(now);
    }
}
