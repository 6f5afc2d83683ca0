//! A real zerorpc server and client, in process, with the Sentry hook:
//! their remote errors become Sentry events, caught by sentry-core's test
//! transport instead of being sent.
//!
//! `with_captured_events` binds a test hub to the test's thread only; the
//! server's handlers (and so its hook) run on the runtime's worker
//! threads, so the hooks are given that hub (`SentryHook::with_hub`). The
//! last test binds a test client to the main hub instead, as
//! `sentry::init` on the main thread would, and uses the default hook;
//! it is the only test here that touches the main hub.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sentry_core::protocol::{Context, Event, TraceContext, Value as Json};
use sentry_core::test::{with_captured_events, TestTransport};
use sentry_core::{ClientOptions as SentryOptions, Hub};
use zerorpc::record::{EmbeddedStore, Recorder};
use zerorpc::record::{Record, Side};
use zerorpc::{
    CallError, Client, ClientOptions, ErrorHook, ErrorReport, OnError, Server, ServerOptions,
    TraceContext as ZTrace, Value,
};
use zerorpc_sentry::SentryHook;

const WEDGE: Duration = Duration::from_secs(60);

const PYTHON: &str = r#"Traceback (most recent call last):
  File "/srv/venv/lib/python3.12/site-packages/zerorpc/core.py", line 153, in _async_task
    functor.pattern.process_call(self._context, bufchan, event, functor)
  File "/srv/app/flaky.py", line 12, in fail
    raise KeyError("nope")
KeyError: 'nope'
"#;

struct Flaky;

#[zerorpc::service(name = "flaky")]
impl Flaky {
    /// Fails, with a Python-style traceback.
    pub fn fail(&self) -> Result<i64, CallError> {
        Err(CallError::new("KeyError", "nope").with_traceback(PYTHON))
    }

    /// Panics.
    pub fn boom(&self) -> i64 {
        panic!("kaboom")
    }

    /// Succeeds.
    pub fn fine(&self, x: i64) -> i64 {
        x + 1
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

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WEDGE, f)
        .await
        .unwrap_or_else(|_| panic!("wedged: {what}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The Sentry hook, counting the reports it has captured (so the test
/// knows when the server's, which may come after the client's reply, are
/// in).
fn counted(hook: SentryHook, heard: &Arc<AtomicUsize>) -> OnError {
    let heard = heard.clone();
    OnError::new(move |r: &ErrorReport| {
        hook.report(r);
        heard.fetch_add(1, Ordering::SeqCst);
    })
}

async fn serve(on_error: OnError, recorder: Option<Recorder>) -> String {
    let s = Arc::new(Server::with_options(
        Flaky,
        ServerOptions {
            on_error: Some(on_error),
            recorder,
            ..Default::default()
        },
    ));
    let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    tokio::spawn(async move { s.run().await });
    ep
}

async fn connect(ep: &str, on_error: OnError, recorder: Option<Recorder>) -> Client {
    Client::connect_with(
        &[ep],
        ClientOptions {
            on_error: Some(on_error),
            recorder,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn wait_for(heard: &AtomicUsize, n: usize) {
    within("the reports", async {
        while heard.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

fn trace_of<'a>(e: &'a Event<'_>) -> Option<&'a TraceContext> {
    match e.contexts.get("trace") {
        Some(Context::Trace(t)) => Some(t),
        _ => None,
    }
}

fn event<'a>(events: &'a [Event<'static>], side: &str, method: &str) -> &'a Event<'static> {
    let found: Vec<_> = events
        .iter()
        .filter(|e| e.tags.get("zerorpc.side").map(String::as_str) == Some(side))
        .filter(|e| e.tags.get("rpc.method").map(String::as_str) == Some(method))
        .collect();
    assert_eq!(found.len(), 1, "one {side} event of {method}: {events:#?}");
    found[0]
}

fn record<'a>(recs: &'a [Record], side: Side, method: &str) -> &'a Record {
    recs.iter()
        .find(|r| r.side == side && r.method == method)
        .unwrap_or_else(|| panic!("no {side:?} record of {method}: {recs:#?}"))
}

#[test]
fn remote_errors_become_events_linked_to_their_traces() {
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let mut trace_id = String::new();
    let mut recs = Vec::new();
    let mut client_ep = String::new();
    let events = with_captured_events(|| {
        let hub = Hub::current();
        let heard = Arc::new(AtomicUsize::new(0));
        runtime().block_on(async {
            let recorder = Recorder::new(store.clone(), 1000);
            let hook = || counted(SentryHook::with_hub(hub.clone()), &heard);
            let ep = serve(hook(), Some(recorder.clone())).await;
            let c = connect(&ep, hook(), Some(recorder.clone())).await;
            client_ep = ep;
            let root = ZTrace::new_root();
            trace_id = root.trace_id_hex();
            // Calls that succeed are not reported...
            let r = root.clone().scope(c.call("fine", vec![1.into()])).await;
            assert_eq!(r.unwrap(), Value::from(2));
            let n: Vec<_> = root
                .clone()
                .scope(c.call_stream("count", vec![3.into()]))
                .await
                .unwrap()
                .collect()
                .await;
            assert_eq!(n.len(), 3);
            // ...failures are, on both sides.
            let r = root.clone().scope(c.call("fail", vec![])).await;
            assert!(r.is_err(), "{r:?}");
            let r = root.clone().scope(c.call("boom", vec![])).await;
            assert!(r.is_err(), "{r:?}");
            let mut st = root
                .clone()
                .scope(c.call_stream("items", vec![]))
                .await
                .unwrap();
            assert_eq!(st.next().await.unwrap().unwrap(), Value::from(1));
            assert_eq!(st.next().await.unwrap().unwrap(), Value::from(2));
            assert!(st.next().await.unwrap().is_err());
            assert!(st.next().await.is_none());
            wait_for(&heard, 6).await;
            recs = within("the trace's records", async {
                loop {
                    let r = store.trace(&trace_id);
                    if r.len() >= 10 {
                        return r;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
        });
    });

    // One event per failure and side; none of the calls that succeeded.
    assert_eq!(events.len(), 6, "{events:#?}");
    for (method, name, message) in [
        ("fail", "KeyError", "nope"),
        ("boom", "Panic", "kaboom"),
        ("items", "IOError", "disk gone"),
    ] {
        for (side, zside, service) in [
            ("server", Side::Server, "flaky"),
            ("client", Side::Client, client_ep.as_str()),
        ] {
            let e = event(&events, side, method);
            let what = format!("{side} event of {method}: {e:#?}");
            assert_eq!(e.level, sentry_core::Level::Error, "{what}");
            assert_eq!(e.exception.len(), 1, "{what}");
            let x = &e.exception[0];
            assert_eq!(x.ty, name, "{what}");
            assert_eq!(x.value.as_deref(), Some(message), "{what}");
            assert_eq!(
                e.transaction.as_deref(),
                Some(format!("{service}/{method}").as_str()),
                "{what}"
            );
            assert_eq!(e.tags["rpc.system"], "zerorpc", "{what}");
            assert_eq!(e.tags["rpc.service"], service, "{what}");
            assert_eq!(e.tags["rpc.method"], method, "{what}");
            assert_eq!(e.tags["trace_id"], trace_id, "{what}");
            assert_eq!(
                e.fingerprint.as_ref(),
                ["zerorpc", side, service, method, name],
                "{what}"
            );
            // The trace context is the call's span, on its side.
            let t = trace_of(e).unwrap_or_else(|| panic!("no trace context: {what}"));
            let rec = record(&recs, zside, method);
            assert_eq!(t.trace_id.to_string(), trace_id, "{what}");
            assert_eq!(t.span_id.to_string(), rec.span_id, "{what}");
            let op = format!("rpc.{side}");
            assert_eq!(t.op.as_deref(), Some(op.as_str()), "{what}");
        }
    }
    // The traceback crossed the wire: kept raw, and as frames.
    for side in ["server", "client"] {
        let e = event(&events, side, "fail");
        assert_eq!(e.extra["traceback"], Json::String(PYTHON.into()));
        let st = e.exception[0].stacktrace.as_ref().expect("frames");
        assert_eq!(st.frames.len(), 2);
        let f = &st.frames[1];
        assert_eq!(f.abs_path.as_deref(), Some("/srv/app/flaky.py"));
        assert_eq!(f.lineno, Some(12));
        assert_eq!(f.function.as_deref(), Some("fail"));
        assert_eq!(f.context_line.as_deref(), Some("raise KeyError(\"nope\")"));
    }
    // The panic is the server's unhandled error; the client got an error.
    let handled = |side| {
        event(&events, side, "boom").exception[0]
            .mechanism
            .as_ref()
            .and_then(|m| m.handled)
    };
    assert_eq!(handled("server"), Some(false));
    assert_eq!(handled("client"), Some(true));
}

#[test]
fn an_untraced_call_is_reported_without_trace_ids() {
    let events = with_captured_events(|| {
        let hub = Hub::current();
        let heard = Arc::new(AtomicUsize::new(0));
        runtime().block_on(async {
            let hook = || counted(SentryHook::with_hub(hub.clone()), &heard);
            // No recorder, root contexts off: the call has no ids.
            let ep = serve(hook(), None).await;
            let c = Client::connect_with(
                &[&ep],
                ClientOptions {
                    on_error: Some(hook()),
                    trace_roots: false,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            assert!(c.call("fail", vec![]).await.is_err());
            wait_for(&heard, 2).await;
        });
    });
    assert_eq!(events.len(), 2, "{events:#?}");
    for e in &events {
        assert_eq!(e.exception[0].ty, "KeyError");
        assert!(!e.tags.contains_key("trace_id"), "{e:#?}");
        // (Sentry's scope gives it a trace of its own, not one of ours.)
        assert_ne!(
            trace_of(e).and_then(|t| t.op.as_deref()),
            Some("rpc.server")
        );
        assert_ne!(
            trace_of(e).and_then(|t| t.op.as_deref()),
            Some("rpc.client")
        );
    }
}

/// As an application would have it: `sentry::init` on the main thread
/// binds a client to the main hub; the default hook finds it there from
/// the runtime's worker threads.
#[test]
fn the_default_hook_captures_into_the_main_hub() {
    let transport = TestTransport::new();
    let mut options = SentryOptions::default();
    options.dsn = "https://public@sentry.invalid/1".parse().ok();
    options.transport = Some(Arc::new(transport.clone()));
    Hub::main().bind_client(Some(Arc::new(options.into())));
    let events = runtime().block_on(async {
        let ep = serve(zerorpc_sentry::on_error(), None).await;
        let c = connect(&ep, zerorpc_sentry::on_error(), None).await;
        assert_eq!(
            c.call("fine", vec![1.into()]).await.unwrap(),
            Value::from(2)
        );
        let root = ZTrace::new_root();
        assert!(root.clone().scope(c.call("boom", vec![])).await.is_err());
        let mut events = Vec::new();
        within("two events", async {
            while events.len() < 2 {
                events.extend(transport.fetch_and_clear_events());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        // (and no more)
        tokio::time::sleep(Duration::from_millis(100)).await;
        events.extend(transport.fetch_and_clear_events());
        (events, root.trace_id_hex())
    });
    Hub::main().bind_client(None);
    let (events, trace_id) = events;
    assert_eq!(events.len(), 2, "{events:#?}");
    for side in ["server", "client"] {
        let e = event(&events, side, "boom");
        assert_eq!(e.exception[0].ty, "Panic");
        assert_eq!(e.exception[0].value.as_deref(), Some("kaboom"));
        assert_eq!(
            trace_of(e).map(|t| t.trace_id.to_string()),
            Some(trace_id.clone())
        );
    }
}
