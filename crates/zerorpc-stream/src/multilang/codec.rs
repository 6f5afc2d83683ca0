//! Framing and (de)serialization of protocol messages, sans-IO: bytes in,
//! messages out; messages in, bytes out. Both sides (worker and component)
//! use it.

use super::protocol::{FromComponent, ToComponent};
use crate::error::Error;

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

/// Accumulates bytes from a peer and yields whole messages, and the stray
/// output (lines that are not protocol) found between them.
pub struct Decoder {
    pub(crate) serializer: Serializer,
    pub(crate) buf: Vec<u8>,
}

impl Decoder {
    /// A decoder for one serializer.
    pub fn new(serializer: Serializer) -> Decoder {
        Decoder {
            serializer,
            buf: Vec::new(),
        }
    }
}

/// What a worker decodes from a component.
pub(crate) type _FromComponent = FromComponent;
/// What a component decodes from a worker.
pub(crate) type _ToComponent = ToComponent;
pub(crate) type _Error = Error;
