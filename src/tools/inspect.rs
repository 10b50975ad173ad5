//! `wal-node inspect`: every frame of a log file with its status, then a
//! summary, as a table or as JSON lines. Opens the file read-only. A log
//! directory is shown segment by segment (`inspect_dir`).
//!
//! After broken framing the walk resynchronises at the next whole frame and
//! goes on numbering frames as if the damaged bytes held none; those indexes
//! are guesses, marked `?` in the table and `"after_damage": true` in JSON.

use super::hexdump;
use super::summary::Summary;
use super::{LogFile, Row, follow, inspect_dir, stats, walk};
use crate::frame::checksum_hex;
use crate::recovery::FrameStatus as Status;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::io::{self, Write};

#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub(super) log: LogFile,

    /// Show rows from the entry with this offset on. For a file the summary
    /// still covers the whole file; in a directory, segments wholly before
    /// it are skipped unread, and the summary covers the segments read.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(super) from: u64,

    /// Show rows up to the entry with this offset, included. In a directory,
    /// segments that start after it are skipped unread.
    #[arg(long, value_name = "M")]
    pub(super) to: Option<u64>,

    /// Show at most this many frame rows (in a directory, segments after
    /// the last row shown are not read).
    #[arg(long, value_name = "K")]
    pub(super) limit: Option<u64>,

    /// Show only frames of this status (repeat for several); `damaged`
    /// shows the ranges of broken framing. The summary still counts all.
    #[arg(long, value_enum, value_name = "STATUS")]
    pub(super) status: Vec<StatusFilter>,

    /// Show only frames whose payload starts with these bytes (UTF-8 text,
    /// matched against the payload's exact bytes).
    #[arg(long, value_name = "TEXT")]
    pub(super) prefix: Option<String>,

    /// Print each shown payload's exact bytes as a hex dump under its row;
    /// with --json, give every frame a `payload_hex` field.
    #[arg(long)]
    pub(super) hex: bool,

    /// JSON lines instead of a table: one object per frame (`"type":
    /// "frame"`) or damaged range (`"damage"`), then one `"summary"`; for a
    /// directory, first its `"meta"`, and a `"segment"` before each
    /// segment's rows.
    #[arg(long)]
    pub(super) json: bool,

    /// Keep printing entries as a running node appends and syncs them,
    /// across segment rolls, until interrupted (Ctrl-C) or --to/--limit is
    /// reached. Never takes the node's lock or writes a file; prints no
    /// summary.
    #[arg(long, short = 'f')]
    pub(super) follow: bool,

    /// With --follow: how long to wait before looking for new entries again.
    #[arg(long, value_name = "MS", default_value_t = 100, requires = "follow",
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(super) interval_ms: u64,

    /// Instead of frame rows, statistics of the frames --from, --to,
    /// --status and --prefix select: entries and bytes, payload sizes (min,
    /// p50, p90, p99, max, mean), frames and bytes by status, one row per
    /// segment read, the snapshots, entries left below first_offset by a
    /// compaction; then the summary. With --json, one `"stats"` object.
    #[arg(long, conflicts_with_all = ["limit", "hex", "follow"])]
    pub(super) stats: bool,
}

/// What `--status` selects.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum StatusFilter {
    Ok,
    Corrupt,
    Torn,
    /// Ranges of broken framing.
    Damaged,
}

impl StatusFilter {
    fn of(row: &Row) -> StatusFilter {
        match row {
            Row::Frame { status, .. } => match status {
                Status::Ok => StatusFilter::Ok,
                Status::Corrupt => StatusFilter::Corrupt,
                Status::Torn => StatusFilter::Torn,
            },
            Row::Damage { .. } => StatusFilter::Damaged,
        }
    }
}

const EXAMPLES: &str = "\
Examples:
  wal-node inspect --dir /var/lib/wal --node n1 --from 100 --to 199
  wal-node inspect n1/ --status corrupt --hex
  wal-node inspect n1/ --prefix '{\"op\":\"set\"' --json --limit 10
  WAL_DIR=/var/lib/wal wal-node inspect --node n1 --status damaged
  wal-node inspect --dir /var/lib/wal --node n1 --stats
  wal-node inspect --dir /var/lib/wal --node n1 --follow --from 5 --limit 3";

/// Characters of payload shown in the table.
const PREVIEW_CHARS: usize = 60;

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    if let Some(to) = args.to.filter(|&to| to < args.from) {
        bail!(
            "--to {to} is before --from {}: no entry is in that range",
            args.from
        );
    }
    if args.follow {
        return follow::run(args, out);
    }
    if args.stats {
        return stats::run(args, out);
    }
    if args.log.is_dir() {
        return inspect_dir::run(args, out);
    }
    let log = args.log.open(false)?;
    let mut summary = Summary::new(&log);
    let mut rows = Rows::new(args, out);
    rows.header()?;
    rows.next_index = log.first_index;
    let reports = walk(&log, |row| {
        summary.count(&row);
        rows.show(&row)
    })
    .with_context(|| format!("reading {}", args.log.path.display()))?;
    summary.finish(&reports);
    if args.json {
        serde_json::to_writer(&mut *out, &summary)?;
        writeln!(out)?;
    } else {
        write_summary(&summary, out)?;
    }
    Ok(0)
}

/// Which rows are shown (`--from`, `--to`, `--limit`, `--status`,
/// `--prefix`) and how (`--json`, `--hex`).
pub(super) struct Rows<'a> {
    from: u64,
    to: u64,
    limit: u64,
    status: &'a [StatusFilter],
    prefix: Option<&'a [u8]>,
    json: bool,
    hex: bool,
    shown: u64,
    /// The index of the next frame: a damaged range sits just before it.
    pub next_index: u64,
    /// A directory's first offset: frames below it are compacted.
    pub compacted_below: u64,
    pub out: &'a mut dyn Write,
}

impl<'a> Rows<'a> {
    pub fn new(args: &'a Args, out: &'a mut dyn Write) -> Rows<'a> {
        Rows {
            from: args.from,
            to: args.to.unwrap_or(u64::MAX),
            limit: args.limit.unwrap_or(u64::MAX),
            status: &args.status,
            prefix: args.prefix.as_deref().map(str::as_bytes),
            json: args.json,
            hex: args.hex,
            shown: 0,
            next_index: 0,
            compacted_below: 0,
            out,
        }
    }

    /// The table's column titles (nothing in JSON).
    pub fn header(&mut self) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        writeln!(
            self.out,
            "{:>7}  {:>10}  {:>8}  {:<10}  {:<12}  {:<7}  payload",
            "index", "offset", "length", "crc_stored", "crc_computed", "status"
        )
    }

    /// Whether no further row can be shown: `--limit` rows have been, or
    /// the walk is past `--to`.
    pub fn full(&self) -> bool {
        self.shown >= self.limit || self.next_index > self.to
    }

    /// Whether a segment starting at `start` can hold a row to show.
    pub fn wants_segment(&self, start: u64, next: Option<u64>) -> bool {
        !self.full() && start <= self.to && next.is_none_or(|next| next > self.from)
    }

    /// Prints `row` if the range, limit and filters let it through.
    pub fn show(&mut self, row: &Row) -> io::Result<()> {
        let full = self.full();
        if !self.admits(row) || full {
            return Ok(());
        }
        let payload = match row {
            Row::Frame { frame, .. } => Some(frame.payload),
            Row::Damage { .. } => None,
        };
        self.shown += u64::from(payload.is_some());
        if self.json {
            serde_json::to_writer(
                &mut *self.out,
                &JsonRow::new(row, self.hex, self.compacted_below),
            )?;
            writeln!(self.out)
        } else {
            writeln!(self.out, "{}", table_row(row))?;
            match payload {
                Some(payload) if self.hex => hexdump::dump(payload, HEX_INDENT, self.out),
                _ => Ok(()),
            }
        }
    }

    /// Whether `--from`, `--to`, `--status` and `--prefix` select `row`
    /// (`--limit` aside). Call it on every row in file order: it follows
    /// the offsets, which place a damaged range.
    pub fn admits(&mut self, row: &Row) -> bool {
        let (index, payload) = match row {
            Row::Frame { frame, .. } => (frame.index, Some(frame.payload)),
            Row::Damage { .. } => (self.next_index, None),
        };
        if let Row::Frame { frame, .. } = row {
            self.next_index = frame.index + 1;
        }
        index >= self.from && index <= self.to && self.selects(row, payload)
    }

    /// Whether `--status` and `--prefix` select `row`.
    fn selects(&self, row: &Row, payload: Option<&[u8]>) -> bool {
        let status_ok = self.status.is_empty() || self.status.contains(&StatusFilter::of(row));
        let prefix_ok = match (self.prefix, payload) {
            (None, _) => true,
            (Some(prefix), Some(payload)) => payload.starts_with(prefix),
            (Some(_), None) => false,
        };
        status_ok && prefix_ok
    }
}

/// Where a hex dump's lines start: under the table's offset column.
const HEX_INDENT: usize = 9;

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
        /// Below the directory's first offset: freed by a compaction, still
        /// in the file, never served.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        compacted: bool,
        /// The payload's exact bytes in hex: given when `payload` cannot
        /// hold them (not UTF-8), when the frame is damaged, or on `--hex`.
        #[serde(skip_serializing_if = "Option::is_none")]
        payload_hex: Option<String>,
    },
    Damage {
        #[serde(rename = "offset")]
        pos: u64,
        length: u64,
        defect: String,
        resync_at: Option<u64>,
    },
}

impl JsonRow {
    fn new(row: &Row, hex: bool, compacted_below: u64) -> JsonRow {
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
                compacted: frame.index < compacted_below && !after_damage,
                payload_hex: (hex
                    || status != Status::Ok
                    || std::str::from_utf8(frame.payload).is_err())
                .then(|| hexdump::hex(frame.payload)),
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
pub(super) fn write_summary(summary: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "entries:     {} ({} bytes)",
        summary.entries, summary.total_bytes
    )?;
    match (summary.segments, summary.segments_read) {
        (Some(total), Some(read)) if read == total => writeln!(
            out,
            "segments:    {total} ({} bytes of files)",
            summary.file_bytes
        )?,
        (Some(total), Some(read)) => writeln!(
            out,
            "segments:    {read} of {total} read ({} bytes of files); the others were \
             skipped (--from, --to, --limit), so this summary covers those read only",
            summary.file_bytes
        )?,
        _ => writeln!(out, "file:        {} bytes", summary.file_bytes)?,
    }
    writeln!(out, "state:       {}", summary.verdict())?;
    for finding in &summary.findings {
        writeln!(out, "             {finding}")?;
    }
    Ok(())
}
