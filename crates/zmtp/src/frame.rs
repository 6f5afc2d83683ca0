//! ZMTP 3.x frames: a flags byte, a 1- or 8-byte size, the body.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Result, ZmtpError};

/// More frames of this message follow.
pub const FLAG_MORE: u8 = 0x01;
/// The size field is 8 bytes (big-endian) instead of 1.
pub const FLAG_LONG: u8 = 0x02;
/// The frame is a command, not message data.
pub const FLAG_COMMAND: u8 = 0x04;

/// One frame as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// More frames of the same message follow.
    pub more: bool,
    /// This is a command frame.
    pub command: bool,
    /// The payload.
    pub body: Bytes,
}

impl Frame {
    /// A message (data) frame.
    pub fn data(body: impl Into<Bytes>, more: bool) -> Self {
        Frame {
            more,
            command: false,
            body: body.into(),
        }
    }

    /// Encodes the whole frame.
    pub fn encode(&self, out: &mut BytesMut) {
        encode_header(self.more, self.command, self.body.len(), out);
        out.extend_from_slice(&self.body);
    }
}

/// Writes a frame header for a body of `len` bytes.
#[inline]
pub fn encode_header(more: bool, command: bool, len: usize, out: &mut impl BufMut) {
    let mut flags = 0;
    if more {
        flags |= FLAG_MORE;
    }
    if command {
        flags |= FLAG_COMMAND;
    }
    if len > 255 {
        out.put_u8(flags | FLAG_LONG);
        out.put_u64(len as u64);
    } else {
        out.put_u8(flags);
        out.put_u8(len as u8);
    }
}

/// Incremental frame decoder with a size limit.
///
/// The limit is checked against the announced size before any of the body
/// is buffered, so an absurd size costs nothing.
#[derive(Debug)]
pub struct FrameDecoder {
    max_size: u64,
    pending: Option<(u8, usize)>,
}

impl FrameDecoder {
    /// A decoder refusing frames larger than `max_size` bytes.
    pub fn new(max_size: u64) -> Self {
        FrameDecoder {
            max_size,
            pending: None,
        }
    }

    /// Changes the size limit (applies to frames whose header is not decoded yet).
    pub fn set_max_size(&mut self, max_size: u64) {
        self.max_size = max_size;
    }

    /// Decodes the next complete frame from `input`, consuming its bytes.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Frame>> {
        Ok(self.decode_mut(input)?.map(|(more, command, body)| Frame {
            more,
            command,
            body: body.freeze(),
        }))
    }

    /// As [`FrameDecoder::decode`], with the body as a `BytesMut` (its
    /// flags MORE and COMMAND first): still in `input`'s memory and
    /// writable, for a frame to be decrypted where it is.
    pub fn decode_mut(&mut self, input: &mut BytesMut) -> Result<Option<(bool, bool, BytesMut)>> {
        let (flags, size) = match self.pending {
            Some(p) => p,
            None => {
                let Some(&flags) = input.first() else {
                    return Ok(None);
                };
                let header_len = if flags & FLAG_LONG != 0 { 9 } else { 2 };
                if input.len() < header_len {
                    return Ok(None);
                }
                let size = if flags & FLAG_LONG != 0 {
                    u64::from_be_bytes(input[1..9].try_into().unwrap_or([0xFF; 8]))
                } else {
                    u64::from(input[1])
                };
                if flags & FLAG_COMMAND != 0 && flags & FLAG_MORE != 0 {
                    return Err(ZmtpError::protocol("command frame with the MORE flag"));
                }
                if size > self.max_size {
                    return Err(ZmtpError::MessageTooLarge {
                        size,
                        max: self.max_size,
                    });
                }
                let size = usize::try_from(size).map_err(|_| ZmtpError::MessageTooLarge {
                    size,
                    max: self.max_size,
                })?;
                input.advance(header_len);
                self.pending = Some((flags, size));
                (flags, size)
            }
        };
        if input.len() < size {
            return Ok(None);
        }
        self.pending = None;
        // (an empty frame, a delimiter most often, refers to nothing: a
        // slice of the read buffer would keep all of it alive as long as
        // the frame is kept, a server's open call for one)
        let body = if size == 0 {
            BytesMut::new()
        } else {
            input.split_to(size)
        };
        Ok(Some((
            flags & FLAG_MORE != 0,
            flags & FLAG_COMMAND != 0,
            body,
        )))
    }

    /// How many more bytes the frame being decoded needs, beyond those
    /// already in `input` (a hint for sizing reads; 0 if unknown).
    pub fn bytes_needed(&self, input: &BytesMut) -> usize {
        match self.pending {
            Some((_, size)) => size.saturating_sub(input.len()),
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_frames() {
        let mut out = BytesMut::new();
        Frame::data(vec![7u8; 255], true).encode(&mut out);
        assert_eq!(&out[..2], &[FLAG_MORE, 255]);
        out.clear();
        Frame::data(vec![7u8; 256], false).encode(&mut out);
        assert_eq!(out[0], FLAG_LONG);
        assert_eq!(&out[1..9], &256u64.to_be_bytes());
        let mut dec = FrameDecoder::new(1 << 20);
        let f = dec.decode(&mut out).unwrap().unwrap();
        assert_eq!(f.body.len(), 256);
        assert!(!f.more && !f.command);
        assert!(out.is_empty());
    }

    #[test]
    fn an_empty_frame_keeps_no_hold_on_the_read_buffer() {
        let mut input = BytesMut::with_capacity(256);
        Frame::data(Bytes::new(), true).encode(&mut input);
        Frame::data(&b"payload"[..], false).encode(&mut input);
        let mut dec = FrameDecoder::new(100);
        let delimiter = dec.decode(&mut input).unwrap().unwrap();
        assert!(delimiter.body.is_empty() && delimiter.more);
        let payload = dec.decode(&mut input).unwrap().unwrap();
        drop(payload);
        // Only the delimiter is kept (a server's open call keeps its
        // client's delimiter): the buffer is still this reader's alone,
        // so it is reused rather than reallocated.
        assert!(input.try_reclaim(256), "the empty frame holds the buffer");
        drop(delimiter);
    }

    #[test]
    fn partial_input_waits() {
        let mut whole = BytesMut::new();
        Frame::data(&b"hello world"[..], false).encode(&mut whole);
        let mut dec = FrameDecoder::new(100);
        let mut input = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            input.extend_from_slice(&[*b]);
            let r = dec.decode(&mut input).unwrap();
            if i + 1 < whole.len() {
                assert!(r.is_none());
            } else {
                assert_eq!(&r.unwrap().body[..], b"hello world");
            }
        }
    }

    #[test]
    fn oversized_frame_refused_from_header_alone() {
        let mut input = BytesMut::new();
        input.extend_from_slice(&[FLAG_LONG]);
        input.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut dec = FrameDecoder::new(1024);
        assert!(matches!(
            dec.decode(&mut input),
            Err(ZmtpError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn command_with_more_is_an_error() {
        let mut input = BytesMut::from(&[FLAG_COMMAND | FLAG_MORE, 0][..]);
        assert!(FrameDecoder::new(10).decode(&mut input).is_err());
    }

    #[test]
    fn long_encoding_of_small_frame_accepted() {
        let mut input = BytesMut::new();
        input.extend_from_slice(&[FLAG_LONG]);
        input.extend_from_slice(&3u64.to_be_bytes());
        input.extend_from_slice(b"abc");
        let f = FrameDecoder::new(10).decode(&mut input).unwrap().unwrap();
        assert_eq!(&f.body[..], b"abc");
    }
}
