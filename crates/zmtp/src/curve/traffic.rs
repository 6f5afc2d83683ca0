//! MESSAGE boxes after the handshake: the frame sealer and opener.

use bytes::{BufMut, BytesMut};

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

impl FrameSealer for Sealer {
    fn seal(&mut self, frame: Frame) -> Result<Frame> {
        let short = self.next.to_be_bytes();
        self.next += 1;
        // Laid out once, encrypted in place: name, nonce, MAC, then the
        // flags and the frame (like libzmq, the flags travel in the box).
        let mut body = BytesMut::with_capacity(16 + MAC + 1 + frame.body.len());
        body.extend_from_slice(b"\x07MESSAGE");
        body.extend_from_slice(&short);
        body.put_bytes(0, MAC);
        body.put_u8(u8::from(frame.more) | (u8::from(frame.command) << 1));
        body.extend_from_slice(&frame.body);
        let (mac, text) = body[16..].split_at_mut(MAC);
        mac.copy_from_slice(&self.key.seal(&short, text));
        Ok(Frame {
            more: false,
            command: false,
            body: body.freeze(),
        })
    }
}

struct Opener {
    key: MessageBox,
    last: u64,
}

impl FrameOpener for Opener {
    fn open(&mut self, frame: Frame) -> Result<Frame> {
        let b = &frame.body;
        if b.len() < 8 + 8 + MAC + 1 || &b[..8] != b"\x07MESSAGE" {
            return Err(ZmtpError::protocol("CURVE: expected a MESSAGE"));
        }
        let mut nonces = Nonces {
            ours: 0,
            peers: self.last,
        };
        nonces.check(&b[8..16])?;
        let mut short = [0u8; 8];
        short.copy_from_slice(&b[8..16]);
        // Decrypted in place (no copy when the frame's bytes are ours alone).
        let mut body = BytesMut::from(frame.body);
        let (head, text) = body.split_at_mut(16 + MAC);
        if !self.key.open(&short, text, &head[16..]) {
            return Err(ZmtpError::Crypto(
                "a MESSAGE did not open (altered traffic?)",
            ));
        }
        self.last = nonces.peers;
        let flags = body[16 + MAC];
        let _ = body.split_to(16 + MAC + 1);
        Ok(Frame {
            more: flags & 1 != 0,
            command: flags & 2 != 0,
            body: body.freeze(),
        })
    }
}
