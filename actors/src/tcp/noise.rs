//! An encrypted, mutually authenticated byte-frame channel over one TCP connection: the Noise
//! `XX` handshake (both sides prove their static X25519 key), then frames of up to a configured
//! length, each split into Noise transport messages.
//!
//! On the wire every Noise message is a 2-byte big-endian length and that many bytes (the
//! framing the Noise specification recommends for TCP, §3). Inside, the decrypted messages form
//! one byte stream of frames, each a 4-byte big-endian length followed by the frame. A writer
//! sends a batch of frames as one plaintext cut into pieces of at most
//! [`MAX_PLAINTEXT_PER_MESSAGE`] bytes, each encrypted as one Noise message, and writes them
//! at once: many small frames share one encryption and one system call, a large one spans
//! several messages. The receiver checks each 4-byte length against its limit before it buffers the
//! frame, so a peer cannot make it hold more than one frame and one Noise message.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::{Identity, LinkError, PublicKey};

/// The Noise protocol name: the `XX` pattern (both static keys transmitted, encrypted),
/// X25519, ChaCha20-Poly1305 and BLAKE2s.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// Hashed into the handshake: a peer speaking another application protocol fails it.
const PROLOGUE: &[u8] = b"roundtable link 1";

/// The largest Noise message (the specification's limit).
const MAX_NOISE_MESSAGE: usize = 65_535;

/// The authentication tag every transport message carries.
const TAG_BYTES: usize = 16;

/// Plaintext bytes per Noise transport message.
pub(crate) const MAX_PLAINTEXT_PER_MESSAGE: usize = MAX_NOISE_MESSAGE - TAG_BYTES;

/// The most bytes a frame of `len` bytes takes on the wire: its 4-byte length, the 2-byte length
/// and the tag of every Noise message it is cut into when sent alone (frames sent in a batch
/// share messages, and so take less).
#[must_use]
pub(crate) fn wire_bytes(len: usize) -> usize {
    let plain = len + 4;
    let messages = plain.div_ceil(MAX_PLAINTEXT_PER_MESSAGE);
    plain + messages * (2 + TAG_BYTES)
}

/// Which side opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Initiator,
    Responder,
}

/// One authenticated, encrypted connection, split into a half that reads and a half that
/// writes, so that a link never stops reading while it writes (two nodes sending large frames to
/// each other at once would otherwise each wait for the other to read). Each half keeps its own
/// nonce; the Noise transport state is shared read-only (`snow`'s stateless transport mode).
pub(crate) struct SecureLink {
    pub(crate) reader: SecureReader,
    pub(crate) writer: SecureWriter,
}

impl std::fmt::Debug for SecureLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureLink").field("max_frame", &self.reader.max_frame).finish_non_exhaustive()
    }
}

/// The reading half of a link, after the handshake.
pub(crate) struct SecureReader {
    stream: OwnedReadHalf,
    noise: Arc<snow::StatelessTransportState>,
    nonce: u64,
    max_frame: usize,
    /// Bytes from the socket not yet decrypted start at `raw[raw_start..]`: the socket is read
    /// only when they hold no whole Noise message, so at most one message and one read.
    raw: Vec<u8>,
    raw_start: usize,
    /// Decrypted bytes not yet returned as frames start at `received[start..]`.
    received: Vec<u8>,
    start: usize,
}

/// The writing half of a link, after the handshake. Its buffers are kept from one batch to
/// the next: a steady stream of batches allocates nothing.
pub(crate) struct SecureWriter {
    stream: OwnedWriteHalf,
    noise: Arc<snow::StatelessTransportState>,
    nonce: u64,
    max_frame: usize,
    /// The batch's frames with their length headers, before encryption.
    plain: Vec<u8>,
    /// The batch's Noise messages with their length prefixes, as written to the socket.
    out: Vec<u8>,
}

/// Buffers of a link that grew beyond this are given back after use.
const KEEP_BUFFER_BYTES: usize = 1 << 20;

/// How much a reader asks the socket for at once.
const READ_CHUNK: usize = 64 * 1024;

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_length(2).max_frame_length(MAX_NOISE_MESSAGE).new_codec()
}

fn noise_error(e: snow::Error) -> LinkError {
    LinkError::Noise(e.to_string())
}

/// Runs the Noise `XX` handshake on `stream` within `timeout` and returns the link with the
/// peer's static public key (which the caller checks against whom it expects).
pub(crate) async fn handshake(
    stream: TcpStream,
    identity: &Identity,
    role: Role,
    max_frame: usize,
    timeout: Duration,
) -> Result<(SecureLink, PublicKey), LinkError> {
    tokio::time::timeout(timeout, handshake_inner(stream, identity, role, max_frame))
        .await
        .map_err(|_| LinkError::Timeout("handshake"))?
}

async fn handshake_inner(
    stream: TcpStream,
    identity: &Identity,
    role: Role,
    max_frame: usize,
) -> Result<(SecureLink, PublicKey), LinkError> {
    stream.set_nodelay(true).map_err(LinkError::Io)?;
    let params = NOISE_PARAMS.parse().map_err(noise_error)?;
    let builder = snow::Builder::new(params).local_private_key(identity.private_bytes()).prologue(PROLOGUE);
    let mut state = match role {
        Role::Initiator => builder.build_initiator(),
        Role::Responder => builder.build_responder(),
    }
    .map_err(noise_error)?;
    let mut framed = Framed::new(stream, codec());
    let mut buf = vec![0u8; MAX_NOISE_MESSAGE];
    let mut payload = vec![0u8; MAX_NOISE_MESSAGE];
    // XX: -> e; <- e, ee, s, es; -> s, se. Three messages, the initiator writes first.
    let mut writing = role == Role::Initiator;
    while !state.is_handshake_finished() {
        if writing {
            let n = state.write_message(&[], &mut buf).map_err(noise_error)?;
            framed.send(Bytes::copy_from_slice(&buf[..n])).await.map_err(LinkError::Io)?;
        } else {
            let message = framed.next().await.ok_or(LinkError::Closed)?.map_err(LinkError::Io)?;
            state.read_message(&message, &mut payload).map_err(noise_error)?;
        }
        writing = !writing;
    }
    let remote = state.get_remote_static().ok_or_else(|| LinkError::Noise("no remote static key".into()))?;
    let remote = PublicKey::from_slice(remote).ok_or_else(|| LinkError::Noise("remote static key length".into()))?;
    let noise = Arc::new(state.into_stateless_transport_mode().map_err(noise_error)?);
    // The reader starts with what the framed stream has buffered already (a hello may follow
    // the last handshake message in the same read); everything it wrote is flushed.
    let parts = framed.into_parts();
    let (read, write) = parts.io.into_split();
    let reader = SecureReader {
        stream: read,
        noise: noise.clone(),
        nonce: 0,
        max_frame,
        raw: parts.read_buf.to_vec(),
        raw_start: 0,
        received: Vec::new(),
        start: 0,
    };
    let writer = SecureWriter { stream: write, noise, nonce: 0, max_frame, plain: Vec::new(), out: Vec::new() };
    Ok((SecureLink { reader, writer }, remote))
}

impl SecureWriter {
    /// Sends one frame (flushed). A frame longer than the limit is refused, not sent.
    ///
    /// Not cancel-safe (a nonce is used before its message is queued): never a `select!`
    /// branch; bound it with a timeout that drops the whole link instead.
    pub(crate) async fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        self.send_batch(std::iter::once(frame)).await
    }

    /// Sends `frames` in order, packed into as few Noise messages as they fit, written with one
    /// `write_all`. A frame longer than the limit is refused before anything of the batch is
    /// sent.
    ///
    /// Not cancel-safe, like [`SecureWriter::send`].
    pub(crate) async fn send_batch<'a>(&mut self, frames: impl Iterator<Item = &'a [u8]>) -> Result<(), LinkError> {
        self.plain.clear();
        for frame in frames {
            let too_large = || LinkError::FrameTooLarge { len: frame.len(), max: self.max_frame };
            if frame.len() > self.max_frame {
                return Err(too_large());
            }
            let header = u32::try_from(frame.len()).map_err(|_| too_large())?;
            self.plain.extend_from_slice(&header.to_be_bytes());
            self.plain.extend_from_slice(frame);
        }
        // Each piece is encrypted straight into the output, after room for its length.
        self.out.clear();
        for piece in self.plain.chunks(MAX_PLAINTEXT_PER_MESSAGE) {
            let at = self.out.len();
            self.out.resize(at + 2 + piece.len() + TAG_BYTES, 0);
            let n = self.noise.write_message(self.nonce, piece, &mut self.out[at + 2..]).map_err(noise_error)?;
            self.nonce += 1;
            let len = u16::try_from(n).map_err(|_| LinkError::Noise(format!("a Noise message of {n} bytes")))?;
            self.out[at..at + 2].copy_from_slice(&len.to_be_bytes());
            self.out.truncate(at + 2 + n);
        }
        let written = self.stream.write_all(&self.out).await.map_err(LinkError::Io);
        for buffer in [&mut self.plain, &mut self.out] {
            if buffer.capacity() > KEEP_BUFFER_BYTES {
                *buffer = Vec::new();
            }
        }
        written
    }
}

impl SecureReader {
    /// The next whole frame; `Ok(None)` when the peer closed the connection between frames.
    ///
    /// Cancel-safe: what has arrived stays in the reader (the only await is a read from the
    /// socket, which either adds to the buffer or does nothing), so it can be bounded by a
    /// timeout or be one branch of a `select!`.
    pub(crate) async fn recv(&mut self) -> Result<Option<Vec<u8>>, LinkError> {
        loop {
            if let Some(frame) = self.next_frame()? {
                return Ok(Some(frame));
            }
            if self.decrypt_next()? {
                continue;
            }
            // Not even one whole Noise message: read more, after moving the partial one to the
            // front (it is shorter than one message).
            self.raw.drain(..self.raw_start);
            self.raw_start = 0;
            self.raw.reserve(READ_CHUNK);
            let n = self.stream.read_buf(&mut self.raw).await.map_err(LinkError::Io)?;
            if n == 0 {
                let clean = self.raw.is_empty() && self.start == self.received.len();
                return if clean { Ok(None) } else { Err(LinkError::Truncated) };
            }
        }
    }

    /// Decrypts the next whole Noise message buffered, if there is one, onto `received`.
    fn decrypt_next(&mut self) -> Result<bool, LinkError> {
        let rest = &self.raw[self.raw_start..];
        let Some(header) = rest.get(..2) else { return Ok(false) };
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        let Some(message) = rest.get(2..2 + len) else { return Ok(false) };
        // Returned frames are dropped from the front only now, so that taking each of many
        // small frames out of one message does not move the rest every time.
        self.received.drain(..self.start);
        self.start = 0;
        if self.received.capacity() > KEEP_BUFFER_BYTES && self.received.len() < KEEP_BUFFER_BYTES / 2 {
            // After a large frame.
            self.received.shrink_to(KEEP_BUFFER_BYTES / 2);
        }
        let at = self.received.len();
        self.received.resize(at + len, 0);
        let n = self.noise.read_message(self.nonce, message, &mut self.received[at..]).map_err(noise_error)?;
        self.nonce += 1;
        self.received.truncate(at + n);
        self.raw_start += 2 + len;
        Ok(true)
    }

    /// The first whole frame of what has been decrypted, if it has all arrived.
    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, LinkError> {
        let rest = &self.received[self.start..];
        let Some(header) = rest.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > self.max_frame {
            return Err(LinkError::FrameTooLarge { len, max: self.max_frame });
        }
        let Some(frame) = rest.get(4..4 + len) else { return Ok(None) };
        let frame = frame.to_vec();
        self.start += 4 + len;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_count_headers_and_tags() {
        assert_eq!(wire_bytes(0), 4 + 2 + 16);
        assert_eq!(wire_bytes(100), 104 + 18);
        let big = MAX_PLAINTEXT_PER_MESSAGE * 2;
        assert_eq!(wire_bytes(big), big + 4 + 3 * 18, "a frame of two full messages spills 4 bytes into a third");
    }

    /// A handshake between two identities, then frames both ways, small and larger than one
    /// Noise message; each side learns the other's public key.
    #[test]
    fn handshake_authenticates_both_sides_and_carries_frames() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async {
            let (a, b) = (Identity::generate().expect("a key"), Identity::generate().expect("a key"));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            let b2 = b.clone();
            let server = tokio::spawn(async move {
                let (stream, _) = listener.accept().await.expect("accept");
                let (mut link, remote) =
                    handshake(stream, &b2, Role::Responder, 1 << 20, Duration::from_secs(5)).await.expect("handshake");
                let frame = link.reader.recv().await.expect("a frame").expect("not closed");
                link.writer.send(&frame).await.expect("echo");
                (remote, link.reader.recv().await)
            });
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (mut link, remote) =
                handshake(stream, &a, Role::Initiator, 1 << 20, Duration::from_secs(5)).await.expect("handshake");
            assert_eq!(remote, b.public_key());
            let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
            link.writer.send(&big).await.expect("send");
            assert_eq!(link.reader.recv().await.expect("echo").expect("not closed"), big);
            assert!(matches!(link.writer.send(&vec![0u8; (1 << 20) + 1]).await, Err(LinkError::FrameTooLarge { .. })));
            drop(link);
            let (seen, end) = server.await.expect("server");
            assert_eq!(seen, a.public_key());
            assert!(matches!(end, Ok(None)), "a close between frames is a clean end");
        });
    }

    /// A batch of small frames shares Noise messages, one frame may span several, and each
    /// comes out whole and in order, however the batches were cut.
    #[test]
    fn batched_frames_come_out_whole_and_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async {
            let (a, b) = (Identity::generate().expect("a key"), Identity::generate().expect("a key"));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            let frames: Vec<Vec<u8>> = (0..3000u32)
                .map(|i| {
                    let len = if i % 1000 == 999 { 150_000 } else { (i % 97) as usize };
                    (0..len).map(|j| (i as usize + j) as u8).collect()
                })
                .collect();
            let expected = frames.clone();
            let sender = tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.expect("connect");
                let (mut link, _) =
                    handshake(stream, &a, Role::Initiator, 1 << 20, Duration::from_secs(5)).await.expect("handshake");
                for batch in frames.chunks(701) {
                    link.writer.send_batch(batch.iter().map(Vec::as_slice)).await.expect("sent");
                }
                let oversize = [vec![1u8; 3], vec![0u8; (1 << 20) + 1]];
                let refused = link.writer.send_batch(oversize.iter().map(Vec::as_slice)).await;
                assert!(matches!(refused, Err(LinkError::FrameTooLarge { .. })), "{refused:?}");
            });
            let (stream, _) = listener.accept().await.expect("accept");
            let (mut link, _) =
                handshake(stream, &b, Role::Responder, 1 << 20, Duration::from_secs(5)).await.expect("handshake");
            for (i, want) in expected.iter().enumerate() {
                let got = link.reader.recv().await.expect("a frame").expect("not closed");
                assert_eq!(&got, want, "frame {i}");
            }
            sender.await.expect("sender");
            // The refused batch sent nothing: the stream ends cleanly after the last frame.
            assert!(matches!(link.reader.recv().await, Ok(None)));
        });
    }

    /// Garbage instead of a handshake fails it (no panic), and so does a peer that never
    /// finishes: the timeout bounds how long a connection can hold a handshake slot.
    #[test]
    fn garbage_and_silence_fail_the_handshake() {
        use tokio::io::AsyncWriteExt;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async {
            let id = Identity::generate().expect("a key");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            let mut garbage = TcpStream::connect(addr).await.expect("connect");
            // A first message of 10 bytes where the initiator's 32-byte ephemeral key belongs.
            garbage.write_all(&[0, 10]).await.expect("write");
            garbage.write_all(&[0xAB; 10]).await.expect("write");
            let (stream, _) = listener.accept().await.expect("accept");
            let r = handshake(stream, &id, Role::Responder, 1024, Duration::from_secs(5)).await;
            assert!(matches!(r, Err(LinkError::Noise(_))), "{r:?}");

            let _silent = TcpStream::connect(addr).await.expect("connect");
            let (stream, _) = listener.accept().await.expect("accept");
            let r = handshake(stream, &id, Role::Responder, 1024, Duration::from_millis(200)).await;
            assert!(matches!(r, Err(LinkError::Timeout(_))), "{r:?}");
        });
    }
}
