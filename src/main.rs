//! The command line: with no subcommand, the Maelstrom node; with one, an
//! operator tool (see `wal_node::tools`).

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, error::ErrorKind};
use std::path::PathBuf;
use std::process::ExitCode;
use wal_node::frame::DEFAULT_MAX_ENTRY_BYTES;
use wal_node::node::{Config, Node};
use wal_node::tools::{self, Tool};
use wal_node::wal::{Options, Recover};

/// A write-ahead log node: newline-delimited JSON requests on stdin,
/// replies on stdout, logs on stderr. Run without a subcommand, as Maelstrom
/// does, to serve; the subcommands are offline tools for a log file.
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
const NODE_ONLY: [&str; 3] = ["dir", "max_batch", "recover"];

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
                    command
                        .error(
                            ErrorKind::ArgumentConflict,
                            format!("{flag} is an option of the node, not of `wal-node {tool}`"),
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
    /// Directory holding `<node_id>.wal`; without it the log is a private,
    /// unlinked file that disappears when the process ends.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse_checked();
    match cli.tool {
        Some(tool) => tools::run(tool),
        None => serve(cli.node),
    }
}

fn serve(args: NodeArgs) -> ExitCode {
    let config = Config {
        dir: args.dir,
        wal: Options {
            max_entry_bytes: args.max_entry_bytes,
            recover: args.recover,
        },
        max_batch: args.max_batch as usize,
    };
    let stdout = std::io::stdout();
    match Node::new(config).run(std::io::stdin().lock(), &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wal-node: stopping: {e:#}");
            ExitCode::FAILURE
        }
    }
}
