//! Multi-process tests: real `roundtable node` processes on loopback, talked to over the Redis
//! protocol, killed with SIGKILL and restarted, and cut apart by a proxy between two of them.
//!
//! Every process is killed when its handle drops, also when a test fails; every wait is bounded.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Instant;

use support::{bulk, call, node_addrs, within, Nodes, Proxy, Resp, LIMIT};

/// 3 and 5 node processes in each topology: strings, counters and sets written at every node
/// converge at every node.
#[test]
fn node_processes_converge_in_each_topology() {
    for (n, topology) in [(3, "all-to-all"), (3, "circle"), (3, "star"), (5, "all-to-all"), (5, "circle"), (5, "star")]
    {
        let mut nodes = Nodes::new(n, topology);
        nodes.start_all();
        for i in 0..n {
            nodes.set(i, &format!("k{i}"), &format!("v{i}"));
            assert_eq!(
                call(nodes.redis[i], &["INCRBY", "hits", "2"]).map(|r| matches!(r, Resp::Int(_))).ok(),
                Some(true)
            );
            assert_eq!(call(nodes.redis[i], &["SADD", "who", &format!("n{i}")]).ok(), Some(Resp::Int(1)));
        }
        for i in 0..n {
            for j in 0..n {
                nodes.eventually(i, &["GET", &format!("k{j}")], &bulk(&format!("v{j}")));
            }
            nodes.eventually(i, &["GET", "hits"], &bulk(&(2 * n).to_string()));
            let mut members: Vec<Resp> = (0..n).map(|j| bulk(&format!("n{j}"))).collect();
            members.sort_by_key(|r| format!("{r:?}"));
            nodes.eventually(i, &["SMEMBERS", "who"], &Resp::Array(members));
        }
        for i in 0..n {
            assert_eq!(nodes.info_field(i, "refused_links").as_deref(), Some("0"), "{topology} n={n}");
            assert_eq!(nodes.info_field(i, "rejected_frames").as_deref(), Some("0"), "{topology} n={n}");
        }
    }
}

/// A node killed with SIGKILL is declared dead by the others, who keep taking writes; restarted
/// with its configuration, it recovers what it wrote before (so it reuses no sequence number),
/// catches up with what it missed, and its new writes reach everyone.
#[test]
fn a_node_killed_with_sigkill_and_restarted_catches_up() {
    let mut nodes = Nodes::new(3, "all-to-all");
    nodes.start_all();
    nodes.all_writable();
    nodes.set(2, "before", "x");
    nodes.eventually(0, &["GET", "before"], &bulk("x"));
    for round in 0..3 {
        let killed_at = Instant::now();
        nodes.kill(2);
        let declared = within(LIMIT, || (nodes.info_field(0, "live").as_deref() == Some("n0,n1")).then_some(()));
        assert!(declared.is_some(), "round {round}: node 0 declares n2 dead");
        eprintln!("round {round}: n2 declared dead and rewired around after {:?}", killed_at.elapsed());
        let key = format!("while-down-{round}");
        nodes.set(0, &key, "y");
        nodes.start(2);
        nodes.eventually(2, &["GET", &key], &bulk("y"));
        nodes.eventually(2, &["GET", "before"], &bulk("x"));
        let after = format!("after-{round}");
        nodes.set(2, &after, "z");
        nodes.eventually(0, &["GET", &after], &bulk("z"));
        nodes.eventually(1, &["GET", &after], &bulk("z"));
    }
}

/// Nodes 0 and 1 reach each other only through a proxy; cutting it partitions them (each
/// declares the other dead), writes continue on both sides, and once healed the link comes
/// back and everything converges.
#[test]
fn a_partition_made_outside_the_nodes_heals_and_converges() {
    // The proxy's port is taken before the nodes' ports are chosen, so that it is none of them.
    let proxy_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut addrs = node_addrs(3);
    // Node 0 dials node 1 (the lower id dials): through the proxy.
    let real = addrs[1].0.clone();
    let proxy = Proxy::start(proxy_listener, real.clone());
    addrs[1].0 = proxy.addr.clone();
    let mut nodes = Nodes::with_addrs(&addrs, "all-to-all");
    // Node 1 must listen on its real address: rewrite its own `listen`.
    let path = nodes.config(1);
    let text = std::fs::read_to_string(&path)
        .expect("readable")
        .replace(&format!("listen = \"{}\"", proxy.addr), &format!("listen = \"{real}\""));
    std::fs::write(&path, text).expect("written");
    nodes.start_all();
    // Every node writable first: a starting node waits for every member (it must learn what it
    // wrote in an earlier life), so one that starts behind a partition waits for it to heal.
    nodes.all_writable();
    nodes.set(0, "a", "1");
    nodes.eventually(1, &["GET", "a"], &bulk("1"));

    proxy.partition();
    assert!(
        within(LIMIT, || (nodes.info_field(1, "live").as_deref() == Some("n1,n2")).then_some(())).is_some(),
        "node 1 declares node 0 dead behind the partition: {}",
        nodes.info(1)
    );
    nodes.set(0, "left", "L");
    nodes.set(1, "right", "R");
    proxy.heal();
    assert!(
        within(LIMIT, || (nodes.info_field(1, "live").as_deref() == Some("n0,n1,n2")).then_some(())).is_some(),
        "node 0 is back at node 1 once healed: {}",
        nodes.info(1)
    );
    for i in 0..3 {
        nodes.eventually(i, &["GET", "left"], &bulk("L"));
        nodes.eventually(i, &["GET", "right"], &bulk("R"));
    }
}

/// A node started with a key its peers do not know is refused by them and counted; it never
/// becomes writable (it cannot learn its past from anyone), so none of its writes exist.
#[test]
fn a_node_with_the_wrong_identity_is_refused() {
    let mut nodes = Nodes::new(3, "all-to-all");
    nodes.start(0);
    nodes.start(1);
    // Replace node 2's key with a fresh one.
    let stranger = roundtable_node::config::cluster_files(1, "127.0.0.1", 1, 2, "all-to-all").expect("a key");
    std::fs::write(nodes.dir.join("n2.key"), &stranger[0].1).expect("written");
    nodes.start(2);
    let refused =
        within(LIMIT, || nodes.info_field(0, "refused_links").and_then(|v| v.parse::<u64>().ok()).filter(|&v| v >= 1));
    assert!(refused.is_some(), "node 0 refuses and counts the impostor: {}", nodes.info(0));
    match call(nodes.redis[2], &["SET", "impostor", "x"]) {
        Ok(Resp::Error(e)) => assert!(e.contains("catching up"), "{e}"),
        other => panic!("the impostor cannot write: {other:?}"),
    }
    assert_eq!(call(nodes.redis[0], &["GET", "impostor"]).ok(), Some(Resp::Bulk(None)));
}

/// `redis-cli`, the Redis project's own client, works against a node. CI installs it
/// (`redis-tools`); without it the test fails and says so.
#[test]
fn redis_cli_works_against_a_node() {
    let status = Command::new("redis-cli").arg("--version").output();
    assert!(status.is_ok(), "redis-cli is not installed: `apt-get install redis-tools` (.ci/run installs it)");
    let mut nodes = Nodes::new(2, "all-to-all");
    nodes.start_all();
    nodes.set(0, "warm", "up");
    let cli = |i: usize, args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &nodes.redis[i].port().to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(cli(0, &["PING"]), "PONG");
    assert_eq!(cli(0, &["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(0, &["INCRBY", "n", "41"]), "41");
    assert_eq!(cli(0, &["INCR", "n"]), "42");
    assert_eq!(cli(0, &["SADD", "s", "a", "b"]), "2");
    assert_eq!(cli(0, &["SREM", "s", "a"]), "1");
    nodes.eventually(1, &["GET", "greeting"], &bulk("hello world"));
    assert_eq!(cli(1, &["GET", "greeting"]), "hello world");
    nodes.eventually(1, &["GET", "n"], &bulk("42"));
    nodes.eventually(1, &["SMEMBERS", "s"], &Resp::Array(vec![bulk("b")]));
    assert_eq!(cli(0, &["MSET", "a", "1", "b", "2"]), "OK");
    assert_eq!(cli(0, &["MGET", "a", "missing", "b", "n"]), "1\n\n2\n42");
    assert_eq!(cli(0, &["EXISTS", "a", "missing", "n", "s", "a"]), "4");
    assert_eq!(cli(0, &["SISMEMBER", "s", "b"]), "1");
    assert_eq!(cli(0, &["SISMEMBER", "s", "a"]), "0");
    assert_eq!(cli(0, &["SCARD", "s"]), "1");
    assert!(cli(0, &["MSET", "a", "1", "b"]).starts_with("ERR wrong number of arguments for 'mset'"));
    nodes.eventually(1, &["GET", "b"], &bulk("2"));
    assert_eq!(cli(1, &["DEL", "greeting"]), "1");
    assert!(cli(1, &["INFO", "replication"]).contains("live:n0,n1"));
    assert!(cli(1, &["SET", "k", "v", "EX", "10"]).starts_with("ERR expiry"));
    // Bad input gets an error or a closed connection, and the node keeps serving.
    let mut raw = TcpStream::connect(nodes.redis[1]).expect("connect");
    raw.write_all(b"*99999999999\r\n").expect("write");
    let mut answer = String::new();
    let _ = BufReader::new(raw).read_line(&mut answer);
    assert!(answer.starts_with("-ERR Protocol error"), "{answer:?}");
    // A bulk string longer than the longest value is refused before it is read.
    let mut raw = TcpStream::connect(nodes.redis[1]).expect("connect");
    raw.write_all(format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", 64 * 1024 + 1).as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = BufReader::new(raw).read_line(&mut answer);
    assert!(answer.starts_with("-ERR Protocol error: invalid bulk length"), "{answer:?}");
    assert_eq!(cli(1, &["PING"]), "PONG");
}

/// SIGTERM stops a node cleanly: it logs that it is stopping and exits with status 0, in JSON
/// lines when asked (`--log json`).
#[test]
fn sigterm_stops_a_node_cleanly_and_json_logs_are_json() {
    let nodes = Nodes::new(2, "all-to-all");
    let log_path = nodes.dir.join("json.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let mut child = Command::new(support::BIN)
        .args(["node", "--log", "json", "--config"])
        .arg(nodes.config(0))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the node starts");
    let redis = nodes.redis[0];
    let up = within(LIMIT, || (call(redis, &["PING"]).ok() == Some(Resp::Simple("PONG".into()))).then_some(()));
    assert!(up.is_some(), "the node answers");
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(sent.success());
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("a status") {
            break status;
        }
        assert!(Instant::now() < deadline, "the node did not stop within {LIMIT:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    let text = std::fs::read_to_string(&log_path).expect("the log");
    assert!(text.lines().count() >= 2, "{text}");
    for line in text.lines() {
        assert!(line.starts_with('{') && line.ends_with('}'), "not a JSON line: {line}");
    }
    assert!(text.contains("\"node running\"") && text.contains("\"stopping\""), "{text}");
}

/// A star's hub process killed with SIGKILL: the spokes' supervisors each declare it dead and
/// rewire to a new hub from their own view, so writes at one spoke still reach the others; the
/// old hub, restarted, catches up.
#[test]
fn a_star_hub_killed_fails_over_to_a_new_hub() {
    let mut nodes = Nodes::new(4, "star");
    nodes.start_all();
    nodes.all_writable();
    nodes.kill(0);
    for i in 1..4 {
        let dead = within(LIMIT, || (nodes.info_field(i, "live").as_deref() == Some("n1,n2,n3")).then_some(()));
        assert!(dead.is_some(), "node {i} declares the hub dead: {}", nodes.info(i));
    }
    nodes.set(1, "via-new-hub", "1");
    nodes.set(3, "from-a-spoke", "3");
    for i in 1..4 {
        nodes.eventually(i, &["GET", "via-new-hub"], &bulk("1"));
        nodes.eventually(i, &["GET", "from-a-spoke"], &bulk("3"));
    }
    nodes.start(0);
    nodes.eventually(0, &["GET", "via-new-hub"], &bulk("1"));
    nodes.eventually(0, &["GET", "from-a-spoke"], &bulk("3"));
}

/// A node process that receives, over an authenticated link, an envelope claiming another
/// sender than the link's node rejects it, counts it, and applies nothing of it. The link's
/// other end (node 2) is played by the test with node 2's real key.
#[test]
fn a_node_process_rejects_an_envelope_that_claims_another_sender() {
    use roundtable_actors::tcp::testing::RawPeer;
    use roundtable_actors::tcp::Identity;
    use roundtable_runtime::clock::HlcTimestamp;
    use roundtable_runtime::wire::{PeerMessage, ReplicatedEntry};
    use roundtable_runtime::{
        Dot, Entry, Key, LeaderId, LeaderSet, Op, Seq, SharedEntry, Value, VersionVector, WallTime,
    };

    let mut nodes = Nodes::new(3, "all-to-all");
    let config = std::fs::read_to_string(nodes.config(2)).expect("node 2's configuration");
    let listen =
        config.lines().find_map(|l| l.strip_prefix("listen = \"")).expect("a listen line").trim_end_matches('"');
    let listener = std::net::TcpListener::bind(listen).expect("node 2's address");
    listener.set_nonblocking(true).expect("non-blocking");
    let key = std::fs::read_to_string(nodes.dir.join("n2.key")).expect("node 2's key");
    let identity = Identity::from_private_hex(&key).expect("a key");
    nodes.start(0);
    nodes.start(1);
    let members: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
    let leader = |i: usize| LeaderId::new(i).expect("a leader");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let victim = rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
        let accepted = RawPeer::accept(&listener, &identity, &members, LeaderSet::single(leader(2)));
        let mut peer = tokio::time::timeout(LIMIT, accepted).await.expect("a node dials node 2").expect("a link");
        // The node that dialed is the victim; the envelope claims the other real node sent it.
        let victim = peer.theirs().iter().next().expect("the dialer hosts a leader");
        let claimed = if victim == leader(0) { leader(1) } else { leader(0) };
        let entry = Entry {
            dot: Dot::new(claimed, Seq(1)),
            hlc: HlcTimestamp::from_wall_time(WallTime::from_secs(1_767_225_600), 0, claimed),
            deps: VersionVector::new(),
            key: Key::new("s/spoofed").expect("a key"),
            op: Op::Put(Value::new(b"forged".to_vec()).expect("a value")),
        };
        let entries = vec![ReplicatedEntry { entry: SharedEntry::new(entry), seen_by: LeaderSet::single(claimed) }];
        peer.send_as(claimed, victim, PeerMessage::Replicate { entries, catch_up: false }).await.expect("sent");
        victim.index()
    });
    let counted = within(LIMIT, || {
        nodes.info_field(victim, "rejected_frames").and_then(|v| v.parse::<u64>().ok()).filter(|&n| n >= 1)
    });
    assert_eq!(counted, Some(1), "node {victim} counts the rejection: {}", nodes.info(victim));
    assert_eq!(call(nodes.redis[victim], &["GET", "spoofed"]).ok(), Some(Resp::Bulk(None)), "and applies nothing");
    assert!(nodes.log(victim).contains("claims to come from"), "and logs why:\n{}", nodes.log(victim));
}
