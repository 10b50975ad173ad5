//! The pipe floor: the least a node behind a pipe must do per request.
//! Read a line, overwrite a frame in a preallocated file, fdatasync, write a
//! fixed reply line. No parsing, no threads.

use super::client::FLOOR_REPLY;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use wal_node::frame;

/// Serves stdin until it ends, writing into `path` (zero-filled by the
/// bench): each request's frame holds the first `payload_len` bytes of its
/// line, the size of the node's frame for the same request.
pub fn serve(path: &Path, payload_len: usize) {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("floor: opening its file");
    let size = file.metadata().expect("floor: file size").len();
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut out = std::io::stdout().lock();
    let mut line = Vec::new();
    let mut at = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).expect("floor: reading") == 0 {
            return;
        }
        let frame = frame::encode(&line[..line.len().min(payload_len)]);
        if at + frame.len() as u64 > size {
            at = 0;
        }
        file.write_all_at(&frame, at).expect("floor: writing");
        at += frame.len() as u64;
        file.sync_data().expect("floor: fdatasync");
        out.write_all(FLOOR_REPLY).expect("floor: replying");
        out.flush().expect("floor: replying");
    }
}
