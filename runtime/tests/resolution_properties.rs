//! Every conflict resolution through real replicas: with 5 leaders all-to-all, 10% of messages
//! dropped and 10% duplicated, anti-entropy repairs the losses and every CRDT converges to what
//! a sequential oracle computes from the same operations; siblings converge and lose nothing.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Net;
use proptest::prelude::*;
use roundtable_runtime::crdt::CausalContext as CrdtContext;
use roundtable_runtime::resolution::{CrdtKind, CrdtState, CrdtUpdate, Keyspaces, Resolution, Update};
use roundtable_runtime::rng::SeededRng;
use roundtable_runtime::{Key, ReplicaConfig, Topology, Value, WriteError};

fn keyspaces() -> Keyspaces {
    let mut ks = Keyspaces::default();
    for (name, r) in [
        ("g", Resolution::Crdt(CrdtKind::GCounter)),
        ("pn", Resolution::Crdt(CrdtKind::PnCounter)),
        ("opc", Resolution::Crdt(CrdtKind::OpCounter)),
        ("gs", Resolution::Crdt(CrdtKind::GSet)),
        ("tp", Resolution::Crdt(CrdtKind::TwoPSet)),
        ("or", Resolution::Crdt(CrdtKind::OrSet)),
        ("reg", Resolution::Crdt(CrdtKind::LwwRegister)),
        ("mv", Resolution::Crdt(CrdtKind::MvRegister)),
        ("sib", Resolution::Siblings { max_siblings: 8 }),
        ("oset", Resolution::Crdt(CrdtKind::OpOrSet)),
        ("cmap", Resolution::Crdt(CrdtKind::CounterMap)),
    ] {
        ks = ks.with(name, r).expect("valid keyspace");
    }
    ks
}

fn v(s: impl AsRef<str>) -> Value {
    Value::new(s.as_ref().as_bytes()).expect("small")
}

/// Delivers what is in flight, dropping and duplicating at the given rates.
fn lossy_delivery(net: &mut Net, rng: &mut SeededRng, drop: f64, dup: f64) {
    for _ in 0..1_000_000 {
        if net.in_flight.is_empty() {
            return;
        }
        let k = rng.below(net.in_flight.len() as u64) as usize;
        if rng.chance(drop) {
            net.in_flight.remove(k);
            continue;
        }
        if rng.chance(dup) {
            let copy = net.in_flight[k].clone();
            net.in_flight.push(copy);
        }
        net.deliver(k);
    }
}

#[derive(Default)]
struct Oracle {
    g: u64,
    pn: i128,
    opc: i128,
    gs: BTreeSet<String>,
    tp_added: BTreeSet<String>,
    tp_removed: BTreeSet<String>,
    or_added: BTreeSet<String>,
    or_never_removed: BTreeSet<String>,
    reg: Option<(roundtable_runtime::clock::HlcTimestamp, String)>,
    oset_added: BTreeSet<String>,
    cmap: std::collections::BTreeMap<String, i128>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_resolution_converges_under_loss_and_duplication(seed in any::<u64>(), ops in 5usize..60) {
        let mut rng = SeededRng::new(seed);
        let config = ReplicaConfig { keyspaces: keyspaces(), ..ReplicaConfig::default() };
        let mut net = Net::new(5, Topology::AllToAll { relay: false }, config);
        let mut oracle = Oracle::default();
        let mut or_removes: Vec<String> = Vec::new();
        let mut oset_removes: Vec<String> = Vec::new();
        for n in 0..ops {
            let at = rng.below(5) as usize;
            let e = format!("e{}", rng.below(4));
            let amount = 1 + rng.below(5);
            let (key, update) = match rng.below(12) {
                0 => { oracle.g += amount; ("g/x", Update::Crdt(CrdtUpdate::Increment(amount))) }
                1 => if rng.chance(0.5) {
                    oracle.pn += amount as i128; ("pn/x", Update::Crdt(CrdtUpdate::Increment(amount)))
                } else {
                    oracle.pn -= amount as i128; ("pn/x", Update::Crdt(CrdtUpdate::Decrement(amount)))
                },
                2 => if rng.chance(0.5) {
                    oracle.opc += amount as i128; ("opc/x", Update::Crdt(CrdtUpdate::Increment(amount)))
                } else {
                    oracle.opc -= amount as i128; ("opc/x", Update::Crdt(CrdtUpdate::Decrement(amount)))
                },
                3 => { oracle.gs.insert(e.clone()); ("gs/x", Update::Crdt(CrdtUpdate::Add(v(&e)))) }
                4 => if rng.chance(0.6) {
                    oracle.tp_added.insert(e.clone()); ("tp/x", Update::Crdt(CrdtUpdate::Add(v(&e))))
                } else {
                    oracle.tp_removed.insert(e.clone()); ("tp/x", Update::Crdt(CrdtUpdate::Remove(v(&e))))
                },
                5 => if rng.chance(0.6) {
                    oracle.or_added.insert(e.clone()); ("or/x", Update::Crdt(CrdtUpdate::Add(v(&e))))
                } else {
                    or_removes.push(e.clone()); ("or/x", Update::Crdt(CrdtUpdate::Remove(v(&e))))
                },
                6 => ("reg/x", Update::Crdt(CrdtUpdate::Set { value: v(format!("r{n}")), context: None })),
                10 => if rng.chance(0.6) {
                    oracle.oset_added.insert(e.clone()); ("oset/x", Update::Crdt(CrdtUpdate::Add(v(&e))))
                } else {
                    oset_removes.push(e.clone()); ("oset/x", Update::Crdt(CrdtUpdate::Remove(v(&e))))
                },
                11 => {
                    let field = format!("f{}", rng.below(3));
                    if rng.chance(0.8) {
                        *oracle.cmap.entry(field.clone()).or_insert(0) += amount as i128;
                        ("cmap/x", Update::Crdt(CrdtUpdate::MapIncrement { field: v(&field), amount }))
                    } else {
                        *oracle.cmap.entry(field.clone()).or_insert(0) -= amount as i128;
                        ("cmap/x", Update::Crdt(CrdtUpdate::MapDecrement { field: v(&field), amount }))
                    }
                }
                7 => {
                    let seen = net.replicas[at].read_crdt(&Key::new("mv/x").expect("key")).and_then(|s| match s {
                        CrdtState::MvRegister(r) => Some(r.read_context()),
                        _ => None,
                    });
                    let context = if rng.chance(0.5) { seen } else { Some(CrdtContext::new()) };
                    ("mv/x", Update::Crdt(CrdtUpdate::Set { value: v(format!("m{n}")), context }))
                }
                _ => {
                    let context = net.replicas[at].read_siblings(&Key::new("sib/x").expect("key")).map(|r| r.context);
                    match context {
                        Some(context) if rng.chance(0.5) => ("sib/x", Update::PutWithContext { value: Some(v(format!("s{n}"))), context }),
                        _ => ("sib/x", Update::Put(v(format!("s{n}")))),
                    }
                }
            };
            let is_reg = key == "reg/x";
            match net.update(at, key, update) {
                Ok(dot) => {
                    if is_reg {
                        let hlc = net.replicas[at].read_crdt(&Key::new("reg/x").expect("key")).and_then(|s| match s {
                            CrdtState::LwwRegister(r) => r.timestamp(),
                            _ => None,
                        });
                        let _ = dot;
                        if let Some(hlc) = hlc {
                            if oracle.reg.as_ref().is_none_or(|(t, _)| hlc > *t) {
                                oracle.reg = Some((hlc, format!("r{n}")));
                            }
                        }
                    }
                }
                Err(WriteError::TooManySiblings(_)) => {}
                Err(e) => prop_assert!(false, "seed {}: update refused: {}", seed, e),
            }
            if rng.chance(0.3) { lossy_delivery(&mut net, &mut rng, 0.1, 0.1); }
        }
        lossy_delivery(&mut net, &mut rng, 0.1, 0.1);
        // Anti-entropy repairs what was lost (no more loss while it does).
        for _ in 0..4 {
            net.tick_all(Duration::from_secs(2));
            net.deliver_all();
        }
        prop_assert_eq!(net.assert_converged(), Ok(()), "seed {}", seed);
        prop_assert_eq!(net.check_causal_exactly_once(), Ok(()), "seed {}", seed);
        let r = &net.replicas[0];
        let get = |k: &str| r.read_crdt(&Key::new(k).expect("key")).cloned();
        match get("g/x") { Some(CrdtState::GCounter(c)) => prop_assert_eq!(c.value(), oracle.g, "seed {}", seed), None => prop_assert_eq!(oracle.g, 0), s => prop_assert!(false, "{:?}", s) }
        match get("pn/x") { Some(CrdtState::PnCounter(c)) => prop_assert_eq!(c.value(), oracle.pn, "seed {}", seed), None => prop_assert_eq!(oracle.pn, 0), s => prop_assert!(false, "{:?}", s) }
        match get("opc/x") { Some(CrdtState::PnCounter(c)) => prop_assert_eq!(c.value(), oracle.opc, "seed {}", seed), None => prop_assert_eq!(oracle.opc, 0), s => prop_assert!(false, "{:?}", s) }
        let strings = |set: &BTreeSet<Value>| set.iter().map(|x| x.as_str().unwrap_or("").to_owned()).collect::<BTreeSet<String>>();
        match get("gs/x") { Some(CrdtState::GSet(s)) => prop_assert_eq!(strings(s.value()), oracle.gs.clone()), None => prop_assert!(oracle.gs.is_empty()), s => prop_assert!(false, "{:?}", s) }
        let tp_expected: BTreeSet<String> = oracle.tp_added.difference(&oracle.tp_removed).cloned().collect();
        match get("tp/x") { Some(CrdtState::TwoPSet(s)) => prop_assert_eq!(strings(s.value()), tp_expected), None => prop_assert!(oracle.tp_added.is_empty()), s => prop_assert!(false, "{:?}", s) }
        oracle.or_never_removed = oracle.or_added.iter().filter(|e| !or_removes.contains(e)).cloned().collect();
        if let Some(CrdtState::OrSet(s)) = get("or/x") {
            let value = strings(&s.value());
            prop_assert!(value.is_subset(&oracle.or_added), "seed {}: OR-set holds what nobody added", seed);
            prop_assert!(oracle.or_never_removed.is_subset(&value), "seed {}: OR-set lost an add nobody removed", seed);
        }
        if let Some(CrdtState::OrSet(s)) = get("oset/x") {
            let value = strings(&s.value());
            let never_removed: BTreeSet<String> = oracle.oset_added.iter().filter(|e| !oset_removes.contains(e)).cloned().collect();
            prop_assert!(value.is_subset(&oracle.oset_added), "seed {}: op OR-set holds what nobody added", seed);
            prop_assert!(never_removed.is_subset(&value), "seed {}: op OR-set lost an add nobody removed", seed);
        }
        // No field is ever removed, so every field's counter is the sum of its updates.
        match get("cmap/x") {
            Some(CrdtState::CounterMap(m)) => {
                let got: std::collections::BTreeMap<String, i128> =
                    m.iter().map(|(f, c)| (f.as_str().unwrap_or("").to_owned(), c.value())).collect();
                prop_assert_eq!(got, oracle.cmap.clone(), "seed {}", seed);
            }
            None => prop_assert!(oracle.cmap.is_empty()),
            s => prop_assert!(false, "{:?}", s),
        }
        if let Some((_, expected)) = &oracle.reg {
            match get("reg/x") { Some(CrdtState::LwwRegister(reg)) => prop_assert_eq!(reg.value().and_then(|x| x.as_str()), Some(expected.as_str())), s => prop_assert!(false, "{:?}", s) }
        }
    }
}
