//! Helpers shared by the crash-safety tests (`tests/crash_*.rs`) only.
//!
//! The log format is re-implemented here from its description (README "File
//! format": `[u32 LE length][u32 LE CRC-32 IEEE of payload][payload]`, frames
//! back to back from byte 0, zeros after the last frame = end of log), so the
//! tests check the files against the spec rather than against the crate's own
//! codec.
#![allow(dead_code)]

use crate::common;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use wal_node::log::{Options, Recover, Segment};

pub const HEADER: usize = 8;
/// The node's default `--max-entry-bytes`.
pub const MAX_ENTRY: u32 = 1 << 20;

/// One whole frame for `payload`, encoded from the spec.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The frames for `payloads`, back to back, and each frame's start offset.
pub fn frames(payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    let mut starts = Vec::new();
    for p in payloads {
        starts.push(out.len() as u64);
        out.extend_from_slice(&frame(p));
    }
    (out, starts)
}

/// Strictly parses a log file as the spec says a healthy one looks: whole
/// frames with matching CRCs from byte 0, then nothing but zero bytes (or
/// nothing). Returns the payloads and the end of the last frame, or a
/// description of the first thing that is not so.
pub fn parse_whole_frames(bytes: &[u8]) -> Result<(Vec<Vec<u8>>, u64), String> {
    let mut pos = 0usize;
    let mut payloads = Vec::new();
    while pos < bytes.len() {
        if bytes.len() - pos < HEADER {
            if bytes[pos..].iter().all(|&b| b == 0) {
                break;
            }
            return Err(format!(
                "{} trailing bytes at offset {pos} are neither a whole header nor zeros: {:?}",
                bytes.len() - pos,
                &bytes[pos..]
            ));
        }
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap());
        if len == 0 {
            if let Some(i) = bytes[pos..].iter().position(|&b| b != 0) {
                return Err(format!(
                    "zero length word at offset {pos} (end of log) but a non-zero byte follows at \
                     offset {}",
                    pos + i
                ));
            }
            break;
        }
        if pos + HEADER + len > bytes.len() {
            return Err(format!(
                "frame at offset {pos} announces {len} payload bytes but the file ends at {}: half \
                 a frame",
                bytes.len()
            ));
        }
        let payload = &bytes[pos + HEADER..pos + HEADER + len];
        if crc32fast::hash(payload) != crc {
            return Err(format!(
                "frame {} at offset {pos} ({len} bytes) fails its CRC",
                payloads.len()
            ));
        }
        payloads.push(payload.to_vec());
        pos += HEADER + len;
    }
    let end = payloads.iter().map(|p| (HEADER + p.len()) as u64).sum();
    Ok((payloads, end))
}

/// `bytes` without its trailing zero bytes.
pub fn trim_zeros(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

/// Options as the node uses them by default.
pub fn opts() -> Options {
    Options {
        max_entry_bytes: MAX_ENTRY,
        recover: Recover::Refuse,
        max_segment_bytes: None,
    }
}

pub fn opts_truncate() -> Options {
    Options {
        max_entry_bytes: MAX_ENTRY,
        recover: Recover::Truncate,
        max_segment_bytes: None,
    }
}

/// Opens `path` with the library, panicking with the error's text.
///
/// A test that drops a segment and opens it again races the other test
/// threads of its process: a child they spawn holds a copy of every open
/// descriptor (the dropped segment's, with its `flock`) from its fork until
/// its exec closes them. That lock is released within microseconds, so
/// `Locked` is retried for up to 10 s; a lock still held then is a defect.
pub fn open(path: &Path) -> Segment {
    use wal_node::log::OpenError;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Segment::open_file(path, opts()) {
            Ok((segment, _, _)) => return segment,
            Err(OpenError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => panic!("opening {} failed: {e}", path.display()),
        }
    }
}

/// Every `<log>.torn-*` file beside `log`, sorted.
pub fn torn_files(log: &Path) -> Vec<PathBuf> {
    let dir = log.parent().expect("log has a directory");
    let prefix = format!("{}.torn-", log.file_name().unwrap().to_string_lossy());
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    found.sort();
    found
}

/// The saved-bytes file replay should create for a cut at `offset`.
pub fn torn_path(log: &Path, offset: u64) -> PathBuf {
    PathBuf::from(format!("{}.torn-{offset}", log.display()))
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temporary directory")
}

/// Request lines for `init` of node `n1` followed by appends of `payloads`.
pub fn init_and_appends(payloads: &[&str]) -> Vec<u8> {
    let mut input = common::init_line("n1");
    input.push('\n');
    for (i, p) in payloads.iter().enumerate() {
        let body = json!({"type": "wal_append", "msg_id": 10 + i as u64, "payload": p});
        input.push_str(&common::line("c1", body));
        input.push('\n');
    }
    input.into_bytes()
}

/// Joins request lines into one input.
pub fn input_of(lines: &[String]) -> Vec<u8> {
    let mut input = String::new();
    for l in lines {
        input.push_str(l);
        input.push('\n');
    }
    input.into_bytes()
}

/// A request line from client c1 with `msg_id` set.
pub fn req(msg_id: u64, mut body: Value) -> String {
    body["msg_id"] = json!(msg_id);
    common::line("c1", body)
}

/// Sends every body without waiting, then collects the replies in order,
/// checking each answers its request. Returns the reply bodies.
pub fn pipelined(node: &mut common::Running, first_msg_id: u64, bodies: &[Value]) -> Vec<Value> {
    let mut chunk = String::new();
    for (i, b) in bodies.iter().enumerate() {
        chunk.push_str(&req(first_msg_id + i as u64, b.clone()));
        chunk.push('\n');
        if chunk.len() > 32 << 10 {
            chunk.pop();
            node.send_line(&chunk);
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        chunk.pop();
        node.send_line(&chunk);
    }
    (0..bodies.len())
        .map(|i| {
            let reply = node.recv();
            assert_eq!(
                reply["body"]["in_reply_to"],
                json!(first_msg_id + i as u64),
                "replies out of order: {reply}"
            );
            reply["body"].clone()
        })
        .collect()
}

/// A small deterministic generator (xorshift64*), seeded so a failure can be
/// replayed: the seed comes from `CRASH_SEED` if set, else from the clock,
/// and tests print it.
pub struct Rng(u64);

impl Rng {
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (set CRASH_SEED={seed} to replay)");
        Rng::new(seed)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// `n` random bytes none of which is zero.
    pub fn nonzero_bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.range(1, 256)) as u8).collect()
    }
}

/// A payload of exactly `len` bytes of printable text, tagged with `tag`.
pub fn text_payload(tag: &str, len: usize) -> String {
    let mut s = String::from(tag);
    let filler = "abcdefghijklmnopqrstuvwxyz0123456789-";
    let mut i = 0;
    while s.len() < len {
        s.push(filler.as_bytes()[i % filler.len()] as char);
        i += 1;
    }
    s.truncate(len);
    s
}

/// Starts the node through `bash -c 'exec ...'` with its stderr appended to
/// `stderr_to` (so a test can read it, and it does not clutter the test's
/// output). `exec` keeps the pid, so killing the child kills the node.
/// `prelude` runs in bash first (e.g. `ulimit -f 64`).
pub fn spawn_logged(prelude: &str, args: &[&str], stderr_to: &Path) -> common::Running {
    let script = format!("{prelude}\nexec \"$0\" \"$@\" 2>>\"$WAL_TEST_STDERR\"");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .arg(common::bin())
        .args(args)
        .env("WAL_TEST_STDERR", stderr_to);
    common::Running::spawn_with(&mut cmd)
}

/// The file at `path` as text, or an empty string.
pub fn read_text(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

// The segmented log (issue 9): the log of node `<id>` under `--dir DIR` is
// the directory `DIR/<id>/` of segments `<20-digit first offset>.log`, each
// sealed one with its `<start>.index` (doc/format.md).

pub mod strace;

/// Whether `name` is a segment file's name, and the segment's first offset.
pub fn segment_name_start(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files in `log_dir`, in offset order, by first offset.
pub fn segment_files(log_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(log_dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", log_dir.display()))
        .map(|e| e.unwrap().path())
        .filter_map(|p| Some((segment_name_start(p.file_name()?.to_str()?)?, p)))
        .collect();
    found.sort();
    found
}

/// Checks a node's `wal_segment_info_ok` body (`segments`) against its
/// `wal_info_ok` body (`info`) and the files in `log_dir`: segments
/// contiguous from offset 0 to the last entry, each named by its first
/// offset; every one but the last sealed, holding entries, exactly its
/// frames on disk and with its index file beside it; the last one active;
/// none over `limit` unless it holds a lone frame; sizes adding up to
/// `total_bytes`; and exactly the listed segment files on disk. Returns the
/// number of segments.
pub fn check_segment_list(
    what: &str,
    segments: &Value,
    info: &Value,
    log_dir: &Path,
    limit: u64,
) -> usize {
    let rows = segments["segments"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not a wal_segment_info_ok: {segments}"));
    assert!(!rows.is_empty(), "{what}: no segment at all: {segments}");
    let entries = info["entries"].as_u64().expect("wal_info_ok.entries");
    let (mut next, mut total) = (0u64, 0u64);
    for (k, row) in rows.iter().enumerate() {
        let active = k + 1 == rows.len();
        let start = row["start_offset"].as_u64().expect("start_offset");
        let file = row["file"].as_str().expect("file");
        let size = row["size_bytes"].as_u64().expect("size_bytes");
        assert_eq!(
            start, next,
            "{what}: {file} starts at offset {start} where offset {next} was due: offsets \
             have a gap or overlap\n{segments}"
        );
        assert_eq!(file, format!("{start:020}.log"), "{what}: {segments}");
        assert_eq!(
            row["sealed"],
            json!(!active),
            "{what}: every segment but the last is sealed\n{segments}"
        );
        let count = match row["end_offset"].as_u64() {
            Some(end) => {
                assert!(end >= start, "{what}: {file} ends before it starts");
                end - start + 1
            }
            None => {
                assert!(
                    active && size == 0,
                    "{what}: only the active segment may be empty, and then it has no bytes\n\
                     {segments}"
                );
                0
            }
        };
        assert!(
            size <= limit || count == 1,
            "{what}: {file} is {size} bytes, over the limit of {limit}, with {count} entries: \
             only a lone frame may exceed it\n{segments}"
        );
        let path = log_dir.join(file);
        let on_disk = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{what}: {} is listed but: {e}", path.display()))
            .len();
        if active {
            assert!(on_disk >= size, "{what}: {file} is shorter than its frames");
        } else {
            assert_eq!(
                on_disk, size,
                "{what}: sealed {file} must be exactly its frames\n{segments}"
            );
            let index = log_dir.join(format!("{start:020}.index"));
            assert!(
                index.is_file(),
                "{what}: sealed {file} has no index file {} on disk\n{segments}",
                index.display()
            );
        }
        next = start + count;
        total += size;
    }
    assert_eq!(
        next, entries,
        "{what}: the segments end at offset {next} but the log has {entries} entries\n{segments}"
    );
    assert_eq!(
        json!(total),
        info["total_bytes"],
        "{what}: segment sizes vs total_bytes\n{segments}\n{info}"
    );
    assert_eq!(
        segments["active_segment"],
        rows[rows.len() - 1]["file"],
        "{what}: {segments}"
    );
    let listed: Vec<&str> = rows.iter().map(|r| r["file"].as_str().unwrap()).collect();
    let files: Vec<String> = segment_files(log_dir)
        .iter()
        .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files, listed,
        "{what}: the segment files on disk are not the ones the node lists"
    );
    rows.len()
}

/// Every payload in the segment files of `log_dir`, in offset order, parsed
/// from the spec (not with the crate's code): each segment whole frames,
/// every one but the last exactly its frames, each named by the offset its
/// first frame has when they are counted from 0.
pub fn payloads_on_disk(log_dir: &Path) -> Vec<Vec<u8>> {
    let segments = segment_files(log_dir);
    let mut all = Vec::new();
    for (k, (start, path)) in segments.iter().enumerate() {
        assert_eq!(
            *start,
            all.len() as u64,
            "{} starts at offset {start} but the segments before it hold {} entries",
            path.display(),
            all.len()
        );
        let bytes = std::fs::read(path).unwrap();
        let (payloads, end) =
            parse_whole_frames(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if k + 1 < segments.len() {
            assert_eq!(
                end,
                bytes.len() as u64,
                "sealed {} is not exactly its frames",
                path.display()
            );
        }
        all.extend(payloads);
    }
    all
}

// ---- Issue 10: the state, snapshots and compaction ----

/// The state a list of payloads builds, from the spec (issue 10) rather than
/// the crate's own code: `set <key>=<value>` (key up to the first `=`, not
/// empty), `del <key>` (key not empty); anything else changes nothing.
pub fn model_state<'a>(
    payloads: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeMap<String, String> {
    let mut state = std::collections::BTreeMap::new();
    for p in payloads {
        if let Some(rest) = p.strip_prefix("set ") {
            if let Some(eq) = rest.find('=')
                && eq > 0
            {
                state.insert(rest[..eq].to_owned(), rest[eq + 1..].to_owned());
            }
        } else if let Some(key) = p.strip_prefix("del ")
            && !key.is_empty()
        {
            state.remove(key);
        }
    }
    state
}

/// A `wal_state_ok` body's whole state, panicking with the body otherwise.
pub fn state_of(body: &Value) -> std::collections::BTreeMap<String, String> {
    assert_eq!(body["type"], "wal_state_ok", "wal_state failed: {body}");
    serde_json::from_value(body["state"].clone())
        .unwrap_or_else(|e| panic!("wal_state_ok's state is not a map of strings ({e}): {body}"))
}

/// Every file in `dir` (not recursing) by name, with its bytes.
pub fn dir_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Every file name in `dir` with its size in bytes.
pub fn dir_sizes(dir: &Path) -> std::collections::BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            let len = e.metadata().unwrap().len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect()
}

/// Flips every bit of the byte at `at` in the file at `path`.
pub fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// The name of the snapshot file holding entries before `offset`.
pub fn snapshot_name(offset: u64) -> String {
    format!("{offset:020}.snapshot")
}

/// The name of the segment file starting at `start`.
pub fn segment_name(start: u64) -> String {
    format!("{start:020}.log")
}

/// The name of the index file of the segment starting at `start`.
pub fn index_name(start: u64) -> String {
    format!("{start:020}.index")
}
