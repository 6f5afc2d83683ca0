//! Events (documented on [`Event`]).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use rmp::Marker;
use rmpv::Value;
use smallvec::SmallVec;

use crate::error::EventError;

mod header;
mod id;
mod kind;

pub use header::{Header, SharedEntries};
pub use id::MessageId;
pub use kind::EventKind;

/// The protocol version we send in `v`.
pub const PROTOCOL_VERSION: i64 = 3;

/// One event: one msgpack value `[header, name, args]` per ZeroMQ
/// message.
///
/// The header is a map with string keys: `message_id` (opaque; Python 3
/// sends 32 hex characters as msgpack bin, Node a 36-character string),
/// `v` (3), `response_to` on every event of a channel after the first, and
/// any other key (task context such as trace ids), which is preserved.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The header.
    pub header: Header,
    /// Method name, reply kind (`OK`, `ERR`, `STREAM`, `STREAM_DONE`) or
    /// control (`_zpc_hb`, `_zpc_more`).
    pub name: String,
    /// Arguments: an array for requests, bare for `STREAM` items.
    pub args: Value,
}

/// Limits applied when decoding events from the network.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Most msgpack values (nodes) in one event. Each costs a few dozen
    /// bytes once decoded, so this bounds the decoded size.
    pub max_nodes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_nodes: 1_000_000,
        }
    }
}

/// What a decoder does with a header's `traceparent` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TraceEntry {
    /// Parsed into [`Header::traceparent`] (kept in `extra` when it is no
    /// W3C version-00 context).
    Read,
    /// Checked and counted like any value, then dropped.
    Skip,
}

impl Event {
    /// A new event (fresh id) opening a channel or standing alone.
    pub fn new(name: impl Into<String>, args: Value) -> Self {
        Event {
            header: Header::new(),
            name: name.into(),
            args,
        }
    }

    /// The protocol kind of this event; `None` for a method call.
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::of(&self.name)
    }

    /// Whether it ends its channel (`OK`, `ERR`, `STREAM_DONE`).
    pub fn is_final(&self) -> bool {
        self.kind().is_some_and(EventKind::is_final)
    }

    /// An event on the channel `channel` (fresh id, `response_to` set).
    pub fn on_channel(channel: &MessageId, name: impl Into<String>, args: Value) -> Self {
        let mut header = Header::new();
        header.response_to = Some(channel.clone());
        Event {
            header,
            name: name.into(),
            args,
        }
    }

    /// Encodes to msgpack (directly, without building a value tree).
    pub fn encode(&self) -> Bytes {
        let mut out = self.head().write();
        // Writing into a Vec cannot fail.
        let _ = rmpv::encode::write_value(&mut out, &self.args);
        Bytes::from(out)
    }

    /// Encodes to msgpack as pieces to send as one frame (see
    /// `zmtp::Message::push_back_pieces`): strings and binaries of
    /// [`PIECE_MIN`] bytes or more in the arguments become pieces of their
    /// own, moved and not copied. Joined, the pieces are [`Event::encode`]'s
    /// bytes.
    pub fn into_pieces(self) -> impl ExactSizeIterator<Item = Bytes> {
        let head = self.head().write();
        pieces(head, self.args).into_iter()
    }

    /// Appends the event to `m` as its last frame (see [`Head::append`]).
    #[inline]
    pub(crate) fn append_to(self, m: &mut zmtp::Message) {
        let Event { header, name, args } = self;
        Head::of(&header, &name).append(args, m);
    }

    /// The event's head, borrowed.
    fn head(&self) -> Head<'_> {
        Head::of(&self.header, &self.name)
    }

    /// Decodes from msgpack, refusing anything that is not a well-formed
    /// event or exceeds `limits`.
    pub fn decode(buf: &[u8], limits: DecodeLimits) -> Result<Self, EventError> {
        let (header, name, mut rd) = Event::read_head(buf, limits, TraceEntry::Read)?;
        let args = read_args(&mut rd)?;
        Ok(Event {
            header,
            name: name.to_owned(),
            args,
        })
    }

    /// Decodes a server's event as our client's calls take it ([`Received`]),
    /// with the channel it answers. Checked as [`Event::decode`] checks an
    /// event, but its `traceparent` is skipped unread (checked and counted,
    /// not parsed: nothing on the client reads it) and the name of a kind
    /// we know is not copied.
    pub(crate) fn decode_reply(
        buf: &[u8],
        limits: DecodeLimits,
    ) -> Result<(Option<MessageId>, Received), EventError> {
        let (header, name, mut rd) = Event::read_head(buf, limits, TraceEntry::Skip)?;
        let args = read_args(&mut rd)?;
        let kind = EventKind::of(name);
        let reply = Received {
            kind,
            other: kind.is_none().then(|| name.into()),
            args,
            window_max: match kind {
                Some(EventKind::Stream) => crate::channel::announced_window(&header.extra),
                _ => None,
            },
        };
        Ok((header.response_to, reply))
    }

    /// Reads the header and the name straight from the bytes, and checks
    /// the rest (the arguments and any further parts: complete, within
    /// `limits`) without building it; returns the rest. One pass: what is
    /// read is counted as it is read (a value of unknown shape is checked
    /// before it is built), what is not read is checked as it is skipped.
    fn read_head(
        buf: &[u8],
        limits: DecodeLimits,
        trace: TraceEntry,
    ) -> Result<(Header, &str, &[u8]), EventError> {
        let mut nodes = Nodes::new(limits.max_nodes);
        let mut rd = buf;
        let parts = read_parts(&mut rd)?;
        nodes.take()?;
        let header = Header::read(&mut rd, &mut nodes, trace)?;
        let name = read_name(&mut rd)?;
        nodes.take()?;
        let rest = rd;
        for _ in 2..parts {
            skip_value(&mut rd, &mut nodes)?;
        }
        Ok((header, name, rest))
    }

    /// What a router reads of an event (see [`RouteHead`]), checking the
    /// whole event as [`Event::decode`] does.
    #[cfg(feature = "hub")]
    pub(crate) fn route_head<'a>(
        buf: &'a [u8],
        limits: DecodeLimits,
        key: Option<&str>,
    ) -> Result<RouteHead<'a>, EventError> {
        // One pass: what is read is counted as `skip_value` counts it, what is
        // skipped is checked as it is skipped.
        let mut nodes = Nodes::new(limits.max_nodes);
        let mut rd = buf;
        let parts = read_parts(&mut rd)?;
        let entries = rmp::decode::read_map_len(&mut rd)
            .map_err(|_| EventError::Malformed("header is not a map"))?;
        nodes.take()?;
        nodes.take()?;
        let (mut message_id, mut response_to, mut has_key) = (None, None, false);
        for _ in 0..entries {
            match read_str_or_bin(&mut rd).map(|(k, _)| k) {
                Some(b"message_id") => {
                    nodes.take()?;
                    nodes.take()?;
                    message_id = Some(read_id(&mut rd, "message_id is not str or bin")?)
                }
                Some(b"response_to") => {
                    nodes.take()?;
                    nodes.take()?;
                    response_to = Some(read_id(&mut rd, "response_to is not str or bin")?)
                }
                Some(k) => {
                    nodes.take()?;
                    has_key |= key.is_some_and(|key| k == key.as_bytes());
                    skip_value(&mut rd, &mut nodes)?;
                }
                // (a key that is no string: skip it and its value)
                None => {
                    skip_value(&mut rd, &mut nodes)?;
                    skip_value(&mut rd, &mut nodes)?;
                }
            }
        }
        let name = read_name(&mut rd)?;
        nodes.take()?;
        // The arguments (and any further parts): checked, not read.
        for _ in 2..parts {
            skip_value(&mut rd, &mut nodes)?;
        }
        Ok(RouteHead {
            message_id: message_id.ok_or(EventError::Malformed("header without message_id"))?,
            response_to,
            name,
            has_key,
        })
    }

    /// Decodes only the header and the name, checking the whole event as
    /// [`Event::decode`] does but leaving the arguments unread (for
    /// routers, which forward the original bytes).
    pub fn decode_head(buf: &[u8], limits: DecodeLimits) -> Result<(Header, String), EventError> {
        let (header, name, _) = Event::read_head(buf, limits, TraceEntry::Read)?;
        Ok((header, name.to_owned()))
    }
}

/// A server's event as our client's calls take it
/// ([`Event::decode_reply`]): what they use of it, without its header.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) kind: Option<EventKind>,
    /// The name, when it is of no kind we know (for the error).
    pub(crate) other: Option<Box<str>>,
    pub(crate) args: Value,
    /// The window a stream's first item announces (see
    /// [`crate::Channel::announce_window`]).
    pub(crate) window_max: Option<u64>,
}

impl Received {
    /// Whether it ends its channel (`OK`, `ERR`, `STREAM_DONE`).
    pub(crate) fn is_final(&self) -> bool {
        self.kind.is_some_and(EventKind::is_final)
    }

    /// The event's name.
    pub(crate) fn name(&self) -> &str {
        match (self.kind, &self.other) {
            (Some(k), _) => k.name(),
            (None, other) => other.as_deref().unwrap_or_default(),
        }
    }
}

/// An event's head (header and name) to encode, borrowed from wherever
/// its parts are: an [`Event`], or a reply a [`crate::Channel`] queued
/// (written straight into its message, no `Event` made).
pub(crate) struct Head<'a> {
    pub(crate) message_id: &'a MessageId,
    pub(crate) version: Option<i64>,
    pub(crate) response_to: Option<&'a MessageId>,
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) traceparent: Option<&'a crate::trace::TraceParent>,
    pub(crate) extra: &'a [(Value, Value)],
    pub(crate) shared: &'a SharedEntries,
    pub(crate) name: &'a str,
}

impl<'a> Head<'a> {
    fn of(h: &'a Header, name: &'a str) -> Self {
        Head {
            message_id: &h.message_id,
            version: h.version,
            response_to: h.response_to.as_ref(),
            deadline_ms: h.deadline_ms,
            traceparent: h.traceparent.as_ref(),
            extra: &h.extra,
            shared: &h.shared,
            name,
        }
    }

    /// Appends the event of this head and `args` to `m` as its last frame:
    /// in pieces when the arguments hold long strings or binaries (see
    /// [`Event::into_pieces`]), else whole (the common case pays only for
    /// the check).
    #[inline]
    pub(crate) fn append(&self, args: Value, m: &mut zmtp::Message) {
        let mut out = self.write();
        if holds_long(&args) {
            m.push_back_pieces(pieces(out, args));
        } else {
            // Writing into a Vec cannot fail.
            let _ = rmpv::encode::write_value(&mut out, &args);
            m.push_back(Bytes::from(out));
        }
    }

    /// Bytes an event of this head is likely to take: the head exactly
    /// (its `extra` entries aside), small arguments guessed. The buffer
    /// then needs no growing for a reply or a stream item, traced or not
    /// (a growth is a reallocation and a copy, ~500 instructions).
    fn size_hint(&self) -> usize {
        /// Bytes of the arguments a small call or item usually has.
        const SMALL_ARGS: usize = 24;
        let id = |id: &MessageId| 2 + id.as_bytes().len();
        // (array and map markers; keys with their str markers)
        3 + 11
            + id(self.message_id)
            + self.version.map_or(0, |_| 2 + 9)
            + self.response_to.map_or(0, |r| 12 + id(r))
            + self.deadline_ms.map_or(0, |_| 12 + 9)
            + self.traceparent.map_or(0, |_| 12 + 2 + 55)
            + self.shared.encoded().len()
            + 5
            + self.name.len()
            + SMALL_ARGS
    }

    /// The event's array marker, header and name.
    fn write(&self) -> Vec<u8> {
        let entries = 1
            + usize::from(self.version.is_some())
            + usize::from(self.response_to.is_some())
            + usize::from(self.deadline_ms.is_some())
            + usize::from(self.traceparent.is_some())
            + self.extra.len()
            + self.shared.len();
        let mut out = Vec::with_capacity(self.size_hint());
        // Writing into a Vec cannot fail.
        let _ = rmp::encode::write_array_len(&mut out, 3);
        let _ = rmp::encode::write_map_len(&mut out, entries as u32);
        let _ = rmp::encode::write_str(&mut out, "message_id");
        self.message_id.write(&mut out);
        if let Some(v) = self.version {
            let _ = rmp::encode::write_str(&mut out, "v");
            let _ = rmp::encode::write_sint(&mut out, v);
        }
        if let Some(r) = self.response_to {
            let _ = rmp::encode::write_str(&mut out, "response_to");
            r.write(&mut out);
        }
        if let Some(ms) = self.deadline_ms {
            let _ = rmp::encode::write_str(&mut out, crate::deadline::HEADER_KEY);
            let _ = rmp::encode::write_uint(&mut out, ms);
        }
        if let Some(tp) = self.traceparent {
            let _ = rmp::encode::write_str(&mut out, crate::trace::TRACEPARENT);
            let _ = rmp::encode::write_str_len(&mut out, 55);
            out.extend_from_slice(&tp.to_bytes());
        }
        for (k, v) in self.extra {
            let _ = rmpv::encode::write_value(&mut out, k);
            let _ = rmpv::encode::write_value(&mut out, v);
        }
        out.extend_from_slice(self.shared.encoded());
        let _ = rmp::encode::write_str(&mut out, self.name);
        out
    }
}

/// `head` then `args` as pieces of one frame (see [`Event::into_pieces`]).
fn pieces(head: Vec<u8>, args: Value) -> SmallVec<[Bytes; 3]> {
    let mut pieces = PieceWriter {
        done: SmallVec::new(),
        out: head,
    };
    pieces.put(args);
    if !pieces.out.is_empty() {
        pieces.done.push(Bytes::from(pieces.out));
    }
    pieces.done
}

/// What a router needs of an event ([`Event::route_head`]): its ids, its
/// name, and whether its header has the key asked for. The other header
/// values are skipped unread, and so are the arguments: the router
/// forwards the bytes and their receiver decodes them.
#[cfg(feature = "hub")]
#[derive(Debug)]
pub(crate) struct RouteHead<'a> {
    pub(crate) message_id: MessageId,
    pub(crate) response_to: Option<MessageId>,
    pub(crate) name: &'a str,
    pub(crate) has_key: bool,
}

/// The message a DEALER sends for `ev`: an empty delimiter, then the
/// event (see [`Event::append_to`]).
pub(crate) fn dealer_message(ev: Event) -> zmtp::Message {
    let mut m = zmtp::Message::from(Bytes::new());
    ev.append_to(&mut m);
    m
}

/// Whether `v` holds a string or binary of [`PIECE_MIN`] bytes or more.
fn holds_long(v: &Value) -> bool {
    match v {
        Value::Binary(b) => b.len() >= PIECE_MIN,
        Value::String(s) => s.as_bytes().len() >= PIECE_MIN,
        Value::Array(items) => items.iter().any(holds_long),
        Value::Map(entries) => entries.iter().any(|(k, v)| holds_long(k) || holds_long(v)),
        _ => false,
    }
}

/// Strings and binaries at least this long are pieces of their own in
/// [`Event::into_pieces`] (zmtp writes pieces this long without copying).
pub const PIECE_MIN: usize = 16 * 1024;

/// Builds [`Event::into_pieces`]: the bytes so far in `out`, finished
/// pieces in `done`.
struct PieceWriter {
    done: SmallVec<[Bytes; 3]>,
    out: Vec<u8>,
}

impl PieceWriter {
    /// Writes `v` as `rmpv::encode::write_value` does, moving long
    /// strings and binaries into pieces of their own.
    fn put(&mut self, v: Value) {
        // Writing into a Vec cannot fail.
        match v {
            Value::Binary(b) if b.len() >= PIECE_MIN => {
                let _ = rmp::encode::write_bin_len(&mut self.out, b.len() as u32);
                self.cut(b);
            }
            Value::String(s) if s.as_bytes().len() >= PIECE_MIN => {
                // (invalid UTF-8 goes as bin, as rmpv writes it)
                let is_str = s.is_str();
                let b = s.into_bytes();
                if is_str {
                    let _ = rmp::encode::write_str_len(&mut self.out, b.len() as u32);
                } else {
                    let _ = rmp::encode::write_bin_len(&mut self.out, b.len() as u32);
                }
                self.cut(b);
            }
            Value::Array(items) => {
                let _ = rmp::encode::write_array_len(&mut self.out, items.len() as u32);
                for v in items {
                    self.put(v);
                }
            }
            Value::Map(entries) => {
                let _ = rmp::encode::write_map_len(&mut self.out, entries.len() as u32);
                for (k, v) in entries {
                    self.put(k);
                    self.put(v);
                }
            }
            v => {
                let _ = rmpv::encode::write_value(&mut self.out, &v);
            }
        }
    }

    /// Ends the piece in progress and adds `big` as the next one.
    fn cut(&mut self, big: Vec<u8>) {
        let head = std::mem::replace(&mut self.out, Vec::with_capacity(64));
        self.done.push(Bytes::from(head));
        self.done.push(Bytes::from(big));
    }
}

/// An entry kept as values: its key (from `entry`, the entry's start)
/// and its value, into `extra`.
fn read_extra<'a>(
    entry: &'a [u8],
    rd: &mut &'a [u8],
    extra: &mut Vec<(Value, Value)>,
) -> Result<(), EventError> {
    *rd = entry;
    let k = read_value(rd)?;
    extra.push((k, read_value(rd)?));
    Ok(())
}

/// The arguments: an array (nearly always) is read into a vector sized
/// from its length at once (rmpv grows it element by element); its length
/// is bounded by `Event::read_head`, which has checked the elements are there.
fn read_args(rd: &mut &[u8]) -> Result<Value, EventError> {
    // (`read_array_len` refuses any other marker: that value is read whole)
    let mut after = *rd;
    let Ok(len) = rmp::decode::read_array_len(&mut after) else {
        return read_value(rd);
    };
    *rd = after;
    let mut items = Vec::with_capacity(len as usize);
    for _ in 0..len {
        items.push(read_value(rd)?);
    }
    Ok(Value::Array(items))
}

fn read_value(rd: &mut &[u8]) -> Result<Value, EventError> {
    rmpv::decode::read_value(rd).map_err(|e| EventError::Msgpack(e.to_string()))
}

/// A msgpack str or bin at the front of `rd`, borrowed, with whether it
/// was a str; `None` (and `rd` untouched) for any other value.
fn read_str_or_bin<'a>(rd: &mut &'a [u8]) -> Option<(&'a [u8], bool)> {
    let b = *rd;
    let (len, head, is_str): (usize, usize, bool) = match *b.first()? {
        m @ 0xa0..=0xbf => (usize::from(m & 0x1f), 1, true),
        0xd9 => (usize::from(*b.get(1)?), 2, true),
        0xda => (
            usize::from(u16::from_be_bytes([*b.get(1)?, *b.get(2)?])),
            3,
            true,
        ),
        0xdb => (
            u32::from_be_bytes(b.get(1..5)?.try_into().ok()?) as usize,
            5,
            true,
        ),
        0xc4 => (usize::from(*b.get(1)?), 2, false),
        0xc5 => (
            usize::from(u16::from_be_bytes([*b.get(1)?, *b.get(2)?])),
            3,
            false,
        ),
        0xc6 => (
            u32::from_be_bytes(b.get(1..5)?.try_into().ok()?) as usize,
            5,
            false,
        ),
        _ => return None,
    };
    let bytes = b.get(head..head.checked_add(len)?)?;
    *rd = &b[head + len..];
    Some((bytes, is_str))
}

/// A message id value (str or bin) at the front of `rd`.
fn read_id(rd: &mut &[u8], what: &'static str) -> Result<MessageId, EventError> {
    match read_str_or_bin(rd) {
        Some((bytes, is_str)) => Ok(MessageId::from_slice(bytes, is_str)),
        None => Err(EventError::Malformed(what)),
    }
}

/// The length of the event's array, at the front of `rd` (3 or more).
fn read_parts(rd: &mut &[u8]) -> Result<u32, EventError> {
    let parts = rmp::decode::read_array_len(rd)
        .map_err(|_| EventError::Malformed("event is not an array"))?;
    if parts < 3 {
        return Err(EventError::Malformed("event has fewer than 3 parts"));
    }
    Ok(parts)
}

/// The event's name, at the front of `rd`, borrowed.
fn read_name<'a>(rd: &mut &'a [u8]) -> Result<&'a str, EventError> {
    match read_str_or_bin(rd) {
        Some((bytes, _)) => {
            std::str::from_utf8(bytes).map_err(|_| EventError::Malformed("event name is not UTF-8"))
        }
        None => Err(EventError::Malformed("event name is not a string")),
    }
}

/// Walks msgpack bytes without building values: checks they are complete
/// and hold at most `max_nodes` values. (What `Event::read_head` checks in
/// its one pass; its tests compare the two.)
#[cfg(test)]
fn scan(mut rd: &[u8], max_nodes: usize) -> Result<(), EventError> {
    let mut nodes = Nodes::new(max_nodes);
    skip_value(&mut rd, &mut nodes)
}

/// Counts the value at the front of `rd` in `nodes`, checking it is
/// complete, without moving `rd` (before it is built).
fn count_value(rd: &[u8], nodes: &mut Nodes) -> Result<(), EventError> {
    let mut probe = rd;
    skip_value(&mut probe, nodes)
}

/// The value at the front of `rd`, built once counted (see
/// [`count_value`]).
fn read_counted(rd: &mut &[u8], nodes: &mut Nodes) -> Result<Value, EventError> {
    count_value(rd, nodes)?;
    read_value(rd)
}

/// The number at the front of `rd`, counted: an integer is read straight
/// from its bytes (a version or a deadline, in every event or request),
/// anything else as [`read_counted`] reads it.
fn read_number(rd: &mut &[u8], nodes: &mut Nodes) -> Result<Value, EventError> {
    match read_int(rd) {
        Some(n) => {
            nodes.take()?;
            Ok(Value::Integer(n))
        }
        None => read_counted(rd, nodes),
    }
}

/// A msgpack integer at the front of `rd`; `None` (and `rd` untouched)
/// for any other value, or one cut short.
fn read_int(rd: &mut &[u8]) -> Option<rmpv::Integer> {
    let b = *rd;
    // the `n` big-endian bytes after the marker
    let be = |n: usize| -> Option<u64> {
        let bytes = b.get(1..1 + n)?;
        Some(bytes.iter().fold(0, |acc, &x| acc << 8 | u64::from(x)))
    };
    let (n, len): (rmpv::Integer, usize) = match *b.first()? {
        m @ 0x00..=0x7f => (u64::from(m).into(), 1),
        m @ 0xe0..=0xff => (i64::from(m as i8).into(), 1),
        0xcc => (be(1)?.into(), 2),
        0xcd => (be(2)?.into(), 3),
        0xce => (be(4)?.into(), 5),
        0xcf => (be(8)?.into(), 9),
        0xd0 => (i64::from(be(1)? as u8 as i8).into(), 2),
        0xd1 => (i64::from(be(2)? as u16 as i16).into(), 3),
        0xd2 => (i64::from(be(4)? as u32 as i32).into(), 5),
        0xd3 => ((be(8)? as i64).into(), 9),
        _ => return None,
    };
    *rd = &b[len..];
    Some(n)
}

/// What is left of an event's allowance of msgpack values (nodes).
struct Nodes {
    left: usize,
    max: usize,
}

impl Nodes {
    fn new(max: usize) -> Self {
        Nodes { left: max, max }
    }

    /// Counts one more value.
    fn take(&mut self) -> Result<(), EventError> {
        self.left = self.left.checked_sub(1).ok_or(EventError::TooComplex {
            max_nodes: self.max,
        })?;
        Ok(())
    }
}

/// Moves `rd` past one msgpack value without building it, checking that
/// it is complete and counting its values in `nodes`.
fn skip_value(rd: &mut &[u8], nodes: &mut Nodes) -> Result<(), EventError> {
    let truncated = || EventError::Msgpack("truncated msgpack".into());
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        nodes.take()?;
        let (&first, rest) = rd.split_first().ok_or_else(truncated)?;
        *rd = rest;
        let marker = Marker::from_u8(first);
        let mut len = |n: usize| -> Result<u64, EventError> {
            if rd.len() < n {
                return Err(truncated());
            }
            let (head, rest) = rd.split_at(n);
            *rd = rest;
            Ok(head.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
        };
        let skip: u64 = match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                0
            }
            Marker::U8 | Marker::I8 => 1,
            Marker::U16 | Marker::I16 => 2,
            Marker::U32 | Marker::I32 | Marker::F32 => 4,
            Marker::U64 | Marker::I64 | Marker::F64 => 8,
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 | Marker::Bin8 => len(1)?,
            Marker::Str16 | Marker::Bin16 => len(2)?,
            Marker::Str32 | Marker::Bin32 => len(4)?,
            Marker::FixArray(n) => {
                pending += u64::from(n);
                0
            }
            Marker::Array16 => {
                pending += len(2)?;
                0
            }
            Marker::Array32 => {
                pending += len(4)?;
                0
            }
            Marker::FixMap(n) => {
                pending += 2 * u64::from(n);
                0
            }
            Marker::Map16 => {
                pending += 2 * len(2)?;
                0
            }
            Marker::Map32 => {
                pending += 2 * len(4)?;
                0
            }
            Marker::FixExt1 => 2,
            Marker::FixExt2 => 3,
            Marker::FixExt4 => 5,
            Marker::FixExt8 => 9,
            Marker::FixExt16 => 17,
            Marker::Ext8 => len(1)? + 1,
            Marker::Ext16 => len(2)? + 1,
            Marker::Ext32 => len(4)? + 1,
            Marker::Reserved => return Err(EventError::Msgpack("reserved msgpack marker".into())),
        };
        let skip = usize::try_from(skip).map_err(|_| truncated())?;
        if rd.len() < skip {
            return Err(truncated());
        }
        *rd = &rd[skip..];
        // Every pending value needs at least one more byte.
        if pending > rd.len() as u64 {
            return Err(truncated());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
