//! The codec for traffic after the handshake: multipart messages, commands
//! handled in-band (PING/PONG, SUBSCRIBE/CANCEL, ERROR), size limits.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::command::{Command, RawCommand};
use crate::error::{Result, ZmtpError};
use crate::frame::{encode_header, Frame, FrameDecoder};
use crate::mechanism::{FrameOpener, FrameSealer};
use crate::message::Message;

/// Limits applied to incoming messages.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message (sum of its frames) in bytes.
    pub max_message_size: u64,
    /// Most frames in one message.
    pub max_frames: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024 * 1024,
            max_frames: 4096,
        }
    }
}

/// What the decoder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A complete multipart message.
    Message(Message),
    /// A PING: answer with [`Command::Pong`] carrying `context`
    /// (see [`Incoming::reply`]).
    Ping {
        /// Time-to-live in tenths of a second.
        ttl: u16,
        /// Context to echo.
        context: Bytes,
    },
    /// A PONG.
    Pong {
        /// The echoed context.
        context: Bytes,
    },
    /// A SUBSCRIBE command (ZMTP 3.1).
    Subscribe(Bytes),
    /// A CANCEL command (ZMTP 3.1).
    Cancel(Bytes),
}

impl Incoming {
    /// The command the protocol requires in answer, if any (PONG to PING).
    pub fn reply(&self) -> Option<Command> {
        match self {
            Incoming::Ping { context, .. } => Some(Command::Pong {
                context: context.clone(),
            }),
            _ => None,
        }
    }
}

/// Bytes a frame sealer may add to a frame (CURVE: command name, nonce, MAC, flags).
const SEAL_OVERHEAD: u64 = 64;

/// Decodes post-handshake traffic.
pub struct Decoder {
    frames: FrameDecoder,
    opener: Option<Box<dyn FrameOpener>>,
    limits: Limits,
    partial: Message,
    partial_size: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("limits", &self.limits)
            .field("encrypted", &self.opener.is_some())
            .finish()
    }
}

impl Decoder {
    /// A decoder with the given limits and optional frame opener.
    pub fn new(limits: Limits, opener: Option<Box<dyn FrameOpener>>) -> Self {
        Decoder {
            frames: FrameDecoder::new(limits.max_message_size),
            opener,
            limits,
            partial: Message::new(),
            partial_size: 0,
        }
    }

    /// Decodes the next item from `input`, consuming its bytes. Returns
    /// `Ok(None)` when more input is needed. An error means the connection
    /// must be closed.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Incoming>> {
        loop {
            // A frame may use what is left of the message's budget (a sealed
            // frame carries a little overhead on top of its plaintext).
            let overhead = if self.opener.is_some() {
                SEAL_OVERHEAD
            } else {
                0
            };
            self.frames.set_max_size(
                self.limits
                    .max_message_size
                    .saturating_sub(self.partial_size)
                    + overhead,
            );
            let frame = match &mut self.opener {
                None => match self.frames.decode(input)? {
                    Some(frame) => frame,
                    None => return Ok(None),
                },
                // (opened where it lies in the read buffer)
                Some(o) => match self.frames.decode_mut(input)? {
                    Some((more, command, body)) => o.open_mut(more, command, body)?,
                    None => return Ok(None),
                },
            };
            if frame.command {
                if !self.partial.is_empty() {
                    return Err(ZmtpError::protocol(
                        "command frame in the middle of a multipart message",
                    ));
                }
                match Command::from_raw(RawCommand::parse(frame.body)?)? {
                    Command::Ping { ttl, context } => {
                        return Ok(Some(Incoming::Ping { ttl, context }))
                    }
                    Command::Pong { context } => return Ok(Some(Incoming::Pong { context })),
                    Command::Subscribe(t) => return Ok(Some(Incoming::Subscribe(t))),
                    Command::Cancel(t) => return Ok(Some(Incoming::Cancel(t))),
                    Command::Error(reason) => return Err(ZmtpError::PeerError(reason)),
                    Command::Ready(_) => {
                        return Err(ZmtpError::protocol("READY after the handshake"))
                    }
                    Command::Unknown(raw) => {
                        tracing::debug!(command = %raw.name_lossy(), "ignoring unknown ZMTP command");
                        continue;
                    }
                }
            }
            self.partial_size += frame.body.len() as u64;
            if self.partial_size > self.limits.max_message_size {
                return Err(ZmtpError::MessageTooLarge {
                    size: self.partial_size,
                    max: self.limits.max_message_size,
                });
            }
            if self.partial.len() >= self.limits.max_frames {
                return Err(ZmtpError::TooManyFrames {
                    max: self.limits.max_frames,
                });
            }
            self.partial.push_back(frame.body);
            if !frame.more {
                self.partial_size = 0;
                return Ok(Some(Incoming::Message(std::mem::take(&mut self.partial))));
            }
        }
    }

    /// Bytes still needed to finish the frame in progress (a read-size hint).
    pub fn bytes_needed(&self, input: &BytesMut) -> usize {
        self.frames.bytes_needed(input)
    }
}

/// Frames at least this large are queued by reference instead of copied.
const ZERO_COPY_MIN: usize = 16 * 1024;

/// Outgoing bytes: small pieces copied into one buffer, large frame bodies
/// kept by reference, written with vectored I/O.
#[derive(Debug, Default)]
pub struct WriteBuffer {
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
    len: usize,
}

impl WriteBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        WriteBuffer::default()
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a frame header (flags and the body's length).
    fn put_header(&mut self, more: bool, command: bool, len: usize) {
        let before = self.tail.len();
        encode_header(more, command, len, &mut self.tail);
        self.len += self.tail.len() - before;
    }

    /// Appends a frame as it is (header and body).
    pub(crate) fn put_frame(&mut self, frame: Frame) {
        self.put_header(frame.more, frame.command, frame.body.len());
        self.put_bytes(&frame.body);
    }

    /// Appends a frame whose body is `parts` one after the other, laid
    /// out in this buffer's memory, then changed there by `transform`
    /// (given the whole body): a sealer encrypts a frame this way without
    /// a copy of its own. (A large body gets memory of its own, freed once
    /// written, as a large frame put by reference is: the buffer's own
    /// memory stays as large as its small frames need.)
    pub fn put_frame_in_place(
        &mut self,
        more: bool,
        command: bool,
        parts: &[&[u8]],
        transform: impl FnOnce(&mut [u8]),
    ) {
        let len = parts.iter().map(|p| p.len()).sum();
        self.put_header(more, command, len);
        let lay_out = |into: &mut BytesMut| {
            let start = into.len();
            into.reserve(len);
            for p in parts {
                into.extend_from_slice(p);
            }
            transform(&mut into[start..]);
        };
        if len >= ZERO_COPY_MIN {
            let mut body = BytesMut::new();
            lay_out(&mut body);
            self.put_bytes(&body.freeze());
        } else {
            lay_out(&mut self.tail);
            self.len += len;
        }
    }

    fn put_bytes(&mut self, b: &Bytes) {
        self.len += b.len();
        if b.len() >= ZERO_COPY_MIN {
            if !self.tail.is_empty() {
                let t = self.tail.split().freeze();
                self.chunks.push_back(t);
            }
            self.chunks.push_back(b.clone());
        } else {
            self.tail.extend_from_slice(b);
        }
    }

    /// Appends raw bytes (for example a greeting).
    pub fn put_slice(&mut self, b: &[u8]) {
        self.len += b.len();
        self.tail.extend_from_slice(b);
    }

    /// Fills `dst` with slices to write; returns how many were filled.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for c in &self.chunks {
            if n == dst.len() {
                return n;
            }
            dst[n] = IoSlice::new(c);
            n += 1;
        }
        if n < dst.len() && !self.tail.is_empty() {
            dst[n] = IoSlice::new(&self.tail);
            n += 1;
        }
        n
    }

    /// Drops `n` written bytes from the front.
    pub fn advance(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            match self.chunks.front_mut() {
                Some(c) if c.len() <= n => {
                    n -= c.len();
                    self.chunks.pop_front();
                }
                Some(c) => {
                    c.advance(n);
                    return;
                }
                None => {
                    let k = n.min(self.tail.len());
                    self.tail.advance(k);
                    return;
                }
            }
        }
    }

    /// Everything queued, concatenated (for tests and diagnostics).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for c in &self.chunks {
            v.extend_from_slice(c);
        }
        v.extend_from_slice(&self.tail);
        v
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.tail.clear();
        self.len = 0;
    }
}

/// Encodes post-handshake traffic.
pub struct Encoder {
    sealer: Option<Box<dyn FrameSealer>>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("encrypted", &self.sealer.is_some())
            .finish()
    }
}

impl Encoder {
    /// An encoder with an optional frame sealer.
    pub fn new(sealer: Option<Box<dyn FrameSealer>>) -> Self {
        Encoder { sealer }
    }

    fn put_frame(&mut self, frame: Frame, out: &mut WriteBuffer) -> Result<()> {
        match &mut self.sealer {
            Some(s) => s.seal_into(frame, out)?,
            None => out.put_frame(frame),
        }
        Ok(())
    }

    /// Appends a multipart message. An empty message is sent as one empty
    /// frame.
    pub fn encode_message(&mut self, msg: &Message, out: &mut WriteBuffer) -> Result<()> {
        let (whole, pieces) = msg.split_pieces();
        let n = whole.len() + usize::from(!pieces.is_empty());
        if n == 0 {
            return self.put_frame(Frame::data(Bytes::new(), false), out);
        }
        for (i, f) in whole.iter().enumerate() {
            self.put_frame(Frame::data(f.clone(), i + 1 < n), out)?;
        }
        if pieces.is_empty() {
            return Ok(());
        }
        if self.sealer.is_some() {
            // a sealer needs the frame whole (it copies it anyway)
            return self.put_frame(Frame::data(crate::message::join(pieces), false), out);
        }
        // one frame, each piece written as it is (a large one by reference)
        out.put_header(false, false, pieces.iter().map(Bytes::len).sum());
        for p in pieces {
            out.put_bytes(p);
        }
        Ok(())
    }

    /// Appends a command.
    pub fn encode_command(&mut self, cmd: &Command, out: &mut WriteBuffer) -> Result<()> {
        let mut body = BytesMut::new();
        let raw = cmd.to_raw();
        body.extend_from_slice(&[raw.name.len() as u8]);
        body.extend_from_slice(&raw.name);
        body.extend_from_slice(&raw.data);
        self.put_frame(
            Frame {
                more: false,
                command: true,
                body: body.freeze(),
            },
            out,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_laid_out_in_place_keep_the_buffer_small() {
        let mut buf = WriteBuffer::new();
        let big = vec![3u8; 1 << 20];
        for (body, more) in [(&b"ab"[..], true), (&big[..], false)] {
            buf.put_frame_in_place(more, false, &[b"x", body], |b| {
                b.iter_mut().for_each(|x| *x ^= 0xff)
            });
        }
        let mut want = Vec::new();
        crate::frame::encode_header(true, false, 3, &mut want);
        want.extend_from_slice(&[!b'x', !b'a', !b'b']);
        crate::frame::encode_header(false, false, big.len() + 1, &mut want);
        want.push(!b'x');
        want.extend(big.iter().map(|x| !x));
        assert_eq!(buf.len(), want.len());
        assert_eq!(buf.to_vec(), want);
        // The megabyte frame is not in the buffer's own memory, which
        // would keep it once written.
        assert!(buf.tail.capacity() < 1 << 16, "{}", buf.tail.capacity());
        buf.advance(want.len());
        assert!(buf.is_empty());
    }

    fn encode(msgs: &[Message]) -> BytesMut {
        let mut enc = Encoder::new(None);
        let mut out = WriteBuffer::new();
        for m in msgs {
            enc.encode_message(m, &mut out).unwrap();
        }
        BytesMut::from(&out.to_vec()[..])
    }

    #[test]
    fn multipart_round_trip_with_big_frames() {
        let big = Bytes::from(vec![9u8; 100_000]);
        let msgs = vec![
            Message::from_iter([&b"id"[..], b"", b"payload"]),
            Message::from(big.clone()),
            Message::from_iter([Bytes::new(), big, Bytes::from_static(b"x")]),
        ];
        let mut input = encode(&msgs);
        let mut dec = Decoder::new(Limits::default(), None);
        for m in &msgs {
            assert_eq!(
                dec.decode(&mut input).unwrap(),
                Some(Incoming::Message(m.clone()))
            );
        }
        assert_eq!(dec.decode(&mut input).unwrap(), None);
    }

    #[test]
    fn ping_gets_pong_and_commands_decode() {
        let mut enc = Encoder::new(None);
        let mut out = WriteBuffer::new();
        let ping = Command::Ping {
            ttl: 10,
            context: Bytes::from_static(b"abc"),
        };
        enc.encode_command(&ping, &mut out).unwrap();
        enc.encode_command(&Command::Subscribe(Bytes::from_static(b"t")), &mut out)
            .unwrap();
        enc.encode_command(&Command::Cancel(Bytes::from_static(b"t")), &mut out)
            .unwrap();
        enc.encode_command(
            &Command::Unknown(RawCommand::new("FOO", Bytes::new())),
            &mut out,
        )
        .unwrap();
        enc.encode_command(&Command::Error("bye".into()), &mut out)
            .unwrap();
        let mut input = BytesMut::from(&out.to_vec()[..]);
        let mut dec = Decoder::new(Limits::default(), None);
        let got = dec.decode(&mut input).unwrap().unwrap();
        assert_eq!(
            got.reply(),
            Some(Command::Pong {
                context: Bytes::from_static(b"abc")
            })
        );
        assert_eq!(
            dec.decode(&mut input).unwrap(),
            Some(Incoming::Subscribe(Bytes::from_static(b"t")))
        );
        assert_eq!(
            dec.decode(&mut input).unwrap(),
            Some(Incoming::Cancel(Bytes::from_static(b"t")))
        );
        // unknown command skipped, then ERROR closes
        match dec.decode(&mut input) {
            Err(ZmtpError::PeerError(r)) => assert_eq!(r, "bye"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_enforced() {
        let limits = Limits {
            max_message_size: 10,
            max_frames: 3,
        };
        let mut input = encode(&[Message::from_iter([&b"123456"[..], b"123456"])]);
        assert!(matches!(
            Decoder::new(limits, None).decode(&mut input),
            Err(ZmtpError::MessageTooLarge { .. })
        ));
        let mut input = encode(&[Message::from_iter([&b""[..], b"", b"", b""])]);
        assert!(matches!(
            Decoder::new(limits, None).decode(&mut input),
            Err(ZmtpError::TooManyFrames { max: 3 })
        ));
    }

    #[test]
    fn wrong_state_commands() {
        let mut out = WriteBuffer::new();
        let mut enc = Encoder::new(None);
        enc.encode_command(&Command::Ready(Default::default()), &mut out)
            .unwrap();
        let mut input = BytesMut::from(&out.to_vec()[..]);
        assert!(Decoder::new(Limits::default(), None)
            .decode(&mut input)
            .is_err());
        // a command between two frames of one message
        let mut raw = BytesMut::new();
        Frame::data(&b"a"[..], true).encode(&mut raw);
        Command::Ping {
            ttl: 0,
            context: Bytes::new(),
        }
        .encode(&mut raw);
        assert!(Decoder::new(Limits::default(), None)
            .decode(&mut raw)
            .is_err());
    }

    #[test]
    fn a_frame_of_pieces_is_one_frame_on_the_wire_its_big_piece_not_copied() {
        let big = Bytes::from(vec![9u8; 3 * ZERO_COPY_MIN]);
        let mut pieced = Message::from_iter([&b"id"[..], b""]);
        pieced.push_back_pieces([
            Bytes::from_static(b"<"),
            big.clone(),
            Bytes::from_static(b">"),
        ]);
        let mut joined = Message::from_iter([&b"id"[..], b""]);
        joined.push_back(crate::message::join(&pieced.frames()[2..]));
        // the same bytes as the frame sent whole, and one message back
        let mut wire = encode(std::slice::from_ref(&pieced));
        assert_eq!(wire, encode(std::slice::from_ref(&joined)));
        let got = Decoder::new(Limits::default(), None)
            .decode(&mut wire)
            .unwrap();
        assert_eq!(got, Some(Incoming::Message(joined)));
        // the big piece is queued by reference
        let mut out = WriteBuffer::new();
        Encoder::new(None)
            .encode_message(&pieced, &mut out)
            .unwrap();
        let mut slices = [IoSlice::new(&[]); 8];
        let n = out.io_slices(&mut slices);
        assert!(slices[..n].iter().any(|s| s.as_ptr() == big.as_ptr()));
    }

    #[test]
    fn write_buffer_advance_across_chunks() {
        let mut wb = WriteBuffer::new();
        wb.put_slice(b"abc");
        wb.put_bytes(&Bytes::from(vec![1u8; ZERO_COPY_MIN]));
        wb.put_slice(b"xyz");
        let all = wb.to_vec();
        assert_eq!(wb.len(), all.len());
        let mut seen = Vec::new();
        while !wb.is_empty() {
            let mut slices = [IoSlice::new(&[]); 4];
            let n = wb.io_slices(&mut slices);
            // pretend the OS took 5000 bytes
            let mut take = 5000;
            for s in &slices[..n] {
                let k = take.min(s.len());
                seen.extend_from_slice(&s[..k]);
                take -= k;
                if take == 0 {
                    break;
                }
            }
            let written = 5000.min(wb.len());
            wb.advance(written);
        }
        assert_eq!(seen, all);
    }
}
