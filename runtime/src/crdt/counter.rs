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

use serde::{Deserialize, Serialize};

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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "BTreeMap<LeaderId, u64>", into = "BTreeMap<LeaderId, u64>")]
pub struct GCounter {
    /// Per-leader counts; zero counts are not stored (canonical form).
    counts: BTreeMap<LeaderId, u64>,
}

impl From<BTreeMap<LeaderId, u64>> for GCounter {
    fn from(mut counts: BTreeMap<LeaderId, u64>) -> Self {
        counts.retain(|_, count| *count > 0);
        GCounter { counts }
    }
}

impl From<GCounter> for BTreeMap<LeaderId, u64> {
    fn from(counter: GCounter) -> Self {
        counter.counts
    }
}

impl GCounter {
    /// The zero counter.
    #[must_use]
    pub fn new() -> Self {
        GCounter::default()
    }

    /// Adds `amount` to `leader`'s entry (saturating) and returns the delta: that entry alone.
    pub fn increment(&mut self, leader: LeaderId, amount: u64) -> GCounter {
        let count = self.get(leader).saturating_add(amount);
        if count > 0 {
            self.counts.insert(leader, count);
        }
        let mut delta = GCounter::new();
        if count > 0 {
            delta.counts.insert(leader, count);
        }
        delta
    }

    /// The counter's value: the sum of all entries, saturating at `u64::MAX`.
    #[must_use]
    pub fn value(&self) -> u64 {
        self.counts.values().fold(0u64, |sum, &count| sum.saturating_add(count))
    }

    /// The count contributed by `leader`.
    #[must_use]
    pub fn get(&self, leader: LeaderId) -> u64 {
        self.counts.get(&leader).copied().unwrap_or(0)
    }

    /// The non-zero entries, in ascending leader order.
    pub fn iter(&self) -> impl Iterator<Item = (LeaderId, u64)> + '_ {
        self.counts.iter().map(|(&leader, &count)| (leader, count))
    }
}

impl StateCrdt for GCounter {
    fn merge(&mut self, other: &Self) {
        for (&leader, &theirs) in &other.counts {
            let mine = self.counts.entry(leader).or_insert(0);
            *mine = (*mine).max(theirs);
        }
        self.counts.retain(|_, count| *count > 0);
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
    pub fn increment(&mut self, leader: LeaderId, amount: u64) -> PnCounter {
        PnCounter { increments: self.increments.increment(leader, amount), decrements: GCounter::new() }
    }

    /// Adds `amount` to `leader`'s decrements and returns the delta.
    pub fn decrement(&mut self, leader: LeaderId, amount: u64) -> PnCounter {
        PnCounter { increments: GCounter::new(), decrements: self.decrements.increment(leader, amount) }
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
