//! The network between leaders: in-process (mailbox to mailbox, no faults) by default, or a
//! simulated network with per-link latency, loss, duplication, reordering and partitions, driven
//! by a seeded generator so that a simulation replays exactly from its seed.
//!
//! Every message is encoded with the wire format on the way (so sizes are real and the receiver
//! decodes exactly what a remote peer would send), counted by kind, and delivered as a frame.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, MessageResult};
use roundtable_runtime::rng::SeededRng;
use roundtable_runtime::wire::{self, Envelope, PeerMessage};
use roundtable_runtime::{LeaderId, LeaderSet};

use crate::leader::Leader;
use crate::messages::{Deliver, Heartbeat, LeaderError, Report, Routed, Write};
use crate::supervisor::Supervisor;
use crate::trace::{Actor as Who, Mark, TraceSink};
use roundtable_runtime::WriteReceipt;

/// How the simulated network behaves. [`NetworkModel::in_process`] is perfect and instant.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkModel {
    /// Smallest one-way latency.
    pub latency_min: Duration,
    /// Largest one-way latency (uniform between the two).
    pub latency_max: Duration,
    /// Probability that a message is lost.
    pub drop_rate: f64,
    /// Probability that a message is delivered twice.
    pub duplicate_rate: f64,
    /// Probability that a message is held back by up to `latency_max` more (reordering it).
    pub reorder_rate: f64,
    /// Latency ranges of particular directed links, overriding `latency_min..=latency_max`.
    pub links: BTreeMap<(LeaderId, LeaderId), (Duration, Duration)>,
}

impl NetworkModel {
    /// Instant, lossless, in order: mailbox to mailbox.
    #[must_use]
    pub fn in_process() -> Self {
        NetworkModel {
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            drop_rate: 0.0,
            duplicate_rate: 0.0,
            reorder_rate: 0.0,
            links: BTreeMap::new(),
        }
    }

    /// A local network: 0.1–1 ms, no faults.
    #[must_use]
    pub fn lan() -> Self {
        NetworkModel {
            latency_min: Duration::from_micros(100),
            latency_max: Duration::from_millis(1),
            ..Self::in_process()
        }
    }

    /// A wide-area network: 20–80 ms, no faults (add them with the setters).
    #[must_use]
    pub fn wan() -> Self {
        NetworkModel {
            latency_min: Duration::from_millis(20),
            latency_max: Duration::from_millis(80),
            ..Self::in_process()
        }
    }

    /// A fixed latency on every link.
    #[must_use]
    pub fn fixed(latency: Duration) -> Self {
        NetworkModel { latency_min: latency, latency_max: latency, ..Self::in_process() }
    }

    /// This model with a loss probability (clamped to 0..=1).
    #[must_use]
    pub fn drop_rate(mut self, p: f64) -> Self {
        self.drop_rate = p.clamp(0.0, 1.0);
        self
    }

    /// This model with a duplication probability (clamped to 0..=1).
    #[must_use]
    pub fn duplicate_rate(mut self, p: f64) -> Self {
        self.duplicate_rate = p.clamp(0.0, 1.0);
        self
    }

    /// This model with a reordering probability (clamped to 0..=1).
    #[must_use]
    pub fn reorder_rate(mut self, p: f64) -> Self {
        self.reorder_rate = p.clamp(0.0, 1.0);
        self
    }

    /// This model with latencies between `min` and `max`.
    #[must_use]
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.latency_min = min.min(max);
        self.latency_max = max.max(min);
        self
    }

    /// This model with the directed link `from -> to` taking between `min` and `max`.
    #[must_use]
    pub fn link_latency(mut self, from: LeaderId, to: LeaderId, min: Duration, max: Duration) -> Self {
        self.links.insert((from, to), (min.min(max), max.max(min)));
        self
    }

    fn is_instant(&self) -> bool {
        self.latency_max.is_zero() && self.reorder_rate == 0.0 && self.links.is_empty()
    }

    fn sample_latency(&self, from: LeaderId, to: LeaderId, rng: &mut SeededRng) -> Duration {
        let (min, max) = self.links.get(&(from, to)).copied().unwrap_or((self.latency_min, self.latency_max));
        let span = max.saturating_sub(min).as_nanos() as u64;
        let mut latency = min + Duration::from_nanos(rng.below(span.saturating_add(1)));
        if rng.chance(self.reorder_rate) {
            latency += Duration::from_nanos(rng.below(max.as_nanos() as u64 + 1));
        }
        latency
    }
}

impl Default for NetworkModel {
    fn default() -> Self {
        Self::in_process()
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

/// What the network carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// By message kind (`replicate`, `catch-up`, `digest`, `snapshot`), in name order.
    pub by_kind: BTreeMap<&'static str, KindStats>,
    /// Messages lost (by the loss model or a partition).
    pub dropped: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Messages that could not be encoded (larger than a frame).
    pub unencodable: u64,
    /// Messages sent but not yet delivered.
    pub in_flight: u64,
    /// Heartbeats from leaders to the supervisor (not counted in `by_kind`).
    pub heartbeats: u64,
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
}

/// The network actor: carries messages between leaders and heartbeats to the supervisor.
pub struct Network {
    model: NetworkModel,
    rng: SeededRng,
    leaders: BTreeMap<LeaderId, Addr<Leader>>,
    supervisor: Option<Addr<Supervisor>>,
    /// Directed links that lose everything.
    cut: BTreeSet<(LeaderId, LeaderId)>,
    /// Leaders cut off from everyone, the supervisor included.
    isolated: LeaderSet,
    stats: NetStats,
    sink: TraceSink,
    mailbox_capacity: usize,
}

impl Network {
    /// A network with the given model and seed.
    #[must_use]
    pub fn new(model: NetworkModel, seed: u64, sink: TraceSink) -> Self {
        Network {
            model,
            rng: SeededRng::new(seed),
            leaders: BTreeMap::new(),
            supervisor: None,
            cut: BTreeSet::new(),
            isolated: LeaderSet::EMPTY,
            stats: NetStats::default(),
            sink,
            mailbox_capacity: 65_536,
        }
    }

    /// This network with a mailbox of `capacity` messages for what leaders send with
    /// `try_send` (see [`crate::FlowControl`]).
    #[must_use]
    pub fn with_mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = capacity.max(1);
        self
    }

    fn blocked(&self, from: LeaderId, to: LeaderId) -> bool {
        self.isolated.contains(from) || self.isolated.contains(to) || self.cut.contains(&(from, to))
    }

    fn deliver(&mut self, from: LeaderId, to: LeaderId, frame: Vec<u8>, kind: &'static str, sent_at: Duration) {
        self.stats.in_flight = self.stats.in_flight.saturating_sub(1);
        if self.blocked(from, to) {
            self.stats.dropped += 1;
            self.sink.record(Who::Network, format_args!("lost {kind} {from}->{to} (partitioned)"));
            self.mark_lost(from, to, kind, frame.len(), sent_at);
            return;
        }
        match self.leaders.get(&to) {
            Some(leader) => leader.do_send(Deliver { from, frame, sent_at, kind }),
            None => {
                self.stats.dropped += 1;
                self.sink.record(Who::Network, format_args!("lost {kind} {from}->{to} (no such leader)"));
                self.mark_lost(from, to, kind, frame.len(), sent_at);
            }
        }
    }

    fn mark_lost(&self, from: LeaderId, to: LeaderId, kind: &'static str, bytes: usize, sent_at: Duration) {
        if self.sink.is_enabled() {
            let mark = Mark::Message { from, to, kind: kind.to_owned(), bytes, sent_at, delivered: false };
            self.sink.mark(Who::Network, mark);
        }
    }
}

impl Actor for Network {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

/// A message from one leader to another.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Transmit {
    /// The sender.
    pub from: LeaderId,
    /// The receiver.
    pub to: LeaderId,
    /// The message.
    pub msg: PeerMessage,
}

impl Handler<Transmit> for Network {
    type Result = ();
    fn handle(&mut self, t: Transmit, ctx: &mut Context<Self>) {
        let kind = t.msg.kind();
        let frame = match wire::encode(&Envelope::new(t.from, t.msg)) {
            Ok(frame) => frame,
            Err(e) => {
                self.stats.unencodable += 1;
                self.sink.record(Who::Network, format_args!("cannot send {kind} {}->{}: {e}", t.from, t.to));
                return;
            }
        };
        let stats = self.stats.by_kind.entry(kind).or_default();
        stats.messages += 1;
        stats.bytes += frame.len() as u64;
        let sent_at = self.sink.elapsed();
        if self.blocked(t.from, t.to) {
            self.stats.dropped += 1;
            self.sink.record(Who::Network, format_args!("lost {kind} {}->{} (partitioned)", t.from, t.to));
            self.mark_lost(t.from, t.to, kind, frame.len(), sent_at);
            return;
        }
        if self.model.is_instant() {
            self.stats.in_flight += 1;
            self.deliver(t.from, t.to, frame, kind, sent_at);
            return;
        }
        if self.rng.chance(self.model.drop_rate) {
            self.stats.dropped += 1;
            self.sink.record(Who::Network, format_args!("lost {kind} {}->{}", t.from, t.to));
            self.mark_lost(t.from, t.to, kind, frame.len(), sent_at);
            return;
        }
        let copies = if self.rng.chance(self.model.duplicate_rate) {
            self.stats.duplicated += 1;
            self.sink.record(Who::Network, format_args!("duplicated {kind} {}->{}", t.from, t.to));
            2
        } else {
            1
        };
        for _ in 0..copies {
            let latency = self.model.sample_latency(t.from, t.to, &mut self.rng);
            self.stats.in_flight += 1;
            let (from, to, frame) = (t.from, t.to, frame.clone());
            ctx.run_later(latency, move |net, _| net.deliver(from, to, frame, kind, sent_at));
        }
    }
}

impl Handler<Heartbeat> for Network {
    type Result = ();
    fn handle(&mut self, hb: Heartbeat, _: &mut Context<Self>) {
        self.stats.heartbeats += 1;
        if self.isolated.contains(hb.from) {
            return;
        }
        if let Some(sup) = &self.supervisor {
            sup.do_send(hb);
        }
    }
}

/// A client write routed from one leader to the key's home leader. Lost like any message when
/// the two are cut off from each other.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WriteReceipt, LeaderError>")]
pub struct Route {
    /// The leader the client wrote to.
    pub from: LeaderId,
    /// The key's home.
    pub to: LeaderId,
    /// The write.
    pub write: Write,
}

impl Handler<Route> for Network {
    type Result = actix::ResponseFuture<Result<WriteReceipt, LeaderError>>;
    fn handle(&mut self, route: Route, _: &mut Context<Self>) -> Self::Result {
        let unreachable = Err(LeaderError::HomeUnreachable { home: route.to });
        let target = if self.blocked(route.from, route.to) { None } else { self.leaders.get(&route.to).cloned() };
        let Some(home) = target else {
            self.sink.record(Who::Network, format_args!("lost route {}->{} (unreachable)", route.from, route.to));
            return Box::pin(async move { unreachable });
        };
        // The request and the answer each take a one-way latency of the model (the simulated
        // network's loss and duplication are not applied to client routes: a lost answer would
        // report an applied write as failed).
        let (there, back) = if self.model.is_instant() {
            (Duration::ZERO, Duration::ZERO)
        } else {
            (
                self.model.sample_latency(route.from, route.to, &mut self.rng),
                self.model.sample_latency(route.to, route.from, &mut self.rng),
            )
        };
        Box::pin(async move {
            if !there.is_zero() {
                tokio::time::sleep(there).await;
            }
            let answer = home.send(Routed(route.write)).await.unwrap_or(unreachable);
            if !back.is_zero() {
                tokio::time::sleep(back).await;
            }
            answer
        })
    }
}

impl Handler<Report> for Network {
    type Result = ();
    fn handle(&mut self, report: Report, _: &mut Context<Self>) {
        if self.isolated.contains(report.from) {
            return;
        }
        if let Some(sup) = &self.supervisor {
            sup.do_send(report);
        }
    }
}

/// Wiring: the leaders' and the supervisor's addresses.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    /// Every leader's address.
    pub leaders: BTreeMap<LeaderId, Addr<Leader>>,
    /// The supervisor's.
    pub supervisor: Option<Addr<Supervisor>>,
}

impl Handler<Connect> for Network {
    type Result = ();
    fn handle(&mut self, c: Connect, _: &mut Context<Self>) {
        self.leaders = c.leaders;
        self.supervisor = c.supervisor;
    }
}

/// Fault injection at the network level.
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

impl Handler<Fault> for Network {
    type Result = ();
    fn handle(&mut self, fault: Fault, _: &mut Context<Self>) {
        match fault {
            Fault::Isolate(id) => {
                self.isolated.insert(id);
                self.sink.record(Who::Network, format_args!("isolated {id}"));
            }
            Fault::Heal(id) => {
                self.isolated.remove(id);
                self.sink.record(Who::Network, format_args!("healed {id}"));
            }
            Fault::Partition(a, b) => {
                for x in a {
                    for y in b {
                        self.cut.insert((x, y));
                        self.cut.insert((y, x));
                    }
                }
                self.sink.record(Who::Network, format_args!("partitioned {a} | {b}"));
            }
            Fault::HealAll => {
                self.cut.clear();
                self.isolated = LeaderSet::EMPTY;
                self.sink.record(Who::Network, "healed all partitions");
            }
        }
    }
}

/// Ask the network for its counters.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "NetStats")]
pub struct Stats;

impl Handler<Stats> for Network {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}
