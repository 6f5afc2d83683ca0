//! The gateway against a real server, in process.

use super::*;

#[test]
fn tokens_compare_whole() {
    assert!(same_token(b"s3cret", b"s3cret"));
    for bad in [&b""[..], b"s3cre", b"s3cret!", b"S3cret", b"s3cres"] {
        assert!(!same_token(bad, b"s3cret"), "{bad:?}");
    }
}

#[test]
fn accept_chooses_the_format() {
    let h = |v: &str| {
        let mut m = HeaderMap::new();
        m.insert(ACCEPT, HeaderValue::from_str(v).unwrap());
        m
    };
    let d = StreamFormat::Json;
    assert_eq!(negotiate(&HeaderMap::new(), d), d);
    assert_eq!(negotiate(&h("*/*"), StreamFormat::Sse), StreamFormat::Sse);
    assert_eq!(negotiate(&h("text/event-stream"), d), StreamFormat::Sse);
    assert_eq!(
        negotiate(&h("application/x-ndjson; q=1, text/event-stream"), d),
        StreamFormat::Ndjson
    );
    assert_eq!(
        negotiate(&h("application/json"), StreamFormat::Ndjson),
        StreamFormat::Json
    );
}

/// Values in `v`, as the server's decoder counts them.
fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(nodes).sum(),
        Value::Map(m) => m.iter().map(|(k, v)| nodes(k) + nodes(v)).sum(),
        _ => 0,
    }
}

/// The event the gateway's client sends for `args`, with a trace
/// context in its header, decoded as a server decodes it.
fn server_decodes(args: Vec<Value>) -> Result<(), zerorpc::EventError> {
    let mut ev = zerorpc::Event::new("method", Value::Array(args));
    let tc = TraceContext::new_root();
    ev.header.set("traceparent", Value::from(tc.traceparent()));
    ev.header.set("tracestate", Value::from("vendor=value"));
    zerorpc::Event::decode(&ev.encode(), DecodeLimits::default()).map(|_| ())
}

#[test]
fn bodies_are_counted_as_the_server_counts() {
    for body in [
        &br#"[1, "x", null, [true, 2.5], {"a": [1, {"b": 2}], "c": null}]"#[..],
        br#"[{"$base64": "AP8="}, {"$base64": "!"}, {"$base64": "AP8=", "x": 1}]"#,
        br#"[{"x": 1, "$base64": "AP8="}, {"$base64": 3}, [[[]]], {}]"#,
        br#"{"a": [1, 2, 3], "b": {"$base64": "AP8="}}"#,
    ] {
        let at = |max_values| {
            json::args_from_slice(
                body,
                json::Limits {
                    max_values,
                    max_depth: 10,
                },
            )
        };
        let Ok(args) = at(1000) else { panic!() };
        let vals: Vec<Value> = match args {
            json::BodyArgs::Positional(a) => a,
            json::BodyArgs::Named(m) => m.into_values().collect(),
        };
        let n: usize = vals.iter().map(nodes).sum();
        assert!(at(n).is_ok(), "{}", String::from_utf8_lossy(body));
        assert_eq!(
            at(n - 1),
            Err(json::BodyError::TooManyValues(n - 1)),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn the_gateway_sends_only_what_the_server_decodes() {
    let lim = GatewayOptions::default().body_limits();
    // As many values as a body may hold...
    let zeros = vec!["0"; lim.max_values - 1].join(",");
    let most = format!("[[{zeros}]]");
    let Ok(json::BodyArgs::Positional(args)) = json::args_from_slice(most.as_bytes(), lim) else {
        panic!("refused")
    };
    server_decodes(args).expect("the server refuses the most values the gateway sends");
    let over = format!("[[{zeros},0]]");
    assert_eq!(
        parse_body(over.as_bytes(), lim).err().map(|e| e.status),
        Some(StatusCode::PAYLOAD_TOO_LARGE)
    );
    // ...and as deep.
    let deep = |d: usize| format!("{}\"x\"{}", "[".repeat(d), "]".repeat(d));
    let Ok(json::BodyArgs::Positional(args)) =
        json::args_from_slice(deep(lim.max_depth).as_bytes(), lim)
    else {
        panic!("refused")
    };
    server_decodes(args).expect("the server refuses the deepest body the gateway sends");
    for d in [lim.max_depth + 1, 10_000] {
        let e = parse_body(deep(d).as_bytes(), lim).expect_err("too deep");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.error.message.contains("deeper than"),
            "{}",
            e.error.message
        );
    }
}

#[test]
fn bodies_parse_or_say_why() {
    use json::BodyArgs::{Named, Positional};
    let lim = GatewayOptions::default().body_limits();
    let parse = |b: &[u8]| parse_body(b, lim);
    assert!(matches!(parse(b""), Ok(Positional(a)) if a.is_empty()));
    assert!(matches!(parse(b" null "), Ok(Positional(a)) if a.is_empty()));
    assert!(matches!(parse(b"[1]"), Ok(Positional(a)) if a == [Value::from(1)]));
    assert!(matches!(parse(b"{\"a\": 1}"), Ok(Named(_))));
    for bad in [&b"[1,"[..], b"42", b"\"x\"", b"{]", b"[1] 2"] {
        let e = parse(bad).err().unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
