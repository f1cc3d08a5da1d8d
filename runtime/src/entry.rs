//! What a write is: keys, values, operations and replication-log entries.
//!
//! Keys and values are bounded ([`MAX_KEY_BYTES`], [`MAX_VALUE_BYTES`]) when they are made and when
//! they are decoded, so neither a client nor a peer can hand a leader an unbounded allocation.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::causality::{Dot, VersionVector};
use crate::clock::HlcTimestamp;

/// The longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// The key a [`Op::Void`] entry carries (it touches no key; the store ignores it).
pub const VOID_KEY: &str = "roundtable/void";

/// The largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// A key or value outside its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The key is empty.
    #[error("a key must not be empty")]
    EmptyKey,
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("key is {len} bytes, more than the limit of {MAX_KEY_BYTES}")]
    KeyTooLong {
        /// The key's length in bytes.
        len: usize,
    },
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("value is {len} bytes, more than the limit of {MAX_VALUE_BYTES}")]
    ValueTooLarge {
        /// The value's length in bytes.
        len: usize,
    },
}

/// A key: non-empty UTF-8 of at most [`MAX_KEY_BYTES`] bytes. Keys order bytewise.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Key(String);

impl Key {
    /// A key, or an error when it is empty or too long.
    pub fn new(key: impl Into<String>) -> Result<Self, DataError> {
        let key = key.into();
        if key.is_empty() {
            Err(DataError::EmptyKey)
        } else if key.len() > MAX_KEY_BYTES {
            Err(DataError::KeyTooLong { len: key.len() })
        } else {
            Ok(Key(key))
        }
    }

    /// The key as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Key {
    type Error = DataError;
    fn try_from(value: String) -> Result<Self, DataError> {
        Key::new(value)
    }
}

impl TryFrom<&str> for Key {
    type Error = DataError;
    fn try_from(value: &str) -> Result<Self, DataError> {
        Key::new(value)
    }
}

impl From<Key> for String {
    fn from(key: Key) -> String {
        key.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A value: at most [`MAX_VALUE_BYTES`] bytes. Values order bytewise (sets of values need it).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct Value(Vec<u8>);

impl Value {
    /// A value, or an error when it is too large.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, DataError> {
        let bytes = bytes.into();
        if bytes.len() > MAX_VALUE_BYTES {
            Err(DataError::ValueTooLarge { len: bytes.len() })
        } else {
            Ok(Value(bytes))
        }
    }

    /// The bytes of the value.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8 text, when it is.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.0).ok()
    }
}

impl TryFrom<Vec<u8>> for Value {
    type Error = DataError;
    fn try_from(value: Vec<u8>) -> Result<Self, DataError> {
        Value::new(value)
    }
}

impl TryFrom<&str> for Value {
    type Error = DataError;
    fn try_from(value: &str) -> Result<Self, DataError> {
        Value::new(value.as_bytes().to_vec())
    }
}

impl From<Value> for Vec<u8> {
    fn from(value: Value) -> Vec<u8> {
        value.0
    }
}

/// Text values render as quoted strings, others as hex.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "{s:?}"),
            None => {
                f.write_str("0x")?;
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a write does to its key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Op {
    /// Set the key to a value.
    Put(Value),
    /// Remove the key (kept as a timestamped tombstone so that replicas agree).
    Delete,
    /// A write to a key of a siblings keyspace: replaces the siblings `context` names.
    SiblingPut {
        /// The value.
        value: Value,
        /// What the client had read (empty: a blind write).
        context: VersionVector,
    },
    /// A delete in a siblings keyspace: removes the siblings `context` names.
    SiblingDelete {
        /// What the client had read.
        context: VersionVector,
    },
    /// An update of a key of a CRDT keyspace: a delta to join, or an operation.
    Crdt(crate::resolution::CrdtOpPayload),
    /// Nothing: a sequence number of this origin whose write was lost when the origin crashed
    /// before passing it on. A restarted origin issues it so that its later writes, which did
    /// reach other leaders, can be delivered in order. It touches no key.
    Void,
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put(v) => write!(f, "put {v}"),
            Op::Delete => f.write_str("delete"),
            Op::Void => f.write_str("void"),
            Op::SiblingPut { value, context } => write!(f, "put {value} over {context}"),
            Op::SiblingDelete { context } => write!(f, "delete over {context}"),
            Op::Crdt(payload) => write!(f, "crdt {payload:?}"),
        }
    }
}

/// An entry shared between the log, the causal buffer, outboxes and in-process deliveries: one
/// allocation per write, however many places hold it.
pub type SharedEntry = alloc::sync::Arc<Entry>;

/// One write in the replication log, as it travels between leaders.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The write's identity.
    pub dot: Dot,
    /// The timestamp the origin stamped it with (clients never supply it).
    pub hlc: HlcTimestamp,
    /// The origin's version vector when it accepted the write (its causal dependencies).
    /// `deps[origin] == seq - 1` always holds for a well-formed entry.
    pub deps: VersionVector,
    /// The key written.
    pub key: Key,
    /// What the write does.
    pub op: Op,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {:?} at {} after {}", self.dot, self.key, self.op, self.hlc, self.deps)
    }
}
