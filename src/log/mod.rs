//! The log as a whole: a directory of segments (doc/format.md).

pub mod index_file;
pub mod meta;
pub mod names;
