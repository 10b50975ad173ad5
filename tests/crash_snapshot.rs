//! A crash at every step of a snapshot and a compaction (issue 10): the
//! real binary runs under `strace`, which kills it with SIGKILL on entry to
//! one system call, each call of the snapshot and the compaction in turn.
//! After a restart every acknowledged entry at or after the first offset
//! reads back, the state is the state of the acknowledged log, no offset is
//! reused and nothing is misread. Then kill -9 at random while appends,
//! snapshots and compactions are pipelined.
//!
//! Needs `strace` (`.ci/run` installs it). Without it these tests fail, on
//! purpose, like `tests/crash_strace.rs`.

mod common;
mod crash_support;

use crash_support::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

const SEGMENT_BYTES: u64 = 1024;
/// Only a guard against a hung node (a debug build on a loaded machine can
/// stall for seconds); a correct node answers in milliseconds.
const HANG: Duration = Duration::from_secs(120);

/// The calls traced, and counted: every call that opens, writes, syncs,
/// renames or removes a file.
const TRACED: &[&str] = &[
    "openat",
    "write",
    "pwrite64",
    "writev",
    "fsync",
    "fdatasync",
    "ftruncate",
    "fallocate",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
];

/// The node under `strace`, talked to one request at a time so that every
/// run makes the same calls in the same order (one request per batch).
struct Traced {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    msg_id: u64,
}

impl Traced {
    /// `kill_at`: SIGKILL on entry to the `n`th call of that name.
    fn spawn(dir: &Path, trace: &Path, stderr: &Path, kill_at: Option<(&str, u64)>) -> Traced {
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-y", "-s", "256", "-o"])
            .arg(trace)
            .args(["-e", &format!("trace={}", TRACED.join(","))]);
        if let Some((name, n)) = kill_at {
            cmd.args(["-e", &format!("inject={name}:signal=KILL:when={n}")]);
        }
        cmd.args(["--", common::bin(), "--dir"]).arg(dir);
        let mut child = cmd
            .env_remove("WAL_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .expect("spawn strace");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            // A line cut short by the kill (no newline) is no reply.
            while matches!(stdout.read_line(&mut line), Ok(n) if n > 0) && line.ends_with('\n') {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });
        Traced {
            stdin: child.stdin.take(),
            child,
            lines,
            msg_id: 0,
        }
    }

    /// Sends `body` and waits for its reply; `None` once the node is gone.
    fn request(&mut self, mut body: Value) -> Option<Value> {
        self.msg_id += 1;
        body["msg_id"] = json!(self.msg_id);
        let line = format!("{}\n", common::line("c1", body));
        let stdin = self.stdin.as_mut()?;
        if stdin.write_all(line.as_bytes()).is_err() || stdin.flush().is_err() {
            return None;
        }
        match self.lines.recv_timeout(HANG) {
            Ok(l) => {
                let reply: Value = serde_json::from_str(&l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}"));
                assert_eq!(reply["body"]["in_reply_to"], json!(self.msg_id), "{reply}");
                Some(reply["body"].clone())
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("no reply within {HANG:?}: the node hangs"),
        }
    }

    fn wait(mut self) -> ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }
}

/// One traced call: its name, which call of that name it was (from 1), and
/// its line with the log directory's path written as `<dir>`.
#[derive(Debug, Clone)]
struct Call {
    name: String,
    nth: u64,
    text: String,
}

impl Call {
    /// The call without its result (which differs between runs: fds).
    fn call(&self) -> &str {
        self.text.rsplit_once(" = ").map_or(&self.text, |(c, _)| c)
    }
}

/// Parses an `strace -f -y -o` file of one single-threaded process.
fn parse_trace(text: &str, dir: &Path) -> Vec<Call> {
    let dir = dir.to_str().unwrap();
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut calls = Vec::new();
    for line in text.lines() {
        let Some((_pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(paren) = rest.find('(') else {
            continue;
        };
        let name = &rest[..paren];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // "+++ killed by SIGKILL +++", "--- SIGCHLD ...", "<... resumed>"
        }
        let nth = counts.entry(name.to_owned()).or_default();
        *nth += 1;
        calls.push(Call {
            name: name.to_owned(),
            nth: *nth,
            text: without_pipe_inodes(&rest.replace(dir, "<dir>")),
        });
    }
    calls
}

/// `<pipe:[123]>` as `<pipe>`: the same call in another run has another pipe.
fn without_pipe_inodes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("<pipe:[") {
        out.push_str(&rest[..at]);
        out.push_str("<pipe>");
        rest = &rest[at..];
        rest = rest.find("]>").map_or("", |end| &rest[end + 2..]);
    }
    out.push_str(rest);
    out
}

/// 100-byte frames: a 1024-byte segment holds 10 of them.
fn payload(i: usize) -> String {
    let key = ["a", "b", "c", "d", "e", "f", "g"][i % 7];
    text_payload(&format!("set {key}=e{i}."), 92)
}

/// The log every case starts from, made without strace: 60 entries in
/// segments [0,10) ... [50,60), snapshots at 40 and 50. Returns its
/// payloads.
fn make_template(dir: &Path) -> Vec<String> {
    let mut node = common::Running::spawn(&["--dir", dir.to_str().unwrap()]);
    assert_eq!(node.init("n1")["type"], "init_ok");
    let r = node.request(json!({"type": "wal_segment_config", "max_segment_bytes": SEGMENT_BYTES}));
    assert_eq!(r["type"], "wal_segment_config_ok", "{r}");
    let mut payloads = Vec::new();
    for i in 0..60 {
        if i == 40 || i == 50 {
            let r = node.request(json!({"type": "wal_snapshot"}));
            assert_eq!(r["snapshot_offset"], i, "{r}");
        }
        payloads.push(payload(i));
        assert_eq!(node.append(&payloads[i])["offset"], json!(i));
    }
    assert!(node.finish().success());
    payloads
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The run that crashes: five appends (acknowledged one by one), then a
/// snapshot (at 65) and a compaction before `n`. Returns the replies.
fn crash_run(node: &mut Traced, n: u64) -> Vec<Value> {
    let mut bodies: Vec<Value> = vec![json!({"type": "init", "node_id": "n1", "node_ids": ["n1"]})];
    bodies.extend((60..65).map(|i| json!({"type": "wal_append", "payload": payload(i)})));
    bodies.push(json!({"type": "wal_snapshot"}));
    bodies.push(json!({"type": "wal_compact", "snapshot_at_offset": n}));
    bodies.into_iter().map_while(|b| node.request(b)).collect()
}

/// The calls a crash can stop: from creating the snapshot's temporary file
/// to the compaction's reply, every call on a file of the log directory
/// and every reply written.
fn crash_points(calls: &[Call]) -> Vec<Call> {
    let start = calls
        .iter()
        .position(|c| c.name == "openat" && c.text.contains(".snapshot.tmp"))
        .expect("the snapshot's temporary file is created");
    let end = calls
        .iter()
        .position(|c| c.name == "write" && c.text.contains("wal_compact_ok"))
        .expect("the compaction is answered");
    calls[start..=end]
        .iter()
        .filter(|c| c.text.contains("<dir>") || c.text.starts_with("write(1<pipe>"))
        .cloned()
        .collect()
}

/// The steps issue 10 names are all among the crash points, in an order
/// that makes each reply true when it is sent: the snapshot is synced,
/// renamed and its name synced before `wal_snapshot_ok`; the metadata's
/// new first offset is durable before any file goes; the directory is
/// synced after the last removal, before `wal_compact_ok`.
fn assert_steps_in_order(points: &[Call], n: u64) {
    let tmp = format!("{}.tmp", snapshot_name(65));
    let dir_sync = ("sync", "<dir>/n1>");
    let meta = "wal-node.meta.tmp";
    let mut removals: Vec<String> = (0..n)
        .step_by(10)
        .filter(|s| s + 10 <= n)
        .flat_map(|s| [index_name(s), segment_name(s)])
        .collect();
    removals.push(snapshot_name(50));
    let steps: [(&str, &str); 11] = [
        ("openat", &tmp),
        ("write", &tmp),
        ("sync", &tmp),
        ("rename", &tmp),
        dir_sync,
        ("write", "wal_snapshot_ok"),
        ("openat", meta),
        ("write", meta),
        ("sync", meta),
        ("rename", meta),
        dir_sync,
    ];
    let mut at = 0;
    // "sync": fsync or fdatasync; "rename": rename, renameat, ...
    let is = |c: &Call, name: &str| match name {
        "sync" => c.name.ends_with("sync"),
        _ => c.name.starts_with(name),
    };
    let find = |(name, what): (&str, &str), from: usize| match points[from..]
        .iter()
        .position(|c| is(c, name) && c.text.contains(what))
    {
        Some(i) => from + i,
        None => panic!(
            "no {name} of {what} after crash point {from} ({}): {points:#?}",
            points[from.saturating_sub(1)].call()
        ),
    };
    for (i, step) in steps.into_iter().enumerate() {
        at = find(step, at) + 1;
        if i == 4 {
            // Snapshot 40 goes only once snapshot 65 is durable (50 stays,
            // the one to fall back on).
            find(("unlink", &snapshot_name(40)), at);
        }
    }
    // The files go in any order, all after the metadata is durable.
    let last_removal = removals
        .iter()
        .map(|r| find(("unlink", r), at))
        .max()
        .expect("files to remove");
    at = find(dir_sync, last_removal + 1) + 1;
    find(("write", "wal_compact_ok"), at);
}

/// What must hold after a restart: every entry from the first offset on
/// reads back as acknowledged, the state is that of all 65 entries, the
/// next append gets offset 65, no temporary file or compacted segment is
/// left, and the log can be snapshotted and compacted again.
fn check_after_restart(dir: &Path, payloads: &[String], first: u64, snapshot_65: bool, what: &str) {
    let mut node = common::Running::spawn(&["--dir", dir.to_str().unwrap()]);
    let r = node.init("n1");
    assert_eq!(r["type"], "init_ok", "{what}: {r}");
    let info = node.info();
    assert_eq!(info["first_offset"], json!(first), "{what}: {info}");
    assert_eq!(info["entries"], json!(65 - first), "{what}: {info}");
    let frames: usize = payloads[first as usize..].iter().map(|p| 8 + p.len()).sum();
    assert_eq!(info["total_bytes"], json!(frames), "{what}: {info}");
    assert_eq!(info["corrupt_entries"], 0, "{what}: {info}");
    let reads: Vec<Value> = (first..65)
        .map(|o| json!({"type": "wal_read", "offset": o}))
        .collect();
    for (o, r) in (first..).zip(pipelined(&mut node, 1_000_000, &reads)) {
        assert_eq!(r["checksum_valid"], true, "{what}: offset {o}: {r}");
        assert_eq!(
            r["payload"].as_str(),
            Some(payloads[o as usize].as_str()),
            "{what}: offset {o}: {r}"
        );
    }
    if first > 0 {
        assert_eq!(node.read(first - 1)["code"], 20, "{what}");
    }
    let state = state_of(&node.request(json!({"type": "wal_state"})));
    assert_eq!(
        state,
        model_state(payloads.iter().map(String::as_str)),
        "{what}: the state"
    );
    let r = node.append("set after=crash");
    assert_eq!(r["offset"], 65, "{what}: no offset is reused: {r}");

    let files = dir_sizes(&dir.join("n1"));
    assert!(
        !files.keys().any(|f| f.ends_with(".tmp")),
        "{what}: a temporary file survived the open: {files:?}"
    );
    let starts: Vec<u64> = files
        .keys()
        .filter_map(|f| f.strip_suffix(".log")?.parse().ok())
        .collect();
    for pair in starts.windows(2) {
        assert!(
            pair[1] > first,
            "{what}: segment {} ends at {} but the log starts at {first}: {files:?}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(
        files.contains_key(&snapshot_name(65)),
        snapshot_65,
        "{what}: snapshot 65 exists iff its rename happened: {files:?}"
    );
    if !snapshot_65 {
        for older in [40, 50] {
            assert!(
                files.contains_key(&snapshot_name(older)),
                "{what}: snapshot {older} went before a newer one was durable: {files:?}"
            );
        }
    }
    let r = node.request(json!({"type": "wal_snapshot"}));
    assert_eq!(r["snapshot_offset"], 66, "{what}: {r}");
    let r = node.request(json!({"type": "wal_compact", "snapshot_at_offset": 66}));
    assert_eq!(r["type"], "wal_compact_ok", "{what}: {r}");
    assert!(node.finish().success(), "{what}");
}

/// Kills the node at every crash point of a snapshot at 65 and a
/// compaction before `n`, and checks each restart.
fn crash_at_every_step(n: u64) {
    crash_support::strace::require_strace();
    let work = tempdir();
    let template = work.path().join("template");
    let payloads: Vec<String> = make_template(&template)
        .into_iter()
        .chain((60..65).map(payload))
        .collect();

    // A run without a crash: the calls to crash at, in order.
    let clean = work.path().join("clean");
    copy_dir(&template, &clean);
    let trace = work.path().join("clean.trace");
    let mut node = Traced::spawn(&clean, &trace, &work.path().join("clean.stderr"), None);
    let replies = crash_run(&mut node, n);
    assert!(node.wait().success());
    assert_eq!(replies.len(), 8, "{replies:?}");
    assert_eq!(replies[6]["snapshot_offset"], 65, "{replies:?}");
    assert_eq!(replies[7]["type"], "wal_compact_ok", "{replies:?}");
    let calls = parse_trace(&std::fs::read_to_string(&trace).unwrap(), &clean);
    let points = crash_points(&calls);
    assert_steps_in_order(&points, n);
    let renamed = |what: &str| {
        points
            .iter()
            .position(|c| c.name.starts_with("rename") && c.text.contains(what))
            .unwrap()
    };
    let (snapshot_renamed, meta_renamed) = (
        renamed(&format!("{}.tmp", snapshot_name(65))),
        renamed("wal-node.meta.tmp"),
    );
    let snapshot_answered = points
        .iter()
        .position(|c| c.text.contains("wal_snapshot_ok"))
        .unwrap();

    for (i, point) in points.iter().enumerate() {
        let what = format!(
            "compaction before {n}, killed on entry to {} #{}: {}",
            point.name,
            point.nth,
            point.call()
        );
        let dir = work.path().join(format!("crash-{i}"));
        copy_dir(&template, &dir);
        let trace = work.path().join(format!("crash-{i}.trace"));
        let mut node = Traced::spawn(
            &dir,
            &trace,
            &work.path().join(format!("crash-{i}.stderr")),
            Some((&point.name, point.nth)),
        );
        let replies = crash_run(&mut node, n);
        let status = node.wait();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{what}: the node must die by SIGKILL, else this case tests nothing ({status})"
        );
        // It died where it was meant to: its last call is the chosen one.
        let text = std::fs::read_to_string(&trace).unwrap();
        assert!(text.contains("+++ killed by SIGKILL +++"), "{what}");
        let last = parse_trace(&text, &dir).pop().expect("calls");
        assert_eq!(
            (last.name.as_str(), last.nth, last.call()),
            (point.name.as_str(), point.nth, point.call()),
            "{what}: killed at another call"
        );
        // Every append was acknowledged, the snapshot if the kill came
        // after its reply, the compaction never (the last point is its
        // reply).
        let acked = 6 + usize::from(i > snapshot_answered);
        assert_eq!(replies.len(), acked, "{what}: {replies:?}");
        let first = if i > meta_renamed { n } else { 0 };
        check_after_restart(&dir, &payloads, first, i > snapshot_renamed, &what);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!(
        "compaction before {n}: {} crash points checked",
        points.len()
    );
}

/// Offset 55 lies in the sealed segment [50,60), which stays; [0,10) ...
/// [40,50) and snapshot 50 go.
#[test]
fn a_crash_at_any_step_of_a_snapshot_and_a_compaction_inside_a_sealed_segment() {
    crash_at_every_step(55);
}

/// Offset 65 is the end: every sealed segment goes, the active one stays.
#[test]
fn a_crash_at_any_step_of_a_snapshot_and_a_compaction_of_everything() {
    crash_at_every_step(65);
}

// ---- kill -9 while appends, snapshots and compactions are pipelined ----

const ROUNDS: u64 = 20;

/// Everything the client sent, and what the node acknowledged.
#[derive(Default)]
struct Client {
    /// The payload at every offset the log may hold: the appends of each
    /// round, in the order sent, from the offset the round started at.
    payloads: Vec<String>,
    /// The first offset after the last acknowledged compaction.
    first_acked: u64,
    /// The highest offset a compaction was sent for.
    first_sent: u64,
    /// The end of the acknowledged appends.
    acked_end: u64,
}

#[test]
fn kill_9_while_snapshots_and_compactions_interleave_with_appends() {
    let mut rng = Rng::from_env("crash_snapshot kill loop");
    let dir = tempdir();
    let dir_arg = dir.path().to_str().unwrap().to_string();
    let err = dir.path().join("node.stderr");
    let mut client = Client::default();
    let (mut with_backlog, mut unanswered_compactions, mut unanswered_snapshots) = (0, 0, 0);

    for round in 0..=ROUNDS {
        let mut node = spawn_logged("", &["--dir", &dir_arg], &err);
        let init = node.init("n1");
        assert_eq!(
            init["type"],
            "init_ok",
            "round {round}: {init}\nnode stderr:\n{}",
            read_text(&err)
        );
        if round == 0 {
            let r = node
                .request(json!({"type": "wal_segment_config", "max_segment_bytes": SEGMENT_BYTES}));
            assert_eq!(r["type"], "wal_segment_config_ok", "{r}");
        }
        let info = node.info();
        let first = info["first_offset"].as_u64().unwrap();
        let end = first + info["entries"].as_u64().unwrap();
        let what = format!("round {round}");
        assert!(
            (client.first_acked..=client.first_sent).contains(&first),
            "{what}: first offset {first}, but compactions before {} were acknowledged and none \
             past {} sent",
            client.first_acked,
            client.first_sent
        );
        assert!(
            end >= client.acked_end,
            "{what}: appends up to offset {} were acknowledged but the log ends at {end}",
            client.acked_end as i128 - 1
        );
        assert!(
            end <= client.payloads.len() as u64,
            "{what}: the log ends at {end} but only {} appends were ever sent",
            client.payloads.len()
        );
        // What did not survive the kill was never acknowledged (checked
        // below, when the replies came): forget it.
        client.payloads.truncate(end as usize);
        let reads: Vec<Value> = (first..end)
            .map(|o| json!({"type": "wal_read", "offset": o}))
            .collect();
        for (o, r) in (first..).zip(pipelined(&mut node, 50_000_000, &reads)) {
            assert_eq!(r["checksum_valid"], true, "{what}: offset {o}: {r}");
            assert_eq!(
                r["payload"].as_str(),
                Some(client.payloads[o as usize].as_str()),
                "{what}: offset {o}"
            );
        }
        let state = state_of(&node.request(json!({"type": "wal_state"})));
        assert_eq!(
            state,
            model_state(client.payloads.iter().map(String::as_str)),
            "{what}: the state"
        );
        if round == ROUNDS {
            assert!(node.finish().success());
            break;
        }

        // Pipeline appends with a snapshot now and then and a compaction
        // after it, in chunks, for a random 0-50 ms; then kill -9.
        let mut sent: Vec<Value> = Vec::new();
        let mut next = end;
        let mut snapshot = None;
        let run_for = Duration::from_millis(rng.range(0, 51));
        let started = std::time::Instant::now();
        while sent.is_empty() || started.elapsed() < run_for {
            let mut chunk = String::new();
            for _ in 0..16 {
                let body = match rng.range(0, 20) {
                    0 => {
                        snapshot = Some(next);
                        json!({"type": "wal_snapshot"})
                    }
                    1 if snapshot.is_some() => {
                        let n = rng.range(first, snapshot.unwrap() + 1);
                        client.first_sent = client.first_sent.max(n);
                        json!({"type": "wal_compact", "snapshot_at_offset": n})
                    }
                    _ => {
                        let p = random_op(&mut rng, next);
                        client.payloads.push(p.clone());
                        next += 1;
                        json!({"type": "wal_append", "payload": p})
                    }
                };
                chunk.push_str(&req(1 + sent.len() as u64, body.clone()));
                chunk.push('\n');
                sent.push(body);
            }
            chunk.pop();
            node.send_line(&chunk);
        }
        node.child.kill().expect("kill -9 the node");
        node.child.wait().unwrap();
        let (replies, _cut) = node.replies_after_death();
        // Replies come in request order: the i-th answers the i-th sent.
        let mut offset = end;
        for (i, (body, r)) in sent
            .iter()
            .zip(replies.iter().map(|r| &r["body"]))
            .enumerate()
        {
            assert_eq!(r["in_reply_to"], json!(i + 1), "{what}: {r}");
            match body["type"].as_str().unwrap() {
                "wal_append" => {
                    assert_eq!(r["type"], "wal_append_ok", "{what}: {r}");
                    assert_eq!(r["offset"], json!(offset), "{what}: {r}");
                    offset += 1;
                }
                "wal_snapshot" => {
                    assert_eq!(r["snapshot_offset"], json!(offset), "{what}: {r}");
                }
                _ => {
                    assert_eq!(r["type"], "wal_compact_ok", "{what}: {r}");
                    let n = body["snapshot_at_offset"].as_u64().unwrap();
                    client.first_acked = client.first_acked.max(n);
                }
            }
        }
        client.acked_end = offset;
        let unanswered = &sent[replies.len()..];
        with_backlog += u64::from(!unanswered.is_empty());
        let count = |t: &str| unanswered.iter().filter(|b| b["type"] == t).count();
        unanswered_snapshots += count("wal_snapshot");
        unanswered_compactions += count("wal_compact");
    }
    eprintln!(
        "crash_snapshot kill loop: {} entries over {ROUNDS} kills, {with_backlog} with requests \
         unanswered ({unanswered_snapshots} snapshots, {unanswered_compactions} compactions); \
         first offset {}",
        client.payloads.len(),
        client.first_acked
    );
    assert!(
        with_backlog > 0,
        "no kill landed while requests were in flight: no crash was exercised"
    );
}

/// An entry for the state: a set or a delete of a few keys, sometimes
/// neither.
fn random_op(rng: &mut Rng, i: u64) -> String {
    let key = rng.range(0, 6);
    match rng.range(0, 8) {
        0 => format!("del k{key}"),
        1 => format!("note {i}"),
        _ => text_payload(&format!("set k{key}={i}:"), rng.range(8, 150) as usize),
    }
}
