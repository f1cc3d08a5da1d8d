//! Topologies (placeholder, being written).
