//! Persistence: with `--dir` (or `WAL_DIR`) every acknowledged entry
//! survives kill -9 and reads back intact, offsets continue; one process per
//! log; a bad node id touches no file; without `--dir` nothing is left.

mod common;

use common::{Running, init_line, line, log_path};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What an append's reply promised.
#[derive(Debug, Clone, PartialEq)]
struct Ack {
    offset: u64,
    payload: String,
    length: u64,
    checksum: String,
}

fn ack_of(payload: &str, reply: &Value) -> Ack {
    assert_eq!(
        reply["type"], "wal_append_ok",
        "append of {payload:?} was refused: {reply}"
    );
    Ack {
        offset: reply["offset"].as_u64().expect("offset"),
        payload: payload.to_owned(),
        length: reply["length"].as_u64().expect("length"),
        checksum: reply["checksum"].as_str().expect("checksum").to_owned(),
    }
}

fn payloads(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 5 {
            0 => format!("set x={i}"),
            1 => format!("ünïcödé 日本語 🦀 #{i}"),
            2 => format!("quote \" backslash \\ newline \n tab \t ctrl \u{1} #{i}"),
            3 => format!("{i}:{}", "y".repeat(64 << 10)),
            _ => format!("{i}"),
        })
        .collect()
}

fn spawn_dir(dir: &Path) -> Running {
    Running::spawn(&["--dir", dir.to_str().unwrap()])
}

/// Every acknowledged entry reads back with the same bytes and checksum.
fn assert_reads_back(node: &mut Running, acks: &[Ack], when: &str) {
    for ack in acks {
        let read = node.read(ack.offset);
        assert_eq!(
            read["type"], "wal_read_ok",
            "{when}: entry {} is gone: {read}",
            ack.offset
        );
        assert_eq!(
            (
                &read["payload"],
                &read["checksum_valid"],
                &read["checksum"],
                &read["length"]
            ),
            (
                &json!(ack.payload),
                &json!(true),
                &json!(ack.checksum),
                &json!(ack.length)
            ),
            "{when}: entry {} does not read back as acknowledged",
            ack.offset
        );
    }
}

fn total_bytes(acks: &[Ack]) -> u64 {
    acks.iter().map(|a| 8 + a.length).sum()
}

#[test]
fn acknowledged_entries_survive_kill_9_and_offsets_continue() {
    let tmp = tempfile::tempdir().unwrap();
    // The directory does not exist yet: the node creates it.
    let dir = tmp.path().join("nested").join("logs");
    let all = payloads(30);

    let mut node = spawn_dir(&dir);
    assert_eq!(node.init("n1")["type"], "init_ok");
    let mut acks: Vec<Ack> = all[..20]
        .iter()
        .map(|p| ack_of(p, &node.append(p)))
        .collect();
    let offsets: Vec<u64> = acks.iter().map(|a| a.offset).collect();
    assert_eq!(
        offsets,
        (0..20).collect::<Vec<u64>>(),
        "offsets of a fresh log"
    );
    node.kill9();
    assert!(
        log_path(&dir, "n1").is_file(),
        "no log file {}",
        log_path(&dir, "n1").display()
    );

    for (round, more) in [(1, &all[20..25]), (2, &all[25..30])] {
        let when = format!("after kill -9 number {round}");
        let mut node = spawn_dir(&dir);
        assert_eq!(node.init("n1")["type"], "init_ok", "{when}: init");
        let info = node.info();
        assert_eq!(
            (&info["entries"], &info["total_bytes"], &info["fsynced"]),
            (&json!(acks.len()), &json!(total_bytes(&acks)), &json!(true)),
            "{when}: wal_info {info}"
        );
        assert_reads_back(&mut node, &acks, &when);
        let n = acks.len() as u64;
        for (i, p) in more.iter().enumerate() {
            let ack = ack_of(p, &node.append(p));
            assert_eq!(
                ack.offset,
                n + i as u64,
                "{when}: new appends continue after the old ones"
            );
            acks.push(ack);
        }
        node.kill9();
    }

    let mut node = spawn_dir(&dir);
    assert_eq!(node.init("n1")["type"], "init_ok");
    assert_eq!(
        node.info()["entries"],
        json!(all.len()),
        "entries after the last restart"
    );
    assert_reads_back(&mut node, &acks, "after the last restart");
    let past = node.read(all.len() as u64);
    assert_eq!(
        past["code"], 20,
        "nothing past the acknowledged entries: {past}"
    );
    assert_eq!(node.finish().code(), Some(0));
}

#[test]
fn entries_acknowledged_while_pipelining_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut node = spawn_dir(dir);
    assert_eq!(node.init("n1")["type"], "init_ok");
    // Many appends in flight at once, so they are committed in batches;
    // kill -9 while later ones are still being written.
    let sent: Vec<String> = (0..2000)
        .map(|i| format!("pipelined entry {i:04} {}", "p".repeat(i % 300)))
        .collect();
    for (i, p) in sent.iter().enumerate() {
        node.send_line(&line(
            "c1",
            json!({"type": "wal_append", "msg_id": 1000 + i, "payload": p}),
        ));
    }
    let mut acks = Vec::new();
    for _ in 0..300 {
        let reply = node.recv();
        let i = reply["body"]["in_reply_to"].as_u64().unwrap() - 1000;
        acks.push(ack_of(&sent[i as usize], &reply["body"]));
    }
    node.kill9();
    let offsets: Vec<u64> = acks.iter().map(|a| a.offset).collect();
    assert_eq!(
        offsets,
        (0..300).collect::<Vec<u64>>(),
        "replies come in request order"
    );

    let mut node = spawn_dir(dir);
    assert_eq!(node.init("n1")["type"], "init_ok");
    let entries = node.info()["entries"].as_u64().unwrap();
    assert!(
        entries >= acks.len() as u64,
        "{entries} entries after restart, {} were acknowledged",
        acks.len()
    );
    assert!(
        entries <= sent.len() as u64,
        "{entries} entries, more than the {} sent",
        sent.len()
    );
    assert_reads_back(&mut node, &acks, "after kill -9 mid-stream");
    // Entries written but not yet acknowledged may survive; if they do,
    // they are whole and in order.
    for offset in acks.len() as u64..entries {
        let read = node.read(offset);
        assert_eq!(
            (&read["payload"], &read["checksum_valid"]),
            (&json!(sent[offset as usize]), &json!(true)),
            "unacknowledged entry {offset} that survived must be whole"
        );
    }
    let next = node.append("after the crash");
    assert_eq!(
        next["offset"],
        json!(entries),
        "appends continue at the end: {next}"
    );
    node.kill9();
}

/// Parses a log file as the spec's frames: `[u32 LE length][u32 LE CRC-32]
/// [payload]`, back to back from byte 0, zero bytes after the last frame.
fn parse_frames(bytes: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        if len == 0 {
            break;
        }
        let end = at + 8 + len as usize;
        assert!(
            end <= bytes.len(),
            "frame at byte {at} runs past the end of the file"
        );
        frames.push((len, crc, bytes[at + 8..end].to_vec()));
        at = end;
    }
    assert!(
        bytes[at..].iter().all(|&b| b == 0),
        "non-zero bytes after the last frame, at byte {at}"
    );
    frames
}

#[test]
fn the_log_file_holds_the_acknowledged_frames_in_the_spec_format() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = spawn_dir(tmp.path());
    assert_eq!(node.init("n1")["type"], "init_ok");
    let acks: Vec<Ack> = payloads(10)
        .iter()
        .map(|p| ack_of(p, &node.append(p)))
        .collect();
    node.kill9();
    let bytes = std::fs::read(log_path(tmp.path(), "n1")).unwrap();
    let frames = parse_frames(&bytes);
    assert_eq!(frames.len(), acks.len(), "frames in the file");
    for (ack, (len, crc, payload)) in acks.iter().zip(&frames) {
        assert_eq!(
            payload,
            ack.payload.as_bytes(),
            "payload bytes of entry {}",
            ack.offset
        );
        assert_eq!(
            u64::from(*len),
            ack.length,
            "length word of entry {}",
            ack.offset
        );
        assert_eq!(
            format!("{crc:08x}"),
            ack.checksum,
            "CRC word of entry {}",
            ack.offset
        );
        assert_eq!(
            *crc,
            crc32fast::hash(payload),
            "CRC-32 of entry {}",
            ack.offset
        );
    }
}

/// Runs the node with extra environment variables (the common helpers
/// remove `WAL_DIR`); returns the replies, stderr and exit code.
fn run_with_env(
    envs: &[(&str, &Path)],
    args: &[&str],
    input: &str,
) -> (Vec<Value>, String, Option<i32>) {
    let mut cmd = Command::new(common::bin());
    cmd.args(args).env_remove("WAL_DIR");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = common::run_command(&mut cmd, input.as_bytes());
    (out.replies, out.stderr, out.status.code())
}

fn body_types(replies: &[Value]) -> Vec<String> {
    replies
        .iter()
        .map(|r| r["body"]["type"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn wal_dir_environment_variable_works_like_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("from-env");
    let input = [
        init_line("n1"),
        line(
            "c1",
            json!({"type": "wal_append", "msg_id": 2, "payload": "via WAL_DIR"}),
        ),
        line(
            "c1",
            json!({"type": "wal_append", "msg_id": 3, "payload": "second"}),
        ),
    ]
    .join("\n");
    let (replies, stderr, code) = run_with_env(&[("WAL_DIR", &dir)], &[], &input);
    assert_eq!(code, Some(0), "exit status; stderr:\n{stderr}");
    assert_eq!(
        body_types(&replies),
        ["init_ok", "wal_append_ok", "wal_append_ok"]
    );
    assert!(
        log_path(&dir, "n1").is_file(),
        "WAL_DIR={} did not put the log at {}",
        dir.display(),
        log_path(&dir, "n1").display()
    );

    // The same log, found again through WAL_DIR and through --dir.
    let more = [
        init_line("n1"),
        line("c1", json!({"type": "wal_read", "msg_id": 2, "offset": 0})),
        line(
            "c1",
            json!({"type": "wal_append", "msg_id": 3, "payload": "third"}),
        ),
    ]
    .join("\n");
    let (replies, stderr, _) = run_with_env(&[("WAL_DIR", &dir)], &[], &more);
    assert_eq!(
        replies[1]["body"]["payload"], "via WAL_DIR",
        "replay through WAL_DIR; stderr:\n{stderr}"
    );
    assert_eq!(
        replies[2]["body"]["offset"], 2,
        "offsets continue through WAL_DIR"
    );
    let out = common::run(&["--dir", dir.to_str().unwrap()], more.as_bytes());
    assert_eq!(
        out.replies[1]["body"]["payload"], "via WAL_DIR",
        "--dir reads what WAL_DIR wrote"
    );
    assert_eq!(
        out.replies[2]["body"]["offset"], 3,
        "offsets continue through --dir"
    );
}

#[test]
fn one_process_per_log_a_second_gets_error_11_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut first = spawn_dir(dir);
    assert_eq!(first.init("n1")["type"], "init_ok");
    let ack = ack_of(
        "held by the first process",
        &first.append("held by the first process"),
    );

    let mut second = spawn_dir(dir);
    let refused = second.init("n1");
    assert_eq!(
        refused["type"], "error",
        "a second process opened a locked log: {refused}"
    );
    assert_eq!(
        refused["code"], 11,
        "a locked log is temporarily unavailable: {refused}"
    );
    let text = refused["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("locked"),
        "the error text must say the log is locked: {text:?}"
    );
    let not_serving = second.info();
    assert_eq!(
        not_serving["code"], 11,
        "after a refused init the node is not initialized: {not_serving}"
    );

    // Another node id in the same directory is another log: it works.
    assert_eq!(
        second.init("n2")["type"],
        "init_ok",
        "a different node id in the same dir"
    );
    let other = second.append("n2's own entry");
    assert_eq!(other["offset"], 0, "n2 has its own log: {other}");
    assert!(log_path(dir, "n2").is_file(), "n2's log file");

    // The first process was not disturbed.
    assert_reads_back(
        &mut first,
        std::slice::from_ref(&ack),
        "the first process, after the refusal",
    );
    assert_eq!(first.append("still first")["offset"], 1);
    assert_eq!(first.finish().code(), Some(0));
    assert_eq!(second.finish().code(), Some(0));

    // Once the first process is gone, the log opens again, intact.
    let mut third = spawn_dir(dir);
    assert_eq!(
        third.init("n1")["type"],
        "init_ok",
        "the lock goes with the process"
    );
    assert_reads_back(&mut third, &[ack], "after the lock holder exited");
    assert_eq!(third.info()["entries"], 2);
    third.kill9();
}

#[test]
fn the_lock_is_released_by_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let mut first = spawn_dir(tmp.path());
    assert_eq!(first.init("n1")["type"], "init_ok");
    first.append("x");
    first.kill9();
    let mut second = spawn_dir(tmp.path());
    let reply = second.init("n1");
    assert_eq!(
        reply["type"], "init_ok",
        "a killed process's lock must not outlive it: {reply}"
    );
    second.kill9();
}

/// Every file and directory under `root`, relative to it.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(root).unwrap().to_path_buf());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_bad_node_id_touches_no_file() {
    let bad = [
        "../etc",
        ".",
        "..",
        "a/b",
        "../../escaped",
        "/tmp/abs",
        &"x".repeat(65),
        "",
    ];
    for existing in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        // "../x" from root/a/b would land in root/a: watch all of root.
        let dir = tmp.path().join("a").join("b");
        if existing {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let before = tree(tmp.path());
        let mut node = spawn_dir(&dir);
        for id in bad {
            let reply = node.init(id);
            assert_eq!(
                (&reply["type"], &reply["code"]),
                (&json!("error"), &json!(12)),
                "init with node id {id:?}: {reply}"
            );
        }
        assert_eq!(
            node.info()["code"],
            11,
            "no bad init may initialize the node"
        );
        assert_eq!(
            tree(tmp.path()),
            before,
            "bad node ids touched files (dir existed: {existing})"
        );

        // The control: a good id does create the log, where expected.
        assert_eq!(node.init("n1")["type"], "init_ok");
        assert_eq!(node.finish().code(), Some(0));
        let mut after = before.clone();
        if !existing {
            after.extend([PathBuf::from("a"), PathBuf::from("a/b")]);
        }
        after.extend(
            [
                "a/b/n1",
                "a/b/n1/00000000000000000000.log",
                "a/b/n1/wal-node.meta",
            ]
            .map(PathBuf::from),
        );
        after.sort();
        assert_eq!(
            tree(tmp.path()),
            after,
            "files after a good init (dir existed: {existing})"
        );
    }
}

/// Open files of process `pid` that live in `dir` (as the kernel names
/// them: an unlinked file ends in " (deleted)").
fn open_files_in(pid: u32, dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| Path::new(target).starts_with(&dir))
        .collect()
}

#[test]
fn without_dir_nothing_is_left_behind_even_after_kill_9() {
    for kill in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let tmpdir = tmp.path().join("private-tmp");
        std::fs::create_dir(&tmpdir).unwrap();
        let mut node = Running::spawn_with(Command::new(common::bin()).env("TMPDIR", &tmpdir));
        assert_eq!(node.init("n1")["type"], "init_ok");
        for p in payloads(5) {
            ack_of(&p, &node.append(&p));
        }
        assert_eq!(node.read(3)["checksum_valid"], true);

        // The log lives in TMPDIR, already unlinked while the node runs.
        let open = open_files_in(node.child.id(), &tmpdir);
        assert!(
            !open.is_empty() && open.iter().all(|f| f.ends_with(" (deleted)")),
            "the node's files in TMPDIR must be its log, unlinked: {open:?}"
        );
        assert_eq!(
            tree(&tmpdir),
            Vec::<PathBuf>::new(),
            "TMPDIR while the node runs"
        );
        if kill {
            node.kill9();
        } else {
            assert_eq!(node.finish().code(), Some(0));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            tree(&tmpdir),
            Vec::<PathBuf>::new(),
            "TMPDIR after the node ended (kill -9: {kill})"
        );
        assert_eq!(
            tree(tmp.path()),
            vec![PathBuf::from("private-tmp")],
            "nothing next to TMPDIR either"
        );
    }
}

#[test]
fn without_dir_every_run_starts_empty() {
    let input = format!(
        "{}\n{}\n{}\n",
        init_line("n1"),
        line(
            "c1",
            json!({"type": "wal_append", "msg_id": 2, "payload": "p"})
        ),
        line("c1", json!({"type": "wal_info", "msg_id": 3}))
    );
    for run in 0..2 {
        let out = common::run(&[], input.as_bytes());
        assert_eq!(
            out.replies[1]["body"]["offset"], 0,
            "run {run}: {:?}",
            out.replies
        );
        assert_eq!(
            out.replies[2]["body"]["entries"], 1,
            "run {run}: {:?}",
            out.replies
        );
    }
}

/// Runs the node in `cwd` with `envs` set (and `WAL_DIR` removed unless
/// given) on `init` and one append; returns the reply bodies and stderr.
fn init_and_append_in(cwd: &Path, envs: &[(&str, &Path)], args: &[&str]) -> (Vec<Value>, String) {
    let mut cmd = Command::new(common::bin());
    cmd.current_dir(cwd).args(args).env_remove("WAL_DIR");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let input = [
        init_line("n1"),
        line(
            "c1",
            json!({"type": "wal_append", "msg_id": 2, "payload": "p"}),
        ),
    ]
    .join("\n");
    let out = common::run_command(&mut cmd, input.as_bytes());
    assert_eq!(
        out.status.code(),
        Some(0),
        "exit status; stderr:\n{}",
        out.stderr
    );
    let replies = out.replies.iter().map(|r| r["body"].clone()).collect();
    (replies, out.stderr)
}

#[test]
fn an_empty_wal_dir_is_as_if_unset() {
    let tmp = tempfile::tempdir().unwrap();
    let (replies, stderr) = init_and_append_in(tmp.path(), &[("WAL_DIR", Path::new(""))], &[]);
    assert_eq!(
        replies
            .iter()
            .map(|r| r["type"].clone())
            .collect::<Vec<_>>(),
        ["init_ok", "wal_append_ok"],
        "WAL_DIR= must give the private log; stderr:\n{stderr}"
    );
    assert!(stderr.contains("<private, unlinked>"), "{stderr}");
    assert_eq!(
        tree(tmp.path()),
        Vec::<PathBuf>::new(),
        "files were created"
    );
}

#[test]
fn a_dir_that_is_a_regular_file_is_named_as_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "some file").unwrap();
    for dir in [file.clone(), file.join("below")] {
        let (replies, stderr) =
            init_and_append_in(tmp.path(), &[], &["--dir", dir.to_str().unwrap()]);
        let text = replies[0]["text"].as_str().unwrap_or_default();
        assert_eq!(
            replies[0]["code"],
            13,
            "--dir {}: {:?}",
            dir.display(),
            replies[0]
        );
        assert!(
            text.contains(&format!("{} is not a directory", file.display())),
            "--dir {}: the error must say {} is not a directory: {text:?}\n{stderr}",
            dir.display(),
            file.display()
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"some file");
    assert_eq!(tree(tmp.path()), [PathBuf::from("not-a-dir")]);
}

#[test]
fn an_unusable_tmpdir_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for tmpdir in [tmp.path().join("missing"), file] {
        let (replies, stderr) = init_and_append_in(tmp.path(), &[("TMPDIR", &tmpdir)], &[]);
        let text = replies[0]["text"].as_str().unwrap_or_default();
        assert_eq!(
            replies[0]["code"],
            13,
            "TMPDIR={}: {:?}",
            tmpdir.display(),
            replies[0]
        );
        assert!(
            text.contains(&tmpdir.display().to_string()) && text.contains("TMPDIR"),
            "TMPDIR={}: the error must name the directory: {text:?}\n{stderr}",
            tmpdir.display()
        );
    }
}

/// A crash while the node was creating a log leaves only the metadata's
/// temp file. The next `init` creates the log (writing that very temp file
/// name again) and serves; it used to fail with error 13 removing the
/// crash's temp file, which its own rename had already consumed.
#[test]
fn a_log_whose_creation_was_cut_short_by_a_crash_opens() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("n1");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("wal-node.meta.tmp"), b"half").unwrap();
    let input = format!(
        "{}\n{}\n",
        common::init_line("n1"),
        common::line(
            "c1",
            json!({"type": "wal_append", "msg_id": 2, "payload": "first"})
        )
    );
    let done = common::run(&["--dir", root.path().to_str().unwrap()], input.as_bytes());
    assert!(done.status.success(), "{}", done.stderr);
    let types = body_types(&done.replies);
    assert_eq!(types, ["init_ok", "wal_append_ok"], "{}", done.stderr);
    assert!(!dir.join("wal-node.meta.tmp").exists());
}
