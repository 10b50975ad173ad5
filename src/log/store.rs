//! Where a log's files live: a directory (`--dir`), or nowhere at all (the
//! private log: every file created already unlinked, gone with the process).

use super::error::LogError;
use super::index_file::{self, Header};
use super::meta::Meta;
use super::names;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

pub enum Store {
    /// A log directory; `_lock` is the directory itself, flocked.
    Dir {
        path: PathBuf,
        _lock: File,
    },
    Private,
}

impl Store {
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Store::Dir { path, .. } => Some(path),
            Store::Private => None,
        }
    }

    pub fn segment_path(&self, start: u64) -> Option<PathBuf> {
        self.dir().map(|d| d.join(names::segment(start)))
    }

    /// A new, empty segment file. Its name is durable only after `sync_dir`.
    pub fn create_segment(&self, start: u64) -> io::Result<File> {
        match self.dir() {
            Some(dir) => OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(dir.join(names::segment(start))),
            None => tempfile::tempfile_in(std::env::temp_dir()),
        }
    }

    /// Writes a sealed segment's index durably under its final name (for a
    /// directory: a temporary file, synced, renamed; the rename is durable
    /// after `sync_dir`). A private log keeps the unlinked file.
    pub fn write_index(
        &self,
        start: u64,
        segment_bytes: u64,
        positions: impl Iterator<Item = u64>,
    ) -> io::Result<(Option<File>, Header)> {
        let Some(dir) = self.dir() else {
            let file = tempfile::tempfile()?;
            let header = index_file::write(&file, start, segment_bytes, positions)?;
            return Ok((Some(file), header));
        };
        let final_path = dir.join(names::index(start));
        let temp = dir.join(format!("{}{}", names::index(start), names::TEMP_SUFFIX));
        let result: io::Result<Header> = (|| {
            let file = File::create(&temp)?;
            let header = index_file::write(&file, start, segment_bytes, positions)?;
            // fsync, not fdatasync: a new file's size is metadata, and the
            // log's own data syncs stay the only fdatasyncs (strace tests).
            file.sync_all()?;
            std::fs::rename(&temp, &final_path)?;
            Ok(header)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        Ok((None, result?))
    }

    /// Removes a sealed segment's index (best effort: a stale index is
    /// found out and rebuilt at the next open anyway).
    pub fn remove_index(&self, start: u64) {
        if let Some(dir) = self.dir() {
            let _ = std::fs::remove_file(dir.join(names::index(start)));
        }
    }

    /// Opens a sealed segment and its index for reading.
    pub fn open_sealed(&self, start: u64) -> io::Result<(File, File)> {
        let dir = self.dir().expect("a private log keeps its files open");
        let open = |name: String| {
            super::regular::open(&dir.join(name), false).map_err(|e| match e {
                super::error::OpenError::Io(e) => io::Error::other(format!("{e:#}")),
                other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
            })
        };
        Ok((open(names::segment(start))?, open(names::index(start))?))
    }

    /// Makes the directory's entries (new, renamed, removed files) durable.
    pub fn sync_dir(&self) -> io::Result<()> {
        match self.dir() {
            Some(dir) => File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    }

    /// Replaces the metadata file whole: temporary file, sync, rename,
    /// directory sync. A crash leaves the old or the new one, never a mix.
    /// `Write` if the old one is still in place; `Sync` if the directory
    /// sync failed after the rename (which one a restart finds is unknown).
    pub fn write_meta(&self, meta: &Meta) -> Result<(), LogError> {
        let Some(dir) = self.dir() else {
            return Ok(());
        };
        replace_meta(dir, meta).map_err(LogError::Write)?;
        self.sync_dir().map_err(LogError::Sync)
    }
}

/// Writes the metadata durably, the directory sync included.
pub fn write_meta_in(dir: &Path, meta: &Meta) -> io::Result<()> {
    replace_meta(dir, meta)?;
    File::open(dir)?.sync_all()
}

/// Temporary file, fsync, rename over the old metadata.
fn replace_meta(dir: &Path, meta: &Meta) -> io::Result<()> {
    use std::io::Write;
    let temp = dir.join(format!("{}{}", names::META, names::TEMP_SUFFIX));
    let result: io::Result<()> = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(&meta.encode())?;
        file.sync_all()?;
        std::fs::rename(&temp, dir.join(names::META))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
