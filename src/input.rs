//! Reading requests from stdin in batches, one line each, never holding
//! more than one over-long line's worth of input in memory. An over-long
//! line is scanned as it streams past for who sent it, so that it can be
//! answered.
//!
//! Batching comes from the pipe itself: while the node syncs, requests pile
//! up in the kernel's pipe buffer (widened to a whole read, `pipes`), and
//! the next `read` returns all of them at once. The node reads on its one thread on purpose: a separate reader
//! thread cost 30% of one-request-at-a-time throughput here, because waking
//! the main thread from it moved that thread away from the CPU taking the
//! disk's interrupts (README "Performance").

use crate::protocol::attribution::{Found, Scanner};
use std::io::{ErrorKind, Read};
use std::ops::Range;

/// Bytes asked of each `read` (and what `pipes::widen` asks the stdin
/// pipe to hold).
pub const READ_CHUNK: usize = 1 << 20;

/// One input line, as the node receives it: a slice of the read buffer,
/// so a line is never copied before it is parsed.
pub enum Input<'a> {
    Line(&'a [u8]),
    /// A line longer than the limit, discarded as it streamed past.
    Oversized {
        bytes: u64,
        /// Its sender, if the scan found one.
        found: &'a Found,
    },
}

/// A line taken from the buffer, by position until the batch is handed out.
enum Taken {
    Line(Range<usize>),
    Oversized { bytes: u64, found: Found },
}

/// The inputs of one batch, in input order, borrowing the read buffer.
pub struct Batch<'a> {
    buf: &'a [u8],
    taken: &'a [Taken],
}

impl<'a> Batch<'a> {
    pub fn iter(&self) -> impl Iterator<Item = Input<'a>> + use<'a> {
        let buf = self.buf;
        self.taken.iter().map(move |t| match t {
            Taken::Line(range) => Input::Line(&buf[range.clone()]),
            Taken::Oversized { bytes, found } => Input::Oversized {
                bytes: *bytes,
                found,
            },
        })
    }

    pub fn len(&self) -> usize {
        self.taken.len()
    }

    pub fn is_empty(&self) -> bool {
        self.taken.is_empty()
    }
}

/// An over-long line being let go: its length so far, and the scan of it.
struct Discarding {
    bytes: u64,
    scan: Scanner,
}

pub struct Lines<R> {
    source: R,
    /// Where each `read` lands: `buf[..filled]` is input, the rest room for
    /// the next read. Only grows, and only while a partial line is kept.
    buf: Vec<u8>,
    filled: usize,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// How far into `buf` no newline has been found yet.
    scanned: usize,
    max_line: usize,
    /// The over-long line being dropped, while dropping one.
    discarded: Option<Discarding>,
    /// The batch being handed out; kept to reuse its allocation.
    taken: Vec<Taken>,
    at_end: bool,
}

impl<R: Read> Lines<R> {
    /// Lines over `max_line` bytes are discarded, not held.
    pub fn new(source: R, max_line: usize) -> Self {
        Lines {
            source,
            buf: vec![0; READ_CHUNK],
            filled: 0,
            start: 0,
            scanned: 0,
            max_line,
            discarded: None,
            taken: Vec::new(),
            at_end: false,
        }
    }

    /// Waits until at least one input is there, then returns every input
    /// already read, at most `max` of them and about `max_bytes`; `None` at
    /// end of input. Never waits once it holds an input.
    pub fn next_batch(&mut self, max: usize, max_bytes: usize) -> Option<Batch<'_>> {
        self.taken.clear();
        let mut bytes = 0;
        loop {
            while self.taken.len() < max && bytes < max_bytes {
                let Some(taken) = self.take() else { break };
                if let Taken::Line(range) = &taken {
                    bytes += range.len();
                }
                self.taken.push(taken);
            }
            if self.taken.is_empty() && self.at_end {
                let last = self.take_unterminated()?;
                self.taken.push(last);
            }
            if !self.taken.is_empty() {
                return Some(Batch {
                    buf: &self.buf,
                    taken: &self.taken,
                });
            }
            // Nothing taken, so no range points into the buffer yet.
            self.read_more();
        }
    }

    /// The next whole line already in the buffer, if any.
    fn take(&mut self) -> Option<Taken> {
        let unread = &self.buf[self.scanned..self.filled];
        match memchr::memchr(b'\n', unread) {
            Some(i) => {
                let end = self.scanned + i;
                let len = end - self.start;
                let taken = if self.discarded.is_some() || len > self.max_line {
                    self.discard(end);
                    self.oversized()
                } else {
                    Taken::Line(self.start..end)
                };
                self.start = end + 1;
                self.scanned = self.start;
                Some(taken)
            }
            None => {
                self.scanned = self.filled;
                if self.discarded.is_some() || self.filled - self.start > self.max_line {
                    // Too long to keep: scan it and let its bytes go.
                    self.discard(self.filled);
                    self.filled = self.start;
                    self.scanned = self.start;
                }
                None
            }
        }
    }

    /// A last line with no newline after it, at end of input.
    fn take_unterminated(&mut self) -> Option<Taken> {
        let rest = self.filled - self.start;
        let taken = if self.discarded.is_some() || rest > self.max_line {
            self.discard(self.filled);
            Some(self.oversized())
        } else if rest > 0 {
            Some(Taken::Line(self.start..self.filled))
        } else {
            None
        };
        self.start = self.filled;
        taken
    }

    /// Counts and scans the over-long line's bytes from `start` to `end`.
    fn discard(&mut self, end: usize) {
        let d = self.discarded.get_or_insert_with(|| Discarding {
            bytes: 0,
            scan: Scanner::default(),
        });
        d.bytes += (end - self.start) as u64;
        d.scan.feed(&self.buf[self.start..end]);
    }

    /// The over-long line just ended.
    fn oversized(&mut self) -> Taken {
        let d = self.discarded.take().expect("a line was being discarded");
        Taken::Oversized {
            bytes: d.bytes,
            found: d.scan.finish(),
        }
    }

    /// One `read` straight into the buffer, after the partial line kept at
    /// its front: whatever the pipe holds, up to `READ_CHUNK` bytes.
    fn read_more(&mut self) {
        self.buf.copy_within(self.start..self.filled, 0);
        self.filled -= self.start;
        self.scanned -= self.start;
        self.start = 0;
        if self.buf.len() < self.filled + READ_CHUNK {
            self.buf.resize(self.filled + READ_CHUNK, 0);
        }
        let room = &mut self.buf[self.filled..self.filled + READ_CHUNK];
        let n = loop {
            match self.source.read(room) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    crate::stderr!("reading stdin failed: {e}; treating it as end of input");
                    break 0;
                }
            }
        };
        self.filled += n;
        self.at_end = n == 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, like a pipe that a slow
    /// client fills.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(self.0.len()).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }

    fn collect(input: &[u8], max_line: usize, read_size: usize) -> Vec<String> {
        let mut lines = Lines::new(Trickle(input.to_vec(), read_size), max_line);
        let mut out = Vec::new();
        while let Some(batch) = lines.next_batch(3, 1 << 20) {
            out.extend(batch.iter().map(|i| match i {
                Input::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Input::Oversized { bytes, found } => match found.sender() {
                    Some((src, id)) => format!("<{bytes} dropped, from {src} msg_id {id}>"),
                    None => format!("<{bytes} dropped>"),
                },
            }));
        }
        out
    }

    #[test]
    fn splits_lines_and_keeps_an_unterminated_last_one() {
        for read_size in [1, 2, 5, 1000] {
            assert_eq!(
                collect(b"a\nbb\n\nccc", 10, read_size),
                ["a", "bb", "", "ccc"]
            );
        }
    }

    #[test]
    fn drops_overlong_lines_and_goes_on() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 200_000));
        input.extend_from_slice(b"\nnext\n");
        for read_size in [7, 4096, 1 << 20] {
            assert_eq!(
                collect(&input, 100, read_size),
                ["ok", "<200000 dropped>", "next"]
            );
        }
        let mut unterminated = b"ok\n".to_vec();
        unterminated.extend(std::iter::repeat_n(b'y', 5000));
        assert_eq!(collect(&unterminated, 100, 64), ["ok", "<5000 dropped>"]);
    }

    #[test]
    fn finds_the_sender_of_an_overlong_line_as_it_streams_past() {
        // `src` comes last: only a scan of the whole line finds it.
        let mut line = br#"{"body":{"type":"wal_append","payload":""#.to_vec();
        line.extend(std::iter::repeat_n(b'x', 5000));
        line.extend_from_slice(br#"","msg_id":9},"src":"c2"}"#);
        let mut input = line.clone();
        input.extend_from_slice(b"\nnext\n");
        // Unterminated, and with its `msg_id` cut off: nobody to answer.
        input.extend_from_slice(&line[..line.len() - 20]);
        for read_size in [1, 7, 4096, 1 << 20] {
            assert_eq!(
                collect(&input, 100, read_size),
                [
                    format!("<{} dropped, from c2 msg_id 9>", line.len()),
                    "next".into(),
                    format!("<{} dropped>", line.len() - 20),
                ]
            );
        }
    }

    #[test]
    fn a_batch_is_what_one_read_brought_capped_by_max() {
        let mut lines = Lines::new(Trickle(b"1\n2\n3\n4\n5\n".to_vec(), 6), 100);
        let sizes: Vec<usize> =
            std::iter::from_fn(|| lines.next_batch(2, 1 << 20).map(|b| b.len())).collect();
        // Reads of 6 bytes bring 3 lines; batches hold at most 2.
        assert_eq!(sizes, [2, 1, 2]);
    }
}
