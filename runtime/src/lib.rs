//! The sans-IO replication core of roundtable.
//!
//! Everything a leader decides lives here, as plain data and pure state machines: clocks
//! ([`clock`]: simulated physical clocks, NTP correction, the hybrid logical clock), causality
//! ([`causality`]: dots and version vectors), the replication log and causal buffer ([`log`]),
//! the last-write-wins store ([`store`]), the wire format ([`wire`]), trace events ([`trace`])
//! and the leader itself ([`Replica`]).
//!
//! **Architecture invariant:** this crate depends on no actor framework, no async runtime and no
//! clock. Time enters as an argument (`now`), randomness as a seeded generator ([`rng`]). Given
//! the same inputs, it produces the same outputs, byte for byte.
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;

pub mod causality;
pub mod clock;
pub mod crdt;
pub mod entry;
pub mod log;
pub mod replica;
pub mod resolution;
pub mod rng;
pub mod siblings;
pub mod store;
pub mod time;
pub mod trace;
pub mod wire;

pub use causality::{Causality, Dot, Seq, VersionVector};
pub use entry::{DataError, Entry, Key, Op, SharedEntry, Value};
#[cfg(feature = "fault-injection")]
pub use replica::Sabotage;
pub use replica::{
    Alarm, BatchConfig, ChangeCause, ClientWrite, ConfigError, Effect, GossipConfig, HistoryConfig, Image, KeyEvent,
    KeyHistory, Metrics, ReadError, ReadValue, Record, Replica, ReplicaConfig, Resolved, ResumeError, WriteError,
    WriteReceipt, ACKS_REQUEST_EVERY,
};
pub use roundtable_topologies as topologies;
pub use roundtable_topologies::{LeaderId, LeaderSet, Topology, MAX_LEADERS};
pub use time::WallTime;
pub use trace::{Rejection, TraceEvent};
