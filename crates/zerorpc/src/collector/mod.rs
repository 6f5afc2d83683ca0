//! Shipping records to a collector, and the collector's stores.
//!
//! Services record with a [`PushSink`]: batches of records, msgpack-encoded,
//! over a ZeroMQ PUSH socket (never waiting: with the collector away the
//! batch is dropped and counted). A [`Collector`] pulls them and hands them
//! to a store: `RedisStore` (the `redis` feature: per-trace lists that expire after a TTL,
//! per-method call counters and latency histograms, in Redis) or the
//! in-memory [`EmbeddedStore`](crate::record::EmbeddedStore).
//!
//! A collector also answers queries, as a zerorpc service
//! ([`Collector::queries`]): `trace` (a trace's records), `stats`
//! (per-method counts and latency histograms over a recent window) and
//! `tail` (a stream of live records). `zerorpc trace show|tail|top` use it.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::Stream;
use tokio::sync::broadcast;
use zmtp::{Endpoint, Message, PullSocket, PushSocket};

use crate::error::CallError;
use crate::error::Error;
use crate::record::{Record, Recorder, TraceSink, TraceStore};
use crate::Value;

#[cfg(feature = "redis")]
mod redis_store;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;

/// Encodes a batch as msgpack (field names kept, so peers may add fields).
pub fn encode_batch(batch: &[Record]) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(batch).map_err(|e| e.to_string())
}

/// Decodes a batch.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Record>, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

/// Sends record batches to a collector over PUSH.
#[derive(Debug)]
pub struct PushSink {
    socket: PushSocket,
}

impl PushSink {
    /// A sink connected (in the background, reconnecting) to a collector.
    pub async fn connect(endpoint: &str) -> Result<Self, Error> {
        Ok(PushSink::connect_monitored(endpoint).await?.0)
    }

    /// [`PushSink::connect`], with its connection events from the first
    /// attempt on (a [`PushSink::monitor`] taken afterwards may miss it).
    pub async fn connect_monitored(
        endpoint: &str,
    ) -> Result<(Self, broadcast::Receiver<zmtp::SocketEvent>), Error> {
        let socket = PushSocket::new();
        let events = socket.monitor();
        socket.connect(endpoint).await?;
        Ok((PushSink { socket }, events))
    }

    /// Its connection events: a handshake that fails with
    /// [`zmtp::HandshakeFailure::IncompatibleSocketType`] means the
    /// address is not a collector's records port (its query port, say).
    pub fn monitor(&self) -> broadcast::Receiver<zmtp::SocketEvent> {
        self.socket.monitor()
    }
}

impl TraceSink for PushSink {
    fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
        let r = encode_batch(&batch).and_then(|bytes| {
            self.socket
                .try_send(Message::from_iter([bytes::Bytes::from(bytes)]))
                .map_err(|e| format!("collector unreachable: {e}"))
        });
        Box::pin(std::future::ready(r))
    }
}

/// Receives record batches, stores them, and answers queries about them.
pub struct Collector {
    socket: PullSocket,
    store: Arc<dyn TraceStore>,
    live: broadcast::Sender<Arc<Record>>,
    /// Where records are passed on as well (OTLP, another collector...).
    forward: Vec<Recorder>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").finish()
    }
}

/// Live records buffered per `tail` follower; a follower further behind
/// skips (and is told how many).
const LIVE_BUFFER: usize = 4096;

impl Collector {
    /// A collector storing into `store`.
    pub fn new(store: impl TraceStore) -> Self {
        Collector {
            socket: PullSocket::new(),
            store: Arc::new(store),
            live: broadcast::channel(LIVE_BUFFER).0,
            forward: Vec::new(),
        }
    }

    /// Also passes every record on to `recorder`'s sink (an OTLP exporter,
    /// say), with its bounded queue: a slow or failing sink drops records
    /// there (counted by the recorder), never here.
    pub fn forward_to(mut self, recorder: Recorder) -> Self {
        self.forward.push(recorder);
        self
    }

    /// Listens for senders; returns the endpoint with its real port.
    pub async fn bind(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.socket.bind(endpoint).await?)
    }

    /// The query service (serve it with a [`Server`](crate::Server)).
    pub fn queries(&self) -> CollectorQueries {
        CollectorQueries {
            store: self.store.clone(),
            live: self.live.clone(),
        }
    }

    /// Stores batches until the socket closes. A malformed batch is logged
    /// and dropped; a store failure is logged (the batch is lost).
    pub async fn run(&self) -> Result<(), Error> {
        loop {
            let msg = self.socket.recv().await?;
            let Some(payload) = msg.last() else { continue };
            match decode_batch(payload) {
                Ok(batch) => {
                    for f in &self.forward {
                        for r in &batch {
                            f.record(r.clone());
                        }
                    }
                    if self.live.receiver_count() > 0 {
                        for r in &batch {
                            let _ = self.live.send(Arc::new(r.clone()));
                        }
                    }
                    if let Err(e) = self.store.write(batch).await {
                        tracing::warn!(error = %e, "trace store failed; batch lost");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dropping a malformed record batch"),
            }
        }
    }
}

/// The collector's query service: what `zerorpc trace` calls.
pub struct CollectorQueries {
    store: Arc<dyn TraceStore>,
    live: broadcast::Sender<Arc<Record>>,
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, CallError> {
    crate::valueser::to_value(v).map_err(|e| CallError::new("EncodeError", e.to_string()))
}

fn store_error(e: String) -> CallError {
    CallError::new("StoreError", e)
}

impl CollectorQueries {
    /// Live records as they arrive, typed (what the dashboard reads); a
    /// receiver that falls behind is told how many it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Record>> {
        self.live.subscribe()
    }
}

#[crate::service(name = "zerorpc-trace-collector")]
impl CollectorQueries {
    /// The records of a trace, by start time (empty: unknown or expired).
    pub async fn trace(&self, trace_id: String) -> Result<Value, CallError> {
        let recs = self.store.trace(&trace_id).await.map_err(store_error)?;
        to_value(&recs)
    }

    /// Per-method counts by outcome and latency histograms, over the last
    /// `window_secs` seconds (0: since the store started).
    pub async fn stats(&self, window_secs: u64) -> Result<Value, CallError> {
        let since = (window_secs > 0).then(|| now_us().saturating_sub(window_secs * 1_000_000));
        let rows = self.store.stats(since).await.map_err(store_error)?;
        to_value(&rows)
    }

    /// Live records as they arrive; a follower that falls behind gets
    /// `{"skipped": n}` in place of what it missed.
    #[zerorpc(stream)]
    pub fn tail(&self) -> impl Stream<Item = Value> + Send + 'static {
        let rx = self.live.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            loop {
                let v = match rx.recv().await {
                    Ok(r) => crate::valueser::to_value(&*r).ok(),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        Some(Value::Map(vec![("skipped".into(), n.into())]))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                if let Some(v) = v {
                    return Some((v, rx));
                }
            }
        })
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
