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
//!    [`Replica::handle_peer`]), a timeout ([`Replica::handle_timeout`], due at
//!    [`Replica::poll_timeout`]), a new live set ([`Replica::handle_topology`]) or a clock
//!    sample ([`Replica::handle_clock_sample`]) — call the method, then drain the effects and
//!    perform them in order.
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
//!
//! The state is in parts, one file each, in the style of quinn-proto's `Connection`: `Replica`
//! (this file) owns them and keeps the public API; `config` and `effects` hold the types
//! that go in and out; `stores` the data, whatever its conflict resolution; `receive` the
//! checks on a peer's entry; `outbox` forwarding and batching; `anti_entropy` digests,
//! acknowledgements and catch-ups; `snapshot` snapshots both ways; `recovery` the recovery of a
//! restarted leader; `timers` the deadlines and what a timeout does.

mod anti_entropy;
mod config;
mod durable;
mod effects;
mod history;
mod outbox;
mod receive;
mod recovery;
mod snapshot;
mod stores;
mod timers;

#[cfg(feature = "fault-injection")]
pub use config::Sabotage;
pub use config::{BatchConfig, ConfigError, GossipConfig, ReplicaConfig};
pub use durable::{EncodeError, Image, Record, ResumeError};
pub use effects::{
    Alarm, ChangeCause, ClientWrite, Effect, Metrics, Quarantined, ReadError, ReadValue, Resolved, WriteError,
    WriteReceipt,
};
pub use history::{HistoryConfig, KeyEvent, KeyHistory, HISTORY_VALUE_BYTES};

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use roundtable_topologies::Topology;

use crate::causality::{Dot, VersionVector};
use crate::clock::{ClockError, ClockHealth, CorrectionEvent, LeaderClock, LeaderClockConfig, NtpSample};
use crate::entry::{Entry, Key, Op, SharedEntry};
use crate::log::{CausalBuffer, ReplicationLog};
use crate::resolution::{CrdtState, Resolution, Update};
use crate::rng::SeededRng;
use crate::siblings::SiblingRead;
use crate::store::{ApplyOutcome, LwwStore};
use crate::trace::{Rejection, TraceEvent};
use crate::wire::{self, DigestReply, PeerMessage};
use crate::{LeaderId, LeaderSet, WallTime};

use anti_entropy::AntiEntropy;
use outbox::Outbox;
use recovery::Recovery;
use snapshot::Snapshots;
use stores::Stores;
use timers::{Timer, Timers};

/// How many void entries a replica remembers for [`Replica::voided`].
pub const VOIDED_MAX: usize = 4096;

/// The shortest interval between two requests for acknowledgements ([`Replica::request_acks`]).
pub const ACKS_REQUEST_EVERY: core::time::Duration = core::time::Duration::from_millis(10);

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
    /// The data, whatever the keyspaces' conflict resolutions.
    stores: Stores,
    /// What peers are known to hold, and the catch-ups owed to or asked of them.
    anti_entropy: AntiEntropy,
    /// After a restart, until the leader caught up: the recovery in progress (it refuses writes
    /// meanwhile).
    recovery: Option<Recovery>,
    /// Recovering leaders this leader holds sealed: it refuses their entries it does not
    /// already hold until they say they are done (see [`wire::RecoveryStatus`]).
    sealed: LeaderSet,
    /// This leader's life (see [`wire::RecoveryStatus::life`]), set by [`Replica::start`].
    life: u32,
    /// With batching: entries waiting to leave.
    outbox: Outbox,
    /// Snapshots being sent and assembled.
    snapshots: Snapshots,
    /// The deadlines.
    timers: Timers,
    /// When the input being handled arrived (this leader's clock), for the log.
    input_at: WallTime,
    /// Void entries applied here, most recent last (bounded by `VOIDED_MAX`).
    voided: VecDeque<Dot>,
    fenced: bool,
    /// Resumed from its disk ([`Replica::resume`]): [`Replica::start`] begins a new life.
    resumed: bool,
    cluster_fenced: bool,
    notify_changes: bool,
    quarantine: VecDeque<Quarantined>,
    /// Recent decisions about last-write-wins keys, when [`ReplicaConfig::key_history`] is set.
    history: history::History,
    /// When peers were last asked for acknowledgements ([`Replica::request_acks`]).
    acks_requested: Option<WallTime>,
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
        let gossip_seed = config.gossip.map_or(0, |g| g.seed) ^ (id.index() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
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
            stores: Stores::new(config.keyspaces.clone()),
            anti_entropy: AntiEntropy::new(SeededRng::new(gossip_seed)),
            recovery: None,
            sealed: LeaderSet::EMPTY,
            life: 0,
            outbox: Outbox::default(),
            snapshots: Snapshots::new(),
            timers: Timers::default(),
            input_at: WallTime::from_nanos(0),
            voided: VecDeque::new(),
            fenced: false,
            resumed: false,
            cluster_fenced: false,
            notify_changes: false,
            quarantine: VecDeque::new(),
            history: history::History::new(config.key_history),
            acks_requested: None,
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
        replica.recovery = Some(Recovery::new(members.without(id)));
        // Born sealed: a peer that is recovering right now may have counted this leader's
        // earlier life as sealed; this life must not take in that peer's old writes either.
        replica.sealed = members.without(id);
        // A durable shell forgets what its disk held: this life starts from nothing.
        replica.persist(|| Record::Recovering);
        Ok(replica)
    }

    /// Starts the leader: schedules the periodic anti-entropy and, after a restart, asks every
    /// live peer for what it lacks (a link appearing starts anti-entropy).
    pub fn start(&mut self, now: WallTime) {
        // A fresh leader of a fresh cluster has nothing to exchange yet; a restarted one starts a
        // new life and asks every live peer at once.
        self.begin_recovery(now);
        if core::mem::take(&mut self.resumed) {
            let vv = self.applied.clone();
            self.trace(|| TraceEvent::Resumed { vv: vv.into() });
            // Recovering, it began a new life above; otherwise it begins one here: its causal
            // buffer is gone, and peers that compare lives must know.
            if self.recovery.is_none() {
                self.life = Self::life_at(now);
                if !self.sealed.is_empty() {
                    let leaders = self.sealed;
                    self.trace(|| TraceEvent::Sealed { leaders });
                }
            }
        }
        self.timers.set(Timer::AntiEntropy, now.saturating_add(self.config.anti_entropy_interval));
        match self.config.ack_interval {
            Some(interval) => self.timers.set(Timer::AckRound, now.saturating_add(interval)),
            None => self.timers.stop(Timer::AckRound),
        }
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
    ///
    /// A key whose home is another leader is refused with [`WriteError::NotHome`]; a shell that
    /// routes such writes calls [`Replica::handle_client_update`] instead.
    pub fn handle_update(&mut self, now: WallTime, key: Key, update: Update) -> Result<WriteReceipt, WriteError> {
        let result = self.update(now, key, update, false);
        if matches!(result, Err(WriteError::NotHome { .. })) {
            self.metrics.writes_refused += 1;
        }
        result
    }

    /// A client update as a shell receives it: applied here, or — for a key whose keyspace
    /// avoids conflicts by home leader and whose home is another leader — to be routed there
    /// ([`ClientWrite::Route`], traced as such). The decision is the replica's; the shell only
    /// carries the write.
    pub fn handle_client_update(&mut self, now: WallTime, key: Key, update: Update) -> Result<ClientWrite, WriteError> {
        match self.update(now, key, update.clone(), false) {
            Ok(receipt) => Ok(ClientWrite::Applied(receipt)),
            Err(WriteError::NotHome { key, home }) => {
                self.trace(|| TraceEvent::RoutedToHome { key: key.clone(), home });
                Ok(ClientWrite::Route { home, key, update: alloc::boxed::Box::new(update) })
            }
            Err(e) => Err(e),
        }
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
        self.trace(|| TraceEvent::RoutedHere { key: key.clone() });
        self.update(now, key, update, true)
    }

    fn update(&mut self, now: WallTime, key: Key, update: Update, routed: bool) -> Result<WriteReceipt, WriteError> {
        self.input_at = now;
        let planned = match self.stores.plan(&key, update) {
            Ok(planned) => planned,
            Err(e) => return self.refuse(e),
        };
        if self.stores.resolution(&key) == Resolution::HomeLeader && !routed {
            if let Some(home) = self.home_of(&key).filter(|home| *home != self.id) {
                // Not counted as refused here: `handle_client_update` routes it, and
                // `handle_update` counts it.
                return Err(WriteError::NotHome { key, home });
            }
        }
        if let Err(e) = self.stores.check_write(&key, &planned) {
            return self.refuse(e);
        }
        if self.cluster_fenced {
            if matches!(self.clock.health(), ClockHealth::Synchronized { .. }) {
                self.fence_by_cluster(false);
            } else {
                return self.refuse(WriteError::FencedByCluster { leader: self.id });
            }
        }
        if self.recovery.is_some() {
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
        let op = match self.stores.finish_op(&key, planned, self.id, hlc) {
            Ok(op) => op,
            Err(e) => return self.refuse(e),
        };
        let dot = Dot::new(self.id, self.applied.get(self.id).next());
        let entry = SharedEntry::new(Entry { dot, hlc, deps: self.applied.clone(), key, op });
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
        self.stores.lww().register(key).map(|r| ReadValue { value: r.value.clone(), dot: r.dot, hlc: r.hlc })
    }

    /// Like [`Replica::read`], for a client: a key of a siblings or CRDT keyspace has no single
    /// register, and reading it so is an error that names the read to use instead.
    pub fn read_register(&self, key: &Key) -> Result<Option<ReadValue>, ReadError> {
        match self.stores.resolution(key) {
            Resolution::LastWriteWins | Resolution::HomeLeader => Ok(self.read(key)),
            resolution @ Resolution::Siblings { .. } => {
                Err(ReadError::WrongResolution { key: key.clone(), resolution, read_instead: "read_siblings" })
            }
            resolution @ Resolution::Crdt(_) => {
                Err(ReadError::WrongResolution { key: key.clone(), resolution, read_instead: "read_crdt" })
            }
        }
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
    /// [`Replica::holders`] catches up quickly — for a write concern. However many writes wait
    /// (every client of a node may `WAIT`), peers are asked at most once per
    /// [`ACKS_REQUEST_EVERY`]; a request sooner than that does nothing.
    pub fn request_acks(&mut self, now: WallTime) {
        if self.acks_requested.is_some_and(|at| now.saturating_duration_since(at) < ACKS_REQUEST_EVERY) {
            return;
        }
        self.acks_requested = Some(now);
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
        self.stores.read_siblings(key)
    }

    /// Every key of a siblings or CRDT keyspace with what a reader sees, as stable text, in key
    /// order (siblings as `[dot=value …]`, CRDTs as [`CrdtState::render`]).
    #[must_use]
    pub fn render_resolved(&self) -> Vec<(String, String)> {
        self.resolved().into_iter().map(|(key, value)| (key.as_str().into(), alloc::format!("{value}"))).collect()
    }

    /// Every key of a siblings or CRDT keyspace with what a reader sees, in key order.
    #[must_use]
    pub fn resolved(&self) -> Vec<(Key, Resolved)> {
        self.stores.resolved()
    }

    /// How many keys hold something a reader sees, in every keyspace: a live last-write-wins
    /// value, at least one sibling, a counter that is not zero, or a non-empty set. O(keys).
    #[must_use]
    pub fn live_keys(&self) -> usize {
        self.stores.live_keys()
    }

    /// The state of `key` (a key of a CRDT keyspace); `None` when nothing was written to it here.
    #[must_use]
    pub fn read_crdt(&self, key: &Key) -> Option<&CrdtState> {
        self.stores.read_crdt(key)
    }

    /// Everything this replica holds, in one comparable value: two replicas that applied the
    /// same writes have equal digests.
    #[must_use]
    pub fn state_digest(&self) -> Vec<u8> {
        self.stores.fingerprint()
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
                self.anti_entropy.learn_stable(&stable);
                self.receive_digest(now, from, vv, (reply, repair), (&held, needed), recovery);
            }
            PeerMessage::Snapshot(chunk) => self.receive_snapshot(now, from, chunk),
        }
        self.ask_for_catch_ups(now);
        self.check_caught_up(now);
    }

    /// A timeout: whatever deadline is due (batched entries leaving, anti-entropy,
    /// acknowledgement and gossip rounds, the steps of a recovery) and the periodic housekeeping
    /// (the clock's health check, catch-up requests for stalled entries, log truncation). Call it
    /// at [`Replica::poll_timeout`], and at least every `anti_entropy_interval`; calling it
    /// earlier is harmless. When several deadlines are due at once, batched entries leave first;
    /// see `timers.rs` for the whole order.
    pub fn handle_timeout(&mut self, now: WallTime) {
        self.on_timeout(now);
    }

    /// When [`Replica::handle_timeout`] is next due: the earliest armed deadline (`None` before
    /// [`Replica::start`] with nothing waiting).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<WallTime> {
        self.timers.next()
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
        self.release_down_members(live);
        self.anti_entropy.forget_departed(live);
        self.snapshots.forget_departed(live);
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

    /// Like [`Replica::take_effects`], except that entries batched with a zero flush interval
    /// ([`BatchConfig::flush_interval`]) keep waiting, for a shell that knows better than the
    /// replica when its inputs end: it calls [`Replica::flush_batches`] once no input waits
    /// (an actix leader: once its mailbox is empty), so that the writes of many inputs in a
    /// burst share messages while a lone write still leaves at once.
    pub fn take_effects_keeping_batches(&mut self) -> Vec<Effect> {
        core::mem::take(&mut self.effects)
    }

    /// Sends every batched entry now (its effects are then taken as usual).
    pub fn flush_batches(&mut self) {
        self.flush_all();
    }

    /// Whether entries wait in batches.
    #[must_use]
    pub fn has_batched(&self) -> bool {
        !self.outbox.is_empty()
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
        self.stores.lww()
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
        self.recovery.is_some()
    }

    /// Void entries applied here — writes lost with their leader's crash — oldest first (the
    /// last [`VOIDED_MAX`]).
    pub fn voided(&self) -> impl Iterator<Item = Dot> + '_ {
        self.voided.iter().copied()
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
        // A peer's stable vector vouches that every live leader holds it.
        self.anti_entropy.holders(dot, holders, self.live)
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

    fn reject(&mut self, from: LeaderId, reason: Rejection) {
        self.metrics.rejected += 1;
        self.trace(|| TraceEvent::Rejected { from, reason });
    }

    fn update_fence(&mut self) {
        let fenced = self.clock.health().is_fenced();
        if fenced != self.fenced {
            self.fenced = fenced;
            let residual_ns = self.clock.residual_offset_ns().unwrap_or(0);
            self.trace(|| if fenced { TraceEvent::Fenced { residual_ns } } else { TraceEvent::Unfenced });
        }
    }

    /// Applies a deliverable entry, logs it and then applies whatever became ready.
    fn apply(&mut self, entry: SharedEntry, seen: LeaderSet) {
        self.apply_one(entry, seen);
        self.apply_ready();
    }

    /// Applies the entries of the causal buffer whose dependencies are applied, in causal order.
    fn apply_ready(&mut self) {
        while let Some(waiting) = self.buffer.take_ready(&self.applied) {
            let seen = waiting.seen_by.with(self.id);
            self.apply_one(waiting.entry, seen);
        }
    }

    /// Records what applying `entry` did to its key, if the key is last-write-wins.
    fn remember(&mut self, entry: &Entry, outcome: &ApplyOutcome) {
        if !matches!(self.stores.resolution(&entry.key), Resolution::LastWriteWins | Resolution::HomeLeader) {
            return;
        }
        let delete = matches!(entry.op, Op::Delete);
        let (dot, hlc) = (entry.dot, entry.hlc);
        match outcome {
            ApplyOutcome::Created => {
                self.history.record(&entry.key, KeyEvent::Applied { dot, hlc, previous: None, delete });
            }
            ApplyOutcome::Superseded { previous } => {
                self.history.record(&entry.key, KeyEvent::Applied { dot, hlc, previous: Some(*previous), delete });
            }
            ApplyOutcome::Conflict { kept, kept_hlc, discarded, discarded_hlc, discarded_value } => {
                if *kept == dot {
                    let event = KeyEvent::Applied { dot, hlc, previous: Some(*discarded), delete };
                    self.history.record(&entry.key, event);
                }
                let event = KeyEvent::discarded(
                    *kept,
                    Some(*kept_hlc),
                    *discarded,
                    Some(*discarded_hlc),
                    discarded_value.as_ref(),
                );
                self.history.record(&entry.key, event);
            }
            ApplyOutcome::Void => {}
        }
    }

    /// What this leader recently decided about `key`, a last-write-wins key: the writes it
    /// applied and the concurrent ones it discarded, oldest first. `None` when key history is
    /// off ([`ReplicaConfig::key_history`]) or nothing about the key is remembered.
    #[must_use]
    pub fn explain(&self, key: &Key) -> Option<KeyHistory> {
        self.history.get(key)
    }

    /// Keys whose history was forgotten because of [`HistoryConfig::keys`].
    #[must_use]
    pub fn history_keys_forgotten(&self) -> u64 {
        self.history.keys_forgotten()
    }

    fn apply_one(&mut self, entry: SharedEntry, seen: LeaderSet) {
        debug_assert!(self.sabotaged() || CausalBuffer::is_deliverable(&entry, &self.applied), "causal order");
        let applied = self.stores.apply(&entry);
        if let Some((dots, over_bound)) = applied.siblings_kept {
            self.metrics.siblings_kept += 1;
            let key = entry.key.clone();
            self.trace(|| TraceEvent::Siblings { key, dots, over_bound });
        }
        let outcome = applied.outcome;
        if self.history.is_on() {
            self.remember(&entry, &outcome);
        }
        self.applied.set(entry.dot.origin, entry.dot.seq);
        self.metrics.applied += 1;
        if self.notify_changes && outcome != ApplyOutcome::Void {
            let cause = if entry.dot.origin == self.id && self.recovery.is_none() {
                ChangeCause::LocalWrite
            } else {
                ChangeCause::Replicated { origin: entry.dot.origin }
            };
            self.effects.push(Effect::Changed { key: entry.key.clone(), dot: Some(entry.dot), cause });
        }
        let (dot, hlc) = (entry.dot, entry.hlc);
        self.trace(|| TraceEvent::Applied { dot, key: entry.key.clone(), hlc, deps: (&entry.deps).into() });
        if outcome == ApplyOutcome::Void {
            if self.voided.len() >= VOIDED_MAX {
                self.voided.pop_front();
            }
            self.voided.push_back(dot);
        }
        if let ApplyOutcome::Conflict { kept, discarded, discarded_value, .. } = outcome {
            self.metrics.lww_discarded += 1;
            self.metrics.lww_discarded_own += u64::from(discarded.origin == self.id);
            self.trace(|| TraceEvent::LwwDiscarded { key: entry.key.clone(), kept, discarded, value: discarded_value });
        }
        self.persist(|| Record::Applied(entry.clone()));
        if let Some(forced) = self.log.append(entry, seen, self.input_at) {
            self.metrics.log_truncated_forced += 1;
            let _ = forced;
            self.trace(|| TraceEvent::LogTruncated { count: 1, forced: true });
        }
    }
}
