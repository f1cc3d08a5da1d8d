//! The deterministic simulator: a whole cluster of real actors inside an actix system on a
//! current-thread tokio runtime with paused time.
//!
//! Paused time advances only when every actor is idle, straight to the next timer, so a simulated
//! second costs microseconds, and with one thread, a seeded network and simulated clocks, the same
//! seed gives the same trace byte for byte (the approach of turmoil and madsim, here with the
//! production actors rather than mocks).
//!
//! ```
//! use roundtable_sim::{ms, Simulation};
//! use roundtable_sim::NetworkModel;
//! use roundtable_runtime::{LeaderId, Topology};
//!
//! let run = Simulation::new(7)
//!     .leaders(4)
//!     .topology(Topology::Star { hub: LeaderId::new(0)? })
//!     .network(NetworkModel::wan().drop_rate(0.05))
//!     .workload(|w| w.puts_per_leader(3).put(ms(5), "L2", "color", "blue"))
//!     .crash_at(ms(40), "L0")
//!     .run();
//! run.assert_converged();
//! assert!(run.trace().render().contains("declared L0 dead"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Leaders are named as everywhere else on a cluster (see `AsLeader`): by name (`"L2"`; a
//! simulation's leaders are named `L0`, `L1`, …) or by [`LeaderId`], held as a [`LeaderRef`].
//! The simulation looks every one up when it runs: a leader the cluster does not have makes
//! [`Simulation::try_run`] fail with [`SimError::Invalid`], naming it.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use roundtable_runtime::{LeaderId, LeaderSet, ReplicaConfig, Topology, MAX_LEADERS};

pub use roundtable_actors::LeaderRef;

use roundtable_actors::trace::{Actor as Who, ClientEvent, ReadOutcome, TraceSink};
use roundtable_actors::{
    ClockSkew, Cluster, ClusterBuilder, ClusterError, Delete, Get, GetSiblings, LeaderClockSource, Liveness, Put,
    Resolution, SimEpoch, SupervisorConfig, Write,
};
use roundtable_runtime::clock::SimulatedClock;
use roundtable_runtime::resolution::{Keyspaces, Update};
use roundtable_runtime::trace::fmt_ns;

use crate::network::{NetworkModel, SimulatedNetwork};
use crate::run::{
    discarded_at_rejoin, holders_all_lost, subsumed_by_a_later_write, write_spans, AckedWrite, CheckSettings, SimRun,
};
use crate::time_server::{ClockSyncConfig, SimulatedTimeServer};

/// `n` milliseconds.
#[must_use]
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What a client does at a leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// Write a value.
    Put {
        /// The key.
        key: String,
        /// The value (text).
        value: String,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Any update (a CRDT update, a siblings write…), as [`Write`] sends it.
    Update {
        /// The key.
        key: String,
        /// The update (boxed: an MV-register context makes it large).
        update: Box<Update>,
    },
    /// Read a key (a client read: no replication traffic; traced).
    Get {
        /// The key.
        key: String,
    },
    /// Read the siblings of a key and write `value` with their context, resolving them.
    ResolveSiblings {
        /// The key.
        key: String,
        /// The merged value.
        value: String,
    },
    /// Write a value, but only once this leader shows `seen_key` = `seen_value` (a write that
    /// causally depends on another leader's); polls every millisecond, for at most 10 s.
    PutAfterSeeing {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The key to wait for.
        seen_key: String,
        /// The value to wait for.
        seen_value: String,
    },
}

/// Who writes what, when. Each operation names its leader by name or [`LeaderId`] (anything
/// `Into<LeaderRef>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    ops: Vec<(Duration, LeaderRef, ClientOp)>,
    /// `puts_per_leader` requests: (start, puts per leader).
    per_leader: Vec<(Duration, u64)>,
}

impl Workload {
    /// A put of `value` under `key` at leader `leader`, `at` after the start.
    #[must_use]
    pub fn put(mut self, at: Duration, leader: impl Into<LeaderRef>, key: &str, value: &str) -> Self {
        self.ops.push((at, leader.into(), ClientOp::Put { key: key.into(), value: value.into() }));
        self
    }

    /// Any update of `key` at leader `leader`, `at` after the start (a CRDT update, a siblings
    /// write with a context…).
    #[must_use]
    pub fn update(mut self, at: Duration, leader: impl Into<LeaderRef>, key: &str, update: Update) -> Self {
        self.ops.push((at, leader.into(), ClientOp::Update { key: key.into(), update: Box::new(update) }));
        self
    }

    /// At `at`, leader `leader` reads the siblings of `key` and writes `value` with their
    /// context, replacing them all.
    #[must_use]
    pub fn resolve_siblings(mut self, at: Duration, leader: impl Into<LeaderRef>, key: &str, value: &str) -> Self {
        self.ops.push((at, leader.into(), ClientOp::ResolveSiblings { key: key.into(), value: value.into() }));
        self
    }

    /// A read of `key` at leader `leader`, `at` after the start.
    #[must_use]
    pub fn get(mut self, at: Duration, leader: impl Into<LeaderRef>, key: &str) -> Self {
        self.ops.push((at, leader.into(), ClientOp::Get { key: key.into() }));
        self
    }

    /// A delete of `key` at leader `leader`, `at` after the start.
    #[must_use]
    pub fn delete(mut self, at: Duration, leader: impl Into<LeaderRef>, key: &str) -> Self {
        self.ops.push((at, leader.into(), ClientOp::Delete { key: key.into() }));
        self
    }

    /// From `at` on, leader `leader` waits until it shows `seen_key = seen_value`, then puts.
    #[must_use]
    pub fn put_after_seeing(
        mut self,
        at: Duration,
        leader: impl Into<LeaderRef>,
        (key, value): (&str, &str),
        (seen_key, seen_value): (&str, &str),
    ) -> Self {
        let op = ClientOp::PutAfterSeeing {
            key: key.into(),
            value: value.into(),
            seen_key: seen_key.into(),
            seen_value: seen_value.into(),
        };
        self.ops.push((at, leader.into(), op));
        self
    }

    /// `n` puts at every leader: the `j`-th put of the leader with id `Li` writes `k{j}` =
    /// `Li.{j}` at `10·j + i` ms, so that every key is written concurrently by every leader.
    #[must_use]
    pub fn puts_per_leader(mut self, n: usize) -> Self {
        self.per_leader.push((Duration::ZERO, n as u64));
        self
    }

    /// Every operation, with those of `puts_per_leader` spelled out for `leaders` leaders.
    fn expand(&self, leaders: usize) -> Vec<(Duration, LeaderRef, ClientOp)> {
        let mut ops = self.ops.clone();
        for &(at, n) in &self.per_leader {
            for j in 0..n {
                for id in LeaderId::range(leaders) {
                    let at = at + ms(10 * j + id.index() as u64);
                    let op = ClientOp::Put { key: format!("k{j}"), value: format!("{id}.{j}") };
                    ops.push((at, id.into(), op));
                }
            }
        }
        ops
    }
}

/// A fault at a given time. A fault on one leader names it by name or [`LeaderId`]:
/// `FaultEvent::Isolate("L1".into())`, `FaultEvent::Crash(id.into())`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultEvent {
    /// The leader crashes (in-memory state lost) and stays down.
    Crash(LeaderRef),
    /// The leader restarts with empty state.
    Restart(LeaderRef),
    /// The leader is cut off from everyone.
    Isolate(LeaderRef),
    /// The leader is reconnected.
    Heal(LeaderRef),
    /// Everything between the two sets is lost.
    Partition(LeaderSet, LeaderSet),
    /// Every partition and isolation ends.
    HealAll,
}

/// How a fault shows in a trace (`fault: Crash(2)`): a leader named by id shows as its index
/// (`Crash(2)`, the form the traces have always had), one named by name as the quoted name
/// (`Crash("L2")`). The simulation looks names up before it records a fault, so a trace only
/// shows indices, whichever way the fault named its leader.
impl fmt::Display for FaultEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, leader) = match self {
            FaultEvent::Crash(l) => ("Crash", l),
            FaultEvent::Restart(l) => ("Restart", l),
            FaultEvent::Isolate(l) => ("Isolate", l),
            FaultEvent::Heal(l) => ("Heal", l),
            FaultEvent::Partition(a, b) => return write!(f, "Partition({a}, {b})"),
            FaultEvent::HealAll => return f.write_str("HealAll"),
        };
        match leader {
            LeaderRef::Id(id) => write!(f, "{what}({})", id.index()),
            LeaderRef::Name(name) => write!(f, "{what}({name:?})"),
        }
    }
}

impl FaultEvent {
    /// The same fault with its leader looked up in `leaders`, as an id.
    fn resolve(&self, leaders: &Leaders<'_>, at: Duration) -> Result<FaultEvent, SimError> {
        let what = || format!("the fault at {}", duration(at));
        Ok(match self {
            FaultEvent::Crash(l) => FaultEvent::Crash(leaders.resolve(l, what)?.into()),
            FaultEvent::Restart(l) => FaultEvent::Restart(leaders.resolve(l, what)?.into()),
            FaultEvent::Isolate(l) => FaultEvent::Isolate(leaders.resolve(l, what)?.into()),
            FaultEvent::Heal(l) => FaultEvent::Heal(leaders.resolve(l, what)?.into()),
            FaultEvent::Partition(a, b) => {
                let outside = a.union(*b).difference(LeaderSet::first(leaders.names.len()));
                if !outside.is_empty() {
                    return Err(SimError::Invalid(format!(
                        "{} partitions {a} from {b}, which names {outside}, not among the {}",
                        what(),
                        leaders.describe()
                    )));
                }
                self.clone()
            }
            FaultEvent::HealAll => FaultEvent::HealAll,
        })
    }
}

/// The cluster's leaders, to look up the leaders a simulation names.
struct Leaders<'a> {
    names: &'a [String],
}

impl Leaders<'_> {
    /// The id of `leader`, or why it is not one of the cluster's leaders (`what` names the part
    /// of the simulation that named it).
    fn resolve(&self, leader: &LeaderRef, what: impl FnOnce() -> String) -> Result<LeaderId, SimError> {
        let found = match leader {
            LeaderRef::Id(id) => (id.index() < self.names.len()).then_some(*id),
            LeaderRef::Name(name) => self.names.iter().position(|n| n == name).and_then(|i| LeaderId::new(i).ok()),
        };
        found.ok_or_else(|| {
            let leader = match leader {
                LeaderRef::Id(id) => format!("leader {id}"),
                LeaderRef::Name(name) => format!("leader {name:?}"),
            };
            SimError::Invalid(format!("{} names {leader}, which is not one of the {}", what(), self.describe()))
        })
    }

    /// `3 leaders (L0 L1 L2)`: the leaders by name (the first few of many).
    fn describe(&self) -> String {
        const SHOWN: usize = 8;
        let n = self.names.len();
        if n == 0 {
            return "0 leaders".to_owned();
        }
        let mut shown = self.names.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(" ");
        if n > SHOWN {
            shown.push_str(" …");
        }
        format!("{n} leader{} ({shown})", if n == 1 { "" } else { "s" })
    }
}

/// What a simulation does, with every leader looked up: the client operations and the faults
/// (in the order given; the run sorts them by time), and one clock skew per leader.
struct Plan {
    ops: Vec<(Duration, LeaderId, ClientOp)>,
    faults: Vec<(Duration, FaultEvent)>,
    skews: Vec<ClockSkew>,
}

/// A simulation: configure with the builder methods, then [`Simulation::run`].
#[derive(Debug, Clone)]
pub struct Simulation {
    seed: u64,
    /// The cluster's settings; the simulation adds simulated clocks, its network, its time
    /// server and a trace sink.
    cluster: ClusterBuilder,
    /// The settings the builder does not tell back, for the rendered setup.
    topology: Topology,
    tick_interval: Option<Duration>,
    supervisor: Option<SupervisorConfig>,
    network: NetworkModel,
    clock_sync: Option<ClockSyncConfig>,
    /// Clock skews in the order they were given (a later one for the same leader wins).
    skews: Vec<(LeaderRef, ClockSkew)>,
    workload: Workload,
    faults: Vec<(Duration, FaultEvent)>,
    max_duration: Duration,
}

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

impl Simulation {
    /// A simulation with seed `seed`: 3 leaders, all-to-all, in-process network, no faults.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Simulation {
            seed,
            cluster: Cluster::builder().leader_count(3),
            topology: Topology::AllToAll { relay: false },
            tick_interval: None,
            supervisor: None,
            network: NetworkModel::in_process(),
            clock_sync: None,
            skews: Vec::new(),
            workload: Workload::default(),
            faults: Vec::new(),
            max_duration: Duration::from_secs(60),
        }
    }

    /// `n` leaders named `L0`…
    #[must_use]
    pub fn leaders(mut self, n: usize) -> Self {
        self.cluster = self.cluster.leader_count(n);
        self
    }

    /// The topology.
    #[must_use]
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = topology.clone();
        self.cluster = self.cluster.topology(topology);
        self
    }

    /// The network model.
    #[must_use]
    pub fn network(mut self, model: NetworkModel) -> Self {
        self.network = model;
        self
    }

    /// Leader `leader`'s clock offset and drift (by name or [`LeaderId`]; the leaders not given
    /// one keep true time).
    #[must_use]
    pub fn clock(mut self, leader: impl Into<LeaderRef>, offset_ns: i64, drift_ppm: i32) -> Self {
        self.skews.push((leader.into(), ClockSkew { offset_ns, drift_ppm }));
        self
    }

    /// Synchronise the leaders' clocks against a time server that knows the simulation's true
    /// time (NTP style; see [`roundtable_actors::clock_sync`]).
    #[must_use]
    pub fn clock_sync(mut self, config: ClockSyncConfig) -> Self {
        self.clock_sync = Some(config);
        self
    }

    /// The resolution of keys outside every named keyspace (default last-write-wins).
    #[must_use]
    pub fn resolution(mut self, resolution: Resolution) -> Self {
        self.cluster = self.cluster.resolution(resolution);
        self
    }

    /// A named keyspace: keys `name/…` are reconciled by `resolution`.
    #[must_use]
    pub fn keyspace(mut self, name: &str, resolution: Resolution) -> Self {
        self.cluster = self.cluster.keyspace(name, resolution);
        self
    }

    /// The workload, built from an empty one.
    #[must_use]
    pub fn workload(mut self, build: impl FnOnce(Workload) -> Workload) -> Self {
        self.workload = build(Workload::default());
        self
    }

    /// A fault at `at`.
    #[must_use]
    pub fn fault(mut self, at: Duration, fault: FaultEvent) -> Self {
        self.faults.push((at, fault));
        self
    }

    /// Leader `leader` (by name or [`LeaderId`]) crashes at `at`.
    #[must_use]
    pub fn crash_at(self, at: Duration, leader: impl Into<LeaderRef>) -> Self {
        self.fault(at, FaultEvent::Crash(leader.into()))
    }

    /// Leader `leader` (by name or [`LeaderId`]) restarts at `at`.
    #[must_use]
    pub fn restart_at(self, at: Duration, leader: impl Into<LeaderRef>) -> Self {
        self.fault(at, FaultEvent::Restart(leader.into()))
    }

    /// Replica settings.
    #[must_use]
    pub fn replica_config(mut self, config: ReplicaConfig) -> Self {
        self.cluster = self.cluster.replica_config(config);
        self
    }

    /// Supervisor settings.
    #[must_use]
    pub fn supervisor_config(mut self, config: SupervisorConfig) -> Self {
        self.supervisor = Some(config);
        self.cluster = self.cluster.supervisor_config(config);
        self
    }

    /// How often leaders tick and send heartbeats (default 100 ms).
    #[must_use]
    pub fn tick_interval(mut self, interval: Duration) -> Self {
        self.tick_interval = Some(interval);
        self.cluster = self.cluster.tick_interval(interval);
        self
    }

    /// The longest the run may take in simulated time before giving up on settling (default 60 s).
    #[must_use]
    pub fn max_duration(mut self, d: Duration) -> Self {
        self.max_duration = d;
        self
    }

    /// Runs the simulation. Panics, with the reason, when the configuration is invalid (a leader
    /// the cluster does not have, no leaders, settings that cannot work together), the runtime
    /// cannot be built or an actor fails to answer; [`Simulation::try_run`] returns those as
    /// errors.
    #[must_use]
    pub fn run(self) -> SimRun {
        match self.try_run() {
            Ok(run) => run,
            Err(e) => panic!("simulation could not run: {e}"),
        }
    }

    /// Runs the simulation.
    ///
    /// # Errors
    /// [`SimError::Invalid`] when a workload operation, a fault or a clock names a leader the
    /// cluster does not have, or a partition splits leaders it does not have; the other
    /// [`SimError`]s when the runtime or the cluster cannot be built or an actor stops answering.
    pub fn try_run(self) -> Result<SimRun, SimError> {
        let plan = self.plan()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
        let system = actix_rt::System::with_tokio_rt(move || rt);
        let result = system.block_on(self.drive(plan));
        actix_rt::System::current().stop();
        result
    }

    /// Looks up every leader the workload, the faults and the clocks name, once.
    fn plan(&self) -> Result<Plan, SimError> {
        let names = self.cluster.leader_names();
        let n = names.len();
        if n > MAX_LEADERS {
            return Err(ClusterError::TooManyLeaders(n).into());
        }
        let leaders = Leaders { names };
        let mut ops = Vec::new();
        for (at, leader, op) in self.workload.expand(n) {
            let id = leaders.resolve(&leader, || format!("the client operation at {}", duration(at)))?;
            ops.push((at, id, op));
        }
        let faults = self
            .faults
            .iter()
            .map(|(at, fault)| Ok((*at, fault.resolve(&leaders, *at)?)))
            .collect::<Result<Vec<_>, SimError>>()?;
        let mut skews = vec![ClockSkew::default(); n];
        for (leader, skew) in &self.skews {
            let id = leaders.resolve(leader, || "a clock skew".to_owned())?;
            if let Some(slot) = skews.get_mut(id.index()) {
                *slot = *skew;
            }
        }
        Ok(Plan { ops, faults, skews })
    }

    async fn drive(self, plan: Plan) -> Result<SimRun, SimError> {
        let epoch = SimEpoch::starting_now(Cluster::simulation_epoch());
        let sink = TraceSink::recording(epoch);
        let network = SimulatedNetwork { model: self.network.clone(), seed: self.seed };
        let mut builder = self
            .cluster
            .clone()
            .simulated_clocks(epoch, plan.skews.clone())
            .trace_sink(sink.clone())
            .transport(Arc::new(network));
        if let Some(config) = self.clock_sync {
            let truth = LeaderClockSource::Simulated { epoch, clock: SimulatedClock::new(epoch.now()) };
            let server = SimulatedTimeServer { truth, seed: self.seed ^ 0x7157_0c10_c4a5_11ed, config };
            builder = builder.clock_sync(Arc::new(server), config.interval);
        }
        let cluster = builder.start().await?;

        // One schedule of client operations and faults, in time order (stable for equal times).
        enum Step {
            Op(LeaderId, ClientOp),
            Fault(FaultEvent),
        }
        let last_fault = plan.faults.iter().map(|(at, _)| *at).max();
        let mut steps: Vec<(Duration, Step)> = plan
            .ops
            .into_iter()
            .map(|(at, leader, op)| (at, Step::Op(leader, op)))
            .chain(plan.faults.into_iter().map(|(at, f)| (at, Step::Fault(f))))
            .collect();
        steps.sort_by_key(|(at, _)| *at);

        let mut acked: Vec<AckedWrite> = Vec::new();
        for (at, step) in steps {
            tokio::time::sleep_until(epoch.instant_at(at)).await;
            match step {
                Step::Op(leader, op) => {
                    if let Some(ack) = client_op(&cluster, &sink, &epoch, leader, op).await? {
                        acked.push(ack);
                    }
                }
                Step::Fault(fault) => {
                    apply_fault(&cluster, &sink, fault)?;
                }
            }
        }

        // Let the cluster settle.
        let settled = loop {
            if cluster.is_settled().await? {
                break Some(epoch.elapsed());
            }
            if epoch.elapsed() >= self.max_duration {
                sink.record(Who::Client, ClientEvent::NotSettled);
                break None;
            }
            tokio::time::sleep(ms(10)).await;
        };
        if let Some(at) = settled {
            sink.record(Who::Client, ClientEvent::Settled { at });
        }
        let states = cluster.states().await?;
        let metrics = cluster.metrics().await?;
        let (live, _) = cluster.supervisor().send(Liveness).await.map_err(ClusterError::from)?;
        // A write is lost with its leader when that leader crashed after acknowledging it and no
        // live leader holds it: it never applied anywhere, or its restarted origin voided it.
        // A write is lost with its leaders when it is not held at the end and every leader that
        // held it lost its in-memory state afterwards (crashed, or rejoined after the cluster
        // fenced its clock): the only loss in-memory leaders can have. It is then voided, or its
        // dot issued again for another write, or simply held by no one.
        let trace = sink.snapshot();
        // A write refused for its stamp (quarantined) or discarded by a rejoining leader is
        // reported as such, not as lost.
        let quarantined: std::collections::BTreeSet<_> =
            states.iter().flat_map(|s| s.quarantined.iter().map(|q| (q.dot, q.hlc))).collect();
        let ids: Vec<_> = acked.iter().map(|a| (a.dot, a.hlc)).collect();
        let marks = trace.marks();
        let spans = write_spans(&marks, &ids);
        let unheld = holders_all_lost(&marks, &acked, &spans);
        let keyspaces = self.cluster.keyspaces()?;
        let subsumed = subsumed_by_a_later_write(&marks, &acked, &spans, &unheld, &keyspaces);
        let (mut lost_with_leader, mut merged_into_later) = (Vec::new(), Vec::new());
        for (((a, unheld), span), subsumed) in acked.iter().zip(unheld).zip(&spans).zip(subsumed) {
            if !unheld || discarded_at_rejoin(&marks, a.dot, span) || quarantined.contains(&(a.dot, a.hlc)) {
                continue;
            }
            if subsumed { &mut merged_into_later } else { &mut lost_with_leader }.push(a.clone());
        }
        let setup = self.render_setup(&keyspaces, &plan.skews);
        Ok(SimRun {
            setup,
            check_settings: CheckSettings { max_offset: self.cluster.replica_settings().max_offset, keyspaces },
            seed: self.seed,
            trace,
            marks,
            states,
            live,
            metrics,
            acked,
            lost_with_leader,
            merged_into_later,
            settled_at: settled,
            last_fault,
        })
    }
}

impl Simulation {
    /// The scenario's setup as a few lines of stable text: seed, leaders, topology, network,
    /// clocks, keyspaces, and the settings that differ from the defaults.
    fn render_setup(&self, keyspaces: &Keyspaces, skews: &[ClockSkew]) -> String {
        let names = self.cluster.leader_names();
        let name = |id: LeaderId| names.get(id.index()).map_or_else(|| id.to_string(), Clone::clone);
        let mut out = String::new();
        let _ = writeln!(out, "seed {}; leaders {}; topology {}", self.seed, names.join(" "), self.topology);

        let n = &self.network;
        let mut network = if n.latency_max.is_zero() {
            "in-process (instant)".to_owned()
        } else if n.latency_min == n.latency_max {
            format!("latency {}", duration(n.latency_min))
        } else {
            format!("latency {}-{}", duration(n.latency_min), duration(n.latency_max))
        };
        for (what, rate) in [("loss", n.drop_rate), ("duplication", n.duplicate_rate), ("reordering", n.reorder_rate)] {
            let _ = write!(network, ", {what} {}", percent(rate));
        }
        for ((from, to), (min, max)) in &n.links {
            let _ = write!(network, "; {}->{} {}-{}", name(*from), name(*to), duration(*min), duration(*max));
        }
        let _ = writeln!(out, "network: {network}");

        let skews: Vec<String> = skews
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != ClockSkew::default())
            .map(|(i, s)| {
                let leader = names.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
                format!("{leader} offset {} drift {:+}ppm", fmt_ns(s.offset_ns), s.drift_ppm)
            })
            .collect();
        let clocks = if skews.is_empty() { "true time".to_owned() } else { skews.join(", ") };
        let sync = match &self.clock_sync {
            Some(c) => format!(
                "clock sync every {} (server delay {}-{})",
                duration(c.interval),
                duration(c.delay_min),
                duration(c.delay_max)
            ),
            None => "no clock sync".to_owned(),
        };
        let _ = writeln!(out, "clocks: {clocks}; {sync}");

        let spaces: Vec<String> = keyspaces.iter().map(|(space, r)| format!("{space}/ {r}")).collect();
        let spaces = if spaces.is_empty() { String::new() } else { format!("; keyspaces {}", spaces.join(", ")) };
        let _ = writeln!(out, "resolution: {}{spaces}", keyspaces.default_resolution());

        let mut settings = replica_differences(self.cluster.replica_settings());
        if let Some(tick) = self.tick_interval.filter(|t| *t != ms(100)) {
            settings.push(format!("tick {}", duration(tick)));
        }
        if let Some(s) = self.supervisor.filter(|s| *s != SupervisorConfig::default()) {
            let restart =
                s.restart_after.map_or_else(|| "no restarts".to_owned(), |r| format!("restart after {}", duration(r)));
            settings.push(format!(
                "supervisor checks every {}, dead after {}, {restart}",
                duration(s.check_interval),
                duration(s.dead_after)
            ));
        }
        let settings = if settings.is_empty() { "defaults".to_owned() } else { settings.join(", ") };
        let _ = writeln!(out, "settings: {settings}");
        out
    }
}

/// The replica settings that differ from the defaults, one phrase each.
fn replica_differences(c: &ReplicaConfig) -> Vec<String> {
    let d = ReplicaConfig::default();
    let mut out = Vec::new();
    let mut differs = |changed: bool, phrase: &dyn Fn() -> String| {
        if changed {
            out.push(phrase());
        }
    };
    differs(c.max_offset != d.max_offset, &|| format!("max_offset {}", duration(c.max_offset)));
    differs(c.batch != d.batch, &|| match c.batch {
        Some(b) => format!(
            "batching ({} entries, flushed every {}, fan-out from {})",
            b.max_entries,
            duration(b.flush_interval),
            b.min_fanout
        ),
        None => "no batching".to_owned(),
    });
    differs(c.gossip != d.gossip, &|| match c.gossip {
        Some(g) => format!("gossip (to {} peers every {}, seed {})", g.fanout, duration(g.interval), g.seed),
        None => "no gossip".to_owned(),
    });
    differs(c.log_entries_max != d.log_entries_max, &|| format!("log_entries_max {}", c.log_entries_max));
    differs(c.causal_buffer_max != d.causal_buffer_max, &|| format!("causal_buffer_max {}", c.causal_buffer_max));
    differs(c.anti_entropy_interval != d.anti_entropy_interval, &|| {
        format!("anti-entropy every {}", duration(c.anti_entropy_interval))
    });
    differs(c.ack_interval != d.ack_interval, &|| {
        c.ack_interval.map_or_else(|| "no ack rounds".to_owned(), |a| format!("acks every {}", duration(a)))
    });
    differs(c.catch_up_batch_max != d.catch_up_batch_max, &|| format!("catch_up_batch_max {}", c.catch_up_batch_max));
    differs(c.catch_up_entries_max != d.catch_up_entries_max, &|| {
        format!("catch_up_entries_max {}", c.catch_up_entries_max)
    });
    differs(c.catch_up_grace != d.catch_up_grace, &|| format!("catch-up grace {}", duration(c.catch_up_grace)));
    differs(c.snapshot_chunk_registers != d.snapshot_chunk_registers, &|| {
        format!("snapshot_chunk_registers {}", c.snapshot_chunk_registers)
    });
    differs(c.snapshot_chunks_max != d.snapshot_chunks_max, &|| {
        format!("snapshot_chunks_max {}", c.snapshot_chunks_max)
    });
    differs(c.quarantine_max != d.quarantine_max, &|| format!("quarantine_max {}", c.quarantine_max));
    differs(c.recovery_quiet != d.recovery_quiet, &|| format!("recovery quiet {}", duration(c.recovery_quiet)));
    differs(c.restart_waits_for_all_members != d.restart_waits_for_all_members, &|| {
        format!("restart_waits_for_all_members {}", c.restart_waits_for_all_members)
    });
    differs(c.correction != d.correction, &|| format!("clock correction {:?}", c.correction));
    differs(c.trace != d.trace, &|| format!("trace events {}", if c.trace { "on" } else { "off" }));
    #[cfg(feature = "fault-injection")]
    differs(c.sabotage != d.sabotage, &|| format!("sabotage {:?}", c.sabotage));
    out
}

/// `20ms`, `0.100ms`: whole milliseconds, or milliseconds with microseconds.
fn duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros % 1000 == 0 {
        format!("{}ms", micros / 1000)
    } else {
        format!("{}.{:03}ms", micros / 1000, micros % 1000)
    }
}

/// A probability as a percentage to a tenth, from an integer (stable text): `5%`, `0.5%`.
fn percent(rate: f64) -> String {
    let per_mille = (rate * 1000.0).round() as u64;
    if per_mille % 10 == 0 {
        format!("{}%", per_mille / 10)
    } else {
        format!("{}.{}%", per_mille / 10, per_mille % 10)
    }
}

async fn client_op(
    cluster: &Cluster,
    sink: &TraceSink,
    epoch: &SimEpoch,
    id: LeaderId,
    op: ClientOp,
) -> Result<Option<AckedWrite>, ClusterError> {
    let addr = cluster.leader(id)?;
    let crdt = match &op {
        ClientOp::Update { update, .. } => match update.as_ref() {
            Update::Crdt(u) => Some(u.clone()),
            _ => None,
        },
        _ => None,
    };
    let (key, value, label, result) = match op {
        ClientOp::Put { key, value } => {
            let r = addr.send(Put::new(key.clone(), value.clone())).await?;
            let label = format!("put {key:?}={value:?}");
            (key, Some(value), label, r)
        }
        ClientOp::Delete { key } => {
            let r = addr.send(Delete::new(key.clone())).await?;
            let label = format!("delete {key:?}");
            (key, None, label, r)
        }
        ClientOp::Update { key, update } => {
            let label = format!("update {key:?} {}", describe(&update));
            let r = addr.send(Write { key: key.clone(), update: *update, concern: None }).await?;
            (key, None, label, r)
        }
        ClientOp::Get { key } => {
            let read = addr.send(Get::new(key.clone())).await?;
            let read = match read {
                Ok(Some(r)) => r.value.map_or(ReadOutcome::Deleted, ReadOutcome::Value),
                Ok(None) => ReadOutcome::Nothing,
                Err(e) => ReadOutcome::Refused(e.to_string()),
            };
            sink.record(Who::Client, ClientEvent::Read { leader: id, key, read });
            return Ok(None);
        }
        ClientOp::ResolveSiblings { key, value } => {
            let read = addr.send(GetSiblings::new(key.clone())).await?;
            let Ok(Some(read)) = read else {
                sink.record(Who::Client, ClientEvent::NoSiblings { leader: id, key });
                return Ok(None);
            };
            let dots = read.siblings.iter().map(|(dot, _)| *dot).collect();
            sink.record(Who::Client, ClientEvent::ReadSiblings { leader: id, key: key.clone(), dots });
            let write = Write::with_context(key.clone(), Some(value.clone().into_bytes()), read.context)
                .map_err(|e| ClusterError::Settings(e.to_string()))?;
            let r = addr.send(write).await?;
            let label = format!("put {key:?}={value:?} over the siblings read");
            (key, Some(value), label, r)
        }
        ClientOp::PutAfterSeeing { key, value, seen_key, seen_value } => {
            let deadline = epoch.elapsed() + Duration::from_secs(10);
            loop {
                let seen = addr.send(Get::new(seen_key.clone())).await?;
                let shows =
                    seen.ok().flatten().and_then(|r| r.value).is_some_and(|v| v.as_bytes() == seen_value.as_bytes());
                if shows {
                    break;
                }
                if epoch.elapsed() >= deadline {
                    sink.record(Who::Client, ClientEvent::NeverShowed { leader: id, key: seen_key, value: seen_value });
                    return Ok(None);
                }
                tokio::time::sleep(ms(1)).await;
            }
            sink.record(Who::Client, ClientEvent::Shows { leader: id, key: seen_key, value: seen_value });
            let r = addr.send(Put::new(key.clone(), value.clone())).await?;
            let label = format!("put {key:?}={value:?}");
            (key, Some(value), label, r)
        }
    };
    match result {
        Ok(receipt) => {
            sink.record(Who::Client, ClientEvent::Wrote { leader: id, op: label, outcome: Ok(receipt.dot) });
            Ok(Some(AckedWrite {
                leader: id,
                at: epoch.elapsed(),
                dot: receipt.dot,
                hlc: receipt.hlc,
                key,
                value,
                crdt,
            }))
        }
        Err(e) => {
            sink.record(Who::Client, ClientEvent::Wrote { leader: id, op: label, outcome: Err(e.to_string()) });
            Ok(None)
        }
    }
}

/// A short, stable description of an update for the trace.
fn describe(update: &Update) -> String {
    use roundtable_runtime::resolution::CrdtUpdate;
    let text = |v: &roundtable_runtime::Value| v.as_str().map_or_else(|| format!("{v:?}"), |s| format!("{s:?}"));
    match update {
        Update::Put(v) => format!("put {}", text(v)),
        Update::Delete => "delete".into(),
        Update::PutWithContext { value: Some(v), .. } => format!("put {} with context", text(v)),
        Update::PutWithContext { value: None, .. } => "delete with context".into(),
        Update::Crdt(CrdtUpdate::Increment(n)) => format!("+{n}"),
        Update::Crdt(CrdtUpdate::Decrement(n)) => format!("-{n}"),
        Update::Crdt(CrdtUpdate::Add(v)) => format!("add {}", text(v)),
        Update::Crdt(CrdtUpdate::Remove(v)) => format!("remove {}", text(v)),
        Update::Crdt(CrdtUpdate::Set { value, .. }) => format!("set {}", text(value)),
        Update::Crdt(CrdtUpdate::MapIncrement { field, amount }) => format!("{} +{amount}", text(field)),
        Update::Crdt(CrdtUpdate::MapDecrement { field, amount }) => format!("{} -{amount}", text(field)),
        Update::Crdt(CrdtUpdate::MapRemove { field }) => format!("remove field {}", text(field)),
    }
}

/// Records `fault` (resolved: its leader by id, so that it shows as before) and applies it.
fn apply_fault(cluster: &Cluster, sink: &TraceSink, fault: FaultEvent) -> Result<(), ClusterError> {
    sink.record(Who::Client, ClientEvent::Fault { fault: fault.to_string() });
    match fault {
        FaultEvent::Crash(l) => cluster.crash(l)?,
        FaultEvent::Restart(l) => cluster.restart(l)?,
        FaultEvent::Isolate(l) => cluster.isolate(l)?,
        FaultEvent::Heal(l) => cluster.heal(l)?,
        FaultEvent::Partition(a, b) => cluster.partition(a, b)?,
        FaultEvent::HealAll => cluster.heal_all()?,
    }
    Ok(())
}
