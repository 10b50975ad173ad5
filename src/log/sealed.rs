//! A sealed segment: never written again, read through its index file.

use super::event::{Event, EventKind};
use super::index_file::{self, Header};
use super::segment::Entry;
use super::store::Store;
use crate::recovery::{self, Decision, Recover};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub struct Sealed {
    pub start: u64,
    pub entries: u64,
    pub bytes: u64,
    header: Header,
    /// Whether the index's positions passed their checksum (checked on the
    /// first read, not at open, so opening reads headers only).
    verified: bool,
    /// The segment and its index, while open. Always for a private log; for
    /// a directory, only the segment read last.
    files: Option<(File, File)>,
}

/// Why a sealed segment cannot be served as its neighbours say it must be.
pub struct Unusable(pub String);

impl Sealed {
    /// A segment sealed just now: its index was written from memory.
    pub fn new(header: Header, files: Option<(File, File)>) -> Sealed {
        Sealed {
            start: header.start,
            entries: header.entries,
            bytes: header.segment_bytes,
            header,
            verified: true,
            files,
        }
    }

    pub fn end(&self) -> u64 {
        self.start + self.entries
    }

    pub fn close(&mut self) {
        self.files = None;
    }

    pub fn is_open(&self) -> bool {
        self.files.is_some()
    }

    pub fn set_files(&mut self, files: (File, File)) {
        self.files = Some(files);
    }

    /// The segment file, while open.
    pub fn segment_file(&self) -> &File {
        &self.files.as_ref().expect("open").0
    }

    /// Byte position of entry `offset` (which this segment holds); the
    /// files must be open.
    pub fn position(&self, offset: u64) -> io::Result<u64> {
        let (_, index) = self.files.as_ref().expect("open");
        Ok(index_file::span(index, &self.header, offset - self.start)?.0)
    }

    /// Reads entry `offset` (which this segment holds), checking the index
    /// once and rebuilding it from the segment if it fails. The files must
    /// be open.
    pub fn read(
        &mut self,
        offset: u64,
        store: &Store,
        max_entry_bytes: u32,
        events: &mut Vec<Event>,
    ) -> io::Result<Result<Entry, Unusable>> {
        if !self.verified {
            let (_, index) = self.files.as_ref().expect("open");
            if let Err(defect) = index_file::verify_positions(index, &self.header)? {
                let (segment, _) = self.files.take().expect("open");
                let rebuilt = rebuild(
                    store,
                    segment,
                    self.start,
                    self.entries,
                    &format!("{defect}"),
                    max_entry_bytes,
                    events,
                )?;
                match rebuilt {
                    Ok(s) => *self = s,
                    Err(u) => return Ok(Err(u)),
                }
            }
            self.verified = true;
        }
        let (segment, index) = self.files.as_ref().expect("open");
        let (at, end) = index_file::span(index, &self.header, offset - self.start)?;
        let mut bytes = vec![0; (end - at) as usize];
        segment.read_exact_at(&mut bytes, at)?;
        Ok(Ok(Entry::from_frame(bytes)))
    }
}

/// Checks a sealed segment at open from its index header alone: it must
/// start at `start`, hold exactly `entries` (its successor starts right
/// after), and the segment file must be the length the index says. An index
/// that is missing or fails its header check is rebuilt from the segment.
pub fn load(
    store: &Store,
    start: u64,
    entries: u64,
    max_entry_bytes: u32,
    events: &mut Vec<Event>,
) -> io::Result<Result<Sealed, Unusable>> {
    let dir = store.dir().expect("only a directory is reopened");
    let seg_path = dir.join(super::names::segment(start));
    let open = |path: &std::path::Path| match super::regular::open(path, false) {
        Ok(f) => Ok(Ok(f)),
        Err(super::error::OpenError::Io(e)) => Err(e
            .downcast::<io::Error>()
            .unwrap_or_else(|e| io::Error::other(format!("{e:#}")))),
        Err(other) => Ok(Err(Unusable(other.to_string()))),
    };
    let segment = match open(&seg_path)? {
        Ok(f) => f,
        Err(u) => return Ok(Err(u)),
    };
    let seg_len = segment.metadata()?.len();
    let why = match open(&dir.join(super::names::index(start))) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => "missing".to_string(),
        Err(e) => return Err(e),
        Ok(Err(u)) => return Ok(Err(u)),
        Ok(Ok(index)) => match index_file::read_header(&index)? {
            Err(defect) => defect.0,
            Ok(h) if h.start != start => format!("it names start offset {}", h.start),
            Ok(h) if h.segment_bytes > seg_len => {
                return Ok(Err(Unusable(format!(
                    "segment {} is {seg_len} bytes but its index says {} (the file was cut \
                     short): entries from about offset {start} to {} may be lost",
                    seg_path.display(),
                    h.segment_bytes,
                    start + entries - 1
                ))));
            }
            Ok(h) if h.segment_bytes != seg_len => format!(
                "it says the segment is {} bytes, the file is {seg_len}",
                h.segment_bytes
            ),
            Ok(h) if h.entries != entries => {
                return Ok(Err(count_mismatch(store, start, h.entries, entries)));
            }
            Ok(h) => {
                return Ok(Ok(Sealed {
                    start,
                    entries,
                    bytes: seg_len,
                    header: h,
                    verified: false,
                    files: None,
                }));
            }
        },
    };
    rebuild(
        store,
        segment,
        start,
        entries,
        &why,
        max_entry_bytes,
        events,
    )
}

/// Rebuilds a sealed segment's index by scanning it: the segment must be
/// whole frames (bit rot kept) holding exactly `entries`.
pub(crate) fn rebuild(
    store: &Store,
    segment: File,
    start: u64,
    entries: u64,
    why: &str,
    max_entry_bytes: u32,
    events: &mut Vec<Event>,
) -> io::Result<Result<Sealed, Unusable>> {
    let name = store
        .segment_path(start)
        .map_or_else(|| super::names::segment(start), |p| p.display().to_string());
    let len = segment.metadata()?.len();
    let mut positions = Vec::new();
    let report = recovery::scan(&segment, len, 0, start, max_entry_bytes, |f| {
        positions.push(f.pos);
    })?;
    positions.truncate(report.entries() as usize);
    if recovery::decide(&report, Recover::Refuse) != Decision::Keep {
        return Ok(Err(Unusable(format!(
            "sealed segment {name} is damaged after its entry {} (byte position {}): {:?}; \
             a sealed segment holds only acknowledged entries. `wal-node inspect` shows the \
             damage",
            report.end_index, report.data_end, report.tail
        ))));
    }
    if report.entries() != entries {
        return Ok(Err(count_mismatch(store, start, report.entries(), entries)));
    }
    if report.data_end < len {
        // Zeros after the frames: a seal whose cut did not reach the disk.
        // `segment` may be open read-only: cut through a writable handle.
        let path = store
            .segment_path(start)
            .expect("a private log never reopens a segment");
        let writable = std::fs::OpenOptions::new().write(true).open(path)?;
        writable.set_len(report.data_end)?;
        writable.sync_all()?;
    }
    let (index, header) = store.write_index(start, report.data_end, positions.into_iter())?;
    store.sync_dir()?;
    events.push(Event::new(
        EventKind::IndexRebuilt,
        format!(
            "{name}: index {why}; rebuilt from the segment ({})",
            crate::count(entries, "entry", "entries")
        ),
    ));
    if report.corrupt_entries > 0 {
        events.push(Event::new(
            EventKind::BitRot,
            format!(
                "{name}: {} failing its checksum (bit rot in acknowledged data); they read \
                 back with checksum_valid=false",
                crate::count(report.corrupt_entries, "entry", "entries")
            ),
        ));
    }
    let files = match index {
        Some(index) => Some((segment, index)),
        None => Some(store.open_sealed(start)?),
    };
    Ok(Ok(Sealed {
        start,
        entries,
        bytes: report.data_end,
        header,
        verified: true,
        files,
    }))
}

fn count_mismatch(store: &Store, start: u64, found: u64, expected: u64) -> Unusable {
    let name = store
        .segment_path(start)
        .map_or_else(|| super::names::segment(start), |p| p.display().to_string());
    let end = start + expected;
    Unusable(if found < expected {
        format!(
            "segment {name} holds {} from offset {start}, but the next segment starts at \
             {end}: offsets {} to {} are missing (a segment file removed from the middle?)",
            crate::count(found, "entry", "entries"),
            start + found,
            end - 1
        )
    } else {
        format!(
            "segment {name} holds {found} entries, past offset {end} where the next segment \
             starts: offsets would be served twice"
        )
    })
}

/// Index of the sealed segment holding `offset` (the caller knows one does).
pub fn find(sealed: &[Sealed], offset: u64) -> usize {
    sealed.partition_point(|s| s.start <= offset) - 1
}
