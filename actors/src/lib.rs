//! The actix shell of roundtable: leaders as actors, the supervisor that rewires the topology
//! when a leader dies, the network between them (in-process or simulated), the [`Cluster`]
//! builder and the deterministic [`Simulation`].
//!
//! **Architecture invariant:** no replication logic lives here. A handler reads the clock, turns
//! its message into one call on `roundtable_runtime::Replica`, and performs the effects that
//! come back.
#![warn(missing_docs, unreachable_pub)]

pub mod check;
pub mod clock;
pub mod clock_sync;
pub mod cluster;
pub mod leader;
pub mod messages;
pub mod network;
pub mod sim;
pub mod supervisor;
pub mod svg;
pub mod sweep;
pub mod trace;

pub use check::{CheckReport, Invariant, Violation, WriteFate};
pub use clock::{LeaderClockSource, SimEpoch, SystemClock};
pub use clock_sync::{ClockSample, ClockSync, ClockSyncConfig, TimeQuery, TimeServer};
pub use cluster::{ClockSkew, Cluster, ClusterBuilder, ClusterError, ClusterMetrics, FlowControl};
pub use leader::{Leader, LeaderSpec};
pub use messages::{
    AppliedTotal, Changed, Crash, Delete, Get, GetCrdt, GetSiblings, Inspect, LeaderError, LeaderState, Put, PutBatch,
    Restart, Subscribe, Write, WriteConcern, MAX_SUBSCRIPTIONS, PUT_BATCH_MAX,
};
pub use network::{Fault, NetStats, Network, NetworkModel};
pub use roundtable_runtime::resolution::{CrdtKind, CrdtState, CrdtUpdate, Resolution, Update};
pub use sim::{ms, AckedWrite, ClientOp, FaultEvent, SimError, SimRun, Simulation, Workload};
pub use supervisor::{Supervisor, SupervisorConfig};
pub use trace::{Actor as TraceActor, Mark, MarkLine, Trace, TraceLine, TraceSink, Vv};
