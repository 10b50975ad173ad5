//! Pieces of the `wal` bench: the client that drives a node (or the pipe
//! floor), the pipe-floor process itself, and the table.

pub mod client;
pub mod floor;
pub mod report;
