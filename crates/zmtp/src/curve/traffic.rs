//! MESSAGE boxes after the handshake: the frame sealer and opener.

use bytes::{Buf, BytesMut};

use crate::codec::WriteBuffer;
use crate::error::{Result, ZmtpError};
use crate::frame::Frame;
use crate::mechanism::{FrameOpener, FrameSealer};

use super::nacl::{CurveBox, MessageBox};
use super::{Nonces, MAC};

/// The MESSAGE sealer and opener of one connection, each with its
/// direction's box.
pub(super) fn transform(
    session: CurveBox,
    nonces: Nonces,
    client: bool,
) -> (Box<dyn FrameSealer>, Box<dyn FrameOpener>) {
    let (ours, theirs): (&'static [u8; 16], &'static [u8; 16]) = if client {
        (b"CurveZMQMESSAGEC", b"CurveZMQMESSAGES")
    } else {
        (b"CurveZMQMESSAGES", b"CurveZMQMESSAGEC")
    };
    (
        Box::new(Sealer {
            key: session.messages(ours),
            next: nonces.ours,
        }),
        Box::new(Opener {
            key: session.messages(theirs),
            last: nonces.peers,
        }),
    )
}

struct Sealer {
    key: MessageBox,
    next: u64,
}

/// A MESSAGE's layout: name, nonce, MAC, then the box (the flags and
/// the frame; like libzmq, the flags travel in the box).
const NAME: &[u8; 8] = b"\x07MESSAGE";
const HEAD: usize = NAME.len() + 8 + MAC;

/// A MESSAGE's parts before sealing: its MAC zero, its box in clear.
fn parts<'a>(short: &'a [u8; 8], flags: &'a [u8; 1], body: &'a [u8]) -> [&'a [u8]; 5] {
    [NAME, short, &[0; MAC], flags, body]
}

impl Sealer {
    /// The next nonce, and the flags byte of `frame`.
    fn start(&mut self, frame: &Frame) -> ([u8; 8], [u8; 1]) {
        let short = self.next.to_be_bytes();
        self.next += 1;
        (
            short,
            [u8::from(frame.more) | (u8::from(frame.command) << 1)],
        )
    }

    /// Seals a MESSAGE laid out in `body` (its MAC zero): encrypts the box
    /// in place and writes the MAC.
    fn seal_laid_out(&mut self, short: &[u8; 8], body: &mut [u8]) {
        let (head, text) = body.split_at_mut(HEAD);
        let tag = self.key.seal(short, text);
        head[NAME.len() + 8..].copy_from_slice(&tag);
    }
}

impl FrameSealer for Sealer {
    fn seal(&mut self, frame: Frame) -> Result<Frame> {
        let (short, flags) = self.start(&frame);
        let mut body = BytesMut::with_capacity(HEAD + 1 + frame.body.len());
        for part in parts(&short, &flags, &frame.body) {
            body.extend_from_slice(part);
        }
        self.seal_laid_out(&short, &mut body);
        Ok(Frame {
            more: false,
            command: false,
            body: body.freeze(),
        })
    }

    /// Laid out and encrypted in the write buffer itself.
    fn seal_into(&mut self, frame: Frame, out: &mut WriteBuffer) -> Result<()> {
        let (short, flags) = self.start(&frame);
        let parts = parts(&short, &flags, &frame.body);
        out.put_frame_in_place(false, false, &parts, |body| {
            self.seal_laid_out(&short, body)
        });
        Ok(())
    }
}

struct Opener {
    key: MessageBox,
    last: u64,
}

impl FrameOpener for Opener {
    fn open(&mut self, frame: Frame) -> Result<Frame> {
        // (a copy only when the frame's bytes are shared)
        self.open_mut(frame.more, frame.command, BytesMut::from(frame.body))
    }

    /// Decrypted where it lies (in the read buffer).
    fn open_mut(&mut self, _more: bool, _command: bool, mut body: BytesMut) -> Result<Frame> {
        if body.len() < HEAD + 1 || &body[..NAME.len()] != NAME {
            return Err(ZmtpError::protocol("CURVE: expected a MESSAGE"));
        }
        let mut nonces = Nonces {
            ours: 0,
            peers: self.last,
        };
        nonces.check(&body[NAME.len()..NAME.len() + 8])?;
        let mut short = [0u8; 8];
        short.copy_from_slice(&body[NAME.len()..NAME.len() + 8]);
        let (head, text) = body.split_at_mut(HEAD);
        if !self.key.open(&short, text, &head[NAME.len() + 8..]) {
            return Err(ZmtpError::Crypto(
                "a MESSAGE did not open (altered traffic?)",
            ));
        }
        self.last = nonces.peers;
        let flags = body[HEAD];
        body.advance(HEAD + 1);
        Ok(Frame {
            more: flags & 1 != 0,
            command: flags & 2 != 0,
            body: body.freeze(),
        })
    }
}
