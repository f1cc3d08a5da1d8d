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

mod queries;
use queries::{applied, dot, fenced_by_cluster, fencing, id, lww, received, rejoining, siblings, stamp_ms, wrote};
use roundtable::actors::trace::{ClientEvent, Event, Record};
use roundtable::runtime::clock::CorrectionEvent;
use roundtable::runtime::{Rejection, TraceEvent};

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
    let trace = run.trace();
    assert!((500..600).contains(&stamp_ms(trace, dot(1, 1))), "{}", stamp_ms(trace, dot(1, 1)));
    assert!((100..200).contains(&stamp_ms(trace, dot(0, 1))), "{}", stamp_ms(trace, dot(0, 1)));
    // So every leader keeps the fast leader's earlier write and discards the correction.
    for (i, leader) in ["L0", "L1", "L2"].into_iter().enumerate() {
        assert!(trace.position(lww(i, "price", dot(1, 1), dot(0, 1))).is_some(), "{leader}");
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
    let trace = run.trace();
    let stepped_back = |r: &Record| {
        matches!(r.replica(id(1)), Some(TraceEvent::ClockCorrected(CorrectionEvent::Stepped { by_ns }))
            if (-FAST_NS..-FAST_NS + 10_000_000).contains(by_ns))
    };
    assert!(trace.in_order(&[&stepped_back, &wrote(1, dot(1, 1))]));
    assert!((100..110).contains(&stamp_ms(trace, dot(1, 1))), "{}", stamp_ms(trace, dot(1, 1)));
    assert!((110..120).contains(&stamp_ms(trace, dot(0, 1))), "{}", stamp_ms(trace, dot(0, 1)));
    // So the correction, the later write in true time, wins everywhere.
    for (i, leader) in ["L0", "L1", "L2"].into_iter().enumerate() {
        assert!(trace.position(lww(i, "price", dot(0, 1), dot(1, 1))).is_some(), "{leader}");
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
    let future = run.acked().iter().find(|a| a.leader == id(1)).expect("L1's write was acknowledged").dot;
    let trace = run.trace();
    // Three years (94,608,000 s) ahead, at 0 ms true time.
    const THREE_YEARS_MS: u64 = 3 * 365 * 86_400 * 1_000;
    assert!((THREE_YEARS_MS..THREE_YEARS_MS + 100).contains(&stamp_ms(trace, dot(1, 1))));
    // Every other leader refuses the entry, counts it, quarantines it and never applies it, so
    // its clock is not dragged years ahead either.
    for leader in [0, 2] {
        let who = format!("L{leader}");
        let rejects = trace.count(|r| {
            matches!(r.replica(id(leader)), Some(TraceEvent::Rejected {
                from,
                reason: Rejection::TimestampTooFarAhead { dot: d, ahead_by, .. },
            }) if *from == id(1) && *d == dot(1, 1) && ahead_by.as_secs() >= 94_607_000)
        });
        assert_eq!(rejects, 1, "{who}");
        assert_eq!(run.states()[leader].metrics.timestamps_rejected, 1, "{who}");
        assert!(trace.position(applied(leader, dot(1, 1))).is_none(), "{who} applied the far-future entry");
        assert!(!run.states()[leader].applied.contains(future), "{who}");
        assert_eq!(run.states()[leader].quarantined.iter().map(|q| q.dot).collect::<Vec<_>>(), vec![future]);
    }
    // The supervisor fences L1, which rejoins: its state, shaped by its clock, is rebuilt from
    // the healthy leaders, and it refuses writes until its clock is synchronised.
    assert!(trace.in_order(&[&fencing(1, 94_607_000), &rejoining(1), &fenced_by_cluster(1)]));
    assert!((190..200).contains(&stamp_ms(trace, dot(0, 1))), "{}", stamp_ms(trace, dot(0, 1)));
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
    let (trace, both) = (run.trace(), [dot(0, 1), dot(1, 1)]);
    for (i, leader) in ["L0", "L1", "L2"].into_iter().enumerate() {
        assert!(trace.position(siblings(i, "doc/readme", &both)).is_some(), "{leader}");
    }
    assert_eq!(run.metrics().lww_discarded, 0);
    // L2 reads both and writes the merge with their context: it replaces exactly them.
    let read_both = |r: &Record| {
        matches!(&r.event, Event::Client(ClientEvent::ReadSiblings { leader, key, dots })
            if *leader == id(2) && key == "doc/readme" && *dots == both)
    };
    let merged = |r: &Record| {
        matches!(&r.event, Event::Client(ClientEvent::Wrote { leader, op, outcome: Ok(d) })
            if *leader == id(2) && op.contains("merged by L2") && *d == dot(2, 1))
    };
    assert!(trace.in_order(&[&siblings(2, "doc/readme", &both), &read_both, &merged]));
    // The merge made no new sibling: the three `Siblings` events are the concurrent writes'.
    let siblings_events = trace
        .leader_events()
        .filter(|(_, e)| matches!(e, TraceEvent::Siblings { key, .. } if key.as_str() == "doc/readme"));
    assert_eq!(siblings_events.count(), 3);
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
    for leader in 0..4 {
        let applies = queries::applies(run.trace(), leader);
        let distinct: std::collections::BTreeSet<_> = applies.iter().collect();
        assert_eq!(distinct.len(), COUNTER_OPS.len(), "L{leader}");
        assert_eq!(applies.len(), COUNTER_OPS.len(), "L{leader}");
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
    let trace = run.trace();
    let (add, remove_book, remove_pen) = (dot(0, 2), dot(1, 1), dot(1, 2));
    assert!(trace.in_order(&[
        &wrote(0, add),
        &wrote(1, remove_book),
        &received(1, add, None),
        &received(0, remove_book, None)
    ]));
    assert!(trace.position(received(1, add, None)) > trace.position(wrote(1, remove_pen)));
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
    let trace = run.trace();
    assert!(trace.leader_events().all(|(_, e)| !matches!(e, TraceEvent::LwwDiscarded { .. })));
    assert_eq!(run.metrics().lww_discarded, 0);
    let routed_to = |to: LeaderId| {
        trace.leader_events().filter(|(_, e)| matches!(e, TraceEvent::RoutedToHome { home, .. } if *home == to)).count()
    };
    assert_eq!(routed_to(home), 2);
    let (before, after): (Vec<_>, Vec<_>) = run.acked().iter().partition(|a| a.at < ms(300));
    assert_eq!((before.len(), after.len()), (3, 2));
    assert!(before.iter().all(|a| a.dot.origin == home), "{before:?}");
    // The home dies; the next one by rendezvous hashing takes the key over.
    let late = |r: &Record| matches!(&r.event, Event::Client(ClientEvent::Wrote { op, .. }) if op.contains("late at"));
    assert!(trace.in_order(&[&queries::declared_dead(home.index()), &late]));
    assert_eq!(routed_to(next), 1);
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

// ----- the trace as data ------------------------------------------------------------------------

/// The trace is data: saved as JSON (what `roundtable sim --trace-out` writes) it reads back as
/// the same records, renders the same text and gives the checker the same marks — rejections,
/// fencing, quarantine and client refusals included.
#[test]
fn a_trace_saved_as_json_reads_back_the_same() {
    let run = lww_far_future_timestamp_run();
    let trace = run.trace();
    assert!(trace.leader_events().any(|(_, e)| matches!(e, TraceEvent::Rejected { .. })));
    let json = serde_json::to_string(trace).expect("a trace serialises");
    let back: roundtable::actors::Trace = serde_json::from_str(&json).expect("and deserialises");
    assert_eq!(&back, trace);
    assert_eq!(back.render(), trace.render());
    assert_eq!(back.marks(), trace.marks());
}
