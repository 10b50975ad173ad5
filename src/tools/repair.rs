//! `wal-node repair`: do offline what replay does at open, under the node's
//! own lock, so it never races a node serving the file.
//!
//! A torn tail is cut, its bytes saved beside the log. Broken framing is
//! damaged acknowledged data: refused unless the operator accepts losing
//! everything from it on (`--truncate-at-damage`), and then the lost bytes
//! are saved too. Corrupt entries stay where they are, as replay keeps them.

use super::summary::Summary;
use super::{DAMAGED, Log, LogFile, Row, count, walk};
use crate::recovery::FrameStatus as Status;
use crate::recovery::{ScanReport, Tail};
use crate::repair::cut_tail;
use anyhow::{Context, Result};
use std::fs::TryLockError;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    log: LogFile,

    /// Only say what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,

    /// Accept losing everything from broken framing on: cut the log there,
    /// saving the cut bytes beside it.
    #[arg(long)]
    truncate_at_damage: bool,
}

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    let path = &args.log.path;
    let name = path.display();
    let log = args.log.open(!args.dry_run)?;
    match log.file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            eprintln!(
                "wal-node repair: refusing: {name} is locked by another process (a node serving it?)"
            );
            return Ok(DAMAGED);
        }
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {name}")),
    }
    let (summary, reports) = Summary::of(&log).with_context(|| format!("reading {name}"))?;
    writeln!(out, "{name}: {}", summary.line())?;
    // What replay sees: the walk's first stretch.
    let report = &reports[0];
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
            if !args.truncate_at_damage {
                let loss = Loss::after(&log, report)?;
                eprintln!(
                    "wal-node repair: refusing: {name} has broken framing at byte offset \
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
    if args.dry_run {
        writeln!(
            out,
            "{name}: would cut {} bytes from byte offset {} on and save them beside the log as \
             {name}.torn-{}; the log would hold {kept}{rot}",
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
        "{name}: cut {} bytes from byte offset {} on, {saved}; the log now holds {kept}{rot}",
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
