//! `wal-node verify`: the log's summary in one line, and an exit status
//! saying whether it is clean. A directory is checked in full: every
//! segment, every index file, the offsets, the metadata (`survey`). Opens
//! everything read-only.

use super::log_dir::LogDir;
use super::summary::Summary;
use super::survey::Survey;
use super::{DAMAGED, LogFile};
use anyhow::{Context, Result};
use std::io::Write;

#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub(super) log: LogFile,
}

const EXAMPLES: &str = "\
Examples:
  wal-node verify n1/
  wal-node verify --dir /var/lib/wal --node n1
  WAL_DIR=/var/lib/wal wal-node verify --node n1
  wal-node verify n1/00000000000000000000.log";

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    let path = args.log.path.display();
    let summary = if args.log.is_dir() {
        let dir = LogDir::read(&args.log.path)?;
        Survey::of(dir, args.log.max_entry_bytes)?.summary
    } else {
        let log = args.log.open(false)?;
        Summary::of(&log)
            .with_context(|| format!("cannot read {path}"))?
            .0
    };
    writeln!(out, "{path}: {}", summary.line())?;
    Ok(if summary.clean { 0 } else { DAMAGED })
}
