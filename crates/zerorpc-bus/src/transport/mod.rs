//! Transports: where published messages go and where subscriptions read
//! them from, behind one interface so that publishing and consuming code
//! does not change when the transport does.
//!
//! * [`zmq`]: our ZeroMQ bus daemon (part 1: durable, confirmed, fedmsg's
//!   wire on its PUB side);
//! * [`amqp`]: RabbitMQ (or any AMQP 0-9-1 broker) with fedora-messaging's
//!   wire format, publisher confirms and `mandatory`;
//! * [`nats`]: NATS JetStream (subject = topic, a stream per topic prefix,
//!   `Nats-Msg-Id` for de-duplication).
//!
//! A [`Publisher`](crate::publisher::Publisher) sends each message to every
//! transport it was given, each confirmed; a
//! [`Subscription`](crate::subscriber::Subscription) reads from one. A
//! message keeps its `msg_id` on every transport (AMQP `message_id`, NATS
//! `Nats-Msg-Id`), which is what bridges and consumers de-duplicate by.

pub mod amqp;
pub mod nats;
pub mod zmq;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{BusConfig, TransportKind};
use crate::message::Message;
use crate::subscriber::{Filters, Since, Subscription};
use crate::Error;

/// A boxed future, as transports return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One message on its way out.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The envelope.
    pub message: Message,
    /// Its canonical JSON (fedmsg's wire form, what the daemon stores).
    pub json: String,
    /// fedora-messaging's schema name for it (the `fedora.messages` entry
    /// point a Python consumer loads), from the schema registry's
    /// `x-fedora-messaging-schema`; `None`: the base message class.
    pub schema_name: Option<String>,
    /// The buses it has already been on (bridges' loop prevention): carried
    /// where the transport has headers (AMQP, NATS).
    pub via: Vec<String>,
}

/// A transport's word that it has a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Which transport ([`Transport::name`]).
    pub transport: String,
    /// Its sequence number there, where the transport numbers messages
    /// (the daemon's log, a JetStream stream).
    pub seq: Option<u64>,
    /// The transport already had this `msg_id` (a retry).
    pub duplicate: bool,
    /// No queue took it and it went to the configured alternate exchange.
    pub alternate: bool,
}

/// Where published messages go: a batch in, one confirmation (or error)
/// per message out, in order. A transport retries what it lost on the way
/// (reconnecting) until its confirm timeout; an error means the message
/// was not confirmed.
pub trait Transport: Send + Sync + 'static {
    /// A short name for receipts and errors (`zmq`, `amqp`, `nats`).
    fn name(&self) -> &str;

    /// Sends `batch`; resolves once every message is confirmed or failed.
    fn send(&self, batch: Arc<[Outgoing]>) -> BoxFuture<'static, Vec<Result<Receipt, Error>>>;
}

/// How a message from a broker is settled (see [`Ack`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Done with it (AMQP `basic.ack`, JetStream `+ACK`).
    Ack,
    /// Give it back to be delivered again, to this consumer or another
    /// (AMQP `basic.nack` with requeue, JetStream `-NAK` with this delay).
    Requeue(Duration),
    /// Give up on it: it is not delivered again (AMQP `basic.reject`
    /// without requeue, so it dead-letters where configured; JetStream
    /// `+TERM`).
    Reject,
}

/// A broker's handle on one delivered message: settle it once.
pub(crate) trait Settle: Send + Sync {
    fn settle(&self, how: Settlement) -> BoxFuture<'static, Result<(), Error>>;
    /// Tells the broker the message is still being worked on (JetStream
    /// `+WPI`, so a long callback does not get it redelivered elsewhere);
    /// a no-op where the broker needs none (AMQP: heartbeats run apart from
    /// callbacks).
    fn in_progress(&self) -> BoxFuture<'static, Result<(), Error>>;
}

/// The handle to settle a message delivered by a broker with manual
/// acknowledgements. [`consume`](crate::consumer::consume) settles for
/// you from the callback's [`Verdict`](crate::consumer::Verdict); a reader
/// of a [`Subscription`](crate::subscriber::Subscription) settles each
/// message itself, or the broker stops sending once `prefetch` are
/// unsettled.
#[derive(Clone)]
pub struct Ack(pub(crate) Arc<dyn Settle>);

impl Ack {
    /// Wraps a broker's settle handle.
    pub(crate) fn new(s: impl Settle + 'static) -> Ack {
        Ack(Arc::new(s))
    }

    /// Settles the message (see [`Settlement`]).
    pub async fn settle(&self, how: Settlement) -> Result<(), Error> {
        self.0.settle(how).await
    }

    /// Acknowledges the message.
    pub async fn ack(&self) -> Result<(), Error> {
        self.settle(Settlement::Ack).await
    }

    /// Says the message is still being worked on (see [`Settlement`]).
    pub async fn in_progress(&self) -> Result<(), Error> {
        self.0.in_progress().await
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ack")
    }
}

/// Connects to the transport `kind` as `cfg` configures it; publishes made
/// through it give up after `confirm_timeout`.
pub async fn connect(
    cfg: &BusConfig,
    kind: TransportKind,
    confirm_timeout: Duration,
) -> Result<Arc<dyn Transport>, Error> {
    Ok(match kind {
        TransportKind::Zmq => Arc::new(zmq::Daemon::connect(&cfg.ingest, confirm_timeout).await?),
        TransportKind::Amqp => {
            let mut o = amqp_options(cfg);
            o.confirm_timeout = confirm_timeout;
            Arc::new(amqp::Amqp::connect(o).await?)
        }
        TransportKind::Nats => {
            let mut o = nats_options(cfg);
            o.confirm_timeout = confirm_timeout;
            Arc::new(nats::Nats::connect(o).await?)
        }
    })
}

/// Subscribes through the transport `kind` as `cfg` configures it: on the
/// daemon from `since`; on RabbitMQ through `amqp_queue` (shared) or a
/// private queue, or, for any `since` but [`Since::Next`], from the
/// `amqp_stream_queue`; on JetStream through `nats_durable` (shared) or an
/// ephemeral consumer. `manual_ack`: deliveries from a broker carry an
/// [`Ack`] (what [`consume`](crate::consumer::consume) wants); otherwise
/// each is acknowledged once handed over.
pub async fn subscribe(
    cfg: &BusConfig,
    kind: TransportKind,
    since: Since,
    filters: Filters,
    manual_ack: bool,
) -> Result<Subscription, Error> {
    match kind {
        TransportKind::Zmq => Subscription::bus(&cfg.ingest, since, filters).await,
        TransportKind::Amqp => {
            let how = amqp::AmqpSubscribe {
                queue: cfg.amqp_queue.clone(),
                prefetch: cfg.prefetch,
                manual_ack,
                since: (since != Since::Next).then_some(since),
            };
            amqp::subscribe(&amqp_options(cfg), how, filters).await
        }
        TransportKind::Nats => {
            let how = nats::NatsSubscribe {
                durable: cfg.nats_durable.clone(),
                prefix: Some(cfg.topic_prefix.clone()),
                prefetch: usize::from(cfg.prefetch),
                manual_ack,
                since,
                ..nats::NatsSubscribe::default()
            };
            nats::subscribe(&nats_options(cfg), how, filters).await
        }
    }
}

/// The AMQP options `cfg` gives.
pub fn amqp_options(cfg: &BusConfig) -> amqp::AmqpOptions {
    let mut o = amqp::AmqpOptions::new(cfg.amqp_url.clone());
    o.exchange = cfg.amqp_exchange.clone();
    o.alternate_exchange = cfg.amqp_alternate_exchange.clone();
    o.stream_queue = cfg.amqp_stream_queue.clone();
    o
}

/// The NATS options `cfg` gives.
pub fn nats_options(cfg: &BusConfig) -> nats::NatsOptions {
    let mut o = nats::NatsOptions::new(cfg.nats_url.clone());
    o.stream_depth = cfg.nats_stream_depth;
    if let Some(age) = cfg.retention.as_duration() {
        o.max_age = Some(age);
    }
    o
}
