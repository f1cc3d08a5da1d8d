//! Short stories about one behaviour each of the replication core, driven by hand.

mod common;

use std::time::Duration;

use common::{id, key, put, Net};
use roundtable_runtime::clock::{ClockError, CorrectionConfig, CorrectionMode, NtpSample};
use roundtable_runtime::wire::{self, DigestReply, Envelope, PeerMessage, ReplicatedEntry};
use roundtable_runtime::{LeaderSet, Rejection, Replica, ReplicaConfig, Topology, TraceEvent, WallTime, WriteError};

#[test]
fn far_future_timestamp_is_rejected_quarantined_and_leaves_the_clock_alone() {
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    net.offsets_ns[0] = 2_000_000_000; // L0's clock runs 2 s fast and it has no clock sync.
    net.write(0, "x", "from the future");
    let clock_before = net.replicas[1].clock().last();
    net.deliver_all();

    let r1 = &net.replicas[1];
    assert_eq!(r1.read(&key("x")), None, "the entry never reaches the store");
    assert_eq!(r1.clock().last(), clock_before, "the HLC did not move");
    assert_eq!(r1.metrics().timestamps_rejected, 1);
    assert_eq!(r1.metrics().rejected, 1);
    let quarantined: Vec<_> = r1.quarantine().collect();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].from, id(0));
    assert!(
        matches!(quarantined[0].reason, Rejection::TimestampTooFarAhead { ahead_by, .. } if ahead_by > Duration::from_millis(1900))
    );
    assert!(net.trace.iter().any(|l| l.starts_with("L1 reject <- L0: entry L0:1 is stamped")), "{:#?}", net.trace);
}

#[test]
fn a_leader_whose_clock_is_out_of_tolerance_fences_itself() {
    let observe = CorrectionConfig { mode: CorrectionMode::Observe, ..CorrectionConfig::default() };
    let config = ReplicaConfig { correction: observe, ..ReplicaConfig::default() };
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, config);
    net.offsets_ns[0] = -2_000_000_000; // 2 s slow, and it only observes.
    net.write(0, "x", "before sync"); // Unsynchronized is not fenced by default.

    // One NTP exchange against a reference that knows true time, 10 ms each way.
    let t1 = net.raw(0);
    let t2 = net.now.saturating_add(Duration::from_millis(10));
    let t4 = t1.saturating_add(Duration::from_millis(20));
    net.advance(Duration::from_millis(20));
    let raw = net.raw(0);
    let _ = net.replicas[0].handle_clock_sample(raw, NtpSample::new(t1, t2, t2, t4)).expect("valid sample");
    net.collect(0);

    assert!(net.replicas[0].is_fenced());
    let refused = net.try_write(0, "x", "after sync");
    assert!(matches!(refused, Err(WriteError::Fenced { source: ClockError::Fenced { .. }, .. })), "{refused:?}");
    assert_eq!(net.replicas[0].metrics().writes_refused, 1);
    assert!(net.trace.iter().any(|l| l.starts_with("L0 fenced: clock off by +2000")), "{:#?}", net.trace);
    // The refused write left no trace in the store or the version vector.
    assert_eq!(net.replicas[0].applied().total(), 1);
    assert_eq!(net.value(0, "x").as_deref(), Some("before sync"));
}

#[test]
fn full_causal_buffer_refuses_and_asks_for_catch_up_then_anti_entropy_repairs() {
    let config = ReplicaConfig { causal_buffer_max: 2, ..ReplicaConfig::default() };
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, config);
    for i in 0..5 {
        net.write(0, "k", &format!("v{i}"));
    }
    // The first write is lost; the other four arrive and find their dependency missing.
    net.in_flight.remove(0);
    net.deliver_all();

    let r1 = &net.replicas[1];
    // L0:2 waits; L0:3.. are further ahead of L1's L0:0 than the buffer's 2 places: refused.
    assert_eq!(r1.metrics().causal_waits, 1);
    assert_eq!(r1.metrics().buffer_full, 3);
    assert!(
        net.trace.iter().any(|l| l == "L1 buffer cannot hold L0:4 (capacity 2), catch-up asked of L0"),
        "{:#?}",
        net.trace
    );
    // Three refusals, one catch-up request: a burst is not a storm.
    assert_eq!(net.trace.iter().filter(|l| l.starts_with("L0 catch-up")).count(), 1);
    // The catch-up request (a digest) was answered with everything L1 lacks, in causal order.
    assert!(net.trace.iter().any(|l| l == "L0 catch-up -> L1 [L0:1 L0:2 L0:3 L0:4 L0:5]"), "{:#?}", net.trace);
    assert_eq!(net.replicas[1].waiting(), 0);
    assert_eq!(net.value(1, "k").as_deref(), Some("v4"));
    assert_eq!(net.check_causal_exactly_once(), Ok(()));
    assert_eq!(net.assert_converged(), Ok(()));
}

#[test]
fn log_truncates_what_every_live_leader_acknowledged() {
    let mut net = Net::new(3, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    for i in 0..3 {
        net.write(i, "k", "v");
    }
    net.deliver_all();
    assert_eq!(net.replicas[0].log().len(), 3);
    // Digests acknowledge; the next tick truncates what all three have.
    net.tick_all(Duration::from_secs(1));
    net.deliver_all();
    net.tick_all(Duration::from_secs(1));
    for r in &net.replicas {
        assert_eq!(r.log().len(), 0, "{} kept {:?}", r.id(), r.log().iter().map(|l| l.entry.dot).collect::<Vec<_>>());
        assert_eq!(r.metrics().log_truncated, 3);
    }
}

#[test]
fn a_peer_behind_a_truncated_log_gets_a_snapshot() {
    let config = ReplicaConfig { log_entries_max: 2, ..ReplicaConfig::default() };
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, config);
    net.cut.push((id(0), id(1)));
    for i in 0..5 {
        net.write(0, &format!("k{i}"), "v");
    }
    assert_eq!(net.replicas[0].metrics().log_truncated_forced, 3);
    assert_eq!(net.replicas[0].log().len(), 2);
    net.cut.clear();
    net.tick_all(Duration::from_secs(1));
    net.deliver_all();
    assert!(net.trace.iter().any(|l| l == "L0 snapshot -> L1 [L0:5] (5 keys)"), "{:#?}", net.trace);
    assert!(net.trace.iter().any(|l| l == "L1 snapshot <- L0 adopted [L0:5]"), "{:#?}", net.trace);
    assert_eq!(net.assert_converged(), Ok(()));
}

#[test]
fn circle_closes_over_a_dead_leader() {
    let mut net = Net::new(4, Topology::Circle, ReplicaConfig::default());
    // L2 dies: the others learn the new live set; L1 now forwards to L3.
    let live = LeaderSet::first(4).without(id(2));
    net.set_live(live);
    assert!(net.trace.iter().any(|l| l == "L1 rewired live={L0,L1,L3} edges=L0>L1,L1>L3,L3>L0"), "{:#?}", net.trace);
    net.write(0, "k", "v");
    net.deliver_all();
    assert!(net.trace.iter().any(|l| l == "L1 send -> L3 [L0:1]"), "{:#?}", net.trace);
    for i in [1, 3] {
        assert_eq!(net.value(i, "k").as_deref(), Some("v"));
    }
    assert_eq!(net.replicas[2].applied().total(), 0, "the dead leader got nothing");
    assert_eq!(net.count(|e| matches!(e, TraceEvent::DuplicateDropped { .. })), 0);
}

#[test]
fn relay_survives_a_broken_link_and_drops_the_duplicates() {
    let mut net = Net::new(3, Topology::AllToAll { relay: true }, ReplicaConfig::default());
    net.cut.push((id(0), id(2)));
    net.write(0, "k", "v");
    net.deliver_all();
    assert_eq!(net.value(2, "k").as_deref(), Some("v"), "relayed through L1");
    assert!(net.trace.iter().any(|l| l == "L2 recv L0:1 <- L1"), "{:#?}", net.trace);
    assert_eq!(net.assert_converged(), Ok(()));
    // Without the cut, L2 gets it twice and drops the second copy.
    let mut net = Net::new(3, Topology::AllToAll { relay: true }, ReplicaConfig::default());
    net.write(0, "k", "v");
    net.deliver_all();
    assert_eq!(net.count(|e| matches!(e, TraceEvent::DuplicateDropped { .. })), 2);
    assert_eq!(net.check_causal_exactly_once(), Ok(()));
}

#[test]
fn a_restarted_leader_catches_up_before_it_writes_and_never_reuses_a_dot() {
    let mut net = Net::new(3, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    let first = net.write(0, "a", "1");
    net.write(0, "b", "2");
    net.write(1, "c", "3");
    net.deliver_all();

    // L0 crashes and restarts with empty state.
    let members = LeaderSet::first(3);
    net.replicas[0] = Replica::restarted(id(0), members, Topology::AllToAll { relay: false }, ReplicaConfig::default())
        .expect("valid");
    let raw = net.raw(0);
    net.replicas[0].start(raw);
    net.collect(0);
    assert!(matches!(net.try_write(0, "d", "4"), Err(WriteError::CatchingUp { .. })));
    net.deliver_all();
    // Its peers answered at once, but messages of its earlier life may still be in flight: it
    // waits out `recovery_quiet` (1 s), then asks its peers to seal it (refuse its old writes
    // they do not hold) and report, and concludes a quiet period after the last report.
    assert!(net.replicas[0].is_catching_up(), "still in its quiet period");
    net.tick_all(Duration::from_millis(1_100));
    net.deliver_all();
    assert!(net.replicas[0].is_catching_up(), "sealed reports are in; settling");
    assert!(net.trace.iter().any(|l| l.starts_with("L1 seal {L0}")), "{:#?}", net.trace);
    net.tick_all(Duration::from_millis(1_100));
    net.deliver_all();

    assert!(!net.replicas[0].is_catching_up());
    assert!(net.trace.iter().any(|l| l == "L0 caught up [L0:2 L1:1]"), "{:#?}", net.trace);
    assert_eq!(net.value(0, "a").as_deref(), Some("1"), "its own earlier writes came back");
    let next = net.write(0, "d", "4");
    assert_eq!(next.seq.0, 3, "the next dot follows the old ones");
    assert_ne!(next, first);
    net.deliver_all();
    assert_eq!(net.assert_converged(), Ok(()));
}

#[test]
fn bad_peer_input_is_rejected_counted_and_traced_never_a_panic() {
    let mut net = Net::new(3, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    let now = net.now;
    let r = &mut net.replicas[1];
    r.handle_frame(now, id(0), &[0x09, 0x00, 0x01]);
    r.handle_frame(now, id(0), &wire::encode(&Envelope::new(id(2), empty_digest())).expect("fits"));
    r.handle_peer(now, id(9), empty_digest());
    r.handle_peer(now, id(1), empty_digest());
    assert_eq!(r.metrics().rejected, 4);
    net.collect(1);
    assert_eq!(
        net.trace,
        vec![
            "L1 reject <- L0: undecodable frame: unsupported protocol version 9 (this build speaks 2)".to_owned(),
            "L1 reject <- L0: envelope claims sender L2 but arrived from L0".to_owned(),
            "L1 reject <- L9: sender L9 is not a peer of this leader".to_owned(),
            "L1 reject <- L1: sender L1 is not a peer of this leader".to_owned(),
        ]
    );
}

#[test]
fn malformed_entries_and_reused_dots_are_rejected() {
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    net.write(0, "k", "original");
    let (_, _, msg) = net.in_flight[0].clone();
    net.deliver_all();
    let PeerMessage::Replicate { entries, .. } = msg else { panic!("expected a replicate message") };
    let good: ReplicatedEntry = entries[0].clone();

    // The same dot with other contents: a peer reusing sequence numbers.
    let mut forged = good.clone();
    std::sync::Arc::make_mut(&mut forged.entry).op = put("forged");
    // A sequence number that does not follow the dependencies.
    let mut gap = good.clone();
    std::sync::Arc::make_mut(&mut gap.entry).dot.seq = roundtable_runtime::Seq(7);
    // An origin outside the cluster.
    let mut stranger = good.clone();
    std::sync::Arc::make_mut(&mut stranger.entry).dot.origin = id(40);
    let now = net.now;
    let r1 = &mut net.replicas[1];
    for e in [forged, gap, stranger] {
        r1.handle_peer(now, id(0), PeerMessage::Replicate { entries: vec![e], catch_up: false });
    }
    assert_eq!(r1.metrics().rejected, 3);
    assert_eq!(net.value(1, "k").as_deref(), Some("original"));
    net.collect(1);
    let rejects: Vec<&String> = net.trace.iter().filter(|l| l.contains("reject")).collect();
    assert_eq!(rejects.len(), 3, "{rejects:#?}");
    assert!(rejects[0].ends_with("entry L0:1 conflicts with the entry already held under the same dot"));
    assert!(rejects[1].ends_with("malformed entry L0:7: dependencies must name the origin's previous write"));
    assert!(rejects[2].ends_with("malformed entry L40:1: origin is not a member"));
}

#[test]
fn concurrent_writes_are_decided_by_lww_and_the_loser_is_reported_everywhere() {
    let mut net = Net::new(3, Topology::Star { hub: id(0) }, ReplicaConfig::default());
    net.write(1, "user:42", "Ada");
    net.write(2, "user:42", "Grace"); // later HLC timestamp, concurrent with the first
    net.deliver_all();
    for i in 0..3 {
        assert_eq!(net.value(i, "user:42").as_deref(), Some("Grace"));
    }
    // L0 (the hub) and L2 see both and decide; L1 decides when Grace arrives.
    let decisions: Vec<&String> = net.trace.iter().filter(|l| l.contains(" lww ")).collect();
    assert_eq!(decisions.len(), 3, "{decisions:#?}");
    assert!(decisions.iter().all(|l| l.ends_with("lww \"user:42\" kept L2:1 discarded L1:1 (value \"Ada\")")));
    assert_eq!(net.replicas.iter().map(|r| r.metrics().lww_discarded).sum::<u64>(), 3);
    // Discarded once at its origin, L1 (overwritten there when Grace arrived).
    let own: Vec<u64> = net.replicas.iter().map(|r| r.metrics().lww_discarded_own).collect();
    assert_eq!(own, [0, 1, 0]);
    // A write that saw the previous one supersedes it without a conflict.
    net.write(1, "user:42", "Grace Hopper");
    net.deliver_all();
    assert_eq!(net.count(|e| matches!(e, TraceEvent::LwwDiscarded { .. })), 3);
    assert_eq!(net.value(0, "user:42").as_deref(), Some("Grace Hopper"));
}

#[test]
fn clients_cannot_write_void_entries() {
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    let now = net.now;
    let refused = net.replicas[0].handle_write(now, key("k"), roundtable_runtime::Op::Void);
    assert_eq!(refused.map(|_| ()), Err(WriteError::NotAClientOp { op: "void" }));
    assert_eq!(net.replicas[0].applied().total(), 0);
}

#[test]
fn replica_construction_errors_are_clear() {
    let members = LeaderSet::first(3);
    let err = Replica::new(id(5), members, Topology::Circle, ReplicaConfig::default()).expect_err("not a member");
    assert_eq!(err.to_string(), "leader L5 is not a member of the cluster {L0,L1,L2}");
    let err =
        Replica::new(id(0), members, Topology::Star { hub: id(7) }, ReplicaConfig::default()).expect_err("bad hub");
    assert!(err.to_string().contains("L7"), "{err}");
    let zero = ReplicaConfig { causal_buffer_max: 0, ..ReplicaConfig::default() };
    let err = Replica::new(id(0), members, Topology::Circle, zero).expect_err("zero bound");
    assert_eq!(err.to_string(), "causal_buffer_max must be at least 1");
    let _ = WallTime::EPOCH;
}

#[test]
fn updates_must_fit_the_keyspace_at_clients_and_peers() {
    use roundtable_runtime::resolution::{CrdtKind, CrdtUpdate, Keyspaces, Resolution, Update};
    let keyspaces = Keyspaces::default().with("hits", Resolution::Crdt(CrdtKind::GCounter)).expect("valid");
    let config = ReplicaConfig { keyspaces, ..ReplicaConfig::default() };
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, config);
    // A client cannot put a plain value under a counter, nor increment a last-write-wins key.
    let refused = net.update(0, "hits/home", Update::Put(roundtable_runtime::Value::new(b"7".to_vec()).expect("v")));
    assert_eq!(
        refused.map_err(|e| e.to_string()),
        Err("put does not fit key \"hits/home\" of a crdt GCounter keyspace".into())
    );
    let refused = net.update(0, "plain", Update::Crdt(CrdtUpdate::Increment(1)));
    assert!(matches!(refused, Err(WriteError::WrongResolution { .. })), "{refused:?}");
    // A peer whose keyspaces disagree sends a plain put under a counter key: rejected, traced.
    net.update(0, "hits/home", Update::Crdt(CrdtUpdate::Increment(2))).expect("fits");
    net.deliver_all();
    let config = ReplicaConfig::default(); // this leader thinks everything is last-write-wins
    let mut confused =
        Replica::new(id(1), LeaderSet::first(2), Topology::AllToAll { relay: false }, config).expect("ok");
    let _ = confused.handle_write(net.now, key("hits/home"), put("7"));
    let msgs: Vec<_> = confused
        .drain_effects()
        .filter_map(|e| match e {
            roundtable_runtime::Effect::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect();
    for msg in msgs {
        let now = net.now;
        net.replicas[0].handle_peer(now, id(1), msg);
    }
    assert_eq!(net.replicas[0].metrics().rejected, 1);
    net.collect(0);
    assert!(
        net.trace.iter().any(|l| l.ends_with("malformed entry L1:1: operation does not fit the key's keyspace here")),
        "{:#?}",
        net.trace
    );
}

#[test]
fn gossip_sends_digests_to_random_live_peers_beyond_the_neighbours() {
    use roundtable_runtime::GossipConfig;
    let gossip = GossipConfig { fanout: 2, interval: Duration::from_secs(1), seed: 9 };
    let config = ReplicaConfig { gossip: Some(gossip), ack_interval: None, ..ReplicaConfig::default() };
    let mut net = Net::new(6, Topology::Circle, config);
    let mut reached = LeaderSet::EMPTY;
    for _ in 0..5 {
        net.in_flight.clear();
        net.tick_all(Duration::from_secs(1));
        for (from, to, msg) in &net.in_flight {
            if *from == id(0) && matches!(msg, PeerMessage::Digest { .. }) {
                reached.insert(*to);
            }
        }
    }
    // L0's circle neighbours are L1 and L5; gossip reached others too, and over five rounds the
    // seeded choices differ.
    assert!(reached.len() > 2, "{reached}");
    assert_eq!(net.replicas[0].metrics().gossip_rounds, 5);
    // Without gossip only the neighbours hear from L0.
    let mut net = Net::new(6, Topology::Circle, ReplicaConfig { ack_interval: None, ..ReplicaConfig::default() });
    net.tick_all(Duration::from_secs(1));
    let targets: LeaderSet = net.in_flight.iter().filter(|(f, _, _)| *f == id(0)).map(|(_, t, _)| *t).collect();
    assert_eq!(targets.to_string(), "{L1,L5}");
}

/// A digest that says nothing: this leader has applied nothing and asks for no answer.
fn empty_digest() -> PeerMessage {
    PeerMessage::Digest {
        vv: Default::default(),
        reply: DigestReply::Never,
        held: vec![],
        needed: Default::default(),
        stable: Default::default(),
        repair: false,
        recovery: Default::default(),
    }
}

/// With key history on, every leader can say which writes a key saw and which last-write-wins
/// discarded, with the discarded value; with it off (the default) nothing is remembered.
#[test]
fn key_history_explains_which_writes_were_kept_and_which_discarded() {
    use roundtable_runtime::{HistoryConfig, KeyEvent};
    let config = ReplicaConfig { key_history: Some(HistoryConfig::default()), ..ReplicaConfig::default() };
    let mut net = Net::new(3, Topology::Star { hub: id(0) }, config);
    net.write(1, "user:42", "Ada");
    net.write(2, "user:42", "Grace");
    net.deliver_all();
    net.write(1, "user:42", "Grace Hopper");
    net.deliver_all();
    for (i, replica) in net.replicas.iter().enumerate() {
        let history = replica.explain(&key("user:42")).expect("remembered");
        let discards: Vec<&KeyEvent> =
            history.events.iter().filter(|e| matches!(e, KeyEvent::Discarded { .. })).collect();
        assert_eq!(discards.len(), 1, "leader {i}: {history:#?}");
        let KeyEvent::Discarded { kept, discarded, value, .. } = discards[0] else { unreachable!() };
        assert_eq!((kept.origin, discarded.origin), (id(2), id(1)), "leader {i}");
        assert_eq!(value.as_ref().map(|v| v.as_bytes().to_vec()), Some(b"Ada".to_vec()), "leader {i}");
        // The last write saw Grace's and superseded it without a conflict.
        let last = history.events.last().expect("an event");
        assert!(
            matches!(last, KeyEvent::Applied { dot, previous: Some(p), .. } if dot.origin == id(1) && p.origin == id(2)),
            "leader {i}: {last:?}"
        );
    }
    let off = Net::new(1, Topology::Star { hub: id(0) }, ReplicaConfig::default());
    assert_eq!(off.replicas[0].explain(&key("user:42")), None);
}
