//! Snapshot files: the state as of an offset, so the log before it can go.
//!
//! `<20-digit offset>.snapshot`, integers little-endian (doc/format.md
//! "Snapshots"): a 32-byte header `magic "walsnaps"` · `u32 version (1)` ·
//! `u32 reserved (0)` · `u64 snapshot offset` (the first entry NOT in it) ·
//! `u64 keys`; then per key, in key order, `u32 key length` · `u32 value
//! length` · key bytes · value bytes; then `u32 CRC-32 of everything before
//! it`. Written to `<name>.tmp`, fsynced, renamed, directory fsynced: a
//! snapshot is whole under its final name or absent.

use super::names;
use super::store::Store;
use crate::state::State;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

pub const MAGIC: &[u8; 8] = b"walsnaps";
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 32;

/// A durable snapshot of the state.
pub struct Snapshot {
    /// Entries `[.., offset)` are in it.
    pub offset: u64,
    pub bytes: u64,
    /// Where it lives; `None` for a private log, which keeps `file` instead.
    pub path: Option<PathBuf>,
    pub file: Option<File>,
}

impl Snapshot {
    fn open(&self) -> io::Result<File> {
        match (&self.file, &self.path) {
            // A clone shares the file position, which writing left at the end.
            (Some(f), _) => {
                let mut f = f.try_clone()?;
                f.seek(io::SeekFrom::Start(0))?;
                Ok(f)
            }
            (None, Some(p)) => File::open(p),
            (None, None) => Err(io::Error::other("a snapshot with neither file nor path")),
        }
    }

    /// Reads the state back, checking the checksum and the structure.
    pub fn load(&self) -> io::Result<Result<State, String>> {
        let mut state = State::default();
        Ok(read(self.open()?, self.offset, |k, v| state.insert(k, v)).map(|()| state))
    }

    /// Checks the checksum and the structure without keeping the state.
    pub fn verify(&self) -> io::Result<Result<(), String>> {
        Ok(read(self.open()?, self.offset, |_, _| {}))
    }

    pub fn name(&self) -> String {
        names::snapshot(self.offset)
    }
}

/// Writes `state`, which holds entries `[.., offset)`, as a snapshot: under
/// a temporary name, fsynced, renamed into place, the directory fsynced.
pub fn write(store: &Store, state: &State, offset: u64) -> io::Result<Snapshot> {
    let Some(dir) = store.dir() else {
        let file = tempfile::tempfile_in(std::env::temp_dir())?;
        let bytes = encode(&file, state, offset)?;
        return Ok(Snapshot {
            offset,
            bytes,
            path: None,
            file: Some(file),
        });
    };
    let path = dir.join(names::snapshot(offset));
    let temp = dir.join(format!("{}{}", names::snapshot(offset), names::TEMP_SUFFIX));
    let result = (|| {
        let file = File::create(&temp)?;
        let bytes = encode(&file, state, offset)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        store.sync_dir()?;
        Ok(bytes)
    })();
    match result {
        Ok(bytes) => Ok(Snapshot {
            offset,
            bytes,
            path: Some(path),
            file: None,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Encodes the snapshot into `file`; returns its length.
fn encode(file: &File, state: &State, offset: u64) -> io::Result<u64> {
    let mut crc = crc32fast::Hasher::new();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut bytes = 0u64;
    let mut put = |out: &mut BufWriter<&File>, b: &[u8]| -> io::Result<()> {
        crc.update(b);
        bytes += b.len() as u64;
        out.write_all(b)
    };
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&offset.to_le_bytes());
    header[24..32].copy_from_slice(&(state.len() as u64).to_le_bytes());
    put(&mut out, &header)?;
    for (k, v) in state.iter() {
        let (kl, vl) = (len32(k)?, len32(v)?);
        put(&mut out, &kl.to_le_bytes())?;
        put(&mut out, &vl.to_le_bytes())?;
        put(&mut out, k.as_bytes())?;
        put(&mut out, v.as_bytes())?;
    }
    let sum = crc.finalize();
    out.write_all(&sum.to_le_bytes())?;
    out.flush()?;
    Ok(bytes + 4)
}

fn len32(s: &str) -> io::Result<u32> {
    u32::try_from(s.len()).map_err(|_| io::Error::other("a key or value over 4 GiB"))
}

/// Reads a snapshot that claims `offset`, handing each key and value to
/// `each`. `Ok(Err(why))` if it is not a whole, intact snapshot.
fn read(file: File, offset: u64, mut each: impl FnMut(String, String)) -> Result<(), String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut r = Counted {
        inner: BufReader::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        left: len.saturating_sub(4),
    };
    if len < (HEADER_LEN + 4) as u64 {
        return Err(format!("{len} bytes long, shorter than a snapshot can be"));
    }
    let mut header = [0u8; HEADER_LEN];
    r.fill(&mut header)?;
    if &header[..8] != MAGIC {
        return Err("no \"walsnaps\" magic".into());
    }
    let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    let long = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
    if word(8) != VERSION {
        return Err(format!("format version {}, not {VERSION}", word(8)));
    }
    if long(16) != offset {
        return Err(format!("it says offset {}, its name {offset}", long(16)));
    }
    let keys = long(24);
    for i in 0..keys {
        let mut lens = [0u8; 8];
        r.fill(&mut lens)?;
        let kl = u32::from_le_bytes(lens[..4].try_into().expect("4 bytes")) as u64;
        let vl = u32::from_le_bytes(lens[4..].try_into().expect("4 bytes")) as u64;
        if kl + vl > r.left {
            return Err(format!("key {i} runs past the end of the file"));
        }
        let mut kv = vec![0u8; (kl + vl) as usize];
        r.fill(&mut kv)?;
        let value = kv.split_off(kl as usize);
        match (String::from_utf8(kv), String::from_utf8(value)) {
            (Ok(k), Ok(v)) => each(k, v),
            _ => return Err(format!("key {i} is not UTF-8")),
        }
    }
    if r.left != 0 {
        return Err(format!("{} bytes after the last key", r.left));
    }
    let computed = r.crc.finalize();
    let mut stored = [0u8; 4];
    r.inner.read_exact(&mut stored).map_err(|e| e.to_string())?;
    if u32::from_le_bytes(stored) != computed {
        return Err("checksum mismatch".into());
    }
    Ok(())
}

/// A reader that checksums what it reads and knows how much is left
/// before the trailing checksum.
struct Counted {
    inner: BufReader<File>,
    crc: crc32fast::Hasher,
    left: u64,
}

impl Counted {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), String> {
        if buf.len() as u64 > self.left {
            return Err("cut short".into());
        }
        self.inner.read_exact(buf).map_err(|e| e.to_string())?;
        self.crc.update(buf);
        self.left -= buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(n: usize) -> State {
        let mut s = State::default();
        for i in 0..n {
            s.apply(format!("set key{i}=value {i}").as_bytes());
        }
        s.apply(b"set empty=");
        s
    }

    #[test]
    fn round_trips_through_a_directory_and_privately() {
        let dir = tempfile::tempdir().unwrap();
        let lock = File::open(dir.path()).unwrap();
        let store = Store::Dir {
            path: dir.path().to_owned(),
            _lock: lock,
        };
        for store in [store, Store::Private] {
            let s = state(100);
            let snap = write(&store, &s, 123).unwrap();
            assert_eq!(snap.load().unwrap(), Ok(s));
            assert_eq!(snap.verify().unwrap(), Ok(()));
        }
    }

    #[test]
    fn every_flipped_bit_and_every_cut_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let lock = File::open(dir.path()).unwrap();
        let store = Store::Dir {
            path: dir.path().to_owned(),
            _lock: lock,
        };
        let snap = write(&store, &state(3), 7).unwrap();
        let path = snap.path.clone().unwrap();
        let good = std::fs::read(&path).unwrap();
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&path, &bad).unwrap();
            assert!(snap.verify().unwrap().is_err(), "bit {bit} went unnoticed");
        }
        for cut in 0..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(
                snap.verify().unwrap().is_err(),
                "a cut at {cut} went unnoticed"
            );
        }
    }
}
