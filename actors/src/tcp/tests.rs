//! Nodes over loopback in one test process (one actix system, one cluster per node), and a raw
//! peer driven by hand for what a well-behaved node never sends.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use roundtable_runtime::clock::HlcTimestamp;
use roundtable_runtime::wire::{Envelope, PeerMessage, ReplicatedEntry};
use roundtable_runtime::{Dot, Entry, Key, LeaderId, LeaderSet, Op, Seq, SharedEntry, Topology, Value, VersionVector};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::link::{decode, encode, Hello, LinkMessage};
use super::noise::{handshake, Role, SecureLink};

/// Connects to `target` from the loopback address `source`.
async fn connect_from(source: &str, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().map_err(|_| std::io::Error::other("an address"))?)?;
    socket.connect(target).await
}
use super::{members_digest, Identity, LinkLimits, LINK_VERSION};
use crate::messages::{Get, Put};
use crate::{Cluster, NetStats};

const LIMIT: Duration = Duration::from_secs(20);

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("its address");
    (listener, addr)
}

fn id(i: usize) -> LeaderId {
    LeaderId::new(i).expect("a leader id")
}

/// The members `names`; node `i` hosts leader `i`. Nodes listed in `raw` are not started:
/// their identity and address are returned for the test to play them by hand.
struct Plan {
    names: Vec<String>,
    identities: Vec<Identity>,
    listeners: Vec<Option<TcpListener>>,
    addrs: Vec<SocketAddr>,
}

impl Plan {
    fn new(n: usize) -> Plan {
        let (listeners, addrs): (Vec<_>, Vec<_>) = (0..n).map(|_| bind()).map(|(l, a)| (Some(l), a)).unzip();
        Plan {
            names: names(n),
            identities: (0..n).map(|_| Identity::generate().expect("a key")).collect(),
            listeners,
            addrs,
        }
    }

    async fn start(&mut self, i: usize, topology: Topology, limits: LinkLimits) -> Cluster {
        self.start_with(i, topology, limits, true).await
    }

    async fn start_with(&mut self, i: usize, topology: Topology, limits: LinkLimits, recover: bool) -> Cluster {
        let mut builder = Cluster::builder()
            .leaders(self.names.clone())
            .topology(topology)
            .this_node(self.names[i].clone())
            .listener(self.listeners[i].take().expect("each node starts once"))
            .identity(self.identities[i].clone())
            .link_limits(limits)
            .recover_on_start(recover)
            .record_trace();
        for j in (0..self.names.len()).filter(|&j| j != i) {
            builder = builder.peer(self.names[j].clone(), self.addrs[j].to_string(), self.identities[j].public_key());
        }
        builder.start().await.expect("a node starts")
    }

    /// Node `i`'s listening socket, for the test to play that node by hand.
    fn raw_listener(&mut self, i: usize) -> tokio::net::TcpListener {
        let l = self.listeners[i].take().expect("the node's socket, not taken yet");
        l.set_nonblocking(true).expect("non-blocking");
        tokio::net::TcpListener::from_std(l).expect("a tokio listener")
    }

    fn hello(&self, i: usize) -> Hello {
        Hello {
            link_version: LINK_VERSION,
            protocol: roundtable_runtime::wire::PROTOCOL_VERSION,
            members: members_digest(&self.names),
            leaders: LeaderSet::single(id(i)),
        }
    }
}

fn quick() -> LinkLimits {
    LinkLimits {
        handshake_timeout: Duration::from_millis(500),
        backoff_max: Duration::from_millis(200),
        ..LinkLimits::default()
    }
}

/// Waits until every node's leader accepts writes (a node starts by recovering: it waits for
/// every member's digest).
async fn writable(nodes: &[&Cluster]) {
    for node in nodes {
        for leader in node.leaders() {
            leader.writable_within(LIMIT).await.expect("the leader becomes writable once every member answered");
        }
    }
}

async fn read(cluster: &Cluster, key: &str) -> Option<Vec<u8>> {
    let leader = cluster.leaders().next().expect("a hosted leader");
    leader.send(Get::new(key)).await.ok()?.ok()?.and_then(|r| r.value).map(|v| v.as_bytes().to_vec())
}

/// Waits until `key` reads `value` at `cluster`; false after [`LIMIT`].
async fn eventually(cluster: &Cluster, key: &str, value: &[u8]) -> bool {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline {
        if read(cluster, key).await.as_deref() == Some(value) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn stats(cluster: &Cluster) -> NetStats {
    cluster.transport().stats().await.expect("the transport answers")
}

/// Writes at every node reach every node, in each topology, at 3 and 5 nodes; no link is
/// refused and no frame rejected.
#[test]
fn nodes_over_loopback_converge_in_every_topology() {
    for (n, topology) in [
        (3, Topology::AllToAll { relay: false }),
        (3, Topology::Circle),
        (5, Topology::Star { hub: id(0) }),
        (5, Topology::Circle),
    ] {
        actix::System::new().block_on(async {
            let mut plan = Plan::new(n);
            let mut nodes = Vec::new();
            for i in 0..n {
                nodes.push(plan.start(i, topology.clone(), quick()).await);
            }
            writable(&nodes.iter().collect::<Vec<_>>()).await;
            for (i, node) in nodes.iter().enumerate() {
                let hosted: Vec<&str> = node.leaders().map(|l| l.name()).collect();
                assert_eq!(hosted, [format!("n{i}")], "a node's handles are the leaders it hosts, by their names");
                assert!(matches!(node.leader(format!("n{}", (i + 1) % n)), Err(crate::ClusterError::NotHosted(_))));
                let leader = node.leaders().next().expect("hosted");
                leader.send(Put::new(format!("k{i}"), format!("v{i}"))).await.expect("answers").expect("accepted");
            }
            for node in &nodes {
                for i in 0..n {
                    assert!(
                        eventually(node, &format!("k{i}"), format!("v{i}").as_bytes()).await,
                        "{topology:?} n={n}: k{i}"
                    );
                }
            }
            for node in &nodes {
                let s = stats(node).await;
                assert_eq!((s.refused_links, s.rejected_frames), (0, 0), "{topology:?} n={n}: {s:?}");
                assert!(s.link_bytes > 0);
            }
        });
    }
}

/// Plays node `me` by hand: accepts one connection from a real node, runs the handshake and
/// the hello, and returns the link.
async fn accept_as(plan: &Plan, me: usize, listener: tokio::net::TcpListener) -> SecureLink {
    let (stream, _) = tokio::time::timeout(LIMIT, listener.accept()).await.expect("a node dials").expect("accept");
    let (mut link, _) =
        handshake(stream, &plan.identities[me], Role::Responder, 2 << 20, LIMIT).await.expect("handshake");
    let theirs = link.reader.recv().await.expect("hello").expect("not closed");
    assert!(matches!(decode(&theirs), Ok(LinkMessage::Hello(_))));
    link.writer.send(&encode(&LinkMessage::Hello(plan.hello(me))).expect("encodes")).await.expect("hello sent");
    link
}

/// Write `seq` of leader `origin` (after its write `seq - 1`): `key` = `value`.
fn own_write(origin: LeaderId, seq: u64, key: &str, value: Value) -> ReplicatedEntry {
    let mut deps = VersionVector::new();
    deps.set(origin, Seq(seq - 1));
    let entry = Entry {
        dot: Dot::new(origin, Seq(seq)),
        hlc: HlcTimestamp::from_wall_time(roundtable_runtime::WallTime::from_secs(1_767_225_600 + seq), 0, origin),
        deps,
        key: Key::new(key).expect("a key"),
        op: Op::Put(value),
    };
    ReplicatedEntry { entry: SharedEntry::new(entry), seen_by: LeaderSet::single(origin) }
}

/// Leader `origin`'s first write, `key` = "forged".
fn write_from(origin: usize, key: &str) -> PeerMessage {
    let value = Value::new(b"forged".to_vec()).expect("a value");
    PeerMessage::Replicate { entries: vec![own_write(id(origin), 1, key, value)], catch_up: false }
}

/// An authenticated peer that claims another sender is rejected and counted, its write never
/// applied; the same peer's own writes are accepted; an oversize frame closes its link, counted.
#[test]
fn a_spoofed_sender_is_rejected_and_an_oversize_frame_closes_the_link() {
    actix::System::new().block_on(async {
        let mut plan = Plan::new(3);
        let raw = plan.raw_listener(2);
        // Fresh starts: the raw peer does not run the recovery exchange a restarting leader waits
        // for.
        let a = plan.start_with(0, Topology::AllToAll { relay: false }, quick(), false).await;
        let _b = plan.start_with(1, Topology::AllToAll { relay: false }, quick(), false).await;
        // Node 0 dials node 2 (the test).
        let mut link = accept_as(&plan, 2, raw).await;
        let spoofed = LinkMessage::Peer { to: id(0), envelope: Envelope::new(id(1), write_from(1, "spoofed")) };
        link.writer.send(&encode(&spoofed).expect("encodes")).await.expect("sent");
        let honest = LinkMessage::Peer { to: id(0), envelope: Envelope::new(id(2), write_from(2, "honest")) };
        link.writer.send(&encode(&honest).expect("encodes")).await.expect("sent");
        assert!(eventually(&a, "honest", b"forged").await, "the link's own leader's write is applied");
        assert_eq!(read(&a, "spoofed").await, None, "a write under another sender's name is not");
        assert_eq!(stats(&a).await.rejected_frames, 1);
        let trace = a.trace();
        assert_eq!(
            trace.count(|r| matches!(&r.event, crate::trace::Event::Network(crate::trace::NetworkEvent::Rejected { reason, .. }) if reason.contains("claims to come from"))),
            1,
            "the rejection is traced"
        );

        // A frame announcing more than the limit: the node closes the link and counts it.
        let oversize = vec![0u8; (1 << 20) + 100];
        link.writer.send(&oversize).await.expect("sent");
        let closed = tokio::time::timeout(LIMIT, async {
            // The node's heartbeats may still come first; the link then ends.
            while let Ok(Some(frame)) = link.reader.recv().await {
                assert!(matches!(decode(&frame), Ok(LinkMessage::Heartbeat { .. })), "only heartbeats: {frame:?}");
            }
        })
        .await;
        assert!(closed.is_ok(), "the node closes the link");
        let closed_for_size = |r: &crate::trace::Record| {
            matches!(&r.event, crate::trace::Event::Network(crate::trace::NetworkEvent::LinkDown { reason, .. }) if reason.contains("exceeds the limit"))
        };
        let deadline = tokio::time::Instant::now() + LIMIT;
        while a.trace().count(closed_for_size) == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(a.trace().count(closed_for_size), 1, "the link went down for the frame's size");
        assert_eq!(stats(&a).await.rejected_frames, 2, "and the oversize frame is counted as rejected");
    });
}

/// Counts `a`'s refusals whose reason contains `needle`.
fn refusals(cluster: &Cluster, needle: &str) -> usize {
    cluster.trace().count(|r| {
        matches!(&r.event, crate::trace::Event::Network(crate::trace::NetworkEvent::LinkRefused { reason, .. }) if reason.contains(needle))
    })
}

async fn until_refused(cluster: &Cluster, needle: &str) -> usize {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while refusals(cluster, needle) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    refusals(cluster, needle)
}

/// A node with the wrong identity is refused and counted, and none of its writes reach a
/// replica; garbage bytes, a connection that sends a byte at a time and a burst of 1,000
/// connections are refused too, and meanwhile the healthy peers keep replicating.
#[test]
fn impostors_garbage_slow_and_bursty_connections_leave_healthy_peers_serving() {
    actix::System::new().block_on(async {
        let mut plan = Plan::new(3);
        // Fresh starts: node 2 is never there to answer the recovery exchange.
        let a = plan.start_with(0, Topology::AllToAll { relay: false }, quick(), false).await;
        let b = plan.start_with(1, Topology::AllToAll { relay: false }, quick(), false).await;
        // An impostor takes node 2's place: its address and name, but a key of its own. Nodes
        // 0 and 1 dial it (the lower id dials) and find the wrong key.
        let impostor_key = Identity::generate().expect("a key");
        let mut impostor = Cluster::builder()
            .leaders(plan.names.clone())
            .this_node(plan.names[2].clone())
            .listener(plan.listeners[2].take().expect("node 2's socket"))
            .identity(impostor_key)
            .link_limits(quick())
            .recover_on_start(false)
            .peer(plan.names[0].clone(), plan.addrs[0].to_string(), plan.identities[0].public_key())
            .peer(plan.names[1].clone(), plan.addrs[1].to_string(), plan.identities[1].public_key());
        impostor = impostor.record_trace();
        let impostor = impostor.start().await.expect("starts");
        let leader = impostor.leaders().next().expect("hosted");
        leader.send(Put::new("impostor", "x")).await.expect("answers").expect("accepted locally");

        let target = plan.addrs[1];
        // Garbage instead of a handshake.
        let mut garbage = TcpStream::connect(target).await.expect("connect");
        garbage.write_all(&[0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).await.expect("write");
        // A connection that sends one byte at a time and never finishes (from its own address,
        // so that the burst below does not crowd it out).
        let slow = actix::spawn(async move {
            let Ok(mut s) = connect_from("127.0.0.7", target).await else { return };
            // A first handshake message that announces 32 bytes, then trickles them.
            if s.write_all(&[0, 32]).await.is_err() {
                return;
            }
            for _ in 0..30 {
                if s.write_all(&[0]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        // A burst of 1,000 connections.
        let mut burst = Vec::new();
        for _ in 0..1000 {
            if let Ok(s) = TcpStream::connect(target).await {
                burst.push(s);
            }
        }
        // Healthy peers keep replicating through all this.
        for i in 0..20 {
            let w = a.leaders().next().expect("hosted");
            w.send(Put::new(format!("during{i}"), "ok")).await.expect("answers").expect("accepted");
        }
        for i in 0..20 {
            assert!(eventually(&b, &format!("during{i}"), b"ok").await, "write {i} reached the healthy peer");
        }
        drop(burst);
        assert!(until_refused(&a, "not the configured one").await >= 1, "node 0 refused the impostor's key");
        assert!(until_refused(&b, "not the configured one").await >= 1, "node 1 refused the impostor's key");
        assert!(until_refused(&b, "noise").await >= 1, "node 1 refused the garbage");
        assert!(until_refused(&b, "timed out").await >= 1, "node 1 dropped the slow connection");
        assert!(until_refused(&b, "too many handshakes").await >= 1, "node 1 bounded the burst");
        slow.abort();
        assert_eq!(read(&a, "impostor").await, None, "the impostor's write reached no replica");
        assert_eq!(read(&b, "impostor").await, None);
    });
}

/// Heartbeats travel over the links: when a node's leader goes silent, every other node's
/// supervisor declares it dead and rewires from its own view; when it returns, they take it back
/// and it catches up by anti-entropy with the writes it missed.
#[test]
fn a_silent_node_is_declared_dead_across_nodes_and_catches_up_when_back() {
    use crate::supervisor::Liveness;
    actix::System::new().block_on(async {
        let mut plan = Plan::new(3);
        let mut nodes = Vec::new();
        for i in 0..3 {
            nodes.push(plan.start(i, Topology::Circle, quick()).await);
        }
        writable(&nodes.iter().collect::<Vec<_>>()).await;
        let live = |c: &Cluster| {
            let sup = c.supervisor().clone();
            async move { sup.send(Liveness).await.expect("the supervisor answers").0 }
        };
        let until = |c: Cluster, want: LeaderSet| async move {
            let deadline = tokio::time::Instant::now() + LIMIT;
            while tokio::time::Instant::now() < deadline {
                if live(&c).await == want {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        };
        let all = LeaderSet::first(3);
        // Heartbeats crossed the links: nobody was declared dead a second after the start.
        tokio::time::sleep(Duration::from_secs(1)).await;
        for node in &nodes {
            assert_eq!(live(node).await, all, "every node sees every leader live");
        }
        nodes[1].crash(plan.names[1].as_str()).expect("crash");
        let without = all.without(id(1));
        assert!(until(nodes[0].clone(), without).await, "node 0 declares leader 1 dead");
        assert!(until(nodes[2].clone(), without).await, "node 2 declares leader 1 dead");
        // The circle closed around the dead leader: a write at node 0 still reaches node 2.
        let w = nodes[0].leaders().next().expect("hosted");
        w.send(Put::new("while-down", "x")).await.expect("answers").expect("accepted");
        assert!(eventually(&nodes[2], "while-down", b"x").await);
        nodes[1].restart(plan.names[1].as_str()).expect("restart");
        assert!(until(nodes[0].clone(), all).await, "node 0 takes leader 1 back");
        writable(&[&nodes[1]]).await;
        assert!(eventually(&nodes[1], "while-down", b"x").await, "the returning leader catches up");
    });
}

/// A connection with a key no peer has is refused ("unknown identity"), and a configured peer
/// that dials a node it should be dialed by is refused too (two links per pair would replace
/// each other for ever).
#[test]
fn unknown_keys_and_wrong_direction_dials_are_refused() {
    actix::System::new().block_on(async {
        let mut plan = Plan::new(3);
        let a = plan.start_with(0, Topology::AllToAll { relay: false }, quick(), false).await;
        let stranger = Identity::generate().expect("a key");
        let stream = TcpStream::connect(plan.addrs[0]).await.expect("connect");
        let (mut link, key) =
            handshake(stream, &stranger, Role::Initiator, 2 << 20, LIMIT).await.expect("noise completes");
        assert_eq!(key, plan.identities[0].public_key());
        assert!(matches!(link.reader.recv().await, Ok(None) | Err(_)), "the node closes without a hello");
        assert_eq!(until_refused(&a, "unknown identity").await, 1);

        // Node 2's real key, dialing node 0 (node 0 is the one that dials node 2).
        let stream = TcpStream::connect(plan.addrs[0]).await.expect("connect");
        let (mut link, _) =
            handshake(stream, &plan.identities[2], Role::Initiator, 2 << 20, LIMIT).await.expect("noise");
        assert!(matches!(link.reader.recv().await, Ok(None) | Err(_)));
        assert_eq!(until_refused(&a, "this node is the one that dials it").await, 1);
    });
}

/// Many idle connections from one address cannot take the handshake slots a peer needs: a
/// node started while another address holds 100 connections open links within 2 seconds.
#[test]
fn idle_connections_from_one_address_do_not_lock_out_peers() {
    actix::System::new().block_on(async {
        let mut plan = Plan::new(2);
        let slow_handshakes = LinkLimits { handshake_timeout: Duration::from_secs(10), ..quick() };
        let b = plan.start_with(1, Topology::AllToAll { relay: false }, slow_handshakes, false).await;
        let mut idle = Vec::new();
        for _ in 0..100 {
            if let Ok(s) = connect_from("127.0.0.99", plan.addrs[1]).await {
                idle.push(s);
            }
        }
        assert!(idle.len() >= 90, "the attacker's connections were accepted by the kernel");
        let a = plan.start_with(0, Topology::AllToAll { relay: false }, slow_handshakes, false).await;
        let w = a.leaders().next().expect("hosted");
        w.send(Put::new("through", "yes")).await.expect("answers").expect("accepted");
        let linked = tokio::time::timeout(Duration::from_secs(2), eventually(&b, "through", b"yes")).await;
        assert!(matches!(linked, Ok(true)), "node 0 linked to node 1 despite the idle connections");
        assert!(until_refused(&b, "too many handshakes from this address").await >= 1);
        drop(idle);
    });
}

/// A peer that sends megabytes while it reads nothing: the node keeps reading while its own
/// writes to that peer are stuck, so every frame the peer sends is taken in and applied. (A
/// link that read and wrote in turns stopped reading while a write was blocked, and two nodes
/// sending large frames to each other at once then waited for each other for ever.)
#[test]
fn a_link_keeps_reading_while_its_writes_are_blocked() {
    actix::System::new().block_on(async {
        let mut plan = Plan::new(2);
        let raw = plan.raw_listener(1);
        let a = plan.start_with(0, Topology::AllToAll { relay: false }, quick(), false).await;
        let mut link = accept_as(&plan, 1, raw).await;
        // Node 0 writes megabytes to the peer, which never reads them.
        let big = vec![b'a'; 60 * 1024];
        let writer = a.leaders().next().expect("hosted").clone();
        let local = actix::spawn(async move {
            for i in 0..100 {
                let _ = writer.send(Put::new(format!("local{i}"), big.clone())).await;
            }
        });
        // Meanwhile the peer sends 20 frames of 15 × 60 KiB entries.
        let origin = id(1);
        let value = Value::new(vec![b'r'; 60 * 1024]).expect("a value");
        let mut seq = 0u64;
        for frame in 0..20 {
            let mut entries = Vec::new();
            for _ in 0..15 {
                seq += 1;
                entries.push(own_write(origin, seq, &format!("remote{seq}"), value.clone()));
            }
            let msg = LinkMessage::Peer {
                to: id(0),
                envelope: Envelope::new(origin, PeerMessage::Replicate { entries, catch_up: false }),
            };
            let sent =
                tokio::time::timeout(Duration::from_secs(5), link.writer.send(&encode(&msg).expect("encodes"))).await;
            assert!(matches!(sent, Ok(Ok(()))), "frame {frame} was taken in: {sent:?}");
        }
        assert!(eventually(&a, &format!("remote{seq}"), &[b'r'; 60 * 1024]).await, "the peer's last write is applied");
        local.abort();
    });
}

/// A write to a home-leader keyspace made at a node that is not the key's home travels over the
/// link to the home, which applies it under its own dot; the client gets the home's receipt.
#[test]
fn home_leader_writes_are_routed_to_their_home_on_another_node() {
    use roundtable_runtime::resolution::Resolution;
    actix::System::new().block_on(async {
        let mut plan = Plan::new(3);
        let mut nodes = Vec::new();
        for i in 0..3 {
            let mut builder = Cluster::builder()
                .leaders(plan.names.clone())
                .keyspace("h", Resolution::HomeLeader)
                .this_node(plan.names[i].clone())
                .listener(plan.listeners[i].take().expect("each node starts once"))
                .identity(plan.identities[i].clone())
                .link_limits(quick());
            for j in (0..3).filter(|&j| j != i) {
                builder =
                    builder.peer(plan.names[j].clone(), plan.addrs[j].to_string(), plan.identities[j].public_key());
            }
            nodes.push(builder.start().await.expect("a node starts"));
        }
        writable(&nodes.iter().collect::<Vec<_>>()).await;
        let at0 = nodes[0].leaders().next().expect("hosted");
        let mut homes = LeaderSet::EMPTY;
        for k in 0..12 {
            let receipt = at0.put(format!("h/k{k}"), format!("v{k}")).await.expect("the home accepts");
            homes.insert(receipt.dot.origin);
        }
        assert!(
            homes.contains(id(1)) && homes.contains(id(2)),
            "keys homed on the other nodes were routed there: {homes}"
        );
        for node in &nodes {
            for k in 0..12 {
                assert!(eventually(node, &format!("h/k{k}"), format!("v{k}").as_bytes()).await);
            }
        }
        // A routed write that cannot be honoured is refused with the reason, not lost.
        let write =
            crate::messages::Write::new("h/k0", roundtable_runtime::resolution::Update::Delete).expect("a write");
        let refused = at0.write(write.acknowledged_by(9, Duration::from_millis(10))).await;
        let message = refused.expect_err("a concern of 9 leaders in a cluster of 3 is refused").to_string();
        assert!(message.contains("impossible"), "{message}");
    });
}
