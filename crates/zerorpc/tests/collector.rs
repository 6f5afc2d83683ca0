//! The trace collector with the real Redis on 127.0.0.1:6379: services A →
//! B → C ship their records over ZeroMQ; the collector stores them in
//! Redis with a TTL and counters.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use zerorpc::collector::{Collector, PushSink, RedisStore};
use zerorpc::record::{render_tree, Side};
use zerorpc::{
    CallError, Client, ClientOptions, Outcome, Recorder, Server, ServerOptions, TraceContext, Value,
};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_redis_through_the_collector() {
    let prefix = format!("zerorpc-test-{}", std::process::id());
    let store = redis(&prefix, Duration::from_secs(60)).await;
    let collector = Arc::new(Collector::new(store.clone()));
    let cep = collector
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let c = collector.clone();
    tokio::spawn(async move { c.run().await });
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
        let recs = within("the trace in redis", async {
            loop {
                let r = store.trace(id).await.unwrap();
                if r.len() >= 4 {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!(recs.len(), 4, "{recs:#?}");
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
        let ttl = store.ttl_of(id).await.unwrap().expect("a TTL is set");
        assert!((1..=60).contains(&ttl), "{ttl}");
    }
    // Counters match the calls made.
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
    assert_eq!(
        store
            .calls(Side::Server, "mid", "relay", "OK")
            .await
            .unwrap(),
        2
    );
    assert_eq!(rec.dropped(), 0);
    store.clear_counters().await.unwrap();
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
