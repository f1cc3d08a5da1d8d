//! The outcome of a simulation: its trace, the leaders' final states, the acknowledged writes
//! and what happened to them, and the report a snapshot locks down.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use roundtable_actors::trace::{Actor as Who, Mark, Trace};
use roundtable_actors::{ClusterMetrics, LeaderState};
use roundtable_runtime::resolution::Keyspaces;
use roundtable_runtime::{LeaderSet, VersionVector};

/// What the checker needs to know of a run's settings.
#[derive(Debug, Clone)]
pub(crate) struct CheckSettings {
    /// The replicas' `max_offset`.
    pub(crate) max_offset: Duration,
    /// The keyspaces and their resolutions, as the leaders used them.
    pub(crate) keyspaces: Keyspaces,
}

/// Whether any leader applied a void under `dot` (its origin restarted and gave the dot up).
pub(crate) fn voided_anywhere(states: &[LeaderState], dot: roundtable_runtime::Dot) -> bool {
    states.iter().any(|s| s.voided.contains(&dot))
}

/// For each acknowledged write, whether every leader that held it (applied it, or adopted a
/// snapshot with it) lost its state afterwards, so that no leader holds it. One pass over the
/// marks.
pub(crate) fn holders_all_lost(trace: &Trace, acked: &[AckedWrite]) -> Vec<bool> {
    let mut by_dot: BTreeMap<roundtable_runtime::Dot, Vec<usize>> = BTreeMap::new();
    for (i, a) in acked.iter().enumerate() {
        by_dot.entry(a.dot).or_default().push(i);
    }
    let mut holders = vec![LeaderSet::EMPTY; acked.len()];
    // Past its dot being issued again, or voided: what follows is about another entry.
    let mut done = vec![false; acked.len()];
    for line in &trace.marks {
        let Who::Leader(id) = line.actor else { continue };
        match &line.mark {
            Mark::Write { dot, hlc, .. } => {
                for &i in by_dot.get(dot).into_iter().flatten() {
                    done[i] |= acked[i].hlc != *hlc;
                }
            }
            Mark::Voided { dot } => {
                for &i in by_dot.get(dot).into_iter().flatten() {
                    done[i] = true;
                }
            }
            Mark::Applied { dot, .. } => {
                for &i in by_dot.get(dot).into_iter().flatten() {
                    if !done[i] {
                        holders[i] = holders[i].with(id);
                    }
                }
            }
            Mark::SnapshotAdopted { vv, .. } => {
                for (i, a) in acked.iter().enumerate() {
                    if !done[i] && vv.contains(a.dot) {
                        holders[i] = holders[i].with(id);
                    }
                }
            }
            Mark::Crashed | Mark::Restarted | Mark::Rejoined => {
                for (i, h) in holders.iter_mut().enumerate() {
                    if !done[i] {
                        *h = h.without(id);
                    }
                }
            }
            _ => {}
        }
    }
    holders.iter().map(|h| h.is_empty()).collect()
}

/// Every stamp given to each dot (more than one: a leader restarted and issued a dot again
/// that no peer held).
fn stamps_by_dot(trace: &Trace) -> BTreeMap<roundtable_runtime::Dot, Vec<roundtable_runtime::clock::HlcTimestamp>> {
    let mut stamps: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for m in &trace.marks {
        if let Mark::Write { dot, hlc, .. } = &m.mark {
            stamps.entry(*dot).or_default().push(*hlc);
        }
    }
    stamps
}

/// A write a client got an acknowledgement for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedWrite {
    /// The leader that acknowledged it.
    pub leader: usize,
    /// When.
    pub at: Duration,
    /// Its identity.
    pub dot: roundtable_runtime::Dot,
    /// Its timestamp.
    pub hlc: roundtable_runtime::clock::HlcTimestamp,
    /// The key.
    pub key: String,
    /// The value (`None` for a delete).
    pub value: Option<String>,
}

/// The outcome of a simulation: the trace, the leaders' final states and a report.
#[derive(Debug, Clone)]
pub struct SimRun {
    pub(crate) check_settings: CheckSettings,
    pub(crate) seed: u64,
    pub(crate) trace: Trace,
    pub(crate) states: Vec<LeaderState>,
    pub(crate) live: LeaderSet,
    pub(crate) metrics: ClusterMetrics,
    pub(crate) acked: Vec<AckedWrite>,
    pub(crate) lost_with_leader: Vec<AckedWrite>,
    pub(crate) settled_at: Option<Duration>,
    pub(crate) last_fault: Option<Duration>,
}

impl SimRun {
    /// The seed that reproduces this run.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The trace.
    #[must_use]
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Each leader's final state, in id order.
    #[must_use]
    pub fn states(&self) -> &[LeaderState] {
        &self.states
    }

    /// The leaders the supervisor considered live at the end.
    #[must_use]
    pub fn live(&self) -> LeaderSet {
        self.live
    }

    /// Counters of the run.
    #[must_use]
    pub fn metrics(&self) -> &ClusterMetrics {
        &self.metrics
    }

    /// Writes acknowledged to clients.
    #[must_use]
    pub fn acked(&self) -> &[AckedWrite] {
        &self.acked
    }

    /// Acknowledged writes whose leader crashed before passing them on: the only loss an
    /// in-memory leader can have.
    #[must_use]
    pub fn lost_with_leader(&self) -> &[AckedWrite] {
        &self.lost_with_leader
    }

    /// When the cluster settled (`None`: it did not within the run's limit).
    #[must_use]
    pub fn settled_at(&self) -> Option<Duration> {
        self.settled_at
    }

    /// Checks convergence: the run settled, every live leader that is up holds the same state,
    /// and every acknowledged write is applied there — except those lost with their leader.
    /// Panics with the seed and what differs otherwise.
    pub fn assert_converged(&self) {
        if let Err(why) = self.check_converged() {
            panic!("seed {}: not converged: {why}\n{}", self.seed, self.render());
        }
    }

    /// Like [`SimRun::assert_converged`], as a `Result`.
    pub fn check_converged(&self) -> Result<(), String> {
        if self.settled_at.is_none() {
            return Err("the cluster did not settle".into());
        }
        let live: Vec<&LeaderState> = self.states.iter().filter(|s| s.up && self.live.contains(s.id)).collect();
        let Some(first) = live.first() else { return Err("no live leader".into()) };
        for s in &live[1..] {
            if s.applied != first.applied || s.digest != first.digest {
                return Err(format!("{} ({}) and {} ({}) differ", first.name, first.applied, s.name, s.applied));
            }
        }
        let stamps = stamps_by_dot(&self.trace);
        let reissued = |a: &AckedWrite| stamps.get(&a.dot).is_some_and(|s| s.iter().any(|h| *h != a.hlc));
        for a in &self.acked {
            let held = first.applied.contains(a.dot) && !voided_anywhere(&self.states, a.dot) && !reissued(a);
            // A write refused everywhere for its timestamp is reported, not lost silently.
            let quarantined = live.iter().any(|s| s.quarantined.iter().any(|(d, _)| *d == a.dot));
            if !held && !quarantined && !self.lost_with_leader.contains(a) {
                return Err(format!("acknowledged write {} ({:?}) is missing", a.dot, a.key));
            }
        }
        Ok(())
    }

    /// The trace, then a summary: final state per leader and the run's counters. This is what
    /// snapshot tests lock down.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = self.trace.render();
        let _ = writeln!(out, "--- final state");
        for s in &self.states {
            let state = if !s.up {
                "down".to_owned()
            } else {
                let kv: Vec<String> = s
                    .store
                    .iter()
                    .map(|(k, v, dot)| match v {
                        Some(v) => format!("{k}={}@{dot}", String::from_utf8_lossy(v)),
                        None => format!("{k}=(deleted)@{dot}"),
                    })
                    .collect();
                let resolved = s.resolved.iter().map(|(k, v)| format!("{k}={v}"));
                let all: Vec<String> = kv.into_iter().chain(resolved).collect();
                format!("{} {}", s.applied, all.join(" "))
            };
            let _ = writeln!(out, "{} {state}", s.name);
        }
        if self.states.iter().any(|s| !s.quarantined.is_empty()) {
            let _ = writeln!(out, "--- quarantined (refused for their timestamps, never applied there)");
            for s in &self.states {
                for (dot, why) in &s.quarantined {
                    let _ = writeln!(out, "{} {dot} {why}", s.name);
                }
            }
        }
        let _ = writeln!(out, "--- report");
        out.push_str(&self.report());
        out
    }

    /// The run's report: messages and bytes by kind, acknowledged and lost writes, duplicates
    /// dropped, causal waits, last-write-wins discards, rejections, rewires, network losses,
    /// and the time the cluster took to converge after the last fault.
    #[must_use]
    pub fn report(&self) -> String {
        let mut out = String::new();
        let m = &self.metrics;
        for (kind, k) in &m.network.by_kind {
            let _ = writeln!(out, "{kind}: {} messages, {} bytes", k.messages, k.bytes);
        }
        let _ = writeln!(
            out,
            "writes acked {}, lost with their leader {}, duplicates dropped {}, causal waits {}, lww discarded {}, rejected {}, rewires {}, network lost {} duplicated {}",
            self.acked.len(),
            self.lost_with_leader.len(),
            m.duplicates_dropped,
            m.causal_waits,
            m.lww_discarded,
            m.rejected,
            m.rewires,
            m.network.dropped,
            m.network.duplicated,
        );
        if let (Some(settled), Some(fault)) = (self.settled_at, self.last_fault) {
            let _ = writeln!(out, "converged {}ms after the last fault", settled.saturating_sub(fault).as_millis());
        }
        out
    }

    /// The version vector the live leaders agree on (empty if none is live).
    #[must_use]
    pub fn converged_vv(&self) -> VersionVector {
        self.states.iter().find(|s| s.up && self.live.contains(s.id)).map(|s| s.applied.clone()).unwrap_or_default()
    }
}
