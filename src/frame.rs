//! The on-disk frame: `[u32 LE payload length][u32 LE CRC-32 of payload][payload]`.
//!
//! Pure functions only, so the format can be tested exhaustively without a
//! file. The format is described byte by byte in README.md ("File format").

/// Bytes before the payload: length word then CRC word.
pub const HEADER_LEN: usize = 8;

/// Default cap on one payload, in bytes (`--max-entry-bytes`).
pub const DEFAULT_MAX_ENTRY_BYTES: u32 = 1 << 20;

/// CRC-32 (IEEE), as crc32fast computes it.
pub fn checksum(payload: &[u8]) -> u32 {
    crc32fast::hash(payload)
}

/// The checksum as it appears on the wire: exactly 8 lowercase hex digits.
/// Built digit by digit: one per append reply, and `format!` cost ten
/// times as much.
pub fn checksum_hex(crc: u32) -> String {
    checksum_digits(crc)
        .iter()
        .map(|&d| char::from(d))
        .collect()
}

/// `checksum_hex`'s digits as bytes, for writing straight into a reply.
pub fn checksum_digits(crc: u32) -> [u8; 8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0; 8];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = DIGITS[(crc >> (28 - 4 * i)) as usize & 0xf];
    }
    hex
}

/// Appends one whole frame for `payload` to `out`.
///
/// Callers must refuse empty payloads first: a zero length word marks the
/// end of the log, so an empty frame would be indistinguishable from a
/// zero-filled tail.
pub fn encode_into(out: &mut Vec<u8>, payload: &[u8]) -> u32 {
    debug_assert!(!payload.is_empty(), "empty payloads are not frames");
    let crc = checksum(payload);
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    crc
}

/// One whole frame for `payload`.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_into(&mut out, payload);
    out
}

/// A decoded header, before anything is known about the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u32,
    pub crc: u32,
}

impl Header {
    /// Reads the two header words; `bytes` must hold at least `HEADER_LEN`.
    pub fn decode(bytes: &[u8]) -> Header {
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        Header {
            length: word(0),
            crc: word(4),
        }
    }

    /// Size of the whole frame this header announces.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.length)
    }

    /// Why this header cannot start a frame at `offset` in a file of
    /// `file_len` bytes, or `None` if it can. Checked before anything is
    /// allocated for the payload.
    pub fn defect(&self, offset: u64, file_len: u64, max_entry_bytes: u32) -> Option<HeaderDefect> {
        if self.length == 0 {
            Some(HeaderDefect::ZeroLength)
        } else if self.length > max_entry_bytes {
            Some(HeaderDefect::TooLong)
        } else if offset + self.frame_len() > file_len {
            Some(HeaderDefect::PastEndOfFile)
        } else {
            None
        }
    }
}

/// Ways a header can be impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderDefect {
    ZeroLength,
    TooLong,
    PastEndOfFile,
    /// Found by replay, not by `Header::defect`: the frame's CRC fails and a
    /// whole frame starts inside the bytes its length word claims (or the
    /// search for one ran out of budget, so one may).
    SwallowsWholeFrame,
}

impl std::fmt::Display for HeaderDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeaderDefect::ZeroLength => "length word is 0",
            HeaderDefect::TooLong => "length word exceeds --max-entry-bytes",
            HeaderDefect::PastEndOfFile => "frame runs past the end of the file",
            HeaderDefect::SwallowsWholeFrame => {
                "checksum fails, and the bytes its length word claims hold what looks like a whole frame"
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_the_task_example() {
        let frame = encode(b"set x=42");
        assert_eq!(
            frame.len(),
            16,
            "the task's example: 8-byte payload, 16 bytes"
        );
        assert_eq!(&frame[0..4], &8u32.to_le_bytes());
        assert_eq!(&frame[4..8], &crc32fast::hash(b"set x=42").to_le_bytes());
        assert_eq!(&frame[8..], b"set x=42");
    }

    #[test]
    fn checksum_is_eight_lowercase_hex_digits() {
        assert_eq!(checksum_hex(0), "00000000");
        assert_eq!(checksum_hex(0xDEADBEEF), "deadbeef");
        // Known CRC-32/IEEE check value.
        assert_eq!(checksum_hex(checksum(b"123456789")), "cbf43926");
    }

    #[test]
    fn zero_header_is_never_a_frame() {
        let h = Header::decode(&[0; 8]);
        assert_eq!(
            h.defect(0, 1 << 20, DEFAULT_MAX_ENTRY_BYTES),
            Some(HeaderDefect::ZeroLength)
        );
    }

    #[test]
    fn header_defects_are_checked_before_allocation() {
        let too_long = Header {
            length: 2000,
            crc: 0,
        };
        assert_eq!(
            too_long.defect(0, 1 << 30, 1000),
            Some(HeaderDefect::TooLong)
        );
        let past_end = Header { length: 10, crc: 0 };
        assert_eq!(
            past_end.defect(100, 117, 1000),
            Some(HeaderDefect::PastEndOfFile)
        );
        assert_eq!(past_end.defect(100, 118, 1000), None);
    }

    proptest! {
        #[test]
        fn checksum_hex_is_what_format_gives(crc in any::<u32>()) {
            prop_assert_eq!(checksum_hex(crc), format!("{crc:08x}"));
        }

        #[test]
        fn round_trips(payload in proptest::collection::vec(any::<u8>(), 1..512)) {
            let frame = encode(&payload);
            let h = Header::decode(&frame);
            prop_assert_eq!(h.length as usize, payload.len());
            prop_assert_eq!(h.frame_len() as usize, frame.len());
            prop_assert_eq!(h.crc, checksum(&frame[HEADER_LEN..]));
            prop_assert_eq!(h.defect(0, frame.len() as u64, 512), None);
        }

        #[test]
        fn any_single_bit_flip_in_payload_is_detected(
            payload in proptest::collection::vec(any::<u8>(), 1..256),
            bit in 0usize..2048,
        ) {
            let mut frame = encode(&payload);
            let bit = bit % (payload.len() * 8);
            frame[HEADER_LEN + bit / 8] ^= 1 << (bit % 8);
            let h = Header::decode(&frame);
            prop_assert_ne!(h.crc, checksum(&frame[HEADER_LEN..]));
        }
    }
}
