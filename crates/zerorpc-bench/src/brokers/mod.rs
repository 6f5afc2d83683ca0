//! `zerorpc-bench brokers [--quick]`: the bus's broker transports against
//! the peers they replace, on this machine's RabbitMQ and NATS, in one run.
//!
//! AMQP rows: confirmed publishes/s: fedora-messaging 3.9.1's `api.publish`
//! (one at a time, as its API is), raw `lapin` pipelined with confirms and
//! `mandatory`, sending the same bytes (what our layer costs), ours (`Publisher` over the AMQP
//! transport: confirms, `mandatory`, fedora-messaging's headers); consumed
//! messages/s from a preloaded queue: a pika consumer (Python, manual acks)
//! and ours. NATS rows: JetStream publishes/s with acks, raw `async-nats`
//! (windowed, the same envelopes and `Nats-Msg-Id`) and ours; consumed/s, a raw pull consumer and ours.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde_json::{json, Value};
use zerorpc_bus::publisher::{Publisher, PublisherOptions};
use zerorpc_bus::subscriber::{Event, Filters, Since, Subscription};
use zerorpc_bus::transport::amqp::{self, Amqp, AmqpOptions, AmqpSubscribe};
use zerorpc_bus::transport::nats::{self, Nats, NatsOptions, NatsSubscribe};
use zerorpc_testkit as common;

const FM_PUBLISH: &str = include_str!("fm_publish.py");
const PIKA_CONSUME: &str = include_str!("pika_consume.py");

struct Sizes {
    fm: usize,
    publish: usize,
    consume: usize,
}

fn body(k: usize) -> Value {
    json!({"text": "x".repeat(200), "n": k})
}

fn unique(what: &str) -> String {
    format!("bench{}{}", what, std::process::id())
}

/// Runs a Python script to its `RATE` line.
fn python_rate(script: &str, args: &[String], env: &[(&str, String)]) -> f64 {
    let out = Command::new(common::fedora_messaging_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("python");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("RATE "))
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "python printed no rate: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// A durable queue bound to `key` on amq.topic (for routable publishes and
/// the consume rows).
async fn amqp_queue(url: &str, queue: &str, key: &str) -> lapin::Channel {
    use lapin::options::{QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("amqp");
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare");
    ch.queue_bind(
        queue.into(),
        "amq.topic".into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    ch
}

/// What fedora-messaging (and our AMQP transport) puts on the wire for
/// message `k`: the body as `json.dumps` writes it, its properties and
/// headers, built by hand: the raw baselines send the same bytes as ours.
fn fedora_messaging_wire(k: usize) -> (Vec<u8>, lapin::BasicProperties) {
    use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
    let body = serde_json::to_string(&body(k))
        .expect("json")
        .replace(",\"", ", \"")
        .replace("\":", "\": ");
    let mut headers = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v.to_owned()));
    headers.insert("fedora_messaging_schema".into(), s("base.message"));
    headers.insert("sent-at".into(), s("2026-12-02T12:00:00+00:00"));
    headers.insert("fedora_messaging_severity".into(), AMQPValue::LongInt(20));
    headers.insert("priority".into(), AMQPValue::LongInt(0));
    let props = lapin::BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(format!("2026-{}", uuid_like(k))))
        .with_headers(headers);
    (body.into_bytes(), props)
}

/// A message id of the usual length.
fn uuid_like(k: usize) -> String {
    format!("{:08x}-0000-7000-8000-{:012x}", std::process::id(), k)
}

/// Raw lapin: `n` publishes with confirms and `mandatory`, at most `window`
/// unconfirmed, of the same bytes as ours (see [`fedora_messaging_wire`]).
async fn raw_lapin(url: &str, topic: &str, n: usize, window: usize) -> f64 {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("amqp");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let t = Instant::now();
    let mut pending: FuturesUnordered<lapin::PublisherConfirm> = FuturesUnordered::new();
    for k in 0..n {
        if pending.len() >= window {
            let c: lapin::Confirmation = pending.next().await.expect("confirm").expect("confirm");
            assert!(c.is_ack());
        }
        let (payload, props) = fedora_messaging_wire(k);
        let confirm = ch
            .basic_publish(
                "amq.topic".into(),
                topic.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &payload,
                props,
            )
            .await
            .expect("publish");
        pending.push(confirm);
    }
    while let Some(c) = pending.next().await {
        assert!(c.expect("confirm").is_ack());
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Ours: `n` confirmed publishes through `p`, pipelined, on exactly
/// `topic` (each envelope built, numbered and checked as `publish` does).
async fn ours_publish(p: &Publisher, topic: &str, n: usize) -> f64 {
    let t = Instant::now();
    let chunk = n.max(1);
    let mut done = 0;
    while done < n {
        let m = chunk.min(n - done);
        let msgs: Vec<_> = (0..m)
            .map(|k| {
                p.envelope_exact(topic.to_owned(), body(done + k))
                    .expect("envelope")
            })
            .collect();
        for r in p.send_all(&msgs).await {
            r.expect("confirmed");
        }
        done += m;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Drains `n` events from a subscription: messages/s from the first.
async fn drain(sub: &mut Subscription, n: usize) -> f64 {
    let mut t = None;
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(60), sub.next()).await {
            Ok(Some(Event::Message(_))) => {
                t.get_or_insert_with(Instant::now);
                got += 1;
            }
            Ok(Some(Event::Quarantined { reason, .. })) => panic!("quarantined: {reason}"),
            Ok(None) | Err(_) => panic!("the subscription stopped after {got} of {n}"),
        }
    }
    got as f64 / t.map_or(1e-9, |t: Instant| t.elapsed().as_secs_f64())
}

fn publisher_opts() -> PublisherOptions {
    let mut o = PublisherOptions::new("");
    o.modname = "bench".into();
    o
}

async fn amqp_rows(s: &Sizes, step: &dyn Fn(&str)) -> Vec<String> {
    let url = common::rabbitmq_url();
    let topic = format!("{}.publish", unique("amqp"));
    let queue = unique("amqpq");
    let ch = amqp_queue(&url, &queue, &format!("{topic}.#")).await;
    let _ = ch; // keeps the queue's channel open

    step("AMQP: fedora-messaging api.publish, one at a time");
    let dir = common::scratch_dir("bench-brokers");
    let conf = dir.join("fedora-messaging.toml");
    std::fs::write(
        &conf,
        format!("amqp_url = \"{url}\"\npublish_exchange = \"amq.topic\"\n"),
    )
    .expect("config");
    let fm = tokio::task::spawn_blocking({
        let (n, full) = (s.fm, format!("{topic}.fm"));
        let conf = conf.display().to_string();
        move || {
            python_rate(
                FM_PUBLISH,
                &[n.to_string(), full],
                &[("FEDORA_MESSAGING_CONF", conf)],
            )
        }
    })
    .await
    .expect("fedora-messaging");

    step("AMQP: raw lapin, pipelined confirms");
    let raw = raw_lapin(&url, &format!("{topic}.raw"), s.publish, 4096).await;

    step("AMQP: ours, pipelined confirms");
    let amqp = Amqp::connect(AmqpOptions::new(url.clone()))
        .await
        .expect("amqp transport");
    let p = Publisher::with_transports(publisher_opts(), vec![Arc::new(amqp)]);
    let ours = ours_publish(&p, &format!("{topic}.ours"), s.publish).await;

    // The queue now holds 1 + fm + 2 × publish messages.
    purge(&ch, &queue).await;
    step("AMQP: a pika consumer draining a queue");
    ours_publish(&p, &format!("{topic}.pika"), s.consume).await;
    let pika = tokio::task::spawn_blocking({
        let (url, queue, n) = (url.clone(), queue.clone(), s.consume);
        move || {
            python_rate(
                PIKA_CONSUME,
                &[url, queue, n.to_string(), "256".into()],
                &[],
            )
        }
    })
    .await
    .expect("pika");
    step("AMQP: ours draining a queue");
    ours_publish(&p, &format!("{topic}.sub"), s.consume).await;
    let how = AmqpSubscribe {
        queue: Some(queue.clone()),
        prefetch: 256,
        ..AmqpSubscribe::default()
    };
    let filters = Filters {
        patterns: vec![format!("{topic}.*")],
        ..Filters::default()
    };
    let mut sub = amqp::subscribe(&AmqpOptions::new(url.clone()), how, filters)
        .await
        .expect("subscribe");
    let consumed = drain(&mut sub, s.consume).await;
    drop(sub);
    delete_queue(&ch, &queue).await;

    vec![
        format!(
            "| AMQP confirmed publishes/s | {ours:.0} | fedora-messaging `api.publish`: {fm:.0} | {:.1}× |",
            ours / fm
        ),
        format!(
            "| AMQP confirmed publishes/s, pipelined | {ours:.0} | raw lapin, same bytes (confirms + mandatory, window 4096): {raw:.0} | {:.2}× |",
            ours / raw
        ),
        format!(
            "| AMQP messages/s consumed (prefetch 256, acked) | {consumed:.0} | pika consumer: {pika:.0} | {:.1}× |",
            consumed / pika
        ),
    ]
}

async fn purge(ch: &lapin::Channel, queue: &str) {
    ch.queue_purge(queue.into(), lapin::options::QueuePurgeOptions::default())
        .await
        .expect("purge");
}

async fn delete_queue(ch: &lapin::Channel, queue: &str) {
    let _ = ch
        .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
        .await;
}

async fn nats_rows(s: &Sizes, step: &dyn Fn(&str)) -> Vec<String> {
    let url = common::nats_url();
    let prefix = format!("{}.bus", unique("nats"));
    let client = async_nats::connect(&url).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let stream_name = prefix.replace('.', "_").to_uppercase();
    let _ = js.delete_stream(&stream_name).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream_name.clone(),
        subjects: vec![format!("{prefix}.>")],
        ..Default::default()
    })
    .await
    .expect("stream");

    step("NATS: raw async-nats, windowed publish acks");
    let raw = {
        let t = Instant::now();
        let window = 1024;
        type AckFuture = <async_nats::jetstream::context::PublishAckFuture as std::future::IntoFuture>::IntoFuture;
        let mut pending: FuturesUnordered<AckFuture> = FuturesUnordered::new();
        for k in 0..s.publish {
            if pending.len() >= window {
                pending.next().await.expect("ack").expect("ack");
            }
            // The same bytes as ours: a fedmsg envelope, its id as
            // `Nats-Msg-Id`.
            let m = zerorpc_bus::message::Message::new(
                format!("{prefix}.raw"),
                body(k),
                k as u64,
                "bench",
            );
            let payload = m.to_canonical_json().into_bytes();
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", m.msg_id.as_str());
            let ack = js
                .publish_with_headers(format!("{prefix}.raw"), headers, payload.into())
                .await
                .expect("publish");
            pending.push(std::future::IntoFuture::into_future(ack));
        }
        while let Some(a) = pending.next().await {
            a.expect("ack");
        }
        s.publish as f64 / t.elapsed().as_secs_f64()
    };

    step("NATS: ours, windowed publish acks");
    let nats = Nats::connect(NatsOptions::new(url.clone()))
        .await
        .expect("nats transport");
    let p = Publisher::with_transports(publisher_opts(), vec![Arc::new(nats)]);
    let ours = ours_publish(&p, &format!("{prefix}.ours"), s.publish).await;

    step("NATS: raw pull consumer draining");
    let raw_consumed = {
        use async_nats::jetstream::consumer::pull::Config;
        use async_nats::jetstream::consumer::DeliverPolicy;
        let stream = js.get_stream(&stream_name).await.expect("stream");
        let consumer = stream
            .create_consumer(Config {
                filter_subject: format!("{prefix}.raw"),
                deliver_policy: DeliverPolicy::All,
                max_ack_pending: 256,
                ..Default::default()
            })
            .await
            .expect("consumer");
        let mut messages = consumer.messages().await.expect("messages");
        let mut t = None;
        for _ in 0..s.consume {
            let m = messages.next().await.expect("message").expect("message");
            t.get_or_insert_with(Instant::now);
            m.ack().await.expect("ack");
        }
        s.consume as f64 / t.map_or(1e-9, |t: Instant| t.elapsed().as_secs_f64())
    };
    step("NATS: ours draining");
    let how = NatsSubscribe {
        prefix: Some(prefix.clone()),
        prefetch: 256,
        since: Since::Start,
        ..NatsSubscribe::default()
    };
    let filters = Filters {
        patterns: vec![format!("{prefix}.ours")],
        ..Filters::default()
    };
    let mut sub = nats::subscribe(&NatsOptions::new(url.clone()), how, filters)
        .await
        .expect("subscribe");
    let consumed = drain(&mut sub, s.consume).await;
    drop(sub);
    let _ = js.delete_stream(&stream_name).await;

    vec![
        format!(
            "| JetStream acked publishes/s | {ours:.0} | raw async-nats, same bytes (window 1024): {raw:.0} | {:.2}× |",
            ours / raw
        ),
        format!(
            "| JetStream messages/s consumed (acked) | {consumed:.0} | raw pull consumer: {raw_consumed:.0} | {:.2}× |",
            consumed / raw_consumed
        ),
    ]
}

/// The `brokers` benchmark (see the module docs).
pub async fn brokers_bench(quick: bool) {
    let s = if quick {
        Sizes {
            fm: 300,
            publish: 20_000,
            consume: 20_000,
        }
    } else {
        Sizes {
            fm: 2_000,
            publish: 100_000,
            consume: 50_000,
        }
    };
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    step("provisioning fedora-messaging's venv (first run only)");
    common::fedora_messaging_python();
    let mut rows = amqp_rows(&s, &step).await;
    rows.extend(nats_rows(&s, &step).await);
    println!("| row | ours | baseline | ratio |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    step("done");
}
