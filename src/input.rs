//! Reading stdin on its own thread, one line at a time, never holding more
//! than a bounded amount of it in memory.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

/// What the reader hands the node.
pub enum Input {
    Line(Vec<u8>),
    /// A line longer than the limit, discarded as it streamed past.
    Oversized {
        bytes: u64,
    },
}

impl Input {
    fn size(&self) -> usize {
        match self {
            Input::Line(l) => l.len(),
            Input::Oversized { .. } => 0,
        }
    }
}

/// Bytes read ahead but not yet taken by the node, capped so a fast client
/// cannot make the node buffer its whole input.
struct Budget {
    in_flight: Mutex<usize>,
    freed: Condvar,
    cap: usize,
}

impl Budget {
    fn take(&self, n: usize) {
        let mut used = self.in_flight.lock().expect("budget lock");
        // A line larger than the cap still goes through, alone.
        while *used > 0 && *used + n > self.cap {
            used = self.freed.wait(used).expect("budget lock");
        }
        *used += n;
    }

    fn give_back(&self, n: usize) {
        *self.in_flight.lock().expect("budget lock") -= n;
        self.freed.notify_one();
    }
}

/// The receiving end: yields inputs in order until end of input.
pub struct Lines {
    rx: Receiver<Input>,
    budget: Arc<Budget>,
}

impl Lines {
    /// Starts a thread reading `source`. Lines over `max_line` bytes are
    /// discarded; at most about `read_ahead` bytes wait in memory.
    pub fn spawn(
        source: impl Read + Send + 'static,
        max_line: usize,
        read_ahead: usize,
        queue: usize,
    ) -> Lines {
        let budget = Arc::new(Budget {
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
            cap: read_ahead,
        });
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        let reader_budget = Arc::clone(&budget);
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                read_lines(
                    BufReader::with_capacity(64 << 10, source),
                    max_line,
                    &tx,
                    &reader_budget,
                )
            })
            .expect("spawning the stdin reader");
        Lines { rx, budget }
    }

    /// Waits for the next input; `None` at end of input.
    pub fn next_blocking(&self) -> Option<Input> {
        self.rx.recv().ok().map(|i| self.taken(i))
    }

    /// The next input if one is already waiting.
    pub fn next_waiting(&self) -> Option<Input> {
        self.rx.try_recv().ok().map(|i| self.taken(i))
    }

    fn taken(&self, input: Input) -> Input {
        self.budget.give_back(input.size());
        input
    }
}

fn read_lines(mut source: impl BufRead, max_line: usize, tx: &SyncSender<Input>, budget: &Budget) {
    let mut line = Vec::new();
    let mut discarded: u64 = 0;
    loop {
        let chunk = match source.fill_buf() {
            Ok([]) => break,
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("wal-node: reading stdin failed: {e}; no more input");
                break;
            }
        };
        let (part, ended) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], true),
            None => (chunk, false),
        };
        let used = part.len() + usize::from(ended);
        if discarded > 0 || line.len() + part.len() > max_line {
            // Too long: stop holding it, count the rest as it streams past.
            discarded += (line.len() + part.len()) as u64;
            line = Vec::new();
        } else {
            line.extend_from_slice(part);
        }
        source.consume(used);
        if ended {
            let input = if discarded > 0 {
                Input::Oversized {
                    bytes: std::mem::take(&mut discarded),
                }
            } else {
                Input::Line(std::mem::take(&mut line))
            };
            if !send(tx, budget, input) {
                return;
            }
        }
    }
    if discarded > 0 {
        send(tx, budget, Input::Oversized { bytes: discarded });
    } else if !line.is_empty() {
        send(tx, budget, Input::Line(line));
    }
}

fn send(tx: &SyncSender<Input>, budget: &Budget, input: Input) -> bool {
    budget.take(input.size());
    tx.send(input).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max_line: usize) -> Vec<String> {
        let lines = Lines::spawn(std::io::Cursor::new(input.to_vec()), max_line, 1 << 20, 8);
        std::iter::from_fn(|| lines.next_blocking())
            .map(|i| match i {
                Input::Line(l) => String::from_utf8_lossy(&l).into_owned(),
                Input::Oversized { bytes } => format!("<{bytes} dropped>"),
            })
            .collect()
    }

    #[test]
    fn splits_lines_and_keeps_an_unterminated_last_one() {
        assert_eq!(collect(b"a\nbb\n\nccc", 10), ["a", "bb", "", "ccc"]);
    }

    #[test]
    fn drops_overlong_lines_and_goes_on() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 200_000));
        input.extend_from_slice(b"\nnext\n");
        assert_eq!(collect(&input, 100), ["ok", "<200000 dropped>", "next"]);
    }
}
