//! The trace of a run: every replica event, network fault and supervisor decision, stamped with
//! time since the start, in the order they happened. It is data (not log lines): the simulator
//! returns it, tests snapshot its text rendering, and people read its diffs.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roundtable_runtime::LeaderId;

use crate::clock::SimEpoch;

/// Who produced a trace line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Actor {
    /// A leader (its replica, or its actor shell).
    Leader(LeaderId),
    /// The simulated network.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    /// Time since the start of the run.
    pub at: Duration,
    /// Who did it.
    pub actor: Actor,
    /// What happened, rendered (stable text).
    pub text: String,
}

/// A finished run's trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The lines, in the order they happened.
    pub lines: Vec<TraceLine>,
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
