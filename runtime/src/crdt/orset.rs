//! The add-wins observed-remove set [`OrSet`], state-based, with a causal context.
//!
//! Every add tags the element with a fresh dot; a remove deletes the dots of the element that the
//! remover has observed. An add concurrent with a remove carries a dot the remover never saw, so
//! it survives: **add wins**. This is the optimized OR-set ("OR-Set without tombstones", ORSWOT)
//! of Bieniusa, Zawirski, Preguiça, Shapiro, Baquero, Balegas and Duarte, "An optimized
//! conflict-free replicated set" (INRIA RR-8083, 2012), refining the OR-set of Shapiro, Preguiça,
//! Baquero and Zawirski (2011), in the delta-state form of Almeida, Shoker and Baquero,
//! "Delta state replicated data types" (JPDC 2018, the add-wins set `AWSet`): the state is a dot
//! store (element → dots) plus a [`CausalContext`] of every dot seen. Instead of tombstones, the
//! context remembers that a dot was seen; a dot seen but no longer held was removed.
//!
//! Join of `(s, c)` and `(s', c')` (the dot-map join of Almeida et al., §6), per element: keep
//! the dots both hold, plus the dots one side holds that the other has not seen; the context is
//! `c ∪ c'`.
//!
//! An add also replaces the dots of the element it observed (they are causally older), so each
//! element carries at most one dot per leader that added it concurrently.
//!
//! **Applying a delta costs what the delta names, not what the set holds.** Joining a delta
//! `(s', c')` into a large state `(s, c)` changes only two kinds of dots: the dots of `s'` that
//! `c` has not seen (they are added), and the dots of `s` that `c'` has seen but `s'` does not hold
//! under the same element (they were removed at the delta's origin). Every other dot of `s`
//! survives the join unchanged, because `c'` has not seen it. So the join only needs to visit the
//! elements of `s'` and the dots of `s` that `c'` covers — if those can be found without a scan.
//! A set of [`INDEXED_MIN`] elements or more keeps an index from dot to elements for that (per
//! leader, by sequence number; see `dot_index.rs`): the covered dots are a range per leader
//! (`c'`'s version vector) plus the points of `c'`'s dot cloud, each found by binary search.
//! Applying a delta of `k` elements and dots costs `O(k · log n)` (amortized); a join with a
//! state of comparable size walks both, as before. Both paths compute the same join (a property
//! test checks them, on random histories, against the plain dot-map join that `merge` was before).
//!
//! A delta of one element and one dot — what [`add`](OrSet::add), [`remove`](OrSet::remove),
//! [`add_delta`](OrSet::add_delta) and [`remove_delta`](OrSet::remove_delta) return — is stored
//! inline, without heap allocation (see `small.rs`).
//!
//! **Bounds.** Elements are user data; a set of [`INDEXED_MIN`] elements or more also holds each
//! element once more per dot in its index. Metadata: at most one dot per (element, leader) and
//! one causal context per set — a version vector of at most [`MAX_LEADERS`](crate::MAX_LEADERS)
//! counters plus the dot cloud (see [`CausalContext`]); removed elements leave nothing behind.

use alloc::collections::{BTreeMap, BTreeSet};
use core::fmt;
use core::hash::{Hash, Hasher};

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::context::CausalContext;
use super::dot_index::DotIndex;
pub use super::dot_index::INDEXED_MIN;
use super::small::{SmallMap, SmallSet};
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
///
/// Serialized as the struct `{ entries: BTreeMap<T, BTreeSet<Dot>>, context }` (the index is not
/// serialized; a decoded set rebuilds it).
#[derive(Clone, Deserialize)]
#[serde(bound(deserialize = "T: Ord + Clone + Deserialize<'de>"))]
#[serde(from = "RawOrSet<T>")]
pub struct OrSet<T> {
    /// Present elements and the dots of the adds that put them there (never empty).
    entries: SmallMap<T, SmallSet<Dot>>,
    /// Every (dot, element) pair of `entries`, by dot, once the set is large enough.
    index: DotIndex<T>,
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

impl<T: Ord + Clone> From<RawOrSet<T>> for OrSet<T> {
    fn from(raw: RawOrSet<T>) -> Self {
        let RawOrSet { mut entries, mut context } = raw;
        entries.retain(|_, dots| !dots.is_empty());
        for dot in entries.values().flatten() {
            context.insert(*dot);
        }
        let entries: BTreeMap<T, SmallSet<Dot>> =
            entries.into_iter().map(|(element, dots)| (element, SmallSet::from(dots))).collect();
        let mut set = OrSet { entries: SmallMap::from(entries), index: DotIndex::default(), context };
        set.index.build_if_large(&set.entries);
        set
    }
}

/// The struct a derived `Serialize` of `{ entries: BTreeMap<T, BTreeSet<Dot>>, context }` writes:
/// same field names, same bytes.
impl<T: Serialize> Serialize for OrSet<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("OrSet", 2)?;
        state.serialize_field("entries", &self.entries)?;
        state.serialize_field("context", &self.context)?;
        state.end()
    }
}

impl<T> Default for OrSet<T> {
    fn default() -> Self {
        OrSet { entries: SmallMap::default(), index: DotIndex::default(), context: CausalContext::new() }
    }
}

/// Equal when the elements, their dots and the contexts are (the index follows from them).
impl<T: PartialEq> PartialEq for OrSet<T> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries && self.context == other.context
    }
}

impl<T: Eq> Eq for OrSet<T> {}

impl<T: Hash> Hash for OrSet<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entries.hash(state);
        self.context.hash(state);
    }
}

impl<T: fmt::Debug> fmt::Debug for OrSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrSet").field("entries", &self.entries).field("context", &self.context).finish()
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
        let replaced = self.entries.insert(element.clone(), SmallSet::one(dot));
        if let Some(replaced) = &replaced {
            for &old in replaced.iter() {
                self.index.remove(old, &element);
            }
        }
        self.index.add(dot, &element);
        self.index.build_if_large(&self.entries);
        self.context.insert(dot);
        let mut delta = OrSet { entries: SmallMap::one(element, SmallSet::one(dot)), ..OrSet::default() };
        for &old in replaced.iter().flat_map(SmallSet::iter) {
            delta.context.insert(old);
        }
        delta.context.insert(dot);
        delta
    }

    /// Removes `element` as observed here (its dots seen here) and returns the delta. Adds of it
    /// this replica has not seen survive. Removing an absent element is a no-op (empty delta).
    pub fn remove(&mut self, element: &T) -> OrSet<T> {
        let mut delta = OrSet::new();
        let Some(dots) = self.entries.remove(element) else { return delta };
        for &dot in dots.iter() {
            self.index.remove(dot, element);
            delta.context.insert(dot);
        }
        delta
    }

    /// The delta of an add of `element` tagged `dot` made elsewhere (an operation-based add,
    /// turned into state so that it joins with everything else).
    #[must_use]
    pub fn add_delta(element: T, dot: Dot) -> OrSet<T> {
        let mut delta = OrSet { entries: SmallMap::one(element, SmallSet::one(dot)), ..OrSet::default() };
        delta.context.insert(dot);
        delta
    }

    /// The delta of a remove that observed the adds `observed` (an operation-based remove).
    #[must_use]
    pub fn remove_delta<'a>(observed: impl IntoIterator<Item = &'a Dot>) -> OrSet<T> {
        let mut delta = OrSet::new();
        for &dot in observed {
            delta.context.insert(dot);
        }
        delta
    }

    /// Removes every element observed here and returns the delta.
    pub fn clear(&mut self) -> OrSet<T> {
        let removed = core::mem::take(&mut self.entries);
        self.index = DotIndex::default();
        OrSet {
            entries: SmallMap::default(),
            index: DotIndex::default(),
            context: CausalContext::from_dots(removed.values().flat_map(SmallSet::iter)),
        }
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
        self.entries.get(element).into_iter().flat_map(SmallSet::iter).copied()
    }

    /// Every dot this replica has seen.
    #[must_use]
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Whether joining `other` may take the sparse path
    /// ([`join_sparse_removals`](Self::join_sparse_removals)):
    /// this set is indexed, holds no malformed dot the index cannot find (sequence number 0), and
    /// `other` names few elements and cloud dots compared with this set's size.
    fn sparse_join_pays(&self, other: &Self) -> bool {
        self.index.is_usable()
            && other.entries.len().saturating_add(other.context.cloud_len()) <= self.entries.len() / 4
    }

    /// The dot-map join's first half, by a scan of every element here: my dots that `other` has
    /// seen (its context) but does not hold under the same element were removed there.
    fn join_full_removals(&mut self, other: &Self) {
        let OrSet { entries, index, .. } = self;
        entries.retain(|element, dots| {
            let theirs = other.entries.get(element);
            dots.retain(|&dot| {
                let keep = theirs.is_some_and(|t| t.contains(&dot)) || !other.context.contains(dot);
                if !keep {
                    index.remove(dot, element);
                }
                keep
            });
            !dots.is_empty()
        });
    }

    /// The same as [`join_full_removals`](Self::join_full_removals), visiting only the dots here
    /// that `other`'s context covers, through the index: per leader, the range of dots its
    /// version vector covers, and each dot of its cloud. (A dot with sequence number 0 counts as
    /// seen by every context; [`sparse_join_pays`](Self::sparse_join_pays) leaves sets holding
    /// such dots to the full scan.)
    ///
    /// My dots are all in my context, so a dot my context has not seen needs no lookup (the
    /// typical add-delta's), and a range needs looking up only as far as my context reaches.
    fn join_sparse_removals(&mut self, other: &Self) {
        let OrSet { entries, index, context } = self;
        for (leader, upto) in other.context.prefixes() {
            let upto = upto.min(context.highest(leader));
            index.retain_holders_upto(leader, upto, |dot, element| Self::keep_or_drop(entries, other, dot, element));
        }
        for &dot in other.context.cloud_set().iter() {
            if context.contains(dot) {
                index.retain_holders(dot, |element| Self::keep_or_drop(entries, other, dot, element));
            }
        }
    }

    /// Whether `element` keeps `dot` (a dot of mine that `other` has seen): if `other` holds it
    /// under the same element. If not, removes it from the element here (and the element if it
    /// has no dot left).
    fn keep_or_drop(entries: &mut SmallMap<T, SmallSet<Dot>>, other: &Self, dot: Dot, element: &T) -> bool {
        if other.entries.get(element).is_some_and(|theirs| theirs.contains(&dot)) {
            return true;
        }
        if let Some(dots) = entries.get_mut(element) {
            let _ = dots.remove(&dot);
            if dots.is_empty() {
                let _ = entries.remove(element);
            }
        }
        false
    }

    /// The dot-map join's second half: their dots that I have not seen (`self.context` is still
    /// mine alone) are new here. Visits only `other`'s elements.
    fn join_additions(&mut self, other: &Self) {
        let OrSet { entries, index, context } = self;
        for (element, their_dots) in other.entries.iter() {
            for &dot in their_dots.iter() {
                if context.contains(dot) {
                    continue;
                }
                entries.upsert(
                    element.clone(),
                    || SmallSet::one(dot),
                    |dots| {
                        let _ = dots.insert(dot);
                    },
                );
                index.add(dot, element);
            }
        }
    }

    /// Whether the index (if any) holds exactly the (dot, element) pairs of the elements, and is
    /// there when the set is large: the representation invariant.
    #[cfg(test)]
    fn index_is_consistent(&self) -> bool {
        let mut expected = BTreeSet::new();
        let mut zero_seq = 0;
        for (element, dots) in self.entries.iter() {
            for &dot in dots.iter() {
                expected.insert((dot, element.clone()));
                zero_seq += usize::from(dot.seq == crate::Seq(0));
            }
        }
        match self.index.pairs() {
            None => !self.index.is_built() && self.entries.len() < INDEXED_MIN,
            Some((pairs, zeros)) => pairs == expected && zeros == zero_seq,
        }
    }
}

impl<T: Ord + Clone> StateCrdt for OrSet<T> {
    /// The join of Almeida, Shoker and Baquero (2018) for the add-wins set: per element, the dots
    /// both hold plus the dots one side holds that the other has not seen; contexts united. A
    /// small delta into a large indexed set visits only what the delta names (see the module
    /// docs); otherwise both sides are walked.
    fn merge(&mut self, other: &Self) {
        if self.sparse_join_pays(other) {
            self.join_sparse_removals(other);
        } else {
            self.join_full_removals(other);
        }
        self.join_additions(other);
        self.context.merge(&other.context);
        self.index.build_if_large(&self.entries);
    }

    fn is_bottom(&self) -> bool {
        self.entries.is_empty() && self.context.is_empty()
    }

    fn dot_cloud_len(&self) -> usize {
        self.context.cloud_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causality::Seq;
    use crate::crdt::context::join_dot_maps;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn leader(i: u8) -> LeaderId {
        LeaderId::new(usize::from(i)).expect("below 64")
    }

    /// The plain representation the set had before the index and the inline storage: element →
    /// dot set in B-trees, and the context.
    fn plain(set: &OrSet<u16>) -> (BTreeMap<u16, BTreeSet<Dot>>, CausalContext) {
        let entries = set.entries.iter().map(|(e, dots)| (*e, dots.iter().copied().collect())).collect();
        (entries, set.context.clone())
    }

    /// The reference join: the dot-map join over the plain representation, as `merge` was
    /// written before (and as [`OrMap`](crate::crdt::OrMap) still joins its keys).
    fn reference_merge(mine: &OrSet<u16>, theirs: &OrSet<u16>) -> (BTreeMap<u16, BTreeSet<Dot>>, CausalContext) {
        let (mut entries, mut context) = plain(mine);
        let (their_entries, their_context) = plain(theirs);
        join_dot_maps(&mut entries, &context, &their_entries, &their_context);
        context.merge(&their_context);
        (entries, context)
    }

    /// One step of a random history over a few replicas.
    #[derive(Clone, Debug)]
    enum Step {
        Add {
            at: u8,
            element: u16,
        },
        Remove {
            at: u8,
            element: u16,
        },
        Clear {
            at: u8,
        },
        /// `to` merges `from`'s full state.
        Merge {
            from: u8,
            to: u8,
        },
        /// `to` merges the delta of an add made elsewhere, with an arbitrary dot (possibly seen,
        /// possibly out of order, possibly sequence number 0).
        AddDelta {
            to: u8,
            element: u16,
            origin: u8,
            seq: u64,
        },
        /// `to` merges a remove-delta of arbitrary dots.
        RemoveDelta {
            to: u8,
            dots: Vec<(u8, u64)>,
        },
        /// `to` merges the delta `at` produced `back` steps ago (stale, repeated or reordered).
        Replay {
            to: u8,
            back: usize,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        let element = 0u16..40;
        prop_oneof![
            8 => (0u8..4, element.clone()).prop_map(|(at, element)| Step::Add { at, element }),
            3 => (0u8..4, element.clone()).prop_map(|(at, element)| Step::Remove { at, element }),
            1 => (0u8..4).prop_map(|at| Step::Clear { at }),
            2 => (0u8..4, 0u8..4).prop_map(|(from, to)| Step::Merge { from, to }),
            2 => (0u8..4, element, 0u8..4, 0u64..30)
                .prop_map(|(to, element, origin, seq)| Step::AddDelta { to, element, origin, seq }),
            2 => (0u8..4, prop::collection::vec((0u8..4, 0u64..30), 0..4))
                .prop_map(|(to, dots)| Step::RemoveDelta { to, dots }),
            3 => (0u8..4, 0usize..8).prop_map(|(to, back)| Step::Replay { to, back }),
        ]
    }

    /// Merges `other` into `replica`, checking the result against the reference join and the
    /// representation invariants, and that both join paths agree when the sparse one applies.
    fn checked_merge(replica: &mut OrSet<u16>, other: &OrSet<u16>) -> Result<(), TestCaseError> {
        let expected = reference_merge(replica, other);
        if replica.index.is_usable() {
            // The sparse removals, forced even where `merge` would choose the scan.
            let mut sparse = replica.clone();
            sparse.join_sparse_removals(other);
            sparse.join_additions(other);
            sparse.context.merge(&other.context);
            prop_assert_eq!(plain(&sparse), expected.clone(), "sparse join");
        }
        replica.merge(other);
        prop_assert_eq!(plain(replica), expected, "merge");
        prop_assert!(replica.index_is_consistent(), "index after merge");
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// On random histories — local adds and removes, full-state merges, deltas in any order
        /// and multiplicity, and arbitrary hand-built deltas — `merge` (whichever path it takes)
        /// equals the plain dot-map join, mutators return the deltas they did before, and the
        /// index stays exactly the pairs of the elements.
        #[test]
        fn merge_equals_the_plain_dot_map_join(steps in prop::collection::vec(step(), 0..120)) {
            let mut replicas: Vec<OrSet<u16>> = (0..4).map(|_| OrSet::new()).collect();
            let mut deltas: Vec<OrSet<u16>> = Vec::new();
            for step in steps {
                match step {
                    Step::Add { at, element } => {
                        let replica = &mut replicas[usize::from(at)];
                        let (before, _) = plain(replica);
                        let expected_dot = replica.context.next_dot(leader(at));
                        let delta = replica.add(leader(at), element);
                        let replaced: Vec<Dot> = before.get(&element).into_iter().flatten().copied().collect();
                        let mut context = CausalContext::from_dots(&replaced);
                        context.insert(expected_dot);
                        prop_assert_eq!(
                            plain(&delta),
                            (BTreeMap::from([(element, BTreeSet::from([expected_dot]))]), context)
                        );
                        prop_assert!(replica.index_is_consistent());
                        deltas.push(delta);
                    }
                    Step::Remove { at, element } => {
                        let replica = &mut replicas[usize::from(at)];
                        let observed: Vec<Dot> = replica.dots(&element).collect();
                        let delta = replica.remove(&element);
                        prop_assert_eq!(plain(&delta), (BTreeMap::new(), CausalContext::from_dots(&observed)));
                        prop_assert!(!replica.contains(&element));
                        prop_assert!(replica.index_is_consistent());
                        deltas.push(delta);
                    }
                    Step::Clear { at } => {
                        let replica = &mut replicas[usize::from(at)];
                        let observed: Vec<Dot> =
                            replica.iter().flat_map(|e| replica.dots(e).collect::<Vec<_>>()).collect();
                        let delta = replica.clear();
                        prop_assert_eq!(plain(&delta), (BTreeMap::new(), CausalContext::from_dots(&observed)));
                        prop_assert!(replica.is_empty() && replica.index_is_consistent());
                        deltas.push(delta);
                    }
                    Step::Merge { from, to } => {
                        let other = replicas[usize::from(from)].clone();
                        checked_merge(&mut replicas[usize::from(to)], &other)?;
                    }
                    Step::AddDelta { to, element, origin, seq } => {
                        let delta = OrSet::add_delta(element, Dot::new(leader(origin), Seq(seq)));
                        checked_merge(&mut replicas[usize::from(to)], &delta)?;
                        deltas.push(delta);
                    }
                    Step::RemoveDelta { to, dots } => {
                        let dots: Vec<Dot> = dots.iter().map(|&(o, s)| Dot::new(leader(o), Seq(s))).collect();
                        let delta = OrSet::remove_delta(&dots);
                        checked_merge(&mut replicas[usize::from(to)], &delta)?;
                        deltas.push(delta);
                    }
                    Step::Replay { to, back } => {
                        if let Some(delta) = deltas.iter().rev().nth(back).cloned() {
                            checked_merge(&mut replicas[usize::from(to)], &delta)?;
                        }
                    }
                }
            }
            // Delta-groups (joins of several deltas) merge like anything else.
            let group = deltas.iter().rev().take(6).fold(OrSet::new(), |group, d| group.merged(d));
            for replica in &mut replicas {
                checked_merge(replica, &group)?;
            }
            // Serialization is that of the plain representation, and decoding rebuilds the index.
            for replica in &replicas {
                #[derive(Serialize)]
                #[serde(rename = "OrSet")]
                struct Plain {
                    entries: BTreeMap<u16, BTreeSet<Dot>>,
                    context: CausalContext,
                }
                let (entries, context) = plain(replica);
                let bytes = postcard::to_allocvec(replica).expect("encodes");
                prop_assert_eq!(&bytes, &postcard::to_allocvec(&Plain { entries, context }).expect("encodes"));
                let decoded: OrSet<u16> = postcard::from_bytes(&bytes).expect("decodes");
                prop_assert_eq!(&decoded, replica);
                prop_assert!(decoded.index_is_consistent());
            }
        }
    }

    /// A large set applies a one-element delta through the index, without scanning.
    #[test]
    fn a_small_delta_into_a_large_set_takes_the_sparse_path() {
        let mut set = OrSet::new();
        for e in 0..100u16 {
            let _ = set.add(leader(u8::try_from(e % 3).expect("small")), e);
        }
        assert!(set.index.is_usable());
        let dot = set.dots(&7).next().expect("present");
        let delta = OrSet::remove_delta([&dot]);
        assert!(set.sparse_join_pays(&delta));
        set.merge(&delta);
        assert!(!set.contains(&7) && set.len() == 99 && set.index_is_consistent());
        let remote = OrSet::add_delta(1_000, Dot::new(leader(5), Seq(1)));
        assert!(set.sparse_join_pays(&remote));
        set.merge(&remote);
        assert!(set.contains(&1_000) && set.index_is_consistent());
    }
}
