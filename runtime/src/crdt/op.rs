//! Operation-based CRDTs: the [`OpPnCounter`] and the add-wins [`OpOrSet`].
//!
//! An operation-based (commutative) CRDT turns each mutation into an operation that every replica
//! applies (Shapiro, Preguiça, Baquero and Zawirski, "A comprehensive study of Convergent and
//! Commutative Replicated Data Types", 2011: "op-based counter" and "Observed-Remove Set"). A
//! mutator prepares the operation at the source, applies it locally and returns it; the caller
//! ships it inside a log entry, and every other replica calls [`OpCrdt::apply`].
//!
//! **Delivery contract: these types rely on the runtime's causal, exactly-once delivery.**
//! - Counter operations commute with each other, but they are not idempotent: an increment
//!   applied twice counts twice. Duplicate suppression is the log's job. (The set happens to
//!   shrug off duplicates: an add whose dot is not newer than the last add applied from its
//!   leader is ignored, and a remove deletes a dot at most once.)
//! - A set's remove deletes the add-dots it observed, which all causally precede it. Applied
//!   before one of those adds, it would miss it and the element would wrongly survive. Causal
//!   delivery guarantees the adds come first; concurrent add and remove then commute, and the add
//!   wins (its dot was not observed).
//! - The runtime does not quite keep that contract for every operation: an operation lost with
//!   its leader's crash is replaced by a void entry, and the leader's later operations are still
//!   delivered. A remove therefore carries, besides the live dots it observed, the issuer's
//!   context for the element (`seen`) and deletes every add of the element it names: an add
//!   replaced at the issuer, or removed there by a remove whose operation was lost, is in the
//!   remove's causal past though no longer live. Adds need nothing more: what an add replaced
//!   at its issuer (an older dot of the same leader) is in the `seen` of every later remove that
//!   saw the add. (The runtime's operation-based OR-set, `CrdtKind::OpOrSet`, keeps an
//!   [`OrSet`](super::OrSet) as state and its adds replace nothing at all.)
//!
//! **Bounds and overflow.** The counter keeps one increment and one decrement total per leader,
//! saturating at `u64::MAX` (saturating addition of non-negative amounts is still commutative, so
//! replicas agree even at the limit). The set keeps, per element, at most one dot per leader: an
//! add from a leader replaces that leader's older dot of the element (under causal delivery the
//! older one is in the newer one's causal past, so every remove that observed the newer one also
//! observed the older one). Removed elements leave nothing behind.

use alloc::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::context::CausalContext;
use super::counter::{GCounter, PnCounter};
use super::OpCrdt;
use crate::causality::{Dot, VersionVector};
use crate::LeaderId;

/// An operation on an [`OpPnCounter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PnCounterOp {
    /// `by` adds `amount`.
    Increment {
        /// The leader that issued the operation.
        by: LeaderId,
        /// How much to add.
        amount: u64,
    },
    /// `by` subtracts `amount`.
    Decrement {
        /// The leader that issued the operation.
        by: LeaderId,
        /// How much to subtract.
        amount: u64,
    },
}

/// An operation-based increment/decrement counter (exactly-once delivery required).
///
/// ```
/// use roundtable_runtime::crdt::{OpCrdt, OpPnCounter};
/// use roundtable_runtime::LeaderId;
/// let (a, b) = (LeaderId::new(0).unwrap(), LeaderId::new(1).unwrap());
/// let (mut x, mut y) = (OpPnCounter::new(), OpPnCounter::new());
/// let op_a = x.increment(a, 5);
/// let op_b = y.decrement(b, 2);
/// x.apply(&op_b);
/// y.apply(&op_a);
/// assert_eq!((x.value(), y.value()), (3, 3));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpPnCounter {
    /// Total increments per leader.
    increments: GCounter,
    /// Total decrements per leader.
    decrements: GCounter,
}

impl OpPnCounter {
    /// The zero counter.
    #[must_use]
    pub fn new() -> Self {
        OpPnCounter::default()
    }

    /// `by` adds `amount`: applies it here and returns the operation to ship.
    pub fn increment(&mut self, by: LeaderId, amount: u64) -> PnCounterOp {
        let op = PnCounterOp::Increment { by, amount };
        self.apply(&op);
        op
    }

    /// `by` subtracts `amount`: applies it here and returns the operation to ship.
    pub fn decrement(&mut self, by: LeaderId, amount: u64) -> PnCounterOp {
        let op = PnCounterOp::Decrement { by, amount };
        self.apply(&op);
        op
    }

    /// The counter's value: all increments minus all decrements (each sum saturating at
    /// `u64::MAX`; the difference is exact).
    #[must_use]
    pub fn value(&self) -> i128 {
        i128::from(self.increments.value()) - i128::from(self.decrements.value())
    }

    /// The same totals as a state-based [`PnCounter`], e.g. for a snapshot sent to a replica
    /// that missed operations truncated from the log (merging it is idempotent, unlike
    /// re-applying operations).
    #[must_use]
    pub fn to_state(&self) -> PnCounter {
        PnCounter::from_parts(self.increments.clone(), self.decrements.clone())
    }
}

impl OpCrdt for OpPnCounter {
    type Op = PnCounterOp;

    fn apply(&mut self, op: &PnCounterOp) {
        match *op {
            PnCounterOp::Increment { by, amount } => {
                self.increments.increment(by, amount);
            }
            PnCounterOp::Decrement { by, amount } => {
                self.decrements.increment(by, amount);
            }
        }
    }
}

/// An operation on an [`OpOrSet`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub enum OrSetOp<T> {
    /// Adds `element`, tagged with the fresh `dot`.
    Add {
        /// The element added.
        element: T,
        /// The unique tag of this add.
        dot: Dot,
    },
    /// Removes the adds of `element` that the issuing replica had observed.
    Remove {
        /// The element removed.
        element: T,
        /// The dots of the adds removed (the element's live dots at the issuing replica).
        observed: BTreeSet<Dot>,
        /// Every add-dot the issuing replica had seen for the element: the remove deletes those
        /// too. An add that was replaced at the issuer, or removed by a remove whose operation
        /// was then lost (a void entry), is in the remove's causal past but no longer among the
        /// live dots; without this, it would survive at a replica that never got the lost
        /// operation.
        seen: CausalContext,
    },
}

impl<T> OrSetOp<T> {
    /// Whether applying the operation changes nothing anywhere (a remove that observed no add);
    /// such an operation need not be shipped.
    #[must_use]
    pub fn is_noop(&self) -> bool {
        matches!(self, OrSetOp::Remove { observed, seen, .. } if observed.is_empty() && seen.is_empty())
    }
}

/// An operation-based add-wins observed-remove set (causal, exactly-once delivery required).
///
/// ```
/// use roundtable_runtime::crdt::{OpCrdt, OpOrSet};
/// use roundtable_runtime::LeaderId;
/// let (a, b) = (LeaderId::new(0).unwrap(), LeaderId::new(1).unwrap());
/// let (mut x, mut y) = (OpOrSet::new(), OpOrSet::new());
/// let add = x.add(a, "milk");
/// y.apply(&add);
/// let remove = y.remove(&"milk"); // b removes the add it saw ...
/// let again = x.add(a, "milk"); // ... while a adds again, concurrently
/// x.apply(&remove);
/// y.apply(&again);
/// assert!(x.contains(&"milk") && y.contains(&"milk")); // add wins
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Ord + Deserialize<'de>"))]
#[serde(from = "RawOpOrSet<T>")]
pub struct OpOrSet<T> {
    /// Present elements and the dots of the adds that keep them present (never empty; at most
    /// one per leader).
    entries: BTreeMap<T, BTreeSet<Dot>>,
    /// The highest add-dot sequence number applied from each leader (to mint fresh dots).
    seen: VersionVector,
}

/// The decoded shape of an [`OpOrSet`], made canonical on the way in.
#[derive(Deserialize)]
#[serde(rename = "OpOrSet")]
#[serde(bound(deserialize = "T: Ord + Deserialize<'de>"))]
struct RawOpOrSet<T> {
    entries: BTreeMap<T, BTreeSet<Dot>>,
    seen: VersionVector,
}

impl<T: Ord> From<RawOpOrSet<T>> for OpOrSet<T> {
    fn from(raw: RawOpOrSet<T>) -> Self {
        let RawOpOrSet { mut entries, mut seen } = raw;
        entries.retain(|_, dots| !dots.is_empty());
        for dot in entries.values().flatten() {
            if dot.seq > seen.get(dot.origin) {
                seen.set(dot.origin, dot.seq);
            }
        }
        OpOrSet { entries, seen }
    }
}

impl<T> Default for OpOrSet<T> {
    fn default() -> Self {
        OpOrSet { entries: BTreeMap::new(), seen: VersionVector::new() }
    }
}

impl<T: Ord + Clone> OpOrSet<T> {
    /// The empty set.
    #[must_use]
    pub fn new() -> Self {
        OpOrSet::default()
    }

    /// `leader` adds `element`: mints a fresh dot, applies the add here and returns the operation
    /// to ship.
    pub fn add(&mut self, leader: LeaderId, element: T) -> OrSetOp<T> {
        let dot = Dot::new(leader, self.seen.get(leader).next());
        let op = OrSetOp::Add { element, dot };
        self.apply(&op);
        op
    }

    /// Removes `element` as observed here: applies the remove here and returns the operation to
    /// ship (a no-op, see [`OrSetOp::is_noop`], when the element is absent).
    pub fn remove(&mut self, element: &T) -> OrSetOp<T> {
        let observed = self.entries.get(element).cloned().unwrap_or_default();
        let seen = CausalContext::from_version_vector(&self.seen);
        let op = OrSetOp::Remove { element: element.clone(), observed, seen };
        self.apply(&op);
        op
    }

    /// Whether `element` is present.
    #[must_use]
    pub fn contains(&self, element: &T) -> bool {
        self.entries.contains_key(element)
    }

    /// The present elements, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.entries.keys()
    }

    /// The present elements, as a set.
    #[must_use]
    pub fn value(&self) -> BTreeSet<T> {
        self.entries.keys().cloned().collect()
    }

    /// The number of present elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no element is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<T: Ord + Clone> OpCrdt for OpOrSet<T> {
    type Op = OrSetOp<T>;

    fn apply(&mut self, op: &OrSetOp<T>) {
        match op {
            OrSetOp::Add { element, dot } => {
                if dot.seq <= self.seen.get(dot.origin) {
                    // A leader's adds arrive in order, so this one was applied already (a
                    // duplicate), or is older than one that replaced it.
                    return;
                }
                self.seen.set(dot.origin, dot.seq);
                let dots = self.entries.entry(element.clone()).or_default();
                dots.retain(|d| d.origin != dot.origin);
                dots.insert(*dot);
            }
            OrSetOp::Remove { element, observed, seen } => {
                if let Some(dots) = self.entries.get_mut(element) {
                    dots.retain(|d| !observed.contains(d) && !seen.contains(*d));
                    if dots.is_empty() {
                        self.entries.remove(element);
                    }
                }
            }
        }
    }
}
