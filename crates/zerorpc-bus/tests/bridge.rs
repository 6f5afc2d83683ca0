//! Bridges between two buses, in process, with two daemons (the broker
//! transports' bridges are tested against the real brokers in
//! `brokers.rs`): everything crosses once, both ways, and nothing comes
//! back round.

use std::time::Duration;

use serde_json::json;
use zerorpc_bus::bridge::{run_both, Side};
use zerorpc_bus::daemon::{BusServiceClient, Daemon, DaemonOptions};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Filters, Since, Subscription};
use zerorpc_testkit::{scratch_dir, within};

/// Every (msg_id, i) in a daemon's log, in order.
async fn log_of(ingest: &str) -> Vec<(String, u64)> {
    let client = BusServiceClient::new(zerorpc::Client::connect(ingest).await.unwrap());
    let (_, batch) = client.read(1, Vec::new(), 10_000).await.unwrap();
    batch
        .into_iter()
        .map(|(_, raw)| {
            let m = zerorpc_bus::message::Message::from_json(&raw).unwrap();
            (m.msg_id, m.i)
        })
        .collect()
}

async fn side(name: &str, ingest: &str) -> Side {
    Side {
        name: name.into(),
        subscription: Subscription::bus(ingest, Since::Next, Filters::default())
            .await
            .unwrap(),
        publisher: Publisher::connect(PublisherOptions::new(ingest))
            .await
            .unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_way_bridge_carries_each_message_once_each_way_and_stops_echoes() {
    let (da, db) = (scratch_dir("bridge-a"), scratch_dir("bridge-b"));
    let a = Daemon::start(DaemonOptions::ephemeral(&da)).await.unwrap();
    let b = Daemon::start(DaemonOptions::ephemeral(&db)).await.unwrap();
    let (ea, eb) = (
        a.ingest_endpoint().to_owned(),
        b.ingest_endpoint().to_owned(),
    );
    let bridge = tokio::spawn(run_both(
        side("left", &ea).await,
        side("right", &eb).await,
        16,
    ));

    let pa = Publisher::connect(PublisherOptions::new(ea.clone()))
        .await
        .unwrap();
    let pb = Publisher::connect(PublisherOptions::new(eb.clone()))
        .await
        .unwrap();
    let n = 200;
    let from_a = pa
        .publish_all("from.a", (0..n).map(|k| json!({"k": k})))
        .await;
    let from_b = pb
        .publish_all("from.b", (0..n).map(|k| json!({"k": k})))
        .await;
    assert!(from_a.iter().chain(&from_b).all(Result::is_ok));

    // Both logs end up with all 2n messages, each exactly once.
    within("both logs complete", async {
        loop {
            if log_of(&ea).await.len() >= 2 * n && log_of(&eb).await.len() >= 2 * n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // Give an echo the time to come round, were there one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, ingest) in [("a", &ea), ("b", &eb)] {
        let log = log_of(ingest).await;
        let mut ids: Vec<&String> = log.iter().map(|(id, _)| id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(log.len(), 2 * n, "{name}'s log has every message once");
        assert_eq!(ids.len(), 2 * n, "{name}'s log has no copy");
    }
    // The daemons were offered no echo at all: the bridge's memory
    // stopped each one before it was sent back.
    for d in [&a, &b] {
        let info =
            BusServiceClient::new(zerorpc::Client::connect(d.ingest_endpoint()).await.unwrap())
                .info()
                .await
                .unwrap();
        assert_eq!(
            info.duplicates, 0,
            "no message was sent back to where it came from"
        );
    }
    bridge.abort();
}
