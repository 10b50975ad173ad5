//! Failing I/O under the node, injected with an LD_PRELOAD shim
//! (tests/faults/io_faults.c, built here with `cc`):
//! - a failed fsync is never retried and never acknowledged: every append
//!   waiting on it gets error 13, the node exits non-zero, and a restart
//!   serves exactly what is really on disk;
//! - a failed read answers error 13 for that read only; the node serves on.

mod common;

use common::{Running, log_path};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the shim into `dir`; fails the test (not skips) without a C compiler.
fn build_shim(dir: &Path) -> PathBuf {
    let out = dir.join("io_faults.so");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/io_faults.c");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&source)
        .arg("-ldl")
        .status()
        .expect("a C compiler (`cc`) is needed to build the fault-injection shim");
    assert!(status.success(), "building {}", source.display());
    out
}

/// A node serving `n1` in a fresh directory under the shim; creating the
/// returned trigger file turns on the fault that `fault` names.
struct Faulty {
    node: Running,
    trigger: PathBuf,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn faulty_node(fault: &str) -> Faulty {
    let tmp = tempfile::tempdir().unwrap();
    let shim = build_shim(tmp.path());
    let trigger = tmp.path().join("fault-on");
    let dir = tmp.path().join("logs");
    let mut cmd = Command::new(common::bin());
    cmd.arg("--dir")
        .arg(&dir)
        .env("LD_PRELOAD", &shim)
        .env(fault, &trigger);
    let mut node = Running::spawn_with(&mut cmd);
    assert_eq!(node.init("n1")["type"], "init_ok");
    Faulty {
        node,
        trigger,
        dir,
        _tmp: tmp,
    }
}

#[test]
fn a_failed_sync_answers_error_13_exits_and_loses_nothing_acknowledged() {
    let Faulty {
        mut node,
        trigger,
        dir,
        _tmp,
    } = faulty_node("WAL_FAIL_SYNC_WHEN");
    for i in 0..5 {
        let reply = node.append(&format!("durable {i}"));
        assert_eq!(reply["type"], "wal_append_ok", "{reply}");
    }

    std::fs::write(&trigger, b"").unwrap();
    let failed = node.append("never acknowledged");
    assert_eq!(
        failed["type"], "error",
        "an append whose sync failed was answered {failed}"
    );
    assert_eq!(
        failed["code"],
        json!(13),
        "indefinite, not a definite abort: {failed}"
    );
    assert!(
        failed["text"].as_str().unwrap().contains("fsync failed"),
        "the error says why: {failed}"
    );
    let status = node.child.wait().unwrap();
    assert!(
        !status.success(),
        "the node must exit after a failed sync, got {status}"
    );
    // The failure was injected: its log lines are expected, so they are
    // checked here rather than shown.
    let stderr = node.stderr_after_exit();
    assert!(
        stderr.contains("fsync of the log failed") && stderr.contains("exiting"),
        "stderr says the sync failed and the node exits:\n{stderr}"
    );

    // Restart without the fault: every acknowledged entry is there, intact.
    let mut node = Running::spawn(&["--dir", dir.to_str().unwrap()]);
    assert_eq!(node.init("n1")["type"], "init_ok");
    let entries = node.info()["entries"].as_u64().unwrap();
    assert!(
        (5..=6).contains(&entries),
        "{entries} entries after restart"
    );
    for i in 0..5 {
        let read = node.read(i);
        assert_eq!(read["payload"], json!(format!("durable {i}")), "{read}");
        assert_eq!(read["checksum_valid"], true, "{read}");
    }
    assert!(node.finish().success());
    assert!(log_path(&dir, "n1").exists());
}

#[test]
fn a_failed_read_answers_that_read_only_and_the_node_serves_on() {
    let Faulty {
        mut node,
        trigger,
        _tmp,
        ..
    } = faulty_node("WAL_FAIL_READ_WHEN");
    for i in 0..3 {
        assert_eq!(node.append(&format!("entry {i}"))["type"], "wal_append_ok");
    }

    std::fs::write(&trigger, b"").unwrap();
    let failed = node.read(1);
    assert_eq!(failed["code"], json!(13), "{failed}");
    assert!(
        failed["text"]
            .as_str()
            .unwrap()
            .contains("could not read entry 1"),
        "the error names the entry: {failed}"
    );

    std::fs::remove_file(&trigger).unwrap();
    assert_eq!(node.read(1)["payload"], "entry 1", "the node serves on");
    assert_eq!(node.append("entry 3")["offset"], json!(3));
    let (status, stderr) = node.finish_with_stderr();
    assert!(status.success(), "a failed read must not stop the node");
    assert!(
        stderr.contains("reading entry 1 failed"),
        "stderr names the read that failed:\n{stderr}"
    );
}
