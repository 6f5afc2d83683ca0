//! Memory stays bounded: 10 000 concurrent slow calls, and a stream whose
//! reader stops reading. (One test per binary, so that RSS is ours alone.)

use std::sync::Arc;

use std::time::Duration;
use zerorpc_testkit as common;

use futures::StreamExt;
use zerorpc::demo::demo_service;
use zerorpc::{ChannelConfig, Client, ClientOptions, Server, ServerOptions, Value};

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(120), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("wedged: {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_bounded() {
    let cfg = ChannelConfig {
        heartbeat: Duration::from_secs(1),
        first_reply_timeout: None,
        ..Default::default()
    };
    let server = Arc::new(Server::with_options(
        demo_service(),
        ServerOptions {
            channel: cfg,
            ..Default::default()
        },
    ));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    let client = Client::connect_with(
        &[&ep],
        ClientOptions {
            channel: cfg,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // warm up
    for _ in 0..100 {
        client.call("echo", vec![1.into()]).await.unwrap();
    }
    let base = common::rss_kib();

    // 1. 10 000 concurrent slow calls, both ends in this process.
    const N: usize = 10_000;
    let calls: Vec<_> = (0..N)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("slow", vec![3600.into()]).await })
        })
        .collect();
    wait_for("all calls in flight", || server.active_calls() == N).await;
    // Let a few heartbeat rounds pass: nothing may accumulate.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.active_calls(), N, "heartbeats keep every call alive");
    let loaded = common::rss_kib();
    let per_call = (loaded.saturating_sub(base)) * 1024 / N as u64;
    eprintln!("RSS {base} KiB -> {loaded} KiB with {N} calls in flight: {per_call} bytes per call (client + server)");
    // (An unoptimised build measures about 7 KB here; a release build
    // about 3 KB, see `zerorpc-bench compare`.)
    assert!(
        per_call < 12 * 1024,
        "{per_call} bytes per in-flight call (client and server together)"
    );
    for c in calls {
        c.abort();
    }
    wait_for("abandoned calls cancelled by the server", || {
        server.active_calls() == 0
    })
    .await;

    // 2. A stream whose reader stops reading: the server sends at most the
    // window and waits; nothing grows.
    let mut s = Box::pin(
        client
            .call_stream("range", vec![Value::from(1_000_000_000u64)])
            .await
            .unwrap(),
    );
    for i in 0..10u64 {
        assert_eq!(s.next().await.unwrap().unwrap(), Value::from(i));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = common::rss_kib();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = common::rss_kib();
    eprintln!("stalled stream: RSS {before} KiB -> {after} KiB over 3 s");
    assert!(
        after < before + 8 * 1024,
        "memory grew by {} KiB while the reader was idle",
        after - before
    );
    assert_eq!(
        server.active_calls(),
        1,
        "the stalled stream stays open (heartbeats flow)"
    );
    // and it resumes where it stopped
    assert_eq!(s.next().await.unwrap().unwrap(), Value::from(10u64));
}
