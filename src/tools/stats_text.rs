//! `inspect --stats` as text: the totals, one line per status, the payload
//! sizes and the compacted entries, then a table of segments and one of
//! snapshots. An offset guessed past broken framing ends with `?`, as in
//! `inspect`'s rows.

use super::count;
use super::stats::{Compacted, SegmentStats, SnapshotStats, Span, Stats, Tally};
use std::io::{self, Write};

pub fn write(stats: &Stats, out: &mut dyn Write) -> io::Result<()> {
    let by = &stats.by_status;
    writeln!(out, "entries:     {}", totals(&stats.entries, &stats.span))?;
    writeln!(out, "ok:          {}", tally(&by.ok, "entry", "entries"))?;
    writeln!(
        out,
        "corrupt:     {}",
        tally(&by.corrupt, "entry", "entries")
    )?;
    writeln!(out, "torn:        {}", tally(&by.torn, "frame", "frames"))?;
    writeln!(
        out,
        "damaged:     {}",
        tally(
            &by.damaged,
            "range of broken framing",
            "ranges of broken framing"
        )
    )?;
    writeln!(out, "payloads:    {}", stats.payload_sizes.describe())?;
    if let Some(compacted) = &stats.compacted {
        writeln!(out, "compacted:   {}", describe_compacted(compacted))?;
    }
    writeln!(out)?;
    write_segments(&stats.segments, out)?;
    if let Some(snapshots) = &stats.snapshots {
        writeln!(out)?;
        write_snapshots(snapshots, out)?;
    }
    Ok(())
}

/// `15 (1620 bytes), offsets 30 to 44`.
fn totals(entries: &Tally, span: &Span) -> String {
    format!(
        "{} ({} bytes){}",
        entries.count,
        entries.bytes,
        offsets(span)
    )
}

/// `3 entries (324 bytes)`.
fn tally(tally: &Tally, one: &str, many: &str) -> String {
    format!("{} ({} bytes)", count(tally.count, one, many), tally.bytes)
}

/// `, offsets 30 to 44`, or nothing when nothing was counted.
fn offsets(span: &Span) -> String {
    match (span.first_offset, span.last_offset) {
        (Some(first), Some(last)) => format!(
            ", offsets {} to {}",
            offset(first, span.first_after_damage),
            offset(last, span.last_after_damage)
        ),
        _ => String::new(),
    }
}

fn describe_compacted(compacted: &Compacted) -> String {
    let below = compacted.below;
    if below == 0 {
        return "none (first_offset 0: nothing was ever compacted)".into();
    }
    if compacted.entries.count == 0 {
        return format!("none below first_offset {below}");
    }
    let corrupt = match compacted.corrupt {
        0 => String::new(),
        n => format!(", {n} of them corrupt"),
    };
    format!(
        "{}{}{corrupt}, below first_offset {below}: kept in {} until a compaction passes its end",
        tally(&compacted.entries, "entry", "entries"),
        offsets(&compacted.span),
        compacted.segments.join(", ")
    )
}

fn write_segments(segments: &[SegmentStats], out: &mut dyn Write) -> io::Result<()> {
    let mut rows = vec![row(&[
        "segment",
        "state",
        "first",
        "last",
        "entries",
        "bytes",
        "file_bytes",
        "index",
    ])];
    for seg in segments {
        let span = &seg.span;
        rows.push(vec![
            seg.file.clone(),
            match seg.sealed {
                Some(true) => "sealed",
                Some(false) => "active",
                None => "-",
            }
            .into(),
            span.first_offset
                .map_or("-".into(), |o| offset(o, span.first_after_damage)),
            span.last_offset
                .map_or("-".into(), |o| offset(o, span.last_after_damage)),
            seg.entries.count.to_string(),
            seg.entries.bytes.to_string(),
            seg.file_bytes.to_string(),
            seg.index_text.clone().unwrap_or("-".into()),
        ]);
    }
    table(&rows, 2, out)
}

fn write_snapshots(snapshots: &[SnapshotStats], out: &mut dyn Write) -> io::Result<()> {
    if snapshots.is_empty() {
        return writeln!(out, "snapshots:   none");
    }
    let mut rows = vec![row(&["snapshot", "offset", "bytes", "valid"])];
    for snap in snapshots {
        rows.push(vec![
            snap.file.clone(),
            snap.offset.to_string(),
            snap.bytes.to_string(),
            snap.defect.clone().unwrap_or("intact".into()),
        ]);
    }
    table(&rows, 1, out)
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Writes `rows` (the first is the titles) in columns two spaces apart,
/// each as wide as its widest cell: the first `left` columns and the last
/// one aligned left (names, words), the others right (numbers). The last
/// column is not padded.
fn table(rows: &[Vec<String>], left: usize, out: &mut dyn Write) -> io::Result<()> {
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let width = widths[c];
            if c > 0 {
                line.push_str("  ");
            }
            if c + 1 == columns {
                line.push_str(cell);
            } else if c < left {
                line.push_str(&format!("{cell:<width$}"));
            } else {
                line.push_str(&format!("{cell:>width$}"));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// An offset, with `?` when it is a guess past broken framing.
fn offset(index: u64, after_damage: bool) -> String {
    format!("{index}{}", if after_damage { "?" } else { "" })
}
