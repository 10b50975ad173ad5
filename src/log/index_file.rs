//! A sealed segment's index: where each of its entries starts, so opening
//! the log never rescans sealed segments and reading entry `i` costs two
//! `pread`s whatever the log's length.
//!
//! Byte by byte (doc/format.md "Index files"), integers little-endian:
//! `magic "walindex"` · `u32 version (1)` · `u32 reserved (0)` ·
//! `u64 start offset` · `u64 entries` · `u64 segment bytes` ·
//! `u32 CRC-32 of the positions` · `u32 CRC-32 of the 44 header bytes before it` ·
//! then `entries` × `u64 byte position of the frame within the segment`.
//! The header is checked at open (it is all that is read then); the
//! positions' checksum the first time the segment is read.

use crate::frame::checksum;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;

pub const MAGIC: &[u8; 8] = b"walindex";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: u64 = 48;

/// What an index file says about its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub start: u64,
    pub entries: u64,
    /// The segment file's exact length: a sealed segment is its frames.
    pub segment_bytes: u64,
    positions_crc: u32,
}

/// Why an index file cannot be trusted (it is then rebuilt from its segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDefect(pub String);

impl std::fmt::Display for IndexDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn defect<T>(why: impl Into<String>) -> Result<T, IndexDefect> {
    Err(IndexDefect(why.into()))
}

impl Header {
    /// Checks the header bytes and that a file of `file_len` bytes has room
    /// for exactly its positions.
    pub fn decode(bytes: &[u8], file_len: u64) -> Result<Header, IndexDefect> {
        if file_len < HEADER_LEN || bytes.len() < HEADER_LEN as usize {
            return defect(format!("{file_len} bytes long, shorter than its header"));
        }
        if &bytes[..8] != MAGIC {
            return defect("no \"walindex\" magic");
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        if u32_at(44) != checksum(&bytes[..44]) {
            return defect("header checksum mismatch");
        }
        if u32_at(8) != VERSION {
            return defect(format!("format version {}, not {VERSION}", u32_at(8)));
        }
        let header = Header {
            start: u64_at(16),
            entries: u64_at(24),
            segment_bytes: u64_at(32),
            positions_crc: u32_at(40),
        };
        let expected = header.entries.checked_mul(8).map(|n| n + HEADER_LEN);
        if expected != Some(file_len) {
            return defect(format!(
                "{file_len} bytes long, but its header lists {} entries",
                header.entries
            ));
        }
        Ok(header)
    }
}

/// Writes the index of a segment starting at `start`, `segment_bytes` long,
/// whose frames start at `positions`, to `out` (a new, empty file). Not
/// synced: the caller syncs and renames it into place.
pub fn write(
    out: &File,
    start: u64,
    segment_bytes: u64,
    positions: impl Iterator<Item = u64>,
) -> io::Result<Header> {
    let mut crc = crc32fast::Hasher::new();
    let mut entries = 0u64;
    {
        let mut w = BufWriter::with_capacity(1 << 16, WriterAt::new(out, HEADER_LEN));
        for pos in positions {
            let bytes = pos.to_le_bytes();
            crc.update(&bytes);
            w.write_all(&bytes)?;
            entries += 1;
        }
        w.flush()?;
    }
    let header = Header {
        start,
        entries,
        segment_bytes,
        positions_crc: crc.finalize(),
    };
    out.write_all_at(&encode_header(&header), 0)?;
    Ok(header)
}

fn encode_header(h: &Header) -> [u8; HEADER_LEN as usize] {
    let mut out = [0u8; HEADER_LEN as usize];
    out[0..8].copy_from_slice(MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[16..24].copy_from_slice(&h.start.to_le_bytes());
    out[24..32].copy_from_slice(&h.entries.to_le_bytes());
    out[32..40].copy_from_slice(&h.segment_bytes.to_le_bytes());
    out[40..44].copy_from_slice(&h.positions_crc.to_le_bytes());
    let crc = checksum(&out[..44]);
    out[44..48].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Reads and checks the header of an open index file.
pub fn read_header(file: &File) -> io::Result<Result<Header, IndexDefect>> {
    let len = file.metadata()?.len();
    let mut bytes = [0u8; HEADER_LEN as usize];
    let n = (len.min(HEADER_LEN)) as usize;
    file.read_exact_at(&mut bytes[..n], 0)?;
    Ok(Header::decode(&bytes[..n], len))
}

/// Checks the positions against their checksum and that they are plausible:
/// the first is 0, each after the one before, all inside the segment.
pub fn verify_positions(file: &File, h: &Header) -> io::Result<Result<(), IndexDefect>> {
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; (h.entries * 8).min(1 << 20) as usize];
    let (mut done, mut prev) = (0u64, None::<u64>);
    while done < h.entries * 8 {
        let n = ((h.entries * 8 - done) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], HEADER_LEN + done)?;
        crc.update(&buf[..n]);
        for word in buf[..n].chunks_exact(8) {
            let pos = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            let ordered = match prev {
                None => pos == 0,
                Some(p) => pos > p,
            };
            if !ordered || pos >= h.segment_bytes {
                return Ok(defect(format!(
                    "position {pos} out of order or past the segment"
                )));
            }
            prev = Some(pos);
        }
        done += n as u64;
    }
    Ok(if crc.finalize() == h.positions_crc {
        Ok(())
    } else {
        defect("positions checksum mismatch")
    })
}

/// Byte range of the segment's `i`th entry (0-based within the segment).
pub fn span(file: &File, h: &Header, i: u64) -> io::Result<(u64, u64)> {
    debug_assert!(i < h.entries);
    let mut words = [0u8; 16];
    let n = if i + 1 < h.entries { 16 } else { 8 };
    file.read_exact_at(&mut words[..n], HEADER_LEN + i * 8)?;
    let start = u64::from_le_bytes(words[..8].try_into().expect("8 bytes"));
    let end = if n == 16 {
        u64::from_le_bytes(words[8..].try_into().expect("8 bytes"))
    } else {
        h.segment_bytes
    };
    Ok((start, end))
}

/// Sequential writes at increasing positions of a file, for a `BufWriter`.
struct WriterAt<'f> {
    file: &'f File,
    at: u64,
}

impl<'f> WriterAt<'f> {
    fn new(file: &'f File, at: u64) -> Self {
        WriterAt { file, at }
    }
}

impl Write for WriterAt<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.at)?;
        self.at += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(positions: &[u64], segment_bytes: u64) -> (File, Header) {
        let file = tempfile::tempfile().unwrap();
        let h = write(&file, 1000, segment_bytes, positions.iter().copied()).unwrap();
        (file, h)
    }

    #[test]
    fn round_trips_and_spans_each_entry() {
        let (file, h) = written(&[0, 17, 40], 52);
        assert_eq!(read_header(&file).unwrap(), Ok(h));
        assert_eq!((h.start, h.entries, h.segment_bytes), (1000, 3, 52));
        assert_eq!(verify_positions(&file, &h).unwrap(), Ok(()));
        assert_eq!(span(&file, &h, 0).unwrap(), (0, 17));
        assert_eq!(span(&file, &h, 1).unwrap(), (17, 40));
        assert_eq!(span(&file, &h, 2).unwrap(), (40, 52));
    }

    #[test]
    fn every_flipped_bit_is_caught_by_the_header_or_the_positions_check() {
        let (file, _) = written(&[0, 17, 40], 52);
        let len = file.metadata().unwrap().len();
        let mut good = vec![0u8; len as usize];
        file.read_exact_at(&mut good, 0).unwrap();
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let f = tempfile::tempfile().unwrap();
            f.write_all_at(&bad, 0).unwrap();
            let caught = match read_header(&f).unwrap() {
                Err(_) => true,
                Ok(h) => verify_positions(&f, &h).unwrap().is_err(),
            };
            assert!(caught, "bit {bit} went unnoticed");
        }
    }

    #[test]
    fn short_and_overlong_files_are_refused() {
        let (file, _) = written(&[0, 17], 40);
        let len = file.metadata().unwrap().len();
        file.set_len(len - 1).unwrap();
        assert!(read_header(&file).unwrap().is_err());
        file.set_len(len + 8).unwrap();
        assert!(read_header(&file).unwrap().is_err());
        file.set_len(10).unwrap();
        assert!(read_header(&file).unwrap().is_err());
    }
}
