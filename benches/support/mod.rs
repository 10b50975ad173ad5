//! Pieces of the `wal` bench: the client that drives a node (or the pipe
//! floor), the pipe-floor process itself, the disk space used, the table,
//! and a log directory written as a node writes it.

pub mod client;
pub mod disk;
pub mod floor;
pub mod log_writer;
pub mod report;
