//! CRDT counters: a warehouse's stock, counted at five leaders at once, on a network that loses a
//! fifth of the messages and delivers another fifth twice. The same stream of restocks
//! (increments) and sales (decrements), at randomly chosen leaders, goes to two counters:
//!
//! - `op/stock`, an **operation-based** counter (`CrdtKind::OpCounter`): each entry carries the
//!   operation ("+3 at L2"), which is not idempotent — applied twice it would count twice. It
//!   relies on the replication log's delivery: every entry has a dot (origin, sequence number),
//!   duplicates are recognised by their dot and dropped, and lost entries are re-sent by
//!   anti-entropy, in order, so every operation is applied exactly once at every leader.
//! - `state/stock`, a **state-based** PN-counter (`CrdtKind::PnCounter`): each entry carries a
//!   delta — the origin's new running total of its increments (or of its decrements) — and
//!   receivers join it by taking the maximum per leader, which is idempotent, commutative and
//!   associative, so duplicates and re-deliveries cannot miscount.
//!
//! After the cluster has settled, every leader's value of both counters must equal the arithmetic
//! total of the operations, exactly; the network's loss and duplication counts show what the
//! counters went through. The network's choices and the operations are seeded, so every run does
//! the same operations over the same kind of network (timings are real, so the exact counts of
//! lost and duplicated messages vary a little). The network is the simulator's
//! (`roundtable_sim::SimulatedNetwork`), plugged into an ordinary cluster as its transport. Run it with `cargo run --example crdt_counter`; it
//! exits with an error if a check fails.

use std::time::Duration;

use roundtable::actors::CrdtState;
use roundtable::prelude::*;
use roundtable::runtime::rng::SeededRng;
use roundtable_sim::{ms, NetworkModel, SimulatedNetwork};

const LEADERS: usize = 5;
const OPERATIONS: usize = 200;
const AMOUNT_MAX: u64 = 10;
const DROP_RATE: f64 = 0.2;
const DUPLICATE_RATE: f64 = 0.2;
const SEED: u64 = 42;
const KEYS: [&str; 2] = ["op/stock", "state/stock"];

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder()
        .leader_count(LEADERS)
        .topology(Topology::AllToAll { relay: false })
        .keyspace("op", Resolution::Crdt(CrdtKind::OpCounter))
        .keyspace("state", Resolution::Crdt(CrdtKind::PnCounter))
        .transport(SimulatedNetwork::new(
            NetworkModel::fixed(ms(1)).drop_rate(DROP_RATE).duplicate_rate(DUPLICATE_RATE),
            SEED,
        ))
        .start()
        .await?;
    println!(
        "{LEADERS} leaders, all-to-all; the network loses {:.0}% of messages and duplicates {:.0}%",
        DROP_RATE * 100.0,
        DUPLICATE_RATE * 100.0
    );

    // The same random restocks and sales go to both counters, at the same leader.
    let mut rng = SeededRng::new(SEED);
    let (mut total, mut restocks, mut sales) = (0i128, 0, 0);
    for _ in 0..OPERATIONS {
        let leader = cluster.names()[rng.below(LEADERS as u64) as usize].clone();
        let amount = 1 + rng.below(AMOUNT_MAX);
        let restock = rng.chance(0.6);
        for key in KEYS {
            let write = if restock { Write::increment(key, amount)? } else { Write::decrement(key, amount)? };
            cluster.leader(&leader)?.write(write).await?;
        }
        if restock {
            total += i128::from(amount);
            restocks += 1;
        } else {
            total -= i128::from(amount);
            sales += 1;
        }
    }
    println!("{OPERATIONS} operations ({restocks} restocks, {sales} sales) at random leaders; expected stock {total}");

    cluster.settled_within(Duration::from_secs(10)).await?;
    println!("\nsettled; every leader's counters:");
    for name in cluster.names() {
        let mut values = Vec::new();
        for key in KEYS {
            let value = match cluster.leader(name)?.get_crdt(key).await? {
                Some(CrdtState::PnCounter(c)) => c.value(),
                other => return Err(format!("{name}: {key} is not a counter: {other:?}").into()),
            };
            if value != total {
                return Err(format!("{name}: {key} = {value}, expected {total}").into());
            }
            values.push(format!("{key} = {value}"));
        }
        println!("  {name}: {}", values.join(", "));
    }

    let m = cluster.metrics().await?;
    println!(
        "\nnetwork: {} messages, {} lost, {} delivered twice; the leaders recognised and dropped {} duplicate \
         entries (network duplicates, and catch-ups re-sending what a leader already held)",
        m.network.messages(),
        m.network.dropped,
        m.network.duplicated,
        m.duplicates_dropped
    );
    for (kind, k) in &m.network.by_kind {
        println!("  {kind}: {} messages, {} bytes", k.messages, k.bytes);
    }
    if m.network.dropped == 0 || m.network.duplicated == 0 {
        return Err("the network should have lost and duplicated messages".into());
    }
    println!("both counters are exact at every leader: {total}");
    Ok(())
}
