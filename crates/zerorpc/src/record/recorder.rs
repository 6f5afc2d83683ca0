//! The [`Recorder`]: a bounded queue of records, never blocking a call,
//! drained in batches to a [`TraceSink`] by a background task.
//!
//! The queue is split per thread ([`Shard`]): a call records into its
//! own thread's part, under a lock no other thread takes except the
//! shipping task once per batch. (One shared queue measured 5% of a
//! recorded call's CPU at 256 calls in flight, in its lock's cache line
//! going back and forth between the cores.)
//!
//! An [`EmbeddedStore`] given as the sink gets the finished spans as they
//! are (it keeps ids as numbers), not [`Record`]s whose hex ids it would
//! parse back; every other sink gets records.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::{Clocks, EmbeddedStore, Finished, Record};

/// Where batches of records go.
pub trait TraceSink: Send + Sync + 'static {
    /// Stores or forwards a batch. An error drops the batch (counted).
    fn write(&self, batch: Vec<Record>) -> BoxFuture<'static, Result<(), String>>;
}

/// What the recorder's queue carries: a pointer (a span's box, made when
/// it started; a record given to [`Recorder::record`], boxed).
enum Queued {
    Span(Box<Finished>),
    Record(Box<Record>),
}

/// One thread's part of a recorder's queue.
#[derive(Default)]
struct Shard(Mutex<ShardQueue>);

#[derive(Default)]
struct ShardQueue {
    items: Vec<Queued>,
    /// Records ever queued here (what [`Recorder::flush`] waits for).
    queued: u64,
}

impl Shard {
    fn lock(&self) -> std::sync::MutexGuard<'_, ShardQueue> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the recorder's handles and its shipping task share.
struct Shared {
    /// Tells this recorder's shards apart in the threads' tables.
    id: u64,
    /// The shards of the threads that recorded (the first one for any
    /// thread that cannot keep its own, such as one being torn down).
    shards: RwLock<Vec<Arc<Shard>>>,
    /// Records waiting for the next batch: `capacity` over the threads'
    /// shards, each holding its share (a thread's share shrinks when
    /// another thread starts recording; what it holds stays).
    capacity: usize,
    shard_capacity: AtomicUsize,
    /// Wakes the shipping task when a shard stops being empty, or the
    /// last handle goes.
    wake: tokio::sync::Notify,
    closed: AtomicBool,
    dropped: AtomicU64,
    written: AtomicU64,
    /// Records queued in shards since forgotten ([`Shared::prune`]),
    /// changed only under the `shards` write lock.
    retired: AtomicU64,
    /// Records the shipping task is done with (written or dropped by the
    /// sink): what [`Recorder::flush`] compares with those queued.
    settled: AtomicU64,
}

impl Shared {
    fn shards(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Shard>>> {
        self.shards.read().unwrap_or_else(|p| p.into_inner())
    }

    fn shards_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Shard>>> {
        self.shards.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets each shard's share of the capacity after shards came or went
    /// (`shards` counts the fallback, which threads use only while they
    /// are torn down: it is not counted).
    fn share_capacity(&self, shards: usize) {
        let each = (self.capacity / shards.saturating_sub(1).max(1)).max(1);
        self.shard_capacity.store(each, Ordering::Relaxed);
    }

    /// A new shard, for the calling thread.
    fn add_shard(&self) -> Arc<Shard> {
        let shard = Arc::new(Shard::default());
        let mut shards = self.shards_mut();
        shards.push(shard.clone());
        self.share_capacity(shards.len());
        shard
    }

    /// Queues `q` in `shard`, or drops it (counted) if the shard holds its
    /// share of the capacity.
    fn push_to(&self, shard: &Shard, q: Queued) {
        let mut queue = shard.lock();
        if queue.items.len() >= self.shard_capacity.load(Ordering::Relaxed) {
            drop(queue);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.items.push(q);
        queue.queued += 1;
        let first = queue.items.len() == 1;
        drop(queue);
        if first {
            self.wake.notify_one();
        }
    }

    /// Moves what every shard holds into `batch` (empty, with the room
    /// the last batch had).
    fn take_all(&self, batch: &mut Vec<Queued>) {
        for shard in self.shards().iter() {
            let mut q = shard.lock();
            if q.items.is_empty() {
                // (an empty shard keeps its room: swapped, it would take
                // the batch's room, and the next shard to fill would grow
                // its part again from nothing)
                continue;
            }
            if batch.is_empty() {
                // (the first part moves without a copy, and its shard
                // gets the batch's room)
                std::mem::swap(&mut q.items, batch);
            } else {
                batch.append(&mut q.items);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.shards().iter().all(|s| s.lock().items.is_empty())
    }

    /// Forgets the empty shards of threads that are gone (the first one
    /// stays: it is every thread's fallback).
    fn prune(&self) {
        let gone = |(i, s): (usize, &Arc<Shard>)| {
            i > 0 && Arc::strong_count(s) == 1 && s.lock().items.is_empty()
        };
        if !self.shards().iter().enumerate().any(gone) {
            return;
        }
        let mut shards = self.shards_mut();
        let mut i = 0;
        shards.retain(|s| {
            i += 1;
            if !gone((i - 1, s)) {
                return true;
            }
            let queued = s.lock().queued;
            self.retired.fetch_add(queued, Ordering::Relaxed);
            false
        });
        self.share_capacity(shards.len());
    }
}

static NEXT_RECORDER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's shard of each recorder it recorded into, by id.
    static SHARDS: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
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

/// Most records an embedded store takes at once: between two, the
/// shipping task lets the other tasks of its worker run (a batch stored
/// in one go held a worker for milliseconds, and the calls queued on it
/// waited).
const STORE_CHUNK: usize = 256;

/// How long records gather before a partial batch is shipped.
const GATHER: Duration = Duration::from_millis(20);

impl Recorder {
    /// A recorder holding at most `capacity` records not yet shipped,
    /// shipping them to `sink` from a background task (call within a
    /// tokio runtime) in batches, at least every 20 ms. Give it room for
    /// what your calls produce in that time (two records per call when
    /// both sides record in one process): 65 536 is plenty for most.
    /// (Each thread that records holds its share of `capacity`.)
    pub fn new(sink: impl TraceSink, capacity: usize) -> Recorder {
        let capacity = capacity.max(1);
        let shared = Arc::new(Shared {
            id: NEXT_RECORDER.fetch_add(1, Ordering::Relaxed),
            shards: RwLock::new(vec![Arc::new(Shard::default())]),
            capacity,
            shard_capacity: AtomicUsize::new(capacity),
            wake: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            retired: AtomicU64::new(0),
            settled: AtomicU64::new(0),
        });
        // (only the shipping task writes them into records)
        let process: Arc<str> = Arc::from(format!(
            "{}[{}]",
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "?".into()),
            std::process::id()
        ));
        let host: Arc<str> = hostname().into();
        // An embedded store takes the finished spans as they are: no
        // record text made for it to parse back.
        let store = (&sink as &dyn Any).downcast_ref::<EmbeddedStore>().cloned();
        let s = shared.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                // Wait for records (a wake-up comes when a shard stops
                // being empty, not per record).
                while s.is_empty() {
                    if s.closed.load(Ordering::Acquire) {
                        return;
                    }
                    s.wake.notified().await;
                }
                // Let records gather: the sink sees big batches.
                if !s.closed.load(Ordering::Acquire) {
                    tokio::time::sleep(GATHER).await;
                }
                s.take_all(&mut batch);
                s.prune();
                let clocks = Clocks::now();
                // (in chunks: sinks and their receivers bound message sizes)
                let mut queued = batch.drain(..).peekable();
                while queued.peek().is_some() {
                    if let Some(store) = &store {
                        let chunk = queued.by_ref().take(STORE_CHUNK);
                        let n = store_queued(store, chunk, &process, &host, clocks);
                        s.written.fetch_add(n, Ordering::Relaxed);
                        s.settled.fetch_add(n, Ordering::Release);
                        // (the calls this worker holds run between chunks)
                        tokio::task::yield_now().await;
                        continue;
                    }
                    let chunk = queued.by_ref().take(BATCH);
                    let records: Vec<Record> = chunk
                        .map(|q| match q {
                            Queued::Span(f) => f.into_record(&process, &host, clocks),
                            Queued::Record(r) => *r,
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
        self.enqueue(Queued::Record(Box::new(r)));
    }

    pub(super) fn push(&self, f: Box<Finished>) {
        self.enqueue(Queued::Span(f));
    }

    fn enqueue(&self, q: Queued) {
        let s = self.shared();
        let mut q = Some(q);
        // This thread's shard (made on its first record); the shared
        // first shard for a thread whose table is gone.
        let _ = SHARDS.try_with(|table| {
            let Ok(mut table) = table.try_borrow_mut() else {
                return;
            };
            let shard = match table.iter().position(|(id, _)| *id == s.id) {
                Some(i) => &table[i].1,
                None => {
                    // (first, forget the shards of recorders that are gone)
                    table.retain(|(_, shard)| Arc::strong_count(shard) > 1);
                    table.push((s.id, s.add_shard()));
                    &table[table.len() - 1].1
                }
            };
            if let Some(q) = q.take() {
                s.push_to(shard, q);
            }
        });
        if let Some(q) = q {
            let first = s.shards()[0].clone();
            s.push_to(&first, q);
        }
    }

    /// Waits until the records queued so far are shipped (or dropped by
    /// the sink), at most `timeout`; returns whether they all were. For a
    /// short-lived process (a command-line call) before it exits.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let s = self.shared();
        let target: u64 = {
            let shards = s.shards();
            let retired = s.retired.load(Ordering::Relaxed);
            retired + shards.iter().map(|sh| sh.lock().queued).sum::<u64>()
        };
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

/// Stores `chunk` in `store`: the spans as they are, the records given
/// to [`Recorder::record`] as records. Returns how many there were.
fn store_queued(
    store: &EmbeddedStore,
    chunk: impl Iterator<Item = Queued>,
    process: &Arc<str>,
    host: &Arc<str>,
    clocks: Clocks,
) -> u64 {
    let mut n = 0;
    let mut records = Vec::new();
    let spans = chunk.filter_map(|q| {
        n += 1;
        match q {
            Queued::Span(f) => Some(f),
            Queued::Record(r) => {
                records.push(*r);
                None
            }
        }
    });
    let now = Instant::now();
    store.insert_finished(spans, process, host, clocks, now);
    if !records.is_empty() {
        store.insert_at(records, now);
    }
    n
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
