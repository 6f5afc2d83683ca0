//! Events (documented on [`Event`]).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use rmp::Marker;
use rmpv::Value;

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
        let h = &self.header;
        let entries = 1
            + usize::from(h.version.is_some())
            + usize::from(h.response_to.is_some())
            + usize::from(h.deadline_ms.is_some())
            + usize::from(h.traceparent.is_some())
            + h.extra.len()
            + h.shared.len();
        let mut out = Vec::with_capacity(96 + h.shared.encoded().len());
        // Writing into a Vec cannot fail.
        let _ = rmp::encode::write_array_len(&mut out, 3);
        let _ = rmp::encode::write_map_len(&mut out, entries as u32);
        let _ = rmp::encode::write_str(&mut out, "message_id");
        h.message_id.write(&mut out);
        if let Some(v) = h.version {
            let _ = rmp::encode::write_str(&mut out, "v");
            let _ = rmp::encode::write_sint(&mut out, v);
        }
        if let Some(r) = &h.response_to {
            let _ = rmp::encode::write_str(&mut out, "response_to");
            r.write(&mut out);
        }
        if let Some(ms) = h.deadline_ms {
            let _ = rmp::encode::write_str(&mut out, crate::deadline::HEADER_KEY);
            let _ = rmp::encode::write_uint(&mut out, ms);
        }
        if let Some(tp) = &h.traceparent {
            let _ = rmp::encode::write_str(&mut out, crate::trace::TRACEPARENT);
            let _ = rmp::encode::write_str_len(&mut out, 55);
            out.extend_from_slice(&tp.to_bytes());
        }
        for (k, v) in &h.extra {
            let _ = rmpv::encode::write_value(&mut out, k);
            let _ = rmpv::encode::write_value(&mut out, v);
        }
        out.extend_from_slice(h.shared.encoded());
        let _ = rmp::encode::write_str(&mut out, &self.name);
        let _ = rmpv::encode::write_value(&mut out, &self.args);
        Bytes::from(out)
    }

    /// Decodes from msgpack, refusing anything that is not a well-formed
    /// event or exceeds `limits`.
    pub fn decode(buf: &[u8], limits: DecodeLimits) -> Result<Self, EventError> {
        let (header, name, mut rd) = Event::read_head(buf, limits)?;
        let args = read_args(&mut rd)?;
        Ok(Event { header, name, args })
    }

    /// Checks the event (see [`scan`]), then reads the header and the name
    /// straight from the bytes; returns the rest (the arguments first).
    fn read_head(buf: &[u8], limits: DecodeLimits) -> Result<(Header, String, &[u8]), EventError> {
        scan(buf, limits.max_nodes)?;
        let mut rd = buf;
        let parts = rmp::decode::read_array_len(&mut rd)
            .map_err(|_| EventError::Malformed("event is not an array"))?;
        if parts < 3 {
            return Err(EventError::Malformed("event has fewer than 3 parts"));
        }
        let header = Header::read(&mut rd)?;
        let name = match read_str_or_bin(&mut rd) {
            Some((bytes, _)) => std::str::from_utf8(bytes)
                .map_err(|_| EventError::Malformed("event name is not UTF-8"))?
                .to_owned(),
            None => return Err(EventError::Malformed("event name is not a string")),
        };
        Ok((header, name, rd))
    }

    /// Decodes only the header and the name, checking the whole event as
    /// [`Event::decode`] does but leaving the arguments unread (for
    /// routers, which forward the original bytes).
    pub fn decode_head(buf: &[u8], limits: DecodeLimits) -> Result<(Header, String), EventError> {
        let (header, name, _) = Event::read_head(buf, limits)?;
        Ok((header, name))
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
/// is bounded by [`scan`], which has checked the elements are there.
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

/// Walks msgpack bytes without building values: checks they are complete
/// and hold at most `max_nodes` values.
fn scan(mut rd: &[u8], max_nodes: usize) -> Result<(), EventError> {
    let truncated = || EventError::Msgpack("truncated msgpack".into());
    let mut pending: u64 = 1;
    let mut nodes = 0usize;
    while pending > 0 {
        pending -= 1;
        nodes += 1;
        if nodes > max_nodes {
            return Err(EventError::TooComplex { max_nodes });
        }
        let marker = rmp::decode::read_marker(&mut rd).map_err(|_| truncated())?;
        let mut len = |n: usize| -> Result<u64, EventError> {
            if rd.len() < n {
                return Err(truncated());
            }
            let (head, rest) = rd.split_at(n);
            rd = rest;
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
        rd = &rd[skip..];
        // Every pending value needs at least one more byte.
        if pending > rd.len() as u64 {
            return Err(truncated());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn python_request_bytes_decode() {
        // PROTOCOL.md section 4: echo("hi") from the Python client.
        let id = "0123456789abcdef0123456789abcdef";
        let mut wire = hex("9382aa");
        wire.extend_from_slice(b"message_id");
        wire.extend_from_slice(&hex("c420"));
        wire.extend_from_slice(id.as_bytes());
        wire.extend_from_slice(&hex("a17603a4"));
        wire.extend_from_slice(b"echo");
        wire.extend_from_slice(&hex("91a2"));
        wire.extend_from_slice(b"hi");
        let ev = Event::decode(&wire, DecodeLimits::default()).unwrap();
        assert_eq!(ev.name, "echo");
        assert_eq!(ev.args, Value::Array(vec![Value::from("hi")]));
        assert_eq!(ev.header.message_id.as_bytes(), id.as_bytes());
        assert!(!ev.header.message_id.is_str());
        assert_eq!(ev.header.version, Some(3));
        // and we encode the same event byte for byte
        assert_eq!(&ev.encode()[..], &wire[..]);
    }

    #[test]
    fn reply_echoes_id_type_and_keeps_extra_keys() {
        let mut req = Event::new("add", Value::Array(vec![1.into(), 2.into()]));
        req.header.message_id = MessageId::from_str_id("3f2504e0-4f89-11d3-9a0c-0305e82c3301");
        req.header.set("traceparent", Value::from("00-abc-def-01"));
        req.header
            .extra
            .push((Value::from(7), Value::from("int key kept")));
        let back = Event::decode(&req.encode(), DecodeLimits::default()).unwrap();
        assert_eq!(back, req);
        let reply = Event::on_channel(&back.header.message_id, "OK", Value::Array(vec![3.into()]));
        let reply = Event::decode(&reply.encode(), DecodeLimits::default()).unwrap();
        let rt = reply.header.response_to.unwrap();
        assert!(rt.is_str(), "a string id is echoed as a string");
        assert_eq!(rt, req.header.message_id);
        assert_eq!(
            back.header.get("traceparent"),
            Some(&Value::from("00-abc-def-01"))
        );
    }

    #[test]
    fn a_w3c_traceparent_is_read_in_place_and_written_back() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let raw = Value::Array(vec![
            Value::Map(vec![
                (Value::from("message_id"), Value::from("x")),
                (Value::from("traceparent"), Value::from(tp)),
                (Value::from("tracestate"), Value::from("k=v")),
            ]),
            Value::from("m"),
            Value::Array(vec![]),
        ]);
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &raw).unwrap();
        let ev = Event::decode(&b, DecodeLimits::default()).unwrap();
        let parsed = ev.header.traceparent.expect("parsed in place");
        assert_eq!(
            parsed.span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(parsed.flags, 1);
        assert_eq!(ev.header.get("traceparent"), None, "not an extra entry");
        assert_eq!(ev.header.get("tracestate"), Some(&Value::from("k=v")));
        let ctx = crate::TraceContext::from_header(&ev.header).unwrap();
        assert_eq!(ctx.traceparent(), tp);
        assert_eq!(ctx.tracestate.as_deref(), Some("k=v"));
        // As a Python peer sees the event again: the same string key.
        let again = rmpv::decode::read_value(&mut &ev.encode()[..]).unwrap();
        let header = again.as_array().unwrap()[0].as_map().unwrap();
        assert!(header
            .iter()
            .any(|(k, v)| k.as_str() == Some("traceparent") && v.as_str() == Some(tp)));
        // Other versions and shapes: kept as they came.
        for odd in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01",
        ] {
            let mut e = Event::new("m", Value::Array(vec![]));
            e.header.set("traceparent", Value::from(odd));
            let back = Event::decode(&e.encode(), DecodeLimits::default()).unwrap();
            assert_eq!(back.header.traceparent, None, "{odd}");
            assert_eq!(back.header.get("traceparent"), Some(&Value::from(odd)));
        }
        // The right shape with digits W3C refuses (upper case, zero ids):
        // kept as they came, and no context comes of it.
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let mut e = Event::new("m", Value::Array(vec![]));
            e.header.set("traceparent", Value::from(bad));
            let back = Event::decode(&e.encode(), DecodeLimits::default()).unwrap();
            assert_eq!(back.header.traceparent, None, "{bad}");
            assert_eq!(
                crate::TraceContext::from_header(&back.header),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn random_ids_look_like_python() {
        let a = MessageId::random();
        assert_eq!(a.as_bytes().len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, MessageId::random());
        assert_eq!(a.to_value(), Value::Binary(a.as_bytes().to_vec()));
        // Each thread has its own prefix: ids made on two threads at once
        // never meet.
        let other: Vec<MessageId> =
            std::thread::spawn(|| (0..1000).map(|_| MessageId::random()).collect())
                .join()
                .unwrap();
        let mine: Vec<MessageId> = (0..1000).map(|_| MessageId::random()).collect();
        let all: std::collections::HashSet<&[u8]> =
            other.iter().chain(&mine).map(MessageId::as_bytes).collect();
        assert_eq!(all.len(), 2000);
        assert_ne!(other[0].as_bytes()[..16], mine[0].as_bytes()[..16]);
    }

    #[test]
    fn long_ids_round_trip_like_short_ones() {
        // Ids up to 38 bytes are kept inline, longer ones shared: both
        // decode, compare and echo the same.
        for len in [1, 32, 36, 38, 39, 200] {
            for is_str in [false, true] {
                let raw = vec![b'a'; len];
                let id = if is_str {
                    MessageId::from_str_id(std::str::from_utf8(&raw).unwrap())
                } else {
                    MessageId::from_bin(raw.clone())
                };
                assert_eq!(id.as_bytes(), &raw[..]);
                let ev = Event::on_channel(&id, "OK", Value::Array(vec![]));
                let back = Event::decode(&ev.encode(), DecodeLimits::default()).unwrap();
                assert_eq!(back.header.response_to.as_ref(), Some(&id));
                assert_eq!(back.header.response_to.unwrap().is_str(), is_str);
            }
        }
    }

    #[test]
    fn decode_head_reads_header_and_name_only() {
        let ev = Event::on_channel(&MessageId::random(), "STREAM", Value::Binary(vec![7; 1000]));
        let bytes = ev.encode();
        let (h, name) = Event::decode_head(&bytes, DecodeLimits::default()).unwrap();
        assert_eq!((h, name), (ev.header.clone(), ev.name.clone()));
        // The same checks as a full decode: truncated or malformed events fail.
        assert!(Event::decode_head(&bytes[..bytes.len() - 1], DecodeLimits::default()).is_err());
        let mut not_array = Vec::new();
        rmpv::encode::write_value(&mut not_array, &Value::from("x")).unwrap();
        assert!(Event::decode_head(&not_array, DecodeLimits::default()).is_err());
    }

    #[test]
    fn the_deadline_key_round_trips_and_a_malformed_one_is_none() {
        let mut ev = Event::new("slow", Value::Array(vec![]));
        ev.header.deadline_ms = Some(1500);
        let back = Event::decode(&ev.encode(), DecodeLimits::default()).unwrap();
        assert_eq!(back.header.deadline_ms, Some(1500));
        assert!(
            back.header.extra.is_empty(),
            "a known key, not an extra one"
        );
        // As a Python peer would see it: one more string key in the map.
        let v = rmpv::decode::read_value(&mut &ev.encode()[..]).unwrap();
        let header = v.as_array().unwrap()[0].as_map().unwrap();
        assert!(header
            .iter()
            .any(|(k, v)| k.as_str() == Some("deadline_ms") && v.as_u64() == Some(1500)));
        for odd in [Value::from(-1), Value::from(1.5), Value::from("10")] {
            let raw = Value::Array(vec![
                Value::Map(vec![
                    (Value::from("message_id"), Value::from("x")),
                    (Value::from("deadline_ms"), odd.clone()),
                ]),
                Value::from("m"),
                Value::Array(vec![]),
            ]);
            let mut b = Vec::new();
            rmpv::encode::write_value(&mut b, &raw).unwrap();
            let ev = Event::decode(&b, DecodeLimits::default()).unwrap();
            assert_eq!(ev.header.deadline_ms, None, "{odd}");
        }
    }

    #[test]
    fn malformed_events_are_errors() {
        let lim = DecodeLimits::default();
        let enc = |v: Value| {
            let mut b = Vec::new();
            rmpv::encode::write_value(&mut b, &v).unwrap();
            b
        };
        let hdr = Value::Map(vec![(Value::from("message_id"), Value::from("x"))]);
        for bad in [
            enc(Value::from(5)),
            enc(Value::Array(vec![hdr.clone(), Value::from("m")])),
            enc(Value::Array(vec![
                Value::from(1),
                Value::from("m"),
                Value::Nil,
            ])),
            enc(Value::Array(vec![hdr.clone(), Value::from(9), Value::Nil])),
            enc(Value::Array(vec![
                Value::Map(vec![]),
                Value::from("m"),
                Value::Nil,
            ])),
            enc(Value::Array(vec![
                Value::Map(vec![(Value::from("message_id"), Value::from(1))]),
                Value::from("m"),
                Value::Nil,
            ])),
            vec![],
            vec![0x93],
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
            vec![0xc1],
        ] {
            assert!(Event::decode(&bad, lim).is_err(), "{bad:?}");
        }
        let ok = enc(Value::Array(vec![hdr, Value::from("m"), Value::Nil]));
        assert!(Event::decode(&ok, lim).is_ok());
    }

    #[test]
    fn header_keys_read_in_place_as_str_or_bin_others_kept_in_order() {
        // A Python 2 style header: bin keys; an int key and unknown keys
        // between the known ones; the name as bin.
        let mut b = Vec::new();
        rmp::encode::write_array_len(&mut b, 3).unwrap();
        rmp::encode::write_map_len(&mut b, 5).unwrap();
        rmp::encode::write_bin(&mut b, b"trace_id").unwrap();
        rmp::encode::write_str(&mut b, "t1").unwrap();
        rmp::encode::write_bin(&mut b, b"message_id").unwrap();
        rmp::encode::write_bin(&mut b, b"id-1").unwrap();
        rmp::encode::write_sint(&mut b, 7).unwrap();
        rmp::encode::write_str(&mut b, "seven").unwrap();
        rmp::encode::write_bin(&mut b, b"v").unwrap();
        rmp::encode::write_sint(&mut b, 3).unwrap();
        rmp::encode::write_str(&mut b, "response_to").unwrap();
        rmp::encode::write_str(&mut b, "id-0").unwrap();
        rmp::encode::write_bin(&mut b, b"OK").unwrap();
        rmp::encode::write_array_len(&mut b, 1).unwrap();
        rmp::encode::write_sint(&mut b, 42).unwrap();
        let ev = Event::decode(&b, DecodeLimits::default()).unwrap();
        assert_eq!(ev.name, "OK");
        assert_eq!(ev.header.message_id.as_bytes(), b"id-1");
        assert!(!ev.header.message_id.is_str());
        let rt = ev.header.response_to.clone().unwrap();
        assert_eq!((rt.as_bytes(), rt.is_str()), (&b"id-0"[..], true));
        assert_eq!(ev.header.version, Some(3));
        assert_eq!(
            ev.header.extra,
            vec![
                (Value::Binary(b"trace_id".to_vec()), Value::from("t1")),
                (Value::from(7), Value::from("seven")),
            ]
        );
        assert_eq!(ev.args, Value::Array(vec![Value::from(42)]));
        // A message id of another type, and a name that is not UTF-8.
        let with = |id: &dyn Fn(&mut Vec<u8>), name: &[u8]| {
            let mut b = Vec::new();
            rmp::encode::write_array_len(&mut b, 3).unwrap();
            rmp::encode::write_map_len(&mut b, 1).unwrap();
            rmp::encode::write_str(&mut b, "message_id").unwrap();
            id(&mut b);
            rmp::encode::write_bin(&mut b, name).unwrap();
            rmp::encode::write_nil(&mut b).unwrap();
            Event::decode(&b, DecodeLimits::default())
        };
        assert!(matches!(
            with(
                &|b| rmp::encode::write_sint(b, 1).map(|_| ()).unwrap(),
                b"x"
            ),
            Err(EventError::Malformed("message_id is not str or bin"))
        ));
        assert!(matches!(
            with(&|b| rmp::encode::write_str(b, "i").unwrap(), b"\xff"),
            Err(EventError::Malformed("event name is not UTF-8"))
        ));
        assert!(with(&|b| rmp::encode::write_str(b, "i").unwrap(), b"ok").is_ok());
    }

    #[test]
    fn node_limit_stops_amplification() {
        // [header, "m", [nil * 1000]]
        let mut args = vec![0xdc, 0x03, 0xe8];
        args.extend(std::iter::repeat_n(0xc0, 1000));
        let hdr = Event::new("m", Value::Nil).encode();
        // splice: reuse header/name of an encoded event, replace args
        let mut wire = hdr[..hdr.len() - 1].to_vec();
        wire.extend_from_slice(&args);
        assert!(Event::decode(&wire, DecodeLimits { max_nodes: 2000 }).is_ok());
        assert!(matches!(
            Event::decode(&wire, DecodeLimits { max_nodes: 500 }),
            Err(EventError::TooComplex { .. })
        ));
    }
}
