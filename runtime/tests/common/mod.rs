//! A tiny harness for driving replicas by hand: messages in flight are data, the test decides
//! which to deliver, drop or duplicate, and every trace line is kept.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::Duration;

use roundtable_runtime::wire::{self, Envelope, PeerMessage};
use roundtable_runtime::{
    Dot, Effect, Key, LeaderId, LeaderSet, Op, Replica, ReplicaConfig, Topology, TraceEvent, Value, VersionVector,
    WallTime,
};

/// 2026-01-01T00:00:00Z.
pub const START_SECS: u64 = 1_767_225_600;

pub fn id(i: usize) -> LeaderId {
    LeaderId::new(i).expect("leader id in range")
}

pub fn key(k: &str) -> Key {
    Key::new(k).expect("valid key")
}

pub fn put(v: &str) -> Op {
    Op::Put(Value::new(v.as_bytes()).expect("valid value"))
}

/// Replicas and the messages in flight between them.
pub struct Net {
    pub replicas: Vec<Replica>,
    pub in_flight: Vec<(LeaderId, LeaderId, PeerMessage)>,
    /// True time.
    pub now: WallTime,
    /// Per replica, its raw clock's offset from true time in nanoseconds.
    pub offsets_ns: Vec<i64>,
    /// Per replica, the dots in the order they were applied.
    pub applied_order: Vec<Vec<Dot>>,
    /// Every entry accepted, by dot: its dependencies.
    pub deps: BTreeMap<Dot, VersionVector>,
    /// Every trace line, `L<i> <event>`.
    pub trace: Vec<String>,
    /// Every trace event, with the leader that emitted it.
    pub events: Vec<(LeaderId, TraceEvent)>,
    /// Links that lose every message (from, to).
    pub cut: Vec<(LeaderId, LeaderId)>,
    /// Per replica, what it asked to persist (with `ReplicaConfig::durable`), in order: a disk
    /// that syncs at once.
    pub disks: Vec<Vec<roundtable_runtime::Record>>,
}

impl Net {
    pub fn new(n: usize, topology: Topology, config: ReplicaConfig) -> Net {
        let members = LeaderSet::first(n);
        let replicas = (0..n)
            .map(|i| Replica::new(id(i), members, topology.clone(), config.clone()).expect("valid replica"))
            .collect();
        Net {
            replicas,
            in_flight: Vec::new(),
            now: WallTime::from_secs(START_SECS),
            offsets_ns: vec![0; n],
            applied_order: vec![Vec::new(); n],
            deps: BTreeMap::new(),
            trace: Vec::new(),
            events: Vec::new(),
            cut: Vec::new(),
            disks: vec![Vec::new(); n],
        }
    }

    /// The raw clock reading of replica `i` now.
    pub fn raw(&self, i: usize) -> WallTime {
        self.now.offset_by_ns(self.offsets_ns[i])
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
    }

    pub fn tick_time(&mut self) {
        self.advance(Duration::from_micros(100));
    }

    pub fn collect(&mut self, i: usize) {
        let from = id(i);
        let effects: Vec<Effect> = self.replicas[i].drain_effects().collect();
        for effect in effects {
            match effect {
                Effect::Send { to, msg } if !self.cut.contains(&(from, to)) => {
                    self.in_flight.push((from, to, msg));
                }
                Effect::Trace(event) => {
                    if let TraceEvent::Applied { dot, .. } = &event {
                        self.applied_order[i].push(*dot);
                    }
                    self.trace.push(format!("{from} {event}"));
                    self.events.push((from, event));
                }
                Effect::Persist(record) => self.disks[i].push(record),
                _ => {}
            }
        }
    }

    pub fn try_write(&mut self, i: usize, k: &str, v: &str) -> Result<Dot, roundtable_runtime::WriteError> {
        self.tick_time();
        let before = self.replicas[i].applied().clone();
        let raw = self.raw(i);
        let receipt = self.replicas[i].handle_write(raw, key(k), put(v));
        self.collect(i);
        let receipt = receipt?;
        self.deps.insert(receipt.dot, before);
        Ok(receipt.dot)
    }

    pub fn update(
        &mut self,
        i: usize,
        k: &str,
        update: roundtable_runtime::resolution::Update,
    ) -> Result<Dot, roundtable_runtime::WriteError> {
        self.tick_time();
        let before = self.replicas[i].applied().clone();
        let raw = self.raw(i);
        let receipt = self.replicas[i].handle_update(raw, key(k), update);
        self.collect(i);
        let receipt = receipt?;
        self.deps.insert(receipt.dot, before);
        Ok(receipt.dot)
    }

    pub fn write(&mut self, i: usize, k: &str, v: &str) -> Dot {
        self.try_write(i, k, v).expect("write accepted")
    }

    pub fn deliver(&mut self, index: usize) {
        self.tick_time();
        let (from, to, msg) = self.in_flight.remove(index);
        let bytes = wire::encode(&Envelope::new(from, msg)).expect("frame fits");
        let raw = self.raw(to.index());
        self.replicas[to.index()].handle_frame(raw, from, &bytes);
        self.collect(to.index());
    }

    /// Delivers everything in flight, oldest first, until nothing is left (bounded).
    pub fn deliver_all(&mut self) {
        for _ in 0..100_000 {
            if self.in_flight.is_empty() {
                return;
            }
            self.deliver(0);
        }
        panic!("messages kept flowing after 100,000 deliveries");
    }

    /// Ticks every replica (anti-entropy, truncation) after `d` of time.
    pub fn tick_all(&mut self, d: Duration) {
        self.advance(d);
        for i in 0..self.replicas.len() {
            let raw = self.raw(i);
            self.replicas[i].handle_timeout(raw);
            self.collect(i);
        }
    }

    /// Tells every replica in `to` the new live set.
    pub fn set_live(&mut self, live: LeaderSet) {
        for i in live {
            let raw = self.raw(i.index());
            self.replicas[i.index()].handle_topology(raw, live);
            self.collect(i.index());
        }
    }

    pub fn value(&self, i: usize, k: &str) -> Option<String> {
        self.replicas[i].read(&key(k)).and_then(|r| r.value).and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Exactly-once and causal order of every apply seen so far.
    pub fn check_causal_exactly_once(&self) -> Result<(), String> {
        for (i, order) in self.applied_order.iter().enumerate() {
            let mut applied = VersionVector::new();
            for dot in order {
                if applied.contains(*dot) {
                    return Err(format!("L{i} applied {dot} twice"));
                }
                if applied.get(dot.origin).next() != dot.seq {
                    return Err(format!("L{i} applied {dot} out of sequence (had {applied})"));
                }
                let deps = &self.deps[dot];
                if !deps.le(&applied) {
                    return Err(format!("L{i} applied {dot} before its dependencies {deps} (had {applied})"));
                }
                applied.set(dot.origin, dot.seq);
            }
        }
        Ok(())
    }

    /// Whether the replicas in `which` hold equal applied vectors and stores.
    pub fn converged(&self, which: LeaderSet) -> Result<(), String> {
        let replicas: Vec<&Replica> = which.iter().map(|i| &self.replicas[i.index()]).collect();
        same_state(&replicas)
    }

    pub fn assert_converged(&self) -> Result<(), String> {
        self.converged(LeaderSet::first(self.replicas.len()))
    }

    pub fn count(&self, pred: impl Fn(&TraceEvent) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| pred(e)).count()
    }
}

impl Net {
    /// Delivers, oldest first, every message in flight on a link `pred` accepts (and those the
    /// deliveries produce on such links), until none is left; the others stay in flight.
    pub fn deliver_all_where(&mut self, pred: impl Fn(LeaderId, LeaderId) -> bool) {
        for _ in 0..100_000 {
            let Some(k) = self.in_flight.iter().position(|(from, to, _)| pred(*from, *to)) else { return };
            self.deliver(k);
        }
        panic!("messages kept flowing after 100,000 deliveries");
    }
}

/// Whether `replicas` hold equal applied vectors and states; the first difference otherwise.
pub fn same_state(replicas: &[&Replica]) -> Result<(), String> {
    let Some((first, rest)) = replicas.split_first() else { return Ok(()) };
    for r in rest {
        if r.applied() != first.applied() {
            return Err(format!("{} applied {} but {} applied {}", r.id(), r.applied(), first.id(), first.applied()));
        }
        if r.state_digest() != first.state_digest() {
            return Err(format!(
                "{} and {} hold different states: {:?} vs {:?}",
                r.id(),
                first.id(),
                r.render_resolved(),
                first.render_resolved()
            ));
        }
    }
    Ok(())
}
