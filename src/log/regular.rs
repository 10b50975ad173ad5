//! Opening the log's files, which must be regular files: a device, FIFO or
//! socket at a log path (or behind a symlink there) is refused before a
//! byte is written to it or read from it.

use super::error::OpenError;
use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens the existing regular file at `path`, read-write if `write`.
pub fn open(path: &Path, write: bool) -> Result<File, OpenError> {
    // O_NONBLOCK: opening a FIFO must not wait for a peer; O_NOCTTY: a
    // terminal must not become the process's controlling terminal.
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| refusal(path, e))?;
    // The check is on the descriptor itself: what was opened, not what the
    // path named a moment earlier.
    let meta = file
        .metadata()
        .with_context(|| format!("reading the type of {}", path.display()))?;
    if !meta.is_file() {
        return Err(not_a_file(path, meta.file_type()));
    }
    set_blocking(&file).with_context(|| format!("opening {}", path.display()))?;
    Ok(file)
}

/// Why opening `path` failed: some kinds of file cannot even be opened for
/// writing (a directory, a socket), so say what it is rather than the errno.
fn refusal(path: &Path, e: io::Error) -> OpenError {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => not_a_file(path, meta.file_type()),
        _ => OpenError::Io(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    }
}

fn not_a_file(path: &Path, kind: std::fs::FileType) -> OpenError {
    use std::os::unix::fs::FileTypeExt;
    let kind = if kind.is_dir() {
        "a directory"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "of an unknown kind"
    };
    OpenError::NotAFile {
        path: path.to_owned(),
        kind,
        target: std::fs::read_link(path).ok(),
    }
}

fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function borrows, no pointers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
