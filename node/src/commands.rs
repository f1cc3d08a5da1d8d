//! The data commands: each runs at the hosted leader inside one [`Atomically`] turn, so that a
//! type check and the write after it see the same state, and a pipeline's consecutive data
//! commands cost one message to the leader, not one each.
//!
//! A Redis key `k` lives in one of four keyspaces, by the command that wrote it:
//!
//! | type | keyspace | resolution | written by |
//! |---|---|---|---|
//! | string | `s/k` | last-write-wins | `SET`, `MSET`, `DEL` |
//! | string, siblings prefix | `v/k` | version vectors with siblings | `SET`, `RT.PUT`, `DEL` |
//! | counter (a string to Redis) | `cnt/k` | PN-counter CRDT | `INCR`, `INCRBY`, `DECR`, `DECRBY` |
//! | set | `set/k` | add-wins OR-set CRDT | `SADD`, `SREM` |
//!
//! A command for one type on a key that holds another here gets Redis' `WRONGTYPE` error. The
//! check is at this leader: two leaders can give one key two types concurrently; each then
//! answers for the type it sees first, in the order string, counter, set.
//!
//! [`Atomically`]: roundtable_actors::Atomically

use std::sync::Arc;

use roundtable_actors::Txn;
use roundtable_runtime::resolution::{CrdtState, CrdtUpdate, Update};
use roundtable_runtime::siblings::CausalContext;
use roundtable_runtime::{Dot, Key, KeyEvent, LeaderId, Value};

use crate::resp::Reply;

/// Keyspace of last-write-wins strings.
pub const STRINGS: &str = "s";
/// Keyspace of strings that keep concurrent writes as siblings.
pub const SIBLINGS: &str = "v";
/// Keyspace of counters.
pub const COUNTERS: &str = "cnt";
/// Keyspace of sets.
pub const SETS: &str = "set";

/// The most bytes of values one `MGET` answers.
pub const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// Redis' message for a command on a key of another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// How Redis keys map to keyspaces, and the names of the leaders (for `RT.EXPLAIN`).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// String keys starting with one of these are siblings keys.
    pub sibling_prefixes: Vec<String>,
    /// The cluster's leader names, by id.
    pub names: Vec<String>,
}

impl Keys {
    fn string(&self, key: &str) -> Result<(Key, bool), Reply> {
        let siblings = self.sibling_prefixes.iter().any(|p| key.starts_with(p.as_str()));
        Ok((internal(if siblings { SIBLINGS } else { STRINGS }, key)?, siblings))
    }

    fn name(&self, id: LeaderId) -> &str {
        self.names.get(id.index()).map_or("?", String::as_str)
    }

    fn dot(&self, dot: Dot) -> String {
        format!("{}:{}", self.name(dot.origin), dot.seq.0)
    }
}

/// The data commands: those that run at the leader.
const DATA_COMMANDS: [&str; 21] = [
    "GET",
    "SET",
    "DEL",
    "UNLINK",
    "EXISTS",
    "TYPE",
    "MGET",
    "MSET",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "SADD",
    "SREM",
    "SMEMBERS",
    "SISMEMBER",
    "SCARD",
    "DBSIZE",
    "RT.SIBLINGS",
    "RT.PUT",
    "RT.EXPLAIN",
];

/// Whether `name` (upper case) is a data command: one that runs at the leader.
#[must_use]
pub fn is_data(name: &str) -> bool {
    data_command(name.as_bytes()).is_some()
}

/// The data command `name` (upper case) names, if it names one: its name as a `&'static str`,
/// found without checking `name` for UTF-8.
#[must_use]
pub fn data_command(name: &[u8]) -> Option<&'static str> {
    DATA_COMMANDS.iter().copied().find(|command| command.as_bytes() == name)
}

/// What one data command answered, and the write that answer depends on (for `WAIT` and the
/// durable write concern).
pub type Outcome = (Reply, Option<Dot>);

type Answer = Result<Reply, Reply>;

/// Runs the data command `args` (its name upper-cased in `name`) against `txn`.
pub fn run(txn: &mut Txn<'_>, keys: &Arc<Keys>, name: &str, args: &[&[u8]]) -> Outcome {
    let mut wrote = None;
    let reply = dispatch(txn, keys, name, args, &mut wrote).unwrap_or_else(|e| e);
    (reply, wrote)
}

fn dispatch(txn: &mut Txn<'_>, keys: &Keys, name: &str, a: &[&[u8]], wrote: &mut Option<Dot>) -> Answer {
    let mut w = Writer { txn, wrote };
    match (name, a.len()) {
        ("GET", 1) => get(&w, keys, text(a[0])?),
        ("SET", n) if n >= 2 => set(&mut w, keys, text(a[0])?, a[1], &a[2..]),
        ("DEL" | "UNLINK", n) if n >= 1 => {
            let mut deleted = 0;
            for key in a {
                deleted += i64::from(del(&mut w, keys, text(key)?)?);
            }
            Ok(Reply::Integer(deleted))
        }
        ("EXISTS", n) if n >= 1 => {
            let mut count = 0;
            for key in a {
                count += i64::from(kind(&w, keys, text(key)?)? != Kind::None);
            }
            Ok(Reply::Integer(count))
        }
        ("TYPE", 1) => Ok(Reply::Simple(
            match kind(&w, keys, text(a[0])?)? {
                Kind::None => "none",
                Kind::String | Kind::Counter => "string",
                Kind::Set => "set",
            }
            .into(),
        )),
        ("MGET", n) if n >= 1 => {
            let (mut values, mut bytes) = (Vec::with_capacity(n), 0usize);
            for key in a {
                let value = match get(&w, keys, text(key)?) {
                    // Redis answers nil for a key of another type in MGET.
                    Err(Reply::Error(e)) if e == WRONGTYPE => Reply::Nil,
                    other => other?,
                };
                bytes += match &value {
                    Reply::Bulk(b) => b.len(),
                    _ => 0,
                };
                if bytes > MAX_REPLY_BYTES {
                    return Err(Reply::error(format!(
                        "ERR reply too large: MGET of more than {MAX_REPLY_BYTES} bytes"
                    )));
                }
                values.push(value);
            }
            Ok(Reply::Array(values))
        }
        ("MSET", n) if n >= 2 && n % 2 == 0 => {
            // Every key and value checked before anything is written: all or nothing.
            for pair in a.chunks(2) {
                let key = text(pair[0])?;
                keys.string(key)?;
                value(pair[1])?;
            }
            for pair in a.chunks(2) {
                let key = text(pair[0])?;
                clear_other(&mut w, key)?;
                put(&mut w, keys, key, pair[1])?;
            }
            Ok(Reply::ok())
        }
        ("INCR", 1) => incr(&mut w, text(a[0])?, keys, 1),
        ("DECR", 1) => incr(&mut w, text(a[0])?, keys, -1),
        ("INCRBY" | "DECRBY", 2) => {
            let by = std::str::from_utf8(a[1]).ok().and_then(|s| s.parse::<i64>().ok());
            let by = by.ok_or_else(|| Reply::error("ERR value is not an integer or out of range"))?;
            let by = if name == "DECRBY" {
                by.checked_neg().ok_or_else(|| Reply::error("ERR decrement would overflow"))?
            } else {
                by
            };
            incr(&mut w, text(a[0])?, keys, by)
        }
        ("SADD" | "SREM", n) if n >= 2 => set_update(&mut w, keys, name == "SADD", text(a[0])?, &a[1..]),
        ("SMEMBERS", 1) => Ok(Reply::Set(members(&w, keys, text(a[0])?)?.into_iter().map(Reply::Bulk).collect())),
        ("SISMEMBER", 2) => {
            Ok(Reply::Integer(i64::from(members(&w, keys, text(a[0])?)?.iter().any(|m| m.as_slice() == a[1]))))
        }
        ("SCARD", 1) => Ok(Reply::Integer(count_of(members(&w, keys, text(a[0])?)?.len()))),
        ("DBSIZE", 0) => Ok(Reply::Integer(count_of(w.txn.replica().live_keys()))),
        ("RT.SIBLINGS", 1) => siblings(&w, keys, text(a[0])?),
        ("RT.PUT", 3) => put_with_context(&mut w, keys, text(a[0])?, a[1], a[2]),
        ("RT.EXPLAIN", 1) => explain(&w, keys, text(a[0])?),
        _ => Err(wrong_args(name)),
    }
}

/// The transaction, and the last write it made.
struct Writer<'t, 'l, 'w> {
    txn: &'t mut Txn<'l>,
    wrote: &'w mut Option<Dot>,
}

impl Writer<'_, '_, '_> {
    fn write(&mut self, key: &Key, update: Update) -> Result<(), Reply> {
        let receipt = self.txn.write_key(key.clone(), update).map_err(leader_error)?;
        *self.wrote = Some(receipt.dot);
        Ok(())
    }

    fn crdt(&self, key: &str) -> Result<Option<&CrdtState>, Reply> {
        self.txn.crdt(key).map_err(leader_error)
    }
}

fn count_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The error of a command given the wrong number of arguments, in Redis' words.
#[must_use]
pub fn wrong_args(name: &str) -> Reply {
    Reply::error(format!("ERR wrong number of arguments for '{}' command", name.to_ascii_lowercase()))
}

/// A leader's refusal, as a client sees it.
#[must_use]
pub fn leader_error(e: impl std::fmt::Display) -> Reply {
    Reply::error(format!("ERR {e}"))
}

fn text(arg: &[u8]) -> Result<&str, Reply> {
    std::str::from_utf8(arg).map_err(|_| Reply::error("ERR keys must be UTF-8"))
}

/// The key `key` of the node's keyspace `space`.
fn internal(space: &str, key: &str) -> Result<Key, Reply> {
    Key::in_keyspace(space, key).map_err(leader_error)
}

fn value(bytes: &[u8]) -> Result<Value, Reply> {
    Value::copy_of(bytes).map_err(leader_error)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    None,
    String,
    Counter,
    Set,
}

/// What `key` holds at this leader.
fn kind(w: &Writer<'_, '_, '_>, keys: &Keys, key: &str) -> Result<Kind, Reply> {
    if string_value(w, keys, key)?.is_some() {
        return Ok(Kind::String);
    }
    other_kind(w, key)
}

/// What `key` holds here, given that it holds no string.
fn other_kind(w: &Writer<'_, '_, '_>, key: &str) -> Result<Kind, Reply> {
    // A counter at zero reads as absent: a counter cannot be removed (an increment elsewhere
    // must survive), so `DEL` resets it, and then the key is free for any type.
    if counter(w, key)?.is_some_and(|n| n != 0) {
        return Ok(Kind::Counter);
    }
    match w.crdt(internal(SETS, key)?.as_str())? {
        Some(CrdtState::OrSet(set)) if !set.value().is_empty() => Ok(Kind::Set),
        _ => Ok(Kind::None),
    }
}

/// `WRONGTYPE` unless `key` holds a string or nothing.
fn string_only(w: &Writer<'_, '_, '_>, keys: &Keys, key: &str) -> Result<(), Reply> {
    match kind(w, keys, key)? {
        Kind::None | Kind::String => Ok(()),
        Kind::Counter | Kind::Set => Err(Reply::error(WRONGTYPE)),
    }
}

/// The string value of `key` here: a last-write-wins key's value, or the last (in dot order) of
/// a siblings key's siblings.
fn string_value(w: &Writer<'_, '_, '_>, keys: &Keys, key: &str) -> Result<Option<Vec<u8>>, Reply> {
    string_value_at(w, &keys.string(key)?)
}

/// [`string_value`] of a key already mapped to its internal key.
fn string_value_at(w: &Writer<'_, '_, '_>, (internal, siblings): &(Key, bool)) -> Result<Option<Vec<u8>>, Reply> {
    if *siblings {
        let read = w.txn.siblings(internal.as_str()).map_err(leader_error)?;
        return Ok(read.and_then(|r| r.siblings.last().map(|(_, v)| v.as_bytes().to_vec())));
    }
    Ok(string_ref(w, internal).map(<[u8]>::to_vec))
}

/// A last-write-wins key's live value here, borrowed (no copy).
fn string_ref<'a>(w: &'a Writer<'_, '_, '_>, internal: &Key) -> Option<&'a [u8]> {
    w.txn.replica().store().register(internal).and_then(|r| r.value.as_ref()).map(Value::as_bytes)
}

/// Whether `key` holds a string here.
fn has_string(w: &Writer<'_, '_, '_>, string: &(Key, bool)) -> Result<bool, Reply> {
    match string {
        (internal, false) => Ok(string_ref(w, internal).is_some()),
        (_, true) => Ok(string_value_at(w, string)?.is_some()),
    }
}

fn counter(w: &Writer<'_, '_, '_>, key: &str) -> Result<Option<i128>, Reply> {
    match w.crdt(internal(COUNTERS, key)?.as_str())? {
        Some(CrdtState::PnCounter(c)) => Ok(Some(c.value())),
        None => Ok(None),
        Some(_) => Err(Reply::error(WRONGTYPE)),
    }
}

fn get(w: &Writer<'_, '_, '_>, keys: &Keys, key: &str) -> Answer {
    if let Some(v) = string_value(w, keys, key)? {
        return Ok(Reply::Bulk(v));
    }
    // A counter reads as its count, as a number written by INCR does in Redis (at zero, as
    // absent: see `other_kind`).
    if let Some(n) = counter(w, key)?.filter(|n| *n != 0) {
        return Ok(Reply::bulk(n.to_string()));
    }
    match kind(w, keys, key)? {
        Kind::Set => Err(Reply::error(WRONGTYPE)),
        _ => Ok(Reply::Nil),
    }
}

/// Writes `bytes` as `key`'s string: a last-write-wins put, or for a siblings key a write that
/// replaces the siblings this leader sees.
fn put(w: &mut Writer<'_, '_, '_>, keys: &Keys, key: &str, bytes: &[u8]) -> Result<(), Reply> {
    put_at(w, keys.string(key)?, bytes)
}

/// [`put`] to a key already mapped to its internal key.
fn put_at(w: &mut Writer<'_, '_, '_>, (internal, siblings): (Key, bool), bytes: &[u8]) -> Result<(), Reply> {
    let value = value(bytes)?;
    let update = if siblings {
        Update::PutWithContext { value: Some(value), context: seen_context(w, internal.as_str())? }
    } else {
        Update::Put(value)
    };
    w.write(&internal, update)
}

/// What a siblings key's write replaces when the client gave no context: the siblings this
/// leader holds.
fn seen_context(w: &Writer<'_, '_, '_>, internal: &str) -> Result<CausalContext, Reply> {
    Ok(w.txn.siblings(internal).map_err(leader_error)?.map(|r| r.context).unwrap_or_default())
}

/// `SET key value [NX|XX] [GET]`; expiry options are refused. As in Redis, `SET` replaces a
/// key of any type (here: resets the counter and removes the set members this leader sees), and
/// only `SET … GET` of a set is `WRONGTYPE`.
fn set(w: &mut Writer<'_, '_, '_>, keys: &Keys, key: &str, bytes: &[u8], options: &[&[u8]]) -> Answer {
    let (mut nx, mut xx, mut get_old) = (false, false, false);
    for option in options {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"GET" => get_old = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" | b"KEEPTTL" => {
                return Err(Reply::error(
                    "ERR expiry (EX, PX, EXAT, PXAT, KEEPTTL) is not supported by a multi-leader node: \
                     leaders would expire a key at different moments and disagree about it",
                ))
            }
            _ => return Err(Reply::error("ERR syntax error")),
        }
    }
    // A key holding a string holds nothing else here: the other types need checking only
    // when it holds none (the common overwrite costs one lookup, and copies nothing unless
    // the old value is asked for).
    let internal = keys.string(key)?;
    let (string, old) = if get_old {
        let old = string_value_at(w, &internal)?;
        (old.is_some(), old)
    } else {
        (has_string(w, &internal)?, None)
    };
    let (old, other) = if string {
        (old, Kind::None)
    } else {
        match other_kind(w, key)? {
            Kind::Counter => (counter(w, key)?.map(|n| n.to_string().into_bytes()), Kind::Counter),
            kind => (None, kind),
        }
    };
    if get_old && other == Kind::Set {
        return Err(Reply::error(WRONGTYPE));
    }
    let exists = string || other != Kind::None;
    let answer = |old: Option<Vec<u8>>, done: bool| match (get_old, done) {
        (true, _) => old.map_or(Reply::Nil, Reply::Bulk),
        (false, true) => Reply::ok(),
        (false, false) => Reply::Nil,
    };
    // Checked at this leader only (see the README): another leader may decide otherwise at the
    // same moment, and last-write-wins then keeps one of the two writes.
    if (nx && exists) || (xx && !exists) {
        return Ok(answer(old, false));
    }
    if other != Kind::None {
        clear_other(w, key)?;
    }
    put_at(w, internal, bytes)?;
    Ok(answer(old, true))
}

/// Resets `key`'s counter and removes its set members, as this leader sees them (increments
/// and adds made concurrently elsewhere survive).
fn clear_other(w: &mut Writer<'_, '_, '_>, key: &str) -> Result<bool, Reply> {
    let mut cleared = false;
    if let Some(n) = counter(w, key)?.filter(|n| *n != 0) {
        let amount = u64::try_from(n.unsigned_abs()).unwrap_or(u64::MAX);
        let update = if n > 0 { CrdtUpdate::Decrement(amount) } else { CrdtUpdate::Increment(amount) };
        w.write(&internal(COUNTERS, key)?, Update::Crdt(update))?;
        cleared = true;
    }
    let set_key = internal(SETS, key)?;
    let present = set_members(w, key).ok().flatten().unwrap_or_default();
    cleared |= !present.is_empty();
    for member in present {
        w.write(&set_key, Update::Crdt(CrdtUpdate::Remove(value(&member)?)))?;
    }
    Ok(cleared)
}

/// Deletes whatever `key` holds here; whether it held something. A counter is reset (by the
/// count seen here: increments made elsewhere meanwhile survive) and a set loses the members
/// seen here (add-wins: concurrent adds survive).
fn del(w: &mut Writer<'_, '_, '_>, keys: &Keys, key: &str) -> Result<bool, Reply> {
    let (internal, siblings) = keys.string(key)?;
    let mut deleted = false;
    if string_value(w, keys, key)?.is_some() {
        let update = if siblings {
            Update::PutWithContext { value: None, context: seen_context(w, internal.as_str())? }
        } else {
            Update::Delete
        };
        w.write(&internal, update)?;
        deleted = true;
    }
    Ok(clear_other(w, key)? || deleted)
}

/// `INCR` and friends. On a string that holds an integer, as Redis does: the string is deleted
/// and the counter starts from its value (not exact if another leader writes the string
/// meanwhile: a counter is exact only when it is used as one throughout).
fn incr(w: &mut Writer<'_, '_, '_>, key: &str, keys: &Keys, by: i64) -> Answer {
    let not_integer = || Reply::error("ERR value is not an integer or out of range");
    let mut from_string = 0i128;
    if let Some(text) = string_value(w, keys, key)? {
        let (internal, siblings) = keys.string(key)?;
        let n = std::str::from_utf8(&text).ok().and_then(|t| t.parse::<i64>().ok()).ok_or_else(not_integer)?;
        if siblings {
            return Err(Reply::error(WRONGTYPE));
        }
        from_string = i128::from(n);
        w.write(&internal, Update::Delete)?;
    } else if other_kind(w, key)? == Kind::Set {
        return Err(Reply::error(WRONGTYPE));
    }
    let now = counter(w, key)?.unwrap_or(0) + from_string;
    let total = i128::from(by) + from_string;
    let next = now.checked_add(i128::from(by)).filter(|n| i64::try_from(*n).is_ok());
    if next.is_none() || i64::try_from(total).is_err() {
        return Err(Reply::error("ERR increment or decrement would overflow"));
    }
    if total != 0 {
        let amount = u64::try_from(total.unsigned_abs()).map_err(|_| not_integer())?;
        // Each leader's increments and decrements are totals of their own (u64): one that
        // would pass u64::MAX would saturate and lose the rest.
        let here = w.txn.replica().id();
        let own = match w.crdt(internal(COUNTERS, key)?.as_str())? {
            Some(CrdtState::PnCounter(c)) if total > 0 => c.increments().get(here),
            Some(CrdtState::PnCounter(c)) => c.decrements().get(here),
            _ => 0,
        };
        if own.checked_add(amount).is_none() {
            return Err(Reply::error("ERR increment or decrement would overflow this leader's share of the counter"));
        }
        let update = if total > 0 { CrdtUpdate::Increment(amount) } else { CrdtUpdate::Decrement(amount) };
        w.write(&internal(COUNTERS, key)?, Update::Crdt(update))?;
    }
    let after = counter(w, key)?.unwrap_or(0);
    Ok(Reply::Integer(i64::try_from(after).unwrap_or(i64::MAX)))
}

/// The members of `key`'s set here (`Ok(None)`: no set), or `WRONGTYPE` when the key's CRDT is
/// not a set.
fn set_members(w: &Writer<'_, '_, '_>, key: &str) -> Result<Option<Vec<Vec<u8>>>, Reply> {
    match w.crdt(internal(SETS, key)?.as_str())? {
        Some(CrdtState::OrSet(set)) => Ok(Some(set.value().into_iter().map(|v| v.as_bytes().to_vec()).collect())),
        None => Ok(None),
        Some(_) => Err(Reply::error(WRONGTYPE)),
    }
}

/// The members of the set `key` holds here: none when it holds nothing, `WRONGTYPE` when it
/// holds another type.
fn members(w: &Writer<'_, '_, '_>, keys: &Keys, key: &str) -> Result<Vec<Vec<u8>>, Reply> {
    match set_members(w, key)? {
        Some(members) if !members.is_empty() => Ok(members),
        _ if kind(w, keys, key)? == Kind::None => Ok(Vec::new()),
        _ => Err(Reply::error(WRONGTYPE)),
    }
}

fn set_update(w: &mut Writer<'_, '_, '_>, keys: &Keys, adding: bool, key: &str, elements: &[&[u8]]) -> Answer {
    let before: std::collections::BTreeSet<Vec<u8>> = members(w, keys, key)?.into_iter().collect();
    let set_key = internal(SETS, key)?;
    let mut changed = 0;
    let mut seen: std::collections::BTreeSet<&[u8]> = std::collections::BTreeSet::new();
    for element in elements {
        let present = before.contains(*element);
        let first = seen.insert(*element);
        if present != adding && first {
            changed += 1;
        }
        // An add is written even when the member is present (add-wins: it survives a concurrent
        // remove elsewhere); removing a member not seen here would remove nothing.
        if adding {
            w.write(&set_key, Update::Crdt(CrdtUpdate::Add(value(element)?)))?;
        } else if present && first {
            w.write(&set_key, Update::Crdt(CrdtUpdate::Remove(value(element)?)))?;
        }
    }
    Ok(Reply::Integer(changed))
}

/// `RT.SIBLINGS key`: `[context, [value, …]]`, the context as hex, to pass to `RT.PUT`.
fn siblings(w: &Writer<'_, '_, '_>, keys: &Keys, key: &str) -> Answer {
    let (internal, siblings) = keys.string(key)?;
    if !siblings {
        return Err(Reply::error(format!(
            "ERR {key:?} is a last-write-wins key: only keys under a prefix of redis.siblings keep siblings"
        )));
    }
    let read = w.txn.siblings(internal.as_str()).map_err(leader_error)?;
    let (context, values) = match read {
        Some(r) => (r.context, r.siblings.into_iter().map(|(_, v)| Reply::bulk(v.as_bytes().to_vec())).collect()),
        None => (CausalContext::empty(), Vec::new()),
    };
    Ok(Reply::Array(vec![Reply::bulk(encode_context(&context)?), Reply::Array(values)]))
}

/// `RT.PUT key context value`: replaces the siblings `context` (from `RT.SIBLINGS`) names; an
/// empty context is a blind write that replaces nothing.
fn put_with_context(w: &mut Writer<'_, '_, '_>, keys: &Keys, key: &str, context: &[u8], bytes: &[u8]) -> Answer {
    let (internal, siblings) = keys.string(key)?;
    if !siblings {
        return Err(Reply::error(format!(
            "ERR {key:?} is a last-write-wins key: only keys under a prefix of redis.siblings keep siblings"
        )));
    }
    let context =
        decode_context(context).ok_or_else(|| Reply::error("ERR invalid context: pass what RT.SIBLINGS gave"))?;
    // A context naming writes this leader has not applied would make the key treat its future
    // writes as already seen: refused.
    if !context.version_vector().le(w.txn.replica().applied()) {
        return Err(Reply::error(
            "ERR invalid context: it names writes this leader has not seen (pass what RT.SIBLINGS gave here)",
        ));
    }
    string_only(w, keys, key)?;
    w.write(&internal, Update::PutWithContext { value: Some(value(bytes)?), context })?;
    Ok(Reply::ok())
}

/// A context as hex of its wire encoding. Failing to encode is an error, never an empty
/// context (which would read as a blind write).
fn encode_context(context: &CausalContext) -> Result<String, Reply> {
    let bytes = postcard::to_allocvec(context).map_err(leader_error)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn decode_context(hex: &[u8]) -> Option<CausalContext> {
    if hex.is_empty() {
        return Some(CausalContext::empty());
    }
    if !hex.len().is_multiple_of(2) || hex.len() > 2 * 1024 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    let bytes: Option<Vec<u8>> =
        hex.chunks(2).map(|pair| u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()).collect();
    let bytes = bytes?;
    match postcard::take_from_bytes::<CausalContext>(&bytes) {
        Ok((context, [])) => Some(context),
        _ => None,
    }
}

/// `RT.EXPLAIN key`: what this leader holds for `key` and, for a string, the writes it applied
/// and the concurrent ones last-write-wins discarded, one line each, oldest first.
fn explain(w: &Writer<'_, '_, '_>, keys: &Keys, key: &str) -> Answer {
    let mut lines = Vec::new();
    let (internal, siblings) = keys.string(key)?;
    match kind(w, keys, key)? {
        Kind::None => lines.push(format!("{key}: nothing here")),
        Kind::String if siblings => {
            let read = w.txn.siblings(internal.as_str()).map_err(leader_error)?;
            let siblings = read.map(|r| r.siblings).unwrap_or_default();
            lines.push(format!("{key}: a string with siblings ({internal}), {} now:", siblings.len()));
            for (dot, value) in &siblings {
                lines.push(format!("sibling {} = {:?}", keys.dot(*dot), String::from_utf8_lossy(value.as_bytes())));
            }
        }
        Kind::String => {
            let read = w.txn.get(internal.as_str()).map_err(leader_error)?;
            if let Some(r) = read.and_then(|r| r.value.map(|v| (v, r.dot, r.hlc))) {
                let (value, dot, hlc) = r;
                lines.push(format!(
                    "{key}: a last-write-wins string ({internal}) = {:?}, written by {} at {hlc}",
                    String::from_utf8_lossy(value.as_bytes()),
                    keys.dot(dot)
                ));
            }
        }
        Kind::Counter => {
            let n = counter(w, key)?.unwrap_or(0);
            lines.push(format!(
                "{key}: a counter ({COUNTERS}/{key}) = {n}: every leader's increments add up, none is discarded"
            ));
        }
        Kind::Set => {
            let n = members(w, keys, key)?.len();
            lines.push(format!(
                "{key}: a set ({SETS}/{key}) of {n}: adds win over concurrent removes, none is discarded"
            ));
        }
    }
    if !siblings {
        if let Some(history) = w.txn.replica().explain(&internal) {
            if history.forgotten > 0 {
                lines.push(format!("({} earlier decisions forgotten)", history.forgotten));
            }
            for event in &history.events {
                lines.push(describe(keys, event));
            }
        }
    }
    Ok(Reply::Array(lines.into_iter().map(Reply::bulk).collect()))
}

/// A value as `RT.EXPLAIN` shows it: quoted, and marked when the history cut it.
fn shown(value: Option<&Value>, len: usize) -> String {
    value.map_or_else(
        || "a delete".to_owned(),
        |v| {
            let text = format!("{:?}", String::from_utf8_lossy(v.as_bytes()));
            if v.as_bytes().len() < len {
                format!("{text}… (cut; {len} bytes)")
            } else {
                text
            }
        },
    )
}

fn describe(keys: &Keys, event: &KeyEvent) -> String {
    let stamp =
        |hlc: &Option<roundtable_runtime::clock::HlcTimestamp>| hlc.map_or_else(String::new, |h| format!(" at {h}"));
    match event {
        KeyEvent::Applied { dot, hlc, previous, delete } => {
            let what = if *delete { "delete" } else { "write" };
            let replaced = previous
                .map_or_else(|| " (first write seen here)".to_owned(), |p| format!(" replacing {}", keys.dot(p)));
            format!("applied {what} {} at {hlc}{replaced}", keys.dot(*dot))
        }
        KeyEvent::Replaced { by, replaced, value, value_len } => format!(
            "replaced {} = {} by {}, learned from a peer that had seen both (a later write, or last-write-wins there)",
            keys.dot(*replaced),
            shown(value.as_ref(), *value_len),
            keys.dot(*by)
        ),
        KeyEvent::Discarded { kept, kept_hlc, discarded, discarded_hlc, value, value_len } => {
            let value = shown(value.as_ref(), *value_len);
            format!(
                "discarded {}{} = {value}: concurrent with {}{}, which has the later timestamp",
                keys.dot(*discarded),
                stamp(discarded_hlc),
                keys.dot(*kept),
                stamp(kept_hlc)
            )
        }
    }
}
