//! What a walk of a whole log file found, in the one vocabulary all three
//! tools use: `clean` or `damaged`, then the findings in file order, each
//! `<kind> at ...`: `bit rot at entries ...`, `broken framing at byte offset
//! ...`, `torn tail at byte offset ...`, and `zero tail at byte offset ...`
//! (free space, never damage).
//!
//! `inspect` prints it as its summary, `verify` as its one line, `repair`
//! before saying what it does, so the three never word a file differently.
//!
//! For a log directory one summary adds up its segments' (each finding
//! prefixed by its segment's file name) and what `survey` finds about the
//! directory itself: metadata, index files, the offset sequence, other files.

use super::{Log, Row, count, walk};
use crate::recovery::{self, FrameStatus as Status, ScanReport, Tail};
use serde::Serialize;
use std::io;

/// Entries or ranges named one by one in a finding; the rest are counted.
const LISTED: usize = 10;

/// Totals over the whole file, and what was found where.
#[derive(Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    kind: &'static str,
    /// No bit rot, no torn tail, no broken framing (a zero tail is clean).
    pub clean: bool,
    /// Frames that are not torn (`ok` and `corrupt`), past damage too.
    pub entries: u64,
    /// Bytes those frames take, headers included.
    pub total_bytes: u64,
    pub corrupt_entries: u64,
    /// Non-zero bytes after the last kept frame: a write never acknowledged.
    pub torn_bytes: u64,
    /// Byte position of the torn tail (the JSON key says `offset`, as
    /// every byte position the tools print does).
    #[serde(rename = "torn_offset")]
    pub torn_pos: Option<u64>,
    pub torn_reason: Option<String>,
    /// Bytes in ranges of broken framing, and how many ranges.
    pub damaged_bytes: u64,
    pub damaged_ranges: u64,
    /// Zero bytes ending the file, after the data and after any torn tail:
    /// preallocated space, not damage.
    pub free_bytes: u64,
    pub file_bytes: u64,
    /// The findings in words, in file order: what `verify` prints.
    pub findings: Vec<String>,
    /// For a directory: how many segment files it holds, and how many of
    /// them were read (fewer when `inspect --from`/`--limit` skipped some).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments_read: Option<u64>,
    /// For a directory: the segment file `torn_offset` is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torn_segment: Option<String>,
    /// Indexes of the first corrupt entries (`?`: a guess after damage).
    #[serde(skip)]
    corrupt_at: Vec<String>,
    /// The first ranges of broken framing, described.
    #[serde(skip)]
    broken: Vec<String>,
}

impl Summary {
    /// Walks all of `log` and sums it up; also returns the walk's reports
    /// (the first is what replay sees).
    pub fn of(log: &Log) -> io::Result<(Summary, Vec<ScanReport>)> {
        let mut summary = Summary::new(log);
        let reports = walk(log, |row| {
            summary.count(&row);
            Ok(())
        })?;
        summary.finish(&reports);
        Ok((summary, reports))
    }

    /// An empty summary of `log`, to `count` rows into and then `finish`.
    pub fn new(log: &Log) -> Summary {
        Summary {
            file_bytes: log.len,
            ..Summary::empty()
        }
    }

    /// An empty summary of a directory of `segments` segment files, to add
    /// segments and findings to.
    pub fn for_dir(segments: u64) -> Summary {
        Summary {
            segments: Some(segments),
            segments_read: Some(0),
            ..Summary::empty()
        }
    }

    fn empty() -> Summary {
        Summary {
            kind: "summary",
            clean: true,
            entries: 0,
            total_bytes: 0,
            corrupt_entries: 0,
            torn_bytes: 0,
            torn_pos: None,
            torn_reason: None,
            damaged_bytes: 0,
            damaged_ranges: 0,
            free_bytes: 0,
            file_bytes: 0,
            findings: Vec::new(),
            segments: None,
            segments_read: None,
            torn_segment: None,
            corrupt_at: Vec::new(),
            broken: Vec::new(),
        }
    }

    /// Adds a finished summary of the segment file `name` to a directory's.
    pub fn add_segment(&mut self, name: &str, seg: &Summary) {
        self.entries += seg.entries;
        self.total_bytes += seg.total_bytes;
        self.corrupt_entries += seg.corrupt_entries;
        self.torn_bytes += seg.torn_bytes;
        if self.torn_pos.is_none() && seg.torn_pos.is_some() {
            self.torn_pos = seg.torn_pos;
            self.torn_reason = seg.torn_reason.clone();
            self.torn_segment = Some(name.to_owned());
        }
        self.damaged_bytes += seg.damaged_bytes;
        self.damaged_ranges += seg.damaged_ranges;
        self.free_bytes += seg.free_bytes;
        self.file_bytes += seg.file_bytes;
        self.segments_read = Some(self.segments_read.unwrap_or(0) + 1);
        self.findings
            .extend(seg.findings.iter().map(|f| format!("{name}: {f}")));
        self.clean &= seg.clean;
    }

    /// Adds what was found about a directory beyond its segments' frames;
    /// `damage` makes the directory not clean.
    pub fn add_finding(&mut self, finding: String, damage: bool) {
        self.findings.push(finding);
        self.clean &= !damage;
    }

    /// Adds one row of a walk, in file order.
    pub fn count(&mut self, row: &Row) {
        match *row {
            Row::Frame {
                frame,
                status,
                after_damage,
            } => {
                if status == Status::Torn {
                    return;
                }
                self.entries += 1;
                self.total_bytes += frame.header.frame_len();
                if status == Status::Corrupt {
                    self.corrupt_entries += 1;
                    if self.corrupt_at.len() < LISTED {
                        let guess = if after_damage { "?" } else { "" };
                        self.corrupt_at.push(format!("{}{guess}", frame.index));
                    }
                }
            }
            Row::Damage {
                pos,
                end,
                resumed,
                defect,
            } => {
                self.damaged_bytes += end - pos;
                self.damaged_ranges += 1;
                if self.broken.len() < LISTED {
                    self.broken.push(format!(
                        "broken framing at byte offset {pos} ({}: {defect}), {}",
                        count(end - pos, "byte", "bytes"),
                        recovery::resumption(resumed.then_some(end))
                    ));
                }
            }
        }
    }

    /// Takes the file's tail from the walk's last report and words the
    /// findings.
    pub fn finish(&mut self, reports: &[ScanReport]) {
        if let Some(last) = reports.last() {
            match last.tail {
                Tail::Zeros { len } => self.free_bytes = len,
                Tail::Torn { len, reason } => {
                    self.torn_bytes = len;
                    self.torn_pos = Some(last.data_end);
                    self.torn_reason = Some(reason.to_string());
                    self.free_bytes = self.file_bytes - last.damaged_end;
                }
                // The search after damage gave up: the range ends at the
                // last non-zero byte, and the zeros after it are free.
                Tail::BrokenFraming {
                    resync_at: None, ..
                } => self.free_bytes = self.file_bytes - last.damaged_end,
                Tail::Clean | Tail::BrokenFraming { .. } => {}
            }
        }
        self.findings = self.describe();
        self.clean = self.corrupt_entries == 0 && self.torn_bytes == 0 && self.damaged_ranges == 0;
    }

    /// The findings in file order, one phrase each.
    fn describe(&self) -> Vec<String> {
        let mut found = Vec::new();
        if self.corrupt_entries > 0 {
            let word = if self.corrupt_entries == 1 {
                "entry"
            } else {
                "entries"
            };
            found.push(format!(
                "bit rot at {word} {}{}",
                self.corrupt_at.join(", "),
                more(self.corrupt_entries, self.corrupt_at.len())
            ));
        }
        found.extend(self.broken.iter().cloned());
        let unlisted = self.damaged_ranges - self.broken.len() as u64;
        if unlisted > 0 {
            found.push(format!(
                "broken framing in {} more",
                count(unlisted, "range", "ranges")
            ));
        }
        if let (Some(at), Some(reason)) = (self.torn_pos, &self.torn_reason) {
            found.push(format!(
                "torn tail at byte offset {at} ({}: {reason})",
                count(self.torn_bytes, "byte", "bytes")
            ));
        }
        if self.free_bytes > 0 {
            found.push(format!(
                "zero tail at byte offset {} ({} of free space)",
                self.file_bytes - self.free_bytes,
                count(self.free_bytes, "byte", "bytes")
            ));
        }
        found
    }

    /// `clean` or `damaged`.
    pub fn verdict(&self) -> &'static str {
        if self.clean { "clean" } else { "damaged" }
    }

    /// `N entries (B bytes)`, and for a directory ` in K segments` (` in
    /// J of K segments read` when some were skipped).
    pub fn contents(&self) -> String {
        let mut contents = format!(
            "{} ({} bytes)",
            count(self.entries, "entry", "entries"),
            self.total_bytes
        );
        if let (Some(total), Some(read)) = (self.segments, self.segments_read) {
            contents.push_str(&if read == total {
                format!(" in {}", count(total, "segment", "segments"))
            } else {
                format!(" in {read} of {total} segments read")
            });
        }
        contents
    }

    /// The whole summary in one line: verdict, contents, findings.
    pub fn line(&self) -> String {
        let mut line = format!("{}: {}", self.verdict(), self.contents());
        for finding in &self.findings {
            line.push_str("; ");
            line.push_str(finding);
        }
        line
    }
}

/// ` and N more` when only `listed` of `total` were named.
fn more(total: u64, listed: usize) -> String {
    match total - listed as u64 {
        0 => String::new(),
        n => format!(" and {n} more"),
    }
}
