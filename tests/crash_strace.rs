//! Syscall order under `strace` (issues 3 and 9): no acknowledgement
//! reaches stdout while a segment write made before it is not yet covered by
//! a sync of that segment file; every segment file created, and every
//! sealed segment's index renamed into place, is made durable by a sync of
//! the log directory before an acknowledgement depends on it.
//!
//! Needs `strace` (`.ci/run` installs it). Without it these tests fail, on
//! purpose: a crash-safety proof that silently does not run proves nothing.

mod common;
mod crash_support;

use common::log_path;
use crash_support::strace::*;
use crash_support::*;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Starts the node (`--dir dir`, then `node_args`) under `strace -f -tt -y`.
fn spawn_traced(t: &Traced, node_args: &[&str]) -> common::Running {
    common::Running::spawn_with(&mut traced_command(
        &t.dir,
        &t.trace,
        &t.stderr,
        &[],
        node_args,
    ))
}

/// What the trace shows, checked.
struct Findings {
    acks: usize,
    ack_writes: usize,
    wal_writes: usize,
    wal_syncs: usize,
    /// Segment files written to.
    segments_written: usize,
}

/// The segment file of the log directory `dir` that `c`'s fd names.
fn segment_of<'c>(c: &'c Call, dir: &Path) -> Option<&'c Path> {
    let (_, path) = c.fd()?;
    let path = Path::new(path);
    segment_start(path, dir).map(|_| path)
}

/// Check (a), over every segment file of the log directory `dir`: at the
/// start of every stdout write that may carry an acknowledgement, every
/// change to a segment (write, truncate, allocate) started before it is
/// covered by a sync of that same file that began after the change returned
/// and returned 0 before the stdout write began. After a failed sync of a
/// segment or of the directory, nothing may be acknowledged at all.
fn check_acks_follow_syncs(calls: &[Call], dir: &Path, trace: &str) -> Findings {
    // Timeline of (line, order, call index): starts before ends on a line.
    let mut events: Vec<(usize, u8, usize)> = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        events.push((c.start, 0, i));
        if c.end != usize::MAX {
            events.push((c.end, 1, i));
        }
    }
    events.sort_unstable();
    let mut unsynced: BTreeSet<usize> = BTreeSet::new();
    let mut returned: BTreeSet<usize> = BTreeSet::new();
    let mut sync_covers: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut written: BTreeSet<&Path> = BTreeSet::new();
    // After a failed sync the kernel may have dropped dirty pages, so no
    // later sync proves anything: nothing may be acknowledged any more.
    let mut failed_sync: Option<usize> = None;
    let mut f = Findings {
        acks: 0,
        ack_writes: 0,
        wal_writes: 0,
        wal_syncs: 0,
        segments_written: 0,
    };
    for (_, phase, i) in events {
        let c = &calls[i];
        let segment = segment_of(c, dir);
        let wal_write = WRITES.contains(&c.name.as_str()) && segment.is_some();
        let wal_sync = SYNCS.contains(&c.name.as_str()) && segment.is_some();
        let dir_sync = SYNCS.contains(&c.name.as_str()) && c.on(dir);
        match (phase, wal_write, wal_sync) {
            (0, true, _) => {
                unsynced.insert(i);
                written.extend(segment);
                f.wal_writes += 1;
            }
            (1, true, _) => {
                returned.insert(i);
            }
            (0, _, true) => {
                // A sync covers its own file's changes only.
                let covered = unsynced
                    .iter()
                    .copied()
                    .filter(|w| returned.contains(w) && segment_of(&calls[*w], dir) == segment);
                sync_covers.insert(i, covered.collect());
            }
            (1, _, true) if c.ret == Some(0) => {
                f.wal_syncs += 1;
                for w in sync_covers.remove(&i).unwrap_or_default() {
                    unsynced.remove(&w);
                }
            }
            (1, _, true) => {
                failed_sync.get_or_insert(i);
            }
            (1, _, _) if dir_sync && c.ret != Some(0) => {
                failed_sync.get_or_insert(i);
            }
            (0, false, false) if is_stdout_write(c) && may_ack(c) => {
                f.ack_writes += 1;
                f.acks += c.args.matches("wal_append_ok").count();
                if let Some(s) = failed_sync {
                    panic!(
                        "an acknowledgement went to stdout (trace line {}) after a failed sync of \
                         the log (line {}): after a failed fsync no later sync proves anything.\n\
                         Trace lines around it:\n{}",
                        c.start,
                        calls[s].start,
                        excerpt(trace, calls[s].start, c.start)
                    );
                }
                if let Some(&w) = unsynced.iter().next() {
                    let wc = &calls[w];
                    panic!(
                        "an acknowledgement went to stdout (trace line {}, pid {}) while the write \
                         to {} at line {} ({}, returned {:?}) was not yet covered by a successful \
                         fsync/fdatasync of that file: an append was acknowledged before it was \
                         durable.\n{} unsynced segment changes in all.\nTrace lines around it:\n{}",
                        c.start,
                        c.pid,
                        segment_of(wc, dir).map_or("?".into(), |p| p.display().to_string()),
                        wc.start,
                        wc.name,
                        wc.ret,
                        unsynced.len(),
                        excerpt(trace, wc.start, c.start)
                    );
                }
            }
            _ => {}
        }
    }
    f.segments_written = written.len();
    f
}

/// The line where the first successful fsync of `dir` that began after
/// line `after` returned, if any.
fn dir_synced_after(calls: &[Call], dir: &Path, after: usize) -> Option<usize> {
    calls
        .iter()
        .filter(|c| {
            SYNCS.contains(&c.name.as_str()) && c.on(dir) && c.ret == Some(0) && c.start > after
        })
        .map(|c| c.end)
        .min()
}

/// Stdout writes that may carry acknowledgements.
fn ack_writes(calls: &[Call]) -> impl Iterator<Item = &Call> {
    calls.iter().filter(|c| is_stdout_write(c) && may_ack(c))
}

/// Check (b): every segment file's creation (`openat` with `O_CREAT`) is
/// followed by a successful fsync of the log directory before the next
/// acknowledgement. Returns the number of creations seen.
fn check_dir_synced_after_creates(calls: &[Call], dir: &Path, trace: &str) -> usize {
    let mut created = 0;
    for create in calls
        .iter()
        .filter(|c| c.ok() && c.creates().is_some_and(|p| segment_start(p, dir).is_some()))
    {
        created += 1;
        let Some(ack) = ack_writes(calls).find(|c| c.start > create.end) else {
            continue;
        };
        let synced = dir_synced_after(calls, dir, create.end);
        assert!(
            synced.is_some_and(|line| line < ack.start),
            "{} was created at trace line {} but the log directory {} was not fsynced after \
             that and before the next acknowledgement (line {}): after a crash the segment's \
             name, and every acknowledged append in it, could be gone.\nTrace from the \
             creation:\n{}",
            create.quoted()[0],
            create.start,
            dir.display(),
            ack.start,
            excerpt(trace, create.start, ack.start.min(create.start + 30))
        );
    }
    created
}

/// Check (c): a sealed segment's index renamed into place (`<S>.index`) is
/// made durable by a successful fsync of the log directory before any
/// entry of the next segment (offsets from the next segment file's start
/// on) is acknowledged. Returns the number of index renames seen.
fn check_index_renames(calls: &[Call], dir: &Path, trace: &str) -> usize {
    // Every segment the trace names, created or written.
    let starts: BTreeSet<u64> = calls
        .iter()
        .flat_map(|c| [c.creates(), c.fd().map(|(_, p)| Path::new(p))])
        .flatten()
        .filter_map(|p| segment_start(p, dir))
        .collect();
    let mut renamed = 0;
    for rename in calls.iter().filter(|c| c.ok()) {
        let Some((_, to)) = rename.renames() else {
            continue;
        };
        let sealed = to
            .file_name()
            .and_then(|n| n.to_str()?.strip_suffix(".index"))
            .and_then(|stem| segment_name_start(&format!("{stem}.log")));
        let Some(sealed) = sealed.filter(|_| to.parent() == Some(dir)) else {
            continue;
        };
        renamed += 1;
        let Some(&next) = starts.range(sealed + 1..).next() else {
            continue;
        };
        let synced = dir_synced_after(calls, dir, rename.end);
        for ack in ack_writes(calls) {
            let Some(&offset) = acked_offsets(ack).iter().find(|&&o| o >= next) else {
                continue;
            };
            assert!(
                synced.is_some_and(|line| line < ack.start),
                "an acknowledgement of offset {} (trace line {}), in the segment after {}, went \
                 out before the log directory was fsynced after that index's rename (line {}): \
                 after a crash the index's name may be gone.\nTrace from the rename:\n{}",
                if offset == u64::MAX {
                    "? (string cut short)".to_string()
                } else {
                    offset.to_string()
                },
                ack.start,
                to.display(),
                rename.start,
                excerpt(trace, rename.start, ack.start.min(rename.start + 30))
            );
        }
    }
    renamed
}

/// All three checks.
fn check_all(calls: &[Call], dir: &Path, trace: &str) -> (Findings, usize, usize) {
    let f = check_acks_follow_syncs(calls, dir, trace);
    let created = check_dir_synced_after_creates(calls, dir, trace);
    let renamed = check_index_renames(calls, dir, trace);
    (f, created, renamed)
}

struct Traced {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// The log directory of node n1, and its first segment.
    log_dir: PathBuf,
    log: PathBuf,
    trace: PathBuf,
    stderr: PathBuf,
}

fn traced_dirs() -> Traced {
    let tmp = tempdir();
    // strace (-y) prints the kernel's paths: resolve any symlink in TMPDIR.
    let root = tmp.path().canonicalize().unwrap();
    let dir = root.join("logs");
    Traced {
        log_dir: dir.join("n1"),
        log: log_path(&dir, "n1"),
        trace: root.join("trace"),
        stderr: root.join("stderr"),
        dir,
        _tmp: tmp,
    }
}

/// The trace parsed and checked: (calls, findings, segment files created,
/// indexes renamed, the trace's text).
fn analyse(t: &Traced) -> (Vec<Call>, Findings, usize, usize, String) {
    let trace = std::fs::read_to_string(&t.trace).expect("reading the strace output");
    let calls = parse_trace(&trace);
    assert!(
        calls.iter().any(|c| c.name == "openat"),
        "the trace holds no calls; strace's output:\n{}",
        read_text(&t.stderr)
    );
    let (f, created, renamed) = check_all(&calls, &t.log_dir, &trace);
    (calls, f, created, renamed, trace)
}

fn append_body(i: usize) -> Value {
    json!({"type": "wal_append", "payload": text_payload(&format!("p{i}-"), 20 + i % 150)})
}

#[test]
fn pipelined_appends_are_acknowledged_only_after_their_sync() {
    require_strace();
    let t = traced_dirs();
    let mut node = spawn_traced(&t, &[]);
    let init = node.init("n1");
    assert_eq!(init["type"], "init_ok", "{init}\n{}", read_text(&t.stderr));
    const N: usize = 3000;
    let bodies: Vec<Value> = (0..N).map(append_body).collect();
    let replies = pipelined(&mut node, 1000, &bodies);
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r["type"], "wal_append_ok", "append {i}: {r}");
        assert_eq!(r["offset"], json!(i), "append {i}: {r}");
    }
    // A second burst, with reads and infos mixed in.
    let mut mixed = Vec::new();
    for i in 0..500 {
        mixed.push(append_body(N + i));
        if i % 50 == 0 {
            mixed.push(json!({"type": "wal_read", "offset": i}));
            mixed.push(json!({"type": "wal_info"}));
        }
    }
    let replies = pipelined(&mut node, 100_000, &mixed);
    assert!(replies.iter().all(|r| r["type"] != "error"), "{replies:?}");
    assert!(node.finish().success(), "{}", read_text(&t.stderr));

    let (_, f, created, _, _) = analyse(&t);
    assert_eq!(
        created, 1,
        "the log's one segment was created (and checked) once"
    );
    assert!(f.wal_writes > 0 && f.ack_writes > 0, "nothing was traced");
    assert!(
        f.acks >= 100,
        "only {} acknowledgements were visible in the trace",
        f.acks
    );
    let appends = N + 500;
    assert!(
        f.wal_syncs < appends / 2,
        "{} log syncs for {appends} pipelined appends: no group commit happened, so this test \
         did not check batched acknowledgements",
        f.wal_syncs
    );
    eprintln!(
        "crash_strace: {appends} appends, {} log writes, {} log syncs, {} stdout writes carrying \
         acknowledgements",
        f.wal_writes, f.wal_syncs, f.ack_writes
    );
}

#[test]
fn single_requests_are_acknowledged_only_after_their_sync() {
    require_strace();
    let t = traced_dirs();
    let mut node = spawn_traced(&t, &[]);
    let init = node.init("n1");
    assert_eq!(init["type"], "init_ok", "{init}\n{}", read_text(&t.stderr));
    for i in 0..30 {
        let r = node.append(&format!("one at a time {i}"));
        assert_eq!(r["offset"], json!(i), "{r}");
        if i % 10 == 0 {
            assert_eq!(node.read(i)["checksum_valid"], true);
            assert_eq!(node.info()["entries"], json!(i + 1));
        }
    }
    assert!(node.finish().success(), "{}", read_text(&t.stderr));
    let (_, f, created, _, _) = analyse(&t);
    assert_eq!(
        created, 1,
        "the log's one segment was created (and checked) once"
    );
    assert!(
        f.acks >= 30,
        "the trace shows {} acknowledgements, expected 30",
        f.acks
    );
    assert!(
        f.wal_syncs >= 30,
        "30 lone appends need 30 syncs, saw {}",
        f.wal_syncs
    );
}

/// With 1 KiB segments, pipelined and one-at-a-time appends cross many
/// rolls: every ack waits for the sync of the segment holding its frame
/// (the first frame of a new segment included), every new segment's name
/// and every sealed segment's index name are made durable first.
#[test]
fn acknowledgements_follow_their_syncs_across_many_rolls() {
    require_strace();
    let t = traced_dirs();
    let mut node = spawn_traced(&t, &["--max-segment-bytes", "1024"]);
    let init = node.init("n1");
    assert_eq!(init["type"], "init_ok", "{init}\n{}", read_text(&t.stderr));
    // About 100 bytes a frame: some 10 to a segment, so some 60 rolls, most
    // inside a batch.
    const PIPELINED: usize = 600;
    let bodies: Vec<Value> = (0..PIPELINED).map(append_body).collect();
    let replies = pipelined(&mut node, 1000, &bodies);
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r["offset"], json!(i), "append {i}: {r}");
    }
    // One at a time, so that some first frame of a segment is a batch of
    // its own; reads across the sealed segments in between.
    const SINGLE: usize = 60;
    for i in PIPELINED..PIPELINED + SINGLE {
        let r = node.request(append_body(i));
        assert_eq!(r["offset"], json!(i), "{r}");
        if i % 10 == 0 {
            let r = node.read((i * 7 % PIPELINED) as u64);
            assert_eq!(r["checksum_valid"], true, "{r}");
        }
    }
    let segments = node.request(json!({"type": "wal_segment_info"}));
    let info = node.info();
    assert!(node.finish().success(), "{}", read_text(&t.stderr));
    let count = check_segment_list("after the traced run", &segments, &info, &t.log_dir, 1024);
    assert!(
        count >= 30,
        "only {count} segments: the run did not cross many rolls\n{segments}"
    );

    let (_, f, created, renamed, _) = analyse(&t);
    assert_eq!(
        (f.segments_written, created, renamed),
        (count, count, count - 1),
        "every segment written to and created, every sealed one's index renamed into place, \
         and all of that checked"
    );
    assert!(
        f.acks >= PIPELINED + SINGLE - 10,
        "only {} acknowledgements were visible in the trace",
        f.acks
    );
    eprintln!(
        "crash_strace: {} appends over {count} segments: {} segment writes, {} segment syncs, {} \
         stdout writes carrying acknowledgements",
        PIPELINED + SINGLE,
        f.wal_writes,
        f.wal_syncs,
        f.ack_writes
    );
}

#[test]
fn a_repaired_torn_tail_is_durable_before_any_acknowledgement() {
    require_strace();
    let t = traced_dirs();
    let payloads: Vec<Vec<u8>> = (0..5).map(|i| format!("entry {i}").into_bytes()).collect();
    let (mut content, _) = frames(&payloads);
    let end = content.len() as u64;
    content.extend_from_slice(&Rng::new(7).nonzero_bytes(300));
    common::write_log(&t.dir, "n1", &content);

    let mut node = spawn_traced(&t, &[]);
    let init = node.init("n1");
    assert_eq!(init["type"], "init_ok", "{init}\n{}", read_text(&t.stderr));
    let r = node.append("after the repair");
    assert_eq!(r["offset"], json!(5), "{r}");
    assert!(node.finish().success(), "{}", read_text(&t.stderr));

    // (a) covers the truncation: it must be synced before the ack.
    let (calls, f, _, _, trace) = analyse(&t);
    assert!(f.acks >= 1);
    let truncated = calls
        .iter()
        .any(|c| c.name == "ftruncate" && c.on(&t.log) && c.ok());
    assert!(
        truncated,
        "the torn tail was not cut (no ftruncate of the log)"
    );
    // The saved bytes' file is made durable (file and directory entry) before
    // the log is cut: evidence first, destruction second.
    let saved = torn_path(&t.log, end);
    let quoted = format!("\"{}\"", saved.display());
    let created = calls
        .iter()
        .find(|c| c.name == "openat" && c.args.contains(&quoted) && c.ok())
        .unwrap_or_else(|| panic!("no creation of {} in the trace", saved.display()));
    let cut_at = calls
        .iter()
        .filter(|c| c.name == "ftruncate" && c.on(&t.log))
        .map(|c| c.start)
        .min()
        .unwrap();
    let saved_synced = calls.iter().any(|c| {
        SYNCS.contains(&c.name.as_str()) && c.on(&saved) && c.ret == Some(0) && c.end < cut_at
    });
    let dir_synced = calls.iter().any(|c| {
        SYNCS.contains(&c.name.as_str())
            && c.on(&t.log_dir)
            && c.ret == Some(0)
            && c.start > created.end
            && c.end < cut_at
    });
    assert!(
        saved_synced && dir_synced,
        "before the log is truncated (line {cut_at}) the saved bytes must be synced (file: \
         {saved_synced}) and so must its directory entry (directory: {dir_synced}).\n{}",
        excerpt(&trace, created.start, cut_at)
    );
}

// The checker itself, on hand-written traces: it must catch a bad order, and
// must join `<unfinished ...>` / `<... resumed>` lines from other threads.

const LOG_DIR: &str = "/d/n1";

fn check_text(trace: &str) -> Result<(Findings, usize, usize), String> {
    let calls = parse_trace(trace);
    let trace = trace.to_string();
    std::panic::catch_unwind(move || check_all(&calls, Path::new(LOG_DIR), &trace)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "a non-string panic".into())
    })
}

/// The checker must reject `trace` for the right reason: a message
/// containing `because`.
fn expect_violation(trace: &str, why: &str, because: &str) {
    match check_text(trace) {
        Ok(_) => panic!("the checker accepted {why}"),
        Err(msg) => assert!(
            msg.contains(because),
            "{why}: rejected for another reason than {because:?}: {msg}"
        ),
    }
}

/// An ack that a sync failed before.
const SYNC_FAILED: &str = "after a failed sync";
/// An ack while a segment write is not covered by a sync of that file.
const NOT_COVERED: &str = "was not yet covered";

const ACK: &str = r#"write(1<pipe:[9]>, "{\"src\":\"n1\",\"body\":{\"type\":\"wal_append_ok\",\"offset\":0}}\n", 50) = 50"#;

#[test]
fn checker_accepts_ack_after_sync() {
    let trace = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1/00000000000000000000.log>, \"\\5\\0\"..., 13, 0) = 13\n\
         100 10:00:00.000002 fdatasync(3</d/n1/00000000000000000000.log> <unfinished ...>\n\
         101 10:00:00.000003 read(0<pipe:[8]>, \"x\", 1) = 1\n\
         100 10:00:00.000004 <... fdatasync resumed>) = 0\n\
         100 10:00:00.000005 {ACK}\n"
    );
    let (f, ..) = check_text(&trace).expect("a correct order must pass");
    assert_eq!((f.acks, f.wal_writes, f.wal_syncs), (1, 1, 1));
}

#[test]
fn checker_catches_ack_during_sync() {
    let trace = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1/00000000000000000000.log>, \"\\5\\0\"..., 13, 0) = 13\n\
         100 10:00:00.000002 fdatasync(3</d/n1/00000000000000000000.log> <unfinished ...>\n\
         101 10:00:00.000003 {ACK}\n\
         100 10:00:00.000004 <... fdatasync resumed>) = 0\n"
    );
    expect_violation(&trace, "an ack while the sync runs", NOT_COVERED);
}

#[test]
fn checker_catches_ack_after_failed_sync_or_write_during_sync() {
    let failed = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1/00000000000000000000.log>, \"\\5\"..., 13, 0) = 13\n\
         100 10:00:00.000002 fdatasync(3</d/n1/00000000000000000000.log>) = -1 EIO (Input/output error)\n\
         100 10:00:00.000003 {ACK}\n"
    );
    expect_violation(&failed, "an ack after a failed sync", SYNC_FAILED);
    // fsyncgate: a later sync "succeeds", but the pages the failed one had
    // to write may have been dropped; it proves nothing.
    let retried = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1/00000000000000000000.log>, \"\\5\"..., 13, 0) = 13\n\
         100 10:00:00.000002 fdatasync(3</d/n1/00000000000000000000.log>) = -1 EIO (Input/output error)\n\
         100 10:00:00.000003 pwrite64(3</d/n1/00000000000000000000.log>, \"\\5\"..., 13, 13) = 13\n\
         100 10:00:00.000004 fdatasync(3</d/n1/00000000000000000000.log>) = 0\n\
         100 10:00:00.000005 {ACK}\n"
    );
    expect_violation(
        &retried,
        "an ack after a failed sync and a later successful one",
        SYNC_FAILED,
    );
    // The write returns only after the sync began: that sync does not cover it.
    let raced = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1/00000000000000000000.log>, \"\\5\"..., 13, 0 <unfinished ...>\n\
         101 10:00:00.000002 fdatasync(3</d/n1/00000000000000000000.log>) = 0\n\
         100 10:00:00.000003 <... pwrite64 resumed>) = 13\n\
         100 10:00:00.000004 {ACK}\n"
    );
    expect_violation(
        &raced,
        "a sync that began before the write returned",
        NOT_COVERED,
    );
    let other_file = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1/00000000000000000000.log>, \"\\5\"..., 13, 0) = 13\n\
         100 10:00:00.000002 fdatasync(4</d/other.wal>) = 0\n\
         100 10:00:00.000003 {ACK}\n"
    );
    expect_violation(&other_file, "a sync of another file", NOT_COVERED);
}

/// The acknowledgement of `offset`, as strace shows a write to stdout.
fn ack(offset: u64) -> String {
    format!(
        r#"write(1<pipe:[9]>, "{{\"src\":\"n1\",\"body\":{{\"type\":\"wal_append_ok\",\"in_reply_to\":7,\"offset\":{offset},\"length\":5}}}}\n", 80) = 80"#
    )
}

/// The lines of a roll from segment 0 (one entry) to segment 1 (its first
/// entry acknowledged), by label, in the node's order (`Log::roll`).
fn roll_lines() -> Vec<(&'static str, String)> {
    let s0 = "/d/n1/00000000000000000000.log";
    let s1 = "/d/n1/00000000000000000001.log";
    let tmp = "/d/n1/00000000000000000000.index.tmp";
    let idx = "/d/n1/00000000000000000000.index";
    vec![
        (
            "write 0",
            format!("pwrite64(3<{s0}>, \"\\5\"..., 13, 0) = 13"),
        ),
        ("sync 0", format!("fdatasync(3<{s0}>) = 0")),
        ("ack 0", ack(0)),
        ("cut 0", format!("ftruncate(3<{s0}>, 13) = 0")),
        ("fsync 0", format!("fsync(3<{s0}>) = 0")),
        (
            "create index",
            format!(
                "openat(AT_FDCWD</d>, \"{tmp}\", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = \
                 4<{tmp}>"
            ),
        ),
        (
            "write index",
            format!("pwrite64(4<{tmp}>, \"\\0\"..., 8, 48) = 8"),
        ),
        ("sync index", format!("fsync(4<{tmp}>) = 0")),
        ("rename index", format!("rename(\"{tmp}\", \"{idx}\") = 0")),
        (
            "create 1",
            format!(
                "openat(AT_FDCWD</d>, \"{s1}\", O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 5<{s1}>"
            ),
        ),
        (
            "open dir",
            "openat(AT_FDCWD</d>, \"/d/n1\", O_RDONLY|O_CLOEXEC) = 6</d/n1>".into(),
        ),
        ("sync dir", "fsync(6</d/n1>) = 0".into()),
        (
            "write 1",
            format!("pwrite64(5<{s1}>, \"\\5\"..., 13, 0) = 13"),
        ),
        ("sync 1", format!("fdatasync(5<{s1}>) = 0")),
        ("ack 1", ack(1)),
    ]
}

/// A trace of the roll's lines in `order` (labels of `roll_lines`), with
/// the line labelled `swap.0` replaced by `swap.1`.
fn roll_trace(order: &[&str], swap: Option<(&str, String)>) -> String {
    let lines: HashMap<&str, String> = roll_lines().into_iter().collect();
    order
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let line = match &swap {
                Some((from, to)) if from == label => to.clone(),
                _ => lines[label].clone(),
            };
            format!("100 10:00:00.{:06} {line}\n", i + 1)
        })
        .collect()
}

fn node_order() -> Vec<&'static str> {
    roll_lines().into_iter().map(|(label, _)| label).collect()
}

/// `order` with the line labelled `moved` put right after `after`.
fn moved(order: &[&'static str], moved: &str, after: &str) -> Vec<&'static str> {
    let mut out: Vec<&str> = order.iter().copied().filter(|l| *l != moved).collect();
    let at = out.iter().position(|l| *l == after).expect("a label") + 1;
    let label = order
        .iter()
        .copied()
        .find(|l| *l == moved)
        .expect("a label");
    out.insert(at, label);
    out
}

#[test]
fn checker_accepts_a_roll_in_the_nodes_order() {
    let (f, created, renamed) =
        check_text(&roll_trace(&node_order(), None)).expect("the node's own order must pass");
    assert_eq!(
        (f.acks, f.segments_written, created, renamed),
        (2, 2, 1, 1),
        "two acks, two segments written, one created, one index renamed"
    );
    assert_eq!(
        acked_offsets(&parse_trace(&roll_trace(&["ack 1"], None))[0]),
        [1]
    );
}

#[test]
fn checker_catches_a_write_in_the_new_segment_synced_only_through_the_old_one() {
    let trace = roll_trace(
        &node_order(),
        Some((
            "sync 1",
            "fdatasync(3</d/n1/00000000000000000000.log>) = 0".into(),
        )),
    );
    expect_violation(
        &trace,
        "a write to segment 1 covered only by a sync of segment 0",
        NOT_COVERED,
    );
}

#[test]
fn checker_catches_an_ack_before_the_directory_sync_after_a_segment_is_created() {
    // The directory is synced, but only after the first ack in segment 1.
    let order = moved(
        &moved(&node_order(), "open dir", "ack 1"),
        "sync dir",
        "open dir",
    );
    expect_violation(
        &roll_trace(&order, None),
        "an ack before the directory sync that makes segment 1's name durable",
        "was not fsynced after that and before the next acknowledgement",
    );
}

#[test]
fn checker_catches_an_ack_in_the_next_segment_before_the_index_rename_is_durable() {
    // Segment 1's creation is synced, but the index is renamed after that
    // sync, and no sync follows it before segment 1's first ack.
    let order = moved(&node_order(), "rename index", "sync dir");
    expect_violation(
        &roll_trace(&order, None),
        "an ack in segment 1 before the index rename of segment 0 is durable",
        "after that index's rename",
    );
    // An ack of an entry in segment 0 only is not held to it.
    let early = moved(
        &moved(&node_order(), "rename index", "sync 1"),
        "ack 1",
        "sync 1",
    );
    let trace = roll_trace(&early, Some(("ack 1", ack(0))));
    check_text(&trace).expect("an ack of segment 0's entry needs no index rename");
}

#[test]
fn trace_parser_reads_padded_and_unpadded_pid_columns() {
    let trace = "1197  10:00:00.000001 fdatasync(3</x/n1.wal>) = 0\n\
                 12345 10:00:00.000002 fdatasync(3</x/n1.wal>) = 0\n";
    let calls = parse_trace(trace);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!((calls[0].pid, calls[1].pid), (1197, 12345));
    assert!(
        calls
            .iter()
            .all(|c| c.name == "fdatasync" && c.ret == Some(0))
    );
}

/// One `fdatasync` fails (strace injects EIO into the Nth call), in batches
/// where reads of entries appended earlier in the same batch have already
/// written them out: no acknowledgement may follow, the appends waiting on
/// it get error 13, and the node exits.
#[test]
fn after_one_failed_fdatasync_nothing_is_ever_acknowledged() {
    require_strace();
    for when in [1, 2, 3, 4] {
        let t = traced_dirs();
        let mut input = common::init_line("n1") + "\n";
        // About 150 KB in 1,201 requests, at most 400 a batch (the node's
        // stdin pipe may hold all of it at once): at least four batches and
        // four syncs, whatever the timing.
        for i in 0..600 {
            input += &req(10 + 2 * i as u64, append_body(i));
            input += "\n";
            input += &req(11 + 2 * i as u64, json!({"type": "wal_read", "offset": i}));
            input += "\n";
        }
        let inject = format!("inject=fdatasync:error=EIO:when={when}");
        // Batches of 400: four syncs or more whatever the pipe's size.
        let node_args = ["--max-batch", "400"];
        let mut cmd = traced_command(&t.dir, &t.trace, &t.stderr, &["-e", &inject], &node_args);
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let label = format!("fdatasync #{when} failing");
        assert!(
            !out.status.success(),
            "{label}: the node must exit, got {}",
            out.status
        );
        let replies: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let stderr = read_text(&t.stderr);
        // The node's stderr went to a file: the failure is expected here,
        // so the test checks the node said so instead of showing it.
        assert!(
            stderr.contains("fsync") && stderr.contains("the log failed"),
            "{label}: stderr says the sync failed\n{stderr}"
        );
        // The failed sync is a batch's commit (its requests get error 13) or
        // the preallocation between batches (nothing waits on it).
        if !stderr.contains("while extending the log failed") {
            assert!(
                replies.iter().any(|r| r["body"]["code"] == json!(13)),
                "{label}: the appends waiting on the failed sync get error 13\n{stderr}"
            );
        }
        let (calls, ..) = analyse(&t);
        assert!(
            calls
                .iter()
                .any(|c| c.name == "fdatasync" && c.ret == Some(-1)),
            "{label}: strace injected no failure, so this checked nothing"
        );
    }
}

/// `--dir` naming several directories that do not exist yet: each one
/// created is made durable by syncing its parent, not just the last.
#[test]
fn every_directory_created_for_the_log_is_synced_into_its_parent() {
    require_strace();
    let t = traced_dirs();
    let root = t.dir.parent().unwrap().to_path_buf();
    let deep = root.join("a").join("b").join("logs");
    let mut node =
        common::Running::spawn_with(&mut traced_command(&deep, &t.trace, &t.stderr, &[], &[]));
    assert_eq!(
        node.init("n1")["type"],
        "init_ok",
        "{}",
        read_text(&t.stderr)
    );
    assert!(node.finish().success());
    let trace = std::fs::read_to_string(&t.trace).unwrap();
    let calls = parse_trace(&trace);
    for dir in [
        root.clone(),
        root.join("a"),
        root.join("a").join("b"),
        deep.clone(),
    ] {
        let synced = calls.iter().any(|c| {
            matches!(c.name.as_str(), "fsync" | "fdatasync")
                && c.args.starts_with(&format!(
                    "{}<{}>",
                    c.fd().map_or(-1, |f| f.0),
                    dir.display()
                ))
                && c.ok()
        });
        assert!(
            synced,
            "no successful fsync of {} in the trace",
            dir.display()
        );
    }
}
