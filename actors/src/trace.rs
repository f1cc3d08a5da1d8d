//! The trace of a run: one typed stream of [`Record`]s — every replica event, message, network
//! fault, supervisor decision and client operation, stamped with time since the start, in the
//! order they happened. The records are the data (serde: a trace saved as JSON reads back the
//! same); the text a snapshot test locks down ([`Trace::render`], one line per record) and the
//! marks the invariant checker and the space-time diagram read ([`Trace::marks`]) are views of
//! them. Tests query the records, not the text.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roundtable_runtime::clock::{HlcTimestamp, HumanDuration};
use roundtable_runtime::topologies::Rewiring;
use roundtable_runtime::{Dot, LeaderId, LeaderSet, Rejection, TraceEvent, Value, WallTime};
use serde::{Deserialize, Serialize};

pub use roundtable_runtime::trace::Vv;

use crate::clock::SimEpoch;

/// Who produced a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Actor {
    /// A leader (its replica, or its actor shell).
    Leader(LeaderId),
    /// The transport (the simulated network, or the in-process transport).
    Network,
    /// The supervisor.
    Supervisor,
    /// The simulation's workload (a client) or fault schedule.
    Client,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Leader(id) => write!(f, "{id}"),
            Actor::Network => f.write_str("net"),
            Actor::Supervisor => f.write_str("sup"),
            Actor::Client => f.write_str("client"),
        }
    }
}

/// One record of a trace: when, who, what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Time since the start of the run.
    pub at: Duration,
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    pub event: Event,
}

impl Record {
    /// The replica event, when `leader`'s replica recorded this.
    #[must_use]
    pub fn replica(&self, leader: LeaderId) -> Option<&TraceEvent> {
        match (&self.actor, &self.event) {
            (Actor::Leader(id), Event::Replica(event)) if *id == leader => Some(event),
            _ => None,
        }
    }

    /// The mark this record leaves for the checker and the diagram, if any.
    #[must_use]
    pub fn mark(&self) -> Option<MarkLine> {
        let mark = match &self.event {
            Event::Replica(event) => Mark::from_event(event)?,
            Event::Leader(LeaderEvent::Crashed) => Mark::Crashed,
            Event::Leader(LeaderEvent::Restarted | LeaderEvent::RestartedFromDisk) => Mark::Restarted,
            Event::Network(NetworkEvent::Delivered(m)) => m.mark(true),
            Event::Network(NetworkEvent::Lost { message, .. }) => message.mark(false),
            _ => return None,
        };
        Some(MarkLine { at: self.at, actor: self.actor, mark })
    }
}

/// One line: `  12.345ms L0     write L0:1 "k" …` (a record that is not rendered, a delivered
/// message, still prints here).
impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        line(f, self.at, self.actor, &self.event)
    }
}

/// A trace line: time since the start, who, what.
fn line(f: &mut impl fmt::Write, at: Duration, actor: Actor, what: &dyn fmt::Display) -> fmt::Result {
    let us = at.as_micros();
    write!(f, "{:>6}.{:03}ms {:<6} {what}", us / 1000, us % 1000, actor.to_string())
}

/// What happened, by whom it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// A leader's replica decided something (the sans-IO core's own event).
    Replica(TraceEvent),
    /// A leader's actor shell: crashes, restarts, its outboxes and clock samples.
    Leader(LeaderEvent),
    /// A message between leaders (delivered or lost), or a fault of the network.
    Network(NetworkEvent),
    /// The supervisor: liveness, rewiring, restarts, fencing.
    Supervisor(SupervisorEvent),
    /// The simulation's clients and fault schedule.
    Client(ClientEvent),
}

impl Event {
    /// Whether [`Trace::render`] shows it (every event but a delivered message: those are
    /// many, and the diagram draws them).
    #[must_use]
    pub fn is_rendered(&self) -> bool {
        !matches!(self, Event::Network(NetworkEvent::Delivered(_)))
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Replica(event) => event.fmt(f),
            Event::Leader(event) => event.fmt(f),
            Event::Network(event) => event.fmt(f),
            Event::Supervisor(event) => event.fmt(f),
            Event::Client(event) => event.fmt(f),
        }
    }
}

/// What a leader's actor shell did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LeaderEvent {
    /// The leader crashed: its in-memory state is gone, and it stays down until restarted.
    Crashed,
    /// The leader restarted with empty state and catches up.
    Restarted,
    /// A durable leader restarted from what its disk held (the replica says what, `resumed`).
    RestartedFromDisk,
    /// A restart could not build the replica.
    RestartFailed {
        /// Why.
        reason: String,
    },
    /// actix restarted the leader's actor (after a panic): the leader is down until restarted.
    ActorRestarted,
    /// The leader's disk failed: it refuses writes, and holds back what is not on the disk.
    DiskFailed {
        /// What the disk said.
        reason: String,
    },
    /// A clock sample was refused by the replica's clock corrector.
    ClockSampleRefused {
        /// Why.
        reason: String,
    },
    /// The outbox to a peer is full: messages are dropped (anti-entropy repairs). Recorded at
    /// the 1st, 2nd, 4th, 8th… drop.
    OutboxFull {
        /// The peer.
        to: LeaderId,
        /// The outbox's bound.
        max: usize,
        /// Messages dropped so far.
        dropped: u64,
    },
}

impl fmt::Display for LeaderEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaderEvent::Crashed => f.write_str("crashed: in-memory state lost"),
            LeaderEvent::Restarted => f.write_str("restarted with empty state; catching up"),
            LeaderEvent::RestartedFromDisk => f.write_str("restarted from its disk"),
            LeaderEvent::RestartFailed { reason } => write!(f, "restart failed: {reason}"),
            LeaderEvent::ActorRestarted => f.write_str("actor restarted by actix supervision; down until restart"),
            LeaderEvent::ClockSampleRefused { reason } => write!(f, "clock sample refused: {reason}"),
            LeaderEvent::DiskFailed { reason } => write!(f, "disk failed, writes refused: {reason}"),
            LeaderEvent::OutboxFull { to, max, dropped } => {
                write!(f, "outbox to {to} full ({max} messages): {dropped} dropped so far, anti-entropy repairs")
            }
        }
    }
}

/// A message between two leaders (one frame on the wire), as the trace keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The sender.
    pub from: LeaderId,
    /// The receiver.
    pub to: LeaderId,
    /// Its kind (`replicate`, `digest`, `snapshot`, …).
    pub kind: String,
    /// Its size on the wire.
    pub bytes: usize,
    /// When it was sent.
    pub sent_at: Duration,
}

impl Frame {
    fn mark(&self, delivered: bool) -> Mark {
        let Frame { from, to, kind, bytes, sent_at } = self.clone();
        Mark::Message { from, to, kind, bytes, sent_at, delivered }
    }
}

/// Why a message did not reach its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Loss {
    /// A partition or an isolation cut the link.
    Partitioned,
    /// The network model dropped it.
    Dropped,
    /// The transport knows no such leader.
    NoSuchLeader,
    /// It arrived while the receiver was down (recorded by the receiver's shell).
    ReceiverDown,
    /// The link to the receiver's node was down (TCP transport).
    LinkDown,
    /// The link to the receiver's node had its queue full (TCP transport).
    LinkFull,
}

/// What the transport did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NetworkEvent {
    /// A message reached its receiver (recorded by the receiver). Not rendered.
    Delivered(Frame),
    /// A message was lost.
    Lost {
        /// The message.
        message: Frame,
        /// Why.
        why: Loss,
    },
    /// The network model duplicated a message: two copies travel.
    Duplicated {
        /// The sender.
        from: LeaderId,
        /// The receiver.
        to: LeaderId,
        /// Its kind.
        kind: String,
    },
    /// A message could not be encoded (it would exceed the frame bound): counted, not sent.
    Unencodable {
        /// The sender.
        from: LeaderId,
        /// The receiver.
        to: LeaderId,
        /// Its kind.
        kind: String,
        /// Why.
        error: String,
    },
    /// A write routed to its key's home leader could not reach it.
    RouteLost {
        /// The leader routing.
        from: LeaderId,
        /// The home.
        to: LeaderId,
    },
    /// A leader was cut off from everyone.
    Isolated(LeaderId),
    /// A leader was reconnected.
    Healed(LeaderId),
    /// Everything between two sets of leaders is lost from now on.
    Partitioned(LeaderSet, LeaderSet),
    /// Every partition and isolation ended.
    HealedAll,
    /// A link to another node is up (TCP transport).
    LinkUp {
        /// The node, by the names of its leaders.
        link: String,
    },
    /// A link to another node broke (TCP transport).
    LinkDown {
        /// The node, by the names of its leaders.
        link: String,
        /// Why.
        reason: String,
    },
    /// A connection did not become a link (TCP transport): an unknown or wrong identity,
    /// another protocol version, a failed handshake.
    LinkRefused {
        /// The remote address.
        remote: String,
        /// Why.
        reason: String,
    },
    /// An authenticated peer sent a frame that was rejected (TCP transport).
    Rejected {
        /// The node, by the names of its leaders.
        link: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for NetworkEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkEvent::Delivered(Frame { from, to, kind, .. }) => write!(f, "deliver {kind} {from}->{to}"),
            NetworkEvent::Lost { message: Frame { from, to, kind, .. }, why } => match why {
                Loss::Partitioned => write!(f, "lost {kind} {from}->{to} (partitioned)"),
                Loss::Dropped => write!(f, "lost {kind} {from}->{to}"),
                Loss::NoSuchLeader => write!(f, "lost {kind} {from}->{to} (no such leader)"),
                Loss::ReceiverDown => write!(f, "down: frame from {from} lost"),
                Loss::LinkDown => write!(f, "lost {kind} {from}->{to} (link down)"),
                Loss::LinkFull => write!(f, "lost {kind} {from}->{to} (link queue full)"),
            },
            NetworkEvent::Duplicated { from, to, kind } => write!(f, "duplicated {kind} {from}->{to}"),
            NetworkEvent::Unencodable { from, to, kind, error } => {
                write!(f, "cannot send {kind} {from}->{to}: {error}")
            }
            NetworkEvent::RouteLost { from, to } => write!(f, "lost route {from}->{to} (unreachable)"),
            NetworkEvent::Isolated(id) => write!(f, "isolated {id}"),
            NetworkEvent::Healed(id) => write!(f, "healed {id}"),
            NetworkEvent::Partitioned(a, b) => write!(f, "partitioned {a} | {b}"),
            NetworkEvent::HealedAll => f.write_str("healed all partitions"),
            NetworkEvent::LinkUp { link } => write!(f, "link up {link}"),
            NetworkEvent::LinkDown { link, reason } => write!(f, "link down {link}: {reason}"),
            NetworkEvent::LinkRefused { remote, reason } => write!(f, "refused {remote}: {reason}"),
            NetworkEvent::Rejected { link, reason } => write!(f, "rejected from {link}: {reason}"),
        }
    }
}

/// What the supervisor decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SupervisorEvent {
    /// The live set changed; the topology was rewired.
    Rewired {
        /// The live leaders.
        live: LeaderSet,
        /// The links closed and opened.
        rewiring: Rewiring,
    },
    /// A leader was silent longer than `dead_after`.
    DeclaredDead {
        /// The leader.
        leader: LeaderId,
        /// How long it was silent.
        silence: Duration,
    },
    /// The supervisor restarts a dead leader (`restart_after`).
    Restarting {
        /// The leader.
        leader: LeaderId,
    },
    /// A leader declared dead was heard from again.
    Back {
        /// The leader.
        leader: LeaderId,
    },
    /// A leader whose timestamps run ahead at a peer is fenced.
    Fencing {
        /// The offender.
        leader: LeaderId,
        /// How far ahead its timestamps ran.
        ahead_by: Duration,
        /// The peer that saw it.
        seen_at: LeaderId,
    },
}

impl fmt::Display for SupervisorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupervisorEvent::Rewired { live, rewiring } => write!(f, "rewire live={live}: {rewiring}"),
            SupervisorEvent::DeclaredDead { leader, silence } => {
                write!(f, "declared {leader} dead after {}ms of silence", silence.as_millis())
            }
            SupervisorEvent::Restarting { leader } => write!(f, "restarting {leader}"),
            SupervisorEvent::Back { leader } => write!(f, "{leader} is back"),
            SupervisorEvent::Fencing { leader, ahead_by, seen_at } => {
                write!(f, "fence {leader}: its timestamps run {} ahead at {seen_at}", HumanDuration(*ahead_by))
            }
        }
    }
}

/// What a read showed a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadOutcome {
    /// A value.
    Value(Value),
    /// The key's last write deleted it.
    Deleted,
    /// The leader has never held the key.
    Nothing,
    /// The read was refused.
    Refused(String),
}

/// What the simulation's clients and fault schedule did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A write was accepted (its dot) or refused (why).
    Wrote {
        /// The leader asked.
        leader: LeaderId,
        /// The write, described (`put "k"="v"`, `update "c" +1`, …).
        op: String,
        /// Its dot, or why it was refused.
        outcome: Result<Dot, String>,
    },
    /// A read.
    Read {
        /// The leader asked.
        leader: LeaderId,
        /// The key.
        key: String,
        /// What it showed.
        read: ReadOutcome,
    },
    /// A client meant to resolve a key's siblings, but the leader holds none.
    NoSiblings {
        /// The leader asked.
        leader: LeaderId,
        /// The key.
        key: String,
    },
    /// A client read a key's siblings (to write over them).
    ReadSiblings {
        /// The leader asked.
        leader: LeaderId,
        /// The key.
        key: String,
        /// The siblings' dots.
        dots: Vec<Dot>,
    },
    /// A client waiting to see a value gave up.
    NeverShowed {
        /// The leader watched.
        leader: LeaderId,
        /// The key.
        key: String,
        /// The value awaited.
        value: String,
    },
    /// A client waiting to see a value saw it.
    Shows {
        /// The leader watched.
        leader: LeaderId,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// The fault schedule applied a fault (described).
    Fault {
        /// The fault.
        fault: String,
    },
    /// Every leader applied every write: the run settled.
    Settled {
        /// When.
        at: Duration,
    },
    /// The run hit `max_duration` before it settled.
    NotSettled,
}

impl fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEvent::Wrote { leader, op, outcome: Ok(dot) } => write!(f, "{op} at {leader}: ok {dot}"),
            ClientEvent::Wrote { leader, op, outcome: Err(e) } => write!(f, "{op} at {leader}: refused: {e}"),
            ClientEvent::Read { leader, key, read } => {
                write!(f, "get {key:?} at {leader}: ")?;
                match read {
                    ReadOutcome::Value(v) => write!(f, "{v:?}"),
                    ReadOutcome::Deleted => f.write_str("(deleted)"),
                    ReadOutcome::Nothing => f.write_str("nothing"),
                    ReadOutcome::Refused(e) => write!(f, "refused: {e}"),
                }
            }
            ClientEvent::NoSiblings { leader, key } => write!(f, "{leader} has no siblings of {key:?} to resolve"),
            ClientEvent::ReadSiblings { leader, key, dots } => {
                write!(f, "{leader} read {key:?}: siblings [")?;
                for (i, dot) in dots.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{dot}")?;
                }
                f.write_str("]")
            }
            ClientEvent::NeverShowed { leader, key, value } => write!(f, "{leader} never showed {key:?}={value:?}"),
            ClientEvent::Shows { leader, key, value } => write!(f, "{leader} shows {key:?}={value:?}"),
            ClientEvent::Fault { fault } => write!(f, "fault: {fault}"),
            ClientEvent::Settled { at } => write!(f, "settled at {}ms", at.as_millis()),
            ClientEvent::NotSettled => f.write_str("did not settle before max_duration"),
        }
    }
}

/// A finished run's trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// The records, in the order they happened.
    pub records: Vec<Record>,
    /// Set when records were left out because the trace reached [`TRACE_RECORDS_MAX`]: when,
    /// and by whom, the first left out was recorded. A checker must then say it saw only part
    /// of the run.
    pub cut: Option<(Duration, Actor)>,
}

/// A structured fact of a run, stamped like a [`Record`]: the view of the records the checker
/// and the diagram read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkLine {
    /// Time since the start of the run.
    pub at: Duration,
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    pub mark: Mark,
}

/// A structured fact of a run, as the checker and the diagram need it: from a replica's
/// [`TraceEvent`] (those they need), a shell's crash or restart, and every message between
/// leaders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Mark {
    /// A client write was accepted and stamped.
    Write {
        /// Its identity.
        dot: Dot,
        /// The key.
        key: String,
        /// Its timestamp.
        hlc: HlcTimestamp,
    },
    /// The first copy of an entry arrived.
    Received {
        /// The peer it came from.
        from: LeaderId,
        /// The entry.
        dot: Dot,
        /// Its timestamp and the receiver's corrected physical time when the timestamp entered
        /// the receiver's HLC (`None` for a void, whose stamp never does).
        clock: Option<(HlcTimestamp, WallTime)>,
    },
    /// An entry was applied.
    Applied {
        /// The entry.
        dot: Dot,
        /// Its timestamp (with the dot, the entry's identity: a restarted leader may issue a
        /// dot again whose earlier write died with it).
        hlc: HlcTimestamp,
        /// Its dependencies.
        deps: Vv,
    },
    /// A copy of an entry already held was dropped.
    Duplicate {
        /// The peer it came from.
        from: LeaderId,
        /// The entry.
        dot: Dot,
    },
    /// An entry waits for its dependencies.
    CausalWait {
        /// The entry.
        dot: Dot,
    },
    /// Last-write-wins decided a conflict.
    Conflict {
        /// The key.
        key: String,
        /// The write kept.
        kept: Dot,
        /// The write discarded.
        discarded: Dot,
    },
    /// A siblings write left a key with several values.
    Siblings {
        /// The key.
        key: String,
        /// How many siblings it holds.
        count: usize,
    },
    /// A snapshot was adopted: the leader now holds every write of `vv`.
    SnapshotAdopted {
        /// The peer it came from.
        from: LeaderId,
        /// The writes it named.
        vv: Vv,
    },
    /// A restarted leader voided one of its sequence numbers.
    Voided {
        /// The dot.
        dot: Dot,
    },
    /// Something a peer sent was refused.
    Rejected {
        /// The peer.
        from: LeaderId,
        /// The entry, when the rejection names one.
        dot: Option<Dot>,
        /// Whether it was refused for a timestamp beyond `max_offset`.
        far_future: bool,
    },
    /// A fenced leader rejoined and discarded these writes of its own, which no peer was known
    /// to hold (stamped by its bad clock; reported, not replicated).
    Discarded {
        /// The writes.
        dots: Vec<Dot>,
    },
    /// The leader's live set and wiring changed.
    Rewired {
        /// The live leaders.
        live: LeaderSet,
    },
    /// The leader crashed: its in-memory state is gone.
    Crashed,
    /// The leader restarted with empty state.
    Restarted,
    /// A durable leader resumed from its disk: it holds every write of `vv` again.
    Resumed {
        /// What its disk held.
        vv: Vv,
    },
    /// The leader was fenced by the cluster and rebuilt its state from its peers.
    Rejoined,
    /// A message from one leader to another: sent at `sent_at`, and delivered (or lost) at the
    /// mark's time.
    Message {
        /// The sender.
        from: LeaderId,
        /// The receiver.
        to: LeaderId,
        /// Its kind (`replicate`, `digest`, `snapshot`, …).
        kind: String,
        /// Its size on the wire.
        bytes: usize,
        /// When it was sent.
        sent_at: Duration,
        /// Whether it reached the receiver (false: lost to a drop, a partition or a crash).
        delivered: bool,
    },
}

impl Mark {
    /// The mark a replica's trace event leaves, if a checker or a diagram needs it.
    #[must_use]
    pub fn from_event(event: &TraceEvent) -> Option<Mark> {
        Some(match event {
            TraceEvent::WriteAccepted { dot, key, hlc } => {
                Mark::Write { dot: *dot, key: key.as_str().to_owned(), hlc: *hlc }
            }
            TraceEvent::Received { from, dot, clock, .. } => Mark::Received { from: *from, dot: *dot, clock: *clock },
            TraceEvent::Applied { dot, hlc, deps, .. } => Mark::Applied { dot: *dot, hlc: *hlc, deps: deps.clone() },
            TraceEvent::DuplicateDropped { from, dot } => Mark::Duplicate { from: *from, dot: *dot },
            TraceEvent::CausalWait { dot, .. } => Mark::CausalWait { dot: *dot },
            TraceEvent::LwwDiscarded { key, kept, discarded, .. } => {
                Mark::Conflict { key: key.as_str().to_owned(), kept: *kept, discarded: *discarded }
            }
            TraceEvent::Siblings { key, dots, .. } => {
                Mark::Siblings { key: key.as_str().to_owned(), count: dots.len() }
            }
            TraceEvent::SnapshotApplied { from, vv } => Mark::SnapshotAdopted { from: *from, vv: vv.clone() },
            TraceEvent::Voided { dot } => Mark::Voided { dot: *dot },
            TraceEvent::Rejected { from, reason } => {
                let (dot, far_future) = match reason {
                    Rejection::TimestampTooFarAhead { dot, .. } => (Some(*dot), true),
                    Rejection::MalformedEntry { dot, .. } | Rejection::DotConflict { dot } => (Some(*dot), false),
                    _ => (None, false),
                };
                Mark::Rejected { from: *from, dot, far_future }
            }
            TraceEvent::Rewired { live, .. } => Mark::Rewired { live: *live },
            TraceEvent::DiscardedAtRejoin { dots } => Mark::Discarded { dots: dots.clone() },
            TraceEvent::Rejoining => Mark::Rejoined,
            TraceEvent::Resumed { vv } => Mark::Resumed { vv: vv.clone() },
            _ => return None,
        })
    }
}

impl Trace {
    /// One line per rendered record (`  12.345ms L0     write L0:1 "k" …`), and a last line
    /// when the trace was cut. Stable: the same run gives the same text byte for byte.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        for record in self.records.iter().filter(|r| r.event.is_rendered()) {
            let _ = writeln!(out, "{record}");
        }
        if let Some((at, actor)) = self.cut {
            let _ = line(&mut out, at, actor, &"trace cut: TRACE_RECORDS_MAX records reached");
            out.push('\n');
        }
        out
    }

    /// The marks: the view of the records the checker and the diagram read, in order.
    #[must_use]
    pub fn marks(&self) -> Vec<MarkLine> {
        self.records.iter().filter_map(Record::mark).collect()
    }

    /// The events `leader`'s replica recorded, in order.
    pub fn replica_events(&self, leader: LeaderId) -> impl Iterator<Item = &TraceEvent> + '_ {
        self.records.iter().filter_map(move |r| r.replica(leader))
    }

    /// Every replica event, with the leader that recorded it, in order.
    pub fn leader_events(&self) -> impl Iterator<Item = (LeaderId, &TraceEvent)> + '_ {
        self.records.iter().filter_map(|r| match (r.actor, &r.event) {
            (Actor::Leader(id), Event::Replica(event)) => Some((id, event)),
            _ => None,
        })
    }

    /// The events `actor` recorded, in order.
    pub fn events_of(&self, actor: Actor) -> impl Iterator<Item = &Event> + '_ {
        self.records.iter().filter(move |r| r.actor == actor).map(|r| &r.event)
    }

    /// The index of the first record `matches` accepts.
    #[must_use]
    pub fn position(&self, matches: impl Fn(&Record) -> bool) -> Option<usize> {
        self.records.iter().position(matches)
    }

    /// How many records `matches` accepts.
    #[must_use]
    pub fn count(&self, matches: impl Fn(&Record) -> bool) -> usize {
        self.records.iter().filter(|r| matches(r)).count()
    }

    /// Whether each step's first matching record exists and comes after the previous step's —
    /// the shape of most assertions about a replication story.
    #[must_use]
    pub fn in_order(&self, steps: &[&dyn Fn(&Record) -> bool]) -> bool {
        let found: Vec<Option<usize>> = steps.iter().map(|step| self.records.iter().position(step)).collect();
        found.iter().all(Option::is_some) && found.windows(2).all(|w| w[0] < w[1])
    }
}

/// Where actors record the trace. Cheap to clone; disabled sinks record nothing.
#[derive(Debug, Clone, Default)]
pub struct TraceSink {
    inner: Option<Arc<Mutex<(SimEpoch, Trace)>>>,
}

/// The most records a trace holds; beyond it the trace is cut ([`Trace::cut`]).
pub const TRACE_RECORDS_MAX: usize = 2_000_000;

impl TraceSink {
    /// A sink that records nothing (real deployments log through `tracing` instead).
    #[must_use]
    pub fn disabled() -> Self {
        TraceSink { inner: None }
    }

    /// A sink that records events stamped with time since `epoch`.
    #[must_use]
    pub fn recording(epoch: SimEpoch) -> Self {
        TraceSink { inner: Some(Arc::new(Mutex::new((epoch, Trace::default())))) }
    }

    /// Whether this sink records.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Time since the start of the run (zero for a disabled sink).
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.inner.as_ref().and_then(|i| i.lock().ok().map(|g| g.0.elapsed())).unwrap_or_default()
    }

    /// Records one event. Callers that would build an expensive event check
    /// [`TraceSink::is_enabled`] first.
    pub fn record(&self, actor: Actor, event: impl Into<Event>) {
        let Some(inner) = &self.inner else { return };
        let Ok(mut guard) = inner.lock() else { return };
        let at = guard.0.elapsed();
        let trace = &mut guard.1;
        if trace.records.len() < TRACE_RECORDS_MAX {
            trace.records.push(Record { at, actor, event: event.into() });
        } else if trace.cut.is_none() {
            trace.cut = Some((at, actor));
        }
    }

    /// A copy of the trace so far.
    #[must_use]
    pub fn snapshot(&self) -> Trace {
        self.inner.as_ref().and_then(|i| i.lock().ok().map(|g| g.1.clone())).unwrap_or_default()
    }
}

impl From<TraceEvent> for Event {
    fn from(event: TraceEvent) -> Self {
        Event::Replica(event)
    }
}

impl From<LeaderEvent> for Event {
    fn from(event: LeaderEvent) -> Self {
        Event::Leader(event)
    }
}

impl From<NetworkEvent> for Event {
    fn from(event: NetworkEvent) -> Self {
        Event::Network(event)
    }
}

impl From<SupervisorEvent> for Event {
    fn from(event: SupervisorEvent) -> Self {
        Event::Supervisor(event)
    }
}

impl From<ClientEvent> for Event {
    fn from(event: ClientEvent) -> Self {
        Event::Client(event)
    }
}
