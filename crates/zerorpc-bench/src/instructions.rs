//! The workload `callgrind.sh` counts instructions of (`zerorpc-bench
//! instructions KIND N`).

use zerorpc::{Client, Value};

use crate::{demo_server, secured, tarpc_pair};

/// The workload `callgrind.sh` counts instructions of: `calls` makes `n`
/// sequential `echo` calls, `stream` takes one `range(n)` stream whole,
/// `stream-api` takes it item by item through `call_stream`, `tarpc`
/// makes `n` sequential tarpc `echo` calls (for comparison), `curve` the
/// `calls` over CURVE, `recorded` the `calls` with client and server
/// recording into an embedded store (every record stored before the end),
/// `hub` the `calls` through a hub with one worker, `gateway` `echo`
/// requests through the HTTP gateway (the lean HTTP client's included),
/// `big` the `calls` with 64 KiB of bytes to echo; `concurrent` and
/// `recorded-concurrent` the `calls` and `recorded` with 256 in flight
/// (the store then holds at most 4,096 records, so that from the first
/// 2,048 calls on every call also evicts, as a full store does). One thread (a
/// current-thread runtime), so that the count repeats from run to run; the
/// script runs it at two sizes and divides the difference, so start-up and
/// connection set-up cancel out.
pub(crate) fn instructions_workload(kind: &str, n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        if kind == "tarpc" {
            // The same sequential calls through tarpc, for comparison.
            let (client, server) = tarpc_pair(None).await;
            for i in 0..=n {
                let x = i as i64;
                client
                    .echo(tarpc::context::current(), x)
                    .await
                    .expect("call");
            }
            server.abort();
            return;
        }
        // `curve`: the `calls` workload over CURVE.
        let (server_opts, opts) = secured(kind == "curve");
        let store = zerorpc::record::EmbeddedStore::new(std::time::Duration::from_secs(600));
        let recorder = match kind {
            "recorded" => Some(store),
            "recorded-concurrent" => Some(store.max_records(4096)),
            _ => None,
        }
        .map(|store| zerorpc::record::Recorder::new(store, 100_000));
        let server_opts = zerorpc::ServerOptions {
            recorder: recorder.clone(),
            ..server_opts
        };
        let opts = zerorpc::ClientOptions {
            recorder: recorder.clone(),
            ..opts
        };
        // `hub`: the `calls` through a hub with one worker.
        let (_server, ep, _hub) = if kind == "hub" {
            let (hub, input, servers) = crate::start_hub(1).await;
            (servers[0].clone(), input, Some(hub))
        } else {
            let (s, ep) = demo_server(server_opts).await;
            (s, ep, None)
        };
        // `calls`: the default (a trace context on every root call);
        // `untraced`: without it, what that context costs.
        let opts = zerorpc::ClientOptions {
            trace_roots: kind != "untraced",
            ..opts
        };
        let c = Client::connect_with(&[&ep], opts).await.expect("connect");
        // One call first: the connection is up before the counted part.
        c.call("echo", vec![Value::from(0)]).await.expect("call");
        match kind {
            // `gateway`: `POST /echo` through the HTTP gateway, sent by
            // the lean HTTP client (`RawHttp`), sequentially.
            "gateway" => {
                let addr = crate::start_gateway(&ep).await;
                let mut h = crate::raw_http_conn(addr).await;
                for _ in 0..n {
                    h = crate::raw_http_echo(h).await;
                }
            }
            "calls" | "untraced" | "curve" | "recorded" | "hub" => {
                for i in 0..n {
                    c.call("echo", vec![Value::from(i)]).await.expect("call");
                }
            }
            "concurrent" | "recorded-concurrent" => {
                use futures::StreamExt;
                futures::stream::iter(0..n)
                    .map(|i| c.call("echo", vec![Value::from(i)]))
                    .buffer_unordered(256)
                    .for_each(|r| {
                        r.expect("call");
                        async {}
                    })
                    .await;
            }
            "big" => {
                for _ in 0..n {
                    let arg = Value::Binary(vec![7u8; crate::BIG]);
                    c.call("echo", vec![arg]).await.expect("call");
                }
            }
            "stream" => {
                let items = c.call("range", vec![Value::from(n)]).await.expect("stream");
                assert_eq!(items.as_array().map(Vec::len), Some(n as usize));
            }
            // The same stream through `call_stream` (its items handed over
            // one by one as they are polled, by the call's driver task).
            "stream-api" => {
                use futures::StreamExt;
                let items = c
                    .call_stream("range", vec![Value::from(n)])
                    .await
                    .expect("stream")
                    .fold(0u64, |k, r| {
                        r.expect("item");
                        async move { k + 1 }
                    })
                    .await;
                assert_eq!(items, n);
            }
            other => panic!(
                "instructions: calls, untraced, curve, recorded, hub, big, stream, stream-api, gateway, tarpc, concurrent or recorded-concurrent, not {other}"
            ),
        }
        if let Some(r) = recorder {
            assert!(
                r.flush(std::time::Duration::from_secs(60)).await,
                "records shipped"
            );
            assert_eq!(
                r.written(),
                2 * (n + 1),
                "both sides of every call recorded"
            );
        }
    });
}
