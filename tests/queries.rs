//! Typed queries over a run's trace, shared by the scenario tests: they ask the records what
//! happened (a write's dot and stamp, an entry's path, the supervisor's rewiring), never the
//! rendered text, so a change to how a line reads cannot make an assertion pass or fail.
//!
//! The predicates (`wrote`, `received`, …) take a [`Record`] and suit [`Trace::position`],
//! [`Trace::count`] and [`Trace::in_order`].
#![allow(dead_code)]

use roundtable::actors::trace::{Actor, Event, LeaderEvent, NetworkEvent, Record, SupervisorEvent};
use roundtable::actors::Trace;
use roundtable::prelude::{Cluster, HlcTimestamp};
use roundtable::runtime::topologies::Rewiring;
use roundtable::runtime::{Dot, LeaderId, LeaderSet, Seq, TraceEvent};

/// Leader `i`.
pub(crate) fn id(i: usize) -> LeaderId {
    LeaderId::new(i).expect("a valid leader id")
}

/// The dot `L{leader}:{seq}`.
pub(crate) fn dot(leader: usize, seq: u64) -> Dot {
    Dot::new(id(leader), Seq(seq))
}

/// The leaders `ids`.
pub(crate) fn set(ids: &[usize]) -> LeaderSet {
    ids.iter().map(|&i| id(i)).collect()
}

/// Leader `leader` accepted the client write `dot`.
pub(crate) fn wrote(leader: usize, d: Dot) -> impl Fn(&Record) -> bool {
    move |r| matches!(r.replica(id(leader)), Some(TraceEvent::WriteAccepted { dot, .. }) if *dot == d)
}

/// The first copy of `d` reached `leader` (from `from`, when given).
pub(crate) fn received(leader: usize, d: Dot, from: Option<usize>) -> impl Fn(&Record) -> bool {
    move |r| {
        matches!(r.replica(id(leader)), Some(TraceEvent::Received { dot, from: f, .. })
            if *dot == d && from.is_none_or(|from| *f == id(from)))
    }
}

/// `leader` applied `d`.
pub(crate) fn applied(leader: usize, d: Dot) -> impl Fn(&Record) -> bool {
    move |r| matches!(r.replica(id(leader)), Some(TraceEvent::Applied { dot, .. }) if *dot == d)
}

/// `leader` parked `d` in its causal buffer, waiting for `missing`.
pub(crate) fn waited(leader: usize, d: Dot, missing: &[Dot]) -> impl Fn(&Record) -> bool {
    let missing = missing.to_vec();
    move |r| matches!(r.replica(id(leader)), Some(TraceEvent::CausalWait { dot, missing: m }) if *dot == d && *m == missing)
}

/// `leader` sent exactly `dots`, along the topology (not a catch-up), to `to`.
pub(crate) fn sent(leader: usize, to: usize, dots: &[Dot]) -> impl Fn(&Record) -> bool {
    let dots = dots.to_vec();
    move |r| {
        matches!(r.replica(id(leader)), Some(TraceEvent::Sent { to: t, dots: d, catch_up: false })
            if *t == id(to) && *d == dots)
    }
}

/// `leader` finished catching up after a restart.
pub(crate) fn caught_up(leader: usize) -> impl Fn(&Record) -> bool {
    move |r| matches!(r.replica(id(leader)), Some(TraceEvent::CaughtUp { .. }))
}

/// `leader` rejoined after the cluster fenced it.
pub(crate) fn rejoining(leader: usize) -> impl Fn(&Record) -> bool {
    move |r| matches!(r.replica(id(leader)), Some(TraceEvent::Rejoining))
}

/// `leader` refuses writes until its clock is synchronised.
pub(crate) fn fenced_by_cluster(leader: usize) -> impl Fn(&Record) -> bool {
    move |r| matches!(r.replica(id(leader)), Some(TraceEvent::FencedByCluster))
}

/// `leader`'s shell restarted it with empty state.
pub(crate) fn restarted(leader: usize) -> impl Fn(&Record) -> bool {
    move |r| r.actor == Actor::Leader(id(leader)) && r.event == Event::Leader(LeaderEvent::Restarted)
}

/// The supervisor declared `leader` dead.
pub(crate) fn declared_dead(leader: usize) -> impl Fn(&Record) -> bool {
    move |r| matches!(&r.event, Event::Supervisor(SupervisorEvent::DeclaredDead { leader: l, .. }) if *l == id(leader))
}

/// The supervisor fenced `leader` for timestamps at least `ahead_secs` ahead.
pub(crate) fn fencing(leader: usize, ahead_secs: u64) -> impl Fn(&Record) -> bool {
    move |r| {
        matches!(&r.event, Event::Supervisor(SupervisorEvent::Fencing { leader: l, ahead_by, .. })
            if *l == id(leader) && ahead_by.as_secs() >= ahead_secs)
    }
}

/// The supervisor rewired the topology for the live set `live`.
pub(crate) fn rewired(live: &[usize]) -> impl Fn(&Record) -> bool {
    let live = set(live);
    move |r| matches!(&r.event, Event::Supervisor(SupervisorEvent::Rewired { live: l, .. }) if *l == live)
}

/// Every rewiring the supervisor made, in order.
pub(crate) fn rewirings(trace: &Trace) -> Vec<&Rewiring> {
    trace
        .records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Supervisor(SupervisorEvent::Rewired { rewiring, .. }) => Some(rewiring),
            _ => None,
        })
        .collect()
}

/// The network lost a message of `kind` from `from` to `to` to a partition.
pub(crate) fn lost_to_partition(kind: &str, from: usize, to: usize) -> impl Fn(&Record) -> bool + '_ {
    move |r| {
        matches!(&r.event, Event::Network(NetworkEvent::Lost { message, why: roundtable::actors::trace::Loss::Partitioned })
            if message.kind == kind && message.from == id(from) && message.to == id(to))
    }
}

/// The network healed every partition.
pub(crate) fn healed_all(r: &Record) -> bool {
    r.event == Event::Network(NetworkEvent::HealedAll)
}

/// The HLC timestamp `leader` stamped its write `d` with.
pub(crate) fn stamp(trace: &Trace, d: Dot) -> HlcTimestamp {
    trace
        .replica_events(d.origin)
        .find_map(|e| match e {
            TraceEvent::WriteAccepted { dot, hlc, .. } if *dot == d => Some(*hlc),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no write {d} in the trace"))
}

/// How long after the simulation's epoch (2026-01-01T00:00:00Z) the write `d` was stamped, in
/// milliseconds: the stamp's physical part, which a skewed clock moves.
pub(crate) fn stamp_ms(trace: &Trace, d: Dot) -> u64 {
    let wall = stamp(trace, d).wall_time();
    let since = wall.saturating_duration_since(Cluster::simulation_epoch());
    u64::try_from(since.as_millis()).expect("within u64 milliseconds")
}

/// One leader's applications, in order.
pub(crate) fn applies(trace: &Trace, leader: usize) -> Vec<Dot> {
    trace
        .replica_events(id(leader))
        .filter_map(|e| match e {
            TraceEvent::Applied { dot, .. } => Some(*dot),
            _ => None,
        })
        .collect()
}

/// One send of entries, as the sender's replica recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    /// The sender.
    pub(crate) from: LeaderId,
    /// The receiver.
    pub(crate) to: LeaderId,
    /// The entries, in order.
    pub(crate) dots: Vec<Dot>,
    /// Whether it answered a digest rather than followed the topology.
    pub(crate) catch_up: bool,
}

/// Every send and catch-up, in order.
pub(crate) fn sends(trace: &Trace) -> Vec<Sent> {
    trace
        .leader_events()
        .filter_map(|(from, e)| match e {
            TraceEvent::Sent { to, dots, catch_up } => {
                Some(Sent { from, to: *to, dots: dots.clone(), catch_up: *catch_up })
            }
            _ => None,
        })
        .collect()
}

/// `leader`'s last-write-wins decision on `key`: kept `kept`, discarded `discarded`.
pub(crate) fn lww(leader: usize, key: &str, kept: Dot, discarded: Dot) -> impl Fn(&Record) -> bool + '_ {
    move |r| {
        matches!(r.replica(id(leader)), Some(TraceEvent::LwwDiscarded { key: k, kept: kp, discarded: d, .. })
            if k.as_str() == key && *kp == kept && *d == discarded)
    }
}

/// `leader` holds `dots` as the siblings of `key`.
pub(crate) fn siblings<'a>(leader: usize, key: &'a str, dots: &'a [Dot]) -> impl Fn(&Record) -> bool + 'a {
    move |r| {
        matches!(r.replica(id(leader)), Some(TraceEvent::Siblings { key: k, dots: d, .. })
            if k.as_str() == key && d.as_slice() == dots)
    }
}
