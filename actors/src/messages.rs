//! The messages a host application sends to a leader, and their answers. One type per message,
//! one handler per message, as actix likes it.

use actix::Message;
use roundtable_runtime::clock::HlcTimestamp;
use roundtable_runtime::replica::Quarantined;
use roundtable_runtime::resolution::{CrdtState, CrdtUpdate, Update};
use roundtable_runtime::siblings::{CausalContext, SiblingRead};
use roundtable_runtime::store::Register;
use roundtable_runtime::{
    DataError, Dot, Key, LeaderId, LeaderSet, Metrics, ReadError, ReadValue, Rejection, Resolved, Value, VersionVector,
    WriteError, WriteReceipt,
};

/// Why a leader could not serve a client request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderError {
    /// The leader is down (crashed and not yet restarted).
    #[error("leader {0} is down")]
    Down(String),
    /// The key or value is not acceptable.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The replica refused the write (fenced clock, catching up after a restart).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The read does not fit the key's keyspace (a `Get` of a CRDT or siblings key).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A write concern that can never be met (zero leaders, or more than the cluster has).
    #[error("a write concern of {leaders} leaders is impossible in a cluster of {members}")]
    ImpossibleConcern {
        /// Leaders asked for.
        leaders: usize,
        /// Leaders in the cluster.
        members: usize,
    },
    /// Too many subscriptions at this leader.
    #[error("this leader already has {MAX_SUBSCRIPTIONS} subscriptions")]
    TooManySubscriptions,
    /// The leader's outbox to a peer is full (the network cannot keep up): the write is refused
    /// rather than queued without bound. Retry later.
    #[error("backpressure: {pending} messages wait for {peer} already; retry later")]
    Backpressure {
        /// The peer whose outbox is full.
        peer: roundtable_runtime::LeaderId,
        /// Messages waiting for it.
        pending: usize,
    },
    /// A [`PutBatch`] with too many puts.
    #[error("a batch holds at most {max} puts")]
    BatchTooLarge {
        /// The bound.
        max: usize,
    },
    /// The write concern was not met in time. The write itself stands (it is applied at the
    /// leader that took it) and is still propagating.
    #[error(
        "write {dot} stands and is still propagating, but only {acknowledged} of the {wanted} leaders asked for \
         hold it after {waited:?}"
    )]
    NotYetAcknowledged {
        /// The write.
        dot: roundtable_runtime::Dot,
        /// Leaders known to hold it.
        acknowledged: usize,
        /// Leaders asked for.
        wanted: usize,
        /// How long the leader waited.
        waited: std::time::Duration,
    },
    /// The leader did not become writable in time (it was recovering or fenced).
    #[error("leader {leader} did not accept writes within {waited:?}")]
    NotWritable {
        /// The leader.
        leader: String,
        /// How long it was given.
        waited: std::time::Duration,
    },
    /// The write had to go to its key's home leader, which could not be reached.
    #[error("the home leader {home} of this key cannot be reached")]
    HomeUnreachable {
        /// The home leader.
        home: LeaderId,
    },
    /// The leader's disk failed (full, unwritable, gone): it refuses writes, and nothing that
    /// is not on the disk was acknowledged or sent.
    #[error("leader {leader} cannot write to its disk: {reason}")]
    DiskFailed {
        /// The leader.
        leader: String,
        /// What the disk said.
        reason: String,
    },
    /// The leader's disk is behind: too many records wait to be synced. Retry later.
    #[error("leader {leader}'s disk is behind ({unsynced} records wait to be synced); retry later")]
    DiskBehind {
        /// The leader.
        leader: String,
        /// Records waiting.
        unsynced: u64,
    },
    /// The leader's disk did not sync in time; the writes stand and may still reach it.
    #[error("leader {leader}'s disk did not sync within {waited:?}; the writes stand and may still reach it")]
    NotSynced {
        /// The leader.
        leader: String,
        /// How long it was given.
        waited: std::time::Duration,
    },
    /// A durable write concern was asked of a leader without a disk.
    #[error("leader {leader} has no disk, so it cannot acknowledge a durable write (set a data directory)")]
    NotDurable {
        /// The leader.
        leader: String,
    },
    /// The key's home leader, on another node, refused the routed write.
    #[error("the home leader {home} refused the write: {reason}")]
    RefusedByHome {
        /// The home leader.
        home: LeaderId,
        /// Its error, as it said it.
        reason: String,
    },
}

/// Write `value` under `key` at this leader. Answered once the write is applied here.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WriteReceipt, LeaderError>")]
pub struct Put {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// Acknowledge only once this many leaders hold the write (default: once applied here).
    pub concern: Option<WriteConcern>,
}

impl Put {
    /// A put of `value` (bytes or text) under `key`.
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Put { key: key.into(), value: value.into(), concern: None }
    }

    /// This put, acknowledged once `leaders` leaders hold it, or an error after `timeout` that
    /// says the write stands and is still propagating.
    #[must_use]
    pub fn acknowledged_by(mut self, leaders: usize, timeout: std::time::Duration) -> Self {
        self.concern = Some(WriteConcern::leaders(leaders, timeout));
        self
    }

    /// This put, acknowledged under `concern`.
    #[must_use]
    pub fn with_concern(mut self, concern: WriteConcern) -> Self {
        self.concern = Some(concern);
        self
    }
}

/// Many puts in one message, applied at this leader in order; the entries they produce leave
/// for each peer together when batching is on ([`roundtable_runtime::BatchConfig`]). Each put is
/// answered on its own: a key whose home is another leader (a home-leader keyspace) is refused
/// with `NotHome` — send those as [`Put`], which routes them. At most [`PUT_BATCH_MAX`] puts.
///
/// ```
/// use roundtable_actors::PutBatch;
/// let batch = PutBatch::new((0..3).map(|i| (format!("k{i}"), format!("v{i}").into_bytes())))?;
/// assert_eq!(batch.len(), 3);
/// # Ok::<(), roundtable_actors::LeaderError>(())
/// ```
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<Result<WriteReceipt, LeaderError>>")]
pub struct PutBatch {
    puts: Vec<(String, Vec<u8>)>,
}

/// The most puts in one [`PutBatch`].
pub const PUT_BATCH_MAX: usize = 4096;

impl PutBatch {
    /// A batch of `(key, value)` puts.
    ///
    /// # Errors
    /// [`LeaderError::BatchTooLarge`] beyond [`PUT_BATCH_MAX`] puts.
    pub fn new(puts: impl IntoIterator<Item = (String, Vec<u8>)>) -> Result<Self, LeaderError> {
        let puts: Vec<(String, Vec<u8>)> = puts.into_iter().take(PUT_BATCH_MAX + 1).collect();
        if puts.len() > PUT_BATCH_MAX {
            return Err(LeaderError::BatchTooLarge { max: PUT_BATCH_MAX });
        }
        Ok(PutBatch { puts })
    }

    /// How many puts.
    #[must_use]
    pub fn len(&self) -> usize {
        self.puts.len()
    }

    /// Whether it holds no put.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
    }

    /// The puts.
    pub(crate) fn into_puts(self) -> Vec<(String, Vec<u8>)> {
        self.puts
    }
}

/// How many writes this leader has applied, over all origins (cheaper than [`Inspect`]: for
/// progress checks). `None` while the leader is down.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Option<u64>")]
pub struct AppliedTotal;

/// Delete `key` at this leader (a timestamped tombstone that replicates like a write).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WriteReceipt, LeaderError>")]
pub struct Delete {
    /// The key.
    pub key: String,
}

impl Delete {
    /// A delete of `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Delete { key: key.into() }
    }
}

/// Any update of a key, whichever its keyspace's resolution: a put or delete, a siblings write
/// with the context of a read, a CRDT update. Answered once applied here.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WriteReceipt, LeaderError>")]
pub struct Write {
    /// The key.
    pub key: String,
    /// The update.
    pub update: Update,
    /// Acknowledge only once this many leaders hold the write (default: once applied here).
    pub concern: Option<WriteConcern>,
}

impl Write {
    /// Any update of `key`. Every constructor checks the key (and the value, when there is one),
    /// so a bad one is an error here rather than at the leader.
    pub fn new(key: impl Into<String>, update: Update) -> Result<Self, DataError> {
        let key = key.into();
        Key::new(&key)?;
        Ok(Write { key, update, concern: None })
    }

    /// This write, acknowledged once `leaders` leaders hold it, or an error after `timeout` that
    /// says the write stands and is still propagating.
    #[must_use]
    pub fn acknowledged_by(mut self, leaders: usize, timeout: std::time::Duration) -> Self {
        self.concern = Some(WriteConcern::leaders(leaders, timeout));
        self
    }

    /// This write, acknowledged under `concern`.
    #[must_use]
    pub fn with_concern(mut self, concern: WriteConcern) -> Self {
        self.concern = Some(concern);
        self
    }

    /// Increment a counter.
    pub fn increment(key: impl Into<String>, amount: u64) -> Result<Self, DataError> {
        Write::new(key, Update::Crdt(CrdtUpdate::Increment(amount)))
    }

    /// Decrement a PN-counter.
    pub fn decrement(key: impl Into<String>, amount: u64) -> Result<Self, DataError> {
        Write::new(key, Update::Crdt(CrdtUpdate::Decrement(amount)))
    }

    /// Add an element to a set.
    pub fn add(key: impl Into<String>, element: impl Into<Vec<u8>>) -> Result<Self, DataError> {
        Write::new(key, Update::Crdt(CrdtUpdate::Add(Value::new(element)?)))
    }

    /// Remove an element from a set.
    pub fn remove(key: impl Into<String>, element: impl Into<Vec<u8>>) -> Result<Self, DataError> {
        Write::new(key, Update::Crdt(CrdtUpdate::Remove(Value::new(element)?)))
    }

    /// Add `amount` to the counter of `field` in a counter map.
    pub fn map_increment(key: impl Into<String>, field: impl Into<Vec<u8>>, amount: u64) -> Result<Self, DataError> {
        let field = Value::new(field)?;
        Write::new(key, Update::Crdt(CrdtUpdate::MapIncrement { field, amount }))
    }

    /// Remove `field` from a counter map (as observed here).
    pub fn map_remove(key: impl Into<String>, field: impl Into<Vec<u8>>) -> Result<Self, DataError> {
        let field = Value::new(field)?;
        Write::new(key, Update::Crdt(CrdtUpdate::MapRemove { field }))
    }

    /// Set a register (blind).
    pub fn set(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Result<Self, DataError> {
        Write::new(key, Update::Crdt(CrdtUpdate::Set { value: Value::new(value)?, context: None }))
    }

    /// A siblings write that replaces what `context` (from [`GetSiblings`]) saw; `None`: delete.
    pub fn with_context(
        key: impl Into<String>,
        value: Option<Vec<u8>>,
        context: CausalContext,
    ) -> Result<Self, DataError> {
        let value = value.map(Value::new).transpose()?;
        Write::new(key, Update::PutWithContext { value, context })
    }
}

/// Subscribe `subscriber` to every change applied at this leader to a key starting with
/// `prefix` (an empty prefix: every key). Subscriptions survive a crash of the leader (they live
/// in the actor, not in the replica's state); at most [`MAX_SUBSCRIPTIONS`] per leader.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), LeaderError>")]
pub struct Subscribe {
    /// The key prefix.
    pub prefix: String,
    /// Who receives [`Changed`] messages.
    pub subscriber: actix::Recipient<Changed>,
}

/// The most subscriptions one leader keeps.
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// Where a subscription's notifications go: an actor, or the bounded channel behind a
/// [`crate::Subscription`] stream.
#[derive(Debug, Clone)]
pub(crate) enum Subscriber {
    /// An actor's recipient (unbounded mailbox, as actix's `do_send`).
    Actor(actix::Recipient<Changed>),
    /// A bounded channel; a notification that finds it full is counted in `missed`, not queued.
    Channel { sender: tokio::sync::mpsc::Sender<Changed>, missed: std::sync::Arc<std::sync::atomic::AtomicU64> },
}

impl Subscriber {
    /// Whether anyone still listens.
    pub(crate) fn connected(&self) -> bool {
        match self {
            Subscriber::Actor(recipient) => recipient.connected(),
            Subscriber::Channel { sender, .. } => !sender.is_closed(),
        }
    }

    /// Hands over one notification.
    pub(crate) fn notify(&self, changed: Changed) {
        match self {
            Subscriber::Actor(recipient) => recipient.do_send(changed),
            Subscriber::Channel { sender, missed } => {
                if sender.try_send(changed).is_err() {
                    missed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }
}

/// Subscribe a bounded channel (what [`crate::LeaderHandle::subscribe`] does).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), LeaderError>")]
pub(crate) struct SubscribeChannel {
    pub(crate) prefix: String,
    pub(crate) subscriber: Subscriber,
}

/// What `Cluster::settled` needs of a leader: cheap to answer, no store cloned.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Progress")]
pub(crate) struct GetProgress;

/// A leader's replication progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Whether it is up.
    pub(crate) up: bool,
    /// Whether it refuses writes: recovering, or fenced.
    pub(crate) writable: bool,
    /// Whether it is recovering (catching up after a restart or a rejoin).
    pub(crate) recovering: bool,
    /// Entries waiting for their dependencies.
    pub(crate) waiting: usize,
    /// What it applied.
    pub(crate) applied: VersionVector,
    /// Its counters, so that two looks can tell whether anything moved in between.
    pub(crate) metrics: Metrics,
    /// Messages dropped because its outbox to a peer was full.
    pub(crate) outbox_dropped: u64,
    /// Its disk's fsynced commits and records written (0 without a disk).
    pub(crate) disk: (u64, u64),
}

/// A key changed at a leader, for a subscriber.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Changed {
    /// The leader where it changed.
    pub leader: LeaderId,
    /// The key.
    pub key: String,
    /// The write that changed it (`None` for a snapshot merge of a siblings or CRDT key).
    pub dot: Option<roundtable_runtime::Dot>,
    /// Why: a local write, a replicated entry, or a snapshot merge.
    pub cause: roundtable_runtime::ChangeCause,
}

/// When a write is acknowledged. Without one (`concern: None`) a write is acknowledged once it
/// is applied in this leader's memory: [`WriteConcern::local`], the default.
///
/// | concern | acknowledged once | needs |
/// |---|---|---|
/// | [`local`](WriteConcern::local) (default) | applied here, in memory | — |
/// | [`durable`](WriteConcern::durable) | fsynced at this leader (group commit: writes that arrive while a commit syncs share the next one) | a disk ([`crate::ClusterBuilder::data_dir`]) |
/// | [`leaders(k)`](WriteConcern::leaders) | `k` leaders, this one included, hold it | — |
/// | [`durable_at(k)`](WriteConcern::durable_at) | fsynced here and held by `k` leaders | a disk at every leader |
///
/// `durable_at(k)` counts on every leader being durable: a durable leader sends nothing — no
/// entry, no acknowledgement — before what it says is on its disk, so a leader that says it
/// holds a write has it on disk. A concern that is not met within `timeout` is an error that says
/// the write itself stands and is still propagating.
///
/// ```
/// use std::time::Duration;
/// use roundtable_actors::{Put, WriteConcern};
/// let put = Put::new("k", "v").with_concern(WriteConcern::durable_at(2, Duration::from_secs(1)));
/// assert_eq!(put.concern.map(|c| (c.leaders, c.durable)), Some((2, true)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteConcern {
    /// How many leaders must hold the write (1: this one).
    pub leaders: usize,
    /// Whether this leader must have fsynced it.
    pub durable: bool,
    /// How long to wait.
    pub timeout: std::time::Duration,
}

impl WriteConcern {
    /// Applied in this leader's memory (what `concern: None` means too).
    #[must_use]
    pub const fn local() -> Self {
        WriteConcern { leaders: 1, durable: false, timeout: std::time::Duration::ZERO }
    }

    /// Fsynced at this leader, within `timeout`.
    #[must_use]
    pub const fn durable(timeout: std::time::Duration) -> Self {
        WriteConcern { leaders: 1, durable: true, timeout }
    }

    /// Held by `k` leaders, this one included, within `timeout`.
    #[must_use]
    pub const fn leaders(k: usize, timeout: std::time::Duration) -> Self {
        WriteConcern { leaders: k, durable: false, timeout }
    }

    /// Fsynced here and held by `k` durable leaders, within `timeout`.
    #[must_use]
    pub const fn durable_at(k: usize, timeout: std::time::Duration) -> Self {
        WriteConcern { leaders: k, durable: true, timeout }
    }
}

/// A write routed to this leader because it is the key's home (conflict avoidance).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WriteReceipt, LeaderError>")]
pub(crate) struct Routed(pub(crate) Write);

/// Read the siblings of a key of a siblings keyspace, with the causal context to write back.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<SiblingRead>, LeaderError>")]
pub struct GetSiblings {
    /// The key.
    pub key: String,
}

impl GetSiblings {
    /// A read of `key`'s siblings.
    pub fn new(key: impl Into<String>) -> Self {
        GetSiblings { key: key.into() }
    }
}

/// Read the state of a key of a CRDT keyspace.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<CrdtState>, LeaderError>")]
pub struct GetCrdt {
    /// The key.
    pub key: String,
}

impl GetCrdt {
    /// A read of `key`'s CRDT state.
    pub fn new(key: impl Into<String>) -> Self {
        GetCrdt { key: key.into() }
    }
}

/// Read `key` at this leader (local state; `None` when no write to it was applied here).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<ReadValue>, LeaderError>")]
pub struct Get {
    /// The key.
    pub key: String,
}

impl Get {
    /// A read of `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Get { key: key.into() }
    }
}

/// Ask a leader for a summary of its state (for `settled`, metrics and tests).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "LeaderState")]
pub struct Inspect;

/// A leader's state, as [`Inspect`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// The leader's id.
    pub id: LeaderId,
    /// Its name.
    pub name: String,
    /// Whether it is up (not crashed).
    pub up: bool,
    /// Whether it is catching up after a restart.
    pub recovering: bool,
    /// Whether its clock fenced it.
    pub fenced: bool,
    /// What it has applied.
    pub applied: VersionVector,
    /// How many entries wait for their dependencies.
    pub waiting: usize,
    /// The live set it believes.
    pub live: LeaderSet,
    /// Its counters.
    pub metrics: Metrics,
    /// Its last-write-wins store, key by key, in key order: each key's register (the winning
    /// write's value, `None` for a tombstone, its stamp and its dot).
    pub store: Vec<(Key, Register)>,
    /// Void entries it applied: writes lost with their leader's crash.
    pub voided: Vec<Dot>,
    /// Entries it refused for far-future timestamps and keeps for inspection.
    pub quarantined: Vec<QuarantinedWrite>,
    /// Keys of siblings and CRDT keyspaces with what a reader sees, in key order.
    pub resolved: Vec<(Key, Resolved)>,
    /// Everything it holds as one comparable value (equal at leaders that applied the same
    /// writes, siblings and CRDT keys included).
    pub digest: Vec<u8>,
    /// Messages to peers dropped because their outbox was full (see [`crate::FlowControl`]).
    pub outbox_dropped: u64,
}

/// A write a leader refused for its timestamp (stamped beyond `max_offset` ahead of the
/// leader's clock) and keeps for inspection; it was never applied there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedWrite {
    /// The write.
    pub dot: Dot,
    /// Its stamp (with the dot, the write's identity).
    pub hlc: HlcTimestamp,
    /// Its key.
    pub key: Key,
    /// The peer it came from.
    pub from: LeaderId,
    /// Why it was refused.
    pub reason: Rejection,
}

impl From<&Quarantined> for QuarantinedWrite {
    fn from(q: &Quarantined) -> Self {
        QuarantinedWrite {
            dot: q.entry.dot,
            hlc: q.entry.hlc,
            key: q.entry.key.clone(),
            from: q.from,
            reason: q.reason.clone(),
        }
    }
}

/// Fault injection: the leader crashes, losing its in-memory state; it stays down until
/// [`Restart`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Crash;

/// Answered once everything the leader applied before this message is on its disk: one wait
/// for many writes sent without a durable concern (a Redis pipeline). An error after `timeout`,
/// or at once from a leader without a disk.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), LeaderError>")]
pub struct SyncDisk {
    /// The longest to wait.
    pub timeout: std::time::Duration,
}

/// The health of the leader's clock and its measured offset from the time reference, in
/// nanoseconds (`None` while it is down).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Option<(roundtable_runtime::clock::ClockHealth, Option<i64>)>")]
pub struct ClockStatus;

/// Stops a leader for good: like a [`Crash`], and a durable leader's disk is closed (its file
/// can be opened again, by this process or another). Answered once it is.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Fault injection: a crashed leader restarts with empty state and catches up from its peers.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Restart;

/// From the supervisor: the live set changed.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct SetLive(pub(crate) LeaderSet);

/// From the supervisor: refuse writes until your clock is synchronised.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct Fence;

/// How the supervisor reaches one leader: rewire it, fence it, restart it.
#[derive(Clone)]
pub(crate) struct LeaderControl {
    pub(crate) set_live: actix::Recipient<SetLive>,
    pub(crate) fence: actix::Recipient<Fence>,
    pub(crate) restart: actix::Recipient<Restart>,
}
