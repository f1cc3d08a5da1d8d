//! The node's configuration file (TOML), and the files `roundtable keygen` writes for a whole
//! cluster.
//!
//! ```toml
//! [node]
//! name = "n0"                  # the leader this node hosts: one of cluster.members
//! listen = "127.0.0.1:7400"    # where the other nodes connect
//! redis = "127.0.0.1:6400"     # where Redis clients connect
//! key_file = "n0.key"          # this node's private key (64 hex digits), relative to this file
//! data_dir = "n0.data"         # optional: the leader's disk, relative to this file; without it
//!                              # the leader lives in memory (a restart then waits for its peers)
//! write_concern = "durable"    # optional: what a client's write waits for: "durable" (fsynced
//!                              # here; the default with a data_dir) or "local" (applied in memory;
//!                              # the default, and the only choice, without one)
//!
//! [cluster]
//! members = ["n0", "n1", "n2"] # the same list, in the same order, on every node
//! topology = "all-to-all"      # all-to-all, circle or star (the hub is the first member)
//!
//! [[peer]]
//! name = "n1"
//! addr = "127.0.0.1:7401"
//! key = "…64 hex digits: the public key of n1…"
//!
//! [clock]                      # optional: correct the leader's clock against NTP servers
//! servers = ["ntp1.example:123", "ntp2.example:123"]
//! interval_ms = 16000          # how often they are asked (default 16 s)
//! min_agree = 2                # how many must agree (default 1)
//! stale_after_ms = 64000       # no usable answer for this long fences the leader (default 64 s)
//! tolerance_ms = 400           # an offset beyond this fences it (default 400 ms)
//!
//! [redis]                      # optional: the Redis-protocol front end
//! password = "s3cret"          # clients must AUTH with it first (default: no password)
//! siblings = ["cart:", "doc:"] # string keys starting with one of these keep concurrent writes
//!                              # as siblings (version vectors) instead of last-write-wins
//! max_siblings = 8             # the most siblings a key keeps (1 to 8, the default)
//! ```
//!
//! Without `[clock]` the leader trusts the system clock as it is. Without `[redis]` there is
//! no password and every string key is last-write-wins; counters (`INCR`) and sets (`SADD`) are
//! CRDTs whatever the configuration.
//!
//! A file that cannot be read as this structure is refused with toml's message, which names the
//! line, the column and the field; a value that parses but cannot work (an unknown member, a
//! bad key, an unreadable key file) is refused with the field's name and its line.

use std::fmt;
use std::path::{Path, PathBuf};

use roundtable_actors::tcp::{Identity, KeyError, PublicKey};
use roundtable_runtime::{LeaderId, Topology};
use serde::Deserialize;
use toml::Spanned;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected fields (toml's message names
    /// the line, the column and the field).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// A field's value cannot work.
    #[error("{path}:{line}: `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line of the value.
        line: usize,
        /// The field, as written in the file (`node.name`, `peer[1].key`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    node: NodeSection,
    cluster: ClusterSection,
    #[serde(default)]
    peer: Vec<PeerSection>,
    #[serde(default)]
    clock: Option<Spanned<ClockSection>>,
    #[serde(default)]
    redis: Option<Spanned<RedisSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisSection {
    password: Option<String>,
    #[serde(default)]
    siblings: Vec<String>,
    max_siblings: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockSection {
    servers: Vec<String>,
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    min_agree: Option<usize>,
    stale_after_ms: Option<u64>,
    tolerance_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSection {
    name: Spanned<String>,
    listen: Spanned<String>,
    redis: Spanned<String>,
    key_file: Spanned<String>,
    #[serde(default)]
    data_dir: Option<Spanned<String>>,
    #[serde(default)]
    write_concern: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    members: Spanned<Vec<String>>,
    #[serde(default)]
    topology: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerSection {
    name: Spanned<String>,
    addr: Spanned<String>,
    key: Spanned<String>,
}

/// A checked node configuration.
#[derive(Clone)]
pub struct NodeConfig {
    /// The leader this node hosts.
    pub name: String,
    /// Where the other nodes connect.
    pub listen: String,
    /// Where Redis clients connect.
    pub redis: String,
    /// This node's key pair.
    pub identity: Identity,
    /// Every member, in id order.
    pub members: Vec<String>,
    /// The topology.
    pub topology: Topology,
    /// The other nodes: leader name, address, public key.
    pub peers: Vec<(String, String, PublicKey)>,
    /// Where the leader keeps its disk (`None`: in memory).
    pub data_dir: Option<PathBuf>,
    /// Whether a client's write waits until it is fsynced here.
    pub durable_writes: bool,
    /// NTP servers to correct the leader's clock against, and how (`None`: the system clock as
    /// it is).
    pub ntp: Option<roundtable_actors::ntp::NtpConfig>,
    /// The offset beyond which the leader fences itself.
    pub tolerance: std::time::Duration,
    /// The password Redis clients must give (`AUTH`) before anything else (`None`: none).
    pub password: Option<String>,
    /// String keys starting with one of these keep concurrent writes as siblings.
    pub sibling_prefixes: Vec<String>,
    /// The most siblings such a key keeps.
    pub max_siblings: usize,
}

/// The most siblings a key keeps unless `redis.max_siblings` says otherwise.
pub const DEFAULT_MAX_SIBLINGS: usize = roundtable_runtime::resolution::MAX_SIBLINGS_BOUND;

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .field("redis", &self.redis)
            .field("public_key", &self.identity.public_key())
            .field("members", &self.members)
            .field("topology", &self.topology)
            .field("peers", &self.peers)
            .field("data_dir", &self.data_dir)
            .field("durable_writes", &self.durable_writes)
            .field("ntp", &self.ntp)
            .field("tolerance", &self.tolerance)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("sibling_prefixes", &self.sibling_prefixes)
            .field("max_siblings", &self.max_siblings)
            .finish()
    }
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes().iter().take(at).filter(|&&b| b == b'\n').count() + 1
}

impl NodeConfig {
    /// Reads and checks the configuration file at `path` (and the key file it names).
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        NodeConfig::parse(&text, path)
    }

    /// Checks the configuration `text`, read from `path` (key files are relative to its
    /// directory).
    pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, ConfigError> {
        let file: File = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string().trim().to_owned() })?;
        let invalid = |field: &str, span: std::ops::Range<usize>, message: String| ConfigError::Invalid {
            path: path.into(),
            line: line_of(text, span.start),
            field: field.to_owned(),
            message,
        };
        let members = file.cluster.members.get_ref().clone();
        let members_span = file.cluster.members.span();
        if members.is_empty() {
            return Err(invalid("cluster.members", members_span, "at least one member is needed".into()));
        }
        if members.len() > roundtable_runtime::MAX_LEADERS {
            let message = format!("at most {} members, {} given", roundtable_runtime::MAX_LEADERS, members.len());
            return Err(invalid("cluster.members", members_span, message));
        }
        for (i, m) in members.iter().enumerate() {
            if m.is_empty() || members[..i].contains(m) {
                return Err(invalid("cluster.members", members_span, format!("member {m:?} is empty or given twice")));
            }
        }
        let member = |field: &str, name: &Spanned<String>| {
            if members.contains(name.get_ref()) {
                Ok(name.get_ref().clone())
            } else {
                Err(invalid(field, name.span(), format!("{:?} is not one of cluster.members", name.get_ref())))
            }
        };
        let name = member("node.name", &file.node.name)?;
        let topology = match &file.cluster.topology {
            None => Topology::AllToAll { relay: false },
            Some(t) => match t.get_ref().as_str() {
                "all-to-all" => Topology::AllToAll { relay: false },
                "circle" => Topology::Circle,
                "star" => Topology::Star {
                    hub: LeaderId::new(0).map_err(|e| invalid("cluster.topology", t.span(), e.to_string()))?,
                },
                other => {
                    let message = format!("unknown topology {other:?}: all-to-all, circle or star");
                    return Err(invalid("cluster.topology", t.span(), message));
                }
            },
        };
        for (field, addr) in [("node.listen", &file.node.listen), ("node.redis", &file.node.redis)] {
            check_addr(addr.get_ref()).map_err(|m| invalid(field, addr.span(), m))?;
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let data_dir = match &file.node.data_dir {
            Some(d) if d.get_ref().is_empty() => {
                return Err(invalid("node.data_dir", d.span(), "empty: leave it out for an in-memory leader".into()))
            }
            Some(d) => Some(dir.join(d.get_ref())),
            None => None,
        };
        let durable_writes = match &file.node.write_concern {
            None => data_dir.is_some(),
            Some(c) => match (c.get_ref().as_str(), data_dir.is_some()) {
                ("local", _) => false,
                ("durable", true) => true,
                ("durable", false) => {
                    let message = "\"durable\" needs node.data_dir (a leader without a disk cannot fsync)".into();
                    return Err(invalid("node.write_concern", c.span(), message));
                }
                (other, _) => {
                    let message = format!("unknown write concern {other:?}: \"local\" or \"durable\"");
                    return Err(invalid("node.write_concern", c.span(), message));
                }
            },
        };
        let mut tolerance = roundtable_runtime::clock::DEFAULT_TOLERANCE;
        let ntp = match &file.clock {
            None => None,
            Some(section) => {
                let span = section.span();
                let c = section.get_ref();
                if c.servers.is_empty() {
                    return Err(invalid("clock.servers", span, "at least one NTP server is needed".into()));
                }
                for server in &c.servers {
                    check_addr(server).map_err(|m| invalid("clock.servers", span.clone(), m))?;
                }
                let mut ntp = roundtable_actors::ntp::NtpConfig::new(c.servers.clone());
                let ms = std::time::Duration::from_millis;
                for (field, value, slot) in [
                    ("clock.interval_ms", c.interval_ms, &mut ntp.interval),
                    ("clock.timeout_ms", c.timeout_ms, &mut ntp.timeout),
                    ("clock.stale_after_ms", c.stale_after_ms, &mut ntp.stale_after),
                    ("clock.tolerance_ms", c.tolerance_ms, &mut tolerance),
                ] {
                    match value {
                        Some(0) => return Err(invalid(field, span.clone(), "must be above 0".into())),
                        Some(v) => *slot = ms(v),
                        None => {}
                    }
                }
                if let Some(k) = c.min_agree {
                    if k == 0 || k > c.servers.len() {
                        let message = format!("between 1 and the {} servers named", c.servers.len());
                        return Err(invalid("clock.min_agree", span, message));
                    }
                    ntp.min_agree = k;
                }
                Some(ntp)
            }
        };
        let (mut password, mut sibling_prefixes, mut max_siblings) = (None, Vec::new(), DEFAULT_MAX_SIBLINGS);
        if let Some(section) = &file.redis {
            let span = section.span();
            let r = section.get_ref();
            if r.password.as_deref() == Some("") {
                return Err(invalid("redis.password", span, "empty: leave it out for no password".into()));
            }
            password.clone_from(&r.password);
            if let Some(p) = r.siblings.iter().find(|p| p.is_empty()) {
                return Err(invalid("redis.siblings", span, format!("{p:?}: a prefix cannot be empty")));
            }
            sibling_prefixes.clone_from(&r.siblings);
            match r.max_siblings {
                Some(n) if n == 0 || n > DEFAULT_MAX_SIBLINGS => {
                    let message = format!("between 1 and {DEFAULT_MAX_SIBLINGS}");
                    return Err(invalid("redis.max_siblings", span, message));
                }
                Some(n) => max_siblings = n,
                None => {}
            }
        }
        let key_path = dir.join(file.node.key_file.get_ref());
        let key_text = std::fs::read_to_string(&key_path).map_err(|e| {
            invalid("node.key_file", file.node.key_file.span(), format!("cannot read {}: {e}", key_path.display()))
        })?;
        let identity = Identity::from_private_hex(&key_text).map_err(|e: KeyError| {
            invalid("node.key_file", file.node.key_file.span(), format!("{}: {e}", key_path.display()))
        })?;
        let mut peers = Vec::new();
        for (i, p) in file.peer.iter().enumerate() {
            let peer_name = member(&format!("peer[{i}].name"), &p.name)?;
            if peer_name == name {
                return Err(invalid(&format!("peer[{i}].name"), p.name.span(), "this node's own leader".into()));
            }
            check_addr(p.addr.get_ref()).map_err(|m| invalid(&format!("peer[{i}].addr"), p.addr.span(), m))?;
            let key: PublicKey = p
                .key
                .get_ref()
                .parse()
                .map_err(|e: KeyError| invalid(&format!("peer[{i}].key"), p.key.span(), e.to_string()))?;
            peers.push((peer_name, p.addr.get_ref().clone(), key));
        }
        for m in &members {
            if *m != name && !peers.iter().any(|(p, _, _)| p == m) {
                return Err(invalid("cluster.members", members_span, format!("member {m:?} has no [[peer]] section")));
            }
        }
        Ok(NodeConfig {
            name,
            listen: file.node.listen.into_inner(),
            redis: file.node.redis.into_inner(),
            identity,
            members,
            topology,
            peers,
            data_dir,
            durable_writes,
            ntp,
            tolerance,
            password,
            sibling_prefixes,
            max_siblings,
        })
    }
}

/// `host:port` with a port.
fn check_addr(addr: &str) -> Result<(), String> {
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("{addr:?} is not host:port")),
    }
}

/// The files of a local cluster of `nodes` nodes named `n0`, `n1`, …: one private key file and
/// one configuration file per node, as (file name, contents). Node `i` listens for peers on
/// `host:peer_base + i` and for Redis clients on `host:redis_base + i`.
pub fn cluster_files(
    nodes: usize,
    host: &str,
    peer_base: u16,
    redis_base: u16,
    topology: &str,
) -> Result<Vec<(String, String)>, String> {
    if nodes == 0 || nodes > roundtable_runtime::MAX_LEADERS {
        return Err(format!("between 1 and {} nodes", roundtable_runtime::MAX_LEADERS));
    }
    let port = |base: u16, i: usize| {
        u16::try_from(i)
            .ok()
            .and_then(|i| base.checked_add(i))
            .ok_or_else(|| format!("port {base} + {i} is beyond 65535"))
    };
    let mut addrs = Vec::with_capacity(nodes);
    for i in 0..nodes {
        addrs.push((format!("{host}:{}", port(peer_base, i)?), format!("{host}:{}", port(redis_base, i)?)));
    }
    cluster_files_at(&addrs, topology)
}

/// The files of a cluster whose node `i` listens for peers on `addrs[i].0` and for Redis
/// clients on `addrs[i].1` (see [`cluster_files`]).
pub fn cluster_files_at(addrs: &[(String, String)], topology: &str) -> Result<Vec<(String, String)>, String> {
    let nodes = addrs.len();
    if nodes == 0 || nodes > roundtable_runtime::MAX_LEADERS {
        return Err(format!("between 1 and {} nodes", roundtable_runtime::MAX_LEADERS));
    }
    if !["all-to-all", "circle", "star"].contains(&topology) {
        return Err(format!("unknown topology {topology:?}: all-to-all, circle or star"));
    }
    let identities =
        (0..nodes).map(|_| Identity::generate().map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = (0..nodes).map(|i| format!("n{i}")).collect();
    let members = names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    let mut files = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (listen, redis) = &addrs[i];
        let mut toml = format!(
            "# Node {name} of a {nodes}-node cluster, written by `roundtable keygen`.\n\
             [node]\nname = \"{name}\"\nlisten = \"{listen}\"\nredis = \"{redis}\"\nkey_file = \"{name}.key\"\n\
             data_dir = \"{name}.data\"\n\n\
             [cluster]\nmembers = [{members}]\ntopology = \"{topology}\"\n"
        );
        for (j, other) in names.iter().enumerate().filter(|(j, _)| *j != i) {
            toml.push_str(&format!(
                "\n[[peer]]\nname = \"{other}\"\naddr = \"{}\"\nkey = \"{}\"\n",
                addrs[j].0,
                identities[j].public_key()
            ));
        }
        files.push((format!("{name}.key"), format!("{}\n", identities[i].private_hex())));
        files.push((format!("{name}.toml"), toml));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_cluster(dir: &Path, nodes: usize) {
        std::fs::create_dir_all(dir).expect("a directory");
        for (name, text) in cluster_files(nodes, "127.0.0.1", 7400, 6400, "circle").expect("files") {
            std::fs::write(dir.join(name), text).expect("written");
        }
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("roundtable-config-{name}-{}", std::process::id()))
    }

    #[test]
    fn generated_files_load_and_agree() {
        let dir = temp("agree");
        write_cluster(&dir, 3);
        let configs: Vec<NodeConfig> =
            (0..3).map(|i| NodeConfig::load(&dir.join(format!("n{i}.toml"))).expect("loads")).collect();
        for (i, c) in configs.iter().enumerate() {
            assert_eq!(c.name, format!("n{i}"));
            assert_eq!(c.members, ["n0", "n1", "n2"]);
            assert_eq!(c.topology, Topology::Circle);
            assert_eq!(c.peers.len(), 2);
            assert_eq!(c.data_dir.as_deref(), Some(dir.join(format!("n{i}.data")).as_path()), "relative to the file");
            assert!(c.durable_writes, "durable by default with a data directory");
            for (peer, _, key) in &c.peers {
                let j: usize = peer[1..].parse().expect("a number");
                assert_eq!(*key, configs[j].identity.public_key(), "node {i} knows {peer}'s key");
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn errors_name_the_field_and_the_line() {
        let dir = temp("errors");
        write_cluster(&dir, 2);
        let path = dir.join("n0.toml");
        let good = std::fs::read_to_string(&path).expect("readable");
        let check = |text: &str, want: &str| {
            let err = NodeConfig::parse(text, &path).expect_err("refused").to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        };
        let line = |needle: &str| good.lines().position(|l| l.contains(needle)).expect("present") + 1;
        check(
            &good.replace("name = \"n0\"", "name = \"n9\""),
            &format!(":{}: `node.name`: \"n9\" is not one", line("name = \"n0\"")),
        );
        check(
            &good.replace("topology = \"circle\"", "topology = \"ring\""),
            &format!(":{}: `cluster.topology`", line("topology")),
        );
        check(
            &good.replace("listen = \"127.0.0.1:7400\"", "listen = \"nowhere\""),
            "`node.listen`: \"nowhere\" is not host:port",
        );
        let key_line = good.lines().position(|l| l.starts_with("key = ")).expect("a peer key") + 1;
        let bad_key = good
            .lines()
            .map(|l| if l.starts_with("key = ") { "key = \"00ff\"" } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        check(&bad_key, &format!(":{key_line}: `peer[0].key`: a key is 64 hexadecimal digits"));
        check(&good.replace("key_file = \"n0.key\"", "key_file = \"missing.key\""), "`node.key_file`: cannot read");
        check(&good.replace("[node]", "[node]\ncolour = \"blue\""), "unknown field `colour`");
        check(&good.replace("listen = ", "listen == "), &format!("TOML parse error at line {}", line("listen = ")));
        let in_memory = good.replace("data_dir = \"n0.data\"\n", "");
        let loaded = NodeConfig::parse(&in_memory, &path).expect("data_dir is optional");
        assert_eq!((loaded.data_dir, loaded.durable_writes), (None, false));
        check(
            &in_memory.replace("[node]", "[node]\nwrite_concern = \"durable\""),
            "`node.write_concern`: \"durable\" needs node.data_dir",
        );
        check(&good.replace("[node]", "[node]\nwrite_concern = \"fsync\""), "unknown write concern \"fsync\"");
        check(&good.replace("data_dir = \"n0.data\"", "data_dir = \"\""), "`node.data_dir`: empty");
        let local = NodeConfig::parse(&good.replace("[node]", "[node]\nwrite_concern = \"local\""), &path);
        assert!(!local.expect("valid").durable_writes);
        let without_peer = good.split("[[peer]]").next().expect("head").to_owned();
        check(&without_peer, "member \"n1\" has no [[peer]] section");
        // The Redis front end's section: defaults without it, each value checked with it.
        let plain = NodeConfig::parse(&good, &path).expect("valid");
        assert_eq!((plain.password, plain.sibling_prefixes.len(), plain.max_siblings), (None, 0, DEFAULT_MAX_SIBLINGS));
        let redis = format!("{good}\n[redis]\npassword = \"pw\"\nsiblings = [\"cart:\"]\nmax_siblings = 3\n");
        let loaded = NodeConfig::parse(&redis, &path).expect("valid");
        assert_eq!(
            (loaded.password.as_deref(), loaded.sibling_prefixes.clone(), loaded.max_siblings),
            (Some("pw"), vec!["cart:".to_owned()], 3)
        );
        assert!(!format!("{loaded:?}").contains("pw\""), "the password is not printed");
        check(&format!("{good}\n[redis]\npassword = \"\"\n"), "`redis.password`: empty");
        check(&format!("{good}\n[redis]\nsiblings = [\"\"]\n"), "`redis.siblings`: \"\": a prefix cannot be empty");
        check(&format!("{good}\n[redis]\nmax_siblings = 9\n"), "`redis.max_siblings`: between 1 and 8");
        check(&format!("{good}\n[redis]\nport = 1\n"), "unknown field `port`");
        let _ = std::fs::remove_dir_all(dir);
    }
}
