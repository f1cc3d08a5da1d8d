//! A leader in its own process, for two or three terminals: each terminal runs one node of a
//! local cluster and reads commands from its standard input.
//!
//! ```sh
//! cargo run --release -p roundtable-cli -- keygen --nodes 3 --dir cluster   # once: the keys
//! cargo run --example node --features tcp -- cluster n0                     # terminal 1
//! cargo run --example node --features tcp -- cluster n1                     # terminal 2
//! cargo run --example node --features tcp -- cluster n2                     # terminal 3
//! ```
//!
//! Then type `put colour blue` in one terminal and `get colour` in another; `quit` (or ctrl-d)
//! stops the node. A node listens for its peers on `127.0.0.1:7400 + i` (keygen's default
//! ports) and accepts writes once every member has answered it (a restarted node must learn
//! which sequence numbers it used before). For a demonstration only, each node derives the
//! other nodes' public keys from their key files in the shared directory; real nodes are given
//! the public keys alone (`roundtable node --config FILE.toml` reads them from its file).
//!
//! This is the host-application side of what `roundtable node` does: the `Cluster` builder with
//! `this_node`, `listen`, `identity` and a `peer` per other node (feature `tcp`).

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::Duration;

use roundtable::actors::tcp::Identity;
use roundtable::prelude::*;

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: node <keygen directory> <node name, e.g. n0>";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let me = args.next().ok_or(usage)?;
    // Every node of the directory: n0, n1, … while nI.key exists.
    let names: Vec<String> =
        (0..64).map(|i| format!("n{i}")).take_while(|n| dir.join(format!("{n}.key")).exists()).collect();
    let index = names.iter().position(|n| *n == me).ok_or_else(|| format!("no {me}.key in {}", dir.display()))?;
    let identity = |name: &str| -> Result<Identity, Box<dyn std::error::Error>> {
        Ok(Identity::from_private_hex(&std::fs::read_to_string(dir.join(format!("{name}.key")))?)?)
    };
    let addr = |i: usize| format!("127.0.0.1:{}", 7400 + i);

    let mut builder =
        Cluster::builder().leaders(names.clone()).this_node(me.clone()).listen(addr(index)).identity(identity(&me)?);
    for (i, name) in names.iter().enumerate().filter(|(i, _)| *i != index) {
        builder = builder.peer(name.clone(), addr(i), identity(name)?.public_key());
    }
    let cluster = builder.start().await?;
    let leader = cluster.leader(me.as_str())?.clone();
    println!("{me} listening on {}; waiting for every member to answer…", addr(index));
    leader.writable_within(Duration::from_secs(600)).await?;
    println!("{me} takes writes. Commands: put KEY VALUE, get KEY, del KEY, quit");

    // Standard input is read on a thread of its own; the lines come to the actix system here.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["put", key, value @ ..] if !value.is_empty() => match leader.put(*key, value.join(" ")).await {
                Ok(receipt) => println!("ok {} at {}", receipt.dot, receipt.hlc),
                Err(e) => println!("error: {e}"),
            },
            ["get", key] => match leader.get(*key).await {
                Ok(Some(read)) => match read.value {
                    Some(v) => println!("{} (written as {})", String::from_utf8_lossy(v.as_bytes()), read.dot),
                    None => println!("(deleted by {})", read.dot),
                },
                Ok(None) => println!("(nil)"),
                Err(e) => println!("error: {e}"),
            },
            ["del", key] => match leader.delete(*key).await {
                Ok(receipt) => println!("deleted as {}", receipt.dot),
                Err(e) => println!("error: {e}"),
            },
            ["quit"] => break,
            [] => {}
            _ => println!("commands: put KEY VALUE, get KEY, del KEY, quit"),
        }
    }
    println!("{me} stopping");
    Ok(())
}
