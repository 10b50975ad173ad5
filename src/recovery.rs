//! Replay: read a log file front to back and classify what it holds.
//!
//! One scan serves the node (which builds its index from it) and the
//! operator tools (which print it). The rules, from README "Crash safety":
//! - a frame whose CRC matches is whole;
//! - a frame whose CRC fails but after which a whole frame follows through
//!   intact framing is bit rot in acknowledged data: kept, counted corrupt;
//! - CRC failures with nothing but zeros or end of file after them, a short
//!   frame at the end, or a bad header with no whole frame anywhere after
//!   it, are a torn tail: a write that was never acknowledged;
//! - a bad header with a whole frame somewhere after it is broken framing in
//!   acknowledged data, which replay must refuse to paper over;
//! - a zero length word followed only by zeros is the end of the log.

use crate::frame::{HEADER_LEN, Header, HeaderDefect, checksum};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Size of each sequential read during replay.
const CHUNK: usize = 8 << 20;

/// A frame whose framing is intact, as the scan meets it.
pub struct FrameView<'a> {
    pub index: u64,
    /// Byte position of the frame in its file.
    pub pos: u64,
    pub header: Header,
    pub crc_computed: u32,
    pub payload: &'a [u8],
}

impl FrameView<'_> {
    pub fn crc_ok(&self) -> bool {
        self.header.crc == self.crc_computed
    }
}

/// What replay makes of a frame whose framing is intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// Its CRC matches.
    Ok,
    /// Its CRC fails inside the log: damaged acknowledged data.
    Corrupt,
    /// Its CRC fails in a torn tail: a write that was never acknowledged.
    Torn,
}

impl FrameStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FrameStatus::Ok => "ok",
            FrameStatus::Corrupt => "corrupt",
            FrameStatus::Torn => "torn",
        }
    }
}

/// Why the bytes after the last whole frame are a torn write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TornReason {
    /// Fewer than 8 bytes, not all zero, after the last frame.
    ShortHeader,
    /// A header whose frame cannot be right, with no whole frame after it.
    BadHeader(HeaderDefect),
    /// Frames whose CRC fails with only zeros or end of file after them.
    ChecksumMismatch,
}

impl std::fmt::Display for TornReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TornReason::ShortHeader => f.write_str("header cut short by end of file"),
            TornReason::BadHeader(d) => write!(f, "{d}, and no whole frame follows"),
            TornReason::ChecksumMismatch => {
                f.write_str("checksum mismatch with nothing but zeros after it")
            }
        }
    }
}

/// What lies after the last frame replay keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// The file ends exactly at the last frame.
    Clean,
    /// Only zero bytes follow: free space (a preallocated or zero-filled tail).
    Zeros { len: u64 },
    /// Unacknowledged bytes `[data_end, data_end + len)` to cut; the last of
    /// them is non-zero, and only zeros (if anything) follow.
    Torn { len: u64, reason: TornReason },
    /// A bad header at byte `pos` although a whole frame starts at `resync_at`
    /// (`None`: the search for one ran out of budget, so one may): acknowledged
    /// data is damaged and replay must not open the log.
    BrokenFraming {
        pos: u64,
        defect: HeaderDefect,
        resync_at: Option<u64>,
    },
}

/// What replay does with broken framing inside the log (`--recover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Recover {
    /// Refuse to open: the damage may be acknowledged data.
    #[default]
    Refuse,
    /// Cut the log at the damage, saving the cut bytes beside it.
    Truncate,
}

/// What replay does with a scanned file: the one policy the node and the
/// tools share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Whole frames (bit rot among them is kept and flagged), then nothing
    /// or zeros: open as it is.
    Keep,
    /// A torn tail, never acknowledged: cut it, saving the bytes.
    CutTorn,
    /// Broken framing the operator accepted to lose: cut, saving the bytes.
    CutDamage,
    /// Broken framing: the damage may be acknowledged data; change nothing.
    Refuse,
}

pub fn decide(report: &ScanReport, recover: Recover) -> Decision {
    match report.tail {
        Tail::Clean | Tail::Zeros { .. } => Decision::Keep,
        Tail::Torn { .. } => Decision::CutTorn,
        Tail::BrokenFraming { .. } if recover == Recover::Truncate => Decision::CutDamage,
        Tail::BrokenFraming { .. } => Decision::Refuse,
    }
}

/// Where whole frames resume after broken framing, in words.
pub fn resumption(resync_at: Option<u64>) -> String {
    match resync_at {
        Some(at) => format!("whole frames resume at byte offset {at}"),
        None => "whether whole frames follow is unknown: the search for one gave up".into(),
    }
}

/// Bytes of CRC work a scan may spend searching for whole frames after
/// damage, beyond twice the file's size: a payload crafted to look like
/// frame headers at every position would otherwise make replay quadratic.
const SEARCH_BUDGET: u64 = 64 << 20;

/// What a search for a whole frame found.
enum Search {
    Found(u64),
    Nothing,
    GaveUp,
}

/// The outcome of one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Index of the first frame scanned (0 from the start of a file).
    pub first_index: u64,
    /// Index one past the last frame kept.
    pub end_index: u64,
    /// Byte position one past the last frame kept: where a cut would start.
    pub data_end: u64,
    /// Kept frames whose CRC fails (bit rot).
    pub corrupt_entries: u64,
    pub tail: Tail,
    /// One past the last byte a cut at `data_end` would save: past every
    /// frame begun after `data_end` and its last non-zero byte. The zeros
    /// after it are free space. `data_end` when there is nothing to cut.
    pub damaged_end: u64,
}

impl ScanReport {
    pub fn entries(&self) -> u64 {
        self.end_index - self.first_index
    }

    /// The status of a frame this scan visited: only a torn tail makes
    /// frames past `data_end` torn; any other CRC failure is corruption.
    pub fn status_of(&self, frame: &FrameView) -> FrameStatus {
        if frame.crc_ok() {
            FrameStatus::Ok
        } else if frame.pos >= self.data_end && matches!(self.tail, Tail::Torn { .. }) {
            FrameStatus::Torn
        } else {
            FrameStatus::Corrupt
        }
    }

    /// Bytes after `data_end` that are not free space (what a cut would save).
    pub fn damaged_bytes(&self) -> u64 {
        self.damaged_end - self.data_end
    }
}

/// Scans `file` (of `file_len` bytes) from byte `start`, numbering the first
/// frame `first_index`. `visit` sees every frame with intact framing in file
/// order, including ones the report later places past `data_end`.
pub fn scan(
    file: &File,
    file_len: u64,
    start: u64,
    first_index: u64,
    max_entry_bytes: u32,
    mut visit: impl FnMut(&FrameView),
) -> io::Result<ScanReport> {
    let mut src = Window::new(file, file_len);
    let mut pos = start;
    let mut index = first_index;
    // The kept log so far, and the run of CRC failures since, whose fate
    // depends on whether a whole frame follows them.
    let (mut data_end, mut end_index, mut corrupt, mut suspects) = (start, first_index, 0, 0);
    // End of the last frame (even a partial one) met: a torn tail spans at
    // least this far, even where its own bytes happen to be zero.
    let mut frame_end = start;

    let tail = loop {
        let remaining = file_len - pos;
        if remaining == 0 {
            break torn_or(suspects, Tail::Clean);
        }
        if remaining < HEADER_LEN as u64 {
            if src.all_zero(pos)? {
                break torn_or(suspects, zeros(file_len, pos));
            }
            frame_end = file_len;
            break Tail::Torn {
                len: 0,
                reason: TornReason::ShortHeader,
            };
        }
        let header = Header::decode(src.bytes(pos, HEADER_LEN)?);
        let defect = match header.defect(pos, file_len, max_entry_bytes) {
            // Written under a larger --max-entry-bytes: the limit is for new
            // appends, and a frame whose CRC matches is whole, not damage.
            Some(HeaderDefect::TooLong)
                if header.defect(pos, file_len, u32::MAX).is_none()
                    && src.checksum(pos + HEADER_LEN as u64, header.length.into())?
                        == header.crc =>
            {
                None
            }
            other => other,
        };
        if let Some(defect) = defect {
            if defect == HeaderDefect::ZeroLength && src.all_zero(pos)? {
                break torn_or(suspects, zeros(file_len, pos));
            }
            if defect == HeaderDefect::PastEndOfFile {
                frame_end = file_len;
            }
            let broken = |resync_at| Tail::BrokenFraming {
                pos,
                defect,
                resync_at,
            };
            break match resync(&mut src, pos + 1, file_len, max_entry_bytes)? {
                Search::Found(at) => broken(Some(at)),
                Search::GaveUp => broken(None),
                Search::Nothing => Tail::Torn {
                    len: 0,
                    reason: TornReason::BadHeader(defect),
                },
            };
        }
        let crc_computed = checksum(src.bytes(pos + HEADER_LEN as u64, header.length as usize)?);
        if crc_computed != header.crc {
            // A whole frame inside the bytes this length word claims means
            // the word is wrong: reading on from its end would skip (or cut)
            // acknowledged frames and shift every offset after them.
            let claimed_end = pos + header.frame_len();
            let resync_at = match resync(&mut src, pos + 1, claimed_end, max_entry_bytes)? {
                Search::Nothing => None,
                Search::Found(at) => Some(Some(at)),
                Search::GaveUp => Some(None),
            };
            if let Some(resync_at) = resync_at {
                break Tail::BrokenFraming {
                    pos,
                    defect: HeaderDefect::SwallowsWholeFrame,
                    resync_at,
                };
            }
        }
        let frame = FrameView {
            index,
            pos,
            header,
            crc_computed,
            payload: src.bytes(pos + HEADER_LEN as u64, header.length as usize)?,
        };
        visit(&frame);
        index += 1;
        pos += header.frame_len();
        frame_end = pos;
        if frame.crc_ok() {
            corrupt += suspects;
            suspects = 0;
            data_end = pos;
            end_index = index;
        } else {
            suspects += 1;
        }
    };
    let (tail, damaged_end) = match tail {
        Tail::Clean | Tail::Zeros { .. } => (tail, data_end),
        Tail::Torn { reason, .. } => {
            let end = src.last_nonzero_end(data_end)?.max(frame_end);
            let len = end - data_end;
            (Tail::Torn { len, reason }, end)
        }
        Tail::BrokenFraming { .. } => (tail, src.last_nonzero_end(data_end)?.max(frame_end)),
    };
    Ok(ScanReport {
        first_index,
        end_index,
        data_end,
        corrupt_entries: corrupt,
        tail,
        damaged_end,
    })
}

/// What ends the log when nothing but zeros (or nothing) follows: a torn
/// tail if frames whose CRC fails came last, else `otherwise`. (A CRC
/// failure with a whole frame inside it never gets here: broken framing.)
fn torn_or(suspects: u64, otherwise: Tail) -> Tail {
    if suspects > 0 {
        Tail::Torn {
            len: 0,
            reason: TornReason::ChecksumMismatch,
        }
    } else {
        otherwise
    }
}

fn zeros(file_len: u64, pos: u64) -> Tail {
    Tail::Zeros {
        len: file_len - pos,
    }
}

/// The first position in `[from, before)` where a whole frame starts.
///
/// Byte by byte: only reached on a damaged file, and most positions are
/// rejected by the length word before any CRC is computed.
fn resync(src: &mut Window, from: u64, before: u64, max_entry_bytes: u32) -> io::Result<Search> {
    let file_len = src.file_len;
    let mut pos = from;
    while pos < before && pos + HEADER_LEN as u64 <= file_len {
        let header = Header::decode(src.bytes(pos, HEADER_LEN)?);
        if header.defect(pos, file_len, max_entry_bytes).is_none() {
            let Some(left) = src.search_budget.checked_sub(header.length.into()) else {
                return Ok(Search::GaveUp);
            };
            src.search_budget = left;
            let payload = src.bytes(pos + HEADER_LEN as u64, header.length as usize)?;
            if checksum(payload) == header.crc {
                return Ok(Search::Found(pos));
            }
        }
        pos += 1;
    }
    Ok(Search::Nothing)
}

/// Sequential, chunked access to a file by absolute byte position.
struct Window<'f> {
    file: &'f File,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
    /// CRC work left for `resync`, shared by every search in one scan.
    search_budget: u64,
}

impl<'f> Window<'f> {
    fn new(file: &'f File, file_len: u64) -> Self {
        Window {
            file,
            file_len,
            buf: Vec::new(),
            buf_start: 0,
            search_budget: SEARCH_BUDGET + 2 * file_len,
        }
    }

    /// Bytes `[pos, pos + len)`, which the caller knows lie inside the file.
    fn bytes(&mut self, pos: u64, len: usize) -> io::Result<&[u8]> {
        let end = pos + len as u64;
        let loaded_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || end > loaded_end {
            let want = (len.max(CHUNK) as u64).min(self.file_len - pos) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let at = (pos - self.buf_start) as usize;
        Ok(&self.buf[at..at + len])
    }

    /// CRC-32 of `[from, from + len)`, read in chunks so that a length word
    /// is never trusted with an allocation before its CRC is known.
    fn checksum(&mut self, from: u64, len: u64) -> io::Result<u32> {
        let mut hasher = crc32fast::Hasher::new();
        let mut pos = from;
        while pos < from + len {
            let n = (CHUNK as u64).min(from + len - pos) as usize;
            hasher.update(self.bytes(pos, n)?);
            pos += n as u64;
        }
        Ok(hasher.finalize())
    }

    fn all_zero(&mut self, from: u64) -> io::Result<bool> {
        Ok(self.last_nonzero_end(from)? == from)
    }

    /// One past the last non-zero byte at or after `from`, or `from` if none.
    fn last_nonzero_end(&mut self, from: u64) -> io::Result<u64> {
        let mut end = from;
        let mut pos = from;
        while pos < self.file_len {
            let len = (CHUNK as u64).min(self.file_len - pos) as usize;
            if let Some(i) = self.bytes(pos, len)?.iter().rposition(|&b| b != 0) {
                end = pos + i as u64 + 1;
            }
            pos += len as u64;
        }
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode;
    use std::io::Write;

    const MAX: u32 = 1 << 20;

    fn scan_bytes(bytes: &[u8]) -> (ScanReport, Vec<(u64, bool)>) {
        scan_with_limit(bytes, MAX)
    }

    fn scan_with_limit(bytes: &[u8], max: u32) -> (ScanReport, Vec<(u64, bool)>) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        let mut seen = Vec::new();
        let report = scan(&file, bytes.len() as u64, 0, 0, max, |f| {
            seen.push((f.pos, f.crc_ok()))
        })
        .unwrap();
        (report, seen)
    }

    fn log(payloads: &[&str]) -> Vec<u8> {
        payloads.iter().flat_map(|p| encode(p.as_bytes())).collect()
    }

    #[test]
    fn clean_log_and_empty_file() {
        let bytes = log(&["a", "bb", "ccc"]);
        let (r, seen) = scan_bytes(&bytes);
        assert_eq!(
            (r.entries(), r.data_end, r.tail),
            (3, 9 + 10 + 11, Tail::Clean)
        );
        assert_eq!(seen, [(0, true), (9, true), (19, true)]);
        let (r, _) = scan_bytes(&[]);
        assert_eq!((r.entries(), r.tail), (0, Tail::Clean));
    }

    #[test]
    fn zero_tail_is_free_space_of_any_length() {
        for zeros in [1, 7, 8, 4096] {
            let mut bytes = log(&["a", "bb"]);
            bytes.extend(vec![0; zeros]);
            let (r, _) = scan_bytes(&bytes);
            assert_eq!((r.entries(), r.data_end), (2, 19), "{zeros} zeros");
            assert_eq!(r.tail, Tail::Zeros { len: zeros as u64 });
            assert_eq!(r.damaged_bytes(), 0);
        }
    }

    #[test]
    fn every_cut_inside_the_last_frame_is_a_torn_tail() {
        let whole = log(&["first", "second!"]);
        for cut in 14..whole.len() {
            let (r, _) = scan_bytes(&whole[..cut]);
            assert_eq!((r.entries(), r.data_end), (1, 13), "cut at {cut}");
            assert!(
                matches!(r.tail, Tail::Torn { len, .. } if len == cut as u64 - 13),
                "cut at {cut}: {r:?}"
            );
        }
    }

    #[test]
    fn crc_failure_before_zeros_is_torn_but_before_a_whole_frame_is_bit_rot() {
        let mut bytes = log(&["aaaa", "bbbb", "cccc"]);
        bytes[12 + 8] ^= 1; // payload of frame 1
        let (r, _) = scan_bytes(&bytes);
        assert_eq!(
            (r.entries(), r.corrupt_entries, r.tail),
            (3, 1, Tail::Clean)
        );

        let mut bytes = log(&["aaaa", "bbbb"]);
        bytes[12 + 8] ^= 1; // the last frame
        bytes.extend([0; 100]);
        let (r, _) = scan_bytes(&bytes);
        assert_eq!((r.entries(), r.corrupt_entries, r.data_end), (1, 0, 12));
        assert_eq!(
            r.tail,
            Tail::Torn {
                len: 12,
                reason: TornReason::ChecksumMismatch
            }
        );
    }

    #[test]
    fn broken_length_word_with_whole_frames_after_it_is_broken_framing() {
        let mut bytes = log(&["aaaa", "bbbb", "cccc", "dddd"]);
        bytes[12..16].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        let (r, _) = scan_bytes(&bytes);
        assert_eq!(r.entries(), 1);
        assert_eq!(
            r.tail,
            Tail::BrokenFraming {
                pos: 12,
                defect: HeaderDefect::TooLong,
                resync_at: Some(24)
            }
        );
        assert_eq!(r.damaged_bytes(), 36);
        let mut with_zeros = bytes.clone();
        with_zeros.extend([0; 1000]);
        assert_eq!(
            scan_bytes(&with_zeros).0.damaged_bytes(),
            36,
            "zeros are not saved"
        );
    }

    #[test]
    fn a_whole_frame_over_a_lowered_limit_is_still_whole() {
        let bytes = log(&["small", &"x".repeat(2000)]);
        let (r, _) = scan_with_limit(&bytes, 1000);
        assert_eq!((r.entries(), r.tail), (2, Tail::Clean));
        let mut damaged = bytes.clone();
        *damaged.last_mut().unwrap() ^= 1;
        let (r, _) = scan_with_limit(&damaged, 1000);
        assert_eq!(
            r.entries(),
            1,
            "over the limit and failing its CRC: not whole"
        );
    }

    #[test]
    fn a_length_word_that_swallows_whole_frames_is_broken_framing_not_a_torn_tail() {
        // Frame 1's length grown so it covers frames 2 and 3 and runs into
        // the zero tail: cutting it as torn would drop acknowledged entries.
        let mut bytes = log(&["aaaa", "bbbb", "cccc", "dddd"]);
        bytes[12..16].copy_from_slice(&100u32.to_le_bytes());
        bytes.extend([0; 200]);
        let (r, _) = scan_bytes(&bytes);
        assert_eq!(r.entries(), 1);
        assert_eq!(
            r.tail,
            Tail::BrokenFraming {
                pos: 12,
                defect: HeaderDefect::SwallowsWholeFrame,
                resync_at: Some(24)
            }
        );
    }

    #[test]
    fn a_length_word_ending_inside_a_later_payload_is_broken_framing() {
        // Frame 1 grows from 4 to 30 bytes: it swallows frames 2 and 3 and
        // ends inside frame 4's payload, where garbage reads as a header.
        let mut bytes = log(&["aaaa", "bbbb", "cccc", "dddddddddddddddddddd"]);
        bytes[12..16].copy_from_slice(&30u32.to_le_bytes());
        bytes.extend([0; 4096]);
        let (r, _) = scan_bytes(&bytes);
        assert_eq!(r.entries(), 1, "{r:?}");
        assert_eq!(
            r.tail,
            Tail::BrokenFraming {
                pos: 12,
                defect: HeaderDefect::SwallowsWholeFrame,
                resync_at: Some(24)
            }
        );
        assert_eq!(
            r.damaged_end,
            12 + 12 + 12 + 28,
            "the zero tail is free space, not damage"
        );
    }

    #[test]
    fn a_length_word_landing_exactly_on_a_later_frame_does_not_shift_offsets() {
        // Frame 1 grows to cover frame 2 exactly: frame 3 then parses at the
        // right place, which must not make frame 1 pass for mere bit rot.
        let mut bytes = log(&["aaaa", "bbbb", "cccc"]);
        bytes[12..16].copy_from_slice(&16u32.to_le_bytes());
        let (r, _) = scan_bytes(&bytes);
        assert_eq!((r.entries(), r.corrupt_entries), (1, 0), "{r:?}");
        assert!(
            matches!(
                r.tail,
                Tail::BrokenFraming {
                    pos: 12,
                    resync_at: Some(24),
                    ..
                }
            ),
            "{r:?}"
        );
    }

    #[test]
    fn a_payload_that_looks_like_headers_everywhere_exhausts_the_search_not_the_clock() {
        // Every 4th position reads as a 1 MiB frame that fits in the file, so
        // an unbounded search would CRC ~256 Ki candidates of 1 MiB each.
        let mut crafted = encode(&[0, 0, 0x10, 0].repeat(1 << 18));
        crafted[HEADER_LEN] ^= 1;
        let mut bytes = log(&["first"]);
        bytes.extend(&crafted);
        bytes.extend(vec![0; 2 << 20]);
        let (r, _) = scan_bytes(&bytes);
        assert_eq!(r.entries(), 1);
        assert_eq!(
            r.tail,
            Tail::BrokenFraming {
                pos: 13,
                defect: HeaderDefect::SwallowsWholeFrame,
                resync_at: None
            },
            "gave up, so refuses rather than guessing"
        );
    }

    #[test]
    fn garbage_with_no_whole_frame_after_it_is_a_torn_tail() {
        let mut bytes = log(&["aaaa"]);
        bytes.extend((0..300u32).map(|i| (i * 7 + 3) as u8 | 1));
        bytes.extend([0; 50]);
        let (r, _) = scan_bytes(&bytes);
        assert_eq!(r.data_end, 12);
        assert!(
            matches!(
                r.tail,
                Tail::Torn {
                    len: 300,
                    reason: TornReason::BadHeader(_)
                }
            ),
            "{r:?}"
        );
    }

    #[test]
    fn torn_bytes_that_end_in_zeros_are_all_saved() {
        // A cut header "07 00" and a CRC-failing frame whose payload ends in
        // zeros: the torn range covers them whole, not just to the last 1 bit.
        let mut bytes = log(&["aaaa"]);
        bytes.extend([7, 0]);
        let (r, _) = scan_bytes(&bytes);
        assert_eq!(
            r.tail,
            Tail::Torn {
                len: 2,
                reason: TornReason::ShortHeader
            }
        );

        let mut bytes = log(&["aaaa"]);
        let mut last = encode(b"zz\0\0");
        last[4] ^= 0xff;
        bytes.extend(&last);
        bytes.extend([0; 64]);
        let (r, _) = scan_bytes(&bytes);
        assert_eq!(
            r.tail,
            Tail::Torn {
                len: 12,
                reason: TornReason::ChecksumMismatch
            }
        );
    }

    #[test]
    fn short_nonzero_header_at_the_end_is_torn() {
        let mut bytes = log(&["aaaa"]);
        bytes.extend([5, 0, 0]);
        let (r, _) = scan_bytes(&bytes);
        assert_eq!(
            r.tail,
            Tail::Torn {
                len: 3,
                reason: TornReason::ShortHeader
            }
        );
    }

    #[test]
    fn frames_spanning_read_chunks_are_whole() {
        // Payloads near the chunk size force frames across chunk boundaries.
        let big = "x".repeat(CHUNK / 3 + 17);
        let bytes = log(&[&big, &big, &big, &big, "tail"]);
        let (r, seen) = scan_with_limit(&bytes, CHUNK as u32);
        assert_eq!(
            (r.entries(), r.corrupt_entries, r.tail),
            (5, 0, Tail::Clean)
        );
        assert!(seen.iter().all(|&(_, ok)| ok));
    }
}
