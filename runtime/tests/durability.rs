//! A durable replica (issue 13): what it persists, and how it resumes from it.

mod common;

use std::time::Duration;

use common::{id, key, Net};
use roundtable_runtime::replica::Image;
use roundtable_runtime::{
    Dot, LeaderSet, Record, Replica, ReplicaConfig, ResumeError, Seq, Topology, TraceEvent, WriteError,
};

fn durable() -> ReplicaConfig {
    ReplicaConfig { durable: true, ..ReplicaConfig::default() }
}

fn a2a() -> Topology {
    Topology::AllToAll { relay: false }
}

/// Anti-entropy rounds, 2 s apart, each delivered.
fn rounds(net: &mut Net, n: usize) {
    for _ in 0..n {
        net.tick_all(Duration::from_secs(2));
        net.deliver_all();
    }
}

/// Replaces replica `i` by one resumed from its disk (and `image`), started now.
fn crash_and_resume(net: &mut Net, i: usize, config: &ReplicaConfig, image: Option<Image>) -> Result<(), ResumeError> {
    let members = net.replicas[i].members();
    let topology = net.replicas[i].topology().clone();
    let records = net.disks[i].clone().into_iter().map(Ok);
    net.replicas[i] = Replica::resume(id(i), members, topology, config.clone(), image, records)?;
    let raw = net.raw(i);
    net.replicas[i].start(raw);
    net.collect(i);
    Ok(())
}

#[test]
fn an_in_memory_replica_persists_nothing() {
    let mut net = Net::new(2, a2a(), ReplicaConfig::default());
    net.write(0, "x", "1");
    net.deliver_all();
    assert!(net.disks.iter().all(Vec::is_empty));
}

#[test]
fn a_durable_leader_resumes_where_it_stopped_and_writes_at_once_while_its_peers_are_down() {
    let mut net = Net::new(3, a2a(), durable());
    net.write(0, "a", "1");
    net.write(0, "b", "2");
    net.write(1, "c", "3");
    net.deliver_all();
    net.write(0, "a", "4");
    net.deliver_all();
    let digest = net.replicas[0].state_digest();
    let applied = net.replicas[0].applied().clone();
    // Every entry applied at L0 is on its disk, in the order applied.
    let persisted: Vec<Dot> = net.disks[0]
        .iter()
        .filter_map(|r| match r {
            Record::Applied(entry) => Some(entry.dot),
            _ => None,
        })
        .collect();
    assert_eq!(persisted, net.applied_order[0]);

    // L0 crashes; its peers are down while it comes back.
    net.set_live(LeaderSet::single(id(0)));
    crash_and_resume(&mut net, 0, &durable(), None).expect("resumes");
    let r0 = &net.replicas[0];
    assert!(!r0.is_catching_up(), "a resumed leader does not wait for anyone");
    assert_eq!(r0.state_digest(), digest, "the same state as before the crash");
    assert_eq!(r0.applied(), &applied);
    assert!(net.trace.iter().any(|l| l.starts_with("L0 resumed from disk")), "{:#?}", net.trace);

    // Its next write takes the next dot: none is issued twice.
    let dot = net.try_write(0, "d", "5").expect("writable at once");
    assert_eq!(dot, Dot::new(id(0), Seq(4)));

    // The peers return; everyone converges, and nobody saw two writes under one dot.
    net.set_live(LeaderSet::first(3));
    rounds(&mut net, 3);
    assert_eq!(net.assert_converged(), Ok(()));
    assert_eq!(net.check_causal_exactly_once(), Ok(()));
    assert_eq!(net.value(2, "d").as_deref(), Some("5"));
}

#[test]
fn an_image_and_the_records_after_it_rebuild_the_same_state_as_all_the_records() {
    let mut net = Net::new(2, a2a(), durable());
    for i in 0..5 {
        net.write(0, &format!("k{i}"), "v");
        net.write(1, &format!("k{i}"), "w");
    }
    net.deliver_all();
    let image = net.replicas[0].image();
    let covered = net.disks[0].len();
    for i in 0..3 {
        net.write(1, &format!("late{i}"), "x");
    }
    net.deliver_all();
    let digest = net.replicas[0].state_digest();

    // What a shell keeps after a checkpoint: the image and the records after it.
    let after: Vec<Record> = net.disks[0][covered..].to_vec();
    net.disks[0] = after;
    crash_and_resume(&mut net, 0, &durable(), Some(image)).expect("resumes");
    assert_eq!(net.replicas[0].state_digest(), digest);
    assert_eq!(net.replicas[0].applied().get(id(1)), Seq(8));
    let dot = net.try_write(0, "after", "y").expect("writable");
    assert_eq!(dot, Dot::new(id(0), Seq(6)));
}

#[test]
fn a_merged_snapshot_is_persisted_and_comes_back() {
    let config = ReplicaConfig { log_entries_max: 1, snapshot_chunk_registers: 1, ..durable() };
    let mut net = Net::new(2, a2a(), config.clone());
    net.cut.push((id(0), id(1)));
    net.write(0, "a", "1");
    net.write(0, "b", "2"); // the log's bound truncates L0:1: L1 will need a snapshot
    net.cut.clear();
    rounds(&mut net, 3);
    assert_eq!(net.assert_converged(), Ok(()));
    assert!(net.disks[1].iter().any(|r| matches!(r, Record::Snapshot { .. })), "{:?}", net.disks[1]);
    let digest = net.replicas[1].state_digest();
    crash_and_resume(&mut net, 1, &config, None).expect("resumes");
    assert_eq!(net.replicas[1].state_digest(), digest);
    assert_eq!(net.value(1, "a").as_deref(), Some("1"));
}

#[test]
fn the_clock_resumes_past_every_persisted_timestamp_even_when_it_restarts_slow() {
    let mut net = Net::new(2, a2a(), durable());
    net.offsets_ns[0] = 300_000_000; // L0 runs 300 ms fast (within max_offset) …
    net.write(0, "x", "before");
    let before = net.replicas[0].read(&key("x")).expect("written").hlc;
    net.offsets_ns[0] = 0; // … and comes back with a correct clock, 300 ms "earlier".
    crash_and_resume(&mut net, 0, &durable(), None).expect("resumes");
    net.write(0, "x", "after");
    let after = net.replicas[0].read(&key("x")).expect("written");
    assert!(after.hlc > before, "{:?} must be later than {before:?}", after.hlc);
    assert_eq!(net.value(0, "x").as_deref(), Some("after"), "the later write wins");
}

#[test]
fn a_leader_that_crashes_while_recovering_recovers_again() {
    let mut net = Net::new(2, a2a(), durable());
    net.write(0, "x", "1");
    net.deliver_all();
    // L0 lost its disk: it restarts empty and recovers from its peer …
    net.replicas[0] = Replica::restarted(id(0), LeaderSet::first(2), a2a(), durable()).expect("valid");
    net.disks[0].clear();
    let raw = net.raw(0);
    net.replicas[0].start(raw);
    net.collect(0);
    assert_eq!(net.disks[0], vec![Record::Recovering]);
    // … and crashes before it is done: from its disk it knows it was recovering.
    crash_and_resume(&mut net, 0, &durable(), None).expect("resumes");
    assert!(net.replicas[0].is_catching_up());
    assert!(matches!(net.try_write(0, "y", "2"), Err(WriteError::CatchingUp { .. })));
    rounds(&mut net, 5);
    assert!(!net.replicas[0].is_catching_up());
    assert!(net.disks[0].contains(&Record::Recovered));
    assert_eq!(net.value(0, "x").as_deref(), Some("1"));
    // Once recovered, a crash resumes as a plain durable leader that writes at once, past L0:1.
    crash_and_resume(&mut net, 0, &durable(), None).expect("resumes");
    assert!(!net.replicas[0].is_catching_up());
    assert_eq!(net.try_write(0, "y", "2"), Ok(Dot::new(id(0), Seq(2))));
}

#[test]
fn what_is_not_this_leaders_own_is_refused_not_resumed() {
    let mut net = Net::new(2, a2a(), durable());
    net.write(1, "x", "1");
    let image = net.replicas[1].image();
    let members = LeaderSet::first(2);
    let wrong = Replica::resume(id(0), members, a2a(), durable(), Some(image), std::iter::empty());
    assert!(matches!(wrong, Err(ResumeError::WrongLeader { .. })), "{wrong:?}");

    // An entry whose dependencies were never applied cannot be replayed.
    net.write(1, "x", "2");
    let second = net.disks[1][1].clone();
    let gap = Replica::resume(id(1), members, a2a(), durable(), None, [Ok(second)]);
    assert!(matches!(gap, Err(ResumeError::Inconsistent { index: 1, .. })), "{gap:?}");
}

#[test]
fn corrupt_bytes_are_an_error_never_a_panic() {
    let mut net = Net::new(1, a2a(), durable());
    net.write(0, "x", "some value");
    let bytes = net.disks[0][0].encode().expect("encodes");
    assert_eq!(Record::decode(&bytes, 0), Ok(net.disks[0][0].clone()));
    // Every truncation, and every single-byte change, decodes to an error or to some record —
    // never a panic.
    for len in 0..bytes.len() {
        let _ = Record::decode(&bytes[..len], 0);
    }
    for at in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut changed = bytes.clone();
            changed[at] ^= flip;
            let _ = Record::decode(&changed, 0);
        }
    }
    assert!(matches!(Record::decode(&[], 7), Err(ResumeError::Corrupt { what: "record", index: 7, .. })));
    assert!(matches!(Image::decode(&[0xff; 3]), Err(ResumeError::Corrupt { what: "image", .. })));
}

#[test]
fn a_resumed_leader_starts_a_new_life_and_seals_its_peers_until_they_speak() {
    let mut net = Net::new(3, a2a(), durable());
    net.write(0, "x", "1");
    net.deliver_all();
    crash_and_resume(&mut net, 0, &durable(), None).expect("resumes");
    assert!(net.count(|e| matches!(e, TraceEvent::Sealed { .. })) >= 1);
    rounds(&mut net, 3);
    assert!(net.count(|e| matches!(e, TraceEvent::Unsealed { .. })) >= 2, "{:#?}", net.trace);
    net.write(1, "y", "2");
    net.deliver_all();
    assert_eq!(net.value(0, "y").as_deref(), Some("2"));
    assert_eq!(net.assert_converged(), Ok(()));
}
