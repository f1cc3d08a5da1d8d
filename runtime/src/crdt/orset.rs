//! The add-wins observed-remove set [`OrSet`], state-based, with a causal context.
//!
//! Every add tags the element with a fresh dot; a remove deletes the dots of the element that the
//! remover has observed. An add concurrent with a remove carries a dot the remover never saw, so
//! it survives: **add wins**. This is the optimized OR-set ("OR-Set without tombstones", ORSWOT)
//! of Bieniusa, Zawirski, Preguiça, Shapiro, Baquero, Balegas and Duarte, "An optimized
//! conflict-free replicated set" (INRIA RR-8083, 2012), refining the OR-set of Shapiro, Preguiça,
//! Baquero and Zawirski (2011), in the delta-state form of Almeida, Shoker and Baquero,
//! "Delta state replicated data types" (2018, the add-wins set): the state is a dot store
//! (element → dots) plus a [`CausalContext`] of every dot seen. Instead of tombstones, the context
//! remembers that a dot was seen; a dot seen but no longer held was removed.
//!
//! Join of `(s, c)` and `(s', c')`, per element: keep the dots both hold, plus the dots one side
//! holds that the other has not seen; the context is `c ∪ c'`.
//!
//! An add also replaces the dots of the element it observed (they are causally older), so each
//! element carries at most one dot per leader that added it concurrently.
//!
//! **Bounds.** Elements are user data. Metadata: at most one dot per (element, leader) and one
//! causal context per set — a version vector of at most [`MAX_LEADERS`](crate::MAX_LEADERS)
//! counters plus the dot cloud (see [`CausalContext`]); removed elements leave nothing behind.

use alloc::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::context::{join_dot_maps, CausalContext};
use super::StateCrdt;
use crate::causality::Dot;
use crate::LeaderId;

/// An add-wins observed-remove set.
///
/// ```
/// use roundtable_runtime::crdt::{OrSet, StateCrdt};
/// use roundtable_runtime::LeaderId;
/// let (a, b) = (LeaderId::new(0).unwrap(), LeaderId::new(1).unwrap());
/// let mut x = OrSet::new();
/// x.add(a, "milk");
/// let mut y = x.clone();
/// y.remove(&"milk"); // b removes the milk it saw ...
/// x.add(a, "milk"); // ... while a adds it again, concurrently
/// x.merge(&y);
/// assert!(x.contains(&"milk")); // add wins
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Ord + Deserialize<'de>"))]
#[serde(from = "RawOrSet<T>")]
pub struct OrSet<T> {
    /// Present elements and the dots of the adds that put them there (never empty).
    entries: BTreeMap<T, BTreeSet<Dot>>,
    /// Every dot seen; covers every dot in `entries`.
    context: CausalContext,
}

/// The decoded shape of an [`OrSet`], made canonical on the way in.
#[derive(Deserialize)]
#[serde(rename = "OrSet")]
#[serde(bound(deserialize = "T: Ord + Deserialize<'de>"))]
struct RawOrSet<T> {
    entries: BTreeMap<T, BTreeSet<Dot>>,
    context: CausalContext,
}

impl<T: Ord> From<RawOrSet<T>> for OrSet<T> {
    fn from(raw: RawOrSet<T>) -> Self {
        let RawOrSet { mut entries, mut context } = raw;
        entries.retain(|_, dots| !dots.is_empty());
        for dot in entries.values().flatten() {
            context.insert(*dot);
        }
        OrSet { entries, context }
    }
}

impl<T> Default for OrSet<T> {
    fn default() -> Self {
        OrSet { entries: BTreeMap::new(), context: CausalContext::new() }
    }
}

impl<T: Ord + Clone> OrSet<T> {
    /// The empty set.
    #[must_use]
    pub fn new() -> Self {
        OrSet::default()
    }

    /// `leader` adds `element` (with a fresh dot, replacing the element's dots seen here) and
    /// returns the delta.
    pub fn add(&mut self, leader: LeaderId, element: T) -> OrSet<T> {
        let dot = self.context.next_dot(leader);
        let replaced = self.entries.insert(element.clone(), BTreeSet::from([dot])).unwrap_or_default();
        self.context.insert(dot);
        let mut context = CausalContext::from_dots(&replaced);
        context.insert(dot);
        OrSet { entries: BTreeMap::from([(element, BTreeSet::from([dot]))]), context }
    }

    /// Removes `element` as observed here (its dots seen here) and returns the delta. Adds of it
    /// this replica has not seen survive. Removing an absent element is a no-op (empty delta).
    pub fn remove(&mut self, element: &T) -> OrSet<T> {
        match self.entries.remove(element) {
            Some(dots) => OrSet { entries: BTreeMap::new(), context: CausalContext::from_dots(&dots) },
            None => OrSet::new(),
        }
    }

    /// The delta of an add of `element` tagged `dot` made elsewhere (an operation-based add,
    /// turned into state so that it joins with everything else).
    #[must_use]
    pub fn add_delta(element: T, dot: Dot) -> OrSet<T> {
        OrSet { entries: BTreeMap::from([(element, BTreeSet::from([dot]))]), context: CausalContext::from_dots([&dot]) }
    }

    /// The delta of a remove that observed the adds `observed` (an operation-based remove).
    #[must_use]
    pub fn remove_delta<'a>(observed: impl IntoIterator<Item = &'a Dot>) -> OrSet<T> {
        OrSet { entries: BTreeMap::new(), context: CausalContext::from_dots(observed) }
    }

    /// Removes every element observed here and returns the delta.
    pub fn clear(&mut self) -> OrSet<T> {
        let removed = core::mem::take(&mut self.entries);
        OrSet { entries: BTreeMap::new(), context: CausalContext::from_dots(removed.values().flatten()) }
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

    /// The dots of the adds that keep `element` present (empty when absent).
    pub fn dots(&self, element: &T) -> impl Iterator<Item = Dot> + '_ {
        self.entries.get(element).into_iter().flatten().copied()
    }

    /// Every dot this replica has seen.
    #[must_use]
    pub fn context(&self) -> &CausalContext {
        &self.context
    }
}

impl<T: Ord + Clone> StateCrdt for OrSet<T> {
    fn merge(&mut self, other: &Self) {
        join_dot_maps(&mut self.entries, &self.context, &other.entries, &other.context);
        self.context.merge(&other.context);
    }

    fn dot_cloud_len(&self) -> usize {
        self.context.cloud_len()
    }
}
