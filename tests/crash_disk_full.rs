//! A full disk, modelled with a small `RLIMIT_FSIZE`: appends past the limit
//! get a definite error (14), the node keeps serving, earlier entries still
//! read back, and the file holds only whole frames, exactly the acknowledged
//! ones. The node is started with `SIGXFSZ` at its default action (which
//! kills): it must ignore the signal itself, so the write fails with EFBIG.

mod common;
mod crash_support;

use common::{log_path, run};
use crash_support::*;
use serde_json::{Value, json};

/// A full disk at `limit_blocks` KiB (`ulimit -f` counts 1024-byte blocks),
/// filled with payloads of `big` bytes.
struct Setup {
    limit_blocks: u64,
    big: usize,
}

impl Setup {
    fn limit(&self) -> u64 {
        self.limit_blocks * 1024
    }

    fn payload(&self, i: usize) -> String {
        text_payload(&format!("big{i}-"), self.big)
    }

    /// How many big frames fit under the limit.
    fn fitting(&self) -> usize {
        (self.limit() / (8 + self.big as u64)) as usize
    }

    /// A payload whose frame fills the file to exactly the limit.
    fn last_fit(&self) -> String {
        let left = self.limit() - self.fitting() as u64 * (8 + self.big as u64);
        assert!(left > 8, "the setup leaves no room for a last small frame");
        text_payload("last-fit-", (left - 8) as usize)
    }
}

fn assert_definite_error(r: &Value, what: &str, stderr: &str) {
    assert_eq!(
        r["type"], "error",
        "{what}: an append past the file size limit must fail: {r}\nnode stderr:\n{stderr}"
    );
    assert_eq!(
        r["code"],
        json!(14),
        "{what}: the error must be definite (14, abort: the append did not happen): {r}"
    );
}

/// Puts `SIGXFSZ` back to its default action (kill) in this test process,
/// so the node inherits it even if `cargo test` was started with the signal
/// ignored (a shell cannot reset a signal ignored on entry).
fn sigxfsz_kills() {
    // SAFETY: sets a process-wide disposition to the default; no handler.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_DFL) };
}

fn disk_full(setup: &Setup, extra_args: &[&str]) {
    sigxfsz_kills();
    let label = format!(
        "disk full at {} bytes, {}-byte payloads, args {extra_args:?}",
        setup.limit(),
        setup.big
    );
    let limit = setup.limit();
    let n = setup.fitting();
    let dir = tempdir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let err = dir.path().join("node.stderr");
    let prelude = format!("ulimit -f {}", setup.limit_blocks);
    let mut args = vec!["--dir", data.to_str().unwrap()];
    args.extend_from_slice(extra_args);
    let mut node = spawn_logged(&prelude, &args, &err);
    let stderr = || read_text(&err);
    let init = node.init("n1");
    assert_eq!(init["type"], "init_ok", "{label}: {init}\n{}", stderr());

    // What was acknowledged, in offset order.
    let mut acked: Vec<String> = Vec::new();

    // Up to 5 frames short of the limit: a few one at a time, the rest
    // pipelined.
    for i in 0..3 {
        let r = node.append(&setup.payload(i));
        assert_eq!(
            r["type"],
            "wal_append_ok",
            "{label}: append {i}: {r}\n{}",
            stderr()
        );
        assert_eq!(r["offset"], json!(i), "{label}: {r}");
        acked.push(setup.payload(i));
    }
    let fill: Vec<Value> = (3..n - 5)
        .map(|i| json!({"type": "wal_append", "payload": setup.payload(i)}))
        .collect();
    for (i, r) in (3..).zip(pipelined(&mut node, 100_000, &fill)) {
        assert_eq!(
            r["type"],
            "wal_append_ok",
            "{label}: append {i}: {r}\n{}",
            stderr()
        );
        assert_eq!(r["offset"], json!(i), "{label}: {r}");
        acked.push(setup.payload(i));
    }

    // A pipelined burst that crosses the limit: the first 5 fit, the next 5
    // do not; then a read, an info, and a small append that fits exactly.
    let mut burst: Vec<Value> = (n - 5..n + 5)
        .map(|i| json!({"type": "wal_append", "payload": setup.payload(i)}))
        .collect();
    burst.push(json!({"type": "wal_read", "offset": 0}));
    burst.push(json!({"type": "wal_info"}));
    burst.push(json!({"type": "wal_append", "payload": setup.last_fit()}));
    let replies = pipelined(&mut node, 1000, &burst);
    for (i, r) in (n - 5..).zip(&replies[..5]) {
        assert_eq!(
            r["type"],
            "wal_append_ok",
            "{label}: burst append {i} fits: {r}\n{}",
            stderr()
        );
        assert_eq!(r["offset"], json!(i), "{label}: {r}");
        acked.push(setup.payload(i));
    }
    for r in &replies[5..10] {
        assert_definite_error(r, &label, &stderr());
    }
    assert_eq!(
        replies[10]["type"], "wal_read_ok",
        "{label}: reads go on: {}",
        replies[10]
    );
    assert_eq!(
        replies[10]["checksum_valid"], true,
        "{label}: {}",
        replies[10]
    );
    assert_eq!(replies[10]["payload"], setup.payload(0).as_str(), "{label}");
    assert_eq!(
        replies[11]["entries"],
        json!(n),
        "{label}: info goes on: {}",
        replies[11]
    );
    assert_eq!(
        replies[12]["type"],
        "wal_append_ok",
        "{label}: an append that still fits (its frame fills the file exactly to the limit) \
         must succeed after the failures: {}\n{}",
        replies[12],
        stderr()
    );
    assert_eq!(replies[12]["offset"], json!(n), "{label}: {}", replies[12]);
    acked.push(setup.last_fit());

    // The file is now exactly at the limit: even one byte does not fit.
    for payload in ["x", &setup.payload(99)] {
        let r = node.append(payload);
        assert_definite_error(&r, &label, &stderr());
    }
    // Still serving: info, and every acknowledged entry reads back.
    let info = node.info();
    assert_eq!(info["entries"], json!(acked.len()), "{label}: {info}");
    assert_eq!(info["total_bytes"], json!(limit), "{label}: {info}");
    let reads: Vec<Value> = (0..acked.len())
        .map(|o| json!({"type": "wal_read", "offset": o}))
        .collect();
    for (o, r) in pipelined(&mut node, 5000, &reads).iter().enumerate() {
        assert_eq!(r["checksum_valid"], true, "{label}: read {o}: {r}");
        assert_eq!(r["payload"], acked[o].as_str(), "{label}: read {o}");
    }
    let status = node.finish();
    assert!(
        status.success(),
        "{label}: the node exited with {status}\n{}",
        stderr()
    );

    // Only whole frames, exactly the acknowledged ones, then zeros or nothing.
    let log = log_path(&data, "n1");
    let bytes = std::fs::read(&log).unwrap();
    assert!(
        bytes.len() as u64 <= limit,
        "{label}: the file is {} bytes, over the limit",
        bytes.len()
    );
    let (frames, end) = parse_whole_frames(&bytes)
        .unwrap_or_else(|e| panic!("{label}: the log after the disk filled up: {e}"));
    let want: Vec<Vec<u8>> = acked.iter().map(|p| p.clone().into_bytes()).collect();
    assert_eq!(frames.len(), want.len(), "{label}: frames in the file");
    assert!(
        frames == want,
        "{label}: the file's frames are not the acknowledged appends"
    );
    assert_eq!(end, limit, "{label}: frames end");

    // Reopened without the limit: exactly the acknowledged entries, no cut.
    let mut lines = vec![common::init_line("n1"), req(2, json!({"type": "wal_info"}))];
    lines.extend(
        (0..acked.len()).map(|o| req(10 + o as u64, json!({"type": "wal_read", "offset": o}))),
    );
    let out = run(&["--dir", data.to_str().unwrap()], &input_of(&lines));
    let b: Vec<&Value> = out.replies.iter().map(|r| &r["body"]).collect();
    assert_eq!(
        b[0]["type"], "init_ok",
        "{label}: reopen: {}\n{}",
        b[0], out.stderr
    );
    assert_eq!(
        b[1]["entries"],
        json!(acked.len()),
        "{label}: reopen: {}",
        b[1]
    );
    assert_eq!(
        b[1]["corrupt_entries"],
        json!(0),
        "{label}: reopen: {}",
        b[1]
    );
    for (o, r) in b[2..].iter().enumerate() {
        assert_eq!(r["checksum_valid"], true, "{label}: reopen read {o}: {r}");
        assert_eq!(r["payload"], acked[o].as_str(), "{label}: reopen read {o}");
    }
    assert!(
        torn_files(&log).is_empty(),
        "{label}: the reopen found something to cut: {:?}\n{}",
        torn_files(&log),
        out.stderr
    );
}

/// 64 KiB, 1000-byte payloads: 65 frames of 1008 bytes fill 65,520 bytes, a
/// 66th does not fit, and an 8-byte payload then fills the file exactly. The
/// node's first 16 MiB preallocation fails at once.
const SMALL: Setup = Setup {
    limit_blocks: 64,
    big: 1000,
};

#[test]
fn appends_past_the_file_size_limit_fail_definitely_and_the_node_keeps_serving() {
    disk_full(&SMALL, &[]);
}

#[test]
fn the_same_with_one_sync_per_append() {
    disk_full(&SMALL, &["--max-batch", "1"]);
}

#[test]
fn the_limit_is_hit_just_past_the_first_preallocated_chunk() {
    // 16 MiB + 128 KiB: the first 16 MiB preallocation succeeds, extending
    // further fails part way, and the data then grows the file to the limit.
    disk_full(
        &Setup {
            limit_blocks: 16 * 1024 + 128,
            big: 64_000,
        },
        &[],
    );
}
