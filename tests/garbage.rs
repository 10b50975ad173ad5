//! Garbage on stdin: lines that cannot be answered are logged to stderr and
//! skipped, a huge line is discarded as it streams past, and the node goes
//! on serving, with every acknowledged entry still readable. Only JSON
//! replies ever reach stdout, and the node exits 0 when its input ends.

mod common;

use common::{Running, init_line, line};
use serde_json::{Value, json};
use std::process::Command;

/// Lines the node cannot answer. Each non-empty one carries a marker
/// (`G1`, `G2`, ...) that the node's stderr log of it must show.
fn garbage_lines() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("not JSON", b"this is not json G1".to_vec()),
        (
            "truncated JSON",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":901,"payload":"G2"#
                .to_vec(),
        ),
        ("invalid UTF-8 bytes", b"\xff\xfe\xfd G3 \xc3\x28 \x80".to_vec()),
        (
            "invalid UTF-8 inside a request's payload",
            b"{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"type\":\"wal_append\",\"msg_id\":902,\"payload\":\"G4 \xff\xfe\"}}"
                .to_vec(),
        ),
        ("a JSON array", br#"["G5",{"src":"c1","dest":"n1","body":{}}]"#.to_vec()),
        ("an empty object", b"{}".to_vec()),
        (
            "an object with no src",
            br#"{"dest":"n1","body":{"type":"wal_info","msg_id":903},"G7":1}"#.to_vec(),
        ),
        ("an object with no body", br#"{"src":"c1","dest":"n1","G8":1}"#.to_vec()),
        ("a body that is not an object", br#"{"src":"c1","dest":"n1","body":"G9"}"#.to_vec()),
        (
            "a src that is not a string",
            br#"{"src":42,"dest":"n1","body":{"type":"wal_info","msg_id":904},"G10":1}"#.to_vec(),
        ),
        ("JSON null", b"null".to_vec()),
        ("a JSON string", br#""G12 just a string""#.to_vec()),
        ("a JSON number", b"1313".to_vec()),
        (
            "a lone surrogate escape",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":905,"payload":"G14 \ud800"}}"#
                .to_vec(),
        ),
        ("NUL bytes", b"\0\0G15\0".to_vec()),
        (
            "a request followed by trailing garbage",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":906,"payload":"G16"}} trailing"#
                .to_vec(),
        ),
        (
            "two requests on one line",
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_info","msg_id":907}}{"src":"c1","dest":"n1","body":{"type":"wal_info","msg_id":908},"G17":1}"#
                .to_vec(),
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
    let out = common::run(&[], input);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: exit status; stderr:\n{}",
        out.stderr
    );
    out
}

#[test]
fn after_each_garbage_line_the_node_still_serves() {
    let garbage = garbage_lines();
    let mut input = Vec::new();
    push_line(&mut input, init_line("n1").as_bytes());
    push_line(
        &mut input,
        &request(
            "c1",
            json!({"type": "wal_append", "msg_id": 2, "payload": "before"}),
        ),
    );
    let mut msg_id = 10;
    for (i, (_, g)) in garbage.iter().enumerate() {
        push_line(&mut input, g);
        push_line(
            &mut input,
            &request(
                "c1",
                json!({"type": "wal_append", "msg_id": msg_id, "payload": format!("after {}", marker(i))}),
            ),
        );
        push_line(
            &mut input,
            &request(
                "c1",
                json!({"type": "wal_read", "msg_id": msg_id + 1, "offset": 0}),
            ),
        );
        msg_id += 2;
    }
    // Blank and whitespace-only lines are no requests either.
    push_line(&mut input, b"");
    push_line(&mut input, b"   \t ");
    push_line(
        &mut input,
        &request("c1", json!({"type": "wal_info", "msg_id": msg_id})),
    );

    let out = run_to_end(&input, "");
    assert_all_replies_are_messages(&out.replies);
    let expected_count = 2 + 2 * garbage.len() + 1;
    assert_eq!(
        out.replies.len(),
        expected_count,
        "one reply per request and none for garbage; replies:\n{:#?}",
        out.replies
    );

    let bodies: Vec<&Value> = out.replies.iter().map(|r| &r["body"]).collect();
    assert_eq!(bodies[0]["type"], "init_ok", "reply to init: {}", bodies[0]);
    assert_eq!(
        bodies[1]["type"], "wal_append_ok",
        "reply to the first append: {}",
        bodies[1]
    );
    assert_eq!(bodies[1]["offset"], 0);
    for (i, (what, _)) in garbage.iter().enumerate() {
        let append = bodies[2 + 2 * i];
        let read = bodies[3 + 2 * i];
        assert_eq!(
            (&append["type"], &append["in_reply_to"], &append["offset"]),
            (&json!("wal_append_ok"), &json!(10 + 2 * i), &json!(1 + i)),
            "the append after {what} was not served as the next entry: {append}"
        );
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
    let info = bodies[expected_count - 1];
    assert_eq!(
        (&info["type"], &info["entries"]),
        (&json!("wal_info_ok"), &json!(1 + garbage.len())),
        "garbage must not have added entries: {info}"
    );

    let ignored: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("ignored"))
        .collect();
    assert!(
        ignored.len() >= garbage.len(),
        "stderr logged {} ignored lines, expected one per garbage line ({}):\n{}",
        ignored.len(),
        garbage.len(),
        out.stderr
    );
    for (i, (what, g)) in garbage.iter().enumerate() {
        let m = marker(i);
        if has_marker(g, &m) {
            assert!(
                ignored.iter().any(|l| has_marker(l.as_bytes(), &m)),
                "stderr does not show the ignored line with {what} (marker {m}):\n{}",
                out.stderr
            );
        }
    }
}

/// Exactly 64 MiB (without the newline): a well-formed append whose payload
/// is far over every limit. If the node answered it, a reply would come back.
fn huge_append_line() -> String {
    const SIZE: usize = 64 << 20;
    let head = r#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":999,"payload":""#;
    let tail = r#""}}"#;
    let mut l = String::with_capacity(SIZE);
    l.push_str(head);
    l.extend(std::iter::repeat_n('x', SIZE - head.len() - tail.len()));
    l.push_str(tail);
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

    let huge = huge_append_line();
    node.send_line(&huge);
    drop(huge);

    // `request` checks in_reply_to: a reply to the huge line (msg_id 999)
    // arriving first would fail here.
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
        "the node's peak memory was {peak} KiB: it held the 64 MiB line instead of discarding it"
    );

    assert!(
        node.try_recv(std::time::Duration::from_millis(200))
            .is_none(),
        "an unexpected extra reply arrived"
    );
    let status = node.finish();
    assert_eq!(status.code(), Some(0), "exit status at end of input");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("discarded") && l.contains(&(64u64 << 20).to_string())),
        "stderr does not say a line of {} bytes was discarded:\n{stderr}",
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
