//! Multipart messages.

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

/// A multipart ZeroMQ message: one or more frames, sent and received
/// atomically. Frames are reference-counted [`Bytes`], so cloning a message
/// (as PUB does for each subscriber) copies no payload.
///
/// The last frame of a message to send may be made of pieces
/// ([`Message::push_back_pieces`]): they go on the wire as one frame,
/// written without being copied together. A received message never has
/// pieces. Equality compares the pieces as they are: a frame in pieces
/// is not equal to the same bytes whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The frames, except that the last `last_pieces` entries (when there
    /// are two or more) are the pieces of the last frame.
    frames: SmallVec<[Bytes; 3]>,
    last_pieces: usize,
}

impl Message {
    /// An empty message (no frames yet).
    pub fn new() -> Self {
        Message::default()
    }

    /// Number of frames (a frame made of pieces counts once).
    pub fn len(&self) -> usize {
        self.frames.len() - self.last_pieces.saturating_sub(1)
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
    #[inline]
    pub fn push_back(&mut self, frame: impl Into<Bytes>) {
        if self.last_pieces > 1 {
            self.join_last();
        }
        self.frames.push(frame.into());
    }

    /// Appends a frame made of `pieces`, in order: one frame on the wire,
    /// whose pieces are written as they are (a large piece is not copied).
    /// Until another frame is appended, [`Message::frames`],
    /// [`Message::get`] and [`Message::last`] see the pieces, and
    /// [`Message::frame_pieces`] sees them as one frame.
    pub fn push_back_pieces(&mut self, pieces: impl IntoIterator<Item = Bytes>) {
        self.join_last();
        let start = self.frames.len();
        self.frames
            .extend(pieces.into_iter().filter(|p| !p.is_empty()));
        match self.frames.len() - start {
            0 => self.frames.push(Bytes::new()),
            1 => {}
            n => self.last_pieces = n,
        }
    }

    /// Copies the pieces of the last frame, if it has any, into one.
    #[cold]
    #[inline(never)]
    fn join_last(&mut self) {
        if self.last_pieces < 2 {
            return;
        }
        let start = self.frames.len() - self.last_pieces;
        let joined = join(&self.frames[start..]);
        self.frames.truncate(start);
        self.frames.push(joined);
        self.last_pieces = 0;
    }

    /// The frames in order, each as its pieces (one piece for a frame
    /// that is whole).
    pub fn frame_pieces(&self) -> impl Iterator<Item = &[Bytes]> {
        let (whole, pieces) = self.split_pieces();
        whole
            .chunks(1)
            .chain(Some(pieces).filter(|p| !p.is_empty()))
    }

    /// The frames that are whole, and the pieces of the last frame when
    /// it is made of pieces (else none).
    pub(crate) fn split_pieces(&self) -> (&[Bytes], &[Bytes]) {
        self.frames.split_at(self.frames.len() - self.last_pieces)
    }

    /// Prepends a frame (for example a routing identity).
    pub fn push_front(&mut self, frame: impl Into<Bytes>) {
        self.frames.insert(0, frame.into());
    }

    /// Removes and returns the first frame.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        if self.frames.len() == self.last_pieces {
            // the first frame is the one made of pieces
            self.join_last();
        }
        if self.frames.is_empty() {
            None
        } else {
            Some(self.frames.remove(0))
        }
    }

    /// The frames, in order (the last one as its pieces, if it has any).
    pub fn frames(&self) -> &[Bytes] {
        &self.frames
    }

    /// The frame at `index` (counting a piece of the last frame as a frame).
    pub fn get(&self, index: usize) -> Option<&Bytes> {
        self.frames.get(index)
    }

    /// The first frame, whole (its pieces copied together, if it has any).
    pub fn first_frame(&self) -> Option<Bytes> {
        self.frame_pieces().next().map(join)
    }

    /// The last frame (the payload, for DEALER/ROUTER envelopes), or the
    /// last of its pieces.
    pub fn last(&self) -> Option<&Bytes> {
        self.frames.last()
    }

    /// Consumes the message, returning its frames (the last one whole).
    pub fn into_frames(mut self) -> impl Iterator<Item = Bytes> {
        self.join_last();
        self.frames.into_iter()
    }
}

/// `pieces` copied into one (no copy for a single piece).
pub(crate) fn join(pieces: &[Bytes]) -> Bytes {
    if let [one] = pieces {
        return one.clone();
    }
    let mut joined = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
    for p in pieces {
        joined.extend_from_slice(p);
    }
    joined.freeze()
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
            last_pieces: 0,
        }
    }
}

impl<B: Into<Bytes>> FromIterator<B> for Message {
    fn from_iter<I: IntoIterator<Item = B>>(iter: I) -> Self {
        Message {
            frames: iter.into_iter().map(Into::into).collect(),
            last_pieces: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces() -> [Bytes; 3] {
        [
            Bytes::from_static(b"head-"),
            Bytes::from(vec![7u8; 20_000]),
            Bytes::from_static(b"-tail"),
        ]
    }

    fn whole() -> Bytes {
        let mut v = b"head-".to_vec();
        v.extend_from_slice(&[7u8; 20_000]);
        v.extend_from_slice(b"-tail");
        Bytes::from(v)
    }

    #[test]
    fn a_frame_of_pieces_counts_once_and_keeps_its_pieces_apart() {
        let mut m = Message::from_iter([&b"id"[..], b""]);
        m.push_back_pieces(pieces());
        assert_eq!(m.len(), 3);
        assert_eq!(m.byte_len(), 2 + whole().len());
        let frames: Vec<&[Bytes]> = m.frame_pieces().collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], [Bytes::from_static(b"id")]);
        assert_eq!(frames[1], [Bytes::new()]);
        assert_eq!(frames[2], pieces());
        // the big piece is the caller's bytes, not a copy
        assert_eq!(frames[2][1].as_ptr(), m.frames()[3].as_ptr());
        assert_eq!(
            m.into_frames().collect::<Vec<_>>(),
            [&b"id"[..], b"", &whole()[..]]
        );
    }

    #[test]
    fn a_frame_after_the_pieces_joins_them() {
        let mut m = Message::new();
        m.push_back_pieces(pieces());
        m.push_back(Bytes::from_static(b"next"));
        assert_eq!(m.len(), 2);
        assert_eq!(m.frames(), [whole(), Bytes::from_static(b"next")]);
        assert_eq!(m.frame_pieces().count(), 2);
    }

    #[test]
    fn the_first_frame_is_whole_even_when_it_is_made_of_pieces() {
        let mut m = Message::new();
        m.push_back_pieces(pieces());
        assert_eq!(m.len(), 1);
        assert_eq!(m.first_frame(), Some(whole()));
        let mut m2 = m.clone();
        m2.push_front(Bytes::from_static(b"id"));
        assert_eq!(m2.first_frame(), Some(Bytes::from_static(b"id")));
        assert_eq!(m.pop_front(), Some(whole()));
        assert!(m.is_empty());
        assert_eq!(m.pop_front(), None);
    }

    #[test]
    fn no_pieces_or_one_piece_is_an_ordinary_frame() {
        let mut m = Message::new();
        m.push_back_pieces([]);
        assert_eq!(m.frames(), [Bytes::new()]);
        let mut m = Message::new();
        m.push_back_pieces([Bytes::new(), Bytes::from_static(b"x"), Bytes::new()]);
        assert_eq!(m, Message::from_iter([&b"x"[..]]));
        assert_eq!(Message::new().frame_pieces().count(), 0);
    }
}
