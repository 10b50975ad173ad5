//! The command line: with no subcommand, the Maelstrom node; with one, an
//! operator tool (see `wal_node::tools`).

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, error::ErrorKind};
use std::path::PathBuf;
use std::process::ExitCode;
use wal_node::frame::DEFAULT_MAX_ENTRY_BYTES;
use wal_node::log::{MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES, Options, Recover};
use wal_node::node::{Config, Node};
use wal_node::tools::{self, Tool};

/// A write-ahead log node: newline-delimited JSON requests on stdin,
/// replies on stdout, logs on stderr. Run without a subcommand, as Maelstrom
/// does, to serve; the subcommands are offline tools for a log directory
/// or one segment file.
#[derive(Parser)]
#[command(name = "wal-node", version)]
struct Cli {
    #[command(subcommand)]
    tool: Option<Tool>,

    #[command(flatten)]
    node: NodeArgs,
}

/// Options that only the node takes: a usage error before a tool's name,
/// rather than silently ignored (`--max-entry-bytes` is for both).
const NODE_ONLY: [&str; 4] = ["dir", "max_batch", "recover", "max_segment_bytes"];

impl Cli {
    /// `Cli::parse`, refusing node-only options given with a tool. (Given
    /// through the environment, as `WAL_DIR`, they do not apply to tools.)
    fn parse_checked() -> Cli {
        let mut command = Cli::command();
        let matches = command.get_matches_mut();
        if let Some((tool, _)) = matches.subcommand() {
            for id in NODE_ONLY {
                if matches.value_source(id) == Some(ValueSource::CommandLine) {
                    let flag = format!("--{}", id.replace('_', "-"));
                    let hint = if id == "dir" {
                        format!(
                            "; to name a node's log, give `wal-node {tool} --dir DIR --node ID`"
                        )
                    } else {
                        String::new()
                    };
                    command
                        .error(
                            ErrorKind::ArgumentConflict,
                            format!(
                                "{flag} is an option of the node, not of `wal-node {tool}`{hint}"
                            ),
                        )
                        .exit();
                }
            }
        }
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit())
    }
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Directory holding each node's log directory `<node_id>/`; without it
    /// the log is private: unlinked files that disappear with the process.
    #[arg(long, env = "WAL_DIR")]
    dir: Option<PathBuf>,

    /// Largest payload accepted, in bytes. Also a tool's option, so it may
    /// come before a tool's name too.
    #[arg(long, global = true, default_value_t = DEFAULT_MAX_ENTRY_BYTES, value_parser = clap::value_parser!(u32).range(1..))]
    max_entry_bytes: u32,

    /// Most requests served per fsync (1 = one sync per append).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_batch: u64,

    /// What replay does with broken framing inside the log.
    #[arg(long, value_enum, default_value_t = Recover::Refuse)]
    recover: Recover,

    /// Size at which the active segment is sealed and a new one started
    /// (1024 to 1073741824). Kept in the log directory: without this flag
    /// the log's last setting applies, 64 MiB for a new log.
    #[arg(long, value_parser = clap::value_parser!(u64).range(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES))]
    max_segment_bytes: Option<u64>,
}

fn main() -> ExitCode {
    ignore_sigxfsz();
    treat_empty_wal_dir_as_unset();
    let cli = Cli::parse_checked();
    match cli.tool {
        Some(tool) => tools::run(tool),
        None => serve(cli.node),
    }
}

/// A write past `RLIMIT_FSIZE` must fail with EFBIG, so the append gets
/// error 14 and preallocation falls back, instead of the default action of
/// `SIGXFSZ` killing the process.
fn ignore_sigxfsz() {
    // SAFETY: installs no handler, only the ignore disposition.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
}

/// `WAL_DIR=` (set but empty) means no directory, as an unset variable
/// does; clap would take it for an empty `--dir`.
fn treat_empty_wal_dir_as_unset() {
    if std::env::var_os("WAL_DIR").is_some_and(|v| v.is_empty()) {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::remove_var("WAL_DIR") };
    }
}

fn serve(args: NodeArgs) -> ExitCode {
    let config = Config {
        dir: args.dir,
        log: Options {
            max_entry_bytes: args.max_entry_bytes,
            recover: args.recover,
            max_segment_bytes: args.max_segment_bytes,
        },
        max_batch: args.max_batch as usize,
    };
    let stdout = std::io::stdout();
    wal_node::pipes::widen(&std::io::stdin());
    wal_node::pipes::widen(&stdout);
    match Node::new(config).run(std::io::stdin().lock(), &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            wal_node::stderr!("stopping: {e:#}");
            ExitCode::FAILURE
        }
    }
}
