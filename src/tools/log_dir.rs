//! A log directory as the tools see it, read without changing anything: its
//! metadata, its segments in offset order with their index files, and the
//! other files in it (doc/format.md "Layout").

use crate::log::meta::{Meta, MetaDefect};
use crate::log::names::{self, Kind};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// What the directory's `wal-node.meta` holds.
pub enum MetaState {
    Ok(Meta),
    /// No metadata file, though the directory holds segments.
    Missing,
    /// Our magic and version, but a wrong size or checksum.
    Damaged(String),
}

/// One segment file and its index file, if it has one.
pub struct SegmentFile {
    pub start: u64,
    pub path: PathBuf,
    pub index: Option<PathBuf>,
}

impl SegmentFile {
    pub fn name(&self) -> String {
        names::segment(self.start)
    }

    pub fn index_name(&self) -> String {
        names::index(self.start)
    }
}

pub struct LogDir {
    pub path: PathBuf,
    pub meta: MetaState,
    /// Oldest first; the last is the active one.
    pub segments: Vec<SegmentFile>,
    /// Half-written files left by a crash (the node removes them at open).
    pub temps: Vec<String>,
    /// Index files whose segment is not there.
    pub stray_indexes: Vec<String>,
    /// Snapshot offsets, ascending.
    pub snapshots: Vec<u64>,
    /// Files of no name the log uses: left alone, mentioned.
    pub unknown: Vec<String>,
}

impl LogDir {
    /// Lists and classifies `path`. Fails if it is not a wal-node log
    /// directory, or holds a format this build does not read.
    pub fn read(path: &Path) -> Result<LogDir> {
        let shown = path.display();
        let mut has_meta = false;
        let mut segments = BTreeMap::new();
        let mut indexes = BTreeMap::new();
        let (mut temps, mut unknown, mut snapshots) = (Vec::new(), Vec::new(), Vec::new());
        for entry in std::fs::read_dir(path).with_context(|| format!("cannot list {shown}"))? {
            let entry = entry.with_context(|| format!("cannot list {shown}"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match names::classify(&name) {
                Kind::Meta => has_meta = true,
                Kind::Segment(start) => {
                    segments.insert(start, entry.path());
                }
                Kind::Index(start) => {
                    indexes.insert(start, entry.path());
                }
                Kind::Snapshot(offset) => snapshots.push(offset),
                Kind::Temp => temps.push(name),
                Kind::Torn => {}
                Kind::Unknown => unknown.push(name),
            }
        }
        temps.sort();
        unknown.sort();
        snapshots.sort();
        let meta = if has_meta {
            read_meta(path)?
        } else if segments.is_empty() && indexes.is_empty() {
            bail!(
                "{shown} is not a wal-node log directory: {}",
                what_it_holds(path, &unknown)
            );
        } else {
            MetaState::Missing
        };
        let stray_indexes = indexes
            .keys()
            .filter(|start| !segments.contains_key(start))
            .map(|&start| names::index(start))
            .collect();
        let segments = segments
            .into_iter()
            .map(|(start, path)| SegmentFile {
                start,
                path,
                index: indexes.remove(&start),
            })
            .collect();
        Ok(LogDir {
            path: path.to_owned(),
            meta,
            segments,
            temps,
            stray_indexes,
            snapshots,
            unknown,
        })
    }
}

fn read_meta(dir: &Path) -> Result<MetaState> {
    let path = dir.join(names::META);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    match Meta::decode(&bytes) {
        Ok(meta) => Ok(MetaState::Ok(meta)),
        Err(MetaDefect::Damaged(why)) => Ok(MetaState::Damaged(why)),
        Err(defect @ MetaDefect::Foreign) => bail!(
            "{} is not a wal-node log directory: {} {defect}",
            dir.display(),
            names::META
        ),
        Err(defect @ MetaDefect::Version(_)) => {
            bail!("cannot read {}: {defect}", path.display())
        }
    }
}

/// Why a directory without metadata or segments is not a log, and which of
/// its subdirectories are, so that `DIR` given for `DIR/<id>/` says so.
fn what_it_holds(path: &Path, unknown: &[String]) -> String {
    let logs: Vec<&str> = unknown
        .iter()
        .filter(|name| path.join(name).join(names::META).is_file())
        .map(String::as_str)
        .collect();
    if !logs.is_empty() {
        format!(
            "it holds the log directories {}; give one of them",
            logs.join(", ")
        )
    } else if unknown.is_empty() {
        "it is empty".into()
    } else {
        format!("it holds no {} and no segment files", names::META)
    }
}

/// Takes the lock a node holds while it serves a log directory (`flock` on
/// the directory itself). `None`: another process holds it.
pub fn lock(path: &Path) -> Result<Option<File>> {
    let dir = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    match dir.try_lock() {
        Ok(()) => Ok(Some(dir)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The log directory holding the segment file `path`, if it is in one.
pub fn holding(path: &Path) -> Option<&Path> {
    let dir = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return None,
    };
    dir.join(names::META).is_file().then_some(dir)
}

/// Whether the directory `dir` holds a segment starting after `start`: the
/// segment `start` is then sealed.
pub fn has_later_segment(dir: &Path, start: u64) -> io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        if let Kind::Segment(s) = names::classify(&entry?.file_name().to_string_lossy())
            && s > start
        {
            return Ok(true);
        }
    }
    Ok(false)
}
