//! The [`Recorder`]: a bounded queue of records, never blocking a call,
//! drained in batches to a [`TraceSink`] by a background task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use super::{Finished, Record};

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
        let process: Arc<str> = Arc::from(format!(
            "{}[{}]",
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "?".into()),
            std::process::id()
        ));
        let host: Arc<str> = hostname().into();
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

    pub(super) fn push(&self, f: Finished) {
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
