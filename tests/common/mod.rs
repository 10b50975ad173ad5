//! Shared helpers for the integration tests: run the real binary.
#![allow(dead_code)]

pub mod cli;
pub mod logs;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Path of the `wal-node` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_wal-node")
}

/// One request line from client `src` to node `n1`.
pub fn line(src: &str, body: Value) -> String {
    json!({"src": src, "dest": "n1", "body": body}).to_string()
}

pub fn init_line(node_id: &str) -> String {
    line(
        "c0",
        json!({"type": "init", "msg_id": 1, "node_id": node_id, "node_ids": [node_id]}),
    )
}

/// Output of a node that read all of `input` and exited.
pub struct Finished {
    pub replies: Vec<Value>,
    /// The replies as the node wrote them (for checks of key order).
    pub stdout: String,
    pub stderr: String,
    pub status: std::process::ExitStatus,
}

/// Runs the node with `args`, feeds it `input` (closing stdin), waits for exit.
pub fn run(args: &[&str], input: &[u8]) -> Finished {
    run_command(Command::new(bin()).args(args).env_remove("WAL_DIR"), input)
}

/// Runs a prepared node command (extra environment, another working
/// directory), feeding it `input` from a thread so a full stdout pipe
/// cannot deadlock the test, and waits for exit.
pub fn run_command(cmd: &mut Command, input: &[u8]) -> Finished {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wal-node");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for wal-node");
    writer.join().unwrap();
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let replies = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}"))
        })
        .collect();
    Finished {
        replies,
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status,
    }
}

/// What the reader of a node's stdout hands the test, line by line.
enum Stdout {
    Reply(Value),
    /// A whole line that is not JSON: a defect, reported by the test.
    NotJson(String),
    /// Bytes after the last newline when stdout ended: a reply the node was
    /// still writing when it died. Never a reply, since a client cannot know
    /// it is whole.
    Cut(String),
}

/// How long a test waits for a node before calling it hung. Only a guard
/// against hanging forever: a correct node answers in milliseconds, but a
/// loaded 2-core machine can stall a debug build for seconds.
const HANG: Duration = Duration::from_secs(120);

/// A running node that a test talks to line by line. Its stderr is kept
/// (`stderr_after_exit`) and echoed through the test harness, labelled, so
/// it shows only when a test fails.
pub struct Running {
    pub child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Stdout>,
    stderr: Option<JoinHandle<String>>,
    next_msg_id: u64,
}

impl Running {
    pub fn spawn(args: &[&str]) -> Running {
        Running::spawn_with(Command::new(bin()).args(args))
    }

    /// Spawns a prepared command (for wrappers such as `strace` or `bash -c`).
    pub fn spawn_with(cmd: &mut Command) -> Running {
        let mut child = cmd
            .env_remove("WAL_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wal-node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                if !matches!(stdout.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                    break;
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                // A bad line is handed over, not panicked on here: a panic in
                // this thread would only show as a timeout in the test.
                let item = match line.strip_suffix('\n') {
                    None => Stdout::Cut(line),
                    Some(l) => serde_json::from_str(l).map_or_else(
                        |e| Stdout::NotJson(format!("stdout line is not JSON ({e}): {l:?}")),
                        Stdout::Reply,
                    ),
                };
                if tx.send(item).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        // Threads spawned by a test share its output capture, so what is
        // echoed here is shown only with a failing test's output.
        let stderr = std::thread::spawn(move || {
            let (mut stderr, mut buf) = (BufReader::new(stderr), Vec::new());
            let mut kept = String::new();
            // Read to the end whatever the bytes, so the node never blocks
            // on a full stderr pipe.
            while matches!(stderr.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let l = String::from_utf8_lossy(&buf);
                eprint!("[node stderr] {l}");
                kept.push_str(&l);
                buf.clear();
            }
            kept
        });
        Running {
            stdin: child.stdin.take(),
            child,
            replies: rx,
            stderr: Some(stderr),
            next_msg_id: 100,
        }
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Next reply; panics if the node seems hung, or if its stdout holds
    /// anything but whole JSON lines.
    pub fn recv(&self) -> Value {
        match self.replies.recv_timeout(HANG) {
            Ok(item) => reply(item),
            Err(RecvTimeoutError::Timeout) => panic!("no reply within {HANG:?}: the node hangs"),
            Err(RecvTimeoutError::Disconnected) => panic!("the node's stdout ended"),
        }
    }

    /// Next reply if one comes within `wait`.
    pub fn try_recv(&self, wait: Duration) -> Option<Value> {
        self.replies.recv_timeout(wait).ok().map(reply)
    }

    /// After the node died (killed, or exited): every whole reply it wrote
    /// that the test has not read yet, waiting for its stdout to end. A
    /// last line cut short by the death is dropped, as a client must (it
    /// cannot know the line is whole); it is returned apart.
    pub fn replies_after_death(&self) -> (Vec<Value>, Option<String>) {
        let mut replies = Vec::new();
        loop {
            match self.replies.recv_timeout(HANG) {
                Ok(Stdout::Cut(fragment)) => return (replies, Some(fragment)),
                Ok(item) => replies.push(reply(item)),
                Err(RecvTimeoutError::Disconnected) => return (replies, None),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the node's stdout did not end within {HANG:?} of its death")
                }
            }
        }
    }

    /// Sends `body` (a `msg_id` is added) from client c1 and returns the reply body.
    pub fn request(&mut self, mut body: Value) -> Value {
        self.next_msg_id += 1;
        body["msg_id"] = json!(self.next_msg_id);
        self.send_line(&line("c1", body));
        let reply = self.recv();
        assert_eq!(
            reply["body"]["in_reply_to"],
            json!(self.next_msg_id),
            "reply out of order: {reply}"
        );
        reply["body"].clone()
    }

    pub fn init(&mut self, node_id: &str) -> Value {
        self.request(json!({"type": "init", "node_id": node_id, "node_ids": [node_id]}))
    }

    pub fn append(&mut self, payload: &str) -> Value {
        self.request(json!({"type": "wal_append", "payload": payload}))
    }

    pub fn read(&mut self, offset: u64) -> Value {
        self.request(json!({"type": "wal_read", "offset": offset}))
    }

    pub fn info(&mut self) -> Value {
        self.request(json!({"type": "wal_info"}))
    }

    /// Closes stdin and waits for the node to exit.
    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }

    /// `finish`, and everything the node wrote to stderr.
    pub fn finish_with_stderr(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        (status, self.stderr_after_exit())
    }

    /// Everything the node wrote to stderr; waits for the stream to end, so
    /// call it once the node has exited (or been killed).
    pub fn stderr_after_exit(&mut self) -> String {
        let reader = self.stderr.take().expect("stderr is read once");
        reader.join().expect("the stderr reader")
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One stdout item as a reply, or a panic saying what it was instead.
fn reply(item: Stdout) -> Value {
    match item {
        Stdout::Reply(v) => v,
        Stdout::NotJson(why) => panic!("{why}"),
        Stdout::Cut(fragment) => {
            panic!("the node's stdout ended in the middle of a line: {fragment:?}")
        }
    }
}

/// The first segment of node `node_id`'s log in `dir` (the whole log while
/// it is shorter than a segment). Its directory exists once a node has
/// opened the log; a test that builds a log before that writes it with
/// `write_log`.
pub fn log_path(dir: &Path, node_id: &str) -> std::path::PathBuf {
    dir.join(node_id).join("00000000000000000000.log")
}

/// Makes `bytes` the whole log of node `node_id` in `dir`: its directory
/// with a metadata file (the default settings) and `bytes` as the first
/// segment, at `log_path`.
pub fn write_log(dir: &Path, node_id: &str, bytes: &[u8]) {
    use wal_node::log::meta::Meta;
    let log_dir = dir.join(node_id);
    std::fs::create_dir_all(&log_dir).expect("create the log directory");
    let meta = Meta {
        max_segment_bytes: wal_node::log::DEFAULT_MAX_SEGMENT_BYTES,
        first_offset: 0,
    };
    std::fs::write(log_dir.join(wal_node::log::names::META), meta.encode()).expect("write meta");
    std::fs::write(log_path(dir, node_id), bytes).expect("write the log");
}
