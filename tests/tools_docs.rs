//! What the documentation shows is what the tools do: the outputs the
//! README's "Operator tools" shows are golden files, checked byte for byte
//! and shown verbatim; every example in a tool's `--help` runs on a real
//! log.

mod common;

use common::cli::{code, ok_stdout, run, stderr, stdout, wal_node};
use common::logs;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

/// 20 entries with bit rot in entry 4 (sealed segment 0) and a torn write
/// after entry 19 (active segment 18): a frame of every status.
fn rotten_and_torn(root: &Path) -> PathBuf {
    let dir = logs::torn_tail(root);
    logs::rot(&dir, 4);
    dir
}

// ---- What the README shows, byte for byte -----------------------------------------

/// Compares `got` with `fixtures/tools/<name>` (`UPDATE_GOLDEN=1` writes it).
fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tools")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, got).unwrap();
    }
    let want = fs::read_to_string(&path).expect("golden file; UPDATE_GOLDEN=1 writes it");
    assert_eq!(got, want, "{name}");
}

/// Runs a README example in `cwd`: `args` after `wal-node`.
fn example(cwd: &Path, args: &[&str]) -> String {
    let out = wal_node().args(args).current_dir(cwd).output().unwrap();
    assert!(code(&out) <= 1, "{args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn readme_examples_match_their_golden_files() {
    let root = tempfile::tempdir().unwrap();
    let clean = logs::clean(&root.path().join("clean"), 20);
    let cwd = clean.parent().unwrap();
    golden(
        "inspect_range.txt",
        &example(cwd, &["inspect", "n1/", "--from", "7", "--to", "10"]),
    );

    let both = rotten_and_torn(&root.path().join("both"));
    let cwd = both.parent().unwrap();
    let status = ["inspect", "n1/", "--status", "corrupt", "--status", "torn"];
    golden("inspect_status.txt", &example(cwd, &status));
    golden(
        "inspect_prefix.txt",
        &example(cwd, &["inspect", "n1/", "--prefix", "set k4="]),
    );
    golden(
        "inspect_hex.txt",
        &example(cwd, &["inspect", "n1/", "--status", "torn", "--hex"]),
    );
    let seg0 = "n1/00000000000000000000.log";
    golden(
        "inspect_payload_hex.txt",
        &example(cwd, &["inspect", seg0, "--status", "corrupt", "--json"]),
    );

    // The node's names: WAL_DIR, or --dir, relative to where it is run.
    let wal = root.path().join("named");
    logs::torn_tail(&wal.join("wal"));
    let by_dir = example(&wal, &["verify", "--dir", "wal", "--node", "n1"]);
    golden("verify_dir_node.txt", &by_dir);
    let by_env = wal_node()
        .args(["verify", "--node", "n1"])
        .env("WAL_DIR", "wal")
        .current_dir(&wal)
        .output()
        .unwrap();
    assert_eq!(stdout(&by_env), by_dir);
}

/// The golden files the README shows: `readme_examples_match_their_golden_files`
/// writes the first six, `tests/tools.rs` the others.
const SHOWN: [&str; 8] = [
    "inspect_range.txt",
    "inspect_status.txt",
    "inspect_prefix.txt",
    "inspect_hex.txt",
    "inspect_payload_hex.txt",
    "verify_dir_node.txt",
    "inspect_segments.txt",
    "inspect_damaged.txt",
];

#[test]
fn the_readme_shows_each_golden_file_it_links_verbatim() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(base.join("README.md")).unwrap();
    let link = "](fixtures/tools/";
    let mut linked = Vec::new();
    for (at, _) in readme.match_indices(link) {
        let rest = &readme[at + link.len()..];
        let name = &rest[..rest.find(')').unwrap()];
        // The output block is the first plain fence after the link.
        let (_, block) = rest
            .split_once("\n```\n")
            .unwrap_or_else(|| panic!("no block after the link to {name}"));
        let shown = &block[..block.find("```\n").unwrap()];
        let golden = fs::read_to_string(base.join("fixtures/tools").join(name)).unwrap();
        assert_eq!(
            shown, golden,
            "README.md's block after fixtures/tools/{name}"
        );
        linked.push(name.to_owned());
    }
    for name in SHOWN {
        assert!(
            linked.iter().any(|l| l == name),
            "README.md shows no {name}"
        );
    }
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
