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
mod read;
mod write;

pub use header::{Header, SharedEntries};
pub use id::MessageId;
pub use kind::EventKind;
pub use write::PIECE_MIN;

pub(crate) use read::Received;
use read::*;
use write::*;
pub(crate) use write::{dealer_message, delimiter, Head};

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
}

#[cfg(test)]
mod tests;
