//! The deterministic simulator of roundtable, and what reviewers read of its runs.
//!
//! - [`Simulation`] runs a whole cluster of real leader actors on a current-thread tokio runtime
//!   with paused time, over the [`network::SimulatedNetwork`] (seeded latency, loss,
//!   duplication, reordering, partitions) and, optionally, a [`time_server::TimeServer`] for
//!   NTP-style clock synchronisation; the same seed gives the same trace.
//! - [`check`] is the invariant checker every run can be put through ([`SimRun::check`]).
//! - [`sweep`] runs many seeds over topologies, resolutions and fault mixes, and keeps the
//!   failures with the command that replays each.
//! - [`svg`] draws a run as a space-time diagram.
//!
//! Nothing here is compiled by a host application that depends on `roundtable` with default
//! features: `roundtable-actors` does not depend on this crate (checked by `.ci/run`).
#![warn(missing_docs, unreachable_pub)]

pub mod check;
mod client;
mod error;
pub mod network;
pub mod run;
pub mod simulation;
pub mod svg;
pub mod sweep;
pub mod time_server;
pub mod workload;

pub use check::{CheckReport, Invariant, Violation, WriteFate};
pub use network::{Network, NetworkModel, SimulatedNetwork};
pub use run::{AckedWrite, SimRun};
pub use simulation::{ms, ClientOp, FaultEvent, LeaderRef, SimError, Simulation, Workload};
pub use time_server::{ClockSyncConfig, SimulatedTimeServer, TimeServer};
