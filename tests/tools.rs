//! The operator tools (`inspect`, `verify`, `repair`), run as the real binary
//! on log files damaged in each way replay distinguishes, and on log
//! directories written by the real node, damaged in each way a directory
//! can be.

mod common;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};
use wal_node::frame::encode;

const GOLDEN: &str = "fixtures/tools/inspect_damaged.txt";
const GOLDEN_DIR: &str = "fixtures/tools/inspect_segments.txt";

fn frames(payloads: &[&[u8]]) -> Vec<u8> {
    payloads.iter().flat_map(|p| encode(p)).collect()
}

/// Three whole frames: 15, 13 and 16 bytes.
fn clean() -> Vec<u8> {
    frames(&[b"set x=1", b"set y", b"set z=33"])
}

/// The kinds of log every command is run on, and whether each is clean.
fn kinds() -> Vec<(&'static str, Vec<u8>, bool)> {
    let clean = clean();
    let mut torn = clean.clone();
    torn.extend_from_slice(&encode(b"half written")[..11]);
    let mut zero_filled = clean.clone();
    zero_filled.extend_from_slice(&[0; 4096]);
    let mut bit_flipped = clean.clone();
    bit_flipped[15 + 8 + 2] ^= 0x04; // a payload byte of the middle frame
    let mut broken = clean.clone();
    broken[15 + 3] = 0xff; // the middle frame's length word
    vec![
        ("clean", clean, true),
        ("torn", torn, false),
        ("zero-filled", zero_filled, true),
        ("all-zero", vec![0; 4096], true),
        ("bit-flipped", bit_flipped, false),
        ("broken-framing", broken, false),
    ]
}

/// A small log with every kind of damage inspect distinguishes.
fn damaged() -> Vec<u8> {
    let mut log = encode(br#"{"op":"set","key":"x","value":1}"#);
    let mut rotten = encode(b"set y=2");
    *rotten.last_mut().unwrap() ^= 1;
    log.extend(rotten);
    log.extend(encode("long ".repeat(30).as_bytes()));
    let mut misframed = encode(b"lost frame");
    misframed[3] = 0xff;
    log.extend(misframed);
    log.extend(encode("tab\there \"quoted\" é \u{1}".as_bytes()));
    let mut unacked = encode(b"unacked write");
    unacked[20] ^= 0x10;
    log.extend(unacked);
    log.extend([7, 0, 0]);
    log
}

fn write_log(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    // An old mtime, so that any write would show.
    let old = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    path
}

fn tool(args: &[&str], path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wal-node"))
        .args(args)
        .arg(path)
        .env_remove("WAL_DIR")
        .output()
        .expect("run wal-node")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The whole file and its mtime.
fn snapshot(path: &Path) -> (Vec<u8>, SystemTime) {
    (
        fs::read(path).unwrap(),
        fs::metadata(path).unwrap().modified().unwrap(),
    )
}

/// Files saved beside `path` by a cut.
fn saved_beside(path: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}.torn-", path.file_name().unwrap().to_str().unwrap());
    let mut found: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&prefix)
        })
        .collect();
    found.sort();
    found
}

#[test]
fn inspect_table_matches_golden_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "n1.wal", &damaged());
    let out = tool(&["inspect"], &path);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, stdout(&out)).unwrap();
    }
    let want = fs::read_to_string(&golden).expect("golden file; UPDATE_GOLDEN=1 writes it");
    assert_eq!(stdout(&out), want);
}

#[test]
fn inspect_json_classifies_each_kind() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, _) in kinds() {
        let path = write_log(dir.path(), name, &bytes);
        let out = tool(&["inspect", "--json"], &path);
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
        let lines = json_lines(&out);
        let statuses: Vec<&str> = lines
            .iter()
            .map(|l| match l["type"].as_str().unwrap() {
                "frame" => l["status"].as_str().unwrap(),
                other => other,
            })
            .collect();
        let summary = lines.last().unwrap();
        let want: &[&str] = match name {
            "clean" | "zero-filled" => &["ok", "ok", "ok", "summary"],
            "torn" => &["ok", "ok", "ok", "summary"],
            "all-zero" => &["summary"],
            "bit-flipped" => &["ok", "corrupt", "ok", "summary"],
            "broken-framing" => &["ok", "damage", "ok", "summary"],
            _ => unreachable!(),
        };
        assert_eq!(statuses, want, "{name}");
        let free = if matches!(name, "zero-filled" | "all-zero") {
            4096
        } else {
            0
        };
        assert_eq!(summary["free_bytes"], free, "{name}: zeros are free space");
        assert_eq!(summary["torn_bytes"], if name == "torn" { 11 } else { 0 });
        assert_eq!(summary["file_bytes"], bytes.len());
    }
}

#[test]
fn inspect_json_has_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "n1.wal", &damaged());
    let lines = json_lines(&tool(&["inspect", "--json"], &path));
    assert_eq!(lines[1]["type"], "frame");
    assert_eq!(lines[1]["index"], 1);
    assert_eq!(lines[1]["offset"], 40);
    assert_eq!(lines[1]["length"], 7);
    assert_eq!(lines[1]["status"], "corrupt");
    assert_eq!(lines[1]["payload"], "set y=3");
    assert_ne!(lines[1]["crc_stored"], lines[1]["crc_computed"]);
    assert_eq!(lines[1]["crc_stored"].as_str().unwrap().len(), 8);
    assert_eq!(lines[3]["type"], "damage");
    assert_eq!(lines[3]["offset"], 213);
    assert_eq!(lines[3]["resync_at"], 231);
    assert_eq!(lines[4]["after_damage"], true);
    assert_eq!(lines[5]["status"], "torn");
    let summary = &lines[6];
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["entries"], 4);
    assert_eq!(summary["total_bytes"], 40 + 15 + 158 + 30);
    assert_eq!(summary["corrupt_entries"], 1);
    assert_eq!(summary["torn_bytes"], 285 - 261);
    assert_eq!(summary["damaged_bytes"], 18);
}

#[test]
fn inspect_from_and_limit_choose_rows_but_not_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = (0..10).map(|i| format!("entry {i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    let path = write_log(dir.path(), "n1.wal", &frames(&refs));
    let lines = json_lines(&tool(
        &["inspect", "--json", "--from", "3", "--limit", "4"],
        &path,
    ));
    let indexes: Vec<u64> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [3, 4, 5, 6]);
    assert_eq!(lines.last().unwrap()["entries"], 10);

    let table = stdout(&tool(&["inspect", "--from", "8"], &path));
    let rows: Vec<&str> = table
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].contains("\"entry 8\"") && rows[1].contains("\"entry 9\""));
    assert!(table.contains("entries:     10 ("), "{table}");
}

#[test]
fn inspect_and_verify_never_change_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = kinds();
    all.push(("damaged", damaged(), false));
    for (name, bytes, _) in all {
        let path = write_log(dir.path(), name, &bytes);
        let before = snapshot(&path);
        for args in [&["inspect"][..], &["inspect", "--json"], &["verify"]] {
            let out = tool(args, &path);
            assert!(code(&out) <= 1, "{name}: {args:?}: {}", stderr(&out));
            assert_eq!(snapshot(&path), before, "{name}: {args:?} changed the file");
        }
        assert!(saved_beside(&path).is_empty(), "{name}: nothing saved");
    }
}

#[test]
fn verify_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, is_clean) in kinds() {
        let path = write_log(dir.path(), name, &bytes);
        let out = tool(&["verify"], &path);
        assert_eq!(code(&out), if is_clean { 0 } else { 1 }, "{name}");
        assert_eq!(stdout(&out).lines().count(), 1, "{name}: one line");
        let word = if is_clean { ": clean: " } else { ": damaged: " };
        assert!(stdout(&out).contains(word), "{name}: {}", stdout(&out));
    }
    let missing = tool(&["verify"], &dir.path().join("missing.wal"));
    assert_eq!(code(&missing), 2);
    assert!(stderr(&missing).contains("missing.wal"));
    assert_eq!(code(&tool(&["verify"], dir.path())), 2, "a directory");
}

#[test]
fn verify_exits_2_on_an_unreadable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "n1.wal", &clean());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::File::open(&path).is_ok() {
        return; // Running as root: permissions do not stop reads.
    }
    assert_eq!(code(&tool(&["verify"], &path)), 2);
}

#[test]
fn verify_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "n1.wal", &kinds()[5].1);
    let line = stdout(&tool(&["verify"], &path));
    assert!(line.contains("broken framing at byte offset 15"), "{line}");
    let path = write_log(dir.path(), "n2.wal", &kinds()[4].1);
    let line = stdout(&tool(&["verify"], &path));
    assert!(line.contains("; bit rot at entry 1"), "{line}");
}

#[test]
fn verify_names_the_entries_with_bit_rot() {
    let dir = tempfile::tempdir().unwrap();
    let rotten = |rot: &[usize], n: usize| {
        let mut log = Vec::new();
        for i in 0..n {
            let mut frame = encode(format!("entry {i}").as_bytes());
            if rot.contains(&i) {
                *frame.last_mut().unwrap() ^= 1;
            }
            log.extend(frame);
        }
        log
    };
    let path = write_log(dir.path(), "two.wal", &rotten(&[1, 3], 5));
    let out = tool(&["verify"], &path);
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("; bit rot at entries 1, 3\n"),
        "{}",
        stdout(&out)
    );
    // Ten are named, the rest counted: one line stays one line.
    let many: Vec<usize> = (0..12).collect();
    let path = write_log(dir.path(), "many.wal", &rotten(&many, 13));
    let out = stdout(&tool(&["verify"], &path));
    assert!(
        out.contains("; bit rot at entries 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more\n"),
        "{out}"
    );
}

/// The summary line after `<file>: ` in a tool's stdout.
/// `inspect --json`'s summary says what `verify`'s line says: the same
/// verdict and the same findings, in the same words. Returns the findings.
fn assert_json_summary_agrees(
    path: &Path,
    verify: &str,
    is_clean: bool,
    label: &str,
) -> Vec<String> {
    let json = json_lines(&tool(&["inspect", "--json"], path));
    let summary = json.last().unwrap();
    assert_eq!(summary["clean"], is_clean, "{label}");
    let findings: Vec<String> = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    let after_contents = verify.split_once("; ").map_or("", |(_, f)| f);
    assert_eq!(
        findings.join("; "),
        after_contents,
        "{label}: inspect --json and verify"
    );
    findings
}

fn summary_line(out: &Output, path: &Path) -> String {
    let first = stdout(out).lines().next().unwrap_or_default().to_owned();
    let prefix = format!("{}: ", path.display());
    first.strip_prefix(&prefix).unwrap_or(&first).to_owned()
}

#[test]
fn all_three_tools_describe_a_file_alike() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = kinds();
    all.push(("damaged", damaged(), false));
    for (name, bytes, is_clean) in all {
        let path = write_log(dir.path(), name, &bytes);
        let verify = summary_line(&tool(&["verify"], &path), &path);
        let verdict = if is_clean { "clean: " } else { "damaged: " };
        assert!(verify.starts_with(verdict), "{name}: {verify}");

        for args in [
            &["repair", "--dry-run"][..],
            &["repair", "--dry-run", "--truncate-at-damage"],
        ] {
            let repair = summary_line(&tool(args, &path), &path);
            assert_eq!(repair, verify, "{name}: {args:?} and verify");
        }

        let findings = assert_json_summary_agrees(&path, &verify, is_clean, name);

        // The table's footer: the verdict, then each finding on its own line.
        let table = stdout(&tool(&["inspect"], &path));
        let footer: Vec<&str> = table
            .lines()
            .skip_while(|l| !l.starts_with("state:"))
            .map(|l| l.trim_start_matches("state:").trim())
            .collect();
        assert_eq!(footer[0], verdict.trim_end_matches(": "), "{name}: {table}");
        assert_eq!(footer[1..], findings[..], "{name}: inspect and verify");
    }
}

#[test]
fn repair_leaves_logs_without_a_torn_tail_alone() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, _) in kinds() {
        if name == "torn" || name == "broken-framing" {
            continue;
        }
        let path = write_log(dir.path(), name, &bytes);
        let before = snapshot(&path);
        let out = tool(&["repair"], &path);
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
        assert!(stdout(&out).contains("nothing to do"), "{name}");
        assert_eq!(snapshot(&path), before, "{name}");
        assert!(saved_beside(&path).is_empty(), "{name}");
    }
}

#[test]
fn repair_cuts_a_torn_tail_and_saves_it() {
    let dir = tempfile::tempdir().unwrap();
    let torn = &kinds()[1].1;
    let path = write_log(dir.path(), "n1.wal", torn);

    let before = snapshot(&path);
    let out = tool(&["repair", "--dry-run"], &path);
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).contains("would cut 11 bytes"),
        "{}",
        stdout(&out)
    );
    assert_eq!(snapshot(&path), before, "--dry-run changes nothing");
    assert!(saved_beside(&path).is_empty());

    let out = tool(&["repair"], &path);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        fs::read(&path).unwrap(),
        clean(),
        "only whole frames remain"
    );
    let saved = saved_beside(&path);
    assert_eq!(saved, [dir.path().join("n1.wal.torn-44")]);
    assert_eq!(fs::read(&saved[0]).unwrap(), &torn[44..]);
    assert_eq!(code(&tool(&["verify"], &path)), 0);
}

#[test]
fn repair_cuts_a_torn_write_in_preallocated_zeros_but_not_the_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let mut unacked = encode(b"never acknowledged");
    unacked[10] ^= 0x01;
    let mut log = clean();
    log.extend_from_slice(&unacked);
    log.extend_from_slice(&[0; 4096]);
    let path = write_log(dir.path(), "n1.wal", &log);

    let lines = json_lines(&tool(&["inspect", "--json"], &path));
    assert_eq!(lines[3]["status"], "torn");
    assert_eq!(lines[4]["torn_bytes"], unacked.len());
    assert_eq!(
        lines[4]["free_bytes"], 4096,
        "zeros after a torn write are free space, not part of it"
    );
    let table = stdout(&tool(&["inspect"], &path));
    assert!(
        table.contains("zero tail at byte offset 70 (4096 bytes of free space)"),
        "{table}"
    );

    let out = tool(&["repair"], &path);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fs::read(&path).unwrap(), clean());
    assert_eq!(fs::read(&saved_beside(&path)[0]).unwrap(), unacked);
}

#[test]
fn repair_refuses_broken_framing_unless_told_to_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let broken = &kinds()[5].1;
    let path = write_log(dir.path(), "n1.wal", broken);
    let before = snapshot(&path);

    for args in [&["repair"][..], &["repair", "--dry-run"]] {
        let out = tool(args, &path);
        assert_eq!(code(&out), 1, "{args:?}");
        let why = stderr(&out);
        assert!(why.contains("byte offset 15"), "{why}");
        assert!(why.contains("the 29 bytes from byte offset 15"), "{why}");
        assert!(
            why.contains("1 readable frame (1 with a good checksum)"),
            "{why}"
        );
        assert_eq!(snapshot(&path), before, "{args:?}");
    }
    let out = tool(&["repair", "--truncate-at-damage", "--dry-run"], &path);
    assert_eq!(code(&out), 0);
    assert_eq!(snapshot(&path), before, "--dry-run changes nothing");
    assert!(saved_beside(&path).is_empty());

    let out = tool(&["repair", "--truncate-at-damage"], &path);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fs::read(&path).unwrap(), &broken[..15]);
    let saved = saved_beside(&path);
    assert_eq!(saved, [dir.path().join("n1.wal.torn-15")]);
    assert_eq!(fs::read(&saved[0]).unwrap(), &broken[15..]);
}

#[test]
fn repair_refuses_while_the_log_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "n1.wal", &kinds()[1].1);
    let before = snapshot(&path);
    // The node's lock: flock on its own open file.
    let held = fs::File::open(&path).unwrap();
    held.lock().unwrap();
    let out = tool(&["repair"], &path);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
    assert_eq!(snapshot(&path), before);
}

#[test]
fn help_and_bad_arguments() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wal-node"))
            .args(args)
            .env_remove("WAL_DIR")
            .output()
            .unwrap()
    };
    for cmd in ["inspect", "verify", "repair"] {
        let out = run(&[cmd, "--help"]);
        assert_eq!(code(&out), 0, "{cmd} --help");
        assert!(stdout(&out).contains(&format!("Usage: wal-node {cmd}")));
    }
    assert_eq!(code(&run(&["--help"])), 0);
    // clap prints usage for a missing or unknown argument, and a pointer to
    // --help for a bad value; both exit 2.
    for (bad, shows) in [
        (&["inspect"][..], "which log? give its PATH"),
        (&["inspect", "--bogus", "x"], "Usage: wal-node inspect"),
        (&["repair", "a", "b"], "Usage: wal-node repair"),
        (&["--dir", "d", "verify", "x"], "Usage: wal-node"),
        (&["inspect", "--limit", "many", "x"], "--help"),
        (&["verify", "--max-entry-bytes", "0", "x"], "--help"),
    ] {
        let out = run(bad);
        assert_eq!(code(&out), 2, "{bad:?}");
        assert!(stderr(&out).contains(shows), "{bad:?}: {}", stderr(&out));
    }
}

/// Damage followed only by a frame longer than `limit`: broken framing
/// under the default limit, a torn tail under a lower one (the search for
/// whole frames only knows frames within the limit). So the verdict shows
/// which `--max-entry-bytes` a tool used.
fn limit_sensitive_log() -> Vec<u8> {
    let mut log = encode(b"first");
    log.extend_from_slice(&0x00ff_ffffu32.to_le_bytes());
    log.extend_from_slice(&[0; 4]);
    log.extend(encode(&[b'b'; 100]));
    log
}

#[test]
fn max_entry_bytes_may_come_before_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "n1.wal", &limit_sensitive_log());
    let default = stdout(&tool(&["verify"], &path));
    assert!(default.contains("broken framing"), "{default}");
    for args in [
        &["verify", "--max-entry-bytes", "50"][..],
        &["--max-entry-bytes", "50", "verify"],
        &["--max-entry-bytes=50", "verify"],
    ] {
        let out = tool(args, &path);
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("torn tail"),
            "{args:?}: {}",
            stdout(&out)
        );
    }
    for args in [
        &["--max-entry-bytes", "50", "inspect"][..],
        &["--max-entry-bytes", "50", "repair", "--dry-run"],
    ] {
        let out = tool(args, &path);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("torn tail"),
            "{args:?}: {}",
            stdout(&out)
        );
    }
    // The node's own options mean nothing to a tool: refused, not ignored.
    for (flag, value) in [
        ("--dir", "d"),
        ("--max-batch", "7"),
        ("--recover", "truncate"),
    ] {
        let out = tool(&[flag, value, "verify"], &path);
        assert_eq!(code(&out), 2, "{flag}");
        assert!(
            stderr(&out).contains(&format!("{flag} is an option of the node")),
            "{flag}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_log_named_with_a_leading_dash_goes_after_double_dash() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), "-n1.wal", &clean());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wal-node"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("WAL_DIR")
            .output()
            .unwrap()
    };
    for cmd in ["inspect", "verify", "repair"] {
        let out = run(&[cmd, "--", "-n1.wal"]);
        assert_eq!(code(&out), 0, "{cmd}: {}", stderr(&out));
        assert!(stdout(&out).contains("-n1.wal: clean") || cmd == "inspect");
        // Without `--` the name reads as an option; clap's error says what
        // to do, and so does --help.
        let out = run(&[cmd, "-n1.wal"]);
        assert_eq!(code(&out), 2, "{cmd}");
        assert!(stderr(&out).contains("use '-- -n"), "{}", stderr(&out));
        let help = stdout(&run(&[cmd, "--help"]));
        assert!(
            help.contains("A name that starts with `-` goes after `--`"),
            "{cmd} --help:\n{help}"
        );
    }
}

// ---- Log directories -------------------------------------------------------
//
// `segmented_log` has the real node write 8 entries of 250 bytes (258-byte
// frames) with --max-segment-bytes 1024: three frames fill a segment, so the
// log is segments 0 (entries 0-2) and 3 (3-5), sealed with their index files,
// and 6 (6-7), active and preallocated to 1024 bytes.

const SEG0: &str = "00000000000000000000.log";
const SEG3: &str = "00000000000000000003.log";
const SEG6: &str = "00000000000000000006.log";
const INDEX0: &str = "00000000000000000000.index";
const INDEX3: &str = "00000000000000000003.index";
const FRAME: usize = 258;

fn entry_payload(i: u64) -> String {
    format!("entry {i}: {}", "x".repeat(241))
}

/// The log directory `root/n1/` as the node leaves it after 8 appends.
fn segmented_log(root: &Path) -> PathBuf {
    let mut input = format!("{}\n", common::init_line("n1"));
    for i in 0..8u64 {
        let body = json!({"type": "wal_append", "msg_id": i + 2, "payload": entry_payload(i)});
        input.push_str(&common::line("c1", body));
        input.push('\n');
    }
    let root_arg = root.to_str().unwrap();
    let done = common::run(
        &["--dir", root_arg, "--max-segment-bytes", "1024"],
        input.as_bytes(),
    );
    assert!(done.status.success(), "{}", done.stderr);
    let acked: Vec<&Value> = done.replies[1..]
        .iter()
        .map(|r| &r["body"]["offset"])
        .collect();
    assert_eq!(
        acked,
        (0..8)
            .map(|i| json!(i))
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>()
    );
    let dir = root.join("n1");
    let files = dir_snapshot(&dir);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [INDEX0, SEG0, INDEX3, SEG3, SEG6, "wal-node.meta"],
        "the layout these tests assume"
    );
    dir
}

/// Every file in `dir`: its bytes and mtime, by name.
fn dir_snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            (name, snapshot(&e.path()))
        })
        .collect()
}

/// Applies `change` to the bytes of `dir/name`.
fn edit(dir: &Path, name: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let path = dir.join(name);
    let mut bytes = fs::read(&path).unwrap();
    change(&mut bytes);
    fs::write(&path, bytes).unwrap();
}

/// Writes an index for the segment `start` listing `positions`, checksums
/// and all, as the node's own code writes one: only what it says is wrong.
fn write_index(dir: &Path, start: u64, segment_bytes: u64, positions: &[u64]) {
    let path = dir.join(wal_node::log::names::index(start));
    let file = fs::File::create(&path).unwrap();
    wal_node::log::index_file::write(&file, start, segment_bytes, positions.iter().copied())
        .unwrap();
}

/// A way a log directory is damaged (or only looks unusual): what to do to
/// it, the finding `verify` must name, and whether it is clean all the same.
type DirKind = (&'static str, fn(&Path), &'static str, bool);

fn dir_kinds() -> Vec<DirKind> {
    vec![
        (
            "clean",
            |_| {},
            "clean: 8 entries (2064 bytes) in 3 segments",
            true,
        ),
        (
            "bit rot in a sealed segment",
            |d| edit(d, SEG0, |b| b[FRAME + 20] ^= 1),
            "00000000000000000000.log: bit rot at entry 1",
            false,
        ),
        (
            "broken framing in a sealed segment",
            |d| edit(d, SEG3, |b| b[FRAME + 3] = 0xff),
            "00000000000000000003.log: broken framing at byte offset 258",
            false,
        ),
        (
            "missing index",
            |d| fs::remove_file(d.join(INDEX3)).unwrap(),
            "00000000000000000003.index missing",
            false,
        ),
        (
            "index failing its checksum",
            |d| edit(d, INDEX3, |b| b[48 + 9] ^= 1),
            "00000000000000000003.index bad (positions checksum mismatch)",
            false,
        ),
        (
            "index placing an entry off its frame",
            |d| write_index(d, 3, 774, &[0, 250, 516]),
            "00000000000000000003.index bad (it places entry 4 at byte 250, but its frame \
             starts at byte 258)",
            false,
        ),
        (
            "index listing too few entries",
            |d| write_index(d, 3, 774, &[0, 258]),
            "00000000000000000003.index bad (it lists 2 entries, the segment holds 3)",
            false,
        ),
        (
            "missing middle segment",
            |d| fs::remove_file(d.join(SEG3)).unwrap(),
            "offsets 3 to 5 missing: 00000000000000000000.log holds 3 entries and no segment \
             holds them",
            false,
        ),
        (
            "torn active tail",
            |d| {
                edit(d, SEG6, |b| {
                    b[2 * FRAME..2 * FRAME + 14].copy_from_slice(b"\x07\0\0\0abcdefghij")
                })
            },
            "00000000000000000006.log: torn tail at byte offset 516 (15 bytes",
            false,
        ),
        (
            "damaged metadata",
            |d| edit(d, "wal-node.meta", |b| b[20] ^= 1),
            "wal-node.meta damaged (checksum mismatch)",
            false,
        ),
        (
            "an unknown file",
            |d| fs::write(d.join("notes.txt"), "mine").unwrap(),
            "unknown file notes.txt (not the log's; left alone)",
            true,
        ),
    ]
}

#[test]
fn verify_checks_every_segment_index_and_offset_of_a_directory() {
    for (kind, damage, finding, is_clean) in dir_kinds() {
        let root = tempfile::tempdir().unwrap();
        let dir = segmented_log(root.path());
        damage(&dir);
        let out = tool(&["verify"], &dir);
        assert_eq!(
            code(&out),
            if is_clean { 0 } else { 1 },
            "{kind}: {}",
            stderr(&out)
        );
        let line = stdout(&out);
        assert_eq!(line.lines().count(), 1, "{kind}: one line: {line}");
        let verdict = if is_clean { ": clean: " } else { ": damaged: " };
        assert!(
            line.starts_with(&format!("{}{verdict}", dir.display())),
            "{kind}: {line}"
        );
        assert!(
            line.contains(finding),
            "{kind}: wants {finding:?} in {line}"
        );
    }
}

#[test]
fn verify_exits_2_when_a_directory_is_not_a_log_it_can_read() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    let out = tool(&["verify"], root.path());
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("holds the log directories n1; give one of them"),
        "{}",
        stderr(&out)
    );
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert_eq!(code(&tool(&["verify"], &empty)), 2, "an empty directory");
    edit(&dir, "wal-node.meta", |b| b[8] = 2);
    let out = tool(&["verify"], &dir);
    assert_eq!(code(&out), 2, "format version 2");
    assert!(
        stderr(&out).contains("format version 2"),
        "{}",
        stderr(&out)
    );
    edit(&dir, "wal-node.meta", |b| b[0] = b'W');
    let out = tool(&["verify"], &dir);
    assert_eq!(code(&out), 2, "not our magic");
    assert!(
        stderr(&out).contains("not a wal-node log directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_directory_matches_golden_text() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    edit(&dir, SEG0, |b| b[FRAME + 20] ^= 1);
    fs::remove_file(dir.join(INDEX3)).unwrap();
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let out = tool(&["inspect"], &dir);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN_DIR);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, stdout(&out)).unwrap();
    }
    let want = fs::read_to_string(&golden).expect("golden file; UPDATE_GOLDEN=1 writes it");
    assert_eq!(stdout(&out), want);
}

#[test]
fn inspect_json_of_a_directory_has_meta_segments_and_real_offsets() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    fs::remove_file(dir.join(INDEX3)).unwrap();
    let lines = json_lines(&tool(&["inspect", "--json"], &dir));
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    let mut want = vec!["meta"];
    for frames in [3, 3, 2] {
        want.push("segment");
        want.extend(std::iter::repeat_n("frame", frames));
    }
    want.push("summary");
    assert_eq!(kinds, want);
    assert_eq!(
        lines[0],
        json!({"type": "meta", "file": "wal-node.meta", "state": "ok", "version": 1,
               "max_segment_bytes": 1024, "first_offset": 0, "defect": null})
    );
    assert_eq!(
        lines[1],
        json!({"type": "segment", "file": SEG0, "start_offset": 0, "sealed": true,
               "file_bytes": 774, "index": {"file": INDEX0, "state": "ok", "entries": 3,
               "defect": null}})
    );
    assert_eq!(
        lines[5]["index"],
        json!({"file": null, "state": "missing", "entries": null, "defect": null})
    );
    assert_eq!(lines[9]["file"], SEG6);
    assert_eq!(lines[9]["sealed"], false);
    assert_eq!(lines[9]["index"]["state"], "none");
    let frames: Vec<(u64, u64)> = lines
        .iter()
        .filter(|l| l["type"] == "frame")
        .map(|l| (l["index"].as_u64().unwrap(), l["offset"].as_u64().unwrap()))
        .collect();
    let byte = |k: u64| k * FRAME as u64;
    assert_eq!(
        frames,
        [
            (0, byte(0)),
            (1, byte(1)),
            (2, byte(2)),
            (3, byte(0)),
            (4, byte(1)),
            (5, byte(2)),
            (6, byte(0)),
            (7, byte(1))
        ],
        "entries numbered by their offsets, positions within their segment"
    );
    for (i, l) in lines.iter().filter(|l| l["type"] == "frame").enumerate() {
        assert_eq!(l["payload"], entry_payload(i as u64));
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["segments"], 3);
    assert_eq!(summary["segments_read"], 3);
    assert_eq!(summary["entries"], 8);
    assert_eq!(summary["clean"], false);
    assert_eq!(summary["file_bytes"], 774 + 774 + 1024);
}

#[test]
fn inspect_from_and_limit_skip_whole_segments_unread() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    // Segments that cannot be read at all: only a tool that skips them
    // unread gets past them.
    for seg in [SEG0, SEG6] {
        fs::remove_file(dir.join(seg)).unwrap();
        fs::create_dir(dir.join(seg)).unwrap();
    }
    let out = tool(&["inspect", "--json"], &dir);
    assert_eq!(code(&out), 2, "reading every segment fails");
    let out = tool(&["inspect", "--json", "--from", "4", "--limit", "2"], &dir);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&out);
    let rows: Vec<(&str, u64)> = lines
        .iter()
        .filter(|l| l["type"] != "summary")
        .map(|l| {
            let n = l["index"]
                .as_u64()
                .or(l["start_offset"].as_u64())
                .unwrap_or(0);
            (l["type"].as_str().unwrap(), n)
        })
        .collect();
    assert_eq!(
        rows,
        [("meta", 0), ("segment", 3), ("frame", 4), ("frame", 5)],
        "segment 0 ends before --from, segment 6 starts after the limit"
    );
    let summary = lines.last().unwrap();
    assert_eq!(
        (
            summary["segments"].as_u64(),
            summary["segments_read"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(
        summary["entries"], 3,
        "the summary covers the segments read"
    );
    let table = stdout(&tool(&["inspect", "--from", "4", "--limit", "2"], &dir));
    assert!(table.contains("segments:    1 of 3 read"), "{table}");
}

#[test]
fn inspect_and_verify_never_change_a_directory() {
    for (kind, damage, _, _) in dir_kinds() {
        let root = tempfile::tempdir().unwrap();
        let dir = segmented_log(root.path());
        damage(&dir);
        let old = SystemTime::now() - Duration::from_secs(3600);
        for name in dir_snapshot(&dir).keys() {
            let f = fs::File::options()
                .write(true)
                .open(dir.join(name))
                .unwrap();
            f.set_modified(old).unwrap();
        }
        let before = dir_snapshot(&dir);
        for args in [&["inspect"][..], &["inspect", "--json"], &["verify"]] {
            let out = tool(args, &dir);
            assert!(code(&out) <= 1, "{kind}: {args:?}: {}", stderr(&out));
            assert_eq!(
                dir_snapshot(&dir),
                before,
                "{kind}: {args:?} changed the directory"
            );
        }
    }
}

#[test]
fn all_three_tools_describe_a_directory_alike() {
    for (kind, damage, _, is_clean) in dir_kinds() {
        let root = tempfile::tempdir().unwrap();
        let dir = segmented_log(root.path());
        damage(&dir);
        let verify = summary_line(&tool(&["verify"], &dir), &dir);
        let repair = summary_line(&tool(&["repair", "--dry-run"], &dir), &dir);
        assert_eq!(repair, verify, "{kind}: repair --dry-run and verify");
        assert_json_summary_agrees(&dir, &verify, is_clean, kind);
    }
}

#[test]
fn repair_rebuilds_missing_and_bad_index_files_as_the_node_wrote_them() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    let (index0, index3) = (
        fs::read(dir.join(INDEX0)).unwrap(),
        fs::read(dir.join(INDEX3)).unwrap(),
    );
    fs::remove_file(dir.join(INDEX0)).unwrap();
    write_index(&dir, 3, 774, &[0, 250, 516]);

    let before = dir_snapshot(&dir);
    let out = tool(&["repair", "--dry-run"], &dir);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("index missing; would rebuild 00000000000000000000.index"),
        "{}",
        stdout(&out)
    );
    assert_eq!(dir_snapshot(&dir), before, "--dry-run changes nothing");

    let out = tool(&["repair"], &dir);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains(
            "00000000000000000000.log: index missing; rebuilt from the segment (3 entries)"
        ),
        "{said}"
    );
    assert!(
        said.contains("00000000000000000003.log: index bad (it places entry 4 at byte 250"),
        "{said}"
    );
    assert_eq!(
        fs::read(dir.join(INDEX0)).unwrap(),
        index0,
        "rebuilt byte for byte"
    );
    assert_eq!(
        fs::read(dir.join(INDEX3)).unwrap(),
        index3,
        "rebuilt byte for byte"
    );
    assert!(!dir.join(format!("{INDEX0}.tmp")).exists());
    assert_eq!(code(&tool(&["verify"], &dir)), 0);
}

#[test]
fn repair_cuts_a_directory_s_torn_active_tail_as_for_one_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    let whole = fs::read(dir.join(SEG6)).unwrap();
    edit(&dir, SEG6, |b| {
        b[2 * FRAME..2 * FRAME + 14].copy_from_slice(b"\x07\0\0\0abcdefghij")
    });
    let out = tool(&["repair"], &dir);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("cut 15 bytes from byte offset 516 on"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(dir.join(SEG6)).unwrap(), &whole[..2 * FRAME]);
    let saved = dir.join(format!("{SEG6}.torn-516"));
    assert_eq!(fs::read(saved).unwrap(), b"\x07\0\0\0abcdefghij\0");
    assert_eq!(code(&tool(&["verify"], &dir)), 0);
}

/// What a node serves from `root/n1/` after a restart: its entry count and
/// the offset the next append gets.
fn node_serves(root: &Path) -> (Value, Value) {
    let input = [
        common::init_line("n1"),
        common::line("c1", json!({"type": "wal_info", "msg_id": 2})),
        common::line(
            "c1",
            json!({"type": "wal_append", "msg_id": 3, "payload": "after"}),
        ),
    ]
    .join("\n");
    let done = common::run(&["--dir", root.to_str().unwrap()], input.as_bytes());
    assert_eq!(done.replies.len(), 3, "{}", done.stderr);
    assert_eq!(
        done.replies[0]["body"]["type"], "init_ok",
        "{}",
        done.stderr
    );
    (
        done.replies[1]["body"]["entries"].clone(),
        done.replies[2]["body"]["offset"].clone(),
    )
}

#[test]
fn repair_refuses_damage_in_a_sealed_segment_unless_allowed() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    edit(&dir, SEG3, |b| b[FRAME + 3] = 0xff);
    let damaged = fs::read(dir.join(SEG3)).unwrap();
    let before = dir_snapshot(&dir);
    for args in [
        &["repair"][..],
        &["repair", "--dry-run"],
        &["repair", "--truncate-at-damage"],
    ] {
        let out = tool(args, &dir);
        assert_eq!(code(&out), 1, "{args:?}");
        let why = stderr(&out);
        assert!(
            why.contains("00000000000000000003.log is a sealed segment with broken framing"),
            "{why}"
        );
        assert!(
            why.contains("cut the 516 bytes from byte offset 258 on"),
            "{why}"
        );
        assert!(why.contains("set aside 1 later segment"), "{why}");
        assert!(
            why.contains("losing the entries from offset 4 to 7"),
            "{why}"
        );
        assert!(why.contains("rerun with --allow-sealed"), "{why}");
        assert_eq!(dir_snapshot(&dir), before, "{args:?} changed the directory");
    }
    let out = tool(&["repair", "--allow-sealed", "--dry-run"], &dir);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(dir_snapshot(&dir), before, "--dry-run changes nothing");

    let out = tool(&["repair", "--allow-sealed"], &dir);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the log now keeps the entries before offset 4"),
        "{}",
        stdout(&out)
    );
    let names: Vec<String> = dir_snapshot(&dir).into_keys().collect();
    assert_eq!(
        names,
        [
            INDEX0,
            SEG0,
            SEG3,
            "00000000000000000003.log.torn-258",
            "00000000000000000006.log.torn-0",
            "wal-node.meta"
        ]
    );
    assert_eq!(fs::read(dir.join(SEG3)).unwrap(), &damaged[..FRAME]);
    assert_eq!(
        fs::read(dir.join(format!("{SEG3}.torn-258"))).unwrap(),
        &damaged[FRAME..]
    );
    assert_eq!(
        fs::read(dir.join(format!("{SEG6}.torn-0"))).unwrap(),
        before[SEG6].0
    );
    assert_eq!(code(&tool(&["verify"], &dir)), 0);
    assert_eq!(
        node_serves(root.path()),
        (json!(4), json!(4)),
        "offsets stay dense"
    );
}

#[test]
fn a_sealed_segment_whose_cut_fails_stays_sealed_and_the_log_opens() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    edit(&dir, SEG3, |b| b[FRAME + 3] = 0xff);
    let damaged = fs::read(dir.join(SEG3)).unwrap();
    // No room to save the cut bytes (a file size limit of 0): broken
    // framing is never cut unsaved, so the cut fails after the later
    // segment was set aside.
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -f 0; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_wal-node"))
        .args(["repair", "--allow-sealed"])
        .arg(&dir)
        .env_remove("WAL_DIR")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing was cut"), "{}", stderr(&out));
    assert_eq!(fs::read(dir.join(SEG3)).unwrap(), damaged);
    assert!(
        dir.join(INDEX3).exists(),
        "its index stays: it is still sealed"
    );
    assert!(!dir.join(format!("{SEG3}.torn-258")).exists());
    // A node opens it as a shorter log, sealed segment and all.
    assert_eq!(node_serves(root.path()), (json!(6), json!(6)));
}

#[test]
fn repair_refuses_a_gap_unless_allowed_to_end_the_log_there() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    fs::remove_file(dir.join(SEG3)).unwrap();
    let before = dir_snapshot(&dir);
    let out = tool(&["repair"], &dir);
    assert_eq!(code(&out), 1);
    let why = stderr(&out);
    assert!(why.contains("offsets 3 to 5 are missing"), "{why}");
    assert!(
        why.contains("Restore the missing segment from a backup"),
        "{why}"
    );
    assert!(
        why.contains("losing the entries from offset 6 to 7"),
        "{why}"
    );
    assert_eq!(dir_snapshot(&dir), before);

    let out = tool(&["repair", "--allow-sealed"], &dir);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        !dir.join(INDEX0).exists(),
        "segment 0 is the active one now"
    );
    assert!(dir.join(format!("{SEG6}.torn-0")).exists());
    assert_eq!(code(&tool(&["verify"], &dir)), 0);
    assert_eq!(
        node_serves(root.path()),
        (json!(3), json!(3)),
        "offsets stay dense"
    );
}

#[test]
fn repair_takes_the_directory_lock_a_node_holds() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    // The node answers init once it holds the log, lock included, and
    // wal_info once it has preallocated the active segment up to the limit:
    // after that it writes nothing until an append.
    let mut node = common::Running::spawn(&["--dir", root.path().to_str().unwrap()]);
    assert_eq!(node.init("n1")["type"], "init_ok");
    assert_eq!(node.info()["entries"], 8);
    // Work for a repair that the node will never see: a torn write in the
    // active segment's zeros, and an index failing its positions checksum.
    edit(&dir, SEG6, |b| {
        b[2 * FRAME..2 * FRAME + 14].copy_from_slice(b"\x07\0\0\0abcdefghij")
    });
    edit(&dir, INDEX3, |b| b[48 + 9] ^= 1);
    let before = dir_snapshot(&dir);
    // Through the directory, or through its active segment's file.
    for path in [dir.clone(), dir.join(SEG6)] {
        let out = tool(&["repair"], &path);
        assert_eq!(code(&out), 1, "{}: {}", path.display(), stderr(&out));
        assert!(
            stderr(&out).contains("locked by another process"),
            "{}",
            stderr(&out)
        );
        assert_eq!(dir_snapshot(&dir), before, "{}", path.display());
    }
    node.finish();
}

#[test]
fn repair_of_a_segment_file_leaves_a_sealed_one_to_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = segmented_log(root.path());
    edit(&dir, SEG3, |b| b[FRAME + 3] = 0xff);
    let before = dir_snapshot(&dir);
    let out = tool(&["repair", "--truncate-at-damage"], &dir.join(SEG3));
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("is a sealed segment of the log"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(&format!("wal-node repair {}", dir.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(dir_snapshot(&dir), before);
    // The active segment's file is repaired as a file; numbered from its start.
    let lines = json_lines(&tool(&["inspect", "--json"], &dir.join(SEG6)));
    assert_eq!(
        (lines[0]["index"].as_u64(), lines[1]["index"].as_u64()),
        (Some(6), Some(7))
    );
    let out = tool(&["repair"], &dir.join(SEG6));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
}
