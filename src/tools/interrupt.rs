//! When `inspect --follow` should stop on its own: the operator pressed
//! Ctrl-C (SIGINT) or asked it to end (SIGTERM), or whoever reads its
//! output has gone (`| head`). Each ends it quietly with status 0.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
/// Inside a write to stdout, which blocks while the reader does not read.
static WRITING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only atomics and `_exit`: what a signal handler may safely use.
    STOP.store(true, Ordering::SeqCst);
    if WRITING.load(Ordering::SeqCst) {
        // A write blocked on a reader that is not reading would never
        // return to see the flag; the line it was writing may be cut.
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { libc::_exit(0) };
    }
}

/// Runs `write` (a write to stdout) so that a stop signal during it ends
/// the process at once, with status 0. Once a stop is asked for, nothing
/// more is written.
pub fn while_writing(write: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
    WRITING.store(true, Ordering::SeqCst);
    let result = if stop_requested() { Ok(()) } else { write() };
    WRITING.store(false, Ordering::SeqCst);
    result
}

/// Makes SIGINT and SIGTERM set a flag instead of killing the process, so
/// the follower flushes what it has shown and exits 0.
pub fn catch_stop_signals() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether SIGINT or SIGTERM has arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Whether stdout is a pipe whose reader has closed it. A follower waiting
/// for entries writes nothing, so it would not learn this from a failed
/// write (SIGPIPE is ignored in Rust programs) until the next entry came.
pub fn reader_gone() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}
