//! One link's life: dial or accept, handshake, hello, then frames both ways until it breaks.
//!
//! These tasks run on the actix system's thread beside the transport actor; they hand it what
//! arrives ([`Inbound`]) and what happens to links ([`LinkUp`], [`LinkDown`], [`Refused`]), and
//! the actor hands them frames to send through a bounded queue per link.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use roundtable_runtime::clock::HlcTimestamp;
use roundtable_runtime::resolution::Update;
use roundtable_runtime::wire::{Envelope, PeerMessage, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use roundtable_runtime::{Dot, LeaderId, LeaderSet, Value};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::actor::{Inbound, LinkDown, LinkUp, Refused, TcpActor};
use super::noise::{self, Role, SecureLink, SecureReader, SecureWriter};
use super::{LinkError, NodePlan, LINK_VERSION};
use crate::messages::{Write, WriteConcern};

/// Bytes a link message may take beyond a replication frame (its tag and the receiver's id).
const LINK_HEADROOM: usize = 16;

/// The largest frame a link carries.
pub(crate) const MAX_LINK_FRAME: usize = MAX_FRAME_BYTES + LINK_HEADROOM;

/// What the two ends of a link say first, inside the encrypted channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) link_version: u16,
    pub(crate) protocol: u16,
    pub(crate) members: u64,
    pub(crate) leaders: LeaderSet,
}

/// A client write routed to its key's home leader on another node: what a home-leader
/// keyspace takes (a put or a delete), and the client's write concern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoutedWrite {
    pub(crate) key: String,
    /// The value to put, or `None` to delete.
    pub(crate) value: Option<Value>,
    /// Leaders that must hold it, how long to wait for them (milliseconds), and whether it must
    /// be on this leader's disk.
    pub(crate) concern: Option<(u32, u64, bool)>,
}

impl RoutedWrite {
    /// The wire form of `write`, or why it cannot travel (only puts and deletes go to a home).
    pub(crate) fn of(write: &Write) -> Result<RoutedWrite, String> {
        let value = match &write.update {
            Update::Put(v) => Some(v.clone()),
            Update::Delete => None,
            other => return Err(format!("a {} write has no home leader to be routed to", other.name())),
        };
        let concern = write.concern.map(|c| {
            let leaders = u32::try_from(c.leaders).unwrap_or(u32::MAX);
            (leaders, u64::try_from(c.timeout.as_millis()).unwrap_or(u64::MAX), c.durable)
        });
        Ok(RoutedWrite { key: write.key.clone(), value, concern })
    }

    /// The write it carries.
    pub(crate) fn into_write(self) -> Write {
        let update = self.value.map_or(Update::Delete, Update::Put);
        let concern = self.concern.map(|(leaders, ms, durable)| WriteConcern {
            leaders: leaders as usize,
            durable,
            timeout: Duration::from_millis(ms),
        });
        Write { key: self.key, update, concern }
    }
}

/// One frame on a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LinkMessage {
    /// The first frame each way.
    Hello(Hello),
    /// A replication message for leader `to`.
    Peer { to: LeaderId, envelope: Envelope },
    /// A leader's sign of life, for the receiving node's supervisor.
    Heartbeat { from: LeaderId },
    /// A client write that leader `from` routes to `to`, the key's home; answered by a
    /// `RouteReply` with the same `id`.
    Route { id: u64, from: LeaderId, to: LeaderId, write: RoutedWrite },
    /// The home's answer: the write's dot and stamp, or its error.
    RouteReply { id: u64, result: Result<(Dot, HlcTimestamp), String> },
}

pub(crate) fn encode(msg: &LinkMessage) -> Result<Vec<u8>, String> {
    // Most frames are one small entry: starting at 256 bytes spares the doublings from 8.
    let bytes = postcard::to_extend(msg, Vec::with_capacity(256)).map_err(|e| e.to_string())?;
    if bytes.len() > MAX_LINK_FRAME {
        return Err(format!("frame of {} bytes exceeds the limit of {MAX_LINK_FRAME}", bytes.len()));
    }
    Ok(bytes)
}

/// The frame `LinkMessage::Peer { to, envelope }` from `envelope` already encoded (postcard
/// writes an enum's variant, then its fields in order: the frame is the encoding of the variant
/// and `to`, then the envelope's). A leader sends the same batch to each of its peers; encoded
/// once, it is framed for each with this.
pub(crate) fn peer_frame(to: LeaderId, from: LeaderId, envelope: &[u8]) -> Result<Vec<u8>, String> {
    // The prefix: a frame with an empty envelope, minus that envelope's encoding.
    let empty = Envelope::new(from, PeerMessage::Replicate { entries: Vec::new(), catch_up: false });
    let sample =
        postcard::to_allocvec(&LinkMessage::Peer { to, envelope: empty.clone() }).map_err(|e| e.to_string())?;
    let tail = postcard::to_allocvec(&empty).map_err(|e| e.to_string())?;
    let prefix = sample.len().checked_sub(tail.len()).ok_or("a frame shorter than its envelope")?;
    let mut frame = Vec::with_capacity(prefix + envelope.len());
    frame.extend_from_slice(&sample[..prefix]);
    frame.extend_from_slice(envelope);
    if frame.len() > MAX_LINK_FRAME {
        return Err(format!("frame of {} bytes exceeds the limit of {MAX_LINK_FRAME}", frame.len()));
    }
    Ok(frame)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<LinkMessage, String> {
    let (msg, rest) = postcard::take_from_bytes::<LinkMessage>(bytes).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(msg)
}

/// Frames and bytes queued on one link, shared by the transport actor (which adds) and the
/// link's writer (which subtracts once sent).
#[derive(Debug, Default)]
pub(crate) struct Queued {
    pub(crate) frames: AtomicUsize,
    pub(crate) bytes: AtomicUsize,
}

/// What the link tasks of one node share.
pub(crate) struct Shared {
    pub(crate) plan: NodePlan,
    pub(crate) actor: Addr<TcpActor>,
    /// Handshake slots for connections from anywhere, at most `max_handshakes_per_ip` per source.
    handshakes: Arc<Semaphore>,
    /// Handshake slots kept for connections from the addresses of configured peers, so that a
    /// flood of connections from elsewhere cannot keep a peer from linking.
    peer_handshakes: Arc<Semaphore>,
    /// Handshakes in progress by source address (for the per-source bound).
    pending: RefCell<BTreeMap<IpAddr, usize>>,
    /// The addresses the configured peers resolve to.
    peer_ips: RefCell<BTreeSet<IpAddr>>,
    generation: AtomicU64,
    jitter: RandomState,
}

impl Shared {
    pub(crate) fn new(plan: NodePlan, actor: Addr<TcpActor>) -> Shared {
        let handshakes = Arc::new(Semaphore::new(plan.limits.max_handshakes.max(1)));
        let peer_handshakes = Arc::new(Semaphore::new(2 * plan.peers.len() + 2));
        Shared {
            plan,
            actor,
            handshakes,
            peer_handshakes,
            pending: RefCell::new(BTreeMap::new()),
            peer_ips: RefCell::new(BTreeSet::new()),
            generation: AtomicU64::new(0),
            jitter: RandomState::new(),
        }
    }

    fn hello(&self) -> Hello {
        Hello {
            link_version: LINK_VERSION,
            protocol: PROTOCOL_VERSION,
            members: self.plan.members_digest,
            leaders: self.plan.hosted,
        }
    }

    /// Whether this node dials `peer` (one link per pair of nodes: the node whose lowest leader
    /// id is smaller dials).
    pub(crate) fn dials(&self, peer: usize) -> bool {
        self.plan.hosted.iter().next() < self.plan.peers[peer].leaders.iter().next()
    }

    /// The wait before redial attempt `failures` (0 after a link that lasted): exponential from
    /// `backoff_min`, capped at `backoff_max`, drawn between half and all of that.
    fn backoff(&self, failures: u32) -> Duration {
        let limits = &self.plan.limits;
        let base = limits.backoff_min.saturating_mul(1u32 << failures.min(16)).min(limits.backoff_max);
        let draw = self.jitter.hash_one((failures, self.generation.load(Ordering::Relaxed))) % 1000;
        base.mul_f64(0.5 + draw as f64 / 2000.0)
    }

    /// A handshake slot for a connection from `ip`, or why there is none.
    fn admit(self: &Rc<Self>, ip: IpAddr) -> Result<Admission, &'static str> {
        if self.peer_ips.borrow().contains(&ip) {
            if let Ok(permit) = self.peer_handshakes.clone().try_acquire_owned() {
                return Ok(Admission { _permit: permit, ip, shared: self.clone() });
            }
        }
        let mut pending = self.pending.borrow_mut();
        let from_ip = pending.entry(ip).or_default();
        if *from_ip >= self.plan.limits.max_handshakes_per_ip {
            return Err("too many handshakes from this address");
        }
        let permit =
            self.handshakes.clone().try_acquire_owned().map_err(|_| "too many connections in their handshake")?;
        *from_ip += 1;
        Ok(Admission { _permit: permit, ip, shared: self.clone() })
    }

    /// Resolves the configured peers' addresses (at the start, then every minute).
    async fn resolve_peers(&self) {
        let mut ips = BTreeSet::new();
        for peer in &self.plan.peers {
            if let Ok(addrs) = tokio::net::lookup_host(peer.addr.as_str()).await {
                ips.extend(addrs.map(|a| a.ip()));
            }
        }
        *self.peer_ips.borrow_mut() = ips;
    }
}

/// A handshake slot, given back when dropped.
struct Admission {
    _permit: tokio::sync::OwnedSemaphorePermit,
    ip: IpAddr,
    shared: Rc<Shared>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut pending = self.shared.pending.borrow_mut();
        if let Some(n) = pending.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections for ever; each gets a handshake slot or is closed at once.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Rc<Shared>) {
    let refresh = Duration::from_secs(60);
    shared.resolve_peers().await;
    let mut resolved_at = tokio::time::Instant::now();
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if resolved_at.elapsed() > refresh {
            resolved_at = tokio::time::Instant::now();
            let shared = shared.clone();
            actix::spawn(async move { shared.resolve_peers().await });
        }
        let admission = match shared.admit(remote.ip()) {
            Ok(admission) => admission,
            Err(reason) => {
                shared.actor.do_send(Refused { remote: remote.to_string(), reason: reason.into() });
                drop(stream);
                continue;
            }
        };
        let shared = shared.clone();
        actix::spawn(async move {
            let established = establish(stream, &shared, Role::Responder, None).await;
            drop(admission);
            match established {
                Ok((link, peer)) => {
                    run(link, peer, &shared).await;
                }
                Err(e) => shared.actor.do_send(Refused { remote: remote.to_string(), reason: e.to_string() }),
            }
        });
    }
}

/// Dials peer `peer` for ever: connect, handshake, run the link, wait, again.
pub(crate) async fn dial_loop(peer: usize, shared: Rc<Shared>) {
    let mut failures = 0u32;
    loop {
        match dial(peer, &shared).await {
            Ok(stream) => match establish(stream, &shared, Role::Initiator, Some(peer)).await {
                Ok((link, _)) => {
                    let lasted = run(link, peer, &shared).await;
                    // A link that breaks at once (a peer that accepts and closes) counts as a
                    // failure, so that it is not redialed in a tight loop.
                    failures = if lasted >= shared.plan.limits.backoff_max { 0 } else { failures.saturating_add(1) };
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let remote = shared.plan.peers[peer].addr.clone();
                    shared.actor.do_send(Refused { remote, reason: e.to_string() });
                }
            },
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::debug!(peer = %shared.plan.peers[peer].name, error = %e, "dial failed");
            }
        }
        tokio::time::sleep(shared.backoff(failures)).await;
    }
}

async fn dial(peer: usize, shared: &Shared) -> Result<TcpStream, LinkError> {
    let addr = &shared.plan.peers[peer].addr;
    let timeout = shared.plan.limits.connect_timeout;
    let connect = async {
        let mut last = None;
        for candidate in tokio::net::lookup_host(addr.as_str()).await.map_err(LinkError::Io)? {
            match TcpStream::connect(candidate).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| LinkError::Refused(format!("{addr} resolves to no address")), LinkError::Io))
    };
    tokio::time::timeout(timeout, connect).await.map_err(|_| LinkError::Timeout("connect"))?
}

/// Handshake and hello. Returns the link and the index of the authenticated peer.
async fn establish(
    stream: TcpStream,
    shared: &Shared,
    role: Role,
    dialed: Option<usize>,
) -> Result<(SecureLink, usize), LinkError> {
    let plan = &shared.plan;
    let timeout = plan.limits.handshake_timeout;
    let (mut link, key) = noise::handshake(stream, &plan.identity, role, MAX_LINK_FRAME, timeout).await?;
    let peer = match dialed {
        Some(peer) if plan.peers[peer].key == key => peer,
        Some(peer) => {
            return Err(LinkError::Refused(format!(
                "{} answered with key {key}, not the configured one",
                plan.peers[peer].addr
            )))
        }
        None => {
            let peer = plan
                .peers
                .iter()
                .position(|p| p.key == key)
                .ok_or_else(|| LinkError::Refused(format!("unknown identity {key}")))?;
            if shared.dials(peer) {
                // Two links between one pair of nodes would replace each other for ever.
                return Err(LinkError::Refused(format!(
                    "{} dialed, but this node is the one that dials it",
                    plan.peers[peer].name
                )));
            }
            peer
        }
    };
    let hello = async {
        let ours = encode(&LinkMessage::Hello(shared.hello())).map_err(LinkError::Malformed)?;
        link.writer.send(&ours).await?;
        let theirs = link.reader.recv().await?.ok_or(LinkError::Closed)?;
        match decode(&theirs).map_err(LinkError::Malformed)? {
            LinkMessage::Hello(hello) => Ok(hello),
            _ => Err(LinkError::Malformed("expected a hello".into())),
        }
    };
    let theirs = tokio::time::timeout(timeout, hello).await.map_err(|_| LinkError::Timeout("hello"))??;
    let name = &plan.peers[peer].name;
    if theirs.link_version != LINK_VERSION {
        return Err(LinkError::Refused(format!(
            "{name} speaks link version {}, this node {LINK_VERSION}",
            theirs.link_version
        )));
    }
    if theirs.protocol != PROTOCOL_VERSION {
        return Err(LinkError::Refused(format!(
            "{name} speaks protocol version {}, this node {PROTOCOL_VERSION}",
            theirs.protocol
        )));
    }
    if theirs.members != plan.members_digest {
        return Err(LinkError::Refused(format!("{name} is configured with other members")));
    }
    if theirs.leaders != plan.peers[peer].leaders {
        return Err(LinkError::Refused(format!(
            "{name} hosts {}, configured here as hosting {}",
            theirs.leaders, plan.peers[peer].leaders
        )));
    }
    Ok((link, peer))
}

/// Carries frames both ways until the link breaks, goes silent for `idle_timeout`, cannot write
/// for `write_timeout`, or a newer link to the same peer replaces it. Returns how long it lasted.
async fn run(link: SecureLink, peer: usize, shared: &Shared) -> Duration {
    let started = tokio::time::Instant::now();
    let limits = shared.plan.limits;
    let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
    let (tx, rx) = mpsc::channel::<Vec<u8>>(limits.link_queue.max(1));
    let (stop, stopped) = oneshot::channel::<()>();
    let queued = Arc::new(Queued::default());
    shared.actor.do_send(LinkUp { peer, generation, tx, stop, queued: queued.clone() });
    let SecureLink { reader, writer } = link;
    let (reason, rejected) = tokio::select! {
        r = read_loop(reader, peer, shared) => r,
        w = write_loop(writer, rx, limits.write_timeout, &queued) => (w, false),
        _ = stopped => ("replaced by a newer link".to_owned(), false),
    };
    let unsent = queued.frames.load(Ordering::Relaxed);
    shared.actor.do_send(LinkDown { peer, generation, reason, rejected, unsent });
    started.elapsed()
}

/// Hands every frame that arrives to the actor. Returns why it stopped and whether the peer
/// sent something invalid.
async fn read_loop(mut reader: SecureReader, peer: usize, shared: &Shared) -> (String, bool) {
    let idle = shared.plan.limits.idle_timeout;
    loop {
        let frame = match tokio::time::timeout(idle, reader.recv()).await {
            Ok(frame) => frame,
            Err(_) => return (format!("nothing received for {idle:?}"), false),
        };
        match frame {
            Ok(Some(bytes)) => match decode(&bytes) {
                Ok(msg) => {
                    let inbound = Inbound { peer, msg, bytes: bytes.len() };
                    // Waiting here when the actor's mailbox is full slows the peer down
                    // through TCP instead of queueing without bound.
                    if let Err(actix::dev::SendError::Full(inbound)) = shared.actor.try_send(inbound) {
                        if shared.actor.send(inbound).await.is_err() {
                            return ("the node is stopping".to_owned(), false);
                        }
                    }
                }
                Err(e) => return (format!("undecodable frame: {e}"), true),
            },
            Ok(None) => return ("closed by the peer".to_owned(), false),
            Err(e @ (LinkError::FrameTooLarge { .. } | LinkError::Noise(_) | LinkError::Malformed(_))) => {
                return (e.to_string(), true)
            }
            Err(e) => return (e.to_string(), false),
        }
    }
}

/// The most bytes of frames the writer takes from its queue to send as one batch.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Sends what the actor queues: each time, every frame queued meanwhile (up to
/// [`WRITE_BATCH_BYTES`]) as one batch, so a burst costs one flush. Returns why it stopped.
async fn write_loop(
    mut writer: SecureWriter,
    mut rx: mpsc::Receiver<Vec<u8>>,
    write_timeout: Duration,
    queued: &Queued,
) -> String {
    let mut batch: Vec<Vec<u8>> = Vec::new();
    while let Some(frame) = rx.recv().await {
        let mut bytes = frame.len();
        batch.push(frame);
        // Let the tasks that are ready run first (the leader, more clients): what they queue
        // meanwhile joins this batch instead of taking a flush of its own.
        tokio::task::yield_now().await;
        while bytes < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(frame) => {
                    bytes += frame.len();
                    batch.push(frame);
                }
                Err(_) => break,
            }
        }
        let sent = tokio::time::timeout(write_timeout, writer.send_batch(batch.iter().map(Vec::as_slice))).await;
        queued.frames.fetch_sub(batch.len(), Ordering::Relaxed);
        queued.bytes.fetch_sub(bytes, Ordering::Relaxed);
        batch.clear();
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return e.to_string(),
            Err(_) => return format!("a batch of frames could not be written for {write_timeout:?}"),
        }
    }
    "the node is stopping".to_owned()
}

#[cfg(test)]
mod tests {
    use roundtable_runtime::wire::PeerMessage;

    use super::*;

    #[test]
    fn link_messages_round_trip_and_garbage_is_an_error() {
        let a = LeaderId::new(0).expect("a leader");
        let hello =
            LinkMessage::Hello(Hello { link_version: 1, protocol: 2, members: 7, leaders: LeaderSet::single(a) });
        assert_eq!(decode(&encode(&hello).expect("encodes")).expect("decodes"), hello);
        let digest = PeerMessage::Digest {
            vv: Default::default(),
            reply: roundtable_runtime::wire::DigestReply::IfBehind,
            held: vec![],
            needed: roundtable_runtime::Seq(0),
            stable: Default::default(),
            repair: false,
            recovery: Default::default(),
        };
        let peer = LinkMessage::Peer { to: a, envelope: Envelope::new(a, digest) };
        let mut bytes = encode(&peer).expect("encodes");
        assert_eq!(decode(&bytes).expect("decodes"), peer);
        bytes.push(0);
        assert!(decode(&bytes).is_err(), "trailing bytes are refused");
        assert!(decode(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[]).is_err());
    }
}
