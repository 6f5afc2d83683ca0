//! Unit tests of the shortcut readers: each reads what serde reads, for
//! chosen, random and decoder-fed messages.

use super::*;
use crate::multilang::codec::{Decoded, Decoder, Serializer};

fn same_json(bytes: &[u8]) -> bool {
    check_shortcut(bytes, Serializer::Json);
    json(bytes).is_some()
}

fn same_msgpack(bytes: &[u8]) -> bool {
    check_shortcut(bytes, Serializer::Msgpack);
    msgpack(bytes).is_some()
}

/// Messages peers send, and near misses.
const JSON: &[&str] = &[
    r#"{"command":"ack","id":"17"}"#,
    r#"{"command": "fail", "id": "-9223372036854775808"}"#,
    r#"{"command":"sync"}"#,
    r#"{"command":"emit","anchors":["1","2"],"tuple":["word",1,-2,true,null,[["x"]]],"need_task_ids":false}"#,
    r#"{"command":"emit","stream":"s","task":3,"tuple":[],"id":12}"#,
    r#"{"command":"emit","tuple":[1.5]}"#,
    r#"{"command":"emit","tuple":[{"a":1}]}"#,
    r#"{"id":"5","comp":"split","stream":"default","task":2,"tuple":["a b c"]}"#,
    r#"{"id":"-1","comp":null,"stream":"__heartbeat","task":-1,"tuple":[]}"#,
    r#"[1,2,3]"#,
    r#"[]"#,
    r#"[1,"2"]"#,
    r#"{}"#,
    r#"{"command":"ack","id":"1","id":"2"}"#,
    r#"{"command":"ack","id":"1",}"#,
    r#"{"command":"ack" "id":"1"}"#,
    r#"{"command":"ack","id":"1"} x"#,
    r#"{"command":"ack","id":"a\"b"}"#,
    r#"{"command":"emit","tuple":["caf\u00e9"]}"#,
    r#"{"command":"emit","tuple":[-0]}"#,
    r#"{"command":"emit","tuple":[01]}"#,
    r#"{"command":"emit","tuple":[123456789012345678901234]}"#,
    r#"{"command":"emit","tuple":[1e3]}"#,
    r#"{"command":"emit","task":"3","tuple":[]}"#,
    r#"{"command":"emit","need_task_ids":1,"tuple":[]}"#,
    r#"{"command":"log","msg":"hi","level":2}"#,
    r#"{"pid":1234}"#,
    r#" { "command" : "ack" , "id" : 7 } "#,
    r#"{"command":5}"#,
    r#"{"command":"nope"}"#,
    r#"{"command":"emit","anchors":[1,"x",null],"tuple":[]}"#,
    r#"{"command":"emit","anchors":null,"stream":null,"task":null,"need_task_ids":null,"tuple":null,"id":null,"command":null}"#,
    r#"{"command":"emit","tuple":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
    "{\"command\":\"emit\",\"tuple\":[\"tab\tinside\"]}",
    "{\"command\":\"emit\",\"tuple\":[\"\u{00e9}t\u{00e9}\"]}",
];

#[test]
fn json_shortcut_reads_what_serde_reads() {
    let mut handled = 0;
    for m in JSON {
        handled += usize::from(same_json(m.as_bytes()));
    }
    // The common messages take the shortcut.
    assert!(handled >= 12, "{handled}");
    for m in [
        r#"{"command":"ack","id":"17"}"#,
        r#"{"command":"emit","anchors":["1"],"tuple":["w"],"need_task_ids":false}"#,
        r#"{"id":"5","comp":"split","stream":"default","task":2,"tuple":["a b c"]}"#,
        r#"[4]"#,
    ] {
        assert!(json(m.as_bytes()).is_some(), "{m}");
    }
    for m in [
        r#"{"command":"ack","id":"1","id":"2"}"#,
        r#"{"command":"emit","tuple":[1.5]}"#,
        r#"{"command":"ack","id":"a\"b"}"#,
        r#"{"command":"emit","tuple":[-0]}"#,
    ] {
        assert!(json(m.as_bytes()).is_none(), "{m}");
    }
}

#[test]
fn msgpack_shortcut_reads_what_serde_reads() {
    let mut handled = 0;
    for m in JSON {
        let Ok(v) = serde_json::from_str::<Value>(m) else {
            continue;
        };
        let bytes = rmp_serde::to_vec_named(&v).unwrap();
        handled += usize::from(same_msgpack(&bytes));
    }
    assert!(handled >= 12, "{handled}");
    // Every marker family, in a tuple, and cut short anywhere.
    let mut tuple = vec![0xdc, 0, 17];
    for v in [
        &[0x05][..],
        &[0xff],
        &[0xc0],
        &[0xc3],
        &[0xca, 0x3f, 0xc0, 0, 0],
        &[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0],
        &[0xcc, 0xff],
        &[0xcd, 1, 0],
        &[0xce, 0, 1, 0, 0],
        &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0xd0, 0x80],
        &[0xd1, 0x80, 0],
        &[0xd2, 0x80, 0, 0, 0],
        &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],
        &[0xd9, 2, b'h', b'i'],
    ] {
        tuple.extend_from_slice(v);
    }
    tuple.extend_from_slice(&[0xda, 0, 1, b'x', 0xdb, 0, 0, 0, 1, b'y']);
    let mut msg = vec![0x82, 0xa7];
    msg.extend_from_slice(b"command");
    msg.extend_from_slice(&[0xa4]);
    msg.extend_from_slice(b"emit");
    msg.push(0xa5);
    msg.extend_from_slice(b"tuple");
    msg.extend_from_slice(&tuple);
    assert!(same_msgpack(&msg));
    for cut in 0..msg.len() {
        assert!(msgpack(&msg[..cut]).is_none(), "cut at {cut}");
    }
    // Binary, extensions and invalid UTF-8 are left to serde.
    for odd in [&[0xc4, 1, b'a'][..], &[0xd4, 1, 2], &[0xa1, 0xff]] {
        let mut m = vec![0x81, 0xa5];
        m.extend_from_slice(b"tuple");
        m.push(0x91);
        m.extend_from_slice(odd);
        assert!(msgpack(&m).is_none());
    }
}

/// Random messages built from the protocol's pieces, both serializers:
/// wherever the shortcut answers, serde answers the same.
#[test]
fn random_messages_agree() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let keys = [
        "command",
        "id",
        "anchors",
        "stream",
        "task",
        "need_task_ids",
        "tuple",
        "comp",
        "msg",
    ];
    let scalars = [
        "\"emit\"",
        "\"ack\"",
        "\"17\"",
        "\"-3\"",
        "\"x\"",
        "5",
        "-5",
        "0",
        "null",
        "true",
        "false",
        "1.5",
        "[]",
        "[\"1\",2]",
        "[\"a\",[1,[true]],null]",
        "{}",
        "9223372036854775807",
        "\"é\"",
    ];
    let mut handled = 0;
    for _ in 0..20_000 {
        let n = next(6);
        let mut text = String::from("{");
        for i in 0..n {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!(
                "\"{}\":{}",
                keys[next(keys.len() as u64) as usize],
                scalars[next(scalars.len() as u64) as usize]
            ));
        }
        text.push('}');
        handled += usize::from(same_json(text.as_bytes()));
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            same_msgpack(&rmp_serde::to_vec_named(&v).unwrap());
        }
    }
    assert!(handled > 1_000, "{handled}");
}

/// Through the decoder, message after message: what serde reads is
/// what comes out, and what it refuses does not come out as a message.
#[test]
fn the_decoder_reads_as_serde_would() {
    let mut d = Decoder::new(Serializer::Json);
    for m in JSON {
        d.feed(m.as_bytes());
        d.feed(b"\nend\n");
        let got = d.next_decoded::<WorkerWire>();
        match serde_json::from_str::<WorkerWire>(m) {
            Ok(want) => assert!(
                matches!(&got, Ok(Some(Decoded::Message(w))) if *w == want),
                "{m}"
            ),
            Err(_) => assert!(!matches!(got, Ok(Some(Decoded::Message(_)))), "{m}"),
        }
        while let Ok(Some(_)) = d.next_decoded::<WorkerWire>() {}
    }
}
