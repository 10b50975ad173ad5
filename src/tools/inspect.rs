//! `wal-node inspect`: every frame of a log file with its status, then a
//! summary, as a table or as JSON lines. Opens the file read-only.
//!
//! After broken framing the walk resynchronises at the next whole frame and
//! goes on numbering frames as if the damaged bytes held none; those indexes
//! are guesses, marked `?` in the table and `"after_damage": true` in JSON.

use super::summary::Summary;
use super::{LogFile, Row, walk};
use crate::frame::checksum_hex;
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    log: LogFile,

    /// Show rows from the frame with this index on (the summary still covers
    /// the whole file).
    #[arg(long, value_name = "N", default_value_t = 0)]
    from: u64,

    /// Show at most this many frame rows.
    #[arg(long, value_name = "K")]
    limit: Option<u64>,

    /// JSON lines instead of a table: one object per frame (`"type":
    /// "frame"`) or damaged range (`"damage"`), then one `"summary"`.
    #[arg(long)]
    json: bool,
}

/// Characters of payload shown in the table.
const PREVIEW_CHARS: usize = 60;

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    let log = args.log.open(false)?;
    let mut summary = Summary::new(&log);
    let mut shown = 0;
    let limit = args.limit.unwrap_or(u64::MAX);
    if !args.json {
        writeln!(
            out,
            "{:>7}  {:>10}  {:>8}  {:<10}  {:<12}  {:<7}  payload",
            "index", "offset", "length", "crc_stored", "crc_computed", "status"
        )?;
    }
    let mut next_index = 0;
    let reports = walk(&log, |row| {
        summary.count(&row);
        // A damaged range sits just before the frame numbered `next_index`.
        let (index, is_frame) = match &row {
            Row::Frame { frame, .. } => (frame.index, true),
            Row::Damage { .. } => (next_index, false),
        };
        if let Row::Frame { frame, .. } = &row {
            next_index = frame.index + 1;
        }
        if index < args.from || shown >= limit {
            return Ok(());
        }
        shown += u64::from(is_frame);
        if args.json {
            serde_json::to_writer(&mut *out, &JsonRow::from(&row))?;
            writeln!(out)
        } else {
            writeln!(out, "{}", table_row(&row))
        }
    })
    .with_context(|| format!("reading {}", args.log.file.display()))?;
    summary.finish(&reports);
    if args.json {
        serde_json::to_writer(&mut *out, &summary)?;
        writeln!(out)?;
    } else {
        write_summary(&summary, out)?;
    }
    Ok(0)
}

fn table_row(row: &Row) -> String {
    match row {
        Row::Frame {
            frame,
            status,
            after_damage,
        } => {
            let index = format!("{}{}", frame.index, if *after_damage { "?" } else { "" });
            format!(
                "{index:>7}  {:>10}  {:>8}  {:<10}  {:<12}  {:<7}  {}",
                frame.pos,
                frame.header.length,
                checksum_hex(frame.header.crc),
                checksum_hex(frame.crc_computed),
                status.as_str(),
                preview(frame.payload)
            )
        }
        Row::Damage {
            pos,
            end,
            resumed,
            defect,
        } => format!(
            "{:>7}  {pos:>10}  {:>8}  {:<10}  {:<12}  {:<7}  broken framing: {defect}; {}",
            "-",
            end - pos,
            "-",
            "-",
            "damaged",
            if *resumed {
                format!("next whole frame at {end}; later indexes are guesses (?)")
            } else {
                "the search for a whole frame after it gave up".to_string()
            }
        ),
    }
}

/// The payload quoted and escaped, cut to `PREVIEW_CHARS` characters.
fn preview(payload: &[u8]) -> String {
    // Four bytes per character at most: enough to fill the preview.
    let head = &payload[..payload.len().min(4 * PREVIEW_CHARS)];
    let escaped: String = String::from_utf8_lossy(head).escape_debug().collect();
    let mut cut: String = escaped.chars().take(PREVIEW_CHARS).collect();
    if cut.len() < escaped.len() || head.len() < payload.len() {
        cut.push('…');
    }
    format!("\"{cut}\"")
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum JsonRow {
    Frame {
        index: u64,
        after_damage: bool,
        /// Byte position (the key says `offset`, as the table's column does).
        #[serde(rename = "offset")]
        pos: u64,
        length: u32,
        crc_stored: String,
        crc_computed: String,
        status: &'static str,
        payload: String,
    },
    Damage {
        #[serde(rename = "offset")]
        pos: u64,
        length: u64,
        defect: String,
        resync_at: Option<u64>,
    },
}

impl From<&Row<'_>> for JsonRow {
    fn from(row: &Row) -> JsonRow {
        match *row {
            Row::Frame {
                frame,
                status,
                after_damage,
            } => JsonRow::Frame {
                index: frame.index,
                after_damage,
                pos: frame.pos,
                length: frame.header.length,
                crc_stored: checksum_hex(frame.header.crc),
                crc_computed: checksum_hex(frame.crc_computed),
                status: status.as_str(),
                payload: String::from_utf8_lossy(frame.payload).into_owned(),
            },
            Row::Damage {
                pos,
                end,
                resumed,
                defect,
            } => JsonRow::Damage {
                pos,
                length: end - pos,
                defect: defect.to_string(),
                resync_at: resumed.then_some(end),
            },
        }
    }
}

/// The summary as the table's footer: totals, then the verdict and each
/// finding on a line of its own.
fn write_summary(summary: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "entries:     {} ({} bytes)",
        summary.entries, summary.total_bytes
    )?;
    writeln!(out, "file:        {} bytes", summary.file_bytes)?;
    writeln!(out, "state:       {}", summary.verdict())?;
    for finding in &summary.findings {
        writeln!(out, "             {finding}")?;
    }
    Ok(())
}
