//! Framing and (de)serialization of protocol messages, sans-IO: bytes in,
//! values out; values in, bytes out. Both sides (worker and component) use
//! it.
//!
//! JSON: a message is a JSON text (usually one line) followed by a line
//! `end`. Msgpack (pystorm's `MsgpackSerializer`): bare msgpack maps and
//! arrays back to back. Msgpack binary becomes a string when it is UTF-8
//! and a list of byte values otherwise; extension types become `null`.
//!
//! Stray output: a component that prints to stdout (a Python `print`)
//! breaks Storm's worker. Here a line that cannot be part of a message
//! comes out as [`Frame::Stray`] for the worker to report with the
//! component's name, and decoding goes on:
//! - JSON: a line that does not start a JSON value (`{` or `[`) where a
//!   message would start is stray at once; when the lines gathered before
//!   `end` do not parse, the longest run of them that does is the message
//!   and the others are stray;
//! - msgpack: text where a message would start (a byte that is not a map
//!   or array marker) is stray up to the end of its line.
//!
//! Bounds: a message (or a stray line) longer than the decoder's limit is
//! an error, so a peer cannot make us buffer without end.

use std::io::Cursor;

use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::tuple::Value;

/// The multi-lang serializers (Storm's `topology.multilang.serializer`;
/// pystorm's `serializer` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serializer {
    /// JSON followed by a line `end` (Storm's default).
    #[default]
    Json,
    /// Bare msgpack objects (pystorm's `MsgpackSerializer`).
    Msgpack,
}

/// The default bound on one message: 64 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// What a [`Decoder`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A whole message.
    Message(Value),
    /// A line of output that is not protocol.
    Stray(String),
}

/// Writes one message (any JSON value) in a serializer's framing.
pub fn encode(value: &Value, serializer: Serializer, out: &mut Vec<u8>) {
    super::protocol::write(value, serializer, out)
}

/// A message type a [`Decoder`] reads: through serde, or first through a
/// shortcut that reads the common messages straight from the bytes (and
/// answers `None` for the rest, which serde then reads).
pub(crate) trait Wire: DeserializeOwned {
    fn scan(_bytes: &[u8], _serializer: Serializer) -> Option<Self> {
        None
    }
}

impl Wire for Value {}

/// What a decoder gives out: a message of type `T`, or stray output.
pub(crate) enum Decoded<T> {
    Message(T),
    Stray(String),
}

/// Held between steps (JSON): a message's text, or a stray line.
enum Pending {
    Text(String),
    Stray(String),
}

fn msgpack_to_json(v: rmpv::Value) -> Value {
    match v {
        rmpv::Value::Nil | rmpv::Value::Ext(..) => Value::Null,
        rmpv::Value::Boolean(b) => Value::Bool(b),
        rmpv::Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::Null,
        },
        rmpv::Value::F32(f) => serde_json::Number::from_f64(f64::from(f))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        rmpv::Value::F64(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        rmpv::Value::String(s) => match s.into_str() {
            Some(s) => Value::String(s),
            None => Value::Null,
        },
        rmpv::Value::Binary(b) => match String::from_utf8(b) {
            Ok(s) => Value::String(s),
            Err(e) => Value::Array(e.into_bytes().into_iter().map(Value::from).collect()),
        },
        rmpv::Value::Array(a) => Value::Array(a.into_iter().map(msgpack_to_json).collect()),
        rmpv::Value::Map(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        rmpv::Value::String(s) => s.into_str().unwrap_or_default(),
                        rmpv::Value::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => other.to_string(),
                    };
                    (key, msgpack_to_json(v))
                })
                .collect(),
        ),
    }
}

/// Accumulates bytes from a peer and yields whole messages, and the stray
/// output (lines that are not protocol) found between them.
pub struct Decoder {
    pub(crate) serializer: Serializer,
    pub(crate) buf: Vec<u8>,
    /// Where decoding resumes in `buf`.
    pos: usize,
    /// JSON: the lines of the message being gathered (before `end`).
    lines: Vec<String>,
    gathered: usize,
    max: usize,
    /// JSON texts and stray lines settled and not yet taken.
    ready: std::collections::VecDeque<Pending>,
    /// How far the bytes after `pos` were looked at already, so that a
    /// message arriving in many small reads is scanned once, not once per
    /// read (which is quadratic in its length).
    seen: Seen,
}

/// What is known of the bytes after `at` (a decoding position).
#[derive(Default)]
struct Seen {
    at: usize,
    /// JSON: this many bytes hold no newline. Msgpack: this many bytes
    /// are whole values, with `pending` values still to come.
    len: usize,
    pending: u64,
}

impl Seen {
    /// The record for position `pos` (a fresh one when it was for another).
    fn at(&mut self, pos: usize) -> &mut Seen {
        if self.at != pos {
            *self = Seen {
                at: pos,
                len: 0,
                pending: 0,
            };
        }
        self
    }
}

/// The index of the first newline in `rest`, looking only past what
/// `seen` says holds none (and recording the new extent).
fn find_newline(rest: &[u8], seen: &mut Seen) -> Option<usize> {
    let from = seen.len.min(rest.len());
    match memchr::memchr(b'\n', &rest[from..]) {
        Some(i) => Some(from + i),
        None => {
            seen.len = rest.len();
            None
        }
    }
}

/// Walks whole msgpack values without building them, resuming where the
/// last walk stopped: the length of the message at the front of `rest`
/// once it is complete. `seen.pending == 0` with `seen.len == 0` starts a
/// new walk (one value). An invalid marker is an error.
fn msgpack_extent(rest: &[u8], seen: &mut Seen) -> Result<Option<usize>, Error> {
    if seen.len == 0 && seen.pending == 0 {
        seen.pending = 1;
    }
    while seen.pending > 0 {
        let at = seen.len;
        let Some(&m) = rest.get(at) else {
            return Ok(None);
        };
        let be = |n: usize| -> Option<u64> {
            let b = rest.get(at + 1..at + 1 + n)?;
            Some(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
        };
        // (header bytes, payload bytes, values inside)
        let (head, body, inner): (usize, u64, u64) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * u64::from(m & 0x0f)),
            0x90..=0x9f => (1, 0, u64::from(m & 0x0f)),
            0xa0..=0xbf => (1, u64::from(m & 0x1f), 0),
            0xc4 | 0xd9 => match be(1) {
                Some(n) => (2, n, 0),
                None => return Ok(None),
            },
            0xc5 | 0xda => match be(2) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc6 | 0xdb => match be(4) {
                Some(n) => (5, n, 0),
                None => return Ok(None),
            },
            0xc7 => match be(1) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc8 => match be(2) {
                Some(n) => (4, n, 0),
                None => return Ok(None),
            },
            0xc9 => match be(4) {
                Some(n) => (6, n, 0),
                None => return Ok(None),
            },
            0xca => (5, 0, 0),
            0xcb => (9, 0, 0),
            0xcc | 0xd0 => (2, 0, 0),
            0xcd | 0xd1 => (3, 0, 0),
            0xce | 0xd2 => (5, 0, 0),
            0xcf | 0xd3 => (9, 0, 0),
            0xd4 => (3, 0, 0),
            0xd5 => (4, 0, 0),
            0xd6 => (6, 0, 0),
            0xd7 => (10, 0, 0),
            0xd8 => (18, 0, 0),
            0xdc => match be(2) {
                Some(n) => (3, 0, n),
                None => return Ok(None),
            },
            0xdd => match be(4) {
                Some(n) => (5, 0, n),
                None => return Ok(None),
            },
            0xde => match be(2) {
                Some(n) => (3, 0, 2 * n),
                None => return Ok(None),
            },
            0xdf => match be(4) {
                Some(n) => (5, 0, 2 * n),
                None => return Ok(None),
            },
            0xc1 => return Err(Error::Protocol("malformed msgpack: marker 0xc1".into())),
        };
        let end = (at as u64).saturating_add(head as u64).saturating_add(body);
        if end > rest.len() as u64 {
            return Ok(None);
        }
        seen.len = end as usize;
        seen.pending = seen.pending - 1 + inner;
    }
    Ok(Some(seen.len))
}

impl Decoder {
    /// A decoder for one serializer.
    pub fn new(serializer: Serializer) -> Decoder {
        Decoder::with_limit(serializer, DEFAULT_MAX_MESSAGE)
    }

    /// A decoder whose messages may not exceed `max` bytes.
    pub fn with_limit(serializer: Serializer, max: usize) -> Decoder {
        Decoder {
            serializer,
            buf: Vec::new(),
            pos: 0,
            lines: Vec::new(),
            gathered: 0,
            max,
            ready: Default::default(),
            seen: Seen::default(),
        }
    }

    /// Adds bytes read from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            self.seen = Seen::default();
        } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            if self.seen.at == self.pos {
                self.seen.at = 0;
            } else {
                self.seen = Seen::default();
            }
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos + self.gathered
    }

    /// The next whole frame, if the bytes fed so far hold one.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        Ok(self.next_decoded::<Value>()?.map(|d| match d {
            Decoded::Message(v) => Frame::Message(v),
            Decoded::Stray(l) => Frame::Stray(l),
        }))
    }

    /// The next message decoded straight into `T` (no value tree for the
    /// message itself), or stray output.
    pub(crate) fn next_decoded<T: Wire>(&mut self) -> Result<Option<Decoded<T>>, Error> {
        loop {
            match self.ready.pop_front() {
                Some(Pending::Stray(l)) => return Ok(Some(Decoded::Stray(l))),
                Some(Pending::Text(t)) => return parse_json(t).map(Some),
                None => {}
            }
            if let Some(d) = self.fast_json::<T>()? {
                return Ok(Some(d));
            }
            let step = match self.serializer {
                Serializer::Json => self.step_json()?.then_some(None),
                Serializer::Msgpack => self.step_msgpack::<T>()?,
            };
            match step {
                Some(Some(d)) => return Ok(Some(d)),
                Some(None) => {}
                None => {
                    if self.buffered() > self.max {
                        return Err(Error::Protocol(format!(
                            "a message longer than {} bytes",
                            self.max
                        )));
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// JSON's common case, without copies: a one-line message followed by
    /// its `end` line, parsed in place. `None` leaves everything else
    /// (partial input, strays, multi-line messages) to the line path.
    fn fast_json<T: Wire>(&mut self) -> Result<Option<Decoded<T>>, Error> {
        if self.serializer != Serializer::Json || !self.lines.is_empty() || !self.ready.is_empty() {
            return Ok(None);
        }
        let rest = &self.buf[self.pos..];
        if !matches!(rest.first(), Some(b'{') | Some(b'[')) {
            return Ok(None);
        }
        let Some(nl) = find_newline(rest, self.seen.at(self.pos)) else {
            return Ok(None);
        };
        let after = &rest[nl + 1..];
        let end_len = if after.starts_with(b"end\n") {
            4
        } else if after.starts_with(b"end\r\n") {
            5
        } else {
            return Ok(None);
        };
        if let Some(m) = T::scan(&rest[..nl], Serializer::Json) {
            self.pos += nl + 1 + end_len;
            return Ok(Some(Decoded::Message(m)));
        }
        match serde_json::from_slice::<T>(&rest[..nl]) {
            Ok(m) => {
                self.pos += nl + 1 + end_len;
                Ok(Some(Decoded::Message(m)))
            }
            // Not JSON after all: the line path reports it as stray.
            Err(e) if e.is_syntax() || e.is_eof() => Ok(None),
            Err(e) => {
                self.pos += nl + 1 + end_len;
                Err(Error::Protocol(format!("a malformed message: {e}")))
            }
        }
    }

    fn take_line(&mut self) -> Option<String> {
        let rest = &self.buf[self.pos..];
        let nl = find_newline(rest, self.seen.at(self.pos))?;
        let mut line = &rest[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let line = String::from_utf8_lossy(line).into_owned();
        self.pos += nl + 1;
        Some(line)
    }

    /// One JSON line; `false` when no whole line is buffered.
    fn step_json(&mut self) -> Result<bool, Error> {
        let Some(line) = self.take_line() else {
            return Ok(false);
        };
        if line.trim() == "end" {
            let lines = std::mem::take(&mut self.lines);
            self.gathered = 0;
            self.settle(lines);
            return Ok(true);
        }
        let start = line.trim_start();
        if self.lines.is_empty() && !(start.starts_with('{') || start.starts_with('[')) {
            if !line.trim().is_empty() {
                self.ready.push_back(Pending::Stray(line));
            }
            return Ok(true);
        }
        self.gathered += line.len() + 1;
        if self.gathered > self.max {
            return Err(Error::Protocol(format!(
                "a message longer than {} bytes",
                self.max
            )));
        }
        self.lines.push(line);
        Ok(true)
    }

    /// The lines before an `end`: a message, and stray lines around it.
    fn settle(&mut self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let whole = lines.join("\n");
        if lines.len() == 1 || serde_json::from_str::<serde::de::IgnoredAny>(&whole).is_ok() {
            // Parsed for real (and a lone stray line told apart) when taken.
            self.ready.push_back(Pending::Text(whole));
            return;
        }
        // The longest run of lines that parses (few lines: messages are
        // one line; the search is bounded).
        let n = lines.len().min(64);
        for len in (1..n).rev() {
            for start in 0..=n - len {
                let text = lines[start..start + len].join("\n");
                if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() {
                    for l in &lines[..start] {
                        self.ready.push_back(Pending::Stray(l.clone()));
                    }
                    self.ready.push_back(Pending::Text(text));
                    for l in &lines[start + len..] {
                        self.ready.push_back(Pending::Stray(l.clone()));
                    }
                    return;
                }
            }
        }
        for l in lines {
            self.ready.push_back(Pending::Stray(l));
        }
    }

    /// One msgpack message (or stray line): `None` when more bytes are
    /// needed, `Some(None)` when a step was taken without a result.
    #[allow(clippy::option_option)]
    fn step_msgpack<T: Wire>(&mut self) -> Result<Option<Option<Decoded<T>>>, Error> {
        let Some(&first) = self.buf.get(self.pos) else {
            return Ok(None);
        };
        let rest_len = self.buf.len() - self.pos;
        let container = matches!(first, 0x80..=0x9f | 0xdc..=0xdf);
        if !container {
            // Text where a message should start.
            return match self.take_line() {
                Some(line) if line.trim().is_empty() => Ok(Some(None)),
                Some(line) => Ok(Some(Some(Decoded::Stray(line)))),
                None if rest_len > self.max => Err(Error::Protocol(format!(
                    "stray output longer than {} bytes without a newline",
                    self.max
                ))),
                None => Ok(None),
            };
        }
        // Decoded once it is whole (found by a walk that resumes where the
        // last read left it).
        let Some(len) = msgpack_extent(&self.buf[self.pos..], self.seen.at(self.pos))? else {
            return Ok(None);
        };
        let Some(message) = self.buf.get(self.pos..self.pos + len) else {
            return Err(Error::Protocol("msgpack decoder out of step".into()));
        };
        if let Some(m) = T::scan(message, Serializer::Msgpack) {
            self.pos += len;
            return Ok(Some(Some(Decoded::Message(m))));
        }
        // Bounded nesting: a hostile peer cannot blow our stack.
        let typed = {
            let mut de = rmp_serde::Deserializer::new(Cursor::new(message));
            de.set_max_depth(128);
            T::deserialize(&mut de)
        };
        if let Ok(v) = typed {
            self.pos += len;
            return Ok(Some(Some(Decoded::Message(v))));
        }
        // Binary strings, non-string keys: through a msgpack value.
        let mut cur = Cursor::new(message);
        match rmpv::decode::read_value_with_max_depth(&mut cur, 128) {
            Ok(v) => {
                self.pos += len;
                let v = msgpack_to_json(v);
                serde_json::from_value::<T>(v)
                    .map(|m| Some(Some(Decoded::Message(m))))
                    .map_err(|e| Error::Protocol(format!("a malformed message: {e}")))
            }
            Err(e) => Err(Error::Protocol(format!("malformed msgpack: {e}"))),
        }
    }
}

/// Parses a JSON message's text; text that is not JSON at all is stray
/// output (a lone line that looked like JSON).
fn parse_json<T: DeserializeOwned>(text: String) -> Result<Decoded<T>, Error> {
    match serde_json::from_str::<T>(&text) {
        Ok(m) => Ok(Decoded::Message(m)),
        Err(e) if e.is_syntax() || e.is_eof() => Ok(Decoded::Stray(text)),
        Err(e) => Err(Error::Protocol(format!("a malformed message: {e}"))),
    }
}

#[cfg(test)]
mod tests;
