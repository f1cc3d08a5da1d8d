//! Property tests of the CRDT module: the laws of state-based CRDTs, deltas, operation-based
//! commutativity, add-wins, and a sequential oracle for every type.
//!
//! State-based types run random *histories* at 2–5 leaders: mutations at random leaders,
//! full-state merges between random pairs, and delta gossip through a small [`DeltaBuffer`]
//! (some shipments lost, so the full-state fall-back is exercised). Every state the laws are
//! checked on is reachable — produced by such a history, never an arbitrary struct. For each type:
//! - merge is commutative, associative and idempotent on states taken from the history;
//! - every mutator is a δ-mutator (`after == before ⊔ delta`), and the deltas of the history,
//!   merged in any order and any number of times, equal the merge of the final full states;
//! - after delta gossip settles, every replica holds the same state, and its value is what a
//!   sequential oracle computes from the operations and their causal pasts.
//!
//! The oracles: counters sum their increments (minus decrements); a G-set is the union of its
//! inserts; a 2P-set is its inserts minus its removes; an LWW register holds the write with the
//! greatest timestamp; an MV register holds the writes no other write saw; an add-wins set (and
//! an OR-map's key set) holds the elements with an add that no remove saw.
//!
//! Operation-based types apply the same operations in random causal-order-respecting
//! permutations and must agree with each other and with the oracle.
//!
//! Every property runs at least 256 cases; on failure proptest prints the minimal failing input
//! (a history and a seed), which replays exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use proptest::prelude::*;
use proptest::sample::Index;
use roundtable_runtime::clock::HlcTimestamp;
use roundtable_runtime::crdt::{
    CausalContext, DeltaBuffer, DeltaSeq, GCounter, GSet, LwwRegister, MvRegister, OpCrdt, OpOrSet, OpPnCounter, OrMap,
    OrSet, OrSetOp, PnCounter, PnCounterOp, StateCrdt, TwoPSet,
};
use roundtable_runtime::rng::SeededRng;
use roundtable_runtime::{Dot, LeaderId, Seq};

/// The most events in one generated history.
const EVENTS_MAX: usize = 40;
/// Elements are drawn from `0..ELEMENTS`, so adds and removes of the same element meet.
const ELEMENTS: u8 = 5;
/// Map keys are drawn from `0..KEYS`.
const KEYS: u8 = 3;
/// A small delta buffer, so lagging peers fall back to full state.
const BUFFER_CAPACITY: usize = 3;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

fn leader(i: usize) -> LeaderId {
    LeaderId::new(i % 64).expect("leader id below 64")
}

/// An operation of the test history, with the ids of the operations its replica had seen.
#[derive(Clone, Debug)]
struct Recorded<O> {
    id: usize,
    /// The leader that performed it.
    at: LeaderId,
    /// Its position in the history (unique).
    event: usize,
    op: O,
    past: BTreeSet<usize>,
}

/// A state-based CRDT under test: how to generate and perform operations, read the value, and
/// compute the expected value from the recorded operations.
trait Model: StateCrdt + Debug {
    type Op: Clone + Debug + 'static;
    type Value: PartialEq + Debug;
    fn op() -> BoxedStrategy<Self::Op>;
    /// Performs `op` at `at` and returns the delta; `event` is unique in the history.
    fn mutate(&mut self, at: LeaderId, op: &Self::Op, event: usize) -> Self;
    fn read(&self) -> Self::Value;
    fn oracle(ops: &[Recorded<Self::Op>]) -> Self::Value;
}

/// One step of a history; leader indices are taken modulo the cluster size.
#[derive(Clone, Debug)]
enum Event<O> {
    /// Leader `at` performs `op`.
    Mutate { at: usize, op: O },
    /// `to` merges `from`'s full state.
    Merge { from: usize, to: usize },
    /// `from` ships `to` what its delta buffer says `to` lacks (deltas or full state); a lost
    /// shipment is not acknowledged.
    Gossip { from: usize, to: usize, lost: bool },
}

fn event<O: Clone + Debug + 'static>(op: BoxedStrategy<O>) -> impl Strategy<Value = Event<O>> {
    prop_oneof![
        4 => (0usize..5, op).prop_map(|(at, op)| Event::Mutate { at, op }),
        1 => (0usize..5, 0usize..5).prop_map(|(from, to)| Event::Merge { from, to }),
        2 => (0usize..5, 0usize..5, prop::bool::weighted(0.2)).prop_map(|(from, to, lost)| Event::Gossip { from, to, lost }),
    ]
}

/// A cluster size, a history, and a seed for the orders the test picks.
#[derive(Clone, Debug)]
struct Scenario<O> {
    leaders: usize,
    events: Vec<Event<O>>,
    seed: u64,
}

fn scenario<C: Model>() -> impl Strategy<Value = Scenario<C::Op>> {
    (2usize..=5, prop::collection::vec(event(C::op()), 0..EVENTS_MAX), any::<u64>())
        .prop_map(|(leaders, events, seed)| Scenario { leaders, events, seed })
}

struct Replica<C> {
    state: C,
    buffer: DeltaBuffer<C>,
    /// `acked[j]`: what peer `j` acknowledged from this replica's buffer.
    acked: Vec<DeltaSeq>,
    /// The ids of the operations this replica's state reflects.
    knows: BTreeSet<usize>,
}

/// The outcome of a history.
struct Run<C: Model> {
    replicas: Vec<Replica<C>>,
    /// Every delta a mutator returned, in history order.
    deltas: Vec<C>,
    ops: Vec<Recorded<C::Op>>,
    /// Every state any replica passed through (starting with bottom).
    snapshots: Vec<C>,
}

impl<C: Model> Run<C> {
    fn gossip(&mut self, from: usize, to: usize, lost: bool) {
        if from == to {
            return;
        }
        let shipment = self.replicas[from].buffer.ship(&self.replicas[from].state, self.replicas[from].acked[to]);
        let (Some(payload), Some(upto)) = (shipment.payload(), shipment.upto()) else { return };
        if lost {
            return;
        }
        let knows = self.replicas[from].knows.clone();
        receive(&mut self.replicas[to], payload, &knows);
        self.replicas[from].acked[to] = upto;
        self.snapshots.push(self.replicas[to].state.clone());
    }

    /// Gossips all-to-all without loss until every replica is up to date.
    fn settle(&mut self) {
        let n = self.replicas.len();
        for _round in 0..=n {
            for from in 0..n {
                for to in 0..n {
                    self.gossip(from, to, false);
                }
            }
        }
    }

    fn join_of_states(&self) -> C {
        self.replicas.iter().fold(C::default(), |joined, replica| joined.merged(&replica.state))
    }
}

/// `to` merges `payload` (from a replica that knows `knows`); a payload that changed the state is
/// buffered for forwarding.
fn receive<C: StateCrdt>(to: &mut Replica<C>, payload: &C, knows: &BTreeSet<usize>) {
    let before = to.state.clone();
    to.state.merge(payload);
    if to.state != before {
        to.buffer.push(payload.clone());
    }
    to.knows.extend(knows.iter().copied());
}

/// Runs a history, checking along the way that every mutator returns a δ-mutation.
fn run<C: Model>(scenario: &Scenario<C::Op>) -> Result<Run<C>, TestCaseError> {
    let n = scenario.leaders;
    let replicas = (0..n)
        .map(|_| Replica {
            state: C::default(),
            buffer: DeltaBuffer::new(BUFFER_CAPACITY),
            acked: vec![DeltaSeq(0); n],
            knows: BTreeSet::new(),
        })
        .collect();
    let mut run = Run { replicas, deltas: Vec::new(), ops: Vec::new(), snapshots: vec![C::default()] };
    for (index, event) in scenario.events.iter().enumerate() {
        match event {
            Event::Mutate { at, op } => {
                let replica = &mut run.replicas[at % n];
                let before = replica.state.clone();
                let delta = replica.state.mutate(leader(at % n), op, index);
                prop_assert_eq!(&before.merged(&delta), &replica.state, "not a δ-mutation: {:?}", op);
                replica.buffer.push(delta.clone());
                let id = run.ops.len();
                run.ops.push(Recorded {
                    id,
                    at: leader(at % n),
                    event: index,
                    op: op.clone(),
                    past: replica.knows.clone(),
                });
                replica.knows.insert(id);
                run.deltas.push(delta);
                run.snapshots.push(replica.state.clone());
            }
            Event::Merge { from, to } => {
                let (from, to) = (from % n, to % n);
                if from != to {
                    let (payload, knows) = (run.replicas[from].state.clone(), run.replicas[from].knows.clone());
                    receive(&mut run.replicas[to], &payload, &knows);
                    run.snapshots.push(run.replicas[to].state.clone());
                }
            }
            Event::Gossip { from, to, lost } => run.gossip(from % n, to % n, *lost),
        }
    }
    Ok(run)
}

/// Merge is commutative, associative and idempotent, and bottom is its identity, on three states
/// the history passed through.
fn check_merge_laws<C: Model>(scenario: &Scenario<C::Op>, picks: [Index; 3]) -> Result<(), TestCaseError> {
    let run = run::<C>(scenario)?;
    let states = &run.snapshots;
    let [a, b, c] = picks.map(|pick| states[pick.index(states.len())].clone());
    prop_assert_eq!(a.clone().merged(&b), b.clone().merged(&a), "commutativity");
    prop_assert_eq!(a.clone().merged(&b).merged(&c), a.clone().merged(&b.clone().merged(&c)), "associativity");
    prop_assert_eq!(a.clone().merged(&a), a.clone(), "idempotence");
    prop_assert_eq!(a.clone().merged(&C::default()), a.clone(), "bottom is the identity");
    prop_assert_eq!(C::default().merged(&a), a.clone(), "bottom is the identity");
    // The final states too, all of them, in both orders.
    let forward = run.join_of_states();
    let backward = run.replicas.iter().rev().fold(C::default(), |joined, replica| joined.merged(&replica.state));
    prop_assert_eq!(forward, backward);
    Ok(())
}

/// The deltas of the history, merged in a random order with random duplicates, equal the merge of
/// the final full states.
fn check_deltas<C: Model>(scenario: &Scenario<C::Op>) -> Result<(), TestCaseError> {
    let run = run::<C>(scenario)?;
    let mut rng = SeededRng::new(scenario.seed);
    let k = run.deltas.len();
    let mut order: Vec<usize> = (0..k).collect();
    let duplicates = rng.below(k as u64 + 1) as usize;
    order.extend((0..duplicates).map(|_| rng.below(k as u64) as usize));
    rng.shuffle(&mut order);
    let from_deltas = order.iter().fold(C::default(), |joined, &i| joined.merged(&run.deltas[i]));
    prop_assert_eq!(&from_deltas, &run.join_of_states());
    // Merged onto any state of the history, they give the same.
    let start = run.snapshots[rng.below(run.snapshots.len() as u64) as usize].clone();
    prop_assert_eq!(order.iter().fold(start, |joined, &i| joined.merged(&run.deltas[i])), from_deltas);
    Ok(())
}

/// After lossless delta gossip, all replicas are equal, hold no out-of-order dots, equal the merge
/// of all states, and read what the oracle computes.
fn check_convergence<C: Model>(scenario: &Scenario<C::Op>) -> Result<(), TestCaseError> {
    let mut run = run::<C>(scenario)?;
    let joined = run.join_of_states();
    run.settle();
    for replica in &run.replicas {
        prop_assert_eq!(&replica.state, &joined);
        prop_assert_eq!(replica.state.dot_cloud_len(), 0);
    }
    prop_assert_eq!(joined.read(), C::oracle(&run.ops));
    Ok(())
}

macro_rules! state_laws {
    ($module:ident, $type:ty) => {
        mod $module {
            use super::*;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn merge_is_commutative_associative_idempotent(
                    scenario in scenario::<$type>(),
                    picks in any::<[Index; 3]>(),
                ) {
                    check_merge_laws::<$type>(&scenario, picks)?;
                }

                #[test]
                fn deltas_in_any_order_and_multiplicity_equal_the_full_state_merge(scenario in scenario::<$type>()) {
                    check_deltas::<$type>(&scenario)?;
                }

                #[test]
                fn delta_gossip_converges_to_the_oracle(scenario in scenario::<$type>()) {
                    check_convergence::<$type>(&scenario)?;
                }
            }
        }
    };
}

state_laws!(g_counter, GCounter);
state_laws!(pn_counter, PnCounter);
state_laws!(g_set, GSet<u8>);
state_laws!(two_p_set, TwoPSet<u8>);
state_laws!(or_set, OrSet<u8>);
state_laws!(lww_register, LwwRegister<u8>);
state_laws!(mv_register, MvRegister<u8>);
state_laws!(or_map_of_counters, OrMap<u8, GCounter>);
state_laws!(or_map_of_sets, OrMap<u8, OrSet<u8>>);

// ---- Models and oracles ----

fn element() -> impl Strategy<Value = u8> {
    0..ELEMENTS
}

/// Add or remove of an element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOp {
    Add(u8),
    Remove(u8),
}

fn set_op() -> BoxedStrategy<SetOp> {
    prop_oneof![3 => element().prop_map(SetOp::Add), 2 => element().prop_map(SetOp::Remove)].boxed()
}

/// Add-wins: the elements with an add that no remove of the same element had seen.
fn add_wins_oracle<'a>(ops: impl Iterator<Item = (&'a BTreeSet<usize>, usize, SetOp)> + Clone) -> BTreeSet<u8> {
    let mut present = BTreeSet::new();
    for (_, add_id, op) in ops.clone() {
        let SetOp::Add(element) = op else { continue };
        let removed = ops.clone().any(|(past, _, other)| other == SetOp::Remove(element) && past.contains(&add_id));
        if !removed {
            present.insert(element);
        }
    }
    present
}

impl Model for GCounter {
    type Op = u64;
    type Value = u64;
    fn op() -> BoxedStrategy<u64> {
        (0u64..1000).boxed()
    }
    fn mutate(&mut self, at: LeaderId, amount: &u64, _: usize) -> Self {
        let pure = self.delta_of_increment(at, *amount);
        let delta = self.increment(at, *amount);
        assert_eq!(pure, delta, "delta_of_increment is the delta increment returns");
        delta
    }
    fn read(&self) -> u64 {
        self.value()
    }
    fn oracle(ops: &[Recorded<u64>]) -> u64 {
        ops.iter().map(|r| r.op).sum()
    }
}

impl Model for PnCounter {
    /// (increment?, amount)
    type Op = (bool, u64);
    type Value = i128;
    fn op() -> BoxedStrategy<(bool, u64)> {
        (any::<bool>(), 0u64..1000).boxed()
    }
    fn mutate(&mut self, at: LeaderId, &(up, amount): &(bool, u64), _: usize) -> Self {
        let (pure, delta) = if up {
            (self.delta_of_increment(at, amount), self.increment(at, amount))
        } else {
            (self.delta_of_decrement(at, amount), self.decrement(at, amount))
        };
        assert_eq!(pure, delta, "the delta_of_ functions give the delta the update returns");
        delta
    }
    fn read(&self) -> i128 {
        self.value()
    }
    fn oracle(ops: &[Recorded<(bool, u64)>]) -> i128 {
        ops.iter().map(|r| if r.op.0 { i128::from(r.op.1) } else { -i128::from(r.op.1) }).sum()
    }
}

impl Model for GSet<u8> {
    type Op = u8;
    type Value = BTreeSet<u8>;
    fn op() -> BoxedStrategy<u8> {
        element().boxed()
    }
    fn mutate(&mut self, _: LeaderId, element: &u8, _: usize) -> Self {
        let pure = self.delta_of_insert(*element);
        let delta = self.insert(*element);
        assert_eq!(pure, delta, "delta_of_insert is the delta insert returns");
        delta
    }
    fn read(&self) -> BTreeSet<u8> {
        self.value().clone()
    }
    fn oracle(ops: &[Recorded<u8>]) -> BTreeSet<u8> {
        ops.iter().map(|r| r.op).collect()
    }
}

impl Model for TwoPSet<u8> {
    type Op = SetOp;
    type Value = BTreeSet<u8>;
    fn op() -> BoxedStrategy<SetOp> {
        set_op()
    }
    fn mutate(&mut self, _: LeaderId, op: &SetOp, _: usize) -> Self {
        let (pure, delta) = match *op {
            SetOp::Add(element) => (self.delta_of_insert(element), self.insert(element)),
            SetOp::Remove(element) => (self.delta_of_remove(element), self.remove(element)),
        };
        assert_eq!(pure, delta, "the delta_of_ functions give the delta the update returns");
        delta
    }
    fn read(&self) -> BTreeSet<u8> {
        self.value().clone()
    }
    fn oracle(ops: &[Recorded<SetOp>]) -> BTreeSet<u8> {
        let adds: BTreeSet<u8> =
            ops.iter().filter_map(|r| if let SetOp::Add(e) = r.op { Some(e) } else { None }).collect();
        let removes: BTreeSet<u8> =
            ops.iter().filter_map(|r| if let SetOp::Remove(e) = r.op { Some(e) } else { None }).collect();
        adds.difference(&removes).copied().collect()
    }
}

impl Model for OrSet<u8> {
    type Op = SetOp;
    type Value = BTreeSet<u8>;
    fn op() -> BoxedStrategy<SetOp> {
        set_op()
    }
    fn mutate(&mut self, at: LeaderId, op: &SetOp, _: usize) -> Self {
        // A leader computes its delta from the state without changing (or copying) it; the
        // runtime relies on that being the delta the update itself returns.
        let (pure, delta) = match *op {
            SetOp::Add(element) => (self.delta_of_add(at, element), self.add(at, element)),
            SetOp::Remove(element) => (self.delta_of_remove(&element), self.remove(&element)),
        };
        assert_eq!(pure, delta, "delta_of_add / delta_of_remove give the delta add / remove return");
        delta
    }
    fn read(&self) -> BTreeSet<u8> {
        self.value()
    }
    fn oracle(ops: &[Recorded<SetOp>]) -> BTreeSet<u8> {
        add_wins_oracle(ops.iter().map(|r| (&r.past, r.id, r.op)))
    }
}

/// A timestamp whose logical part is the event number, so no two writes share one.
fn timestamp(ticks: u64, event: usize, at: LeaderId) -> HlcTimestamp {
    let logical = u16::try_from(event).expect("fewer than 65536 events");
    HlcTimestamp::new(ticks, logical, at).expect("ticks in range")
}

impl Model for LwwRegister<u8> {
    /// (physical ticks, value); the logical part is the event number, so timestamps are unique.
    type Op = (u64, u8);
    /// The winning timestamp and value.
    type Value = Option<(HlcTimestamp, u8)>;
    fn op() -> BoxedStrategy<(u64, u8)> {
        (0u64..20, any::<u8>()).boxed()
    }
    fn mutate(&mut self, at: LeaderId, &(ticks, value): &(u64, u8), event: usize) -> Self {
        let pure = self.delta_of_set(timestamp(ticks, event, at), value);
        let delta = self.set(timestamp(ticks, event, at), value);
        assert_eq!(pure, delta, "delta_of_set is the delta set returns");
        delta
    }
    fn read(&self) -> Option<(HlcTimestamp, u8)> {
        self.timestamp().zip(self.value().copied())
    }
    fn oracle(ops: &[Recorded<(u64, u8)>]) -> Option<(HlcTimestamp, u8)> {
        ops.iter().map(|r| (timestamp(r.op.0, r.event, r.at), r.op.1)).max()
    }
}

impl Model for MvRegister<u8> {
    type Op = u8;
    /// The present values, sorted.
    type Value = Vec<u8>;
    fn op() -> BoxedStrategy<u8> {
        any::<u8>().boxed()
    }
    fn mutate(&mut self, at: LeaderId, value: &u8, _: usize) -> Self {
        self.write(at, *value)
    }
    fn read(&self) -> Vec<u8> {
        let mut values: Vec<u8> = self.values().copied().collect();
        values.sort_unstable();
        values
    }
    fn oracle(ops: &[Recorded<u8>]) -> Vec<u8> {
        // The writes no other write saw.
        let mut values: Vec<u8> =
            ops.iter().filter(|w| !ops.iter().any(|other| other.past.contains(&w.id))).map(|w| w.op).collect();
        values.sort_unstable();
        values
    }
}

/// An update or removal of a map key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MapOp<U> {
    Update(u8, U),
    Remove(u8),
}

fn map_op<U: Debug + Clone + 'static>(update: BoxedStrategy<U>) -> BoxedStrategy<MapOp<U>> {
    prop_oneof![
        3 => (0..KEYS, update).prop_map(|(key, u)| MapOp::Update(key, u)),
        1 => (0..KEYS).prop_map(MapOp::Remove),
    ]
    .boxed()
}

/// The present keys of an OR-map: an update no remove of the key had seen (add-wins, as for
/// set elements).
fn present_keys<U>(ops: &[Recorded<MapOp<U>>]) -> BTreeSet<u8> {
    add_wins_oracle(ops.iter().map(|r| {
        let op = match r.op {
            MapOp::Update(key, _) => SetOp::Add(key),
            MapOp::Remove(key) => SetOp::Remove(key),
        };
        (&r.past, r.id, op)
    }))
}

impl Model for OrMap<u8, GCounter> {
    type Op = MapOp<u64>;
    type Value = BTreeMap<u8, u64>;
    fn op() -> BoxedStrategy<MapOp<u64>> {
        map_op((0u64..100).boxed())
    }
    fn mutate(&mut self, at: LeaderId, op: &MapOp<u64>, _: usize) -> Self {
        match *op {
            MapOp::Update(key, amount) => self.update(at, key, |counter| counter.increment(at, amount)),
            MapOp::Remove(key) => self.remove(&key),
        }
    }
    fn read(&self) -> BTreeMap<u8, u64> {
        self.iter().map(|(&key, counter)| (key, counter.value())).collect()
    }
    fn oracle(ops: &[Recorded<MapOp<u64>>]) -> BTreeMap<u8, u64> {
        // A remove hides a key but keeps its value: a present key shows every increment ever made.
        present_keys(ops)
            .into_iter()
            .map(|key| {
                let sum = ops.iter().map(|r| {
                    if let MapOp::Update(k, n) = r.op {
                        if k == key {
                            n
                        } else {
                            0
                        }
                    } else {
                        0
                    }
                });
                (key, sum.sum())
            })
            .collect()
    }
}

impl Model for OrMap<u8, OrSet<u8>> {
    type Op = MapOp<SetOp>;
    type Value = BTreeMap<u8, BTreeSet<u8>>;
    fn op() -> BoxedStrategy<MapOp<SetOp>> {
        map_op(set_op())
    }
    fn mutate(&mut self, at: LeaderId, op: &MapOp<SetOp>, _: usize) -> Self {
        match *op {
            MapOp::Update(key, SetOp::Add(element)) => self.update(at, key, |set| set.add(at, element)),
            MapOp::Update(key, SetOp::Remove(element)) => self.update(at, key, |set| set.remove(&element)),
            MapOp::Remove(key) => self.remove(&key),
        }
    }
    fn read(&self) -> BTreeMap<u8, BTreeSet<u8>> {
        self.iter().map(|(&key, set)| (key, set.value())).collect()
    }
    fn oracle(ops: &[Recorded<MapOp<SetOp>>]) -> BTreeMap<u8, BTreeSet<u8>> {
        // Each key's set is an add-wins set over all updates of the key; removing the key hides it.
        present_keys(ops)
            .into_iter()
            .map(|key| {
                let nested = ops.iter().filter_map(|r| match r.op {
                    MapOp::Update(k, op) if k == key => Some((&r.past, r.id, op)),
                    _ => None,
                });
                (key, add_wins_oracle(nested))
            })
            .collect()
    }
}

// ---- Type-specific properties ----

proptest! {
    #![proptest_config(config())]

    /// OR-set: an add concurrent with a remove of the same element survives (add wins), whoever
    /// merges what in whichever order; a remove that observed every add removes the element.
    #[test]
    fn or_set_add_wins_over_a_concurrent_remove(
        element in element(),
        adders in 1usize..=4,
        concurrent_adder in 0usize..5,
        seed in any::<u64>(),
    ) {
        // Leaders 0..adders add, leader 4 observes all of them and removes.
        let mut replicas: Vec<OrSet<u8>> = vec![OrSet::new(); 5];
        for (i, replica) in replicas.iter_mut().enumerate().take(adders) {
            replica.add(leader(i), element);
        }
        let observed = replicas.iter().fold(OrSet::new(), |joined, r| joined.merged(r));
        replicas[4].merge(&observed);
        replicas[4].remove(&element);
        let mut without_concurrent_add = replicas.clone();
        // Concurrently (before hearing of the remove), one leader adds the element again.
        let adder = concurrent_adder % 4;
        replicas[adder].add(leader(adder), element);

        let mut rng = SeededRng::new(seed);
        for (set, expected) in [(&mut replicas, true), (&mut without_concurrent_add, false)] {
            rng.shuffle(set);
            let joined = set.iter().fold(OrSet::new(), |joined, r| joined.merged(r));
            prop_assert_eq!(joined.contains(&element), expected);
            let backward = set.iter().rev().fold(OrSet::new(), |joined, r| joined.merged(r));
            prop_assert_eq!(backward, joined);
        }
    }

    /// OR-map: an update concurrent with a remove of the key keeps the key (update wins), with
    /// the value of every update ever made to it.
    #[test]
    fn or_map_update_wins_over_a_concurrent_remove(key in 0..KEYS, before in 0u64..50, after in 0u64..50) {
        let (a, b) = (leader(0), leader(1));
        let mut x: OrMap<u8, GCounter> = OrMap::new();
        x.update(a, key, |c| c.increment(a, before));
        let mut y = x.clone();
        y.remove(&key);
        prop_assert!(!y.contains_key(&key));
        let mut z = y.clone();
        x.update(a, key, |c| c.increment(a, after));
        let joined = x.clone().merged(&y);
        prop_assert_eq!(joined.get(&key).map(GCounter::value), Some(before + after));
        prop_assert_eq!(y.clone().merged(&x), joined);
        // Without the concurrent update, the remove wins; a later update shows the whole history.
        z.merge(&OrMap::new());
        prop_assert_eq!(z.get(&key), None);
        z.update(b, key, |c| c.increment(b, 1));
        prop_assert_eq!(z.get(&key).map(GCounter::value), Some(before + 1));
    }

    /// MV register: a write with a read context replaces exactly what was read; values written
    /// after the read stay as siblings (a stale context never loses a write).
    #[test]
    fn mv_register_write_with_context_replaces_what_it_saw(
        first in any::<u8>(),
        later in prop::collection::vec(any::<u8>(), 0..3),
        mine in any::<u8>(),
    ) {
        let (a, b) = (leader(0), leader(1));
        let mut x = MvRegister::new();
        x.write(a, first);
        let seen = x.read_context();
        let mut y = x.clone();
        for value in &later {
            y.write(b, *value);
        }
        let delta = x.write_with_context(a, mine, &seen);
        prop_assert_eq!(x.values().copied().collect::<Vec<_>>(), vec![mine]);
        y.merge(&delta);
        let mut values: Vec<u8> = y.values().copied().collect();
        values.sort_unstable();
        let mut expected = vec![mine];
        expected.extend(later.last().copied());
        expected.sort_unstable();
        prop_assert_eq!(values, expected);
        // The same context applied where the read was made is just a write.
        let mut fresh = MvRegister::new();
        fresh.write(a, first);
        let mut plain = fresh.clone();
        let with_context = fresh.write_with_context(a, mine, &fresh.read_context());
        prop_assert_eq!(plain.write(a, mine), with_context);
        prop_assert_eq!(plain, fresh);
    }

    /// A causal context holding any set of dots, inserted and merged in any order and any number
    /// of times, is the same value, and compacts into a version vector once contiguous.
    #[test]
    fn causal_contexts_compact_and_merge_in_any_order(
        seqs in prop::collection::vec((0usize..4, 1u64..12), 0..30),
        fill in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut dots: Vec<Dot> = seqs.iter().map(|&(i, s)| Dot::new(leader(i), Seq(s))).collect();
        if fill {
            // Close every gap below each leader's highest dot.
            let highest: BTreeMap<LeaderId, u64> = dots.iter().fold(BTreeMap::new(), |mut m, d| {
                let e = m.entry(d.origin).or_insert(0);
                *e = (*e).max(d.seq.0);
                m
            });
            dots = highest.iter().flat_map(|(&l, &n)| (1..=n).map(move |s| Dot::new(l, Seq(s)))).collect();
        }
        let mut rng = SeededRng::new(seed);
        let mut shuffled = dots.clone();
        shuffled.extend(dots.iter().take(dots.len() / 2).copied());
        rng.shuffle(&mut shuffled);
        let one_by_one = CausalContext::from_dots(&shuffled);
        let split = rng.below(shuffled.len() as u64 + 1) as usize;
        let mut merged = CausalContext::from_dots(&shuffled[split..]);
        merged.merge(&CausalContext::from_dots(&shuffled[..split]));
        prop_assert_eq!(&merged, &one_by_one);
        let distinct: BTreeSet<Dot> = dots.iter().copied().collect();
        for &dot in &distinct {
            prop_assert!(one_by_one.contains(dot));
        }
        let named = one_by_one.version_vector().total() as usize + one_by_one.cloud_len();
        prop_assert_eq!(named, distinct.len());
        if fill {
            prop_assert_eq!(one_by_one.cloud_len(), 0);
        }
    }
}

// ---- Operation-based types ----

/// A counter operation by leader `.0`: (increment?, amount).
fn counter_ops() -> impl Strategy<Value = Vec<(usize, bool, u64)>> {
    prop::collection::vec((0usize..5, any::<bool>(), 0u64..1000), 0..EVENTS_MAX)
}

/// An OR-set history: local operations and causal deliveries.
#[derive(Clone, Debug)]
enum SetEvent {
    /// Leader `at` performs `op` on its replica.
    Local { at: usize, op: SetOp },
    /// Replica `to` applies one operation that is causally ready there.
    Deliver { to: usize },
}

fn set_events() -> impl Strategy<Value = Vec<SetEvent>> {
    let event = prop_oneof![
        1 => (0usize..5, set_op()).prop_map(|(at, op)| SetEvent::Local { at, op }),
        1 => (0usize..5).prop_map(|to| SetEvent::Deliver { to }),
    ];
    prop::collection::vec(event, 0..EVENTS_MAX * 2)
}

/// An operation of an OR-set history, and the ids it depends on (everything its origin had
/// applied).
#[derive(Clone, Debug)]
struct OpRecord {
    op: OrSetOp<u8>,
    kind: SetOp,
    deps: BTreeSet<usize>,
}

struct OpReplica {
    set: OpOrSet<u8>,
    applied: BTreeSet<usize>,
}

/// Applies one causally ready, not yet applied operation at `replica`, picked by `rng`; false if
/// none is ready.
fn deliver_one(replica: &mut OpReplica, ops: &[OpRecord], rng: &mut SeededRng) -> bool {
    let ready: Vec<usize> = (0..ops.len())
        .filter(|id| !replica.applied.contains(id) && ops[*id].deps.is_subset(&replica.applied))
        .collect();
    if ready.is_empty() {
        return false;
    }
    let id = ready[rng.below(ready.len() as u64) as usize];
    replica.set.apply(&ops[id].op);
    replica.applied.insert(id);
    true
}

proptest! {
    #![proptest_config(config())]

    /// Counter operations applied in any order give the same value, the sum of increments minus
    /// decrements, and the same per-leader totals.
    #[test]
    fn op_pn_counter_operations_commute(ops in counter_ops(), seed in any::<u64>()) {
        let mut sources = vec![OpPnCounter::new(); 5];
        let issued: Vec<PnCounterOp> = ops
            .iter()
            .map(|&(at, up, amount)| {
                if up { sources[at].increment(leader(at), amount) } else { sources[at].decrement(leader(at), amount) }
            })
            .collect();
        let oracle: i128 = ops.iter().map(|&(_, up, n)| if up { i128::from(n) } else { -i128::from(n) }).sum();
        let mut rng = SeededRng::new(seed);
        let mut first: Option<OpPnCounter> = None;
        for _replica in 0..3 {
            let mut order = issued.clone();
            rng.shuffle(&mut order);
            let mut counter = OpPnCounter::new();
            for op in &order {
                counter.apply(op);
            }
            prop_assert_eq!(counter.value(), oracle);
            prop_assert_eq!(counter.to_state().value(), oracle);
            if let Some(first) = &first {
                prop_assert_eq!(first, &counter);
            }
            first = Some(counter);
        }
        // The op-based totals are the state-based counter's.
        let state = sources.iter().fold(PnCounter::new(), |joined, s| joined.merged(&s.to_state()));
        prop_assert_eq!(state.value(), oracle);
    }

    /// OR-set operations applied in any causal-order-respecting permutation give the same set at
    /// every replica: the elements with an add that no remove observed (add wins).
    #[test]
    fn op_or_set_causal_permutations_agree_with_the_oracle(
        leaders in 2usize..=5,
        events in set_events(),
        seed in any::<u64>(),
    ) {
        let mut rng = SeededRng::new(seed);
        let mut replicas: Vec<OpReplica> =
            (0..leaders).map(|_| OpReplica { set: OpOrSet::new(), applied: BTreeSet::new() }).collect();
        let mut ops: Vec<OpRecord> = Vec::new();
        for event in &events {
            match *event {
                SetEvent::Local { at, op: kind } => {
                    let at = at % leaders;
                    let replica = &mut replicas[at];
                    let op = match kind {
                        SetOp::Add(element) => replica.set.add(leader(at), element),
                        SetOp::Remove(element) => replica.set.remove(&element),
                    };
                    let id = ops.len();
                    ops.push(OpRecord { op, kind, deps: replica.applied.clone() });
                    replica.applied.insert(id);
                }
                SetEvent::Deliver { to } => {
                    deliver_one(&mut replicas[to % leaders], &ops, &mut rng);
                }
            }
        }
        let oracle = add_wins_oracle(ops.iter().enumerate().map(|(id, r)| (&r.deps, id, r.kind)));
        // Every replica receives the rest, in a random causal order.
        for replica in &mut replicas {
            while deliver_one(replica, &ops, &mut rng) {}
            prop_assert_eq!(replica.applied.len(), ops.len());
            prop_assert_eq!(replica.set.value(), oracle.clone());
        }
        // Fresh replicas applying everything in other random causal orders agree too, and
        // stray duplicates of set operations change nothing.
        for _ in 0..3 {
            let mut fresh = OpReplica { set: OpOrSet::new(), applied: BTreeSet::new() };
            while deliver_one(&mut fresh, &ops, &mut rng) {}
            prop_assert_eq!(&fresh.set, &replicas[0].set);
            for _ in 0..ops.len() {
                fresh.set.apply(&ops[rng.below(ops.len() as u64) as usize].op);
            }
            prop_assert_eq!(&fresh.set, &replicas[0].set);
        }
    }

    /// Op-based OR-set: an add concurrent with a remove survives; a remove after observing every
    /// add leaves the element absent.
    #[test]
    fn op_or_set_add_wins_over_a_concurrent_remove(element in element(), adders in 1usize..=4, seed in any::<u64>()) {
        let mut sources: Vec<OpOrSet<u8>> = vec![OpOrSet::new(); 5];
        let adds: Vec<OrSetOp<u8>> = (0..adders).map(|i| sources[i].add(leader(i), element)).collect();
        for add in &adds {
            sources[4].apply(add);
        }
        let remove = sources[4].remove(&element);
        prop_assert!(!remove.is_noop());
        let concurrent = sources[0].add(leader(0), element);
        let mut rng = SeededRng::new(seed);
        for (tail, expected) in [(vec![remove.clone(), concurrent.clone()], true), (vec![remove.clone()], false)] {
            let mut tail = tail;
            rng.shuffle(&mut tail); // the remove and the concurrent add are unordered
            let mut replica = OpOrSet::new();
            for op in adds.iter().chain(tail.iter()) {
                replica.apply(op);
            }
            prop_assert_eq!(replica.contains(&element), expected);
        }
    }
}

// ---- Encoding and bounds ----

/// Decodes `bytes` as `C`; must never panic, whatever the bytes.
fn decode<C: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<C> {
    postcard::from_bytes(bytes).ok()
}

proptest! {
    #![proptest_config(config())]

    /// States survive a postcard round trip, and decoding arbitrary bytes never panics.
    #[test]
    fn states_round_trip_and_garbage_does_not_panic(
        scenario in scenario::<OrMap<u8, OrSet<u8>>>(),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let run = run::<OrMap<u8, OrSet<u8>>>(&scenario)?;
        let state = run.join_of_states();
        let bytes = postcard::to_allocvec(&state).expect("encodes");
        prop_assert_eq!(decode::<OrMap<u8, OrSet<u8>>>(&bytes), Some(state.clone()));
        let _ = decode::<GCounter>(&garbage);
        let _ = decode::<PnCounter>(&garbage);
        let _ = decode::<GSet<u8>>(&garbage);
        let _ = decode::<TwoPSet<u8>>(&garbage);
        let _ = decode::<OrSet<u8>>(&garbage);
        let _ = decode::<LwwRegister<u8>>(&garbage);
        let _ = decode::<MvRegister<u8>>(&garbage);
        let _ = decode::<OrMap<u8, OrSet<u8>>>(&garbage);
        let _ = decode::<OpOrSet<u8>>(&garbage);
        let _ = decode::<OrSetOp<u8>>(&garbage);
        let _ = decode::<PnCounterOp>(&garbage);
        let _ = decode::<CausalContext>(&garbage);
        // Whatever decodes merges without panicking.
        if let Some(decoded) = decode::<OrMap<u8, OrSet<u8>>>(&garbage) {
            let _ = state.merged(&decoded);
        }
    }
}

#[test]
fn counters_saturate_instead_of_overflowing() {
    let (a, b) = (leader(0), leader(1));
    let mut g = GCounter::new();
    g.increment(a, u64::MAX - 1);
    g.increment(a, 5);
    g.increment(b, 7);
    assert_eq!(g.get(a), u64::MAX);
    assert_eq!(g.value(), u64::MAX);
    let mut pn = PnCounter::new();
    pn.increment(a, u64::MAX);
    pn.increment(b, u64::MAX);
    pn.decrement(a, 3);
    assert_eq!(pn.value(), i128::from(u64::MAX) - 3);
    let mut op = OpPnCounter::new();
    op.decrement(a, u64::MAX);
    op.decrement(a, 1);
    assert_eq!(op.value(), -i128::from(u64::MAX));
}

#[test]
fn two_p_set_removal_is_final() {
    let (mut x, mut y) = (TwoPSet::new(), TwoPSet::new());
    x.insert(1u8);
    y.merge(&x);
    y.remove(1);
    x.insert(1); // concurrent re-add: void once the tombstone arrives
    x.merge(&y);
    assert!(!x.contains(&1) && x.is_removed(&1));
    assert!(x.insert(1).is_bottom());
    assert_eq!(x.tombstone_count(), 1);
}

#[test]
fn delta_buffer_falls_back_to_the_full_state() {
    let a = leader(0);
    let mut state = GCounter::new();
    let mut buffer = DeltaBuffer::new(2);
    for _ in 0..5 {
        buffer.push(state.increment(a, 1));
    }
    assert_eq!(buffer.len(), 2);
    assert_eq!(buffer.first_seq(), DeltaSeq(3));
    let behind = buffer.ship(&state, DeltaSeq(1));
    assert!(matches!(&behind, roundtable_runtime::crdt::Shipment::FullState { upto: DeltaSeq(5), .. }));
    let close = buffer.ship(&state, DeltaSeq(4));
    assert_eq!(close.payload().map(GCounter::value), Some(5));
    assert_eq!(close.upto(), Some(DeltaSeq(5)));
    assert!(buffer.ship(&state, DeltaSeq(9)).payload().is_some(), "an unknown acknowledgement gets the full state");
    buffer.forget_acknowledged(DeltaSeq(5));
    assert!(buffer.is_empty());
}
