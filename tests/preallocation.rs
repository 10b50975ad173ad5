//! How far ahead of its data the log keeps zero-filled space: half the
//! data while the log is small (at least 512 KiB), half a 16 MiB chunk once
//! it is large, in whole chunks of twice that room. A log of a few entries
//! is not given 16 MiB of zeros at its first batch (writing and syncing
//! them stalled the requests behind it, and in a 100,000-append run of
//! 10 MB the zeros came to 32 MiB).

mod common;

use common::{Running, log_path};

/// Size of the log's first segment once the node has answered a request
/// after the appends: the extension after a batch is done before the next
/// batch is read.
fn file_size_after(payloads: &[String]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Running::spawn(&["--dir", dir.path().to_str().unwrap()]);
    node.init("n1");
    for p in payloads {
        assert_eq!(node.append(p)["type"], "wal_append_ok");
    }
    node.info();
    let size = std::fs::metadata(log_path(dir.path(), "n1")).unwrap().len();
    assert!(node.finish().success());
    size
}

#[test]
fn a_small_log_is_kept_one_mebibyte_ahead_not_sixteen() {
    assert_eq!(file_size_after(&["x".repeat(100)]), 1 << 20);
}

#[test]
fn the_room_ahead_grows_with_the_log() {
    // 9 frames of 128 KiB (8 B header): 1.1 MiB of data wants 576 KiB
    // ahead, in chunks of 2 MiB: 2 MiB.
    let payload = "p".repeat((128 << 10) - 8);
    assert_eq!(file_size_after(&vec![payload; 9]), 2 << 20);
}
