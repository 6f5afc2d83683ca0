//! Feeds arbitrary bytes, in arbitrary chunks, to the post-handshake
//! decoder. The first byte picks the chunk size.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zmtp::{Decoder, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut dec = Decoder::new(Limits { max_message_size: 1 << 20, max_frames: 64 }, None);
    let mut input = BytesMut::new();
    for piece in rest.chunks(chunk) {
        input.extend_from_slice(piece);
        loop {
            match dec.decode(&mut input) {
                Ok(Some(item)) => {
                    let _ = item.reply();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
