//! A log cut at every byte inside its last two frames: replay keeps exactly
//! the whole frames before the cut, saves exactly the cut bytes beside the
//! log, and the next append gets the next offset (issue 3, "Torn tail").

mod common;
mod crash_support;

use common::{log_path, run};
use crash_support::*;
use serde_json::{Value, json};
use std::path::Path;
use wal_node::log::Segment as Wal;

/// Payloads of varied sizes and contents. The second to last is 256 bytes,
/// so its length word is `00 01 00 00`: a cut one byte into it leaves a
/// single zero byte (nothing to save), a cut three bytes in leaves
/// `00 01 00`, whose last byte is zero.
fn payloads() -> Vec<String> {
    vec![
        "a".to_string(),
        "set x=42".to_string(),
        "ünïcödé ☃ payload, \"quoted\" and \\ escaped".to_string(),
        text_payload("mid-", 700),
        text_payload("second-to-last-", 256),
        "the very last entry: 37 bytes long ok".to_string(),
    ]
}

/// A log the real node made.
struct Made {
    /// The whole file: frames, then the preallocated zero tail.
    bytes: Vec<u8>,
    payloads: Vec<String>,
    /// Where each frame starts, and where the last one ends.
    starts: Vec<u64>,
    end: u64,
}

/// Makes a log with the real node; frame positions come from the replies.
fn node_made_log() -> Made {
    let dir = tempdir();
    let payloads = payloads();
    let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
    let out = run(
        &["--dir", dir.path().to_str().unwrap()],
        &init_and_appends(&refs),
    );
    assert!(out.status.success(), "node failed: {}", out.stderr);
    assert_eq!(
        out.replies.len(),
        1 + payloads.len(),
        "replies: {:?}",
        out.replies
    );
    let mut starts = Vec::new();
    let mut end = 0u64;
    for (i, r) in out.replies[1..].iter().enumerate() {
        assert_eq!(r["body"]["type"], "wal_append_ok", "append {i}: {r}");
        assert_eq!(r["body"]["offset"], json!(i), "append {i}: {r}");
        starts.push(end);
        end += 8 + r["body"]["length"].as_u64().expect("length in reply");
    }
    let bytes = std::fs::read(log_path(dir.path(), "n1")).unwrap();
    // The file is the frames the spec describes, then only zeros.
    let (read_back, frames_end) = parse_whole_frames(&bytes)
        .unwrap_or_else(|e| panic!("the node wrote a log that is not whole frames: {e}"));
    assert_eq!(frames_end, end, "frames end vs the replies' lengths");
    let want: Vec<Vec<u8>> = payloads.iter().map(|p| p.as_bytes().to_vec()).collect();
    assert_eq!(read_back, want, "the frames hold the appended payloads");
    assert_eq!(&bytes[..end as usize], frames(&want).0.as_slice());
    Made {
        bytes,
        payloads,
        starts,
        end,
    }
}

/// What a cut at `k` must leave: the number of whole frames before it and
/// where they end.
fn whole_before(starts: &[u64], end: u64, k: u64) -> (usize, u64) {
    let mut bounds: Vec<u64> = starts[1..].to_vec();
    bounds.push(end);
    let whole = bounds.iter().take_while(|&&b| b <= k).count();
    let at = if whole == 0 { 0 } else { bounds[whole - 1] };
    (whole, at)
}

/// Reopens `log` (holding `content`, the original cut at `k`) with the
/// library and checks everything the spec promises.
fn check_cut(
    log: &Path,
    content: &[u8],
    k: u64,
    made: &Made,
    zero_tail: bool,
    commit_and_reopen: bool,
    what: &str,
) {
    let payloads = &made.payloads;
    let (whole, at) = whole_before(&made.starts, made.end, k);
    let (mut wal, cut, _) = Wal::open_file(log, opts())
        .unwrap_or_else(|e| panic!("{what}: a torn tail must open, got: {e}"));
    assert_eq!(
        wal.entries(),
        whole as u64,
        "{what}: exactly the {whole} whole frames before the cut must remain"
    );
    assert_eq!(wal.bytes(), at, "{what}: total_bytes");
    assert_eq!(wal.corrupt_entries(), 0, "{what}: nothing is bit rot here");
    for (i, p) in payloads.iter().enumerate().take(whole) {
        let e = wal
            .read(i as u64)
            .unwrap()
            .unwrap_or_else(|| panic!("{what}: entry {i} missing"));
        assert!(e.checksum_valid, "{what}: entry {i} reads back invalid");
        assert_eq!(e.payload, p.as_bytes(), "{what}: entry {i} payload");
    }
    assert!(
        wal.read(whole as u64).unwrap().is_none(),
        "{what}: no entry past the cut"
    );

    // Saved evidence. The cut bytes are `content[at..]`. A tail of nothing
    // but zeros is end of log and needs no saving. Otherwise, when the file
    // ended at the cut, the saved file holds exactly the cut bytes; when
    // preallocated zeros followed the cut (`zero_tail`), the end of the
    // write cannot be told from those zeros, so the saved file must hold
    // every cut byte up to the last non-zero one and may go on over zeros.
    let cut_bytes = &content[at as usize..];
    let nonzero = trim_zeros(cut_bytes);
    let torn = torn_files(log);
    let on_disk = std::fs::read(log).unwrap();
    if nonzero.is_empty() {
        assert!(
            torn.is_empty(),
            "{what}: the bytes after the last whole frame are all zero (end of log): nothing to \
             save, but found {torn:?}"
        );
        assert!(
            cut.as_ref().is_none_or(|c| c.saved_to.is_none()),
            "{what}: {cut:?}"
        );
        assert!(
            on_disk.len() as u64 >= at
                && on_disk[..at as usize] == content[..at as usize]
                && on_disk[at as usize..].iter().all(|&b| b == 0),
            "{what}: the log must still hold the whole frames and then only zeros"
        );
    } else {
        let expected = torn_path(log, at);
        assert_eq!(
            torn,
            vec![expected.clone()],
            "{what}: the cut bytes must be saved in {} and only there",
            expected.display()
        );
        let got = std::fs::read(&expected).unwrap();
        if zero_tail {
            assert!(
                got.len() >= nonzero.len()
                    && got.len() <= cut_bytes.len()
                    && got[..] == cut_bytes[..got.len()],
                "{what}: {} must hold the cut bytes from offset {at} up to at least the last \
                 non-zero one ({} bytes: {:?}), got {} bytes: {:?}",
                expected.display(),
                nonzero.len(),
                nonzero,
                got.len(),
                got
            );
        } else {
            assert_eq!(
                got,
                cut_bytes,
                "{what}: {} must hold exactly the {} cut bytes from offset {at}",
                expected.display(),
                cut_bytes.len()
            );
        }
        let cut = cut.unwrap_or_else(|| panic!("{what}: Wal::open must report the cut"));
        assert_eq!(cut.pos, at, "{what}: cut point");
        assert_eq!(cut.saved_to.as_deref(), Some(expected.as_path()), "{what}");
        assert_eq!(
            on_disk.len() as u64,
            at,
            "{what}: the log must be truncated to the end of the last whole frame"
        );
        assert_eq!(
            on_disk,
            content[..at as usize],
            "{what}: kept frames unchanged"
        );
    }

    // The next append gets the next offset.
    let next = format!("appended after a cut at {k}");
    let a = wal.append(next.as_bytes());
    assert_eq!(a.offset, whole as u64, "{what}: next append's offset");
    // Committing it also preallocates a 16 MiB chunk (tens of ms), so only a
    // sample of the cuts goes on to commit it and reopen.
    if !commit_and_reopen {
        return;
    }
    wal.commit().unwrap();
    drop(wal);
    let mut wal = open(log);
    assert_eq!(wal.entries(), whole as u64 + 1, "{what}: after reopen");
    for (i, p) in payloads.iter().enumerate().take(whole) {
        let e = wal.read(i as u64).unwrap().unwrap();
        assert!(
            e.checksum_valid && e.payload == p.as_bytes(),
            "{what}: entry {i} after reopen"
        );
    }
    let e = wal.read(whole as u64).unwrap().unwrap();
    assert!(
        e.checksum_valid && e.payload == next.as_bytes(),
        "{what}: the appended entry after reopen"
    );
    assert_eq!(
        torn_files(log).len(),
        torn.len(),
        "{what}: reopening after the append must cut nothing more"
    );
}

/// Cuts worth committing after: frame boundaries, inside headers, and every
/// 16th byte.
fn sampled(k: u64, from: u64, starts: &[u64], end: u64) -> bool {
    (k - from).is_multiple_of(16) || k == end || starts.iter().any(|&s| k >= s && k <= s + 8)
}

/// Cuts the node-made log at every byte of its last two frames, followed by
/// `zero_tail` zero bytes (what a torn write into preallocated space leaves),
/// and checks what replay keeps and saves each time.
fn cut_every_byte_of_the_last_two_frames(zero_tail: usize) {
    let made = node_made_log();
    let (starts, end) = (&made.starts, made.end);
    let from = starts[starts.len() - 2];
    for k in from..=end {
        let dir = tempdir();
        let log = log_path(dir.path(), "n1");
        let mut content = made.bytes[..k as usize].to_vec();
        content.resize(k as usize + zero_tail, 0);
        common::write_log(dir.path(), "n1", &content);
        check_cut(
            &log,
            &content,
            k,
            &made,
            zero_tail > 0,
            sampled(k, from, starts, end),
            &format!("cut at byte {k} (frames {from}..{end}), then {zero_tail} zero bytes"),
        );
    }
}

#[test]
fn cut_at_every_byte_of_the_last_two_frames() {
    cut_every_byte_of_the_last_two_frames(0);
}

#[test]
fn cut_at_every_byte_of_the_last_two_frames_inside_a_zero_tail() {
    cut_every_byte_of_the_last_two_frames(4096);
}

/// One case through the binary: stderr says what was cut, where and why,
/// and the node serves the kept entries and the next offset.
fn binary_case(content: Vec<u8>, cut_at: u64, why: &[&str], label: &str) {
    let payloads = payloads();
    let p: Vec<Vec<u8>> = payloads.iter().map(|p| p.as_bytes().to_vec()).collect();
    let (bytes, starts) = frames(&p);
    let end = bytes.len() as u64;
    let (whole, at) = whole_before(&starts, end, cut_at);
    let dir = tempdir();
    let log = log_path(dir.path(), "n1");
    common::write_log(dir.path(), "n1", &content);
    let mut lines = vec![common::init_line("n1"), req(2, json!({"type": "wal_info"}))];
    for i in 0..whole {
        lines.push(req(10 + i as u64, json!({"type": "wal_read", "offset": i})));
    }
    lines.push(req(
        999,
        json!({"type": "wal_append", "payload": "after the cut"}),
    ));
    let out = run(&["--dir", dir.path().to_str().unwrap()], &input_of(&lines));
    assert!(out.status.success(), "{label}: node failed: {}", out.stderr);
    let bodies: Vec<&Value> = out.replies.iter().map(|r| &r["body"]).collect();
    assert_eq!(
        bodies[0]["type"], "init_ok",
        "{label}: {bodies:?}\n{}",
        out.stderr
    );
    assert_eq!(
        bodies[1]["entries"],
        json!(whole),
        "{label}: {:?}",
        bodies[1]
    );
    assert_eq!(
        bodies[1]["total_bytes"],
        json!(at),
        "{label}: {:?}",
        bodies[1]
    );
    for (i, b) in bodies[2..2 + whole].iter().enumerate() {
        assert_eq!(b["type"], "wal_read_ok", "{label}: read {i}: {b}");
        assert_eq!(b["checksum_valid"], true, "{label}: read {i}: {b}");
        assert_eq!(b["payload"], payloads[i].as_str(), "{label}: read {i}");
    }
    let last = bodies.last().unwrap();
    assert_eq!(last["type"], "wal_append_ok", "{label}: {last}");
    assert_eq!(
        last["offset"],
        json!(whole),
        "{label}: next append's offset"
    );

    let saved = torn_path(&log, at);
    let got = std::fs::read(&saved)
        .unwrap_or_else(|e| panic!("{label}: reading {}: {e}", saved.display()));
    let cut_bytes = &content[at as usize..];
    assert!(
        got.len() >= trim_zeros(cut_bytes).len()
            && got.len() <= cut_bytes.len()
            && got[..] == cut_bytes[..got.len()],
        "{label}: {} must hold the cut bytes from offset {at} ({:?}...), got {got:?}",
        saved.display(),
        trim_zeros(cut_bytes)
    );
    let cut_len = got.len();
    // stderr: what (how many bytes), where (offset), why, and where they went.
    let err = &out.stderr;
    let line = err
        .lines()
        .find(|l| l.contains("torn"))
        .unwrap_or_else(|| panic!("{label}: stderr must report the torn tail:\n{err}"));
    assert!(
        line.contains(&at.to_string()),
        "{label}: stderr must say where the cut is (byte offset {at}): {line}"
    );
    assert!(
        line.contains(&cut_len.to_string()),
        "{label}: stderr must say how much was cut ({cut_len} bytes): {line}"
    );
    assert!(
        why.iter().any(|w| line.to_lowercase().contains(w)),
        "{label}: stderr must say why (one of {why:?}): {line}"
    );
    assert!(
        err.contains(&saved.display().to_string()),
        "{label}: stderr must name the file holding the cut bytes ({}):\n{err}",
        saved.display()
    );
}

#[test]
fn node_reports_a_cut_inside_the_last_payload() {
    let p: Vec<Vec<u8>> = payloads().iter().map(|p| p.as_bytes().to_vec()).collect();
    let (bytes, starts) = frames(&p);
    let k = starts[p.len() - 1] + 8 + 10;
    binary_case(
        bytes[..k as usize].to_vec(),
        k,
        &["end of file", "past the end", "short"],
        "cut 10 bytes into the last payload",
    );
}

#[test]
fn node_reports_a_cut_inside_a_header_followed_by_zeros() {
    let p: Vec<Vec<u8>> = payloads().iter().map(|p| p.as_bytes().to_vec()).collect();
    let (bytes, starts) = frames(&p);
    // Length word and half the CRC word of the last frame, then preallocated
    // zeros: the CRC cannot match.
    let k = starts[p.len() - 1] + 6;
    let mut content = bytes[..k as usize].to_vec();
    content.resize(content.len() + (1 << 20), 0);
    binary_case(
        content,
        k,
        &["checksum", "crc"],
        "cut 6 bytes into the last header, then 1 MiB of zeros",
    );
}
