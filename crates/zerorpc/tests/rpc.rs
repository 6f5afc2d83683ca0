//! Rust client against Rust server: the whole RPC stack over real sockets.
//!
//! One file over 600 lines on purpose: each file under `tests/` is a test
//! binary of its own, linked on its own, so a suite that shares its peers
//! and fixtures stays one binary (split, it would link once per part).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use zerorpc::demo::demo_service;
use zerorpc::{
    BlockingClient, CallError, Client, ClientOptions, DynamicService, Error, Server, ServerOptions,
    Value,
};

const WEDGE: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WEDGE, f)
        .await
        .unwrap_or_else(|_| panic!("wedged: {what}"))
}

fn fast_hb() -> zerorpc::ChannelConfig {
    zerorpc::ChannelConfig {
        heartbeat: Duration::from_millis(500),
        ..Default::default()
    }
}

/// A client with 500 ms heartbeats.
async fn fast_client(ep: &str) -> Client {
    Client::connect_with(
        &[ep],
        ClientOptions {
            channel: fast_hb(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn start(service: DynamicService, opts: ServerOptions) -> (Arc<Server>, String) {
    let server = Arc::new(Server::with_options(service, opts));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    (server, ep)
}

async fn demo() -> (Arc<Server>, String) {
    start(demo_service(), ServerOptions::default()).await
}

/// The demo with 500 ms heartbeats.
async fn fast_demo() -> (Arc<Server>, String) {
    let opts = ServerOptions {
        channel: fast_hb(),
        ..Default::default()
    };
    start(demo_service(), opts).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_with_every_value_type() {
    let (_server, ep) = demo().await;
    let client = Client::connect(&ep).await.unwrap();
    let values = vec![
        Value::from("héllo"),
        Value::Binary(vec![0, 1, 2, 255]),
        Value::from(-42),
        Value::from(u64::MAX),
        Value::from(1.5),
        Value::Nil,
        Value::from(true),
        Value::Array(vec![Value::from(1), Value::from("two")]),
        Value::Map(vec![(Value::from("k"), Value::Array(vec![]))]),
    ];
    for v in values {
        let r = within("echo", client.call("echo", vec![v.clone()]))
            .await
            .unwrap();
        assert_eq!(r, v);
    }
    assert_eq!(
        client.call("add", vec![2.into(), 3.into()]).await.unwrap(),
        Value::from(5)
    );
    assert_eq!(
        client
            .call("add", vec!["a".into(), "b".into()])
            .await
            .unwrap(),
        Value::from("ab")
    );
    assert_eq!(
        client.call("lolita", vec![]).await.unwrap(),
        Value::from(42)
    );
    let b = client.call("bytes", vec![5.into()]).await.unwrap();
    assert_eq!(b, Value::Binary(vec![0, 1, 2, 3, 4]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_struct_result_is_a_map_with_field_names() {
    let (_server, ep) = demo().await;
    let client = Client::connect(&ep).await.unwrap();
    let r = client
        .call("record", vec!["kiwi".into(), 1.0.into()])
        .await
        .unwrap();
    assert_eq!(
        r,
        Value::Map(vec![
            (Value::from("name"), Value::from("kiwi")),
            (Value::from("value"), Value::from(1.0)),
        ])
    );
    // The typed client reads it back into the struct.
    let typed = zerorpc::demo::DemoClient::connect(&ep).await.unwrap();
    assert_eq!(
        typed.record("fig".into(), 2.5).await.unwrap(),
        zerorpc::demo::Reading {
            name: "fig".into(),
            value: 2.5
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_reach_the_caller() {
    let (_server, ep) = demo().await;
    let client = Client::connect(&ep).await.unwrap();
    match client.call("fail", vec!["boom".into()]).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.name, "DemoError");
            assert_eq!(e.message, "boom");
            assert!(e.traceback.contains("demo.fail"));
        }
        other => panic!("{other:?}"),
    }
    match client.call("nope", vec![]).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.name, "NameError");
            assert_eq!(e.message, "nope");
        }
        other => panic!("{other:?}"),
    }
    match client.call("add", vec![1.into()]).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.name, "TypeError");
            assert!(e.message.contains("add() takes 2"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    match client.call("range", vec!["ten".into()]).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.name, "TypeError");
            assert!(
                e.message.contains("'n'"),
                "names the argument: {}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_with_flow_control() {
    let (_server, ep) = demo().await;
    let client = Client::connect(&ep).await.unwrap();
    let mut s = Box::pin(
        client
            .call_stream("range", vec![20_000.into()])
            .await
            .unwrap(),
    );
    let mut expected = 0u64;
    while let Some(item) = within("stream item", s.next()).await {
        assert_eq!(item.unwrap(), Value::from(expected));
        expected += 1;
    }
    assert_eq!(expected, 20_000);
    // `call` collects a stream; an empty stream is an empty list.
    let all = client.call("range", vec![5.into()]).await.unwrap();
    assert_eq!(all, Value::Array((0..5).map(Value::from).collect()));
    assert_eq!(
        client.call("range", vec![0.into()]).await.unwrap(),
        Value::Array(vec![])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_reply_tells_a_value_from_a_stream() {
    use zerorpc::Reply;
    let (_server, ep) = demo().await;
    let client = Client::connect(&ep).await.unwrap();
    // a value, even one that is a list, is a value
    match within(
        "value",
        client.call_reply("echo", vec![Value::Array(vec![1.into()])]),
    )
    .await
    .unwrap()
    {
        Reply::Value(v) => assert_eq!(v, Value::Array(vec![1.into()])),
        Reply::Stream(_) => panic!("echo does not stream"),
    }
    // a stream of one item, and an empty stream, are streams; and one
    // longer than the credit window (its first item is taken before the
    // rest is driven by a task: credit must still follow)
    for n in [1u64, 0, 300, 2500] {
        match within("stream", client.call_reply("range", vec![n.into()]))
            .await
            .unwrap()
        {
            Reply::Stream(mut s) => {
                let items: Vec<Value> =
                    within("items", (&mut s).map(Result::unwrap).collect()).await;
                assert_eq!(items, (0..n).map(Value::from).collect::<Vec<_>>());
                assert!(s.next().await.is_none(), "still over when polled again");
            }
            Reply::Value(v) => panic!("range streams, got the value {v}"),
        }
    }
    match within("error", client.call_reply("fail", vec!["boom".into()])).await {
        Err(Error::Remote(e)) => {
            assert_eq!((e.name.as_str(), e.message.as_str()), ("DemoError", "boom"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection() {
    let (_server, ep) = demo().await;
    let client = Client::connect(&ep).await.unwrap();
    assert_eq!(
        client.call("_zerorpc_ping", vec![]).await.unwrap(),
        Value::Array(vec!["pong".into(), "demo".into()])
    );
    assert_eq!(
        client.call("_zerorpc_name", vec![]).await.unwrap(),
        Value::from("demo")
    );
    let list = client.call("_zerorpc_list", vec![]).await.unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["echo", "add", "lolita", "range", "slow", "fail", "bytes", "record"]
    );
    assert_eq!(
        client
            .call("_zerorpc_help", vec!["add".into()])
            .await
            .unwrap(),
        Value::from("Add a and b (numbers, strings or lists).")
    );
    assert_eq!(
        client
            .call("_zerorpc_args", vec!["add".into()])
            .await
            .unwrap(),
        Value::Array(vec![
            Value::Array(vec!["a".into(), "b".into()]),
            Value::Nil,
            Value::Nil,
            Value::Nil
        ])
    );
    let inspect = client.call("_zerorpc_inspect", vec![]).await.unwrap();
    let m = inspect.as_map().unwrap();
    assert_eq!(m[0], (Value::from("name"), Value::from("demo")));
    let methods = m[1].1.as_map().unwrap();
    assert_eq!(methods.len(), 8);
    let (name, add) = &methods[1];
    assert_eq!(name, &Value::from("add"));
    assert_eq!(
        add,
        &Value::Map(vec![
            (
                "args".into(),
                Value::Array(vec![
                    Value::Map(vec![("name".into(), "a".into())]),
                    Value::Map(vec![("name".into(), "b".into())])
                ])
            ),
            (
                "doc".into(),
                "Add a and b (numbers, strings or lists).".into()
            )
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_and_long_calls_survive_heartbeats() {
    let opts = ServerOptions {
        channel: zerorpc::ChannelConfig {
            first_reply_timeout: None,
            ..fast_hb()
        },
        ..Default::default()
    };
    let (_server, ep) = start(demo_service(), opts).await;
    let client = fast_client(&ep).await;
    // A call lasting 5 heartbeat intervals still succeeds.
    let r = within("slow call", client.call("slow", vec![2.5.into()]))
        .await
        .unwrap();
    assert_eq!(r, Value::from(2.5));
    let calls = (0..200).map(|i| {
        let c = client.clone();
        async move { c.call("echo", vec![Value::from(i)]).await }
    });
    let results = within("200 concurrent calls", futures::future::join_all(calls)).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), Value::from(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_lost_remote() {
    let (server, ep) = fast_demo().await;
    let client = Client::connect_with(
        &[&ep],
        ClientOptions {
            channel: fast_hb(),
            ..Default::default()
        }
        .timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    // The first reply does not come in time.
    match within("timeout", client.call("slow", vec![5.0.into()])).await {
        Err(Error::Timeout(_)) => {}
        other => panic!("{other:?}"),
    }
    // A server that dies mid-stream: the caller learns it.
    let client = fast_client(&ep).await;
    let call = tokio::spawn({
        let c = client.clone();
        async move { c.call("slow", vec![30.0.into()]).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.shutdown();
    drop(server);
    // (its connection closes: the call fails at once; a silent but
    // connected server is detected by heartbeat, see failover.rs)
    match within("lost call", call).await.unwrap() {
        Err(Error::Disconnected) => {}
        other => panic!("{other:?}"),
    }
}

/// A connection's channels share one timer on each side: with 2,000 calls
/// open on one connection, their heartbeats keep flowing both ways (none
/// is taken for lost over six heartbeat intervals, two being the loss
/// limit), and a short timeout among them still fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_a_timeout_among_two_thousand_open_calls() {
    let (server, ep) = fast_demo().await;
    let client = fast_client(&ep).await;
    let open: Vec<_> = (0..2000)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("slow", vec![60.0.into()]).await })
        })
        .collect();
    within("2,000 calls open", async {
        while server.active_calls() < 2000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let quick = client.with_timeout(Duration::from_millis(300));
    match within("a timeout among them", quick.call("slow", vec![5.0.into()])).await {
        Err(Error::Timeout(_)) => {}
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ended = open.iter().filter(|t| t.is_finished()).count();
    assert_eq!(ended, 0, "calls ended while open (lost?)");
    assert!(server.active_calls() >= 2000, "{}", server.active_calls());
    for t in &open {
        t.abort();
    }
}

/// `Client::with_timeout` gives one handle its own call timeout (shorter,
/// or none at all), leaving the client's (`ClientOptions::timeout`) alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_timeout_sets_a_handles_call_timeout() {
    let (_server, ep) = demo().await;
    let client = Client::connect_with(
        &[&ep],
        ClientOptions::default().timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    // the options' 300 ms: a 1 s call times out
    match within("options' timeout", client.call("slow", vec![1.0.into()])).await {
        Err(Error::Timeout(_)) => {}
        other => panic!("{other:?}"),
    }
    // no timeout on this handle: the same call gets through
    let patient = client.with_timeout(None);
    let v = within("no timeout", patient.call("slow", vec![1.0.into()]))
        .await
        .unwrap();
    assert_eq!(v.as_f64(), Some(1.0));
    // a longer one on another handle, calling concurrently
    let longer = client.with_timeout(Duration::from_secs(30));
    let (a, b) = within(
        "two handles",
        futures::future::join(
            longer.call("slow", vec![1.0.into()]),
            client.call("slow", vec![1.0.into()]),
        ),
    )
    .await;
    assert_eq!(a.unwrap().as_f64(), Some(1.0));
    assert!(matches!(b, Err(Error::Timeout(_))), "{b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_call_cancels_the_handler() {
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (s2, f2) = (started.clone(), finished.clone());
    let svc = DynamicService::new("t").method("wait", "waits", &[], move |_| {
        let (s, f) = (s2.clone(), f2.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            struct Done(Arc<AtomicUsize>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
            let _d = Done(f);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Value::Nil)
        }
    });
    let (server, ep) = start(
        svc,
        ServerOptions {
            channel: fast_hb(),
            ..Default::default()
        },
    )
    .await;
    let client = fast_client(&ep).await;
    let call = tokio::spawn({
        let c = client.clone();
        async move { c.call("wait", vec![]).await }
    });
    within("handler starts", async {
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    call.abort();
    // The client stops heart-beating; the server notices and drops the handler.
    within("handler cancelled", async {
        while finished.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within("channel closed", async {
        while server.active_calls() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_only_its_call() {
    let svc = DynamicService::new("p")
        .method("boom", "panics", &[], |_| async move {
            if true {
                panic!("handler exploded");
            }
            Ok(Value::Nil)
        })
        .method(
            "ok",
            "fine",
            &[],
            |_| async move { Ok(Value::from("fine")) },
        );
    let (_server, ep) = start(svc, ServerOptions::default()).await;
    let client = Client::connect(&ep).await.unwrap();
    match client.call("boom", vec![]).await {
        Err(Error::Remote(e)) => {
            assert_eq!(e.name, "Panic");
            assert!(e.message.contains("handler exploded"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        client.call("ok", vec![]).await.unwrap(),
        Value::from("fine")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_queues_calls() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r2, p2) = (running.clone(), peak.clone());
    let svc = DynamicService::new("cap").method("work", "", &[], move |_| {
        let (r, p) = (r2.clone(), p2.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, CallError>(Value::Nil)
        }
    });
    let (_server, ep) = start(
        svc,
        ServerOptions {
            max_concurrency: Some(3),
            ..Default::default()
        },
    )
    .await;
    let client = Client::connect(&ep).await.unwrap();
    let calls = (0..30).map(|_| {
        let c = client.clone();
        async move { c.call("work", vec![]).await }
    });
    for r in within("capped calls", futures::future::join_all(calls)).await {
        r.unwrap();
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
}

#[test]
fn blocking_client() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_server, ep) = rt.block_on(demo());
    let client = BlockingClient::connect(&ep).unwrap();
    assert_eq!(
        client.call("add", vec![1.into(), 2.into()]).unwrap(),
        Value::from(3)
    );
    let items: Vec<Value> = client
        .call_stream("range", vec![3.into()])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(items, vec![Value::from(0), Value::from(1), Value::from(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_held_back_by_a_full_queue_go_on_when_it_drains() {
    // A client queue of 4 messages and a window of 1000: each stream's
    // items keep waiting for room. A call whose waiting item left while it
    // looked for more work must go on at once, not at its next heartbeat
    // (an hour here).
    let hour = zerorpc::ChannelConfig {
        heartbeat: Duration::from_secs(3600),
        ..Default::default()
    };
    let socket = zerorpc::zmtp::SocketOptions {
        send_hwm: 4,
        ..Default::default()
    };
    let opts = ServerOptions {
        channel: zerorpc::ChannelConfig {
            first_reply_timeout: None,
            ..hour
        },
        socket,
        ..Default::default()
    };
    let (_server, ep) = start(demo_service(), opts).await;
    let client = Client::connect_with(
        &[&ep],
        ClientOptions {
            channel: hour,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let streams = (0..4).map(|_| {
        let client = client.clone();
        async move {
            let mut s = Box::pin(
                client
                    .call_stream("range", vec![5000.into()])
                    .await
                    .unwrap(),
            );
            let mut n = 0u64;
            while let Some(item) = s.next().await {
                assert_eq!(item.unwrap(), Value::from(n));
                n += 1;
            }
            n
        }
    });
    let counts = within(
        "4 streams through a 4-message queue",
        futures::future::join_all(streams),
    )
    .await;
    assert_eq!(counts, [5000; 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_keeps_its_stream() {
    let (_server, ep) = fast_demo().await;
    let client = fast_client(&ep).await;
    let mut s = Box::pin(client.call_stream("range", vec![4.into()]).await.unwrap());
    for i in 0..4u64 {
        assert_eq!(
            within("item", s.next()).await.unwrap().unwrap(),
            Value::from(i)
        );
        // Three heartbeat intervals between items: heartbeats must flow
        // while the consumer is busy.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert!(within("end", s.next()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_endpoints_spread_calls_and_pin_channels() {
    // Two servers that say who they are.
    let mk = |who: &'static str| {
        DynamicService::new(who)
            .method("who", "", &[], move |_| async move { Ok(Value::from(who)) })
            .stream_method("ticks", "", &[], move |_| {
                Ok(futures::stream::iter((0..300).map(move |i| {
                    Ok(Value::Array(vec![Value::from(who), Value::from(i)]))
                })))
            })
    };
    let (_a, ep_a) = start(mk("a"), ServerOptions::default()).await;
    let (_b, ep_b) = start(mk("b"), ServerOptions::default()).await;
    let client = Client::connect_with(&[&ep_a, &ep_b], ClientOptions::default())
        .await
        .unwrap();
    // wait until both connections are up, then calls alternate
    within("both connected", async {
        loop {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..4 {
                seen.insert(
                    client
                        .call("who", vec![])
                        .await
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            if seen.len() == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Every item (and every credit grant) of one stream stays with one server.
    for _ in 0..4 {
        let items = client.call("ticks", vec![]).await.unwrap();
        let items = items.as_array().unwrap();
        assert_eq!(items.len(), 300);
        let first = items[0].as_array().unwrap()[0].clone();
        assert!(items.iter().all(|it| it.as_array().unwrap()[0] == first));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_outlives_its_client_handle() {
    let (_server, ep) = demo().await;
    let client = Client::connect(&ep).await.unwrap();
    let s = client
        .call_stream("range", vec![1000.into()])
        .await
        .unwrap();
    drop(client);
    let items: Vec<_> = within("stream after client dropped", s.collect::<Vec<_>>()).await;
    assert_eq!(items.len(), 1000);
    assert!(items.into_iter().all(|r| r.is_ok()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_fails_or_panics_midway() {
    let svc = DynamicService::new("s")
        .stream_method("bad", "", &[], |_| {
            Ok(futures::stream::iter((0..5).map(|i| {
                if i < 3 {
                    Ok(Value::from(i))
                } else {
                    Err(CallError::new("StreamError", "gave up at 3"))
                }
            })))
        })
        .stream_method("boom", "", &[], |_| {
            Ok(futures::stream::iter(0..5).map(|i| {
                if i == 2 {
                    panic!("stream exploded");
                }
                Ok(Value::from(i))
            }))
        });
    let (_server, ep) = start(svc, ServerOptions::default()).await;
    let client = Client::connect(&ep).await.unwrap();
    for (method, name, good) in [("bad", "StreamError", 3), ("boom", "Panic", 2)] {
        let items: Vec<_> = within(
            "stream",
            client
                .call_stream(method, vec![])
                .await
                .unwrap()
                .collect::<Vec<_>>(),
        )
        .await;
        let oks: Vec<Value> = items
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        assert_eq!(
            oks,
            (0..good).map(Value::from).collect::<Vec<_>>(),
            "{method}"
        );
        match items.last() {
            Some(Err(Error::Remote(e))) => assert_eq!(e.name, name),
            other => panic!("{method}: {other:?}"),
        }
    }
    // and the server still serves
    assert_eq!(
        client.call("_zerorpc_name", vec![]).await.unwrap(),
        Value::from("s")
    );
}

/// A client whose queue to its server holds one message.
async fn one_message_queue_client(ep: &str) -> Client {
    Client::connect_with(
        &[ep],
        ClientOptions {
            socket: zerorpc::zmtp::SocketOptions {
                send_hwm: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_a_full_queue_wait_for_room_and_all_answer() {
    // A one-message queue to the server and 300 calls of 32 KiB opened at
    // once: most find no room and wait for it beside their channels.
    let (_server, ep) = demo().await;
    let client = one_message_queue_client(&ep).await;
    let calls = (0..300u32).map(|i| {
        let client = client.clone();
        async move {
            let mut arg = vec![0u8; 32 * 1024];
            arg[..4].copy_from_slice(&i.to_be_bytes());
            let got = client.call("echo", vec![Value::from(arg.clone())]).await;
            (got.unwrap(), Value::from(arg))
        }
    });
    for (got, sent) in within("300 calls", futures::future::join_all(calls)).await {
        assert_eq!(got, sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_room_times_out_on_its_own_clock() {
    // A server that accepts and never reads: the client's queue and the
    // connection's buffers fill, and the calls that find no room wait.
    let router = zerorpc::zmtp::RouterSocket::with_options(zerorpc::zmtp::SocketOptions {
        recv_hwm: 1,
        ..Default::default()
    });
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let client = one_message_queue_client(&ep)
        .await
        .with_timeout(Duration::from_millis(300));
    // 200 calls of 256 KiB: far more than the buffers between the two.
    let calls = (0..200).map(|_| {
        let client = client.clone();
        async move {
            client
                .call("echo", vec![Value::from(vec![1u8; 256 * 1024])])
                .await
        }
    });
    let results = within("200 calls that time out", futures::future::join_all(calls)).await;
    for r in results {
        match r {
            Err(Error::Timeout(t)) => assert_eq!(t, Duration::from_millis(300)),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    // Under a deadline shorter than their timeout, calls that wait for
    // room fail when it passes, as sent calls do.
    let client = client.with_timeout(Duration::from_secs(30));
    let calls = (0..50).map(|_| {
        let client = client.clone();
        async move {
            let at = std::time::Instant::now() + Duration::from_millis(300);
            let call = client.call("echo", vec![Value::from(vec![1u8; 256 * 1024])]);
            zerorpc::deadline::scope(at, call).await
        }
    });
    let results = within(
        "50 calls past their deadline",
        futures::future::join_all(calls),
    )
    .await;
    for r in results {
        match r {
            Err(Error::DeadlineExceeded(_)) => {}
            other => panic!("expected the deadline, got {other:?}"),
        }
    }
    drop(router);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_that_cannot_leave_fails_its_stream_as_lost() {
    use zerorpc::{Event, EventKind};
    // A server that starts a stream and keeps heart-beating, but no longer
    // reads its socket: once the client's queue and the connection are
    // full, the stream's credit cannot leave, and past the silence a
    // remote is allowed (2 × 200 ms) the stream fails as lost.
    let router = Arc::new(zerorpc::zmtp::RouterSocket::with_options(
        zerorpc::zmtp::SocketOptions {
            recv_hwm: 1,
            ..Default::default()
        },
    ));
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let client = Client::connect_with(
        &[&ep],
        ClientOptions {
            channel: zerorpc::ChannelConfig {
                heartbeat: Duration::from_millis(200),
                ..Default::default()
            },
            socket: zerorpc::zmtp::SocketOptions {
                send_hwm: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let c = client.clone();
    let stream = tokio::spawn(async move {
        let mut s = Box::pin(c.call_stream("range", vec![]).await?);
        while let Some(item) = s.next().await {
            item?;
        }
        Ok::<_, Error>(())
    });
    let request = within("the request", router.recv()).await.unwrap();
    let (peer, ev) = (request.frames()[0].clone(), request.frames()[2].clone());
    let id = Event::decode(&ev, Default::default())
        .unwrap()
        .header
        .message_id;
    // The pipe to the server fills up: calls of 256 KiB it never reads.
    let fillers: Vec<_> = (0..100)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                let _ = c
                    .call("echo", vec![Value::from(vec![0u8; 256 * 1024])])
                    .await;
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let send = move |kind: EventKind, args: Value| {
        let ev = Event::on_channel(&id, kind.name(), args).encode();
        let m: zerorpc::zmtp::Message =
            [peer.clone(), Default::default(), ev].into_iter().collect();
        let router = router.clone();
        async move { router.send(m).await.unwrap() }
    };
    let beats = {
        let send = send.clone();
        tokio::spawn(async move {
            loop {
                send(EventKind::Heartbeat, Value::Array(vec![0.into()])).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // One item: taken, it makes the client grant credit.
    send(EventKind::Stream, Value::Array(vec![1.into()])).await;
    match within("the stream's end", stream).await.unwrap() {
        Err(Error::LostRemote(t)) => assert_eq!(t, Duration::from_millis(400)),
        other => panic!("expected the stream lost, got {other:?}"),
    }
    beats.abort();
    for f in fillers {
        f.abort();
    }
}
