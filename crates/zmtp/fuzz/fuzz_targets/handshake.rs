//! Feeds arbitrary bytes, in arbitrary chunks, to a ROUTER's handshake,
//! then the rest to the session decoder. The first byte picks the chunk size
//! and whether a valid greeting is prepended (to reach the command states).
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use zmtp::{Greeting, Handshake, Limits, NullMechanism, SocketType};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let chunk = usize::from(ctl & 0x7F).max(1);
    let mut wire = Vec::new();
    if ctl & 0x80 != 0 {
        wire.extend_from_slice(&Greeting::new("NULL", false).encode());
    }
    wire.extend_from_slice(rest);
    let mut hs = Handshake::new(SocketType::Router, Bytes::new(), Box::new(NullMechanism::new()));
    let mut input = BytesMut::new();
    let mut pieces = wire.chunks(chunk);
    for piece in pieces.by_ref() {
        input.extend_from_slice(piece);
        let _ = hs.take_output();
        match hs.receive(&mut input) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => return,
        }
    }
    if !hs.is_done() {
        return;
    }
    let Ok(mut session) = hs.finish(Limits { max_message_size: 1 << 20, max_frames: 64 }) else {
        return;
    };
    for piece in std::iter::once(&[][..]).chain(pieces) {
        input.extend_from_slice(piece);
        loop {
            match session.decoder.decode(&mut input) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
