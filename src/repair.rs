//! Cutting a log back to its last kept frame without destroying evidence:
//! the cut bytes are saved beside the log first, then the log is truncated.

use crate::dir::sync_parent;
use crate::recovery::ScanReport;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a cut did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Where the log now ends.
    pub at: u64,
    /// The file holding the cut bytes, if any were not zero.
    pub saved_to: Option<PathBuf>,
    pub saved_bytes: u64,
}

/// Saves the bytes after `report.data_end` (up to the last non-zero one)
/// beside `log_path`, syncs that file and the directory, then truncates the
/// log to `data_end` and syncs it. `file` must be open for writing.
pub fn cut_tail(log_path: Option<&Path>, file: &File, report: &ScanReport) -> Result<Cut> {
    let at = report.data_end;
    let len = report.damaged_bytes();
    let saved_to = match log_path {
        Some(path) if len > 0 => Some(save_beside(path, file, at, len)?),
        _ => None,
    };
    file.set_len(at)
        .with_context(|| format!("truncating the log to offset {at}"))?;
    file.sync_all().context("syncing the truncated log")?;
    Ok(Cut {
        at,
        saved_to,
        saved_bytes: len,
    })
}

/// Copies `len` bytes of `file` from `offset` to a new `<log>.torn-<offset>`
/// (or `.torn-<offset>.N` if that exists already, from an earlier crash at
/// the same place), in chunks, and syncs it and its directory.
fn save_beside(log_path: &Path, file: &File, offset: u64, len: u64) -> Result<PathBuf> {
    let base = format!("{}.torn-{offset}", log_path.display());
    for n in 0.. {
        let path = PathBuf::from(if n == 0 {
            base.clone()
        } else {
            format!("{base}.{n}")
        });
        let mut saved = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        };
        let mut buf = vec![0; len.min(8 << 20) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], offset + done)
                .with_context(|| format!("reading the bytes to cut at offset {}", offset + done))?;
            saved
                .write_all(&buf[..n])
                .with_context(|| format!("writing {}", path.display()))?;
            done += n as u64;
        }
        saved
            .sync_all()
            .with_context(|| format!("syncing {}", path.display()))?;
        sync_parent(&path)?;
        return Ok(path);
    }
    unreachable!("some suffix is free")
}
