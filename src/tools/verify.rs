//! `wal-node verify`: the file's summary in one line, and an exit status
//! saying whether it is clean. Opens the file read-only.

use super::summary::Summary;
use super::{DAMAGED, LogFile};
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
    let (summary, _) = Summary::of(&log).with_context(|| format!("cannot read {path}"))?;
    writeln!(out, "{path}: {}", summary.line())?;
    Ok(if summary.clean { 0 } else { DAMAGED })
}
