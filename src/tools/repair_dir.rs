//! `wal-node repair DIR/<id>/`, under the lock a node takes on its log
//! directory:
//! - the active (last) segment's tail as for one file (`repair_tail`);
//! - a sealed segment's missing or bad index file rebuilt from the segment
//!   by the node's own code (`log::sealed::rebuild`: temporary file, fsync,
//!   rename, directory fsync);
//! - damage inside a sealed segment, or a gap where a segment is missing,
//!   is acknowledged entries lost: refused, saying what would be cut,
//!   unless `--allow-sealed`. The log then ends there, offsets staying
//!   dense: later segments are set aside from the last back (each rename
//!   durable before the next, so a crash leaves a shorter log that opens),
//!   its damaged tail is cut, saved beside it, and its index removed (it
//!   becomes the active segment).

use super::index_check::IndexState;
use super::log_dir::{self, LogDir, MetaState, SegmentFile};
use super::repair::{Args, locked, repair_tail};
use super::repair_plan::{End, Plan};
use super::survey::{SegmentSurvey, Survey};
use super::{DAMAGED, count, open_file};
use crate::log::names;
use crate::log::sealed::{self, Unusable};
use crate::log::store::Store;
use crate::recovery::Tail;
use anyhow::{Context, Result, bail};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub fn run(args: &Args, out: &mut dyn Write) -> Result<u8> {
    let path = &args.log.path;
    let name = path.display().to_string();
    let Some(lock) = log_dir::lock(path)? else {
        return Ok(locked(&name));
    };
    let dir = LogDir::read(path)?;
    let survey = Survey::of(dir, args.log.max_entry_bytes)?;
    writeln!(out, "{name}: {}", survey.summary.line())?;
    if let MetaState::Missing | MetaState::Damaged(_) = survey.dir.meta {
        crate::tool_stderr!(
            "repair",
            "refusing: {name} has no sound {}; repair does not rewrite it \
             (doc/format.md \"Metadata\" says what it holds): restore it from a backup",
            names::META
        );
        return Ok(DAMAGED);
    }
    for seg in &survey.segments[..survey.segments.len().saturating_sub(1)] {
        if seg.reports[0].corrupt_entries > 0 {
            writeln!(
                out,
                "{}: bit rot cannot be repaired: its entries stay in place and read back with \
                 checksum_valid=false",
                survey.dir.segments[seg.k].path.display()
            )?;
        }
    }
    let plan = match Plan::of(&survey) {
        Ok(plan) => plan,
        Err(why) => {
            crate::tool_stderr!("repair", "refusing: {why}");
            return Ok(DAMAGED);
        }
    };
    let repair = Repair {
        store: Store::Dir {
            path: path.clone(),
            _lock: lock,
        },
        survey: &survey,
        args,
    };
    if let Some(end) = plan.end {
        if !args.allow_sealed {
            crate::tool_stderr!("repair", "refusing: {}", repair.describe(end));
            return Ok(DAMAGED);
        }
        repair.rebuild_indexes(&plan.rebuild, out)?;
        return repair.end_log(end, out);
    }
    let Some(active) = survey.segments.last() else {
        writeln!(out, "{name}: no segment yet; nothing to do")?;
        return Ok(0);
    };
    let active_path = &survey.dir.segments[active.k].path;
    let report = &active.reports[0];
    if matches!(report.tail, Tail::BrokenFraming { .. }) && !args.truncate_at_damage {
        // Refused before anything else changes.
        let log = open_file(active_path, false, args.log.max_entry_bytes)?;
        return repair_tail(&log, active_path, report, false, args.dry_run, out);
    }
    repair.rebuild_indexes(&plan.rebuild, out)?;
    let log = open_file(active_path, !args.dry_run, args.log.max_entry_bytes)?;
    repair_tail(
        &log,
        active_path,
        report,
        args.truncate_at_damage,
        args.dry_run,
        out,
    )
}

struct Repair<'a> {
    /// The log directory, locked for as long as repair runs.
    store: Store,
    survey: &'a Survey,
    args: &'a Args,
}

impl Repair<'_> {
    fn file(&self, i: usize) -> &SegmentFile {
        &self.survey.dir.segments[self.survey.segments[i].k]
    }

    /// Offset one past the last entry the log would keep if it ended at
    /// `end`, and the first it would lose that it holds now.
    fn offsets(&self, end: End) -> (u64, u64) {
        let seg: &SegmentSurvey = &self.survey.segments[end.segment()];
        match end {
            End::Damage(_) => (seg.reports[0].end_index, seg.reports[0].end_index),
            End::Gap(i) => {
                let next = &self.survey.dir.segments[seg.k + 1];
                (self.file(i).start + seg.frames.expect("whole"), next.start)
            }
        }
    }

    /// The entries ending the log at `end` would lose, in words.
    fn lost(&self, end: End) -> String {
        let (_, first_lost) = self.offsets(end);
        let last = self.survey.segments.last().expect("a segment at least");
        let log_end = last.reports[0].end_index;
        if log_end > first_lost {
            format!("the entries from offset {first_lost} to {}", log_end - 1)
        } else {
            "no entry whose frame is whole".into()
        }
    }

    /// Why the log would have to end at `end`, and what that would cost.
    fn describe(&self, end: End) -> String {
        let i = end.segment();
        let file = self.file(i);
        let dir = self.survey.dir.path.display();
        let later = self.survey.dir.segments.len() - self.survey.segments[i].k - 1;
        let (new_end, _) = self.offsets(end);
        let lost = self.lost(end);
        let set_aside = format!(
            "set aside {} (renamed <segment>.log.torn-0)",
            count(later as u64, "later segment", "later segments")
        );
        match end {
            End::Damage(_) => {
                let report = &self.survey.segments[i].reports[0];
                let what = match report.tail {
                    Tail::Torn { reason, .. } => format!("a torn tail ({reason})"),
                    Tail::BrokenFraming { defect, .. } => format!("broken framing ({defect})"),
                    Tail::Clean | Tail::Zeros { .. } => unreachable!("a damaged segment"),
                };
                format!(
                    "{} is a sealed segment with {what} at byte offset {}; a sealed segment holds \
                     acknowledged entries only, so repair does not change it on its own. Ending \
                     the log there would cut the {} bytes from byte offset {} on (saved beside \
                     it) and {set_aside}: the log would keep the entries before offset {new_end}, \
                     losing {lost}. \
                     To accept that loss rerun with --allow-sealed; to restore the segment \
                     instead, copy it back from a backup and run wal-node verify {dir}; to look \
                     first: wal-node inspect {dir}",
                    file.path.display(),
                    report.data_end,
                    report.damaged_bytes(),
                    report.data_end,
                )
            }
            End::Gap(_) => {
                let next = &self.survey.dir.segments[self.survey.segments[i].k + 1];
                format!(
                    "offsets {new_end} to {} are missing: {} ends at offset {} but the next \
                     segment is {} (a segment file removed?). Restore the missing segment from \
                     a backup if you can. To give up the entries after the gap instead, rerun \
                     with --allow-sealed: it would {set_aside}, and the log would keep the \
                     entries before offset {new_end}, losing {lost}",
                    next.start - 1,
                    file.name(),
                    new_end.saturating_sub(1),
                    next.name()
                )
            }
        }
    }

    /// Rebuilds the index files of segments `which` (or says it would).
    fn rebuild_indexes(&self, which: &[usize], out: &mut dyn Write) -> Result<()> {
        for &i in which {
            let seg = &self.survey.segments[i];
            let file = self.file(i);
            let why = match &seg.index {
                IndexState::Missing => "missing".to_string(),
                other => format!("bad ({})", other.defect().unwrap_or("unsound")),
            };
            if self.args.dry_run {
                writeln!(
                    out,
                    "{}: index {why}; would rebuild {} from the segment",
                    file.path.display(),
                    file.index_name()
                )?;
                continue;
            }
            let entries = match self.survey.dir.segments.get(seg.k + 1) {
                Some(next) => next.start - file.start,
                None => seg.reports[0].entries(),
            };
            // Writable: a rebuild drops zeros a seal's cut left after the frames.
            let segment = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&file.path)
                .with_context(|| format!("cannot open {}", file.path.display()))?;
            let mut events = Vec::new();
            let rebuilt = sealed::rebuild(
                &self.store,
                segment,
                file.start,
                entries,
                &why,
                self.args.log.max_entry_bytes,
                &mut events,
            )
            .with_context(|| format!("rebuilding {}", file.index_name()))?;
            if let Err(Unusable(why)) = rebuilt {
                bail!("cannot rebuild {}: {why}", file.index_name());
            }
            for event in events {
                writeln!(out, "{event}")?;
            }
        }
        Ok(())
    }

    /// Ends the log at `end` (or says how it would), the operator having
    /// accepted it with --allow-sealed.
    fn end_log(&self, end: End, out: &mut dyn Write) -> Result<u8> {
        let i = end.segment();
        let k = self.survey.segments[i].k;
        let file = self.file(i);
        let dry_run = self.args.dry_run;
        for later in self.survey.dir.segments[k + 1..].iter().rev() {
            let shown = later.path.display();
            if dry_run {
                writeln!(out, "{shown}: would set it aside as {shown}.torn-0")?;
                continue;
            }
            let to = self
                .set_aside(later)
                .with_context(|| format!("setting {shown} aside"))?;
            writeln!(
                out,
                "{shown}: set aside as {}: entries from offset {} on are no longer in the log",
                to.display(),
                later.start
            )?;
        }
        // Cut before the index goes: if the cut fails, the segment is still
        // whole to a node (sealed, its damage found where read); a crash
        // after it leaves an index that no longer matches: removed at open.
        if let End::Damage(_) = end {
            let report = &self.survey.segments[i].reports[0];
            let log = open_file(&file.path, !dry_run, self.args.log.max_entry_bytes)?;
            repair_tail(&log, &file.path, report, true, dry_run, out)?;
        }
        if let Some(index) = &file.index {
            if dry_run {
                writeln!(out, "{}: would remove it", index.display())?;
            } else {
                remove_durably(&self.store, index)?;
                writeln!(
                    out,
                    "{}: removed: {} is the active segment now",
                    index.display(),
                    file.name()
                )?;
            }
        }
        let (new_end, _) = self.offsets(end);
        let verb = if dry_run { "would keep" } else { "now keeps" };
        writeln!(
            out,
            "{}: the log {verb} the entries before offset {new_end}; the next append gets \
             offset {new_end}",
            self.survey.dir.path.display()
        )?;
        Ok(0)
    }

    /// Renames a segment to `<segment>.log.torn-0` (`.torn-0.N` if taken):
    /// cut from byte 0, kept as evidence, ignored by the node. Its index is
    /// removed, and the directory synced.
    fn set_aside(&self, seg: &SegmentFile) -> io::Result<PathBuf> {
        let base = format!("{}.torn-0", seg.path.display());
        let to = (0..)
            .map(|n| match n {
                0 => PathBuf::from(&base),
                n => PathBuf::from(format!("{base}.{n}")),
            })
            .find(|p| !p.exists())
            .expect("some suffix is free");
        std::fs::rename(&seg.path, &to)?;
        if let Some(index) = &seg.index {
            remove_durably(&self.store, index)?;
        }
        self.store.sync_dir()?;
        Ok(to)
    }
}

/// Removes `path` (gone already is fine) and syncs the directory.
fn remove_durably(store: &Store, path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    store.sync_dir()
}
