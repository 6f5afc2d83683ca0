//! Shipping records to a collector, and the collector's stores.
//!
//! Services record with a [`PushSink`]: batches of records, msgpack-encoded,
//! over a ZeroMQ PUSH socket (never waiting: with the collector away the
//! batch is dropped and counted). A [`Collector`] pulls them and hands them
//! to a store: [`RedisStore`] (per-trace lists that expire after a TTL,
//! per-method call counters and latency sums, in Redis) or the in-memory
//! [`EmbeddedStore`](crate::EmbeddedStore).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use zmtp::{Endpoint, Message, PullSocket, PushSocket};

use crate::error::Error;
use crate::record::{Record, Side, TraceSink};

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
        let socket = PushSocket::new();
        socket.connect(endpoint).await?;
        Ok(PushSink { socket })
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

/// Receives record batches and stores them.
pub struct Collector {
    socket: PullSocket,
    store: Arc<dyn TraceSink>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").finish()
    }
}

impl Collector {
    /// A collector storing into `store`.
    pub fn new(store: impl TraceSink) -> Self {
        Collector {
            socket: PullSocket::new(),
            store: Arc::new(store),
        }
    }

    /// Listens for senders; returns the endpoint with its real port.
    pub async fn bind(&self, endpoint: &str) -> Result<Endpoint, Error> {
        Ok(self.socket.bind(endpoint).await?)
    }

    /// Stores batches until the socket closes. A malformed batch is logged
    /// and dropped; a store failure is logged (the batch is lost).
    pub async fn run(&self) -> Result<(), Error> {
        loop {
            let msg = self.socket.recv().await?;
            let Some(payload) = msg.last() else { continue };
            match decode_batch(payload) {
                Ok(batch) => {
                    if let Err(e) = self.store.write(batch).await {
                        tracing::warn!(error = %e, "trace store failed; batch lost");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dropping a malformed record batch"),
            }
        }
    }
}

/// Records in Redis: `PREFIX:trace:ID` lists of msgpack records, expiring
/// `ttl` after their last record; `PREFIX:calls` counts calls per
/// `side|service|method|OUTCOME`; `PREFIX:latency` sums
/// `side|service|method|count` and `...|sum_us`.
#[derive(Clone)]
pub struct RedisStore {
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
    ttl: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn redis_err(e: redis::RedisError) -> Error {
    Error::Protocol(format!("redis: {e}"))
}

fn side(s: Side) -> &'static str {
    match s {
        Side::Client => "client",
        Side::Server => "server",
    }
}

impl RedisStore {
    /// Connects to Redis at `url` (`redis://127.0.0.1/`); keys start with
    /// `prefix` (`zerorpc` by convention).
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(redis_err)?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(redis_err)?;
        Ok(RedisStore {
            conn,
            prefix: prefix.to_owned(),
            ttl,
        })
    }

    fn trace_key(&self, id: &str) -> String {
        format!("{}:trace:{id}", self.prefix)
    }

    /// The records of a trace (none once expired), by start time.
    pub async fn trace(&self, id: &str) -> Result<Vec<Record>, Error> {
        let mut conn = self.conn.clone();
        let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.trace_key(id))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        let mut out = Vec::with_capacity(raw.len());
        for r in raw {
            match rmp_serde::from_slice::<Record>(&r) {
                Ok(rec) => out.push(rec),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable record in redis"),
            }
        }
        out.sort_by_key(|r| r.start_us);
        Ok(out)
    }

    /// Calls counted for `side|service|method|OUTCOME`.
    pub async fn calls(
        &self,
        side_: Side,
        service: &str,
        method: &str,
        outcome: &str,
    ) -> Result<u64, Error> {
        let mut conn = self.conn.clone();
        let n: Option<u64> = redis::cmd("HGET")
            .arg(format!("{}:calls", self.prefix))
            .arg(format!("{}|{service}|{method}|{outcome}", side(side_)))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(n.unwrap_or(0))
    }

    /// Deletes the counters (traces expire by themselves).
    pub async fn clear_counters(&self) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(format!("{}:calls", self.prefix))
            .arg(format!("{}:latency", self.prefix))
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)
    }

    /// Seconds left before a trace expires (`None`: no such trace).
    pub async fn ttl_of(&self, id: &str) -> Result<Option<u64>, Error> {
        let mut conn = self.conn.clone();
        let t: i64 = redis::cmd("TTL")
            .arg(self.trace_key(id))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(u64::try_from(t).ok())
    }
}

impl TraceSink for RedisStore {
    fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
        let mut conn = self.conn.clone();
        let prefix = self.prefix.clone();
        let ttl = self.ttl.as_secs().max(1);
        Box::pin(async move {
            let mut pipe = redis::pipe();
            for r in &batch {
                let bytes = rmp_serde::to_vec_named(r).map_err(|e| e.to_string())?;
                let key = format!("{prefix}:trace:{}", r.trace_id);
                pipe.cmd("RPUSH").arg(&key).arg(bytes).ignore();
                pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
                let what = format!("{}|{}|{}", side(r.side), r.service, r.method);
                pipe.cmd("HINCRBY")
                    .arg(format!("{prefix}:calls"))
                    .arg(format!("{what}|{}", r.outcome.label()))
                    .arg(1)
                    .ignore();
                pipe.cmd("HINCRBY")
                    .arg(format!("{prefix}:latency"))
                    .arg(format!("{what}|count"))
                    .arg(1)
                    .ignore();
                pipe.cmd("HINCRBY")
                    .arg(format!("{prefix}:latency"))
                    .arg(format!("{what}|sum_us"))
                    .arg(r.duration_us)
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| format!("redis: {e}"))
        })
    }
}
