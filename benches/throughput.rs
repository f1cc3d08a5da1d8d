//! Replication throughput against raw actix message throughput, measured in the same run.
//!
//! The machines this runs on are shared and noisy, so no absolute rate is worth much on its own:
//! every figure is reported as a ratio against a baseline measured in the same process, in the
//! same round, a moment earlier.
//!
//! - **Baseline**: one `do_send` per message to an actor that counts them; `BASELINE_MESSAGES`
//!   messages are enqueued back to back, and the clock stops when a `Count` request (queued behind
//!   them) answers that all were counted. Messages per second.
//! - **Subject**: an in-process, all-to-all cluster of 3 or 5 leaders built with the public
//!   [`Cluster`] builder and default settings. `WRITES` client `Put`s are enqueued back to back
//!   with one `do_send` each, round-robin over the leaders (open loop: the client does not wait
//!   for acknowledgements). The clock stops when every leader reports, through `Inspect`, that it
//!   has applied all `WRITES` writes. A write counts once, when it is applied at every leader:
//!   replicated writes per second. Entry applications per second (writes × leaders ÷ time) are
//!   printed too. Settings are the defaults except the supervisor's `dead_after` (see
//!   [`DEAD_AFTER`]); the bench asserts that no write was refused, every leader applied every
//!   write exactly once, and no rewiring happened.
//!
//! Each round builds a fresh actix `System` (and with it a fresh current-thread runtime) per
//! measurement, so no actor of an earlier measurement ticks in the background of a later one.
//! Cluster start-up is not timed. The order of the three measurements rotates from round to round,
//! and the ratio of each round is taken against that round's baseline; the table shows medians.
//!
//! `cargo bench --bench throughput` runs the full measurement (about 20 s) and prints a Markdown
//! table. Run without `--bench` — as `cargo test --benches` or `cargo test --all-targets` do — it
//! runs a smoke version with tiny sizes that only checks that the harness works; plain
//! `cargo test` does not build it at all.

use std::error::Error;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler, Message};
use roundtable::actors::{Cluster, Inspect, Leader, NetworkModel, Put, SupervisorConfig};
use roundtable::Topology;

/// Messages sent to the counting actor per baseline measurement.
const BASELINE_MESSAGES: u64 = 2_000_000;
/// Client writes per cluster measurement (well under the replica's 65,536-entry log bound, so no
/// forced truncation happens during a measurement).
const WRITES: u64 = 50_000;
/// Rounds; each round measures the baseline and both cluster sizes once.
const ROUNDS: usize = 11;
/// Distinct keys the writes cycle through (keeps `Inspect`, which copies the store, cheap).
const KEYS: u64 = 256;
/// Bytes per written value.
const VALUE_BYTES: usize = 16;
/// Cluster sizes measured.
const LEADER_COUNTS: [usize; 2] = [3, 5];
/// A measurement that takes longer than this is a failure, not a figure.
const MEASUREMENT_LIMIT: Duration = Duration::from_secs(60);
/// Heartbeats share mailboxes with replication traffic, so under a burst longer than the default
/// `dead_after` (500 ms) the supervisor declares loaded leaders dead and rewires mid-measurement.
/// The measurement is of a healthy cluster, so failure detection is relaxed to this limit.
const DEAD_AFTER: Duration = MEASUREMENT_LIMIT;
/// Idle poll rounds timed after a cluster measurement to estimate the poll's resolution.
const RESOLUTION_PROBES: u32 = 16;

/// The sizes of one invocation: full under `cargo bench`, tiny otherwise.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    baseline_messages: u64,
    writes: u64,
    rounds: usize,
}

impl Sizes {
    fn from_args() -> Self {
        if std::env::args().any(|a| a == "--bench") {
            Sizes { baseline_messages: BASELINE_MESSAGES, writes: WRITES, rounds: ROUNDS }
        } else {
            Sizes { baseline_messages: 1_000, writes: 100, rounds: 1 }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Baseline: a counting actor.

/// Counts [`Bump`]s.
struct Counter {
    count: u64,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

/// One message to count.
#[derive(Message)]
#[rtype(result = "()")]
struct Bump;

impl Handler<Bump> for Counter {
    type Result = ();
    fn handle(&mut self, _: Bump, _: &mut Context<Self>) {
        self.count += 1;
    }
}

/// How many were counted so far.
#[derive(Message)]
#[rtype(result = "u64")]
struct Count;

impl Handler<Count> for Counter {
    type Result = u64;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> u64 {
        self.count
    }
}

/// Seconds for `messages` `do_send`s to a counting actor to be counted.
async fn baseline(messages: u64) -> Result<f64, Box<dyn Error>> {
    let counter = Counter { count: 0 }.start();
    let start = Instant::now();
    for _ in 0..messages {
        counter.do_send(Bump);
    }
    while counter.send(Count).await? < messages {
        if start.elapsed() > MEASUREMENT_LIMIT {
            return Err("baseline: messages not counted in time".into());
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(counter.send(Count).await?, messages, "every message counted once");
    Ok(seconds)
}

// ---------------------------------------------------------------------------------------------
// Subject: replicated writes in an in-process, all-to-all cluster.

/// What one cluster measurement observed.
#[derive(Debug, Clone, Copy)]
struct ClusterRun {
    seconds: f64,
    /// Messages the leaders sent each other (all kinds), per client write.
    peer_messages_per_write: f64,
    /// The median time of one `Inspect` round over idle leaders: the poll's resolution.
    poll_round_seconds: f64,
}

/// Whether every leader has applied `writes` writes.
async fn applied_everywhere(leaders: &[Addr<Leader>], writes: u64) -> Result<bool, Box<dyn Error>> {
    for leader in leaders {
        if leader.send(Inspect).await?.applied.total() < writes {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The writes, prepared before the clock starts: `(leader index, put)`, round-robin.
fn prepared_writes(leader_count: usize, writes: u64) -> Vec<(usize, Put)> {
    (0..writes)
        .map(|i| {
            let leader = (i % leader_count as u64) as usize;
            let value = format!("{i:0width$}", width = VALUE_BYTES);
            (leader, Put::new(format!("key:{:03}", i % KEYS), value))
        })
        .collect()
}

/// Seconds for `writes` writes, spread over `leader_count` leaders, to be applied everywhere.
async fn replicated(leader_count: usize, writes: u64) -> Result<ClusterRun, Box<dyn Error>> {
    let cluster = Cluster::builder()
        .leader_count(leader_count)
        .topology(Topology::AllToAll { relay: false })
        .network(NetworkModel::in_process())
        .supervisor_config(SupervisorConfig { dead_after: DEAD_AFTER, ..SupervisorConfig::default() })
        .start()
        .await?;
    let leaders: Vec<Addr<Leader>> =
        cluster.names().iter().map(|name| cluster.leader(name).cloned()).collect::<Result<_, _>>()?;
    cluster.settled_within(Duration::from_secs(5)).await?;
    let puts = prepared_writes(leader_count, writes);

    let start = Instant::now();
    for (leader, put) in puts {
        leaders[leader].do_send(put);
    }
    while !applied_everywhere(&leaders, writes).await? {
        if start.elapsed() > MEASUREMENT_LIMIT {
            return Err(format!("{leader_count} leaders: writes not applied everywhere in time").into());
        }
    }
    let seconds = start.elapsed().as_secs_f64();

    let mut probes = Vec::with_capacity(RESOLUTION_PROBES as usize);
    for _ in 0..RESOLUTION_PROBES {
        let probe = Instant::now();
        applied_everywhere(&leaders, writes).await?;
        probes.push(probe.elapsed().as_secs_f64());
    }
    let metrics = cluster.metrics().await?;
    for state in cluster.states().await? {
        assert_eq!(state.metrics.writes_refused, 0, "{}: no write refused", state.name);
        assert_eq!(state.metrics.applied, writes, "{}: every write applied exactly once", state.name);
    }
    assert_eq!(metrics.writes, writes, "every write accepted");
    assert_eq!(metrics.rewires, 0, "no leader declared dead during the measurement");
    Ok(ClusterRun {
        seconds,
        peer_messages_per_write: metrics.network.messages() as f64 / writes as f64,
        poll_round_seconds: median(&mut probes),
    })
}

// ---------------------------------------------------------------------------------------------
// Rounds and the table.

/// One round's figures: the baseline's rate and, per cluster size, the cluster's run.
struct Round {
    baseline_per_second: f64,
    clusters: Vec<ClusterRun>,
}

/// Runs `future` in a fresh actix system, which (with its runtime and actors) is dropped after.
fn in_fresh_system<T>(future: impl std::future::Future<Output = T>) -> T {
    actix::System::new().block_on(future)
}

fn round(index: usize, sizes: Sizes) -> Result<Round, Box<dyn Error>> {
    let steps = 1 + LEADER_COUNTS.len();
    let mut baseline_per_second = None;
    let mut clusters = vec![None; LEADER_COUNTS.len()];
    for step in (0..steps).map(|s| (s + index) % steps) {
        if step == 0 {
            let seconds = in_fresh_system(baseline(sizes.baseline_messages))?;
            baseline_per_second = Some(sizes.baseline_messages as f64 / seconds);
        } else {
            clusters[step - 1] = Some(in_fresh_system(replicated(LEADER_COUNTS[step - 1], sizes.writes))?);
        }
    }
    Ok(Round {
        baseline_per_second: baseline_per_second.ok_or("baseline not measured")?,
        clusters: clusters.into_iter().collect::<Option<_>>().ok_or("a cluster size not measured")?,
    })
}

fn median(values: &mut [f64]) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<(), Box<dyn Error>> {
    let sizes = Sizes::from_args();
    let rounds: Vec<Round> = (0..sizes.rounds).map(|i| round(i, sizes)).collect::<Result<_, _>>()?;
    assert_eq!(rounds.len(), sizes.rounds);

    let mut baselines: Vec<f64> = rounds.iter().map(|r| r.baseline_per_second).collect();
    if sizes.rounds < ROUNDS {
        println!("SMOKE RUN (no `--bench` argument): tiny sizes, the figures below mean nothing.");
    }
    println!(
        "rounds: {}, baseline: {} do_sends per measurement, cluster: {} writes per measurement, {} keys, \
         {} B values",
        sizes.rounds, sizes.baseline_messages, sizes.writes, KEYS, VALUE_BYTES
    );
    println!();
    println!(
        "| measurement | rate (median) | ratio to baseline (median, min–max) | peer msgs / write | poll resolution |"
    );
    println!("|---|---|---|---|---|");
    println!("| actix baseline: `do_send` to a counting actor | {:.0} msgs/s | 1 | – | – |", median(&mut baselines));
    for (i, leaders) in LEADER_COUNTS.iter().enumerate() {
        let runs: Vec<(f64, ClusterRun)> = rounds.iter().map(|r| (r.baseline_per_second, r.clusters[i])).collect();
        let mut rates: Vec<f64> = runs.iter().map(|(_, c)| sizes.writes as f64 / c.seconds).collect();
        let mut applications: Vec<f64> = rates.iter().map(|r| r * *leaders as f64).collect();
        let mut ratios: Vec<f64> = runs.iter().map(|(b, c)| sizes.writes as f64 / c.seconds / b).collect();
        let mut peer: Vec<f64> = runs.iter().map(|(_, c)| c.peer_messages_per_write).collect();
        let mut poll: Vec<f64> = runs.iter().map(|(_, c)| c.poll_round_seconds * 1e6).collect();
        let (min, max) = ratios.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        println!(
            "| {leaders} leaders, all-to-all: replicated writes applied everywhere | {:.0} writes/s \
             ({:.0} entry applications/s) | {:.4} ({:.4}–{:.4}) | {:.2} | {:.0} µs |",
            median(&mut rates),
            median(&mut applications),
            median(&mut ratios),
            min,
            max,
            median(&mut peer),
            median(&mut poll),
        );
    }
    println!();
    println!("Per round (in the order measured within the round, rotating):");
    for (index, r) in rounds.iter().enumerate() {
        let cells: Vec<String> = LEADER_COUNTS
            .iter()
            .zip(&r.clusters)
            .map(|(leaders, c)| {
                let rate = sizes.writes as f64 / c.seconds;
                format!("{leaders} leaders {rate:.0} writes/s (ratio {:.4})", rate / r.baseline_per_second)
            })
            .collect();
        println!("- round {index}: baseline {:.0} msgs/s; {}", r.baseline_per_second, cells.join("; "));
    }
    Ok(())
}
