//! The host handle: async calls with one error type, change notifications as a bounded stream,
//! and waiting until a restarted leader accepts writes.

use std::time::Duration;

use roundtable_actors::{Cluster, CrdtKind, Error, LeaderError, Resolution, Write};
use roundtable_runtime::resolution::CrdtState;
use roundtable_runtime::{ChangeCause, LeaderId, ReadError, Topology, WriteError};

#[actix::test]
async fn a_handle_puts_gets_deletes_and_batches() -> Result<(), Error> {
    let cluster = Cluster::builder().leaders(["us-east", "eu-west", "ap-south"]).start().await?;
    let east = cluster.leader("us-east")?;
    assert_eq!((east.id().index(), east.name()), (0, "us-east"));
    assert_eq!(cluster.id("ap-south")?.index(), 2);
    let receipt = east.put("user:42", "Ada").await?;
    assert_eq!(receipt.dot.to_string(), "L0:1");
    cluster.leader("eu-west")?.put("user:7", "Grace").await?;
    cluster.leader("ap-south")?.delete("user:7").await?;
    let batch = east.put_batch([("k1", "a"), ("k2", "b")]).await?;
    assert_eq!(batch.len(), 2);
    assert!(batch.iter().all(Result::is_ok));
    cluster.settled_within(Duration::from_secs(5)).await?;
    for leader in cluster.leaders() {
        let read = leader.get("user:42").await?.and_then(|r| r.value);
        assert_eq!(read.as_ref().and_then(|v| v.as_str()), Some("Ada"), "at {}", leader.name());
        let deleted = leader.get("user:7").await?.expect("a tombstone");
        assert_eq!(deleted.value, None, "at {}", leader.name());
        assert_eq!(leader.get("k2").await?.and_then(|r| r.value).as_ref().and_then(|v| v.as_str()), Some("b"));
    }
    // Bad input is an error value of the one type, not a panic.
    let empty = east.put("", "v").await.expect_err("an empty key is refused");
    assert!(matches!(empty, Error::Leader(LeaderError::Data(_))), "{empty}");
    Ok(())
}

#[actix::test]
async fn get_on_a_crdt_or_siblings_key_names_the_read_to_use() -> Result<(), Error> {
    let cluster = Cluster::builder()
        .leaders(["a", "b"])
        .keyspace("likes", Resolution::Crdt(CrdtKind::PnCounter))
        .keyspace("docs", Resolution::Siblings { max_siblings: 4 })
        .start()
        .await?;
    let a = cluster.leader("a")?;
    a.write(Write::increment("likes/post", 2)?).await?;
    let wrong = a.get("likes/post").await.expect_err("a counter has no register");
    assert_eq!(wrong.to_string(), "key \"likes/post\" is in a crdt PnCounter keyspace: read it with read_crdt");
    assert!(matches!(wrong, Error::Leader(LeaderError::Read(ReadError::WrongResolution { .. }))));
    let wrong = a.get("docs/readme").await.expect_err("siblings have no single register");
    assert!(wrong.to_string().ends_with("read it with read_siblings"), "{wrong}");
    match a.get_crdt("likes/post").await? {
        Some(CrdtState::PnCounter(counter)) => assert_eq!(counter.value(), 2),
        other => panic!("a PN-counter, not {other:?}"),
    }
    Ok(())
}

#[actix::test]
async fn subscribe_is_a_bounded_stream_with_no_actor_to_write() -> Result<(), Error> {
    let cluster = Cluster::builder().leader_count(2).topology(Topology::AllToAll { relay: false }).start().await?;
    let mut changes = cluster.leader("L1")?.subscribe("user:").await?;
    cluster.leader("L0")?.put("user:1", "Ada").await?;
    cluster.leader("L1")?.put("user:2", "Grace").await?;
    cluster.leader("L1")?.put("other", "not for this subscriber").await?;
    cluster.settled_within(Duration::from_secs(5)).await?;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let change =
            tokio::time::timeout(Duration::from_secs(5), changes.next()).await.expect("a change").expect("open");
        seen.push((change.key, change.cause));
    }
    assert_eq!(
        seen,
        vec![
            ("user:1".to_owned(), ChangeCause::Replicated { origin: LeaderId::new(0).expect("id") }),
            ("user:2".to_owned(), ChangeCause::LocalWrite),
        ]
    );
    assert!(changes.try_next().is_none(), "nothing outside the prefix");
    assert_eq!(changes.missed(), 0);

    // Bounded: a subscriber that does not read misses what does not fit, and is told how much.
    let mut slow = cluster.leader("L0")?.subscribe("").await?;
    let extra = 10;
    let puts: Vec<(String, &str)> =
        (0..roundtable_actors::SUBSCRIPTION_CAPACITY + extra).map(|i| (format!("k{i}"), "v")).collect();
    for chunk in puts.chunks(1000) {
        cluster.leader("L0")?.put_batch(chunk.iter().cloned()).await?;
    }
    assert_eq!(slow.missed(), extra as u64);
    let mut held = 0;
    while slow.try_next().is_some() {
        held += 1;
    }
    assert_eq!(held, roundtable_actors::SUBSCRIPTION_CAPACITY);
    Ok(())
}

#[actix::test]
async fn a_restarted_leader_can_be_awaited_until_it_accepts_writes() -> Result<(), Error> {
    let cluster = Cluster::builder().leader_count(3).start().await?;
    cluster.leader("L2")?.put("k", "before").await?;
    cluster.settled_within(Duration::from_secs(5)).await?;
    let l2 = cluster.leader("L2")?.clone();
    cluster.crash(l2.id())?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let down = l2.put("k", "while down").await.expect_err("down");
    assert!(matches!(down, Error::Leader(LeaderError::Down(ref name)) if name == "L2"), "{down}");
    cluster.restart(l2.id())?;
    // Right after the restart it refuses writes while it settles its recovery...
    let refused = l2.put("k", "too early").await.expect_err("recovering");
    assert!(matches!(refused.write_error(), Some(WriteError::CatchingUp { .. })), "{refused}");
    // ...and a host can wait for it instead of polling by hand.
    l2.writable_within(Duration::from_secs(10)).await?;
    let receipt = l2.put("k", "after").await?;
    assert_eq!(receipt.dot.origin, l2.id());
    let never = cluster.leader("L0")?.clone();
    cluster.crash(never.id())?;
    let waited = never.writable_within(Duration::from_millis(100)).await.expect_err("stays down");
    assert_eq!(waited.to_string(), "leader L0 did not accept writes within 100ms");
    Ok(())
}
