//! Seed sweeps: the simulator as a fault-finding machine.
//!
//! A [`Scenario`] is one topology, one conflict resolution, a number of leaders, a
//! [`FaultMix`] and a seed; everything else — the workload, when the partition comes and which
//! leaders it splits, which leader crashes and when it restarts, every clock's offset and drift
//! — is drawn from the seed, so the scenario *is* its replay: [`Scenario::replay_command`]
//! prints the one command that runs exactly that simulation again, with its trace. A [`Sweep`]
//! runs many seeds for every topology × resolution pair, checks each run with the invariant
//! checker ([`crate::check`]) and keeps the failures.
//!
//! ```
//! use roundtable_sim::sweep::{FaultMix, Sweep, SweepResolution, SweepTopology};
//!
//! let result = Sweep::new(0..2)
//!     .topologies(&[SweepTopology::Star])
//!     .resolutions(&[SweepResolution::Lww])
//!     .faults(FaultMix::standard())
//!     .run(|_| {});
//! assert!(result.passed(), "{}", result.summary());
//! ```

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use roundtable_runtime::rng::SeededRng;
use roundtable_runtime::topologies::Graph;
use roundtable_runtime::{LeaderId, LeaderSet, ReplicaConfig, Topology, Value};

use roundtable_runtime::resolution::{CrdtKind, CrdtUpdate, Resolution, Update};

use crate::check::{CheckReport, Invariant};
use crate::network::NetworkModel;
use crate::run::SimRun;
use crate::simulation::{ms, FaultEvent, Simulation, Workload};
use crate::time_server::ClockSyncConfig;

/// The topologies a sweep covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SweepTopology {
    /// A directed ring.
    Circle,
    /// A star around leader 0.
    Star,
    /// Everyone sends to everyone.
    AllToAll,
    /// A custom graph: a bidirectional ring with a chord from leader 0 to the middle leader.
    Custom,
}

impl SweepTopology {
    /// Every topology.
    pub const ALL: [SweepTopology; 4] =
        [SweepTopology::Circle, SweepTopology::Star, SweepTopology::AllToAll, SweepTopology::Custom];

    /// Its name on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            SweepTopology::Circle => "circle",
            SweepTopology::Star => "star",
            SweepTopology::AllToAll => "all-to-all",
            SweepTopology::Custom => "custom",
        }
    }

    /// The topology over `leaders` leaders.
    #[must_use]
    pub fn topology(self, leaders: usize) -> Topology {
        let ids: Vec<LeaderId> = LeaderSet::first(leaders.clamp(1, roundtable_runtime::MAX_LEADERS)).iter().collect();
        let id = |i: usize| ids[i % ids.len()];
        match self {
            SweepTopology::Circle => Topology::Circle,
            SweepTopology::Star => Topology::Star { hub: id(0) },
            SweepTopology::AllToAll => Topology::AllToAll { relay: false },
            SweepTopology::Custom => {
                let mut graph = Graph::new();
                for i in 0..leaders {
                    graph.add_link(id(i), id(i + 1));
                }
                if leaders > 3 {
                    graph.add_link(id(0), id(leaders / 2));
                }
                Topology::Custom(graph)
            }
        }
    }
}

/// The conflict resolutions a sweep covers; each has a workload that exercises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SweepResolution {
    /// Last-write-wins: puts and deletes of a few shared keys.
    Lww,
    /// Conflict avoidance by home leader: puts and deletes routed to each key's home.
    HomeLeader,
    /// Version vectors with siblings: blind puts, and reads that resolve the siblings.
    Siblings,
    /// A state-based CRDT (observed-remove set, shipped as deltas): adds and removes.
    CrdtState,
    /// An operation-based CRDT (PN-counter): increments and decrements.
    CrdtOp,
}

impl SweepResolution {
    /// Every resolution.
    pub const ALL: [SweepResolution; 5] = [
        SweepResolution::Lww,
        SweepResolution::HomeLeader,
        SweepResolution::Siblings,
        SweepResolution::CrdtState,
        SweepResolution::CrdtOp,
    ];

    /// Its name on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            SweepResolution::Lww => "lww",
            SweepResolution::HomeLeader => "home-leader",
            SweepResolution::Siblings => "siblings",
            SweepResolution::CrdtState => "crdt-state",
            SweepResolution::CrdtOp => "crdt-op",
        }
    }

    /// The keyspace's resolution.
    #[must_use]
    pub const fn resolution(self) -> Resolution {
        match self {
            SweepResolution::Lww => Resolution::LastWriteWins,
            SweepResolution::HomeLeader => Resolution::HomeLeader,
            SweepResolution::Siblings => Resolution::Siblings { max_siblings: 8 },
            SweepResolution::CrdtState => Resolution::Crdt(CrdtKind::OrSet),
            SweepResolution::CrdtOp => Resolution::Crdt(CrdtKind::OpCounter),
        }
    }
}

/// Why a name did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?} (expected one of: {expected})")]
pub struct UnknownName {
    what: &'static str,
    given: String,
    expected: String,
}

fn parse_name<T: Copy>(
    what: &'static str,
    given: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, UnknownName> {
    all.iter().copied().find(|t| name(*t) == given).ok_or_else(|| UnknownName {
        what,
        given: given.to_owned(),
        expected: all.iter().map(|t| name(*t)).collect::<Vec<_>>().join(", "),
    })
}

impl FromStr for SweepTopology {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name("topology", s, &Self::ALL, Self::name)
    }
}

impl FromStr for SweepResolution {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name("resolution", s, &Self::ALL, Self::name)
    }
}

impl fmt::Display for SweepTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for SweepResolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The faults a scenario draws from its seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultMix {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is held back (reordered behind later ones).
    pub reorder: f64,
    /// A partition into two random groups that heals later.
    pub partition: bool,
    /// A crash of a random leader (the star's hub half of the time) and its restart.
    pub crash_restart: bool,
    /// Each leader's clock starts off by up to this much, either way.
    pub clock_offset: Duration,
    /// Each leader's clock drifts by up to this many ppm, either way.
    pub drift_ppm: u32,
    /// The leaders synchronise their clocks NTP style.
    pub ntp: bool,
    /// The leaders are durable, on simulated disks: a crash keeps what was synced, and clients'
    /// writes are acknowledged once synced. Off: in-memory leaders.
    pub disks: bool,
    /// With disks, the probability that a crash also loses the leader's disk.
    pub disk_loss: f64,
}

impl FaultMix {
    /// No faults: a lossless WAN, true clocks.
    #[must_use]
    pub const fn none() -> Self {
        FaultMix {
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            partition: false,
            crash_restart: false,
            clock_offset: Duration::ZERO,
            drift_ppm: 0,
            ntp: false,
            disks: false,
            disk_loss: 0.0,
        }
    }

    /// The standard mix: 10% loss, 10% duplication, 10% reordering, a partition that heals, a
    /// crash and restart, clock offsets up to ±500 ms and drift up to ±100 ppm with NTP sync,
    /// durable leaders on simulated disks, and a quarter of the crashes losing the disk.
    #[must_use]
    pub const fn standard() -> Self {
        FaultMix {
            drop: 0.1,
            duplicate: 0.1,
            reorder: 0.1,
            partition: true,
            crash_restart: true,
            clock_offset: Duration::from_millis(500),
            drift_ppm: 100,
            ntp: true,
            disks: true,
            disk_loss: 0.25,
        }
    }
}

/// `standard`, `none`, or the faults as comma-separated items:
/// `drop=0.1,duplicate=0.1,reorder=0.1,partition,crash,offset=500,drift=100,ntp,disks,disk-loss=0.25`
/// (offset in milliseconds, drift in ppm; `disk-loss` implies `disks`). [`FromStr`] reads the
/// same forms, so a mix survives a replay command; items after `standard` or `none` adjust it
/// (`standard,drop=0.3`; `standard,memory` for in-memory leaders).
impl fmt::Display for FaultMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == FaultMix::standard() {
            return f.write_str("standard");
        }
        if *self == FaultMix::none() {
            return f.write_str("none");
        }
        let mut items = Vec::new();
        for (name, p) in [("drop", self.drop), ("duplicate", self.duplicate), ("reorder", self.reorder)] {
            if p > 0.0 {
                items.push(format!("{name}={p}"));
            }
        }
        for (name, on) in [("partition", self.partition), ("crash", self.crash_restart)] {
            if on {
                items.push(name.to_owned());
            }
        }
        if !self.clock_offset.is_zero() {
            items.push(format!("offset={}", self.clock_offset.as_millis()));
        }
        if self.drift_ppm > 0 {
            items.push(format!("drift={}", self.drift_ppm));
        }
        if self.ntp {
            items.push("ntp".to_owned());
        }
        if self.disk_loss > 0.0 {
            items.push(format!("disk-loss={}", self.disk_loss));
        } else if self.disks {
            items.push("disks".to_owned());
        }
        f.write_str(&items.join(","))
    }
}

/// Why a fault mix did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fault mix item {item:?}: {why} (expected standard, none, or items like drop=0.1,duplicate=0.1,reorder=0.1,partition,crash,offset=500,drift=100,ntp,disks,disk-loss=0.25,memory)")]
pub struct BadFaultMix {
    item: String,
    why: &'static str,
}

impl FromStr for FaultMix {
    type Err = BadFaultMix;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = FaultMix::none();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = |why| BadFaultMix { item: item.to_owned(), why };
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (item, None),
            };
            let probability = || -> Result<f64, BadFaultMix> {
                let p: f64 = value.ok_or_else(|| bad("needs a value"))?.parse().map_err(|_| bad("not a number"))?;
                if (0.0..=1.0).contains(&p) {
                    Ok(p)
                } else {
                    Err(bad("a probability is between 0 and 1"))
                }
            };
            let number = || -> Result<u64, BadFaultMix> {
                value.ok_or_else(|| bad("needs a value"))?.parse().map_err(|_| bad("not a whole number"))
            };
            match name {
                "standard" => mix = FaultMix::standard(),
                "none" => mix = FaultMix::none(),
                "drop" => mix.drop = probability()?,
                "duplicate" => mix.duplicate = probability()?,
                "reorder" => mix.reorder = probability()?,
                "partition" => mix.partition = true,
                "crash" => mix.crash_restart = true,
                "ntp" => mix.ntp = true,
                "disks" => mix.disks = true,
                "memory" => (mix.disks, mix.disk_loss) = (false, 0.0),
                "disk-loss" => (mix.disks, mix.disk_loss) = (true, probability()?),
                "offset" => {
                    let ms = number()?;
                    if ms > 10_000 {
                        return Err(bad("at most 10000 ms"));
                    }
                    mix.clock_offset = Duration::from_millis(ms);
                }
                "drift" => {
                    let ppm = number()?;
                    if ppm > 1_000 {
                        return Err(bad("at most 1000 ppm"));
                    }
                    mix.drift_ppm = ppm as u32;
                }
                _ => return Err(bad("unknown item")),
            }
        }
        Ok(mix)
    }
}

/// One broken mechanism (needs the `fault-injection` feature); see
/// `roundtable_runtime::Sabotage`.
#[cfg(feature = "fault-injection")]
pub use roundtable_runtime::Sabotage;

/// One simulation of a sweep, fully determined by its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The topology.
    pub topology: SweepTopology,
    /// The resolution of the keyspace the workload writes.
    pub resolution: SweepResolution,
    /// How many leaders.
    pub leaders: usize,
    /// The seed of everything else.
    pub seed: u64,
    /// The faults.
    pub faults: FaultMix,
    /// A mechanism broken on purpose.
    #[cfg(feature = "fault-injection")]
    pub sabotage: Sabotage,
}

/// How long a simulated disk takes to sync, in a sweep with disks.
pub const DISK_SYNC: Duration = Duration::from_millis(1);

/// The keyspace every sweep workload writes.
pub const SWEEP_KEYSPACE: &str = "data";
/// Client operations per leader in a sweep workload.
const OPS_PER_LEADER: u64 = 6;
/// Distinct keys a sweep workload writes (few, so that writes conflict).
const KEYS: u64 = 3;
/// Client operations happen in the first this-many milliseconds.
const WORKLOAD_SPAN_MS: u64 = 1_500;

impl Scenario {
    /// A scenario with the standard fault mix.
    #[must_use]
    pub fn new(topology: SweepTopology, resolution: SweepResolution, leaders: usize, seed: u64) -> Self {
        Scenario {
            topology,
            resolution,
            leaders,
            seed,
            faults: FaultMix::standard(),
            #[cfg(feature = "fault-injection")]
            sabotage: Sabotage::None,
        }
    }

    /// The simulation: workload, faults and clocks drawn from the seed.
    #[must_use]
    pub fn simulation(&self) -> Simulation {
        let n = self.leaders.max(1);
        let f = &self.faults;
        let mut rng = SeededRng::new(self.seed ^ 0x5eed_5eed_5eed_5eed);
        let network = NetworkModel::wan().drop_rate(f.drop).duplicate_rate(f.duplicate).reorder_rate(f.reorder);
        #[allow(unused_mut)]
        let mut config = ReplicaConfig::default();
        #[cfg(feature = "fault-injection")]
        {
            config.sabotage = self.sabotage;
        }
        let mut sim = Simulation::new(self.seed)
            .leaders(n)
            .topology(self.topology.topology(n))
            .network(network)
            .keyspace(SWEEP_KEYSPACE, self.resolution.resolution())
            .replica_config(config)
            .max_duration(Duration::from_secs(60));
        if f.ntp {
            sim = sim.clock_sync(ClockSyncConfig::default());
        }
        // At most MAX_LEADERS ids: a scenario with more leaders fails to start (too many leaders).
        let ids: Vec<LeaderId> = LeaderId::range(n).collect();
        let offset_ms = f.clock_offset.as_millis() as u64;
        if offset_ms > 0 || f.drift_ppm > 0 {
            for &leader in &ids {
                let offset = rng.below(2 * offset_ms + 1) as i64 - offset_ms as i64;
                let drift = rng.below(2 * u64::from(f.drift_ppm) + 1) as i64 - i64::from(f.drift_ppm);
                sim = sim.clock(leader, offset * 1_000_000, drift as i32);
            }
        }
        let mut workload = rng.fork(1);
        sim = sim.workload(|w| self.workload(w, &ids, &mut workload));
        if f.partition && n > 1 {
            let at = 200 + rng.below(600);
            let heal = at + 300 + rng.below(700);
            // A random nonempty proper subset against the rest.
            let mask = 1 + rng.below((1u64 << n.min(63)) - 2);
            let side: LeaderSet = ids.iter().copied().filter(|id| mask & (1 << id.index()) != 0).collect();
            let rest = LeaderSet::first(n).difference(side);
            sim = sim.fault(ms(at), FaultEvent::Partition(side, rest)).fault(ms(heal), FaultEvent::HealAll);
        }
        if f.crash_restart {
            let victim = if self.topology == SweepTopology::Star && rng.chance(0.5) {
                ids.first()
            } else {
                ids.get(rng.below(ids.len() as u64) as usize)
            };
            let at = 100 + rng.below(1_100);
            let back = at + 300 + rng.below(1_200);
            if let Some(&victim) = victim {
                sim = sim.crash_at(ms(at), victim).restart_at(ms(back), victim);
                // Drawn last, so that a mix without disks draws everything else the same.
                if f.disks && rng.chance(f.disk_loss) {
                    sim = sim.fault(ms(at), FaultEvent::LoseDisk(victim.into()));
                }
            }
        }
        if f.disks {
            sim = sim.disks(DISK_SYNC);
        }
        sim
    }

    fn workload(&self, mut w: Workload, leaders: &[LeaderId], rng: &mut SeededRng) -> Workload {
        for &leader in leaders {
            for j in 0..OPS_PER_LEADER {
                let at = ms(rng.below(WORKLOAD_SPAN_MS));
                let key = format!("{SWEEP_KEYSPACE}/k{}", rng.below(KEYS));
                let value = format!("{leader}.{j}");
                let roll = rng.below(10);
                w = match self.resolution {
                    SweepResolution::Lww | SweepResolution::HomeLeader if roll < 2 => w.delete(at, leader, &key),
                    SweepResolution::Lww | SweepResolution::HomeLeader => w.put(at, leader, &key, &value),
                    SweepResolution::Siblings if roll < 3 => w.resolve_siblings(at, leader, &key, &value),
                    SweepResolution::Siblings => w.put(at, leader, &key, &value),
                    SweepResolution::CrdtState => {
                        let Ok(element) = Value::new(format!("e{}", rng.below(4))) else { continue };
                        let update = if roll < 3 { CrdtUpdate::Remove(element) } else { CrdtUpdate::Add(element) };
                        w.update(at, leader, &key, Update::Crdt(update))
                    }
                    SweepResolution::CrdtOp => {
                        let amount = 1 + rng.below(5);
                        let update =
                            if roll < 3 { CrdtUpdate::Decrement(amount) } else { CrdtUpdate::Increment(amount) };
                        w.update(at, leader, &key, Update::Crdt(update))
                    }
                };
            }
        }
        w
    }

    /// Runs the simulation and checks it.
    #[must_use]
    pub fn run(&self) -> ScenarioOutcome {
        match self.simulation().try_run() {
            Ok(run) => {
                let report = run.check();
                ScenarioOutcome { scenario: self.clone(), report: Ok(report), run: Some(run) }
            }
            Err(e) => ScenarioOutcome { scenario: self.clone(), report: Err(e.to_string()), run: None },
        }
    }

    /// The one command that replays exactly this run and prints its trace.
    #[must_use]
    pub fn replay_command(&self) -> String {
        let mut cmd = String::from("cargo run --release -p roundtable-cli");
        #[cfg(feature = "fault-injection")]
        if self.sabotage != Sabotage::None {
            cmd.push_str(" --features fault-injection");
        }
        let _ = write!(
            cmd,
            " -- sim --topology {} --resolution {} --leaders {} --seed {} --faults {}",
            self.topology, self.resolution, self.leaders, self.seed, self.faults
        );
        #[cfg(feature = "fault-injection")]
        if self.sabotage != Sabotage::None {
            let _ = write!(cmd, " --sabotage {}", sabotage_name(self.sabotage));
        }
        cmd.push_str(" --trace");
        cmd
    }
}

/// The command-line name of a sabotage.
#[cfg(feature = "fault-injection")]
#[must_use]
pub fn sabotage_name(sabotage: Sabotage) -> &'static str {
    match sabotage {
        Sabotage::SkipDependencyCheck => "skip-dependency-check",
        Sabotage::SkipDuplicateSuppression => "skip-duplicate-suppression",
        Sabotage::AcceptFarFutureTimestamps => "accept-far-future-timestamps",
        _ => "none",
    }
}

/// Reads a sabotage's command-line name (see [`sabotage_name`]).
///
/// # Errors
/// [`UnknownName`] for any other name.
#[cfg(feature = "fault-injection")]
pub fn parse_sabotage(name: &str) -> Result<Sabotage, UnknownName> {
    const ALL: [Sabotage; 4] = [
        Sabotage::None,
        Sabotage::SkipDependencyCheck,
        Sabotage::SkipDuplicateSuppression,
        Sabotage::AcceptFarFutureTimestamps,
    ];
    parse_name("sabotage", name, &ALL, sabotage_name)
}

/// A scenario's run and the checker's verdict.
#[derive(Debug, Clone)]
pub struct ScenarioOutcome {
    /// What ran.
    pub scenario: Scenario,
    /// The checker's report, or why the simulation could not run.
    pub report: Result<CheckReport, String>,
    /// The run, when it ran.
    pub run: Option<SimRun>,
}

impl ScenarioOutcome {
    /// Whether the run happened and every invariant held.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.report.as_ref().is_ok_and(CheckReport::passed)
    }

    /// The invariants it violated.
    #[must_use]
    pub fn violated(&self) -> Vec<Invariant> {
        self.report.as_ref().map(CheckReport::violated).unwrap_or_default()
    }
}

/// A failure of a sweep: which run, what broke, how to replay it.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepFailure {
    /// The run.
    pub scenario: Scenario,
    /// The invariants violated (empty: the simulation could not run).
    pub violated: Vec<Invariant>,
    /// The first violation, in words (or why it could not run).
    pub first: String,
}

impl fmt::Display for SweepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.violated.iter().map(|i| i.name()).collect();
        writeln!(
            f,
            "seed {} ({} × {}): violated {}",
            self.scenario.seed,
            self.scenario.topology,
            self.scenario.resolution,
            if names.is_empty() { "nothing: the simulation could not run".to_owned() } else { names.join(", ") }
        )?;
        writeln!(f, "  {}", self.first)?;
        write!(f, "  replay: {}", self.scenario.replay_command())
    }
}

/// Seeds × topologies × resolutions.
#[derive(Debug, Clone)]
pub struct Sweep {
    seeds: Range<u64>,
    topologies: Vec<SweepTopology>,
    resolutions: Vec<SweepResolution>,
    leaders: usize,
    faults: FaultMix,
    threads: usize,
    #[cfg(feature = "fault-injection")]
    sabotage: Sabotage,
}

/// Progress of a running sweep, passed to the callback after every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Runs finished.
    pub done: u64,
    /// Runs in all.
    pub total: u64,
    /// Runs that failed so far.
    pub failed: u64,
}

/// Leaders per sweep run unless told otherwise: enough for a star with three spokes, a
/// partition with two on each side, and a custom graph with a chord.
pub const SWEEP_LEADERS: usize = 4;

impl Sweep {
    /// Every topology × resolution over `seeds`, 4 leaders, the standard fault mix, one thread
    /// per core.
    #[must_use]
    pub fn new(seeds: Range<u64>) -> Self {
        Sweep {
            seeds,
            topologies: SweepTopology::ALL.to_vec(),
            resolutions: SweepResolution::ALL.to_vec(),
            leaders: SWEEP_LEADERS,
            faults: FaultMix::standard(),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            #[cfg(feature = "fault-injection")]
            sabotage: Sabotage::None,
        }
    }

    /// Only these topologies.
    #[must_use]
    pub fn topologies(mut self, topologies: &[SweepTopology]) -> Self {
        self.topologies = topologies.to_vec();
        self
    }

    /// Only these resolutions.
    #[must_use]
    pub fn resolutions(mut self, resolutions: &[SweepResolution]) -> Self {
        self.resolutions = resolutions.to_vec();
        self
    }

    /// Leaders per run (2–64).
    #[must_use]
    pub fn leaders(mut self, leaders: usize) -> Self {
        self.leaders = leaders.clamp(2, roundtable_runtime::MAX_LEADERS);
        self
    }

    /// The fault mix.
    #[must_use]
    pub fn faults(mut self, faults: FaultMix) -> Self {
        self.faults = faults;
        self
    }

    /// Worker threads (each runs whole simulations; results do not depend on it).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Break one mechanism in every run.
    #[cfg(feature = "fault-injection")]
    #[must_use]
    pub fn sabotage(mut self, sabotage: Sabotage) -> Self {
        self.sabotage = sabotage;
        self
    }

    /// Every scenario of the sweep, in order (topology, resolution, seed).
    #[must_use]
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut out = Vec::new();
        for &topology in &self.topologies {
            for &resolution in &self.resolutions {
                for seed in self.seeds.clone() {
                    let mut s = Scenario::new(topology, resolution, self.leaders, seed);
                    s.faults = self.faults;
                    #[cfg(feature = "fault-injection")]
                    {
                        s.sabotage = self.sabotage;
                    }
                    out.push(s);
                }
            }
        }
        out
    }

    /// Runs every scenario, calling `progress` after each, and returns the tally.
    pub fn run(&self, progress: impl Fn(Progress) + Sync) -> SweepResult {
        let scenarios = self.scenarios();
        let total = scenarios.len() as u64;
        let next = AtomicUsize::new(0);
        let (done, failed) = (AtomicU64::new(0), AtomicU64::new(0));
        let results: Mutex<Vec<(usize, PairKey, Option<SweepFailure>)>> = Mutex::new(Vec::new());
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..self.threads.min(scenarios.len().max(1)) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(scenario) = scenarios.get(i) else { break };
                    let outcome = scenario.run();
                    let failure = (!outcome.passed()).then(|| SweepFailure {
                        scenario: scenario.clone(),
                        violated: outcome.violated(),
                        first: match &outcome.report {
                            Ok(report) => report.violations.first().map(ToString::to_string).unwrap_or_default(),
                            Err(e) => e.clone(),
                        },
                    });
                    if failure.is_some() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut r) = results.lock() {
                        r.push((i, (scenario.topology, scenario.resolution), failure));
                    }
                    let done = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(Progress { done, total, failed: failed.load(Ordering::Relaxed) });
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        results.sort_by_key(|(i, _, _)| *i);
        let mut pairs: Vec<PairTally> = Vec::new();
        let mut failures = Vec::new();
        for (_, key, failure) in results {
            if pairs.last().is_none_or(|p| p.key != key) {
                pairs.push(PairTally { key, runs: 0, failed: 0 });
            }
            if let Some(p) = pairs.last_mut() {
                p.runs += 1;
                p.failed += u64::from(failure.is_some());
            }
            failures.extend(failure);
        }
        SweepResult { pairs, failures, elapsed: started.elapsed() }
    }
}

type PairKey = (SweepTopology, SweepResolution);

/// Runs and failures of one topology × resolution pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairTally {
    /// The pair.
    pub key: (SweepTopology, SweepResolution),
    /// Runs.
    pub runs: u64,
    /// Runs that failed.
    pub failed: u64,
}

/// The outcome of a sweep.
#[derive(Debug, Clone)]
pub struct SweepResult {
    /// Per pair, in sweep order.
    pub pairs: Vec<PairTally>,
    /// Every failed run, in sweep order (topology, resolution, seed).
    pub failures: Vec<SweepFailure>,
    /// Wall time the sweep took (not deterministic; for the summary only).
    pub elapsed: Duration,
}

impl SweepResult {
    /// Whether every run passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Runs in all.
    #[must_use]
    pub fn runs(&self) -> u64 {
        self.pairs.iter().map(|p| p.runs).sum()
    }

    /// A table: one row per pair, then every failure with its replay command.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| topology | resolution | runs | failed |");
        let _ = writeln!(out, "|---|---|---|---|");
        for p in &self.pairs {
            let _ = writeln!(out, "| {} | {} | {} | {} |", p.key.0, p.key.1, p.runs, p.failed);
        }
        let secs = self.elapsed.as_secs_f64();
        let _ = writeln!(
            out,
            "{} runs, {} failed, in {:.1} s ({:.1} runs/s)",
            self.runs(),
            self.failures.len(),
            secs,
            if secs > 0.0 { self.runs() as f64 / secs } else { 0.0 }
        );
        for failure in &self.failures {
            let _ = writeln!(out, "{failure}");
        }
        out
    }
}
