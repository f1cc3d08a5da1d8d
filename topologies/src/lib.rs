//! Pure topology logic for roundtable.
//!
//! Given a topology, the set of live leaders, the origin of an entry, the leader it came from and
//! the leader asking, this crate answers *to whom do I forward it?* — and, when leaders die or
//! return, how the wiring changes. Everything here is a pure function: no clocks, no IO, no
//! randomness, no actix. The runtime and the actors call it; the simulator and the property tests
//! check it.
//!
//! **Architecture invariant:** this crate knows nothing about entries, clocks or conflicts — only
//! leader ids and sets of them.
#![warn(missing_docs, unreachable_pub)]

mod graph;
mod home;
mod ids;
mod topology;

pub use graph::Graph;
pub use home::rendezvous_home;
pub use ids::{LeaderId, LeaderIdOutOfRange, LeaderSet, LeaderSetIter, MAX_LEADERS};
pub use topology::*;
