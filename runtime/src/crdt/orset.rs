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
//! `c ∪ c'`. ("Seen" is for the element: see the scoped contexts below.)
//!
//! An add also replaces the dots of the element it observed (they are causally older), so each
//! element carries at most one dot per leader that added it concurrently.
//!
//! **Lost deltas and scoped contexts.** The runtime may never deliver some deltas of an origin
//! while delivering its later ones: a write no peer received before its leader crashed is
//! replaced by a *void* entry. A delta that names only the dots it *directly* replaced is then
//! not enough: after `add(x)`, `add(x)`, `remove(x)` at one leader, the second add's delta
//! replaced the first add's dot and the remove's delta named only the second add's; a replica
//! that never got the second delta kept the first add, and `x` came back although the remove
//! had seen it (issue 16). So a delta for element `x` — add, remove, also the remove of an
//! absent element — carries its origin's **whole causal context, scoped to `x`**: it removes,
//! wherever it arrives, every dot of `x` its origin had seen (its causal past), but no dot of
//! another element, which it does not mention. (The unscoped context of a delta stays what it
//! was — the new dot and the dots directly replaced or removed — so the dots it mints still
//! reach every replica's context.) [`clear`](OrSet::clear) mentions every element and carries the
//! whole context unscoped. This is the causal-context reasoning of Almeida, Shoker and Baquero
//! (2018, §5–6: a delta's context says what the mutation has seen), applied per element.
//!
//! The state is therefore `(entries, context, scoped)`, with `scoped: element → CausalContext`;
//! the *effective context* of element `x` is `context ∪ scoped[x]`, and the meaning is, per
//! element, the causal dot set `(entries[x], context ∪ scoped[x])`: a product of the dot-set
//! lattices of Almeida et al., one per element, sharing the common part `context`. The join is
//! the dot-set join per element with effective contexts; `context` and `scoped` are united
//! (pointwise). Canonical form (`CausalContext::normalize_above`): per element and leader,
//! `scoped[x]` holds nothing if `context` already has every dot of that leader it would name,
//! and otherwise exactly the effective context's dots of that leader — so equal meanings are
//! equal bytes, and a scoped context stays a version vector rather than a cloud of differences.
//! When `context` grows, the scoped contexts are normalized again. Under causal delivery without
//! loss, a replica's context already covers every scoped context it receives, so `scoped` is
//! empty; it holds something only where dots were lost (or while deltas arrive out of order).
//! [`next_dot`](OrSet::next_dot) looks at the scoped contexts too, so a leader that recovered its
//! state from a peer never mints a dot that a scoped context already names.
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
//! The scoped contexts of a delta name few elements: their removals are found by looking those
//! elements up (`join_scoped_removals`), not through the index, so the sparse path keeps its
//! cost.
//!
//! A delta of one element and one dot — what [`add`](OrSet::add), [`remove`](OrSet::remove),
//! [`add_delta`](OrSet::add_delta) and [`remove_delta`](OrSet::remove_delta) return — is stored
//! inline (its scoped context too, apart from the context's own vector), with little heap
//! allocation (see `small.rs`).
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
/// Serialized as the struct `{ entries: BTreeMap<T, BTreeSet<Dot>>, context, scoped: BTreeMap<T,
/// CausalContext> }` (the index is not serialized; a decoded set rebuilds it).
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
    /// Extra dots seen *for one element only*: the effective context of element `x` is
    /// `context ∪ scoped[x]` (see the module docs). Canonical: each is normalized above
    /// `context` (`CausalContext::normalize_above`) and none is empty.
    scoped: SmallMap<T, CausalContext>,
}

/// The decoded shape of an [`OrSet`], made canonical on the way in.
#[derive(Deserialize)]
#[serde(rename = "OrSet")]
#[serde(bound(deserialize = "T: Ord + Deserialize<'de>"))]
struct RawOrSet<T> {
    entries: BTreeMap<T, BTreeSet<Dot>>,
    context: CausalContext,
    scoped: BTreeMap<T, CausalContext>,
}

impl<T: Ord + Clone> From<RawOrSet<T>> for OrSet<T> {
    fn from(raw: RawOrSet<T>) -> Self {
        let RawOrSet { mut entries, mut context, mut scoped } = raw;
        entries.retain(|_, dots| !dots.is_empty());
        for dot in entries.values().flatten() {
            context.insert(*dot);
        }
        let entries: BTreeMap<T, SmallSet<Dot>> =
            entries.into_iter().map(|(element, dots)| (element, SmallSet::from(dots))).collect();
        scoped.retain(|_, extra| {
            extra.normalize_above(&context);
            !extra.is_empty()
        });
        let mut set = OrSet {
            entries: SmallMap::from(entries),
            index: DotIndex::default(),
            context,
            scoped: SmallMap::from(scoped),
        };
        set.index.build_if_large(&set.entries);
        set
    }
}

/// The struct a derived `Serialize` of `{ entries: BTreeMap<T, BTreeSet<Dot>>, context, scoped:
/// BTreeMap<T, CausalContext> }` writes: same field names, same bytes.
impl<T: Serialize> Serialize for OrSet<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("OrSet", 3)?;
        state.serialize_field("entries", &self.entries)?;
        state.serialize_field("context", &self.context)?;
        state.serialize_field("scoped", &self.scoped)?;
        state.end()
    }
}

/// Records that an add under `dot` put `element` in the set: in the entries and the dot index.
fn add_dot<T: Ord + Clone>(entries: &mut SmallMap<T, SmallSet<Dot>>, index: &mut DotIndex<T>, element: &T, dot: Dot) {
    entries.upsert(
        element.clone(),
        || SmallSet::one(dot),
        |dots| {
            let _ = dots.insert(dot);
        },
    );
    index.add(dot, element);
}

impl<T> Default for OrSet<T> {
    fn default() -> Self {
        OrSet {
            entries: SmallMap::default(),
            index: DotIndex::default(),
            context: CausalContext::new(),
            scoped: SmallMap::default(),
        }
    }
}

/// Equal when the elements, their dots and the contexts are (the index follows from them).
impl<T: PartialEq> PartialEq for OrSet<T> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries && self.context == other.context && self.scoped == other.scoped
    }
}

impl<T: Eq> Eq for OrSet<T> {}

impl<T: Hash> Hash for OrSet<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entries.hash(state);
        self.context.hash(state);
        self.scoped.hash(state);
    }
}

impl<T: fmt::Debug> fmt::Debug for OrSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrSet")
            .field("entries", &self.entries)
            .field("context", &self.context)
            .field("scoped", &self.scoped)
            .finish()
    }
}

impl<T: Ord + Clone> OrSet<T> {
    /// The empty set.
    #[must_use]
    pub fn new() -> Self {
        OrSet::default()
    }

    /// `leader` adds `element` (with a fresh dot, replacing the element's dots seen here) and
    /// returns the delta: the new dot, the dots it replaced, and this replica's whole context
    /// scoped to `element` (so that the add also replaces, wherever it arrives, what lost
    /// deltas of this replica had replaced; see the module docs).
    pub fn add(&mut self, leader: LeaderId, element: T) -> OrSet<T> {
        let dot = self.next_dot(leader);
        let replaced = self.entries.insert(element.clone(), SmallSet::one(dot));
        if let Some(replaced) = &replaced {
            for &old in replaced.iter() {
                self.index.remove(old, &element);
            }
        }
        self.index.add(dot, &element);
        self.index.build_if_large(&self.entries);
        self.context.insert(dot);
        let mut delta = OrSet::default();
        for &old in replaced.iter().flat_map(SmallSet::iter) {
            delta.context.insert(old);
        }
        delta.context.insert(dot);
        if let Some(extra) = self.scoped_above(&element, &delta.context) {
            delta.scoped = SmallMap::one(element.clone(), extra);
        }
        delta.entries = SmallMap::one(element, SmallSet::one(dot));
        Self::renormalize(&mut self.scoped, &self.context);
        delta
    }

    /// The delta [`OrSet::add`] would return, without changing the set: a leader computes its
    /// update's delta from the state it holds without copying that state (a copy per write is
    /// linear in the set's size).
    #[must_use]
    pub fn delta_of_add(&self, leader: LeaderId, element: T) -> OrSet<T> {
        let dot = self.next_dot(leader);
        let mut delta = OrSet::default();
        for old in self.dots(&element) {
            delta.context.insert(old);
        }
        delta.context.insert(dot);
        // `add` asks this after its own context gained `dot`; `dot` is in the delta's context,
        // so the answer is the same.
        if let Some(extra) = self.scoped_above(&element, &delta.context) {
            delta.scoped = SmallMap::one(element.clone(), extra);
        }
        delta.entries = SmallMap::one(element, SmallSet::one(dot));
        delta
    }

    /// The delta [`OrSet::remove`] would return, without changing the set.
    #[must_use]
    pub fn delta_of_remove(&self, element: &T) -> OrSet<T> {
        let mut delta = OrSet::new();
        for dot in self.dots(element) {
            delta.context.insert(dot);
        }
        if let Some(extra) = self.scoped_above(element, &delta.context) {
            delta.scoped = SmallMap::one(element.clone(), extra);
        }
        delta
    }

    /// Removes `element` as observed here and returns the delta: the element's live dots, and
    /// this replica's whole context scoped to `element`, so that the remove deletes every add of
    /// it this replica has seen — even one whose delta (or the delta that replaced it) is lost.
    /// Adds of it this replica has not seen survive. Removing an absent element changes nothing
    /// here, but its delta still removes, elsewhere, the adds this replica saw.
    pub fn remove(&mut self, element: &T) -> OrSet<T> {
        let mut delta = OrSet::new();
        if let Some(dots) = self.entries.remove(element) {
            for &dot in dots.iter() {
                self.index.remove(dot, element);
                delta.context.insert(dot);
            }
        }
        if let Some(extra) = self.scoped_above(element, &delta.context) {
            delta.scoped = SmallMap::one(element.clone(), extra);
        }
        delta
    }

    /// The delta of a remove of `element` that observed the adds `observed` at a replica whose
    /// context for the element was `seen` (an operation-based remove, see
    /// [`OrSetOp::Remove`](super::OrSetOp::Remove)): every add of `element` that `seen` names
    /// is removed.
    #[must_use]
    pub fn remove_seen_delta<'a>(
        element: T,
        observed: impl IntoIterator<Item = &'a Dot>,
        seen: &CausalContext,
    ) -> OrSet<T> {
        let mut delta = OrSet::remove_delta(observed);
        let extra = seen.normalized_above(&delta.context);
        if !extra.is_empty() {
            delta.scoped = SmallMap::one(element, extra);
        }
        delta
    }

    /// The next dot `leader` mints here: one past the highest of its dots seen, for any element.
    #[must_use]
    pub fn next_dot(&self, leader: LeaderId) -> Dot {
        let seq = self.scoped.values().map(|extra| extra.highest(leader)).fold(self.context.highest(leader), Ord::max);
        Dot::new(leader, seq.next())
    }

    /// Every dot this replica has seen for `element`: the context, plus the dots seen for this
    /// element only.
    #[must_use]
    pub fn context_of(&self, element: &T) -> CausalContext {
        let mut cx = self.context.clone();
        if let Some(extra) = self.scoped.get(element) {
            cx.merge(extra);
        }
        cx
    }

    /// What a delta for `element` whose context is `delta_context` carries as its scoped
    /// context: this replica's context for the element, normalized above `delta_context`.
    fn scoped_above(&self, element: &T, delta_context: &CausalContext) -> Option<CausalContext> {
        let extra = match self.scoped.get(element) {
            // The element's context is the set's: normalized without a copy of it.
            None => self.context.normalized_above(delta_context),
            Some(_) => {
                let mut extra = self.context_of(element);
                extra.normalize_above(delta_context);
                extra
            }
        };
        (!extra.is_empty()).then_some(extra)
    }

    /// Restores the canonical form of the scoped contexts after `context` grew.
    fn renormalize(scoped: &mut SmallMap<T, CausalContext>, context: &CausalContext) {
        if !scoped.is_empty() {
            scoped.retain(|_, extra| {
                extra.normalize_above(context);
                !extra.is_empty()
            });
        }
    }

    /// Folds every scoped context into the context. Only true where every dot a scoped context
    /// names is either seen here or dead everywhere — deltas joined in causal order, as the
    /// runtime applies them (see `CrdtState::absorb_scoped`); a general join must keep them
    /// scoped.
    pub fn absorb_scoped(&mut self) {
        if self.scoped.is_empty() {
            return;
        }
        for (_, extra) in core::mem::take(&mut self.scoped).iter() {
            self.context.merge(extra);
        }
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

    /// Removes every element observed here and returns the delta: this replica's whole context
    /// (and scoped contexts), so that it deletes every add this replica has seen, including
    /// adds whose deltas are lost.
    pub fn clear(&mut self) -> OrSet<T> {
        self.entries = SmallMap::default();
        self.index = DotIndex::default();
        OrSet {
            entries: SmallMap::default(),
            index: DotIndex::default(),
            context: self.context.clone(),
            scoped: self.scoped.clone(),
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
            && other.entries.len().saturating_add(other.context.cloud_len()).saturating_add(other.scoped.len())
                <= self.entries.len() / 4
    }

    /// The dot-map join's first half, by a scan of every element here: my dots that `other` has
    /// seen (its context) but does not hold under the same element were removed there.
    fn join_full_removals(&mut self, other: &Self) {
        let OrSet { entries, index, .. } = self;
        // `other`'s scoped contexts are applied by `join_scoped_removals`.
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
        let OrSet { entries, index, context, .. } = self;
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
        // Taken out and put back only if dots remain: one search for an element with one dot
        // (the usual case), where looking it up and then removing it searched twice.
        if let Some((owned, mut dots)) = entries.remove_entry(element) {
            let _ = dots.remove(&dot);
            if !dots.is_empty() {
                let _ = entries.insert(owned, dots);
            }
        }
        false
    }

    /// The join with a delta that adds one element under one dot and names nothing else (an
    /// operation-based add, `add_delta`), into a set that has not seen the dot and holds no
    /// scoped context: the element gains the dot and the context the dot. This is what the
    /// general join computes for such a delta — none of my dots is covered by its context,
    /// since all of mine are in my context and its only dot is not — without its passes.
    /// Returns `false`, changing nothing, for any other delta.
    fn merge_single_add(&mut self, other: &Self) -> bool {
        if !self.scoped.is_empty() || !other.scoped.is_empty() {
            return false;
        }
        let Some(dot) = other.context.single() else { return false };
        let Some((element, dots)) = other.entries.single() else { return false };
        if dots.single() != Some(&dot) || self.context.contains(dot) {
            return false;
        }
        let OrSet { entries, index, context, .. } = self;
        add_dot(entries, index, element, dot);
        context.insert(dot);
        index.build_if_large(entries);
        true
    }

    /// The rest of the first half, for the elements `other` has a scoped context for: my dots of
    /// such an element that the scoped context names and `other` does not hold under it were
    /// removed there. Visits only those elements.
    fn join_scoped_removals(&mut self, other: &Self) {
        let OrSet { entries, index, .. } = self;
        for (element, extra) in other.scoped.iter() {
            let Some(dots) = entries.get_mut(element) else { continue };
            let theirs = other.entries.get(element);
            dots.retain(|&dot| {
                let keep = theirs.is_some_and(|t| t.contains(&dot)) || !extra.contains(dot);
                if !keep {
                    index.remove(dot, element);
                }
                keep
            });
            if dots.is_empty() {
                let _ = entries.remove(element);
            }
        }
    }

    /// The dot-map join's second half: their dots that I have not seen for the element (my
    /// context and scoped context are still mine alone) are new here. Visits only `other`'s
    /// elements.
    fn join_additions(&mut self, other: &Self) {
        let OrSet { entries, index, context, scoped } = self;
        for (element, their_dots) in other.entries.iter() {
            let extra = if scoped.is_empty() { None } else { scoped.get(element) };
            for &dot in their_dots.iter() {
                if context.contains(dot) || extra.is_some_and(|extra| extra.contains(dot)) {
                    continue;
                }
                add_dot(entries, index, element, dot);
            }
        }
    }

    /// The join of the scoped contexts, once `self.context` holds the joined context: unions
    /// per element, in canonical form. `grew` says whether the context grew (every scoped
    /// context is then normalized again).
    fn join_scoped(&mut self, other: &Self, grew: bool) {
        let OrSet { context, scoped, .. } = self;
        if grew {
            Self::renormalize(scoped, context);
        }
        for (element, theirs) in other.scoped.iter() {
            let extra = match scoped.get(element) {
                None => theirs.normalized_above(context),
                Some(mine) => {
                    let mut extra = theirs.clone();
                    extra.merge(mine);
                    extra.normalize_above(context);
                    extra
                }
            };
            if extra.is_empty() {
                let _ = scoped.remove(element);
            } else {
                let _ = scoped.insert(element.clone(), extra);
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
        if self.merge_single_add(other) {
            return;
        }
        if self.sparse_join_pays(other) {
            self.join_sparse_removals(other);
        } else {
            self.join_full_removals(other);
        }
        self.join_scoped_removals(other);
        self.join_additions(other);
        let grew = !self.scoped.is_empty() && !other.context.is_within(&self.context);
        self.context.merge(&other.context);
        self.join_scoped(other, grew);
        self.index.build_if_large(&self.entries);
    }

    fn is_bottom(&self) -> bool {
        self.entries.is_empty() && self.context.is_empty() && self.scoped.is_empty()
    }

    fn dot_cloud_len(&self) -> usize {
        self.scoped.values().fold(self.context.cloud_len(), |sum, extra| sum.saturating_add(extra.cloud_len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causality::Seq;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn leader(i: u8) -> LeaderId {
        LeaderId::new(usize::from(i)).expect("below 64")
    }

    /// The plain representation of a set, without the index and the inline storage: element →
    /// dot set in B-trees, the context, and the scoped contexts.
    type Plain = (BTreeMap<u16, BTreeSet<Dot>>, CausalContext, BTreeMap<u16, CausalContext>);

    fn plain(set: &OrSet<u16>) -> Plain {
        let entries = set.entries.iter().map(|(e, dots)| (*e, dots.iter().copied().collect())).collect();
        let scoped = set.scoped.iter().map(|(e, cx)| (*e, cx.clone())).collect();
        (entries, set.context.clone(), scoped)
    }

    /// The effective context of `element`: the context and its scoped context.
    fn effective(context: &CausalContext, scoped: &BTreeMap<u16, CausalContext>, element: u16) -> CausalContext {
        let mut cx = context.clone();
        if let Some(extra) = scoped.get(&element) {
            cx.merge(extra);
        }
        cx
    }

    /// The reference join over the plain representation, element by element: a dot survives if
    /// both hold it, or one holds it and the other's effective context for the element has not
    /// seen it; contexts united; scoped contexts united and normalized.
    fn reference_merge(mine: &OrSet<u16>, theirs: &OrSet<u16>) -> Plain {
        let (entries, mut context, mut scoped) = plain(mine);
        let (their_entries, their_context, their_scoped) = plain(theirs);
        let elements: BTreeSet<u16> = entries.keys().chain(their_entries.keys()).copied().collect();
        let mut joined = BTreeMap::new();
        for element in elements {
            let (my_cx, their_cx) =
                (effective(&context, &scoped, element), effective(&their_context, &their_scoped, element));
            let (my_dots, their_dots) = (
                entries.get(&element).cloned().unwrap_or_default(),
                their_entries.get(&element).cloned().unwrap_or_default(),
            );
            let dots: BTreeSet<Dot> = my_dots
                .iter()
                .filter(|d| their_dots.contains(d) || !their_cx.contains(**d))
                .chain(their_dots.iter().filter(|d| !my_cx.contains(**d)))
                .copied()
                .collect();
            if !dots.is_empty() {
                joined.insert(element, dots);
            }
        }
        context.merge(&their_context);
        for (element, extra) in their_scoped {
            scoped.entry(element).or_default().merge(&extra);
        }
        scoped.retain(|_, extra| {
            extra.normalize_above(&context);
            !extra.is_empty()
        });
        (joined, context, scoped)
    }

    /// The scoped part a delta for `element` with context `delta_context` carries, made at a
    /// replica whose plain state was `before` (and that minted `minted`, if any).
    fn scoped_part(
        before: &Plain,
        element: u16,
        minted: Option<Dot>,
        delta_context: &CausalContext,
    ) -> BTreeMap<u16, CausalContext> {
        let mut extra = effective(&before.1, &before.2, element);
        if let Some(dot) = minted {
            extra.insert(dot);
        }
        extra.normalize_above(delta_context);
        if extra.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([(element, extra)])
        }
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
            sparse.join_scoped_removals(other);
            sparse.join_additions(other);
            let grew = !sparse.scoped.is_empty() && !other.context.is_within(&sparse.context);
            sparse.context.merge(&other.context);
            sparse.join_scoped(other, grew);
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
                        let before = plain(replica);
                        let expected_dot = replica.next_dot(leader(at));
                        prop_assert!(!effective(&before.1, &before.2, element).contains(expected_dot));
                        let delta = replica.add(leader(at), element);
                        let replaced: Vec<Dot> = before.0.get(&element).into_iter().flatten().copied().collect();
                        let mut context = CausalContext::from_dots(&replaced);
                        context.insert(expected_dot);
                        let scoped = scoped_part(&before, element, Some(expected_dot), &context);
                        prop_assert_eq!(
                            plain(&delta),
                            (BTreeMap::from([(element, BTreeSet::from([expected_dot]))]), context, scoped)
                        );
                        prop_assert!(replica.index_is_consistent());
                        deltas.push(delta);
                    }
                    Step::Remove { at, element } => {
                        let replica = &mut replicas[usize::from(at)];
                        let before = plain(replica);
                        let observed = CausalContext::from_dots(&before.0.get(&element).cloned().unwrap_or_default());
                        let delta = replica.remove(&element);
                        let scoped = scoped_part(&before, element, None, &observed);
                        prop_assert_eq!(plain(&delta), (BTreeMap::new(), observed, scoped));
                        prop_assert!(!replica.contains(&element));
                        prop_assert!(replica.index_is_consistent());
                        deltas.push(delta);
                    }
                    Step::Clear { at } => {
                        let replica = &mut replicas[usize::from(at)];
                        let (_, context, scoped) = plain(replica);
                        let delta = replica.clear();
                        prop_assert_eq!(plain(&delta), (BTreeMap::new(), context, scoped));
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
                struct Wire {
                    entries: BTreeMap<u16, BTreeSet<Dot>>,
                    context: CausalContext,
                    scoped: BTreeMap<u16, CausalContext>,
                }
                let (entries, context, scoped) = plain(replica);
                let bytes = postcard::to_allocvec(replica).expect("encodes");
                prop_assert_eq!(&bytes, &postcard::to_allocvec(&Wire { entries, context, scoped }).expect("encodes"));
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
