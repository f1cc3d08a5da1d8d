//! The `Cluster` builder: the one obvious way for a host application to compose leaders, a
//! topology, a conflict resolution and a network, and get back handles.
//!
//! ```no_run
//! use roundtable_actors::{Cluster, Get, Put};
//! use roundtable_runtime::Topology;
//!
//! #[actix::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let cluster = Cluster::builder()
//!         .leaders(["us-east", "eu-west", "ap-south"])
//!         .topology(Topology::AllToAll { relay: false })
//!         .start()
//!         .await?;
//!     cluster.leader("us-east")?.send(Put::new("user:42", "Ada")).await??;
//!     cluster.settled().await?;
//!     let read = cluster.leader("ap-south")?.send(Get::new("user:42")).await??;
//!     println!("{read:?}");
//!     Ok(())
//! }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use roundtable_runtime::clock::SimulatedClock;
use roundtable_runtime::resolution::{Keyspaces, Resolution};
use roundtable_runtime::{LeaderId, LeaderSet, ReplicaConfig, Topology, WallTime, MAX_LEADERS};

use crate::clock::{LeaderClockSource, SimEpoch, SystemClock};
use crate::clock_sync::{ClockSync, TimeReference};
pub use crate::error::ClusterError;
use crate::handle::LeaderHandle;
use crate::leader::{Leader, LeaderSpec};
use crate::messages::{Crash, GetProgress, Inspect, LeaderControl, LeaderState, Progress, Restart};
use crate::storage::DiskSpec;
use crate::supervisor::{Liveness, Supervisor, SupervisorConfig};
use crate::trace::{Trace, TraceSink};
use crate::transport::{Connect, Fault, InProcess, LeaderInbox, NetStats, SupervisorInbox, Transport, TransportLinks};

/// A durable leader's default checkpoint interval, in records.
pub const DEFAULT_CHECKPOINT_EVERY: usize = 65_536;

/// Per-leader clock settings for simulated clocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockSkew {
    /// Constant offset from true time, in nanoseconds (positive: ahead).
    pub offset_ns: i64,
    /// Drift rate in parts per million (positive: runs fast).
    pub drift_ppm: i32,
}

/// Bounds on what waits between the leaders and the network, so that a burst costs bounded
/// memory and shows as an error instead.
///
/// Each leader hands its messages to the network actor with `try_send`; when the network's
/// mailbox is full, they wait in the leader's outbox for their peer (in order, retried every
/// millisecond). When a peer's outbox is full, client writes at that leader are refused with
/// [`crate::LeaderError::Backpressure`] naming the peer, and further messages to it are dropped —
/// counted and traced; anti-entropy repairs what they carried. Not bounded yet: the network's
/// deliveries into leaders' mailboxes and notifications to subscribers (`do_send`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowControl {
    /// The most messages waiting in one leader's outbox for one peer (default 4096).
    pub outbox_max: usize,
    /// The network actor's mailbox capacity for leaders' messages (default 65,536).
    pub network_mailbox: usize,
}

impl Default for FlowControl {
    fn default() -> Self {
        FlowControl { outbox_max: 4096, network_mailbox: 65_536 }
    }
}

/// Builds a [`Cluster`]. Start from [`Cluster::builder`].
#[derive(Clone)]
pub struct ClusterBuilder {
    names: Vec<String>,
    topology: Topology,
    resolution: Resolution,
    keyspaces: Vec<(String, Resolution)>,
    transport: Arc<dyn Transport>,
    replica: ReplicaConfig,
    supervisor: SupervisorConfig,
    tick_interval: Duration,
    busy_tick_interval: Option<Duration>,
    data_dir: Option<std::path::PathBuf>,
    #[cfg(feature = "ntp")]
    ntp: Option<crate::ntp::NtpConfig>,
    memory_disks: Option<Duration>,
    checkpoint_every: usize,
    flow: FlowControl,
    simulated: Option<(SimEpoch, Vec<ClockSkew>)>,
    clock_sync: Option<(Arc<dyn TimeReference>, Duration)>,
    sink: TraceSink,
    #[cfg(feature = "tcp")]
    node: crate::tcp::NodeSettings,
}

impl std::fmt::Debug for ClusterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("names", &self.names)
            .field("topology", &self.topology)
            .field("resolution", &self.resolution)
            .field("keyspaces", &self.keyspaces)
            .field("replica", &self.replica)
            .field("supervisor", &self.supervisor)
            .field("tick_interval", &self.tick_interval)
            .field("busy_tick_interval", &self.busy_tick_interval)
            .field("flow", &self.flow)
            .field("simulated", &self.simulated)
            .field("clock_sync", &self.clock_sync.as_ref().map(|(_, interval)| interval))
            .finish_non_exhaustive()
    }
}

impl ClusterBuilder {
    /// Synchronise every leader's clock against `reference`, NTP style, sampling it every
    /// `interval`. Off by default. (The simulator's time server is one reference; real NTP
    /// servers are another, not built yet.)
    #[must_use]
    pub fn clock_sync(mut self, reference: Arc<dyn TimeReference>, interval: Duration) -> Self {
        self.clock_sync = Some((reference, interval));
        self
    }

    /// Leaders by name (regions, devices, processes); ids follow the order given.
    #[must_use]
    pub fn leaders<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// `count` leaders named `L0`, `L1`, …
    #[must_use]
    pub fn leader_count(mut self, count: usize) -> Self {
        self.names = (0..count).map(|i| format!("L{i}")).collect();
        self
    }

    /// The topology (default all-to-all without relay).
    #[must_use]
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// The conflict resolution of keys outside every named keyspace (default last-write-wins).
    #[must_use]
    pub fn resolution(mut self, resolution: Resolution) -> Self {
        self.resolution = resolution;
        self
    }

    /// A named keyspace with its own resolution: keys `name/…` belong to it.
    #[must_use]
    pub fn keyspace(mut self, name: &str, resolution: Resolution) -> Self {
        self.keyspaces.push((name.to_owned(), resolution));
        self
    }

    /// What carries the leaders' messages (default [`InProcess`]: mailbox to mailbox). The
    /// simulator plugs its simulated network in here.
    #[must_use]
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
    }

    /// Replica settings (bounds, intervals, clock tolerances).
    #[must_use]
    pub fn replica_config(mut self, config: ReplicaConfig) -> Self {
        self.replica = config;
        self
    }

    /// Supervisor settings (liveness check, silence before death).
    #[must_use]
    pub fn supervisor_config(mut self, config: SupervisorConfig) -> Self {
        self.supervisor = config;
        self
    }

    /// Makes the leaders durable: each keeps its state in `dir/<name>.redb` (the directory is
    /// created if needed), persists what it applies before anything of it leaves, and a restart
    /// — of the leader, or of the process — resumes from that file: no waiting for peers, no dot
    /// issued twice. Writes can then ask for [`crate::WriteConcern::durable`]. Default: none, the
    /// leaders live in memory.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), roundtable_actors::Error> {
    /// use roundtable_actors::Cluster;
    /// let cluster = Cluster::builder().leaders(["eu", "us"]).data_dir("/var/lib/roundtable").start().await?;
    /// # let _ = cluster; Ok(()) }
    /// ```
    #[must_use]
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Corrects the leaders' clocks against real NTP servers (feature `ntp`): each leader gets an
    /// [`NtpSync`](crate::ntp::NtpSync) that asks the servers every `interval` and hands it the
    /// selected reading. A leader then fences itself until its first sample
    /// (`fence_when_unsynchronized`) and whenever it has had none for `stale_after`
    /// (`max_sample_age`), and says why in its write errors and logs. The leaders' clocks must be
    /// the system clock (not simulated).
    #[cfg(feature = "ntp")]
    #[must_use]
    pub fn ntp(mut self, config: crate::ntp::NtpConfig) -> Self {
        self.ntp = Some(config);
        self
    }

    /// Makes the leaders durable on simulated disks (for the simulator): each syncs a batch
    /// `sync_delay` after it is handed over, and keeps what it synced across a crash;
    /// [`Cluster::lose_disk`] makes a disk fail. Overrides [`ClusterBuilder::data_dir`].
    #[must_use]
    pub fn memory_disks(mut self, sync_delay: Duration) -> Self {
        self.memory_disks = Some(sync_delay);
        self
    }

    /// With a data directory: a leader takes a checkpoint of its state after this many records
    /// (default 65,536), so that a restart replays at most that many.
    #[must_use]
    pub fn checkpoint_every(mut self, records: usize) -> Self {
        self.checkpoint_every = records.max(1);
        self
    }

    /// How often leaders tick and send heartbeats (default 100 ms).
    #[must_use]
    pub fn tick_interval(mut self, interval: Duration) -> Self {
        self.tick_interval = interval;
        self
    }

    /// While a leader applies writes, it also ticks this soon after it applied one (default:
    /// never; only the regular [`ClusterBuilder::tick_interval`]). With a short
    /// `ReplicaConfig::ack_interval`, a busy leader then learns quickly what its peers hold and
    /// truncates its log while the entries are recent, while an idle one ticks, and sends
    /// heartbeats, only at the regular interval.
    #[must_use]
    pub fn busy_tick_interval(mut self, interval: Duration) -> Self {
        self.busy_tick_interval = Some(interval).filter(|i| !i.is_zero());
        self
    }

    /// The bounds of the queues between leaders and the network (see [`FlowControl`]).
    #[must_use]
    pub fn flow_control(mut self, flow: FlowControl) -> Self {
        self.flow = flow;
        self
    }

    /// Simulated clocks over `epoch` (one skew per leader; missing ones are perfect) instead of
    /// the system clock. Used by the simulator.
    #[must_use]
    pub fn simulated_clocks(mut self, epoch: SimEpoch, skews: Vec<ClockSkew>) -> Self {
        self.simulated = Some((epoch, skews));
        self
    }

    /// Record a trace of this cluster (retrieve it with [`Cluster::trace`]), stamped with time
    /// since the start.
    #[must_use]
    pub fn record_trace(mut self) -> Self {
        self.sink = TraceSink::recording(SimEpoch::starting_now(Cluster::simulation_epoch()));
        self
    }

    /// Where to record the trace (default: nowhere; events still go to `tracing`).
    #[must_use]
    pub fn trace_sink(mut self, sink: TraceSink) -> Self {
        self.sink = sink;
        self
    }

    /// Makes this process a node that hosts leader `name` (feature `tcp`): the cluster starts
    /// only the leaders hosted here and reaches the others over TCP links (see
    /// [`crate::tcp`]). Call it again to host a few. Every node must be built with the same
    /// [`ClusterBuilder::leaders`], in the same order; a node also needs [`ClusterBuilder::listen`],
    /// [`ClusterBuilder::identity`] and a [`ClusterBuilder::peer`] for every leader it does not
    /// host.
    ///
    /// ```no_run
    /// use roundtable_actors::tcp::{Identity, PublicKey};
    /// use roundtable_actors::{Cluster, Put};
    ///
    /// #[actix::main]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let identity = Identity::from_private_hex(&std::fs::read_to_string("eu-west.key")?)?;
    ///     let us_east: PublicKey = std::fs::read_to_string("us-east.pub")?.parse()?;
    ///     let cluster = Cluster::builder()
    ///         .leaders(["us-east", "eu-west"])
    ///         .this_node("eu-west")
    ///         .listen("0.0.0.0:7402")
    ///         .identity(identity)
    ///         .peer("us-east", "us-east.example.net:7401", us_east)
    ///         .start()
    ///         .await?;
    ///     cluster.leader("eu-west")?.send(Put::new("user:42", "Ada")).await??;
    ///     Ok(())
    /// }
    /// ```
    #[cfg(feature = "tcp")]
    #[must_use]
    pub fn this_node(mut self, name: impl Into<String>) -> Self {
        self.node.hosted.push(name.into());
        self
    }

    /// The address this node listens on for its peers, `host:port` (feature `tcp`; port 0
    /// picks a free one, see [`Cluster::local_addr`]).
    #[cfg(feature = "tcp")]
    #[must_use]
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.node.listen = Some(crate::tcp::ListenOn::Addr(addr.into()));
        self
    }

    /// A socket the host has bound already, for this node to listen on (feature `tcp`).
    #[cfg(feature = "tcp")]
    #[must_use]
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        let slot = Arc::new(std::sync::Mutex::new(Some(listener)));
        self.node.listen = Some(crate::tcp::ListenOn::Listener(slot));
        self
    }

    /// This node's static key pair (feature `tcp`).
    #[cfg(feature = "tcp")]
    #[must_use]
    pub fn identity(mut self, identity: crate::tcp::Identity) -> Self {
        self.node.identity = Some(identity);
        self
    }

    /// A leader hosted by another node: where that node listens and its public key (feature
    /// `tcp`). Leaders of one node share the address and the key.
    #[cfg(feature = "tcp")]
    #[must_use]
    pub fn peer(mut self, name: impl Into<String>, addr: impl Into<String>, key: crate::tcp::PublicKey) -> Self {
        self.node.peers.push((name.into(), addr.into(), key));
        self
    }

    /// Whether the leaders this node hosts start by recovering (feature `tcp`; default `true`).
    ///
    /// A node cannot tell its first start from a restart after a crash, and a leader without
    /// durable storage forgets which sequence numbers it issued. So by default it starts as a
    /// restarted leader: it refuses writes ([`crate::LeaderError`] says it is catching up) until
    /// every member has told it what it wrote before, and only then issues new ones (see
    /// `Replica::restarted`; [`crate::LeaderHandle::writable_within`] waits for that). `false`
    /// skips that wait and is safe only when this leader has never written: a node that
    /// crashed and restarts with `false` can reissue sequence numbers its peers already hold,
    /// and the cluster then never converges.
    #[cfg(feature = "tcp")]
    #[must_use]
    pub fn recover_on_start(mut self, recover: bool) -> Self {
        self.node.recover = Some(recover);
        self
    }

    /// Timeouts and bounds of this node's links (feature `tcp`).
    #[cfg(feature = "tcp")]
    #[must_use]
    pub fn link_limits(mut self, limits: crate::tcp::LinkLimits) -> Self {
        self.node.limits = limits;
        self
    }

    /// The leaders' names so far.
    #[must_use]
    pub fn leader_names(&self) -> &[String] {
        &self.names
    }

    /// The replica settings so far.
    #[must_use]
    pub fn replica_settings(&self) -> &ReplicaConfig {
        &self.replica
    }

    /// The keyspaces and their resolutions, as the leaders will use them.
    pub fn keyspaces(&self) -> Result<Keyspaces, ClusterError> {
        let mut keyspaces = Keyspaces::new(self.resolution);
        for (name, resolution) in &self.keyspaces {
            keyspaces = keyspaces.with(name, *resolution)?;
        }
        Ok(keyspaces)
    }

    /// Whether the leaders start by recovering: a node does, unless told otherwise (it cannot
    /// tell its first start from a restart after a crash).
    fn recovers_on_start(&self) -> bool {
        #[cfg(feature = "tcp")]
        if self.node.is_node() {
            return self.node.recover.unwrap_or(true);
        }
        false
    }

    /// The transport, the leaders this process hosts, and where it listens.
    #[allow(clippy::type_complexity)]
    fn transport_to_start(
        &self,
        members: LeaderSet,
    ) -> Result<(Arc<dyn Transport>, LeaderSet, Option<std::net::SocketAddr>), ClusterError> {
        #[cfg(feature = "tcp")]
        if self.node.is_node() {
            let (tcp, hosted) = self.node.transport(&self.names).map_err(ClusterError::Settings)?;
            let addr = tcp.local_addr();
            return Ok((Arc::new(tcp), hosted, Some(addr)));
        }
        Ok((self.transport.clone(), members, None))
    }

    /// Starts the network, the leaders and the supervisor inside the current actix system.
    pub async fn start(self) -> Result<Cluster, ClusterError> {
        let n = self.names.len();
        if n == 0 {
            return Err(ClusterError::NoLeaders);
        }
        if n > MAX_LEADERS {
            return Err(ClusterError::TooManyLeaders(n));
        }
        let mut by_name = BTreeMap::new();
        for (i, name) in self.names.iter().enumerate() {
            if by_name.insert(name.clone(), i).is_some() {
                return Err(ClusterError::DuplicateName(name.clone()));
            }
        }
        let members = LeaderSet::first(n);
        let heard_every = self.tick_interval + self.supervisor.check_interval;
        if self.supervisor.dead_after <= heard_every {
            return Err(ClusterError::Settings(format!(
                "dead_after ({:?}) must exceed the heartbeat interval plus the check interval ({:?}), \
                 or live leaders are declared dead between two heartbeats",
                self.supervisor.dead_after, heard_every
            )));
        }
        if self.tick_interval.is_zero() {
            return Err(ClusterError::Settings("tick_interval must not be zero".into()));
        }
        #[allow(unused_mut)]
        let mut replica_config = ReplicaConfig { keyspaces: self.keyspaces()?, ..self.replica.clone() };
        #[cfg(feature = "ntp")]
        if let Some(ntp) = &self.ntp {
            if ntp.servers.is_empty() {
                return Err(ClusterError::Settings("NTP needs at least one server".into()));
            }
            if ntp.min_agree > ntp.servers.len() {
                let (need, have) = (ntp.min_agree, ntp.servers.len());
                return Err(ClusterError::Settings(format!("NTP: {need} servers must agree, {have} are named")));
            }
            replica_config.correction.fence_when_unsynchronized = true;
            replica_config.correction.max_sample_age = Some(ntp.stale_after);
        }
        let (transport, hosted, local_addr) = self.transport_to_start(members)?;
        let links = transport.start(self.sink.clone(), self.flow.network_mailbox.max(1));
        let mut leaders = BTreeMap::new();
        let mut clocks = BTreeMap::new();
        let mut memory_disks = BTreeMap::new();
        // In a data directory where some leaders' disks exist, a leader whose disk is missing
        // lost it: it recovers its sequence numbers from its peers instead of starting afresh
        // (which would issue its earlier dots again). A directory with no disk at all is a
        // first start.
        let disk_file = |name: &str| self.data_dir.as_ref().map(|dir| dir.join(format!("{name}.redb")));
        let any_disk = self.names.iter().any(|n| disk_file(n).is_some_and(|f| f.exists()));
        let lost_disk = |name: &str| any_disk && disk_file(name).is_some_and(|f| !f.exists());
        for (id, name) in LeaderId::range(n).zip(&self.names).filter(|(id, _)| hosted.contains(*id)) {
            let clock = match &self.simulated {
                None => LeaderClockSource::System(SystemClock),
                Some((epoch, skews)) => {
                    let skew = skews.get(id.index()).copied().unwrap_or_default();
                    let clock = SimulatedClock::new(epoch.now())
                        .with_offset_ns(skew.offset_ns)
                        .with_drift_ppm(skew.drift_ppm)
                        .map_err(|source| ClusterError::Clock { leader: id, source })?;
                    LeaderClockSource::Simulated { epoch: *epoch, clock }
                }
            };
            clocks.insert(id, clock.clone());
            let spec = LeaderSpec {
                id,
                name: name.clone(),
                members,
                topology: self.topology.clone(),
                config: replica_config.clone(),
                clock,
                tick_interval: self.tick_interval,
                busy_tick_interval: self.busy_tick_interval,
                outbox_max: self.flow.outbox_max.max(1),
                recovering: self.recovers_on_start() || lost_disk(name),
                disk: match (self.memory_disks, &self.data_dir) {
                    (Some(sync_delay), _) => {
                        let disk = crate::storage::MemoryDisk::new();
                        memory_disks.insert(id, disk.clone());
                        Some(DiskSpec::Memory { disk, sync_delay })
                    }
                    (None, Some(dir)) => Some(DiskSpec::File(dir.join(format!("{name}.redb")))),
                    (None, None) => None,
                },
                checkpoint_every: self.checkpoint_every,
            };
            let leader = Leader::new(spec, links.clone(), self.sink.clone())?;
            leaders.insert(id, actix::Supervisor::start(move |_| leader));
        }
        #[cfg(feature = "ntp")]
        if let Some(ntp) = &self.ntp {
            for (id, leader) in &leaders {
                let name = self.names.get(id.index()).cloned().unwrap_or_default();
                crate::ntp::NtpSync::new(leader.clone().recipient(), name, ntp.clone()).start();
            }
        }
        if let Some((reference, interval)) = &self.clock_sync {
            let server = reference.start();
            for (id, leader) in &leaders {
                let Some(clock) = clocks.get(id).cloned() else { continue };
                ClockSync::new(leader.clone().recipient(), server.clone(), clock, *interval).start();
            }
        }
        let controls = leaders
            .iter()
            .map(|(id, leader)| {
                let control = LeaderControl {
                    set_live: leader.clone().recipient(),
                    fence: leader.clone().recipient(),
                    restart: leader.clone().recipient(),
                };
                (*id, control)
            })
            .collect();
        let supervisor =
            Supervisor::new(self.topology.clone(), members, controls, self.supervisor, self.sink.clone()).start();
        let inboxes = leaders
            .iter()
            .map(|(id, leader)| (*id, LeaderInbox::new(*id, leader.clone().recipient(), leader.clone().recipient())))
            .collect();
        let supervisor_inbox = SupervisorInbox::new(supervisor.clone().recipient(), supervisor.clone().recipient());
        links.connect.send(Connect::new(inboxes, supervisor_inbox)).await?;
        let handles = leaders
            .iter()
            .map(|(id, addr)| (*id, LeaderHandle::new(*id, self.names[id.index()].clone(), addr.clone())))
            .collect();
        Ok(Cluster {
            names: self.names,
            by_name,
            leaders: handles,
            links,
            supervisor,
            sink: self.sink,
            local_addr,
            memory_disks,
        })
    }
}

/// A running cluster: leader handles by name, the supervisor, the network, metrics and a way to
/// wait until it has settled.
#[derive(Clone)]
pub struct Cluster {
    /// The simulated disks ([`ClusterBuilder::memory_disks`]), by leader.
    memory_disks: BTreeMap<LeaderId, crate::storage::MemoryDisk>,
    names: Vec<String>,
    by_name: BTreeMap<String, usize>,
    leaders: BTreeMap<LeaderId, LeaderHandle>,
    links: TransportLinks,
    supervisor: Addr<Supervisor>,
    sink: TraceSink,
    local_addr: Option<std::net::SocketAddr>,
}

/// What a cluster did, summed over its leaders and its network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetrics {
    /// What the network carried.
    pub network: NetStats,
    /// Client writes accepted, over all leaders.
    pub writes: u64,
    /// Duplicate copies dropped, over all leaders.
    pub duplicates_dropped: u64,
    /// Entries that waited for their dependencies.
    pub causal_waits: u64,
    /// Writes discarded by last-write-wins, each counted once: the sum of the leaders'
    /// `Metrics::lww_discarded_own`, the discards each leader decided of its own writes (every
    /// leader that sees a conflict decides it; each loser is discarded at its origin once).
    /// Counted over the leaders' current lives: a loser whose origin crashed before the winner
    /// reached it counts only if the origin restarts and takes the loser back as an entry
    /// (not when a snapshot that already holds the winner brings the key), and not while the
    /// origin is down; what a crashed life counted is gone with it.
    pub lww_discarded: u64,
    /// Last-write-wins decisions, summed over the leaders' `Metrics::lww_discarded`: one
    /// conflict counts once at every leader that saw both writes.
    pub lww_decisions: u64,
    /// Rejections of peer input.
    pub rejected: u64,
    /// Rewirings the supervisor made.
    pub rewires: u64,
    /// Messages dropped because a leader's outbox to a peer was full, or because too many
    /// waited for a durable leader's disk ([`crate::storage::HELD_MAX`]).
    pub outbox_dropped: u64,
    /// Fsynced commits of the leaders' disks (group commit: many writes share one).
    pub disk_commits: u64,
    /// Records the leaders' disks wrote.
    pub disk_records: u64,
}

impl Cluster {
    /// Start building a cluster.
    #[must_use]
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            names: Vec::new(),
            topology: Topology::AllToAll { relay: false },
            resolution: Resolution::LastWriteWins,
            keyspaces: Vec::new(),
            transport: Arc::new(InProcess),
            replica: ReplicaConfig::default(),
            supervisor: SupervisorConfig::default(),
            tick_interval: Duration::from_millis(100),
            busy_tick_interval: None,
            data_dir: None,
            #[cfg(feature = "ntp")]
            ntp: None,
            memory_disks: None,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            flow: FlowControl::default(),
            simulated: None,
            clock_sync: None,
            sink: TraceSink::disabled(),
            #[cfg(feature = "tcp")]
            node: crate::tcp::NodeSettings::default(),
        }
    }

    /// A leader, by name (`"us-east"`) or by id ([`LeaderId`]): every method that names a
    /// leader takes either (see [`AsLeader`]).
    pub fn leader(&self, leader: impl AsLeader) -> Result<&LeaderHandle, ClusterError> {
        let id = leader.leader_id(self)?;
        self.leaders.get(&id).ok_or_else(|| match self.names.get(id.index()) {
            Some(name) => ClusterError::NotHosted(name.clone()),
            None => ClusterError::UnknownLeader(id.to_string()),
        })
    }

    /// The id of the leader named `name` (ids follow the order the names were given in).
    pub fn id(&self, name: &str) -> Result<LeaderId, ClusterError> {
        self.by_name
            .get(name)
            .and_then(|&i| LeaderId::new(i).ok())
            .ok_or_else(|| ClusterError::UnknownLeader(name.to_owned()))
    }

    /// Every leader, in id order.
    pub fn leaders(&self) -> impl Iterator<Item = &LeaderHandle> {
        self.leaders.values()
    }

    /// The leaders' names, in id order.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Where this node listens for its peers (`None` unless it was built as a node, feature
    /// `tcp`).
    #[must_use]
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local_addr
    }

    /// The supervisor.
    #[must_use]
    pub fn supervisor(&self) -> &Addr<Supervisor> {
        &self.supervisor
    }

    /// The transport's links.
    #[must_use]
    pub fn transport(&self) -> &TransportLinks {
        &self.links
    }

    /// The trace recorded so far (empty unless the cluster was built with a recording sink).
    #[must_use]
    pub fn trace(&self) -> Trace {
        self.sink.snapshot()
    }

    /// Every leader's state, in id order.
    pub async fn states(&self) -> Result<Vec<LeaderState>, ClusterError> {
        let mut states = Vec::with_capacity(self.leaders.len());
        for leader in self.leaders.values() {
            states.push(leader.addr().send(Inspect).await?);
        }
        Ok(states)
    }

    /// Whether the cluster is settled now: nothing in flight, nothing waiting, no leader catching
    /// up, and every live leader has applied the same writes (the same version vector; no store
    /// is read or cloned).
    ///
    /// "Live" must agree with "up": a crashed leader the supervisor has not declared dead yet, or a
    /// restarted one it has not readmitted, means the cluster is still changing. The check runs
    /// twice, and the leaders' counters must not move in between, so that a message sitting in a
    /// mailbox (which the network no longer counts as in flight) is not missed.
    pub async fn is_settled(&self) -> Result<bool, ClusterError> {
        let Some(first) = self.quiet_states().await? else { return Ok(false) };
        let Some(second) = self.quiet_states().await? else { return Ok(false) };
        Ok(first == second)
    }

    /// The progress of the live leaders if, right now, they agree and nothing is in flight.
    async fn quiet_states(&self) -> Result<Option<Vec<Progress>>, ClusterError> {
        if self.links.stats().await?.in_flight > 0 {
            return Ok(None);
        }
        let (live, _) = self.supervisor.send(Liveness).await?;
        let mut states = Vec::with_capacity(self.leaders.len());
        for (id, leader) in &self.leaders {
            states.push((*id, leader.addr().send(GetProgress).await?));
        }
        let up: LeaderSet = states.iter().filter(|(_, s)| s.up).map(|(id, _)| *id).collect();
        if up != live {
            return Ok(None);
        }
        let live_states: Vec<Progress> = states.into_iter().filter(|(_, s)| s.up).map(|(_, s)| s).collect();
        let agreed = live_states.first().is_none_or(|first| {
            live_states.iter().all(|s| s.waiting == 0 && !s.recovering && s.applied == first.applied)
        });
        if !agreed || self.links.stats().await?.in_flight > 0 {
            return Ok(None);
        }
        Ok(Some(live_states))
    }

    /// Waits until the cluster is settled (checking every 10 ms), at most 60 s.
    pub async fn settled(&self) -> Result<(), ClusterError> {
        self.settled_within(Duration::from_secs(60)).await
    }

    /// Waits until the cluster is settled, at most `limit`.
    pub async fn settled_within(&self, limit: Duration) -> Result<(), ClusterError> {
        if crate::clock::poll_until(limit, || self.is_settled()).await? {
            Ok(())
        } else {
            Err(ClusterError::NotSettled(limit))
        }
    }

    /// Counters summed over the leaders and the network.
    pub async fn metrics(&self) -> Result<ClusterMetrics, ClusterError> {
        let network = self.links.stats().await?;
        let (_, rewires) = self.supervisor.send(Liveness).await?;
        let mut m = ClusterMetrics { network, rewires, ..Default::default() };
        // The leaders' counters only (`GetProgress`), not their stores (`Inspect` copies them).
        for leader in self.leaders.values() {
            let p = leader.addr().send(GetProgress).await?;
            m.writes += p.metrics.writes_accepted;
            m.duplicates_dropped += p.metrics.duplicates_dropped;
            m.causal_waits += p.metrics.causal_waits;
            m.lww_discarded += p.metrics.lww_discarded_own;
            m.lww_decisions += p.metrics.lww_discarded;
            m.rejected += p.metrics.rejected;
            m.outbox_dropped += p.outbox_dropped;
            m.disk_commits += p.disk.0;
            m.disk_records += p.disk.1;
        }
        Ok(m)
    }

    /// Fault injection: crash a leader (it loses its in-memory state and stays down until
    /// [`Cluster::restart`], or the supervisor's `restart_after` when that is set).
    pub fn crash(&self, leader: impl AsLeader) -> Result<(), ClusterError> {
        self.leader(leader)?.do_send(Crash);
        Ok(())
    }

    /// Fault injection: leader `leader`'s simulated disk fails and loses everything on it
    /// ([`ClusterBuilder::memory_disks`]; [`ClusterError::Settings`] without). Meant for a leader
    /// that is down: its next restart then starts empty and recovers from its peers.
    pub fn lose_disk(&self, leader: impl AsLeader) -> Result<(), ClusterError> {
        let id = self.leader(leader)?.id();
        let disk = self.memory_disks.get(&id).ok_or_else(|| {
            ClusterError::Settings(format!("leader {id} has no simulated disk to lose (ClusterBuilder::memory_disks)"))
        })?;
        disk.lose();
        Ok(())
    }

    /// Stops every leader this process hosts and closes their disks, so that the data directory
    /// can be opened again (by a new cluster, or another process). The leaders stay down.
    pub async fn shutdown(&self) {
        for name in self.names() {
            if let Ok(leader) = self.leader(name.as_str()) {
                let _ = leader.send(crate::messages::Shutdown).await;
            }
        }
    }

    /// Restart a crashed leader with empty state: it catches up from its peers and refuses writes
    /// until it has settled its recovery ([`LeaderHandle::writable_within`] waits for that).
    pub fn restart(&self, leader: impl AsLeader) -> Result<(), ClusterError> {
        self.leader(leader)?.do_send(Restart);
        Ok(())
    }

    /// Fault injection: a link fault, when the transport can make one (the simulated network
    /// can; [`ClusterError::NoFaults`] otherwise).
    pub fn fault(&self, fault: Fault) -> Result<(), ClusterError> {
        let faults = self.links.faults.as_ref().ok_or(ClusterError::NoFaults)?;
        faults.do_send(fault);
        Ok(())
    }

    /// Fault injection: cut a leader off from everyone (see [`Cluster::fault`]).
    pub fn isolate(&self, leader: impl AsLeader) -> Result<(), ClusterError> {
        self.fault(Fault::Isolate(leader.leader_id(self)?))
    }

    /// Fault injection: reconnect an isolated leader (see [`Cluster::fault`]).
    pub fn heal(&self, leader: impl AsLeader) -> Result<(), ClusterError> {
        self.fault(Fault::Heal(leader.leader_id(self)?))
    }

    /// Fault injection: lose everything between two sets of leaders (see [`Cluster::fault`]).
    pub fn partition(&self, a: LeaderSet, b: LeaderSet) -> Result<(), ClusterError> {
        self.fault(Fault::Partition(a, b))
    }

    /// Undo all partitions and isolations (see [`Cluster::fault`]).
    pub fn heal_all(&self) -> Result<(), ClusterError> {
        self.fault(Fault::HealAll)
    }

    /// The start of simulated time for a simulation's wall clock (2026-01-01T00:00:00Z).
    #[must_use]
    pub fn simulation_epoch() -> WallTime {
        WallTime::from_secs(1_767_225_600)
    }
}

/// How a leader is named in the cluster's API: by name (`&str`, `String`) or by id
/// ([`LeaderId`]), or either held in a [`LeaderRef`]. Both are checked against the cluster.
pub trait AsLeader {
    /// The leader's id in `cluster`.
    fn leader_id(&self, cluster: &Cluster) -> Result<LeaderId, ClusterError>;
}

impl AsLeader for LeaderId {
    fn leader_id(&self, cluster: &Cluster) -> Result<LeaderId, ClusterError> {
        if cluster.leaders.contains_key(self) {
            Ok(*self)
        } else {
            Err(ClusterError::UnknownLeader(self.to_string()))
        }
    }
}

impl AsLeader for &str {
    fn leader_id(&self, cluster: &Cluster) -> Result<LeaderId, ClusterError> {
        cluster.id(self)
    }
}

impl AsLeader for &String {
    fn leader_id(&self, cluster: &Cluster) -> Result<LeaderId, ClusterError> {
        cluster.id(self)
    }
}

impl AsLeader for String {
    fn leader_id(&self, cluster: &Cluster) -> Result<LeaderId, ClusterError> {
        cluster.id(self)
    }
}

impl AsLeader for &LeaderHandle {
    fn leader_id(&self, cluster: &Cluster) -> Result<LeaderId, ClusterError> {
        self.id().leader_id(cluster)
    }
}

/// A leader named by id or by name, held until there is a cluster to look it up in: what
/// [`AsLeader`] accepts, as one owned value (the simulator's faults and workloads hold these).
///
/// Build one with `From`: `LeaderRef::from("us-east")`, `LeaderRef::from(LeaderId::new(2)?)`. It
/// displays as the id (`L3`) or the name. Two refs that name the same leader differently (`"L3"`
/// and the id `L3` in a cluster of default names) are not equal: only a cluster resolves them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeaderRef {
    /// By id: the leader's index in the order the names were given.
    Id(LeaderId),
    /// By name.
    Name(String),
}

impl From<LeaderId> for LeaderRef {
    fn from(id: LeaderId) -> Self {
        LeaderRef::Id(id)
    }
}

impl From<&str> for LeaderRef {
    fn from(name: &str) -> Self {
        LeaderRef::Name(name.to_owned())
    }
}

impl From<String> for LeaderRef {
    fn from(name: String) -> Self {
        LeaderRef::Name(name)
    }
}

impl From<&String> for LeaderRef {
    fn from(name: &String) -> Self {
        LeaderRef::Name(name.clone())
    }
}

impl From<&LeaderRef> for LeaderRef {
    fn from(leader: &LeaderRef) -> Self {
        leader.clone()
    }
}

impl std::fmt::Display for LeaderRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaderRef::Id(id) => write!(f, "{id}"),
            LeaderRef::Name(name) => f.write_str(name),
        }
    }
}

impl AsLeader for LeaderRef {
    fn leader_id(&self, cluster: &Cluster) -> Result<LeaderId, ClusterError> {
        match self {
            LeaderRef::Id(id) => id.leader_id(cluster),
            LeaderRef::Name(name) => cluster.id(name),
        }
    }
}

impl AsLeader for &LeaderRef {
    fn leader_id(&self, cluster: &Cluster) -> Result<LeaderId, ClusterError> {
        (*self).leader_id(cluster)
    }
}
