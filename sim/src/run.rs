//! The outcome of a simulation: its trace, the leaders' final states, the acknowledged writes
//! and what happened to them, and the report a snapshot locks down.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use roundtable_actors::trace::{Actor as Who, Mark, MarkLine, Trace};
use roundtable_actors::{ClusterMetrics, LeaderState};
use roundtable_runtime::clock::HlcTimestamp;
use roundtable_runtime::resolution::{CrdtKind, CrdtUpdate, Keyspaces, Resolution};
use roundtable_runtime::store::Register;
use roundtable_runtime::{Dot, Key, LeaderId, LeaderSet, VersionVector};

/// What the checker needs to know of a run's settings.
#[derive(Debug, Clone)]
pub(crate) struct CheckSettings {
    /// The replicas' `max_offset`.
    pub(crate) max_offset: Duration,
    /// The keyspaces and their resolutions, as the leaders used them.
    pub(crate) keyspaces: Keyspaces,
    /// Whether the leaders were durable and clients' writes acknowledged once synced.
    pub(crate) durable: bool,
    /// The leaders whose disk a fault lost.
    pub(crate) lost_disks: LeaderSet,
}

/// Whether any leader applied a void under `dot` (its origin restarted and gave the dot up).
pub(crate) fn voided_anywhere(states: &[LeaderState], dot: Dot) -> bool {
    states.iter().any(|s| s.voided.contains(&dot))
}

/// Where one write is in force among the marks of a trace. A write is identified by its dot
/// *and* its stamp: a restarted leader issues a dot again when the write it had issued under it
/// died with it (no peer received it), so two writes may share a dot, one after the other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WriteSpan {
    /// The index of its `Write` mark (`None`: the trace does not have it).
    pub(crate) start: Option<usize>,
    /// The index of the mark that ended it: a void of its dot, or another write under its dot.
    pub(crate) end: Option<usize>,
    /// Whether a void ended it.
    pub(crate) voided: bool,
}

impl WriteSpan {
    /// Whether the mark at `index` comes after the write was issued and before it ended, so
    /// that what it says of the write's dot is about this write.
    pub(crate) fn covers(&self, index: usize) -> bool {
        self.start.is_some_and(|s| s < index) && self.end.is_none_or(|e| index < e)
    }
}

/// The span of each write in `writes` (identified by dot and stamp), in the same order. One
/// pass over the marks.
pub(crate) fn write_spans(marks: &[MarkLine], writes: &[(Dot, HlcTimestamp)]) -> Vec<WriteSpan> {
    let mut by_dot: BTreeMap<Dot, Vec<usize>> = BTreeMap::new();
    for (i, (dot, _)) in writes.iter().enumerate() {
        by_dot.entry(*dot).or_default().push(i);
    }
    let mut spans = vec![WriteSpan::default(); writes.len()];
    for (index, line) in marks.iter().enumerate() {
        let (dot, stamp) = match &line.mark {
            Mark::Write { dot, hlc, .. } => (dot, Some(hlc)),
            Mark::Voided { dot } => (dot, None),
            _ => continue,
        };
        for &i in by_dot.get(dot).into_iter().flatten() {
            let span = &mut spans[i];
            match stamp {
                Some(hlc) if *hlc == writes[i].1 && span.start.is_none() => span.start = Some(index),
                Some(hlc) if *hlc == writes[i].1 => {}
                _ if span.start.is_some() && span.end.is_none() => {
                    span.end = Some(index);
                    span.voided = stamp.is_none();
                }
                _ => {}
            }
        }
    }
    spans
}

/// For each acknowledged write, whether every leader that held it (applied it, or adopted a
/// snapshot with it) lost its state afterwards, so that no leader holds it. Only marks within
/// the write's span count: an application of another entry under its dot (issued before or
/// after it) says nothing of it. One pass over the marks.
pub(crate) fn holders_all_lost(marks: &[MarkLine], acked: &[AckedWrite], spans: &[WriteSpan]) -> Vec<bool> {
    debug_assert_eq!(acked.len(), spans.len());
    let mut by_dot: BTreeMap<Dot, Vec<usize>> = BTreeMap::new();
    for (i, a) in acked.iter().enumerate() {
        by_dot.entry(a.dot).or_default().push(i);
    }
    let mut holders = vec![LeaderSet::EMPTY; acked.len()];
    for (index, line) in marks.iter().enumerate() {
        let Who::Leader(id) = line.actor else { continue };
        match &line.mark {
            Mark::Applied { dot, hlc, .. } => {
                for &i in by_dot.get(dot).into_iter().flatten() {
                    if spans[i].covers(index) && acked[i].hlc == *hlc {
                        holders[i] = holders[i].with(id);
                    }
                }
            }
            Mark::SnapshotAdopted { vv, .. } | Mark::Resumed { vv } => {
                for (i, a) in acked.iter().enumerate() {
                    if spans[i].covers(index) && vv.contains(a.dot) {
                        holders[i] = holders[i].with(id);
                    }
                }
            }
            Mark::Crashed | Mark::Restarted | Mark::Rejoined => {
                for (i, h) in holders.iter_mut().enumerate() {
                    if spans[i].covers(index) {
                        *h = h.without(id);
                    }
                }
            }
            _ => {}
        }
    }
    holders.iter().map(|h| h.is_empty()).collect()
}

/// The direction a state-based counter's delta carries its origin's running total in, for an
/// update of a key of `kind`: a delta of an increment holds the origin's total of increments,
/// so a later increment of the same origin subsumes an earlier one (likewise decrements).
/// `None` for every other update: operation-based CRDTs ship each operation alone, and the
/// deltas of sets, registers and maps do not carry earlier writes (a counter map's field would,
/// but the marks do not say which field a write touched).
fn running_total(kind: CrdtKind, update: &CrdtUpdate) -> Option<bool> {
    match (kind, update) {
        (CrdtKind::GCounter | CrdtKind::PnCounter, CrdtUpdate::Increment(_)) => Some(true),
        (CrdtKind::PnCounter, CrdtUpdate::Decrement(_)) => Some(false),
        _ => None,
    }
}

/// For each acknowledged write, whether a later write subsumes it: both are updates of one
/// state-based counter in the same direction, issued by the same origin in the same life (no
/// crash, restart or rejoin between them, so the later delta's running total includes the
/// earlier one), and the later one is held at the end (`unheld` false, its dot not voided or
/// issued again). Such a write counts in the value even when it was lost with its leader: it
/// is merged, not lost.
pub(crate) fn subsumed_by_a_later_write(
    marks: &[MarkLine],
    acked: &[AckedWrite],
    spans: &[WriteSpan],
    unheld: &[bool],
    keyspaces: &Keyspaces,
) -> Vec<bool> {
    debug_assert!(acked.len() == spans.len() && acked.len() == unheld.len());
    // Where each leader's lives end, by mark index.
    let mut breaks: BTreeMap<LeaderId, Vec<usize>> = BTreeMap::new();
    for (index, line) in marks.iter().enumerate() {
        if let (Who::Leader(id), Mark::Crashed | Mark::Restarted | Mark::Rejoined) = (line.actor, &line.mark) {
            breaks.entry(id).or_default().push(index);
        }
    }
    let direction = |a: &AckedWrite| match (keyspaces.keyspace_of(&a.key).1, &a.crdt) {
        (Resolution::Crdt(kind), Some(update)) => running_total(kind, update),
        _ => None,
    };
    let same_life = |origin: LeaderId, from: usize, to: usize| {
        breaks.get(&origin).is_none_or(|b| !b.iter().any(|&i| from < i && i < to))
    };
    acked
        .iter()
        .zip(spans)
        .map(|(a, span)| {
            let (Some(up), Some(start)) = (direction(a), span.start) else { return false };
            acked.iter().zip(spans).zip(unheld).any(|((w, w_span), w_unheld)| {
                let Some(w_start) = w_span.start else { return false };
                w.dot.origin == a.dot.origin
                    && w.key == a.key
                    && w_start > start
                    && direction(w) == Some(up)
                    && same_life(a.dot.origin, start, w_start)
                    && !w_unheld
                    && w_span.end.is_none()
            })
        })
        .collect()
}

/// Where leaders that rejoined discarded writes (stamped by their bad clocks): per dot, the
/// indexes of the marks that say so. Built in one pass over the marks, so that asking about
/// every acknowledged write stays linear.
pub(crate) struct Discards(BTreeMap<Dot, Vec<usize>>);

impl Discards {
    pub(crate) fn of(marks: &[MarkLine]) -> Self {
        let mut by_dot: BTreeMap<Dot, Vec<usize>> = BTreeMap::new();
        for (index, m) in marks.iter().enumerate() {
            if let Mark::Discarded { dots } = &m.mark {
                for dot in dots {
                    by_dot.entry(*dot).or_default().push(index);
                }
            }
        }
        Discards(by_dot)
    }

    /// Whether a rejoining leader discarded the write under `dot` while it was in force.
    pub(crate) fn during(&self, dot: Dot, span: &WriteSpan) -> bool {
        self.0.get(&dot).is_some_and(|at| at.iter().any(|&index| span.covers(index)))
    }
}

/// A last-write-wins register as final states show it: `key=value@dot`, `key=(deleted)@dot`.
pub(crate) fn render_register(key: &Key, register: &Register) -> String {
    match &register.value {
        Some(v) => format!("{}={}@{}", key.as_str(), String::from_utf8_lossy(v.as_bytes()), register.dot),
        None => format!("{}=(deleted)@{}", key.as_str(), register.dot),
    }
}

/// A write a client got an acknowledgement for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedWrite {
    /// The leader that acknowledged it.
    pub leader: LeaderId,
    /// When.
    pub at: Duration,
    /// Its identity.
    pub dot: Dot,
    /// Its timestamp.
    pub hlc: HlcTimestamp,
    /// The key.
    pub key: String,
    /// The value (`None` for a delete, and for an update of a CRDT key).
    pub value: Option<String>,
    /// The update, for a write to a CRDT key.
    pub crdt: Option<CrdtUpdate>,
}

/// The outcome of a simulation: the trace, the leaders' final states and a report.
#[derive(Debug, Clone)]
pub struct SimRun {
    /// The scenario's setup, rendered (seed, leaders, topology, network, clocks, keyspaces,
    /// settings that differ from the defaults).
    pub(crate) setup: String,
    pub(crate) check_settings: CheckSettings,
    pub(crate) seed: u64,
    pub(crate) trace: Trace,
    /// The trace's marks (its view for the checker), computed once.
    pub(crate) marks: Vec<MarkLine>,
    pub(crate) states: Vec<LeaderState>,
    pub(crate) live: LeaderSet,
    pub(crate) metrics: ClusterMetrics,
    pub(crate) acked: Vec<AckedWrite>,
    pub(crate) lost_with_leader: Vec<AckedWrite>,
    /// Acknowledged writes lost with their leaders whose effect a later write of the same
    /// origin carries (a state-based counter's running total): merged, not lost.
    pub(crate) merged_into_later: Vec<AckedWrite>,
    pub(crate) settled_at: Option<Duration>,
    pub(crate) last_fault: Option<Duration>,
}

impl SimRun {
    /// The scenario's setup as [`SimRun::render`] opens with it: seed, leaders, topology,
    /// network, clocks, keyspaces and the settings that differ from the defaults.
    #[must_use]
    pub fn setup(&self) -> &str {
        &self.setup
    }

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
    /// in-memory leader can have. A counter update whose origin's running total a later,
    /// surviving write of the same origin carries is not among them (see
    /// [`SimRun::merged_into_later`]).
    #[must_use]
    pub fn lost_with_leader(&self) -> &[AckedWrite] {
        &self.lost_with_leader
    }

    /// Acknowledged updates of a state-based counter that every holder lost, but that a later
    /// update of the same counter by the same origin (in the same life, in the same direction)
    /// subsumes: its delta carries the origin's running total, so they count in the value.
    #[must_use]
    pub fn merged_into_later(&self) -> &[AckedWrite] {
        &self.merged_into_later
    }

    /// When the cluster settled (`None`: it did not within the run's limit).
    #[must_use]
    pub fn settled_at(&self) -> Option<Duration> {
        self.settled_at
    }

    /// The setup, the trace, then a summary: final state per leader and the run's counters.
    /// This is what snapshot tests lock down.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::from("--- setup\n");
        out.push_str(&self.setup);
        out.push_str("--- trace\n");
        out.push_str(&self.trace.render());
        let _ = writeln!(out, "--- final state");
        for s in &self.states {
            let state = if !s.up {
                "down".to_owned()
            } else {
                let kv: Vec<String> = s.store.iter().map(|(k, register)| render_register(k, register)).collect();
                let resolved = s.resolved.iter().map(|(k, v)| format!("{}={v}", k.as_str()));
                let all: Vec<String> = kv.into_iter().chain(resolved).collect();
                format!("{} {}", s.applied, all.join(" "))
            };
            let _ = writeln!(out, "{} {state}", s.name);
        }
        if self.states.iter().any(|s| !s.quarantined.is_empty()) {
            let _ = writeln!(out, "--- quarantined (refused for their timestamps, never applied there)");
            for s in &self.states {
                for q in &s.quarantined {
                    let _ = writeln!(out, "{} {} {:?} from {}: {}", s.name, q.dot, q.key, q.from, q.reason);
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

#[cfg(test)]
mod tests {
    use super::*;
    use roundtable_actors::trace::Vv;
    use roundtable_runtime::{LeaderId, Seq};

    fn leader(i: usize) -> LeaderId {
        LeaderId::new(i).expect("id")
    }

    fn write(dot: Dot, hlc: HlcTimestamp, key: &str) -> AckedWrite {
        AckedWrite {
            leader: leader(0),
            at: Duration::ZERO,
            dot,
            hlc,
            key: key.into(),
            value: Some("v".into()),
            crdt: None,
        }
    }

    /// L0 issues L0:1 (`old`), crashes and restarts, then issues L0:1 again (`new`); `new`
    /// reaches the leaders in `new_at`, then L0 crashes again.
    fn reuse_then_crash(new_at: &[usize]) -> Vec<bool> {
        let dot = Dot::new(leader(0), Seq(1));
        let (old, new) =
            (HlcTimestamp::new(1, 0, leader(0)).expect("hlc"), HlcTimestamp::new(9, 0, leader(0)).expect("hlc"));
        let at = |i: usize, mark: Mark| MarkLine { at: Duration::ZERO, actor: Who::Leader(leader(i)), mark };
        let applied = |hlc| Mark::Applied { dot, hlc, deps: Vv::default() };
        let mut marks = vec![
            at(0, Mark::Write { dot, key: "k".into(), hlc: old }),
            at(0, applied(old)),
            at(0, Mark::Crashed),
            at(0, Mark::Restarted),
            at(0, Mark::Write { dot, key: "k".into(), hlc: new }),
        ];
        marks.extend(new_at.iter().map(|&i| at(i, applied(new))));
        marks.push(at(0, Mark::Crashed));
        let acked = [write(dot, old, "k"), write(dot, new, "k")];
        let spans = write_spans(&marks, &[(dot, old), (dot, new)]);
        holders_all_lost(&marks, &acked, &spans)
    }

    #[test]
    fn a_write_under_a_reused_dot_held_by_a_live_peer_is_not_lost_with_its_leader() {
        assert_eq!(reuse_then_crash(&[0, 1]), vec![true, false]);
    }

    #[test]
    fn a_write_under_a_reused_dot_held_only_by_its_crashed_origin_is_lost_with_it() {
        assert_eq!(reuse_then_crash(&[0]), vec![true, true]);
    }
}
