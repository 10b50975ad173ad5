//! Operator tools: look inside a log file, check it and repair it, with no
//! node running.
//!
//! They classify frames exactly as replay does, through `recovery::scan`;
//! `walk` only adds what a node never needs: carrying on past broken framing.
//!
//! Exit statuses: 0 clean (or repaired), 1 damage found or repair refused,
//! 2 the file could not be read or written (clap also exits 2 on a bad
//! argument).

mod inspect;
mod repair;
mod summary;
mod verify;
mod walk;

pub use walk::{Row, walk};

use crate::frame::DEFAULT_MAX_ENTRY_BYTES;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// The operator subcommands of `wal-node`.
#[derive(clap::Subcommand)]
pub enum Tool {
    /// List every frame of a log file with its status, then a summary.
    /// Read-only.
    Inspect(inspect::Args),
    /// Check a log file in one line: exit 0 if clean, 1 if damaged, 2 if it
    /// cannot be read. Read-only.
    Verify(verify::Args),
    /// Do offline what replay would do: cut a torn tail, saving the cut bytes
    /// beside the log as `<file>.torn-<offset>`. Refuses broken framing
    /// unless given --truncate-at-damage.
    Repair(repair::Args),
}

/// Exit status: damage found, or repair refused.
pub const DAMAGED: u8 = 1;
/// Exit status: the file could not be read or written.
pub const UNREADABLE: u8 = 2;

/// Runs `tool`, writing its report to stdout and errors to stderr.
pub fn run(tool: Tool) -> ExitCode {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let (name, result) = match &tool {
        Tool::Inspect(args) => ("inspect", inspect::run(args, &mut out)),
        Tool::Verify(args) => ("verify", verify::run(args, &mut out)),
        Tool::Repair(args) => ("repair", repair::run(args, &mut out)),
    };
    let result = result.and_then(|code| Ok(out.flush().map(|()| code)?));
    match result {
        Ok(code) => ExitCode::from(code),
        // A reader that went away (`| head`) wanted no more: not a failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wal-node {name}: {e:#}");
            ExitCode::from(UNREADABLE)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The log file argument every tool takes.
#[derive(clap::Args)]
pub struct LogFile {
    /// The log file, a node's `<node_id>.wal`. A name that starts with `-`
    /// goes after `--`: `wal-node verify -- -n1.wal`.
    pub file: PathBuf,

    /// Largest payload a frame may announce, in bytes: give the node's value,
    /// since a longer length word counts as broken framing.
    #[arg(long, default_value_t = DEFAULT_MAX_ENTRY_BYTES, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_entry_bytes: u32,
}

/// An open log file and what the classifier needs to read it.
pub struct Log {
    pub file: File,
    pub len: u64,
    pub max_entry_bytes: u32,
}

impl LogFile {
    /// Opens the log, read-only unless `write`; never creates it.
    pub fn open(&self, write: bool) -> Result<Log> {
        let path = self.file.display();
        let file = File::options()
            .read(true)
            .write(write)
            .open(&self.file)
            .with_context(|| format!("cannot open {path}"))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot read the size of {path}"))?;
        if meta.is_dir() {
            bail!("cannot read {path}: is a directory");
        }
        Ok(Log {
            file,
            len: meta.len(),
            max_entry_bytes: self.max_entry_bytes,
        })
    }
}

pub use crate::count;
