//! Running the node under `strace` and reading what it did: shared by the
//! syscall-order checks (`tests/crash_strace.rs`) and the kills injected at
//! each step of a roll (`tests/crash_seal.rs`).
//!
//! Needs `strace` (`.ci/run` installs it). Without it these tests fail, on
//! purpose: a crash-safety proof that silently does not run proves nothing.

use crate::common;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Fails the test, with what to do, if strace cannot trace here.
pub fn require_strace() {
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

/// The node (`--dir dir`, then `node_args`) under `strace -f -tt -y`,
/// tracing to `trace`, with `extra` strace options (such as fault
/// injection). The node's and strace's stderr go to `stderr_to`.
pub fn traced_command(
    dir: &Path,
    trace: &Path,
    stderr_to: &Path,
    extra: &[&str],
    node_args: &[&str],
) -> Command {
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
        .args(node_args)
        .env("WAL_TEST_STDERR", stderr_to);
    cmd
}

/// One system call, from its start line to its result line.
#[derive(Debug, Clone)]
pub struct Call {
    pub pid: u64,
    pub name: String,
    /// The arguments as printed (from the start line).
    pub args: String,
    /// The return value, if the call returned (`= ?`: it did not).
    pub ret: Option<i64>,
    /// Line numbers (1-based) where it started and where it returned.
    pub start: usize,
    pub end: usize,
}

impl Call {
    /// The fd argument's number and, thanks to `-y`, its path.
    pub fn fd(&self) -> Option<(i64, &str)> {
        let digits: String = self.args.chars().take_while(char::is_ascii_digit).collect();
        let fd = digits.parse().ok()?;
        let rest = &self.args[digits.len()..];
        let path = rest
            .strip_prefix('<')
            .and_then(|r| r.find('>').map(|i| &r[..i]))
            .unwrap_or("");
        Some((fd, path))
    }

    /// Whether the call's fd argument is the file at `path`.
    pub fn on(&self, path: &Path) -> bool {
        self.fd().is_some_and(|(_, p)| Path::new(p) == path)
    }

    pub fn ok(&self) -> bool {
        self.ret.is_some_and(|r| r >= 0)
    }

    /// The path strings among the arguments, in order (`openat`'s file,
    /// `rename`'s source and target).
    pub fn quoted(&self) -> Vec<&str> {
        self.args.split('"').skip(1).step_by(2).collect()
    }

    /// The file this call creates if it does not exist: an `open`/`openat`
    /// with `O_CREAT`, or `creat`.
    pub fn creates(&self) -> Option<&Path> {
        let creating = match self.name.as_str() {
            "creat" => true,
            "open" | "openat" => self.args.contains("O_CREAT"),
            _ => false,
        };
        if !creating {
            return None;
        }
        self.args.split('"').nth(1).map(Path::new)
    }

    /// `(source, target)` of a rename.
    pub fn renames(&self) -> Option<(&Path, &Path)> {
        if !matches!(self.name.as_str(), "rename" | "renameat" | "renameat2") {
            return None;
        }
        let mut quoted = self.args.split('"').skip(1).step_by(2);
        Some((Path::new(quoted.next()?), Path::new(quoted.next()?)))
    }
}

/// Parses an `strace -f -tt -y -o` file, joining `<unfinished ...>` lines
/// with their `<... resumed>` ends (per pid and syscall).
pub fn parse_trace(text: &str) -> Vec<Call> {
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

/// Calls that change a file's bytes or size.
pub const WRITES: [&str; 7] = [
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev2",
    "ftruncate",
    "fallocate",
];
pub const SYNCS: [&str; 2] = ["fsync", "fdatasync"];

pub fn is_stdout_write(c: &Call) -> bool {
    matches!(c.name.as_str(), "write" | "writev") && c.fd().is_some_and(|(fd, _)| fd == 1)
}

/// Whether the string argument was cut short by `-s`: strace marks it as
/// `"...`, right after its closing quote (an escaped quote inside the
/// string would read `\"`).
fn string_cut(c: &Call) -> bool {
    c.args
        .match_indices("\"...,")
        .any(|(i, _)| i == 0 || c.args.as_bytes()[i - 1] != b'\\')
}

/// Whether a write to stdout may carry an append's acknowledgement: it
/// shows one, or its string was cut short by `-s` (so it might).
pub fn may_ack(c: &Call) -> bool {
    c.args.contains("wal_append_ok") || string_cut(c)
}

/// The offsets a stdout write acknowledges, as far as the trace shows them;
/// `u64::MAX` stands for "any" when the string was cut short.
pub fn acked_offsets(c: &Call) -> Vec<u64> {
    // Reply bodies list `type`, `in_reply_to`, then the reply's fields, so
    // an ack's `offset` is the first one after its type; strace escapes
    // each `"` of the JSON as `\"`.
    let mut offsets: Vec<u64> = c
        .args
        .split("wal_append_ok")
        .skip(1)
        .filter_map(|after| {
            let digits = after.split_once("\\\"offset\\\":")?.1;
            let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect();
    if string_cut(c) {
        offsets.push(u64::MAX);
    }
    offsets
}

/// Whether `path` names a segment file of the log directory `dir`
/// (`<20 digits>.log`), and the segment's first offset.
pub fn segment_start(path: &Path, dir: &Path) -> Option<u64> {
    if path.parent() != Some(dir) {
        return None;
    }
    let digits = path.file_name()?.to_str()?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Trace lines `from..=to` (1-based), long lines shortened.
pub fn excerpt(trace: &str, from: usize, to: usize) -> String {
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
