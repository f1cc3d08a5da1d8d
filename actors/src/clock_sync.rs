//! Clock synchronisation: a time server that knows true time, and one clock-sync actor per leader
//! that samples it the way an NTP client samples a server.
//!
//! Every `interval` the clock-sync actor reads its leader's *raw* physical clock (`t1`), asks the
//! server, which stamps the request's arrival and the reply's departure by true time (`t2`, `t3`),
//! and reads the raw clock again when the reply arrives (`t4`). The four timestamps go to the
//! leader as an [`NtpSample`]; the replica's corrector computes offset and delay (RFC 5905) and
//! slews or steps its clock. In simulation the server's one-way delays are drawn from a seeded
//! generator, independently each way, so samples are asymmetric like real ones and a run still
//! replays from its seed. (Against a real NTP server over UDP, an SNTP client would play the
//! server's part; that is not built yet.)

use std::time::Duration;

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture};
use roundtable_runtime::clock::{NtpSample, PhysicalClock};
use roundtable_runtime::rng::SeededRng;
use roundtable_runtime::WallTime;

use crate::clock::LeaderClockSource;
use crate::leader::Leader;

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

/// A time server that knows true time (the simulation's, or the system clock's).
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

/// "What time is it?" Answered with the server's receive and transmit times (`t2`, `t3`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "(WallTime, WallTime)")]
pub struct TimeQuery;

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

/// A clock sample for a leader's replica.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ClockSample(pub NtpSample);

/// Samples the time server for one leader and hands the samples to it.
pub struct ClockSync {
    leader: Addr<Leader>,
    server: Addr<TimeServer>,
    clock: LeaderClockSource,
    interval: Duration,
}

impl ClockSync {
    /// A clock-sync actor for `leader`, whose raw clock is `clock`.
    #[must_use]
    pub fn new(leader: Addr<Leader>, server: Addr<TimeServer>, clock: LeaderClockSource, interval: Duration) -> Self {
        ClockSync { leader, server, clock, interval }
    }

    fn sample(&mut self, ctx: &mut Context<Self>) {
        let t1 = self.clock.now();
        let fut = self.server.send(TimeQuery).into_actor(self).map(move |reply, sync, _| {
            let Ok((t2, t3)) = reply else { return };
            let t4 = sync.clock.now();
            sync.leader.do_send(ClockSample(NtpSample::new(t1, t2, t3, t4)));
        });
        ctx.spawn(fut);
    }
}

impl Actor for ClockSync {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sample(ctx);
        ctx.run_interval(self.interval, |sync, ctx| sync.sample(ctx));
    }
}
