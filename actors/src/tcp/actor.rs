//! The transport actor of a node: local leaders are served as by the in-process transport,
//! remote ones through links.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult, WrapFuture};
use roundtable_runtime::wire::{Envelope, PeerMessage, PROTOCOL_VERSION};
use roundtable_runtime::{LeaderId, LeaderSet, WriteReceipt};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;

use super::link::{self, LinkMessage, Queued, RoutedWrite, Shared};
use super::noise::wire_bytes;
use super::NodePlan;
use crate::messages::LeaderError;
use crate::trace::{Actor as Who, Frame, Loss, NetworkEvent, TraceSink};
use crate::transport::{
    Connect, Heartbeat, LeaderInbox, NetStats, Parcel, Report, Route, Stats, SupervisorInbox, Transmit, Transport,
    TransportLinks, TransportThread,
};

/// A link is up: frames for peer `peer` go into `tx`; dropping `stop` ends the link.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct LinkUp {
    pub(crate) peer: usize,
    pub(crate) generation: u64,
    pub(crate) tx: mpsc::Sender<Vec<u8>>,
    pub(crate) stop: oneshot::Sender<()>,
    pub(crate) queued: Arc<Queued>,
}

/// A link broke (`rejected`: because the peer sent something invalid), with `unsent` frames
/// still queued on it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct LinkDown {
    pub(crate) peer: usize,
    pub(crate) generation: u64,
    pub(crate) reason: String,
    pub(crate) rejected: bool,
    pub(crate) unsent: usize,
}

/// A routed write waiting for its home: the peer asked, the home, and the caller.
type PendingRoute = (usize, LeaderId, oneshot::Sender<Result<WriteReceipt, LeaderError>>);

/// The current link to one peer.
struct Slot {
    generation: u64,
    tx: mpsc::Sender<Vec<u8>>,
    /// Dropped when the slot is: that ends the link's task.
    _stop: oneshot::Sender<()>,
    queued: Arc<Queued>,
}

/// A frame from an authenticated peer.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Inbound {
    pub(crate) peer: usize,
    pub(crate) msg: LinkMessage,
    pub(crate) bytes: usize,
}

/// A connection that did not become a link.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Refused {
    pub(crate) remote: String,
    pub(crate) reason: String,
}

/// The TCP transport of one node, its listening socket already bound (so that a bad address is
/// an error of the cluster's start, and port 0 gives a known port before anything runs).
pub(crate) struct TcpTransport {
    plan: NodePlan,
    listener: Mutex<Option<std::net::TcpListener>>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// A transport listening on `listener`.
    pub(crate) fn new(plan: NodePlan, listener: std::net::TcpListener) -> std::io::Result<TcpTransport> {
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        Ok(TcpTransport { plan, listener: Mutex::new(Some(listener)), local_addr })
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Transport for TcpTransport {
    fn start(&self, sink: TraceSink, mailbox_capacity: usize) -> TransportLinks {
        let listener = self.listener.lock().ok().and_then(|mut l| l.take());
        let peers = &self.plan.peers;
        let mut owner = BTreeMap::new();
        for (i, peer) in peers.iter().enumerate() {
            for id in peer.leaders {
                owner.insert(id, i);
            }
        }
        let actor = TcpActor {
            plan: self.plan.clone(),
            listener,
            owner,
            links: peers.iter().map(|_| None).collect(),
            local: BTreeMap::new(),
            supervisor: None,
            stats: NetStats::default(),
            last_batch: None,
            sink,
            mailbox_capacity: mailbox_capacity.max(1),
            refusals_unlogged: 0,
            refusal_logged_at: None,
            routes: BTreeMap::new(),
            route_ids: 0,
        };
        // The links run on a thread of their own: encoding, encryption and the sockets of the
        // replication traffic then take nothing from the leaders' thread.
        match actix::System::try_current().and_then(|_| actix::Arbiter::try_new().ok()) {
            Some(arbiter) => {
                arbiter.spawn_fn(batch_policy);
                let addr = TcpActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
                TransportLinks { _thread: Some(Arc::new(TransportThread(arbiter))), ..TransportLinks::of(&addr) }
            }
            None => TransportLinks::of(&actor.start()),
        }
    }
}

/// Marks the calling thread (the links') `SCHED_BATCH` on Linux. Replication I/O is batch work:
/// a batch thread has the CPU share of any other, but its wake-ups never preempt a running
/// thread, such as the leaders' serving clients. Under redis-benchmark on a shared 2-core
/// machine the leader's thread was otherwise preempted ~7,500 times a second, and a node
/// served ~8 % fewer SETs.
#[cfg(target_os = "linux")]
fn batch_policy() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadPriority,
        ThreadPriorityOsValue, ThreadSchedulePolicy,
    };
    // Setting the policy also sets the thread's nice value: only a thread at nice 0 is changed,
    // so that the policy changes and the share does not (a niced process keeps its niceness).
    if thread_nice() != Some(0) {
        tracing::debug!("the links' thread keeps the default scheduling policy: the process is niced");
        return;
    }
    let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    let nice = ThreadPriority::Os(ThreadPriorityOsValue::default());
    if let Err(error) = set_thread_priority_and_policy(thread_native_id(), nice, batch) {
        tracing::debug!(?error, "the links' thread keeps the default scheduling policy");
    }
}

/// The calling thread's nice value (`/proc/thread-self/stat`, field 19).
#[cfg(target_os = "linux")]
fn thread_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: the third
    // field of the line is the first here.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19 - 3)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn batch_policy() {}

/// The actor behind [`TcpTransport`].
pub(crate) struct TcpActor {
    plan: NodePlan,
    listener: Option<std::net::TcpListener>,
    /// Which peer hosts each remote leader.
    owner: BTreeMap<LeaderId, usize>,
    /// The current link to each peer.
    links: Vec<Option<Slot>>,
    local: BTreeMap<LeaderId, LeaderInbox>,
    supervisor: Option<SupervisorInbox>,
    stats: NetStats,
    /// The latest replication batch sent, by whom, and its envelope encoded.
    last_batch: Option<(LeaderId, PeerMessage, Vec<u8>)>,
    sink: TraceSink,
    mailbox_capacity: usize,
    /// Routed writes waiting for their home on another node: the peer and the caller.
    routes: BTreeMap<u64, PendingRoute>,
    route_ids: u64,
    /// Refusals not logged yet (at most one log line a second), and when the last was.
    refusals_unlogged: u64,
    refusal_logged_at: Option<tokio::time::Instant>,
}

impl Actor for TcpActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        let shared = Rc::new(Shared::new(self.plan.clone(), ctx.address()));
        match self.listener.take().map(tokio::net::TcpListener::from_std) {
            Some(Ok(listener)) => {
                actix::spawn(link::accept_loop(listener, shared.clone()));
            }
            Some(Err(e)) => tracing::error!(error = %e, "cannot listen: no peer can connect to this node"),
            None => tracing::error!("the transport was started twice: the second one does not listen"),
        }
        for i in 0..self.plan.peers.len() {
            // One link per pair of nodes: the node with the lower leader id dials.
            if shared.dials(i) {
                actix::spawn(link::dial_loop(i, shared.clone()));
            }
        }
    }
}

impl TcpActor {
    fn peer_name(&self, peer: usize) -> String {
        self.plan.peers.get(peer).map_or_else(|| format!("peer {peer}"), |p| p.name.clone())
    }

    fn lost(&mut self, frame: Frame, why: Loss) {
        self.stats.dropped += 1;
        self.sink.record(Who::Network, NetworkEvent::Lost { message: frame, why });
    }

    fn reject(&mut self, peer: usize, reason: String) {
        self.stats.rejected_frames += 1;
        let link = self.peer_name(peer);
        tracing::warn!(%link, %reason, "frame rejected");
        self.sink.record(Who::Network, NetworkEvent::Rejected { link, reason });
    }

    /// Queues `bytes` on the link to `peer`; what cannot be queued is lost and says why.
    fn send_to(&mut self, peer: usize, bytes: Vec<u8>) -> Result<(), Loss> {
        let Some(slot) = &self.links[peer] else { return Err(Loss::LinkDown) };
        let len = bytes.len();
        if slot.queued.bytes.load(Ordering::Relaxed).saturating_add(len) > self.plan.limits.link_queue_bytes {
            return Err(Loss::LinkFull);
        }
        match slot.tx.try_send(bytes) {
            Ok(()) => {
                slot.queued.frames.fetch_add(1, Ordering::Relaxed);
                slot.queued.bytes.fetch_add(len, Ordering::Relaxed);
                self.stats.link_bytes += wire_bytes(len) as u64;
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(Loss::LinkFull),
            Err(TrySendError::Closed(_)) => {
                self.links[peer] = None;
                Err(Loss::LinkDown)
            }
        }
    }
}

impl Handler<Transmit> for TcpActor {
    type Result = ();
    fn handle(&mut self, t: Transmit, _: &mut Context<Self>) {
        let sent_at = self.sink.elapsed();
        if let Some(leader) = self.local.get(&t.to()) {
            if let Some(parcel) = self.stats.pack(t, &self.sink) {
                leader.deliver(parcel, sent_at);
            }
            return;
        }
        let (from, to, kind) = (t.from(), t.to(), t.msg().kind());
        let Some(&peer) = self.owner.get(&to) else {
            let frame = Frame { from, to, kind: kind.to_owned(), bytes: 0, sent_at };
            self.lost(frame, Loss::NoSuchLeader);
            return;
        };
        let bytes = match self.peer_frame(t) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.stats.unencodable += 1;
                self.sink.record(Who::Network, NetworkEvent::Unencodable { from, to, kind: kind.to_owned(), error });
                return;
            }
        };
        let len = bytes.len();
        let stats = self.stats.by_kind.entry(kind).or_default();
        stats.messages += 1;
        stats.bytes += len as u64;
        if let Err(why) = self.send_to(peer, bytes) {
            self.lost(Frame { from, to, kind: kind.to_owned(), bytes: len, sent_at }, why);
        }
    }
}

impl TcpActor {
    /// The frame of `t` for its peer. A replication batch's envelope is encoded once: a leader
    /// sends the same batch to each of its peers in turn (all-to-all, a star's hub), and the next
    /// `Transmit` of the same entries (the same shared entries, so a cheap comparison) from the
    /// same leader reuses it.
    fn peer_frame(&mut self, t: Transmit) -> Result<Vec<u8>, String> {
        let (from, to) = (t.from(), t.to());
        if let Some((_, _, envelope)) = self.last_batch.as_ref().filter(|(by, batch, _)| {
            *by == from && matches!(t.msg(), PeerMessage::Replicate { .. }) && batch == t.msg()
        }) {
            return link::peer_frame(to, from, envelope);
        }
        let envelope = Envelope::new(from, t.into_msg());
        let encoded = postcard::to_allocvec(&envelope).map_err(|e| e.to_string())?;
        let frame = link::peer_frame(to, from, &encoded);
        self.last_batch =
            matches!(envelope.body, PeerMessage::Replicate { .. }).then(|| (from, envelope.body, encoded));
        frame
    }
}

/// Routed writes waiting for their home's answer, at most this many at once.
const ROUTES_PENDING_MAX: usize = 4096;

/// How long a routed write waits for its home's answer.
const ROUTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl TcpActor {
    /// Sends `route` to its home on another node; the answer comes back as a `RouteReply`.
    fn route_remote(
        &mut self,
        route: Route,
    ) -> Result<oneshot::Receiver<Result<WriteReceipt, LeaderError>>, LeaderError> {
        let (from, home) = (route.from(), route.to());
        let unreachable = LeaderError::HomeUnreachable { home };
        let peer = *self.owner.get(&home).ok_or(unreachable.clone())?;
        let write = RoutedWrite::of(route.write()).map_err(|reason| LeaderError::RefusedByHome { home, reason })?;
        if self.routes.len() >= ROUTES_PENDING_MAX {
            // Answers whose callers gave up are dropped first.
            self.routes.retain(|_, (_, _, tx)| !tx.is_closed());
            if self.routes.len() >= ROUTES_PENDING_MAX {
                return Err(unreachable);
            }
        }
        self.route_ids += 1;
        let id = self.route_ids;
        let bytes = link::encode(&LinkMessage::Route { id, from, to: home, write }).map_err(|_| unreachable.clone())?;
        self.send_to(peer, bytes).map_err(|_| unreachable)?;
        let (tx, rx) = oneshot::channel();
        self.routes.insert(id, (peer, home, tx));
        Ok(rx)
    }

    /// Answers a route from `peer` once the local home has decided.
    fn answer_route(&mut self, peer: usize, id: u64, result: Result<WriteReceipt, LeaderError>) {
        let result = result.map(|r| (r.dot, r.hlc)).map_err(|e| e.to_string());
        if let Ok(bytes) = link::encode(&LinkMessage::RouteReply { id, result }) {
            // A lost answer times out at the routing node, which tells its client.
            let _ = self.send_to(peer, bytes);
        }
    }
}

impl Handler<Route> for TcpActor {
    type Result = actix::ResponseFuture<Result<WriteReceipt, LeaderError>>;
    fn handle(&mut self, route: Route, _: &mut Context<Self>) -> Self::Result {
        let (from, home) = (route.from(), route.to());
        if let Some(leader) = self.local.get(&home) {
            return Box::pin(leader.route(route));
        }
        match self.route_remote(route) {
            Ok(answer) => Box::pin(async move {
                match tokio::time::timeout(ROUTE_TIMEOUT, answer).await {
                    Ok(Ok(result)) => result,
                    _ => Err(LeaderError::HomeUnreachable { home }),
                }
            }),
            Err(e) => {
                self.sink.record(Who::Network, NetworkEvent::RouteLost { from, to: home });
                Box::pin(async move { Err(e) })
            }
        }
    }
}

impl Handler<Heartbeat> for TcpActor {
    type Result = ();
    fn handle(&mut self, hb: Heartbeat, _: &mut Context<Self>) {
        self.stats.heartbeats += 1;
        if let Some(sup) = &self.supervisor {
            sup.heartbeat(hb);
        }
        if !self.plan.hosted.contains(hb.from()) {
            return;
        }
        let Ok(bytes) = link::encode(&LinkMessage::Heartbeat { from: hb.from() }) else { return };
        for peer in 0..self.links.len() {
            // A heartbeat that finds its link down or full is not missed: the next one follows
            // within a tick, and silence is what the peer's supervisor is there to notice.
            let _ = self.send_to(peer, bytes.clone());
        }
    }
}

impl Handler<Report> for TcpActor {
    type Result = ();
    fn handle(&mut self, report: Report, _: &mut Context<Self>) {
        if let Some(sup) = &self.supervisor {
            sup.report(report);
        }
    }
}

impl Handler<Connect> for TcpActor {
    type Result = ();
    fn handle(&mut self, c: Connect, _: &mut Context<Self>) {
        let (leaders, supervisor) = c.into_parts();
        self.local = leaders;
        self.supervisor = Some(supervisor);
    }
}

impl Handler<Stats> for TcpActor {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}

impl Handler<LinkUp> for TcpActor {
    type Result = ();
    fn handle(&mut self, up: LinkUp, _: &mut Context<Self>) {
        let Some(slot) = self.links.get_mut(up.peer) else { return };
        // A newer link replaces an older one (the peer restarted, or redialed first): dropping
        // the old queue ends the old link's task.
        *slot = Some(Slot { generation: up.generation, tx: up.tx, _stop: up.stop, queued: up.queued });
        let link = self.peer_name(up.peer);
        tracing::info!(%link, "link up");
        self.sink.record(Who::Network, NetworkEvent::LinkUp { link });
    }
}

impl Handler<LinkDown> for TcpActor {
    type Result = ();
    fn handle(&mut self, down: LinkDown, _: &mut Context<Self>) {
        if down.rejected {
            self.reject(down.peer, down.reason.clone());
        }
        let Some(slot) = self.links.get_mut(down.peer) else { return };
        if slot.as_ref().is_some_and(|s| s.generation == down.generation) {
            *slot = None;
            // Routed writes waiting on the peer will not be answered: their callers hear it now.
            self.routes.retain(|_, (peer, _, _)| *peer != down.peer);
        }
        // Frames still queued on the link are lost with it (the log and anti-entropy resend
        // what they carried).
        self.stats.dropped += down.unsent as u64;
        let link = self.peer_name(down.peer);
        let reason =
            if down.unsent > 0 { format!("{} ({} frames unsent)", down.reason, down.unsent) } else { down.reason };
        tracing::info!(%link, %reason, "link down");
        self.sink.record(Who::Network, NetworkEvent::LinkDown { link, reason });
    }
}

impl Handler<Refused> for TcpActor {
    type Result = ();
    fn handle(&mut self, refused: Refused, _: &mut Context<Self>) {
        self.stats.refused_links += 1;
        // At most one log line a second: a flood of connections must not flood the log.
        let now = tokio::time::Instant::now();
        if self.refusal_logged_at.is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(1)) {
            self.refusals_unlogged += 1;
        } else {
            let also = std::mem::take(&mut self.refusals_unlogged);
            tracing::warn!(remote = %refused.remote, reason = %refused.reason, refused_since_last_line = also, "connection refused");
            self.refusal_logged_at = Some(now);
        }
        self.sink.record(Who::Network, NetworkEvent::LinkRefused { remote: refused.remote, reason: refused.reason });
    }
}

impl Handler<Inbound> for TcpActor {
    type Result = ();
    fn handle(&mut self, inbound: Inbound, ctx: &mut Context<Self>) {
        let Inbound { peer, msg, bytes } = inbound;
        let Some(hosts) = self.plan.peers.get(peer).map(|p| p.leaders) else { return };
        match msg {
            LinkMessage::Hello(_) => self.reject(peer, "a second hello".into()),
            LinkMessage::Heartbeat { from } if hosts.contains(from) => {
                if let Some(sup) = &self.supervisor {
                    sup.heartbeat(Heartbeat { from });
                }
            }
            LinkMessage::Heartbeat { from } => {
                self.reject(peer, spoofed(from, hosts));
            }
            LinkMessage::Peer { envelope, .. } if envelope.version != PROTOCOL_VERSION => {
                let reason = format!("protocol version {} (this node speaks {PROTOCOL_VERSION})", envelope.version);
                self.reject(peer, reason);
            }
            LinkMessage::Peer { envelope, .. } if !hosts.contains(envelope.from) => {
                self.reject(peer, spoofed(envelope.from, hosts));
            }
            LinkMessage::Route { from, .. } if !hosts.contains(from) => {
                self.reject(peer, spoofed(from, hosts));
            }
            LinkMessage::Route { id, from, to, write } => match self.local.get(&to) {
                Some(leader) => {
                    let answer = leader.route(Route::new(from, to, write.into_write()));
                    ctx.spawn(
                        answer.into_actor(self).map(move |result, actor, _| actor.answer_route(peer, id, result)),
                    );
                }
                None => self.answer_route(peer, id, Err(LeaderError::HomeUnreachable { home: to })),
            },
            LinkMessage::RouteReply { id, result } => match self.routes.remove(&id) {
                Some((asked, home, tx)) if asked == peer => {
                    let result = result
                        .map(|(dot, hlc)| WriteReceipt { dot, hlc })
                        .map_err(|reason| LeaderError::RefusedByHome { home, reason });
                    let _ = tx.send(result);
                }
                Some(entry) => {
                    self.routes.insert(id, entry);
                    self.reject(peer, format!("an answer to route {id}, which it was not asked"));
                }
                None => {} // The caller gave up, or the link was replaced.
            },
            LinkMessage::Peer { to, envelope } => {
                let sent_at = self.sink.elapsed();
                let parcel = Parcel::received(envelope.from, to, envelope.body, bytes);
                match self.local.get(&to) {
                    Some(leader) => leader.deliver(parcel, sent_at),
                    None => self.lost(parcel.describe(sent_at), Loss::NoSuchLeader),
                }
            }
        }
    }
}

fn spoofed(from: LeaderId, hosts: LeaderSet) -> String {
    format!("claims to come from {from}; the link is authenticated as hosting {hosts}")
}
