//! A simulation names its leaders as a cluster does: by name (`"L2"`) or by `LeaderId`. Both
//! run the same simulation, and a leader the cluster does not have is an error, not a panic.

use roundtable_runtime::{LeaderId, LeaderSet};
use roundtable_sim::{ms, FaultEvent, LeaderRef, NetworkModel, SimError, Simulation};

fn id(i: usize) -> LeaderId {
    LeaderId::new(i).expect("a valid leader id")
}

/// Three leaders on a LAN, L1 fast; L1 is cut off, heals, crashes and restarts; every kind of
/// client operation; the leaders named by `name`.
fn scenario(name: impl Fn(usize) -> LeaderRef) -> Simulation {
    Simulation::new(5)
        .leaders(3)
        .network(NetworkModel::lan())
        .clock(name(1), 30_000_000, 10)
        .workload(|w| {
            w.put(ms(0), name(0), "a", "A")
                .put_after_seeing(ms(0), name(2), ("b", "B after A"), ("a", "A"))
                .get(ms(60), name(1), "a")
                .delete(ms(300), name(2), "a")
                .put(ms(900), name(1), "c", "C")
        })
        .fault(ms(50), FaultEvent::Isolate(name(1)))
        .fault(ms(100), FaultEvent::Partition(LeaderSet::single(id(0)), LeaderSet::single(id(2))))
        .fault(ms(200), FaultEvent::Heal(name(1)))
        .fault(ms(250), FaultEvent::HealAll)
        .crash_at(ms(400), name(1))
        .restart_at(ms(700), name(1))
}

#[test]
fn a_name_and_the_equivalent_leader_id_give_the_same_trace() {
    let by_name = scenario(|i| format!("L{i}").into()).run();
    let by_id = scenario(|i| id(i).into()).run();
    by_name.assert_converged();
    let rendered = by_name.render();
    assert_eq!(rendered, by_id.render());
    // Faults show as they always have: the leader by its index.
    for fault in [
        "client fault: Isolate(1)",
        "client fault: Partition({L0}, {L2})",
        "client fault: Heal(1)",
        "client fault: HealAll",
        "client fault: Crash(1)",
        "client fault: Restart(1)",
    ] {
        assert!(rendered.contains(fault), "{fault} missing from\n{rendered}");
    }
    assert!(rendered.contains("clocks: L1 offset +30.000ms drift +10ppm"), "{rendered}");
}

fn invalid(sim: Simulation) -> String {
    match sim.try_run() {
        Err(SimError::Invalid(why)) => why,
        Err(other) => panic!("expected SimError::Invalid, got {other}"),
        Ok(_) => panic!("expected SimError::Invalid, the simulation ran"),
    }
}

#[test]
fn an_unknown_leader_name_in_a_workload_is_invalid_not_a_panic() {
    let why = invalid(
        Simulation::new(1).leaders(3).workload(|w| w.put(ms(10), "L0", "a", "1").put(ms(20), "us-east", "k", "v")),
    );
    assert_eq!(
        why,
        r#"the client operation at 20ms names leader "us-east", which is not one of the 3 leaders (L0 L1 L2)"#
    );
}

#[test]
fn an_unknown_leader_in_a_fault_is_invalid_not_a_panic() {
    let why = invalid(Simulation::new(1).leaders(3).crash_at(ms(40), "L3"));
    assert_eq!(why, r#"the fault at 40ms names leader "L3", which is not one of the 3 leaders (L0 L1 L2)"#);
    let why = invalid(Simulation::new(1).leaders(2).fault(ms(5), FaultEvent::Isolate(id(2).into())));
    assert_eq!(why, "the fault at 5ms names leader L2, which is not one of the 2 leaders (L0 L1)");
    let beyond = FaultEvent::Partition(LeaderSet::single(id(0)), LeaderSet::single(id(4)));
    let why = invalid(Simulation::new(1).leaders(3).fault(ms(0), beyond));
    assert_eq!(why, "the fault at 0ms partitions {L0} from {L4}, which names {L4}, not among the 3 leaders (L0 L1 L2)");
}

#[test]
fn a_clock_for_an_unknown_leader_is_invalid_not_a_panic() {
    let why = invalid(Simulation::new(1).leaders(2).clock("L1", 1_000, 0).clock(id(63), 1_000, 0));
    assert_eq!(why, "a clock skew names leader L63, which is not one of the 2 leaders (L0 L1)");
    // Resolved when it runs: a clock given before the leaders is fine.
    let run = Simulation::new(1).clock("L4", 1_000_000, 0).leaders(5).try_run().expect("L4 exists by then");
    assert!(run.render().contains("clocks: L4 offset +1.000ms drift +0ppm"), "{}", run.render());
}

#[test]
fn a_fault_displays_its_leader_by_index_once_resolved_and_by_quoted_name_before() {
    assert_eq!(FaultEvent::Crash(id(2).into()).to_string(), "Crash(2)");
    assert_eq!(FaultEvent::Restart("us-east".into()).to_string(), r#"Restart("us-east")"#);
    assert_eq!(
        FaultEvent::Partition(LeaderSet::first(2), LeaderSet::single(id(3))).to_string(),
        "Partition({L0,L1}, {L3})"
    );
    assert_eq!(FaultEvent::HealAll.to_string(), "HealAll");
}
