//! The NATS JetStream transport against the machine's NATS server:
//! confirmed, de-duplicated, pipelined publishes; subscriptions that
//! replay and filter; competing consumers in two processes (this test
//! binary run again as workers); long callbacks kept alive with `+WPI`;
//! outages through a proxy; requeue and reject. Every test works in
//! streams of its own (`ZTEST<random>_BUS`) and deletes them at the end.
//!
//! One file over 600 lines on purpose: each file under `tests/` is a test
//! binary of its own, linked on its own, so a suite that shares its peers
//! and fixtures stays one binary (split, it would link once per part).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::json;
use zerorpc_bus::message::Message;
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Delivery, Event, Filters, Since, Subscription};
use zerorpc_bus::transport::nats::{self, Nats, NatsOptions, NatsSubscribe};
use zerorpc_bus::transport::{Outgoing, Settlement, Transport};
use zerorpc_bus::Error;
use zerorpc_testkit::{nats_url, within, TcpProxy, WEDGE};

/// A topic prefix (and so a stream) of this test's own.
fn unique_prefix() -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("ztest{}.bus", &id[id.len() - 12..])
}

fn stream_of(prefix: &str) -> String {
    prefix.to_uppercase().replace('.', "_")
}

fn opts() -> NatsOptions {
    let mut o = NatsOptions::new(nats_url());
    o.duplicate_window = Duration::from_secs(120);
    o
}

fn message(topic: &str, n: u64) -> Message {
    Message::new(topic, json!({ "n": n }), n, "tester")
}

fn outgoing(m: &Message) -> Outgoing {
    Outgoing {
        message: m.clone(),
        json: m.to_canonical_json(),
        schema_name: None,
        via: Vec::new(),
    }
}

async fn send(
    nats: &Nats,
    msgs: &[Message],
) -> Vec<Result<zerorpc_bus::transport::Receipt, Error>> {
    let batch: Arc<[Outgoing]> = msgs.iter().map(outgoing).collect();
    within("nats send", nats.send(batch)).await
}

async fn js() -> jetstream::Context {
    let client = async_nats::connect(nats_url()).await.unwrap();
    jetstream::new(client)
}

/// Messages stored in `prefix`'s stream.
async fn stored(prefix: &str) -> u64 {
    let mut s = js().await.get_stream(stream_of(prefix)).await.unwrap();
    s.info().await.unwrap().state.messages
}

/// Deletes the streams when the test ends (also when it fails).
use zerorpc_testkit::DropNatsStreams as Cleanup;

async fn next_delivery(sub: &mut Subscription) -> Delivery {
    match within("a delivery", sub.recv()).await {
        Some(Event::Message(d)) => d,
        Some(Event::Quarantined { reason, .. }) => panic!("quarantined: {reason}"),
        None => panic!("the subscription ended"),
    }
}

fn n_of(d: &Delivery) -> u64 {
    d.message.msg["n"].as_u64().expect("a body with n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_are_confirmed_deduplicated_and_pipelined() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(vec![prefix.clone()]);
    let nats = Nats::connect(opts()).await.unwrap();
    let topic = format!("{prefix}.dev.test.x");
    let msgs: Vec<Message> = (1..=3).map(|n| message(&topic, n)).collect();
    let receipts: Vec<_> = send(&nats, &msgs)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let seqs: Vec<u64> = receipts.iter().map(|r| r.seq.unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(receipts
        .iter()
        .all(|r| r.transport == "nats" && !r.duplicate));

    // The same message again: JetStream knows its Nats-Msg-Id.
    let again = send(&nats, &msgs[..1]).await.remove(0).unwrap();
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.seq, Some(1));
    assert_eq!(stored(&prefix).await, 3);

    // What NATS cannot carry is refused, the rest of the batch goes.
    let bad = [
        message(&format!("{prefix}.dev.a b"), 9),
        message(&format!("{prefix}..x"), 9),
        message(&format!("{prefix}.*.x"), 9),
        message(&prefix, 9),
        message(&format!("{prefix}.dev.ok"), 4),
    ];
    let r = send(&nats, &bad).await;
    for e in &r[..4] {
        match e {
            Err(Error::Unroutable { route, .. }) => {
                assert!(
                    route.contains("not a valid NATS subject") || route.contains("segment"),
                    "{route}"
                )
            }
            other => panic!("expected Unroutable, got {other:?}"),
        }
    }
    assert_eq!(r[4].as_ref().unwrap().seq, Some(4));

    // 20,000 through a publisher: pipelined in windows, all confirmed.
    let mut po = PublisherOptions::new("");
    po.rules.prefix = prefix.clone();
    po.modname = "bulk".into();
    let publisher = Publisher::with_transports(po, vec![Arc::new(nats.clone())]);
    let n = 20_000u64;
    let started = Instant::now();
    let confs = within(
        "20,000 publishes",
        publisher.publish_all("item", (0..n).map(|k| json!({ "n": k }))),
    )
    .await;
    let mut seqs = HashSet::new();
    for c in &confs {
        let c = c.as_ref().unwrap();
        assert!(!c.duplicate());
        assert!(seqs.insert(c.seq().unwrap()), "a seq twice");
    }
    assert_eq!(seqs.len() as u64, n);
    assert_eq!(stored(&prefix).await, 4 + n);
    eprintln!("20,000 confirmed in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_replay_in_order_and_filter_exactly() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(vec![prefix.clone()]);
    let nats = Nats::connect(opts()).await.unwrap();
    let a = format!("{prefix}.dev.a.x");
    let b = format!("{prefix}.dev.b.y");
    let msgs: Vec<Message> = (0..10)
        .map(|k| message(if k % 2 == 0 { &a } else { &b }, k))
        .collect();
    let mut batch: Vec<Outgoing> = msgs.iter().map(outgoing).collect();
    batch[0].schema_name = Some("test.schema.v1".into());
    batch[0].via = vec!["amqp".into(), "zmq".into()];
    let seqs: Vec<u64> = within("send", nats.send(batch.into()))
        .await
        .into_iter()
        .map(|r| r.unwrap().seq.unwrap())
        .collect();

    // Everything, from the start, in order, with seqs and headers.
    let how = |since| NatsSubscribe {
        prefix: Some(prefix.clone()),
        since,
        ..NatsSubscribe::default()
    };
    let mut all = nats::subscribe(&opts(), how(Since::Start), Filters::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(next_delivery(&mut all).await);
    }
    assert_eq!(
        got.iter().map(n_of).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(got.iter().map(|d| d.seq.unwrap()).collect::<Vec<_>>(), seqs);
    assert!(got.iter().all(|d| d.attempt == 1 && d.ack.is_none()));
    assert_eq!(got[0].message, msgs[0]);
    assert_eq!(
        got[0].message.to_canonical_json(),
        msgs[0].to_canonical_json()
    );
    assert_eq!(got[0].schema_name.as_deref(), Some("test.schema.v1"));
    assert_eq!(got[0].via, ["amqp", "zmq"]);
    assert!(got[1].schema_name.is_none() && got[1].via.is_empty());

    // A glob (fnmatch: `*` spans dots) with the prefix from the pattern.
    let only_a = Filters {
        patterns: vec![format!("{prefix}.dev.a*")],
        ..Filters::default()
    };
    let mut sub_a = nats::subscribe(
        &opts(),
        NatsSubscribe {
            since: Since::Start,
            ..NatsSubscribe::default()
        },
        only_a,
    )
    .await
    .unwrap();
    for k in (0..10).step_by(2) {
        assert_eq!(n_of(&next_delivery(&mut sub_a).await), k);
    }
    // Nothing of b's came in between, nor comes now: the next is this.
    let end = message(&format!("{prefix}.dev.a.end"), 100);
    send(&nats, &[message(&b, 99), end.clone()]).await;
    assert_eq!(next_delivery(&mut sub_a).await.message.msg_id, end.msg_id);

    // From a sequence number.
    let mut from_seq = nats::subscribe(&opts(), how(Since::Seq(seqs[6])), Filters::default())
        .await
        .unwrap();
    let d = next_delivery(&mut from_seq).await;
    assert_eq!((d.seq, n_of(&d)), (Some(seqs[6]), 6));

    // From a time: between two confirmed publishes (the server stamps a
    // message on receipt, before its ack; same clock).
    send(&nats, &[message(&a, 50)]).await[0].as_ref().unwrap();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let after = message(&a, 51);
    let after_seq = send(&nats, std::slice::from_ref(&after)).await[0]
        .as_ref()
        .unwrap()
        .seq;
    let mut from_time = nats::subscribe(&opts(), how(Since::Time(t)), Filters::default())
        .await
        .unwrap();
    let d = next_delivery(&mut from_time).await;
    assert_eq!((d.seq, &d.message.msg_id), (after_seq, &after.msg_id));

    // Since::Next: only what comes after.
    let mut next = nats::subscribe(&opts(), how(Since::Next), Filters::default())
        .await
        .unwrap();
    let later = message(&a, 200);
    send(&nats, std::slice::from_ref(&later)).await;
    assert_eq!(next_delivery(&mut next).await.message.msg_id, later.msg_id);

    // Not an envelope: quarantined (and terminated).
    js().await
        .publish(format!("{prefix}.dev.junk"), "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    match within("quarantine", next.recv()).await {
        Some(Event::Quarantined { reason, raw, seq }) => {
            assert!(reason.contains("not a fedmsg envelope"), "{reason}");
            assert_eq!(raw, "not json");
            assert!(seq.is_some());
        }
        other => panic!("expected a quarantined event, got {other:?}"),
    }
    assert_eq!(
        next.stats()
            .quarantined
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // Neither patterns nor a prefix: no stream to read.
    let e = nats::subscribe(
        &opts(),
        NatsSubscribe::default(),
        Filters {
            patterns: vec!["*.bus.dev".into()],
            ..Filters::default()
        },
    )
    .await
    .err()
    .expect("no stream named");
    assert!(e.to_string().contains("literal segment"), "{e}");
}

// ---- competing consumers: this binary, run again as workers ----------

const WORKER_PREFIX: &str = "ZTEST_NATS_WORKER_PREFIX";
const WORKER_DURABLE: &str = "ZTEST_NATS_WORKER_DURABLE";
const WORKER_ACK_WAIT: &str = "ZTEST_NATS_WORKER_ACK_WAIT_MS";
const WORKER_HOLD_AFTER: &str = "ZTEST_NATS_WORKER_HOLD_AFTER";

/// A worker process (run by the tests below): acks every message of the
/// durable and prints `ACKED <msg_id> <attempt>`; with a hold count, after
/// that many acks it prints `HOLD <msg_id>` and keeps the next message
/// unacknowledged until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process for the competing consumer tests"]
async fn nats_worker() {
    let Ok(prefix) = std::env::var(WORKER_PREFIX) else {
        return;
    };
    let durable = std::env::var(WORKER_DURABLE).unwrap();
    let ack_wait: u64 = std::env::var(WORKER_ACK_WAIT).unwrap().parse().unwrap();
    let hold_after: Option<usize> = std::env::var(WORKER_HOLD_AFTER)
        .ok()
        .map(|v| v.parse().unwrap());
    let mut sub = nats::subscribe(
        &opts(),
        NatsSubscribe {
            durable: Some(durable),
            prefix: Some(prefix),
            prefetch: 8,
            manual_ack: true,
            since: Since::Start,
            ack_wait: Duration::from_millis(ack_wait),
        },
        Filters::default(),
    )
    .await
    .unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    let mut acked = 0;
    let give_up = Instant::now() + Duration::from_secs(180);
    while Instant::now() < give_up {
        let Ok(Some(Event::Message(d))) =
            tokio::time::timeout(Duration::from_secs(1), sub.recv()).await
        else {
            continue;
        };
        if hold_after == Some(acked) {
            writeln!(out, "HOLD {}", d.message.msg_id).unwrap();
            out.flush().unwrap();
            std::future::pending::<()>().await;
        }
        // A little work, so that both workers get a share.
        tokio::time::sleep(Duration::from_millis(1)).await;
        d.ack.as_ref().unwrap().ack().await.unwrap();
        acked += 1;
        writeln!(out, "ACKED {} {}", d.message.msg_id, d.attempt).unwrap();
        out.flush().unwrap();
    }
}

/// A worker process and the lines it prints (`READY`, `ACKED`, `HOLD`).
struct Worker {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Worker {
    fn start(prefix: &str, durable: &str, ack_wait: Duration, hold_after: Option<usize>) -> Worker {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "nats_worker", "--nocapture", "--include-ignored"])
            .env(WORKER_PREFIX, prefix)
            .env(WORKER_DURABLE, durable)
            .env(WORKER_ACK_WAIT, ack_wait.as_millis().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(h) = hold_after {
            cmd.env(WORKER_HOLD_AFTER, h.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let ours = ["READY", "ACKED", "HOLD"]
                    .iter()
                    .any(|p| line.starts_with(p));
                if ours && tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut w = Worker { child, lines };
        let first = w.line();
        assert_eq!(first, "READY");
        w
    }

    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(WEDGE)
            .expect("the worker said nothing within a minute")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads both workers' lines until every id of `want` was acked: per
/// worker, the ids it acked (with their attempts) and what it held.
fn collect(
    workers: &mut [Worker],
    want: &HashSet<String>,
) -> (Vec<Vec<(String, u32)>>, Vec<String>) {
    let mut acked: Vec<Vec<(String, u32)>> = vec![Vec::new(); workers.len()];
    let mut held = Vec::new();
    let mut union = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !want.is_subset(&union) {
        assert!(
            Instant::now() < deadline,
            "only {} of {} acked",
            union.len(),
            want.len()
        );
        let mut any = false;
        for (i, w) in workers.iter_mut().enumerate() {
            while let Ok(line) = w.lines.try_recv() {
                any = true;
                let parts: Vec<&str> = line.split(' ').collect();
                match parts[..] {
                    ["ACKED", id, attempt] => {
                        union.insert(id.to_owned());
                        acked[i].push((id.to_owned(), attempt.parse().unwrap()));
                    }
                    ["HOLD", id] => held.push(id.to_owned()),
                    _ => {}
                }
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    (acked, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_in_two_processes_share_a_durable() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(vec![prefix.clone()]);
    let nats = Nats::connect(opts()).await.unwrap();
    // The stream exists before the workers bind.
    send(&nats, &[message(&format!("{prefix}.dev.first"), 0)]).await[0]
        .as_ref()
        .unwrap();
    let durable = format!("work-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let (p, d) = (prefix.clone(), durable.clone());
    let mut workers = tokio::task::spawn_blocking(move || {
        vec![
            Worker::start(&p, &d, Duration::from_secs(30), None),
            Worker::start(&p, &d, Duration::from_secs(30), None),
        ]
    })
    .await
    .unwrap();
    let n = 2000u64;
    let msgs: Vec<Message> = (1..=n)
        .map(|k| message(&format!("{prefix}.dev.work"), k))
        .collect();
    for r in send(&nats, &msgs).await {
        r.unwrap();
    }
    let want: HashSet<String> = msgs.iter().map(|m| m.msg_id.clone()).collect();
    let want2 = want.clone();
    let (acked, _) = tokio::task::spawn_blocking(move || {
        let r = collect(&mut workers, &want2);
        for w in &mut workers {
            w.kill();
        }
        r
    })
    .await
    .unwrap();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (id, _) in acked.iter().flatten() {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "acked more than once: {twice:?}");
    for id in &want {
        assert!(seen.contains_key(id.as_str()), "{id} never acked");
    }
    let shares: Vec<usize> = acked.iter().map(Vec::len).collect();
    eprintln!("shares: {shares:?}");
    assert!(
        shares.iter().all(|&s| s > 0),
        "one worker got nothing: {shares:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_held_by_a_killed_worker_goes_to_the_other() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(vec![prefix.clone()]);
    let nats = Nats::connect(opts()).await.unwrap();
    send(&nats, &[message(&format!("{prefix}.dev.first"), 0)]).await[0]
        .as_ref()
        .unwrap();
    let durable = format!("kill-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let ack_wait = Duration::from_secs(2);
    // The first worker acks the first message (the one above), then holds
    // the next one without acking it.
    let (p, d) = (prefix.clone(), durable.clone());
    let mut holder = tokio::task::spawn_blocking(move || Worker::start(&p, &d, ack_wait, Some(1)))
        .await
        .unwrap();
    let msgs: Vec<Message> = (1..=20)
        .map(|k| message(&format!("{prefix}.dev.work"), k))
        .collect();
    for r in send(&nats, &msgs).await {
        r.unwrap();
    }
    let (held, mut holder) = tokio::task::spawn_blocking(move || loop {
        let line = holder.line();
        if let Some(id) = line.strip_prefix("HOLD ") {
            break (id.to_owned(), holder);
        }
    })
    .await
    .unwrap();
    // SIGKILL, mid-message.
    holder.kill();
    let (p, d) = (prefix.clone(), durable.clone());
    let want: HashSet<String> = msgs.iter().map(|m| m.msg_id.clone()).collect();
    let (acked, _) = tokio::task::spawn_blocking(move || {
        let mut other = vec![Worker::start(&p, &d, ack_wait, None)];
        collect(&mut other, &want)
    })
    .await
    .unwrap();
    let attempt = acked[0]
        .iter()
        .find(|(id, _)| *id == held)
        .map(|(_, a)| *a)
        .expect("the held message was acked by the other worker");
    assert!(attempt >= 2, "attempt {attempt}");
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_keeps_a_long_callback_s_message() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(vec![prefix.clone()]);
    let nats = Nats::connect(opts()).await.unwrap();
    let topic = format!("{prefix}.dev.long");
    send(&nats, &[message(&topic, 0)]).await[0]
        .as_ref()
        .unwrap();
    let mut sub = nats::subscribe(
        &opts(),
        NatsSubscribe {
            prefix: Some(prefix.clone()),
            durable: Some("long".into()),
            prefetch: 1,
            manual_ack: true,
            since: Since::Next,
            ack_wait: Duration::from_secs(2),
        },
        Filters::default(),
    )
    .await
    .unwrap();
    let first = message(&topic, 1);
    send(&nats, std::slice::from_ref(&first)).await[0]
        .as_ref()
        .unwrap();
    let d = next_delivery(&mut sub).await;
    assert_eq!(
        (d.message.msg_id.as_str(), d.attempt),
        (first.msg_id.as_str(), 1)
    );
    let ack = d.ack.clone().unwrap();
    // A 6 s callback (3 × ack_wait), saying so every second.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ack.in_progress().await.unwrap();
    }
    ack.ack().await.unwrap();
    // Not redelivered: the next delivery is the next message.
    let second = message(&topic, 2);
    send(&nats, std::slice::from_ref(&second)).await[0]
        .as_ref()
        .unwrap();
    let d = next_delivery(&mut sub).await;
    assert_eq!(
        (d.message.msg_id.as_str(), d.attempt),
        (second.msg_id.as_str(), 1)
    );
    // Without `+WPI` the same hold gets it redelivered after ack_wait.
    let d2 = next_delivery(&mut sub).await;
    assert_eq!(d2.message.msg_id, second.msg_id);
    assert!(d2.attempt >= 2, "attempt {}", d2.attempt);
    d2.ack.unwrap().ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_redelivers_and_reject_does_not() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(vec![prefix.clone()]);
    let nats = Nats::connect(opts()).await.unwrap();
    let topic = format!("{prefix}.dev.rr");
    let m = message(&topic, 1);
    send(&nats, std::slice::from_ref(&m)).await[0]
        .as_ref()
        .unwrap();
    let durable = "rr";
    let mut sub = nats::subscribe(
        &opts(),
        NatsSubscribe {
            prefix: Some(prefix.clone()),
            durable: Some(durable.into()),
            prefetch: 4,
            manual_ack: true,
            since: Since::Start,
            ack_wait: Duration::from_secs(1),
        },
        Filters::default(),
    )
    .await
    .unwrap();
    let d = next_delivery(&mut sub).await;
    assert_eq!(
        (d.message.msg_id.as_str(), d.attempt),
        (m.msg_id.as_str(), 1)
    );
    d.ack
        .unwrap()
        .settle(Settlement::Requeue(Duration::from_millis(200)))
        .await
        .unwrap();
    let d = next_delivery(&mut sub).await;
    assert_eq!(
        (d.message.msg_id.as_str(), d.attempt),
        (m.msg_id.as_str(), 2)
    );
    d.ack.unwrap().settle(Settlement::Reject).await.unwrap();
    // Rejected: nothing pending on the consumer, and nothing comes back
    // after ack_wait (1 s) has passed three times.
    let stream = js().await.get_stream(stream_of(&prefix)).await.unwrap();
    within("no ack pending", async {
        loop {
            let info = stream.consumer_info(durable).await.unwrap();
            if info.num_ack_pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    match tokio::time::timeout(Duration::from_secs(3), sub.recv()).await {
        Err(_) => {}
        Ok(other) => panic!("a rejected message came back: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_fail_clearly_and_recover_without_double_copies() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(vec![prefix.clone()]);
    let topic = format!("{prefix}.dev.outage");
    let mut proxy = TcpProxy::start("127.0.0.1:4222").await;
    let mut o = opts();
    o.url = format!("nats://127.0.0.1:{}", proxy.port());
    o.confirm_timeout = Duration::from_secs(3);
    let nats = Nats::connect(o).await.unwrap();
    let m0 = message(&topic, 0);
    send(&nats, std::slice::from_ref(&m0)).await[0]
        .as_ref()
        .unwrap();

    // A publish on its way when the server goes away: its ack may be
    // lost (or it may not have reached the server at all).
    let m1 = message(&topic, 1);
    let on_the_way = {
        let nats = nats.clone();
        let m1 = m1.clone();
        tokio::spawn(async move { send(&nats, &[m1]).await.remove(0) })
    };
    tokio::task::yield_now().await;
    proxy.cut();

    // While it is away: a clear failure, within about the confirm timeout.
    let m2 = message(&topic, 2);
    let started = Instant::now();
    let r = send(&nats, std::slice::from_ref(&m2)).await.remove(0);
    let took = started.elapsed();
    match r {
        Err(Error::Unconfirmed { msg_id, reason }) => {
            assert_eq!(msg_id, m2.msg_id);
            assert!(reason.starts_with("nats: "), "{reason}");
            assert!(
                reason.contains("not reachable") || reason.contains("no publish ack"),
                "{reason}"
            );
        }
        other => panic!("expected Unconfirmed, got {other:?}"),
    }
    assert!(took >= Duration::from_secs(2), "gave up after {took:?}");
    assert!(took < Duration::from_secs(15), "gave up after {took:?}");
    let first_try = within("the publish on its way", on_the_way).await.unwrap();
    eprintln!("the publish on its way at the cut: {first_try:?}");

    // Back: publishes are confirmed again; m1 once more is stored once.
    proxy.resume().await;
    let m3 = message(&topic, 3);
    let r = send(&nats, &[m1.clone(), m3.clone()]).await;
    let r1 = r[0].as_ref().unwrap();
    r[1].as_ref().unwrap();
    if first_try.is_ok() {
        assert!(r1.duplicate, "m1 was confirmed before: {r1:?}");
    }
    eprintln!("m1 again: {r1:?}");

    // A message the server stored while its ack was lost (published
    // straight to the server here) is not stored again through the proxy.
    let m4 = message(&topic, 4);
    let direct = Nats::connect(opts()).await.unwrap();
    send(&direct, std::slice::from_ref(&m4)).await[0]
        .as_ref()
        .unwrap();
    let again = send(&nats, std::slice::from_ref(&m4))
        .await
        .remove(0)
        .unwrap();
    assert!(again.duplicate, "{again:?}");

    // Every msg_id at most once in the stream; m0, m1, m3, m4 there.
    let mut sub = nats::subscribe(
        &opts(),
        NatsSubscribe {
            prefix: Some(prefix.clone()),
            since: Since::Start,
            ..NatsSubscribe::default()
        },
        Filters::default(),
    )
    .await
    .unwrap();
    let total = stored(&prefix).await;
    let mut ids = Vec::new();
    for _ in 0..total {
        ids.push(next_delivery(&mut sub).await.message.msg_id);
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a message stored twice: {ids:?}");
    for m in [&m0, &m1, &m3, &m4] {
        assert!(unique.contains(&m.msg_id), "{} missing", m.msg_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_survives_a_cut() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(vec![prefix.clone()]);
    let topic = format!("{prefix}.dev.cut");
    let nats = Nats::connect(opts()).await.unwrap();
    let mut proxy = TcpProxy::start("127.0.0.1:4222").await;
    let mut o = opts();
    o.url = format!("nats://127.0.0.1:{}", proxy.port());
    for durable in [None, Some("cutter".to_owned())] {
        let mut sub = nats::subscribe(
            &o,
            NatsSubscribe {
                prefix: Some(prefix.clone()),
                durable: durable.clone(),
                since: Since::Next,
                ack_wait: Duration::from_secs(2),
                ..NatsSubscribe::default()
            },
            Filters::default(),
        )
        .await
        .unwrap();
        let before = message(&topic, 1);
        send(&nats, std::slice::from_ref(&before)).await[0]
            .as_ref()
            .unwrap();
        assert_eq!(next_delivery(&mut sub).await.message.msg_id, before.msg_id);
        proxy.cut();
        // Published while the subscriber is cut off: it comes after.
        let during = message(&topic, 2);
        send(&nats, std::slice::from_ref(&during)).await[0]
            .as_ref()
            .unwrap();
        proxy.resume().await;
        let after = message(&topic, 3);
        send(&nats, std::slice::from_ref(&after)).await[0]
            .as_ref()
            .unwrap();
        // Both come (not necessarily in order: one the server pushed into
        // the lost connection's pull request comes back after ack_wait).
        let started = Instant::now();
        let mut got = HashMap::new();
        while got.len() < 2 {
            let d = next_delivery(&mut sub).await;
            // `before` may come again: its acknowledgement can be lost
            // with the connection (seen under load).
            if d.message.msg_id == before.msg_id {
                continue;
            }
            got.insert(d.message.msg_id.clone(), d.attempt);
        }
        eprintln!("durable {durable:?}: {got:?} in {:?}", started.elapsed());
        assert!(
            got.contains_key(&during.msg_id) && got.contains_key(&after.msg_id),
            "durable {durable:?}: {got:?}"
        );
        // The client's event callback counts the reconnect: it runs as a
        // task of its own, and may come after the deliveries.
        let counted = Instant::now();
        let reconnects = loop {
            let n = sub
                .stats()
                .reconnects
                .load(std::sync::atomic::Ordering::Relaxed);
            if n >= 1 || counted.elapsed() > Duration::from_secs(30) {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(reconnects >= 1, "reconnects {reconnects}");
    }
}
