//! The `Leader` actor: one leader's replica inside an actix actor.
//!
//! **Architecture invariant:** this file holds no replication logic. Each handler reads the clock,
//! turns the message into one call on [`Replica`], and performs the effects that come back: sends
//! go to the transport ([`crate::transport`]), trace events to the [`TraceSink`] and to `tracing`.
//!
//! Crash and restart follow actix supervision: a [`Crash`] drops the replica (all in-memory state)
//! and stops the actor; actix's `Supervisor` restarts it at once under the same address, but the
//! leader stays *down* — answering nothing, sending nothing — until [`Restart`] builds a fresh
//! replica with [`Replica::restarted`], which catches up from its peers through anti-entropy.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Supervised};
use roundtable_runtime::clock::PhysicalClock;
use roundtable_runtime::{
    ClientWrite, Effect, Key, LeaderId, LeaderSet, ReadValue, Replica, ReplicaConfig, Topology, Value, WriteReceipt,
};

use crate::clock::LeaderClockSource;
use crate::clock_sync::ClockSample;
use crate::error::ClusterError;
use crate::messages::{
    AppliedTotal, Changed, ClockStatus, Crash, Delete, Fence, Get, GetCrdt, GetProgress, GetSiblings, Inspect,
    LeaderError, LeaderState, Progress, Put, PutBatch, Restart, Routed, SetLive, Shutdown, Subscribe, SubscribeChannel,
    Subscriber, SyncDisk, Write, WriteConcern, MAX_SUBSCRIPTIONS,
};
use crate::storage::{DiskError, DiskShell, DiskSpec, Stored, Written};
use crate::trace::{Actor as Who, LeaderEvent, Loss, NetworkEvent, TraceSink};
use crate::transport::{Deliver, Heartbeat, Report, Route, Transmit, TransportLinks};
use actix::ResponseFuture;
use roundtable_runtime::resolution::{CrdtState, Update};
use roundtable_runtime::siblings::SiblingRead;
use roundtable_runtime::wire::PeerMessage;
use roundtable_runtime::WriteError;

/// What a leader needs to be built (and rebuilt after a restart).
#[derive(Debug, Clone)]
pub struct LeaderSpec {
    /// Its id.
    pub id: LeaderId,
    /// Its name (a region, device or process).
    pub name: String,
    /// The cluster's members.
    pub members: LeaderSet,
    /// The topology.
    pub topology: Topology,
    /// Replica settings.
    pub config: ReplicaConfig,
    /// Where its physical time comes from.
    pub clock: LeaderClockSource,
    /// How often the replica ticks (anti-entropy, truncation) and the leader sends a heartbeat.
    pub tick_interval: Duration,
    /// While it applies writes, the replica also ticks this soon after one (see
    /// [`crate::ClusterBuilder::busy_tick_interval`]); `None`: only every `tick_interval`.
    pub busy_tick_interval: Option<Duration>,
    /// The most messages waiting for one peer (see [`crate::FlowControl`]).
    pub outbox_max: usize,
    /// Start as a leader restarted with empty state ([`Replica::restarted`]): it refuses writes
    /// until its peers have told it what it wrote in an earlier life, so that a process that
    /// crashed and came back never reissues a sequence number. A node (a process hosting a
    /// leader of a cluster of processes) always starts so, since it cannot tell a first start
    /// from a restart.
    ///
    /// With a disk, it applies only when the disk is empty (a first start, or a lost disk): a
    /// leader whose disk holds something resumes from it ([`Replica::resume`]).
    pub recovering: bool,
    /// The leader's disk (a redb file; see [`crate::storage`]): with one, the leader is durable —
    /// it persists what it applies, sends nothing before it is synced, and a restart resumes
    /// from the disk. `None`: an in-memory leader.
    pub disk: Option<DiskSpec>,
    /// With a disk: take a checkpoint after this many records.
    pub checkpoint_every: usize,
}

/// One leader as an actix actor. Build it through [`crate::Cluster`].
pub struct Leader {
    spec: LeaderSpec,
    replica: Option<Replica>,
    subscriptions: Vec<(String, Subscriber)>,
    links: TransportLinks,
    sink: TraceSink,
    /// This actor's address, for its own flush timer.
    me: Option<Addr<Leader>>,
    /// When the flush timer in flight fires (leader time), if one is.
    flush_armed: Option<roundtable_runtime::WallTime>,
    /// A [`FlushBatches`] waits in the mailbox.
    flush_queued: bool,
    /// A busy tick is scheduled.
    busy_tick_armed: bool,
    /// How many entries the replica had applied at its latest tick.
    applied_at_tick: u64,
    /// Messages the network's mailbox had no room for yet, per peer, in order.
    outboxes: BTreeMap<LeaderId, VecDeque<PeerMessage>>,
    /// Whether a retry of the outboxes is scheduled.
    pump_armed: bool,
    /// Messages dropped because their peer's outbox was full.
    outbox_dropped: u64,
    /// A durable leader's disk.
    disk: Option<DiskShell>,
    /// Stopped for good ([`Shutdown`]): a restart does nothing.
    shut_down: bool,
    /// Whether its clock was fenced at the last tick (to log the changes).
    clock_fenced: bool,
}

/// The disk writer's report.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
struct DiskReport(Written);

/// Retry handing the outboxes to the network.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
struct PumpDue;

/// The batching timer (at the replica's next deadline) fired.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
struct FlushDue;

/// A busy tick is due: the replica applied writes since its latest tick.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
struct BusyTick;

/// Batching with a zero flush interval: the inputs queued when entries were batched have been
/// handled, so the batches leave. Queued behind them in the mailbox, so that a burst of inputs
/// (the pipelines of many clients) shares messages, while a lone write leaves at once.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
struct FlushBatches;

impl Leader {
    /// A leader that is up, with a fresh replica, sending through `links`.
    pub(crate) fn new(mut spec: LeaderSpec, links: TransportLinks, sink: TraceSink) -> Result<Self, ClusterError> {
        // The replica's trace events go to the sink and to `tracing` at debug level (`perform`).
        // With neither listening, the replica does not build them: an `Applied` event alone
        // allocates its dependencies for every entry applied, only to be dropped at the end of
        // the input (building events for nobody was about 17 % of the replication bench's CPU).
        spec.config.trace &= sink.is_enabled() || tracing::enabled!(tracing::Level::DEBUG);
        spec.config.durable = spec.disk.is_some();
        let (replica, disk) = match &spec.disk {
            None => (replica_of(&spec, Stored::default())?, None),
            Some(disk) => {
                let (disk, stored) = disk.open(spec.checkpoint_every)?;
                (replica_of(&spec, stored)?, Some(disk))
            }
        };
        Ok(Leader {
            spec,
            replica: Some(replica),
            subscriptions: Vec::new(),
            links,
            sink,
            me: None,
            flush_armed: None,
            flush_queued: false,
            busy_tick_armed: false,
            applied_at_tick: 0,
            outboxes: BTreeMap::new(),
            pump_armed: false,
            outbox_dropped: 0,
            disk,
            shut_down: false,
            clock_fenced: false,
        })
    }

    /// Starts the disk writer, if the leader has a disk and is up.
    fn run_disk(&mut self, ctx: &mut Context<Self>) {
        let (Some(disk), Some(_)) = (self.disk.as_mut(), self.replica.as_ref()) else { return };
        let me = ctx.address();
        disk.run(move |written| me.do_send(DiskReport(written)));
        if let Some(reason) = disk.failure() {
            let reason = reason.to_owned();
            self.disk_failed(reason);
        }
    }

    fn disk_failed(&mut self, reason: String) {
        tracing::error!(leader = %self.spec.name, %reason, "disk failed: writes refused");
        self.sink.record(Who::Leader(self.spec.id), LeaderEvent::DiskFailed { reason: reason.clone() });
        if let Some(disk) = self.disk.as_mut() {
            disk.fail(reason);
        }
    }

    /// This leader's raw physical clock.
    #[must_use]
    pub fn clock(&self) -> &LeaderClockSource {
        &self.spec.clock
    }

    pub(crate) fn now(&self) -> roundtable_runtime::WallTime {
        self.spec.clock.now()
    }

    /// Performs the replica's effects: sends through the network, trace events to the sink and,
    /// as debug events in a span named after the leader, to `tracing`.
    pub(crate) fn perform(&mut self) {
        let Some(replica) = self.replica.as_mut() else { return };
        let id = self.spec.id;
        let _span = tracing::debug_span!("leader", name = %self.spec.name, id = %id).entered();
        let durable = self.disk.is_some();
        let (mut records, mut sends) = (Vec::new(), Vec::new());
        // With a zero flush interval, batches wait for the inputs already queued (`FlushBatches`).
        let flusher = self.me.as_ref().filter(|_| self.spec.config.batch.is_some_and(|b| b.flush_interval.is_zero()));
        let effects = match flusher {
            Some(me) => {
                let effects = replica.take_effects_keeping_batches();
                if !self.flush_queued && replica.has_batched() {
                    me.do_send(FlushBatches);
                    self.flush_queued = true;
                }
                effects
            }
            None => replica.take_effects(),
        };
        for effect in effects {
            match effect {
                Effect::Send { to, msg } if durable => sends.push((to, msg)),
                Effect::Send { to, msg } => self.enqueue(to, msg),
                Effect::Persist(record) => records.push(record),
                Effect::Trace(event) => {
                    tracing::debug!(%event);
                    self.sink.record(Who::Leader(id), event);
                }
                Effect::Changed { key, dot, cause } => {
                    let key = key.as_str();
                    self.subscriptions.retain(|(_, s)| s.connected());
                    for (prefix, subscriber) in &self.subscriptions {
                        if key.starts_with(prefix.as_str()) {
                            subscriber.notify(Changed { leader: id, key: key.to_owned(), dot, cause });
                        }
                    }
                }
                Effect::Alarm(alarm) => self.links.report.do_send(Report { from: id, alarm }),
            }
        }
        if let Some(disk) = self.disk.as_mut() {
            // The rule of a durable leader: nothing of an input leaves before its records are
            // synced (see `Replica::resume`).
            if !records.is_empty() {
                let replica = self.replica.as_ref().filter(|r| !r.is_catching_up());
                let image = replica.filter(|_| disk.image_due(records.len())).map(Replica::image);
                disk.submit(records, image);
            }
            if disk.must_hold() {
                let dropped = disk.held_dropped();
                for (to, msg) in sends {
                    disk.hold(to, msg);
                }
                if disk.held_dropped() > dropped && disk.held_dropped().is_power_of_two() {
                    tracing::warn!(leader = %self.spec.name, dropped = disk.held_dropped(), "disk behind: messages dropped");
                }
            } else {
                for (to, msg) in sends {
                    self.enqueue(to, msg);
                }
            }
        }
        self.pump();
        self.arm_flush();
        self.arm_busy_tick();
    }

    /// With a busy tick interval: schedules a tick that soon after the replica applied
    /// something since its latest tick (one at a time).
    fn arm_busy_tick(&mut self) {
        let (Some(interval), Some(replica), Some(me)) = (self.spec.busy_tick_interval, &self.replica, &self.me) else {
            return;
        };
        if self.busy_tick_armed || replica.metrics().applied == self.applied_at_tick {
            return;
        }
        self.busy_tick_armed = true;
        let me = me.clone();
        actix::spawn(async move {
            tokio::time::sleep(interval).await;
            me.do_send(BusyTick);
        });
    }

    /// The replica's housekeeping ([`Replica::handle_timeout`]) now, then its effects.
    fn tick(&mut self) {
        let now = self.now();
        let Some(replica) = self.replica.as_mut() else { return };
        replica.handle_timeout(now);
        self.applied_at_tick = replica.metrics().applied;
    }

    /// Queues a message for `to`: behind what already waits for it, or dropped (counted and
    /// traced) when its outbox is full.
    fn enqueue(&mut self, to: LeaderId, msg: PeerMessage) {
        let max = self.spec.outbox_max;
        let outbox = self.outboxes.entry(to).or_default();
        if outbox.len() >= max {
            self.outbox_dropped += 1;
            if self.outbox_dropped.is_power_of_two() {
                tracing::warn!(leader = %self.spec.name, peer = %to, "outbox full: messages dropped");
                let event = LeaderEvent::OutboxFull { to, max, dropped: self.outbox_dropped };
                self.sink.record(Who::Leader(self.spec.id), event);
            }
            return;
        }
        outbox.push_back(msg);
    }

    /// Hands waiting messages to the network until its mailbox is full; retries in 1 ms if any
    /// are left.
    fn pump(&mut self) {
        let from = self.spec.id;
        'peers: for (&to, outbox) in &mut self.outboxes {
            while let Some(msg) = outbox.pop_front() {
                match self.links.transmit.try_send(Transmit::new(from, to, msg)) {
                    Ok(()) => {}
                    Err(actix::dev::SendError::Full(t)) => {
                        outbox.push_front(t.into_msg());
                        break 'peers;
                    }
                    // The network is gone (the system is stopping): nothing to deliver to.
                    Err(actix::dev::SendError::Closed(_)) => {
                        outbox.clear();
                        break 'peers;
                    }
                }
            }
        }
        self.outboxes.retain(|_, o| !o.is_empty());
        if !self.outboxes.is_empty() && !self.pump_armed {
            let Some(me) = self.me.clone() else { return };
            self.pump_armed = true;
            actix::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                me.do_send(PumpDue);
            });
        }
    }

    /// The peer whose outbox is full, if any, with how many messages wait for it.
    fn backlogged(&self) -> Option<(LeaderId, usize)> {
        self.outboxes.iter().find(|(_, o)| o.len() >= self.spec.outbox_max).map(|(peer, o)| (*peer, o.len()))
    }

    /// With batching (and a flush interval): makes sure a timer fires at the replica's next
    /// deadline, so that waiting entries leave on time. Otherwise the tick interval alone drives
    /// the replica, at the cadence the traces were recorded with.
    fn arm_flush(&mut self) {
        if self.spec.config.batch.is_none_or(|b| b.flush_interval.is_zero()) {
            return;
        }
        let Some(due) = self.replica.as_ref().and_then(Replica::poll_timeout) else { return };
        if self.flush_armed.is_some_and(|armed| armed <= due) {
            return;
        }
        let Some(me) = self.me.clone() else { return };
        let delay = due.saturating_duration_since(self.now());
        self.flush_armed = Some(due);
        actix::spawn(async move {
            tokio::time::sleep(delay).await;
            me.do_send(FlushDue);
        });
    }

    pub(crate) fn down(&self) -> LeaderError {
        LeaderError::Down(self.spec.name.clone())
    }

    /// The replica, while the leader is up.
    pub(crate) fn replica_ref(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// Applies a client update here, not routed, at the physical time `now` (the writes of one
    /// [`crate::Atomically`] turn share one reading; the hybrid logical clock still gives each
    /// its own timestamp); the caller performs the effects.
    pub(crate) fn write_here_at(
        &mut self,
        key: Key,
        update: Update,
        now: roundtable_runtime::WallTime,
    ) -> Result<WriteReceipt, LeaderError> {
        self.writing_at(key, now, |replica, now, key| replica.handle_update(now, key, update))
    }

    /// Applies a client update here, or routes it when the replica says the key lives at
    /// another leader; effects performed.
    fn write(&mut self, key: &str, update: Update) -> Result<ClientWrite, LeaderError> {
        let result = self.client_update(key, update);
        self.perform();
        result
    }

    /// A client update whose effects are left for the caller to perform.
    fn client_update(&mut self, key: &str, update: Update) -> Result<ClientWrite, LeaderError> {
        self.writing(key, |replica, now, key| replica.handle_client_update(now, key, update))
    }

    /// Runs one write on the replica, unless the leader is down, `key` is invalid, or a peer's
    /// outbox is full (backpressure).
    fn writing<T>(
        &mut self,
        key: &str,
        write: impl FnOnce(&mut Replica, roundtable_runtime::WallTime, Key) -> Result<T, WriteError>,
    ) -> Result<T, LeaderError> {
        let now = self.now();
        let key = Key::new(key)?;
        self.writing_at(key, now, write)
    }

    /// [`Leader::writing`] at the physical time `now`.
    fn writing_at<T>(
        &mut self,
        key: Key,
        now: roundtable_runtime::WallTime,
        write: impl FnOnce(&mut Replica, roundtable_runtime::WallTime, Key) -> Result<T, WriteError>,
    ) -> Result<T, LeaderError> {
        if let Some((peer, pending)) = self.backlogged() {
            return Err(LeaderError::Backpressure { peer, pending });
        }
        if let Some(reason) = self.disk.as_ref().and_then(DiskShell::failure) {
            return Err(LeaderError::DiskFailed { leader: self.spec.name.clone(), reason: reason.to_owned() });
        }
        if let Some(unsynced) = self.disk.as_ref().and_then(DiskShell::behind) {
            return Err(LeaderError::DiskBehind { leader: self.spec.name.clone(), unsynced });
        }
        let replica = self.replica.as_mut().ok_or_else(|| LeaderError::Down(self.spec.name.clone()))?;
        Ok(write(replica, now, key)?)
    }

    /// Writes (or routes), then waits for the write concern if there is one.
    fn write_with_concern(
        &mut self,
        key: String,
        update: Update,
        concern: Option<WriteConcern>,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<WriteReceipt, LeaderError>> {
        let Some(concern) = concern else { return self.write_or_route(key, update, None) };
        let members = self.spec.members.len();
        if concern.leaders == 0 || concern.leaders > members {
            let error = LeaderError::ImpossibleConcern { leaders: concern.leaders, members };
            return Box::pin(async move { Err(error) });
        }
        if concern.durable && self.disk.is_none() {
            let error = LeaderError::NotDurable { leader: self.spec.name.clone() };
            return Box::pin(async move { Err(error) });
        }
        let written = self.write_or_route(key, update, Some(concern));
        let me = ctx.address();
        Box::pin(async move {
            let receipt = written.await?;
            if concern.leaders <= 1 {
                return Ok(receipt);
            }
            await_concern(me, receipt, concern).await
        })
    }

    /// Writes here, or carries the write to the key's home when the replica says so. A durable
    /// `concern` is met where the write is applied (here, or at the home).
    fn write_or_route(
        &mut self,
        key: String,
        update: Update,
        concern: Option<WriteConcern>,
    ) -> ResponseFuture<Result<WriteReceipt, LeaderError>> {
        match self.write(&key, update) {
            Ok(ClientWrite::Applied(receipt)) => match concern.filter(|c| c.durable) {
                Some(concern) => self.await_disk(receipt, concern.timeout),
                None => Box::pin(async move { Ok(receipt) }),
            },
            Ok(ClientWrite::Route { home, key, update }) => {
                let concern = concern.filter(|c| c.durable).map(|c| WriteConcern::durable(c.timeout));
                let write = Write { key: key.into(), update: *update, concern };
                let request = self.links.route.send(Route::new(self.spec.id, home, write));
                Box::pin(async move { request.await.unwrap_or(Err(LeaderError::HomeUnreachable { home })) })
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    /// Answers `receipt` once the last batch handed to the disk (the write's own) is synced, or
    /// with an error after `timeout`.
    fn await_disk(
        &mut self,
        receipt: WriteReceipt,
        timeout: Duration,
    ) -> ResponseFuture<Result<WriteReceipt, LeaderError>> {
        let synced = self.disk_synced(timeout);
        Box::pin(async move { synced.await.map(|()| receipt) })
    }

    /// Resolves once everything handed to the disk so far is synced, or with an error after
    /// `timeout` (or at once without a disk).
    fn disk_synced(&mut self, timeout: Duration) -> ResponseFuture<Result<(), LeaderError>> {
        let leader = self.spec.name.clone();
        let Some(disk) = self.disk.as_mut() else {
            return Box::pin(async move { Err(LeaderError::NotDurable { leader }) });
        };
        let synced = disk.wait();
        Box::pin(async move {
            match tokio::time::timeout(timeout, synced).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(reason))) => Err(LeaderError::DiskFailed { leader, reason }),
                Ok(Err(_)) => Err(LeaderError::DiskFailed { leader, reason: "the leader stopped".into() }),
                Err(_) => Err(LeaderError::NotSynced { leader, waited: timeout }),
            }
        })
    }
}

/// The replica a leader starts with: from what its disk held, or fresh, or recovering.
fn replica_of(spec: &LeaderSpec, stored: Stored) -> Result<Replica, ClusterError> {
    let (id, members, topology, config) = (spec.id, spec.members, spec.topology.clone(), spec.config.clone());
    if !stored.is_empty() {
        let records = stored.records.into_iter().map(Ok);
        return Replica::resume(id, members, topology, config, stored.image, records).map_err(|source| {
            let path = spec.disk.as_ref().map(DiskSpec::path).unwrap_or_default();
            ClusterError::Disk(DiskError::Resume { path, source })
        });
    }
    Ok(if spec.recovering {
        Replica::restarted(id, members, topology, config)?
    } else {
        Replica::new(id, members, topology, config)?
    })
}

impl Actor for Leader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _span = tracing::info_span!("leader", name = %self.spec.name).entered();
        let now = self.now();
        if let Some(replica) = self.replica.as_mut() {
            replica.start(now);
        }
        self.me = Some(ctx.address());
        self.flush_armed = None;
        self.run_disk(ctx);
        self.perform();
        ctx.run_interval(self.spec.tick_interval, |leader, _| {
            leader.tick();
            let Some(replica) = leader.replica.as_mut() else { return };
            let health = replica.clock_health();
            if health.is_fenced() != leader.clock_fenced {
                leader.clock_fenced = health.is_fenced();
                if leader.clock_fenced {
                    tracing::warn!(leader = %leader.spec.name, clock = %health, "clock fenced: writes refused");
                } else {
                    tracing::info!(leader = %leader.spec.name, clock = %health, "clock healthy again: writes accepted");
                }
            }
            leader.perform();
            leader.links.heartbeat.do_send(Heartbeat { from: leader.spec.id });
        });
    }
}

impl Supervised for Leader {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        // The actor is back under the same address, but the leader stays down until `Restart`.
        self.sink.record(Who::Leader(self.spec.id), LeaderEvent::ActorRestarted);
    }
}

impl Handler<Put> for Leader {
    type Result = ResponseFuture<Result<WriteReceipt, LeaderError>>;
    fn handle(&mut self, msg: Put, ctx: &mut Context<Self>) -> Self::Result {
        match Value::new(msg.value) {
            Ok(value) => self.write_with_concern(msg.key, Update::Put(value), msg.concern, ctx),
            Err(e) => Box::pin(async move { Err(e.into()) }),
        }
    }
}

/// Waits until `concern.leaders` leaders hold the write, asking the peers for acknowledgements
/// every 20 ms, for at most `concern.timeout`.
async fn await_concern(
    me: actix::Addr<Leader>,
    receipt: WriteReceipt,
    concern: WriteConcern,
) -> Result<WriteReceipt, LeaderError> {
    let (acknowledged, waited) = wait_held(me, receipt.dot, concern.leaders, concern.timeout).await;
    if acknowledged >= concern.leaders {
        return Ok(receipt);
    }
    Err(LeaderError::NotYetAcknowledged { dot: receipt.dot, acknowledged, wanted: concern.leaders, waited })
}

/// How many leaders hold `dot` once `wanted` do or `timeout` has passed, asking the peers for
/// acknowledgements every 20 ms meanwhile, and how long that took.
pub(crate) async fn wait_held(
    me: actix::Addr<Leader>,
    dot: roundtable_runtime::Dot,
    wanted: usize,
    timeout: std::time::Duration,
) -> (usize, std::time::Duration) {
    let start = tokio::time::Instant::now();
    loop {
        let held = me.send(Holders(dot)).await.unwrap_or(0);
        let waited = start.elapsed();
        if held >= wanted || waited >= timeout {
            return (held, waited);
        }
        me.do_send(RequestAcks);
        tokio::time::sleep(std::time::Duration::from_millis(20).min(timeout - waited)).await;
    }
}

/// How many leaders are known to hold a write.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "usize")]
struct Holders(roundtable_runtime::Dot);

impl Handler<Holders> for Leader {
    type Result = usize;
    fn handle(&mut self, msg: Holders, _: &mut Context<Self>) -> usize {
        self.replica.as_ref().map_or(0, |r| r.holders(msg.0).len())
    }
}

/// Ask the peers for their version vectors now.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
struct RequestAcks;

impl Handler<RequestAcks> for Leader {
    type Result = ();
    fn handle(&mut self, _: RequestAcks, _: &mut Context<Self>) {
        let now = self.now();
        if let Some(replica) = self.replica.as_mut() {
            replica.request_acks(now);
        }
        self.perform();
    }
}

impl Handler<Fence> for Leader {
    type Result = ();
    fn handle(&mut self, _: Fence, _: &mut Context<Self>) {
        let now = self.now();
        let Some(replica) = self.replica.as_mut() else { return };
        replica.handle_fence(now);
        self.perform();
    }
}

impl Handler<Subscribe> for Leader {
    type Result = Result<(), LeaderError>;
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        self.subscribe(msg.prefix, Subscriber::Actor(msg.subscriber))
    }
}

impl Handler<SubscribeChannel> for Leader {
    type Result = Result<(), LeaderError>;
    fn handle(&mut self, msg: SubscribeChannel, _: &mut Context<Self>) -> Self::Result {
        self.subscribe(msg.prefix, msg.subscriber)
    }
}

impl Leader {
    fn subscribe(&mut self, prefix: String, subscriber: Subscriber) -> Result<(), LeaderError> {
        self.subscriptions.retain(|(_, s)| s.connected());
        if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(LeaderError::TooManySubscriptions);
        }
        self.subscriptions.push((prefix, subscriber));
        if let Some(replica) = self.replica.as_mut() {
            replica.notify_changes(true);
        }
        Ok(())
    }
}

impl Handler<GetProgress> for Leader {
    type Result = actix::MessageResult<GetProgress>;
    fn handle(&mut self, _: GetProgress, _: &mut Context<Self>) -> Self::Result {
        let disk = self.disk.as_ref().map_or((0, 0), DiskShell::counts);
        let outbox_dropped = self.outbox_dropped + self.disk.as_ref().map_or(0, DiskShell::held_dropped);
        let progress = match &self.replica {
            None => Progress {
                up: false,
                writable: false,
                recovering: false,
                waiting: 0,
                applied: Default::default(),
                metrics: Default::default(),
                outbox_dropped,
                disk,
            },
            Some(r) => Progress {
                up: true,
                writable: !r.is_catching_up() && !r.is_fenced() && !r.is_fenced_by_cluster(),
                recovering: r.is_catching_up(),
                waiting: r.waiting(),
                applied: r.applied().clone(),
                metrics: r.metrics().clone(),
                outbox_dropped,
                disk,
            },
        };
        actix::MessageResult(progress)
    }
}

impl Handler<Delete> for Leader {
    type Result = ResponseFuture<Result<WriteReceipt, LeaderError>>;
    fn handle(&mut self, msg: Delete, _: &mut Context<Self>) -> Self::Result {
        self.write_or_route(msg.key, Update::Delete, None)
    }
}

impl Handler<Routed> for Leader {
    type Result = ResponseFuture<Result<WriteReceipt, LeaderError>>;
    fn handle(&mut self, msg: Routed, _: &mut Context<Self>) -> Self::Result {
        let Write { key, update, concern } = msg.0;
        let result = self.writing(&key, |replica, now, key| replica.handle_routed_update(now, key, update));
        self.perform();
        match (result, concern.filter(|c| c.durable)) {
            (Ok(receipt), Some(concern)) => self.await_disk(receipt, concern.timeout),
            (result, _) => Box::pin(async move { result }),
        }
    }
}

impl Handler<ClockStatus> for Leader {
    type Result = Option<(roundtable_runtime::clock::ClockHealth, Option<i64>)>;
    fn handle(&mut self, _: ClockStatus, _: &mut Context<Self>) -> Self::Result {
        self.replica.as_ref().map(|r| (r.clock_health(), r.clock().measured_offset_ns()))
    }
}

impl Handler<SyncDisk> for Leader {
    type Result = ResponseFuture<Result<(), LeaderError>>;
    fn handle(&mut self, msg: SyncDisk, _: &mut Context<Self>) -> Self::Result {
        self.disk_synced(msg.timeout)
    }
}

impl Handler<DiskReport> for Leader {
    type Result = ();
    fn handle(&mut self, msg: DiskReport, _: &mut Context<Self>) {
        let Some(disk) = self.disk.as_mut() else { return };
        match msg.0 {
            Written::Synced(upto) => {
                for (to, msg) in disk.synced(upto) {
                    self.enqueue(to, msg);
                }
                self.pump();
            }
            Written::Failed(reason) => self.disk_failed(reason),
        }
    }
}

impl Handler<Write> for Leader {
    type Result = ResponseFuture<Result<WriteReceipt, LeaderError>>;
    fn handle(&mut self, msg: Write, ctx: &mut Context<Self>) -> Self::Result {
        self.write_with_concern(msg.key, msg.update, msg.concern, ctx)
    }
}

impl Handler<GetSiblings> for Leader {
    type Result = Result<Option<SiblingRead>, LeaderError>;
    fn handle(&mut self, msg: GetSiblings, _: &mut Context<Self>) -> Self::Result {
        let key = Key::new(msg.key)?;
        let replica = self.replica.as_ref().ok_or_else(|| self.down())?;
        Ok(replica.read_siblings(&key))
    }
}

impl Handler<GetCrdt> for Leader {
    type Result = Result<Option<CrdtState>, LeaderError>;
    fn handle(&mut self, msg: GetCrdt, _: &mut Context<Self>) -> Self::Result {
        let key = Key::new(msg.key)?;
        let replica = self.replica.as_ref().ok_or_else(|| self.down())?;
        Ok(replica.read_crdt(&key).cloned())
    }
}

impl Handler<Get> for Leader {
    type Result = Result<Option<ReadValue>, LeaderError>;
    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        let key = Key::new(msg.key)?;
        let replica = self.replica.as_ref().ok_or_else(|| self.down())?;
        Ok(replica.read_register(&key)?)
    }
}

impl Handler<Deliver> for Leader {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        let now = self.now();
        if self.sink.is_enabled() {
            let message = msg.parcel.describe(msg.sent_at);
            let event = if self.replica.is_some() {
                NetworkEvent::Delivered(message)
            } else {
                NetworkEvent::Lost { message, why: Loss::ReceiverDown }
            };
            self.sink.record(Who::Leader(self.spec.id), event);
        }
        let Some(replica) = self.replica.as_mut() else { return };
        let from = msg.parcel.from();
        replica.handle_peer(now, from, msg.parcel.into_msg());
        self.perform();
    }
}

impl Handler<PumpDue> for Leader {
    type Result = ();
    fn handle(&mut self, _: PumpDue, _: &mut Context<Self>) {
        self.pump_armed = false;
        self.pump();
    }
}

impl Handler<BusyTick> for Leader {
    type Result = ();
    fn handle(&mut self, _: BusyTick, _: &mut Context<Self>) {
        self.busy_tick_armed = false;
        self.tick();
        self.perform();
    }
}

impl Handler<FlushBatches> for Leader {
    type Result = ();
    fn handle(&mut self, _: FlushBatches, _: &mut Context<Self>) {
        self.flush_queued = false;
        let Some(replica) = self.replica.as_mut() else { return };
        replica.flush_batches();
        self.perform();
    }
}

impl Handler<FlushDue> for Leader {
    type Result = ();
    fn handle(&mut self, _: FlushDue, _: &mut Context<Self>) {
        self.flush_armed = None;
        self.tick();
        self.perform();
    }
}

impl Handler<SetLive> for Leader {
    type Result = ();
    fn handle(&mut self, msg: SetLive, _: &mut Context<Self>) {
        let now = self.now();
        let Some(replica) = self.replica.as_mut() else { return };
        replica.handle_topology(now, msg.0);
        self.perform();
    }
}

impl Handler<Crash> for Leader {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        if self.replica.take().is_some() {
            if let Some(disk) = self.disk.as_mut() {
                disk.stop();
            }
            tracing::warn!(leader = %self.spec.name, "crashed: in-memory state lost");
            self.sink.record(Who::Leader(self.spec.id), LeaderEvent::Crashed);
            ctx.stop();
        }
    }
}

impl Handler<Shutdown> for Leader {
    type Result = ();
    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) {
        if let Some(mut disk) = self.disk.take() {
            disk.stop();
        }
        self.shut_down = true;
        if self.replica.take().is_some() {
            tracing::info!(leader = %self.spec.name, "stopped");
        }
        self.outboxes.clear();
    }
}

impl Handler<Restart> for Leader {
    type Result = ();
    fn handle(&mut self, _: Restart, ctx: &mut Context<Self>) {
        if self.replica.is_some() || self.shut_down {
            return;
        }
        let stored = match self.disk.as_mut().map(DiskShell::reread).transpose() {
            Ok(stored) => stored.unwrap_or_default(),
            Err(e) => {
                self.sink.record(Who::Leader(self.spec.id), LeaderEvent::RestartFailed { reason: e.to_string() });
                return;
            }
        };
        let from_disk = !stored.is_empty();
        let mut spec = self.spec.clone();
        spec.recovering = true;
        match replica_of(&spec, stored) {
            Ok(replica) => {
                if from_disk {
                    tracing::info!(leader = %spec.name, "restarted from its disk");
                } else {
                    tracing::info!(leader = %spec.name, "restarted with empty state; catching up");
                }
                let event = if from_disk { LeaderEvent::RestartedFromDisk } else { LeaderEvent::Restarted };
                self.sink.record(Who::Leader(spec.id), event);
                let now = self.now();
                let replica = self.replica.insert(replica);
                replica.notify_changes(!self.subscriptions.is_empty());
                replica.start(now);
                self.run_disk(ctx);
                self.perform();
            }
            Err(e) => self.sink.record(Who::Leader(spec.id), LeaderEvent::RestartFailed { reason: e.to_string() }),
        }
    }
}

impl Handler<ClockSample> for Leader {
    type Result = ();
    fn handle(&mut self, msg: ClockSample, _: &mut Context<Self>) {
        let now = self.now();
        let Some(replica) = self.replica.as_mut() else { return };
        if let Err(e) = replica.handle_clock_sample(now, msg.0) {
            self.sink.record(Who::Leader(self.spec.id), LeaderEvent::ClockSampleRefused { reason: e.to_string() });
        }
        self.perform();
    }
}

impl Handler<PutBatch> for Leader {
    type Result = actix::MessageResult<PutBatch>;
    fn handle(&mut self, batch: PutBatch, _: &mut Context<Self>) -> Self::Result {
        let results = batch
            .into_puts()
            .into_iter()
            .map(|(key, value)| {
                let value = Value::new(value)?;
                // Not routed: a key whose home is another leader is refused (`NotHome`).
                self.writing(&key, |replica, now, key| replica.handle_update(now, key, Update::Put(value)))
            })
            .collect();
        self.perform();
        actix::MessageResult(results)
    }
}

impl Handler<AppliedTotal> for Leader {
    type Result = Option<u64>;
    fn handle(&mut self, _: AppliedTotal, _: &mut Context<Self>) -> Option<u64> {
        self.replica.as_ref().map(|r| r.applied().total())
    }
}

impl Handler<Inspect> for Leader {
    type Result = actix::MessageResult<Inspect>;
    fn handle(&mut self, _: Inspect, _: &mut Context<Self>) -> Self::Result {
        let s = &self.spec;
        let state = match &self.replica {
            None => LeaderState {
                id: s.id,
                name: s.name.clone(),
                up: false,
                recovering: false,
                fenced: false,
                applied: Default::default(),
                waiting: 0,
                live: LeaderSet::EMPTY,
                metrics: Default::default(),
                store: Vec::new(),
                voided: Vec::new(),
                quarantined: Vec::new(),
                resolved: Vec::new(),
                digest: Vec::new(),
                outbox_dropped: self.outbox_dropped,
            },
            Some(r) => LeaderState {
                id: s.id,
                name: s.name.clone(),
                up: true,
                recovering: r.is_catching_up(),
                fenced: r.is_fenced(),
                applied: r.applied().clone(),
                waiting: r.waiting(),
                live: r.live(),
                metrics: r.metrics().clone(),
                store: r.store().registers().map(|(k, reg)| (k.clone(), reg.clone())).collect(),
                voided: r.voided().collect(),
                quarantined: r.quarantine().map(crate::messages::QuarantinedWrite::from).collect(),
                resolved: r.resolved(),
                digest: r.state_digest(),
                outbox_dropped: self.outbox_dropped,
            },
        };
        actix::MessageResult(state)
    }
}
