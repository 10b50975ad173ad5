//! `wal-node inspect --follow` against a live node: it shows exactly the
//! acknowledged entries, in order, across rolls and compactions; never a
//! torn write; only what it has synced; and it stops quietly on Ctrl-C, on
//! a closed pipe, and at --to/--limit.

mod common;
mod crash_support;

use common::Running;
use common::logs::{self, payload};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// Longest a follower may take to show what the node acknowledged.
const SHOW_WITHIN: Duration = Duration::from_secs(30);

fn follower(root: &Path, extra: &[&str]) -> Running {
    let mut cmd = Command::new(common::bin());
    cmd.args(["inspect", "--follow", "--json", "--interval-ms", "10"])
        .args(["--dir", root.to_str().unwrap(), "--node", "n1"])
        .args(extra);
    Running::spawn_with(&mut cmd)
}

/// The next `n` frame lines the follower prints (other lines, such as the
/// segment it enters, are skipped).
fn frames(f: &Running, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + SHOW_WITHIN;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(line) = f.try_recv(left) else {
            panic!("the follower showed {} of {n} frames: {got:?}", got.len());
        };
        if line["type"] == "frame" {
            got.push(line);
        }
    }
    got
}

/// Frame lines printed within `wait`: a check that nothing more comes.
fn more_frames(f: &Running, wait: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    while let Some(line) = f.try_recv(wait) {
        if line["type"] == "frame" {
            got.push(line);
        }
    }
    got
}

/// Interrupts the follower as Ctrl-C does and returns its exit code and
/// stderr.
fn interrupt(mut f: Running) -> (Option<i32>, String) {
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(f.child.id() as i32, libc::SIGINT) };
    let status = f.child.wait().unwrap();
    (status.code(), f.stderr_after_exit())
}

fn shown(frames: &[Value]) -> Vec<(u64, String)> {
    frames
        .iter()
        .map(|f| {
            assert_eq!(f["status"], "ok", "{f}");
            (
                f["index"].as_u64().unwrap(),
                f["payload"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_follower_shows_exactly_the_acknowledged_entries_in_order_across_rolls_and_compaction() {
    let root = tempfile::tempdir().unwrap();
    // Started before the node: it waits for the log, and takes no lock the
    // node then needs.
    let f = follower(root.path(), &[]);
    let mut node = logs::live_node(root.path());
    let mut acked = Vec::new();
    for i in 0..30 {
        let r = node.append(&payload(i));
        acked.push((r["offset"].as_u64().unwrap(), payload(i)));
    }
    assert_eq!(shown(&frames(&f, 30)), acked);
    let r = node.request(json!({"type": "wal_snapshot"}));
    assert_eq!(r["snapshot_offset"], 30, "{r}");
    let r = node.request(json!({"type": "wal_compact", "snapshot_at_offset": 30}));
    assert_eq!(r["type"], "wal_compact_ok", "{r}");
    let more = logs::pipelined(&mut node, 30, 230);
    assert_eq!(shown(&frames(&f, 200)), more);
    assert!(node.finish().success());
    assert_eq!(
        more_frames(&f, Duration::from_millis(300)),
        Vec::<Value>::new()
    );
    let (code, stderr) = interrupt(f);
    assert_eq!(code, Some(0), "Ctrl-C ends a follower quietly: {stderr}");
    assert_eq!(
        stderr
            .lines()
            .filter(|l| !l.contains("waiting for a log"))
            .count(),
        0,
        "{stderr}"
    );
}

#[test]
fn a_torn_write_is_never_shown_and_what_the_node_writes_in_its_place_is() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::torn_tail(root.path());
    let f = follower(root.path(), &[]);
    let got = frames(&f, 20);
    assert_eq!(got.last().unwrap()["index"], 19);
    assert_eq!(
        more_frames(&f, Duration::from_millis(300)),
        Vec::<Value>::new()
    );
    // A restart cuts the torn tail (saving it) and appends in its place.
    let mut node = logs::live_node(root.path());
    let acked: Vec<(u64, String)> = (100..103)
        .map(|i| {
            (
                node.append(&payload(i))["offset"].as_u64().unwrap(),
                payload(i),
            )
        })
        .collect();
    assert_eq!(acked[0].0, 20);
    assert_eq!(shown(&frames(&f, 3)), acked);
    assert!(node.finish().success());
    let (code, _) = interrupt(f);
    assert_eq!(code, Some(0));
    assert!(
        dir.read_dir()
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().contains(".torn-") })
    );
}

#[test]
fn bit_rot_is_shown_as_corrupt_in_a_sealed_and_in_the_active_segment() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::damaged_sealed(root.path());
    logs::rot(&dir, 18);
    let f = follower(root.path(), &[]);
    let got = frames(&f, 20);
    let statuses: Vec<(u64, &str)> = got
        .iter()
        .map(|g| (g["index"].as_u64().unwrap(), g["status"].as_str().unwrap()))
        .collect();
    let want: Vec<(u64, &str)> = (0..20)
        .map(|i| (i, if i == 4 || i == 18 { "corrupt" } else { "ok" }))
        .collect();
    assert_eq!(statuses, want);
    assert!(got[4]["payload_hex"].is_string(), "{}", got[4]);
    let (code, _) = interrupt(f);
    assert_eq!(code, Some(0));
}

#[test]
fn to_and_limit_end_a_follow_by_themselves() {
    let root = tempfile::tempdir().unwrap();
    logs::clean(root.path(), 20);
    for (extra, want) in [
        (&["--to", "12"][..], (0..=12).collect::<Vec<u64>>()),
        (&["--from", "5", "--limit", "3"], vec![5, 6, 7]),
        (&["--from", "10", "--to", "10"], vec![10]),
    ] {
        let mut f = follower(root.path(), extra);
        let (rest, cut) = f.replies_after_death();
        assert_eq!(cut, None);
        let got: Vec<u64> = rest
            .iter()
            .filter(|l| l["type"] == "frame")
            .map(|l| l["index"].as_u64().unwrap())
            .collect();
        assert_eq!(got, want, "{extra:?}");
        assert_eq!(f.child.wait().unwrap().code(), Some(0), "{extra:?}");
    }
}

#[test]
fn a_follower_whose_reader_goes_away_ends_quietly_even_while_idle() {
    let root = tempfile::tempdir().unwrap();
    logs::clean(root.path(), 20);
    let mut cmd = Command::new(common::bin());
    let mut child = cmd
        .args(["inspect", "--follow", "--interval-ms", "10"])
        .arg(root.path().join("n1"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 5];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    assert_eq!(&first, b"  ind");
    // It has shown all 20 entries within the pipe's room; closing the read
    // end now leaves it nothing to write, so only its check of the pipe
    // can notice.
    std::thread::sleep(Duration::from_millis(200));
    drop(out);
    let deadline = Instant::now() + SHOW_WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the follower outlived its reader"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!((status.code(), stderr.as_str()), (Some(0), ""));
}

#[test]
fn following_changes_no_file_and_marks_compacted_entries() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::compacted(root.path());
    let before = files(&dir);
    let f = follower(root.path(), &[]);
    let compacted: Vec<u64> = frames(&f, 18)
        .iter()
        .filter(|l| l["compacted"] == true)
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    assert_eq!(compacted, [27, 28, 29], "below first_offset 30");
    let (code, _) = interrupt(f);
    assert_eq!(code, Some(0));
    assert_eq!(files(&dir), before);
}

fn files(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (
                name,
                (std::fs::read(e.path()).unwrap(), meta.modified().unwrap()),
            )
        })
        .collect()
}

/// Under strace: every write of frame lines to stdout comes after an
/// `fdatasync` that follows the last read of the segment, so a shown entry
/// is on disk even if the node has not synced it yet.
#[test]
fn a_follower_shows_only_what_it_has_synced() {
    crash_support::strace::require_strace();
    let root = tempfile::tempdir().unwrap();
    let trace = root.path().join("trace");
    let mut node = Running::spawn(&["--dir", root.path().to_str().unwrap()]);
    assert_eq!(node.init("n1")["type"], "init_ok");
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-s",
        "4096",
        "-e",
        "trace=pread64,fdatasync,write",
        "-o",
    ])
    .arg(&trace)
    .arg(common::bin())
    .args([
        "inspect",
        "--follow",
        "--json",
        "--interval-ms",
        "5",
        "--to",
        "59",
    ])
    .args(["--dir", root.path().to_str().unwrap(), "--node", "n1"]);
    let mut f = Running::spawn_with(&mut cmd);
    for i in 0..60 {
        node.append(&payload(i));
    }
    let (lines, _) = f.replies_after_death();
    assert_eq!(lines.iter().filter(|l| l["type"] == "frame").count(), 60);
    assert!(f.child.wait().unwrap().success());
    assert!(node.finish().success());
    let text = std::fs::read_to_string(&trace).unwrap();
    let calls: Vec<&str> = text.lines().collect();
    let mut checked = 0;
    for (k, call) in calls.iter().enumerate() {
        if !(call.contains(" write(1,") && call.contains("\\\"type\\\":\\\"frame\\\"")) {
            continue;
        }
        let last_read = calls[..k].iter().rposition(|c| c.contains(" pread64("));
        let synced = last_read.is_some_and(|r| {
            calls[r..k]
                .iter()
                .any(|c| c.contains(" fdatasync(") && c.trim_end().ends_with("= 0"))
        });
        assert!(
            synced,
            "frames written with no sync after the read:\n{}",
            calls[k.saturating_sub(8)..=k].join("\n")
        );
        checked += 1;
    }
    assert!(checked > 0, "no frame writes traced:\n{text}");
}

/// The node cuts a write it could not finish and writes new entries in its
/// place; a follower that had synced and shown the cut frames says so and
/// shows the new entries at those offsets.
#[test]
fn entries_rolled_back_after_being_shown_are_reported_and_their_replacements_shown() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 20);
    let f = follower(root.path(), &[]);
    frames(&f, 20);
    // Entry 19 (the active segment's second frame) cut, two others after 18.
    // One write over frame 19's bytes, as the node's cut and next write
    // leave them; entry 18 is never touched, so no read can see it change.
    let mut bytes = wal_node::frame::encode(b"replacement 19");
    bytes.extend(wal_node::frame::encode(b"replacement 20"));
    bytes.resize(logs::FRAME_BYTES as usize, 0);
    let active = std::fs::OpenOptions::new()
        .write(true)
        .open(logs::segment(&dir, 18))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&active, &bytes, logs::FRAME_BYTES).unwrap();
    let got: Vec<(u64, String)> = shown(&frames(&f, 2));
    assert_eq!(
        got,
        [
            (19, "replacement 19".to_owned()),
            (20, "replacement 20".to_owned())
        ]
    );
    let (code, stderr) = interrupt(f);
    assert_eq!(code, Some(0));
    assert!(
        stderr.contains("entries from offset 19 on, already shown, were rolled back"),
        "{stderr}"
    );
}

/// The README's example: `inspect -f` on a compacted log, ending by itself
/// at `--to`. Checked byte for byte; `UPDATE_GOLDEN=1` rewrites it.
#[test]
fn follow_text_matches_golden() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::compacted(root.path());
    let out = Command::new(common::bin())
        .current_dir(root.path())
        .args(["inspect", "-f", "n1/", "--from", "33", "--to", "37"])
        .env_remove("WAL_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(dir.is_dir());
    let text = String::from_utf8(out.stdout).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tools/inspect_follow.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("golden file; UPDATE_GOLDEN=1 writes it");
    assert_eq!(text, want);
}

/// The rows `inspect --json` prints for `dir` (frames and damage only).
fn inspect_rows(dir: &Path) -> Vec<Value> {
    let out = Command::new(common::bin())
        .args(["inspect", "--json"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["type"] == "frame" || l["type"] == "damage")
        .collect()
}

/// Breaks the length word of entry `i` (in a sealed segment of the test
/// logs): broken framing, whole frames resuming after it.
fn break_length_word(dir: &Path, i: u64) {
    let start = i / logs::PER_SEGMENT * logs::PER_SEGMENT;
    let path = logs::segment(dir, start);
    let mut bytes = std::fs::read(&path).unwrap();
    let pos = ((i - start) * logs::FRAME_BYTES) as usize;
    bytes[pos..pos + 4].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
}

/// On a log no node is writing, a follower shows exactly the rows
/// `inspect` shows (all but a torn tail in the active segment): damage in
/// sealed segments as found, bit rot in the active one once it stays.
#[test]
fn a_follower_of_a_still_log_shows_the_rows_inspect_shows() {
    type Make = fn(&Path) -> std::path::PathBuf;
    let cases: [(&str, Make); 4] = [
        ("clean", |r| logs::clean(r, 20)),
        (
            "bit rot in sealed segments, their last entries too, and the active one",
            |r| {
                let dir = logs::damaged_sealed(r);
                logs::rot(&dir, 8);
                logs::rot(&dir, 16);
                logs::rot(&dir, 18);
                dir
            },
        ),
        (
            "bit rot just before broken framing, in a sealed segment",
            |r| {
                let dir = logs::clean(r, 20);
                logs::rot(&dir, 10);
                break_length_word(&dir, 11);
                dir
            },
        ),
        ("compacted, with snapshots", logs::compacted),
    ];
    for (name, make) in cases {
        let root = tempfile::tempdir().unwrap();
        let dir = make(root.path());
        let want = inspect_rows(&dir);
        let f = follower(root.path(), &[]);
        let deadline = Instant::now() + SHOW_WITHIN;
        let mut got = Vec::new();
        while got.len() < want.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match f.try_recv(left) {
                Some(l) if l["type"] == "frame" || l["type"] == "damage" => got.push(l),
                Some(_) => {}
                None => break,
            }
        }
        got.extend(more_frames(&f, Duration::from_millis(300)));
        let (code, _) = interrupt(f);
        assert_eq!(code, Some(0));
        assert_eq!(got, want, "{name}");
    }
}
