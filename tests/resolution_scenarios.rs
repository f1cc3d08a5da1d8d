//! Conflict-resolution scenarios, one story per strategy: build a [`Simulation`] with the
//! keyspace under test, run it, check the decision the scenario is about in the trace and the
//! value every leader ends with, then snapshot the whole run with [`assert_trace!`] (files in the
//! top-level `snapshots/`).
//!
//! - last-write-wins with a leader 400 ms fast, without and with NTP-style clock sync;
//! - a leader whose clock is years ahead: its entry is rejected by everyone else;
//! - siblings kept for two concurrent writes, then resolved by a write with their context;
//! - an operation-based counter that stays exact when 20% of the messages are duplicated;
//! - an OR-set with a concurrent add and remove of one element: the add wins;
//! - home-leader keys: concurrent writers never conflict, and the home fails over.
//!
//! Every scenario is a plain `fn() -> SimRun` listed in [`SCENARIOS`], so that
//! [`every_resolution_scenario_replays_byte_for_byte`] runs each one twice and compares the
//! renderings. When a snapshot changes: `cargo test --test resolution_scenarios`, then read
//! `snapshots/<name>.snap.new` against `<name>.snap` and accept it only if the new trace still
//! tells a correct story.

use roundtable::actors::{CrdtKind, CrdtUpdate, Resolution, Update};
use roundtable::assert_trace;
use roundtable::runtime::topologies::rendezvous_home;
use roundtable::runtime::{LeaderId, LeaderSet, Value};
use roundtable_sim::{ms, ClockSyncConfig, NetworkModel, SimRun, Simulation};

/// A scenario: builds and runs one simulation.
type Scenario = fn() -> SimRun;

/// Every scenario, by snapshot name.
const SCENARIOS: &[(&str, Scenario)] = &[
    ("lww_skewed_clock_without_ntp", lww_skewed_clock_without_ntp_run),
    ("lww_skewed_clock_with_ntp", lww_skewed_clock_with_ntp_run),
    ("lww_far_future_timestamp", lww_far_future_timestamp_run),
    ("siblings_created_then_resolved", siblings_created_then_resolved_run),
    ("op_counter_exact_under_duplication", op_counter_exact_under_duplication_run),
    ("or_set_concurrent_add_and_remove", or_set_concurrent_add_and_remove_run),
    ("home_leader_failover", home_leader_failover_run),
];

// ----- last-write-wins and clocks ---------------------------------------------------------------

/// L1's clock is this far ahead of true time: under `max_offset` (500 ms), so nobody refuses it.
const FAST_NS: i64 = 400_000_000;
/// L1 sets the price first ...
const FIRST: &str = "9.99 set at L1";
/// ... and L0 corrects it 10 ms later in true time, before L1's write has reached it.
const CORRECTION: &str = "12.50 set at L0 10 ms later";

/// Three leaders on a WAN, L1 400 ms fast; two concurrent writes of `price`, 10 ms apart.
fn lww_skewed_clock(clock_sync: bool) -> SimRun {
    let sim = Simulation::new(1)
        .leaders(3)
        .network(NetworkModel::wan())
        .clock("L1", FAST_NS, 0)
        .workload(|w| w.put(ms(100), "L1", "price", FIRST).put(ms(110), "L0", "price", CORRECTION));
    if clock_sync {
        sim.clock_sync(ClockSyncConfig::default()).run()
    } else {
        sim.run()
    }
}

fn lww_skewed_clock_without_ntp_run() -> SimRun {
    lww_skewed_clock(false)
}

#[test]
fn lww_skewed_clock_without_ntp() {
    let run = lww_skewed_clock_without_ntp_run();
    run.assert_converged();
    // L1 stamps its write 400 ms in the future; L0 stamps the correction at true time.
    assert!(run.trace().has("L1", r#"write L1:1 "price" hlc=1767225600.5"#));
    assert!(run.trace().has("L0", r#"write L0:1 "price" hlc=1767225600.1"#));
    // So every leader keeps the fast leader's earlier write and discards the correction.
    for leader in ["L0", "L1", "L2"] {
        assert!(run.trace().has(leader, r#"lww "price" kept L1:1 discarded L0:1"#), "{leader}");
        assert_eq!(value(&run, leader, "price").as_deref(), Some(FIRST), "{leader}");
    }
    // One conflict: decided at each of the three leaders, one write discarded.
    assert_eq!(run.metrics().lww_decisions, 3);
    assert_eq!(run.metrics().lww_discarded, 1);
    assert_eq!(run.metrics().rejected, 0);
    assert_trace!("lww_skewed_clock_without_ntp", run);
}

fn lww_skewed_clock_with_ntp_run() -> SimRun {
    lww_skewed_clock(true)
}

#[test]
fn lww_skewed_clock_with_ntp() {
    let run = lww_skewed_clock_with_ntp_run();
    run.assert_converged();
    // L1's first sample steps its clock back before it stamps anything: both stamps follow
    // true time (to within the few ms the sample could not measure).
    assert!(run.trace().in_order(&[("L1", "clock stepped by -39"), ("L1", r#"write L1:1 "price" hlc=1767225600.10"#)]));
    assert!(run.trace().has("L0", r#"write L0:1 "price" hlc=1767225600.11"#));
    // So the correction, the later write in true time, wins everywhere.
    for leader in ["L0", "L1", "L2"] {
        assert!(run.trace().has(leader, r#"lww "price" kept L0:1 discarded L1:1"#), "{leader}");
        assert_eq!(value(&run, leader, "price").as_deref(), Some(CORRECTION), "{leader}");
    }
    // One conflict: decided at each of the three leaders, one write discarded.
    assert_eq!(run.metrics().lww_decisions, 3);
    assert_eq!(run.metrics().lww_discarded, 1);
    assert_eq!(run.metrics().rejected, 0);
    assert_trace!("lww_skewed_clock_with_ntp", run);
}

/// L1's clock is three years fast (a dead RTC battery); no clock sync. Its peers refuse and
/// quarantine its write, the supervisor fences it, and it rejoins from the healthy leaders.
fn lww_far_future_timestamp_run() -> SimRun {
    Simulation::new(1)
        .leaders(3)
        .network(NetworkModel::lan())
        .clock("L1", 3 * 365 * 86_400 * 1_000_000_000, 0)
        .max_duration(ms(3_000))
        .workload(|w| w.put(ms(100), "L1", "price", "from the future").put(ms(200), "L0", "price", "now"))
        .run()
}

#[test]
fn lww_far_future_timestamp() {
    let run = lww_far_future_timestamp_run();
    let l1 = LeaderId::new(1).expect("id");
    let future = run.acked().iter().find(|a| a.leader == l1).expect("L1's write was acknowledged").dot;
    assert!(run.trace().has("L1", r#"write L1:1 "price" hlc=1861833600.0"#));
    // Every other leader refuses the entry, counts it, quarantines it and never applies it, so
    // its clock is not dragged years ahead either.
    for leader in [0, 2] {
        let who = format!("L{leader}");
        let rejects =
            run.trace().texts_of(&who).filter(|t| t.starts_with("reject <- L1: entry L1:1 is stamped 94607")).count();
        assert_eq!(rejects, 1, "{who}");
        assert_eq!(run.states()[leader].metrics.timestamps_rejected, 1, "{who}");
        assert!(!run.trace().has(&who, "apply L1:1"), "{who} applied the far-future entry");
        assert!(!run.states()[leader].applied.contains(future), "{who}");
        assert_eq!(run.states()[leader].quarantined.iter().map(|q| q.dot).collect::<Vec<_>>(), vec![future]);
    }
    // The supervisor fences L1, which rejoins: its state, shaped by its clock, is rebuilt from
    // the healthy leaders, and it refuses writes until its clock is synchronised.
    assert!(run.trace().in_order(&[
        ("sup", "fence L1: its timestamps run 94607"),
        ("L1", "rejoining"),
        ("L1", "fenced by the cluster")
    ]));
    assert!(run.trace().has("L0", r#"write L0:1 "price" hlc=1767225600.19"#));
    // Nobody holds the far-future write; it is listed in the quarantine, not silently lost.
    run.assert_converged();
    for leader in 0..3 {
        assert_eq!(value(&run, &format!("L{leader}"), "price").as_deref(), Some("now"));
    }
    assert_trace!("lww_far_future_timestamp", run);
}

// ----- siblings ---------------------------------------------------------------------------------

fn siblings_created_then_resolved_run() -> SimRun {
    Simulation::new(1)
        .leaders(3)
        .network(NetworkModel::wan())
        .keyspace("doc", Resolution::Siblings { max_siblings: 8 })
        .workload(|w| {
            w.put(ms(0), "L0", "doc/readme", "by L0").put(ms(0), "L1", "doc/readme", "by L1").resolve_siblings(
                ms(500),
                "L2",
                "doc/readme",
                "merged by L2",
            )
        })
        .run()
}

#[test]
fn siblings_created_then_resolved() {
    let run = siblings_created_then_resolved_run();
    run.assert_converged();
    // The two concurrent writes are both kept, at every leader; nothing is discarded.
    for leader in ["L0", "L1", "L2"] {
        assert!(run.trace().has(leader, r#"siblings "doc/readme" [L0:1 L1:1]"#), "{leader}");
    }
    assert_eq!(run.metrics().lww_discarded, 0);
    // L2 reads both and writes the merge with their context: it replaces exactly them.
    assert!(run.trace().in_order(&[
        ("L2", r#"siblings "doc/readme" [L0:1 L1:1]"#),
        ("client", r#"L2 read "doc/readme": siblings [L0:1 L1:1]"#),
        ("client", r#"put "doc/readme"="merged by L2" over the siblings read at L2: ok L2:1"#),
    ]));
    // The merge made no new sibling: the three `siblings` lines are the concurrent writes'.
    assert_eq!(run.trace().matching("siblings \"doc/readme\"").count(), 3);
    for leader in ["L0", "L1", "L2"] {
        assert_eq!(resolved(&run, leader, "doc/readme").as_deref(), Some(r#"[L2:1="merged by L2"]"#), "{leader}");
    }
    assert_trace!("siblings_created_then_resolved", run);
}

// ----- CRDTs ------------------------------------------------------------------------------------

/// The counter's workload: (at ms, leader, change). Every leader adds 10, then its own index + 1;
/// L1 takes 3 away.
const COUNTER_OPS: &[(u64, &str, i64)] = &[
    (0, "L0", 10),
    (1, "L1", 10),
    (2, "L2", 10),
    (3, "L3", 10),
    (20, "L0", 1),
    (21, "L1", 2),
    (22, "L2", 3),
    (23, "L3", 4),
    (40, "L1", -3),
];

fn op_counter_exact_under_duplication_run() -> SimRun {
    Simulation::new(1)
        .leaders(4)
        .network(NetworkModel::wan().duplicate_rate(0.2))
        .keyspace("hits", Resolution::Crdt(CrdtKind::OpCounter))
        .workload(|w| {
            COUNTER_OPS.iter().fold(w, |w, &(at_ms, leader, change)| {
                let update = if change >= 0 {
                    CrdtUpdate::Increment(change.unsigned_abs())
                } else {
                    CrdtUpdate::Decrement(change.unsigned_abs())
                };
                w.update(ms(at_ms), leader, "hits/home", Update::Crdt(update))
            })
        })
        .run()
}

#[test]
fn op_counter_exact_under_duplication() {
    let run = op_counter_exact_under_duplication_run();
    run.assert_converged();
    assert_eq!(run.acked().len(), COUNTER_OPS.len());
    // The network duplicated messages, and every copy was dropped ...
    let duplicated = run.metrics().network.duplicated;
    assert!(duplicated > 0);
    assert_eq!(run.metrics().duplicates_dropped, duplicated);
    // ... so every leader applied each operation exactly once ...
    for leader in ["L0", "L1", "L2", "L3"] {
        let mut applied: Vec<&str> = run.trace().texts_of(leader).filter(|t| t.starts_with("apply ")).collect();
        applied.sort_unstable();
        applied.dedup();
        assert_eq!(applied.len(), COUNTER_OPS.len(), "{leader}");
        assert_eq!(
            run.trace().texts_of(leader).filter(|t| t.starts_with("apply ")).count(),
            COUNTER_OPS.len(),
            "{leader}"
        );
    }
    // ... and holds exactly the sum of the operations.
    let sum: i64 = COUNTER_OPS.iter().map(|&(_, _, change)| change).sum();
    for leader in ["L0", "L1", "L2", "L3"] {
        assert_eq!(resolved(&run, leader, "hits/home"), Some(sum.to_string()), "{leader}");
    }
    assert_trace!("op_counter_exact_under_duplication", run);
}

fn or_set_concurrent_add_and_remove_run() -> SimRun {
    let add = |v: &str| Update::Crdt(CrdtUpdate::Add(value_of(v)));
    let remove = |v: &str| Update::Crdt(CrdtUpdate::Remove(value_of(v)));
    Simulation::new(1)
        .leaders(3)
        .network(NetworkModel::wan())
        .keyspace("cart", Resolution::Crdt(CrdtKind::OrSet))
        .workload(|w| {
            // The cart holds a book and a pen everywhere by 500 ms; then, in the same
            // millisecond, L0 adds the book again while L1 removes both.
            w.update(ms(0), "L0", "cart/ada", add("book"))
                .update(ms(0), "L2", "cart/ada", add("pen"))
                .update(ms(500), "L0", "cart/ada", add("book"))
                .update(ms(500), "L1", "cart/ada", remove("book"))
                .update(ms(500), "L1", "cart/ada", remove("pen"))
        })
        .run()
}

#[test]
fn or_set_concurrent_add_and_remove() {
    let run = or_set_concurrent_add_and_remove_run();
    run.assert_converged();
    // The add (L0:2) and the remove (L1:1) are concurrent: each was made before the other arrived.
    assert!(run.trace().in_order(&[
        ("L0", "write L0:2"),
        ("L1", "write L1:1"),
        ("L1", "recv L0:2"),
        ("L0", "recv L1:1")
    ]));
    assert!(run.trace().position("L1", "recv L0:2") > run.trace().position("L1", "write L1:2"));
    // Add wins for the book; the pen, removed with nothing concurrent, is gone.
    for leader in ["L0", "L1", "L2"] {
        assert_eq!(resolved(&run, leader, "cart/ada").as_deref(), Some(r#"{"book"}"#), "{leader}");
    }
    assert_trace!("or_set_concurrent_add_and_remove", run);
}

// ----- conflict avoidance -----------------------------------------------------------------------

/// The timings of `home_leader_keys_never_conflict_and_move_when_the_home_dies` in
/// `actors/tests/simulation.rs`, in a named keyspace: every leader writes the key at once, the
/// home crashes at 300 ms, and the two survivors write again at 1.2 s.
fn home_leader_failover_run() -> SimRun {
    let (home, next) = homes();
    let others = [next, LeaderId::range(3).find(|id| *id != home && *id != next).expect("a third leader")];
    Simulation::new(21)
        .leaders(3)
        .network(NetworkModel::wan())
        .keyspace("user", Resolution::HomeLeader)
        .workload(|w| {
            let w = LeaderId::range(3).fold(w, |w, id| w.put(ms(0), id, "user/ada", &format!("v{}", id.index())));
            others.iter().fold(w, |w, &id| w.put(ms(1_200), id, "user/ada", &format!("late at {id}")))
        })
        .crash_at(ms(300), home)
        .run()
}

/// The home of `user/ada` among all three leaders, and after it dies.
fn homes() -> (LeaderId, LeaderId) {
    let all = LeaderSet::first(3);
    let home = rendezvous_home(b"user/ada", all).expect("someone is home");
    let next = rendezvous_home(b"user/ada", all.without(home)).expect("someone is home");
    (home, next)
}

#[test]
fn home_leader_failover() {
    let run = home_leader_failover_run();
    run.assert_converged();
    let (home, next) = homes();
    // Three concurrent writers, but every write was made at the home, one after the other:
    // no conflict decision anywhere in the run.
    assert!(run.trace().lines.iter().all(|l| !l.text.starts_with("lww ")));
    assert_eq!(run.metrics().lww_discarded, 0);
    assert_eq!(run.trace().matching(&format!("to its home {home}")).count(), 2);
    let (before, after): (Vec<_>, Vec<_>) = run.acked().iter().partition(|a| a.at < ms(300));
    assert_eq!((before.len(), after.len()), (3, 2));
    assert!(before.iter().all(|a| a.dot.origin == home), "{before:?}");
    // The home dies; the next one by rendezvous hashing takes the key over.
    let dead = format!("declared {home} dead");
    assert!(run.trace().in_order(&[("sup", dead.as_str()), ("client", "late at")]));
    assert_eq!(run.trace().matching(&format!("to its home {next}")).count(), 1);
    assert!(after.iter().all(|a| a.dot.origin == next), "{after:?}");
    assert!(run.lost_with_leader().is_empty(), "{:?}", run.lost_with_leader());
    assert_trace!("home_leader_failover", run);
}

// ----- determinism ------------------------------------------------------------------------------

#[test]
fn every_resolution_scenario_replays_byte_for_byte() {
    for (name, scenario) in SCENARIOS {
        let (first, second) = (scenario().render(), scenario().render());
        assert!(first == second, "{name}: two runs of the same seed differ");
    }
}

// ----- reading runs -----------------------------------------------------------------------------

fn value_of(text: &str) -> Value {
    Value::try_from(text).expect("a valid value")
}

/// The final value of `key` (a last-write-wins or home-leader key) at leader `who`.
fn value(run: &SimRun, who: &str, key: &str) -> Option<String> {
    let state = run.states().iter().find(|s| s.name == who)?;
    let (_, register) = state.store.iter().find(|(k, _)| k.as_str() == key)?;
    register.value.as_ref().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// What a reader of `key` (a siblings or CRDT key) sees at leader `who`, as the final state
/// renders it.
fn resolved(run: &SimRun, who: &str, key: &str) -> Option<String> {
    let state = run.states().iter().find(|s| s.name == who)?;
    state.resolved.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v.to_string())
}
