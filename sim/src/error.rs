//! Why a simulation could not run.

use roundtable_actors::ClusterError;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The tokio runtime could not be built.
    #[error("cannot build the simulation runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The simulation's configuration is invalid.
    #[error("invalid simulation: {0}")]
    Invalid(String),
    /// The cluster could not be built or stopped answering.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}
