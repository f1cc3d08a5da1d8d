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
    for send in sends(&run).iter().filter(|s| !s.catch_up) {
        assert_eq!(send.to, (send.from + 1) % 4, "{send:?}");
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
    let sends = sends(&run);
    for send in sends.iter().filter(|s| !s.catch_up) {
        assert!(send.from == 0 || send.to == 0, "spoke to spoke: {send:?}");
    }
    for spoke in 1..4 {
        let first = format!("L{spoke}:1");
        let relayed: Vec<usize> =
            sends.iter().filter(|s| s.from == 0 && !s.catch_up && s.dots == [first.clone()]).map(|s| s.to).collect();
        let others: Vec<usize> = (1..4).filter(|&o| o != spoke).collect();
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
    let replicated: Vec<Sent> = sends(&run).into_iter().filter(|s| !s.catch_up).collect();
    assert_eq!(replicated.len(), 6 * 2);
    for send in &replicated {
        assert!(send.dots.iter().all(|dot| origin(dot) == send.from), "forwarded: {send:?}");
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
    assert!(run.trace().has("client", r#"put "k2"="L2.2" at L2: refused: leader L2 is down"#));
    assert!(run.lost_with_leader().is_empty(), "{:?}", run.lost_with_leader());
    // The circle closes around L2: L1 now sends straight to L3, and L2 comes back between them.
    let closed = "rewire live={L0,L1,L3}: died {L2} returned {} added [L1->L3] removed [L1->L2, L2->L3]";
    let reopened = "rewire live={L0,L1,L2,L3}: died {} returned {L2} added [L1->L2, L2->L3] removed [L1->L3]";
    assert!(run.trace().in_order(&[("sup", "declared L2 dead"), ("sup", closed), ("L1", "send -> L3 [L1:4]")]));
    // Restarted empty, L2 catches up from its peers and ends up with everything.
    assert!(run.trace().in_order(&[("L2", "restarted with empty state"), ("sup", reopened), ("L2", "caught up")]));
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
    let failover = rewires(&run, "died {L0}");
    assert_eq!(failover.len(), 1);
    assert!(failover[0].ends_with("hub L0->L1"), "{}", failover[0]);
    assert!(run.trace().in_order(&[("L2", "send -> L1 [L2:4]"), ("L1", "send -> L3 [L2:4]"), ("L3", "apply L2:4")]));
    let back = rewires(&run, "returned {L0}");
    assert_eq!(back.len(), 1);
    assert!(back[0].ends_with("hub L1->L0"), "{}", back[0]);
    assert!(run.trace().in_order(&[("L0", "restarted with empty state"), ("L0", "caught up")]));
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
    assert!(run.trace().has("net", "lost replicate L0->L2 (partitioned)"));
    // L1 and L3 relay each write across the cut link, both ways, and it arrives before the heal.
    let heal = run.trace().position("net", "healed all partitions").expect("healed");
    let sends = sends(&run);
    for (from, to) in [(0, 2), (2, 0)] {
        for seq in 1..=2 {
            let dot = format!("L{from}:{seq}");
            let relayed = sends
                .iter()
                .any(|s| (s.from == 1 || s.from == 3) && s.to == to && !s.catch_up && s.dots == [dot.clone()]);
            assert!(relayed, "nobody relayed {dot} to L{to}");
            let got = [1, 3]
                .iter()
                .filter_map(|relay| run.trace().position(&format!("L{to}"), &format!("recv {dot} <- L{relay}")))
                .min();
            assert!(got.is_some_and(|at| at < heal), "L{to} did not get {dot} through a relay before the heal");
        }
    }
    // Flooding makes copies (L2 gets L0's writes from both L1 and L3); every extra copy is
    // dropped, never applied twice.
    assert!(run.metrics().duplicates_dropped > 0);
    for leader in 0..4 {
        let applies = run.trace().texts_of(&format!("L{leader}")).filter(|t| t.starts_with("apply ")).count();
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
    assert!(run.trace().in_order(&[("client", r#"L1 shows "a"="A""#), ("L1", r#"write L1:1 "b""#)]));
    // B overtook A on the way to L2, which held B back until A arrived.
    assert!(run.trace().in_order(&[("L2", "recv L1:1 <- L1"), ("L2", "wait L1:1 needs [L0:1]"), ("L2", "recv L0:1")]));
    assert_eq!(run.metrics().causal_waits, 1);
    // No leader applied B before A.
    for leader in 0..3 {
        let who = format!("L{leader}");
        assert!(run.trace().in_order(&[(&who, r#"apply L0:1 "a""#), (&who, r#"apply L1:1 "b""#)]), "{who}");
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

fn id(i: usize) -> LeaderId {
    LeaderId::new(i).expect("a valid leader id")
}

/// The supervisor's rewire lines containing `needle`.
fn rewires<'a>(run: &'a SimRun, needle: &'a str) -> Vec<&'a str> {
    run.trace().texts_of("sup").filter(|t| t.starts_with("rewire ") && t.contains(needle)).collect()
}

/// The index of a leader name (`L3` → 3).
fn leader_index(name: &str) -> Option<usize> {
    name.strip_prefix('L').and_then(|n| n.parse().ok())
}

/// The origin of a dot (`L3:7` → 3).
fn origin(dot: &str) -> usize {
    dot.split_once(':').and_then(|(leader, _)| leader_index(leader)).expect("a dot")
}

/// One `send -> L1 [L0:1 …]` or `catch-up -> L1 […]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    from: usize,
    to: usize,
    dots: Vec<String>,
    catch_up: bool,
}

/// Every send and catch-up line, in order.
fn sends(run: &SimRun) -> Vec<Sent> {
    let mut out = Vec::new();
    for line in &run.trace().lines {
        let Some(from) = leader_index(&line.actor.to_string()) else { continue };
        let (catch_up, rest) = match (line.text.strip_prefix("send -> "), line.text.strip_prefix("catch-up -> ")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => continue,
        };
        let (to, dots) = rest.split_once(' ').expect("send lines name a receiver and dots");
        let dots = dots.trim_start_matches('[').trim_end_matches(']').split(' ').map(str::to_owned).collect();
        out.push(Sent { from, to: leader_index(to).expect("a leader name"), dots, catch_up });
    }
    out
}

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
