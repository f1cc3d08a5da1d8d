//! Quickstart: three leaders, one per region, each accepting writes; the replication core carries
//! every write to every other leader, concurrent writes to the same key are resolved by
//! last-write-wins on hybrid logical clock timestamps (and the trace says what was discarded),
//! and all three end with the same state.
//!
//! This version drives three `Replica` state machines by hand — the sans-IO core with no actors —
//! delivering each message through the wire format. Run it with `cargo run --example quickstart`.

use std::collections::VecDeque;
use std::time::Duration;

use roundtable::prelude::*;
use roundtable::runtime::wire;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let regions = ["us-east", "eu-west", "ap-south"];
    let members = LeaderSet::first(regions.len());
    let topology = Topology::AllToAll { relay: false };
    let mut leaders = Vec::new();
    for i in 0..regions.len() {
        leaders.push(Replica::new(LeaderId::new(i)?, members, topology.clone(), ReplicaConfig::default())?);
    }
    let name = |id: LeaderId| regions[id.index()];

    // Every leader reads the same (true) wall clock here; the simulator adds skew and drift.
    let mut now = WallTime::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
    let mut wire_queue: VecDeque<(LeaderId, LeaderId, Vec<u8>)> = VecDeque::new();

    // Writes at each leader, two of them to the same key at (nearly) the same time: a conflict.
    let writes =
        [(0, "user:42", "Ada"), (1, "user:7", "Grace"), (2, "user:42", "Ada Lovelace"), (1, "cart:9", "3 books")];
    for (at, key, value) in writes {
        now = now.saturating_add(Duration::from_millis(1));
        let leader = &mut leaders[at];
        let receipt = leader.handle_write(now, Key::new(key)?, Op::Put(Value::try_from(value)?))?;
        println!("{:>8} accepted {key} = {value:?} as {} at {}", regions[at], receipt.dot, receipt.hlc);
        collect(leader, &mut wire_queue, &name)?;
    }

    // Deliver every message (encoded with postcard and decoded at the receiver), in order.
    let mut delivered = 0;
    while let Some((from, to, frame)) = wire_queue.pop_front() {
        now = now.saturating_add(Duration::from_millis(40));
        let leader = &mut leaders[to.index()];
        leader.handle_frame(now, from, &frame);
        delivered += 1;
        collect(leader, &mut wire_queue, &name)?;
    }

    println!("\n{delivered} messages delivered; converged state:");
    for leader in &leaders {
        let state: Vec<String> =
            leader.store().iter().map(|(k, v)| format!("{}={}", k.as_str(), v.as_str().unwrap_or("?"))).collect();
        println!("{:>8} {} {}", name(leader.id()), leader.applied(), state.join(" "));
    }
    let first = leaders[0].store().fingerprint();
    if leaders.iter().any(|l| l.store().fingerprint() != first) {
        return Err("leaders did not converge".into());
    }
    println!("all {} leaders hold the same state", leaders.len());
    Ok(())
}

/// Takes a leader's effects: prints its trace, encodes its messages onto the wire queue.
fn collect(
    leader: &mut Replica,
    queue: &mut VecDeque<(LeaderId, LeaderId, Vec<u8>)>,
    name: &dyn Fn(LeaderId) -> &'static str,
) -> Result<(), wire::WireError> {
    let from = leader.id();
    let effects: Vec<Effect> = leader.drain_effects().collect();
    for effect in effects {
        match effect {
            Effect::Send { to, msg } => queue.push_back((from, to, wire::encode(&wire::Envelope::new(from, msg))?)),
            Effect::Trace(event @ TraceEvent::LwwDiscarded { .. }) => {
                println!("{:>8} conflict: {event}", name(from))
            }
            Effect::Trace(_) => {}
        }
    }
    Ok(())
}
