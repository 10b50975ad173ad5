//! `wal-node inspect --follow`: print a log's entries as a running node
//! appends them, across segment rolls, until interrupted.
//!
//! Only synced entries are shown: each round reads what is new, then
//! `fdatasync`s the segment through its own read-only descriptor, and only
//! then prints what it read, so a shown entry survives a power cut. It never
//! takes the node's lock and never writes a file.
//!
//! The node may be mid-`write` while a round reads, so in the active
//! segment a frame whose checksum fails, or a header that cannot be right,
//! is shown (as `corrupt`, or a damaged range) only when a round after a
//! pause finds the same bytes still bad; a torn tail is never shown, as
//! replay never keeps it. A sealed segment's bytes are final and shown as found.
//!
//! A segment is sealed once its index file exists or the next segment
//! does (doc/format.md "Rolling": both come after the segment's last sync).

use super::inspect::{Args, Rows};
use super::interrupt;
use super::log_dir::{LogDir, MetaState};
use super::walk::Row;
use crate::frame::{HEADER_LEN, Header};
use crate::log::names;
use crate::recovery::{self, FrameStatus, Tail};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bytes of the active segment read per round beyond the largest frame:
/// the preallocated zeros after the data are not read again and again.
const WINDOW: u64 = 4 << 20;

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    interrupt::catch_stop_signals();
    let interval = Duration::from_millis(args.interval_ms);
    let mut held = HeldUntilSynced {
        buf: Vec::new(),
        sink: out,
    };
    let mut rows = Rows::new(args, &mut held);
    rows.header()?;
    let Some(mut follower) = Follower::start(args, interval)? else {
        return Ok(0);
    };
    rows.compacted_below = follower.first_offset;
    follower.enter(&mut rows)?;
    rows.out.flush()?;
    while !stopping(&rows) {
        let shown = follower.round(&mut rows)?;
        rows.out.flush()?;
        // A suspect is judged again only after a pause: bytes a write is
        // still copying in must have had time to land.
        if follower.suspect.is_some() || (!shown && !follower.move_on(&mut rows)?) {
            std::thread::sleep(interval);
        }
    }
    rows.out.flush()?;
    Ok(0)
}

fn stopping(rows: &Rows) -> bool {
    rows.full() || interrupt::stop_requested() || interrupt::reader_gone()
}

/// Output kept back until the bytes it shows are synced: `flush` releases
/// it. (`Rows` never flushes on its own.)
struct HeldUntilSynced<'a> {
    buf: Vec<u8>,
    sink: &'a mut dyn Write,
}

impl Write for HeldUntilSynced<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.write_all(&self.buf)?;
        self.buf.clear();
        self.sink.flush()
    }
}

/// The segment being followed and where in it the next frame starts.
struct Follower {
    /// The log directory; `None` when following one file.
    dir: Option<PathBuf>,
    path: PathBuf,
    file: File,
    start: u64,
    /// Byte position and offset of the next frame to show.
    pos: u64,
    next_index: u64,
    after_damage: bool,
    /// The last frame shown: its position and header, to notice the node
    /// rolling it back (a failed write) before it could acknowledge it.
    last: Option<(u64, Header)>,
    /// A bad frame or header seen at this position last round: shown if it
    /// is still there.
    suspect: Option<u64>,
    /// The checksum of each frame shown from this segment, in order: after
    /// a rollback, where the segment stops agreeing with what was shown.
    shown_crcs: Vec<u32>,
    max_entry_bytes: u32,
    json: bool,
    /// The directory's first offset when following began: frames below it
    /// are marked compacted.
    first_offset: u64,
}

impl Follower {
    /// Opens the segment holding `--from` (or the file given); waits for a
    /// log directory that does not exist yet. `None`: stopped while waiting.
    fn start(args: &Args, interval: Duration) -> Result<Option<Follower>> {
        let path = &args.log.path;
        let mut said_waiting = false;
        loop {
            if !path.exists() || holds_no_log_yet(path) {
                if !said_waiting {
                    crate::tool_stderr!("inspect", "waiting for a log at {}", path.display());
                    said_waiting = true;
                }
                if interrupt::stop_requested() || interrupt::reader_gone() {
                    return Ok(None);
                }
                std::thread::sleep(interval);
                continue;
            }
            let (dir, start, seg_path, first_offset) = if path.is_dir() {
                let log = LogDir::read(path)?;
                let Some(seg) = log
                    .segments
                    .iter()
                    .rev()
                    .find(|s| s.start <= args.from)
                    .or(log.segments.first())
                else {
                    // A new log's directory holds its metadata a moment
                    // before its first segment.
                    std::thread::sleep(interval);
                    continue;
                };
                let first_offset = match log.meta {
                    MetaState::Ok(meta) => meta.first_offset,
                    _ => 0,
                };
                (
                    Some(path.clone()),
                    seg.start,
                    seg.path.clone(),
                    first_offset,
                )
            } else {
                let log = args.log.open(false)?;
                (None, log.first_index, path.clone(), 0)
            };
            let file = open(&seg_path)?;
            return Ok(Some(Follower {
                dir,
                path: seg_path,
                file,
                start,
                pos: 0,
                next_index: start,
                after_damage: false,
                last: None,
                suspect: None,
                shown_crcs: Vec::new(),
                max_entry_bytes: args.log.max_entry_bytes,
                json: args.json,
                first_offset,
            }));
        }
    }

    /// Announces the segment now followed.
    fn enter(&self, rows: &mut Rows) -> io::Result<()> {
        let name = names::segment(self.start);
        if self.dir.is_none() {
            return Ok(());
        }
        if self.json {
            let line =
                serde_json::json!({"type": "segment", "file": name, "start_offset": self.start});
            writeln!(rows.out, "{line}")
        } else {
            writeln!(rows.out, "segment {name}")
        }
    }

    /// Shows what the segment holds past the last round, once synced.
    /// Returns whether it showed anything.
    fn round(&mut self, rows: &mut Rows) -> Result<bool> {
        self.check_not_rolled_back()?;
        let sealed = self.is_sealed();
        let len = self.file_len()?;
        let window = WINDOW.max(u64::from(self.max_entry_bytes) + HEADER_LEN as u64);
        let end = if sealed {
            len
        } else {
            len.min(self.pos.saturating_add(window))
        };
        if end <= self.pos {
            return Ok(false);
        }
        // The first bad frame not already suspected last round (that one is
        // confirmed by being bad still).
        let mut first_bad = None;
        let suspect = self.suspect;
        let report = recovery::scan(
            &self.file,
            end,
            self.pos,
            self.next_index,
            self.max_entry_bytes,
            |frame| {
                if !frame.crc_ok() && first_bad.is_none() && Some(frame.pos) != suspect {
                    first_bad = Some(frame.pos);
                }
            },
        )
        .with_context(|| format!("reading {}", self.path.display()))?;
        // Where this round's shown frames end, and a damaged range after
        // them, if it is there to stay.
        let confirmed = |at: u64| sealed || self.suspect == Some(at);
        let (mut show_to, mut damage, mut suspect) = (report.data_end, None, None);
        if let Some(bad) = first_bad.filter(|&b| b < report.data_end && !sealed) {
            show_to = bad;
            suspect = Some(bad);
        } else if let Tail::BrokenFraming {
            pos,
            defect,
            resync_at,
        } = report.tail
        {
            if confirmed(pos) {
                damage = Some(Row::Damage {
                    pos,
                    end: resync_at.unwrap_or(report.damaged_end),
                    resumed: resync_at.is_some(),
                    defect,
                });
            } else {
                suspect = Some(pos);
            }
        }
        self.suspect = suspect;
        if show_to <= self.pos && damage.is_none() {
            return Ok(false);
        }
        self.show(rows, show_to)?;
        if let Some(row @ Row::Damage { end, .. }) = &damage {
            rows.show(row)?;
            self.pos = *end;
            self.after_damage = true;
        }
        if !sealed {
            // What was read is now on disk; only then is it shown.
            self.file
                .sync_data()
                .with_context(|| format!("syncing {}", self.path.display()))?;
        }
        Ok(true)
    }

    /// Shows the frames from `pos` to `to`, as this round read them.
    fn show(&mut self, rows: &mut Rows, to: u64) -> Result<()> {
        let mut failed = None;
        let (mut last, mut next_index) = (self.last, self.next_index);
        let after_damage = self.after_damage;
        let shown_crcs = &mut self.shown_crcs;
        recovery::scan(
            &self.file,
            to,
            self.pos,
            self.next_index,
            self.max_entry_bytes,
            |frame| {
                last = Some((frame.pos, frame.header));
                next_index = frame.index + 1;
                shown_crcs.push(frame.header.crc);
                if failed.is_some() {
                    return;
                }
                let status = if frame.crc_ok() {
                    FrameStatus::Ok
                } else {
                    FrameStatus::Corrupt
                };
                let row = Row::Frame {
                    frame,
                    status,
                    after_damage,
                };
                failed = rows.show(&row).err();
            },
        )
        .with_context(|| format!("reading {}", self.path.display()))?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        (self.pos, self.last, self.next_index) = (to, last, next_index);
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
        recovery::scan(
            &self.file,
            len,
            0,
            self.start,
            self.max_entry_bytes,
            |frame| {
                if agree == frame.index - self.start
                    && shown.get(agree as usize) == Some(&frame.header.crc)
                {
                    agree += 1;
                    agree_end = frame.pos + frame.header.frame_len();
                    agree_last = Some((frame.pos, frame.header));
                }
            },
        )
        .with_context(|| format!("reading {}", self.path.display()))?;
        let from = self.start + agree;
        crate::tool_stderr!(
            "inspect",
            "{}: entries from offset {from} on, already shown, were rolled back by the node \
             (a write it never acknowledged); showing what the log holds from {from} on",
            self.path.display()
        );
        self.shown_crcs.truncate(agree as usize);
        (self.pos, self.next_index, self.last) = (agree_end, from, agree_last);
        (self.suspect, self.after_damage) = (None, false);
        Ok(())
    }

    /// Whether the segment's bytes are final: its index file exists, or the
    /// segment after it does, or compaction removed it (only sealed
    /// segments are). One file is never sealed.
    fn is_sealed(&self) -> bool {
        let Some(dir) = &self.dir else { return false };
        dir.join(names::index(self.start)).exists()
            || (self.next_index > self.start && dir.join(names::segment(self.next_index)).exists())
            || self.file.metadata().is_ok_and(|m| m.nlink() == 0)
    }

    /// The segment after this one: the one starting where its frames end, or
    /// (when compaction removed segments, or damage makes offsets guesses)
    /// the first in the listing after it.
    fn next_segment(&self) -> Option<(u64, PathBuf)> {
        let dir = self.dir.as_ref()?;
        let expected = dir.join(names::segment(self.next_index));
        if self.next_index > self.start && expected.exists() {
            return Some((self.next_index, expected));
        }
        let listing = LogDir::read(dir).ok()?;
        listing
            .segments
            .into_iter()
            .find(|s| s.start > self.start)
            .map(|s| (s.start, s.path))
    }

    /// Once a sealed segment is shown to its end, moves to the next one.
    /// Returns whether it moved.
    fn move_on(&mut self, rows: &mut Rows) -> Result<bool> {
        if !self.is_sealed() {
            return Ok(false);
        }
        let Some((start, path)) = self.next_segment() else {
            return Ok(false);
        };
        if start > self.next_index && !self.after_damage {
            crate::tool_stderr!(
                "inspect",
                "offsets {} to {} are no longer in the log (compacted or removed); going on at {}",
                self.next_index,
                start - 1,
                start
            );
        }
        self.file = open(&path)?;
        (self.path, self.start, self.pos, self.next_index) = (path, start, 0, start);
        (self.last, self.suspect, self.after_damage) = (None, None, false);
        self.shown_crcs.clear();
        self.enter(rows)?;
        rows.out.flush()?;
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

fn open(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
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
