//! `wal-node inspect --stats` on logs the real node wrote (clean, bit rot
//! in a sealed segment, a torn tail, compacted with snapshots): every
//! number worked out from the known layout (100-byte payloads, 108-byte
//! frames, 9 to a sealed segment), percentiles worked out here from the
//! sizes written, the JSON checked against the text, the text against a
//! golden file.

mod common;

use common::logs::{self, FRAME_BYTES, PER_SEGMENT};
use serde_json::{Value, json};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const GOLDEN: &str = "fixtures/tools/inspect_stats.txt";

fn inspect(path: &Path, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wal-node"))
        .arg("inspect")
        .args(flags)
        .arg(path)
        .env_remove("WAL_DIR")
        .output()
        .expect("run wal-node")
}

/// `inspect --stats` as text; it exits 0 (it only looks).
fn text(path: &Path, flags: &[&str]) -> String {
    let out = inspect(path, &[&["--stats"], flags].concat());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `inspect --stats --json`: the `stats` line and the `summary` line.
fn json(path: &Path, flags: &[&str]) -> (Value, Value) {
    let out = text(path, &[&["--json"], flags].concat());
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stats = lines.iter().find(|l| l["type"] == "stats").expect("stats");
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    (stats.clone(), summary.clone())
}

/// The text's line starting with `key`.
fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

fn tally(entries: u64) -> Value {
    json!({"entries": entries, "bytes": entries * FRAME_BYTES})
}

/// Every payload is 100 bytes: each percentile is 100.
fn all_hundred(entries: u64) -> Value {
    json!({"count": entries, "total_bytes": entries * 100, "min": 100, "p50": 100,
           "p90": 100, "p99": 100, "max": 100, "mean": 100.0})
}

/// The row of a segment holding `entries` whole entries from `first` on.
fn segment_row(start: u64, first: u64, entries: u64, sealed: bool, file_bytes: u64) -> Value {
    let index = if sealed {
        json!({"file": format!("{start:020}.index"), "state": "ok", "entries": PER_SEGMENT, "defect": null})
    } else {
        json!({"file": null, "state": "none", "entries": null, "defect": null})
    };
    json!({
        "file": format!("{start:020}.log"), "sealed": sealed,
        "entries": entries, "bytes": entries * FRAME_BYTES,
        "first_offset": first, "last_offset": first + entries - 1,
        "first_after_damage": false, "last_after_damage": false,
        "file_bytes": file_bytes, "index": index,
    })
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// 20 entries: segments 0 and 9 sealed (972 bytes each), 18 active.
fn twenty_entry_segments(dir: &Path) -> Value {
    let sealed = PER_SEGMENT * FRAME_BYTES;
    let active = file_len(&logs::segment(dir, 18));
    json!([
        segment_row(0, 0, 9, true, sealed),
        segment_row(9, 9, 9, true, sealed),
        segment_row(18, 18, 2, false, active),
    ])
}

#[test]
fn a_clean_log_in_numbers() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 20);
    let (stats, summary) = json(&dir, &[]);
    assert_eq!(stats["entries"], 20);
    assert_eq!(stats["bytes"], 20 * FRAME_BYTES);
    assert_eq!(
        (stats["first_offset"].clone(), stats["last_offset"].clone()),
        (json!(0), json!(19))
    );
    assert_eq!(stats["payload_sizes"], all_hundred(20));
    assert_eq!(
        stats["by_status"],
        json!({"ok": tally(20), "corrupt": tally(0), "torn": {"frames": 0, "bytes": 0},
               "damaged": {"ranges": 0, "bytes": 0}})
    );
    assert_eq!(
        stats["compacted"],
        json!({"below": 0, "entries": 0, "bytes": 0, "first_offset": null, "last_offset": null,
               "first_after_damage": false, "last_after_damage": false, "corrupt": 0, "segments": []})
    );
    assert_eq!(stats["segments"], twenty_entry_segments(&dir));
    assert_eq!(stats["snapshots"], json!([]));
    assert_eq!(summary["clean"], true);
    assert_eq!(summary["entries"], 20);

    let text = text(&dir, &[]);
    assert_eq!(
        line(&text, "entries:"),
        "entries:     20 (2160 bytes), offsets 0 to 19"
    );
    assert_eq!(line(&text, "ok:"), "ok:          20 entries (2160 bytes)");
    assert_eq!(
        line(&text, "payloads:"),
        "payloads:    min 100, p50 100, p90 100, p99 100, max 100, mean 100.0 bytes"
    );
    assert_eq!(
        line(&text, "compacted:"),
        "compacted:   none (first_offset 0: nothing was ever compacted)"
    );
    assert_eq!(line(&text, "snapshots:"), "snapshots:   none");
    assert!(text.contains("\nstate:       clean\n"), "{text}");
}

#[test]
fn bit_rot_in_a_sealed_segment_is_one_corrupt_entry() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::damaged_sealed(root.path());
    let (stats, summary) = json(&dir, &[]);
    assert_eq!(stats["entries"], 20);
    assert_eq!(stats["by_status"]["ok"], tally(19));
    assert_eq!(stats["by_status"]["corrupt"], tally(1));
    // Its length word is intact: its size counts.
    assert_eq!(stats["payload_sizes"], all_hundred(20));
    assert_eq!(stats["segments"], twenty_entry_segments(&dir));
    assert_eq!(summary["clean"], false);
    let text = text(&dir, &[]);
    assert_eq!(line(&text, "corrupt:"), "corrupt:     1 entry (108 bytes)");
    assert!(
        text.contains("00000000000000000000.log: bit rot at entry 4\n"),
        "{text}"
    );

    // --status corrupt: the statistics of that entry alone.
    let (only, _) = json(&dir, &["--status", "corrupt"]);
    assert_eq!(
        (only["entries"].clone(), only["first_offset"].clone()),
        (json!(1), json!(4))
    );
    assert_eq!(only["by_status"]["ok"], tally(0));
    assert_eq!(only["segments"][0]["entries"], 1);
    assert_eq!(only["segments"][1]["entries"], 0);
    assert_eq!(only["segments"][1]["first_offset"], Value::Null);
}

#[test]
fn a_torn_tail_is_a_torn_frame_not_an_entry() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::torn_tail(root.path());
    let (stats, summary) = json(&dir, &[]);
    assert_eq!(stats["entries"], 20);
    assert_eq!(stats["by_status"]["ok"], tally(20));
    // The header announced 100 bytes: one 108-byte frame, its CRC failing.
    assert_eq!(
        stats["by_status"]["torn"],
        json!({"frames": 1, "bytes": FRAME_BYTES})
    );
    assert_eq!(stats["payload_sizes"], all_hundred(20));
    assert_eq!(stats["segments"], twenty_entry_segments(&dir));
    assert_eq!(summary["torn_bytes"], FRAME_BYTES);
    assert_eq!(summary["torn_offset"], 2 * FRAME_BYTES);
    assert_eq!(summary["clean"], false);
    assert_eq!(
        line(&text(&dir, &[]), "torn:"),
        "torn:        1 frame (108 bytes)"
    );
}

#[test]
fn after_compaction_entries_below_first_offset_are_counted_apart() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::compacted(root.path());
    let (stats, summary) = json(&dir, &[]);
    // wal_info's view: entries 30 to 44.
    assert_eq!(stats["entries"], 15);
    assert_eq!(stats["bytes"], 15 * FRAME_BYTES);
    assert_eq!(
        (stats["first_offset"].clone(), stats["last_offset"].clone()),
        (json!(30), json!(44))
    );
    assert_eq!(stats["by_status"]["ok"], tally(15));
    assert_eq!(stats["payload_sizes"], all_hundred(15));
    // 27, 28 and 29 share a segment with 30, so they are still on disk.
    assert_eq!(
        stats["compacted"],
        json!({"below": 30, "entries": 3, "bytes": 3 * FRAME_BYTES, "first_offset": 27,
               "last_offset": 29, "first_after_damage": false, "last_after_damage": false,
               "corrupt": 0, "segments": ["00000000000000000027.log"]})
    );
    let active = file_len(&logs::segment(&dir, 36));
    assert_eq!(
        stats["segments"],
        json!([
            segment_row(27, 27, 9, true, 9 * FRAME_BYTES),
            segment_row(36, 36, 9, false, active)
        ])
    );
    let snapshot = |offset: u64| {
        let file = format!("{offset:020}.snapshot");
        let bytes = file_len(&dir.join(&file));
        json!({"file": file, "offset": offset, "bytes": bytes, "valid": true, "defect": null})
    };
    assert_eq!(stats["snapshots"], json!([snapshot(30), snapshot(45)]));
    // The summary counts every frame in the files.
    assert_eq!(summary["entries"], 18);
    assert_eq!(summary["clean"], true);
    assert_eq!(
        line(&text(&dir, &[]), "compacted:"),
        "compacted:   3 entries (324 bytes), offsets 27 to 29, below first_offset 30: kept in \
         00000000000000000027.log until a compaction passes its end"
    );

    // A damaged snapshot is listed as such.
    let newest = dir.join(format!("{:020}.snapshot", 45));
    let mut bytes = fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&newest, bytes).unwrap();
    let (stats, summary) = json(&dir, &[]);
    assert_eq!(stats["snapshots"][0]["valid"], true);
    assert_eq!(stats["snapshots"][1]["valid"], false);
    let defect = stats["snapshots"][1]["defect"].as_str().unwrap();
    assert!(defect.starts_with("damaged ("), "{defect}");
    assert_eq!(summary["clean"], false);
    let text = text(&dir, &[]);
    let row = line(&text, "00000000000000000045.snapshot");
    assert!(row.ends_with(defect), "{row}");
}

/// 20 entries, entry 4's length word made impossible: broken framing in
/// the first sealed segment, its last four frames numbered by guess.
fn broken_sealed(root: &Path) -> std::path::PathBuf {
    let dir = logs::clean(root, 20);
    let path = logs::segment(&dir, 0);
    let mut bytes = fs::read(&path).unwrap();
    bytes[4 * FRAME_BYTES as usize + 3] = 0xff;
    fs::write(&path, bytes).unwrap();
    dir
}

#[test]
fn broken_framing_is_a_damaged_range_and_guessed_offsets() {
    let root = tempfile::tempdir().unwrap();
    let dir = broken_sealed(root.path());
    let (stats, summary) = json(&dir, &[]);
    assert_eq!(
        stats["by_status"]["damaged"],
        json!({"ranges": 1, "bytes": FRAME_BYTES})
    );
    assert_eq!(stats["entries"], 19);
    assert_eq!(stats["by_status"]["ok"], tally(19));
    // Entries 5 to 8 come after the range: the walk numbers them 4? to 7?.
    let first = &stats["segments"][0];
    assert_eq!(
        (
            first["entries"].clone(),
            first["first_offset"].clone(),
            first["last_offset"].clone()
        ),
        (json!(8), json!(0), json!(7))
    );
    assert_eq!(
        (
            first["first_after_damage"].clone(),
            first["last_after_damage"].clone()
        ),
        (json!(false), json!(true))
    );
    // Segment 9 is read afresh: its offsets are real again.
    assert_eq!(stats["segments"][1]["last_after_damage"], false);
    assert_eq!(summary["damaged_ranges"], 1);
    let text = text(&dir, &[]);
    assert_eq!(
        line(&text, "damaged:"),
        "damaged:     1 range of broken framing (108 bytes)"
    );
    let row: Vec<&str> = line(&text, "00000000000000000000.log")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..5],
        ["00000000000000000000.log", "sealed", "0", "7?", "8"]
    );
}

/// Payload sizes from 1 to 2500 bytes, in no order: the larger ones sit
/// alone in their own segments.
fn varied_sizes() -> Vec<u64> {
    let mut x: u64 = 12345;
    (0..201)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (x >> 33) % 2500
        })
        .collect()
}

/// min, p50, p90, p99, max by nearest rank, and the mean, of `sizes`.
fn percentiles(sizes: &[u64]) -> Value {
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let rank = |p: usize| sorted[(p * n).div_ceil(100) - 1];
    let total: u64 = sizes.iter().sum();
    json!({"count": n, "total_bytes": total, "min": sorted[0], "p50": rank(50), "p90": rank(90),
           "p99": rank(99), "max": sorted[n - 1], "mean": total as f64 / n as f64})
}

#[test]
fn percentiles_of_varied_payload_sizes_are_exact() {
    let sizes = varied_sizes();
    let requests: Vec<Value> = sizes
        .iter()
        .map(|&n| json!({"type": "wal_append", "payload": "v".repeat(n as usize)}))
        .collect();
    let root = tempfile::tempdir().unwrap();
    logs::session(root.path(), &requests);
    let dir = root.path().join("n1");

    let (stats, _) = json(&dir, &[]);
    let want = percentiles(&sizes);
    assert_eq!(stats["payload_sizes"], want);
    let frames: u64 = sizes.iter().map(|n| n + 8).sum();
    assert_eq!(stats["bytes"], frames);
    let text = text(&dir, &[]);
    assert_eq!(
        line(&text, "payloads:"),
        format!(
            "payloads:    min {}, p50 {}, p90 {}, p99 {}, max {}, mean {:.1} bytes",
            want["min"],
            want["p50"],
            want["p90"],
            want["p99"],
            want["max"],
            want["mean"].as_f64().unwrap()
        )
    );
    // Only the range asked for: entries 50 to 149.
    let (part, _) = json(&dir, &["--from", "50", "--to", "149"]);
    assert_eq!(part["payload_sizes"], percentiles(&sizes[50..150]));
    assert_eq!(
        (part["first_offset"].clone(), part["last_offset"].clone()),
        (json!(50), json!(149))
    );
}

#[test]
fn from_to_and_prefix_select_what_is_counted() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 20);
    let (stats, summary) = json(&dir, &["--from", "5", "--to", "12"]);
    assert_eq!(stats["entries"], 8);
    assert_eq!(stats["by_status"]["ok"], tally(8));
    // Segment 18 starts after 12: not read, no row.
    let rows = stats["segments"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0]["first_offset"].clone(),
            rows[0]["last_offset"].clone(),
            rows[0]["entries"].clone()
        ),
        (json!(5), json!(8), json!(4))
    );
    assert_eq!(
        (
            rows[1]["first_offset"].clone(),
            rows[1]["last_offset"].clone(),
            rows[1]["entries"].clone()
        ),
        (json!(9), json!(12), json!(4))
    );
    assert_eq!(summary["segments_read"], 2);

    // `set k0=`: entries 0, 7 and 14.
    let (stats, _) = json(&dir, &["--prefix", "set k0="]);
    assert_eq!(stats["entries"], 3);
    assert_eq!(
        (stats["first_offset"].clone(), stats["last_offset"].clone()),
        (json!(0), json!(14))
    );
}

#[test]
fn a_segment_file_alone_has_one_row_and_no_directory_parts() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 20);
    let file = logs::segment(&dir, 9);
    let (stats, summary) = json(&file, &[]);
    assert_eq!(stats["entries"], 9);
    assert_eq!(
        (stats["first_offset"].clone(), stats["last_offset"].clone()),
        (json!(9), json!(17))
    );
    assert_eq!(stats["compacted"], Value::Null);
    assert_eq!(stats["snapshots"], Value::Null);
    let row = &stats["segments"][0];
    assert_eq!(row["file"], "00000000000000000009.log");
    assert_eq!(
        (row["sealed"].clone(), row["index"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(summary["entries"], 9);
    let text = text(&file, &[]);
    assert!(
        !text.contains("compacted:") && !text.contains("snapshot"),
        "{text}"
    );
    assert!(
        text.starts_with("entries:     9 (972 bytes), offsets 9 to 17\n"),
        "{text}"
    );
}

#[test]
fn stats_refuses_limit_and_hex_and_help_shows_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::clean(root.path(), 2);
    for flag in [&["--limit", "3"][..], &["--hex"]] {
        let out = inspect(&dir, &[&["--stats"], flag].concat());
        assert_eq!(out.status.code(), Some(2), "{flag:?}");
        assert!(out.stdout.is_empty());
    }
    let help = Command::new(env!("CARGO_BIN_EXE_wal-node"))
        .args(["inspect", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--stats"), "{help}");
    assert!(
        help.contains("wal-node inspect --dir /var/lib/wal --node n1 --stats"),
        "{help}"
    );
}

/// The numbers in `line`: its words that are integers once stripped of
/// punctuation and of the `?` of a guessed offset (file names are not).
fn numbers(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .filter_map(|w| w.trim_matches(|c: char| ",():?".contains(c)).parse().ok())
        .collect()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The text says what the JSON says, number for number.
fn text_agrees_with_json(path: &Path) {
    let (stats, _) = json(path, &[]);
    let text = text(path, &[]);
    let by = &stats["by_status"];
    let cases = [
        (
            "entries:",
            vec![
                n(&stats["entries"]),
                n(&stats["bytes"]),
                n(&stats["first_offset"]),
                n(&stats["last_offset"]),
            ],
        ),
        ("ok:", vec![n(&by["ok"]["entries"]), n(&by["ok"]["bytes"])]),
        (
            "corrupt:",
            vec![n(&by["corrupt"]["entries"]), n(&by["corrupt"]["bytes"])],
        ),
        (
            "torn:",
            vec![n(&by["torn"]["frames"]), n(&by["torn"]["bytes"])],
        ),
        (
            "damaged:",
            vec![n(&by["damaged"]["ranges"]), n(&by["damaged"]["bytes"])],
        ),
    ];
    for (key, want) in cases {
        assert_eq!(numbers(line(&text, key)), want, "{key} in:\n{text}");
    }
    let sizes = &stats["payload_sizes"];
    let payloads = line(&text, "payloads:");
    let want: Vec<u64> = ["min", "p50", "p90", "p99", "max"]
        .iter()
        .map(|k| n(&sizes[k]))
        .collect();
    assert_eq!(numbers(payloads), want, "{payloads}");
    let mean = format!("mean {:.1} bytes", sizes["mean"].as_f64().unwrap());
    assert!(payloads.ends_with(&mean), "{payloads}");
    let compacted = &stats["compacted"];
    if compacted["entries"] != 0 {
        let want = vec![
            n(&compacted["entries"]),
            n(&compacted["bytes"]),
            n(&compacted["first_offset"]),
            n(&compacted["last_offset"]),
            n(&compacted["below"]),
        ];
        assert_eq!(numbers(line(&text, "compacted:")), want);
    }
    for seg in stats["segments"].as_array().unwrap() {
        let row: Vec<&str> = line(&text, seg["file"].as_str().unwrap())
            .split_whitespace()
            .collect();
        let state = if seg["sealed"] == true {
            "sealed"
        } else {
            "active"
        };
        assert_eq!(row[1], state);
        assert_eq!(
            numbers(&row[2..7].join(" ")),
            [
                &seg["first_offset"],
                &seg["last_offset"],
                &seg["entries"],
                &seg["bytes"],
                &seg["file_bytes"]
            ]
            .map(n)
        );
        let index = match seg["index"]["state"].as_str().unwrap() {
            "ok" => format!("index ok ({} entries)", seg["index"]["entries"]),
            "none" => "no index".into(),
            other => panic!("index {other}"),
        };
        assert_eq!(row[7..].join(" "), index);
    }
    for snap in stats["snapshots"].as_array().unwrap() {
        let row = line(&text, snap["file"].as_str().unwrap());
        assert_eq!(numbers(row), [n(&snap["offset"]), n(&snap["bytes"])]);
        assert_eq!(row.ends_with("intact"), snap["valid"] == true, "{row}");
    }
}

#[test]
fn json_agrees_with_the_text() {
    type Build = fn(&Path) -> std::path::PathBuf;
    let builders: [(&str, Build); 5] = [
        ("clean", |root| logs::clean(root, 20)),
        ("damaged_sealed", logs::damaged_sealed),
        ("torn_tail", logs::torn_tail),
        ("compacted", logs::compacted),
        ("broken_sealed", broken_sealed),
    ];
    for (name, build) in builders {
        let root = tempfile::tempdir().unwrap();
        let dir = build(root.path());
        eprintln!("{name}");
        text_agrees_with_json(&dir);
    }
}

/// The README's example: the compacted log with a bit flipped in entry 33.
#[test]
fn stats_text_matches_golden() {
    let root = tempfile::tempdir().unwrap();
    let dir = logs::compacted(root.path());
    logs::rot(&dir, 33);
    let out = text(&dir, &[]);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &out).unwrap();
    }
    let want = fs::read_to_string(&golden).expect("golden file; UPDATE_GOLDEN=1 writes it");
    assert_eq!(out, want);
}
