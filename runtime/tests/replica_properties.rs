//! Property tests of the replication core: causal delivery, duplicate suppression, anti-entropy,
//! version vectors and the wire format. Each property runs at least 256 cases; a failing case
//! prints its inputs, seed included, which replay it exactly.

mod common;

use common::{id, Net, START_SECS};
use proptest::prelude::*;
use roundtable_runtime::rng::SeededRng;
use roundtable_runtime::wire::{self, DigestReply, Envelope, PeerMessage};
use roundtable_runtime::{
    Causality, Dot, Key, LeaderSet, Op, Replica, ReplicaConfig, Seq, Topology, Value, VersionVector, WallTime,
};

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cases(256))]

    /// Any causally generated history, delivered in any order with any duplication, applies each
    /// entry exactly once, never before its dependencies, and all replicas end equal.
    #[test]
    fn causal_delivery_exactly_once_any_order(seed in any::<u64>(), leaders in 2usize..=5, writes in 1usize..40) {
        let mut rng = SeededRng::new(seed);
        let mut net = Net::new(leaders, Topology::AllToAll { relay: false }, ReplicaConfig::default());
        for w in 0..writes {
            // Deliver a few random messages first, so that later writes depend on earlier ones.
            let deliveries = rng.below(4);
            for _ in 0..deliveries {
                if net.in_flight.is_empty() { break; }
                let k = rng.below(net.in_flight.len() as u64) as usize;
                net.deliver(k);
            }
            let at = rng.below(leaders as u64) as usize;
            let key = format!("k{}", rng.below(5));
            net.write(at, &key, &format!("v{w}"));
        }
        // Deliver everything left in a random order, duplicating some messages.
        let mut duplicates_left = 50;
        while !net.in_flight.is_empty() {
            let k = rng.below(net.in_flight.len() as u64) as usize;
            if duplicates_left > 0 && rng.chance(0.3) {
                duplicates_left -= 1;
                let copy = net.in_flight[k].clone();
                net.in_flight.push(copy);
            }
            net.deliver(k);
        }
        prop_assert_eq!(net.check_causal_exactly_once(), Ok(()), "seed {}", seed);
        prop_assert_eq!(net.assert_converged(), Ok(()), "seed {}", seed);
        for r in &net.replicas {
            prop_assert_eq!(r.waiting(), 0, "seed {}: {} still has entries waiting", seed, r.id());
            prop_assert_eq!(r.applied().total(), writes as u64, "seed {}", seed);
        }
    }

    /// Through real replicas: with every topology and nothing failing, each write reaches every
    /// live leader exactly once (no duplicate copies at all, except the relay's flooding), never
    /// returns to its origin, and all live leaders converge.
    #[test]
    fn topologies_deliver_each_write_once_end_to_end(seed in any::<u64>(), leaders in 1usize..=7, writes in 1usize..20, which in 0u8..5, dead in proptest::option::of(0usize..7)) {
        let mut rng = SeededRng::new(seed);
        let members = LeaderSet::first(leaders);
        let hub = id(rng.below(leaders as u64) as usize);
        let topology = match which {
            0 => Topology::Circle,
            1 => Topology::Star { hub },
            2 => Topology::AllToAll { relay: false },
            3 => Topology::AllToAll { relay: true },
            _ => Topology::Custom(roundtable_runtime::topologies::Graph::ring(members)),
        };
        let mut net = Net::new(leaders, topology.clone(), ReplicaConfig::default());
        let mut live = members;
        if let Some(d) = dead.filter(|d| *d < leaders && leaders > 1) {
            live.remove(id(d));
            // A ring graph minus a node is not strongly connected; the others heal around it.
            if matches!(topology, Topology::Custom(_)) { live = members; }
            net.set_live(live);
            net.in_flight.clear();
        }
        let writers: Vec<usize> = live.iter().map(|l| l.index()).collect();
        for w in 0..writes {
            let at = writers[rng.below(writers.len() as u64) as usize];
            net.write(at, &format!("k{}", rng.below(4)), &format!("v{w}"));
            if rng.chance(0.5) { net.deliver_all(); }
        }
        net.deliver_all();
        let mut received = std::collections::BTreeMap::new();
        for (at, event) in &net.events {
            if let roundtable_runtime::TraceEvent::Received { dot, .. } = event {
                prop_assert_ne!(dot.origin, *at, "seed {}: {} got its own write back", seed, at);
                *received.entry((*at, *dot)).or_insert(0u32) += 1;
            }
        }
        prop_assert!(received.values().all(|&n| n == 1), "seed {}", seed);
        prop_assert_eq!(received.len(), writes * (live.len() - 1), "seed {}", seed);
        let duplicates = net.count(|e| matches!(e, roundtable_runtime::TraceEvent::DuplicateDropped { .. }));
        if !matches!(topology, Topology::AllToAll { relay: true }) {
            prop_assert_eq!(duplicates, 0, "seed {}", seed);
        }
        prop_assert_eq!(net.converged(live), Ok(()), "seed {}", seed);
        prop_assert_eq!(net.check_causal_exactly_once(), Ok(()), "seed {}", seed);
    }

    /// Two replicas with arbitrary divergent histories converge after one digest exchange each
    /// way — including when their logs were truncated and only a snapshot can help.
    #[test]
    fn anti_entropy_converges_after_one_exchange(
        seed in any::<u64>(),
        writes_a in 0usize..30,
        writes_b in 0usize..30,
        shared in 0usize..10,
        log_max in prop_oneof![Just(1usize), Just(3), Just(65_536)],
    ) {
        let mut rng = SeededRng::new(seed);
        let config = ReplicaConfig { log_entries_max: log_max, ..ReplicaConfig::default() };
        let mut net = Net::new(2, Topology::AllToAll { relay: false }, config);
        // A shared prefix that both have, then divergent writes whose messages are lost.
        for w in 0..shared {
            let at = rng.below(2) as usize;
            net.write(at, &format!("k{}", rng.below(6)), &format!("s{w}"));
            while !net.in_flight.is_empty() { net.deliver(0); }
        }
        for w in 0..writes_a { net.write(0, &format!("k{}", rng.below(6)), &format!("a{w}")); }
        for w in 0..writes_b { net.write(1, &format!("k{}", rng.below(6)), &format!("b{w}")); }
        net.in_flight.clear();

        // Exchange: A -> B digest; B -> A what A lacks (+ its digest); A -> B what B lacks.
        // (Past the catch-up grace: entries younger than it are presumed still on their way.)
        net.advance(std::time::Duration::from_secs(1));
        net.replicas[0].handle_timeout(net.now);
        net.collect(0);
        for _ in 0..3 {
            let batch: Vec<_> = std::mem::take(&mut net.in_flight);
            for m in batch { net.in_flight.push(m); let last = net.in_flight.len() - 1; net.deliver(last); }
        }
        prop_assert!(net.in_flight.is_empty(), "seed {}: exchange did not settle: {:?}", seed, net.in_flight.len());
        prop_assert_eq!(net.assert_converged(), Ok(()), "seed {}", seed);
        prop_assert_eq!(net.replicas[0].applied().total(), (shared + writes_a + writes_b) as u64);
    }

    /// The causal partial order on version vectors, and merge as its least upper bound.
    #[test]
    fn version_vector_laws(a in vv(), b in vv(), c in vv()) {
        // Partial order: reflexive, antisymmetric, transitive; compare agrees with le.
        prop_assert!(a.le(&a));
        if a.le(&b) && b.le(&a) { prop_assert_eq!(&a, &b); }
        if a.le(&b) && b.le(&c) { prop_assert!(a.le(&c)); }
        let expected = match (a.le(&b), b.le(&a)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (false, false) => Causality::Concurrent,
        };
        prop_assert_eq!(a.compare(&b), expected);
        // Merge: commutative, associative, idempotent, least upper bound.
        let join = |x: &VersionVector, y: &VersionVector| { let mut z = x.clone(); z.merge(y); z };
        prop_assert_eq!(join(&a, &b), join(&b, &a));
        prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
        prop_assert_eq!(join(&a, &a), a.clone());
        let ab = join(&a, &b);
        prop_assert!(a.le(&ab) && b.le(&ab));
        if a.le(&c) && b.le(&c) { prop_assert!(ab.le(&c)); }
        // Meet is the greatest lower bound.
        let mut m = a.clone(); m.meet(&b);
        prop_assert!(m.le(&a) && m.le(&b));
        if c.le(&a) && c.le(&b) { prop_assert!(c.le(&m)); }
    }

    /// Every message round-trips through the wire format.
    #[test]
    fn wire_round_trips(msg in peer_message(), from in 0usize..64) {
        let env = Envelope::new(id(from), msg);
        let bytes = wire::encode(&env).expect("fits a frame");
        // In-process transports count a message's bytes without encoding it: the same length.
        prop_assert_eq!(wire::frame_len(env.from, &env.body), Ok(bytes.len()));
        prop_assert_eq!(wire::decode(&bytes), Ok(env));
    }

    /// Random bytes never panic the decoder, and neither does a valid frame with bytes flipped.
    #[test]
    fn wire_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), msg in peer_message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let _ = wire::decode(&bytes);
        let mut frame = wire::encode(&Envelope::new(id(1), msg)).expect("fits");
        for (at, x) in flips { let n = frame.len(); frame[at % n] ^= x | 1; }
        let _ = wire::decode(&frame);
        // A replica fed the garbage counts a rejection or applies something well-formed; it never panics.
        let mut r = Replica::new(id(0), LeaderSet::first(3), Topology::Circle, ReplicaConfig::default()).expect("replica");
        r.handle_frame(WallTime::from_secs(START_SECS), id(1), &bytes);
        r.handle_frame(WallTime::from_secs(START_SECS), id(1), &frame);
    }
}

fn vv() -> impl Strategy<Value = VersionVector> {
    proptest::collection::vec(0u64..6, 0..6).prop_map(|counts| {
        let mut v = VersionVector::new();
        for (i, n) in counts.into_iter().enumerate() {
            v.set(id(i), Seq(n));
        }
        v
    })
}

fn entry() -> impl Strategy<Value = roundtable_runtime::Entry> {
    (
        0usize..64,
        1u64..1000,
        vv(),
        "[a-z:0-9]{1,20}",
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        any::<u64>(),
    )
        .prop_map(|(origin, seq, mut deps, key, value, t)| {
            let origin = id(origin);
            deps.set(origin, Seq(seq - 1));
            let hlc = roundtable_runtime::clock::HlcTimestamp::from_compact(t >> 16 << 16 | (t & 0xffff), origin);
            roundtable_runtime::Entry {
                dot: Dot::new(origin, Seq(seq)),
                hlc,
                deps,
                key: Key::new(key).expect("non-empty"),
                op: match value {
                    Some(v) => Op::Put(Value::new(v).expect("small")),
                    None => Op::Delete,
                },
            }
        })
}

fn peer_message() -> impl Strategy<Value = PeerMessage> {
    prop_oneof![
        (proptest::collection::vec((entry(), any::<u64>()), 0..5), any::<bool>()).prop_map(|(es, catch_up)| {
            PeerMessage::Replicate {
                entries: es
                    .into_iter()
                    .map(|(entry, bits)| wire::ReplicatedEntry {
                        entry: entry.into(),
                        seen_by: LeaderSet::from_bits(bits),
                    })
                    .collect(),
                catch_up,
            }
        }),
        (vv(), prop_oneof![Just(DigestReply::Never), Just(DigestReply::IfBehind), Just(DigestReply::Always)]).prop_map(
            |(vv, reply)| PeerMessage::Digest {
                vv,
                reply,
                held: vec![],
                needed: Default::default(),
                stable: Default::default(),
                repair: false,
                recovery: Default::default(),
            }
        ),
        (vv(), proptest::collection::vec(entry(), 0..4), any::<u64>(), 0u32..4, 1u32..5).prop_map(
            |(vv, es, id, index, count)| {
                PeerMessage::Snapshot(roundtable_runtime::store::SnapshotChunk {
                    id,
                    index,
                    count,
                    vv,
                    registers: es
                        .into_iter()
                        .map(|e| {
                            let value = match e.op {
                                Op::Put(v) => Some(v),
                                _ => None,
                            };
                            (e.key.clone(), roundtable_runtime::store::Register { value, hlc: e.hlc, dot: e.dot })
                        })
                        .collect(),
                    siblings: Vec::new(),
                    crdts: Vec::new(),
                })
            }
        ),
    ]
}
