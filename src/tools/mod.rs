//! Operator tools: look inside a log, check it and repair it, with no node
//! running. A log is a node's log directory (`DIR/<id>/`: metadata,
//! segments, index files) or one segment file (today's single-file format).
//!
//! They classify frames exactly as replay does, through `recovery::scan`;
//! `walk` only adds what a node never needs: carrying on past broken framing.
//! `survey` does for a directory what `summary` does for one file.
//!
//! Exit statuses: 0 clean (or repaired), 1 damage found or repair refused,
//! 2 the log could not be read or written (clap also exits 2 on a bad
//! argument).

mod follow;
mod hexdump;
mod index_check;
mod inspect;
mod inspect_dir;
mod interrupt;
mod log_dir;
mod payload_sizes;
mod repair;
mod repair_dir;
mod repair_plan;
mod stats;
mod stats_text;
mod summary;
mod survey;
mod verify;
mod walk;

pub use walk::{Row, walk};

use crate::frame::DEFAULT_MAX_ENTRY_BYTES;
use crate::log::names;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The operator subcommands of `wal-node`.
#[derive(clap::Subcommand)]
pub enum Tool {
    /// List every frame of a log directory (segment by segment, with its
    /// metadata and index files) or of one segment file, with its status,
    /// then a summary. Read-only.
    Inspect(inspect::Args),
    /// Check a log directory (every segment in full, every index file) or one
    /// segment file in one line: exit 0 if clean, 1 if damaged, 2 if it
    /// cannot be read. Read-only.
    Verify(verify::Args),
    /// Do offline what replay would do: cut the active segment's torn tail,
    /// saving the cut bytes beside it as `<file>.torn-<offset>`, and rebuild
    /// missing or bad index files. Refuses broken framing unless given
    /// --truncate-at-damage, and damage in a sealed segment unless given
    /// --allow-sealed.
    Repair(repair::Args),
}

/// Exit status: damage found, or repair refused.
pub const DAMAGED: u8 = 1;
/// Exit status: the file could not be read or written.
pub const UNREADABLE: u8 = 2;

/// Runs `tool`, writing its report to stdout and errors to stderr.
pub fn run(mut tool: Tool) -> ExitCode {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let (name, log, follow) = match &mut tool {
        Tool::Inspect(args) => ("inspect", &mut args.log, args.follow),
        Tool::Verify(args) => ("verify", &mut args.log, false),
        Tool::Repair(args) => ("repair", &mut args.log, false),
    };
    if let Err(e) = log.resolve(follow) {
        crate::stderr::line_from(&format!("wal-node {name}: "), format_args!("{e:#}"));
        return ExitCode::from(UNREADABLE);
    }
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
            crate::stderr::line_from(&format!("wal-node {name}: "), format_args!("{e:#}"));
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

/// The log argument every tool takes: a path, or the node's own way of
/// naming it (`--dir DIR --node ID`, or `WAL_DIR` and `--node ID`).
#[derive(clap::Args)]
pub struct LogFile {
    /// The log: a node's log directory `DIR/<node_id>/`, or one segment file
    /// (`DIR/<node_id>/<start>.log`, or a previous version's
    /// `<node_id>.wal`). A name that starts with `-` goes after `--`:
    /// `wal-node verify -- -n1.wal`. Or name it as the node does, with
    /// --dir and --node.
    #[arg(value_name = "PATH", conflicts_with = "node")]
    given: Option<PathBuf>,

    /// With --node: the directory holding each node's log directory, as the
    /// node's --dir.
    #[arg(long, env = "WAL_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,

    /// The node id whose log to read: `DIR/<ID>/` (or a previous version's
    /// `DIR/<ID>.wal`), DIR given by --dir or WAL_DIR.
    #[arg(long, value_name = "ID")]
    node: Option<String>,

    /// Largest payload a frame may announce, in bytes: give the node's value,
    /// since a longer length word counts as broken framing.
    #[arg(long, default_value_t = DEFAULT_MAX_ENTRY_BYTES, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_entry_bytes: u32,

    /// The log's path, once `resolve` has worked it out.
    #[arg(skip)]
    pub path: PathBuf,
}

/// An open log file (one segment) and what the classifier needs to read it.
pub struct Log {
    pub file: File,
    pub len: u64,
    pub max_entry_bytes: u32,
    /// The offset of its first entry: the start in a segment's name, else 0.
    pub first_index: u64,
}

impl LogFile {
    /// Works out the log's path from PATH, or from --dir and --node.
    /// Unless `may_not_exist_yet` (a follower waits for its log), a node
    /// with no log there is named as such.
    pub fn resolve(&mut self, may_not_exist_yet: bool) -> Result<()> {
        self.path = match (&self.given, &self.node) {
            (Some(path), _) => {
                // `--dir D n1` (or WAL_DIR and `n1`): PATH names the log, but
                // the operator likely meant the node n1 in D.
                if let Some(root) = &self.dir
                    && !path.exists()
                    && root.join(path).exists()
                {
                    bail!(
                        "{} does not exist; for the log of node {} in {}, give --node {}",
                        path.display(),
                        path.display(),
                        root.display(),
                        path.display()
                    );
                }
                path.clone()
            }
            (None, Some(node)) => {
                if crate::protocol::check_node_id(node).is_err() {
                    bail!(
                        "--node {node:?} is not a node id: 1 to 64 characters of A-Z a-z 0-9 _ . - \
                         (and not . or ..)"
                    );
                }
                let Some(root) = &self.dir else {
                    bail!(
                        "--node {node} needs the directory holding the logs: give --dir DIR or set WAL_DIR"
                    );
                };
                let dir = root.join(node);
                let old = root.join(format!("{node}.wal"));
                if !dir.exists() && old.exists() {
                    old
                } else if !dir.exists() && root.is_dir() && !may_not_exist_yet {
                    bail!(
                        "no log for node {node} in {}: neither {}/ nor {} exists",
                        root.display(),
                        dir.display(),
                        old.display()
                    );
                } else {
                    dir
                }
            }
            (None, None) if self.dir.is_some() => {
                bail!("--dir DIR holds every node's log: add --node ID to say whose")
            }
            (None, None) => bail!(
                "which log? give its PATH (a log directory DIR/<node_id>/ or a segment file), \
                 or --node ID with --dir DIR (or WAL_DIR)"
            ),
        };
        Ok(())
    }

    /// Whether the argument names a directory (else a single file).
    pub fn is_dir(&self) -> bool {
        self.path.is_dir()
    }

    /// Opens the argument as one file, read-only unless `write`; never
    /// creates it.
    pub fn open(&self, write: bool) -> Result<Log> {
        open_file(&self.path, write, self.max_entry_bytes)
    }
}

/// Opens the file at `path`, read-only unless `write`. A file named like a
/// segment (`<20 digits>.log`) numbers its entries from that offset.
pub fn open_file(path: &Path, write: bool, max_entry_bytes: u32) -> Result<Log> {
    let shown = path.display();
    let file = File::options()
        .read(true)
        .write(write)
        .open(path)
        .with_context(|| format!("cannot open {shown}"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read the size of {shown}"))?;
    if meta.is_dir() {
        bail!("cannot read {shown}: is a directory");
    }
    let first_index = match path
        .file_name()
        .and_then(|n| n.to_str())
        .map(names::classify)
    {
        Some(names::Kind::Segment(start)) => start,
        _ => 0,
    };
    Ok(Log {
        file,
        len: meta.len(),
        max_entry_bytes,
        first_index,
    })
}

pub use crate::count;
