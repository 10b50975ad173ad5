//! Running the operator tools as the real binary, and reading what they
//! wrote. WAL_DIR is removed unless a test sets it.

use std::path::Path;
use std::process::{Command, Output};

/// `wal-node`, with no WAL_DIR from the test's environment.
pub fn wal_node() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wal-node"));
    cmd.env_remove("WAL_DIR");
    cmd
}

/// `wal-node <args> <log>`: the log given as a PATH.
pub fn tool(args: &[&str], log: &Path) -> Output {
    wal_node()
        .args(args)
        .arg(log)
        .output()
        .expect("run wal-node")
}

/// `wal-node <args>`, nothing added.
pub fn run(args: &[&str]) -> Output {
    wal_node().args(args).output().expect("run wal-node")
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The stdout of a run that must succeed.
pub fn ok_stdout(out: &Output) -> String {
    assert_eq!(code(out), 0, "{}", stderr(out));
    stdout(out)
}
