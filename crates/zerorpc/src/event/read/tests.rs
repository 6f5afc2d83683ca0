//! Reading tests: the one-pass readers against a full walk of the same
//! bytes, and integers read straight from them against rmpv.

use super::*;

/// The router's read accepts what the full read accepts, and agrees with
/// it on the ids and the name: for valid events whose bytes were cut or
/// changed, and for any bytes at all.
#[cfg(feature = "hub")]
mod route_head_agrees {
    use super::*;
    use proptest::prelude::*;

    fn check(bytes: &[u8]) {
        let limits = DecodeLimits { max_nodes: 64 };
        let full = Event::decode_head(bytes, limits);
        let routed = Event::route_head(bytes, limits, Some("x-window"));
        match (full, routed) {
            (Ok((h, name)), Ok(head)) => {
                assert_eq!(h.message_id, head.message_id);
                assert_eq!(h.response_to, head.response_to);
                assert_eq!(name, head.name);
                assert_eq!(h.get("x-window").is_some(), head.has_key);
            }
            (Err(_), Err(_)) => {}
            (full, routed) => panic!("full read {full:?}, router's read {routed:?}"),
        }
    }

    fn event(args: u8, window: bool, reply: bool) -> Vec<u8> {
        let mut ev = if reply {
            Event::on_channel(&MessageId::random(), "STREAM", Value::from(args))
        } else {
            Event::new(
                "add",
                Value::Array(vec![Value::from(args); usize::from(args % 70)]),
            )
        };
        if window {
            ev.header.set("x-window", Value::from(3));
        }
        ev.header.set(
            "x-nested",
            Value::Map(vec![(Value::from(1), Value::Array(vec![]))]),
        );
        ev.encode().to_vec()
    }

    proptest! {
        #[test]
        fn on_changed_events(args: u8, window: bool, reply: bool, at: usize, byte: u8, cut: usize) {
            let mut bytes = event(args, window, reply);
            check(&bytes);
            check(&bytes[..cut % bytes.len()]);
            let i = at % bytes.len();
            bytes[i] = byte;
            check(&bytes);
        }

        #[test]
        fn on_any_bytes(bytes: Vec<u8>) {
            check(&bytes);
        }
    }
}

/// The one-pass read (`Event::read_head`) accepts exactly what a full walk
/// of the event (`scan`) and then an unlimited read accept, and reads the
/// same: for events with every kind of header entry, cut or changed, under
/// node limits around their size, and for any bytes at all.
mod read_head_agrees_with_scan {
    use super::*;
    use proptest::prelude::*;

    /// Also: our client's read of a reply's header ([`ReplyHead`])
    /// accepts exactly the same, and finds the same channel and window
    /// announcement, name and rest.
    fn check(bytes: &[u8], max_nodes: usize) {
        let limits = DecodeLimits { max_nodes };
        let one_pass = Event::read_head(bytes, limits, Header::read);
        let reply = Event::read_head(bytes, limits, ReplyHead::read);
        let walked = super::super::scan(bytes, max_nodes).and_then(|()| {
            Event::read_head(
                bytes,
                DecodeLimits {
                    max_nodes: usize::MAX,
                },
                Header::read,
            )
        });
        match (&one_pass, &reply) {
            (Ok((h, n1, r1)), Ok((head, n2, r2))) => {
                assert_eq!(h.response_to, head.response_to);
                assert_eq!(crate::channel::announced_window(&h.extra), head.window_max);
                assert_eq!((n1, r1), (n2, r2));
            }
            (Err(_), Err(_)) => {}
            _ => {
                panic!("reading {one_pass:?}, reading as a reply {reply:?} (max_nodes {max_nodes})")
            }
        }
        match (one_pass, walked) {
            (Ok((h1, n1, r1)), Ok((h2, n2, r2))) => {
                assert_eq!(h1, h2);
                assert_eq!(n1, n2);
                assert_eq!(r1, r2);
            }
            (Err(_), Err(_)) => {}
            (one_pass, walked) => {
                panic!("one pass {one_pass:?}, walk then read {walked:?} (max_nodes {max_nodes})")
            }
        }
    }

    /// An event whose header holds, by `shape`'s bits: a version, a
    /// deadline, a trace context (valid or not), a nested extra value, an
    /// entry whose key is no string, a `response_to`, window announcements
    /// (under a bin key, with a value that is none, then two: the first
    /// of those counts); and `args` arguments.
    fn event(args: u8, shape: u8) -> Vec<u8> {
        let mut header = vec![(
            Value::from("message_id"),
            Value::from("0123456789abcdef0123456789abcdef"),
        )];
        if shape & 1 != 0 {
            header.push((Value::from("v"), Value::from(3)));
        }
        if shape & 2 != 0 {
            header.push((Value::from("deadline_ms"), Value::from(1500)));
        }
        if shape & 4 != 0 {
            let tp = if shape & 8 != 0 {
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            } else {
                "not a trace context"
            };
            header.push((Value::from("traceparent"), Value::from(tp)));
        }
        if shape & 16 != 0 {
            header.push((
                Value::from("x-nested"),
                Value::Map(vec![(
                    Value::from(1),
                    Value::Array(vec![Value::from(2), Value::Nil]),
                )]),
            ));
        }
        if shape & 32 != 0 {
            header.push((Value::Array(vec![Value::from(7)]), Value::from("odd key")));
        }
        if shape & 64 != 0 {
            header.push((Value::from("response_to"), Value::from("feed")));
        }
        if shape & 128 != 0 {
            header.push((Value::Binary(b"window_max".to_vec()), Value::from(5)));
            header.push((Value::from("window_max"), Value::from(-1)));
            header.push((Value::from("window_max"), Value::from(1000)));
            header.push((Value::from("window_max"), Value::from(7)));
        }
        let ev = Value::Array(vec![
            Value::Map(header),
            Value::from("add"),
            Value::Array(vec![Value::from(args); usize::from(args % 20)]),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &ev).unwrap();
        bytes
    }

    #[test]
    fn a_limit_at_the_events_size_is_met_exactly() {
        let bytes = event(3, 0b1111_1111);
        let mut nodes = 0;
        while Event::read_head(&bytes, DecodeLimits { max_nodes: nodes }, Header::read).is_err() {
            nodes += 1;
        }
        let reply = |max_nodes| {
            Event::read_head(&bytes, DecodeLimits { max_nodes }, ReplyHead::read).map(|_| ())
        };
        assert!(reply(nodes).is_ok());
        assert!(matches!(
            reply(nodes - 1),
            Err(EventError::TooComplex { .. })
        ));
        assert!(super::super::scan(&bytes, nodes).is_ok());
        assert!(super::super::scan(&bytes, nodes - 1).is_err());
        assert!(matches!(
            Event::read_head(
                &bytes,
                DecodeLimits {
                    max_nodes: nodes - 1
                },
                Header::read
            ),
            Err(EventError::TooComplex { .. })
        ));
    }

    proptest! {
        #[test]
        fn on_changed_events(args: u8, shape: u8, at: usize, byte: u8, cut: usize, slack: u8) {
            let mut bytes = event(args, shape);
            let size = 30 + usize::from(args % 20);
            let max_nodes = size.saturating_sub(20) + usize::from(slack % 30);
            check(&bytes, max_nodes);
            check(&bytes[..cut % bytes.len()], max_nodes);
            let i = at % bytes.len();
            bytes[i] = byte;
            check(&bytes, max_nodes);
        }

        #[test]
        fn on_any_bytes(bytes: Vec<u8>, max_nodes in 0usize..64) {
            check(&bytes, max_nodes);
        }
    }
}

/// An integer header value read straight from its bytes is the value
/// rmpv reads, in every encoding msgpack has for it; anything else, or an
/// integer cut short, is left to rmpv.
#[test]
fn integers_are_read_as_rmpv_reads_them() {
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    for v in [
        0i64,
        1,
        5,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        1 << 40,
        i64::MAX,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32_768,
        -32_769,
        i64::MIN,
    ] {
        let mut b = Vec::new();
        rmp::encode::write_sint(&mut b, v).unwrap();
        encoded.push(b);
    }
    for v in [0u64, 200, 60_000, 4_000_000_000, u64::MAX] {
        let mut b = Vec::new();
        rmp::encode::write_uint(&mut b, v).unwrap();
        encoded.push(b);
    }
    // Non-minimal encodings (a peer may send them): 5 as u64, -1 as i64, 7 as i8.
    encoded.push(vec![0xcf, 0, 0, 0, 0, 0, 0, 0, 5]);
    encoded.push(vec![0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    encoded.push(vec![0xd0, 7]);
    for bytes in &encoded {
        let mut tail = bytes.clone();
        tail.push(0xc0);
        let mut rd = &tail[..];
        let n = super::read_int(&mut rd).expect("an integer");
        assert_eq!(rd, &[0xc0], "{bytes:x?}: read exactly its bytes");
        let v = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        assert_eq!(Value::Integer(n), v, "{bytes:x?}");
        assert_eq!((n.as_i64(), n.as_u64()), (v.as_i64(), v.as_u64()));
        for cut in 0..bytes.len() {
            let mut rd = &bytes[..cut];
            assert!(
                super::read_int(&mut rd).is_none(),
                "{bytes:x?} cut at {cut}"
            );
            assert_eq!(rd.len(), cut, "a cut integer leaves the bytes as they were");
        }
    }
    for other in [
        vec![0xc0],
        vec![0xc3],
        vec![0xa1, b'3'],
        vec![0xcb, 0, 0, 0, 0, 0, 0, 0, 0],
    ] {
        let mut rd = &other[..];
        assert!(super::read_int(&mut rd).is_none(), "{other:x?}");
        assert_eq!(rd, &other[..]);
    }
}

/// A reply decoded for our client ([`Event::decode_reply`]) keeps what its
/// calls use: the channel, the kind (or the name of an unknown one), the
/// arguments and a stream's window announcement; it refuses what
/// [`Event::decode`] refuses. A version that is no integer is still no
/// version.
#[test]
fn a_reply_is_read_for_what_the_client_uses() {
    let ctx = crate::TraceContext::new_root();
    let channel = MessageId::random();
    let mut ev = Event::on_channel(&channel, EventKind::Stream, Value::from(7));
    ev.header.traceparent = Some(ctx.trace_parent());
    ev.header
        .extra
        .push((Value::from("x-user"), Value::from("ann")));
    ev.header.extra.push((
        Value::from(crate::channel::WINDOW_MAX_KEY),
        Value::from(500),
    ));
    let bytes = ev.encode();
    let (to, r) = Event::decode_reply(&bytes, DecodeLimits::default()).unwrap();
    assert_eq!(to, Some(channel.clone()));
    assert_eq!(
        (r.kind, r.other.as_deref(), r.name()),
        (Some(EventKind::Stream), None, "STREAM")
    );
    assert_eq!((&r.args, r.window_max), (&Value::from(7), Some(500)));

    // an announcement counts on stream items only; an unknown name is kept
    let mut ok = Event::on_channel(&channel, EventKind::Ok, Value::Nil);
    ok.header.extra = ev.header.extra.clone();
    let (_, r) = Event::decode_reply(&ok.encode(), DecodeLimits::default()).unwrap();
    assert_eq!(
        (r.kind, r.window_max, r.is_final()),
        (Some(EventKind::Ok), None, true)
    );
    let odd_name = Event::on_channel(&channel, "SURPRISE", Value::Nil);
    let (_, r) = Event::decode_reply(&odd_name.encode(), DecodeLimits::default()).unwrap();
    assert_eq!((r.kind, r.name(), r.is_final()), (None, "SURPRISE", false));
    let (to, _) = Event::decode_reply(
        &Event::new("x", Value::Nil).encode(),
        DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(to, None);

    // refused as `decode` refuses: cut, or over the node limit
    for cut in 0..bytes.len() {
        assert!(Event::decode_reply(&bytes[..cut], DecodeLimits::default()).is_err());
    }
    let tight = DecodeLimits { max_nodes: 3 };
    assert!(Event::decode(&bytes, tight).is_err());
    assert!(Event::decode_reply(&bytes, tight).is_err());

    let mut odd = Event::new("echo", Value::Array(vec![]));
    odd.header.version = None;
    odd.header.extra.push((Value::from("v"), Value::from("3")));
    let back = Event::decode(&odd.encode(), DecodeLimits::default()).unwrap();
    assert_eq!(back.header.version, None);
}
