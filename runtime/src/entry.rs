//! What a write is: keys, values, operations and replication-log entries.
//!
//! Keys and values are bounded ([`MAX_KEY_BYTES`], [`MAX_VALUE_BYTES`]) when they are made and when
//! they are decoded, so neither a client nor a peer can hand a leader an unbounded allocation.

use core::fmt;

use alloc::string::String;
use alloc::vec::Vec;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

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
///
/// A key of up to 24 bytes is held inline, without an allocation (a `CompactString`); on the
/// wire it is a string, as it always was.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(CompactString);

impl Key {
    /// A key, or an error when it is empty or too long. A key of up to 24 bytes is held
    /// inline: making one allocates nothing.
    pub fn new(key: impl AsRef<str>) -> Result<Self, DataError> {
        let key = key.as_ref();
        Key::check(key)?;
        Ok(Key(CompactString::new(key)))
    }

    /// The key `key` of the keyspace `space`: `space/key` (see [`crate::Keyspaces`]), made
    /// without an intermediate string.
    ///
    /// ```
    /// # use roundtable_runtime::Key;
    /// assert_eq!(Key::in_keyspace("cart", "42").unwrap().as_str(), "cart/42");
    /// ```
    pub fn in_keyspace(space: &str, key: &str) -> Result<Self, DataError> {
        let len = space.len() + 1 + key.len();
        if len > MAX_KEY_BYTES {
            return Err(DataError::KeyTooLong { len });
        }
        // Joined on the stack when it fits inline (the usual case): no allocation, one copy.
        let mut inline = [0u8; INLINE_KEY_BYTES];
        if let Some(joined) = inline.get_mut(..len) {
            joined[..space.len()].copy_from_slice(space.as_bytes());
            joined[space.len()] = b'/';
            joined[space.len() + 1..].copy_from_slice(key.as_bytes());
            let joined = core::str::from_utf8(joined).expect("two strings joined by an ASCII '/' are UTF-8");
            return Ok(Key(CompactString::new(joined)));
        }
        let mut joined = String::with_capacity(len);
        joined.push_str(space);
        joined.push('/');
        joined.push_str(key);
        Ok(Key(CompactString::from(joined)))
    }

    fn check(key: &str) -> Result<(), DataError> {
        if key.is_empty() {
            Err(DataError::EmptyKey)
        } else if key.len() > MAX_KEY_BYTES {
            Err(DataError::KeyTooLong { len: key.len() })
        } else {
            Ok(())
        }
    }

    /// The key as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest key held inline (`CompactString`'s inline capacity on 64-bit targets).
const INLINE_KEY_BYTES: usize = 24;

impl TryFrom<String> for Key {
    type Error = DataError;
    fn try_from(value: String) -> Result<Self, DataError> {
        Key::new(value)
    }
}

impl TryFrom<&str> for Key {
    type Error = DataError;
    fn try_from(value: &str) -> Result<Self, DataError> {
        Key::check(value)?;
        Ok(Key(CompactString::from(value)))
    }
}

impl From<Key> for String {
    fn from(key: Key) -> String {
        key.0.into_string()
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a non-empty string of at most {MAX_KEY_BYTES} bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                Key::try_from(v).map_err(E::custom)
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key, E> {
                Key::new(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(KeyVisitor)
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

/// Bytes of a value held inline, without an allocation (24 bytes in all with the length).
const VALUE_INLINE: usize = 16;

/// A value: at most [`MAX_VALUE_BYTES`] bytes. Values order bytewise (sets of values need it).
///
/// A value of up to 16 bytes is held inline, without an allocation; on the wire it is a
/// sequence of bytes, as it always was.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Value(SmallVec<[u8; VALUE_INLINE]>);

impl Value {
    /// A copy of `bytes` as a value, or an error when it is too large. A short value is held
    /// inline: making one allocates nothing.
    pub fn copy_of(bytes: &[u8]) -> Result<Self, DataError> {
        if bytes.len() > MAX_VALUE_BYTES {
            Err(DataError::ValueTooLarge { len: bytes.len() })
        } else {
            Ok(Value(SmallVec::from_slice(bytes)))
        }
    }

    /// A value, or an error when it is too large.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, DataError> {
        let bytes = bytes.into();
        if bytes.len() > MAX_VALUE_BYTES {
            Err(DataError::ValueTooLarge { len: bytes.len() })
        } else {
            Ok(Value(SmallVec::from_vec(bytes)))
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
        if value.len() > MAX_VALUE_BYTES {
            return Err(DataError::ValueTooLarge { len: value.len() });
        }
        Ok(Value(SmallVec::from_slice(value.as_bytes())))
    }
}

impl From<Value> for Vec<u8> {
    fn from(value: Value) -> Vec<u8> {
        value.0.into_vec()
    }
}

/// As a `Vec<u8>` serializes: a sequence of bytes.
impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> serde::de::Visitor<'de> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a sequence of at most {MAX_VALUE_BYTES} bytes")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                // The length a peer claims is not trusted for the allocation: at most the bound.
                let hint = seq.size_hint().unwrap_or(0).min(MAX_VALUE_BYTES);
                let mut bytes: SmallVec<[u8; VALUE_INLINE]> = SmallVec::with_capacity(hint);
                while let Some(b) = seq.next_element::<u8>()? {
                    if bytes.len() == MAX_VALUE_BYTES {
                        let len = seq.size_hint().map_or(MAX_VALUE_BYTES + 1, |rest| MAX_VALUE_BYTES + 1 + rest);
                        return Err(serde::de::Error::custom(DataError::ValueTooLarge { len }));
                    }
                    bytes.push(b);
                }
                Ok(Value(bytes))
            }
        }
        deserializer.deserialize_seq(ValueVisitor)
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

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    /// Keys and values held inline or not encode exactly as the `String` and `Vec<u8>` they
    /// were before, and decode back, with their bounds enforced on the way in.
    #[test]
    fn keys_and_values_keep_their_wire_form() {
        for len in [1, 16, 17, 24, 25, 300] {
            let text = "k".repeat(len);
            let key = Key::new(text.clone()).expect("a key");
            let bytes = postcard::to_allocvec(&key).expect("encodes");
            assert_eq!(bytes, postcard::to_allocvec(&text).expect("encodes"), "key of {len} bytes");
            assert_eq!(postcard::from_bytes::<Key>(&bytes), Ok(key));

            let raw = alloc::vec![7u8; len];
            let value = Value::new(raw.clone()).expect("a value");
            let bytes = postcard::to_allocvec(&value).expect("encodes");
            assert_eq!(bytes, postcard::to_allocvec(&raw).expect("encodes"), "value of {len} bytes");
            assert_eq!(postcard::from_bytes::<Value>(&bytes), Ok(value.clone()));
            assert_eq!(Vec::from(value), raw);
        }
        let empty = postcard::to_allocvec(&String::new()).expect("encodes");
        assert!(postcard::from_bytes::<Key>(&empty).is_err(), "an empty key is refused");
        let long = postcard::to_allocvec(&"k".repeat(MAX_KEY_BYTES + 1)).expect("encodes");
        assert!(postcard::from_bytes::<Key>(&long).is_err(), "a key over the bound is refused");
        let large = postcard::to_allocvec(&alloc::vec![0u8; MAX_VALUE_BYTES + 3]).expect("encodes");
        let err = postcard::from_bytes::<Value>(&large).expect_err("a value over the bound is refused");
        assert!(!err.to_string().is_empty());
        assert_eq!(
            Value::try_from("x".repeat(MAX_VALUE_BYTES + 1).as_str()),
            Err(DataError::ValueTooLarge { len: MAX_VALUE_BYTES + 1 })
        );
    }

    /// Order and equality are the bytes', whether held inline or not.
    #[test]
    fn keys_order_bytewise_across_the_inline_bound() {
        let short = Key::new("a".repeat(24)).expect("a key");
        let long = Key::new("a".repeat(25)).expect("a key");
        assert!(short < long);
        assert!(Key::new("b").expect("a key") > long);
        let v = |n: usize| Value::new(alloc::vec![1u8; n]).expect("a value");
        assert!(v(16) < v(17));
        assert_eq!(v(17), Value::try_from(alloc::vec![1u8; 17]).expect("a value"));
        assert_ne!(v(16), v(17));
    }
}
