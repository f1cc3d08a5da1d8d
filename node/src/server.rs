//! The Redis-protocol front end: each connection's requests become reads and writes at the
//! leader this node hosts.
//!
//! | command | keyspace (resolution) | reply |
//! |---|---|---|
//! | `GET k`, `SET k v [NX\|XX] [GET]`, `DEL k …`, `MGET`, `MSET`, `EXISTS`, `TYPE` | `s/k` (last-write-wins), or `v/k` (siblings) under a `redis.siblings` prefix | as Redis |
//! | `INCR k`, `DECR k`, `INCRBY k n`, `DECRBY k n` | `cnt/k` (PN-counter CRDT) | the new count |
//! | `SADD k m …`, `SREM k m …`, `SMEMBERS k`, `SISMEMBER k m`, `SCARD k` | `set/k` (add-wins OR-set CRDT) | as Redis |
//! | `WAIT numleaders timeout` | | how many other leaders hold this connection's last write |
//! | `RT.SIBLINGS k`, `RT.PUT k context v` | `v/k` | `[context, [value …]]`; `OK` |
//! | `RT.EXPLAIN k` | any | what this leader holds for `k`, the writes it applied and those it discarded |
//! | `PING`, `ECHO`, `HELLO [2\|3]`, `AUTH`, `SELECT 0`, `COMMAND`, `CLIENT ID\|SETNAME\|GETNAME`, `INFO`, `DBSIZE`, `QUIT` | | |
//!
//! `GET` of a key that holds a counter returns the count, as Redis does for a number written by
//! `INCR`. Counters are exact under concurrency (each node's increments are its own), unlike a
//! last-write-wins string. What cannot be honoured in a multi-leader setting (expiry, other
//! databases) is refused with `-ERR`, never ignored. A request that breaks the protocol gets
//! `-ERR Protocol error: …` and the connection is closed; no input panics the node.
//!
//! The data commands (see [`crate::commands`]) of a pipeline run at the leader in one message
//! per run of consecutive data commands; their replies go out together, after one wait for the
//! disk when writes are durable.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use roundtable_actors::{Cluster, LeaderHandle, Liveness};
use roundtable_runtime::Dot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::commands::{self, data_command, is_data, leader_error, wrong_args, Keys, Outcome};
use crate::resp::{parse_request_spans, Limits, Protocol, Reply};

pub use crate::commands::{COUNTERS, SETS, SIBLINGS, STRINGS};

/// The most client connections at once; one more is answered `-ERR max number of clients
/// reached` and closed.
pub const MAX_CLIENTS: usize = 4096;

/// The most bytes a connection may have buffered that do not yet form a whole request: with at
/// most [`MAX_CLIENTS`] connections, the front end's input buffers stay under 16 GiB in all,
/// and in practice far less (a buffer grows only as far as a client's largest request).
const MAX_BUFFERED: usize = 4 * 1024 * 1024;

/// The longest bulk string a client may send: the longest value (keys are shorter). A longer one
/// is a protocol error, as beyond Redis' `proto-max-bulk-len`.
const MAX_BULK: usize = roundtable_runtime::entry::MAX_VALUE_BYTES;

/// The longest `WAIT` (also `WAIT n 0`, which Redis lets wait for ever).
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// What the front end needs: the cluster, whether writes wait for the disk, the password and
/// the key mapping.
#[derive(Clone)]
pub struct Front {
    /// The cluster of this node (its hosted leader answers).
    pub cluster: Cluster,
    /// With `Some(timeout)`, a write is answered once it is fsynced at this node (the durable
    /// write concern); `None`: once applied in memory. The writes of one pipeline are applied
    /// in order and then wait for the disk together, so that they share an fsync.
    pub durable: Option<Duration>,
    /// The password clients must `AUTH` with first, if any.
    pub password: Option<String>,
    /// How Redis keys map to keyspaces.
    pub keys: Arc<Keys>,
}

/// One client connection's state.
struct Session {
    id: u64,
    name: Option<String>,
    protocol: Protocol,
    authenticated: bool,
    /// This connection's last write, for `WAIT`.
    last_write: Option<Dot>,
}

static CLIENT_IDS: AtomicU64 = AtomicU64::new(1);

/// Serves Redis clients on `listener` for ever, at the leader this node hosts.
pub async fn serve(listener: TcpListener, front: Front) {
    let clients = Arc::new(AtomicUsize::new(0));
    loop {
        let (mut stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, typically: wait for some to be released.
                tracing::warn!(error = %e, "redis accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
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
            let session = Session {
                id: CLIENT_IDS.fetch_add(1, Ordering::Relaxed),
                name: None,
                protocol: Protocol::Resp2,
                authenticated: front.password.is_none(),
                last_write: None,
            };
            if let Err(e) = connection(&mut stream, &front, session, &clients).await {
                tracing::debug!(%remote, error = %e, "redis connection ended");
            }
            clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// A reply waiting to be sent, whether it answers a write that must be durable first, and the
/// protocol it goes out in (a `HELLO` in a pipeline changes it for the replies after it).
type Pending = (Reply, bool, Protocol);

/// The most data commands of a pipeline run in one turn of the leader: a longer pipeline takes
/// several, so that the leader's other work (replication, timers) waits for none too long.
const TURN_COMMANDS: usize = 1024;

async fn connection(
    stream: &mut TcpStream,
    front: &Front,
    mut s: Session,
    clients: &AtomicUsize,
) -> std::io::Result<()> {
    let limits = Limits { max_bulk_bytes: MAX_BULK, ..Limits::default() };
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BYTES);
    let mut chunk = vec![0u8; READ_BYTES];
    let mut out = Vec::new();
    let mut replies: Vec<Pending> = Vec::new();
    let mut parsed = Parsed::default();
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        // Every whole request in the buffer, answered in order with one write (pipelining).
        let mut used = 0;
        let mut broken = None;
        loop {
            let first = parsed.args.len();
            match parse_request_spans(&buf[used..], &limits, &mut parsed.args) {
                Ok(Some(consumed)) => {
                    for span in &mut parsed.args[first..] {
                        *span = span.start + used..span.end + used;
                    }
                    if parsed.args.len() > first {
                        parsed.requests.push(first..parsed.args.len());
                    }
                    used += consumed;
                }
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        if used == 0 && broken.is_none() {
            // No whole request yet: read on (nothing is copied while a request arrives).
            if buf.len() > MAX_BUFFERED {
                stream.write_all(b"-ERR Protocol error: request too large\r\n").await?;
                return Ok(());
            }
            continue;
        }
        // The requests' bytes leave with them (no copy); what follows, a request still
        // arriving, stays.
        let mut rest = Vec::with_capacity((buf.len() - used).max(READ_BYTES));
        rest.extend_from_slice(&buf[used..]);
        buf.truncate(used);
        let mut bytes = std::mem::replace(&mut buf, rest);
        for request in &parsed.requests {
            // Upper-cased in place: a command name costs no allocation.
            bytes[parsed.args[request.start].clone()].make_ascii_uppercase();
        }
        let bytes = Arc::new(bytes);
        let quit = answer_all(front, &mut s, clients, &bytes, &mut parsed, &mut replies).await;
        finish(front, &mut replies, &mut out).await;
        if let Some(e) = broken {
            e.reply().encode_as(s.protocol, &mut out);
            stream.write_all(&out).await?;
            return Ok(());
        }
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

/// How much a connection reads at once.
const READ_BYTES: usize = 16 * 1024;

/// The requests of one read: the arguments of all, as ranges of the read's bytes, and each
/// request's arguments as a range of those.
#[derive(Debug, Default)]
struct Parsed {
    args: Vec<Range<usize>>,
    requests: Vec<Range<usize>>,
}

/// Answers the requests of `parsed` (whose bytes are `bytes`) in order into `replies`; runs of
/// data commands go to the leader as one message. `true` when the connection should close
/// (`QUIT`).
async fn answer_all(
    front: &Front,
    s: &mut Session,
    clients: &AtomicUsize,
    bytes: &Arc<Vec<u8>>,
    parsed: &mut Parsed,
    replies: &mut Vec<Pending>,
) -> bool {
    let mut batch = Batch::default();
    let mut quit = false;
    for request in &parsed.requests {
        let args = &parsed.args[request.clone()];
        let name = &bytes[args[0].clone()];
        if let Some(command) = data_command(name).filter(|_| s.authenticated) {
            batch.push(command, args);
            if batch.len() >= TURN_COMMANDS {
                run_batch(front, s, bytes, &mut batch, replies).await;
            }
            continue;
        }
        run_batch(front, s, bytes, &mut batch, replies).await;
        let name = String::from_utf8_lossy(name).into_owned();
        let rest: Vec<Vec<u8>> = args[1..].iter().map(|span| bytes[span.clone()].to_vec()).collect();
        let (reply, close) = session_command(front, s, clients, &name, &rest).await;
        replies.push((reply, false, s.protocol));
        if close {
            quit = true;
            break;
        }
    }
    if !quit {
        run_batch(front, s, bytes, &mut batch, replies).await;
    }
    parsed.args.clear();
    parsed.requests.clear();
    quit
}

/// Data commands for one turn of the leader: their arguments, as ranges of the read's bytes,
/// and each command's as a range of those.
#[derive(Debug, Default)]
struct Batch {
    args: Vec<Range<usize>>,
    /// Each command's name and its arguments' range in `args` (the name's span included).
    commands: Vec<(&'static str, Range<usize>)>,
}

impl Batch {
    fn push(&mut self, name: &'static str, args: &[Range<usize>]) {
        let first = self.args.len();
        self.args.extend_from_slice(args);
        self.commands.push((name, first..self.args.len()));
    }

    fn len(&self) -> usize {
        self.commands.len()
    }
}

/// Runs the data commands of `batch` at the leader in one turn.
async fn run_batch(
    front: &Front,
    s: &mut Session,
    bytes: &Arc<Vec<u8>>,
    batch: &mut Batch,
    replies: &mut Vec<Pending>,
) {
    if batch.len() == 0 {
        return;
    }
    let work = std::mem::take(batch);
    let count = work.len();
    let Some(leader) = hosted(&front.cluster) else {
        replies.extend((0..count).map(|_| (Reply::error("ERR no leader hosted here"), false, s.protocol)));
        return;
    };
    let keys = front.keys.clone();
    let bytes = bytes.clone();
    let outcomes: Result<Vec<Outcome>, _> = leader
        .atomically(move |txn| {
            let mut argv: Vec<&[u8]> = Vec::new();
            work.commands
                .iter()
                .map(|(name, args)| {
                    argv.clear();
                    argv.extend(work.args[args.clone()].iter().map(|span| &bytes[span.clone()]));
                    commands::run(txn, &keys, name, &argv[1..])
                })
                .collect::<Vec<Outcome>>()
        })
        .await;
    match outcomes {
        Ok(outcomes) => {
            for (reply, wrote) in outcomes {
                if wrote.is_some() {
                    s.last_write = wrote;
                }
                replies.push((reply, wrote.is_some(), s.protocol));
            }
        }
        Err(e) => replies.extend((0..count).map(|_| (leader_error(&e), false, s.protocol))),
    }
}

/// Encodes `replies` into `out`; when one of them is a write's and writes are durable, first
/// waits until the leader's disk has every write applied so far (one fsync for the pipeline),
/// and answers each write with the error instead if it does not.
async fn finish(front: &Front, replies: &mut Vec<Pending>, out: &mut Vec<u8>) {
    let mut failed = None;
    if let (Some(timeout), true) = (front.durable, replies.iter().any(|(_, wrote, _)| *wrote)) {
        if let Some(leader) = hosted(&front.cluster) {
            failed = leader.synced(timeout).await.err().map(|e| leader_error(&e));
        }
    }
    for (reply, wrote, protocol) in replies.drain(..) {
        match &failed {
            Some(error) if wrote => error.encode_as(protocol, out),
            _ => reply.encode_as(protocol, out),
        }
    }
}

fn hosted(cluster: &Cluster) -> Option<&LeaderHandle> {
    cluster.leaders().next()
}

const NOAUTH: &str = "NOAUTH Authentication required.";

/// The Redis version a node follows, for clients that decide features by it.
const REDIS_VERSION: &str = "7.0.0";

/// A client name as Redis allows it: printable, no spaces.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| b > b' ' && b < 0x7f)
}

/// Answers a command that is not a data command (or any command before `AUTH`); `true` when
/// the connection should close after the reply.
async fn session_command(
    front: &Front,
    s: &mut Session,
    clients: &AtomicUsize,
    name: &str,
    rest: &[Vec<u8>],
) -> (Reply, bool) {
    let reply = match (name, rest.len()) {
        ("QUIT", _) => return (Reply::ok(), true),
        ("AUTH", 1 | 2) => auth(front, s, rest),
        ("AUTH", _) => Reply::error("ERR syntax error"),
        ("HELLO", _) => hello(front, s, rest),
        _ if !s.authenticated => Reply::error(NOAUTH),
        ("PING", 0) => Reply::Simple("PONG".into()),
        ("PING", 1) | ("ECHO", 1) => Reply::bulk(rest[0].clone()),
        ("SELECT", 1) if rest[0] == b"0" => Reply::ok(),
        ("SELECT", 1) => Reply::error("ERR only database 0 exists on a roundtable node"),
        ("COMMAND", _) => command_info(rest),
        ("CLIENT", n) if n >= 1 => client(s, rest),
        ("INFO", 0 | 1) => {
            info(front, clients, rest.first().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())).await
        }
        ("WAIT", 2) => wait(front, s, &rest[0], &rest[1]).await,
        ("PING" | "ECHO" | "SELECT" | "INFO" | "WAIT" | "CLIENT", _) => wrong_args(name),
        _ if is_data(name) => wrong_args(name),
        _ => {
            let mut shown = String::new();
            for a in rest.iter().take(4) {
                shown.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
            }
            Reply::error(format!(
                "ERR unknown command '{}', with args beginning with: {shown}",
                name.to_ascii_lowercase()
            ))
        }
    };
    (reply, false)
}

/// Compares without stopping at the first difference, so the time taken does not tell how much
/// of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// `AUTH password` or `AUTH default password`.
fn auth(front: &Front, s: &mut Session, rest: &[Vec<u8>]) -> Reply {
    let Some(password) = &front.password else {
        // As Redis without `requirepass`: the default user takes any password.
        return match rest {
            [user, _] if user.as_slice() == b"default" => Reply::ok(),
            [_, _] => Reply::error("WRONGPASS invalid username-password pair or user is disabled."),
            _ => Reply::error(
                "ERR AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ),
        };
    };
    let (user, given) = match rest {
        [given] => (b"default".as_slice(), given),
        [user, given] => (user.as_slice(), given),
        _ => return Reply::error("ERR syntax error"),
    };
    if user == b"default" && same_secret(given, password.as_bytes()) {
        s.authenticated = true;
        Reply::ok()
    } else {
        tracing::warn!(client = s.id, "redis client gave a wrong password");
        Reply::error("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
fn hello(front: &Front, s: &mut Session, rest: &[Vec<u8>]) -> Reply {
    let mut protocol = s.protocol;
    let mut at = 0;
    if let Some(version) = rest.first() {
        protocol = match version.as_slice() {
            b"2" => Protocol::Resp2,
            b"3" => Protocol::Resp3,
            _ => return Reply::error("NOPROTO unsupported protocol version"),
        };
        at = 1;
    }
    let (mut name, mut credentials) = (None, None);
    while at < rest.len() {
        match rest[at].to_ascii_uppercase().as_slice() {
            b"AUTH" if at + 2 < rest.len() => {
                credentials = Some(&rest[at + 1..at + 3]);
                at += 3;
            }
            b"SETNAME" if at + 1 < rest.len() => {
                if !valid_client_name(&rest[at + 1]) {
                    return Reply::error("ERR Client names cannot contain spaces, newlines or special characters.");
                }
                name = Some(String::from_utf8_lossy(&rest[at + 1]).into_owned());
                at += 2;
            }
            _ => {
                return Reply::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&rest[at])
                ))
            }
        }
    }
    // Applied only once every option has parsed.
    if let Some(credentials) = credentials {
        let reply = auth(front, s, credentials);
        if matches!(reply, Reply::Error(_)) {
            return reply;
        }
    }
    if !s.authenticated {
        return Reply::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> \
             AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
             version at the same time",
        );
    }
    if name.is_some() {
        s.name = name;
    }
    s.protocol = protocol;
    let proto = if protocol == Protocol::Resp3 { 3 } else { 2 };
    Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("roundtable")),
        // The Redis version whose protocol and commands it follows (clients decide features by
        // it), as `INFO` says; `roundtable_version` is this node's own.
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (Reply::bulk("roundtable_version"), Reply::bulk(env!("CARGO_PKG_VERSION"))),
        (Reply::bulk("proto"), Reply::Integer(proto)),
        (Reply::bulk("id"), Reply::Integer(i64::try_from(s.id).unwrap_or(i64::MAX))),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(Vec::new())),
    ])
}

/// `CLIENT ID | SETNAME name | GETNAME | SETINFO … | INFO`.
fn client(s: &mut Session, rest: &[Vec<u8>]) -> Reply {
    let sub = String::from_utf8_lossy(&rest[0]).to_ascii_uppercase();
    match (sub.as_str(), rest.len()) {
        ("ID", 1) => Reply::Integer(i64::try_from(s.id).unwrap_or(i64::MAX)),
        ("GETNAME", 1) => s.name.clone().map_or(Reply::Nil, Reply::bulk),
        ("SETNAME", 2) => {
            if !valid_client_name(&rest[1]) {
                return Reply::error("ERR Client names cannot contain spaces, newlines or special characters.");
            }
            s.name = (!rest[1].is_empty()).then(|| String::from_utf8_lossy(&rest[1]).into_owned());
            Reply::ok()
        }
        // Client libraries announce themselves (lib-name, lib-ver); nothing to keep.
        ("SETINFO", 3) => Reply::ok(),
        ("INFO", 1) => Reply::bulk(format!(
            "id={} name={} db=0 resp={}\n",
            s.id,
            s.name.as_deref().unwrap_or(""),
            if s.protocol == Protocol::Resp3 { 3 } else { 2 }
        )),
        _ => Reply::error(format!("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try CLIENT HELP.")),
    }
}

/// `WAIT numleaders timeout`: waits until `numleaders` other leaders hold this connection's last
/// write, or `timeout` milliseconds (0: [`MAX_WAIT`]); answers how many do.
async fn wait(front: &Front, s: &Session, leaders: &[u8], timeout: &[u8]) -> Reply {
    let number = |a: &[u8]| std::str::from_utf8(a).ok().and_then(|t| t.parse::<u64>().ok());
    let (Some(wanted), Some(ms)) = (number(leaders), number(timeout)) else {
        return Reply::error("ERR value is not an integer or out of range");
    };
    let Some(leader) = hosted(&front.cluster) else { return Reply::error("ERR no leader hosted here") };
    let others = front.cluster.names().len().saturating_sub(1);
    let Some(dot) = s.last_write else {
        // Nothing to wait for: as Redis answers without writes, the peers that are up.
        return match front.cluster.supervisor().send(Liveness).await {
            Ok((live, _)) => Reply::Integer(i64::try_from(live.len().saturating_sub(1)).unwrap_or(0)),
            Err(e) => leader_error(e),
        };
    };
    let limit = if ms == 0 { MAX_WAIT } else { Duration::from_millis(ms).min(MAX_WAIT) };
    let wanted = usize::try_from(wanted).unwrap_or(usize::MAX).min(others);
    match leader.held_by(dot, wanted + 1, limit).await {
        Ok(holders) => Reply::Integer(i64::try_from(holders.saturating_sub(1)).unwrap_or(0)),
        Err(e) => leader_error(&e),
    }
}

/// A command as `COMMAND` describes it: name, arity (negative: at least), flags, first key, last
/// key, step.
type CommandInfo = (&'static str, i64, &'static [&'static str], i64, i64, i64);

/// The commands, as `COMMAND` describes them.
const COMMANDS: &[CommandInfo] = &[
    ("get", 2, &["readonly", "fast"], 1, 1, 1),
    ("set", -3, &["write", "denyoom"], 1, 1, 1),
    ("del", -2, &["write"], 1, -1, 1),
    ("unlink", -2, &["write", "fast"], 1, -1, 1),
    ("exists", -2, &["readonly", "fast"], 1, -1, 1),
    ("type", 2, &["readonly", "fast"], 1, 1, 1),
    ("mget", -2, &["readonly", "fast"], 1, -1, 1),
    ("mset", -3, &["write", "denyoom"], 1, -1, 2),
    ("incr", 2, &["write", "denyoom", "fast"], 1, 1, 1),
    ("decr", 2, &["write", "denyoom", "fast"], 1, 1, 1),
    ("incrby", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("decrby", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("sadd", -3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("srem", -3, &["write", "fast"], 1, 1, 1),
    ("smembers", 2, &["readonly"], 1, 1, 1),
    ("sismember", 3, &["readonly", "fast"], 1, 1, 1),
    ("scard", 2, &["readonly", "fast"], 1, 1, 1),
    ("dbsize", 1, &["readonly", "fast"], 0, 0, 0),
    ("wait", 3, &["noscript"], 0, 0, 0),
    ("rt.siblings", 2, &["readonly"], 1, 1, 1),
    ("rt.put", 4, &["write", "denyoom"], 1, 1, 1),
    ("rt.explain", 2, &["readonly"], 1, 1, 1),
    ("ping", -1, &["fast", "stale"], 0, 0, 0),
    ("echo", 2, &["fast"], 0, 0, 0),
    ("hello", -1, &["noscript", "loading", "stale", "fast", "no_auth"], 0, 0, 0),
    ("auth", -2, &["noscript", "loading", "stale", "fast", "no_auth"], 0, 0, 0),
    ("select", 2, &["loading", "stale", "fast"], 0, 0, 0),
    ("command", -1, &["loading", "stale"], 0, 0, 0),
    ("client", -2, &["noscript", "loading", "stale"], 0, 0, 0),
    ("info", -1, &["loading", "stale"], 0, 0, 0),
    ("quit", -1, &["loading", "stale", "fast", "no_auth"], 0, 0, 0),
];

fn describe_command(c: &CommandInfo) -> Reply {
    let flags = c.2.iter().map(|f| Reply::Simple((*f).to_owned())).collect();
    // Redis 7's ten fields; ACL categories, tips, key specifications and subcommands empty.
    Reply::Array(vec![
        Reply::bulk(c.0),
        Reply::Integer(c.1),
        Reply::Set(flags),
        Reply::Integer(c.3),
        Reply::Integer(c.4),
        Reply::Integer(c.5),
        Reply::Set(Vec::new()),
        Reply::Set(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO name …`, `COMMAND DOCS` (no documentation: an empty
/// map, which `redis-cli` accepts).
fn command_info(rest: &[Vec<u8>]) -> Reply {
    let sub = rest.first().map(|a| String::from_utf8_lossy(a).to_ascii_uppercase());
    match sub.as_deref() {
        None => Reply::Array(COMMANDS.iter().map(describe_command).collect()),
        Some("COUNT") => Reply::Integer(i64::try_from(COMMANDS.len()).unwrap_or(0)),
        Some("DOCS") => Reply::Map(Vec::new()),
        Some("INFO") => Reply::Array(
            rest[1..]
                .iter()
                .map(|name| {
                    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
                    COMMANDS.iter().find(|c| c.0 == name).map_or(Reply::NilArray, describe_command)
                })
                .collect(),
        ),
        Some(other) => Reply::error(format!("ERR unknown subcommand '{other}'. Try COMMAND HELP.")),
    }
}

/// `INFO [section]`: `server`, `clients`, `replication` (the default: all three).
async fn info(front: &Front, clients: &AtomicUsize, section: Option<String>) -> Reply {
    let all = matches!(section.as_deref(), None | Some("all" | "default" | "everything"));
    let wants = |name: &str| all || section.as_deref() == Some(name);
    let mut s = String::new();
    let cluster = &front.cluster;
    let here = hosted(cluster).map_or("", |l| l.name());
    if wants("server") {
        s.push_str(&format!(
            "# Server\r\nroundtable_version:{}\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\n\
             process_id:{}\r\nleader:{here}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        ));
    }
    if wants("clients") {
        s.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{MAX_CLIENTS}\r\n\r\n",
            clients.load(Ordering::Relaxed)
        ));
    }
    if wants("replication") {
        replication(cluster, here, &mut s).await;
    }
    Reply::bulk(s)
}

/// The `# Replication` section: members, peers and their lag, the clock, discards, quarantines.
async fn replication(cluster: &Cluster, here: &str, s: &mut String) {
    // `master`, as Redis clients expect of a node that takes writes (every leader does).
    s.push_str("# Replication\r\nrole:master\r\n");
    s.push_str(&format!("leader:{here}\r\nmembers:{}\r\n", cluster.names().join(",")));
    let mut live_set = None;
    if let Ok((live, rewires)) = cluster.supervisor().send(Liveness).await {
        live_set = Some(live);
        let live: Vec<&str> =
            live.iter().filter_map(|id| cluster.names().get(id.index()).map(String::as_str)).collect();
        s.push_str(&format!("live:{}\r\nrewires:{rewires}\r\n", live.join(",")));
    }
    if let Some(leader) = hosted(cluster) {
        let status = leader
            .atomically(|txn| {
                let replica = txn.replica();
                (replica.peer_lag(), replica.quarantine().count(), replica.history_keys_forgotten())
            })
            .await;
        if let Ok((lags, quarantined, forgotten)) = status {
            s.push_str(&format!("connected_peers:{}\r\n", lags.len()));
            for (i, (peer, lag)) in lags.iter().enumerate() {
                let name = cluster.names().get(peer.index()).map_or("?", String::as_str);
                let state = match live_set {
                    Some(live) if live.contains(*peer) => "live",
                    Some(_) => "down",
                    None => "unknown",
                };
                let lag = lag.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
                s.push_str(&format!("peer{i}:name={name},state={state},lag_writes={lag}\r\n"));
            }
            s.push_str(&format!("quarantined:{quarantined}\r\nexplain_keys_forgotten:{forgotten}\r\n"));
        }
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
            "writes_accepted:{}\r\nlww_discarded:{}\r\nlww_decisions:{}\r\nduplicates_dropped:{}\r\n\
             peer_input_rejected:{}\r\ndisk_commits:{}\r\ndisk_records:{}\r\n",
            m.writes,
            m.lww_discarded,
            m.lww_decisions,
            m.duplicates_dropped,
            m.rejected,
            m.disk_commits,
            m.disk_records
        ));
    }
}
