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

/// Where a node first looks for its log: the previous version's single
/// file, which it adopts (a regular file only) as its first segment.
fn old_log_path(dir: &Path) -> PathBuf {
    dir.join("n1.wal")
}

/// `init` of n1 in `dir` is refused with error 13 naming the log's path and
/// `what` it is.
fn assert_refused_as(dir: &Path, what: &str) {
    let (reply, stderr) = init_in(dir, &[]);
    let path = old_log_path(dir);
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
    let fifo = old_log_path(dir.path());
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
    let node = old_log_path(dir.path());
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
    let path = old_log_path(dir.path());
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
    std::os::unix::fs::symlink(&target, old_log_path(dir.path())).unwrap();
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
    std::os::unix::fs::symlink(&device.device, old_log_path(&logs)).unwrap();
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

/// A tmpfs of a few hundred KiB mounted on a fresh directory: a real small
/// filesystem to fill. Unmounted on drop.
struct Tmpfs {
    mount_point: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(kib: u64) -> Option<Tmpfs> {
        let mount_point = tempdir();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(mount_point.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { mount_point }),
            Ok(out) => {
                eprintln!(
                    "skipping: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// Bytes free and the block size, as the kernel reports them.
    fn space(&self) -> (u64, u64) {
        use std::os::unix::ffi::OsStrExt;
        let c_dir = std::ffi::CString::new(self.path().as_os_str().as_bytes()).unwrap();
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: a NUL-terminated path and a buffer of the right type.
        assert_eq!(unsafe { libc::statvfs(c_dir.as_ptr(), st.as_mut_ptr()) }, 0);
        // SAFETY: statvfs returned 0, so it filled the buffer.
        let st = unsafe { st.assume_init() };
        (st.f_bavail * st.f_frsize, st.f_frsize)
    }

    /// Fills every free block with a file of whole blocks; returns its path.
    fn fill_up(&self) -> PathBuf {
        use std::io::Write;
        let (_, block) = self.space();
        let path = self.path().join("filler");
        let mut filler = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xa5u8; block as usize];
        loop {
            match filler.write(&chunk) {
                Ok(n) if n == chunk.len() => {}
                Ok(n) => panic!("a short write of {n} bytes into a whole free block"),
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        assert_eq!(self.space().0, 0, "the tmpfs is not full");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// Frees `bytes` (whole blocks) of the filler file.
fn free_some(filler: &Path, bytes: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(filler)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - bytes).unwrap();
}

/// The stderr line of a cut that could not be saved names where, how much,
/// the CRC and the first bytes of what was lost.
fn assert_reports_unsaved(output: &str, offset: u64, lost: &[u8]) {
    let hex: Vec<String> = lost.iter().take(32).map(|b| format!("{b:02x}")).collect();
    for wanted in [
        format!(
            "the {} bytes at byte offset {offset} could not be saved",
            lost.len()
        ),
        format!("CRC-32 {:08x}", crc32fast::hash(lost)),
        format!("(hex) {}", hex.join(" ")),
        "cut anyway".to_owned(),
    ] {
        assert!(
            output.contains(&wanted),
            "the report of the unsaved cut must say {wanted:?}:\n{output}"
        );
    }
}

#[test]
fn a_torn_tail_on_a_disk_the_log_filled_is_cut_unsaved_and_no_acknowledged_entry_is_lost() {
    let Some(fs) = Tmpfs::mount(256) else {
        return;
    };
    let dir = fs.path();
    let scratch = tempdir();
    let err = scratch.path().join("node.stderr");
    let mut node = spawn_logged("", &["--dir", dir.to_str().unwrap()], &err);
    assert_eq!(node.init("n1")["type"], "init_ok", "{}", read_text(&err));
    // Append until the disk is full (error 14).
    let mut acked = Vec::new();
    loop {
        // 1001 bytes: frames of 1009 bytes never end on a block boundary
        // before the 256 KiB fill up, so the last block has room for a torn tail.
        let payload = text_payload(&format!("entry{}-", acked.len()), 1001);
        let r = node.append(&payload);
        if r["type"] == "error" {
            assert_eq!(r["code"], json!(14), "{r}\n{}", read_text(&err));
            break;
        }
        assert_eq!(r["offset"], json!(acked.len()), "{r}");
        acked.push(payload);
        assert!(acked.len() < 1000, "the 256 KiB tmpfs never filled up");
    }
    assert!(node.finish().success(), "{}", read_text(&err));
    let log = log_path(dir, "n1");
    let data_end = 1009 * acked.len() as u64;
    assert_eq!(std::fs::metadata(&log).unwrap().len(), data_end);

    // A crash in the middle of the next write: as much of its frame as the
    // disk took.
    let next = frame(text_payload("never acknowledged-", 1000).as_bytes());
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let e = std::io::Write::write_all(&mut f, &next).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
    drop(f);
    let torn = std::fs::read(&log).unwrap()[data_end as usize..].to_vec();
    assert!(
        !torn.is_empty(),
        "the log's last block had no room for a torn tail: change the payload size"
    );
    assert_eq!(fs.space().0, 0, "the disk must be full for this test");

    // Restart: opens with every acknowledged entry, no save file left.
    let mut lines = vec![common::init_line("n1"), req(2, json!({"type": "wal_info"}))];
    lines.extend(
        (0..acked.len()).map(|o| req(10 + o as u64, json!({"type": "wal_read", "offset": o}))),
    );
    let out = run(&["--dir", dir.to_str().unwrap()], &input_of(&lines));
    let b: Vec<&Value> = out.replies.iter().map(|r| &r["body"]).collect();
    assert_eq!(b[0]["type"], "init_ok", "{}\n{}", b[0], out.stderr);
    assert_eq!(b[1]["entries"], json!(acked.len()), "{}", b[1]);
    for (o, r) in b[2..].iter().enumerate() {
        assert_eq!(r["checksum_valid"], true, "read {o}: {r}");
        assert_eq!(r["payload"], acked[o].as_str(), "read {o}");
    }
    assert_eq!(torn_files(&log), Vec::<PathBuf>::new(), "{}", out.stderr);
    assert_reports_unsaved(&out.stderr, data_end, &torn);
    let (frames, _) = parse_whole_frames(&std::fs::read(&log).unwrap()).unwrap();
    assert_eq!(frames.len(), acked.len(), "frames left in the log");

    // And again: nothing left to cut.
    let out = run(&["--dir", dir.to_str().unwrap()], &input_of(&lines[..2]));
    assert_eq!(out.replies[1]["body"]["entries"], json!(acked.len()));
    assert!(!out.stderr.contains("torn"), "{}", out.stderr);
}

/// A log of three whole frames followed by a torn one; returns it, the end
/// of the whole frames and the torn bytes.
fn log_with_torn_tail() -> (Vec<u8>, u64, Vec<u8>) {
    let (mut bytes, _) = frames(&[b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]);
    let data_end = bytes.len() as u64;
    let torn = frame(text_payload("unacknowledged-", 3000).as_bytes())[..2500].to_vec();
    bytes.extend_from_slice(&torn);
    (bytes, data_end, torn)
}

#[test]
fn repair_on_a_full_disk_cuts_a_torn_tail_unsaved_and_says_so() {
    let Some(fs) = Tmpfs::mount(128) else {
        return;
    };
    let log = log_path(fs.path(), "n1");
    let (bytes, data_end, torn) = log_with_torn_tail();
    common::write_log(fs.path(), "n1", &bytes);
    fs.fill_up();
    let out = Command::new(common::bin())
        .arg("repair")
        .arg(&log)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert_reports_unsaved(&stdout, data_end, &torn);
    assert_eq!(std::fs::read(&log).unwrap(), &bytes[..data_end as usize]);
    assert_eq!(torn_files(&log), Vec::<PathBuf>::new());
}

/// A log whose framing breaks after two whole frames while whole frames
/// follow (possibly acknowledged data); returns it and the offset of the
/// damage.
fn log_with_broken_framing() -> (Vec<u8>, u64) {
    let (mut bytes, _) = frames(&[b"kept 0".to_vec(), b"kept 1".to_vec()]);
    let damage = bytes.len() as u64;
    // A length word over --max-entry-bytes, then whole frames: about 10 KB.
    bytes.extend_from_slice(&[0xf0, 0xff, 0xff, 0xff, 1, 2, 3, 4]);
    for i in 0..10 {
        bytes.extend_from_slice(&frame(text_payload(&format!("after{i}-"), 1000).as_bytes()));
    }
    (bytes, damage)
}

/// What the refusal to cut unsaved says must be freed, in bytes.
fn bytes_to_free(text: &str) -> u64 {
    let (_, rest) = text
        .split_once("free at least ")
        .unwrap_or_else(|| panic!("the refusal must say how much to free: {text}"));
    rest.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn broken_framing_on_a_full_disk_is_not_cut_unsaved_and_the_refusal_says_exactly_what_to_free() {
    let Some(fs) = Tmpfs::mount(128) else {
        return;
    };
    let dir = fs.path();
    let log = log_path(dir, "n1");
    let (bytes, damage) = log_with_broken_framing();
    common::write_log(dir, "n1", &bytes);
    let filler = fs.fill_up();
    let (_, block) = fs.space();
    let cut_len = bytes.len() as u64 - damage;
    let need = cut_len.div_ceil(block) * block;
    assert!(need > block, "the cut must span more than one block");

    let refused = |label: &str| -> u64 {
        let (reply, stderr) = init_in(dir, &["--recover", "truncate"]);
        assert_eq!(reply["code"], json!(13), "{label}: {reply}\n{stderr}");
        let text = reply["text"].as_str().unwrap();
        assert!(text.contains("nothing was cut"), "{label}: {text}");
        assert!(
            std::fs::read(&log).unwrap() == bytes,
            "{label}: the log was changed"
        );
        assert_eq!(
            torn_files(&log),
            Vec::<PathBuf>::new(),
            "{label}: a failed save left a file"
        );
        bytes_to_free(text)
    };
    // Nothing free: the whole save must be made room for (an empty save
    // file was created and removed).
    assert_eq!(refused("disk full"), need);
    // One block short: the save is written part way, then removed.
    free_some(&filler, need - block);
    assert_eq!(refused("one block short"), block);
    // Exactly what the refusal asked for: the cut goes through, saved.
    free_some(&filler, block);
    let (reply, stderr) = init_in(dir, &["--recover", "truncate"]);
    assert_eq!(reply["type"], "init_ok", "{reply}\n{stderr}");
    assert_eq!(torn_files(&log), [torn_path(&log, damage)]);
    assert!(std::fs::read(torn_path(&log, damage)).unwrap() == bytes[damage as usize..]);
    assert_eq!(std::fs::read(&log).unwrap(), &bytes[..damage as usize]);
}

#[test]
fn repair_truncate_at_damage_on_a_full_disk_refuses_and_leaves_nothing() {
    let Some(fs) = Tmpfs::mount(128) else {
        return;
    };
    let log = log_path(fs.path(), "n1");
    let (bytes, _) = log_with_broken_framing();
    common::write_log(fs.path(), "n1", &bytes);
    fs.fill_up();
    let out = Command::new(common::bin())
        .args(["repair", "--truncate-at-damage"])
        .arg(&log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(bytes_to_free(&stderr) > 0, "{stderr}");
    assert!(std::fs::read(&log).unwrap() == bytes, "the log was changed");
    assert_eq!(torn_files(&log), Vec::<PathBuf>::new());
}

#[test]
fn a_refused_open_says_what_is_known_of_the_damage() {
    let dir = tempdir();
    let (bytes, damage) = log_with_broken_framing();
    common::write_log(dir.path(), "n1", &bytes);
    let (reply, stderr) = init_in(dir.path(), &[]);
    assert_eq!(reply["code"], json!(13), "{reply}");
    let text = reply["text"].as_str().unwrap();
    assert!(
        !text.contains("acknowledged data is damaged"),
        "a lost page of a batch never acknowledged looks the same: {text}"
    );
    for wanted in [
        format!("broken framing at byte offset {damage}"),
        "inside the log, before its last whole frame".to_owned(),
        "acknowledged data, or".to_owned(),
        "never acknowledged".to_owned(),
    ] {
        assert!(text.contains(&wanted), "{wanted:?} in {text}\n{stderr}");
    }
    assert!(std::fs::read(log_path(dir.path(), "n1")).unwrap() == bytes);
}
