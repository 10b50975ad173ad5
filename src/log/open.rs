//! Opening a log directory: check what it holds, finish or undo what a
//! crash interrupted, and replay only the active segment.

use super::error::OpenError;
use super::event::{Event, EventKind};
use super::meta::{Meta, MetaDefect};
use super::names::{self, Kind};
use super::sealed::{self, Unusable};
use super::segment::Segment;
use super::snapshot::Snapshot;
use super::store::{self, Store};
use super::{DEFAULT_MAX_SEGMENT_BYTES, Log, Options};
use crate::dir;
use anyhow::Context;
use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io;
use std::path::Path;

/// What a directory listing holds, by kind.
#[derive(Default)]
struct Listing {
    meta: bool,
    /// Segment start → whether an index file exists for it.
    segments: BTreeMap<u64, bool>,
    stray_indexes: Vec<u64>,
    snapshots: Vec<u64>,
    temps: Vec<String>,
    unknown: Vec<String>,
}

pub fn open_dir(path: &Path, opts: Options) -> Result<Log, OpenError> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => {
            return Err(OpenError::Refused(format!(
                "{shown} exists but is not a directory, so it cannot hold the log's segments"
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => dir::create_durably(path)?,
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("reading {shown}"))
                .into());
        }
    }
    let lock = File::open(path).with_context(|| format!("opening {shown}"))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(OpenError::Locked(path.to_owned())),
        Err(TryLockError::Error(e)) => {
            return Err(anyhow::Error::new(e)
                .context(format!("locking {shown}"))
                .into());
        }
    }
    let store = Store::Dir {
        path: path.to_owned(),
        _lock: lock,
    };
    let mut events = Vec::new();
    let listing = list(path).with_context(|| format!("listing {shown}"))?;
    let (meta, meta_changed) = read_or_create_meta(path, &listing, opts)?;
    for name in &listing.unknown {
        events.push(Event::new(
            EventKind::UnknownFile,
            format!("{shown}: {name} is not a file of the log; left alone"),
        ));
    }
    if !listing.temps.is_empty() {
        for name in &listing.temps {
            match std::fs::remove_file(path.join(name)) {
                // Creating the metadata above wrote and renamed a temp file
                // of this very name: the crash's one is gone already.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                removed => removed.with_context(|| format!("removing {name} in {shown}"))?,
            }
            events.push(Event::new(
                EventKind::TempRemoved,
                format!(
                    "{shown}: removed {name}, half-written when a crash stopped an earlier run"
                ),
            ));
        }
        store
            .sync_dir()
            .with_context(|| format!("syncing {shown}"))?;
    }
    for start in &listing.stray_indexes {
        // An index whose segment is gone: useless, and harmless to keep.
        events.push(Event::new(
            EventKind::UnknownFile,
            format!(
                "{shown}: {} has no segment {}; left alone",
                names::index(*start),
                names::segment(*start)
            ),
        ));
    }
    let mut segments: Vec<(u64, bool)> = listing.segments.into_iter().collect();
    if segments.is_empty() {
        // A new log (or a crash between writing the metadata and the first
        // segment): the first segment starts where the log does.
        store
            .create_segment(meta.first_offset)
            .and_then(|_| store.sync_dir())
            .with_context(|| format!("creating the first segment in {shown}"))?;
        segments.push((meta.first_offset, false));
    }
    // Deleted only once the open is sure to succeed: a refused open changes
    // nothing, and these segments may be what an operator recovers from.
    let compacted = compacted_away(&mut segments, meta.first_offset);
    let first = segments[0].0;
    if first > meta.first_offset {
        return Err(refused(
            path,
            format!(
                "the log starts at offset {} but its first segment file is {}: offsets {} to {} \
                 are missing",
                meta.first_offset,
                names::segment(first),
                meta.first_offset,
                first - 1
            ),
        ));
    }
    let (last_start, last_has_index) = *segments.last().expect("one at least");
    let mut sealed = Vec::new();
    for pair in segments.windows(2) {
        let (start, next) = (pair[0].0, pair[1].0);
        let loaded = sealed::load(
            &store,
            start,
            next - start,
            opts.max_entry_bytes,
            &mut events,
        )
        .with_context(|| format!("reading {}", names::segment(start)))?;
        sealed.push(loaded.map_err(|Unusable(why)| refused(path, why))?);
    }
    let seg_path = path.join(names::segment(last_start));
    let file = super::regular::open(&seg_path, true)?;
    let mut sealed_last = None;
    if last_has_index {
        // A crash after sealing the last segment, before the next one's
        // name was durable: if its index holds up, it is sealed; finish the
        // roll. If not, the index is stale: the segment is active.
        let len = file.metadata().context("reading a segment's size")?.len();
        let index_path = path.join(names::index(last_start));
        let header = File::open(&index_path)
            .and_then(|f| super::index_file::read_header(&f))
            .with_context(|| format!("reading {}", index_path.display()))?;
        match header {
            Ok(h) if h.start == last_start && h.segment_bytes == len => sealed_last = Some(h),
            _ => {
                std::fs::remove_file(&index_path)
                    .and_then(|()| store.sync_dir())
                    .with_context(|| format!("removing {}", index_path.display()))?;
                events.push(Event::new(
                    EventKind::IndexRebuilt,
                    format!(
                        "{}: stale index of the active segment removed",
                        index_path.display()
                    ),
                ));
            }
        }
    }
    let (active, corrupt) = match sealed_last {
        Some(h) => {
            let next = h.start + h.entries;
            let new = store
                .create_segment(next)
                .and_then(|f| store.sync_dir().map(|()| f))
                .with_context(|| format!("creating {}", names::segment(next)))?;
            events.push(Event::new(
                EventKind::SealFinished,
                format!(
                    "{shown}: {} was sealed when an earlier run stopped; started {}",
                    names::segment(last_start),
                    names::segment(next)
                ),
            ));
            // Checked like any sealed segment: this run did not write the
            // index, so its positions are verified on first read.
            let loaded = sealed::load(
                &store,
                h.start,
                h.entries,
                opts.max_entry_bytes,
                &mut events,
            )
            .with_context(|| format!("reading {}", names::segment(h.start)))?;
            sealed.push(loaded.map_err(|Unusable(why)| refused(path, why))?);
            (Segment::create(new, store.segment_path(next), next), 0)
        }
        None => {
            let (active, _cut, report) = Segment::replay(
                file,
                Some(seg_path),
                last_start,
                opts.max_entry_bytes,
                opts.recover,
                &mut events,
            )?;
            (active, report.corrupt_entries)
        }
    };
    if meta.first_offset > active.end() {
        return Err(refused(
            path,
            format!(
                "its metadata says the log starts at offset {}, past its last entry {}: \
                 acknowledged entries are missing",
                meta.first_offset,
                active.end() as i128 - 1
            ),
        ));
    }
    let snapshots = choose_snapshots(
        path,
        &listing.snapshots,
        meta.first_offset,
        active.end(),
        &mut events,
    )?;
    if meta_changed {
        store::write_meta_in(path, &meta)
            .with_context(|| format!("writing {}", path.join(names::META).display()))?;
    }
    finish_compaction(&store, &compacted, meta.first_offset, &mut events)?;
    let mut log = Log::assemble(
        store,
        meta,
        sealed,
        active,
        opts.max_entry_bytes,
        corrupt,
        events,
    );
    log.snapshots = snapshots;
    log.count_hidden_bytes()
        .with_context(|| format!("reading {shown}"))?;
    Ok(log)
}

/// Takes out of `segments` those wholly before `first_offset`: a
/// compaction stopped after its metadata update, before (or while)
/// deleting them.
fn compacted_away(segments: &mut Vec<(u64, bool)>, first_offset: u64) -> Vec<u64> {
    let gone = segments
        .windows(2)
        .take_while(|pair| pair[1].0 <= first_offset)
        .count();
    segments.drain(..gone).map(|(start, _)| start).collect()
}

/// Deletes the compacted segments `compacted_away` found, finishing the
/// compaction.
fn finish_compaction(
    store: &Store,
    compacted: &[u64],
    first_offset: u64,
    events: &mut Vec<Event>,
) -> Result<(), OpenError> {
    if compacted.is_empty() {
        return Ok(());
    }
    let dir = store.dir().expect("a directory");
    for &start in compacted {
        for name in [names::index(start), names::segment(start)] {
            match std::fs::remove_file(dir.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("removing {name}, compacted away"))
                        .into());
                }
            }
        }
    }
    store.sync_dir().context("syncing the log directory")?;
    events.push(Event::new(
        EventKind::CompactionFinished,
        format!(
            "{}: removed {} before offset {first_offset}, compacted away when an earlier run stopped",
            dir.display(),
            crate::count(compacted.len() as u64, "segment", "segments")
        ),
    ));
    Ok(())
}

/// The snapshots to keep using, oldest first, ending with the newest intact
/// one that the log continues (its offset within `[first_offset, end]`).
/// Damaged ones are skipped and reported. With none usable, the log must
/// still hold everything from offset 0; otherwise the open is refused.
fn choose_snapshots(
    path: &Path,
    offsets: &[u64],
    first_offset: u64,
    end: u64,
    events: &mut Vec<Event>,
) -> Result<Vec<Snapshot>, OpenError> {
    let mut found: Vec<Snapshot> = offsets
        .iter()
        .map(|&offset| Snapshot {
            offset,
            bytes: std::fs::metadata(path.join(names::snapshot(offset))).map_or(0, |m| m.len()),
            path: Some(path.join(names::snapshot(offset))),
            file: None,
        })
        .collect();
    found.sort_by_key(|s| s.offset);
    if let Some(ahead) = found.iter().find(|s| s.offset > end) {
        return Err(refused(
            path,
            format!(
                "snapshot {} covers entries up to offset {} but the log ends at offset {end}: \
                 acknowledged entries are missing from the log",
                ahead.name(),
                ahead.offset - 1
            ),
        ));
    }
    let mut damaged = Vec::new();
    while let Some(newest) = found.last() {
        if newest.offset < first_offset {
            break;
        }
        let verdict = newest
            .verify()
            .with_context(|| format!("reading {}", newest.name()))?;
        match verdict {
            Ok(()) => break,
            Err(why) => {
                damaged.push(format!("{} ({why})", newest.name()));
                found.pop();
            }
        }
    }
    let usable = found.last().is_some_and(|s| s.offset >= first_offset);
    if !damaged.is_empty() {
        let fallback = match found.last() {
            Some(s) if usable => format!(
                "the state is rebuilt from {} and the log after it",
                s.name()
            ),
            _ => "the state is rebuilt from the whole log".to_owned(),
        };
        if usable || first_offset == 0 {
            events.push(Event::new(
                EventKind::SnapshotDamaged,
                format!(
                    "{}: damaged snapshot(s) left in place and not used: {}; {fallback}",
                    path.display(),
                    damaged.join(", ")
                ),
            ));
        }
    }
    if !usable && first_offset > 0 {
        return Err(refused(
            path,
            format!(
                "the log starts at offset {first_offset} (entries before it were compacted \
                 away) and no intact snapshot covers them{}. Restore a snapshot of at least \
                 offset {first_offset} from a backup",
                if damaged.is_empty() {
                    String::new()
                } else {
                    format!(": damaged: {}", damaged.join(", "))
                }
            ),
        ));
    }
    if !usable {
        found.clear();
    }
    Ok(found)
}

fn refused(path: &Path, why: String) -> OpenError {
    OpenError::Refused(format!(
        "log {} cannot be opened: {why}. Nothing was changed. To look inside: wal-node verify \
         {p} and wal-node inspect {p}; restore the missing or damaged file from a backup or \
         replica if you have one",
        path.display(),
        p = path.display()
    ))
}

fn list(path: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            listing.unknown.push(name.to_string_lossy().into_owned());
            continue;
        };
        match names::classify(name) {
            Kind::Meta => listing.meta = true,
            Kind::Segment(start) => {
                listing.segments.entry(start).or_insert(false);
            }
            Kind::Index(start) => indexes.push(start),
            Kind::Snapshot(offset) => listing.snapshots.push(offset),
            Kind::Temp => listing.temps.push(name.to_owned()),
            Kind::Torn => {}
            Kind::Unknown => listing.unknown.push(name.to_owned()),
        }
    }
    for start in indexes {
        match listing.segments.get_mut(&start) {
            Some(has) => *has = true,
            None => listing.stray_indexes.push(start),
        }
    }
    listing.unknown.sort();
    Ok(listing)
}

/// The directory's metadata: read and checked, or written for a new log.
/// `--max-segment-bytes` given at start replaces the stored limit.
/// The directory's metadata, and whether it must be rewritten (a
/// `--max-segment-bytes` that differs: written once the open succeeds). A
/// new log's is written at once.
fn read_or_create_meta(
    path: &Path,
    listing: &Listing,
    opts: Options,
) -> Result<(Meta, bool), OpenError> {
    let meta_path = path.join(names::META);
    let stored = if listing.meta {
        let bytes = std::fs::read(&meta_path)
            .with_context(|| format!("reading {}", meta_path.display()))?;
        Some(Meta::decode(&bytes).map_err(|defect| {
            let advice = match defect {
                MetaDefect::Foreign => "it is not a wal-node log directory; point --dir elsewhere",
                MetaDefect::Version(_) => "run the wal-node version that wrote it",
                MetaDefect::Damaged(_) => {
                    "restore it from a backup, or, if this is your log, rewrite it: see \
                     doc/format.md \"Metadata\""
                }
            };
            OpenError::Refused(format!(
                "refusing {}: {defect}; {advice}. Nothing was changed",
                meta_path.display()
            ))
        })?)
    } else if !listing.segments.is_empty() || !listing.stray_indexes.is_empty() {
        return Err(OpenError::Refused(format!(
            "refusing {}: it holds segment files but no {}, so it is not a log this build \
             wrote; nothing was changed",
            path.display(),
            names::META
        )));
    } else if !listing.unknown.is_empty() {
        return Err(OpenError::Refused(format!(
            "refusing {}: it holds files that are not a wal-node log ({}) and no {}; point \
             --dir elsewhere. Nothing was changed",
            path.display(),
            listing.unknown.join(", "),
            names::META
        )));
    } else {
        None
    };
    let meta = Meta {
        max_segment_bytes: opts
            .max_segment_bytes
            .or(stored.map(|m| m.max_segment_bytes))
            .unwrap_or(DEFAULT_MAX_SEGMENT_BYTES),
        first_offset: stored.map_or(0, |m| m.first_offset),
    };
    if stored.is_none() {
        store::write_meta_in(path, &meta)
            .with_context(|| format!("writing {}", meta_path.display()))?;
    }
    Ok((meta, stored.is_some_and(|m| m != meta)))
}
