//! Syscall order under `strace` (issue 3): no acknowledgement reaches stdout
//! while WAL bytes written before it are not yet covered by a sync of the
//! log, and the directory is synced after the log file is created.
//!
//! Needs `strace` (`.ci/run` installs it). Without it these tests fail, on
//! purpose: a crash-safety proof that silently does not run proves nothing.

mod common;
mod crash_support;

use common::log_path;
use crash_support::*;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Fails the test, with what to do, if strace cannot trace here.
fn require_strace() {
    match Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .output()
    {
        Err(e) => panic!(
            "strace is needed for the syscall-order tests but could not be run ({e}). Install it: \
             `apt-get install -y strace` (CI's .ci/run does this)."
        ),
        Ok(out) if !out.status.success() => panic!(
            "strace is installed but cannot trace here ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(_) => {}
    }
}

fn traced_syscalls() -> String {
    let mut calls = vec![
        "openat",
        "write",
        "pwrite64",
        "writev",
        "pwritev",
        "pwritev2",
        "fdatasync",
        "fsync",
        "ftruncate",
        "fallocate",
        "sync_file_range",
        "close",
        "dup",
        "dup3",
        "renameat",
        "renameat2",
    ];
    if cfg!(target_arch = "x86_64") {
        calls.extend(["open", "creat", "dup2", "rename"]);
    }
    calls.join(",")
}

/// Starts the node under `strace -f -tt -y`, tracing to `trace`.
fn spawn_traced(dir: &Path, trace: &Path, stderr_to: &Path) -> common::Running {
    common::Running::spawn_with(&mut traced_command(dir, trace, stderr_to, &[]))
}

/// The node under `strace -f -tt -y`, tracing to `trace`, with `extra`
/// strace options (such as fault injection).
fn traced_command(dir: &Path, trace: &Path, stderr_to: &Path, extra: &[&str]) -> Command {
    let calls = traced_syscalls();
    let argv = [
        "strace",
        "-f",
        "-tt",
        "-y",
        "-s",
        "4194304",
        "-o",
        trace.to_str().unwrap(),
        "-e",
        &format!("trace={calls}"),
        "-e",
        "signal=none",
    ];
    // stderr of strace and of the node go to a file, not the test output.
    let script = "exec \"$@\" 2>>\"$WAL_TEST_STDERR\"";
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .arg("bash")
        .args(argv)
        .args(extra)
        .args(["--", common::bin(), "--dir", dir.to_str().unwrap()])
        .env("WAL_TEST_STDERR", stderr_to);
    cmd
}

/// One system call, from its start line to its result line.
#[derive(Debug, Clone)]
struct Call {
    pid: u64,
    name: String,
    /// The arguments as printed (from the start line).
    args: String,
    /// The return value, if the call returned.
    ret: Option<i64>,
    /// Line numbers (1-based) where it started and where it returned.
    start: usize,
    end: usize,
}

impl Call {
    /// The fd argument's number and, thanks to `-y`, its path.
    fn fd(&self) -> Option<(i64, &str)> {
        let digits: String = self.args.chars().take_while(char::is_ascii_digit).collect();
        let fd = digits.parse().ok()?;
        let rest = &self.args[digits.len()..];
        let path = rest
            .strip_prefix('<')
            .and_then(|r| r.find('>').map(|i| &r[..i]))
            .unwrap_or("");
        Some((fd, path))
    }

    fn on(&self, path: &Path) -> bool {
        self.fd().is_some_and(|(_, p)| Path::new(p) == path)
    }

    fn ok(&self) -> bool {
        self.ret.is_some_and(|r| r >= 0)
    }
}

/// Parses an `strace -f -tt -y -o` file, joining `<unfinished ...>` lines
/// with their `<... resumed>` ends (per pid and syscall).
fn parse_trace(text: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut open: HashMap<(u64, String), usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        // "PID TIME CALL...": strace pads the pid column, so split on runs
        // of spaces (a 4-digit pid is followed by two).
        let Some((pid, after_pid)) = line.split_once(' ') else {
            continue;
        };
        let Some((_time, rest)) = after_pid.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u64>() else {
            continue;
        };
        if let Some(resumed) = rest.strip_prefix("<... ") {
            // `<... NAME resumed>ARGS) = RET`
            let Some((name, tail)) = resumed.split_once(" resumed>") else {
                continue;
            };
            if let Some(idx) = open.remove(&(pid, name.to_string())) {
                calls[idx].ret = return_value(tail);
                calls[idx].end = lineno;
                calls[idx].args.push_str(tail);
            }
            continue;
        }
        let Some(paren) = rest.find('(') else {
            continue; // "+++ exited ...", "--- SIG...": not a call
        };
        let name = rest[..paren].to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let args = &rest[paren + 1..];
        if let Some(args) = args.strip_suffix("<unfinished ...>") {
            open.insert((pid, name.clone()), calls.len());
            calls.push(Call {
                pid,
                name,
                args: args.to_string(),
                ret: None,
                start: lineno,
                end: usize::MAX,
            });
        } else {
            calls.push(Call {
                pid,
                name,
                args: args.to_string(),
                ret: return_value(args),
                start: lineno,
                end: lineno,
            });
        }
    }
    calls
}

/// The number after the last ` = ` of a result line.
fn return_value(tail: &str) -> Option<i64> {
    let (_, ret) = tail.rsplit_once(") = ")?;
    let num: String = ret
        .chars()
        .enumerate()
        .take_while(|&(i, c)| c.is_ascii_digit() || (i == 0 && c == '-'))
        .map(|(_, c)| c)
        .collect();
    num.parse().ok()
}

const WRITES: [&str; 7] = [
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev2",
    "ftruncate",
    "fallocate",
];
const SYNCS: [&str; 2] = ["fsync", "fdatasync"];

fn is_stdout_write(c: &Call) -> bool {
    matches!(c.name.as_str(), "write" | "writev") && c.fd().is_some_and(|(fd, _)| fd == 1)
}

/// Whether a write to stdout may carry an append's acknowledgement: it
/// shows one, or its string was cut short by `-s` (so it might).
fn may_ack(c: &Call) -> bool {
    // strace marks a cut string as `"...`, right after its closing quote (an
    // escaped quote inside the string would read `\"`).
    let cut = c
        .args
        .match_indices("\"...,")
        .any(|(i, _)| i == 0 || c.args.as_bytes()[i - 1] != b'\\');
    c.args.contains("wal_append_ok") || cut
}

/// What the trace shows, checked.
struct Findings {
    acks: usize,
    ack_writes: usize,
    wal_writes: usize,
    wal_syncs: usize,
}

/// Check (a): at the start of every stdout write that may carry an
/// acknowledgement, every change to the log (write, truncate, allocate)
/// started before it is covered by a sync of the log that began after that
/// change returned and that returned 0 before the stdout write began.
fn check_acks_follow_syncs(calls: &[Call], log: &Path, trace: &str) -> Findings {
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
    // After a failed sync the kernel may have dropped dirty pages, so no
    // later sync proves anything: nothing may be acknowledged any more.
    let mut failed_sync: Option<usize> = None;
    let mut f = Findings {
        acks: 0,
        ack_writes: 0,
        wal_writes: 0,
        wal_syncs: 0,
    };
    for (_, phase, i) in events {
        let c = &calls[i];
        let wal_write = WRITES.contains(&c.name.as_str()) && c.on(log);
        let wal_sync = SYNCS.contains(&c.name.as_str()) && c.on(log);
        match (phase, wal_write, wal_sync) {
            (0, true, _) => {
                unsynced.insert(i);
                f.wal_writes += 1;
            }
            (1, true, _) => {
                returned.insert(i);
            }
            (0, _, true) => {
                let covered = unsynced.iter().copied().filter(|w| returned.contains(w));
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
                        "an acknowledgement went to stdout (trace line {}, pid {}) while the log \
                         write at line {} ({}, returned {:?}) was not yet covered by a successful \
                         fsync/fdatasync of the log: an append was acknowledged before it was \
                         durable.\n{} unsynced log changes in all.\nTrace lines around it:\n{}",
                        c.start,
                        c.pid,
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
    f
}

/// Check (b): the log's creation (`openat` with `O_CREAT`) is followed by a
/// successful fsync of its directory, before any acknowledgement.
fn check_dir_synced_after_create(calls: &[Call], log: &Path, trace: &str) {
    let dir = log.parent().unwrap();
    let quoted = format!("\"{}\"", log.display());
    let create = calls
        .iter()
        .find(|c| {
            matches!(c.name.as_str(), "openat" | "open" | "creat")
                && c.args.contains(&quoted)
                && (c.name == "creat" || c.args.contains("O_CREAT"))
                && c.ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "the trace shows no creation of {} (openat with O_CREAT)",
                log.display()
            )
        });
    let first_ack = calls
        .iter()
        .filter(|c| is_stdout_write(c) && c.args.contains("wal_append_ok"))
        .map(|c| c.start)
        .min()
        .unwrap_or(usize::MAX);
    let synced = calls.iter().any(|c| {
        SYNCS.contains(&c.name.as_str())
            && c.on(dir)
            && c.ret == Some(0)
            && c.start > create.end
            && c.end < first_ack
    });
    assert!(
        synced,
        "{} was created at trace line {} but its directory {} was not fsynced after that and \
         before the first acknowledgement (line {first_ack}): after a crash the log's name, and \
         every acknowledged append in it, could be gone.\nTrace from the creation:\n{}",
        log.display(),
        create.start,
        dir.display(),
        excerpt(trace, create.start, first_ack.min(create.start + 30))
    );
}

/// Trace lines `from..=to` (1-based), long lines shortened.
fn excerpt(trace: &str, from: usize, to: usize) -> String {
    let to = to.min(from + 60);
    trace
        .lines()
        .enumerate()
        .filter(|(i, _)| (from.saturating_sub(3)..=to).contains(&(i + 1)))
        .map(|(i, l)| {
            let l: String = l.chars().take(200).collect();
            format!("{:>7}: {l}\n", i + 1)
        })
        .collect()
}

struct Traced {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
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
        log: log_path(&dir, "n1"),
        trace: root.join("trace"),
        stderr: root.join("stderr"),
        dir,
        _tmp: tmp,
    }
}

fn analyse(t: &Traced) -> (Vec<Call>, Findings, String) {
    let trace = std::fs::read_to_string(&t.trace).expect("reading the strace output");
    let calls = parse_trace(&trace);
    assert!(
        calls.iter().any(|c| c.name == "openat"),
        "the trace holds no calls; strace's output:\n{}",
        read_text(&t.stderr)
    );
    let f = check_acks_follow_syncs(&calls, &t.log, &trace);
    (calls, f, trace)
}

fn append_body(i: usize) -> Value {
    json!({"type": "wal_append", "payload": text_payload(&format!("p{i}-"), 20 + i % 150)})
}

#[test]
fn pipelined_appends_are_acknowledged_only_after_their_sync() {
    require_strace();
    let t = traced_dirs();
    let mut node = spawn_traced(&t.dir, &t.trace, &t.stderr);
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

    let (calls, f, trace) = analyse(&t);
    check_dir_synced_after_create(&calls, &t.log, &trace);
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
    let mut node = spawn_traced(&t.dir, &t.trace, &t.stderr);
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
    let (calls, f, trace) = analyse(&t);
    check_dir_synced_after_create(&calls, &t.log, &trace);
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

#[test]
fn a_repaired_torn_tail_is_durable_before_any_acknowledgement() {
    require_strace();
    let t = traced_dirs();
    let payloads: Vec<Vec<u8>> = (0..5).map(|i| format!("entry {i}").into_bytes()).collect();
    let (mut content, _) = frames(&payloads);
    let end = content.len() as u64;
    content.extend_from_slice(&Rng::new(7).nonzero_bytes(300));
    common::write_log(&t.dir, "n1", &content);

    let mut node = spawn_traced(&t.dir, &t.trace, &t.stderr);
    let init = node.init("n1");
    assert_eq!(init["type"], "init_ok", "{init}\n{}", read_text(&t.stderr));
    let r = node.append("after the repair");
    assert_eq!(r["offset"], json!(5), "{r}");
    assert!(node.finish().success(), "{}", read_text(&t.stderr));

    // (a) covers the truncation: it must be synced before the ack.
    let (calls, f, trace) = analyse(&t);
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
            && c.on(t.log.parent().expect("the log's directory"))
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

const LOG: &str = "/d/n1.wal";

fn check_text(trace: &str) -> Result<Findings, String> {
    let calls = parse_trace(trace);
    let trace = trace.to_string();
    std::panic::catch_unwind(move || check_acks_follow_syncs(&calls, Path::new(LOG), &trace))
        .map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a non-string panic".into())
        })
}

/// The checker must reject `trace` for the right reason.
fn expect_violation(trace: &str, why: &str) {
    match check_text(trace) {
        Ok(_) => panic!("the checker accepted {why}"),
        Err(msg) => assert!(
            msg.contains("was not yet covered") || msg.contains("after a failed sync"),
            "{why}: rejected for another reason: {msg}"
        ),
    }
}

const ACK: &str = r#"write(1<pipe:[9]>, "{\"src\":\"n1\",\"body\":{\"type\":\"wal_append_ok\",\"offset\":0}}\n", 50) = 50"#;

#[test]
fn checker_accepts_ack_after_sync() {
    let trace = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1.wal>, \"\\5\\0\"..., 13, 0) = 13\n\
         100 10:00:00.000002 fdatasync(3</d/n1.wal> <unfinished ...>\n\
         101 10:00:00.000003 read(0<pipe:[8]>, \"x\", 1) = 1\n\
         100 10:00:00.000004 <... fdatasync resumed>) = 0\n\
         100 10:00:00.000005 {ACK}\n"
    );
    let f = check_text(&trace).expect("a correct order must pass");
    assert_eq!((f.acks, f.wal_writes, f.wal_syncs), (1, 1, 1));
}

#[test]
fn checker_catches_ack_during_sync() {
    let trace = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1.wal>, \"\\5\\0\"..., 13, 0) = 13\n\
         100 10:00:00.000002 fdatasync(3</d/n1.wal> <unfinished ...>\n\
         101 10:00:00.000003 {ACK}\n\
         100 10:00:00.000004 <... fdatasync resumed>) = 0\n"
    );
    expect_violation(&trace, "an ack while the sync runs");
}

#[test]
fn checker_catches_ack_after_failed_sync_or_write_during_sync() {
    let failed = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1.wal>, \"\\5\"..., 13, 0) = 13\n\
         100 10:00:00.000002 fdatasync(3</d/n1.wal>) = -1 EIO (Input/output error)\n\
         100 10:00:00.000003 {ACK}\n"
    );
    expect_violation(&failed, "an ack after a failed sync");
    // fsyncgate: a later sync "succeeds", but the pages the failed one had
    // to write may have been dropped; it proves nothing.
    let retried = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1.wal>, \"\\5\"..., 13, 0) = 13\n\
         100 10:00:00.000002 fdatasync(3</d/n1.wal>) = -1 EIO (Input/output error)\n\
         100 10:00:00.000003 pwrite64(3</d/n1.wal>, \"\\5\"..., 13, 13) = 13\n\
         100 10:00:00.000004 fdatasync(3</d/n1.wal>) = 0\n\
         100 10:00:00.000005 {ACK}\n"
    );
    expect_violation(
        &retried,
        "an ack after a failed sync and a later successful one",
    );
    // The write returns only after the sync began: that sync does not cover it.
    let raced = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1.wal>, \"\\5\"..., 13, 0 <unfinished ...>\n\
         101 10:00:00.000002 fdatasync(3</d/n1.wal>) = 0\n\
         100 10:00:00.000003 <... pwrite64 resumed>) = 13\n\
         100 10:00:00.000004 {ACK}\n"
    );
    expect_violation(&raced, "a sync that began before the write returned");
    let other_file = format!(
        "100 10:00:00.000001 pwrite64(3</d/n1.wal>, \"\\5\"..., 13, 0) = 13\n\
         100 10:00:00.000002 fdatasync(4</d/other.wal>) = 0\n\
         100 10:00:00.000003 {ACK}\n"
    );
    expect_violation(&other_file, "a sync of another file");
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
        let mut cmd = traced_command(&t.dir, &t.trace, &t.stderr, &["-e", &inject]);
        cmd.args(["--max-batch", "400"]);
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
        let (calls, _, _) = analyse(&t);
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
        common::Running::spawn_with(&mut traced_command(&deep, &t.trace, &t.stderr, &[]));
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
