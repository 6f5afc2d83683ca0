//! The log writer (one thread, group commit), the in-memory tail of recent
//! messages, and the state the daemon's tasks share.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::DaemonOptions;
use crate::protocol::{BusInfo, SubscriptionInfo};
use crate::store::{Appended, NewRecord, Record, Store};
use crate::Error;

/// Most envelopes in one commit.
const GROUP_MAX: usize = 8192;
/// Envelopes waiting for the writer, in batches (publishers wait beyond).
const QUEUE_BATCHES: usize = 1024;
/// Bytes of envelopes waiting for the writer, all publishers together (a
/// publish call waits for room before it is queued).
const QUEUE_BYTES: usize = 256 << 20;
/// Bytes of recent envelopes kept in memory for subscribers.
const RECENT_BYTES: usize = 64 << 20;

/// An envelope that passed the ingest checks.
pub(crate) struct Prepared {
    pub topic: String,
    pub msg_id: String,
    pub timestamp: i64,
    /// Canonical JSON.
    pub json: String,
    /// Whether it carries a signature (the PUB side must not alter it).
    pub signed: bool,
}

/// A fresh message for the PUB side, and whether it is signed.
pub(crate) type Fresh = (Arc<Record>, bool);

struct WriteJob {
    records: Vec<Prepared>,
    reply: oneshot::Sender<Result<Vec<Appended>, String>>,
}

/// Counters of rejected envelopes, by reason.
#[derive(Default)]
pub(crate) struct Rejections {
    pub malformed: AtomicU64,
    pub too_large: AtomicU64,
    pub schema: AtomicU64,
    pub signature: AtomicU64,
    pub store: AtomicU64,
}

/// A live subscription: its patterns and the next sequence number it
/// will be sent.
pub(crate) struct Subscription {
    pub patterns: Vec<String>,
    pub position: AtomicU64,
}

/// What the daemon's tasks share.
pub(crate) struct Shared {
    /// The log; taken out (and closed) at shutdown.
    store: RwLock<Option<Arc<Store>>>,
    jobs: Mutex<Option<mpsc::Sender<WriteJob>>>,
    /// Permits are bytes of envelopes queued for the writer.
    queued_bytes: tokio::sync::Semaphore,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    recent: RwLock<Recent>,
    last: watch::Sender<u64>,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: Rejections,
    pub subscribers: AtomicU64,
    /// Live subscriptions by id: their patterns and positions.
    pub subscriptions: Mutex<std::collections::HashMap<u64, Arc<Subscription>>>,
    pub next_subscription: AtomicU64,
    pub pub_dropped: AtomicU64,
    pub max_message_bytes: usize,
    pub schemas: Option<Arc<crate::schema::SchemaRegistry>>,
    pub validator: Option<Arc<crate::crypto::Validator>>,
    publish_endpoint: String,
}

impl Shared {
    /// Starts the writer thread.
    pub fn start(
        store: Arc<Store>,
        opts: &DaemonOptions,
        fanout: (String, mpsc::Sender<Fresh>),
    ) -> Result<Arc<Shared>, Error> {
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let (last, _) = watch::channel(store.last_seq());
        let shared = Arc::new(Shared {
            store: RwLock::new(Some(store)),
            jobs: Mutex::new(Some(tx)),
            queued_bytes: tokio::sync::Semaphore::new(QUEUE_BYTES),
            writer: Mutex::new(None),
            recent: RwLock::new(Recent::new(opts.recent.max(1), RECENT_BYTES)),
            last,
            stored: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: Rejections::default(),
            subscribers: AtomicU64::new(0),
            subscriptions: Mutex::new(std::collections::HashMap::new()),
            next_subscription: AtomicU64::new(0),
            pub_dropped: AtomicU64::new(0),
            max_message_bytes: opts.max_message_bytes,
            schemas: opts.schemas.clone(),
            validator: opts.validator.clone(),
            publish_endpoint: fanout.0,
        });
        let for_thread = shared.clone();
        let fanout = fanout.1;
        let handle = std::thread::Builder::new()
            .name("bus-log-writer".into())
            .spawn(move || for_thread.write_loop(rx, fanout))
            .map_err(|e| Error::Transport(format!("cannot start the log writer: {e}")))?;
        if let Ok(mut w) = shared.writer.lock() {
            *w = Some(handle);
        }
        Ok(shared)
    }

    /// The log, unless the daemon is shutting down.
    pub fn store(&self) -> Result<Arc<Store>, Error> {
        self.store
            .read()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| Error::Transport("the bus is shutting down".into()))
    }

    pub fn publish_endpoint(&self) -> String {
        self.publish_endpoint.clone()
    }

    pub fn last_seq(&self) -> u64 {
        *self.last.borrow()
    }

    /// Waits for messages after `seq`.
    pub fn watch_last(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }

    /// Appends prepared envelopes; answers once they are durable.
    pub async fn append(&self, records: Vec<Prepared>) -> Result<Vec<Appended>, String> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        // Wait for room among the bytes queued for the writer (a batch
        // larger than the whole budget takes all of it).
        let bytes: usize = records.iter().map(|r| r.json.len()).sum();
        let permits = u32::try_from(bytes.clamp(1, QUEUE_BYTES)).unwrap_or(u32::MAX);
        let _room = self
            .queued_bytes
            .acquire_many(permits)
            .await
            .map_err(|_| "the bus is shutting down".to_owned())?;
        let (reply, answer) = oneshot::channel();
        let jobs = self
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.clone())
            .ok_or_else(|| "the bus is shutting down".to_owned())?;
        jobs.send(WriteJob { records, reply })
            .await
            .map_err(|_| "the bus is shutting down".to_owned())?;
        answer
            .await
            .map_err(|_| "the log writer stopped".to_owned())?
    }

    /// Up to `limit` messages from `from` on: from memory when recent,
    /// from the log otherwise.
    pub async fn read(&self, from: u64, limit: usize) -> Result<Vec<Arc<Record>>, Error> {
        if let Ok(recent) = self.recent.read() {
            if let Some(hit) = recent.read(from, limit) {
                return Ok(hit);
            }
        }
        let store = self.store()?;
        let records = tokio::task::spawn_blocking(move || store.read_from(from, limit))
            .await
            .map_err(|e| Error::Transport(format!("log reader: {e}")))??;
        Ok(records.into_iter().map(Arc::new).collect())
    }

    /// Stops the writer after the jobs already queued.
    pub fn close(&self) {
        if let Ok(mut j) = self.jobs.lock() {
            j.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
        // Close the log once the last reader is done with it (a reopen in
        // this process would otherwise find it locked).
        let store = self.store.write().ok().and_then(|mut s| s.take());
        if let Some(mut store) = store {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                match Arc::try_unwrap(store) {
                    Ok(s) => {
                        drop(s);
                        break;
                    }
                    Err(again) if std::time::Instant::now() < deadline => {
                        store = again;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => {
                        tracing::warn!("bus: the log is still in use at shutdown");
                        break;
                    }
                }
            }
        }
    }

    pub fn info(&self, publish: &str, replay: &str) -> BusInfo {
        let r = &self.rejected;
        BusInfo {
            publish: publish.to_owned(),
            replay: replay.to_owned(),
            last_seq: self.last_seq(),
            first_seq: self.store().ok().and_then(|s| s.first_seq()).unwrap_or(0),
            stored: self.stored.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            rejected: [
                ("malformed", &r.malformed),
                ("too_large", &r.too_large),
                ("schema", &r.schema),
                ("signature", &r.signature),
                ("store", &r.store),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.load(Ordering::Relaxed)))
            .collect(),
            subscribers: self.subscribers.load(Ordering::Relaxed),
            pub_dropped: self.pub_dropped.load(Ordering::Relaxed),
            subscriptions: {
                let last = self.last_seq();
                let subs = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
                let mut all: Vec<SubscriptionInfo> = subs
                    .values()
                    .map(|s| {
                        let position = s.position.load(Ordering::Relaxed);
                        SubscriptionInfo {
                            patterns: s.patterns.clone(),
                            position,
                            lag: (last + 1).saturating_sub(position),
                        }
                    })
                    .collect();
                all.sort_by_key(|s| std::cmp::Reverse(s.lag));
                all
            },
        }
    }

    fn write_loop(&self, mut rx: mpsc::Receiver<WriteJob>, fanout: mpsc::Sender<Fresh>) {
        while let Some(first) = rx.blocking_recv() {
            let mut jobs = vec![first];
            let mut count = jobs[0].records.len();
            while count < GROUP_MAX {
                match rx.try_recv() {
                    Ok(job) => {
                        count += job.records.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit(jobs, &fanout);
        }
        tracing::debug!("bus log writer stopped");
    }

    fn commit(&self, jobs: Vec<WriteJob>, fanout: &mpsc::Sender<Fresh>) {
        let batch: Vec<NewRecord<'_>> = jobs
            .iter()
            .flat_map(|j| j.records.iter())
            .map(|p| NewRecord {
                topic: &p.topic,
                msg_id: &p.msg_id,
                timestamp: p.timestamp,
                json: &p.json,
            })
            .collect();
        let result = match self.store() {
            Ok(store) => store.append(&batch).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        drop(batch);
        let appended = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("bus log append failed: {e}");
                let text = format!("the log could not store it: {e}");
                for job in jobs {
                    self.rejected
                        .store
                        .fetch_add(job.records.len() as u64, Ordering::Relaxed);
                    let _ = job.reply.send(Err(text.clone()));
                }
                return;
            }
        };
        let mut outcomes = appended.into_iter();
        let mut fresh = Vec::new();
        let mut answers = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mine: Vec<Appended> = outcomes.by_ref().take(job.records.len()).collect();
            for (p, a) in job.records.into_iter().zip(&mine) {
                match a {
                    Appended::New(seq) => fresh.push((
                        Arc::new(Record {
                            seq: *seq,
                            topic: p.topic,
                            msg_id: p.msg_id,
                            timestamp: p.timestamp,
                            json: p.json.into(),
                        }),
                        p.signed,
                    )),
                    Appended::Duplicate(_) => {
                        self.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            answers.push((job.reply, mine));
        }
        self.stored.fetch_add(fresh.len() as u64, Ordering::Relaxed);
        if let Some((last, _)) = fresh.last() {
            let last = last.seq;
            if let Ok(mut recent) = self.recent.write() {
                recent.extend(fresh.iter().map(|f| f.0.clone()));
            }
            self.last.send_replace(last);
        }
        // Confirm first: the fan-out may wait on a slow PUB queue.
        for (reply, mine) in answers {
            let _ = reply.send(Ok(mine));
        }
        for s in fresh {
            if fanout.blocking_send(s).is_err() {
                break;
            }
        }
    }
}

/// Prunes the log by age once a minute.
pub(crate) async fn prune_periodically(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let Ok(store) = shared.store() else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        match tokio::task::spawn_blocking(move || store.prune(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!("bus log: pruned {n} messages past retention"),
            Ok(Err(e)) => tracing::warn!("bus log: pruning failed: {e}"),
            Err(_) => return,
        }
    }
}

/// The last messages stored, in sequence order, consecutive: at most
/// `cap` of them and `max_bytes` of envelopes (older ones are read from the
/// log).
struct Recent {
    buf: VecDeque<Arc<Record>>,
    cap: usize,
    bytes: usize,
    max_bytes: usize,
}

impl Recent {
    fn new(cap: usize, max_bytes: usize) -> Recent {
        Recent {
            buf: VecDeque::new(),
            cap,
            bytes: 0,
            max_bytes,
        }
    }

    fn extend(&mut self, items: impl IntoIterator<Item = Arc<Record>>) {
        for s in items {
            // Sequence numbers are consecutive; restart the window if not.
            if let Some(back) = self.buf.back() {
                if back.seq + 1 != s.seq {
                    self.buf.clear();
                    self.bytes = 0;
                }
            }
            self.bytes += s.json.len();
            self.buf.push_back(s);
            while self.buf.len() > self.cap || (self.bytes > self.max_bytes && self.buf.len() > 1) {
                match self.buf.pop_front() {
                    Some(old) => self.bytes -= old.json.len(),
                    None => break,
                }
            }
        }
    }

    /// `None` when `from` is older than the window (read the log).
    fn read(&self, from: u64, limit: usize) -> Option<Vec<Arc<Record>>> {
        let front = self.buf.front()?.seq;
        if from < front {
            return None;
        }
        let start = usize::try_from(from - front).ok()?;
        Some(self.buf.iter().skip(start).take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, size: usize) -> Arc<Record> {
        Arc::new(Record {
            seq,
            topic: "t".into(),
            msg_id: format!("id-{seq}"),
            timestamp: 0,
            json: "x".repeat(size).into(),
        })
    }

    #[test]
    fn the_recent_window_is_bounded_by_count_and_bytes() {
        let mut r = Recent::new(4, 1000);
        r.extend((1..=10).map(|s| record(s, 10)));
        assert_eq!(r.buf.len(), 4);
        assert!(r.read(6, 10).is_none(), "older than the window: the log");
        assert_eq!(r.read(7, 10).map(|v| v.len()), Some(4));
        let mut r = Recent::new(100, 1000);
        r.extend((1..=10).map(|s| record(s, 300)));
        assert_eq!((r.buf.len(), r.bytes), (3, 900));
        // One message larger than the budget still stays (the newest).
        r.extend([record(11, 5000)]);
        assert_eq!((r.buf.len(), r.bytes), (1, 5000));
        // A gap restarts the window.
        r.extend([record(20, 1)]);
        assert_eq!(
            (r.buf.len(), r.read(20, 1).map(|v| v[0].seq)),
            (1, Some(20))
        );
    }
}
