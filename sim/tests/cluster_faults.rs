//! A cluster built by a host, with the simulator's network plugged in as its transport so that
//! a test can cut links.

use std::time::Duration;

use roundtable_actors::{Cluster, Get, Put};
use roundtable_runtime::{LeaderId, Topology};
use roundtable_sim::{NetworkModel, SimulatedNetwork};

#[actix::test]
async fn a_write_concern_waits_for_k_leaders_or_says_the_write_stands() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder()
        .leader_count(3)
        .topology(Topology::Circle)
        .transport(SimulatedNetwork::new(NetworkModel::in_process(), 0))
        .start()
        .await?;
    let receipt = cluster.leader("L0")?.send(Put::new("k", "v").acknowledged_by(3, Duration::from_secs(2))).await??;
    assert_eq!(receipt.dot.to_string(), "L0:1");
    // Cut L2 off: a write that wants all three cannot get there in time, and says so.
    cluster.isolate(LeaderId::new(2)?)?;
    let timed_out =
        cluster.leader("L0")?.send(Put::new("k", "w").acknowledged_by(3, Duration::from_millis(150))).await?;
    let message = timed_out.map(|_| ()).map_err(|e| e.to_string()).expect_err("not acknowledged by L2");
    assert!(
        message.starts_with("write L0:2 stands and is still propagating, but only 2 of the 3 leaders"),
        "{message}"
    );
    // A concern that can never be met is refused up front, before anything is written.
    for leaders in [0, 4] {
        let impossible =
            cluster.leader("L0")?.send(Put::new("k", "x").acknowledged_by(leaders, Duration::from_secs(1))).await?;
        let message = impossible.map(|_| ()).map_err(|e| e.to_string()).expect_err("impossible");
        assert_eq!(message, format!("a write concern of {leaders} leaders is impossible in a cluster of 3"));
    }
    // The write does stand: it is applied at L0 and L1.
    for name in ["L0", "L1"] {
        let read = cluster.leader(name)?.send(Get::new("k")).await??.expect("written");
        assert_eq!(read.value.as_ref().and_then(|v| v.as_str()), Some("w"), "at {name}");
    }
    Ok(())
}
