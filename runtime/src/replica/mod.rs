//! The leader as a state machine: [`Replica`].
//!
//! A `Replica` is the whole replication logic of one leader, in the sans-IO style of quinn-proto
//! and stateright: it performs no IO and reads no clock. The shell feeds it inputs through the
//! `handle_*` methods, each taking `now` (the leader's *raw* physical clock reading; the replica
//! applies its own NTP correction), and collects the outputs as data with
//! [`Replica::drain_effects`]: messages to send to peers and trace events to record.
//!
//! Call order, for a shell:
//! 1. [`Replica::new`] (or [`Replica::restarted`] after a crash), then [`Replica::start`].
//! 2. For each input — a client write ([`Replica::handle_write`], which also returns the client's
//!    answer), a frame or message from a peer ([`Replica::handle_frame`],
//!    [`Replica::handle_peer`]), a timer tick ([`Replica::handle_tick`]), a new live set
//!    ([`Replica::handle_topology`]) or a clock sample ([`Replica::handle_clock_sample`]) — call
//!    the method, then drain the effects and perform them in order.
//! 3. Reads ([`Replica::read`]) are answered from the local store and produce no effects.
//!
//! What happens to a write: the origin stamps it with its hybrid logical clock (clients never
//! supply timestamps; a fenced leader refuses), gives it the next dot, records its own version
//! vector as the write's dependencies, applies it, logs it and sends it to the forward targets of
//! the topology. A receiver drops duplicates (counted and traced), rejects entries stamped beyond
//! `max_offset` or malformed ones (counted and traced), forwards new ones along the topology,
//! applies those whose dependencies it has, parks the rest in the bounded causal buffer and
//! applies them as soon as they become ready. Anti-entropy digests — sent when a link appears and
//! every `anti_entropy_interval` — repair whatever the topology lost.

mod config;
mod effects;

#[cfg(feature = "fault-injection")]
pub use config::Sabotage;
pub use config::{BatchConfig, ConfigError, GossipConfig, ReplicaConfig};
pub use effects::{Alarm, ChangeCause, Effect, Metrics, Quarantined, ReadValue, WriteError, WriteReceipt};

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use roundtable_topologies::Topology;

use crate::causality::{Dot, VersionVector};
use crate::clock::{ClockError, ClockHealth, CorrectionEvent, HlcTimestamp, LeaderClock, LeaderClockConfig, NtpSample};
use crate::entry::{Entry, Key, Op, Value};
use crate::log::{CausalBuffer, Missing, ReplicationLog, Waiting};
use crate::resolution::{CrdtKind, CrdtOpPayload, CrdtState, CrdtStore, CrdtUpdate, Resolution, Update};
use crate::siblings::{CausalContext, SiblingOutcome, SiblingRead, SiblingStore};
use crate::store::{ApplyOutcome, LwwStore, Register, SnapshotChunk};
use crate::trace::{Rejection, TraceEvent};
use crate::wire::{self, DigestReply, PeerMessage, RecoveryPhase, RecoveryStatus, ReplicatedEntry};
use crate::{LeaderId, LeaderSet, WallTime};

/// What a peer said, in a digest sent while it held the recovering leader sealed, of the
/// recovering leader's own writes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecoveryReport {
    /// The peer's life (see [`RecoveryStatus::life`]): a report from a new life means it lost
    /// its state.
    life: u32,
    /// The highest of them it applied.
    applied: crate::causality::Seq,
    /// Those waiting in its causal buffer.
    held: Vec<crate::causality::Seq>,
    /// The highest of them an entry waiting there depends on.
    needed: crate::causality::Seq,
}

/// What a recovering leader settled from its peers' sealed reports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecoveryDecision {
    /// The highest of its writes any peer applied: all of them come back by catch-up first.
    applied_max: crate::causality::Seq,
    /// The highest of its writes anyone holds or needs: it writes again only past it.
    high_water: crate::causality::Seq,
    /// Its writes peers hold undelivered: they come back; every other gap is voided.
    held: alloc::collections::BTreeSet<crate::causality::Seq>,
    /// Per peer, what it had applied when it first said, after the decision, that nothing
    /// waiting there depends on a write of this leader's: this leader catches up to it.
    caught_up_to: BTreeMap<LeaderId, VersionVector>,
}

/// How many void entries a replica remembers for [`Replica::voided`].
pub const VOIDED_MAX: usize = 4096;

/// One leader's replication state machine. See the [module documentation](self).
#[derive(Debug)]
pub struct Replica {
    id: LeaderId,
    members: LeaderSet,
    live: LeaderSet,
    topology: Topology,
    config: ReplicaConfig,
    clock: LeaderClock,
    applied: VersionVector,
    log: ReplicationLog,
    buffer: CausalBuffer,
    store: LwwStore,
    /// Keys of siblings keyspaces, one store per sibling bound.
    siblings: BTreeMap<usize, SiblingStore>,
    /// Keys of CRDT keyspaces.
    crdts: CrdtStore,
    /// The latest version vector each peer reported in a digest.
    acked: BTreeMap<LeaderId, VersionVector>,
    /// After a restart: peers whose digest is awaited before writes are accepted.
    catching_up: LeaderSet,
    /// After a restart: the highest own sequence number a snapshot named.
    own_high_water: crate::causality::Seq,
    /// Whether the leader restarted and has not caught up yet (refuses writes meanwhile).
    recovering: bool,
    /// While recovering: when the quiet period ends and this leader asks its peers to seal it
    /// ([`ReplicaConfig::recovery_quiet`]); set by [`Replica::start`].
    recovery_trusted_from: Option<WallTime>,
    /// While recovering: whether the quiet period is over and digests ask peers to seal.
    recovery_sealing: bool,
    /// While recovering, once settled: which earlier writes come back and which are voided.
    recovery_decision: Option<RecoveryDecision>,
    /// While recovering: the earliest time to conclude — a quiet period after the start and
    /// after the latest report from a peer's new life (entries its earlier life sent may still
    /// be in flight).
    recovery_settle_at: WallTime,
    /// After a restart: what each peer last said of this leader's own writes while holding it
    /// sealed (the latest sealed report of a peer replaces its earlier ones, as a write parked
    /// at a peer can leave with that peer's state).
    recovery_reports: BTreeMap<LeaderId, RecoveryReport>,
    /// Recovering leaders this leader holds sealed: it refuses their entries it does not
    /// already hold until they say they are done (see [`RecoveryStatus`]).
    sealed: LeaderSet,
    /// This leader's life (see [`RecoveryStatus::life`]), set by [`Replica::start`].
    life: u32,
    /// With batching: entries waiting to leave, per peer, with their size bound in bytes.
    outbox: BTreeMap<LeaderId, (Vec<ReplicatedEntry>, usize)>,
    /// With batching: when the waiting entries must leave.
    next_flush: Option<WallTime>,
    /// The largest stable vector peers have sent: writes every live leader is known to hold.
    learned_stable: VersionVector,
    /// When the input being handled arrived (this leader's clock), for the log.
    input_at: WallTime,
    /// Void entries applied here, most recent last (bounded by `VOIDED_MAX`).
    voided: alloc::collections::VecDeque<Dot>,
    fenced: bool,
    cluster_fenced: bool,
    notify_changes: bool,
    gossip_rng: crate::rng::SeededRng,
    next_gossip: Option<WallTime>,
    next_anti_entropy: Option<WallTime>,
    next_ack_round: Option<WallTime>,
    /// Peers to ask for a catch-up once the current input is handled (at most one digest each).
    catch_up_wanted: LeaderSet,
    /// Per peer, when this leader last sent it a catch-up or snapshot and what the peer will hold
    /// once that arrives.
    recently_sent: BTreeMap<LeaderId, (WallTime, VersionVector)>,
    /// When each peer was last asked for a catch-up: asked again only after an
    /// `anti_entropy_interval`, so that a burst of refusals is one request, not a storm.
    catch_up_asked: BTreeMap<LeaderId, WallTime>,
    /// Incoming snapshots being assembled, one per sender.
    staging: BTreeMap<LeaderId, StagedSnapshot>,
    /// The id of the next snapshot this leader sends.
    next_snapshot_id: u64,
    /// Per peer, the size in chunks of the last snapshot refused to it for being too large (so
    /// that the refusal is traced once per size, not at every digest).
    snapshot_refused: BTreeMap<LeaderId, u32>,
    quarantine: alloc::collections::VecDeque<Quarantined>,
    metrics: Metrics,
    effects: Vec<Effect>,
}

impl Replica {
    /// A fresh leader `id` in a cluster of `members`, wired by `topology`. All members start live.
    pub fn new(
        id: LeaderId,
        members: LeaderSet,
        topology: Topology,
        config: ReplicaConfig,
    ) -> Result<Self, ConfigError> {
        if !members.contains(id) {
            return Err(ConfigError::NotAMember { leader: id, members });
        }
        topology.validate(members)?;
        for (name, value) in [
            ("causal_buffer_max", config.causal_buffer_max),
            ("log_entries_max", config.log_entries_max),
            ("catch_up_batch_max", config.catch_up_batch_max),
            ("catch_up_entries_max", config.catch_up_entries_max),
            ("snapshot_chunks_max", config.snapshot_chunks_max as usize),
            ("snapshot_chunk_registers", config.snapshot_chunk_registers),
            ("quarantine_max", config.quarantine_max),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroBound(name));
            }
        }
        Ok(Replica {
            id,
            members,
            live: members,
            topology,
            clock: LeaderClock::new(
                id,
                LeaderClockConfig { max_offset: config.max_offset, correction: config.correction },
            )?,
            applied: VersionVector::new(),
            log: ReplicationLog::new(config.log_entries_max),
            buffer: CausalBuffer::new(config.causal_buffer_max),
            store: LwwStore::new(),
            siblings: BTreeMap::new(),
            crdts: CrdtStore::default(),
            acked: BTreeMap::new(),
            catching_up: LeaderSet::EMPTY,
            own_high_water: crate::causality::Seq(0),
            recovering: false,
            recovery_trusted_from: None,
            recovery_sealing: false,
            recovery_decision: None,
            recovery_settle_at: WallTime::from_nanos(0),
            sealed: LeaderSet::EMPTY,
            life: 0,
            outbox: BTreeMap::new(),
            next_flush: None,
            input_at: WallTime::from_nanos(0),
            learned_stable: VersionVector::new(),
            recovery_reports: BTreeMap::new(),
            voided: alloc::collections::VecDeque::new(),
            fenced: false,
            cluster_fenced: false,
            notify_changes: false,
            gossip_rng: crate::rng::SeededRng::new(
                config.gossip.map_or(0, |g| g.seed) ^ (id.index() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
            next_gossip: None,
            next_anti_entropy: None,
            next_ack_round: None,
            catch_up_wanted: LeaderSet::EMPTY,
            catch_up_asked: BTreeMap::new(),
            recently_sent: BTreeMap::new(),
            staging: BTreeMap::new(),
            next_snapshot_id: 1,
            snapshot_refused: BTreeMap::new(),
            quarantine: alloc::collections::VecDeque::new(),
            metrics: Metrics::default(),
            effects: Vec::new(),
            config,
        })
    }

    /// A leader that restarts with empty state after a crash. It refuses writes until every live
    /// peer has sent it a digest (so that it learns its own last sequence number) and it has
    /// applied its own writes back; anti-entropy catches it up. Tell it the live set
    /// ([`Replica::handle_topology`]) before [`Replica::start`]; until then it waits for every
    /// member.
    ///
    /// By default it waits for every member, down ones included
    /// ([`ReplicaConfig::restart_waits_for_all_members`]). With that off it waits only for the
    /// live ones, and then a write of its own that, before the crash, reached only a leader that
    /// is down while this one restarts is invisible to it, and its next write reuses that dot.
    /// When the other leader returns, a copy of the old entry that it still holds in its log is
    /// rejected as a [`Rejection::DotConflict`] (traced), but replicas that hold different
    /// entries under one dot do not converge. Persisting the last sequence number across restarts
    /// would close the gap without the wait.
    pub fn restarted(
        id: LeaderId,
        members: LeaderSet,
        topology: Topology,
        config: ReplicaConfig,
    ) -> Result<Self, ConfigError> {
        let mut replica = Replica::new(id, members, topology, config)?;
        replica.catching_up = members.without(id);
        replica.recovering = true;
        // Born sealed: a peer that is recovering right now may have counted this leader's
        // earlier life as sealed; this life must not take in that peer's old writes either.
        replica.sealed = members.without(id);
        Ok(replica)
    }

    /// Starts the leader: schedules the periodic anti-entropy and, after a restart, asks every
    /// live peer for what it lacks (a link appearing starts anti-entropy).
    pub fn start(&mut self, now: WallTime) {
        // A fresh leader of a fresh cluster has nothing to exchange yet; a restarted one starts a
        // new life and asks every live peer at once.
        if self.recovering {
            self.life = u32::try_from((now.as_nanos() / 1_000_000) % (1 << 32)).unwrap_or(1).max(1);
            if !self.sealed.is_empty() {
                let leaders = self.sealed;
                self.trace(|| TraceEvent::Sealed { leaders });
            }
            self.recovery_trusted_from = Some(now.saturating_add(self.config.recovery_quiet));
            self.recovery_settle_at = now.saturating_add(self.config.recovery_quiet);
            for peer in self.catching_up.intersection(self.live) {
                self.send_digest(peer, self.digest_reply());
            }
        }
        self.next_anti_entropy = Some(now.saturating_add(self.config.anti_entropy_interval));
        self.next_ack_round = self.config.ack_interval.map(|d| now.saturating_add(d));
    }

    // ----- inputs ---------------------------------------------------------------------------

    /// A client write of `op` to `key`. Returns the receipt once the write is applied here (the
    /// local acknowledgement); the effects carry it to the peers.
    pub fn handle_write(&mut self, now: WallTime, key: Key, op: Op) -> Result<WriteReceipt, WriteError> {
        let update = match op {
            Op::Put(value) => Update::Put(value),
            Op::Delete => Update::Delete,
            Op::SiblingPut { value, context } => Update::PutWithContext { value: Some(value), context: context.into() },
            Op::SiblingDelete { context } => Update::PutWithContext { value: None, context: context.into() },
            Op::Void => return self.refuse(WriteError::NotAClientOp { op: "void" }),
            Op::Crdt(_) => return self.refuse(WriteError::NotAClientOp { op: "crdt payload" }),
        };
        self.handle_update(now, key, update)
    }

    fn refuse<T>(&mut self, error: WriteError) -> Result<T, WriteError> {
        self.metrics.writes_refused += 1;
        Err(error)
    }

    /// A client update of `key`: a put or delete, a siblings write with the context of an
    /// earlier read, or a CRDT update — whichever fits the key's keyspace. Returns the receipt
    /// once the write is applied here.
    pub fn handle_update(&mut self, now: WallTime, key: Key, update: Update) -> Result<WriteReceipt, WriteError> {
        self.update(now, key, update, false)
    }

    /// An update routed here by another leader because this one is the key's home (conflict
    /// avoidance). It is applied here even if this leader's view of the home differs (a live
    /// set in flux), so that a write is routed at most once.
    pub fn handle_routed_update(
        &mut self,
        now: WallTime,
        key: Key,
        update: Update,
    ) -> Result<WriteReceipt, WriteError> {
        self.update(now, key, update, true)
    }

    fn update(&mut self, now: WallTime, key: Key, update: Update, routed: bool) -> Result<WriteReceipt, WriteError> {
        self.input_at = now;
        let resolution = self.config.keyspaces.resolution(&key);
        let name = update.name();
        enum Planned {
            Ready(Op),
            Siblings(Option<Value>, VersionVector),
            Crdt(CrdtKind, CrdtUpdate),
        }
        let planned = match (resolution, update) {
            (Resolution::LastWriteWins | Resolution::HomeLeader, Update::Put(value)) => Planned::Ready(Op::Put(value)),
            (Resolution::LastWriteWins | Resolution::HomeLeader, Update::Delete) => Planned::Ready(Op::Delete),
            (Resolution::Siblings { .. }, Update::Put(value)) => Planned::Siblings(Some(value), VersionVector::new()),
            (Resolution::Siblings { .. }, Update::Delete) => Planned::Siblings(None, VersionVector::new()),
            (Resolution::Siblings { .. }, Update::PutWithContext { value, context }) => {
                Planned::Siblings(value, context.version_vector().clone())
            }
            (Resolution::Crdt(kind), Update::Crdt(update)) => Planned::Crdt(kind, update),
            _ => return self.refuse(WriteError::WrongResolution { key, update: name, resolution }),
        };
        if resolution == Resolution::HomeLeader && !routed {
            if let Some(home) = self.home_of(&key).filter(|home| *home != self.id) {
                return self.refuse(WriteError::NotHome { key, home });
            }
        }
        if let (Planned::Siblings(value, context), Resolution::Siblings { max_siblings }) = (&planned, resolution) {
            let context = CausalContext::from(context.clone());
            if let Err(e) = self.sibling_store(max_siblings).check_write(&key, &context, value.as_ref()) {
                return self.refuse(e.into());
            }
        }
        if self.cluster_fenced {
            if matches!(self.clock.health(), ClockHealth::Synchronized { .. }) {
                self.fence_by_cluster(false);
            } else {
                return self.refuse(WriteError::FencedByCluster { leader: self.id });
            }
        }
        if self.recovering {
            self.metrics.writes_refused += 1;
            return Err(WriteError::CatchingUp { leader: self.id, waiting_for: self.recovery_waiting_for() });
        }
        let hlc = match self.clock.stamp(now) {
            Ok(hlc) => hlc,
            Err(source) => {
                self.metrics.writes_refused += 1;
                self.update_fence();
                return Err(WriteError::Fenced { leader: self.id, source });
            }
        };
        let op = match planned {
            Planned::Ready(op) => op,
            Planned::Siblings(Some(value), context) => Op::SiblingPut { value, context },
            Planned::Siblings(None, context) => Op::SiblingDelete { context },
            Planned::Crdt(kind, update) => match self.crdts.crdt_delta(&key, kind, self.id, hlc, &update) {
                Some(payload) => {
                    let budget = (wire::MAX_FRAME_BYTES - wire::FRAME_HEADROOM_BYTES) / 2;
                    let now_bytes =
                        self.crdts.crdts.get(&key).map_or(0, |s| postcard::to_allocvec(s).map_or(0, |b| b.len()));
                    let delta_bytes = postcard::to_allocvec(&payload).map_or(budget, |b| b.len());
                    if now_bytes + delta_bytes > budget {
                        return self.refuse(WriteError::KeyTooLarge { key, limit: budget });
                    }
                    Op::Crdt(payload)
                }
                None => return self.refuse(WriteError::WrongResolution { key, update: name, resolution }),
            },
        };
        let dot = Dot::new(self.id, self.applied.get(self.id).next());
        let entry = Entry { dot, hlc, deps: self.applied.clone(), key, op };
        self.metrics.writes_accepted += 1;
        self.trace(|| TraceEvent::WriteAccepted { dot, key: entry.key.clone(), hlc });
        let seen = LeaderSet::single(self.id);
        self.forward(now, &entry, None, seen);
        self.apply(entry, seen);
        Ok(WriteReceipt { dot, hlc })
    }

    /// The current register of `key` at this leader (`None` when no write to it was applied).
    #[must_use]
    pub fn read(&self, key: &Key) -> Option<ReadValue> {
        self.store.register(key).map(|r| ReadValue { value: r.value.clone(), dot: r.dot, hlc: r.hlc })
    }

    /// The supervisor fences (or unfences) this leader. A fenced leader refuses writes until its
    /// own clock synchronisation reports it within tolerance; then the fence lifts by itself.
    pub fn fence_by_cluster(&mut self, on: bool) {
        if on != self.cluster_fenced {
            self.cluster_fenced = on;
            self.trace(|| if on { TraceEvent::FencedByCluster } else { TraceEvent::Unfenced });
        }
    }

    /// Whether the supervisor has fenced this leader (see [`Replica::fence_by_cluster`]).
    #[must_use]
    pub fn is_fenced_by_cluster(&self) -> bool {
        self.cluster_fenced
    }

    /// Turns [`Effect::Changed`] notifications on or off (off by default).
    pub fn notify_changes(&mut self, on: bool) {
        self.notify_changes = on;
    }

    /// Asks every live peer for its version vector now (a digest they answer at once), so that
    /// [`Replica::holders`] catches up quickly — for a write concern.
    pub fn request_acks(&mut self) {
        for peer in self.live.without(self.id) {
            self.send_digest(peer, DigestReply::Always);
        }
    }

    /// The home leader of `key` among the leaders this replica believes live (rendezvous
    /// hashing); `None` when it believes nobody live.
    #[must_use]
    pub fn home_of(&self, key: &Key) -> Option<LeaderId> {
        roundtable_topologies::rendezvous_home(key.as_str().as_bytes(), self.live)
    }

    /// The live siblings of `key` (a key of a siblings keyspace) and the causal context to write
    /// back with; `None` when it has no live value here.
    #[must_use]
    pub fn read_siblings(&self, key: &Key) -> Option<SiblingRead> {
        match self.config.keyspaces.resolution(key) {
            Resolution::Siblings { max_siblings } => self.siblings.get(&max_siblings)?.read(key),
            _ => None,
        }
    }

    /// Every key of a siblings or CRDT keyspace with what a reader sees, as stable text, in key
    /// order (siblings as `[dot=value …]`, CRDTs as [`CrdtState::render`]).
    #[must_use]
    pub fn render_resolved(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for store in self.siblings.values() {
            for (key, _) in store.iter() {
                if let Some(read) = store.read(key) {
                    let values: Vec<String> = read.siblings.iter().map(|(d, v)| alloc::format!("{d}={v}")).collect();
                    out.push((key.as_str().into(), alloc::format!("[{}]", values.join(" "))));
                }
            }
        }
        for (key, state) in &self.crdts.crdts {
            out.push((key.as_str().into(), state.render()));
        }
        out.sort();
        out
    }

    /// The state of `key` (a key of a CRDT keyspace); `None` when nothing was written to it here.
    #[must_use]
    pub fn read_crdt(&self, key: &Key) -> Option<&CrdtState> {
        self.crdts.crdts.get(key)
    }

    /// Everything this replica holds, in one comparable value: two replicas that applied the
    /// same writes have equal digests.
    #[must_use]
    pub fn state_digest(&self) -> Vec<u8> {
        // An empty sibling store (created by a write that is gone, or an empty snapshot chunk)
        // holds nothing: leaving it out keeps equal states equal (the seed sweep found two
        // leaders with the same, empty, state and different digests, which never settled).
        let siblings: Vec<_> =
            self.siblings.iter().filter(|(_, s)| !s.is_empty()).map(|(max, s)| (*max, s.fingerprint())).collect();
        postcard::to_allocvec(&(self.store.fingerprint(), siblings, &self.crdts.crdts)).unwrap_or_default()
    }

    /// A frame that arrived on the link from `link_from`. Undecodable frames and frames whose
    /// envelope names another sender are rejected (counted and traced); the replica keeps running.
    pub fn handle_frame(&mut self, now: WallTime, link_from: LeaderId, frame: &[u8]) {
        match wire::decode(frame) {
            Err(e) => self.reject(link_from, Rejection::Frame(e)),
            Ok(env) if env.from != link_from => {
                self.reject(link_from, Rejection::SenderMismatch { claimed: env.from, actual: link_from })
            }
            Ok(env) => self.handle_peer(now, link_from, env.body),
        }
    }

    /// A message from peer `from`.
    pub fn handle_peer(&mut self, now: WallTime, from: LeaderId, msg: PeerMessage) {
        if from == self.id || !self.members.contains(from) {
            self.reject(from, Rejection::NotAPeer { from });
            return;
        }
        match msg {
            PeerMessage::Replicate { entries, catch_up } => {
                for replicated in entries {
                    self.receive_entry(now, from, replicated, catch_up);
                }
            }
            PeerMessage::Digest { vv, reply, held, needed, stable, repair, recovery } => {
                self.learned_stable.merge(&stable);
                self.receive_digest(now, from, vv, (reply, repair), (&held, needed), recovery);
            }
            PeerMessage::Snapshot(chunk) => self.receive_snapshot(now, from, chunk),
        }
        self.ask_for_catch_ups(now);
        self.check_caught_up(now);
    }

    /// A timer tick: periodic anti-entropy, log truncation and the clock's health check. Call it
    /// at least every `anti_entropy_interval`; [`Replica::next_timeout`] says when it is due.
    pub fn handle_tick(&mut self, now: WallTime) {
        if self.next_flush.is_some_and(|due| now >= due) {
            self.flush_all();
        }
        self.clock.tick(now);
        self.update_fence();
        let mut targets = LeaderSet::EMPTY;
        if self.start_sealing_if_due(now) {
            targets = self.catching_up.intersection(self.live);
        }
        let anti_entropy_due = self.next_anti_entropy.is_none_or(|due| now >= due);
        if anti_entropy_due {
            targets = self.neighbours().union(self.catching_up.intersection(self.live));
            if let Some(decision) = &self.recovery_decision {
                let pending = self.live.without(self.id).iter().filter(|p| !decision.caught_up_to.contains_key(p));
                targets = targets.union(pending.collect());
            }
            self.next_anti_entropy = Some(now.saturating_add(self.config.anti_entropy_interval));
        }
        if let Some(interval) = self.config.ack_interval {
            if self.next_ack_round.is_none_or(|due| now >= due) {
                // With a hub that hears from everyone, acknowledgements follow the topology and
                // the hub's stable vector reaches the others in its digests; otherwise every
                // live leader tells every other.
                let ack_to = if self.has_hub() { self.neighbours() } else { self.live.without(self.id) };
                targets = targets.union(ack_to);
                self.next_ack_round = Some(now.saturating_add(interval));
            }
        }
        if let Some(gossip) = self.config.gossip {
            if self.next_gossip.is_none_or(|due| now >= due) {
                let mut peers: Vec<LeaderId> = self.live.without(self.id).iter().collect();
                self.gossip_rng.shuffle(&mut peers);
                targets = targets.union(peers.into_iter().take(gossip.fanout).collect());
                self.metrics.gossip_rounds += 1;
                self.next_gossip = Some(now.saturating_add(gossip.interval));
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
        self.catch_up_wanted = self.catch_up_wanted.union(stalled);
        self.ask_for_catch_ups(now);
        let stable = self.stable_vector();
        let removed = self.log.truncate_stable(&stable, self.live);
        self.metrics.log_truncated += removed as u64;
        self.check_caught_up(now);
    }

    /// With batching ([`ReplicaConfig::batch`]): sends the waiting entries whose flush interval
    /// is over. Cheaper than [`handle_tick`](Self::handle_tick), for a timer at the flush
    /// interval.
    pub fn handle_flush(&mut self, now: WallTime) {
        if self.next_flush.is_some_and(|due| now >= due) {
            self.flush_all();
        }
    }

    /// With batching: when the entries waiting to leave must be sent (call
    /// [`handle_flush`](Self::handle_flush) then); `None` when nothing waits.
    #[must_use]
    pub fn next_flush(&self) -> Option<WallTime> {
        self.next_flush
    }

    /// When the next tick is due.
    #[must_use]
    pub fn next_timeout(&self) -> Option<WallTime> {
        [
            self.next_anti_entropy,
            self.next_ack_round,
            self.recovery_trusted_from.filter(|_| self.recovering),
            Some(self.recovery_settle_at).filter(|_| self.recovering),
            self.next_flush,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The live set changed (a leader died or returned). Rewires along the topology and starts
    /// anti-entropy on every link that appeared.
    pub fn handle_topology(&mut self, now: WallTime, live: LeaderSet) {
        let live = live.intersection(self.members);
        if live == self.live {
            return;
        }
        let before = self.neighbours();
        self.live = live;
        let after = self.neighbours();
        if self.config.trace {
            let edges = self.topology.edges(live);
            self.trace(|| TraceEvent::Rewired { live, edges });
        }
        for peer in after.difference(before) {
            self.send_digest(peer, self.digest_reply());
        }
        if !self.config.restart_waits_for_all_members {
            self.catching_up = self.catching_up.intersection(live);
            // Availability over safety (see the field's docs): a member that is down does not
            // keep its writes out of this leader.
            for leader in self.sealed.difference(live) {
                self.unseal(leader);
            }
        }
        // What a departed leader acknowledged says nothing about what it will hold if it returns.
        self.acked.retain(|peer, _| live.contains(*peer));
        self.recently_sent.retain(|peer, _| live.contains(*peer));
        self.staging.retain(|peer, _| live.contains(*peer));
        self.check_caught_up(now);
    }

    /// A four-timestamp sample against a time reference, for the NTP correction.
    pub fn handle_clock_sample(&mut self, now: WallTime, sample: NtpSample) -> Result<CorrectionEvent, ClockError> {
        let event = self.clock.add_sample(now, sample)?;
        if !matches!(event, CorrectionEvent::Unchanged) {
            self.trace(|| TraceEvent::ClockCorrected(event));
        }
        self.update_fence();
        Ok(event)
    }

    /// Takes the effects produced so far, in the order they must be performed, as a vector
    /// (no copy: the replica starts a new one).
    pub fn take_effects(&mut self) -> Vec<Effect> {
        self.flush_per_input();
        core::mem::take(&mut self.effects)
    }

    /// Takes the effects produced so far, in the order they must be performed.
    pub fn drain_effects(&mut self) -> alloc::vec::Drain<'_, Effect> {
        self.flush_per_input();
        self.effects.drain(..)
    }

    // ----- accessors ------------------------------------------------------------------------

    /// This leader's id.
    #[must_use]
    pub fn id(&self) -> LeaderId {
        self.id
    }

    /// The cluster's members.
    #[must_use]
    pub fn members(&self) -> LeaderSet {
        self.members
    }

    /// The leaders this replica currently believes live.
    #[must_use]
    pub fn live(&self) -> LeaderSet {
        self.live
    }

    /// The topology.
    #[must_use]
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The writes applied here.
    #[must_use]
    pub fn applied(&self) -> &VersionVector {
        &self.applied
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &LwwStore {
        &self.store
    }

    /// The replication log.
    #[must_use]
    pub fn log(&self) -> &ReplicationLog {
        &self.log
    }

    /// How many entries wait for their dependencies.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.buffer.len()
    }

    /// The counters.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The clock's health (synchronized, fenced, …).
    #[must_use]
    pub fn clock_health(&self) -> ClockHealth {
        self.clock.health()
    }

    /// The leader's clock (HLC and NTP correction).
    #[must_use]
    pub fn clock(&self) -> &LeaderClock {
        &self.clock
    }

    /// Whether this leader refuses writes because its clock is out of tolerance.
    #[must_use]
    pub fn is_fenced(&self) -> bool {
        self.fenced
    }

    /// Whether this leader still catches up after a restart (and refuses writes).
    #[must_use]
    pub fn is_catching_up(&self) -> bool {
        self.recovering
    }

    /// Void entries applied here — writes lost with their leader's crash — oldest first (the
    /// last [`VOIDED_MAX`]).
    pub fn voided(&self) -> impl Iterator<Item = Dot> + '_ {
        self.voided.iter().copied()
    }

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

    /// Entries rejected for far-future timestamps, oldest first (bounded by `quarantine_max`).
    pub fn quarantine(&self) -> impl Iterator<Item = &Quarantined> {
        self.quarantine.iter()
    }

    /// The leaders known to hold `dot`: the seen-by set the entry travelled with, joined with
    /// the version vectors peers acknowledged. Answers write concerns.
    #[must_use]
    pub fn holders(&self, dot: Dot) -> LeaderSet {
        let mut holders = self.log.get(dot).map_or(LeaderSet::EMPTY, |l| l.seen_by);
        if self.applied.contains(dot) {
            holders.insert(self.id);
        }
        for (peer, vv) in &self.acked {
            if vv.contains(dot) {
                holders.insert(*peer);
            }
        }
        // A peer's stable vector vouches that every live leader holds it.
        if self.learned_stable.contains(dot) {
            holders = holders.union(self.live);
        }
        holders
    }

    // ----- internals ------------------------------------------------------------------------

    fn neighbours(&self) -> LeaderSet {
        self.topology.neighbours(self.live, self.id)
    }

    fn trace(&mut self, event: impl FnOnce() -> TraceEvent) {
        if self.config.trace {
            self.effects.push(Effect::Trace(event()));
        }
    }

    fn send(&mut self, to: LeaderId, msg: PeerMessage) {
        self.metrics.messages_sent += 1;
        self.effects.push(Effect::Send { to, msg });
    }

    fn send_digest(&mut self, to: LeaderId, reply: DigestReply) {
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

    /// What this leader's digests to `to` say about recovery.
    fn recovery_status(&self, to: LeaderId) -> RecoveryStatus {
        // Once settled, the seals have done their work (see `check_caught_up`).
        let phase = match (self.recovering && self.recovery_decision.is_none(), self.recovery_sealing) {
            (false, _) => RecoveryPhase::Done,
            (true, false) => RecoveryPhase::Asking,
            (true, true) => RecoveryPhase::Sealing,
        };
        RecoveryStatus { life: self.life, phase, sealed: self.sealed.contains(to) }
    }

    /// The peers a recovering leader still waits for: those that have not reported while
    /// holding it sealed, then (once settled) those it has not caught up with. Empty while it
    /// waits out a quiet period or for its own writes to come back.
    fn recovery_waiting_for(&self) -> LeaderSet {
        let Some(decision) = &self.recovery_decision else { return self.catching_up };
        self.recovery_peers()
            .iter()
            .filter(|p| decision.caught_up_to.get(p).is_none_or(|vv| !vv.le(&self.applied)))
            .collect()
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

    /// The highest sequence number a peer's causal buffer can name beyond `base`: it holds at
    /// most `causal_buffer_max` entries, none further ahead than that.
    fn buffer_reach(&self, base: crate::causality::Seq) -> u64 {
        base.0.saturating_add(self.config.causal_buffer_max as u64)
    }

    /// A digest claiming writes of this leader no causal buffer could hold: believing it would
    /// make this leader void sequence numbers without end.
    fn reject_impossible_need(&mut self, from: LeaderId) {
        let why = "claims writes of the receiver beyond what a causal buffer can hold";
        self.reject(from, Rejection::MalformedDigest { why });
    }

    /// Lifts the seal of `leader` (its recovery is done).
    fn unseal(&mut self, leader: LeaderId) {
        if self.sealed.contains(leader) {
            self.sealed.remove(leader);
            self.trace(|| TraceEvent::Unsealed { leader });
        }
    }

    /// Sends a repair digest to each peer asked for a catch-up (at most one per peer per
    /// anti-entropy interval).
    fn ask_for_catch_ups(&mut self, now: WallTime) {
        for peer in core::mem::take(&mut self.catch_up_wanted) {
            let interval = self.config.anti_entropy_interval;
            if self.catch_up_asked.get(&peer).is_some_and(|at| now < at.saturating_add(interval)) {
                continue;
            }
            self.catch_up_asked.insert(peer, now);
            self.send_digest_with(peer, DigestReply::IfBehind, true);
        }
    }

    /// Ends a recovering leader's quiet period once it is over: from now on its digests ask
    /// peers to seal it. Returns whether it just ended.
    fn start_sealing_if_due(&mut self, now: WallTime) -> bool {
        if self.recovery_trusted_from.is_some_and(|t| self.recovering && now >= t) {
            self.recovery_trusted_from = None;
            self.recovery_sealing = true;
            return true;
        }
        false
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
    fn held_for(&self, peer: LeaderId) -> (Vec<crate::causality::Seq>, crate::causality::Seq) {
        let mut needed = crate::causality::Seq(0);
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

    /// A restarting leader needs an answer from every peer; otherwise only the one that is behind
    /// answers.
    fn digest_reply(&self) -> DigestReply {
        if self.recovering {
            DigestReply::Always
        } else {
            DigestReply::IfBehind
        }
    }

    fn reject(&mut self, from: LeaderId, reason: Rejection) {
        self.metrics.rejected += 1;
        self.trace(|| TraceEvent::Rejected { from, reason });
    }

    fn update_fence(&mut self) {
        let fenced = matches!(self.clock.health(), ClockHealth::Fenced { .. });
        if fenced != self.fenced {
            self.fenced = fenced;
            let residual_ns = self.clock.residual_offset_ns().unwrap_or(0);
            self.trace(|| if fenced { TraceEvent::Fenced { residual_ns } } else { TraceEvent::Unfenced });
        }
    }

    /// Sends `entry` to the topology's forward targets for this leader.
    fn forward(&mut self, now: WallTime, entry: &Entry, sender: Option<LeaderId>, seen: LeaderSet) {
        // Leaders known to hold it — from the copy's seen-by set and from acknowledged vectors —
        // are not sent it again. Skipping them is safe in every topology because each leader
        // forwards an entry when it first receives it, however it receives it.
        let seen = self.known_holders(entry.dot, seen.with(self.id));
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
            let (waiting, bytes) = self.outbox.entry(to).or_default();
            if !waiting.is_empty() && *bytes + size > budget {
                self.flush_to(to);
            }
            let (waiting, bytes) = self.outbox.entry(to).or_default();
            waiting.push(ReplicatedEntry { entry: entry.clone(), seen_by: seen });
            *bytes += size;
            if waiting.len() >= batch.max_entries.max(1) {
                self.flush_to(to);
            }
        }
        if self.next_flush.is_none() && self.outbox.values().any(|(w, _)| !w.is_empty()) {
            self.next_flush = Some(now.saturating_add(batch.flush_interval));
        }
    }

    /// Sends the entries waiting for `to` in one message.
    fn flush_to(&mut self, to: LeaderId) {
        let Some((entries, _)) = self.outbox.remove(&to) else { return };
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
    fn flush_per_input(&mut self) {
        if self.config.batch.is_some_and(|b| b.flush_interval.is_zero()) {
            self.flush_all();
        }
    }

    /// Sends every waiting entry.
    fn flush_all(&mut self) {
        let peers: Vec<LeaderId> = self.outbox.keys().copied().collect();
        for to in peers {
            self.flush_to(to);
        }
        self.next_flush = None;
    }

    fn sibling_store(&mut self, max_siblings: usize) -> &mut SiblingStore {
        self.siblings.entry(max_siblings).or_insert_with(|| SiblingStore::new(max_siblings))
    }

    /// Applies a siblings write and traces the siblings it leaves, if more than one.
    fn apply_siblings(&mut self, max_siblings: usize, entry: &Entry) {
        let (value, context) = match &entry.op {
            Op::SiblingPut { value, context } => (Some(value.clone()), context.clone()),
            Op::SiblingDelete { context } => (None, context.clone()),
            _ => return,
        };
        let outcome = self.sibling_store(max_siblings).apply(&entry.key, entry.dot, &context.into(), value);
        if let SiblingOutcome::Concurrent { over_bound, .. } = outcome {
            let dots: Vec<Dot> = self
                .siblings
                .get(&max_siblings)
                .and_then(|s| s.read(&entry.key))
                .map(|r| r.siblings.iter().map(|(d, _)| *d).collect())
                .unwrap_or_default();
            self.metrics.siblings_kept += 1;
            let key = entry.key.clone();
            self.trace(|| TraceEvent::Siblings { key, dots, over_bound });
        }
    }

    /// Whether `op` is an operation the keyspace of `key` accepts here.
    fn op_fits(&self, key: &Key, op: &Op) -> bool {
        match (self.config.keyspaces.resolution(key), op) {
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

    /// `base` joined with the peers whose acknowledged vectors name `dot`.
    fn known_holders(&self, dot: Dot, base: LeaderSet) -> LeaderSet {
        self.acked.iter().filter(|(_, vv)| vv.contains(dot)).fold(base, |set, (peer, _)| set.with(*peer))
    }

    /// Applies a deliverable entry, logs it and then applies whatever became ready.
    fn apply(&mut self, entry: Entry, seen: LeaderSet) {
        self.apply_one(entry, seen);
        while let Some(waiting) = self.buffer.take_ready(&self.applied) {
            let seen = waiting.seen_by.with(self.id);
            self.apply_one(waiting.entry, seen);
        }
    }

    fn apply_one(&mut self, entry: Entry, seen: LeaderSet) {
        debug_assert!(self.sabotaged() || CausalBuffer::is_deliverable(&entry, &self.applied), "causal order");
        let outcome = match (self.config.keyspaces.resolution(&entry.key), &entry.op) {
            (_, Op::Void) | (Resolution::LastWriteWins | Resolution::HomeLeader, _) => self.store.apply(&entry),
            (Resolution::Siblings { max_siblings }, Op::SiblingPut { .. } | Op::SiblingDelete { .. }) => {
                self.apply_siblings(max_siblings, &entry);
                ApplyOutcome::Created
            }
            (Resolution::Crdt(kind), Op::Crdt(payload)) => {
                let applied = self.crdts.apply_crdt(&entry.key, kind, payload);
                debug_assert!(applied, "validated on receipt");
                ApplyOutcome::Created
            }
            // Validated on receipt and at the client boundary: cannot happen.
            _ => ApplyOutcome::Void,
        };
        self.applied.set(entry.dot.origin, entry.dot.seq);
        self.metrics.applied += 1;
        if self.notify_changes && outcome != ApplyOutcome::Void {
            let cause = if entry.dot.origin == self.id && !self.recovering {
                ChangeCause::LocalWrite
            } else {
                ChangeCause::Replicated { origin: entry.dot.origin }
            };
            self.effects.push(Effect::Changed { key: entry.key.clone(), dot: Some(entry.dot), cause });
        }
        let dot = entry.dot;
        self.trace(|| TraceEvent::Applied { dot, key: entry.key.clone(), deps: entry.deps.clone() });
        if outcome == ApplyOutcome::Void {
            if self.voided.len() >= VOIDED_MAX {
                self.voided.pop_front();
            }
            self.voided.push_back(dot);
        }
        if let ApplyOutcome::Conflict { kept, discarded, discarded_value, .. } = outcome {
            self.metrics.lww_discarded += 1;
            self.trace(|| TraceEvent::LwwDiscarded { key: entry.key.clone(), kept, discarded, value: discarded_value });
        }
        if let Some(forced) = self.log.append(entry, seen, self.input_at) {
            self.metrics.log_truncated_forced += 1;
            let _ = forced;
            self.trace(|| TraceEvent::LogTruncated { count: 1, forced: true });
        }
    }

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
        if !self.op_fits(&entry.key, &entry.op) {
            return Err("operation does not fit the key's keyspace here");
        }
        if let Op::Crdt(payload) = &entry.op {
            payload_belongs_to(payload, entry)?;
        }
        if !self.recovering && entry.deps.get(self.id) > self.applied.get(self.id) {
            return Err("dependencies name writes this leader never made");
        }
        if !self.recovering && origin == self.id && seq > self.applied.get(self.id) {
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

    fn receive_entry(&mut self, now: WallTime, from: LeaderId, replicated: ReplicatedEntry, catch_up: bool) {
        self.input_at = now;
        let ReplicatedEntry { entry, seen_by } = replicated;
        let dot = entry.dot;
        if let Err(why) = self.validate(&entry) {
            self.reject(from, Rejection::MalformedEntry { dot, why });
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
        let observed = if entry.op == Op::Void { Ok(entry.hlc) } else { self.observe(entry.hlc, now) };
        if let Err(err) = observed {
            self.metrics.timestamps_rejected += 1;
            let reason = match err {
                ClockError::RemoteTooFarAhead { remote, ahead_by, max_offset } => {
                    Rejection::TimestampTooFarAhead { dot, hlc: remote, ahead_by, max_offset }
                }
                _ => Rejection::MalformedEntry { dot, why: "timestamp refused by the clock" },
            };
            if self.quarantine.len() >= self.config.quarantine_max {
                self.quarantine.pop_front();
                self.metrics.quarantine_evicted += 1;
            }
            if let Rejection::TimestampTooFarAhead { ahead_by, .. } = &reason {
                let alarm = Alarm::ClockOffender { leader: dot.origin, ahead_by: *ahead_by };
                self.effects.push(Effect::Alarm(alarm));
            }
            self.quarantine.push_back(Quarantined { from, entry, reason: reason.clone() });
            self.reject(from, reason);
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

    /// Merges a remote timestamp into the HLC, bounded by `max_offset` (unless sabotaged).
    fn observe(&mut self, remote: HlcTimestamp, now: WallTime) -> Result<HlcTimestamp, ClockError> {
        #[cfg(feature = "fault-injection")]
        if self.config.sabotage == Sabotage::AcceptFarFutureTimestamps {
            return self.clock.observe_unbounded(remote, now);
        }
        self.clock.observe(remote, now)
    }

    /// Whether a mechanism is broken on purpose (always false without `fault-injection`).
    fn sabotaged(&self) -> bool {
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
    fn reapply_duplicate(&mut self, entry: Entry) {
        if !self.applied.contains(entry.dot) {
            return; // A parked copy: nothing to apply yet.
        }
        match (self.config.keyspaces.resolution(&entry.key), &entry.op) {
            (Resolution::Crdt(kind), Op::Crdt(payload)) => {
                let _ = self.crdts.apply_crdt(&entry.key, kind, payload);
            }
            (Resolution::LastWriteWins | Resolution::HomeLeader, _) => {
                let _ = self.store.apply(&entry);
            }
            _ => {}
        }
        self.metrics.applied += 1;
        let dot = entry.dot;
        self.trace(|| TraceEvent::Applied { dot, key: entry.key, deps: entry.deps });
    }

    fn refuse_for_buffer(&mut self, from: LeaderId, dot: Dot) {
        self.metrics.buffer_full += 1;
        let capacity = self.buffer.capacity();
        self.trace(|| TraceEvent::BufferFull { dot, asked: from, capacity });
        self.catch_up_wanted.insert(from);
    }

    fn receive_digest(
        &mut self,
        now: WallTime,
        from: LeaderId,
        theirs: VersionVector,
        (reply, repair): (DigestReply, bool),
        (held, needed): (&[crate::causality::Seq], crate::causality::Seq),
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
        let known_life = self.recovery_reports.get(&from).map(|r| r.life);
        let reach = self.recovery_decision.as_ref().map(|d| self.buffer_reach(d.high_water));
        if let Some(decision) = self.recovery_decision.as_mut().filter(|_| self.recovering) {
            if known_life.is_some_and(|life| life != status.life) {
                self.reopen_recovery(now);
            } else if needed > decision.high_water {
                // An entry that arrived at the peer after the decision depends on a write of
                // this leader's earlier life beyond what anyone held: void up to it too (nobody
                // holds it; see `check_caught_up`).
                if reach.is_some_and(|reach| needed.0 <= reach) {
                    decision.high_water = needed;
                } else {
                    self.reject_impossible_need(from);
                }
            } else if held.is_empty() && needed.0 == 0 {
                // Nothing waits at this peer for a write of this leader's earlier life: what
                // depended on one (a write whose context names a CRDT dot of a voided write) is
                // applied there, and this leader catches up to it before it writes (or it would
                // mint that dot again).
                decision.caught_up_to.entry(from).or_insert(theirs.clone());
            }
        } else if !self.recovering && needed > self.applied.get(self.id) {
            // An entry waiting at this peer depends on a write of an earlier life of this
            // leader's that nobody held when it settled (every held one is at most what it
            // applied since): no copy exists, so voiding the gap is safe, and the entry is
            // delivered instead of waiting for ever.
            if needed.0 <= self.buffer_reach(self.applied.get(self.id)) {
                while self.applied.get(self.id) < needed {
                    let next = self.applied.get(self.id).next();
                    if !self.void(now, next) {
                        break;
                    }
                }
            } else {
                self.reject_impossible_need(from);
            }
        } else if self.recovering && !status.sealed {
            // A peer that no longer holds this leader sealed (it took a late "done" of this
            // leader's earlier life for this one's) may take in old writes again: its report
            // no longer counts, and it is asked to seal again.
            if self.recovery_reports.remove(&from).is_some() {
                self.catching_up = self.catching_up.with(from).intersection(self.recovery_peers());
            }
        } else if self.recovering && self.recovery_sealing {
            // Only reports sent once this leader asked for seals count: a peer born sealed may
            // report earlier, but a late "done" of this leader's earlier life (in flight for up
            // to the quiet period) can still lift its seal, and it then takes in old writes
            // its report does not name (the recovery oracle found exactly that).
            let applied = theirs.get(self.id);
            // A peer's buffer holds at most `causal_buffer_max` entries, none further ahead of
            // what it applied than that: a report beyond it is a lie (or a bug), and believing it
            // would make this leader void sequence numbers without end.
            let limit = self.buffer_reach(applied);
            let believable =
                held.len() <= self.config.causal_buffer_max && held.iter().all(|s| s.0 <= limit) && needed.0 <= limit;
            if believable {
                // A report from a life of the peer not heard before (or one that lifted its seal
                // meanwhile): entries its earlier life sent may still be in flight, so the
                // conclusion waits a quiet period past it; they land at sealed peers and are
                // refused, or at peers whose reports still count them.
                if known_life != Some(status.life) {
                    let settle_at = now.saturating_add(self.config.recovery_quiet);
                    self.recovery_settle_at = self.recovery_settle_at.max(settle_at);
                }
                let report = RecoveryReport { life: status.life, applied, held: held.to_vec(), needed };
                self.recovery_reports.insert(from, report);
                self.catching_up.remove(from);
            } else {
                self.reject_impossible_need(from);
            }
        }
        // What was sent to this peer less than an anti-entropy interval ago is probably still in
        // flight: count it as held, so that crossing digests do not send everything twice.
        let mut assumed = theirs.clone();
        match self.recently_sent.get(&from) {
            Some((at, sent)) if now < at.saturating_add(self.config.anti_entropy_interval) => assumed.merge(sent),
            _ => {
                self.recently_sent.remove(&from);
            }
        }
        // A restarting asker gets everything at once; others not what is still on its way.
        let logged_by =
            (reply != DigestReply::Always && !repair).then(|| now.saturating_sub(self.config.catch_up_grace));
        let missing: Result<Vec<Entry>, ()> =
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
                self.recently_sent.insert(from, (now, assumed));
                self.send_catch_up(from, entries);
            }
            Err(()) => {
                assumed.merge(&self.applied);
                self.recently_sent.insert(from, (now, assumed));
                self.send_snapshot(from);
            }
        }
        let answer = match reply {
            DigestReply::Never => false,
            DigestReply::IfBehind => !theirs.le(&self.applied),
            DigestReply::Always => true,
        };
        if answer {
            self.metrics.digests_sent += 1;
            let (held, needed) = self.held_for(from);
            let (vv, stable) = (self.applied.clone(), alloc::boxed::Box::new(self.stable_vector()));
            let recovery = self.recovery_status(from);
            let answer =
                PeerMessage::Digest { vv, reply: DigestReply::Never, held, needed, stable, repair: false, recovery };
            self.send(from, answer);
        }
        self.acked.insert(from, theirs);
    }

    /// Sends `entries` in messages of at most `catch_up_batch_max` entries and one frame each.
    fn send_catch_up(&mut self, to: LeaderId, entries: Vec<Entry>) {
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
            let seen_by = self.known_holders(entry.dot, logged.with(self.id));
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

    fn send_snapshot(&mut self, to: LeaderId) {
        let budget = wire::MAX_FRAME_BYTES - wire::FRAME_HEADROOM_BYTES;
        let max_keys = self.config.snapshot_chunk_registers;
        let mut chunks: Vec<SnapshotChunk> = Vec::new();
        let empty = |vv: &VersionVector| SnapshotChunk {
            id: 0,
            index: 0,
            count: 0,
            vv: vv.clone(),
            registers: Vec::new(),
            siblings: Vec::new(),
            crdts: Vec::new(),
        };
        let mut current = empty(&self.applied);
        let mut bytes = 0;
        let room = |current: &mut SnapshotChunk, bytes: &mut usize, size: usize, chunks: &mut Vec<SnapshotChunk>| {
            if current.keys() > 0 && (current.keys() >= max_keys || *bytes + size > budget) {
                chunks.push(core::mem::replace(current, empty(&self.applied)));
                *bytes = 0;
            }
            *bytes += size;
        };
        for (key, register) in self.store.registers() {
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
        let count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
        if count > self.config.snapshot_chunks_max {
            // The receiver would reject it (it stages at most that many chunks): refuse loudly
            // instead of sending chunks that can never be adopted.
            self.metrics.snapshots_refused += 1;
            let max = self.config.snapshot_chunks_max;
            if self.snapshot_refused.insert(to, count) != Some(count) {
                self.trace(|| TraceEvent::SnapshotTooLarge { to, chunks: count, max });
            }
            return;
        }
        self.snapshot_refused.remove(&to);
        let id = self.next_snapshot_id;
        self.next_snapshot_id += 1;
        for (index, mut chunk) in (0u32..).zip(chunks) {
            (chunk.id, chunk.index, chunk.count) = (id, index, count);
            let (vv, keys) = (chunk.vv.clone(), chunk.keys());
            self.metrics.snapshot_chunks_sent += 1;
            self.trace(|| TraceEvent::SnapshotSent { to, vv, registers: keys });
            self.send(to, PeerMessage::Snapshot(chunk));
        }
    }

    /// Checks one chunk on its own; `Err` is the rejection to report.
    fn check_chunk(&self, chunk: &SnapshotChunk) -> Result<(), Rejection> {
        let malformed = |why| Rejection::MalformedSnapshot { id: chunk.id, why };
        if chunk.count == 0 || chunk.index >= chunk.count {
            return Err(malformed("chunk index outside the chunk count"));
        }
        if chunk.count > self.config.snapshot_chunks_max {
            return Err(malformed("more chunks than snapshot_chunks_max"));
        }
        if !chunk.vv.leaders().is_subset(self.members) {
            return Err(malformed("version vector names a non-member"));
        }
        if !self.recovering && chunk.vv.get(self.id) > self.applied.get(self.id) {
            return Err(malformed("version vector names writes this leader never made"));
        }
        for (_, register) in &chunk.registers {
            let dot = register.dot;
            if !self.members.contains(dot.origin) || register.hlc.leader() != dot.origin || !chunk.vv.contains(dot) {
                return Err(malformed("register not covered by the snapshot's version vector"));
            }
        }
        for (key, state) in &chunk.siblings {
            if !matches!(self.config.keyspaces.resolution(key), Resolution::Siblings { .. }) {
                return Err(malformed("siblings for a key of another keyspace"));
            }
            // Every live sibling is a write the sender applied. The key's context may name more:
            // writes a client saw at another leader and replaced, which the sender has not
            // received yet (they arrive later as already covered). Requiring the whole context
            // to be covered rejected such snapshots for ever (issue 16, bug 2).
            if !state.siblings().all(|(dot, _)| chunk.vv.contains(dot)) {
                return Err(malformed("siblings not covered by the snapshot's version vector"));
            }
        }
        for (key, state) in &chunk.crdts {
            match self.config.keyspaces.resolution(key) {
                Resolution::Crdt(kind) if state.fits(kind) => {}
                _ => return Err(malformed("crdt state for a key of another keyspace or type")),
            }
        }
        Ok(())
    }

    fn receive_snapshot(&mut self, now: WallTime, from: LeaderId, chunk: SnapshotChunk) {
        self.input_at = now;
        // A snapshot naming writes of a sealed leader beyond what this leader holds would take
        // them in (see `receive_entry`): refused whole; anti-entropy repeats it after the seal.
        if let Some(origin) = self.sealed.iter().find(|o| chunk.vv.get(*o) > self.applied.get(*o)) {
            self.staging.remove(&from);
            self.metrics.sealed_refused += 1;
            let dot = Dot::new(origin, chunk.vv.get(origin));
            self.trace(|| TraceEvent::RefusedWhileSealed { from, dot });
            return;
        }
        if let Err(reason) = self.check_chunk(&chunk) {
            self.staging.remove(&from);
            self.reject(from, reason);
            return;
        }
        let staged = self.staging.entry(from).or_insert_with(|| StagedSnapshot::new(&chunk));
        if staged.id != chunk.id || staged.count != chunk.count || staged.vv != chunk.vv {
            // A newer snapshot from the same peer replaces the one being assembled.
            *staged = StagedSnapshot::new(&chunk);
        }
        staged.chunks.entry(chunk.index).or_insert(chunk);
        if staged.chunks.len() < staged.count as usize {
            return;
        }
        let Some(snapshot) = self.staging.remove(&from) else { return };
        let register_stamps = snapshot.chunks.values().flat_map(|c| &c.registers).map(|(_, r)| r.hlc);
        let crdt_stamps = snapshot.chunks.values().flat_map(|c| &c.crdts).filter_map(|(_, state)| match state {
            CrdtState::LwwRegister(r) => r.timestamp(),
            _ => None,
        });
        let newest = register_stamps.chain(crdt_stamps).max();
        if let Some(newest) = newest {
            if let Err(err) = self.clock.observe(newest, now) {
                self.metrics.timestamps_rejected += 1;
                let reason = match err {
                    ClockError::RemoteTooFarAhead { remote, ahead_by, max_offset } => {
                        let dot = snapshot
                            .chunks
                            .values()
                            .flat_map(|c| &c.registers)
                            .find(|(_, r)| r.hlc == remote)
                            .map(|(_, r)| r.dot);
                        let dot = dot.unwrap_or(Dot::new(from, crate::causality::Seq(0)));
                        Rejection::TimestampTooFarAhead { dot, hlc: remote, ahead_by, max_offset }
                    }
                    _ => Rejection::MalformedSnapshot { id: snapshot.id, why: "timestamp refused by the clock" },
                };
                self.reject(from, reason);
                return;
            }
        }
        let vv = snapshot.vv;
        for chunk in snapshot.chunks.into_values() {
            for (key, register) in chunk.registers {
                if self.notify_changes && self.store.register(&key).is_none_or(|r| r.hlc < register.hlc) {
                    let cause = ChangeCause::Merge { from };
                    self.effects.push(Effect::Changed { key: key.clone(), dot: Some(register.dot), cause });
                }
                self.merge_register(&vv, key, register);
            }
            for (key, state) in chunk.siblings {
                if let Resolution::Siblings { max_siblings } = self.config.keyspaces.resolution(&key) {
                    let merged = self.sibling_store(max_siblings).merge_key(&key, &state);
                    if self.notify_changes && merged.changed() {
                        self.effects.push(Effect::Changed { key, dot: None, cause: ChangeCause::Merge { from } });
                    }
                }
            }
            for (key, state) in chunk.crdts {
                let before = self.crdts.crdts.get(&key).cloned();
                let current = self.crdts.crdts.entry(key.clone()).or_insert_with(|| state.clone());
                let merged = current.merge(&state);
                debug_assert!(merged, "checked with the chunk");
                if self.notify_changes && before.as_ref() != Some(current) {
                    self.effects.push(Effect::Changed { key, dot: None, cause: ChangeCause::Merge { from } });
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
        let adopted = vv.clone();
        self.trace(|| TraceEvent::SnapshotApplied { from, vv: adopted });
        let covered = self.buffer.drop_covered(&self.applied);
        self.metrics.duplicates_dropped += covered.len() as u64;
        while let Some(waiting) = self.buffer.take_ready(&self.applied) {
            let seen = waiting.seen_by.with(self.id);
            self.apply_one(waiting.entry, seen);
        }
        // A snapshot does not end the wait for its sender's digest: only a digest says which of
        // this leader's own writes wait undelivered in the sender's causal buffer (the seed
        // sweep found a restarted leader that never voided a lost write parked at its peers).
        if self.recovering && vv.get(self.id) > self.own_high_water {
            self.own_high_water = vv.get(self.id);
        }
    }

    fn merge_register(&mut self, snapshot_vv: &VersionVector, key: Key, register: Register) {
        let incoming = register.dot;
        let Some(loser) = self.store.merge_register(key.clone(), register) else {
            return;
        };
        // A conflict is decided here only when neither side had seen the other's write.
        let mine_lost = loser.dot != incoming;
        let concurrent = if mine_lost { !snapshot_vv.contains(loser.dot) } else { !self.applied.contains(loser.dot) };
        if concurrent {
            self.metrics.lww_discarded += 1;
            let kept = if mine_lost { incoming } else { self.store.register(&key).map_or(incoming, |r| r.dot) };
            self.trace(|| TraceEvent::LwwDiscarded { key, kept, discarded: loser.dot, value: loser.value });
        }
    }

    /// After a restart, once every peer has reported while holding this leader sealed and a
    /// quiet period has passed since the last report from a new life: the reports are the whole
    /// truth about this leader's earlier writes (no copy of one that nobody reported is still in
    /// flight), so the leader *settles* — fixes which of its sequence numbers some peer holds and
    /// the highest anyone holds or needs — and lifts the seals (from now on every old write that
    /// moves is one of those held). Its writes that some peer applied come back by catch-up;
    /// those some peer holds undelivered come back once their gaps are filled; the rest were
    /// lost with the crash, and the leader voids their sequence numbers (in order, as they come
    /// up) so that the writes after them can be delivered everywhere. Then it accepts writes.
    fn check_caught_up(&mut self, now: WallTime) {
        if !self.recovering {
            return;
        }
        if self.recovery_decision.is_none() {
            if !self.catching_up.is_empty() || now < self.recovery_settle_at {
                return;
            }
            let reports = self.recovery_reports.values();
            let applied_max = reports.clone().map(|r| r.applied).max().unwrap_or_default();
            let high_water = reports
                .clone()
                .flat_map(|r| r.held.iter().copied().chain([r.applied, r.needed]))
                .fold(self.own_high_water, core::cmp::Ord::max);
            let held = reports.flat_map(|r| r.held.iter().copied()).collect();
            // This leader's own buffer counts too: entries of its own that came back and wait,
            // and entries of others that depend on writes of its own that left with its old
            // state.
            let (own_held, own_needed) = self.held_for(self.id);
            let high_water = own_held.into_iter().chain([own_needed]).fold(high_water, core::cmp::Ord::max);
            let caught_up_to = BTreeMap::new();
            self.recovery_decision = Some(RecoveryDecision { applied_max, high_water, held, caught_up_to });
            self.trace(|| TraceEvent::Settled { high_water });
            // Every peer lifts its seal at once (those that miss this ask every interval).
            for peer in self.live.without(self.id) {
                self.send_digest(peer, DigestReply::Always);
            }
        }
        let Some(decision) = &self.recovery_decision else { return };
        let (applied_max, high_water) = (decision.applied_max, decision.high_water);
        let (own_held, _) = self.held_for(self.id);
        while self.applied.get(self.id) >= applied_max && self.applied.get(self.id) < high_water {
            let next = self.applied.get(self.id).next();
            let held = self.recovery_decision.as_ref().is_some_and(|d| d.held.contains(&next));
            if held || own_held.contains(&next) {
                break; // It will come back once a peer can deliver it.
            }
            if !self.void(now, next) {
                break;
            }
        }
        if self.applied.get(self.id) >= high_water && self.recovery_waiting_for().is_empty() {
            self.recovering = false;
            self.recovery_sealing = false;
            self.recovery_reports.clear();
            self.recovery_decision = None;
            let vv = self.applied.clone();
            self.trace(|| TraceEvent::CaughtUp { vv });
        }
    }

    /// After this leader settled its recovery, a peer that reports from a new life lost what
    /// its earlier life held — perhaps writes of this leader's that were to come back. The
    /// decision no longer holds: seal and ask everyone again.
    fn reopen_recovery(&mut self, now: WallTime) {
        self.recovery_decision = None;
        self.recovery_reports.clear();
        self.catching_up = self.recovery_peers();
        self.recovery_settle_at = now.saturating_add(self.config.recovery_quiet);
        for peer in self.catching_up.intersection(self.live) {
            self.send_digest(peer, DigestReply::Always);
        }
    }

    /// Issues a void entry for this leader's sequence number `seq` (the next one).
    fn void(&mut self, now: WallTime, seq: crate::causality::Seq) -> bool {
        self.input_at = now;
        debug_assert_eq!(self.applied.get(self.id).next(), seq);
        // A void's stamp decides nothing (see `LeaderClock::stamp_inert`): a fenced leader voids
        // too, or its peers' entries that follow the gap wait for ever.
        let hlc = self.clock.stamp_inert(now);
        let Ok(key) = Key::new(crate::entry::VOID_KEY) else { return false };
        let dot = Dot::new(self.id, seq);
        let entry = Entry { dot, hlc, deps: self.applied.clone(), key, op: Op::Void };
        self.metrics.voids_issued += 1;
        self.trace(|| TraceEvent::Voided { dot });
        let seen = LeaderSet::single(self.id);
        self.forward(now, &entry, None, seen);
        self.apply(entry, seen);
        true
    }

    /// The writes every live leader is known to have: the meet of their acknowledged vectors.
    fn stable_vector(&self) -> VersionVector {
        // What peers vouch for (their stable vectors), as far as this leader applied it.
        let mut learned = self.learned_stable.clone();
        learned.meet(&self.applied);
        let mut stable = self.applied.clone();
        for peer in self.live.without(self.id) {
            match self.acked.get(&peer) {
                Some(vv) => stable.meet(vv),
                None => return learned,
            }
        }
        stable.merge(&learned);
        stable
    }

    /// Whether some live leader is a neighbour of every other (a star's hub, or everyone in
    /// all-to-all): it then hears every leader's version vector on its own.
    fn has_hub(&self) -> bool {
        self.live.iter().any(|h| self.live.without(h).is_subset(self.topology.neighbours(self.live, h)))
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

/// Whether a CRDT payload is one its entry's origin could have produced: operations and counter
/// deltas name only the origin, an LWW-register delta carries the entry's own timestamp, and new
/// OR-set adds are the origin's dots. (A snapshot merge trusts per-leader maxima, so a payload
/// speaking for another leader would corrupt it.)
fn payload_belongs_to(payload: &CrdtOpPayload, entry: &Entry) -> Result<(), &'static str> {
    let origin = entry.dot.origin;
    let ok = match payload {
        CrdtOpPayload::Counter(crate::crdt::PnCounterOp::Increment { by, .. })
        | CrdtOpPayload::Counter(crate::crdt::PnCounterOp::Decrement { by, .. }) => *by == origin,
        CrdtOpPayload::SetOp(crate::crdt::OrSetOp::Add { dot, .. }) => dot.origin == origin,
        CrdtOpPayload::SetOp(crate::crdt::OrSetOp::Remove { .. }) => true,
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
