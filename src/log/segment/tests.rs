//! A segment over a file that fails on demand: what each failure leaves
//! on disk, in the cursors, and what it tells the caller.

use super::*;
use crate::log::segment_file::faulty::{Faults, FaultyFile, faulty_file};

/// A segment limit small enough that preallocation is one 4 KiB write.
const SMALL_LIMIT: u64 = 4096;

fn frames(payloads: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        frame::encode_into(&mut out, p.as_bytes());
    }
    out
}

/// A segment holding `payloads`, committed.
fn durable(payloads: &[&str]) -> (Segment<FaultyFile>, Faults) {
    let (file, faults) = faulty_file();
    let mut seg = Segment::create(file, None, 0);
    for p in payloads {
        seg.append(p.as_bytes());
    }
    seg.commit().expect("a commit without faults");
    assert_eq!(faults.on_disk(), frames(payloads));
    (seg, faults)
}

/// The cursors in order, and nothing on disk past `allocated_end`.
fn assert_sound(seg: &Segment<FaultyFile>, faults: &Faults) {
    assert!(
        seg.cursors_in_order(),
        "cursors out of order: synced {} written {} data {} allocated {}",
        seg.synced_end,
        seg.written_end,
        seg.data_end,
        seg.allocated_end
    );
    let len = faults.on_disk().len() as u64;
    assert!(
        len <= seg.allocated_end,
        "the file is {len} bytes, past allocated_end {}",
        seg.allocated_end
    );
}

/// Every entry reads back whole, in order.
fn assert_reads(seg: &mut Segment<FaultyFile>, payloads: &[&str]) {
    assert_eq!(seg.entries(), payloads.len() as u64);
    for (i, p) in payloads.iter().enumerate() {
        let entry = seg.read(i as u64).unwrap().expect("an entry");
        assert!(entry.checksum_valid, "entry {i}");
        assert_eq!(entry.payload, p.as_bytes(), "entry {i}");
    }
}

/// The file is exactly `payloads`' frames, then only zeros.
fn assert_frames_then_zeros(faults: &Faults, payloads: &[&str]) {
    let disk = faults.on_disk();
    let want = frames(payloads);
    assert!(disk.len() >= want.len(), "the file is cut short");
    assert_eq!(&disk[..want.len()], &want[..]);
    assert!(disk[want.len()..].iter().all(|&b| b == 0), "not zeros");
}

#[test]
fn a_failed_write_rolls_back_to_the_durable_end() {
    let (mut seg, faults) = durable(&["one", "two"]);
    seg.append(b"three");
    seg.append(b"four");
    faults.fail_write(1);
    let err = seg.commit().unwrap_err();
    assert!(matches!(err, LogError::Write(_)), "{err}");
    assert!(err.is_definite());
    assert!(!seg.all_durable());
    assert_sound(&seg, &faults);

    assert_eq!(seg.rollback().unwrap(), 2, "the first entry undone");
    assert_eq!(faults.on_disk(), frames(&["one", "two"]));
    assert!(seg.all_durable());
    assert_sound(&seg, &faults);

    assert_eq!(seg.append(b"five").offset, 2);
    seg.commit().unwrap();
    assert_eq!(faults.on_disk(), frames(&["one", "two", "five"]));
    assert_reads(&mut seg, &["one", "two", "five"]);
    assert_sound(&seg, &faults);
}

#[test]
fn after_a_failed_write_nothing_is_written_until_rollback() {
    let (mut seg, faults) = durable(&["one"]);
    seg.append(b"two");
    faults.short_write(1, 5);
    seg.commit().unwrap_err();
    // The batch's place on disk holds part of it: writing it again
    // anywhere, or committing, would put frames after half a frame.
    let writes = faults.calls().writes;
    let err = seg.commit().unwrap_err();
    assert!(
        matches!(err, LogError::Write(_)) && err.is_definite(),
        "{err}"
    );
    assert!(matches!(seg.seal_data(), Err(LogError::Write(_))));
    assert_eq!(faults.calls().writes, writes, "written again");
    assert!(!seg.all_durable());
    assert_sound(&seg, &faults);

    assert_eq!(seg.rollback().unwrap(), 1);
    seg.append(b"three");
    seg.commit().unwrap();
    assert_eq!(faults.on_disk(), frames(&["one", "three"]));
    assert_sound(&seg, &faults);
}

#[test]
fn a_short_write_is_cut_by_rollback_at_every_length() {
    let batch = frames(&["second entry", "third"]);
    for kept in 1..batch.len() {
        let (mut seg, faults) = durable(&["first"]);
        seg.extend_ahead(SMALL_LIMIT, &mut Vec::new()).unwrap();
        seg.append(b"second entry");
        seg.append(b"third");
        faults.short_write(1, kept);
        let err = seg.commit().unwrap_err();
        assert!(
            matches!(err, LogError::Write(_)) && err.is_definite(),
            "{err}"
        );
        let durable_end = frames(&["first"]).len();
        let disk = faults.on_disk();
        assert_eq!(&disk[durable_end..durable_end + kept], &batch[..kept]);
        assert_sound(&seg, &faults);

        assert_eq!(seg.rollback().unwrap(), 1);
        // Half a frame, and the zeros ahead, are gone.
        assert_eq!(faults.on_disk(), frames(&["first"]), "kept {kept}");
        assert_sound(&seg, &faults);

        seg.append(b"fourth");
        seg.commit().unwrap();
        assert_eq!(faults.on_disk(), frames(&["first", "fourth"]));
        assert_reads(&mut seg, &["first", "fourth"]);
    }
}

#[test]
fn a_failed_sync_is_indefinite_and_not_durable() {
    let (mut seg, faults) = durable(&["one"]);
    seg.append(b"two");
    faults.fail_sync(1);
    let err = seg.commit().unwrap_err();
    assert!(matches!(err, LogError::Sync(_)), "{err}");
    assert!(!err.is_definite());
    assert!(!seg.all_durable());
    assert!(!seg.synced_through(seg.bytes()));
    assert_sound(&seg, &faults);
}

#[test]
fn after_a_failed_sync_no_sync_is_tried_and_nothing_is_durable() {
    let (mut seg, faults) = durable(&["one"]);
    seg.append(b"two");
    faults.fail_sync(1);
    seg.commit().unwrap_err();
    // The kernel may have dropped the unsynced pages: a later sync that
    // succeeds proves nothing, so none is made and none reports success.
    let syncs = faults.calls().syncs;
    let err = seg.commit().unwrap_err();
    assert!(matches!(err, LogError::Sync(_)), "{err}");
    seg.append(b"three");
    assert!(matches!(seg.commit(), Err(LogError::Sync(_))));
    assert!(matches!(seg.seal_data(), Err(LogError::Sync(_))));
    assert_eq!(faults.calls().syncs, syncs, "a sync was retried");
    assert!(!seg.all_durable());
    assert_sound(&seg, &faults);
}

#[test]
fn a_failed_rollback_truncate_is_a_sync_failure() {
    let (mut seg, faults) = durable(&["one"]);
    seg.append(b"two");
    faults.short_write(1, 3);
    seg.commit().unwrap_err();
    faults.fail_set_len(1);
    let err = seg.rollback().unwrap_err();
    assert!(matches!(err, LogError::Sync(_)), "{err}");
    assert!(!err.is_definite());
    assert_sound(&seg, &faults);
    // Half a frame may still be there: nothing after it is ever durable.
    seg.append(b"three");
    assert!(matches!(seg.commit(), Err(LogError::Sync(_))));
    assert!(!seg.all_durable());
}

#[test]
fn a_failed_sync_after_the_rollback_truncate_is_a_sync_failure() {
    let (mut seg, faults) = durable(&["one"]);
    seg.append(b"two");
    faults.fail_write(1);
    seg.commit().unwrap_err();
    faults.fail_sync(1);
    let err = seg.rollback().unwrap_err();
    assert!(
        matches!(err, LogError::Sync(_)) && !err.is_definite(),
        "{err}"
    );
    assert_sound(&seg, &faults);
}

#[test]
fn a_failed_preallocation_puts_the_file_back_and_appends_still_work() {
    // A small log is given 1 MiB of room, one 1 MiB write of zeros: it
    // fails outright, or part way.
    for fault in [Faults::fail_write as fn(&Faults, u64), |f, n| {
        f.short_write(n, 1000)
    }] {
        let (mut seg, faults) = durable(&["one"]);
        fault(&faults, 1);
        let mut events = Vec::new();
        seg.extend_ahead(3 << 20, &mut events).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::PreallocFailed);
        assert_eq!(faults.on_disk(), frames(&["one"]), "the file put back");
        assert_sound(&seg, &faults);

        // No new attempt until the data has grown by a chunk.
        let writes = faults.calls().writes;
        seg.extend_ahead(3 << 20, &mut events).unwrap();
        assert_eq!((faults.calls().writes, events.len()), (writes, 1));

        seg.append(b"two");
        let syncs = faults.calls().syncs;
        seg.commit().unwrap();
        assert_eq!(faults.calls().syncs, syncs + 1, "the append synced");
        assert!(seg.all_durable());
        assert_eq!(faults.on_disk(), frames(&["one", "two"]));
        assert_reads(&mut seg, &["one", "two"]);
        assert_sound(&seg, &faults);
    }
}

#[test]
fn a_preallocation_that_cannot_be_put_back_still_seals_exactly() {
    let (mut seg, faults) = durable(&["one"]);
    // Some zeros reach the file, then neither the write nor the cut back
    // succeeds: the file is longer than the data by an unknown amount.
    faults.short_write(1, 100);
    faults.fail_set_len(1);
    let mut events = Vec::new();
    seg.extend_ahead(SMALL_LIMIT, &mut events).unwrap();
    assert_eq!(events[0].kind, EventKind::PreallocFailed);
    assert_sound(&seg, &faults);

    // Sealing must still leave exactly the frames, as the index will say.
    seg.append(b"two");
    seg.seal_data().unwrap();
    assert_eq!(faults.on_disk(), frames(&["one", "two"]));
    assert_sound(&seg, &faults);
}

#[test]
fn a_failed_preallocation_sync_is_indefinite() {
    let (mut seg, faults) = durable(&["one"]);
    faults.fail_sync(1);
    let err = seg.extend_ahead(SMALL_LIMIT, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(err, LogError::Sync(_)) && !err.is_definite(),
        "{err}"
    );
    // The zeros were written, synced or not: the file is that long.
    assert_sound(&seg, &faults);
}

#[test]
fn a_failed_seal_truncate_is_definite_and_leaves_the_segment_usable() {
    let (mut seg, faults) = durable(&["one"]);
    seg.extend_ahead(SMALL_LIMIT, &mut Vec::new()).unwrap();
    assert_eq!(faults.on_disk().len() as u64, SMALL_LIMIT);
    seg.append(b"two");
    faults.fail_set_len(1);
    let err = seg.seal_data().unwrap_err();
    assert!(matches!(err, LogError::Write(_)), "{err}");
    assert!(err.is_definite());
    assert_sound(&seg, &faults);
    assert_frames_then_zeros(&faults, &["one", "two"]);

    // As the log does after a failed write: undo what is not durable.
    assert_eq!(seg.rollback().unwrap(), 1);
    assert_sound(&seg, &faults);
    seg.append(b"three");
    seg.commit().unwrap();
    seg.extend_ahead(SMALL_LIMIT, &mut Vec::new()).unwrap();
    seg.append(b"four");
    seg.seal_data().unwrap();
    assert_eq!(faults.on_disk(), frames(&["one", "three", "four"]));
    assert!(seg.all_durable());
    assert_reads(&mut seg, &["one", "three", "four"]);
    assert_sound(&seg, &faults);
}

#[test]
fn a_failed_read_fails_that_read_only() {
    let (mut seg, faults) = durable(&["one", "two"]);
    faults.fail_read(1);
    let err = seg.read(1).unwrap_err();
    assert!(
        matches!(err, LogError::Read(_)) && err.is_definite(),
        "{err}"
    );
    assert!(seg.all_durable());
    assert_reads(&mut seg, &["one", "two"]);
    assert_sound(&seg, &faults);
}
