//! Writes the seed inputs of every fuzz target under `fuzz/seeds/TARGET/`,
//! made with the real encoders: `cargo run -p zerorpc-fuzz --example seeds`.
//! The seeds are committed; run this again after a format changes.

use std::path::PathBuf;

use bytes::BytesMut;
use rmpv::Value;
use zerorpc::{Event, EventKind, MessageId};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    std::fs::create_dir_all(&dir).expect("seed dir");
    std::fs::write(dir.join(name), bytes).expect("seed");
}

fn main() {
    // ZMTP: frames after the handshake (chunk byte first), and a greeting.
    let mut frames = BytesMut::new();
    for (body, more) in [(&b"id"[..], true), (b"", true), (b"hello", false)] {
        zmtp::Frame::data(body.to_vec(), more).encode(&mut frames);
    }
    let mut seed = vec![7u8];
    seed.extend_from_slice(&frames);
    write("zmtp_decoder", "message", &seed);
    let mut hs = vec![0x80 | 9];
    hs.extend_from_slice(&frames);
    write("zmtp_handshake", "after-greeting", &hs);
    let mut raw = vec![5u8];
    raw.extend_from_slice(&zmtp::Greeting::new("NULL", false).encode());
    write("zmtp_handshake", "greeting", &raw);

    // Events: a request with a deadline, a reply, a stream item, an error.
    let mut req = Event::new("add", Value::Array(vec![2.into(), 40.into()]));
    req.header.deadline_ms = Some(1500);
    write("event", "request", &req.encode());
    let id = MessageId::random();
    for (name, kind, args) in [
        ("ok", EventKind::Ok, Value::Array(vec![42.into()])),
        ("stream", EventKind::Stream, Value::from("item")),
        ("more", EventKind::More, Value::Array(vec![100.into()])),
        (
            "err",
            EventKind::Err,
            Value::Array(vec!["ValueError".into(), "no".into(), "tb".into()]),
        ),
    ] {
        write("event", name, &Event::on_channel(&id, kind, args).encode());
    }

    // Channel and hub: op streams (see the targets), and a request.
    write(
        "channel",
        "ops",
        &[0, 2, 1, 20, 4, 0, 6, 3, 8, 10, 2, 4, 1, 200, 10, 0],
    );
    let mut hub = vec![2u8, 0, 1];
    let ev = req.encode();
    hub.push(ev.len().min(255) as u8);
    hub.extend_from_slice(&ev[..ev.len().min(255)]);
    hub.extend_from_slice(&[7, 0, 6, 0, 5, 0, 7, 0]);
    write("hub", "request", &hub);

    // Multi-lang: a handshake and a bolt's emit, both serializers.
    use zerorpc_stream::multilang::{encode, Serializer};
    let handshake = serde_json::json!({
        "conf": {"topology.name": "t"},
        "pidDir": "/tmp",
        "context": {"taskid": 3, "componentid": "b"},
    });
    let emit = serde_json::json!({"command": "emit", "anchors": ["1"], "tuple": ["word", 1]});
    for (target, ser) in [
        ("multilang_json", Serializer::Json),
        ("multilang_msgpack", Serializer::Msgpack),
    ] {
        let mut out = vec![13u8];
        encode(&handshake, ser, &mut out);
        encode(&emit, ser, &mut out);
        write(target, "handshake-emit", &out);
    }
    write(
        "multilang_json",
        "stray",
        b"\x40hello from print()\n{\"command\": \"sync\"}\nend\n",
    );

    // Flux, gateway bodies, YAML configurations, a fedmsg envelope.
    write(
        "flux",
        "wordcount",
        b"name: wc\nconfig:\n  topology.max.spout.pending: 10\nspouts:\n  - id: s\n    className: org.apache.storm.flux.wrappers.spouts.FluxShellSpout\n    constructorArgs: [[python3, spout.py], [word]]\nbolts:\n  - id: b\n    className: org.apache.storm.flux.wrappers.bolts.FluxShellBolt\n    constructorArgs: [[python3, bolt.py], [word, count]]\n    parallelism: 2\nstreams:\n  - from: s\n    to: b\n    grouping: {type: FIELDS, args: [word]}\n",
    );
    write(
        "gateway_json",
        "array",
        br#"[1, "a", {"k": [true, null, 2.5]}]"#,
    );
    write("gateway_json", "object", br#"{"a": 1, "b": "x"}"#);
    write(
        "yaml_configs",
        "directory",
        b"calc: tcp://127.0.0.1:4242\nhub: {endpoints: [tcp://h:1, tcp://h:2], type: ROUTER}\n",
    );
    write(
        "yaml_configs",
        "rules",
        b"rules:\n  - user: alice\n    allow: ['*']\n  - user: '*'\n    allow: [get_*]\n    deny: [get_secret]\n",
    );
    write(
        "bus_message",
        "envelope",
        br#"{"topic": "org.fedoraproject.dev.x.y", "msg": {"a": [1, 2]}, "msg_id": "2026-1", "timestamp": 1700000000.5, "i": 1, "username": "me", "crypto": "x509"}"#,
    );
    println!("seeds written under fuzz/seeds/");
}
