//! Topologies: the same five-leader cluster wired four ways — a circle, a star, all-to-all, and
//! all-to-all with relaying — each losing one leader in the middle of a stream of writes (for the
//! star, the hub). The supervisor notices the silence, declares the leader dead and rewires the
//! survivors (its `rewire` trace lines show the edges added and removed, and the star's new hub);
//! the replicas' anti-entropy repairs what was in flight. At the end every write a client got an
//! acknowledgement for is on every live leader, except the few the dead leader had acknowledged
//! but not yet passed on: those died with it, and are listed.
//!
//! Each run is a deterministic simulation (real actors, paused time, a seeded WAN with 5% loss and
//! 2% duplication), so the output is the same on every run. Run it with
//! `cargo run --example topologies`; it exits with an error if a check fails.

use std::time::Duration;

use roundtable::actors::trace::Record;
use roundtable::actors::{LeaderState, TraceActor};
use roundtable::prelude::*;
use roundtable_sim::{ms, AckedWrite, FaultEvent, NetworkModel, SimRun, Simulation, Workload};

const LEADERS: usize = 5;
const WRITES_PER_LEADER: u64 = 12;
const WRITE_INTERVAL_MS: u64 = 100;
const CUT_OFF_AT_MS: u64 = 200;
const CRASH_AT_MS: u64 = 250;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let id = |i: usize| LeaderId::new(i);
    let runs = [
        ("circle", Topology::Circle, id(2)?),
        ("star (hub L0)", Topology::Star { hub: id(0)? }, id(0)?),
        ("all-to-all", Topology::AllToAll { relay: false }, id(3)?),
        ("all-to-all with relay", Topology::AllToAll { relay: true }, id(1)?),
    ];
    for (name, topology, victim) in runs {
        println!(
            "== {name}: {LEADERS} leaders; {victim} is cut off at {CUT_OFF_AT_MS}ms and crashes at {CRASH_AT_MS}ms"
        );
        let run = Simulation::new(7)
            .leaders(LEADERS)
            .topology(topology)
            .network(NetworkModel::wan().drop_rate(0.05).duplicate_rate(0.02))
            .workload(|w| workload(w, victim))
            .fault(ms(CUT_OFF_AT_MS), FaultEvent::Isolate(victim.into()))
            .crash_at(ms(CRASH_AT_MS), victim)
            .try_run()?;
        report(&run, victim).map_err(|why| format!("{name}: {why} (seed {})", run.seed()))?;
        println!();
    }
    println!("every topology kept every acknowledged write that outlived its leader");
    Ok(())
}

/// Leader `Li` writes `w{i}.{j}` = `v{j}` every [`WRITE_INTERVAL_MS`], staggered by 7 ms per
/// leader; the victim stops writing when it crashes. Distinct keys, so each write stays visible.
fn workload(mut w: Workload, victim: LeaderId) -> Workload {
    for j in 0..WRITES_PER_LEADER {
        for leader in LeaderId::range(LEADERS) {
            let i = leader.index();
            let at = WRITE_INTERVAL_MS * j + 7 * i as u64;
            if leader != victim || at < CRASH_AT_MS {
                w = w.put(ms(at), leader, &format!("w{i}.{j}"), &format!("v{j}"));
            }
        }
    }
    w
}

/// Prints what the run did and checks that every acknowledged write reached every live leader.
fn report(run: &SimRun, victim: LeaderId) -> Result<(), String> {
    for record in run.trace().records.iter().filter(|r| r.actor == TraceActor::Supervisor) {
        println!("  {:>5}ms sup {}", record.at.as_millis(), record.event);
    }
    run.check_converged()?;
    let live: Vec<&LeaderState> = run.states().iter().filter(|s| s.up).collect();
    if live.len() != LEADERS - 1 || live.iter().any(|s| s.id == victim) {
        return Err(format!(
            "expected all but {victim} up, got {:?}",
            live.iter().map(|s| &s.name).collect::<Vec<_>>()
        ));
    }
    let lost = run.lost_with_leader();
    for origin in LeaderId::range(LEADERS) {
        let acked: Vec<&AckedWrite> = run.acked().iter().filter(|a| a.leader == origin).collect();
        let mut arrived = 0;
        for a in &acked {
            let on = live.iter().filter(|s| holds(s, a)).count();
            match (on, lost.contains(a)) {
                (n, false) if n == live.len() => arrived += 1,
                (0, true) if origin == victim => {}
                (n, lost) => {
                    return Err(format!("{} {:?} is on {n}/{} live leaders (lost: {lost})", a.dot, a.key, live.len()))
                }
            }
        }
        let status = if origin == victim { "dead" } else { "live" };
        println!("  {origin} ({status}): {} acknowledged, {arrived} on all {} live leaders", acked.len(), live.len());
    }
    let slowest = run
        .acked()
        .iter()
        .filter_map(|a| arrival(run, &live, a).map(|t| (t, a)))
        .max_by_key(|(t, a)| t.saturating_sub(a.at));
    if let Some((t, a)) = slowest {
        let (acked_ms, arrived_ms) = (a.at.as_millis(), t.as_millis());
        println!(
            "  slowest to arrive: {} {:?} acknowledged at {acked_ms}ms, on every live leader at {arrived_ms}ms",
            a.dot, a.key
        );
    }
    for a in lost {
        println!(
            "  lost with {}: {} {:?}, acknowledged at {}ms, never passed on",
            a.leader,
            a.dot,
            a.key,
            a.at.as_millis()
        );
    }
    if lost.is_empty() {
        println!("  lost with {victim}: none");
    }
    let m = run.metrics();
    println!(
        "  settled at {}ms; {} messages, {} lost by the network, {} duplicates dropped, {} rewires",
        run.settled_at().map_or(0, |t| t.as_millis()),
        m.network.messages(),
        m.network.dropped,
        m.duplicates_dropped,
        m.rewires
    );
    Ok(())
}

/// Whether `leader` holds write `a`: applied (in its version vector) and in its store under its dot.
fn holds(leader: &LeaderState, a: &AckedWrite) -> bool {
    leader.applied.contains(a.dot) && leader.store.iter().any(|(key, r)| key.as_str() == a.key && r.dot == a.dot)
}

/// When the last live leader applied write `a`, from the trace (`None` if one never did).
fn arrival(run: &SimRun, live: &[&LeaderState], a: &AckedWrite) -> Option<Duration> {
    let at = |s: &&LeaderState| {
        let applied = |r: &&Record| matches!(r.replica(s.id), Some(TraceEvent::Applied { dot, .. }) if *dot == a.dot);
        run.trace().records.iter().find(applied).map(|r| r.at)
    };
    live.iter().map(at).collect::<Option<Vec<_>>>()?.into_iter().max()
}
