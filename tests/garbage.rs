//! Garbage on stdin: a line that is no message is answered with error 12
//! when its sender (`src` and `body.msg_id`) can still be found, and is
//! otherwise logged to stderr and skipped; a huge line is discarded as it
//! streams past. The node goes on serving, with every acknowledged entry
//! still readable. stderr reports bad lines in input order, each with its
//! line number. Only JSON replies ever reach stdout, the node exits 0 when
//! its input ends, and a closed stderr does not stop it.

mod common;

use common::{Running, init_line, line};
use serde_json::{Value, json};
use std::process::Command;

/// A line that is no message. A non-empty one carries a marker (`G1`,
/// `G2`, ...) that the node's stderr log of it must show if it is short.
struct Garbage {
    what: &'static str,
    line: Vec<u8>,
    /// The `msg_id` that is answered with error 12, and words its text
    /// must hold; `None`: nobody to answer, no reply.
    answered: Option<(u64, &'static str)>,
}

fn garbage(what: &'static str, line: &[u8], answered: Option<(u64, &'static str)>) -> Garbage {
    Garbage {
        what,
        line: line.to_vec(),
        answered,
    }
}

/// Lines that do not parse as a message, each kind once.
fn garbage_lines() -> Vec<Garbage> {
    vec![
        garbage("not JSON", b"this is not json G1", None),
        garbage(
            "truncated JSON",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":901,"payload":"G2"#,
            Some((901, "EOF while parsing")),
        ),
        garbage("invalid UTF-8 bytes", b"\xff\xfe\xfd G3 \xc3\x28 \x80", None),
        garbage(
            "invalid UTF-8 inside a request's payload",
            b"{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"type\":\"wal_append\",\"msg_id\":902,\"payload\":\"G4 \xff\xfe\"}}",
            Some((902, "invalid UTF-8 at byte offset 79 of the line")),
        ),
        garbage(
            "a JSON array",
            br#"["G5",{"src":"c1","dest":"n1","body":{"msg_id":920}}]"#,
            None,
        ),
        garbage("an empty object", b"{}", None),
        garbage(
            "an object with no src",
            br#"{"dest":"n1","body":{"type":"wal_info","msg_id":903},"G7":1}"#,
            None,
        ),
        garbage(
            "an object with no body",
            br#"{"src":"c1","dest":"n1","G8":1}"#,
            None,
        ),
        garbage(
            "a body that is not an object",
            br#"{"src":"c1","dest":"n1","body":"G9"}"#,
            None,
        ),
        garbage(
            "a src that is not a string",
            br#"{"src":42,"dest":"n1","body":{"type":"wal_info","msg_id":904},"G10":1}"#,
            None,
        ),
        garbage("JSON null", b"null", None),
        garbage("a JSON string", br#""G12 just a string""#, None),
        garbage("a JSON number", b"1313", None),
        garbage(
            "a lone surrogate escape",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":905,"payload":"G14 \ud800"}}"#,
            Some((905, r"lone UTF-16 surrogate \ud800 at byte offset 80")),
        ),
        garbage("NUL bytes", b"\0\0G15\0", None),
        garbage(
            "a request followed by trailing garbage",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":906,"payload":"G16"}} trailing"#,
            Some((906, "trailing characters")),
        ),
        garbage(
            "two requests on one line",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_info","msg_id":907}}{"src":"c1","dest":"n1","body":{"type":"wal_info","msg_id":908},"G17":1}"#,
            Some((907, "trailing characters")),
        ),
        garbage(
            "invalid UTF-8 inside src",
            b"{\"src\":\"c\xff\",\"dest\":\"n1\",\"body\":{\"type\":\"wal_info\",\"msg_id\":909},\"G18\":1}",
            None,
        ),
        garbage(
            "a lone surrogate inside src",
            br#"{"src":"c\udc00","dest":"n1","body":{"type":"wal_info","msg_id":910},"G19":1}"#,
            None,
        ),
        garbage(
            "a lone surrogate and no msg_id",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","payload":"G20 \ud800"}}"#,
            None,
        ),
        garbage(
            "a line cut off inside its msg_id",
            br#"{"src":"c1","dest":"n1","G21":1,"body":{"type":"wal_info","msg_id":911"#,
            None,
        ),
    ]
}

fn marker(index: usize) -> String {
    format!("G{}", index + 1)
}

fn has_marker(line: &[u8], marker: &str) -> bool {
    let m = marker.as_bytes();
    line.windows(m.len())
        .enumerate()
        .any(|(i, w)| w == m && !line.get(i + m.len()).is_some_and(u8::is_ascii_digit))
}

fn push_line(input: &mut Vec<u8>, l: &[u8]) {
    input.extend_from_slice(l);
    input.push(b'\n');
}

fn request(src: &str, body: Value) -> Vec<u8> {
    line(src, body).into_bytes()
}

/// Checks that every reply is a whole Maelstrom message from n1.
fn assert_all_replies_are_messages(replies: &[Value]) {
    for r in replies {
        assert!(
            r["src"] == "n1" && r["dest"].is_string() && r["body"]["type"].is_string(),
            "stdout carried something that is not a reply message: {r}"
        );
    }
}

/// Runs the node (private log) on all of `input` and checks it ran to the
/// end of its input and exited 0, whatever the input held.
fn run_to_end(input: &[u8], what: &str) -> common::Finished {
    run_to_end_with(&[], input, what)
}

fn run_to_end_with(args: &[&str], input: &[u8], what: &str) -> common::Finished {
    let out = common::run(args, input);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: exit status; stderr:\n{}",
        out.stderr
    );
    out
}

/// The stderr lines about bad input, as (input line number, text), in the
/// order they were written.
fn complaints(stderr: &str) -> Vec<(u64, &str)> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("wal-node: input line ")?;
            let (n, _) = rest.split_once(':')?;
            Some((n.parse().ok()?, l))
        })
        .collect()
}

/// Feeds the node init, a first append, then each of `garbage` followed
/// by an append and a read of entry 0, then blank lines and an info, all
/// in one pipe. Checks every reply (error 12 exactly for the lines whose
/// sender can be found, each append the next entry, entry 0 intact after
/// each line, no entry added by garbage) and that stderr reports each bad
/// line once, by its line number, in input order, after the init before
/// it. Returns stderr.
fn check_garbage(args: &[&str], garbage: &[Garbage]) -> String {
    let mut input = Vec::new();
    push_line(&mut input, init_line("n1").as_bytes());
    push_line(
        &mut input,
        &request(
            "c1",
            json!({"type": "wal_append", "msg_id": 2, "payload": "before"}),
        ),
    );
    let mut bad_line_numbers = Vec::new();
    for (i, g) in garbage.iter().enumerate() {
        bad_line_numbers.push(3 + 3 * i as u64);
        push_line(&mut input, &g.line);
        push_line(
            &mut input,
            &request(
                "c1",
                json!({"type": "wal_append", "msg_id": 10 + 2 * i, "payload": format!("after {}", marker(i))}),
            ),
        );
        push_line(
            &mut input,
            &request(
                "c1",
                json!({"type": "wal_read", "msg_id": 11 + 2 * i, "offset": 0}),
            ),
        );
    }
    // Blank and whitespace-only lines are no requests either.
    let blank = 3 + 3 * garbage.len() as u64;
    bad_line_numbers.extend([blank, blank + 1]);
    push_line(&mut input, b"");
    push_line(&mut input, b"   \t ");
    push_line(
        &mut input,
        &request("c1", json!({"type": "wal_info", "msg_id": 1000})),
    );

    let out = run_to_end_with(args, &input, "garbage");
    assert_all_replies_are_messages(&out.replies);
    let mut bodies = out.replies.iter().map(|r| &r["body"]);
    let mut next = |what: &str| {
        bodies
            .next()
            .unwrap_or_else(|| panic!("no reply {what}; stderr:\n{}", out.stderr))
    };
    let init = next("to init");
    assert_eq!(init["type"], "init_ok", "reply to init: {init}");
    let first = next("to the first append");
    assert_eq!(
        (&first["type"], &first["offset"]),
        (&json!("wal_append_ok"), &json!(0)),
        "reply to the first append: {first}"
    );
    for (i, g) in garbage.iter().enumerate() {
        let what = g.what;
        if let Some((msg_id, words)) = g.answered {
            let error = next(&format!("to {what}"));
            assert_eq!(
                (&error["type"], &error["in_reply_to"], &error["code"]),
                (&json!("error"), &json!(msg_id), &json!(12)),
                "{what} names its sender: error 12 expected, got {error}"
            );
            let text = error["text"].as_str().unwrap_or_default();
            assert!(
                text.contains(words),
                "the error for {what} must say {words:?}: {text:?}"
            );
        }
        let append = next(&format!("to the append after {what}"));
        assert_eq!(
            (&append["type"], &append["in_reply_to"], &append["offset"]),
            (&json!("wal_append_ok"), &json!(10 + 2 * i), &json!(1 + i)),
            "the append after {what} was not served as the next entry: {append}"
        );
        let read = next(&format!("to the read after {what}"));
        assert_eq!(
            (
                &read["type"],
                &read["in_reply_to"],
                &read["payload"],
                &read["checksum_valid"]
            ),
            (
                &json!("wal_read_ok"),
                &json!(11 + 2 * i),
                &json!("before"),
                &json!(true)
            ),
            "after {what}, the first acknowledged entry did not read back: {read}"
        );
    }
    let info = next("to the last wal_info");
    assert_eq!(
        (&info["type"], &info["entries"]),
        (&json!("wal_info_ok"), &json!(1 + garbage.len())),
        "garbage must not have added entries: {info}"
    );
    assert_eq!(bodies.next(), None, "more replies than requests");

    let reported = complaints(&out.stderr);
    let numbers: Vec<u64> = reported.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers, bad_line_numbers,
        "stderr must report each bad line once, by its line number, in input order:\n{}",
        out.stderr
    );
    for ((i, g), (_, said)) in garbage.iter().enumerate().zip(&reported) {
        let m = marker(i);
        if has_marker(&g.line[..g.line.len().min(150)], &m) {
            assert!(
                has_marker(said.as_bytes(), &m),
                "stderr does not show the line with {} (marker {m}): {said}",
                g.what
            );
        }
        let answered = said.contains("answered error 12");
        assert_eq!(
            answered,
            g.answered.is_some(),
            "stderr about {} must say whether it was answered: {said}",
            g.what
        );
    }
    let serving = out
        .stderr
        .lines()
        .position(|l| l.contains("serving log"))
        .expect("a `serving log` line");
    let first_complaint = out
        .stderr
        .lines()
        .position(|l| l.starts_with("wal-node: input line "))
        .expect("complaints");
    assert!(
        serving < first_complaint,
        "the init's `serving log` line must come before the bad lines after it:\n{}",
        out.stderr
    );
    out.stderr
}

#[test]
fn after_each_garbage_line_the_node_still_serves() {
    check_garbage(&[], &garbage_lines());
}

/// A line of `len` bytes: `head`, then `x` up to `len - tail.len()`, then `tail`.
fn long_line(head: &[u8], len: usize, tail: &[u8]) -> Vec<u8> {
    let mut l = head.to_vec();
    l.resize(len - tail.len(), b'x');
    l.extend_from_slice(tail);
    l
}

/// Issue 8, item 5: an over-long line, invalid UTF-8 inside a string, and
/// a lone UTF-16 surrogate each get error 12 naming what was wrong when
/// the line's `src` and `body.msg_id` can be found, and only a log line
/// when they cannot. An over-long line is scanned as it streams past, so
/// its sender is found wherever in the line it is.
#[test]
fn lines_that_do_not_parse_are_answered_when_their_sender_is_found() {
    // With this limit a line may be 6 * 16 + 65536 = 65632 bytes.
    let args = ["--max-entry-bytes", "16"];
    let over = 70_000;
    let lines = vec![
        garbage(
            "an over-long line, src first",
            &long_line(
                br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":930,"payload":""#,
                over,
                br#""}}"#,
            ),
            Some((930, "the line is 70000 bytes, over the limit of 65632 bytes")),
        ),
        garbage(
            "an over-long line, src last and msg_id after the payload",
            &long_line(
                br#"{"dest":"n1","body":{"type":"wal_append","payload":""#,
                over,
                br#"","msg_id":931},"src":"c1"}"#,
            ),
            Some((931, "discarded unread")),
        ),
        garbage(
            "an over-long line with invalid UTF-8 and a lone surrogate in it",
            &long_line(
                b"{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"msg_id\":932,\"payload\":\"\xff\\ud800",
                over,
                br#""}}"#,
            ),
            Some((932, "over the limit")),
        ),
        garbage(
            "an over-long line with no msg_id",
            &long_line(
                br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","payload":""#,
                over,
                br#""}}"#,
            ),
            None,
        ),
        garbage(
            "an over-long line with no src",
            &long_line(
                br#"{"dest":"n1","body":{"type":"wal_append","msg_id":933,"payload":""#,
                over,
                br#""}}"#,
            ),
            None,
        ),
        garbage(
            "an over-long line that is not an object",
            &long_line(br#"["src","c1",{"body":{"msg_id":934}}"#, over, b"]"),
            None,
        ),
        garbage(
            "invalid UTF-8 in the payload",
            b"{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"type\":\"wal_append\",\"msg_id\":935,\"payload\":\"\xc3\x28\"}}",
            Some((935, "invalid UTF-8 at byte offset 76 of the line")),
        ),
        garbage(
            "invalid UTF-8 in src",
            b"{\"src\":\"\xc3\x28\",\"dest\":\"n1\",\"body\":{\"type\":\"wal_info\",\"msg_id\":936}}",
            None,
        ),
        garbage(
            "invalid UTF-8 and no msg_id",
            b"{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"type\":\"wal_append\",\"payload\":\"\xff\"}}",
            None,
        ),
        garbage(
            "a lone surrogate in the payload",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":937,"payload":"a\udfffb"}}"#,
            Some((937, r"lone UTF-16 surrogate \udfff at byte offset 77 of the line")),
        ),
        garbage(
            "a lone surrogate in src",
            br#"{"src":"\ud800","dest":"n1","body":{"type":"wal_info","msg_id":938}}"#,
            None,
        ),
        garbage(
            "a lone surrogate and a msg_id that is a string",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":"939","payload":"\ud800"}}"#,
            None,
        ),
    ];
    check_garbage(&args, &lines);
}

/// Issue 8, item 8: a batch is parsed whole before it is served, but stderr
/// must still follow the input: a bad line before `init` is reported
/// before the `serving log` line, one after it after. A line answered
/// before `init` comes from the address it was sent to.
#[test]
fn stderr_reports_bad_lines_in_input_order_with_their_line_numbers() {
    let mut input = Vec::new();
    push_line(&mut input, b"junk before init");
    push_line(
        &mut input,
        br#"{"src":"c1","dest":"n1","body":{"type":"wal_info","msg_id":5,"p":"\ud800"}}"#,
    );
    push_line(&mut input, init_line("n1").as_bytes());
    push_line(&mut input, b"junk after init");
    push_line(
        &mut input,
        &request(
            "c1",
            json!({"type": "wal_append", "msg_id": 6, "payload": "x"}),
        ),
    );
    push_line(&mut input, b"");
    let out = run_to_end(&input, "");
    let said: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("serving log") || l.starts_with("wal-node: input line "))
        .map(|l| {
            if l.contains("serving log") {
                "serving log"
            } else {
                l.split(':').nth(1).unwrap_or_default().trim()
            }
        })
        .collect();
    assert_eq!(
        said,
        [
            "input line 1",
            "input line 2",
            "serving log",
            "input line 4",
            "input line 6"
        ],
        "stderr:\n{}",
        out.stderr
    );
    let first = &out.replies[0];
    assert_eq!(
        (
            &first["src"],
            &first["dest"],
            &first["body"]["in_reply_to"],
            &first["body"]["code"]
        ),
        (&json!("n1"), &json!("c1"), &json!(5), &json!(12)),
        "{first}"
    );
}

/// Exactly 64 MiB (without the newline): a well-formed append whose payload
/// is far over every limit, with `src` before the payload or after it.
fn huge_append_line(msg_id: u64, src_last: bool) -> String {
    const SIZE: usize = 64 << 20;
    let (head, tail) = if src_last {
        (
            r#"{"dest":"n1","body":{"type":"wal_append","payload":""#.to_owned(),
            format!(r#"","msg_id":{msg_id}}},"src":"c1"}}"#),
        )
    } else {
        (
            format!(
                r#"{{"src":"c1","dest":"n1","body":{{"type":"wal_append","msg_id":{msg_id},"payload":""#
            ),
            r#""}}"#.to_owned(),
        )
    };
    let mut l = String::with_capacity(SIZE);
    l.push_str(&head);
    l.extend(std::iter::repeat_n('x', SIZE - head.len() - tail.len()));
    l.push_str(&tail);
    assert_eq!(l.len(), SIZE);
    l
}

/// Peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}

#[test]
fn a_64_mib_line_is_discarded_without_being_held_and_the_node_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr_path = tmp.path().join("stderr.log");
    // `exec` keeps the pid: the child is the node itself, stderr in a file.
    let mut node = Running::spawn_with(
        Command::new("bash")
            .arg("-c")
            .arg(r#"exec "$0" 2>"$1""#)
            .arg(common::bin())
            .arg(&stderr_path),
    );
    let pid = node.child.id();
    assert_eq!(node.init("n1")["type"], "init_ok");
    let first = node.append("before the huge line");
    assert_eq!(
        (first["type"].as_str(), first["offset"].as_u64()),
        (Some("wal_append_ok"), Some(0))
    );

    // Its sender is found as it streams past, at the head or the tail.
    for (msg_id, src_last) in [(999, false), (998, true)] {
        let huge = huge_append_line(msg_id, src_last);
        node.send_line(&huge);
        drop(huge);
        let error = node.recv();
        assert_eq!(
            (
                &error["dest"],
                &error["body"]["in_reply_to"],
                &error["body"]["code"]
            ),
            (&json!("c1"), &json!(msg_id), &json!(12)),
            "the answer to the 64 MiB line (src last: {src_last}): {error}"
        );
        let text = error["body"]["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("67108864 bytes") && text.contains("discarded unread"),
            "{text}"
        );
    }

    let after = node.append("after the huge line");
    assert_eq!(
        (after["type"].as_str(), after["offset"].as_u64()),
        (Some("wal_append_ok"), Some(1)),
        "the append after the 64 MiB line: {after}"
    );
    for (offset, payload) in [(0, "before the huge line"), (1, "after the huge line")] {
        let read = node.read(offset);
        assert_eq!(
            (&read["type"], &read["payload"], &read["checksum_valid"]),
            (&json!("wal_read_ok"), &json!(payload), &json!(true)),
            "entry {offset} after the 64 MiB line: {read}"
        );
    }
    let info = node.info();
    assert_eq!(
        info["entries"], 2,
        "the 64 MiB line must not become an entry: {info}"
    );

    let peak = peak_rss_kib(pid);
    assert!(
        peak < 40 << 10,
        "the node's peak memory was {peak} KiB: it held a 64 MiB line instead of discarding it"
    );

    assert!(
        node.try_recv(std::time::Duration::from_millis(200))
            .is_none(),
        "an unexpected extra reply arrived"
    );
    let status = node.finish();
    assert_eq!(status.code(), Some(0), "exit status at end of input");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let discarded = stderr
        .lines()
        .filter(|l| l.contains("discarded") && l.contains(&(64u64 << 20).to_string()))
        .count();
    assert_eq!(
        discarded,
        2,
        "stderr does not say two lines of {} bytes were discarded:\n{stderr}",
        64u64 << 20
    );
}

#[test]
fn a_64_mib_line_among_garbage_in_one_piped_input() {
    // Not JSON at all, and the last line of input has no newline.
    let mut input = Vec::new();
    push_line(&mut input, init_line("n1").as_bytes());
    push_line(
        &mut input,
        &request(
            "c1",
            json!({"type": "wal_append", "msg_id": 2, "payload": "kept"}),
        ),
    );
    input.extend(std::iter::repeat_n(b'{', 64 << 20));
    input.push(b'\n');
    push_line(
        &mut input,
        &request("c1", json!({"type": "wal_read", "msg_id": 3, "offset": 0})),
    );
    input.extend(std::iter::repeat_n(b'z', 64 << 20));

    let out = run_to_end(&input, "");
    assert_all_replies_are_messages(&out.replies);
    let types: Vec<&Value> = out.replies.iter().map(|r| &r["body"]["type"]).collect();
    assert_eq!(
        types,
        ["init_ok", "wal_append_ok", "wal_read_ok"],
        "replies: {:?}",
        out.replies
    );
    assert_eq!(out.replies[2]["body"]["payload"], "kept");
    let discarded = out
        .stderr
        .lines()
        .filter(|l| l.contains("discarded"))
        .count();
    assert_eq!(
        discarded, 2,
        "both 64 MiB lines must be logged as discarded:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.len() < 64 << 10,
        "stderr is {} bytes: the discarded lines must not be echoed whole",
        out.stderr.len()
    );
}

#[test]
fn the_node_exits_0_at_end_of_input() {
    let init = init_line("n1");
    let append = line(
        "c1",
        json!({"type": "wal_append", "msg_id": 2, "payload": "last"}),
    );
    let inputs: Vec<(&str, Vec<u8>, usize)> = vec![
        ("empty input", Vec::new(), 0),
        ("only a newline", b"\n".to_vec(), 0),
        ("only garbage", b"garbage\n\xff\xff\n[1,2]".to_vec(), 0),
        (
            "a request before init",
            format!("{append}\n").into_bytes(),
            1,
        ),
        ("init only", format!("{init}\n").into_bytes(), 1),
        (
            "a last line without newline",
            format!("{init}\n{append}").into_bytes(),
            2,
        ),
        (
            "ending in half a line",
            format!("{init}\n{append}\n{{\"src\":\"c1\",").into_bytes(),
            2,
        ),
    ];
    for (what, input, replies) in inputs {
        let out = run_to_end(&input, what);
        assert_eq!(
            out.replies.len(),
            replies,
            "{what}: replies {:?}",
            out.replies
        );
        assert_all_replies_are_messages(&out.replies);
    }
    // The last line, even without its newline, is a request like any other.
    let out = common::run(&[], format!("{init}\n{append}").as_bytes());
    assert_eq!(
        out.replies[1]["body"]["type"], "wal_append_ok",
        "{:?}",
        out.replies
    );
}

/// The line limit must never refuse a payload that `--max-entry-bytes`
/// allows, however it is escaped: the longest legal line is answered, and a
/// payload one byte over the limit is answered with error 12, not dropped.
#[test]
fn a_maximal_payload_fully_escaped_is_served_not_discarded() {
    const MAX: usize = 1 << 20;
    let mut input = Vec::new();
    push_line(&mut input, init_line("n1").as_bytes());
    // Every byte as a six-byte `\u0001` escape: a line over 6 MiB.
    for (msg_id, n) in [(2, MAX), (3, MAX + 1)] {
        let mut l = br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":"#.to_vec();
        l.extend_from_slice(format!(r#"{msg_id},"payload":""#).as_bytes());
        for _ in 0..n {
            l.extend_from_slice(br"\u0001");
        }
        l.extend_from_slice(br#""}}"#);
        push_line(&mut input, &l);
    }
    push_line(
        &mut input,
        &request("c1", json!({"type": "wal_info", "msg_id": 4})),
    );

    let out = run_to_end(&input, "");
    let bodies: Vec<&Value> = out.replies.iter().map(|r| &r["body"]).collect();
    assert_eq!(
        bodies.len(),
        4,
        "one reply per request; stderr:\n{}",
        out.stderr
    );
    let expected_crc = format!("{:08x}", crc32fast::hash(&[1u8; MAX]));
    assert_eq!(
        (
            &bodies[1]["type"],
            &bodies[1]["length"],
            &bodies[1]["checksum"]
        ),
        (&json!("wal_append_ok"), &json!(MAX), &json!(expected_crc)),
        "a {MAX}-byte payload is within --max-entry-bytes"
    );
    assert_eq!(
        (
            &bodies[2]["type"],
            &bodies[2]["in_reply_to"],
            &bodies[2]["code"]
        ),
        (&json!("error"), &json!(3), &json!(12)),
        "a payload one byte over the limit gets error 12"
    );
    assert_eq!(bodies[3]["entries"], 1, "{}", bodies[3]);
}

/// Whoever reads the node's stderr may go away (a closed terminal, a log
/// collector that died). Logging must not take the node down: with stderr a
/// pipe nobody reads, it still answers everything, garbage included, and
/// exits 0 at end of input.
#[test]
fn a_closed_stderr_does_not_stop_the_node() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    // No reader left: every write to stderr now fails with EPIPE.
    drop(reader);
    let mut input = Vec::new();
    push_line(&mut input, init_line("n1").as_bytes());
    // Each of these makes the node write to stderr.
    push_line(&mut input, b"not json, logged");
    push_line(&mut input, &[b'x'; 1 << 17]);
    push_line(
        &mut input,
        &request(
            "c1",
            json!({"type": "wal_append", "msg_id": 2, "payload": "kept"}),
        ),
    );
    push_line(
        &mut input,
        &request("c1", json!({"type": "wal_read", "msg_id": 3, "offset": 0})),
    );
    let mut child = Command::new(common::bin())
        .args(["--max-entry-bytes", "16"])
        .env_remove("WAL_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(writer)
        .spawn()
        .expect("spawn wal-node");
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for wal-node");
    feeder.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "exit status with stderr closed (101 is a panic)"
    );
    let bodies: Vec<Value> = String::from_utf8(out.stdout)
        .expect("stdout is UTF-8")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON reply")["body"].clone())
        .collect();
    let summary: Vec<(&Value, &Value)> = bodies
        .iter()
        .map(|b| (&b["type"], &b["in_reply_to"]))
        .collect();
    assert_eq!(
        summary,
        [
            (&json!("init_ok"), &json!(1)),
            (&json!("wal_append_ok"), &json!(2)),
            (&json!("wal_read_ok"), &json!(3)),
        ],
        "replies with stderr closed: {bodies:?}"
    );
    assert_eq!(bodies[2]["payload"], "kept");
}

/// When a batch's write fails (here: the file size limit), its requests
/// are redone one at a time. A bad line in that batch is still reported
/// once, in its turn, not again on the retry.
#[test]
fn a_bad_line_in_a_batch_redone_after_a_failed_write_is_reported_once() {
    let mut input = Vec::new();
    push_line(&mut input, init_line("n1").as_bytes());
    // 12 KB: over the 8 KiB file size limit below, so the batch's write fails.
    push_line(
        &mut input,
        &request(
            "c1",
            json!({"type": "wal_append", "msg_id": 2, "payload": "b".repeat(12_000)}),
        ),
    );
    push_line(&mut input, b"junk in the batch");
    push_line(
        &mut input,
        &request(
            "c1",
            json!({"type": "wal_append", "msg_id": 4, "payload": "small"}),
        ),
    );
    // SIGXFSZ ignored, so a write past the limit fails with EFBIG.
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 8; exec "$0""#)
        .arg(common::bin())
        .env_remove("WAL_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wal-node");
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for wal-node");
    feeder.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let types: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON reply");
            json!([v["body"]["type"], v["body"]["code"]])
        })
        .collect();
    assert_eq!(
        types,
        [
            json!(["init_ok", null]),
            json!(["error", 14]),
            json!(["wal_append_ok", null])
        ],
        "stderr:\n{stderr}"
    );
    let retried = stderr.contains("retrying one at a time");
    let reported = complaints(&stderr);
    assert_eq!(
        reported.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [3],
        "the bad line must be reported once (batch retried: {retried}):\n{stderr}"
    );
}
