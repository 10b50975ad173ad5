//! `wal-node inspect DIR/<id>/`: the log directory's metadata, then each
//! segment (a line naming it, whether it is sealed, its size and its index
//! file's state) followed by its frames, numbered by their real offsets;
//! then the directory's summary. Segments wholly outside `--from`..`--to`,
//! or after `--limit` rows, are skipped without being read.

use super::index_check::IndexState;
use super::inspect::{Args, Rows, write_summary};
use super::log_dir::{LogDir, MetaState, SegmentFile};
use super::survey::Survey;
use crate::log::meta;
use anyhow::Result;
use serde::Serialize;
use std::io::Write;

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    let dir = LogDir::read(&args.log.path)?;
    let mut survey = Survey::begin(dir, args.log.max_entry_bytes);
    let mut rows = Rows::new(args, out);
    if let MetaState::Ok(meta) = &survey.dir.meta {
        rows.compacted_below = meta.first_offset;
    }
    if args.json {
        serde_json::to_writer(&mut *rows.out, &JsonMeta::from(&survey.dir.meta))?;
        writeln!(rows.out)?;
    } else {
        writeln!(rows.out, "meta:        {}", describe_meta(&survey.dir.meta))?;
        writeln!(rows.out)?;
        rows.header()?;
    }
    for k in 0..survey.dir.segments.len() {
        let next = survey.dir.segments.get(k + 1).map(|s| s.start);
        if !rows.wants_segment(survey.dir.segments[k].start, next) {
            continue;
        }
        let (log, index) = survey.open(k)?;
        let seg = &survey.dir.segments[k];
        let sealed = next.is_some();
        if args.json {
            let line = JsonSegment::new(seg, sealed, log.len, &index);
            serde_json::to_writer(&mut *rows.out, &line)?;
            writeln!(rows.out)?;
        } else {
            writeln!(
                rows.out,
                "segment {}: {}, {} bytes; {}",
                seg.name(),
                if sealed { "sealed" } else { "active" },
                log.len,
                index.describe()
            )?;
        }
        rows.next_index = log.first_index;
        survey.walk_segment(k, &log, index, |row| rows.show(row))?;
    }
    survey.finish();
    if args.json {
        serde_json::to_writer(&mut *out, &survey.summary)?;
        writeln!(out)?;
    } else {
        write_summary(&survey.summary, out)?;
    }
    Ok(0)
}

pub(super) fn describe_meta(state: &MetaState) -> String {
    match state {
        MetaState::Ok(m) => format!(
            "version {}, max_segment_bytes {}, first_offset {}",
            meta::VERSION,
            m.max_segment_bytes,
            m.first_offset
        ),
        MetaState::Missing => "missing".into(),
        MetaState::Damaged(why) => format!("damaged ({why})"),
    }
}

/// The `"meta"` line: the metadata file's state and, if it is sound, what
/// it says.
#[derive(Serialize)]
pub(super) struct JsonMeta {
    #[serde(rename = "type")]
    kind: &'static str,
    file: &'static str,
    /// `ok`, `missing` or `damaged`.
    state: &'static str,
    version: Option<u32>,
    max_segment_bytes: Option<u64>,
    first_offset: Option<u64>,
    defect: Option<String>,
}

impl From<&MetaState> for JsonMeta {
    fn from(state: &MetaState) -> JsonMeta {
        let mut line = JsonMeta {
            kind: "meta",
            file: crate::log::names::META,
            state: "ok",
            version: None,
            max_segment_bytes: None,
            first_offset: None,
            defect: None,
        };
        match state {
            MetaState::Ok(m) => {
                line.version = Some(meta::VERSION);
                line.max_segment_bytes = Some(m.max_segment_bytes);
                line.first_offset = Some(m.first_offset);
            }
            MetaState::Missing => line.state = "missing",
            MetaState::Damaged(why) => {
                line.state = "damaged";
                line.defect = Some(why.clone());
            }
        }
        line
    }
}

/// The `"segment"` line before a segment's rows.
#[derive(Serialize)]
struct JsonSegment {
    #[serde(rename = "type")]
    kind: &'static str,
    file: String,
    start_offset: u64,
    /// Every segment but the last.
    sealed: bool,
    file_bytes: u64,
    index: JsonIndex,
}

#[derive(Serialize)]
pub(super) struct JsonIndex {
    /// The index file's name, if there is one.
    file: Option<String>,
    /// `ok`, `missing`, `bad`, `none` (the active segment), `roll_unfinished`
    /// or `stale`.
    state: &'static str,
    entries: Option<u64>,
    defect: Option<String>,
}

impl JsonSegment {
    fn new(seg: &SegmentFile, sealed: bool, file_bytes: u64, index: &IndexState) -> JsonSegment {
        JsonSegment {
            kind: "segment",
            file: seg.name(),
            start_offset: seg.start,
            sealed,
            file_bytes,
            index: JsonIndex::new(seg, index),
        }
    }
}

impl JsonIndex {
    pub(super) fn new(seg: &SegmentFile, index: &IndexState) -> JsonIndex {
        JsonIndex {
            file: seg.index.as_ref().map(|_| seg.index_name()),
            state: index.key(),
            entries: index.entries(),
            defect: index.defect().map(str::to_owned),
        }
    }
}
