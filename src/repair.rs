//! Cutting a log back to its last kept frame without destroying evidence:
//! the cut bytes are saved beside the log first, then the log is truncated.
//!
//! When there is no room for the save, what the bytes are decides. A torn
//! tail was never acknowledged: it is cut anyway, and its size, CRC and first
//! bytes are reported instead. Broken framing may hold acknowledged data: the
//! cut is refused, naming how much space to free. A failed save never leaves
//! an empty or partial save file behind.

use crate::dir::sync_parent;
use crate::recovery::{ScanReport, Tail};
use anyhow::{Context, Result, anyhow};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a cut did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Byte position where the log now ends.
    pub pos: u64,
    /// The file holding the cut bytes, if any were not zero and they could
    /// be saved.
    pub saved_to: Option<PathBuf>,
    /// How many bytes were cut (saved or not).
    pub cut_bytes: u64,
    /// Set when a torn tail was cut without being saved, for lack of space.
    pub unsaved: Option<Unsaved>,
}

/// A torn tail that was cut without being saved: what identifies its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsaved {
    /// Byte position of the first unsaved byte.
    pub pos: u64,
    pub len: u64,
    /// CRC-32 (IEEE) of all `len` bytes.
    pub crc: u32,
    /// The first bytes, up to `HEAD_BYTES`.
    pub head: Vec<u8>,
    /// Why the save failed.
    pub why: String,
}

/// How many of the unsaved bytes are shown.
const HEAD_BYTES: usize = 32;

impl std::fmt::Display for Unsaved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: Vec<String> = self.head.iter().map(|b| format!("{b:02x}")).collect();
        write!(
            f,
            "the {} bytes at byte offset {} could not be saved ({}): CRC-32 {:08x}, first {} \
             bytes (hex) {}",
            self.len,
            self.pos,
            self.why,
            self.crc,
            self.head.len(),
            hex.join(" ")
        )
    }
}

/// Saves the bytes after `report.data_end` (up to the last non-zero one)
/// beside `log_path`, syncs that file and the directory, then truncates the
/// log to `data_end` and syncs it. `file` must be open for writing.
///
/// If the save fails for lack of space, a torn tail is cut all the same
/// (see `Cut::unsaved`); broken framing is not, and the log is untouched.
pub fn cut_tail(log_path: Option<&Path>, file: &File, report: &ScanReport) -> Result<Cut> {
    let pos = report.data_end;
    let len = report.damaged_bytes();
    let mut cut = Cut {
        pos,
        saved_to: None,
        cut_bytes: len,
        unsaved: None,
    };
    if let Some(path) = log_path
        && len > 0
    {
        match save_beside(path, file, pos, len) {
            Ok(saved) => cut.saved_to = Some(saved),
            Err(e) if !is_lack_of_space(&e) => return Err(e),
            // Never acknowledged: no client was promised these bytes.
            Err(e) if matches!(report.tail, Tail::Torn { .. }) => {
                cut.unsaved = Some(Unsaved::read(file, pos, len, format!("{e:#}"))?);
            }
            Err(e) => return Err(no_room(path, pos, len, &e)),
        }
    }
    file.set_len(pos)
        .with_context(|| format!("truncating the log to offset {pos}"))?;
    file.sync_all().context("syncing the truncated log")?;
    Ok(cut)
}

/// Copies `len` bytes of `file` from byte `pos` to a new `<log>.torn-<pos>`
/// (or `.torn-<pos>.N` if that exists already, from an earlier crash at
/// the same place), in chunks, and syncs it and its directory. On failure
/// the new file is removed again.
fn save_beside(log_path: &Path, file: &File, pos: u64, len: u64) -> Result<PathBuf> {
    let base = format!("{}.torn-{pos}", log_path.display());
    for n in 0.. {
        let path = PathBuf::from(if n == 0 {
            base.clone()
        } else {
            format!("{base}.{n}")
        });
        let saved = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        };
        return match fill(saved, &path, file, pos, len) {
            Ok(()) => Ok(path),
            Err(e) => Err(discard(&path, e)),
        };
    }
    unreachable!("some suffix is free")
}

/// Writes the bytes to save into `saved`, then syncs it and its directory.
fn fill(mut saved: File, path: &Path, file: &File, pos: u64, len: u64) -> Result<()> {
    let mut buf = vec![0; len.min(8 << 20) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], pos + done)
            .with_context(|| format!("reading the bytes to cut at offset {}", pos + done))?;
        saved
            .write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        done += n as u64;
    }
    saved
        .sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    sync_parent(path)
}

/// Removes a save that failed part way, so no empty or partial `.torn-` file
/// can be taken for the cut bytes. Returns the save's error.
fn discard(path: &Path, failure: anyhow::Error) -> anyhow::Error {
    match std::fs::remove_file(path) {
        Ok(()) => {
            // Best effort: a crash now may at worst bring back an empty name.
            let _ = sync_parent(path);
            failure
        }
        Err(e) => failure.context(format!(
            "and removing the partial {} failed too ({e}): it does not hold all the cut bytes",
            path.display()
        )),
    }
}

/// Whether `e` says the filesystem (or a quota, or the file size limit) had
/// no room for the save.
fn is_lack_of_space(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                io::ErrorKind::StorageFull
                    | io::ErrorKind::QuotaExceeded
                    | io::ErrorKind::FileTooLarge
            )
        })
    })
}

impl Unsaved {
    /// Describes the `len` bytes of `file` at byte `pos`, read in chunks.
    fn read(file: &File, pos: u64, len: u64, why: String) -> Result<Unsaved> {
        let mut crc = crc32fast::Hasher::new();
        let mut head = Vec::new();
        let mut buf = vec![0; len.min(1 << 20) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], pos + done)
                .with_context(|| format!("reading the bytes to cut at offset {}", pos + done))?;
            crc.update(&buf[..n]);
            if done == 0 {
                head = buf[..n.min(HEAD_BYTES)].to_vec();
            }
            done += n as u64;
        }
        Ok(Unsaved {
            pos,
            len,
            crc: crc.finalize(),
            head,
            why,
        })
    }
}

/// The refusal to cut bytes that may hold acknowledged data unsaved: says
/// how many bytes must be freed for the save to fit.
fn no_room(log_path: &Path, pos: u64, len: u64, e: &anyhow::Error) -> anyhow::Error {
    let dir = match log_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let space = match free_space(dir) {
        Ok((free, block)) => {
            let need = len.div_ceil(block) * block;
            if need > free {
                format!(
                    "The save needs {need} bytes ({len} bytes in {block}-byte blocks) on the \
                     filesystem of {}, which has {free} bytes free: free at least {} bytes \
                     there, then retry",
                    dir.display(),
                    need - free
                )
            } else {
                format!(
                    "The filesystem of {} has {free} bytes free, enough for the {need} the save \
                     needs: what refused it is a quota or a file size limit; raise it, then retry",
                    dir.display()
                )
            }
        }
        Err(statvfs) => format!(
            "Free at least {len} bytes on the filesystem of {} (its free space could not be \
             read: {statvfs}), then retry",
            dir.display()
        ),
    };
    anyhow!(
        "cannot save the {len} bytes to be cut from byte offset {pos} ({e:#}). They may hold \
         acknowledged data, so nothing was cut and no save file was left. {space}"
    )
}

/// Bytes free to an unprivileged user on the filesystem holding `dir`, and
/// its block size.
#[allow(clippy::unnecessary_cast)] // statvfs's field types differ between targets
fn free_space(dir: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path and a buffer of the right type.
    if unsafe { libc::statvfs(c_dir.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the buffer.
    let st = unsafe { st.assume_init() };
    let block = if st.f_frsize > 0 {
        st.f_frsize as u64
    } else {
        st.f_bsize as u64
    };
    Ok((st.f_bavail as u64 * block, block.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode;
    use crate::recovery::scan;

    /// A save that fails for a reason other than space (here: the log
    /// cannot be read back) leaves no `.torn-` file and the log uncut.
    #[test]
    fn a_failed_save_leaves_no_save_file_whatever_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n1.wal");
        let mut bytes = encode(b"whole");
        bytes.extend_from_slice(&encode(b"torn frame")[..9]);
        std::fs::write(&log, &bytes).unwrap();
        let report = scan(
            &File::open(&log).unwrap(),
            bytes.len() as u64,
            0,
            0,
            1 << 20,
            |_| {},
        )
        .unwrap();
        assert!(matches!(report.tail, Tail::Torn { .. }), "{report:?}");
        let write_only = OpenOptions::new().write(true).open(&log).unwrap();
        let e = cut_tail(Some(&log), &write_only, &report).unwrap_err();
        assert!(
            format!("{e:#}").contains("reading the bytes to cut"),
            "{e:#}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["n1.wal"], "the failed save left a file behind");
        assert_eq!(std::fs::read(&log).unwrap(), bytes, "the log was cut");
    }
}
