//! A segment file for unit tests: a real temporary file whose Nth write,
//! sync, truncation or read from now fails, or whose Nth write stops short
//! after K bytes (a disk filling mid-write), on demand, while the segment
//! under test owns it. Each fault fires once.

use super::SegmentFile;
use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::rc::Rc;

/// The file the segment owns.
pub struct FaultyFile {
    file: File,
    plan: Rc<RefCell<Plan>>,
}

/// The test's side of the same file: arms faults, counts calls, reads
/// what is on disk.
pub struct Faults {
    file: File,
    plan: Rc<RefCell<Plan>>,
}

/// Calls the segment made, failed ones included.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    pub writes: u64,
    /// `sync_data` and `sync_all` alike.
    pub syncs: u64,
    pub set_lens: u64,
    pub reads: u64,
}

#[derive(Default)]
struct Plan {
    calls: Calls,
    /// The call number of the write to fail, and how many of its bytes
    /// reach the file before it does.
    write: Option<(u64, usize)>,
    sync: Option<u64>,
    set_len: Option<u64>,
    read: Option<u64>,
}

/// A new, empty file and the handle that controls it.
pub fn faulty_file() -> (FaultyFile, Faults) {
    let file = tempfile::tempfile().expect("a temporary file");
    let look = file.try_clone().expect("a second handle");
    let plan = Rc::new(RefCell::new(Plan::default()));
    (
        FaultyFile {
            file,
            plan: Rc::clone(&plan),
        },
        Faults { file: look, plan },
    )
}

impl Faults {
    /// The `nth` write from now (1: the next) fails, writing nothing.
    pub fn fail_write(&self, nth: u64) {
        self.short_write(nth, 0);
    }

    /// The `nth` write from now puts its first `kept` bytes in the file,
    /// then fails.
    pub fn short_write(&self, nth: u64, kept: usize) {
        let mut plan = self.plan.borrow_mut();
        plan.write = Some((plan.calls.writes + nth, kept));
    }

    /// The `nth` sync from now (`sync_data` or `sync_all`) fails.
    pub fn fail_sync(&self, nth: u64) {
        let mut plan = self.plan.borrow_mut();
        plan.sync = Some(plan.calls.syncs + nth);
    }

    /// The `nth` `set_len` from now fails, leaving the size as it was.
    pub fn fail_set_len(&self, nth: u64) {
        let mut plan = self.plan.borrow_mut();
        plan.set_len = Some(plan.calls.set_lens + nth);
    }

    /// The `nth` read from now fails.
    pub fn fail_read(&self, nth: u64) {
        let mut plan = self.plan.borrow_mut();
        plan.read = Some(plan.calls.reads + nth);
    }

    pub fn calls(&self) -> Calls {
        self.plan.borrow().calls
    }

    /// Every byte of the file as it is now.
    pub fn on_disk(&self) -> Vec<u8> {
        let len = self.file.metadata().expect("the file's size").len();
        let mut bytes = vec![0; len as usize];
        self.file.read_exact_at(&mut bytes, 0).expect("the file");
        bytes
    }
}

/// Counts a call and says whether it is the one armed to fail.
fn due(count: &mut u64, armed: &mut Option<u64>) -> bool {
    *count += 1;
    let due = *armed == Some(*count);
    if due {
        *armed = None;
    }
    due
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl SegmentFile for FaultyFile {
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut plan = self.plan.borrow_mut();
        plan.calls.writes += 1;
        match plan.write {
            Some((n, kept)) if n == plan.calls.writes => {
                plan.write = None;
                let kept = kept.min(buf.len());
                self.file.write_all_at(&buf[..kept], pos)?;
                Err(match kept {
                    0 => injected("write"),
                    _ => io::Error::new(
                        io::ErrorKind::StorageFull,
                        format!("injected short write: {kept} of {} bytes", buf.len()),
                    ),
                })
            }
            _ => self.file.write_all_at(buf, pos),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let plan = &mut *self.plan.borrow_mut();
        if due(&mut plan.calls.reads, &mut plan.read) {
            return Err(injected("read"));
        }
        self.file.read_exact_at(buf, pos)
    }

    fn sync_data(&self) -> io::Result<()> {
        let plan = &mut *self.plan.borrow_mut();
        if due(&mut plan.calls.syncs, &mut plan.sync) {
            return Err(injected("fdatasync"));
        }
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        let plan = &mut *self.plan.borrow_mut();
        if due(&mut plan.calls.syncs, &mut plan.sync) {
            return Err(injected("fsync"));
        }
        self.file.sync_all()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let plan = &mut *self.plan.borrow_mut();
        if due(&mut plan.calls.set_lens, &mut plan.set_len) {
            return Err(injected("truncate"));
        }
        self.file.set_len(len)
    }
}
