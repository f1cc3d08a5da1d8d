//! Regression tests for defects found in review of the replication core. Each names the
//! behaviour it protects.

mod common;

use std::time::Duration;

use common::{id, key, put, Net};
use roundtable_runtime::clock::HlcTimestamp;
use roundtable_runtime::wire::{
    self, DigestReply, Envelope, PeerMessage, RecoveryPhase, RecoveryStatus, ReplicatedEntry,
};
use roundtable_runtime::{
    Dot, Effect, Entry, LeaderSet, Replica, ReplicaConfig, Seq, Topology, TraceEvent, VersionVector,
};

fn anti_entropy_rounds(net: &mut Net, rounds: usize) {
    for _ in 0..rounds {
        net.tick_all(Duration::from_secs(2));
        net.deliver_all();
    }
}

#[test]
fn a_lost_snapshot_chunk_adopts_nothing_and_a_later_round_repairs() {
    let config = ReplicaConfig { snapshot_chunk_registers: 1, log_entries_max: 1, ..ReplicaConfig::default() };
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, config);
    net.cut.push((id(0), id(1)));
    net.write(0, "a", "1");
    net.write(0, "b", "2"); // the log's bound truncates L0:1: L1 will need a snapshot
    net.cut.clear();
    net.tick_all(Duration::from_secs(2));
    // Deliver only L1's digest to L0; L0 answers with a two-chunk snapshot.
    net.in_flight.retain(|(from, _, _)| *from == id(1));
    net.deliver_all_but_snapshots_first_chunk();
    assert_eq!(net.replicas[1].applied().total(), 0, "half a snapshot is not adopted");
    assert_eq!(net.replicas[1].store().len(), 0, "nor merged");
    anti_entropy_rounds(&mut net, 2);
    assert_eq!(net.assert_converged(), Ok(()));
    assert_eq!(net.value(1, "a").as_deref(), Some("1"));
}

#[test]
fn a_snapshot_with_a_far_future_register_is_rejected_whole() {
    let config = ReplicaConfig { snapshot_chunk_registers: 1, log_entries_max: 1, ..ReplicaConfig::default() };
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, config);
    net.cut.push((id(0), id(1)));
    net.write(0, "z", "old");
    net.advance(Duration::from_secs(10));
    net.write(0, "a", "new");
    net.cut.clear();
    net.in_flight.clear();
    net.offsets_ns[1] = -2_000_000_000; // L1's clock is 2 s slow for a while
    net.tick_all(Duration::from_millis(1));
    net.deliver_all();
    assert!(net.trace.iter().any(|l| l.starts_with("L1 reject <- L0: entry L0:2 is stamped")), "{:#?}", net.trace);
    assert_eq!(net.replicas[1].applied().total(), 0, "nothing of the rejected snapshot was adopted");
    assert_eq!(net.replicas[1].store().len(), 0);
    net.offsets_ns[1] = 0; // clock fixed
    anti_entropy_rounds(&mut net, 3);
    assert_eq!(net.assert_converged(), Ok(()));
}

#[test]
fn an_entry_whose_timestamp_breaks_causality_cannot_panic_or_split_replicas() {
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    let seen = net.write(0, "k", "v");
    net.in_flight.clear();
    let mut deps = VersionVector::new();
    deps.set(seen.origin, seen.seq);
    // L1 claims to have seen L0:1 but stamps its write with an ancient timestamp.
    let entry = Entry {
        dot: Dot::new(id(1), Seq(1)),
        hlc: HlcTimestamp::from_compact(1 << 16, id(1)),
        deps,
        key: key("k"),
        op: put("ancient"),
    };
    let msg = PeerMessage::Replicate {
        entries: vec![ReplicatedEntry { entry: entry.into(), seen_by: LeaderSet::EMPTY }],
        catch_up: false,
    };
    let bytes = wire::encode(&Envelope::new(id(1), msg)).expect("fits");
    let raw = net.raw(0);
    net.replicas[0].handle_frame(raw, id(1), &bytes);
    net.collect(0);
    // The greater timestamp wins, as a snapshot merge would decide, and the loss is reported.
    assert_eq!(net.value(0, "k").as_deref(), Some("v"));
    assert!(
        net.trace.iter().any(|l| l == "L0 lww \"k\" kept L0:1 discarded L1:1 (value \"ancient\")"),
        "{:#?}",
        net.trace
    );
}

#[test]
fn catch_up_of_large_values_is_split_into_frames_that_fit() {
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    net.cut.push((id(0), id(1)));
    let big = "x".repeat(8 * 1024);
    for i in 0..200 {
        net.write(0, &format!("k{i}"), &big);
    }
    net.cut.clear();
    net.in_flight.clear();
    net.tick_all(Duration::from_secs(2));
    // `deliver` encodes every message and fails if one exceeds MAX_FRAME_BYTES.
    net.deliver_all();
    let batches = net.trace.iter().filter(|l| l.starts_with("L0 catch-up -> L1")).count();
    assert!(batches >= 2, "200 x 8 KiB does not fit one 1 MiB frame ({batches} batches)");
    assert_eq!(net.assert_converged(), Ok(()));
}

#[test]
fn circle_and_star_logs_truncate_once_everyone_acknowledged() {
    for topology in [Topology::Circle, Topology::Star { hub: id(1) }] {
        let mut net = Net::new(4, topology.clone(), ReplicaConfig::default());
        for i in 0..10 {
            net.write(0, &format!("k{i}"), "v");
            net.deliver_all();
        }
        anti_entropy_rounds(&mut net, 6); // 12 s: at least two ack rounds of 5 s
        assert_eq!(net.assert_converged(), Ok(()));
        for r in &net.replicas {
            assert_eq!(r.log().len(), 0, "{topology:?}: {} keeps {} entries everyone has", r.id(), r.log().len());
            assert_eq!(r.holders(Dot::new(id(0), Seq(3))), LeaderSet::first(4));
        }
    }
}

#[test]
fn one_digest_is_answered_with_a_bounded_number_of_entries() {
    let config = ReplicaConfig { log_entries_max: 100_000, ..ReplicaConfig::default() };
    let max = config.catch_up_entries_max;
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, config);
    net.cut.push((id(0), id(1)));
    for i in 0..5000 {
        net.write(0, &format!("k{i}"), "v");
    }
    net.in_flight.clear();
    net.advance(Duration::from_secs(1)); // past the catch-up grace
    let raw = net.raw(0);
    net.replicas[0].handle_peer(
        raw,
        id(1),
        PeerMessage::Digest {
            vv: VersionVector::new(),
            reply: DigestReply::Never,
            held: vec![],
            needed: Default::default(),
            stable: Default::default(),
            repair: false,
            recovery: Default::default(),
        },
    );
    let sent: usize = net.replicas[0]
        .drain_effects()
        .map(|e| match e {
            Effect::Send { msg: PeerMessage::Replicate { entries, .. }, .. } => entries.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(sent, max);
}

#[test]
fn an_entry_the_buffer_refuses_is_not_forwarded() {
    let config = ReplicaConfig { causal_buffer_max: 2, ..ReplicaConfig::default() };
    let mut net = Net::new(3, Topology::AllToAll { relay: true }, config);
    net.cut.push((id(0), id(1)));
    net.cut.push((id(0), id(2)));
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        net.write(0, k, v);
    }
    net.cut.clear();
    // Hand L1 the entries 2 and 3 directly (as a relay would): 2 waits, 3 is refused.
    let entries: Vec<ReplicatedEntry> = net.replicas[0]
        .log()
        .iter()
        .skip(1)
        .map(|l| ReplicatedEntry { entry: l.entry.clone(), seen_by: LeaderSet::single(id(0)) })
        .collect();
    let raw = net.raw(1);
    net.replicas[1].handle_peer(raw, id(0), PeerMessage::Replicate { entries, catch_up: false });
    net.collect(1);
    let forwarded: Vec<Dot> = net
        .in_flight
        .iter()
        .filter(|(from, to, _)| *from == id(1) && *to == id(2))
        .flat_map(|(_, _, m)| match m {
            PeerMessage::Replicate { entries, .. } => entries.iter().map(|e| e.entry.dot).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(forwarded, vec![Dot::new(id(0), Seq(2))], "only the entry L1 holds is passed on");
    assert_eq!(net.count(|e| matches!(e, TraceEvent::BufferFull { .. })), 1);
}

trait NetExt {
    fn deliver_all_but_snapshots_first_chunk(&mut self);
}

impl NetExt for Net {
    /// Delivers everything, except that the first snapshot chunk in flight is lost.
    fn deliver_all_but_snapshots_first_chunk(&mut self) {
        let mut lost = false;
        for _ in 0..10_000 {
            if self.in_flight.is_empty() {
                return;
            }
            if !lost && matches!(self.in_flight[0].2, PeerMessage::Snapshot(_)) {
                self.in_flight.remove(0);
                lost = true;
                continue;
            }
            self.deliver(0);
        }
    }
}

#[test]
fn a_restarted_leader_voids_the_writes_it_lost_and_never_reuses_a_dot_its_peers_hold() {
    let mut net = Net::new(3, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    // L0:1 is lost on the way to everybody; L0:2 and L0:3 arrive and wait for it.
    net.cut.push((id(0), id(1)));
    net.cut.push((id(0), id(2)));
    net.write(0, "a", "lost");
    net.cut.clear();
    net.write(0, "b", "kept");
    net.write(0, "c", "kept too");
    net.deliver_all();
    assert_eq!(net.replicas[1].waiting(), 2);
    // L0 crashes (its in-memory state, L0:1 included, is gone) and restarts.
    net.replicas[0] =
        Replica::restarted(id(0), LeaderSet::first(3), Topology::AllToAll { relay: false }, ReplicaConfig::default())
            .expect("valid");
    let raw = net.raw(0);
    net.replicas[0].start(raw);
    net.collect(0);
    net.deliver_all();
    // Past its quiet period its peers seal it and report; a quiet period later it concludes. It
    // learned that L0:2 and L0:3 wait at its peers and that nobody has L0:1: it voids L0:1 …
    anti_entropy_rounds(&mut net, 2);
    assert!(net.trace.iter().any(|l| l == "L0 void L0:1: lost with this leader's crash"), "{:#?}", net.trace);
    // … which lets the peers deliver L0:2 and L0:3; anti-entropy brings them back to L0.
    anti_entropy_rounds(&mut net, 2);
    assert!(!net.replicas[0].is_catching_up(), "{:#?}", net.trace);
    let next = net.write(0, "d", "after the restart");
    assert_eq!(next.seq, Seq(4), "no dot is reused");
    net.deliver_all();
    assert_eq!(net.assert_converged(), Ok(()));
    for i in 0..3 {
        assert_eq!(net.value(i, "a"), None);
        assert_eq!(net.value(i, "b").as_deref(), Some("kept"));
        assert_eq!(net.value(i, "d").as_deref(), Some("after the restart"));
        assert_eq!(net.replicas[i].voided().collect::<Vec<_>>(), vec![Dot::new(id(0), Seq(1))]);
    }
}

fn crdt_config() -> ReplicaConfig {
    use roundtable_runtime::resolution::{CrdtKind, Keyspaces, Resolution};
    let keyspaces = Keyspaces::default()
        .with("hits", Resolution::Crdt(CrdtKind::OpCounter))
        .and_then(|k| k.with("reg", Resolution::Crdt(CrdtKind::LwwRegister)))
        .and_then(|k| k.with("big", Resolution::Crdt(CrdtKind::GSet)))
        .expect("valid keyspaces");
    ReplicaConfig { keyspaces, ..ReplicaConfig::default() }
}

/// Sends `entry` (a well-formed entry from L1 in every other respect) to L0 and returns L0's
/// rejection count.
fn offer(net: &mut Net, entry: Entry) -> u64 {
    let msg = PeerMessage::Replicate {
        entries: vec![ReplicatedEntry { entry: entry.into(), seen_by: LeaderSet::EMPTY }],
        catch_up: false,
    };
    let now = net.now;
    net.replicas[0].handle_peer(now, id(1), msg);
    net.collect(0);
    net.replicas[0].metrics().rejected
}

#[test]
fn crdt_payloads_must_speak_for_their_own_origin_and_time() {
    use roundtable_runtime::crdt::{LwwRegister, PnCounterOp};
    use roundtable_runtime::resolution::{CrdtOpPayload, CrdtState};
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, crdt_config());
    let hlc = HlcTimestamp::from_wall_time(net.now, 0, id(1));
    let entry =
        |key: &str, op| Entry { dot: Dot::new(id(1), Seq(1)), hlc, deps: VersionVector::new(), key: key_of(key), op };
    // An increment by L1's entry that claims to be L0's would corrupt per-leader counts.
    let forged = entry(
        "hits/x",
        roundtable_runtime::Op::Crdt(CrdtOpPayload::Counter(PnCounterOp::Increment { by: id(0), amount: 5 })),
    );
    assert_eq!(offer(&mut net, forged), 1);
    // An LWW-register delta stamped ten years ahead inside an entry with an honest stamp.
    let mut reg = LwwRegister::default();
    let later = HlcTimestamp::from_wall_time(net.now.saturating_add(Duration::from_secs(10 * 365 * 86_400)), 0, id(1));
    let delta = reg.set(later, roundtable_runtime::Value::new(b"poison".to_vec()).expect("v"));
    let poisoned = entry("reg/x", roundtable_runtime::Op::Crdt(CrdtOpPayload::Delta(CrdtState::LwwRegister(delta))));
    assert_eq!(offer(&mut net, poisoned), 2);
    // A void under a real key.
    let void = entry("reg/x", roundtable_runtime::Op::Void);
    assert_eq!(offer(&mut net, void), 3);
    assert!(net.trace.iter().any(|l| l.contains("crdt payload speaks for another leader or time")), "{:#?}", net.trace);
    assert_eq!(net.replicas[0].applied().total(), 0);
}

#[test]
fn a_crdt_key_stays_small_enough_for_a_snapshot() {
    use roundtable_runtime::resolution::{CrdtUpdate, Update};
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, crdt_config());
    let big = "x".repeat(60 * 1024);
    let mut refused = None;
    for i in 0..20 {
        match net.update(
            0,
            "big/set",
            Update::Crdt(CrdtUpdate::Add(roundtable_runtime::Value::new(format!("{i}{big}").into_bytes()).expect("v"))),
        ) {
            Ok(_) => {}
            Err(e) => {
                refused = Some((i, e.to_string()));
                break;
            }
        }
    }
    let (at, message) = refused.expect("the key hit its size limit");
    assert!(at > 4 && at < 10, "refused at add {at}");
    assert!(message.contains("would exceed"), "{message}");
    // A peer far behind still gets it all in a snapshot that fits a frame.
    net.deliver_all();
    assert_eq!(net.assert_converged(), Ok(()));
}

fn key_of(k: &str) -> roundtable_runtime::Key {
    roundtable_runtime::Key::new(k).expect("key")
}

#[test]
fn a_restarted_leader_waits_for_a_down_member_before_it_writes_so_no_dot_is_reused() {
    let mut net = Net::new(3, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    net.write(0, "k", "old1");
    net.deliver_all();
    net.cut.push((id(0), id(1)));
    net.write(0, "k", "old2"); // L0:2 reaches only L2
    net.deliver_all();
    net.cut.clear();
    // L0 crashes; L2 is down (declared dead) while L0 restarts.
    let live = LeaderSet::first(3).without(id(2));
    net.replicas[0] =
        Replica::restarted(id(0), LeaderSet::first(3), Topology::AllToAll { relay: false }, ReplicaConfig::default())
            .expect("valid");
    net.set_live(live);
    let raw = net.raw(0);
    net.replicas[0].start(raw);
    net.collect(0);
    net.in_flight.retain(|(from, to, _)| from.index() != 2 && to.index() != 2);
    net.deliver_all();
    // Past its quiet period, L0 asks again: the answers that count. L2 stays down.
    net.advance(Duration::from_secs(2));
    for i in 0..2 {
        let raw = net.raw(i);
        net.replicas[i].handle_timeout(raw);
        net.collect(i);
    }
    net.in_flight.retain(|(from, to, _)| from.index() != 2 && to.index() != 2);
    net.deliver_all();
    // L1 answered, but L2 may hold a write of L0's: L0 refuses to write, and says whom it waits for.
    let refused = net.try_write(0, "k", "new");
    assert!(
        matches!(&refused, Err(roundtable_runtime::WriteError::CatchingUp { waiting_for, .. }) if *waiting_for == LeaderSet::single(id(2))),
        "{refused:?}"
    );
    // L2 returns: L0 learns L0:2, gets it back, and its next write is L0:3.
    net.set_live(LeaderSet::first(3));
    anti_entropy_rounds(&mut net, 2);
    assert!(!net.replicas[0].is_catching_up(), "{:#?}", net.trace);
    let next = net.write(0, "k", "new");
    assert_eq!(next.seq, Seq(3));
    net.deliver_all();
    assert_eq!(net.assert_converged(), Ok(()));
    assert!(!net.trace.iter().any(|l| l.contains("conflicts with the entry already held")), "{:#?}", net.trace);
}

/// Restarts leader `i` of `net` with empty state and `config`, and starts it.
fn restart(net: &mut Net, i: usize, config: ReplicaConfig) {
    let members = LeaderSet::first(net.replicas.len());
    net.replicas[i] = Replica::restarted(id(i), members, Topology::AllToAll { relay: false }, config).expect("valid");
    let raw = net.raw(i);
    net.replicas[i].start(raw);
    net.collect(i);
}

/// Found by the seed sweep: an entry of a leader's earlier life, still in flight when the leader
/// restarted, landed after its peers had answered; the leader took the answers as the truth and
/// issued that entry's dot again. It now waits out `recovery_quiet` and asks again.
fn late_entry_of_an_earlier_life(config: ReplicaConfig, land_after_ticks: usize) -> (Net, Dot) {
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    net.write(0, "a", "1");
    net.deliver_all();
    net.write(0, "b", "2"); // L0:2 is on its way to L1 …
    let late = net.in_flight.remove(0);
    restart(&mut net, 0, config); // … when L0 restarts
    net.deliver_all(); // L1 answers: it has L0:1
    for tick in 0..6 {
        if tick == land_after_ticks {
            net.in_flight.push(late.clone()); // L0:2 lands at L1 only now
        }
        net.deliver_all();
        net.tick_all(Duration::from_millis(600));
        net.deliver_all();
    }
    let next = net.write(0, "c", "3");
    net.deliver_all();
    (net, next)
}

#[test]
fn a_restarted_leader_waits_out_its_quiet_period_so_a_late_entry_of_its_earlier_life_keeps_its_dot() {
    // L0:2 lands during L0's quiet period (before L1 sealed L0): it counts.
    let (net, next) = late_entry_of_an_earlier_life(ReplicaConfig::default(), 0);
    assert_eq!(next, Dot::new(id(0), Seq(3)), "L0:2 came back; no dot is reused");
    assert_eq!(net.value(0, "b").as_deref(), Some("2"));
    assert_eq!(net.assert_converged(), Ok(()));
    // L0:2 lands after L1 sealed L0 (the second tick, 1.2 s) and reported that it lacks it,
    // but before L0 concluded: L1 refuses it, so the dot L0 issues again is the only one
    // anywhere. The write is lost with its leader; the replicas agree.
    let (net, next) = late_entry_of_an_earlier_life(ReplicaConfig::default(), 2);
    assert_eq!(next, Dot::new(id(0), Seq(2)), "nobody holds the late entry: its dot is free");
    assert!(net.count(|e| matches!(e, TraceEvent::RefusedWhileSealed { .. })) > 0, "{:#?}", net.trace);
    assert_eq!(net.assert_converged(), Ok(()), "{:#?}", net.trace);
    assert_eq!(net.value(1, "b"), None);
    assert_eq!(net.value(1, "c").as_deref(), Some("3"));
    // The limit: an entry still in flight when the leader concludes (here: no quiet period at
    // all) lands at a peer that lifted its seal. Its dot was issued again, and the replicas
    // hold different L0:2s. `recovery_quiet` must exceed the longest a message is in flight.
    let quiet_off = ReplicaConfig { recovery_quiet: Duration::ZERO, ..ReplicaConfig::default() };
    let (net, next) = late_entry_of_an_earlier_life(quiet_off, 2);
    assert_eq!(next, Dot::new(id(0), Seq(2)), "the dot of the late entry is issued again");
    assert!(net.assert_converged().is_err(), "{:#?}", net.trace);
}

/// Found by the seed sweep: a write of another leader that depends on a write of this leader's
/// which no one holds any more (both leaders lost their state) waited for ever. Digests now say
/// which of the receiver's writes waiting entries depend on, and the restarted leader voids them.
#[test]
fn a_restarted_leader_voids_a_lost_write_that_a_waiting_entry_depends_on() {
    let mut net = Net::new(3, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    net.cut.push((id(1), id(2)));
    net.write(1, "x", "1"); // L1:1 reaches L0 only
    net.deliver_all();
    net.cut = vec![(id(0), id(1))];
    net.write(0, "y", "2"); // L0:1 depends on L1:1; it reaches L2 only, which parks it
    net.deliver_all();
    net.cut.clear();
    assert_eq!(net.replicas[2].waiting(), 1);
    // L0 and L1 both lose their state: L1:1 is gone, L0:1 survives only parked at L2.
    restart(&mut net, 0, ReplicaConfig::default());
    restart(&mut net, 1, ReplicaConfig::default());
    for _ in 0..8 {
        net.tick_all(Duration::from_millis(600));
        net.deliver_all();
    }
    assert!(net.trace.iter().any(|l| l == "L1 void L1:1: lost with this leader's crash"), "{:#?}", net.trace);
    assert_eq!(net.replicas[2].waiting(), 0, "L0:1 was delivered");
    assert!((0..3).all(|i| !net.replicas[i].is_catching_up()));
    assert_eq!(net.value(0, "y").as_deref(), Some("2"), "L0 got its write back from L2");
    assert_eq!(net.assert_converged(), Ok(()));
}

/// A digest claiming that entries depend on writes of the receiver far beyond anything a causal
/// buffer can hold is a lie: believing it would make a restarted leader void without end.
#[test]
fn a_digest_that_claims_impossible_dependencies_is_rejected_and_counted() {
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    restart(&mut net, 0, ReplicaConfig::default());
    // Past its quiet period, when reports count.
    net.advance(Duration::from_millis(1100));
    let raw = net.raw(0);
    net.replicas[0].handle_timeout(raw);
    net.collect(0);
    net.in_flight.clear();
    let lie = PeerMessage::Digest {
        vv: VersionVector::new(),
        reply: DigestReply::Never,
        held: vec![Seq(u64::MAX)],
        needed: Seq(u64::MAX),
        stable: Box::default(),
        repair: false,
        // A report counts only from a peer that holds the recovering leader sealed.
        recovery: RecoveryStatus { life: 1, phase: RecoveryPhase::Done, sealed: true },
    };
    net.in_flight.push((id(1), id(0), lie));
    net.deliver_all();
    assert_eq!(net.replicas[0].metrics().rejected, 1);
    assert!(net.trace.iter().any(|l| l.contains("malformed digest")), "{:#?}", net.trace);
    assert!(net.trace.iter().all(|l| !l.contains("void")), "nothing voided");
}

/// Issue 16, bug 1 (found outside the project): recovery concluded from answers that went stale
/// before it concluded. L1:1 reaches only L0; L1 restarts; past its quiet period L2 and L3 say
/// they lack L1:1; L0 then copies L1:1 to L2 in anti-entropy and crashes; L0's new life answers
/// too. L1 took the answers as the truth, issued L1:1 again, and L2 kept the old one for good.
/// Peers now seal a recovering leader (refuse its writes they do not hold) before their reports
/// count, so L2 refuses the late copy and the answers stay true.
#[test]
fn recovery_does_not_trust_answers_that_went_stale_before_it_concluded() {
    let mut net = Net::new(4, Topology::AllToAll { relay: false }, ReplicaConfig::default());
    net.cut = vec![(id(1), id(2)), (id(1), id(3))];
    net.write(1, "k", "old"); // L1:1 reaches L0 only
    net.deliver_all();
    net.cut = vec![(id(1), id(0))]; // L0 never hears the restarted L1
    restart(&mut net, 1, ReplicaConfig::default());
    net.deliver_all();
    // Past L1's quiet period, only L1 ticks: L2 and L3 answer that they lack L1:1.
    net.advance(Duration::from_millis(1100));
    let raw = net.raw(1);
    net.replicas[1].handle_timeout(raw);
    net.collect(1);
    net.deliver_all();
    // L2's anti-entropy with L0 copies L1:1 to L2 …
    net.advance(Duration::from_millis(10));
    let raw = net.raw(2);
    net.replicas[2].handle_timeout(raw);
    net.collect(2);
    net.in_flight.retain(|(_, to, _)| *to == id(0));
    net.deliver_all();
    // … and L0 crashes. Its new life answers L1 too.
    net.cut.clear();
    restart(&mut net, 0, ReplicaConfig::default());
    net.deliver_all();
    for _ in 0..6 {
        net.tick_all(Duration::from_millis(600));
        net.deliver_all();
    }
    assert!((0..4).all(|i| !net.replicas[i].is_catching_up()), "{:#?}", net.trace);
    let next = net.write(1, "k", "new");
    net.deliver_all();
    anti_entropy_rounds(&mut net, 3);
    assert_eq!(net.assert_converged(), Ok(()), "dot {next} {:#?}", net.trace);
    for i in 0..4 {
        assert_eq!(net.value(i, "k").as_deref(), Some("new"), "L{i}");
    }
    assert!(!net.trace.iter().any(|l| l.contains("conflicts with the entry already held")), "{:#?}", net.trace);
}

/// Issue 16, bug 2: a client that read siblings at one leader and wrote back at another made
/// that leader's key context name writes it had not applied; after a partition that needed
/// snapshots, each side rejected the other's ("siblings not covered by the snapshot's version
/// vector") for ever. A client must not need to write back where it read.
#[test]
fn siblings_read_at_one_leader_and_written_at_another_converge_after_a_partition() {
    use roundtable_runtime::resolution::{Keyspaces, Resolution, Update};
    use roundtable_runtime::siblings::CausalContext;
    let keyspaces = Keyspaces::default().with("sib", Resolution::Siblings { max_siblings: 8 }).expect("keyspaces");
    let config = ReplicaConfig { keyspaces, log_entries_max: 1, ..ReplicaConfig::default() };
    let mut net = Net::new(2, Topology::AllToAll { relay: false }, config);
    let value = |v: &str| Some(roundtable_runtime::Value::new(v.as_bytes()).expect("value"));
    let put = |v: &str, context: CausalContext| Update::PutWithContext { value: value(v), context };
    net.cut = vec![(id(0), id(1)), (id(1), id(0))];
    net.update(0, "sib/k", put("a", CausalContext::empty())).expect("accepted");
    net.update(1, "sib/k", put("b", CausalContext::empty())).expect("accepted");
    // One client reads at L0 and writes at L1; another reads at L1 and writes at L0.
    let read_at_0 = net.replicas[0].read_siblings(&key("sib/k")).expect("a").context;
    let read_at_1 = net.replicas[1].read_siblings(&key("sib/k")).expect("b").context;
    net.update(1, "sib/k", put("a+b written at L1", read_at_0)).expect("accepted");
    net.update(0, "sib/k", put("a+b written at L0", read_at_1)).expect("accepted");
    net.in_flight.clear();
    net.cut.clear();
    anti_entropy_rounds(&mut net, 4);
    assert!(!net.trace.iter().any(|l| l.contains("siblings not covered")), "{:#?}", net.trace);
    assert_eq!(net.assert_converged(), Ok(()), "{:#?}", net.trace);
    // Each written value saw one of the originals and not the other's rewrite: both stay, and
    // the originals are gone everywhere.
    for i in 0..2 {
        let read = net.replicas[i].read_siblings(&key("sib/k")).expect("siblings");
        let values: Vec<&str> = read.values().map(|v| v.as_str().expect("utf-8")).collect();
        assert_eq!(values, ["a+b written at L0", "a+b written at L1"], "L{i}");
    }
}

/// Issue 16, bug 4: a peer whose needs the log had truncated, and whose snapshot needed more
/// chunks than `snapshot_chunks_max`, never caught up, and the sender resent every chunk at
/// every digest (186 chunks in 30 s). The sender now refuses loudly: nothing is sent, the
/// refusal is traced once and counted each time, and the bound is the one thing to raise.
#[test]
fn a_snapshot_larger_than_its_chunk_bound_is_refused_loudly_and_sends_nothing() {
    let bounded = |max| ReplicaConfig {
        log_entries_max: 2,
        snapshot_chunk_registers: 1,
        snapshot_chunks_max: max,
        ..ReplicaConfig::default()
    };
    let behind = |config: ReplicaConfig| {
        let mut net = Net::new(2, Topology::AllToAll { relay: false }, config);
        net.cut = vec![(id(0), id(1))];
        for k in 0..6 {
            net.write(0, &format!("k{k}"), "v"); // the log keeps 2: L1 will need a snapshot
        }
        net.in_flight.clear();
        net.cut.clear();
        for _ in 0..30 {
            net.tick_all(Duration::from_secs(1));
            net.deliver_all();
        }
        net
    };
    let net = behind(bounded(4));
    assert_eq!(net.replicas[0].metrics().snapshot_chunks_sent, 0, "no chunk that cannot be adopted is sent");
    assert!(net.replicas[0].metrics().snapshots_refused >= 15, "{:?}", net.replicas[0].metrics());
    let refusals: Vec<&String> = net.trace.iter().filter(|l| l.contains("refused: it would take")).collect();
    assert_eq!(
        refusals,
        ["L0 snapshot -> L1 refused: it would take 6 chunks, more than snapshot_chunks_max 4; L1 stays behind"]
    );
    assert!(net.assert_converged().is_err(), "L1 stays behind until the bound is raised");
    // With room for the snapshot, the same history converges.
    let net = behind(bounded(6));
    assert_eq!(net.assert_converged(), Ok(()), "{:#?}", net.trace);
    assert_eq!(net.replicas[0].metrics().snapshots_refused, 0);
}

/// A CRDT key's state must stay within half a frame (so that a snapshot can carry it). A local
/// write checks that against a bound the replica keeps per key instead of measuring the whole
/// state each time; the bound may only over-estimate, so a write is refused exactly when the
/// state as it is plus the write's payload would not fit — for an OR-set (deltas, which carry
/// the element twice once the set has a scoped context) and an operation-based one, with
/// elements of several sizes up to the value bound.
#[test]
fn a_crdt_key_is_refused_exactly_when_it_would_outgrow_half_a_frame() {
    use roundtable_runtime::crdt::{OrSet, OrSetOp};
    use roundtable_runtime::entry::MAX_VALUE_BYTES;
    use roundtable_runtime::resolution::{
        CrdtKind, CrdtOpPayload, CrdtState, CrdtUpdate, Keyspaces, Resolution, Update,
    };
    use roundtable_runtime::{LeaderId, Value, WriteError};
    let budget = (wire::MAX_FRAME_BYTES - wire::FRAME_HEADROOM_BYTES) / 2;
    for kind in [CrdtKind::OrSet, CrdtKind::OpOrSet] {
        for element_bytes in [MAX_VALUE_BYTES, 40_000, 9_999] {
            let config =
                ReplicaConfig { keyspaces: Keyspaces::new(Resolution::Crdt(kind)), ..ReplicaConfig::default() };
            let members: LeaderSet = LeaderId::range(3).collect();
            let mut r = Replica::new(id(0), members, Topology::AllToAll { relay: false }, config).expect("a replica");
            let k = key("set");
            let mut now = roundtable_runtime::WallTime::from_secs(1_800_000_000);
            let mut accepted = 0;
            for i in 0..200u32 {
                now = now.saturating_add(Duration::from_millis(1));
                let mut bytes = vec![b'x'; element_bytes];
                bytes[..4].copy_from_slice(&i.to_be_bytes());
                let v = Value::new(bytes).expect("a value");
                // What the rule says, measured exactly: the state as it is and this add's payload.
                let empty = OrSet::default();
                let set = match r.read_crdt(&k) {
                    Some(CrdtState::OrSet(s)) => s.as_ref(),
                    _ => &empty,
                };
                let payload = match kind {
                    CrdtKind::OrSet => {
                        CrdtOpPayload::Delta(CrdtState::OrSet(Box::new(set.delta_of_add(id(0), v.clone()))))
                    }
                    _ => CrdtOpPayload::SetOp(OrSetOp::Add { element: v.clone(), dot: set.next_dot(id(0)) }),
                };
                let before = r.read_crdt(&k).map_or(0, |s| wire::encoded_len(s).expect("encodes"));
                let fits = before + wire::encoded_len(&payload).expect("encodes") <= budget;
                match r.handle_update(now, k.clone(), Update::Crdt(CrdtUpdate::Add(v))) {
                    Ok(_) => {
                        assert!(fits, "{kind:?}, {element_bytes} B: accepted at {before} B though it does not fit");
                        accepted += 1;
                    }
                    Err(WriteError::KeyTooLarge { limit, .. }) => {
                        assert_eq!(limit, budget);
                        assert!(!fits, "{kind:?}, {element_bytes} B: refused at {before} B with room for it");
                        break;
                    }
                    Err(e) => panic!("{kind:?}: unexpected {e}"),
                }
                let _ = r.take_effects();
            }
            assert!(accepted * element_bytes > budget / 3, "{kind:?}, {element_bytes} B: only {accepted} accepted");
            assert!(accepted < 200, "{kind:?}, {element_bytes} B: never refused");
        }
    }
}
