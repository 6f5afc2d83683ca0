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

    curve_seeds();
    server_seeds();
    bus_seeds();
    println!("seeds written under fuzz/seeds/");
}

/// A length byte and the bytes (the targets' `chunk`).
fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![bytes.len() as u8];
    v.extend_from_slice(bytes);
    v
}

/// `curve`: its three modes (see the target for the layout): every
/// command well-formed, then each with one field chosen, and traffic.
fn curve_seeds() {
    let traffic_ref = [
        &[0u8][..],
        &chunk(b"from the library"),
        &[1],
        &chunk(b"from the reference"),
        &[2],
        &chunk(b"altered"),
        &[0, 0, 20, 1],
        &[1 | 4],
        &chunk(b"more"),
    ]
    .concat();
    let md = zmtp::Metadata::for_socket(zmtp::SocketType::Dealer, b"").encode();
    for (name, script) in [
        // server side: HELLO, INITIATE, traffic
        ("server", [&[0u8, 0, 0][..], &traffic_ref].concat()),
        ("server-hello-nonce", vec![0, 2, 0, 7, 0]),
        ("server-hello-version", vec![0, 2, 1, 1, 1, 1]),
        ("server-hello-signature", vec![0, 2, 2, 10, 1]),
        // (a low-order C' is fuzz/seeds/curve/regression-1)
        ("server-hello-altered", vec![0, 1, 0, 0, 120, 1]),
        (
            "server-hello-raw",
            [&[0u8, 3][..], &chunk(&[1; 194])].concat(),
        ),
        ("server-initiate-stranger", vec![0, 0, 2, 2]),
        (
            "server-initiate-unknown-key",
            [&[0u8, 0, 2, 4][..], &[9; 32]].concat(),
        ),
        ("server-initiate-low-order", vec![0, 0, 2, 6]),
        ("server-initiate-vouch", vec![0, 0, 2, 8]),
        ("server-initiate-vouch-server", vec![0, 0, 2, 16]),
        ("server-initiate-nonce", vec![0, 0, 2, 1, 1]),
        ("server-initiate-cookie", vec![0, 0, 2, 0x40, 0, 0, 30, 4]),
        (
            "server-initiate-metadata",
            [&[0u8, 0, 2, 0x20][..], &chunk(&md)].concat(),
        ),
        ("server-initiate-altered", vec![0, 0, 1, 0, 0, 200, 2]),
        ("server-wrong-name", vec![0, 0x80 | 0x20]),
        // client side: WELCOME, READY, traffic
        ("client", [&[1u8, 0, 0][..], &traffic_ref].concat()),
        (
            "client-welcome-cookie",
            [&[1u8, 2, 2][..], &[0xAB; 96], &[5; 16]].concat(),
        ),
        (
            "client-welcome-server-key",
            [&[1u8, 2, 1][..], &[7; 32], &[5; 16]].concat(),
        ),
        (
            "client-welcome-low-order",
            [&[1u8, 2, 9][..], &[5; 16]].concat(),
        ),
        (
            "client-welcome-size",
            [&[1u8, 2, 4, 1, 0, 100, 0][..], &[5; 16]].concat(),
        ),
        ("client-welcome-altered", vec![1, 1, 0, 0, 50, 8]),
        (
            "client-ready-nonce",
            [&[1u8, 0, 2, 0][..], &chunk(&md)].concat(),
        ),
        (
            "client-ready-metadata",
            [&[1u8, 0, 2, 9][..], &chunk(b"\x04Name\0\0\0\x01x")].concat(),
        ),
        ("client-ready-altered", vec![1, 0, 1, 2, 0, 9, 0]),
        // library to library
        (
            "traffic",
            [
                &[2u8, 0][..],
                &chunk(b"c2s one"),
                &[1],
                &chunk(b"s2c one"),
                &[0],
                &chunk(b"c2s two"),
                &[2, 1, 2, 0, 3, 0],
                &[4, 0, 0, 0, 20, 1],
                &[6 | 0x10],
                &chunk(b"forged"),
                &[3, 0, 0x30],
                &chunk(b"cmd"),
                &[3, 1],
            ]
            .concat(),
        ),
    ] {
        write("curve", name, &script);
    }
    // A run of boxes each way, sealed in place (0x40) and not, of one to
    // eleven blocks of keystream, then opened in order: each box's batch
    // makes the next one's start.
    let mut run = vec![2u8];
    for dir in [0u8, 1] {
        for (i, len) in [0usize, 150, 0, 300, 700, 0, 90].into_iter().enumerate() {
            run.push(dir | if i % 2 == 0 { 0x40 } else { 0 });
            run.extend(chunk(&vec![i as u8; len]));
        }
        for i in 0..7 {
            run.extend([2 | dir, i]);
        }
    }
    write("curve", "traffic-runs", &run);
}

/// `server_recv`: op scripts (see the target): calls of every kind of the
/// demo service, channel events, time, odd messages.
fn server_seeds() {
    // request ops: 1, method | arg count << 4, args, id, header flags...
    let add = [1u8, 0x21, 2, 40, 2, 2, 2, 0];
    let range = [1u8, 0x13, 3, 10, 4, 0];
    let slow_deadline = [1u8 | 0x20, 6, 6, 1, 3];
    let traced = [&[1u8, 0, 8, 2][..], &[0x4b; 16], &[0xf0; 8], &[1]].concat();
    let legacy_trace = [
        &[1u8, 0, 10, 8 | 4][..],
        &chunk(b"congo=t61"),
        &chunk(b"my-trace"),
    ]
    .concat();
    for (name, script) in [
        ("add", [&add[..], &[4, 0, 3, 1]].concat()),
        (
            "stream",
            [
                &range[..],
                &[4, 0, 2, 0x10, 50, 5, 3, 20, 2, 0x00, 0, 5, 3, 100],
            ]
            .concat(),
        ),
        (
            "deadline",
            [&slow_deadline[..], &[4, 0, 3, 10, 3, 200]].concat(),
        ),
        (
            "trace",
            [&traced[..], &[4, 0], &legacy_trace, &[5]].concat(),
        ),
        (
            "many",
            [
                &add[..],
                &[0x40 | 1, 0x21, 2, 1, 2, 2, 2, 0],
                &range,
                &[1, 0x32, 2, 1, 2, 2, 12, 0],
                &[1, 0x33, 2, 1, 2, 2, 14, 0],
                &[1, 0x34, 2, 1, 2, 2, 16, 0],
                &[1, 0x39, 5, 4, b'a', b'd', b'd', b'x', 18, 0],
                &[5, 6, 3, 255, 3, 255],
            ]
            .concat(),
        ),
        (
            "introspection",
            [
                &[1u8, 8, 20, 0, 1, 9, 22, 0, 1, 12, 24, 0][..],
                &[1, 0x1a, 5, 3, b'a', b'd', b'd', 26, 0],
                &[1, 0x1b, 5, 5, b'r', b'a', b'n', b'g', b'e', 28, 0],
                &[1, 0x4d, 9, 30, 0, 5],
            ]
            .concat(),
        ),
        (
            "odd",
            [
                &[0u8][..],
                &chunk(b"\x93\x80\xa1x"),
                &[7, 0],
                &[7 | 8, 3, 1, 0, 0, 1, 0x90],
                &[6, 3, 1],
            ]
            .concat(),
        ),
        (
            "credit",
            [
                &range[..],
                &[4, 0, 2, 0x10, 0xFF, 9, 2, 0x20, 0, 5, 2, 0x18, 0],
            ]
            .concat(),
        ),
    ] {
        write("server_recv", name, &script);
    }
}

/// The bus targets: signed envelopes (the PKI of crates/zerorpc-fuzz/pki),
/// replay queries, bodies for the schemas, JSON.
fn bus_seeds() {
    use serde_json::json;
    use zerorpc_bus::crypto::Signer;
    use zerorpc_bus::message::Message;
    let pki = |f: &str| {
        std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("pki")
                .join(f),
        )
        .expect("the test PKI")
    };
    let message = |topic: &str, body: serde_json::Value, i: u64| {
        let mut m = Message::new(topic, body, i, "fuzz");
        m.timestamp = 1_800_000_000 + i as i64;
        m.msg_id = format!("2027-{i}");
        m
    };
    let names = ["alice", "bob", "mallory", "old", "eve"];
    let topics = [
        "org.fedoraproject.dev.fuzz.alice",
        "org.fedoraproject.dev.fuzz.both",
        "org.fedoraproject.dev.fuzz.bob",
        "org.fedoraproject.dev.unlisted",
    ];
    for (i, name) in names.iter().enumerate() {
        let signer = Signer::from_pem(&pki(&format!("{name}.crt")), &pki(&format!("{name}.key")))
            .expect("signer");
        let topic = topics[i % topics.len()];
        let body = json!({"n": i, "text": "h\u{e9}llo \u{1F600}", "f": 1.5e-7, "big": u64::MAX});
        let mut m = message(topic, body, i as u64 + 1);
        let unsigned = m.to_canonical_json();
        signer.sign(&mut m).expect("signing");
        write(
            "bus_signature",
            &format!("signed-{name}"),
            &[&[0u8][..], m.to_canonical_json().as_bytes()].concat(),
        );
        write(
            "bus_signature",
            &format!("sign-{name}"),
            &[&[1 | (i as u8) << 2, 0, 0, 60, 1][..], unsigned.as_bytes()].concat(),
        );
        let der = pem_der(&pki(&format!("{name}.crt")));
        write(
            "bus_signature",
            &format!("der-{name}"),
            &[&[2u8][..], &der].concat(),
        );
    }
    write(
        "bus_signature",
        "sign-nitpicky",
        &[
            &[1u8 | 0x80, 2, 0, 5, 0][..],
            message("org.fedoraproject.dev.unlisted", json!({"a": [1, 2]}), 9)
                .to_canonical_json()
                .as_bytes(),
        ]
        .concat(),
    );
    write(
        "bus_signature",
        "ca-der",
        &[&[2u8][..], &pem_der(&pki("ca.crt"))].concat(),
    );
    write(
        "bus_signature",
        "crl",
        &[&[3u8][..], &pki("crl.pem")].concat(),
    );
    write(
        "bus_signature",
        "ca",
        &[&[3u8][..], &pki("ca.crt")].concat(),
    );

    for (name, query) in [
        ("seq-id", r#"{"seq_id": 3}"#),
        ("seq-ids", r#"{"seq_ids": [1, 2, 30, 2, 24]}"#),
        ("range", r#"{"seq_id_range": [2, 4]}"#),
        ("range-wide", r#"{"seq_id_range": [0, 1000000]}"#),
        (
            "range-top",
            r#"{"seq_id_range": [18446744073709551615, 18446744073709551615]}"#,
        ),
        ("msg-id", r#"{"msg_id": "2026-0004"}"#),
        (
            "msg-ids",
            r#"{"msg_ids": ["seq_id", "", "a\"b\\c", "\u00e9-\ud83d\ude00", "x"]}"#,
        ),
        ("time", r#"{"time": [1700000000, 1700000300.5]}"#),
        ("time-edges", r#"{"time": [-10, 0]}"#),
        ("time-max", r#"{"time": [9.223372036854776e18, 1e300]}"#),
        ("reversed", r#"{"time": [5, 1]}"#),
        ("wrong-type", r#"{"seq_id": -1}"#),
        ("two-keys", r#"{"seq_id": 1, "msg_id": "x"}"#),
        ("not-object", "[1]"),
        (
            "stored",
            r#"{"a":1,"msg":{"seq_id":2},"seq_ic":null,"topic":"t"}"#,
        ),
        (
            "stored-replace",
            r#"{ "seq_id" : {"x": [1, "}"]}, "z": 0 }"#,
        ),
    ] {
        write("bus_replay", name, query.as_bytes());
    }

    let comment = |alias: &str, karma: i64| {
        json!({"agent": "bowlofeggs", "comment": {"text": "ok", "karma": karma,
               "update": {"alias": alias}}})
    };
    for (name, topic, body) in [
        (
            "comment",
            "org.fedoraproject.prod.bodhi.update.comment",
            comment("FEDORA-2026-1", 1),
        ),
        (
            "comment-invalid",
            "org.fedoraproject.stg.bodhi.update.comment",
            comment("F-1", 5),
        ),
        (
            "koji",
            "org.fedoraproject.dev.koji.build.state.change",
            json!({"owner": "a", "name": "b", "new": "complete"}),
        ),
        (
            "koji-invalid",
            "org.fedoraproject.dev.koji.build.state.change",
            json!({"owner": 1, "new": "done", "extra": []}),
        ),
        (
            "fuzz",
            "org.fedoraproject.dev.fuzz.x",
            json!({"who": {"name": "ann"}, "what": "push", "items": [3, null, 6],
                   "size": 2.5, "tags": {"xy": true}}),
        ),
        (
            "fuzz-invalid",
            "org.fedoraproject.dev.fuzz.x",
            json!({"who": {"name": "Ann", "x": 1}, "what": "push", "size": 0,
                   "tags": {"X1": 1}, "items": ["no"]}),
        ),
        (
            "legacy",
            "org.fedoraproject.dev.fuzz.legacy",
            json!({"list": [1, "a", "b"], "a": null}),
        ),
        (
            "legacy-invalid",
            "org.fedoraproject.dev.fuzz.legacy",
            json!({"b": 1, "list": [0, 1]}),
        ),
        ("versioned", "org.fedoraproject.dev.fuzz.v2", json!({})),
        (
            "none",
            "org.fedoraproject.dev.elsewhere",
            json!({"any": "thing"}),
        ),
    ] {
        let mut m = message(topic, body, 1);
        m.extra.insert(
            "x-summary".into(),
            json!("{agent} on {comment.update.alias}: {{x}} {nope"),
        );
        write("bus_schema", name, m.to_canonical_json().as_bytes());
    }
    write(
        "bus_schema",
        "body",
        br#"{"agent": "x", "comment": {"text": "t", "update": {"alias": "FEDORA-1"}}}"#,
    );

    for (name, text) in [
        (
            "floats",
            "[0.0, -0.0, 1e20, 1e16, 1.5e16, 1e-7, 0.0001, 0.00001, 123456.789, 5e-324, 1.7976931348623157e308, 100.0, 1E2]",
        ),
        (
            "ints",
            "[0, -1, 9223372036854775807, -9223372036854775808, 18446744073709551615, 18446744073709551616, -0]",
        ),
        (
            "strings",
            r#"["a\"b\\c", "\n\r\t\b\f", "\u0000\u001f\u007f", "/ ~", "é€\uffff", "😀", "\udbff\udfff"]"#,
        ),
        (
            "object",
            r#"{"😀": 1, "\uffff": 2, "€": 3, "é": 4, "a": 5, "Z": 6, "": 7, "aa": [{}, [], null, true, false]}"#,
        ),
        (
            "nested",
            r#"{"b": [1, {"y": [], "x": {}}], "a": {"d": null, "c": 1.5}}"#,
        ),
    ] {
        write("canonical_json", name, text.as_bytes());
    }
    write(
        "canonical_json",
        "float-bits",
        &1.5e-7f64.to_bits().to_be_bytes(),
    );
}

/// The DER of a PEM certificate file.
fn pem_der(pem: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).expect("PEM");
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}
