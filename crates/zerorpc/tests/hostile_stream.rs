//! A client that asks for a huge stream, grants it absurd credit
//! (`_zpc_more [2**63]`) and never reads: the server must hold the stream
//! back (items wait for room in the connection's queue) instead of
//! draining it into memory, keep serving others, and still shut down.
//! (One test in this binary, so that the RSS measured is its alone.)

mod raw;

use std::sync::Arc;
use std::time::Duration;

use raw::RawClient;
use zerorpc::demo::demo_service;
use zerorpc::{Client, Server, Value};
use zerorpc_testkit::{rss_kib, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_stream_with_unbounded_credit_stays_bounded() {
    let server = Arc::new(Server::new(demo_service()));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    let run = tokio::spawn(async move { s.run().await });
    let good = Client::connect(&ep).await.unwrap();
    good.call("echo", vec![1.into()]).await.unwrap();
    let base = rss_kib();

    let mut hostile = RawClient::connect(&ep).await;
    let ch = hostile
        .call("range", vec![Value::from(10_000_000u64)])
        .await;
    hostile
        .on_channel(
            &ch,
            "_zpc_more",
            Value::Array(vec![Value::from(1u64 << 63)]),
        )
        .await;
    // Keep the channel alive (heartbeats) for a while, never reading.
    let mut peak = base;
    for _ in 0..8 {
        hostile
            .on_channel(&ch, "_zpc_hb", Value::Array(vec![0.into()]))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss_kib());
        // Other clients are served meanwhile.
        let v = within(
            "a well-behaved client's call",
            good.call("add", vec![2.into(), 3.into()]),
        )
        .await
        .unwrap();
        assert_eq!(v, Value::from(5));
    }
    let grown = peak.saturating_sub(base);
    eprintln!(
        "credit drain: RSS {base} KiB before, peak {peak} KiB (+{grown} KiB) over 4 s; reply bytes queued: {}",
        server.queued_reply_bytes()
    );
    // Before items waited for room, this grew by gigabytes in seconds.
    assert!(
        grown < 64 * 1024,
        "the server's memory grew by {grown} KiB for one unread stream"
    );
    assert_eq!(server.active_calls(), 1, "the stalled stream is still open");

    // Shutdown is not delayed by it.
    server.shutdown();
    within("shutdown with a stalled stream", async {
        while server.active_calls() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within("run() to return", run).await.unwrap().unwrap();
}
