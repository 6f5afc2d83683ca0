//! RabbitMQ (AMQP 0-9-1) with fedora-messaging's wire format.
//!
//! * Publishing ([`Amqp`], a [`Transport`](super::Transport)): to an
//!   exchange (fedora-messaging's `amq.topic`), routing key = topic, every
//!   message confirmed by the broker (publisher confirms) and published
//!   `mandatory`: a message no queue takes is [`Error::Unroutable`](crate::Error::Unroutable), or
//!   goes to the alternate exchange when one is configured (its receipt
//!   says `alternate`). A lost connection is re-opened and what was not
//!   confirmed is published again until the confirm timeout.
//! * Consuming ([`subscribe`]): a named durable queue (competing
//!   consumers share it) or a private one, bound for the subscription's
//!   topic globs; or the stream queue from an offset (replay). Deliveries
//!   carry an [`Ack`](super::Ack) with manual acknowledgements.
//! * The wire ([`wire`]): what fedora-messaging 3.9.1 puts on it, so that
//!   Python consumers get their message classes and Python publishers'
//!   messages are read here.
//!
//! Modules: `wire` (the format), `binding` (globs as binding keys), `conn`
//! (connecting, error texts), `publish`, `consume`.

mod binding;
mod conn;
mod consume;
mod publish;
mod wire;

pub use consume::subscribe;
pub use publish::Amqp;

use std::time::Duration;

use crate::subscriber::Since;

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
    /// ([`Error::Unroutable`](crate::Error::Unroutable)) or goes to `alternate_exchange`.
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
