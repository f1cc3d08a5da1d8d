//! roundtable: embedded multi-leader replication.
#![warn(missing_docs, unreachable_pub)]

pub use roundtable_actors as actors;
pub use roundtable_runtime as runtime;
pub use roundtable_topologies as topologies;
