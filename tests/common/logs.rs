//! Log directories written by the real node, in the states an operator
//! meets: clean, bit rot in a sealed segment, a torn active tail, and
//! compacted with snapshots beside it. Each is `root/n1/` with 1 KiB
//! segments, and its entries are `set k<i>=<i> ...` payloads of known size.

use super::{Running, init_line, line, run};
use serde_json::{Value, json};
use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The segment limit the logs are written with: a few entries each.
pub const SEGMENT_BYTES: &str = "1024";

/// The payload of entry `i`: a `set` the state machine understands, 100
/// bytes long, so that each 1 KiB segment holds 9 entries.
pub fn payload(i: u64) -> String {
    let head = format!("set k{}={i} ", i % 7);
    format!("{head}{}", "x".repeat(100 - head.len()))
}

/// Bytes one entry's frame takes.
pub const FRAME_BYTES: u64 = 108;
/// Entries in each sealed segment: 9 frames fit in 1024 bytes.
pub const PER_SEGMENT: u64 = 9;

/// Runs one node session on `root` with `requests` (bodies; msg_ids are
/// added) after an `init` of `n1`, and returns the replies' bodies.
pub fn session(root: &Path, requests: &[Value]) -> Vec<Value> {
    let mut input = format!("{}\n", init_line("n1"));
    for (k, body) in requests.iter().enumerate() {
        let mut body = body.clone();
        body["msg_id"] = json!(k as u64 + 2);
        input.push_str(&line("c1", body));
        input.push('\n');
    }
    let root_arg = root.to_str().unwrap();
    let done = run(
        &["--dir", root_arg, "--max-segment-bytes", SEGMENT_BYTES],
        input.as_bytes(),
    );
    assert!(done.status.success(), "node failed: {}", done.stderr);
    let bodies: Vec<Value> = done.replies.iter().map(|r| r["body"].clone()).collect();
    for b in &bodies {
        assert!(b["type"] != "error", "node answered an error: {b}");
    }
    bodies[1..].to_vec()
}

/// Appends of entries `from..to`.
pub fn appends(from: u64, to: u64) -> Vec<Value> {
    (from..to)
        .map(|i| json!({"type": "wal_append", "payload": payload(i)}))
        .collect()
}

/// `root/n1/` after `n` acknowledged appends: clean.
pub fn clean(root: &Path, n: u64) -> PathBuf {
    let replies = session(root, &appends(0, n));
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r["offset"], json!(i as u64), "{r}");
    }
    root.join("n1")
}

/// The file of the segment starting at `start` in `dir`.
pub fn segment(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.log"))
}

/// Flips one payload byte of entry `i` in place (bit rot).
pub fn rot(dir: &Path, i: u64) {
    let start = i / PER_SEGMENT * PER_SEGMENT;
    let pos = (i - start) * FRAME_BYTES + 8 + 20;
    let path = segment(dir, start);
    let mut bytes = fs::read(&path).unwrap();
    bytes[pos as usize] ^= 0x01;
    fs::write(&path, bytes).unwrap();
}

/// 20 entries (segments 0 and 9 sealed, 18 active) with bit rot in entry 4
/// of the first sealed segment.
pub fn damaged_sealed(root: &Path) -> PathBuf {
    let dir = clean(root, 20);
    rot(&dir, 4);
    dir
}

/// 20 entries, then a write that never finished: a frame header announcing
/// 100 bytes and 30 of them, after the active segment's last frame.
pub fn torn_tail(root: &Path) -> PathBuf {
    let dir = clean(root, 20);
    let mut file = OpenOptions::new()
        .write(true)
        .open(segment(&dir, 18))
        .unwrap();
    file.seek(SeekFrom::Start(2 * FRAME_BYTES)).unwrap();
    let mut torn = Vec::new();
    torn.extend_from_slice(&100u32.to_le_bytes());
    torn.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    torn.extend_from_slice(&[b't'; 30]);
    file.write_all(&torn).unwrap();
    dir
}

/// 30 entries, a snapshot at 30 and a compaction to it, then 15 more
/// entries and a second snapshot (at 45): the meta's first offset is 30,
/// the first segment left starts at 27 (it holds 30), and both snapshot
/// files are beside it.
pub fn compacted(root: &Path) -> PathBuf {
    let mut requests = appends(0, 30);
    requests.push(json!({"type": "wal_snapshot"}));
    requests.push(json!({"type": "wal_compact", "snapshot_at_offset": 30}));
    requests.extend(appends(30, 45));
    requests.push(json!({"type": "wal_snapshot"}));
    let replies = session(root, &requests);
    assert_eq!(replies[30]["snapshot_offset"], 30, "{}", replies[30]);
    assert_eq!(replies[31]["type"], "wal_compact_ok", "{}", replies[31]);
    assert_eq!(replies[47]["snapshot_offset"], 45, "{}", replies[47]);
    root.join("n1")
}

/// A node serving `root/n1/` with 1 KiB segments, initialized.
pub fn live_node(root: &Path) -> Running {
    let mut node = Running::spawn(&[
        "--dir",
        root.to_str().unwrap(),
        "--max-segment-bytes",
        SEGMENT_BYTES,
    ]);
    assert_eq!(node.init("n1")["type"], "init_ok");
    node
}

/// Sends appends of entries `from..to` all at once (so the node commits
/// them in groups), then returns the acknowledged (offset, payload) pairs.
pub fn pipelined(node: &mut Running, from: u64, to: u64) -> Vec<(u64, String)> {
    for i in from..to {
        let body = json!({"type": "wal_append", "msg_id": 1000 + i, "payload": payload(i)});
        node.send_line(&line("c1", body));
    }
    (from..to)
        .map(|i| {
            let reply = node.recv();
            assert_eq!(reply["body"]["type"], "wal_append_ok", "{reply}");
            (reply["body"]["offset"].as_u64().unwrap(), payload(i))
        })
        .collect()
}
