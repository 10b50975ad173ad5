//! Issue 9's rows, on a log of at least 10 GiB in sealed segments
//! (`WAL_BENCH_BIG_GIB`, default 10; 0 skips them): the time to open it
//! next to the time to open an empty log, in alternating rounds, warm and
//! cold, through the node's `init` and through `Log::open` in process; and
//! the node's peak RSS after opening it, appending and reading across its
//! segments.
//!
//! The log is written once by `log_writer` (checked against the node
//! first), reused by every round, and removed at the end.

use super::cache;
use super::client::{Peer, append_line, bare_request, init_line, reply_body, wal_read_line};
use super::disk;
use super::log_writer::{self, numbered_payload};
use super::report::{Row, Table, count, median, mib, ms, spread};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wal_node::frame;
use wal_node::log::{DEFAULT_MAX_SEGMENT_BYTES, Log, Options, Recover, names};

const SIZE_ENV: &str = "WAL_BENCH_BIG_GIB";
/// The size: at least 10 GiB of sealed segments.
const DEFAULT_GIB: u64 = 10;
const PAYLOAD: usize = 1000;
/// Alternating rounds of the warm open rows (odd, so the median is one
/// round's time). A round takes tens of milliseconds; many rounds keep the
/// median steady while other processes share the machine.
const WARM_ROUNDS: usize = 21;
/// Each cold round drops the whole machine's page cache twice.
const COLD_ROUNDS: usize = 5;
const APPENDS: u64 = 10_000;
/// Appends written at once; their replies fit in the pipe back, so writing
/// the next chunk never waits on a reader.
const APPEND_CHUNK: u64 = 100;
const READS: u64 = 100;
const MEMORY_BUDGET: u64 = 16 << 20;
/// The goal: opening the big log takes at most 2 × empty + this.
const SLACK: Duration = Duration::from_millis(10);

/// A log under test: the node is given `--dir parent` and serves it as
/// `parent/n1`.
struct TestLog {
    parent: PathBuf,
    entries: u64,
    segments: u64,
    sealed_bytes: u64,
}

impl TestLog {
    fn dir(&self) -> PathBuf {
        self.parent.join("n1")
    }
}

/// Times of the big and the empty log, one of each per round.
#[derive(Default)]
struct Rounds {
    big: Vec<Duration>,
    empty: Vec<Duration>,
}

impl Rounds {
    /// Measures both logs `n` times, alternating which goes first.
    fn run(
        n: usize,
        big: &TestLog,
        empty: &TestLog,
        mut time: impl FnMut(&TestLog) -> Duration,
    ) -> Rounds {
        let mut rounds = Rounds::default();
        for round in 0..n {
            if round % 2 == 0 {
                rounds.big.push(time(big));
                rounds.empty.push(time(empty));
            } else {
                rounds.empty.push(time(empty));
                rounds.big.push(time(big));
            }
        }
        rounds
    }

    /// A checked row: median big ≤ 2 × median empty + 10 ms. Returns the
    /// spread of the per-round ratio.
    fn push_row(&self, table: &mut Table, name: &str, what: &str) -> String {
        let (big, empty) = (median(&self.big), median(&self.empty));
        let limit = 2 * empty + SLACK;
        table.push(Row::checked(
            name,
            what,
            format!(
                "{} vs {} for the empty log (medians of {} rounds)",
                ms(big),
                ms(empty),
                self.big.len()
            ),
            format!("{:.2} × empty", big.as_secs_f64() / empty.as_secs_f64()),
            format!("≤ 2 × empty + 10 ms = {}", ms(limit)),
            big <= limit,
        ));
        let per_round: Vec<f64> = self
            .big
            .iter()
            .zip(&self.empty)
            .map(|(b, e)| b.as_secs_f64() / e.as_secs_f64())
            .collect();
        format!(
            "{name} {} × empty (big log {}–{})",
            spread(&per_round, 2),
            ms(*self.big.iter().min().expect("rounds")),
            ms(*self.big.iter().max().expect("rounds"))
        )
    }
}

/// What the rows add under the table.
pub struct Notes {
    /// Each open row's per-round ratio, min–max.
    pub spreads: Vec<String>,
    /// How the rows were measured.
    pub note: String,
}

/// Pushes the open and memory-after-open rows.
pub fn rows(node: &str, dir: &Path, table: &mut Table) -> Notes {
    let gib = match std::env::var(SIZE_ENV) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{SIZE_ENV}={v:?}: expected a whole number of GiB")),
        Err(_) => DEFAULT_GIB,
    };
    if gib == 0 {
        eprintln!("{SIZE_ENV}=0: skipping the open and memory-after-open rows");
        for name in ["open", "memory after open"] {
            table.push(Row::reference(
                name,
                "a log of sealed segments (issue 9)",
                format!("skipped ({SIZE_ENV}=0)"),
            ));
        }
        return Notes {
            spreads: Vec::new(),
            note: format!("Open and memory-after-open rows skipped ({SIZE_ENV}=0)."),
        };
    }
    log_writer::check_against_node(node, dir, PAYLOAD);
    let big = build(dir, gib);
    let empty = TestLog {
        parent: dir.join("empty"),
        entries: 0,
        segments: 1,
        sealed_bytes: 0,
    };
    log_writer::write_log(&empty.dir(), DEFAULT_MAX_SEGMENT_BYTES, 0, |_, _| {});
    // Untimed first opens, which check the entry counts. After its first
    // batch a node preallocates its active segment, so every timed open
    // finds what a restarted node finds: zeros after the data.
    for log in [&big, &empty] {
        check_through_node(node, dir, log);
        open_in_process(log);
    }
    let zeros = std::fs::metadata(empty.dir().join(names::segment(0)))
        .expect("the empty log's segment")
        .len();
    let what = format!(
        "{} entries of {PAYLOAD} B: {} sealed segments of 64 MiB ({:.2} GiB) + 1 entry in the \
         active one, vs an empty log; both active segments hold the {} of zeros a node \
         preallocates, as after any run",
        count(big.entries as f64),
        big.segments - 1,
        big.sealed_bytes as f64 / (1u64 << 30) as f64,
        mib(zeros)
    );
    let mut spreads = Vec::new();
    let mut note = format!(
        "Open rows: the big log is written by the bench with the library's encoders (checked \
         byte for byte against the node's own files first) and reused by every round; medians \
         of {WARM_ROUNDS} rounds warm"
    );
    eprintln!("open: {WARM_ROUNDS} warm rounds...");
    let warm = Rounds::run(WARM_ROUNDS, &big, &empty, |log| node_init(node, dir, log));
    spreads.push(warm.push_row(
        table,
        "open (node)",
        &format!(
            "wal-node init (request written → init_ok read, the process already up) on {what}; \
             page cache warm (the log was just written)"
        ),
    ));
    unpreallocated_row(node, dir, &empty, zeros, table);
    let in_process = Rounds::run(WARM_ROUNDS, &big, &empty, open_in_process);
    spreads.push(in_process.push_row(
        table,
        "open (Log::open)",
        "Log::open in this process, the same logs, warm",
    ));
    match cache::drop_all() {
        Ok(()) => {
            eprintln!(
                "open: {COLD_ROUNDS} cold rounds (dropping the page cache before each open)..."
            );
            let cold = Rounds::run(COLD_ROUNDS, &big, &empty, |log| {
                cache::drop_all().expect("dropping the page cache worked a moment ago");
                node_init(node, dir, log)
            });
            spreads.push(cold.push_row(
                table,
                "open (node), cold",
                "wal-node init as above, cold: `sync; echo 3 > /proc/sys/vm/drop_caches` (pages, \
                 dentries, inodes of the whole machine) before each open",
            ));
            note += &format!(", {COLD_ROUNDS} cold");
        }
        Err(why) => {
            eprintln!("open: no cold rows: {why}");
            table.push(Row::reference(
                "open (node), cold",
                "wal-node init after dropping the page cache",
                format!("n/a ({why})"),
            ));
        }
    }
    note += ", each round alternating which log opens first.";
    memory_row(node, dir, &big, &empty, table);
    disk::sample(dir);
    for log in [&big, &empty] {
        std::fs::remove_dir_all(&log.parent).expect("removing a bench log");
    }
    Notes { spreads, note }
}

/// Writes the big log: as many full 64 MiB segments as reach `gib` GiB,
/// sealed, and one entry more, alone in the active segment, as the node
/// leaves it after the append that rolled the last of them.
fn build(dir: &Path, gib: u64) -> TestLog {
    let frame_len = (frame::HEADER_LEN + PAYLOAD) as u64;
    let per_segment = DEFAULT_MAX_SEGMENT_BYTES / frame_len;
    let sealed = (gib << 30).div_ceil(per_segment * frame_len);
    let entries = sealed * per_segment + 1;
    eprintln!(
        "big log: writing {entries} entries of {PAYLOAD} B in {sealed} sealed segments + 1..."
    );
    let mut log = TestLog {
        parent: dir.join("big"),
        entries,
        segments: sealed + 1,
        sealed_bytes: 0,
    };
    let start = Instant::now();
    let written =
        log_writer::write_log(&log.dir(), DEFAULT_MAX_SEGMENT_BYTES, entries, |i, out| {
            numbered_payload(i, PAYLOAD, out)
        });
    let elapsed = start.elapsed();
    assert_eq!(written.sealed_segments, sealed);
    assert!(
        written.sealed_bytes >= gib << 30,
        "at least {gib} GiB sealed"
    );
    log.sealed_bytes = written.sealed_bytes;
    disk::sample(dir);
    eprintln!(
        "big log: {} sealed bytes written and synced in {:.0} s ({:.0} MB/s)",
        written.sealed_bytes,
        elapsed.as_secs_f64(),
        written.sealed_bytes as f64 / 1e6 / elapsed.as_secs_f64()
    );
    log
}

fn spawn(node: &str, dir: &Path, log: &TestLog) -> Peer {
    let mut cmd = Command::new(node);
    cmd.arg("--dir").arg(&log.parent);
    Peer::spawn(&mut cmd, dir, "open")
}

fn expect_type(body: &serde_json::Value, kind: &str) {
    assert_eq!(body["type"], kind, "expected {kind}, got {body}");
}

/// Opens `log` in a node and checks its entry count and segments.
fn check_through_node(node: &str, dir: &Path, log: &TestLog) {
    let mut peer = spawn(node, dir, log);
    expect_type(&reply_body(peer.call(init_line().as_bytes())), "init_ok");
    let info = reply_body(peer.call(bare_request("wal_info", 1).as_bytes()));
    expect_type(&info, "wal_info_ok");
    assert_eq!(info["entries"], log.entries, "the node's entry count");
    assert_eq!(info["corrupt_entries"], 0);
    let segments = reply_body(peer.call(bare_request("wal_segment_info", 2).as_bytes()));
    expect_type(&segments, "wal_segment_info_ok");
    let list = segments["segments"].as_array().expect("a segment list");
    assert_eq!(list.len() as u64, log.segments, "the node's segments");
    let sealed = list.iter().filter(|s| s["sealed"] == true).count() as u64;
    assert_eq!(sealed, log.segments - 1, "all but the last are sealed");
    peer.finish();
}

/// Time from writing `init` to reading `init_ok`, in a node that has
/// already answered a request (so its start-up is not counted).
fn node_init(node: &str, dir: &Path, log: &TestLog) -> Duration {
    let mut peer = spawn(node, dir, log);
    let before = reply_body(peer.call(bare_request("wal_info", 1).as_bytes()));
    assert_eq!(before["code"], 11, "before init: error 11, got {before}");
    let start = Instant::now();
    let reply = peer.call(init_line().as_bytes());
    let elapsed = start.elapsed();
    expect_type(&reply_body(reply), "init_ok");
    peer.finish();
    elapsed
}

/// A reference row: the empty log's `init` with its active segment cut to
/// 0 bytes before each open, so replay finds no preallocated zeros to read
/// (the node preallocates them again after `init`, for the next round).
fn unpreallocated_row(node: &str, dir: &Path, empty: &TestLog, zeros: u64, table: &mut Table) {
    let segment = empty.dir().join(names::segment(0));
    let times: Vec<Duration> = (0..WARM_ROUNDS)
        .map(|_| {
            OpenOptions::new()
                .write(true)
                .open(&segment)
                .and_then(|f| f.set_len(0))
                .expect("cutting the empty log's segment to 0 bytes");
            node_init(node, dir, empty)
        })
        .collect();
    table.push(Row::reference(
        "open (node), empty, no zeros",
        &format!(
            "the same init on the empty log with its active segment cut to 0 bytes before each \
             open: the difference from the empty log's time above is replay reading the {} of \
             preallocated zeros",
            mib(zeros)
        ),
        format!("{} (median of {WARM_ROUNDS} rounds)", ms(median(&times))),
    ));
}

/// Time of `Log::open` in this process; checks what it opened.
fn open_in_process(log: &TestLog) -> Duration {
    let opts = Options {
        max_entry_bytes: frame::DEFAULT_MAX_ENTRY_BYTES,
        recover: Recover::Refuse,
        max_segment_bytes: None,
    };
    let start = Instant::now();
    let mut opened = Log::open(&log.dir(), opts).unwrap_or_else(|e| panic!("Log::open: {e}"));
    let elapsed = start.elapsed();
    assert_eq!(opened.entries(), log.entries, "Log::open's entry count");
    assert_eq!(opened.segments().len() as u64, log.segments);
    let events = opened.take_events();
    assert!(events.is_empty(), "opening reported {events:?}");
    elapsed
}

/// VmHWM of a node right after `init`, and after `APPENDS` appends and
/// `READS` reads spread evenly over every entry (old and new), each read
/// checked to be the entry at its offset.
fn peak_rss(node: &str, dir: &Path, log: &TestLog) -> (u64, u64) {
    let mut peer = spawn(node, dir, log);
    expect_type(&reply_body(peer.call(init_line().as_bytes())), "init_ok");
    let after_init = peer.vm_hwm();
    let (mut body, mut chunk, mut msg_id) = (Vec::new(), Vec::new(), 1);
    for first in (0..APPENDS).step_by(APPEND_CHUNK as usize) {
        chunk.clear();
        for i in first..first + APPEND_CHUNK {
            numbered_payload(log.entries + i, PAYLOAD, &mut body);
            append_line(
                &mut chunk,
                msg_id,
                std::str::from_utf8(&body).expect("ASCII"),
            );
            msg_id += 1;
        }
        peer.send(&chunk);
        for _ in 0..APPEND_CHUNK {
            peer.read_append_reply();
        }
    }
    let last = log.entries + APPENDS - 1;
    for r in 0..READS {
        let offset = r * last / (READS - 1);
        let reply = reply_body(peer.call(wal_read_line(msg_id, offset).as_bytes()));
        msg_id += 1;
        expect_type(&reply, "wal_read_ok");
        numbered_payload(offset, PAYLOAD, &mut body);
        assert_eq!(reply["checksum_valid"], true, "entry {offset}");
        assert_eq!(
            reply["payload"].as_str().map(str::as_bytes),
            Some(&body[..]),
            "entry {offset} read back"
        );
    }
    let peak = peer.vm_hwm();
    peer.finish();
    (after_init, peak)
}

fn memory_row(node: &str, dir: &Path, big: &TestLog, empty: &TestLog, table: &mut Table) {
    eprintln!("memory after open: {APPENDS} appends and {READS} reads on each log...");
    let (big_init, big_peak) = peak_rss(node, dir, big);
    let (empty_init, empty_peak) = peak_rss(node, dir, empty);
    eprintln!(
        "memory after open: VmHWM big log {big_peak} B (after init {big_init} B), empty log \
         {empty_peak} B (after init {empty_init} B)"
    );
    table.push(Row::checked(
        "memory after open",
        &format!(
            "peak RSS (VmHWM) of wal-node after init on the big log, {} appends of {PAYLOAD} B \
             (pipelined {APPEND_CHUNK} at a time) and {READS} reads spread over every segment, read before \
             stdin closes; the same on the empty log beside it",
            count(APPENDS as f64)
        ),
        format!(
            "{} (after init: {}); empty log: {} (after init: {})",
            mib(big_peak),
            mib(big_init),
            mib(empty_peak),
            mib(empty_init)
        ),
        format!("{:.2} × budget", big_peak as f64 / MEMORY_BUDGET as f64),
        format!("≤ {}", mib(MEMORY_BUDGET)),
        big_peak <= MEMORY_BUDGET,
    ));
}
