//! The segmented log through the library: rolling, reopening without
//! rescanning sealed segments, damage to index and segment files, crash
//! states between sealing steps, adoption of a single-file log.

use std::fs;
use std::path::{Path, PathBuf};
use wal_node::frame;
use wal_node::log::{EventKind, Log, OpenError, Options, Recover, names};

fn opts(max_segment_bytes: u64) -> Options {
    Options {
        max_entry_bytes: 1 << 20,
        recover: Recover::Refuse,
        max_segment_bytes: Some(max_segment_bytes),
    }
}

fn reopen_opts() -> Options {
    Options {
        max_segment_bytes: None,
        ..opts(0)
    }
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    let tag = format!("entry-{i}-");
    tag.bytes()
        .chain(std::iter::repeat(b'x'))
        .take(len.max(tag.len()))
        .collect()
}

/// Appends `n` entries of `len` bytes, committing every `per_commit`.
fn fill(log: &mut Log, from: u64, n: u64, len: usize, per_commit: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in from..from + n {
        let p = payload(i, len);
        let a = log.append(&p).expect("append");
        assert_eq!(a.offset, i, "offsets are dense");
        out.push(p);
        if (i + 1) % per_commit == 0 {
            log.commit().expect("commit");
        }
    }
    log.commit().expect("commit");
    out
}

fn read_all(log: &mut Log) -> Vec<Vec<u8>> {
    (log.first_offset()..log.next_offset())
        .map(|i| {
            let e = log.read(i).expect("read").expect("present");
            assert!(e.checksum_valid, "entry {i} reads back whole");
            e.payload
        })
        .collect()
}

fn segment_files(dir: &Path) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            match names::classify(e.file_name().to_str()?) {
                names::Kind::Segment(s) => Some((s, e.metadata().unwrap().len())),
                _ => None,
            }
        })
        .collect();
    out.sort();
    out
}

fn log_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    (tmp, dir)
}

#[test]
fn rolls_at_every_frame_boundary_around_the_limit() {
    // Frame sizes from 100 to 140 bytes against a 1024-byte limit: every
    // way a frame can end just before, at, or just after the limit.
    for len in 92..=132usize {
        let (_tmp, dir) = log_dir();
        let mut log = Log::open(&dir, opts(1024)).unwrap();
        let written = fill(&mut log, 0, 40, len, 3);
        let frame = (len + 8) as u64;
        let per_segment = 1024 / frame;
        for seg in log.segments() {
            assert!(seg.size_bytes <= 1024, "len {len}: {seg:?} over the limit");
            if seg.sealed {
                let n = seg.end_offset.unwrap() - seg.start_offset + 1;
                assert_eq!(
                    n, per_segment,
                    "len {len}: a sealed segment is full: {seg:?}"
                );
            }
        }
        assert_eq!(read_all(&mut log), written, "len {len}");
        drop(log);
        let on_disk = segment_files(&dir);
        assert_eq!(
            on_disk.len() as u64,
            40u64.div_ceil(per_segment),
            "len {len}"
        );
        for (start, bytes) in &on_disk[..on_disk.len() - 1] {
            assert_eq!(
                *bytes,
                per_segment * frame,
                "sealed {start} is exactly its frames"
            );
        }
        let mut log = Log::open(&dir, reopen_opts()).unwrap();
        assert_eq!(
            log.max_segment_bytes(),
            1024,
            "the limit is kept in the metadata"
        );
        assert_eq!(read_all(&mut log), written, "len {len}, reopened");
        assert!(
            log.take_events().is_empty(),
            "a clean reopen reports nothing"
        );
    }
}

#[test]
fn a_payload_larger_than_the_limit_sits_alone_in_its_segment() {
    let (_tmp, dir) = log_dir();
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    let mut written = fill(&mut log, 0, 2, 100, 1);
    written.extend(fill(&mut log, 2, 1, 3000, 1));
    written.extend(fill(&mut log, 3, 2, 100, 1));
    let segs = log.segments();
    assert_eq!(segs.len(), 3, "{segs:?}");
    assert_eq!((segs[1].start_offset, segs[1].end_offset), (2, Some(2)));
    assert_eq!(segs[1].size_bytes, 3008);
    assert_eq!(read_all(&mut log), written);
    drop(log);
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(read_all(&mut log), written);
}

#[test]
fn info_counts_every_frame_across_segments_and_an_empty_active_shows_no_end() {
    let (_tmp, dir) = log_dir();
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    let segs = log.segments();
    assert_eq!(segs.len(), 1);
    assert_eq!(
        (segs[0].end_offset, segs[0].size_bytes, segs[0].sealed),
        (None, 0, false)
    );
    fill(&mut log, 0, 30, 92, 7);
    assert_eq!(log.entries(), 30);
    assert_eq!(log.total_bytes(), 30 * 100);
    assert_eq!(
        log.segments().iter().map(|s| s.size_bytes).sum::<u64>(),
        3000
    );
}

#[test]
fn sealed_segments_are_not_rescanned_at_open_damage_is_found_where_read() {
    let (_tmp, dir) = log_dir();
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    fill(&mut log, 0, 30, 92, 1);
    drop(log);
    // Flip a payload byte of entry 3, in the first (sealed) segment.
    let seg = dir.join(names::segment(0));
    let mut bytes = fs::read(&seg).unwrap();
    bytes[3 * 100 + 20] ^= 1;
    fs::write(&seg, &bytes).unwrap();
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(log.corrupt_entries(), 0, "open reads index headers only");
    let e = log.read(3).unwrap().unwrap();
    assert!(!e.checksum_valid, "a read recomputes the CRC");
    assert_eq!(log.corrupt_entries(), 1, "and counts what it found");
    log.read(3).unwrap();
    assert_eq!(log.corrupt_entries(), 1, "once");
    assert!(log.read(4).unwrap().unwrap().checksum_valid);
}

fn damaged_index_is_rebuilt(damage: impl Fn(&Path)) {
    let (_tmp, dir) = log_dir();
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    let written = fill(&mut log, 0, 30, 92, 1);
    drop(log);
    let index = dir.join(names::index(10));
    damage(&index);
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(read_all(&mut log), written);
    let events = log.take_events();
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::IndexRebuilt && e.text.contains(&names::segment(10))),
        "{events:?}"
    );
    assert!(index.exists(), "the rebuilt index is written back");
    drop(log);
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(read_all(&mut log), written);
    assert!(log.take_events().is_empty(), "and trusted next time");
}

#[test]
fn a_removed_index_is_rebuilt() {
    damaged_index_is_rebuilt(|p| fs::remove_file(p).unwrap());
}

#[test]
fn a_truncated_index_is_rebuilt() {
    damaged_index_is_rebuilt(|p| {
        let len = fs::metadata(p).unwrap().len();
        fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
    });
}

#[test]
fn an_index_with_a_flipped_header_bit_is_rebuilt() {
    damaged_index_is_rebuilt(|p| {
        let mut b = fs::read(p).unwrap();
        b[25] ^= 0x10;
        fs::write(p, b).unwrap();
    });
}

#[test]
fn an_index_with_a_flipped_position_bit_is_rebuilt_on_first_read() {
    damaged_index_is_rebuilt(|p| {
        let mut b = fs::read(p).unwrap();
        let last = b.len() - 2;
        b[last] ^= 0x01;
        fs::write(p, b).unwrap();
    });
}

#[test]
fn a_missing_middle_segment_refuses_to_open_naming_the_lost_offsets() {
    let (_tmp, dir) = log_dir();
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    fill(&mut log, 0, 35, 92, 1);
    drop(log);
    fs::remove_file(dir.join(names::segment(10))).unwrap();
    fs::remove_file(dir.join(names::index(10))).unwrap();
    let before = snapshot(&dir);
    let err = Log::open(&dir, reopen_opts()).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("offsets 10 to 19 are missing"), "{text}");
    assert_eq!(snapshot(&dir), before, "nothing changed");
}

#[test]
fn a_sealed_segment_shorter_than_its_index_refuses_to_open() {
    let (_tmp, dir) = log_dir();
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    fill(&mut log, 0, 35, 92, 1);
    drop(log);
    let seg = dir.join(names::segment(10));
    fs::File::options()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(950)
        .unwrap();
    let before = snapshot(&dir);
    let text = Log::open(&dir, reopen_opts())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        text.contains("cut short") && text.contains(&names::segment(10)),
        "{text}"
    );
    assert_eq!(snapshot(&dir), before, "nothing changed");
}

#[test]
fn a_directory_that_is_not_a_log_is_refused_untouched() {
    let (_tmp, dir) = log_dir();
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let text = Log::open(&dir, reopen_opts())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        text.contains("not a wal-node log") && text.contains("notes.txt"),
        "{text}"
    );
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "nothing created");

    fs::write(
        dir.join(names::META),
        "something else entirely, 40 bytes long..",
    )
    .unwrap();
    let text = Log::open(&dir, reopen_opts())
        .err()
        .expect("refused")
        .to_string();
    assert!(text.contains("magic"), "{text}");
}

#[test]
fn a_format_version_this_build_does_not_know_is_refused() {
    let (_tmp, dir) = log_dir();
    drop(Log::open(&dir, opts(1024)).unwrap());
    let mut meta = fs::read(dir.join(names::META)).unwrap();
    meta[8] = 2;
    fs::write(dir.join(names::META), &meta).unwrap();
    let text = Log::open(&dir, reopen_opts())
        .err()
        .expect("refused")
        .to_string();
    assert!(text.contains("version 2"), "{text}");
}

#[test]
fn unknown_files_are_left_alone_and_reported() {
    let (_tmp, dir) = log_dir();
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    let written = fill(&mut log, 0, 12, 92, 1);
    drop(log);
    fs::write(dir.join("README.operator"), "hands off").unwrap();
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(read_all(&mut log), written);
    let events = log.take_events();
    assert!(
        events.iter().any(|e| e.kind == EventKind::UnknownFile),
        "{events:?}"
    );
    assert!(dir.join("README.operator").exists());
}

#[test]
fn a_limit_set_at_runtime_survives_a_restart_unless_the_flag_overrides_it() {
    let (_tmp, dir) = log_dir();
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    log.set_max_segment_bytes(4096).unwrap();
    drop(log);
    assert_eq!(
        Log::open(&dir, reopen_opts()).unwrap().max_segment_bytes(),
        4096
    );
    assert_eq!(
        Log::open(&dir, opts(2048)).unwrap().max_segment_bytes(),
        2048
    );
    assert_eq!(
        Log::open(&dir, reopen_opts()).unwrap().max_segment_bytes(),
        2048
    );
}

#[test]
fn the_log_refuses_empty_and_over_limit_payloads_itself() {
    let (_tmp, dir) = log_dir();
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    assert!(log.append(b"").is_err());
    assert!(log.append(&vec![b'x'; (1 << 20) + 1]).is_err());
    fill(&mut log, 0, 2, 10, 1);
    drop(log);
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(read_all(&mut log).len(), 2, "nothing poisoned the log");
}

#[test]
fn a_private_log_rolls_too() {
    let mut log = Log::private(opts(1024)).unwrap();
    let written = fill(&mut log, 0, 50, 92, 4);
    assert_eq!(log.segments().len(), 5);
    assert!(log.dir().is_none());
    assert_eq!(read_all(&mut log), written);
}

// Crash states between the sealing steps (doc/format.md "Rolling"). Each is
// built from a clean two-segment log by undoing what the later steps did.

/// A log whose segment 0 (10 entries) was sealed by the append of entry
/// 10, and segment 10 holds `tail` (at least 1) entries. Returns the
/// payloads. Removing segment 10 undoes the roll's last steps (and the
/// appends after it, never acknowledged without that segment's sync).
fn sealed_once(dir: &Path, tail: u64) -> Vec<Vec<u8>> {
    assert!(
        tail >= 1,
        "the roll happens at the append that does not fit"
    );
    let mut log = Log::open(dir, opts(1024)).unwrap();
    let written = fill(&mut log, 0, 10 + tail, 92, 1);
    assert_eq!(log.segments().len(), 2);
    written
}

#[test]
fn crash_after_the_data_sync_before_the_index_leaves_a_full_active_segment() {
    let (_tmp, dir) = log_dir();
    let written = sealed_once(&dir, 1)[..10].to_vec();
    fs::remove_file(dir.join(names::index(0))).unwrap();
    fs::remove_file(dir.join(names::segment(10))).unwrap();
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(log.segments().len(), 1, "segment 0 is active again");
    assert_eq!(read_all(&mut log), written);
    let more = fill(&mut log, 10, 1, 92, 1);
    assert_eq!(log.segments().len(), 2, "and rolls at the next append");
    assert_eq!(read_all(&mut log)[10], more[0]);
}

#[test]
fn crash_while_writing_the_index_leaves_a_temp_file_that_is_removed() {
    let (_tmp, dir) = log_dir();
    let written = sealed_once(&dir, 1)[..10].to_vec();
    fs::rename(
        dir.join(names::index(0)),
        dir.join(format!("{}.tmp", names::index(0))),
    )
    .unwrap();
    fs::remove_file(dir.join(names::segment(10))).unwrap();
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(read_all(&mut log), written);
    assert!(!dir.join(format!("{}.tmp", names::index(0))).exists());
    assert!(
        log.take_events()
            .iter()
            .any(|e| e.kind == EventKind::TempRemoved)
    );
}

#[test]
fn crash_after_the_index_rename_before_the_next_segment_finishes_the_roll() {
    let (_tmp, dir) = log_dir();
    let written = sealed_once(&dir, 1)[..10].to_vec();
    fs::remove_file(dir.join(names::segment(10))).unwrap();
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(read_all(&mut log), written);
    let segs = log.segments();
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert!(segs[0].sealed && segs[1].start_offset == 10);
    assert!(
        log.take_events()
            .iter()
            .any(|e| e.kind == EventKind::SealFinished)
    );
    assert_eq!(fill(&mut log, 10, 1, 92, 1).len(), 1);
    assert_eq!(log.read(10).unwrap().unwrap().payload, payload(10, 92));
}

#[test]
fn crash_with_the_next_segment_but_not_the_index_rebuilds_the_index() {
    let (_tmp, dir) = log_dir();
    let written = sealed_once(&dir, 3);
    fs::remove_file(dir.join(names::index(0))).unwrap();
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(read_all(&mut log), written);
    assert!(
        log.take_events()
            .iter()
            .any(|e| e.kind == EventKind::IndexRebuilt)
    );
}

#[test]
fn a_stale_index_beside_the_active_segment_is_dropped() {
    let (_tmp, dir) = log_dir();
    let written = sealed_once(&dir, 1)[..10].to_vec();
    fs::remove_file(dir.join(names::segment(10))).unwrap();
    // The index describes fewer bytes than the segment now holds.
    let seg = dir.join(names::segment(0));
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &frame::encode(b"later")).unwrap();
    drop(f);
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    let mut expected = written;
    expected.push(b"later".to_vec());
    assert_eq!(read_all(&mut log), expected);
    assert!(!dir.join(names::index(0)).exists());
}

// Adoption of the previous version's single file.

fn old_log(root: &Path, payloads: &[&[u8]]) -> PathBuf {
    let old = root.join("n1.wal");
    let mut bytes = Vec::new();
    for p in payloads {
        bytes.extend(frame::encode(p));
    }
    bytes.extend(vec![0u8; 4096]); // the old version's preallocated zeros
    fs::write(&old, bytes).unwrap();
    old
}

#[test]
fn an_old_single_file_log_is_adopted_as_the_first_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let old = old_log(tmp.path(), &[b"a", b"bb", b"ccc"]);
    let mut log = wal_node::log::adopt::open_node(tmp.path(), "n1", opts(1024)).unwrap();
    assert_eq!(
        read_all(&mut log),
        vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]
    );
    assert!(
        log.take_events()
            .iter()
            .any(|e| e.kind == EventKind::Adopted)
    );
    assert!(!old.exists());
    assert!(tmp.path().join("n1").join(names::segment(0)).exists());
    drop(log);
    let mut log = wal_node::log::adopt::open_node(tmp.path(), "n1", reopen_opts()).unwrap();
    assert_eq!(log.entries(), 3);
    assert!(log.take_events().is_empty());
}

#[test]
fn adoption_interrupted_after_the_link_is_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let old = old_log(tmp.path(), &[b"a", b"bb"]);
    let dir = tmp.path().join("n1");
    // Steps 2 and 3 done, step 4 not: both names reach the same file.
    drop(Log::open(&dir, opts(1024)).unwrap());
    fs::remove_file(dir.join(names::segment(0))).unwrap();
    fs::hard_link(&old, dir.join(names::segment(0))).unwrap();
    let mut log = wal_node::log::adopt::open_node(tmp.path(), "n1", reopen_opts()).unwrap();
    assert_eq!(log.entries(), 2);
    assert!(!old.exists());
    assert_eq!(read_all(&mut log)[1], b"bb");
}

#[test]
fn adoption_interrupted_after_the_metadata_is_finished() {
    let tmp = tempfile::tempdir().unwrap();
    old_log(tmp.path(), &[b"a", b"bb"]);
    let dir = tmp.path().join("n1");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(format!("{}.tmp", names::META)), b"half").unwrap();
    let mut log = wal_node::log::adopt::open_node(tmp.path(), "n1", reopen_opts()).unwrap();
    assert_eq!(read_all(&mut log), vec![b"a".to_vec(), b"bb".to_vec()]);
}

#[test]
fn a_foreign_file_at_the_old_path_is_refused_not_adopted() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("n1.wal");
    fs::write(&old, "this is somebody's notes file, not a log\n").unwrap();
    let text = wal_node::log::adopt::open_node(tmp.path(), "n1", reopen_opts())
        .err()
        .expect("refused")
        .to_string();
    assert!(text.contains("not a wal-node log"), "{text}");
    assert!(
        old.exists() && !tmp.path().join("n1").exists(),
        "nothing changed"
    );
}

#[test]
fn an_old_file_and_a_different_log_directory_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    old_log(tmp.path(), &[b"a"]);
    drop(Log::open(&tmp.path().join("n1"), opts(1024)).unwrap());
    let err = wal_node::log::adopt::open_node(tmp.path(), "n1", reopen_opts())
        .err()
        .expect("refused");
    assert!(matches!(err, OpenError::Refused(_)), "{err}");
}

/// Every file's name and bytes, to show a refused open changed nothing.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_sealed_segment_with_zeros_after_its_frames_and_no_index_is_cut_and_reindexed() {
    // A seal whose cut did not reach the disk, and whose index was lost.
    let (_tmp, dir) = log_dir();
    let written = sealed_once(&dir, 2);
    fs::remove_file(dir.join(names::index(0))).unwrap();
    let seg = dir.join(names::segment(0));
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len + 4096)
        .unwrap();
    let mut log = Log::open(&dir, reopen_opts()).unwrap();
    assert_eq!(read_all(&mut log), written);
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        len,
        "cut back to its frames"
    );
    assert!(dir.join(names::index(0)).exists());
}

/// The state a test's entries build (they are not `set` commands).
fn state_of(log: &mut Log) -> wal_node::state::State {
    let mut state = wal_node::state::State::default();
    log.scan_entries(0, |_, p, ok| {
        if ok {
            state.apply(p)
        }
    })
    .unwrap();
    state
}

#[test]
fn a_refused_open_does_not_delete_the_segments_a_compaction_left() {
    // A crash after a compaction's metadata update, before its deletes, and
    // then the only snapshot damaged: the open refuses, and must leave the
    // old segments, the only way left to rebuild the state.
    let (_tmp, dir) = log_dir();
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    fill(&mut log, 0, 35, 92, 1);
    let state = state_of(&mut log);
    let (snap_at, _) = log.write_snapshot(&state).unwrap();
    drop(log);
    let meta = wal_node::log::meta::Meta {
        max_segment_bytes: 1024,
        first_offset: 20,
    };
    fs::write(dir.join(names::META), meta.encode()).unwrap();
    let snap = dir.join(names::snapshot(snap_at));
    let mut bytes = fs::read(&snap).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&snap, bytes).unwrap();
    let before = snapshot(&dir);
    let text = Log::open(&dir, reopen_opts())
        .err()
        .expect("refused")
        .to_string();
    assert!(text.contains("no intact snapshot"), "{text}");
    assert_eq!(snapshot(&dir), before, "a refused open changed nothing");
}

#[test]
fn an_old_file_beside_a_compacted_log_is_refused_not_adopted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    let mut log = Log::open(&dir, opts(1024)).unwrap();
    fill(&mut log, 0, 35, 92, 1);
    let state = state_of(&mut log);
    log.write_snapshot(&state).unwrap();
    log.compact(30).unwrap();
    drop(log);
    assert!(
        !dir.join(names::segment(0)).exists(),
        "segment 0 compacted away"
    );
    let old = old_log(tmp.path(), &[b"a stray old log"]);
    let before = snapshot(&dir);
    let err = wal_node::log::adopt::open_node(tmp.path(), "n1", reopen_opts())
        .err()
        .expect("refused");
    assert!(matches!(err, OpenError::Refused(_)), "{err}");
    assert!(old.exists(), "the old file is left where it was");
    assert_eq!(snapshot(&dir), before, "the log directory is unchanged");
}

#[test]
fn adoption_waits_for_the_node_serving_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n1");
    let serving = Log::open(&dir, opts(1024)).unwrap();
    let old = old_log(tmp.path(), &[b"x"]);
    let err = wal_node::log::adopt::open_node(tmp.path(), "n1", reopen_opts())
        .err()
        .expect("refused");
    assert!(matches!(err, OpenError::Locked(_)), "{err}");
    assert!(old.exists());
    drop(serving);
}
