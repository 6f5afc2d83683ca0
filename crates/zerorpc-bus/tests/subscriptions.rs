//! The daemon's `info` lists live subscriptions with their lag: what the
//! dashboard's bus panel shows.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use zerorpc::{Client, Value};

use zerorpc_bus::daemon::{Daemon, DaemonOptions};
use zerorpc_bus::protocol::BusInfo;
use zerorpc_bus::publisher::{Publisher, PublisherOptions};

async fn info(c: &Client) -> BusInfo {
    zerorpc::from_value(c.call("info", vec![]).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_lists_subscriptions_with_their_lag() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(DaemonOptions::ephemeral(dir.path().join("store")))
        .await
        .unwrap();
    let p = Publisher::connect(PublisherOptions::new(daemon.ingest_endpoint()))
        .await
        .unwrap();
    let sent = p
        .publish_all("org.example.work", (0..2000u64).map(|n| json!({ "n": n })))
        .await;
    assert!(sent.iter().all(Result::is_ok));
    // A credit window of one batch: the daemon sends a batch (512
    // messages at most) only when the last one was taken. (The daemon is
    // our server, which announces its window: the announced one is set.)
    let c = Client::connect_with(
        &[daemon.ingest_endpoint()],
        zerorpc::ClientOptions {
            channel: zerorpc::ChannelConfig {
                window: 1,
                announced_window: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(info(&c).await.subscriptions.is_empty());
    // From the start: the first answer says it follows; then at most one
    // batch is sent ahead of what it takes.
    let mut sub = Box::pin(
        c.call_stream("subscribe", vec![1.into(), Value::Array(vec![])])
            .await
            .unwrap(),
    );
    sub.next().await.unwrap().unwrap();
    let i = info(&c).await;
    assert_eq!(i.subscriptions.len(), 1, "{i:?}");
    let s = &i.subscriptions[0];
    assert!(s.position == 1 || s.position == 513, "{s:?}");
    assert_eq!(s.position + s.lag, 2001, "{s:?}");
    assert!(s.patterns.is_empty(), "all topics");
    // Once it has taken the log, no lag.
    let mut upto = 0;
    while upto < 2000 {
        let batch = sub.next().await.unwrap().unwrap();
        upto = batch.as_array().unwrap()[0].as_u64().unwrap();
    }
    let i = info(&c).await;
    assert_eq!(
        (i.subscriptions[0].position, i.subscriptions[0].lag),
        (2001, 0)
    );
    // A subscriber that goes away leaves the table (at once when its
    // connection closes; a stream dropped on an open connection, after the
    // daemon stops hearing its heartbeats).
    drop(sub);
    drop(c);
    let c = Client::connect(daemon.ingest_endpoint()).await.unwrap();
    let t0 = std::time::Instant::now();
    while !info(&c).await.subscriptions.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20), "still listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.shutdown().await;
}
