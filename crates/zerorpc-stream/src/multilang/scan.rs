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
mod tests;
