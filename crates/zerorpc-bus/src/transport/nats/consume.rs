//! Consuming from JetStream: a pull consumer on the stream of the
//! subscription's prefix (durable and shared when named: competing
//! consumers; ephemeral otherwise), filtered by the broker on a superset
//! of the patterns and exactly here. Each message is checked (envelope,
//! signature, schema), handed to the reader and settled: by the reader
//! through [`Ack`] with manual acknowledgements, else once handed over.
//! What is not a valid message is quarantined and terminated (`+TERM`),
//! what the patterns do not match is acknowledged and skipped. A consumer
//! that is lost (server restarted, ephemeral consumer reaped) is made
//! again, an ephemeral one from just after the last message handed over.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::streams::Streams;
use super::subject::{filter_subject, patterns_prefix, subject_problem};
use super::wire::{decode, Arrived};
use super::{attempt_timeout, connect_client, NatsOptions, NatsSubscribe, NAME};
use crate::glob::TopicFilter;
use crate::subscriber::{admit, emit, Event, Filters, Since, Stats, Subscription};
use crate::transport::{Ack, BoxFuture, Settle, Settlement};
use crate::Error;

/// How often the server says an idle pull is alive; two missed: the
/// consumer is checked.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a pull request waits at the server.
const EXPIRES: Duration = Duration::from_secs(30);
/// How long the server keeps an ephemeral consumer nobody pulls from.
const EPHEMERAL_IDLE: Duration = Duration::from_secs(30);

fn broker(detail: impl Into<String>) -> Error {
    Error::Broker {
        transport: NAME.into(),
        detail: detail.into(),
    }
}

/// Subscribes to the stream holding `filters.patterns`' topics (see the
/// module docs). The stream is made when missing; the consumer is made
/// (or, durable, bound) before this returns, so a wrong name or an absent
/// server is an error here.
pub async fn subscribe(
    opts: &NatsOptions,
    how: NatsSubscribe,
    filters: Filters,
) -> Result<Subscription, Error> {
    let depth = opts.stream_depth.max(1);
    let prefix = match &how.prefix {
        Some(p) => {
            let tokens: Vec<&str> = p.split('.').collect();
            if tokens.len() < depth {
                return Err(broker(format!(
                    "prefix {p:?} has fewer than stream_depth ({depth}) segments"
                )));
            }
            tokens[..depth].join(".")
        }
        None => patterns_prefix(&filters.patterns, depth).map_err(broker)?,
    };
    if let Some(problem) = subject_problem(&prefix) {
        return Err(broker(format!("prefix {prefix:?}: {problem}")));
    }
    if let Some(name) = &how.durable {
        if name.is_empty()
            || name
                .chars()
                .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
        {
            return Err(broker(format!(
                "durable name {name:?} is not valid (no dots, wildcards, slashes or spaces)"
            )));
        }
    }
    let stats = Arc::new(Stats::default());
    let client = connect_client(opts, "zerorpc-bus subscriber", false, Some(stats.clone())).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(attempt_timeout(opts.confirm_timeout))
        .build(client);
    let stream = Streams::new(js.clone(), opts)
        .ensure(&prefix)
        .await
        .map_err(|e| broker(e.detail().to_owned()))?;
    let mut binding = Binding {
        js,
        filter: filter_subject(&filters.patterns, &prefix),
        stream,
        how,
        cursor: None,
    };
    let first = binding.bind().await.map_err(broker)?;
    let (tx, rx) = mpsc::channel(binding.how.prefetch.max(1));
    let task = tokio::spawn(run(binding, first, filters, tx, stats.clone()));
    Ok(Subscription::from_parts(rx, task, stats))
}

/// What makes (or binds) the consumer, again when it is lost.
struct Binding {
    js: jetstream::Context,
    stream: String,
    filter: String,
    how: NatsSubscribe,
    /// The stream sequence of the last message handed over (or, before
    /// any, the one before where the consumer started).
    cursor: Option<u64>,
}

impl Binding {
    fn deliver_policy(&self) -> DeliverPolicy {
        if self.how.durable.is_none() {
            if let Some(c) = self.cursor {
                return DeliverPolicy::ByStartSequence {
                    start_sequence: c + 1,
                };
            }
        }
        match self.how.since {
            Since::Next => DeliverPolicy::New,
            Since::Start => DeliverPolicy::All,
            Since::Seq(n) => DeliverPolicy::ByStartSequence {
                start_sequence: n.max(1),
            },
            Since::Time(t) => {
                let nanos = (t * 1e9) as i128;
                match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
                    Ok(start_time) => DeliverPolicy::ByStartTime { start_time },
                    Err(_) if t <= 0.0 => DeliverPolicy::All,
                    Err(_) => DeliverPolicy::New,
                }
            }
        }
    }

    async fn bind(&mut self) -> Result<PullConsumer, String> {
        let config = pull::Config {
            durable_name: self.how.durable.clone(),
            filter_subject: self.filter.clone(),
            deliver_policy: self.deliver_policy(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.how.ack_wait,
            max_ack_pending: i64::try_from(self.how.prefetch.max(1)).unwrap_or(i64::MAX),
            inactive_threshold: if self.how.durable.is_none() {
                EPHEMERAL_IDLE
            } else {
                Duration::ZERO
            },
            ..Default::default()
        };
        let stream = self
            .js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(|e| format!("stream {}: {e}", self.stream))?;
        let consumer: PullConsumer = match &self.how.durable {
            Some(name) => stream.get_or_create_consumer(name, config).await,
            None => stream.create_consumer(config).await,
        }
        .map_err(|e| {
            format!(
                "cannot make a consumer on stream {} (filter {}): {e}",
                self.stream, self.filter
            )
        })?;
        if self.cursor.is_none() {
            self.cursor = Some(consumer.cached_info().delivered.stream_sequence);
        }
        tracing::debug!(
            "nats: consumer {} on stream {} (filter {})",
            consumer.cached_info().name,
            self.stream,
            self.filter
        );
        Ok(consumer)
    }
}

async fn run(
    mut binding: Binding,
    first: PullConsumer,
    filters: Filters,
    tx: mpsc::Sender<Event>,
    stats: Arc<Stats>,
) {
    let topics = TopicFilter::new(&filters.patterns);
    let mut consumer = Some(first);
    let mut backoff = Duration::from_millis(100);
    loop {
        let c = match consumer.take() {
            Some(c) => c,
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = tx.closed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                match binding.bind().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!("nats subscription: {e}; trying again");
                        continue;
                    }
                }
            }
        };
        let messages = c
            .stream()
            .max_messages_per_batch(binding.how.prefetch.max(1))
            .heartbeat(HEARTBEAT)
            .expires(EXPIRES)
            .messages()
            .await;
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::info!("nats subscription: cannot pull: {e}; trying again");
                continue;
            }
        };
        loop {
            let item = tokio::select! {
                item = messages.next() => item,
                _ = tx.closed() => return,
            };
            match item {
                None => break,
                Some(Ok(m)) => {
                    backoff = Duration::from_millis(100);
                    if !handle(m, &mut binding, &topics, &filters, &tx, &stats).await {
                        return;
                    }
                }
                Some(Err(e)) => match e.kind() {
                    MessagesErrorKind::MissingHeartbeat => {
                        // Away, or the consumer is gone (reaped while we
                        // were away): only the latter needs a new one.
                        match c.get_info().await {
                            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
                                tracing::info!("nats subscription: the consumer is gone");
                                break;
                            }
                            Err(e) if e.kind() == ConsumerInfoErrorKind::StreamNotFound => {
                                tracing::warn!("nats subscription: the stream is gone");
                                break;
                            }
                            _ => tracing::debug!("nats subscription: missed heartbeats"),
                        }
                    }
                    MessagesErrorKind::ConsumerDeleted
                    | MessagesErrorKind::NoResponders
                    | MessagesErrorKind::PushBasedConsumer
                    | MessagesErrorKind::RequestLimitExceeded => {
                        tracing::info!("nats subscription: {e}; making the consumer again");
                        break;
                    }
                    _ => tracing::debug!("nats subscription: {e}"),
                },
            }
        }
    }
}

/// Checks, hands over and (unless the reader does) settles one message:
/// `false` when the reader is gone.
async fn handle(
    m: jetstream::Message,
    binding: &mut Binding,
    topics: &TopicFilter,
    filters: &Filters,
    tx: &mpsc::Sender<Event>,
    stats: &Stats,
) -> bool {
    let (seq, delivered) = match m.info() {
        Ok(i) => (i.stream_sequence, i.delivered),
        Err(e) => {
            tracing::warn!("nats subscription: a message without JetStream metadata: {e}");
            return true;
        }
    };
    let (message, acker) = m.split();
    let acker = Arc::new(acker);
    binding.cursor = Some(seq);
    if !topics.matches(message.subject.as_str()) {
        settle_quietly(&acker, AckKind::Ack).await;
        return true;
    }
    let arrived = Arrived {
        seq,
        delivered,
        headers: message.headers.as_ref(),
        payload: &message.payload,
    };
    let raw = || String::from_utf8_lossy(&message.payload).into_owned();
    let event = match decode(&arrived) {
        Ok(d) => admit(d, filters, raw),
        Err((reason, raw)) => Event::Quarantined {
            seq: Some(seq),
            reason,
            raw,
        },
    };
    let event = match event {
        Event::Message(mut d) if binding.how.manual_ack => {
            d.ack = Some(Ack::new(NatsAck(acker.clone())));
            Event::Message(d)
        }
        e @ Event::Message(_) => e,
        q @ Event::Quarantined { .. } => {
            // Never valid, whoever reads it: not delivered again.
            settle_quietly(&acker, AckKind::Term).await;
            q
        }
    };
    let auto_ack = matches!(event, Event::Message(_)) && !binding.how.manual_ack;
    if !emit(tx, stats, event).await {
        return false;
    }
    if auto_ack {
        settle_quietly(&acker, AckKind::Ack).await;
    }
    true
}

async fn settle_quietly(acker: &Acker, kind: AckKind) {
    if let Err(e) = acker.ack_with(kind).await {
        tracing::warn!("nats subscription: cannot settle a message ({kind:?}): {e}");
    }
}

/// A delivered message's handle: `+ACK`, `-NAK` with a delay, `+TERM`,
/// `+WPI`.
struct NatsAck(Arc<Acker>);

impl NatsAck {
    fn send(&self, kind: AckKind) -> BoxFuture<'static, Result<(), Error>> {
        let acker = self.0.clone();
        Box::pin(async move {
            acker
                .ack_with(kind)
                .await
                .map_err(|e| broker(format!("cannot settle a message ({kind:?}): {e}")))
        })
    }
}

impl Settle for NatsAck {
    fn settle(&self, how: Settlement) -> BoxFuture<'static, Result<(), Error>> {
        self.send(match how {
            Settlement::Ack => AckKind::Ack,
            Settlement::Requeue(d) if d.is_zero() => AckKind::Nak(None),
            Settlement::Requeue(d) => AckKind::Nak(Some(d)),
            Settlement::Reject => AckKind::Term,
        })
    }

    fn in_progress(&self) -> BoxFuture<'static, Result<(), Error>> {
        self.send(AckKind::Progress)
    }
}
