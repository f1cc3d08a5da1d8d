//! Hybrid-logical-clock timestamps per second: roundtable's NTP-corrected [`LeaderClock`] against
//! the `uhlc` crate's `HLC::new_timestamp`, measured in the same run.
//!
//! The machines this runs on are shared and noisy, so every figure is reported as a ratio against
//! a baseline measured by the same process: **ratio = roundtable timestamps per second ÷ `uhlc`
//! timestamps per second** (above 1: roundtable is faster). Issue 6 sets the goal at 1.
//!
//! - **Subject**: [`LeaderClock::stamp`] with NTP correction on (default [`LeaderClockConfig`]:
//!   slew and step, 400 ms tolerance). Before measuring, the clock is fed [`SAMPLE_WINDOW`] NTP
//!   samples, so every stamp runs the whole path: let the correction slew for the raw time
//!   elapsed, corrected time, the fencing check, the HLC. Two states: **slewing** (the reference is
//!   100 ms ahead, under the 128 ms step threshold, so the correction is still slewing at 0.5 ms/s
//!   for the whole run — the most work per stamp) and **converged** (the reference is 200 ms
//!   ahead: the correction stepped there at once and has nothing left to slew).
//! - **Baseline**: `uhlc::HLC::new_timestamp` of an HLC built with `HLCBuilder` (fixed id, the
//!   default clock).
//!
//! **The clock read.** `uhlc`'s default clock is `system_time_clock`, `SystemTime::now()` since the
//! Unix epoch, read inside every `new_timestamp`. roundtable's core reads no clock (time is an
//! argument), so the bench reads `SystemTime::now()` before each `stamp` and converts it to a
//! [`WallTime`]: both sides pay for one read of the same clock per timestamp, each with its own
//! conversion. A second, informational pair replaces the system clock on both sides with the same
//! function, a shared atomic counter advancing 1 µs per read (`uhlc`: `HLCBuilder::with_clock`),
//! to show the cost of the clocks' logic without the system call.
//!
//! The ratio is taken from criterion's median time per iteration (one timestamp) in this run's
//! `estimates.json`. `cargo bench -p roundtable-benches --bench hlc` runs in under a minute.
//! Without `--bench` (`cargo test -p roundtable-benches --benches`, or `--all-targets`) criterion
//! runs every routine once as a smoke test, writes no estimates, and the table says so.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::Criterion;
use roundtable::runtime::clock::{LeaderClock, LeaderClockConfig, NtpSample, SAMPLE_WINDOW};
use roundtable::runtime::{LeaderId, WallTime};
use roundtable_benches::{criterion_dir, median_ns, significant};
use uhlc::{HLCBuilder, HLC, ID, NTP64};

/// The criterion group of every measurement here.
const GROUP: &str = "hlc";
/// Reference − raw clock while slewing: under the 128 ms step threshold, 200 s of slewing.
const SLEWING_OFFSET_MS: i64 = 100;
/// Reference − raw clock for the converged clock: above the step threshold, stepped at once.
const STEPPED_OFFSET_MS: i64 = 200;
/// How far the counter clock advances per read.
const COUNTER_STEP_NS: u64 = 1_000;
/// Where the counter clock starts: 2026-01-01T00:00:00Z.
const COUNTER_START_NS: u64 = 1_767_225_600_000_000_000;

/// The counter clock's current reading, shared by both sides of the informational pair.
static COUNTER_NS: AtomicU64 = AtomicU64::new(COUNTER_START_NS);

/// The system clock as a [`WallTime`], the same read `uhlc::system_time_clock` makes.
fn system_now() -> WallTime {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("the system clock is after 1970");
    WallTime::from_nanos(u64::try_from(since_epoch.as_nanos()).expect("the system clock is before 2554"))
}

/// The counter clock, read by roundtable's side.
fn counter_now() -> WallTime {
    WallTime::from_nanos(COUNTER_NS.fetch_add(COUNTER_STEP_NS, Ordering::Relaxed))
}

/// The counter clock, read by `uhlc` (`HLCBuilder::with_clock` takes a `fn() -> NTP64`).
fn counter_ntp64() -> NTP64 {
    NTP64::from(Duration::from_nanos(COUNTER_NS.fetch_add(COUNTER_STEP_NS, Ordering::Relaxed)))
}

/// A leader clock with a full sample filter saying the reference is `offset_ms` ahead of `read`.
fn corrected_clock(read: fn() -> WallTime, offset_ms: i64) -> LeaderClock {
    let leader = LeaderId::new(1).expect("leader id in range");
    let mut clock = LeaderClock::new(leader, LeaderClockConfig::default()).expect("default config is valid");
    let offset_ns = offset_ms * 1_000_000;
    for i in 0..SAMPLE_WINDOW {
        // A 10 ms round trip, symmetric (so the measured offset is exact); slightly different
        // delays so the filter holds distinct samples.
        let t4 = read();
        let round_trip_ns = 10_000_000 + i as i64 * 1_000;
        let t1 = t4.offset_by_ns(-round_trip_ns);
        let at_server = t1.offset_by_ns(round_trip_ns / 2 + offset_ns);
        let sample = NtpSample::new(t1, at_server, at_server, t4);
        let _ = clock.add_sample(t4, sample).expect("valid sample");
    }
    assert_eq!(clock.measured_offset_ns(), Some(offset_ns), "the corrector measured the offset");
    assert!(clock.stamp(read()).is_ok(), "a synchronized clock stamps");
    clock
}

fn uhlc_with(clock: fn() -> NTP64) -> HLC {
    HLCBuilder::new().with_id(ID::try_from(2u8).expect("non-zero id")).with_clock(clock).build()
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);

    let mut slewing = corrected_clock(system_now, SLEWING_OFFSET_MS);
    let residual_ns = slewing.residual_offset_ns().expect("synchronized");
    assert!(residual_ns > 90_000_000, "still slewing: {residual_ns} ns left");
    group.bench_function("system-clock/roundtable-slewing", |b| b.iter(|| slewing.stamp(system_now())));
    let residual_ns = slewing.residual_offset_ns().expect("synchronized");
    assert!(residual_ns > 0, "the clock slewed during the whole measurement ({residual_ns} ns left)");

    let mut converged = corrected_clock(system_now, STEPPED_OFFSET_MS);
    assert_eq!(converged.residual_offset_ns(), Some(0), "stepped: nothing left to slew");
    group.bench_function("system-clock/roundtable-converged", |b| b.iter(|| converged.stamp(system_now())));

    let theirs = uhlc_with(uhlc::system_time_clock);
    group.bench_function("system-clock/uhlc", |b| b.iter(|| theirs.new_timestamp()));

    let mut counter_clock = corrected_clock(counter_now, SLEWING_OFFSET_MS);
    group.bench_function("counter-clock/roundtable-slewing", |b| b.iter(|| counter_clock.stamp(counter_now())));
    let theirs = uhlc_with(counter_ntp64);
    group.bench_function("counter-clock/uhlc", |b| b.iter(|| theirs.new_timestamp()));
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// The table.

/// One line of the table: a roundtable measurement against its baseline.
struct Comparison {
    what: &'static str,
    subject: &'static str,
    baseline: &'static str,
    /// The smallest acceptable ratio (issue 6); `None` for information only.
    goal: Option<f64>,
}

const COMPARISONS: [Comparison; 3] = [
    Comparison {
        what: "system clock, correction slewing",
        subject: "system-clock/roundtable-slewing",
        baseline: "system-clock/uhlc",
        goal: Some(1.0),
    },
    Comparison {
        what: "system clock, correction converged",
        subject: "system-clock/roundtable-converged",
        baseline: "system-clock/uhlc",
        goal: Some(1.0),
    },
    Comparison {
        what: "counter clock (no system call), correction slewing — information",
        subject: "counter-clock/roundtable-slewing",
        baseline: "counter-clock/uhlc",
        goal: None,
    },
];

fn print_table(dir: &Path, started: SystemTime) {
    println!();
    println!(
        "Ratio = roundtable timestamps/s ÷ uhlc timestamps/s (criterion medians of this run; above 1: roundtable \
         faster)."
    );
    println!();
    println!("| clock, state | roundtable `LeaderClock::stamp` | uhlc `HLC::new_timestamp` | ratio | goal | met |");
    println!("|---|---|---|---|---|---|");
    let mut missing = 0;
    for cmp in &COMPARISONS {
        let goal = cmp.goal.map_or_else(|| "–".to_owned(), |g| format!("≥ {g}"));
        match (median_ns(dir, GROUP, cmp.subject, started), median_ns(dir, GROUP, cmp.baseline, started)) {
            (Some(ours), Some(theirs)) => {
                let ratio = theirs / ours;
                let met = cmp.goal.map_or("–", |g| if ratio >= g { "yes" } else { "no" });
                println!(
                    "| {} | {} | {} | **{}** | {goal} | {met} |",
                    cmp.what,
                    rate(ours),
                    rate(theirs),
                    significant(ratio)
                );
            }
            _ => {
                missing += 1;
                println!("| {} | – | – | – | {goal} | – |", cmp.what);
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

/// `21.3 M stamps/s (47.0 ns)`.
fn rate(ns_per_stamp: f64) -> String {
    format!("{:.1} M stamps/s ({ns_per_stamp:.1} ns)", 1e3 / ns_per_stamp)
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
    print_table(&criterion_dir(), started);
}
