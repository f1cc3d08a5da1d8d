//! The settings of a replica ([`ReplicaConfig`] with its [`BatchConfig`] and [`GossipConfig`]),
//! the fault-injection switch (`Sabotage`, with the `fault-injection` feature) and why a
//! replica could not be built ([`ConfigError`]).

use core::time::Duration;

use roundtable_topologies::TopologyError;

use crate::clock::{ClockError, CorrectionConfig};
use crate::replica::HistoryConfig;
#[cfg(doc)]
use crate::replica::{Metrics, Replica};
use crate::resolution::Keyspaces;
#[cfg(doc)]
use crate::trace::TraceEvent;
#[cfg(doc)]
use crate::wire;
use crate::{LeaderId, LeaderSet};

/// Settings of one replica. [`ReplicaConfig::default`] is a sensible starting point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// A remote timestamp further ahead of local physical time than this is rejected
    /// (default 500 ms, as CockroachDB and uhlc).
    pub max_offset: Duration,
    /// How the NTP correction slews, steps and fences.
    pub correction: CorrectionConfig,
    /// The most entries waiting for their dependencies (default 1024).
    pub causal_buffer_max: usize,
    /// The most entries in the replication log (default 65,536); beyond it the oldest are
    /// truncated early and peers that still need them receive a snapshot.
    pub log_entries_max: usize,
    /// How often anti-entropy digests go to the neighbours (default 1 s).
    pub anti_entropy_interval: Duration,
    /// How often acknowledgement digests go out so that each leader learns what everyone holds
    /// and can truncate its log (default 5 s): to every live member, or only to the neighbours
    /// when a hub hears from everyone (star, all-to-all) and its stable vector travels in its
    /// digests. `None`: no acknowledgement rounds; the log then shrinks only by what the
    /// anti-entropy digests of the neighbours tell (enough in all-to-all, where everyone is a
    /// neighbour) or at its bound.
    pub ack_interval: Option<Duration>,
    /// The most entries in one catch-up message (default 256); a message also stays under
    /// [`wire::MAX_FRAME_BYTES`].
    pub catch_up_batch_max: usize,
    /// The most entries sent in answer to one digest (default 4096); the next digest continues.
    pub catch_up_entries_max: usize,
    /// The most registers in one snapshot chunk (default 512); a chunk also stays under
    /// [`wire::MAX_FRAME_BYTES`].
    pub snapshot_chunk_registers: usize,
    /// The most chunks of one snapshot (default 4096), staged whole before adoption; set it the
    /// same at every leader. A receiver rejects a larger snapshot, and a sender whose state needs
    /// more chunks does not send one: it traces [`TraceEvent::SnapshotTooLarge`] (once per peer
    /// and size) and counts [`Metrics::snapshots_refused`], and the peer stays behind until the
    /// bound (or `snapshot_chunk_registers`, or `log_entries_max`, so that the log still holds
    /// what the peer lacks) is raised. With the defaults that takes about two million registers.
    pub snapshot_chunks_max: u32,
    /// The most quarantined (rejected, far-future) entries kept for inspection (default 256).
    pub quarantine_max: usize,
    /// Whether to emit trace events (default true). Counters are kept either way.
    pub trace: bool,
    /// Remember recent decisions about last-write-wins keys for [`Replica::explain`] (default
    /// off: `None`). Bounded by [`HistoryConfig`].
    ///
    /// [`Replica::explain`]: super::Replica::explain
    pub key_history: Option<HistoryConfig>,
    /// The keyspaces and their conflict resolutions (default: everything last-write-wins).
    pub keyspaces: Keyspaces,
    /// Gossip: every `interval`, a digest to `fanout` live peers drawn at random (seeded), on
    /// top of the topology's neighbours — the classic way state-based CRDTs spread, and a faster
    /// repair for every keyspace when links break. Off by default.
    pub gossip: Option<GossipConfig>,
    /// After a restart, wait for a digest from *every* member before writing, not only the live
    /// ones (default true). A write of this leader that reached only a member that is down right
    /// now is then never given its dot again; the price is that a restarted leader cannot write
    /// while any member is down (its error names them). `false` trades that safety for
    /// availability: see [`Replica::restarted`].
    pub restart_waits_for_all_members: bool,
    /// How long a restarted or rejoining leader waits, from its start, before it takes its peers'
    /// answers as the truth about its own earlier writes (default 1 s). Messages its earlier life
    /// sent may still be in flight; an answer given before they land misses them, and the leader
    /// would issue their sequence numbers again. Make it longer than a message can take in
    /// flight: twice the longest a message takes, since an answer composed before a late entry
    /// lands may itself arrive after the quiet period. (The seed sweep found a fenced leader that
    /// rejoined at once, concluded before its last entries landed, and left their successors
    /// waiting for ever.)
    pub recovery_quiet: Duration,
    /// Batching of forwarded entries (default `None`: each entry leaves at once, in a message of
    /// its own — the lowest latency). With a [`BatchConfig`], entries bound for the same peer
    /// share messages: fewer, larger messages, at the price of up to `flush_interval` of delay.
    pub batch: Option<BatchConfig>,
    /// Entries this leader applied less than this long ago are not sent in answer to a digest
    /// (default 500 ms): they are most likely still on their way to the asker along the
    /// topology, and sending them again doubles the traffic (the broadcast benchmark measured
    /// as many catch-up messages as digests). A leader that is catching up after a restart gets
    /// everything at once. A lost entry is repaired by the first digest after the grace.
    pub catch_up_grace: Duration,
    /// Emit [`crate::replica::Effect::Persist`] for every change to what the replica holds, for a
    /// shell that keeps it on disk (default false: an in-memory leader). See
    /// [`crate::replica::Replica::resume`] for the rule the shell must follow.
    pub durable: bool,
    /// Breaks one replication mechanism on purpose, to show that the simulator's invariant
    /// checker catches the bug (default [`Sabotage::None`]). Exists only with the
    /// `fault-injection` feature, which no production build should enable.
    #[cfg(feature = "fault-injection")]
    pub sabotage: Sabotage,
}

/// One replication mechanism broken on purpose (the `fault-injection` feature): the bug each
/// invariant of the simulator's checker exists to catch.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sabotage {
    /// Nothing broken.
    #[default]
    None,
    /// Entries are applied as soon as they are next from their origin, whatever else they
    /// depend on (breaks causal order).
    SkipDependencyCheck,
    /// A copy of an entry already applied is applied again (breaks exactly-once).
    SkipDuplicateSuppression,
    /// A remote timestamp is merged into the HLC however far ahead it is (breaks `max_offset`).
    AcceptFarFutureTimestamps,
}

/// How a replica batches the entries it forwards; see [`ReplicaConfig::batch`].
///
/// ```
/// use std::time::Duration;
/// use roundtable_runtime::{BatchConfig, ReplicaConfig};
/// let config = ReplicaConfig {
///     batch: Some(BatchConfig { max_entries: 128, flush_interval: Duration::from_millis(50), min_fanout: 2 }),
///     ..ReplicaConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// The most entries in one message; a full batch leaves at once (it also leaves before it
    /// would outgrow a frame).
    pub max_entries: usize,
    /// The longest an entry waits for others to share its message. Zero: the entries one input
    /// produces (a client write, a received message) leave together as soon as it is handled.
    pub flush_interval: Duration,
    /// Only entries forwarded to at least this many peers wait to be batched; the others leave
    /// at once. Batching pays where one leader fans out to many (a star's hub, all-to-all), and
    /// only adds delay where it sends to one (a spoke, a circle). 1: batch everything.
    pub min_fanout: usize,
}

impl Default for BatchConfig {
    /// 256 entries, flushed every 10 ms, whatever the fan-out.
    fn default() -> Self {
        BatchConfig { max_entries: 256, flush_interval: Duration::from_millis(10), min_fanout: 1 }
    }
}

/// How a replica gossips; see [`ReplicaConfig::gossip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GossipConfig {
    /// How many random live peers each round.
    pub fanout: usize,
    /// How often.
    pub interval: Duration,
    /// The seed of the peer choices (each leader mixes in its id).
    pub seed: u64,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig { fanout: 1, interval: Duration::from_secs(1), seed: 0 }
    }
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            max_offset: Duration::from_millis(500),
            correction: CorrectionConfig::default(),
            causal_buffer_max: 1024,
            log_entries_max: 65_536,
            anti_entropy_interval: Duration::from_secs(1),
            ack_interval: Some(Duration::from_secs(5)),
            catch_up_batch_max: 256,
            catch_up_entries_max: 4096,
            snapshot_chunk_registers: 512,
            snapshot_chunks_max: 4096,
            quarantine_max: 256,
            trace: true,
            key_history: None,
            keyspaces: Keyspaces::default(),
            gossip: None,
            restart_waits_for_all_members: true,
            recovery_quiet: Duration::from_secs(1),
            batch: None,
            catch_up_grace: Duration::from_millis(500),
            durable: false,
            #[cfg(feature = "fault-injection")]
            sabotage: Sabotage::None,
        }
    }
}

/// Why a replica could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The leader is not among the members.
    #[error("leader {leader} is not a member of the cluster {members}")]
    NotAMember {
        /// The leader.
        leader: LeaderId,
        /// The members.
        members: LeaderSet,
    },
    /// The topology does not fit the members.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The clock settings are invalid.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// A bound is zero.
    #[error("{0} must be at least 1")]
    ZeroBound(&'static str),
}
