//! Durable writes (issue 13), three systems on the same machine in the same run (it is shared
//! and noisy: ratios):
//!
//! 1. **roundtable**: one `roundtable node` process (a cluster of one, so that only the disk is
//!    measured) with a data directory and the default durable write concern; `CLIENTS` client
//!    threads, each `SET`s `WRITES` keys with 16-byte values, one per round trip. Every `+OK`
//!    means fsynced. Writes per second; `INFO` tells how many fsynced commits they took (group
//!    commit: writes that arrive while a commit syncs share the next one).
//! 2. **raw redb**: the same number of commits, each inserting the same number of records of
//!    the same size as the node's (a `SET`'s record, postcard), each transaction fsynced, from
//!    one thread, into a fresh file in the same directory. The ratio 1 ÷ 2 is what the node
//!    costs on top of the engine doing the same commits (target ≥ 0.5).
//! 3. **redis-server** (`appendonly yes`) with `appendfsync always` (fsync before every reply,
//!    like the durable concern), then `appendfsync everysec` (fsync once a second: a crash
//!    loses up to a second of acknowledged writes): the same clients and writes.
//!
//! `cargo bench -p roundtable-cli --bench durable` runs it in full; `cargo test -p
//! roundtable-cli --bench durable` runs a smoke version whose figures mean nothing. Without
//! `redis-server` installed, step 3 says so and is skipped.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

use roundtable_runtime::clock::HlcTimestamp;
use roundtable_runtime::{Dot, Entry, Key, LeaderId, Op, Record, Seq, Value, VersionVector};
use support::{call, free_addrs, within, Client, Node, Nodes, Resp, LIMIT};

/// One `SET`, which must be answered `+OK`.
fn set(client: &mut Client, key: &str, value: &str) {
    let reply = client.call(&["SET", key, value]).expect("a reply");
    assert_eq!(reply, Resp::Simple("OK".into()), "SET {key}");
}

/// `clients` threads, each `writes` `SET`s one per round trip against `addr`: writes per second.
fn load(addr: SocketAddr, clients: usize, writes: usize, tag: &str) -> f64 {
    let value = "0123456789abcdef";
    let started = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            s.spawn(move || {
                let mut client = Client::connect(addr).expect("connect");
                for w in 0..writes {
                    set(&mut client, &format!("{tag}:{c}:{w}"), value);
                }
            });
        }
    });
    (clients * writes) as f64 / started.elapsed().as_secs_f64()
}

fn info_number(addr: SocketAddr, field: &str) -> u64 {
    let Ok(Resp::Bulk(Some(info))) = call(addr, &["INFO", "replication"]) else { panic!("INFO") };
    let info = String::from_utf8_lossy(&info).into_owned();
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// The bytes of the record a node writes for one of the benchmark's `SET`s.
fn set_record_bytes() -> usize {
    let leader = LeaderId::new(0).expect("id");
    let mut deps = VersionVector::new();
    deps.set(leader, Seq(41_999));
    let entry = Entry {
        dot: Dot::new(leader, Seq(42_000)),
        hlc: HlcTimestamp::new(1 << 40, 3, leader).expect("a timestamp"),
        deps,
        key: Key::new("s/durable:15:299").expect("a key"),
        op: Op::Put(Value::new("0123456789abcdef").expect("a value")),
    };
    Record::Applied(entry.into()).encode().expect("a record encodes").len()
}

/// `commits` fsynced transactions of `per_commit` records of `bytes` bytes into a fresh redb
/// file in `dir`: records per second.
fn raw_redb(dir: &std::path::Path, commits: u64, per_commit: u64, bytes: usize) -> f64 {
    const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("records");
    let path = dir.join("raw.redb");
    let _ = std::fs::remove_file(&path);
    let db = redb::Database::create(&path).expect("a redb file");
    let record = vec![0x5a_u8; bytes];
    let started = Instant::now();
    let mut key = 0u64;
    for _ in 0..commits {
        let txn = db.begin_write().expect("a transaction");
        {
            let mut table = txn.open_table(TABLE).expect("the table");
            for _ in 0..per_commit {
                table.insert(key, record.as_slice()).expect("insert");
                key += 1;
            }
        }
        txn.commit().expect("commit");
    }
    (commits * per_commit) as f64 / started.elapsed().as_secs_f64()
}

/// A `redis-server` with an append-only file fsynced `fsync` (`always`, `everysec`), in `dir`.
fn redis_server(dir: &std::path::Path, fsync: &str) -> Option<(Node, SocketAddr)> {
    let addr: SocketAddr = free_addrs(1)[0].parse().ok()?;
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string(), "--save", "", "--appendonly", "yes"])
        .args(["--appendfsync", fsync, "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let node = Node(child);
    within(LIMIT, || (call(addr, &["PING"]).ok() == Some(Resp::Simple("PONG".into()))).then_some(()))?;
    Some((node, addr))
}

fn main() {
    let smoke = std::env::args().all(|a| a != "--bench");
    let (clients, writes) = if smoke { (2, 10) } else { (16, 400) };
    println!("durable writes: {clients} clients × {writes} SETs (16-byte values), one per round trip");

    let mut nodes = Nodes::new(1, "all-to-all");
    nodes.start_all();
    nodes.all_writable();
    let addr = nodes.redis[0];
    let (commits_before, records_before) = (info_number(addr, "disk_commits"), info_number(addr, "disk_records"));
    let ours = load(addr, clients, writes, "durable");
    let commits = info_number(addr, "disk_commits") - commits_before;
    let records = info_number(addr, "disk_records") - records_before;
    let per_commit = records.checked_div(commits).unwrap_or(1).max(1);
    println!(
        "  roundtable node, durable: {ours:>9.0} writes/s ({records} records in {commits} fsynced commits, {:.1} per commit)",
        records as f64 / commits.max(1) as f64
    );
    nodes.kill(0);

    let bytes = set_record_bytes();
    let raw = raw_redb(&nodes.dir, commits.max(1), per_commit, bytes);
    println!(
        "  raw redb, same commits:   {raw:>9.0} records/s ({} commits of {per_commit} records of {bytes} bytes)",
        commits.max(1)
    );
    println!("  roundtable ÷ raw redb: {:.2} (target ≥ 0.5)", ours / raw);

    for fsync in ["always", "everysec"] {
        let dir = nodes.dir.join(format!("redis-{fsync}"));
        std::fs::create_dir_all(&dir).expect("a directory");
        match redis_server(&dir, fsync) {
            Some((server, redis)) => {
                let theirs = load(redis, clients, writes, fsync);
                println!(
                    "  redis-server, appendfsync {fsync:<8} {theirs:>9.0} writes/s; roundtable ÷ redis: {:.2}",
                    ours / theirs
                );
                drop(server);
            }
            None => println!("  redis-server, appendfsync {fsync}: skipped (redis-server is not installed)"),
        }
    }
    // The smoke run checks that every step ran; its figures mean nothing.
    assert!(ours > 0.0 && raw > 0.0 && commits > 0, "every step measured something");
}
