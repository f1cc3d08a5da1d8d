//! Memory: bytes of metadata per key for each conflict resolution, and the replication log's
//! size under a steady stream of writes.
//!
//! Everything runs on sans-IO [`Replica`]s driven by hand with simulated time: three leaders,
//! all-to-all, default settings except `trace: false` (trace events are effects the harness
//! would only drop; counters are kept either way). Messages are moved by the harness in FIFO
//! order, without the wire encoding (it does not change what a replica holds).
//!
//! **1. Bytes per key, per resolution.** For each resolution a keyspace can have, `N` keys
//! (`m/000000`, …: 8 bytes each) are each written by `K` leaders (K = 1, or K = 3 writing the
//! same key before any of them hears of the others', so the writes are concurrent), with 8-byte
//! values; everything is delivered. Then:
//!
//! - *store*: the key's writes are followed at once by an acknowledgement round (time advances by
//!   `ack_interval`, every leader ticks and sends its digest to every other, the digests land,
//!   every leader ticks again and truncates), so the log never holds more than the `K` entries of
//!   one key and ends empty (checked: `log().len() == 0` at every replica). Store bytes per key =
//!   (memory after the `N` keys − memory before) ÷ 3 replicas ÷ `N`; metadata per key = that −
//!   the payload a reader gets back (stated per row: key bytes + the bytes of the values or
//!   elements a read returns, a counter's value counting 8 bytes).
//! - *log*: the same writes without acknowledgement rounds, so every replica's log holds all
//!   `N × K` entries; log bytes per entry = (memory of that run − memory of the store run) ÷ 3 ÷
//!   entries per replica.
//!
//! **How memory is measured, and what it includes.** The workspace forbids `unsafe` code
//! (`unsafe_code = "forbid"` in the workspace lints, which a bench inherits and cannot lower),
//! and a counting `#[global_allocator]` needs an `unsafe impl GlobalAlloc`. So the bench reads
//! the process's anonymous resident memory (`Anonymous:` in `/proc/self/smaps_rollup`, Linux
//! only) instead, each measurement in a fresh child process of this same binary so that memory
//! freed by an earlier measurement is not reused by a later one. The growth includes everything
//! the replicas allocate — B-tree nodes at their real fill (keys arrive in ascending order, so
//! leaves stay a little over half full), the inline size of every map slot, and glibc malloc's
//! own per-allocation cost (an 8-byte header, rounding to 16 bytes, at least 32 bytes per
//! allocation: an 8-byte key costs 32). It counts pages (4 KiB), which at 10,000 keys and 3
//! replicas is ±0.15 bytes per key, and only pages touched: the spare capacity of the log's
//! `VecDeque` (which grows by doubling) is not resident until used, so the log figure is the
//! entries' own size. Memory freed during the run and not reused (fragmentation) counts too;
//! the store runs free little (the messages of one key at a time). Code pages are file-backed,
//! not anonymous, and the stack's pages are touched by the warm-up round.
//!
//! **2. The log under steady load.** 100 writes per simulated 10 ms (round-robin over the three
//! leaders, 10,000 keys, last-write-wins), for 60 simulated seconds; at the end of every 10 ms
//! every leader ticks and every message in flight is delivered. The log's length (the largest of
//! the three) is sampled just before each tick, when it is longest. Three settings: the defaults
//! (`ack_interval` 5 s, anti-entropy digests every 1 s), `ack_interval: None`, and
//! `ack_interval: None` with anti-entropy too rare to happen, which leaves the log's bound
//! (`log_entries_max`) as the only truncation. The bench asserts that the log stays bounded with
//! the defaults (no forced truncation, no growth from the first half to the second, and an empty
//! log once writes stop and one acknowledgement round has passed).
//!
//! `cargo bench -p roundtable-benches --bench memory` runs the full measurement and prints
//! Markdown tables. Run without `--bench` — as `cargo test -p roundtable-benches --benches` does —
//! it runs a smoke version with tiny sizes, whose figures mean nothing.

use std::collections::VecDeque;
use std::process::Command;
use std::time::Duration;

use roundtable_runtime::log::Logged;
use roundtable_runtime::resolution::{CrdtKind, CrdtState, CrdtUpdate, Keyspaces, Resolution, Update};
use roundtable_runtime::siblings::KeyState;
use roundtable_runtime::store::Register;
use roundtable_runtime::wire::PeerMessage;
use roundtable_runtime::{
    Effect, Entry, Key, LeaderId, LeaderSet, Replica, ReplicaConfig, Topology, Value, VersionVector, WallTime,
    WriteError,
};

/// Leaders in every cluster of this bench.
const LEADERS: usize = 3;
/// 2026-01-01T00:00:00Z, the simulated start.
const START_SECS: u64 = 1_767_225_600;
/// The keyspace of part 1 (keys `m/000000` … `m/999999`, 8 bytes each).
const KEYSPACE: &str = "m";
/// Bytes per key in part 1 (`m/` and six digits).
const KEY_BYTES: usize = 8;
/// Bytes per value (`w`, the writer, six digits).
const VALUE_BYTES: usize = 8;
/// What a counter's value counts as payload.
const COUNT_BYTES: usize = 8;
/// The sibling bound of the siblings keyspace (it is only checked when a write is admitted, so
/// it does not change what a key holds).
const SIBLINGS_MAX: usize = 3;
/// Writers per key measured in part 1.
const WRITERS: [usize; 2] = [1, 3];
/// Simulated time between two inputs of the harness.
const STEP: Duration = Duration::from_micros(100);
/// The part 2 tick: writes arrive in bursts of `writes_per_tick` per tick.
const TICK: Duration = Duration::from_millis(10);
/// Distinct keys the steady load cycles through.
const STEADY_KEYS: usize = 10_000;
/// The most messages one `deliver_all` may move before the harness calls it a storm.
const DELIVERIES_MAX: usize = 10_000_000;
/// The argument that makes this binary a measuring child process.
const CHILD_FLAG: &str = "--memory-child";

/// The sizes of one invocation: full under `cargo bench`, tiny otherwise.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Keys per part 1 measurement.
    keys: usize,
    /// Simulated seconds of steady load.
    steady_secs: u64,
    /// Writes per 10 ms tick of steady load.
    writes_per_tick: usize,
    /// `log_entries_max` of the setting without any acknowledgement.
    log_bound: usize,
    /// Seconds between the samples printed for part 2.
    sample_every_secs: u64,
}

impl Sizes {
    fn from_args() -> Self {
        if std::env::args().any(|a| a == "--bench") {
            Sizes {
                keys: 10_000,
                steady_secs: 60,
                writes_per_tick: 100,
                log_bound: ReplicaConfig::default().log_entries_max,
                sample_every_secs: 5,
            }
        } else {
            Sizes { keys: 60, steady_secs: 2, writes_per_tick: 10, log_bound: 1_000, sample_every_secs: 1 }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: three replicas, the messages between them, simulated time.

/// The leader with index `i`.
fn leader(i: usize) -> LeaderId {
    LeaderId::new(i).expect("leader index in range")
}

/// Three all-to-all replicas and the messages in flight between them.
struct Net {
    replicas: Vec<Replica>,
    in_flight: VecDeque<(LeaderId, LeaderId, PeerMessage)>,
    /// Simulated time; every replica's raw clock reads it exactly.
    now: WallTime,
}

impl Net {
    /// Three started replicas with `config`.
    fn new(config: &ReplicaConfig) -> Net {
        let members = LeaderSet::first(LEADERS);
        let topology = Topology::AllToAll { relay: false };
        let now = WallTime::from_secs(START_SECS);
        let mut replicas: Vec<Replica> = (0..LEADERS)
            .map(|i| Replica::new(leader(i), members, topology.clone(), config.clone()).expect("a valid replica"))
            .collect();
        for replica in &mut replicas {
            replica.start(now);
        }
        Net { replicas, in_flight: VecDeque::new(), now }
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
    }

    /// Moves replica `i`'s outgoing messages in flight; drops its other effects.
    fn collect(&mut self, i: usize) {
        let Net { replicas, in_flight, .. } = self;
        for effect in replicas[i].drain_effects() {
            if let Effect::Send { to, msg } = effect {
                in_flight.push_back((leader(i), to, msg));
            }
        }
    }

    /// A client update of `key` at leader `i`; a home-leader write made elsewhere than at the
    /// key's home is routed there, as the leader actor does.
    fn write(&mut self, i: usize, key: Key, update: Update) {
        self.advance(STEP);
        let result = self.replicas[i].handle_update(self.now, key, update.clone());
        self.collect(i);
        match result {
            Ok(_) => {}
            Err(WriteError::NotHome { key, home }) => {
                let routed = self.replicas[home.index()].handle_routed_update(self.now, key, update);
                self.collect(home.index());
                routed.expect("the home leader accepts a routed write");
            }
            Err(e) => panic!("write refused: {e}"),
        }
    }

    /// Delivers everything in flight, oldest first, until nothing is left.
    fn deliver_all(&mut self) {
        for _ in 0..DELIVERIES_MAX {
            let Some((from, to, msg)) = self.in_flight.pop_front() else { return };
            self.replicas[to.index()].handle_peer(self.now, from, msg);
            self.collect(to.index());
        }
        panic!("messages kept flowing after {DELIVERIES_MAX} deliveries");
    }

    /// Every replica ticks at the current time.
    fn tick_all(&mut self) {
        for i in 0..self.replicas.len() {
            self.replicas[i].handle_timeout(self.now);
            self.collect(i);
        }
    }

    /// One acknowledgement round: `interval` passes, every leader ticks (a digest to every other),
    /// the digests land, and every leader ticks again, truncating what all have acknowledged.
    fn ack_round(&mut self, interval: Duration) {
        self.advance(interval);
        self.tick_all();
        self.deliver_all();
        self.advance(STEP);
        self.tick_all();
        self.deliver_all();
    }

    /// The longest log among the replicas.
    fn log_len_max(&self) -> usize {
        self.replicas.iter().map(|r| r.log().len()).max().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: bytes per key for each resolution.

/// Every resolution a keyspace can have.
fn cases() -> Vec<Resolution> {
    let crdts = [
        CrdtKind::GCounter,
        CrdtKind::PnCounter,
        CrdtKind::OpCounter,
        CrdtKind::GSet,
        CrdtKind::TwoPSet,
        CrdtKind::OrSet,
        CrdtKind::OpOrSet,
        CrdtKind::LwwRegister,
        CrdtKind::MvRegister,
        CrdtKind::CounterMap,
    ];
    let mut cases =
        vec![Resolution::LastWriteWins, Resolution::HomeLeader, Resolution::Siblings { max_siblings: SIBLINGS_MAX }];
    cases.extend(crdts.into_iter().map(Resolution::Crdt));
    cases
}

/// Default settings, the keyspace `m` with `resolution`, no trace.
fn config_for(resolution: Resolution) -> ReplicaConfig {
    ReplicaConfig {
        keyspaces: Keyspaces::default().with(KEYSPACE, resolution).expect("a valid keyspace"),
        trace: false,
        ..ReplicaConfig::default()
    }
}

/// Key number `i` of part 1 (exactly [`KEY_BYTES`] bytes, no spare capacity).
fn key_of(i: usize) -> Key {
    let text = format!("{KEYSPACE}/{i:06}");
    assert_eq!(text.len(), KEY_BYTES, "key {text} has the wrong size");
    Key::new(text.as_str()).expect("a valid key")
}

/// What writer `writer` writes to key `i` (exactly [`VALUE_BYTES`] bytes, no spare capacity).
fn value_of(writer: usize, i: usize) -> Value {
    let text = format!("w{writer}{i:06}");
    assert_eq!(text.len(), VALUE_BYTES, "value {text} has the wrong size");
    Value::new(text.as_bytes()).expect("a valid value")
}

/// The update writer `writer` makes to key `i`: its own value, element or field, or one
/// increment.
fn update_for(resolution: Resolution, writer: usize, i: usize) -> Update {
    let value = value_of(writer, i);
    match resolution {
        Resolution::LastWriteWins | Resolution::HomeLeader | Resolution::Siblings { .. } => Update::Put(value),
        Resolution::Crdt(kind) => Update::Crdt(match kind {
            CrdtKind::GCounter | CrdtKind::PnCounter | CrdtKind::OpCounter => CrdtUpdate::Increment(1),
            CrdtKind::GSet | CrdtKind::TwoPSet | CrdtKind::OrSet | CrdtKind::OpOrSet => CrdtUpdate::Add(value),
            CrdtKind::LwwRegister | CrdtKind::MvRegister => CrdtUpdate::Set { value, context: None },
            CrdtKind::CounterMap => CrdtUpdate::MapIncrement { field: value, amount: 1 },
        }),
    }
}

/// What a reader gets back from a key written by `writers` leaders, in bytes: the key, plus the
/// values it returns (one for a register that picks a winner, every concurrent one for siblings
/// and a multi-value register, every element of a set, a counter's value, every field of a map
/// with its count).
fn payload_bytes(resolution: Resolution, writers: usize) -> usize {
    KEY_BYTES
        + match resolution {
            Resolution::LastWriteWins | Resolution::HomeLeader | Resolution::Crdt(CrdtKind::LwwRegister) => VALUE_BYTES,
            Resolution::Siblings { .. }
            | Resolution::Crdt(
                CrdtKind::MvRegister | CrdtKind::GSet | CrdtKind::TwoPSet | CrdtKind::OrSet | CrdtKind::OpOrSet,
            ) => VALUE_BYTES * writers,
            Resolution::Crdt(CrdtKind::GCounter | CrdtKind::PnCounter | CrdtKind::OpCounter) => COUNT_BYTES,
            Resolution::Crdt(CrdtKind::CounterMap) => writers * (VALUE_BYTES + COUNT_BYTES),
        }
}

/// How many values (or elements, fields, or the counter's value) a read of `key` returns.
fn visible(replica: &Replica, resolution: Resolution, key: &Key) -> u64 {
    let count = |n: usize| u64::try_from(n).expect("a count fits u64");
    match resolution {
        Resolution::LastWriteWins | Resolution::HomeLeader => {
            u64::from(replica.read(key).is_some_and(|r| r.value.is_some()))
        }
        Resolution::Siblings { .. } => replica.read_siblings(key).map_or(0, |r| count(r.siblings.len())),
        Resolution::Crdt(_) => match replica.read_crdt(key) {
            None => 0,
            Some(CrdtState::GCounter(c)) => c.value(),
            Some(CrdtState::PnCounter(c)) => u64::try_from(c.value()).expect("a non-negative counter"),
            Some(CrdtState::GSet(s)) => count(s.len()),
            Some(CrdtState::TwoPSet(s)) => count(s.value().len()),
            Some(CrdtState::OrSet(s)) => count(s.len()),
            Some(CrdtState::LwwRegister(r)) => u64::from(r.value().is_some()),
            Some(CrdtState::MvRegister(r)) => count(r.len()),
            Some(CrdtState::CounterMap(m)) => count(m.len()),
        },
    }
}

/// What [`visible`] must say after `writers` concurrent writers.
fn expected_visible(resolution: Resolution, writers: usize) -> u64 {
    match resolution {
        Resolution::LastWriteWins | Resolution::HomeLeader | Resolution::Crdt(CrdtKind::LwwRegister) => 1,
        _ => u64::try_from(writers).expect("a count fits u64"),
    }
}

/// Whether a child measures the store (log truncated after every key) or store and log (never
/// truncated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Store,
    StoreAndLog,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Store => "store",
            Phase::StoreAndLog => "log",
        }
    }

    fn parse(text: &str) -> Phase {
        match text {
            "store" => Phase::Store,
            "log" => Phase::StoreAndLog,
            other => panic!("unknown phase {other:?}"),
        }
    }
}

/// What one child process measured.
#[derive(Debug, Clone, Copy)]
struct Measured {
    /// Growth of anonymous resident memory over the writes, all three replicas.
    growth_bytes: u64,
    /// Entries in each replica's log at the end.
    log_entries: usize,
}

/// Anonymous resident memory of this process (`/proc/self/smaps_rollup`), in bytes.
fn anonymous_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").expect("/proc/self/smaps_rollup is readable");
    let line = text.lines().find(|l| l.starts_with("Anonymous:")).expect("smaps_rollup has an Anonymous: line");
    let kib: u64 = line
        .trim_start_matches("Anonymous:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("Anonymous: is a number of kB");
    kib * 1024
}

/// The measurement of a child process: `keys` keys of `resolution`, each written by `writers`
/// leaders, in `phase`. Checks what every replica holds before it returns.
fn measure(resolution: Resolution, writers: usize, keys: usize, phase: Phase) -> Measured {
    let config = config_for(resolution);
    let ack = config.ack_interval.expect("the default acknowledges");
    let mut net = Net::new(&config);
    // Warm-up: one round touches the digest and truncation paths (and their first allocations).
    net.ack_round(ack);
    let before = anonymous_bytes();
    for i in 0..keys {
        for w in 0..writers {
            net.write((i + w) % LEADERS, key_of(i), update_for(resolution, w, i));
        }
        net.deliver_all();
        if phase == Phase::Store {
            net.ack_round(ack);
        }
    }
    let after = anonymous_bytes();
    let expected = expected_visible(resolution, writers);
    for replica in &net.replicas {
        let log_entries = replica.log().len();
        match phase {
            Phase::Store => assert_eq!(log_entries, 0, "{resolution}: L{} kept {log_entries} entries", replica.id()),
            Phase::StoreAndLog => assert_eq!(log_entries, keys * writers, "{resolution}: the log lost entries"),
        }
        for i in [0, keys / 2, keys - 1] {
            let seen = visible(replica, resolution, &key_of(i));
            assert_eq!(seen, expected, "{resolution}, {writers} writers: L{} reads {seen} of key {i}", replica.id());
        }
    }
    Measured { growth_bytes: after.saturating_sub(before), log_entries: net.replicas[0].log().len() }
}

/// Runs a measurement in a fresh child process of this binary, so that no memory an earlier
/// measurement freed is reused.
fn measure_in_child(case: usize, writers: usize, keys: usize, phase: Phase) -> Measured {
    let exe = std::env::current_exe().expect("the bench knows its own path");
    let output = Command::new(exe)
        .args([CHILD_FLAG, &case.to_string(), &writers.to_string(), &keys.to_string(), phase.name()])
        .output()
        .expect("the child process starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "measurement child (case {case}, {writers} writers, {}) failed: {}\n{stdout}",
        phase.name(),
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().find_map(|l| l.strip_prefix("MEASURED ")).expect("the child prints MEASURED");
    let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().expect("the child prints numbers"));
    let growth_bytes = fields.next().expect("growth");
    let log_entries = usize::try_from(fields.next().expect("log entries")).expect("fits usize");
    Measured { growth_bytes, log_entries }
}

/// The child's side: parses its arguments, measures, prints one line.
fn child_main(args: &[String]) {
    let [case, writers, keys, phase] = args else { panic!("usage: {CHILD_FLAG} CASE WRITERS KEYS PHASE") };
    let resolution = cases()[case.parse::<usize>().expect("a case index")];
    let writers = writers.parse().expect("a writer count");
    let keys = keys.parse().expect("a key count");
    let m = measure(resolution, writers, keys, Phase::parse(phase));
    println!("MEASURED {} {}", m.growth_bytes, m.log_entries);
}

/// Bytes per unit, with one decimal.
fn per(bytes: i128, units: usize) -> String {
    let units = i128::try_from(units).expect("fits i128").max(1);
    let tenths = (bytes * 10 + units / 2).div_euclid(units);
    format!("{}.{}", tenths.div_euclid(10), tenths.rem_euclid(10))
}

/// Part 1: measures every resolution and prints the tables. Returns the last-write-wins log's
/// bytes per entry (K = 1), for part 2.
fn bytes_per_key(sizes: Sizes) -> f64 {
    let replicas = LEADERS;
    println!("## Bytes per key, per resolution\n");
    println!(
        "{} keys of {KEY_BYTES} bytes, values of {VALUE_BYTES} bytes, {LEADERS} leaders all-to-all, default settings; \
         K = writers per key (K = 3: concurrent). Anonymous resident memory growth per replica (glibc malloc's \
         per-allocation overhead included).\n",
        sizes.keys
    );
    let mut store_rows = Vec::new();
    let mut log_rows = Vec::new();
    let mut lww_log_bytes_per_entry = None;
    for (index, resolution) in cases().into_iter().enumerate() {
        let mut store_cells = Vec::new();
        let mut log_cells = Vec::new();
        for writers in WRITERS {
            let store = measure_in_child(index, writers, sizes.keys, Phase::Store);
            let full = measure_in_child(index, writers, sizes.keys, Phase::StoreAndLog);
            assert_eq!(store.log_entries, 0, "{resolution}: the store measurement kept log entries");
            let growth = i128::from(store.growth_bytes);
            let per_key_total = replicas * sizes.keys;
            let payload = payload_bytes(resolution, writers);
            let payload_total = i128::try_from(payload * per_key_total).expect("fits i128");
            store_cells.push(format!(
                "{payload} | {} | **{}**",
                per(growth, per_key_total),
                per(growth - payload_total, per_key_total)
            ));
            let log_growth = i128::from(full.growth_bytes) - growth;
            if resolution == Resolution::LastWriteWins && lww_log_bytes_per_entry.is_none() {
                let estimate = log_growth as f64 / (replicas * full.log_entries).max(1) as f64;
                lww_log_bytes_per_entry = Some(estimate);
            }
            log_cells.push(format!("{} | {}", full.log_entries, per(log_growth, replicas * full.log_entries)));
        }
        store_rows.push(format!("| {resolution} | {} |", store_cells.join(" | ")));
        log_rows.push(format!("| {resolution} | {} |", log_cells.join(" | ")));
    }
    println!("Store, after the log was truncated (every replica's `log().len() == 0`), bytes per key:\n");
    println!("| resolution | K=1 payload | K=1 store | K=1 metadata | K=3 payload | K=3 store | K=3 metadata |");
    println!("|---|---|---|---|---|---|---|");
    for row in &store_rows {
        println!("{row}");
    }
    println!("\nReplication log before truncation (entries held per replica, bytes per entry):\n");
    println!("| resolution | K=1 entries | K=1 bytes/entry | K=3 entries | K=3 bytes/entry |");
    println!("|---|---|---|---|---|");
    for row in &log_rows {
        println!("{row}");
    }
    println!("\nInline sizes (`size_of`, bytes) of what the store and the log hold:\n");
    println!("| type | bytes |");
    println!("|---|---|");
    for (name, size) in [
        ("Key (inline up to 24 bytes)", std::mem::size_of::<Key>()),
        ("Value (inline up to 16 bytes)", std::mem::size_of::<Value>()),
        ("VersionVector (inline up to 8 leaders)", std::mem::size_of::<VersionVector>()),
        ("store::Register (last-write-wins)", std::mem::size_of::<Register>()),
        ("siblings::KeyState", std::mem::size_of::<KeyState>()),
        ("resolution::CrdtState", std::mem::size_of::<CrdtState>()),
        ("Entry", std::mem::size_of::<Entry>()),
        ("log::Logged", std::mem::size_of::<Logged>()),
    ] {
        println!("| {name} | {size} |");
    }
    println!();
    lww_log_bytes_per_entry.expect("last-write-wins is measured")
}

// ---------------------------------------------------------------------------------------------
// Part 2: the log under steady load.

/// One setting of part 2 and what the log did under it.
struct SteadyRun {
    name: &'static str,
    /// Per second of simulated time: the longest log seen during that second.
    per_second_max: Vec<usize>,
    max: usize,
    truncated: u64,
    truncated_forced: u64,
    /// The longest log once writes stopped and one acknowledgement round passed.
    after_quiet: usize,
}

/// Runs the steady load under `config`.
fn steady(name: &'static str, config: &ReplicaConfig, sizes: Sizes) -> SteadyRun {
    let mut net = Net::new(config);
    let ticks_per_second = usize::try_from(Duration::from_secs(1).as_nanos() / TICK.as_nanos()).expect("fits");
    let spacing = TICK / u32::try_from(sizes.writes_per_tick).expect("fits u32");
    let keys: Vec<Key> =
        (0..STEADY_KEYS).map(|i| Key::new(format!("k{i:07}").as_str()).expect("a valid key")).collect();
    let mut per_second_max = Vec::new();
    let mut written = 0usize;
    for _second in 0..sizes.steady_secs {
        let mut longest = 0;
        for _tick in 0..ticks_per_second {
            for _ in 0..sizes.writes_per_tick {
                let writer = written % LEADERS;
                let value = value_of(writer, written % 1_000_000);
                net.now = net.now.saturating_add(spacing);
                let key = keys[written % STEADY_KEYS].clone();
                let accepted = net.replicas[writer].handle_update(net.now, key, Update::Put(value));
                net.collect(writer);
                accepted.expect("a last-write-wins write is accepted");
                written += 1;
            }
            net.deliver_all();
            longest = longest.max(net.log_len_max());
            net.tick_all();
            net.deliver_all();
        }
        per_second_max.push(longest);
    }
    // Writes stop; one acknowledgement interval (or, without one, an anti-entropy interval) passes.
    let quiet = config.ack_interval.unwrap_or(config.anti_entropy_interval).min(Duration::from_secs(3600));
    net.ack_round(quiet);
    let metric = |f: fn(&roundtable_runtime::Metrics) -> u64| net.replicas.iter().map(|r| f(r.metrics())).sum::<u64>();
    SteadyRun {
        name,
        max: per_second_max.iter().copied().max().unwrap_or(0),
        per_second_max,
        truncated: metric(|m| m.log_truncated),
        truncated_forced: metric(|m| m.log_truncated_forced),
        after_quiet: net.log_len_max(),
    }
}

/// Asserts that the log stayed bounded with the default settings.
fn assert_bounded(run: &SteadyRun) {
    let half = run.per_second_max.len() / 2;
    let first = run.per_second_max[..half].iter().copied().max().unwrap_or(0);
    let second = run.per_second_max[half..].iter().copied().max().unwrap_or(0);
    assert_eq!(run.truncated_forced, 0, "{}: the log hit its bound (forced truncation) under steady load", run.name);
    assert!(run.truncated > 0, "{}: the log never truncated anything", run.name);
    assert!(
        second <= first + first / 4,
        "{}: the log does not shrink: longest {first} entries in the first half, {second} in the second",
        run.name
    );
    assert_eq!(run.after_quiet, 0, "{}: entries every leader acknowledged were not truncated", run.name);
}

/// Part 2: the three settings, the assertions and the tables. `bytes_per_entry`: what a
/// last-write-wins log entry of part 1 took, to turn lengths into megabytes.
fn log_under_load(sizes: Sizes, bytes_per_entry: f64) {
    let defaults = ReplicaConfig { trace: false, ..ReplicaConfig::default() };
    let no_ack = ReplicaConfig { ack_interval: None, ..defaults.clone() };
    let nothing = ReplicaConfig {
        ack_interval: None,
        anti_entropy_interval: Duration::from_secs(1_000_000),
        log_entries_max: sizes.log_bound,
        ..defaults.clone()
    };
    let runs = [
        steady("defaults (ack 5 s, anti-entropy 1 s)", &defaults, sizes),
        steady("ack_interval: None", &no_ack, sizes),
        steady("ack_interval: None, no anti-entropy", &nothing, sizes),
    ];
    assert_bounded(&runs[0]);
    let [_, _, unacknowledged] = &runs;
    assert!(
        unacknowledged.max <= sizes.log_bound,
        "the log outgrew its bound: {} > {}",
        unacknowledged.max,
        sizes.log_bound
    );
    println!("## The log under steady load\n");
    println!(
        "{} writes per {} ms ({} writes/s) round-robin over {LEADERS} leaders all-to-all, {STEADY_KEYS} keys, \
         {} simulated seconds; every leader ticks every {} ms. Longest log among the leaders during each second \
         (entries):\n",
        sizes.writes_per_tick,
        TICK.as_millis(),
        sizes.writes_per_tick * 100,
        sizes.steady_secs,
        TICK.as_millis()
    );
    println!("| second | {} |", runs.iter().map(|r| r.name).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---|".repeat(runs.len()));
    let step = usize::try_from(sizes.sample_every_secs).expect("fits");
    let seconds = runs[0].per_second_max.len();
    let mut sampled: Vec<usize> =
        std::iter::once(1).chain((step..=seconds).step_by(step)).filter(|s| *s <= seconds).collect();
    sampled.dedup();
    for s in sampled {
        let cells: Vec<String> = runs.iter().map(|r| r.per_second_max[s - 1].to_string()).collect();
        println!("| {s} | {} |", cells.join(" | "));
    }
    println!(
        "\n| setting | longest log (entries) | ≈ MB per leader | truncated (all leaders) | forced truncations | \
         log after writes stop + one round |"
    );
    println!("|---|---|---|---|---|---|");
    for run in &runs {
        let megabytes = run.max as f64 * bytes_per_entry / 1e6;
        println!(
            "| {} | {} | {megabytes:.1} | {} | {} | {} |",
            run.name, run.max, run.truncated, run.truncated_forced, run.after_quiet
        );
    }
    println!("\n`log_entries_max` of the last setting: {}.", sizes.log_bound);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == CHILD_FLAG) {
        child_main(&args[at + 1..]);
        return;
    }
    let sizes = Sizes::from_args();
    if !args.iter().any(|a| a == "--bench") {
        println!("SMOKE RUN (no `--bench` argument): tiny sizes, the figures below mean nothing.\n");
    }
    let bytes_per_entry = bytes_per_key(sizes);
    log_under_load(sizes, bytes_per_entry);
}
