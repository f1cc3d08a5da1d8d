//! Anti-entropy: digests, acknowledgements and catch-ups ([`AntiEntropy`]).
//!
//! A digest carries the sender's version vector (what it applied), what waits in its causal
//! buffer for the receiver's writes, its stable vector and its recovery status. The receiver
//! answers with what the sender lacks — entries from its log in catch-up messages, or a snapshot
//! when the log was truncated past them — and remembers the vector as the sender's
//! acknowledgement. The acknowledgements say which leaders hold an entry (write concerns, not
//! forwarding what a peer has) and, met together, the *stable vector*: what every live leader
//! holds, which the log may truncate. Digests go to the neighbours every anti-entropy interval,
//! to every live member every acknowledgement interval, to random peers when gossiping, and to a
//! peer at once when a link to it appears or an entry from it stalls in the causal buffer.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::causality::{Dot, Seq, VersionVector};
use crate::entry::SharedEntry;
use crate::log::Missing;
use crate::rng::SeededRng;
use crate::trace::TraceEvent;
use crate::wire::{self, DigestReply, PeerMessage, RecoveryStatus, ReplicatedEntry};
use crate::{LeaderId, LeaderSet, WallTime};

use super::Replica;

/// What a replica knows of what its peers hold, and what it owes them.
#[derive(Debug)]
pub(crate) struct AntiEntropy {
    /// The latest version vector each peer reported in a digest.
    acked: BTreeMap<LeaderId, VersionVector>,
    /// The largest stable vector peers have sent: writes every live leader is known to hold.
    learned_stable: VersionVector,
    /// Peers to ask for a catch-up once the current input is handled (at most one digest each).
    pub(super) catch_up_wanted: LeaderSet,
    /// Per peer, when this leader last sent it a catch-up or snapshot and what the peer will hold
    /// once that arrives.
    recently_sent: BTreeMap<LeaderId, (WallTime, VersionVector)>,
    /// When each peer was last asked for a catch-up: asked again only after an
    /// `anti_entropy_interval`, so that a burst of refusals is one request, not a storm.
    catch_up_asked: BTreeMap<LeaderId, WallTime>,
    /// The peer choices of gossip rounds.
    pub(super) gossip_rng: SeededRng,
}

impl AntiEntropy {
    /// Knowing nothing yet; gossip draws from `gossip_rng`.
    pub(super) fn new(gossip_rng: SeededRng) -> Self {
        AntiEntropy {
            acked: BTreeMap::new(),
            learned_stable: VersionVector::new(),
            catch_up_wanted: LeaderSet::EMPTY,
            recently_sent: BTreeMap::new(),
            catch_up_asked: BTreeMap::new(),
            gossip_rng,
        }
    }

    /// A peer vouches, with its stable vector, that every live leader holds `stable`.
    pub(super) fn learn_stable(&mut self, stable: &VersionVector) {
        self.learned_stable.merge(stable);
    }

    /// `base` joined with the peers whose acknowledged vectors name `dot`.
    pub(super) fn known_holders(&self, dot: Dot, base: LeaderSet) -> LeaderSet {
        let mut holders = base;
        for (peer, vv) in &self.acked {
            if !holders.contains(*peer) && vv.contains(dot) {
                holders = holders.with(*peer);
            }
        }
        holders
    }

    /// The leaders known to hold `dot`, from `base` (its seen-by set) and the acknowledgements;
    /// every one of `live` when a peer's stable vector names it.
    pub(super) fn holders(&self, dot: Dot, base: LeaderSet, live: LeaderSet) -> LeaderSet {
        let holders = self.known_holders(dot, base);
        if self.learned_stable.contains(dot) {
            holders.union(live)
        } else {
            holders
        }
    }

    /// What departed leaders acknowledged says nothing about what they will hold if they return.
    pub(super) fn forget_departed(&mut self, live: LeaderSet) {
        self.acked.retain(|peer, _| live.contains(*peer));
        self.recently_sent.retain(|peer, _| live.contains(*peer));
    }

    /// The writes every live leader is known to have: the meet of their acknowledged vectors
    /// (`me`, which applied `applied`, among `live`).
    fn stable_vector(&self, me: LeaderId, live: LeaderSet, applied: &VersionVector) -> VersionVector {
        // What peers vouch for (their stable vectors), as far as this leader applied it.
        let mut learned = self.learned_stable.clone();
        learned.meet(applied);
        let mut stable = applied.clone();
        for peer in live.without(me) {
            match self.acked.get(&peer) {
                Some(vv) => stable.meet(vv),
                None => return learned,
            }
        }
        stable.merge(&learned);
        stable
    }
}

impl Replica {
    /// Replication lag, peer by peer (every other member, in id order): how many of the writes
    /// this leader has applied the peer had not reported holding in its latest digest, or `None`
    /// when it has sent none (it is new, down, or has not been heard from since this leader
    /// started). Digests come every anti-entropy interval, so the figure is at most that old.
    #[must_use]
    pub fn peer_lag(&self) -> Vec<(LeaderId, Option<u64>)> {
        let members = self.members();
        members
            .iter()
            .filter(|peer| *peer != self.id)
            .map(|peer| {
                let lag = self.anti_entropy.acked.get(&peer).map(|theirs| {
                    members.iter().map(|origin| self.applied.get(origin).0.saturating_sub(theirs.get(origin).0)).sum()
                });
                (peer, lag)
            })
            .collect()
    }

    /// The writes every live leader is known to have.
    pub(super) fn stable_vector(&self) -> VersionVector {
        self.anti_entropy.stable_vector(self.id, self.live, &self.applied)
    }

    /// Whether some live leader is a neighbour of every other (a star's hub, or everyone in
    /// all-to-all): it then hears every leader's version vector on its own.
    pub(super) fn has_hub(&self) -> bool {
        self.live.iter().any(|h| self.live.without(h).is_subset(self.topology.neighbours(self.live, h)))
    }

    /// A restarting leader needs an answer from every peer; otherwise only the one that is behind
    /// answers.
    pub(super) fn digest_reply(&self) -> DigestReply {
        if self.recovery.is_some() {
            DigestReply::Always
        } else {
            DigestReply::IfBehind
        }
    }

    pub(super) fn send_digest(&mut self, to: LeaderId, reply: DigestReply) {
        self.send_digest_with(to, reply, false);
    }

    /// A digest; `repair`: asking for what this leader lacks now, however young.
    fn send_digest_with(&mut self, to: LeaderId, reply: DigestReply, repair: bool) {
        self.metrics.digests_sent += 1;
        let (held, needed) = self.held_for(to);
        let stable = alloc::boxed::Box::new(self.stable_vector());
        let recovery = self.recovery_status(to);
        self.send(to, PeerMessage::Digest { vv: self.applied.clone(), reply, held, needed, stable, repair, recovery });
    }

    /// Sends a repair digest to each peer asked for a catch-up (at most one per peer per
    /// anti-entropy interval).
    pub(super) fn ask_for_catch_ups(&mut self, now: WallTime) {
        for peer in core::mem::take(&mut self.anti_entropy.catch_up_wanted) {
            let interval = self.config.anti_entropy_interval;
            if self.anti_entropy.catch_up_asked.get(&peer).is_some_and(|at| now < at.saturating_add(interval)) {
                continue;
            }
            self.anti_entropy.catch_up_asked.insert(peer, now);
            self.send_digest_with(peer, DigestReply::IfBehind, true);
        }
    }

    /// The sequence numbers of `peer`'s writes waiting undelivered in this leader's causal
    /// buffer. Every digest to `peer` carries them: a restarted peer counts any digest as this
    /// leader's answer, so each must tell it which of its own writes survive only here (the seed
    /// sweep found a restarted hub that took a plain anti-entropy digest for the answer and
    /// never voided the writes it had lost, leaving their successors parked for ever).
    ///
    /// Also the highest of `peer`'s sequence numbers that a waiting entry depends on: a write of
    /// another leader that saw a write of `peer`'s which then left with `peer`'s old state (a
    /// rejoin discards writes no peer was known to hold) waits for it until `peer` voids it.
    pub(super) fn held_for(&self, peer: LeaderId) -> (Vec<Seq>, Seq) {
        let mut needed = Seq(0);
        let mut held = Vec::new();
        for dot in self.buffer.dots() {
            if dot.origin == peer {
                held.push(dot.seq);
            }
            if let Some(waiting) = self.buffer.get(dot) {
                needed = needed.max(waiting.entry.deps.get(peer));
            }
        }
        (held, needed)
    }

    /// A digest from `from`: it applied `theirs`, wants an answer per `reply` (`repair`: now,
    /// however young what it lacks), waits for the writes of this leader's it `held` and
    /// `needed`, and says `status` of recoveries.
    pub(super) fn receive_digest(
        &mut self,
        now: WallTime,
        from: LeaderId,
        theirs: VersionVector,
        (reply, repair): (DigestReply, bool),
        (held, needed): (&[Seq], Seq),
        status: RecoveryStatus,
    ) {
        self.recovery_on_digest(now, from, &theirs, (held, needed), status);
        // What was sent to this peer less than an anti-entropy interval ago is probably still in
        // flight: count it as held, so that crossing digests do not send everything twice.
        let mut assumed = theirs.clone();
        match self.anti_entropy.recently_sent.get(&from) {
            Some((at, sent)) if now < at.saturating_add(self.config.anti_entropy_interval) => assumed.merge(sent),
            _ => {
                self.anti_entropy.recently_sent.remove(&from);
            }
        }
        // A restarting asker gets everything at once; others not what is still on its way.
        let logged_by =
            (reply != DigestReply::Always && !repair).then(|| now.saturating_sub(self.config.catch_up_grace));
        let missing: Result<Vec<SharedEntry>, ()> =
            match self.log.missing_for(&assumed, self.config.catch_up_entries_max, logged_by) {
                Missing::Nothing => Ok(Vec::new()),
                Missing::Entries(entries) => Ok(entries.into_iter().cloned().collect()),
                Missing::Snapshot => Err(()),
            };
        match missing {
            Ok(entries) if entries.is_empty() => {}
            Ok(entries) => {
                for entry in &entries {
                    if assumed.get(entry.dot.origin) < entry.dot.seq {
                        assumed.set(entry.dot.origin, entry.dot.seq);
                    }
                }
                self.anti_entropy.recently_sent.insert(from, (now, assumed));
                self.send_catch_up(from, entries);
            }
            Err(()) => {
                assumed.merge(&self.applied);
                self.anti_entropy.recently_sent.insert(from, (now, assumed));
                self.send_snapshot(from);
            }
        }
        let answer = match reply {
            DigestReply::Never => false,
            DigestReply::IfBehind => !theirs.le(&self.applied),
            DigestReply::Always => true,
        };
        if answer {
            self.send_digest_with(from, DigestReply::Never, false);
        }
        self.anti_entropy.acked.insert(from, theirs);
    }

    /// Sends `entries` in messages of at most `catch_up_batch_max` entries and one frame each.
    fn send_catch_up(&mut self, to: LeaderId, entries: Vec<SharedEntry>) {
        let budget = wire::MAX_FRAME_BYTES - wire::FRAME_HEADROOM_BYTES;
        let mut batch: Vec<ReplicatedEntry> = Vec::new();
        let mut bytes = 0;
        for entry in entries {
            let size = wire::entry_size_bound(&entry);
            if !batch.is_empty() && (batch.len() == self.config.catch_up_batch_max || bytes + size > budget) {
                self.send_catch_up_batch(to, core::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += size;
            let logged = self.log.get(entry.dot).map_or(LeaderSet::EMPTY, |l| l.seen_by);
            let seen_by = self.anti_entropy.known_holders(entry.dot, logged.with(self.id));
            batch.push(ReplicatedEntry { entry, seen_by });
        }
        if !batch.is_empty() {
            self.send_catch_up_batch(to, batch);
        }
    }

    fn send_catch_up_batch(&mut self, to: LeaderId, entries: Vec<ReplicatedEntry>) {
        self.metrics.catch_up_entries_sent += entries.len() as u64;
        self.metrics.entries_sent += entries.len() as u64;
        let dots = entries.iter().map(|e| e.entry.dot).collect();
        self.send(to, PeerMessage::Replicate { entries, catch_up: true });
        self.trace(|| TraceEvent::Sent { to, dots, catch_up: true });
    }
}
