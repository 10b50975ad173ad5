//! Finding a node's log under `--dir`, and adopting a log written by the
//! previous version (one file, `DIR/<id>.wal`) as the first segment of the
//! directory `DIR/<id>/`.
//!
//! Adoption's steps, each durable before the next, so a crash between any
//! two leaves a log that opens with every acknowledged entry:
//! 1. the old file is locked and checked to be a log of ours;
//! 2. `DIR/<id>/` is created and its metadata written (temp, sync, rename,
//!    directory sync);
//! 3. the old file is hard-linked as `DIR/<id>/00000000000000000000.log`
//!    and the new directory synced: both names now reach the same data;
//! 4. the old name is removed and `DIR` synced.
//!
//! At the next open, an old file next to a directory whose first segment is
//! the same file (same inode) is a crash after step 3: step 4 is finished.

use super::error::OpenError;
use super::event::{Event, EventKind};
use super::meta::Meta;
use super::names;
use super::{DEFAULT_MAX_SEGMENT_BYTES, Log, Options, store};
use crate::dir;
use crate::frame::HeaderDefect;
use crate::recovery::{self, Tail, TornReason};
use anyhow::Context;
use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Opens the log of node `node_id` under `root`, adopting an old
/// single-file log first if there is one.
pub fn open_node(root: &Path, node_id: &str, opts: Options) -> Result<Log, OpenError> {
    dir::create_durably(root)?;
    let old = root.join(format!("{node_id}.wal"));
    let dir = root.join(node_id);
    let event = match std::fs::metadata(&old) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("reading {}", old.display()))
                .into());
        }
        Ok(_) => Some(adopt(&old, &dir, opts)?),
    };
    let mut log = Log::open(&dir, opts)?;
    if let Some(event) = event {
        log.events.insert(0, event);
    }
    Ok(log)
}

fn adopt(old: &Path, dir: &Path, opts: Options) -> Result<Event, OpenError> {
    let shown = old.display();
    let file = super::regular::open(old, true)?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading {shown}"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(OpenError::Locked(old.to_owned())),
        Err(TryLockError::Error(e)) => {
            return Err(anyhow::Error::new(e)
                .context(format!("locking {shown}"))
                .into());
        }
    }
    // A node serving the directory holds its lock: never adopt under it.
    let _dir_lock = lock_if_there(dir)?;
    let both = || {
        OpenError::Refused(format!(
            "both {shown} (a log of the previous version) and the log directory {} exist and \
             hold different logs: decide which holds the log, and move the other away; nothing \
             was changed",
            dir.display()
        ))
    };
    let first = dir.join(names::segment(0));
    if let Ok(existing) = std::fs::metadata(&first) {
        if (existing.dev(), existing.ino()) != (meta.dev(), meta.ino()) {
            return Err(both());
        }
    } else if holds_a_log(dir) {
        // Segments, or a log compacted past offset 0: not an adoption that
        // stopped between its steps.
        return Err(both());
    } else {
        check_ours(&file, meta.len(), old, opts.max_entry_bytes)?;
        dir::create_durably(dir)?;
        if std::fs::metadata(dir.join(names::META)).is_err() {
            let meta = Meta {
                max_segment_bytes: opts.max_segment_bytes.unwrap_or(DEFAULT_MAX_SEGMENT_BYTES),
                first_offset: 0,
            };
            store::write_meta_in(dir, &meta)
                .with_context(|| format!("writing the metadata of {}", dir.display()))?;
        }
        link_as_first_segment(old, &first)
            .and_then(|()| File::open(dir)?.sync_all())
            .with_context(|| format!("linking {shown} as {}", first.display()))?;
    }
    std::fs::remove_file(old).with_context(|| format!("removing {shown}"))?;
    dir::sync_parent(old)?;
    Ok(Event::new(
        EventKind::Adopted,
        format!(
            "adopted {shown} (a log of the previous version, {} bytes) as {}",
            meta.len(),
            first.display()
        ),
    ))
}

/// A file is a log of ours unless its very first header cannot start a
/// frame and nothing whole follows: a frame's header is the first thing a
/// write puts down, so even a torn first append starts with a plausible one.
fn check_ours(file: &File, len: u64, path: &Path, max_entry_bytes: u32) -> Result<(), OpenError> {
    let report = recovery::scan(file, len, 0, 0, max_entry_bytes, |_| {})
        .with_context(|| format!("reading {}", path.display()))?;
    let foreign = report.entries() == 0
        && matches!(
            report.tail,
            Tail::Torn {
                reason: TornReason::BadHeader(HeaderDefect::ZeroLength | HeaderDefect::TooLong),
                ..
            }
        );
    if foreign {
        return Err(OpenError::Refused(format!(
            "{} is not a wal-node log (its first 8 bytes are no frame header, and no whole \
             frame follows); it was not adopted and nothing was changed: move it away",
            path.display()
        )));
    }
    Ok(())
}

/// Makes `first` reach the old log's data: a hard link, or for a symlink
/// (whose relative target would not resolve from the new directory) a new
/// symlink to where it leads.
fn link_as_first_segment(old: &Path, first: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(old)?.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::canonicalize(old)?, first)
    } else {
        std::fs::hard_link(old, first)
    }
}

/// Flocks `dir` if it exists (released when the value drops).
fn lock_if_there(dir: &Path) -> Result<Option<File>, OpenError> {
    let Ok(lock) = File::open(dir) else {
        return Ok(None);
    };
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(TryLockError::WouldBlock) => Err(OpenError::Locked(dir.to_owned())),
        Err(TryLockError::Error(e)) => Err(anyhow::Error::new(e)
            .context(format!("locking {}", dir.display()))
            .into()),
    }
}

/// Whether `dir` holds more than an adoption's first steps leave (nothing,
/// or the metadata of an empty log): any segment, or metadata that is not
/// a fresh log's.
fn holds_a_log(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        match names::classify(&name.to_string_lossy()) {
            names::Kind::Segment(_) | names::Kind::Index(_) | names::Kind::Snapshot(_) => true,
            names::Kind::Meta => std::fs::read(e.path())
                .ok()
                .and_then(|b| Meta::decode(&b).ok())
                .is_none_or(|m| m.first_offset > 0),
            _ => false,
        }
    })
}
