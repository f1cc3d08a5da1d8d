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

use super::small::SmallSet;
use crate::causality::{Dot, Seq, VersionVector};
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
///
/// Serialized as `{ vv: VersionVector, cloud: BTreeSet<Dot> }`. In memory the vector is a plain
/// vector (empty, unallocated, in most deltas) and the cloud keeps one dot inline, so a delta's
/// context is a few words, cheap to build and to move.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "RawCausalContext")]
pub struct CausalContext {
    /// Every dot `(i, 1..=vv[i])`.
    vv: Prefixes,
    /// Dots seen out of order: never covered by `vv`, never `(i, vv[i] + 1)`. Inline while it
    /// holds one dot (a delta's context typically does); serialized as a `BTreeSet<Dot>`.
    cloud: SmallSet<Dot>,
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
        let mut vv = Prefixes::default();
        for (leader, seq) in raw.vv.iter() {
            vv.set(leader, seq);
        }
        let mut cx = CausalContext { vv, cloud: SmallSet::default() };
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

    /// The context naming the dots `(i, 1..=vv[i])` of every leader `i`.
    #[must_use]
    pub fn from_version_vector(vv: &VersionVector) -> Self {
        let mut prefixes = Prefixes::default();
        for (leader, seq) in vv.iter() {
            prefixes.set(leader, seq);
        }
        CausalContext { vv: prefixes, cloud: SmallSet::default() }
    }

    /// Whether `dot` has been seen. A dot with sequence number 0 (never issued) counts as seen.
    #[must_use]
    #[inline]
    pub fn contains(&self, dot: Dot) -> bool {
        self.vv.contains(dot) || (!self.cloud.is_empty() && self.cloud.contains(&dot))
    }

    /// The only dot of this context, when it names exactly one (an operation's context).
    #[inline]
    pub(crate) fn single(&self) -> Option<Dot> {
        match (self.vv.counts.as_slice(), self.cloud.single()) {
            ([], Some(&dot)) => Some(dot),
            (counts, None) if self.cloud.is_empty() => {
                // The prefix `(i, 1..=1)` of the last leader, and nothing before it.
                let (&last, before) = counts.split_last()?;
                let leader = LeaderId::new(before.len()).ok()?;
                (last == 1 && before.iter().all(|&n| n == 0)).then(|| Dot::new(leader, Seq(1)))
            }
            _ => None,
        }
    }

    /// Records `dot` as seen, compacting the cloud into the vector where it becomes contiguous.
    #[inline]
    pub fn insert(&mut self, dot: Dot) {
        if self.vv.contains(dot) {
            return;
        }
        if dot.seq == self.vv.get(dot.origin).next() {
            self.vv.set(dot.origin, dot.seq);
            if !self.cloud.is_empty() {
                self.compact(dot.origin);
            }
        } else {
            let _ = self.cloud.insert(dot);
        }
    }

    /// Records every dot of `other` as seen (set union).
    ///
    /// Costs `O(|other's vector| + |other's cloud| · log |cloud|)`, plus a pass over this cloud
    /// when other's vector raised a counter: merging a delta's small context is cheap whatever
    /// the size of this one. The result is canonical, so it equals the union however computed.
    pub fn merge(&mut self, other: &CausalContext) {
        if !other.vv.le(&self.vv) {
            self.vv.merge(&other.vv);
            if !self.cloud.is_empty() {
                let vv = &self.vv;
                self.cloud.retain(|&dot| !vv.contains(dot));
                self.compact_all();
            }
        }
        for &dot in other.cloud.iter() {
            self.insert(dot);
        }
    }

    /// Compacts every origin that has dots in the cloud.
    fn compact_all(&mut self) {
        let mut next = self.cloud.iter().next().copied();
        while let Some(first) = next {
            self.compact(first.origin);
            next = match LeaderId::new(first.origin.index() + 1) {
                Ok(origin) => self.cloud.range(Dot::new(origin, Seq(0))..).next().copied(),
                Err(_) => None,
            };
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
    #[inline]
    pub fn next_dot(&self, leader: LeaderId) -> Dot {
        Dot::new(leader, self.highest(leader).next())
    }

    /// The highest sequence number of `leader`'s dots seen here (0 when none).
    #[must_use]
    #[inline]
    pub(crate) fn highest(&self, leader: LeaderId) -> Seq {
        let in_vv = self.vv.get(leader);
        if self.cloud.is_empty() {
            return in_vv;
        }
        let in_cloud = self.cloud.range(Dot::new(leader, Seq(0))..=Dot::new(leader, Seq(u64::MAX))).next_back();
        in_cloud.map_or(in_vv, |dot| dot.seq.max(in_vv))
    }

    /// The contiguous part of the context.
    #[must_use]
    pub fn version_vector(&self) -> VersionVector {
        let mut vv = VersionVector::new();
        for (leader, seq) in self.vv.iter() {
            vv.set(leader, seq);
        }
        vv
    }

    /// The contiguous part of the context: per leader with a non-zero prefix, its length.
    pub(crate) fn prefixes(&self) -> impl Iterator<Item = (LeaderId, Seq)> + '_ {
        self.vv.iter()
    }

    /// The dots seen out of order, in ascending order.
    pub fn cloud(&self) -> impl Iterator<Item = Dot> + '_ {
        self.cloud.iter().copied()
    }

    /// The dots seen out of order, as stored.
    pub(crate) fn cloud_set(&self) -> &SmallSet<Dot> {
        &self.cloud
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

    /// Whether every dot of this context is in `other` (set inclusion).
    #[must_use]
    pub fn is_within(&self, other: &CausalContext) -> bool {
        self.vv.le(&other.vv) && self.cloud.iter().all(|&dot| other.contains(dot))
    }

    /// The leaders with at least one dot here, ascending, without repetition (a bit set: leader
    /// ids are below [`MAX_LEADERS`](crate::MAX_LEADERS), 64, so nothing is allocated).
    fn leaders(&self) -> impl Iterator<Item = LeaderId> {
        const _: () = assert!(crate::MAX_LEADERS <= 64, "leader ids index a u64 bit set");
        let mut bits = 0u64;
        for leader in self.vv.iter().map(|(leader, _)| leader).chain(self.cloud.iter().map(|dot| dot.origin)) {
            bits |= 1 << leader.index();
        }
        core::iter::from_fn(move || {
            let i = bits.trailing_zeros();
            bits &= bits.checked_sub(1)?;
            LeaderId::new(i as usize).ok()
        })
    }

    /// `leader`'s dots in the cloud, ascending.
    fn cloud_of(&self, leader: LeaderId) -> impl Iterator<Item = Dot> + '_ {
        self.cloud.range(Dot::new(leader, Seq(0))..=Dot::new(leader, Seq(u64::MAX))).copied()
    }

    /// Whether every dot of `leader` here is in `other`. Both are canonical, so a longer prefix
    /// here names `(leader, other's prefix + 1)`, which `other` does not hold.
    fn leader_within(&self, leader: LeaderId, other: &CausalContext) -> bool {
        self.vv.get(leader) <= other.vv.get(leader) && self.cloud_of(leader).all(|dot| other.contains(dot))
    }

    /// Puts this context, the *scoped* context of one element (or field) whose effective context
    /// is `base ∪ self`, in its canonical form relative to `base`: per leader, nothing when
    /// `base` already holds every dot of that leader named here, otherwise exactly the effective
    /// context's dots of that leader (`base`'s and this one's). The result depends only on the
    /// effective context and `base`, so two replicas meaning the same store the same bytes; and
    /// it stays a version vector (plus the clouds of the two) rather than a difference of
    /// prefixes, which would be a cloud of every dot between them.
    pub(crate) fn normalize_above(&mut self, base: &CausalContext) {
        if self.is_empty() {
            return;
        }
        *self = self.normalized_above(base);
    }

    /// This context in its canonical form relative to `base`, as
    /// [`normalize_above`](Self::normalize_above) makes it, built without changing (or cloning)
    /// this one.
    #[must_use]
    pub(crate) fn normalized_above(&self, base: &CausalContext) -> CausalContext {
        let mut out = CausalContext::new();
        if self.is_empty() {
            return out;
        }
        // No counter of the result lies beyond both vectors (a leader with no prefix on either
        // side has no cloud dot `(leader, 1)` to start one), so this is the only allocation.
        out.vv.counts.reserve_exact(self.vv.counts.len().max(base.vv.counts.len()));
        for leader in self.leaders() {
            if self.leader_within(leader, base) {
                continue;
            }
            out.vv.set(leader, self.vv.get(leader).max(base.vv.get(leader)));
            for dot in base.cloud_of(leader).chain(self.cloud_of(leader)) {
                out.insert(dot);
            }
        }
        out
    }
}

/// The contiguous part of a [`CausalContext`]: `counts[i]` is the length of leader `i`'s prefix
/// `(i, 1..=counts[i])`. Canonical, as [`VersionVector`]: no trailing zeros, at most
/// [`MAX_LEADERS`](crate::MAX_LEADERS) counters (leader ids index it). Unlike a
/// `VersionVector`, which reserves room for every leader inline, it takes three words and
/// allocates only when non-empty. Serialized as a `VersionVector` is: a sequence of counters.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
struct Prefixes {
    counts: Vec<u64>,
}

impl Prefixes {
    #[inline]
    fn get(&self, leader: LeaderId) -> Seq {
        Seq(self.counts.get(leader.index()).copied().unwrap_or(0))
    }

    #[inline]
    fn contains(&self, dot: Dot) -> bool {
        dot.seq <= self.get(dot.origin)
    }

    #[inline]
    fn set(&mut self, leader: LeaderId, seq: Seq) {
        let i = leader.index();
        if i >= self.counts.len() {
            if seq.0 == 0 {
                return;
            }
            // i < MAX_LEADERS: the vector stays bounded.
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] = seq.0;
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
    }

    /// Raises every counter to at least the other's.
    fn merge(&mut self, other: &Prefixes) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, &theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = (*mine).max(theirs);
        }
    }

    /// Whether every counter is at most the other's.
    fn le(&self, other: &Prefixes) -> bool {
        self.counts.len() <= other.counts.len() && self.counts.iter().zip(&other.counts).all(|(a, b)| a <= b)
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The non-zero counters, in ascending leader order.
    fn iter(&self) -> impl Iterator<Item = (LeaderId, Seq)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .filter_map(|(i, &n)| LeaderId::new(i).ok().map(|id| (id, Seq(n))))
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
        fmt::Display::fmt(&self.version_vector(), f)?;
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

/// Joins their dot function (dot → value) into mine, in place: a dot survives if both hold it,
/// or if one side holds it and the other side's context has not seen it. A dot names one write, so both sides hold the same value for a dot they
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The shape a causal context had on the wire before its in-memory form changed.
    #[derive(Serialize)]
    #[serde(rename = "CausalContext")]
    struct Wire {
        vv: VersionVector,
        cloud: BTreeSet<Dot>,
    }

    #[test]
    fn single_names_the_only_dot_or_nothing() {
        let dot = |i: usize, seq: u64| Dot::new(LeaderId::new(i).expect("below 64"), Seq(seq));
        let of = |dots: &[Dot]| {
            let mut cx = CausalContext::new();
            for &d in dots {
                cx.insert(d);
            }
            cx
        };
        assert_eq!(of(&[]).single(), None);
        assert_eq!(of(&[dot(2, 1)]).single(), Some(dot(2, 1)), "a prefix of one dot");
        assert_eq!(of(&[dot(2, 7)]).single(), Some(dot(2, 7)), "one cloud dot");
        assert_eq!(of(&[dot(2, 1), dot(2, 2)]).single(), None, "a longer prefix");
        assert_eq!(of(&[dot(0, 1), dot(2, 1)]).single(), None, "two prefixes");
        assert_eq!(of(&[dot(1, 1), dot(0, 2), dot(0, 3)]).single(), None, "a prefix and a cloud");
        assert_eq!(of(&[dot(0, 5), dot(1, 5)]).single(), None, "two cloud dots");
    }

    proptest! {
        /// Whatever dots it holds, a context encodes to the bytes of `{ vv: VersionVector, cloud:
        /// BTreeSet<Dot> }` and decodes back to itself; merging contexts gives the context of the
        /// union of their dots.
        #[test]
        fn wire_format_and_union(
            a in prop::collection::vec((0usize..6, 0u64..12), 0..20),
            b in prop::collection::vec((0usize..6, 0u64..12), 0..20),
        ) {
            let dots = |v: &[(usize, u64)]| -> Vec<Dot> {
                v.iter().map(|&(i, s)| Dot::new(LeaderId::new(i).expect("small"), Seq(s))).collect()
            };
            let (a, b) = (dots(&a), dots(&b));
            let cx = CausalContext::from_dots(&a);
            let wire = Wire { vv: cx.version_vector(), cloud: cx.cloud().collect() };
            let bytes = postcard::to_allocvec(&cx).expect("encodes");
            prop_assert_eq!(&bytes, &postcard::to_allocvec(&wire).expect("encodes"));
            prop_assert_eq!(postcard::from_bytes::<CausalContext>(&bytes).expect("decodes"), cx.clone());
            let mut merged = cx.clone();
            merged.merge(&CausalContext::from_dots(&b));
            let all: Vec<Dot> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(merged, CausalContext::from_dots(&all));
        }
    }
}
