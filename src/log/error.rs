//! How the log fails, and what each failure means for a client.

use crate::recovery::{self, ScanReport, Tail};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// A failure of the log's I/O while serving, and what it means for the
/// appends in flight.
#[derive(Debug)]
pub enum LogError {
    /// Writing failed before anything became durable or visible; the log
    /// was (or can be) put back: the operation definitely did not happen.
    Write(io::Error),
    /// A sync (or a rollback) failed: what is on disk is unknown.
    Sync(io::Error),
    /// Reading an entry back failed; the log itself is unchanged.
    Read(io::Error),
}

impl LogError {
    /// Whether the failed operation definitely did not take effect.
    pub fn is_definite(&self) -> bool {
        !matches!(self, LogError::Sync(_))
    }

    pub fn into_io(self) -> io::Error {
        match self {
            LogError::Write(e) | LogError::Sync(e) | LogError::Read(e) => e,
        }
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Write(e) => write!(f, "write failed: {e}"),
            LogError::Sync(e) => write!(f, "fsync failed: {e}"),
            LogError::Read(e) => write!(f, "read failed: {e}"),
        }
    }
}

impl std::error::Error for LogError {}

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
    /// Broken framing inside a segment; left untouched.
    Damaged {
        path: PathBuf,
        report: ScanReport,
    },
    /// The directory or file is not a wal-node log, or one this build
    /// cannot read; left untouched.
    Refused(String),
    Io(anyhow::Error),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Locked(p) => {
                write!(f, "log {} is locked by another process", p.display())
            }
            OpenError::NotAFile { path, kind, target } => {
                write!(f, "log file {} is {kind}", path.display())?;
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
                    pos,
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
                        "log {} has broken framing at byte offset {pos} ({defect}); {}. \
                         {place}: it may be acknowledged data, or a page lost from a batch \
                         that was never acknowledged. The {} before byte offset {} \
                         are intact",
                        path.display(),
                        recovery::resumption(resync_at),
                        crate::count(report.entries(), "entry", "entries"),
                        report.data_end
                    )?;
                    if report.data_end < pos {
                        write!(f, " (the frames from there to {pos} fail their checksum)")?;
                    }
                    write!(
                        f,
                        "; the file was left untouched. To look inside: wal-node inspect {p}. \
                         To accept losing everything from byte offset {} on (the cut bytes \
                         are saved beside the log): restart with --recover=truncate, or run \
                         wal-node repair --truncate-at-damage {p}",
                        report.data_end,
                        p = path.display()
                    )
                }
                _ => write!(f, "log {} is damaged", path.display()),
            },
            OpenError::Refused(why) => f.write_str(why),
            OpenError::Io(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<anyhow::Error> for OpenError {
    fn from(e: anyhow::Error) -> Self {
        OpenError::Io(e)
    }
}
