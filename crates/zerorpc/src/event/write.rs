//! Writing events: the head straight into the message's buffer, and long
//! strings and binaries of the arguments as pieces of their own.

use super::*;

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
    pub(super) fn of(h: &'a Header, name: &'a str) -> Self {
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
    pub(super) fn size_hint(&self) -> usize {
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
    pub(super) fn write(&self) -> Vec<u8> {
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
pub(super) fn pieces(head: Vec<u8>, args: Value) -> SmallVec<[Bytes; 3]> {
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

/// The message a DEALER sends for `ev`: an empty delimiter, then the
/// event (see [`Event::append_to`]).
pub(crate) fn dealer_message(ev: Event) -> zmtp::Message {
    let mut m = delimiter();
    ev.append_to(&mut m);
    m
}

/// A message of the empty delimiter frame alone, which precedes an event
/// between a DEALER and a ROUTER (the event to be appended).
pub(crate) fn delimiter() -> zmtp::Message {
    zmtp::Message::from(Bytes::new())
}

/// Whether `v` holds a string or binary of [`PIECE_MIN`] bytes or more.
pub(super) fn holds_long(v: &Value) -> bool {
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
pub(super) struct PieceWriter {
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
