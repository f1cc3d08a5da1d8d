//! The "efficient broadcast" workload: 25 leaders, 100 ms one-way latency on every link, 100
//! client operations per second for 20 simulated seconds — half writes, half reads, spread over
//! all leaders — in the deterministic simulator.
//!
//! For each topology and batching setting it reports:
//! - **msgs/op**: every message the leaders exchange (replication, catch-up, anti-entropy and
//!   acknowledgement digests, snapshots, and heartbeats to the supervisor) ÷ client operations;
//! - the **median** and **maximum** time from a write's acknowledgement to its visibility at
//!   every leader (from the trace: the write's stamp at its leader, then the first application
//!   at each other leader).
//!
//! Then the same with a partition in the middle (half the leaders cut off from the other half
//! from 8 s to 10 s), with the latencies of the writes made after the heal.
//!
//! ```sh
//! cargo run --release --example broadcast            # the full table (about a minute)
//! cargo run --release --example broadcast -- --quick # 5 simulated seconds, for a smoke run
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use roundtable::actors::{SupervisorConfig, TraceActor};
use roundtable::runtime::TraceEvent;
use roundtable::runtime::{BatchConfig, Dot, LeaderId, LeaderSet, ReplicaConfig, Topology};
use roundtable_sim::{ms, FaultEvent, NetworkModel, SimRun, Simulation};

/// Leaders in the challenge.
const LEADERS: usize = 25;
/// Client operations per second, over all leaders.
const OPS_PER_SECOND: u64 = 100;
/// One-way latency of every link.
const LATENCY: Duration = Duration::from_millis(100);

/// One row of the table: a topology and a batching setting.
#[derive(Debug, Clone)]
struct Setting {
    topology: &'static str,
    batch: Option<Duration>,
}

impl Setting {
    fn topology(&self) -> Topology {
        let hub = LeaderId::new(0).expect("leader 0 exists");
        match self.topology {
            "star" => Topology::Star { hub },
            "all-to-all" => Topology::AllToAll { relay: false },
            _ => Topology::Circle,
        }
    }

    fn batching(&self) -> String {
        match self.batch {
            None => "off".into(),
            Some(d) if d.is_zero() => "per input".into(),
            Some(d) => format!("{} ms", d.as_millis()),
        }
    }
}

/// What one run measured.
struct Figures {
    messages: u64,
    heartbeats: u64,
    ops: u64,
    median: Duration,
    max: Duration,
    writes_measured: usize,
    wall: Duration,
    simulated: Duration,
}

/// The cluster settings every row shares: heartbeats once a second (the supervisor declares a
/// leader dead after 3.5 s of silence), anti-entropy every 5 s on idle links, acknowledgement
/// rounds every 10 s.
fn replica_config(batch: Option<Duration>) -> ReplicaConfig {
    ReplicaConfig {
        anti_entropy_interval: Duration::from_secs(5),
        ack_interval: Some(Duration::from_secs(10)),
        batch: batch.map(|flush_interval| BatchConfig { max_entries: 256, flush_interval, min_fanout: 2 }),
        ..ReplicaConfig::default()
    }
}

fn run(setting: &Setting, seconds: u64, partition: Option<(Duration, Duration)>) -> (SimRun, Figures) {
    let ops = OPS_PER_SECOND * seconds;
    let step = Duration::from_millis(1_000 / OPS_PER_SECOND);
    let leaders: Vec<LeaderId> = LeaderId::range(LEADERS).collect();
    let mut sim = Simulation::new(2026)
        .leaders(LEADERS)
        .topology(setting.topology())
        .network(NetworkModel::fixed(LATENCY))
        .tick_interval(Duration::from_secs(1))
        .supervisor_config(SupervisorConfig {
            check_interval: Duration::from_millis(500),
            dead_after: Duration::from_millis(3_500),
            restart_after: None,
        })
        .replica_config(replica_config(setting.batch))
        .max_duration(Duration::from_secs(seconds + 60))
        .workload(|mut w| {
            for i in 0..ops {
                let at = step * i as u32;
                let leader = leaders[(i as usize * 7) % leaders.len()]; // spread over all leaders
                w = if i % 2 == 0 {
                    w.put(at, leader, &format!("k{}", i % 50), &format!("v{i}"))
                } else {
                    w.get(at, leader, &format!("k{}", (i - 1) % 50))
                };
            }
            w
        });
    if let Some((from, to)) = partition {
        let side: LeaderSet = LeaderId::range(LEADERS / 2).collect();
        let rest = LeaderSet::first(LEADERS).difference(side);
        sim = sim.fault(from, FaultEvent::Partition(side, rest)).fault(to, FaultEvent::HealAll);
    }
    let started = Instant::now();
    let run = sim.run();
    let wall = started.elapsed();
    run.assert_converged();
    let after = partition.map_or(Duration::ZERO, |(_, heal)| heal);
    let (median, max, writes_measured) = visibility(&run, after);
    let net = &run.metrics().network;
    let figures = Figures {
        messages: net.messages(),
        heartbeats: net.heartbeats,
        ops,
        median,
        max,
        writes_measured,
        wall,
        simulated: run.settled_at().unwrap_or_default(),
    };
    (run, figures)
}

/// Median and maximum time from each write (made at or after `after`) to its application at
/// every leader.
fn visibility(run: &SimRun, after: Duration) -> (Duration, Duration, usize) {
    let mut written: BTreeMap<Dot, Duration> = BTreeMap::new();
    let mut seen_by: BTreeMap<Dot, (usize, Duration)> = BTreeMap::new();
    for record in &run.trace().records {
        let TraceActor::Leader(id) = record.actor else { continue };
        match record.replica(id) {
            Some(TraceEvent::WriteAccepted { dot, .. }) => {
                written.insert(*dot, record.at);
                seen_by.insert(*dot, (1, record.at));
            }
            Some(TraceEvent::Applied { dot, .. }) if written.contains_key(dot) => {
                if let Some((count, last)) = seen_by.get_mut(dot) {
                    *count += 1;
                    *last = record.at;
                }
            }
            _ => {}
        }
    }
    let mut latencies: Vec<Duration> = written
        .iter()
        .filter(|(_, at)| **at >= after)
        .filter_map(|(dot, at)| {
            // The origin's own application counts as its first; the write is visible everywhere
            // once all 25 leaders applied it.
            seen_by.get(dot).filter(|(count, _)| *count > LEADERS).map(|(_, last)| last.saturating_sub(*at))
        })
        .collect();
    latencies.sort();
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or_default();
    let max = latencies.last().copied().unwrap_or_default();
    (median, max, latencies.len())
}

fn row(setting: &Setting, f: &Figures) -> String {
    format!(
        "| {} | {} | {:.2} | {:.2} | {} | {} | {} | {:.0} |",
        setting.topology,
        setting.batching(),
        f.messages as f64 / f.ops as f64,
        (f.messages + f.heartbeats) as f64 / f.ops as f64,
        f.median.as_millis(),
        f.max.as_millis(),
        f.writes_measured,
        f.simulated.as_secs_f64() / f.wall.as_secs_f64().max(1e-9),
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 5 } else { 20 };
    let settings: Vec<Setting> = ["star", "all-to-all", "circle"]
        .into_iter()
        .flat_map(|topology| {
            [None, Some(ms(100)), Some(ms(200)), Some(ms(250))]
                .into_iter()
                .map(move |batch| Setting { topology, batch })
        })
        .filter(|s: &Setting| std::env::var("BROADCAST_ONLY").map_or(true, |only| only == s.topology))
        .collect();
    let header = "| topology | batching | msgs/op (leader to leader) | msgs/op (with heartbeats) | median ms | max ms | writes measured | simulated s per wall s |\n|---|---|---|---|---|---|---|---|";
    println!(
        "{LEADERS} leaders, {} ms one-way latency, {OPS_PER_SECOND} ops/s (half writes, half reads) for {seconds} s\n",
        LATENCY.as_millis()
    );
    println!("{header}");
    for setting in &settings {
        let (run, figures) = run(setting, seconds, None);
        println!("{}", row(setting, &figures));
        if std::env::var_os("BROADCAST_KINDS").is_some() {
            let kinds: Vec<String> =
                run.metrics().network.by_kind.iter().map(|(k, s)| format!("{k} {}", s.messages)).collect();
            println!("|  | {} heartbeats {} |", kinds.join(", "), figures.heartbeats);
        }
    }
    let (cut, heal) = if quick { (ms(2_000), ms(3_000)) } else { (ms(8_000), ms(10_000)) };
    println!(
        "\nWith a partition from {} s to {} s ({} leaders against {}); latencies of the writes made after the heal\n",
        cut.as_secs(),
        heal.as_secs(),
        LEADERS / 2,
        LEADERS - LEADERS / 2
    );
    println!("{header}");
    for setting in &settings {
        let (_, figures) = run(setting, seconds, Some((cut, heal)));
        println!("{}", row(setting, &figures));
    }
}
