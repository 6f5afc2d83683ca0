//! Multipart messages.

use bytes::Bytes;
use smallvec::SmallVec;

/// A multipart ZeroMQ message: one or more frames, sent and received
/// atomically. Frames are reference-counted [`Bytes`], so cloning a message
/// (as PUB does for each subscriber) copies no payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    frames: SmallVec<[Bytes; 3]>,
}

impl Message {
    /// An empty message (no frames yet).
    pub fn new() -> Self {
        Message::default()
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the message has no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Total payload bytes over all frames.
    pub fn byte_len(&self) -> usize {
        self.frames.iter().map(Bytes::len).sum()
    }

    /// Appends a frame.
    pub fn push_back(&mut self, frame: impl Into<Bytes>) {
        self.frames.push(frame.into());
    }

    /// Prepends a frame (for example a routing identity).
    pub fn push_front(&mut self, frame: impl Into<Bytes>) {
        self.frames.insert(0, frame.into());
    }

    /// Removes and returns the first frame.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        if self.frames.is_empty() {
            None
        } else {
            Some(self.frames.remove(0))
        }
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[Bytes] {
        &self.frames
    }

    /// The frame at `index`.
    pub fn get(&self, index: usize) -> Option<&Bytes> {
        self.frames.get(index)
    }

    /// The last frame (the payload, for DEALER/ROUTER envelopes).
    pub fn last(&self) -> Option<&Bytes> {
        self.frames.last()
    }

    /// Consumes the message, returning its frames.
    pub fn into_frames(self) -> impl Iterator<Item = Bytes> {
        self.frames.into_iter()
    }
}

impl From<Bytes> for Message {
    fn from(frame: Bytes) -> Self {
        let mut m = Message::new();
        m.push_back(frame);
        m
    }
}

impl From<Vec<u8>> for Message {
    fn from(frame: Vec<u8>) -> Self {
        Message::from(Bytes::from(frame))
    }
}

impl From<&'static str> for Message {
    fn from(frame: &'static str) -> Self {
        Message::from(Bytes::from_static(frame.as_bytes()))
    }
}

impl From<&'static [u8]> for Message {
    fn from(frame: &'static [u8]) -> Self {
        Message::from(Bytes::from_static(frame))
    }
}

impl From<Vec<Bytes>> for Message {
    fn from(frames: Vec<Bytes>) -> Self {
        Message {
            frames: frames.into(),
        }
    }
}

impl<B: Into<Bytes>> FromIterator<B> for Message {
    fn from_iter<I: IntoIterator<Item = B>>(iter: I) -> Self {
        Message {
            frames: iter.into_iter().map(Into::into).collect(),
        }
    }
}
