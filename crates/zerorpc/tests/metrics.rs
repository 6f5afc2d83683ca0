//! Metrics: a server and a client with metrics on, scraped over HTTP from
//! the Prometheus exporter, the exposition format parsed.

use zerorpc_testkit as common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerorpc::demo::demo_service;
use zerorpc::{ChannelConfig, Client, ClientOptions, Server, ServerOptions, Value};

fn get(
    m: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.get(&(name.to_owned(), want.clone()))
        .copied()
        .unwrap_or_else(|| {
            panic!(
                "no {name}{want:?} in {:#?}",
                m.keys().filter(|k| k.0 == name).collect::<Vec<_>>()
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_calls_outcomes_durations_and_losses() {
    let port = free_port();
    zerorpc::metrics::install_prometheus(([127, 0, 0, 1], port).into()).unwrap();
    let server = Arc::new(Server::with_options(
        demo_service(),
        ServerOptions {
            metrics: true,
            ..Default::default()
        },
    ));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let c = Client::connect_with(
        &[&ep],
        ClientOptions {
            metrics: true,
            channel: ChannelConfig {
                heartbeat: Duration::from_millis(300),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The client connects before the server runs: its connection is
    // counted all the same (the call waits for `run`).
    let first = tokio::spawn({
        let c = c.clone();
        async move { c.call("echo", vec![(-1).into()]).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.connections() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the client never connected"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    first.await.unwrap().unwrap();
    for i in 0..5 {
        c.call("echo", vec![i.into()]).await.unwrap();
    }
    for _ in 0..2 {
        assert!(c.call("fail", vec!["no".into()]).await.is_err());
    }
    let items = c.call("range", vec![10.into()]).await.unwrap();
    assert_eq!(items.as_array().map(Vec::len), Some(10));
    // A call whose server goes silent: a heartbeat loss on the client.
    let hung = zerorpc::zmtp::RouterSocket::new();
    let hung_ep = hung.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let c2 = Client::connect_with(
        &[&hung_ep],
        ClientOptions {
            metrics: true,
            channel: ChannelConfig {
                heartbeat: Duration::from_millis(200),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        c2.call("echo", vec![Value::Nil]).await,
        Err(zerorpc::Error::LostRemote(_))
    ));
    // A call dropped before it ends (long before its loss would be seen):
    // cancelled.
    let dropped = tokio::time::timeout(Duration::from_millis(50), c2.call("add", vec![]));
    assert!(dropped.await.is_err());

    let m = tokio::task::spawn_blocking(move || {
        // (the server counts a call when its reply is on its way)
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let m = scrape_prometheus(port);
            let done = m.contains_key(&(
                "zerorpc_server_calls_total".into(),
                [
                    ("method", "range"),
                    ("outcome", "STREAM"),
                    ("service", "demo"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ));
            if done || std::time::Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    let server_calls = |method, outcome| {
        get(
            &m,
            "zerorpc_server_calls_total",
            &[
                ("service", "demo"),
                ("method", method),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(server_calls("echo", "OK"), 6.0);
    assert_eq!(server_calls("fail", "ERR"), 2.0);
    assert_eq!(server_calls("range", "STREAM"), 1.0);
    let client_calls = |method, outcome| {
        get(
            &m,
            "zerorpc_client_calls_total",
            &[("method", method), ("outcome", outcome)],
        )
    };
    assert_eq!(client_calls("echo", "OK"), 6.0);
    assert_eq!(client_calls("fail", "ERR"), 2.0);
    assert_eq!(client_calls("echo", "LOST"), 1.0);
    assert_eq!(client_calls("add", "CANCELLED"), 1.0);
    assert_eq!(
        get(
            &m,
            "zerorpc_server_call_duration_seconds_count",
            &[("service", "demo"), ("method", "echo")]
        ),
        6.0
    );
    assert_eq!(
        get(
            &m,
            "zerorpc_stream_items_total",
            &[("side", "server"), ("method", "range")]
        ),
        10.0
    );
    assert_eq!(
        get(
            &m,
            "zerorpc_stream_items_total",
            &[("side", "client"), ("method", "range")]
        ),
        10.0
    );
    assert_eq!(
        get(&m, "zerorpc_heartbeat_losses_total", &[("side", "client")]),
        1.0
    );
    assert_eq!(
        get(&m, "zerorpc_server_in_flight", &[("service", "demo")]),
        0.0
    );
    assert_eq!(get(&m, "zerorpc_connections", &[("side", "server")]), 1.0);
}
