//! The segment being followed: each round shows what it holds past the last
//! one, and once it is sealed and shown to its end, the follower moves on.
//!
//! A segment is sealed once its index file exists, or the next segment
//! does, or compaction removed it (doc/format.md "Rolling": each comes after
//! the segment's last sync). Whether it is sealed is asked *before* a round
//! reads it, so a round that read a sealed segment has read its final bytes.

use super::pause;
use super::suspect::{Sighting, Suspicion};
use crate::frame::{HEADER_LEN, Header};
use crate::log::names;
use crate::recovery::{self, FrameStatus, FrameView, ScanReport, Tail};
use crate::tools::inspect::{Args, Rows};
use crate::tools::interrupt;
use crate::tools::log_dir::{LogDir, MetaState};
use crate::tools::walk::{Row, walk};
use crate::tools::{Log, open_file};
use anyhow::{Context, Result};
use serde::Serialize;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes of the active segment a round reads past its position, at least
/// (more for a longer frame): bounded, so that a long preallocated zero tail
/// is not read again every round.
const WINDOW: u64 = 4 << 20;
/// What a round reads when the next header is still zeros (nothing new,
/// most likely): enough to notice damage just after it.
const IDLE_WINDOW: u64 = 64 << 10;

/// Rows of a sealed segment printed at a time: a whole 64 MiB segment's
/// rows are not held in memory.
const SEALED_ROWS_HELD: u64 = 1024;

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Showed what there was (perhaps nothing); look again after a pause.
    Caught,
    /// Read a full window: more may follow at once.
    MoreToRead,
    /// The segment is sealed and shown to its end.
    Finished,
}

pub struct Follower {
    /// The log directory; `None` when following one file.
    dir: Option<PathBuf>,
    path: PathBuf,
    file: File,
    start: u64,
    /// Byte position and offset of the next frame to show.
    pos: u64,
    next_index: u64,
    after_damage: bool,
    /// Sealed and shown to its end.
    finished: bool,
    /// The last frame shown: its position and header, to notice the node
    /// rolling it back (a failed write) before it could acknowledge it.
    last: Option<(u64, Header)>,
    /// The checksum of each frame shown from this segment, in order: after
    /// a rollback, where the segment stops agreeing with what was shown.
    shown_crcs: Vec<u32>,
    suspicion: Suspicion,
    max_entry_bytes: u32,
    json: bool,
    /// The directory's first offset: frames below it are compacted.
    pub first_offset: u64,
}

impl Follower {
    /// Opens the segment holding `--from` (or the file given), waiting for
    /// a log that does not exist yet. `None`: asked to stop while waiting.
    pub fn start(args: &Args, interval: Duration) -> Result<Option<Follower>> {
        let path = &args.log.path;
        let mut said_waiting = false;
        loop {
            let found = if !path.exists() || holds_no_log_yet(path) {
                None
            } else if path.is_dir() {
                let log = LogDir::read(path)?;
                log.segments
                    .iter()
                    .rev()
                    .find(|s| s.start <= args.from)
                    .or(log.segments.first())
                    .map(|seg| (seg.start, seg.path.clone(), first_offset(&log.meta)))
            } else {
                Some((args.log.open(false)?.first_index, path.clone(), 0))
            };
            if let Some((start, seg_path, first_offset)) = found {
                let file = match File::open(&seg_path) {
                    // Compacted away since the listing: list again.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    opened => {
                        opened.with_context(|| format!("cannot open {}", seg_path.display()))?
                    }
                };
                return Ok(Some(Follower::new(
                    args,
                    path,
                    seg_path,
                    file,
                    start,
                    first_offset,
                )));
            }
            // A new log's directory holds its metadata a moment before its
            // first segment; a crash between the two leaves it so.
            if !said_waiting {
                crate::tool_stderr!("inspect", "waiting for a log at {}", path.display());
                said_waiting = true;
            }
            if interrupt::stop_requested() || interrupt::reader_gone() {
                return Ok(None);
            }
            pause(interval);
        }
    }

    fn new(
        args: &Args,
        given: &Path,
        path: PathBuf,
        file: File,
        start: u64,
        first_offset: u64,
    ) -> Follower {
        Follower {
            dir: given.is_dir().then(|| given.to_owned()),
            path,
            file,
            start,
            pos: 0,
            next_index: start,
            after_damage: false,
            finished: false,
            last: None,
            shown_crcs: Vec::new(),
            suspicion: Suspicion::default(),
            max_entry_bytes: args.log.max_entry_bytes,
            json: args.json,
            first_offset,
        }
    }

    /// Starts on segment `start` (the file `path`) from its first byte.
    fn begin(&mut self, path: PathBuf, file: File, start: u64) {
        (self.path, self.file, self.start) = (path, file, start);
        (self.pos, self.next_index) = (0, start);
        (self.after_damage, self.finished, self.last) = (false, false, None);
        self.shown_crcs.clear();
        self.suspicion.clear();
    }

    /// Announces the segment now followed.
    pub fn enter(&self, rows: &mut Rows) -> io::Result<()> {
        if self.dir.is_none() {
            return Ok(());
        }
        let file = names::segment(self.start);
        if self.json {
            let line = JsonSegment {
                kind: "segment",
                file,
                start_offset: self.start,
            };
            serde_json::to_writer(&mut *rows.out, &line)?;
            writeln!(rows.out)
        } else {
            writeln!(rows.out, "segment {file}")
        }
    }

    /// Shows what the segment holds past the last round, once synced.
    pub fn round(&mut self, rows: &mut Rows, now: Instant) -> Result<Round> {
        match self.try_round(rows, now) {
            // Sealing cuts the preallocated zeros, a rollback cuts frames:
            // the file got shorter under a read. Nothing was shown; the next
            // round reads it as it is now.
            Err(e) if cut_under_read(&e) => Ok(Round::Caught),
            result => result,
        }
    }

    fn try_round(&mut self, rows: &mut Rows, now: Instant) -> Result<Round> {
        if self.finished {
            return Ok(Round::Finished);
        }
        self.check_not_rolled_back()?;
        if self.is_sealed() {
            self.show_sealed(rows)?;
            self.finished = true;
            return Ok(Round::Finished);
        }
        let len = self.file_len()?;
        let window = self.window()?;
        let end = len.min(self.pos.saturating_add(window));
        if end <= self.pos {
            return Ok(Round::Caught);
        }
        let from = self.pos;
        let (report, bad) = self.scan(end)?;
        let (show_to, damage) = self.judge(&report, &bad, now)?;
        let frames = self.read_frames(show_to, &bad)?;
        self.show(rows, &frames)?;
        if let Some(row @ Row::Damage { pos, end, .. }) = &damage
            && *pos == self.pos
        {
            rows.show(row)?;
            self.pos = *end;
            self.after_damage = true;
        }
        if self.pos > from {
            // What was read is now on disk; only then is it shown.
            self.file
                .sync_data()
                .with_context(|| format!("syncing {}", self.path.display()))?;
        }
        let more = end < len && end == from + window && self.pos > from;
        Ok(if more {
            Round::MoreToRead
        } else {
            Round::Caught
        })
    }

    /// How far past its position a round reads.
    fn window(&self) -> Result<u64> {
        let mut head = [0u8; HEADER_LEN];
        match self.file.read_exact_at(&mut head, self.pos) {
            Ok(()) if head == [0; HEADER_LEN] => Ok(IDLE_WINDOW),
            // A frame written under a larger --max-entry-bytes than this
            // tool's is still whole if its checksum matches: read all of it.
            Ok(()) => Ok(WINDOW.max(Header::decode(&head).frame_len())),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(WINDOW),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.path.display())),
        }
    }

    /// Scans `[pos, end)`: its report, and the bad frames the log keeps
    /// (before a torn tail) or that precede broken framing, in order.
    fn scan(&self, end: u64) -> Result<(ScanReport, Vec<Sighting>)> {
        let mut bad = Vec::new();
        let report = recovery::scan(
            &self.file,
            end,
            self.pos,
            self.next_index,
            self.max_entry_bytes,
            |frame| {
                if !frame.crc_ok() {
                    bad.push(sighting(frame));
                }
            },
        )
        .with_context(|| format!("reading {}", self.path.display()))?;
        let limit = match report.tail {
            Tail::BrokenFraming { pos, .. } => pos,
            _ => report.data_end,
        };
        bad.retain(|b| b.pos < limit);
        Ok((report, bad))
    }

    /// Where this round's frames end, and a damaged range after them: bad
    /// bytes are shown only once `suspicion` confirms they stay bad.
    fn judge(
        &mut self,
        report: &ScanReport,
        bad: &[Sighting],
        now: Instant,
    ) -> Result<(u64, Option<Row<'static>>)> {
        for b in bad {
            if !self.suspicion.confirms(*b, now) {
                return Ok((b.pos, None));
            }
        }
        let Tail::BrokenFraming {
            pos,
            defect,
            resync_at,
        } = report.tail
        else {
            self.suspicion.clear();
            return Ok((report.data_end, None));
        };
        let mut head = [0u8; HEADER_LEN];
        self.file
            .read_exact_at(&mut head, pos)
            .with_context(|| format!("reading {}", self.path.display()))?;
        let seen = Sighting {
            pos,
            header: Header::decode(&head),
            crc_computed: 0,
        };
        if !self.suspicion.confirms(seen, now) {
            return Ok((pos, None));
        }
        self.suspicion.clear();
        let damage = Row::Damage {
            pos,
            end: resync_at.unwrap_or(report.damaged_end),
            resumed: resync_at.is_some(),
            defect,
        };
        Ok((pos, Some(damage)))
    }

    /// Reads the frames from `pos` to `to` again, all of them before any
    /// is shown (a read that fails shows nothing). It stops early at a bad
    /// frame that is not one `judge` confirmed: the bytes changed since.
    fn read_frames(&self, to: u64, confirmed: &[Sighting]) -> Result<Vec<OwnedFrame>> {
        let mut frames = Vec::new();
        let mut stop = false;
        if to <= self.pos {
            return Ok(frames);
        }
        recovery::scan(
            &self.file,
            to,
            self.pos,
            self.next_index,
            self.max_entry_bytes,
            |frame| {
                stop |= !frame.crc_ok() && !confirmed.contains(&sighting(frame));
                if !stop {
                    frames.push(OwnedFrame {
                        index: frame.index,
                        pos: frame.pos,
                        header: frame.header,
                        crc_computed: frame.crc_computed,
                        payload: frame.payload.to_vec(),
                    });
                }
            },
        )
        .with_context(|| format!("reading {}", self.path.display()))?;
        Ok(frames)
    }

    /// Shows `frames` (a bad checksum as `corrupt`) and moves past them.
    fn show(&mut self, rows: &mut Rows, frames: &[OwnedFrame]) -> Result<()> {
        for f in frames {
            let frame = FrameView {
                index: f.index,
                pos: f.pos,
                header: f.header,
                crc_computed: f.crc_computed,
                payload: &f.payload,
            };
            let status = if frame.crc_ok() {
                FrameStatus::Ok
            } else {
                FrameStatus::Corrupt
            };
            rows.show(&Row::Frame {
                frame: &frame,
                status,
                after_damage: self.after_damage,
            })?;
            self.shown_crcs.push(f.header.crc);
            self.last = Some((f.pos, f.header));
            self.next_index = f.index + 1;
            self.pos = f.pos + f.header.frame_len();
        }
        Ok(())
    }

    /// Shows the rest of a sealed segment as `inspect` does: its bytes are
    /// final, so bit rot, broken framing and a torn last frame are shown as
    /// found, and whole frames after damage with guessed offsets.
    fn show_sealed(&mut self, rows: &mut Rows) -> Result<()> {
        let log = Log {
            file: self
                .file
                .try_clone()
                .with_context(|| format!("reading {}", self.path.display()))?,
            len: self.file_len()?,
            max_entry_bytes: self.max_entry_bytes,
            first_index: self.start,
        };
        let from = self.pos;
        let mut next_index = self.next_index;
        let mut after_damage = self.after_damage;
        let mut held = 0;
        walk(&log, |row| {
            match &row {
                Row::Frame { frame, .. } if frame.pos >= from => {
                    next_index = frame.index + 1;
                    after_damage |= matches!(
                        row,
                        Row::Frame {
                            after_damage: true,
                            ..
                        }
                    );
                }
                Row::Damage { pos, .. } if *pos >= from => after_damage = true,
                _ => return Ok(()),
            }
            rows.show(&row)?;
            // The node synced a segment before sealing it: what is read
            // here needs no sync of ours, and need not be held.
            held += 1;
            if held % SEALED_ROWS_HELD == 0 {
                rows.out.flush()?;
            }
            Ok(())
        })
        .with_context(|| format!("reading {}", self.path.display()))?;
        (self.next_index, self.after_damage) = (next_index, after_damage);
        Ok(())
    }

    /// The node cuts frames it has not acknowledged when a write fails, and
    /// writes others in their place; this follower may have synced and shown
    /// some of them in between. If the last frame shown is gone, say so and
    /// go back to the first frame that differs from what was shown.
    fn check_not_rolled_back(&mut self) -> Result<()> {
        let Some((pos, header)) = self.last else {
            return Ok(());
        };
        let len = self.file_len()?;
        let mut now = [0u8; HEADER_LEN];
        let same = len >= self.pos
            && self.file.read_exact_at(&mut now, pos).is_ok()
            && Header::decode(&now) == header;
        if same {
            return Ok(());
        }
        // The frames that still match what was shown, from the start.
        let (mut agree, mut agree_end, mut agree_last) = (0, 0, None);
        let shown = &self.shown_crcs;
        let start = self.start;
        recovery::scan(&self.file, len, 0, start, self.max_entry_bytes, |frame| {
            if agree == frame.index - start && shown.get(agree as usize) == Some(&frame.header.crc)
            {
                agree += 1;
                agree_end = frame.pos + frame.header.frame_len();
                agree_last = Some((frame.pos, frame.header));
            }
        })
        .with_context(|| format!("reading {}", self.path.display()))?;
        let from = start + agree;
        crate::tool_stderr!(
            "inspect",
            "{}: entries from offset {from} on, already shown, were rolled back by the node \
             (a write it never acknowledged); showing what the log holds from {from} on",
            self.path.display()
        );
        self.shown_crcs.truncate(agree as usize);
        (self.pos, self.next_index, self.last) = (agree_end, from, agree_last);
        self.after_damage = false;
        self.suspicion.clear();
        Ok(())
    }

    /// Whether the segment's bytes are final. One file is never sealed.
    fn is_sealed(&self) -> bool {
        let Some(dir) = &self.dir else { return false };
        dir.join(names::index(self.start)).exists()
            || (self.next_index > self.start && dir.join(names::segment(self.next_index)).exists())
            || self.file.metadata().is_ok_and(|m| m.nlink() == 0)
    }

    /// Once the segment is shown to its end, moves to the next one: the one
    /// starting where its frames end, or (when compaction removed segments
    /// meanwhile, or damage makes offsets guesses) the first listed after
    /// it. Returns whether it moved.
    pub fn move_on(&mut self, rows: &mut Rows) -> Result<bool> {
        let Some(dir) = self.dir.clone() else {
            return Ok(false);
        };
        let listing = LogDir::read(&dir)?;
        self.first_offset = first_offset(&listing.meta);
        rows.compacted_below = self.first_offset;
        let Some(next) = listing.segments.iter().find(|s| s.start > self.start) else {
            return Ok(false);
        };
        let file = match open_file(&next.path, false, self.max_entry_bytes) {
            Ok(log) => log.file,
            // Compacted away since the listing: the next round lists again.
            Err(_) if !next.path.exists() => return Ok(false),
            Err(e) => return Err(e),
        };
        if next.start > self.next_index && !self.after_damage {
            crate::tool_stderr!(
                "inspect",
                "offsets {} to {} are in no segment any more (compacted while this follower \
                 was behind); going on at {}",
                self.next_index,
                next.start - 1,
                next.start
            );
        }
        let (start, path) = (next.start, next.path.clone());
        self.begin(path, file, start);
        self.enter(rows)?;
        Ok(true)
    }

    fn file_len(&self) -> Result<u64> {
        let meta = self
            .file
            .metadata()
            .with_context(|| format!("reading {}", self.path.display()))?;
        Ok(meta.len())
    }
}

/// A frame read for showing, kept until the whole read has succeeded.
struct OwnedFrame {
    index: u64,
    pos: u64,
    header: Header,
    crc_computed: u32,
    payload: Vec<u8>,
}

/// Whether `e` is a read that ran past the end of a file cut shorter since
/// its length was taken.
fn cut_under_read(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::UnexpectedEof)
    })
}

fn sighting(frame: &FrameView) -> Sighting {
    Sighting {
        pos: frame.pos,
        header: frame.header,
        crc_computed: frame.crc_computed,
    }
}

fn first_offset(meta: &MetaState) -> u64 {
    match meta {
        MetaState::Ok(meta) => meta.first_offset,
        _ => 0,
    }
}

/// Whether `path` is a directory a node is still creating its log in:
/// nothing yet but, perhaps, the metadata's temp file. (Anything else is
/// for `LogDir::read` to judge.)
fn holds_no_log_yet(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            matches!(
                names::classify(&e.file_name().to_string_lossy()),
                names::Kind::Temp
            )
        })
    })
}

/// The line announcing a segment, keys in the order of every other line.
#[derive(Serialize)]
struct JsonSegment {
    #[serde(rename = "type")]
    kind: &'static str,
    file: String,
    start_offset: u64,
}
