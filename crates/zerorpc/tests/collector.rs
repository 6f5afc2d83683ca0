//! The trace collector: services ship their records over ZeroMQ; the
//! collector stores them (in the real Redis on 127.0.0.1:6379 with a TTL
//! and counters, or in memory) and answers queries about them.

use zerorpc_testkit as common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use zerorpc::collector::{Collector, PushSink, RedisStore};
use zerorpc::record::{render_tree, Side};
use zerorpc::record::{EmbeddedStore, MethodRow, Outcome, Record, Recorder, TraceStore};
use zerorpc::{CallError, Client, ClientOptions, Server, ServerOptions, TraceContext, Value};

const REDIS: &str = "redis://127.0.0.1:6379/";

async fn redis(prefix: &str, ttl: Duration) -> RedisStore {
    RedisStore::connect(REDIS, prefix, ttl)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "these tests need Redis on 127.0.0.1:6379 (it runs on the project's machines): {e}"
            )
        })
}

struct Leaf;

#[zerorpc::service(name = "leaf")]
impl Leaf {
    /// x, unless negative.
    pub fn check(&self, x: i64) -> Result<i64, CallError> {
        if x < 0 {
            Err(CallError::new("ValueError", "negative"))
        } else {
            Ok(x)
        }
    }
}

struct Mid {
    next: Client,
}

#[zerorpc::service(name = "mid")]
impl Mid {
    /// Asks the leaf.
    pub async fn relay(&self, x: i64) -> Result<i64, CallError> {
        let v = self.next.call("check", vec![x.into()]).await?;
        Ok(v.as_i64().unwrap_or_default())
    }
}

async fn serve(service: impl zerorpc::IntoService, rec: &Recorder) -> String {
    let s = Arc::new(Server::with_options(
        service,
        ServerOptions {
            recorder: Some(rec.clone()),
            ..Default::default()
        },
    ));
    let ep = s.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    tokio::spawn(async move { s.run().await });
    ep
}

async fn client(ep: &str, rec: &Recorder) -> Client {
    Client::connect_with(
        &[ep],
        ClientOptions {
            recorder: Some(rec.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Services leaf ← mid ← a client ship their records to a collector
/// storing into `store`; three traced calls (the third fails in the leaf)
/// are asked back through the collector's query service: each trace's
/// tree, and per-method counts and latencies. Returns the trace ids.
async fn three_calls_through_a_collector(store: impl TraceStore) -> Vec<String> {
    let collector = Arc::new(Collector::new(store));
    let cep = collector
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let c = collector.clone();
    tokio::spawn(async move { c.run().await });
    let queries = Arc::new(Server::new(collector.queries()));
    let qep = queries.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    tokio::spawn(async move { queries.run().await });
    let ask = Client::connect(&qep).await.unwrap();
    // A live follower, from before the calls.
    let mut tail = ask.call_stream("tail", vec![]).await.unwrap();
    // Every process would have its own recorder shipping to the collector.
    let rec = Recorder::new(PushSink::connect(&cep).await.unwrap(), 10_000);
    let leaf = serve(Leaf, &rec).await;
    let mid = serve(
        Mid {
            next: client(&leaf, &rec).await,
        },
        &rec,
    )
    .await;
    let caller = client(&mid, &rec).await;
    let mut ids = Vec::new();
    for x in [1i64, 2, -3] {
        let root = TraceContext::new_root();
        ids.push(root.trace_id_hex());
        let r = root.scope(caller.call("relay", vec![x.into()])).await;
        assert_eq!(r.is_ok(), x >= 0);
    }
    for (i, id) in ids.iter().enumerate() {
        let recs = within("the trace in the store", async {
            loop {
                let v = ask.call("trace", vec![id.as_str().into()]).await.unwrap();
                let r: Vec<Record> = rmpv::ext::from_value(v).unwrap();
                if r.len() >= 4 {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!(recs.len(), 4, "{recs:#?}");
        assert!(recs.iter().all(|r| &r.trace_id == id));
        let tree = render_tree(&recs);
        assert_eq!(tree.lines().count(), 4, "{tree}");
        assert!(
            tree.lines()
                .last()
                .unwrap()
                .starts_with("      serve leaf check"),
            "{tree}"
        );
        let leaf_rec = recs
            .iter()
            .find(|r| r.side == Side::Server && r.method == "check")
            .unwrap();
        let mid_rec = recs
            .iter()
            .find(|r| r.side == Side::Client && r.method == "check")
            .unwrap();
        // the leaf's side hangs under the mid's call, which lasted longer
        assert_eq!(leaf_rec.parent_id.as_ref(), Some(&mid_rec.span_id));
        assert!(mid_rec.duration_us >= leaf_rec.duration_us);
        if i == 2 {
            assert_eq!(
                leaf_rec.outcome,
                Outcome::Err {
                    name: "ValueError".into(),
                    message: "negative".into()
                }
            );
        } else {
            assert_eq!(leaf_rec.outcome, Outcome::Ok);
        }
    }
    // Per-method counts match the calls made, over the last minute and
    // since the start.
    for window in [60u64, 0] {
        let v = ask.call("stats", vec![window.into()]).await.unwrap();
        let rows: Vec<MethodRow> = rmpv::ext::from_value(v).unwrap();
        let row = |side: &str, service: &str, method: &str| {
            rows.iter()
                .find(|r| r.side == side && r.service == service && r.method == method)
                .unwrap_or_else(|| panic!("no {side} {service} {method} in {rows:#?}"))
        };
        let leaf = &row("server", "leaf", "check").stats;
        assert_eq!((leaf.calls(), leaf.failures()), (3, 1), "{leaf:?}");
        assert_eq!(leaf.outcomes.get("ERR"), Some(&1));
        let relay = &row("server", "mid", "relay").stats;
        assert_eq!(relay.outcomes.get("OK"), Some(&2));
        assert_eq!(relay.latency.count, 3);
        assert!(relay.quantile_us(0.99).unwrap() >= leaf.quantile_us(0.5).unwrap());
    }
    // The follower saw the twelve records go by.
    let mut seen = 0;
    while seen < 12 {
        let v = within("a live record", tail.next()).await.unwrap().unwrap();
        let r: Record = rmpv::ext::from_value(v).unwrap();
        assert!(ids.contains(&r.trace_id));
        seen += 1;
    }
    assert_eq!(rec.dropped(), 0);
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_into_redis_keeps_trees_counters_and_ttls() {
    let prefix = format!("zerorpc-test-{}", std::process::id());
    let store = redis(&prefix, Duration::from_secs(60)).await;
    let ids = three_calls_through_a_collector(store.clone()).await;
    for id in &ids {
        let ttl = store.ttl_of(id).await.unwrap().expect("a TTL is set");
        assert!((1..=60).contains(&ttl), "{ttl}");
    }
    // The raw counters too.
    assert_eq!(
        store
            .calls(Side::Server, "leaf", "check", "OK")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .calls(Side::Server, "leaf", "check", "ERR")
            .await
            .unwrap(),
        1
    );
    store.clear_counters().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_collector_answers_the_same_queries() {
    let store = EmbeddedStore::new(Duration::from_secs(60));
    let ids = three_calls_through_a_collector(store.clone()).await;
    assert_eq!(store.trace(&ids[0]).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_expire_after_their_ttl() {
    let prefix = format!("zerorpc-test-ttl-{}", std::process::id());
    let store = redis(&prefix, Duration::from_secs(1)).await;
    let rec = Recorder::new(store.clone(), 100);
    let ep = serve(Leaf, &rec).await;
    let c = client(&ep, &rec).await;
    let root = TraceContext::new_root();
    let id = root.trace_id_hex();
    root.scope(c.call("check", vec![Value::from(5)]))
        .await
        .unwrap();
    within("stored", async {
        while store.trace(&id).await.unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within("expired", async {
        while !store.trace(&id).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // The counters stay.
    assert_eq!(
        store
            .calls(Side::Server, "leaf", "check", "OK")
            .await
            .unwrap(),
        1
    );
    store.clear_counters().await.unwrap();
}
