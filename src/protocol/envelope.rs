//! One input line into an envelope, in one pass and borrowing from the
//! line: `src`, `dest` and the body's hot fields (`type`, `msg_id`,
//! `payload`, `offset`) stay slices of the line unless they hold escapes.
//!
//! Parsing into `serde_json::Value` cost more than everything else the node
//! does per append (a map node and a `String` per key and per value). The
//! visitors here accept exactly what `Value` accepts: every value is still
//! parsed whole (strings decoded, numbers read), nothing is skipped
//! unchecked, and a key given twice keeps its last value, as `Value`'s map
//! does. So which lines parse, and the parser's error texts, are what they
//! were.

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

/// A line that parsed as a message we can answer.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub src: Cow<'a, str>,
    pub dest: Cow<'a, str>,
    pub body: Body<'a>,
}

/// A value as the parser read it. Strings and non-negative integers, the
/// hot path's values, are kept as they are; anything else as `Value`.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    Other(Value),
}

impl Field<'_> {
    /// The value as `serde_json::Value` holds it (for error texts and the
    /// requests validated from a map).
    pub fn to_value(&self) -> Value {
        match self {
            Field::Str(s) => Value::String(s.as_ref().to_owned()),
            Field::U64(n) => Value::from(*n),
            Field::Other(v) => v.clone(),
        }
    }
}

/// A message body: the fields every hot request uses, and every other key
/// as `Value` for the rare requests.
#[derive(Debug, Clone, Default)]
pub struct Body<'a> {
    pub type_: Option<Field<'a>>,
    pub msg_id: Option<Field<'a>>,
    pub payload: Option<Field<'a>>,
    pub offset: Option<Field<'a>>,
    /// `None` while there is no other key: even an empty map costs a
    /// call to drop, once per request.
    pub rest: Option<Map<String, Value>>,
}

impl Body<'_> {
    /// The whole body as a map, as `Value` would have parsed it.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = self.rest.clone().unwrap_or_default();
        for (name, field) in [
            ("type", &self.type_),
            ("msg_id", &self.msg_id),
            ("payload", &self.payload),
            ("offset", &self.offset),
        ] {
            if let Some(field) = field {
                map.insert(name.to_owned(), field.to_value());
            }
        }
        map
    }
}

/// Parses one input line. `Err` says why it is no message: the caller
/// answers it if `attribution` finds who sent it, else logs it and goes on.
pub fn parse_envelope(line: &[u8]) -> Result<Envelope<'_>, String> {
    // Checked once for the whole line, so the parser need not check each
    // string (invalid UTF-8 anywhere made `Value` parsing fail too).
    let text = std::str::from_utf8(line).map_err(|bad| {
        format!(
            "invalid UTF-8 at byte offset {} of the line",
            bad.valid_up_to()
        )
    })?;
    let mut top = Top::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let is_object = IntoObject(&mut top)
        .deserialize(&mut de)
        .and_then(|is_object| de.end().map(|()| is_object))
        .map_err(|e| why_unparsed(line, &e))?;
    if !is_object {
        return Err("not a JSON object".into());
    }
    let src = match top.src {
        Some(Field::Str(s)) => s,
        _ => return Err("no string `src`: nobody to answer".into()),
    };
    if top.body_is_object != Some(true) {
        return Err(format!("no object `body` in a message from {src}"));
    }
    let dest = match top.dest {
        Some(Field::Str(d)) => d,
        _ => Cow::Borrowed(""),
    };
    Ok(Envelope {
        src,
        dest,
        body: top.body,
    })
}

/// Names what the parser could not take, in the client's terms: serde_json
/// reports a lone surrogate as "unexpected end of hex escape".
fn why_unparsed(line: &[u8], e: &serde_json::Error) -> String {
    // The parser stops at the first error, so a surrogate before where it
    // stopped is what it choked on.
    match lone_surrogate(line) {
        Some((at, escape)) if e.line() == 1 && at < e.column() => format!(
            "lone UTF-16 surrogate {escape} at byte offset {at} of the line: a string must be \
             valid Unicode (a surrogate escape needs its pair)"
        ),
        _ => format!("not a JSON message: {e}"),
    }
}

/// The first `\uXXXX` escape of a surrogate without its pair, and where it is.
fn lone_surrogate(line: &[u8]) -> Option<(usize, String)> {
    let escape_at = |i: usize| -> Option<u32> {
        let hex = line.get(i..i + 6)?.strip_prefix(b"\\u")?;
        u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let mut i = 0;
    while i < line.len() {
        if line[i] != b'\\' {
            i += 1;
            continue;
        }
        match escape_at(i) {
            Some(0xD800..=0xDBFF) if matches!(escape_at(i + 6), Some(0xDC00..=0xDFFF)) => i += 12,
            Some(0xD800..=0xDFFF) => {
                return Some((i, String::from_utf8_lossy(&line[i..i + 6]).into_owned()));
            }
            Some(_) => i += 6,
            // Any other escape is two bytes (`\\` included).
            None => i += 2,
        }
    }
    None
}

/// The top-level object's keys that matter.
#[derive(Default)]
struct Top<'a> {
    src: Option<Field<'a>>,
    dest: Option<Field<'a>>,
    body: Body<'a>,
    /// Whether the last `body` was an object; `None` if there was none.
    body_is_object: Option<bool>,
}

/// Something filled in place from a JSON object's entries (in place: a
/// body moved out of each visitor would be copied several times a line).
trait FillFromMap<'de> {
    fn fill<A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error>;
}

impl<'de> FillFromMap<'de> for Top<'de> {
    fn fill<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Name>()? {
            match key.0.as_ref() {
                "src" => self.src = Some(map.next_value()?),
                "dest" => self.dest = Some(map.next_value()?),
                "body" => {
                    if self.body_is_object.is_some() {
                        // A later `body` replaces an earlier one whole.
                        self.body = Body::default();
                    }
                    self.body_is_object = Some(map.next_value_seed(IntoObject(&mut self.body))?);
                }
                // Ignored, but parsed whole: a bad value fails the line.
                _ => map.next_value::<Skip>().map(drop)?,
            }
        }
        Ok(())
    }
}

impl<'de> FillFromMap<'de> for Body<'de> {
    fn fill<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Name>()? {
            let slot = match key.0.as_ref() {
                "type" => &mut self.type_,
                "msg_id" => &mut self.msg_id,
                "payload" => &mut self.payload,
                "offset" => &mut self.offset,
                _ => {
                    let value: Value = map.next_value()?;
                    let rest = self.rest.get_or_insert_default();
                    rest.insert(key.0.into_owned(), value);
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(())
    }
}

/// A map key, borrowed from the line unless it holds escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

/// Builds a `Field` as `Value`'s own visitor builds a `Value`.
struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Field::Other(Value::Bool(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Field::Other(Value::from(n)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Field::U64(n))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Self::Value, E> {
        Ok(Field::Other(
            Number::from_f64(x).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Other(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Other(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Field::Other(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = Map::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        Ok(Field::Other(Value::Object(object)))
    }
}

/// Fills its target from a value that must be an object to be of use;
/// says whether it was one (any other value is parsed whole all the same).
struct IntoObject<'t, T>(&'t mut T);

impl<'de, T: FillFromMap<'de>> DeserializeSeed<'de> for IntoObject<'_, T> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: FillFromMap<'de>> Visitor<'de> for IntoObject<'_, T> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.0.fill(map).map(|()| true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        SkipVisitor.visit_seq(seq).map(|()| false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_none<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Any value, parsed whole and dropped. Not `IgnoredAny`: that skips
/// strings without decoding their escapes, so a lone surrogate in an
/// ignored key would pass where `Value` parsing failed.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor).map(|()| Skip)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line here parses (or fails) exactly as through `Value`, and
    /// gives the same envelope.
    #[test]
    fn parses_what_value_parses_and_nothing_else() {
        let lines: &[&[u8]] = &[
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":1,"payload":"x"}}"#,
            br#"{"src":"c\u0031","dest":"n\"1","body":{"type":"wal_read","msg_id":1,"offset":-1}}"#,
            br#"{"body":{"p\u0061yload":"a","payload":5,"x":[1,{"y":null}]},"src":"c1","id":7}"#,
            br#"{"src":"c1","body":{"msg_id":1.5,"offset":1e3,"type":true},"src":"c2"}"#,
            br#"{"src":"c1","body":{"msg_id":18446744073709551616,"offset":-0.0}}"#,
            br#"{"src":"c1","body":{},"body":5}"#,
            br#"{"src":"c1","body":{"msg_id":7,"x":1},"body":{"type":"wal_info"}}"#,
            br#"{"src":5,"body":{}}"#,
            br#"{"src":"c1","body":[1,2]}"#,
            br#"{"src":"c1","dest":7,"body":{}}"#,
            br#"[1,2]"#,
            br#""just a string""#,
            br#"{"src":"c1","body":{"payload":"\ud83d\ude00 \u00e9"}}"#,
            br#"{"src":"c1","ignored":"\ud800","body":{}}"#,
            br#"{"src":"c1","ignored":{"\udc00":1},"body":{}}"#,
            br#"{"src":"c1","ignored":["\ud800"],"body":{}}"#,
            br#"{"src":"c1","body":{"msg_id":1}} trailing"#,
            br#"{"src":"c1","body":{"msg_id":1}"#,
            br#"{"src":"c1","body":{"msg_id":01}}"#,
            b"{\"src\":\"c1\",\"body\":{\"payload\":\"tab\there\"}}",
            b"{\"src\":\"c1\",\"x\":\"\xff\",\"body\":{}}",
            br#"{"src":"c1","body":{"x":1e400}}"#,
            b"",
            b"   ",
        ];
        for line in lines {
            let expected = via_value(line);
            let got = parse_envelope(line)
                .map(|e| (e.src.into_owned(), e.dest.into_owned(), e.body.to_map()));
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(line));
        }
    }

    /// The envelope as the node built it from `Value` before this parser.
    fn via_value(line: &[u8]) -> Result<(String, String, Map<String, Value>), String> {
        let value: Value =
            serde_json::from_slice(line).map_err(|e| match std::str::from_utf8(line) {
                Err(bad) => format!(
                    "invalid UTF-8 at byte offset {} of the line",
                    bad.valid_up_to()
                ),
                Ok(_) => why_unparsed(line, &e),
            })?;
        let Value::Object(mut top) = value else {
            return Err("not a JSON object".into());
        };
        let src = match top.remove("src") {
            Some(Value::String(s)) => s,
            _ => return Err("no string `src`: nobody to answer".into()),
        };
        let body = match top.remove("body") {
            Some(Value::Object(b)) => b,
            _ => return Err(format!("no object `body` in a message from {src}")),
        };
        let dest = match top.remove("dest") {
            Some(Value::String(d)) => d,
            _ => String::new(),
        };
        Ok((src, dest, body))
    }

    #[test]
    fn plain_strings_are_borrowed_from_the_line() {
        let line =
            br#"{"src":"c1","dest":"n1","body":{"type":"wal_append","msg_id":3,"payload":"abc"}}"#;
        let env = parse_envelope(line).unwrap();
        assert!(matches!(env.src, Cow::Borrowed("c1")));
        assert!(matches!(env.dest, Cow::Borrowed("n1")));
        assert!(matches!(
            env.body.payload,
            Some(Field::Str(Cow::Borrowed("abc")))
        ));
        assert_eq!(env.body.msg_id, Some(Field::U64(3)));
        assert!(env.body.rest.is_none());
    }
}
