//! The simulator's knobs, each shown to matter: clock skew, isolation, automatic restarts, and
//! replay from a seed.

use roundtable_actors::SupervisorConfig;
use roundtable_runtime::Topology;
use roundtable_sim::{ms, FaultEvent, NetworkModel, Simulation};

#[test]
fn a_leader_two_seconds_fast_is_refused_quarantined_fenced_and_rejoins() {
    let run = Simulation::new(3)
        .leaders(3)
        .network(NetworkModel::lan())
        .clock("L1", 2_000_000_000, 0)
        .workload(|w| w.put(ms(0), "L1", "k", "from the future").put(ms(5), "L0", "j", "now"))
        .run();
    let trace = run.trace().render();
    // Each peer refuses the entry, counts it, traces it and quarantines it ...
    assert!(trace.contains("L0     reject <- L1: entry L1:1 is stamped 1.999s ahead"), "{trace}");
    assert!(trace.contains("L2     reject <- L1: entry L1:1 is stamped 1.999s ahead"), "{trace}");
    assert_eq!(run.metrics().rejected, 2);
    // ... the supervisor fences L1, which rejoins from the healthy leaders ...
    let fence = trace.find("sup    fence L1: its timestamps run 1.999s ahead").expect("fenced");
    assert!(trace[fence..].contains("L1     rejoining"), "{trace}");
    // ... so the far-future write is applied nowhere — not even at L1 any more — and listed.
    run.assert_converged();
    let l1 = roundtable_runtime::LeaderId::new(1).expect("id");
    let dot = run.acked().iter().find(|a| a.leader == l1).expect("acknowledged").dot;
    assert!(run.states().iter().all(|s| !s.applied.contains(dot)));
    for leader in [0, 2] {
        assert_eq!(run.states()[leader].quarantined.len(), 1);
    }
}

#[test]
fn an_isolated_leader_is_declared_dead_and_returns_after_the_heal() {
    let run = Simulation::new(5)
        .leaders(3)
        .topology(Topology::Circle)
        .network(NetworkModel::lan())
        .workload(|w| w.put(ms(100), "L0", "a", "1").put(ms(900), "L2", "b", "2"))
        .fault(ms(50), FaultEvent::Isolate("L1".into()))
        .fault(ms(1_500), FaultEvent::Heal("L1".into()))
        .run();
    run.assert_converged();
    let trace = run.trace().render();
    let dead = trace.find("declared L1 dead").expect("declared dead");
    let back = trace.find("L1 is back").expect("returned");
    assert!(dead < back);
    assert!(trace.contains("rewire live={L0,L2}"), "{trace}");
    // L1 was up all along: it kept its state and caught up on what it missed.
    assert_eq!(run.converged_vv().total(), 2);
}

#[test]
fn the_supervisor_can_restart_dead_leaders_by_itself() {
    let config = SupervisorConfig { restart_after: Some(ms(200)), ..SupervisorConfig::default() };
    let run = Simulation::new(9)
        .leaders(3)
        .network(NetworkModel::lan())
        .supervisor_config(config)
        .workload(|w| w.puts_per_leader(2).put(ms(1_500), "L0", "late", "x"))
        .crash_at(ms(30), "L2")
        .run();
    run.assert_converged();
    let trace = run.trace().render();
    let restarting = trace.find("sup    restarting L2").expect("supervisor restarted L2");
    assert!(trace[restarting..].contains("L2 is back"), "{trace}");
    assert!(run.states().iter().all(|s| s.up));
}

#[test]
fn the_same_seed_replays_the_same_run_and_another_seed_does_not() {
    let sim = |seed| {
        Simulation::new(seed)
            .leaders(4)
            .network(NetworkModel::wan().drop_rate(0.1).duplicate_rate(0.1).reorder_rate(0.3))
            .workload(|w| w.puts_per_leader(4))
            .crash_at(ms(25), "L3")
            .restart_at(ms(900), "L3")
            .run()
    };
    let a = sim(11);
    a.assert_converged();
    assert_eq!(a.render(), sim(11).render());
    assert_ne!(a.render(), sim(12).render());
}

#[test]
fn clock_sync_corrects_a_fast_leader_before_it_stamps_anything() {
    let run = Simulation::new(4)
        .leaders(3)
        .network(NetworkModel::lan())
        .clock("L1", 2_000_000_000, 0)
        .clock_sync(roundtable_sim::ClockSyncConfig::default())
        .workload(|w| w.put(ms(100), "L1", "k", "v"))
        .run();
    run.assert_converged();
    let trace = run.trace().render();
    // The first sample measures the 2 s and steps the clock back before the first write, so
    // the write carries true time (2026-01-01T00:00:00.1) and nobody rejects anything.
    assert!(trace.contains("L1     clock stepped by -2."), "{trace}");
    assert!(trace.contains(r#"L1     write L1:1 "k" hlc=1767225600.09"#), "{trace}");
    assert_eq!(run.metrics().rejected, 0);
}

#[test]
fn a_fast_leader_that_stamped_before_its_first_sample_fences_itself_until_true_time_catches_up() {
    let run = Simulation::new(4)
        .leaders(3)
        .network(NetworkModel::lan())
        .clock("L1", 2_000_000_000, 0)
        .clock_sync(roundtable_sim::ClockSyncConfig::default())
        .workload(|w| {
            w.put(ms(0), "L1", "k", "stamped 2 s ahead").put(ms(1_000), "L1", "k", "while fenced").put(
                ms(3_000),
                "L1",
                "k",
                "on time",
            )
        })
        .run();
    run.assert_converged();
    let trace = run.trace().render();
    // Its first write went out stamped 2 s ahead: the peers refuse it, and the supervisor fences
    // L1, which rejoins from the healthy leaders (the far-future write is quarantined, applied
    // nowhere).
    assert!(trace.contains("L0     reject <- L1: entry L1:1 is stamped 1.999s ahead"), "{trace}");
    assert!(trace.contains("sup    fence L1"), "{trace}");
    // The clock steps back, but corrected time never runs backwards: until true time catches up
    // the leader refuses writes rather than stamp them in the future.
    assert!(trace.contains("L1     clock stepped by -2."), "{trace}");
    assert!(trace.contains("L1     fenced: clock off by"), "{trace}");
    assert!(trace.contains(r#"put "k"="while fenced" at L1: refused: leader L1 is fenced"#), "{trace}");
    assert!(trace.contains("L1     unfenced"), "{trace}");
    // Once synchronised it writes again; the quarantined L1:1 was never applied anywhere, so the
    // sequence number is free.
    assert!(trace.contains(r#"put "k"="on time" at L1: ok L1:1"#), "{trace}");
    assert!(run.states().iter().all(|s| s
        .store
        .iter()
        .any(|(k, r)| k.as_str() == "k" && r.value.as_ref().map(|v| v.as_bytes()) == Some(&b"on time"[..]))));
}

#[test]
fn a_restarted_leader_never_reuses_a_dot_its_peers_hold_in_their_buffers() {
    // Found in review: L2's first write is lost on the way to the hub while its next ones wait
    // in the peers' causal buffers; L2 crashes. The restarted L2 must void the lost write (so the
    // waiting ones deliver) instead of issuing new writes under the old dots.
    for seed in 0..6 {
        let run = Simulation::new(seed)
            .leaders(5)
            .topology(Topology::Star { hub: roundtable_runtime::LeaderId::new(0).expect("id") })
            .network(NetworkModel::wan().drop_rate(0.05).duplicate_rate(0.02))
            .workload(|w| w.puts_per_leader(5).put(ms(2_500), "L2", "new1", "x").put(ms(2_600), "L2", "new2", "y"))
            .crash_at(ms(130), "L2")
            .restart_at(ms(1_500), "L2")
            .run();
        if let Err(why) = run.check_converged() {
            panic!("seed {seed}: {why}\n{}", run.render());
        }
        let trace = run.trace().render();
        assert!(!trace.contains("conflicts with the entry already held"), "seed {seed}\n{trace}");
        assert!(!trace.contains("that it never wrote"), "seed {seed}\n{trace}");
    }
}

#[test]
fn home_leader_keys_never_conflict_and_move_when_the_home_dies() {
    use roundtable_actors::Resolution;
    use roundtable_runtime::LeaderId;
    let home_of_k = roundtable_runtime::topologies::rendezvous_home(b"k", roundtable_runtime::LeaderSet::first(3))
        .expect("someone is home");
    let others: Vec<LeaderId> = LeaderId::range(3).filter(|id| *id != home_of_k).collect();
    let run = Simulation::new(21)
        .leaders(3)
        .network(NetworkModel::wan())
        .resolution(Resolution::HomeLeader)
        .workload(|w| {
            // Every leader writes the same key at the same moment: without a home, a conflict.
            let w = LeaderId::range(3).fold(w, |w, id| w.put(ms(0), id, "k", &format!("v{}", id.index())));
            // After the home crashed and was declared dead, writes go to the next home.
            (0..2).fold(w, |w, j| w.put(ms(1_200), others[j], "k", &format!("late{j}")))
        })
        .crash_at(ms(300), home_of_k)
        .run();
    run.assert_converged();
    let trace = run.trace().render();
    assert!(!trace.contains(" lww "), "a home-leader keyspace made a conflict decision:\n{trace}");
    let routed = trace.matches(&format!("to its home {home_of_k}")).count();
    assert_eq!(routed, 2, "both non-home writes went to the home\n{trace}");
    assert!(trace.contains(&format!("declared {home_of_k} dead")), "{trace}");
    // After the failover one of the survivors is home, and the other routes to it.
    assert!(trace.matches("routed here as its home").count() >= 3, "{trace}");
    assert_eq!(run.acked().len(), 5);
}

#[test]
fn a_rendered_run_opens_with_its_setup_and_names_every_setting_that_is_not_the_default() {
    use roundtable_actors::Resolution;
    use roundtable_runtime::resolution::CrdtKind;
    use roundtable_runtime::{BatchConfig, GossipConfig, LeaderId, ReplicaConfig};
    use roundtable_sim::ClockSyncConfig;

    let id = |i| LeaderId::new(i).expect("id");
    let run = Simulation::new(42)
        .leaders(4)
        .topology(Topology::Star { hub: id(2) })
        .network(NetworkModel::lan().drop_rate(0.05).duplicate_rate(0.005).reorder_rate(0.1).link_latency(
            id(0),
            id(3),
            ms(30),
            ms(40),
        ))
        .clock("L1", 250_000_000, -20)
        .clock_sync(ClockSyncConfig::default())
        .resolution(Resolution::HomeLeader)
        .keyspace("cart", Resolution::Crdt(CrdtKind::OrSet))
        .keyspace("doc", Resolution::Siblings { max_siblings: 4 })
        .replica_config(ReplicaConfig {
            max_offset: ms(250),
            batch: Some(BatchConfig { max_entries: 64, flush_interval: ms(5), min_fanout: 2 }),
            gossip: Some(GossipConfig { fanout: 2, interval: ms(300), seed: 7 }),
            ..ReplicaConfig::default()
        })
        .tick_interval(ms(50))
        .max_duration(ms(500))
        .run();
    let want = "\
--- setup
seed 42; leaders L0 L1 L2 L3; topology star (hub L2)
network: latency 0.100ms-1ms, loss 5%, duplication 0.5%, reordering 10%; L0->L3 30ms-40ms
clocks: L1 offset +250.000ms drift -20ppm; clock sync every 1000ms (server delay 1ms-20ms)
resolution: home-leader; keyspaces cart/ crdt OrSet, doc/ siblings (at most 4)
settings: max_offset 250ms, batching (64 entries, flushed every 5ms, fan-out from 2), gossip (to 2 peers every 300ms, seed 7), tick 50ms
--- trace
";
    assert!(run.render().starts_with(want), "{}", run.render());
    // The defaults say so, in as few words.
    let plain = Simulation::new(1).run();
    assert!(plain.render().starts_with(
        "--- setup\nseed 1; leaders L0 L1 L2; topology all-to-all\nnetwork: in-process (instant), loss 0%, duplication 0%, reordering 0%\nclocks: true time; no clock sync\nresolution: last-write-wins\nsettings: defaults\n--- trace\n"
    ), "{}", plain.render());
}
