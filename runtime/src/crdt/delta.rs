//! Shipping deltas, with a fall-back to the full state: [`DeltaBuffer`].
//!
//! This is the delta-interval anti-entropy of Almeida, Shoker and Baquero, "Delta state
//! replicated data types" (JPDC 2018, Algorithm 2), for one object at one replica. The replica
//! numbers every delta that changed its state — the deltas of its own mutations and whatever it
//! merged from peers that inflated its state (so that deltas travel on, transitively) — and keeps
//! the most recent ones. A peer acknowledges the sequence number up to which it has received
//! (everything below it). To bring the peer up to date, the replica ships the join of the deltas
//! the peer lacks (a *delta-group*) or, when some of them were already dropped from the buffer,
//! its full state. Either way the peer merges what it gets with [`StateCrdt::merge`] and
//! acknowledges [`Shipment::upto`]. Deltas are idempotent, so a lost or duplicated shipment
//! costs bandwidth, never correctness: the replica re-ships from the last acknowledgement.
//!
//! **Bound:** the buffer holds at most its capacity of deltas ([`DEFAULT_DELTA_BUFFER_CAPACITY`]
//! unless configured); pushing beyond drops the oldest, and a peer that had not acknowledged it
//! gets the full state next time — the observable fall-back, never silent loss.
//!
//! Sequence numbers are local to one buffer. After a restart, a replica starts a new buffer at
//! 0; a peer acknowledgement from before (beyond the new buffer's end) gets the full state.

use alloc::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::StateCrdt;

/// Deltas a [`DeltaBuffer`] keeps unless configured otherwise.
pub const DEFAULT_DELTA_BUFFER_CAPACITY: usize = 64;

/// A position in a [`DeltaBuffer`]: acknowledging `n` means "I have every delta numbered below
/// `n`".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeltaSeq(pub u64);

/// What to send a peer to bring it up to date; merge it, then acknowledge [`upto`](Self::upto).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[must_use]
pub enum Shipment<C> {
    /// The peer has everything; nothing to send.
    UpToDate,
    /// The join of the deltas the peer lacks.
    Deltas {
        /// The delta-group.
        group: C,
        /// The acknowledgement that receiving it earns.
        upto: DeltaSeq,
    },
    /// The full state: the deltas the peer lacks are no longer buffered.
    FullState {
        /// The replica's state.
        state: C,
        /// The acknowledgement that receiving it earns.
        upto: DeltaSeq,
    },
}

impl<C> Shipment<C> {
    /// What to merge, if anything.
    #[must_use]
    pub fn payload(&self) -> Option<&C> {
        match self {
            Shipment::UpToDate => None,
            Shipment::Deltas { group, .. } => Some(group),
            Shipment::FullState { state, .. } => Some(state),
        }
    }

    /// The acknowledgement that receiving this shipment earns (`None` when up to date).
    #[must_use]
    pub fn upto(&self) -> Option<DeltaSeq> {
        match self {
            Shipment::UpToDate => None,
            Shipment::Deltas { upto, .. } | Shipment::FullState { upto, .. } => Some(*upto),
        }
    }
}

/// The recent deltas of one object at one replica, numbered, in a bounded buffer.
///
/// ```
/// use roundtable_runtime::crdt::{DeltaBuffer, DeltaSeq, GCounter, Shipment, StateCrdt};
/// use roundtable_runtime::LeaderId;
/// let a = LeaderId::new(0).unwrap();
/// let (mut mine, mut buffer) = (GCounter::new(), DeltaBuffer::new(2));
/// for _ in 0..3 {
///     buffer.push(mine.increment(a, 1));
/// }
/// // A peer that has deltas 0 and 1 gets delta 2; a new peer gets the full state.
/// assert!(matches!(buffer.ship(&mine, DeltaSeq(2)), Shipment::Deltas { upto: DeltaSeq(3), .. }));
/// assert!(matches!(buffer.ship(&mine, DeltaSeq(0)), Shipment::FullState { .. }));
/// assert_eq!(buffer.ship(&mine, DeltaSeq(3)), Shipment::UpToDate);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaBuffer<C> {
    /// The buffered deltas; `deltas[i]` is numbered `first + i`.
    deltas: VecDeque<C>,
    /// The number of the oldest buffered delta.
    first: DeltaSeq,
    /// The most deltas kept.
    capacity: usize,
}

impl<C> Default for DeltaBuffer<C> {
    fn default() -> Self {
        DeltaBuffer::new(DEFAULT_DELTA_BUFFER_CAPACITY)
    }
}

impl<C> DeltaBuffer<C> {
    /// An empty buffer keeping at most `capacity` deltas (0: always ship the full state).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        DeltaBuffer { deltas: VecDeque::new(), first: DeltaSeq(0), capacity }
    }

    /// Buffers `delta` (a local mutation's delta, or something merged from a peer that changed
    /// the state) and returns its number. When full, the oldest delta is dropped first.
    pub fn push(&mut self, delta: C) -> DeltaSeq {
        let seq = self.next_seq();
        if self.capacity == 0 {
            self.first = DeltaSeq(seq.0.saturating_add(1));
            return seq;
        }
        while self.deltas.len() >= self.capacity {
            self.deltas.pop_front();
            self.first = DeltaSeq(self.first.0.saturating_add(1));
        }
        self.deltas.push_back(delta);
        debug_assert!(self.deltas.len() <= self.capacity);
        seq
    }

    /// The number the next delta will get; a peer that acknowledged it is up to date.
    #[must_use]
    pub fn next_seq(&self) -> DeltaSeq {
        DeltaSeq(self.first.0.saturating_add(self.deltas.len() as u64))
    }

    /// The number of the oldest delta still buffered (equal to [`next_seq`](Self::next_seq)
    /// when empty).
    #[must_use]
    pub fn first_seq(&self) -> DeltaSeq {
        self.first
    }

    /// Drops the deltas every peer has acknowledged (`acknowledged_by_all` is the smallest
    /// acknowledgement among the peers).
    pub fn forget_acknowledged(&mut self, acknowledged_by_all: DeltaSeq) {
        while self.first < acknowledged_by_all && !self.deltas.is_empty() {
            self.deltas.pop_front();
            self.first = DeltaSeq(self.first.0.saturating_add(1));
        }
    }

    /// The number of buffered deltas.
    #[must_use]
    pub fn len(&self) -> usize {
        self.deltas.len()
    }

    /// Whether no delta is buffered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }

    /// The most deltas kept.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl<C: StateCrdt> DeltaBuffer<C> {
    /// What to send a peer that acknowledged `acknowledged`, given this replica's `state`: nothing
    /// if it is up to date, the join of the deltas it lacks if they are all buffered, else the
    /// full state. An acknowledgement beyond [`next_seq`](Self::next_seq) (from before a restart)
    /// gets the full state.
    pub fn ship(&self, state: &C, acknowledged: DeltaSeq) -> Shipment<C> {
        let upto = self.next_seq();
        if acknowledged == upto {
            return Shipment::UpToDate;
        }
        if acknowledged < self.first || acknowledged > upto {
            return Shipment::FullState { state: state.clone(), upto };
        }
        // first <= acknowledged < upto, so the offset is below deltas.len().
        let skip = usize::try_from(acknowledged.0 - self.first.0).unwrap_or(usize::MAX);
        let mut group = C::default();
        for delta in self.deltas.iter().skip(skip) {
            group.merge(delta);
        }
        Shipment::Deltas { group, upto }
    }
}
