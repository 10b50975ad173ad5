//! The most disk space the bench held at once: the sum of the blocks
//! allocated under its directory, sampled at the end of each measurement,
//! before its files are removed (logs only grow while a node runs, so that
//! is when each is largest).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static PEAK: AtomicU64 = AtomicU64::new(0);

/// Samples the space allocated under `dir` now.
pub fn sample(dir: &Path) {
    PEAK.fetch_max(allocated(dir), Ordering::Relaxed);
}

/// The largest sample so far, in bytes.
pub fn peak() -> u64 {
    PEAK.load(Ordering::Relaxed)
}

/// Bytes allocated on disk (st_blocks, 512-byte units) for everything
/// under `path`; zero for what vanished meanwhile.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let children = std::fs::read_dir(path).into_iter().flatten().flatten();
    own + children.map(|e| allocated(&e.path())).sum::<u64>()
}
