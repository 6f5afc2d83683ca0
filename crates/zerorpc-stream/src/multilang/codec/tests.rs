//! Unit tests of the decoder: JSON and msgpack round trips in pieces, stray
//! lines, every msgpack marker, and the size and depth limits.

use super::*;
use serde_json::json;

fn frames(d: &mut Decoder) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        out.push(f);
    }
    out
}

#[test]
fn json_round_trip_byte_by_byte() {
    let msgs = [
        json!({"command": "emit", "tuple": ["a", 1, 2.5, null, {"k": [true]}]}),
        json!([1, 2, 3]),
        json!({"command": "sync"}),
    ];
    let mut bytes = Vec::new();
    for m in &msgs {
        encode(m, Serializer::Json, &mut bytes);
    }
    let mut d = Decoder::new(Serializer::Json);
    let mut got = Vec::new();
    for b in &bytes {
        d.feed(&[*b]);
        got.extend(frames(&mut d));
    }
    let want: Vec<Frame> = msgs.iter().cloned().map(Frame::Message).collect();
    assert_eq!(got, want);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn multi_line_json_is_one_message() {
    let mut d = Decoder::new(Serializer::Json);
    d.feed(b"{\n  \"command\": \"sync\"\n}\nend\n");
    assert_eq!(
        frames(&mut d),
        vec![Frame::Message(json!({"command": "sync"}))]
    );
}

#[test]
fn stray_lines_are_reported_and_decoding_goes_on() {
    let mut d = Decoder::new(Serializer::Json);
    d.feed(b"hello from print\n{\"command\":\"sync\"}\nend\n");
    d.feed(b"{\"command\":\"ack\",\"id\":\"1\"}\n{oops} not json\nend\n");
    d.feed(b"{ looks like json\n{\"command\":\"sync\"}\nend\n");
    assert_eq!(
        frames(&mut d),
        vec![
            Frame::Stray("hello from print".into()),
            Frame::Message(json!({"command": "sync"})),
            Frame::Message(json!({"command": "ack", "id": "1"})),
            Frame::Stray("{oops} not json".into()),
            Frame::Stray("{ looks like json".into()),
            Frame::Message(json!({"command": "sync"})),
        ]
    );
}

#[test]
fn msgpack_round_trip_in_pieces_with_stray_text() {
    let msgs = [
        json!({"command": "emit", "tuple": ["word", -3, 1.5, u64::MAX], "anchors": ["7"]}),
        json!([4, 5]),
    ];
    let mut bytes = b"debug print\n".to_vec();
    for m in &msgs {
        encode(m, Serializer::Msgpack, &mut bytes);
    }
    let mut d = Decoder::new(Serializer::Msgpack);
    let mut got = Vec::new();
    for chunk in bytes.chunks(3) {
        d.feed(chunk);
        got.extend(frames(&mut d));
    }
    assert_eq!(got[0], Frame::Stray("debug print".into()));
    assert_eq!(
        got[1..],
        [
            Frame::Message(msgs[0].clone()),
            Frame::Message(msgs[1].clone())
        ]
    );
}

/// Every msgpack marker family (fix and sized strings, bins, exts,
/// arrays and maps of 16-bit length, floats, ints of every width), fed
/// one byte at a time: the resumable walk finds each message's end
/// exactly where the one-shot decode does.
#[test]
fn msgpack_of_every_marker_byte_by_byte() {
    use rmpv::Value as M;
    let long_list: Vec<M> = (0..40).map(|i| M::from(i * 1000)).collect();
    let long_map: Vec<(M, M)> = (0..20)
        .map(|i| (M::from(format!("k{i}")), M::from(-i)))
        .collect();
    let msgs = [
        M::Map(vec![
            (M::from("command"), M::from("emit")),
            (
                M::from("tuple"),
                M::Array(vec![
                    M::from("x".repeat(40)),
                    M::from("y".repeat(300)),
                    M::Binary(vec![1; 10]),
                    M::Binary(vec![2; 300]),
                    M::Ext(1, vec![9; 4]),
                    M::Ext(2, vec![9; 7]),
                    M::Ext(3, vec![9; 300]),
                    M::F32(1.5),
                    M::F64(-2.25),
                    M::from(200u8),
                    M::from(60_000u16),
                    M::from(4_000_000_000u32),
                    M::from(u64::MAX),
                    M::from(-100i8),
                    M::from(-30_000i16),
                    M::from(-2_000_000_000i32),
                    M::from(i64::MIN),
                    M::Nil,
                    M::Boolean(true),
                    M::Array(long_list),
                    M::Map(long_map),
                ]),
            ),
        ]),
        M::Array(vec![M::from(4), M::from(5)]),
    ];
    let mut bytes = Vec::new();
    for m in &msgs {
        rmpv::encode::write_value(&mut bytes, m).unwrap();
    }
    let mut whole = Decoder::new(Serializer::Msgpack);
    whole.feed(&bytes);
    let want = frames(&mut whole);
    assert_eq!(want.len(), 2);
    let mut d = Decoder::new(Serializer::Msgpack);
    let mut got = Vec::new();
    for b in &bytes {
        d.feed(&[*b]);
        got.extend(frames(&mut d));
    }
    assert_eq!(got, want);
    assert_eq!(d.buffered(), 0);
}

/// A long JSON line arriving in small reads: decoded once whole (the
/// newline search resumes; the result is the same).
#[test]
fn a_long_json_line_in_small_reads() {
    let msg = json!({"command": "emit", "tuple": ["w".repeat(100_000)]});
    let mut bytes = Vec::new();
    encode(&msg, Serializer::Json, &mut bytes);
    let mut d = Decoder::new(Serializer::Json);
    let mut got = Vec::new();
    for chunk in bytes.chunks(7) {
        d.feed(chunk);
        got.extend(frames(&mut d));
    }
    assert_eq!(got, vec![Frame::Message(msg)]);
}

#[test]
fn msgpack_binary_and_non_string_keys_convert() {
    let v = rmpv::Value::Map(vec![
        (rmpv::Value::from("b"), rmpv::Value::Binary(b"txt".to_vec())),
        (rmpv::Value::from(1), rmpv::Value::Binary(vec![0xff, 0])),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &v).unwrap();
    let mut d = Decoder::new(Serializer::Msgpack);
    d.feed(&bytes);
    assert_eq!(
        frames(&mut d),
        vec![Frame::Message(json!({"b": "txt", "1": [255, 0]}))]
    );
}

#[test]
fn oversized_messages_are_errors_not_buffers() {
    let mut d = Decoder::with_limit(Serializer::Json, 1000);
    d.feed(format!("{{\"tuple\": [\"{}", "x".repeat(2000)).as_bytes());
    assert!(d.next_frame().is_err());
    let mut d = Decoder::with_limit(Serializer::Json, 1000);
    for _ in 0..30 {
        d.feed(format!("[\"{}\",\n", "y".repeat(50)).as_bytes());
    }
    assert!(d.next_frame().is_err());
    let mut d = Decoder::with_limit(Serializer::Msgpack, 1000);
    let mut bytes = Vec::new();
    encode(&json!(["z".repeat(5000)]), Serializer::Msgpack, &mut bytes);
    d.feed(&bytes[..2000]);
    assert!(d.next_frame().is_err());
}

#[test]
fn msgpack_nested_past_the_depth_limit_is_an_error() {
    let mut d = Decoder::new(Serializer::Msgpack);
    let mut bytes = vec![0x91; 2000];
    bytes.push(0x01);
    d.feed(&bytes);
    assert!(d.next_frame().is_err());
}
