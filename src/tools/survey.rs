//! A whole log directory, checked as `verify` checks it: every segment
//! walked in full and summed up, every index file checked against its
//! segment, the offsets checked for gaps and overlaps between segments, the
//! metadata and the other files named. Sealed segments are checked here,
//! not when a node opens the log.
//!
//! `inspect` drives it segment by segment (`open`, then `walk_segment` with
//! a row printer) so that it can skip segments; `verify` and `repair` take
//! it whole (`of`).

use super::index_check::{self, IndexState};
use super::log_dir::{LogDir, MetaState};
use super::summary::Summary;
use super::{Log, Row, count, open_file, walk};
use crate::log::names;
use crate::log::snapshot::Snapshot;
use crate::recovery::ScanReport;
use anyhow::{Context, Result};
use std::io;

/// One segment as the survey found it.
pub struct SegmentSurvey {
    /// Its place in `LogDir::segments`.
    pub k: usize,
    /// The walk's stretches: the first is what replay sees.
    pub reports: Vec<ScanReport>,
    pub index: IndexState,
    /// Frames met before any broken framing (torn ones too): how many
    /// offsets it holds, when its framing is whole; `None` past damage.
    pub frames: Option<u64>,
}

/// A snapshot file as `finish` checked it.
pub struct SnapshotCheck {
    pub name: String,
    /// The first entry it does not cover.
    pub offset: u64,
    pub bytes: u64,
    /// `None` if intact, else what is wrong (`damaged (why)`, `unreadable
    /// (error)`).
    pub defect: Option<String>,
}

pub struct Survey {
    pub dir: LogDir,
    /// The whole directory's summary.
    pub summary: Summary,
    /// The segments read, in order.
    pub segments: Vec<SegmentSurvey>,
    /// Every snapshot, oldest first, once `finish` has checked them.
    pub snapshots: Vec<SnapshotCheck>,
    max_entry_bytes: u32,
}

impl Survey {
    /// Starts a survey with what the directory's listing and metadata say.
    pub fn begin(dir: LogDir, max_entry_bytes: u32) -> Survey {
        let mut summary = Summary::for_dir(dir.segments.len() as u64);
        match &dir.meta {
            MetaState::Ok(meta) => {
                if let Some(first) = dir.segments.first()
                    && first.start > meta.first_offset
                {
                    summary.add_finding(
                        format!(
                            "offsets {} to {} missing: the log starts at {} but its first \
                             segment is {}",
                            meta.first_offset,
                            first.start - 1,
                            meta.first_offset,
                            first.name()
                        ),
                        true,
                    );
                }
            }
            MetaState::Missing => summary.add_finding(
                format!("no {} (a node refuses to open the directory)", names::META),
                true,
            ),
            MetaState::Damaged(why) => {
                summary.add_finding(format!("{} damaged ({why})", names::META), true)
            }
        }
        if dir.segments.is_empty() {
            summary.add_finding(
                "no segment yet (a node creates the first one at open)".into(),
                false,
            );
        }
        Survey {
            dir,
            summary,
            segments: Vec::new(),
            snapshots: Vec::new(),
            max_entry_bytes,
        }
    }

    /// Surveys every segment of `dir`.
    pub fn of(dir: LogDir, max_entry_bytes: u32) -> Result<Survey> {
        let mut survey = Survey::begin(dir, max_entry_bytes);
        for k in 0..survey.dir.segments.len() {
            let (log, index) = survey.open(k)?;
            survey.walk_segment(k, &log, index, |_| Ok(()))?;
        }
        survey.finish();
        Ok(survey)
    }

    /// Opens segment `k` read-only and checks its index file.
    pub fn open(&self, k: usize) -> Result<(Log, IndexState)> {
        let seg = &self.dir.segments[k];
        let log = open_file(&seg.path, false, self.max_entry_bytes)?;
        let next = self.dir.segments.get(k + 1).map(|s| s.start);
        let index = index_check::check(&log, seg.index.as_deref(), next)
            .with_context(|| format!("cannot check {}", seg.index_name()))?;
        Ok((log, index))
    }

    /// Walks segment `k` (opened by `open`), handing each row to `on`, and
    /// adds what it holds to the summary.
    pub fn walk_segment(
        &mut self,
        k: usize,
        log: &Log,
        index: IndexState,
        mut on: impl FnMut(&Row) -> io::Result<()>,
    ) -> Result<()> {
        let (name, index_name) = (
            self.dir.segments[k].name(),
            self.dir.segments[k].index_name(),
        );
        let mut summary = Summary::new(log);
        let mut frames = 0;
        let reports = walk(log, |row| {
            summary.count(&row);
            if let Row::Frame {
                after_damage: false,
                ..
            } = row
            {
                frames += 1;
            }
            on(&row)
        })
        .with_context(|| format!("cannot read {}", self.dir.segments[k].path.display()))?;
        summary.finish(&reports);
        let frames = (reports.len() == 1).then_some(frames);
        self.check_sequence(k);
        self.summary.add_segment(&name, &summary);
        self.note_compacted(k, &reports);
        if let Some(finding) = index.finding(&index_name) {
            self.summary.add_finding(finding, index.is_damage());
        }
        self.segments.push(SegmentSurvey {
            k,
            reports,
            index,
            frames,
        });
        Ok(())
    }

    /// Names the entries of segment `k` below the metadata's first offset:
    /// compaction freed them, but they stay in the file until a later one
    /// passes the segment's end. Not damage; a node never serves them.
    fn note_compacted(&mut self, k: usize, reports: &[ScanReport]) {
        let MetaState::Ok(meta) = &self.dir.meta else {
            return;
        };
        let start = self.dir.segments[k].start;
        let end = reports.first().map_or(start, |r| r.end_index);
        let last = end.min(meta.first_offset);
        if last > start {
            let which = if last - start == 1 {
                format!("entry {start}")
            } else {
                format!("entries {start} to {}", last - 1)
            };
            self.summary.add_finding(
                format!(
                    "{}: {which} compacted (below first_offset {}; a node never serves \
                     them)",
                    self.dir.segments[k].name(),
                    meta.first_offset
                ),
                false,
            );
        }
    }

    /// Whether the segment read last ends exactly where segment `k` starts.
    fn check_sequence(&mut self, k: usize) {
        let Some(prev) = self.segments.last() else {
            return;
        };
        let (Some(frames), true) = (prev.frames, prev.k + 1 == k) else {
            return;
        };
        let before = &self.dir.segments[prev.k];
        let end = before.start + frames;
        let start = self.dir.segments[k].start;
        if end < start {
            self.summary.add_finding(
                format!(
                    "offsets {end} to {} missing: {} holds {} and no segment holds them \
                     (a segment file removed?)",
                    start - 1,
                    before.name(),
                    count(frames, "entry", "entries")
                ),
                true,
            );
        } else if end > start {
            self.summary.add_finding(
                format!(
                    "offsets {start} to {} held twice: {} holds {}, past the start of {}",
                    end - 1,
                    before.name(),
                    count(frames, "entry", "entries"),
                    self.dir.segments[k].name()
                ),
                true,
            );
        }
    }

    /// Adds what else the directory holds; call after the last segment.
    pub fn finish(&mut self) {
        self.check_snapshots();
        for name in &self.dir.temps {
            self.summary.add_finding(
                format!("{name} left by a crash (a node removes it at open)"),
                false,
            );
        }
        for name in &self.dir.stray_indexes {
            self.summary
                .add_finding(format!("{name} has no segment (left alone)"), false);
        }
        for name in &self.dir.unknown {
            self.summary.add_finding(
                format!("unknown file {name} (not the log's; left alone)"),
                false,
            );
        }
    }

    /// Lists every snapshot, checked in full; a damaged one is damage, and
    /// so is a compacted log that no intact snapshot covers (a node refuses
    /// to open it).
    fn check_snapshots(&mut self) {
        let first_offset = match &self.dir.meta {
            MetaState::Ok(meta) => meta.first_offset,
            _ => 0,
        };
        let mut covered = first_offset == 0;
        for &offset in &self.dir.snapshots {
            let path = self.dir.path.join(names::snapshot(offset));
            let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            let snap = Snapshot {
                offset,
                bytes,
                path: Some(path),
                file: None,
            };
            let name = snap.name();
            let defect = match snap.verify() {
                Ok(Ok(())) => {
                    covered |= offset >= first_offset;
                    self.summary.add_finding(
                        format!("snapshot {name}: the state as of offset {offset}, {bytes} bytes, intact"),
                        false,
                    );
                    None
                }
                Ok(Err(why)) => Some(format!("damaged ({why})")),
                Err(e) => Some(format!("unreadable ({e})")),
            };
            if let Some(defect) = &defect {
                self.summary
                    .add_finding(format!("snapshot {name} {defect}"), true);
            }
            self.snapshots.push(SnapshotCheck {
                name,
                offset,
                bytes,
                defect,
            });
        }
        if !covered {
            self.summary.add_finding(
                format!(
                    "no intact snapshot covers the {first_offset} entries compacted away (a node \
                     refuses to open the log)"
                ),
                true,
            );
        }
    }
}
