//! Local writes to one CRDT key through a [`Replica`], as the key's state grows: what a client's
//! `SADD` costs on a set that already holds many elements.
//!
//! The figure is a ratio within one run: the time per add while the set grows from `n` to `2n`
//! elements, against the time per add while it grows from 0 to `band` elements (the baseline,
//! measured first in the same process). A cost that does not depend on the set's size gives
//! ratios near 1; a copy or a full walk of the state per write gives ratios that grow with `n`.
//!
//! `cargo bench -p roundtable-benches --bench crdt_writes` runs it (a few seconds). Without
//! `--bench` (`cargo test -p roundtable-benches --benches`) it runs tiny sizes as a smoke test.

use std::time::{Duration, Instant};

use roundtable::runtime::resolution::{CrdtKind, CrdtUpdate, Keyspaces, Resolution, Update};
use roundtable::runtime::{Key, LeaderId, LeaderSet, Replica, ReplicaConfig, Topology, Value, WallTime};

/// Adds `count` fresh elements to the set under `key`, one local update each; the time per add.
fn adds(replica: &mut Replica, key: &Key, now: &mut WallTime, first: u64, count: u64) -> Duration {
    let values: Vec<Value> =
        (first..first + count).map(|i| Value::new(format!("e{i:08}").into_bytes()).expect("a value")).collect();
    let start = Instant::now();
    for v in values {
        *now = now.saturating_add(Duration::from_micros(10));
        replica.handle_update(*now, key.clone(), Update::Crdt(CrdtUpdate::Add(v))).expect("the add is accepted");
        let _ = replica.take_effects();
    }
    start.elapsed() / u32::try_from(count).expect("a small count")
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (band, sizes): (u64, &[u64]) = if full { (1_000, &[1_000, 4_000, 16_000]) } else { (10, &[10, 40]) };
    if !full {
        println!("SMOKE RUN (no `--bench` argument): tiny sizes, the figures below mean nothing.\n");
    }
    for kind in [CrdtKind::OrSet, CrdtKind::OpOrSet] {
        let me = LeaderId::new(0).expect("a leader");
        let members: LeaderSet = LeaderId::range(3).collect();
        let config = ReplicaConfig {
            keyspaces: Keyspaces::new(Resolution::Crdt(kind)),
            trace: false,
            log_entries_max: 1 << 20,
            ..ReplicaConfig::default()
        };
        let mut replica = Replica::new(me, members, Topology::AllToAll { relay: false }, config).expect("a replica");
        let key = Key::new("set").expect("a key");
        let mut now = WallTime::from_secs(1_800_000_000);
        let base = adds(&mut replica, &key, &mut now, 0, band);
        println!("{kind:?}: local adds to one key, 3 leaders (the others never answer)\n");
        println!("| set size while adding | time per add | ratio to 0 → {band} |\n|---|---|---|");
        println!("| 0 → {band} | {:.2} µs | 1 |", base.as_secs_f64() * 1e6);
        let mut held = band;
        for &n in sizes {
            if held < n {
                let _ = adds(&mut replica, &key, &mut now, held, n - held);
                held = n;
            }
            let t = adds(&mut replica, &key, &mut now, held, n);
            held += n;
            println!(
                "| {n} → {} | {:.2} µs | {:.2} |",
                2 * n,
                t.as_secs_f64() * 1e6,
                t.as_secs_f64() / base.as_secs_f64()
            );
        }
        println!();
    }
}
