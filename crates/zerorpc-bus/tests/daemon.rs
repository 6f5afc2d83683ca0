//! The daemon end to end, in process: confirmed publishes, gapless
//! subscriptions across disconnections and restarts, idempotent retries,
//! bad input that harms nobody else.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use zerorpc_bus::daemon::{BusServiceClient, Daemon, DaemonOptions};
use zerorpc_bus::protocol::{DUPLICATE, REJECTED, STORED};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Event, Filters, Since, Subscription};
use zerorpc_testkit::{free_port, scratch_dir, within};

fn fixed_ports(store: &std::path::Path) -> DaemonOptions {
    let mut o = DaemonOptions::new(store);
    o.ingest = format!("tcp://127.0.0.1:{}", free_port());
    o.publish = format!("tcp://127.0.0.1:{}", free_port());
    o.replay = Some(format!("tcp://127.0.0.1:{}", free_port()));
    o
}

fn same_ports(o: &DaemonOptions) -> DaemonOptions {
    let mut n = DaemonOptions::new(&o.store);
    n.ingest = o.ingest.clone();
    n.publish = o.publish.clone();
    n.replay = o.replay.clone();
    n
}

/// Next `n` messages of a subscription: (seq, i) pairs.
async fn take(sub: &mut Subscription, n: usize) -> Vec<(u64, u64)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match sub.next().await {
            Some(Event::Message(d)) => {
                got.push((d.seq.expect("a seq from the daemon"), d.message.i))
            }
            Some(Event::Quarantined { reason, .. }) => panic!("quarantined: {reason}"),
            None => panic!("the subscription ended after {} messages", got.len()),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_immediately_after_start_is_confirmed_and_delivered() {
    let dir = scratch_dir("bus-first-publish");
    let daemon = Daemon::start(DaemonOptions::ephemeral(&dir)).await.unwrap();
    let p = Publisher::connect(PublisherOptions::new(daemon.ingest_endpoint()))
        .await
        .unwrap();
    let c = within("first publish", p.publish("first", json!({"n": 1})))
        .await
        .unwrap();
    assert_eq!(
        (c.seq().expect("a seq from the daemon"), c.duplicate()),
        (1, false)
    );
    // A subscriber that joins later still gets it, from the log.
    let mut sub = Subscription::bus(daemon.ingest_endpoint(), Since::Start, Filters::default())
        .await
        .unwrap();
    let got = within("late subscriber", take(&mut sub, 1)).await;
    assert_eq!(got, [(1, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_through_disconnects_and_a_restart_arrive_once_in_order() {
    let dir = scratch_dir("bus-no-loss");
    let opts = fixed_ports(&dir);
    let restart = same_ports(&opts);
    let daemon = Daemon::start(opts).await.unwrap();
    let bus = daemon.ingest_endpoint().to_owned();
    let p = Publisher::connect(PublisherOptions::new(&bus))
        .await
        .unwrap();
    const N: u64 = 10_000;

    // Publishing runs throughout; the subscriber joins after it started.
    let publishing = {
        let p = p.clone();
        tokio::spawn(async move {
            let mut confirmed = Vec::new();
            for chunk in 0..(N / 500) {
                let sends: Vec<_> = (0..500)
                    .map(|k| p.publish("load", json!({"k": chunk * 500 + k})))
                    .collect();
                for c in futures::future::join_all(sends).await {
                    confirmed.push(c.expect("confirmed"));
                }
            }
            confirmed
        })
    };
    let mut sub = Subscription::bus(&bus, Since::Seq(1), Filters::default())
        .await
        .unwrap();
    let mut got = within("first part", take(&mut sub, 2_000)).await;
    // Disconnect: the subscriber goes away, a new one resumes where it was.
    let resume = sub.next_seq();
    drop(sub);
    let mut sub = Subscription::bus(&bus, Since::Seq(resume), Filters::default())
        .await
        .unwrap();
    got.extend(within("second part", take(&mut sub, 3_000)).await);
    // The daemon itself goes away and comes back on the same endpoints:
    // the subscription reconnects on its own and resumes.
    daemon.shutdown().await;
    let daemon = Daemon::start(restart).await.unwrap();
    let confirmed = within("publishing", publishing).await.unwrap();
    assert_eq!(confirmed.len() as u64, N);
    got.extend(within("the rest", take(&mut sub, (N as usize) - got.len())).await);
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(
        seqs,
        (1..=N).collect::<Vec<_>>(),
        "every message once, in order"
    );
    let mut is: Vec<u64> = got.iter().map(|g| g.1).collect();
    is.sort_unstable();
    is.dedup();
    assert_eq!(is.len() as u64, N, "every publish distinct");
    assert!(
        sub.stats()
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert_eq!(daemon.info().last_seq, N);
}

/// The background task reads ahead of the reader: a new subscription
/// resumes after what the reader took, not after what the task fetched.
/// (Resuming from the task's position lost what waited in the buffer: the
/// test above wedged now and then, waiting for messages that were never
/// to come.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_resumes_after_what_its_reader_took() {
    let dir = scratch_dir("bus-resume-read");
    let daemon = Daemon::start(DaemonOptions::ephemeral(&dir)).await.unwrap();
    let bus = daemon.ingest_endpoint().to_owned();
    let p = Publisher::connect(PublisherOptions::new(&bus))
        .await
        .unwrap();
    for k in 1..=10u64 {
        p.publish("resume", json!({"k": k})).await.unwrap();
    }
    let mut sub = Subscription::bus(&bus, Since::Start, Filters::default())
        .await
        .unwrap();
    assert_eq!(sub.next_seq(), 1, "nothing read yet");
    // Let the background task fetch all ten into the buffer.
    within("the task fetches all", async {
        while sub
            .stats()
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed)
            < 10
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let first: Vec<u64> = take(&mut sub, 3).await.iter().map(|g| g.0).collect();
    assert_eq!(first, [1, 2, 3]);
    assert_eq!(sub.next_seq(), 4);
    let resume = sub.next_seq();
    drop(sub);
    let mut sub = Subscription::bus(&bus, Since::Seq(resume), Filters::default())
        .await
        .unwrap();
    let rest: Vec<u64> = within("the rest", take(&mut sub, 7))
        .await
        .iter()
        .map(|g| g.0)
        .collect();
    assert_eq!(rest, (4..=10).collect::<Vec<_>>());
}

/// A daemon stopped with `shutdown` has released its endpoints: one
/// started next on the same ones binds them at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_restarts_on_its_endpoints_at_once() {
    let dir = scratch_dir("bus-restart-ports");
    let opts = fixed_ports(&dir);
    let mut daemon = Daemon::start(same_ports(&opts)).await.unwrap();
    for round in 0..20 {
        // With a client connected, as in service.
        let p = Publisher::connect(PublisherOptions::new(daemon.ingest_endpoint()))
            .await
            .unwrap();
        within("publish", p.publish("restart", json!({"round": round})))
            .await
            .unwrap();
        daemon.shutdown().await;
        daemon = match Daemon::start(same_ports(&opts)).await {
            Ok(d) => d,
            Err(e) => panic!("round {round}: restart failed: {e}"),
        };
    }
    assert_eq!(daemon.info().last_seq, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_envelope_is_stored_once_and_bad_ones_are_rejected_alone() {
    let dir = scratch_dir("bus-bad-input");
    let mut opts = DaemonOptions::ephemeral(&dir);
    opts.max_message_bytes = 4096;
    let daemon = Daemon::start(opts).await.unwrap();
    let p = Publisher::connect(PublisherOptions::new(daemon.ingest_endpoint()))
        .await
        .unwrap();
    let good = p
        .envelope("ok", json!({"a": 1}))
        .unwrap()
        .to_canonical_json();
    let client = BusServiceClient::new(
        zerorpc::Client::connect(daemon.ingest_endpoint())
            .await
            .unwrap(),
    );
    let big = p
        .envelope("big", json!({"pad": "x".repeat(5000)}))
        .unwrap()
        .to_canonical_json();
    let answers = client
        .publish(vec![
            good.clone(),
            "{not json".into(),
            "[1, 2]".into(),
            r#"{"topic": "t"}"#.into(),
            big,
            good.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(answers.len(), 6);
    assert_eq!((answers[0].0, answers[0].1), (1, STORED));
    for (k, a) in answers[1..5].iter().enumerate() {
        assert_eq!(a.1, REJECTED, "answer {k}: {a:?}");
        assert!(!a.2.is_empty(), "a rejection says why");
    }
    assert!(answers[4].2.contains("larger"), "{:?}", answers[4]);
    assert_eq!((answers[5].0, answers[5].1), (1, DUPLICATE));
    // The same envelope again (a publisher's retry): the same seq, once.
    let again = client.publish(vec![good]).await.unwrap();
    assert_eq!((again[0].0, again[0].1), (1, DUPLICATE));
    // A call with the wrong types is an error to that caller only.
    let raw = zerorpc::Client::connect(daemon.ingest_endpoint())
        .await
        .unwrap();
    assert!(raw
        .call("publish", vec![zerorpc::Value::from(42)])
        .await
        .is_err());
    // ...and everyone else is still served.
    let c = within("publish after bad input", p.publish("still", json!({})))
        .await
        .unwrap();
    assert_eq!(c.seq().expect("a seq from the daemon"), 2);
    let info = daemon.info();
    assert_eq!((info.last_seq, info.stored, info.duplicates), (2, 2, 2));
    let rejected: u64 = info.rejected.iter().map(|r| r.1).sum();
    assert_eq!(rejected, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_before_the_daemon_is_up_waits_for_it() {
    let dir = scratch_dir("bus-early-publisher");
    let opts = fixed_ports(&dir);
    let p = Publisher::connect(PublisherOptions::new(&opts.ingest))
        .await
        .unwrap();
    let pending = tokio::spawn({
        let p = p.clone();
        async move { p.publish("early", json!({"x": 1})).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _daemon = Daemon::start(opts).await.unwrap();
    let c = within("early publish", pending).await.unwrap().unwrap();
    assert_eq!(c.seq().expect("a seq from the daemon"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_globs_filter_and_positions_still_advance() {
    let dir = scratch_dir("bus-globs");
    let daemon = Daemon::start(DaemonOptions::ephemeral(&dir)).await.unwrap();
    let mut o = PublisherOptions::new(daemon.ingest_endpoint());
    o.modname = "bodhi".into();
    let p = Publisher::connect(o).await.unwrap();
    for t in [
        "update.comment",
        "update.request",
        "buildroot.override",
        "update.comment",
    ] {
        p.publish(t, json!({})).await.unwrap();
    }
    let filters = Filters {
        patterns: vec!["org.fedoraproject.dev.bodhi.update.c*".into()],
        ..Filters::default()
    };
    let mut sub = Subscription::bus(daemon.ingest_endpoint(), Since::Start, filters)
        .await
        .unwrap();
    let got = within("filtered", take(&mut sub, 2)).await;
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [1, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_all_answers_each_message_in_order_with_schema_failures_in_place() {
    let dir = scratch_dir("bus-publish-all");
    let daemon = Daemon::start(DaemonOptions::ephemeral(&dir)).await.unwrap();
    let mut registry = zerorpc_bus::schema::SchemaRegistry::empty();
    registry
        .add(
            "org.fedoraproject.dev.*.checked",
            json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}),
        )
        .unwrap();
    let mut o = PublisherOptions::new(daemon.ingest_endpoint());
    o.schemas = Some(std::sync::Arc::new(registry));
    let p = Publisher::connect(o).await.unwrap();
    let bodies = vec![
        json!({"n": 1}),
        json!({"n": "two"}),
        json!({"n": 3}),
        json!({}),
        json!({"n": 5}),
    ];
    let results = within("publish_all", p.publish_all("checked", bodies)).await;
    assert_eq!(results.len(), 5);
    let seqs: Vec<Option<u64>> = results
        .iter()
        .map(|r| {
            r.as_ref()
                .ok()
                .map(|c| c.seq().expect("a seq from the daemon"))
        })
        .collect();
    assert_eq!(seqs, [Some(1), None, Some(2), None, Some(3)]);
    for k in [1, 3] {
        let e = results[k].as_ref().unwrap_err().to_string();
        assert!(e.contains("/n"), "the failing field is named: {e}");
    }
    assert_eq!(daemon.info().last_seq, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_threads_publish_through_one_shared_publisher() {
    let dir = scratch_dir("bus-threads");
    let daemon = Daemon::start(DaemonOptions::ephemeral(&dir)).await.unwrap();
    let p = Publisher::connect(PublisherOptions::new(daemon.ingest_endpoint()))
        .await
        .unwrap();
    // Threads come and go; nothing is declared per thread.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|k| {
                        p.publish_blocking("thread", json!({"t": t, "k": k}))
                            .unwrap()
                            .seq()
                            .expect("a seq from the daemon")
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = within(
        "the threads",
        tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        }),
    )
    .await
    .unwrap();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
}
