//! `wal-node repair`: do offline what replay does at open, under the node's
//! own lock, so it never races a node serving the log.
//!
//! A torn tail is cut, its bytes saved beside the log. Broken framing is
//! damaged acknowledged data: refused unless the operator accepts losing
//! everything from it on (`--truncate-at-damage`), and then the lost bytes
//! are saved too. Corrupt entries stay where they are, as replay keeps them.
//! A log directory (`repair_dir`) has its active segment's tail handled so,
//! and its index files rebuilt; a segment file inside a log directory is
//! repaired only if it is the active one.

use super::log_dir;
use super::summary::Summary;
use super::{DAMAGED, Log, LogFile, Row, count, repair_dir, walk};
use crate::log::names;
use crate::recovery::FrameStatus as Status;
use crate::recovery::{self, Decision, Recover, ScanReport, Tail};
use crate::repair::cut_tail;
use anyhow::{Context, Result};
use std::fs::TryLockError;
use std::io::Write;
use std::path::Path;

#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub(super) log: LogFile,

    /// Only say what would be done; change nothing.
    #[arg(long)]
    pub(super) dry_run: bool,

    /// Accept losing everything from broken framing on: cut the log there,
    /// saving the cut bytes beside it.
    #[arg(long)]
    pub(super) truncate_at_damage: bool,

    /// For a log directory: accept ending the log at damage inside a sealed
    /// segment, or where a missing segment leaves a gap in the offsets. The
    /// damaged segment is cut there and becomes the active one; every later
    /// segment is set aside (renamed `<segment>.log.torn-0`), its entries
    /// lost to the log. Without it repair only says what it would cut.
    #[arg(long)]
    pub(super) allow_sealed: bool,
}

const EXAMPLES: &str = "\
Examples:
  wal-node repair --dry-run n1/
  wal-node repair --dir /var/lib/wal --node n1
  wal-node repair --truncate-at-damage --dir /var/lib/wal --node n1
  wal-node repair --allow-sealed --dry-run n1/";

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    if args.log.is_dir() {
        return repair_dir::run(args, out);
    }
    let path = &args.log.path;
    let name = path.display();
    let log = args.log.open(!args.dry_run)?;
    match log.file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(locked(&name.to_string())),
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {name}")),
    }
    // A node locks its log directory, not the segment files in it.
    let (_dir_lock, sealed_in) = match log_dir::holding(path) {
        None => (None, None),
        Some(dir) => {
            let Some(lock) = log_dir::lock(dir)? else {
                return Ok(locked(&dir.display().to_string()));
            };
            let sealed = is_segment(path)
                && log_dir::has_later_segment(dir, log.first_index)
                    .with_context(|| format!("cannot list {}", dir.display()))?;
            (Some(lock), sealed.then_some(dir))
        }
    };
    let (summary, reports) = Summary::of(&log).with_context(|| format!("reading {name}"))?;
    writeln!(out, "{name}: {}", summary.line())?;
    // What replay sees: the walk's first stretch.
    let report = &reports[0];
    if let Some(dir) = sealed_in
        && recovery::decide(report, Recover::Refuse) != Decision::Keep
    {
        let flags = if args.allow_sealed {
            " --allow-sealed"
        } else {
            ""
        };
        crate::tool_stderr!(
            "repair",
            "refusing: {name} is a sealed segment of the log {}; cutting it \
             alone would leave a gap in the offsets. Repair the directory instead: wal-node \
             repair{flags} {}",
            dir.display(),
            dir.display()
        );
        return Ok(DAMAGED);
    }
    repair_tail(
        &log,
        path,
        report,
        args.truncate_at_damage,
        args.dry_run,
        out,
    )
}

/// The refusal when another process holds the lock.
pub(super) fn locked(name: &str) -> u8 {
    crate::tool_stderr!(
        "repair",
        "refusing: {name} is locked by another process (a node serving it?)"
    );
    DAMAGED
}

/// Whether `path` is named like a segment file.
fn is_segment(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| matches!(names::classify(n), names::Kind::Segment(_)))
}

/// What replay would do to the tail of the file `log` (at `path`), whose
/// first stretch `report` describes: nothing, a cut of a torn tail, or a cut
/// of broken framing if the operator accepted it (`truncate_at_damage`).
pub(super) fn repair_tail(
    log: &Log,
    path: &Path,
    report: &ScanReport,
    truncate_at_damage: bool,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<u8> {
    let name = path.display();
    // A segment of a log directory is not the whole log.
    let holder = if is_segment(path) {
        "the segment"
    } else {
        "the log"
    };
    // Entries with bit rot that stay in the log (any past a cut go with it).
    let rot = match report.corrupt_entries {
        0 => "",
        _ => {
            "; bit rot cannot be repaired: those entries stay in place and read back with \
              checksum_valid=false"
        }
    };
    match report.tail {
        Tail::Clean | Tail::Zeros { .. } => {
            writeln!(out, "{name}: nothing to do{rot}")?;
            return Ok(0);
        }
        Tail::Torn { .. } => {}
        Tail::BrokenFraming { pos, .. } => {
            if !truncate_at_damage {
                let loss = Loss::after(log, report)?;
                crate::tool_stderr!(
                    "repair",
                    "refusing: {name} has broken framing at byte offset \
                     {pos}; cutting there would lose the {} bytes from byte offset {} on: the \
                     damaged range and {} ({} with a good checksum). To accept that loss (the \
                     cut bytes are saved beside the log) rerun with --truncate-at-damage; to look \
                     first: wal-node inspect {name}",
                    report.damaged_bytes(),
                    report.data_end,
                    count(loss.frames, "readable frame", "readable frames"),
                    loss.whole
                );
                return Ok(DAMAGED);
            }
        }
    }
    let kept = format!(
        "{} ({} bytes)",
        count(report.entries(), "entry", "entries"),
        report.data_end
    );
    if dry_run {
        writeln!(
            out,
            "{name}: would cut {} bytes from byte offset {} on and save them beside the log as \
             {name}.torn-{}; {holder} would hold {kept}{rot}",
            report.damaged_bytes(),
            report.data_end,
            report.data_end
        )?;
        return Ok(0);
    }
    let cut = cut_tail(Some(path), &log.file, report)?;
    let saved = match (&cut.saved_to, &cut.unsaved) {
        (Some(p), _) => format!("saved to {}", p.display()),
        (None, Some(unsaved)) => {
            format!("not saved: {unsaved}; cut anyway, since a torn tail was never acknowledged")
        }
        (None, None) => "nothing to save".into(),
    };
    writeln!(
        out,
        "{name}: cut {} bytes from byte offset {} on, {saved}; {holder} now holds {kept}{rot}",
        cut.cut_bytes, cut.pos
    )?;
    Ok(0)
}

/// Frames a cut at `report.data_end` would lose, found by walking on past
/// the damage.
struct Loss {
    frames: u64,
    /// Of those, frames whose checksum matches.
    whole: u64,
}

impl Loss {
    fn after(log: &Log, report: &ScanReport) -> Result<Loss> {
        let mut loss = Loss {
            frames: 0,
            whole: 0,
        };
        walk(log, |row| {
            if let Row::Frame { frame, status, .. } = row
                && frame.pos >= report.data_end
            {
                loss.frames += 1;
                loss.whole += u64::from(status == Status::Ok);
            }
            Ok(())
        })?;
        Ok(loss)
    }
}
