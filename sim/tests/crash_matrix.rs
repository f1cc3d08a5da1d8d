//! In a 5-leader cluster, for every topology and every choice of crashed leader (circle: each;
//! star: the hub and an outer leader; all-to-all: each), every write acknowledged by a leader
//! that stayed alive, and every write the crashed leader had already passed to a live one, is on
//! every live leader after settling; the restarted leader converges to the same state.

use roundtable_actors::trace::Event;
use roundtable_runtime::{LeaderId, Topology, TraceEvent};
use roundtable_sim::{ms, NetworkModel, SimRun, Simulation};

const SEEDS: [u64; 3] = [1, 2, 3];
const RESTART: std::time::Duration = ms(1_500);

fn run(topology: &Topology, victim: LeaderId, seed: u64) -> SimRun {
    Simulation::new(seed)
        .leaders(5)
        .topology(topology.clone())
        .network(NetworkModel::wan().drop_rate(0.05).duplicate_rate(0.02).reorder_rate(0.1))
        .workload(|w| {
            LeaderId::range(5)
                .fold(w.puts_per_leader(4), |w, id| w.put(ms(3_000), id, &format!("after{}", id.index()), "x"))
        })
        .crash_at(ms(25), victim)
        .restart_at(RESTART, victim)
        .run()
}

fn check(topology: &Topology, victim: LeaderId, seed: u64) {
    let run = run(topology, victim, seed);
    let context = format!("{topology}, {victim} crashed, seed {seed}");
    if let Err(why) = run.check_converged() {
        panic!("{context}: {why}\n{}", run.render());
    }
    let final_vv = run.converged_vv();
    let trace = run.trace();
    for write in run.acked() {
        // Passed on: a live leader received it before the crashed leader came back (after the
        // restart, a void under the same dot may arrive, which is not the write).
        let passed_on = trace.records.iter().any(|r| {
            r.at < RESTART
                && matches!(
                    (&r.actor, &r.event),
                    (roundtable_actors::TraceActor::Leader(at), Event::Replica(TraceEvent::Received { dot, .. }))
                        if *at != victim && *dot == write.dot
                )
        });
        let survived = write.leader != victim || passed_on;
        if survived {
            assert!(
                final_vv.contains(write.dot) && run.states().iter().all(|s| !s.voided.contains(&write.dot)),
                "{context}: acknowledged write {} ({:?}) is not on every live leader\n{}",
                write.dot,
                write.key,
                run.render()
            );
        }
    }
    // The restarted leader is up, live and equal to the others (check_converged compared them).
    assert!(run.states().iter().all(|s| s.up), "{context}");
    assert!(run.live().contains(victim), "{context}");
}

#[test]
fn circle_survives_any_crashed_leader() {
    for victim in LeaderId::range(5) {
        for seed in SEEDS {
            check(&Topology::Circle, victim, seed);
        }
    }
}

#[test]
fn star_survives_its_hub_or_an_outer_leader_crashing() {
    let hub = LeaderId::new(0).expect("id");
    let star = Topology::Star { hub };
    for victim in [hub, LeaderId::new(2).expect("id")] {
        for seed in SEEDS {
            check(&star, victim, seed);
        }
    }
}

#[test]
fn all_to_all_survives_any_crashed_leader() {
    for relay in [false, true] {
        for victim in LeaderId::range(5) {
            for seed in SEEDS {
                check(&Topology::AllToAll { relay }, victim, seed);
            }
        }
    }
}
