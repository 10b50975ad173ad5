//! `wal-node verify`: one line saying whether replay would find the log
//! clean. Opens the file read-only.

use super::{DAMAGED, LogFile, count};
use crate::recovery::{self, ScanReport, Tail};
use anyhow::{Context, Result};
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    log: LogFile,
}

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    let path = args.log.file.display();
    let log = args.log.open(false)?;
    let report = recovery::scan(&log.file, log.len, 0, 0, log.max_entry_bytes, |_| {})
        .with_context(|| format!("cannot read {path}"))?;
    let damage = damage(&report);
    let entries = count(report.entries(), "entry", "entries");
    if damage.is_empty() {
        let free = match report.tail {
            Tail::Zeros { len } => format!(", {len} bytes of free space"),
            _ => String::new(),
        };
        writeln!(
            out,
            "{path}: clean: {entries}, {} bytes{free}",
            report.data_end
        )?;
        Ok(0)
    } else {
        writeln!(
            out,
            "{path}: damaged: {}; {entries} in the first {} bytes",
            damage.join("; "),
            report.data_end
        )?;
        Ok(DAMAGED)
    }
}

/// What replay would have to report or cut, one phrase per finding.
fn damage(report: &ScanReport) -> Vec<String> {
    let mut found = Vec::new();
    if report.corrupt_entries > 0 {
        found.push(format!(
            "{} with a bad checksum",
            count(report.corrupt_entries, "entry", "entries")
        ));
    }
    match report.tail {
        Tail::Clean | Tail::Zeros { .. } => {}
        Tail::Torn { len, reason } => found.push(format!(
            "torn tail of {len} bytes at offset {} ({reason})",
            report.data_end
        )),
        Tail::BrokenFraming {
            offset,
            defect,
            resync_at,
        } => found.push(format!(
            "broken framing at byte offset {offset} ({defect}), {}",
            recovery::resumption(resync_at)
        )),
    }
    found
}
