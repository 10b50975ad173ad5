//! The node asks for pipes that hold a whole read (1 MiB). On stdin,
//! requests pipelined while it syncs wait there, and the next read takes
//! them all, so a batch (and its one sync) covers thousands of appends of
//! 100 B rather than the ~350 that Linux's default 64 KiB pipe holds. On
//! stdout, a batch's replies go out in one write without the node waiting
//! for the client to drain the pipe 64 KiB at a time.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

const WHOLE_READ: i32 = 1 << 20;

fn pipe_size(fd: i32) -> i32 {
    // SAFETY: F_GETPIPE_SZ only reads the capacity of a pipe we hold open.
    unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }
}

/// Whether this process may give a pipe 1 MiB now (the user's pipes may be
/// over `pipe-user-pages-soft`, or `pipe-max-size` below 1 MiB).
fn kernel_allows_a_whole_read() -> bool {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into `fds`, closed below.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: both descriptors were just opened here.
    unsafe {
        let widened = libc::fcntl(fds[0], libc::F_SETPIPE_SZ, WHOLE_READ) >= WHOLE_READ;
        libc::close(fds[0]);
        libc::close(fds[1]);
        widened
    }
}

#[test]
fn the_node_widens_its_pipes_to_a_whole_read() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wal-node"))
        .env_remove("WAL_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wal-node");
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    stdin
        .write_all(
            b"{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"type\":\"init\",\"msg_id\":1,\
              \"node_id\":\"n1\",\"node_ids\":[\"n1\"]}}\n",
        )
        .expect("writing init");
    // Once init is answered the node is reading its input: the pipe is as
    // wide as it will get.
    let mut reply = String::new();
    stdout.read_line(&mut reply).expect("reading init_ok");
    assert!(reply.contains("\"init_ok\""), "{reply}");
    let sizes = [
        ("stdin", pipe_size(stdin.as_raw_fd())),
        ("stdout", pipe_size(stdout.get_ref().as_raw_fd())),
    ];
    drop(stdin);
    assert!(child.wait().expect("waiting for the node").success());
    if sizes.iter().any(|&(_, size)| size < WHOLE_READ) && !kernel_allows_a_whole_read() {
        println!(
            "skipped: this kernel gives no process a 1 MiB pipe now (pipe-max-size or \
             pipe-user-pages-soft); the node's pipes hold {sizes:?} bytes"
        );
        return;
    }
    for (end, size) in sizes {
        assert!(
            size >= WHOLE_READ,
            "the node's {end} pipe holds {size} bytes, not a whole read of {WHOLE_READ}"
        );
    }
}
