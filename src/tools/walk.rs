//! Walking a whole log file in file order, past broken framing.

use super::Log;
use crate::frame::HeaderDefect;
use crate::recovery::{self, FrameStatus as Status, FrameView, ScanReport, Tail};
use std::io;

/// One thing a walk meets, in file order.
pub enum Row<'a> {
    /// A frame whose framing is intact. `frame.index` counts the frames met
    /// so far; after broken framing (`after_damage`) it is a guess, since the
    /// damaged bytes may have held any number of frames.
    Frame {
        frame: &'a FrameView<'a>,
        status: Status,
        after_damage: bool,
    },
    /// Broken framing: bytes `[pos, end)` hold no frame that parses.
    /// `resumed`: whole frames follow from `end` on; if not, the search for
    /// one gave up and `end` is the end of the non-zero data.
    Damage {
        pos: u64,
        end: u64,
        resumed: bool,
        defect: HeaderDefect,
    },
}

/// Walks all of `log`: scans it as replay does and, where broken framing
/// stops the scan, reports the damaged range and scans again from the next
/// whole frame, so damage hides nothing behind it.
///
/// Returns each stretch's report in file order: the first is what replay
/// sees, the last holds the file's tail. The first error `on` returns stops
/// further calls and is returned once the scan ends.
pub fn walk(log: &Log, mut on: impl FnMut(Row) -> io::Result<()>) -> io::Result<Vec<ScanReport>> {
    let mut reports = Vec::new();
    let (mut start, mut next_index, mut after_damage) = (0, log.first_index, false);
    let mut failed = None;
    let mut emit = |row: Row| {
        if failed.is_none() {
            failed = on(row).err();
        }
    };
    loop {
        let scan = |visit: &mut dyn FnMut(&FrameView)| {
            recovery::scan(
                &log.file,
                log.len,
                start,
                next_index,
                log.max_entry_bytes,
                visit,
            )
        };
        // A frame's status depends on what follows it, so learn the
        // stretch's report first, then read it again to classify its frames.
        let report = scan(&mut |_| {})?;
        let mut last_index = None;
        scan(&mut |frame| {
            last_index = Some(frame.index);
            let status = report.status_of(frame);
            emit(Row::Frame {
                frame,
                status,
                after_damage,
            });
        })?;
        next_index = last_index.map_or(next_index, |i| i + 1);
        let tail = report.tail;
        reports.push(report);
        match tail {
            Tail::BrokenFraming {
                pos,
                defect,
                resync_at,
            } => {
                let damaged_end = reports.last().expect("just pushed").damaged_end;
                emit(Row::Damage {
                    pos,
                    end: resync_at.unwrap_or(damaged_end),
                    resumed: resync_at.is_some(),
                    defect,
                });
                let Some(resync_at) = resync_at else { break };
                start = resync_at;
                after_damage = true;
            }
            _ => break,
        }
    }
    failed.map_or(Ok(reports), Err)
}
