//! Publishing: envelopes built as fedmsg builds them (topic rules, `i`,
//! `msg_id`, optional signature), checked against their schema before
//! anything is sent, and confirmed by the daemon once durable.
//!
//! A [`Publisher`] is cheap to clone and may be used from any task or
//! thread ([`Publisher::publish_blocking`] outside async code): one
//! connection, nothing to declare per thread. Publishes are batched: while
//! a batch is on its way, the next ones gather (up to
//! [`PublisherOptions::max_batch`] envelopes, with
//! [`PublisherOptions::max_in_flight`] batches in flight). A batch lost on
//! the way (no heartbeat, a restarting daemon) is sent again until
//! [`PublisherOptions::confirm_timeout`]; the daemon recognises a retry by
//! its `msg_id`, so nothing is stored twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::{BusConfig, ConfigError};
use crate::crypto::Signer;
use crate::message::{current_username, Message, TopicRules};
use crate::schema::{Checked, SchemaRegistry};
use crate::transport::zmq::Daemon;
use crate::transport::{Outgoing, Receipt, Transport};
use crate::Error;

/// Bytes of envelopes in one batch, at most.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// How a publisher builds, checks and sends envelopes.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// The daemon's ingest endpoint.
    pub bus: String,
    /// Topic prefix and environment (`org.fedoraproject`, `dev`).
    pub rules: TopicRules,
    /// The module name in `<prefix>.<env>.<modname>.<topic>`; fedmsg
    /// guesses it from the calling module, we take it from here (default:
    /// this program's name).
    pub modname: String,
    /// The envelope's `username` (default: the user running us, as
    /// fedmsg's `getpass.getuser()`).
    pub username: String,
    /// Signs every envelope (fedmsg's x509 scheme).
    pub signer: Option<Arc<Signer>>,
    /// Checks every body against its topic's schema before sending.
    pub schemas: Option<Arc<SchemaRegistry>>,
    /// Most envelopes in one batch.
    pub max_batch: usize,
    /// Batches awaiting confirmation at once.
    pub max_in_flight: usize,
    /// How long a publish keeps trying before it fails.
    pub confirm_timeout: Duration,
    /// Envelopes queued before `publish` waits for room.
    pub queue: usize,
}

impl PublisherOptions {
    /// Defaults for publishing to the daemon at `bus`.
    pub fn new(bus: impl Into<String>) -> PublisherOptions {
        PublisherOptions {
            bus: bus.into(),
            rules: TopicRules::default(),
            modname: program_name(),
            username: current_username(),
            signer: None,
            schemas: None,
            max_batch: 1024,
            max_in_flight: 8,
            confirm_timeout: Duration::from_secs(30),
            queue: 65_536,
        }
    }
}

impl PublisherOptions {
    /// The options `cfg` gives: topic rules, modname and username when set,
    /// the signer (`sign_cert` and `sign_key`, both or neither), the schema
    /// registry (`schemas`); `bus` is `cfg.ingest`.
    pub fn from_config(cfg: &BusConfig) -> Result<PublisherOptions, Error> {
        let mut o = PublisherOptions::new(cfg.ingest.clone());
        o.rules = TopicRules {
            prefix: cfg.topic_prefix.clone(),
            environment: cfg.environment.clone(),
        };
        if let Some(m) = &cfg.modname {
            o.modname = m.clone();
        }
        if let Some(u) = &cfg.username {
            o.username = u.clone();
        }
        if let Some(dir) = &cfg.schemas {
            o.schemas = Some(Arc::new(SchemaRegistry::load_dir(dir)?));
        }
        o.signer = match (&cfg.sign_cert, &cfg.sign_key) {
            (Some(c), Some(k)) => Some(Arc::new(Signer::from_files(c, k)?)),
            (None, None) => None,
            _ => {
                return Err(Error::Config(ConfigError::Missing {
                    key: if cfg.sign_cert.is_none() {
                        "sign_cert"
                    } else {
                        "sign_key"
                    }
                    .into(),
                    why: "signing needs both sign_cert and sign_key".into(),
                }))
            }
        };
        Ok(o)
    }
}

fn program_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "zerorpc".into())
}

/// Every transport's word that it has a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// Its `msg_id`.
    pub msg_id: String,
    /// One receipt per transport, in the publisher's order.
    pub receipts: Vec<Receipt>,
}

impl Confirmation {
    /// Its sequence number on the first transport that numbers messages
    /// (the daemon's log, a JetStream stream).
    pub fn seq(&self) -> Option<u64> {
        self.receipts.iter().find_map(|r| r.seq)
    }

    /// Every transport already had it (a retry, or a republished envelope).
    pub fn duplicate(&self) -> bool {
        !self.receipts.is_empty() && self.receipts.iter().all(|r| r.duplicate)
    }
}

struct Pending {
    out: Outgoing,
    reply: Option<oneshot::Sender<Result<Confirmation, Error>>>,
}

/// A connection to the bus for publishing (see the module docs).
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    opts: PublisherOptions,
    i: AtomicU64,
    tx: mpsc::Sender<Pending>,
    outstanding: tokio::sync::watch::Sender<usize>,
}

impl Publisher {
    /// Connects to the daemon at `opts.bus` (in the background: publishing
    /// before it is up waits for it, within the confirm timeout).
    pub async fn connect(opts: PublisherOptions) -> Result<Publisher, Error> {
        let daemon = Daemon::connect(&opts.bus, opts.confirm_timeout).await?;
        Ok(Publisher::with_transports(opts, vec![Arc::new(daemon)]))
    }

    /// Connects to every transport `cfg.transports` names (see
    /// [`crate::transport::connect`]) with `opts`: each publish is
    /// confirmed by all of them.
    pub async fn from_config(cfg: &BusConfig, opts: PublisherOptions) -> Result<Publisher, Error> {
        let mut transports = Vec::with_capacity(cfg.transports.len());
        for &kind in &cfg.transports {
            transports.push(crate::transport::connect(cfg, kind, opts.confirm_timeout).await?);
        }
        Ok(Publisher::with_transports(opts, transports))
    }

    /// A publisher that sends every message to each of `transports`, each
    /// confirmed (`opts.bus` is not used). Must be called inside the tokio
    /// runtime.
    pub fn with_transports(
        opts: PublisherOptions,
        transports: Vec<Arc<dyn Transport>>,
    ) -> Publisher {
        let (tx, rx) = mpsc::channel(opts.queue.max(1));
        let (outstanding, _) = tokio::sync::watch::channel(0usize);
        let inner = Arc::new(Inner {
            opts,
            i: AtomicU64::new(0),
            tx,
            outstanding,
        });
        tokio::spawn(run_batches(transports, rx, Arc::downgrade(&inner)));
        Publisher { inner }
    }

    /// The options in force.
    pub fn options(&self) -> &PublisherOptions {
        &self.inner.opts
    }

    /// Builds the envelope for `topic` (the suffix after the modname, or a
    /// full topic starting with the prefix) and `body`: schema-checked,
    /// numbered and signed, not sent.
    pub fn envelope(&self, topic: &str, body: serde_json::Value) -> Result<Message, Error> {
        let o = &self.inner.opts;
        self.envelope_exact(o.rules.full_topic(&o.modname, topic), body)
    }

    /// [`Publisher::envelope`] with the topic `full` taken as it is (no
    /// modname, prefix or environment added): republishing a recording,
    /// bridging.
    pub fn envelope_exact(&self, full: String, body: serde_json::Value) -> Result<Message, Error> {
        let o = &self.inner.opts;
        if let Some(schemas) = &o.schemas {
            let _valid = schemas.check(&full, &body)?;
        }
        let i = self.inner.i.fetch_add(1, Ordering::Relaxed) + 1;
        let mut msg = Message::new(full, body, i, o.username.clone());
        if let Some(signer) = &o.signer {
            signer.sign(&mut msg)?;
        }
        Ok(msg)
    }

    /// Publishes `body` on `topic` and waits for the daemon's confirmation.
    pub async fn publish(
        &self,
        topic: &str,
        body: serde_json::Value,
    ) -> Result<Confirmation, Error> {
        let msg = self.envelope(topic, body)?;
        self.send(&msg).await
    }

    /// Publishes any serialisable value (see [`Publisher::publish`]).
    pub async fn publish_typed<T: Serialize>(
        &self,
        topic: &str,
        body: &T,
    ) -> Result<Confirmation, Error> {
        let body = serde_json::to_value(body)
            .map_err(|e| Error::Transport(format!("cannot encode the body: {e}")))?;
        self.publish(topic, body).await
    }

    /// Sends a ready envelope (from [`Publisher::envelope`], a recording,
    /// another bus) and waits for its confirmation.
    pub async fn send(&self, msg: &Message) -> Result<Confirmation, Error> {
        self.send_via(msg, Vec::new()).await
    }

    /// Publishes every body of `bodies` on `topic`, pipelined, and returns
    /// each one's confirmation (or error), in order: the cheap way to
    /// publish many messages and still check every one.
    pub async fn publish_all(
        &self,
        topic: &str,
        bodies: impl IntoIterator<Item = serde_json::Value>,
    ) -> Vec<Result<Confirmation, Error>> {
        // One slot per body: its envelope's error, or (None) its turn in
        // the confirmations of those sent.
        let mut msgs = Vec::new();
        let mut slots = Vec::new();
        for body in bodies {
            match self.envelope(topic, body) {
                Ok(m) => {
                    msgs.push(m);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(e)),
            }
        }
        let mut sent = self.send_all(&msgs).await.into_iter();
        slots
            .into_iter()
            .map(|slot| match slot {
                Some(e) => Err(e),
                None => sent.next().unwrap_or(Err(Error::Closed)),
            })
            .collect()
    }

    /// [`Publisher::send`] for a message that has already been on the
    /// buses `via` (a bridge's: transports with headers carry them, and a
    /// bridge never sends a message back to a bus it has been on).
    pub async fn send_via(&self, msg: &Message, via: Vec<String>) -> Result<Confirmation, Error> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(msg, via, Some(reply)).await?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Sends ready envelopes, pipelined, and returns each one's
    /// confirmation (or error), in order.
    pub async fn send_all(&self, msgs: &[Message]) -> Vec<Result<Confirmation, Error>> {
        let mut answers = Vec::with_capacity(msgs.len());
        for msg in msgs {
            let (reply, answer) = oneshot::channel();
            answers.push(match self.enqueue(msg, Vec::new(), Some(reply)).await {
                Ok(()) => Some(answer),
                Err(_) => None,
            });
        }
        // In order: by the time the first is confirmed, most of the others
        // are too, so this wakes about once per batch.
        let mut out = Vec::with_capacity(msgs.len());
        for answer in answers {
            out.push(match answer {
                Some(a) => a.await.unwrap_or(Err(Error::Closed)),
                None => Err(Error::Closed),
            });
        }
        out
    }

    /// Sends a ready envelope without waiting for its confirmation (see
    /// [`Publisher::publish_nowait`]).
    pub async fn send_nowait(&self, msg: &Message) -> Result<(), Error> {
        self.enqueue(msg, Vec::new(), None).await
    }

    /// Publishes without waiting for the confirmation (it waits only for
    /// room in the queue); a failure is logged. Returns the `msg_id`.
    /// [`Publisher::flush`] waits for all of them.
    pub async fn publish_nowait(
        &self,
        topic: &str,
        body: serde_json::Value,
    ) -> Result<String, Error> {
        let msg = self.envelope(topic, body)?;
        self.enqueue(&msg, Vec::new(), None).await?;
        Ok(msg.msg_id)
    }

    /// [`Publisher::publish`] for code outside the async runtime (a plain
    /// thread). Must not be called from an async task.
    pub fn publish_blocking(
        &self,
        topic: &str,
        body: serde_json::Value,
    ) -> Result<Confirmation, Error> {
        let msg = self.envelope(topic, body)?;
        let (reply, answer) = oneshot::channel();
        if self
            .inner
            .tx
            .blocking_send(self.pending(&msg, Vec::new(), Some(reply)))
            .is_err()
        {
            return Err(self.not_queued());
        }
        answer.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// Waits until every message queued so far is confirmed or failed.
    pub async fn flush(&self) {
        let mut rx = self.inner.outstanding.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    async fn enqueue(
        &self,
        msg: &Message,
        via: Vec<String>,
        reply: Option<oneshot::Sender<Result<Confirmation, Error>>>,
    ) -> Result<(), Error> {
        if self
            .inner
            .tx
            .send(self.pending(msg, via, reply))
            .await
            .is_err()
        {
            return Err(self.not_queued());
        }
        Ok(())
    }

    /// `msg` for the batcher, counted as outstanding until answered.
    fn pending(
        &self,
        msg: &Message,
        via: Vec<String>,
        reply: Option<oneshot::Sender<Result<Confirmation, Error>>>,
    ) -> Pending {
        self.inner.outstanding.send_modify(|n| *n += 1);
        Pending {
            out: self.outgoing(msg, via),
            reply,
        }
    }

    /// `msg` as transports take it: its canonical JSON and its
    /// fedora-messaging schema name (from the schema registry).
    fn outgoing(&self, msg: &Message, via: Vec<String>) -> Outgoing {
        // Checked again only when some schema names a class (the check
        // that picks it was made when the envelope was built).
        let named =
            (self.inner.opts.schemas.as_ref()).filter(|s| s.names_fedora_messaging_classes());
        let schema_name = named.and_then(|s| match s.check(&msg.topic, &msg.msg) {
            Ok(Checked::Valid { schema_id }) => {
                s.fedora_messaging_name(&schema_id).map(str::to_owned)
            }
            _ => None,
        });
        Outgoing {
            json: msg.to_canonical_json(),
            message: msg.clone(),
            schema_name,
            via,
        }
    }

    /// Uncounts a message the batcher never took (it has stopped).
    fn not_queued(&self) -> Error {
        self.inner.outstanding.send_modify(|n| *n -= 1);
        Error::Closed
    }
}

async fn run_batches(
    transports: Vec<Arc<dyn Transport>>,
    mut rx: mpsc::Receiver<Pending>,
    inner: std::sync::Weak<Inner>,
) {
    let (max_batch, max_in_flight) = match inner.upgrade() {
        Some(i) => (i.opts.max_batch.max(1), i.opts.max_in_flight.max(1)),
        None => return,
    };
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            first = rx.recv(), if in_flight.len() < max_in_flight => {
                let Some(first) = first else { break };
                let mut bytes = first.out.json.len();
                let mut batch = vec![first];
                while batch.len() < max_batch && bytes < MAX_BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(p) => {
                            bytes += p.out.json.len();
                            batch.push(p);
                        }
                        Err(_) => break,
                    }
                }
                in_flight.push(send_batch(&transports, batch, inner.clone()));
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
        }
    }
    while in_flight.next().await.is_some() {}
}

/// Sends `batch` to every transport at once and answers each message once
/// all have confirmed it (or with the first transport's error).
fn send_batch(
    transports: &[Arc<dyn Transport>],
    batch: Vec<Pending>,
    inner: std::sync::Weak<Inner>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (outs, replies): (Vec<Outgoing>, Vec<_>) =
        batch.into_iter().map(|p| (p.out, p.reply)).unzip();
    let outs: Arc<[Outgoing]> = outs.into();
    let sends: Vec<_> = transports.iter().map(|t| t.send(outs.clone())).collect();
    async move {
        let answers = futures::future::join_all(sends).await;
        let n = replies.len();
        let mut answers: Vec<_> = answers.into_iter().map(Vec::into_iter).collect();
        for (out, reply) in outs.iter().zip(replies) {
            let mut receipts = Vec::with_capacity(answers.len());
            let mut failed = None;
            for a in &mut answers {
                match a.next().unwrap_or(Err(Error::Closed)) {
                    Ok(r) => receipts.push(r),
                    Err(e) if failed.is_none() => failed = Some(e),
                    Err(e) => tracing::warn!(msg_id = %out.message.msg_id, "bus publish: {e}"),
                }
            }
            let result = match failed {
                Some(e) => Err(e),
                None => Ok(Confirmation {
                    msg_id: out.message.msg_id.clone(),
                    receipts,
                }),
            };
            finish(reply, result);
        }
        if let Some(inner) = inner.upgrade() {
            inner.outstanding.send_modify(|o| *o = o.saturating_sub(n));
        }
    }
}

fn finish(
    reply: Option<oneshot::Sender<Result<Confirmation, Error>>>,
    result: Result<Confirmation, Error>,
) {
    match reply {
        Some(reply) => {
            let _ = reply.send(result);
        }
        None => {
            if let Err(e) = result {
                tracing::warn!("bus publish (not awaited) failed: {e}");
            }
        }
    }
}
