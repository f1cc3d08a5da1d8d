//! The one error type of the host API, [`Error`]: whatever a [`crate::LeaderHandle`] or a
//! [`crate::Cluster`] call can fail with; and [`ClusterError`], what building or using a
//! cluster can fail with.

use actix::MailboxError;
use roundtable_runtime::{DataError, LeaderId, WriteError};

use std::time::Duration;

use roundtable_runtime::resolution::KeyspaceError;
use roundtable_runtime::MAX_LEADERS;

use crate::messages::LeaderError;

/// Why a call of the host API failed.
///
/// ```
/// use roundtable_actors::{Error, LeaderError};
/// use roundtable_runtime::WriteError;
///
/// fn retry_later(e: &Error) -> bool {
///     matches!(
///         e,
///         Error::Leader(LeaderError::Backpressure { .. })
///             | Error::Leader(LeaderError::Write(WriteError::CatchingUp { .. }))
///     )
/// }
/// # let _ = retry_later;
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The leader refused or could not do it: down, backpressure, a refused write, a write
    /// concern not met, …
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// A key or value is invalid (empty, too long).
    #[error(transparent)]
    Data(#[from] DataError),
    /// Building or using the cluster failed (unknown leader name, invalid settings, …).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// An actor did not answer: it stopped (the actix system is shutting down).
    #[error("an actor did not answer: {0}")]
    Mailbox(#[from] MailboxError),
    /// A leader id out of range (ids are 0..64).
    #[error(transparent)]
    LeaderId(#[from] roundtable_runtime::topologies::LeaderIdOutOfRange),
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        Error::Leader(LeaderError::Write(e))
    }
}

impl Error {
    /// The refused write's reason, when this is one.
    #[must_use]
    pub fn write_error(&self) -> Option<&WriteError> {
        match self {
            Error::Leader(LeaderError::Write(e)) => Some(e),
            _ => None,
        }
    }
}

/// Why a cluster could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No leaders were named.
    #[error("a cluster needs at least one leader")]
    NoLeaders,
    /// Too many leaders.
    #[error("a cluster has at most {MAX_LEADERS} leaders, {0} were given")]
    TooManyLeaders(usize),
    /// Two leaders share a name.
    #[error("two leaders are named {0:?}")]
    DuplicateName(String),
    /// No leader has that name.
    #[error("no leader is named {0:?}")]
    UnknownLeader(String),
    /// The topology or replica settings are invalid.
    #[error(transparent)]
    Config(#[from] roundtable_runtime::ConfigError),
    /// A leader's disk could not be opened or resumed from.
    #[error(transparent)]
    Disk(#[from] crate::storage::DiskError),
    /// An actor did not answer (it stopped).
    #[error("an actor did not answer: {0}")]
    Mailbox(#[from] MailboxError),
    /// A simulated clock's skew is invalid.
    #[error("leader {leader}: {source}")]
    Clock {
        /// The leader.
        leader: LeaderId,
        /// What is wrong.
        source: roundtable_runtime::clock::ClockError,
    },
    /// Settings that cannot work together.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// A keyspace cannot be configured so.
    #[error(transparent)]
    Keyspace(#[from] KeyspaceError),
    /// The cluster did not settle in time.
    #[error("the cluster did not settle within {0:?}")]
    NotSettled(Duration),
    /// The leader is a member, but another node hosts it (feature `tcp`).
    #[error("leader {0:?} is hosted by another node")]
    NotHosted(String),
    /// The transport cannot make link faults (only the simulated network can).
    #[error("this cluster's transport cannot make link faults; use the simulated network of roundtable-sim")]
    NoFaults,
}
