//! The Redis face-off (issue 14): `redis-benchmark -t set,get,incr,sadd -P 16 -c 50` against
//! one node of a 3-node cluster (replicating every write to its 2 peers) and against a lone
//! `redis-server`, in the same run, alternating, on the same machine (shared and noisy: ratios).
//!
//! - **redis-server**: no persistence (`--save '' --appendonly no`), its default for a cache.
//! - **roundtable, in memory**: nodes without a data directory, `write_concern = "local"`: a
//!   write is answered once applied at the node, then replicated, as redis-server answers
//!   before its replicas have the write.
//! - **roundtable, durable**: the nodes `roundtable keygen` writes (a data directory each, the
//!   durable write concern: a pipeline is answered once fsynced).
//!
//! For each command it prints ops/s and the p99 latency of each system, and the ratios
//! roundtable ÷ redis-server (ops/s: higher is better; p99: lower is better), the median over
//! 5 rounds, each cluster and redis-server having had one unmeasured run first. `cargo bench -p roundtable-cli --bench faceoff` runs it in full; `cargo test -p
//! roundtable-cli --bench faceoff` runs a smoke version whose figures mean nothing. Without
//! `redis-server` and `redis-benchmark` it says so and stops.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use support::{call, free_addrs, within, Node, Nodes, Resp, LIMIT};

const TESTS: [&str; 4] = ["SET", "GET", "INCR", "SADD"];

/// ops/s and p99 (ms) per command.
type Figures = BTreeMap<String, (f64, f64)>;

/// A `redis-server` without persistence in `dir`; a replica of `primary` when given.
fn redis_server(dir: &std::path::Path, primary: Option<SocketAddr>) -> Option<(Node, SocketAddr)> {
    let addr: SocketAddr = free_addrs(1)[0].parse().ok()?;
    let mut command = Command::new("redis-server");
    command.args(["--bind", "127.0.0.1", "--port", &addr.port().to_string(), "--save", "", "--appendonly", "no"]);
    if let Some(primary) = primary {
        command.args(["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    }
    let child = command.arg("--dir").arg(dir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()?;
    let node = Node(child);
    within(LIMIT, || (call(addr, &["PING"]).ok() == Some(Resp::Simple("PONG".into()))).then_some(()))?;
    Some((node, addr))
}

/// One `redis-benchmark` run against `addr`: its CSV, parsed.
fn benchmark(addr: SocketAddr, requests: usize) -> Figures {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(["-t", "set,get,incr,sadd", "-P", "16", "-c", "50", "-n", &requests.to_string(), "--csv"])
        .stderr(Stdio::null())
        .output()
        .expect("redis-benchmark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figures = Figures::new();
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        if let [test, rps, _, _, _, _, p99, ..] = fields.as_slice() {
            if let (Ok(rps), Ok(p99)) = (rps.parse::<f64>(), p99.parse::<f64>()) {
                figures.insert((*test).to_owned(), (rps, p99));
            }
        }
    }
    assert_eq!(figures.len(), TESTS.len(), "redis-benchmark against {addr} gave:\n{text}");
    figures
}

/// Waits until node 0's peers report holding every write it applied (`INFO replication`:
/// `lag_writes=0` for each), so that a run starts from an idle cluster as a run against
/// redis-server does. Returns how long that took.
fn quiesce(node0: SocketAddr) -> std::time::Duration {
    let start = std::time::Instant::now();
    let idle = within(LIMIT, || match call(node0, &["INFO", "replication"]) {
        Ok(Resp::Bulk(Some(info))) => {
            let info = String::from_utf8_lossy(&info).into_owned();
            (info.matches("lag_writes=0\r\n").count() == 2).then_some(())
        }
        _ => None,
    });
    assert!(idle.is_some(), "node 0's peers catch up within {LIMIT:?}");
    start.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A 3-node cluster, in memory or durable, answering writes at every node.
fn cluster(durable: bool) -> Nodes {
    let mut nodes = Nodes::new(3, "all-to-all");
    if !durable {
        nodes.in_memory();
    }
    nodes.start_all();
    nodes.all_writable();
    nodes
}

fn main() {
    let smoke = std::env::args().all(|a| a != "--bench");
    let (rounds, requests) = if smoke { (1, 2_000) } else { (5, 300_000) };
    for tool in ["redis-server", "redis-benchmark"] {
        if Command::new(tool).arg("--version").stdout(Stdio::null()).status().is_err() {
            println!("face-off: skipped ({tool} is not installed: apt-get install redis-server redis-tools)");
            return;
        }
    }
    println!("face-off: redis-benchmark -t set,get,incr,sadd -P 16 -c 50 -n {requests}, {rounds} rounds");
    let dir = tempfile::tempdir().expect("a directory");
    let (_redis, redis_addr) = redis_server(dir.path(), None).expect("redis-server starts");
    // For context, not the target: Redis replicating to 2 replicas on the same machine, as the
    // node replicates to its 2 peers (asynchronous replication, no persistence).
    let (_primary, primary) = redis_server(dir.path(), None).expect("redis-server starts");
    let replicas: Vec<(Node, SocketAddr)> = (0..2)
        .map(|i| {
            let dir = dir.path().join(format!("replica{i}"));
            std::fs::create_dir_all(&dir).expect("a directory");
            redis_server(&dir, Some(primary)).expect("a replica starts")
        })
        .collect();
    let linked = within(LIMIT, || match call(primary, &["INFO", "replication"]) {
        Ok(Resp::Bulk(Some(info))) => String::from_utf8_lossy(&info).contains("connected_slaves:2").then_some(()),
        _ => None,
    });
    assert!(linked.is_some(), "both replicas connect to the primary");
    let mut replicated = BTreeMap::<&str, Vec<f64>>::new();
    for _ in 0..rounds {
        let (theirs, lone) = (benchmark(primary, requests), benchmark(redis_addr, requests));
        for test in TESTS {
            replicated.entry(test).or_default().push(theirs[test].0 / lone[test].0);
        }
    }
    println!("  redis-server with 2 replicas ÷ lone redis-server, ops/s (median):");
    for test in TESTS {
        println!("    {test:<4}  {:.2}", median(replicated[test].clone()));
    }
    drop(replicas);
    for (label, durable) in [("in memory", false), ("durable", true)] {
        let nodes = cluster(durable);
        let ours_addr = nodes.redis[0];
        let (mut rps, mut p99) = (BTreeMap::<&str, Vec<f64>>::new(), BTreeMap::<&str, Vec<f64>>::new());
        // One unmeasured run each first: a fresh cluster's first run also grows its allocator,
        // log and connections to their steady state (its p99 was ~3x a later run's).
        benchmark(ours_addr, requests);
        quiesce(ours_addr);
        benchmark(redis_addr, requests);
        let mut catch_up = Vec::new();
        for round in 0..rounds {
            // Alternate who goes first, so that neither always runs on a warmer machine. After
            // each run against the node, its peers finish applying what it sent before anything
            // else runs (SADD leaves them a backlog: a SET run that started during it measured
            // ~30 % less).
            let ours = |catch_up: &mut Vec<f64>| {
                let figures = benchmark(ours_addr, requests);
                catch_up.push(quiesce(ours_addr).as_secs_f64() * 1e3);
                figures
            };
            let (theirs, ours) = if round % 2 == 0 {
                let theirs = benchmark(redis_addr, requests);
                (theirs, ours(&mut catch_up))
            } else {
                let ours = ours(&mut catch_up);
                (benchmark(redis_addr, requests), ours)
            };
            for test in TESTS {
                let ((r_ours, p_ours), (r_theirs, p_theirs)) = (ours[test], theirs[test]);
                println!(
                    "  round {round} {label:>9} {test:<4}: roundtable {r_ours:>10.0} ops/s p99 {p_ours:>6.3} ms | \
                     redis-server {r_theirs:>10.0} ops/s p99 {p_theirs:>6.3} ms"
                );
                rps.entry(test).or_default().push(r_ours / r_theirs);
                p99.entry(test).or_default().push(p_ours / p_theirs);
            }
        }
        // Every node holds what the benchmark wrote at node 0 (the writes were replicated).
        let counted = call(nodes.redis[0], &["GET", "counter:__rand_int__"]).expect("GET");
        for i in 1..3 {
            nodes.eventually(i, &["GET", "counter:__rand_int__"], &counted);
        }
        println!("  {label}: the peers caught up {:.0} ms (median) after a run ended", median(catch_up));
        println!("  {label}: median ratio roundtable ÷ redis-server (ops/s higher is better, p99 lower is better)");
        for test in TESTS {
            let target = match test {
                "SET" => " (target ops/s ≥ 0.5)",
                "GET" => " (target ops/s ≥ 0.8)",
                _ => "",
            };
            println!(
                "    {test:<4}  ops/s {:.2}   p99 {:.2}{target}",
                median(rps[test].clone()),
                median(p99[test].clone())
            );
        }
    }
}
