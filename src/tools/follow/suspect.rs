//! A bad checksum or header in the active segment: a write still being
//! copied in, or damage? A write lands in a moment; damage stays. So a bad
//! frame is shown as damage only once the very same bytes (position,
//! header, computed checksum) have been seen bad for `CONFIRM_AFTER`.

use crate::frame::Header;
use std::time::{Duration, Instant};

/// How long the same bytes must stay bad to count as damage: far longer
/// than a write takes, even one the kernel throttles.
pub const CONFIRM_AFTER: Duration = Duration::from_secs(1);

/// What a round saw at a bad spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    pub pos: u64,
    pub header: Header,
    /// The payload's checksum as read (0 for a header that frames nothing).
    pub crc_computed: u32,
}

/// The bad spot under watch, if any, and since when.
#[derive(Debug, Default)]
pub struct Suspicion(Option<(Sighting, Instant)>);

impl Suspicion {
    /// Whether `seen` is damage: the same bytes were first seen bad at least
    /// `CONFIRM_AFTER` before `now`. If not, `seen` is what is watched now
    /// (keeping its first sighting if it is the one already watched).
    pub fn confirms(&mut self, seen: Sighting, now: Instant) -> bool {
        match self.0 {
            Some((watched, since)) if watched == seen => {
                now.saturating_duration_since(since) >= CONFIRM_AFTER
            }
            _ => {
                self.0 = Some((seen, now));
                false
            }
        }
    }

    /// Nothing bad in sight.
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(pos: u64, crc_computed: u32) -> Sighting {
        Sighting {
            pos,
            header: Header { length: 5, crc: 7 },
            crc_computed,
        }
    }

    #[test]
    fn the_same_bytes_bad_for_long_enough_are_damage() {
        let t0 = Instant::now();
        let mut s = Suspicion::default();
        assert!(!s.confirms(seen(100, 1), t0));
        assert!(!s.confirms(seen(100, 1), t0 + CONFIRM_AFTER / 2));
        assert!(s.confirms(seen(100, 1), t0 + CONFIRM_AFTER));
    }

    #[test]
    fn bytes_that_changed_start_the_wait_again() {
        let t0 = Instant::now();
        let mut s = Suspicion::default();
        assert!(!s.confirms(seen(100, 1), t0));
        // Still being written: other bytes at the same place.
        assert!(!s.confirms(seen(100, 2), t0 + CONFIRM_AFTER));
        assert!(!s.confirms(seen(100, 2), t0 + CONFIRM_AFTER * 3 / 2));
        assert!(s.confirms(seen(100, 2), t0 + CONFIRM_AFTER * 2));
        assert!(!s.confirms(seen(200, 2), t0 + CONFIRM_AFTER * 3));
    }
}
