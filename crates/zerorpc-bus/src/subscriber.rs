//! Subscribing: from our daemon (every message once, in order, from any
//! sequence number, surviving disconnections) or from any fedmsg PUB
//! endpoint (fedmsg publishers, `fedmsg-relay`, `fedmsg-gateway`, our
//! daemon's PUB side), with topic globs, signature validation and schema
//! checks. A message that fails validation or its schema is
//! **quarantined**: handed over as [`Event::Quarantined`] and counted,
//! never as if it were valid.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zerorpc::zmtp::{SocketOptions, SubSocket};

use crate::config::{BusConfig, ConfigError};
use crate::crypto::Validator;
use crate::daemon::BusServiceClient;
use crate::glob::TopicFilter;
use crate::message::Message;
use crate::schema::SchemaRegistry;
use crate::transport::Ack;
use crate::Error;

/// Where a subscription to the daemon starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Since {
    /// With the next message published.
    Next,
    /// With the oldest message still in the log.
    Start,
    /// With this sequence number.
    Seq(u64),
    /// With the first message stored at or after this unix time.
    Time(f64),
}

/// What a subscription checks and keeps.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Topic globs (none: every topic).
    pub patterns: Vec<String>,
    /// Signatures must validate (unsigned messages are quarantined too).
    pub validator: Option<Arc<Validator>>,
    /// Bodies must match their topic's schema, when it has one.
    pub schemas: Option<Arc<SchemaRegistry>>,
}

impl Filters {
    /// The filters `cfg` gives for `patterns`: its schema registry
    /// (`schemas`), and signature validation (`ca_cert`, `crl`, the routing
    /// policy) when `validate` or `cfg.validate` asks for it.
    pub fn from_config(
        cfg: &BusConfig,
        patterns: Vec<String>,
        validate: bool,
    ) -> Result<Filters, Error> {
        let schemas = match &cfg.schemas {
            Some(dir) => Some(Arc::new(SchemaRegistry::load_dir(dir)?)),
            None => None,
        };
        let validator = if validate || cfg.validate {
            let Some(ca) = &cfg.ca_cert else {
                return Err(Error::Config(ConfigError::Missing {
                    key: "ca_cert".into(),
                    why: "signature validation needs the CA's PEM file".into(),
                }));
            };
            Some(Arc::new(Validator::from_files(
                ca,
                cfg.crl.as_deref(),
                cfg.routing_policy.clone().into_iter().collect(),
                cfg.routing_nitpicky,
            )?))
        } else {
            None
        };
        Ok(Filters {
            patterns,
            validator,
            schemas,
        })
    }
}

/// A message received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its sequence number in the transport's log: the daemon's, a
    /// JetStream stream's, a RabbitMQ stream queue's offset (from fedmsg
    /// endpoints: its `seq_id` when it has one).
    pub seq: Option<u64>,
    /// The envelope.
    pub message: Message,
    /// Which delivery of it this is (1: the first; more after a broker
    /// redelivered it, where the broker says).
    pub attempt: u32,
    /// fedora-messaging's schema name it came with (AMQP).
    pub schema_name: Option<String>,
    /// The buses it has been bridged through (loop prevention).
    pub via: Vec<String>,
    /// From a broker with manual acknowledgements: settle it with this.
    pub ack: Option<Ack>,
}

impl Delivery {
    /// A first delivery of `message`, with no broker handle.
    pub fn new(seq: Option<u64>, message: Message) -> Delivery {
        Delivery {
            seq,
            message,
            attempt: 1,
            schema_name: None,
            via: Vec::new(),
            ack: None,
        }
    }
}

/// What a subscription yields.
// Nearly every event is a message: boxing it would cost an allocation per
// message to shrink the rare quarantined one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    /// A valid message.
    Message(Delivery),
    /// A message that failed validation or its schema (or is not a fedmsg
    /// envelope at all): kept aside, with why.
    Quarantined {
        /// Its sequence number, when known.
        seq: Option<u64>,
        /// Why it is not passed on.
        reason: String,
        /// What arrived.
        raw: String,
    },
}

/// A subscription: a stream of [`Event`]s fed by a background task, so a
/// slow reader holds back only itself (up to a bounded buffer, then flow
/// control toward the daemon).
pub struct Subscription {
    rx: mpsc::Receiver<Event>,
    task: JoinHandle<()>,
    stats: Arc<Stats>,
    /// The sequence number after the last event the reader took (see
    /// [`Subscription::next_seq`]).
    read: u64,
}

/// Counters of a subscription.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages delivered.
    pub delivered: AtomicU64,
    /// Messages quarantined.
    pub quarantined: AtomicU64,
    /// Copies dropped as already seen (same sequence number or `msg_id`).
    pub duplicates: AtomicU64,
    /// Times the connection to the daemon was re-established.
    pub reconnects: AtomicU64,
    /// The next sequence number the background task expects from the
    /// daemon, where it resumes after a reconnection. It fetches ahead of
    /// the reader (up to a bounded buffer): a new subscription resumes
    /// from [`Subscription::next_seq`] instead.
    pub next_seq: AtomicU64,
}

/// Events buffered between the background task and the reader.
const BUFFER: usize = 4096;
/// `msg_id`s remembered to drop duplicates from fedmsg endpoints.
const SEEN: usize = 100_000;

impl Subscription {
    /// Follows the daemon at `bus` from `since`.
    pub async fn bus(bus: &str, since: Since, filters: Filters) -> Result<Subscription, Error> {
        let client = BusServiceClient::new(zerorpc::Client::connect(bus).await?);
        // A concrete starting point, so that a reconnection resumes exactly.
        let start = match since {
            Since::Seq(n) => n.max(1),
            Since::Start => 1,
            Since::Next => client.info().await?.last_seq + 1,
            Since::Time(t) => client.seek_time(t).await?,
        };
        let (tx, rx) = mpsc::channel(BUFFER);
        let stats = Arc::new(Stats::default());
        stats.next_seq.store(start, Ordering::Relaxed);
        let task = tokio::spawn(follow_bus(client, filters, tx, stats.clone()));
        Ok(Subscription::from_parts(rx, task, stats))
    }

    /// Listens to fedmsg PUB endpoints (`[topic, envelope]` frames).
    pub async fn fedmsg<S: AsRef<str>>(
        endpoints: &[S],
        filters: Filters,
    ) -> Result<Subscription, Error> {
        let mut opts = SocketOptions::default();
        // A few frames more than fedmsg's two: a wrong count is quarantined
        // with its reason rather than costing the connection (and whatever
        // the PUB side sends while it is re-established).
        opts.limits.max_frames = 16;
        opts.limits.max_message_size = 16 << 20;
        let socket = SubSocket::with_options(opts);
        for prefix in TopicFilter::new(&filters.patterns).zmq_prefixes() {
            socket
                .subscribe(prefix.into_bytes())
                .await
                .map_err(|e| Error::Transport(format!("subscribing: {e}")))?;
        }
        for ep in endpoints {
            let ep = ep.as_ref();
            socket
                .connect(ep)
                .await
                .map_err(|e| Error::Transport(format!("connecting to {ep}: {e}")))?;
        }
        let (tx, rx) = mpsc::channel(BUFFER);
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(follow_fedmsg(socket, filters, tx, stats.clone()));
        Ok(Subscription::from_parts(rx, task, stats))
    }

    /// The subscription's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Where a new subscription resumes so that it misses and repeats
    /// nothing: the sequence number after the last event this one yielded
    /// (its start before any). Messages the background task fetched that
    /// were not read yet are not counted: dropping the subscription drops
    /// them, and the new one fetches them again.
    pub fn next_seq(&self) -> u64 {
        self.read
    }

    /// A subscription fed by `task` through `rx` (for transports).
    pub(crate) fn from_parts(
        rx: mpsc::Receiver<Event>,
        task: JoinHandle<()>,
        stats: Arc<Stats>,
    ) -> Subscription {
        let read = stats.next_seq.load(Ordering::Relaxed);
        Subscription {
            rx,
            task,
            stats,
            read,
        }
    }

    /// The next event (`None`: the subscription ended).
    pub async fn recv(&mut self) -> Option<Event> {
        let ev = self.rx.recv().await;
        self.took(ev.as_ref());
        ev
    }

    /// Moves the reader's position past `ev`.
    fn took(&mut self, ev: Option<&Event>) {
        let seq = match ev {
            Some(Event::Message(d)) => d.seq,
            Some(Event::Quarantined { seq, .. }) => *seq,
            None => None,
        };
        if let Some(seq) = seq {
            self.read = self.read.max(seq.saturating_add(1));
        }
    }
}

impl Stream for Subscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let ev = std::task::ready!(self.rx.poll_recv(cx));
        self.took(ev.as_ref());
        Poll::Ready(ev)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks one envelope as received.
fn check(seq: Option<u64>, raw: &str, filters: &Filters) -> Event {
    match Message::from_json(raw) {
        Ok(m) => admit(Delivery::new(seq, m), filters, || raw.to_owned()),
        Err(e) => Event::Quarantined {
            seq,
            reason: format!("not a fedmsg envelope: {e}"),
            raw: raw.to_owned(),
        },
    }
}

/// Checks a received message against `filters` (signature, schema: the
/// one its `schema_name` names when the registry knows that name, else
/// its topic's): the delivery, or why it is quarantined (`raw` gives what
/// arrived).
pub(crate) fn admit(d: Delivery, filters: &Filters, raw: impl FnOnce() -> String) -> Event {
    let quarantine = |reason: String| Event::Quarantined {
        seq: d.seq,
        reason,
        raw: raw(),
    };
    if let Some(v) = &filters.validator {
        if let Err(e) = v.validate(&d.message) {
            return quarantine(format!("signature rejected: {e}"));
        }
    }
    if let Some(s) = &filters.schemas {
        let by_name = d
            .schema_name
            .as_deref()
            .and_then(|n| s.schema_id_for_fedora_messaging(n));
        if let Err(e) = s.check_with(&d.message.topic, &d.message.msg, by_name) {
            return quarantine(e.to_string());
        }
    }
    Event::Message(d)
}

/// Counts `event` and hands it to the reader: `false` when the reader is
/// gone.
pub(crate) async fn emit(tx: &mpsc::Sender<Event>, stats: &Stats, event: Event) -> bool {
    match &event {
        Event::Message(_) => stats.delivered.fetch_add(1, Ordering::Relaxed),
        Event::Quarantined { reason, .. } => {
            tracing::warn!("bus: quarantined a message: {reason}");
            stats.quarantined.fetch_add(1, Ordering::Relaxed)
        }
    };
    tx.send(event).await.is_ok()
}

async fn follow_bus(
    client: BusServiceClient,
    filters: Filters,
    tx: mpsc::Sender<Event>,
    stats: Arc<Stats>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let cursor = stats.next_seq.load(Ordering::Relaxed);
        match client.subscribe(cursor, filters.patterns.clone()).await {
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    let (upto, batch) = match item {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::info!("bus subscription interrupted: {e}");
                            break;
                        }
                    };
                    backoff = Duration::from_millis(50);
                    for (seq, raw) in batch {
                        if seq < stats.next_seq.load(Ordering::Relaxed) {
                            stats.duplicates.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        stats.next_seq.store(seq + 1, Ordering::Relaxed);
                        if !emit(&tx, &stats, check(Some(seq), &raw, &filters)).await {
                            return;
                        }
                    }
                    stats.next_seq.fetch_max(upto + 1, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::info!("bus subscription: {e}; trying again"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

async fn follow_fedmsg(
    socket: SubSocket,
    filters: Filters,
    tx: mpsc::Sender<Event>,
    stats: Arc<Stats>,
) {
    let topics = TopicFilter::new(&filters.patterns);
    let mut seen = Seen::default();
    loop {
        let frames = match socket.recv().await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("fedmsg subscription stopped: {e}");
                return;
            }
        };
        let event = match frames.frames() {
            [topic, body] => {
                let (Ok(topic), Ok(raw)) = (std::str::from_utf8(topic), std::str::from_utf8(body))
                else {
                    let raw = String::from_utf8_lossy(body).into_owned();
                    let reason = "topic or envelope is not UTF-8".to_owned();
                    if !emit(
                        &tx,
                        &stats,
                        Event::Quarantined {
                            seq: None,
                            reason,
                            raw,
                        },
                    )
                    .await
                    {
                        return;
                    }
                    continue;
                };
                if !topics.matches(topic) {
                    continue;
                }
                let event = check(None, raw, &filters);
                match event {
                    Event::Message(mut d) => {
                        if !seen.insert(&d.message.msg_id) {
                            stats.duplicates.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        d.seq = d.message.extra.get("seq_id").and_then(|v| v.as_u64());
                        Event::Message(d)
                    }
                    q => q,
                }
            }
            other => Event::Quarantined {
                seq: None,
                reason: format!("{} frames (a fedmsg message has 2)", other.len()),
                raw: other
                    .last()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            },
        };
        if !emit(&tx, &stats, event).await {
            return;
        }
    }
}

/// A bounded memory of recent `msg_id`s.
#[derive(Default)]
pub(crate) struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// Forgets `id` (it is remembered no more; its place in the order
    /// stays until it ages out).
    pub(crate) fn forget(&mut self, id: &str) {
        self.set.remove(id);
    }

    /// `false` when `id` was seen already.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        if self.order.len() > SEEN {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}
