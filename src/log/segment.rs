//! One segment file: its frames, its byte cursors, and the I/O on it.
//!
//! Appends are encoded into a pending buffer and reach the file in one write
//! at `commit` (or earlier, when a read needs them), then one `fdatasync`
//! covers them all. Nothing may be acknowledged before `commit` returns Ok.
//! Only the active (last) segment is written; `seal_data` leaves it exactly
//! its frames, durable, before it is sealed.

use super::error::{LogError, OpenError};
use super::event::{Event, EventKind};
use super::segment_file::SegmentFile;
use crate::frame::{self, HEADER_LEN};
use crate::index::Index;
use crate::recovery::{self, Decision, Recover, ScanReport, Tail};
use crate::repair::{self, Cut};
use anyhow::Context;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The file is kept this far ahead of the data, in zero-filled chunks, so a
/// sync after an append flushes data only, not the file's size too.
const PREALLOC_CHUNK: u64 = 16 << 20;

/// The least room kept ahead of a small log (see `extend_ahead`).
const MIN_AHEAD: u64 = 512 << 10;

/// What `append` assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub offset: u64,
    pub length: u32,
    pub crc: u32,
}

/// An entry as read back from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub payload: Vec<u8>,
    pub stored_crc: u32,
    pub checksum_valid: bool,
}

impl Entry {
    /// Decodes a whole frame's bytes, recomputing the payload's CRC.
    pub fn from_frame(mut bytes: Vec<u8>) -> Entry {
        let header = frame::Header::decode(&bytes);
        let payload = bytes.split_off(HEADER_LEN);
        let checksum_valid =
            header.length as usize == payload.len() && header.crc == frame::checksum(&payload);
        Entry {
            payload,
            stored_crc: header.crc,
            checksum_valid,
        }
    }
}

/// One segment file. `F` is `File` in the node; unit tests put a
/// fault-injecting double under it (`segment_file::faulty`).
pub struct Segment<F = File> {
    file: F,
    /// Where the file lives; `None` for a private, unlinked one.
    path: Option<PathBuf>,
    /// Offset of this segment's first entry.
    start: u64,
    /// Byte position of each frame.
    positions: Index,
    /// Entries known durable: `rollback` goes back to here.
    durable_entries: u64,
    // The byte cursors, always `synced_end <= written_end <= data_end` and
    // `written_end <= allocated_end` (checked in `check_cursors`).
    /// End of the last frame appended (written or pending).
    data_end: u64,
    /// End of the bytes written to the file; `pending` goes here next.
    written_end: u64,
    /// End of the bytes known durable.
    synced_end: u64,
    /// The file's size, or more after a failure: zeros from `written_end`
    /// up to at most here. Never less than the size, so `seal_data` cuts
    /// every byte past the data.
    allocated_end: u64,
    pending: Vec<u8>,
    /// After a failed preallocation: the data size at which to try again.
    prealloc_retry_at: Option<u64>,
    /// A write failed: part of the batch may be on disk, so only a
    /// rollback may come next.
    write_failed: bool,
    /// A sync or a rollback's truncate failed: what is on disk past
    /// `synced_end` is unknown for good, so nothing more is made durable.
    disk_unknown: bool,
    /// Entries replay found failing their checksum.
    corrupt_entries: u64,
}

impl Segment<File> {
    /// The file, for a sequential scan of its frames (`recovery::scan`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Opens and replays one segment file on its own (a previous version's
    /// whole log, or a segment under test), locked, its first entry 0.
    pub fn open_file(
        path: &Path,
        opts: super::Options,
    ) -> Result<(Segment, Option<Cut>, Vec<Event>), OpenError> {
        let file = super::regular::open(path, true)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::Locked(path.to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("locking {}", path.display()))
                    .into());
            }
        }
        let mut events = Vec::new();
        let (segment, cut, _) = Segment::replay(
            file,
            Some(path.to_owned()),
            0,
            opts.max_entry_bytes,
            opts.recover,
            &mut events,
        )?;
        Ok((segment, cut, events))
    }

    /// Replays an existing segment file whose first entry is `start`,
    /// applying the replay policy (`recovery::decide`): a torn tail is cut
    /// and saved, bit rot kept and flagged, broken framing refused unless
    /// `recover` says to cut. What it did is pushed to `events`.
    pub fn replay(
        file: File,
        path: Option<PathBuf>,
        start: u64,
        max_entry_bytes: u32,
        recover: Recover,
        events: &mut Vec<Event>,
    ) -> Result<(Segment, Option<Cut>, ScanReport), OpenError> {
        let name = display(path.as_deref());
        let file_len = file
            .metadata()
            .with_context(|| format!("reading the size of {name}"))?
            .len();
        let mut positions = Index::default();
        let mut failing = Vec::new();
        let report = recovery::scan(&file, file_len, 0, start, max_entry_bytes, |f| {
            positions.push(f.pos);
            if !f.crc_ok() {
                failing.push(f.index);
            }
        })
        .with_context(|| format!("replaying {name}"))?;
        positions.truncate(report.entries());
        if report.corrupt_entries > 0 {
            events.push(bit_rot_event(&name, &report, &failing));
        }
        let cut = match recovery::decide(&report, recover) {
            Decision::Keep => None,
            Decision::Refuse => {
                return Err(OpenError::Damaged {
                    path: path.clone().unwrap_or_default(),
                    report,
                });
            }
            decision @ (Decision::CutTorn | Decision::CutDamage) => {
                let cut = repair::cut_tail(path.as_deref(), &file, &report)?;
                events.push(cut_event(&name, &report, decision, &cut));
                Some(cut)
            }
        };
        let allocated_end = if cut.is_some() {
            report.data_end
        } else {
            file_len
        };
        let segment = Segment {
            file,
            path,
            start,
            durable_entries: positions.len(),
            positions,
            data_end: report.data_end,
            written_end: report.data_end,
            synced_end: report.data_end,
            allocated_end,
            pending: Vec::new(),
            prealloc_retry_at: None,
            write_failed: false,
            disk_unknown: false,
            corrupt_entries: report.corrupt_entries,
        };
        Ok((segment, cut, report))
    }
}

impl<F: SegmentFile> Segment<F> {
    /// A new, empty segment whose first entry will be `start`.
    pub fn create(file: F, path: Option<PathBuf>, start: u64) -> Segment<F> {
        Segment {
            file,
            path,
            start,
            positions: Index::default(),
            durable_entries: 0,
            data_end: 0,
            written_end: 0,
            synced_end: 0,
            allocated_end: 0,
            pending: Vec::new(),
            prealloc_retry_at: None,
            write_failed: false,
            disk_unknown: false,
            corrupt_entries: 0,
        }
    }

    /// The file, once the segment is sealed and only read.
    pub fn into_file(self) -> F {
        self.file
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn entries(&self) -> u64 {
        self.positions.len()
    }

    /// Offset the next entry appended here would get.
    pub fn end(&self) -> u64 {
        self.start + self.positions.len()
    }

    /// Entries replay found failing their checksum (kept, flagged).
    pub fn corrupt_entries(&self) -> u64 {
        self.corrupt_entries
    }

    /// Bytes of frames, written or pending.
    pub fn bytes(&self) -> u64 {
        self.data_end
    }

    /// Byte position of entry `offset`, if this segment holds it.
    pub fn position(&self, offset: u64) -> Option<u64> {
        self.positions.get(offset.checked_sub(self.start)?)
    }

    /// Byte positions of every frame, in order (for the index file).
    pub fn positions(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.positions.len()).map(|i| self.positions.get(i).expect("in range"))
    }

    /// Whether every byte up to `end` is known durable.
    pub fn synced_through(&self, end: u64) -> bool {
        self.synced_end >= end
    }

    /// Whether every append so far is durable.
    pub fn all_durable(&self) -> bool {
        self.pending.is_empty() && self.synced_end == self.data_end
    }

    /// The cursors' invariant, in one place.
    fn cursors_in_order(&self) -> bool {
        self.synced_end <= self.written_end
            && self.written_end <= self.data_end
            && self.written_end <= self.allocated_end
    }

    fn check_cursors(&self) {
        debug_assert!(
            self.cursors_in_order(),
            "cursors out of order: synced {} written {} data {} allocated {}",
            self.synced_end,
            self.written_end,
            self.data_end,
            self.allocated_end
        );
    }

    /// Adds a frame for `payload` to the pending batch. Not durable, and
    /// not to be acknowledged, until `commit`. The caller (the log) has
    /// checked that the payload is not empty: a zero length word is end of log.
    pub fn append(&mut self, payload: &[u8]) -> Appended {
        assert!(!payload.is_empty(), "an empty payload is not a frame");
        let offset = self.end();
        self.positions.push(self.data_end);
        let crc = frame::encode_into(&mut self.pending, payload);
        self.data_end += (HEADER_LEN + payload.len()) as u64;
        Appended {
            offset,
            length: payload.len() as u32,
            crc,
        }
    }

    /// Undoes every append that is not yet durable, in memory and on disk.
    /// Returns the offset of the first entry undone (the new end).
    pub fn rollback(&mut self) -> Result<u64, LogError> {
        self.positions.truncate(self.durable_entries);
        self.pending.clear();
        // From here a failed truncate or sync is `disk_unknown`'s to stop.
        self.write_failed = false;
        self.data_end = self.synced_end;
        if self.written_end > self.synced_end {
            // Frames past the durable end may be on disk, whole or in part:
            // cut them off so no later frame ever lands after half a frame.
            self.written_end = self.synced_end;
            if let Err(e) = self.file.set_len(self.synced_end) {
                // Half a frame may stay: no frame may ever follow it.
                self.disk_unknown = true;
                return Err(LogError::Sync(e));
            }
            self.allocated_end = self.synced_end;
            self.sync(Flush::All)?;
        }
        self.check_cursors();
        Ok(self.end())
    }

    /// Writes the pending frames to the file (not yet synced).
    pub fn write_pending(&mut self) -> Result<(), LogError> {
        if self.write_failed {
            // Written again, the batch would land after part of itself.
            return Err(LogError::Write(std::io::Error::other(
                "an earlier write to this segment failed and was not rolled back",
            )));
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        // Past `allocated_end` the write simply grows the file; the commit's
        // `fdatasync` then covers the new size.
        let end = self.written_end + self.pending.len() as u64;
        let result = self.file.write_all_at(&self.pending, self.written_end);
        // Even a failed write may have left part of the batch on disk: count
        // it as written so `rollback` cuts it off.
        self.written_end = end;
        self.allocated_end = self.allocated_end.max(end);
        if let Err(e) = result {
            self.write_failed = true;
            return Err(LogError::Write(e));
        }
        self.pending.clear();
        self.check_cursors();
        Ok(())
    }

    /// Makes every append so far durable: one write, one `fdatasync`.
    pub fn commit(&mut self) -> Result<(), LogError> {
        self.write_pending()?;
        if self.synced_end < self.written_end {
            self.sync(Flush::Data)?;
            self.synced_end = self.written_end;
        }
        self.durable_entries = self.positions.len();
        Ok(())
    }

    /// Sealing's first step: every frame durable and the file exactly its
    /// frames (no preallocated zeros), so its index can describe it whole.
    pub fn seal_data(&mut self) -> Result<(), LogError> {
        self.write_pending()?;
        if self.allocated_end > self.data_end {
            self.file.set_len(self.data_end).map_err(LogError::Write)?;
            self.allocated_end = self.data_end;
            // The size changed: a full fsync, not fdatasync.
            self.sync(Flush::All)?;
            self.synced_end = self.data_end;
        }
        self.commit()
    }

    /// Every sync of the segment goes through here. After one has failed,
    /// the kernel may have dropped the dirty pages, so a later sync that
    /// succeeds proves nothing (PostgreSQL's "fsyncgate"): none is tried.
    fn sync(&mut self, flush: Flush) -> Result<(), LogError> {
        if self.disk_unknown {
            return Err(LogError::Sync(std::io::Error::other(
                "an earlier fsync or truncation of this segment failed: nothing written \
                 since can be made durable",
            )));
        }
        let result = match flush {
            Flush::Data => self.file.sync_data(),
            Flush::All => self.file.sync_all(),
        };
        result.map_err(|e| {
            self.disk_unknown = true;
            LogError::Sync(e)
        })
    }

    /// Reads entry `offset` from the file, recomputing its CRC. `Ok(None)`
    /// if this segment has no such entry.
    pub fn read(&mut self, offset: u64) -> Result<Option<Entry>, LogError> {
        let Some(i) = offset.checked_sub(self.start) else {
            return Ok(None);
        };
        let Some(at) = self.positions.get(i) else {
            return Ok(None);
        };
        let end = self.positions.get(i + 1).unwrap_or(self.data_end);
        if end > self.written_end {
            self.write_pending()?;
        }
        let mut bytes = vec![0; (end - at) as usize];
        self.file
            .read_exact_at(&mut bytes, at)
            .map_err(LogError::Read)?;
        Ok(Some(Entry::from_frame(bytes)))
    }

    /// Keeps zero-filled space ahead of the data: half the data while that
    /// is less than half a chunk (at least `MIN_AHEAD`, so a small log is not
    /// given 16 MiB of zeros), else half a chunk; in whole chunks of twice
    /// that room (1 to 16 MiB), each written and synced once, never past
    /// `limit` (the segment's size limit). Called between batches, when every append
    /// is durable, so the sync covers zeros only. Writing the zeros is best
    /// effort: on failure (disk full, file size limit) the file is put back,
    /// appends simply grow it, and no new attempt is made until the data has
    /// grown by another chunk. A failed sync is not: it is returned, and fatal.
    pub fn extend_ahead(&mut self, limit: u64, events: &mut Vec<Event>) -> Result<(), LogError> {
        debug_assert!(self.all_durable());
        let ahead = (self.data_end / 2).clamp(MIN_AHEAD, PREALLOC_CHUNK / 2);
        let chunk = (2 * ahead).next_power_of_two();
        let target = ((self.data_end + ahead).div_ceil(chunk) * chunk).min(limit);
        if target <= self.allocated_end
            || self.prealloc_retry_at.is_some_and(|at| self.data_end < at)
        {
            return Ok(());
        }
        let zeros = vec![0u8; (1 << 20).min(target - self.allocated_end) as usize];
        let mut at = self.allocated_end;
        while at < target {
            let n = (target - at).min(zeros.len() as u64) as usize;
            if let Err(e) = self.file.write_all_at(&zeros[..n], at) {
                if self.file.set_len(self.allocated_end).is_err() {
                    // Zeros past the data are end of log: harmless if they
                    // stay. Any of them up to `target` may have reached the
                    // file, so sealing must cut up to there.
                    self.allocated_end = target;
                }
                self.prealloc_retry_at = Some(self.data_end + PREALLOC_CHUNK);
                events.push(Event::new(
                    EventKind::PreallocFailed,
                    format!(
                        "could not preallocate log space up to byte {target} ({e}); appending \
                         without preallocation for now"
                    ),
                ));
                return Ok(());
            }
            at += n as u64;
        }
        // Written, synced or not: the file is this long now.
        self.allocated_end = target;
        self.sync(Flush::Data)?;
        self.prealloc_retry_at = None;
        Ok(())
    }
}

/// What a sync must cover.
#[derive(Clone, Copy)]
enum Flush {
    /// `fdatasync`: the data, and the size if it grew.
    Data,
    /// `fsync`: the size too, after the file was cut.
    All,
}

fn display(path: Option<&Path>) -> String {
    path.map_or("<private segment>".into(), |p| p.display().to_string())
}

fn bit_rot_event(name: &str, report: &ScanReport, failing: &[u64]) -> Event {
    let listed: Vec<String> = failing
        .iter()
        .filter(|&&i| i < report.end_index)
        .take(20)
        .map(u64::to_string)
        .collect();
    let more = if report.corrupt_entries > 20 {
        ", ..."
    } else {
        ""
    };
    Event::new(
        EventKind::BitRot,
        format!(
            "{name}: {} failing its checksum (bit rot in acknowledged data) at offset(s) {}{more}. \
             Entries stay at their offsets and read back with checksum_valid=false; \
             `wal-node inspect` shows them",
            crate::count(report.corrupt_entries, "entry", "entries"),
            listed.join(", ")
        ),
    )
}

fn cut_event(name: &str, report: &ScanReport, decision: Decision, cut: &Cut) -> Event {
    let saved = match (&cut.saved_to, &cut.unsaved) {
        (Some(p), _) => format!("; cut bytes saved to {}", p.display()),
        (None, Some(unsaved)) => {
            format!("; {unsaved}; cut anyway, since a torn tail was never acknowledged")
        }
        (None, None) => String::new(),
    };
    match (decision, report.tail) {
        (Decision::CutTorn, Tail::Torn { len, reason }) => Event::new(
            EventKind::TornTailCut,
            format!(
                "{name}: torn tail at byte position {} ({reason}): cut {len} bytes of a write \
                 that was never acknowledged{saved}",
                report.data_end
            ),
        ),
        _ => Event::new(
            EventKind::DamageCut,
            format!(
                "{name}: broken framing; --recover=truncate: cut everything from byte position \
                 {} ({} bytes), losing what followed{saved}",
                report.data_end,
                report.damaged_bytes()
            ),
        ),
    }
}

/// The failure paths, through a fault-injecting file.
#[cfg(test)]
mod tests;
