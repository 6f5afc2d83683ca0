//! Consuming: a queue (named and shared, or private) bound to the exchange
//! for the subscription's topic globs, or the stream queue from an offset
//! (replay); each delivery checked (decoded, filtered exactly, validated)
//! and handed to the reader with a handle to settle it, or acknowledged
//! once handed over. A lost connection is re-established and the queue
//! consumed again, with backoff, until the subscription is dropped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, Connection, Consumer};
use tokio::sync::mpsc;

use super::binding::binding_keys;
use super::conn::{self, broker_error};
use super::wire;
use super::{AmqpOptions, AmqpSubscribe};
use crate::glob::TopicFilter;
use crate::subscriber::{admit, emit, Delivery, Event, Filters, Since, Stats, Subscription};
use crate::transport::{Ack, BoxFuture, Settle, Settlement};
use crate::Error;

/// How long one attempt to consume again may take.
const REOPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Events buffered between the feed and the reader.
const BUFFER: usize = 1024;

/// Subscribes: binds the queue to `filters.patterns` on the exchange (or
/// reads the stream queue from `how.since`).
pub async fn subscribe(
    opts: &AmqpOptions,
    how: AmqpSubscribe,
    filters: Filters,
) -> Result<Subscription, Error> {
    if how.since.is_some() && opts.stream_queue.is_none() {
        return Err(Error::Broker {
            transport: super::NAME.to_owned(),
            detail: "replaying (`since`) needs a stream queue (AmqpOptions::stream_queue)"
                .to_owned(),
        });
    }
    let feed = Feed {
        opts: opts.clone(),
        topics: TopicFilter::new(&filters.patterns),
        keys: binding_keys(&filters.patterns),
        how,
        filters,
        next_offset: None,
    };
    let (conn, consumer) = feed.open().await?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let stats = Arc::new(Stats::default());
    let task = tokio::spawn(feed.run(conn, consumer, tx, stats.clone()));
    Ok(Subscription::from_parts(rx, task, stats))
}

/// One subscription's consuming side.
struct Feed {
    opts: AmqpOptions,
    how: AmqpSubscribe,
    filters: Filters,
    topics: TopicFilter,
    keys: Vec<String>,
    /// Replay: the stream offset to resume from after a reconnection.
    next_offset: Option<u64>,
}

impl Feed {
    fn replay(&self) -> bool {
        self.how.since.is_some()
    }

    /// Connects, declares and binds the queue, and starts consuming.
    async fn open(&self) -> Result<(Connection, Consumer), Error> {
        let url = &self.opts.url;
        let conn = conn::open(url, "zerorpc-bus subscriber", conn::CONNECT_TIMEOUT).await?;
        let ch = conn
            .create_channel()
            .await
            .map_err(|e| broker_error(url, "cannot open a channel", e))?;
        let prefetch = if self.replay() {
            self.how.prefetch.max(1)
        } else {
            self.how.prefetch
        };
        ch.basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| broker_error(url, "cannot set the prefetch", e))?;
        let mut args = FieldTable::default();
        let queue = match (&self.how.since, &self.opts.stream_queue) {
            (Some(since), Some(stream)) => {
                let offset = match (self.next_offset, since) {
                    (Some(n), _) => AMQPValue::LongLongInt(to_i64(n)),
                    (None, Since::Start) => wire::long_string("first"),
                    (None, Since::Next) => wire::long_string("next"),
                    (None, Since::Seq(n)) => AMQPValue::LongLongInt(to_i64(*n)),
                    (None, Since::Time(t)) => AMQPValue::Timestamp(t.max(0.0) as u64),
                };
                args.insert("x-stream-offset".into(), offset);
                stream.clone()
            }
            _ => {
                let (name, options) = match &self.how.queue {
                    Some(name) => (
                        name.clone(),
                        QueueDeclareOptions {
                            durable: true,
                            ..Default::default()
                        },
                    ),
                    None => (
                        String::new(),
                        QueueDeclareOptions {
                            exclusive: true,
                            auto_delete: true,
                            ..Default::default()
                        },
                    ),
                };
                let q = ch
                    .queue_declare(name.as_str().into(), options, FieldTable::default())
                    .await
                    .map_err(|e| broker_error(url, &format!("cannot declare queue {name:?}"), e))?;
                let name = q.name().as_str().to_owned();
                for key in &self.keys {
                    ch.queue_bind(
                        name.as_str().into(),
                        self.opts.exchange.as_str().into(),
                        key.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| {
                        broker_error(url, &format!("cannot bind queue {name:?} to {key:?}"), e)
                    })?;
                }
                name
            }
        };
        let consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await
            .map_err(|e| broker_error(url, &format!("cannot consume from {queue:?}"), e))?;
        tracing::debug!(queue, keys = ?self.keys, "amqp: consuming");
        Ok((conn, consumer))
    }

    async fn run(
        mut self,
        mut conn: Connection,
        mut consumer: Consumer,
        tx: mpsc::Sender<Event>,
        stats: Arc<Stats>,
    ) {
        loop {
            while let Some(d) = consumer.next().await {
                match d {
                    Ok(d) => {
                        if !self.handle(d, &tx, &stats).await {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::info!("amqp subscription interrupted: {e}");
                        break;
                    }
                }
            }
            drop(consumer);
            drop(conn);
            let mut backoff = Duration::from_millis(100);
            (conn, consumer) = loop {
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                // A broker (or a proxy before it) that takes the TCP
                // connection and never answers must not stop the retries.
                match tokio::time::timeout(REOPEN_TIMEOUT, self.open()).await {
                    Ok(Ok(c)) => break c,
                    Ok(Err(e)) => tracing::info!("amqp subscription: {e}; trying again"),
                    Err(_) => tracing::info!(
                        "amqp subscription: no answer within {REOPEN_TIMEOUT:?}; trying again"
                    ),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            };
            stats.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!("amqp subscription: consuming again");
        }
    }

    /// Checks one delivery and hands it over: `false` once the reader is
    /// gone.
    async fn handle(
        &mut self,
        d: lapin::message::Delivery,
        tx: &mpsc::Sender<Event>,
        stats: &Stats,
    ) -> bool {
        let seq = if self.replay() {
            wire::header(&d.properties, "x-stream-offset")
                .and_then(wire::as_int)
                .and_then(|n| u64::try_from(n).ok())
        } else {
            None
        };
        if let Some(s) = seq {
            self.next_offset = Some(s + 1);
        }
        let acker = d.acker.clone();
        let topic = d.routing_key.as_str();
        if !self.topics.matches(topic) {
            settle(&acker, Settlement::Ack).await;
            return true;
        }
        let decoded = match wire::decode(topic, &d.properties, &d.data) {
            Ok(x) => x,
            Err(reason) => {
                self.refuse(&acker).await;
                let raw = wire::raw_text(&d.data);
                return emit(tx, stats, Event::Quarantined { seq, reason, raw }).await;
            }
        };
        let delivery = Delivery {
            seq,
            message: decoded.message,
            attempt: attempt(&d),
            schema_name: decoded.schema_name,
            via: decoded.via,
            ack: self
                .how
                .manual_ack
                .then(|| Ack::new(AmqpAck(acker.clone()))),
        };
        let event = admit(delivery, &self.filters, || wire::raw_text(&d.data));
        match event {
            Event::Quarantined { .. } => {
                self.refuse(&acker).await;
                emit(tx, stats, event).await
            }
            Event::Message(_) => {
                let handed = emit(tx, stats, event).await;
                if handed && !self.how.manual_ack {
                    settle(&acker, Settlement::Ack).await;
                }
                handed
            }
        }
    }

    /// Rejects a message that is quarantined (not requeued, like
    /// fedora-messaging); on a stream, where nothing is removed or
    /// requeued, it is acknowledged to keep the credit flowing.
    async fn refuse(&self, acker: &Acker) {
        let how = if self.replay() {
            Settlement::Ack
        } else {
            Settlement::Reject
        };
        settle(acker, how).await;
    }
}

/// Which delivery this is: `x-delivery-count` + 1 where the queue counts
/// (quorum queues), else 2 when the broker says it redelivers, else 1.
fn attempt(d: &lapin::message::Delivery) -> u32 {
    if let Some(n) = wire::header(&d.properties, "x-delivery-count").and_then(wire::as_int) {
        return u32::try_from(n.saturating_add(1)).unwrap_or(u32::MAX);
    }
    if d.redelivered {
        2
    } else {
        1
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Settles from the feed itself, logging a failure (the broker
/// redelivers an unsettled message when the channel closes).
async fn settle(acker: &Acker, how: Settlement) {
    if let Err(e) = AmqpAck(acker.clone()).settle(how).await {
        tracing::warn!("amqp: settling a message: {e}");
    }
}

/// A delivery's handle, for [`Ack`].
struct AmqpAck(Acker);

impl Settle for AmqpAck {
    fn settle(&self, how: Settlement) -> BoxFuture<'static, Result<(), Error>> {
        let acker = self.0.clone();
        Box::pin(async move {
            let done = match how {
                Settlement::Ack => acker.ack(BasicAckOptions::default()).await,
                Settlement::Requeue(delay) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await
                }
                Settlement::Reject => acker.reject(BasicRejectOptions { requeue: false }).await,
            };
            match done {
                Ok(true) => Ok(()),
                Ok(false) => Err(Error::Broker {
                    transport: super::NAME.to_owned(),
                    detail: "the message was settled already, or its channel is gone \
                             (the broker delivers it again)"
                        .to_owned(),
                }),
                Err(e) => Err(Error::Broker {
                    transport: super::NAME.to_owned(),
                    detail: format!("settling a message: {e}"),
                }),
            }
        })
    }

    fn in_progress(&self) -> BoxFuture<'static, Result<(), Error>> {
        // Heartbeats run on lapin's own I/O loop, apart from callbacks: a
        // message held long is not redelivered while the connection lives.
        Box::pin(async { Ok(()) })
    }
}
