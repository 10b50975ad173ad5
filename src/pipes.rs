//! The node's stdin and stdout pipes, widened to hold a whole batch.
//!
//! Batches come from what piles up in the stdin pipe while the node syncs.
//! Linux's default pipe holds 64 KiB, ~350 appends of 100 B: a pipelining
//! client blocked there, and every 350 appends cost a sync. On stdout, one
//! batch's replies (one write) filled the default pipe several times over,
//! and the node slept until the client had read each 64 KiB.

use crate::input::READ_CHUNK;
use std::os::fd::{AsFd, AsRawFd};

/// Asks the kernel for a pipe that holds a whole read of input
/// (`READ_CHUNK`). Nothing happens when `end` is no pipe, or when the
/// kernel refuses (over `/proc/sys/fs/pipe-max-size`, or the user's pipes
/// over `pipe-user-pages-soft`): the node works the same, in smaller
/// batches.
pub fn widen(end: &impl AsFd) {
    let fd = end.as_fd().as_raw_fd();
    // SAFETY: fcntl on a descriptor that `end` keeps open; F_SETPIPE_SZ
    // changes nothing but a pipe's capacity, and fails on a non-pipe.
    let _ = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, READ_CHUNK as libc::c_int) };
}
