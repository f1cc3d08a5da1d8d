//! The Redis serialization protocol: requests in, replies out in RESP2 or, after `HELLO 3`, RESP3.
//!
//! A client sends a request in one of two forms. Client libraries and `redis-cli` send a
//! *multibulk*: `*<n>\r\n` followed by `n` bulk strings `$<len>\r\n<len bytes>\r\n`, so arguments
//! are binary-safe. A person typing into `telnet` sends an *inline* command: one line, split on
//! spaces and tabs, ended by `\n` with an optional `\r` before it. [`parse_request`] frames one
//! request from the front of a connection's buffer and says how many bytes it used; the caller
//! drains them and calls it again, so pipelined requests come out one at a time. It does no IO and
//! keeps no state: a request that has not fully arrived is `Ok(None)` and is parsed again, from
//! the start, once more bytes are in.
//!
//! Every length a client claims is checked against [`Limits`] before it is trusted, and nothing is
//! allocated in proportion to a claimed length, only to bytes that have arrived. A violation is a
//! [`ProtocolError`]; like Redis, the server answers it with `-ERR <message>` and closes the
//! connection, because the rest of the stream can no longer be framed.
//!
//! Replies are a [`Reply`] tree, written out by [`Reply::encode`]. The wire format follows
//! <https://redis.io/docs/reference/protocol-spec/>.
//!
//! ```
//! use roundtable_node::resp::{parse_request, Limits, Reply};
//!
//! let mut buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n".to_vec();
//! let limits = Limits::default();
//! let mut requests = Vec::new();
//! while let Some((args, consumed)) = parse_request(&buf, &limits)? {
//!     buf.drain(..consumed);
//!     if !args.is_empty() {
//!         requests.push(args);
//!     }
//! }
//! assert_eq!(requests, vec![vec![b"GET".to_vec(), b"k".to_vec()], vec![b"PING".to_vec()]]);
//!
//! let mut out = Vec::new();
//! Reply::Array(vec![Reply::bulk("v"), Reply::Nil]).encode(&mut out);
//! assert_eq!(out, b"*2\r\n$1\r\nv\r\n$-1\r\n");
//! # Ok::<(), roundtable_node::resp::ProtocolError>(())
//! ```

use std::ops::Range;

/// At most this many argument slots are reserved up front, whatever count a request claims.
const ARGS_PREALLOC_MAX: usize = 64;

/// Bounds on what one client request may claim, checked before anything is allocated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most arguments a multibulk request may have (older Redis versions allowed 1,048,576).
    pub max_args: usize,
    /// The longest bulk string, in bytes (Redis' `proto-max-bulk-len` is 512 MiB; ours is 16 MiB).
    pub max_bulk_bytes: usize,
    /// The longest inline command line, or `*`/`$` header line, in bytes without its line ending
    /// (Redis: 64 KiB).
    pub max_inline_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_args: 1_048_576, max_bulk_bytes: 16 * 1024 * 1024, max_inline_bytes: 64 * 1024 }
    }
}

/// A request that breaks the protocol. After one, the stream cannot be framed any more: the server
/// sends `-ERR <Display>\r\n` (see [`ProtocolError::reply`]) and closes the connection, as Redis
/// does. The messages are Redis' own where Redis has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The `*` count is not a canonical integer, or is above [`Limits::max_args`].
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `$` length is not a canonical integer, is negative, or is above [`Limits::max_bulk_bytes`].
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A multibulk element does not start with `$`.
    #[error("Protocol error: expected '$', got '{}'", .got.escape_ascii())]
    ExpectedBulk {
        /// The byte found instead of `$`.
        got: u8,
    },
    /// The bytes after a bulk string's data are not `\r\n`.
    #[error("Protocol error: expected CRLF after bulk string")]
    BulkNotTerminated,
    /// The `*` header line is longer than [`Limits::max_inline_bytes`].
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `$` header line is longer than [`Limits::max_inline_bytes`].
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An inline command line is longer than [`Limits::max_inline_bytes`].
    #[error("Protocol error: too big inline request")]
    TooBigInline,
}

impl ProtocolError {
    /// The reply the server sends before closing the connection: `-ERR Protocol error: …`.
    #[must_use]
    pub fn reply(&self) -> Reply {
        Reply::error(format!("ERR {self}"))
    }
}

/// Parses one request from the start of `buf`.
///
/// Returns `Ok(None)` while the request is incomplete, and `Ok(Some((args, consumed)))` once it is
/// whole, where `consumed > 0` is how many bytes of `buf` it used. `args` is empty for an empty
/// inline line and for `*0` or a negative count such as `*-1`; the caller skips those. Lengths must
/// be canonical integers as Redis writes them: no `+`, no leading zeros, no spaces.
///
/// # Errors
///
/// A [`ProtocolError`] when the bytes break the protocol or exceed `limits`; the connection should
/// then be answered with [`ProtocolError::reply`] and closed.
#[allow(clippy::type_complexity)] // spelled out so callers see the shape without an alias
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<(Vec<Vec<u8>>, usize)>, ProtocolError> {
    let mut spans = Vec::new();
    let consumed = parse_request_spans(buf, limits, &mut spans)?;
    Ok(consumed.map(|consumed| (spans.into_iter().map(|span| buf[span].to_vec()).collect(), consumed)))
}

/// [`parse_request`] without copying: the request's arguments are appended to `spans` as ranges
/// of `buf`, and the result is how many bytes of `buf` the request used. Nothing is appended
/// while the request is incomplete (`Ok(None)`) or broken.
///
/// ```
/// use roundtable_node::resp::{parse_request_spans, Limits};
///
/// let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
/// let mut spans = Vec::new();
/// assert_eq!(parse_request_spans(buf, &Limits::default(), &mut spans)?, Some(buf.len()));
/// assert_eq!(spans.iter().map(|s| &buf[s.clone()]).collect::<Vec<_>>(), [&b"GET"[..], b"k"]);
/// # Ok::<(), roundtable_node::resp::ProtocolError>(())
/// ```
///
/// # Errors
///
/// As [`parse_request`].
pub fn parse_request_spans(
    buf: &[u8],
    limits: &Limits,
    spans: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let before = spans.len();
    let parsed = match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits, spans),
        Some(_) => parse_inline(buf, limits, spans),
    };
    match parsed {
        Ok(Some(consumed)) => {
            debug_assert!(consumed > 0 && consumed <= buf.len(), "consumed {consumed} of {}", buf.len());
            Ok(Some(consumed))
        }
        other => {
            spans.truncate(before);
            other
        }
    }
}

fn parse_inline(buf: &[u8], limits: &Limits, spans: &mut Vec<Range<usize>>) -> Result<Option<usize>, ProtocolError> {
    let Some(newline) = find_newline(buf, 0, limits.max_inline_bytes, ProtocolError::TooBigInline)? else {
        return Ok(None);
    };
    let line = &buf[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // The line is at most `max_inline_bytes` long, which bounds the number of arguments too.
    let mut start = None;
    for (i, &b) in line.iter().enumerate() {
        match (b == b' ' || b == b'\t', start) {
            (true, Some(from)) => {
                spans.push(from..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(from) = start {
        spans.push(from..line.len());
    }
    Ok(Some(newline + 1))
}

fn parse_multibulk(buf: &[u8], limits: &Limits, spans: &mut Vec<Range<usize>>) -> Result<Option<usize>, ProtocolError> {
    use ProtocolError::{InvalidBulkLength, InvalidMultibulkLength};
    let Some((count, mut at)) =
        parse_header(buf, 0, limits, ProtocolError::TooBigMultibulkCount, InvalidMultibulkLength)?
    else {
        return Ok(None);
    };
    if count <= 0 {
        return Ok(Some(at));
    }
    let count = usize::try_from(count).map_err(|_| InvalidMultibulkLength)?;
    if count > limits.max_args {
        return Err(InvalidMultibulkLength);
    }
    // Only spans: a request still arriving costs no copy per retry, and no more room than the
    // bulks already present.
    spans.reserve(count.min(ARGS_PREALLOC_MAX));
    for _ in 0..count {
        let Some(&kind) = buf.get(at) else { return Ok(None) };
        if kind != b'$' {
            return Err(ProtocolError::ExpectedBulk { got: kind });
        }
        let Some((len, data_start)) = parse_header(buf, at, limits, ProtocolError::TooBigBulkCount, InvalidBulkLength)?
        else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| InvalidBulkLength)?;
        if len > limits.max_bulk_bytes {
            return Err(InvalidBulkLength);
        }
        let data_end = data_start.checked_add(len).ok_or(InvalidBulkLength)?;
        match buf.get(data_end..) {
            None | Some([] | [b'\r']) => return Ok(None),
            Some([b'\r', b'\n', ..]) => {}
            Some(_) => return Err(ProtocolError::BulkNotTerminated),
        }
        spans.push(data_start..data_end);
        at = data_end + 2;
    }
    Ok(Some(at))
}

/// Parses the `*<n>\r\n` or `$<n>\r\n` line at `buf[start..]`, whose type byte the caller has
/// checked. Returns the number and where the next line starts.
fn parse_header(
    buf: &[u8],
    start: usize,
    limits: &Limits,
    too_long: ProtocolError,
    invalid: ProtocolError,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    debug_assert!(start < buf.len(), "the type byte is present");
    let Some(newline) = find_newline(buf, start, limits.max_inline_bytes, too_long)? else {
        return Ok(None);
    };
    let digits = buf[start + 1..newline].strip_suffix(b"\r").ok_or(invalid)?;
    let value = parse_integer(digits).ok_or(invalid)?;
    Ok(Some((value, newline + 1)))
}

/// The index of the `\n` ending the line that starts at `buf[start..]`, looking no further than a
/// line of `max_line_bytes` (plus `\r\n`) can reach.
fn find_newline(
    buf: &[u8],
    start: usize,
    max_line_bytes: usize,
    too_long: ProtocolError,
) -> Result<Option<usize>, ProtocolError> {
    let window_bytes = max_line_bytes.saturating_add(2);
    let rest = &buf[start..];
    let window = &rest[..rest.len().min(window_bytes)];
    match window.iter().position(|&b| b == b'\n') {
        Some(at) => {
            let line_bytes = if at > 0 && window[at - 1] == b'\r' { at - 1 } else { at };
            if line_bytes > max_line_bytes {
                return Err(too_long);
            }
            Ok(Some(start + at))
        }
        None if rest.len() >= window_bytes => Err(too_long),
        None => Ok(None),
    }
}

/// A canonical decimal integer, as Redis' `string2ll` accepts: an optional `-`, then digits with no
/// leading zero (except `0` itself). `None` on anything else, and on overflow.
fn parse_integer(digits: &[u8]) -> Option<i64> {
    let (negative, magnitude) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    match magnitude {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut value: i64 = 0;
    for &digit in magnitude {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i64::from(digit - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

/// A RESP2 reply, written to the wire by [`Reply::encode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+<text>\r\n`, e.g. `+OK`. CR and LF in the text are sent as spaces.
    Simple(String),
    /// `-<text>\r\n`; the text starts with the error code (`ERR`, `WRONGTYPE`, …). CR and LF in
    /// the text are sent as spaces.
    Error(String),
    /// `:<n>\r\n`.
    Integer(i64),
    /// `$<len>\r\n<bytes>\r\n`, binary-safe.
    Bulk(Vec<u8>),
    /// The null bulk string `$-1\r\n`, e.g. `GET` of a missing key.
    Nil,
    /// `*<n>\r\n` followed by the `n` replies.
    Array(Vec<Reply>),
    /// The null array `*-1\r\n`.
    NilArray,
    /// A map: `%<n>\r\n` and `n` key-value pairs in RESP3; in RESP2 a flat array of `2n`
    /// elements, keys and values alternating (as Redis sends `HELLO`'s reply).
    Map(Vec<(Reply, Reply)>),
    /// A set: `~<n>\r\n` in RESP3; an array in RESP2.
    Set(Vec<Reply>),
}

/// The protocol version a connection speaks: RESP2 until a `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, every connection's start.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Reply {
    /// `+OK`.
    #[must_use]
    pub fn ok() -> Self {
        Self::Simple("OK".to_owned())
    }

    /// An error reply; `message` includes the error code, e.g. `"ERR unknown command 'FOO'"`.
    #[must_use]
    pub fn error(message: impl Into<String>) -> Self {
        Self::Error(message.into())
    }

    /// A bulk string.
    #[must_use]
    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Self {
        Self::Bulk(bytes.into())
    }

    /// Appends the RESP2 encoding of this reply to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_as(Protocol::Resp2, out);
    }

    /// Appends the encoding of this reply in `protocol` to `out`. RESP3 differs only where
    /// Redis' does for these replies: one null (`_`) for both nils, and maps and sets typed.
    pub fn encode_as(&self, protocol: Protocol, out: &mut Vec<u8>) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Self::Nil | Self::NilArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Self::Map(pairs) => {
                let (kind, len) = if resp3 { (b'%', pairs.len()) } else { (b'*', 2 * pairs.len()) };
                push_header(out, kind, false, len as u64);
                for (key, value) in pairs {
                    key.encode_as(protocol, out);
                    value.encode_as(protocol, out);
                }
            }
            Self::Set(items) | Self::Array(items) => {
                let kind = if resp3 && matches!(self, Self::Set(_)) { b'~' } else { b'*' };
                push_header(out, kind, false, items.len() as u64);
                for item in items {
                    item.encode_as(protocol, out);
                }
            }
            _ => self.encode_scalar(out),
        }
    }

    fn encode_scalar(&self, out: &mut Vec<u8>) {
        match self {
            Self::Simple(text) => push_line(out, b'+', text),
            Self::Error(text) => push_line(out, b'-', text),
            Self::Integer(value) => push_header(out, b':', *value < 0, value.unsigned_abs()),
            Self::Bulk(bytes) => {
                push_header(out, b'$', false, bytes.len() as u64);
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Self::Nil => out.extend_from_slice(b"$-1\r\n"),
            Self::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Self::Array(_) | Self::Map(_) | Self::Set(_) => self.encode_as(Protocol::Resp2, out),
        }
    }
}

/// `<kind><text>\r\n`, with CR and LF in `text` replaced by spaces so the line cannot be split.
fn push_line(out: &mut Vec<u8>, kind: u8, text: &str) {
    out.push(kind);
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

/// `<kind>[-]<magnitude>\r\n`, without allocating.
fn push_header(out: &mut Vec<u8>, kind: u8, negative: bool, magnitude: u64) {
    let mut digits = [0_u8; 20]; // u64::MAX has 20 digits.
    let mut at = digits.len();
    let mut rest = magnitude;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.push(kind);
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<(Vec<Vec<u8>>, usize)>, ProtocolError>;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|word| word.as_bytes().to_vec()).collect()
    }

    fn check(input: &[u8], expect: Parsed) {
        assert_eq!(parse_request(input, &Limits::default()), expect, "input {:?}", input.escape_ascii().to_string());
    }

    fn whole(words: &[&str], consumed: usize) -> Parsed {
        Ok(Some((args(words), consumed)))
    }

    /// Feeds `chunks` to one connection buffer, parsing and draining after each, as a server does.
    fn requests_from(chunks: &[&[u8]]) -> Vec<Vec<Vec<u8>>> {
        let (mut buf, mut requests) = (Vec::new(), Vec::new());
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some((args, consumed)) = parse_request(&buf, &Limits::default()).expect("valid input") {
                buf.drain(..consumed);
                requests.push(args);
            }
        }
        assert!(buf.is_empty(), "left over: {:?}", buf.escape_ascii().to_string());
        requests
    }

    fn encoded(reply: &Reply) -> String {
        let mut out = Vec::new();
        reply.encode(&mut out);
        String::from_utf8(out).expect("test replies are UTF-8")
    }

    #[test]
    fn array_request_as_redis_cli_sends_it() {
        check(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", whole(&["SET", "k", "hello"], 31));
        // Bulk strings are binary-safe: CRLF and spaces inside are data.
        check(b"*1\r\n$4\r\na\r\n \r\n", whole(&["a\r\n "], 14));
    }

    #[test]
    fn pipelined_requests_parse_one_after_another() {
        let buf = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nECHO x\r\n";
        check(buf, whole(&["PING"], 14));
        check(&buf[14..], whole(&["GET", "k"], 20));
        check(&buf[34..], whole(&["ECHO", "x"], 8));
        check(&buf[42..], Ok(None));
    }

    #[test]
    fn inline_commands_as_telnet_sends_them() {
        check(b"PING\r\n", whole(&["PING"], 6));
        check(b"set a b\n", whole(&["set", "a", "b"], 8));
        check(b"  set \t a   b  \r\nPING", whole(&["set", "a", "b"], 17));
        check(b"\r\n", whole(&[], 2));
        check(b"PING\r", Ok(None));
    }

    #[test]
    fn empty_and_null_multibulk_yield_no_args() {
        check(b"*0\r\n", whole(&[], 4));
        check(b"*-1\r\n", whole(&[], 5));
    }

    #[test]
    fn every_split_point_gives_the_same_requests() {
        let stream: &[u8] = b"*2\r\n$3\r\nGET\r\n$0\r\n\r\nPING\r\n*0\r\n*1\r\n$10\r\n0123456789\r\nset a  b\n";
        let expected =
            vec![args(&["GET", ""]), args(&["PING"]), args(&[]), args(&["0123456789"]), args(&["set", "a", "b"])];
        assert_eq!(requests_from(&[stream]), expected);
        for split in 0..=stream.len() {
            assert_eq!(requests_from(&[&stream[..split], &stream[split..]]), expected, "split at {split}");
        }
        let one_byte_at_a_time: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(requests_from(&one_byte_at_a_time), expected);
    }

    #[test]
    fn protocol_errors_use_redis_wording() {
        use ProtocolError::*;
        let cases: &[(&[u8], ProtocolError, &str)] = &[
            (b"*x\r\n", InvalidMultibulkLength, "invalid multibulk length"),
            (b"*\r\n", InvalidMultibulkLength, "invalid multibulk length"),
            (b"*+1\r\n", InvalidMultibulkLength, "invalid multibulk length"),
            (b"*01\r\n", InvalidMultibulkLength, "invalid multibulk length"),
            (b"*1\n", InvalidMultibulkLength, "invalid multibulk length"),
            (b"*1\r\n$x\r\n", InvalidBulkLength, "invalid bulk length"),
            (b"*1\r\n$-1\r\n", InvalidBulkLength, "invalid bulk length"),
            (b"*1\r\n$ 1\r\n", InvalidBulkLength, "invalid bulk length"),
            (b"*1\r\nPING\r\n", ExpectedBulk { got: b'P' }, "expected '$', got 'P'"),
            (b"*1\r\n\r\n", ExpectedBulk { got: b'\r' }, "expected '$', got '\\r'"),
            (b"*1\r\n$2\r\nabc\r\n", BulkNotTerminated, "expected CRLF after bulk string"),
            (b"*1\r\n$2\r\nab\rx", BulkNotTerminated, "expected CRLF after bulk string"),
        ];
        for &(input, error, message) in cases {
            check(input, Err(error));
            assert_eq!(error.to_string(), format!("Protocol error: {message}"));
        }
        assert_eq!(
            BulkNotTerminated.reply(),
            Reply::Error("ERR Protocol error: expected CRLF after bulk string".into())
        );
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits { max_args: 2, max_bulk_bytes: 4, max_inline_bytes: 8 };
        let parse = |input: &[u8]| parse_request(input, &limits);
        assert_eq!(parse(b"*2\r\n$4\r\nabcd\r\n$0\r\n\r\n"), Ok(Some((args(&["abcd", ""]), 20))));
        assert_eq!(parse(b"*3\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(parse(b"*1\r\n$5\r\n"), Err(ProtocolError::InvalidBulkLength));
        // Lines of exactly the limit are fine; one byte more fails even before its newline arrives.
        assert_eq!(parse(b"12345678\r\n"), Ok(Some((args(&["12345678"]), 10))));
        assert_eq!(parse(b"12345678\r"), Ok(None));
        assert_eq!(parse(b"123456789"), Ok(None));
        assert_eq!(parse(b"123456789\n"), Err(ProtocolError::TooBigInline));
        assert_eq!(parse(b"1234567890"), Err(ProtocolError::TooBigInline));
        assert_eq!(parse(b"*000000000"), Err(ProtocolError::TooBigMultibulkCount));
        assert_eq!(parse(b"*1\r\n$000000000"), Err(ProtocolError::TooBigBulkCount));
    }

    #[test]
    fn huge_claimed_lengths_fail_without_allocating_or_overflowing() {
        use ProtocolError::*;
        check(b"*999999999999\r\n", Err(InvalidMultibulkLength));
        check(b"*99999999999999999999\r\n", Err(InvalidMultibulkLength));
        check(b"*1\r\n$99999999999999999999\r\n", Err(InvalidBulkLength));
        check(b"*1\r\n$9223372036854775807\r\n", Err(InvalidBulkLength));
        check(b"*-9223372036854775808\r\n", Err(InvalidMultibulkLength));
        // Within the limits, a large claim only waits for its bytes.
        check(b"*1048576\r\n$16777216\r\n", Ok(None));
    }

    #[test]
    fn random_garbage_never_panics_and_consumes_within_the_input() {
        const ALPHABET: &[u8] = b"*$\r\n0123456789-ab ";
        // Valid openings, so that the garbage also reaches the bulk and terminator checks.
        const PREFIXES: [&[u8]; 4] = [b"", b"*", b"*2\r\n$", b"*1\r\n$3\r\n"];
        let seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let small = Limits { max_args: 4, max_bulk_bytes: 8, max_inline_bytes: 16 };
        let (mut whole, mut incomplete, mut errors) = (0, 0, 0);
        for case in 0..10_000 {
            let mut input = PREFIXES[(next() % 4) as usize].to_vec();
            let len = (next() % 65) as usize;
            input.extend((0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]));
            for limits in [Limits::default(), small] {
                let context = || format!("seed {seed:#x} case {case} input {:?}", input.escape_ascii().to_string());
                match parse_request(&input, &limits) {
                    Ok(Some((parsed, consumed))) => {
                        whole += 1;
                        assert!(consumed > 0 && consumed <= input.len(), "{}", context());
                        // A request depends only on the bytes it used.
                        let again = parse_request(&input[..consumed], &limits);
                        assert_eq!(again, Ok(Some((parsed, consumed))), "{}", context());
                    }
                    Ok(None) => incomplete += 1,
                    Err(_) => errors += 1,
                }
            }
        }
        let outcomes = [whole, incomplete, errors];
        assert!(outcomes.iter().all(|&count| count > 100), "seed {seed:#x}: outcomes {outcomes:?}");
    }

    #[test]
    fn replies_encode_to_resp2() {
        assert_eq!(encoded(&Reply::ok()), "+OK\r\n");
        assert_eq!(encoded(&Reply::error("ERR unknown command 'FOO'")), "-ERR unknown command 'FOO'\r\n");
        assert_eq!(encoded(&Reply::Integer(5)), ":5\r\n");
        assert_eq!(encoded(&Reply::Integer(0)), ":0\r\n");
        assert_eq!(encoded(&Reply::Integer(i64::MIN)), ":-9223372036854775808\r\n");
        assert_eq!(encoded(&Reply::bulk("abc")), "$3\r\nabc\r\n");
        assert_eq!(encoded(&Reply::bulk("")), "$0\r\n\r\n");
        assert_eq!(encoded(&Reply::Nil), "$-1\r\n");
        assert_eq!(encoded(&Reply::Array(Vec::new())), "*0\r\n");
        assert_eq!(encoded(&Reply::NilArray), "*-1\r\n");
    }

    #[test]
    fn resp3_types_nulls_maps_and_sets_and_resp2_flattens_them() {
        let reply = Reply::Map(vec![
            (Reply::bulk("proto"), Reply::Integer(3)),
            (Reply::bulk("none"), Reply::Nil),
            (Reply::bulk("members"), Reply::Set(vec![Reply::bulk("a")])),
        ]);
        let mut out = Vec::new();
        reply.encode_as(Protocol::Resp3, &mut out);
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            "%3\r\n$5\r\nproto\r\n:3\r\n$4\r\nnone\r\n_\r\n$7\r\nmembers\r\n~1\r\n$1\r\na\r\n"
        );
        assert_eq!(
            encoded(&reply),
            "*6\r\n$5\r\nproto\r\n:3\r\n$4\r\nnone\r\n$-1\r\n$7\r\nmembers\r\n*1\r\n$1\r\na\r\n"
        );
        let mut out = Vec::new();
        Reply::NilArray.encode_as(Protocol::Resp3, &mut out);
        assert_eq!(out, b"_\r\n");
    }

    #[test]
    fn nested_arrays_encode_depth_first() {
        let reply = Reply::Array(vec![
            Reply::Integer(1),
            Reply::Array(vec![Reply::bulk("a"), Reply::Nil, Reply::NilArray]),
            Reply::Simple("x".into()),
        ]);
        assert_eq!(encoded(&reply), "*3\r\n:1\r\n*3\r\n$1\r\na\r\n$-1\r\n*-1\r\n+x\r\n");
    }

    #[test]
    fn simple_and_error_lines_cannot_be_split_but_bulks_are_binary_safe() {
        assert_eq!(encoded(&Reply::Simple("a\r\nb".into())), "+a  b\r\n");
        assert_eq!(encoded(&Reply::error("ERR bad\nkey")), "-ERR bad key\r\n");
        assert_eq!(encoded(&Reply::bulk("a\r\nb")), "$4\r\na\r\nb\r\n");
    }
}
