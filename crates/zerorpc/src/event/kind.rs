//! [`EventKind`]: the protocol's own event names.

use super::*;

/// The protocol's own event names: replies, stream items and channel
/// control. Any other name is a method call (or, on a one-way socket, a
/// message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `OK`: a call's result; ends the channel.
    Ok,
    /// `ERR`: a remote error `[name, message, traceback]`; ends the channel.
    Err,
    /// `STREAM`: one item of a streamed result (uses one credit).
    Stream,
    /// `STREAM_DONE`: the end of a stream; ends the channel.
    StreamDone,
    /// `_zpc_hb`: a heartbeat.
    Heartbeat,
    /// `_zpc_more`: a grant of stream credit.
    More,
}

impl EventKind {
    /// The name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Ok => "OK",
            EventKind::Err => "ERR",
            EventKind::Stream => "STREAM",
            EventKind::StreamDone => "STREAM_DONE",
            EventKind::Heartbeat => "_zpc_hb",
            EventKind::More => "_zpc_more",
        }
    }

    /// The kind an event name stands for; `None` for a method name.
    pub fn of(name: &str) -> Option<EventKind> {
        Some(match name {
            "OK" => EventKind::Ok,
            "ERR" => EventKind::Err,
            "STREAM" => EventKind::Stream,
            "STREAM_DONE" => EventKind::StreamDone,
            "_zpc_hb" => EventKind::Heartbeat,
            "_zpc_more" => EventKind::More,
            _ => return None,
        })
    }

    /// Whether it ends its channel (`OK`, `ERR`, `STREAM_DONE`).
    pub const fn is_final(self) -> bool {
        matches!(self, EventKind::Ok | EventKind::Err | EventKind::StreamDone)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<EventKind> for String {
    fn from(k: EventKind) -> String {
        k.name().to_owned()
    }
}

impl PartialEq<EventKind> for String {
    fn eq(&self, k: &EventKind) -> bool {
        self == k.name()
    }
}

impl PartialEq<EventKind> for str {
    fn eq(&self, k: &EventKind) -> bool {
        self == k.name()
    }
}
