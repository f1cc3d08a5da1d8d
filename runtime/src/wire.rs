//! The wire format between leaders: serde types encoded with postcard inside a versioned envelope.
//!
//! A frame is the postcard encoding of an [`Envelope`]: a protocol version, the sender and one
//! [`PeerMessage`]. Frames are at most [`MAX_FRAME_BYTES`] long. Decoding is total: any byte
//! string yields either an envelope or a [`WireError`] — never a panic, never an unbounded
//! allocation (postcard pre-allocates cautiously, and keys, values and version vectors are bounded
//! when decoded). Semantic checks (is the origin a member, is the sequence number consistent with
//! the dependencies) happen in the replica, which counts and traces what it rejects.
//!
//! ```
//! use roundtable_runtime::wire::{decode, encode, DigestReply, Envelope, PeerMessage};
//! use roundtable_runtime::{causality::VersionVector, LeaderId, Seq};
//! let digest = PeerMessage::Digest { vv: VersionVector::new(), reply: DigestReply::IfBehind, held: vec![], needed: Seq(0), stable: Default::default(), repair: false, recovery: Default::default() };
//! let env = Envelope::new(LeaderId::new(2)?, digest);
//! let bytes = encode(&env)?;
//! assert_eq!(decode(&bytes)?, env);
//! assert!(decode(&[0xff, 0xff, 0xff]).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::causality::VersionVector;
use crate::entry::Entry;
use crate::store::SnapshotChunk;
use crate::{LeaderId, LeaderSet};

/// The protocol version this build speaks. A frame of another version is rejected.
///
/// Version 2 (issue 16): digests carry a [`RecoveryStatus`].
pub const PROTOCOL_VERSION: u16 = 2;

/// The largest frame, in bytes (1 MiB).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Bytes kept free in every frame for the envelope and message framing when batches are packed.
pub const FRAME_HEADROOM_BYTES: usize = 4096;

/// The most bytes an entry can take on the wire (with its seen-by set), not counting key and
/// value bytes: dot, timestamp, a full version vector of varints, tags and lengths.
const ENTRY_OVERHEAD_BOUND: usize = 11 + 14 + (1 + 10 * crate::MAX_LEADERS) + 3 + 4 + 10;

/// An upper bound of the encoded size of a replicated entry, used to pack batches under
/// [`MAX_FRAME_BYTES`] without encoding twice.
#[must_use]
pub fn entry_size_bound(entry: &Entry) -> usize {
    use crate::entry::Op;
    let value = match &entry.op {
        Op::Put(v) => v.as_bytes().len(),
        Op::Delete | Op::Void => 0,
        Op::SiblingPut { value, .. } => value.as_bytes().len() + 1 + 10 * crate::MAX_LEADERS,
        Op::SiblingDelete { .. } => 1 + 10 * crate::MAX_LEADERS,
        Op::Crdt(payload) => encoded_len(payload).unwrap_or(MAX_FRAME_BYTES),
    };
    ENTRY_OVERHEAD_BOUND + entry.key.as_str().len() + value
}

/// An upper bound of the encoded size of one snapshot register.
#[must_use]
pub fn register_size_bound(key: &crate::entry::Key, register: &crate::store::Register) -> usize {
    let value = register.value.as_ref().map_or(0, |v| v.as_bytes().len());
    3 + key.as_str().len() + 4 + value + 14 + 11
}

/// An entry as it travels: the write and the leaders the sender knows to hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicatedEntry {
    /// The write (shared: in-process deliveries and outboxes hold the log's copy).
    pub entry: crate::entry::SharedEntry,
    /// Leaders known to hold it (the sender included).
    pub seen_by: LeaderSet,
}

/// One message between leaders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PeerMessage {
    /// Entries for the receiver to apply (and, unless `catch_up`, to forward along the topology).
    Replicate {
        /// The entries, in causal order.
        entries: Vec<ReplicatedEntry>,
        /// Whether these answer an anti-entropy digest (link-local: not forwarded further).
        catch_up: bool,
    },
    /// Anti-entropy: "this is what I have applied". Also acknowledges everything it names.
    Digest {
        /// The sender's applied version vector.
        vv: VersionVector,
        /// Whether and when the receiver answers with its own digest.
        reply: DigestReply,
        /// Sequence numbers of the *receiver's* own writes that the sender holds but has not
        /// applied yet (they wait in its causal buffer). A restarting leader needs them to tell
        /// which of its writes were lost with it.
        held: Vec<crate::causality::Seq>,
        /// The highest of the *receiver's* sequence numbers that an entry waiting in the
        /// sender's causal buffer depends on (0: none). A restarting leader must fill (void) up
        /// to it, or those entries wait for ever.
        needed: crate::causality::Seq,
        /// Writes the sender knows every live leader has applied (its stable vector): a leader
        /// that does not hear from everyone (a star's spoke) truncates its log by it. (Boxed:
        /// it would double the size of every message value.)
        stable: alloc::boxed::Box<VersionVector>,
        /// The sender refused or misses entries and asks for them now, however recently the
        /// receiver got them (a periodic digest is not answered with entries that are probably
        /// still on their way).
        repair: bool,
        /// The sender's recovery after a restart, and whether it holds the receiver sealed (see
        /// [`RecoveryStatus`]).
        recovery: RecoveryStatus,
    },
    /// A chunk of a state snapshot, for a peer whose needs the sender's log has truncated.
    Snapshot(SnapshotChunk),
}

impl PeerMessage {
    /// A short name of the message kind, for traces and metrics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            PeerMessage::Replicate { catch_up: false, .. } => "replicate",
            PeerMessage::Replicate { catch_up: true, .. } => "catch-up",
            PeerMessage::Digest { .. } => "digest",
            PeerMessage::Snapshot(_) => "snapshot",
        }
    }
}

/// Where a leader stands in its recovery after a restart, as its digests say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecoveryPhase {
    /// Not recovering (or done): a peer that holds the sender sealed lifts the seal.
    #[default]
    Done,
    /// Restarted, in its quiet period: entries of its earlier life may still be in flight, and
    /// peers still accept them.
    Asking,
    /// Restarted, past its quiet period: every peer is asked to seal it — to refuse every entry
    /// of the sender's that the peer does not already hold — so that what the peer reports of
    /// the sender's writes stays true until the sender has concluded.
    Sealing,
}

/// What a digest says about recovery: the sender's own, and the receiver's seal at the sender.
///
/// A restarted in-memory leader does not know its last sequence number. It learns it from its
/// peers' reports (the digests' `vv`, `held` and `needed`), but a report is only worth something
/// if it cannot go stale before the leader concludes: a peer could receive one of the leader's
/// old writes from a third leader a moment after answering. A peer that *seals* the leader
/// refuses every entry of the leader's it does not already hold, so its report stays true; the
/// leader concludes only from sealed reports. See `ARCHITECTURE.md`, "Recovery of an in-memory
/// leader".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecoveryStatus {
    /// The sender's life: 0 for a leader that has run since the cluster started, else the
    /// millisecond (mod 2^32, never 0) of its raw clock at which it restarted. A report from a
    /// new life of a peer means the peer lost its state.
    pub life: u32,
    /// The sender's recovery.
    pub phase: RecoveryPhase,
    /// Whether the sender holds the *receiver* sealed: the report in this digest of the
    /// receiver's writes stays true while the seal lasts.
    pub sealed: bool,
}

/// When the receiver of a digest answers with its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DigestReply {
    /// Never: this digest is itself an answer.
    Never,
    /// When the receiver lacks something the sender has, so that the exchange runs both ways
    /// (link appearance and periodic anti-entropy).
    IfBehind,
    /// Always: the sender restarted and must hear from every peer before it accepts writes.
    Always,
}

/// A versioned frame: who sent which message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The protocol version ([`PROTOCOL_VERSION`]).
    pub version: u16,
    /// The sending leader.
    pub from: LeaderId,
    /// The message.
    pub body: PeerMessage,
}

impl Envelope {
    /// An envelope of the current protocol version.
    #[must_use]
    pub fn new(from: LeaderId, body: PeerMessage) -> Self {
        Envelope { version: PROTOCOL_VERSION, from, body }
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WireError {
    /// The frame is longer than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
    },
    /// The frame speaks another protocol version.
    #[error("unsupported protocol version {found} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// The bytes are not a valid encoding (truncated, malformed, or out-of-range values): the
    /// decoder's explanation.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A valid envelope followed by extra bytes.
    #[error("{extra} trailing bytes after the envelope")]
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
}

fn malformed(e: postcard::Error) -> WireError {
    WireError::Malformed(e.to_string())
}

/// Encodes an envelope into a frame, or fails when it would exceed [`MAX_FRAME_BYTES`].
pub fn encode(envelope: &Envelope) -> Result<Vec<u8>, WireError> {
    let bytes = postcard::to_allocvec(envelope).map_err(malformed)?;
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge { len: bytes.len() });
    }
    Ok(bytes)
}

/// The length of `value`'s postcard encoding, counted without encoding it (postcard's size
/// flavor: nothing is allocated or copied), or why it cannot be encoded.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, WireError> {
    postcard::serialize_with_flavor::<T, postcard::ser_flavors::Size, usize>(
        value,
        postcard::ser_flavors::Size::default(),
    )
    .map_err(malformed)
}

/// The length of the frame [`encode`] would make of `body` sent by `from`, computed without
/// making it: postcard's size flavor walks the message and allocates and copies nothing. A
/// transport that hands messages over within one process uses it to count bytes and to refuse
/// what would not fit a frame, exactly as if it had encoded them.
pub fn frame_len(from: LeaderId, body: &PeerMessage) -> Result<usize, WireError> {
    // An envelope serializes as its fields in order, as this tuple does.
    let len = encoded_len(&(PROTOCOL_VERSION, from, body))?;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge { len });
    }
    Ok(len)
}

/// Decodes a frame. Never panics; every failure is a [`WireError`].
pub fn decode(frame: &[u8]) -> Result<Envelope, WireError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge { len: frame.len() });
    }
    // The version comes first; check it before trying to make sense of the rest.
    let (version, _) = postcard::take_from_bytes::<u16>(frame).map_err(malformed)?;
    if version != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion { found: version });
    }
    let (envelope, rest) = postcard::take_from_bytes::<Envelope>(frame).map_err(malformed)?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes { extra: rest.len() });
    }
    Ok(envelope)
}
