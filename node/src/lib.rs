//! A standalone roundtable node: one leader in a process, TCP links to the leaders of other
//! nodes (authenticated and encrypted with Noise), a TOML configuration, and a Redis-protocol
//! (RESP2 and RESP3) front end, so that `redis-cli` and Redis client libraries read and write a
//! multi-leader cluster. `roundtable node --config FILE.toml` runs one; `roundtable keygen`
//! writes the files of a local cluster.
//!
//! ```no_run
//! use roundtable_node::{config::NodeConfig, run};
//!
//! #[actix::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = NodeConfig::load("n0.toml".as_ref())?;
//!     run(config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//!     Ok(())
//! }
//! ```

pub mod commands;
pub mod config;
pub mod resp;
pub mod server;

use std::future::Future;

use roundtable_actors::{Cluster, ClusterError, CrdtKind, Resolution};

/// How long a client's durable write may wait for the disk before it is answered with an error.
pub const DURABLE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub use config::{ConfigError, NodeConfig};

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The cluster could not start (its settings, or the peer listening socket).
    #[error("cannot start the leader: {0}")]
    Cluster(#[from] ClusterError),
    /// The Redis listening socket.
    #[error("cannot listen for Redis clients on {addr}: {source}")]
    Redis {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// How often a busy node's leader acknowledges to its peers what it holds (3 ms: about 4 %
/// more SET throughput than 10 ms in the face-off, which was ~8 % more than 100 ms).
const ACK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(3);

/// Runs the node of `config` until `stop` completes: its leader, its links to the other nodes,
/// and the Redis front end. Must run inside an actix system.
pub async fn run(config: NodeConfig, stop: impl Future<Output = ()>) -> Result<(), NodeError> {
    let mut builder = Cluster::builder()
        .leaders(config.members.clone())
        .topology(config.topology.clone())
        .keyspace(server::STRINGS, Resolution::LastWriteWins)
        .keyspace(server::COUNTERS, Resolution::Crdt(CrdtKind::PnCounter))
        .keyspace(server::SETS, Resolution::Crdt(CrdtKind::OrSet))
        .keyspace(server::SIBLINGS, Resolution::Siblings { max_siblings: config.max_siblings })
        .this_node(config.name.clone())
        // While it applies writes, the leader's housekeeping (acknowledgements, log truncation)
        // follows them within `ACK_INTERVAL`; idle, it ticks at the default 100 ms.
        .busy_tick_interval(ACK_INTERVAL)
        .listen(config.listen.clone())
        .identity(config.identity.clone());
    for (name, addr, key) in &config.peers {
        builder = builder.peer(name.clone(), addr.clone(), *key);
    }
    if let Some(dir) = &config.data_dir {
        builder = builder.data_dir(dir.clone());
    }
    // `RT.EXPLAIN` lists the writes each key saw and those last-write-wins discarded.
    let mut replica = builder.replica_settings().clone();
    replica.key_history = Some(roundtable_runtime::HistoryConfig::default());
    // What one leader turn forwards (a pipeline's writes, a received batch) leaves together
    // when the turn ends: fewer, larger messages, and no timer delays a write.
    replica.batch = Some(roundtable_runtime::BatchConfig {
        max_entries: 256,
        flush_interval: std::time::Duration::ZERO,
        min_fanout: 1,
    });
    // Busy peers tell each other what they hold every few milliseconds, so that a leader
    // truncates its log while the entries are still in the cache (at the 65,536-entry bound,
    // every write would otherwise free one long out of it). Idle, at each regular tick.
    replica.ack_interval = Some(ACK_INTERVAL);
    if let Some(ntp) = &config.ntp {
        replica.correction.tolerance = config.tolerance;
        builder = builder.ntp(ntp.clone());
    }
    builder = builder.replica_config(replica);
    let cluster = builder.start().await?;
    let redis = tokio::net::TcpListener::bind(&config.redis)
        .await
        .map_err(|source| NodeError::Redis { addr: config.redis.clone(), source })?;
    tracing::info!(
        node = %config.name,
        peers_on = ?cluster.local_addr(),
        redis_on = %config.redis,
        public_key = %config.identity.public_key(),
        "node running"
    );
    let durable = config.durable_writes.then_some(DURABLE_WRITE_TIMEOUT);
    let keys = commands::Keys { sibling_prefixes: config.sibling_prefixes.clone(), names: config.members.clone() };
    let front = server::Front {
        cluster: cluster.clone(),
        durable,
        password: config.password.clone(),
        keys: std::sync::Arc::new(keys),
    };
    let server = actix::spawn(server::serve(redis, front));
    stop.await;
    tracing::info!(node = %config.name, "stopping");
    server.abort();
    cluster.shutdown().await;
    Ok(())
}
