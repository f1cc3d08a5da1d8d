//! The trace of a run: every replica event, network fault and supervisor decision, stamped with
//! time since the start, in the order they happened. It is data (not log lines): the simulator
//! returns it, tests snapshot its text rendering, and people read its diffs.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roundtable_runtime::clock::HlcTimestamp;
use roundtable_runtime::{Dot, LeaderId, LeaderSet, Rejection, TraceEvent, VersionVector, WallTime};
use serde::{Deserialize, Serialize};

use crate::clock::SimEpoch;

/// Who produced a trace line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Actor {
    /// A leader (its replica, or its actor shell).
    Leader(LeaderId),
    /// The transport (the simulated network, or the in-process transport).
    Network,
    /// The supervisor.
    Supervisor,
    /// The simulation's workload (a client) or fault schedule.
    Client,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Leader(id) => write!(f, "{id}"),
            Actor::Network => f.write_str("net"),
            Actor::Supervisor => f.write_str("sup"),
            Actor::Client => f.write_str("client"),
        }
    }
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceLine {
    /// Time since the start of the run.
    pub at: Duration,
    /// Who did it.
    pub actor: Actor,
    /// What happened, rendered (stable text).
    pub text: String,
}

/// A finished run's trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// The lines, in the order they happened.
    pub lines: Vec<TraceLine>,
    /// The structured facts of the run, in the order they happened: what the invariant checker
    /// (`roundtable_sim::check`) and the space-time diagram (`roundtable_sim::svg`) read. Not part of
    /// [`Trace::render`].
    pub marks: Vec<MarkLine>,
    /// Whether marks were left out because the trace reached [`TRACE_LINES_MAX`] of them (a
    /// checker must then say it saw only part of the run).
    pub marks_cut: bool,
}

/// A structured fact of a run, stamped like a [`TraceLine`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkLine {
    /// Time since the start of the run.
    pub at: Duration,
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    pub mark: Mark,
}

/// A structured fact of a run. Leaders' marks come from their replicas' [`TraceEvent`]s (those
/// a checker or a diagram needs) and from their actor shells (crashes, restarts); the network
/// marks every message between leaders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Mark {
    /// A client write was accepted and stamped.
    Write {
        /// Its identity.
        dot: Dot,
        /// The key.
        key: String,
        /// Its timestamp.
        hlc: HlcTimestamp,
    },
    /// The first copy of an entry arrived.
    Received {
        /// The peer it came from.
        from: LeaderId,
        /// The entry.
        dot: Dot,
        /// Its timestamp and the receiver's corrected physical time when the timestamp entered
        /// the receiver's HLC (`None` for a void, whose stamp never does).
        clock: Option<(HlcTimestamp, WallTime)>,
    },
    /// An entry was applied.
    Applied {
        /// The entry.
        dot: Dot,
        /// Its timestamp (with the dot, the entry's identity: a restarted leader may issue a
        /// dot again whose earlier write died with it).
        hlc: HlcTimestamp,
        /// Its dependencies.
        deps: Vv,
    },
    /// A copy of an entry already held was dropped.
    Duplicate {
        /// The peer it came from.
        from: LeaderId,
        /// The entry.
        dot: Dot,
    },
    /// An entry waits for its dependencies.
    CausalWait {
        /// The entry.
        dot: Dot,
    },
    /// Last-write-wins decided a conflict.
    Conflict {
        /// The key.
        key: String,
        /// The write kept.
        kept: Dot,
        /// The write discarded.
        discarded: Dot,
    },
    /// A siblings write left a key with several values.
    Siblings {
        /// The key.
        key: String,
        /// How many siblings it holds.
        count: usize,
    },
    /// A snapshot was adopted: the leader now holds every write of `vv`.
    SnapshotAdopted {
        /// The peer it came from.
        from: LeaderId,
        /// The writes it named.
        vv: Vv,
    },
    /// A restarted leader voided one of its sequence numbers.
    Voided {
        /// The dot.
        dot: Dot,
    },
    /// Something a peer sent was refused.
    Rejected {
        /// The peer.
        from: LeaderId,
        /// The entry, when the rejection names one.
        dot: Option<Dot>,
        /// Whether it was refused for a timestamp beyond `max_offset`.
        far_future: bool,
    },
    /// A fenced leader rejoined and discarded these writes of its own, which no peer was known
    /// to hold (stamped by its bad clock; reported, not replicated).
    Discarded {
        /// The writes.
        dots: Vec<Dot>,
    },
    /// The leader's live set and wiring changed.
    Rewired {
        /// The live leaders.
        live: LeaderSet,
    },
    /// The leader crashed: its in-memory state is gone.
    Crashed,
    /// The leader restarted with empty state.
    Restarted,
    /// The leader was fenced by the cluster and rebuilt its state from its peers.
    Rejoined,
    /// A message from one leader to another: sent at `sent_at`, and delivered (or lost) at the
    /// mark's time.
    Message {
        /// The sender.
        from: LeaderId,
        /// The receiver.
        to: LeaderId,
        /// Its kind (`replicate`, `digest`, `snapshot`, …).
        kind: String,
        /// Its size on the wire.
        bytes: usize,
        /// When it was sent.
        sent_at: Duration,
        /// Whether it reached the receiver (false: lost to a drop, a partition or a crash).
        delivered: bool,
    },
}

/// A version vector as marks keep it: only its non-zero entries, on the heap. (A
/// [`VersionVector`] is a fixed 520 bytes; a trace of a loaded run holds hundreds of thousands
/// of marks.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vv(pub Vec<Dot>);

impl Vv {
    /// Whether it names `dot` (holds its origin's sequence number or a later one).
    #[must_use]
    pub fn contains(&self, dot: Dot) -> bool {
        self.0.iter().any(|d| d.origin == dot.origin && d.seq >= dot.seq)
    }

    /// The version vector.
    #[must_use]
    pub fn to_version_vector(&self) -> VersionVector {
        let mut vv = VersionVector::new();
        for d in &self.0 {
            vv.set(d.origin, d.seq);
        }
        vv
    }
}

impl From<&VersionVector> for Vv {
    fn from(vv: &VersionVector) -> Self {
        Vv(vv.iter().map(|(leader, seq)| Dot::new(leader, seq)).collect())
    }
}

impl fmt::Display for Vv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_version_vector(), f)
    }
}

impl Mark {
    /// The mark a replica's trace event leaves, if a checker or a diagram needs it.
    #[must_use]
    pub fn from_event(event: &TraceEvent) -> Option<Mark> {
        Some(match event {
            TraceEvent::WriteAccepted { dot, key, hlc } => {
                Mark::Write { dot: *dot, key: key.as_str().to_owned(), hlc: *hlc }
            }
            TraceEvent::Received { from, dot, clock, .. } => Mark::Received { from: *from, dot: *dot, clock: *clock },
            TraceEvent::Applied { dot, hlc, deps, .. } => Mark::Applied { dot: *dot, hlc: *hlc, deps: Vv::from(deps) },
            TraceEvent::DuplicateDropped { from, dot } => Mark::Duplicate { from: *from, dot: *dot },
            TraceEvent::CausalWait { dot, .. } => Mark::CausalWait { dot: *dot },
            TraceEvent::LwwDiscarded { key, kept, discarded, .. } => {
                Mark::Conflict { key: key.as_str().to_owned(), kept: *kept, discarded: *discarded }
            }
            TraceEvent::Siblings { key, dots, .. } => {
                Mark::Siblings { key: key.as_str().to_owned(), count: dots.len() }
            }
            TraceEvent::SnapshotApplied { from, vv } => Mark::SnapshotAdopted { from: *from, vv: Vv::from(vv) },
            TraceEvent::Voided { dot } => Mark::Voided { dot: *dot },
            TraceEvent::Rejected { from, reason } => {
                let (dot, far_future) = match reason {
                    Rejection::TimestampTooFarAhead { dot, .. } => (Some(*dot), true),
                    Rejection::MalformedEntry { dot, .. } | Rejection::DotConflict { dot } => (Some(*dot), false),
                    _ => (None, false),
                };
                Mark::Rejected { from: *from, dot, far_future }
            }
            TraceEvent::Rewired { live, .. } => Mark::Rewired { live: *live },
            TraceEvent::DiscardedAtRejoin { dots } => Mark::Discarded { dots: dots.clone() },
            TraceEvent::Rejoining => Mark::Rejoined,
            _ => return None,
        })
    }
}

impl Trace {
    /// One line per event: `  12.345ms L0 write L0:1 "k" …`. Stable: the same run gives the same
    /// text byte for byte.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            let ms = line.at.as_micros();
            let _ = writeln!(out, "{:>6}.{:03}ms {:<6} {}", ms / 1000, ms % 1000, line.actor.to_string(), line.text);
        }
        out
    }

    /// The texts of the lines `who` recorded (`L0`, `sup`, `net`, `client`), in order.
    pub fn texts_of<'a>(&'a self, who: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines.iter().filter(move |l| l.actor.to_string() == who).map(|l| l.text.as_str())
    }

    /// Whether `who` recorded a line containing `needle`.
    #[must_use]
    pub fn has(&self, who: &str, needle: &str) -> bool {
        self.texts_of(who).any(|t| t.contains(needle))
    }

    /// The index of the first line by `who` containing `needle`.
    #[must_use]
    pub fn position(&self, who: &str, needle: &str) -> Option<usize> {
        self.lines.iter().position(|l| l.actor.to_string() == who && l.text.contains(needle))
    }

    /// Whether each `(who, needle)` line exists and comes after the previous one — the shape of
    /// most assertions about a replication story.
    #[must_use]
    pub fn in_order(&self, steps: &[(&str, &str)]) -> bool {
        let found: Vec<Option<usize>> = steps.iter().map(|(who, needle)| self.position(who, needle)).collect();
        found.iter().all(Option::is_some) && found.windows(2).all(|w| w[0] < w[1])
    }

    /// The lines whose text contains `needle`.
    pub fn matching<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a TraceLine> + 'a {
        self.lines.iter().filter(move |l| l.text.contains(needle))
    }
}

/// Where actors record trace lines. Cheap to clone; disabled sinks record nothing.
#[derive(Debug, Clone, Default)]
pub struct TraceSink {
    inner: Option<Arc<Mutex<(SimEpochOrStart, Trace)>>>,
}

#[derive(Debug, Clone, Copy)]
struct SimEpochOrStart(SimEpoch);

/// The most lines a trace holds; beyond it the last line says the trace was cut.
pub const TRACE_LINES_MAX: usize = 1_000_000;

impl TraceSink {
    /// A sink that records nothing (real deployments log through `tracing` instead).
    #[must_use]
    pub fn disabled() -> Self {
        TraceSink { inner: None }
    }

    /// A sink that records lines stamped with time since `epoch`.
    #[must_use]
    pub fn recording(epoch: SimEpoch) -> Self {
        TraceSink { inner: Some(Arc::new(Mutex::new((SimEpochOrStart(epoch), Trace::default())))) }
    }

    /// Whether this sink records.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Time since the start of the run (zero for a disabled sink).
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.inner.as_ref().and_then(|i| i.lock().ok().map(|g| g.0 .0.elapsed())).unwrap_or_default()
    }

    /// Records one structured fact.
    pub fn mark(&self, actor: Actor, mark: Mark) {
        let Some(inner) = &self.inner else { return };
        let Ok(mut guard) = inner.lock() else { return };
        let at = guard.0 .0.elapsed();
        let trace = &mut guard.1;
        if trace.marks.len() < TRACE_LINES_MAX {
            trace.marks.push(MarkLine { at, actor, mark });
        } else {
            trace.marks_cut = true;
        }
    }

    /// Records one line.
    pub fn record(&self, actor: Actor, text: impl fmt::Display) {
        let Some(inner) = &self.inner else { return };
        let Ok(mut guard) = inner.lock() else { return };
        let at = guard.0 .0.elapsed();
        let trace = &mut guard.1;
        if trace.lines.len() < TRACE_LINES_MAX {
            trace.lines.push(TraceLine { at, actor, text: text.to_string() });
        } else if trace.lines.len() == TRACE_LINES_MAX {
            trace.lines.push(TraceLine { at, actor, text: "trace cut: TRACE_LINES_MAX lines reached".into() });
        }
    }

    /// A copy of the trace so far.
    #[must_use]
    pub fn snapshot(&self) -> Trace {
        self.inner.as_ref().and_then(|i| i.lock().ok().map(|g| g.1.clone())).unwrap_or_default()
    }
}
