//! Publishing to JetStream: each message of a batch published with its
//! `Nats-Msg-Id` and confirmed by its publish ack, pipelined (at most
//! `window` acks awaited at once: async-nats holds back publishes beyond
//! its `max_ack_inflight`, 5,000 by default, until acks are awaited). A
//! lost ack or an absent server is retried with the same `Nats-Msg-Id`
//! (JetStream stores one copy within its duplicate window) until the
//! confirm timeout, counted from the batch's start.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, context::PublishError};
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use tokio::time::Instant;

use super::streams::{StreamError, Streams};
use super::subject::topic_prefix;
use super::wire::{encode, Wire};
use super::{attempt_timeout, connect_client, NatsOptions, NAME};
use crate::transport::{BoxFuture, Outgoing, Receipt, Transport};
use crate::Error;

/// A publishing connection to a NATS server with JetStream (connected in
/// the background: publishes wait for it within the confirm timeout).
#[derive(Clone)]
pub struct Nats {
    inner: Arc<Shared>,
}

struct Shared {
    opts: NatsOptions,
    client: async_nats::Client,
    js: jetstream::Context,
    streams: Streams,
}

/// Why one try failed.
enum Failure {
    /// Try again (same `Nats-Msg-Id`) while there is time.
    Retry(String),
    /// It will not succeed: the error.
    Final(Error),
}

impl Nats {
    /// Connects to `opts.url` (in the background: a server that is not up
    /// yet is waited for by each publish, within its confirm timeout).
    pub async fn connect(opts: NatsOptions) -> Result<Nats, Error> {
        let client = connect_client(&opts, "zerorpc-bus publisher", true, None).await?;
        let js = jetstream::ContextBuilder::new()
            .timeout(attempt_timeout(opts.confirm_timeout))
            .max_ack_inflight(opts.window.max(5_000))
            .build(client.clone());
        let streams = Streams::new(js.clone(), &opts);
        Ok(Nats {
            inner: Arc::new(Shared {
                opts,
                client,
                js,
                streams,
            }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &NatsOptions {
        &self.inner.opts
    }
}

impl Transport for Nats {
    fn name(&self) -> &str {
        NAME
    }

    fn send(&self, batch: Arc<[Outgoing]>) -> BoxFuture<'static, Vec<Result<Receipt, Error>>> {
        let shared = self.inner.clone();
        Box::pin(async move { shared.send(&batch).await })
    }
}

impl Shared {
    async fn send(&self, batch: &[Outgoing]) -> Vec<Result<Receipt, Error>> {
        let deadline = Instant::now() + self.opts.confirm_timeout;
        // A sliding window: the next message goes out as soon as the
        // oldest awaited one is confirmed (or failed).
        let window = self.opts.window.max(1);
        let mut results = Vec::with_capacity(batch.len());
        let mut inflight = FuturesOrdered::new();
        for out in batch {
            if inflight.len() >= window {
                if let Some(r) = inflight.next().await {
                    results.push(r);
                }
            }
            inflight.push_back(self.publish_one(out, deadline));
        }
        while let Some(r) = inflight.next().await {
            results.push(r);
        }
        results
    }

    async fn publish_one(&self, out: &Outgoing, deadline: Instant) -> Result<Receipt, Error> {
        let msg_id = &out.message.msg_id;
        let unroutable = |route: String| Error::Unroutable {
            msg_id: msg_id.clone(),
            transport: NAME.into(),
            route,
        };
        let wire = encode(out).map_err(unroutable)?;
        let prefix = topic_prefix(&wire.subject, self.opts.stream_depth).map_err(unroutable)?;
        let mut backoff = Duration::from_millis(50);
        let mut cause = "no answer within the confirm timeout".to_owned();
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match tokio::time::timeout(deadline - now, self.attempt(&prefix, &wire)).await {
                Ok(Ok(ack)) => {
                    return Ok(Receipt {
                        transport: NAME.into(),
                        seq: Some(ack.sequence),
                        duplicate: ack.duplicate,
                        alternate: false,
                    })
                }
                Ok(Err(Failure::Final(e))) => return Err(e),
                Ok(Err(Failure::Retry(why))) => {
                    tracing::debug!("nats: publishing {msg_id}: {why}; trying again");
                    cause = why;
                }
                Err(_) => cause = self.no_ack_cause(),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        Err(Error::Unconfirmed {
            msg_id: msg_id.clone(),
            reason: format!(
                "nats: {cause} (gave up after {:?})",
                self.opts.confirm_timeout
            ),
        })
    }

    /// Why an ack did not come, as far as the client knows.
    fn no_ack_cause(&self) -> String {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => {
                "no publish ack from the server in time".into()
            }
            state => format!(
                "the server at {} is not reachable (connection {state}; reconnecting)",
                self.opts.url
            ),
        }
    }

    async fn attempt(&self, prefix: &str, wire: &Wire) -> Result<PublishAck, Failure> {
        match self.streams.ensure(prefix).await {
            Ok(_) => {}
            Err(StreamError::Refused(why)) => {
                return Err(Failure::Final(Error::Broker {
                    transport: NAME.into(),
                    detail: why,
                }))
            }
            Err(StreamError::Transient(why)) => {
                return Err(Failure::Retry(self.with_state(why)));
            }
        }
        let ack = self
            .js
            .publish_with_headers(
                wire.subject.clone(),
                wire.headers.clone(),
                wire.payload.clone(),
            )
            .await
            .map_err(|e| self.classify(e))?;
        match ack.await {
            Ok(a) => Ok(a),
            Err(e) => {
                if e.kind() == PublishErrorKind::StreamNotFound {
                    // Deleted since we made it, or it does not take this
                    // subject: ask again next time.
                    self.streams.forget(prefix).await;
                }
                Err(self.classify(e))
            }
        }
    }

    /// Adds the connection's state when it is not connected.
    fn with_state(&self, why: String) -> String {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => why,
            _ => format!("{}: {why}", self.no_ack_cause()),
        }
    }

    fn classify(&self, e: PublishError) -> Failure {
        let final_error = |detail: String| {
            Failure::Final(Error::Broker {
                transport: NAME.into(),
                detail,
            })
        };
        match e.kind() {
            PublishErrorKind::TimedOut => Failure::Retry(self.no_ack_cause()),
            PublishErrorKind::BrokenPipe => {
                Failure::Retry(self.with_state("the connection closed before the ack".into()))
            }
            PublishErrorKind::StreamNotFound => Failure::Retry(
                self.with_state("no stream takes this subject (no responders)".into()),
            ),
            PublishErrorKind::MaxAckPending => {
                Failure::Retry("too many publish acks outstanding".into())
            }
            PublishErrorKind::MaxPayloadExceeded => {
                final_error(format!("the message is too large for the server: {e}"))
            }
            PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
                final_error(format!("the server refused the message: {e}"))
            }
            PublishErrorKind::Other => {
                // The server's JetStream answer (a stream limit, a storage
                // failure) is final; anything else happened on the way.
                let server = e
                    .source()
                    .and_then(|s| s.downcast_ref::<jetstream::Error>())
                    .map(|js| js.to_string());
                match server {
                    Some(js) => final_error(format!("the server refused the message: {js}")),
                    None => Failure::Retry(self.with_state(format!("publish failed: {e}"))),
                }
            }
        }
    }
}
