//! Lost deltas must not bring removed values back (issue 16, item 3).
//!
//! When a leader crashes, a write no peer received is lost, and the runtime fills its replication
//! sequence number with a *void* entry, which has no effect. The writes that leader made later
//! and that a peer did receive are still delivered. So a replica can apply deltas 1 and 3 of an
//! origin without ever seeing delta 2. For the observed-remove types this used to resurrect
//! values: the delta of `add(x)` (or of an MV-register write, or of an OR-map update) named only
//! the dots it *directly* replaced, and a later remove named only the live dots, so when the
//! middle delta was lost, what it had replaced (the first add) was never removed.
//!
//! - The regression tests replay the scenarios on the CRDTs themselves and through the
//!   runtime's [`CrdtStore`] (state-based deltas and the operation-based OR-set).
//! - The property tests run random histories at 2–4 origins — each origin applies its own
//!   operations to its own state, and sometimes merges another origin's full state or the deltas
//!   it has not seen, recording each operation's causal past as the ids of the operations its
//!   state reflected — then lose an arbitrary subset of the deltas and deliver the rest, in a
//!   random causal order, to a fresh replica. Its value must be the oracle's, computed from the
//!   *meaning* of the delivered operations and their causal pasts:
//!   - OR-set: `x` is present iff some delivered `add(x)` is in the causal past of no delivered
//!     `remove(x)` or `clear()` (add-wins);
//!   - MV-register: the delivered writes that are in the causal past of no other delivered write;
//!   - counter map (`OrMap<u8, PnCounter>`, the runtime's `CrdtKind::CounterMap`): a field is
//!     present under the OR-set rule (an update adds, a remove removes); its value is, summed over
//!     origins, the origin's increments of the field up to and including its last *delivered*
//!     increment of that field, minus the same for decrements. (A PN-counter delta carries the
//!     origin's running total, so a lost increment is recovered by the next delivered one; a
//!     remove hides a field without resetting it, see `crdt/map.rs`.)
//!
//!   Two fresh replicas fed different causal orders must also end with byte-identical states.
//!   Lost deltas are only lost for the fresh replica; the origins may have merged them (as a
//!   peer that got a write before its origin crashed), which the causal pasts record.
//!
//! Every property runs at least 256 cases; on failure proptest prints the minimal failing case
//! (origins, steps, lost mask and delivery seed), which replays exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use proptest::prelude::*;
use roundtable_runtime::clock::HlcTimestamp;
use roundtable_runtime::crdt::{MvRegister, OrMap, OrSet, PnCounter, StateCrdt};
use roundtable_runtime::resolution::{CrdtKind, CrdtOpPayload, CrdtStore, CrdtUpdate};
use roundtable_runtime::rng::SeededRng;
use roundtable_runtime::{Key, LeaderId, Value};

fn leader(i: usize) -> LeaderId {
    LeaderId::new(i).expect("leader id below 64")
}

/// Applies deltas number 1 and 3 of three (1-based), as a replica that never got the second does.
fn first_and_third<C: StateCrdt>(deltas: &[C]) -> C {
    assert_eq!(deltas.len(), 3);
    C::default().merged(&deltas[0]).merged(&deltas[2])
}

// ---- Regression tests: the scenarios on the CRDTs ----

#[test]
fn or_set_add_add_remove_with_the_second_add_lost_removes_the_element() {
    let a = leader(0);
    let mut origin = OrSet::new();
    let deltas = [origin.add(a, "x"), origin.add(a, "x"), origin.remove(&"x")];
    assert!(!origin.contains(&"x"));
    let replica = first_and_third(&deltas);
    assert!(!replica.contains(&"x"), "the first add came back: {replica:?}");
}

#[test]
fn or_set_add_remove_remove_with_the_first_remove_lost_removes_the_element() {
    let a = leader(0);
    let mut origin = OrSet::new();
    let deltas = [origin.add(a, "x"), origin.remove(&"x"), origin.remove(&"x")];
    let replica = first_and_third(&deltas);
    assert!(!replica.contains(&"x"), "the add survived the second remove: {replica:?}");
}

#[test]
fn or_set_add_add_clear_with_the_second_add_lost_removes_the_element() {
    let a = leader(0);
    let mut origin = OrSet::new();
    let deltas = [origin.add(a, "x"), origin.add(a, "x"), origin.clear()];
    let replica = first_and_third(&deltas);
    assert!(replica.is_empty(), "the first add came back: {replica:?}");
}

#[test]
fn or_set_remove_delta_does_not_touch_other_elements() {
    // The remove carries the origin's whole context, scoped to its element: another element's
    // add that the origin saw is untouched.
    let (a, b) = (leader(0), leader(1));
    let mut origin = OrSet::new();
    let mut other = OrSet::new();
    let y = other.add(b, "y");
    origin.merge(&y);
    let deltas = [origin.add(a, "x"), origin.add(a, "x"), origin.remove(&"x")];
    let replica = first_and_third(&deltas).merged(&y);
    assert_eq!(replica.value(), BTreeSet::from(["y"]));
    let replica = y.clone().merged(&deltas[0]).merged(&deltas[2]);
    assert_eq!(replica.value(), BTreeSet::from(["y"]));
}

#[test]
fn mv_register_write_write_write_with_the_second_lost_keeps_only_the_last() {
    let a = leader(0);
    let mut origin = MvRegister::new();
    let deltas = [origin.write(a, 1), origin.write(a, 2), origin.write(a, 3)];
    let replica = first_and_third(&deltas);
    assert_eq!(replica.values().copied().collect::<Vec<_>>(), [3], "the first write came back");
}

#[test]
fn counter_map_update_update_remove_with_the_second_update_lost_removes_the_field() {
    let a = leader(0);
    let mut origin: OrMap<&str, PnCounter> = OrMap::new();
    let deltas = [
        origin.update(a, "f", |c| c.increment(a, 1)),
        origin.update(a, "f", |c| c.increment(a, 2)),
        origin.remove(&"f"),
    ];
    let replica = first_and_third(&deltas);
    assert!(!replica.contains_key(&"f"), "the first update came back: {replica:?}");
}

#[test]
fn counter_map_update_remove_remove_with_the_first_remove_lost_removes_the_field() {
    let a = leader(0);
    let mut origin: OrMap<&str, PnCounter> = OrMap::new();
    let deltas = [origin.update(a, "f", |c| c.increment(a, 1)), origin.remove(&"f"), origin.remove(&"f")];
    let replica = first_and_third(&deltas);
    assert!(!replica.contains_key(&"f"), "the update survived the second remove: {replica:?}");
}

// ---- Regression tests: the same through the runtime's CRDT store ----

/// Runs `updates` at leader 0 of a store of `kind`, returning each update's payload.
fn store_payloads(kind: CrdtKind, updates: &[CrdtUpdate]) -> (Key, Vec<CrdtOpPayload>) {
    let key = Key::new("k/x").expect("valid key");
    let a = leader(0);
    let mut origin = CrdtStore::default();
    let mut payloads = Vec::new();
    for (i, update) in updates.iter().enumerate() {
        let hlc = HlcTimestamp::new(100 + i as u64, 0, a).expect("valid timestamp");
        let payload = origin.crdt_delta(&key, kind, a, hlc, update).expect("the update fits");
        assert!(origin.apply_crdt(&key, kind, &payload));
        payloads.push(payload);
    }
    (key, payloads)
}

/// What a store that applied payloads 1 and 3 (not 2) renders.
fn render_first_and_third(kind: CrdtKind, updates: &[CrdtUpdate]) -> String {
    let (key, payloads) = store_payloads(kind, updates);
    let mut replica = CrdtStore::default();
    assert!(replica.apply_crdt(&key, kind, &payloads[0]));
    assert!(replica.apply_crdt(&key, kind, &payloads[2]));
    replica.crdts.get(&key).expect("written").render()
}

fn value(text: &str) -> Value {
    Value::new(text.as_bytes().to_vec()).expect("small value")
}

#[test]
fn store_or_set_add_add_remove_with_the_second_add_lost() {
    let x = value("x");
    let updates = [CrdtUpdate::Add(x.clone()), CrdtUpdate::Add(x.clone()), CrdtUpdate::Remove(x)];
    assert_eq!(render_first_and_third(CrdtKind::OrSet, &updates), "{}");
    // The operation-based set's adds replace nothing, so its remove names both adds already.
    assert_eq!(render_first_and_third(CrdtKind::OpOrSet, &updates), "{}");
}

#[test]
fn store_or_set_add_remove_remove_with_the_first_remove_lost() {
    let x = value("x");
    let updates = [CrdtUpdate::Add(x.clone()), CrdtUpdate::Remove(x.clone()), CrdtUpdate::Remove(x)];
    assert_eq!(render_first_and_third(CrdtKind::OrSet, &updates), "{}");
    assert_eq!(render_first_and_third(CrdtKind::OpOrSet, &updates), "{}");
}

#[test]
fn store_mv_register_write_write_write_with_the_second_lost() {
    let set = |v: &str| CrdtUpdate::Set { value: value(v), context: None };
    let updates = [set("a"), set("b"), set("c")];
    let rendered = render_first_and_third(CrdtKind::MvRegister, &updates);
    assert_eq!(rendered, format!("[{}]", value("c")));
}

#[test]
fn store_counter_map_update_update_remove_with_the_second_update_lost() {
    let field = value("f");
    let updates = [
        CrdtUpdate::MapIncrement { field: field.clone(), amount: 1 },
        CrdtUpdate::MapIncrement { field: field.clone(), amount: 2 },
        CrdtUpdate::MapRemove { field },
    ];
    assert_eq!(render_first_and_third(CrdtKind::CounterMap, &updates), "{}");
}

// ---- Property tests: random histories, lost deltas, and an oracle of the meaning ----

/// The most steps in one generated history.
const STEPS_MAX: usize = 30;
/// Elements (fields) are drawn from `0..ELEMENTS`, so operations on the same one meet.
const ELEMENTS: u8 = 3;

/// One operation of a history.
#[derive(Clone, Debug)]
struct Recorded<O> {
    id: usize,
    /// The origin that performed it (an index).
    at: usize,
    op: O,
    /// The ids of the operations the origin's state reflected when it performed this one.
    past: BTreeSet<usize>,
}

/// A state-based CRDT under test.
trait Lossy: StateCrdt + Debug + serde::Serialize {
    type Op: Clone + Debug + 'static;
    type Value: PartialEq + Debug;
    fn op() -> BoxedStrategy<Self::Op>;
    /// Performs `op` at `at` and returns the delta.
    fn mutate(&mut self, at: LeaderId, op: &Self::Op) -> Self;
    fn read(&self) -> Self::Value;
    /// The value of a replica that applied exactly `delivered` (ids into `ops`).
    fn oracle(ops: &[Recorded<Self::Op>], delivered: &BTreeSet<usize>) -> Self::Value;
}

#[derive(Clone, Debug)]
enum Step<O> {
    /// Origin `at` performs `op`.
    Op { at: usize, op: O },
    /// `to` merges `from`'s full state.
    MergeState { from: usize, to: usize },
    /// `to` merges, in causal order, the deltas of the operations `from` reflects and `to` does not.
    MergeDeltas { from: usize, to: usize },
}

#[derive(Clone, Debug)]
struct Case<O> {
    origins: usize,
    steps: Vec<Step<O>>,
    /// `lost[id]`: whether the delta of operation `id` never reaches the fresh replica.
    lost: Vec<bool>,
    /// Picks the causal delivery orders.
    seed: u64,
}

fn case<C: Lossy>() -> impl Strategy<Value = Case<C::Op>> {
    let step = prop_oneof![
        5 => (0usize..4, C::op()).prop_map(|(at, op)| Step::Op { at, op }),
        1 => (0usize..4, 0usize..4).prop_map(|(from, to)| Step::MergeState { from, to }),
        2 => (0usize..4, 0usize..4).prop_map(|(from, to)| Step::MergeDeltas { from, to }),
    ];
    (
        2usize..=4,
        prop::collection::vec(step, 0..STEPS_MAX),
        prop::collection::vec(prop::bool::weighted(0.35), STEPS_MAX),
        any::<u64>(),
    )
        .prop_map(|(origins, steps, lost, seed)| Case { origins, steps, lost, seed })
}

struct Origin<C> {
    state: C,
    knows: BTreeSet<usize>,
}

/// The operations of a history and their deltas (by operation id).
type History<C> = (Vec<Recorded<<C as Lossy>::Op>>, Vec<C>);

/// Runs the history; returns the operations and their deltas.
fn history<C: Lossy>(case: &Case<C::Op>) -> Result<History<C>, TestCaseError> {
    let n = case.origins;
    let mut origins: Vec<Origin<C>> = (0..n).map(|_| Origin { state: C::default(), knows: BTreeSet::new() }).collect();
    let mut ops = Vec::new();
    let mut deltas: Vec<C> = Vec::new();
    for step in &case.steps {
        match step {
            Step::Op { at, op } => {
                let at = at % n;
                let origin = &mut origins[at];
                let before = origin.state.clone();
                let delta = origin.state.mutate(leader(at), op);
                prop_assert_eq!(&before.merged(&delta), &origin.state, "not a δ-mutation: {:?}", op);
                let id = ops.len();
                ops.push(Recorded { id, at, op: op.clone(), past: origin.knows.clone() });
                origin.knows.insert(id);
                deltas.push(delta);
            }
            Step::MergeState { from, to } => {
                let (from, to) = (from % n, to % n);
                let (state, knows) = (origins[from].state.clone(), origins[from].knows.clone());
                origins[to].state.merge(&state);
                origins[to].knows.extend(knows);
            }
            Step::MergeDeltas { from, to } => {
                let (from, to) = (from % n, to % n);
                let missing: Vec<usize> = origins[from].knows.difference(&origins[to].knows).copied().collect();
                // Ascending ids are a causal order: an operation's past holds only earlier ids.
                for id in missing {
                    origins[to].state.merge(&deltas[id]);
                    origins[to].knows.insert(id);
                }
            }
        }
    }
    Ok((ops, deltas))
}

/// A random causal order of `delivered`: each operation after every delivered one in its past.
fn causal_order<O>(ops: &[Recorded<O>], delivered: &BTreeSet<usize>, rng: &mut SeededRng) -> Vec<usize> {
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    let mut pending: Vec<usize> = delivered.iter().copied().collect();
    while !pending.is_empty() {
        let ready: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&id| ops[id].past.iter().all(|p| !delivered.contains(p) || done.contains(p)))
            .collect();
        let pick = ready[rng.below(ready.len() as u64) as usize];
        pending.retain(|&id| id != pick);
        done.insert(pick);
        order.push(pick);
    }
    order
}

fn check<C: Lossy>(case: &Case<C::Op>) -> Result<(), TestCaseError> {
    let (ops, deltas) = history::<C>(case)?;
    let delivered: BTreeSet<usize> = (0..ops.len()).filter(|&id| !case.lost[id]).collect();
    let mut rng = SeededRng::new(case.seed);
    let mut states = Vec::new();
    for _ in 0..2 {
        let order = causal_order(&ops, &delivered, &mut rng);
        let state = order.iter().fold(C::default(), |state, &id| state.merged(&deltas[id]));
        states.push(state);
    }
    let expected = C::oracle(&ops, &delivered);
    prop_assert_eq!(states[0].read(), expected, "delivered {:?} (seed {}): {:?}", delivered, case.seed, states[0]);
    let bytes: Vec<Vec<u8>> = states.iter().map(|s| postcard::to_allocvec(s).expect("encodes")).collect();
    prop_assert_eq!(&states[0], &states[1], "two causal orders disagree (seed {})", case.seed);
    prop_assert_eq!(&bytes[0], &bytes[1], "two causal orders give different bytes (seed {})", case.seed);
    Ok(())
}

/// Whether a delivered operation `killer` (per `kills`) has operation `id` in its causal past.
fn killed<O>(ops: &[Recorded<O>], delivered: &BTreeSet<usize>, id: usize, kills: impl Fn(&O) -> bool) -> bool {
    delivered.iter().any(|&k| kills(&ops[k].op) && ops[k].past.contains(&id))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOp {
    Add(u8),
    Remove(u8),
    Clear,
}

impl Lossy for OrSet<u8> {
    type Op = SetOp;
    type Value = BTreeSet<u8>;
    fn op() -> BoxedStrategy<SetOp> {
        prop_oneof![
            4 => (0..ELEMENTS).prop_map(SetOp::Add),
            3 => (0..ELEMENTS).prop_map(SetOp::Remove),
            1 => Just(SetOp::Clear),
        ]
        .boxed()
    }
    fn mutate(&mut self, at: LeaderId, op: &SetOp) -> Self {
        match *op {
            SetOp::Add(x) => self.add(at, x),
            SetOp::Remove(x) => self.remove(&x),
            SetOp::Clear => self.clear(),
        }
    }
    fn read(&self) -> BTreeSet<u8> {
        self.value()
    }
    fn oracle(ops: &[Recorded<SetOp>], delivered: &BTreeSet<usize>) -> BTreeSet<u8> {
        delivered
            .iter()
            .filter_map(|&id| match ops[id].op {
                SetOp::Add(x) => {
                    let removes = |op: &SetOp| *op == SetOp::Remove(x) || *op == SetOp::Clear;
                    (!killed(ops, delivered, id, removes)).then_some(x)
                }
                _ => None,
            })
            .collect()
    }
}

impl Lossy for MvRegister<u8> {
    type Op = u8;
    /// The present values, sorted.
    type Value = Vec<u8>;
    fn op() -> BoxedStrategy<u8> {
        any::<u8>().boxed()
    }
    fn mutate(&mut self, at: LeaderId, value: &u8) -> Self {
        self.write(at, *value)
    }
    fn read(&self) -> Vec<u8> {
        let mut values: Vec<u8> = self.values().copied().collect();
        values.sort_unstable();
        values
    }
    fn oracle(ops: &[Recorded<u8>], delivered: &BTreeSet<usize>) -> Vec<u8> {
        let mut values: Vec<u8> =
            delivered.iter().filter(|&&id| !killed(ops, delivered, id, |_| true)).map(|&id| ops[id].op).collect();
        values.sort_unstable();
        values
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MapOp {
    Increment(u8, u64),
    Decrement(u8, u64),
    Remove(u8),
}

impl MapOp {
    fn field(self) -> u8 {
        match self {
            MapOp::Increment(f, _) | MapOp::Decrement(f, _) | MapOp::Remove(f) => f,
        }
    }
}

impl Lossy for OrMap<u8, PnCounter> {
    type Op = MapOp;
    type Value = BTreeMap<u8, i128>;
    fn op() -> BoxedStrategy<MapOp> {
        prop_oneof![
            3 => (0..ELEMENTS, 1u64..10).prop_map(|(f, n)| MapOp::Increment(f, n)),
            2 => (0..ELEMENTS, 1u64..10).prop_map(|(f, n)| MapOp::Decrement(f, n)),
            2 => (0..ELEMENTS).prop_map(MapOp::Remove),
        ]
        .boxed()
    }
    fn mutate(&mut self, at: LeaderId, op: &MapOp) -> Self {
        match *op {
            MapOp::Increment(f, n) => self.update(at, f, |c| c.increment(at, n)),
            MapOp::Decrement(f, n) => self.update(at, f, |c| c.decrement(at, n)),
            MapOp::Remove(f) => self.remove(&f),
        }
    }
    fn read(&self) -> BTreeMap<u8, i128> {
        self.iter().map(|(&f, c)| (f, c.value())).collect()
    }
    fn oracle(ops: &[Recorded<MapOp>], delivered: &BTreeSet<usize>) -> BTreeMap<u8, i128> {
        let present: BTreeSet<u8> = delivered
            .iter()
            .filter(|&&id| {
                let op = ops[id].op;
                let removes = |other: &MapOp| *other == MapOp::Remove(op.field());
                !matches!(op, MapOp::Remove(_)) && !killed(ops, delivered, id, removes)
            })
            .map(|&id| ops[id].op.field())
            .collect();
        // Per origin and field, the running total up to its last delivered increment (decrement).
        let total = |field: u8, incrementing: bool| -> i128 {
            let amount = |op: MapOp| match (op, incrementing) {
                (MapOp::Increment(f, n), true) | (MapOp::Decrement(f, n), false) if f == field => Some(n),
                _ => None,
            };
            let origins: BTreeSet<usize> = ops.iter().map(|r| r.at).collect();
            origins
                .into_iter()
                .map(|at| {
                    let mine: Vec<&Recorded<MapOp>> =
                        ops.iter().filter(|r| r.at == at && amount(r.op).is_some()).collect();
                    let last = mine.iter().rposition(|r| delivered.contains(&r.id));
                    last.map_or(0, |last| mine[..=last].iter().filter_map(|r| amount(r.op)).map(i128::from).sum())
                })
                .sum()
        };
        present.into_iter().map(|f| (f, total(f, true) - total(f, false))).collect()
    }
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    /// OR-set: with any deltas lost, a fresh replica shows the elements with a delivered add that
    /// no delivered remove (or clear) had seen.
    #[test]
    fn or_set_with_lost_deltas_agrees_with_the_add_wins_oracle(case in case::<OrSet<u8>>()) {
        check::<OrSet<u8>>(&case)?;
    }

    /// MV-register: with any deltas lost, a fresh replica shows the delivered writes no other
    /// delivered write had seen.
    #[test]
    fn mv_register_with_lost_deltas_agrees_with_the_oracle(case in case::<MvRegister<u8>>()) {
        check::<MvRegister<u8>>(&case)?;
    }

    /// Counter map: with any deltas lost, a fresh replica shows the fields with a delivered
    /// update no delivered remove had seen, each with the delivered running totals.
    #[test]
    fn counter_map_with_lost_deltas_agrees_with_the_oracle(case in case::<OrMap<u8, PnCounter>>()) {
        check::<OrMap<u8, PnCounter>>(&case)?;
    }
}

// ---- The runtime applies deltas in causal order: a lost delta leaves no gap behind ----

/// Applied in causal order (as the runtime delivers entries), every dot a delta's context names
/// was minted by an entry the receiver has applied or that was voided: a lost delta's dot is
/// dead, and the receiver's context absorbs it. Without that, every later dot of the origin
/// stayed out of order ("cloud") for good: the key's metadata grew with each write.
#[test]
fn after_a_lost_delta_the_contexts_stay_compact_as_the_origin_keeps_writing() {
    for kind in [CrdtKind::OrSet, CrdtKind::CounterMap, CrdtKind::MvRegister] {
        // The lost write is the only one of its element: nothing later replaces its dot.
        let name = |i: usize| if i == 1 { "lost".to_owned() } else { format!("e{}", i % 3) };
        let update = |i: usize| match kind {
            CrdtKind::OrSet => CrdtUpdate::Add(value(&name(i))),
            CrdtKind::CounterMap => CrdtUpdate::MapIncrement { field: value(&name(i)), amount: 1 },
            _ => CrdtUpdate::Set { value: value(&format!("v{i}")), context: None },
        };
        let updates: Vec<CrdtUpdate> = (0..40).map(update).collect();
        let (key, payloads) = store_payloads(kind, &updates);
        let mut replica = CrdtStore::default();
        for (i, payload) in payloads.iter().enumerate() {
            if i != 1 {
                assert!(replica.apply_crdt(&key, kind, payload)); // the second one is lost
            }
        }
        let state = replica.crdts.get(&key).expect("written");
        assert_eq!(state.dot_cloud_len(), 0, "{kind:?}: {}", state.render());
    }
}
