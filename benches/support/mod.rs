//! Pieces of the `wal` bench: the client that drives a node (or the pipe
//! floor), the pipe-floor process itself, the disk space used, and the table.

pub mod client;
pub mod cpu;
pub mod disk;
pub mod floor;
pub mod report;
