//! Node processes for tests and benches: keys and configurations in a temporary directory,
//! `roundtable node` processes on free loopback ports (killed with SIGKILL when their handle
//! drops, also when a test fails), and a small RESP2 client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `roundtable` binary of this build.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_roundtable");
/// The longest any wait of a test may take.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// A reply, as much of RESP2 as the node sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Resp>),
}

pub(crate) fn read_reply(r: &mut impl BufRead) -> std::io::Result<Resp> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (tag, rest) = line.split_at(1);
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {line:?}"));
    Ok(match tag {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Int(rest.parse().map_err(|_| bad("integer"))?),
        "$" => match rest.parse::<i64>().map_err(|_| bad("bulk length"))? {
            -1 => Resp::Bulk(None),
            n => {
                let mut buf = vec![0u8; usize::try_from(n).map_err(|_| bad("bulk length"))? + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(buf.len() - 2);
                Resp::Bulk(Some(buf))
            }
        },
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad("array length"))?;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                items.push(read_reply(r)?);
            }
            Resp::Array(items)
        }
        _ => return Err(bad("reply type")),
    })
}

/// One request to the node at `addr`, on a fresh connection.
pub(crate) fn call(addr: SocketAddr, args: &[&str]) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(req.as_bytes())?;
    read_reply(&mut BufReader::new(stream))
}

/// A RESP client on one connection: requests one by one, or pipelined.
pub(crate) struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(LIMIT))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Client { stream, reader })
    }

    /// Sends every request, then reads every reply, in order.
    pub(crate) fn pipeline(&mut self, requests: &[Vec<String>]) -> std::io::Result<Vec<Resp>> {
        let mut out = Vec::new();
        for args in requests {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
            }
        }
        self.stream.write_all(&out)?;
        requests.iter().map(|_| read_reply(&mut self.reader)).collect()
    }

    /// Sends `bytes` as they are and returns what arrives within 500 ms of the last byte.
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> Vec<u8> {
        use std::io::Read;
        self.stream.write_all(bytes).expect("written");
        let _ = self.stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = self.reader.get_mut().read(&mut chunk) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        let _ = self.stream.set_read_timeout(Some(LIMIT));
        got
    }

    pub(crate) fn call(&mut self, args: &[&str]) -> std::io::Result<Resp> {
        let request: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        Ok(self.pipeline(&[request])?.remove(0))
    }
}

pub(crate) fn bulk(s: &str) -> Resp {
    Resp::Bulk(Some(s.as_bytes().to_vec()))
}

/// Retries `f` until it returns `Some`, for at most `limit`.
pub(crate) fn within<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `n` distinct free loopback addresses (all bound at once, then released: released one at a
/// time, the kernel may hand the same port out twice).
pub(crate) fn free_addrs(n: usize) -> Vec<String> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("address").to_string()).collect()
}

/// Peer and Redis addresses for `n` nodes.
pub(crate) fn node_addrs(n: usize) -> Vec<(String, String)> {
    let mut free = free_addrs(2 * n).into_iter();
    (0..n).map(|_| (free.next().unwrap_or_default(), free.next().unwrap_or_default())).collect()
}

/// A node process, killed (SIGKILL) and reaped when dropped.
pub(crate) struct Node(pub(crate) Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The files and processes of one test cluster.
pub(crate) struct Nodes {
    pub(crate) dir: PathBuf,
    pub(crate) redis: Vec<SocketAddr>,
    pub(crate) procs: Vec<Option<Node>>,
}

static DIRS: AtomicU64 = AtomicU64::new(0);

impl Nodes {
    /// Writes the files of `n` nodes on free loopback ports.
    pub(crate) fn new(n: usize, topology: &str) -> Nodes {
        Nodes::with_addrs(&node_addrs(n), topology)
    }

    pub(crate) fn with_addrs(addrs: &[(String, String)], topology: &str) -> Nodes {
        let dir = std::env::temp_dir().join(format!(
            "roundtable-node-test-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a directory");
        for (name, text) in roundtable_node::config::cluster_files_at(addrs, topology).expect("cluster files") {
            std::fs::write(dir.join(name), text).expect("written");
        }
        let redis = addrs.iter().map(|(_, r)| r.parse().expect("an address")).collect();
        Nodes { dir, redis, procs: (0..addrs.len()).map(|_| None).collect() }
    }

    /// Appends `text` (a TOML section) to every node's configuration file.
    pub(crate) fn append_config(&self, text: &str) {
        for i in 0..self.redis.len() {
            let path = self.config(i);
            let mut config = std::fs::read_to_string(&path).expect("a configuration");
            config.push_str(text);
            std::fs::write(&path, config).expect("written");
        }
    }

    /// Sets every node's `write_concern` (`"local"`, `"durable"`) in its configuration file.
    pub(crate) fn write_concern(&self, concern: &str) {
        for i in 0..self.redis.len() {
            let path = self.config(i);
            let text = std::fs::read_to_string(&path).expect("a configuration");
            let text = text.replacen("[node]\n", &format!("[node]\nwrite_concern = \"{concern}\"\n"), 1);
            std::fs::write(&path, text).expect("written");
        }
    }

    /// Removes every node's data directory from its configuration: leaders in memory, writes
    /// answered once applied (the `local` write concern).
    pub(crate) fn in_memory(&self) {
        for i in 0..self.redis.len() {
            let path = self.config(i);
            let text = std::fs::read_to_string(&path).expect("a configuration");
            let text: String = text.lines().filter(|l| !l.starts_with("data_dir")).map(|l| format!("{l}\n")).collect();
            std::fs::write(&path, text).expect("written");
        }
    }

    pub(crate) fn config(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{i}.toml"))
    }

    pub(crate) fn start(&mut self, i: usize) {
        let log = std::fs::File::create(self.dir.join(format!("n{i}.log"))).expect("a log file");
        let child = Command::new(BIN)
            .args(["node", "--config"])
            .arg(self.config(i))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the node starts");
        self.procs[i] = Some(Node(child));
        let redis = self.redis[i];
        assert!(
            within(LIMIT, || (call(redis, &["PING"]).ok() == Some(Resp::Simple("PONG".into()))).then_some(()))
                .is_some(),
            "node {i} answers PING; its log:\n{}",
            self.log(i)
        );
    }

    pub(crate) fn start_all(&mut self) {
        for i in 0..self.redis.len() {
            self.start(i);
        }
    }

    pub(crate) fn kill(&mut self, i: usize) {
        drop(self.procs[i].take());
    }

    pub(crate) fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{i}.log"))).unwrap_or_default()
    }

    /// Sets `key` at node `i`, retrying while its leader is still catching up after its start.
    pub(crate) fn set(&self, i: usize, key: &str, value: &str) {
        let redis = self.redis[i];
        let mut last = None;
        let reply = within(LIMIT, || match call(redis, &["SET", key, value]) {
            Ok(Resp::Simple(ok)) => Some(ok),
            other => {
                last = Some(other);
                None
            }
        });
        assert_eq!(reply.as_deref(), Some("OK"), "SET {key} at node {i}: {last:?}; its log:\n{}", self.log(i));
    }

    /// Waits until every node takes writes (a starting node waits for every member to tell it
    /// what it wrote before).
    pub(crate) fn all_writable(&self) {
        for i in 0..self.redis.len() {
            self.set(i, &format!("ready{i}"), "1");
        }
    }

    pub(crate) fn eventually(&self, i: usize, args: &[&str], want: &Resp) {
        let redis = self.redis[i];
        let got = within(LIMIT, || call(redis, args).ok().filter(|r| r == want));
        assert!(got.is_some(), "node {i}: {args:?} should give {want:?}, gives {:?}", call(redis, args));
    }

    pub(crate) fn info(&self, i: usize) -> String {
        match call(self.redis[i], &["INFO", "replication"]) {
            Ok(Resp::Bulk(Some(b))) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("INFO at node {i}: {other:?}"),
        }
    }

    pub(crate) fn info_field(&self, i: usize, field: &str) -> Option<String> {
        let info = self.info(i);
        info.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_owned))
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.procs.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A TCP proxy between two nodes, outside both: while `cut`, it closes every connection and
/// refuses new ones (the partition); after, it forwards again.
pub(crate) struct Proxy {
    pub(crate) addr: String,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Forwards connections to `listener` on to `target`.
    pub(crate) fn start(listener: TcpListener, target: String) -> Proxy {
        let addr = listener.local_addr().expect("address").to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                if let Ok(mut list) = o.lock() {
                    list.extend([client.try_clone(), server.try_clone()].into_iter().flatten());
                }
                for (mut from, mut to) in
                    [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())]
                        .into_iter()
                        .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, cut, open }
    }

    pub(crate) fn partition(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Ok(mut list) = self.open.lock() {
            for s in list.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    pub(crate) fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
