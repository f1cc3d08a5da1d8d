//! Leaders in separate processes: `roundtable node` processes on loopback, measured against the
//! same workload in one process, in the same run (the machine is shared and noisy: ratios).
//!
//! 1. **Throughput.** Three node processes, all-to-all, writes acknowledged once applied
//!    (`write_concern = "local"`, as in the baseline; `--bench durable` measures fsyncs); one
//!    client per node writes `W / 3` keys
//!    (16-byte values) over RESP, either one `SET` per round trip (*unbatched*) or pipelines of
//!    64 `SET`s (*batched*); the clock stops when every node reads every client's last key
//!    (each origin's writes are applied in order, so its last key means all of them). The
//!    baseline is the same writes in one process: three leaders on the in-process transport,
//!    one client task per leader, `put` per write (*unbatched*) or `put_batch` of 64
//!    (*batched*), until every leader has applied all of them (`AppliedTotal`).
//! 2. **Bytes per write** on the links after the batched run: frame bytes (postcard) and link
//!    bytes (with the 4-byte frame length, the Noise messages' 2-byte lengths and 16-byte
//!    tags), summed over the nodes, divided by the writes; heartbeats and digests included.
//! 3. **Visibility latency**: `SET` at node 0 acknowledged, then `GET` at node 1 polled until it
//!    reads the value; p50 and p99 over the samples.
//! 4. **Failure detection**: node 2 killed with SIGKILL; the time until node 0's supervisor has
//!    declared it dead and rewired (`INFO replication` live set), p50 and max; node 2 is
//!    restarted and writable before the next kill.
//! 5. **Abuse**: batched writes at nodes 0 and 2, replicated to node 1, before and while node
//!    1's peer port takes garbage, slow handshakes (one byte every 100 ms), handshakes
//!    announcing 65,535 bytes that never come, and bursts of 1,000 connections; writes per
//!    second during ÷ before (target ≥ 0.8).
//!
//! `cargo bench -p roundtable-cli --bench nodes` runs it in full (about two minutes);
//! `cargo test -p roundtable-cli --bench nodes` runs a smoke version whose figures mean nothing.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{within, Client, Nodes, Resp, LIMIT};

/// Writes per `SET` pipeline in the batched runs.
const PIPELINE: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Sizes {
    writes: usize,
    latency_samples: usize,
    kills: usize,
    abuse_writes: usize,
}

fn value() -> String {
    "v".repeat(16)
}

/// Client `origin` writes keys `o{origin}-0 …` to `addr`; every reply must be `OK`.
fn write_all(addr: SocketAddr, origin: usize, count: usize, batch: usize) {
    let mut client = Client::connect(addr).expect("connect");
    let v = value();
    let mut i = 0;
    while i < count {
        let n = batch.min(count - i);
        let reqs: Vec<Vec<String>> =
            (i..i + n).map(|j| vec!["SET".into(), format!("o{origin}-{j}"), v.clone()]).collect();
        for reply in client.pipeline(&reqs).expect("replies") {
            assert_eq!(reply, Resp::Simple("OK".into()), "write refused");
        }
        i += n;
    }
}

/// Writes `per_node` keys at each of `writers` concurrently, then waits until every node in
/// `readers` reads every writer's last key. Returns the wall time.
fn replicate(
    nodes: &Nodes,
    writers: &[usize],
    readers: &[usize],
    per_node: usize,
    batch: usize,
    tag: usize,
) -> Duration {
    let started = Instant::now();
    let threads: Vec<_> = writers
        .iter()
        .map(|&i| {
            let addr = nodes.redis[i];
            std::thread::spawn(move || write_all(addr, tag * 100 + i, per_node, batch))
        })
        .collect();
    for t in threads {
        t.join().expect("a writer");
    }
    for &r in readers {
        let mut client = Client::connect(nodes.redis[r]).expect("connect");
        for &w in writers {
            let key = format!("o{}-{}", tag * 100 + w, per_node - 1);
            // Polled every 200 µs, as the in-process baseline polls its leaders.
            while !matches!(client.call(&["GET", &key]).expect("a reply"), Resp::Bulk(Some(_))) {
                assert!(started.elapsed() < LIMIT, "node {r} never read {key}");
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    started.elapsed()
}

/// The same writes in one process: three leaders on the in-process transport.
fn in_process(total: usize, batch: usize) -> Duration {
    use roundtable_actors::{AppliedTotal, Cluster, Put, PutBatch};
    actix::System::new().block_on(async move {
        let cluster = Cluster::builder().leaders(["n0", "n1", "n2"]).start().await.expect("a cluster");
        let per = total / 3;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (i, leader) in cluster.leaders().enumerate() {
            let leader = leader.clone();
            tasks.push(actix::spawn(async move {
                let v = value();
                let mut j = 0;
                while j < per {
                    let n = batch.min(per - j);
                    if n == 1 {
                        leader
                            .send(Put::new(format!("o{i}-{j}"), v.clone()))
                            .await
                            .expect("answers")
                            .expect("accepted");
                    } else {
                        let puts = (j..j + n).map(|k| (format!("o{i}-{k}"), v.clone().into_bytes()));
                        let batch = PutBatch::new(puts).expect("a batch");
                        for r in leader.send(batch).await.expect("answers") {
                            r.expect("each put accepted");
                        }
                    }
                    j += n;
                }
            }));
        }
        for t in tasks {
            t.await.expect("a client");
        }
        let want = (per * 3) as u64;
        loop {
            let mut done = true;
            for leader in cluster.leaders() {
                let applied = leader.send(AppliedTotal).await.expect("answers").unwrap_or(0);
                done &= applied >= want;
            }
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        started.elapsed()
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn info_u64(nodes: &Nodes, i: usize, field: &str) -> u64 {
    nodes.info_field(i, field).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Attacks `target` until `stop`: garbage, slow and stalled handshakes, bursts of connections.
fn abuse(target: SocketAddr, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    let s = stop.clone();
    threads.push(std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if let Ok(mut c) = TcpStream::connect(target) {
                let _ = c.write_all(&[0, 10, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB, 0xAB]);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }));
    let s = stop.clone();
    threads.push(std::thread::spawn(move || {
        let mut slow = Vec::new();
        while !s.load(Ordering::Relaxed) {
            // A handshake message announcing 65,535 bytes, and one trickling a byte at a time.
            if let Ok(mut c) = TcpStream::connect(target) {
                let _ = c.write_all(&[0xFF, 0xFF, 1]);
                slow.push(c);
            }
            if let Ok(mut c) = TcpStream::connect(target) {
                let _ = c.write_all(&[0, 32]);
                slow.push(c);
            }
            for c in &mut slow {
                let _ = c.write_all(&[0]);
            }
            slow.retain(|c| c.peer_addr().is_ok());
            slow.truncate(200);
            std::thread::sleep(Duration::from_millis(100));
        }
    }));
    let s = stop;
    threads.push(std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            let burst: Vec<TcpStream> = (0..1000).filter_map(|_| TcpStream::connect(target).ok()).collect();
            std::thread::sleep(Duration::from_millis(200));
            drop(burst);
        }
    }));
    threads
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes { writes: 30_000, latency_samples: 1_000, kills: 20, abuse_writes: 6_000 }
    } else {
        Sizes { writes: 300, latency_samples: 20, kills: 2, abuse_writes: 300 }
    };
    let per = sizes.writes / 3;
    let mut nodes = Nodes::new(3, "all-to-all");
    // Writes acknowledged once applied, as the in-process baseline's are: this bench measures
    // replication between processes; `--bench durable` measures what fsyncs cost.
    nodes.write_concern("local");
    nodes.start_all();
    nodes.all_writable();

    // 1. Throughput, alternating processes and one process, two rounds each.
    let mut rows = Vec::new();
    let mut tag = 1;
    for (name, batch) in [("unbatched", 1), ("batched", PIPELINE)] {
        let (mut procs, mut inproc) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..2 {
            procs += replicate(&nodes, &[0, 1, 2], &[0, 1, 2], per, batch, tag);
            tag += 1;
            inproc += in_process(per * 3, batch);
        }
        let rate = |d: Duration| (2 * per * 3) as f64 / d.as_secs_f64();
        rows.push((name, rate(procs), rate(inproc)));
    }
    let writes_done: u64 = (0..3).map(|i| info_u64(&nodes, i, "writes_accepted")).sum();
    let frame_bytes: u64 = (0..3).map(|i| info_u64(&nodes, i, "bytes_sent")).sum();
    let link_bytes: u64 = (0..3).map(|i| info_u64(&nodes, i, "link_bytes")).sum();

    // 3. Visibility latency.
    let (mut at0, mut at1) =
        (Client::connect(nodes.redis[0]).expect("connect"), Client::connect(nodes.redis[1]).expect("connect"));
    let mut lat = Vec::with_capacity(sizes.latency_samples);
    for i in 0..sizes.latency_samples {
        let key = format!("lat{i}");
        assert_eq!(at0.call(&["SET", &key, "x"]).expect("a reply"), Resp::Simple("OK".into()));
        let acked = Instant::now();
        while !matches!(at1.call(&["GET", &key]).expect("a reply"), Resp::Bulk(Some(_))) {
            assert!(acked.elapsed() < LIMIT, "{key} never became visible");
        }
        lat.push(acked.elapsed());
    }
    lat.sort();

    // 4. Failure detection and rewiring after SIGKILL.
    let mut detect = Vec::with_capacity(sizes.kills);
    for _ in 0..sizes.kills {
        nodes.kill(2);
        let killed = Instant::now();
        while nodes.info_field(0, "live").as_deref() != Some("n0,n1") {
            assert!(killed.elapsed() < LIMIT, "node 2 never declared dead");
            std::thread::sleep(Duration::from_millis(2));
        }
        detect.push(killed.elapsed());
        nodes.start(2);
        nodes.set(2, "back", "1");
        let back = within(LIMIT, || (nodes.info_field(0, "live").as_deref() == Some("n0,n1,n2")).then_some(()));
        assert!(back.is_some(), "node 2 back at node 0");
    }
    detect.sort();

    // 5. Abuse of node 1's peer port.
    let peer_port: SocketAddr = std::fs::read_to_string(nodes.config(1))
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("listen = \"").map(|r| r.trim_end_matches('"').to_owned())))
        .and_then(|a| a.parse().ok())
        .expect("node 1's peer address");
    let per_abuse = sizes.abuse_writes / 2;
    let before = replicate(&nodes, &[0, 2], &[1], per_abuse, PIPELINE, 90);
    let stop = Arc::new(AtomicBool::new(false));
    let attackers = abuse(peer_port, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let during = replicate(&nodes, &[0, 2], &[1], per_abuse, PIPELINE, 91);
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.join();
    }
    let refused = info_u64(&nodes, 1, "refused_links");

    println!("\n## Leaders in separate processes ({} writes per run)\n", per * 3);
    println!("| workload | 3 node processes, writes/s | one process, writes/s | ratio |\n|---|---|---|---|");
    for (name, p, i) in &rows {
        println!("| {name} | {p:.0} | {i:.0} | {:.3} |", p / i);
    }
    let per_write = |b: u64| b as f64 / writes_done.max(1) as f64;
    println!(
        "\n| bytes on the links per write (all runs, 3 nodes) | frames | with Noise framing and tags |\n|---|---|---|"
    );
    println!("| {writes_done} writes | {:.1} | {:.1} |", per_write(frame_bytes), per_write(link_bytes));
    println!("\n| visibility at another node after the ack | p50 | p99 | samples |\n|---|---|---|---|");
    println!(
        "| SET at n0 → GET at n1 | {} | {} | {} |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        lat.len()
    );
    println!("\n| SIGKILL → declared dead and rewired at another node | p50 | max | kills |\n|---|---|---|---|");
    println!(
        "| dead_after 500 ms, checks every 50 ms | {} | {} | {} |",
        ms(percentile(&detect, 0.5)),
        ms(percentile(&detect, 1.0)),
        detect.len()
    );
    let rate = |d: Duration| (2 * per_abuse) as f64 / d.as_secs_f64();
    println!("\n| writes to the abused node's peers | before, writes/s | during, writes/s | ratio (target ≥ 0.8) | connections refused |\n|---|---|---|---|---|");
    println!(
        "| batched, 2 writers | {:.0} | {:.0} | {:.2} | {refused} |",
        rate(before),
        rate(during),
        rate(during) / rate(before)
    );
}
