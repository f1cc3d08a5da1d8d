//! Quickstart: three leaders, one per region, all-to-all. Each accepts writes and replicates them
//! to the other two. Two clients write the same key at two leaders at once, neither having seen
//! the other's write: last-write-wins on hybrid logical clock timestamps keeps one and reports the
//! other as discarded. After `settled()` every leader answers every read the same way.
//!
//! A plain `#[actix::main]` program, the `Cluster` builder, one handle per leader, the system
//! clock and the in-process transport. Run it with `cargo run --example quickstart`.

use roundtable::prelude::*;

#[actix::main]
async fn main() -> Result<(), roundtable::Error> {
    let regions = ["us-east", "eu-west", "ap-south"];
    let cluster = Cluster::builder().leaders(regions).topology(Topology::AllToAll { relay: false }).record_trace();
    let cluster = cluster.start().await?;

    // One write after another, each acknowledged once applied at the leader that took it.
    for (region, key, value) in [("us-east", "user:7", "Grace"), ("eu-west", "cart:9", "3 books")] {
        let receipt = cluster.leader(region)?.put(key, value).await?;
        println!("{region:>8} acknowledged {key} = {value:?} as {} at {}", receipt.dot, receipt.hlc);
    }
    let receipt = cluster.leader("ap-south")?.delete("cart:9").await?;
    println!("ap-south acknowledged delete of cart:9 as {}", receipt.dot);

    // Two writes to one key, both in the leaders' mailboxes before either is replicated: a
    // conflict. ap-south stamps its write second, so every leader keeps "Ada Lovelace".
    let (east, south) = (cluster.leader("us-east")?, cluster.leader("ap-south")?);
    let (a, b) = tokio::join!(east.put("user:42", "Ada"), south.put("user:42", "Ada Lovelace"));
    println!("concurrently: us-east {} and ap-south {}", a?.dot, b?.dot);

    cluster.settled().await?;
    println!("\nsettled; what last-write-wins discarded, as the trace says at each leader:");
    for (id, event) in cluster.trace().leader_events() {
        if let TraceEvent::LwwDiscarded { .. } = event {
            println!("  {:>8} {event}", cluster.leader(id)?.name());
        }
    }

    println!("\nreads at every leader:");
    for key in ["cart:9", "user:42", "user:7"] {
        let mut reads = Vec::new();
        for leader in cluster.leaders() {
            reads.push(match leader.get(key).await? {
                Some(ReadValue { value: Some(v), dot, .. }) => format!("{v} ({dot})"),
                Some(ReadValue { value: None, dot, .. }) => format!("deleted ({dot})"),
                None => "absent".to_owned(),
            });
        }
        assert!(reads.iter().all(|r| r == &reads[0]), "{key} reads differently: {reads:?}");
        println!("  {key:<8} = {} at all of {}", reads[0], regions.join(", "));
    }

    let m = cluster.metrics().await?;
    println!("\n{} writes, {} messages ({} bytes)", m.writes, m.network.messages(), m.network.bytes());
    println!("duplicates dropped {}, lww discarded {}", m.duplicates_dropped, m.lww_discarded);
    Ok(())
}
