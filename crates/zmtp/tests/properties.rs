//! Property tests of the sans-IO codec: encode/decode is the identity for
//! any frame sequence in any chunking, and arbitrary bytes never panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use zmtp::{
    Command, Decoder, Encoder, Frame, FrameDecoder, GreetingDecoder, Handshake, Incoming, Limits,
    Message, NullMechanism, SocketType, WriteBuffer,
};

fn frame_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..300),
        1 => proptest::collection::vec(any::<u8>(), 250..70_000),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    proptest::collection::vec(frame_body(), 1..5)
        .prop_map(|frames| frames.into_iter().map(Bytes::from).collect())
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..=16)).prop_map(|(ttl, c)| {
            Command::Ping {
                ttl,
                context: c.into(),
            }
        }),
        proptest::collection::vec(any::<u8>(), 0..=16)
            .prop_map(|c| Command::Pong { context: c.into() }),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|t| Command::Subscribe(t.into())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|t| Command::Cancel(t.into())),
    ]
}

#[derive(Debug, Clone)]
enum Item {
    Msg(Message),
    Cmd(Command),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![3 => message().prop_map(Item::Msg), 1 => command().prop_map(Item::Cmd)]
}

fn expected(item: &Item) -> Incoming {
    match item {
        Item::Msg(m) => Incoming::Message(m.clone()),
        Item::Cmd(Command::Ping { ttl, context }) => Incoming::Ping {
            ttl: *ttl,
            context: context.clone(),
        },
        Item::Cmd(Command::Pong { context }) => Incoming::Pong {
            context: context.clone(),
        },
        Item::Cmd(Command::Subscribe(t)) => Incoming::Subscribe(t.clone()),
        Item::Cmd(Command::Cancel(t)) => Incoming::Cancel(t.clone()),
        Item::Cmd(other) => panic!("not generated: {other:?}"),
    }
}

/// Splits `bytes` at the given cut points.
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts {
        out.push(bytes[last..c].to_vec());
        last = c;
    }
    out.push(bytes[last..].to_vec());
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(items in proptest::collection::vec(item(), 0..12),
                                      cuts in proptest::collection::vec(any::<usize>(), 0..20)) {
        let mut enc = Encoder::new(None);
        let mut wb = WriteBuffer::new();
        for it in &items {
            match it {
                Item::Msg(m) => enc.encode_message(m, &mut wb).unwrap(),
                Item::Cmd(c) => enc.encode_command(c, &mut wb).unwrap(),
            }
        }
        let wire = wb.to_vec();
        let mut dec = Decoder::new(Limits::default(), None);
        let mut input = BytesMut::new();
        let mut got = Vec::new();
        for piece in chunks(&wire, &cuts) {
            input.extend_from_slice(&piece);
            while let Some(x) = dec.decode(&mut input).unwrap() {
                got.push(x);
            }
        }
        prop_assert!(input.is_empty());
        let want: Vec<Incoming> = items.iter().map(expected).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn single_frames_round_trip(body in frame_body(), more: bool, command: bool) {
        let f = Frame { more: more && !command, command, body: Bytes::from(body) };
        let mut b = BytesMut::new();
        f.encode(&mut b);
        let back = FrameDecoder::new(u64::MAX).decode(&mut b).unwrap().unwrap();
        prop_assert_eq!(back, f);
        prop_assert!(b.is_empty());
    }

    #[test]
    fn decoder_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..4096),
                                       cuts in proptest::collection::vec(any::<usize>(), 0..20)) {
        let limits = Limits { max_message_size: 1 << 16, max_frames: 32 };
        let mut dec = Decoder::new(limits, None);
        let mut input = BytesMut::new();
        'outer: for piece in chunks(&bytes, &cuts) {
            input.extend_from_slice(&piece);
            loop {
                match dec.decode(&mut input) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
    }

    #[test]
    fn handshake_never_panics_on_garbage(prefix_valid_greeting: bool,
                                         bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                         cuts in proptest::collection::vec(any::<usize>(), 0..20)) {
        let mut hs = Handshake::new(SocketType::Router, Bytes::new(), Box::new(NullMechanism::new()));
        let mut wire = Vec::new();
        if prefix_valid_greeting {
            wire.extend_from_slice(&zmtp::Greeting::new("NULL", false).encode());
        }
        wire.extend_from_slice(&bytes);
        let mut input = BytesMut::new();
        for piece in chunks(&wire, &cuts) {
            input.extend_from_slice(&piece);
            match hs.receive(&mut input) {
                Ok(true) => {
                    let _ = hs.finish(Limits::default());
                    break;
                }
                Ok(false) => {}
                Err(_) => break,
            }
            let _ = hs.take_output();
        }
    }

    #[test]
    fn greeting_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128),
                                     cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
        let mut dec = GreetingDecoder::new();
        for piece in chunks(&bytes, &cuts) {
            let mut b = BytesMut::from(&piece[..]);
            match dec.decode(&mut b) {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => prop_assert!(b.is_empty()),
            }
        }
    }
}
