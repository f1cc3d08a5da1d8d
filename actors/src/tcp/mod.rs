//! Leaders in separate processes (feature `tcp`): a transport whose links are TCP connections
//! between nodes, mutually authenticated and encrypted with the Noise protocol.
//!
//! A *node* is a process that hosts one leader (or a few) of a cluster. Every node knows every
//! member by name, in the same order on every node (the order gives the leader ids), and knows
//! the other nodes by address and by the public half of their static X25519 key, their
//! [`Identity`]. Between two nodes there is one link: the node whose lowest leader id is smaller
//! dials, the other accepts, and the dialer reconnects with a jittered, capped exponential
//! backoff when the link breaks.
//!
//! - **Authentication.** A link starts with the Noise `XX` handshake ([`NOISE_PARAMS`], run by
//!   the `snow` crate): each side proves it holds its static key, and learns the other's. A key
//!   that belongs to no configured peer, or not to the peer that was dialed, refuses the link
//!   (counted in [`crate::NetStats::refused_links`] and traced): an unauthenticated peer never
//!   reaches a replica.
//! - **Version handshake.** Inside the encrypted channel both sides send a hello: the link
//!   version ([`LINK_VERSION`]), the replication protocol version
//!   ([`roundtable_runtime::wire::PROTOCOL_VERSION`]), a digest of the member names, and the
//!   leaders the node hosts. Any disagreement refuses the link, with the reason in the trace and
//!   the log.
//! - **Sender identity.** The sender of a message is the authenticated node of its link: an
//!   envelope whose `from` names a leader that node does not host is rejected, counted in
//!   [`crate::NetStats::rejected_frames`] and traced; the link stays up.
//! - **Frames.** Each message is a postcard-encoded frame of at most
//!   [`roundtable_runtime::wire::MAX_FRAME_BYTES`] (plus a few bytes for the link's own tag),
//!   length-prefixed and encrypted (see `noise.rs` for the byte layout). An oversize, truncated,
//!   undecodable or unauthenticated frame closes the link with a counted, logged reason; the
//!   node keeps serving its other peers.
//! - **Bounds.** At most [`LinkLimits::max_handshakes`] connections may be in their handshake at
//!   once (more are closed at once, and counted), each for at most
//!   [`LinkLimits::handshake_timeout`]; each link queues at most [`LinkLimits::link_queue`]
//!   frames. A message for a peer whose link is down or full is dropped, counted and traced:
//!   the replication log and anti-entropy bring the peer what it missed once the link is back.
//! - **Routing.** A write to a home-leader keyspace whose home is on another node travels on
//!   the link as a request (a put or a delete, with the client's write concern) and the home's
//!   receipt or error comes back ([`crate::LeaderError::RefusedByHome`]); no answer within
//!   10 s, or a link that breaks first, is [`crate::LeaderError::HomeUnreachable`].
//! - **Relayed entries.** The sender check is on the envelope: a `Replicate` from a node may
//!   carry entries of other origins, as relaying topologies (a star's hub, a circle) need.

mod actor;
mod link;
mod noise;
#[cfg(test)]
mod tests;

/// For tests in other crates only (the multi-process tests): a node played by hand, to send
/// what a well-behaved node never sends. Not part of the API.
#[doc(hidden)]
pub mod testing {
    use roundtable_runtime::wire::{Envelope, PeerMessage};
    use roundtable_runtime::{LeaderId, LeaderSet};

    use super::link::{decode, encode, Hello, LinkMessage, MAX_LINK_FRAME};
    use super::noise::{handshake, Role, SecureLink};
    use super::{members_digest, Identity, LINK_VERSION};

    /// One link, accepted by hand.
    pub struct RawPeer {
        link: SecureLink,
        theirs: LeaderSet,
    }

    impl std::fmt::Debug for RawPeer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RawPeer").field("theirs", &self.theirs).finish_non_exhaustive()
        }
    }

    impl RawPeer {
        /// Accepts one connection on `listener` as the node that hosts `hosts` with `identity`,
        /// in a cluster of `members`: the handshake and the hello, nothing more.
        pub async fn accept(
            listener: &tokio::net::TcpListener,
            identity: &Identity,
            members: &[String],
            hosts: LeaderSet,
        ) -> Result<RawPeer, String> {
            let limit = std::time::Duration::from_secs(20);
            let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let (mut link, _) =
                handshake(stream, identity, Role::Responder, MAX_LINK_FRAME, limit).await.map_err(|e| e.to_string())?;
            let theirs = link.reader.recv().await.map_err(|e| e.to_string())?.ok_or("closed before its hello")?;
            let Ok(LinkMessage::Hello(theirs)) = decode(&theirs) else { return Err("no hello".into()) };
            let ours = Hello {
                link_version: LINK_VERSION,
                protocol: roundtable_runtime::wire::PROTOCOL_VERSION,
                members: members_digest(members),
                leaders: hosts,
            };
            link.writer.send(&encode(&LinkMessage::Hello(ours))?).await.map_err(|e| e.to_string())?;
            Ok(RawPeer { link, theirs: theirs.leaders })
        }

        /// The leaders the node at the other end hosts.
        #[must_use]
        pub fn theirs(&self) -> LeaderSet {
            self.theirs
        }

        /// Sends `msg` for leader `to` in an envelope that says it comes from `from`.
        pub async fn send_as(&mut self, from: LeaderId, to: LeaderId, msg: PeerMessage) -> Result<(), String> {
            let frame = encode(&LinkMessage::Peer { to, envelope: Envelope::new(from, msg) })?;
            self.link.writer.send(&frame).await.map_err(|e| e.to_string())
        }
    }
}

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub(crate) use actor::TcpTransport;
pub use noise::NOISE_PARAMS;

/// The version of the link protocol (handshake, hello, message framing) this build speaks
/// (2: a routed write's concern says whether it must be durable).
pub const LINK_VERSION: u16 = 2;

/// The public half of a node's static key: 32 bytes, written as 64 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The key's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<PublicKey> {
        <[u8; 32]>::try_from(bytes).ok().map(PublicKey)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        parse_hex32(s).map(PublicKey)
    }
}

/// Why a key could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not 64 characters long.
    #[error("a key is 64 hexadecimal digits; this one has {0} characters")]
    Length(usize),
    /// A character that is not a hexadecimal digit.
    #[error("character {0} of the key is not a hexadecimal digit")]
    Digit(usize),
    /// The random generator failed.
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

fn parse_hex32(s: &str) -> Result<[u8; 32], KeyError> {
    let s = s.trim();
    if s.len() != 64 {
        return Err(KeyError::Length(s.chars().count()));
    }
    let digit = |i: usize, c: u8| (c as char).to_digit(16).ok_or(KeyError::Digit(i + 1));
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let (hi, lo) = (digit(2 * i, pair[0])?, digit(2 * i + 1, pair[1])?);
        out[i] = (hi * 16 + lo) as u8;
    }
    Ok(out)
}

/// A node's static key pair. The private half never appears in `Debug` output or logs.
///
/// ```
/// use roundtable_actors::tcp::Identity;
/// let id = Identity::generate()?;
/// let again = Identity::from_private_hex(&id.private_hex())?;
/// assert_eq!(again.public_key(), id.public_key());
/// # Ok::<(), roundtable_actors::tcp::KeyError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    private: [u8; 32],
    public: PublicKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("public", &self.public).finish_non_exhaustive()
    }
}

impl Identity {
    /// A new random key pair (from the operating system's generator).
    pub fn generate() -> Result<Identity, KeyError> {
        let params = NOISE_PARAMS.parse().map_err(|e: snow::Error| KeyError::Generate(e.to_string()))?;
        let pair = snow::Builder::new(params).generate_keypair().map_err(|e| KeyError::Generate(e.to_string()))?;
        let private =
            <[u8; 32]>::try_from(pair.private.as_slice()).map_err(|_| KeyError::Length(pair.private.len() * 2))?;
        Ok(Identity::from_private(private))
    }

    /// The key pair of a private key (X25519: the public key is derived from it).
    #[must_use]
    pub fn from_private(private: [u8; 32]) -> Identity {
        let public = curve25519_dalek::montgomery::MontgomeryPoint::mul_base_clamped(private).to_bytes();
        Identity { private, public: PublicKey(public) }
    }

    /// Reads a private key written as 64 hexadecimal digits (see [`Identity::private_hex`]).
    pub fn from_private_hex(s: &str) -> Result<Identity, KeyError> {
        parse_hex32(s).map(Identity::from_private)
    }

    /// The private key as 64 hexadecimal digits, for a key file. Keep it secret.
    #[must_use]
    pub fn private_hex(&self) -> String {
        PublicKey(self.private).to_string()
    }

    /// The public key, which the other nodes are configured with.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    pub(crate) fn private_bytes(&self) -> &[u8; 32] {
        &self.private
    }
}

/// Bounds and timings of a node's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkLimits {
    /// How long a connection may take for its handshake and hello (default 5 s).
    pub handshake_timeout: Duration,
    /// Connections in their handshake at once; more are closed at once (default 64). A few
    /// more slots are kept for connections from the configured peers' addresses.
    pub max_handshakes: usize,
    /// Connections in their handshake at once from one address (default 4), so that one
    /// source cannot take every slot.
    pub max_handshakes_per_ip: usize,
    /// Frames queued per link; a message for a full link is dropped and counted (default 4096).
    pub link_queue: usize,
    /// Bytes queued per link (default 64 MiB); beyond, messages are dropped and counted.
    pub link_queue_bytes: usize,
    /// A link on which nothing arrives for this long is closed and redialed (default 10 s;
    /// each node's leaders send a heartbeat every tick, so it must exceed the tick interval).
    pub idle_timeout: Duration,
    /// A link that cannot write a frame for this long is closed (default 10 s).
    pub write_timeout: Duration,
    /// How long a dial may take (default 2 s).
    pub connect_timeout: Duration,
    /// The first wait before redialing a lost link (default 50 ms); it doubles per failure.
    pub backoff_min: Duration,
    /// The longest wait before redialing (default 2 s). Each wait is drawn between half of it
    /// and all of it, so that nodes do not redial in step.
    pub backoff_max: Duration,
}

impl Default for LinkLimits {
    fn default() -> Self {
        LinkLimits {
            handshake_timeout: Duration::from_secs(5),
            max_handshakes: 64,
            max_handshakes_per_ip: 4,
            link_queue: 4096,
            link_queue_bytes: 64 * 1024 * 1024,
            idle_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

/// Why a link failed or was refused (internal: the trace and the log carry its text).
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("i/o: {0}")]
    Io(#[source] std::io::Error),
    #[error("noise: {0}")]
    Noise(String),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("connection closed")]
    Closed,
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("refused: {0}")]
    Refused(String),
}

/// Another node: where to reach it, its public key, and the leaders it hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteNode {
    /// For logs and traces: the names of its leaders, joined with `+`.
    pub(crate) name: String,
    /// `host:port`, resolved at every dial.
    pub(crate) addr: String,
    pub(crate) key: PublicKey,
    pub(crate) leaders: roundtable_runtime::LeaderSet,
}

/// Everything a node's transport needs, checked by the cluster builder.
#[derive(Debug, Clone)]
pub(crate) struct NodePlan {
    pub(crate) identity: Identity,
    pub(crate) hosted: roundtable_runtime::LeaderSet,
    pub(crate) peers: Vec<RemoteNode>,
    pub(crate) limits: LinkLimits,
    /// A digest of the member names in id order: nodes configured with different members refuse
    /// each other.
    pub(crate) members_digest: u64,
}

/// FNV-1a over the member names (each followed by a 0 byte): stable across builds and
/// platforms, unlike `std`'s hasher.
pub(crate) fn members_digest(names: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        for b in name.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Where a node listens.
#[derive(Debug, Clone)]
pub(crate) enum ListenOn {
    /// An address to bind (`host:port`; port 0 picks a free port).
    Addr(String),
    /// A socket the host bound itself (taken by the first start).
    Listener(std::sync::Arc<std::sync::Mutex<Option<std::net::TcpListener>>>),
}

/// The node settings of a cluster builder (`this_node`, `listen`, `identity`, `peer`).
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeSettings {
    pub(crate) hosted: Vec<String>,
    pub(crate) listen: Option<ListenOn>,
    pub(crate) identity: Option<Identity>,
    /// Remote leaders: name, address, key.
    pub(crate) peers: Vec<(String, String, PublicKey)>,
    pub(crate) limits: LinkLimits,
    /// `Some(false)`: the hosted leaders start fresh instead of recovering (see
    /// `ClusterBuilder::recover_on_start`).
    pub(crate) recover: Option<bool>,
}

impl NodeSettings {
    /// Whether the builder makes a node (some leader is hosted here and the rest are remote).
    pub(crate) fn is_node(&self) -> bool {
        !self.hosted.is_empty()
    }

    /// Checks the settings against the members (`names`, in id order), binds the listening
    /// socket, and returns the transport with the leaders hosted here.
    pub(crate) fn transport(&self, names: &[String]) -> Result<(TcpTransport, roundtable_runtime::LeaderSet), String> {
        use roundtable_runtime::{LeaderId, LeaderSet};
        let id_of = |name: &str| -> Result<LeaderId, String> {
            names
                .iter()
                .position(|n| n == name)
                .and_then(|i| LeaderId::new(i).ok())
                .ok_or_else(|| format!("{name:?} is not one of the leaders ({})", names.join(", ")))
        };
        let identity = self.identity.clone().ok_or("a node needs its identity (`identity`)")?;
        let mut hosted = LeaderSet::EMPTY;
        for name in &self.hosted {
            hosted.insert(id_of(name)?);
        }
        let mut peers: Vec<RemoteNode> = Vec::new();
        for (name, addr, key) in &self.peers {
            let id = id_of(name)?;
            if hosted.contains(id) {
                return Err(format!("{name:?} is hosted by this node and cannot also be a peer"));
            }
            if *key == identity.public_key() {
                return Err(format!("peer {name:?} has this node's own public key"));
            }
            match peers.iter_mut().find(|p| p.key == *key || p.addr == *addr) {
                Some(node) if node.key == *key && node.addr == *addr => {
                    if node.leaders.contains(id) {
                        return Err(format!("peer {name:?} is given twice"));
                    }
                    node.leaders.insert(id);
                    node.name = format!("{}+{name}", node.name);
                }
                Some(node) => {
                    return Err(format!(
                        "peer {name:?} ({addr}, key {key}) shares its address or its key with {:?} ({}, key {}): \
                         leaders of one node share both",
                        node.name, node.addr, node.key
                    ))
                }
                None => peers.push(RemoteNode {
                    name: name.clone(),
                    addr: addr.clone(),
                    key: *key,
                    leaders: LeaderSet::single(id),
                }),
            }
        }
        let covered = peers.iter().fold(hosted, |set, p| set.union(p.leaders));
        if let Some(missing) =
            names.iter().enumerate().find(|(i, _)| !LeaderId::new(*i).is_ok_and(|id| covered.contains(id)))
        {
            return Err(format!("leader {:?} is neither hosted by this node nor a peer", missing.1));
        }
        let listener = match self.listen.as_ref().ok_or("a node needs an address to listen on (`listen`)")? {
            ListenOn::Addr(addr) => {
                std::net::TcpListener::bind(addr.as_str()).map_err(|e| format!("cannot listen on {addr}: {e}"))?
            }
            ListenOn::Listener(slot) => slot
                .lock()
                .ok()
                .and_then(|mut l| l.take())
                .ok_or("the listening socket was already used by an earlier start")?,
        };
        let plan = NodePlan { identity, hosted, peers, limits: self.limits, members_digest: members_digest(names) };
        let transport = TcpTransport::new(plan, listener).map_err(|e| format!("cannot listen: {e}"))?;
        Ok((transport, hosted))
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn keys_read_back_and_bad_ones_are_named() {
        let id = Identity::generate().expect("a key");
        let text = id.public_key().to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<PublicKey>().expect("reads back"), id.public_key());
        assert_eq!(Identity::from_private_hex(&id.private_hex()).expect("reads back"), id);
        assert_eq!("abc".parse::<PublicKey>(), Err(KeyError::Length(3)));
        let bad = format!("{}x", &text[..63]);
        assert_eq!(bad.parse::<PublicKey>(), Err(KeyError::Digit(64)));
        assert!(!format!("{id:?}").contains(&id.private_hex()), "Debug never shows the private key");
    }

    /// A batch's envelope encoded once and framed for each peer is exactly the frame encoded
    /// whole, and decodes back to the message (for leader ids small and large).
    #[test]
    fn a_frame_from_an_encoded_envelope_is_the_frame_encoded_whole() {
        use link::LinkMessage;
        use roundtable_runtime::clock::HlcTimestamp;
        use roundtable_runtime::entry::{Entry, Op, SharedEntry};
        use roundtable_runtime::wire::{Envelope, PeerMessage, ReplicatedEntry};
        use roundtable_runtime::{Dot, Key, LeaderSet, Seq, Value, VersionVector};
        let id = |i: usize| roundtable_runtime::LeaderId::new(i).expect("an id");
        let entries = (1..=3u64)
            .map(|seq| ReplicatedEntry {
                entry: SharedEntry::new(Entry {
                    dot: Dot::new(id(0), Seq(seq)),
                    hlc: HlcTimestamp::new(1_000 + seq, 0, id(0)).expect("a stamp"),
                    deps: VersionVector::new(),
                    key: Key::new(format!("s/key{seq}")).expect("a key"),
                    op: Op::Put(Value::copy_of(b"value").expect("a value")),
                }),
                seen_by: LeaderSet::single(id(0)),
            })
            .collect();
        for (from, to) in [(id(0), id(1)), (id(2), id(63))] {
            let envelope =
                Envelope::new(from, PeerMessage::Replicate { entries: Vec::clone(&entries), catch_up: false });
            let whole = LinkMessage::Peer { to, envelope: envelope.clone() };
            let encoded = postcard::to_allocvec(&envelope).expect("encodes");
            let framed = link::peer_frame(to, from, &encoded).expect("frames");
            assert_eq!(framed, link::encode(&whole).expect("encodes"));
            assert_eq!(link::decode(&framed).expect("decodes"), whole);
        }
    }

    #[test]
    fn members_digest_depends_on_names_and_order() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let abc = members_digest(&names(&["a", "b", "c"]));
        assert_eq!(abc, members_digest(&names(&["a", "b", "c"])));
        assert_ne!(abc, members_digest(&names(&["a", "c", "b"])));
        assert_ne!(abc, members_digest(&names(&["ab", "c"])));
    }
}
