//! The Redis-protocol front end: each connection's requests become reads and writes at the
//! leader this node hosts.
//!
//! | command | keyspace (resolution) | reply |
//! |---|---|---|
//! | `GET k`, `SET k v`, `DEL k …` | `s/k` (last-write-wins) | value or nil; `OK`; keys deleted |
//! | `INCR k`, `DECR k`, `INCRBY k n`, `DECRBY k n` | `cnt/k` (PN-counter CRDT) | the new count |
//! | `SADD k m …`, `SREM k m …`, `SMEMBERS k` | `set/k` (add-wins OR-set CRDT) | members added or removed; the members |
//! | `PING [msg]`, `ECHO msg`, `INFO [replication]`, `SELECT 0`, `QUIT` | | |
//!
//! `GET` of a key that holds a counter returns the count, as Redis does for a number written by
//! `INCR`. Counters are exact under concurrency (each node's increments are its own), unlike
//! a last-write-wins string. What cannot be honoured in a multi-leader setting (options of
//! `SET`, other databases) is refused with `-ERR`, never ignored. A request that breaks the
//! protocol gets `-ERR Protocol error: …` and the connection is closed; no input panics the
//! node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use roundtable_actors::{Cluster, GetCrdt, LeaderHandle, Liveness, Put, Update, Write};
use roundtable_runtime::resolution::CrdtState;
use roundtable_runtime::DataError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::resp::{parse_request, Limits, Reply};

/// The most client connections at once; one more is answered `-ERR max number of clients
/// reached` and closed.
pub const MAX_CLIENTS: usize = 1024;

/// The most bytes a connection may have buffered that do not yet form a whole request: with at
/// most [`MAX_CLIENTS`] connections, the front end's input buffers stay under 4 GiB in all.
const MAX_BUFFERED: usize = 4 * 1024 * 1024;

/// The longest bulk string a client may send: the longest value (keys are shorter). A longer one
/// is a protocol error, as beyond Redis' `proto-max-bulk-len`.
const MAX_BULK: usize = roundtable_runtime::entry::MAX_VALUE_BYTES;

/// Keyspace of strings (`GET`, `SET`, `DEL`).
pub const STRINGS: &str = "s";
/// Keyspace of counters (`INCR`, `INCRBY`, …).
pub const COUNTERS: &str = "cnt";
/// Keyspace of sets (`SADD`, `SREM`, `SMEMBERS`).
pub const SETS: &str = "set";

/// What the front end needs: the cluster, and whether writes wait for the disk.
#[derive(Clone)]
pub struct Front {
    /// The cluster of this node (its hosted leader answers).
    pub cluster: Cluster,
    /// With `Some(timeout)`, a write is answered once it is fsynced at this node (the durable
    /// write concern); `None`: once applied in memory. The writes of one pipeline are applied
    /// in order and then wait for the disk together, so that they share an fsync.
    pub durable: Option<std::time::Duration>,
}

/// The commands that write.
const WRITES: [&str; 9] = ["SET", "MSET", "DEL", "INCR", "DECR", "INCRBY", "DECRBY", "SADD", "SREM"];

/// Serves Redis clients on `listener` for ever, at the leader this node hosts.
pub async fn serve(listener: TcpListener, front: Front) {
    let clients = Arc::new(AtomicUsize::new(0));
    loop {
        let (mut stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "redis accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        if clients.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%remote, "redis client refused: too many clients");
            let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
            continue;
        }
        // Replies go out as soon as they are written (pipelined replies are written together).
        let _ = stream.set_nodelay(true);
        let (front, clients) = (front.clone(), clients.clone());
        actix::spawn(async move {
            if let Err(e) = connection(&mut stream, &front).await {
                tracing::debug!(%remote, error = %e, "redis connection ended");
            }
            clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn connection(stream: &mut TcpStream, front: &Front) -> std::io::Result<()> {
    let limits = Limits { max_bulk_bytes: MAX_BULK, ..Limits::default() };
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    // The replies of the requests read so far, and whether each is a write's.
    let mut replies: Vec<(Reply, bool)> = Vec::new();
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        // Every whole request in the buffer, answered in order with one write (pipelining).
        let mut used = 0;
        let mut quit = false;
        loop {
            match parse_request(&buf[used..], &limits) {
                Ok(Some((args, consumed))) => {
                    used += consumed;
                    if args.is_empty() {
                        continue;
                    }
                    let (reply, close) = command(front, &args).await;
                    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
                    let wrote = WRITES.contains(&name.as_str()) && !matches!(reply, Reply::Error(_));
                    replies.push((reply, wrote));
                    if close {
                        quit = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    answer(front, &mut replies, &mut out).await;
                    e.reply().encode(&mut out);
                    stream.write_all(&out).await?;
                    return Ok(());
                }
            }
        }
        answer(front, &mut replies, &mut out).await;
        buf.drain(..used);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if quit {
            return Ok(());
        }
        if buf.len() > MAX_BUFFERED {
            stream.write_all(b"-ERR Protocol error: request too large\r\n").await?;
            return Ok(());
        }
    }
}

/// Encodes `replies` into `out`; when one of them is a write's and writes are durable, first
/// waits until the leader's disk has every write applied so far (one fsync for the pipeline),
/// and answers each write with the error instead if it does not.
async fn answer(front: &Front, replies: &mut Vec<(Reply, bool)>, out: &mut Vec<u8>) {
    let mut failed = None;
    if let (Some(timeout), true) = (front.durable, replies.iter().any(|(_, wrote)| *wrote)) {
        if let Some(leader) = hosted(&front.cluster) {
            failed = leader.synced(timeout).await.err().map(leader_error);
        }
    }
    for (reply, wrote) in replies.drain(..) {
        match &failed {
            Some(error) if wrote => error.encode(out),
            _ => reply.encode(out),
        }
    }
}

fn hosted(cluster: &Cluster) -> Option<&LeaderHandle> {
    cluster.leaders().next()
}

/// The leader this node hosts, or the error a client gets without one.
fn leader_of(cluster: &Cluster) -> Result<&LeaderHandle, Reply> {
    hosted(cluster).ok_or_else(|| Reply::error("ERR no leader hosted here"))
}

fn text(arg: &[u8]) -> Result<&str, Reply> {
    std::str::from_utf8(arg).map_err(|_| Reply::error("ERR keys must be UTF-8"))
}

fn wrong_args(name: &str) -> Reply {
    Reply::error(format!("ERR wrong number of arguments for '{}' command", name.to_ascii_lowercase()))
}

fn leader_error(e: impl std::fmt::Display) -> Reply {
    Reply::error(format!("ERR {e}"))
}

/// Answers one request; `true` when the connection should close after the reply.
async fn command(front: &Front, args: &[Vec<u8>]) -> (Reply, bool) {
    let cluster = &front.cluster;
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let rest = &args[1..];
    let reply = match (name.as_str(), rest.len()) {
        ("PING", 0) => Reply::Simple("PONG".into()),
        ("PING", 1) | ("ECHO", 1) => Reply::bulk(rest[0].clone()),
        ("PING", _) | ("ECHO", _) => wrong_args(&name),
        ("QUIT", _) => return (Reply::ok(), true),
        ("SELECT", 1) if rest[0] == b"0" => Reply::ok(),
        ("SELECT", _) => Reply::error("ERR only database 0 exists on a roundtable node"),
        // redis-cli asks for command documentation when it starts; it has none to show here.
        ("COMMAND", _) => Reply::Array(Vec::new()),
        ("CLIENT", _) => Reply::ok(),
        ("INFO", 0) | ("INFO", 1) => info(cluster).await,
        ("GET", 1) => get(cluster, &rest[0]).await.unwrap_or_else(|e| e),
        ("SET", 2) => set(front, &rest[0], &rest[1]).await.unwrap_or_else(|e| e),
        ("SET", n) if n > 2 => Reply::error(
            "ERR SET options (EX, PX, NX, XX, GET, KEEPTTL) are not supported by a multi-leader node: \
             each leader accepts writes on its own, so conditions and expiry cannot be honoured",
        ),
        ("DEL", n) if n >= 1 => del(front, rest).await.unwrap_or_else(|e| e),
        ("EXISTS", n) if n >= 1 => exists(cluster, rest).await.unwrap_or_else(|e| e),
        ("MGET", n) if n >= 1 => {
            let mut values = Vec::with_capacity(n);
            for key in rest {
                match get(cluster, key).await {
                    Ok(value) => values.push(value),
                    Err(e) => return (e, false),
                }
            }
            Reply::Array(values)
        }
        ("MSET", n) if n >= 2 && n % 2 == 0 => {
            for pair in rest.chunks(2) {
                if let Err(e) = set(front, &pair[0], &pair[1]).await {
                    return (e, false);
                }
            }
            Reply::ok()
        }
        ("SISMEMBER", 2) => match members(cluster, &rest[0]).await {
            Ok(m) => Reply::Integer(i64::from(m.iter().any(|e| *e == rest[1]))),
            Err(e) => e,
        },
        ("SCARD", 1) => match members(cluster, &rest[0]).await {
            Ok(m) => Reply::Integer(i64::try_from(m.len()).unwrap_or(i64::MAX)),
            Err(e) => e,
        },
        ("INCR", 1) => incr(front, &rest[0], 1).await.unwrap_or_else(|e| e),
        ("DECR", 1) => incr(front, &rest[0], -1).await.unwrap_or_else(|e| e),
        ("INCRBY", 2) | ("DECRBY", 2) => match std::str::from_utf8(&rest[1]).ok().and_then(|s| s.parse::<i64>().ok()) {
            Some(n) if name == "INCRBY" => incr(front, &rest[0], n).await.unwrap_or_else(|e| e),
            Some(n) => match n.checked_neg() {
                Some(n) => incr(front, &rest[0], n).await.unwrap_or_else(|e| e),
                None => Reply::error("ERR decrement would overflow"),
            },
            None => Reply::error("ERR value is not an integer or out of range"),
        },
        ("SADD", n) | ("SREM", n) if n >= 2 => {
            set_update(front, &name, &rest[0], &rest[1..]).await.unwrap_or_else(|e| e)
        }
        ("SMEMBERS", 1) => members(cluster, &rest[0])
            .await
            .map(|m| Reply::Array(m.into_iter().map(Reply::Bulk).collect()))
            .unwrap_or_else(|e| e),
        (
            "GET" | "SET" | "DEL" | "EXISTS" | "MGET" | "MSET" | "INCR" | "DECR" | "INCRBY" | "DECRBY" | "SADD"
            | "SREM" | "SMEMBERS" | "SISMEMBER" | "SCARD" | "INFO",
            _,
        ) => wrong_args(&name),
        _ => {
            let mut shown = String::new();
            for a in rest.iter().take(4) {
                shown.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
            }
            Reply::error(format!(
                "ERR unknown command '{}', with args beginning with: {shown}",
                String::from_utf8_lossy(&args[0])
            ))
        }
    };
    (reply, false)
}

async fn get(cluster: &Cluster, key: &[u8]) -> Result<Reply, Reply> {
    let key = text(key)?;
    let leader = leader_of(cluster)?;
    let read = leader.get(format!("{STRINGS}/{key}")).await.map_err(leader_error)?;
    if let Some(value) = read.and_then(|r| r.value) {
        return Ok(Reply::bulk(value.as_bytes().to_vec()));
    }
    match leader.get_crdt(format!("{COUNTERS}/{key}")).await.map_err(leader_error)? {
        Some(CrdtState::PnCounter(c)) => Ok(Reply::bulk(c.value().to_string())),
        _ => Ok(Reply::Nil),
    }
}

async fn set(front: &Front, key: &[u8], value: &[u8]) -> Result<Reply, Reply> {
    let key = text(key)?;
    let leader = leader_of(&front.cluster)?;
    let put = Put::new(format!("{STRINGS}/{key}"), value.to_vec());
    leader.send(put).await.map_err(leader_error)?.map_err(leader_error)?;
    Ok(Reply::ok())
}

/// How many of `keys` hold something: a live string, a counter, or a non-empty set (a key named
/// twice counts twice, as in Redis).
async fn exists(cluster: &Cluster, keys: &[Vec<u8>]) -> Result<Reply, Reply> {
    let mut count = 0;
    for key in keys {
        let string = !matches!(get(cluster, key).await?, Reply::Nil);
        if string || !members(cluster, key).await.unwrap_or_default().is_empty() {
            count += 1;
        }
    }
    Ok(Reply::Integer(count))
}

async fn del(front: &Front, keys: &[Vec<u8>]) -> Result<Reply, Reply> {
    let leader = leader_of(&front.cluster)?;
    let mut deleted = 0;
    for key in keys {
        let key = format!("{STRINGS}/{}", text(key)?);
        let live = leader.get(key.clone()).await.map_err(leader_error)?.is_some_and(|r| r.value.is_some());
        if live {
            send_write(leader, Write::new(key, Update::Delete)).await?;
            deleted += 1;
        }
    }
    Ok(Reply::Integer(deleted))
}

/// Sends a checked write; it is answered once applied (the disk wait is the pipeline's).
async fn send_write(leader: &LeaderHandle, write: Result<Write, DataError>) -> Result<(), Reply> {
    leader.write(write.map_err(leader_error)?).await.map(|_| ()).map_err(leader_error)
}

async fn count(leader: &LeaderHandle, key: &str) -> Result<i128, Reply> {
    match leader.send(GetCrdt::new(key)).await.map_err(leader_error)?.map_err(leader_error)? {
        Some(CrdtState::PnCounter(c)) => Ok(c.value()),
        None => Ok(0),
        Some(_) => Err(Reply::error("WRONGTYPE Operation against a key holding the wrong kind of value")),
    }
}

async fn incr(front: &Front, key: &[u8], by: i64) -> Result<Reply, Reply> {
    let key = format!("{COUNTERS}/{}", text(key)?);
    let leader = leader_of(&front.cluster)?;
    let now = count(leader, &key).await?;
    let next = now.checked_add(i128::from(by)).filter(|n| i64::try_from(*n).is_ok());
    let Some(next) = next else { return Err(Reply::error("ERR increment or decrement would overflow")) };
    let write =
        if by >= 0 { Write::increment(&key, by.unsigned_abs()) } else { Write::decrement(&key, by.unsigned_abs()) };
    send_write(leader, write).await?;
    // The count this leader holds now: the increment above and any that arrived meanwhile.
    let after = count(leader, &key).await.unwrap_or(next);
    Ok(Reply::Integer(i64::try_from(after).unwrap_or(i64::MAX)))
}

async fn members(cluster: &Cluster, key: &[u8]) -> Result<Vec<Vec<u8>>, Reply> {
    let key = format!("{SETS}/{}", text(key)?);
    let leader = leader_of(cluster)?;
    match leader.get_crdt(key).await.map_err(leader_error)? {
        Some(CrdtState::OrSet(set)) => Ok(set.value().into_iter().map(|v| v.as_bytes().to_vec()).collect()),
        None => Ok(Vec::new()),
        Some(_) => Err(Reply::error("WRONGTYPE Operation against a key holding the wrong kind of value")),
    }
}

async fn set_update(front: &Front, name: &str, key: &[u8], elements: &[Vec<u8>]) -> Result<Reply, Reply> {
    let before = members(&front.cluster, key).await?;
    let key = format!("{SETS}/{}", text(key)?);
    let leader = leader_of(&front.cluster)?;
    let mut changed = 0;
    let mut seen: Vec<&[u8]> = Vec::new();
    for element in elements {
        let present = before.iter().any(|b| b == element);
        let adding = name == "SADD";
        if present != adding && !seen.contains(&element.as_slice()) {
            changed += 1;
        }
        seen.push(element);
        let write = if adding { Write::add(&key, element.clone()) } else { Write::remove(&key, element.clone()) };
        send_write(leader, write).await?;
    }
    Ok(Reply::Integer(changed))
}

async fn info(cluster: &Cluster) -> Reply {
    let mut s = String::from("# Replication\r\nrole:leader\r\n");
    let here = hosted(cluster).map_or("", |l| l.name());
    s.push_str(&format!("leader:{here}\r\nmembers:{}\r\n", cluster.names().join(",")));
    if let Ok((live, rewires)) = cluster.supervisor().send(Liveness).await {
        let live: Vec<&str> =
            live.iter().filter_map(|id| cluster.names().get(id.index()).map(String::as_str)).collect();
        s.push_str(&format!("live:{}\r\nrewires:{rewires}\r\n", live.join(",")));
    }
    if let Ok(net) = cluster.transport().stats().await {
        s.push_str(&format!(
            "messages_sent:{}\r\nbytes_sent:{}\r\nlink_bytes:{}\r\nmessages_lost:{}\r\nrefused_links:{}\r\nrejected_frames:{}\r\n",
            net.messages(),
            net.bytes(),
            net.link_bytes,
            net.dropped,
            net.refused_links,
            net.rejected_frames
        ));
    }
    if let Some(Ok(health)) = match hosted(cluster) {
        Some(leader) => Some(leader.clock_health().await),
        None => None,
    } {
        let (health, offset_ns) = health;
        s.push_str(&format!("clock:{health}\r\nclock_fenced:{}\r\n", u8::from(health.is_fenced())));
        if let Some(ns) = offset_ns {
            s.push_str(&format!("clock_offset_ms:{:.3}\r\n", ns as f64 / 1e6));
        }
    }
    if let Ok(m) = cluster.metrics().await {
        s.push_str(&format!(
            "writes_accepted:{}\r\nlww_discarded:{}\r\nduplicates_dropped:{}\r\npeer_input_rejected:{}\r\n\
             disk_commits:{}\r\ndisk_records:{}\r\n",
            m.writes, m.lww_discarded, m.duplicates_dropped, m.rejected, m.disk_commits, m.disk_records
        ));
    }
    Reply::bulk(s)
}
