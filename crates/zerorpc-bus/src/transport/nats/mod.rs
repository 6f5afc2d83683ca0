//! NATS JetStream: subject = the message's topic, payload = the canonical
//! fedmsg envelope (so signatures stay valid and a message is the same
//! bytes on every transport), headers `Nats-Msg-Id` = `msg_id`
//! (JetStream drops a second copy within the stream's duplicate window),
//! `Fedora-Messaging-Schema` and `Zerorpc-Bus-Via`.
//!
//! Messages are stored in a stream per topic prefix (the first
//! [`NatsOptions::stream_depth`] segments: `org.fedoraproject.dev.x` with
//! 2 goes to stream `ORG_FEDORAPROJECT` on `org.fedoraproject.>`), made on
//! first use. [`Nats`] publishes, each message confirmed by its publish
//! ack; [`subscribe`] reads through a pull consumer, durable (shared by
//! every process naming it: competing consumers) or ephemeral.
//!
//! * [`subject`]: topics as subjects, stream names, consumer filters;
//! * [`wire`]: a message as a NATS message and back;
//! * [`streams`]: finding or making a prefix's stream;
//! * [`publish`]: the publishing transport;
//! * [`consume`]: subscriptions and their acknowledgements.

mod consume;
mod publish;
mod streams;
mod subject;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::subscriber::{Since, Stats};
use crate::Error;

pub use consume::subscribe;
pub use publish::Nats;

/// The transport's name in receipts.
pub const NAME: &str = "nats";

/// Where and how to publish over NATS JetStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// `nats://host:port`.
    pub url: String,
    /// How many leading topic segments name a message's stream
    /// (`org.fedoraproject.dev.x` with 2: stream `ORG_FEDORAPROJECT` on
    /// subjects `org.fedoraproject.>`), created when missing. A topic
    /// needs more segments than this.
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
    /// sequence). A durable that exists already goes on from where it is.
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

/// How long one try of a publish (or a JetStream API request) waits for
/// its answer: a share of the confirm timeout, so that a lost ack leaves
/// time to try again.
fn attempt_timeout(confirm: Duration) -> Duration {
    (confirm / 3).clamp(Duration::from_millis(500), Duration::from_secs(5))
}

/// A client for `opts.url` that reconnects forever (quickly: at most a
/// second between tries). `background`: return at once and connect in
/// the background; otherwise fail when the server is not there. Counts
/// reconnections in `stats`.
async fn connect_client(
    opts: &NatsOptions,
    name: &str,
    background: bool,
    stats: Option<Arc<Stats>>,
) -> Result<async_nats::Client, Error> {
    let lost = Arc::new(AtomicBool::new(false));
    let mut o = async_nats::ConnectOptions::new()
        .name(name)
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            let exp = u32::try_from(attempts.min(16)).unwrap_or(16);
            Duration::from_millis(25u64.saturating_mul(1 << exp)).min(Duration::from_secs(1))
        })
        .connection_timeout(
            opts.confirm_timeout
                .clamp(Duration::from_millis(500), Duration::from_secs(5)),
        )
        .request_timeout(Some(attempt_timeout(opts.confirm_timeout)))
        .ping_interval(Duration::from_secs(10))
        .event_callback(move |event| {
            let lost = lost.clone();
            let stats = stats.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::info!("nats: disconnected; reconnecting");
                        lost.store(true, Ordering::Relaxed);
                    }
                    async_nats::Event::Connected => {
                        if lost.swap(false, Ordering::Relaxed) {
                            tracing::info!("nats: reconnected");
                            if let Some(s) = &stats {
                                s.reconnects.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    other => tracing::debug!("nats: {other}"),
                }
            }
        });
    if background {
        o = o.retry_on_initial_connect();
    }
    o.connect(opts.url.as_str())
        .await
        .map_err(|e| Error::Transport(format!("nats: cannot connect to {}: {e}", opts.url)))
}
