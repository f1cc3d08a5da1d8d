//! Shopping cart: Alice's cart is an add-wins observed-remove set (`CrdtKind::OrSet`) in the
//! `cart` keyspace, replicated to three leaders. Every add is tagged with a fresh dot; a remove
//! removes the tags its leader has seen, and only those. So when one leader removes an item while
//! another concurrently adds it again, the new add's tag survives the remove, and the item stays:
//! *add wins*. No clock decides anything, and no add is ever lost to a remove that did not see it.
//!
//! Alice fills her cart (milk, eggs, bread) and, in plain sequence, takes the bread out again —
//! a remove that saw the add, so the bread is gone everywhere. Then her laptop, talking to
//! eu-west, goes offline (the leader is isolated): on her phone, through us-east, she removes the
//! milk, while on the laptop she adds milk again. Neither leader has seen the other's write. When
//! the network heals, anti-entropy brings both writes everywhere, and every leader's cart has the
//! milk, from the laptop's add.
//!
//! Runs with the system clock on the simulator's network with the in-process model (instant, no
//! loss): the in-process transport a host gets by default cannot cut a leader off, the simulated
//! network can. Run it with `cargo run --example shopping_cart`; it exits with an error if a
//! check fails.

use std::collections::BTreeSet;
use std::time::Duration;

use roundtable::actors::CrdtState;
use roundtable::prelude::*;
use roundtable_sim::{NetworkModel, SimulatedNetwork};

const CART: &str = "cart/alice";
const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder()
        .leaders(REGIONS)
        .topology(Topology::AllToAll { relay: false })
        .keyspace("cart", Resolution::Crdt(CrdtKind::OrSet))
        .transport(SimulatedNetwork::new(NetworkModel::in_process(), 0))
        .record_trace()
        .start()
        .await?;

    for (region, item) in [("us-east", "milk"), ("eu-west", "eggs"), ("ap-south", "bread")] {
        let receipt = cluster.leader(region)?.write(Write::add(CART, item)?).await?;
        println!("{region:>8}: add {item:<5} ({})", receipt.dot);
    }
    cluster.settled().await?;
    let receipt = cluster.leader("us-east")?.write(Write::remove(CART, "bread")?).await?;
    println!(" us-east: remove bread ({}), after seeing its add", receipt.dot);
    cluster.settled().await?;
    println!("\nthe cart at every leader:");
    let before = show(&cluster).await?;
    expect_everywhere(&before, &["eggs", "milk"])?;

    // eu-west is cut off: the phone's remove and the laptop's add cannot see each other.
    let laptop = LeaderId::new(1)?;
    cluster.isolate(laptop)?;
    let phone = cluster.leader("us-east")?.write(Write::remove(CART, "milk")?).await?;
    let again = cluster.leader("eu-west")?.write(Write::add(CART, "milk")?).await?;
    println!("\neu-west isolated; us-east: remove milk ({}), eu-west: add milk ({})", phone.dot, again.dot);
    println!("the cart while they cannot talk:");
    show(&cluster).await?;
    cluster.heal(laptop)?;
    cluster.settled_within(Duration::from_secs(10)).await?;

    println!("\nhealed and settled; the cart at every leader:");
    let after = show(&cluster).await?;
    expect_everywhere(&after, &["eggs", "milk"])?;
    println!("\nwhat the isolation cost (anti-entropy repaired it after the heal):");
    for event in cluster.trace().events_of(TraceActor::Network) {
        println!("  net {event}");
    }
    println!("milk stays in the cart at every leader: the concurrent add wins over the remove");
    Ok(())
}

/// Prints the cart at every leader and returns the carts, in region order.
async fn show(cluster: &Cluster) -> Result<Vec<BTreeSet<String>>, Box<dyn std::error::Error>> {
    let mut carts = Vec::new();
    for region in REGIONS {
        let cart: BTreeSet<String> = match cluster.leader(region)?.get_crdt(CART).await? {
            Some(CrdtState::OrSet(set)) => set.iter().map(|v| v.as_str().unwrap_or("?").to_owned()).collect(),
            None => BTreeSet::new(),
            Some(other) => return Err(format!("{region}: {CART} is not an OR-set: {other:?}").into()),
        };
        println!("  {region:>8}: {}", cart.iter().cloned().collect::<Vec<_>>().join(", "));
        carts.push(cart);
    }
    Ok(carts)
}

/// Checks that every cart holds exactly `items`.
fn expect_everywhere(carts: &[BTreeSet<String>], items: &[&str]) -> Result<(), String> {
    let want: BTreeSet<String> = items.iter().map(|&i| i.to_owned()).collect();
    for (region, cart) in REGIONS.iter().zip(carts) {
        if *cart != want {
            return Err(format!("{region}'s cart is {cart:?}, expected {want:?}"));
        }
    }
    Ok(())
}
