//! The one client used for the node and the pipe floor alike: request lines
//! down a pipe, reply lines back.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use tempfile::NamedTempFile;

/// How every append reply starts (the node's key order is fixed).
pub const APPEND_OK_PREFIX: &[u8] = br#"{"src":"n1","dest":"c1","body":{"type":"wal_append_ok""#;

/// The pipe floor's fixed answer: the size of a real node's reply.
pub const FLOOR_REPLY: &[u8] =
    b"{\"src\":\"n1\",\"dest\":\"c1\",\"body\":{\"type\":\"wal_append_ok\",\
\"in_reply_to\":1,\"offset\":0,\"length\":100,\"checksum\":\"00000000\",\"msg_id\":1}}\n";

pub fn init_line() -> String {
    "{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"type\":\"init\",\"msg_id\":0,\"node_id\":\"n1\",\
     \"node_ids\":[\"n1\"]}}\n"
        .to_owned()
}

/// A request whose body is only its type and `msg_id` (`wal_info`,
/// `wal_segment_info`). Before `init` the node answers any of them at once
/// with error 11, which shows the process is up and reading.
pub fn bare_request(kind: &str, msg_id: u64) -> String {
    format!(
        "{{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{{\"type\":\"{kind}\",\"msg_id\":{msg_id}}}}}\n"
    )
}

pub fn wal_read_line(msg_id: u64, offset: u64) -> String {
    format!(
        "{{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{{\"type\":\"wal_read\",\"msg_id\":{msg_id},\
         \"offset\":{offset}}}}}\n"
    )
}

/// The body of a reply line, as JSON.
pub fn reply_body(line: &[u8]) -> serde_json::Value {
    let mut message: serde_json::Value = serde_json::from_slice(line)
        .unwrap_or_else(|e| panic!("a reply that is not JSON ({e}): {line:?}"));
    message["body"].take()
}

/// Appends one `wal_append` request line (newline included) to `out`.
pub fn append_line(out: &mut Vec<u8>, msg_id: u64, payload: &str) {
    writeln!(
        out,
        "{{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{{\"type\":\"wal_append\",\"msg_id\":{msg_id},\
         \"payload\":\"{payload}\"}}}}"
    )
    .expect("writing to a Vec");
}

/// A running node (or floor) with piped stdin and stdout; its stderr goes
/// to a temporary file, shown if anything goes wrong.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    line: Vec<u8>,
    stderr: NamedTempFile,
    what: String,
}

impl Peer {
    pub fn spawn(cmd: &mut Command, dir: &Path, what: &str) -> Peer {
        let stderr = tempfile::Builder::new()
            .prefix(what)
            .suffix(".stderr")
            .tempfile_in(dir)
            .expect("creating a stderr file");
        let mut child = cmd
            .env_remove("WAL_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopening the stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what} ({cmd:?}): {e}"));
        let stdout = BufReader::with_capacity(256 << 10, child.stdout.take().expect("piped"));
        Peer {
            stdin: child.stdin.take(),
            child,
            stdout,
            line: Vec::new(),
            stderr,
            what: what.to_owned(),
        }
    }

    fn fail(&self, why: &str) -> ! {
        let stderr = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        panic!("{}: {why}; its stderr:\n{stderr}", self.what)
    }

    /// Writes `request` (one line, newline included) and returns the reply.
    pub fn call(&mut self, request: &[u8]) -> &[u8] {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = stdin.write_all(request) {
            self.fail(&format!("writing a request: {e}"));
        }
        self.read_reply()
    }

    /// Writes requests without waiting for their replies; the caller reads
    /// them before they can fill the pipe back.
    pub fn send(&mut self, requests: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = stdin.write_all(requests) {
            self.fail(&format!("writing requests: {e}"));
        }
    }

    /// `call` for a `wal_append`, checking the reply is a success.
    pub fn call_append(&mut self, request: &[u8]) {
        self.call(request);
        self.check_append_ok();
    }

    /// Reads one reply, which must be a `wal_append_ok`.
    pub fn read_append_reply(&mut self) {
        self.read_reply();
        self.check_append_ok();
    }

    pub fn read_reply(&mut self) -> &[u8] {
        self.line.clear();
        match self.stdout.read_until(b'\n', &mut self.line) {
            Ok(0) => self.fail("stdout ended before a reply"),
            Ok(_) => &self.line,
            Err(e) => self.fail(&format!("reading a reply: {e}")),
        }
    }

    fn check_append_ok(&self) {
        if !self.line.starts_with(APPEND_OK_PREFIX) {
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.fail(&format!("expected wal_append_ok, got {line:?}"));
        }
    }

    /// Hands stdin to a writer thread; the caller closes it by dropping it.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin still here")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size (VmHWM) of the process, in bytes.
    pub fn vm_hwm(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reading /proc/<pid>/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmHWM line in kB");
        kib * 1024
    }

    /// Closes stdin and waits for a clean exit.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        match self.child.wait() {
            Ok(status) if status.success() => {}
            Ok(status) => self.fail(&format!("exited with {status}")),
            Err(e) => self.fail(&format!("waiting for it: {e}")),
        }
    }
}
