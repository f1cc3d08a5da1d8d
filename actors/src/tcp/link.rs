//! One link's life: dial or accept, handshake, hello, then frames both ways until it breaks.
//!
//! These tasks run on the actix system's thread beside the transport actor; they hand it what
//! arrives ([`Inbound`]) and what happens to links ([`LinkUp`], [`LinkDown`], [`Refused`]), and
//! the actor hands them frames to send through a bounded queue per link.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use roundtable_runtime::wire::{Envelope, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use roundtable_runtime::{LeaderId, LeaderSet};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::actor::{Inbound, LinkDown, LinkUp, Refused, TcpActor};
use super::noise::{self, Role, SecureLink};
use super::{LinkError, NodePlan, LINK_VERSION};

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

/// One frame on a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LinkMessage {
    /// The first frame each way.
    Hello(Hello),
    /// A replication message for leader `to`.
    Peer { to: LeaderId, envelope: Envelope },
    /// A leader's sign of life, for the receiving node's supervisor.
    Heartbeat { from: LeaderId },
}

pub(crate) fn encode(msg: &LinkMessage) -> Result<Vec<u8>, String> {
    let bytes = postcard::to_allocvec(msg).map_err(|e| e.to_string())?;
    if bytes.len() > MAX_LINK_FRAME {
        return Err(format!("frame of {} bytes exceeds the limit of {MAX_LINK_FRAME}", bytes.len()));
    }
    Ok(bytes)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<LinkMessage, String> {
    let (msg, rest) = postcard::take_from_bytes::<LinkMessage>(bytes).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(msg)
}

/// What the link tasks of one node share.
pub(crate) struct Shared {
    pub(crate) plan: NodePlan,
    pub(crate) actor: Addr<TcpActor>,
    pub(crate) handshakes: Arc<Semaphore>,
    generation: AtomicU64,
    jitter: RandomState,
}

impl Shared {
    pub(crate) fn new(plan: NodePlan, actor: Addr<TcpActor>) -> Shared {
        let handshakes = Arc::new(Semaphore::new(plan.limits.max_handshakes.max(1)));
        Shared { plan, actor, handshakes, generation: AtomicU64::new(0), jitter: RandomState::new() }
    }

    fn hello(&self) -> Hello {
        Hello {
            link_version: LINK_VERSION,
            protocol: PROTOCOL_VERSION,
            members: self.plan.members_digest,
            leaders: self.plan.hosted,
        }
    }

    /// The wait before redial attempt `failures` (0 after a link that worked): exponential from
    /// `backoff_min`, capped at `backoff_max`, drawn between half and all of that.
    fn backoff(&self, failures: u32) -> Duration {
        let limits = &self.plan.limits;
        let base = limits.backoff_min.saturating_mul(1u32 << failures.min(16)).min(limits.backoff_max);
        let draw = self.jitter.hash_one((failures, self.generation.load(Ordering::Relaxed))) % 1000;
        base.mul_f64(0.5 + draw as f64 / 2000.0)
    }
}

/// Accepts connections for ever; each gets a handshake slot or is closed at once.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Rc<Shared>) {
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
        let Ok(permit) = shared.handshakes.clone().try_acquire_owned() else {
            shared.actor.do_send(Refused {
                remote: remote.to_string(),
                reason: "too many connections in their handshake".into(),
            });
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        actix::spawn(async move {
            let established = establish(stream, &shared, Role::Responder, None).await;
            drop(permit);
            match established {
                Ok((link, peer)) => run(link, peer, &shared).await,
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
                    failures = 0;
                    run(link, peer, &shared).await;
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
        None => plan
            .peers
            .iter()
            .position(|p| p.key == key)
            .ok_or_else(|| LinkError::Refused(format!("unknown identity {key}")))?,
    };
    let hello = async {
        let ours = encode(&LinkMessage::Hello(shared.hello())).map_err(LinkError::Malformed)?;
        link.send(&ours).await?;
        let theirs = link.recv().await?.ok_or(LinkError::Closed)?;
        match decode(&theirs).map_err(LinkError::Malformed)? {
            LinkMessage::Hello(hello) => Ok(hello),
            _ => Err(LinkError::Malformed("expected a hello".into())),
        }
    };
    let theirs = tokio::time::timeout(timeout, hello).await.map_err(|_| LinkError::Timeout("hello"))??;
    let expected = shared.hello();
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
    if theirs.members != expected.members {
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

/// Carries frames both ways until the link breaks or a newer link to the same peer replaces it.
async fn run(mut link: SecureLink, peer: usize, shared: &Shared) {
    let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(shared.plan.limits.link_queue.max(1));
    shared.actor.do_send(LinkUp { peer, generation, tx });
    let (reason, rejected) = loop {
        tokio::select! {
            frame = link.recv() => match frame {
                Ok(Some(bytes)) => match decode(&bytes) {
                    Ok(msg) => {
                        let inbound = Inbound { peer, msg, bytes: bytes.len() };
                        // Waiting here when the actor's mailbox is full slows the peer down
                        // through TCP instead of queueing without bound.
                        if let Err(actix::dev::SendError::Full(inbound)) = shared.actor.try_send(inbound) {
                            if shared.actor.send(inbound).await.is_err() {
                                break ("the node is stopping".to_owned(), false);
                            }
                        }
                    }
                    Err(e) => break (format!("undecodable frame: {e}"), true),
                },
                Ok(None) => break ("closed by the peer".to_owned(), false),
                Err(e @ (LinkError::FrameTooLarge { .. } | LinkError::Noise(_) | LinkError::Malformed(_))) => {
                    break (e.to_string(), true)
                }
                Err(e) => break (e.to_string(), false),
            },
            out = rx.recv() => match out {
                Some(frame) => {
                    if let Err(e) = link.send(&frame).await {
                        break (e.to_string(), false);
                    }
                }
                None => break ("replaced by a newer link".to_owned(), false),
            },
        }
    };
    shared.actor.do_send(LinkDown { peer, generation, reason, rejected });
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
