//! The OTLP sink against a real OTLP/gRPC receiver started in the test (a
//! tonic `TraceService` that keeps what it is sent): a trace through
//! services A → B → C, the record → span mapping, malformed records, and
//! a collector that is not there.
//!
//! One file over 600 lines on purpose: each file under `tests/` is a test
//! binary of its own, linked on its own, so a suite that shares its peers
//! and fixtures stays one binary (split, it would link once per part).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanKind as OtelKind, Status};
use opentelemetry::Value as OtelValue;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue as ProtoKeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use zerorpc::record::Side;
use zerorpc::record::{Outcome, Record, Recorder, TraceSink};
use zerorpc::{CallError, Client, ClientOptions, Server, ServerOptions, TraceContext, Value};
use zerorpc_otlp::{span_data, OtlpError, OtlpSink};

/// How long anything may take on a busy machine.
const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------
// The receiver

/// A span as received, with its resource's attributes.
#[derive(Debug, Clone)]
struct Got {
    resource: HashMap<String, Any>,
    span: Span,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&Any> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn str(&self, key: &str) -> Option<&str> {
        match self.attr(key)? {
            Any::StringValue(s) => Some(s),
            _ => None,
        }
    }

    fn status(&self) -> (StatusCode, &str) {
        match &self.span.status {
            Some(s) => (s.code(), s.message.as_str()),
            None => (StatusCode::Unset, ""),
        }
    }
}

fn attrs(kvs: &[ProtoKeyValue]) -> HashMap<String, Any> {
    kvs.iter()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.as_ref()?.value.clone()?)))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The trace service: keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let resource = rs
                .resource
                .map(|r| attrs(&r.attributes))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    got.push(Got {
                        resource: resource.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC receiver on a loopback port, stopped when dropped.
struct Collector {
    endpoint: String,
    received: Receiver,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Collector {
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let received = Receiver::default();
        let service = TraceServiceServer::new(received.clone());
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                eprintln!("test receiver stopped: {e}");
            }
        });
        Collector {
            endpoint,
            received,
            server,
        }
    }

    fn all(&self) -> Vec<Got> {
        self.received.spans.lock().unwrap().clone()
    }

    /// The spans of `trace` (hex) once there are at least `n`, polling
    /// (the machine may be slow: a generous deadline, no fixed sleep).
    async fn spans_of(&self, trace: &str, n: usize) -> Vec<Got> {
        let t0 = Instant::now();
        loop {
            let got: Vec<Got> = self
                .all()
                .into_iter()
                .filter(|g| hex(&g.span.trace_id) == trace)
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                t0.elapsed() < DEADLINE,
                "{} of {n} spans of trace {trace} after {DEADLINE:?}: {got:#?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------------
// Three services: A calls B calls C, C raises for negative input

struct C;

#[zerorpc::service(name = "C")]
impl C {
    /// x, unless it is negative.
    pub fn check(&self, x: i64) -> Result<i64, CallError> {
        if x < 0 {
            Err(CallError::new("ValueError", "negative"))
        } else {
            Ok(x)
        }
    }
}

struct B {
    c: Client,
}

#[zerorpc::service(name = "B")]
impl B {
    /// Asks C.
    pub async fn relay(&self, x: i64) -> Result<i64, CallError> {
        let v = self.c.call("check", vec![x.into()]).await?;
        Ok(v.as_i64().unwrap_or_default() * 10)
    }
}

struct A {
    b: Client,
}

#[zerorpc::service(name = "A")]
impl A {
    /// Asks B.
    pub async fn top(&self, x: i64) -> Result<i64, CallError> {
        let v = self.b.call("relay", vec![x.into()]).await?;
        Ok(v.as_i64().unwrap_or_default() + 1)
    }
}

async fn serve(service: impl zerorpc::IntoService, recorder: &Recorder) -> String {
    let s = Arc::new(Server::with_options(
        service,
        ServerOptions {
            recorder: Some(recorder.clone()),
            ..Default::default()
        },
    ));
    let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    tokio::spawn(async move { s.run().await });
    ep
}

async fn client(ep: &str, recorder: &Recorder) -> Client {
    Client::connect_with(
        &[ep],
        ClientOptions {
            recorder: Some(recorder.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn find<'a>(spans: &'a [Got], kind: SpanKind, method: &str) -> &'a Got {
    spans
        .iter()
        .find(|g| g.span.kind() == kind && g.str("rpc.method") == Some(method))
        .unwrap_or_else(|| panic!("no {kind:?} span of {method}: {spans:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_through_three_services_reaches_the_collector() {
    let collector = Collector::start().await;
    let sink = OtlpSink::builder()
        .endpoint(&collector.endpoint)
        .service_name("otlp-test")
        .build()
        .unwrap();
    let recorder = Recorder::new(sink.clone(), 10_000);
    let c_ep = serve(C, &recorder).await;
    let b_ep = serve(
        B {
            c: client(&c_ep, &recorder).await,
        },
        &recorder,
    )
    .await;
    let a_ep = serve(
        A {
            b: client(&b_ep, &recorder).await,
        },
        &recorder,
    )
    .await;
    let caller = client(&a_ep, &recorder).await;

    for (x, ok) in [(4i64, true), (-1, false)] {
        let root = TraceContext::new_root();
        let id = root.trace_id_hex();
        let r = root.clone().scope(caller.call("top", vec![x.into()])).await;
        assert_eq!(r.is_ok(), ok, "{r:?}");
        if ok {
            assert_eq!(r.unwrap(), Value::from(41));
        }
        // Six spans: a client and a server side for each hop.
        let spans = collector.spans_of(&id, 6).await;
        assert_eq!(spans.len(), 6, "{spans:#?}");
        let call_a = find(&spans, SpanKind::Client, "top");
        let serve_a = find(&spans, SpanKind::Server, "top");
        let call_b = find(&spans, SpanKind::Client, "relay");
        let serve_b = find(&spans, SpanKind::Server, "relay");
        let call_c = find(&spans, SpanKind::Client, "check");
        let serve_c = find(&spans, SpanKind::Server, "check");
        // The parent links make the chain, starting at the root's span.
        assert_eq!(hex(&call_a.span.parent_span_id), root.span_id_hex());
        let chain = [call_a, serve_a, call_b, serve_b, call_c, serve_c];
        for pair in chain.windows(2) {
            assert_eq!(
                pair[1].span.parent_span_id, pair[0].span.span_id,
                "{} is not the child of {}",
                pair[1].span.name, pair[0].span.name
            );
        }
        assert_eq!(serve_a.span.name, "A/top");
        assert_eq!(serve_c.span.name, "C/check");
        assert_eq!(call_a.span.name, format!("{a_ep}/top"));
        for g in &spans {
            assert_eq!(g.str("rpc.system.name"), Some("zerorpc"), "{g:#?}");
            assert_eq!(g.str("rpc.system"), Some("zerorpc"), "{g:#?}");
            assert!(
                g.span.end_time_unix_nano >= g.span.start_time_unix_nano,
                "{g:#?}"
            );
            assert!(g.span.start_time_unix_nano > 0, "{g:#?}");
            let res = |k: &str| match g.resource.get(k) {
                Some(Any::StringValue(s)) => s.clone(),
                other => panic!("resource {k}: {other:?}"),
            };
            assert_eq!(res("service.name"), "otlp-test");
            assert!(!res("host.name").is_empty());
            assert!(!res("process.executable.name").is_empty());
            assert_eq!(
                g.resource.get("process.pid"),
                Some(&Any::IntValue(i64::from(std::process::id())))
            );
        }
        assert_eq!(serve_b.str("rpc.service"), Some("B"));
        assert_eq!(call_b.str("server.address"), Some("127.0.0.1"));
        assert!(matches!(call_b.attr("server.port"), Some(Any::IntValue(p)) if *p > 0));
        // Each side lasts at least as long as what it waited on.
        let dur = |g: &Got| g.span.end_time_unix_nano - g.span.start_time_unix_nano;
        assert!(dur(call_a) >= dur(serve_a) && dur(serve_a) >= dur(call_b));
        if ok {
            for g in &spans {
                assert_eq!(g.status().0, StatusCode::Ok, "{g:#?}");
                assert_eq!(g.str("zerorpc.outcome"), Some("OK"));
                assert_eq!(g.attr("error.type"), None);
            }
        } else {
            // C raised, and every side up the chain saw that error.
            for g in &spans {
                assert_eq!(
                    g.status(),
                    (StatusCode::Error, "ValueError: negative"),
                    "{g:#?}"
                );
                assert_eq!(g.str("error.type"), Some("ValueError"), "{g:#?}");
                assert_eq!(g.str("zerorpc.outcome"), Some("ERR"));
                let ex = g
                    .span
                    .events
                    .iter()
                    .find(|e| e.name == "exception")
                    .unwrap_or_else(|| panic!("no exception event: {g:#?}"));
                let ex = attrs(&ex.attributes);
                assert_eq!(
                    ex.get("exception.type"),
                    Some(&Any::StringValue("ValueError".into()))
                );
                assert_eq!(
                    ex.get("exception.message"),
                    Some(&Any::StringValue("negative".into()))
                );
            }
        }
    }
    assert_eq!(recorder.dropped(), 0);
    assert_eq!(sink.skipped(), 0);
}

// ---------------------------------------------------------------------
// The mapping, without a network

fn record(side: Side, outcome: Outcome) -> Record {
    Record {
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        span_id: "b7ad6b7169203331".into(),
        parent_id: Some("00f067aa0ba902b7".into()),
        side,
        service: "calc".into(),
        method: "add".into(),
        peer: "tcp://127.0.0.1:4242".into(),
        process: "calcd[123]".into(),
        host: "box1".into(),
        start_us: 1_700_000_000_123_456,
        duration_us: 1_500,
        outcome,
        user: None,
        payload: None,
        traceback: None,
    }
}

#[test]
fn the_callers_user_becomes_enduser_id() {
    let mut r = record(Side::Server, Outcome::Ok);
    assert!(attr(&zerorpc_otlp::span_data(&r).unwrap(), "enduser.id").is_none());
    r.user = Some("alice".into());
    let span = zerorpc_otlp::span_data(&r).unwrap();
    assert_eq!(
        attr(&span, "enduser.id").map(|v| v.to_string()),
        Some("alice".into())
    );
}

fn attr<'a>(span: &'a opentelemetry_sdk::trace::SpanData, key: &str) -> Option<&'a OtelValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[test]
fn records_map_to_spans() {
    // A server side that answered.
    let s = span_data(&record(Side::Server, Outcome::Ok)).unwrap();
    assert_eq!(
        s.span_context.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(s.span_context.span_id().to_string(), "b7ad6b7169203331");
    assert_eq!(s.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(s.parent_span_is_remote);
    assert!(s.span_context.is_sampled());
    assert_eq!(s.span_kind, OtelKind::Server);
    assert_eq!(s.name, "calc/add");
    let start = std::time::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
    assert_eq!(s.start_time, start);
    assert_eq!(s.end_time, start + Duration::from_micros(1_500));
    assert_eq!(s.status, Status::Ok);
    for (k, v) in [
        ("rpc.system.name", "zerorpc"),
        ("rpc.system", "zerorpc"),
        ("rpc.method", "add"),
        ("rpc.service", "calc"),
        ("zerorpc.outcome", "OK"),
        ("zerorpc.peer", "tcp://127.0.0.1:4242"),
    ] {
        assert_eq!(attr(&s, k), Some(&OtelValue::from(v)), "{k}");
    }
    assert_eq!(attr(&s, "error.type"), None);
    assert!(s.events.is_empty());

    // A client side: the peer is the server's address; no rpc.service
    // (a client record's service is the endpoint).
    let c = span_data(&record(Side::Client, Outcome::Stream { items: 7 })).unwrap();
    assert_eq!(c.span_kind, OtelKind::Client);
    assert!(!c.parent_span_is_remote);
    assert_eq!(c.status, Status::Ok);
    assert_eq!(attr(&c, "zerorpc.stream.items"), Some(&OtelValue::I64(7)));
    assert_eq!(attr(&c, "zerorpc.outcome"), Some(&"STREAM".into()));
    assert_eq!(attr(&c, "server.address"), Some(&"127.0.0.1".into()));
    assert_eq!(attr(&c, "server.port"), Some(&OtelValue::I64(4242)));
    assert_eq!(attr(&c, "rpc.service"), None);

    // A root has no parent.
    let mut r = record(Side::Client, Outcome::Ok);
    r.parent_id = None;
    let root = span_data(&r).unwrap();
    assert_eq!(root.parent_span_id, opentelemetry::trace::SpanId::INVALID);

    // Errors.
    let e = span_data(&record(
        Side::Server,
        Outcome::Err {
            name: "ValueError".into(),
            message: "negative".into(),
        },
    ))
    .unwrap();
    assert_eq!(e.status, Status::error("ValueError: negative"));
    assert_eq!(attr(&e, "error.type"), Some(&"ValueError".into()));
    assert_eq!(e.events.len(), 1);
    let ev = &e.events[0];
    assert_eq!(ev.name, "exception");
    assert_eq!(ev.timestamp, e.end_time);
    let ev_attr = |k: &str| {
        ev.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(ev_attr("exception.type"), Some("ValueError".into()));
    assert_eq!(ev_attr("exception.message"), Some("negative".into()));
    for (outcome, label) in [(Outcome::Lost, "LOST"), (Outcome::Timeout, "TIMEOUT")] {
        let s = span_data(&record(Side::Client, outcome)).unwrap();
        assert!(matches!(s.status, Status::Error { .. }), "{label}");
        assert_eq!(attr(&s, "error.type"), Some(&label.into()));
        assert_eq!(attr(&s, "zerorpc.outcome"), Some(&label.into()));
    }
    let s = span_data(&record(Side::Client, Outcome::Cancelled)).unwrap();
    assert_eq!(s.status, Status::Unset);
    assert_eq!(attr(&s, "error.type"), Some(&"CANCELLED".into()));

    // Bad ids and impossible times are errors, not panics.
    for bad in [
        |r: &mut Record| r.trace_id = "xyz".into(),
        |r: &mut Record| r.trace_id = "0".repeat(32),
        |r: &mut Record| r.trace_id = "é".repeat(16),
        |r: &mut Record| r.span_id = "b7ad6b716920333".into(),
        |r: &mut Record| r.parent_id = Some("not-hex-at-all!!".into()),
        |r: &mut Record| r.start_us = u64::MAX,
        |r: &mut Record| r.duration_us = u64::MAX / 1000,
    ] {
        let mut r = record(Side::Server, Outcome::Ok);
        bad(&mut r);
        assert!(
            matches!(span_data(&r), Err(OtlpError::InvalidRecord { .. })),
            "{r:?}"
        );
    }
}

/// Resource attributes as text, sorted.
type Attrs = Vec<(String, String)>;

/// One export: the resource set then, and the spans' names.
#[derive(Debug, Clone)]
struct Batch {
    resource: Attrs,
    names: Vec<String>,
}

/// An exporter that keeps what it is given.
#[derive(Debug, Clone, Default)]
struct Keep {
    batches: Arc<Mutex<Vec<Batch>>>,
    resource: Arc<Mutex<Attrs>>,
}

impl opentelemetry_sdk::trace::SpanExporter for Keep {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let resource = self.resource.lock().unwrap().clone();
        let names = batch.into_iter().map(|s| s.name.into_owned()).collect();
        self.batches.lock().unwrap().push(Batch { resource, names });
        Ok(())
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        let mut kv: Attrs = resource
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        kv.sort();
        *self.resource.lock().unwrap() = kv;
    }
}

#[tokio::test]
async fn a_plugged_exporter_gets_one_resource_per_process() {
    let keep = Keep::default();
    let sink = OtlpSink::builder()
        .service_name("shop")
        .build_with_exporter(keep.clone());
    let mut other = record(Side::Server, Outcome::Ok);
    other.process = "other[9]".into();
    other.method = "sub".into();
    sink.write(vec![
        record(Side::Server, Outcome::Ok),
        other,
        record(Side::Client, Outcome::Ok),
    ])
    .await
    .unwrap();
    let batches = keep.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 2, "{batches:#?}");
    let get = |res: &[(String, String)], k: &str| {
        res.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut processes: Vec<String> = batches
        .iter()
        .map(|b| get(&b.resource, "process.executable.name"))
        .collect();
    processes.sort();
    assert_eq!(processes, ["calcd", "other"]);
    for b in &batches {
        let (res, names) = (&b.resource, &b.names);
        assert_eq!(get(res, "service.name"), "shop");
        assert_eq!(get(res, "host.name"), "box1");
        match get(res, "process.executable.name").as_str() {
            "calcd" => {
                assert_eq!(get(res, "process.pid"), "123");
                assert_eq!(names.len(), 2);
            }
            "other" => {
                assert_eq!(get(res, "process.pid"), "9");
                assert_eq!(names, &["calc/sub".to_owned()]);
            }
            p => panic!("unexpected process {p}: {batches:#?}"),
        }
    }
}

// ---------------------------------------------------------------------
// Malformed records, and no collector

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_with_a_malformed_trace_id_is_skipped_and_the_others_exported() {
    let collector = Collector::start().await;
    let sink = OtlpSink::new(&collector.endpoint).unwrap();
    let recorder = Recorder::new(sink.clone(), 100);
    let good = record(Side::Server, Outcome::Ok);
    let mut bad = record(Side::Client, Outcome::Ok);
    bad.trace_id = "not a trace id".into();
    let mut also_good = record(Side::Client, Outcome::Ok);
    also_good.span_id = "1111111111111111".into();
    for r in [good, bad, also_good] {
        recorder.record(r);
    }
    let spans = collector
        .spans_of("0af7651916cd43dd8448eb211c80319c", 2)
        .await;
    let mut ids: Vec<String> = spans.iter().map(|g| hex(&g.span.span_id)).collect();
    ids.sort();
    assert_eq!(ids, ["1111111111111111", "b7ad6b7169203331"]);
    assert_eq!(sink.skipped(), 1);
    // The batch itself went through.
    assert_eq!(recorder.dropped(), 0);
    assert_eq!(collector.all().len(), 2);
    assert_eq!(
        spans[0].resource.get("service.name"),
        Some(&Any::StringValue("zerorpc".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_collector_means_an_error_soon_and_dropped_records() {
    // A port nobody listens on (bound, then freed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = OtlpSink::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    // The write fails, and within its timeout (plus slack for a busy
    // machine), not never.
    let t0 = Instant::now();
    let r = tokio::time::timeout(
        DEADLINE,
        sink.write(vec![record(Side::Client, Outcome::Ok)]),
    )
    .await
    .expect("the write hung");
    assert!(r.is_err(), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // Through a recorder: counted as dropped.
    let recorder = Recorder::new(sink, 100);
    recorder.record(record(Side::Client, Outcome::Ok));
    let t0 = Instant::now();
    while recorder.dropped() == 0 {
        assert!(t0.elapsed() < DEADLINE, "nothing dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((recorder.dropped(), recorder.written()), (1, 0));
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    assert!(matches!(
        OtlpSink::new("http://127.0.0.1:4317"),
        Err(OtlpError::NoRuntime)
    ));
}

#[tokio::test]
async fn a_malformed_endpoint_is_a_build_error() {
    assert!(matches!(
        OtlpSink::new("not a uri at all"),
        Err(OtlpError::Build(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_collector_passes_records_on_to_otlp() {
    use zerorpc::collector::{Collector as RecordCollector, PushSink};
    // Services ship to our collector (which keeps them in memory) and the
    // collector passes them on to the OTLP receiver.
    let receiver = Collector::start().await;
    let store = zerorpc::record::EmbeddedStore::new(Duration::from_secs(60));
    let otlp = Recorder::new(OtlpSink::new(&receiver.endpoint).unwrap(), 10_000);
    let ours = std::sync::Arc::new(RecordCollector::new(store.clone()).forward_to(otlp.clone()));
    let cep = ours.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let c = ours.clone();
    tokio::spawn(async move { c.run().await });
    let rec = Recorder::new(PushSink::connect(&cep).await.unwrap(), 10_000);
    let ep = serve(C, &rec).await;
    let caller = client(&ep, &rec).await;
    let root = TraceContext::new_root();
    let id = root.trace_id_hex();
    root.scope(caller.call("check", vec![Value::from(3)]))
        .await
        .unwrap();
    let spans = receiver.spans_of(&id, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let served = find(&spans, SpanKind::Server, "check");
    let called = find(&spans, SpanKind::Client, "check");
    assert_eq!(served.span.parent_span_id, called.span.span_id);
    // and the collector's own store has them too
    assert_eq!(store.trace(&id).len(), 2);
    assert_eq!((rec.dropped(), otlp.dropped()), (0, 0));
}
