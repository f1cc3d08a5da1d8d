//! Leader identities and sets of leaders.
//!
//! A cluster has at most [`MAX_LEADERS`] (64) leaders, so a leader id fits in a `u8` and any set of
//! leaders fits in one `u64` bit set. Both types iterate in ascending id order, which keeps every
//! trace that lists leaders deterministic.

use core::fmt;

use serde::{Deserialize, Serialize};

/// The most leaders a cluster can have. Version vectors, seen-by sets and topologies are sized for it.
pub const MAX_LEADERS: usize = 64;

/// The identity of one leader in a cluster: an index in `0..MAX_LEADERS`.
///
/// Construct one with [`LeaderId::new`], which rejects out-of-range values; a decoded id is checked
/// the same way, so a peer cannot smuggle in an id of 64 or more.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct LeaderId(u8);

/// A leader id outside `0..MAX_LEADERS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("leader id {0} is out of range (a cluster has at most {MAX_LEADERS} leaders, ids 0..=63)")]
pub struct LeaderIdOutOfRange(pub usize);

impl LeaderId {
    /// The leader with index `index`, or an error when `index >= MAX_LEADERS`.
    pub fn new(index: usize) -> Result<Self, LeaderIdOutOfRange> {
        if index < MAX_LEADERS {
            Ok(Self(index as u8))
        } else {
            Err(LeaderIdOutOfRange(index))
        }
    }

    /// The index of this leader, in `0..MAX_LEADERS`.
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// All leader ids `0..count` (at most [`MAX_LEADERS`]).
    pub fn range(count: usize) -> impl Iterator<Item = LeaderId> {
        (0..count.min(MAX_LEADERS)).map(|i| LeaderId(i as u8))
    }
}

impl TryFrom<u8> for LeaderId {
    type Error = LeaderIdOutOfRange;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        LeaderId::new(value as usize)
    }
}

impl From<LeaderId> for u8 {
    fn from(id: LeaderId) -> u8 {
        id.0
    }
}

impl fmt::Debug for LeaderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

impl fmt::Display for LeaderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// A set of leaders as a 64-bit mask. Iteration is in ascending id order.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaderSet(u64);

impl LeaderSet {
    /// The empty set.
    pub const EMPTY: LeaderSet = LeaderSet(0);

    /// The set of leaders `0..count` (clamped to [`MAX_LEADERS`]).
    #[must_use]
    pub fn first(count: usize) -> Self {
        if count >= MAX_LEADERS {
            LeaderSet(u64::MAX)
        } else {
            LeaderSet((1u64 << count) - 1)
        }
    }

    /// The set holding exactly `leader`.
    #[must_use]
    pub const fn single(leader: LeaderId) -> Self {
        LeaderSet(1u64 << leader.0)
    }

    /// The set from its raw bit mask (bit `i` set means leader `i` is a member).
    #[must_use]
    pub const fn from_bits(bits: u64) -> Self {
        LeaderSet(bits)
    }

    /// The raw bit mask.
    #[must_use]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether `leader` is in the set.
    #[must_use]
    pub const fn contains(self, leader: LeaderId) -> bool {
        self.0 & (1u64 << leader.0) != 0
    }

    /// Adds `leader`; returns whether it was newly added.
    pub fn insert(&mut self, leader: LeaderId) -> bool {
        let was = self.contains(leader);
        self.0 |= 1u64 << leader.0;
        !was
    }

    /// Removes `leader`; returns whether it was present.
    pub fn remove(&mut self, leader: LeaderId) -> bool {
        let was = self.contains(leader);
        self.0 &= !(1u64 << leader.0);
        was
    }

    /// This set with `leader` added.
    #[must_use]
    pub const fn with(self, leader: LeaderId) -> Self {
        LeaderSet(self.0 | (1u64 << leader.0))
    }

    /// This set with `leader` removed.
    #[must_use]
    pub const fn without(self, leader: LeaderId) -> Self {
        LeaderSet(self.0 & !(1u64 << leader.0))
    }

    /// Leaders in either set.
    #[must_use]
    pub const fn union(self, other: LeaderSet) -> Self {
        LeaderSet(self.0 | other.0)
    }

    /// Leaders in both sets.
    #[must_use]
    pub const fn intersection(self, other: LeaderSet) -> Self {
        LeaderSet(self.0 & other.0)
    }

    /// Leaders in this set and not in `other`.
    #[must_use]
    pub const fn difference(self, other: LeaderSet) -> Self {
        LeaderSet(self.0 & !other.0)
    }

    /// Whether every member of this set is in `other`.
    #[must_use]
    pub const fn is_subset(self, other: LeaderSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The number of leaders in the set.
    #[must_use]
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The member with the lowest id, if any.
    #[must_use]
    pub fn min(self) -> Option<LeaderId> {
        if self.0 == 0 {
            None
        } else {
            Some(LeaderId(self.0.trailing_zeros() as u8))
        }
    }

    /// The first member after `leader` in ascending id order, wrapping around; `None` when the set
    /// has no member other than `leader`.
    #[must_use]
    pub fn next_after(self, leader: LeaderId) -> Option<LeaderId> {
        let others = self.without(leader);
        if others.is_empty() {
            return None;
        }
        let shift = leader.0 as u32 + 1;
        let above = if shift >= 64 { 0 } else { others.0 >> shift << shift };
        if above != 0 {
            Some(LeaderId(above.trailing_zeros() as u8))
        } else {
            others.min()
        }
    }

    /// The last member before `leader` in ascending id order, wrapping around; `None` when the set
    /// has no member other than `leader`.
    #[must_use]
    pub fn prev_before(self, leader: LeaderId) -> Option<LeaderId> {
        let others = self.without(leader);
        if others.is_empty() {
            return None;
        }
        let below = others.0 & ((1u64 << leader.0) - 1);
        let bits = if below != 0 { below } else { others.0 };
        Some(LeaderId(63 - bits.leading_zeros() as u8))
    }

    /// The members in ascending id order.
    pub fn iter(self) -> LeaderSetIter {
        LeaderSetIter(self.0)
    }
}

impl FromIterator<LeaderId> for LeaderSet {
    fn from_iter<I: IntoIterator<Item = LeaderId>>(iter: I) -> Self {
        let mut set = LeaderSet::EMPTY;
        for leader in iter {
            set.insert(leader);
        }
        set
    }
}

impl IntoIterator for LeaderSet {
    type Item = LeaderId;
    type IntoIter = LeaderSetIter;
    fn into_iter(self) -> LeaderSetIter {
        self.iter()
    }
}

/// Iterator over a [`LeaderSet`] in ascending id order.
#[derive(Debug, Clone)]
pub struct LeaderSetIter(u64);

impl Iterator for LeaderSetIter {
    type Item = LeaderId;
    fn next(&mut self) -> Option<LeaderId> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(LeaderId(i as u8))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for LeaderSetIter {}

impl fmt::Debug for LeaderSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Renders as `{L0,L2,L5}`.
impl fmt::Display for LeaderSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, leader) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{leader}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> LeaderId {
        LeaderId::new(i).expect("in range")
    }

    #[test]
    fn leader_id_rejects_out_of_range() {
        assert_eq!(LeaderId::new(64), Err(LeaderIdOutOfRange(64)));
        assert_eq!(LeaderId::new(63).map(LeaderId::index), Ok(63));
        assert!(LeaderId::try_from(200u8).is_err());
    }

    #[test]
    fn set_iterates_in_ascending_order_and_wraps() {
        let set: LeaderSet = [id(5), id(1), id(63), id(0)].into_iter().collect();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![id(0), id(1), id(5), id(63)]);
        assert_eq!(set.next_after(id(5)), Some(id(63)));
        assert_eq!(set.next_after(id(63)), Some(id(0)));
        assert_eq!(set.next_after(id(2)), Some(id(5)));
        assert_eq!(set.prev_before(id(0)), Some(id(63)));
        assert_eq!(set.prev_before(id(5)), Some(id(1)));
        assert_eq!(LeaderSet::single(id(3)).next_after(id(3)), None);
        assert_eq!(set.to_string(), "{L0,L1,L5,L63}");
        assert_eq!(LeaderSet::first(64).len(), 64);
        assert_eq!(LeaderSet::first(3).to_string(), "{L0,L1,L2}");
    }
}
