//! The `Supervisor` actor: watches leaders through their heartbeats, declares a leader dead after
//! a bounded silence, computes the new wiring with [`roundtable_topologies`], tells every live
//! leader its new live set, and announces a leader's return when its heartbeats resume.
//!
//! ```text
//!                 Supervisor ── SetLive(live) ──▶ every live Leader
//!                     ▲
//!     Heartbeat (via the transport, so isolation silences it)
//!                     │
//!   Leader L0   Leader L1   Leader L2 …   (restarted by actix `Supervisor` after a crash)
//! ```
//!
//! **Architecture invariant:** the supervisor decides liveness only; the wiring comes from
//! `Topology::rewire`, and catching a returning leader up is the replicas' anti-entropy.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message, MessageResult};
use roundtable_runtime::{LeaderId, LeaderSet, Topology};

use crate::messages::{Fence, LeaderControl, Restart, SetLive};
use crate::trace::{Actor as Who, SupervisorEvent, TraceSink};
use crate::transport::{Heartbeat, Report};

/// When the supervisor checks and how long a silence means death.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// How often liveness is checked (default 50 ms).
    pub check_interval: Duration,
    /// How long without a heartbeat before a leader is declared dead (default 500 ms; leaders
    /// send one every tick).
    pub dead_after: Duration,
    /// Restart a leader this long after it was declared dead (default `None`: restarts are left
    /// to the host application or the fault schedule). A leader that is up — declared dead only
    /// because it was cut off — ignores the restart.
    pub restart_after: Option<Duration>,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            check_interval: Duration::from_millis(50),
            dead_after: Duration::from_millis(500),
            restart_after: None,
        }
    }
}

/// The supervisor actor. Build it through [`crate::Cluster`].
pub struct Supervisor {
    topology: Topology,
    members: LeaderSet,
    live: LeaderSet,
    leaders: BTreeMap<LeaderId, LeaderControl>,
    last_seen: BTreeMap<LeaderId, tokio::time::Instant>,
    config: SupervisorConfig,
    rewires: u64,
    /// When each leader was last fenced for its clock.
    fenced: BTreeMap<LeaderId, tokio::time::Instant>,
    sink: TraceSink,
}

impl Supervisor {
    /// A supervisor of `members`, all live at the start, that controls the `leaders` of this
    /// process (every member, unless the others are hosted by other nodes).
    #[must_use]
    pub(crate) fn new(
        topology: Topology,
        members: LeaderSet,
        leaders: BTreeMap<LeaderId, LeaderControl>,
        config: SupervisorConfig,
        sink: TraceSink,
    ) -> Self {
        let now = tokio::time::Instant::now();
        Supervisor {
            topology,
            members,
            live: members,
            last_seen: members.iter().map(|id| (id, now)).collect(),
            leaders,
            config,
            rewires: 0,
            fenced: BTreeMap::new(),
            sink,
        }
    }

    fn set_live(&mut self, live: LeaderSet) {
        let rewiring = self.topology.rewire(self.live, live);
        self.live = live;
        self.rewires += 1;
        tracing::info!(%live, %rewiring, "rewired");
        self.sink.record(Who::Supervisor, SupervisorEvent::Rewired { live, rewiring });
        for id in live {
            if let Some(leader) = self.leaders.get(&id) {
                leader.set_live.do_send(SetLive(live));
            }
        }
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        let now = tokio::time::Instant::now();
        let mut live = self.live;
        for id in self.live {
            let seen = self.last_seen.get(&id).copied().unwrap_or(now);
            let silence = now.saturating_duration_since(seen);
            if silence > self.config.dead_after {
                tracing::warn!(leader = %id, silence_ms = silence.as_millis() as u64, "declared dead");
                live.remove(id);
                self.sink.record(Who::Supervisor, SupervisorEvent::DeclaredDead { leader: id, silence });
            }
        }
        if live == self.live {
            return;
        }
        if let Some(delay) = self.config.restart_after {
            for id in self.live.difference(live) {
                ctx.run_later(delay, move |sup, _| {
                    if sup.live.contains(id) {
                        return;
                    }
                    if let Some(leader) = sup.leaders.get(&id) {
                        sup.sink.record(Who::Supervisor, SupervisorEvent::Restarting { leader: id });
                        leader.restart.do_send(Restart);
                    }
                });
            }
        }
        self.set_live(live);
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.config.check_interval, |sup, ctx| sup.check(ctx));
    }
}

impl Handler<Heartbeat> for Supervisor {
    type Result = ();
    fn handle(&mut self, hb: Heartbeat, _: &mut Context<Self>) {
        if !self.members.contains(hb.from) {
            return;
        }
        self.last_seen.insert(hb.from, tokio::time::Instant::now());
        if !self.live.contains(hb.from) {
            self.sink.record(Who::Supervisor, SupervisorEvent::Back { leader: hb.from });
            self.set_live(self.live.with(hb.from));
        }
    }
}

impl Handler<Report> for Supervisor {
    type Result = ();
    fn handle(&mut self, report: Report, _: &mut Context<Self>) {
        let roundtable_runtime::Alarm::ClockOffender { leader, ahead_by } = report.alarm else { return };
        let now = tokio::time::Instant::now();
        // One fence per offender per silence window, however many entries reveal it.
        if self.fenced.get(&leader).is_some_and(|at| now.saturating_duration_since(*at) < self.config.dead_after) {
            return;
        }
        self.fenced.insert(leader, now);
        let at = report.from;
        tracing::warn!(%leader, reported_by = %at, ahead_ms = ahead_by.as_millis() as u64, "fencing a leader whose clock runs ahead");
        self.sink.record(Who::Supervisor, SupervisorEvent::Fencing { leader, ahead_by, seen_at: at });
        if let Some(addr) = self.leaders.get(&leader) {
            addr.fence.do_send(Fence);
        }
    }
}

/// Ask the supervisor for the live set and how many rewires it made.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "(LeaderSet, u64)")]
pub struct Liveness;

impl Handler<Liveness> for Supervisor {
    type Result = MessageResult<Liveness>;
    fn handle(&mut self, _: Liveness, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.live, self.rewires))
    }
}
