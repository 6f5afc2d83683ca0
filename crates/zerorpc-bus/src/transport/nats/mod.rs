//! NATS JetStream. PLACEHOLDER: the helper replaces this file (API below
//! is the contract).

use std::sync::Arc;
use std::time::Duration;

use super::{BoxFuture, Outgoing, Receipt, Transport};
use crate::subscriber::{Filters, Since, Subscription};
use crate::Error;

/// The transport's name in receipts.
pub const NAME: &str = "nats";

/// Where and how to publish over NATS JetStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// `nats://host:port`.
    pub url: String,
    /// How many leading topic segments name a message's stream
    /// (`org.fedoraproject.dev.x` with 2: stream `ORG_FEDORAPROJECT` on
    /// subjects `org.fedoraproject.>`), created when missing.
    pub stream_depth: usize,
    /// How long streams keep messages (`None`: the server's default, forever).
    pub max_age: Option<Duration>,
    /// JetStream's de-duplication window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// How long a publish keeps trying before it fails.
    pub confirm_timeout: Duration,
    /// Publishes awaiting their ack at once (pipelined in windows).
    pub window: usize,
}

impl NatsOptions {
    /// Defaults for the server at `url`.
    pub fn new(url: impl Into<String>) -> NatsOptions {
        NatsOptions {
            url: url.into(),
            stream_depth: 2,
            max_age: None,
            duplicate_window: Duration::from_secs(120),
            confirm_timeout: Duration::from_secs(30),
            window: 1024,
        }
    }
}

/// A publishing connection.
pub struct Nats {
    _opts: NatsOptions,
}

impl Nats {
    /// Connects.
    pub async fn connect(opts: NatsOptions) -> Result<Nats, Error> {
        Err(Error::Transport(format!(
            "nats: not built yet ({})",
            opts.url
        )))
    }
}

impl Transport for Nats {
    fn name(&self) -> &str {
        NAME
    }
    fn send(&self, batch: Arc<[Outgoing]>) -> BoxFuture<'static, Vec<Result<Receipt, Error>>> {
        Box::pin(async move { batch.iter().map(|_| Err(Error::Closed)).collect() })
    }
}

/// How to consume from JetStream.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsSubscribe {
    /// A durable consumer, shared by every subscriber that names it
    /// (competing consumers); `None`: an ephemeral one.
    pub durable: Option<String>,
    /// The stream's topic prefix when the patterns do not give it.
    pub prefix: Option<String>,
    /// Unacknowledged messages at once (`max_ack_pending`, pull batch).
    pub prefetch: usize,
    /// Deliveries carry an [`Ack`](super::Ack); otherwise each is
    /// acknowledged once handed to the reader.
    pub manual_ack: bool,
    /// Where a new consumer starts (replay: `Since::Seq` is the stream
    /// sequence).
    pub since: Since,
    /// How long an unacknowledged message waits before redelivery.
    pub ack_wait: Duration,
}

impl Default for NatsSubscribe {
    fn default() -> Self {
        NatsSubscribe {
            durable: None,
            prefix: None,
            prefetch: 64,
            manual_ack: false,
            since: Since::Next,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// Subscribes to the stream holding `filters.patterns`' topics.
pub async fn subscribe(
    opts: &NatsOptions,
    how: NatsSubscribe,
    filters: Filters,
) -> Result<Subscription, Error> {
    let _ = (how, filters);
    Err(Error::Transport(format!(
        "nats: not built yet ({})",
        opts.url
    )))
}
