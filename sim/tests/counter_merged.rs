//! A state-based counter's delta carries its origin's running total: an increment lost with its
//! leader still counts once a later increment of the same leader survives. The checker calls it
//! merged, not lost (issue 10).

use roundtable_actors::Resolution;
use roundtable_runtime::resolution::{CrdtKind, CrdtUpdate, Update};
use roundtable_sim::{ms, FaultEvent, SimRun, Simulation, WriteFate};

fn increment(n: u64) -> Update {
    Update::Crdt(CrdtUpdate::Increment(n))
}

/// L0 adds 1 while cut off (no peer receives it), is reconnected, adds 2 (its delta carries
/// L0's total, 3; peers park it, waiting for the first) and crashes. Restarted, it voids the
/// first write, and the second applies everywhere.
fn lost_then_carried(kind: CrdtKind, second: Update) -> SimRun {
    Simulation::new(1)
        .leaders(3)
        .keyspace("c", Resolution::Crdt(kind))
        .workload(|w| w.update(ms(20), "L0", "c/x", increment(1)).update(ms(30), "L0", "c/x", second))
        .fault(ms(10), FaultEvent::Isolate("L0".into()))
        .fault(ms(29), FaultEvent::Heal("L0".into()))
        .crash_at(ms(31), "L0")
        .restart_at(ms(500), "L0")
        .run()
}

#[test]
fn a_counter_increment_lost_with_its_leader_but_carried_by_a_later_one_is_merged() {
    for kind in [CrdtKind::PnCounter, CrdtKind::GCounter] {
        let run = lost_then_carried(kind, increment(2));
        let (first, second) = (&run.acked()[0], &run.acked()[1]);
        // Not vacuous: the first write was voided, and the value still counts it.
        assert!(run.states().iter().all(|s| s.voided.contains(&first.dot)), "{kind:?}\n{}", run.render());
        assert!(run.render().contains("c/x=3"), "{kind:?}\n{}", run.render());
        assert!(run.lost_with_leader().is_empty(), "{kind:?}: {:?}", run.lost_with_leader());
        assert_eq!(run.merged_into_later(), std::slice::from_ref(first), "{kind:?}");
        assert!(!run.merged_into_later().contains(second));
        let report = run.check();
        assert!(report.passed(), "{kind:?}: {report}");
        assert_eq!(report.fates.get(&WriteFate::Merged), Some(&2), "{kind:?}: {report}");
        assert!(report.lost_with_leader.is_empty(), "{kind:?}: {report}");
    }
}

#[test]
fn a_decrement_does_not_carry_an_increment_nor_an_operation_an_earlier_one() {
    // A PN-counter's decrement delta holds only the origin's decrements.
    let run = lost_then_carried(CrdtKind::PnCounter, Update::Crdt(CrdtUpdate::Decrement(2)));
    assert_eq!(run.lost_with_leader(), std::slice::from_ref(&run.acked()[0]), "{}", run.render());
    assert!(run.merged_into_later().is_empty());
    // An operation-based counter ships each operation alone.
    let run = lost_then_carried(CrdtKind::OpCounter, increment(2));
    assert_eq!(run.lost_with_leader(), std::slice::from_ref(&run.acked()[0]), "{}", run.render());
    let report = run.check();
    assert!(report.passed(), "{report}");
    assert_eq!(report.fates.get(&WriteFate::LostWithLeader), Some(&1), "{report}");
}
