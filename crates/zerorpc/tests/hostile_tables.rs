//! Limits on what one client (or all of them) can make the server hold:
//! calls per client, calls waiting to start, idle connections. The excess
//! gets `ERR ServerOverloaded` at once, counted, and harms no one else.

mod raw;

use std::sync::Arc;
use std::time::Duration;

use raw::RawClient;
use zerorpc::demo::demo_service;
use zerorpc::{ChannelConfig, Client, Error, Server, ServerOptions, Value};
use zerorpc_testkit::within;

async fn serve(opts: ServerOptions) -> (Arc<Server>, String) {
    let server = Arc::new(Server::with_options(demo_service(), opts));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    (server, ep)
}

/// Reads `n` replies; returns how many were `ERR ServerOverloaded`.
async fn count_overloaded(c: &mut RawClient, n: usize) -> usize {
    let mut overloaded = 0;
    let mut seen = 0;
    while seen < n {
        let ev = c.recv().await;
        match ev.name.as_str() {
            "ERR" => {
                let Value::Array(a) = &ev.args else {
                    panic!("ERR args: {:?}", ev.args)
                };
                assert_eq!(a[0].as_str(), Some("ServerOverloaded"), "{:?}", ev.args);
                let msg = a[1].as_str().unwrap_or_default();
                assert!(msg.contains("limit"), "a clear message: {msg}");
                let tb = a[2].as_str().unwrap_or_default();
                assert!(!tb.is_empty(), "never an empty traceback");
                overloaded += 1;
                seen += 1;
            }
            "_zpc_hb" => {}
            other => panic!("unexpected {other}: {:?}", ev.args),
        }
    }
    overloaded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_per_client_limit_get_server_overloaded() {
    let (server, ep) = serve(ServerOptions {
        max_calls_per_client: 50,
        ..Default::default()
    })
    .await;
    let mut hostile = RawClient::connect(&ep).await;
    for _ in 0..60 {
        hostile.call("slow", vec![Value::from(60)]).await;
    }
    assert_eq!(count_overloaded(&mut hostile, 10).await, 10);
    assert_eq!(server.overloaded_calls(), 10);
    assert_eq!(server.active_calls(), 50);
    // Another client is not affected by that one's limit.
    let good = Client::connect(&ep).await.unwrap();
    let v = within(
        "another client's call",
        good.call("add", vec![1.into(), 2.into()]),
    )
    .await
    .unwrap();
    assert_eq!(v, Value::from(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_for_a_slot_are_capped() {
    let (server, ep) = serve(ServerOptions {
        max_concurrency: Some(1),
        max_queued_calls: 5,
        ..Default::default()
    })
    .await;
    let mut hostile = RawClient::connect(&ep).await;
    for _ in 0..10 {
        hostile.call("slow", vec![Value::from(60)]).await;
    }
    // one runs, five wait, four are refused
    assert_eq!(count_overloaded(&mut hostile, 4).await, 4);
    assert_eq!(server.queued_calls(), 5);
    assert_eq!(server.active_calls(), 6);
    let good = Client::connect(&ep).await.unwrap();
    match within(
        "a call over the queue limit",
        good.call("add", vec![1.into(), 2.into()]),
    )
    .await
    {
        Err(Error::Remote(e)) => assert_eq!(e.name, "ServerOverloaded"),
        other => panic!("expected ServerOverloaded, got {other:?}"),
    }
    assert_eq!(server.overloaded_calls(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_busy_ones_are_not() {
    let hb = ChannelConfig {
        heartbeat: Duration::from_millis(300),
        ..Default::default()
    };
    let (server, ep) = serve(ServerOptions {
        idle_timeout: Some(Duration::from_secs(2)),
        channel: ChannelConfig {
            first_reply_timeout: None,
            ..hb
        },
        ..Default::default()
    })
    .await;
    // Connected, handshaken, then silent: closed.
    let mut idle = RawClient::connect(&ep).await;
    idle.expect_closed("an idle client").await;
    // A client in a call heart-beats: kept, however long the call.
    let busy = Client::connect_with(
        &[&ep],
        zerorpc::ClientOptions {
            channel: hb,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let v = within(
        "a call longer than the idle timeout",
        busy.call("slow", vec![Value::from(3.5)]),
    )
    .await
    .unwrap();
    assert_eq!(v, Value::from(3.5));
    // And after its connection is closed for idling, the client
    // reconnects by itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = within(
        "a call after an idle close",
        busy.call("add", vec![1.into(), 1.into()]),
    )
    .await
    .unwrap();
    assert_eq!(v, Value::from(2));
    assert_eq!(server.overloaded_calls(), 0);
}

/// A client that leaves takes its calls with it at once (not at a
/// heartbeat loss much later), and only its own: another client's calls
/// stay open, and that client's limit still counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_takes_only_its_own_calls() {
    let (server, ep) = serve(ServerOptions {
        max_calls_per_client: 5,
        // (no loss is noticed within the test: only the leaving counts)
        channel: ChannelConfig {
            heartbeat: Duration::from_secs(600),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut leaving = RawClient::connect(&ep).await;
    let mut staying = RawClient::connect(&ep).await;
    for _ in 0..3 {
        leaving.call("slow", vec![Value::from(600)]).await;
    }
    for _ in 0..2 {
        staying.call("slow", vec![Value::from(600)]).await;
    }
    let open = |n: usize| {
        let server = server.clone();
        async move {
            while server.active_calls() != n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    within("five calls open", open(5)).await;
    drop(leaving);
    within("the leaving client's three calls ended", open(2)).await;
    for _ in 0..4 {
        staying.call("slow", vec![Value::from(600)]).await;
    }
    assert_eq!(count_overloaded(&mut staying, 1).await, 1);
    within("the staying client's five calls open", open(5)).await;
    assert_eq!(server.overloaded_calls(), 1);
}
