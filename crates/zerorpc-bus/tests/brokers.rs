//! The bus across transports, against the real RabbitMQ, NATS, fedmsg
//! 1.1.7 and fedora-messaging 3.9.1: one publish reaching a fedmsg ZeroMQ
//! subscriber and a fedora-messaging AMQP consumer at once; bridges in each
//! direction without loops; hosted consumers' verdicts settled on the
//! brokers. (Each transport alone: `amqp.rs`, `nats.rs`, `daemon.rs`.)

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};
use zerorpc_bus::bridge::{self, run_both, BridgeStats, Memory, Side};
use zerorpc_bus::consumer::{consume, ConsumerOptions, Verdict};
use zerorpc_bus::daemon::{BusServiceClient, Daemon, DaemonOptions};
use zerorpc_bus::message::Message;
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Event, Filters, Since, Subscription};
use zerorpc_bus::transport::amqp::{self, Amqp, AmqpOptions, AmqpSubscribe};
use zerorpc_bus::transport::nats::{self, Nats, NatsOptions, NatsSubscribe};
use zerorpc_bus::transport::zmq;
use zerorpc_testkit::{
    fedmsg_python, fedora_messaging_conf, fedora_messaging_python, nats_url, rabbitmq_url,
    scratch_dir, within, DropNatsStreams, Proc,
};

const FEDMSG_TAIL: &str = include_str!("py/fedmsg_tail.py");
const FM_CONSUME: &str = include_str!("py/fm_consume.py");
const FM_PUBLISH: &str = include_str!("py/fm_publish.py");

fn unique(what: &str) -> String {
    format!(
        "ztest{}{}{}",
        what,
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    )
}

fn publisher_opts() -> PublisherOptions {
    let mut o = PublisherOptions::new("");
    o.modname = "brokers".into();
    o.username = "tester".into();
    o.confirm_timeout = Duration::from_secs(20);
    o
}

/// A fedora-messaging script under its venv, with the configuration.
fn fm_python(script: &str, args: &[&str], conf: &std::path::Path) -> Command {
    let mut cmd = Command::new(fedora_messaging_python());
    cmd.arg("-u")
        .arg("-c")
        .arg(script)
        .args(args)
        .env("FEDORA_MESSAGING_CONF", conf);
    cmd
}

/// The next line of `proc` starting with `prefix`, within the wedge guard.
async fn line(proc: &mut Proc, prefix: &str) -> String {
    let prefix = prefix.to_owned();
    let what = format!("a child to print {prefix:?}");
    // `Proc` is not `Send` across an await of spawn_blocking by reference:
    // read on this thread inside block_in_place.
    within(&what, async {
        tokio::task::block_in_place(|| proc.wait_line(&prefix))
    })
    .await
}

/// A durable queue bound to `key` on amq.topic, as fedora-messaging's
/// consumer declares it (so its own declaration matches).
async fn amqp_queue(queue: &str, key: &str) -> lapin::Channel {
    let conn = lapin::Connection::connect(&rabbitmq_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let opts = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(queue.into(), opts, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        queue.into(),
        "amq.topic".into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch
}

/// Messages waiting in `queue`.
async fn depth(ch: &lapin::Channel, queue: &str) -> u32 {
    let opts = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare(queue.into(), opts, FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

async fn delete(ch: &lapin::Channel, queue: &str) {
    let _ = ch
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
}

/// Publishes `warmup` messages on the daemon until `warm` resolves (its
/// PUB side drops what is sent before a subscriber has joined).
async fn warm_up<F: std::future::Future>(ingest: &str, warm: F) -> F::Output {
    let p = Publisher::connect(PublisherOptions::new(ingest))
        .await
        .unwrap();
    let pumping = tokio::spawn(async move {
        loop {
            let _ = p.publish("warmup", json!({})).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let out = warm.await;
    pumping.abort();
    out
}

fn parse(line: &str, prefix: &str) -> Value {
    serde_json::from_str(line.strip_prefix(prefix).unwrap().trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_publish_reaches_a_fedmsg_subscriber_and_a_fedora_messaging_consumer() {
    let dir = scratch_dir("brokers-at-once");
    let daemon = Daemon::start(DaemonOptions::ephemeral(dir.join("log")))
        .await
        .unwrap();
    let topic_word = unique("once");
    let topic = format!("org.fedoraproject.dev.brokers.{topic_word}");
    let queue = unique("fmq");
    let ch = amqp_queue(&queue, &topic).await;

    // fedmsg's tail_messages on the daemon's PUB side, fedora-messaging's
    // consumer on RabbitMQ.
    let mut tail = Proc::python_with(
        fedmsg_python(),
        FEDMSG_TAIL,
        &[daemon.publish_endpoint(), "1"],
    );
    line(&mut tail, "READY").await;
    warm_up(daemon.ingest_endpoint(), line(&mut tail, "WARM")).await;
    let conf = fedora_messaging_conf(&dir);
    let mut fm = Proc::spawn(fm_python(FM_CONSUME, &[&queue, &topic, "1"], &conf));

    let zmq = zmq::Daemon::connect(daemon.ingest_endpoint(), Duration::from_secs(20))
        .await
        .unwrap();
    let amqp = Amqp::connect(AmqpOptions::new(rabbitmq_url()))
        .await
        .unwrap();
    let p = Publisher::with_transports(publisher_opts(), vec![Arc::new(zmq), Arc::new(amqp)]);
    let body = json!({"alias": "FEDORA-2026-7", "karma": 1, "text": "h\u{e9}llo"});
    let c = within("the publish", p.publish(&topic_word, body.clone()))
        .await
        .unwrap();
    // Each transport confirmed it.
    let names: Vec<&str> = c.receipts.iter().map(|r| r.transport.as_str()).collect();
    assert_eq!(names, ["zmq", "amqp"]);
    assert!(c.receipts[0].seq.is_some());

    let from_fedmsg = parse(&line(&mut tail, "MSG ").await, "MSG ");
    assert_eq!(from_fedmsg["msg_id"], json!(c.msg_id));
    assert_eq!(from_fedmsg["topic"], json!(topic));
    assert_eq!(from_fedmsg["msg"], body);

    let from_fm = parse(&line(&mut fm, "MSG ").await, "MSG ");
    assert_eq!(from_fm["id"], json!(c.msg_id));
    assert_eq!(from_fm["topic"], json!(topic));
    assert_eq!(from_fm["body"], body);
    line(&mut fm, "ALL DONE").await;
    delete(&ch, &queue).await;
    daemon.shutdown().await;
}

/// A subscription to RabbitMQ through `queue` (bridges read with manual
/// acknowledgements).
async fn amqp_sub(queue: &str, patterns: Vec<String>) -> Subscription {
    let how = AmqpSubscribe {
        queue: Some(queue.to_owned()),
        prefetch: 32,
        manual_ack: true,
        since: None,
    };
    let filters = Filters {
        patterns,
        ..Filters::default()
    };
    amqp::subscribe(&AmqpOptions::new(rabbitmq_url()), how, filters)
        .await
        .unwrap()
}

async fn amqp_publisher() -> Publisher {
    let amqp = Amqp::connect(AmqpOptions::new(rabbitmq_url()))
        .await
        .unwrap();
    Publisher::with_transports(publisher_opts(), vec![Arc::new(amqp)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_way_bridge_joins_fedmsg_and_fedora_messaging_without_loops() {
    let dir = scratch_dir("brokers-bridge-zmq-amqp");
    let daemon = Daemon::start(DaemonOptions::ephemeral(dir.join("log")))
        .await
        .unwrap();
    let ingest = daemon.ingest_endpoint().to_owned();
    let word = unique("bridged");
    let prefix = format!("org.fedoraproject.dev.{word}");
    let pattern = format!("{prefix}.*");
    // fedora-messaging's consumer queue, bound to the test's topics.
    let fm_queue = unique("fmq");
    let ch = amqp_queue(&fm_queue, &format!("{prefix}.#")).await;

    // The bridge: daemon <-> RabbitMQ, one process, both ways.
    let bridge_queue = unique("bridgeq");
    let zmq_side = Side {
        name: "zmq".into(),
        subscription: Subscription::bus(&ingest, Since::Next, Filters::default())
            .await
            .unwrap(),
        publisher: Publisher::connect(PublisherOptions::new(&ingest))
            .await
            .unwrap(),
    };
    let amqp_side = Side {
        name: "amqp".into(),
        subscription: amqp_sub(&bridge_queue, vec![pattern.clone()]).await,
        publisher: amqp_publisher().await,
    };
    let bridging = tokio::spawn(run_both(zmq_side, amqp_side, 16));

    let mut tail = Proc::python_with(
        fedmsg_python(),
        FEDMSG_TAIL,
        &[daemon.publish_endpoint(), "2"],
    );
    line(&mut tail, "READY").await;
    warm_up(&ingest, line(&mut tail, "WARM")).await;
    let conf = fedora_messaging_conf(&dir);
    let mut fm = Proc::spawn(fm_python(
        FM_CONSUME,
        &[&fm_queue, &format!("{prefix}.#"), "2"],
        &conf,
    ));

    // Ours, on the daemon → fedmsg directly, fedora-messaging through the bridge.
    let mut o = PublisherOptions::new(&ingest);
    o.modname = word.clone();
    let ours = Publisher::connect(o).await.unwrap();
    let m1 = within(
        "publishing on the daemon",
        ours.publish("from.zmq", json!({"n": 1})),
    )
    .await
    .unwrap();
    // fedora-messaging's own publish on RabbitMQ → fedmsg through the bridge.
    let mut fm_pub = fm_python(FM_PUBLISH, &[], &conf);
    fm_pub.stdin(std::process::Stdio::piped());
    let mut publisher = Proc::spawn(fm_pub);
    {
        use std::io::Write;
        let mut stdin = publisher.child.stdin.take().unwrap();
        let spec = json!({"schema": "base.message", "topic": format!("{prefix}.from.amqp"), "body": {"n": 2}});
        writeln!(stdin, "{spec}").unwrap();
    }
    let m2_id = line(&mut publisher, "ID ").await;
    let m2_id = m2_id.split_whitespace().nth(1).unwrap().to_owned();
    line(&mut publisher, "ALL DONE").await;

    // fedmsg's subscriber sees both, once each.
    let mut fedmsg_ids = vec![
        parse(&line(&mut tail, "MSG ").await, "MSG ")["msg_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        parse(&line(&mut tail, "MSG ").await, "MSG ")["msg_id"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    // fedora-messaging's consumer too.
    let mut fm_ids = vec![
        parse(&line(&mut fm, "MSG ").await, "MSG ")["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        parse(&line(&mut fm, "MSG ").await, "MSG ")["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    line(&mut fm, "ALL DONE").await;
    let mut want = vec![m1.msg_id.clone(), m2_id.clone()];
    want.sort();
    fedmsg_ids.sort();
    fm_ids.sort();
    assert_eq!(fedmsg_ids, want);
    assert_eq!(fm_ids, want);

    // No loop: give an echo time to come round, then the daemon's log holds
    // each once (and was never offered a copy), and fedora-messaging's
    // queue got nothing more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = BusServiceClient::new(zerorpc::Client::connect(&ingest).await.unwrap());
    let (_, log) = client.read(1, vec![pattern.clone()], 100).await.unwrap();
    let mut logged: Vec<String> = log
        .iter()
        .map(|(_, raw)| Message::from_json(raw).unwrap().msg_id)
        .collect();
    logged.sort();
    assert_eq!(logged, want, "the daemon's log has each message once");
    assert_eq!(client.info().await.unwrap().duplicates, 0);
    assert_eq!(depth(&ch, &fm_queue).await, 0, "no echo reached RabbitMQ");
    bridging.abort();
    delete(&ch, &fm_queue).await;
    delete(&ch, &bridge_queue).await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_way_bridges_between_rabbitmq_and_nats_stop_loops_by_their_via_marks() {
    let word = unique("rn");
    let prefix = format!("{word}.bus");
    let _streams = DropNatsStreams(vec![prefix.clone()]);
    let pattern = format!("{prefix}.*");
    let nats_opts = NatsOptions::new(nats_url());
    let nats_pub = Publisher::with_transports(
        publisher_opts(),
        vec![Arc::new(Nats::connect(nats_opts.clone()).await.unwrap())],
    );
    let amqp_pub = amqp_publisher().await;
    // A queue that sees everything on RabbitMQ under the prefix.
    let watch = unique("watchq");
    let ch = amqp_queue(&watch, &format!("{prefix}.#")).await;

    // Two separate one-way bridges (two processes' worth): nothing shared
    // but the marks the messages carry.
    let nats_sub = |durable: String| {
        let how = NatsSubscribe {
            durable: Some(durable),
            prefix: Some(prefix.clone()),
            prefetch: 32,
            manual_ack: true,
            since: Since::Start,
            ..NatsSubscribe::default()
        };
        let filters = Filters {
            patterns: vec![pattern.clone()],
            ..Filters::default()
        };
        nats::subscribe(&nats_opts, how, filters)
    };
    // The stream must exist before a consumer binds to it.
    let first = nats_pub
        .send(
            &nats_pub
                .envelope_exact(format!("{prefix}.from.nats"), json!({"n": 1}))
                .unwrap(),
        )
        .await
        .unwrap();
    let to_amqp = (Memory::default(), BridgeStats::default());
    let to_nats = (Memory::default(), BridgeStats::default());
    let from_nats = nats_sub(unique("bridge")).await.unwrap();
    let bridge_queue = unique("bridgeq");
    let from_amqp = amqp_sub(&bridge_queue, vec![pattern.clone()]).await;
    let bridges = async {
        tokio::join!(
            bridge::run(from_nats, "nats", &amqp_pub, "amqp", &to_amqp.0, &to_amqp.1, 16),
            bridge::run(from_amqp, "amqp", &nats_pub, "nats", &to_nats.0, &to_nats.1, 16),
        )
    };
    let check = async {
        let second = amqp_pub
            .send(
                &amqp_pub
                    .envelope_exact(format!("{prefix}.from.amqp"), json!({"n": 2}))
                    .unwrap(),
            )
            .await
            .unwrap();
        // Each crossed once and came back to be dropped once.
        within("both bridges to forward and drop an echo", async {
            while to_amqp.1.forwarded.load(Ordering::Relaxed) < 1
                || to_nats.1.forwarded.load(Ordering::Relaxed) < 1
                || to_amqp.1.looped.load(Ordering::Relaxed) < 1
                || to_nats.1.looped.load(Ordering::Relaxed) < 1
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        (first, second)
    };
    let (first, second) = tokio::select! {
        _ = bridges => panic!("a bridge stopped"),
        ids = check => ids,
    };
    for stats in [&to_amqp.1, &to_nats.1] {
        assert_eq!(stats.forwarded.load(Ordering::Relaxed), 1);
        assert_eq!(stats.looped.load(Ordering::Relaxed), 1);
    }
    // RabbitMQ got each message once: its own and the bridged one.
    assert_eq!(depth(&ch, &watch).await, 2);
    // JetStream too: read the stream from the start.
    let how = NatsSubscribe {
        prefix: Some(prefix.clone()),
        since: Since::Start,
        ..NatsSubscribe::default()
    };
    let mut all = nats::subscribe(&nats_opts, how, Filters::default())
        .await
        .unwrap();
    let mut ids = Vec::new();
    while let Ok(Some(Event::Message(d))) =
        tokio::time::timeout(Duration::from_secs(2), all.recv()).await
    {
        ids.push((d.message.msg_id, d.via));
    }
    ids.sort();
    let mut want = vec![
        (first.msg_id.clone(), Vec::new()),
        (second.msg_id.clone(), vec!["amqp".to_owned()]),
    ];
    want.sort();
    assert_eq!(ids, want);
    delete(&ch, &watch).await;
    delete(&ch, &bridge_queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_verdicts_are_settled_on_rabbitmq_and_jetstream() {
    for broker in ["amqp", "nats"] {
        let word = unique("verdicts");
        let prefix = format!("{word}.bus");
        let _streams = DropNatsStreams(vec![prefix.clone()]);
        let topics: Vec<String> = ["ok", "retry", "drop", "halt"]
            .iter()
            .map(|t| format!("{prefix}.{t}"))
            .collect();
        let patterns = vec![format!("{prefix}.*")];
        let filters = Filters {
            patterns: patterns.clone(),
            ..Filters::default()
        };
        let queue = unique("consumerq");
        let nats_opts = NatsOptions::new(nats_url());
        let p = if broker == "amqp" {
            amqp_publisher().await
        } else {
            Publisher::with_transports(
                publisher_opts(),
                vec![Arc::new(Nats::connect(nats_opts.clone()).await.unwrap())],
            )
        };
        let open = || async {
            if broker == "amqp" {
                amqp_sub(&queue, patterns.clone()).await
            } else {
                let how = NatsSubscribe {
                    durable: Some(queue.clone()),
                    prefix: Some(prefix.clone()),
                    manual_ack: true,
                    since: Since::Start,
                    ..NatsSubscribe::default()
                };
                nats::subscribe(&nats_opts, how, filters.clone())
                    .await
                    .unwrap()
            }
        };
        // The queue (AMQP) must be bound before publishing; the stream
        // (NATS) exists once something is published.
        let first_sub = if broker == "amqp" {
            Some(open().await)
        } else {
            None
        };
        for t in &topics {
            p.send(&p.envelope_exact(t.clone(), json!({})).unwrap())
                .await
                .unwrap();
        }
        let sub = match first_sub {
            Some(s) => s,
            None => open().await,
        };
        let opts = ConsumerOptions {
            retry_delay: Duration::from_millis(100),
            ..ConsumerOptions::default()
        };
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let report = within(
            "the consumer to halt",
            consume(sub, opts, move |d| {
                let last = d.message.topic.rsplit('.').next().unwrap_or("").to_owned();
                let mut log = log.lock().unwrap();
                log.push((last.clone(), d.attempt));
                let retried = log.iter().any(|(t, a)| t == "retry" && *a >= 2);
                let verdict = match last.as_str() {
                    "ok" => Verdict::Ack,
                    "drop" => Verdict::Drop,
                    // Handed back once through the broker, then fine.
                    "retry" if d.attempt < 2 => Verdict::Retry,
                    "retry" => Verdict::Ack,
                    // Halt once the retried message has come back.
                    _ if retried => Verdict::Halt,
                    _ => Verdict::Retry,
                };
                async move { verdict }
            }),
        )
        .await
        .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen.contains(&("retry".to_owned(), 2)),
            "{broker}: {seen:?}"
        );
        assert_eq!(
            seen.iter().filter(|(t, _)| t == "drop").count(),
            1,
            "{broker}: a dropped message is not delivered again: {seen:?}"
        );
        assert_eq!(
            (report.acked, report.dropped),
            (2, 1),
            "{broker}: {report:?}"
        );
        // The halted message went back to the broker: the next consumer on
        // the same queue gets it (and nothing that was acked or dropped).
        let mut again = open().await;
        let d = match within("the halted message again", again.recv()).await {
            Some(Event::Message(d)) => d,
            other => panic!("{broker}: {other:?}"),
        };
        assert!(
            d.message.topic.ends_with(".halt"),
            "{broker}: {}",
            d.message.topic
        );
        if let Some(ack) = d.ack {
            ack.ack().await.unwrap();
        }
        drop(again);
        if broker == "amqp" {
            let ch = amqp_queue(&queue, "unused.binding").await;
            delete(&ch, &queue).await;
        }
    }
}
