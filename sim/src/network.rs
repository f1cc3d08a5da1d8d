//! The simulated network between leaders: per-link latency, loss, duplication, reordering and
//! partitions, driven by a seeded generator so that a simulation replays exactly from its seed.
//! It is one implementation of `roundtable_actors::transport`: the leaders cannot tell it from
//! the in-process transport.
//!
//! Every message travels as a [`Parcel`]: not encoded (its entries are shared with the sender's
//! log), its size the length its frame would have, counted by kind. A message too large for a
//! frame is refused as unencodable, as a transport that encodes would refuse it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, MessageResult};
use roundtable_actors::trace::{Actor as Who, Frame, Loss, NetworkEvent, TraceSink};
use roundtable_actors::transport::{
    Connect, Fault, Heartbeat, LeaderInbox, NetStats, Parcel, Report, Route, Stats, SupervisorInbox, Transmit,
    Transport, TransportLinks,
};
use roundtable_actors::LeaderError;
use roundtable_runtime::rng::SeededRng;
use roundtable_runtime::{LeaderId, LeaderSet, WriteReceipt};

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

/// The network actor: carries messages between leaders and heartbeats to the supervisor.
pub struct Network {
    model: NetworkModel,
    rng: SeededRng,
    leaders: BTreeMap<LeaderId, LeaderInbox>,
    supervisor: Option<SupervisorInbox>,
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
    /// `try_send` (see [`roundtable_actors::FlowControl`]).
    #[must_use]
    pub fn with_mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = capacity.max(1);
        self
    }

    fn blocked(&self, from: LeaderId, to: LeaderId) -> bool {
        self.isolated.contains(from) || self.isolated.contains(to) || self.cut.contains(&(from, to))
    }

    fn deliver(&mut self, parcel: Parcel, sent_at: Duration) {
        self.stats.in_flight = self.stats.in_flight.saturating_sub(1);
        if self.blocked(parcel.from(), parcel.to()) {
            self.stats.dropped += 1;
            self.lost(parcel.describe(sent_at), Loss::Partitioned);
            return;
        }
        match self.leaders.get(&parcel.to()) {
            Some(leader) => leader.deliver(parcel, sent_at),
            None => {
                self.stats.dropped += 1;
                self.lost(parcel.describe(sent_at), Loss::NoSuchLeader);
            }
        }
    }

    fn lost(&self, message: Frame, why: Loss) {
        self.sink.record(Who::Network, NetworkEvent::Lost { message, why });
    }
}

impl Actor for Network {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Handler<Transmit> for Network {
    type Result = ();
    fn handle(&mut self, t: Transmit, ctx: &mut Context<Self>) {
        let (from, to) = (t.from(), t.to());
        let Some(parcel) = self.stats.pack(t, &self.sink) else { return };
        let kind = parcel.kind();
        let sent_at = self.sink.elapsed();
        if self.blocked(from, to) {
            self.stats.dropped += 1;
            self.lost(parcel.describe(sent_at), Loss::Partitioned);
            return;
        }
        if self.model.is_instant() {
            self.stats.in_flight += 1;
            self.deliver(parcel, sent_at);
            return;
        }
        if self.rng.chance(self.model.drop_rate) {
            self.stats.dropped += 1;
            self.lost(parcel.describe(sent_at), Loss::Dropped);
            return;
        }
        let copies = if self.rng.chance(self.model.duplicate_rate) {
            self.stats.duplicated += 1;
            self.sink.record(Who::Network, NetworkEvent::Duplicated { from, to, kind: kind.to_owned() });
            2
        } else {
            1
        };
        for _ in 0..copies {
            let latency = self.model.sample_latency(from, to, &mut self.rng);
            self.stats.in_flight += 1;
            let parcel = parcel.clone();
            ctx.run_later(latency, move |net, _| net.deliver(parcel, sent_at));
        }
    }
}

impl Handler<Heartbeat> for Network {
    type Result = ();
    fn handle(&mut self, hb: Heartbeat, _: &mut Context<Self>) {
        self.stats.heartbeats += 1;
        if self.isolated.contains(hb.from()) {
            return;
        }
        if let Some(sup) = &self.supervisor {
            sup.heartbeat(hb);
        }
    }
}

impl Handler<Route> for Network {
    type Result = actix::ResponseFuture<Result<WriteReceipt, LeaderError>>;
    fn handle(&mut self, route: Route, _: &mut Context<Self>) -> Self::Result {
        let (from, to) = (route.from(), route.to());
        let target = if self.blocked(from, to) { None } else { self.leaders.get(&to).cloned() };
        let Some(home) = target else {
            self.sink.record(Who::Network, NetworkEvent::RouteLost { from, to });
            return Box::pin(async move { Err(LeaderError::HomeUnreachable { home: to }) });
        };
        // The request and the answer each take a one-way latency of the model (the simulated
        // network's loss and duplication are not applied to client routes: a lost answer would
        // report an applied write as failed).
        let (there, back) = if self.model.is_instant() {
            (Duration::ZERO, Duration::ZERO)
        } else {
            (self.model.sample_latency(from, to, &mut self.rng), self.model.sample_latency(to, from, &mut self.rng))
        };
        Box::pin(async move {
            if !there.is_zero() {
                tokio::time::sleep(there).await;
            }
            let answer = home.route(route).await;
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
        if self.isolated.contains(report.from()) {
            return;
        }
        if let Some(sup) = &self.supervisor {
            sup.report(report);
        }
    }
}

impl Handler<Connect> for Network {
    type Result = ();
    fn handle(&mut self, c: Connect, _: &mut Context<Self>) {
        let (leaders, supervisor) = c.into_parts();
        self.leaders = leaders;
        self.supervisor = Some(supervisor);
    }
}

impl Handler<Fault> for Network {
    type Result = ();
    fn handle(&mut self, fault: Fault, _: &mut Context<Self>) {
        match fault {
            Fault::Isolate(id) => {
                self.isolated.insert(id);
                self.sink.record(Who::Network, NetworkEvent::Isolated(id));
            }
            Fault::Heal(id) => {
                self.isolated.remove(id);
                self.sink.record(Who::Network, NetworkEvent::Healed(id));
            }
            Fault::Partition(a, b) => {
                for x in a {
                    for y in b {
                        self.cut.insert((x, y));
                        self.cut.insert((y, x));
                    }
                }
                self.sink.record(Who::Network, NetworkEvent::Partitioned(a, b));
            }
            Fault::HealAll => {
                self.cut.clear();
                self.isolated = LeaderSet::EMPTY;
                self.sink.record(Who::Network, NetworkEvent::HealedAll);
            }
        }
    }
}

impl Handler<Stats> for Network {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}

/// The simulated network as a cluster's transport: a [`Network`] with this model and seed, whose
/// links can make faults.
#[derive(Debug, Clone)]
pub struct SimulatedNetwork {
    /// How the network behaves.
    pub model: NetworkModel,
    /// The seed of its latency and loss choices.
    pub seed: u64,
}

impl SimulatedNetwork {
    /// The simulated network with `model` and `seed`, ready for
    /// [`roundtable_actors::ClusterBuilder::transport`].
    #[must_use]
    pub fn new(model: NetworkModel, seed: u64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(SimulatedNetwork { model, seed })
    }
}

impl Transport for SimulatedNetwork {
    fn start(&self, sink: TraceSink, mailbox_capacity: usize) -> TransportLinks {
        let network = Network::new(self.model.clone(), self.seed, sink).with_mailbox_capacity(mailbox_capacity).start();
        TransportLinks::of(&network).with_faults(network.recipient())
    }
}
