//! What the documentation shows is what the tools do: every example in a
//! tool's `--help` runs on a real log.

mod common;

use common::cli::{code, ok_stdout, run, stderr, stdout, wal_node};
use common::logs;
use std::path::{Path, PathBuf};
use std::process::Output;

/// 20 entries with bit rot in entry 4 (sealed segment 0) and a torn write
/// after entry 19 (active segment 18): a frame of every status.
fn rotten_and_torn(root: &Path) -> PathBuf {
    let dir = logs::torn_tail(root);
    logs::rot(&dir, 4);
    dir
}

// ---- --help examples -------------------------------------------------------------

/// The example command lines after `Examples:` in `wal-node <tool> --help`.
fn help_examples(tool: &str) -> Vec<String> {
    let help = ok_stdout(&run(&[tool, "--help"]));
    let (_, examples) = help
        .split_once("\nExamples:\n")
        .unwrap_or_else(|| panic!("{tool} --help shows no Examples:\n{help}"));
    let lines: Vec<String> = examples
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_owned())
        .collect();
    assert!(lines.len() >= 2, "{tool}: {lines:?}");
    lines
}

/// Splits a command line as a POSIX shell would, for the quoting the
/// examples use: words, and '...' quoted verbatim.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_default();
            }
            ' ' if !quoted => words.extend(word.take()),
            _ => word.get_or_insert_default().push(c),
        }
    }
    assert!(!quoted, "unbalanced quote: {line}");
    words.extend(word);
    words
}

/// Runs one example line on a real log: `/var/lib/wal` stands for `root`,
/// relative paths are relative to `root`, `VAR=value` words set the
/// environment.
fn run_example(line: &str, tool: &str, root: &Path) -> Output {
    let real = |w: &str| w.replace("/var/lib/wal", root.to_str().unwrap());
    let mut words = shell_words(line).into_iter().peekable();
    let mut cmd = wal_node();
    while let Some((var, value)) = words.peek().and_then(|w| w.split_once('=')) {
        assert!(
            var.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "{line}"
        );
        cmd.env(var, real(value));
        words.next();
    }
    assert_eq!(words.next().as_deref(), Some("wal-node"), "{line}");
    assert_eq!(words.next().as_deref(), Some(tool), "{line}");
    cmd.arg(tool)
        .args(words.map(|w| real(&w)))
        .current_dir(root);
    cmd.output().unwrap()
}

#[test]
fn every_help_example_runs_on_a_real_log() {
    let base = tempfile::tempdir().unwrap();
    let shared = base.path().join("shared");
    rotten_and_torn(&shared);
    for tool in ["inspect", "verify", "repair"] {
        for (k, line) in help_examples(tool).iter().enumerate() {
            // repair changes the log: each example gets one of its own.
            let root = if tool == "repair" {
                let root = base.path().join(format!("repair{k}"));
                rotten_and_torn(&root);
                root
            } else {
                shared.clone()
            };
            let out = run_example(line, tool, &root);
            let err = stderr(&out);
            assert!(
                code(&out) <= 1 && !err.contains("error:") && !err.contains("Usage:"),
                "{line}: exit {}: {err}",
                code(&out)
            );
            assert!(!stdout(&out).is_empty(), "{line}: no report");
        }
    }
}
