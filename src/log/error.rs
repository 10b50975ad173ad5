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

    pub fn io(&self) -> &io::Error {
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
            OpenError::Damaged { path, report } => match report.tail {
                Tail::BrokenFraming {
                    offset,
                    defect,
                    resync_at,
                } => {
                    write!(
                        f,
                        "log {} has broken framing at byte position {offset} ({defect}); {}. \
                         The damage lies before the last whole frame, so it is either \
                         acknowledged data or a lost page of a batch that was never \
                         acknowledged; replay cannot tell which. The {} before byte \
                         position {} are intact",
                        path.display(),
                        recovery::resumption(resync_at),
                        crate::count(report.entries(), "entry", "entries"),
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
