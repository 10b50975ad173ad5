//! The log: open and replay a file, append frames, sync, read entries back.
//!
//! Appends are encoded into a pending buffer and reach the file in one write
//! at `commit` (or earlier, when a read needs them), then one `fdatasync`
//! covers them all. Nothing may be acknowledged before `commit` returns Ok.

use crate::dir;
use crate::frame::{self, HEADER_LEN};
use crate::index::Index;
use crate::recovery::{self, ScanReport, Tail};
use crate::repair::{self, Cut};
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file is kept this far ahead of the data, in zero-filled chunks, so a
/// sync after an append flushes data only, not the file's size too.
const PREALLOC_CHUNK: u64 = 16 << 20;

/// What replay does with broken framing inside the log (`--recover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Recover {
    /// Refuse to open: the damage may be acknowledged data.
    #[default]
    Refuse,
    /// Cut the log at the damage, saving the cut bytes beside it.
    Truncate,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub max_entry_bytes: u32,
    pub recover: Recover,
}

/// Why a log could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Another process holds the log's lock.
    Locked(PathBuf),
    /// The path is (or leads to) something other than a regular file, such
    /// as a device or a FIFO; nothing was written to it.
    NotAFile {
        path: PathBuf,
        /// What it is: "a block device", ...
        kind: &'static str,
        /// Where the path leads, if it is a symlink.
        target: Option<PathBuf>,
    },
    /// Broken framing inside the log; left untouched.
    Damaged {
        path: PathBuf,
        report: ScanReport,
    },
    Io(anyhow::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Locked(p) => {
                write!(f, "log {} is locked by another process", p.display())
            }
            OpenError::NotAFile { path, kind, target } => {
                write!(f, "log {} is {kind}", path.display())?;
                if let Some(target) = target {
                    write!(f, " (through the symlink to {})", target.display())?;
                }
                write!(
                    f,
                    ", not a regular file: refusing to use it; nothing was written to it"
                )
            }
            OpenError::Damaged { path, report } => match report.tail {
                Tail::BrokenFraming {
                    offset,
                    defect,
                    resync_at,
                } => {
                    // What replay cannot tell: a page lost from a batch
                    // never acknowledged looks the same as damage to
                    // acknowledged frames.
                    let place = match resync_at {
                        Some(_) => "The damage is inside the log, before its last whole frame",
                        None => "The damage may be inside the log, with whole frames after it",
                    };
                    write!(
                        f,
                        "log {} has broken framing at byte offset {offset} ({defect}); {}. \
                         {place}: it may be acknowledged data, or a page lost from a batch \
                         that was never acknowledged. The {} entries before byte offset {} \
                         are intact",
                        path.display(),
                        recovery::resumption(resync_at),
                        report.entries(),
                        report.data_end
                    )?;
                    if report.data_end < offset {
                        write!(
                            f,
                            " (the frames from there to {offset} fail their checksum)"
                        )?;
                    }
                    write!(f, "; the file was left untouched")
                }
                _ => write!(f, "log {} is damaged", path.display()),
            },
            OpenError::Io(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for OpenError {
    fn from(e: anyhow::Error) -> Self {
        OpenError::Io(e)
    }
}

/// A failure of the log's I/O, and what it means for the appends in flight.
#[derive(Debug)]
pub enum LogError {
    /// Writing the frames failed; the file can be rolled back: nothing happened.
    Write(io::Error),
    /// The sync (or a rollback) failed: what is on disk is unknown.
    Sync(io::Error),
    /// Reading an entry back failed; the log itself is unchanged.
    Read(io::Error),
}

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

/// A point to roll back to: the log's state before a batch.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    entries: u64,
    data_end: u64,
}

pub struct Wal {
    file: File,
    path: Option<PathBuf>,
    index: Index,
    /// End of the last frame appended (written or pending): `total_bytes`.
    data_end: u64,
    /// End of the bytes written to the file; `pending` goes here next.
    written_end: u64,
    /// End of the bytes known durable.
    synced_end: u64,
    /// The file's size: zeros from `written_end` up to here.
    allocated_end: u64,
    pending: Vec<u8>,
    corrupt_entries: u64,
    /// After a failed preallocation: the data size at which to try again.
    prealloc_retry_at: Option<u64>,
}

impl Wal {
    /// Opens (creating if missing) and replays the log at `path`.
    pub fn open(path: &Path, opts: Options) -> Result<(Wal, Option<Cut>), OpenError> {
        let file = open_or_create(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(OpenError::Locked(path.to_owned())),
            Err(TryLockError::Error(e)) => {
                return Err(OpenError::Io(
                    anyhow::Error::new(e).context(format!("locking {}", path.display())),
                ));
            }
        }
        Wal::replay(file, Some(path.to_owned()), opts)
    }

    /// A private log that disappears with the process, however it ends: the
    /// file is created already unlinked. Still really written and synced.
    pub fn anonymous() -> Result<Wal> {
        let dir = std::env::temp_dir();
        let file = tempfile::tempfile_in(&dir).with_context(|| {
            format!(
                "creating the private log (an unlinked file) in the temporary directory {} \
                 (TMPDIR, else /tmp: set TMPDIR to a writable directory, or give --dir)",
                dir.display()
            )
        })?;
        let (wal, _) = Wal::replay(
            file,
            None,
            Options {
                max_entry_bytes: u32::MAX,
                recover: Recover::Refuse,
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(wal)
    }

    fn replay(
        file: File,
        path: Option<PathBuf>,
        opts: Options,
    ) -> Result<(Wal, Option<Cut>), OpenError> {
        let name = path
            .as_deref()
            .map_or("<anonymous>".into(), |p| p.display().to_string());
        let file_len = file
            .metadata()
            .with_context(|| format!("reading the size of {name}"))?
            .len();
        let mut index = Index::default();
        let mut failing = Vec::new();
        let report = recovery::scan(&file, file_len, 0, 0, opts.max_entry_bytes, |f| {
            index.push(f.offset);
            if !f.crc_ok() {
                failing.push(f.index);
            }
        })
        .with_context(|| format!("replaying {name}"))?;
        index.truncate(report.end_index);
        if report.corrupt_entries > 0 {
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
            crate::stderr!(
                "{name}: {} failing its checksum (bit rot in acknowledged data) at \
                 offset(s) {}{more}. Entries stay at their offsets and read back with \
                 checksum_valid=false; `wal-node inspect` shows them",
                crate::count(report.corrupt_entries, "entry", "entries"),
                listed.join(", ")
            );
        }
        let needs_cut = match report.tail {
            Tail::Clean | Tail::Zeros { .. } => false,
            Tail::Torn { len, reason } => {
                crate::stderr!(
                    "{name}: torn tail at byte offset {} ({reason}): cutting {len} bytes \
                     of a write that was never acknowledged",
                    report.data_end
                );
                true
            }
            Tail::BrokenFraming { .. } if opts.recover == Recover::Truncate => {
                crate::stderr!(
                    "{name}: broken framing; --recover=truncate: cutting everything from \
                     byte offset {} ({} bytes), losing what followed",
                    report.data_end,
                    report.damaged_bytes()
                );
                true
            }
            Tail::BrokenFraming { .. } => {
                let path = path.unwrap_or_default();
                let err = OpenError::Damaged {
                    path: path.clone(),
                    report: report.clone(),
                };
                crate::stderr!(
                    "refusing to open: {err}. To look inside: wal-node inspect {p}. To \
                     accept losing everything from offset {} on (the cut bytes are saved beside \
                     the log): restart with --recover=truncate, or run wal-node repair \
                     --truncate-at-damage {p}",
                    report.data_end,
                    p = path.display()
                );
                return Err(err);
            }
        };
        let cut = if needs_cut {
            let cut = repair::cut_tail(path.as_deref(), &file, &report)?;
            if let Some(saved) = &cut.saved_to {
                crate::stderr!("{name}: cut bytes saved to {}", saved.display());
            }
            if let Some(unsaved) = &cut.unsaved {
                eprintln!(
                    "wal-node: {name}: {unsaved}; cut anyway, since a torn tail was never \
                     acknowledged"
                );
            }
            Some(cut)
        } else {
            None
        };
        let allocated_end = if needs_cut { report.data_end } else { file_len };
        let wal = Wal {
            file,
            path,
            index,
            data_end: report.data_end,
            written_end: report.data_end,
            synced_end: report.data_end,
            allocated_end,
            pending: Vec::new(),
            corrupt_entries: report.corrupt_entries,
            prealloc_retry_at: None,
        };
        Ok((wal, cut))
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn entries(&self) -> u64 {
        self.index.len()
    }

    /// The log's length in bytes: the sum of all frames.
    pub fn total_bytes(&self) -> u64 {
        self.data_end
    }

    /// Entries found damaged by bit rot when the log was opened.
    pub fn corrupt_entries(&self) -> u64 {
        self.corrupt_entries
    }

    /// Whether every byte up to `end` is known durable.
    pub fn synced_through(&self, end: u64) -> bool {
        self.synced_end >= end
    }

    /// Adds a frame for `payload` (non-empty, within the entry limit) to the
    /// pending batch. Not durable, and not to be acknowledged, until `commit`.
    pub fn append(&mut self, payload: &[u8]) -> Appended {
        let offset = self.index.len();
        self.index.push(self.data_end);
        let crc = frame::encode_into(&mut self.pending, payload);
        self.data_end += (HEADER_LEN + payload.len()) as u64;
        Appended {
            offset,
            length: payload.len() as u32,
            crc,
        }
    }

    pub fn mark(&self) -> Mark {
        Mark {
            entries: self.index.len(),
            data_end: self.data_end,
        }
    }

    /// Undoes every append since `mark`, in memory and on disk. The mark must
    /// be of durable state (taken right after a commit or an open).
    pub fn rollback(&mut self, mark: Mark) -> Result<(), LogError> {
        self.index.truncate(mark.entries);
        self.pending.clear();
        self.data_end = mark.data_end;
        if self.written_end > mark.data_end {
            // Frames past the mark may be on disk, whole or in part: cut them
            // off so no later frame ever lands after half a frame.
            self.written_end = mark.data_end;
            self.allocated_end = mark.data_end;
            self.file.set_len(mark.data_end).map_err(LogError::Sync)?;
            self.file.sync_all().map_err(LogError::Sync)?;
        }
        Ok(())
    }

    /// Writes the pending frames to the file (not yet synced).
    pub fn write_pending(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // Past `allocated_end` the write simply grows the file; the commit's
        // `fdatasync` then covers the new size. Preallocating here could
        // sync frames a read had already written, outside `commit`.
        let end = self.written_end + self.pending.len() as u64;
        let result = self.file.write_all_at(&self.pending, self.written_end);
        // Even a failed write may have left part of the batch on disk: count
        // it as written so `rollback` cuts it off.
        self.written_end = end;
        result.map_err(LogError::Write)?;
        self.allocated_end = self.allocated_end.max(end);
        self.pending.clear();
        Ok(())
    }

    /// Makes every append so far durable: one write, one `fdatasync`.
    pub fn commit(&mut self) -> Result<(), LogError> {
        self.write_pending()?;
        if self.synced_end < self.written_end {
            self.file.sync_data().map_err(LogError::Sync)?;
            self.synced_end = self.written_end;
        }
        Ok(())
    }

    /// Reads entry `offset` from the file, recomputing its CRC. `Ok(None)`
    /// if there is no such entry.
    pub fn read(&mut self, offset: u64) -> Result<Option<Entry>, LogError> {
        let Some(start) = self.index.get(offset) else {
            return Ok(None);
        };
        let end = self.index.get(offset + 1).unwrap_or(self.data_end);
        if end > self.written_end {
            self.write_pending()?;
        }
        let mut bytes = vec![0; (end - start) as usize];
        self.file
            .read_exact_at(&mut bytes, start)
            .map_err(LogError::Read)?;
        let header = frame::Header::decode(&bytes);
        let payload = bytes.split_off(HEADER_LEN);
        let checksum_valid =
            header.length as usize == payload.len() && header.crc == frame::checksum(&payload);
        Ok(Some(Entry {
            payload,
            stored_crc: header.crc,
            checksum_valid,
        }))
    }

    /// Keeps at least half a chunk of zero-filled space ahead of the data,
    /// in whole chunks, each written and synced once. Called by the node
    /// between batches, when every append is durable, so the sync covers
    /// zeros only. Writing the zeros is best effort: on failure (disk full,
    /// file size limit) the file is put back, appends simply grow it, and no
    /// new attempt is made until the data has grown by another chunk. A
    /// failed sync is not: like any failed sync, it is returned, and fatal.
    pub fn extend_ahead(&mut self) -> Result<(), LogError> {
        debug_assert!(self.pending.is_empty() && self.synced_end == self.written_end);
        let end = self.data_end + PREALLOC_CHUNK / 2;
        if end <= self.allocated_end || self.prealloc_retry_at.is_some_and(|at| self.data_end < at)
        {
            return Ok(());
        }
        let target = end.div_ceil(PREALLOC_CHUNK) * PREALLOC_CHUNK;
        let zeros = vec![0u8; 1 << 20];
        let mut at = self.allocated_end;
        while at < target {
            let n = (target - at).min(zeros.len() as u64) as usize;
            if let Err(e) = self.file.write_all_at(&zeros[..n], at) {
                if self.file.set_len(self.allocated_end).is_err() {
                    // Zeros past the data are end of log: harmless if they stay.
                    self.allocated_end = at;
                }
                self.prealloc_retry_at = Some(self.data_end + PREALLOC_CHUNK);
                crate::stderr!(
                    "could not preallocate log space up to byte {target} ({e}); \
                     appending without preallocation for now"
                );
                return Ok(());
            }
            at += n as u64;
        }
        self.file.sync_data().map_err(LogError::Sync)?;
        self.allocated_end = target;
        self.prealloc_retry_at = None;
        Ok(())
    }
}

/// Opens `path` read-write, creating it (and its directory) if missing and
/// syncing each directory entry created so the log's name survives a crash.
/// Anything but a regular file (a device, a FIFO, ...) is refused before a
/// byte is written to it.
fn open_or_create(path: &Path) -> Result<File, OpenError> {
    if let Some(parent) = path.parent() {
        dir::create_durably(parent)?;
    }
    // O_NONBLOCK: opening a FIFO must not wait for a peer; O_NOCTTY: a
    // terminal must not become the process's controlling terminal.
    let open = |create: bool| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
    };
    let file = match open(true) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            open(false).map_err(|e| refusal(path, e, "opening"))?
        }
        Err(e) => return Err(refusal(path, e, "creating")),
    };
    // The check is on the descriptor itself: what was opened, not what the
    // path named a moment earlier.
    let meta = file
        .metadata()
        .with_context(|| format!("reading the type of {}", path.display()))?;
    if !meta.is_file() {
        return Err(not_a_file(path, meta.file_type()));
    }
    set_blocking(&file).with_context(|| format!("opening {}", path.display()))?;
    // Also when the file existed: a crash after an earlier run created it
    // may have come before that run's directory sync.
    dir::sync_parent(path)?;
    Ok(file)
}

/// Why opening `path` failed: some kinds of file cannot even be opened for
/// writing (a directory, a socket), so say what it is rather than the errno.
fn refusal(path: &Path, e: io::Error, doing: &str) -> OpenError {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => not_a_file(path, meta.file_type()),
        _ => OpenError::Io(anyhow::Error::new(e).context(format!("{doing} {}", path.display()))),
    }
}

fn not_a_file(path: &Path, kind: std::fs::FileType) -> OpenError {
    use std::os::unix::fs::FileTypeExt;
    let kind = if kind.is_dir() {
        "a directory"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "of an unknown kind"
    };
    OpenError::NotAFile {
        path: path.to_owned(),
        kind,
        target: std::fs::read_link(path).ok(),
    }
}

/// Clears the O_NONBLOCK the log was opened with, now that it is known to be
/// a regular file.
fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function borrows, no pointers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
