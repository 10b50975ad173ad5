//! The log as a whole: segments in order, append, commit, read by offset,
//! roll (doc/format.md has the layout and the crash-safety argument).
//!
//! Only the active (last) segment is written. When the next frame would
//! take it past `max_segment_bytes`, it is sealed and a new one started, in
//! durable steps that a crash between any two of leaves readable (`roll`).

pub mod adopt;
pub mod error;
pub mod event;
pub mod index_file;
pub mod meta;
pub mod names;
mod open;
mod regular;
pub mod sealed;
pub mod segment;
pub mod segment_file;
pub mod snapshot;
pub mod store;

use crate::frame::HEADER_LEN;
use crate::recovery;
pub use crate::recovery::Recover;
use crate::state::State;
pub use error::{LogError, OpenError};
pub use event::{Event, EventKind};
use meta::Meta;
use sealed::Sealed;
pub use segment::{Appended, Entry, Segment};
use snapshot::Snapshot;
use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use store::Store;

/// etcd's segment size: large enough that rolling is rare, small enough to
/// archive or delete a piece of the log.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 64 << 20;
/// The smallest segment limit accepted (what users try first).
pub const MIN_SEGMENT_BYTES: u64 = 1024;
/// The largest: sealing reads nothing back, but a segment is the unit of
/// deletion and of replay at open, so it stays bounded.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub max_entry_bytes: u32,
    pub recover: Recover,
    /// The roll limit to use; `None`: the one the log was last given
    /// (DEFAULT_MAX_SEGMENT_BYTES for a new log).
    pub max_segment_bytes: Option<u64>,
}

/// One segment, as `wal_segment_info` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub file: String,
    pub start_offset: u64,
    /// Offset of its last entry; `None` while it is empty.
    pub end_offset: Option<u64>,
    pub size_bytes: u64,
    pub sealed: bool,
}

pub struct Log {
    store: Store,
    meta: Meta,
    sealed: Vec<Sealed>,
    /// Sum of the sealed segments' bytes.
    sealed_bytes: u64,
    active: Segment,
    max_entry_bytes: u32,
    /// Entries known to fail their checksum: found at open in the active
    /// segment or in rebuilt indexes, or by reads of sealed segments.
    corrupt_at_open: u64,
    corrupt_found: BTreeSet<u64>,
    /// The sealed segment whose files a directory log keeps open.
    open_sealed: Option<usize>,
    /// Durable snapshots, oldest first; the last is the newest intact one,
    /// which the state is rebuilt from.
    snapshots: Vec<Snapshot>,
    /// Bytes of the frames before `first_offset` that the first segment
    /// still holds (compacted away, not yet deleted).
    hidden_bytes: u64,
    events: Vec<Event>,
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub snapshot_offset: u64,
    pub entries_before: u64,
    pub entries_after: u64,
    pub bytes_freed: u64,
}

/// Why a compaction was refused.
#[derive(Debug)]
pub enum CompactError {
    /// The offset is past the end of the log.
    PastEnd {
        end: u64,
    },
    /// No durable snapshot covers the entries to remove.
    NotCovered {
        newest: Option<u64>,
    },
    Io(LogError),
}

impl Log {
    /// Opens (creating if missing) the log directory `dir`.
    pub fn open(dir: &Path, opts: Options) -> Result<Log, OpenError> {
        open::open_dir(dir, opts)
    }

    /// A private log that disappears with the process, however it ends:
    /// every segment and index is created already unlinked.
    pub fn private(opts: Options) -> anyhow::Result<Log> {
        use anyhow::Context;
        let store = Store::Private;
        let file = store.create_segment(0).with_context(|| {
            format!(
                "creating the private log (an unlinked file) in the temporary directory {} \
                 (TMPDIR, else /tmp: set TMPDIR to a writable directory, or give --dir)",
                std::env::temp_dir().display()
            )
        })?;
        let meta = Meta {
            max_segment_bytes: opts.max_segment_bytes.unwrap_or(DEFAULT_MAX_SEGMENT_BYTES),
            first_offset: 0,
        };
        Ok(Log::assemble(
            store,
            meta,
            Vec::new(),
            Segment::create(file, None, 0),
            opts.max_entry_bytes,
            0,
            Vec::new(),
        ))
    }

    fn assemble(
        store: Store,
        meta: Meta,
        sealed: Vec<Sealed>,
        active: Segment,
        max_entry_bytes: u32,
        corrupt_at_open: u64,
        events: Vec<Event>,
    ) -> Log {
        Log {
            sealed_bytes: sealed.iter().map(|s| s.bytes).sum(),
            store,
            meta,
            sealed,
            active,
            max_entry_bytes,
            corrupt_at_open,
            corrupt_found: BTreeSet::new(),
            open_sealed: None,
            snapshots: Vec::new(),
            hidden_bytes: 0,
            events,
        }
    }

    /// The log directory; `None` for a private log.
    pub fn dir(&self) -> Option<&Path> {
        self.store.dir()
    }

    /// What happened that a person should see, since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Offset of the first entry the log holds: entries before it were
    /// compacted away.
    pub fn first_offset(&self) -> u64 {
        self.meta.first_offset
    }

    /// Offset the next append gets.
    pub fn next_offset(&self) -> u64 {
        self.active.end()
    }

    pub fn entries(&self) -> u64 {
        self.next_offset() - self.first_offset()
    }

    /// The log's length in bytes: the sum of all frames.
    pub fn total_bytes(&self) -> u64 {
        self.sealed_bytes + self.active.bytes() - self.hidden_bytes
    }

    /// Entries known to fail their checksum (sealed segments are checked
    /// in full by `wal-node verify`, not at open).
    pub fn corrupt_entries(&self) -> u64 {
        self.corrupt_at_open + self.corrupt_found.len() as u64
    }

    pub fn max_segment_bytes(&self) -> u64 {
        self.meta.max_segment_bytes
    }

    /// Whether every append so far is durable.
    pub fn all_durable(&self) -> bool {
        self.active.all_durable()
    }

    /// Adds an entry to the pending batch, sealing the active segment first
    /// if the frame would take it past the limit (which makes the appends
    /// before it durable). Not durable, and not to be acknowledged, until
    /// `commit`. `LogError::Write` if nothing of this append happened.
    pub fn append(&mut self, payload: &[u8]) -> Result<Appended, LogError> {
        if payload.is_empty() || payload.len() > self.max_entry_bytes as usize {
            // A zero length word is end of log, and replay calls a longer
            // one damage: neither may ever reach the file.
            return Err(LogError::Write(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a payload must be 1 to {} bytes, not {}",
                    self.max_entry_bytes,
                    payload.len()
                ),
            )));
        }
        let frame_len = (HEADER_LEN + payload.len()) as u64;
        if self.active.bytes() > 0 && self.active.bytes() + frame_len > self.meta.max_segment_bytes
        {
            self.roll()?;
        }
        Ok(self.active.append(payload))
    }

    /// Seals the active segment and starts the next. The steps, each
    /// durable before the next (doc/format.md "Rolling"):
    /// 1. the active segment's frames written and the file cut to exactly
    ///    them, fsynced;
    /// 2. its index written to `<start>.index.tmp`, fdatasynced, renamed;
    /// 3. the next segment `<end>.log` created, empty;
    /// 4. the directory fsynced: the index's and the new segment's names
    ///    are durable before any frame in the new segment is acknowledged.
    ///
    /// A crash after 1 leaves a full active segment (replayed, rolled at
    /// the next append); after 2 or 3, a last segment with an index (sealed
    /// at open, the next one created) or a sealed segment without its index
    /// (rebuilt at open), or an empty active one. A failure before 4 leaves
    /// this segment active and answers `Write` (this append did not happen);
    /// a failed directory sync is a failed sync.
    fn roll(&mut self) -> Result<(), LogError> {
        self.active.seal_data()?;
        let start = self.active.start();
        let next = self.active.end();
        let (index, header) = self
            .store
            .write_index(start, self.active.bytes(), self.active.positions())
            .map_err(LogError::Write)?;
        let file = match self.store.create_segment(next) {
            Ok(file) => file,
            Err(e) => {
                self.store.remove_index(start);
                return Err(LogError::Write(e));
            }
        };
        self.store.sync_dir().map_err(LogError::Sync)?;
        let path = self.store.segment_path(next);
        let old = std::mem::replace(&mut self.active, Segment::create(file, path, next));
        let files = index.map(|index| (old.into_file(), index));
        self.sealed_bytes += header.segment_bytes;
        self.sealed.push(Sealed::new(header, files));
        Ok(())
    }

    /// Makes every append so far durable: one write, one `fdatasync`.
    pub fn commit(&mut self) -> Result<(), LogError> {
        self.active.commit()
    }

    /// Undoes every append not yet durable. Returns the first offset undone.
    pub fn rollback(&mut self) -> Result<u64, LogError> {
        self.active.rollback()
    }

    /// Reads entry `offset`, recomputing its CRC. `Ok(None)` if the log has
    /// no such entry.
    pub fn read(&mut self, offset: u64) -> Result<Option<Entry>, LogError> {
        if offset < self.first_offset() {
            return Ok(None);
        }
        if offset >= self.active.start() {
            return self.active.read(offset);
        }
        let k = sealed::find(&self.sealed, offset);
        self.ensure_open(k).map_err(LogError::Read)?;
        let result = self.sealed[k]
            .read(offset, &self.store, self.max_entry_bytes, &mut self.events)
            .map_err(LogError::Read)?;
        let entry = result.map_err(|sealed::Unusable(why)| {
            LogError::Read(io::Error::new(io::ErrorKind::InvalidData, why))
        })?;
        if !entry.checksum_valid && self.corrupt_found.insert(offset) {
            self.events.push(Event::new(
                EventKind::BitRot,
                format!("entry {offset} fails its checksum (bit rot in a sealed segment)"),
            ));
        }
        Ok(Some(entry))
    }

    /// Opens sealed segment `k`'s files, closing the last one read: a
    /// directory log holds at most one sealed segment open.
    fn ensure_open(&mut self, k: usize) -> io::Result<()> {
        if self.sealed[k].is_open() {
            return Ok(());
        }
        let files = self.store.open_sealed(self.sealed[k].start)?;
        if let Some(previous) = self.open_sealed.replace(k)
            && previous != k
        {
            self.sealed[previous].close();
        }
        self.sealed[k].set_files(files);
        Ok(())
    }

    /// Preallocates ahead of the data, within the segment limit. Called
    /// between batches, when every append is durable.
    pub fn extend_ahead(&mut self) -> Result<(), LogError> {
        self.active
            .extend_ahead(self.meta.max_segment_bytes, &mut self.events)
    }

    /// Sets the roll limit; for a directory it is written to the metadata
    /// file (durably, before this returns) and survives a restart.
    pub fn set_max_segment_bytes(&mut self, n: u64) -> Result<(), LogError> {
        let meta = Meta {
            max_segment_bytes: n,
            ..self.meta
        };
        // Only a setting: on `Write` the old value is in force; on `Sync` the
        // next open reads whichever file the rename left.
        self.store.write_meta(&meta)?;
        self.meta = meta;
        Ok(())
    }

    /// Every segment, oldest first; the last is the active one.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let mut out: Vec<SegmentInfo> = self
            .sealed
            .iter()
            .map(|s| SegmentInfo {
                file: names::segment(s.start),
                start_offset: s.start,
                end_offset: Some(s.end() - 1),
                size_bytes: s.bytes,
                sealed: true,
            })
            .collect();
        out.push(SegmentInfo {
            file: names::segment(self.active.start()),
            start_offset: self.active.start(),
            end_offset: self
                .active
                .end()
                .checked_sub(1)
                .filter(|_| self.active.entries() > 0),
            size_bytes: self.active.bytes(),
            sealed: false,
        });
        out
    }

    /// Byte position of entry `offset` within its segment.
    fn byte_pos_of(&mut self, offset: u64) -> io::Result<u64> {
        if offset >= self.active.start() {
            return Ok(self.active.position(offset).unwrap_or(self.active.bytes()));
        }
        let k = sealed::find(&self.sealed, offset);
        self.ensure_open(k)?;
        self.sealed[k].position(offset)
    }

    /// Sets `hidden_bytes` for the current first offset.
    fn count_hidden_bytes(&mut self) -> io::Result<()> {
        let first = self.first_offset();
        self.hidden_bytes = self.byte_pos_of(first)?;
        Ok(())
    }

    /// The newest durable snapshot: its offset and size.
    pub fn newest_snapshot(&self) -> Option<(u64, u64)> {
        self.snapshots.last().map(|s| (s.offset, s.bytes))
    }

    /// The state to rebuild from and the first offset to replay on it: the
    /// newest snapshot's, or an empty state and the log's first offset.
    pub fn base_state(&self) -> Result<(State, u64), LogError> {
        let Some(snap) = self.snapshots.last() else {
            return Ok((State::default(), self.first_offset()));
        };
        match snap.load().map_err(LogError::Read)? {
            Ok(state) => Ok((state, snap.offset)),
            Err(why) => Err(LogError::Read(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("snapshot {} is damaged: {why}", snap.name()),
            ))),
        }
    }

    /// Writes `state`, which must be the state of every entry appended so
    /// far, as a snapshot. Commits first, so it never covers an entry that
    /// is not durable. Then drops all but the previous snapshot (kept as a
    /// fallback). `Write` if no snapshot was taken.
    pub fn write_snapshot(&mut self, state: &State) -> Result<(u64, u64), LogError> {
        self.commit()?;
        let offset = self.next_offset();
        let snap = snapshot::write(&self.store, state, offset).map_err(LogError::Write)?;
        let taken = (snap.offset, snap.bytes);
        if self.snapshots.last().is_some_and(|s| s.offset == offset) {
            self.snapshots.pop();
        }
        self.snapshots.push(snap);
        // Older snapshots go only now that a newer one is durable.
        let old = self.snapshots.len().saturating_sub(2);
        self.remove_snapshots(old);
        Ok(taken)
    }

    /// Removes the oldest `n` snapshots (best effort: a leftover snapshot
    /// is harmless, and removed again later).
    fn remove_snapshots(&mut self, n: usize) -> u64 {
        let mut freed = 0;
        for snap in self.snapshots.drain(..n) {
            match &snap.path {
                Some(p) => {
                    if std::fs::remove_file(p).is_ok() {
                        freed += snap.bytes;
                    }
                }
                None => freed += snap.bytes,
            }
        }
        if n > 0 {
            let _ = self.store.sync_dir();
        }
        freed
    }

    /// Removes every entry before `n`, which a durable snapshot must cover.
    /// The steps (doc/format.md "Compaction"): the metadata's first offset
    /// is set to `n` (temp, fsync, rename, directory fsync): from here the
    /// entries are gone, whatever happens next; then the segments wholly
    /// before `n` and the snapshots older than `n` are deleted and the
    /// directory fsynced. A crash between the two is finished at the next
    /// open. The segment holding `n` stays until a later compaction passes
    /// its end.
    pub fn compact(&mut self, n: u64) -> Result<Compacted, CompactError> {
        let end = self.next_offset();
        if n > end {
            return Err(CompactError::PastEnd { end });
        }
        let newest = self.snapshots.last().map(|s| s.offset);
        if newest.is_none_or(|s| s < n) {
            return Err(CompactError::NotCovered { newest });
        }
        let entries_before = self.entries();
        let first = self.first_offset();
        let mut freed = 0;
        if n > first {
            let meta = Meta {
                first_offset: n,
                ..self.meta
            };
            self.store.write_meta(&meta).map_err(CompactError::Io)?;
            self.meta = meta;
        }
        // Also at `n == first`: a segment sealed since the last compaction
        // may lie wholly before it.
        let gone = self.sealed.iter().take_while(|s| s.end() <= n).count();
        for s in self.sealed.drain(..gone) {
            freed += s.bytes + index_file::HEADER_LEN + 8 * s.entries;
            self.sealed_bytes -= s.bytes;
            if let Some(dir) = self.store.dir() {
                let _ = std::fs::remove_file(dir.join(names::index(s.start)));
                let _ = std::fs::remove_file(dir.join(names::segment(s.start)));
            }
        }
        // The segment kept open (a directory log's one) moved down the list;
        // a private log's segments keep their files: they are the only handle.
        self.open_sealed = self.open_sealed.and_then(|k| k.checked_sub(gone));
        let stale = self.snapshots.iter().take_while(|s| s.offset < n).count();
        freed += self.remove_snapshots(stale);
        if gone > 0 || n > first {
            self.store
                .sync_dir()
                .map_err(|e| CompactError::Io(LogError::Sync(e)))?;
            self.count_hidden_bytes()
                .map_err(|e| CompactError::Io(LogError::Read(e)))?;
            self.corrupt_found = self.corrupt_found.split_off(&n.max(first));
        }
        Ok(Compacted {
            snapshot_offset: newest.expect("checked"),
            entries_before,
            entries_after: self.entries(),
            bytes_freed: freed,
        })
    }

    /// Hands every entry from `from` on, in offset order, to `each` with
    /// whether its checksum holds, reading each segment sequentially in
    /// large chunks (rebuilding the state reads the whole tail of the log).
    pub fn scan_entries(
        &mut self,
        from: u64,
        mut each: impl FnMut(u64, &[u8], bool),
    ) -> Result<(), LogError> {
        let from = from.max(self.first_offset());
        self.active.write_pending()?;
        let max = self.max_entry_bytes;
        let mut visit = |f: &recovery::FrameView| each(f.index, f.payload, f.crc_ok());
        for k in 0..self.sealed.len() {
            if self.sealed[k].end() <= from {
                continue;
            }
            let first = from.max(self.sealed[k].start);
            self.ensure_open(k).map_err(LogError::Read)?;
            let seg = &self.sealed[k];
            let pos = seg.position(first).map_err(LogError::Read)?;
            let report = recovery::scan(seg.segment_file(), seg.bytes, pos, first, max, &mut visit)
                .map_err(LogError::Read)?;
            if report.end_index != seg.end() {
                return Err(LogError::Read(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "sealed segment {} is damaged after entry {}: `wal-node verify` shows where",
                        names::segment(seg.start),
                        report.end_index
                    ),
                )));
            }
        }
        let first = from.max(self.active.start());
        if let Some(pos) = self.active.position(first) {
            recovery::scan(
                self.active.file(),
                self.active.bytes(),
                pos,
                first,
                max,
                &mut visit,
            )
            .map_err(LogError::Read)?;
        }
        Ok(())
    }
}
