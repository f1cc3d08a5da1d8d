//! The actix shell of roundtable: leaders as actors, the supervisor that rewires the topology
//! when a leader dies, clock synchronisation, the transport interface with its in-process
//! implementation, and the [`Cluster`] builder a host application uses. The simulator, the
//! simulated network and the invariant checker live in `roundtable-sim`, which a host never
//! compiles.
//!
//! **Architecture invariant:** no replication logic lives here. A handler reads the clock, turns
//! its message into one call on `roundtable_runtime::Replica`, and performs the effects that
//! come back.
//!
//! Files depend on each other in one direction only (checked by `tests/architecture.rs`):
//! `clock` ← `trace`; {`messages`, `trace`} ← `transport`; `clock` ← `clock_sync`;
//! {`messages`, `trace`, `transport`} ← `supervisor`; `messages` ← `error` ← `handle` (with
//! `leader`); {`messages`, `trace`, `transport`} ← `tcp` (feature `tcp`: the TCP transport
//! between nodes); everything ← `cluster`. Actors
//! address each other through recipients and the [`transport`] interface, never through each
//! other's types.
#![warn(missing_docs, unreachable_pub)]

// Private modules: what a host needs is re-exported below. `trace`, `transport` and
// `clock_sync` stay public: they are the interfaces other crates implement (the simulator's
// network and time server, an NTP client later). `tcp` is the transport between processes.
mod clock;
pub mod clock_sync;
mod cluster;
mod error;
mod handle;
mod leader;
mod messages;
#[cfg(feature = "ntp")]
pub mod ntp;
pub mod storage;
mod supervisor;
#[cfg(feature = "tcp")]
pub mod tcp;
pub mod trace;
pub mod transport;
mod txn;

pub use clock::{LeaderClockSource, SimEpoch, SystemClock};
pub use clock_sync::{ClockSample, ClockSync, TimeQuery, TimeReference};
pub use cluster::{
    AsLeader, ClockSkew, Cluster, ClusterBuilder, ClusterError, ClusterMetrics, FlowControl, LeaderRef,
    DEFAULT_CHECKPOINT_EVERY,
};
pub use error::Error;
pub use handle::{LeaderHandle, Subscription, SUBSCRIPTION_CAPACITY};
pub use leader::{Leader, LeaderSpec};
pub use messages::{
    AppliedTotal, Changed, ClockStatus, Crash, Delete, Get, GetCrdt, GetSiblings, Inspect, LeaderError, LeaderState,
    Put, PutBatch, QuarantinedWrite, Restart, Shutdown, Subscribe, SyncDisk, Write, WriteConcern, MAX_SUBSCRIPTIONS,
    PUT_BATCH_MAX,
};
pub use roundtable_runtime::resolution::{CrdtKind, CrdtState, CrdtUpdate, Resolution, Update};
pub use supervisor::{Liveness, Supervisor, SupervisorConfig};
pub use trace::{Actor as TraceActor, Mark, MarkLine, Trace, TraceSink, Vv};
pub use transport::{
    Connect, Fault, Heartbeat, InProcess, KindStats, LeaderInbox, NetStats, Parcel, Report, Route, Stats,
    SupervisorInbox, Transmit, Transport, TransportLinks,
};
pub use txn::{Atomically, Txn};
