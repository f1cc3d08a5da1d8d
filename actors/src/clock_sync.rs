//! Clock synchronisation: one clock-sync actor per leader samples a time reference the way an
//! NTP client samples a server.
//!
//! Every `interval` the clock-sync actor reads its leader's *raw* physical clock (`t1`), asks the
//! reference, which stamps the request's arrival and the reply's departure by its time (`t2`,
//! `t3`), and reads the raw clock again when the reply arrives (`t4`). The four timestamps go to
//! the leader as an [`NtpSample`]; the replica's corrector computes offset and delay (RFC 5905)
//! and slews or steps its clock. The reference is anything that answers a [`TimeQuery`]: the
//! simulated time server of `roundtable-sim` (true time, seeded asymmetric delays), or, in a
//! later step, an SNTP client of real NTP servers.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Message, Recipient, WrapFuture};
use roundtable_runtime::clock::{NtpSample, PhysicalClock};
use roundtable_runtime::WallTime;

use crate::clock::LeaderClockSource;

/// "What time is it?" Answered with the server's receive and transmit times (`t2`, `t3`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "(WallTime, WallTime)")]
pub struct TimeQuery;

/// A clock sample for a leader's replica.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ClockSample(pub NtpSample);

/// Samples the time reference for one leader and hands the samples to it.
pub struct ClockSync {
    leader: Recipient<ClockSample>,
    server: Recipient<TimeQuery>,
    clock: LeaderClockSource,
    interval: Duration,
}

impl ClockSync {
    /// A clock-sync actor for `leader`, whose raw clock is `clock`, sampling `server`.
    #[must_use]
    pub(crate) fn new(
        leader: Recipient<ClockSample>,
        server: Recipient<TimeQuery>,
        clock: LeaderClockSource,
        interval: Duration,
    ) -> Self {
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

/// Something that can start a time reference inside the current actix system: the cluster
/// starts it after its leaders and gives every leader's clock-sync actor its recipient.
pub trait TimeReference: Send + Sync {
    /// Starts the reference and returns where to send queries.
    fn start(&self) -> Recipient<TimeQuery>;
}
