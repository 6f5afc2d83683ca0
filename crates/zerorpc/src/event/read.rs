//! Reading events: one pass over the bytes that reads what its caller
//! uses (the header's known keys straight from the bytes, no value tree
//! built for them), counts every value against `DecodeLimits::max_nodes`,
//! and checks what it skips.

use super::*;

impl Event {
    /// Decodes from msgpack, refusing anything that is not a well-formed
    /// event or exceeds `limits`.
    pub fn decode(buf: &[u8], limits: DecodeLimits) -> Result<Self, EventError> {
        let (header, name, mut rd) = Event::read_head(buf, limits, Header::read)?;
        let args = read_args(&mut rd)?;
        Ok(Event {
            header,
            name: name.to_owned(),
            args,
        })
    }

    /// Decodes a server's event as our client's calls take it ([`Received`]),
    /// with the channel it answers. Checked as [`Event::decode`] checks an
    /// event, but of its header only `response_to` and a `window_max` are
    /// read (see [`ReplyHead`]), and the name of a kind we know is not
    /// copied.
    pub(crate) fn decode_reply(
        buf: &[u8],
        limits: DecodeLimits,
    ) -> Result<(Option<MessageId>, Received), EventError> {
        let (head, name, mut rd) = Event::read_head(buf, limits, ReplyHead::read)?;
        let args = read_args(&mut rd)?;
        let kind = EventKind::of(name);
        let reply = Received {
            kind,
            other: kind.is_none().then(|| name.into()),
            args,
            window_max: head.window_max.filter(|_| kind == Some(EventKind::Stream)),
        };
        Ok((head.response_to, reply))
    }

    /// Reads the header and the name straight from the bytes, and checks
    /// the rest (the arguments and any further parts: complete, within
    /// `limits`) without building it; returns the rest. One pass: what is
    /// read is counted as it is read (a value of unknown shape is checked
    /// before it is built), what is not read is checked as it is skipped.
    pub(super) fn read_head<'a, H>(
        buf: &'a [u8],
        limits: DecodeLimits,
        header: impl FnOnce(&mut &'a [u8], &mut Nodes) -> Result<H, EventError>,
    ) -> Result<(H, &'a str, &'a [u8]), EventError> {
        let mut nodes = Nodes::new(limits.max_nodes);
        let mut rd = buf;
        let parts = read_parts(&mut rd)?;
        nodes.take()?;
        let header = header(&mut rd, &mut nodes)?;
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
        let (header, name, _) = Event::read_head(buf, limits, Header::read)?;
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

/// What our client reads of a server's event header
/// ([`Event::decode_reply`]): the channel it answers, and the window a
/// stream's first item announces (the first `window_max` entry, its key a
/// str, whose value is an unsigned integer, as
/// `crate::channel::announced_window` finds it in a [`Header`]'s
/// `extra`). Every other entry is checked and counted as [`Header::read`]
/// checks and counts it, and skipped: the message id (whose presence is
/// still required), `v`, a deadline, the trace context.
#[derive(Debug, Default)]
pub(super) struct ReplyHead {
    pub(super) response_to: Option<MessageId>,
    pub(super) window_max: Option<u64>,
}

impl ReplyHead {
    pub(super) fn read(rd: &mut &[u8], nodes: &mut Nodes) -> Result<Self, EventError> {
        let entries = rmp::decode::read_map_len(rd)
            .map_err(|_| EventError::Malformed("header is not a map"))?;
        nodes.take()?;
        let (mut head, mut has_id) = (ReplyHead::default(), false);
        for _ in 0..entries {
            let Some((key, is_str)) = read_str_or_bin(rd) else {
                // (a key that is no string: skipped with its value)
                skip_value(rd, nodes)?;
                skip_value(rd, nodes)?;
                continue;
            };
            nodes.take()?;
            match key {
                b"message_id" => {
                    read_str_or_bin(rd)
                        .ok_or(EventError::Malformed("message_id is not str or bin"))?;
                    nodes.take()?;
                    has_id = true;
                }
                b"response_to" => {
                    head.response_to = Some(read_id(rd, "response_to is not str or bin")?);
                    nodes.take()?;
                }
                b"window_max" if is_str && head.window_max.is_none() => {
                    head.window_max = read_number(rd, nodes)?.as_u64();
                }
                _ => skip_value(rd, nodes)?,
            }
        }
        if !has_id {
            return Err(EventError::Malformed("header without message_id"));
        }
        Ok(head)
    }
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

/// An entry kept as values: its key (from `entry`, the entry's start)
/// and its value, into `extra`.
pub(super) fn read_extra<'a>(
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
pub(super) fn read_args(rd: &mut &[u8]) -> Result<Value, EventError> {
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

pub(super) fn read_value(rd: &mut &[u8]) -> Result<Value, EventError> {
    rmpv::decode::read_value(rd).map_err(|e| EventError::Msgpack(e.to_string()))
}

/// A msgpack str or bin at the front of `rd`, borrowed, with whether it
/// was a str; `None` (and `rd` untouched) for any other value.
pub(super) fn read_str_or_bin<'a>(rd: &mut &'a [u8]) -> Option<(&'a [u8], bool)> {
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
pub(super) fn read_id(rd: &mut &[u8], what: &'static str) -> Result<MessageId, EventError> {
    match read_str_or_bin(rd) {
        Some((bytes, is_str)) => Ok(MessageId::from_slice(bytes, is_str)),
        None => Err(EventError::Malformed(what)),
    }
}

/// The length of the event's array, at the front of `rd` (3 or more).
pub(super) fn read_parts(rd: &mut &[u8]) -> Result<u32, EventError> {
    let parts = rmp::decode::read_array_len(rd)
        .map_err(|_| EventError::Malformed("event is not an array"))?;
    if parts < 3 {
        return Err(EventError::Malformed("event has fewer than 3 parts"));
    }
    Ok(parts)
}

/// The event's name, at the front of `rd`, borrowed.
pub(super) fn read_name<'a>(rd: &mut &'a [u8]) -> Result<&'a str, EventError> {
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
pub(super) fn scan(mut rd: &[u8], max_nodes: usize) -> Result<(), EventError> {
    let mut nodes = Nodes::new(max_nodes);
    skip_value(&mut rd, &mut nodes)
}

/// Counts the value at the front of `rd` in `nodes`, checking it is
/// complete, without moving `rd` (before it is built).
pub(super) fn count_value(rd: &[u8], nodes: &mut Nodes) -> Result<(), EventError> {
    let mut probe = rd;
    skip_value(&mut probe, nodes)
}

/// The value at the front of `rd`, built once counted (see
/// [`count_value`]).
pub(super) fn read_counted(rd: &mut &[u8], nodes: &mut Nodes) -> Result<Value, EventError> {
    count_value(rd, nodes)?;
    read_value(rd)
}

/// The number at the front of `rd`, counted: an integer is read straight
/// from its bytes (a version or a deadline, in every event or request),
/// anything else as [`read_counted`] reads it.
pub(super) fn read_number(rd: &mut &[u8], nodes: &mut Nodes) -> Result<Value, EventError> {
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
pub(super) fn read_int(rd: &mut &[u8]) -> Option<rmpv::Integer> {
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
pub(super) struct Nodes {
    left: usize,
    max: usize,
}

impl Nodes {
    pub(super) fn new(max: usize) -> Self {
        Nodes { left: max, max }
    }

    /// Counts one more value.
    pub(super) fn take(&mut self) -> Result<(), EventError> {
        self.left = self.left.checked_sub(1).ok_or(EventError::TooComplex {
            max_nodes: self.max,
        })?;
        Ok(())
    }
}

/// Moves `rd` past one msgpack value without building it, checking that
/// it is complete and counting its values in `nodes`.
pub(super) fn skip_value(rd: &mut &[u8], nodes: &mut Nodes) -> Result<(), EventError> {
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
