//! The table and the machine it was measured on.

use std::fmt;
use std::path::Path;
use std::time::Duration;

pub struct Row {
    name: String,
    what: String,
    measured: String,
    ratio: String,
    goal: String,
    result: &'static str,
}

impl Row {
    /// A row that is a yardstick for others, with no goal of its own.
    pub fn reference(name: &str, what: &str, measured: String) -> Row {
        Row {
            name: name.into(),
            what: what.into(),
            measured,
            ratio: "—".into(),
            goal: "(reference)".into(),
            result: "—",
        }
    }

    pub fn checked(
        name: &str,
        what: &str,
        measured: String,
        ratio: String,
        goal: impl Into<String>,
        pass: bool,
    ) -> Row {
        Row {
            name: name.into(),
            what: what.into(),
            measured,
            ratio,
            goal: goal.into(),
            result: if pass { "PASS" } else { "FAIL" },
        }
    }
}

#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "| row | what | measured | ratio | goal | result |")?;
        writeln!(f, "| --- | --- | --- | --- | --- | --- |")?;
        for r in &self.rows {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} |",
                r.name, r.what, r.measured, r.ratio, r.goal, r.result
            )?;
        }
        Ok(())
    }
}

/// `12345.6` as `12,346`.
pub fn count(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The lowest and highest of `ratios` (each round's own), as `0.91–1.18`.
pub fn spread(ratios: &[f64], decimals: usize) -> String {
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(0.0, f64::max);
    format!("{lo:.decimals$}–{hi:.decimals$}")
}

/// The middle of an odd number of measurements (the upper middle of an
/// even number).
pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// A duration in milliseconds, as `12.34 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// CPUs, memory, kernel, and the filesystem the bench directory is on.
pub fn machine_description(dir: &Path) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".into(), |(_, m)| m.trim().to_owned());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let mounts = read("/proc/self/mounts");
    let mut mount = None;
    let mut longest = 0;
    for fields in mounts.lines().map(|l| l.split(' ').collect::<Vec<_>>()) {
        let [device, point, fstype, options, ..] = fields[..] else {
            continue;
        };
        let point = point.replace("\\040", " ");
        if dir.starts_with(&point) && point.len() >= longest {
            longest = point.len();
            mount = Some(format!(
                "{device}, {fstype} ({options}), mounted at {point}"
            ));
        }
    }
    format!(
        "Machine: {cpus} CPUs (nproc), {model}, {:.1} GiB RAM, Linux {kernel}.\n\
         Bench directory: {} on {}.\n\
         Command: cargo bench --bench wal\n",
        mem_kib as f64 / (1 << 20) as f64,
        dir.display(),
        mount.as_deref().unwrap_or("an unknown filesystem")
    )
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
