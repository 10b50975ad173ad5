//! The file calls a segment makes, as a trait: `std::fs::File` in the node
//! (static dispatch, each call the std call itself), a fault-injecting double
//! in unit tests, so rollback, failed syncs and failed preallocation are
//! tested in process, in milliseconds. The seam of raft-engine's
//! `FileSystem` and okaywal's `FileManager`, cut down to one file's calls;
//! the LD_PRELOAD and strace tests stay the end-to-end proof.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

#[cfg(test)]
pub mod faulty;

/// What a segment does to its file, and nothing else. Byte positions, not
/// entry offsets.
pub trait SegmentFile {
    /// Writes all of `buf` at `pos`; on error, any part of it may be there.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// `fdatasync`: the data, and the size if it grew.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: also the metadata, as after a truncation.
    fn sync_all(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
}

impl SegmentFile for File {
    #[inline]
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, pos)
    }

    #[inline]
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, pos)
    }

    #[inline]
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    #[inline]
    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    #[inline]
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}
