//! The replication log and the causal buffer.
//!
//! The log keeps every write this leader has applied, in the order it applied them — a linear
//! extension of causality, since writes only apply once their dependencies have. For each entry it
//! knows which leaders have seen it: the 64-bit `seen_by` set that travels with the entry, joined
//! with the version vectors peers acknowledge (see [`crate::Replica`]). That knowledge serves
//! three purposes: an entry is not sent to a leader known to hold it, an entry every live leader
//! has seen is truncated, and a write concern can be answered.
//!
//! Anti-entropy asks the log *what does a peer whose version vector is `V` lack?*
//! ([`ReplicationLog::missing_for`]): the entries with `seq > V[origin]`, in log (causal) order —
//! or, when the log has already truncated some of them, a state snapshot instead.
//!
//! The causal buffer holds entries that arrived before their dependencies (Birman, Schiper &
//! Stephenson 1991): an entry `(o, s)` with dependencies `D` is deliverable at a leader with
//! applied vector `A` when `A[o] = s − 1` and `D ≤ A`. It is bounded; when it is full the entry is
//! refused (it is still held by its sender) and the replica asks for a catch-up instead of growing.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::causality::{Dot, VersionVector};
use crate::entry::{Entry, SharedEntry};
use crate::{LeaderId, LeaderSet};

/// An entry in the log with the leaders known to have seen it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The entry's dot, held inline: scanning and truncating the log then reads only its slots,
    /// not the entries (which, in a long log, are long out of the cache).
    pub dot: Dot,
    /// The write (shared with the messages that carry it).
    pub entry: SharedEntry,
    /// Leaders known to hold it (from the copies received; acknowledged vectors add to this).
    pub seen_by: LeaderSet,
    /// When this leader applied it (its own clock).
    pub logged_at: crate::WallTime,
}

/// What a peer lacks, as the log can tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing<'a> {
    /// The peer lacks nothing the log knows of.
    Nothing,
    /// The peer lacks these entries, in causal order.
    Entries(Vec<&'a SharedEntry>),
    /// The log has truncated entries the peer lacks: only a state snapshot can catch it up.
    Snapshot,
}

/// The replication log of one leader. Bounded by `max_entries`.
#[derive(Debug, Clone)]
pub struct ReplicationLog {
    entries: Slots,
    /// Position (since the log was created) of `entries[0]`.
    base: u64,
    index: DotIndex,
    /// Per origin, the highest sequence number that may be missing from the log (truncated).
    floor: VersionVector,
    max_entries: usize,
}

impl ReplicationLog {
    /// An empty log holding at most `max_entries` entries (at least 1).
    #[must_use]
    pub fn new(max_entries: usize) -> Self {
        ReplicationLog {
            entries: Slots::default(),
            base: 0,
            index: DotIndex::default(),
            floor: VersionVector::new(),
            max_entries: max_entries.max(1),
        }
    }

    /// Appends an entry the leader has just applied. When the log is at its bound, the oldest
    /// entry is truncated first and returned, so the caller can report it (peers that still need
    /// it will be sent a snapshot).
    #[must_use = "a forced truncation must be reported"]
    pub fn append(&mut self, entry: SharedEntry, seen_by: LeaderSet, logged_at: crate::WallTime) -> Option<Dot> {
        debug_assert!(self.index.get(entry.dot).is_none(), "an entry is appended once");
        let forced = if self.entries.len() >= self.max_entries { self.pop_front() } else { None };
        let position = self.base + self.entries.len() as u64;
        self.index.insert(entry.dot, position);
        self.entries.push_back(Logged { dot: entry.dot, entry, seen_by, logged_at });
        forced
    }

    fn pop_front(&mut self) -> Option<Dot> {
        let logged = self.entries.pop_front()?;
        self.base += 1;
        let dot = logged.dot;
        self.index.remove(dot);
        if self.floor.get(dot.origin) < dot.seq {
            self.floor.set(dot.origin, dot.seq);
        }
        Some(dot)
    }

    fn position(&self, dot: Dot) -> Option<usize> {
        let position = self.index.get(dot)?;
        usize::try_from(position - self.base).ok()
    }

    /// The logged entry with identity `dot`, if the log still holds it.
    #[must_use]
    pub fn get(&self, dot: Dot) -> Option<&Logged> {
        self.position(dot).and_then(|i| self.entries.get(i))
    }

    /// Records that the leaders in `seen` hold `dot`. Returns false when the log does not hold it.
    pub fn mark_seen(&mut self, dot: Dot, seen: LeaderSet) -> bool {
        match self.position(dot).and_then(|i| self.entries.get_mut(i)) {
            Some(logged) => {
                logged.seen_by = logged.seen_by.union(seen);
                true
            }
            None => false,
        }
    }

    /// What a peer whose version vector is `theirs` lacks, at most `limit` entries of it, and
    /// of those only the ones logged at or before `logged_by` (when given): younger ones are
    /// most likely still on their way to the peer along the topology.
    #[must_use]
    pub fn missing_for(&self, theirs: &VersionVector, limit: usize, logged_by: Option<crate::WallTime>) -> Missing<'_> {
        if !self.floor.le(theirs) {
            return Missing::Snapshot;
        }
        let entries: Vec<&SharedEntry> = self
            .entries
            .iter()
            .filter(|l| !theirs.contains(l.dot) && logged_by.is_none_or(|t| l.logged_at <= t))
            .map(|l| &l.entry)
            .take(limit)
            .collect();
        if entries.is_empty() {
            Missing::Nothing
        } else {
            Missing::Entries(entries)
        }
    }

    /// Truncates the oldest entries that are stable: named by `stable` (the meet of every live
    /// leader's acknowledged vector) or seen by every leader in `live`. Stops at the first entry
    /// that is not. Returns how many entries were removed.
    pub fn truncate_stable(&mut self, stable: &VersionVector, live: LeaderSet) -> usize {
        let mut removed = 0;
        while let Some(front) = self.entries.front() {
            let done = stable.contains(front.dot) || live.is_subset(front.seen_by);
            if !done {
                break;
            }
            let popped = self.pop_front();
            debug_assert!(popped.is_some());
            removed += 1;
        }
        removed
    }

    /// After adopting a snapshot that names `vv`, the log may lack entries up to `vv`: raise the
    /// floor so that peers needing them get a snapshot too.
    pub fn raise_floor(&mut self, vv: &VersionVector) {
        self.floor.merge(vv);
    }

    /// Per origin, the highest sequence number the log may no longer hold.
    #[must_use]
    pub fn floor(&self) -> &VersionVector {
        &self.floor
    }

    /// The number of entries held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the log holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries held, in the order they were applied.
    pub fn iter(&self) -> impl Iterator<Item = &Logged> {
        self.entries.iter()
    }
}

/// Log slots: fixed-size chunks, so that the log grows without copying what it holds (a
/// `VecDeque` doubles and moves every slot) and gives back a chunk's memory as soon as the
/// chunk is truncated.
#[derive(Debug, Clone, Default)]
struct Slots {
    /// Every chunk but the first and the last is full; none is empty.
    chunks: VecDeque<VecDeque<Logged>>,
    len: usize,
}

/// Where each logged entry is, by dot. The log holds an origin's entries in sequence order
/// (causal delivery applies `(o, s)` right after `(o, s − 1)`), so per origin the positions
/// form a run indexed by `seq − first`: finding, adding and truncating an entry is an array
/// access, not a search. The run has a hole only where a snapshot skipped sequence numbers;
/// a short hole is filled with [`NOWHERE`], and before a longer one the origin's run moves
/// into `spill`, an ordered map that only such jumps ever use.
#[derive(Debug, Clone, Default)]
struct DotIndex {
    /// By origin index.
    runs: Vec<Run>,
    spill: BTreeMap<Dot, u64>,
}

/// Positions of one origin's consecutive sequence numbers, from `first`.
#[derive(Debug, Clone, Default)]
struct Run {
    first: u64,
    positions: VecDeque<u64>,
}

/// A sequence number in a run's hole.
const NOWHERE: u64 = u64::MAX;

/// The longest hole a run fills rather than spilling.
const HOLE_MAX: u64 = 1024;

impl DotIndex {
    fn get(&self, dot: Dot) -> Option<u64> {
        if let Some(run) = self.runs.get(dot.origin.index()) {
            let at = dot.seq.0.checked_sub(run.first).and_then(|i| usize::try_from(i).ok());
            if let Some(&position) = at.and_then(|i| run.positions.get(i)) {
                return (position != NOWHERE).then_some(position);
            }
        }
        self.spill.get(&dot).copied()
    }

    fn insert(&mut self, dot: Dot, position: u64) {
        let o = dot.origin.index();
        if self.runs.len() <= o {
            self.runs.resize_with(o + 1, Run::default);
        }
        let run = &mut self.runs[o];
        // Saturating: sequence numbers come from peers, and none may overflow the index.
        let next = run.first.saturating_add(run.positions.len() as u64);
        if run.positions.is_empty() {
            run.first = dot.seq.0;
        } else if dot.seq.0 >= next && dot.seq.0 - next <= HOLE_MAX {
            run.positions.extend(core::iter::repeat_n(NOWHERE, (dot.seq.0 - next) as usize));
        } else {
            // A long jump (or, were the log ever out of order, a step back): keep the run's
            // positions in the spill and start a new run here.
            for (i, position) in run.positions.drain(..).enumerate() {
                if position != NOWHERE {
                    self.spill.insert(Dot::new(dot.origin, crate::Seq(run.first.saturating_add(i as u64))), position);
                }
            }
            run.first = dot.seq.0;
        }
        run.positions.push_back(position);
    }

    /// Forgets `dot`, the oldest entry of the log (so the oldest of its origin).
    fn remove(&mut self, dot: Dot) {
        if let Some(run) = self.runs.get_mut(dot.origin.index()) {
            if run.first == dot.seq.0 && run.positions.pop_front().is_some() {
                run.first = run.first.saturating_add(1);
                while run.positions.front() == Some(&NOWHERE) {
                    run.positions.pop_front();
                    run.first = run.first.saturating_add(1);
                }
                return;
            }
        }
        self.spill.remove(&dot);
    }
}

/// Slots per chunk (a slot is 40 bytes).
const CHUNK: usize = 1024;

impl Slots {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push_back(&mut self, logged: Logged) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < CHUNK => last.push_back(logged),
            _ => {
                let mut chunk = VecDeque::with_capacity(CHUNK);
                chunk.push_back(logged);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    fn pop_front(&mut self) -> Option<Logged> {
        let first = self.chunks.front_mut()?;
        let logged = first.pop_front();
        if first.is_empty() {
            self.chunks.pop_front();
        }
        self.len -= usize::from(logged.is_some());
        logged
    }

    fn front(&self) -> Option<&Logged> {
        self.chunks.front().and_then(VecDeque::front)
    }

    /// Where slot `i` is: (chunk, index in the chunk). Only the first chunk can be short at its
    /// front, so the others are found by division.
    fn locate(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.len {
            return None;
        }
        let first = self.chunks.front()?.len();
        if i < first {
            Some((0, i))
        } else {
            let j = i - first;
            Some((1 + j / CHUNK, j % CHUNK))
        }
    }

    fn get(&self, i: usize) -> Option<&Logged> {
        let (c, k) = self.locate(i)?;
        self.chunks.get(c)?.get(k)
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Logged> {
        let (c, k) = self.locate(i)?;
        self.chunks.get_mut(c)?.get_mut(k)
    }

    fn iter(&self) -> impl Iterator<Item = &Logged> {
        self.chunks.iter().flatten()
    }
}

/// An entry waiting for its dependencies, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The write.
    pub entry: SharedEntry,
    /// The leader it was received from.
    pub from: LeaderId,
    /// Leaders known to hold it when it arrived.
    pub seen_by: LeaderSet,
    /// When it arrived (the receiver's clock).
    pub since: crate::WallTime,
}

/// The causal buffer refused an entry because it is full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("causal buffer is full ({capacity} entries waiting for their dependencies)")]
pub struct BufferFull {
    /// The buffer's bound.
    pub capacity: usize,
    /// The entry refused, handed back.
    pub refused: alloc::boxed::Box<Waiting>,
}

/// Entries received before their dependencies, bounded by `capacity`.
#[derive(Debug, Clone)]
pub struct CausalBuffer {
    waiting: BTreeMap<Dot, Waiting>,
    capacity: usize,
}

impl CausalBuffer {
    /// An empty buffer holding at most `capacity` entries.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        CausalBuffer { waiting: BTreeMap::new(), capacity }
    }

    /// Whether an entry is deliverable at a leader that has applied `applied`.
    #[must_use]
    pub fn is_deliverable(entry: &Entry, applied: &VersionVector) -> bool {
        applied.get(entry.dot.origin).next() == entry.dot.seq && entry.deps.le_except(applied, entry.dot.origin)
    }

    /// Whether `dot` is waiting here.
    #[must_use]
    pub fn contains(&self, dot: Dot) -> bool {
        self.waiting.contains_key(&dot)
    }

    /// The entry waiting under `dot`, if any.
    #[must_use]
    pub fn get(&self, dot: Dot) -> Option<&Waiting> {
        self.waiting.get(&dot)
    }

    /// Parks an entry until its dependencies have applied.
    pub fn insert(&mut self, waiting: Waiting) -> Result<(), BufferFull> {
        if self.waiting.len() >= self.capacity {
            return Err(BufferFull { capacity: self.capacity, refused: alloc::boxed::Box::new(waiting) });
        }
        self.waiting.insert(waiting.entry.dot, waiting);
        Ok(())
    }

    /// Records more leaders holding a waiting entry.
    pub fn mark_seen(&mut self, dot: Dot, seen: LeaderSet) {
        if let Some(w) = self.waiting.get_mut(&dot) {
            w.seen_by = w.seen_by.union(seen);
        }
    }

    /// Removes and returns one entry that has become deliverable under `applied`, lowest dot first.
    pub fn take_ready(&mut self, applied: &VersionVector) -> Option<Waiting> {
        let origins: LeaderSet = self.waiting.keys().map(|d| d.origin).collect();
        for origin in origins {
            let next = Dot::new(origin, applied.get(origin).next());
            if let Some(w) = self.waiting.get(&next) {
                if w.entry.deps.le_except(applied, origin) {
                    return self.waiting.remove(&next);
                }
            }
        }
        None
    }

    /// Removes the entries `applied` already names (after a snapshot); returns their dots.
    pub fn drop_covered(&mut self, applied: &VersionVector) -> Vec<Dot> {
        let covered: Vec<Dot> = self.waiting.keys().copied().filter(|d| applied.contains(*d)).collect();
        for dot in &covered {
            self.waiting.remove(dot);
        }
        covered
    }

    /// The number of entries waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nothing is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The buffer's bound.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The entries waiting, in dot order.
    pub fn waiting(&self) -> impl Iterator<Item = &Waiting> + '_ {
        self.waiting.values()
    }

    /// The dots waiting, in ascending order.
    pub fn dots(&self) -> impl Iterator<Item = Dot> + '_ {
        self.waiting.keys().copied()
    }
}

impl VersionVector {
    /// Whether `self ≤ other` on every leader except `except` (the dependency check, which
    /// handles the origin's own counter separately).
    #[must_use]
    pub fn le_except(&self, other: &VersionVector, except: LeaderId) -> bool {
        self.iter().all(|(id, seq)| id == except || seq <= other.get(id))
    }

    /// The writes this vector names that `applied` does not, as one dot per leader: the highest
    /// missing sequence number. Used to say what a waiting entry waits for.
    #[must_use]
    pub fn missing_from(&self, applied: &VersionVector) -> Vec<Dot> {
        self.iter().filter(|(id, seq)| *seq > applied.get(*id)).map(|(id, seq)| Dot::new(id, seq)).collect()
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::clock::HlcTimestamp;
    use crate::entry::{Key, Op};
    use crate::rng::SeededRng;
    use crate::{Seq, WallTime};

    fn entry(origin: usize, seq: u64) -> SharedEntry {
        let leader = LeaderId::new(origin).expect("a leader");
        SharedEntry::new(Entry {
            dot: Dot::new(leader, Seq(seq)),
            hlc: HlcTimestamp::from_wall_time(WallTime::from_secs(seq), 0, leader),
            deps: VersionVector::new(),
            key: Key::new("k").expect("a key"),
            op: Op::Delete,
        })
    }

    /// The log against a plain model (a list in append order): every dot it was given is found
    /// exactly while it is held, across chunk boundaries, holes a snapshot leaves in an origin's
    /// sequence (short ones and long ones), and truncation from the front.
    #[test]
    fn finds_every_held_entry_by_dot() {
        for seed in 0..20 {
            let mut rng = SeededRng::new(seed);
            let mut log = ReplicationLog::new(5_000);
            let mut model: VecDeque<Dot> = VecDeque::new();
            let mut gone: Vec<Dot> = Vec::new();
            let mut next = [1u64; 4];
            for _ in 0..6_000 {
                let origin = rng.below(4) as usize;
                // Mostly the next sequence number; sometimes a jump past a snapshot.
                let jump = match rng.below(200) {
                    0 => 1 + rng.below(HOLE_MAX),
                    1 => HOLE_MAX + 1 + rng.below(5_000),
                    _ => 0,
                };
                let seq = next[origin] + jump;
                next[origin] = seq + 1;
                let e = entry(origin, seq);
                let dot = e.dot;
                if let Some(forced) = log.append(e, LeaderSet::EMPTY, WallTime::EPOCH) {
                    assert_eq!(model.pop_front(), Some(forced), "seed {seed}: the oldest entry goes");
                    gone.push(forced);
                }
                model.push_back(dot);
                if rng.chance(0.05) {
                    let n = rng.below(300) as usize;
                    let live = LeaderSet::EMPTY;
                    // Truncate the n oldest: a stable vector naming exactly them.
                    let mut stable = VersionVector::new();
                    for d in model.iter().take(n) {
                        stable.set(d.origin, stable.get(d.origin).max(d.seq));
                    }
                    let removed = log.truncate_stable(&stable, live);
                    for _ in 0..removed {
                        gone.extend(model.pop_front());
                    }
                }
            }
            assert_eq!(log.len(), model.len(), "seed {seed}");
            for (i, dot) in model.iter().enumerate() {
                let held = log.get(*dot).map(|l| l.entry.dot);
                assert_eq!(held, Some(*dot), "seed {seed}: entry {i} of the log");
            }
            for dot in &gone {
                assert!(log.get(*dot).is_none(), "seed {seed}: {dot} was truncated");
            }
            let order: Vec<Dot> = log.iter().map(|l| l.entry.dot).collect();
            assert_eq!(order, Vec::from(model.clone()), "seed {seed}: the log keeps its order");
        }
    }
}
