//! Issue 10's rows: how long `wal_snapshot` holds up the requests behind it
//! with 1,000,000 keys, and opening a log that is a snapshot plus a short
//! tail, beside an empty log.
//!
//! The 1,000,000 `set` entries are written with the library's encoders
//! (`log_writer`, checked against the node elsewhere in this bench); the
//! snapshot and the compaction are the node's own, through its protocol.

use super::client::{Peer, bare_request, init_line, reply_body};
use super::disk;
use super::log_writer;
use super::report::{Row, Table, count, median, mib, ms, spread};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const KEYS: u64 = 1_000_000;
/// Entries appended after the snapshot: the "short log".
const TAIL: u64 = 1_000;
const ROUNDS: usize = 5;
/// The goal for the hold-up: a snapshot of a million keys is a pause a
/// client notices, but not a timeout.
const STALL_GOAL: Duration = Duration::from_millis(500);

fn set_payload(i: u64, out: &mut Vec<u8>) {
    out.clear();
    write!(out, "set key{i:07}=value {i}").expect("writing to a Vec");
}

fn request(body: &str, msg_id: u64) -> String {
    format!("{{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{{{body},\"msg_id\":{msg_id}}}}}\n")
}

fn spawn(node: &str, log_root: &Path, what: &str) -> Peer {
    Peer::spawn(
        Command::new(node).arg("--dir").arg(log_root),
        log_root,
        what,
    )
}

fn expect(reply: &[u8], kind: &str) -> serde_json::Value {
    let body = reply_body(reply);
    assert_eq!(body["type"], kind, "expected {kind}: {body}");
    body
}

/// Adds the rows; returns the spread note of the open rows.
pub fn rows(node: &str, dir: &Path, table: &mut Table) -> String {
    let root = dir.join("snapshots");
    let log = root.join("n1");
    eprintln!("snapshots: writing {} set entries...", count(KEYS as f64));
    log_writer::write_log(&log, 64 << 20, KEYS, set_payload);
    disk::sample(dir);

    let mut peer = spawn(node, &root, "snapshot-node");
    expect(peer.call(init_line().as_bytes()), "init_ok");
    let started = Instant::now();
    expect(
        peer.call(request("\"type\":\"wal_state\",\"key\":\"key0000001\"", 1).as_bytes()),
        "wal_state_ok",
    );
    let build = started.elapsed();
    // The hold-up: a snapshot and an append sent together; the append's
    // reply comes when the snapshot is done. Beside it, an append alone.
    let (mut stalls, mut alone, mut size) = (Vec::new(), Vec::new(), 0);
    for round in 0..ROUNDS as u64 {
        let id = 10 + 10 * round;
        let started = Instant::now();
        expect(
            peer.call(request("\"type\":\"wal_append\",\"payload\":\"x\"", id).as_bytes()),
            "wal_append_ok",
        );
        alone.push(started.elapsed());
        let both = request("\"type\":\"wal_snapshot\"", id + 1)
            + &request("\"type\":\"wal_append\",\"payload\":\"y\"", id + 2);
        let started = Instant::now();
        peer.send(both.as_bytes());
        size = expect(peer.read_reply(), "wal_snapshot_ok")["snapshot_size_bytes"]
            .as_u64()
            .expect("a size");
        expect(peer.read_reply(), "wal_append_ok");
        stalls.push(started.elapsed());
        eprintln!(
            "snapshot round {round}: append alone {}, append behind a snapshot {}",
            ms(alone[alone.len() - 1]),
            ms(stalls[stalls.len() - 1])
        );
        disk::sample(dir);
    }
    // Leave the short log: TAIL entries after a last snapshot, the rest
    // compacted away.
    let mut tail = String::new();
    for i in 0..TAIL {
        tail += &request(
            &format!("\"type\":\"wal_append\",\"payload\":\"set tail{i}={i}\""),
            1000 + i,
        );
    }
    peer.send(tail.as_bytes());
    for _ in 0..TAIL {
        expect(peer.read_reply(), "wal_append_ok");
    }
    let snap = expect(
        peer.call(request("\"type\":\"wal_snapshot\"", 5000).as_bytes()),
        "wal_snapshot_ok",
    );
    let at = snap["snapshot_offset"].as_u64().expect("an offset");
    let body = format!(
        "\"type\":\"wal_compact\",\"snapshot_at_offset\":{}",
        at - TAIL
    );
    expect(peer.call(request(&body, 5001).as_bytes()), "wal_compact_ok");
    peer.finish();
    disk::sample(dir);

    let stall = median(&stalls);
    table.push(Row::checked(
        "snapshot stall",
        &format!(
            "wal_snapshot of a state of {} keys ({} on disk) sent together with one wal_append: \
             time until the append's reply, vs an append alone (median of {ROUNDS}); the state \
             was built first, by the first request that needed it: {}",
            count(KEYS as f64),
            mib(size),
            ms(build)
        ),
        format!("{} vs {} alone", ms(stall), ms(median(&alone))),
        "—".into(),
        format!("≤ {}", ms(STALL_GOAL)),
        stall <= STALL_GOAL,
    ));

    // Open: the snapshot plus the short log, beside an empty log.
    let empty_root = dir.join("snapshots-empty");
    std::fs::create_dir_all(&empty_root).expect("a directory for the empty log");
    let (mut with_snap, mut empty, mut first_state) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for snapshot_log in [true, false] {
            let at = if snapshot_log { &root } else { &empty_root };
            let mut peer = spawn(node, at, "open-node");
            // Answered at once before init: the process is up and reading.
            peer.call(bare_request("wal_info", 1).as_bytes());
            let started = Instant::now();
            expect(peer.call(init_line().as_bytes()), "init_ok");
            let opened = started.elapsed();
            if snapshot_log {
                with_snap.push(opened);
                let started = Instant::now();
                let ask = request("\"type\":\"wal_state\",\"key\":\"tail0\"", 2);
                let state = expect(peer.call(ask.as_bytes()), "wal_state_ok");
                assert_eq!(state["value"], "0", "the tail replayed on the snapshot");
                first_state.push(started.elapsed());
            } else {
                empty.push(opened);
            }
            peer.finish();
        }
    }
    let ratios: Vec<f64> = with_snap
        .iter()
        .zip(&empty)
        .map(|(s, e)| s.as_secs_f64() / e.as_secs_f64())
        .collect();
    table.push(Row::reference(
        "open with a snapshot",
        &format!(
            "wal-node init on a log compacted to a snapshot of {} keys ({}) plus {TAIL} entries \
             after it, vs an empty log (medians of {ROUNDS} alternating rounds); then the first \
             request needing the state (loads the snapshot, replays the {TAIL} entries)",
            count(KEYS as f64),
            mib(size)
        ),
        format!(
            "{} vs {} empty ({:.1} ×); first wal_state after it {}",
            ms(median(&with_snap)),
            ms(median(&empty)),
            median(&with_snap).as_secs_f64() / median(&empty).as_secs_f64(),
            ms(median(&first_state))
        ),
    ));
    std::fs::remove_dir_all(&root).ok();
    std::fs::remove_dir_all(&empty_root).ok();
    format!("open with a snapshot {} × empty", spread(&ratios, 1))
}
