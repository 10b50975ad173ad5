//! `inspect`'s choice of rows and bytes on logs the real node wrote: ranges
//! of offsets (`--from`, `--to`, `--limit`), filters (`--status`,
//! `--prefix`), exact bytes (`--hex`, JSON `payload_hex`); and the tools'
//! way of naming a log as the node does (`--dir`, `--node`, `WAL_DIR`).
//!
//! The logs (`common::logs`) have 1 KiB segments of 9 entries each:
//! segments 0 (entries 0-8) and 9 (9-17) sealed, 18 (18, 19) active.

mod common;

use common::cli::{code, ok_stdout, run, stderr, stdout, tool, wal_node};
use common::logs::{self, FRAME_BYTES, PER_SEGMENT};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

// ---- Reading inspect --json ------------------------------------------------------

/// `inspect --json <args> <log>`, one value per line.
fn inspect_json(args: &[&str], dir: &Path) -> Vec<Value> {
    let mut all = vec!["inspect", "--json"];
    all.extend_from_slice(args);
    ok_stdout(&tool(&all, dir))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The indexes of the frame lines.
fn frame_indexes(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l["type"] == "frame")
        .map(|l| l["index"].as_u64().unwrap())
        .collect()
}

/// The statuses of the frame lines, and `damage` for damaged ranges.
fn statuses(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| match l["type"].as_str().unwrap() {
            "frame" => Some(l["status"].as_str().unwrap().to_owned()),
            "damage" => Some("damage".to_owned()),
            _ => None,
        })
        .collect()
}

/// The start offsets of the segments whose `segment` line was written:
/// the segments read.
fn segments_read(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l["type"] == "segment")
        .map(|l| l["start_offset"].as_u64().unwrap())
        .collect()
}

fn summary(lines: &[Value]) -> &Value {
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "summary");
    last
}

// ---- Logs, their bytes, and proof of what was read -----------------------------

/// 20 entries with bit rot in entry 4 (sealed segment 0) and a torn write
/// after entry 19 (active segment 18, at byte 216): every frame status.
fn rotten_and_torn(root: &Path) -> PathBuf {
    let dir = logs::torn_tail(root);
    logs::rot(&dir, 4);
    dir
}

/// Byte position of entry `i`'s frame in its segment.
fn frame_pos(i: u64) -> u64 {
    (i % PER_SEGMENT) * FRAME_BYTES
}

/// A clean log of 20 entries whose entry 11 (sealed segment 9, byte 216)
/// has a length word no frame can have: broken framing, one damaged range,
/// whole frames resuming at entry 12.
fn broken_framing(root: &Path) -> PathBuf {
    let dir = logs::clean(root, 20);
    let path = logs::segment(&dir, 9);
    let mut bytes = fs::read(&path).unwrap();
    let pos = frame_pos(11) as usize;
    bytes[pos..pos + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&path, bytes).unwrap();
    dir
}

/// Makes entry 19's payload invalid UTF-8 (one byte 0xff) under a
/// checksum that matches it: an intact frame whose bytes no JSON string
/// holds. Returns the new payload.
fn non_utf8_entry_19(dir: &Path) -> Vec<u8> {
    let path = logs::segment(dir, 18);
    let mut bytes = fs::read(&path).unwrap();
    let pos = frame_pos(19) as usize;
    let payload = pos + 8..pos + 8 + 100;
    bytes[payload.start + 20] = 0xff;
    let crc = crc32fast::hash(&bytes[payload.clone()]);
    bytes[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    bytes[payload].to_vec()
}

/// The `length` payload bytes of the frame at byte `pos` of `file`, as the
/// file holds them.
fn payload_in_file(file: &Path, pos: u64, length: u64) -> Vec<u8> {
    let bytes = fs::read(file).unwrap();
    bytes[(pos + 8) as usize..(pos + 8 + length) as usize].to_vec()
}

fn unhex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "{hex}");
    (0..hex.len())
        .step_by(2)
        .map(|k| u8::from_str_radix(&hex[k..k + 2], 16).unwrap())
        .collect()
}

/// Replaces the segment file starting at `start` with a directory: a tool
/// that tries to read it fails, so one that succeeds skipped it unread.
fn make_unreadable(dir: &Path, start: u64) {
    let path = logs::segment(dir, start);
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
}

/// Bytes (none for a directory) and mtime, by path.
type Tree = BTreeMap<PathBuf, (Option<Vec<u8>>, SystemTime)>;

/// Every file and directory under `root`, recursively.
fn tree(root: &Path) -> Tree {
    let mut all = BTreeMap::new();
    for entry in fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::metadata(&path).unwrap();
        let bytes = (!meta.is_dir()).then(|| fs::read(&path).unwrap());
        if meta.is_dir() {
            all.extend(tree(&path));
        }
        all.insert(path, (bytes, meta.modified().unwrap()));
    }
    all
}

/// Sets every file under `root` an hour back, so that a write would show.
fn age(root: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    for path in tree(root).keys() {
        if path.is_file() {
            let f = fs::File::options().write(true).open(path).unwrap();
            f.set_modified(old).unwrap();
        }
    }
}

// ---- Ranges ----------------------------------------------------------------------

#[test]
fn from_and_to_are_inclusive_across_segment_boundaries() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 20);
    for (from, to, want) in [
        ("7", "10", vec![7, 8, 9, 10]),
        ("8", "9", vec![8, 9]),
        ("9", "9", vec![9]),
        ("17", "18", vec![17, 18]),
        ("0", "19", (0..20).collect()),
        ("15", "99", (15..20).collect()),
        ("20", "30", vec![]),
    ] {
        let lines = inspect_json(&["--from", from, "--to", to], &dir);
        assert_eq!(frame_indexes(&lines), want, "--from {from} --to {to}");
        for l in lines.iter().filter(|l| l["type"] == "frame") {
            let i = l["index"].as_u64().unwrap();
            assert_eq!(l["offset"], frame_pos(i), "entry {i}'s byte position");
            assert_eq!(l["payload"], logs::payload(i));
        }
    }
    let lines = inspect_json(&["--to", "2"], &dir);
    assert_eq!(frame_indexes(&lines), [0, 1, 2], "--to alone starts at 0");
}

#[test]
fn segments_outside_the_range_are_skipped_unread() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 20);
    make_unreadable(&dir, 0);
    make_unreadable(&dir, 18);
    let out = tool(&["inspect", "--json"], &dir);
    assert_eq!(code(&out), 2, "reading every segment fails");
    let out = tool(&["inspect", "--json", "--from", "8", "--to", "17"], &dir);
    assert_eq!(code(&out), 2, "entry 8 is in segment 0");
    let out = tool(&["inspect", "--json", "--from", "9", "--to", "18"], &dir);
    assert_eq!(code(&out), 2, "entry 18 is in segment 18");

    // Segment 9 is entries 9 to 17: only it is read.
    let lines = inspect_json(&["--from", "9", "--to", "17"], &dir);
    assert_eq!(frame_indexes(&lines), (9..18).collect::<Vec<_>>());
    assert_eq!(segments_read(&lines), [9]);
    let s = summary(&lines);
    assert_eq!(
        (s["segments"].as_u64(), s["segments_read"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(s["entries"], 9, "the summary covers the segments read");
    assert_eq!(s["total_bytes"], 9 * FRAME_BYTES);

    let table = ok_stdout(&tool(&["inspect", "--from", "9", "--to", "17"], &dir));
    assert!(table.contains("segments:    1 of 3 read"), "{table}");
}

#[test]
fn the_limit_counts_rows_shown_and_stops_reading_with_to() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 20);
    // Within the range, the limit ends the rows first.
    let lines = inspect_json(&["--from", "7", "--to", "15", "--limit", "3"], &dir);
    assert_eq!(frame_indexes(&lines), [7, 8, 9]);
    // Within the limit, the range does.
    let lines = inspect_json(&["--from", "7", "--to", "10", "--limit", "30"], &dir);
    assert_eq!(frame_indexes(&lines), [7, 8, 9, 10]);
    let lines = inspect_json(&["--from", "5", "--to", "15", "--limit", "0"], &dir);
    assert_eq!(frame_indexes(&lines), Vec::<u64>::new());

    // The limit reached in segment 0, no later segment is read.
    make_unreadable(&dir, 9);
    make_unreadable(&dir, 18);
    let lines = inspect_json(&["--from", "2", "--to", "15", "--limit", "3"], &dir);
    assert_eq!(frame_indexes(&lines), [2, 3, 4]);
    assert_eq!(segments_read(&lines), [0]);
    let out = tool(
        &[
            "inspect", "--json", "--from", "2", "--to", "15", "--limit", "8",
        ],
        &dir,
    );
    assert_eq!(code(&out), 2, "an eighth row needs segment 9");
}

#[test]
fn from_below_the_first_offset_of_a_compacted_log_starts_at_its_oldest_frame() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::compacted(root.path());
    // The meta says entries before 30 are gone, but the segment holding 30
    // (from 27) stays whole until a later compaction passes its end: its
    // frames 27 to 29 are still in the file, and inspect shows the file.
    let lines = inspect_json(&["--from", "0"], &dir);
    assert_eq!(lines[0]["first_offset"], 30);
    assert_eq!(segments_read(&lines), [27, 36]);
    assert_eq!(frame_indexes(&lines), (27..45).collect::<Vec<_>>());
    let snapshots: Vec<&str> = summary(&lines)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .filter(|f| f.starts_with("snapshot "))
        .collect();
    assert_eq!(snapshots.len(), 2, "both snapshots listed: {snapshots:?}");
    // Those three are marked, and named in the summary: not damage.
    let compacted: Vec<u64> = lines
        .iter()
        .filter(|l| l["type"] == "frame" && l["compacted"] == true)
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    assert_eq!(compacted, [27, 28, 29]);
    assert!(
        summary(&lines)["findings"]
            .as_array()
            .unwrap()
            .contains(&Value::from(
                "00000000000000000027.log: entries 27 to 29 compacted (below first_offset 30; \
                 a node never serves them)"
            )),
        "{}",
        summary(&lines)
    );
    assert_eq!(summary(&lines)["clean"], true);

    let lines = inspect_json(&["--from", "3", "--limit", "2"], &dir);
    assert_eq!(frame_indexes(&lines), [27, 28]);
    let lines = inspect_json(&["--from", "29", "--to", "37"], &dir);
    assert_eq!(frame_indexes(&lines), (29..38).collect::<Vec<_>>());
    // Wholly before the oldest segment: nothing to read, and no error.
    let lines = inspect_json(&["--from", "0", "--to", "26"], &dir);
    assert_eq!(frame_indexes(&lines), Vec::<u64>::new());
    assert_eq!(segments_read(&lines), Vec::<u64>::new());
}

#[test]
fn a_segment_file_keeps_its_offsets_and_its_whole_summary() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 20);
    let file = logs::segment(&dir, 9);
    let lines = inspect_json(&["--from", "11", "--to", "13"], &file);
    assert_eq!(frame_indexes(&lines), [11, 12, 13]);
    assert_eq!(
        summary(&lines)["entries"],
        9,
        "a file's summary covers it all"
    );
}

// ---- Filters -----------------------------------------------------------------------

#[test]
fn status_selects_frames_of_each_kind_alone_or_together() {
    let root = tempfile::tempdir().unwrap();
    let rotten = logs::damaged_sealed(&root.path().join("rotten"));
    let torn = logs::torn_tail(&root.path().join("torn"));
    let both = rotten_and_torn(&root.path().join("both"));
    let all_but =
        |skip: &[u64], end: u64| -> Vec<u64> { (0..end).filter(|i| !skip.contains(i)).collect() };
    let (rotten, torn, both) = (rotten.as_path(), torn.as_path(), both.as_path());
    let cases: [(&Path, &[&str], Vec<u64>); 12] = [
        (rotten, &["ok"], all_but(&[4], 20)),
        (rotten, &["corrupt"], vec![4]),
        (rotten, &["torn"], vec![]),
        (rotten, &["damaged"], vec![]),
        (rotten, &["corrupt", "torn"], vec![4]),
        (torn, &["ok"], (0..20).collect()),
        (torn, &["corrupt"], vec![]),
        (torn, &["torn"], vec![20]),
        (torn, &["ok", "torn"], (0..21).collect()),
        (both, &["corrupt", "torn"], vec![4, 20]),
        (both, &["torn", "corrupt"], vec![4, 20]),
        (both, &["ok", "corrupt", "torn"], (0..21).collect()),
    ];
    for (dir, wanted, want) in cases {
        let mut args = Vec::new();
        for s in wanted {
            args.extend(["--status", s]);
        }
        let lines = inspect_json(&args, dir);
        assert_eq!(frame_indexes(&lines), want, "{dir:?} {args:?}");
        for l in lines.iter().filter(|l| l["type"] == "frame") {
            assert!(wanted.contains(&l["status"].as_str().unwrap()), "{l}");
        }
        // The filter chooses rows; the summary still counts everything.
        assert_eq!(
            summary(&lines),
            summary(&inspect_json(&[], dir)),
            "{args:?}"
        );
    }
}

#[test]
fn damaged_ranges_are_shown_only_with_status_damaged() {
    let root = tempfile::tempdir().unwrap();
    let dir = broken_framing(root.path());
    let all = inspect_json(&[], &dir);
    assert!(
        statuses(&all).contains(&"damage".to_owned()),
        "no filter shows it"
    );
    let damage: Vec<&Value> = all.iter().filter(|l| l["type"] == "damage").collect();
    assert_eq!(damage.len(), 1);
    assert_eq!(damage[0]["offset"], frame_pos(11));
    assert_eq!(damage[0]["resync_at"], frame_pos(12));

    let lines = inspect_json(&["--status", "damaged"], &dir);
    assert_eq!(statuses(&lines), ["damage"]);
    assert_eq!(
        lines.iter().find(|l| l["type"] == "damage").unwrap(),
        damage[0]
    );

    let lines = inspect_json(&["--status", "damaged", "--status", "torn"], &dir);
    assert_eq!(statuses(&lines), ["damage"]);
    let lines = inspect_json(&["--status", "ok", "--status", "damaged"], &dir);
    assert_eq!(
        statuses(&lines),
        statuses(&all),
        "ok and damaged: everything here"
    );

    for args in [
        &["--status", "ok"][..],
        &["--status", "corrupt", "--status", "torn"],
        &["--prefix", "set"],
        &["--prefix", ""],
    ] {
        let lines = inspect_json(args, &dir);
        assert!(!statuses(&lines).contains(&"damage".to_owned()), "{args:?}");
    }
    // A damaged range sits before the frame after it: in range with it.
    let lines = inspect_json(&["--status", "damaged", "--from", "11", "--to", "11"], &dir);
    assert_eq!(statuses(&lines), ["damage"]);
    let lines = inspect_json(&["--status", "damaged", "--from", "12"], &dir);
    assert_eq!(statuses(&lines), Vec::<String>::new());
}

#[test]
fn prefix_matches_the_payload_s_first_bytes() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::damaged_sealed(root.path());
    for (prefix, want) in [
        ("set k3=", vec![3, 10, 17]),
        ("set k3=1", vec![10, 17]),
        ("set k4=", vec![4, 11, 18]),
        ("set k4=4 xxxxxxxxxxxy", vec![4]),
        ("set k4=4 xxxxxxxxxxxx", vec![]),
        ("set", (0..20).collect()),
        ("", (0..20).collect()),
        ("k3=", vec![]),
        ("SET", vec![]),
    ] {
        let lines = inspect_json(&["--prefix", prefix], &dir);
        assert_eq!(frame_indexes(&lines), want, "--prefix {prefix:?}");
    }
    // With --status, both must hold; with a range and a limit, all do.
    let lines = inspect_json(&["--prefix", "set k4=", "--status", "ok"], &dir);
    assert_eq!(frame_indexes(&lines), [11, 18]);
    let lines = inspect_json(
        &["--prefix", "set k", "--status", "ok", "--limit", "5"],
        &dir,
    );
    assert_eq!(frame_indexes(&lines), [0, 1, 2, 3, 5]);
    let lines = inspect_json(&["--prefix", "set k3=", "--from", "4", "--to", "16"], &dir);
    assert_eq!(frame_indexes(&lines), [10]);
}

// ---- Exact bytes -------------------------------------------------------------------

/// The rows of an `inspect --hex` table: each frame row's columns, the
/// segment file it is in, and the bytes its hex dump shows.
fn hex_rows(table: &str, dir: &Path) -> Vec<(Vec<String>, PathBuf, Vec<u8>)> {
    let mut rows: Vec<(Vec<String>, PathBuf, Vec<u8>)> = Vec::new();
    let mut file = dir.to_path_buf();
    let mut next_pos = 0;
    // The rows lie between the column titles and the blank line before
    // the summary.
    let body = table
        .lines()
        .skip_while(|l| !l.starts_with("  index"))
        .skip(1)
        .take_while(|l| !l.is_empty());
    for line in body {
        if let Some(rest) = line.strip_prefix("segment ") {
            file = dir.join(rest.split(':').next().unwrap());
        } else if let Some(dump) = line.strip_prefix(&" ".repeat(9)) {
            // As `hexdump -C`: position, 16 bytes in hex, the bytes as text.
            let (pos, rest) = dump.split_once(' ').unwrap();
            assert_eq!(u64::from_str_radix(pos, 16).unwrap(), next_pos, "{line}");
            let hex = rest.split("  |").next().unwrap();
            let bytes = &mut rows.last_mut().expect("a dump follows a row").2;
            let before = bytes.len();
            bytes.extend(
                hex.split_whitespace()
                    .map(|b| u8::from_str_radix(b, 16).unwrap()),
            );
            assert!(bytes.len() - before <= 16, "{line}");
            next_pos += 16;
        } else {
            let columns = line.split_whitespace().map(str::to_owned).collect();
            rows.push((columns, file.clone(), Vec::new()));
            next_pos = 0;
        }
    }
    rows
}

#[test]
fn hex_dumps_each_shown_payload_s_bytes_as_the_file_holds_them() {
    let root = tempfile::tempdir().unwrap();
    let dir = rotten_and_torn(root.path());
    let payload_19 = non_utf8_entry_19(&dir);
    let table = ok_stdout(&tool(&["inspect", "--hex"], &dir));
    let rows = hex_rows(&table, &dir);
    let indexes: Vec<&str> = rows.iter().map(|(c, _, _)| c[0].as_str()).collect();
    let want: Vec<String> = (0..21).map(|i| i.to_string()).collect();
    assert_eq!(indexes, want, "every frame, with its dump");
    for (columns, file, dumped) in &rows {
        let pos: u64 = columns[1].parse().unwrap();
        let length: u64 = columns[2].parse().unwrap();
        assert_eq!(dumped.len() as u64, length, "{columns:?}");
        assert_eq!(dumped, &payload_in_file(file, pos, length), "{columns:?}");
    }
    assert_eq!(rows[19].2, payload_19);
    assert_eq!(rows[4].0[5], "corrupt");
    assert_eq!(rows[20].0[5], "torn");
    assert_eq!(rows[20].2[..30], [b't'; 30], "the torn write's bytes");
    assert_eq!(rows[20].2[30..], [0; 70], "then the preallocated zeros");

    // Only the rows shown are dumped.
    let table = ok_stdout(&tool(&["inspect", "--hex", "--status", "torn"], &dir));
    let rows = hex_rows(&table, &dir);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2.len(), 100);
    let without = ok_stdout(&tool(&["inspect", "--status", "torn"], &dir));
    assert_eq!(
        hex_rows(&without, &dir)[0].2,
        Vec::<u8>::new(),
        "no dump without --hex"
    );
}

#[test]
fn payload_hex_holds_exactly_the_file_s_bytes_where_payload_cannot() {
    let root = tempfile::tempdir().unwrap();
    let dir = rotten_and_torn(root.path());
    let payload_19 = non_utf8_entry_19(&dir);
    let lines = inspect_json(&[], &dir);
    let mut file = PathBuf::new();
    let mut with_hex = Vec::new();
    for l in &lines {
        if l["type"] == "segment" {
            file = dir.join(l["file"].as_str().unwrap());
        }
        if l["type"] != "frame" {
            continue;
        }
        let i = l["index"].as_u64().unwrap();
        let in_file = payload_in_file(
            &file,
            l["offset"].as_u64().unwrap(),
            l["length"].as_u64().unwrap(),
        );
        match l.get("payload_hex") {
            Some(hex) => {
                assert_eq!(unhex(hex.as_str().unwrap()), in_file, "entry {i}");
                with_hex.push((i, l["status"].as_str().unwrap().to_owned()));
            }
            None => assert_eq!(
                l["payload"].as_str().unwrap().as_bytes(),
                in_file,
                "entry {i}"
            ),
        }
    }
    assert_eq!(
        with_hex,
        [
            (4, "corrupt".into()),
            (19, "ok".into()),
            (20, "torn".into())
        ],
        "given for a damaged frame or a payload that is not UTF-8, absent for intact text"
    );
    let l19 = lines.iter().find(|l| l["index"] == 19).unwrap();
    assert_eq!(unhex(l19["payload_hex"].as_str().unwrap()), payload_19);
    assert!(
        l19["payload"].as_str().unwrap().contains('\u{fffd}'),
        "payload is lossy"
    );

    // With --hex every frame has it.
    let lines = inspect_json(&["--hex"], &dir);
    let frames: Vec<&Value> = lines.iter().filter(|l| l["type"] == "frame").collect();
    assert_eq!(frames.len(), 21);
    for l in frames {
        let i = l["index"].as_u64().unwrap();
        let hex = l["payload_hex"]
            .as_str()
            .unwrap_or_else(|| panic!("entry {i}: {l}"));
        if i != 4 && i < 19 {
            assert_eq!(unhex(hex), logs::payload(i).as_bytes(), "entry {i}");
        }
    }
}

// ---- Naming a log as the node does -----------------------------------------------

#[test]
fn dir_and_node_reach_the_same_log_as_its_path() {
    let root = tempfile::tempdir().unwrap();
    let dir = rotten_and_torn(root.path());
    let root_arg = root.path().to_str().unwrap();
    for args in [
        &["inspect"][..],
        &["inspect", "--json", "--from", "3", "--to", "12", "--hex"],
        &["verify"],
        &["repair", "--dry-run"],
    ] {
        let by_path = tool(args, &dir);
        let by_node = run(&[args, &["--dir", root_arg, "--node", "n1"]].concat());
        let by_env = wal_node()
            .args(args)
            .args(["--node", "n1"])
            .env("WAL_DIR", root.path())
            .output()
            .unwrap();
        // --dir outranks WAL_DIR, as it does for the node.
        let both = wal_node()
            .args(args)
            .args(["--dir", root_arg, "--node", "n1"])
            .env("WAL_DIR", root.path().join("elsewhere"))
            .output()
            .unwrap();
        assert!(!stdout(&by_path).is_empty(), "{args:?}");
        for (how, out) in [
            ("--dir --node", &by_node),
            ("WAL_DIR", &by_env),
            ("both", &both),
        ] {
            assert_eq!(
                code(out),
                code(&by_path),
                "{args:?} by {how}: {}",
                stderr(out)
            );
            assert_eq!(stdout(out), stdout(&by_path), "{args:?} by {how}");
        }
    }
}

#[test]
fn node_finds_a_previous_version_s_single_file_log() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::damaged_sealed(root.path());
    // A segment is exactly the old single-file format.
    let old = root.path().join("n0.wal");
    fs::copy(logs::segment(&dir, 0), &old).unwrap();
    let root_arg = root.path().to_str().unwrap();
    for args in [
        &["inspect"][..],
        &["inspect", "--json", "--status", "corrupt"],
        &["verify"],
    ] {
        let by_path = tool(args, &old);
        let by_node = run(&[args, &["--dir", root_arg, "--node", "n0"]].concat());
        assert_eq!(
            code(&by_node),
            code(&by_path),
            "{args:?}: {}",
            stderr(&by_node)
        );
        assert_eq!(stdout(&by_node), stdout(&by_path), "{args:?}");
    }
    let lines = inspect_json(&["--status", "corrupt"], &old);
    assert_eq!(
        frame_indexes(&lines),
        [4],
        "numbered from 0, as the old file was"
    );
}

#[test]
fn bad_ways_to_name_a_log_exit_2_saying_why_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::torn_tail(root.path());
    age(root.path());
    let before = tree(root.path());
    let r = root.path().to_str().unwrap();
    let d = dir.to_str().unwrap();
    for tool in ["inspect", "verify", "repair"] {
        let before_tool = format!("give `wal-node {tool} --dir DIR --node ID`");
        let cases: [(Vec<&str>, &str); 10] = [
            (vec![tool, "--dir", r, "n1"], "for the log of node n1 in"),
            (
                vec![tool, "--dir", r, "--node", "../n1"],
                "--node \"../n1\" is not a node id",
            ),
            (
                vec![tool, "--dir", r, "--node", ".."],
                "--node \"..\" is not a node id",
            ),
            (vec![tool, "--dir", r, "--node", ""], "is not a node id"),
            (vec![tool, "--dir", r], "add --node ID to say whose"),
            (vec![tool, "--node", "n1"], "give --dir DIR or set WAL_DIR"),
            (
                vec![tool, d, "--dir", r, "--node", "n1"],
                "cannot be used with '--node <ID>'",
            ),
            (
                vec![tool, "--dir", r, "--node", "n9"],
                "no log for node n9 in",
            ),
            (vec![tool], "which log? give its PATH"),
            (vec!["--dir", r, tool, "--node", "n1"], &before_tool),
        ];
        for (args, says) in cases {
            let out = run(&args);
            assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
            assert_eq!(stdout(&out), "", "{args:?}: no report");
            assert_eq!(tree(root.path()), before, "{args:?} changed a file");
        }
    }
    // A range that holds nothing is refused, not answered "clean".
    let out = run(&["inspect", d, "--from", "10", "--to", "5"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--to 5 is before --from 10"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    // An empty WAL_DIR is no directory, as for the node.
    let out = wal_node()
        .args(["verify", "--node", "n1"])
        .env("WAL_DIR", "")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("give --dir DIR or set WAL_DIR"),
        "{}",
        stderr(&out)
    );
}
