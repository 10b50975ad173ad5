//! Pieces of the `wal` bench: the client that drives a node (or the pipe
//! floor), the pipe-floor process itself, the disk space used, the table,
//! a log directory written as a node writes it, the rows on a 10 GiB log
//! of sealed segments, and a cold page cache.

pub mod big_log;
pub mod cache;
pub mod client;
pub mod cpu;
pub mod disk;
pub mod floor;
pub mod log_writer;
pub mod report;
pub mod snapshots;
