//! An index file checked against its segment, in full: what the node does
//! not do at open (it reads headers only), and what `verify` is for.
//!
//! The header (its checksum, its size), that it names its segment's start
//! and exact length, the positions' checksum and order, that every position
//! is where a scan of the segment finds a frame, and that it lists as many
//! entries as the segment holds.

use super::Log;
use crate::log::index_file::{self, HEADER_LEN, Header};
use crate::recovery::{self, Decision, Recover};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What a segment's index file is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexState {
    /// A sealed segment's index, matching it.
    Ok { entries: u64 },
    /// A sealed segment without an index (the node rebuilds it at open).
    Missing,
    /// An index that does not match its segment, and why.
    Bad(String),
    /// The active segment, without an index as it should be.
    Active,
    /// The last segment with a matching index: a roll that stopped after
    /// sealing it (the node starts the next segment at open).
    RollUnfinished { entries: u64 },
    /// The last segment with an index that does not describe it: the node
    /// removes it at open and keeps the segment active.
    Stale(String),
}

impl IndexState {
    /// Whether it is damage (the node would rebuild the index).
    pub fn is_damage(&self) -> bool {
        matches!(self, IndexState::Missing | IndexState::Bad(_))
    }

    /// The state as one word, for JSON.
    pub fn key(&self) -> &'static str {
        match self {
            IndexState::Ok { .. } => "ok",
            IndexState::Missing => "missing",
            IndexState::Bad(_) => "bad",
            IndexState::Active => "none",
            IndexState::RollUnfinished { .. } => "roll_unfinished",
            IndexState::Stale(_) => "stale",
        }
    }

    /// Entries the index lists, if it is sound.
    pub fn entries(&self) -> Option<u64> {
        match self {
            IndexState::Ok { entries } | IndexState::RollUnfinished { entries } => Some(*entries),
            _ => None,
        }
    }

    /// Why it is bad or stale.
    pub fn defect(&self) -> Option<&str> {
        match self {
            IndexState::Bad(why) | IndexState::Stale(why) => Some(why),
            _ => None,
        }
    }

    /// The state in words, for `inspect`'s segment line.
    pub fn describe(&self) -> String {
        match self {
            IndexState::Ok { entries } => format!("index ok ({})", entries_word(*entries)),
            IndexState::Missing => "index missing".into(),
            IndexState::Bad(why) => format!("index bad: {why}"),
            IndexState::Active => "no index".into(),
            IndexState::RollUnfinished { entries } => format!(
                "index ok ({}): sealed by a roll the node finishes at open",
                entries_word(*entries)
            ),
            IndexState::Stale(why) => format!("stale index ({why}): the node removes it at open"),
        }
    }

    /// The finding for the summary, if there is one to report.
    pub fn finding(&self, index_name: &str) -> Option<String> {
        match self {
            IndexState::Ok { .. } | IndexState::Active => None,
            IndexState::Missing => Some(format!("{index_name} missing")),
            IndexState::Bad(why) => Some(format!("{index_name} bad ({why})")),
            IndexState::RollUnfinished { .. } => Some(format!(
                "{index_name}: the last segment is sealed, its roll unfinished (the node \
                 starts the next segment at open)"
            )),
            IndexState::Stale(why) => Some(format!(
                "{index_name} stale ({why}; the node removes it at open)"
            )),
        }
    }
}

fn entries_word(n: u64) -> String {
    crate::count(n, "entry", "entries")
}

/// Checks the index at `index` (`None`: there is none) of the segment
/// `seg`; `next_start` is where the next segment starts (`None`: `seg` is
/// the last one).
pub fn check(seg: &Log, index: Option<&Path>, next_start: Option<u64>) -> io::Result<IndexState> {
    let last = next_start.is_none();
    let Some(path) = index else {
        return Ok(if last {
            IndexState::Active
        } else {
            IndexState::Missing
        });
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return Ok(IndexState::Bad(format!("cannot be opened: {e}"))),
    };
    // What the node checks at open: a last segment failing these is active.
    let header = match index_file::read_header(&file)? {
        Err(defect) => Err(defect.0),
        Ok(h) if h.start != seg.first_index => Err(format!("it names start offset {}", h.start)),
        Ok(h) if h.segment_bytes != seg.len => Err(format!(
            "it says the segment is {} bytes, the file is {}",
            h.segment_bytes, seg.len
        )),
        Ok(h) => Ok(h),
    };
    let header = match header {
        Ok(h) => h,
        Err(why) if last => return Ok(IndexState::Stale(why)),
        Err(why) => return Ok(IndexState::Bad(why)),
    };
    if let Err(defect) = index_file::verify_positions(&file, &header)? {
        return Ok(IndexState::Bad(defect.0));
    }
    if let Some(why) = against_frames(seg, &file, &header, next_start)? {
        return Ok(IndexState::Bad(why));
    }
    Ok(if last {
        IndexState::RollUnfinished {
            entries: header.entries,
        }
    } else {
        IndexState::Ok {
            entries: header.entries,
        }
    })
}

/// Scans the segment and compares each frame's position with the index's,
/// and the entry counts: why the index does not describe the segment.
fn against_frames(
    seg: &Log,
    file: &File,
    header: &Header,
    next_start: Option<u64>,
) -> io::Result<Option<String>> {
    let mut positions = Positions::new(file, header.entries);
    let (mut met, mut mismatch, mut failed) = (0u64, None, None);
    let report = recovery::scan(
        &seg.file,
        seg.len,
        0,
        seg.first_index,
        seg.max_entry_bytes,
        |f| {
            if mismatch.is_none() && failed.is_none() && met < header.entries {
                match positions.get(met) {
                    Ok(p) if p != f.pos => mismatch = Some((f.index, p, f.pos)),
                    Ok(_) => {}
                    Err(e) => failed = Some(e),
                }
            }
            met += 1;
        },
    )?;
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some((entry, listed, found)) = mismatch {
        return Ok(Some(format!(
            "it places entry {entry} at byte {listed}, but its frame starts at byte {found}"
        )));
    }
    // The segment's own count is known only where its framing is whole;
    // past damage, the next segment's start says how many it must hold.
    let holds = if recovery::decide(&report, Recover::Refuse) == Decision::Keep {
        Some(report.entries())
    } else {
        next_start.map(|next| next - seg.first_index)
    };
    Ok(match holds {
        Some(n) if n != header.entries => Some(format!(
            "it lists {}, the segment holds {n}",
            entries_word(header.entries)
        )),
        _ => None,
    })
}

/// An index file's positions, read in chunks as a scan asks for them.
struct Positions<'f> {
    file: &'f File,
    entries: u64,
    buf: Vec<u8>,
    /// Which entry `buf` starts at.
    first: u64,
}

/// Positions read at a time.
const CHUNK_ENTRIES: u64 = 8192;

impl<'f> Positions<'f> {
    fn new(file: &'f File, entries: u64) -> Self {
        Positions {
            file,
            entries,
            buf: Vec::new(),
            first: 0,
        }
    }

    /// The byte position of entry `k` (0-based within the segment).
    fn get(&mut self, k: u64) -> io::Result<u64> {
        let loaded = self.buf.len() as u64 / 8;
        if k < self.first || k >= self.first + loaded {
            let n = (self.entries - k).min(CHUNK_ENTRIES);
            self.buf.resize(n as usize * 8, 0);
            self.file.read_exact_at(&mut self.buf, HEADER_LEN + k * 8)?;
            self.first = k;
        }
        let at = (k - self.first) as usize * 8;
        Ok(u64::from_le_bytes(
            self.buf[at..at + 8].try_into().expect("8 bytes"),
        ))
    }
}
