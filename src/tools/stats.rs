//! `wal-node inspect --stats`: what a log holds, summed up instead of
//! listed. The frames counted are those `--from`, `--to`, `--status` and
//! `--prefix` select; the summary after the statistics covers every frame
//! read, as `inspect`'s does.
//!
//! Entries below the metadata's `first_offset` (a compaction removes whole
//! segments only, so the segment holding `first_offset` keeps the entries
//! before it) are counted apart as compacted, and nowhere else but in their
//! segment's row: a node no longer serves them.

use super::inspect::{Args, Rows, write_summary};
use super::inspect_dir::{JsonIndex, JsonMeta, describe_meta};
use super::log_dir::{LogDir, MetaState};
use super::payload_sizes::{Distribution, PayloadSizes};
use super::stats_text;
use super::summary::Summary;
use super::survey::{SnapshotCheck, Survey};
use super::{Row, walk};
use crate::recovery::FrameStatus as Status;
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::{self, Write};

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    if args.log.is_dir() {
        return run_dir(args, out);
    }
    let log = args.log.open(false)?;
    let mut summary = Summary::new(&log);
    let mut sink = io::sink();
    let mut rows = Rows::new(args, &mut sink);
    rows.next_index = log.first_index;
    let name = args.log.path.file_name().map_or_else(
        || args.log.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    // A file alone: whether it is sealed, its index, the metadata and the
    // snapshots belong to its directory, which `inspect PATH` does not read.
    let mut stats = Stats::new(None);
    stats.begin_segment(SegmentStats::new(name, None, log.len, None));
    let reports = walk(&log, |row| {
        summary.count(&row);
        if rows.admits(&row) {
            stats.count(&row);
        }
        Ok(())
    })
    .with_context(|| format!("reading {}", args.log.path.display()))?;
    summary.finish(&reports);
    stats.finish();
    report(args.json, None, &stats, &summary, out)?;
    Ok(0)
}

/// A log directory: the segments `--from` and `--to` can select, each
/// surveyed as `inspect` does; then the snapshots.
fn run_dir(args: &Args, out: &mut dyn Write) -> Result<u8> {
    let dir = LogDir::read(&args.log.path)?;
    let mut survey = Survey::begin(dir, args.log.max_entry_bytes);
    let mut sink = io::sink();
    let mut rows = Rows::new(args, &mut sink);
    let first_offset = match &survey.dir.meta {
        MetaState::Ok(meta) => Some(meta.first_offset),
        _ => None,
    };
    let mut stats = Stats::new(first_offset);
    for k in 0..survey.dir.segments.len() {
        let next = survey.dir.segments.get(k + 1).map(|s| s.start);
        if !rows.wants_segment(survey.dir.segments[k].start, next) {
            continue;
        }
        let (log, index) = survey.open(k)?;
        let seg = &survey.dir.segments[k];
        let describe = (index.describe(), JsonIndex::new(seg, &index));
        stats.begin_segment(SegmentStats::new(
            seg.name(),
            Some(next.is_some()),
            log.len,
            Some(describe),
        ));
        rows.next_index = log.first_index;
        survey.walk_segment(k, &log, index, |row| {
            if rows.admits(row) {
                stats.count(row);
            }
            Ok(())
        })?;
    }
    survey.finish();
    stats.finish();
    stats.snapshots = Some(survey.snapshots.iter().map(SnapshotStats::from).collect());
    report(
        args.json,
        Some(&survey.dir.meta),
        &stats,
        &survey.summary,
        out,
    )?;
    Ok(0)
}

/// Writes the metadata line (a directory), the statistics, the summary.
fn report(
    json: bool,
    meta: Option<&MetaState>,
    stats: &Stats,
    summary: &Summary,
    out: &mut dyn Write,
) -> io::Result<()> {
    if json {
        if let Some(meta) = meta {
            serde_json::to_writer(&mut *out, &JsonMeta::from(meta))?;
            writeln!(out)?;
        }
        serde_json::to_writer(&mut *out, stats)?;
        writeln!(out)?;
        serde_json::to_writer(&mut *out, summary)?;
        writeln!(out)
    } else {
        if let Some(meta) = meta {
            writeln!(out, "meta:        {}", describe_meta(meta))?;
            writeln!(out)?;
        }
        stats_text::write(stats, out)?;
        write_summary(summary, out)
    }
}

/// Entries (frames, ranges) and the bytes they take, headers included.
#[derive(Serialize, Default, Clone, Copy)]
pub struct Tally {
    #[serde(rename = "entries")]
    pub count: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// The first and last offsets counted. Past broken framing an offset is a
/// guess (the damaged bytes may have held any number of frames).
#[derive(Serialize, Default, Clone, Copy)]
pub struct Span {
    pub first_offset: Option<u64>,
    pub last_offset: Option<u64>,
    /// Whether `first_offset` and `last_offset` were counted after broken
    /// framing (guesses).
    pub first_after_damage: bool,
    pub last_after_damage: bool,
}

impl Span {
    fn add(&mut self, index: u64, after_damage: bool) {
        if self.first_offset.is_none() {
            self.first_offset = Some(index);
            self.first_after_damage = after_damage;
        }
        self.last_offset = Some(index);
        self.last_after_damage = after_damage;
    }
}

/// Frames by the status `--status` names them with.
#[derive(Serialize, Default)]
pub struct ByStatus {
    pub ok: Tally,
    pub corrupt: Tally,
    /// Frames of a torn tail: never acknowledged, so not entries.
    #[serde(serialize_with = "as_frames")]
    pub torn: Tally,
    /// Ranges of broken framing.
    #[serde(serialize_with = "as_ranges")]
    pub damaged: Tally,
}

fn as_frames<S: serde::Serializer>(tally: &Tally, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Frames {
        frames: u64,
        bytes: u64,
    }
    Frames {
        frames: tally.count,
        bytes: tally.bytes,
    }
    .serialize(s)
}

fn as_ranges<S: serde::Serializer>(tally: &Tally, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Ranges {
        ranges: u64,
        bytes: u64,
    }
    Ranges {
        ranges: tally.count,
        bytes: tally.bytes,
    }
    .serialize(s)
}

/// The entries below `first_offset`: compacted away, still on disk.
#[derive(Serialize)]
pub struct Compacted {
    /// The metadata's `first_offset`.
    pub below: u64,
    #[serde(flatten)]
    pub entries: Tally,
    #[serde(flatten)]
    pub span: Span,
    /// Those failing their checksum.
    pub corrupt: u64,
    /// The segment files holding them.
    pub segments: Vec<String>,
}

/// One segment's row: what the selected frames in it add up to.
#[derive(Serialize)]
pub struct SegmentStats {
    pub file: String,
    /// `None` for a file inspected alone.
    pub sealed: Option<bool>,
    /// Entries (ok and corrupt, compacted ones too).
    #[serde(flatten)]
    pub entries: Tally,
    #[serde(flatten)]
    pub span: Span,
    pub file_bytes: u64,
    pub index: Option<JsonIndex>,
    /// The index's state in `inspect`'s words.
    #[serde(skip)]
    pub index_text: Option<String>,
}

impl SegmentStats {
    fn new(
        file: String,
        sealed: Option<bool>,
        file_bytes: u64,
        index: Option<(String, JsonIndex)>,
    ) -> SegmentStats {
        let (index_text, index) = index.unzip();
        SegmentStats {
            file,
            sealed,
            entries: Tally::default(),
            span: Span::default(),
            file_bytes,
            index,
            index_text,
        }
    }
}

/// A snapshot's row.
#[derive(Serialize)]
pub struct SnapshotStats {
    pub file: String,
    pub offset: u64,
    pub bytes: u64,
    pub valid: bool,
    pub defect: Option<String>,
}

impl From<&SnapshotCheck> for SnapshotStats {
    fn from(snap: &SnapshotCheck) -> SnapshotStats {
        SnapshotStats {
            file: snap.name.clone(),
            offset: snap.offset,
            bytes: snap.bytes,
            valid: snap.defect.is_none(),
            defect: snap.defect.clone(),
        }
    }
}

/// Everything `--stats` reports but the summary: the `"stats"` JSON line.
#[derive(Serialize)]
pub struct Stats {
    #[serde(rename = "type")]
    kind: &'static str,
    /// Entries (ok and corrupt frames) from `first_offset` on.
    #[serde(flatten)]
    pub entries: Tally,
    #[serde(flatten)]
    pub span: Span,
    /// Their payloads' sizes.
    pub payload_sizes: Distribution,
    pub by_status: ByStatus,
    /// `None` without sound metadata (or for a file alone).
    pub compacted: Option<Compacted>,
    /// The segments read, in order.
    pub segments: Vec<SegmentStats>,
    /// `None` for a file alone.
    pub snapshots: Option<Vec<SnapshotStats>>,
    #[serde(skip)]
    sizes: PayloadSizes,
}

impl Stats {
    fn new(first_offset: Option<u64>) -> Stats {
        Stats {
            kind: "stats",
            entries: Tally::default(),
            span: Span::default(),
            payload_sizes: PayloadSizes::default().distribution(),
            by_status: ByStatus::default(),
            compacted: first_offset.map(|below| Compacted {
                below,
                entries: Tally::default(),
                span: Span::default(),
                corrupt: 0,
                segments: Vec::new(),
            }),
            segments: Vec::new(),
            snapshots: None,
            sizes: PayloadSizes::default(),
        }
    }

    /// Works out the payload sizes' distribution; call after the last row.
    fn finish(&mut self) {
        self.payload_sizes = self.sizes.distribution();
    }

    /// Starts the row of the segment whose frames come next.
    fn begin_segment(&mut self, seg: SegmentStats) {
        self.segments.push(seg);
    }

    /// Counts one selected row of the current segment.
    fn count(&mut self, row: &Row) {
        let seg = self.segments.last_mut().expect("a segment begun");
        let (frame, status, after_damage) = match *row {
            Row::Frame {
                frame,
                status,
                after_damage,
            } => (frame, status, after_damage),
            Row::Damage { pos, end, .. } => return self.by_status.damaged.add(end - pos),
        };
        let bytes = frame.header.frame_len();
        if status == Status::Torn {
            return self.by_status.torn.add(bytes);
        }
        seg.entries.add(bytes);
        seg.span.add(frame.index, after_damage);
        if let Some(compacted) = &mut self.compacted
            && frame.index < compacted.below
        {
            compacted.entries.add(bytes);
            compacted.span.add(frame.index, after_damage);
            compacted.corrupt += u64::from(status == Status::Corrupt);
            if compacted.segments.last() != Some(&seg.file) {
                compacted.segments.push(seg.file.clone());
            }
            return;
        }
        self.entries.add(bytes);
        self.span.add(frame.index, after_damage);
        self.sizes.add(frame.header.length);
        match status {
            Status::Corrupt => self.by_status.corrupt.add(bytes),
            _ => self.by_status.ok.add(bytes),
        }
    }
}
