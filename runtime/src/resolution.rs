//! Conflict resolution per keyspace: which store a key lives in, what a client may do to it, and
//! the operations that travel in log entries.
//!
//! A cluster has named keyspaces, each with its own [`Resolution`]. A key belongs to the keyspace
//! named by its prefix up to the first `/` (`cart/42` is in keyspace `cart`); keys of no named
//! keyspace belong to the default one (last-write-wins unless configured otherwise).
//!
//! - [`Resolution::LastWriteWins`]: one register per key, the greatest HLC timestamp wins; every
//!   discarded write is reported ([`crate::store`]).
//! - [`Resolution::Siblings`]: concurrent writes are all kept as siblings; a read returns them
//!   with a causal context, and a write carrying that context replaces exactly what it saw
//!   (dotted version vector sets, [`crate::siblings`]).
//! - [`Resolution::Crdt`]: the key holds a conflict-free replicated data type ([`crate::crdt`]).
//!   State-based types ship *deltas* in log entries (δ-CRDTs, Almeida et al. 2018) — the delta
//!   is produced at the origin from its current state and joined everywhere, so duplicates and
//!   re-deliveries are harmless — and whole states in snapshots when a peer is too far behind.
//!   The operation-based counter ships its operations instead and relies on the log's causal,
//!   exactly-once delivery.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::crdt::{
    CausalContext as CrdtContext, GCounter, GSet, LwwRegister, MvRegister, OrMap, OrSet, OrSetOp, PnCounter,
    PnCounterOp, StateCrdt, TwoPSet,
};
use crate::entry::{Key, Value};
use crate::siblings::CausalContext;
use crate::{clock::HlcTimestamp, LeaderId};

/// The largest sibling bound a keyspace may set: that many values of the largest size still fit
/// half a frame, so a key's siblings always fit a snapshot chunk.
pub const MAX_SIBLINGS_BOUND: usize = 8;

/// The most named keyspaces a replica accepts.
pub const MAX_KEYSPACES: usize = 64;

/// Which conflict-free replicated data type a CRDT keyspace holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CrdtKind {
    /// Grow-only counter.
    GCounter,
    /// Increment/decrement counter (state-based, shipped as deltas).
    PnCounter,
    /// Increment/decrement counter, operation-based: ships each operation, applied exactly once.
    OpCounter,
    /// Grow-only set of values.
    GSet,
    /// Two-phase set: a removed value can never come back.
    TwoPSet,
    /// Add-wins observed-remove set.
    OrSet,
    /// Last-write-wins register (HLC timestamps).
    LwwRegister,
    /// Multi-value register: concurrent writes all kept.
    MvRegister,
    /// Add-wins observed-remove set, operation-based: ships each add and remove, applied exactly
    /// once thanks to the log's delivery rule (its state is an OR-set, for snapshots).
    OpOrSet,
    /// An observed-remove map of PN-counters (an OR-map of CRDTs): fields appear when updated,
    /// a removal hides a field unless a concurrent update keeps it.
    CounterMap,
}

/// How a keyspace reconciles concurrent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    /// Last-write-wins on HLC timestamps; discarded writes are traced and counted.
    LastWriteWins,
    /// Conflict avoidance: each key has a home leader (rendezvous hashing over the live set) and
    /// every write to it is made there — a write at another leader is routed to the home — so
    /// writes to a key are sequential and never conflict. When the home dies the next leader by
    /// the same hashing takes over. (Stored like last-write-wins: while the live set changes, two
    /// leaders can briefly both act as home; their writes are then decided by timestamp.)
    HomeLeader,
    /// Version vectors with siblings, at most `max_siblings` per key admitted at a leader.
    Siblings {
        /// The bound on live siblings per key (see [`crate::siblings`] for the policy).
        max_siblings: usize,
    },
    /// A conflict-free replicated data type.
    Crdt(CrdtKind),
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolution::LastWriteWins => f.write_str("last-write-wins"),
            Resolution::HomeLeader => f.write_str("home-leader"),
            Resolution::Siblings { max_siblings } => write!(f, "siblings (at most {max_siblings})"),
            Resolution::Crdt(kind) => write!(f, "crdt {kind:?}"),
        }
    }
}

/// The keyspaces of a cluster and their resolutions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspaces {
    default: Resolution,
    /// In name order. A short list searched from the start: every write looks up its key's
    /// keyspace several times, and comparing lengths first rejects most names without reading
    /// them (a B-tree's string comparisons were ~3 % of a node's time under a write load).
    named: Vec<(String, Resolution)>,
}

impl Default for Keyspaces {
    fn default() -> Self {
        Keyspaces { default: Resolution::LastWriteWins, named: Vec::new() }
    }
}

/// A keyspace configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyspaceError {
    /// The name is empty or contains `/`.
    #[error("keyspace name {0:?} must be non-empty and contain no '/'")]
    BadName(String),
    /// Too many keyspaces.
    #[error("at most {MAX_KEYSPACES} keyspaces")]
    TooMany,
    /// A sibling bound of zero, or one so large that a key's siblings might not fit a frame.
    #[error("keyspace {0:?}: max_siblings must be between 1 and {MAX_SIBLINGS_BOUND}")]
    ZeroSiblings(String),
}

impl Keyspaces {
    /// Only the default keyspace, with `default` resolution.
    #[must_use]
    pub fn new(default: Resolution) -> Self {
        Keyspaces { default, named: Vec::new() }
    }

    /// The resolution of keys outside every named keyspace.
    #[must_use]
    pub fn default_resolution(&self) -> Resolution {
        self.default
    }

    /// Adds (or replaces) the keyspace `name`.
    pub fn with(mut self, name: &str, resolution: Resolution) -> Result<Self, KeyspaceError> {
        if name.is_empty() || name.contains('/') {
            return Err(KeyspaceError::BadName(name.into()));
        }
        if let Resolution::Siblings { max_siblings } = resolution {
            if max_siblings == 0 || max_siblings > MAX_SIBLINGS_BOUND {
                return Err(KeyspaceError::ZeroSiblings(name.into()));
            }
        }
        match self.named.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.named[i].1 = resolution,
            Err(_) if self.named.len() >= MAX_KEYSPACES => return Err(KeyspaceError::TooMany),
            Err(i) => self.named.insert(i, (name.into(), resolution)),
        }
        Ok(self)
    }

    /// The resolution of the keyspace `key` belongs to.
    #[must_use]
    pub fn resolution(&self, key: &Key) -> Resolution {
        self.keyspace_of(key.as_str()).1
    }

    /// The named keyspace `key` belongs to (`None`: the default one) and its resolution.
    #[must_use]
    pub fn keyspace_of<'a>(&'a self, key: &str) -> (Option<&'a str>, Resolution) {
        // `key` is in `name` when it starts with `name/` (names hold no `/`, so that is its first
        // `/`). Checked byte by byte: names are short, and this runs several times per write.
        let key = key.as_bytes();
        self.named
            .iter()
            .find(|(name, _)| {
                let name = name.as_bytes();
                key.get(name.len()) == Some(&b'/') && name.iter().zip(key).all(|(a, b)| a == b)
            })
            .map_or((None, self.default), |(name, resolution)| (Some(name.as_str()), *resolution))
    }

    /// The named keyspaces, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Resolution)> {
        self.named.iter().map(|(n, r)| (n.as_str(), *r))
    }
}

/// The state of one CRDT key.
///
/// The OR-set, MV-register and counter map live in a box: inline they made every variant as
/// large as the largest (224 bytes, the OR-set), and every CRDT key's B-tree slot and every log
/// entry paid for it. The serde form is that of the unboxed types (a `Box` serializes as what it
/// holds), so the wire format is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum CrdtState {
    GCounter(GCounter),
    PnCounter(PnCounter),
    GSet(GSet<Value>),
    TwoPSet(TwoPSet<Value>),
    OrSet(Box<OrSet<Value>>),
    LwwRegister(LwwRegister<Value>),
    MvRegister(Box<MvRegister<Value>>),
    CounterMap(Box<OrMap<Value, PnCounter>>),
}

impl CrdtState {
    /// The empty state of `kind` (the operation-based counter's state is a PN-counter).
    #[must_use]
    pub fn empty(kind: CrdtKind) -> Self {
        match kind {
            CrdtKind::GCounter => CrdtState::GCounter(GCounter::default()),
            CrdtKind::PnCounter | CrdtKind::OpCounter => CrdtState::PnCounter(PnCounter::default()),
            CrdtKind::GSet => CrdtState::GSet(GSet::default()),
            CrdtKind::TwoPSet => CrdtState::TwoPSet(TwoPSet::default()),
            CrdtKind::OrSet | CrdtKind::OpOrSet => CrdtState::OrSet(Box::default()),
            CrdtKind::CounterMap => CrdtState::CounterMap(Box::default()),
            CrdtKind::LwwRegister => CrdtState::LwwRegister(LwwRegister::default()),
            CrdtKind::MvRegister => CrdtState::MvRegister(Box::default()),
        }
    }

    /// Joins `other` (a delta or a whole state) into this state. `false` when the two are of
    /// different types (nothing changes).
    pub fn merge(&mut self, other: &CrdtState) -> bool {
        match (self, other) {
            (CrdtState::GCounter(a), CrdtState::GCounter(b)) => a.merge(b),
            (CrdtState::PnCounter(a), CrdtState::PnCounter(b)) => a.merge(b),
            (CrdtState::GSet(a), CrdtState::GSet(b)) => a.merge(b),
            (CrdtState::TwoPSet(a), CrdtState::TwoPSet(b)) => a.merge(b),
            (CrdtState::OrSet(a), CrdtState::OrSet(b)) => a.merge(b),
            (CrdtState::LwwRegister(a), CrdtState::LwwRegister(b)) => a.merge(b),
            (CrdtState::MvRegister(a), CrdtState::MvRegister(b)) => a.merge(b),
            (CrdtState::CounterMap(a), CrdtState::CounterMap(b)) => a.merge(b),
            _ => return false,
        }
        true
    }

    /// The value a reader sees, as stable text: `7`, `{"a", "b"}`, `"v"`, `["v", "w"]`.
    #[must_use]
    pub fn render(&self) -> String {
        use alloc::format;
        use alloc::string::ToString;
        let text = |v: &Value| format!("{v}");
        let set = |items: alloc::vec::Vec<String>| format!("{{{}}}", items.join(", "));
        match self {
            CrdtState::GCounter(c) => c.value().to_string(),
            CrdtState::PnCounter(c) => c.value().to_string(),
            CrdtState::GSet(s) => set(s.value().iter().map(text).collect()),
            CrdtState::TwoPSet(s) => set(s.value().iter().map(text).collect()),
            CrdtState::OrSet(s) => set(s.value().iter().map(text).collect()),
            CrdtState::LwwRegister(r) => r.value().map_or_else(|| "(unset)".into(), text),
            CrdtState::MvRegister(r) => {
                format!("[{}]", r.values().map(text).collect::<alloc::vec::Vec<_>>().join(", "))
            }
            CrdtState::CounterMap(m) => {
                set(m.iter().map(|(field, counter)| format!("{}: {}", text(field), counter.value())).collect())
            }
        }
    }

    /// How many dots this state holds out of order, over its causal contexts (see
    /// [`StateCrdt::dot_cloud_len`](crate::crdt::StateCrdt::dot_cloud_len)); 0 for types without one.
    #[must_use]
    pub fn dot_cloud_len(&self) -> usize {
        use crate::crdt::StateCrdt;
        match self {
            CrdtState::OrSet(s) => s.dot_cloud_len(),
            CrdtState::MvRegister(r) => r.dot_cloud_len(),
            CrdtState::CounterMap(m) => m.dot_cloud_len(),
            _ => 0,
        }
    }

    /// After a delta was joined *in causal order* (as the runtime applies entries): every dot
    /// its scoped contexts name was minted by an entry this replica has applied — then it is in
    /// the context already — or one that was voided, whose dot is dead everywhere. Folding the
    /// scoped contexts into the context is then true for every element, and keeps the context
    /// a version vector: left scoped, a lost delta's dot would leave a gap that every later dot
    /// of its origin waits behind, out of order, for ever.
    pub fn absorb_scoped(&mut self) {
        match self {
            CrdtState::OrSet(s) => s.absorb_scoped(),
            CrdtState::CounterMap(m) => m.absorb_scoped(),
            _ => {}
        }
    }

    /// Whether this state is of the type `kind` stores.
    #[must_use]
    pub fn fits(&self, kind: CrdtKind) -> bool {
        // A match rather than a comparison with `empty(kind)`, which would allocate.
        matches!(
            (self, kind),
            (CrdtState::GCounter(_), CrdtKind::GCounter)
                | (CrdtState::PnCounter(_), CrdtKind::PnCounter | CrdtKind::OpCounter)
                | (CrdtState::GSet(_), CrdtKind::GSet)
                | (CrdtState::TwoPSet(_), CrdtKind::TwoPSet)
                | (CrdtState::OrSet(_), CrdtKind::OrSet | CrdtKind::OpOrSet)
                | (CrdtState::LwwRegister(_), CrdtKind::LwwRegister)
                | (CrdtState::MvRegister(_), CrdtKind::MvRegister)
                | (CrdtState::CounterMap(_), CrdtKind::CounterMap)
        )
    }
}

/// A client's update of a CRDT key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrdtUpdate {
    /// Add to a counter.
    Increment(u64),
    /// Subtract from a PN-counter.
    Decrement(u64),
    /// Add a value to a set.
    Add(Value),
    /// Remove a value from a 2P-set or OR-set (an OR-set removes the additions this leader saw).
    Remove(Value),
    /// Add to the counter of `field` in a counter map.
    MapIncrement {
        /// The field.
        field: Value,
        /// How much.
        amount: u64,
    },
    /// Subtract from the counter of `field` in a counter map.
    MapDecrement {
        /// The field.
        field: Value,
        /// How much.
        amount: u64,
    },
    /// Remove `field` from a counter map (as observed here; a concurrent update keeps it).
    MapRemove {
        /// The field.
        field: Value,
    },
    /// Set a register (an MV-register write replaces the values of `context`, from a read).
    Set {
        /// The value.
        value: Value,
        /// For an MV-register: what the client saw (empty: a blind write).
        context: Option<CrdtContext>,
    },
}

/// What a client asks of a key.
// The siblings context makes `PutWithContext` large; updates are built once per write and not
// stored, so boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Write a value (LWW: the register; siblings: a blind write).
    Put(Value),
    /// Delete (LWW: a tombstone; siblings: a blind delete).
    Delete,
    /// A siblings write that replaces what the client read (`None` value: delete).
    PutWithContext {
        /// The value, or `None` to delete.
        value: Option<Value>,
        /// The context the client's read returned.
        context: CausalContext,
    },
    /// A CRDT update.
    Crdt(CrdtUpdate),
}

impl Update {
    /// A short name, for errors.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Update::Put(_) => "put",
            Update::Delete => "delete",
            Update::PutWithContext { .. } => "put with context",
            Update::Crdt(CrdtUpdate::Increment(_)) => "increment",
            Update::Crdt(CrdtUpdate::Decrement(_)) => "decrement",
            Update::Crdt(CrdtUpdate::Add(_)) => "add",
            Update::Crdt(CrdtUpdate::Remove(_)) => "remove",
            Update::Crdt(CrdtUpdate::Set { .. }) => "set",
            Update::Crdt(CrdtUpdate::MapIncrement { .. }) => "map increment",
            Update::Crdt(CrdtUpdate::MapDecrement { .. }) => "map decrement",
            Update::Crdt(CrdtUpdate::MapRemove { .. }) => "map remove",
        }
    }
}

/// The CRDT keys of a replica, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrdtStore {
    /// Keys of CRDT keyspaces and their states.
    pub crdts: BTreeMap<Key, CrdtState>,
}

impl CrdtStore {
    /// The delta (or operation) `update` produces at leader `me` on `key` of kind `kind`, given
    /// the current state, without changing anything; `None` when the update does not fit.
    #[must_use]
    pub fn crdt_delta(
        &self,
        key: &Key,
        kind: CrdtKind,
        me: LeaderId,
        hlc: HlcTimestamp,
        update: &CrdtUpdate,
    ) -> Option<CrdtOpPayload> {
        let empty;
        let current = match self.crdts.get(key) {
            Some(state) => state,
            None => {
                empty = CrdtState::empty(kind);
                &empty
            }
        };
        let delta = match (current, update, kind) {
            (CrdtState::PnCounter(_), CrdtUpdate::Increment(n), CrdtKind::OpCounter) => {
                return Some(CrdtOpPayload::Counter(PnCounterOp::Increment { by: me, amount: *n }))
            }
            (CrdtState::PnCounter(_), CrdtUpdate::Decrement(n), CrdtKind::OpCounter) => {
                return Some(CrdtOpPayload::Counter(PnCounterOp::Decrement { by: me, amount: *n }))
            }
            (CrdtState::OrSet(s), CrdtUpdate::Add(v), CrdtKind::OpOrSet) => {
                let dot = s.next_dot(me);
                return Some(CrdtOpPayload::SetOp(OrSetOp::Add { element: v.clone(), dot }));
            }
            (CrdtState::OrSet(s), CrdtUpdate::Remove(v), CrdtKind::OpOrSet) => {
                let observed = s.dots(v).collect();
                let seen = s.context_of(v);
                return Some(CrdtOpPayload::SetOp(OrSetOp::Remove { element: v.clone(), observed, seen }));
            }
            // Deltas computed from the state as it is, without a copy of it (a copy per write
            // costs the state's size).
            (CrdtState::GCounter(c), CrdtUpdate::Increment(n), _) => CrdtState::GCounter(c.delta_of_increment(me, *n)),
            (CrdtState::PnCounter(c), CrdtUpdate::Increment(n), _) => {
                CrdtState::PnCounter(c.delta_of_increment(me, *n))
            }
            (CrdtState::PnCounter(c), CrdtUpdate::Decrement(n), _) => {
                CrdtState::PnCounter(c.delta_of_decrement(me, *n))
            }
            (CrdtState::OrSet(s), CrdtUpdate::Add(v), _) => CrdtState::OrSet(Box::new(s.delta_of_add(me, v.clone()))),
            (CrdtState::OrSet(s), CrdtUpdate::Remove(v), _) => CrdtState::OrSet(Box::new(s.delta_of_remove(v))),
            (CrdtState::GSet(s), CrdtUpdate::Add(v), _) => CrdtState::GSet(s.delta_of_insert(v.clone())),
            (CrdtState::TwoPSet(s), CrdtUpdate::Add(v), _) => CrdtState::TwoPSet(s.delta_of_insert(v.clone())),
            (CrdtState::TwoPSet(s), CrdtUpdate::Remove(v), _) => CrdtState::TwoPSet(s.delta_of_remove(v.clone())),
            (CrdtState::LwwRegister(r), CrdtUpdate::Set { value, .. }, _) => {
                CrdtState::LwwRegister(r.delta_of_set(hlc, value.clone()))
            }
            // Counter maps and MV-registers make the change on a copy and keep the delta it
            // returns.
            _ => {
                let mut state = current.clone();
                match (&mut state, update) {
                    (CrdtState::CounterMap(m), CrdtUpdate::MapIncrement { field, amount }) => {
                        CrdtState::CounterMap(Box::new(m.update(me, field.clone(), |c| c.increment(me, *amount))))
                    }
                    (CrdtState::CounterMap(m), CrdtUpdate::MapDecrement { field, amount }) => {
                        CrdtState::CounterMap(Box::new(m.update(me, field.clone(), |c| c.decrement(me, *amount))))
                    }
                    (CrdtState::CounterMap(m), CrdtUpdate::MapRemove { field }) => {
                        CrdtState::CounterMap(Box::new(m.remove(field)))
                    }
                    (CrdtState::MvRegister(r), CrdtUpdate::Set { value, context }) => {
                        CrdtState::MvRegister(Box::new(match context {
                            Some(seen) => r.write_with_context(me, value.clone(), seen),
                            None => r.write(me, value.clone()),
                        }))
                    }
                    _ => return None,
                }
            }
        };
        Some(CrdtOpPayload::Delta(delta))
    }

    /// Applies a CRDT payload to `key` (of kind `kind`). `false` when it does not fit the kind.
    pub fn apply_crdt(&mut self, key: &Key, kind: CrdtKind, payload: &CrdtOpPayload) -> bool {
        let state = self.crdts.entry(key.clone()).or_insert_with(|| CrdtState::empty(kind));
        match (state, payload, kind) {
            (CrdtState::PnCounter(c), CrdtOpPayload::Counter(op), CrdtKind::OpCounter) => {
                // Operation-based: applied exactly once thanks to the log's delivery rule.
                let _ = match *op {
                    PnCounterOp::Increment { by, amount } => c.increment(by, amount),
                    PnCounterOp::Decrement { by, amount } => c.decrement(by, amount),
                };
                true
            }
            (CrdtState::OrSet(s), CrdtOpPayload::SetOp(op), CrdtKind::OpOrSet) => {
                let delta = match op {
                    OrSetOp::Add { element, dot } => OrSet::add_delta(element.clone(), *dot),
                    OrSetOp::Remove { element, observed, seen } => {
                        OrSet::remove_seen_delta(element.clone(), observed, seen)
                    }
                };
                s.merge(&delta);
                s.absorb_scoped();
                true
            }
            (state, CrdtOpPayload::Delta(delta), _) if delta.fits(kind) && !kind.is_operation_based() => {
                let merged = state.merge(delta);
                state.absorb_scoped();
                merged
            }
            _ => false,
        }
    }
}

/// What a CRDT entry carries: a delta of a state-based type or an operation.
// Deltas dominate; the counter operation being smaller is not worth an allocation per delta.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrdtOpPayload {
    /// A delta (a small state) to join.
    Delta(CrdtState),
    /// An operation of the operation-based counter.
    Counter(PnCounterOp),
    /// An operation of the operation-based OR-set.
    SetOp(OrSetOp<Value>),
}

impl CrdtKind {
    /// Whether updates of this kind ship as operations rather than deltas.
    #[must_use]
    pub fn is_operation_based(self) -> bool {
        matches!(self, CrdtKind::OpCounter | CrdtKind::OpOrSet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key is in the keyspace named by its prefix up to its first `/`, whatever the other
    /// names (a name that is a prefix of another, or of the key without its `/`).
    #[test]
    fn a_key_is_in_the_keyspace_before_its_first_slash() {
        let crdt = Resolution::Crdt(CrdtKind::PnCounter);
        let spaces = Keyspaces::new(Resolution::LastWriteWins)
            .with("cart", Resolution::HomeLeader)
            .and_then(|k| k.with("car", crdt))
            .and_then(|k| k.with("c", Resolution::Siblings { max_siblings: 2 }))
            .expect("valid keyspaces");
        let of = |key: &str| spaces.keyspace_of(key);
        assert_eq!(of("cart/42"), (Some("cart"), Resolution::HomeLeader));
        assert_eq!(of("cart/4/2"), (Some("cart"), Resolution::HomeLeader));
        assert_eq!(of("car/1"), (Some("car"), crdt));
        assert_eq!(of("c/x"), (Some("c"), Resolution::Siblings { max_siblings: 2 }));
        for other in ["cart", "cartx/1", "ca/rt", "/cart", "carts/1", "x/cart/1", ""] {
            assert_eq!(of(other), (None, Resolution::LastWriteWins), "{other:?}");
        }
        // Replacing a keyspace keeps one entry.
        let replaced = spaces.clone().with("car", Resolution::LastWriteWins).expect("valid");
        assert_eq!(replaced.iter().count(), 3);
        assert_eq!(replaced.keyspace_of("car/1"), (Some("car"), Resolution::LastWriteWins));
    }
}
