//! Clock skew: last-write-wins is only as good as the clocks behind its timestamps. Three leaders
//! on a LAN; leader L1's clock runs fast. A client sets `price` at L1, and 300 ms later (in true
//! time) another client corrects it at L0. The correction is the later write and should win.
//!
//! 1. **400 ms fast, no clock synchronisation.** L0 and L1 cannot talk for the first second, so the
//!    two writes are concurrent. L1 stamps its write 0.5 s into the run, L0 stamps the correction
//!    0.4 s into it. 400 ms is within `max_offset` (500 ms), so every leader accepts L1's entry,
//!    and last-write-wins keeps L1's older value over the newer correction, everywhere: the fast
//!    leader wins a conflict it should lose, and nothing can tell.
//! 2. **The same with NTP-style clock synchronisation** (`ClockSyncConfig::default()`): L1's first
//!    sample measures the 400 ms and steps its clock back before it stamps anything; the two
//!    writes carry true time and the correction wins.
//! 3. **Three years fast** (a dead RTC battery), no synchronisation. L1's entry is far beyond
//!    `max_offset`: its peers refuse it, count it, trace it and keep it in their quarantine; it
//!    never enters their clocks or stores. They report L1 to the supervisor, which fences it: L1
//!    rejoins — rebuilds its state from the healthy leaders, so its own far-future write is gone
//!    there too — and refuses writes until its clock is synchronised. The cluster agrees on the
//!    correction; the quarantined write is listed, not silently lost.
//!
//! Each run is a deterministic simulation (paused time, simulated clocks), so the output is the
//! same every time. Run it with `cargo run --example clock_skew`; it exits with an error if a
//! check fails.

use std::time::Duration;

use roundtable::actors::trace::{Event, Record, SupervisorEvent};
use roundtable::prelude::*;
use roundtable::runtime::clock::CorrectionEvent;
use roundtable_sim::{ms, ClockSyncConfig, FaultEvent, NetworkModel, SimRun, Simulation};

const KEY: &str = "price";
const FIRST: &str = "9.99 (set at L1)";
const CORRECTION: &str = "12.50 (corrected at L0, 300 ms later)";
const FIRST_AT_MS: u64 = 100;
const CORRECTION_AT_MS: u64 = 400;
const FAST_NS: i64 = 400_000_000;
const YEARS_FAST_NS: i64 = 3 * 365 * 86_400 * 1_000_000_000;
/// How long the three-year run goes on before giving up on settling (simulated time).
const FAR_FUTURE_RUN_MS: u64 = 4_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("== 1. L1 is 400 ms fast, no clock synchronisation");
    let run = simulate(FAST_NS, false, Duration::from_secs(60))?;
    show(&run, |r| writes_and_conflicts(r) || applies_first(r));
    let dot = first_dot(&run)?;
    expect_everywhere(&run, &[0, 1, 2], FIRST)?;
    let kept_first =
        |(_, e): &(LeaderId, &TraceEvent)| matches!(e, TraceEvent::LwwDiscarded { kept, .. } if *kept == dot);
    if run.trace().leader_events().filter(kept_first).count() != 3 {
        return Err(format!("expected every leader to keep {dot} over the correction").into());
    }
    println!("  the correction was written 300 ms after the first value and lost at every leader\n");

    println!("== 2. the same, with clock synchronisation");
    let run = simulate(FAST_NS, true, Duration::from_secs(60))?;
    show(&run, |r| {
        writes_and_conflicts(r)
            || matches!(&r.event, Event::Replica(TraceEvent::ClockCorrected(CorrectionEvent::Stepped { .. })))
    });
    expect_everywhere(&run, &[0, 1, 2], CORRECTION)?;
    if run.metrics().rejected != 0 {
        return Err("with synchronised clocks nothing should be rejected".into());
    }
    println!("  the stamps follow true time: the correction is the latest write and wins\n");

    println!("== 3. L1 is 3 years fast, no clock synchronisation");
    let run = simulate(YEARS_FAST_NS, false, ms(FAR_FUTURE_RUN_MS))?;
    show(&run, |r| {
        writes_and_conflicts(r)
            || applies_first(r)
            || matches!(
                &r.event,
                Event::Supervisor(SupervisorEvent::Fencing { .. })
                    | Event::Replica(TraceEvent::Rejoining | TraceEvent::Fenced { .. } | TraceEvent::FencedByCluster)
            )
    });
    let dot = first_dot(&run)?;
    for s in run.states() {
        let quarantined: Vec<String> = s.quarantined.iter().map(|q| q.dot.to_string()).collect();
        println!(
            "  {} refused {} entries; quarantine: [{}]",
            s.name,
            s.metrics.timestamps_rejected,
            quarantined.join(" ")
        );
    }
    if run.states().iter().any(|s| s.applied.contains(dot)) {
        return Err(format!("{dot} is applied somewhere although it is stamped years ahead").into());
    }
    // L2 received it and quarantined it; L0, cut off from L1 until after L1 rejoined, never saw it.
    if !run.states().iter().any(|s| s.quarantined.iter().any(|q| q.dot == dot)) {
        return Err(format!("{dot} should be listed in a quarantine").into());
    }
    let fences_l1 = |r: &Record| matches!(&r.event, Event::Supervisor(SupervisorEvent::Fencing { leader, .. }) if leader.index() == 1);
    if run.trace().count(fences_l1) == 0 {
        return Err("the supervisor should fence L1".into());
    }
    expect_everywhere(&run, &[0, 1, 2], CORRECTION)?;
    run.check_converged()?;
    println!("  {dot} is quarantined and listed; L1 was fenced, rejoined, and refuses writes until its clock is synchronised");
    Ok(())
}

/// Three leaders on a LAN; L1's clock is `offset_ns` fast. L1 sets the price, L0 corrects it.
fn simulate(offset_ns: i64, clock_sync: bool, max_duration: Duration) -> Result<SimRun, Box<dyn std::error::Error>> {
    let mut sim = Simulation::new(1)
        .leaders(3)
        .network(NetworkModel::lan())
        .clock("L1", offset_ns, 0)
        .max_duration(max_duration)
        .workload(|w| w.put(ms(FIRST_AT_MS), "L1", KEY, FIRST).put(ms(CORRECTION_AT_MS), "L0", KEY, CORRECTION))
        // L0 and L1 cannot talk until 1 s: the two writes are concurrent (had L0 seen L1's write,
        // its hybrid logical clock would have stamped the correction later, and it would win).
        .fault(ms(0), FaultEvent::Partition(LeaderSet::single(LeaderId::new(0)?), LeaderSet::single(LeaderId::new(1)?)))
        .fault(ms(1_000), FaultEvent::HealAll);
    if clock_sync {
        sim = sim.clock_sync(ClockSyncConfig::default());
    }
    Ok(sim.try_run()?)
}

/// Prints the trace records `keep` selects, then every leader's value of [`KEY`].
fn show(run: &SimRun, keep: impl Fn(&Record) -> bool) {
    for record in run.trace().records.iter().filter(|r| keep(r)) {
        println!("{record}");
    }
    for s in run.states() {
        println!("  {} holds {KEY} = {:?}", s.name, value(s).unwrap_or_default());
    }
}

/// Whether a record is a client write, a rejected entry or a last-write-wins decision.
fn writes_and_conflicts(record: &Record) -> bool {
    matches!(
        &record.event,
        Event::Replica(
            TraceEvent::WriteAccepted { .. } | TraceEvent::Rejected { .. } | TraceEvent::LwwDiscarded { .. }
        )
    )
}

/// Whether a record is another leader applying L1's first write.
fn applies_first(record: &Record) -> bool {
    matches!(
        (&record.actor, &record.event),
        (TraceActor::Leader(id), Event::Replica(TraceEvent::Applied { dot, .. }))
            if id.index() != 1 && dot.origin.index() == 1 && dot.seq.0 == 1
    )
}

/// The dot of L1's write.
fn first_dot(run: &SimRun) -> Result<Dot, String> {
    let l1 = LeaderId::new(1).map_err(|e| e.to_string())?;
    run.acked().iter().find(|a| a.leader == l1).map(|a| a.dot).ok_or_else(|| "L1's write was not acknowledged".into())
}

/// The value of [`KEY`] at leader `s`.
fn value(s: &LeaderState) -> Option<String> {
    let (_, register) = s.store.iter().find(|(k, _)| k.as_str() == KEY)?;
    register.value.as_ref().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
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
