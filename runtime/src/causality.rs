//! Causality: sequence numbers, dots and version vectors.
//!
//! Every write gets a [`Dot`] `(origin, seq)`: the leader that accepted it and that leader's
//! sequence number for it (1, 2, 3, … with no gaps). A [`VersionVector`] maps each leader to the
//! highest sequence number applied from it; because every origin's writes apply in sequence order,
//! the vector names exactly the set of writes applied (Parker et al. 1983, "Detection of Mutual
//! Inconsistency in Distributed Systems"; the delivery rule is Birman, Schiper & Stephenson 1991,
//! "Lightweight Causal and Atomic Group Multicast").
//!
//! Vectors live on bounded `heapless` storage: one counter per leader, at most
//! [`MAX_LEADERS`] (64). The stored form is canonical (no trailing zeros), so structural equality
//! is vector equality.

use core::cmp::Ordering;
use core::fmt;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::{LeaderId, MAX_LEADERS};

/// A per-origin sequence number; the first write of a leader has sequence number 1.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The sequence number after this one (saturating; 2^64 writes never happen).
    #[must_use]
    pub const fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The identity of one write: the leader that accepted it and its sequence number there.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The leader that accepted the write.
    pub origin: LeaderId,
    /// The origin's sequence number for the write (starting at 1).
    pub seq: Seq,
}

impl Dot {
    /// The dot `(origin, seq)`.
    #[must_use]
    pub const fn new(origin: LeaderId, seq: Seq) -> Self {
        Dot { origin, seq }
    }
}

impl fmt::Debug for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Renders as `L2:7`.
impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.origin, self.seq.0)
    }
}

/// How two version vectors relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// Both name the same set of writes.
    Equal,
    /// The left vector is strictly dominated: every write it names, the right one names too.
    Before,
    /// The left vector strictly dominates the right one.
    After,
    /// Each names a write the other does not.
    Concurrent,
}

/// The highest sequence number seen from each leader, on bounded storage (at most 64 leaders).
///
/// ```
/// use roundtable_runtime::causality::{Causality, VersionVector};
/// use roundtable_runtime::LeaderId;
/// let (a, b) = (LeaderId::new(0).unwrap(), LeaderId::new(1).unwrap());
/// let mut x = VersionVector::new();
/// x.increment(a);
/// let mut y = x.clone();
/// y.increment(b);
/// assert_eq!(x.compare(&y), Causality::Before);
/// x.increment(a);
/// assert_eq!(x.compare(&y), Causality::Concurrent);
/// x.merge(&y);
/// assert_eq!(x.to_string(), "[L0:2 L1:1]");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "heapless::Vec<u64, MAX_LEADERS>")]
pub struct VersionVector {
    /// `counts[i]` is the highest sequence number applied from leader `i`; no trailing zeros, so
    /// the vector is as long as the highest leader id that wrote, and at most [`MAX_LEADERS`]
    /// long (every index comes from a `LeaderId`, and decoding refuses more). Inline up to
    /// [`INLINE_LEADERS`]: a clone of a small cluster's vector allocates nothing.
    counts: SmallVec<[u64; INLINE_LEADERS]>,
}

/// Version vectors of clusters whose leader ids are below this live inline (72 bytes); larger
/// ones on the heap. Before issue 11 every vector was a fixed 520 bytes.
pub const INLINE_LEADERS: usize = 8;

/// Decoding: a bounded sequence (at most [`MAX_LEADERS`] counters), trailing zeros dropped.
impl From<heapless::Vec<u64, MAX_LEADERS>> for VersionVector {
    fn from(counts: heapless::Vec<u64, MAX_LEADERS>) -> Self {
        let mut counts: SmallVec<[u64; INLINE_LEADERS]> = counts.iter().copied().collect();
        while counts.last() == Some(&0) {
            counts.pop();
        }
        VersionVector { counts }
    }
}

/// Encoding: the counters as a sequence, exactly as the fixed-size vector it replaced encoded
/// (the wire format did not change).
impl Serialize for VersionVector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.counts.iter())
    }
}

impl VersionVector {
    /// The empty vector: nothing seen from anybody.
    #[must_use]
    pub const fn new() -> Self {
        VersionVector { counts: SmallVec::new_const() }
    }

    /// The highest sequence number seen from `leader` (0 when none).
    #[must_use]
    pub fn get(&self, leader: LeaderId) -> Seq {
        Seq(self.counts.get(leader.index()).copied().unwrap_or(0))
    }

    /// Sets the counter of `leader` to `seq`.
    pub fn set(&mut self, leader: LeaderId, seq: Seq) {
        let i = leader.index();
        if seq.0 == 0 && i >= self.counts.len() {
            return;
        }
        if self.counts.len() <= i {
            // i < MAX_LEADERS: the bound holds.
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] = seq.0;
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
    }

    /// Increments the counter of `leader` and returns the new sequence number.
    pub fn increment(&mut self, leader: LeaderId) -> Seq {
        let next = self.get(leader).next();
        self.set(leader, next);
        next
    }

    /// Whether the write `dot` is among those this vector names.
    #[must_use]
    pub fn contains(&self, dot: Dot) -> bool {
        dot.seq <= self.get(dot.origin)
    }

    /// Raises every counter to at least the other vector's (the least upper bound).
    pub fn merge(&mut self, other: &VersionVector) {
        for (i, &theirs) in other.counts.iter().enumerate() {
            if i >= self.counts.len() {
                // other.counts.len() <= MAX_LEADERS: the bound holds.
                self.counts.push(theirs);
            } else if theirs > self.counts[i] {
                self.counts[i] = theirs;
            }
        }
    }

    /// Lowers every counter to at most the other vector's (the greatest lower bound).
    pub fn meet(&mut self, other: &VersionVector) {
        self.counts.truncate(other.counts.len());
        for (mine, &theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = (*mine).min(theirs);
        }
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
    }

    /// Whether every write this vector names is named by `other` too (`self ≤ other`).
    #[must_use]
    pub fn le(&self, other: &VersionVector) -> bool {
        self.counts.len() <= other.counts.len() && self.counts.iter().zip(other.counts.iter()).all(|(a, b)| a <= b)
    }

    /// How this vector relates to `other`.
    #[must_use]
    pub fn compare(&self, other: &VersionVector) -> Causality {
        match (self.le(other), other.le(self)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (false, false) => Causality::Concurrent,
        }
    }

    /// The non-zero counters, in ascending leader order.
    pub fn iter(&self) -> impl Iterator<Item = (LeaderId, Seq)> + '_ {
        self.counts.iter().enumerate().filter(|(_, &n)| n > 0).filter_map(|(i, &n)| {
            // Indices are < MAX_LEADERS by construction.
            LeaderId::new(i).ok().map(|id| (id, Seq(n)))
        })
    }

    /// Whether no write is named.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The total number of writes named (the sum of all counters).
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |acc, &n| acc.saturating_add(n))
    }

    /// The leaders with a non-zero counter here, as a set.
    #[must_use]
    pub fn leaders(&self) -> crate::LeaderSet {
        self.iter().map(|(id, _)| id).collect()
    }
}

/// The causal partial order: `a < b` when every write of `a` is in `b` and they differ;
/// concurrent vectors are unordered.
impl PartialOrd for VersionVector {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.compare(other) {
            Causality::Equal => Some(Ordering::Equal),
            Causality::Before => Some(Ordering::Less),
            Causality::After => Some(Ordering::Greater),
            Causality::Concurrent => None,
        }
    }
}

impl fmt::Debug for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Renders the non-zero counters as `[L0:2 L3:1]`.
impl fmt::Display for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, (id, seq)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{id}:{seq}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> LeaderId {
        LeaderId::new(i).expect("in range")
    }

    #[test]
    fn canonical_form_makes_equality_structural() {
        let mut a = VersionVector::new();
        a.set(id(5), Seq(3));
        a.set(id(5), Seq(0));
        assert_eq!(a, VersionVector::new());
        assert!(a.is_empty());
        let decoded: VersionVector = heapless::Vec::from_slice(&[1, 0, 0]).expect("fits").into();
        let mut b = VersionVector::new();
        b.set(id(0), Seq(1));
        assert_eq!(decoded, b);
    }

    #[test]
    fn meet_is_pointwise_minimum() {
        let mut a: VersionVector = heapless::Vec::from_slice(&[3, 1, 4]).expect("fits").into();
        let b: VersionVector = heapless::Vec::from_slice(&[2, 7]).expect("fits").into();
        a.meet(&b);
        assert_eq!(a.to_string(), "[L0:2 L1:1]");
        assert!(a.contains(Dot::new(id(1), Seq(1))));
        assert!(!a.contains(Dot::new(id(2), Seq(1))));
    }
}
