//! Registers: the last-writer-wins [`LwwRegister`] and the multi-value [`MvRegister`].
//!
//! **LWW register** (Shapiro, Preguiça, Baquero and Zawirski, "A comprehensive study of Convergent
//! and Commutative Replicated Data Types", 2011, "Last-Writer-Wins Register"): the state is one
//! value and the timestamp of the write that produced it; the join keeps the write with the
//! greater timestamp. Timestamps are [`HlcTimestamp`]s stamped by the writing leader's hybrid
//! logical clock, whose total order (physical part, logical counter, leader id) already breaks
//! ties between leaders. A concurrent write with a smaller timestamp is lost — that is the
//! contract of LWW. Two different writes with *equal* timestamps cannot come from a healthy
//! cluster (one leader never issues a timestamp twice); should they meet anyway, the greater value
//! wins, so the join stays commutative.
//!
//! **MV register** (same report, "Multi-Value Register", in the dotted form of Almeida, Shoker
//! and Baquero, "Delta state replicated data types", 2018): every write gets a fresh dot and
//! replaces the values whose dots the writer has seen; concurrent writes are all kept, as
//! siblings, until a write that saw them replaces them. The state is a dot function (dot → value)
//! plus a [`CausalContext`]; the join keeps a value if both sides hold it or if one side holds
//! it and the other has not seen its dot. A write's delta is the register's whole new state: its
//! context is everything the writer had seen, so the write replaces every write in its causal
//! past wherever it arrives, even where the delta of an intermediate write was lost (a void
//! entry; with a delta naming only the replaced dots, write, write, write with the second lost
//! brought the first back as a sibling — issue 16). The register is one slot, so that delta is
//! small: the value (and the siblings a contextual write kept) and a version vector.
//!
//! **Bounds.** [`MvRegister::write`] replaces everything present, so the siblings are at most one
//! per leader writing concurrently ([`MAX_LEADERS`](crate::MAX_LEADERS)).
//! [`MvRegister::write_with_context`] replaces only what the given context saw; a client that
//! writes repeatedly with a stale context adds a sibling each time (a stale context yields a new
//! sibling, never a lost write), so such clients must read before they write.

use alloc::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::context::{join_dot_funs, CausalContext};
use super::StateCrdt;
use crate::causality::Dot;
use crate::clock::HlcTimestamp;
use crate::LeaderId;

/// A last-writer-wins register over hybrid-logical-clock timestamps.
///
/// ```
/// use roundtable_runtime::clock::HlcTimestamp;
/// use roundtable_runtime::crdt::{LwwRegister, StateCrdt};
/// use roundtable_runtime::LeaderId;
/// let (a, b) = (LeaderId::new(0).unwrap(), LeaderId::new(1).unwrap());
/// let (mut x, mut y) = (LwwRegister::new(), LwwRegister::new());
/// x.set(HlcTimestamp::new(100, 0, a).unwrap(), "Ada");
/// y.set(HlcTimestamp::new(100, 0, b).unwrap(), "Grace"); // same time: the leader id breaks the tie
/// x.merge(&y);
/// assert_eq!(x.get(), Some(&"Grace"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LwwRegister<T> {
    /// The winning write so far, if any.
    current: Option<(HlcTimestamp, T)>,
}

impl<T> Default for LwwRegister<T> {
    fn default() -> Self {
        LwwRegister { current: None }
    }
}

impl<T: Ord + Clone> LwwRegister<T> {
    /// The empty register (never written).
    #[must_use]
    pub fn new() -> Self {
        LwwRegister::default()
    }

    /// The delta [`LwwRegister::set`] would return, without changing the register: the write
    /// alone.
    #[must_use]
    pub fn delta_of_set(&self, timestamp: HlcTimestamp, value: T) -> LwwRegister<T> {
        LwwRegister { current: Some((timestamp, value)) }
    }

    /// Writes `value` stamped `timestamp` (from the writing leader's clock) and returns the delta:
    /// the write alone. If the register already holds a later write, this one loses here and
    /// everywhere; see [`wins`](Self::wins).
    pub fn set(&mut self, timestamp: HlcTimestamp, value: T) -> LwwRegister<T> {
        let delta = LwwRegister { current: Some((timestamp, value)) };
        self.merge(&delta);
        delta
    }

    /// Whether a write stamped `timestamp` would replace the current value.
    #[must_use]
    pub fn wins(&self, timestamp: HlcTimestamp) -> bool {
        self.current.as_ref().is_none_or(|(current, _)| timestamp > *current)
    }

    /// The current value, if the register was ever written.
    #[must_use]
    pub fn get(&self) -> Option<&T> {
        self.current.as_ref().map(|(_, value)| value)
    }

    /// The current value (same as [`get`](Self::get)).
    #[must_use]
    pub fn value(&self) -> Option<&T> {
        self.get()
    }

    /// The timestamp of the current value.
    #[must_use]
    pub fn timestamp(&self) -> Option<HlcTimestamp> {
        self.current.as_ref().map(|(timestamp, _)| *timestamp)
    }
}

impl<T: Ord + Clone> StateCrdt for LwwRegister<T> {
    fn merge(&mut self, other: &Self) {
        let Some((theirs, their_value)) = &other.current else { return };
        let replace = match &self.current {
            None => true,
            Some((mine, my_value)) => (theirs, their_value) > (mine, my_value),
        };
        if replace {
            self.current = Some((*theirs, their_value.clone()));
        }
    }
}

/// A multi-value register: concurrent writes are all kept; a write replaces what it saw.
///
/// ```
/// use roundtable_runtime::crdt::{MvRegister, StateCrdt};
/// use roundtable_runtime::LeaderId;
/// let (a, b) = (LeaderId::new(0).unwrap(), LeaderId::new(1).unwrap());
/// let (mut x, mut y) = (MvRegister::new(), MvRegister::new());
/// x.write(a, "blue");
/// y.write(b, "green");
/// x.merge(&y);
/// assert_eq!(x.values().collect::<Vec<_>>(), [&"blue", &"green"]); // siblings
/// x.write(a, "teal"); // saw both: replaces both
/// assert_eq!(x.values().collect::<Vec<_>>(), [&"teal"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
#[serde(from = "RawMvRegister<T>")]
pub struct MvRegister<T> {
    /// The present values, by the dot of the write that produced each.
    values: BTreeMap<Dot, T>,
    /// Every dot seen; covers every dot in `values`.
    context: CausalContext,
}

/// The decoded shape of an [`MvRegister`], made canonical on the way in.
#[derive(Deserialize)]
#[serde(rename = "MvRegister")]
struct RawMvRegister<T> {
    values: BTreeMap<Dot, T>,
    context: CausalContext,
}

impl<T> From<RawMvRegister<T>> for MvRegister<T> {
    fn from(raw: RawMvRegister<T>) -> Self {
        let RawMvRegister { values, mut context } = raw;
        for dot in values.keys() {
            context.insert(*dot);
        }
        MvRegister { values, context }
    }
}

impl<T> Default for MvRegister<T> {
    fn default() -> Self {
        MvRegister { values: BTreeMap::new(), context: CausalContext::new() }
    }
}

impl<T: Ord + Clone> MvRegister<T> {
    /// The empty register (never written).
    #[must_use]
    pub fn new() -> Self {
        MvRegister::default()
    }

    /// `leader` writes `value`, replacing every value present here, and returns the delta.
    pub fn write(&mut self, leader: LeaderId, value: T) -> MvRegister<T> {
        self.values.clear();
        self.put(leader, value)
    }

    /// `leader` writes `value`, replacing the values present here whose dots `seen` names (a
    /// context from [`read_context`](Self::read_context), possibly at another replica), and returns
    /// the delta. Values `seen` does not name stay, as siblings of the new one; dots in `seen`
    /// that have not arrived here are not claimed, so a write the reader never saw is never lost.
    pub fn write_with_context(&mut self, leader: LeaderId, value: T, seen: &CausalContext) -> MvRegister<T> {
        self.values.retain(|&dot, _| !seen.contains(dot));
        self.put(leader, value)
    }

    /// Adds `value` under a fresh dot of `leader` (the values it replaces are already gone) and
    /// returns the delta: the register's whole new state. Its context is everything this
    /// replica has seen, so the write replaces, wherever it arrives, every write in its causal
    /// past — also one whose own delta, or the delta of the write that replaced it, was lost
    /// (a void entry). A delta naming only the replaced dots would let such a write come back
    /// as a sibling. The register is one slot, so its whole state is the smallest delta that
    /// does this: the new value, the siblings a contextual write kept, and a version vector.
    fn put(&mut self, leader: LeaderId, value: T) -> MvRegister<T> {
        let dot = self.context.next_dot(leader);
        self.context.insert(dot);
        self.values.insert(dot, value);
        self.clone()
    }

    /// The present values (one, or several concurrent siblings), in the order of their dots.
    pub fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.values.values()
    }

    /// The present values with the dots of the writes that produced them.
    pub fn entries(&self) -> impl Iterator<Item = (Dot, &T)> + '_ {
        self.values.iter().map(|(&dot, value)| (dot, value))
    }

    /// The causal context of a read: the dots of the present values. Pass it to
    /// [`write_with_context`](Self::write_with_context) to replace exactly what was read.
    #[must_use]
    pub fn read_context(&self) -> CausalContext {
        CausalContext::from_dots(self.values.keys())
    }

    /// The number of present values (more than one means concurrent writes).
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the register was never written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every dot this replica has seen.
    #[must_use]
    pub fn context(&self) -> &CausalContext {
        &self.context
    }
}

impl<T: Ord + Clone> StateCrdt for MvRegister<T> {
    fn merge(&mut self, other: &Self) {
        join_dot_funs(&mut self.values, &self.context, &other.values, &other.context);
        self.context.merge(&other.context);
    }

    fn dot_cloud_len(&self) -> usize {
        self.context.cloud_len()
    }
}
