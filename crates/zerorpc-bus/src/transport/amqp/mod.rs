//! RabbitMQ (AMQP 0-9-1) with fedora-messaging's wire format.
//! PLACEHOLDER: the helper replaces this file (API below is the contract).

use std::sync::Arc;
use std::time::Duration;

use super::{BoxFuture, Outgoing, Receipt, Transport};
use crate::subscriber::{Filters, Since, Subscription};
use crate::Error;

/// The transport's name in receipts.
pub const NAME: &str = "amqp";

/// Where and how to publish over AMQP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpOptions {
    /// `amqp://user:pass@host:port/vhost` (`?heartbeat=N` sets the heartbeat).
    pub url: String,
    /// The exchange published to (fedora-messaging's: `amq.topic`).
    pub exchange: String,
    /// Publish with `mandatory`: a message no queue takes is an error
    /// ([`Error::Unroutable`]) or goes to `alternate_exchange`.
    pub mandatory: bool,
    /// Where unroutable messages go instead of failing.
    pub alternate_exchange: Option<String>,
    /// The stream queue (`x-queue-type: stream`) bound to the exchange
    /// that keeps every message for replay; `None`: no replay.
    pub stream_queue: Option<String>,
    /// How long a publish keeps trying (reconnecting) before it fails.
    pub confirm_timeout: Duration,
    /// Publishes awaiting their confirm at once.
    pub window: usize,
}

impl AmqpOptions {
    /// Defaults for the broker at `url`.
    pub fn new(url: impl Into<String>) -> AmqpOptions {
        AmqpOptions {
            url: url.into(),
            exchange: "amq.topic".into(),
            mandatory: true,
            alternate_exchange: None,
            stream_queue: None,
            confirm_timeout: Duration::from_secs(30),
            window: 4096,
        }
    }
}

/// A publishing connection.
pub struct Amqp {
    _opts: AmqpOptions,
}

impl Amqp {
    /// Connects (and declares the stream queue, when configured).
    pub async fn connect(opts: AmqpOptions) -> Result<Amqp, Error> {
        Err(Error::Transport(format!(
            "amqp: not built yet ({})",
            opts.url
        )))
    }
}

impl Transport for Amqp {
    fn name(&self) -> &str {
        NAME
    }
    fn send(&self, batch: Arc<[Outgoing]>) -> BoxFuture<'static, Vec<Result<Receipt, Error>>> {
        Box::pin(async move { batch.iter().map(|_| Err(Error::Closed)).collect() })
    }
}

/// How to consume over AMQP.
#[derive(Debug, Clone, PartialEq)]
pub struct AmqpSubscribe {
    /// A named durable queue, shared by every consumer that names it
    /// (competing consumers); `None`: a private queue that goes away with
    /// the subscription.
    pub queue: Option<String>,
    /// Unsettled messages at once (`basic.qos`).
    pub prefetch: u16,
    /// Deliveries carry an [`Ack`](super::Ack) to settle; otherwise each is
    /// acknowledged once handed to the reader.
    pub manual_ack: bool,
    /// Read the stream queue from here (replay) instead of a queue.
    pub since: Option<Since>,
}

impl Default for AmqpSubscribe {
    fn default() -> Self {
        AmqpSubscribe {
            queue: None,
            prefetch: 64,
            manual_ack: false,
            since: None,
        }
    }
}

/// Subscribes: binds the queue to `filters.patterns` on the exchange.
pub async fn subscribe(
    opts: &AmqpOptions,
    how: AmqpSubscribe,
    filters: Filters,
) -> Result<Subscription, Error> {
    let _ = (how, filters);
    Err(Error::Transport(format!(
        "amqp: not built yet ({})",
        opts.url
    )))
}
