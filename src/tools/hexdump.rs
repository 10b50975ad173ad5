//! Exact bytes for a person (`inspect --hex`) and for a program (the JSON
//! `payload_hex` field): a payload's real bytes, whatever they hold.

use std::fmt::Write as _;
use std::io::{self, Write};

/// Bytes shown per line of a dump, as `hexdump -C` does.
const PER_LINE: usize = 16;

/// Writes `bytes` as `hexdump -C` would, each line indented by `indent`
/// spaces: the position within the payload, 16 bytes in hex (a gap after 8),
/// then those bytes as text with anything but printable ASCII shown as `.`.
pub fn dump(bytes: &[u8], indent: usize, out: &mut dyn Write) -> io::Result<()> {
    for (k, line) in bytes.chunks(PER_LINE).enumerate() {
        let mut hex = String::with_capacity(3 * PER_LINE + 1);
        for (i, b) in line.iter().enumerate() {
            let gap = if i == PER_LINE / 2 { " " } else { "" };
            let _ = write!(hex, "{gap} {b:02x}");
        }
        let text: String = line
            .iter()
            .map(|&b| {
                if b == b' ' || b.is_ascii_graphic() {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(
            out,
            "{:indent$}{:08x} {hex:<49}  |{text}|",
            "",
            k * PER_LINE
        )?;
    }
    Ok(())
}

/// `bytes` as lowercase hex digits, two per byte.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_shows_every_byte_and_its_position() {
        let mut out = Vec::new();
        dump(b"entry 0: \x00\xff\tabcdefghij", 2, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "  00000000  65 6e 74 72 79 20 30 3a  20 00 ff 09 61 62 63 64  |entry 0: ...abcd|\n  \
             00000010  65 66 67 68 69 6a                                 |efghij|\n"
        );
    }

    #[test]
    fn an_empty_payload_dumps_nothing() {
        let mut out = Vec::new();
        dump(b"", 0, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn hex_is_two_lowercase_digits_per_byte() {
        assert_eq!(hex(b"\x00\xabZ"), "00ab5a");
    }
}
