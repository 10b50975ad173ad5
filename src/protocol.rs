//! The wire: Maelstrom envelopes, request validation, reply bodies.

pub mod attribution;
mod envelope;

pub use envelope::{Body, Envelope, Field, parse_envelope};

use crate::fsbench::{self, Strategy};
use crate::state::{Claimed, GivenEntry};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Maelstrom's error codes, as used by this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotSupported = 10,
    TemporarilyUnavailable = 11,
    MalformedRequest = 12,
    /// Indefinite: the operation may or may not have happened.
    Crash = 13,
    /// Definite: the operation did not happen.
    Abort = 14,
    KeyDoesNotExist = 20,
    PreconditionFailed = 22,
}

/// A request that gets an error reply instead of being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub text: String,
}

impl Rejection {
    pub fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        Rejection {
            code,
            text: text.into(),
        }
    }

    fn malformed(text: impl Into<String>) -> Self {
        Rejection::new(ErrorCode::MalformedRequest, text)
    }
}

/// A validated request; an append's payload is still a slice of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    Init {
        node_id: String,
    },
    Append {
        payload: Cow<'a, str>,
    },
    Read {
        offset: u64,
    },
    Info,
    SegmentConfig {
        max_segment_bytes: u64,
    },
    SegmentInfo,
    /// The whole state, or one key.
    State {
        key: Option<String>,
    },
    Recover {
        entries: Vec<GivenEntry>,
    },
    Snapshot,
    Compact {
        before: u64,
    },
    FsyncBenchmark {
        entries: u32,
        strategies: Vec<Strategy>,
    },
}

/// The request kinds, known before their fields are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    Append,
    Read,
    Info,
    SegmentConfig,
    SegmentInfo,
    State,
    Recover,
    Snapshot,
    Compact,
    FsyncBenchmark,
}

/// The body's `msg_id`, if it has a usable one.
pub fn msg_id(body: &Body) -> Option<u64> {
    match body.msg_id {
        Some(Field::U64(id)) => Some(id),
        _ => None,
    }
}

/// The body's type: error 10 if unknown, 12 if missing.
pub fn kind(body: &Body) -> Result<Kind, Rejection> {
    match &body.type_ {
        Some(Field::Str(t)) => match t.as_ref() {
            "init" => Ok(Kind::Init),
            "wal_append" => Ok(Kind::Append),
            "wal_read" => Ok(Kind::Read),
            "wal_info" => Ok(Kind::Info),
            "wal_segment_config" => Ok(Kind::SegmentConfig),
            "wal_segment_info" => Ok(Kind::SegmentInfo),
            "wal_state" => Ok(Kind::State),
            "wal_recover" => Ok(Kind::Recover),
            "wal_snapshot" => Ok(Kind::Snapshot),
            "wal_compact" => Ok(Kind::Compact),
            "fsync_benchmark" => Ok(Kind::FsyncBenchmark),
            other => Err(Rejection::new(
                ErrorCode::NotSupported,
                format!(
                    "unsupported message type {other:?}; this node serves {}",
                    SERVED.join(", ")
                ),
            )),
        },
        Some(_) => Err(Rejection::malformed("field `type` must be a string")),
        None => Err(Rejection::malformed("missing field `type`")),
    }
}

/// Checks every field of a request of kind `kind`. `line` is the request
/// as received, read again only to show a bad number as it was written.
/// The hot requests are checked on the parsed fields as they are; the rare
/// ones on the body as a map.
pub fn validate<'a>(
    kind: Kind,
    body: &mut Body<'a>,
    max_entry_bytes: u32,
    line: &[u8],
) -> Result<Request<'a>, Rejection> {
    if msg_id(body).is_none() {
        return Err(match &body.msg_id {
            None => Rejection::malformed("missing field `msg_id`"),
            Some(v) => out_of_range(
                "msg_id",
                &v.to_value(),
                attribution::scan(line).raw_msg_id(),
            ),
        });
    }
    match kind {
        Kind::Append => {
            let payload = match body.payload.take() {
                Some(Field::Str(p)) => p,
                Some(v) => return Err(not_a_string("payload", &v.to_value())),
                None => return Err(Rejection::malformed("missing field `payload`")),
            };
            if payload.is_empty() {
                return Err(Rejection::malformed(
                    "field `payload` is empty; an entry needs at least one byte",
                ));
            }
            if payload.len() > max_entry_bytes as usize {
                return Err(Rejection::malformed(format!(
                    "field `payload` is {} bytes, over the limit of {max_entry_bytes} (--max-entry-bytes)",
                    payload.len()
                )));
            }
            Ok(Request::Append { payload })
        }
        Kind::Read => match &body.offset {
            Some(Field::U64(offset)) => Ok(Request::Read { offset: *offset }),
            Some(v) => Err(out_of_range(
                "offset",
                &v.to_value(),
                attribution::scan(line).raw_offset(),
            )),
            None => Err(Rejection::malformed("missing field `offset`")),
        },
        Kind::Info => Ok(Request::Info),
        rare => validate_rare(rare, &body.to_map()),
    }
}

/// The requests that come once or seldom, checked on the whole body.
fn validate_rare(kind: Kind, body: &Map<String, Value>) -> Result<Request<'static>, Rejection> {
    match kind {
        Kind::Init => {
            let node_id = string_field(body, "node_id")?;
            check_node_id(node_id)?;
            match body.get("node_ids") {
                Some(Value::Array(ids)) if ids.iter().all(Value::is_string) => {}
                _ => {
                    return Err(Rejection::malformed(
                        "field `node_ids` must be an array of strings",
                    ));
                }
            }
            Ok(Request::Init {
                node_id: node_id.to_owned(),
            })
        }
        Kind::Append | Kind::Read | Kind::Info => {
            unreachable!("hot requests are checked as parsed")
        }
        Kind::FsyncBenchmark => Ok(Request::FsyncBenchmark {
            entries: bench_entries(body)?,
            strategies: bench_strategies(body)?,
        }),
        Kind::SegmentConfig => segment_limit(body),
        Kind::SegmentInfo => Ok(Request::SegmentInfo),
        Kind::State => match body.get("key") {
            None => Ok(Request::State { key: None }),
            Some(_) => Ok(Request::State {
                key: Some(string_field(body, "key")?.to_owned()),
            }),
        },
        Kind::Recover => given_entries(body).map(|entries| Request::Recover { entries }),
        Kind::Snapshot => Ok(Request::Snapshot),
        Kind::Compact => match body.get("snapshot_at_offset") {
            Some(v) => v
                .as_u64()
                .map(|before| Request::Compact { before })
                .ok_or_else(|| out_of_range("snapshot_at_offset", v, None)),
            None => Err(Rejection::malformed("missing field `snapshot_at_offset`")),
        },
    }
}

/// Every request type the node serves, for the error that names them.
pub const SERVED: [&str; 11] = [
    "init",
    "wal_append",
    "wal_read",
    "wal_info",
    "wal_segment_config",
    "wal_segment_info",
    "wal_state",
    "wal_recover",
    "wal_snapshot",
    "wal_compact",
    "fsync_benchmark",
];

/// `wal_recover`'s entries: each an object with an integer `offset` (each
/// after the one before), a string `payload` and a `checksum` that is
/// `"valid"`, `"invalid"` or 8 hex digits.
fn given_entries(body: &Map<String, Value>) -> Result<Vec<GivenEntry>, Rejection> {
    let list = match body.get("wal_entries") {
        Some(Value::Array(list)) => list,
        Some(v) => {
            return Err(Rejection::malformed(format!(
                "field `wal_entries` must be an array of entries, got {v}"
            )));
        }
        None => return Err(Rejection::malformed("missing field `wal_entries`")),
    };
    let mut entries: Vec<GivenEntry> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let bad = |why: String| Rejection::malformed(format!("wal_entries[{i}]: {why}"));
        let Value::Object(e) = item else {
            return Err(bad(format!("must be an object, got {item}")));
        };
        let offset = match e.get("offset") {
            Some(v) => v.as_u64().ok_or_else(|| {
                bad(format!(
                    "`offset` must be an integer from 0 to {}, got {v}",
                    u64::MAX
                ))
            })?,
            None => return Err(bad("missing field `offset`".into())),
        };
        if let Some(prev) = entries.last()
            && offset <= prev.offset
        {
            return Err(bad(format!(
                "offsets out of order: {offset} after {}; each entry's offset must be greater \
                 than the one before",
                prev.offset
            )));
        }
        let payload = match e.get("payload") {
            Some(Value::String(p)) => p.clone(),
            Some(v) => return Err(bad(format!("`payload` must be a string, got {v}"))),
            None => return Err(bad("missing field `payload`".into())),
        };
        let checksum = match e.get("checksum") {
            Some(Value::String(c)) if c == "valid" => Claimed::Valid,
            Some(Value::String(c)) if c == "invalid" => Claimed::Invalid,
            Some(Value::String(c)) if c.len() == 8 && c.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Claimed::Crc(u32::from_str_radix(c, 16).expect("8 hex digits"))
            }
            Some(v) => {
                return Err(bad(format!(
                    "`checksum` must be \"valid\", \"invalid\" or 8 hex digits, got {v}"
                )));
            }
            None => return Err(bad("missing field `checksum`".into())),
        };
        entries.push(GivenEntry {
            offset,
            payload,
            checksum,
        });
    }
    Ok(entries)
}

fn segment_limit(body: &Map<String, Value>) -> Result<Request<'static>, Rejection> {
    use crate::log::{MAX_SEGMENT_BYTES as MAX, MIN_SEGMENT_BYTES as MIN};
    let v = body
        .get("max_segment_bytes")
        .ok_or_else(|| Rejection::malformed("missing field `max_segment_bytes`"))?;
    match v.as_u64() {
        Some(n) if (MIN..=MAX).contains(&n) => Ok(Request::SegmentConfig {
            max_segment_bytes: n,
        }),
        _ => Err(Rejection::malformed(format!(
            "field `max_segment_bytes` must be an integer from {MIN} to {MAX} (1 KiB to 1 GiB), got {v}"
        ))),
    }
}

/// A field that must be a u64 and is not. The parser keeps a number out of
/// u64's range only as a float (2^64 would show as 1.8446744073709552e+19),
/// so the text is the value as written in the line (`raw`) when that is what
/// the parser read.
fn out_of_range(name: &str, v: &Value, raw: Option<&str>) -> Rejection {
    let written = raw.filter(|r| serde_json::from_str::<Value>(r).ok().as_ref() == Some(v));
    let shown = written.map_or_else(|| v.to_string(), str::to_owned);
    Rejection::malformed(format!(
        "field `{name}` must be an integer from 0 to {}, got {shown}",
        u64::MAX
    ))
}

fn bench_entries(body: &Map<String, Value>) -> Result<u32, Rejection> {
    let max = fsbench::MAX_ENTRIES;
    match body.get("entries") {
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=u64::from(max)).contains(n))
            .map(|n| n as u32)
            .ok_or_else(|| {
                Rejection::malformed(format!(
                    "field `entries` must be an integer from 1 to {max}, got {v}"
                ))
            }),
        None => Err(Rejection::malformed("missing field `entries`")),
    }
}

/// The strategies asked for, in order: at least one, each known, none twice.
fn bench_strategies(body: &Map<String, Value>) -> Result<Vec<Strategy>, Rejection> {
    let known = || {
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
        names.join(", ")
    };
    let names = match body.get("strategies") {
        Some(Value::Array(names)) => names,
        Some(v) => {
            return Err(Rejection::malformed(format!(
                "field `strategies` must be an array of strategy names ({}), got {v}",
                known()
            )));
        }
        None => return Err(Rejection::malformed("missing field `strategies`")),
    };
    if names.is_empty() {
        return Err(Rejection::malformed(format!(
            "field `strategies` is empty; name at least one of {}",
            known()
        )));
    }
    let mut strategies = Vec::with_capacity(names.len());
    for name in names {
        let strategy = name.as_str().and_then(Strategy::from_name).ok_or_else(|| {
            Rejection::malformed(format!(
                "field `strategies` holds {name}, which is not a strategy; known: {}",
                known()
            ))
        })?;
        if strategies.contains(&strategy) {
            return Err(Rejection::malformed(format!(
                "field `strategies` names {name} twice"
            )));
        }
        strategies.push(strategy);
    }
    Ok(strategies)
}

fn string_field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, Rejection> {
    match body.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(not_a_string(name, v)),
        None => Err(Rejection::malformed(format!("missing field `{name}`"))),
    }
}

fn not_a_string(name: &str, v: &Value) -> Rejection {
    Rejection::malformed(format!("field `{name}` must be a string, got {v}"))
}

/// A node id becomes a file name, so it must not be able to name a path.
pub fn check_node_id(id: &str) -> Result<(), Rejection> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) || id == "." || id == ".." {
        return Err(Rejection::malformed(format!(
            "field `node_id` {id:?} is not a valid node id: use 1 to 64 characters of A-Z a-z 0-9 _ . - \
             (and not . or ..)"
        )));
    }
    Ok(())
}

/// A reply body. Keys serialize in the order `type`, `in_reply_to`, the
/// reply's fields, and then the envelope adds `msg_id`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    InitOk {
        in_reply_to: u64,
    },
    WalAppendOk {
        in_reply_to: u64,
        offset: u64,
        length: u32,
        /// The CRC, written as 8 lowercase hex digits.
        #[serde(serialize_with = "crc_hex")]
        checksum: u32,
    },
    WalReadOk {
        in_reply_to: u64,
        payload: String,
        checksum_valid: bool,
        length: u64,
        #[serde(serialize_with = "crc_hex")]
        checksum: u32,
    },
    WalInfoOk {
        in_reply_to: u64,
        entries: u64,
        total_bytes: u64,
        fsynced: bool,
        corrupt_entries: u64,
        first_offset: u64,
    },
    WalSegmentConfigOk {
        in_reply_to: u64,
        max_segment_bytes: u64,
    },
    WalSegmentInfoOk {
        in_reply_to: u64,
        segments: Vec<SegmentRow>,
        active_segment: String,
    },
    #[serde(rename = "wal_state_ok")]
    WalStateOk {
        in_reply_to: u64,
        state: BTreeMap<String, String>,
    },
    #[serde(rename = "wal_state_ok")]
    WalStateKeyOk {
        in_reply_to: u64,
        key: String,
        value: String,
    },
    WalRecoverOk {
        in_reply_to: u64,
        entries_replayed: u64,
        entries_skipped: u64,
        state: BTreeMap<String, String>,
    },
    WalSnapshotOk {
        in_reply_to: u64,
        snapshot_offset: u64,
        snapshot_size_bytes: u64,
    },
    WalCompactOk {
        in_reply_to: u64,
        snapshot_offset: u64,
        entries_before: u64,
        entries_after: u64,
        bytes_freed: u64,
    },
    FsyncBenchmarkOk {
        in_reply_to: u64,
        results: Vec<BenchResult>,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<u64>,
        code: u32,
        text: String,
    },
}

/// A CRC as the wire shows it: exactly 8 lowercase hex digits.
fn crc_hex<S: Serializer>(crc: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::frame::checksum_hex(*crc))
}

/// One segment in `wal_segment_info_ok`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SegmentRow {
    pub file: String,
    pub start_offset: u64,
    /// The offset of its last entry; `null` while it holds none.
    pub end_offset: Option<u64>,
    pub size_bytes: u64,
    pub sealed: bool,
}

impl From<crate::log::SegmentInfo> for SegmentRow {
    fn from(s: crate::log::SegmentInfo) -> Self {
        SegmentRow {
            file: s.file,
            start_offset: s.start_offset,
            end_offset: s.end_offset,
            size_bytes: s.size_bytes,
            sealed: s.sealed,
        }
    }
}

/// One strategy's line in `fsync_benchmark_ok`, keys in this order.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BenchResult {
    pub strategy: &'static str,
    pub ops_per_sec: u64,
    pub durability: &'static str,
    pub data_loss_window: &'static str,
}

impl BenchResult {
    pub fn new(strategy: Strategy, ops_per_sec: f64) -> BenchResult {
        BenchResult {
            strategy: strategy.name(),
            // Whole appends per second; never 0, which would read as "did not run".
            ops_per_sec: (ops_per_sec.round() as u64).max(1),
            durability: strategy.durability(),
            data_loss_window: strategy.data_loss_window(),
        }
    }
}

impl Reply {
    pub fn error(in_reply_to: Option<u64>, rejection: Rejection) -> Reply {
        Reply::Error {
            in_reply_to,
            code: rejection.code as u32,
            text: rejection.text,
        }
    }
}

/// Appends one reply line (JSON and a newline) to `out`.
///
/// Written straight into the buffer rather than through serde: the
/// pipelined path writes one reply per append, and serializing `Reply`
/// flattened into the body cost more than everything else about a reply.
/// The bytes are exactly what `Reply`'s derived `Serialize` gives (keys in
/// protocol order, strings escaped by serde_json); a unit test compares the
/// two for every variant.
pub fn write_reply(out: &mut Vec<u8>, src: &str, dest: &str, reply: &Reply, msg_id: u64) {
    if !is_per_request(reply) {
        // Rare replies (segment, state, snapshot, benchmark): serde's
        // derived form is the specification, written as it is.
        write_via_serde(out, src, dest, reply, msg_id);
        return;
    }
    out.extend_from_slice(b"{\"src\":");
    string(out, src);
    out.extend_from_slice(b",\"dest\":");
    string(out, dest);
    out.extend_from_slice(b",\"body\":{\"type\":");
    // Type names are ours: plain ASCII, written as they are.
    match reply {
        Reply::InitOk { in_reply_to } => {
            out.extend_from_slice(b"\"init_ok\"");
            number(out, "in_reply_to", *in_reply_to);
        }
        Reply::WalAppendOk {
            in_reply_to,
            offset,
            length,
            checksum,
        } => {
            out.extend_from_slice(b"\"wal_append_ok\"");
            number(out, "in_reply_to", *in_reply_to);
            number(out, "offset", *offset);
            number(out, "length", u64::from(*length));
            checksum_field(out, *checksum);
        }
        Reply::WalReadOk {
            in_reply_to,
            payload,
            checksum_valid,
            length,
            checksum,
        } => {
            out.extend_from_slice(b"\"wal_read_ok\"");
            number(out, "in_reply_to", *in_reply_to);
            text_field(out, "payload", payload);
            key(out, "checksum_valid");
            out.extend_from_slice(if *checksum_valid { b"true" } else { b"false" });
            number(out, "length", *length);
            checksum_field(out, *checksum);
        }
        Reply::WalInfoOk {
            in_reply_to,
            entries,
            total_bytes,
            fsynced,
            corrupt_entries,
            first_offset,
        } => {
            out.extend_from_slice(b"\"wal_info_ok\"");
            number(out, "in_reply_to", *in_reply_to);
            number(out, "entries", *entries);
            number(out, "total_bytes", *total_bytes);
            key(out, "fsynced");
            out.extend_from_slice(if *fsynced { b"true" } else { b"false" });
            number(out, "corrupt_entries", *corrupt_entries);
            number(out, "first_offset", *first_offset);
        }
        Reply::Error {
            in_reply_to,
            code,
            text,
        } => {
            out.extend_from_slice(b"\"error\"");
            if let Some(id) = in_reply_to {
                number(out, "in_reply_to", *id);
            }
            number(out, "code", u64::from(*code));
            text_field(out, "text", text);
        }
        _ => unreachable!("rare replies go through serde"),
    }
    number(out, "msg_id", msg_id);
    out.extend_from_slice(b"}}\n");
}

/// The replies written by hand, one per request on the hot path.
fn is_per_request(reply: &Reply) -> bool {
    matches!(
        reply,
        Reply::InitOk { .. }
            | Reply::WalAppendOk { .. }
            | Reply::WalReadOk { .. }
            | Reply::WalInfoOk { .. }
            | Reply::Error { .. }
    )
}

/// The reply as serde derives it: the specification `write_reply` matches
/// byte for byte.
fn write_via_serde(out: &mut Vec<u8>, src: &str, dest: &str, reply: &Reply, msg_id: u64) {
    #[derive(Serialize)]
    struct OutBody<'a> {
        #[serde(flatten)]
        reply: &'a Reply,
        msg_id: u64,
    }
    #[derive(Serialize)]
    struct OutMessage<'a> {
        src: &'a str,
        dest: &'a str,
        body: OutBody<'a>,
    }
    let message = OutMessage {
        src,
        dest,
        body: OutBody { reply, msg_id },
    };
    serde_json::to_writer(&mut *out, &message).expect("replies always serialize");
    out.push(b'\n');
}

/// `,"name":` (names are ours: plain ASCII, nothing to escape).
fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn number(out: &mut Vec<u8>, name: &str, n: u64) {
    key(out, name);
    serde_json::to_writer(&mut *out, &n).expect("numbers always serialize");
}

fn text_field(out: &mut Vec<u8>, name: &str, s: &str) {
    key(out, name);
    string(out, s);
}

/// `,"checksum":"0a1b2c3d"`: hex digits need no escaping.
fn checksum_field(out: &mut Vec<u8>, crc: u32) {
    key(out, "checksum");
    out.push(b'"');
    out.extend_from_slice(&crate::frame::checksum_digits(crc));
    out.push(b'"');
}

/// A JSON string, escaped exactly as serde_json escapes it. Most strings
/// (node ids, checksums, plain payloads) need no escaping: copied as they are.
fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("strings always serialize");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of a message from c1 holding `json` as its body.
    fn body(json: &str) -> Body<'static> {
        let line = format!(r#"{{"src":"c1","body":{json}}}"#).leak();
        parse_envelope(line.as_bytes()).unwrap().body
    }

    #[test]
    fn reply_keys_come_in_protocol_order() {
        let mut out = Vec::new();
        let reply = Reply::WalAppendOk {
            in_reply_to: 2,
            offset: 0,
            length: 8,
            checksum: 0x0a1b2c3d,
        };
        write_reply(&mut out, "n1", "c1", &reply, 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"src\":\"n1\",\"dest\":\"c1\",\"body\":{\"type\":\"wal_append_ok\",\"in_reply_to\":2,\
             \"offset\":0,\"length\":8,\"checksum\":\"0a1b2c3d\",\"msg_id\":1}}\n"
        );
    }

    /// The reply as serde derives it: the specification `write_reply`
    /// must match byte for byte.
    fn reply_via_serde(src: &str, dest: &str, reply: &Reply, msg_id: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_via_serde(&mut out, src, dest, reply, msg_id);
        out
    }

    #[test]
    fn every_reply_is_written_as_serde_would_write_it() {
        let awkward =
            "quote \" backslash \\ tab \t nl \n nul \u{0} del \u{7f} é \u{2028} 🦀 </script>";
        let replies = [
            Reply::InitOk { in_reply_to: 0 },
            Reply::WalAppendOk {
                in_reply_to: u64::MAX,
                offset: 12345678901,
                length: u32::MAX,
                checksum: 0x0a1b2c3d,
            },
            Reply::WalReadOk {
                in_reply_to: 7,
                payload: awkward.into(),
                checksum_valid: true,
                length: 3,
                checksum: 0xffffffff,
            },
            Reply::WalReadOk {
                in_reply_to: 8,
                payload: String::new(),
                checksum_valid: false,
                length: 0,
                checksum: 0,
            },
            Reply::WalInfoOk {
                in_reply_to: 9,
                entries: 1,
                total_bytes: 16,
                fsynced: true,
                corrupt_entries: 0,
                first_offset: 0,
            },
            Reply::WalInfoOk {
                in_reply_to: 10,
                entries: 0,
                total_bytes: 0,
                fsynced: false,
                corrupt_entries: 2,
                first_offset: u64::MAX,
            },
            Reply::FsyncBenchmarkOk {
                in_reply_to: 11,
                results: Strategy::ALL
                    .iter()
                    .map(|&s| BenchResult::new(s, 1234.5))
                    .collect(),
            },
            Reply::FsyncBenchmarkOk {
                in_reply_to: 12,
                results: Vec::new(),
            },
            Reply::error(Some(13), Rejection::malformed(awkward)),
            Reply::error(None, Rejection::new(ErrorCode::NotSupported, "")),
        ];
        for reply in &replies {
            for (src, dest) in [("n1", "c1"), (awkward, ""), ("", awkward)] {
                let mut out = b"earlier line\n".to_vec();
                write_reply(&mut out, src, dest, reply, 42);
                let mut expected = b"earlier line\n".to_vec();
                expected.extend(reply_via_serde(src, dest, reply, 42));
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "{reply:?}"
                );
            }
        }
    }

    #[test]
    fn node_ids_that_could_name_a_path_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(check_node_id(bad).is_err(), "{bad:?} must be refused");
        }
        for good in ["n1", "node-1.a_b", &"x".repeat(64), "..."] {
            assert!(check_node_id(good).is_ok(), "{good:?} must be accepted");
        }
    }

    #[test]
    fn bad_offsets_name_the_field() {
        for bad in [r#"-1"#, r#"1.5"#, r#""0""#, r#"null"#] {
            let mut b = body(&format!(
                r#"{{"type":"wal_read","msg_id":1,"offset":{bad}}}"#
            ));
            let err = validate(Kind::Read, &mut b, 10, b"").unwrap_err();
            assert_eq!(err.code, ErrorCode::MalformedRequest);
            assert!(err.text.contains("`offset`"), "{}", err.text);
        }
    }

    /// The parser keeps numbers past u64 as floats; errors show them as the
    /// client wrote them, and say the range.
    #[test]
    fn numbers_out_of_range_are_shown_as_written() {
        for (field, raw) in [
            ("offset", "18446744073709551616"),
            ("offset", "99999999999999999999999"),
            ("offset", "1e3"),
            ("offset", "-0.0"),
            ("msg_id", "18446744073709551616"),
            ("msg_id", "-1"),
        ] {
            let line = match field {
                "offset" => format!(
                    r#"{{"src":"c1","body":{{"type":"wal_read","msg_id":1,"offset":{raw}}}}}"#
                ),
                _ => format!(r#"{{"src":"c1","body":{{"type":"wal_info","msg_id":{raw}}}}}"#),
            };
            let mut b = parse_envelope(line.as_bytes()).unwrap().body;
            let err = validate(kind(&b).unwrap(), &mut b, 10, line.as_bytes()).unwrap_err();
            assert_eq!(
                err.text,
                format!(
                    "field `{field}` must be an integer from 0 to 18446744073709551615, got {raw}"
                )
            );
        }
    }

    #[test]
    fn lone_surrogates_are_named_and_pairs_are_not() {
        let why = |l: &str| parse_envelope(l.as_bytes()).err();
        for (payload, at) in [
            (r"\ud800", 14),
            (r"ab\uDFFFcd", 16),
            (r"\ud800\u0041", 14),
            (r"\ud83d\ude00\ud800", 26),
            (r"\\\udc00", 16),
        ] {
            let line = format!(r#"{{"body":{{"p":"{payload}"}}}}"#);
            let why = why(&line).unwrap();
            assert!(
                why.starts_with("lone UTF-16 surrogate")
                    && why.contains(&format!("byte offset {at} ")),
                "{line}: {why}"
            );
        }
        // A pair is a character; an escaped backslash is no escape.
        assert_eq!(why(r#"{"src":"c1","body":{"p":"\ud83d\ude00"}}"#), None);
        assert!(
            why(r#"{"p":"\\ud800"} x"#)
                .unwrap()
                .starts_with("not a JSON message")
        );
    }

    #[test]
    fn payload_limit_counts_utf8_bytes() {
        let b = body(r#"{"type":"wal_append","msg_id":1,"payload":"ééé"}"#);
        assert!(validate(Kind::Append, &mut b.clone(), 6, b"").is_ok());
        let err = validate(Kind::Append, &mut b.clone(), 5, b"").unwrap_err();
        assert!(err.text.contains("6 bytes"), "{}", err.text);
    }
}
