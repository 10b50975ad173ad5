//! A cold page cache for the cold open row: the kernel's clean pages,
//! dentries and inodes dropped through `/proc/sys/vm/drop_caches` (root
//! only). It empties the cache of the whole machine, not only the bench's
//! files, so the bench does it only a few times.

/// Writes back dirty pages, then drops every clean cached page, dentry and
/// inode. `Err` says why it cannot (not root, read-only /proc).
pub fn drop_all() -> Result<(), String> {
    // Dirty pages are never dropped: write them back first.
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .map_err(|e| format!("writing /proc/sys/vm/drop_caches failed ({e}); it needs root"))
}
