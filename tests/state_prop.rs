//! Property (issue 10), on the library: any interleaving of appends,
//! commits, snapshots, compactions and crashes gives, after recovery, the
//! state of the entries the log kept, which always include every committed
//! one, and every offset from the first one on reads back as appended.
//!
//! A crash drops the `Log` without committing: appends still pending are
//! lost, unless something (a roll, a read) already wrote them, in which
//! case the page cache keeps them as it would after a process kill. So the
//! log after a crash holds a prefix of what was appended, at least what was
//! committed. A crash inside a compaction is modelled by putting back any
//! subset of the files it deleted (a power loss before the directory sync
//! can keep any of them); a crash inside a snapshot, by a half-written
//! temporary file.

mod common;
mod crash_support;

use crash_support::{MAX_ENTRY, model_state};
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::BTreeMap;
use std::path::Path;
use wal_node::log::{CompactError, Log, Options, Recover};
use wal_node::state::State;

const SEGMENT_BYTES: u64 = 1024;

#[derive(Debug, Clone)]
enum Op {
    Append(String),
    Commit,
    /// Reading an entry writes pending appends out (not synced).
    Read(f64),
    Snapshot,
    /// Compact before a point between the first offset and the newest
    /// snapshot (a fraction of the way), or past it, which is refused.
    Compact(f64),
    Crash,
    /// Compact, then crash with `mask` choosing which deleted files were
    /// still there.
    CrashInCompaction(f64, u64),
    /// Crash while a snapshot's temporary file was being written.
    CrashInSnapshot(Vec<u8>),
}

fn payload() -> impl Strategy<Value = String> {
    let key = 0..6u8;
    prop_oneof![
        4 => (key.clone(), 0..200usize).prop_map(|(k, n)| format!("set k{k}={}", "v".repeat(n))),
        1 => key.prop_map(|k| format!("del k{k}")),
        1 => "[a-z ]{1,40}",
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => payload().prop_map(Op::Append),
        3 => Just(Op::Commit),
        1 => (0.0..1.0f64).prop_map(Op::Read),
        3 => Just(Op::Snapshot),
        2 => (0.0..1.2f64).prop_map(Op::Compact),
        1 => Just(Op::Crash),
        3 => (0.3..1.0f64, any::<u64>()).prop_map(|(f, m)| Op::CrashInCompaction(f, m)),
        1 => prop::collection::vec(any::<u8>(), 0..100).prop_map(Op::CrashInSnapshot),
    ]
}

fn options() -> Options {
    Options {
        max_entry_bytes: MAX_ENTRY,
        recover: Recover::Refuse,
        max_segment_bytes: Some(SEGMENT_BYTES),
    }
}

fn open(dir: &Path) -> Result<Log, TestCaseError> {
    Log::open(dir, options()).map_err(|e| TestCaseError::fail(format!("open refused: {e}")))
}

/// What the test knows: every payload appended (offset = index), how many
/// are committed, the first offset, the newest snapshot.
struct Model {
    appended: Vec<String>,
    committed: usize,
    first: u64,
    newest_snapshot: Option<u64>,
}

impl Model {
    fn state(&self, end: usize) -> BTreeMap<String, String> {
        model_state(self.appended[..end].iter().map(String::as_str))
    }
}

/// The state the node would rebuild: the newest snapshot, then the entries
/// after it.
fn rebuilt_state(log: &mut Log) -> Result<BTreeMap<String, String>, TestCaseError> {
    let (mut state, from) = log
        .base_state()
        .map_err(|e| TestCaseError::fail(format!("base state: {e}")))?;
    prop_assert!(
        from >= log.first_offset(),
        "the state is rebuilt from offset {from}, before the first offset {}",
        log.first_offset()
    );
    for offset in from..log.next_offset() {
        let entry = log.read(offset).unwrap().expect("an entry in the log");
        prop_assert!(entry.checksum_valid, "entry {offset} fails its checksum");
        state.apply(&entry.payload);
    }
    Ok(state.as_map().clone())
}

/// Reopens after a crash and checks the log against the model, which it
/// then follows: what the log kept of the pending appends stays.
fn recover(dir: &Path, model: &mut Model, what: &str) -> Result<Log, TestCaseError> {
    let mut log = open(dir)?;
    let end = log.next_offset() as usize;
    prop_assert!(
        (model.committed..=model.appended.len()).contains(&end),
        "{what}: the log ends at {end}; {} were committed, {} appended",
        model.committed,
        model.appended.len()
    );
    prop_assert_eq!(log.first_offset(), model.first, "{}: first offset", what);
    for offset in 0..model.first {
        prop_assert!(
            log.read(offset).unwrap().is_none(),
            "{what}: compacted entry {offset} is served"
        );
    }
    for offset in model.first..end as u64 {
        let entry = log.read(offset).unwrap().expect("an entry in the log");
        prop_assert!(entry.checksum_valid, "{what}: entry {offset}");
        prop_assert_eq!(
            &entry.payload,
            model.appended[offset as usize].as_bytes(),
            "{}: entry {}",
            what,
            offset
        );
    }
    let frames: usize = model.appended[model.first as usize..end]
        .iter()
        .map(|p| 8 + p.len())
        .sum();
    prop_assert_eq!(log.total_bytes(), frames as u64, "{}: total bytes", what);
    prop_assert_eq!(
        rebuilt_state(&mut log)?,
        model.state(end),
        "{}: state",
        what
    );
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    prop_assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "{what}: a temporary file survived the open: {names:?}"
    );
    let mut starts: Vec<u64> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".log")?.parse().ok())
        .collect();
    starts.sort_unstable();
    prop_assert!(
        starts.windows(2).all(|w| w[1] > model.first),
        "{what}: a segment wholly before offset {} is left: {names:?}",
        model.first
    );
    model.appended.truncate(end);
    model.committed = end;
    Ok(log)
}

fn state_of(payloads: &[String]) -> State {
    let mut state = State::default();
    for p in payloads {
        state.apply(p.as_bytes());
    }
    state
}

/// The file names and bytes in `dir`.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Compacts before a point `f` of the way from the first offset to the
/// newest snapshot (past it when `f` > 1: refused).
fn compact(log: &mut Log, model: &mut Model, f: f64) -> Result<(), TestCaseError> {
    let end = model.appended.len() as u64;
    let Some(newest) = model.newest_snapshot else {
        let n = model.first + ((end - model.first) as f64 * f.min(1.0)) as u64;
        prop_assert!(
            matches!(
                log.compact(n),
                Err(CompactError::NotCovered { newest: None })
            ),
            "compacting before {n} without a snapshot must be refused"
        );
        return Ok(());
    };
    let n = model.first + ((newest - model.first) as f64 * f) as u64;
    let result = log.compact(n);
    if n > end {
        prop_assert!(matches!(result, Err(CompactError::PastEnd { .. })), "n {n}");
    } else if n > newest {
        prop_assert!(
            matches!(result, Err(CompactError::NotCovered { newest: Some(s) }) if s == newest),
            "compacting before {n} with a snapshot at {newest}"
        );
    } else {
        let c = result.map_err(|e| TestCaseError::fail(format!("compact {n}: {e:?}")))?;
        let before = end - model.first;
        model.first = model.first.max(n);
        prop_assert_eq!(
            (c.snapshot_offset, c.entries_before, c.entries_after),
            (newest, before, end - model.first)
        );
        prop_assert_eq!(log.first_offset(), model.first);
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("n1");
    let mut log = open(&dir)?;
    let mut model = Model {
        appended: Vec::new(),
        committed: 0,
        first: 0,
        newest_snapshot: None,
    };
    for (i, op) in ops.into_iter().enumerate() {
        let what = format!("after op {i} ({op:?})");
        match op {
            Op::Append(p) => {
                let a = log.append(p.as_bytes()).unwrap();
                prop_assert_eq!(a.offset, model.appended.len() as u64, "{}", what);
                model.appended.push(p);
            }
            Op::Commit => {
                log.commit().unwrap();
                model.committed = model.appended.len();
            }
            Op::Read(f) => {
                let end = model.appended.len() as u64;
                if end > model.first {
                    let offset = model.first + ((end - model.first) as f64 * f) as u64;
                    let entry = log.read(offset).unwrap().expect("an entry");
                    prop_assert_eq!(&entry.payload, model.appended[offset as usize].as_bytes());
                }
            }
            Op::Snapshot => {
                let state = state_of(&model.appended);
                let (offset, _) = log.write_snapshot(&state).unwrap();
                prop_assert_eq!(offset, model.appended.len() as u64, "{}", what);
                model.committed = model.appended.len();
                model.newest_snapshot = Some(offset);
            }
            Op::Compact(f) => compact(&mut log, &mut model, f)?,
            Op::Crash => {
                drop(log);
                log = recover(&dir, &mut model, &what)?;
            }
            Op::CrashInCompaction(f, mask) => {
                let before = files(&dir);
                compact(&mut log, &mut model, f)?;
                drop(log);
                let after = files(&dir);
                let gone = before.iter().filter(|(name, _)| !after.contains_key(*name));
                for (k, (name, bytes)) in gone.enumerate() {
                    if mask >> (k % 64) & 1 == 1 {
                        std::fs::write(dir.join(name), bytes).unwrap();
                    }
                }
                log = recover(&dir, &mut model, &what)?;
            }
            Op::CrashInSnapshot(bytes) => {
                let name = format!("{:020}.snapshot.tmp", model.appended.len());
                drop(log);
                std::fs::write(dir.join(name), bytes).unwrap();
                log = recover(&dir, &mut model, &what)?;
            }
        }
    }
    drop(log);
    recover(&dir, &mut model, "at the end")?;
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn any_interleaving_recovers_the_state_of_the_log_it_kept(
        ops in prop::collection::vec(op(), 1..150),
    ) {
        run(ops)?;
    }
}

/// A case a reader can follow: snapshot, compaction inside a sealed
/// segment, a crash in the middle of its deletes, a crash with appends
/// pending, a torn snapshot.
#[test]
fn a_fixed_interleaving() {
    let set = |i: usize| Op::Append(format!("set k{}={}", i % 4, "x".repeat(90)));
    let mut ops: Vec<Op> = (0..35).map(set).collect();
    ops.extend([Op::Snapshot, Op::CrashInCompaction(0.7, 0b1010), set(35)]);
    ops.extend([Op::Append("del k1".into()), Op::Crash, set(36), Op::Commit]);
    ops.extend([Op::CrashInSnapshot(b"walsnaps".to_vec()), Op::Snapshot]);
    ops.extend([Op::Compact(1.0), set(37), Op::Commit, Op::Crash]);
    if let Err(e) = run(ops) {
        panic!("{e}");
    }
}

/// A private log (no `--dir`: every golden case) keeps its sealed segments
/// only as open, unlinked files. A compaction that leaves one of them must
/// not lose it.
#[test]
fn a_private_log_compacted_inside_a_sealed_segment_still_reads_it() {
    let mut log = Log::private(options()).unwrap();
    let payload = |i: usize| format!("set k{i}={}", "x".repeat(85));
    let mut payloads = Vec::new();
    for i in 0..35 {
        payloads.push(payload(i));
        log.append(payloads[i].as_bytes()).unwrap();
    }
    log.write_snapshot(&state_of(&payloads)).unwrap();
    // 100-byte frames, 10 to a segment: 25 lies in the sealed [20, 30).
    let c = log.compact(25).unwrap();
    assert_eq!((c.entries_before, c.entries_after), (35, 10));
    for offset in 25..35 {
        let entry = log.read(offset).unwrap().expect("an entry");
        assert_eq!(entry.payload, payloads[offset as usize].as_bytes());
    }
}
