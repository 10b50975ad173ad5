//! A kill at every step of a roll (issue 9; doc/format.md "Rolling"): the
//! real node runs under `strace -e inject=SYSCALL:signal=KILL:when=N`, so it
//! dies on entry to one system call of the roll, in turn every call strace
//! shows from the first after the last acknowledgement in the full segment
//! to the first after the next segment's first acknowledgement. Among them:
//! the full segment's ftruncate and fsync, the index temp file's creation,
//! writes, fsync and rename, the next segment's creation, the directory
//! fsync, the first write into the next segment, its fdatasync and the
//! acknowledgement itself. After each kill the node is restarted and must
//! serve every acknowledged append at its offset, dense offsets, nothing
//! never sent, a consistent segment list, and take further appends that
//! survive another restart. A separate test checks that the documented
//! steps are all there, in order.
//!
//! Each kill point is also run as a power cut: after the kill, the names
//! the trace shows were not yet made durable by a directory fsync are
//! undone (created files removed, renames reversed) and bytes written but
//! not yet covered by a sync of their file are zeroed. (A truncation not yet
//! synced is left done: the simulation drops names and data, not sizes.)
//!
//! Needs `strace`; without it these tests fail, on purpose.

mod common;
mod crash_support;

use crash_support::strace::*;
use crash_support::*;
use serde_json::{Value, json};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

/// The segment limit: 1 KiB.
const LIMIT: u64 = 1024;
/// 300-byte payloads: 308-byte frames, three to a segment.
const PAYLOAD: usize = 300;
/// Entries written before the traced run: segments 0 and 3 sealed, 6 active
/// with one entry.
const BEFORE: u64 = 7;
/// The traced run appends 7 to 9 one at a time: 7 and 8 fill segment 6, 9
/// rolls it (sealing 6, starting 9). Then stdin closes: nothing is sent
/// that a kill could meet as a broken pipe.
const SENT: u64 = 10;
const SEALED: u64 = 6;
const NEXT: u64 = 9;
/// Only a guard against a hung node: each reply comes in milliseconds.
const HANG: Duration = Duration::from_secs(120);

fn payload(i: u64) -> String {
    text_payload(&format!("entry {i}:"), PAYLOAD)
}

/// One scratch log directory, its first entries written by a run without
/// strace, so that the metadata exists and the traced run's calls are the
/// same in every case.
struct Case {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    log_dir: PathBuf,
    trace: PathBuf,
    stderr: PathBuf,
}

impl Case {
    fn new() -> Case {
        let tmp = tempdir();
        // strace (-y) prints the kernel's paths: resolve any symlink in TMPDIR.
        let root = tmp.path().canonicalize().unwrap();
        let dir = root.join("logs");
        let case = Case {
            log_dir: dir.join("n1"),
            trace: root.join("trace"),
            stderr: root.join("stderr"),
            dir,
            _tmp: tmp,
        };
        let mut input = vec![common::init_line("n1")];
        input.extend(
            (0..BEFORE).map(|i| req(10 + i, json!({"type": "wal_append", "payload": payload(i)}))),
        );
        let limit = LIMIT.to_string();
        let out = common::run(
            &[
                "--dir",
                case.dir.to_str().unwrap(),
                "--max-segment-bytes",
                &limit,
            ],
            &input_of(&input),
        );
        assert!(out.status.success(), "{}", out.stderr);
        assert_eq!(out.replies.len() as u64, 1 + BEFORE, "{:?}", out.replies);
        for (i, r) in out.replies[1..].iter().enumerate() {
            assert_eq!(r["body"]["offset"], json!(i), "{r}");
        }
        let names: Vec<u64> = segment_files(&case.log_dir).iter().map(|s| s.0).collect();
        assert_eq!(names, [0, 3, SEALED], "the log before the traced run");
        case
    }

    fn file(&self, name: &str) -> PathBuf {
        self.log_dir.join(name)
    }

    fn segment(&self, start: u64) -> PathBuf {
        self.file(&format!("{start:020}.log"))
    }

    fn index(&self, start: u64) -> PathBuf {
        self.file(&format!("{start:020}.index"))
    }

    fn index_temp(&self, start: u64) -> PathBuf {
        self.file(&format!("{start:020}.index.tmp"))
    }

    /// Runs the node under strace (with `extra` strace options; the segment
    /// limit is the one the metadata keeps) and sends
    /// appends BEFORE..SENT one at a time, each once the one before it is
    /// answered (so every batch is one append and the calls are the same in
    /// every run), until the node's stdout ends. Returns the offsets
    /// acknowledged and how the process ended (stdin closed after the last).
    fn traced_appends(&self, extra: &[&str]) -> (Vec<u64>, ExitStatus) {
        let mut node = common::Running::spawn_with(&mut traced_command(
            &self.dir,
            &self.trace,
            &self.stderr,
            extra,
            &[],
        ));
        let init = node.init("n1");
        assert_eq!(
            init["type"],
            "init_ok",
            "{init}\n{}",
            read_text(&self.stderr)
        );
        let mut acked = Vec::new();
        for i in BEFORE..SENT {
            let body = json!({"type": "wal_append", "payload": payload(i)});
            node.send_line(&req(1000 + i, body));
            // `None`: stdout ended. (Or the node was silent for the hang
            // guard: closing stdin then lets a slow one exit, and its status
            // shows it was not killed.)
            let Some(reply) = node.try_recv(HANG) else {
                return (acked, node.finish());
            };
            assert_eq!(reply["body"]["offset"], json!(i), "{reply}");
            acked.push(i);
        }
        (acked, node.finish())
    }
}

/// One step of the roll (doc/format.md "Rolling"), found in a trace by
/// `finds`.
struct Step {
    what: &'static str,
    finds: fn(&Call, &Case) -> bool,
}

fn is_sync(c: &Call) -> bool {
    SYNCS.contains(&c.name.as_str())
}

fn is_write(c: &Call) -> bool {
    matches!(c.name.as_str(), "pwrite64" | "write")
}

/// The roll's steps, in their documented order.
fn steps() -> Vec<Step> {
    fn s(what: &'static str, finds: fn(&Call, &Case) -> bool) -> Step {
        Step { what, finds }
    }
    vec![
        s("the full segment's ftruncate", |c, k| {
            c.name == "ftruncate" && c.on(&k.segment(SEALED))
        }),
        s("the full segment's fsync", |c, k| {
            is_sync(c) && c.on(&k.segment(SEALED))
        }),
        s("the index temp file's creation", |c, k| {
            c.creates() == Some(k.index_temp(SEALED).as_path())
        }),
        s("the index temp file's write", |c, k| {
            is_write(c) && c.on(&k.index_temp(SEALED))
        }),
        s("the index temp file's fsync", |c, k| {
            is_sync(c) && c.on(&k.index_temp(SEALED))
        }),
        s("the index's rename", |c, k| {
            c.renames() == Some((k.index_temp(SEALED).as_path(), k.index(SEALED).as_path()))
        }),
        s("the next segment's creation", |c, k| {
            c.creates() == Some(k.segment(NEXT).as_path())
        }),
        s("the directory fsync", |c, k| is_sync(c) && c.on(&k.log_dir)),
        s("the first write into the next segment", |c, k| {
            is_write(c) && c.on(&k.segment(NEXT))
        }),
        s("the next segment's fdatasync", |c, k| {
            c.name == "fdatasync" && c.on(&k.segment(NEXT))
        }),
    ]
}

/// Index in `calls` of the stdout write acknowledging `offset`.
fn ack_of(calls: &[Call], offset: u64) -> Option<usize> {
    calls
        .iter()
        .position(|c| is_stdout_write(c) && acked_offsets(c).contains(&offset))
}

/// A call as the same in any case: its name and the paths it names,
/// relative to the case's scratch directory.
fn target(c: &Call, case: &Case) -> String {
    let root = format!("{}/", case.dir.parent().unwrap().display());
    let paths: Vec<&str> = c
        .fd()
        .map(|(_, p)| p)
        .into_iter()
        .chain(c.quoted())
        .filter(|p| p.starts_with(&root))
        .map(|p| &p[root.len()..])
        .collect();
    format!("{} {}", c.name, paths.join(" "))
}

/// Where the node is to be killed: on entry to the `nth` call of `syscall`,
/// which is `target`.
struct KillPoint {
    what: String,
    syscall: String,
    nth: usize,
    target: String,
}

/// A run without a kill: the case and its trace's calls.
fn run_without_kill() -> (Case, Vec<Call>, String) {
    let case = Case::new();
    let (acked, status) = case.traced_appends(&[]);
    assert!(status.success(), "{}", read_text(&case.stderr));
    assert_eq!(acked, (BEFORE..SENT).collect::<Vec<_>>());
    let trace = std::fs::read_to_string(&case.trace).unwrap();
    let calls = parse_trace(&trace);
    (case, calls, trace)
}

/// Every traced call of the roll, found in a run without a kill: from the
/// first after the last acknowledgement in the full segment to the first
/// after the next segment's first acknowledgement (the ack included), each
/// named by the step it is, if it is one.
fn kill_points() -> Vec<KillPoint> {
    let (case, calls, _) = run_without_kill();
    let first = ack_of(&calls, NEXT - 1).expect("the ack of the last entry before the roll") + 1;
    let acked = ack_of(&calls, NEXT).expect("the ack of the next segment's first entry");
    let last = acked + 1;
    assert!(last < calls.len(), "no call after the last ack");
    let steps = steps();
    let (mut points, mut labels) = (Vec::new(), Vec::new());
    for (i, c) in calls.iter().enumerate().take(last + 1).skip(first) {
        let step = steps.iter().find(|s| (s.finds)(c, &case));
        let mut what = match step {
            _ if i == acked => "the next segment's first acknowledgement".into(),
            _ if i == last => format!(
                "the first call after that acknowledgement ({})",
                target(c, &case)
            ),
            Some(step) => step.what.to_string(),
            None => target(c, &case),
        };
        let again = labels.iter().filter(|l| **l == what).count();
        labels.push(what.clone());
        if again > 0 {
            what = format!("{what}, call {}", again + 1);
        }
        points.push(KillPoint {
            what,
            syscall: c.name.clone(),
            nth: calls[..=i].iter().filter(|d| d.name == c.name).count(),
            target: target(c, &case),
        });
    }
    points
}

/// Kills the node at `point` and checks that it died there. Returns the
/// offsets acknowledged before the kill and the trace's calls.
fn kill_at(case: &Case, point: &KillPoint) -> (Vec<u64>, Vec<Call>) {
    let inject = format!("inject={}:signal=KILL:when={}", point.syscall, point.nth);
    let (acked, status) = case.traced_appends(&["-e", &inject]);
    let trace = std::fs::read_to_string(&case.trace).unwrap();
    let calls = parse_trace(&trace);
    assert_eq!(
        status.signal(),
        Some(9),
        "at {}: the node was not killed ({status}), so this case tests nothing.\n{}",
        point.what,
        read_text(&case.stderr)
    );
    let last = calls.last().expect("a traced call");
    let nth = calls.iter().filter(|c| c.name == last.name).count();
    assert!(
        (nth, target(last, case)) == (point.nth, point.target.clone()) && last.ret.is_none(),
        "the kill meant for {} ({} #{}) landed elsewhere: the node's last call was {} #{nth} \
         (line {}). The roll's calls differ from the run without a kill.\n{}",
        point.what,
        point.target,
        point.nth,
        target(last, case),
        last.start,
        excerpt(&trace, last.start.saturating_sub(15), last.start)
    );
    (acked, calls)
}

/// What a power cut at the end of `calls` may lose, done to the files of
/// `log_dir`: bytes written but not covered by a later successful sync of
/// their file are zeroed; names created or renamed into place and not made
/// durable by a later successful directory fsync are undone, latest first
/// (a file opened with `O_CREAT` counts as created: in these runs none of
/// them existed before). Returns what was done.
fn power_cut(calls: &[Call], log_dir: &Path) -> Vec<String> {
    let mut done = Vec::new();
    let in_dir = |p: &Path| p.parent() == Some(log_dir);
    let synced_after = |line: usize, target: &Path| {
        calls.iter().any(|c| {
            SYNCS.contains(&c.name.as_str()) && c.on(target) && c.ret == Some(0) && c.start > line
        })
    };
    for w in calls.iter().filter(|c| c.name == "pwrite64" && c.ok()) {
        let Some((_, path)) = w.fd() else { continue };
        let path = Path::new(path);
        if !in_dir(path) || synced_after(w.end, path) {
            continue;
        }
        // `pwrite64(fd, "..."..., count, offset) = written`
        let at: u64 = w
            .args
            .rsplit_once(") = ")
            .and_then(|(args, _)| args.rsplit(", ").next()?.parse().ok())
            .expect("a pwrite64's offset");
        let n = w.ret.unwrap() as u64;
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) else {
            continue;
        };
        let len = file.metadata().unwrap().len();
        let end = (at + n).min(len);
        if end > at {
            file.write_all_at(&vec![0; (end - at) as usize], at)
                .unwrap();
            done.push(format!("zeroed bytes {at}..{end} of {}", path.display()));
        }
    }
    for c in calls.iter().rev().filter(|c| c.ok()) {
        if let Some(created) = c.creates().filter(|p| in_dir(p))
            && !synced_after(c.end, log_dir)
            && created.exists()
        {
            std::fs::remove_file(created).unwrap();
            done.push(format!("removed {}", created.display()));
        }
        if let Some((from, to)) = c.renames().filter(|(_, to)| in_dir(to))
            && !synced_after(c.end, log_dir)
            && to.exists()
        {
            std::fs::rename(to, from).unwrap();
            done.push(format!(
                "renamed {} back to {}",
                to.display(),
                from.display()
            ));
        }
    }
    done
}

/// Restarts the node (no strace) and checks what it serves: every entry up
/// to its count reads back valid and is `expected[i]` (so every acknowledged
/// append is there, offsets are dense and nothing never sent is served),
/// the count is at least `acked_end` and at most `expected.len()`, and the
/// segment list matches the files. Returns the entry count.
fn check_restart(case: &Case, what: &str, expected: &[String], acked_end: u64) -> u64 {
    let mut node = spawn_logged("", &["--dir", case.dir.to_str().unwrap()], &case.stderr);
    let init = node.init("n1");
    assert_eq!(
        init["type"],
        "init_ok",
        "{what}: restart: {init}\n{}",
        read_text(&case.stderr)
    );
    let info = node.info();
    let entries = info["entries"].as_u64().unwrap();
    assert!(
        (acked_end..=expected.len() as u64).contains(&entries),
        "{what}: {entries} entries, but {acked_end} were acknowledged and {} sent\n{info}\n{}",
        expected.len(),
        read_text(&case.stderr)
    );
    assert_eq!(info["corrupt_entries"], json!(0), "{what}: {info}");
    let listed = node.request(json!({"type": "wal_segment_info"}));
    check_segment_list(what, &listed, &info, &case.log_dir, LIMIT);
    let reads: Vec<Value> = (0..entries)
        .map(|o| json!({"type": "wal_read", "offset": o}))
        .collect();
    for (o, r) in pipelined(&mut node, 5000, &reads).iter().enumerate() {
        assert_eq!(r["checksum_valid"], true, "{what}: offset {o}: {r}");
        assert_eq!(
            r["payload"], expected[o],
            "{what}: offset {o} does not hold the entry sent for it"
        );
    }
    assert!(node.finish().success(), "{what}");
    entries
}

/// After a kill (and perhaps a power cut): restart and check; append four
/// more (crossing a roll) and check they and all before them survive
/// another restart, down to the segment files' bytes.
fn check_recovery(case: &Case, what: &str, acked: &[u64]) {
    let mut expected: Vec<String> = (0..SENT).map(payload).collect();
    let acked_end = acked.last().map_or(BEFORE, |a| a + 1);
    let entries = check_restart(case, what, &expected, acked_end);
    eprintln!("crash_seal: {what}: {acked_end} entries acknowledged, {entries} after the restart");
    expected.truncate(entries as usize);
    let more: Vec<String> = (0..4)
        .map(|j| text_payload(&format!("after the restart {j}:"), PAYLOAD))
        .collect();
    let mut node = spawn_logged("", &["--dir", case.dir.to_str().unwrap()], &case.stderr);
    assert_eq!(node.init("n1")["type"], "init_ok");
    let bodies: Vec<Value> = more
        .iter()
        .map(|p| json!({"type": "wal_append", "payload": p}))
        .collect();
    for (j, r) in pipelined(&mut node, 6000, &bodies).iter().enumerate() {
        assert_eq!(
            r["offset"],
            json!(entries + j as u64),
            "{what}: an append after the restart: {r}\n{}",
            read_text(&case.stderr)
        );
    }
    assert!(node.finish().success(), "{what}");
    expected.extend(more);
    let all = expected.len() as u64;
    let second = format!("{what}, then 4 appends and another restart");
    assert_eq!(check_restart(case, &second, &expected, all), all);
    let on_disk = payloads_on_disk(&case.log_dir);
    let expected: Vec<&[u8]> = expected.iter().map(|p| p.as_bytes()).collect();
    assert!(on_disk == expected, "{second}: the segment files' frames");
}

/// The roll makes its documented calls in their documented order, so the
/// kill points below include a kill between every pair of steps.
#[test]
fn a_roll_makes_its_documented_calls_in_order() {
    require_strace();
    let (case, calls, trace) = run_without_kill();
    let mut from = ack_of(&calls, NEXT - 1).expect("the ack of the last entry before the roll");
    for step in steps() {
        from = calls[from + 1..]
            .iter()
            .position(|c| (step.finds)(c, &case))
            .map(|i| from + 1 + i)
            .unwrap_or_else(|| {
                panic!(
                    "found no step \"{}\" after trace line {}: doc/format.md \"Rolling\" lists \
                     it in this order.\n{}",
                    step.what,
                    calls[from].start,
                    excerpt(&trace, calls[from].start, calls[from].start + 40)
                )
            });
    }
    let acked = ack_of(&calls, NEXT).expect("the ack of the next segment's first entry");
    assert!(
        acked > from,
        "the next segment's first entry was acknowledged (line {}) before its fdatasync (line {})",
        calls[acked].start,
        calls[from].start
    );
}

#[test]
fn a_kill_at_any_step_of_a_roll_loses_nothing_acknowledged() {
    require_strace();
    let points = kill_points();
    for point in &points {
        let what = format!("killed at {}", point.what);
        let case = Case::new();
        let (acked, _) = kill_at(&case, point);
        check_recovery(&case, &what, &acked);
    }
    eprintln!("crash_seal: {} kill points", points.len());
}

#[test]
fn a_power_cut_at_any_step_of_a_roll_loses_nothing_acknowledged() {
    require_strace();
    let mut undone = 0;
    for point in kill_points() {
        let case = Case::new();
        let (acked, calls) = kill_at(&case, &point);
        let cut = power_cut(&calls, &case.log_dir);
        undone += cut.len();
        let what = format!(
            "a power cut at {} (after the kill: {})",
            point.what,
            if cut.is_empty() {
                "nothing to undo".to_string()
            } else {
                cut.join(", ")
            }
        );
        check_recovery(&case, &what, &acked);
    }
    assert!(
        undone > 0,
        "no kill point left anything a power cut would lose: the simulation tested nothing"
    );
}

/// After a kill between the index's rename and the next segment's
/// creation, the next open finishes the roll. The index it then relies on
/// was left by the crash, so its positions must be checked like any index
/// read from disk (doc/format.md "Index files"), not trusted as one just
/// written from memory: damaged positions are rebuilt from the segment and
/// every entry reads back intact.
#[test]
fn a_roll_finished_at_open_checks_the_index_it_did_not_write() {
    require_strace();
    let point = kill_points()
        .into_iter()
        .find(|p| p.what == "the next segment's creation")
        .expect("a kill point at the next segment's creation");
    let case = Case::new();
    let (acked, _) = kill_at(&case, &point);
    assert_eq!(acked, [7, 8], "the roll's own append is not acknowledged");
    // Damage the position of the sealed segment's second entry: the
    // positions' checksum in the header no longer matches.
    let index = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(case.index(SEALED))
        .unwrap();
    let mut position = [0u8; 8];
    index.read_exact_at(&mut position, 48 + 8).unwrap();
    position[0] ^= 0x20;
    index.write_all_at(&position, 48 + 8).unwrap();
    drop(index);
    let expected: Vec<String> = (0..NEXT).map(payload).collect();
    check_restart(&case, "a damaged index left by a kill", &expected, NEXT);
}
