//! Making directory entries durable: a new file's name survives a crash
//! only once its directory is synced.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::path::Path;

/// Makes a directory entry created in `path`'s parent durable.
pub fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Creates `dir` and any missing ancestors, syncing the parent of each one
/// created, so the whole path survives a crash (not just its last step).
pub fn create_durably(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => sync_parent(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if !dir.is_dir() {
                bail!("{} is not a directory", dir.display());
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("creating directory {}", dir.display())),
    }
}
