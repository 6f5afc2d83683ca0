//! [`Header`]: an event's header map, the keys we know read in place and
//! the others kept ([`SharedEntries`]).

use super::*;

/// An event header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Unique id of this event.
    pub message_id: MessageId,
    /// Protocol version (`v`); absent in very old peers.
    pub version: Option<i64>,
    /// The channel this event belongs to (the first event's id).
    pub response_to: Option<MessageId>,
    /// The caller's remaining budget in milliseconds (`deadline_ms`, a
    /// request's key that Python and Node ignore; see [`crate::deadline`]).
    pub deadline_ms: Option<u64>,
    /// A W3C version-00 `traceparent` (see
    /// [`TraceContext`](crate::TraceContext)), read without allocating;
    /// any other `traceparent` value stays in `extra`
    /// (where [`crate::TraceContext::from_header`] reads it as before).
    pub traceparent: Option<crate::trace::TraceParent>,
    /// Every other key, in order, untouched.
    pub extra: Vec<(Value, Value)>,
    /// More entries, encoded once and shared by many events (a channel's
    /// trace context); sent after `extra`. Decoding puts every entry in
    /// `extra`.
    pub shared: SharedEntries,
}

/// Header entries encoded once, for many events: cloning is a reference
/// count, encoding a copy of bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedEntries {
    /// The entry count (4 bytes, big-endian), then the entries.
    bytes: Option<Arc<[u8]>>,
}

impl SharedEntries {
    /// Encodes `entries` (none: an empty set).
    pub fn new(entries: &[(Value, Value)]) -> Self {
        let mut bytes = Vec::with_capacity(80);
        for (k, v) in entries {
            // Writing into a Vec cannot fail.
            let _ = rmpv::encode::write_value(&mut bytes, k);
            let _ = rmpv::encode::write_value(&mut bytes, v);
        }
        SharedEntries::from_encoded(entries.len() as u32, &bytes)
    }

    /// `count` entries already encoded as msgpack key/value pairs (the
    /// caller vouches for them).
    pub(crate) fn from_encoded(count: u32, encoded: &[u8]) -> Self {
        if count == 0 {
            return SharedEntries::default();
        }
        // (one allocation: a trace context's entries are put together on
        // the stack, then copied once)
        let mut small = [0u8; 128];
        let bytes: Arc<[u8]> = match small.get_mut(..4 + encoded.len()) {
            Some(buf) => {
                buf[..4].copy_from_slice(&count.to_be_bytes());
                buf[4..].copy_from_slice(encoded);
                Arc::from(&*buf)
            }
            None => [&count.to_be_bytes()[..], encoded].concat().into(),
        };
        SharedEntries { bytes: Some(bytes) }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match self.bytes.as_deref() {
            Some([a, b, c, d, ..]) => u32::from_be_bytes([*a, *b, *c, *d]) as usize,
            _ => 0,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries, decoded (for inspection).
    pub fn entries(&self) -> Vec<(Value, Value)> {
        let mut rd = self.encoded();
        let mut out = Vec::with_capacity(self.len());
        for _ in 0..self.len() {
            match (
                rmpv::decode::read_value(&mut rd),
                rmpv::decode::read_value(&mut rd),
            ) {
                (Ok(k), Ok(v)) => out.push((k, v)),
                _ => break,
            }
        }
        out
    }

    pub(super) fn encoded(&self) -> &[u8] {
        self.bytes
            .as_deref()
            .map_or(&[], |b| b.get(4..).unwrap_or(&[]))
    }
}

impl Header {
    /// A header with a fresh id.
    pub fn new() -> Self {
        Header {
            message_id: MessageId::random(),
            version: Some(PROTOCOL_VERSION),
            response_to: None,
            deadline_ms: None,
            traceparent: None,
            extra: Vec::new(),
            shared: SharedEntries::default(),
        }
    }

    /// A string-keyed extra entry (shared entries, only ever set on
    /// events being sent, are not searched).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.extra
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Sets a string-keyed extra entry (`traceparent` set this way
    /// replaces [`Header::traceparent`]).
    pub fn set(&mut self, key: &str, value: Value) {
        if key == crate::trace::TRACEPARENT {
            self.traceparent = None;
        }
        match self.extra.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
            Some(slot) => slot.1 = value,
            None => self.extra.push((Value::from(key), value)),
        }
    }

    /// Reads a header from the front of `rd`: the keys the protocol names
    /// (str, or bin from Python 2 peers) straight from the bytes; only the
    /// other entries become values, kept in order in `extra`. Its values
    /// are counted in `nodes` (see `Event::read_head`): a value of unknown
    /// shape is walked on a copy first, so nothing over the limit, or
    /// incomplete, is built.
    pub(super) fn read(rd: &mut &[u8], nodes: &mut Nodes) -> Result<Self, EventError> {
        let entries = rmp::decode::read_map_len(rd)
            .map_err(|_| EventError::Malformed("header is not a map"))?;
        nodes.take()?;
        let mut message_id = None;
        let mut version = None;
        let mut response_to = None;
        let mut deadline_ms = None;
        let mut traceparent = None;
        let mut extra = Vec::new();
        for _ in 0..entries {
            let before = *rd;
            let Some((key, _)) = read_str_or_bin(rd) else {
                // (a key that is no string: counted, then built, with its
                // value)
                let mut probe = before;
                skip_value(&mut probe, nodes)?;
                skip_value(&mut probe, nodes)?;
                read_extra(before, rd, &mut extra)?;
                continue;
            };
            nodes.take()?;
            match key {
                b"message_id" => {
                    message_id = Some(read_id(rd, "message_id is not str or bin")?);
                    nodes.take()?;
                }
                b"v" => version = read_number(rd, nodes)?.as_i64(),
                b"response_to" => {
                    response_to = Some(read_id(rd, "response_to is not str or bin")?);
                    nodes.take()?;
                }
                // (a budget that is not a whole number is no budget)
                b"deadline_ms" => deadline_ms = read_number(rd, nodes)?.as_u64(),
                b"traceparent" => {
                    let mut value = *rd;
                    match read_str_or_bin(&mut value)
                        .and_then(|(v, _)| crate::trace::TraceParent::parse(v))
                    {
                        Some(tp) => {
                            traceparent = Some(tp);
                            *rd = value;
                            nodes.take()?;
                        }
                        None => {
                            count_value(rd, nodes)?;
                            read_extra(before, rd, &mut extra)?
                        }
                    }
                }
                _ => {
                    count_value(rd, nodes)?;
                    read_extra(before, rd, &mut extra)?
                }
            }
        }
        Ok(Header {
            message_id: message_id.ok_or(EventError::Malformed("header without message_id"))?,
            version,
            response_to,
            deadline_ms,
            traceparent,
            extra,
            shared: SharedEntries::default(),
        })
    }
}

impl Default for Header {
    fn default() -> Self {
        Header::new()
    }
}
