//! Snapshots and compaction across restarts, with the real binary and
//! `--dir` (issue 10): the state after a restart is the state of the
//! acknowledged log, a damaged snapshot falls back or refuses, what a crash
//! left behind is cleaned up at open, and a node that snapshots and compacts
//! in a loop keeps its directory bounded.

mod common;
mod crash_support;

use common::Running;
use crash_support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SEGMENT_BYTES: u64 = 1024;

/// What the client knows the log holds: every acknowledged payload by
/// offset, the first offset still held, the newest acknowledged snapshot.
#[derive(Default)]
struct Model {
    payloads: Vec<String>,
    first: u64,
    newest_snapshot: Option<u64>,
}

impl Model {
    fn end(&self) -> u64 {
        self.payloads.len() as u64
    }

    fn state(&self) -> BTreeMap<String, String> {
        model_state(self.payloads.iter().map(String::as_str))
    }

    fn append(&mut self, node: &mut Running, payload: &str) {
        let r = node.append(payload);
        assert_eq!(r["type"], "wal_append_ok", "{r}");
        assert_eq!(r["offset"], json!(self.end()), "offsets are dense: {r}");
        self.payloads.push(payload.to_owned());
    }

    fn snapshot(&mut self, node: &mut Running) -> u64 {
        let r = node.request(json!({"type": "wal_snapshot"}));
        assert_eq!(r["type"], "wal_snapshot_ok", "{r}");
        assert_eq!(r["snapshot_offset"], json!(self.end()), "{r}");
        self.newest_snapshot = Some(self.end());
        self.end()
    }

    /// Compacts before `n`; checks the reply, and that `bytes_freed` is the
    /// size of the files that left the directory.
    fn compact(&mut self, node: &mut Running, log_dir: &Path, n: u64) -> Value {
        let before = dir_sizes(log_dir);
        let r = node.request(json!({"type": "wal_compact", "snapshot_at_offset": n}));
        assert_eq!(r["type"], "wal_compact_ok", "compact {n}: {r}");
        let after = dir_sizes(log_dir);
        let gone: u64 = before
            .iter()
            .filter(|(name, _)| !after.contains_key(*name))
            .map(|(_, len)| len)
            .sum();
        let entries_before = self.end() - self.first;
        self.first = self.first.max(n);
        let want = json!({
            "snapshot_offset": self.newest_snapshot.expect("a snapshot"),
            "entries_before": entries_before,
            "entries_after": self.end() - self.first,
            "bytes_freed": gone,
        });
        for key in [
            "snapshot_offset",
            "entries_before",
            "entries_after",
            "bytes_freed",
        ] {
            assert_eq!(
                r[key], want[key],
                "compact {n}: {key} in {r} (files before {before:?})"
            );
        }
        r
    }

    /// Checks everything the node serves against the model: the state, the
    /// counts, every entry from the first offset on, and that the entry just
    /// before it is gone.
    fn check(&self, node: &mut Running, what: &str) {
        let state = state_of(&node.request(json!({"type": "wal_state"})));
        assert_eq!(state, self.state(), "{what}: the state");
        let info = node.info();
        assert_eq!(info["first_offset"], json!(self.first), "{what}: {info}");
        assert_eq!(
            info["entries"],
            json!(self.end() - self.first),
            "{what}: {info}"
        );
        assert_eq!(info["corrupt_entries"], json!(0), "{what}: {info}");
        let frames: usize = self.payloads[self.first as usize..]
            .iter()
            .map(|p| 8 + p.len())
            .sum();
        assert_eq!(info["total_bytes"], json!(frames), "{what}: {info}");
        let reads: Vec<Value> = (self.first..self.end())
            .map(|o| json!({"type": "wal_read", "offset": o}))
            .collect();
        for (o, r) in (self.first..).zip(pipelined(node, 1_000_000, &reads)) {
            assert_eq!(r["type"], "wal_read_ok", "{what}: offset {o}: {r}");
            assert_eq!(r["checksum_valid"], true, "{what}: offset {o}: {r}");
            assert_eq!(
                r["payload"].as_str(),
                Some(self.payloads[o as usize].as_str()),
                "{what}: offset {o}"
            );
        }
        if self.first > 0 {
            let r = node.read(self.first - 1);
            assert_eq!(r["code"], 20, "{what}: a compacted offset: {r}");
            let text = r["text"].as_str().unwrap();
            assert!(
                text.contains(&format!("first offset in the log is {}", self.first)),
                "{what}: the error names the first offset: {r}"
            );
        }
        let past = node.read(self.end());
        assert_eq!(past["code"], 20, "{what}: past the end: {past}");
    }
}

fn log_dir(dir: &Path) -> PathBuf {
    dir.join("n1")
}

/// A node on `dir`, initialized.
fn start(dir: &Path) -> Running {
    let mut node = Running::spawn(&["--dir", dir.to_str().unwrap()]);
    let r = node.init("n1");
    assert_eq!(r["type"], "init_ok", "{r}");
    node
}

fn set_segment_bytes(node: &mut Running, n: u64) {
    let r = node.request(json!({"type": "wal_segment_config", "max_segment_bytes": n}));
    assert_eq!(r["type"], "wal_segment_config_ok", "{r}");
}

/// A random payload: mostly sets of a few keys, some deletes, some entries
/// that are not operations.
fn random_payload(rng: &mut Rng, i: usize) -> String {
    let key = rng.range(0, 8);
    match rng.range(0, 10) {
        0..=5 => text_payload(&format!("set k{key}=v{i}."), rng.range(10, 120) as usize),
        6 | 7 => format!("del k{key}"),
        8 => format!("set =not a set {i}"),
        _ => format!("note {i}"),
    }
}

#[test]
fn the_state_after_a_restart_is_the_state_of_the_acknowledged_log() {
    let mut rng = Rng::from_env("snapshot_restart");
    let dir = tempdir();
    let mut model = Model::default();
    let mut compactions = 0;
    for session in 0..8 {
        let mut node = start(dir.path());
        model.check(&mut node, &format!("after restart {session}"));
        if session == 0 {
            set_segment_bytes(&mut node, SEGMENT_BYTES);
        }
        for step in 0..40 {
            let p = random_payload(&mut rng, model.payloads.len());
            model.append(&mut node, &p);
            // Sessions 0-1: no snapshots; 2-3: snapshots; then compactions too.
            if session >= 2 && step % 13 == 12 {
                model.snapshot(&mut node);
            }
            if let Some(newest) = model.newest_snapshot
                && session >= 4
                && step % 13 == 6
            {
                let n = rng.range(model.first, newest + 1);
                model.compact(&mut node, &log_dir(dir.path()), n);
                compactions += 1;
            }
        }
        model.check(&mut node, &format!("session {session}"));
        // Every entry was acknowledged: a clean exit and a kill -9 must
        // leave the same log.
        if session % 2 == 0 {
            assert!(node.finish().success());
        } else {
            node.kill9();
        }
    }
    assert!(compactions >= 8, "only {compactions} compactions ran");
    assert!(model.first > 0, "nothing was compacted away");
    let mut node = start(dir.path());
    model.check(&mut node, "at the end");
    assert!(node.finish().success());
}

/// A log of `n` entries with a distinctive first one, so a state rebuilt
/// without entry 0 shows.
fn payload(i: usize) -> String {
    if i == 0 {
        "set first=entry 0".to_owned()
    } else {
        format!("set k{}=value {i}", i % 3)
    }
}

/// Snapshot at 10, compaction at 10, snapshot at 20: the log starts at 10
/// and both snapshots are kept (10 is the fallback for 20).
fn two_snapshots_over_a_compacted_log(dir: &Path) -> Model {
    let mut model = Model::default();
    let mut node = start(dir);
    for i in 0..10 {
        model.append(&mut node, &payload(i));
    }
    model.snapshot(&mut node);
    model.compact(&mut node, &log_dir(dir), 10);
    for i in 10..20 {
        model.append(&mut node, &payload(i));
    }
    model.snapshot(&mut node);
    assert!(node.finish().success());
    let files = dir_sizes(&log_dir(dir));
    for s in [10, 20] {
        assert!(
            files.contains_key(&snapshot_name(s)),
            "snapshot {s} is kept: {files:?}"
        );
    }
    model
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_previous_one() {
    let dir = tempdir();
    let model = two_snapshots_over_a_compacted_log(dir.path());
    let newest = log_dir(dir.path()).join(snapshot_name(20));
    // A byte of the first key's value (header 32, lengths 8, key "first").
    flip_byte(&newest, 32 + 8 + 5 + 2);

    let mut node = start(dir.path());
    // Entries 0-9 are only in snapshot 10: the state shows it was used.
    model.check(&mut node, "after falling back");
    let (status, stderr) = node.finish_with_stderr();
    assert!(status.success());
    for said in [
        snapshot_name(20).as_str(),
        "damaged",
        &format!("rebuilt from {}", snapshot_name(10)),
    ] {
        assert!(
            stderr.contains(said),
            "stderr says {said:?} about the fallback:\n{stderr}"
        );
    }
    assert!(
        newest.exists(),
        "the damaged snapshot is left for an operator"
    );
}

/// Without compaction the whole log is there to rebuild from.
#[test]
fn a_damaged_only_snapshot_of_an_uncompacted_log_is_rebuilt_from_the_log() {
    let dir = tempdir();
    let mut model = Model::default();
    let mut node = start(dir.path());
    for i in 0..12 {
        model.append(&mut node, &payload(i));
    }
    model.snapshot(&mut node);
    model.append(&mut node, "set after=snapshot");
    assert!(node.finish().success());
    flip_byte(&log_dir(dir.path()).join(snapshot_name(12)), 20);

    let mut node = start(dir.path());
    model.check(&mut node, "rebuilt from the log");
    let (_, stderr) = node.finish_with_stderr();
    assert!(
        stderr.contains(&snapshot_name(12)) && stderr.contains("rebuilt from the whole log"),
        "stderr names the damaged snapshot and the fallback:\n{stderr}"
    );
}

#[test]
fn a_damaged_snapshot_with_nothing_to_fall_back_on_refuses_to_open_and_changes_nothing() {
    let dir = tempdir();
    let mut model = two_snapshots_over_a_compacted_log(dir.path());
    let mut node = start(dir.path());
    model.compact(&mut node, &log_dir(dir.path()), 20);
    for i in 20..25 {
        model.append(&mut node, &payload(i));
    }
    assert!(node.finish().success());
    let files = dir_sizes(&log_dir(dir.path()));
    assert!(
        !files.contains_key(&snapshot_name(10)),
        "compaction at 20 removes snapshot 10: {files:?}"
    );
    flip_byte(&log_dir(dir.path()).join(snapshot_name(20)), 33);
    let before = dir_files(&log_dir(dir.path()));

    let mut node = Running::spawn(&["--dir", dir.path().to_str().unwrap()]);
    for attempt in 0..2 {
        let r = node.init("n1");
        assert_eq!(r["type"], "error", "attempt {attempt}: {r}");
        assert_eq!(r["code"], 13, "attempt {attempt}: {r}");
        let text = r["text"].as_str().unwrap();
        for said in [
            snapshot_name(20).as_str(),
            log_dir(dir.path()).to_str().unwrap(),
            "wal-node verify",
            "wal-node inspect",
            "backup",
        ] {
            assert!(text.contains(said), "the refusal names {said:?}: {text}");
        }
        let r = node.info();
        assert_eq!(r["code"], 11, "nothing is served: {r}");
    }
    assert!(node.finish().success());
    assert_eq!(
        dir_files(&log_dir(dir.path())),
        before,
        "a refused open changes nothing on disk"
    );
}

#[test]
fn a_snapshot_temp_file_left_by_a_crash_is_removed_at_open() {
    let dir = tempdir();
    let mut model = Model::default();
    let mut node = start(dir.path());
    for i in 0..5 {
        model.append(&mut node, &payload(i));
    }
    model.snapshot(&mut node);
    model.append(&mut node, &payload(5));
    assert!(node.finish().success());
    // A snapshot of offset 6 was being written when the node died; one for
    // an offset past the end, too, which the log must not take for real.
    let temps = [
        format!("{}.tmp", snapshot_name(6)),
        format!("{}.tmp", snapshot_name(99)),
    ];
    for t in &temps {
        std::fs::write(log_dir(dir.path()).join(t), b"walsnaps half-writ").unwrap();
    }

    let mut node = start(dir.path());
    model.check(&mut node, "after the temp files");
    let (_, stderr) = node.finish_with_stderr();
    let files = dir_sizes(&log_dir(dir.path()));
    for t in &temps {
        assert!(!files.contains_key(t), "{t} is removed at open: {files:?}");
        assert!(stderr.contains(t.as_str()), "stderr names {t}:\n{stderr}");
    }
    assert!(files.contains_key(&snapshot_name(5)), "{files:?}");
}

/// 100-byte frames: a 1024-byte segment holds 10 of them.
fn frame_payload(i: usize) -> String {
    text_payload(&format!("set k{}=e{i}.", i % 5), 92)
}

#[test]
fn segments_left_below_the_first_offset_by_a_crash_are_removed_at_open() {
    // Compaction at 35 deletes [0,10) [10,20) [20,30), index first, oldest
    // first. A crash after the metadata update leaves a suffix of them.
    let leftovers: [&[String]; 3] = [
        &[0, 10, 20]
            .map(|s| [index_name(s), segment_name(s)])
            .concat(),
        &[10, 20].map(|s| [index_name(s), segment_name(s)]).concat(),
        &[segment_name(20)],
    ];
    for left in leftovers {
        let dir = tempdir();
        let ld = log_dir(dir.path());
        let mut model = Model::default();
        let mut node = start(dir.path());
        set_segment_bytes(&mut node, SEGMENT_BYTES);
        for i in 0..50 {
            model.append(&mut node, &frame_payload(i));
        }
        model.snapshot(&mut node);
        let saved = dir_files(&ld);
        model.compact(&mut node, &ld, 35);
        assert!(node.finish().success());
        let after = dir_files(&ld);
        for name in left {
            assert!(!after.contains_key(name), "compaction removed {name}");
            std::fs::write(ld.join(name), &saved[name]).unwrap();
        }

        let mut node = start(dir.path());
        model.check(&mut node, &format!("with {left:?} left over"));
        let (_, stderr) = node.finish_with_stderr();
        assert_eq!(
            dir_files(&ld),
            after,
            "open removes exactly what the compaction had left ({left:?})\nstderr:\n{stderr}"
        );
        assert!(
            stderr.contains("before offset 35"),
            "stderr says what was removed:\n{stderr}"
        );
    }
}

#[test]
fn a_node_that_snapshots_and_compacts_in_a_loop_stays_bounded_on_disk() {
    const ROUNDS: usize = 50;
    const PER_ROUND: usize = 40;
    const KEYS: usize = 8;
    // Every payload 60 bytes ("set kK=" + 53), every frame 68: a 1024-byte
    // segment holds E = 15 (1020 bytes).
    const FRAME: u64 = 68;
    const E: u64 = SEGMENT_BYTES / FRAME;
    let value = |i: usize| text_payload(&format!("{i}."), 53);
    // Each round: append PER_ROUND, snapshot S_r, compact before S_(r-1).
    // What may stay on disk after a round:
    // - the metadata file, 40 bytes;
    // - two snapshots (S_r, and S_(r-1), the fallback, not older than the
    //   first offset), each at most 36 + KEYS x (8 + 2 + 53) bytes;
    // - the segments holding [S_(r-1), S_r): at most ceil(PER_ROUND / E) + 1
    //   (the first may start before S_(r-1)), each at most SEGMENT_BYTES
    //   (sealed: cut to its frames; active: preallocated up to the limit)
    //   plus, if sealed, an index of 48 + 8 x E bytes.
    let snapshot_max = 36 + KEYS as u64 * (8 + 2 + 53);
    let segments_max = (PER_ROUND as u64).div_ceil(E) + 1;
    let bound = 40 + 2 * snapshot_max + segments_max * (SEGMENT_BYTES + 48 + 8 * E);
    let written = (ROUNDS * PER_ROUND) as u64 * FRAME;
    assert!(
        bound * 10 < written,
        "the bound ({bound}) must be far below what is written ({written}) to mean anything"
    );

    let dir = tempdir();
    let ld = log_dir(dir.path());
    let mut model = Model::default();
    let mut node = start(dir.path());
    set_segment_bytes(&mut node, SEGMENT_BYTES);
    let mut previous = 0;
    let mut largest = 0;
    for round in 0..ROUNDS {
        let bodies: Vec<Value> = (0..PER_ROUND)
            .map(|j| {
                let i = model.payloads.len() + j;
                let p = format!("set k{}={}", i % KEYS, value(i));
                assert_eq!(p.len() as u64 + 8, FRAME);
                json!({"type": "wal_append", "payload": p})
            })
            .collect();
        for (r, b) in pipelined(&mut node, 10_000_000, &bodies)
            .iter()
            .zip(&bodies)
        {
            assert_eq!(r["offset"], json!(model.end()), "round {round}: {r}");
            model
                .payloads
                .push(b["payload"].as_str().unwrap().to_owned());
        }
        let s = model.snapshot(&mut node);
        model.compact(&mut node, &ld, previous);
        previous = s;
        let size: u64 = dir_sizes(&ld).values().sum();
        largest = largest.max(size);
        assert!(
            size <= bound,
            "round {round}: the log directory holds {size} bytes, over the bound {bound}: {:?}",
            dir_sizes(&ld)
        );
        model.check(&mut node, &format!("round {round}"));
    }
    assert!(node.finish().success());
    let mut node = start(dir.path());
    model.check(&mut node, "after a restart");
    assert!(node.finish().success());
    eprintln!("{written} bytes of frames written; the directory never held more than {largest}");
}

/// After a compaction at the end of the log, the active segment holds only
/// compacted entries; once it rolls it is a whole segment before the first
/// offset, which a compaction at that offset must delete ("whole segments
/// before N are deleted"), as a restart does.
#[test]
fn a_compaction_at_the_first_offset_frees_a_segment_sealed_since() {
    let dir = tempdir();
    let ld = log_dir(dir.path());
    let mut model = Model::default();
    let mut node = start(dir.path());
    set_segment_bytes(&mut node, SEGMENT_BYTES);
    for i in 0..40 {
        model.append(&mut node, &frame_payload(i));
    }
    model.snapshot(&mut node);
    model.compact(&mut node, &ld, 40);
    // [30,40) was active at the compaction; this append seals it.
    model.append(&mut node, &frame_payload(40));
    assert!(
        dir_sizes(&ld).contains_key(&index_name(30)),
        "[30,40) is sealed"
    );
    let r = model.compact(&mut node, &ld, 40);
    assert_eq!(r["bytes_freed"], 1000 + 48 + 8 * 10, "{r}");
    let files = dir_sizes(&ld);
    assert!(!files.contains_key(&segment_name(30)), "{files:?}");
    model.check(&mut node, "after compacting again");
    assert!(node.finish().success());
}

/// An append that failed (error 14: it did not happen) is in neither the
/// state, nor a snapshot taken after it, nor the state after a restart.
/// `ulimit -f 2` (2 KiB) makes a 3 KiB append fail with EFBIG.
#[test]
fn an_append_that_failed_is_not_in_the_state_nor_in_a_snapshot() {
    let dir = tempdir();
    let err = dir.path().join("node.stderr");
    let args = ["--dir", dir.path().to_str().unwrap()];
    let mut node = spawn_logged("ulimit -f 2", &args, &err);
    assert_eq!(node.init("n1")["type"], "init_ok");
    let mut model = Model::default();
    model.append(&mut node, "set a=1");
    // The state is built now, so the failed append must be taken out of it.
    assert_eq!(
        state_of(&node.request(json!({"type": "wal_state"}))).len(),
        1
    );
    let r = node.append(&format!("set b={}", "x".repeat(3000)));
    assert_eq!(r["code"], 14, "{r}\nstderr:\n{}", read_text(&err));
    model.append(&mut node, "set c=3");
    model.check(&mut node, "after the failed append");
    model.snapshot(&mut node);
    assert!(node.finish().success());

    let mut node = start(dir.path());
    model.check(&mut node, "after a restart");
    assert!(node.finish().success());
}
