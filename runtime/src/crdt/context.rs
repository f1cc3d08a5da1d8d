//! Causal contexts: the set of dots a replica of an observed-remove CRDT has seen.
//!
//! A [`CausalContext`] is a set of [`Dot`]s stored compactly as a version vector plus a "dot
//! cloud", as in Almeida, Shoker and Baquero, "Delta state replicated data types" (JPDC 2018,
//! causal δ-CRDTs): the vector names every dot `(i, 1..=n)` of a contiguous prefix, the cloud holds the dots
//! seen out of order. Deltas produce clouds (a delta's context names only the dots it touched),
//! and a cloud dot moves into the vector as soon as its predecessors arrive. The stored form is
//! canonical — the vector holds the longest contiguous prefix per leader and the cloud holds only
//! dots above it — so two contexts naming the same dots are structurally equal.
//!
//! The same module holds the joins of the two *dot stores* the types use: a dot set (an
//! OR-set's element) and a dot function (an MV-register's values), following the dot-store
//! lattices of Almeida et al. and the optimized OR-set of Bieniusa, Zawirski, Preguiça, Shapiro,
//! Baquero, Balegas and Duarte, "An optimized conflict-free replicated set" (INRIA RR-8083, 2012):
//! a dot survives a join if both sides have it, or if one side has it and the other side has not
//! seen it. A dot the other side has seen but no longer holds was removed there.
//!
//! **Bound:** the vector has at most [`MAX_LEADERS`](crate::MAX_LEADERS) counters. The cloud is
//! empty whenever deltas are delivered in causal order and after any full-state exchange with a
//! replica that has the missing dots; [`DOT_CLOUD_MAX`] is the size above which a replica should
//! request a full state rather than keep merging deltas.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::causality::{Dot, VersionVector};
use crate::LeaderId;

/// Out-of-order dots a causal context may hold before its replica should stop merging deltas for
/// the object and request a full state (which fills the gaps, so the cloud compacts).
pub const DOT_CLOUD_MAX: usize = 1024;

/// A set of dots: a version vector (contiguous prefixes) plus a cloud of dots seen out of order.
///
/// ```
/// use roundtable_runtime::causality::{Dot, Seq};
/// use roundtable_runtime::crdt::CausalContext;
/// use roundtable_runtime::LeaderId;
/// let a = LeaderId::new(0).unwrap();
/// let mut cx = CausalContext::new();
/// cx.insert(Dot::new(a, Seq(2)));
/// assert_eq!(cx.cloud_len(), 1);
/// cx.insert(Dot::new(a, Seq(1))); // the gap closes: both dots move into the vector
/// assert_eq!(cx.cloud_len(), 0);
/// assert_eq!(cx.next_dot(a), Dot::new(a, Seq(3)));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "RawCausalContext")]
pub struct CausalContext {
    /// Every dot `(i, 1..=vv[i])`.
    vv: VersionVector,
    /// Dots seen out of order: never covered by `vv`, never `(i, vv[i] + 1)`.
    cloud: BTreeSet<Dot>,
}

/// The decoded shape of a [`CausalContext`], canonicalised on the way in.
#[derive(Deserialize)]
#[serde(rename = "CausalContext")]
struct RawCausalContext {
    vv: VersionVector,
    cloud: BTreeSet<Dot>,
}

impl From<RawCausalContext> for CausalContext {
    fn from(raw: RawCausalContext) -> Self {
        let mut cx = CausalContext { vv: raw.vv, cloud: BTreeSet::new() };
        for dot in raw.cloud {
            cx.insert(dot);
        }
        cx
    }
}

impl CausalContext {
    /// The empty context: no dot seen.
    #[must_use]
    pub fn new() -> Self {
        CausalContext::default()
    }

    /// The context naming exactly the dots in `dots`.
    #[must_use]
    pub fn from_dots<'a>(dots: impl IntoIterator<Item = &'a Dot>) -> Self {
        let mut cx = CausalContext::new();
        for &dot in dots {
            cx.insert(dot);
        }
        cx
    }

    /// Whether `dot` has been seen. A dot with sequence number 0 (never issued) counts as seen.
    #[must_use]
    pub fn contains(&self, dot: Dot) -> bool {
        self.vv.contains(dot) || self.cloud.contains(&dot)
    }

    /// Records `dot` as seen, compacting the cloud into the vector where it becomes contiguous.
    pub fn insert(&mut self, dot: Dot) {
        if self.vv.contains(dot) {
            return;
        }
        if dot.seq == self.vv.get(dot.origin).next() {
            self.vv.set(dot.origin, dot.seq);
            self.compact(dot.origin);
        } else {
            self.cloud.insert(dot);
        }
    }

    /// Records every dot of `other` as seen (set union).
    pub fn merge(&mut self, other: &CausalContext) {
        self.vv.merge(&other.vv);
        let vv = &self.vv;
        self.cloud.retain(|&dot| !vv.contains(dot));
        for &dot in &other.cloud {
            if !self.vv.contains(dot) {
                self.cloud.insert(dot);
            }
        }
        let origins: BTreeSet<LeaderId> = self.cloud.iter().map(|dot| dot.origin).collect();
        for origin in origins {
            self.compact(origin);
        }
    }

    /// Moves `origin`'s cloud dots that continue its contiguous prefix into the vector.
    fn compact(&mut self, origin: LeaderId) {
        // Each iteration removes one cloud dot, so the loop ends.
        loop {
            let next = Dot::new(origin, self.vv.get(origin).next());
            if !self.cloud.remove(&next) {
                break;
            }
            self.vv.set(origin, next.seq);
        }
        debug_assert!(self.cloud.iter().all(|&dot| !self.vv.contains(dot)));
    }

    /// The next dot `leader` should mint: one past the highest of its dots seen here.
    #[must_use]
    pub fn next_dot(&self, leader: LeaderId) -> Dot {
        let in_cloud =
            self.cloud.range(Dot::new(leader, crate::Seq(0))..).take_while(|dot| dot.origin == leader).last();
        let highest = in_cloud.map_or(self.vv.get(leader), |dot| dot.seq.max(self.vv.get(leader)));
        Dot::new(leader, highest.next())
    }

    /// The contiguous part of the context.
    #[must_use]
    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    /// The dots seen out of order, in ascending order.
    pub fn cloud(&self) -> impl Iterator<Item = Dot> + '_ {
        self.cloud.iter().copied()
    }

    /// How many dots are seen out of order (compare with [`DOT_CLOUD_MAX`]).
    #[must_use]
    pub fn cloud_len(&self) -> usize {
        self.cloud.len()
    }

    /// Whether no dot has been seen.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }
}

impl fmt::Debug for CausalContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Renders as `[L0:2 L1:1]` or, with a cloud, `[L0:2]+{L1:3 L1:5}`.
impl fmt::Display for CausalContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.vv, f)?;
        if !self.cloud.is_empty() {
            f.write_str("+{")?;
            for (i, dot) in self.cloud.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{dot}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// Joins their dot store (key → dot set) into mine, in place: a dot survives if both hold it, or
/// if one side holds it and the other side's context has not seen it. Keys left without dots are
/// dropped. `my_context` must be my context *before* the contexts are merged.
pub(crate) fn join_dot_maps<K: Ord + Clone>(
    mine: &mut BTreeMap<K, BTreeSet<Dot>>,
    my_context: &CausalContext,
    theirs: &BTreeMap<K, BTreeSet<Dot>>,
    their_context: &CausalContext,
) {
    for (key, dots) in mine.iter_mut() {
        let their_dots = theirs.get(key);
        dots.retain(|&dot| their_dots.is_some_and(|t| t.contains(&dot)) || !their_context.contains(dot));
    }
    for (key, their_dots) in theirs {
        let unseen: Vec<Dot> = their_dots.iter().copied().filter(|&dot| !my_context.contains(dot)).collect();
        if !unseen.is_empty() {
            mine.entry(key.clone()).or_default().extend(unseen);
        }
    }
    mine.retain(|_, dots| !dots.is_empty());
}

/// Joins their dot function (dot → value) into mine, in place, with the survival rule of
/// [`join_dot_maps`]. A dot names one write, so both sides hold the same value for a dot they
/// share; should a misbehaving peer send a different one, the greater value is kept, so the join
/// stays commutative.
pub(crate) fn join_dot_funs<T: Ord + Clone>(
    mine: &mut BTreeMap<Dot, T>,
    my_context: &CausalContext,
    theirs: &BTreeMap<Dot, T>,
    their_context: &CausalContext,
) {
    mine.retain(|&dot, value| match theirs.get(&dot) {
        Some(other) => {
            if *other > *value {
                *value = other.clone();
            }
            true
        }
        None => !their_context.contains(dot),
    });
    for (&dot, value) in theirs {
        if !mine.contains_key(&dot) && !my_context.contains(dot) {
            mine.insert(dot, value.clone());
        }
    }
}
