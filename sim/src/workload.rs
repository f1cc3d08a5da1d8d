//! What a simulation does: the clients' operations ([`Workload`]) and the faults
//! ([`FaultEvent`]), with leaders named as everywhere else on a cluster (see `AsLeader`): by name
//! (`"L2"`; a simulation's leaders are named `L0`, `L1`, …) or by [`LeaderId`], held as a
//! [`LeaderRef`]. The simulation looks every one up when it runs ([`Plan`]): a leader the cluster
//! does not have makes `Simulation::try_run` fail with [`SimError::Invalid`], naming it.

use std::fmt;
use std::time::Duration;

use roundtable_actors::ClockSkew;
pub use roundtable_actors::LeaderRef;
use roundtable_runtime::resolution::Update;
use roundtable_runtime::{LeaderId, LeaderSet};

use crate::error::SimError;

/// `n` milliseconds.
#[must_use]
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What a client does at a leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// Write a value.
    Put {
        /// The key.
        key: String,
        /// The value (text).
        value: String,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Any update (a CRDT update, a siblings write…), as [`Write`] sends it.
    Update {
        /// The key.
        key: String,
        /// The update (boxed: an MV-register context makes it large).
        update: Box<Update>,
    },
    /// Read a key (a client read: no replication traffic; traced).
    Get {
        /// The key.
        key: String,
    },
    /// Read the siblings of a key and write `value` with their context, resolving them.
    ResolveSiblings {
        /// The key.
        key: String,
        /// The merged value.
        value: String,
    },
    /// Write a value, but only once this leader shows `seen_key` = `seen_value` (a write that
    /// causally depends on another leader's); polls every millisecond, for at most 10 s.
    PutAfterSeeing {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The key to wait for.
        seen_key: String,
        /// The value to wait for.
        seen_value: String,
    },
}

/// Who writes what, when. Each operation names its leader by name or [`LeaderId`] (anything
/// `Into<LeaderRef>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    ops: Vec<(Duration, LeaderRef, ClientOp)>,
    /// `puts_per_leader` requests: (start, puts per leader).
    per_leader: Vec<(Duration, u64)>,
}

impl Workload {
    /// A put of `value` under `key` at leader `leader`, `at` after the start.
    #[must_use]
    pub fn put(mut self, at: Duration, leader: impl Into<LeaderRef>, key: &str, value: &str) -> Self {
        self.ops.push((at, leader.into(), ClientOp::Put { key: key.into(), value: value.into() }));
        self
    }

    /// Any update of `key` at leader `leader`, `at` after the start (a CRDT update, a siblings
    /// write with a context…).
    #[must_use]
    pub fn update(mut self, at: Duration, leader: impl Into<LeaderRef>, key: &str, update: Update) -> Self {
        self.ops.push((at, leader.into(), ClientOp::Update { key: key.into(), update: Box::new(update) }));
        self
    }

    /// At `at`, leader `leader` reads the siblings of `key` and writes `value` with their
    /// context, replacing them all.
    #[must_use]
    pub fn resolve_siblings(mut self, at: Duration, leader: impl Into<LeaderRef>, key: &str, value: &str) -> Self {
        self.ops.push((at, leader.into(), ClientOp::ResolveSiblings { key: key.into(), value: value.into() }));
        self
    }

    /// A read of `key` at leader `leader`, `at` after the start.
    #[must_use]
    pub fn get(mut self, at: Duration, leader: impl Into<LeaderRef>, key: &str) -> Self {
        self.ops.push((at, leader.into(), ClientOp::Get { key: key.into() }));
        self
    }

    /// A delete of `key` at leader `leader`, `at` after the start.
    #[must_use]
    pub fn delete(mut self, at: Duration, leader: impl Into<LeaderRef>, key: &str) -> Self {
        self.ops.push((at, leader.into(), ClientOp::Delete { key: key.into() }));
        self
    }

    /// From `at` on, leader `leader` waits until it shows `seen_key = seen_value`, then puts.
    #[must_use]
    pub fn put_after_seeing(
        mut self,
        at: Duration,
        leader: impl Into<LeaderRef>,
        (key, value): (&str, &str),
        (seen_key, seen_value): (&str, &str),
    ) -> Self {
        let op = ClientOp::PutAfterSeeing {
            key: key.into(),
            value: value.into(),
            seen_key: seen_key.into(),
            seen_value: seen_value.into(),
        };
        self.ops.push((at, leader.into(), op));
        self
    }

    /// `n` puts at every leader: the `j`-th put of the leader with id `Li` writes `k{j}` =
    /// `Li.{j}` at `10·j + i` ms, so that every key is written concurrently by every leader.
    #[must_use]
    pub fn puts_per_leader(mut self, n: usize) -> Self {
        self.per_leader.push((Duration::ZERO, n as u64));
        self
    }

    /// Every operation, with those of `puts_per_leader` spelled out for `leaders` leaders.
    pub(crate) fn expand(&self, leaders: usize) -> Vec<(Duration, LeaderRef, ClientOp)> {
        let mut ops = self.ops.clone();
        for &(at, n) in &self.per_leader {
            for j in 0..n {
                for id in LeaderId::range(leaders) {
                    let at = at + ms(10 * j + id.index() as u64);
                    let op = ClientOp::Put { key: format!("k{j}"), value: format!("{id}.{j}") };
                    ops.push((at, id.into(), op));
                }
            }
        }
        ops
    }
}

/// A fault at a given time. A fault on one leader names it by name or [`LeaderId`]:
/// `FaultEvent::Isolate("L1".into())`, `FaultEvent::Crash(id.into())`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultEvent {
    /// The leader crashes (in-memory state lost) and stays down.
    Crash(LeaderRef),
    /// The leader restarts with empty state.
    Restart(LeaderRef),
    /// The leader is cut off from everyone.
    Isolate(LeaderRef),
    /// The leader is reconnected.
    Heal(LeaderRef),
    /// Everything between the two sets is lost.
    Partition(LeaderSet, LeaderSet),
    /// Every partition and isolation ends.
    HealAll,
    /// The leader's simulated disk fails and loses everything on it (with
    /// [`crate::Simulation::disks`]; meant for a leader that is down, whose restart then starts
    /// empty and recovers from its peers).
    LoseDisk(LeaderRef),
}

/// How a fault shows in a trace (`fault: Crash(2)`): a leader named by id shows as its index
/// (`Crash(2)`, the form the traces have always had), one named by name as the quoted name
/// (`Crash("L2")`). The simulation looks names up before it records a fault, so a trace only
/// shows indices, whichever way the fault named its leader.
impl fmt::Display for FaultEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, leader) = match self {
            FaultEvent::Crash(l) => ("Crash", l),
            FaultEvent::Restart(l) => ("Restart", l),
            FaultEvent::Isolate(l) => ("Isolate", l),
            FaultEvent::Heal(l) => ("Heal", l),
            FaultEvent::LoseDisk(l) => ("LoseDisk", l),
            FaultEvent::Partition(a, b) => return write!(f, "Partition({a}, {b})"),
            FaultEvent::HealAll => return f.write_str("HealAll"),
        };
        match leader {
            LeaderRef::Id(id) => write!(f, "{what}({})", id.index()),
            LeaderRef::Name(name) => write!(f, "{what}({name:?})"),
        }
    }
}

impl FaultEvent {
    /// The same fault with its leader looked up in `leaders`, as an id.
    pub(crate) fn resolve(&self, leaders: &Leaders<'_>, at: Duration) -> Result<FaultEvent, SimError> {
        let what = || format!("the fault at {}", duration(at));
        Ok(match self {
            FaultEvent::Crash(l) => FaultEvent::Crash(leaders.resolve(l, what)?.into()),
            FaultEvent::Restart(l) => FaultEvent::Restart(leaders.resolve(l, what)?.into()),
            FaultEvent::Isolate(l) => FaultEvent::Isolate(leaders.resolve(l, what)?.into()),
            FaultEvent::Heal(l) => FaultEvent::Heal(leaders.resolve(l, what)?.into()),
            FaultEvent::LoseDisk(l) => FaultEvent::LoseDisk(leaders.resolve(l, what)?.into()),
            FaultEvent::Partition(a, b) => {
                let outside = a.union(*b).difference(LeaderSet::first(leaders.names.len()));
                if !outside.is_empty() {
                    return Err(SimError::Invalid(format!(
                        "{} partitions {a} from {b}, which names {outside}, not among the {}",
                        what(),
                        leaders.describe()
                    )));
                }
                self.clone()
            }
            FaultEvent::HealAll => FaultEvent::HealAll,
        })
    }
}

/// The cluster's leaders, to look up the leaders a simulation names.
pub(crate) struct Leaders<'a> {
    pub(crate) names: &'a [String],
}

impl Leaders<'_> {
    /// The id of `leader`, or why it is not one of the cluster's leaders (`what` names the part
    /// of the simulation that named it).
    pub(crate) fn resolve(&self, leader: &LeaderRef, what: impl FnOnce() -> String) -> Result<LeaderId, SimError> {
        let found = match leader {
            LeaderRef::Id(id) => (id.index() < self.names.len()).then_some(*id),
            LeaderRef::Name(name) => self.names.iter().position(|n| n == name).and_then(|i| LeaderId::new(i).ok()),
        };
        found.ok_or_else(|| {
            let leader = match leader {
                LeaderRef::Id(id) => format!("leader {id}"),
                LeaderRef::Name(name) => format!("leader {name:?}"),
            };
            SimError::Invalid(format!("{} names {leader}, which is not one of the {}", what(), self.describe()))
        })
    }

    /// `3 leaders (L0 L1 L2)`: the leaders by name (the first few of many).
    fn describe(&self) -> String {
        const SHOWN: usize = 8;
        let n = self.names.len();
        if n == 0 {
            return "0 leaders".to_owned();
        }
        let mut shown = self.names.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(" ");
        if n > SHOWN {
            shown.push_str(" …");
        }
        format!("{n} leader{} ({shown})", if n == 1 { "" } else { "s" })
    }
}

/// What a simulation does, with every leader looked up: the client operations and the faults
/// (in the order given; the run sorts them by time), and one clock skew per leader.
pub(crate) struct Plan {
    pub(crate) ops: Vec<(Duration, LeaderId, ClientOp)>,
    pub(crate) faults: Vec<(Duration, FaultEvent)>,
    pub(crate) skews: Vec<ClockSkew>,
}

/// `20ms`, `0.100ms`: whole milliseconds, or milliseconds with microseconds.
pub(crate) fn duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros.is_multiple_of(1000) {
        format!("{}ms", micros / 1000)
    } else {
        format!("{}.{:03}ms", micros / 1000, micros % 1000)
    }
}
