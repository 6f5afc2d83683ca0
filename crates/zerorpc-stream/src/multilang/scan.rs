//! A hand-written reader for the messages that travel once per tuple
//! (tuples, emits, acks, fails, syncs, task-id lists), in both
//! serializers, straight from the bytes into a [`RawMessage`]: no serde
//! visitors, no value tree, one allocation per string.
//!
//! It reads only what it is sure to read exactly as the serde path
//! ([`super::codec`] with `RawMessage`'s `Deserialize`) would, and answers
//! `None` for everything else: other keys, repeated keys, escapes in JSON
//! strings, JSON fractions and exponents, maps inside values, msgpack
//! binary and extensions, invalid UTF-8, nesting past [`MAX_DEPTH`]. The
//! serde path then reads the message (and reports its errors), so this is
//! a shortcut, never a second dialect: the tests and the `multilang_*`
//! fuzz targets check that wherever it answers, it answers what serde
//! does.

use smallvec::SmallVec;

use super::codec::Serializer;
use super::id::{TupleId, WireId};
use super::protocol::{Command, RawMessage, WorkerWire};
use crate::tuple::Value;

/// Deeper values are left to the serde path.
const MAX_DEPTH: usize = 32;

/// A JSON message's text (without its `end` line).
pub(crate) fn json(bytes: &[u8]) -> Option<WorkerWire> {
    // Checked once here (not per string: that was a tenth of a bolt's
    // time); invalid UTF-8 anywhere is left to serde.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut r = Json {
        text,
        b: bytes,
        pos: 0,
        stack: SmallVec::new(),
    };
    let m = message(&mut r)?;
    r.ws();
    (r.pos == bytes.len()).then_some(m)
}

/// One whole msgpack message.
pub(crate) fn msgpack(bytes: &[u8]) -> Option<WorkerWire> {
    let mut r = Msgpack {
        b: bytes,
        pos: 0,
        stack: SmallVec::new(),
    };
    let m = message(&mut r)?;
    (r.pos == bytes.len()).then_some(m)
}

/// What serde makes of one message (no shortcut).
fn serde_path(bytes: &[u8], serializer: Serializer) -> Option<WorkerWire> {
    match serializer {
        Serializer::Json => serde_json::from_slice(bytes).ok(),
        Serializer::Msgpack => {
            let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
            serde::Deserialize::deserialize(&mut de).ok()
        }
    }
}

/// For the fuzz targets, not API: reads `bytes` as one message with the
/// shortcut and panics if what it reads is not what serde reads.
#[doc(hidden)]
pub fn check_shortcut(bytes: &[u8], serializer: Serializer) {
    let fast = match serializer {
        Serializer::Json => json(bytes),
        Serializer::Msgpack => msgpack(bytes),
    };
    if let Some(fast) = fast {
        let slow = serde_path(bytes, serializer);
        assert!(
            slow.as_ref() == Some(&fast),
            "the shortcut read {:?} as {fast:?}, serde as {slow:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// The head of a value.
enum Item<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// Above `i64::MAX`.
    UInt(u64),
    /// Msgpack only (JSON fractions are left to serde).
    Float(f64),
    Str(&'a str),
    /// An array was entered: [`Reader::more`] walks its elements.
    Array,
    /// A map was entered: [`Reader::more`] and [`Reader::key`] walk it.
    Map,
}

/// What the two serializers' readers share: a value's head, and the walk
/// through the containers entered.
trait Reader<'a> {
    fn item(&mut self) -> Option<Item<'a>>;
    /// Whether the innermost container entered has another element (a
    /// key and its value, in a map); `false` leaves it.
    fn more(&mut self) -> Option<bool>;
    /// A map's key (after [`Reader::more`] said there is one).
    fn key(&mut self) -> Option<&'a str>;
}

/// `RawMessage`'s keys this reader fills, one bit each (a key seen twice
/// is serde's "duplicate field" error: left to serde).
fn key_bit(key: &str) -> Option<u8> {
    Some(match key {
        "command" => 1,
        "id" => 2,
        "anchors" => 4,
        "stream" => 8,
        "task" => 16,
        "need_task_ids" => 32,
        "tuple" => 64,
        "comp" => 128,
        _ => return None,
    })
}

fn message<'a, R: Reader<'a>>(r: &mut R) -> Option<WorkerWire> {
    match r.item()? {
        Item::Map => {}
        Item::Array => {
            let mut ids = Vec::new();
            while r.more()? {
                match r.item()? {
                    Item::Int(n) => ids.push(n),
                    _ => return None,
                }
            }
            return Some(WorkerWire::Ids(ids));
        }
        _ => return None,
    }
    let mut m = RawMessage::default();
    let mut seen = 0u8;
    while r.more()? {
        let key = r.key()?;
        let bit = key_bit(key)?;
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        match bit {
            1 => {
                m.command = match r.item()? {
                    Item::Str(s) => Some(Command::from_name(s)),
                    Item::Null => None,
                    _ => return None,
                }
            }
            2 => {
                m.id = match r.item()? {
                    Item::Null => None,
                    other => Some(wire_id(other)?),
                }
            }
            4 => {
                m.anchors = match r.item()? {
                    Item::Null => None,
                    Item::Array => {
                        let mut anchors = SmallVec::new();
                        while r.more()? {
                            anchors.push(wire_id(r.item()?)?);
                        }
                        Some(anchors)
                    }
                    _ => return None,
                }
            }
            8 => m.stream = opt_string(r.item()?)?,
            16 => {
                m.task = match r.item()? {
                    Item::Int(n) => Some(n),
                    Item::Null => None,
                    _ => return None,
                }
            }
            32 => {
                m.need_task_ids = match r.item()? {
                    Item::Bool(b) => Some(b),
                    Item::Null => None,
                    _ => return None,
                }
            }
            64 => {
                m.tuple = match r.item()? {
                    Item::Null => None,
                    Item::Array => Some(array(r, 1)?),
                    _ => return None,
                }
            }
            _ => m.comp = opt_string(r.item()?)?,
        }
    }
    Some(WorkerWire::Message(Box::new(m)))
}

/// An id or an anchor: strings and integers (what peers send); the rest
/// to serde.
fn wire_id(item: Item<'_>) -> Option<WireId> {
    Some(match item {
        Item::Str(s) => WireId::Str(TupleId::new(s)),
        Item::Int(n) => WireId::Int(n),
        Item::UInt(n) => WireId::Other(Value::from(n)),
        _ => return None,
    })
}

fn opt_string(item: Item<'_>) -> Option<Option<String>> {
    match item {
        Item::Str(s) => Some(Some(s.to_owned())),
        Item::Null => Some(None),
        _ => None,
    }
}

/// The elements of an array just entered.
fn array<'a, R: Reader<'a>>(r: &mut R, depth: usize) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    while r.more()? {
        out.push(value(r, depth)?);
    }
    Some(out)
}

fn value<'a, R: Reader<'a>>(r: &mut R, depth: usize) -> Option<Value> {
    Some(match r.item()? {
        Item::Null => Value::Null,
        Item::Bool(b) => Value::Bool(b),
        Item::Int(n) => Value::from(n),
        Item::UInt(n) => Value::from(n),
        // What serde_json's value makes of a float: non-finite is null.
        Item::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Item::Str(s) => Value::String(s.to_owned()),
        Item::Array if depth < MAX_DEPTH => Value::Array(array(r, depth + 1)?),
        Item::Array | Item::Map => return None,
    })
}

/// JSON text.
struct Json<'a> {
    /// The message, known to be UTF-8.
    text: &'a str,
    /// `text`'s bytes.
    b: &'a [u8],
    pos: usize,
    /// The containers entered: whether a map, and whether an element was
    /// read yet.
    stack: SmallVec<[(bool, bool); 4]>,
}

impl<'a> Json<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8], item: Item<'a>) -> Option<Item<'a>> {
        let end = self.pos + word.len();
        (self.b.get(self.pos..end)? == word).then(|| {
            self.pos = end;
            item
        })
    }

    /// A string without escapes or control characters (the opening quote
    /// is at `pos`).
    fn string(&mut self) -> Option<&'a str> {
        let start = self.pos + 1;
        let len = self
            .b
            .get(start..)?
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        let end = start + len;
        if self.b[end] != b'"' {
            return None;
        }
        self.pos = end + 1;
        // Both ends are at ASCII bytes of valid UTF-8: char boundaries.
        self.text.get(start..end)
    }

    /// An integer of at most 18 digits (so it fits, and no float reading
    /// applies); fractions, exponents, `-0` and longer numbers are left
    /// to serde.
    fn integer(&mut self) -> Option<Item<'a>> {
        let neg = self.b[self.pos] == b'-';
        let start = self.pos + usize::from(neg);
        let digits = self.b[start..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > 18 || (self.b[start] == b'0' && (digits > 1 || neg)) {
            return None;
        }
        let end = start + digits;
        if let Some(b'.' | b'e' | b'E') = self.b.get(end) {
            return None;
        }
        let n = self.b[start..end]
            .iter()
            .fold(0i64, |n, c| n * 10 + i64::from(c - b'0'));
        self.pos = end;
        Some(Item::Int(if neg { -n } else { n }))
    }

    fn enter(&mut self, map: bool) -> Option<()> {
        if self.stack.len() >= MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        self.stack.push((map, false));
        Some(())
    }
}

impl<'a> Reader<'a> for Json<'a> {
    fn item(&mut self) -> Option<Item<'a>> {
        self.ws();
        match *self.b.get(self.pos)? {
            b'{' => self.enter(true).map(|()| Item::Map),
            b'[' => self.enter(false).map(|()| Item::Array),
            b'"' => self.string().map(Item::Str),
            b't' => self.literal(b"true", Item::Bool(true)),
            b'f' => self.literal(b"false", Item::Bool(false)),
            b'n' => self.literal(b"null", Item::Null),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    fn more(&mut self) -> Option<bool> {
        self.ws();
        let (map, started) = *self.stack.last()?;
        let close = if map { b'}' } else { b']' };
        let c = *self.b.get(self.pos)?;
        if c == close {
            self.pos += 1;
            self.stack.pop();
            return Some(false);
        }
        if started {
            if c != b',' {
                return None;
            }
            self.pos += 1;
        } else if let Some(top) = self.stack.last_mut() {
            top.1 = true;
        }
        Some(true)
    }

    fn key(&mut self) -> Option<&'a str> {
        self.ws();
        if self.b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let key = self.string()?;
        self.ws();
        if self.b.get(self.pos) != Some(&b':') {
            return None;
        }
        self.pos += 1;
        Some(key)
    }
}

/// Msgpack bytes.
struct Msgpack<'a> {
    b: &'a [u8],
    pos: usize,
    /// Elements (pairs, in maps) left in each container entered.
    stack: SmallVec<[u32; 4]>,
}

impl<'a> Msgpack<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        Some(
            self.take(n)?
                .iter()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b)),
        )
    }

    fn str(&mut self, len: u64) -> Option<&'a str> {
        std::str::from_utf8(self.take(usize::try_from(len).ok()?)?).ok()
    }

    fn enter(&mut self, len: u64, item: Item<'a>) -> Option<Item<'a>> {
        if self.stack.len() >= MAX_DEPTH {
            return None;
        }
        self.stack.push(u32::try_from(len).ok()?);
        Some(item)
    }

    fn unsigned(n: u64) -> Item<'a> {
        match i64::try_from(n) {
            Ok(n) => Item::Int(n),
            Err(_) => Item::UInt(n),
        }
    }
}

impl<'a> Reader<'a> for Msgpack<'a> {
    fn item(&mut self) -> Option<Item<'a>> {
        let m = *self.take(1)?.first()?;
        Some(match m {
            0x00..=0x7f => Item::Int(i64::from(m)),
            0xe0..=0xff => Item::Int(i64::from(m as i8)),
            0xc0 => Item::Null,
            0xc2 => Item::Bool(false),
            0xc3 => Item::Bool(true),
            0xca => Item::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Item::Float(f64::from_bits(self.be(8)?)),
            0xcc => Self::unsigned(self.be(1)?),
            0xcd => Self::unsigned(self.be(2)?),
            0xce => Self::unsigned(self.be(4)?),
            0xcf => Self::unsigned(self.be(8)?),
            0xd0 => Item::Int(i64::from(self.be(1)? as u8 as i8)),
            0xd1 => Item::Int(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => Item::Int(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => Item::Int(self.be(8)? as i64),
            0xa0..=0xbf => Item::Str(self.str(u64::from(m & 0x1f))?),
            0xd9 => {
                let n = self.be(1)?;
                Item::Str(self.str(n)?)
            }
            0xda => {
                let n = self.be(2)?;
                Item::Str(self.str(n)?)
            }
            0xdb => {
                let n = self.be(4)?;
                Item::Str(self.str(n)?)
            }
            0x90..=0x9f => self.enter(u64::from(m & 0x0f), Item::Array)?,
            0xdc => {
                let n = self.be(2)?;
                self.enter(n, Item::Array)?
            }
            0xdd => {
                let n = self.be(4)?;
                self.enter(n, Item::Array)?
            }
            0x80..=0x8f => self.enter(u64::from(m & 0x0f), Item::Map)?,
            0xde => {
                let n = self.be(2)?;
                self.enter(n, Item::Map)?
            }
            0xdf => {
                let n = self.be(4)?;
                self.enter(n, Item::Map)?
            }
            // Binary, extensions, 0xc1: serde's (and rmpv's) business.
            _ => return None,
        })
    }

    fn more(&mut self) -> Option<bool> {
        let left = self.stack.last_mut()?;
        if *left == 0 {
            self.stack.pop();
            return Some(false);
        }
        *left -= 1;
        Some(true)
    }

    fn key(&mut self) -> Option<&'a str> {
        match self.item()? {
            Item::Str(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multilang::codec::{Decoded, Decoder, Serializer};

    fn same_json(bytes: &[u8]) -> bool {
        check_shortcut(bytes, Serializer::Json);
        json(bytes).is_some()
    }

    fn same_msgpack(bytes: &[u8]) -> bool {
        check_shortcut(bytes, Serializer::Msgpack);
        msgpack(bytes).is_some()
    }

    /// Messages peers send, and near misses.
    const JSON: &[&str] = &[
        r#"{"command":"ack","id":"17"}"#,
        r#"{"command": "fail", "id": "-9223372036854775808"}"#,
        r#"{"command":"sync"}"#,
        r#"{"command":"emit","anchors":["1","2"],"tuple":["word",1,-2,true,null,[["x"]]],"need_task_ids":false}"#,
        r#"{"command":"emit","stream":"s","task":3,"tuple":[],"id":12}"#,
        r#"{"command":"emit","tuple":[1.5]}"#,
        r#"{"command":"emit","tuple":[{"a":1}]}"#,
        r#"{"id":"5","comp":"split","stream":"default","task":2,"tuple":["a b c"]}"#,
        r#"{"id":"-1","comp":null,"stream":"__heartbeat","task":-1,"tuple":[]}"#,
        r#"[1,2,3]"#,
        r#"[]"#,
        r#"[1,"2"]"#,
        r#"{}"#,
        r#"{"command":"ack","id":"1","id":"2"}"#,
        r#"{"command":"ack","id":"1",}"#,
        r#"{"command":"ack" "id":"1"}"#,
        r#"{"command":"ack","id":"1"} x"#,
        r#"{"command":"ack","id":"a\"b"}"#,
        r#"{"command":"emit","tuple":["caf\u00e9"]}"#,
        r#"{"command":"emit","tuple":[-0]}"#,
        r#"{"command":"emit","tuple":[01]}"#,
        r#"{"command":"emit","tuple":[123456789012345678901234]}"#,
        r#"{"command":"emit","tuple":[1e3]}"#,
        r#"{"command":"emit","task":"3","tuple":[]}"#,
        r#"{"command":"emit","need_task_ids":1,"tuple":[]}"#,
        r#"{"command":"log","msg":"hi","level":2}"#,
        r#"{"pid":1234}"#,
        r#" { "command" : "ack" , "id" : 7 } "#,
        r#"{"command":5}"#,
        r#"{"command":"nope"}"#,
        r#"{"command":"emit","anchors":[1,"x",null],"tuple":[]}"#,
        r#"{"command":"emit","anchors":null,"stream":null,"task":null,"need_task_ids":null,"tuple":null,"id":null,"command":null}"#,
        r#"{"command":"emit","tuple":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
        "{\"command\":\"emit\",\"tuple\":[\"tab\tinside\"]}",
        "{\"command\":\"emit\",\"tuple\":[\"\u{00e9}t\u{00e9}\"]}",
    ];

    #[test]
    fn json_shortcut_reads_what_serde_reads() {
        let mut handled = 0;
        for m in JSON {
            handled += usize::from(same_json(m.as_bytes()));
        }
        // The common messages take the shortcut.
        assert!(handled >= 12, "{handled}");
        for m in [
            r#"{"command":"ack","id":"17"}"#,
            r#"{"command":"emit","anchors":["1"],"tuple":["w"],"need_task_ids":false}"#,
            r#"{"id":"5","comp":"split","stream":"default","task":2,"tuple":["a b c"]}"#,
            r#"[4]"#,
        ] {
            assert!(json(m.as_bytes()).is_some(), "{m}");
        }
        for m in [
            r#"{"command":"ack","id":"1","id":"2"}"#,
            r#"{"command":"emit","tuple":[1.5]}"#,
            r#"{"command":"ack","id":"a\"b"}"#,
            r#"{"command":"emit","tuple":[-0]}"#,
        ] {
            assert!(json(m.as_bytes()).is_none(), "{m}");
        }
    }

    #[test]
    fn msgpack_shortcut_reads_what_serde_reads() {
        let mut handled = 0;
        for m in JSON {
            let Ok(v) = serde_json::from_str::<Value>(m) else {
                continue;
            };
            let bytes = rmp_serde::to_vec_named(&v).unwrap();
            handled += usize::from(same_msgpack(&bytes));
        }
        assert!(handled >= 12, "{handled}");
        // Every marker family, in a tuple, and cut short anywhere.
        let mut tuple = vec![0xdc, 0, 17];
        for v in [
            &[0x05][..],
            &[0xff],
            &[0xc0],
            &[0xc3],
            &[0xca, 0x3f, 0xc0, 0, 0],
            &[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0],
            &[0xcc, 0xff],
            &[0xcd, 1, 0],
            &[0xce, 0, 1, 0, 0],
            &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0xd0, 0x80],
            &[0xd1, 0x80, 0],
            &[0xd2, 0x80, 0, 0, 0],
            &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],
            &[0xd9, 2, b'h', b'i'],
        ] {
            tuple.extend_from_slice(v);
        }
        tuple.extend_from_slice(&[0xda, 0, 1, b'x', 0xdb, 0, 0, 0, 1, b'y']);
        let mut msg = vec![0x82, 0xa7];
        msg.extend_from_slice(b"command");
        msg.extend_from_slice(&[0xa4]);
        msg.extend_from_slice(b"emit");
        msg.push(0xa5);
        msg.extend_from_slice(b"tuple");
        msg.extend_from_slice(&tuple);
        assert!(same_msgpack(&msg));
        for cut in 0..msg.len() {
            assert!(msgpack(&msg[..cut]).is_none(), "cut at {cut}");
        }
        // Binary, extensions and invalid UTF-8 are left to serde.
        for odd in [&[0xc4, 1, b'a'][..], &[0xd4, 1, 2], &[0xa1, 0xff]] {
            let mut m = vec![0x81, 0xa5];
            m.extend_from_slice(b"tuple");
            m.push(0x91);
            m.extend_from_slice(odd);
            assert!(msgpack(&m).is_none());
        }
    }

    /// Random messages built from the protocol's pieces, both serializers:
    /// wherever the shortcut answers, serde answers the same.
    #[test]
    fn random_messages_agree() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let keys = [
            "command",
            "id",
            "anchors",
            "stream",
            "task",
            "need_task_ids",
            "tuple",
            "comp",
            "msg",
        ];
        let scalars = [
            "\"emit\"",
            "\"ack\"",
            "\"17\"",
            "\"-3\"",
            "\"x\"",
            "5",
            "-5",
            "0",
            "null",
            "true",
            "false",
            "1.5",
            "[]",
            "[\"1\",2]",
            "[\"a\",[1,[true]],null]",
            "{}",
            "9223372036854775807",
            "\"é\"",
        ];
        let mut handled = 0;
        for _ in 0..20_000 {
            let n = next(6);
            let mut text = String::from("{");
            for i in 0..n {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&format!(
                    "\"{}\":{}",
                    keys[next(keys.len() as u64) as usize],
                    scalars[next(scalars.len() as u64) as usize]
                ));
            }
            text.push('}');
            handled += usize::from(same_json(text.as_bytes()));
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                same_msgpack(&rmp_serde::to_vec_named(&v).unwrap());
            }
        }
        assert!(handled > 1_000, "{handled}");
    }

    /// Through the decoder, message after message: what serde reads is
    /// what comes out, and what it refuses does not come out as a message.
    #[test]
    fn the_decoder_reads_as_serde_would() {
        let mut d = Decoder::new(Serializer::Json);
        for m in JSON {
            d.feed(m.as_bytes());
            d.feed(b"\nend\n");
            let got = d.next_decoded::<WorkerWire>();
            match serde_json::from_str::<WorkerWire>(m) {
                Ok(want) => assert!(
                    matches!(&got, Ok(Some(Decoded::Message(w))) if *w == want),
                    "{m}"
                ),
                Err(_) => assert!(!matches!(got, Ok(Some(Decoded::Message(_)))), "{m}"),
            }
            while let Ok(Some(_)) = d.next_decoded::<WorkerWire>() {}
        }
    }
}
