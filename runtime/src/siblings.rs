//! Version vectors with siblings (being written).
