//! A standalone roundtable node: one leader (or a few) in a process, TCP links to the leaders of
//! other nodes, a TOML configuration, and a Redis-protocol (RESP2) front end, so that
//! `redis-cli` and Redis client libraries can read and write a multi-leader cluster.

pub mod resp;
