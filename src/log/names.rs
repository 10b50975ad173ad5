//! The names of the files in a log directory (doc/format.md "Layout").
//!
//! Segments are named by their first entry's offset in 20 digits, so names
//! sort like offsets for every u64.

/// The directory's metadata file.
pub const META: &str = "wal-node.meta";

/// Suffix of a file being written before it is renamed into place.
pub const TEMP_SUFFIX: &str = ".tmp";

pub fn segment(start: u64) -> String {
    format!("{start:020}.log")
}

pub fn index(start: u64) -> String {
    format!("{start:020}.index")
}

pub fn snapshot(offset: u64) -> String {
    format!("{offset:020}.snapshot")
}

/// What a name in a log directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Meta,
    Segment(u64),
    Index(u64),
    /// The state as of this offset (the first entry not in it).
    Snapshot(u64),
    /// A file left half-written by a crash: removed at open.
    Temp,
    /// Bytes cut from a segment's tail, kept as evidence.
    Torn,
    /// Anything else: left alone.
    Unknown,
}

pub fn classify(name: &str) -> Kind {
    if name == META {
        return Kind::Meta;
    }
    if let Some(stem) = name.strip_suffix(TEMP_SUFFIX)
        && (stem == META
            || numbered(stem, ".index").is_some()
            || numbered(stem, ".snapshot").is_some())
    {
        return Kind::Temp;
    }
    if let Some(start) = numbered(name, ".log") {
        return Kind::Segment(start);
    }
    if let Some(start) = numbered(name, ".index") {
        return Kind::Index(start);
    }
    if let Some(offset) = numbered(name, ".snapshot") {
        return Kind::Snapshot(offset);
    }
    if let Some((stem, _)) = name.split_once(".log.torn-")
        && stem.len() == 20
        && stem.bytes().all(|b| b.is_ascii_digit())
    {
        return Kind::Torn;
    }
    Kind::Unknown
}

/// The offset in `<20 digits><suffix>`, if `name` is exactly that.
fn numbered(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_like_offsets_and_parse_back() {
        let starts = [0, 9, 10, 1000, u64::MAX / 3, u64::MAX];
        let mut names: Vec<String> = starts.iter().map(|&s| segment(s)).collect();
        names.sort();
        for (name, &start) in names.iter().zip(&starts) {
            assert_eq!(classify(name), Kind::Segment(start));
            assert_eq!(classify(&index(start)), Kind::Index(start));
        }
        assert_eq!(segment(1000), "00000000000000001000.log");
    }

    #[test]
    fn everything_else_is_recognised_or_left_alone() {
        assert_eq!(classify(META), Kind::Meta);
        assert_eq!(classify("wal-node.meta.tmp"), Kind::Temp);
        assert_eq!(classify("00000000000000001000.index.tmp"), Kind::Temp);
        assert_eq!(
            classify("00000000000000001000.snapshot"),
            Kind::Snapshot(1000)
        );
        assert_eq!(classify("00000000000000001000.snapshot.tmp"), Kind::Temp);
        assert_eq!(classify("00000000000000001000.log.torn-77"), Kind::Torn);
        for other in [
            "1000.log",
            "0000000000000000100a.log",
            "99999999999999999999.log", // past u64::MAX
            "notes.txt",
            "00000000000000001000.log.bak",
            "x.tmp",
        ] {
            assert_eq!(classify(other), Kind::Unknown, "{other}");
        }
    }
}
