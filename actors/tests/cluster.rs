//! The cluster builder and the leader actor, with the real system clock and the in-process
//! network.

use std::time::Duration;

use roundtable_actors::{Cluster, ClusterError, Delete, Get, LeaderError, LeaderRef, Put};
use roundtable_runtime::{LeaderId, Topology};

#[actix::test]
async fn builder_errors_are_clear() {
    let err = Cluster::builder().start().await.err().expect("no leaders");
    assert_eq!(err.to_string(), "a cluster needs at least one leader");
    let err = Cluster::builder().leaders(["a", "b", "a"]).start().await.err().expect("duplicate");
    assert_eq!(err.to_string(), "two leaders are named \"a\"");
    let err = Cluster::builder().leader_count(65).start().await.err().expect("too many");
    assert!(matches!(err, ClusterError::TooManyLeaders(65)), "{err}");
    let hub = LeaderId::new(9).expect("id");
    let err = Cluster::builder().leader_count(3).topology(Topology::Star { hub }).start().await.err().expect("hub");
    assert!(err.to_string().contains("L9"), "{err}");
    let cluster = Cluster::builder().leaders(["x"]).start().await.expect("one leader is a cluster");
    assert!(matches!(cluster.leader("y"), Err(ClusterError::UnknownLeader(name)) if name == "y"));
}

#[actix::test]
async fn a_leader_ref_names_a_leader_by_name_or_by_id() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder().leaders(["us-east", "eu-west"]).start().await?;
    let by_name = LeaderRef::from("eu-west");
    let by_id = LeaderRef::from(LeaderId::new(1)?);
    assert_eq!((by_name.to_string(), by_id.to_string()), ("eu-west".to_owned(), "L1".to_owned()));
    assert_eq!(cluster.leader(&by_name)?.id(), cluster.leader(by_id)?.id());
    assert_eq!(LeaderRef::from(&"us-east".to_owned()), LeaderRef::from(String::from("us-east")));
    // Unknown either way: an error, not a panic.
    let unknown = cluster.leader(LeaderRef::from("ap-south")).expect_err("no such name");
    assert!(matches!(&unknown, ClusterError::UnknownLeader(name) if name == "ap-south"), "{unknown}");
    let beyond = cluster.crash(LeaderRef::from(LeaderId::new(2)?)).expect_err("no such id");
    assert!(matches!(&beyond, ClusterError::UnknownLeader(name) if name == "L2"), "{beyond}");
    Ok(())
}

#[actix::test]
async fn writes_replicate_in_process_and_reads_see_them() -> Result<(), Box<dyn std::error::Error>> {
    let cluster =
        Cluster::builder().leaders(["us-east", "eu-west", "ap-south"]).topology(Topology::Circle).start().await?;
    let receipt = cluster.leader("us-east")?.send(Put::new("user:42", "Ada")).await??;
    assert_eq!(receipt.dot.to_string(), "L0:1");
    cluster.leader("eu-west")?.send(Put::new("user:7", "Grace")).await??;
    cluster.leader("ap-south")?.send(Delete::new("user:7")).await??;
    cluster.settled_within(Duration::from_secs(5)).await?;
    for name in cluster.names() {
        let read = cluster.leader(name)?.send(Get::new("user:42")).await??.expect("replicated");
        assert_eq!(read.value.as_ref().and_then(|v| v.as_str()), Some("Ada"), "at {name}");
        let deleted = cluster.leader(name)?.send(Get::new("user:7")).await??.expect("tombstone");
        assert_eq!(deleted.value, None, "at {name}");
    }
    let metrics = cluster.metrics().await?;
    assert_eq!(metrics.writes, 3);
    assert!(metrics.network.messages() >= 6, "{metrics:?}");
    assert!(metrics.network.bytes() > 0);
    Ok(())
}

#[actix::test]
async fn bad_client_input_is_an_error_not_a_panic() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder().leader_count(2).start().await?;
    let leader = cluster.leader("L0")?;
    let empty = leader.send(Put::new("", "v")).await?;
    assert!(matches!(empty, Err(LeaderError::Data(_))), "{empty:?}");
    let huge = leader.send(Put::new("k", vec![0u8; 70 * 1024])).await?;
    assert_eq!(
        huge.map(|_| ()).map_err(|e| e.to_string()),
        Err("value is 71680 bytes, more than the limit of 65536".into())
    );
    Ok(())
}

#[actix::test]
async fn a_crashed_leader_refuses_then_restarts_and_catches_up() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder().leader_count(3).start().await?;
    cluster.leader("L0")?.send(Put::new("a", "1")).await??;
    cluster.settled_within(Duration::from_secs(5)).await?;
    let l1 = LeaderId::new(1)?;
    cluster.crash(l1)?;
    let refused = cluster.leader("L1")?.send(Put::new("b", "2")).await?;
    assert!(matches!(refused, Err(LeaderError::Down(ref name)) if name == "L1"), "{refused:?}");
    cluster.leader("L2")?.send(Put::new("c", "3")).await??;
    cluster.restart(l1)?;
    cluster.settled_within(Duration::from_secs(10)).await?;
    let read = cluster.leader("L1")?.send(Get::new("c")).await??.expect("caught up");
    assert_eq!(read.value.as_ref().and_then(|v| v.as_str()), Some("3"));
    Ok(())
}

#[actix::test]
async fn keyspaces_choose_their_resolution() -> Result<(), Box<dyn std::error::Error>> {
    use roundtable_actors::{CrdtKind, CrdtState, GetCrdt, GetSiblings, Resolution, Write};
    let cluster = Cluster::builder()
        .leaders(["a", "b", "c"])
        .keyspace("cart", Resolution::Crdt(CrdtKind::OrSet))
        .keyspace("likes", Resolution::Crdt(CrdtKind::OpCounter))
        .keyspace("profile", Resolution::Siblings { max_siblings: 4 })
        .start()
        .await?;
    // Concurrent-ish updates at every leader.
    cluster.leader("a")?.send(Write::add("cart/1", "book")?).await??;
    cluster.leader("b")?.send(Write::add("cart/1", "pen")?).await??;
    for name in ["a", "b", "c"] {
        cluster.leader(name)?.send(Write::increment("likes/post", 2)?).await??;
        cluster.leader(name)?.send(Put::new("profile/ada", format!("from {name}"))).await??;
    }
    cluster.leader("c")?.send(Write::decrement("likes/post", 1)?).await??;
    cluster.settled_within(Duration::from_secs(5)).await?;
    for name in ["a", "b", "c"] {
        let leader = cluster.leader(name)?;
        match leader.send(GetCrdt::new("cart/1")).await?? {
            Some(CrdtState::OrSet(set)) => assert_eq!(set.len(), 2, "at {name}"),
            other => panic!("cart at {name}: {other:?}"),
        }
        match leader.send(GetCrdt::new("likes/post")).await?? {
            Some(CrdtState::PnCounter(counter)) => assert_eq!(counter.value(), 5, "at {name}"),
            other => panic!("likes at {name}: {other:?}"),
        }
        // Put at each leader in turn, each one after replication of the previous: the later
        // blind writes did not carry a context, so all three are siblings.
        let read = leader.send(GetSiblings::new("profile/ada")).await??.expect("siblings");
        assert_eq!(read.siblings.len(), 3, "at {name}");
    }
    // A write with the read's context resolves the siblings everywhere.
    let read = cluster.leader("a")?.send(GetSiblings::new("profile/ada")).await??.expect("siblings");
    cluster.leader("a")?.send(Write::with_context("profile/ada", Some(b"merged".to_vec()), read.context)?).await??;
    cluster.settled_within(Duration::from_secs(5)).await?;
    let read = cluster.leader("c")?.send(GetSiblings::new("profile/ada")).await??.expect("value");
    assert_eq!(read.siblings.len(), 1);
    // The wrong kind of update for a keyspace is a clear error.
    let wrong = cluster.leader("a")?.send(Put::new("likes/post", "7")).await?;
    assert_eq!(
        wrong.map(|_| ()).map_err(|e| e.to_string()),
        Err("put does not fit key \"likes/post\" of a crdt OpCounter keyspace".into())
    );
    Ok(())
}

/// Collects what a subscription delivers.
struct Collector(std::sync::Arc<std::sync::Mutex<Vec<roundtable_actors::Changed>>>);

impl actix::Actor for Collector {
    type Context = actix::Context<Self>;
}

impl actix::Handler<roundtable_actors::Changed> for Collector {
    type Result = ();
    fn handle(&mut self, msg: roundtable_actors::Changed, _: &mut actix::Context<Self>) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(msg);
        }
    }
}

#[actix::test]
async fn subscribers_see_every_change_under_their_prefix_with_its_cause() -> Result<(), Box<dyn std::error::Error>> {
    use actix::Actor;
    use roundtable_actors::Subscribe;
    use roundtable_runtime::ChangeCause;
    let cluster = Cluster::builder().leaders(["a", "b", "c"]).start().await?;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let collector = Collector(seen.clone()).start();
    cluster.leader("c")?.send(Subscribe { prefix: "user:".into(), subscriber: collector.recipient() }).await??;
    cluster.leader("a")?.send(Put::new("user:1", "Ada")).await??;
    cluster.leader("c")?.send(Put::new("user:2", "Grace")).await??;
    cluster.leader("c")?.send(Put::new("other", "not for this subscriber")).await??;
    cluster.settled_within(Duration::from_secs(5)).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let seen = seen.lock().map_err(|_| "poisoned")?.clone();
    let summary: Vec<(String, ChangeCause)> = seen.iter().map(|c| (c.key.clone(), c.cause)).collect();
    assert_eq!(
        summary,
        vec![
            ("user:1".to_owned(), ChangeCause::Replicated { origin: LeaderId::new(0)? }),
            ("user:2".to_owned(), ChangeCause::LocalWrite),
        ]
    );
    Ok(())
}

#[actix::test]
async fn the_in_process_transport_refuses_link_faults() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder().leader_count(2).start().await?;
    let refused = cluster.isolate(LeaderId::new(1)?).map_err(|e| e.to_string());
    assert_eq!(
        refused,
        Err("this cluster's transport cannot make link faults; use the simulated network of roundtable-sim".into())
    );
    Ok(())
}

/// Flow control: when the network cannot keep up, messages wait in a bounded outbox per peer;
/// a full outbox refuses client writes with an error naming the peer (memory stays bounded),
/// drops further messages (counted), and anti-entropy repairs what they carried.
#[actix::test]
async fn a_full_outbox_refuses_writes_and_the_cluster_still_converges() -> Result<(), Box<dyn std::error::Error>> {
    use roundtable_actors::{FlowControl, PutBatch};
    let cluster = Cluster::builder()
        .leader_count(3)
        .flow_control(FlowControl { outbox_max: 4, network_mailbox: 1 })
        .start()
        .await?;
    let leader = cluster.leader("L0")?;
    // One message with 200 writes: 400 replicate messages for a network that takes one at a time.
    let batch = PutBatch::new((0..200).map(|i| (format!("k{i}"), b"v".to_vec())))?;
    let results = leader.send(batch).await?;
    assert!(results.iter().all(Result::is_ok), "the batch itself was accepted");
    let refused = leader.send(Put::new("one more", "v")).await?;
    let Err(LeaderError::Backpressure { peer, pending }) = refused else {
        panic!("expected backpressure, got {refused:?}");
    };
    assert!(peer.index() == 1 || peer.index() == 2, "{peer}");
    assert_eq!(pending, 4, "the outbox holds its bound, no more");
    let metrics = cluster.metrics().await?;
    assert!(metrics.outbox_dropped > 0, "messages beyond the bound were dropped and counted");
    // The outboxes drain, anti-entropy repairs the dropped messages, and writes are taken again.
    cluster.settled_within(Duration::from_secs(10)).await?;
    for name in cluster.names() {
        let read = cluster.leader(name)?.send(Get::new("k199")).await??;
        assert!(read.is_some(), "k199 reached {name}");
    }
    leader.send(Put::new("one more", "v")).await??;
    Ok(())
}
