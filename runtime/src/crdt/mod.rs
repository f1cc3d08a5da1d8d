//! Conflict-free replicated data types: pure values that every leader may update without
//! coordination and that converge once all updates have been exchanged.
//!
//! Two families, as in Shapiro, Preguiça, Baquero and Zawirski, "A comprehensive study of
//! Convergent and Commutative Replicated Data Types" (INRIA RR-7506, 2011) and "Conflict-free
//! Replicated Data Types" (SSS 2011):
//!
//! - **State-based** (convergent, CvRDT; trait [`StateCrdt`]): the states form a join
//!   semilattice and [`StateCrdt::merge`] is its least upper bound — commutative, associative and
//!   idempotent — so replicas converge whatever order, duplication or loss the network inflicts,
//!   as long as every update eventually reaches every replica through some chain of merges.
//!   Types: [`GCounter`], [`PnCounter`], [`GSet`], [`TwoPSet`], [`OrSet`], [`LwwRegister`],
//!   [`MvRegister`], [`OrMap`].
//! - **Operation-based** (commutative, CmRDT; trait [`OpCrdt`]): a mutation produces an
//!   operation ([`PnCounterOp`], [`OrSetOp`]) that travels in a log entry and is applied at every
//!   replica. Concurrent operations commute, but the types rely on the runtime's delivery:
//!   **every operation is applied exactly once at every replica, in causal order** (the replication
//!   log drops duplicates and holds an entry back until its dependencies are applied). Types:
//!   [`OpPnCounter`], [`OpOrSet`].
//!
//! **Deltas.** State-based types are *δ-CRDTs* (Almeida, Shoker and Baquero, "Delta state
//! replicated data types", JPDC 2018): every mutator applies the change and *returns the delta* it
//! produced, a small state of the **same type** such that `new = old ⊔ delta`. Because deltas are
//! states of the same lattice, they merge with [`StateCrdt::merge`] too: a replica can join
//! several deltas into a delta-group, ship it, and — when a peer is too far behind — ship its full
//! state instead, through one code path and one wire type. [`DeltaBuffer`] implements that choice
//! (the delta-interval anti-entropy of the paper's Algorithm 2, with a bounded buffer).
//!
//! **Dots and causal contexts.** The observed-remove types ([`OrSet`], [`MvRegister`],
//! [`OrMap`]) tag every addition with a fresh [`Dot`](crate::causality::Dot) minted from their own
//! [`CausalContext`] (the set of dots the replica has seen: a version vector plus a "dot cloud"
//! of dots received out of order; Bieniusa et al. 2012 and Almeida et al. 2018). A remove deletes
//! exactly the dots it observed, so a concurrent addition — whose dot it has not seen — survives.
//! Minting dots locally requires one thing of the caller: **a [`LeaderId`](crate::LeaderId)
//! mutates only its own replica of an object**, and a leader that lost its state must get it back
//! (anti-entropy, a snapshot) before it mutates again; otherwise two different additions could
//! carry the same dot.
//!
//! **Bounds.** Values are user data: a G-set holds every element ever inserted, a map every key
//! ever written. The metadata is bounded as follows: counters keep one number per leader (at most
//! [`MAX_LEADERS`](crate::MAX_LEADERS)) and *saturate* at `u64::MAX` instead of overflowing; a
//! causal context is a version vector (one counter per leader) plus a dot cloud that is compacted
//! into the vector whenever it becomes contiguous, and whose size a replica watches through
//! [`StateCrdt::dot_cloud_len`] (above [`DOT_CLOUD_MAX`], ask the peer for its full state, which
//! fills the gaps); an OR-set element carries at most one dot per leader (and, only where deltas
//! were lost, a scoped causal context: see [`OrSet`]); a 2P-set's tombstones grow with every
//! removed element and are never collected — prefer [`OrSet`] when elements come and go.
//!
//! **Architecture invariant:** this module knows nothing about the network, the log or clocks. It
//! reads no time (an [`LwwRegister`] is given its [`HlcTimestamp`](crate::clock::HlcTimestamp)),
//! uses no randomness, iterates only ordered collections, and never panics on any input, including
//! states decoded from a peer.

pub mod context;
pub mod counter;
pub mod delta;
mod dot_index;
pub mod map;
pub mod op;
pub mod orset;
pub mod register;
pub mod set;
mod small;

pub use context::{CausalContext, DOT_CLOUD_MAX};
pub use counter::{GCounter, PnCounter};
pub use delta::{DeltaBuffer, DeltaSeq, Shipment, DEFAULT_DELTA_BUFFER_CAPACITY};
pub use map::OrMap;
pub use op::{OpOrSet, OpPnCounter, OrSetOp, PnCounterOp};
pub use orset::OrSet;
pub use register::{LwwRegister, MvRegister};
pub use set::{GSet, TwoPSet};

/// A state-based CRDT (CvRDT): a join semilattice whose join is [`merge`](Self::merge).
///
/// **Deltas are states of the same type.** A mutator of an implementing type changes `self` and
/// returns the delta it produced, a value `d` with `new == old.merged(&d)`. Deltas join with
/// [`merge`](Self::merge) into delta-groups; a full state is the largest possible delta. So a
/// replica ships `Self` in every case and merges whatever arrives with the same call — a delta,
/// a delta-group, a full state, a duplicate, or something stale.
///
/// Laws (checked by `runtime/tests/crdt_laws.rs` on states reached by random histories):
/// - commutative: `a ⊔ b == b ⊔ a`;
/// - associative: `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`;
/// - idempotent: `a ⊔ a == a`;
/// - `Default::default()` is the bottom element: `a ⊔ ⊥ == a`.
///
/// Equality is structural, and every implementation keeps its state in a canonical form so that
/// two states with the same meaning compare equal.
pub trait StateCrdt: Clone + Default + PartialEq {
    /// Joins `other` into `self` (the least upper bound of the two states).
    fn merge(&mut self, other: &Self);

    /// Joins a delta (or delta-group, or full state) into `self`. Deltas are states of the same
    /// type, so this is [`merge`](Self::merge); the name only says what the caller holds.
    fn merge_delta(&mut self, delta: &Self) {
        self.merge(delta);
    }

    /// The join of `self` and `other`, by value.
    #[must_use]
    fn merged(mut self, other: &Self) -> Self {
        self.merge(other);
        self
    }

    /// Whether this is the bottom element (nothing written): merging it changes nothing, so a
    /// replica need not ship it.
    fn is_bottom(&self) -> bool {
        *self == Self::default()
    }

    /// How many dots this state holds out of order (received before their predecessors), summed
    /// over nested causal contexts; 0 for types without one. Above [`DOT_CLOUD_MAX`], a replica
    /// should stop relying on deltas for this object and ask a peer for its full state, which
    /// fills the gaps and lets the cloud compact.
    fn dot_cloud_len(&self) -> usize {
        0
    }
}

/// An operation-based CRDT (CmRDT): operations produced at one replica are applied at every
/// replica, and concurrent operations commute.
///
/// **Delivery contract:** every operation is applied exactly once at every replica, after every
/// operation that causally precedes it (the runtime's causal, duplicate-suppressing delivery).
/// Under that contract, replicas that applied the same operations hold the same state. The
/// operation types are serde types, made to travel inside log entries.
pub trait OpCrdt {
    /// The operation type.
    type Op;

    /// Applies an operation received from any replica (including this one's own, which its
    /// mutators have already applied — do not apply those twice).
    fn apply(&mut self, op: &Self::Op);
}
