//! Writes a log directory as a node leaves it after a run of appends: full
//! segments sealed with their index files, the rest in the active segment,
//! the metadata, everything synced.
//!
//! Building a 10 GiB log through the node takes minutes (about 77,000
//! appends of 1000 B a second here, and it writes the preallocated zeros
//! before the frames); this writes each byte once, with the library's own
//! encoders. `check_against_node` proves the result is byte for byte what
//! the node writes for the same appends.

use super::client::{Peer, append_line, init_line};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use wal_node::frame;
use wal_node::log::index_file;
use wal_node::log::meta::Meta;
use wal_node::log::names;

/// What `write_log` wrote.
pub struct Written {
    pub sealed_segments: u64,
    /// Sum of the sealed segments' sizes (their frames, nothing else).
    pub sealed_bytes: u64,
    /// First offset of the active (last) segment.
    pub active_start: u64,
}

/// Payload `i` of a bench log, `len` bytes (at least 20): its offset in 20
/// digits, then letters, so a read can tell which entry it got.
pub fn numbered_payload(i: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    write!(out, "{i:020}").expect("writing to a Vec");
    out.extend((20..len).map(|k| b'a' + (k % 26) as u8));
}

/// The segment being filled.
struct Active {
    start: u64,
    file: File,
    /// Frames not yet written to `file`.
    buf: Vec<u8>,
    /// Byte position of each frame within the segment.
    positions: Vec<u64>,
    bytes: u64,
}

impl Active {
    fn create(dir: &Path, start: u64) -> Active {
        let path = dir.join(names::segment(start));
        Active {
            start,
            file: File::create(&path).unwrap_or_else(|e| panic!("creating {path:?}: {e}")),
            buf: Vec::with_capacity(9 << 20),
            positions: Vec::new(),
            bytes: 0,
        }
    }

    fn flush(&mut self) {
        self.file.write_all(&self.buf).expect("writing a segment");
        self.buf.clear();
    }

    /// Writes what is left and syncs: the segment is exactly its frames.
    fn finish(&mut self) {
        self.flush();
        self.file.sync_data().expect("syncing a segment");
    }

    /// Finishes the segment and writes its index, as a roll does.
    fn seal(mut self, dir: &Path) {
        self.finish();
        let path = dir.join(names::index(self.start));
        let index = File::create(&path).unwrap_or_else(|e| panic!("creating {path:?}: {e}"));
        index_file::write(
            &index,
            self.start,
            self.bytes,
            self.positions.iter().copied(),
        )
        .expect("writing an index");
        index.sync_all().expect("syncing an index");
    }
}

/// Writes a log of `entries` entries (payload `i` from `payload`) into the
/// new directory `dir`, rolling exactly where a node with
/// `--max-segment-bytes max_segment_bytes` rolls: before a frame that would
/// take a non-empty segment past the limit.
pub fn write_log(
    dir: &Path,
    max_segment_bytes: u64,
    entries: u64,
    mut payload: impl FnMut(u64, &mut Vec<u8>),
) -> Written {
    std::fs::create_dir_all(dir).expect("creating a log directory");
    let meta = Meta {
        max_segment_bytes,
        first_offset: 0,
    };
    let mut meta_file = File::create(dir.join(names::META)).expect("creating the metadata");
    meta_file.write_all(&meta.encode()).expect("writing it");
    meta_file.sync_all().expect("syncing it");
    let mut written = Written {
        sealed_segments: 0,
        sealed_bytes: 0,
        active_start: 0,
    };
    let mut active = Active::create(dir, 0);
    let mut body = Vec::new();
    for i in 0..entries {
        payload(i, &mut body);
        let frame_len = (frame::HEADER_LEN + body.len()) as u64;
        if active.bytes > 0 && active.bytes + frame_len > max_segment_bytes {
            written.sealed_segments += 1;
            written.sealed_bytes += active.bytes;
            written.active_start = i;
            std::mem::replace(&mut active, Active::create(dir, i)).seal(dir);
        }
        active.positions.push(active.bytes);
        frame::encode_into(&mut active.buf, &body);
        active.bytes += frame_len;
        if active.buf.len() >= 8 << 20 {
            active.flush();
        }
    }
    active.finish();
    File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("syncing the log directory");
    written
}

/// Runs the node with `--max-segment-bytes 65536` for 196 appends (three
/// rolls) and `write_log` for the same payloads, and panics unless every
/// file is the same, byte for byte (the node's active segment may go on
/// with preallocated zeros).
pub fn check_against_node(node: &str, dir: &Path, payload_len: usize) {
    const MAX: u64 = 64 << 10;
    let per_segment = MAX / (frame::HEADER_LEN + payload_len) as u64;
    let entries = 3 * per_segment + 1;
    let by_node = dir.join("writer-check-node");
    let mut cmd = Command::new(node);
    cmd.arg("--dir")
        .arg(&by_node)
        .arg("--max-segment-bytes")
        .arg(MAX.to_string());
    let mut peer = Peer::spawn(&mut cmd, dir, "writer-check");
    peer.call(init_line().as_bytes());
    let mut body = Vec::new();
    for i in 0..entries {
        numbered_payload(i, payload_len, &mut body);
        let mut line = Vec::new();
        append_line(&mut line, i + 1, std::str::from_utf8(&body).expect("ASCII"));
        peer.call_append(&line);
    }
    peer.finish();
    let by_writer = dir.join("writer-check-writer");
    let written = write_log(&by_writer, MAX, entries, |i, out| {
        numbered_payload(i, payload_len, out)
    });
    assert_eq!(written.sealed_segments, 3, "the check crosses three rolls");
    let (node_log, writer_log) = (by_node.join("n1"), by_writer);
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .expect("listing a log")
            .map(|e| e.expect("a directory entry").file_name().into_string())
            .map(|n| n.expect("a UTF-8 name"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&node_log), names(&writer_log), "the same files");
    for name in names(&writer_log) {
        let ours = std::fs::read(writer_log.join(&name)).expect("reading a file");
        let theirs = std::fs::read(node_log.join(&name)).expect("reading a file");
        let same = theirs.starts_with(&ours)
            && (theirs.len() == ours.len()
                || (name == names::segment(written.active_start)
                    && theirs[ours.len()..].iter().all(|&b| b == 0)));
        assert!(
            same,
            "{name}: the bench's log writer and the node disagree ({} vs {} bytes)",
            ours.len(),
            theirs.len()
        );
    }
    std::fs::remove_dir_all(&by_node).expect("removing the check's logs");
    std::fs::remove_dir_all(&writer_log).expect("removing the check's logs");
    eprintln!(
        "log writer: byte for byte what the node writes ({entries} appends, 3 rolls at {MAX} B)"
    );
}
