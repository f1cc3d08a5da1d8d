//! [`OrMap`]: an observed-remove map from keys to state-based CRDTs.
//!
//! The map pairs two lattices. **Presence** is an add-wins OR-set of keys (as [`OrSet`](super::OrSet): Bieniusa
//! et al., "An optimized conflict-free replicated set", 2012; Almeida, Shoker and Baquero, "Delta
//! state replicated data types", 2018): an update of a key tags it with a fresh dot, a remove
//! deletes the dots of the key it observed. **Values** are a map from keys to CRDTs merged
//! key-wise with the value type's own join (the map-of-lattices construction of Shapiro, Preguiça,
//! Baquero and Zawirski, "Conflict-free Replicated Data Types", 2011). A key is visible when it is
//! present; its value is the join of every update ever made to it.
//!
//! **Remove versus concurrent update: the update wins.** A remove hides the key as observed; an
//! update the remover had not seen keeps the key present — as in Riak maps and Akka's `ORMap`.
//! **A remove hides a key; it does not reset its value.** When the key re-appears (by a
//! concurrent update, or by a later one), it shows the join of *all* updates ever made to it,
//! including those before the remove: a counter continues from where it stood, a nested OR-set
//! still holds the elements that were never removed from it. Resetting would need the value to be
//! a causal CRDT sharing the map's context (Almeida et al.'s causal maps); for a generic state CRDT
//! the join would silently absorb an update made after the reset into the older state, which
//! would lose acknowledged writes. To empty a value, empty it with its own operations (e.g.
//! [`OrSet::clear`](super::OrSet::clear)) in the same update, then remove the key.
//!
//! **Deltas.** [`OrMap::update`] hands the key's current value to a closure that mutates it with
//! the value type's own mutators and returns *their* delta (δ-mutators compose: Almeida et al.);
//! the map's delta carries the key's new dot, the dots it replaced, that value delta, and the
//! origin's whole causal context *scoped to the key*. A remove's delta carries the key's live
//! dots and the same scoped context (also when the key is absent). Key presence is an OR-set,
//! and the scoped contexts are those of [`OrSet`](super::OrSet) (see its module docs): without
//! them, a lost delta (a write lost in a crash, replaced by a void entry) would let an update
//! the remover had seen come back — update, update, remove with the second update lost kept the
//! key present (issue 16). The value deltas need nothing of the sort: a counter's delta carries
//! its origin's running total, and values are never reset.
//!
//! **Bounds.** Keys and values are user data, and the values of removed keys are kept (hidden):
//! the map holds every key ever updated. Metadata: at most one dot per (key, leader) and one
//! causal context for the map (see [`CausalContext`]).

use alloc::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use alloc::vec::Vec;

use super::context::CausalContext;
use super::StateCrdt;
use crate::causality::Dot;
use crate::LeaderId;

/// An observed-remove map of CRDTs: add-wins key presence, values merged with their own join.
///
/// ```
/// use roundtable_runtime::crdt::{OrMap, OrSet, StateCrdt};
/// use roundtable_runtime::LeaderId;
/// let (a, b) = (LeaderId::new(0).unwrap(), LeaderId::new(1).unwrap());
/// let mut x: OrMap<&str, OrSet<&str>> = OrMap::new();
/// x.update(a, "cart", |items| items.add(a, "tea"));
/// let mut y = x.clone();
/// y.remove(&"cart"); // b drops the cart ...
/// x.update(a, "cart", |items| items.add(a, "jam")); // ... while a adds to it
/// x.merge(&y);
/// let cart = x.get(&"cart").unwrap(); // update wins: the cart is still there
/// assert_eq!(cart.iter().collect::<Vec<_>>(), [&"jam", &"tea"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, V: Serialize",
    deserialize = "K: Ord + Clone + Deserialize<'de>, V: StateCrdt + Deserialize<'de>"
))]
#[serde(from = "RawOrMap<K, V>")]
pub struct OrMap<K, V> {
    /// Present keys and the dots of the updates that keep them present (never empty).
    keys: BTreeMap<K, BTreeSet<Dot>>,
    /// Values of every key ever updated. Canonical: an entry exists exactly when its key is
    /// present or its value is not bottom.
    values: BTreeMap<K, V>,
    /// Every dot seen; covers every dot in `keys`.
    context: CausalContext,
    /// Extra dots seen *for one key only*: the effective context of key `k` is
    /// `context ∪ scoped[k]`, as in [`OrSet`](super::OrSet). Canonical: each is normalized above
    /// `context` and none is empty.
    scoped: BTreeMap<K, CausalContext>,
}

/// The decoded shape of an [`OrMap`], made canonical on the way in.
#[derive(Deserialize)]
#[serde(rename = "OrMap")]
#[serde(bound(deserialize = "K: Ord + Deserialize<'de>, V: Deserialize<'de>"))]
struct RawOrMap<K, V> {
    keys: BTreeMap<K, BTreeSet<Dot>>,
    values: BTreeMap<K, V>,
    context: CausalContext,
    scoped: BTreeMap<K, CausalContext>,
}

impl<K: Ord + Clone, V: StateCrdt> From<RawOrMap<K, V>> for OrMap<K, V> {
    fn from(raw: RawOrMap<K, V>) -> Self {
        let RawOrMap { mut keys, values, mut context, mut scoped } = raw;
        keys.retain(|_, dots| !dots.is_empty());
        for dot in keys.values().flatten() {
            context.insert(*dot);
        }
        renormalize(&mut scoped, &context);
        let mut map = OrMap { keys, values, context, scoped };
        map.normalize_all();
        map
    }
}

impl<K, V> Default for OrMap<K, V> {
    fn default() -> Self {
        OrMap { keys: BTreeMap::new(), values: BTreeMap::new(), context: CausalContext::new(), scoped: BTreeMap::new() }
    }
}

/// Restores the canonical form of scoped contexts after `context` grew.
fn renormalize<K: Ord>(scoped: &mut BTreeMap<K, CausalContext>, context: &CausalContext) {
    scoped.retain(|_, extra| {
        extra.normalize_above(context);
        !extra.is_empty()
    });
}

impl<K: Ord + Clone, V: StateCrdt> OrMap<K, V> {
    /// The empty map.
    #[must_use]
    pub fn new() -> Self {
        OrMap::default()
    }

    /// `leader` updates `key`: `update` receives the key's current value (bottom if never
    /// written), mutates it with the value type's mutators, and returns the delta of what it did
    /// (the mutators' return value; join several with [`StateCrdt::merge`]). The key becomes
    /// present. Returns the map's delta.
    ///
    /// Returning something smaller than the real change makes the shipped delta incomplete
    /// (peers catch up only through a full-state exchange); returning the whole value is always
    /// correct, only larger.
    pub fn update<F>(&mut self, leader: LeaderId, key: K, update: F) -> OrMap<K, V>
    where
        F: FnOnce(&mut V) -> V,
    {
        let value_delta = update(self.values.entry(key.clone()).or_default());
        let dot = self.next_dot(leader);
        let replaced = self.keys.insert(key.clone(), BTreeSet::from([dot])).unwrap_or_default();
        self.context.insert(dot);
        self.normalize(&key);

        let mut delta = OrMap::new();
        delta.context = CausalContext::from_dots(&replaced);
        delta.context.insert(dot);
        self.scope_delta(&mut delta, &key);
        renormalize(&mut self.scoped, &self.context);
        delta.keys.insert(key.clone(), BTreeSet::from([dot]));
        delta.values.insert(key.clone(), value_delta);
        delta.normalize(&key);
        delta
    }

    /// Gives `delta` (whose context is set) this replica's context for `key`, scoped to `key`:
    /// the delta then replaces or removes, wherever it arrives, every update of `key` this
    /// replica has seen, even one whose delta (or the delta that replaced it) was lost.
    fn scope_delta(&self, delta: &mut OrMap<K, V>, key: &K) {
        let extra = match self.scoped.get(key) {
            // The key's context is the map's: normalized without a copy of it.
            None => self.context.normalized_above(&delta.context),
            Some(mine) => {
                let mut extra = self.context.clone();
                extra.merge(mine);
                extra.normalize_above(&delta.context);
                extra
            }
        };
        if !extra.is_empty() {
            delta.scoped.insert(key.clone(), extra);
        }
    }

    /// The next dot `leader` mints here: one past the highest of its dots seen, for any key.
    fn next_dot(&self, leader: LeaderId) -> Dot {
        let seq = self.scoped.values().map(|extra| extra.highest(leader)).fold(self.context.highest(leader), Ord::max);
        Dot::new(leader, seq.next())
    }

    /// Removes `key` as observed here (hides it; its value is kept, see the module docs) and
    /// returns the delta: the key's live dots and this replica's context scoped to the key, so
    /// that every update of it seen here is removed, even one whose delta was lost. An update of
    /// the key this replica has not seen keeps it present. Removing an absent key changes
    /// nothing here, but its delta still removes, elsewhere, the updates this replica saw.
    pub fn remove(&mut self, key: &K) -> OrMap<K, V> {
        let dots = self.keys.remove(key).unwrap_or_default();
        self.normalize(key);
        let mut delta = OrMap::new();
        delta.context = CausalContext::from_dots(&dots);
        self.scope_delta(&mut delta, key);
        delta
    }

    /// The value of `key`, if present.
    #[must_use]
    pub fn get(&self, key: &K) -> Option<&V> {
        if self.keys.contains_key(key) {
            self.values.get(key)
        } else {
            None
        }
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &K) -> bool {
        self.keys.contains_key(key)
    }

    /// The present keys, in ascending order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.keys.keys()
    }

    /// The present keys with their values, in ascending key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.keys.keys().filter_map(|key| self.values.get(key).map(|value| (key, value)))
    }

    /// The number of present keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The number of keys whose values are kept although the key is removed.
    #[must_use]
    pub fn hidden_len(&self) -> usize {
        self.values.keys().filter(|key| !self.keys.contains_key(*key)).count()
    }

    /// Every dot this replica has seen.
    #[must_use]
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Restores the canonical form for `key`: a value entry exists exactly when the key is
    /// present or its value is not bottom.
    fn normalize(&mut self, key: &K) {
        let present = self.keys.contains_key(key);
        match self.values.get(key) {
            Some(value) if !present && value.is_bottom() => {
                self.values.remove(key);
            }
            None if present => {
                self.values.insert(key.clone(), V::default());
            }
            _ => {}
        }
    }

    /// Restores the canonical form for every key.
    /// Folds every scoped context into the context; see [`OrSet::absorb_scoped`](super::OrSet)
    /// for when that is true.
    pub fn absorb_scoped(&mut self) {
        for extra in core::mem::take(&mut self.scoped).into_values() {
            self.context.merge(&extra);
        }
        self.normalize_all();
    }

    fn normalize_all(&mut self) {
        let keys = &self.keys;
        self.values.retain(|key, value| keys.contains_key(key) || !value.is_bottom());
        for key in self.keys.keys() {
            if !self.values.contains_key(key) {
                self.values.insert(key.clone(), V::default());
            }
        }
    }
}

impl<K: Ord + Clone, V: StateCrdt> StateCrdt for OrMap<K, V> {
    fn merge(&mut self, other: &Self) {
        // The dot-map join with effective (scoped) contexts: first my dots their context for the
        // key has seen but they do not hold, then their dots my context for the key has not seen.
        for (key, dots) in self.keys.iter_mut() {
            let (theirs, extra) = (other.keys.get(key), other.scoped.get(key));
            dots.retain(|&dot| {
                theirs.is_some_and(|t| t.contains(&dot))
                    || !(other.context.contains(dot) || extra.is_some_and(|e| e.contains(dot)))
            });
        }
        self.keys.retain(|_, dots| !dots.is_empty());
        for (key, their_dots) in &other.keys {
            let extra = self.scoped.get(key);
            let unseen: Vec<Dot> = their_dots
                .iter()
                .copied()
                .filter(|&dot| !(self.context.contains(dot) || extra.is_some_and(|e| e.contains(dot))))
                .collect();
            if !unseen.is_empty() {
                self.keys.entry(key.clone()).or_default().extend(unseen);
            }
        }
        let grew = !self.scoped.is_empty() && !other.context.is_within(&self.context);
        self.context.merge(&other.context);
        if grew {
            renormalize(&mut self.scoped, &self.context);
        }
        for (key, theirs) in &other.scoped {
            let extra = match self.scoped.get(key) {
                None => theirs.normalized_above(&self.context),
                Some(mine) => {
                    let mut extra = theirs.clone();
                    extra.merge(mine);
                    extra.normalize_above(&self.context);
                    extra
                }
            };
            if extra.is_empty() {
                self.scoped.remove(key);
            } else {
                self.scoped.insert(key.clone(), extra);
            }
        }
        for (key, theirs) in &other.values {
            match self.values.get_mut(key) {
                Some(mine) => mine.merge(theirs),
                None => {
                    self.values.insert(key.clone(), theirs.clone());
                }
            }
        }
        self.normalize_all();
    }

    fn dot_cloud_len(&self) -> usize {
        let own =
            self.scoped.values().fold(self.context.cloud_len(), |sum, extra| sum.saturating_add(extra.cloud_len()));
        self.values.values().fold(own, |sum, value| sum.saturating_add(value.dot_cloud_len()))
    }
}
