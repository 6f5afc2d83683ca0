//! Call records: one per call side (client and server), with the trace
//! and span ids that link them into a tree, sent in batches to a sink
//! without ever blocking a call.
//!
//! A [`Recorder`] holds a bounded queue: `record` never waits, and a full
//! queue (or a failing sink) drops records and counts them
//! ([`Recorder::dropped`]). A background task takes batches and hands
//! them to a [`TraceSink`]. [`EmbeddedStore`] is the sink that needs
//! nothing else: per-trace lists that expire after a TTL, per-method
//! counters and latency samples, kept in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::trace::{hex, TraceContext};

/// Which end of the call a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// The caller.
    Client,
    /// The callee.
    Server,
}

/// How a call ended, seen from one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A reply.
    Ok,
    /// A remote error (or an error raised by the handler).
    Err {
        /// Error name (`ValueError`, ...).
        name: String,
        /// Its message.
        message: String,
    },
    /// A stream that ended normally after `items` items.
    Stream {
        /// Items sent or received.
        items: u64,
    },
    /// The other side went silent, or its connection dropped.
    Lost,
    /// No reply within the timeout.
    Timeout,
    /// Abandoned (the caller dropped the call, the server stopped).
    Cancelled,
}

impl Outcome {
    /// A short label for counters: `OK`, `ERR`, `STREAM`, `LOST`,
    /// `TIMEOUT`, `CANCELLED`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "OK",
            Outcome::Err { .. } => "ERR",
            Outcome::Stream { .. } => "STREAM",
            Outcome::Lost => "LOST",
            Outcome::Timeout => "TIMEOUT",
            Outcome::Cancelled => "CANCELLED",
        }
    }
}

/// One side of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The span this one was started from (for a server side: the
    /// client's span; for a call made inside a handler: that handler's).
    pub parent_id: Option<String>,
    /// Client or server.
    pub side: Side,
    /// The service (server side: its name; client side: the endpoint).
    pub service: String,
    /// The method called.
    pub method: String,
    /// The other end (client side: the endpoint; server side: the
    /// caller's routing id).
    pub peer: String,
    /// This process (`name[pid]`).
    pub process: String,
    /// This host.
    pub host: String,
    /// Start, microseconds since the Unix epoch.
    pub start_us: u64,
    /// Duration in microseconds.
    pub duration_us: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// The other end of a span, as cheap to keep as possible (turned into
/// text off the call path).
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    /// A client's endpoint (shared by its calls).
    Endpoint(Arc<str>),
    /// A server's caller: its routing id.
    RoutingId(bytes::Bytes),
}

/// A span being timed; becomes a [`Record`] when it ends. Holds no text
/// it does not need: ids stay binary and names shared until the
/// recorder's task builds the record.
#[derive(Debug)]
pub(crate) struct Span {
    ctx: TraceContext,
    side: Side,
    service: Arc<str>,
    method: String,
    peer: Peer,
    start_wall: SystemTime,
    start: Instant,
}

/// A finished span on its way to the recorder's task.
struct Finished {
    span: Span,
    duration: Duration,
    outcome: Outcome,
}

impl Span {
    pub fn start(
        ctx: TraceContext,
        side: Side,
        service: Arc<str>,
        method: String,
        peer: Peer,
    ) -> Self {
        Span::started(
            ctx,
            side,
            service,
            method,
            peer,
            (SystemTime::now(), Instant::now()),
        )
    }

    /// A span that started at `at` (wall clock and monotonic).
    pub fn started(
        ctx: TraceContext,
        side: Side,
        service: Arc<str>,
        method: String,
        peer: Peer,
        at: (SystemTime, Instant),
    ) -> Self {
        Span {
            ctx,
            side,
            service,
            method,
            peer,
            start_wall: at.0,
            start: at.1,
        }
    }

    pub fn finish(self, recorder: &Recorder, outcome: Outcome) {
        let now = Instant::now();
        self.finish_at(recorder, outcome, now);
    }

    /// Finishes a span that ended at `ended` (recorded later).
    pub fn finish_at(self, recorder: &Recorder, outcome: Outcome, ended: Instant) {
        let duration = ended.saturating_duration_since(self.start);
        recorder.push(Finished {
            span: self,
            duration,
            outcome,
        });
    }
}

impl Finished {
    fn into_record(self, process: &str, host: &str) -> Record {
        let s = self.span;
        Record {
            trace_id: s.ctx.trace_id_hex(),
            span_id: s.ctx.span_id_hex(),
            parent_id: s.ctx.parent_id.map(|p| hex(&p)),
            side: s.side,
            service: s.service.to_string(),
            method: s.method,
            peer: match s.peer {
                Peer::Endpoint(e) => e.to_string(),
                Peer::RoutingId(id) => hex(&id),
            },
            process: process.to_owned(),
            host: host.to_owned(),
            start_us: s
                .start_wall
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            duration_us: self.duration.as_micros() as u64,
            outcome: self.outcome,
        }
    }
}

/// Where batches of records go.
pub trait TraceSink: Send + Sync + 'static {
    /// Stores or forwards a batch. An error drops the batch (counted).
    fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>>;
}

/// What the recorder's queue carries.
enum Queued {
    Span(Finished),
    Record(Record),
}

struct RecorderInner {
    tx: mpsc::Sender<Queued>,
    dropped: AtomicU64,
    written: AtomicU64,
}

/// Collects records without blocking calls, and ships them in batches.
/// Cheap to clone; give the same one to clients and servers.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dropped", &self.dropped())
            .field("written", &self.written())
            .finish()
    }
}

/// Records per batch handed to the sink.
const BATCH: usize = 4096;

/// How long records gather before a partial batch is shipped.
const GATHER: Duration = Duration::from_millis(20);

impl Recorder {
    /// A recorder holding at most `capacity` records not yet shipped,
    /// shipping them to `sink` from a background task (call within a
    /// tokio runtime) in batches, at least every 20 ms. Give it room for
    /// what your calls produce in that time (two records per call when
    /// both sides record in one process): 65 536 is plenty for most.
    pub fn new(sink: impl TraceSink, capacity: usize) -> Recorder {
        let (tx, mut rx) = mpsc::channel::<Queued>(capacity.max(1));
        let inner = Arc::new(RecorderInner {
            tx,
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        // (only the shipping task writes them into records)
        let process = format!(
            "{}[{}]",
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "?".into()),
            std::process::id()
        );
        let host = hostname();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                // Let records gather between batches: a sender then never
                // wakes this task for one record (which would cost every
                // call a thread wake-up), and the sink sees big batches.
                if batch.len() < BATCH {
                    tokio::time::sleep(GATHER).await;
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                }
                let n = batch.len() as u64;
                let records = batch
                    .drain(..)
                    .map(|q| match q {
                        Queued::Span(f) => f.into_record(&process, &host),
                        Queued::Record(r) => r,
                    })
                    .collect();
                let result = sink.write(records).await;
                let Some(inner) = weak.upgrade() else { return };
                match result {
                    Ok(()) => inner.written.fetch_add(n, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!(error = %e, records = n, "trace sink failed; records dropped");
                        inner.dropped.fetch_add(n, Ordering::Relaxed)
                    }
                };
            }
        });
        Recorder { inner }
    }

    /// Queues a record; never waits (a full queue drops it, counted).
    pub fn record(&self, r: Record) {
        self.enqueue(Queued::Record(r));
    }

    fn push(&self, f: Finished) {
        self.enqueue(Queued::Span(f));
    }

    fn enqueue(&self, q: Queued) {
        if self.inner.tx.try_send(q).is_err() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped so far (queue full, or the sink failed).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Records the sink accepted so far.
    pub fn written(&self) -> u64 {
        self.inner.written.load(Ordering::Relaxed)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Per-method aggregates kept by a store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MethodStats {
    /// Calls by outcome label.
    pub outcomes: BTreeMap<String, u64>,
    /// Durations sampled (the most recent ones, microseconds).
    pub recent_us: VecDeque<u64>,
}

impl MethodStats {
    /// The q-quantile (0..=1) of the recent durations, in microseconds.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.recent_us.is_empty() {
            return None;
        }
        let mut v: Vec<u64> = self.recent_us.iter().copied().collect();
        v.sort_unstable();
        let i = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        Some(v[i])
    }
}

/// Durations kept per method for quantiles.
const RECENT: usize = 1024;

#[derive(Default)]
struct StoreInner {
    traces: HashMap<String, (Vec<Record>, Instant)>,
    /// (expiry, trace) in insertion order: expiry without scanning every
    /// trace (an entry is stale when its trace got a later record).
    expiries: VecDeque<(Instant, String)>,
    /// (side, service, method) → stats.
    methods: BTreeMap<(String, String, String), MethodStats>,
}

/// An in-memory trace store: per-trace record lists that expire `ttl`
/// after their last record, and per-method counters and latencies (kept
/// for the store's life). Also a [`TraceSink`].
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Mutex<StoreInner>>,
    ttl: Duration,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl StoreInner {
    /// Drops the traces whose last record is older than the TTL.
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiries.front() {
            if *at > now {
                break;
            }
            if let Some((at, id)) = self.expiries.pop_front() {
                if self.traces.get(&id).is_some_and(|(_, exp)| *exp <= at) {
                    self.traces.remove(&id);
                }
            }
        }
    }
}

impl EmbeddedStore {
    /// A store whose traces expire `ttl` after their last record.
    pub fn new(ttl: Duration) -> Self {
        EmbeddedStore {
            inner: Arc::new(Mutex::new(StoreInner::default())),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores records received at `now`.
    pub fn insert_at(&self, batch: Vec<Record>, now: Instant) {
        let mut st = self.lock();
        st.expire(now);
        for r in batch {
            let side = match r.side {
                Side::Client => "client",
                Side::Server => "server",
            };
            let m = st
                .methods
                .entry((side.to_owned(), r.service.clone(), r.method.clone()))
                .or_default();
            *m.outcomes.entry(r.outcome.label().to_owned()).or_default() += 1;
            if m.recent_us.len() >= RECENT {
                m.recent_us.pop_front();
            }
            m.recent_us.push_back(r.duration_us);
            let expires = now + self.ttl;
            let id = r.trace_id.clone();
            let entry = st
                .traces
                .entry(id.clone())
                .or_insert_with(|| (Vec::new(), now));
            let fresh = entry.1 != expires;
            entry.1 = expires;
            entry.0.push(r);
            if fresh {
                st.expiries.push_back((expires, id));
            }
        }
    }

    /// The records of a trace as of `now` (none once expired), by start
    /// time.
    pub fn trace_at(&self, trace_id: &str, now: Instant) -> Vec<Record> {
        let st = self.lock();
        let mut v = match st.traces.get(trace_id) {
            Some((recs, exp)) if *exp > now => recs.clone(),
            _ => Vec::new(),
        };
        v.sort_by_key(|r| r.start_us);
        v
    }

    /// The records of a trace now.
    pub fn trace(&self, trace_id: &str) -> Vec<Record> {
        self.trace_at(trace_id, Instant::now())
    }

    /// Per (side, service, method) statistics.
    pub fn methods(&self) -> BTreeMap<(String, String, String), MethodStats> {
        self.lock().methods.clone()
    }
}

impl TraceSink for EmbeddedStore {
    fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
        self.insert_at(batch, Instant::now());
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Renders a trace as an indented call tree: one line per record,
/// children under their parent span (client side, then the server side
/// it reached, then the calls that handler made).
pub fn render_tree(records: &[Record]) -> String {
    let mut children: HashMap<Option<&str>, Vec<&Record>> = HashMap::new();
    let spans: std::collections::HashSet<&str> =
        records.iter().map(|r| r.span_id.as_str()).collect();
    for r in records {
        // A parent not in this trace's records (a hop we have no record
        // of) hangs the span at the top.
        let parent = r.parent_id.as_deref().filter(|p| spans.contains(p));
        children.entry(parent).or_default().push(r);
    }
    let mut out = String::new();
    fn walk<'a>(
        out: &mut String,
        children: &HashMap<Option<&'a str>, Vec<&'a Record>>,
        key: Option<&'a str>,
        depth: usize,
    ) {
        let Some(list) = children.get(&key) else {
            return;
        };
        let mut list = list.clone();
        list.sort_by_key(|r| r.start_us);
        for r in list {
            let side = match r.side {
                Side::Client => "call",
                Side::Server => "serve",
            };
            let outcome = match &r.outcome {
                Outcome::Err { name, message } => format!("ERR {name}: {message}"),
                Outcome::Stream { items } => format!("STREAM {items} items"),
                other => other.label().to_owned(),
            };
            out.push_str(&format!(
                "{}{side} {} {} {:.3} ms {outcome}\n",
                "  ".repeat(depth),
                r.service,
                r.method,
                r.duration_us as f64 / 1000.0
            ));
            walk(out, children, Some(r.span_id.as_str()), depth + 1);
        }
    }
    walk(&mut out, &children, None, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        trace: &str,
        span: &str,
        parent: Option<&str>,
        side: Side,
        method: &str,
        outcome: Outcome,
    ) -> Record {
        Record {
            trace_id: trace.into(),
            span_id: span.into(),
            parent_id: parent.map(Into::into),
            side,
            service: "svc".into(),
            method: method.into(),
            peer: "p".into(),
            process: "test[1]".into(),
            host: "h".into(),
            start_us: span.len() as u64,
            duration_us: 1500,
            outcome,
        }
    }

    #[test]
    fn traces_expire_after_their_ttl_and_counters_stay() {
        let t0 = Instant::now();
        let store = EmbeddedStore::new(Duration::from_secs(10));
        store.insert_at(
            vec![rec("t1", "a", None, Side::Client, "m", Outcome::Ok)],
            t0,
        );
        store.insert_at(
            vec![rec("t1", "bb", Some("a"), Side::Server, "m", Outcome::Ok)],
            t0 + Duration::from_secs(5),
        );
        // the TTL runs from the last record
        assert_eq!(store.trace_at("t1", t0 + Duration::from_secs(14)).len(), 2);
        assert!(store
            .trace_at("t1", t0 + Duration::from_secs(15))
            .is_empty());
        let m = store.methods();
        assert_eq!(
            m[&("server".into(), "svc".into(), "m".into())].outcomes["OK"],
            1
        );
        assert_eq!(
            m[&("client".into(), "svc".into(), "m".into())].quantile_us(0.5),
            Some(1500)
        );
    }

    #[test]
    fn the_tree_follows_parent_links() {
        let recs = vec![
            rec("t", "a", None, Side::Client, "outer", Outcome::Ok),
            rec("t", "bb", Some("a"), Side::Server, "outer", Outcome::Ok),
            rec(
                "t",
                "ccc",
                Some("bb"),
                Side::Client,
                "inner",
                Outcome::Err {
                    name: "ValueError".into(),
                    message: "no".into(),
                },
            ),
        ];
        let tree = render_tree(&recs);
        assert_eq!(
            tree,
            "call svc outer 1.500 ms OK\n  serve svc outer 1.500 ms OK\n    call svc inner 1.500 ms ERR ValueError: no\n"
        );
    }

    struct Failing;
    impl TraceSink for Failing {
        fn write(&self, _: Vec<Record>) -> BoxFuture<'static, Result<(), String>> {
            Box::pin(std::future::ready(Err("sink down".to_owned())))
        }
    }

    // (paused clock: the recorder's gathering pause passes at once)
    #[tokio::test(start_paused = true)]
    async fn a_failing_sink_or_full_queue_drops_and_counts() {
        let r = Recorder::new(Failing, 4);
        for _ in 0..100 {
            r.record(rec("t", "a", None, Side::Client, "m", Outcome::Ok));
        }
        // Nothing blocked; what did not fit was dropped at once, and the
        // rest is dropped by the failing sink.
        for _ in 0..1000 {
            if r.dropped() == 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(r.dropped(), 100);
        assert_eq!(r.written(), 0);
    }
}
