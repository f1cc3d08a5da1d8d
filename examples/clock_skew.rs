//! Clock skew: last-write-wins is only as good as the clocks behind its timestamps. Three leaders
//! on a LAN; leader L1's clock runs 2 s fast. A client sets `price` at L1, and 600 ms later (in
//! true time) another client corrects it at L0. The correction is the later write and should win.
//!
//! 1. **No clock synchronisation.** L1 stamps its write 2.1 s into the run, L0 stamps the
//!    correction 0.7 s into it. The receivers first refuse L1's entry — it is more than
//!    `max_offset` (500 ms) ahead of their clocks — and apply it once true time has caught up to
//!    within 500 ms of its stamp, on a later anti-entropy round. Then last-write-wins compares the
//!    stamps and keeps L1's older value over the newer correction, everywhere: the fast leader wins
//!    a conflict it should lose, and nothing in the cluster can tell. (Worse, L0 and L2 showed the
//!    correction for over a second before they took it back.)
//! 2. **With NTP-style clock synchronisation** (`ClockSyncConfig::default()`), L1's first sample
//!    measures the 2 s and steps its clock back before it stamps anything: the same two writes
//!    carry true time, and the correction wins.
//! 3. **A clock three years fast** (a dead RTC battery, a bad manual setting). Every copy of L1's
//!    entry is refused, counted and traced as a `reject`, on each anti-entropy round; it never
//!    enters the other leaders' clocks or stores, so it cannot drag their clocks three years ahead
//!    or pin the key for three years. L1 alone keeps its own write, so the cluster does not settle
//!    until its clock is fixed: the rejections are the signal to act on.
//!
//! Each run is a deterministic simulation (paused time, simulated clocks), so the output is the
//! same every time. Run it with `cargo run --example clock_skew`; it exits with an error if a
//! check fails.

use std::time::Duration;

use roundtable::actors::{ClockSyncConfig, SimError, TraceLine};
use roundtable::prelude::*;

const KEY: &str = "price";
const FIRST: &str = "9.99 (set at L1)";
const CORRECTION: &str = "12.50 (corrected at L0, 600 ms later)";
const FIRST_AT_MS: u64 = 100;
const CORRECTION_AT_MS: u64 = 700;
const FAST_NS: i64 = 2_000_000_000;
const YEARS_FAST_NS: i64 = 3 * 365 * 86_400 * 1_000_000_000;
/// How long the three-year run goes on before giving up on settling (simulated time).
const FAR_FUTURE_RUN_MS: u64 = 4_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("== 1. L1 is 2 s fast, no clock synchronisation");
    let run = simulate(FAST_NS, false, Duration::from_secs(60))?;
    show(&run, |l| ["write ", "reject", "lww"].iter().any(|p| l.text.starts_with(p)) || applies_first(l));
    let dot = first_dot(&run)?;
    expect_everywhere(&run, &[0, 1, 2], FIRST)?;
    let lww = format!("kept {dot} discarded");
    if run.trace().matching(&lww).count() != 3 {
        return Err(format!("expected every leader to keep {dot} over the correction").into());
    }
    println!("  the correction was written 600 ms after the first value and lost at every leader\n");

    println!("== 2. the same, with clock synchronisation");
    let run = simulate(FAST_NS, true, Duration::from_secs(60))?;
    show(&run, |l| ["write ", "reject", "lww", "clock stepped"].iter().any(|p| l.text.starts_with(p)));
    expect_everywhere(&run, &[0, 1, 2], CORRECTION)?;
    if run.metrics().rejected != 0 || run.metrics().lww_discarded != 0 {
        return Err("with synchronised clocks nothing should be rejected or discarded".into());
    }
    println!("  the stamps follow true time: the correction is the latest write and wins\n");

    println!("== 3. L1 is 3 years fast, no clock synchronisation");
    let run = simulate(YEARS_FAST_NS, false, ms(FAR_FUTURE_RUN_MS))?;
    show(&run, |l| ["write ", "reject", "lww"].iter().any(|p| l.text.starts_with(p)) || applies_first(l));
    let dot = first_dot(&run)?;
    for s in run.states() {
        println!("  {} refused {} entries for their timestamps", s.name, s.metrics.timestamps_rejected);
    }
    let refused = |i: usize| run.states()[i].metrics.timestamps_rejected;
    if refused(0) < 2 || refused(2) < 2 {
        return Err("L0 and L2 should refuse L1's entry on every round".into());
    }
    if run.states().iter().any(|s| s.id.index() != 1 && s.applied.contains(dot)) {
        return Err(format!("{dot} was applied although it is stamped years ahead").into());
    }
    expect_everywhere(&run, &[0, 2], CORRECTION)?;
    expect_everywhere(&run, &[1], FIRST)?;
    if run.settled_at().is_some() {
        return Err("the cluster should not settle while L1 holds a write nobody accepts".into());
    }
    println!("  {dot} is quarantined: L0 and L2 never apply it; the cluster stays unsettled until L1's clock is fixed");
    Ok(())
}

/// Three leaders on a LAN; L1's clock is `offset_ns` fast. L1 sets the price, L0 corrects it.
fn simulate(offset_ns: i64, clock_sync: bool, max_duration: Duration) -> Result<SimRun, SimError> {
    let mut sim = Simulation::new(1)
        .leaders(3)
        .network(NetworkModel::lan())
        .clock(1, offset_ns, 0)
        .max_duration(max_duration)
        .workload(|w| w.put(ms(FIRST_AT_MS), 1, KEY, FIRST).put(ms(CORRECTION_AT_MS), 0, KEY, CORRECTION));
    if clock_sync {
        sim = sim.clock_sync(ClockSyncConfig::default());
    }
    sim.try_run()
}

/// Prints the trace lines `keep` selects, then every leader's value of [`KEY`].
fn show(run: &SimRun, keep: impl Fn(&TraceLine) -> bool) {
    let lines = run.trace().lines.iter().filter(|l| keep(l)).cloned().collect();
    print!("{}", Trace { lines }.render());
    for s in run.states() {
        println!("  {} holds {KEY} = {:?}", s.name, value(s).unwrap_or_default());
    }
}

/// Whether a trace line is another leader applying L1's first write.
fn applies_first(line: &TraceLine) -> bool {
    line.text.starts_with("apply L1:1 ") && matches!(line.actor, TraceActor::Leader(id) if id.index() != 1)
}

/// The dot of L1's write.
fn first_dot(run: &SimRun) -> Result<Dot, String> {
    run.acked().iter().find(|a| a.leader == 1).map(|a| a.dot).ok_or_else(|| "L1's write was not acknowledged".into())
}

/// The value of [`KEY`] at leader `s`.
fn value(s: &LeaderState) -> Option<String> {
    let (_, v, _) = s.store.iter().find(|(k, _, _)| k == KEY)?;
    v.as_deref().map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Checks that each of `leaders` holds `want` under [`KEY`].
fn expect_everywhere(run: &SimRun, leaders: &[usize], want: &str) -> Result<(), String> {
    for &i in leaders {
        let s = &run.states()[i];
        if value(s).as_deref() != Some(want) {
            return Err(format!("{} holds {KEY} = {:?}, expected {want:?}", s.name, value(s)));
        }
    }
    Ok(())
}
