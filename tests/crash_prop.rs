//! Property (issue 3): random appends and commits, then a crash modelled as
//! a cut at a random byte of what was written but not yet synced, maybe
//! followed by zeros or garbage. Replay never loses an entry wholly written
//! before the cut, never invents one, never refuses to open, and saves
//! whatever it cuts.

mod common;
mod crash_support;

use crash_support::Rng;
use crash_support::*;
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::fs::OpenOptions;
use wal_node::log::Segment as Wal;
use wal_node::recovery::{self, Tail};

#[derive(Debug, Clone, Copy)]
enum After {
    /// The file ends at the cut.
    Nothing,
    /// Zeros: the preallocated space the write never reached.
    Zeros(usize),
    /// Bytes that were never a frame.
    Garbage(usize),
    Both(usize, usize),
}

fn after() -> impl Strategy<Value = After> {
    prop_oneof![
        Just(After::Nothing),
        (1usize..5000).prop_map(After::Zeros),
        (1usize..600).prop_map(After::Garbage),
        (1usize..600, 1usize..5000).prop_map(|(g, z)| After::Both(g, z)),
    ]
}

/// Writes the log with the library: `committed` batches (each committed,
/// so synced), then `unsynced` appends written to the file but not synced.
/// Returns the file's bytes, every payload, where each frame ends, and where
/// the durable (synced) data ends.
fn write_log(
    dir: &std::path::Path,
    committed: &[Vec<usize>],
    unsynced: &[usize],
    rng: &mut Rng,
) -> (Vec<u8>, Vec<Vec<u8>>, Vec<u64>, u64) {
    let path = dir.join("written.wal");
    // Start from a zero-filled file (sparse, so free to make) as the node's
    // preallocation leaves it, so no 16 MiB zero-fill runs per case.
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let mut wal = open(&path);
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut ends: Vec<u64> = Vec::new();
    let mut append = |wal: &mut Wal, len: usize| {
        let p = rng.bytes(len);
        let a = wal.append(&p);
        assert_eq!(a.offset, payloads.len() as u64, "append's offset");
        ends.push(ends.last().unwrap_or(&0) + (HEADER + len) as u64);
        payloads.push(p);
    };
    let mut durable = 0;
    for batch in committed {
        for &len in batch {
            append(&mut wal, len);
        }
        wal.commit().unwrap();
        durable = wal.bytes();
    }
    for &len in unsynced {
        append(&mut wal, len);
    }
    wal.write_pending().unwrap();
    assert_eq!(wal.bytes(), *ends.last().unwrap_or(&0));
    drop(wal);
    let bytes = std::fs::read(&path).unwrap();
    (bytes, payloads, ends, durable)
}

fn check_crash(
    committed: Vec<Vec<usize>>,
    unsynced: Vec<usize>,
    cut_at: f64,
    after: After,
    seed: u64,
    commit_after: bool,
) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let dir = tempdir();
    let (bytes, payloads, ends, durable) = write_log(dir.path(), &committed, &unsynced, &mut rng);
    let written = *ends.last().unwrap_or(&0);
    // Only bytes not yet synced can be lost: cut between the two.
    let cut = durable + ((written - durable) as f64 * cut_at) as u64;
    let mut image = bytes[..cut as usize].to_vec();
    match after {
        After::Nothing => {}
        After::Zeros(z) => image.resize(image.len() + z, 0),
        After::Garbage(g) => image.extend(rng.bytes(g)),
        After::Both(g, z) => {
            image.extend(rng.bytes(g));
            image.resize(image.len() + z, 0);
        }
    }
    let whole = ends.iter().filter(|&&e| e <= cut).count() as u64;
    let synced = ends.iter().filter(|&&e| e <= durable).count() as u64;
    let what = format!(
        "{} entries ({synced} synced, ending at byte {durable}), written to byte {written}, cut \
         at {cut} ({whole} whole frames before it), then {after:?}",
        payloads.len()
    );

    let log = dir.path().join("n1.wal");
    std::fs::write(&log, &image).unwrap();

    // The classifier alone.
    let file = std::fs::File::open(&log).unwrap();
    let report = recovery::scan(&file, image.len() as u64, 0, 0, MAX_ENTRY, |_| {})
        .map_err(|e| TestCaseError::fail(format!("{what}: scan failed: {e}")))?;
    drop(file);
    prop_assert!(
        !matches!(report.tail, Tail::BrokenFraming { .. }),
        "{what}: a crash's torn tail was taken for damaged acknowledged data: {report:?}"
    );
    prop_assert_eq!(report.corrupt_entries, 0, "{}: {:?}", what, report);

    // Replay as the node does it.
    let (mut wal, cut_report, _) = Wal::open_file(&log, opts())
        .map_err(|e| TestCaseError::fail(format!("{what}: replay refused the log: {e}")))?;
    let entries = wal.entries();
    prop_assert_eq!(
        entries,
        report.entries(),
        "{}: scan and open disagree",
        what
    );
    prop_assert!(
        entries >= whole,
        "{}: lost entries: {} of the {} whole frames before the cut remain",
        what,
        entries,
        whole
    );
    prop_assert!(
        entries <= payloads.len() as u64,
        "{}: {} entries, more than the {} ever appended",
        what,
        entries,
        payloads.len()
    );
    for i in 0..entries {
        let e = wal.read(i).unwrap().unwrap();
        prop_assert!(e.checksum_valid, "{}: entry {} reads back invalid", what, i);
        prop_assert!(
            e.payload == payloads[i as usize],
            "{}: entry {} is not what was appended at that offset",
            what,
            i
        );
    }
    prop_assert_eq!(wal.corrupt_entries(), 0, "{}", what);

    // What was cut is saved beside the log: everything up to its last
    // non-zero byte, as it was.
    let at = if entries == 0 {
        0
    } else {
        ends[entries as usize - 1]
    };
    let cut_bytes = &image[at as usize..];
    let torn = torn_files(&log);
    if trim_zeros(cut_bytes).is_empty() {
        prop_assert!(
            torn.is_empty(),
            "{}: saved {:?} for a zero tail",
            what,
            torn
        );
    } else {
        prop_assert_eq!(
            &torn,
            &vec![torn_path(&log, at)],
            "{}: the cut bytes must be saved at the cut's offset",
            what
        );
        let saved = std::fs::read(&torn[0]).unwrap();
        prop_assert!(
            saved.len() >= trim_zeros(cut_bytes).len()
                && saved.len() <= cut_bytes.len()
                && saved[..] == cut_bytes[..saved.len()],
            "{}: the saved file ({} bytes) does not hold the {} cut bytes up to the last non-zero \
             one",
            what,
            saved.len(),
            trim_zeros(cut_bytes).len()
        );
        prop_assert!(
            cut_report.is_some(),
            "{}: open cut without reporting it",
            what
        );
    }

    // The log goes on from there. (Committing may preallocate a 16 MiB
    // chunk, tens of ms: only the fixed cases go that far.)
    let a = wal.append(b"after the crash");
    prop_assert_eq!(a.offset, entries, "{}: next append's offset", what);
    if !commit_after {
        return Ok(());
    }
    wal.commit().unwrap();
    drop(wal);
    let mut wal = open(&log);
    prop_assert_eq!(wal.entries(), entries + 1, "{}: after reopen", what);
    let e = wal.read(entries).unwrap().unwrap();
    prop_assert!(
        e.checksum_valid && e.payload == b"after the crash",
        "{}",
        what
    );
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn a_crash_never_loses_a_whole_entry_nor_invents_one(
        committed in prop::collection::vec(prop::collection::vec(1usize..300, 1..6), 0..6),
        unsynced in prop::collection::vec(1usize..300, 0..8),
        cut_at in 0.0f64..=1.0,
        after in after(),
        seed in any::<u64>(),
    ) {
        check_crash(committed, unsynced, cut_at, after, seed, false)?;
    }
}

/// The same model on fixed cases a reader can follow.
#[test]
fn fixed_crashes() {
    let cases = [
        // A cut inside the first unsynced frame's header, then zeros.
        (vec![vec![10, 20]], vec![30, 40], 0.05, After::Zeros(100)),
        // Nothing synced, everything written, cut in the middle.
        (vec![], vec![100, 200, 50], 0.5, After::Nothing),
        // Everything written survives, garbage after it.
        (vec![vec![5]], vec![7, 9], 1.0, After::Garbage(64)),
        // A cut right at the durable end, then garbage and zeros.
        (vec![vec![1, 2, 3]], vec![250], 0.0, After::Both(20, 4096)),
    ];
    for (committed, unsynced, cut_at, after) in cases {
        if let Err(e) = check_crash(committed, unsynced, cut_at, after, 42, true) {
            panic!("{e}");
        }
    }
}
