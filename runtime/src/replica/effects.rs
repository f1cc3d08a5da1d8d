//! What comes out of a replica: its effects ([`Effect`], [`Alarm`], [`ChangeCause`]), what a
//! client gets back ([`WriteReceipt`], [`ReadValue`], [`WriteError`]), what it holds of
//! siblings and CRDT keys ([`Resolved`]), the entries kept for inspection ([`Quarantined`]),
//! and the counters of what it did ([`Metrics`]).

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::causality::Dot;
use crate::clock::{ClockError, HlcTimestamp};
use crate::entry::{Entry, Key, Value};
#[cfg(doc)]
use crate::replica::{Replica, ReplicaConfig};
use crate::resolution::{CrdtState, Resolution};
use crate::siblings::SiblingError;
use crate::trace::{Rejection, TraceEvent};
use crate::wire::PeerMessage;

use super::Record;
use crate::{LeaderId, LeaderSet};

/// What became of a client write a shell hands to [`Replica::handle_client_update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientWrite {
    /// Applied here; answer the client with this receipt.
    Applied(WriteReceipt),
    /// The key lives at another leader (conflict avoidance): send the write there, once
    /// ([`Replica::handle_routed_update`] applies it at the home), and answer the client with
    /// what the home answers. The route is already traced.
    Route {
        /// The key's home leader.
        home: LeaderId,
        /// The key.
        key: Key,
        /// The update, unchanged (boxed: it can be large, a receipt is small).
        update: alloc::boxed::Box<crate::resolution::Update>,
    },
}

/// Why a client read was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The key's keyspace keeps no single register (siblings, a CRDT): read it the other way.
    #[error("key {key} is in a {resolution} keyspace: read it with {read_instead}")]
    WrongResolution {
        /// The key.
        key: Key,
        /// Its keyspace's resolution.
        resolution: Resolution,
        /// The read that fits (`read_siblings`, `read_crdt`; `GetSiblings`, `GetCrdt` in the actor
        /// shell).
        read_instead: &'static str,
    },
}

/// Why a client write was refused. Nothing was stamped, applied or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This leader's clock is out of tolerance, so it would stamp a bad timestamp.
    #[error("leader {leader} is fenced: {source}")]
    Fenced {
        /// The leader.
        leader: LeaderId,
        /// What its clock reported.
        source: ClockError,
    },
    /// The update would make the key's state larger than half a frame, which a snapshot could no
    /// longer carry to a peer that is far behind.
    #[error("key {key} would exceed {limit} bytes of state; split it into several keys")]
    KeyTooLarge {
        /// The key.
        key: Key,
        /// The limit.
        limit: usize,
    },
    /// The key's keyspace avoids conflicts by home leader, and its home is another leader: route
    /// the write there (the actor shell does).
    #[error("key {key} lives at its home leader {home}")]
    NotHome {
        /// The key.
        key: Key,
        /// Its home leader.
        home: LeaderId,
    },
    /// The update does not fit the resolution of the key's keyspace (a counter increment on a
    /// last-write-wins key, a plain put on a counter…).
    #[error("{update} does not fit key {key} of a {resolution} keyspace")]
    WrongResolution {
        /// The key.
        key: Key,
        /// The update's name.
        update: &'static str,
        /// The keyspace's resolution.
        resolution: Resolution,
    },
    /// The key already holds as many siblings as its keyspace allows; read it and write with the
    /// context to resolve them.
    #[error(transparent)]
    TooManySiblings(#[from] SiblingError),
    /// The operation is not one a client may issue (void entries are the runtime's own).
    #[error("a client cannot write a {op} operation")]
    NotAClientOp {
        /// The operation's name.
        op: &'static str,
    },
    /// The supervisor fenced this leader because its timestamps ran ahead at its peers; it writes
    /// again once its own clock synchronisation says it is within tolerance.
    #[error("leader {leader} is fenced by the cluster until its clock is synchronised")]
    FencedByCluster {
        /// The leader.
        leader: LeaderId,
    },
    /// This leader restarted and does not know its own last sequence number yet: it waits for
    /// its peers' reports (`waiting_for`), then a quiet period, then for its own writes to come
    /// back and to catch up with the peers named. [`Replica::is_catching_up`] says when it is
    /// done.
    #[error("leader {leader} is catching up after a restart (waiting for {})", waiting_list(waiting_for))]
    CatchingUp {
        /// The leader.
        leader: LeaderId,
        /// The peers it still waits for.
        waiting_for: LeaderSet,
    },
}

fn waiting_list(waiting_for: &LeaderSet) -> alloc::string::String {
    if waiting_for.is_empty() {
        "a quiet period and its own writes to come back".into()
    } else {
        alloc::format!("{waiting_for}")
    }
}

/// What a client gets back for an accepted write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteReceipt {
    /// The write's identity.
    pub dot: Dot,
    /// The timestamp it was stamped with.
    pub hlc: HlcTimestamp,
}

/// What a read returns: the key's current register at this leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadValue {
    /// The value, or `None` when the last write was a delete.
    pub value: Option<Value>,
    /// The write that produced it.
    pub dot: Dot,
    /// Its timestamp.
    pub hlc: HlcTimestamp,
}

/// An output of the replica, to be performed by the shell in order.
// `Send` is the large variant (a `PeerMessage` holds fixed 520-byte version vectors) and also the
// most frequent one: boxing it would add an allocation per message to save space in the rarer
// variants. Compact version vectors (issue 11) shrink it instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Effect {
    /// Send this message to that peer.
    Send {
        /// The peer.
        to: LeaderId,
        /// The message.
        msg: PeerMessage,
    },
    /// Record this trace event.
    Trace(TraceEvent),
    /// Tell the supervisor.
    Alarm(Alarm),
    /// A key changed here (emitted only after [`Replica::notify_changes`] turned it on), for
    /// subscribers.
    Changed {
        /// The key.
        key: Key,
        /// The write that changed it (`None` for a snapshot merge of a siblings or CRDT key,
        /// which joins many writes at once).
        dot: Option<Dot>,
        /// Why it changed.
        cause: ChangeCause,
    },
    /// Persist this record (only with [`ReplicaConfig::durable`]). A shell must not perform a
    /// `Send` of the same input before every `Persist` of it is durable (see
    /// [`Replica::resume`]).
    Persist(Record),
}

/// Something the shell should tell the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Alarm {
    /// A peer's timestamps run beyond `max_offset` ahead of this leader's clock: its clock is
    /// off (or it misbehaves), and it should be fenced.
    ClockOffender {
        /// The leader whose stamp it was.
        leader: LeaderId,
        /// How far ahead.
        ahead_by: Duration,
    },
}

/// Why a key changed at a leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCause {
    /// A client wrote it at this leader.
    LocalWrite,
    /// An entry replicated from its origin was applied.
    Replicated {
        /// The write's origin.
        origin: LeaderId,
    },
    /// A state snapshot from a peer was merged.
    Merge {
        /// The peer.
        from: LeaderId,
    },
}

/// What a reader sees of a key of a siblings or CRDT keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The live siblings of a siblings key, in dot order.
    Siblings(Vec<(Dot, Value)>),
    /// The state of a CRDT key.
    Crdt(CrdtState),
}

/// Stable text: siblings as `[dot=value …]`, CRDTs as [`CrdtState::render`].
impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolved::Siblings(siblings) => {
                f.write_str("[")?;
                for (i, (dot, value)) in siblings.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{dot}={value}")?;
                }
                f.write_str("]")
            }
            Resolved::Crdt(state) => f.write_str(&state.render()),
        }
    }
}

/// An entry rejected for its timestamp, kept for inspection (never applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The peer it came from.
    pub from: LeaderId,
    /// The entry.
    pub entry: Entry,
    /// Why it was rejected.
    pub reason: Rejection,
}

/// Counters of what a replica did. All monotonic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Client writes accepted.
    pub writes_accepted: u64,
    /// Client writes refused (fenced or catching up).
    pub writes_refused: u64,
    /// Messages sent to peers, by effect.
    pub messages_sent: u64,
    /// Entries sent to peers (topology forwarding and catch-up).
    pub entries_sent: u64,
    /// Batched replicate messages sent (with [`ReplicaConfig::batch`]).
    pub batches_sent: u64,
    /// New entries received from peers (first copies).
    pub entries_received: u64,
    /// Duplicate copies dropped.
    pub duplicates_dropped: u64,
    /// Entries that had to wait for their dependencies.
    pub causal_waits: u64,
    /// Entries refused because the causal buffer was full.
    pub buffer_full: u64,
    /// Entries applied (local and remote).
    pub applied: u64,
    /// Writes discarded by last-write-wins conflict decisions here (every leader that sees a
    /// conflict decides it and counts it: one conflict counts at every leader).
    pub lww_discarded: u64,
    /// Of those, this leader's own writes: each losing write is discarded at its origin once
    /// (the winner overwrote it there, or, back at a restarted origin, it arrived after the
    /// winner), so summing this over the leaders counts each conflict once.
    pub lww_discarded_own: u64,
    /// Peer messages or entries rejected (all reasons, timestamps included).
    pub rejected: u64,
    /// Entries rejected for a timestamp beyond `max_offset`.
    pub timestamps_rejected: u64,
    /// Digests sent.
    pub digests_sent: u64,
    /// Catch-up entries sent in answer to digests.
    pub catch_up_entries_sent: u64,
    /// Snapshot chunks sent.
    pub snapshot_chunks_sent: u64,
    /// Snapshots not sent because they would need more than `snapshot_chunks_max` chunks.
    pub snapshots_refused: u64,
    /// Snapshots adopted.
    pub snapshots_applied: u64,
    /// Log entries truncated because every live leader had them.
    pub log_truncated: u64,
    /// Log entries truncated early because the log's bound was hit.
    pub log_truncated_forced: u64,
    /// Quarantined entries evicted because the quarantine's bound was hit.
    pub quarantine_evicted: u64,
    /// Void entries this leader issued after a restart (its writes lost with the crash).
    pub voids_issued: u64,
    /// Siblings writes that left a key with concurrent siblings.
    pub siblings_kept: u64,
    /// Gossip rounds (digests to random peers).
    pub gossip_rounds: u64,
    /// Entries (and snapshots) of a recovering leader refused because this leader holds it
    /// sealed and did not hold them already.
    pub sealed_refused: u64,
}
