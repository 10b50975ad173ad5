//! The log directory's metadata file: what format the directory holds, and
//! the settings that belong to the log rather than to one run.
//!
//! Byte by byte (doc/format.md "Metadata"), 40 bytes, integers little-endian:
//! `magic "wal-node"` · `u32 version` · `u32 flags (0)` ·
//! `u64 max_segment_bytes` · `u64 first_offset` · `u32 reserved (0)` ·
//! `u32 CRC-32 of the 36 bytes before it`.
//! It is only ever replaced whole: written to `wal-node.meta.tmp`, synced,
//! renamed over the old one, and the directory synced.

use crate::frame::checksum;

pub const MAGIC: &[u8; 8] = b"wal-node";
pub const VERSION: u32 = 1;
pub const LEN: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The roll limit in force for this log (`--max-segment-bytes`,
    /// `wal_segment_config`).
    pub max_segment_bytes: u64,
    /// Offset of the first entry the log still holds (0 until entries are
    /// compacted away).
    pub first_offset: u64,
}

/// Why a metadata file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaDefect {
    /// Not our magic: the directory is not a wal-node log.
    Foreign,
    /// A format this build does not read.
    Version(u32),
    /// Right magic, wrong size or checksum: the file is damaged.
    Damaged(String),
}

impl std::fmt::Display for MetaDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaDefect::Foreign => f.write_str("it does not start with the magic \"wal-node\""),
            MetaDefect::Version(v) => write!(
                f,
                "it holds format version {v}; this build reads version {VERSION} only"
            ),
            MetaDefect::Damaged(why) => write!(f, "it is damaged ({why})"),
        }
    }
}

impl Meta {
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&self.max_segment_bytes.to_le_bytes());
        out[24..32].copy_from_slice(&self.first_offset.to_le_bytes());
        let crc = checksum(&out[..36]);
        out[36..40].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Meta, MetaDefect> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(MetaDefect::Foreign);
        }
        if bytes.len() < 12 {
            return Err(MetaDefect::Damaged(format!("{} bytes long", bytes.len())));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(MetaDefect::Version(version));
        }
        if bytes.len() != LEN {
            return Err(MetaDefect::Damaged(format!(
                "{} bytes long, expected {LEN}",
                bytes.len()
            )));
        }
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let stored = u32::from_le_bytes(bytes[36..40].try_into().expect("4 bytes"));
        if stored != checksum(&bytes[..36]) {
            return Err(MetaDefect::Damaged("checksum mismatch".into()));
        }
        Ok(Meta {
            max_segment_bytes: u64_at(16),
            first_offset: u64_at(24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Meta = Meta {
        max_segment_bytes: 1 << 26,
        first_offset: 600,
    };

    #[test]
    fn round_trips() {
        assert_eq!(Meta::decode(&M.encode()), Ok(M));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let good = M.encode();
        for bit in 0..LEN * 8 {
            let mut bad = good;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Meta::decode(&bad).is_err(), "bit {bit} went unnoticed");
        }
    }

    #[test]
    fn foreign_files_and_other_versions_are_told_apart() {
        assert_eq!(Meta::decode(b"hello world"), Err(MetaDefect::Foreign));
        assert_eq!(Meta::decode(b""), Err(MetaDefect::Foreign));
        let mut v2 = M.encode();
        v2[8] = 2;
        assert_eq!(Meta::decode(&v2), Err(MetaDefect::Version(2)));
        assert!(matches!(
            Meta::decode(&M.encode()[..39]),
            Err(MetaDefect::Damaged(_))
        ));
    }
}
