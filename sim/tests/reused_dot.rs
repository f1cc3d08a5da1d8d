//! A restarted leader issues again the sequence number of a write that died with it (no peer
//! received it). Writes are identified by dot *and* stamp: the later write under the reused dot
//! is held and visible, and only the earlier one is lost with its leader (issue 10).

use roundtable_sim::{ms, FaultEvent, SimRun, Simulation, WriteFate};

/// L0 writes `a` (replicated), is cut off, writes `b`=old (acknowledged, received by no one),
/// crashes, is reconnected and restarted, and once recovered writes `b`=new under the dot `b`=old
/// had.
fn reuse() -> SimRun {
    Simulation::new(1)
        .leaders(3)
        .workload(|w| w.put(ms(10), "L0", "a", "1").put(ms(50), "L0", "b", "old").put(ms(4_000), "L0", "b", "new"))
        .fault(ms(40), FaultEvent::Isolate("L0".into()))
        .crash_at(ms(60), "L0")
        .fault(ms(70), FaultEvent::Heal("L0".into()))
        .restart_at(ms(500), "L0")
        .run()
}

#[test]
fn a_write_under_a_reused_dot_is_held_and_only_the_dead_one_is_lost_with_its_leader() {
    let run = reuse();
    let acked = run.acked();
    let old = acked.iter().find(|a| a.value.as_deref() == Some("old")).expect("b=old acknowledged");
    let new = acked.iter().find(|a| a.value.as_deref() == Some("new")).expect("b=new acknowledged");
    // Not vacuous: the dot really was issued twice, with two stamps.
    assert_eq!(old.dot, new.dot, "the restarted leader did not reuse the dot\n{}", run.render());
    assert_ne!(old.hlc, new.hlc);

    assert_eq!(run.lost_with_leader(), std::slice::from_ref(old), "\n{}", run.render());
    let report = run.check();
    assert!(report.passed(), "{report}\n{}", run.render());
    assert_eq!(report.lost_with_leader, vec![old.clone()]);
    assert_eq!(report.fates.get(&WriteFate::Visible), Some(&2), "{report}");
    assert_eq!(report.fates.get(&WriteFate::LostWithLeader), Some(&1), "{report}");
    run.assert_converged();
}
