//! The sync trade-off, measured on this disk: how many appends per second
//! each way of syncing reaches. Pure of the protocol: a directory, an entry
//! count, a payload size and a strategy in, appends per second out.
//!
//! Every run writes real frames into its own scratch file, created already
//! unlinked in the given directory (`O_TMPFILE`), so nothing is left behind
//! however the run ends, and the log is never touched. Like the node's log,
//! the file is zero-filled and synced before the clock starts, so each
//! measured `fdatasync` flushes data, not a growing file size.

use crate::frame;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most entries one strategy may write. `always` pays one sync per entry:
/// on a disk taking 0.5 ms per `fdatasync` that is 0.5 s, and the other
/// three strategies together take far less.
pub const MAX_ENTRIES: u32 = 1000;

/// Payload bytes per entry the node's `fsync_benchmark` writes: the size of
/// the appends the throughput goals are stated for.
pub const PAYLOAD_BYTES: usize = 100;

/// Writers in flight for `group_commit`: requests that arrive together.
pub const WRITERS: usize = 32;

/// How long `batch_10ms` lets writes go unsynced.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);

/// One way of making appends durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Write and `fdatasync` each entry.
    Always,
    /// Write each entry; `fdatasync` once 10 ms have passed since the last
    /// one, and once more at the end.
    Batch10ms,
    /// Write only; the kernel writes back when it likes.
    None,
    /// What the node does: writers hand entries to one committer, which
    /// writes everything waiting and syncs once; a writer's entry counts
    /// only when the sync covering it has returned.
    GroupCommit,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::Always,
        Strategy::Batch10ms,
        Strategy::None,
        Strategy::GroupCommit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Always => "always",
            Strategy::Batch10ms => "batch_10ms",
            Strategy::None => "none",
            Strategy::GroupCommit => "group_commit",
        }
    }

    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name)
    }

    /// When an entry becomes durable.
    pub fn durability(self) -> &'static str {
        match self {
            Strategy::Always | Strategy::GroupCommit => "every_write",
            Strategy::Batch10ms => "every_10ms",
            Strategy::None => "os_dependent",
        }
    }

    /// How much written data a crash can lose.
    pub fn data_loss_window(self) -> &'static str {
        match self {
            Strategy::Always | Strategy::GroupCommit => "0ms",
            Strategy::Batch10ms => "10ms",
            Strategy::None => "seconds",
        }
    }
}

/// Appends per second `strategy` reaches writing `entries` frames of
/// `payload_len` bytes to a scratch file in `dir`.
pub fn measure(
    dir: &Path,
    entries: u32,
    payload_len: usize,
    strategy: Strategy,
) -> io::Result<f64> {
    if entries == 0 || payload_len == 0 {
        // An empty payload is no frame (its zero length word means end of log).
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a benchmark needs at least one entry of at least one byte",
        ));
    }
    let file = tempfile::tempfile_in(dir)?;
    let payload = vec![b'x'; payload_len];
    let frame_len = (frame::HEADER_LEN + payload_len) as u64;
    preallocate(&file, u64::from(entries) * frame_len)?;
    let run = Run {
        file: &file,
        payload: &payload,
        frame_len,
        entries: u64::from(entries),
    };
    let elapsed = match strategy {
        Strategy::Always => run.one_writer(Sync::EveryEntry)?,
        Strategy::Batch10ms => run.one_writer(Sync::Every(BATCH_INTERVAL))?,
        Strategy::None => run.one_writer(Sync::Never)?,
        Strategy::GroupCommit => run.group_commit()?,
    };
    Ok(f64::from(entries) / elapsed.as_secs_f64().max(1e-9))
}

/// Zero-fills the file to `len` bytes and syncs it, untimed.
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_data()
}

struct Run<'a> {
    file: &'a File,
    payload: &'a [u8],
    frame_len: u64,
    entries: u64,
}

/// When a single writer syncs.
enum Sync {
    EveryEntry,
    /// After the first write once this long has passed since the last sync,
    /// and after the last write, so the run ends durable (that last sync is
    /// counted in the time; it does not change the loss window).
    Every(Duration),
    Never,
}

impl Run<'_> {
    /// One writer: encode and write each entry, syncing as `sync` says.
    fn one_writer(&self, sync: Sync) -> io::Result<Duration> {
        let mut buf = Vec::with_capacity(self.frame_len as usize);
        let start = Instant::now();
        let mut last_sync = start;
        for i in 0..self.entries {
            buf.clear();
            frame::encode_into(&mut buf, self.payload);
            self.file.write_all_at(&buf, i * self.frame_len)?;
            let due = match sync {
                Sync::EveryEntry => true,
                Sync::Every(interval) => i + 1 == self.entries || last_sync.elapsed() >= interval,
                Sync::Never => false,
            };
            if due {
                self.file.sync_data()?;
                last_sync = Instant::now();
            }
        }
        Ok(start.elapsed())
    }

    /// Several writers, one committer; timed from the moment the writers
    /// are let go until the last entry's sync has returned.
    fn group_commit(&self) -> io::Result<Duration> {
        let shared = Shared {
            state: Mutex::new(State::default()),
            committer: Condvar::new(),
            writers: Condvar::new(),
            next: AtomicU64::new(0),
        };
        let writers = WRITERS.min(self.entries as usize);
        let elapsed = std::thread::scope(|scope| {
            let mut spawned = std::thread::Builder::new()
                .name("fsbench-commit".into())
                .spawn_scoped(scope, || self.commit_loop(&shared))
                .map(drop);
            for _ in 0..writers {
                if spawned.is_err() {
                    break;
                }
                spawned = std::thread::Builder::new()
                    .name("fsbench-write".into())
                    .spawn_scoped(scope, || self.write_loop(&shared))
                    .map(drop);
            }
            let mut state = shared.lock();
            if let Err(e) = spawned {
                // The threads that did start must not wait for a go that
                // never comes.
                state.failed = Some(e);
                shared.committer.notify_all();
            }
            let start = Instant::now();
            state.go = true;
            shared.writers.notify_all();
            while state.synced < self.entries && state.failed.is_none() {
                state = shared
                    .writers
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
            }
            start.elapsed()
        });
        match shared
            .state
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .failed
        {
            Some(e) => Err(e),
            None => Ok(elapsed),
        }
    }

    fn write_loop(&self, shared: &Shared) {
        let mut buf = Vec::with_capacity(self.frame_len as usize);
        let mut state = shared.lock();
        while !state.go && state.failed.is_none() {
            state = shared
                .writers
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        drop(state);
        while shared.next.fetch_add(1, Ordering::Relaxed) < self.entries {
            buf.clear();
            frame::encode_into(&mut buf, self.payload);
            let mut state = shared.lock();
            if state.failed.is_some() {
                return;
            }
            state.queue.extend_from_slice(&buf);
            state.queued += 1;
            let ticket = state.queued;
            if state.committer_idle {
                shared.committer.notify_one();
            }
            // Not counted until the sync covering this entry has returned.
            while state.synced < ticket && state.failed.is_none() {
                state = shared
                    .writers
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    fn commit_loop(&self, shared: &Shared) {
        let mut at = 0;
        let mut batch = Vec::new();
        loop {
            let mut state = shared.lock();
            while state.queue.is_empty() && state.synced < self.entries && state.failed.is_none() {
                state.committer_idle = true;
                state = shared
                    .committer
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
                state.committer_idle = false;
            }
            if state.synced >= self.entries || state.failed.is_some() {
                return;
            }
            // Everything waiting goes in one write and one sync.
            std::mem::swap(&mut batch, &mut state.queue);
            let covers = state.queued;
            drop(state);
            let result = self
                .file
                .write_all_at(&batch, at)
                .and_then(|()| self.file.sync_data());
            at += batch.len() as u64;
            batch.clear();
            let mut state = shared.lock();
            match result {
                Ok(()) => state.synced = covers,
                Err(e) => state.failed = Some(e),
            }
            shared.writers.notify_all();
        }
    }
}

/// What the group-commit threads share.
struct Shared {
    state: Mutex<State>,
    /// Wakes the committer: entries are waiting.
    committer: Condvar,
    /// Wakes writers and the timer: go, a sync returned, or a failure.
    writers: Condvar,
    /// The next entry to hand over; writers stop once it reaches the count.
    next: AtomicU64,
}

#[derive(Default)]
struct State {
    go: bool,
    /// Frames handed over and not yet written.
    queue: Vec<u8>,
    /// Entries handed over so far, and entries covered by a finished sync.
    queued: u64,
    synced: u64,
    failed: Option<io::Error>,
    /// The committer waits for entries: only then is waking it worth a syscall.
    committer_idle: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No thread panics while holding the lock; if one did, the counts
        // are still consistent, so carry on rather than cascade the panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::from_name(s.name()), Some(s));
        }
        assert_eq!(Strategy::from_name("ALWAYS"), None);
        assert_eq!(Strategy::from_name("batch"), None);
    }

    #[test]
    fn every_strategy_measures_a_rate_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        for s in Strategy::ALL {
            for entries in [1, 7, 64] {
                let rate = measure(dir.path(), entries, 10, s).unwrap();
                assert!(rate.is_finite() && rate > 0.0, "{s:?} {entries}: {rate}");
            }
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn nothing_to_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(measure(dir.path(), 0, 10, Strategy::Always).is_err());
        assert!(measure(dir.path(), 1, 0, Strategy::Always).is_err());
    }
}
