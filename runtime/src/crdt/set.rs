//! State-based sets without causal metadata: the grow-only [`GSet`] and the two-phase
//! [`TwoPSet`].
//!
//! A G-set only grows; its join is set union (Shapiro, Preguiça, Baquero and Zawirski, "A
//! comprehensive study of Convergent and Commutative Replicated Data Types", 2011). A
//! 2P-set pairs an add set with a remove set of tombstones; an element is present when added and
//! not removed, and the join is the union of both sets. Removal is final: **an element
//! once removed can never be added again**, anywhere — a concurrent or later add of it is void.
//! Use [`OrSet`](super::OrSet) when elements come and go.
//!
//! Mutators return deltas as in Almeida, Shoker and Baquero, "Delta state replicated data types"
//! (2018): the one-element set they added.
//!
//! **Bounds.** Both sets hold user data and only grow: a G-set every element ever inserted, a
//! 2P-set every element ever removed (its tombstones). Tombstones cannot be collected without
//! coordination (every replica must have seen the removal, and no add may be in flight), which
//! this type does not do. The 2P-set stores a removed element only once, as a tombstone: the
//! state keeps `present` and `tombstones` disjoint.

use alloc::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::StateCrdt;

/// A grow-only set.
///
/// ```
/// use roundtable_runtime::crdt::{GSet, StateCrdt};
/// let (mut x, mut y) = (GSet::new(), GSet::new());
/// x.insert("apple");
/// y.insert("pear");
/// x.merge(&y);
/// assert!(x.contains(&"apple") && x.contains(&"pear"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Ord + Deserialize<'de>"))]
#[serde(transparent)]
pub struct GSet<T> {
    elements: BTreeSet<T>,
}

impl<T> Default for GSet<T> {
    fn default() -> Self {
        GSet { elements: BTreeSet::new() }
    }
}

impl<T: Ord + Clone> GSet<T> {
    /// The empty set.
    #[must_use]
    pub fn new() -> Self {
        GSet::default()
    }

    /// The delta [`GSet::insert`] would return, without changing the set.
    #[must_use]
    pub fn delta_of_insert(&self, element: T) -> GSet<T> {
        GSet { elements: BTreeSet::from([element]) }
    }

    /// Adds `element` and returns the delta: the set of that element alone.
    pub fn insert(&mut self, element: T) -> GSet<T> {
        self.elements.insert(element.clone());
        GSet { elements: BTreeSet::from([element]) }
    }

    /// Whether `element` is in the set.
    #[must_use]
    pub fn contains(&self, element: &T) -> bool {
        self.elements.contains(element)
    }

    /// The elements, in ascending order.
    #[must_use]
    pub fn value(&self) -> &BTreeSet<T> {
        &self.elements
    }

    /// The elements, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.elements.iter()
    }

    /// The number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}

impl<T: Ord + Clone> StateCrdt for GSet<T> {
    fn merge(&mut self, other: &Self) {
        for element in &other.elements {
            if !self.elements.contains(element) {
                self.elements.insert(element.clone());
            }
        }
    }
}

/// A two-phase set: elements can be added and removed, but a removed element never comes back.
///
/// ```
/// use roundtable_runtime::crdt::{StateCrdt, TwoPSet};
/// let mut x = TwoPSet::new();
/// x.insert("apple");
/// x.remove("apple");
/// x.insert("apple"); // void: removal is final
/// assert!(!x.contains(&"apple"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Ord + Deserialize<'de>"))]
#[serde(from = "RawTwoPSet<T>")]
pub struct TwoPSet<T> {
    /// Added and not removed.
    present: BTreeSet<T>,
    /// Removed (whether or not an add was seen); disjoint from `present`.
    tombstones: BTreeSet<T>,
}

/// The decoded shape of a [`TwoPSet`], made disjoint on the way in.
#[derive(Deserialize)]
#[serde(rename = "TwoPSet")]
#[serde(bound(deserialize = "T: Ord + Deserialize<'de>"))]
struct RawTwoPSet<T> {
    present: BTreeSet<T>,
    tombstones: BTreeSet<T>,
}

impl<T: Ord> From<RawTwoPSet<T>> for TwoPSet<T> {
    fn from(raw: RawTwoPSet<T>) -> Self {
        let RawTwoPSet { mut present, tombstones } = raw;
        present.retain(|element| !tombstones.contains(element));
        TwoPSet { present, tombstones }
    }
}

impl<T> Default for TwoPSet<T> {
    fn default() -> Self {
        TwoPSet { present: BTreeSet::new(), tombstones: BTreeSet::new() }
    }
}

impl<T: Ord + Clone> TwoPSet<T> {
    /// The empty set.
    #[must_use]
    pub fn new() -> Self {
        TwoPSet::default()
    }

    /// The delta [`TwoPSet::insert`] would return, without changing the set.
    #[must_use]
    pub fn delta_of_insert(&self, element: T) -> TwoPSet<T> {
        if self.tombstones.contains(&element) {
            return TwoPSet::new();
        }
        TwoPSet { present: BTreeSet::from([element]), tombstones: BTreeSet::new() }
    }

    /// The delta [`TwoPSet::remove`] would return, without changing the set.
    #[must_use]
    pub fn delta_of_remove(&self, element: T) -> TwoPSet<T> {
        TwoPSet { present: BTreeSet::new(), tombstones: BTreeSet::from([element]) }
    }

    /// Adds `element` unless it was ever removed, and returns the delta (empty when the add is
    /// void).
    pub fn insert(&mut self, element: T) -> TwoPSet<T> {
        if self.tombstones.contains(&element) {
            return TwoPSet::new();
        }
        self.present.insert(element.clone());
        TwoPSet { present: BTreeSet::from([element]), tombstones: BTreeSet::new() }
    }

    /// Removes `element` for good and returns the delta (its tombstone).
    ///
    /// The tombstone is recorded even if this replica has not seen the element added yet: an
    /// add arriving later is void. (Shapiro et al. make "present here" a precondition of remove;
    /// dropping the precondition keeps the set convergent and lets a caller ban an element
    /// before it appears.)
    pub fn remove(&mut self, element: T) -> TwoPSet<T> {
        self.present.remove(&element);
        self.tombstones.insert(element.clone());
        TwoPSet { present: BTreeSet::new(), tombstones: BTreeSet::from([element]) }
    }

    /// Whether `element` is present (added and never removed).
    #[must_use]
    pub fn contains(&self, element: &T) -> bool {
        self.present.contains(element)
    }

    /// Whether `element` was removed (and so can never be present again).
    #[must_use]
    pub fn is_removed(&self, element: &T) -> bool {
        self.tombstones.contains(element)
    }

    /// The present elements, in ascending order.
    #[must_use]
    pub fn value(&self) -> &BTreeSet<T> {
        &self.present
    }

    /// The present elements, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.present.iter()
    }

    /// The number of present elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.present.len()
    }

    /// Whether no element is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }

    /// The number of tombstones (removed elements), which only grows.
    #[must_use]
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }
}

impl<T: Ord + Clone> StateCrdt for TwoPSet<T> {
    fn merge(&mut self, other: &Self) {
        for element in &other.tombstones {
            if !self.tombstones.contains(element) {
                self.present.remove(element);
                self.tombstones.insert(element.clone());
            }
        }
        for element in &other.present {
            if !self.tombstones.contains(element) && !self.present.contains(element) {
                self.present.insert(element.clone());
            }
        }
    }
}
