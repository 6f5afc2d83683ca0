//! Distributed tracing: a trace through services A → B → C (C raises for
//! some inputs), recorded into the embedded store; and the trace context
//! across zerorpc-python peers, which know nothing of it.

use zerorpc_testkit as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerorpc::record::render_tree;
use zerorpc::record::{EmbeddedStore, Outcome, Record, Recorder};
use zerorpc::{CallError, Client, ClientOptions, Server, ServerOptions, TraceContext, Value};

struct C;

#[zerorpc::service(name = "C")]
impl C {
    /// x, unless it is negative.
    pub fn check(&self, x: i64) -> Result<i64, CallError> {
        if x < 0 {
            Err(CallError::new("ValueError", format!("{x} is negative")))
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

async fn client(ep: &str, recorder: Option<&Recorder>) -> Client {
    Client::connect_with(
        &[ep],
        ClientOptions {
            recorder: recorder.cloned(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn records(store: &EmbeddedStore, trace: &str, n: usize) -> Vec<Record> {
    within("the trace's records", async {
        loop {
            let r = store.trace(trace);
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

fn find<'a>(recs: &'a [Record], side: zerorpc::record::Side, method: &str) -> &'a Record {
    recs.iter()
        .find(|r| r.side == side && r.method == method)
        .unwrap_or_else(|| panic!("no {side:?} record of {method}: {recs:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_through_three_services_is_recorded_as_a_tree() {
    use zerorpc::record::Side::{Client as Caller, Server as Callee};
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let recorder = Recorder::new(store.clone(), 10_000);
    let c_ep = serve(C, &recorder).await;
    let b_ep = serve(
        B {
            c: client(&c_ep, Some(&recorder)).await,
        },
        &recorder,
    )
    .await;
    let a_ep = serve(
        A {
            b: client(&b_ep, Some(&recorder)).await,
        },
        &recorder,
    )
    .await;
    let caller = client(&a_ep, Some(&recorder)).await;

    for (x, ok) in [(4i64, true), (-1, false)] {
        let root = TraceContext::new_root();
        let id = root.trace_id_hex();
        let r = root.clone().scope(caller.call("top", vec![x.into()])).await;
        assert_eq!(r.is_ok(), ok, "{r:?}");
        if ok {
            assert_eq!(r.unwrap(), Value::from(41));
        }
        // Six records: a client and a server side for each hop.
        let recs = records(&store, &id, 6).await;
        assert_eq!(recs.len(), 6, "{recs:#?}");
        assert!(recs.iter().all(|r| r.trace_id == id));
        let call_a = find(&recs, Caller, "top");
        let serve_a = find(&recs, Callee, "top");
        let call_b = find(&recs, Caller, "relay");
        let serve_b = find(&recs, Callee, "relay");
        let call_c = find(&recs, Caller, "check");
        let serve_c = find(&recs, Callee, "check");
        // The parent links make the chain.
        assert_eq!(
            call_a.parent_id.as_deref(),
            Some(root.span_id_hex().as_str())
        );
        assert_eq!(serve_a.parent_id.as_ref(), Some(&call_a.span_id));
        assert_eq!(call_b.parent_id.as_ref(), Some(&serve_a.span_id));
        assert_eq!(serve_b.parent_id.as_ref(), Some(&call_b.span_id));
        assert_eq!(call_c.parent_id.as_ref(), Some(&serve_b.span_id));
        assert_eq!(serve_c.parent_id.as_ref(), Some(&call_c.span_id));
        assert_eq!((&*serve_a.service, &*serve_c.service), ("A", "C"));
        // Timings nest: each side lasts at least as long as what it waited on.
        assert!(call_a.duration_us >= serve_a.duration_us);
        assert!(serve_a.duration_us >= call_b.duration_us);
        if ok {
            assert!(recs.iter().all(|r| r.outcome == Outcome::Ok), "{recs:#?}");
        } else {
            let err = Outcome::Err {
                name: "ValueError".into(),
                message: "-1 is negative".into(),
            };
            for r in [serve_c, call_c, serve_b, call_b, serve_a, call_a] {
                assert_eq!(r.outcome, err, "{r:#?}");
            }
        }
        let tree = render_tree(&recs);
        let lines: Vec<&str> = tree.lines().collect();
        assert_eq!(lines.len(), 6, "{tree}");
        for (depth, line) in lines.iter().enumerate() {
            assert!(line.starts_with(&"  ".repeat(depth)), "{tree}");
            assert!(!line[2 * depth..].starts_with(' '), "{tree}");
        }
        assert!(lines[5].contains("serve C check"), "{tree}");
    }
    // Counters match the calls made: C served one OK and one ERR.
    let m = store.methods();
    let c = &m[&("server".into(), "C".into(), "check".into())];
    assert_eq!(
        (c.outcomes.get("OK"), c.outcomes.get("ERR")),
        (Some(&1), Some(&1))
    );
    assert_eq!(recorder.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_recorder_still_carry_the_trace_on() {
    // Only C records; A and B carry the context without recording.
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let recorder = Recorder::new(store.clone(), 1000);
    let c_ep = serve(C, &recorder).await;
    let plain = |svc| async move {
        let s = Arc::new(Server::new(svc));
        let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        tokio::spawn(async move { s.run().await });
        ep
    };
    let b_ep = plain(B {
        c: client(&c_ep, None).await,
    })
    .await;
    let caller = client(&b_ep, None).await;
    let root = TraceContext::new_root();
    let id = root.trace_id_hex();
    root.scope(caller.call("relay", vec![2.into()]))
        .await
        .unwrap();
    let recs = records(&store, &id, 1).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].method, "check");
    assert!(
        recs[0].parent_id.is_some(),
        "C's span has B's call as parent"
    );
}

const PY_SERVER: &str = r#"
import sys, zerorpc
class Svc(object):
    def hello(self, name):
        return "hello " + name
s = zerorpc.Server(Svc())
s.bind(sys.argv[1])
print("READY", flush=True)
s.run()
"#;

const PY_CLIENT: &str = r#"
import sys, zerorpc
c = zerorpc.Client(timeout=10)
c.connect(sys.argv[1])
print("GOT", c.check(3), flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_peers_ignore_the_context_and_our_sides_still_record() {
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let recorder = Recorder::new(store.clone(), 1000);
    // Our traced client → a Python server: the extra header keys are
    // ignored, the call works, our side is recorded.
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut py = Proc::python(PY_SERVER, &[&ep]);
    let py = tokio::task::spawn_blocking(move || {
        py.wait_line("READY");
        py
    })
    .await
    .unwrap();
    let c = client(&ep, Some(&recorder)).await;
    let root = TraceContext::new_root();
    let id = root.trace_id_hex();
    let v = root
        .scope(c.call("hello", vec!["py".into()]))
        .await
        .unwrap();
    assert_eq!(v.as_str(), Some("hello py"));
    let recs = records(&store, &id, 1).await;
    assert_eq!((recs.len(), &recs[0].outcome), (1, &Outcome::Ok));
    drop(py);
    // A Python client → our recording server: no context arrives, so the
    // server starts a trace of its own and records the call.
    let c_ep = serve(C, &recorder).await;
    let mut pc = Proc::python(PY_CLIENT, &[&c_ep]);
    let got = within(
        "python client",
        tokio::task::spawn_blocking(move || pc.wait_line("GOT")),
    )
    .await
    .unwrap();
    assert_eq!(got, "GOT 3");
    within("the server's record", async {
        loop {
            let m = store.methods();
            if m.contains_key(&("server".into(), "C".into(), "check".into())) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Captures the `tracing` spans our calls open, with their trace ids.
#[derive(Clone, Default)]
struct Spans(Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct TraceId(String);
        impl tracing::field::Visit for TraceId {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "trace_id" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut t = TraceId(String::new());
        attrs.record(&mut t);
        let name = attrs.metadata().name().to_owned();
        self.0.lock().unwrap().push((name, t.0));
    }
}

// (one thread: the subscriber is this thread's default)
#[tokio::test(flavor = "current_thread")]
async fn subscribers_see_client_and_server_spans_with_the_trace_id() {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = Spans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let recorder = Recorder::new(store.clone(), 1000);
    let c_ep = serve(C, &recorder).await;
    let caller = client(&c_ep, None).await;
    // Another test's thread may have registered a span's callsite while
    // this subscriber was being set (it then caches "nobody is
    // interested"): ask every callsite again now that it is in place.
    tracing::callsite::rebuild_interest_cache();
    let root = TraceContext::new_root();
    let id = root.trace_id_hex();
    root.scope(caller.call("check", vec![1.into()]))
        .await
        .unwrap();
    let seen = spans.0.lock().unwrap().clone();
    let ours: Vec<&str> = seen
        .iter()
        .filter(|(_, t)| *t == id)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(ours, vec!["zerorpc.client", "zerorpc.server"], "{seen:?}");
}

/// A Python hop in the middle: it serves `relay(x)` by calling our C, and
/// carries the trace context across with zerorpc-python's own middleware
/// hooks (what a Python service that wants tracing would do); the second
/// server, on another port, has no middleware at all.
const PY_MIDDLE: &str = r#"
import sys, gevent.local, zerorpc
local = gevent.local.local()
class PassTrace(object):
    def load_task_context(self, header):
        local.ctx = dict((k, header[k]) for k in ('traceparent', 'tracestate') if k in header)
    def get_task_context(self):
        return getattr(local, 'ctx', {})
class Relay(object):
    def __init__(self, ep):
        self.c = zerorpc.Client(ep, timeout=10)
    def relay(self, x):
        return self.c.check(x) * 10
if sys.argv[3] == 'pass':
    zerorpc.Context.get_instance().register_middleware(PassTrace())
s = zerorpc.Server(Relay(sys.argv[2]))
s.bind(sys.argv[1])
print("READY", flush=True)
s.run()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_hop_in_the_middle_does_not_break_our_sides() {
    use zerorpc::record::Side::{Client as Caller, Server as Callee};
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let recorder = Recorder::new(store.clone(), 1000);
    let c_ep = serve(C, &recorder).await;
    for mode in ["pass", "plain"] {
        let ep = format!("tcp://127.0.0.1:{}", free_port());
        let mut py = Proc::python(PY_MIDDLE, &[&ep, &c_ep, mode]);
        let py = tokio::task::spawn_blocking(move || {
            py.wait_line("READY");
            py
        })
        .await
        .unwrap();
        let caller = client(&ep, Some(&recorder)).await;
        for x in [2i64, -2] {
            let root = TraceContext::new_root();
            let id = root.trace_id_hex();
            let r = root
                .clone()
                .scope(caller.call("relay", vec![x.into()]))
                .await;
            // (C's record, in "pass" mode in the same trace, may be there
            // first: wait for ours.)
            let ours = within("our record of relay", async {
                loop {
                    let r = store.trace(&id);
                    if r.iter().any(|r| r.side == Caller && r.method == "relay") {
                        return r;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            let call = find(&ours, Caller, "relay");
            assert_eq!(call.parent_id, Some(root.span_id_hex()));
            if x > 0 {
                assert_eq!(r.unwrap(), Value::from(20));
                assert_eq!(call.outcome, Outcome::Ok);
            } else {
                // Python passes C's error on under a name of its own.
                assert!(r.is_err());
                assert!(matches!(call.outcome, Outcome::Err { .. }), "{call:?}");
            }
            // C's side: in our trace, under our call, when Python passes
            // the context on; else a trace of its own, still recorded.
            let c_side = within("C's record", async {
                loop {
                    let m = store.methods();
                    let n = m
                        .get(&("server".into(), "C".into(), "check".into()))
                        .map_or(0, |s| s.calls());
                    let in_trace = store.trace(&id);
                    if in_trace.len() >= 2 || (mode == "plain" && n > 0) {
                        return in_trace;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            if mode == "pass" {
                let served = find(&c_side, Callee, "check");
                assert_eq!(served.parent_id.as_ref(), Some(&call.span_id));
                assert!(call.duration_us >= served.duration_us);
                let tree = render_tree(&c_side);
                assert!(
                    tree.lines().nth(1).unwrap().starts_with("  serve C check"),
                    "{tree}"
                );
            } else {
                assert_eq!(c_side.len(), 1, "{c_side:#?}");
            }
        }
        drop(py);
    }
    // C served four calls: two OK, two ValueError.
    let m = store.methods();
    let c = &m[&("server".into(), "C".into(), "check".into())];
    assert_eq!(
        (c.outcomes.get("OK"), c.outcomes.get("ERR")),
        (Some(&2), Some(&2))
    );
}

struct Flaky;

#[zerorpc::service(name = "flaky")]
impl Flaky {
    /// Fails.
    pub fn fail(&self) -> Result<i64, CallError> {
        Err(CallError::new("KeyError", "nope").with_traceback("Traceback: in flaky.fail\n"))
    }

    /// Panics.
    pub fn boom(&self) -> i64 {
        panic!("kaboom")
    }

    /// Two items, then an error.
    #[zerorpc(stream)]
    pub fn items(&self) -> impl futures::Stream<Item = Result<i64, CallError>> + Send + 'static {
        futures::stream::iter([Ok(1), Ok(2), Err(CallError::new("IOError", "disk gone"))])
    }

    /// n items.
    #[zerorpc(stream)]
    pub fn count(&self, n: i64) -> impl futures::Stream<Item = i64> + Send + 'static {
        futures::stream::iter(0..n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_hooks_hear_of_remote_errors_with_traceback_and_trace_id() {
    use futures::StreamExt;
    use zerorpc::record::Side;
    use zerorpc::{ErrorReport, OnError};
    let heard = Arc::new(std::sync::Mutex::new(Vec::<ErrorReport>::new()));
    let hook = |h: &Arc<std::sync::Mutex<Vec<ErrorReport>>>| {
        let h = h.clone();
        OnError::new(move |r: &ErrorReport| h.lock().unwrap().push(r.clone()))
    };
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let recorder = Recorder::new(store.clone(), 1000);
    let s = Arc::new(Server::with_options(
        Flaky,
        ServerOptions {
            recorder: Some(recorder.clone()),
            on_error: Some(hook(&heard)),
            ..Default::default()
        },
    ));
    let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    tokio::spawn(async move { s.run().await });
    let c = Client::connect_with(
        &[&ep],
        ClientOptions {
            recorder: Some(recorder.clone()),
            on_error: Some(hook(&heard)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let root = TraceContext::new_root();
    let id = root.trace_id_hex();
    let r = root.clone().scope(c.call("fail", vec![])).await;
    assert!(r.is_err());
    let r = root.clone().scope(c.call("boom", vec![])).await;
    assert!(r.is_err());
    let mut st = root
        .clone()
        .scope(c.call_stream("items", vec![]))
        .await
        .unwrap();
    assert_eq!(st.next().await.unwrap().unwrap(), Value::from(1));
    assert_eq!(st.next().await.unwrap().unwrap(), Value::from(2));
    assert!(st.next().await.unwrap().is_err());
    assert!(st.next().await.is_none());
    // A call that succeeds is not reported.
    let n: Vec<_> = root
        .clone()
        .scope(c.call_stream("count", vec![3.into()]))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(n.len(), 3);
    let heard = within("six reports", async {
        loop {
            let h = heard.lock().unwrap().clone();
            if h.len() >= 6 {
                return h;
            }
            drop(h);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(heard.len(), 6, "{heard:#?}");
    for (method, name, message) in [
        ("fail", "KeyError", "nope"),
        ("boom", "Panic", "kaboom"),
        ("items", "IOError", "disk gone"),
    ] {
        let server = heard
            .iter()
            .find(|r| r.side == Side::Server && r.method == method)
            .unwrap_or_else(|| panic!("no server report of {method}: {heard:#?}"));
        let client = heard
            .iter()
            .find(|r| r.side == Side::Client && r.method == method)
            .unwrap_or_else(|| panic!("no client report of {method}: {heard:#?}"));
        for r in [server, client] {
            assert_eq!(
                (r.error.name.as_str(), r.error.message.as_str()),
                (name, message)
            );
            assert_eq!(r.trace_id.as_deref(), Some(id.as_str()));
        }
        // the server's span is the child of the client's
        assert_eq!(server.service, "flaky");
        assert_ne!(server.span_id, client.span_id);
        if method == "fail" {
            assert_eq!(server.error.traceback, "Traceback: in flaky.fail\n");
            assert_eq!(client.error.traceback, server.error.traceback);
        }
    }
    // The client recorded its streamed calls too: an error, and 3 items.
    let recs = records(&store, &id, 8).await;
    let items = find(&recs, Side::Client, "items");
    assert!(matches!(&items.outcome, Outcome::Err { name, .. } if name == "IOError"));
    let count = find(&recs, Side::Client, "count");
    assert_eq!(count.outcome, Outcome::Stream { items: 3 });
    let served = find(&recs, Side::Server, "count");
    assert_eq!(served.parent_id.as_ref(), Some(&count.span_id));
}

struct Streams;

#[zerorpc::service(name = "Streams")]
impl Streams {
    /// The trace id each of `n` items is produced under.
    #[zerorpc(stream)]
    pub fn trace_ids(&self, n: i64) -> impl futures::Stream<Item = String> + Send + 'static {
        use futures::StreamExt;
        // (`map` runs as each item is polled for: under whatever context
        // the server polls the stream in)
        futures::stream::iter(0..n)
            .map(|_| TraceContext::current().map_or_else(String::new, |c| c.trace_id_hex()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_handler_produces_its_items_under_its_call_context() {
    let s = Arc::new(Server::new(Streams));
    let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    tokio::spawn(async move { s.run().await });
    let c = client(&ep, None).await;
    let root = TraceContext::new_root();
    let id = root.trace_id_hex();
    let items = root
        .scope(c.call("trace_ids", vec![5.into()]))
        .await
        .unwrap();
    let items: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(items, vec![id.as_str(); 5]);
}
