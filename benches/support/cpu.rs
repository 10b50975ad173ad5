//! The "CPU per append" row: user + system CPU time of the node while it
//! serves the pipelined appends, divided by the appends (issue 11).
//!
//! Read from the process's CPU-time clock (`clock_getcpuclockid`: every
//! thread, user and system, in nanoseconds) after `init` and after the last
//! reply, so neither start-up nor exit counts. `/proc/<pid>/stat` counts in
//! 10 ms ticks, 0.1 µs per append over 100,000 appends: too coarse for a
//! 0.8 µs goal, so it is only the fallback.

use super::report::{Row, count};
use std::time::Duration;

/// Most CPU time per pipelined append (issue 11).
const GOAL: Duration = Duration::from_nanos(800);

/// CPU time (user + system, all threads) process `pid` has used so far.
pub fn used(pid: u32) -> Option<Duration> {
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both pointers are to live locals of the right types.
    let read = unsafe {
        libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) == 0
            && libc::clock_gettime(clock, &mut now) == 0
    };
    if read {
        return Some(Duration::new(now.tv_sec as u64, now.tv_nsec as u32));
    }
    from_proc_stat(pid)
}

/// utime + stime from `/proc/<pid>/stat`, in clock ticks.
fn from_proc_stat(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// CPU time `pid` used since `before` (a reading of `used`).
pub fn since(pid: u32, before: Option<Duration>) -> Option<Duration> {
    Some(used(pid)?.saturating_sub(before?))
}

/// The row, from each round's CPU time for `appends` appends (the least
/// is kept, as the pipelined row keeps its best round) and the fdatasyncs
/// counted for as many appends under strace.
pub fn row(rounds: &[Option<Duration>], appends: usize, syncs: Option<u64>) -> Row {
    let what = format!(
        "user+system CPU time of wal-node serving the pipelined row's {} appends of 100 B (its \
         process CPU clock, read after init and after the last reply) per append; syncs per \
         append from the strace run",
        count(appends as f64)
    );
    let goal = format!("≤ {} µs", micros(GOAL));
    let syncs = match syncs {
        Some(s) => format!("{:.5} syncs/append", s as f64 / appends as f64),
        None => "syncs/append n/a (no usable strace)".into(),
    };
    let totals: Vec<Duration> = rounds.iter().flatten().copied().collect();
    let (Some(&least), Some(&most)) = (totals.iter().min(), totals.iter().max()) else {
        return Row::checked(
            "CPU per append",
            &what,
            format!("n/a (no CPU clock or /proc/<pid>/stat); {syncs}"),
            "—".into(),
            goal,
            false,
        );
    };
    let per_append = |total: Duration| total / appends as u32;
    let best = per_append(least);
    Row::checked(
        "CPU per append",
        &what,
        format!(
            "{} µs ({:.0} ms for {} appends; rounds {}–{} µs); {syncs}",
            micros(best),
            least.as_secs_f64() * 1e3,
            count(appends as f64),
            micros(best),
            micros(per_append(most))
        ),
        format!("{:.2} × goal", best.as_secs_f64() / GOAL.as_secs_f64()),
        goal,
        best <= GOAL,
    )
}

/// `0.62` for 620 ns.
fn micros(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}
