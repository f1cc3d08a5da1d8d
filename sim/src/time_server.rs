//! The simulated time server: it knows true time (the simulation's), and answers each
//! [`TimeQuery`] after a one-way delay drawn from a seeded generator, independently each way, so
//! samples are asymmetric like real ones and a run still replays from its seed.

use std::time::Duration;

use actix::{Actor, Context, Handler, Recipient, ResponseFuture};
use roundtable_actors::clock_sync::{TimeQuery, TimeReference};
use roundtable_actors::LeaderClockSource;
use roundtable_runtime::clock::PhysicalClock;
use roundtable_runtime::rng::SeededRng;
use roundtable_runtime::WallTime;

/// Settings of clock synchronisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSyncConfig {
    /// How often each leader samples the time server (default 1 s).
    pub interval: Duration,
    /// Smallest one-way delay to and from the server (default 1 ms).
    pub delay_min: Duration,
    /// Largest one-way delay to and from the server (default 20 ms).
    pub delay_max: Duration,
}

impl Default for ClockSyncConfig {
    fn default() -> Self {
        ClockSyncConfig {
            interval: Duration::from_secs(1),
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(20),
        }
    }
}

/// A time server that knows true time.
pub struct TimeServer {
    truth: LeaderClockSource,
    rng: SeededRng,
    config: ClockSyncConfig,
}

impl TimeServer {
    /// A server reading `truth`, drawing delays from `seed`.
    #[must_use]
    pub fn new(truth: LeaderClockSource, seed: u64, config: ClockSyncConfig) -> Self {
        TimeServer { truth, rng: SeededRng::new(seed), config }
    }

    fn delay(&mut self) -> Duration {
        let span = self.config.delay_max.saturating_sub(self.config.delay_min).as_nanos() as u64;
        self.config.delay_min + Duration::from_nanos(self.rng.below(span.saturating_add(1)))
    }
}

impl Actor for TimeServer {
    type Context = Context<Self>;
}

impl Handler<TimeQuery> for TimeServer {
    type Result = ResponseFuture<(WallTime, WallTime)>;
    fn handle(&mut self, _: TimeQuery, _: &mut Context<Self>) -> Self::Result {
        let (there, back) = (self.delay(), self.delay());
        let truth = self.truth.clone();
        Box::pin(async move {
            tokio::time::sleep(there).await;
            // The server answers at once (t3 = t2); the reply then takes its own delay.
            let t2 = truth.now();
            tokio::time::sleep(back).await;
            (t2, t2)
        })
    }
}

/// Starts a [`TimeServer`] for a cluster (see [`roundtable_actors::ClusterBuilder::clock_sync`]).
#[derive(Debug, Clone)]
pub struct SimulatedTimeServer {
    /// True time.
    pub truth: LeaderClockSource,
    /// The seed of its delays.
    pub seed: u64,
    /// Its delays.
    pub config: ClockSyncConfig,
}

impl TimeReference for SimulatedTimeServer {
    fn start(&self) -> Recipient<TimeQuery> {
        TimeServer::new(self.truth.clone(), self.seed, self.config).start().recipient()
    }
}
