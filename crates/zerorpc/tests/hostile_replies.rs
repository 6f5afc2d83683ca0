//! A client that asks for many large replies and never reads them: the
//! server holds a bounded number of bytes for it (per-peer byte limit,
//! calls wait for room before starting) instead of every reply.
//! (One test in this binary, so that the RSS measured is its alone.)

mod raw;

use std::sync::Arc;
use std::time::Duration;

use raw::RawClient;
use zerorpc::demo::demo_service;
use zerorpc::{ChannelConfig, Client, Server, ServerOptions, Value};
use zerorpc_testkit::{rss_kib, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_large_replies_hold_bounded_memory() {
    const MIB: u64 = 1024 * 1024;
    // A long heartbeat: making 32 MiB replies takes a debug build a while
    // on a loaded machine, and this test is about memory, not liveness.
    let server = Arc::new(Server::with_options(
        demo_service(),
        ServerOptions {
            channel: ChannelConfig {
                heartbeat: Duration::from_secs(60),
                first_reply_timeout: None,
                ..Default::default()
            },
            ..Default::default()
        },
    ));
    let ep = server.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let s = server.clone();
    tokio::spawn(async move { s.run().await });
    let good = Client::connect(&ep).await.unwrap();
    good.call("echo", vec![1.into()]).await.unwrap();
    let base = rss_kib();

    let mut hostile = RawClient::connect(&ep).await;
    let mut channels = Vec::new();
    for _ in 0..24 {
        channels.push(hostile.call("bytes", vec![Value::from(32 * MIB)]).await);
    }
    let mut peak = base;
    for _ in 0..10 {
        for ch in &channels {
            hostile
                .on_channel(ch, "_zpc_hb", Value::Array(vec![0.into()]))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        peak = peak.max(rss_kib());
    }
    let grown = peak.saturating_sub(base);
    eprintln!(
        "reply amplification: RSS {base} KiB before, peak {peak} KiB (+{grown} KiB) for 24 unread 32 MiB replies; queued {} calls waiting, {} reply bytes queued",
        server.queued_calls(),
        server.queued_reply_bytes()
    );
    // Every reply held at once would be 768 MiB (plus encoding copies).
    assert!(
        grown < 300 * 1024,
        "the server's memory grew by {grown} KiB for 24 unread replies"
    );
    assert!(
        server.queued_calls() > 0,
        "calls of a client that does not read wait before producing replies"
    );
    // A well-behaved client is served meanwhile, large replies included.
    let v = within(
        "a well-behaved client's call",
        good.call("bytes", vec![Value::from(MIB)]),
    )
    .await
    .unwrap();
    assert!(matches!(v, Value::Binary(b) if b.len() == MIB as usize));

    // Once the client reads, every reply arrives.
    let mut oks = 0;
    while oks < 24 {
        let ev = hostile.recv().await;
        match ev.name.as_str() {
            "OK" => oks += 1,
            "_zpc_hb" => {}
            other => panic!("unexpected {other}"),
        }
    }
}
