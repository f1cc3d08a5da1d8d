//! roundtable: embedded multi-leader replication for Rust.
//!
//! Several *leaders* each accept writes and propagate them to each other along a chosen
//! [`Topology`] (circle, star, all-to-all, custom). The core ([`runtime`]) is a sans-IO state
//! machine per leader: it stamps writes with a hybrid logical clock over an NTP-corrected
//! physical clock, suppresses duplicates, delivers causally dependent writes in order, resolves
//! conflicting writes by last-write-wins (reporting every write it discards), and repairs what the
//! topology lost through anti-entropy. [`topologies`] holds the pure wiring logic; [`actors`]
//! holds the actix shell: leader and supervisor actors, the transport interface, the
//! [`actors::Cluster`] builder. The deterministic simulator and the invariant checker are
//! `roundtable::sim` (feature `sim`, off by default: a host application does not compile them).
//!
//! Three entry points: [`prelude`] for host applications, [`core`] for the sans-IO state machine
//! (drive a `Replica` yourself), and `sim` for the simulator.
//!
//! A host application starts a cluster with the builder and talks to each leader through its
//! handle ([`prelude`]); every call returns one [`Error`]:
//!
//! ```
//! use roundtable::prelude::*;
//!
//! actix::System::new().block_on(async {
//!     let cluster = Cluster::builder()
//!         .leaders(["us-east", "eu-west", "ap-south"])
//!         .topology(Topology::AllToAll { relay: false })
//!         .resolution(Resolution::LastWriteWins)
//!         .start()
//!         .await?;
//!     let east = cluster.leader("us-east")?;
//!     east.put("user:42", "Ada").await?;
//!     cluster.settled().await?;
//!     let read = cluster.leader("ap-south")?.get("user:42").await?;
//!     assert_eq!(read.and_then(|r| r.value).as_ref().and_then(|v| v.as_str()), Some("Ada"));
//!     Ok::<(), roundtable::Error>(())
//! })?;
//! # Ok::<(), roundtable::Error>(())
//! ```
//!
//! The same logic without actors or IO, one [`core::Replica`] per leader, driven by hand:
//!
//! ```
//! use roundtable::core::{Effect, Key, LeaderId, LeaderSet, Op, Replica, ReplicaConfig, Topology, Value, WallTime};
//!
//! let members = LeaderSet::first(2);
//! let (a, b) = (LeaderId::new(0)?, LeaderId::new(1)?);
//! let now = WallTime::from_secs(1_767_225_600);
//! let mut east = Replica::new(a, members, Topology::AllToAll { relay: false }, ReplicaConfig::default())?;
//! let mut west = Replica::new(b, members, Topology::AllToAll { relay: false }, ReplicaConfig::default())?;
//!
//! east.handle_write(now, Key::new("user:42")?, Op::Put(Value::try_from("Ada")?))?;
//! for effect in east.drain_effects() {
//!     if let Effect::Send { to, msg } = effect {
//!         assert_eq!(to, b);
//!         west.handle_peer(now, a, msg);
//!     }
//! }
//! let read = west.read(&Key::new("user:42")?).expect("replicated");
//! assert_eq!(read.value.as_ref().and_then(|v| v.as_str()), Some("Ada"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, unreachable_pub)]

pub use roundtable_actors as actors;
pub use roundtable_runtime as core;
pub use roundtable_runtime as runtime;
#[cfg(feature = "sim")]
pub use roundtable_sim as sim;
pub use roundtable_topologies as topologies;

pub use roundtable_actors::Error;
pub use roundtable_runtime::Topology;

/// Snapshot-tests a simulation's trace with insta: `assert_trace!("name", run)`.
///
/// The snapshot file is `snapshots/<name>.snap` in the nearest `snapshots/` folder at or above
/// the calling crate's root (a crate of a workspace shares the workspace's), named without the
/// module prefix and without the expression, so every snapshot reads well on its own and lives
/// in one reviewed folder. `run` is anything with a `render() -> String` method (a
/// `roundtable_sim::SimRun` or a [`actors::Trace`]). The calling crate needs `insta` as a
/// dev-dependency.
///
/// When a trace changes, the test fails and insta writes `snapshots/<name>.snap.new`; review it
/// with `cargo insta review` (or read the diff), then accept it or fix the code.
#[macro_export]
macro_rules! assert_trace {
    ($name:expr, $run:expr) => {
        ::insta::with_settings!({
            snapshot_path => $crate::snapshot_dir(env!("CARGO_MANIFEST_DIR")),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            ::insta::assert_snapshot!($name, $run.render());
        });
    };
}

/// The nearest `snapshots/` folder at or above `crate_root` (`crate_root/snapshots` when there
/// is none). Used by [`assert_trace!`].
#[doc(hidden)]
#[must_use]
pub fn snapshot_dir(crate_root: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(crate_root);
    root.ancestors().map(|dir| dir.join("snapshots")).find(|dir| dir.is_dir()).unwrap_or_else(|| root.join("snapshots"))
}

/// The names most programs need.
pub mod prelude {
    pub use roundtable_actors::{
        AsLeader, Changed, Cluster, ClusterError, CrdtKind, CrdtState, CrdtUpdate, Delete, Error, Get, GetCrdt,
        GetSiblings, LeaderError, LeaderHandle, LeaderRef, LeaderState, Put, Resolution, Subscribe, Subscription,
        Trace, TraceActor, Update, Write,
    };
    pub use roundtable_runtime::clock::{ClockHealth, CorrectionConfig, HlcTimestamp, NtpSample};
    pub use roundtable_runtime::wire::PeerMessage;
    pub use roundtable_runtime::{
        ChangeCause, ClientWrite, Dot, Effect, Key, LeaderId, LeaderSet, Op, ReadError, ReadValue, Replica,
        ReplicaConfig, TraceEvent, Value, VersionVector, WallTime, WriteError, WriteReceipt,
    };
    pub use roundtable_topologies::{Graph, Topology};
}

/// The README's code examples, compiled (and run) as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
