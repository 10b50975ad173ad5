//! What `repair` will do to a log directory, decided from its survey before
//! anything changes: which index files to rebuild, and whether the log must
//! end early because a sealed segment cannot stay as it is. Damage that
//! repair cannot undo (offsets held twice, offsets missing before the first
//! segment) is refused, in words.

use super::index_check::IndexState;
use super::log_dir::MetaState;
use super::survey::Survey;
use crate::count;
use crate::recovery::{self, Decision, Recover};
use std::cmp::Ordering;

/// Where the log must end because a sealed segment cannot stay as it is
/// (an index into `Survey::segments`).
#[derive(Clone, Copy)]
pub enum End {
    /// The segment's frames do not scan whole: cut it at the damage.
    Damage(usize),
    /// The segment holds fewer entries than the next one's start says.
    Gap(usize),
}

impl End {
    pub fn segment(self) -> usize {
        match self {
            End::Damage(i) | End::Gap(i) => i,
        }
    }
}

/// What repair will do, decided before anything changes.
pub struct Plan {
    /// Segments whose index is rebuilt.
    pub rebuild: Vec<usize>,
    pub end: Option<End>,
}

impl Plan {
    /// `Err`: damage repair cannot undo, in words.
    pub fn of(survey: &Survey) -> Result<Plan, String> {
        let segments = &survey.dir.segments;
        if let (MetaState::Ok(meta), Some(first)) = (&survey.dir.meta, segments.first())
            && first.start > meta.first_offset
        {
            return Err(format!(
                "offsets {} to {} are missing before the first segment {}; restore it from a \
                 backup",
                meta.first_offset,
                first.start - 1,
                first.name()
            ));
        }
        let mut plan = Plan {
            rebuild: Vec::new(),
            end: None,
        };
        for (i, seg) in survey.segments.iter().enumerate() {
            let file = &segments[seg.k];
            let whole = recovery::decide(&seg.reports[0], Recover::Refuse) == Decision::Keep;
            let Some(next) = segments.get(seg.k + 1) else {
                // The active segment: an index beside it is the node's to
                // finish or remove, unless it passes its header and fails
                // the rest.
                if whole && matches!(seg.index, IndexState::Bad(_)) {
                    plan.rebuild.push(i);
                }
                break;
            };
            if !whole {
                plan.end = Some(End::Damage(i));
                break;
            }
            let frames = seg.frames.expect("whole framing has one stretch");
            match (file.start + frames).cmp(&next.start) {
                Ordering::Less => {
                    plan.end = Some(End::Gap(i));
                    break;
                }
                Ordering::Greater => {
                    return Err(format!(
                        "{} holds {}, past the start of {}: offsets {} to {} are held twice, and \
                         which copy is right cannot be told. Restore the segments from a backup; \
                         wal-node inspect {} shows both",
                        file.name(),
                        count(frames, "entry", "entries"),
                        next.name(),
                        next.start,
                        file.start + frames - 1,
                        survey.dir.path.display()
                    ));
                }
                Ordering::Equal => {}
            }
            if seg.index.is_damage() {
                plan.rebuild.push(i);
            }
        }
        Ok(plan)
    }
}
