//! State-based counters: the grow-only [`GCounter`] and the increment/decrement [`PnCounter`].
//!
//! A G-counter keeps one count per leader; a leader only ever raises its own entry, the value is
//! the sum of the entries, and the join is the entry-wise maximum (Shapiro, Preguiça, Baquero and
//! Zawirski, "A comprehensive study of Convergent and Commutative Replicated Data Types", 2011,
//! "State-based increment-only counter"). A PN-counter is a pair of G-counters, one for increments and one for decrements; its
//! value is their difference. A mutator returns the delta it produced — the acting
//! leader's new entry alone — as in Almeida, Shoker and Baquero, "Delta state replicated data
//! types" (2018).
//!
//! **Bounds and overflow.** One entry per leader, at most [`MAX_LEADERS`](crate::MAX_LEADERS).
//! Entries *saturate* at `u64::MAX` instead of wrapping: saturating addition keeps every entry
//! monotone, so the join stays correct, and a counter that reaches the limit stays there. The
//! G-counter's value saturates likewise; the PN-counter's value is an `i128`, which holds the exact
//! difference of two saturated sums.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize, Serializer};

use super::StateCrdt;
use crate::LeaderId;

/// A grow-only counter: one saturating count per leader.
///
/// ```
/// use roundtable_runtime::crdt::{GCounter, StateCrdt};
/// use roundtable_runtime::LeaderId;
/// let (a, b) = (LeaderId::new(0).unwrap(), LeaderId::new(1).unwrap());
/// let (mut x, mut y) = (GCounter::new(), GCounter::new());
/// x.increment(a, 2);
/// let delta = y.increment(b, 5);
/// x.merge(&delta);
/// assert_eq!(x.value(), 7);
/// ```
///
/// **Representation.** The entries are kept sorted by leader, without zero counts (the canonical
/// form, so structural equality is counter equality). Up to one entry lives inline and more in a
/// vector: a mutator's delta — one entry — never touches the allocator. On the wire a counter is
/// a map from leader to count (as a `BTreeMap<LeaderId, u64>` would be).
#[derive(Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "BTreeMap<LeaderId, u64>")]
pub struct GCounter {
    counts: Counts,
}

/// The non-zero counts of a [`GCounter`], ascending by leader; canonical: [`Counts::Spilled`]
/// exactly when there are two entries or more.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Counts {
    /// No entry, or one.
    Inline(Option<(LeaderId, u64)>),
    /// Two entries or more (at most [`MAX_LEADERS`](crate::MAX_LEADERS)), ascending by leader.
    Spilled(Vec<(LeaderId, u64)>),
}

impl Default for Counts {
    fn default() -> Self {
        Counts::Inline(None)
    }
}

impl Counts {
    #[inline]
    fn as_slice(&self) -> &[(LeaderId, u64)] {
        match self {
            Counts::Inline(entry) => entry.as_slice(),
            Counts::Spilled(entries) => entries,
        }
    }

    /// Applies `f` to `leader`'s count (0 when absent) and stores the result, which must not be
    /// smaller; returns it. A zero result is not stored (only possible for an absent entry).
    #[inline]
    fn update(&mut self, leader: LeaderId, f: impl FnOnce(u64) -> u64) -> u64 {
        match self.find_mut(leader) {
            Some(count) => {
                let new = f(*count);
                debug_assert!(new >= *count, "counts never decrease");
                *count = new;
                new
            }
            None => {
                let count = f(0);
                if count > 0 {
                    self.insert_absent(leader, count);
                }
                count
            }
        }
    }

    /// `leader`'s count, if it has one.
    #[inline]
    fn find_mut(&mut self, leader: LeaderId) -> Option<&mut u64> {
        match self {
            Counts::Inline(Some((l, count))) if *l == leader => Some(count),
            Counts::Inline(_) => None,
            Counts::Spilled(entries) => {
                let i = position(entries, leader)?;
                Some(&mut entries[i].1)
            }
        }
    }

    /// Adds an entry for `leader`, which has none, in order (the slow path of `update`: at most
    /// once per leader in a counter's life).
    #[inline(never)]
    fn insert_absent(&mut self, leader: LeaderId, count: u64) {
        match self {
            Counts::Inline(None) => *self = Counts::Inline(Some((leader, count))),
            Counts::Inline(Some(other)) => {
                let other = *other;
                let pair = if other.0 < leader { [other, (leader, count)] } else { [(leader, count), other] };
                *self = Counts::Spilled(Vec::from(pair));
            }
            Counts::Spilled(entries) => {
                let i = entries.partition_point(|&(l, _)| l < leader);
                entries.insert(i, (leader, count));
            }
        }
    }
}

/// Where `leader`'s entry is in `entries` (sorted by leader, distinct). When every leader below
/// it has an entry too — the usual case, leader ids being small and dense — that is index
/// `leader`, found without a search.
#[inline]
fn position(entries: &[(LeaderId, u64)], leader: LeaderId) -> Option<usize> {
    match entries.get(leader.index()) {
        Some(&(l, _)) if l == leader => Some(leader.index()),
        _ => entries.binary_search_by_key(&leader, |&(l, _)| l).ok(),
    }
}

impl From<BTreeMap<LeaderId, u64>> for GCounter {
    fn from(counts: BTreeMap<LeaderId, u64>) -> Self {
        let mut entries: Vec<(LeaderId, u64)> = counts.into_iter().filter(|&(_, count)| count > 0).collect();
        let counts = if entries.len() >= 2 { Counts::Spilled(entries) } else { Counts::Inline(entries.pop()) };
        GCounter { counts }
    }
}

impl From<GCounter> for BTreeMap<LeaderId, u64> {
    fn from(counter: GCounter) -> Self {
        counter.iter().collect()
    }
}

/// A map from leader to count, ascending: the bytes a `BTreeMap<LeaderId, u64>` gives.
impl Serialize for GCounter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.counts.as_slice().iter().map(|(leader, count)| (leader, count)))
    }
}

/// As the map it stands for: `{L0: 2, L1: 5}`.
impl fmt::Debug for GCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GCounter").field("counts", &DebugMap(self.counts.as_slice())).finish()
    }
}

struct DebugMap<'a>(&'a [(LeaderId, u64)]);

impl fmt::Debug for DebugMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(leader, count)| (leader, count))).finish()
    }
}

impl GCounter {
    /// The zero counter.
    #[must_use]
    pub fn new() -> Self {
        GCounter::default()
    }

    /// Adds `amount` to `leader`'s entry (saturating) and returns the delta: that entry alone.
    #[inline]
    pub fn increment(&mut self, leader: LeaderId, amount: u64) -> GCounter {
        let count = self.counts.update(leader, |count| count.saturating_add(amount));
        GCounter { counts: Counts::Inline((count > 0).then_some((leader, count))) }
    }

    /// The delta [`GCounter::increment`] would return, without changing the counter: a leader
    /// computes its update's delta from the state it holds without copying that state.
    #[must_use]
    pub fn delta_of_increment(&self, leader: LeaderId, amount: u64) -> GCounter {
        let count = self.get(leader).saturating_add(amount);
        GCounter { counts: Counts::Inline((count > 0).then_some((leader, count))) }
    }

    /// The counter's value: the sum of all entries, saturating at `u64::MAX`.
    #[must_use]
    pub fn value(&self) -> u64 {
        self.counts.as_slice().iter().fold(0u64, |sum, &(_, count)| sum.saturating_add(count))
    }

    /// The count contributed by `leader`.
    #[must_use]
    #[inline]
    pub fn get(&self, leader: LeaderId) -> u64 {
        match &self.counts {
            Counts::Inline(Some((l, count))) if *l == leader => *count,
            Counts::Inline(_) => 0,
            Counts::Spilled(entries) => position(entries, leader).map_or(0, |i| entries[i].1),
        }
    }

    /// The non-zero entries, in ascending leader order.
    pub fn iter(&self) -> impl Iterator<Item = (LeaderId, u64)> + '_ {
        self.counts.as_slice().iter().copied()
    }
}

impl StateCrdt for GCounter {
    fn merge(&mut self, other: &Self) {
        // Entry-wise maximum. Both sides hold at most MAX_LEADERS entries; `update` keeps the
        // order and the canonical form, and other's counts are never zero.
        for &(leader, theirs) in other.counts.as_slice() {
            let _ = self.counts.update(leader, |mine| mine.max(theirs));
        }
    }

    fn is_bottom(&self) -> bool {
        matches!(self.counts, Counts::Inline(None))
    }
}

/// An increment/decrement counter: two [`GCounter`]s, increments and decrements.
///
/// ```
/// use roundtable_runtime::crdt::{PnCounter, StateCrdt};
/// use roundtable_runtime::LeaderId;
/// let (a, b) = (LeaderId::new(0).unwrap(), LeaderId::new(1).unwrap());
/// let (mut x, mut y) = (PnCounter::new(), PnCounter::new());
/// x.increment(a, 3);
/// y.decrement(b, 5);
/// x.merge(&y);
/// assert_eq!(x.value(), -2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnCounter {
    /// Increments per leader.
    increments: GCounter,
    /// Decrements per leader.
    decrements: GCounter,
}

impl PnCounter {
    /// The zero counter.
    #[must_use]
    pub fn new() -> Self {
        PnCounter::default()
    }

    /// Adds `amount` to `leader`'s increments and returns the delta.
    #[inline]
    pub fn increment(&mut self, leader: LeaderId, amount: u64) -> PnCounter {
        PnCounter { increments: self.increments.increment(leader, amount), decrements: GCounter::new() }
    }

    /// Adds `amount` to `leader`'s decrements and returns the delta.
    #[inline]
    pub fn decrement(&mut self, leader: LeaderId, amount: u64) -> PnCounter {
        PnCounter { increments: GCounter::new(), decrements: self.decrements.increment(leader, amount) }
    }

    /// The delta [`PnCounter::increment`] would return, without changing the counter.
    #[must_use]
    pub fn delta_of_increment(&self, leader: LeaderId, amount: u64) -> PnCounter {
        PnCounter { increments: self.increments.delta_of_increment(leader, amount), decrements: GCounter::new() }
    }

    /// The delta [`PnCounter::decrement`] would return, without changing the counter.
    #[must_use]
    pub fn delta_of_decrement(&self, leader: LeaderId, amount: u64) -> PnCounter {
        PnCounter { increments: GCounter::new(), decrements: self.decrements.delta_of_increment(leader, amount) }
    }

    /// The counter's value: all increments minus all decrements (each sum saturating at
    /// `u64::MAX`; the difference is exact).
    #[must_use]
    pub fn value(&self) -> i128 {
        i128::from(self.increments.value()) - i128::from(self.decrements.value())
    }

    /// The increments, per leader.
    #[must_use]
    pub fn increments(&self) -> &GCounter {
        &self.increments
    }

    /// The decrements, per leader.
    #[must_use]
    pub fn decrements(&self) -> &GCounter {
        &self.decrements
    }

    /// The counter whose increments and decrements are the given per-leader totals.
    #[must_use]
    pub fn from_parts(increments: GCounter, decrements: GCounter) -> Self {
        PnCounter { increments, decrements }
    }
}

impl StateCrdt for PnCounter {
    fn merge(&mut self, other: &Self) {
        self.increments.merge(&other.increments);
        self.decrements.merge(&other.decrements);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Through any increments and merges, a counter keeps its entries sorted and canonical,
        /// agrees with a `BTreeMap` model, and encodes to that map's bytes.
        #[test]
        fn counters_match_a_btree_map(
            steps in prop::collection::vec((0usize..8, 0u64..5, any::<bool>()), 0..40),
        ) {
            let mut counter = GCounter::new();
            let mut other = GCounter::new();
            let mut model: BTreeMap<LeaderId, u64> = BTreeMap::new();
            for (i, amount, to_other) in steps {
                let leader = LeaderId::new(i).expect("small");
                if to_other {
                    let delta = other.increment(leader, amount);
                    prop_assert!(delta.iter().count() <= 1);
                    counter.merge(&delta);
                } else {
                    let _ = counter.increment(leader, amount);
                }
                let mine = model.entry(leader).or_insert(0);
                *mine = if to_other { (*mine).max(other.get(leader)) } else { *mine + amount };
                model.retain(|_, count| *count > 0);
                let entries: Vec<(LeaderId, u64)> = counter.iter().collect();
                prop_assert_eq!(&entries, &model.iter().map(|(&l, &c)| (l, c)).collect::<Vec<_>>());
                prop_assert!(matches!(&counter.counts, Counts::Inline(_)) == (entries.len() < 2));
                for (&leader, &count) in &model {
                    prop_assert_eq!(counter.get(leader), count);
                }
                let bytes = postcard::to_allocvec(&counter).expect("encodes");
                prop_assert_eq!(&bytes, &postcard::to_allocvec(&model).expect("encodes"));
                prop_assert_eq!(postcard::from_bytes::<GCounter>(&bytes).expect("decodes"), counter.clone());
            }
        }
    }
}
