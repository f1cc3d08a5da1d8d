//! Replication throughput against raw actix message throughput, and simulation speed, measured
//! with criterion in the same run.
//!
//! The machines this runs on are shared and noisy, so every figure is a ratio against a baseline
//! measured by the same process in the same run:
//!
//! - **Baseline** (`replication/actix do_send`): one `do_send` per message to an actor that counts
//!   them; the time runs until a `Count` request queued behind them answers that all were
//!   counted. Messages per second.
//! - **Subject** (`replication/<topology> <n> leaders <client>`): an in-process cluster built with
//!   the public [`Cluster`] builder — 3 or 5 leaders, all-to-all or star. Client writes (16-byte
//!   values over 256 keys, prepared before the clock starts) are enqueued back to back, spread
//!   over the leaders, and the time runs until every leader reports ([`AppliedTotal`]) that it
//!   applied them all. A write counts once, when it is applied at every leader. Two clients:
//!   `put` sends one [`Put`] per write with batching off (the defaults); `batch 64` sends
//!   [`PutBatch`]es of 64 writes with [`BatchConfig`] flushing per input, so the entries one
//!   batch produces leave for each peer in one message.
//! - **Ratio** = replicated writes per second ÷ baseline messages per second.
//! - **Simulation speed** (`simulation/5 leaders under load`): simulated seconds per wall
//!   second of a 5-leader all-to-all [`Simulation`] on a WAN model (20–80 ms, 1% loss) with 100
//!   writes per simulated second at every leader for 10 simulated seconds. The goal is
//!   at least 1000.
//!
//! criterion drives every measurement (`iter_custom`: a fresh actix system per sample, cluster
//! start-up untimed); each routine also adds what it timed to a tally, and the table printed at
//! the end divides the tallies, so the ratios come from exactly the samples criterion took.
//! `cargo bench -p roundtable-benches --bench replication` runs it (about 2 minutes). Without
//! `--bench` (`cargo test -p roundtable-benches --benches`) criterion runs each routine once as a
//! smoke test.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler, Message};
use criterion::Criterion;
use roundtable::actors::{AppliedTotal, Cluster, FlowControl, Leader, Put, PutBatch, SupervisorConfig};
use roundtable::runtime::{BatchConfig, LeaderId, ReplicaConfig, Topology};
use roundtable_sim::{ms, NetworkModel, Simulation};

/// Distinct keys the writes cycle through.
const KEYS: u64 = 256;
/// Bytes per written value.
const VALUE_BYTES: usize = 16;
/// Writes per `PutBatch`.
const CLIENT_BATCH: usize = 64;
/// A measurement taking longer than this is a failure.
const LIMIT: Duration = Duration::from_secs(120);

/// What each routine timed, by benchmark id: (units, seconds).
static TALLY: Mutex<BTreeMap<String, (u64, f64)>> = Mutex::new(BTreeMap::new());

fn tally(id: &str, units: u64, elapsed: Duration) {
    if let Ok(mut t) = TALLY.lock() {
        let e = t.entry(id.to_owned()).or_insert((0, 0.0));
        e.0 += units;
        e.1 += elapsed.as_secs_f64();
    }
}

// ----- baseline ---------------------------------------------------------------------------------

struct Counter(u64);

impl Actor for Counter {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Bump;

impl Handler<Bump> for Counter {
    type Result = ();
    fn handle(&mut self, _: Bump, _: &mut Context<Self>) {
        self.0 += 1;
    }
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Count;

impl Handler<Count> for Counter {
    type Result = u64;
    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> u64 {
        self.0
    }
}

fn baseline(messages: u64) -> Duration {
    let system = actix::System::new();
    system.block_on(async move {
        let counter = Counter(0).start();
        let start = Instant::now();
        for _ in 0..messages {
            counter.do_send(Bump);
        }
        while counter.send(Count).await.expect("the counter answers") < messages {
            assert!(start.elapsed() < LIMIT, "baseline: messages not counted in time");
        }
        start.elapsed()
    })
}

// ----- replicated writes ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// One `Put` per write, batching off.
    Put,
    /// `PutBatch`es of `CLIENT_BATCH`, batching per input.
    Batch,
}

fn topology(name: &str) -> Topology {
    match name {
        "star" => Topology::Star { hub: LeaderId::new(0).expect("leader 0") },
        _ => Topology::AllToAll { relay: false },
    }
}

fn value(i: u64) -> Vec<u8> {
    format!("{i:0width$}", width = VALUE_BYTES).into_bytes()
}

/// Time for `writes` writes to be applied at every leader.
fn replicated(topology_name: &str, leaders: usize, client: Client, writes: u64) -> Duration {
    let system = actix::System::new();
    let topology_name = topology_name.to_owned();
    system.block_on(async move {
        let batch = (client == Client::Batch).then_some(BatchConfig {
            max_entries: 256,
            flush_interval: Duration::ZERO,
            min_fanout: 1,
        });
        let cluster = Cluster::builder()
            .leader_count(leaders)
            .topology(topology(&topology_name))
            // Heartbeats share mailboxes with the writes: a long burst must not read as a death.
            .supervisor_config(SupervisorConfig { dead_after: LIMIT, ..SupervisorConfig::default() })
            .replica_config(ReplicaConfig { batch, ..ReplicaConfig::default() })
            // The client floods open loop (do_send, results dropped): with the default bounds a
            // large sample fills the outboxes and writes are refused (backpressure), which is
            // the right answer for a client but not this measurement of absorbed throughput.
            .flow_control(FlowControl { outbox_max: 1 << 24, network_mailbox: 1 << 24 })
            .start()
            .await
            .expect("cluster starts");
        let addrs: Vec<Addr<Leader>> =
            cluster.names().iter().map(|n| cluster.leader(n).map(|h| h.addr().clone()).expect("leader")).collect();
        cluster.settled_within(Duration::from_secs(5)).await.expect("settles");
        let before: u64 = total(&addrs).await;
        let key = |i: u64| format!("key:{:03}", i % KEYS);
        // The client's messages are made before the clock starts: formatting keys and values is
        // the client's work, not the cluster's.
        let (mut puts, mut batches) = (Vec::new(), Vec::new());
        match client {
            Client::Put => puts.extend((0..writes).map(|i| Put::new(key(i), value(i)))),
            Client::Batch => {
                let mut i = 0;
                while i < writes {
                    let n = (writes - i).min(CLIENT_BATCH as u64);
                    batches.push(PutBatch::new((i..i + n).map(|j| (key(j), value(j)))).expect("within the bound"));
                    i += n;
                }
            }
        }
        let start = Instant::now();
        for (i, put) in puts.into_iter().enumerate() {
            addrs[i % leaders].do_send(put);
        }
        for (i, batch) in batches.into_iter().enumerate() {
            addrs[i % leaders].do_send(batch);
        }
        let want = before / leaders as u64 + writes;
        loop {
            let mut done = true;
            for a in &addrs {
                if a.send(AppliedTotal).await.expect("leader answers").unwrap_or(0) < want {
                    done = false;
                    break;
                }
            }
            if done {
                break;
            }
            assert!(start.elapsed() < LIMIT, "{topology_name} {leaders}: writes not applied in time");
        }
        let elapsed = start.elapsed();
        for state in cluster.states().await.expect("states") {
            assert_eq!(state.metrics.writes_refused, 0, "{}: no write refused", state.name);
        }
        elapsed
    })
}

async fn total(addrs: &[Addr<Leader>]) -> u64 {
    let mut sum = 0;
    for a in addrs {
        sum += a.send(AppliedTotal).await.expect("leader answers").unwrap_or(0);
    }
    sum
}

// ----- simulation speed -------------------------------------------------------------------------

/// Simulated seconds of the loaded 5-leader run.
const SIMULATED_SECONDS: u64 = 10;

fn simulation() -> Duration {
    let started = Instant::now();
    let run = Simulation::new(3)
        .leaders(5)
        .network(NetworkModel::wan().drop_rate(0.01))
        .workload(|mut w| {
            for i in 0..(100 * SIMULATED_SECONDS) {
                for leader in LeaderId::range(5) {
                    let at = ms(10 * i + leader.index() as u64);
                    w = w.put(at, leader, &format!("k{}", i % 64), "v");
                }
            }
            w
        })
        .run();
    let wall = started.elapsed();
    run.assert_converged();
    assert!(run.settled_at().is_some_and(|t| t >= Duration::from_secs(SIMULATED_SECONDS)));
    wall
}

// ----- criterion --------------------------------------------------------------------------------

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("replication");
    group.sample_size(10).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    group.bench_function("actix do_send", |b| {
        b.iter_custom(|iters| {
            let messages = iters * 1_000;
            let elapsed = baseline(messages);
            tally("actix do_send", messages, elapsed);
            elapsed
        });
    });
    for topology_name in ["all-to-all", "star"] {
        for leaders in [3usize, 5] {
            for (client, client_name) in [(Client::Put, "put"), (Client::Batch, "batch 64")] {
                let id = format!("{topology_name} {leaders} leaders {client_name}");
                group.bench_function(&id, |b| {
                    b.iter_custom(|iters| {
                        let writes = iters * 100;
                        let elapsed = replicated(topology_name, leaders, client, writes);
                        tally(&id, writes, elapsed);
                        elapsed
                    });
                });
            }
        }
    }
    group.finish();
    let mut group = c.benchmark_group("simulation");
    group.sample_size(10).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    group.bench_function("5 leaders under load", |b| {
        b.iter_custom(|iters| {
            let mut wall = Duration::ZERO;
            for _ in 0..iters {
                wall += simulation();
            }
            tally("simulation", iters * SIMULATED_SECONDS, wall);
            wall
        });
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    let Ok(t) = TALLY.lock() else { return };
    let rate = |id: &str| t.get(id).filter(|(_, s)| *s > 0.0).map(|(u, s)| *u as f64 / s);
    let Some(base) = rate("actix do_send") else {
        println!("no baseline measured");
        return;
    };
    println!("\n| measurement | rate | ratio to the baseline |\n|---|---|---|");
    println!("| actix `do_send` to a counting actor | {base:.0} msgs/s | 1 |");
    for (id, _) in t.iter().filter(|(id, _)| id.contains("leaders")) {
        if let Some(r) = rate(id) {
            println!("| {id}: replicated writes applied everywhere | {r:.0} writes/s | {:.4} |", r / base);
        }
    }
    if let Some(r) = rate("simulation") {
        println!("| simulation: 5 leaders under load | {r:.0} simulated s per wall s | (goal 1000) |");
    }
}
