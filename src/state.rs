//! The key-value state the log's entries build (README "State").
//!
//! Grammar of a payload, applied in offset order:
//! - `set <key>=<value>`: `<key>` is everything between `set ` and the first
//!   `=` and must not be empty; `<value>` is everything after that `=`,
//!   possibly empty (`set a=b=c` sets `a` to `b=c`);
//! - `del <key>`: removes `<key>` (everything after `del `, not empty);
//! - anything else (`set =x`, `set x`, `hello`) stays in the log and leaves
//!   the state as it is.

use std::collections::BTreeMap;

/// What one payload does to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    Set {
        key: &'a str,
        value: &'a str,
    },
    Del {
        key: &'a str,
    },
    /// Kept in the log, no effect on the state.
    Other,
}

impl<'a> Op<'a> {
    pub fn parse(payload: &'a [u8]) -> Op<'a> {
        let Ok(text) = std::str::from_utf8(payload) else {
            return Op::Other;
        };
        if let Some(rest) = text.strip_prefix("set ") {
            if let Some((key, value)) = rest.split_once('=')
                && !key.is_empty()
            {
                return Op::Set { key, value };
            }
        } else if let Some(key) = text.strip_prefix("del ")
            && !key.is_empty()
        {
            return Op::Del { key };
        }
        Op::Other
    }
}

/// The state: every key set and not since deleted, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    map: BTreeMap<String, String>,
}

impl State {
    pub fn apply(&mut self, payload: &[u8]) {
        match Op::parse(payload) {
            Op::Set { key, value } => {
                // Reuse the key's allocation when it is already there.
                match self.map.get_mut(key) {
                    Some(v) => {
                        v.clear();
                        v.push_str(value);
                    }
                    None => {
                        self.map.insert(key.to_owned(), value.to_owned());
                    }
                }
            }
            Op::Del { key } => {
                self.map.remove(key);
            }
            Op::Other => {}
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn insert(&mut self, key: String, value: String) {
        self.map.insert(key, value);
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.map
    }
}

/// How an entry given to `wal_recover` says its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    Valid,
    Invalid,
    /// CRC-32 to compare with the payload's.
    Crc(u32),
}

/// One entry of a `wal_recover` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenEntry {
    pub offset: u64,
    pub payload: String,
    pub checksum: Claimed,
}

impl GivenEntry {
    pub fn is_valid(&self) -> bool {
        match self.checksum {
            Claimed::Valid => true,
            Claimed::Invalid => false,
            Claimed::Crc(crc) => crc == crate::frame::checksum(self.payload.as_bytes()),
        }
    }
}

/// Recovery as a pure function: replays `entries` in order on a fresh
/// state until the first whose checksum is not valid; that one and every
/// one after it are skipped (a torn write ends a log). Returns the state,
/// the entries replayed and the entries skipped.
pub fn recover(entries: &[GivenEntry]) -> (State, u64, u64) {
    let mut state = State::default();
    let replayed = entries.iter().take_while(|e| e.is_valid()).count();
    for e in &entries[..replayed] {
        state.apply(e.payload.as_bytes());
    }
    (state, replayed as u64, (entries.len() - replayed) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_with_its_edge_cases() {
        let set = |key, value| Op::Set { key, value };
        assert_eq!(Op::parse(b"set x=42"), set("x", "42"));
        assert_eq!(Op::parse(b"set a=b=c"), set("a", "b=c"));
        assert_eq!(Op::parse(b"set z="), set("z", ""));
        assert_eq!(
            Op::parse(b"set key with spaces=v"),
            set("key with spaces", "v")
        );
        assert_eq!(Op::parse(b"del x"), Op::Del { key: "x" });
        for other in [
            &b"set =x"[..],
            b"set x",
            b"set ",
            b"del ",
            b"SET x=1",
            b"setx=1",
            b"hello",
            b"del",
            b"\xff\xfe set x=1",
        ] {
            assert_eq!(
                Op::parse(other),
                Op::Other,
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn apply_sets_overwrites_and_deletes() {
        let mut s = State::default();
        for p in [
            "set x=1",
            "set y=2",
            "noise",
            "set x=3",
            "del y",
            "del nothing",
        ] {
            s.apply(p.as_bytes());
        }
        assert_eq!(s.get("x"), Some("3"));
        assert_eq!(s.get("y"), None);
        assert_eq!(s.len(), 1);
    }

    fn given(offset: u64, payload: &str, checksum: Claimed) -> GivenEntry {
        GivenEntry {
            offset,
            payload: payload.into(),
            checksum,
        }
    }

    #[test]
    fn recovery_stops_at_the_first_invalid_entry() {
        let crc = crate::frame::checksum(b"set y=2");
        let entries = [
            given(0, "set x=1", Claimed::Valid),
            given(1, "set y=2", Claimed::Crc(crc)),
            given(2, "set z=", Claimed::Invalid),
            given(3, "set w=4", Claimed::Valid),
        ];
        let (state, replayed, skipped) = recover(&entries);
        assert_eq!((replayed, skipped), (2, 2));
        assert_eq!(state.get("x"), Some("1"));
        assert_eq!(state.get("y"), Some("2"));
        assert_eq!(state.get("w"), None, "nothing after a torn entry");

        let wrong = [given(0, "set x=1", Claimed::Crc(crc))];
        assert_eq!(recover(&wrong).1, 0, "a CRC that does not match is invalid");
    }
}
