//! Who sent a line that does not parse (over-long, invalid UTF-8, a lone
//! surrogate, cut short), so that the sender can still get an answer.
//!
//! A lenient scan: it follows the line's JSON tokens without checking them,
//! can be fed in pieces as an over-long line streams past, and keeps only
//! the few values a reply needs (top-level `src` and `dest`, and `msg_id`
//! and `offset` in `body`), each at most `MAX_VALUE` bytes. So scanning a
//! 64 MiB line takes a few hundred bytes. A key seen twice counts as the
//! parser counts it: the last one wins.

/// Longest value kept, as written (escapes undecoded). Addresses and
/// numbers are far shorter; a longer one is as good as absent.
const MAX_VALUE: usize = 1024;

/// Longest key worth reading: the longest that matters is `msg_id`.
const MAX_KEY: usize = 8;

/// What a scan found, each value exactly as written in the line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    src: Option<Vec<u8>>,
    dest: Option<Vec<u8>>,
    msg_id: Option<Vec<u8>>,
    offset: Option<Vec<u8>>,
}

impl Found {
    /// The sender and the request's `msg_id`, if both are there and
    /// usable: then the line can be answered.
    pub fn sender(&self) -> Option<(String, u64)> {
        Some((decode_string(self.src.as_deref()?)?, self.msg_id()?))
    }

    /// Whom the line was addressed to, if that is a clean string.
    pub fn dest(&self) -> Option<String> {
        decode_string(self.dest.as_deref()?)
    }

    fn msg_id(&self) -> Option<u64> {
        let digits = self.msg_id.as_deref()?;
        // JSON's integers: no sign, no leading zero.
        let canonical = digits.first().is_some_and(u8::is_ascii_digit)
            && (digits.len() == 1 || digits[0] != b'0');
        if !canonical {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    /// `body.msg_id` as written, if it is a number or literal.
    pub fn raw_msg_id(&self) -> Option<&str> {
        std::str::from_utf8(self.msg_id.as_deref()?).ok()
    }

    /// `body.offset` as written, if it is a number or literal.
    pub fn raw_offset(&self) -> Option<&str> {
        std::str::from_utf8(self.offset.as_deref()?).ok()
    }
}

/// A JSON string's contents as written, decoded strictly: an address with
/// a broken escape or invalid UTF-8 in it is no address to answer.
fn decode_string(raw: &[u8]) -> Option<String> {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

/// Scans a whole line.
pub fn scan(line: &[u8]) -> Found {
    let mut scanner = Scanner::default();
    scanner.feed(line);
    scanner.finish()
}

/// The values the scan keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Src,
    Dest,
    Body,
    MsgId,
    Offset,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Token {
    /// Between tokens.
    #[default]
    Between,
    /// Inside a string; `escaped` after a backslash.
    Str { escaped: bool },
    /// Inside a number or a literal (`true`, `null`, ...).
    Scalar,
}

/// A scan in progress. Feed it the line's bytes in order, then `finish`.
#[derive(Debug, Default)]
pub struct Scanner {
    token: Token,
    /// Nesting depth: 1 inside the top-level object.
    depth: u64,
    /// Whether the container at depth 2 is the top object's `body` object.
    in_body: bool,
    /// In the top object or in `body`: whether the next string is a key.
    want_key: bool,
    /// The key whose value comes next, in the top object or in `body`.
    key: Option<Key>,
    /// The token being read, when it is a key or a value that is kept.
    text: Vec<u8>,
    keeping: bool,
    /// `text` outgrew its limit: the token is of no use.
    too_long: bool,
    /// The first token was read (it must open an object).
    started: bool,
    /// The top-level object closed, or the line is not one: later bytes
    /// cannot change the answer.
    done: bool,
    found: Found,
}

impl Scanner {
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !self.done && !bytes.is_empty() {
            let used = match self.token {
                Token::Between => {
                    self.between(bytes[0]);
                    1
                }
                Token::Str { escaped } => self.in_string(bytes, escaped),
                Token::Scalar => self.in_scalar(bytes),
            };
            bytes = &bytes[used..];
        }
    }

    /// What was found. A token cut off by the end of the line is not used:
    /// `"msg_id":12` at the very end may have been `"msg_id":123`.
    pub fn finish(self) -> Found {
        self.found
    }

    /// Whether the current container is the top object or `body`, whose
    /// keys matter.
    fn watched(&self) -> bool {
        self.depth == 1 || (self.depth == 2 && self.in_body)
    }

    fn between(&mut self, b: u8) {
        if !self.started {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => return,
                b'{' => {
                    self.started = true;
                    self.depth = 1;
                    self.want_key = true;
                }
                // Not an object: no sender to find.
                _ => self.done = true,
            }
            return;
        }
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | b':' => {}
            b',' => {
                if self.watched() {
                    self.want_key = true;
                    self.key = None;
                }
            }
            b'{' | b'[' => {
                if self.watched() {
                    let key = self.value_starts();
                    if key == Some(Key::Body) && b == b'{' {
                        self.in_body = true;
                        self.want_key = true;
                    }
                }
                self.depth += 1;
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.done = true;
                } else if self.depth == 1 {
                    self.in_body = false;
                }
                if self.watched() {
                    // A value just ended: a comma comes before the next key.
                    self.want_key = false;
                    self.key = None;
                }
            }
            b'"' => {
                self.keeping = self.watched()
                    && (self.want_key
                        || (self.depth == 1 && matches!(self.key, Some(Key::Src | Key::Dest))));
                self.start_text();
                self.token = Token::Str { escaped: false };
            }
            _ => {
                self.keeping = self.depth == 2
                    && self.in_body
                    && !self.want_key
                    && matches!(self.key, Some(Key::MsgId | Key::Offset));
                self.start_text();
                self.token = Token::Scalar;
                self.keep(&[b]);
            }
        }
    }

    /// Reads string bytes up to the closing quote; returns how many it used.
    fn in_string(&mut self, bytes: &[u8], mut escaped: bool) -> usize {
        for (i, &b) in bytes.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                self.keep(&bytes[..i]);
                self.token = Token::Between;
                self.string_ends();
                return i + 1;
            }
        }
        self.keep(bytes);
        self.token = Token::Str { escaped };
        bytes.len()
    }

    /// Reads a number or literal up to the byte that ends it (left unread).
    fn in_scalar(&mut self, bytes: &[u8]) -> usize {
        let end = bytes.iter().position(|&b| {
            matches!(
                b,
                b' ' | b'\t' | b'\r' | b'\n' | b',' | b':' | b'{' | b'}' | b'[' | b']' | b'"'
            )
        });
        match end {
            Some(i) => {
                self.keep(&bytes[..i]);
                self.token = Token::Between;
                if self.watched() && !self.want_key {
                    let text = self.kept_text();
                    self.value_ends(text, false);
                }
                i
            }
            None => {
                self.keep(bytes);
                bytes.len()
            }
        }
    }

    fn string_ends(&mut self) {
        if !self.watched() {
            return;
        }
        let text = self.kept_text();
        if self.want_key {
            self.want_key = false;
            self.key = Some(match (self.depth, text.as_deref()) {
                (1, Some(b"src")) => Key::Src,
                (1, Some(b"dest")) => Key::Dest,
                (1, Some(b"body")) => Key::Body,
                (2, Some(b"msg_id")) => Key::MsgId,
                (2, Some(b"offset")) => Key::Offset,
                _ => Key::Other,
            });
        } else {
            self.value_ends(text, true);
        }
    }

    /// A container value starts under the current key: what it replaces is
    /// gone (`"src":{...}` leaves no `src`). Returns that key.
    fn value_starts(&mut self) -> Option<Key> {
        let key = self.key.take();
        self.set(key, None, false);
        key
    }

    /// A string or scalar value ended under the current key.
    fn value_ends(&mut self, text: Option<Vec<u8>>, is_string: bool) {
        let key = self.key.take();
        self.set(key, text, is_string);
    }

    fn set(&mut self, key: Option<Key>, text: Option<Vec<u8>>, is_string: bool) {
        let found = &mut self.found;
        match key {
            Some(Key::Src) => found.src = text.filter(|_| is_string),
            Some(Key::Dest) => found.dest = text.filter(|_| is_string),
            Some(Key::MsgId) => found.msg_id = text.filter(|_| !is_string),
            Some(Key::Offset) => found.offset = text.filter(|_| !is_string),
            // A new `body` replaces the old one and all it held.
            Some(Key::Body) => {
                found.msg_id = None;
                found.offset = None;
            }
            Some(Key::Other) | None => {}
        }
    }

    fn start_text(&mut self) {
        self.text.clear();
        self.too_long = false;
    }

    fn keep(&mut self, bytes: &[u8]) {
        if !self.keeping || self.too_long {
            return;
        }
        let limit = if self.want_key { MAX_KEY } else { MAX_VALUE };
        if self.text.len() + bytes.len() > limit {
            self.too_long = true;
            self.text.clear();
        } else {
            self.text.extend_from_slice(bytes);
        }
    }

    /// The token just read, if it was kept whole.
    fn kept_text(&mut self) -> Option<Vec<u8>> {
        (self.keeping && !self.too_long).then(|| std::mem::take(&mut self.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(line: &[u8]) -> Option<(String, u64)> {
        scan(line).sender()
    }

    /// The same line fed one byte at a time finds the same.
    fn scan_bytewise(line: &[u8]) -> Found {
        let mut s = Scanner::default();
        for b in line {
            s.feed(std::slice::from_ref(b));
        }
        s.finish()
    }

    #[test]
    fn finds_the_sender_of_lines_that_do_not_parse() {
        let cases: [&[u8]; 6] = [
            b"{\"src\":\"c1\",\"body\":{\"msg_id\":7,\"payload\":\"\xff\"}}",
            br#"{"src":"c1","body":{"msg_id":7,"payload":"\ud800"}}"#,
            br#"{"body":{"payload":"x\"y\\","msg_id":7},"dest":"n1","src":"c1"}"#,
            br#"{"src":"c1","body":{"msg_id":7,"payload":"cut sho"#,
            br#" { "src" : "c1" , "body" : { "a":[{"msg_id":1}], "msg_id" : 7 } } trailing"#,
            br#"{"src":"c\u0031","body":{"msg_id":7}}{"src":"c2","body":{"msg_id":8}}"#,
        ];
        for line in cases {
            assert_eq!(
                sender(line),
                Some(("c1".into(), 7)),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(scan_bytewise(line), scan(line));
        }
    }

    #[test]
    fn finds_no_sender_where_there_is_none() {
        let cases: [&[u8]; 12] = [
            b"",
            b"not json",
            br#"["src","c1",{"body":{"msg_id":7}}]"#,
            br#"x{"src":"c1","body":{"msg_id":7}}"#,
            br#"{"body":{"msg_id":7}}"#,
            br#"{"src":"c1","body":{"payload":"x"}}"#,
            br#"{"src":"c1","body":{"msg_id":7},"body":{}}"#,
            br#"{"src":"c1","body":{"msg_id":7},"src":5}"#,
            br#"{"src":"c1","other":{"msg_id":7}}"#,
            br#"{"src":"c1","body":{"x":{"msg_id":7}}}"#,
            br#"{"src":"\ud800","body":{"msg_id":7}}"#,
            // The number may go on past the end of the line.
            br#"{"src":"c1","body":{"msg_id":7"#,
        ];
        for line in cases {
            assert_eq!(sender(line), None, "{}", String::from_utf8_lossy(line));
            assert_eq!(scan_bytewise(line), scan(line));
        }
    }

    #[test]
    fn only_json_integers_in_range_are_msg_ids() {
        for (raw, id) in [
            ("0", Some(0)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("-1", None),
            ("1.0", None),
            ("1e3", None),
            ("007", None),
            ("true", None),
            ("\"7\"", None),
        ] {
            let line = format!(r#"{{"src":"c1","body":{{"msg_id":{raw}}}}}"#);
            assert_eq!(sender(line.as_bytes()).map(|s| s.1), id, "msg_id {raw}");
        }
    }

    #[test]
    fn keeps_values_as_written_and_bounded() {
        let found = scan(br#"{"body":{"offset":18446744073709551616,"msg_id":1e400}}"#);
        assert_eq!(found.raw_offset(), Some("18446744073709551616"));
        assert_eq!(found.raw_msg_id(), Some("1e400"));
        let long_src = format!(
            r#"{{"src":"{}","body":{{"msg_id":1}}}}"#,
            "c".repeat(MAX_VALUE + 1)
        );
        assert_eq!(sender(long_src.as_bytes()), None);
        assert!(scan(long_src.as_bytes()).src.is_none());
    }
}
