//! The one small interface between leaders and whatever carries their messages, and the
//! in-process transport a host application gets by default.
//!
//! A leader hands [`Transmit`]s (messages for a peer), [`Route`]s (client writes for a key's home
//! leader), [`Heartbeat`]s and [`Report`]s (for the supervisor) to the recipients of a
//! [`TransportLinks`]; it cannot tell which transport it runs on. A transport reaches leaders
//! through [`LeaderInbox`]es and the supervisor through a [`SupervisorInbox`], which it receives
//! in a [`Connect`] once everything has started. Three transports implement it: [`InProcess`]
//! (mailbox to mailbox, here), the simulated network (latency, loss, partitions; in
//! `roundtable-sim`), and TCP between processes (a later step).
//!
//! Only this crate can build the messages a transport delivers *into* a leader, and an inbox
//! exposes no way to name another sender than the one the transport says: a host holding a
//! leader's address cannot forge peer frames, rewire it or fence it.
//!
//! ```text
//!   Leader ──Transmit / Route / Heartbeat / Report──▶ transport ──LeaderInbox──▶ Leader
//!                                                        └──────SupervisorInbox──▶ Supervisor
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Message, MessageResult, Recipient};
use roundtable_runtime::wire::{self, PeerMessage};
use roundtable_runtime::{Alarm, LeaderId, LeaderSet, WriteReceipt};

use crate::messages::{LeaderError, Routed, Write};
use crate::trace::{Actor as Who, Frame, Loss, NetworkEvent, TraceSink};

/// A message from one leader for another.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Transmit {
    from: LeaderId,
    to: LeaderId,
    msg: PeerMessage,
}

impl Transmit {
    pub(crate) fn new(from: LeaderId, to: LeaderId, msg: PeerMessage) -> Self {
        Transmit { from, to, msg }
    }

    /// The sending leader.
    #[must_use]
    pub fn from(&self) -> LeaderId {
        self.from
    }

    /// The receiving leader.
    #[must_use]
    pub fn to(&self) -> LeaderId {
        self.to
    }

    /// The message.
    #[must_use]
    pub fn msg(&self) -> &PeerMessage {
        &self.msg
    }

    /// The message, taken.
    #[must_use]
    pub fn into_msg(self) -> PeerMessage {
        self.msg
    }
}

/// A message on its way to a leader of the same process, with the length of its frame. It is
/// the message itself: nothing is encoded or decoded, and the entries it carries are the
/// sender's (shared, not copied); its length is what [`wire::encode`] would make of it, counted
/// without encoding ([`wire::frame_len`]).
#[derive(Debug, Clone)]
pub struct Parcel {
    from: LeaderId,
    to: LeaderId,
    msg: PeerMessage,
    bytes: usize,
    kind: &'static str,
}

impl Parcel {
    /// The sending leader.
    #[must_use]
    pub fn from(&self) -> LeaderId {
        self.from
    }

    /// The receiving leader.
    #[must_use]
    pub fn to(&self) -> LeaderId {
        self.to
    }

    /// The length of its frame, in bytes.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The kind of message (`replicate`, `catch-up`, `digest`, `snapshot`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Its description in a trace, sent at `sent_at`.
    #[must_use]
    pub fn describe(&self, sent_at: Duration) -> Frame {
        Frame { from: self.from, to: self.to, kind: self.kind.to_owned(), bytes: self.bytes, sent_at }
    }

    pub(crate) fn into_msg(self) -> PeerMessage {
        self.msg
    }

    /// A message that arrived from another process in a frame of `bytes` bytes.
    #[cfg(feature = "tcp")]
    pub(crate) fn received(from: LeaderId, to: LeaderId, msg: PeerMessage, bytes: usize) -> Parcel {
        let kind = msg.kind();
        Parcel { from, to, msg, bytes, kind }
    }
}

/// From a transport: a message from a peer.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct Deliver {
    /// The message.
    pub(crate) parcel: Parcel,
    /// When it was sent (time since the start of the run; for the trace).
    pub(crate) sent_at: std::time::Duration,
}

/// A client write that a leader routes to the key's home leader. Lost like any message when the
/// two cannot reach each other.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WriteReceipt, LeaderError>")]
pub struct Route {
    from: LeaderId,
    to: LeaderId,
    write: Write,
}

impl Route {
    pub(crate) fn new(from: LeaderId, to: LeaderId, write: Write) -> Self {
        Route { from, to, write }
    }

    /// The leader the client wrote to.
    #[must_use]
    pub fn from(&self) -> LeaderId {
        self.from
    }

    /// The key's home leader.
    #[must_use]
    pub fn to(&self) -> LeaderId {
        self.to
    }

    /// The write.
    #[cfg(feature = "tcp")]
    pub(crate) fn write(&self) -> &Write {
        &self.write
    }
}

/// A leader's sign of life, for the supervisor.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Heartbeat {
    pub(crate) from: LeaderId,
}

impl Heartbeat {
    /// The leader it comes from.
    #[must_use]
    pub fn from(&self) -> LeaderId {
        self.from
    }
}

/// An alarm a leader raises for the supervisor (a peer whose clock runs ahead).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Report {
    pub(crate) from: LeaderId,
    pub(crate) alarm: Alarm,
}

impl Report {
    /// The leader that raised it.
    #[must_use]
    pub fn from(&self) -> LeaderId {
        self.from
    }
}

/// How a transport reaches one leader. Built by the cluster; a transport only holds it.
#[derive(Clone)]
pub struct LeaderInbox {
    id: LeaderId,
    deliver: Recipient<Deliver>,
    routed: Recipient<Routed>,
}

impl std::fmt::Debug for LeaderInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderInbox").field("id", &self.id).finish_non_exhaustive()
    }
}

impl LeaderInbox {
    pub(crate) fn new(id: LeaderId, deliver: Recipient<Deliver>, routed: Recipient<Routed>) -> Self {
        LeaderInbox { id, deliver, routed }
    }

    /// The leader this inbox reaches.
    #[must_use]
    pub fn id(&self) -> LeaderId {
        self.id
    }

    /// Hands the leader a message sent at `sent_at` (time since the trace's start).
    pub fn deliver(&self, parcel: Parcel, sent_at: Duration) {
        self.deliver.do_send(Deliver { parcel, sent_at });
    }

    /// Hands the leader a write routed to it as the key's home, and resolves to its answer
    /// ([`LeaderError::HomeUnreachable`] when the leader is gone).
    pub fn route(&self, route: Route) -> impl Future<Output = Result<WriteReceipt, LeaderError>> + 'static {
        let home = route.to;
        let request = self.routed.send(Routed(route.write));
        async move { request.await.unwrap_or(Err(LeaderError::HomeUnreachable { home })) }
    }
}

/// How a transport reaches the supervisor. Built by the cluster; a transport only holds it.
#[derive(Clone)]
pub struct SupervisorInbox {
    heartbeat: Recipient<Heartbeat>,
    report: Recipient<Report>,
}

impl std::fmt::Debug for SupervisorInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorInbox").finish_non_exhaustive()
    }
}

impl SupervisorInbox {
    pub(crate) fn new(heartbeat: Recipient<Heartbeat>, report: Recipient<Report>) -> Self {
        SupervisorInbox { heartbeat, report }
    }

    /// Passes a leader's heartbeat on.
    pub fn heartbeat(&self, heartbeat: Heartbeat) {
        self.heartbeat.do_send(heartbeat);
    }

    /// Passes a leader's alarm on.
    pub fn report(&self, report: Report) {
        self.report.do_send(report);
    }
}

/// Wiring, sent once to a transport when the leaders and the supervisor have started.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Connect {
    leaders: BTreeMap<LeaderId, LeaderInbox>,
    supervisor: SupervisorInbox,
}

impl Connect {
    pub(crate) fn new(leaders: BTreeMap<LeaderId, LeaderInbox>, supervisor: SupervisorInbox) -> Self {
        Connect { leaders, supervisor }
    }

    /// The leaders' inboxes (by id) and the supervisor's.
    #[must_use]
    pub fn into_parts(self) -> (BTreeMap<LeaderId, LeaderInbox>, SupervisorInbox) {
        (self.leaders, self.supervisor)
    }
}

/// Message and byte counts of one kind of message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Messages sent.
    pub messages: u64,
    /// Bytes sent (encoded frames).
    pub bytes: u64,
}

/// What a transport carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// By message kind (`replicate`, `catch-up`, `digest`, `snapshot`), in name order.
    pub by_kind: BTreeMap<&'static str, KindStats>,
    /// Messages lost (by a loss model, a partition, or a receiver that does not exist).
    pub dropped: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Messages that could not be encoded (larger than a frame).
    pub unencodable: u64,
    /// Messages sent but not yet delivered.
    pub in_flight: u64,
    /// Heartbeats from leaders to the supervisor (not counted in `by_kind`).
    pub heartbeats: u64,
    /// Connections from or to other nodes refused before they became links: an unknown or wrong
    /// identity, another protocol version, other members, a failed or slow handshake, too many
    /// handshakes at once (TCP transport).
    pub refused_links: u64,
    /// Frames an authenticated peer sent that were rejected: an envelope naming a sender the
    /// link does not host, another protocol version, or a frame that cannot be decoded (which
    /// also closes the link) (TCP transport).
    pub rejected_frames: u64,
    /// Bytes queued on links, counting the link's own framing and encryption (length prefixes
    /// and authentication tags), not the handshakes (TCP transport).
    pub link_bytes: u64,
}

impl NetStats {
    /// All messages sent.
    #[must_use]
    pub fn messages(&self) -> u64 {
        self.by_kind.values().map(|k| k.messages).sum()
    }

    /// All bytes sent.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.by_kind.values().map(|k| k.bytes).sum()
    }

    /// Makes a leader's message into a [`Parcel`] for a leader of the same process (nothing is
    /// encoded: the length of its frame is counted) and counts it by kind. A message that does
    /// not fit a frame is counted as unencodable, traced, and `None` comes back — as a transport
    /// that encodes would.
    pub fn pack(&mut self, t: Transmit, sink: &TraceSink) -> Option<Parcel> {
        let kind = t.msg.kind();
        let (from, to) = (t.from, t.to);
        match wire::frame_len(from, &t.msg) {
            Ok(bytes) => {
                let stats = self.by_kind.entry(kind).or_default();
                stats.messages += 1;
                stats.bytes += bytes as u64;
                Some(Parcel { from, to, msg: t.msg, bytes, kind })
            }
            Err(e) => {
                self.unencodable += 1;
                let event = NetworkEvent::Unencodable { from, to, kind: kind.to_owned(), error: e.to_string() };
                sink.record(Who::Network, event);
                None
            }
        }
    }
}

/// Ask a transport for its counters.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "NetStats")]
pub struct Stats;

/// Link faults, for transports that can make them (the simulated network can; the in-process
/// and TCP transports cannot: partitions between processes are made outside the node).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum Fault {
    /// Cut a leader off from everyone (its peers and the supervisor).
    Isolate(LeaderId),
    /// Undo [`Fault::Isolate`].
    Heal(LeaderId),
    /// Lose everything between the two sets, both ways.
    Partition(LeaderSet, LeaderSet),
    /// Undo every partition and isolation.
    HealAll,
}

/// The recipients through which leaders, the supervisor and the cluster use a transport.
#[derive(Clone)]
pub struct TransportLinks {
    pub(crate) transmit: Recipient<Transmit>,
    pub(crate) route: Recipient<Route>,
    pub(crate) heartbeat: Recipient<Heartbeat>,
    pub(crate) report: Recipient<Report>,
    pub(crate) connect: Recipient<Connect>,
    pub(crate) stats: Recipient<Stats>,
    pub(crate) faults: Option<Recipient<Fault>>,
    /// The thread the transport runs on, when it has one of its own: stopped once the last
    /// holder of these links is gone.
    pub(crate) _thread: Option<Arc<TransportThread>>,
}

/// A transport's own thread (an actix arbiter), stopped when dropped.
#[derive(Debug)]
pub(crate) struct TransportThread(pub(crate) actix::Arbiter);

impl Drop for TransportThread {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl std::fmt::Debug for TransportLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportLinks").field("faults", &self.faults.is_some()).finish_non_exhaustive()
    }
}

impl TransportLinks {
    /// The links of a transport actor that handles every message of the interface.
    pub fn of<A>(transport: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<Transmit>
            + Handler<Route>
            + Handler<Heartbeat>
            + Handler<Report>
            + Handler<Connect>
            + Handler<Stats>,
    {
        TransportLinks {
            transmit: transport.clone().recipient(),
            route: transport.clone().recipient(),
            heartbeat: transport.clone().recipient(),
            report: transport.clone().recipient(),
            connect: transport.clone().recipient(),
            stats: transport.clone().recipient(),
            faults: None,
            _thread: None,
        }
    }

    /// These links, with a way to make link faults.
    #[must_use]
    pub fn with_faults(mut self, faults: Recipient<Fault>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Asks the transport for its counters.
    pub async fn stats(&self) -> Result<NetStats, actix::MailboxError> {
        self.stats.send(Stats).await
    }
}

/// Something that can start a transport inside the current actix system. The cluster starts it
/// before its leaders, with the cluster's trace sink and the mailbox capacity of its
/// [`crate::FlowControl`].
pub trait Transport: Send + Sync {
    /// Starts the transport and returns its links.
    fn start(&self, sink: TraceSink, mailbox_capacity: usize) -> TransportLinks;
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn start(&self, sink: TraceSink, mailbox_capacity: usize) -> TransportLinks {
        (**self).start(sink, mailbox_capacity)
    }
}

/// The in-process transport: every message goes straight from one leader's mailbox to the
/// other's as a [`Parcel`]: not encoded, its entries shared with the sender's log, its frame's
/// length counted. No latency, loss or faults.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess;

impl Transport for InProcess {
    fn start(&self, sink: TraceSink, mailbox_capacity: usize) -> TransportLinks {
        let actor = InProcessActor {
            leaders: BTreeMap::new(),
            supervisor: None,
            stats: NetStats::default(),
            sink,
            mailbox_capacity: mailbox_capacity.max(1),
        };
        TransportLinks::of(&actor.start())
    }
}

/// The actor behind [`InProcess`].
struct InProcessActor {
    leaders: BTreeMap<LeaderId, LeaderInbox>,
    supervisor: Option<SupervisorInbox>,
    stats: NetStats,
    sink: TraceSink,
    mailbox_capacity: usize,
}

impl Actor for InProcessActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Handler<Transmit> for InProcessActor {
    type Result = ();
    fn handle(&mut self, t: Transmit, _: &mut Context<Self>) {
        let Some(parcel) = self.stats.pack(t, &self.sink) else { return };
        let sent_at = self.sink.elapsed();
        match self.leaders.get(&parcel.to) {
            Some(leader) => leader.deliver(parcel, sent_at),
            None => {
                self.stats.dropped += 1;
                let message = parcel.describe(sent_at);
                self.sink.record(Who::Network, NetworkEvent::Lost { message, why: Loss::NoSuchLeader });
            }
        }
    }
}

impl Handler<Route> for InProcessActor {
    type Result = actix::ResponseFuture<Result<WriteReceipt, LeaderError>>;
    fn handle(&mut self, route: Route, _: &mut Context<Self>) -> Self::Result {
        let home = route.to;
        match self.leaders.get(&home) {
            Some(leader) => Box::pin(leader.route(route)),
            None => Box::pin(async move { Err(LeaderError::HomeUnreachable { home }) }),
        }
    }
}

impl Handler<Heartbeat> for InProcessActor {
    type Result = ();
    fn handle(&mut self, hb: Heartbeat, _: &mut Context<Self>) {
        self.stats.heartbeats += 1;
        if let Some(sup) = &self.supervisor {
            sup.heartbeat(hb);
        }
    }
}

impl Handler<Report> for InProcessActor {
    type Result = ();
    fn handle(&mut self, report: Report, _: &mut Context<Self>) {
        if let Some(sup) = &self.supervisor {
            sup.report(report);
        }
    }
}

impl Handler<Connect> for InProcessActor {
    type Result = ();
    fn handle(&mut self, c: Connect, _: &mut Context<Self>) {
        let (leaders, supervisor) = c.into_parts();
        self.leaders = leaders;
        self.supervisor = Some(supervisor);
    }
}

impl Handler<Stats> for InProcessActor {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}

#[cfg(test)]
mod tests {
    use roundtable_runtime::clock::HlcTimestamp;
    use roundtable_runtime::wire::{Envelope, ReplicatedEntry};
    use roundtable_runtime::{Dot, Entry, Key, Op, Seq, SharedEntry, Value, VersionVector, WallTime};

    use super::*;
    use crate::clock::SimEpoch;
    use crate::trace::Event;

    fn replicate(values: usize, value_bytes: usize) -> PeerMessage {
        let origin = LeaderId::new(0).expect("a leader");
        let entries = (1..=values as u64)
            .map(|seq| ReplicatedEntry {
                entry: SharedEntry::new(Entry {
                    dot: Dot::new(origin, Seq(seq)),
                    hlc: HlcTimestamp::from_wall_time(WallTime::from_secs(seq), 0, origin),
                    deps: VersionVector::new(),
                    key: Key::new(format!("k{seq}")).expect("a key"),
                    op: Op::Put(Value::new(vec![7u8; value_bytes]).expect("a value")),
                }),
                seen_by: LeaderSet::single(origin),
            })
            .collect();
        PeerMessage::Replicate { entries, catch_up: false }
    }

    /// In process, a message is packed, not encoded: its byte count is its frame's length, and
    /// one too large for a frame is refused — counted, traced, not delivered — as a transport
    /// that encodes would refuse it.
    #[test]
    fn packing_counts_frame_bytes_and_refuses_what_no_frame_holds() {
        actix::System::new().block_on(async {
            let sink = TraceSink::recording(SimEpoch::starting_now(WallTime::EPOCH));
            let (from, to) = (LeaderId::new(0).expect("a leader"), LeaderId::new(1).expect("a leader"));
            let mut stats = NetStats::default();

            let small = replicate(3, 16);
            let frame = wire::encode(&Envelope::new(from, small.clone())).expect("fits");
            let parcel = stats.pack(Transmit::new(from, to, small), &sink).expect("packed");
            assert_eq!((parcel.bytes(), parcel.kind(), parcel.to()), (frame.len(), "replicate", to));
            assert_eq!(stats.by_kind["replicate"], KindStats { messages: 1, bytes: frame.len() as u64 });

            let large = replicate(20, 64 * 1024);
            assert!(stats.pack(Transmit::new(from, to, large), &sink).is_none(), "20 × 64 KiB exceeds a frame");
            assert_eq!(stats.unencodable, 1);
            assert_eq!(stats.messages(), 1, "the refused message is not counted as sent");
            let trace = sink.snapshot();
            let refused = |r: &crate::trace::Record| {
                matches!(&r.event, Event::Network(NetworkEvent::Unencodable { kind, .. }) if kind == "replicate")
            };
            assert_eq!(trace.count(refused), 1, "the refusal is traced");
        });
    }
}
