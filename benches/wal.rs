//! `cargo bench --bench wal`: the group-commit benchmark of issue 4 and the
//! segmented log's open and memory rows of issue 9.
//!
//! Prints one markdown table; every row is measured in this run, in one
//! temporary directory under `target/tmp` (the crate's own filesystem, not a
//! tmpfs `/tmp`; `WAL_BENCH_DIR=<dir>` puts it elsewhere). Progress and the
//! individual runs go to stderr, the table to stdout.
//!
//! Rows:
//! - raw append / raw overwrite: `pwrite` of one frame + `fdatasync`, one at a
//!   time, growing a file vs overwriting a zero-filled one (references).
//! - pipe floor: this executable re-run with `WAL_BENCH_PIPE_FLOOR=<file>`:
//!   read a line, overwrite a frame, `fdatasync`, answer a fixed line
//!   (reference: the best any node can do behind a pipe on this disk).
//! - closed loop: the real node, one request in flight, same client as the
//!   floor; raw loops, floor and node alternate over several rounds and the
//!   best round of each is kept.
//! - pipelined: 100,000 appends written at once, default batching vs
//!   `--max-batch 1`; syncs per append counted under `strace` in a separate run.
//! - CPU per append: the node's CPU time in the default-batching runs
//!   (`support/cpu.rs`).
//! - active-segment replay: `Log::open` of a log whose one (active) segment
//!   is 1 GiB, vs a raw sequential read, both warm. Only the active segment
//!   is ever replayed.
//! - memory: the node's VmHWM after 1,000,000 pipelined appends.
//! - open (node), open (Log::open), open (node) cold: opening a log of at
//!   least 10 GiB in sealed segments vs an empty log, alternating rounds
//!   (`support/big_log.rs`; `WAL_BENCH_BIG_GIB=N` sizes it, 0 skips it).
//! - memory after open: the node's VmHWM after opening that log, appending
//!   and reading across its segments.
//! - snapshot stall, open with a snapshot: `wal_snapshot` of 1,000,000 keys
//!   and the append sent with it; opening a log compacted to a snapshot plus
//!   a short tail (`support/snapshots.rs`).
//!
//! Under the table: the spread of each compared row's per-round ratio
//! (rounds alternate, so a round's ratio is measured side by side), the
//! total time, and the most disk space the bench held at once.

mod support;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::client::{Peer, append_line, init_line};
use support::disk;
use support::log_writer;
use support::report::{Row, Table, count, machine_description, mib, spread};
use wal_node::frame;
use wal_node::log::{Log, MAX_SEGMENT_BYTES, Options, Recover, names};

/// The node binary cargo built for this bench (target/release/wal-node).
const NODE: &str = env!("CARGO_BIN_EXE_wal-node");
/// Set to a file path, this executable acts as the pipe-floor process.
const FLOOR_ENV: &str = "WAL_BENCH_PIPE_FLOOR";

/// Payload of every closed-loop and pipelined append.
const PAYLOAD: usize = 100;
/// Measured appends per closed-loop run (raw loops, floor, node alike).
const CLOSED_LOOP: usize = 3_000;
/// Untimed appends before each closed-loop measurement.
const WARMUP: usize = 100;
/// Alternating rounds of the closed-loop rows; the best of each is kept.
const ROUNDS: usize = 5;
const PIPELINED: usize = 100_000;
/// `--max-batch 1` pays one sync per append: a shorter run, same rate.
const PIPELINED_MAX_BATCH_1: usize = 10_000;
/// Alternating rounds of the two pipelined runs; the best of each is kept.
const PIPELINED_ROUNDS: usize = 2;
const REPLAY_FILE_BYTES: u64 = 1 << 30;
const REPLAY_PAYLOAD: usize = 1000;
const REPLAY_ROUNDS: usize = 3;
const MEMORY_APPENDS: usize = 1_000_000;
const MEMORY_PAYLOAD: usize = 16;
/// Zero-filled space given to the raw overwrite loop and the pipe floor.
const PREALLOCATED: u64 = 16 << 20;

fn main() {
    if let Some(path) = std::env::var_os(FLOOR_ENV) {
        support::floor::serve(Path::new(&path), PAYLOAD);
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without `--bench`.
        eprintln!("wal bench: not under `cargo bench`, skipping (run `cargo bench --bench wal`)");
        return;
    }
    let base: std::path::PathBuf = std::env::var_os("WAL_BENCH_DIR")
        .map_or_else(|| env!("CARGO_TARGET_TMPDIR").into(), Into::into);
    std::fs::create_dir_all(&base).expect("creating the bench directory");
    let dir = tempfile::Builder::new()
        .prefix("wal-bench-")
        .tempdir_in(&base)
        .expect("creating a temporary directory for the bench");
    let started = Instant::now();

    println!("{}", machine_description(dir.path()));
    let mut table = Table::default();
    let mut spreads = vec![
        closed_loop_rows(dir.path(), &mut table),
        pipelined_row(dir.path(), &mut table),
        replay_row(dir.path(), &mut table),
    ];
    memory_row(dir.path(), &mut table);
    let big = support::big_log::rows(NODE, dir.path(), &mut table);
    spreads.extend(big.spreads);
    spreads.push(support::snapshots::rows(NODE, dir.path(), &mut table));
    println!("{table}");
    println!(
        "Closed-loop rows: {CLOSED_LOOP} appends of {PAYLOAD} B per run after {WARMUP} untimed, \
         best of {ROUNDS} alternating rounds; pipelined: best of {PIPELINED_ROUNDS}; \
         active-segment replay: best of {REPLAY_ROUNDS}. {}",
        big.note
    );
    println!(
        "Spread across rounds (min–max of each round's own ratio): {}.",
        spreads.join("; ")
    );
    println!(
        "Total bench time {:.0} s. Disk space: at most {} ({:.1} GiB) allocated at once in the \
         bench directory, all removed at the end.",
        started.elapsed().as_secs_f64(),
        mib(disk::peak()),
        disk::peak() as f64 / (1u64 << 30) as f64
    );
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn best(rates: &[f64]) -> f64 {
    rates.iter().copied().fold(0.0, f64::max)
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

// ---------------------------------------------------------------------------
// Closed loop: raw append, raw overwrite, pipe floor, node.

/// Returns the spread of the closed loop's per-round ratio to the floor.
fn closed_loop_rows(dir: &Path, table: &mut Table) -> String {
    let frame = frame::encode(&payload(PAYLOAD));
    let payload = String::from_utf8(payload(PAYLOAD)).expect("ASCII");
    let requests: Vec<Vec<u8>> = (0..WARMUP + CLOSED_LOOP)
        .map(|i| {
            let mut line = Vec::new();
            append_line(&mut line, i as u64 + 1, &payload);
            line
        })
        .collect();
    let (mut append, mut overwrite, mut floor, mut node) = (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        append.push(raw_loop(
            &dir.join(format!("raw-append-{round}")),
            &frame,
            false,
        ));
        overwrite.push(raw_loop(
            &dir.join(format!("raw-overwrite-{round}")),
            &frame,
            true,
        ));
        let floor_file = dir.join(format!("floor-{round}"));
        drop(zero_filled(&floor_file, PREALLOCATED));
        let mut cmd = Command::new(std::env::current_exe().expect("the bench's own path"));
        cmd.env(FLOOR_ENV, &floor_file);
        floor.push(drive_closed_loop(
            Peer::spawn(&mut cmd, dir, "floor"),
            &requests,
        ));
        disk::sample(dir);
        std::fs::remove_file(&floor_file).expect("removing the floor's file");
        let node_dir = dir.join(format!("closed-{round}"));
        let mut cmd = Command::new(NODE);
        cmd.arg("--dir").arg(&node_dir);
        node.push(drive_closed_loop(
            Peer::spawn(&mut cmd, dir, "node"),
            &requests,
        ));
        disk::sample(dir);
        std::fs::remove_dir_all(&node_dir).expect("removing the node's log");
        eprintln!(
            "closed loop round {}: raw append {:.0}/s, raw overwrite {:.0}/s, pipe floor {:.0}/s, node {:.0}/s",
            round + 1,
            append[round],
            overwrite[round],
            floor[round],
            node[round]
        );
    }
    let per_round: Vec<f64> = node.iter().zip(&floor).map(|(n, f)| n / f).collect();
    let (append, overwrite, floor, node) =
        (best(&append), best(&overwrite), best(&floor), best(&node));
    table.push(Row::reference(
        "raw append",
        "pwrite of one frame at the end of a growing file + fdatasync, one at a time",
        format!("{} appends/s", count(append)),
    ));
    table.push(Row::reference(
        "raw overwrite",
        "the same loop overwriting a zero-filled, already allocated file: the disk's limit",
        format!(
            "{} appends/s ({:.2} × raw append)",
            count(overwrite),
            overwrite / append
        ),
    ));
    table.push(Row::reference(
        "pipe floor",
        "bench-only process: read a line, overwrite a frame in a preallocated file, fdatasync, \
         answer a fixed line; one request in flight",
        format!(
            "{} appends/s ({:.2} × raw append)",
            count(floor),
            floor / append
        ),
    ));
    let ratio = node / floor;
    table.push(Row::checked(
        "closed loop",
        "wal-node, one wal_append in flight (same client as the floor)",
        format!("{} appends/s", count(node)),
        format!("{ratio:.2} × pipe floor, {:.2} × raw append", node / append),
        "≥ 0.9 × pipe floor",
        ratio >= 0.9,
    ));
    format!("closed loop {} × pipe floor", spread(&per_round, 2))
}

/// Appends/s of `pwrite` + `fdatasync` of `frame`, one at a time, into a new
/// file (`overwrite` false: the file grows) or into zeros written and synced
/// beforehand (`overwrite` true). The file is removed afterwards.
fn raw_loop(path: &Path, frame: &[u8], overwrite: bool) -> f64 {
    let file = if overwrite {
        zero_filled(path, PREALLOCATED)
    } else {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .expect("creating the raw append file")
    };
    let mut end = 0u64;
    let mut step = || {
        file.write_all_at(frame, end).expect("raw write");
        end += frame.len() as u64;
        file.sync_data().expect("raw fdatasync");
    };
    for _ in 0..WARMUP {
        step();
    }
    let start = Instant::now();
    for _ in 0..CLOSED_LOOP {
        step();
    }
    let elapsed = start.elapsed();
    disk::sample(path.parent().expect("in the bench directory"));
    std::fs::remove_file(path).expect("removing a raw loop file");
    rate(CLOSED_LOOP, elapsed)
}

/// A file of `len` zero bytes, written (not fallocated) and synced, so
/// overwriting it changes data only.
fn zero_filled(path: &Path, len: u64) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .expect("creating a zero-filled file");
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at).expect("writing zeros");
        at += n as u64;
    }
    file.sync_all().expect("syncing zeros");
    file
}

/// Sends `init`, then `requests` one at a time (each waits for its reply),
/// timing all but the first `WARMUP`. Returns appends/s.
fn drive_closed_loop(mut peer: Peer, requests: &[Vec<u8>]) -> f64 {
    peer.call(init_line().as_bytes());
    let (warmup, measured) = requests.split_at(WARMUP);
    for request in warmup {
        peer.call_append(request);
    }
    let start = Instant::now();
    for request in measured {
        peer.call_append(request);
    }
    let elapsed = start.elapsed();
    peer.finish();
    rate(measured.len(), elapsed)
}

// ---------------------------------------------------------------------------
// Pipelined: all appends written at once.

struct Pipelined {
    rate: f64,
    /// VmHWM of the node after the last reply, before its stdin closes.
    hwm_bytes: Option<u64>,
    /// VmHWM right after `init`, before any append.
    hwm_after_init: Option<u64>,
    /// CPU time of the node from after `init` to the last reply.
    cpu: Option<Duration>,
}

/// Runs `cmd` (a node), sends `init`, then writes `n` appends of
/// `payload_len` bytes from a writer thread while this thread counts the
/// replies. Times from the first append written to the last reply read.
fn pipelined(mut cmd: Command, dir: &Path, n: usize, payload_len: usize, hwm: bool) -> Pipelined {
    let payload = String::from_utf8(payload(payload_len)).expect("ASCII");
    let mut input = Vec::with_capacity(n * (payload_len + 96));
    for i in 0..n {
        append_line(&mut input, i as u64 + 1, &payload);
    }
    let mut peer = Peer::spawn(&mut cmd, dir, "pipelined");
    peer.call(init_line().as_bytes());
    let hwm_after_init = hwm.then(|| peer.vm_hwm());
    let cpu_before = support::cpu::used(peer.pid());
    let mut stdin = peer.take_stdin();
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(&input)
            .expect("writing appends to the node");
        stdin
    });
    for _ in 0..n {
        peer.read_append_reply();
    }
    let elapsed = start.elapsed();
    let cpu = support::cpu::since(peer.pid(), cpu_before);
    let hwm_bytes = hwm.then(|| peer.vm_hwm());
    drop(writer.join().expect("the writer thread"));
    peer.finish();
    Pipelined {
        rate: rate(n, elapsed),
        hwm_bytes,
        hwm_after_init,
        cpu,
    }
}

fn node_cmd(dir: &Path, max_batch: Option<u32>) -> Command {
    let mut cmd = Command::new(NODE);
    cmd.arg("--dir").arg(dir);
    if let Some(m) = max_batch {
        cmd.arg("--max-batch").arg(m.to_string());
    }
    cmd
}

/// Returns the spread of the per-round ratio of batching to none.
fn pipelined_row(dir: &Path, table: &mut Table) -> String {
    let (mut batched, mut single, mut cpu) = (vec![], vec![], vec![]);
    for round in 0..PIPELINED_ROUNDS {
        let log_dir = dir.join(format!("pipelined-batched-{round}"));
        let run = pipelined(node_cmd(&log_dir, None), dir, PIPELINED, PAYLOAD, false);
        batched.push(run.rate);
        cpu.push(run.cpu);
        disk::sample(dir);
        std::fs::remove_dir_all(&log_dir).expect("removing a log");
        let log_dir = dir.join(format!("pipelined-max-batch-1-{round}"));
        let cmd = node_cmd(&log_dir, Some(1));
        single.push(pipelined(cmd, dir, PIPELINED_MAX_BATCH_1, PAYLOAD, false).rate);
        disk::sample(dir);
        std::fs::remove_dir_all(&log_dir).expect("removing a log");
        eprintln!(
            "pipelined round {}: default batching {:.0} appends/s, --max-batch 1 {:.0} appends/s",
            round + 1,
            batched[round],
            single[round]
        );
    }
    let per_round: Vec<f64> = batched.iter().zip(&single).map(|(b, s)| b / s).collect();
    let (batched, single) = (best(&batched), best(&single));
    let syncs = count_syncs(dir);
    let syncs_text = match syncs {
        Some(s) => format!(
            "{:.5} syncs/append ({s} fdatasyncs for {} appends, in a separate run under strace)",
            s as f64 / PIPELINED as f64,
            count(PIPELINED as f64)
        ),
        None => "syncs/append n/a (no usable strace)".into(),
    };
    let ratio = batched / single;
    table.push(Row::checked(
        "pipelined",
        "100,000 appends of 100 B written at once; default batching vs --max-batch 1 \
         (measured on 10,000 appends: one sync each)",
        format!(
            "{} vs {} appends/s; {syncs_text}",
            count(batched),
            count(single)
        ),
        format!("{ratio:.0} ×"),
        "≥ 50 ×",
        ratio >= 50.0,
    ));
    table.push(support::cpu::row(&cpu, PIPELINED, syncs));
    format!("pipelined {} ×", spread(&per_round, 0))
}

/// fdatasync calls of the node serving `PIPELINED` pipelined appends with
/// default batching, counted by `strace -c` in a run of its own (the
/// tracing slows the node, so that run is not timed). `None` without strace.
fn count_syncs(dir: &Path) -> Option<u64> {
    let summary = dir.join("strace-summary.txt");
    let log_dir = dir.join("pipelined-strace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "--seccomp-bpf", "-c", "-e", "trace=fdatasync", "-o"])
        .arg(&summary)
        .arg(NODE)
        .arg("--dir")
        .arg(&log_dir);
    let usable = Command::new("strace")
        .args(["-f", "--seccomp-bpf", "-c", "-e", "trace=fdatasync", "-o"])
        .arg(dir.join("strace-probe.txt"))
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        return None;
    }
    pipelined(cmd, dir, PIPELINED, PAYLOAD, false);
    disk::sample(dir);
    let _ = std::fs::remove_dir_all(&log_dir);
    let text = std::fs::read_to_string(&summary).ok()?;
    // `% time  seconds  usecs/call  calls  [errors]  syscall`
    let calls = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.last() == Some(&"fdatasync"))
        .map_or(Some(0), |w| w.get(3).and_then(|c| c.parse().ok()));
    match calls {
        Some(n) => eprintln!("strace counted {n} fdatasyncs for {PIPELINED} appends"),
        None => eprintln!("strace's summary gave no fdatasync count: n/a"),
    }
    calls
}

// ---------------------------------------------------------------------------
// Active-segment replay.

/// Returns the spread of the per-round ratio of replay to a raw read.
fn replay_row(dir: &Path, table: &mut Table) -> String {
    let log_dir = dir.join("replay");
    eprintln!(
        "replay: writing a {} MiB active segment...",
        REPLAY_FILE_BYTES >> 20
    );
    let entries = write_replay_log(&log_dir);
    let path = log_dir.join(names::segment(0));
    disk::sample(dir);
    let opts = Options {
        max_entry_bytes: frame::DEFAULT_MAX_ENTRY_BYTES,
        recover: Recover::Refuse,
        max_segment_bytes: None,
    };
    raw_read(&path); // Warm the page cache.
    let (mut raw, mut replay) = (vec![], vec![]);
    for round in 0..REPLAY_ROUNDS {
        raw.push(raw_read(&path));
        let start = Instant::now();
        let mut log = Log::open(&log_dir, opts).unwrap_or_else(|e| panic!("replay failed: {e}"));
        let elapsed = start.elapsed();
        assert_eq!(log.entries(), entries, "replay found every entry");
        assert_eq!(log.segments().len(), 1, "one segment, the active one");
        let events = log.take_events();
        assert!(
            events.is_empty(),
            "replay cut or reported nothing: {events:?}"
        );
        drop(log);
        replay.push(elapsed);
        eprintln!(
            "replay round {}: raw read {:.3} s, Log::open {:.3} s",
            round + 1,
            raw[round].as_secs_f64(),
            elapsed.as_secs_f64()
        );
    }
    std::fs::remove_dir_all(&log_dir).expect("removing the replay log");
    // Replay's speed over the raw read's: the raw read's time over replay's.
    let per_round: Vec<f64> = raw
        .iter()
        .zip(&replay)
        .map(|(r, w)| r.as_secs_f64() / w.as_secs_f64())
        .collect();
    let raw = raw.into_iter().min().expect("rounds");
    let replay = replay.into_iter().min().expect("rounds");
    let mb_s = |d: Duration| REPLAY_FILE_BYTES as f64 / 1e6 / d.as_secs_f64();
    let ratio = mb_s(replay) / mb_s(raw);
    table.push(Row::checked(
        "active-segment replay",
        "Log::open of a log whose one segment is the active one, 1 GiB (the largest \
         --max-segment-bytes) of 1000 B payloads + zero tail, replayed (sealed segments are \
         not), vs a raw sequential read of that file in 8 MiB chunks, both warm",
        format!(
            "{} MB/s ({:.2} s, {} entries) vs raw {} MB/s",
            count(mb_s(replay)),
            replay.as_secs_f64(),
            count(entries as f64),
            count(mb_s(raw))
        ),
        format!("{ratio:.2} × raw read"),
        "≥ 0.5 × raw read, < 10 s",
        ratio >= 0.5 && replay < Duration::from_secs(10),
    ));
    format!("active-segment replay {} × raw read", spread(&per_round, 2))
}

/// Writes a log directory whose only segment holds whole frames of
/// `REPLAY_PAYLOAD` bytes while they fit in `REPLAY_FILE_BYTES`, then
/// zeros up to that size (the active segment's preallocated tail); synced,
/// so no writeback runs during the measurement. Returns the entries.
fn write_replay_log(log_dir: &Path) -> u64 {
    let frame_len = (frame::HEADER_LEN + REPLAY_PAYLOAD) as u64;
    let entries = REPLAY_FILE_BYTES / frame_len;
    let written = log_writer::write_log(log_dir, MAX_SEGMENT_BYTES, entries, |i, out| {
        log_writer::numbered_payload(i, REPLAY_PAYLOAD, out)
    });
    assert_eq!(written.sealed_segments, 0, "one segment, never rolled");
    let file = OpenOptions::new()
        .write(true)
        .open(log_dir.join(names::segment(0)))
        .expect("opening the replay segment");
    let zeros = vec![0u8; 8 << 20];
    let mut at = entries * frame_len;
    while at < REPLAY_FILE_BYTES {
        let n = (REPLAY_FILE_BYTES - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)
            .expect("writing the zero tail");
        at += n as u64;
    }
    file.sync_all().expect("syncing the replay segment");
    entries
}

/// Time to read the whole file sequentially in 8 MiB chunks.
fn raw_read(path: &Path) -> Duration {
    let start = Instant::now();
    let mut file = File::open(path).expect("opening the replay log");
    let mut buf = vec![0u8; 8 << 20];
    let mut total = 0u64;
    loop {
        match file.read(&mut buf).expect("reading the replay log") {
            0 => break,
            n => total += n as u64,
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(total, REPLAY_FILE_BYTES);
    elapsed
}

// ---------------------------------------------------------------------------
// Memory.

fn memory_row(dir: &Path, table: &mut Table) {
    let log_dir = dir.join("memory");
    eprintln!("memory: {MEMORY_APPENDS} pipelined appends...");
    let run = pipelined(
        node_cmd(&log_dir, None),
        dir,
        MEMORY_APPENDS,
        MEMORY_PAYLOAD,
        true,
    );
    disk::sample(dir);
    std::fs::remove_dir_all(&log_dir).expect("removing a log");
    let hwm = run.hwm_bytes.expect("measured");
    let at_init = run.hwm_after_init.expect("measured");
    let budget = 8 * MEMORY_APPENDS as u64 + (16 << 20);
    eprintln!(
        "memory: VmHWM {hwm} B after init {at_init} B, at {:.0} appends/s",
        run.rate
    );
    table.push(Row::checked(
        "memory",
        "peak RSS (VmHWM) of wal-node after 1,000,000 pipelined appends of 16 B, read before \
         stdin closes",
        format!("{} (after init: {})", mib(hwm), mib(at_init)),
        format!("{:.2} × budget", hwm as f64 / budget as f64),
        format!("≤ 8 B × 1,000,000 + 16 MiB = {}", mib(budget)),
        hwm <= budget,
    ));
}
