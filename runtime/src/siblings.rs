//! Version vectors with siblings: a multi-value store that keeps concurrent writes instead of
//! choosing among them, and lets a client resolve them by writing with the causal context it read.
//!
//! # The algorithm
//!
//! This is the server-side scheme of Riak with dotted version vectors (Preguiça, Baquero, Almeida,
//! Fonte & Gonçalves 2010/2012, "Dotted Version Vectors: Logical Clocks for Optimistic
//! Replication"; Riak KV's *causal context* and *siblings*). Each key holds a [`KeyState`]: a set
//! of **siblings** `(dot, value)` and the key's **context** `C`, a version vector naming every
//! write the key has seen or that a client has superseded.
//!
//! - **Write** `(d, C_w, v)` — `d` is the dot the replication log gave the write (its origin and
//!   sequence number), `C_w` the context the client got from its last read (empty for a blind
//!   write): every sibling whose dot `C_w` covers is removed, `(d, v)` is added unless `C` already
//!   covers `d`, and `C := C ⊔ C_w ⊔ ↓d`. A client therefore replaces exactly the siblings it saw;
//!   a stale or empty context leaves the writes it did not see in place, as siblings of the new
//!   one — never a lost write.
//! - **The dot is not the context.** The removal uses `C_w` alone, never `↓d`: a version vector
//!   covering `d = (L, s)` covers every earlier write of `L` as well, so folding the dot into the
//!   removal would let a blind write swallow the unseen siblings its own leader accepted before it.
//!   This separation of the event's dot from its causal past is the point of dotted version
//!   vectors. The key's context *may* absorb `↓d` afterwards because the replication log delivers
//!   every origin's writes in sequence order: when `(L, s)` is applied, every earlier write of `L`
//!   to this key has been applied here already (live or superseded), so `C[L] ≥ s` claims nothing
//!   false.
//! - **A context may name writes this replica has not applied yet.** A client may read at one
//!   leader and write back at another: the write's context then names writes its own leader has
//!   not received. `C := C ⊔ C_w` records that the client superseded them; when they arrive they
//!   are already covered and add no sibling, which is what the client meant. So a key's context
//!   is not bounded by the replica's applied version vector — only its live siblings are, and a
//!   snapshot is checked for that alone (the runtime once required the whole context and
//!   rejected such snapshots for ever).
//! - **Delete** is a write without a value, a tombstone. A tombstone sibling would only ever add its
//!   dot to the join below, and the context holds that dot already, so tombstones are implicit:
//!   a delete removes what its client saw, leaves concurrent writes standing, and adds no sibling.
//! - **Read** returns the live siblings in dot order (the same at every replica) and the key's
//!   context as an opaque [`CausalContext`], which the client hands back with its next write.
//! - **Join** of two states (snapshots, anti-entropy), the join of dot stores with causal contexts
//!   (Almeida, Shoker & Baquero 2018, "Delta State Replicated Data Types"): a sibling survives if
//!   both sides hold it, or if the other side's context does not cover its dot; contexts join
//!   pointwise. Because every sibling's dot is in its own state's context, a dot survives exactly
//!   when some side holds it and every side whose context covers it holds it too — so the join is
//!   commutative, associative and idempotent, and joining the states of replicas that applied
//!   causally closed histories `H₁ … Hₙ` gives the state of applying `H₁ ∪ … ∪ Hₙ`.
//!
//! Applying the same writes in any order that respects causality gives the same state: a dot is
//! live in the end exactly when no write's client context covers it. The caller must deliver
//! every origin's writes in sequence order and at most once (the runtime's causal, exactly-once
//! delivery); a write whose dot the context already covers is reported as
//! [`SiblingOutcome::AlreadyCovered`] and adds nothing.
//!
//! # The bound, and why it is enforced where a write is admitted
//!
//! A key has at most [`SiblingStore::max_siblings`] live siblings ([`MAX_SIBLINGS`] by default)
//! *after any write its own leader admits*: [`SiblingStore::check_write`] refuses, with
//! [`SiblingError::TooManySiblings`], a put that would leave more, before the write is given a dot
//! or acknowledged. Nothing is lost: the client reads the siblings and writes a resolution with the
//! context, which always fits. Deletes are never refused; they never add a sibling.
//!
//! Replicated writes and state merges are never refused and never evicted. Any rule that evicts at
//! apply time cannot converge, whatever it orders by: with a bound of 2, let `a`, `b`, `c` be
//! concurrent, and `z` a write whose client saw all of them but the one the rule would evict — say
//! `b`. A replica receiving `a, b, c, z` evicts `b` and ends with `{z}`; one receiving `a, c, z, b`
//! (also causal) never exceeds the bound and ends with `{z, b}`. Riak makes the same choice: its
//! `max_siblings` fails a put on the path the application controls and is not enforced on handoff,
//! where it would lose data (basho/riak_kv#836).
//!
//! What admission guarantees everywhere: **at every replica, at every moment, a key holds at most
//! `max_siblings` live siblings from any one origin**, so at most `max_siblings` × the number of
//! leaders that wrote it concurrently. (Proof: take origin `L`'s latest write `w` to the key
//! applied at replica `R`. Every earlier write of `L` to the key that was no longer live at `L`
//! right after `w` was removed there by a write in `w`'s causal past, which `R` has applied too;
//! so `L`'s siblings at `R` are among the live siblings `L` had after `w` — or after its last put,
//! if `w` was a delete — which admission kept within the bound.) A key can exceed `max_siblings`
//! only when several leaders admit concurrent writes; [`SiblingOutcome::Concurrent`] and
//! [`MergeOutcome`] say so (`over_bound`), so the replica can trace it, and admission at any leader
//! then refuses further unresolving puts to that key until a client resolves it.
//!
//! A context is trusted to come from a read: one that names writes never made would hide them when
//! they arrive. Contexts are opaque to clients for that reason.
//!
//! Iteration is in key order (a `BTreeMap`), so snapshots and traces are deterministic.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::causality::{Dot, Seq, VersionVector};
use crate::entry::{Key, Value};
use crate::LeaderId;

/// The default bound on live siblings per key, after a write its leader admits.
pub const MAX_SIBLINGS: usize = 16;

/// What a client gets with a read and hands back with its next write: the writes it has seen.
///
/// Opaque to clients; it serializes (with serde) as the key's version vector.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CausalContext(VersionVector);

impl CausalContext {
    /// The empty context, for a blind write: it replaces nothing.
    #[must_use]
    pub const fn empty() -> Self {
        CausalContext(VersionVector::new())
    }

    /// Whether the write `dot` is among those this context has seen.
    #[must_use]
    pub fn covers(&self, dot: Dot) -> bool {
        self.0.contains(dot)
    }

    /// Whether the context names no write.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The version vector inside (for the runtime; clients treat the context as opaque).
    #[must_use]
    pub fn version_vector(&self) -> &VersionVector {
        &self.0
    }
}

impl From<VersionVector> for CausalContext {
    fn from(vv: VersionVector) -> Self {
        CausalContext(vv)
    }
}

impl From<CausalContext> for VersionVector {
    fn from(context: CausalContext) -> Self {
        context.0
    }
}

impl fmt::Debug for CausalContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Renders as `ctx[L0:2 L3:1]`.
impl fmt::Display for CausalContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ctx{}", self.0)
    }
}

/// A put refused at admission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiblingError {
    /// The put would leave its key with more live siblings than the store's bound.
    #[error(
        "writing {key} would leave it with {siblings} siblings, more than the limit of {max}; \
         read it and write with its causal context to resolve them"
    )]
    TooManySiblings {
        /// The key written.
        key: Key,
        /// How many live siblings the key would have had.
        siblings: usize,
        /// The store's bound.
        max: usize,
    },
}

/// What applying one write did to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum SiblingOutcome {
    /// The write saw every sibling the key had: it is now the only one (for a delete, the key has
    /// no value left).
    Superseded {
        /// The siblings it replaced, in dot order (empty for a new or deleted key).
        replaced: Vec<Dot>,
    },
    /// Siblings the write did not see stay beside it (for a delete, the key keeps them).
    Concurrent {
        /// The siblings it replaced, in dot order.
        replaced: Vec<Dot>,
        /// The siblings it did not see, which stay, in dot order.
        concurrent: Vec<Dot>,
        /// Whether the key now has more live siblings than the store's bound (only possible when
        /// several leaders admitted concurrent writes; see the module docs).
        over_bound: bool,
    },
    /// The key's context already covered the write's dot, so it adds no sibling: it was delivered
    /// twice, or a client who had read it elsewhere superseded it before it arrived here.
    AlreadyCovered {
        /// Siblings its context still removed, in dot order (empty unless a peer misbehaved).
        replaced: Vec<Dot>,
    },
}

/// What merging a key's state from elsewhere did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct MergeOutcome {
    /// Siblings the other state added, in dot order.
    pub added: Vec<Dot>,
    /// Siblings the other state's context removed, in dot order.
    pub removed: Vec<Dot>,
    /// Whether the key now has more live siblings than the store's bound.
    pub over_bound: bool,
}

impl MergeOutcome {
    /// Whether the merge changed the key's siblings.
    #[must_use]
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

/// A read: the live siblings and the context to write back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiblingRead {
    /// The live siblings in dot order (origin, then sequence number): the same at every replica.
    pub siblings: Vec<(Dot, Value)>,
    /// The writes the reader has now seen; pass it to the next write to replace these siblings.
    pub context: CausalContext,
}

impl SiblingRead {
    /// The values alone, in the siblings' order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.siblings.iter().map(|(_, v)| v)
    }
}

/// One key's dotted version vector set: its live siblings and its context.
///
/// **Invariant:** every sibling's dot is covered by the context (restored when decoding).
///
/// **Representation** (issue 11: a key with one sibling cost 1.6 KB, then 740 B, of metadata). A
/// single sibling is held inline, several in one vector sorted by dot (not a `BTreeMap`, whose
/// first node alone is 11 slots). The context is stored only when it names more than the
/// siblings' own dots do (their closure: per origin, the highest sibling's sequence number) — a
/// key written blindly, or by concurrent blind writes, has exactly that context, and stores
/// none. Both forms are canonical, so structural equality is equality of the state; the serde
/// form is the one the map and vector it replaced had (`{ siblings: BTreeMap<Dot, Value>,
/// context: VersionVector }`), byte for byte.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "RawKeyState")]
pub struct KeyState {
    siblings: Siblings,
    /// The key's context when it differs from the siblings' closure; `None` when it is that.
    context: Option<Box<VersionVector>>,
}

/// The live siblings of a key, in dot order, without duplicate dots. Canonical: `One` holds
/// exactly one sibling, `Many` none or at least two (and no spare allocation when empty). `One`
/// keeps the dot's fields apart so that the enum's tag fits beside the leader id (40 bytes, not
/// the 48 of a `(Dot, Value)` and a tag).
#[derive(Clone, PartialEq, Eq)]
enum Siblings {
    One { origin: LeaderId, seq: Seq, value: Value },
    Many(Vec<(Dot, Value)>),
}

impl Default for Siblings {
    fn default() -> Self {
        Siblings::Many(Vec::new())
    }
}

impl Siblings {
    fn one(dot: Dot, value: Value) -> Self {
        Siblings::One { origin: dot.origin, seq: dot.seq, value }
    }

    /// The siblings in dot order.
    fn iter(&self) -> impl Iterator<Item = (Dot, &Value)> + '_ {
        let (one, many) = match self {
            Siblings::One { origin, seq, value } => (Some((Dot::new(*origin, *seq), value)), &[][..]),
            Siblings::Many(pairs) => (None, pairs.as_slice()),
        };
        one.into_iter().chain(many.iter().map(|(d, v)| (*d, v)))
    }

    fn len(&self) -> usize {
        match self {
            Siblings::One { .. } => 1,
            Siblings::Many(pairs) => pairs.len(),
        }
    }

    fn get_mut(&mut self, dot: Dot) -> Option<&mut Value> {
        match self {
            Siblings::One { origin, seq, value } => (Dot::new(*origin, *seq) == dot).then_some(value),
            Siblings::Many(pairs) => {
                let i = pairs.binary_search_by_key(&dot, |(d, _)| *d).ok()?;
                pairs.get_mut(i).map(|(_, v)| v)
            }
        }
    }

    fn contains(&self, dot: Dot) -> bool {
        match self {
            Siblings::One { origin, seq, .. } => Dot::new(*origin, *seq) == dot,
            Siblings::Many(pairs) => pairs.binary_search_by_key(&dot, |(d, _)| *d).is_ok(),
        }
    }

    /// Keeps the siblings whose dot `keep` accepts.
    fn retain(&mut self, mut keep: impl FnMut(Dot) -> bool) {
        match self {
            Siblings::One { origin, seq, .. } => {
                if !keep(Dot::new(*origin, *seq)) {
                    *self = Siblings::default();
                }
            }
            Siblings::Many(pairs) => {
                pairs.retain(|(d, _)| keep(*d));
                match pairs.len() {
                    0 => *self = Siblings::default(),
                    1 => {
                        if let Some((dot, value)) = pairs.pop() {
                            *self = Siblings::one(dot, value);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Adds a sibling whose dot is not among them (the caller checked the context).
    fn insert(&mut self, dot: Dot, value: Value) {
        debug_assert!(!self.contains(dot), "{dot} inserted twice");
        let mut pairs = match core::mem::take(self) {
            Siblings::One { origin, seq, value } => alloc::vec![(Dot::new(origin, seq), value)],
            Siblings::Many(pairs) => pairs,
        };
        if pairs.is_empty() {
            *self = Siblings::one(dot, value);
            return;
        }
        let at = pairs.partition_point(|(d, _)| *d < dot);
        pairs.insert(at, (dot, value));
        *self = Siblings::Many(pairs);
    }
}

/// Serializes as the `BTreeMap<Dot, Value>` it replaced (a map in dot order).
struct SiblingsAsMap<'a>(&'a Siblings);

impl Serialize for SiblingsAsMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter())
    }
}

/// The struct a derived `Serialize` of `{ siblings: BTreeMap<Dot, Value>, context:
/// VersionVector }` writes: same names, same bytes.
impl Serialize for KeyState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = serializer.serialize_struct("KeyState", 2)?;
        state.serialize_field("siblings", &SiblingsAsMap(&self.siblings))?;
        state.serialize_field("context", &self.full_context())?;
        state.end()
    }
}

/// The decoded form of [`KeyState`], normalized into one on the way in.
#[derive(Deserialize)]
#[serde(rename = "KeyState")]
struct RawKeyState {
    siblings: BTreeMap<Dot, Value>,
    context: VersionVector,
}

impl From<RawKeyState> for KeyState {
    fn from(raw: RawKeyState) -> Self {
        let mut context = raw.context;
        for dot in raw.siblings.keys() {
            raise_to(&mut context, *dot);
        }
        let mut pairs: Vec<(Dot, Value)> = raw.siblings.into_iter().collect();
        let siblings = match pairs.len() {
            0 => Siblings::default(),
            1 => pairs.pop().map_or_else(Siblings::default, |(dot, value)| Siblings::one(dot, value)),
            _ => Siblings::Many(pairs),
        };
        let mut state = KeyState { siblings, context: None };
        state.set_context(context);
        state
    }
}

/// Makes `vv` cover `dot` (and, being a version vector, every earlier dot of its origin).
fn raise_to(vv: &mut VersionVector, dot: Dot) {
    if !vv.contains(dot) {
        vv.set(dot.origin, dot.seq);
    }
}

/// Of two values claiming the same dot (never, from well-behaved peers), the one both sides keep:
/// the bytewise smaller, so that the join stays commutative.
fn pick(a: &Value, b: &Value) -> Value {
    if a.as_bytes() <= b.as_bytes() {
        a.clone()
    } else {
        b.clone()
    }
}

impl KeyState {
    /// A key that has seen nothing.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The live siblings in dot order.
    pub fn siblings(&self) -> impl Iterator<Item = (Dot, &Value)> {
        self.siblings.iter()
    }

    /// The number of live siblings.
    #[must_use]
    pub fn len(&self) -> usize {
        self.siblings.len()
    }

    /// Whether the key has no live value (never written, or deleted).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.siblings.len() == 0
    }

    /// The key's context: every write it has seen or that a client superseded.
    #[must_use]
    pub fn context(&self) -> CausalContext {
        CausalContext(self.full_context())
    }

    /// The siblings' closure: the least version vector covering every sibling's dot.
    fn closure(&self) -> VersionVector {
        let mut vv = VersionVector::new();
        for (dot, _) in self.siblings.iter() {
            raise_to(&mut vv, dot);
        }
        vv
    }

    /// The key's context as a version vector.
    fn full_context(&self) -> VersionVector {
        match &self.context {
            Some(context) => VersionVector::clone(context),
            None => self.closure(),
        }
    }

    /// Sets the key's context (which covers every sibling), in canonical form.
    fn set_context(&mut self, context: VersionVector) {
        debug_assert!(self.siblings.iter().all(|(d, _)| context.contains(d)), "the invariant");
        self.context = if context == self.closure() { None } else { Some(Box::new(context)) };
    }

    /// How many live siblings would remain after a write with `context`, before adding the
    /// write's own.
    fn surviving(&self, context: &CausalContext) -> usize {
        self.siblings().filter(|(d, _)| !context.covers(*d)).count()
    }

    /// Applies one write (see the module docs). `over_bound` is left false; the store sets it.
    fn apply(&mut self, dot: Dot, context: &CausalContext, value: Option<Value>) -> SiblingOutcome {
        let mut full = self.full_context();
        let replaced: Vec<Dot> = self.siblings().map(|(d, _)| d).filter(|d| *d != dot && context.covers(*d)).collect();
        if !replaced.is_empty() {
            self.siblings.retain(|d| d == dot || !context.covers(d));
        }
        let already = full.contains(dot);
        if !already {
            if let Some(v) = value {
                // Not a sibling already: every sibling is covered by the context, and `dot` is not.
                self.siblings.insert(dot, v);
            }
        } else if let (Some(existing), Some(v)) = (self.siblings.get_mut(dot), value.as_ref()) {
            // The same dot twice with different values only comes from a misbehaving peer; keep
            // the value a state merge would keep.
            *existing = pick(existing, v);
        }
        full.merge(context.version_vector());
        raise_to(&mut full, dot);
        self.set_context(full);
        if already {
            return SiblingOutcome::AlreadyCovered { replaced };
        }
        let concurrent: Vec<Dot> = self.siblings().map(|(d, _)| d).filter(|d| *d != dot).collect();
        if concurrent.is_empty() {
            SiblingOutcome::Superseded { replaced }
        } else {
            SiblingOutcome::Concurrent { replaced, concurrent, over_bound: false }
        }
    }

    /// Joins `other` into this state: a sibling survives if both hold it or the other side's
    /// context does not cover it; contexts join. Commutative, associative and idempotent.
    /// `over_bound` is left false; the store sets it.
    pub fn join(&mut self, other: &KeyState) -> MergeOutcome {
        let theirs = other.full_context();
        let mut mine = self.full_context();
        let removed: Vec<Dot> =
            self.siblings().map(|(d, _)| d).filter(|d| !other.siblings.contains(*d) && theirs.contains(*d)).collect();
        if !removed.is_empty() {
            self.siblings.retain(|d| other.siblings.contains(d) || !theirs.contains(d));
        }
        let mut added = Vec::new();
        for (dot, value) in other.siblings() {
            match self.siblings.get_mut(dot) {
                Some(existing) => *existing = pick(existing, value),
                None if !mine.contains(dot) => {
                    self.siblings.insert(dot, value.clone());
                    added.push(dot);
                }
                None => {}
            }
        }
        mine.merge(&theirs);
        self.set_context(mine);
        MergeOutcome { added, removed, over_bound: false }
    }
}

impl fmt::Debug for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (dot, value)) in self.siblings().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{dot}={value}")?;
        }
        write!(f, "}} ctx{}", self.full_context())
    }
}

/// A store's whole contents, for comparing replicas: per key in key order, its live siblings in
/// dot order and its context.
pub type Fingerprint = Vec<(Key, Vec<(Dot, Value)>, VersionVector)>;

/// A store of keys with siblings, one [`KeyState`] per key, in key order.
///
/// Call order for a client's write at its leader: [`check_write`](Self::check_write) (refuse or
/// admit), then give the write its dot in the replication log, then [`apply`](Self::apply). Writes
/// from other leaders go straight to [`apply`](Self::apply), in causal order; snapshots and
/// anti-entropy use [`merge_key`](Self::merge_key).
///
/// ```
/// use roundtable_runtime::causality::{Dot, Seq};
/// use roundtable_runtime::siblings::{CausalContext, SiblingStore};
/// use roundtable_runtime::{Key, LeaderId, Value};
/// let (a, b) = (LeaderId::new(0).unwrap(), LeaderId::new(1).unwrap());
/// let key = Key::new("cart").unwrap();
/// let mut store = SiblingStore::default();
/// // Two leaders write the key blindly, concurrently: both values are kept.
/// let _ = store.apply(&key, Dot::new(a, Seq(1)), &CausalContext::empty(), Some(Value::try_from("milk").unwrap()));
/// let _ = store.apply(&key, Dot::new(b, Seq(1)), &CausalContext::empty(), Some(Value::try_from("eggs").unwrap()));
/// let read = store.read(&key).unwrap();
/// assert_eq!(read.siblings.len(), 2);
/// // A client writes the merge with the context it read: one value again.
/// let merged = Some(Value::try_from("milk, eggs").unwrap());
/// store.check_write(&key, &read.context, merged.as_ref()).unwrap();
/// let _ = store.apply(&key, Dot::new(a, Seq(2)), &read.context, merged);
/// assert_eq!(store.read(&key).unwrap().values().count(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiblingStore {
    keys: BTreeMap<Key, KeyState>,
    max_siblings: usize,
}

impl Default for SiblingStore {
    /// An empty store bounded by [`MAX_SIBLINGS`].
    fn default() -> Self {
        SiblingStore::new(MAX_SIBLINGS)
    }
}

impl SiblingStore {
    /// An empty store admitting at most `max_siblings` live siblings per key (at least 1: a put
    /// always leaves its own value).
    #[must_use]
    pub fn new(max_siblings: usize) -> Self {
        SiblingStore { keys: BTreeMap::new(), max_siblings: max_siblings.max(1) }
    }

    /// The bound on live siblings per key after an admitted write.
    #[must_use]
    pub fn max_siblings(&self) -> usize {
        self.max_siblings
    }

    /// Admission of a client's write at its leader, before it gets a dot or is acknowledged:
    /// refuses a put that would leave its key with more than [`max_siblings`](Self::max_siblings)
    /// live siblings. A delete (`value` `None`) is always admitted.
    pub fn check_write(&self, key: &Key, context: &CausalContext, value: Option<&Value>) -> Result<(), SiblingError> {
        if value.is_none() {
            return Ok(());
        }
        let surviving = self.keys.get(key).map_or(0, |state| state.surviving(context));
        let siblings = surviving.saturating_add(1);
        if siblings > self.max_siblings {
            return Err(SiblingError::TooManySiblings { key: key.clone(), siblings, max: self.max_siblings });
        }
        Ok(())
    }

    /// Applies one write — a put (`Some(value)`) or a delete (`None`) — with the dot the
    /// replication log gave it and the context its client read. Local writes come here after
    /// [`check_write`](Self::check_write) admitted them; replicated writes come here in causal
    /// order and are never refused.
    pub fn apply(&mut self, key: &Key, dot: Dot, context: &CausalContext, value: Option<Value>) -> SiblingOutcome {
        let max = self.max_siblings;
        let state = self.keys.entry(key.clone()).or_default();
        let mut outcome = state.apply(dot, context, value);
        if let SiblingOutcome::Concurrent { over_bound, .. } = &mut outcome {
            *over_bound = state.len() > max;
        }
        outcome
    }

    /// The live siblings of `key` and the context to write back with; `None` when the key has no
    /// live value (never written, or deleted).
    #[must_use]
    pub fn read(&self, key: &Key) -> Option<SiblingRead> {
        let state = self.keys.get(key).filter(|s| !s.is_empty())?;
        Some(SiblingRead {
            siblings: state.siblings().map(|(d, v)| (d, v.clone())).collect(),
            context: state.context(),
        })
    }

    /// The context of `key`, even when it has no live value (empty for a key never seen).
    #[must_use]
    pub fn context(&self, key: &Key) -> CausalContext {
        self.keys.get(key).map(KeyState::context).unwrap_or_default()
    }

    /// The state of `key`, if it has ever been written or merged.
    #[must_use]
    pub fn key_state(&self, key: &Key) -> Option<&KeyState> {
        self.keys.get(key)
    }

    /// Joins a key's state from a snapshot or an anti-entropy peer into this store. Never refused:
    /// a merge that leaves the key over the bound says so in the outcome.
    pub fn merge_key(&mut self, key: &Key, other: &KeyState) -> MergeOutcome {
        let max = self.max_siblings;
        let state = self.keys.entry(key.clone()).or_default();
        let mut outcome = state.join(other);
        outcome.over_bound = state.len() > max;
        outcome
    }

    /// Joins every key of `other` into this store; returns the outcome for each key whose siblings
    /// changed, in key order.
    pub fn merge(&mut self, other: &SiblingStore) -> Vec<(Key, MergeOutcome)> {
        other
            .keys
            .iter()
            .filter_map(|(key, state)| {
                let outcome = self.merge_key(key, state);
                outcome.changed().then(|| (key.clone(), outcome))
            })
            .collect()
    }

    /// Every key's state in key order, deleted keys included (for snapshots).
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &KeyState)> {
        self.keys.iter()
    }

    /// The number of keys with a state, deleted keys included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key has a state.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A digest of the store's contents that ignores nothing but the bound: used by tests and the
    /// simulator to compare replicas.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.keys
            .iter()
            .map(|(k, s)| (k.clone(), s.siblings().map(|(d, v)| (d, v.clone())).collect(), s.full_context()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(origin: usize, seq: u64) -> Dot {
        Dot::new(LeaderId::new(origin).expect("in range"), Seq(seq))
    }

    fn key() -> Key {
        Key::new("k").expect("valid key")
    }

    fn value(s: &str) -> Option<Value> {
        Some(Value::try_from(s).expect("small value"))
    }

    #[test]
    fn a_blind_write_keeps_its_own_leaders_earlier_sibling() {
        let mut store = SiblingStore::default();
        let empty = CausalContext::empty();
        let _ = store.apply(&key(), dot(0, 1), &empty, value("a"));
        let outcome = store.apply(&key(), dot(0, 2), &empty, value("b"));
        assert_eq!(
            outcome,
            SiblingOutcome::Concurrent { replaced: vec![], concurrent: vec![dot(0, 1)], over_bound: false }
        );
        assert_eq!(store.read(&key()).map(|r| r.siblings.len()), Some(2));
    }

    #[test]
    fn delete_replaces_what_it_saw_and_hides_the_key() {
        let mut store = SiblingStore::default();
        let _ = store.apply(&key(), dot(0, 1), &CausalContext::empty(), value("a"));
        let context = store.context(&key());
        let outcome = store.apply(&key(), dot(1, 1), &context, None);
        assert_eq!(outcome, SiblingOutcome::Superseded { replaced: vec![dot(0, 1)] });
        assert_eq!(store.read(&key()), None);
        assert!(store.context(&key()).covers(dot(1, 1)));
    }

    #[test]
    fn duplicate_delivery_is_reported_and_changes_nothing() {
        let mut store = SiblingStore::default();
        let _ = store.apply(&key(), dot(0, 1), &CausalContext::empty(), value("a"));
        let before = store.fingerprint();
        let outcome = store.apply(&key(), dot(0, 1), &CausalContext::empty(), value("a"));
        assert_eq!(outcome, SiblingOutcome::AlreadyCovered { replaced: vec![] });
        assert_eq!(store.fingerprint(), before);
    }

    #[test]
    fn admission_refuses_a_put_over_the_bound_but_not_a_resolution_or_delete() {
        let mut store = SiblingStore::new(2);
        let empty = CausalContext::empty();
        let _ = store.apply(&key(), dot(0, 1), &empty, value("a"));
        let _ = store.apply(&key(), dot(1, 1), &empty, value("b"));
        let refused = store.check_write(&key(), &empty, value("c").as_ref());
        assert_eq!(refused, Err(SiblingError::TooManySiblings { key: key(), siblings: 3, max: 2 }));
        assert_eq!(store.check_write(&key(), &empty, None), Ok(()));
        assert_eq!(store.check_write(&key(), &store.context(&key()), value("c").as_ref()), Ok(()));
    }

    /// The serde shape the compact representation replaced.
    #[derive(Serialize)]
    #[serde(rename = "KeyState")]
    struct OldKeyState {
        siblings: BTreeMap<Dot, Value>,
        context: VersionVector,
    }

    #[test]
    fn compact_state_encodes_as_the_map_and_vector_it_replaced() {
        let mut store = SiblingStore::default();
        let empty = CausalContext::empty();
        let k = key();
        let mut states = Vec::new();
        let mut record = |store: &SiblingStore| states.push(store.key_state(&k).cloned().expect("written"));
        let _ = store.apply(&k, dot(2, 1), &empty, value("a"));
        record(&store);
        let _ = store.apply(&k, dot(0, 1), &empty, value("b"));
        let _ = store.apply(&k, dot(1, 4), &empty, value("c"));
        record(&store);
        let context = store.context(&k);
        let _ = store.apply(&k, dot(1, 5), &context, value("d"));
        record(&store);
        let _ = store.apply(&k, dot(0, 2), &store.context(&k), None);
        record(&store);
        for state in states {
            let old = OldKeyState {
                siblings: state.siblings().map(|(d, v)| (d, v.clone())).collect(),
                context: state.context().version_vector().clone(),
            };
            let bytes = postcard::to_allocvec(&state).expect("encodes");
            assert_eq!(bytes, postcard::to_allocvec(&old).expect("encodes"), "{state:?}");
            let decoded: KeyState = postcard::from_bytes(&bytes).expect("decodes");
            assert_eq!(decoded, state);
        }
        // A resolved key keeps a context wider than its one sibling; a deleted key, one without.
        assert!(store.context(&k).covers(dot(2, 1)));
        assert_eq!(store.read(&k), None);
    }

    #[test]
    fn a_key_state_is_small() {
        // A `Value` and a dot inline, and a pointer to a context that differs from the closure.
        assert!(core::mem::size_of::<KeyState>() <= 48, "{}", core::mem::size_of::<KeyState>());
    }

    #[test]
    fn decoding_restores_the_invariant() {
        let mut siblings = BTreeMap::new();
        siblings.insert(dot(2, 5), Value::try_from("x").expect("small"));
        let raw = RawKeyState { siblings, context: VersionVector::new() };
        let state = KeyState::from(raw);
        assert!(state.context().covers(dot(2, 5)));
        let bytes = postcard::to_allocvec(&state).expect("encodes");
        let decoded: KeyState = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(decoded, state);
        assert!(postcard::from_bytes::<KeyState>(&[0xff, 0xff, 0xff]).is_err());
    }
}
