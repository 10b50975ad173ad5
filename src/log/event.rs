//! What the log reports to whoever runs it: things a person should see
//! (a torn tail cut, bit rot found, an index rebuilt). The library never
//! prints; the node's binary writes these to stderr, and tests read them.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Unacknowledged bytes cut from the active segment's tail.
    TornTailCut,
    /// Damage cut on the operator's order (`--recover=truncate`).
    DamageCut,
    /// Entries failing their checksum, kept in place and flagged.
    BitRot,
    /// A sealed segment's index was missing or failed its checks.
    IndexRebuilt,
    /// A file in the log directory that is none of ours: left alone.
    UnknownFile,
    /// A half-written temporary file left by a crash: removed.
    TempRemoved,
    /// A single-file log of the previous version moved into a directory.
    Adopted,
    /// A crash between sealing a segment and creating the next: finished.
    SealFinished,
    /// A compaction stopped after its metadata update: finished.
    CompactionFinished,
    /// A snapshot failed its checksum: an older one (or the log) is used.
    SnapshotDamaged,
    /// Space could not be preallocated; appends grow the file instead.
    PreallocFailed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub text: String,
}

impl Event {
    pub fn new(kind: EventKind, text: impl Into<String>) -> Event {
        Event {
            kind,
            text: text.into(),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
