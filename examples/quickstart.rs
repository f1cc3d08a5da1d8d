//! Quickstart: a host program with three leaders, one per region, all-to-all. Each leader accepts
//! writes and replicates them to the other two; two clients write the same key at two leaders at
//! once, neither having seen the other's write, and last-write-wins on hybrid logical clock
//! timestamps keeps one and reports the other as discarded. After `settled()` every leader
//! answers every read the same way.
//!
//! This is the shape of a real embedding: a plain `#[actix::main]` program, the `Cluster` builder,
//! the system clock and the in-process network (the simulator in `examples/topologies.rs` adds
//! latency, loss and crashes). Run it with `cargo run --example quickstart`.

use roundtable::actors::TraceActor;
use roundtable::prelude::*;

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let regions = ["us-east", "eu-west", "ap-south"];
    // Record the trace (time since start) so that the LWW decisions can be shown below.
    let cluster = Cluster::builder()
        .leaders(regions)
        .topology(Topology::AllToAll { relay: false })
        .resolution(Resolution::LastWriteWins)
        .record_trace()
        .start()
        .await?;

    // One write after another, each acknowledged once applied at the leader that took it.
    for (region, key, value) in
        [("us-east", "user:7", "Grace"), ("eu-west", "cart:9", "3 books"), ("ap-south", "session:1", "tok")]
    {
        let receipt = cluster.leader(region)?.send(Put::new(key, value)).await??;
        println!("{region:>8} acknowledged {key} = {value:?} as {} at {}", receipt.dot, receipt.hlc);
    }
    let receipt = cluster.leader("eu-west")?.send(Delete::new("session:1")).await??;
    println!(" eu-west acknowledged delete of session:1 as {} at {}", receipt.dot, receipt.hlc);

    // Two writes to one key, both in the leaders' mailboxes before either is replicated: a
    // conflict. ap-south takes its write second, so its timestamp is the later one (or equal, and
    // ties go to the higher leader id): every leader keeps "Ada Lovelace".
    let (east, south) = tokio::join!(
        cluster.leader("us-east")?.send(Put::new("user:42", "Ada")),
        cluster.leader("ap-south")?.send(Put::new("user:42", "Ada Lovelace")),
    );
    for (region, receipt) in [("us-east", east??), ("ap-south", south??)] {
        println!("{region:>8} acknowledged user:42 concurrently as {} at {}", receipt.dot, receipt.hlc);
    }

    cluster.settled().await?;
    println!("\nsettled; the conflict as the trace reports it:");
    for line in cluster.trace().matching("lww") {
        if let TraceActor::Leader(id) = line.actor {
            println!("  {:>8} {}", regions[id.index()], line.text);
        }
    }

    println!("\nreads at every leader:");
    for key in ["cart:9", "session:1", "user:42", "user:7"] {
        let mut reads = Vec::new();
        for region in regions {
            let read = cluster.leader(region)?.send(Get::new(key)).await??;
            reads.push(match read {
                Some(ReadValue { value: Some(v), dot, .. }) => format!("{v} ({dot})"),
                Some(ReadValue { value: None, dot, .. }) => format!("deleted ({dot})"),
                None => "absent".to_owned(),
            });
        }
        if reads.iter().any(|r| r != &reads[0]) {
            return Err(format!("{key} reads differently: {reads:?}").into());
        }
        println!("  {key:<10} = {} at all of {}", reads[0], regions.join(", "));
    }

    let m = cluster.metrics().await?;
    println!("\nmetrics: {} writes, {} messages ({} bytes)", m.writes, m.network.messages(), m.network.bytes());
    for (kind, k) in &m.network.by_kind {
        println!("  {kind}: {} messages, {} bytes", k.messages, k.bytes);
    }
    println!("  duplicates dropped {}, lww discarded {}", m.duplicates_dropped, m.lww_discarded);
    Ok(())
}
