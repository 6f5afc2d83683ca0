//! Shipping records to a collector, and the collector's stores.
//!
//! Services record with a [`PushSink`]: batches of records, msgpack-encoded,
//! over a ZeroMQ PUSH socket (never waiting: with the collector away the
//! batch is dropped and counted). A [`Collector`] pulls them and hands them
//! to a store: [`RedisStore`] (per-trace lists that expire after a TTL,
//! per-method call counters and latency histograms, in Redis) or the
//! in-memory [`EmbeddedStore`](crate::EmbeddedStore).
//!
//! A collector also answers queries, as a zerorpc service
//! ([`Collector::queries`]): `trace` (a trace's records), `stats`
//! (per-method counts and latency histograms over a recent window) and
//! `tail` (a stream of live records). `zerorpc trace show|tail|top` use it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::Stream;
use tokio::sync::broadcast;
use zmtp::{Endpoint, Message, PullSocket, PushSocket};

use crate::error::Error;
use crate::record::{
    rows, side_label, slot_of, Histogram, MethodKeys, MethodRow, MethodStats, Record, Recorder,
    TraceSink, TraceStore, SLOTS_KEPT, SLOT_SECS,
};
use crate::service::CallError;
use crate::Value;

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

/// Records in Redis:
/// - `PREFIX:trace:ID`: a list of msgpack records, expiring `ttl` after
///   its last record;
/// - `PREFIX:calls`: a hash counting calls per `side|service|method|OUTCOME`;
/// - `PREFIX:latency`: a hash with `side|service|method|count`, `...|sum_us`
///   and a latency histogram (`...|b17`: calls in bucket 17, see
///   [`Histogram`]);
/// - `PREFIX:slot:N`: the same counts and histogram buckets for the calls
///   that ended in 10-second slot N (Unix time / 10), expiring after ten
///   minutes, for rates and quantiles over recent windows.
#[derive(Clone)]
pub struct RedisStore {
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
    ttl: Duration,
    /// The statistics' keys this collector writes, within the default
    /// [`KeyLimits`](crate::record::KeyLimits).
    keys: Arc<std::sync::Mutex<MethodKeys>>,
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

/// Adds a `side|service|method|FIELD` hash to a stats table: an outcome
/// count, a histogram bucket (`bN`), or the latency `count`/`sum_us`.
fn parse_field(table: &mut BTreeMap<(String, String, String), MethodStats>, f: &str, n: u64) {
    // (service names may hold '|', side and method do not)
    let Some((side, rest)) = f.split_once('|') else {
        return;
    };
    let Some((rest, field)) = rest.rsplit_once('|') else {
        return;
    };
    let Some((service, method)) = rest.rsplit_once('|') else {
        return;
    };
    let m = table
        .entry((side.to_owned(), service.to_owned(), method.to_owned()))
        .or_default();
    match field {
        "count" => {}
        "sum_us" => m.latency.sum_us = n,
        f => match f.strip_prefix('b').map(str::parse::<u16>) {
            Some(Ok(b)) => m.latency.add_n(b, n),
            Some(Err(_)) => {}
            None => *m.outcomes.entry(f.to_owned()).or_default() += n,
        },
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
            keys: Arc::default(),
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
        side_: crate::record::Side,
        service: &str,
        method: &str,
        outcome: &str,
    ) -> Result<u64, Error> {
        let mut conn = self.conn.clone();
        let n: Option<u64> = redis::cmd("HGET")
            .arg(format!("{}:calls", self.prefix))
            .arg(format!(
                "{}|{service}|{method}|{outcome}",
                side_label(side_)
            ))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(n.unwrap_or(0))
    }

    /// Deletes the counters and slots (traces expire by themselves).
    pub async fn clear_counters(&self) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:slot:*", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        keys.push(format!("{}:calls", self.prefix));
        keys.push(format!("{}:latency", self.prefix));
        redis::cmd("DEL")
            .arg(keys)
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

    /// Per-method stats over the slots from `since_us` on, or since the
    /// counters were created.
    pub async fn stats(&self, since_us: Option<u64>) -> Result<Vec<MethodRow>, Error> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = match since_us {
            None => vec![
                format!("{}:calls", self.prefix),
                format!("{}:latency", self.prefix),
            ],
            Some(since) => {
                let slot_us = SLOT_SECS * 1_000_000;
                let last = now_us() / slot_us;
                let first = (since / slot_us).max(last.saturating_sub(SLOTS_KEPT));
                (first..=last)
                    .map(|n| format!("{}:slot:{n}", self.prefix))
                    .collect()
            }
        };
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("HGETALL").arg(k);
        }
        let hashes: Vec<Vec<(String, u64)>> =
            pipe.query_async(&mut conn).await.map_err(redis_err)?;
        let mut table = BTreeMap::new();
        for (f, n) in hashes.iter().flatten() {
            parse_field(&mut table, f, *n);
        }
        Ok(rows(table))
    }
}

impl TraceSink for RedisStore {
    fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
        let mut conn = self.conn.clone();
        let prefix = self.prefix.clone();
        let ttl = self.ttl.as_secs().max(1);
        let slot_ttl = (SLOTS_KEPT + 1) * SLOT_SECS;
        let keys = self.keys.clone();
        Box::pin(async move {
            let mut pipe = redis::pipe();
            let calls = format!("{prefix}:calls");
            let latency = format!("{prefix}:latency");
            for r in &batch {
                let bytes = rmp_serde::to_vec_named(r).map_err(|e| e.to_string())?;
                let key = format!("{prefix}:trace:{}", r.trace_id);
                pipe.cmd("RPUSH").arg(&key).arg(bytes).ignore();
                pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
                let (side, service, method) =
                    keys.lock().unwrap_or_else(|p| p.into_inner()).key_for(r);
                let what = format!("{side}|{service}|{method}");
                let outcome = format!("{what}|{}", r.outcome.label());
                let bucket = format!("{what}|b{}", Histogram::bucket_of(r.duration_us));
                let slot = format!("{prefix}:slot:{}", slot_of(r));
                for (hash, field, n) in [
                    (&calls, &outcome, 1),
                    (&latency, &format!("{what}|count"), 1),
                    (&latency, &format!("{what}|sum_us"), r.duration_us),
                    (&latency, &bucket, 1),
                    (&slot, &outcome, 1),
                    (&slot, &bucket, 1),
                ] {
                    pipe.cmd("HINCRBY").arg(hash).arg(field).arg(n).ignore();
                }
                pipe.cmd("EXPIRE").arg(&slot).arg(slot_ttl).ignore();
            }
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| format!("redis: {e}"))
        })
    }
}

impl TraceStore for RedisStore {
    fn trace(&self, trace_id: &str) -> BoxFuture<'static, Result<Vec<Record>, String>> {
        let this = self.clone();
        let id = trace_id.to_owned();
        Box::pin(async move {
            RedisStore::trace(&this, &id)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn stats(&self, since_us: Option<u64>) -> BoxFuture<'static, Result<Vec<MethodRow>, String>> {
        let this = self.clone();
        Box::pin(async move {
            RedisStore::stats(&this, since_us)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_fields_parse_into_stats() {
        let mut t = BTreeMap::new();
        for (f, n) in [
            ("server|demo|echo|OK", 3),
            ("server|demo|echo|ERR", 1),
            ("server|demo|echo|b20", 4),
            ("server|demo|echo|sum_us", 99),
            ("server|demo|echo|count", 4),
            ("client|tcp://h:1|x|y|echo|OK", 2),
            ("garbage", 5),
            ("server|demo|echo|bogus", 0),
            ("server|demo|echo|bxx", 7),
        ] {
            parse_field(&mut t, f, n);
        }
        let m = &t[&("server".into(), "demo".into(), "echo".into())];
        assert_eq!((m.calls(), m.failures(), m.latency.count), (4, 1, 4));
        assert_eq!(m.latency.sum_us, 99);
        assert_eq!(
            t[&("client".into(), "tcp://h:1|x|y".into(), "echo".into())].calls(),
            2
        );
    }
}
