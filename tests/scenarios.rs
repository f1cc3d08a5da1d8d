//! Replication scenarios, each a short story: build a [`Simulation`], run it, check that it
//! converged and that the behaviour the scenario is about shows in the trace, then snapshot the
//! whole trace with [`assert_trace!`] (files in the top-level `snapshots/`).
//!
//! Every scenario is a plain `fn() -> SimRun` listed in [`SCENARIOS`], so that
//! [`every_scenario_replays_byte_for_byte`] runs each one twice and compares the renderings.
//!
//! When a snapshot changes: `cargo test --test scenarios`, then `cargo insta review` (or read
//! `snapshots/<name>.snap.new` against `<name>.snap`), and accept it only if the new trace still
//! tells a correct story.

use roundtable::assert_trace;
use roundtable::runtime::{LeaderId, LeaderSet, Topology};
use roundtable_sim::{ms, FaultEvent, NetworkModel, SimRun, Simulation};

mod queries;
use queries::{
    applied, caught_up, declared_dead, dot, healed_all, id, lost_to_partition, received, restarted, rewired, rewirings,
    sends, sent, waited, wrote, Sent,
};
use roundtable::actors::trace::{ClientEvent, Event, Record};

/// A scenario: builds and runs one simulation.
type Scenario = fn() -> SimRun;

/// Every scenario, by snapshot name.
const SCENARIOS: &[(&str, Scenario)] = &[
    ("circle_fault_free", circle_fault_free_run),
    ("star_fault_free", star_fault_free_run),
    ("all_to_all_fault_free", all_to_all_fault_free_run),
    ("circle_crash_and_restart", circle_crash_and_restart_run),
    ("star_hub_crash_and_restart", star_hub_crash_and_restart_run),
    ("all_to_all_relay_partition", all_to_all_relay_partition_run),
    ("causal_chain_over_reordering", causal_chain_over_reordering_run),
];

// ----- fault-free topologies --------------------------------------------------------------------

fn circle_fault_free_run() -> SimRun {
    Simulation::new(1)
        .leaders(4)
        .topology(Topology::Circle)
        .network(NetworkModel::wan())
        .workload(|w| w.puts_per_leader(2))
        .run()
}

#[test]
fn circle_fault_free() {
    let run = circle_fault_free_run();
    run.assert_converged();
    assert_eq!(run.acked().len(), 8);
    // Along the ring only: every replicated entry goes from Li to L(i+1).
    for send in sends(run.trace()).iter().filter(|s| !s.catch_up) {
        assert_eq!(send.to.index(), (send.from.index() + 1) % 4, "{send:?}");
    }
    assert_trace!("circle_fault_free", run);
}

fn star_fault_free_run() -> SimRun {
    Simulation::new(1)
        .leaders(4)
        .topology(Topology::Star { hub: id(0) })
        .network(NetworkModel::wan())
        .workload(|w| w.puts_per_leader(2))
        .run()
}

#[test]
fn star_fault_free() {
    let run = star_fault_free_run();
    run.assert_converged();
    assert_eq!(run.acked().len(), 8);
    // Spokes talk to the hub only; the hub passes every spoke's entry on to the other spokes.
    let sends = sends(run.trace());
    for send in sends.iter().filter(|s| !s.catch_up) {
        assert!(send.from == id(0) || send.to == id(0), "spoke to spoke: {send:?}");
    }
    for spoke in 1..4 {
        let first = dot(spoke, 1);
        let relayed: Vec<LeaderId> =
            sends.iter().filter(|s| s.from == id(0) && !s.catch_up && s.dots == [first]).map(|s| s.to).collect();
        let others: Vec<LeaderId> = (1..4).filter(|&o| o != spoke).map(id).collect();
        assert_eq!(relayed, others, "the hub passes {first} on to the other spokes");
    }
    assert_trace!("star_fault_free", run);
}

fn all_to_all_fault_free_run() -> SimRun {
    Simulation::new(1)
        .leaders(3)
        .topology(Topology::AllToAll { relay: false })
        .network(NetworkModel::wan())
        .workload(|w| w.puts_per_leader(2))
        .run()
}

#[test]
fn all_to_all_fault_free() {
    let run = all_to_all_fault_free_run();
    run.assert_converged();
    assert_eq!(run.acked().len(), 6);
    // One hop: only the origin sends an entry, to every other leader; nobody forwards.
    let replicated: Vec<Sent> = sends(run.trace()).into_iter().filter(|s| !s.catch_up).collect();
    assert_eq!(replicated.len(), 6 * 2);
    for send in &replicated {
        assert!(send.dots.iter().all(|dot| dot.origin == send.from), "forwarded: {send:?}");
    }
    assert_trace!("all_to_all_fault_free", run);
}

// ----- crashes, rewiring and catch-up -----------------------------------------------------------

fn circle_crash_and_restart_run() -> SimRun {
    Simulation::new(1)
        .leaders(4)
        .topology(Topology::Circle)
        .network(NetworkModel::wan())
        .workload(|w| w.puts_per_leader(3).put(ms(800), "L1", "after", "L1 across the gap"))
        .crash_at(ms(15), "L2")
        .restart_at(ms(1200), "L2")
        .run()
}

#[test]
fn circle_crash_and_restart() {
    let run = circle_crash_and_restart_run();
    run.assert_converged();
    // L2's third write came after its crash and was refused; the ones it had passed to L3 survive.
    let trace = run.trace();
    let refused_down = |r: &Record| {
        matches!(&r.event, Event::Client(ClientEvent::Wrote { leader, op, outcome: Err(e) })
            if *leader == id(2) && op == r#"put "k2"="L2.2""# && e.contains("is down"))
    };
    assert!(trace.position(refused_down).is_some());
    assert!(run.lost_with_leader().is_empty(), "{:?}", run.lost_with_leader());
    // The circle closes around L2: L1 now sends straight to L3, and L2 comes back between them.
    let edge = |a: usize, b: usize| (id(a), id(b));
    let rewires = rewirings(trace);
    assert!(rewires
        .iter()
        .any(|r| r.died == queries::set(&[2]) && r.added == [edge(1, 3)] && r.removed == [edge(1, 2), edge(2, 3)]));
    assert!(rewires
        .iter()
        .any(|r| r.returned == queries::set(&[2]) && r.added == [edge(1, 2), edge(2, 3)] && r.removed == [edge(1, 3)]));
    assert!(trace.in_order(&[&declared_dead(2), &rewired(&[0, 1, 3]), &sent(1, 3, &[dot(1, 4)])]));
    // Restarted empty, L2 catches up from its peers and ends up with everything.
    assert!(trace.in_order(&[&restarted(2), &rewired(&[0, 1, 2, 3]), &caught_up(2)]));
    assert!(run.states()[2].up);
    assert_eq!(run.states()[2].applied, run.states()[0].applied);
    assert_eq!(run.states()[2].store, run.states()[0].store);
    assert_trace!("circle_crash_and_restart", run);
}

fn star_hub_crash_and_restart_run() -> SimRun {
    Simulation::new(1)
        .leaders(4)
        .topology(Topology::Star { hub: id(0) })
        .network(NetworkModel::wan())
        .workload(|w| w.puts_per_leader(3).put(ms(800), "L2", "after", "L2 through the new hub"))
        .crash_at(ms(15), "L0")
        .restart_at(ms(1200), "L0")
        .run()
}

#[test]
fn star_hub_crash_and_restart() {
    let run = star_hub_crash_and_restart_run();
    run.assert_converged();
    assert!(run.lost_with_leader().is_empty(), "{:?}", run.lost_with_leader());
    // A new hub (L1) takes over and carries the spokes' writes; the old hub returns as the hub.
    let trace = run.trace();
    let rewires = rewirings(trace);
    let failover: Vec<_> = rewires.iter().filter(|r| r.died == queries::set(&[0])).collect();
    assert_eq!(failover.len(), 1);
    assert_eq!((failover[0].hub_before, failover[0].hub_after), (Some(id(0)), Some(id(1))), "{}", failover[0]);
    assert!(trace.in_order(&[&sent(2, 1, &[dot(2, 4)]), &sent(1, 3, &[dot(2, 4)]), &applied(3, dot(2, 4))]));
    let back: Vec<_> = rewires.iter().filter(|r| r.returned == queries::set(&[0])).collect();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].hub_before, back[0].hub_after), (Some(id(1)), Some(id(0))), "{}", back[0]);
    assert!(trace.in_order(&[&restarted(0), &caught_up(0)]));
    assert_eq!(run.states()[0].applied, run.states()[1].applied);
    assert_trace!("star_hub_crash_and_restart", run);
}

// ----- relaying around a partition --------------------------------------------------------------

fn all_to_all_relay_partition_run() -> SimRun {
    Simulation::new(1)
        .leaders(4)
        .topology(Topology::AllToAll { relay: true })
        .network(NetworkModel::wan())
        .workload(|w| w.puts_per_leader(2))
        .fault(ms(0), FaultEvent::Partition(LeaderSet::single(id(0)), LeaderSet::single(id(2))))
        .fault(ms(200), FaultEvent::HealAll)
        .run()
}

#[test]
fn all_to_all_relay_partition() {
    let run = all_to_all_relay_partition_run();
    run.assert_converged();
    let trace = run.trace();
    assert!(trace.position(lost_to_partition("replicate", 0, 2)).is_some());
    // L1 and L3 relay each write across the cut link, both ways, and it arrives before the heal.
    let heal = trace.position(healed_all).expect("healed");
    let sends = sends(trace);
    for (from, to) in [(0, 2), (2, 0)] {
        for seq in 1..=2 {
            let dot = dot(from, seq);
            let relayed = sends
                .iter()
                .any(|s| (s.from == id(1) || s.from == id(3)) && s.to == id(to) && !s.catch_up && s.dots == [dot]);
            assert!(relayed, "nobody relayed {dot} to L{to}");
            let got = [1, 3].iter().filter_map(|&relay| trace.position(received(to, dot, Some(relay)))).min();
            assert!(got.is_some_and(|at| at < heal), "L{to} did not get {dot} through a relay before the heal");
        }
    }
    // Flooding makes copies (L2 gets L0's writes from both L1 and L3); every extra copy is
    // dropped, never applied twice.
    assert!(run.metrics().duplicates_dropped > 0);
    for leader in 0..4 {
        let applies = queries::applies(trace, leader).len();
        assert_eq!(applies, 8, "L{leader} applied each of the 8 writes once");
    }
    assert_trace!("all_to_all_relay_partition", run);
}

// ----- causality --------------------------------------------------------------------------------

/// Seed 23 is one where L1's write overtakes L0's on the way to L2 (found by trying seeds 0..60;
/// if a change to the network moves it, pick another seed whose trace shows `wait L1:1 needs`).
fn causal_chain_over_reordering_run() -> SimRun {
    Simulation::new(23)
        .leaders(3)
        .topology(Topology::AllToAll { relay: false })
        .network(NetworkModel::wan().latency(ms(5), ms(120)).reorder_rate(0.5))
        .workload(|w| w.put(ms(0), "L0", "a", "A").put_after_seeing(ms(0), "L1", ("b", "B after A"), ("a", "A")))
        .run()
}

#[test]
fn causal_chain_over_reordering() {
    let run = causal_chain_over_reordering_run();
    run.assert_converged();
    // L1 wrote B only after it showed A, so B depends on A.
    let (trace, a, b) = (run.trace(), dot(0, 1), dot(1, 1));
    let shows_a = |r: &Record| matches!(&r.event, Event::Client(ClientEvent::Shows { leader, key, value }) if *leader == id(1) && key == "a" && value == "A");
    assert!(trace.in_order(&[&shows_a, &wrote(1, b)]));
    // B overtook A on the way to L2, which held B back until A arrived.
    assert!(trace.in_order(&[&received(2, b, Some(1)), &waited(2, b, &[a]), &received(2, a, None)]));
    assert_eq!(run.metrics().causal_waits, 1);
    // No leader applied B before A.
    for leader in 0..3 {
        assert!(trace.in_order(&[&applied(leader, a), &applied(leader, b)]), "L{leader}");
    }
    assert_trace!("causal_chain_over_reordering", run);
}

// ----- determinism ------------------------------------------------------------------------------

#[test]
fn every_scenario_replays_byte_for_byte() {
    for (name, scenario) in SCENARIOS {
        let (first, second) = (scenario().render(), scenario().render());
        assert!(first == second, "{name}: two runs of the same seed differ");
    }
}

// ----- reading traces ---------------------------------------------------------------------------

/// The README's picture: the star hub-failover scenario as a space-time diagram. Kept true like
/// a snapshot: when the rendering changes, the test writes `snapshots/star_hub_crash_and_restart.svg.new`
/// (never in CI) and fails; look at the new picture and move it over the old one if it is right.
#[test]
fn the_readme_picture_is_the_star_hub_failover_diagram() {
    use roundtable_sim::svg::{render_svg, SvgOptions};
    let run = star_hub_crash_and_restart_run();
    let options = SvgOptions {
        title: Some("Star, 4 leaders: the hub L0 crashes at 15 ms, L1 takes over, L0 returns at 1.2 s".into()),
        leaders: Some(4),
        ..SvgOptions::default()
    };
    let svg = render_svg(run.trace(), &options);
    let path = roundtable::snapshot_dir(env!("CARGO_MANIFEST_DIR")).join("star_hub_crash_and_restart.svg");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != svg {
        let new = path.with_extension("svg.new");
        if std::env::var_os("CI").is_none() {
            std::fs::write(&new, &svg).expect("write the new picture");
        }
        panic!("{} differs from the rendering; review {} and move it over", path.display(), new.display());
    }
}

/// insta keeps `assertion_line` in the `.snap.new` files it writes for review, and trims it when
/// it writes a `.snap` itself; a `.snap.new` moved over its `.snap` by hand (there is no
/// cargo-insta here) must lose it, or the line number goes stale with the next edit.
#[test]
fn no_snapshot_carries_an_assertion_line() {
    let dir = roundtable::snapshot_dir(env!("CARGO_MANIFEST_DIR"));
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).expect("snapshots/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "snap") {
            let text = std::fs::read_to_string(&path).expect("readable");
            assert!(!text.lines().any(|l| l.starts_with("assertion_line:")), "{}", path.display());
            read += 1;
        }
    }
    assert!(read >= 10, "read only {read} snapshots in {}", dir.display());
}
