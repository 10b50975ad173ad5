//! The node's lines on stderr. Logging must never stop the node: `eprintln!`
//! panics when stderr's reader has gone (EPIPE), so every line goes through
//! `stderr!` instead, which drops a line it cannot write.

use std::fmt::{Arguments, Write as _};
use std::io::Write as _;

/// Writes `wal-node: `, the message and a newline with one `write`, so
/// lines from several writers never interleave, and ignores any error.
pub fn line(message: Arguments) {
    line_from("wal-node: ", message)
}

/// The same with another prefix (an operator tool's, `wal-node repair: `).
pub fn line_from(prefix: &str, message: Arguments) {
    let mut text = String::with_capacity(160);
    text.push_str(prefix);
    // Formatting into a String fails only if a Display impl does; then the
    // line is still worth what it holds.
    let _ = text.write_fmt(message);
    text.push('\n');
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// `stderr!("...", args)`: one log line, prefixed `wal-node: `, never a panic.
#[macro_export]
macro_rules! stderr {
    ($($arg:tt)*) => {
        $crate::stderr::line(format_args!($($arg)*))
    };
}

/// `tool_stderr!("repair", "...", args)`: a tool's line on stderr, prefixed
/// `wal-node repair: `, never a panic.
#[macro_export]
macro_rules! tool_stderr {
    ($tool:literal, $($arg:tt)*) => {
        $crate::stderr::line_from(concat!("wal-node ", $tool, ": "), format_args!($($arg)*))
    };
}
