//! [`DotIndex`]: which elements of an [`OrSet`](super::OrSet) hold a given dot.
//!
//! The join of a delta `(s', c')` into a state `(s, c)` removes the dots of `s` that `c'` has seen
//! but `s'` does not hold (Almeida, Shoker and Baquero, "Delta state replicated data types",
//! 2018). Finding them without scanning `s` needs the dots of `s` by dot: `c'` is a version
//! vector (a range of sequence numbers per leader) plus a few cloud dots. This index keeps, per
//! leader, that leader's dots held in the set, sorted by sequence number, each with the elements
//! holding it.
//!
//! **Why vectors.** A leader mints its dots in increasing order and causal delivery brings them
//! in that order, so a new dot almost always goes at the end of its leader's vector: an append,
//! where a search tree would pay a search and a node insertion on every add. Removals leave the
//! slot in place (an empty holder set) and are found by binary search; a leader's vector is
//! compacted when its empty slots outnumber the live ones, so they cost amortized `O(1)` space and
//! time. A dot that arrives out of order (a full-state merge, a delta overtaking another) is
//! appended too and the vector marked unsorted; it is sorted — a nearly sorted vector, so about
//! linear — before its next lookup. Every operation is `O(log n)` amortized, except that sort.
//!
//! **Bound:** at most [`MAX_LEADERS`](crate::MAX_LEADERS) vectors; per vector, the live dots
//! plus at most as many empty slots (and [`COMPACT_MIN`] more).

use alloc::vec::Vec;

use super::small::{SmallMap, SmallSet};
use crate::causality::{Dot, Seq};
use crate::LeaderId;

/// The size from which an [`OrSet`](super::OrSet) keeps its index (and joins small deltas without
/// scanning its elements). Below it a scan costs no more than the index would, and deltas — a
/// handful of elements — never build one.
pub const INDEXED_MIN: usize = 8;

/// Empty slots a leader's vector may keep before it is compacted, whatever its live count (small
/// under test, so that compaction is exercised).
const COMPACT_MIN: usize = if cfg!(test) { 2 } else { 16 };

/// The (dot → elements holding it) index of an [`OrSet`](super::OrSet), kept from
/// [`INDEXED_MIN`] elements on.
///
/// Invariants: when built, it holds exactly the (dot, element) pairs of the set's entries (the
/// set calls [`add`](Self::add) and [`remove`](Self::remove) for every pair it gains and loses),
/// and `zero_seq` counts those whose dot has sequence number 0 (never minted; only a decoded or
/// hand-built state can hold one). A dot normally names one element; a malformed state can put
/// it under several, hence a set of elements per dot.
#[derive(Clone)]
pub(crate) struct DotIndex<T> {
    /// Per leader index; `None` while the set is too small to be indexed.
    leaders: Option<Vec<LeaderDots<T>>>,
    /// Pairs whose dot has sequence number 0.
    zero_seq: usize,
}

/// One leader's dots held in the set.
#[derive(Clone)]
struct LeaderDots<T> {
    /// (sequence number, elements holding that dot). Sorted by sequence number with distinct
    /// sequence numbers unless `unsorted`. An empty holder set is a slot whose dot has gone.
    slots: Vec<(Seq, SmallSet<T>)>,
    /// Whether slots were appended out of order since the last sort.
    unsorted: bool,
    /// Slots with no holder (counted while sorted; an unsorted vector recounts when sorted).
    empty: usize,
}

impl<T> Default for LeaderDots<T> {
    fn default() -> Self {
        LeaderDots { slots: Vec::new(), unsorted: false, empty: 0 }
    }
}

impl<T> Default for DotIndex<T> {
    fn default() -> Self {
        DotIndex { leaders: None, zero_seq: 0 }
    }
}

impl<T: Ord + Clone> DotIndex<T> {
    /// Whether the index is built.
    #[cfg(test)]
    pub(crate) fn is_built(&self) -> bool {
        self.leaders.is_some()
    }

    /// Whether the sparse join can rely on the index: built, and no pair with a dot of sequence
    /// number 0 (which every context has seen, so the sparse join would have to look for them).
    pub(crate) fn is_usable(&self) -> bool {
        self.leaders.is_some() && self.zero_seq == 0
    }

    /// Records that `element` now holds `dot` (a pair the set did not have).
    #[inline]
    pub(crate) fn add(&mut self, dot: Dot, element: &T) {
        let Some(leaders) = &mut self.leaders else { return };
        if dot.seq == Seq(0) {
            self.zero_seq += 1;
        }
        let i = dot.origin.index();
        if leaders.len() <= i {
            // i < MAX_LEADERS: at most that many vectors.
            leaders.resize_with(i + 1, LeaderDots::default);
        }
        leaders[i].add(dot.seq, element);
    }

    /// Records that `element` no longer holds `dot` (a pair the set had).
    #[inline]
    pub(crate) fn remove(&mut self, dot: Dot, element: &T) {
        let Some(leaders) = &mut self.leaders else { return };
        if dot.seq == Seq(0) {
            self.zero_seq -= 1;
        }
        if let Some(dots) = leaders.get_mut(dot.origin.index()) {
            dots.retain_at(dot.seq, |e| e != element);
        }
    }

    /// Keeps, among the elements holding `dot`, those for which `keep` returns true; the caller
    /// removes the pair from the set for the others (and must not call [`remove`](Self::remove)
    /// for them). One binary search.
    #[inline]
    pub(crate) fn retain_holders(&mut self, dot: Dot, keep: impl FnMut(&T) -> bool) {
        let Some(leaders) = &mut self.leaders else { return };
        debug_assert!(dot.seq > Seq(0), "the sparse join does not handle sequence number 0");
        if let Some(dots) = leaders.get_mut(dot.origin.index()) {
            dots.retain_at(dot.seq, keep);
        }
    }

    /// [`retain_holders`](Self::retain_holders) for every dot of `leader` with a sequence number
    /// in `1..=upto`, in ascending order.
    pub(crate) fn retain_holders_upto(&mut self, leader: LeaderId, upto: Seq, mut keep: impl FnMut(Dot, &T) -> bool) {
        let Some(leaders) = &mut self.leaders else { return };
        let Some(dots) = leaders.get_mut(leader.index()) else { return };
        dots.sort_if_needed();
        let start = dots.slots.partition_point(|(seq, _)| *seq < Seq(1));
        let end = dots.slots.partition_point(|(seq, _)| *seq <= upto);
        let mut emptied = 0;
        for (seq, holders) in &mut dots.slots[start..end.max(start)] {
            if holders.is_empty() {
                continue;
            }
            let dot = Dot::new(leader, *seq);
            holders.retain(|element| keep(dot, element));
            emptied += usize::from(holders.is_empty());
        }
        dots.empty += emptied;
        dots.compact_if_sparse();
    }

    /// Builds the index if the set has reached [`INDEXED_MIN`] elements and has none yet.
    pub(crate) fn build_if_large(&mut self, entries: &SmallMap<T, SmallSet<Dot>>) {
        if self.leaders.is_some() || entries.len() < INDEXED_MIN {
            return;
        }
        *self = DotIndex { leaders: Some(Vec::new()), zero_seq: 0 };
        for (element, dots) in entries.iter() {
            for &dot in dots.iter() {
                self.add(dot, element);
            }
        }
    }

    /// Every (dot, element) pair held, in ascending order (for checking the invariant).
    #[cfg(test)]
    pub(crate) fn pairs(&self) -> Option<(alloc::collections::BTreeSet<(Dot, T)>, usize)> {
        let leaders = self.leaders.as_ref()?;
        let mut pairs = alloc::collections::BTreeSet::new();
        for (i, dots) in leaders.iter().enumerate() {
            let leader = LeaderId::new(i).ok()?;
            for (seq, holders) in &dots.slots {
                for element in holders.iter() {
                    pairs.insert((Dot::new(leader, *seq), element.clone()));
                }
            }
            if !dots.unsorted {
                let sorted = dots.slots.windows(2).all(|w| w[0].0 < w[1].0);
                let empty = dots.slots.iter().filter(|(_, h)| h.is_empty()).count();
                if !sorted || empty != dots.empty {
                    return None;
                }
            }
        }
        Some((pairs, self.zero_seq))
    }
}

impl<T: Ord + Clone> LeaderDots<T> {
    /// Adds `element` to the holders of `seq`: an append when `seq` is the highest.
    #[inline]
    fn add(&mut self, seq: Seq, element: &T) {
        if !self.unsorted {
            match self.slots.last() {
                Some((last, _)) if *last >= seq => {
                    if let Ok(i) = self.find(seq) {
                        let holders = &mut self.slots[i].1;
                        self.empty -= usize::from(holders.is_empty());
                        let _ = holders.insert(element.clone());
                        return;
                    }
                    // Out of order: sorted before the next lookup.
                    self.unsorted = true;
                }
                _ => {}
            }
        }
        self.slots.push((seq, SmallSet::one(element.clone())));
    }

    /// Keeps the holders of `seq` for which `keep` returns true.
    #[inline]
    fn retain_at(&mut self, seq: Seq, keep: impl FnMut(&T) -> bool) {
        self.sort_if_needed();
        let Ok(i) = self.find(seq) else { return };
        let holders = &mut self.slots[i].1;
        if holders.is_empty() {
            return;
        }
        holders.retain(keep);
        if holders.is_empty() {
            self.empty += 1;
            self.compact_if_sparse();
        }
    }

    /// Where `seq` is (or would go) in the sorted slots. A leader's dots are numbered without
    /// gaps and removals leave their slots in place, so slot `seq − first` is usually the one:
    /// tried first, then a binary search.
    #[inline]
    fn find(&self, seq: Seq) -> Result<usize, usize> {
        debug_assert!(!self.unsorted);
        if let Some(&(first, _)) = self.slots.first() {
            if let Some(offset) = seq.0.checked_sub(first.0).and_then(|o| usize::try_from(o).ok()) {
                if self.slots.get(offset).is_some_and(|(s, _)| *s == seq) {
                    return Ok(offset);
                }
            }
        }
        self.slots.binary_search_by_key(&seq, |(s, _)| *s)
    }

    /// Sorts the slots appended out of order, merging the holders of equal sequence numbers and
    /// dropping empty slots.
    fn sort_if_needed(&mut self) {
        if !self.unsorted {
            return;
        }
        // Stable, and about linear on a vector sorted but for a few appended slots.
        self.slots.sort_by_key(|(seq, _)| *seq);
        let mut merged: Vec<(Seq, SmallSet<T>)> = Vec::with_capacity(self.slots.len());
        for (seq, holders) in self.slots.drain(..) {
            match merged.last_mut() {
                Some((last, into)) if *last == seq => {
                    for element in holders.iter() {
                        let _ = into.insert(element.clone());
                    }
                }
                _ if holders.is_empty() => {}
                _ => merged.push((seq, holders)),
            }
        }
        self.slots = merged;
        self.unsorted = false;
        self.empty = 0;
    }

    /// Drops the empty slots once they outnumber the live ones (and [`COMPACT_MIN`]).
    fn compact_if_sparse(&mut self) {
        if self.empty > COMPACT_MIN && self.empty * 2 > self.slots.len() {
            self.slots.retain(|(_, holders)| !holders.is_empty());
            self.empty = 0;
        }
    }
}
