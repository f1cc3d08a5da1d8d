//! The messages a host application sends to a leader, and their answers. One type per message,
//! one handler per message, as actix likes it.

use actix::Message;
use roundtable_runtime::{DataError, LeaderId, LeaderSet, Metrics, ReadValue, VersionVector, WriteError, WriteReceipt};

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
}

/// Write `value` under `key` at this leader. Answered once the write is applied here.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WriteReceipt, LeaderError>")]
pub struct Put {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

impl Put {
    /// A put of `value` (bytes or text) under `key`.
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Put { key: key.into(), value: value.into() }
    }
}

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
    /// Its store, key by key: `(key, value or None for a tombstone, dot)`, in key order.
    pub store: Vec<(String, Option<Vec<u8>>, String)>,
    /// Void entries it applied: writes lost with their leader's crash.
    pub voided: Vec<roundtable_runtime::Dot>,
}

/// Fault injection: the leader crashes, losing its in-memory state; it stays down until
/// [`Restart`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Crash;

/// Fault injection: a crashed leader restarts with empty state and catches up from its peers.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Restart;

/// From the supervisor: the live set changed.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct SetLive(pub LeaderSet);

/// From the network: a frame from a peer.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Deliver {
    /// The peer.
    pub from: LeaderId,
    /// The encoded envelope.
    pub frame: Vec<u8>,
}

/// From a leader, through the network, to the supervisor: "I am alive".
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Heartbeat {
    /// The leader.
    pub from: LeaderId,
}
