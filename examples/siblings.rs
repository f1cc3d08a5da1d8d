//! Siblings: a keyspace that keeps concurrent writes instead of choosing one. Keys under
//! `profile/` are stored with dotted version vectors (`Resolution::Siblings`, Riak style): a read
//! returns every live value with a *causal context* naming the writes the reader has now seen, and
//! a write carrying that context replaces exactly those writes and no others.
//!
//! Ada's profile is created in us-east. Then two clients edit it at once, one in us-east (adding
//! an email address) and one in eu-west (adding a phone number). Each read the profile first and
//! writes back with the context of that read, which names only the original; neither saw the
//! other's edit, so neither replaces it, and after replication every leader holds both edits as
//! siblings — nothing was silently dropped, as last-write-wins would have done. A third client, in
//! ap-south, reads both siblings, merges them (the union of their fields: application logic) and
//! writes the merge with the context of its read. That context covers both siblings, so the merge
//! replaces them, and every leader ends with one value.
//!
//! Runs on the in-process network with the system clock. Run it with
//! `cargo run --example siblings`; it exits with an error if a check fails.

use std::collections::BTreeSet;

use roundtable::prelude::*;
use roundtable::runtime::siblings::SiblingRead;

const KEY: &str = "profile/ada";
const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder()
        .leaders(REGIONS)
        .topology(Topology::AllToAll { relay: false })
        .keyspace("profile", Resolution::Siblings { max_siblings: 8 })
        .record_trace()
        .start()
        .await?;

    let receipt = cluster.leader("us-east")?.put(KEY, "name=Ada Lovelace").await?;
    println!("us-east created {KEY} as {}", receipt.dot);
    cluster.settled().await?;

    // Both clients read, then both write back with the context of their own read.
    let east_read = read(&cluster, "us-east").await?.ok_or("us-east has no profile")?;
    let west_read = read(&cluster, "eu-west").await?.ok_or("eu-west has no profile")?;
    println!("both clients read {KEY} with {} and {}", east_read.context, west_read.context);
    let east_edit = edit(&east_read, "email=ada@example.org");
    let west_edit = edit(&west_read, "phone=+44 20 7946 0000");
    let (east, west) = tokio::join!(
        cluster.leader("us-east")?.write(Write::with_context(KEY, Some(east_edit.into_bytes()), east_read.context)?),
        cluster.leader("eu-west")?.write(Write::with_context(KEY, Some(west_edit.into_bytes()), west_read.context)?),
    );
    println!("us-east wrote its edit as {}, eu-west as {}", east?.dot, west?.dot);
    cluster.settled().await?;

    println!("\nbefore the merge:");
    let before = show(&cluster).await?;
    if before.iter().any(|s| s.len() != 2 || *s != before[0]) {
        return Err("every leader should hold the same two siblings".into());
    }

    // A client in ap-south sees both edits and writes their merge with the context it read.
    let seen = read(&cluster, "ap-south").await?.ok_or("ap-south has no profile")?;
    let merged = merge(&seen);
    let receipt = cluster
        .leader("ap-south")?
        .write(Write::with_context(KEY, Some(merged.clone().into_bytes()), seen.context.clone())?)
        .await?;
    println!(
        "\nap-south read {} siblings ({}) and wrote the merge as {}",
        seen.siblings.len(),
        seen.context,
        receipt.dot
    );
    cluster.settled().await?;

    println!("\nafter the merge:");
    let after = show(&cluster).await?;
    for (region, siblings) in REGIONS.iter().zip(&after) {
        if siblings.len() != 1 || siblings[0].1 != merged {
            return Err(format!("{region} should hold only the merge, holds {siblings:?}").into());
        }
    }

    println!("\nthe siblings as the trace reports them:");
    for (id, event) in cluster.trace().leader_events() {
        if let TraceEvent::Siblings { .. } = event {
            println!("  {:>8} {event}", REGIONS[id.index()]);
        }
    }
    println!("\none value remains at every leader: {merged:?}");
    Ok(())
}

/// Reads [`KEY`]'s siblings at `region`.
async fn read(cluster: &Cluster, region: &str) -> Result<Option<SiblingRead>, Box<dyn std::error::Error>> {
    Ok(cluster.leader(region)?.get_siblings(KEY).await?)
}

/// A profile's fields as a set: `"email=…; name=…"` in field order.
fn fields(value: &Value) -> BTreeSet<String> {
    value.as_str().unwrap_or_default().split("; ").filter(|f| !f.is_empty()).map(str::to_owned).collect()
}

/// The profile a client read (one sibling here), with one more field.
fn edit(read: &SiblingRead, field: &str) -> String {
    let mut all = union(read);
    all.insert(field.to_owned());
    all.into_iter().collect::<Vec<_>>().join("; ")
}

/// The client's merge: the union of the siblings' fields (a field edited differently on both sides
/// would appear twice, for a person to resolve).
fn merge(read: &SiblingRead) -> String {
    union(read).into_iter().collect::<Vec<_>>().join("; ")
}

/// The fields of all the siblings a client read.
fn union(read: &SiblingRead) -> BTreeSet<String> {
    read.values().flat_map(fields).collect()
}

/// Prints every leader's siblings of [`KEY`] and returns them as `(dot, value)` text.
async fn show(cluster: &Cluster) -> Result<Vec<Vec<(String, String)>>, Box<dyn std::error::Error>> {
    let mut all = Vec::new();
    for region in REGIONS {
        let siblings: Vec<(String, String)> = read(cluster, region)
            .await?
            .map(|r| {
                r.siblings.iter().map(|(dot, v)| (dot.to_string(), v.as_str().unwrap_or("?").to_owned())).collect()
            })
            .unwrap_or_default();
        println!("  {region:>8}:");
        for (dot, value) in &siblings {
            println!("    {dot:<5} {value:?}");
        }
        all.push(siblings);
    }
    Ok(all)
}
