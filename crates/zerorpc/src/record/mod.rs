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

impl std::fmt::Display for Outcome {
    /// `OK`, `ERR name: message`, `STREAM n items`, `LOST`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Err { name, message } => write!(f, "ERR {name}: {message}"),
            Outcome::Stream { items } => write!(f, "STREAM {items} items"),
            other => f.write_str(other.label()),
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
    /// Server side: the caller's authenticated user id (CURVE), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
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
    user: Option<Arc<str>>,
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
            user: None,
        }
    }

    /// The caller's authenticated user (server side).
    pub fn set_user(&mut self, user: Option<Arc<str>>) {
        self.user = user;
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
            user: s.user.map(|u| u.to_string()),
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

/// What the recorder's handles and its shipping task share.
struct Shared {
    /// Records waiting for the next batch (at most `capacity`).
    queue: Mutex<Vec<Queued>>,
    capacity: usize,
    /// Wakes the shipping task when the queue stops being empty, or the
    /// last handle goes.
    wake: tokio::sync::Notify,
    closed: std::sync::atomic::AtomicBool,
    dropped: AtomicU64,
    written: AtomicU64,
    /// Records queued, and those the shipping task is done with (written
    /// or dropped by the sink): what [`Recorder::flush`] compares.
    queued: AtomicU64,
    settled: AtomicU64,
}

/// The handles' part: when the last handle goes, the task ships what is
/// left and stops.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.wake.notify_one();
    }
}

/// Collects records without blocking calls, and ships them in batches.
/// Cheap to clone; give the same one to clients and servers.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dropped", &self.dropped())
            .field("written", &self.written())
            .finish()
    }
}

/// Most records per batch handed to the sink.
const BATCH: usize = 4096;

/// How long records gather before a partial batch is shipped.
const GATHER: Duration = Duration::from_millis(20);

fn lock_queue(s: &Shared) -> std::sync::MutexGuard<'_, Vec<Queued>> {
    s.queue.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recorder {
    /// A recorder holding at most `capacity` records not yet shipped,
    /// shipping them to `sink` from a background task (call within a
    /// tokio runtime) in batches, at least every 20 ms. Give it room for
    /// what your calls produce in that time (two records per call when
    /// both sides record in one process): 65 536 is plenty for most.
    pub fn new(sink: impl TraceSink, capacity: usize) -> Recorder {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
            wake: tokio::sync::Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            settled: AtomicU64::new(0),
        });
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
        let s = shared.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                // Wait for records (a wake-up comes when the queue stops
                // being empty, not per record).
                while lock_queue(&s).is_empty() {
                    if s.closed.load(Ordering::Acquire) {
                        return;
                    }
                    s.wake.notified().await;
                }
                // Let records gather: the sink sees big batches.
                if !s.closed.load(Ordering::Acquire) {
                    tokio::time::sleep(GATHER).await;
                }
                std::mem::swap(&mut *lock_queue(&s), &mut batch);
                // (in chunks: sinks and their receivers bound message sizes)
                let mut queued = batch.drain(..).peekable();
                while queued.peek().is_some() {
                    let records: Vec<Record> = queued
                        .by_ref()
                        .take(BATCH)
                        .map(|q| match q {
                            Queued::Span(f) => f.into_record(&process, &host),
                            Queued::Record(r) => r,
                        })
                        .collect();
                    let n = records.len() as u64;
                    match sink.write(records).await {
                        Ok(()) => s.written.fetch_add(n, Ordering::Relaxed),
                        Err(e) => {
                            tracing::warn!(error = %e, records = n, "trace sink failed; records dropped");
                            s.dropped.fetch_add(n, Ordering::Relaxed)
                        }
                    };
                    s.settled.fetch_add(n, Ordering::Release);
                }
            }
        });
        Recorder {
            inner: Arc::new(Handle(shared)),
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.0
    }

    /// Queues a record; never waits (a full queue drops it, counted).
    pub fn record(&self, r: Record) {
        self.enqueue(Queued::Record(r));
    }

    fn push(&self, f: Finished) {
        self.enqueue(Queued::Span(f));
    }

    fn enqueue(&self, q: Queued) {
        let s = self.shared();
        let mut queue = lock_queue(s);
        if queue.len() >= s.capacity {
            drop(queue);
            s.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.push(q);
        let first = queue.len() == 1;
        drop(queue);
        s.queued.fetch_add(1, Ordering::Relaxed);
        if first {
            s.wake.notify_one();
        }
    }

    /// Waits until the records queued so far are shipped (or dropped by
    /// the sink), at most `timeout`; returns whether they all were. For a
    /// short-lived process (a command-line call) before it exits.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let s = self.shared();
        let target = s.queued.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if s.settled.load(Ordering::Acquire) >= target {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Records dropped so far (queue full, or the sink failed).
    pub fn dropped(&self) -> u64 {
        self.shared().dropped.load(Ordering::Relaxed)
    }

    /// Records the sink accepted so far.
    pub fn written(&self) -> u64 {
        self.shared().written.load(Ordering::Relaxed)
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

/// Latency distribution: counts in log-linear buckets (8 per power of
/// two, so a quantile read from it is within about 6% of the truth),
/// mergeable, and small enough to keep per method and per time slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bucket index → count.
    pub buckets: BTreeMap<u16, u64>,
    /// Values added.
    pub count: u64,
    /// Their sum (microseconds).
    pub sum_us: u64,
}

impl Histogram {
    /// The bucket a duration (µs) falls in: exact below 8, then 8
    /// sub-buckets per power of two.
    pub fn bucket_of(us: u64) -> u16 {
        if us < 8 {
            return us as u16;
        }
        let e = 63 - us.leading_zeros() as u64; // >= 3
        let sub = (us >> (e - 3)) & 7;
        (8 + (e - 3) * 8 + sub) as u16
    }

    /// The value a bucket stands for: the middle of its range.
    pub fn bucket_value(b: u16) -> u64 {
        if b < 8 {
            return u64::from(b);
        }
        let i = u64::from(b) - 8;
        let (e, sub) = (i / 8 + 3, i % 8);
        if e > 63 {
            return u64::MAX;
        }
        let low = (8 + sub) << (e - 3);
        low.saturating_add((1u64 << (e - 3)) / 2)
    }

    /// Adds one duration.
    pub fn add(&mut self, us: u64) {
        self.add_n(Self::bucket_of(us), 1);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Adds `n` values of bucket `b` (their sum is not known).
    pub fn add_n(&mut self, b: u16, n: u64) {
        *self.buckets.entry(b).or_default() += n;
        self.count += n;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// The q-quantile (0..=1), in microseconds; `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64 * q.clamp(0.0, 1.0)).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(Self::bucket_value(*b));
            }
        }
        self.buckets
            .keys()
            .next_back()
            .map(|b| Self::bucket_value(*b))
    }
}

/// Aggregates of one method, seen from one side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodStats {
    /// Calls by outcome label.
    pub outcomes: BTreeMap<String, u64>,
    /// Their durations.
    pub latency: Histogram,
}

impl MethodStats {
    fn add(&mut self, r: &Record) {
        *self
            .outcomes
            .entry(r.outcome.label().to_owned())
            .or_default() += 1;
        self.latency.add(r.duration_us);
    }

    /// Adds another's counts.
    pub fn merge(&mut self, other: &MethodStats) {
        for (o, n) in &other.outcomes {
            *self.outcomes.entry(o.clone()).or_default() += n;
        }
        self.latency.merge(&other.latency);
    }

    /// Calls counted.
    pub fn calls(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// Calls that did not succeed (anything but `OK` and `STREAM`).
    pub fn failures(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| !matches!(o.as_str(), "OK" | "STREAM"))
            .map(|(_, n)| n)
            .sum()
    }

    /// The q-quantile (0..=1) of the durations, in microseconds.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        self.latency.quantile_us(q)
    }
}

/// One row of a statistics table: a method seen from one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodRow {
    /// `client` or `server`.
    pub side: String,
    /// The service (or, client side, the endpoint).
    pub service: String,
    /// The method.
    pub method: String,
    /// Its aggregates.
    pub stats: MethodStats,
}

/// Seconds per statistics slot: stores keep per-method aggregates per
/// slot (by when each call ended) so rates and quantiles can be read over
/// recent windows.
pub const SLOT_SECS: u64 = 10;

/// Slots kept (ten minutes).
pub const SLOTS_KEPT: u64 = 60;

/// The slot a record's call ended in.
pub fn slot_of(r: &Record) -> u64 {
    r.start_us.saturating_add(r.duration_us) / (SLOT_SECS * 1_000_000)
}

/// `client` or `server`.
pub fn side_label(s: Side) -> &'static str {
    match s {
        Side::Client => "client",
        Side::Server => "server",
    }
}

type MethodKey = (String, String, String);

fn key_of(r: &Record) -> MethodKey {
    (
        side_label(r.side).to_owned(),
        r.service.clone(),
        r.method.clone(),
    )
}

/// The method a server records (span, metrics labels) for a call to a
/// method it does not have: one label however many names clients try.
pub const UNKNOWN_METHOD: &str = "<unknown>";

/// Where statistics go once a service has too many distinct methods (as
/// the method), or the store too many keys (as the service and method).
pub const OTHER: &str = "<other>";

/// How many distinct (side, service, method) keys a store aggregates.
/// Records beyond are counted under [`OTHER`] rather than growing the
/// store: servers already fold unknown methods into [`UNKNOWN_METHOD`],
/// but records reach a collector from anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    /// Distinct methods per (side, service). Default 512: more methods
    /// than real services have, while one service's keys stay small.
    pub max_methods_per_service: usize,
    /// Distinct keys over all services. Default 8,192: with the slots
    /// kept (one table per 10 s for ten minutes), a few MiB at most.
    pub max_keys: usize,
}

impl Default for KeyLimits {
    fn default() -> Self {
        KeyLimits {
            max_methods_per_service: 512,
            max_keys: 8192,
        }
    }
}

/// The keys a store aggregates, within [`KeyLimits`]: known keys stay; a
/// new method of a service at its limit goes to `(side, service,
/// <other>)`; a new key once the store is at its limit goes to the
/// service's `<other>` when the service has keys, else to `(side,
/// <other>, <other>)`. So at most `2 × max_keys + 2` keys ever exist.
#[derive(Debug, Default)]
pub struct MethodKeys {
    limits: KeyLimits,
    keys: std::collections::HashSet<MethodKey>,
    per_service: HashMap<(String, String), usize>,
    folded: u64,
}

impl MethodKeys {
    /// Keys within these limits.
    pub fn new(limits: KeyLimits) -> Self {
        MethodKeys {
            limits,
            ..MethodKeys::default()
        }
    }

    /// The key `r`'s statistics go to.
    pub fn key_for(&mut self, r: &Record) -> MethodKey {
        let key = key_of(r);
        if self.keys.contains(&key) {
            return key;
        }
        let service = (key.0, key.1);
        let held = self.per_service.get(&service).copied().unwrap_or(0);
        if held < self.limits.max_methods_per_service && self.keys.len() < self.limits.max_keys {
            self.keys
                .insert((service.0.clone(), service.1.clone(), key.2));
            *self.per_service.entry(service.clone()).or_default() += 1;
            return (service.0, service.1, r.method.clone());
        }
        self.folded += 1;
        if self.folded.is_power_of_two() {
            tracing::warn!(
                folded = self.folded,
                service = %service.1,
                "too many distinct methods: statistics counted under <other>"
            );
        }
        if held > 0 {
            (service.0, service.1, OTHER.to_owned())
        } else {
            (service.0, OTHER.to_owned(), OTHER.to_owned())
        }
    }

    /// Records counted under [`OTHER`] because of the limits.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// Distinct keys admitted (not counting the `<other>` ones).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none was admitted yet.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A table's rows, in key order.
pub fn rows(table: BTreeMap<MethodKey, MethodStats>) -> Vec<MethodRow> {
    table
        .into_iter()
        .map(|((side, service, method), stats)| MethodRow {
            side,
            service,
            method,
            stats,
        })
        .collect()
}

/// A store that can be queried as well as written: what a
/// [`Collector`](crate::collector::Collector) serves to `zerorpc trace`.
pub trait TraceStore: TraceSink {
    /// The records of a trace (none once expired), by start time.
    fn trace(&self, trace_id: &str) -> BoxFuture<'static, Result<Vec<Record>, String>>;

    /// Per-method aggregates of the calls that ended at or after
    /// `since_us` (µs since the Unix epoch, at slot granularity; slots
    /// are kept ten minutes), or of every call recorded with `None`.
    fn stats(&self, since_us: Option<u64>) -> BoxFuture<'static, Result<Vec<MethodRow>, String>>;
}

#[derive(Default)]
struct StoreInner {
    traces: HashMap<String, (Vec<Record>, Instant)>,
    /// (expiry, trace) in insertion order: expiry without scanning every
    /// trace (an entry is stale when its trace got a later record).
    expiries: VecDeque<(Instant, String)>,
    /// (side, service, method) → stats, since the store started.
    methods: BTreeMap<MethodKey, MethodStats>,
    /// The same per slot, oldest first.
    slots: VecDeque<(u64, BTreeMap<MethodKey, MethodStats>)>,
    /// Which keys `methods` and `slots` may hold.
    keys: MethodKeys,
}

/// An in-memory trace store: per-trace record lists that expire `ttl`
/// after their last record, per-method counters and latency histograms
/// (since the start, and per 10-second slot for the last ten minutes).
/// A [`TraceSink`] and a [`TraceStore`].
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

    /// The slot table a record goes to (records arrive mostly in order,
    /// so the search starts from the newest slot); `None` for a record
    /// older than the slots kept.
    fn slot_mut(&mut self, slot: u64) -> Option<&mut BTreeMap<MethodKey, MethodStats>> {
        let newest = self.slots.back().map_or(slot, |(s, _)| *s).max(slot);
        if slot + SLOTS_KEPT <= newest {
            return None;
        }
        while self
            .slots
            .front()
            .is_some_and(|(s, _)| *s + SLOTS_KEPT <= newest)
        {
            self.slots.pop_front();
        }
        let at = self
            .slots
            .iter()
            .rposition(|(s, _)| *s <= slot)
            .map_or(0, |i| i + 1);
        if at == 0 || self.slots[at - 1].0 != slot {
            self.slots.insert(at, (slot, BTreeMap::new()));
            return Some(&mut self.slots[at].1);
        }
        Some(&mut self.slots[at - 1].1)
    }
}

impl EmbeddedStore {
    /// A store whose traces expire `ttl` after their last record, with the
    /// default [`KeyLimits`].
    pub fn new(ttl: Duration) -> Self {
        EmbeddedStore::with_limits(ttl, KeyLimits::default())
    }

    /// A store whose traces expire `ttl` after their last record, and
    /// whose statistics keep at most `limits` keys.
    pub fn with_limits(ttl: Duration, limits: KeyLimits) -> Self {
        EmbeddedStore {
            inner: Arc::new(Mutex::new(StoreInner {
                keys: MethodKeys::new(limits),
                ..StoreInner::default()
            })),
            ttl,
        }
    }

    /// Distinct (side, service, method) keys of the statistics.
    pub fn key_count(&self) -> usize {
        self.lock().methods.len()
    }

    /// Records whose statistics went under `<other>` (key limits).
    pub fn folded(&self) -> u64 {
        self.lock().keys.folded()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores records received at `now`.
    pub fn insert_at(&self, batch: Vec<Record>, now: Instant) {
        let mut st = self.lock();
        st.expire(now);
        for r in batch {
            let key = st.keys.key_for(&r);
            if let Some(table) = st.slot_mut(slot_of(&r)) {
                table.entry(key.clone()).or_default().add(&r);
            }
            st.methods.entry(key).or_default().add(&r);
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

    /// Per (side, service, method) statistics since the store started.
    pub fn methods(&self) -> BTreeMap<(String, String, String), MethodStats> {
        self.lock().methods.clone()
    }

    /// Per-method statistics of the calls that ended at or after
    /// `since_us` (slot granularity), or of all calls with `None`.
    pub fn stats_since(&self, since_us: Option<u64>) -> Vec<MethodRow> {
        let st = self.lock();
        let Some(since) = since_us else {
            return rows(st.methods.clone());
        };
        let first = since / (SLOT_SECS * 1_000_000);
        let mut table: BTreeMap<MethodKey, MethodStats> = BTreeMap::new();
        for (_, t) in st.slots.iter().filter(|(s, _)| *s >= first) {
            for (k, m) in t {
                table.entry(k.clone()).or_default().merge(m);
            }
        }
        rows(table)
    }
}

impl TraceStore for EmbeddedStore {
    fn trace(&self, trace_id: &str) -> BoxFuture<'static, Result<Vec<Record>, String>> {
        let v = EmbeddedStore::trace(self, trace_id);
        Box::pin(std::future::ready(Ok(v)))
    }

    fn stats(&self, since_us: Option<u64>) -> BoxFuture<'static, Result<Vec<MethodRow>, String>> {
        let v = self.stats_since(since_us);
        Box::pin(std::future::ready(Ok(v)))
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
            out.push_str(&format!(
                "{}{side} {} {} {:.3} ms {}\n",
                "  ".repeat(depth),
                r.service,
                r.method,
                r.duration_us as f64 / 1000.0,
                r.outcome
            ));
            walk(out, children, Some(r.span_id.as_str()), depth + 1);
        }
    }
    walk(&mut out, &children, None, 0);
    out
}

/// One line for a live record: its end time (UTC), trace id, side,
/// service, method, duration and outcome.
pub fn render_line(r: &Record) -> String {
    let end = r.start_us.saturating_add(r.duration_us);
    let secs = end / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:03} {} {} {} {} {:.3} ms {}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        end / 1000 % 1000,
        r.trace_id,
        match r.side {
            Side::Client => "call ",
            Side::Server => "serve",
        },
        r.service,
        r.method,
        r.duration_us as f64 / 1000.0,
        r.outcome
    )
}

/// A `top`-style table of per-method statistics over `secs` seconds:
/// calls per second, the share that failed, p50 and p99, busiest first.
pub fn render_top(rows: &[MethodRow], secs: f64) -> String {
    let mut rows: Vec<&MethodRow> = rows.iter().filter(|r| r.stats.calls() > 0).collect();
    rows.sort_by(|a, b| {
        b.stats
            .calls()
            .cmp(&a.stats.calls())
            .then_with(|| (&a.service, &a.method, &a.side).cmp(&(&b.service, &b.method, &b.side)))
    });
    let ms = |us: Option<u64>| us.map_or("-".to_owned(), |u| format!("{:.3}", u as f64 / 1000.0));
    let mut out = format!(
        "{:<6} {:<28} {:<20} {:>9} {:>7} {:>10} {:>10}\n",
        "SIDE", "SERVICE", "METHOD", "CALLS/S", "FAIL%", "P50 ms", "P99 ms"
    );
    for r in rows {
        let calls = r.stats.calls();
        out.push_str(&format!(
            "{:<6} {:<28} {:<20} {:>9.2} {:>7.1} {:>10} {:>10}\n",
            r.side,
            r.service,
            r.method,
            calls as f64 / secs.max(0.001),
            100.0 * r.stats.failures() as f64 / calls as f64,
            ms(r.stats.quantile_us(0.5)),
            ms(r.stats.quantile_us(0.99)),
        ));
    }
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
            user: None,
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
        // (a histogram bucket's middle: within 6%)
        let p50 = m[&("client".into(), "svc".into(), "m".into())]
            .quantile_us(0.5)
            .unwrap();
        assert!((1410..=1590).contains(&p50), "{p50}");
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

    #[test]
    fn histogram_buckets_are_within_six_percent_and_quantiles_follow() {
        for us in (0..100_000u64).chain((0..60).map(|e| 1u64 << e)) {
            let v = Histogram::bucket_value(Histogram::bucket_of(us));
            let err = (v as f64 - us as f64).abs() / (us.max(1) as f64);
            assert!(err <= 0.0625, "{us} -> {v}");
        }
        // the top bucket neither overflows nor panics
        assert!(Histogram::bucket_value(Histogram::bucket_of(u64::MAX)) >= 15 << 60);
        let mut h = Histogram::default();
        for us in 1..=1000 {
            h.add(us);
        }
        let near = |got: Option<u64>, want: f64| {
            let got = got.unwrap() as f64;
            assert!((got - want).abs() / want < 0.07, "{got} vs {want}");
        };
        near(h.quantile_us(0.5), 500.0);
        near(h.quantile_us(0.99), 990.0);
        near(h.quantile_us(1.0), 1000.0);
        assert_eq!(h.count, 1000);
        let mut twice = h.clone();
        twice.merge(&h);
        assert_eq!(twice.count, 2000);
        near(twice.quantile_us(0.5), 500.0);
        assert_eq!(Histogram::default().quantile_us(0.5), None);
    }

    #[test]
    fn stats_are_kept_per_slot_for_recent_windows() {
        let store = EmbeddedStore::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let slot_us = SLOT_SECS * 1_000_000;
        let at = |slot: u64, ok: bool| {
            let mut r = rec(
                "t",
                "a",
                None,
                Side::Server,
                "m",
                if ok {
                    Outcome::Ok
                } else {
                    Outcome::Err {
                        name: "E".into(),
                        message: "x".into(),
                    }
                },
            );
            r.start_us = 1000 * slot_us + slot * slot_us;
            r
        };
        // three calls in slot 0, two (one failing) in slot 5
        store.insert_at(vec![at(0, true), at(0, true), at(0, true)], t0);
        store.insert_at(vec![at(5, true), at(5, false)], t0);
        let all = store.stats_since(None);
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].stats.calls(), all[0].stats.failures()), (5, 1));
        let recent = store.stats_since(Some(1000 * slot_us + 3 * slot_us));
        assert_eq!(
            (recent[0].stats.calls(), recent[0].stats.failures()),
            (2, 1)
        );
        assert_eq!(recent[0].side, "server");
        // a slot SLOTS_KEPT newer pushes the old ones out (not the totals)
        store.insert_at(vec![at(5 + SLOTS_KEPT - 1, true)], t0);
        let window = store.stats_since(Some(1000 * slot_us));
        assert_eq!(window[0].stats.calls(), 3);
        // a record older than what is kept only counts in the totals
        store.insert_at(vec![at(1, true)], t0);
        assert_eq!(store.stats_since(Some(1000 * slot_us))[0].stats.calls(), 3);
        assert_eq!(store.stats_since(None)[0].stats.calls(), 7);
    }

    #[test]
    fn lines_and_top_tables() {
        let mut r = rec("0af7", "b7ad", None, Side::Server, "echo", Outcome::Ok);
        r.start_us = 3_723_004_000; // 01:02:03.004
        r.duration_us = 1500;
        assert_eq!(
            render_line(&r),
            "01:02:03.005 0af7 serve svc echo 1.500 ms OK"
        );
        let mut fast = MethodStats::default();
        for _ in 0..9 {
            fast.add(&r);
        }
        r.outcome = Outcome::Timeout;
        r.duration_us = 30_000;
        fast.add(&r);
        let row = |method: &str, stats: MethodStats| MethodRow {
            side: "server".into(),
            service: "svc".into(),
            method: method.into(),
            stats,
        };
        let slow = {
            let mut m = MethodStats::default();
            m.add(&r);
            m
        };
        let table = render_top(&[row("slow", slow), row("echo", fast)], 10.0);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("SIDE"));
        // busiest first: 10 calls in 10 s, one failed, p99 the slow one
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cols[..5],
            ["server", "svc", "echo", "1.00", "10.0"],
            "{table}"
        );
        let p50: f64 = cols[5].parse().unwrap();
        let p99: f64 = cols[6].parse().unwrap();
        assert!(
            (1.4..1.6).contains(&p50) && (28.0..32.0).contains(&p99),
            "{table}"
        );
        assert!(lines[2].contains(" slow "), "{table}");
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
        assert!(r.flush(Duration::from_secs(1)).await);
    }

    #[test]
    fn a_store_fed_endless_method_and_service_names_keeps_its_keys_bounded() {
        let store = EmbeddedStore::with_limits(
            Duration::from_secs(60),
            KeyLimits {
                max_methods_per_service: 10,
                max_keys: 50,
            },
        );
        let now = Instant::now();
        // Records reach a collector from anyone: 10,000 methods of one
        // service, then 10,000 services.
        let batch: Vec<Record> = (0..10_000)
            .map(|i| {
                rec(
                    "t1",
                    "s1",
                    None,
                    Side::Server,
                    &format!("m{i}"),
                    Outcome::Ok,
                )
            })
            .collect();
        store.insert_at(batch, now);
        let batch: Vec<Record> = (0..10_000)
            .map(|i| Record {
                service: format!("svc{i}"),
                ..rec("t2", "s2", None, Side::Server, "m", Outcome::Ok)
            })
            .collect();
        store.insert_at(batch, now);
        let keys = store.key_count();
        assert!(keys <= 2 * 50 + 2, "{keys} keys");
        let m = store.methods();
        let calls: u64 = m.values().map(MethodStats::calls).sum();
        assert_eq!(calls, 20_000, "every call is still counted");
        let other = |svc: &str| m[&("server".into(), svc.into(), OTHER.into())].calls();
        assert_eq!(other("svc"), 9_990);
        assert_eq!(other(OTHER), 10_000 - 40);
        assert_eq!(store.folded(), 9_990 + 9_960);
        // Known keys keep counting under their own name.
        store.insert_at(
            vec![rec("t3", "s3", None, Side::Server, "m3", Outcome::Ok)],
            now,
        );
        assert_eq!(
            store.methods()[&("server".into(), "svc".into(), "m3".into())].calls(),
            2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn flush_waits_for_what_was_queued() {
        let store = EmbeddedStore::new(Duration::from_secs(60));
        let r = Recorder::new(store.clone(), 100);
        for _ in 0..10 {
            r.record(rec("t", "a", None, Side::Client, "m", Outcome::Ok));
        }
        assert!(r.flush(Duration::from_secs(5)).await);
        assert_eq!((r.written(), store.trace("t").len()), (10, 10));
    }
}
