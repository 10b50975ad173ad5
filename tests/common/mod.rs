//! Shared helpers for the integration tests: run the real binary.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
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
    pub stderr: String,
    pub status: std::process::ExitStatus,
}

/// Runs the node with `args`, feeds it `input` (closing stdin), waits for exit.
pub fn run(args: &[&str], input: &[u8]) -> Finished {
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("WAL_DIR")
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
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status,
    }
}

/// A running node that a test talks to line by line.
pub struct Running {
    pub child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Result<Value, String>>,
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
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn wal-node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                // A bad line is handed over, not panicked on here: a panic in
                // this thread would only show as a timeout in the test.
                let v = serde_json::from_str(&l)
                    .map_err(|e| format!("stdout line is not JSON ({e}): {l:?}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Running {
            stdin: child.stdin.take(),
            child,
            replies: rx,
            next_msg_id: 100,
        }
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Next reply, or panic after 10 s.
    pub fn recv(&self) -> Value {
        self.replies
            .recv_timeout(Duration::from_secs(10))
            .expect("a reply within 10 s")
            .unwrap_or_else(|bad| panic!("{bad}"))
    }

    pub fn try_recv(&self, wait: Duration) -> Option<Value> {
        let reply = self.replies.recv_timeout(wait).ok()?;
        Some(reply.unwrap_or_else(|bad| panic!("{bad}")))
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

    /// Closes stdin and waits for a clean exit.
    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
