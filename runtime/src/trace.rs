//! Trace events: what a replica did and why, as data.
//!
//! A replica emits a [`TraceEvent`] for every decision a person reviewing a replication run cares
//! about: a write accepted, an entry sent, delivered, dropped as a duplicate, parked for its
//! dependencies, applied, a conflict that last-write-wins decided (with the value it discarded),
//! a peer's message rejected, a catch-up, a clock correction, a rewiring. Events render as one
//! stable line each ([`core::fmt::Display`]), which is what snapshot tests lock down; they hold no
//! wall-clock reading of their own (the simulator stamps them with simulated time).

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::causality::{Dot, VersionVector};
use crate::clock::{CorrectionEvent, HlcTimestamp};
use crate::entry::{Key, Value};
use crate::{LeaderId, LeaderSet};

/// Why a replica refused something a peer sent. Every rejection is counted and traced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Rejection {
    /// The frame could not be decoded.
    #[error("undecodable frame: {0}")]
    Frame(#[from] crate::wire::WireError),
    /// The sender is not a member of the cluster (or is this leader itself).
    #[error("sender {from} is not a peer of this leader")]
    NotAPeer {
        /// The claimed sender.
        from: LeaderId,
    },
    /// The envelope's sender differs from the link it arrived on.
    #[error("envelope claims sender {claimed} but arrived from {actual}")]
    SenderMismatch {
        /// The sender named in the envelope.
        claimed: LeaderId,
        /// The peer the frame came from.
        actual: LeaderId,
    },
    /// An entry that cannot be well-formed (bad origin, sequence 0, dependencies inconsistent).
    #[error("malformed entry {dot}: {why}")]
    MalformedEntry {
        /// The entry's claimed identity.
        dot: Dot,
        /// What is wrong with it.
        why: Cow<'static, str>,
    },
    /// A snapshot chunk that cannot be well-formed; the snapshot is discarded.
    #[error("malformed snapshot {id}: {why}")]
    MalformedSnapshot {
        /// The snapshot's id.
        id: u64,
        /// What is wrong with it.
        why: Cow<'static, str>,
    },
    /// A digest that cannot be true.
    #[error("malformed digest: {why}")]
    MalformedDigest {
        /// What is wrong with it.
        why: Cow<'static, str>,
    },
    /// A dot this leader already holds with different contents (a peer reusing sequence numbers).
    #[error("entry {dot} conflicts with the entry already held under the same dot")]
    DotConflict {
        /// The dot in question.
        dot: Dot,
    },
    /// An entry stamped too far in the future: it never enters the HLC or the store.
    #[error(
        "entry {dot} is stamped {} ahead of local physical time (max_offset {})",
        crate::clock::HumanDuration(*ahead_by),
        crate::clock::HumanDuration(*max_offset)
    )]
    TimestampTooFarAhead {
        /// The entry.
        dot: Dot,
        /// Its timestamp.
        hlc: HlcTimestamp,
        /// How far ahead of local physical time it was.
        ahead_by: Duration,
        /// The bound it broke.
        max_offset: Duration,
    },
}

/// One thing a replica did, for the trace. Serde: a trace saved as JSON reads back as the same
/// events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TraceEvent {
    /// A client write was accepted and stamped.
    WriteAccepted {
        /// Its identity.
        dot: Dot,
        /// The key.
        key: Key,
        /// Its timestamp.
        hlc: HlcTimestamp,
    },
    /// Entries were sent to a peer.
    Sent {
        /// The peer.
        to: LeaderId,
        /// The entries, in order.
        dots: Vec<Dot>,
        /// Whether they answer a digest (catch-up) rather than follow the topology.
        catch_up: bool,
    },
    /// A new entry arrived (its first copy).
    Received {
        /// The peer it came from.
        from: LeaderId,
        /// The entry.
        dot: Dot,
        /// Whether it came in a catch-up (an answer to a digest) rather than along the topology.
        catch_up: bool,
        /// The entry's timestamp and this leader's corrected physical time when the timestamp was
        /// merged into its HLC (`None` for a void, whose stamp is never merged). Not rendered:
        /// it lets a checker verify the `max_offset` bound after the fact.
        clock: Option<(HlcTimestamp, crate::WallTime)>,
    },
    /// A copy of an entry already held or waiting arrived and was dropped.
    DuplicateDropped {
        /// The peer it came from.
        from: LeaderId,
        /// The entry.
        dot: Dot,
    },
    /// An entry arrived before its dependencies and waits in the causal buffer.
    CausalWait {
        /// The entry.
        dot: Dot,
        /// The highest missing write per origin it waits for.
        missing: Vec<Dot>,
    },
    /// The causal buffer could not hold the entry (full, or the entry is further ahead of its
    /// origin's applied writes than the buffer has places): refused, and a catch-up requested.
    BufferFull {
        /// The entry refused.
        dot: Dot,
        /// The peer asked to catch this leader up.
        asked: LeaderId,
        /// The buffer's bound.
        capacity: usize,
    },
    /// An entry was applied to the store.
    Applied {
        /// The entry.
        dot: Dot,
        /// The key.
        key: Key,
        /// The entry's timestamp. Not rendered: with the dot it tells apart two entries under
        /// one dot (a restarted leader issues a dot again when its earlier write under it died
        /// with it).
        hlc: HlcTimestamp,
        /// The entry's dependencies (its origin's version vector when it was written). Not
        /// rendered: it lets a checker verify causal order after the fact.
        deps: Vv,
    },
    /// Two concurrent writes to a key: last-write-wins kept one and discarded the other.
    LwwDiscarded {
        /// The key.
        key: Key,
        /// The write kept.
        kept: Dot,
        /// The write discarded.
        discarded: Dot,
        /// The discarded value (`None` for a delete).
        value: Option<Value>,
    },
    /// A snapshot chunk was sent to a peer whose needs the log has truncated.
    SnapshotSent {
        /// The peer.
        to: LeaderId,
        /// The writes the snapshot names.
        vv: Vv,
        /// Registers in this chunk.
        registers: usize,
    },
    /// A peer needs a snapshot, but this leader's state would take more chunks than
    /// `snapshot_chunks_max`, which the peer would reject: none is sent, and the peer stays
    /// behind until the bound is raised. Traced once per peer and size; every refusal is
    /// counted in `Metrics::snapshots_refused`.
    SnapshotTooLarge {
        /// The peer.
        to: LeaderId,
        /// The chunks the snapshot would take.
        chunks: u32,
        /// The bound.
        max: u32,
    },
    /// A snapshot from a peer was merged and its version vector adopted.
    SnapshotApplied {
        /// The peer.
        from: LeaderId,
        /// The writes the snapshot named.
        vv: Vv,
    },
    /// Something a peer sent was refused.
    Rejected {
        /// The peer.
        from: LeaderId,
        /// Why.
        reason: Rejection,
    },
    /// The clock corrector adjusted this leader's clock.
    ClockCorrected(CorrectionEvent),
    /// This leader's clock went out of tolerance: it refuses writes until it is back.
    Fenced {
        /// The measured remaining offset, in nanoseconds.
        residual_ns: i64,
    },
    /// The supervisor fenced this leader (its timestamps ran ahead at a peer).
    FencedByCluster,
    /// The supervisor fenced this leader and it rejoins: its in-memory state is discarded and
    /// rebuilt from the healthy leaders.
    Rejoining,
    /// The supervisor fenced this leader but it could not rejoin; it stays fenced.
    RejoinFailed {
        /// Why.
        reason: String,
    },
    /// A client write of a key whose home is another leader is routed there.
    RoutedToHome {
        /// The key.
        key: Key,
        /// Its home.
        home: LeaderId,
    },
    /// A write routed here by another leader, as the key's home.
    RoutedHere {
        /// The key.
        key: Key,
    },
    /// A fenced leader rejoined; these writes of its own, which no peer was known to hold, were
    /// discarded with its old state (they were stamped by its bad clock). Peers that received
    /// them hold them in quarantine.
    DiscardedAtRejoin {
        /// The writes.
        dots: Vec<Dot>,
    },
    /// This leader's clock is back within tolerance.
    Unfenced,
    /// The live set changed and the wiring with it.
    Rewired {
        /// The live leaders.
        live: LeaderSet,
        /// The links in use now, sorted.
        edges: Vec<(LeaderId, LeaderId)>,
    },
    /// A siblings write left a key with several concurrent values.
    Siblings {
        /// The key.
        key: Key,
        /// The siblings now held, in dot order.
        dots: Vec<Dot>,
        /// Whether the key holds more siblings than its keyspace's bound (concurrent admissions
        /// at several leaders).
        over_bound: bool,
    },
    /// A restarted leader voided one of its sequence numbers: the write was lost with it.
    Voided {
        /// The voided identity.
        dot: Dot,
    },
    /// This leader sealed recovering leaders: it refuses every entry of theirs it does not
    /// already hold (voids excepted) until each says its recovery is done, so that what it
    /// reported of their writes stays true. A restarted leader starts with every peer sealed.
    Sealed {
        /// The leaders sealed.
        leaders: LeaderSet,
    },
    /// A sealed leader said its recovery is done: its entries are accepted again.
    Unsealed {
        /// The leader.
        leader: LeaderId,
    },
    /// An entry (or a snapshot naming writes) of a sealed leader that this leader does not hold
    /// was refused; anti-entropy brings it once the seal is lifted.
    RefusedWhileSealed {
        /// The peer it came from.
        from: LeaderId,
        /// The entry (for a snapshot: the sealed leader's highest write it names).
        dot: Dot,
    },
    /// A restarted leader heard from every peer while they held it sealed, and no copy of its
    /// earlier writes is in flight any more: it knows which come back, voids the rest, and
    /// writes again past `high_water`. Peers lift their seals.
    Settled {
        /// The highest of its earlier writes anyone holds or needs.
        high_water: crate::causality::Seq,
    },
    /// The leader finished catching up after a restart and accepts writes again.
    CaughtUp {
        /// What it has applied.
        vv: Vv,
    },
    /// A durable leader resumed from its disk: it writes at once, from where it stopped.
    Resumed {
        /// What its disk held.
        vv: Vv,
    },
    /// Log entries were truncated; `forced` when the log's bound made it happen early.
    LogTruncated {
        /// How many entries.
        count: usize,
        /// Whether the bound forced it (peers that still need them will get a snapshot).
        forced: bool,
    },
}

/// A version vector as a trace keeps it: only its non-zero entries, as dots, on the heap. (A
/// [`VersionVector`] is a fixed 520 bytes, and a trace of a loaded run holds hundreds of
/// thousands of events.) Renders like the version vector.
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

impl From<VersionVector> for Vv {
    fn from(vv: VersionVector) -> Self {
        Vv::from(&vv)
    }
}

impl fmt::Display for Vv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_version_vector(), f)
    }
}

fn dots(f: &mut fmt::Formatter<'_>, dots: &[Dot]) -> fmt::Result {
    f.write_str("[")?;
    for (i, d) in dots.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{d}")?;
    }
    f.write_str("]")
}

/// One line, no leading leader id (the caller prefixes it).
impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::WriteAccepted { dot, key, hlc } => write!(f, "write {dot} {key} hlc={hlc}"),
            TraceEvent::Sent { to, dots: d, catch_up } => {
                write!(f, "{} -> {to} ", if *catch_up { "catch-up" } else { "send" })?;
                dots(f, d)
            }
            TraceEvent::Received { from, dot, catch_up, .. } => {
                write!(f, "recv {dot} <- {from}{}", if *catch_up { " (catch-up)" } else { "" })
            }
            TraceEvent::DuplicateDropped { from, dot } => write!(f, "duplicate {dot} <- {from} dropped"),
            TraceEvent::CausalWait { dot, missing } => {
                write!(f, "wait {dot} needs ")?;
                dots(f, missing)
            }
            TraceEvent::BufferFull { dot, asked, capacity } => {
                write!(f, "buffer cannot hold {dot} (capacity {capacity}), catch-up asked of {asked}")
            }
            TraceEvent::Applied { dot, key, .. } => write!(f, "apply {dot} {key}"),
            TraceEvent::LwwDiscarded { key, kept, discarded, value } => {
                write!(f, "lww {key} kept {kept} discarded {discarded}")?;
                match value {
                    Some(v) => write!(f, " (value {v})"),
                    None => f.write_str(" (delete)"),
                }
            }
            TraceEvent::SnapshotSent { to, vv, registers } => {
                write!(f, "snapshot -> {to} {vv} ({registers} keys)")
            }
            TraceEvent::SnapshotApplied { from, vv } => write!(f, "snapshot <- {from} adopted {vv}"),
            TraceEvent::SnapshotTooLarge { to, chunks, max } => write!(
                f,
                "snapshot -> {to} refused: it would take {chunks} chunks, more than snapshot_chunks_max {max}; {to} stays behind"
            ),
            TraceEvent::Rejected { from, reason } => write!(f, "reject <- {from}: {reason}"),
            TraceEvent::ClockCorrected(event) => write!(f, "clock {event}"),
            TraceEvent::Fenced { residual_ns } => {
                write!(f, "fenced: clock off by {}", fmt_ns(*residual_ns))
            }
            TraceEvent::Unfenced => f.write_str("unfenced: clock within tolerance"),
            TraceEvent::DiscardedAtRejoin { dots: d } => {
                f.write_str("discarded at rejoin (stamped by a bad clock, held by no peer): ")?;
                dots(f, d)
            }
            TraceEvent::FencedByCluster => {
                f.write_str("fenced by the cluster: writes refused until the clock is synchronised")
            }
            TraceEvent::Rejoining => {
                f.write_str("rejoining: in-memory state discarded, catching up from the healthy leaders")
            }
            TraceEvent::RejoinFailed { reason } => write!(f, "rejoin failed: {reason}"),
            TraceEvent::RoutedToHome { key, home } => write!(f, "route {key} to its home {home}"),
            TraceEvent::RoutedHere { key } => write!(f, "write {key} routed here as its home"),
            TraceEvent::Rewired { live, edges } => {
                write!(f, "rewired live={live} edges=")?;
                for (i, (a, b)) in edges.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{a}>{b}")?;
                }
                Ok(())
            }
            TraceEvent::CaughtUp { vv } => write!(f, "caught up {vv}"),
            TraceEvent::Resumed { vv } => write!(f, "resumed from disk {vv}"),
            TraceEvent::Settled { high_water } => {
                write!(
                    f,
                    "settled: every peer reported while sealed; earlier writes up to seq {} come back or are voided",
                    high_water.0
                )
            }
            TraceEvent::Sealed { leaders } => {
                write!(f, "seal {leaders}: their writes not held here are refused while they recover")
            }
            TraceEvent::Unsealed { leader } => write!(f, "unseal {leader}: its recovery is done"),
            TraceEvent::RefusedWhileSealed { from, dot } => {
                write!(f, "refuse {dot} <- {from}: {} sealed until it says it is not recovering", dot.origin)
            }
            TraceEvent::Siblings { key, dots: d, over_bound } => {
                write!(f, "siblings {key} ")?;
                dots(f, d)?;
                if *over_bound {
                    f.write_str(" (over the bound)")?;
                }
                Ok(())
            }
            TraceEvent::Voided { dot } => write!(f, "void {dot}: lost with this leader's crash"),
            TraceEvent::LogTruncated { count, forced } => {
                write!(f, "log truncated {count}{}", if *forced { " (bound hit)" } else { "" })
            }
        }
    }
}

/// Formats signed nanoseconds as milliseconds with three decimals, e.g. `+2000.000ms`.
#[must_use]
pub fn fmt_ns(ns: i64) -> String {
    let sign = if ns < 0 { '-' } else { '+' };
    let abs = ns.unsigned_abs();
    alloc::format!("{sign}{}.{:03}ms", abs / 1_000_000, (abs % 1_000_000) / 1_000)
}
