//! The actix shell of roundtable (arrives with the actors issue).
#![warn(missing_docs, unreachable_pub)]
