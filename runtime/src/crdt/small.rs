//! Ordered maps and sets that keep one entry inline: [`SmallMap`] and [`SmallSet`].
//!
//! A δ-mutator returns its delta as a state of the same type (Almeida, Shoker and Baquero,
//! "Delta state replicated data types", JPDC 2018), and the typical delta names one element, one
//! dot, one context dot. Built from `BTreeMap`s, such a delta costs a heap allocation per
//! collection — more than the rest of the operation. These collections hold zero or one entry
//! inline and switch to a `BTreeMap` from the second entry on, so a single-entry delta never
//! touches the allocator, while large states keep the B-tree's `O(log n)` operations.
//!
//! **Canonical form:** the B-tree variant is used exactly when there are two entries or more
//! (every mutation restores this), so structural equality and hashing are those of the map.
//! Iteration is in ascending key order, as for a `BTreeMap`, and serialization is the same as a
//! `BTreeMap`'s (a map) or a `BTreeSet`'s (a sequence): same bytes on the wire.

use alloc::collections::{btree_map, BTreeMap, BTreeSet};
use core::fmt;
use core::ops::RangeBounds;

use serde::{Serialize, Serializer};

/// An ordered map holding up to one entry inline (see the [module docs](self)).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum SmallMap<K, V> {
    /// No entry, or one.
    Inline(Option<(K, V)>),
    /// Two entries or more.
    Heap(BTreeMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Inline(None)
    }
}

impl<K: Ord, V> From<BTreeMap<K, V>> for SmallMap<K, V> {
    fn from(mut map: BTreeMap<K, V>) -> Self {
        if map.len() >= 2 {
            SmallMap::Heap(map)
        } else {
            SmallMap::Inline(map.pop_first())
        }
    }
}

impl<K, V> SmallMap<K, V> {
    /// The map holding one entry.
    pub(crate) const fn one(key: K, value: V) -> Self {
        SmallMap::Inline(Some((key, value)))
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        match self {
            SmallMap::Inline(entry) => usize::from(entry.is_some()),
            SmallMap::Heap(map) => map.len(),
        }
    }

    /// Whether there is no entry.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, SmallMap::Inline(None))
    }

    /// The entries in ascending key order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        match self {
            SmallMap::Inline(entry) => Iter::Inline(entry.as_ref()),
            SmallMap::Heap(map) => Iter::Heap(map.iter()),
        }
    }

    /// The keys in ascending order.
    pub(crate) fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The values in ascending key order.
    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + '_ {
        self.iter().map(|(_, v)| v)
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// The value of `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        match self {
            SmallMap::Inline(Some((k, v))) if k == key => Some(v),
            SmallMap::Inline(_) => None,
            SmallMap::Heap(map) => map.get(key),
        }
    }

    /// The value of `key`, mutably.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self {
            SmallMap::Inline(Some((k, v))) if k == key => Some(v),
            SmallMap::Inline(_) => None,
            SmallMap::Heap(map) => map.get_mut(key),
        }
    }

    /// Whether `key` has an entry.
    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self {
            SmallMap::Inline(None) => {
                *self = SmallMap::one(key, value);
                None
            }
            SmallMap::Inline(Some((k, v))) if *k == key => Some(core::mem::replace(v, value)),
            SmallMap::Inline(entry) => {
                let mut map = BTreeMap::new();
                if let Some((k, v)) = entry.take() {
                    map.insert(k, v);
                }
                map.insert(key, value);
                *self = SmallMap::Heap(map);
                None
            }
            SmallMap::Heap(map) => map.insert(key, value),
        }
    }

    /// Updates the value of `key` with `update`, or inserts `insert()` if there is none: one
    /// search either way.
    pub(crate) fn upsert(&mut self, key: K, insert: impl FnOnce() -> V, update: impl FnOnce(&mut V)) {
        match self {
            SmallMap::Inline(Some((k, v))) if *k == key => update(v),
            SmallMap::Inline(_) => {
                let _ = self.insert(key, insert());
            }
            SmallMap::Heap(map) => match map.entry(key) {
                btree_map::Entry::Vacant(vacant) => {
                    vacant.insert(insert());
                }
                btree_map::Entry::Occupied(occupied) => update(occupied.into_mut()),
            },
        }
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        match self {
            SmallMap::Inline(entry) => match entry {
                Some((k, _)) if k == key => entry.take().map(|(_, v)| v),
                _ => None,
            },
            SmallMap::Heap(map) => {
                let removed = map.remove(key);
                self.normalize();
                removed
            }
        }
    }

    /// The only entry, when there is exactly one.
    pub(crate) fn single(&self) -> Option<(&K, &V)> {
        match self {
            SmallMap::Inline(Some((k, v))) => Some((k, v)),
            _ => None,
        }
    }

    /// Removes the entry of `key` and returns it with its key, so that a caller that wants to
    /// keep part of it can put it back without a copy of the key: one search either way.
    pub(crate) fn remove_entry(&mut self, key: &K) -> Option<(K, V)> {
        match self {
            SmallMap::Inline(entry) => match entry {
                Some((k, _)) if k == key => entry.take(),
                _ => None,
            },
            SmallMap::Heap(map) => {
                let removed = map.remove_entry(key);
                self.normalize();
                removed
            }
        }
    }

    /// Keeps the entries for which `keep` returns true (it may change the values it keeps).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        match self {
            SmallMap::Inline(entry) => {
                if let Some((k, v)) = entry {
                    if !keep(k, v) {
                        *entry = None;
                    }
                }
            }
            SmallMap::Heap(map) => {
                map.retain(|k, v| keep(k, v));
                self.normalize();
            }
        }
    }

    /// Restores the canonical form after entries were removed from the B-tree.
    fn normalize(&mut self) {
        if let SmallMap::Heap(map) = self {
            if map.len() < 2 {
                *self = SmallMap::Inline(map.pop_first());
            }
        }
    }

    /// The entries whose keys lie in `range`, in ascending key order.
    pub(crate) fn range<R: RangeBounds<K>>(&self, range: R) -> Range<'_, K, V> {
        match self {
            SmallMap::Inline(entry) => Range::Inline(entry.as_ref().filter(|(k, _)| range.contains(k))),
            SmallMap::Heap(map) => Range::Heap(map.range(range)),
        }
    }
}

/// The iterator of [`SmallMap::iter`]; its length is exact (serializers rely on it).
pub(crate) enum Iter<'a, K, V> {
    Inline(Option<&'a (K, V)>),
    Heap(btree_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Inline(entry) => entry.take().map(|(k, v)| (k, v)),
            Iter::Heap(iter) => iter.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Inline(entry) => {
                let n = usize::from(entry.is_some());
                (n, Some(n))
            }
            Iter::Heap(iter) => iter.size_hint(),
        }
    }
}

impl<K, V> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Inline(entry) => entry.take().map(|(k, v)| (k, v)),
            Iter::Heap(iter) => iter.next_back(),
        }
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

/// The iterator of [`SmallMap::range`].
pub(crate) enum Range<'a, K, V> {
    Inline(Option<&'a (K, V)>),
    Heap(btree_map::Range<'a, K, V>),
}

impl<'a, K, V> Iterator for Range<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Range::Inline(entry) => entry.take().map(|(k, v)| (k, v)),
            Range::Heap(iter) => iter.next(),
        }
    }
}

impl<K, V> DoubleEndedIterator for Range<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Range::Inline(entry) => entry.take().map(|(k, v)| (k, v)),
            Range::Heap(iter) => iter.next_back(),
        }
    }
}

/// As a `BTreeMap` serializes: a map, in ascending key order.
impl<K: Serialize, V: Serialize> Serialize for SmallMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// As a `BTreeMap` prints: `{k: v, …}`.
impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SmallMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// An ordered set holding up to one element inline (see the [module docs](self)).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct SmallSet<K>(SmallMap<K, ()>);

impl<K> Default for SmallSet<K> {
    fn default() -> Self {
        SmallSet(SmallMap::default())
    }
}

impl<K: Ord> From<BTreeSet<K>> for SmallSet<K> {
    fn from(set: BTreeSet<K>) -> Self {
        SmallSet(SmallMap::from(set.into_iter().map(|k| (k, ())).collect::<BTreeMap<K, ()>>()))
    }
}

impl<K> SmallSet<K> {
    /// The set holding `key` alone.
    pub(crate) const fn one(key: K) -> Self {
        SmallSet(SmallMap::one(key, ()))
    }

    /// The number of elements.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no element.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The elements in ascending order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator + '_ {
        self.0.keys()
    }
}

impl<K: Ord> SmallSet<K> {
    /// Whether `key` is an element.
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// Adds `key`; whether it was new.
    pub(crate) fn insert(&mut self, key: K) -> bool {
        self.0.insert(key, ()).is_none()
    }

    /// Removes `key`; whether it was there.
    pub(crate) fn remove(&mut self, key: &K) -> bool {
        self.0.remove(key).is_some()
    }

    /// The only element, when there is exactly one.
    pub(crate) fn single(&self) -> Option<&K> {
        self.0.single().map(|(k, ())| k)
    }

    /// Keeps the elements for which `keep` returns true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.0.retain(|k, ()| keep(k));
    }

    /// The elements in `range`, in ascending order.
    pub(crate) fn range<R: RangeBounds<K>>(&self, range: R) -> impl DoubleEndedIterator<Item = &K> + '_ {
        self.0.range(range).map(|(k, ())| k)
    }
}

/// As a `BTreeSet` serializes: a sequence, in ascending order.
impl<K: Serialize> Serialize for SmallSet<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// As a `BTreeSet` prints: `{a, b}`.
impl<K: fmt::Debug> fmt::Debug for SmallSet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum MapOp {
        Insert(u8, u8),
        Upsert(u8, u8),
        Remove(u8),
        RetainBelow(u8),
        Bump,
    }

    fn map_op() -> impl Strategy<Value = MapOp> {
        prop_oneof![
            4 => (0u8..6, any::<u8>()).prop_map(|(k, v)| MapOp::Insert(k, v)),
            2 => (0u8..6, any::<u8>()).prop_map(|(k, v)| MapOp::Upsert(k, v)),
            2 => (0u8..6).prop_map(MapOp::Remove),
            1 => (0u8..7).prop_map(MapOp::RetainBelow),
            1 => Just(MapOp::Bump),
        ]
    }

    fn is_canonical<K: Ord, V>(map: &SmallMap<K, V>) -> bool {
        !matches!(map, SmallMap::Heap(m) if m.len() < 2)
    }

    proptest! {
        /// A `SmallMap` behaves as a `BTreeMap` through any sequence of operations, stays
        /// canonical, and serializes to the same bytes.
        #[test]
        fn small_map_is_a_btree_map(ops in prop::collection::vec(map_op(), 0..40), lo in 0u8..6, hi in 0u8..6) {
            let mut small: SmallMap<u8, u8> = SmallMap::default();
            let mut model: BTreeMap<u8, u8> = BTreeMap::new();
            for op in ops {
                match op {
                    MapOp::Insert(k, v) => prop_assert_eq!(small.insert(k, v), model.insert(k, v)),
                    MapOp::Upsert(k, v) => {
                        small.upsert(k, || v, |old| *old ^= v);
                        model.entry(k).and_modify(|old| *old ^= v).or_insert(v);
                    }
                    MapOp::Remove(k) => prop_assert_eq!(small.remove(&k), model.remove(&k)),
                    MapOp::RetainBelow(n) => {
                        small.retain(|&k, _| k < n);
                        model.retain(|&k, _| k < n);
                    }
                    MapOp::Bump => {
                        small.retain(|_, v| {
                            *v = v.wrapping_add(1);
                            true
                        });
                        for v in model.values_mut() {
                            *v = v.wrapping_add(1);
                        }
                    }
                }
                prop_assert!(is_canonical(&small));
                prop_assert_eq!(small.len(), model.len());
                prop_assert_eq!(small.is_empty(), model.is_empty());
                prop_assert_eq!(small.iter().collect::<Vec<_>>(), model.iter().collect::<Vec<_>>());
                prop_assert_eq!(small.iter().rev().collect::<Vec<_>>(), model.iter().rev().collect::<Vec<_>>());
                prop_assert_eq!(&SmallMap::from(model.clone()), &small);
                for k in 0..6 {
                    prop_assert_eq!(small.get(&k), model.get(&k));
                }
                let (lo, hi) = (lo.min(hi), lo.max(hi));
                prop_assert_eq!(small.range(lo..=hi).collect::<Vec<_>>(), model.range(lo..=hi).collect::<Vec<_>>());
                prop_assert_eq!(small.range(lo..=hi).next_back(), model.range(lo..=hi).next_back());
                prop_assert_eq!(
                    postcard::to_allocvec(&small).expect("encodes"),
                    postcard::to_allocvec(&model).expect("encodes")
                );
                let set: BTreeSet<u8> = model.keys().copied().collect();
                let small_set = SmallSet::from(set.clone());
                prop_assert_eq!(
                    postcard::to_allocvec(&small_set).expect("encodes"),
                    postcard::to_allocvec(&set).expect("encodes")
                );
                prop_assert_eq!(alloc::format!("{small_set:?}"), alloc::format!("{set:?}"));
                prop_assert_eq!(alloc::format!("{small:?}"), alloc::format!("{model:?}"));
            }
        }
    }
}
