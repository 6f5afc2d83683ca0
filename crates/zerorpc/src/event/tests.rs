//! Event encoding and decoding tests: round trips, limits, hostile input.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn python_request_bytes_decode() {
    // PROTOCOL.md section 4: echo("hi") from the Python client.
    let id = "0123456789abcdef0123456789abcdef";
    let mut wire = hex("9382aa");
    wire.extend_from_slice(b"message_id");
    wire.extend_from_slice(&hex("c420"));
    wire.extend_from_slice(id.as_bytes());
    wire.extend_from_slice(&hex("a17603a4"));
    wire.extend_from_slice(b"echo");
    wire.extend_from_slice(&hex("91a2"));
    wire.extend_from_slice(b"hi");
    let ev = Event::decode(&wire, DecodeLimits::default()).unwrap();
    assert_eq!(ev.name, "echo");
    assert_eq!(ev.args, Value::Array(vec![Value::from("hi")]));
    assert_eq!(ev.header.message_id.as_bytes(), id.as_bytes());
    assert!(!ev.header.message_id.is_str());
    assert_eq!(ev.header.version, Some(3));
    // and we encode the same event byte for byte
    assert_eq!(&ev.encode()[..], &wire[..]);
}

#[test]
fn reply_echoes_id_type_and_keeps_extra_keys() {
    let mut req = Event::new("add", Value::Array(vec![1.into(), 2.into()]));
    req.header.message_id = MessageId::from_str_id("3f2504e0-4f89-11d3-9a0c-0305e82c3301");
    req.header.set("traceparent", Value::from("00-abc-def-01"));
    req.header
        .extra
        .push((Value::from(7), Value::from("int key kept")));
    let back = Event::decode(&req.encode(), DecodeLimits::default()).unwrap();
    assert_eq!(back, req);
    let reply = Event::on_channel(&back.header.message_id, "OK", Value::Array(vec![3.into()]));
    let reply = Event::decode(&reply.encode(), DecodeLimits::default()).unwrap();
    let rt = reply.header.response_to.unwrap();
    assert!(rt.is_str(), "a string id is echoed as a string");
    assert_eq!(rt, req.header.message_id);
    assert_eq!(
        back.header.get("traceparent"),
        Some(&Value::from("00-abc-def-01"))
    );
}

#[test]
fn a_w3c_traceparent_is_read_in_place_and_written_back() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let raw = Value::Array(vec![
        Value::Map(vec![
            (Value::from("message_id"), Value::from("x")),
            (Value::from("traceparent"), Value::from(tp)),
            (Value::from("tracestate"), Value::from("k=v")),
        ]),
        Value::from("m"),
        Value::Array(vec![]),
    ]);
    let mut b = Vec::new();
    rmpv::encode::write_value(&mut b, &raw).unwrap();
    let ev = Event::decode(&b, DecodeLimits::default()).unwrap();
    let parsed = ev.header.traceparent.expect("parsed in place");
    assert_eq!(
        parsed.span_id,
        [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
    );
    assert_eq!(parsed.flags, 1);
    assert_eq!(ev.header.get("traceparent"), None, "not an extra entry");
    assert_eq!(ev.header.get("tracestate"), Some(&Value::from("k=v")));
    let ctx = crate::TraceContext::from_header(&ev.header).unwrap();
    assert_eq!(ctx.traceparent(), tp);
    assert_eq!(ctx.tracestate.as_deref(), Some("k=v"));
    // As a Python peer sees the event again: the same string key.
    let again = rmpv::decode::read_value(&mut &ev.encode()[..]).unwrap();
    let header = again.as_array().unwrap()[0].as_map().unwrap();
    assert!(header
        .iter()
        .any(|(k, v)| k.as_str() == Some("traceparent") && v.as_str() == Some(tp)));
    // Other versions and shapes: kept as they came.
    for odd in [
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01",
    ] {
        let mut e = Event::new("m", Value::Array(vec![]));
        e.header.set("traceparent", Value::from(odd));
        let back = Event::decode(&e.encode(), DecodeLimits::default()).unwrap();
        assert_eq!(back.header.traceparent, None, "{odd}");
        assert_eq!(back.header.get("traceparent"), Some(&Value::from(odd)));
    }
    // The right shape with digits W3C refuses (upper case, zero ids):
    // kept as they came, and no context comes of it.
    for bad in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ] {
        let mut e = Event::new("m", Value::Array(vec![]));
        e.header.set("traceparent", Value::from(bad));
        let back = Event::decode(&e.encode(), DecodeLimits::default()).unwrap();
        assert_eq!(back.header.traceparent, None, "{bad}");
        assert_eq!(
            crate::TraceContext::from_header(&back.header),
            None,
            "{bad}"
        );
    }
}

#[test]
fn random_ids_look_like_python() {
    let a = MessageId::random();
    assert_eq!(a.as_bytes().len(), 32);
    assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
    assert_ne!(a, MessageId::random());
    assert_eq!(a.to_value(), Value::Binary(a.as_bytes().to_vec()));
    // Each thread has its own prefix: ids made on two threads at once
    // never meet.
    let other: Vec<MessageId> =
        std::thread::spawn(|| (0..1000).map(|_| MessageId::random()).collect())
            .join()
            .unwrap();
    let mine: Vec<MessageId> = (0..1000).map(|_| MessageId::random()).collect();
    let all: std::collections::HashSet<&[u8]> =
        other.iter().chain(&mine).map(MessageId::as_bytes).collect();
    assert_eq!(all.len(), 2000);
    assert_ne!(other[0].as_bytes()[..16], mine[0].as_bytes()[..16]);
}

#[test]
fn long_ids_round_trip_like_short_ones() {
    // Ids up to 36 bytes are kept inline, longer ones shared: both
    // decode, compare and echo the same, with the type they came as.
    // (Every open call holds three ids: they stay 40 bytes.)
    assert_eq!(std::mem::size_of::<MessageId>(), 40);
    for len in [1, 32, 36, 37, 38, 200] {
        for is_str in [false, true] {
            let raw = vec![b'a'; len];
            let id = if is_str {
                MessageId::from_str_id(std::str::from_utf8(&raw).unwrap())
            } else {
                MessageId::from_bin(raw.clone())
            };
            assert_eq!(id.as_bytes(), &raw[..]);
            let ev = Event::on_channel(&id, "OK", Value::Array(vec![]));
            let back = Event::decode(&ev.encode(), DecodeLimits::default()).unwrap();
            assert_eq!(back.header.response_to.as_ref(), Some(&id));
            assert_eq!(back.header.response_to.unwrap().is_str(), is_str);
        }
    }
}

#[test]
fn decode_head_reads_header_and_name_only() {
    let ev = Event::on_channel(&MessageId::random(), "STREAM", Value::Binary(vec![7; 1000]));
    let bytes = ev.encode();
    let (h, name) = Event::decode_head(&bytes, DecodeLimits::default()).unwrap();
    assert_eq!((h, name), (ev.header.clone(), ev.name.clone()));
    // The same checks as a full decode: truncated or malformed events fail.
    assert!(Event::decode_head(&bytes[..bytes.len() - 1], DecodeLimits::default()).is_err());
    let mut not_array = Vec::new();
    rmpv::encode::write_value(&mut not_array, &Value::from("x")).unwrap();
    assert!(Event::decode_head(&not_array, DecodeLimits::default()).is_err());
}

#[cfg(feature = "hub")]
#[test]
fn route_head_reads_ids_name_and_one_key_and_checks_the_rest() {
    let limits = DecodeLimits::default();
    let call = MessageId::random();
    let mut ev = Event::on_channel(&call, "STREAM", Value::Binary(vec![7; 1000]));
    ev.header.traceparent = crate::trace::TraceParent::parse(
        b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    ev.header.extra = vec![
        (
            Value::from(7),
            Value::Map(vec![(Value::from("a"), Value::from(1))]),
        ),
        (Value::from("x-window"), Value::from(3)),
    ];
    let bytes = ev.encode();
    let head = Event::route_head(&bytes, limits, Some("x-window")).unwrap();
    assert_eq!(head.message_id, ev.header.message_id);
    assert_eq!(head.response_to, Some(call.clone()));
    assert_eq!(head.name, "STREAM");
    assert!(head.has_key);
    // It agrees with the full header read.
    let (h, name) = Event::decode_head(&bytes, limits).unwrap();
    assert_eq!(
        (h.message_id, h.response_to, name.as_str()),
        (head.message_id, head.response_to, head.name)
    );
    assert!(
        !Event::route_head(&bytes, limits, Some("x-other"))
            .unwrap()
            .has_key
    );
    assert!(!Event::route_head(&bytes, limits, None).unwrap().has_key);
    // A request (no response_to), with ids as bin, as Python 2 peers send.
    let mut req = Event::new("add", Value::Array(vec![1.into(), 2.into()]));
    req.header.message_id = MessageId::from_slice(b"py2-id", false);
    let bytes = req.encode();
    let head = Event::route_head(&bytes, limits, None).unwrap();
    assert_eq!(
        (head.message_id, head.response_to, head.name),
        (req.header.message_id.clone(), None, "add")
    );
    // The same checks as a full decode: truncated, malformed, too complex,
    // or without a message id, it fails.
    assert!(Event::route_head(&bytes[..bytes.len() - 1], limits, None).is_err());
    let mut not_array = Vec::new();
    rmpv::encode::write_value(&mut not_array, &Value::from("x")).unwrap();
    assert!(Event::route_head(&not_array, limits, None).is_err());
    let tight = DecodeLimits { max_nodes: 3 };
    assert!(Event::route_head(&bytes, tight, None).is_err());
    let mut no_id = Vec::new();
    let v = Value::Array(vec![
        Value::Map(vec![(Value::from("v"), Value::from(3))]),
        Value::from("add"),
        Value::Array(vec![]),
    ]);
    rmpv::encode::write_value(&mut no_id, &v).unwrap();
    assert!(Event::route_head(&no_id, limits, None).is_err());
}

#[test]
fn the_deadline_key_round_trips_and_a_malformed_one_is_none() {
    let mut ev = Event::new("slow", Value::Array(vec![]));
    ev.header.deadline_ms = Some(1500);
    let back = Event::decode(&ev.encode(), DecodeLimits::default()).unwrap();
    assert_eq!(back.header.deadline_ms, Some(1500));
    assert!(
        back.header.extra.is_empty(),
        "a known key, not an extra one"
    );
    // As a Python peer would see it: one more string key in the map.
    let v = rmpv::decode::read_value(&mut &ev.encode()[..]).unwrap();
    let header = v.as_array().unwrap()[0].as_map().unwrap();
    assert!(header
        .iter()
        .any(|(k, v)| k.as_str() == Some("deadline_ms") && v.as_u64() == Some(1500)));
    for odd in [Value::from(-1), Value::from(1.5), Value::from("10")] {
        let raw = Value::Array(vec![
            Value::Map(vec![
                (Value::from("message_id"), Value::from("x")),
                (Value::from("deadline_ms"), odd.clone()),
            ]),
            Value::from("m"),
            Value::Array(vec![]),
        ]);
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &raw).unwrap();
        let ev = Event::decode(&b, DecodeLimits::default()).unwrap();
        assert_eq!(ev.header.deadline_ms, None, "{odd}");
    }
}

#[test]
fn malformed_events_are_errors() {
    let lim = DecodeLimits::default();
    let enc = |v: Value| {
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &v).unwrap();
        b
    };
    let hdr = Value::Map(vec![(Value::from("message_id"), Value::from("x"))]);
    for bad in [
        enc(Value::from(5)),
        enc(Value::Array(vec![hdr.clone(), Value::from("m")])),
        enc(Value::Array(vec![
            Value::from(1),
            Value::from("m"),
            Value::Nil,
        ])),
        enc(Value::Array(vec![hdr.clone(), Value::from(9), Value::Nil])),
        enc(Value::Array(vec![
            Value::Map(vec![]),
            Value::from("m"),
            Value::Nil,
        ])),
        enc(Value::Array(vec![
            Value::Map(vec![(Value::from("message_id"), Value::from(1))]),
            Value::from("m"),
            Value::Nil,
        ])),
        vec![],
        vec![0x93],
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        vec![0xc1],
    ] {
        assert!(Event::decode(&bad, lim).is_err(), "{bad:?}");
    }
    let ok = enc(Value::Array(vec![hdr, Value::from("m"), Value::Nil]));
    assert!(Event::decode(&ok, lim).is_ok());
}

#[test]
fn header_keys_read_in_place_as_str_or_bin_others_kept_in_order() {
    // A Python 2 style header: bin keys; an int key and unknown keys
    // between the known ones; the name as bin.
    let mut b = Vec::new();
    rmp::encode::write_array_len(&mut b, 3).unwrap();
    rmp::encode::write_map_len(&mut b, 5).unwrap();
    rmp::encode::write_bin(&mut b, b"trace_id").unwrap();
    rmp::encode::write_str(&mut b, "t1").unwrap();
    rmp::encode::write_bin(&mut b, b"message_id").unwrap();
    rmp::encode::write_bin(&mut b, b"id-1").unwrap();
    rmp::encode::write_sint(&mut b, 7).unwrap();
    rmp::encode::write_str(&mut b, "seven").unwrap();
    rmp::encode::write_bin(&mut b, b"v").unwrap();
    rmp::encode::write_sint(&mut b, 3).unwrap();
    rmp::encode::write_str(&mut b, "response_to").unwrap();
    rmp::encode::write_str(&mut b, "id-0").unwrap();
    rmp::encode::write_bin(&mut b, b"OK").unwrap();
    rmp::encode::write_array_len(&mut b, 1).unwrap();
    rmp::encode::write_sint(&mut b, 42).unwrap();
    let ev = Event::decode(&b, DecodeLimits::default()).unwrap();
    assert_eq!(ev.name, "OK");
    assert_eq!(ev.header.message_id.as_bytes(), b"id-1");
    assert!(!ev.header.message_id.is_str());
    let rt = ev.header.response_to.clone().unwrap();
    assert_eq!((rt.as_bytes(), rt.is_str()), (&b"id-0"[..], true));
    assert_eq!(ev.header.version, Some(3));
    assert_eq!(
        ev.header.extra,
        vec![
            (Value::Binary(b"trace_id".to_vec()), Value::from("t1")),
            (Value::from(7), Value::from("seven")),
        ]
    );
    assert_eq!(ev.args, Value::Array(vec![Value::from(42)]));
    // A message id of another type, and a name that is not UTF-8.
    let with = |id: &dyn Fn(&mut Vec<u8>), name: &[u8]| {
        let mut b = Vec::new();
        rmp::encode::write_array_len(&mut b, 3).unwrap();
        rmp::encode::write_map_len(&mut b, 1).unwrap();
        rmp::encode::write_str(&mut b, "message_id").unwrap();
        id(&mut b);
        rmp::encode::write_bin(&mut b, name).unwrap();
        rmp::encode::write_nil(&mut b).unwrap();
        Event::decode(&b, DecodeLimits::default())
    };
    assert!(matches!(
        with(
            &|b| rmp::encode::write_sint(b, 1).map(|_| ()).unwrap(),
            b"x"
        ),
        Err(EventError::Malformed("message_id is not str or bin"))
    ));
    assert!(matches!(
        with(&|b| rmp::encode::write_str(b, "i").unwrap(), b"\xff"),
        Err(EventError::Malformed("event name is not UTF-8"))
    ));
    assert!(with(&|b| rmp::encode::write_str(b, "i").unwrap(), b"ok").is_ok());
}

#[test]
fn node_limit_stops_amplification() {
    // [header, "m", [nil * 1000]]
    let mut args = vec![0xdc, 0x03, 0xe8];
    args.extend(std::iter::repeat_n(0xc0, 1000));
    let hdr = Event::new("m", Value::Nil).encode();
    // splice: reuse header/name of an encoded event, replace args
    let mut wire = hdr[..hdr.len() - 1].to_vec();
    wire.extend_from_slice(&args);
    assert!(Event::decode(&wire, DecodeLimits { max_nodes: 2000 }).is_ok());
    assert!(matches!(
        Event::decode(&wire, DecodeLimits { max_nodes: 500 }),
        Err(EventError::TooComplex { .. })
    ));
}

#[test]
fn pieces_join_to_the_encoded_bytes_and_carry_long_values_uncopied() {
    let big = vec![7u8; PIECE_MIN];
    let text = "z".repeat(PIECE_MIN + 1);
    // a msgpack str that is not UTF-8, as a peer may send one
    let mut wire = vec![0xdb];
    wire.extend_from_slice(&(PIECE_MIN as u32).to_be_bytes());
    wire.push(0xff);
    wire.resize(5 + PIECE_MIN, b'a');
    let invalid = rmpv::decode::read_value(&mut &wire[..]).unwrap();
    assert!(
        invalid.as_str().is_none(),
        "the test needs a string that is not UTF-8"
    );
    let (big_at, text_at) = (big.as_ptr(), text.as_ptr());
    let args = Value::Array(vec![
        Value::Binary(big),
        Value::Map(vec![(Value::from("k"), Value::from(text))]),
        Value::from(1),
        Value::Binary(vec![1; PIECE_MIN - 1]),
        invalid,
        Value::Nil,
    ]);
    let mut ev = Event::new("m", args);
    ev.header.version = Some(3);
    let whole = ev.encode();
    let pieces: Vec<Bytes> = ev.into_pieces().collect();
    // head, big, map head, text, the short values, the invalid string, the end
    assert_eq!(pieces.len(), 7);
    assert_eq!(pieces.concat(), whole);
    assert_eq!(pieces[1].as_ptr(), big_at);
    assert_eq!(pieces[3].as_ptr(), text_at);
    let back = Event::decode(&whole, DecodeLimits::default()).unwrap();
    assert_eq!(back.args[4].as_str(), None);
}

#[test]
fn an_event_without_long_values_is_one_piece() {
    let ev = Event::new(
        "echo",
        Value::Array(vec![Value::from("hi"), Value::Binary(vec![0; 100])]),
    );
    let whole = ev.encode();
    let pieces: Vec<Bytes> = ev.into_pieces().collect();
    assert_eq!(pieces, [whole]);
    let bare = Event::new("STREAM", Value::Binary(vec![3; PIECE_MIN]));
    let whole = bare.encode();
    let pieces: Vec<Bytes> = bare.into_pieces().collect();
    assert_eq!(pieces.len(), 2, "no empty piece after the value");
    assert_eq!(pieces.concat(), whole);
}

#[test]
fn an_event_goes_in_pieces_only_when_it_holds_a_long_value() {
    let short = Event::new("echo", Value::Array(vec![Value::from(1)]));
    let mut m = zmtp::Message::new();
    let whole = short.encode();
    short.append_to(&mut m);
    assert_eq!(m.frames(), [whole]);
    let nested = Value::Array(vec![Value::Map(vec![(
        Value::from("k"),
        Value::Binary(vec![5; PIECE_MIN]),
    )])]);
    let long = Event::new("echo", nested);
    let whole = long.encode();
    let mut m = zmtp::Message::new();
    long.append_to(&mut m);
    assert_eq!(m.len(), 1);
    let pieces: Vec<&[Bytes]> = m.frame_pieces().collect();
    assert_eq!(
        pieces[0].len(),
        2,
        "the head, then the binary (nothing after it)"
    );
    assert_eq!(pieces[0].concat(), whole);
}

#[test]
fn the_size_hint_covers_the_usual_events_so_encoding_never_grows_its_buffer() {
    let ctx = crate::TraceContext::new_root();
    let mut request = Event::new("echo", Value::Array(vec![Value::from(12345)]));
    ctx.stamp(&mut request.header);
    request.header.deadline_ms = Some(30_000);
    let id = request.header.message_id.clone();
    let mut item = Event::on_channel(&id, "STREAM", Value::Array(vec![Value::from(1u64 << 40)]));
    item.header.traceparent = request.header.traceparent;
    let mut error = Event::on_channel(
        &id,
        "ERR",
        Value::Array(vec!["NameError".into(), "nope".into(), "".into()]),
    );
    error.header.traceparent = request.header.traceparent;
    let python_id = MessageId::from_bin(b"0123456789abcdef0123456789abcdef".to_vec());
    let plain = Event::on_channel(&python_id, "OK", Value::Array(vec!["hi".into()]));
    for ev in [request, item, error, plain] {
        assert!(
            ev.head().size_hint() >= ev.encode().len(),
            "{}: hint {} < {} bytes",
            ev.name,
            ev.head().size_hint(),
            ev.encode().len()
        );
    }
}
