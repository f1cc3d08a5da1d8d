//! Bytes per replicated put and per batched entry: roundtable's postcard frames against
//! `serde_json` of the same messages, with encode+decode times for information.
//!
//! The frame is what `roundtable_runtime::wire::encode` produces for an [`Envelope`] carrying a
//! [`PeerMessage::Replicate`]; the baseline is `serde_json::to_vec` of the same `Envelope` (the wire
//! types derive `Serialize`, so JSON needs no extra code). Sizes are deterministic, so the size
//! table needs no repetition; **ratio = postcard bytes ÷ JSON bytes** (below 1: postcard is
//! smaller). Issue 6 sets the goal at 0.3 or less. The same messages are asserted on in
//! `tests/wire_size.rs`.
//!
//! The messages are representative of a 5-leader cluster in steady state: entries written at
//! leader 2 with sequence numbers around 10,000, dependencies on all five leaders, HLC timestamps
//! of 2026 a few tens of microseconds apart, keys like `user/000123` (11 bytes) and 16-byte
//! values (`value-0000010000`, ASCII). One put travels alone in a frame; batches carry 16 and 64
//! consecutive writes, and their figure is the frame's bytes divided by the entries (the envelope
//! is shared by the batch).
//!
//! Times (criterion medians of this run, one iteration = encode then decode of the whole frame):
//! `wire::encode` + `wire::decode` against `serde_json::to_vec` + `serde_json::from_slice`; ratio =
//! postcard frames per second ÷ JSON frames per second (above 1: postcard is faster). For
//! information only; no goal. `cargo bench -p roundtable-benches --bench wire` runs in under a
//! minute. Without `--bench` (`cargo test -p roundtable-benches --benches`, or `--all-targets`)
//! criterion runs every routine once as a smoke test and writes no estimates: the size table is
//! printed, the time table says so.

use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::Criterion;
use roundtable::runtime::causality::{Dot, Seq, VersionVector};
use roundtable::runtime::clock::HlcTimestamp;
use roundtable::runtime::wire::{self, Envelope, PeerMessage, ReplicatedEntry};
use roundtable::runtime::{Entry, Key, LeaderId, LeaderSet, Op, Value, WallTime};
use roundtable_benches::{criterion_dir, median_ns};

/// The criterion group of every measurement here.
const GROUP: &str = "wire";
/// Entries per frame measured: a lone put, and two batch sizes.
const BATCHES: [usize; 3] = [1, 16, 64];
/// Leaders in the cluster the messages come from.
const LEADERS: usize = 5;
/// The leader that wrote the entries.
const ORIGIN: usize = 2;
/// The largest ratio postcard bytes ÷ JSON bytes that meets the goal (issue 6).
const GOAL_RATIO_MAX: f64 = 0.3;

fn leader(i: usize) -> LeaderId {
    LeaderId::new(i).expect("leader id in range")
}

/// The `k`-th consecutive write at leader [`ORIGIN`], as it travels to a peer.
fn entry(k: u64) -> ReplicatedEntry {
    let seq = 10_000 + k;
    let mut deps = VersionVector::new();
    for (i, base) in [9_871, 10_112, 0, 9_954, 10_033].into_iter().enumerate().take(LEADERS) {
        let count = if i == ORIGIN { seq - 1 } else { base + k / 3 };
        deps.set(leader(i), Seq(count));
    }
    let written_at = WallTime::from_secs(1_767_225_600).saturating_add(Duration::from_micros(37 * k));
    let entry = Entry {
        dot: Dot::new(leader(ORIGIN), Seq(seq)),
        hlc: HlcTimestamp::from_wall_time(written_at, 0, leader(ORIGIN)),
        deps,
        key: Key::new(format!("user/{:06}", (k * 7_919) % 1_000_000)).expect("short key"),
        op: Op::Put(Value::new(format!("value-{seq:010}").into_bytes()).expect("small value")),
    };
    ReplicatedEntry { entry: entry.into(), seen_by: LeaderSet::single(leader(ORIGIN)) }
}

/// A frame of `count` consecutive writes from [`ORIGIN`].
fn message(count: usize) -> Envelope {
    let entries = (0..count as u64).map(entry).collect();
    Envelope::new(leader(ORIGIN), PeerMessage::Replicate { entries, catch_up: false })
}

/// `(postcard bytes, JSON bytes)` of a frame of `count` entries, after checking both decode back.
fn sizes(count: usize) -> (usize, usize) {
    let envelope = message(count);
    let postcard = wire::encode(&envelope).expect("the frame fits");
    let json = serde_json::to_vec(&envelope).expect("serializable");
    assert_eq!(wire::decode(&postcard).expect("decodes"), envelope);
    assert_eq!(serde_json::from_slice::<Envelope>(&json).expect("decodes"), envelope);
    (postcard.len(), json.len())
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    for count in BATCHES {
        let envelope = message(count);
        group.bench_function(format!("{count}-entries/postcard"), |b| {
            b.iter(|| {
                let frame = wire::encode(std::hint::black_box(&envelope)).expect("the frame fits");
                wire::decode(&frame).expect("decodes")
            });
        });
        group.bench_function(format!("{count}-entries/json"), |b| {
            b.iter(|| {
                let text = serde_json::to_vec(std::hint::black_box(&envelope)).expect("serializable");
                serde_json::from_slice::<Envelope>(&text).expect("decodes")
            });
        });
    }
    group.finish();
}

fn print_tables(dir: &Path, started: SystemTime) {
    println!();
    println!("Bytes (deterministic). Ratio = postcard bytes ÷ JSON bytes (below 1: postcard smaller).");
    println!();
    println!("| frame | postcard bytes (per entry) | JSON bytes (per entry) | ratio | goal | met |");
    println!("|---|---|---|---|---|---|");
    for count in BATCHES {
        let (postcard, json) = sizes(count);
        let ratio = postcard as f64 / json as f64;
        let per = |bytes: usize| bytes as f64 / count as f64;
        println!(
            "| {} | {postcard} ({:.1}) | {json} ({:.1}) | **{ratio:.3}** | ≤ {GOAL_RATIO_MAX} | {} |",
            frame_name(count),
            per(postcard),
            per(json),
            if ratio <= GOAL_RATIO_MAX { "yes" } else { "no" }
        );
    }
    println!();
    println!(
        "Encode + decode time (criterion medians of this run). Ratio = postcard frames/s ÷ JSON frames/s (above 1: \
         postcard faster). Information only."
    );
    println!();
    println!("| frame | postcard encode+decode | JSON encode+decode | ratio |");
    println!("|---|---|---|---|");
    let mut missing = 0;
    for count in BATCHES {
        let ours = median_ns(dir, GROUP, &format!("{count}-entries/postcard"), started);
        let theirs = median_ns(dir, GROUP, &format!("{count}-entries/json"), started);
        match (ours, theirs) {
            (Some(ours), Some(theirs)) => println!(
                "| {} | {} | {} | **{:.2}** |",
                frame_name(count),
                time(ours, count),
                time(theirs, count),
                theirs / ours
            ),
            _ => {
                missing += 1;
                println!("| {} | – | – | – |", frame_name(count));
            }
        }
    }
    if missing > 0 {
        println!();
        println!(
            "{missing} time comparison(s) have no estimate from this run (a smoke run without `--bench`, or a \
             filter): no figures."
        );
    }
}

fn frame_name(count: usize) -> String {
    if count == 1 {
        "1 put".to_owned()
    } else {
        format!("batch of {count}")
    }
}

/// `1.23 µs (77 ns per entry)`.
fn time(ns: f64, count: usize) -> String {
    if count == 1 {
        format!("{ns:.0} ns")
    } else {
        format!("{:.2} µs ({:.0} ns per entry)", ns / 1e3, ns / count as f64)
    }
}

fn main() {
    let started = SystemTime::now();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    print_tables(&criterion_dir(), started);
}
