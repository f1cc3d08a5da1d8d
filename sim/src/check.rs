//! The invariant checker: reads a finished simulation — its final states, its acknowledged
//! writes and the structured marks of its trace — and says which of the replication guarantees
//! held, which did not, and where.
//!
//! | invariant | what is checked |
//! |---|---|
//! | [`Invariant::Convergence`] | the run settled, and every live leader holds the same writes and, keyspace by keyspace, the same values |
//! | [`Invariant::NoLostWrite`] | each acknowledged write is visible, superseded (by a later last-write-wins winner, or a write that saw it), merged into a CRDT value (also when lost with its leader but carried by a later counter delta of the same origin) or a sibling set, or was quarantined and reported; a write acknowledged only by a leader that crashed before passing it on is listed apart, as lost with its leader |
//! | [`Invariant::CausalOrder`] | no leader applied an entry before the entries it depends on |
//! | [`Invariant::ExactlyOnce`] | no leader applied an entry twice (a restart or a rejoin starts a leader afresh) |
//! | [`Invariant::Clocks`] | no leader merged a timestamp more than `max_offset` ahead of its corrected clock into its HLC, and every timestamp a leader issued exceeds every one it issued or merged before (within one life of the leader) |
//!
//! ```
//! use roundtable_sim::{ms, Simulation};
//! use roundtable_sim::NetworkModel;
//!
//! let run = Simulation::new(3)
//!     .leaders(3)
//!     .network(NetworkModel::wan().drop_rate(0.1).duplicate_rate(0.1))
//!     .workload(|w| w.puts_per_leader(4))
//!     .crash_at(ms(25), "L1")
//!     .restart_at(ms(400), "L1")
//!     .run();
//! let report = run.check();
//! assert!(report.passed(), "{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use roundtable_runtime::clock::HlcTimestamp;
use roundtable_runtime::store::Register;
use roundtable_runtime::{Dot, Key, LeaderId, Resolved, VersionVector};

use roundtable_actors::trace::{Actor, Mark};
use roundtable_actors::LeaderState;
use roundtable_runtime::resolution::Resolution;

use crate::run::{voided_anywhere, write_spans, AckedWrite, CheckSettings, Discards, SimRun, WriteSpan};

/// A replication guarantee the checker verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Live leaders hold equal state after the cluster settles.
    Convergence,
    /// No acknowledged write is lost (except with its leader).
    NoLostWrite,
    /// No entry applied before its dependencies.
    CausalOrder,
    /// No entry applied twice at a leader.
    ExactlyOnce,
    /// HLCs within `max_offset` and monotonic.
    Clocks,
    /// The checker saw only part of the run (the trace hit its bound): nothing it says is
    /// complete.
    CompleteTrace,
}

impl Invariant {
    /// Every invariant, in report order.
    pub const ALL: [Invariant; 6] = [
        Invariant::Convergence,
        Invariant::NoLostWrite,
        Invariant::CausalOrder,
        Invariant::ExactlyOnce,
        Invariant::Clocks,
        Invariant::CompleteTrace,
    ];

    /// Its name in reports (`convergence`, `no-lost-write`, …).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Invariant::Convergence => "convergence",
            Invariant::NoLostWrite => "no-lost-write",
            Invariant::CausalOrder => "causal-order",
            Invariant::ExactlyOnce => "exactly-once",
            Invariant::Clocks => "clocks",
            Invariant::CompleteTrace => "complete-trace",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken guarantee, with where and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which guarantee.
    pub invariant: Invariant,
    /// When (simulated time since the start), if it happened at one moment.
    pub at: Option<Duration>,
    /// What exactly, in words.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "{} at {}ms: {}", self.invariant, at.as_millis(), self.detail),
            None => write!(f, "{}: {}", self.invariant, self.detail),
        }
    }
}

/// What became of an acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WriteFate {
    /// Its value is what the live leaders hold under its key.
    Visible,
    /// A write that wins over it under last-write-wins, or one that saw it, replaced it.
    Superseded,
    /// It is part of a CRDT value: every live leader applied it, or (a state-based counter's
    /// update lost with its leaders) a later update of the same counter by the same origin,
    /// which every live leader applied, carries it in its running total.
    Merged,
    /// It is one of the key's siblings.
    Sibling,
    /// It was refused for its timestamp (its leader's clock ran ahead) and is reported in the
    /// quarantine of the leaders that refused it.
    Quarantined,
    /// Its leader acknowledged it and every leader that held it lost its in-memory state (it
    /// crashed before passing the write on, or every holder crashed or rejoined).
    LostWithLeader,
    /// None of the above: a violation.
    Lost,
}

impl WriteFate {
    /// Its name in reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            WriteFate::Visible => "visible",
            WriteFate::Superseded => "superseded",
            WriteFate::Merged => "merged",
            WriteFate::Sibling => "sibling",
            WriteFate::Quarantined => "quarantined",
            WriteFate::LostWithLeader => "lost with its leader",
            WriteFate::Lost => "lost",
        }
    }
}

/// The checker's verdict on one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Every broken guarantee found, in the order found (by invariant, then time).
    pub violations: Vec<Violation>,
    /// How many acknowledged writes met each fate.
    pub fates: BTreeMap<WriteFate, usize>,
    /// Acknowledged writes lost with their leader (listed, not violations).
    pub lost_with_leader: Vec<AckedWrite>,
    /// Entries applied, over all leaders (what the causal and exactly-once checks covered).
    pub applications_checked: usize,
    /// Timestamps checked against `max_offset` and monotonicity.
    pub timestamps_checked: usize,
}

impl CheckReport {
    /// Whether every guarantee held.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The first violation of `invariant`, if any.
    #[must_use]
    pub fn first(&self, invariant: Invariant) -> Option<&Violation> {
        self.violations.iter().find(|v| v.invariant == invariant)
    }

    /// The invariants that were violated, in report order, without repeats.
    #[must_use]
    pub fn violated(&self) -> Vec<Invariant> {
        let set: BTreeSet<Invariant> = self.violations.iter().map(|v| v.invariant).collect();
        set.into_iter().collect()
    }
}

/// The most violations of one invariant listed in a report (the count is still given).
const LISTED_PER_INVARIANT: usize = 5;

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for invariant in Invariant::ALL {
            let found: Vec<&Violation> = self.violations.iter().filter(|v| v.invariant == invariant).collect();
            if found.is_empty() {
                if invariant != Invariant::CompleteTrace {
                    writeln!(f, "ok       {invariant}")?;
                }
                continue;
            }
            writeln!(f, "VIOLATED {invariant} ({} times)", found.len())?;
            for v in found.iter().take(LISTED_PER_INVARIANT) {
                writeln!(f, "  {v}")?;
            }
            if found.len() > LISTED_PER_INVARIANT {
                writeln!(f, "  … and {} more", found.len() - LISTED_PER_INVARIANT)?;
            }
        }
        let fates: Vec<String> = self.fates.iter().map(|(fate, n)| format!("{n} {}", fate.name())).collect();
        writeln!(f, "acknowledged writes: {}", if fates.is_empty() { "none".to_owned() } else { fates.join(", ") })?;
        for a in &self.lost_with_leader {
            writeln!(
                f,
                "  lost with its leaders: {} {:?} (acknowledged at {}ms; every leader that held it lost its state)",
                a.dot,
                a.key,
                a.at.as_millis()
            )?;
        }
        write!(f, "checked {} applications and {} timestamps", self.applications_checked, self.timestamps_checked)
    }
}

impl SimRun {
    /// Runs the invariant checker over this run.
    #[must_use]
    pub fn check(&self) -> CheckReport {
        check(self, &self.check_settings)
    }

    /// Runs the whole checker (convergence, no lost write, causal order, exactly-once, clocks)
    /// and panics, with the seed, the checker's report and the rendered run, if any guarantee
    /// was broken.
    pub fn assert_converged(&self) {
        let report = self.check();
        if !report.passed() {
            panic!("seed {}: the checker found violations:\n{report}\n{}", self.seed(), self.render());
        }
    }

    /// Like [`SimRun::assert_converged`], as a `Result`: the checker's report when it found a
    /// violation.
    pub fn check_converged(&self) -> Result<(), String> {
        let report = self.check();
        if report.passed() {
            Ok(())
        } else {
            Err(format!("seed {}: {report}", self.seed()))
        }
    }
}

/// Checks every invariant of `run`.
pub(crate) fn check(run: &SimRun, settings: &CheckSettings) -> CheckReport {
    let mut report = CheckReport::default();
    if run.trace().cut.is_some() {
        report.violations.push(Violation {
            invariant: Invariant::CompleteTrace,
            at: None,
            detail: "the trace reached its bound: the checks below saw only the start of the run".into(),
        });
    }
    check_convergence(run, settings, &mut report);
    let writes = check_marks(run, settings, &mut report);
    check_acknowledged(run, settings, &writes, &mut report);
    report.violations.sort_by_key(|v| v.invariant);
    report
}

fn live_states(run: &SimRun) -> Vec<&LeaderState> {
    run.states().iter().filter(|s| s.up && run.live().contains(s.id)).collect()
}

/// What a leader holds under one key: a last-write-wins register, or what a reader of a
/// siblings or CRDT key sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held<'a> {
    Register(&'a Register),
    Resolved(&'a Resolved),
}

impl fmt::Display for Held<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Held::Register(r) => match &r.value {
                Some(v) => write!(f, "{}@{} (stamped {})", String::from_utf8_lossy(v.as_bytes()), r.dot, r.hlc),
                None => write!(f, "(deleted)@{} (stamped {})", r.dot, r.hlc),
            },
            Held::Resolved(v) => write!(f, "{v}"),
        }
    }
}

/// A leader's state by keyspace, key by key.
fn keyspace_view<'a>(
    state: &'a LeaderState,
    settings: &'a CheckSettings,
) -> BTreeMap<Option<&'a str>, BTreeMap<&'a Key, Held<'a>>> {
    let mut out: BTreeMap<Option<&str>, BTreeMap<&Key, Held<'a>>> = BTreeMap::new();
    let held = state.store.iter().map(|(k, r)| (k, Held::Register(r)));
    for (key, value) in held.chain(state.resolved.iter().map(|(k, v)| (k, Held::Resolved(v)))) {
        out.entry(settings.keyspaces.keyspace_of(key.as_str()).0).or_default().insert(key, value);
    }
    out
}

fn check_convergence(run: &SimRun, settings: &CheckSettings, report: &mut CheckReport) {
    let mut fail = |detail: String| {
        report.violations.push(Violation { invariant: Invariant::Convergence, at: None, detail });
    };
    if run.settled_at().is_none() {
        let mut why: Vec<String> = Vec::new();
        for s in run.states() {
            if !s.up {
                continue;
            }
            if s.recovering {
                why.push(format!("{} is still catching up after a restart", s.name));
            }
            if s.waiting > 0 {
                why.push(format!("{} has {} entries waiting for their dependencies", s.name, s.waiting));
            }
            if !run.live().contains(s.id) {
                why.push(format!("{} is up but not live", s.name));
            }
        }
        if why.is_empty() {
            why.push("messages kept flowing or states kept changing".into());
        }
        fail(format!("the cluster did not settle before the run's time limit: {}", why.join("; ")));
    }
    let live = live_states(run);
    let Some(first) = live.first() else {
        fail("no leader is live at the end".into());
        return;
    };
    let reference = keyspace_view(first, settings);
    for other in &live[1..] {
        if other.applied != first.applied {
            fail(format!("{} applied {} but {} applied {}", first.name, first.applied, other.name, other.applied));
        } else if other.digest != first.digest && keyspace_view(other, settings) == reference {
            fail(format!("{} and {} read the same but their state digests differ", first.name, other.name));
        }
        let view = keyspace_view(other, settings);
        let spaces: BTreeSet<Option<&str>> = reference.keys().chain(view.keys()).copied().collect();
        for space in spaces {
            let empty = BTreeMap::new();
            let (a, b) = (reference.get(&space).unwrap_or(&empty), view.get(&space).unwrap_or(&empty));
            let keys: BTreeSet<&Key> = a.keys().chain(b.keys()).copied().collect();
            for key in keys {
                let (x, y) = (a.get(key), b.get(key));
                if x != y {
                    let show = |v: Option<&Held<'_>>| v.map_or_else(|| "nothing".to_owned(), ToString::to_string);
                    fail(format!(
                        "keyspace {}: {key:?} is {} at {} but {} at {}",
                        space.unwrap_or("(default)"),
                        show(x),
                        first.name,
                        show(y),
                        other.name
                    ));
                    break;
                }
            }
        }
    }
}

/// A client write as the trace tells it: its key, dependencies and where it was issued.
#[derive(Debug, Clone)]
struct WriteInfo {
    key: String,
    deps: Option<VersionVector>,
    /// The index of its `Write` mark.
    issued: usize,
}

/// One life of a leader, as far as the marks tell it.
#[derive(Debug, Default)]
struct Life {
    /// What it applied (or adopted from a snapshot) since it last started.
    have: VersionVector,
    /// The last timestamp it issued, and the largest it merged.
    last_issued: Option<HlcTimestamp>,
    max_merged: Option<HlcTimestamp>,
}

/// What the marks tell of the run's writes.
#[derive(Debug, Default)]
struct Writes {
    /// Each write by its identity, dot and stamp (a restarted or rejoined leader may issue a
    /// dot again: two writes).
    by_id: BTreeMap<(Dot, HlcTimestamp), WriteInfo>,
}

/// Causal order, exactly-once and clocks, from the marks; returns what it learnt of the writes.
fn check_marks(run: &SimRun, settings: &CheckSettings, report: &mut CheckReport) -> Writes {
    let mut lives: BTreeMap<LeaderId, Life> = BTreeMap::new();
    let mut all = Writes::default();
    let writes = &mut all.by_id;
    let max_offset = settings.max_offset;
    for (index, line) in run.marks.iter().enumerate() {
        let Actor::Leader(id) = line.actor else { continue };
        let life = lives.entry(id).or_default();
        let mut fail = |invariant: Invariant, detail: String| {
            report.violations.push(Violation { invariant, at: Some(line.at), detail });
        };
        match &line.mark {
            Mark::Crashed | Mark::Restarted | Mark::Rejoined => *life = Life::default(),
            Mark::SnapshotAdopted { vv, .. } => life.have.merge(&vv.to_version_vector()),
            // Back from its disk: it holds what the disk held, and its clock resumed past it.
            Mark::Resumed { vv } => life.have.merge(&vv.to_version_vector()),
            Mark::Applied { dot, hlc, deps } => {
                report.applications_checked += 1;
                if life.have.contains(*dot) {
                    fail(Invariant::ExactlyOnce, format!("{id} applied {dot} a second time"));
                } else {
                    let origin_next = life.have.get(dot.origin).next() == dot.seq;
                    let missing: Vec<String> = deps
                        .0
                        .iter()
                        .filter(|d| d.origin != dot.origin && life.have.get(d.origin) < d.seq)
                        .map(ToString::to_string)
                        .collect();
                    if !origin_next || !missing.is_empty() {
                        let before =
                            if origin_next { String::new() } else { format!(" {}:{}", dot.origin, dot.seq.0 - 1) };
                        fail(
                            Invariant::CausalOrder,
                            format!("{id} applied {dot} before its dependencies{before} {}", missing.join(" ")),
                        );
                    }
                    let seq = life.have.get(dot.origin).max(dot.seq);
                    life.have.set(dot.origin, seq);
                }
                if let Some(w) = writes.get_mut(&(*dot, *hlc)) {
                    if w.deps.is_none() {
                        w.deps = Some(deps.to_version_vector());
                    }
                }
            }
            Mark::Write { dot, key, hlc } => {
                report.timestamps_checked += 1;
                writes.entry((*dot, *hlc)).or_insert(WriteInfo { key: key.clone(), deps: None, issued: index });
                if let Some(last) = life.last_issued.filter(|last| hlc <= last) {
                    fail(Invariant::Clocks, format!("{id} stamped {dot} with {hlc}, not after its previous {last}"));
                }
                if let Some(merged) = life.max_merged.filter(|merged| hlc <= merged) {
                    fail(Invariant::Clocks, format!("{id} stamped {dot} with {hlc}, not after {merged} it had merged"));
                }
                life.last_issued = Some(*hlc);
            }
            Mark::Received { from, dot, clock: Some((hlc, local)) } => {
                report.timestamps_checked += 1;
                let ahead = hlc.wall_time().saturating_duration_since(*local);
                if ahead > max_offset {
                    fail(
                        Invariant::Clocks,
                        format!(
                            "{id} merged {dot} from {from} stamped {}ms ahead of its clock (max_offset {}ms)",
                            ahead.as_millis(),
                            max_offset.as_millis()
                        ),
                    );
                }
                life.max_merged = Some(life.max_merged.map_or(*hlc, |m| m.max(*hlc)));
            }
            _ => {}
        }
    }
    all
}

fn check_acknowledged(run: &SimRun, settings: &CheckSettings, writes: &Writes, report: &mut CheckReport) {
    let live = live_states(run);
    let Some(first) = live.first() else { return };
    let ids: Vec<(Dot, HlcTimestamp)> = run.acked().iter().map(|a| (a.dot, a.hlc)).collect();
    let spans = write_spans(&run.marks, &ids);
    let discards = Discards::of(&run.marks);
    for (acked, span) in run.acked().iter().zip(&spans) {
        let fate = fate_of(run, (acked, span, &discards), &live, first, settings, writes);
        match fate {
            Ok(WriteFate::LostWithLeader) => report.lost_with_leader.push(acked.clone()),
            Ok(_) => {}
            Err(ref why) => report.violations.push(Violation {
                invariant: Invariant::NoLostWrite,
                at: Some(acked.at),
                detail: format!("{} {:?} acknowledged by {}: {why}", acked.dot, acked.key, acked.leader),
            }),
        }
        *report.fates.entry(fate.unwrap_or(WriteFate::Lost)).or_default() += 1;
    }
}

/// What became of `acked`, or why it counts as lost.
fn fate_of(
    run: &SimRun,
    (acked, span, discards): (&AckedWrite, &WriteSpan, &Discards),
    live: &[&LeaderState],
    first: &LeaderState,
    settings: &CheckSettings,
    all: &Writes,
) -> Result<WriteFate, String> {
    let dot = acked.dot;
    let writes = &all.by_id;
    if live.iter().any(|s| s.quarantined.iter().any(|q| q.dot == dot && q.hlc == acked.hlc)) {
        return Ok(WriteFate::Quarantined);
    }
    // Discarded by its leader when it rejoined after the cluster fenced its clock: reported in
    // the trace, and the dot may since have been issued again for another write.
    if discards.during(dot, span) {
        return Ok(WriteFate::Quarantined);
    }
    if run.merged_into_later().contains(acked) {
        return Ok(WriteFate::Merged);
    }
    if run.lost_with_leader().contains(acked) {
        if settings.durable && !settings.lost_disks.contains(acked.dot.origin) {
            return Err(
                "acknowledged once on its leader's disk, and that disk survived, yet lost with its leader".into()
            );
        }
        return Ok(WriteFate::LostWithLeader);
    }
    if span.voided || (span.end.is_none() && voided_anywhere(run.states(), dot)) {
        return Err("its origin voided it, yet it was not lost with its leader".into());
    }
    if let Some(end) = span.end {
        let at = run.marks.get(end).map_or(0, |m| m.at.as_millis());
        return Err(format!("its origin issued its dot again at {at}ms, yet it was not lost with its leader"));
    }
    if let Some(missing) = live.iter().find(|s| !s.applied.contains(dot)) {
        return Err(format!("{} does not hold it", missing.name));
    }
    let (_, resolution) = settings.keyspaces.keyspace_of(&acked.key);
    let held = |k: &Key| k.as_str() == acked.key;
    match resolution {
        Resolution::Crdt(_) => Ok(WriteFate::Merged),
        Resolution::Siblings { .. } => {
            let siblings = first.resolved.iter().find(|(k, _)| held(k)).map(|(_, v)| v);
            if matches!(siblings, Some(Resolved::Siblings(s)) if s.iter().any(|(d, _)| *d == dot)) {
                Ok(WriteFate::Sibling)
            } else if superseded_by_a_later_write(dot, span, &acked.key, writes) {
                Ok(WriteFate::Superseded)
            } else {
                let shown = siblings.map_or_else(|| "nothing".to_owned(), ToString::to_string);
                Err(format!("it is not among the siblings of its key ({shown})"))
            }
        }
        _ => {
            let Some((_, winner)) = first.store.iter().find(|(k, _)| held(k)) else {
                return Err("its key holds nothing".into());
            };
            let (mine, theirs) = (acked.hlc, winner.hlc);
            if winner.dot == dot && theirs == mine {
                Ok(WriteFate::Visible)
            } else if theirs > mine {
                Ok(WriteFate::Superseded)
            } else {
                Err(format!("{} (stamped {theirs}) holds its key although it was stamped {mine}", winner.dot))
            }
        }
    }
}

/// Whether some write to `key` issued while the write under `dot` was in force (`span`)
/// depends on `dot` (its writer had applied it, not another write under the same dot).
fn superseded_by_a_later_write(
    dot: Dot,
    span: &WriteSpan,
    key: &str,
    writes: &BTreeMap<(Dot, HlcTimestamp), WriteInfo>,
) -> bool {
    writes
        .values()
        .any(|w| w.key == key && span.covers(w.issued) && w.deps.as_ref().is_some_and(|deps| deps.contains(dot)))
}
