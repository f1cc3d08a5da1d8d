//! The sans-IO replication core of roundtable.
#![warn(missing_docs, unreachable_pub)]

pub mod clock;
pub mod time;

pub use roundtable_topologies as topologies;
pub use roundtable_topologies::{LeaderId, LeaderSet, MAX_LEADERS};
pub use time::WallTime;
