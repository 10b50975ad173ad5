//! wal-node: a write-ahead log served over Maelstrom's stdin/stdout protocol.
//!
//! The data path runs in one line (see README.md "Design"):
//! `input` (lines) → `protocol` (parse, validate) → `node` (dispatch, batch)
//! → `wal` (append, commit, read) → `frame` (encode, decode, pure).
//! `recovery` classifies what replay finds; `repair` cuts a damaged tail
//! without destroying it. The node and the operator tools share both.

pub mod dir;
pub mod frame;
pub mod fsbench;
pub mod index;
pub mod input;
pub mod log;
pub mod node;
pub mod pipes;
pub mod protocol;
pub mod recovery;
pub mod repair;
pub mod serving;
pub mod state;
pub mod stderr;
pub mod tools;

/// `n` followed by `one` or `many`, as its count requires (for messages).
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
