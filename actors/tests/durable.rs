//! Durable leaders in one process (issue 13): a data directory, write concerns up to fsync,
//! restarts that resume from the disk, and disks that are corrupt, truncated or full.

use std::time::Duration;

use roundtable_actors::storage::Disk;
use roundtable_actors::{Cluster, ClusterError, Get, LeaderError, Put, WriteConcern};
use roundtable_runtime::{Dot, LeaderId, Seq};

const WAIT: Duration = Duration::from_secs(5);

fn dot(leader: usize, seq: u64) -> Dot {
    Dot::new(LeaderId::new(leader).expect("id"), Seq(seq))
}

async fn value(cluster: &Cluster, leader: &str, key: &str) -> Option<String> {
    let read = cluster.leader(leader).ok()?.send(Get::new(key)).await.ok()?.ok()??;
    read.value.and_then(|v| v.as_str().map(str::to_owned))
}

#[actix::test]
async fn durable_writes_survive_a_restart_that_resumes_at_once_while_a_peer_is_down(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::builder().leaders(["a", "b", "c"]).data_dir(dir.path()).start().await?;
    let a = cluster.leader("a")?;
    for i in 0..20 {
        let put = Put::new(format!("k{i}"), format!("v{i}")).with_concern(WriteConcern::durable(WAIT));
        a.send(put).await??;
    }
    cluster.settled_within(WAIT).await?;
    assert!(dir.path().join("a.redb").exists());

    // b goes down; a crashes and comes back: from its disk, writable at once.
    cluster.crash("b")?;
    cluster.crash("a")?;
    cluster.restart("a")?;
    let receipt = a.send(Put::new("after", "restart").with_concern(WriteConcern::durable(WAIT))).await??;
    assert_eq!(receipt.dot, dot(0, 21), "the next dot, none issued twice");
    assert_eq!(value(&cluster, "a", "k7").await.as_deref(), Some("v7"));

    // b comes back from its own disk; everyone converges.
    cluster.restart("b")?;
    cluster.settled_within(WAIT).await?;
    for name in ["a", "b", "c"] {
        assert_eq!(value(&cluster, name, "after").await.as_deref(), Some("restart"), "at {name}");
        assert_eq!(value(&cluster, name, "k19").await.as_deref(), Some("v19"), "at {name}");
    }
    Ok(())
}

#[actix::test]
async fn a_whole_cluster_restarted_from_its_data_directory_has_its_data() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let cluster = Cluster::builder().leaders(["a", "b"]).data_dir(dir.path()).checkpoint_every(7).start().await?;
        for i in 0..30 {
            let leader = if i % 2 == 0 { "a" } else { "b" };
            let put = Put::new(format!("k{i}"), format!("v{i}")).with_concern(WriteConcern::durable_at(2, WAIT));
            cluster.leader(leader)?.send(put).await??;
        }
        cluster.shutdown().await;
    }
    let cluster = Cluster::builder().leaders(["a", "b"]).data_dir(dir.path()).start().await?;
    for name in ["a", "b"] {
        for i in 0..30 {
            let expected = format!("v{i}");
            assert_eq!(value(&cluster, name, &format!("k{i}")).await, Some(expected), "k{i} at {name}");
        }
    }
    let receipt = cluster.leader("b")?.send(Put::new("next", "1")).await??;
    assert_eq!(receipt.dot, dot(1, 16));
    Ok(())
}

#[actix::test]
async fn a_durable_concern_of_an_in_memory_leader_is_refused() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder().leaders(["a", "b"]).start().await?;
    let refused = cluster.leader("a")?.send(Put::new("k", "v").with_concern(WriteConcern::durable(WAIT))).await?;
    assert!(matches!(&refused, Err(LeaderError::NotDurable { leader }) if leader == "a"), "{refused:?}");
    Ok(())
}

#[actix::test]
async fn a_corrupt_or_truncated_disk_is_a_clear_error_never_a_panic_nor_an_empty_start(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let cluster = Cluster::builder().leaders(["a"]).data_dir(dir.path()).start().await?;
        for i in 0..50 {
            let put = Put::new(format!("k{i}"), "x".repeat(100)).with_concern(WriteConcern::durable(WAIT));
            cluster.leader("a")?.send(put).await??;
        }
        cluster.shutdown().await;
    }
    let file = dir.path().join("a.redb");
    let whole = std::fs::read(&file)?;
    {
        let (mut disk, stored) = Disk::open(&file)?;
        assert_eq!(stored.records.len(), 50);
        assert!(disk.check_integrity()?, "redb's own integrity check passes");
    }

    // Not a database at all.
    std::fs::write(&file, b"this is not a roundtable disk")?;
    let err = Cluster::builder().leaders(["a"]).data_dir(dir.path()).start().await.err().expect("refused");
    assert!(matches!(err, ClusterError::Disk(_)), "{err}");
    assert!(err.to_string().contains("a.redb"), "the error names the file: {err}");

    // Truncated anywhere: an error, or (when the cut spares the last commit) the data.
    for fraction in [1, 2, 3, 5, 7, 9] {
        std::fs::write(&file, &whole[..whole.len() * fraction / 10])?;
        match Cluster::builder().leaders(["a"]).data_dir(dir.path()).start().await {
            Err(err) => assert!(err.to_string().contains("a.redb"), "{fraction}/10: {err}"),
            Ok(cluster) => {
                let held = value(&cluster, "a", "k49").await;
                assert_eq!(held.as_deref(), Some("x".repeat(100).as_str()), "{fraction}/10: no silent empty start");
                cluster.shutdown().await;
            }
        }
    }

    // Bytes changed in the middle of the file: refused at open, or caught by the integrity
    // check, or not part of what the disk holds — never a silent loss.
    let mut changed = whole.clone();
    for b in &mut changed[whole.len() / 3..whole.len() / 3 + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, &changed)?;
    match Disk::open(&file) {
        Err(err) => assert!(err.to_string().contains("a.redb"), "{err}"),
        Ok((mut disk, stored)) => {
            let intact = stored.records.len() == 50;
            let caught = !matches!(disk.check_integrity(), Ok(true));
            assert!(intact || caught, "{} records read and the integrity check passed", stored.records.len());
        }
    }
    Ok(())
}

#[actix::test]
async fn a_leader_whose_disk_is_missing_from_its_data_directory_recovers_instead_of_reusing_dots(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let cluster = Cluster::builder().leaders(["a", "b"]).data_dir(dir.path()).start().await?;
        for i in 0..5 {
            let put = Put::new(format!("k{i}"), "v").with_concern(WriteConcern::durable_at(2, WAIT));
            cluster.leader("b")?.send(put).await??;
        }
        cluster.shutdown().await;
    }
    std::fs::remove_file(dir.path().join("b.redb"))?;
    let cluster = Cluster::builder().leaders(["a", "b"]).data_dir(dir.path()).start().await?;
    let b = cluster.leader("b")?;
    b.writable_within(Duration::from_secs(10)).await?;
    let receipt = b.send(Put::new("after", "loss")).await??;
    assert_eq!(receipt.dot, dot(1, 6), "b learnt its last sequence number from a");
    assert_eq!(value(&cluster, "b", "k4").await.as_deref(), Some("v"), "and got its writes back");
    Ok(())
}
