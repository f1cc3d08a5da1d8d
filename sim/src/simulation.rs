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
//! What the clients do and which faults strike is in [`crate::workload`]; the clients at work in
//! [`crate::client`].

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use roundtable_runtime::{LeaderId, LeaderSet, ReplicaConfig, Topology, MAX_LEADERS};

use roundtable_actors::trace::{Actor as Who, ClientEvent, TraceSink};
use roundtable_actors::{
    ClockSkew, Cluster, ClusterBuilder, ClusterError, LeaderClockSource, Liveness, Resolution, SimEpoch,
    SupervisorConfig, WriteConcern,
};
use roundtable_runtime::clock::SimulatedClock;
use roundtable_runtime::resolution::Keyspaces;
use roundtable_runtime::trace::fmt_ns;

use crate::client::{apply_fault, client_op};
pub use crate::error::SimError;
use crate::network::{NetworkModel, SimulatedNetwork};
use crate::run::{
    holders_all_lost, subsumed_by_a_later_write, write_spans, AckedWrite, CheckSettings, Discards, SimRun,
};
use crate::time_server::{ClockSyncConfig, SimulatedTimeServer};
use crate::workload::{duration, Leaders, Plan};
pub use crate::workload::{ms, ClientOp, FaultEvent, LeaderRef, Workload};

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
    /// Simulated disks: how long a sync takes (`None`: in-memory leaders).
    disks: Option<Duration>,
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
            disks: None,
        }
    }

    /// Durable leaders on simulated disks that sync a batch `sync_delay` after it is handed
    /// over: a crash keeps what was synced, [`FaultEvent::LoseDisk`] loses it, and clients' writes
    /// are acknowledged once synced (the durable write concern), so the checker counts an
    /// acknowledged write lost with its leader as a violation unless that leader's disk was lost.
    #[must_use]
    pub fn disks(mut self, sync_delay: Duration) -> Self {
        self.disks = Some(sync_delay);
        self.cluster = self.cluster.memory_disks(sync_delay);
        self
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
        let lost_disks: LeaderSet = plan
            .faults
            .iter()
            .filter_map(|(_, f)| match f {
                FaultEvent::LoseDisk(LeaderRef::Id(id)) => Some(*id),
                _ => None,
            })
            .collect();
        let mut steps: Vec<(Duration, Step)> = plan
            .ops
            .into_iter()
            .map(|(at, leader, op)| (at, Step::Op(leader, op)))
            .chain(plan.faults.into_iter().map(|(at, f)| (at, Step::Fault(f))))
            .collect();
        steps.sort_by_key(|(at, _)| *at);

        let mut acked: Vec<AckedWrite> = Vec::new();
        // With disks, a write is acknowledged once synced; a crash before that fails it.
        let concern = self.disks.map(|_| WriteConcern::durable(Duration::from_secs(30)));
        for (at, step) in steps {
            tokio::time::sleep_until(epoch.instant_at(at)).await;
            match step {
                Step::Op(leader, op) => {
                    if let Some(ack) = client_op(&cluster, &sink, &epoch, leader, op, concern).await? {
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
        let discards = Discards::of(&marks);
        let (mut lost_with_leader, mut merged_into_later) = (Vec::new(), Vec::new());
        for (((a, unheld), span), subsumed) in acked.iter().zip(unheld).zip(&spans).zip(subsumed) {
            if !unheld || discards.during(a.dot, span) || quarantined.contains(&(a.dot, a.hlc)) {
                continue;
            }
            if subsumed { &mut merged_into_later } else { &mut lost_with_leader }.push(a.clone());
        }
        let setup = self.render_setup(&keyspaces, &plan.skews);
        Ok(SimRun {
            setup,
            check_settings: CheckSettings {
                max_offset: self.cluster.replica_settings().max_offset,
                keyspaces,
                durable: self.disks.is_some(),
                lost_disks,
            },
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
        if let Some(delay) = self.disks {
            let _ = writeln!(
                out,
                "disks: simulated, synced {} after a batch; writes acknowledged once synced",
                duration(delay)
            );
        }

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

/// A probability as a percentage to a tenth, from an integer (stable text): `5%`, `0.5%`.
fn percent(rate: f64) -> String {
    let per_mille = (rate * 1000.0).round() as u64;
    if per_mille.is_multiple_of(10) {
        format!("{}%", per_mille / 10)
    } else {
        format!("{}.{}%", per_mille / 10, per_mille % 10)
    }
}
