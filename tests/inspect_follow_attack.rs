//! Attacks on `wal-node inspect --follow`, each one a defect found by
//! driving a follower as a storage engineer would: a roll or a compaction
//! landing between two of its system calls (held open with strace's fault
//! injection, so the race is hit every run), frames it must not misjudge,
//! and signals that must stop it. Each test fails on the follower it was
//! written against, and states the promise it holds the follower to.

mod common;
mod crash_support;

use common::Running;
use common::logs;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a follower may take to show what is in the log.
const SHOW_WITHIN: Duration = Duration::from_secs(30);
/// Longest a follower may take to end once asked to (SIGINT, SIGTERM).
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// `inspect --follow --json` of node n1 under `root`, looking every
/// `interval_ms`.
fn follow_command(program: &str, root: &Path, interval_ms: u64) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["inspect", "--follow", "--json", "--interval-ms"])
        .arg(interval_ms.to_string())
        .args(["--dir", root.to_str().unwrap(), "--node", "n1"]);
    cmd
}

/// A follower process, killed if the test ends (or fails) with it running.
struct Follower {
    run: Running,
    /// Run under strace: signals go to the process strace traces.
    traced: bool,
}

impl std::ops::Deref for Follower {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.run
    }
}

impl Follower {
    /// The follower's own process id (strace's child when traced).
    fn pids(&self) -> Vec<i32> {
        let pid = self.run.child.id();
        if !self.traced {
            return vec![pid as i32];
        }
        let children = format!("/proc/{pid}/task/{pid}/children");
        let children = std::fs::read_to_string(children).unwrap_or_default();
        children
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect()
    }

    fn signal(&self, signal: libc::c_int) {
        for pid in self.pids() {
            // SAFETY: a signal to our own child (or strace's).
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Sends `signal` and waits up to `STOP_WITHIN` for the follower to
    /// end: its exit code, or `None` if it was still running (it is then
    /// killed).
    fn stop_with(&mut self, signal: libc::c_int) -> Option<Option<i32>> {
        self.signal(signal);
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            if let Some(status) = self.run.child.try_wait().unwrap() {
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.run.child.kill();
        let _ = self.run.child.wait();
    }

    /// Whether it has ended (on its own: a defect while it should follow).
    fn ended(&mut self) -> Option<Option<i32>> {
        self.run.child.try_wait().unwrap().map(|s| s.code())
    }

    /// Ends a follower that should still be running (Ctrl-C); its stderr.
    fn finish(mut self) -> String {
        self.stop_with(libc::SIGINT);
        self.run.stderr_after_exit()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if self.run.child.try_wait().is_ok_and(|s| s.is_none()) {
            self.kill();
        }
    }
}

fn follower(root: &Path, interval_ms: u64, extra: &[&str]) -> Follower {
    let run = Running::spawn_with(follow_command(common::bin(), root, interval_ms).args(extra));
    Follower { run, traced: false }
}

/// A follower under strace, which injects faults or delays into its system
/// calls as `strace_args` say (the trace itself is dropped).
fn traced_follower(root: &Path, strace_args: &[&str]) -> Follower {
    crash_support::strace::require_strace();
    let mut cmd = Command::new("strace");
    cmd.args(["-qq", "-f", "-o", "/dev/null"])
        .args(strace_args)
        .arg(common::bin())
        .args(["inspect", "--follow", "--json", "--interval-ms", "10"])
        .args(["--dir", root.to_str().unwrap(), "--node", "n1"]);
    let run = Running::spawn_with(&mut cmd);
    // strace's child exists once strace has started it.
    std::thread::sleep(Duration::from_millis(200));
    Follower { run, traced: true }
}

/// Every line the follower prints until `done` holds of them, `wait` has
/// passed, or its output ends.
fn lines_until(f: &Running, wait: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + wait;
    let mut lines = Vec::new();
    while !done(&lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        match f.try_recv(left) {
            Some(line) => lines.push(line),
            None => break,
        }
    }
    lines
}

fn shows_frame(index: u64) -> impl Fn(&[Value]) -> bool {
    move |lines| {
        lines
            .iter()
            .any(|l| l["type"] == "frame" && l["index"] == index)
    }
}

/// The offsets of the frame lines, in the order shown.
fn indexes(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l["type"] == "frame")
        .map(|l| l["index"].as_u64().unwrap())
        .collect()
}

/// A new log (its first segment empty, preallocated to 1 KiB) followed by a
/// follower whose every `pread64` strace holds for 300 ms (`delay` is
/// `delay_enter`: before the read; `delay_exit`: after it). Then ten
/// appends: nine fill the segment, the tenth rolls it, and sealing cuts the
/// segment to its frames. The follower spends nearly all its time inside a
/// held read, so the roll lands in one. Returns what it showed, its exit
/// code if it has ended, and its stderr.
fn roll_during_a_held_read(delay: &str) -> (Vec<u64>, Option<Option<i32>>, String) {
    let root = tempfile::tempdir().unwrap();
    let mut node = logs::live_node(root.path());
    let inject = format!("inject=pread64:{delay}=300000");
    let mut f = traced_follower(root.path(), &["-e", "trace=pread64", "-e", &inject]);
    let entered = lines_until(&f, SHOW_WITHIN, |l| {
        l.iter().any(|l| l["type"] == "segment")
    });
    assert!(!entered.is_empty(), "the follower never entered the log");
    std::thread::sleep(Duration::from_millis(500));
    let acked = logs::pipelined(&mut node, 0, 10);
    assert!(acked.iter().map(|a| a.0).eq(0..10), "{acked:?}");
    let lines = lines_until(&f, SHOW_WITHIN, shows_frame(9));
    let ended = f.ended();
    let stderr = f.finish();
    assert!(node.finish().success());
    (indexes(&lines), ended, stderr)
}

/// Sealing a segment cuts off its preallocated zeros. A follower that read
/// the file's length before the cut and reads after it asks for bytes that
/// are gone: `round` passes the stale length to `recovery::scan`, whose
/// `read_exact_at` fails, and the follower exits 2 ("failed to fill whole
/// buffer"). Unforced, this ended followers within a few thousand appends
/// with 1 KiB segments, and on a full disk when a rollback cut the file.
#[test]
fn a_roll_that_cuts_the_segment_under_a_read_does_not_end_the_follower() {
    let (shown, ended, stderr) = roll_during_a_held_read("delay_enter");
    assert_eq!(
        (shown, ended),
        ((0..10).collect(), None),
        "the follower should show every entry and keep following: {stderr}"
    );
}

/// A round that found nothing new returns, and `move_on` then asks whether
/// the segment is sealed: if the node wrote frames and sealed the segment
/// in between, the follower leaves for the next segment without reading
/// them, and says they were compacted or removed.
#[test]
fn frames_written_and_sealed_between_a_read_and_the_seal_check_are_shown() {
    let (shown, ended, stderr) = roll_during_a_held_read("delay_exit");
    assert_eq!(
        (shown, ended),
        ((0..10).collect(), None),
        "the follower should show every entry and keep following: {stderr}"
    );
    assert!(!stderr.contains("in no segment any more"), "{stderr}");
}

/// Compaction deletes a segment between the follower finding it (listing)
/// and opening it; strace holds the open of segment 9 for five seconds so
/// that the compaction (milliseconds) lands there. README: "offsets removed
/// before it got to them are named on stderr, and it goes on at the first
/// segment left". The follower it was written against exited 2.
#[test]
fn a_segment_compacted_away_just_before_the_follower_opens_it_is_skipped_not_fatal() {
    let root = tempfile::tempdir().unwrap();
    let mut node = logs::live_node(root.path());
    let acked = logs::pipelined(&mut node, 0, 20);
    assert!(acked.iter().map(|a| a.0).eq(0..20), "{acked:?}");
    let dir = root.path().join("n1");
    let nine = logs::segment(&dir, 9);
    let mut f = traced_follower(
        root.path(),
        &[
            "-P",
            nine.to_str().unwrap(),
            "-e",
            "trace=openat",
            "-e",
            "inject=openat:delay_enter=5000000",
        ],
    );
    // Segment 0 is sealed: all of it is shown in one round, then the
    // follower moves on and its open of segment 9 is held.
    let mut lines = lines_until(&f, SHOW_WITHIN, shows_frame(8));
    assert_eq!(indexes(&lines), (0..9).collect::<Vec<u64>>());
    let r = node.request(json!({"type": "wal_snapshot"}));
    assert_eq!(r["snapshot_offset"], 20, "{r}");
    let r = node.request(json!({"type": "wal_compact", "snapshot_at_offset": 18}));
    assert_eq!(r["type"], "wal_compact_ok", "{r}");
    assert!(!nine.exists());
    lines.extend(lines_until(&f, SHOW_WITHIN, shows_frame(19)));
    let ended = f.ended();
    let stderr = f.finish();
    assert!(node.finish().success());
    let want: Vec<u64> = (0..9).chain(18..20).collect();
    assert_eq!(
        (indexes(&lines), ended),
        (want, None),
        "the follower should skip the compacted offsets and go on: {stderr}"
    );
    assert!(
        stderr.contains("offsets 9 to 17 are in no segment any more"),
        "{stderr}"
    );
}

/// Bit rot in the last entry of a sealed segment has no whole frame after
/// it, so `recovery::scan` calls it a torn tail and `round` never shows it;
/// `move_on` then jumps to the next segment and says the entry was
/// "compacted or removed". README: "A sealed segment is final ... and its
/// damage is shown as found"; `inspect` shows it (as `torn`), `verify`
/// reports it.
#[test]
fn bit_rot_in_the_last_entry_of_a_sealed_segment_is_shown_not_called_compacted() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 20);
    logs::rot(&dir, 8);
    let f = follower(root.path(), 10, &["--to", "19"]);
    let (lines, _) = f.replies_after_death();
    let stderr = f.finish();
    assert_eq!(indexes(&lines), (0..20).collect::<Vec<u64>>(), "{stderr}");
    assert!(!stderr.contains("in no segment any more"), "{stderr}");
}

/// A node creating a log writes `wal-node.meta.tmp` before renaming it into
/// place (a crash there leaves only that file). A follower started then
/// finds the directory not empty, and `LogDir::read` refuses it as "not a
/// wal-node log directory: it is empty": exit 2, where it should wait for
/// the log as it does for a missing directory. Unforced, this ended 2 of 5
/// followers started just before their node.
#[test]
fn a_follower_waits_for_a_log_whose_metadata_is_still_being_written() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("n1");
    std::fs::create_dir(&dir).unwrap();
    let temp = dir.join("wal-node.meta.tmp");
    std::fs::write(&temp, b"half").unwrap();
    let mut f = follower(root.path(), 10, &[]);
    std::thread::sleep(Duration::from_millis(500));
    if let Some(code) = f.ended() {
        panic!(
            "the follower gave up on a log being created (exit {code:?}): {}",
            f.run.stderr_after_exit()
        );
    }
    std::fs::remove_file(&temp).unwrap();
    logs::clean(root.path(), 3);
    let lines = lines_until(&f, SHOW_WITHIN, shows_frame(2));
    f.finish();
    assert_eq!(indexes(&lines), vec![0, 1, 2]);
}

/// A new log's directory holds its metadata a moment before its first
/// segment. `Follower::start` waits for the segment in a loop that never
/// looks at the stop flag (nor at a closed pipe), so Ctrl-C and SIGTERM
/// are caught and ignored: only SIGKILL ends it.
#[test]
fn ctrl_c_ends_a_follower_waiting_for_a_log_s_first_segment() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 1);
    std::fs::remove_file(logs::segment(&dir, 0)).unwrap();
    let mut f = follower(root.path(), 10, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let code = f.stop_with(libc::SIGINT);
    let stderr = f.run.stderr_after_exit();
    assert_eq!(code, Some(Some(0)), "{stderr}");
}

/// SIGINT and SIGTERM only set a flag, which the follower reads between
/// rounds. Blocked writing to a reader that is not reading (a paused
/// `less`, a stuck pipeline), the `write` is restarted after the signal
/// (`libc::signal` installs the handler with SA_RESTART), so SIGTERM no
/// longer ends the process: it ends only once someone reads its output.
#[test]
fn sigterm_ends_a_follower_whose_reader_is_not_reading() {
    let root = tempfile::tempdir().unwrap();
    // About 200 KB of rows: more than a pipe holds.
    logs::clean(root.path(), 1500);
    let mut child = follow_command(common::bin(), root.path(), 10)
        .env_remove("WAL_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let unread = child.stdout.take().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_WITHIN;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status.code());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(unread);
    assert_eq!(
        code,
        Some(Some(0)),
        "SIGTERM should end it within {STOP_WITHIN:?}"
    );
}

/// An idle follower sleeps `--interval-ms` at a stretch (up to a minute)
/// and looks at the stop flag only after it: Ctrl-C takes that long.
#[test]
fn ctrl_c_ends_an_idle_follower_promptly_whatever_its_interval() {
    let root = tempfile::tempdir().unwrap();
    logs::clean(root.path(), 3);
    let mut f = follower(root.path(), 60_000, &[]);
    lines_until(&f, SHOW_WITHIN, shows_frame(2));
    std::thread::sleep(Duration::from_millis(200));
    let code = f.stop_with(libc::SIGINT);
    let stderr = f.run.stderr_after_exit();
    assert_eq!(code, Some(Some(0)), "{stderr}");
}

/// A frame whose bytes spell out whole frames, built from ASCII only so it
/// can sit inside a JSON payload.
fn ascii_frame() -> String {
    (0u32..)
        .map(|k| wal_node::frame::encode(format!("inner {k}").as_bytes()))
        .find(|bytes| bytes.is_ascii())
        .map(|bytes| String::from_utf8(bytes).unwrap())
        .unwrap()
}

/// README "Lowering --max-entry-bytes on an existing log": a frame written
/// under a larger limit is whole if its checksum matches, and the node
/// reads it. The follower, given the node's (new) limit as README asks,
/// reads the active segment in a window of 4 MiB past its position, so a
/// 5 MB frame never fits: `recovery::scan` sees a header running past the
/// window's end. It waits forever for that entry; and when the payload
/// holds a frame's bytes (any client's data may), it confirms a "broken
/// framing" range at the entry and shows the bytes inside it as entry `1?`.
/// `inspect` shows the log as it is: entries 0, 1, 2, all ok.
#[test]
fn an_entry_written_under_a_larger_limit_is_shown_whole() {
    let root = tempfile::tempdir().unwrap();
    let root_arg = root.path().to_str().unwrap();
    let append = |msg_id: u64, payload: &str| {
        common::line(
            "c1",
            json!({"type": "wal_append", "msg_id": msg_id, "payload": payload}),
        )
    };
    let big = format!("big {}{}", ascii_frame(), "y".repeat(5_000_000));
    let input = [
        common::init_line("n1"),
        append(2, "small 0"),
        append(3, &big),
    ]
    .join("\n");
    let done = common::run(
        &["--dir", root_arg, "--max-entry-bytes", "6000000"],
        format!("{input}\n").as_bytes(),
    );
    assert_eq!(done.replies[2]["body"]["offset"], 1, "{}", done.stderr);
    // Restarted with the default limit: the big entry is still read.
    let input = [common::init_line("n1"), append(2, "small 2")].join("\n");
    let done = common::run(&["--dir", root_arg], format!("{input}\n").as_bytes());
    assert_eq!(done.replies[1]["body"]["offset"], 2, "{}", done.stderr);

    let f = follower(root.path(), 10, &["--to", "2"]);
    let lines = lines_until(&f, SHOW_WITHIN, shows_frame(2));
    let stderr = f.finish();
    let rows: Vec<(String, Value, Value)> = lines
        .iter()
        .filter(|l| l["type"] != "segment")
        .map(|l| {
            (
                l["type"].to_string(),
                l["index"].clone(),
                l["status"].clone(),
            )
        })
        .collect();
    let want: Vec<(String, Value, Value)> = (0..3)
        .map(|i| ("\"frame\"".to_string(), json!(i), json!("ok")))
        .collect();
    assert_eq!(rows, want, "{stderr}");
}
