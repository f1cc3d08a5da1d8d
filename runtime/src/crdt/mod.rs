//! Conflict-free replicated data types (being written).
