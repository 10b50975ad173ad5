//! Damaged logs (issue 3): zero-filled tails are free space, a garbage tail
//! is cut and saved, a flipped bit is bit rot (kept and flagged) except in
//! the last frame (a torn tail), and a broken length word inside the log is
//! refused untouched unless the operator asks for `--recover=truncate`.

mod common;
mod crash_support;

use common::{log_path, run};
use crash_support::*;
use serde_json::{Value, json};
use std::path::Path;

fn payloads() -> Vec<Vec<u8>> {
    vec![
        b"first".to_vec(),
        text_payload("second-", 120).into_bytes(),
        "third: ünïcödé ☃".as_bytes().to_vec(),
        text_payload("fourth-", 300).into_bytes(),
        b"fifth and last".to_vec(),
    ]
}

/// What the node answered and said while serving `lines` on the log `content`.
struct Served {
    bodies: Vec<Value>,
    stderr: String,
    /// The log file afterwards.
    after: Vec<u8>,
}

fn serve(dir: &Path, content: &[u8], extra_args: &[&str], lines: &[String]) -> Served {
    let log = log_path(dir, "n1");
    common::write_log(dir, "n1", content);
    let mut args = vec!["--dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra_args);
    let out = run(&args, &input_of(lines));
    assert!(
        out.status.success(),
        "the node exited with {}: {}",
        out.status,
        out.stderr
    );
    Served {
        bodies: out.replies.iter().map(|r| r["body"].clone()).collect(),
        stderr: out.stderr,
        after: std::fs::read(&log).unwrap(),
    }
}

/// init, wal_info, a read of every offset below `reads`, one append, wal_info.
fn session(reads: usize) -> Vec<String> {
    let mut lines = vec![common::init_line("n1"), req(2, json!({"type": "wal_info"}))];
    for i in 0..reads {
        lines.push(req(10 + i as u64, json!({"type": "wal_read", "offset": i})));
    }
    lines.push(req(
        500,
        json!({"type": "wal_append", "payload": "appended after replay"}),
    ));
    lines.push(req(501, json!({"type": "wal_info"})));
    lines
}

/// Checks a served `session(payloads.len())`: `expect[i]` is `Some(valid)`
/// for an entry expected at offset i, `None` for no entry.
fn check_session(s: &Served, payloads: &[Vec<u8>], expect: &[Option<bool>], label: &str) {
    let b = &s.bodies;
    let err = &s.stderr;
    assert_eq!(
        b[0]["type"], "init_ok",
        "{label}: init: {}\nstderr:\n{err}",
        b[0]
    );
    let entries = expect.iter().filter(|e| e.is_some()).count();
    let corrupt = expect.iter().filter(|e| **e == Some(false)).count();
    assert_eq!(b[1]["type"], "wal_info_ok", "{label}: {}", b[1]);
    assert_eq!(
        b[1]["entries"],
        json!(entries),
        "{label}: entries: {}",
        b[1]
    );
    assert_eq!(
        b[1]["corrupt_entries"],
        json!(corrupt),
        "{label}: corrupt_entries: {}",
        b[1]
    );
    for (i, want) in expect.iter().enumerate() {
        let r = &b[2 + i];
        match want {
            None => assert_eq!(
                r["code"],
                json!(20),
                "{label}: offset {i} must not exist: {r}"
            ),
            Some(valid) => {
                assert_eq!(r["type"], "wal_read_ok", "{label}: read {i}: {r}");
                assert_eq!(
                    r["checksum_valid"],
                    json!(valid),
                    "{label}: read {i} checksum_valid: {r}"
                );
                assert_eq!(
                    r["length"],
                    json!(payloads[i].len()),
                    "{label}: read {i} length (offsets must not shift): {r}"
                );
                if *valid {
                    assert_eq!(
                        r["payload"].as_str().unwrap().as_bytes(),
                        &payloads[i][..],
                        "{label}: read {i} payload"
                    );
                }
            }
        }
    }
    let append = &b[2 + expect.len()];
    assert_eq!(append["type"], "wal_append_ok", "{label}: {append}");
    assert_eq!(
        append["offset"],
        json!(entries),
        "{label}: the next append's offset"
    );
    let info = &b[3 + expect.len()];
    assert_eq!(info["entries"], json!(entries + 1), "{label}: {info}");
}

#[test]
fn zero_filled_tails_are_free_space() {
    let p = payloads();
    let (bytes, _) = frames(&p);
    for tail in [4096usize, 1 << 20] {
        let label = format!("{tail}-byte zero tail");
        let dir = tempdir();
        let mut content = bytes.clone();
        content.resize(bytes.len() + tail, 0);
        let s = serve(dir.path(), &content, &[], &session(p.len()));
        check_session(&s, &p, &[Some(true); 5], &label);
        assert_eq!(
            s.bodies[1]["total_bytes"],
            json!(bytes.len()),
            "{label}: total_bytes is the frames, not the file"
        );
        let log = log_path(dir.path(), "n1");
        assert!(
            torn_files(&log).is_empty(),
            "{label}: a zero tail is end of log, nothing to save: {:?}",
            torn_files(&log)
        );
        assert!(
            !s.stderr.contains("torn"),
            "{label}: a zero tail is not a torn write; stderr:\n{}",
            s.stderr
        );
        let (after, _) = parse_whole_frames(&s.after)
            .unwrap_or_else(|e| panic!("{label}: log after the append: {e}"));
        assert_eq!(
            after.len(),
            p.len() + 1,
            "{label}: frames on disk after the append"
        );
        assert_eq!(after[..p.len()], p[..], "{label}: old frames unchanged");
    }
}

#[test]
fn garbage_tail_is_cut_and_saved() {
    let p = payloads();
    let (bytes, _) = frames(&p);
    let end = bytes.len() as u64;
    let mut rng = Rng::new(0x6172_6261_6765);
    let garbage = rng.nonzero_bytes(1000);
    for zeros_after in [0usize, 64 << 10] {
        let label = format!("1000 bytes of garbage then {zeros_after} zero bytes");
        let dir = tempdir();
        let log = log_path(dir.path(), "n1");
        let mut content = bytes.clone();
        content.extend_from_slice(&garbage);
        content.resize(content.len() + zeros_after, 0);
        let s = serve(dir.path(), &content, &[], &session(p.len()));
        check_session(&s, &p, &[Some(true); 5], &label);
        let saved = torn_path(&log, end);
        assert_eq!(
            torn_files(&log),
            vec![saved.clone()],
            "{label}: the cut bytes must be saved as {}",
            saved.display()
        );
        let got = std::fs::read(&saved).unwrap();
        assert!(
            got.len() >= garbage.len()
                && got[..garbage.len()] == garbage[..]
                && got[garbage.len()..].iter().all(|&b| b == 0),
            "{label}: {} must hold the garbage ({} bytes) and at most zeros after it, got {} bytes",
            saved.display(),
            garbage.len(),
            got.len()
        );
        if zeros_after == 0 {
            assert_eq!(got, garbage, "{label}: exactly the cut bytes");
        }
        let line = s
            .stderr
            .lines()
            .find(|l| l.contains("torn"))
            .unwrap_or_else(|| panic!("{label}: stderr must report the cut:\n{}", s.stderr));
        assert!(line.contains(&end.to_string()), "{label}: where: {line}");
        let (after, _) = parse_whole_frames(&s.after)
            .unwrap_or_else(|e| panic!("{label}: log after the cut and the append: {e}"));
        assert_eq!(after.len(), p.len() + 1, "{label}: frames on disk");
    }
}

fn flip_payload_bit(content: &mut [u8], frame_start: u64, payload_len: usize, which: usize) {
    let bit = (which * 37 + 3) % (payload_len * 8);
    content[frame_start as usize + HEADER + bit / 8] ^= 1 << (bit % 8);
}

#[test]
fn flipped_bit_inside_the_log_is_bit_rot_kept_and_flagged() {
    let p = payloads();
    let (bytes, starts) = frames(&p);
    for zero_tail in [0usize, 64 << 10] {
        // Every frame but the last: a whole frame follows it.
        for i in 0..p.len() - 1 {
            let label = format!(
                "payload bit flipped in frame {i} of {} ({zero_tail}-byte zero tail)",
                p.len()
            );
            let dir = tempdir();
            let log = log_path(dir.path(), "n1");
            let mut content = bytes.clone();
            flip_payload_bit(&mut content, starts[i], p[i].len(), i);
            content.resize(content.len() + zero_tail, 0);
            let s = serve(dir.path(), &content, &[], &session(p.len()));
            let mut expect = [Some(true); 5];
            expect[i] = Some(false);
            check_session(&s, &p, &expect, &label);
            assert!(
                torn_files(&log).is_empty(),
                "{label}: bit rot is not a torn tail: nothing may be cut: {:?}",
                torn_files(&log)
            );
            assert_eq!(
                s.after[..bytes.len()],
                content[..bytes.len()],
                "{label}: the damaged log must be kept as it is"
            );
            let lower = s.stderr.to_lowercase();
            assert!(
                ["checksum", "corrupt", "bit rot"]
                    .iter()
                    .any(|w| lower.contains(w)),
                "{label}: stderr must log the damaged entry at open:\n{}",
                s.stderr
            );
        }
    }
}

#[test]
fn flipped_bit_in_a_crc_word_inside_the_log_is_bit_rot() {
    let p = payloads();
    let (bytes, starts) = frames(&p);
    let dir = tempdir();
    let mut content = bytes.clone();
    content[starts[1] as usize + 5] ^= 0x10;
    let s = serve(dir.path(), &content, &[], &session(p.len()));
    let expect = [Some(true), Some(false), Some(true), Some(true), Some(true)];
    check_session(&s, &p, &expect, "CRC word of frame 1 damaged");
    assert!(torn_files(&log_path(dir.path(), "n1")).is_empty());
}

#[test]
fn flipped_bit_in_the_last_frame_is_a_torn_tail() {
    // The spec: a frame whose CRC fails with nothing but zeros after it is a
    // torn tail, a write that was never acknowledged.
    let p = payloads();
    let (bytes, starts) = frames(&p);
    let last = p.len() - 1;
    for zero_tail in [0usize, 64 << 10] {
        let label = format!("payload bit flipped in the last frame ({zero_tail}-byte zero tail)");
        let dir = tempdir();
        let log = log_path(dir.path(), "n1");
        let mut content = bytes.clone();
        flip_payload_bit(&mut content, starts[last], p[last].len(), 1);
        content.resize(content.len() + zero_tail, 0);
        let s = serve(dir.path(), &content, &[], &session(p.len()));
        let mut expect = [Some(true); 5];
        expect[last] = None;
        check_session(&s, &p, &expect, &label);
        let saved = torn_path(&log, starts[last]);
        assert_eq!(torn_files(&log), vec![saved.clone()], "{label}");
        assert_eq!(
            std::fs::read(&saved).unwrap(),
            content[starts[last] as usize..bytes.len()],
            "{label}: {} must hold exactly the cut frame",
            saved.display()
        );
        let line = s
            .stderr
            .lines()
            .find(|l| l.contains("torn"))
            .unwrap_or_else(|| panic!("{label}: stderr must report the cut:\n{}", s.stderr));
        assert!(
            line.contains(&starts[last].to_string()),
            "{label}: where: {line}"
        );
        assert!(
            line.to_lowercase().contains("checksum"),
            "{label}: why: {line}"
        );
    }
}

/// Frame 2's length word replaced by `word`.
fn broken_length(word: u32, zero_tail: usize) -> (Vec<u8>, u64, String) {
    let p = payloads();
    let (mut content, starts) = frames(&p);
    let at = starts[2] as usize;
    content[at..at + 4].copy_from_slice(&word.to_le_bytes());
    content.resize(content.len() + zero_tail, 0);
    (
        content,
        starts[2],
        format!("frame 2's length word set to {word:#x} ({zero_tail}-byte zero tail)"),
    )
}

fn broken_cases() -> Vec<(Vec<u8>, u64, String)> {
    let p = payloads();
    let (bytes, starts) = frames(&p);
    // Longer than the rest of the file, still under --max-entry-bytes.
    let past_end = (bytes.len() as u64 - starts[2]) as u32;
    vec![
        broken_length(0xFFFF_FFFF, 1 << 20),
        broken_length(0, 1 << 20),
        broken_length(0xFFFF_FFFF, 0),
        broken_length(past_end, 0),
        // Plausible and inside the zero tail: it swallows the acknowledged
        // frames after it, so it must not pass for a torn tail.
        broken_length(past_end + 100, 1 << 20),
    ]
}

#[test]
fn broken_length_word_inside_the_log_is_refused_untouched() {
    for (content, at, label) in broken_cases() {
        let dir = tempdir();
        let log = log_path(dir.path(), "n1");
        let s = serve(dir.path(), &content, &[], &session(2));
        let init = &s.bodies[0];
        assert_eq!(init["type"], "error", "{label}: init must fail: {init}");
        assert_eq!(
            init["code"],
            json!(13),
            "{label}: init's error code: {init}"
        );
        let text = init["text"].as_str().unwrap_or_default();
        assert!(
            text.contains(&log.display().to_string()),
            "{label}: the error must name the file {}: {text}",
            log.display()
        );
        assert!(
            text.contains(&at.to_string()),
            "{label}: the error must name the byte offset {at}: {text}"
        );
        assert!(
            s.stderr.contains("--recover=truncate") || s.stderr.contains("--recover truncate"),
            "{label}: stderr must tell the operator what to do:\n{}",
            s.stderr
        );
        assert!(
            s.after == content,
            "{label}: the file must be left untouched ({} bytes before, {} after)",
            content.len(),
            s.after.len()
        );
        assert!(
            torn_files(&log).is_empty(),
            "{label}: nothing may be cut or saved when refusing: {:?}",
            torn_files(&log)
        );
        // Later requests are refused too: the node never serves the log.
        for b in &s.bodies[1..] {
            assert_eq!(
                b["type"], "error",
                "{label}: served after a refused init: {b}"
            );
        }
    }
}

#[test]
fn broken_length_word_is_cut_with_recover_truncate() {
    let p = payloads();
    for (content, at, label) in broken_cases() {
        let dir = tempdir();
        let log = log_path(dir.path(), "n1");
        let s = serve(
            dir.path(),
            &content,
            &["--recover=truncate"],
            &session(p.len()),
        );
        let expect = [Some(true), Some(true), None, None, None];
        check_session(&s, &p, &expect, &label);
        let saved = torn_path(&log, at);
        assert_eq!(
            torn_files(&log),
            vec![saved.clone()],
            "{label}: the cut bytes must be saved as {}",
            saved.display()
        );
        let got = std::fs::read(&saved).unwrap();
        let cut = &content[at as usize..];
        assert!(
            got.len() >= trim_zeros(cut).len()
                && got.len() <= cut.len()
                && got[..] == cut[..got.len()],
            "{label}: {} must hold the cut bytes from offset {at} ({} of them up to the last \
             non-zero one), got {} bytes",
            saved.display(),
            trim_zeros(cut).len(),
            got.len()
        );
        assert!(
            s.stderr.contains(&at.to_string()),
            "{label}: stderr must say where it cut:\n{}",
            s.stderr
        );
        let (after, _) = parse_whole_frames(&s.after)
            .unwrap_or_else(|e| panic!("{label}: log after the cut and the append: {e}"));
        assert_eq!(after.len(), 3, "{label}: two kept frames and the new one");
        assert_eq!(after[..2], p[..2], "{label}");
    }
}

/// An intact frame (its CRC matches) is never a torn write, even when its
/// length is over a `--max-entry-bytes` lowered since it was written: by the
/// spec a torn tail is a frame cut short by the end of the file, or one
/// whose CRC fails with only zeros after it. Serving it, or refusing to open
/// with the file untouched, both keep the acknowledged entry; cutting it
/// away as "never acknowledged" does not.
#[test]
fn lowering_max_entry_bytes_never_cuts_an_intact_acknowledged_entry() {
    let big = text_payload("big-", 2000);
    for (label, payloads) in [
        ("the big entry is the last", vec!["small", big.as_str()]),
        (
            "the big entry is inside the log",
            vec!["small", big.as_str(), "after"],
        ),
    ] {
        let dir = tempdir();
        let log = log_path(dir.path(), "n1");
        let d = dir.path().to_str().unwrap();
        let made = run(&["--dir", d], &init_and_appends(&payloads));
        assert!(
            made.replies[1..]
                .iter()
                .all(|r| r["body"]["type"] == "wal_append_ok"),
            "{label}: {:?}",
            made.replies
        );
        let before = std::fs::read(&log).unwrap();
        let reads: Vec<String> = (0..payloads.len())
            .map(|i| req(10 + i as u64, json!({"type": "wal_read", "offset": i})))
            .collect();
        let mut lines = vec![common::init_line("n1"), req(2, json!({"type": "wal_info"}))];
        lines.extend(reads);
        let out = run(
            &["--dir", d, "--max-entry-bytes", "1000"],
            &input_of(&lines),
        );
        let b: Vec<&Value> = out.replies.iter().map(|r| &r["body"]).collect();
        if b[0]["type"] == "init_ok" {
            assert_eq!(
                b[1]["entries"],
                json!(payloads.len()),
                "{label}: restarted with --max-entry-bytes 1000 below a 2000-byte entry already \
                 acknowledged: the entry must stay (or the node must refuse to open), not be cut \
                 as a torn write: {}\nstderr:\n{}",
                b[1],
                out.stderr
            );
            for (i, p) in payloads.iter().enumerate() {
                assert_eq!(b[2 + i]["payload"], *p, "{label}: read {i}: {}", b[2 + i]);
                assert_eq!(b[2 + i]["checksum_valid"], true, "{label}: read {i}");
            }
        } else {
            assert_eq!(
                std::fs::read(&log).unwrap(),
                before,
                "{label}: refused to open ({}), so the file must be untouched",
                b[0]
            );
        }
        assert!(
            torn_files(&log).is_empty(),
            "{label}: an intact acknowledged entry was cut as a torn tail: {:?}\nstderr:\n{}",
            torn_files(&log),
            out.stderr
        );
    }
}

/// Every single-bit flip in the header (length or CRC word) of every frame
/// but the last: replay either refuses and leaves the file as it was, or
/// serves all the entries at their own offsets with only the flipped one
/// flagged. Never a cut of acknowledged entries, never a shifted offset.
#[test]
fn no_single_bit_flip_in_a_header_loses_or_shifts_an_acknowledged_entry() {
    use wal_node::log::{OpenError, Options, Recover, Segment};
    let payloads: Vec<String> = (1..=10).map(|i| format!("payload number {i}")).collect();
    let mut clean = Vec::new();
    let mut starts = Vec::new();
    for p in &payloads {
        starts.push(clean.len());
        clean.extend(wal_node::frame::encode(p.as_bytes()));
    }
    clean.resize(clean.len() + 4096, 0);
    let opts = Options {
        max_entry_bytes: 1 << 20,
        recover: Recover::Refuse,
        max_segment_bytes: None,
    };
    for (frame, &start) in starts.iter().enumerate().take(payloads.len() - 1) {
        for bit in 0..64 {
            let label = format!("frame {frame}, header bit {bit}");
            let mut bytes = clean.clone();
            bytes[start + bit / 8] ^= 1 << (bit % 8);
            let dir = tempdir();
            let path = dir.path().join("n1.wal");
            std::fs::write(&path, &bytes).unwrap();
            match Segment::open_file(&path, opts) {
                Err(OpenError::Damaged { .. }) => {
                    assert_eq!(
                        std::fs::read(&path).unwrap(),
                        bytes,
                        "{label}: refused, file must be untouched"
                    );
                }
                Err(e) => panic!("{label}: unexpected error {e}"),
                Ok((mut wal, cut, _)) => {
                    assert_eq!(cut, None, "{label}: cut acknowledged entries");
                    assert_eq!(
                        wal.entries(),
                        payloads.len() as u64,
                        "{label}: entries lost or invented"
                    );
                    for (i, p) in payloads.iter().enumerate() {
                        let entry = wal.read(i as u64).unwrap().unwrap();
                        if i == frame {
                            assert!(
                                !entry.checksum_valid,
                                "{label}: the flipped frame must be flagged"
                            );
                        } else {
                            assert!(entry.checksum_valid, "{label}: entry {i} damaged");
                            assert_eq!(entry.payload, p.as_bytes(), "{label}: entry {i} shifted");
                        }
                    }
                }
            }
        }
    }
}
