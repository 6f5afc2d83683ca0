//! The gateway over real sockets: an HTTP client (reqwest) → the gateway
//! (axum) → a zerorpc server (ours, or zerorpc-python 0.6.3).
//!
//! One file over 600 lines on purpose: each file under `tests/` is a test
//! binary of its own, linked on its own, so a suite that shares its peers
//! and fixtures stays one binary (split, it would link once per part).

use zerorpc_testkit as common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, within, Proc};
use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value as J};
use zerorpc::{CallError, Client, DynamicService, Server, TraceContext, Value};
use zerorpc_gateway::{Gateway, GatewayOptions};

/// What the `whoami` handler saw of its trace context.
type Seen = Arc<Mutex<Vec<TraceContext>>>;

/// Our test service.
fn service(seen: Seen) -> DynamicService {
    DynamicService::new("testsvc")
        .method("echo", "Return x unchanged.", &["x"], |mut a| async move {
            match a.len() {
                1 => Ok(a.remove(0)),
                n => Err(CallError::bad_args(format!(
                    "echo() takes 1 argument, {n} given"
                ))),
            }
        })
        .method(
            "add",
            "Add a and b.\n\nIntegers only.",
            &["a", "b"],
            |a| async move {
                match (
                    a.first().and_then(Value::as_i64),
                    a.get(1).and_then(Value::as_i64),
                    a.len(),
                ) {
                    (Some(x), Some(y), 2) => Ok(Value::from(x + y)),
                    _ => Err(CallError::bad_args(format!(
                        "add() takes 2 integers, got {a:?}"
                    ))),
                }
            },
        )
        .method("lolita", "Return 42.", &[], |_| async {
            Ok(Value::from(42))
        })
        .method("fail", "Raise ValueError.", &["message"], |a| async move {
            Err(CallError::new(
                "ValueError",
                a.first().and_then(Value::as_str).unwrap_or("?"),
            )
            .with_traceback("Traceback (most recent call last):\n  in fail\nValueError"))
        })
        .method("deny", "Raise PermissionDenied.", &[], |_| async {
            Err(CallError::new("PermissionDenied", "not you"))
        })
        .method(
            "sleep",
            "Sleep, then return.",
            &["seconds"],
            |a| async move {
                let s = a.first().and_then(Value::as_f64).unwrap_or(0.0);
                tokio::time::sleep(Duration::from_secs_f64(s)).await;
                Ok(Value::from(s))
            },
        )
        .method("whoami", "The trace context seen.", &[], move |_| {
            let seen = seen.clone();
            async move {
                let ctx = TraceContext::current();
                if let Some(c) = &ctx {
                    seen.lock().unwrap().push(c.clone());
                }
                Ok(ctx.map_or(Value::Nil, |c| Value::from(c.traceparent())))
            }
        })
        .stream_method("range", "Stream 0..n-1.", &["n"], |a| {
            let n = a.first().and_then(Value::as_u64).unwrap_or(0);
            Ok(futures::stream::iter((0..n).map(|i| Ok(Value::from(i)))))
        })
        .stream_method("explode", "Stream n items, then fail.", &["n"], |a| {
            let n = a.first().and_then(Value::as_u64).unwrap_or(0);
            Ok(futures::stream::iter(
                (0..n)
                    .map(|i| Ok(Value::from(i)))
                    .chain([Err(CallError::new("ValueError", "exploded"))]),
            ))
        })
        .stream_method(
            "trickle",
            "One item, then nothing until cancelled.",
            &[],
            |_| {
                Ok(futures::stream::iter([Ok(Value::from("first"))])
                    .chain(futures::stream::pending()))
            },
        )
}

struct Setup {
    base: String,
    http: reqwest::Client,
    seen: Seen,
    _server: Arc<Server>,
}

async fn serve_gateway(client: Client, opts: GatewayOptions) -> String {
    let gateway = within("gateway start", Gateway::new(client, opts))
        .await
        .expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway.serve(listener));
    format!("http://{addr}")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn setup(opts: GatewayOptions) -> Setup {
    let seen = Seen::default();
    let server = Arc::new(Server::new(service(seen.clone())));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    let client = Client::connect(&ep).await.unwrap();
    Setup {
        base: serve_gateway(client, opts).await,
        http: http(),
        seen,
        _server: server,
    }
}

impl Setup {
    fn post(&self, method: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/{method}", self.base))
    }

    /// POSTs a JSON body; the status and the JSON answer.
    async fn call(&self, method: &str, body: J) -> (StatusCode, J) {
        send(self.post(method).json(&body)).await
    }
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, J) {
    let r = within("request", req.send()).await.expect("http");
    let status = r.status();
    let text = within("body", r.text()).await.expect("body");
    let j = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, j)
}

/// The error object of an error answer, checked for its shape.
fn error_of(j: &J) -> (&str, &str, &str) {
    let e = &j["error"];
    (
        e["name"]
            .as_str()
            .unwrap_or_else(|| panic!("no error name: {j}")),
        e["message"].as_str().expect("message"),
        e["traceback"].as_str().expect("traceback"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_with_arrays_named_arguments_and_nothing() {
    let s = setup(GatewayOptions::default()).await;
    assert_eq!(
        s.call("add", json!([2, 40])).await,
        (StatusCode::OK, json!(42))
    );
    assert_eq!(
        s.call("add", json!({"b": 40, "a": 2})).await,
        (StatusCode::OK, json!(42))
    );
    // no arguments: an empty body, null, [] or {}
    let (st, j) = send(s.post("lolita")).await;
    assert_eq!((st, j), (StatusCode::OK, json!(42)));
    for body in [json!(null), json!([]), json!({})] {
        assert_eq!(s.call("lolita", body).await, (StatusCode::OK, json!(42)));
    }
    // values both ways: a nested value, bytes as {"$base64"}
    let v = json!({"k": [1, -2.5, "é", null, true, {"n": {}}], "big": u64::MAX});
    assert_eq!(s.call("echo", json!([v])).await, (StatusCode::OK, v));
    let bytes = json!({"$base64": "AP8B"});
    assert_eq!(
        s.call("echo", json!({"x": bytes})).await,
        (StatusCode::OK, bytes)
    );
    // the answer is JSON
    let r = s.post("lolita").send().await.unwrap();
    assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    // the index lists the methods with their arguments
    let (st, index) = send(s.http.get(format!("{}/", s.base))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(index["service"], "testsvc");
    let add = index["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "add")
        .unwrap();
    assert_eq!(add["args"], json!(["a", "b"]));
    assert_eq!(add["doc"], "Add a and b.\n\nIntegers only.");
}

/// The body's lines, read to the end.
async fn lines(r: reqwest::Response) -> Vec<String> {
    let text = within("stream body", r.text()).await.unwrap();
    text.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_as_ndjson_sse_or_one_array() {
    let s = setup(GatewayOptions::default()).await;
    let ndjson = |m: &str, body: J| {
        s.post(m)
            .header(ACCEPT, "application/x-ndjson")
            .json(&body)
            .send()
    };
    let sse = |m: &str, body: J| {
        s.post(m)
            .header(ACCEPT, "text/event-stream")
            .json(&body)
            .send()
    };

    let r = within("ndjson", ndjson("range", json!([5]))).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], "application/x-ndjson");
    assert_eq!(lines(r).await, ["0", "1", "2", "3", "4"]);
    // a long stream, in order (more than the client's credit window)
    let r = within("ndjson", ndjson("range", json!({"n": 1000})))
        .await
        .unwrap();
    let got: Vec<u64> = lines(r).await.iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());

    let r = within("sse", sse("range", json!([3]))).await.unwrap();
    assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
    assert_eq!(
        within("sse body", r.text()).await.unwrap(),
        "data: 0\n\ndata: 1\n\ndata: 2\n\nevent: end\ndata: {\"items\":3}\n\n"
    );

    // failing midway: the items, then the error
    let r = within("ndjson", ndjson("explode", json!([2])))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let l = lines(r).await;
    assert_eq!(l[..2], ["0", "1"]);
    let last: J = serde_json::from_str(&l[2]).unwrap();
    assert_eq!(error_of(&last).0, "ValueError");
    assert_eq!(error_of(&last).1, "exploded");
    assert_eq!(l.len(), 3);
    let r = within("sse", sse("explode", json!([2]))).await.unwrap();
    let text = within("sse body", r.text()).await.unwrap();
    let (items, error) = text.split_once("event: error\ndata: ").expect(&text);
    assert_eq!(items, "data: 0\n\ndata: 1\n\n");
    let e: J = serde_json::from_str(error.trim_end()).unwrap();
    assert_eq!(
        (e["name"].as_str(), e["message"].as_str()),
        (Some("ValueError"), Some("exploded"))
    );
    assert!(!text.contains("event: end"), "{text}");

    // without those Accept values: one array, or the error
    assert_eq!(
        s.call("range", json!([4])).await,
        (StatusCode::OK, json!([0, 1, 2, 3]))
    );
    assert_eq!(
        s.call("range", json!([0])).await,
        (StatusCode::OK, json!([]))
    );
    let (st, j) = s.call("explode", json!([2])).await;
    assert_eq!(
        (st, error_of(&j).0),
        (StatusCode::INTERNAL_SERVER_ERROR, "ValueError")
    );
    // a method that does not stream, asked for a stream: one item
    let r = within("ndjson", ndjson("echo", json!([[1, 2]])))
        .await
        .unwrap();
    assert_eq!(lines(r).await, ["[1,2]"]);
    let r = within("sse", sse("lolita", json!(null))).await.unwrap();
    assert_eq!(
        within("sse body", r.text()).await.unwrap(),
        "data: 42\n\nevent: end\ndata: {\"items\":1}\n\n"
    );
    // an error before the first item is an HTTP error
    let r = within("ndjson", ndjson("nope", json!([]))).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // items are sent as they arrive: the first one comes while the stream
    // is still open
    let r = within("trickle", ndjson("trickle", json!([])))
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let first = within("first item", body.next()).await.unwrap().unwrap();
    assert_eq!(&first[..], b"\"first\"\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collected_stream_is_bounded() {
    let s = setup(GatewayOptions::default().max_body(1024)).await;
    let (st, j) = s.call("range", json!([100_000])).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY);
    let (name, message, _) = error_of(&j);
    assert_eq!(name, "ResponseTooLarge");
    assert!(message.contains("x-ndjson"), "{message}");
    // streamed, the same result passes
    let r = within(
        "ndjson",
        s.post("range")
            .header(ACCEPT, "application/x-ndjson")
            .json(&json!([100_000]))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(lines(r).await.len(), 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_statuses() {
    let s = setup(GatewayOptions::default().timeout(Duration::from_millis(500))).await;

    let (st, j) = s.call("nope", json!([])).await;
    assert_eq!(
        (st, error_of(&j).0, error_of(&j).1),
        (StatusCode::NOT_FOUND, "NameError", "nope")
    );
    // named arguments to an unknown method: the same
    let (st, j) = s.call("nope", json!({"a": 1})).await;
    assert_eq!((st, error_of(&j).0), (StatusCode::NOT_FOUND, "NameError"));

    let (st, j) = s.call("add", json!([1])).await;
    assert_eq!((st, error_of(&j).0), (StatusCode::BAD_REQUEST, "TypeError"));
    let (st, j) = s.call("add", json!({"a": 1, "c": 2})).await;
    assert_eq!((st, error_of(&j).0), (StatusCode::BAD_REQUEST, "TypeError"));
    assert!(error_of(&j).1.contains("'c'"), "{j}");
    let (st, j) = s.call("add", json!({"b": 2})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(error_of(&j).1.contains("'a'"), "{j}");

    let (st, j) = s.call("fail", json!(["boom"])).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    let (name, message, traceback) = error_of(&j);
    assert_eq!((name, message), ("ValueError", "boom"));
    assert!(traceback.contains("in fail"), "{traceback}");

    let (st, j) = s.call("deny", json!([])).await;
    assert_eq!(
        (st, error_of(&j).0),
        (StatusCode::FORBIDDEN, "PermissionDenied")
    );

    // a handler that sleeps far past the gateway's timeout
    let (st, j) = s.call("sleep", json!([30])).await;
    assert_eq!(
        (st, error_of(&j).0),
        (StatusCode::GATEWAY_TIMEOUT, "TimeoutExpired")
    );
    let r = within(
        "ndjson",
        s.post("sleep")
            .header(ACCEPT, "application/x-ndjson")
            .json(&json!([30]))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);

    // a wrong HTTP method, a wrong route
    let r = s.http.get(format!("{}/add", s.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    let (st, j) = send(s.http.get(format!("{}/add", s.base))).await;
    assert_eq!(
        (st, error_of(&j).0),
        (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed")
    );
    let (st, _) = send(s.http.delete(format!("{}/openapi.json", s.base))).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    let (st, j) = send(s.post("a/b").json(&json!([]))).await;
    assert_eq!((st, error_of(&j).0), (StatusCode::NOT_FOUND, "NotFound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_error_statuses_by_name() {
    let seen = Seen::default();
    let svc = service(seen).method("brew", "", &[], |_| async {
        Err(CallError::new("TeapotError", "short and stout"))
    });
    let server = Arc::new(Server::new(svc));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let sv = server.clone();
    tokio::spawn(async move { sv.run().await });
    let opts = GatewayOptions::default().map_error("TeapotError", StatusCode::IM_A_TEAPOT);
    let base = serve_gateway(Client::connect(&ep).await.unwrap(), opts).await;
    let (st, j) = send(http().post(format!("{base}/brew"))).await;
    assert_eq!(
        (st, error_of(&j).0),
        (StatusCode::IM_A_TEAPOT, "TeapotError")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_oversized_bodies() {
    let s = setup(GatewayOptions::default().max_body(1024)).await;
    for bad in ["[1,", "{\"a\": }", "42", "\"x\"", "[1] trailing"] {
        let (st, j) = send(s.post("echo").body(bad)).await;
        assert_eq!(
            (st, error_of(&j).0),
            (StatusCode::BAD_REQUEST, "BadRequest"),
            "{bad}"
        );
    }
    // deep nesting is refused, not a crash
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let s2 = setup(GatewayOptions::default()).await;
    let (st, _) = send(s2.post("echo").body(deep)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // too large, with a Content-Length and chunked
    let big = format!("[\"{}\"]", "x".repeat(2000));
    let (st, j) = send(s.post("echo").body(big.clone())).await;
    assert_eq!(
        (st, error_of(&j).0),
        (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge")
    );
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let (st, _) = send(
        s.post("echo")
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks))),
    )
    .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    // just under the limit passes
    let ok = format!("[\"{}\"]", "x".repeat(1000));
    let (st, j) = send(s.post("echo").body(ok)).await;
    assert_eq!((st, j.as_str().map(str::len)), (StatusCode::OK, Some(1000)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_has_a_path_per_method() {
    let s = setup(GatewayOptions::default()).await;
    let r = within(
        "openapi",
        s.http.get(format!("{}/openapi.json", s.base)).send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: openapiv3::OpenAPI =
        serde_json::from_str(&r.text().await.unwrap()).expect("OpenAPI 3.0");
    assert_eq!(doc.info.title, "testsvc");
    let methods = [
        "echo", "add", "lolita", "fail", "deny", "sleep", "whoami", "range", "explode", "trickle",
    ];
    assert_eq!(doc.paths.paths.len(), methods.len());
    for m in methods {
        let item = doc.paths.paths[&format!("/{m}")]
            .as_item()
            .expect("inline path");
        assert!(item.get.is_none());
        let op = item.post.as_ref().expect("POST");
        assert_eq!(op.operation_id.as_deref(), Some(m));
        for code in [200, 400, 404, 408, 413, 500, 503, 504] {
            assert!(
                op.responses
                    .responses
                    .contains_key(&openapiv3::StatusCode::Code(code)),
                "{m} {code}"
            );
        }
    }
    let add = doc.paths.paths["/add"]
        .as_item()
        .unwrap()
        .post
        .as_ref()
        .unwrap();
    assert_eq!(add.summary.as_deref(), Some("Add a and b."));
    assert_eq!(
        add.description.as_deref(),
        Some("Add a and b.\n\nIntegers only.")
    );
    let body = add.request_body.as_ref().unwrap().as_item().unwrap();
    let schema = body.content["application/json"]
        .schema
        .as_ref()
        .unwrap()
        .as_item()
        .unwrap();
    let openapiv3::SchemaKind::OneOf { one_of } = &schema.schema_kind else {
        panic!("{schema:?}")
    };
    let mut kinds = one_of.iter().map(|s| &s.as_item().unwrap().schema_kind);
    let Some(openapiv3::SchemaKind::Type(openapiv3::Type::Array(arr))) = kinds.next() else {
        panic!("array first: {one_of:?}")
    };
    assert_eq!((arr.min_items, arr.max_items), (Some(2), Some(2)));
    let Some(openapiv3::SchemaKind::Type(openapiv3::Type::Object(obj))) = kinds.next() else {
        panic!("object second: {one_of:?}")
    };
    assert_eq!(obj.properties.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(obj.required, ["a", "b"]);
    assert!(doc.components.as_ref().unwrap().security_schemes.is_empty());
    assert!(doc.security.is_none());

    // with a token: the bearer scheme, required everywhere
    let s = setup(GatewayOptions::default().token("t0ken")).await;
    let (st, _) = send(s.http.get(format!("{}/openapi.json", s.base))).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let r = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    let doc: openapiv3::OpenAPI = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let schemes = &doc.components.as_ref().unwrap().security_schemes;
    match schemes["bearer"].as_item().unwrap() {
        openapiv3::SecurityScheme::HTTP { scheme, .. } => assert_eq!(scheme, "bearer"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        doc.security.as_ref().unwrap()[0].keys().collect::<Vec<_>>(),
        ["bearer"]
    );
    let op = doc.paths.paths["/add"]
        .as_item()
        .unwrap()
        .post
        .as_ref()
        .unwrap();
    assert!(op
        .responses
        .responses
        .contains_key(&openapiv3::StatusCode::Code(401)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_auth_on_every_route() {
    let s = setup(GatewayOptions::default().token("s3cret")).await;
    let (st, j) = s.call("lolita", json!([])).await;
    assert_eq!(
        (st, error_of(&j).0),
        (StatusCode::UNAUTHORIZED, "Unauthorized")
    );
    let r = s.post("lolita").send().await.unwrap();
    assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
    for wrong in [
        "Bearer s3cre",
        "Bearer s3cret2",
        "Basic czNjcmV0",
        "s3cret",
        "Bearer ",
    ] {
        let r = s
            .post("lolita")
            .header(AUTHORIZATION, wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{wrong}");
        assert!(r.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }
    let (st, j) = send(s.post("lolita").bearer_auth("s3cret")).await;
    assert_eq!((st, j), (StatusCode::OK, json!(42)));
    let (st, _) = send(s.post("lolita").header(AUTHORIZATION, "bearer s3cret")).await;
    assert_eq!(st, StatusCode::OK);
    for path in ["/", "/openapi.json", "/nothing/here"] {
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let r = s
        .http
        .get(format!("{}/", s.base))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_carried_to_the_service() {
    let s = setup(GatewayOptions::default()).await;
    let caller = TraceContext::new_root();
    let r = within(
        "traced call",
        s.post("whoami")
            .header("traceparent", caller.traceparent())
            .header("tracestate", "congo=t61rcWkgMzE")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let gateway = TraceContext::parse(r.headers()["traceparent"].to_str().unwrap(), None).unwrap();
    assert_eq!(r.headers()["tracestate"], "congo=t61rcWkgMzE");
    let handler_tp: String = r.json().await.unwrap();
    let handler = TraceContext::parse(&handler_tp, None).unwrap();
    // one trace: the caller's, a span of the gateway's, the handler's
    assert_eq!(gateway.trace_id, caller.trace_id);
    assert_eq!(handler.trace_id, caller.trace_id);
    assert_ne!(gateway.span_id, caller.span_id);
    assert_ne!(handler.span_id, gateway.span_id);
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].trace_id, caller.trace_id);
    assert!(
        seen[0].parent_id.is_some(),
        "the handler's span has a parent"
    );
    assert_eq!(seen[0].tracestate.as_deref(), Some("congo=t61rcWkgMzE"));

    // untraced: the gateway makes no span (no traceparent comes back),
    // and the call is a root call of the gateway's client: a trace of its
    // own, unsampled (ClientOptions::trace_roots, on by default)
    let r = s.post("whoami").send().await.unwrap();
    assert!(r.headers().get("traceparent").is_none());
    let tp: String = r.json().await.unwrap();
    let root = TraceContext::parse(&tp, None).unwrap();
    assert_ne!(root.trace_id, caller.trace_id);
    assert!(!root.sampled);
    // a malformed traceparent is ignored
    let r = s
        .post("whoami")
        .header("traceparent", "00-zz-00-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("traceparent").is_none());
}

// ------------------------------------------------------------ Python

const PY_SERVER: &str = common::PY_DEMO_SERVER;

/// zerorpc-python 0.6.3 reads argument names with `inspect.getargspec`,
/// gone since Python 3.11; this shim (a common one) brings it back.
const GETARGSPEC_SHIM: &str =
    "import inspect\ninspect.getargspec = lambda f: tuple(inspect.getfullargspec(f))[:4]\n";
/// And this makes any Python behave like 3.11+ without the shim.
const NO_GETARGSPEC: &str = "import inspect\ninspect.__dict__.pop('getargspec', None)\n";

async fn python_gateway(prelude: &str) -> (Proc, String) {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let code = format!("{prelude}{PY_SERVER}");
    let ep2 = ep.clone();
    let py = tokio::task::spawn_blocking(move || {
        let mut py = Proc::python(&code, &[&ep2, "5.0"]);
        py.wait_line("READY");
        py
    })
    .await
    .unwrap();
    let client = Client::connect(&ep).await.unwrap();
    (py, serve_gateway(client, GatewayOptions::default()).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_server_behind_the_gateway() {
    let (_py, base) = python_gateway(GETARGSPEC_SHIM).await;
    let h = http();
    let post = |m: &str| h.post(format!("{base}/{m}"));
    assert_eq!(
        send(post("add").json(&json!([2, 40]))).await,
        (StatusCode::OK, json!(42))
    );
    // named, by Python's introspection (its `self` is not an argument)
    assert_eq!(
        send(post("add").json(&json!({"b": "b", "a": "a"}))).await,
        (StatusCode::OK, json!("ab"))
    );
    let (st, j) = send(post("add").json(&json!({"self": 1, "a": 1}))).await;
    assert_eq!((st, error_of(&j).0), (StatusCode::BAD_REQUEST, "TypeError"));
    // Python's value types: bytes as text or base64
    let (st, j) = send(post("types")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(j["str"], "PyDemo");
    assert_eq!(j["bytes"], json!({"$base64": "AP8="}));
    assert_eq!(
        (j["int"].clone(), j["float"].clone()),
        (json!(-7), json!(2.5))
    );
    // a Python exception
    let (st, j) = send(post("fail").json(&json!({"message": "boom"}))).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    let (name, message, traceback) = error_of(&j);
    assert_eq!((name, message), ("ValueError", "boom"));
    assert!(traceback.contains("Traceback"), "{traceback}");
    // Python's own errors: unknown method, wrong argument count
    let (st, j) = send(post("nope").json(&json!([]))).await;
    assert_eq!((st, error_of(&j).0), (StatusCode::NOT_FOUND, "NameError"));
    let (st, j) = send(post("add").json(&json!([1]))).await;
    assert_eq!((st, error_of(&j).0), (StatusCode::BAD_REQUEST, "TypeError"));
    // a Python stream
    let r = within(
        "py stream",
        post("range")
            .header(ACCEPT, "application/x-ndjson")
            .json(&json!({"n": 3}))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(lines(r).await, ["0", "1", "2"]);
    // and its description
    let (_, doc) = send(h.get(format!("{base}/openapi.json"))).await;
    assert_eq!(doc["info"]["title"], "PyDemo");
    let add = &doc["paths"]["/add"]["post"];
    assert_eq!(add["summary"], "Add a and b.");
    let props =
        &add["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]["properties"];
    assert_eq!(
        props.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_server_that_cannot_tell_argument_names() {
    // (zerorpc-python 0.6.3 on Python >= 3.11 as it is)
    let (_py, base) = python_gateway(NO_GETARGSPEC).await;
    let h = http();
    let post = |m: &str| h.post(format!("{base}/{m}"));
    assert_eq!(
        send(post("add").json(&json!([2, 40]))).await,
        (StatusCode::OK, json!(42))
    );
    let (st, j) = send(post("add").json(&json!({"a": 2, "b": 40}))).await;
    assert_eq!((st, error_of(&j).0), (StatusCode::BAD_REQUEST, "TypeError"));
    assert!(error_of(&j).1.contains("JSON array"), "{j}");
    // the methods are still listed (by _zerorpc_list), their arguments not
    let (_, doc) = send(h.get(format!("{base}/openapi.json"))).await;
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        ["/add", "/echo", "/fail", "/range", "/slow", "/types"]
    );
    assert_eq!(
        doc["paths"]["/add"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["type"],
        "array"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_struct_result_is_a_json_object_with_field_names() {
    // The demo's `record` returns a `#[derive(Serialize)]` struct.
    let server = Arc::new(Server::new(zerorpc::demo::Demo));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    let base = serve_gateway(
        Client::connect(&ep).await.unwrap(),
        GatewayOptions::default(),
    )
    .await;
    let (st, j) = send(
        http()
            .post(format!("{base}/record"))
            .json(&json!(["kiwi", 1.5])),
    )
    .await;
    assert_eq!(
        (st, j),
        (StatusCode::OK, json!({"name": "kiwi", "value": 1.5}))
    );
}
