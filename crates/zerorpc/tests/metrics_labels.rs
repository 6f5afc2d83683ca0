//! Metrics labels a hostile client cannot grow: calls to methods the
//! service does not have share one `<unknown>` label and one store key.
//! (Its own process: the Prometheus exporter is one per process.)

use zerorpc_testkit as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerorpc::{Client, ClientOptions, Server, ServerOptions, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_unknown_method_names_leave_labels_and_store_keys_bounded() {
    const SERVICE: &str = "label-target";
    const N: usize = 10_000;
    let port = free_port();
    zerorpc::metrics::install_prometheus(([127, 0, 0, 1], port).into()).unwrap();
    let store = zerorpc::record::EmbeddedStore::new(Duration::from_secs(60));
    let recorder = zerorpc::record::Recorder::new(store.clone(), 2 * N);
    let svc = zerorpc::DynamicService::new(SERVICE).method("echo", "", &["x"], |a| async move {
        Ok(a.into_iter().next().unwrap_or(Value::Nil))
    });
    let server = Arc::new(Server::with_options(
        svc,
        ServerOptions {
            metrics: true,
            recorder: Some(recorder.clone()),
            ..Default::default()
        },
    ));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    // (a client without metrics: only the server's labels are measured)
    let c = Client::connect(&ep).await.unwrap();
    c.call("echo", vec![1.into()]).await.unwrap();
    let rss_before = common::rss_kib();
    // A hostile client: a new method name each call, concurrently.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let c = c.clone();
            tokio::spawn(async move {
                for i in (t..N).step_by(8) {
                    let r = c.call(&format!("no_such_method_{i:05}"), vec![]).await;
                    assert!(
                        matches!(&r, Err(zerorpc::Error::Remote(e)) if e.name == "NameError"),
                        "{r:?}"
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        within("10,000 unknown calls", t).await.unwrap();
    }
    c.call("_zerorpc_ping", vec![]).await.unwrap();
    assert!(recorder.flush(Duration::from_secs(30)).await);
    let rss_after = common::rss_kib();
    let m = tokio::task::spawn_blocking(move || scrape_prometheus(port))
        .await
        .unwrap();
    let methods: std::collections::BTreeSet<&str> = m
        .keys()
        .filter(|(_, l)| l.get("service").map(String::as_str) == Some(SERVICE))
        .filter_map(|(_, l)| l.get("method").map(String::as_str))
        .collect();
    let series = m
        .keys()
        .filter(|(_, l)| l.get("service").map(String::as_str) == Some(SERVICE))
        .count();
    let stats = store.methods();
    let keys: Vec<_> = stats.keys().filter(|k| k.1 == SERVICE).collect();
    eprintln!(
        "{N} unknown methods: {} method labels, {series} series, {} store keys; RSS {rss_before} -> {rss_after} KiB",
        methods.len(),
        keys.len()
    );
    assert_eq!(
        methods,
        ["<unknown>", "_zerorpc_ping", "echo"].into_iter().collect(),
        "one label for every unknown name"
    );
    assert!(series < 100, "{series} series");
    assert_eq!(keys.len(), 3, "{keys:?}");
    let unknown = &stats[&("server".into(), SERVICE.into(), "<unknown>".into())];
    assert_eq!(unknown.calls(), N as u64);
    assert_eq!(unknown.outcomes.get("ERR"), Some(&(N as u64)));
    assert_eq!(recorder.dropped(), 0);

    // A client whose callers pick the method (a gateway's HTTP clients):
    // its labels stop growing at MAX_METHOD_LABELS.
    let max = zerorpc::metrics::MAX_METHOD_LABELS;
    let c2 = Client::connect_with(
        &[&ep],
        ClientOptions {
            metrics: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for i in 0..max + 500 {
        assert!(c2.call(&format!("via_gateway_{i}"), vec![]).await.is_err());
    }
    let m = tokio::task::spawn_blocking(move || scrape_prometheus(port))
        .await
        .unwrap();
    let client_methods: std::collections::BTreeSet<&str> = m
        .keys()
        .filter(|(n, _)| n == "zerorpc_client_calls_total")
        .filter_map(|(_, l)| l.get("method").map(String::as_str))
        .collect();
    eprintln!(
        "{} client calls to distinct methods: {} client method labels",
        max + 500,
        client_methods.len()
    );
    assert_eq!(client_methods.len(), max + 1);
    assert!(client_methods.contains("<other>"));
}
