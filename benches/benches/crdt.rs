//! roundtable's OR-set and PN-counter against the `crdts` crate, measured in the same run.
//!
//! The machines this runs on are shared and noisy, so every figure is reported as a ratio against
//! a baseline measured by the same process a moment earlier or later: **ratio = roundtable
//! operations per second ÷ `crdts` operations per second** (above 1: roundtable is faster). The
//! goals come from issue 6: at least 2 on the OR-set, at least 1 on the counter.
//!
//! What is compared, each roundtable operation against the `crdts` operation that does the same
//! job, on the same data:
//!
//! - **OR-set local add**: [`OrSet::add`] (applies the add and returns the delta to ship) against
//!   `Orswot::read_ctx().derive_add_ctx(actor)`, `Orswot::add` (the op to ship) and
//!   `CmRDT::apply`, the documented way to add. Both sides end with their state updated and
//!   having built the update a peer needs.
//! - **OR-set remote add**: a peer's add arriving at a replica. roundtable's operation-based path
//!   (as `CrdtStore::apply_crdt` does it): [`OrSet::add_delta`] of the element and dot, then
//!   [`StateCrdt::merge`]; `crdts`: `CmRDT::apply` of the op the origin produced.
//! - **OR-set remote remove**: the same for a remove: [`OrSet::remove_delta`] of the observed dots
//!   and `merge`, against `CmRDT::apply` of the origin's `Rm` op.
//! - **OR-set merge**: full-state join of five replicas that diverged from a common state.
//! - **PN-counter increment**: [`PnCounter::increment`] (returns the delta) against
//!   `PNCounter::inc` + `CmRDT::apply`.
//! - **PN-counter merge**: full-state join of five replicas that diverged from a common state.
//!
//! Fairness: [`LEADERS`] (5) replicas on both sides, with leader ids `0..5` (roundtable's
//! [`LeaderId`], a `u8`) and actors `0u8..5` (`crdts`); `u64` elements; the same elements added
//! and removed by the same leaders in the same order, so both libraries hold the same sets and
//! counts (checked before measuring). Batches of [`OPS`] operations start from a copy of the same
//! converged state of [`BASE_ELEMENTS`] elements; copying the state is setup and not timed
//! (criterion's `iter_batched`). Merges take their right-hand sides by reference in roundtable and
//! by value in `crdts` (its API): the copies `crdts` needs are made in setup too, so `crdts` is
//! not charged for cloning. Both sides use `std::hint::black_box` through criterion.
//!
//! The ratio is taken from criterion's median time per iteration (`estimates.json` of this run),
//! divided by the operations per iteration. `cargo bench -p roundtable-benches --bench crdt` runs
//! it in about a minute. Without `--bench` (`cargo test -p roundtable-benches --benches`, or
//! `--all-targets`) criterion runs every routine once as a smoke test, writes no estimates, and
//! the table says so.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crdts::{CmRDT, CvRDT, Orswot, PNCounter};
use criterion::{BatchSize, Criterion};
use roundtable::runtime::causality::Dot;
use roundtable::runtime::crdt::{OrSet, PnCounter, StateCrdt};
use roundtable::runtime::LeaderId;
use roundtable_benches::{criterion_dir, median_ns, significant};

/// Replicas (leaders, actors) on each side.
const LEADERS: u8 = 5;
/// Elements in the converged state every OR-set measurement starts from (added round-robin).
const BASE_ELEMENTS: u64 = 2_000;
/// Operations per timed batch (adds or removes).
const OPS: u64 = 1_000;
/// Elements each replica adds after the common state, before the merge measurement.
const DIVERGE_ADDS: u64 = 100;
/// Base elements each replica removes after the common state, before the merge measurement.
const DIVERGE_REMOVES: u64 = 50;
/// First element id never in the base state.
const FRESH: u64 = 1_000_000;

/// The criterion group of every measurement here.
const GROUP: &str = "crdt";

type CrdtsSet = Orswot<u64, u8>;

fn leader(i: u8) -> LeaderId {
    LeaderId::new(usize::from(i)).expect("fewer than MAX_LEADERS leaders")
}

// ---------------------------------------------------------------------------------------------
// Building the same states on both sides.

/// The converged OR-set both sides start from: leader `e % LEADERS` added element `e`, each
/// leader on its own replica, then all replicas merged.
fn base_sets() -> (OrSet<u64>, CrdtsSet) {
    let mut ours: Vec<OrSet<u64>> = (0..LEADERS).map(|_| OrSet::new()).collect();
    let mut theirs: Vec<CrdtsSet> = (0..LEADERS).map(|_| Orswot::new()).collect();
    for e in 0..BASE_ELEMENTS {
        let i = (e % u64::from(LEADERS)) as u8;
        let _ = ours[usize::from(i)].add(leader(i), e);
        crdts_add(&mut theirs[usize::from(i)], i, e);
    }
    let mut our_base = OrSet::new();
    for replica in &ours {
        our_base.merge(replica);
    }
    let mut their_base = Orswot::new();
    for replica in theirs {
        their_base.merge(replica);
    }
    check_same_set(&our_base, &their_base);
    (our_base, their_base)
}

/// The documented local add of `crdts`: a read context, an add context, the op, applied.
fn crdts_add(set: &mut CrdtsSet, actor: u8, element: u64) {
    let ctx = set.read_ctx().derive_add_ctx(actor);
    let op = set.add(element, ctx);
    set.apply(op);
}

/// The documented local remove of `crdts`; returns the op (for a peer).
fn crdts_remove(set: &mut CrdtsSet, element: u64) -> crdts::orswot::Op<u64, u8> {
    let ctx = set.contains(&element).derive_rm_ctx();
    let op = set.rm(element, ctx);
    set.apply(op.clone());
    op
}

fn check_same_set(ours: &OrSet<u64>, theirs: &CrdtsSet) {
    let theirs: BTreeSet<u64> = theirs.read().val.into_iter().collect();
    assert_eq!(ours.value(), theirs, "both libraries must hold the same set");
}

/// Replica `i` after the common state: adds `DIVERGE_ADDS` fresh elements, removes
/// `DIVERGE_REMOVES` base elements of its own range.
fn diverged_sets(base: &(OrSet<u64>, CrdtsSet)) -> (Vec<OrSet<u64>>, Vec<CrdtsSet>) {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..LEADERS {
        let (mut our, mut their) = base.clone();
        let first_add = FRESH + u64::from(i) * DIVERGE_ADDS;
        for e in first_add..first_add + DIVERGE_ADDS {
            let _ = our.add(leader(i), e);
            crdts_add(&mut their, i, e);
        }
        let first_remove = u64::from(i) * DIVERGE_REMOVES;
        for e in first_remove..first_remove + DIVERGE_REMOVES {
            let _ = our.remove(&e);
            let _ = crdts_remove(&mut their, e);
        }
        check_same_set(&our, &their);
        ours.push(our);
        theirs.push(their);
    }
    (ours, theirs)
}

/// The counters of five leaders after a common state: every leader incremented by `1_000 + i`
/// and decremented by `10 · i` (converged), then replica `i` increments by `i + 1` more.
fn diverged_counters() -> (Vec<PnCounter>, Vec<PNCounter<u8>>) {
    let mut our_base = PnCounter::new();
    let mut their_base = PNCounter::new();
    for i in 0..LEADERS {
        let _ = our_base.increment(leader(i), 1_000 + u64::from(i));
        their_base.apply(their_base.inc_many(i, 1_000 + u64::from(i)));
        if i > 0 {
            let _ = our_base.decrement(leader(i), 10 * u64::from(i));
            their_base.apply(their_base.dec_many(i, 10 * u64::from(i)));
        }
    }
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..LEADERS {
        let (mut our, mut their) = (our_base.clone(), their_base.clone());
        let _ = our.increment(leader(i), u64::from(i) + 1);
        their.apply(their.inc_many(i, u64::from(i) + 1));
        assert_eq!(our.value().to_string(), their.read().to_string(), "same counts on both sides");
        ours.push(our);
        theirs.push(their);
    }
    (ours, theirs)
}

// ---------------------------------------------------------------------------------------------
// Measurements.

fn orset_benches(c: &mut Criterion) {
    let base = base_sets();
    let mut group = c.benchmark_group(GROUP);

    // Local add: leader 0 adds OPS fresh elements to its replica.
    group.bench_function("orset-add/roundtable", |b| {
        b.iter_batched_ref(
            || base.0.clone(),
            |set| {
                for e in FRESH..FRESH + OPS {
                    std::hint::black_box(set.add(leader(0), e));
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("orset-add/crdts", |b| {
        b.iter_batched_ref(
            || base.1.clone(),
            |set| {
                for e in FRESH..FRESH + OPS {
                    crdts_add(set, 0, e);
                }
            },
            BatchSize::LargeInput,
        );
    });

    // Remote add: leader 1 added OPS fresh elements; replica 0 receives them in order.
    let (mut origin, mut their_origin) = base.clone();
    let mut our_adds: Vec<(u64, Dot)> = Vec::new();
    let mut their_adds = Vec::new();
    for e in FRESH..FRESH + OPS {
        let _ = origin.add(leader(1), e);
        our_adds.push((e, origin.dots(&e).next().expect("just added")));
        let ctx = their_origin.read_ctx().derive_add_ctx(1);
        let op = their_origin.add(e, ctx);
        their_origin.apply(op.clone());
        their_adds.push(op);
    }
    check_same_set(&origin, &their_origin);
    group.bench_function("orset-remote-add/roundtable", |b| {
        b.iter_batched_ref(
            || base.0.clone(),
            |set| {
                for &(e, dot) in &our_adds {
                    set.merge(&OrSet::add_delta(e, dot));
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("orset-remote-add/crdts", |b| {
        b.iter_batched(
            || (base.1.clone(), their_adds.clone()),
            |(mut set, ops)| {
                for op in ops {
                    set.apply(op);
                }
                set
            },
            BatchSize::LargeInput,
        );
    });

    // Remote remove: leader 1 removed OPS base elements; replica 0 receives the removes.
    let (mut origin, mut their_origin) = base.clone();
    let mut our_removes: Vec<Vec<Dot>> = Vec::new();
    let mut their_removes = Vec::new();
    for e in 0..OPS {
        our_removes.push(origin.dots(&e).collect());
        let _ = origin.remove(&e);
        their_removes.push(crdts_remove(&mut their_origin, e));
    }
    check_same_set(&origin, &their_origin);
    group.bench_function("orset-remote-remove/roundtable", |b| {
        b.iter_batched_ref(
            || base.0.clone(),
            |set| {
                for observed in &our_removes {
                    set.merge(&OrSet::remove_delta(observed));
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("orset-remote-remove/crdts", |b| {
        b.iter_batched(
            || (base.1.clone(), their_removes.clone()),
            |(mut set, ops)| {
                for op in ops {
                    set.apply(op);
                }
                set
            },
            BatchSize::LargeInput,
        );
    });

    // Merge: replica 0 joins the states of replicas 1..5 (four merges).
    let (ours, theirs) = diverged_sets(&base);
    let mut our_all = ours[0].clone();
    let mut their_all = theirs[0].clone();
    for i in 1..ours.len() {
        our_all.merge(&ours[i]);
        their_all.merge(theirs[i].clone());
    }
    check_same_set(&our_all, &their_all);
    group.bench_function("orset-merge/roundtable", |b| {
        b.iter_batched_ref(
            || ours[0].clone(),
            |set| {
                for other in &ours[1..] {
                    set.merge(other);
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("orset-merge/crdts", |b| {
        b.iter_batched(
            || theirs.clone(),
            |states| {
                let mut states = states.into_iter();
                let mut set = states.next().expect("five replicas");
                for other in states {
                    set.merge(other);
                }
                set
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn counter_benches(c: &mut Criterion) {
    let (ours, theirs) = diverged_counters();
    let mut group = c.benchmark_group(GROUP);

    // Increment: leader 0 increments its replica by one, OPS times per iteration.
    group.bench_function("pncounter-increment/roundtable", |b| {
        b.iter_batched_ref(
            || ours[0].clone(),
            |counter| {
                for _ in 0..OPS {
                    std::hint::black_box(counter.increment(leader(0), 1));
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("pncounter-increment/crdts", |b| {
        b.iter_batched_ref(
            || theirs[0].clone(),
            |counter| {
                for _ in 0..OPS {
                    let op = counter.inc(0);
                    counter.apply(op);
                }
            },
            BatchSize::LargeInput,
        );
    });

    // Merge: replica 0 joins the counters of replicas 1..5 (four merges).
    let mut our_all = ours[0].clone();
    let mut their_all = theirs[0].clone();
    for i in 1..ours.len() {
        our_all.merge(&ours[i]);
        their_all.merge(theirs[i].clone());
    }
    assert_eq!(our_all.value().to_string(), their_all.read().to_string(), "same merged counts");
    group.bench_function("pncounter-merge/roundtable", |b| {
        b.iter_batched_ref(
            || ours[0].clone(),
            |counter| {
                for other in &ours[1..] {
                    counter.merge(other);
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("pncounter-merge/crdts", |b| {
        b.iter_batched(
            || theirs.clone(),
            |counters| {
                let mut counters = counters.into_iter();
                let mut counter = counters.next().expect("five replicas");
                for other in counters {
                    counter.merge(other);
                }
                counter
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// The table.

/// One line of the table: a roundtable measurement against its baseline.
struct Comparison {
    what: &'static str,
    /// Benchmark id (within [`GROUP`]) of roundtable's side; the baseline is `<bench>/crdts`.
    bench: &'static str,
    /// Operations per criterion iteration.
    ops: u64,
    /// The smallest acceptable ratio (issue 6).
    goal: f64,
}

const COMPARISONS: [Comparison; 6] = [
    Comparison { what: "OR-set local add", bench: "orset-add", ops: OPS, goal: 2.0 },
    Comparison { what: "OR-set remote add (apply a peer's add)", bench: "orset-remote-add", ops: OPS, goal: 2.0 },
    Comparison {
        what: "OR-set remote remove (apply a peer's remove)",
        bench: "orset-remote-remove",
        ops: OPS,
        goal: 2.0,
    },
    Comparison {
        what: "OR-set merge (full states of 2,050 elements, 5 replicas)",
        bench: "orset-merge",
        ops: LEADERS as u64 - 1,
        goal: 2.0,
    },
    Comparison { what: "PN-counter increment", bench: "pncounter-increment", ops: OPS, goal: 1.0 },
    Comparison {
        what: "PN-counter merge (full states, 5 replicas)",
        bench: "pncounter-merge",
        ops: LEADERS as u64 - 1,
        goal: 1.0,
    },
];

fn print_table(dir: &Path, started: SystemTime) {
    println!();
    println!("Ratio = roundtable ops/s ÷ crdts ops/s (criterion medians of this run; above 1: roundtable faster).");
    println!();
    println!("| operation | roundtable | crdts | ratio | goal | met |");
    println!("|---|---|---|---|---|---|");
    let mut missing = 0;
    for cmp in &COMPARISONS {
        let ours = median_ns(dir, GROUP, &format!("{}/roundtable", cmp.bench), started);
        let theirs = median_ns(dir, GROUP, &format!("{}/crdts", cmp.bench), started);
        match (ours, theirs) {
            (Some(ours), Some(theirs)) => {
                let (ours, theirs) = (ours / cmp.ops as f64, theirs / cmp.ops as f64);
                let ratio = theirs / ours;
                println!(
                    "| {} | {} | {} | **{}** | ≥ {} | {} |",
                    cmp.what,
                    rate(ours),
                    rate(theirs),
                    significant(ratio),
                    cmp.goal,
                    if ratio >= cmp.goal { "yes" } else { "no" }
                );
            }
            _ => {
                missing += 1;
                println!("| {} | – | – | – | ≥ {} | – |", cmp.what, cmp.goal);
            }
        }
    }
    if missing > 0 {
        println!();
        println!(
            "{missing} comparison(s) have no estimate from this run (a smoke run without `--bench`, or a filter): \
             no figures."
        );
    }
}

/// `1.23 M ops/s (813 ns/op)`.
fn rate(ns_per_op: f64) -> String {
    let per_second = 1e9 / ns_per_op;
    if per_second >= 1e6 {
        format!("{:.2} M ops/s ({ns_per_op:.1} ns/op)", per_second / 1e6)
    } else {
        format!("{:.1} k ops/s ({ns_per_op:.0} ns/op)", per_second / 1e3)
    }
}

fn main() {
    let started = SystemTime::now();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    orset_benches(&mut criterion);
    counter_benches(&mut criterion);
    criterion.final_summary();
    print_table(&criterion_dir(), started);
}
