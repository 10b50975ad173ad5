//! `wal-node inspect --follow`: print a log's entries as a running node
//! appends them, across segment rolls, until interrupted.
//!
//! Only synced entries are shown: each round reads what is new, then
//! `fdatasync`s the segment through its own read-only descriptor, and only
//! then prints what it read, so a shown entry survives a power cut. It never
//! takes the node's lock and never writes a file. Rounds are `--interval-ms`
//! apart (back to back only while catching up), so it syncs at most once
//! per interval once it has caught up.
//!
//! The active segment may be mid-`write` while a round reads it, so a bad
//! checksum or header there is shown only once the same bytes have stayed
//! bad for a while (`suspect`); a torn tail is never shown, as replay never
//! keeps it. A sealed segment's bytes are final: it is shown as `inspect`
//! shows it, damage and all (`Follower::show_sealed`).

mod follower;
mod suspect;
#[cfg(test)]
mod tests;

use super::inspect::{Args, Rows};
use super::interrupt;
use anyhow::Result;
use follower::{Follower, Round};
use std::io::{self, Write};
use std::time::{Duration, Instant};

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    interrupt::catch_stop_signals();
    let interval = Duration::from_millis(args.interval_ms);
    let mut held = HeldUntilSynced {
        buf: Vec::new(),
        sink: out,
    };
    let mut rows = Rows::new(args, &mut held);
    rows.header()?;
    rows.out.flush()?;
    let Some(mut follower) = Follower::start(args, interval)? else {
        return Ok(0);
    };
    rows.compacted_below = follower.first_offset;
    follower.enter(&mut rows)?;
    while !stopping(&rows) {
        let round = follower.round(&mut rows, Instant::now())?;
        rows.out.flush()?;
        let moved = round == Round::Finished && follower.move_on(&mut rows)?;
        rows.out.flush()?;
        if !moved && round != Round::MoreToRead {
            pause(interval);
        }
    }
    rows.out.flush()?;
    Ok(0)
}

fn stopping(rows: &Rows) -> bool {
    rows.full() || interrupt::stop_requested() || interrupt::reader_gone()
}

/// Waits `interval`, or less if the follower is asked to stop.
pub(super) fn pause(interval: Duration) {
    const SLICE: Duration = Duration::from_millis(20);
    let until = Instant::now() + interval;
    while !interrupt::stop_requested() && !interrupt::reader_gone() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(SLICE));
    }
}

/// Output kept back until the bytes it shows are synced: `flush` releases
/// it. (`Rows` never flushes on its own.)
struct HeldUntilSynced<'a> {
    buf: Vec<u8>,
    sink: &'a mut dyn Write,
}

impl Write for HeldUntilSynced<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // A stop signal while this blocks (a reader not reading) ends the
        // process at once: see `interrupt`.
        interrupt::while_writing(|| {
            self.sink.write_all(&self.buf)?;
            self.sink.flush()
        })?;
        self.buf.clear();
        Ok(())
    }
}
